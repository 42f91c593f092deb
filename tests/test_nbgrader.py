"""The exercise sets work with real nbgrader, and the student's JupyterLab hides nbgrader.

A temporary nbgrader course is built from three source notebooks of solutions/; nbgrader 0.9.6
releases them (``generate_assignment``, offline, SQLite gradebook) and grades (``autograde``) four
kinds of submission: the full solution (full marks), the untouched release copy (0), a half-done copy
(the points of the tasks it solves), and a correct but naive solution whose NumPy warning goes to
stderr (full marks with the configuration the README gives: ``IgnorePattern``). The half-done copy's
graded notebook also shows what a student sees: short errors without the grader's frames.

Then ``make lab``'s configuration (jupyter-student/): nbgrader's lab and server extensions and the
news toast are off for students; ``NBGRADER=1`` keeps them for the instructor.
"""
from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from grader.notebook import load_assignment

REPO = pathlib.Path(__file__).resolve().parents[1]
BIN = pathlib.Path(sys.executable).parent
ASSIGNMENTS = ["01_what_is_deep_learning", "03_neurons_and_activations", "09_model_evaluation"]
HALF = 2                  # the half-done copy solves the first HALF solution cells
README_CONFIG = REPO / "README.md"

NAIVE_SIGMOID = '''def sigmoid(x):
    """Correct, but overflows (with a RuntimeWarning on stderr) for large negative x."""
    return 1.0 / (1.0 + np.exp(-x))
'''


def _source(assignment: str) -> pathlib.Path:
    return next((REPO / "solutions" / assignment).glob("*.ipynb"))


def _config_from_readme() -> str:
    """The nbgrader configuration lines the README gives instructors (so the test checks the README)."""
    text = README_CONFIG.read_text()
    block = re.search(r"```python\n(# nbgrader_config\.py.*?)```", text, re.S)
    assert block, "README: the 'Using nbgrader instead' section must show the nbgrader_config.py lines"
    return block.group(1)


def _env() -> dict:
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"   # nbgrader needs alembic on PATH the first time
    env.update(JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3", PYTHONHASHSEED="0")
    return env


def _nbgrader(course: pathlib.Path, *args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(BIN / "nbgrader"), *args], cwd=course, env=_env(), capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def _solution_cells(nb: dict) -> list[dict]:
    return [c for c in nb["cells"] if c["cell_type"] == "code" and c["metadata"].get("nbgrader", {}).get("solution")]


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """A course with three assignments, released by nbgrader and autograded for four students."""
    root = tmp_path_factory.mktemp("nbgrader-course")
    (root / "nbgrader_config.py").write_text(
        "c = get_config()\n"
        f"c.CourseDirectory.root = {str(root)!r}\n"
        "c.Execute.timeout = 300\n"
        + _config_from_readme())
    for a in ASSIGNMENTS:
        (root / "source" / a).mkdir(parents=True)
        shutil.copy(_source(a), root / "source" / a)
        _nbgrader(root, "generate_assignment", a, "--force")
    for a in ASSIGNMENTS:
        name = _source(a).name
        release = json.loads((root / "release" / a / name).read_text())
        source = json.loads(_source(a).read_text())
        solved = {c["metadata"]["nbgrader"]["grade_id"]: c["source"] for c in _solution_cells(source)}
        half = json.loads(json.dumps(release))
        for cell in _solution_cells(half)[:HALF]:
            cell["source"] = solved[cell["metadata"]["nbgrader"]["grade_id"]]
        full = json.loads(json.dumps(release))
        for cell in _solution_cells(full):
            cell["source"] = solved[cell["metadata"]["nbgrader"]["grade_id"]]
        submissions = {"full": full, "untouched": release, "half": half}
        if a == "03_neurons_and_activations":
            warned = json.loads(json.dumps(full))
            next(c for c in _solution_cells(warned) if c["metadata"]["nbgrader"]["grade_id"] == "sigmoid")["source"] = \
                NAIVE_SIGMOID
            submissions["warning"] = warned
        for student, nb in submissions.items():
            folder = root / "submitted" / student / a
            folder.mkdir(parents=True)
            (folder / name).write_text(json.dumps(nb, indent=1))
    for a in ASSIGNMENTS:
        _nbgrader(root, "autograde", a, "--force")
    from nbgrader.api import Gradebook

    scores = {}
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        for a in ASSIGNMENTS:
            for sub in gb.assignment_submissions(a):
                nb = sub.notebooks[0]
                scores[(a, sub.student.id)] = ({g.name: g.score for g in nb.grades if g.auto_score is not None
                                                or g.cell_type == "code"}, sub.code_score, sub.max_code_score)
    return {"root": root, "scores": scores}


def _task_points(assignment: str) -> dict[str, float]:
    return {t.grade_id: t.points for t in load_assignment(_source(assignment)).tasks}


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_release_copy_equals_make_exercises(course, assignment):
    """nbgrader's release copy and ours (exercises/) hold the same cells: the same sources and metadata."""
    name = _source(assignment).name
    released = json.loads((course["root"] / "release" / assignment / name).read_text())
    ours = json.loads((REPO / "exercises" / assignment / name).read_text())
    strip = lambda nb: [(c["cell_type"], "".join(c["source"]), c["metadata"].get("nbgrader")) for c in nb["cells"]]
    assert strip(released) == strip(ours)


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_full_solution_gets_full_marks(course, assignment):
    _, code, max_code = course["scores"][(assignment, "full")]
    assert max_code == sum(_task_points(assignment).values())
    assert code == max_code


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_untouched_copy_gets_zero(course, assignment):
    _, code, _ = course["scores"][(assignment, "untouched")]
    assert code == 0


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_half_done_copy_gets_the_points_of_its_tasks(course, assignment):
    grades, code, _ = course["scores"][(assignment, "half")]
    a = load_assignment(_source(assignment))
    done = set(a.solution_ids[:HALF])
    expected = {t.grade_id: (t.points if set(t.uses) <= done else 0.0) for t in a.tasks}
    assert 0 < code < sum(t.points for t in a.tasks)
    assert {k: grades[k] for k in expected} == expected


def test_a_numpy_warning_on_stderr_costs_nothing_with_the_readme_config(course):
    grades, code, max_code = course["scores"][("03_neurons_and_activations", "warning")]
    assert grades["test_sigmoid"] == 2 and code == max_code
    graded = course["root"] / "autograded" / "warning" / "03_neurons_and_activations" / "03_exercises.ipynb"
    cell = next(c for c in json.loads(graded.read_text())["cells"]
                if c["metadata"].get("nbgrader", {}).get("grade_id") == "test_sigmoid")
    assert not any(o.get("name") == "stderr" for o in cell["outputs"]), "IgnorePattern removed the warning"


def test_what_a_student_sees_for_a_failure_is_short_and_grader_free(course):
    """In the graded half-done copy: an untouched task says 'not attempted yet' in one line; no output
    shows a frame of grader/api.py or a chained 'During handling' section."""
    graded = course["root"] / "autograded" / "half" / "03_neurons_and_activations" / "03_exercises.ipynb"
    errors = [o for c in json.loads(graded.read_text())["cells"] for o in c.get("outputs", [])
              if o["output_type"] == "error"]
    assert errors
    for e in errors:
        text = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(e["traceback"]))
        assert "api.py" not in text and "During handling" not in text, text
        assert len(text.splitlines()) <= 8, text
    assert any("not attempted yet" in "\n".join(e["traceback"]) for e in errors)


def test_wrong_answer_feedback_in_a_kernel_fits_in_eight_lines(tmp_path):
    """A wrong answer in a real IPython kernel: the error names the output and fits in 8 lines."""
    import nbformat
    from nbclient import NotebookClient

    cells = ["import numpy as np\nfrom grader.api import check_function",
             "def dense_backward(dout, x, W):\n    return dout @ W.T, dout.T @ x, dout.sum(axis=0)",
             "check_function(dense_backward, [(np.ones((4, 2)), np.ones((4, 3)), np.ones((3, 2)))],\n"
             "               reference=lambda d, x, W: (d @ W.T, x.T @ d, d.sum(0)), outputs=('dx', 'dW', 'db'))"]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    (error,) = [o for o in nb.cells[2].outputs if o.output_type == "error"]
    text = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(error.traceback))
    assert len(text.splitlines()) <= 8, text
    assert "dW: wrong shape: expected (3, 2), got (2, 3)" in text
    assert "api.py" not in text and "Traceback" not in text


# ----------------------------------------------------------------------------- the student's JupyterLab
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _make_lab_command(*variables: str) -> str:
    out = subprocess.run(["make", "-n", "lab", *variables], cwd=REPO, capture_output=True, text=True, check=True).stdout
    return next(line for line in out.splitlines() if "jupyter lab" in line)


def test_make_lab_hides_nbgrader_unless_asked():
    assert "JUPYTER_CONFIG_PATH=" in _make_lab_command() and "jupyter-student" in _make_lab_command()
    assert "jupyter-student" not in _make_lab_command("NBGRADER=1")


def test_student_lab_has_no_nbgrader_and_no_news(tmp_path):
    """Start JupyterLab as `make lab` does; its page config disables nbgrader's lab extension and the
    news plugin, and nbgrader's server endpoints do not exist."""
    port, token = _free_port(), "test-token"
    env = _env()
    env["JUPYTER_CONFIG_PATH"] = str(REPO / "jupyter-student")
    env["JUPYTER_RUNTIME_DIR"] = str(tmp_path / "runtime")
    proc = subprocess.Popen([str(BIN / "jupyter"), "lab", "--no-browser", f"--port={port}", "--ServerApp.port_retries=0",
                             f"--IdentityProvider.token={token}", f"--notebook-dir={tmp_path}", "--allow-root"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        page = None
        for _ in range(120):
            try:
                page = urllib.request.urlopen(f"http://127.0.0.1:{port}/lab?token={token}", timeout=5).read().decode()
                break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.5)
        assert page, "JupyterLab did not start"
        config = json.loads(re.search(r'<script id="jupyter-config-data" type="application/json">(.*?)</script>',
                                      page, re.S).group(1))
        disabled = config.get("disabledExtensions", [])
        assert "@jupyter/nbgrader" in disabled
        assert "@jupyterlab/apputils-extension:announcements" in disabled
        assert config.get("news", {}).get("disabled") is True
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/formgrader?token={token}", timeout=5)
        assert info.value.code == 404
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
