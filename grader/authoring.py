"""Build an exercise source notebook from Python (optional: JupyterLab with the metadata works too).

    from grader.authoring import md, setup, solution, tests, answer, code, write
    write("solutions/05_x/05_exercises.ipynb", [
        md("# Exercises ..."),
        setup("SEED = 0\\nimport numpy as np\\nfrom grader.api import check_function"),
        md("## Task 1 (2 points): ReLU\\n..."),
        solution("relu", "def relu(x):\\n    ### BEGIN SOLUTION\\n    ...\\n    ### END SOLUTION"),
        tests("test_relu", 2, "check_function(relu, ...)"),
        md("### Experiment (not graded)\\n..."), code("for lr in (0.1, 1.0): ..."),
        md("## Question 1 (2 points): dead ReLUs\\n..."), answer("q_dead_relu", 2, "model answer"),
    ])

Then store outputs with ``make notebooks NB=...`` and regenerate exercises/ with ``make exercises``.
"""
from __future__ import annotations

import pathlib

import nbformat

_KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


def _meta(grade_id, *, solution, grade, locked, points=None):
    m = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": 3,
         "solution": solution, "task": False}
    if points is not None:
        m["points"] = points
    return {"nbgrader": m}


def md(text: str, grade_id: str | None = None):
    cell = nbformat.v4.new_markdown_cell(text.strip("\n"))
    if grade_id:
        cell.metadata.update(_meta(grade_id, solution=False, grade=False, locked=True))
    return cell


def code(text: str):
    """A plain code cell without nbgrader metadata (an ungraded experiment): copied to the student
    copy as it is, never run by the grader."""
    return nbformat.v4.new_code_cell(text.strip("\n"))


def setup(code: str, grade_id: str = "setup"):
    cell = nbformat.v4.new_code_cell(code.strip("\n"))
    cell.metadata.update(_meta(grade_id, solution=False, grade=False, locked=True))
    return cell


def solution(grade_id: str, code: str):
    cell = nbformat.v4.new_code_cell(code.strip("\n"))
    cell.metadata.update(_meta(grade_id, solution=True, grade=False, locked=False))
    return cell


def tests(grade_id: str, points: float, code: str):
    cell = nbformat.v4.new_code_cell(code.strip("\n"))
    cell.metadata.update(_meta(grade_id, solution=False, grade=True, locked=True, points=points))
    return cell


def answer(grade_id: str, points: float, model_answer: str):
    text = f"### BEGIN SOLUTION\n{model_answer.strip()}\n### END SOLUTION"
    cell = nbformat.v4.new_markdown_cell(text)
    cell.metadata.update(_meta(grade_id, solution=True, grade=True, locked=False, points=points))
    return cell


def write(path, cells) -> pathlib.Path:
    """Write the notebook with stable cell ids (grade_id, else cell-<n>)."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = dict(_KERNELSPEC)
    nb.metadata["language_info"] = {"name": "python"}
    seen = set()
    for i, cell in enumerate(cells):
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        cell["id"] = gid if gid and gid not in seen and all(c.isalnum() or c in "-_" for c in gid) else f"cell-{i}"
        seen.add(cell["id"])
    nb.cells = list(cells)
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path
