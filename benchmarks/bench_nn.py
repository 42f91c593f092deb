"""Benchmark: neural networks from scratch (chapters 01, 05, 06) -- training speed and widget latency.

    .venv/bin/python benchmarks/bench_nn.py [--splits 5] [--repeats 20]

Tables:
  digits  MLP 64-128-10 (ReLU, He init), Adam(1e-3), batch 32, 20 epochs on the train split of
          course_lib.data.train_val_test_split(seed=s) for s = 0..splits-1; wall time of
          init + fit + test evaluation *including compilation* (every fit builds fresh jitted
          functions; run with JAX_COMPILATION_CACHE_DIR unset to measure a cold compile), and test
          accuracy. Autodiff (jax.value_and_grad) vs the hand-written backprop (course_lib.backprop)
          as the gradient function. Target: >= 97 % test accuracy in <= 0.7 s.
  widgets redraw latency (set a control, new PNG) of the perceptron stepper, the playground's
          snapshot slider and the gradient-flow view; the playground's retrain (Train button);
          build times (precompute + compile + first draw).
Medians over the repeats; the machine's other load shows up in every row alike.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import numpy as np  # noqa: E402


def bench_digits(splits: int):
    import jax.numpy as jnp

    from course_lib import backprop, data, layers, optim, training

    X, y = data.load_digits()
    rows = []
    for name, grad_fn in (("autodiff", None),
                          ("hand-written backprop", lambda p, xb, yb: backprop.loss_and_grads(p, xb, yb, "relu"))):
        times, accs = [], []
        for s in range(splits):
            d = data.train_val_test_split(X, y, seed=s)
            t0 = time.perf_counter()
            params = layers.init_mlp((64, 128, 10), "he", seed=s)
            params, _ = training.fit(lambda p, x: layers.mlp_apply(p, x, "relu"), params, optim.adam(1e-3),
                                     d["X_train"], d["y_train"], epochs=20, batch_size=32, seed=s,
                                     grad_fn=grad_fn)
            acc = float(jnp.mean(layers.mlp_predict(params, d["X_test"], "relu") == d["y_test"]))
            times.append(time.perf_counter() - t0)
            accs.append(acc)
        rows.append((name, np.median(times), min(times), np.median(accs), min(accs), max(accs)))
    print(f"\ndigits MLP 64-128-10, Adam 1e-3, batch 32, 20 epochs ({splits} splits; wall incl. compile)")
    print(f"{'gradients':<24}{'median s':>10}{'min s':>8}{'median acc':>12}{'min acc':>9}{'max acc':>9}")
    for r in rows:
        print(f"{r[0]:<24}{r[1]:>10.2f}{r[2]:>8.2f}{r[3]:>12.4f}{r[4]:>9.4f}{r[5]:>9.4f}")


def _latency(obj, name, values):
    times = []
    for v in values:
        t0 = time.perf_counter()
        obj.controls[name].value = v
        times.append(time.perf_counter() - t0)
    return np.array(times) * 1e3


def bench_widgets(repeats: int):
    from course_lib.widgets import gradient_flow, perceptron, playground

    print("\nwidgets (ms; redraw = set a control -> new PNG, no training)")
    print(f"{'widget':<44}{'build s':>9}{'median ms':>11}{'p90 ms':>9}")
    rng = np.random.default_rng(0)

    t0 = time.perf_counter()
    st = perceptron.build_perceptron_stepper()
    build = time.perf_counter() - t0
    ms = _latency(st, "step", rng.integers(0, perceptron.STEPS, repeats).tolist())
    print(f"{'perceptron stepper: step':<44}{build:>9.2f}{np.median(ms):>11.1f}{np.percentile(ms, 90):>9.1f}")

    t0 = time.perf_counter()
    pg = playground.build_playground()
    build = time.perf_counter() - t0
    vals = [int(v) for v in rng.integers(0, playground.SNAPSHOTS + 1, repeats)]
    ms = _latency(pg, "epoch", vals)
    print(f"{'playground: snapshot slider':<44}{build:>9.2f}{np.median(ms):>11.1f}{np.percentile(ms, 90):>9.1f}")
    train_ms = []
    for i in range(max(3, repeats // 4)):
        pg.controls["width"].value = 4 + (i % 8)
        t0 = time.perf_counter()
        pg.train()
        train_ms.append((time.perf_counter() - t0) * 1e3)
    train_ms = np.array(train_ms)
    print(f"{'playground: Train (600 Adam steps + redraw)':<44}{'':>9}{np.median(train_ms):>11.1f}"
          f"{np.percentile(train_ms, 90):>9.1f}")

    t0 = time.perf_counter()
    gf = gradient_flow.build_gradient_flow()
    build = time.perf_counter() - t0
    vals = [gradient_flow.DEPTHS[i] for i in rng.integers(0, len(gradient_flow.DEPTHS), repeats)]
    ms = _latency(gf, "depth", vals)
    print(f"{'gradient flow: depth':<44}{build:>9.2f}{np.median(ms):>11.1f}{np.percentile(ms, 90):>9.1f}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--splits", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--skip-widgets", action="store_true")
    args = parser.parse_args(argv)
    bench_digits(args.splits)
    if not args.skip_widgets:
        bench_widgets(args.repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
