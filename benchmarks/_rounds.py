"""Timing each implementation in its own process, round after round (used by bench_conv and
bench_recurrent).

Why: PyTorch's OpenMP threads and XLA's thread pools keep spinning for a while after a call, so in
one process whichever library runs next loses one of the machine's 2 cores. In a fresh process
each library has the machine to itself, as it has for a user. The processes of one round run back
to back, so a round's ratio is taken under one speed of the shared machine, whose speed drifts by
up to ~30 % over minutes; a ratio is then the median over the rounds.
"""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np


def run_rounds(script: str, impls, rounds: int, args=()) -> dict:
    """``{impl: [result of each round]}``: every round runs ``python script --child IMPL *args`` once
    for each implementation (the order rotated every round); a result is the JSON the process
    printed on its last line."""
    impls = list(impls)
    out = {impl: [] for impl in impls}
    for r in range(rounds):
        for impl in impls[r % len(impls):] + impls[:r % len(impls)]:
            text = subprocess.run([sys.executable, script, "--child", impl, *map(str, args)],
                                  capture_output=True, text=True, check=True).stdout
            out[impl].append(json.loads(text.strip().splitlines()[-1]))
    return out


def round_ratio(a, b) -> float:
    """Median over the rounds of ``a[r] / b[r]`` (two equally long lists of numbers)."""
    return float(np.median(np.asarray(a, float) / np.asarray(b, float)))


def median_times(call, calls: int, warmup: int = 2) -> tuple[float, float]:
    """(median wall s, median process CPU s) of ``calls`` calls of ``call()``, after ``warmup``
    untimed ones (a first call compiles)."""
    import time
    for _ in range(warmup):
        call()
    walls, cpus = [], []
    for _ in range(calls):
        t0, c0 = time.perf_counter(), time.process_time()
        call()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return float(np.median(walls)), float(np.median(cpus))
