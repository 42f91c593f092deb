"""Benchmark: course_lib's LSTM/GRU/RNN layers, the fast wing (course_lib.fast.recurrent) and the
reference (course_lib.recurrent: a lax.scan over the step functions, BPTT over the step backwards),
vs jax.grad of a plain lax.scan of the reference's step, and (optionally) PyTorch's nn.LSTM / nn.GRU /
nn.RNN.

    .venv/bin/python benchmarks/bench_recurrent.py [--rounds 5] [--calls 30] [--sweep]

Case (float32, CPU): batch 32, 50 steps, input 16, hidden 64; forward + backward (gradients of
sum(outputs) w.r.t. all weights and the inputs). Every implementation runs in its OWN process:
round after round (``--rounds``), one fresh process per implementation, the order rotated every
round, times ``--calls`` calls of each cell after two untimed ones. ms/call is the median over the
rounds of each process's median; every ratio is the median over the rounds of that round's ratio
(the processes of a round run back to back, so a drift of the shared machine's speed cancels out).
Why processes: PyTorch's OpenMP threads and XLA's thread pools keep spinning for a while after a
call, and in one process whichever library runs next loses one of the 2 cores to them (measured:
a JAX call right after a PyTorch call took 14 ms instead of 6). The fast wing's process opts in to
two CPU devices (``course_lib.fast.use_cpu_cores(2)``) and splits a large batch over them, as PyTorch
splits its products over its threads; the row "on one CPU device" is the fast wing without that
opt-in (JAX's default), and ``--sweep`` shows where the split pays (it sets
``course_lib.fast.recurrent.PARALLEL_WORK``). Targets (fast wing): LSTM <= 1.0 and GRU <= 0.4 times
PyTorch; compile <= 0.7 s. The compile columns are the XLA compile of each jitted function
(``jitted.lower(...).compile()``, tracing excluded), wall and process CPU seconds, cold: the
persistent compilation cache is switched off (``jax_enable_compilation_cache=False``), whatever
JAX_COMPILATION_CACHE_DIR says; a tiny function compiled first in each process takes XLA's one-time
start-up. PyTorch is a benchmark-only extra (torch==2.13.0); "/ torch" is
the ratio to its default on this machine (2 threads, the issue's target), "/ torch1" to torch with
1 thread. Its rows are skipped when it is not installed.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
if sys.argv[1:3] == ["--child", "fast"] or "--sweep" in sys.argv:     # before JAX starts
    from course_lib import fast
    fast.use_cpu_cores(2)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax import lax  # noqa: E402

jax.config.update("jax_enable_compilation_cache", False)     # cold compiles for every row

from _rounds import median_times, round_ratio, run_rounds  # noqa: E402
from course_lib import recurrent as R  # noqa: E402
from course_lib.fast import recurrent as F  # noqa: E402

B, T, D, H = 32, 50, 16, 64


def course_fn(kind, run=F.run):
    def loss(p, xs):
        return jnp.sum(run(kind, p, xs)[0])
    return jax.jit(jax.grad(loss, argnums=(0, 1)))


def autodiff_fn(kind):
    """jax.grad through a plain lax.scan of the reference's step forward (no hand-written backward)."""
    step = R.STEP_FORWARD[kind]

    def loss(p, xs):
        h0 = jnp.zeros((B, H))
        carry0 = (h0, h0) if kind == "lstm" else h0

        def body(carry, x):
            new, _ = step(x, carry, p)
            return new, (new[0] if kind == "lstm" else new)
        _, hs = lax.scan(body, carry0, jnp.swapaxes(xs, 0, 1))
        return jnp.sum(hs)
    return jax.jit(jax.grad(loss, argnums=(0, 1)))


def timed_compile(fn, *args):
    lowered = fn.lower(*args)                    # tracing + lowering, not counted
    t0, c0 = time.perf_counter(), time.process_time()
    lowered.compile()
    seconds = (time.perf_counter() - t0, time.process_time() - c0)
    jax.block_until_ready(fn(*args))             # the jit cache compiles once more for the call
    return seconds


KINDS = ("lstm", "gru", "rnn")
NAMES = {"fast": "course_lib.fast (2 CPU devices)", "fast1": "course_lib.fast on one CPU device",
         "reference": "course_lib.recurrent (the reference)",
         "autodiff": "jax.grad of a plain lax.scan",
         "torch2": "torch.nn.{} (2 threads)", "torch1": "torch.nn.{} (1 thread)"}
HAVE_TORCH = importlib.util.find_spec("torch") is not None   # imported by the torch processes only
IMPLS = ("fast", "fast1", "reference", "autodiff") + (("torch2", "torch1") if HAVE_TORCH else ())


def _child(impl: str, calls: int) -> None:
    """Runs in a fresh process: prints {kind: [median wall s, median CPU s, compile wall s, compile
    CPU s]} as JSON for one implementation."""
    xs = np.random.default_rng(0).standard_normal((B, T, D)).astype(np.float32)
    out = {}
    funcs, compiles = {}, {}
    if impl.startswith("torch"):
        import torch
        torch.set_num_threads(int(impl[-1]))
        torch.manual_seed(0)
        x_t = torch.tensor(xs, requires_grad=True)
        for kind in KINDS:
            cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[kind]
            mod = cls(D, H, batch_first=True)

            def call(mod=mod):
                mod.zero_grad()
                x_t.grad = None
                o, _ = mod(x_t)
                o.sum().backward()
            funcs[kind], compiles[kind] = call, (float("nan"), float("nan"))
    else:
        xj = jnp.asarray(xs)
        # XLA's one-time start-up in a process is not a cost of the functions compiled below
        jax.jit(lambda a: a * 2 + 1).lower(xj).compile()
        for kind in KINDS:
            p = R.init(kind, D, H)
            fn = (autodiff_fn(kind) if impl == "autodiff"
                  else course_fn(kind, R.run if impl == "reference" else F.run))
            compiles[kind] = timed_compile(fn, p, xj)
            funcs[kind] = lambda fn=fn, p=p: jax.block_until_ready(fn(p, xj))
    for kind, call in funcs.items():
        out[kind] = [*median_times(call, calls), *compiles[kind]]
    print(json.dumps(out))


def sweep(calls: int) -> None:
    """Forward+backward of the fast wing's layers with the batch split over the CPU devices against
    kept on one device, over a grid of sizes (T=50, D=16), in this process: where the split pays
    sets ``course_lib.fast.recurrent.PARALLEL_WORK`` (the forward multiply-adds printed as "work")."""
    n = len(jax.devices("cpu"))
    print(f"{n} CPU devices; ms per forward+backward call, median of {calls} calls; T=50, D=16")
    saved = F.PARALLEL_WORK
    print(f"{'cell':5s} {'H':>4s} {'B':>4s} {'work (M)':>9s} {'one device':>11s} {'split':>8s} {'ratio':>6s}")
    try:
        for kind in KINDS:
            for hidden in (16, 64, 128):
                for batch in (8, 16, 32, 64):
                    xs = jnp.asarray(np.random.default_rng(0).standard_normal((batch, 50, 16)), jnp.float32)
                    p = R.init(kind, 16, hidden)
                    ms = []
                    for threshold in (float("inf"), 0.0):
                        F.PARALLEL_WORK = threshold
                        F._run.clear_cache()
                        fn = course_fn(kind)
                        ms.append(median_times(lambda: jax.block_until_ready(fn(p, xs)), calls)[0] * 1e3)
                    work = 50 * batch * R.GATES[kind] * hidden * (hidden + 16) / 1e6
                    print(f"{kind.upper():5s} {hidden:4d} {batch:4d} {work:9.1f} {ms[0]:11.2f} {ms[1]:8.2f} "
                          f"{ms[1] / ms[0]:6.2f}", flush=True)
    finally:
        F.PARALLEL_WORK = saved
        F._run.clear_cache()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="processes per implementation")
    parser.add_argument("--calls", type=int, default=30, help="timed calls per cell and process")
    parser.add_argument("--sweep", action="store_true",
                        help="batch split over the CPU devices vs one device, over a grid of sizes")
    parser.add_argument("--child", choices=IMPLS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.calls)
        return
    if args.sweep:
        sweep(args.calls)
        return
    per = {(kind, impl): [res[kind] for res in results]       # [wall, cpu, compile, compile cpu]
           for impl, results in run_rounds(__file__, IMPLS, args.rounds, ("--calls", args.calls)).items()
           for kind in KINDS}

    def ratio(kind, impl, ref):
        if (kind, ref) not in per:
            return float("nan")
        return round_ratio([a[0] for a in per[(kind, impl)]], [b[0] for b in per[(kind, ref)]])

    print(f"recurrent layers, forward+backward, B={B} T={T} D={D} H={H}, float32; {args.rounds} rounds x "
          f"one process per implementation x {args.calls} timed calls per cell (after 2 untimed)")
    print(f"load average at the end: {os.getloadavg()[0]:.2f}; compile = cold XLA compile "
          f"(persistent cache off), lower().compile() wall / CPU seconds, median over the rounds")
    print(f"{'cell':5s} {'implementation':40s} {'ms/call':>8s} {'cpu ms':>8s} {'/ torch':>8s} "
          f"{'/ torch1':>8s} {'compile s':>10s} {'cpu s':>6s}")
    for kind in KINDS:
        for impl in IMPLS:
            v = np.array(per[(kind, impl)])
            ms, cpu_ms, comp, comp_cpu = np.median(v, axis=0) * [1e3, 1e3, 1, 1]
            print(f"{kind.upper():5s} {NAMES[impl].format(kind.upper()):40s} {ms:8.2f} {cpu_ms:8.2f} "
                  f"{ratio(kind, impl, 'torch2'):8.2f} {ratio(kind, impl, 'torch1'):8.2f} {comp:10.2f} "
                  f"{comp_cpu:6.2f}")
    print("targets (the fast wing, 2 CPU devices): LSTM <= 1.0 and GRU <= 0.4 x torch (2 threads); "
          "compile <= 0.7 s. The reference is not held to a speed target.")


if __name__ == "__main__":
    main()
