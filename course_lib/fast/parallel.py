"""Both CPU cores for large batches: data parallelism over JAX's CPU devices, an explicit opt-in.

XLA:CPU runs the kernels of one compiled computation one after another, on one core: a recurrent
layer's time loop is a chain of small products that no thread pool splits. PyTorch, in contrast,
splits each product over its threads. JAX's way to use a second core is a second *device*. JAX
starts with one CPU device, and course_lib never changes that by itself (importing it changes no
global JAX setting). To use two cores, ask for them before JAX has run anything::

    from course_lib import fast
    fast.use_cpu_cores(2)

Arrays still live on the first device and every computation runs there, unless a function of the
fast wing splits a large batch with :func:`over_batch`: then each device runs the same code on its
share of the batch (``jax.shard_map``), and gradients of the replicated arguments (the weights) are
summed across the devices by JAX's transpose rule. A split costs a fixed amount per call (a second
device, moving the shares, summing the gradients), so :func:`shards` only splits work of at least
``min_work`` multiply-adds; the callers set that threshold from benchmarks
(``benchmarks/bench_recurrent.py --sweep``, figures in ``benchmarks/README.md``).

Where a batch is split, the weight gradients are summed in another order than on one device, so
results differ in the last bits. The chapters therefore never call :func:`use_cpu_cores`: their
stored numbers must not depend on how many cores the reader's machine has.
"""
from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, PartitionSpec

from course_lib._validation import check_int

__all__ = ["use_cpu_cores", "shards", "over_batch"]


def use_cpu_cores(n):
    """Ask JAX for ``n`` CPU devices (e.g. 2: one per core of a 2-core machine), so that the fast
    wing can split large batches over them.

    JAX's device count is a global setting fixed when JAX starts: call this first, before any JAX
    computation (in a notebook, in the first cell, before anything else runs). Called later, it
    raises ``RuntimeError``, unless JAX already has ``n`` CPU devices (then it does nothing).
    """
    n = check_int(n, "n", minimum=1)
    try:
        jax.config.update("jax_num_cpu_devices", n)
    except RuntimeError:                        # JAX has started: its devices are fixed
        if len(_cpu_devices()) != n:
            raise RuntimeError(f"use_cpu_cores({n}) must be called before JAX runs anything; JAX "
                               f"already started with {len(_cpu_devices())} CPU device(s) "
                               f"(restart the kernel or process and call it first)") from None


def _cpu_devices():
    try:
        return jax.devices("cpu")
    except RuntimeError:
        return []


def shards(batch: int, work: float, min_work: float) -> int:
    """Into how many shares to split a batch of ``batch`` items whose computation costs ``work``
    multiply-adds: the most CPU devices that divide the batch, but 1 (no split) when ``work`` is
    below ``min_work``, when JAX's default backend is not the CPU, or when there is one device
    (JAX's default: see :func:`use_cpu_cores`)."""
    if work < min_work or jax.default_backend() != "cpu":
        return 1
    n = len(_cpu_devices())
    return next((k for k in range(min(n, batch), 1, -1) if batch % k == 0), 1)


_MESHES: dict[int, Mesh] = {}


def _mesh(k: int) -> Mesh:
    if k not in _MESHES:
        _MESHES[k] = Mesh(np.array(_cpu_devices()[:k]), ("batch",))
    return _MESHES[k]


def over_batch(fn, k: int, replicated, *split):
    """``fn(replicated, *split)`` with every array of ``split`` cut along axis 0 into ``k`` shares,
    one per CPU device; ``replicated`` (a pytree, e.g. the weights) goes whole to every device. Every
    output of ``fn`` must have the batch on axis 0; the shares are joined back along it. ``fn`` must
    treat the batch items independently (no sum or mean over axis 0)."""
    if k == 1:
        return fn(replicated, *split)
    batched = PartitionSpec("batch")
    return jax.shard_map(fn, mesh=_mesh(k), in_specs=(PartitionSpec(),) + (batched,) * len(split),
                         out_specs=batched, check_vma=False)(replicated, *split)
