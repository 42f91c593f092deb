"""The course's diagrams (tools/diagrams/, drawn into notebooks/figures/ by tools/build_diagrams.py).

Every chapter shows at least one, the committed SVGs are exactly what the code draws now (so they
cannot drift from the notation or from course_lib's numbers), each sits in its chapter right after
the cell it follows, and every figure a notebook links to exists.
"""
import pathlib
import re
import subprocess
import sys

import nbformat
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
FIGURES = ROOT / "notebooks" / "figures"
sys.path.insert(0, str(ROOT / "tools"))

import diagrams  # noqa: E402

NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+)\)")


def test_every_chapter_has_a_diagram_and_there_are_at_least_24():
    assert len(diagrams.DIAGRAMS) >= 24
    chapters = {d.notebook for d in diagrams.DIAGRAMS}
    missing = [nb.stem for nb in NOTEBOOKS if nb.stem not in chapters]
    assert not missing, f"chapters without a diagram: {missing}"
    assert {d.notebook for d in diagrams.DIAGRAMS} <= {nb.stem for nb in NOTEBOOKS}


def test_committed_svgs_and_figure_cells_are_what_the_code_draws_now():
    """Regenerate every diagram (in memory) and compare with the committed bytes; also checks that
    every figure cell is in place. Fix with ``make diagrams``."""
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "build_diagrams.py"), "--check"],
                            capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.stem)
def test_figure_cells_follow_their_cells_and_every_linked_figure_exists(nb_path):
    nb = nbformat.read(nb_path, as_version=4)
    ids = [c.get("id") for c in nb.cells]
    for d in (d for d in diagrams.DIAGRAMS if d.notebook == nb_path.stem):
        cid = diagrams.cell_id(d)
        assert cid in ids, f"{nb_path.name}: no figure cell {cid} (run make diagrams)"
        cell = nb.cells[ids.index(cid)]
        assert cell.cell_type == "markdown" and cell.source == diagrams.cell_source(d)
        i = ids.index(d.after) + 1                # right after its cell, or after the figures there
        while ids[i] != cid:
            assert str(ids[i]).startswith("fig-"), f"{cid} does not follow cell {d.after}"
            i += 1
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        for target in IMAGE.findall(cell.source):
            assert not target.startswith(("http:", "https:")), f"{nb_path.name} loads {target} from the network"
            assert (nb_path.parent / target).is_file(), f"{nb_path.name} links to missing {target}"


def test_svgs_are_self_contained_small_and_draw_text_as_paths():
    names = {f"{d.name}.svg" for d in diagrams.DIAGRAMS}
    files = {p.name for p in FIGURES.glob("*.svg")}
    assert files == names, f"unexpected {sorted(files - names)}, missing {sorted(names - files)}"
    for path in sorted(FIGURES.glob("*.svg")):
        svg = path.read_text(encoding="utf-8")
        assert "<script" not in svg and "http://www.w3.org" in svg
        assert not re.search(r'xlink:href="(?!#|data:image/png;base64,)', svg), f"{path.name} refers to an outside file"
        assert "<text" not in svg, f"{path.name}: text must be drawn as paths, like every diagram"
        assert path.stat().st_size < 80_000, f"{path.name} is {path.stat().st_size} bytes"


def test_diagram_registry_is_consistent():
    numbers = diagrams.figure_numbers()
    for d in diagrams.DIAGRAMS:
        assert d.alt and d.caption and callable(d.draw)
        assert numbers[d.name].startswith(f"{d.chapter}.")
    with pytest.raises(KeyError, match="no diagram named"):
        diagrams.by_name("99_nothing")
