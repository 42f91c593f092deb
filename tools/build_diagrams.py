"""Draw the course's diagrams into notebooks/figures/ and put each one in its chapter.

    python tools/build_diagrams.py                  # redraw every SVG, insert/update the figure cells
    python tools/build_diagrams.py --check          # exit 1 if an SVG or a figure cell is out of date
    python tools/build_diagrams.py --only 06_computational_graph --png /tmp/preview

The diagrams are defined in ``tools/diagrams/`` (one function each, numbers from ``course_lib``).
Each SVG is deterministic (same bytes on every run). Each chapter gets, for each of its diagrams, a
Markdown cell with id ``fig-<name>`` right after the cell the diagram follows: inserted if missing,
its text updated if the caption changed, moved if it no longer follows its cell. No other cell is
touched (code cells, outputs and ids stay as they are), so the notebooks need no re-execution.
"""
from __future__ import annotations

import argparse
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
FIGURES = ROOT / "notebooks" / "figures"
sys.path.insert(0, str(ROOT / "tools"))

import diagrams  # noqa: E402
from diagrams import style  # noqa: E402


def render(d: diagrams.Diagram, png_dir: pathlib.Path | None = None) -> bytes:
    """The SVG bytes of one diagram (and a PNG preview in ``png_dir``)."""
    with style.settings():
        fig = d.draw()
        png = png_dir / f"{d.name}.png" if png_dir else None
        return style.save(fig, png=png)


def place_cells(nb, items) -> bool:
    """Insert or update the figure cells of ``items`` in notebook ``nb``; True if anything changed."""
    import nbformat

    changed = False
    for d in items:
        cid, source = diagrams.cell_id(d), diagrams.cell_source(d)
        ids = [c.get("id") for c in nb.cells]
        if d.after not in ids:
            raise ValueError(f"{d.notebook}: diagram {d.name} follows cell {d.after!r}, which is not in the notebook")
        if cid in ids:
            i = ids.index(cid)
            cell = nb.cells[i]
            if cell.source != source:
                cell.source, changed = source, True
            if ids.index(d.after) != i - 1 and not _follows_figures(nb, d.after, cid):
                nb.cells.pop(i)
                nb.cells.insert(_slot(nb, d.after), cell)
                changed = True
            continue
        cell = nbformat.v4.new_markdown_cell(source)
        cell["id"] = cid
        nb.cells.insert(_slot(nb, d.after), cell)
        changed = True
    return changed


def _slot(nb, after):
    """Index right after cell ``after`` and the figure cells already placed after it."""
    ids = [c.get("id") for c in nb.cells]
    i = ids.index(after) + 1
    while i < len(ids) and str(ids[i]).startswith("fig-"):
        i += 1
    return i


def _follows_figures(nb, after, cid):
    ids = [c.get("id") for c in nb.cells]
    i = ids.index(after) + 1
    while i < len(ids) and str(ids[i]).startswith("fig-"):
        if ids[i] == cid:
            return True
        i += 1
    return False


def main(argv=None) -> int:
    import nbformat

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if anything is out of date")
    parser.add_argument("--only", nargs="*", default=None, help="diagram names (default: all)")
    parser.add_argument("--png", type=pathlib.Path, default=None, help="also write PNG previews here")
    parser.add_argument("--no-cells", action="store_true", help="only draw the SVGs")
    args = parser.parse_args(argv)
    items = [diagrams.by_name(n) for n in args.only] if args.only else diagrams.DIAGRAMS
    if args.png:
        args.png.mkdir(parents=True, exist_ok=True)
    FIGURES.mkdir(parents=True, exist_ok=True)
    stale = []
    for d in items:
        svg = render(d, args.png)
        path = FIGURES / f"{d.name}.svg"
        if not path.exists() or path.read_bytes() != svg:
            stale.append(str(path.relative_to(ROOT)))
            if not args.check:
                path.write_bytes(svg)
    if not args.only:
        known = {f"{d.name}.svg" for d in diagrams.DIAGRAMS}
        stale += [f"{p.relative_to(ROOT)} (no diagram draws it)" for p in FIGURES.glob("*.svg") if p.name not in known]
    if not args.no_cells:
        for notebook in sorted({d.notebook for d in items}):
            path = ROOT / "notebooks" / f"{notebook}.ipynb"
            nb = nbformat.read(path, as_version=4)
            if place_cells(nb, [d for d in diagrams.DIAGRAMS if d.notebook == notebook]):
                stale.append(f"{path.relative_to(ROOT)} (figure cells)")
                if not args.check:
                    nbformat.write(nb, path)
    for s in stale:
        print(("out of date: " if args.check else "updated: ") + s)
    print(f"{len(items)} diagrams, {len(stale)} {'out of date' if args.check else 'updated'}")
    return 1 if (args.check and stale) else 0


if __name__ == "__main__":
    sys.exit(main())
