"""Benchmark: course_lib.activations / course_lib.losses on a (1024, 128) float32 array.

    .venv/bin/python benchmarks/bench_core.py [--rounds 60]

For each function three timings, interleaved round by round (a busy machine slows all alike); each
round times 5 back-to-back calls; the table gives the median over rounds, in microseconds per call:
  public   the public function: argument validation (dtype, NaN check) + the jitted core
  core     the jitted private core alone (what runs inside a jitted training step, where the
           validation is skipped because the inputs are tracers)
  jax.nn   the JAX/optax reference, jitted (jax.nn.*, optax.*)
The "public - core" column is the price of validation per eager call.
"""
from __future__ import annotations

import argparse
import inspect
import os
import sys
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from course_lib import activations as A  # noqa: E402
from course_lib import losses as L  # noqa: E402

try:
    import optax
except ImportError:  # test-only dependency; its rows fall back to a jnp formula
    optax = None

N, C = 1024, 128


def _median_per_call(funcs: dict, rounds: int, inner: int = 5) -> dict:
    """Median over ``rounds`` of the mean time of ``inner`` back-to-back calls, per function.

    The functions take turns within each round, so a burst of load on the shared machine hits all
    of them; the first calls (compilation) happen before any timing.
    """
    for warm in funcs.values():
        warm()
    samples = {name: np.empty(rounds) for name in funcs}
    for r in range(rounds):
        for name, fn in funcs.items():
            start = time.perf_counter()
            for _ in range(inner):
                fn()
            samples[name][r] = (time.perf_counter() - start) / inner
    return {name: float(np.median(s)) for name, s in samples.items()}


def _core(f, *static):
    """The body of a public function without its argument checks, compiled (the 'core' column)."""
    return jax.jit(inspect.unwrap(f), static_argnames=static)


def _call(f, *args):
    return lambda: jax.block_until_ready(f(*args))


def cases():
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(N, C)).astype(np.float32))
    t = jnp.asarray(rng.normal(size=(N, C)).astype(np.float32))
    labels = jnp.asarray(rng.integers(0, C, size=N).astype(np.int32))
    probs01 = jnp.asarray(rng.uniform(0.01, 0.99, size=(N, C)).astype(np.float32))
    targets01 = jnp.asarray(rng.integers(0, 2, size=(N, C)).astype(np.float32))
    p = jax.nn.softmax(x)
    q = jax.nn.softmax(t)

    ref_ce = (jax.jit(lambda z, y: optax.softmax_cross_entropy_with_integer_labels(z, y).mean())
              if optax else jax.jit(lambda z, y: -jnp.take_along_axis(jax.nn.log_softmax(z), y[:, None], 1).mean()))
    ref_bce = (jax.jit(lambda z, y: optax.sigmoid_binary_cross_entropy(z, y).mean())
               if optax else jax.jit(lambda z, y: (jax.nn.softplus(z) - y * z).mean()))
    ref_kl = (jax.jit(lambda a, b: optax.kl_divergence(jnp.log(b), a))
              if optax else jax.jit(lambda a, b: jnp.sum(a * (jnp.log(a) - jnp.log(b)), -1)))
    return [
        # name, public call, core call, reference call
        ("sigmoid", _call(A.sigmoid, x), _call(_core(A.sigmoid), x), _call(jax.jit(jax.nn.sigmoid), x)),
        ("sigmoid_grad", _call(A.sigmoid_grad, x), _call(_core(A.sigmoid_grad), x),
         _call(jax.jit(jax.vmap(jax.vmap(jax.grad(jax.nn.sigmoid)))), x)),
        ("tanh", _call(A.tanh, x), _call(_core(A.tanh), x), _call(jax.jit(jnp.tanh), x)),
        ("relu", _call(A.relu, x), _call(_core(A.relu), x), _call(jax.jit(jax.nn.relu), x)),
        ("leaky_relu", _call(A.leaky_relu, x, 0.01), _call(_core(A.leaky_relu), x, 0.01),
         _call(jax.jit(jax.nn.leaky_relu), x)),
        ("softmax", _call(A.softmax, x), _call(_core(A.softmax, "axis"), x, 1), _call(jax.jit(jax.nn.softmax), x)),
        ("log_softmax", _call(A.log_softmax, x), _call(_core(A.log_softmax, "axis"), x, 1),
         _call(jax.jit(jax.nn.log_softmax), x)),
        ("mse", _call(L.mse, x, t), _call(_core(L.mse, "reduction"), x, t, "mean"),
         _call(jax.jit(lambda a, b: jnp.mean((a - b) ** 2)), x, t)),
        ("cross_entropy", _call(L.cross_entropy, x, labels), _call(_core(L.cross_entropy, "reduction"), x, labels, "mean"),
         _call(ref_ce, x, labels)),
        ("bce", _call(L.binary_cross_entropy, probs01, targets01), _call(_core(L.binary_cross_entropy, "reduction"), probs01, targets01, "mean"),
         _call(jax.jit(lambda a, b: -(b * jnp.log(a) + (1 - b) * jnp.log1p(-a)).mean()), probs01, targets01)),
        ("bce_with_logits", _call(L.binary_cross_entropy_with_logits, x, targets01),
         _call(_core(L.binary_cross_entropy_with_logits, "reduction"), x, targets01, "mean"), _call(ref_bce, x, targets01)),
        ("kl_divergence", _call(L.kl_divergence, p, q), _call(_core(L.kl_divergence, "axis"), p, q, 1), _call(ref_kl, p, q)),
    ]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=60)
    args = parser.parse_args(argv)
    print(f"course_lib core functions on a ({N}, {C}) float32 array, CPU, median of {args.rounds} "
          f"interleaved rounds of 5 calls (microseconds per call)")
    header = f"{'function':<16} {'public':>9} {'core':>9} {'jax.nn':>9} {'public-core':>12} {'core/ref':>9}"
    print(header)
    print("-" * len(header))
    for name, public, core, ref in cases():
        med = _median_per_call({"public": public, "core": core, "ref": ref}, args.rounds)
        us = {k: v * 1e6 for k, v in med.items()}
        print(f"{name:<16} {us['public']:>9.1f} {us['core']:>9.1f} {us['ref']:>9.1f} "
              f"{us['public'] - us['core']:>12.1f} {us['core'] / us['ref']:>9.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
