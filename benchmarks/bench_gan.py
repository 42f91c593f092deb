"""GAN training (course_lib.gan) and the chapter-13 viewer: compile time, run time, update latency.

    python benchmarks/bench_gan.py

For each configuration the notebook uses, ``train_gan_history`` is called twice with the same static
arguments and shapes: the first call traces and compiles (in a fresh process with a cold cache this
is the compile cost the notebook pays once per configuration), the second only runs. Both columns
give wall time and process CPU time (CPU time grows much less with the machine's load). Then the
training-dynamics viewer is built on the ring run and its step slider moved 60 times.
"""
from __future__ import annotations

import os
import statistics
import time

import numpy as np


def _timed(fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def main() -> int:
    from course_lib import data, gan
    from course_lib.widgets.gan import build_gan_viewer

    X_ring, centers = gan.make_ring(4000, std=0.02, seed=0)
    axis = np.linspace(-3, 3, 41)
    grid = np.stack(np.meshgrid(axis, axis), -1).reshape(-1, 2)
    X_dig, _ = data.load_digits()
    ring = dict(steps=2000, snapshots=20, batch_size=128, learning_rate=2e-3, n_samples=500)
    configs = [
        ("ring 8 Gaussians, vanilla (2000 it)", lambda s: gan.train_gan_history(
            gan.init_gan(2, 32, (64, 64), seed=s), X_ring, grid=grid, seed=s, **ring)),
        ("ring 8 Gaussians, packed m=4 (2000 it)", lambda s: gan.train_gan_history(
            gan.init_gan(2, 32, (64, 64), seed=s, pack=4), X_ring, pack=4, grid=grid, seed=s, **ring)),
        ("digits 8x8 (1200 it, batch 64)", lambda s: gan.train_gan_history(
            gan.init_gan(64, 16, (128, 128), seed=s), X_dig, steps=1200, snapshots=6, batch_size=64,
            n_samples=32, output="sigmoid", seed=s)),
    ]
    print(f"{'configuration':40s} {'1st call s':>10s} {'cpu s':>7s} {'2nd call s':>10s} {'cpu s':>7s}")
    history = None
    for name, fn in configs:
        h, w1, c1 = _timed(lambda: fn(0))
        _, w2, c2 = _timed(lambda: fn(1))
        history = h if history is None else history
        print(f"{name:40s} {w1:10.2f} {c1:7.2f} {w2:10.2f} {c2:7.2f}")

    viewer, wb, cb = _timed(lambda: build_gan_viewer(history, X_ring, centers=centers))
    slider = viewer.controls["step"]
    values = list(range(slider.min, slider.max + 1, slider.step))
    order = np.random.default_rng(0).permutation(np.tile(values, 3))
    walls, cpus = [], []
    for v in order:
        if v == slider.value:
            continue
        w, c = time.perf_counter(), time.process_time()
        slider.value = int(v)
        walls.append((time.perf_counter() - w) * 1e3)
        cpus.append((time.process_time() - c) * 1e3)
    print(f"\n{'viewer (ring, D heat map)':40s} {'build s':>10s} {'median ms':>10s} {'p95 ms':>8s} {'cpu median ms':>14s}")
    print(f"{'':40s} {wb:10.2f} {statistics.median(walls):10.1f} {np.percentile(walls, 95):8.1f} "
          f"{statistics.median(cpus):14.1f}")
    print(f"\nload average (1 min): {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
