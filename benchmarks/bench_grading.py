"""Benchmark: grade 100 generated submissions of one chapter with `python -m grader` (2 workers),
with the operating-system sandbox and without it (--no-sandbox), and what one sandbox costs.

    .venv/bin/python benchmarks/bench_grading.py [--n 100] [--jobs 2] [--assignment 03_neurons_and_activations]
                                                 [--modes sandbox,no-sandbox] [--startup 5]
    .venv/bin/python benchmarks/bench_grading.py --scheduler [ADDRESS] [--n 30] [--n-small 6] [--rounds 2] [--idle 60]

Submissions are built from the chapter-03 student copy with a realistic mix: correct answers written
in different styles (jax.numpy, numpy, naive formulas), partly wrong answers, unanswered copies,
code that raises, and two infinite loops. The first table gives, per mode, the wall time (target:
<= 120 s for 100 submissions with --jobs 2 on 2 cores), the CPU time of the grader and everything
it started (which other load on the machine hardly inflates) and the status counts. The second
table splits the sandbox's cost: starting it (bwrap, Python, importing JAX: once per grading thread,
since grader.sandbox.ZygotePool hands it from one submission to the next) and each child forked in
it (per submission, one for the visible tests and one per task's hidden tests).

With ``--scheduler``, the benchmark instead grades the same submissions locally and on a Dask
cluster (grader.cluster; a LocalCluster of 2 worker processes unless an address is given), in paired
rounds at two sizes, checks that both gradebooks are identical, and prints the cluster path's cost
per submission against local (the slope between the sizes, CPU and wall; target: <= 0.2 s per
submission) and its fixed cost per run. Dask's own background work (heartbeats, monitors: CPU per
second of a run, whatever it grades) is measured on the idle cluster first; on a loaded machine a
run lasts longer and pays more of it, so the slope is also printed net of it.
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
sys.path.insert(0, str(REPO))

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


def make_submissions(folder: pathlib.Path, n: int, mix: str = "realistic") -> None:
    """``mix``: "realistic" (the mix above), or "numpy": every submission correct in NumPy style, the
    cheapest that still runs every test in the sandbox (0.2 s each): what the cluster path adds is then
    not buried in the noise of compiling and timing out."""
    plan = (["good"] * 35 + ["numpy"] * 25 + ["naive"] * 25 + ["unanswered"] * 10 + ["raises"] * 3
            + ["loop"] * 2) if mix == "realistic" else ["numpy"]
    for i in range(n):
        kind = plan[i * len(plan) // n]
        if kind == "unanswered":
            nb = json.loads(fx.STUDENT_COPY.read_text())
        else:
            spec = {"good": {}, "numpy": NUMPY_STYLE, "naive": NAIVE, "raises": RAISES, "loop": LOOPS}[kind]
            nb = fx.build(kind, dict(spec))
        (folder / f"student{i:03d}_{kind}.ipynb").write_text(json.dumps(nb))


def _cpu_children() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _load() -> str:
    with open("/proc/loadavg") as f:
        return f.read().split()[0]


def grade_run(args, mode: str, tmp: pathlib.Path) -> list:
    subs = tmp / "submissions"
    if not subs.exists():
        subs.mkdir()
        make_submissions(subs, args.n, args.mix)
    out = tmp / f"out-{mode}"
    extra = ["--no-sandbox"] if mode == "no-sandbox" else []
    load0, t0, c0 = _load(), time.perf_counter(), _cpu_children()
    proc = subprocess.run([sys.executable, "-m", "grader", args.assignment, str(subs), "--out", str(out),
                           "--jobs", str(args.jobs), "--timeout", "20", "--quiet"] + extra,
                          cwd=REPO, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - t0, _cpu_children() - c0
    if proc.returncode != 0:
        raise SystemExit(proc.stdout[-2000:] + proc.stderr[-2000:])
    with open(out / "gradebook.csv") as f:
        statuses = collections.Counter(r["status"] for r in csv.DictReader(f))
    return [mode, args.n, args.jobs, wall, cpu, cpu / args.n, f"{load0}/{_load()}",
            ", ".join(f"{k} {v}" for k, v in sorted(statuses.items()))]


def _worker_cpu() -> float:
    """Run on each Dask worker: CPU s of the worker process and of its ended children (the sandboxes)."""
    import resource

    return sum(r.ru_utime + r.ru_stime for r in (resource.getrusage(resource.RUSAGE_SELF),
                                                 resource.getrusage(resource.RUSAGE_CHILDREN)))


def _self_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _idle_cpu_rate(client, own: bool, seconds: float) -> float:
    """CPU s per wall second that the idle cluster spends (heartbeats, monitors): the workers' and, for a
    LocalCluster, the scheduler's (this process); a run pays it for as long as it lasts."""
    if seconds <= 0:
        return 0.0
    w0, s0, t0 = client.run(_worker_cpu), _self_cpu(), time.perf_counter()
    time.sleep(seconds)
    w1, s1, wall = client.run(_worker_cpu), _self_cpu(), time.perf_counter() - t0
    return (sum(w1[w] - w0.get(w, 0.0) for w in w1) + (s1 - s0 if own else 0.0)) / wall


def _grading_cost(args, client, own: bool, mode: str, subs: pathlib.Path, out: pathlib.Path) -> dict:
    """Grade ``subs`` locally or on the cluster; wall and CPU (client, scheduler, workers, sandboxes)."""
    import re

    cmd = [sys.executable, "-m", "grader", args.assignment, str(subs), "--out", str(out), "--timeout", "20"]
    cmd += ["--scheduler", client.scheduler.address] if mode == "cluster" else ["--jobs", str(args.jobs)]
    w0 = client.run(_worker_cpu) if mode == "cluster" else {}
    s0, c0, t0 = _self_cpu(), _cpu_children(), time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    wall, client_cpu, sched_cpu = time.perf_counter() - t0, _cpu_children() - c0, _self_cpu() - s0
    if proc.returncode != 0:
        raise SystemExit(proc.stdout[-2000:] + proc.stderr[-2000:])
    workers = 0.0
    if mode == "cluster":
        w1 = client.run(_worker_cpu)
        workers = sum(w1[w] - w0.get(w, 0.0) for w in w1)
    warm = [float(x) for x in re.findall(r"source notebook checked in [\d.]+ s.*\(([\d.]+) CPU s\)", proc.stdout)]
    extra_warm = sum(warm) - (sum(warm) / len(warm) if warm else 0.0)  # every warm-up but one
    cpu = client_cpu + workers + (sched_cpu if own and mode == "cluster" else 0.0)
    return {"wall": wall, "cpu": cpu - extra_warm, "client": client_cpu, "sched": sched_cpu,
            "gradebook": (out / "gradebook.csv").read_text()}


def cluster_rounds(args, tmp: pathlib.Path) -> int:
    """Paired A/B: each round grades the same submissions locally (--jobs 2) and on the cluster, at two
    sizes (--n-small and --n submissions); the cluster path's cost per submission is the slope:
    ((cluster - local) at n - (cluster - local) at n-small) / (n - n-small). Fixed costs per run (the
    client importing Dask and connecting, each worker grading the source notebook once to fill its
    compile cache) cancel out of it and are shown separately. Dask's periodic work costs CPU per second
    of wall time, not per submission: the slope holds it in proportion to how much longer the larger
    run lasted, which a loaded machine inflates; the slope net of it (measured idle) is printed too.

    The cluster's CPU is the client's (the grader process), the scheduler's (this process, for the
    LocalCluster) and the workers' with their sandboxes (read on each worker before and after). Every
    worker's warm-up but one is left out (the workers report its CPU): a local run warms up once.
    """
    from distributed import Client, LocalCluster

    sizes = sorted({args.n_small, args.n})
    folders = {}
    for n in sizes:
        folders[n] = tmp / f"submissions-{n}"
        folders[n].mkdir()
        make_submissions(folders[n], n, args.mix)
    own = args.scheduler == "local"
    cluster = (LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                            silence_logs=50) if own else None)
    client = Client(cluster if own else args.scheduler, set_as_default=False)
    rows, slopes, wall_slopes, fixed, net = [], [], [], [], []
    try:
        background = _idle_cpu_rate(client, own, args.idle)
        for rnd in range(1, args.rounds + 1):
            diff = {}
            for n in sizes:
                run = {m: _grading_cost(args, client, own, m, folders[n], tmp / f"out-{m}-{n}-{rnd}")
                       for m in ("local", "cluster")}
                if run["local"]["gradebook"] != run["cluster"]["gradebook"]:
                    raise SystemExit(f"round {rnd}, {n} submissions: the cluster's gradebook differs from the local one")
                diff[n] = (run["cluster"]["cpu"] - run["local"]["cpu"], run["cluster"]["wall"] - run["local"]["wall"],
                           run["cluster"]["cpu"] - background * run["cluster"]["wall"] - run["local"]["cpu"])
                for m in ("local", "cluster"):
                    r = run[m]
                    rows.append([rnd, m, n, r["wall"], r["cpu"], r["cpu"] / n,
                                 r["client"] if m == "cluster" else float("nan"),
                                 r["sched"] if m == "cluster" and own else float("nan"), _load()])
            if len(sizes) == 2:
                lo, hi = sizes
                slopes.append((diff[hi][0] - diff[lo][0]) / (hi - lo))
                wall_slopes.append((diff[hi][1] - diff[lo][1]) / (hi - lo))
                fixed.append(diff[lo][0] - slopes[-1] * lo)
                net.append((diff[hi][2] - diff[lo][2]) / (hi - lo))
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    _table([("round", 6), ("mode", 9), ("subs", 6), ("wall s", 9), ("CPU s", 9), ("CPU s/sub", 11),
            ("client CPU s", 14), ("sched CPU s", 13), ("load", 7)], rows,
           ["{:<6}", "{:<9}", "{:>6}", "{:>9.1f}", "{:>9.1f}", "{:>11.2f}", "{:>14.2f}", "{:>13.2f}", "{:>7}"])
    print("CPU s: every warm-up but one left out (a local run warms up once; each worker does once per run). "
          "Gradebooks of each pair are identical.")
    if slopes:
        def span(v):
            v = sorted(v)
            return f"{v[len(v) // 2]:+.3f} s (rounds: {', '.join(f'{x:+.3f}' for x in v)})"

        print(f"\ncluster minus local, per submission (slope between {sizes[0]} and {sizes[1]} submissions):")
        print(f"  CPU:  {span(slopes)}   target: <= 0.2 s")
        print(f"  wall: {span(wall_slopes)}")
        print(f"fixed CPU per run of the cluster path (client start, scheduler, extra warm-up cost): {span(fixed)}")
        print(f"Dask's background CPU (scheduler and workers, measured idle for {args.idle:g} s): {background:.4f} CPU s "
              f"per second of a run's wall time; it grows with the run's length, not with its submissions.")
        print(f"  CPU net of that background, per submission (the cost of sending one): {span(net)}")
    return 0


def startup(args, mode: str) -> list:
    """One submission's sandbox: the cost of starting it (bwrap, Python, importing JAX: the zygote) and
    of each child forked in it (start XLA, run the cells, answer one call), with a warm compile cache."""
    import numpy as np

    from grader.sandbox import Limits, RemoteFunction, Sandbox

    cells = [{"id": "setup", "source": "import numpy as np\nimport jax\nimport jax.numpy as jnp"}]
    cells += [{"id": k, "source": v} for k, v in fx.GOOD.items()]
    forbid = ["course_lib.activations.sigmoid"]
    x = np.array([-1.0, 0.0, 2.0], np.float32)
    first, child_wall, zygote_cpu, child_cpu = [], [], [], []
    with tempfile.TemporaryDirectory(prefix="bench-sandbox-") as run:
        cache = pathlib.Path(run) / "cache"
        cache.mkdir()
        for i in range(args.startup + 1):  # the first one only fills the compile cache
            limits = Limits(timeout=60, sandbox=(mode == "sandbox"), cache_dir=cache)
            limits.run_dir = run
            sandbox = Sandbox(cells, forbid=forbid, limits=limits, trusted=(i == 0))
            fn = RemoteFunction(sandbox, "sigmoid")
            c0 = _cpu_children()
            try:
                t0 = time.perf_counter()
                fn(x)
                t1 = time.perf_counter()
                for key in "abc":
                    sandbox.use((key,), forbid)
                    fn(x)
                t2 = time.perf_counter()
                sandbox._end_child()
                zygote = sandbox.zygote
            finally:
                sandbox.close()
            total = _cpu_children() - c0  # the zygote's and its children's CPU, counted once bwrap is reaped
            if i:
                first.append(t1 - t0)
                child_wall.append((t2 - t1) / 3)
                child_cpu.extend(zygote.cpu.values())
                zygote_cpu.append(total - sum(zygote.cpu.values()))

    def median(values):
        return sorted(values)[len(values) // 2]

    return [mode, args.startup, median(first), median(zygote_cpu), median(child_wall), median(child_cpu), _load()]


def _table(header, rows, formats):
    print("".join(f"{h:>{w}}" if i else f"{h:<{w}}" for i, (h, w) in enumerate(header)))
    for r in rows:
        print("".join(fmt.format(v) for fmt, v in zip(formats, r)))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--assignment", default="03_neurons_and_activations")
    p.add_argument("--modes", default="sandbox,no-sandbox", help="comma-separated: sandbox, no-sandbox")
    p.add_argument("--startup", type=int, default=5, help="sandboxes started for the second table (0: skip)")
    p.add_argument("--scheduler", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help="compare local grading with grading on a Dask cluster, in paired rounds: this scheduler's, "
                        "or without ADDRESS a LocalCluster of 2 worker processes (1 thread each)")
    p.add_argument("--rounds", type=int, default=2, help="with --scheduler: paired rounds (default 2)")
    p.add_argument("--idle", type=float, default=60,
                   help="with --scheduler: seconds to measure the idle cluster's background CPU first (default 60)")
    p.add_argument("--n-small", type=int, default=6,
                   help="with --scheduler: the smaller size of each round (default 6); --n is the larger")
    p.add_argument("--mix", choices=("realistic", "numpy"), default="realistic",
                   help="submissions: the realistic mix (default), or all correct in NumPy style (cheap and "
                        "steady: isolates the cluster path's own cost per submission)")
    args = p.parse_args(argv)
    if args.scheduler:
        with tempfile.TemporaryDirectory(prefix="bench-grading-") as tmp:
            return cluster_rounds(args, pathlib.Path(tmp))
    modes = [m for m in args.modes.split(",") if m]
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-grading-") as tmp:
        for mode in modes:
            rows.append(grade_run(args, mode, pathlib.Path(tmp)))
    _table([("mode", 12), ("subs", 6), ("jobs", 6), ("wall s", 9), ("CPU s", 9), ("CPU s/sub", 11),
            ("load 1-min (start/end)", 24)], rows,
           ["{:<12}", "{:>6}", "{:>6}", "{:>9.1f}", "{:>9.1f}", "{:>11.2f}", "{:>24}"])
    for r in rows:
        print(f"  {r[0]} statuses: {r[7]}")
    print(f"target: <= {120 * args.n / 100:.0f} s wall for {args.n} submissions with --jobs 2 on 2 idle cores; "
          "wall time depends on other load, CPU s hardly does (CPU s / 2 ~ wall on 2 idle cores, plus timeouts).")
    if args.startup:
        print()
        srows = [startup(args, m) for m in modes]
        _table([("mode", 12), ("runs", 6), ("first answer s", 16), ("sandbox CPU s", 15), ("child s", 9),
                ("child CPU s", 13), ("load", 7)], srows,
               ["{:<12}", "{:>6}", "{:>16.2f}", "{:>15.2f}", "{:>9.2f}", "{:>13.2f}", "{:>7}"])
        print("first answer: start a submission's sandbox and fork its first child (wall); sandbox CPU: bwrap, Python "
              "and importing JAX once per grading thread; child: each process forked in it (one for the visible tests, "
              "one per task's hidden tests): start XLA, run the cells, answer a call (medians).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
