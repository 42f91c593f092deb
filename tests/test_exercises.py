"""Every exercise set under solutions/ (found automatically): format, leaks, regeneration, grading.

For each source notebook solutions/<A>/<nb>.ipynb:
- the nbgrader format rules of docs/exercise_format.md hold (>= 4 graded tasks with visible and hidden
  tests, 2-3 manually graded questions, a locked setup cell, executed with outputs);
- the committed student copy equals what tools/make_exercises.py generates (regeneration is a no-op)
  and contains no solution code, no hidden test, no output;
- graded by the real grader, the source (solutions) passes every task, hidden tests included, and
  the student copy as handed out fails every task.
"""
from __future__ import annotations

import ast
import json
import pathlib
import re
import statistics
import subprocess
import sys

import pytest

from grader.api import _resolve
from grader.generate import expected_copies, leaks
from grader.grade import Grader
from grader.notebook import BEGIN_SOLUTION, END_SOLUTION, load_assignment, split_hidden, string_constants
from grader.sandbox import Limits

REPO = pathlib.Path(__file__).resolve().parents[1]
SOURCES = sorted((REPO / "solutions").glob("*/*.ipynb"))
IDS = [p.parent.name for p in SOURCES]


def _student_copy(src: pathlib.Path) -> pathlib.Path:
    return REPO / "exercises" / src.parent.name / src.name


def _solution_lines(src_text: str) -> list[str]:
    """Non-trivial lines written between the solution markers."""
    out, inside = [], False
    for line in src_text.splitlines():
        s = line.strip()
        if s == BEGIN_SOLUTION:
            inside = True
        elif s == END_SOLUTION:
            inside = False
        elif inside and len(s) >= 25:
            out.append(s)
    return out


def _solution_sizes(nb: dict) -> dict[str, int]:
    """{grade_id: number of non-blank, non-comment lines between the solution markers} of each solution cell."""
    sizes = {}
    for cell in nb["cells"]:
        meta = cell["metadata"].get("nbgrader", {})
        if cell["cell_type"] != "code" or not meta.get("solution"):
            continue
        inside, n = False, 0
        for line in "".join(cell["source"]).splitlines():
            s = line.strip()
            if s in (BEGIN_SOLUTION, END_SOLUTION):
                inside = s == BEGIN_SOLUTION
            elif inside and s and not s.startswith("#"):
                n += 1
        sizes[meta["grade_id"]] = n
    return sizes


def test_there_are_exercise_sets():
    assert {"00_jax_primer", "03_neurons_and_activations", "04_loss_functions"} <= set(IDS)


@pytest.mark.parametrize("src", SOURCES, ids=IDS)
def test_format(src):
    a = load_assignment(src)
    assert len(a.tasks) >= 4, "at least 4 autograded tasks"
    assert 2 <= len(a.questions) <= 3, "2-3 manually graded questions"
    nb = json.loads(src.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    first = code[0]["metadata"]["nbgrader"]
    assert first["locked"] and not first["solution"] and not first["grade"], "first code cell: locked setup"
    assert "from grader.api import" in "".join(code[0]["source"])
    for cell in nb["cells"]:
        meta = cell["metadata"].get("nbgrader")
        if meta:
            assert meta["schema_version"] == 3
        if meta and meta.get("solution"):
            assert BEGIN_SOLUTION in "".join(cell["source"]), f"{meta['grade_id']}: no solution markers"
    for dotted in sorted(a.forbid):  # a misspelt name would forbid nothing
        owner, attr = _resolve(dotted)
        assert owner is not None and hasattr(owner, attr), f"a forbid list names {dotted}, which does not exist"
    for task in a.tasks:
        assert "check_" in task.visible, f"{task.grade_id}: visible tests must call check_function/check_value"
        assert task.hidden.strip(), f"{task.grade_id}: no hidden tests"
        assert task.uses, f"{task.grade_id}: tests no function of the solution cells"
    # Stored executed, with outputs: every code cell ran, and no cell raised.
    for cell in code:
        assert cell["execution_count"] is not None, "solutions are committed executed (make notebooks NB=...)"
        assert not any(o.get("output_type") == "error" for o in cell["outputs"])


def test_regeneration_is_a_no_op():
    expected = expected_copies(REPO / "solutions")
    on_disk = {p.relative_to(REPO) for p in (REPO / "exercises").glob("*/*.ipynb")}
    assert on_disk == set(expected), "run `make exercises` (exercises/ and solutions/ differ in files)"
    for rel, text in expected.items():
        assert (REPO / rel).read_text() == text, f"{rel} is stale: run `make exercises`"


def test_make_exercises_command_reports_unchanged():
    out = subprocess.run([sys.executable, str(REPO / "tools" / "make_exercises.py")], capture_output=True,
                         text=True, cwd=REPO, check=True).stdout
    assert out.strip() and all(line.endswith("unchanged") for line in out.strip().splitlines()), out


@pytest.mark.parametrize("src", SOURCES, ids=IDS)
def test_student_copy_leaks_nothing(src):
    dst = _student_copy(src)
    raw = dst.read_text()
    assert not leaks(raw)
    nb = json.loads(raw)
    text = "\n".join("".join(c["source"]) for c in nb["cells"])  # the cells as the student sees them
    for line in _solution_lines(src.read_text()):
        assert line not in text, f"solution line leaked: {line!r}"
    a = load_assignment(src)
    shown = "\n".join(t.visible for t in a.tasks)
    for task in a.tasks:
        for line in task.hidden.splitlines():   # a hidden line that is not also (part of) a visible one
            if len(line.strip()) >= 20 and line.strip() not in shown:
                assert line.strip() not in text, f"hidden test leaked: {line.strip()!r}"
    for cell in nb["cells"]:
        assert not cell.get("outputs"), "student copies have no outputs"
    # The visible tests are still there, so students can check themselves.
    for task in a.tasks:
        first = next(line for line in task.visible.splitlines() if line.strip())
        assert first in text


@pytest.mark.parametrize("src", SOURCES, ids=IDS)
def test_seed_titles_and_short_test_cells(src):
    """Issue 19: `SEED = 0` on a line of its own in the first code cell. Every task and question has a
    title. Test cells are readable: lines of at most 120 characters, forbid lists named (defined once)."""
    nb = json.loads(src.read_text())
    first = "".join(next(c for c in nb["cells"] if c["cell_type"] == "code")["source"])
    assert len(re.findall(r"^SEED = 0$", first, re.M)) == 1, "the first code cell must set SEED = 0"
    a = load_assignment(src)
    for item in a.tasks + a.questions:
        assert re.match(r"(Task|Question) \d+: \S", item.title), f"{item.grade_id} has no title: {item.title!r}"
    for task in a.tasks:
        source = task.visible + task.hidden
        for line in source.splitlines():
            assert len(line) <= 120, f"{task.grade_id}: a line of {len(line)} characters"
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.keyword) and node.arg == "forbid" and isinstance(node.value, (ast.Tuple, ast.List)):
                assert len(node.value.elts) <= 1, f"{task.grade_id}: name the forbid list in the setup cell"
    setup = "".join(c for kind, _, c in a.cells if kind == "setup")
    assert all(len(v) > 0 for v in string_constants(setup).values())


def test_progression_targets():
    """A progression from guided to substantial tasks: the median solution is at least 6 lines, and every
    chapter from 05 on has a task of 15 lines or more."""
    sizes = {src.parent.name: _solution_sizes(json.loads(src.read_text())) for src in SOURCES}
    everything = [n for chapter in sizes.values() for n in chapter.values()]
    assert statistics.median(everything) >= 6, sorted(everything)
    for chapter, tasks in sizes.items():
        if int(chapter[:2]) >= 5:
            assert max(tasks.values()) >= 15, f"{chapter}: no substantial task ({tasks})"


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("jax-cache")


@pytest.mark.parametrize("src", SOURCES, ids=IDS)
def test_solution_passes_and_student_copy_fails(src, cache):
    a = load_assignment(src)
    grader = Grader(a, Limits(timeout=60, budget=400, cache_dir=cache))
    try:
        solved = grader.warm_up()  # the source graded as a submission (hidden tests included)
        handed_out = grader.grade("student copy", _student_copy(src))
    finally:
        grader.close()
    for row in solved.rows:
        assert row.status in ("passed", "manual"), f"source fails {row.task}: {row.reason}"
    assert solved.score == sum(t.points for t in a.tasks)
    by_task = {r.task: r for r in handed_out.rows}
    for task in a.tasks:
        row = by_task[task.grade_id]
        assert row.points == 0, f"{task.grade_id} passes without a solution"
        assert row.status == "not-attempted" and "not attempted yet" in row.reason, row
    for q in a.questions:
        assert by_task[q.grade_id].status == "unanswered"
