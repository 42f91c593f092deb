"""Widget latency: for every widget of every chapter, time from setting a control's value to new PNG bytes.

    python benchmarks/bench_widgets.py [-n 50] [module ...]     # e.g. activations losses

Discovery (the protocol every widget module follows, see benchmarks/README.md): each module
``course_lib/widgets/<topic>.py`` lists its builder names in ``WIDGETS``; ``build_x()`` called
without arguments returns an object with ``controls`` (name -> ipywidgets control), ``main_controls``
(the names to benchmark) and ``live`` (a ``LiveFigure`` or a list of them); optionally
``bench_presets`` (control name -> {other control: value}) for a control that only has an effect
in some state (e.g. Leaky ReLU's alpha needs activation="leaky_relu"), applied before timing it;
optionally ``bench_skip`` (control name -> values that by design change nothing on screen, e.g. the
kernel editor's "custom" preset, which only names the state after a typed weight), never set.

For each main control the script sets ``.value`` N times, each time to a value different from the
current one (sliders: spread over their range; dropdowns and toggles: cycle through the options;
multi-selects: alternate between subsets; checkboxes: toggle; text boxes: rotations of the current
text, which keep its letters), and measures with
``time.perf_counter`` the time from just before the assignment to the moment the last
``live.image.value`` (PNG bytes) is replaced, via an observer on the image. The observer fires
synchronously inside the assignment, so this is the latency a learner sees, minus the browser's
share. An update that did not change the image counts as a failure (reported in the ``stale``
column). Build time (precompute, compile, first draw) is reported separately. ``cpu median ms`` is
the process CPU time of the same interval (``time.process_time``): on a loaded machine wall times
grow with the load, CPU time much less, so it estimates the latency on an idle machine.
"""
from __future__ import annotations

import argparse
import importlib
import os
import pathlib
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
WIDGET_DIR = ROOT / "course_lib" / "widgets"
SKIP = {"__init__", "base"}


def discover(names=()):
    """Yield (module_name, builder_name, builder) for every widget module that follows the protocol."""
    mods = sorted(p.stem for p in WIDGET_DIR.glob("*.py") if p.stem not in SKIP and not p.stem.startswith("_"))
    if names:
        mods = [m for m in mods if m in set(names)]
    for mod_name in mods:
        module = importlib.import_module(f"course_lib.widgets.{mod_name}")
        builders = getattr(module, "WIDGETS", None)
        if not builders:
            print(f"note: course_lib/widgets/{mod_name}.py has no WIDGETS list; skipped", file=sys.stderr)
            continue
        for b in builders:
            yield mod_name, b, getattr(module, b)


def value_sequence(control, n: int, skip=()) -> list:
    """n values for ``control``, each different from the one before (starting from the current value),
    none of them in ``skip``."""
    current = control.value
    values = []
    if hasattr(control, "options") and isinstance(current, tuple):       # SelectMultiple
        opts = [o[1] if isinstance(o, tuple) else o for o in control.options]
        subsets = [tuple(opts)] + [tuple(opts[:k]) for k in range(1, len(opts))] + [(o,) for o in opts[1:]]
        cycle = [s for s in subsets]
    elif hasattr(control, "options"):                                  # Dropdown, ToggleButtons, ...
        cycle = [o[1] if isinstance(o, tuple) else o for o in control.options]
    elif isinstance(current, bool):                                    # Checkbox, ToggleButton
        cycle = [not current, current]
    elif isinstance(current, str) and len(current) > 1:                # Text: rotations keep it valid
        cycle = [current[k:] + current[:k] for k in range(1, len(current))] + [current]
    elif hasattr(control, "min") and hasattr(control, "max") and not isinstance(current, tuple):
        lo, hi, step = control.min, control.max, getattr(control, "step", None) or 1
        k = np.arange(int(round((hi - lo) / step)) + 1)
        rng = np.random.default_rng(0)
        pts = lo + step * rng.permutation(k)
        cycle = [type(current)(round(float(v), 10)) for v in pts]
    else:
        raise TypeError(f"don't know how to vary a {type(control).__name__}")
    cycle = [v for v in cycle if v not in skip]
    i = 0
    prev = current
    while len(values) < n:
        v = cycle[i % len(cycle)]
        i += 1
        if v != prev:
            values.append(v)
            prev = v
        if i > 10 * (n + len(cycle)):
            break
    return values


def time_control(obj, name: str, n: int):
    lives = obj.live if isinstance(obj.live, (list, tuple)) else [obj.live]
    stamp = {"t": None, "cpu": None}

    def on_image(_change):
        stamp["t"] = time.perf_counter()
        stamp["cpu"] = time.process_time()

    for live in lives:
        live.image.observe(on_image, names="value")
    for other, value in getattr(obj, "bench_presets", {}).get(name, {}).items():
        obj.controls[other].value = value
    control = obj.controls[name]
    times, cpu, stale = [], [], 0
    try:
        for v in value_sequence(control, n, getattr(obj, "bench_skip", {}).get(name, ())):
            stamp["t"] = None
            c0 = time.process_time()
            t0 = time.perf_counter()
            control.value = v
            if stamp["t"] is None:
                stale += 1
            else:
                times.append(stamp["t"] - t0)
                cpu.append(stamp["cpu"] - c0)
    finally:
        for live in lives:
            live.image.unobserve(on_image, names="value")
    return np.array(times) * 1e3, np.array(cpu) * 1e3, stale


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", help="widget modules to benchmark (default: all)")
    parser.add_argument("-n", type=int, default=50, help="value changes per control (default 50)")
    args = parser.parse_args(argv)

    rows = []
    for mod_name, builder_name, builder in discover(args.modules):
        t0 = time.perf_counter()
        obj = builder()
        build = time.perf_counter() - t0
        for control in obj.main_controls:
            ms, cpu_ms, stale = time_control(obj, control, args.n)
            med = float(np.median(ms)) if ms.size else float("nan")
            p95 = float(np.percentile(ms, 95)) if ms.size else float("nan")
            rows.append((f"{mod_name}.{builder_name}", f"{build:.2f}", control, str(ms.size), str(stale),
                         f"{med:.1f}", f"{p95:.1f}", f"{ms.max():.1f}" if ms.size else "nan",
                         f"{np.median(cpu_ms):.1f}" if cpu_ms.size else "nan"))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    header = ("widget", "build s", "control", "n", "stale", "median ms", "p95 ms", "max ms", "cpu median ms")
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths))
    print(line)
    print("-" * len(line))
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)))
    print(f"\n1-minute load average at the end: {load:.1f} on {os.cpu_count()} cores "
          f"(latencies scale with it; benchmark on an idle machine)")
    print("target: median <= 30 ms, p95 <= 100 ms per update (setting .value -> new PNG bytes)")
    return 1 if any(r[4] != "0" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
