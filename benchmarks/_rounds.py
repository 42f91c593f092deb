"""Timing each implementation in its own process, round after round (used by bench_conv,
bench_recurrent and bench_nn).

Why: PyTorch's OpenMP threads and XLA's thread pools keep spinning for a while after a call, so in
one process whichever library runs next loses one of the machine's 2 cores. In a fresh process
each library has the machine to itself, as it has for a user. The processes of one round run back
to back, so a round's ratio is taken under one speed of the shared machine, whose speed drifts by
up to ~30 % over minutes; a ratio is then the median over the rounds.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np


def child_json(script: str, *args, cold_cache: bool = False):
    """Run ``python script *args`` in a fresh process and return the JSON it printed on its last
    line. ``cold_cache``: the process gets its own empty JAX_COMPILATION_CACHE_DIR (deleted after),
    so every compile in it is cold."""
    env = dict(os.environ)
    with tempfile.TemporaryDirectory() as cache:
        if cold_cache:
            env["JAX_COMPILATION_CACHE_DIR"] = cache
        text = subprocess.run([sys.executable, script, *map(str, args)], env=env,
                              capture_output=True, text=True, check=True).stdout
    return json.loads(text.strip().splitlines()[-1])


def run_rounds(script: str, impls, rounds: int, args=(), flag: str = "--child",
               cold_cache: bool = False) -> dict:
    """``{impl: [result of each round]}``: every round runs ``python script FLAG IMPL *args`` once
    for each implementation (the order rotated every round); a result is what :func:`child_json`
    returns."""
    impls = list(impls)
    out = {impl: [] for impl in impls}
    for r in range(rounds):
        for impl in impls[r % len(impls):] + impls[:r % len(impls)]:
            out[impl].append(child_json(script, flag, impl, *args, cold_cache=cold_cache))
    return out


def round_ratio(a, b) -> float:
    """Median over the rounds of ``a[r] / b[r]`` (two equally long lists of numbers)."""
    return float(np.median(np.asarray(a, float) / np.asarray(b, float)))


def median_times(call, calls: int, warmup: int = 2) -> tuple[float, float]:
    """(median wall s, median process CPU s) of ``calls`` calls of ``call()``, after ``warmup``
    untimed ones (a first call compiles)."""
    for _ in range(warmup):
        call()
    walls, cpus = [], []
    for _ in range(calls):
        t0, c0 = time.perf_counter(), time.process_time()
        call()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return float(np.median(walls)), float(np.median(cpus))
