"""Benchmark: course_lib.conv (from scratch) vs jax.lax and (optionally) PyTorch, side by side.

    .venv/bin/python benchmarks/bench_conv.py [--rounds 40] [--no-train]

Every implementation is timed in the same run, interleaved round by round (so a busy machine slows
all of them alike), and the table reports the median per call and the ratio to the references.
PyTorch is an optional benchmark-only extra (``pip install torch==2.13.0``, run with 2 threads);
the course never needs it and its rows are skipped when it is not installed.

Cases (float32, CPU):
  conv   N=64, C=8, 28x28, 16 filters 3x3 "same": forward, and forward+backward (out, dx, dw)
  pool   2x2 max pooling of (64, 28, 28, 16): forward+backward
  train  digits CNN (course_lib.conv.train_cnn defaults) on 5 splits: wall and CPU time (the first
         run includes every compilation: the persistent compilation cache is pointed at a fresh
         empty folder, so it is a cold start), test accuracy per split. Two protocols: trained on
         the training set only, and refit on training + validation (the hyper-parameters having
         been chosen on validation before: notebooks/10_convolutional_networks.ipynb section 9).

The last lines compare every ratio with the targets of the issue.
"""
from __future__ import annotations

import argparse
import atexit
import os
import shutil
import sys
import tempfile
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# a cold start for the CNN's first run: nothing compiled by an earlier run can be reused
os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="bench_conv_jax_cache_")
atexit.register(shutil.rmtree, os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax import lax  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from course_lib import conv  # noqa: E402

N, H, W, C, O, K = 64, 28, 28, 8, 16, 3

try:
    import torch
    torch.set_num_threads(2)
except ImportError:  # optional
    torch = None


CPU_TIMES: dict = {}      # (case title, implementation) -> median process CPU seconds per call


def _time_interleaved(funcs: dict, rounds: int, case: str = "") -> dict:
    """Median wall seconds per call of each zero-argument function, timed round-robin (the
    order rotated every round).

    The median process CPU time per call (all threads) goes to ``CPU_TIMES``: on a shared machine
    it is less inflated by other processes than the wall time.
    """
    for f in funcs.values():        # warm-up (compilation) outside the timing
        f()
        f()
    times = {name: [] for name in funcs}
    cpu = {name: [] for name in funcs}
    names = list(funcs)
    for r in range(rounds):
        # rotate the order every round: whatever runs right after PyTorch pays for its OpenMP
        # threads still spinning, so no implementation may always be the one that follows it
        for name in names[r % len(names):] + names[:r % len(names)]:
            f = funcs[name]
            c0, t0 = time.process_time(), time.perf_counter()
            f()
            times[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    for name, cs in cpu.items():
        CPU_TIMES[(case, name)] = float(np.median(cs))
    return {name: float(np.median(ts)) for name, ts in times.items()}


def _jax_call(f, *args):
    return lambda: jax.block_until_ready(f(*args))


def _fwd_bwd(f):
    def run(x, w, g):
        out, vjp = jax.vjp(f, x, w)
        return (out,) + vjp(g)
    return jax.jit(run)


def conv_cases(rounds: int):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, H, W, C)).astype(np.float32)
    w = (rng.standard_normal((K, K, C, O)) * 0.1).astype(np.float32)
    g = rng.standard_normal((N, H, W, O)).astype(np.float32)
    xj, wj, gj = jnp.asarray(x), jnp.asarray(w), jnp.asarray(g)
    xn, wn, gn = (jnp.asarray(x.transpose(0, 3, 1, 2)), jnp.asarray(w.transpose(3, 2, 0, 1)),
                  jnp.asarray(g.transpose(0, 3, 1, 2)))

    def ours(x, w):
        return conv.conv2d(x, w, padding="same")

    def lax_nhwc(x, w):
        return lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))

    def lax_nchw(x, w):
        return lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NCHW", "OIHW", "NCHW"))

    fwd = {"course_lib": _jax_call(jax.jit(ours), xj, wj),
           "lax NHWC": _jax_call(jax.jit(lax_nhwc), xj, wj),
           "lax NCHW": _jax_call(jax.jit(lax_nchw), xn, wn)}
    both = {"course_lib": _jax_call(_fwd_bwd(ours), xj, wj, gj),
            "lax NHWC": _jax_call(_fwd_bwd(lax_nhwc), xj, wj, gj),
            "lax NCHW": _jax_call(_fwd_bwd(lax_nchw), xn, wn, gn)}
    # same numbers?
    ref = _fwd_bwd(lax_nhwc)(xj, wj, gj)
    got = _fwd_bwd(ours)(xj, wj, gj)
    err = max(float(jnp.max(jnp.abs(a - b)) / (jnp.max(jnp.abs(b)) + 1e-30)) for a, b in zip(got, ref))
    if torch is not None:
        xt = torch.tensor(x.transpose(0, 3, 1, 2).copy(), requires_grad=True)
        wt = torch.tensor(w.transpose(3, 2, 0, 1).copy(), requires_grad=True)
        gt = torch.tensor(g.transpose(0, 3, 1, 2).copy())

        def t_fwd():
            with torch.no_grad():
                torch.nn.functional.conv2d(xt, wt, padding=1)

        def t_both():
            xt.grad = wt.grad = None
            torch.nn.functional.conv2d(xt, wt, padding=1).backward(gt)

        fwd["torch"] = t_fwd
        both["torch"] = t_both
    return _time_interleaved(fwd, rounds, "fwd"), _time_interleaved(both, rounds, "both"), err


def pool_cases(rounds: int):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((N, H, W, O)).astype(np.float32)
    g = rng.standard_normal((N, H // 2, W // 2, O)).astype(np.float32)
    xj, gj = jnp.asarray(x), jnp.asarray(g)

    def ours(x):
        return conv.max_pool2d(x, 2)

    def rw(x):
        return lax.reduce_window(x, -jnp.inf, lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")

    def fb(f):
        def run(x, g):
            out, vjp = jax.vjp(f, x)
            return out, vjp(g)[0]
        return jax.jit(run)

    cases = {"course_lib": _jax_call(fb(ours), xj, gj),
             "lax.reduce_window": _jax_call(fb(rw), xj, gj)}
    ref, got = fb(rw)(xj, gj), fb(ours)(xj, gj)
    err = max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(got, ref))
    if torch is not None:
        xt = torch.tensor(x.transpose(0, 3, 1, 2).copy(), requires_grad=True)
        gt = torch.tensor(g.transpose(0, 3, 1, 2).copy())

        def t_both():
            xt.grad = None
            torch.nn.functional.max_pool2d(xt, 2).backward(gt)

        cases["torch"] = t_both
    return _time_interleaved(cases, rounds, "pool"), err


def train_case(epochs, seed: int, refit: bool = False):
    """Train on split ``seed`` (seeded init too) and predict its test set: (wall s, CPU s, accuracy).

    ``refit``: train on training + validation images. ``epochs=None``: train_cnn's default.
    The first call in a process includes every compilation (the training step)."""
    from course_lib import data

    X, y = data.load_digits(images=True)
    split = data.train_val_test_split(np.asarray(X)[..., None], np.asarray(y), seed=seed)
    X_fit, y_fit = split["X_train"], split["y_train"]
    if refit:
        X_fit = np.concatenate([X_fit, split["X_val"]])
        y_fit = np.concatenate([y_fit, split["y_val"]])
    kwargs = {} if epochs is None else {"epochs": epochs}
    c0, t0 = time.process_time(), time.perf_counter()
    params, _ = conv.train_cnn(X_fit, y_fit, seed=seed, **kwargs)
    acc = float(np.mean(conv.cnn_predict(params, split["X_test"]) == split["y_test"]))
    return time.perf_counter() - t0, time.process_time() - c0, acc


def _table(title, times, refs, case):
    print(f"\n{title}")
    header = (f"  {'implementation':<20s}{'ms/call':>10s}" + "".join(f"{'/ ' + r:>16s}" for r in refs)
              + f"{'CPU ms/call':>14s}{'CPU / ' + refs[0]:>16s}")
    print(header)
    cpu_ref = CPU_TIMES[(case, refs[0])]
    for name, t in times.items():
        ratios = "".join(f"{t / times[r]:>16.2f}" for r in refs)
        c = CPU_TIMES[(case, name)]
        print(f"  {name:<20s}{t * 1e3:>10.2f}{ratios}{c * 1e3:>14.2f}{c / cpu_ref:>16.2f}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--no-train", action="store_true")
    parser.add_argument("--epochs", type=int, default=None, help="default: train_cnn's")
    parser.add_argument("--seeds", type=int, default=5, help="digits splits to train on")
    args = parser.parse_args(argv)
    print(f"bench_conv: jax {jax.__version__}, torch {torch.__version__ if torch else 'not installed'}, "
          f"{os.cpu_count()} CPU(s), float32")
    fwd, both, err = conv_cases(args.rounds)
    refs = [r for r in ("lax NHWC", "torch") if r in both]
    _table(f"conv2d forward, N={N} C={C} {H}x{W}, {O} filters {K}x{K} same", fwd, refs, "fwd")
    _table("conv2d forward+backward (out, dx, dw)", both, refs, "both")
    print(f"  max relative difference course_lib vs lax: {err:.1e}")
    pool, perr = pool_cases(args.rounds)
    _table(f"max-pool 2x2 forward+backward, ({N}, {H}, {W}, {O})", pool,
           [r for r in ("lax.reduce_window", "torch") if r in pool], "pool")
    print(f"  max abs difference course_lib vs reduce_window: {perr:.1e}")
    summary = [("conv2d forward / lax NHWC", fwd["course_lib"] / fwd["lax NHWC"], 2.0),
               ("conv2d fwd+bwd / lax NHWC", both["course_lib"] / both["lax NHWC"], 1.0)]
    if "torch" in both:
        summary += [("conv2d fwd+bwd / torch", both["course_lib"] / both["torch"], 1.0),
                    ("  (lax NHWC fwd+bwd / torch: XLA's own conv)", both["lax NHWC"] / both["torch"],
                     None),
                    ("max-pool fwd+bwd / torch", pool["course_lib"] / pool["torch"], 0.7)]
    if not args.no_train:
        label = "train_cnn defaults" if args.epochs is None else f"{args.epochs} epochs"
        for refit in (False, True):
            fit = "training + validation (refit)" if refit else "training set only"
            print(f"\ndigits CNN ({label}), fitted on the {fit}, split and seed s = "
                  f"0..{args.seeds - 1}:")
            print(f"  {'s':>3s}{'wall s':>9s}{'CPU s':>8s}{'test acc':>10s}")
            accs = []
            for s in range(args.seeds):
                wall, cpu, acc = train_case(args.epochs, seed=s, refit=refit)
                accs.append(acc)
                note = "  (first: a cold start, includes every compilation)" if s == 0 and not refit \
                    else ""
                print(f"  {s:>3d}{wall:>9.2f}{cpu:>8.2f}{acc:>10.4f}{note}")
                if s == 0 and not refit:
                    summary.append(("digits CNN first (cold) run, wall s", wall, 2.0))
                if s == 0:
                    summary.append((f"digits CNN split 0 test acc ({'refit' if refit else 'train only'})",
                                    acc, -0.985))
            print(f"  test accuracy mean {np.mean(accs):.4f}, min {np.min(accs):.4f} over "
                  f"{args.seeds} splits")
    print("\ntargets (issue 5):")
    for name, value, target in summary:
        if target is None:
            print(f"  {name:<52s}{value:>8.3f}")
        elif target < 0:
            print(f"  {name:<52s}{value:>8.4f}   target >= {-target:.3f}   "
                  f"{'met' if value >= -target else 'NOT met'}")
        else:
            print(f"  {name:<52s}{value:>8.3f}   target <= {target:.1f}     "
                  f"{'met' if value <= target else 'NOT met'}")
    load = os.getloadavg()[0]
    print(f"\n1-minute load average: {load:.2f} on {os.cpu_count()} CPU(s)")
    if load > (os.cpu_count() or 1):
        print("WARNING: the machine was busy: wall times are inflated, PyTorch's most of all (its "
              "OpenMP threads spin and wait for CPUs), so its ratios mean little; rerun idle")
    return 0


if __name__ == "__main__":
    sys.exit(main())
