"""Notebook execution time and JIT compile time, each notebook in a fresh kernel, cold and warm cache.

    python benchmarks/bench_notebooks.py [notebooks/03_*.ipynb ...]   # default: every notebooks/*.ipynb
    python benchmarks/bench_notebooks.py --cells 3 notebooks/10_*.ipynb  # cold, the cells over 3 CPU s

For each notebook the script executes a copy (never the file itself) with nbclient in a fresh
kernel, twice, with JAX's persistent compilation cache pointed at a new empty temporary directory:
first **cold** (empty cache: every jitted function is traced, lowered and compiled by XLA), then
**warm** (same directory, now filled: XLA compiles are replaced by cache reads). The course's
settings apply (``JAX_PLATFORMS=cpu``, ``JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0``).

How compile time is measured (inside the kernel): a first cell, added to the copy, registers a
``jax.monitoring`` *time-span* listener before any notebook cell runs. JAX reports three spans for
every compilation: ``/jax/core/compile/jaxpr_trace_duration`` (tracing Python to a jaxpr),
``.../jaxpr_to_mlir_module_duration`` (lowering) and ``.../backend_compile_duration`` (XLA compile, or
the persistent-cache read that replaces it). Spans nest (tracing an outer ``jit`` traces the inner
ones), so the reported ``compile s`` is the length of the *union* of all spans, i.e. wall time
during which JAX was compiling, never double-counted; ``xla s`` is the union of backend spans
alone, ``compiles`` their count and ``cache hits`` the persistent-cache hits. ``cpu s`` is the
kernel process's CPU time over the same interval (all its threads, XLA's included): on a loaded
machine it grows much less than the wall time. ``wall s`` runs from
the start of that first cell to the end of the last notebook cell (kernel start-up, ~1 s, is
excluded and shown as ``kernel s``). ``kernel cpu s`` is the kernel's CPU time over its whole life
(start-up, imports and every cell: user + system, all threads, plus any child it waited for) and
``peak MB`` its peak resident memory (``ru_maxrss``, the kernel's high-water mark): what a hosted
JupyterLab must reserve per student (docs/deploy.md). The extra cells cost microseconds; they import
``jax``, which every notebook of the course does anyway in its first cell.

``--cells THRESHOLD`` runs each notebook once, cold, with a mark (process time, wall time) taken
before every cell, and lists the cells whose **CPU time** (the kernel process's, all threads) is at
least THRESHOLD seconds, with their wall time. CPU time is the criterion on a shared machine, where
wall time grows with the load; a cell over 3 s must show progress (``course_lib.progress``).
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import pathlib
import sys
import tempfile
import time

import nbformat
from nbclient import NotebookClient

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
from run_notebooks import ipc_config  # noqa: E402

SETUP = r"""
import time as _bench_time
_bench_t0 = _bench_time.time()
_bench_c0 = _bench_time.process_time()
import jax.monitoring as _bench_mon
_bench_spans, _bench_events = [], []
_bench_mon.register_event_time_span_listener(lambda e, s, t, **kw: _bench_spans.append((e, s, t)))
_bench_mon.register_event_listener(lambda e, **kw: _bench_events.append(e))
"""

REPORT = r"""
def _bench_union(spans):
    total, end = 0.0, float("-inf")
    for s, t in sorted(spans):
        if t > end:
            total += t - max(s, end)
            end = t
    return total
import json as _bench_json
import resource as _bench_resource
_bench_self = _bench_resource.getrusage(_bench_resource.RUSAGE_SELF)
_bench_kids = _bench_resource.getrusage(_bench_resource.RUSAGE_CHILDREN)
_bench_all = [(s, t) for e, s, t in _bench_spans if e.startswith("/jax/core/compile/")]
_bench_xla = [(s, t) for e, s, t in _bench_spans if e == "/jax/core/compile/backend_compile_duration"]
print("BENCH" + _bench_json.dumps({
    "wall": _bench_time.time() - _bench_t0,
    "cpu": _bench_time.process_time() - _bench_c0,
    "compile": _bench_union(_bench_all),
    "xla": _bench_union(_bench_xla),
    "compiles": len(_bench_xla),
    "cache_hits": sum(e == "/jax/compilation_cache/cache_hits" for e in _bench_events),
    "kernel_cpu": _bench_self.ru_utime + _bench_self.ru_stime + _bench_kids.ru_utime + _bench_kids.ru_stime,
    "peak_mb": max(_bench_self.ru_maxrss, _bench_kids.ru_maxrss) / 1024,
}))
"""


MARK = "_bench_marks.append(({cell!r}, _bench_time.time(), _bench_time.process_time()))"
MARKS_SETUP = "\n_bench_marks = []\n"
MARKS_REPORT = "\nprint('MARKS' + _bench_json.dumps(_bench_marks))\n"


def run_once(path: pathlib.Path, cache_dir: str, timeout: int, cells: bool = False) -> dict:
    nb = nbformat.read(path, as_version=4)
    nb = copy.deepcopy(nb)
    if cells:                                   # a mark before every code cell and after the last one
        marked = []
        for k, cell in enumerate(nb.cells):
            if cell.cell_type == "code":
                marked.append(nbformat.v4.new_code_cell(MARK.format(cell=cell.get("id") or str(k))))
            marked.append(cell)
        marked.append(nbformat.v4.new_code_cell(MARK.format(cell="end")))
        nb.cells = marked
    nb.cells.insert(0, nbformat.v4.new_code_cell(SETUP + (MARKS_SETUP if cells else "")))
    nb.cells.append(nbformat.v4.new_code_cell(REPORT + (MARKS_REPORT if cells else "")))
    os.environ.update({"JAX_PLATFORMS": "cpu", "JAX_COMPILATION_CACHE_DIR": cache_dir,
                       "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0", "PYTHONHASHSEED": "0",
                       "TF_CPP_MIN_LOG_LEVEL": "3"})
    with tempfile.TemporaryDirectory(prefix="kernel-") as runtime:
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                resources={"metadata": {"path": str(path.parent)}},
                                extra_arguments=["--HistoryManager.enabled=False"], config=ipc_config(runtime))
        client.kernel_manager_class = "jupyter_client.manager.KernelManager"
        t0 = time.perf_counter()
        client.execute(cwd=str(path.parent))
        total = time.perf_counter() - t0
    text = "".join(o.get("text", "") for o in nb.cells[-1].outputs if o.get("output_type") == "stream")
    stats = json.loads(text.split("BENCH", 1)[1].split("MARKS", 1)[0])
    stats["kernel"] = max(total - stats["wall"], 0.0)
    if cells:
        marks = json.loads(text.split("MARKS", 1)[1])
        source = {c.get("id") or str(k): c.source for k, c in enumerate(nb.cells)}
        stats["cells"] = [(cid, t1 - t0, c1 - c0, source.get(cid, "").strip().splitlines()[:1])
                          for (cid, t0, c0), (_, t1, c1) in zip(marks[:-1], marks[1:])]
    return stats


def slow_cells(paths, threshold: float, timeout: int) -> int:
    """Print, per notebook, the cells whose cold CPU time is at least ``threshold`` seconds."""
    failed = 0
    for path in paths:
        with tempfile.TemporaryDirectory(prefix="jaxcache-") as cache_dir:
            try:
                s = run_once(path, cache_dir, timeout, cells=True)
            except Exception as exc:
                failed += 1
                print(f"FAILED {path.name}: {type(exc).__name__}: {str(exc)[:500]}", file=sys.stderr)
                continue
        slow = [c for c in s["cells"] if c[2] >= threshold]
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(f"{path.name}: cold {s['cpu']:.1f} s CPU, {s['wall']:.1f} s wall (load {load:.1f}); "
              f"{len(slow)} cell(s) >= {threshold:g} s CPU")
        for cid, wall, cpu, first in slow:
            print(f"    {cid:12s} cpu {cpu:5.1f} s  wall {wall:5.1f} s   {(first or [''])[0][:70]}")
    return 1 if failed else 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=pathlib.Path)
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    parser.add_argument("--cells", type=float, default=None, metavar="THRESHOLD",
                        help="run cold once and list the cells with at least THRESHOLD CPU seconds")
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted((ROOT / "notebooks").glob("*.ipynb"))
    if not paths:
        print("no notebooks found")
        return 0
    if args.cells is not None:
        return slow_cells(paths, args.cells, args.timeout)
    header = ("notebook", "cache", "wall s", "cpu s", "compile s", "xla s", "compiles", "cache hits", "kernel s",
              "kernel cpu s", "peak MB")
    rows, failed = [], []
    for path in paths:
        with tempfile.TemporaryDirectory(prefix="jaxcache-") as cache_dir:
            for label in ("cold", "warm"):
                try:
                    s = run_once(path, cache_dir, args.timeout)
                except Exception as exc:  # report and continue with the other notebooks
                    failed.append(path.name)
                    print(f"FAILED {path.name} ({label}): {type(exc).__name__}: {str(exc)[:500]}", file=sys.stderr)
                    break
                rows.append((path.name, label, f"{s['wall']:.1f}", f"{s['cpu']:.1f}", f"{s['compile']:.2f}", f"{s['xla']:.2f}",
                             str(s["compiles"]), str(s["cache_hits"]), f"{s['kernel']:.1f}",
                             f"{s['kernel_cpu']:.1f}", f"{s['peak_mb']:.0f}"))
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths))
    print(line)
    print("-" * len(line))
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\n1-minute load average at the end: {load:.1f} on {os.cpu_count()} cores (times scale with it)")
    print("target: wall <= 20 s and compile <= 5 s per notebook (2 CPU cores)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
