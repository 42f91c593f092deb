"""Generate student copies: solutions/<A>/<nb>.ipynb -> exercises/<A>/<nb>.ipynb.

Uses nbgrader's own preprocessors, in the order ``nbgrader generate_assignment`` applies them
(without its database): remove solution code (``raise NotImplementedError()``) and model answers
(``YOUR ANSWER HERE``), remove hidden tests, clear outputs, lock cells, add checksums. The result is
what nbgrader would release, so the copies also work with nbgrader's collect/autograde.
"""
from __future__ import annotations

import pathlib

import nbformat

from .notebook import BEGIN_HIDDEN, BEGIN_SOLUTION, END_HIDDEN, END_SOLUTION

REPO = pathlib.Path(__file__).resolve().parents[1]


def student_copy(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    from nbgrader.preprocessors import (ClearHiddenTests, ClearMarkScheme, ClearOutput, ClearSolutions,
                                        ComputeChecksums, LockCells)

    nb = nbformat.from_dict(nb)
    resources: dict = {}
    for pp in (ClearSolutions(), ClearHiddenTests(), ClearMarkScheme(), ClearOutput(), LockCells(),
               ComputeChecksums()):
        nb, resources = pp.preprocess(nb, resources)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
    nb.metadata.pop("widgets", None)
    return nb


def generate(source: pathlib.Path, dest: pathlib.Path) -> str:
    """Write the student copy of ``source`` to ``dest``; return its text."""
    nb = nbformat.read(source, as_version=4)
    text = nbformat.writes(student_copy(nb)) + "\n"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(text)
    return text


def expected_copies(solutions=None) -> dict[pathlib.Path, str]:
    """{relative exercises path: text} for every source notebook, without writing anything."""
    solutions = pathlib.Path(solutions or REPO / "solutions")
    out = {}
    for src in sorted(solutions.glob("*/*.ipynb")):
        nb = nbformat.read(src, as_version=4)
        out[pathlib.Path("exercises") / src.parent.name / src.name] = nbformat.writes(student_copy(nb)) + "\n"
    return out


def leaks(text: str) -> list[str]:
    """Markers that must never appear in a student copy."""
    return [m for m in (BEGIN_SOLUTION, END_SOLUTION, BEGIN_HIDDEN, END_HIDDEN) if m in text]
