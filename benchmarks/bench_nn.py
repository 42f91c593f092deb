"""Benchmark: neural networks from scratch (chapters 01, 05, 06) -- training speed and widget latency.

    .venv/bin/python benchmarks/bench_nn.py [--splits 5] [--repeats 20]

Tables:
  digits  MLP 64-128-10 (ReLU, He init), batch 32, on the train split of
          course_lib.data.train_val_test_split(seed=s) for s = 0..splits-1, two recipes:
            "adam 1e-3, 20 ep"        the recipe of issue 4 (20 epochs at a constant 1e-3);
            "adam 3e-3 cos, 40 ep"    chosen on the VALIDATION sets (mean val accuracy/loss over 5
                                      splits x 3 init seeds; the test sets played no part): 40
                                      epochs, Adam 3e-3 with cosine decay to 0.
          Wall and CPU time of init + fit + test evaluation. The first split pays the compilation
          (training.fit caches the compiled epoch, so splits 1.. reuse it); whether that compile is
          cold or a persistent-cache read depends on JAX_COMPILATION_CACHE_DIR (printed). Test
          accuracy per split. Autodiff (jax.value_and_grad) vs the hand-written backprop
          (course_lib.backprop) as the gradient function. Target: >= 97 % test accuracy on every
          split in <= 0.7 s.
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
    from course_lib import backprop, data, layers, optim, schedules, training

    X, y = data.load_digits()
    apply = lambda p, x: layers.mlp_apply(p, x, "relu")  # noqa: E731
    manual = lambda p, xb, yb: backprop.loss_and_grads(p, xb, yb, "relu")  # noqa: E731
    n_train = len(data.train_val_test_split(X, y, seed=0)["y_train"])
    recipes = (("adam 1e-3, 20 ep", "autodiff", None, lambda: optim.adam(1e-3), 20),
               ("adam 3e-3 cos, 40 ep", "autodiff", None,
                lambda: optim.adam(schedules.cosine_decay(3e-3, 40 * (n_train // 32))), 40),
               ("adam 3e-3 cos, 40 ep", "hand-written", manual,
                lambda: optim.adam(schedules.cosine_decay(3e-3, 40 * (n_train // 32))), 40))
    rows = []
    for name, grads, grad_fn, make_opt, epochs in recipes:
        walls, cpus, accs = [], [], []
        for s in range(splits):
            d = data.train_val_test_split(X, y, seed=s)
            t0, c0 = time.perf_counter(), time.process_time()
            params = layers.init_mlp((64, 128, 10), "he", seed=s)
            params, _ = training.fit(apply, params, make_opt(), d["X_train"], d["y_train"], epochs=epochs,
                                     batch_size=32, seed=s, grad_fn=grad_fn)
            acc = training.evaluate(apply, params, d["X_test"], d["y_test"])[1]
            walls.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
            accs.append(acc)
        rows.append((name, grads, walls[0], cpus[0], np.median(walls[1:] or walls), np.median(cpus[1:] or cpus),
                     accs))
    cache = os.environ.get("JAX_COMPILATION_CACHE_DIR")
    print(f"\ndigits MLP 64-128-10, batch 32 ({splits} splits; first split includes compilation, "
          f"persistent cache {'at ' + cache if cache else 'OFF (cold compile)'})")
    print(f"{'recipe':<22}{'gradients':<14}{'1st wall':>9}{'1st cpu':>8}{'next wall':>10}{'next cpu':>9}"
          f"{'min acc':>9}  test accuracy per split")
    for r in rows:
        print(f"{r[0]:<22}{r[1]:<14}{r[2]:>9.2f}{r[3]:>8.2f}{r[4]:>10.2f}{r[5]:>9.2f}{min(r[6]):>9.4f}  "
              + " ".join(f"{a:.4f}" for a in r[6]))


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
