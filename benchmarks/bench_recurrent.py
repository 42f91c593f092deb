"""Benchmark: course_lib.recurrent LSTM/GRU/RNN layers (lax.scan + hand-written BPTT) vs jax.grad
of a plain lax.scan cell, and (optionally) PyTorch's nn.LSTM / nn.GRU / nn.RNN.

    .venv/bin/python benchmarks/bench_recurrent.py [--rounds 30]

Case (float32, CPU): batch 32, 50 steps, input 16, hidden 64; forward + backward (gradients of
sum(outputs) w.r.t. all weights and the inputs). Implementations are interleaved round by round, so
a busy machine slows all of them alike; in a round each implementation gets one untimed call and
then ``--inner`` timed ones, because the call right after another implementation pays for it
(measured: a JAX call right after a PyTorch call took 14 ms instead of 6, with PyTorch's OpenMP
threads still spinning in the process CPU time and caches cold), which would charge whichever row
comes after torch. The table reports the median per call, the process CPU
time per call, the ratio to PyTorch (targets: LSTM <= 1.0, GRU <= 0.4) and the XLA compile time of
each jitted function (``jitted.lower(...).compile()``, tracing excluded; target <= 0.7 s), wall and
process CPU seconds. Every compile is cold: the persistent compilation cache is switched off in
this process (``jax_enable_compilation_cache=False``), whatever JAX_COMPILATION_CACHE_DIR says, so
no row reads an executable compiled by an earlier run; all compiles run before the first PyTorch
call. Compile times move by +-40% with the load of a shared machine: compare rows of one run.
PyTorch
is a benchmark-only extra (torch==2.13.0); "/ torch" is the ratio to its default on this machine
(2 threads, the issue's target), "/ torch1" to torch with 1 thread, which a loaded machine slows
far less (2 spinning OpenMP threads on 2 busy cores). Its rows are skipped when it is not
installed.
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
from jax import lax  # noqa: E402

jax.config.update("jax_enable_compilation_cache", False)     # cold compiles for every row

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from course_lib import recurrent as R  # noqa: E402

B, T, D, H = 32, 50, 16, 64


def course_fn(kind):
    def loss(p, xs):
        return jnp.sum(R.run(kind, p, xs)[0])
    return jax.jit(jax.grad(loss, argnums=(0, 1)))


def autodiff_fn(kind):
    """jax.grad through a plain lax.scan of the library's step (no hand-written backward)."""
    step = {"lstm": R._lstm_step, "gru": R._gru_step, "rnn": R._rnn_step}[kind]

    def loss(p, xs):
        h0 = jnp.zeros((B, H))
        carry0 = (h0, h0) if kind == "lstm" else h0

        def body(carry, x):
            new = step(p, carry, x)
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--inner", type=int, default=3, help="timed calls per implementation and round")
    args = parser.parse_args()
    try:
        import torch
        torch.set_num_threads(2)
    except ImportError:
        torch = None
    xs = jnp.asarray(np.random.default_rng(0).standard_normal((B, T, D)).astype(np.float32))
    rows = []
    kinds = ("lstm", "gru", "rnn")
    params = {kind: R.init(kind, D, H) for kind in kinds}
    # All compiles first, before any PyTorch call: its OpenMP threads keep spinning after a call
    # and would slow XLA's (multi-threaded) compiler for whichever row comes next.
    impls = {kind: {"course_lib (scan + hand-written BPTT)": course_fn(kind),
                    "jax.grad of a plain lax.scan": autodiff_fn(kind)} for kind in kinds}
    compiles = {kind: {name: timed_compile(fn, params[kind], xs) for name, fn in impls[kind].items()}
                for kind in kinds}
    for kind in kinds:
        p = params[kind]
        compile_s = compiles[kind]
        calls = {name: (lambda fn=fn, p=p: jax.block_until_ready(fn(p, xs)))
                 for name, fn in impls[kind].items()}
        if torch is not None:
            mod = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[kind](D, H, batch_first=True)
            x_t = torch.tensor(np.asarray(xs), requires_grad=True)

            for threads in (2, 1):
                def torch_call(mod=mod, x_t=x_t, threads=threads):
                    torch.set_num_threads(threads)
                    mod.zero_grad()
                    x_t.grad = None
                    out, _ = mod(x_t)
                    out.sum().backward()
                name = f"torch.nn.{kind.upper()} ({threads} thread{'s' if threads > 1 else ''})"
                calls[name] = torch_call
                compile_s[name] = (float("nan"), float("nan"))
        times = {name: [] for name in calls}
        cpu = {name: 0.0 for name in calls}
        for name, call in calls.items():
            call()                                           # warm-up
        for _ in range(args.rounds):
            for name, call in calls.items():
                call()                      # untimed: absorbs the previous implementation's traces
                for _ in range(args.inner):  # (PyTorch's OpenMP threads still spinning, cold caches)
                    t0, c0 = time.perf_counter(), time.process_time()
                    call()
                    times[name].append(time.perf_counter() - t0)
                    cpu[name] += time.process_time() - c0
        ref, ref1 = ((np.median(times[f"torch.nn.{kind.upper()} (2 threads)"]),
                      np.median(times[f"torch.nn.{kind.upper()} (1 thread)"])) if torch is not None
                     else (float("nan"), float("nan")))
        for name in calls:
            med = float(np.median(times[name]))
            rows.append((kind.upper(), name, med * 1e3, cpu[name] / len(times[name]) * 1e3, med / ref,
                         med / ref1, compile_s[name]))
    print(f"recurrent layers, forward+backward, B={B} T={T} D={D} H={H}, float32, median of "
          f"{args.rounds} interleaved rounds x {args.inner} timed calls (after 1 untimed call each)")
    print(f"load average at the end: {os.getloadavg()[0]:.2f}; compile = cold XLA compile "
          f"(persistent cache off), lower().compile() wall / CPU seconds")
    print(f"{'cell':5s} {'implementation':40s} {'ms/call':>8s} {'cpu ms':>8s} {'/ torch':>8s} "
          f"{'/ torch1':>8s} {'compile s':>10s} {'cpu s':>6s}")
    for kind, name, ms, cpu_ms, ratio, ratio1, (comp, comp_cpu) in rows:
        print(f"{kind:5s} {name:40s} {ms:8.2f} {cpu_ms:8.2f} {ratio:8.2f} {ratio1:8.2f} {comp:10.2f} "
              f"{comp_cpu:6.2f}")


if __name__ == "__main__":
    main()
