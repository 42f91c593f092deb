"""Build a notebook from a percent-format Python script (the format of jupytext / VS Code cells).

    python tools/py_to_notebook.py source.py notebooks/NN_name.ipynb

Cells start with a line ``# %%`` (code) or ``# %% [markdown]`` (Markdown; each line's leading
``# `` is stripped). Cell tags go on the marker line: ``# %% tags=["nbval-ignore-output"]``.
The notebook is written without outputs; execute it with ``make notebooks NB=...``.
"""
from __future__ import annotations

import json
import pathlib
import re
import sys

import nbformat

MARKER = re.compile(r"^# %%(?P<md> \[markdown\])?(?:\s+tags=(?P<tags>\[.*\]))?\s*$")


def parse(text: str):
    cells, kind, tags, lines = [], None, [], []

    def flush():
        if kind is None:
            return
        body = "\n".join(lines).strip("\n")
        if kind == "markdown":
            body = "\n".join(l[2:] if l.startswith("# ") else l.lstrip("#") for l in body.splitlines())
            cell = nbformat.v4.new_markdown_cell(body)
        else:
            cell = nbformat.v4.new_code_cell(body)
        if tags:
            cell.metadata["tags"] = tags
        cells.append(cell)

    for line in text.splitlines():
        m = MARKER.match(line)
        if m:
            flush()
            kind = "markdown" if m.group("md") else "code"
            tags = json.loads(m.group("tags")) if m.group("tags") else []
            lines = []
        elif kind is not None:
            lines.append(line)
    flush()
    return cells


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    src, dst = map(pathlib.Path, argv)
    nb = nbformat.v4.new_notebook()
    nb.cells = parse(src.read_text())
    nb.metadata["kernelspec"] = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
    nb.metadata["language_info"] = {"name": "python"}
    for i, cell in enumerate(nb.cells):
        cell.id = f"cell-{i:03d}"
    nbformat.write(nb, dst)
    print(f"{dst}: {len(nb.cells)} cells")
    return 0


if __name__ == "__main__":
    sys.exit(main())
