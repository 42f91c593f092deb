"""Benchmark: course_lib.optim against optax, and the optimizer race widget.

    .venv/bin/python benchmarks/bench_optim.py [--rounds 30]

Table 1, per optimizer, on the parameters of a 64-128-10 MLP (float32), median over rounds of the
time per call in microseconds:
  eager     ``opt.update`` called from Python (validation of the gradient pytree + jitted core)
  in-jit     100 updates inside one jitted ``lax.scan``, per update (what a training step pays)
  optax     the same 100 updates with optax's optimizer, per update
Table 2: the optimizer race: build time (precompute of all trajectories, one compile) and the
median / max latency of a control change (set ``.value`` -> new PNG), in milliseconds.
CPU seconds are given next to wall seconds: the 2-core machine is shared, wall time scales with load.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from course_lib import optim  # noqa: E402

PAIRS = {
    "sgd": (lambda: optim.sgd(0.1), lambda: optax.sgd(0.1)),
    "momentum": (lambda: optim.momentum(0.1, 0.9), lambda: optax.sgd(0.1, momentum=0.9)),
    "nesterov": (lambda: optim.nesterov(0.1, 0.9), lambda: optax.sgd(0.1, momentum=0.9, nesterov=True)),
    "adagrad": (lambda: optim.adagrad(0.1), lambda: optax.adagrad(0.1)),
    "rmsprop": (lambda: optim.rmsprop(1e-3), lambda: optax.rmsprop(1e-3)),
    "adam": (lambda: optim.adam(1e-3), lambda: optax.adam(1e-3)),
}


def _params():
    rng = np.random.default_rng(0)
    return [{"W": jnp.asarray(rng.normal(size=(64, 128)).astype(np.float32)), "b": jnp.zeros(128)},
            {"W": jnp.asarray(rng.normal(size=(128, 10)).astype(np.float32)), "b": jnp.zeros(10)}]


def _scan_runner(opt, apply):
    @jax.jit
    def run(params, grads):
        def body(carry, _):
            p, s = carry
            u, s = opt.update(grads, s, p)
            return (apply(p, u), s), None
        (p, _), _ = jax.lax.scan(body, (params, opt.init(params)), None, length=100)
        return p
    return run


def _median_us(fn, rounds, per=1):
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        jax.block_until_ready(fn())
        times.append((time.perf_counter() - t) / per * 1e6)
    return float(np.median(times))


def bench_optimizers(rounds: int):
    params = _params()
    grads = jax.tree_util.tree_map(lambda x: 0.01 * jnp.ones_like(x), params)
    print(f"{'optimizer':<10} {'eager us':>9} {'in-jit us':>10} {'optax us':>9}")
    for name, (ours_f, ref_f) in PAIRS.items():
        ours, ref = ours_f(), ref_f()
        state = ours.init(params)
        jax.block_until_ready(ours.update(grads, state, params))
        eager = _median_us(lambda: ours.update(grads, state, params), rounds)
        run_ours = _scan_runner(ours, optim.apply_updates)
        run_ref = _scan_runner(ref, optax.apply_updates)
        jax.block_until_ready(run_ours(params, grads))
        jax.block_until_ready(run_ref(params, grads))
        in_jit = _median_us(lambda: run_ours(params, grads), rounds, per=100)
        ref_t = _median_us(lambda: run_ref(params, grads), rounds, per=100)
        print(f"{name:<10} {eager:>9.1f} {in_jit:>10.2f} {ref_t:>9.2f}")


def bench_race(rounds: int):
    from course_lib.widgets import optimizer_race as R

    c, w = time.process_time(), time.perf_counter()
    race = R.build_optimizer_race()
    build_wall, build_cpu = time.perf_counter() - w, time.process_time() - c
    print(f"\n{'race':<28} {'wall':>9} {'cpu':>9}")
    print(f"{'build (precompute) s':<28} {build_wall:>9.2f} {build_cpu:>9.2f}")
    for control, values in (("lr_plain", R.LR_PLAIN), ("lr_adaptive", R.LR_ADAPTIVE), ("beta", R.BETAS),
                            ("steps", tuple(range(0, R.NUM_STEPS + 1, 10))),
                            ("surface", tuple(R.SURFACES))):
        walls, cpus = [], []
        for i in range(rounds):
            v = values[(i + 1) % len(values)]
            if race.controls[control].value == v:
                v = values[(i + 2) % len(values)]
            c, w = time.process_time(), time.perf_counter()
            race.controls[control].value = v
            walls.append((time.perf_counter() - w) * 1e3)
            cpus.append((time.process_time() - c) * 1e3)
        print(f"{control + ' ms (median/max)':<28} {np.median(walls):>5.1f}/{max(walls):<5.0f} "
              f"{np.median(cpus):>5.1f} cpu")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args(argv)
    bench_optimizers(args.rounds)
    bench_race(args.rounds)
    print(f"\nload average (1 min): {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
