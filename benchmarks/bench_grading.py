"""Benchmark: grade 100 generated submissions of one chapter with `python -m grader` (2 workers).

    .venv/bin/python benchmarks/bench_grading.py [--n 100] [--jobs 2] [--assignment 03_neurons_and_activations]

Submissions are built from the chapter-03 student copy with a realistic mix: correct answers written
in different styles (jax.numpy, numpy, naive formulas), partly wrong answers, unanswered copies,
code that raises, and two infinite loops. Prints a table with the wall time (target: <= 300 s for
100 submissions on 2 cores) and the status counts from the gradebook.
"""
from __future__ import annotations

import argparse
import collections
import csv
import json
import pathlib
import resource
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "grading"))

import make_fixtures as fx  # noqa: E402

NUMPY_STYLE = {
    "sigmoid": "def sigmoid(x):\n    x = np.asarray(x)\n    return (0.5 * (1 + np.tanh(0.5 * x))).astype(x.dtype)",
    "sigmoid_grad": "def sigmoid_grad(x):\n    s = 0.5 * (1 + np.tanh(0.5 * np.asarray(x)))\n    return s * (1 - s)",
    "relu_grad": "def relu_grad(x):\n    x = np.asarray(x)\n    return (x > 0).astype(x.dtype)",
    "leaky_relu_grad": "def leaky_relu_grad(x, alpha=0.01):\n    x = np.asarray(x)\n    return np.where(x > 0, 1.0, alpha).astype(x.dtype)",
    "softmax": "def softmax(x):\n    x = np.asarray(x)\n    e = np.exp(x - x.max(axis=-1, keepdims=True))\n    return e / e.sum(axis=-1, keepdims=True)",
}
NAIVE = {  # wrong on large inputs (hidden tests catch it)
    "sigmoid": "def sigmoid(x):\n    return jnp.exp(x) / (1 + jnp.exp(x))",
    "softmax": "def softmax(x):\n    e = jnp.exp(x)\n    return e / e.sum(axis=-1, keepdims=True)",
}
RAISES = {"softmax": "def softmax(x):\n    raise ValueError('todo')"}
LOOPS = {"relu_grad": "def relu_grad(x):\n    while True:\n        pass"}


def make_submissions(folder: pathlib.Path, n: int) -> None:
    plan = (["good"] * 35 + ["numpy"] * 25 + ["naive"] * 25 + ["unanswered"] * 10 + ["raises"] * 3
            + ["loop"] * 2)
    for i in range(n):
        kind = plan[i * len(plan) // n]
        if kind == "unanswered":
            nb = json.loads(fx.STUDENT_COPY.read_text())
        else:
            spec = {"good": {}, "numpy": NUMPY_STYLE, "naive": NAIVE, "raises": RAISES, "loop": LOOPS}[kind]
            nb = fx.build(kind, dict(spec))
        (folder / f"student{i:03d}_{kind}.ipynb").write_text(json.dumps(nb))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--assignment", default="03_neurons_and_activations")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-grading-") as tmp:
        tmp = pathlib.Path(tmp)
        subs = tmp / "submissions"
        subs.mkdir()
        make_submissions(subs, args.n)
        t0 = time.perf_counter()
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        proc = subprocess.run([sys.executable, "-m", "grader", args.assignment, str(subs), "--out", str(tmp / "out"),
                               "--jobs", str(args.jobs), "--cache", str(tmp / "cache"), "--timeout", "20"],
                              cwd=REPO, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime
        with open("/proc/loadavg") as f:
            load = f.read().split()[1]
        if proc.returncode != 0:
            print(proc.stdout[-2000:], proc.stderr[-2000:])
            return 1
        with open(tmp / "out" / "gradebook.csv") as f:
            rows = list(csv.DictReader(f))
        per = [float(line.split(" points in ")[1].split(" s")[0]) for line in proc.stdout.splitlines()
               if line.startswith("[") and " points in " in line]
    statuses = collections.Counter(r["status"] for r in rows)
    print(f"{'assignment':<28}{'subs':>5}{'jobs':>5}{'wall s':>8}{'CPU s':>8}{'CPU s/sub':>10}"
          f"{'mean wall s/sub':>16}{'max':>6}{'load avg':>9}{'target s':>9}")
    print(f"{args.assignment:<28}{args.n:>5}{args.jobs:>5}{wall:>8.1f}{cpu:>8.1f}{cpu / args.n:>10.2f}"
          f"{sum(per) / max(1, len(per)):>16.2f}{max(per, default=0):>6.1f}{load:>9}{300 * args.n / 100:>9.0f}")
    print("wall time depends on what else runs: CPU s / jobs is the time on idle cores (plus timeouts).")
    print("statuses: " + ", ".join(f"{k} {v}" for k, v in sorted(statuses.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
