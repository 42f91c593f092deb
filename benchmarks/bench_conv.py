"""Benchmark: course_lib.fast.conv (the fast wing) vs jax.lax and (optionally) PyTorch, side by side.

    .venv/bin/python benchmarks/bench_conv.py [--rounds 5] [--calls 30] [--no-train] [--init-seeds 8]
                                              [--baseline DIR]

``course_lib.conv`` is the plain reference a student reads (loops over kernel taps); what is timed
here is its fast wing, ``course_lib.fast.conv`` (same signatures, tested equal to the reference in
tests/test_fast_conv.py). ``--baseline DIR`` adds a fourth implementation: ``course_lib.conv`` of
an older checkout in DIR (e.g. ``git archive <rev> | tar -x -C DIR``), timed in the same rounds, so
a change of the fast wing is measured before and after in one run.

Every implementation is timed in its OWN process: round after round, one fresh process per
implementation (the order rotated every round) times ``--calls`` calls of every case after three
untimed ones. A table gives the median over the rounds of each process's median, and every ratio is
the median over the rounds of that round's ratio (processes of one round run back to back, so a
drift of the shared machine's speed cancels out). Why processes: PyTorch's OpenMP threads and XLA's
thread pools keep spinning for a while after a call, and in one process whoever runs next loses one
of the 2 cores (benchmarks/README.md).
PyTorch is an optional benchmark-only extra (``pip install torch==2.13.0``, run with 2 threads);
the course never needs it and its rows are skipped when it is not installed.

Cases (float32, CPU):
  conv   N=64, C=8, 28x28, 16 filters 3x3 "same": forward, and forward+backward (out, dx, dw)
  pool   2x2 max pooling of (64, 28, 28, 16): forward+backward
  train  digits CNN (train_cnn defaults, course_lib.fast.conv) on splits 0..--seeds-1, each with
         train_cnn seed = split seed, in a fresh process: wall and CPU time (the first run includes
         every compilation: the persistent compilation cache is pointed at a fresh empty folder, so
         it is a cold start; the cold figure is the minimum over --cold-repeats such processes,
         imports and data loading not timed) and test accuracy, reported as mean +- standard
         deviation over those runs. Two protocols: trained on the training set only, and refit on
         training + validation (the hyper-parameters having been chosen on validation before:
         notebooks/10_convolutional_networks.ipynb section 9). Beside them: the mean +- sd of split
         0's test accuracy over --init-seeds train_cnn seeds (initial weights, mini-batch order and
         dropout masks: the same recipe and images), to show how much of a one-run difference is
         luck, and an RBF SVM's split-0 accuracy as a measure of how hard that test set is.

The last lines print the targets that stand, each with met / NOT met, and the stretch goal.
"""
from __future__ import annotations

import argparse
import atexit
import functools
import importlib.util
import json
import os
import shutil
import subprocess
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

from _rounds import child_json, median_times, round_ratio, run_rounds  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")

N, H, W, C, O, K = 64, 28, 28, 8, 16, 3

HAVE_TORCH = importlib.util.find_spec("torch") is not None   # imported by the torch process only
IMPLS = ("course_lib", "lax NHWC", "lax NCHW") + (("torch",) if HAVE_TORCH else ())
POOL_NAMES = {"course_lib": "course_lib.fast", "lax NHWC": "lax.reduce_window", "torch": "torch",
              "baseline": "baseline"}
NAMES = {"course_lib": "course_lib.fast"}


def _course_lib(impl: str = "course_lib", baseline=None):
    """The module whose conv2d/max_pool2d/train_cnn are timed: ``course_lib.fast.conv`` of this
    checkout, or with impl "baseline" ``course_lib.conv`` of the checkout in ``baseline`` (whose
    course_lib must not have been imported yet in this process)."""
    import importlib
    if impl == "baseline":
        sys.path.insert(0, os.path.abspath(baseline))
        module = importlib.import_module("course_lib.conv")
        assert os.path.abspath(module.__file__).startswith(os.path.abspath(baseline)), module.__file__
        return module
    sys.path.insert(0, ROOT)
    return importlib.import_module("course_lib.fast.conv")


def _jax_call(f, *args):
    return lambda: jax.block_until_ready(f(*args))


def _fwd_bwd(f):
    def run(x, w, g):
        out, vjp = jax.vjp(f, x, w)
        return (out,) + vjp(g)
    return jax.jit(run)


def _pool_fwd_bwd(f):
    def run(x, g):
        out, vjp = jax.vjp(f, x)
        return out, vjp(g)[0]
    return jax.jit(run)


def _data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, H, W, C)).astype(np.float32)
    w = (rng.standard_normal((K, K, C, O)) * 0.1).astype(np.float32)
    g = rng.standard_normal((N, H, W, O)).astype(np.float32)
    rng = np.random.default_rng(1)
    px = rng.standard_normal((N, H, W, O)).astype(np.float32)
    pg = rng.standard_normal((N, H // 2, W // 2, O)).astype(np.float32)
    return x, w, g, px, pg


def _ours(x, w, mod=None):
    return (mod or _course_lib()).conv2d(x, w, padding="same")


def _lax_nhwc(x, w):
    return lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))


def _lax_nchw(x, w):
    return lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NCHW", "OIHW", "NCHW"))


def _pool_ours(x, mod=None):
    return (mod or _course_lib()).max_pool2d(x, 2)


def _pool_rw(x):
    return lax.reduce_window(x, -jnp.inf, lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")


def _calls(impl: str, baseline=None) -> dict:
    """Zero-argument functions of one implementation: "fwd", "both" (fwd+bwd) and, where it has
    one, "pool" (2x2 max-pool fwd+bwd)."""
    x, w, g, px, pg = _data()
    if impl == "torch":
        import torch
        torch.set_num_threads(2)
        xt = torch.tensor(x.transpose(0, 3, 1, 2).copy(), requires_grad=True)
        wt = torch.tensor(w.transpose(3, 2, 0, 1).copy(), requires_grad=True)
        gt = torch.tensor(g.transpose(0, 3, 1, 2).copy())
        pxt = torch.tensor(px.transpose(0, 3, 1, 2).copy(), requires_grad=True)
        pgt = torch.tensor(pg.transpose(0, 3, 1, 2).copy())

        def t_fwd():
            with torch.no_grad():
                torch.nn.functional.conv2d(xt, wt, padding=1)

        def t_both():
            xt.grad = wt.grad = None
            torch.nn.functional.conv2d(xt, wt, padding=1).backward(gt)

        def t_pool():
            pxt.grad = None
            torch.nn.functional.max_pool2d(pxt, 2).backward(pgt)

        return {"fwd": t_fwd, "both": t_both, "pool": t_pool}
    if impl == "lax NCHW":
        xn, wn, gn = (jnp.asarray(x.transpose(0, 3, 1, 2)), jnp.asarray(w.transpose(3, 2, 0, 1)),
                      jnp.asarray(g.transpose(0, 3, 1, 2)))
        return {"fwd": _jax_call(jax.jit(_lax_nchw), xn, wn),
                "both": _jax_call(_fwd_bwd(_lax_nchw), xn, wn, gn)}
    if impl in ("course_lib", "baseline"):
        mod = _course_lib(impl, baseline)
        f, pf = functools.partial(_ours, mod=mod), functools.partial(_pool_ours, mod=mod)
    else:
        f, pf = _lax_nhwc, _pool_rw
    xj, wj, gj, pxj, pgj = map(jnp.asarray, (x, w, g, px, pg))
    return {"fwd": _jax_call(jax.jit(f), xj, wj), "both": _jax_call(_fwd_bwd(f), xj, wj, gj),
            "pool": _jax_call(_pool_fwd_bwd(pf), pxj, pgj)}


def _child(impl: str, calls: int, baseline=None) -> None:
    """Runs in a fresh process: prints {case: [median wall s, median process CPU s]} as JSON."""
    funcs = _calls(impl, baseline)
    for f in funcs.values():        # compile every case before timing any
        f()
    print(json.dumps({case: median_times(f, calls) for case, f in funcs.items()}))


def time_isolated(rounds: int, calls: int, baseline=None) -> dict:
    """{case: {impl: [(wall, cpu) of each round]}}, every implementation in its own processes."""
    per: dict = {}
    impls = IMPLS + (("baseline",) if baseline else ())
    extra = ("--calls", calls) + (("--baseline", baseline) if baseline else ())
    for impl, results in run_rounds(__file__, impls, rounds, extra).items():
        for res in results:
            for case, wc in res.items():
                per.setdefault(case, {}).setdefault(impl, []).append(tuple(wc))
    return per


def same_numbers():
    """(max relative difference of course_lib.fast's conv fwd+bwd vs lax, max abs difference of
    the max-pool fwd+bwd vs reduce_window), computed in this process."""
    x, w, g, px, pg = _data()
    xj, wj, gj, pxj, pgj = map(jnp.asarray, (x, w, g, px, pg))
    ref, got = _fwd_bwd(_lax_nhwc)(xj, wj, gj), _fwd_bwd(_ours)(xj, wj, gj)
    err = max(float(jnp.max(jnp.abs(a - b)) / (jnp.max(jnp.abs(b)) + 1e-30)) for a, b in zip(got, ref))
    ref, got = _pool_fwd_bwd(_pool_rw)(pxj, pgj), _pool_fwd_bwd(_pool_ours)(pxj, pgj)
    return err, max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(got, ref))


def ratio(rows: dict, impl: str, ref: str, i: int = 0) -> float:
    """Median over the rounds of impl's time / ref's time in the same round (i=0 wall, 1 CPU)."""
    return round_ratio([a[i] for a in rows[impl]], [b[i] for b in rows[ref]])


def _train_in_child(epochs, seeds: int, only_first: bool = False):
    """[(refit, s, wall s, CPU s, test acc)] from a fresh process (a cold start: its first
    training compiles everything, with an empty persistent cache)."""
    args = ["--child-train", "first" if only_first else "all", "--seeds", seeds]
    if epochs is not None:
        args += ["--epochs", epochs]
    return [tuple(r) for r in child_json(__file__, *args)]


def _seed_spread_in_child(epochs, n: int):
    """[(refit, init seed, test acc, test images)] on split 0 for train_cnn seeds 0..n-1, from one
    fresh process."""
    args = ["--child-spread", n] + ([] if epochs is None else ["--epochs", epochs])
    return [tuple(r) for r in child_json(__file__, *args)]


@functools.lru_cache(maxsize=None)
def _digits_split(seed: int):
    """Split ``seed`` of the digits images (loaded once per process)."""
    sys.path.insert(0, ROOT)
    from course_lib import data

    X, y = data.load_digits(images=True)
    return data.train_val_test_split(np.asarray(X)[..., None], np.asarray(y), seed=seed)


def train_case(epochs, seed: int, refit: bool = False, init_seed=None):
    """Train on split ``seed`` (seeded init too) and predict its test set: (wall s, CPU s, accuracy).

    ``refit``: train on training + validation images. ``epochs=None``: train_cnn's default.
    ``init_seed``: train_cnn's seed (initial weights, mini-batch order, dropout masks) when it
    should differ from the split's. The first call in a process includes every compilation (the
    training step)."""
    fast = _course_lib()
    split = _digits_split(seed)
    X_fit, y_fit = split["X_train"], split["y_train"]
    if refit:
        X_fit = np.concatenate([X_fit, split["X_val"]])
        y_fit = np.concatenate([y_fit, split["y_val"]])
    kwargs = {} if epochs is None else {"epochs": epochs}
    c0, t0 = time.process_time(), time.perf_counter()
    params, _ = fast.train_cnn(X_fit, y_fit, seed=seed if init_seed is None else init_seed, **kwargs)
    acc = float(np.mean(fast.cnn_predict(params, split["X_test"]) == split["y_test"]))
    return time.perf_counter() - t0, time.process_time() - c0, acc


def svm_split0():
    """Test accuracy on split 0 of scikit-learn's RBF support-vector classifier (C=10, fitted on
    training + validation): a strong non-neural reference for what that one test set allows (269
    digits: one error is 0.37 %)."""
    from sklearn.svm import SVC

    sys.path.insert(0, ROOT)
    from course_lib import data
    X, y = data.load_digits()
    split = data.train_val_test_split(np.asarray(X), np.asarray(y), seed=0)
    X_fit = np.concatenate([split["X_train"], split["X_val"]])
    y_fit = np.concatenate([split["y_train"], split["y_val"]])
    model = SVC(C=10).fit(X_fit, y_fit)
    return float(np.mean(model.predict(split["X_test"]) == split["y_test"]))


def _table(title, rows, refs, names=NAMES):
    """rows: {impl: [(wall, cpu) per round]}; ms = median over rounds; ratios per round, then median."""
    print(f"\n{title}")
    print(f"  {'implementation':<20s}{'ms/call':>10s}"
          + "".join(f"{'/ ' + names.get(r, r):>20s}" for r in refs)
          + f"{'CPU ms/call':>14s}{'CPU / ' + names.get(refs[0], refs[0]):>24s}")
    for impl, wc in rows.items():
        wall = np.median([a[0] for a in wc]) * 1e3
        cpu = np.median([a[1] for a in wc]) * 1e3
        ratios = "".join(f"{ratio(rows, impl, r):>20.2f}" for r in refs)
        cpu_ratio = ratio(rows, impl, refs[0], 1)
        print(f"  {names.get(impl, impl):<20s}{wall:>10.2f}{ratios}{cpu:>14.2f}{cpu_ratio:>24.2f}")


def _mean_sd(values) -> str:
    v = np.asarray(values, float)
    return f"{v.mean():.4f} +- {v.std(ddof=1) if v.size > 1 else 0.0:.4f}"


def _print_training(args, summary):
    """Train the digits CNN in fresh processes; print per-split results and the seed spread."""
    label = "train_cnn defaults" if args.epochs is None else f"{args.epochs} epochs"
    runs = _train_in_child(args.epochs, args.seeds)
    colds = [runs[0][2]] + [_train_in_child(args.epochs, 1, only_first=True)[0][2]
                            for _ in range(args.cold_repeats - 1)]
    for refit in (False, True):
        fit = "training + validation (refit)" if refit else "training set only"
        print(f"\ndigits CNN ({label}, course_lib.fast.conv), fitted on the {fit}, split and seed "
              f"s = 0..{args.seeds - 1}:")
        print(f"  {'s':>3s}{'wall s':>9s}{'CPU s':>8s}{'test acc':>10s}")
        rows = [r for r in runs if r[0] == refit]
        for _, s, wall, cpu, acc in rows:
            note = ""
            if s == 0 and not refit:
                note = (f"  (first: a cold start in a fresh process, every compilation included; "
                        f"min of {len(colds)} such processes: {min(colds):.2f} s)")
            print(f"  {s:>3d}{wall:>9.2f}{cpu:>8.2f}{acc:>10.4f}{note}")
        accs = [r[4] for r in rows]
        print(f"  test accuracy mean +- sd over the {len(accs)} seeds: {_mean_sd(accs)}, "
              f"min {np.min(accs):.4f}")
        summary.append((f"digits CNN test acc, mean of {len(accs)} seeds "
                        f"({'refit' if refit else 'train only'}; sd {np.std(accs, ddof=1):.4f})",
                        float(np.mean(accs)), -0.985))
    summary.append((f"digits CNN first (cold) run, wall s (min of {len(colds)})", min(colds), 2.0))
    if args.init_seeds > 0:
        spread = _seed_spread_in_child(args.epochs, args.init_seeds)
        n_test = spread[0][3]
        print(f"\ndigits CNN ({label}), split 0, train_cnn seed i = 0..{args.init_seeds - 1} (initial "
              f"weights, mini-batch order, dropout masks), test errors of {n_test} digits:")
        for refit in (False, True):
            accs = np.array([a for r, _, a, _ in spread if r == refit])
            errs = np.rint((1 - accs) * n_test).astype(int).tolist()
            print(f"  {'refit' if refit else 'train only':<11s} errors {errs}: accuracy mean +- sd "
                  f"{_mean_sd(accs)}")
            summary.append((f"    (split 0 test acc, mean of {accs.size} seeds, "
                            f"{'refit' if refit else 'train'})", float(accs.mean()), None))
    summary.append(("    (split 0 test acc of an RBF SVM, refit)", svm_split0(), None))


def _print_targets(summary, stretch):
    """Each row: (name, value, target): target > 0 is an upper bound, < 0 a lower bound (-target),
    None a figure printed for context."""
    print("\ntargets that stand (issues 5 and 21):")
    for name, value, target in summary:
        if target is None:
            print(f"  {name:<60s}{value:>8.4g}")
        elif target < 0:
            print(f"  {name:<60s}{value:>8.4f}   target >= {-target:.3f}   "
                  f"{'met' if value >= -target else 'NOT met'}")
        else:
            print(f"  {name:<60s}{value:>8.3f}   target <= {target:.2f}    "
                  f"{'met' if value <= target else 'NOT met'}")
    for name, value, goal in stretch:
        print(f"  stretch goal (fast wing only): {name:<29s}{value:>8.3f}   goal <= {goal:.1f}      "
              f"{'reached' if value <= goal else 'not reached'}")
    print("  (retired: the plain reference is not held to any speed target, and no accuracy "
          "target rests on one seed of one split)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="processes per implementation")
    parser.add_argument("--calls", type=int, default=30, help="timed calls per case and process")
    parser.add_argument("--no-train", action="store_true")
    parser.add_argument("--epochs", type=int, default=None, help="default: train_cnn's")
    parser.add_argument("--seeds", type=int, default=5,
                        help="digits splits to train on, each with train_cnn seed = split seed")
    parser.add_argument("--cold-repeats", type=int, default=3,
                        help="fresh processes whose first CNN training is the cold start")
    parser.add_argument("--init-seeds", type=int, default=8,
                        help="train_cnn seeds to train on split 0 (the spread of its test accuracy "
                             "over seeds; 0: skip)")
    parser.add_argument("--baseline", metavar="DIR", default=None,
                        help="also time course_lib.conv of the checkout in DIR (before/after)")
    parser.add_argument("--child", choices=IMPLS + ("baseline",), help=argparse.SUPPRESS)
    parser.add_argument("--child-spread", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--child-train", choices=("all", "first"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child, args.calls, args.baseline)
        return 0
    if args.child_train:
        runs = [(refit, s) for refit in (False, True) for s in range(args.seeds)]
        out = [(refit, s) + train_case(args.epochs, seed=s, refit=refit)
               for refit, s in (runs[:1] if args.child_train == "first" else runs)]
        print(json.dumps(out))
        return 0
    if args.child_spread:
        n_test = len(_digits_split(0)["y_test"])
        out = [(refit, i, train_case(args.epochs, seed=0, refit=refit, init_seed=i)[2], n_test)
               for refit in (False, True) for i in range(args.child_spread)]
        print(json.dumps(out))
        return 0
    tv = "not installed"
    if HAVE_TORCH:
        tv = subprocess.run([sys.executable, "-c", "import torch; print(torch.__version__)"],
                            capture_output=True, text=True, check=True).stdout.strip()
    print(f"bench_conv: jax {jax.__version__}, torch {tv}, {os.cpu_count()} CPU(s), float32; "
          f"{args.rounds} rounds x one process per implementation x {args.calls} timed calls per case"
          + (f"; baseline: course_lib.conv of {args.baseline}" if args.baseline else ""))
    per = time_isolated(args.rounds, args.calls, args.baseline)
    fwd, both, pool = per["fwd"], per["both"], per["pool"]
    err, perr = same_numbers()
    refs = ["lax NHWC"] + (["torch"] if HAVE_TORCH else [])
    _table(f"conv2d forward, N={N} C={C} {H}x{W}, {O} filters {K}x{K} same", fwd, refs)
    _table("conv2d forward+backward (out, dx, dw)", both, refs)
    print(f"  max relative difference course_lib.fast vs lax: {err:.1e}")
    _table(f"max-pool 2x2 forward+backward, ({N}, {H}, {W}, {O})", pool, refs, POOL_NAMES)
    print(f"  max abs difference course_lib.fast vs reduce_window: {perr:.1e}")
    summary = [("fast conv2d forward / lax NHWC", ratio(fwd, "course_lib", "lax NHWC"), 2.0),
               ("fast conv2d fwd+bwd / lax NHWC", ratio(both, "course_lib", "lax NHWC"), 1.0)]
    stretch = []
    if HAVE_TORCH:
        summary += [("fast max-pool fwd+bwd / torch", ratio(pool, "course_lib", "torch"), 0.7),
                    ("  (fast conv2d fwd+bwd / torch)", ratio(both, "course_lib", "torch"), None),
                    ("  (lax NHWC fwd+bwd / torch: XLA's own conv)", ratio(both, "lax NHWC", "torch"),
                     None)]
        stretch.append(("conv2d fwd+bwd / torch", ratio(both, "course_lib", "torch"), 1.0))
    if args.baseline:
        for case, rows, name in (("both", both, "conv2d fwd+bwd"), ("pool", pool, "max-pool fwd+bwd")):
            for ref in ["lax NHWC"] + (["torch"] if HAVE_TORCH else []):
                before, after = ratio(rows, "baseline", ref), ratio(rows, "course_lib", ref)
                summary.append((f"{name} / {ref}: after {after:.3f} vs before {before:.3f}",
                                after / before, 1.0))
    if not args.no_train:
        _print_training(args, summary)
    _print_targets(summary, stretch)
    load = os.getloadavg()[0]
    print(f"\n1-minute load average: {load:.2f} on {os.cpu_count()} CPU(s)")
    if load > (os.cpu_count() or 1):
        print("WARNING: the machine was busy: wall times are inflated, PyTorch's most of all (its "
              "OpenMP threads spin and wait for CPUs), so its ratios mean little; rerun idle")
    return 0


if __name__ == "__main__":
    sys.exit(main())
