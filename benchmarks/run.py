"""Run every benchmark script in this folder and print their tables.

    python benchmarks/run.py                 # all benchmarks/bench_*.py, in name order
    python benchmarks/run.py widgets notebooks   # only bench_widgets.py and bench_notebooks.py
    python benchmarks/run.py --list          # names only

Each ``bench_<topic>.py`` is a standalone script that prints a table (see benchmarks/README.md); this
runner starts each one in its own process (so one benchmark's JIT cache, threads or imports do not
colour another's numbers), with the course's environment (CPU JAX, the persistent compile cache of
the Makefile unless already set), streams its output, and exits non-zero if any benchmark failed.
"""
from __future__ import annotations

import argparse
import os
import pathlib
import subprocess
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent


def discover(names=()) -> list[pathlib.Path]:
    scripts = sorted(HERE.glob("bench_*.py"))
    if names:
        wanted = {n.removeprefix("bench_").removesuffix(".py") for n in names}
        unknown = wanted - {s.stem.removeprefix("bench_") for s in scripts}
        if unknown:
            known = ", ".join(s.stem.removeprefix("bench_") for s in scripts)
            raise SystemExit(f"error: unknown benchmark(s) {', '.join(sorted(unknown))}; known: {known}")
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in wanted]
    return scripts


def environment() -> dict:
    env = dict(os.environ)
    env.setdefault("JAX_PLATFORMS", "cpu")
    env.setdefault("JAX_COMPILATION_CACHE_DIR", str(ROOT / ".cache" / "jax"))
    env.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    env.setdefault("PYTHONHASHSEED", "0")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    env.setdefault("MPLBACKEND", "Agg")
    return env


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="benchmarks to run (topic names, e.g. widgets); default all")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = parser.parse_args(argv)
    scripts = discover(args.names)
    if args.list:
        for s in scripts:
            print(s.stem.removeprefix("bench_"))
        return 0
    failed = []
    for script in scripts:
        print(f"=== {script.relative_to(ROOT)} ===", flush=True)
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, str(script)], cwd=ROOT, env=environment())
        print(f"--- {script.name}: exit {proc.returncode}, {time.perf_counter() - start:.1f} s\n", flush=True)
        if proc.returncode != 0:
            failed.append(script.name)
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
