"""Both CPU cores for large batches: data parallelism over JAX's CPU devices.

XLA:CPU runs the kernels of one compiled computation one after another, on one core: a recurrent
layer's time loop is a chain of small products that no thread pool splits. PyTorch, in contrast,
splits each product over its threads. JAX's way to use a second core is a second *device*, so when
course_lib is imported it asks JAX for one CPU device per core, at most ``DEFAULT_MAX_DEVICES``:
only measured on 2 cores, and the shares of a split decide how floats are summed, so with the same
2 devices on every machine of 2 cores or more the notebooks' stored numbers come out the same.
Arrays still live on the first device and every computation runs there, unless a course_lib
function splits a large batch with :func:`over_batch`: then each device runs the same code on its
share of the batch (``jax.shard_map``), and gradients of the replicated arguments (the weights) are
summed across the devices by JAX's transpose rule.

A split costs about 0.3-0.5 ms per call (a second device, moving the shares, summing the
gradients), so :func:`shards` only splits work of at least ``min_work`` multiply-adds; the callers
set that threshold from benchmarks (``benchmarks/bench_recurrent.py``).

The device count is JAX's global setting, so it is only touched when nobody has chosen it: not
when ``XLA_FLAGS`` sets ``--xla_force_host_platform_device_count``, not when ``jax_num_cpu_devices``
is already set, and not once JAX has started (then it is too late and course_lib keeps one device).
``COURSE_LIB_CPU_DEVICES=1`` switches it off; another number asks for that many devices.
"""
from __future__ import annotations

import os

import jax
import numpy as np
from jax.sharding import Mesh, PartitionSpec

DEFAULT_MAX_DEVICES = 2
ENV = "COURSE_LIB_CPU_DEVICES"


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:                      # macOS, Windows
        return os.cpu_count() or 1


def requested_devices(environ=os.environ) -> int:
    """How many CPU devices course_lib asks JAX for (``COURSE_LIB_CPU_DEVICES`` or the cores, at
    most ``DEFAULT_MAX_DEVICES``)."""
    value = environ.get(ENV, "").strip()
    if value:
        if not value.isdigit() or int(value) < 1:
            raise ValueError(f"{ENV} must be a whole number >= 1, got {value!r}")
        return int(value)
    return max(1, min(_cores(), DEFAULT_MAX_DEVICES))


def configure(environ=os.environ) -> bool:
    """Ask JAX for :func:`requested_devices` CPU devices, unless the count was chosen elsewhere or
    JAX has started. Returns whether the setting was changed."""
    n = requested_devices(environ)
    if n == 1 or "xla_force_host_platform_device_count" in environ.get("XLA_FLAGS", ""):
        return False
    if jax.config.jax_num_cpu_devices != -1:
        return False
    try:
        jax.config.update("jax_num_cpu_devices", n)
    except RuntimeError:                        # JAX already ran something: keep its devices
        return False
    return True


def _cpu_devices():
    try:
        return jax.devices("cpu")
    except RuntimeError:
        return []


def shards(batch: int, work: float, min_work: float) -> int:
    """Into how many shares to split a batch of ``batch`` items whose computation costs ``work``
    multiply-adds: the most CPU devices that divide the batch, but 1 (no split) when ``work`` is
    below ``min_work``, when JAX's default backend is not the CPU, or when there is one device."""
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


configure()          # on import: every course_lib module that uses JAX imports this one
