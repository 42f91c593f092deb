"""Whole-course budget: execute every chapter notebook and every solution notebook, report total and slowest.

    python benchmarks/bench_course.py                 # notebooks/*.ipynb and solutions/*/*.ipynb
    python benchmarks/bench_course.py --warm          # second pass with the cache the first pass filled
    python benchmarks/bench_course.py --cache-dir D   # use (and fill) an existing compile cache D

Each notebook runs once, in a fresh kernel, as a copy (the files are never modified): the execution
and measurement are :func:`bench_notebooks.run_once` (nbclient, the course's JAX settings, JIT compile
time from ``jax.monitoring`` spans). All notebooks of one pass share one JAX persistent compilation
cache; by default a new empty temporary directory, i.e. what a fresh CI machine pays. ``wall s``
excludes the kernel start-up, shown as ``kernel s``; the course total is the sum of both, since a
student (or CI) pays both. The target for the whole course is <= 8 minutes on 2 CPU cores.
"""
from __future__ import annotations

import argparse
import os
import pathlib
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from bench_notebooks import run_once  # noqa: E402

TARGET_S = 8 * 60


def course_notebooks() -> list[pathlib.Path]:
    return sorted((ROOT / "notebooks").glob("*.ipynb")) + sorted((ROOT / "solutions").glob("*/*.ipynb"))


def run_pass(paths, cache_dir: str, timeout: int, label: str):
    rows, failed = [], []
    for path in paths:
        name = str(path.relative_to(ROOT))
        t0 = time.perf_counter()
        try:
            s = run_once(path, cache_dir, timeout)
        except Exception as exc:  # report and go on with the others
            failed.append(name)
            print(f"FAILED {name} ({label}): {type(exc).__name__}: {str(exc)[:300]}", file=sys.stderr)
            continue
        total = time.perf_counter() - t0
        rows.append({"name": name, "pass": label, "total": total, **s})
    return rows, failed


def print_table(rows) -> None:
    header = ("notebook", "pass", "total s", "wall s", "kernel s", "cpu s", "compile s", "compiles")
    body = [(r["name"], r["pass"], f"{r['total']:.1f}", f"{r['wall']:.1f}", f"{r['kernel']:.1f}",
             f"{r['cpu']:.1f}", f"{r['compile']:.2f}", str(r["compiles"])) for r in rows]
    widths = [max(len(x[i]) for x in body + [header]) for i in range(len(header))]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths))
    print(line)
    print("-" * len(line))
    for b in body:
        print("  ".join(c.ljust(w) for c, w in zip(b, widths)))


def summary(rows, label: str) -> None:
    sel = [r for r in rows if r["pass"] == label]
    if not sel:
        return
    total = sum(r["total"] for r in sel)
    chapters = sum(r["total"] for r in sel if r["name"].startswith("notebooks/"))
    slowest = sorted(sel, key=lambda r: -r["total"])[:3]
    verdict = "within" if total <= TARGET_S else "OVER"
    print(f"\n[{label}] whole course: {len(sel)} notebooks, {total:.1f} s = {total / 60:.2f} min "
          f"(chapters {chapters:.1f} s, solutions {total - chapters:.1f} s); {verdict} the {TARGET_S // 60}-minute target")
    print(f"[{label}] slowest: " + ", ".join(f"{r['name']} {r['total']:.1f} s" for r in slowest))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    parser.add_argument("--warm", action="store_true", help="run a second pass with the filled cache")
    parser.add_argument("--cache-dir", type=pathlib.Path, default=None,
                        help="compile cache to use (default: a new empty temporary directory)")
    args = parser.parse_args(argv)
    paths = course_notebooks()
    if not paths:
        print("no notebooks found")
        return 0
    with tempfile.TemporaryDirectory(prefix="jaxcache-course-") as tmp:
        cache_dir = str(args.cache_dir) if args.cache_dir else tmp
        rows, failed = run_pass(paths, cache_dir, args.timeout, "cold" if args.cache_dir is None else "given")
        if args.warm:
            more, failed2 = run_pass(paths, cache_dir, args.timeout, "warm")
            rows += more
            failed += failed2
    print_table(rows)
    for label in ("cold", "given", "warm"):
        summary(rows, label)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\n1-minute load average at the end: {load:.1f} on {os.cpu_count()} cores (times scale with it)")
    if failed:
        print(f"{len(failed)} notebook(s) failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
