"""The grader: helpers, wire format, static checks, and hostile submissions graded end to end.

The hostile notebooks live in tests/grading/fixtures/ (written by tests/grading/make_fixtures.py from
the chapter-03 student copy). They are graded once, by the real command (`python -m grader`), in a
folder that also holds other students' files; each test then asserts the exact score of every task.
"""
from __future__ import annotations

import csv
import hashlib
import json
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest

from grader import _child, api, static
from grader.api import TaskFailed, check_function, check_raises, check_value, compare
from grader.grade import feedback_markdown, find_submissions
from grader.notebook import defined_names, forbidden_literals, load_assignment, split_hidden

REPO = pathlib.Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "grading" / "fixtures"
A03 = "03_neurons_and_activations"
SOURCE03 = REPO / "solutions" / A03 / "03_exercises.ipynb"
TASKS = ["test_sigmoid", "test_sigmoid_grad", "test_relu_grad", "test_leaky_relu_grad", "test_softmax"]
FULL = dict(zip(TASKS, [2, 2, 2, 2, 3]))


# ----------------------------------------------------------------------------- grader.api
def test_compare_accepts_close_values_and_reports_each_kind_of_mismatch():
    e = np.array([0.5, 1.0], np.float32)
    assert compare(np.array([0.5, 1.0 + 1e-7], np.float32), e) is None
    assert "wrong shape" in compare(np.zeros(3, np.float32), e)
    assert "wrong dtype" in compare(np.array([0, 1]), e)
    assert "NaN" in compare(np.array([np.nan, 1.0], np.float32), e)
    assert "values differ" in compare(np.array([0.6, 1.0], np.float32), e)
    assert "expected an array" in compare("0.5", e)
    assert compare(np.array([1.0, 2.0]), e, dtype=None) is not None
    assert "wrong dtype" in compare(np.array([0.5, 1.0], np.float64), e, dtype="exact")
    assert compare((e, {"a": e}), (e, {"a": e})) is None
    assert "keys" in compare({"b": e}, {"a": e})
    assert compare(np.float32(2.0), 2.0) is None  # a Python scalar accepts any float/int kind


def test_check_function_passes_and_fails_locally(capsys):
    check_function(lambda x: x * 2, [(np.array([1.0], np.float32),)], reference=lambda x: x * 2)
    assert "✓" in capsys.readouterr().out
    with pytest.raises(TaskFailed, match="values differ") as info:
        check_function(lambda x: x * 3, [(np.array([1.0], np.float32),)], expected=[np.array([2.0], np.float32)])
    assert info.value.status == "failed" and "expected" in str(info.value) and "got" in str(info.value)
    with pytest.raises(TaskFailed, match="raised ZeroDivisionError") as info:
        check_function(lambda x: 1 / 0, [(1.0,)], expected=[1.0])
    assert info.value.status == "error"


def test_failures_name_the_output_and_the_untouched_stub():
    def dense_backward(dout, x, W):
        return dout @ W.T, dout.T @ x, dout.sum(0)          # dW transposed

    case = (np.ones((4, 2)), np.ones((4, 3)), np.ones((3, 2)))
    with pytest.raises(TaskFailed) as info:
        check_function(dense_backward, [case], reference=lambda d, x, W: (d @ W.T, x.T @ d, d.sum(0)),
                       outputs=("dx", "dW", "db"))
    assert "dW: wrong shape: expected (3, 2), got (2, 3)" in str(info.value)
    with api.hidden_section(), pytest.raises(TaskFailed, match="dW: wrong shape$"):
        check_function(dense_backward, [case], reference=lambda d, x, W: (d @ W.T, x.T @ d, d.sum(0)))

    def untouched(x):
        raise NotImplementedError()

    with pytest.raises(TaskFailed, match="not attempted yet") as info:
        check_function(untouched, [(1.0,)], expected=[1.0])
    assert info.value.status == "not-attempted" and info.value._render_traceback_()[-1].endswith("NotImplementedError)")


def test_student_errors_keep_only_the_students_frames():
    def mine(x):
        return np.ones((2, 3)) @ x

    with pytest.raises(TaskFailed) as info:
        check_function(mine, [(np.ones(2),)], expected=[np.ones(2)])
    tb = info.value.student_exc.__traceback__
    files = set()
    while tb is not None:
        files.add(tb.tb_frame.f_code.co_filename)
        tb = tb.tb_next
    assert api.__file__ not in files and __file__ in files
    assert info.value.__suppress_context__


def test_check_raises_and_judged_results():
    def checked(x, activation="relu"):
        if activation != "relu":
            raise ValueError(f"unknown activation {activation!r}")
        return x

    check_raises(checked, [{"args": (1.0,), "kwargs": {"activation": "swish"}}], ValueError, match="activation")
    with pytest.raises(TaskFailed, match="expected ValueError, but it returned 1.0"):
        check_raises(lambda x: x, [(1.0,)], ValueError)
    with pytest.raises(TaskFailed, match="expected ValueError, got ZeroDivisionError"):
        check_raises(lambda x: 1 / 0, [(1.0,)], ValueError)
    check_function(lambda n: np.arange(n), [(3,)], test=lambda got, n: None if len(got) == n else "wrong length")
    with pytest.raises(TaskFailed, match="accuracy 0.50, below 0.9"):
        check_function(lambda n: n, [(3,)], test=lambda got, n: "accuracy 0.50, below 0.9")


def test_forbid_lists_may_be_constants_of_the_setup_cell():
    from grader.notebook import string_constants

    constants = string_constants('NO_A = ("a.b", "c.d")\nNO_B = NO_A + ("e.f",)\nx = 1\n')
    assert constants == {"NO_A": {"a.b", "c.d"}, "NO_B": {"a.b", "c.d", "e.f"}}
    assert forbidden_literals('check_function(f, [], forbid=NO_B + ("g.h",))', constants) == {"a.b", "c.d", "e.f", "g.h"}
    with pytest.raises(ValueError, match="forbid=make_list"):
        forbidden_literals("check_function(f, [], forbid=make_list())", constants)


def test_console_and_score_lines_name_tasks_and_cut_no_word():
    from grader.grade import Result, Row, clip, console_line, score_summary

    a = load_assignment(SOURCE03)
    rows = [Row("ann", A03, t.grade_id, 0.0, t.points, "failed", "x") for t in a.tasks]
    rows += [Row("ann", A03, q.grade_id, None, q.points, "manual") for q in a.questions[:2]]
    rows += [Row("ann", A03, a.questions[2].grade_id, 0.0, a.questions[2].points, "unanswered")]
    res = Result("ann", rows, 1.0)
    assert score_summary(res, a) == "auto 0/11, manual 4 pending (1 not answered)"
    line = console_line(3, 12, res, a)
    assert line.startswith("[ 3/12] ann: auto 0/11, manual 4 pending (1 not answered) in 1.0 s (Task 1: failed; ")
    assert line.endswith(" more)") and "test_" not in line
    assert clip("alpha beta gamma delta", 15) == "alpha beta ..." and clip("alpha beta", 15) == "alpha beta"
    assert clip("alphabet soup", 12) == "alphabet ..."


def test_hidden_failures_reveal_neither_inputs_nor_expected_values():
    secret_input = np.array([123.456], np.float32)
    with api.hidden_section(), pytest.raises(TaskFailed) as info:
        check_function(lambda x: x + 1, [(secret_input,)], expected=[np.array([987.654], np.float32)],
                       description="a secret case")
    msg = str(info.value)
    assert "hidden test (a secret case)" in msg and "values differ" in msg
    assert "123.4" not in msg and "987.6" not in msg


def test_check_function_local_forbid_detects_library_call():
    from course_lib import activations

    with pytest.raises(TaskFailed, match="forbids") as info:
        check_function(lambda x: activations.relu(x), [(np.array([1.0, -1.0], np.float32),)],
                       expected=[np.array([1.0, 0.0], np.float32)], forbid=("course_lib.activations.relu",))
    assert info.value.status == "forbidden"


@pytest.mark.parametrize("kwargs, match", [
    ({"cases": [], "expected": []}, "cases"),
    ({"cases": [(1.0,)]}, "exactly one of reference"),
    ({"cases": [(1.0,)], "expected": [1.0], "reference": abs}, "exactly one of reference"),
    ({"cases": [(1.0,)], "expected": [1.0, 2.0]}, "expected must have one entry per case"),
    ({"cases": [(1.0,)], "expected": [1.0], "dtype": "float"}, "dtype must be one of"),
])
def test_check_function_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        check_function(abs, **kwargs)


def test_check_value():
    check_value(np.float32(0.25), 0.25)
    with pytest.raises(TaskFailed, match="expected"):
        check_value(np.array([1, 2]), np.array([1, 3]))


# ----------------------------------------------------------------------------- wire format
def test_wire_round_trip():
    import jax.numpy as jnp

    value = (np.arange(6, dtype=np.int32).reshape(2, 3), {"w": jnp.ones(2), "n": None, "s": "x"},
             [1, 2.5, True], np.float32(3.0))
    spec, chunks = _child.encode(value)
    out = _child.decode(json.loads(json.dumps(spec)), b"".join(chunks))
    assert compare(out, value) is None
    assert isinstance(out[3], np.float32) and isinstance(out[2], list)


@pytest.mark.parametrize("spec", [
    {"t": "arr", "dtype": "|O", "shape": [1], "off": 0, "n": 8},          # object array (pickle)
    {"t": "arr", "dtype": "<f8", "shape": [1000], "off": 0, "n": 8000},    # claims more bytes than sent
    {"t": "arr", "dtype": "<f8", "shape": [-1], "off": 0, "n": 8},
    {"t": "arr", "dtype": "[('a','<f8')]", "shape": [1], "off": 0, "n": 8},
    {"t": "code", "v": "import os"},
    {"t": "int", "v": "1"},
    {"t": "dict", "items": [[1, {"t": "none"}]]},
])
def test_wire_decode_rejects_hostile_specs(spec):
    with pytest.raises((ValueError, TypeError)):
        _child.decode(spec, b"\0" * 8)


def test_wire_encode_refuses_objects():
    with pytest.raises(TypeError, match="cannot be sent"):
        _child.encode(object())
    with pytest.raises(TypeError, match="cannot be sent"):
        _child.encode(np.array(["a"], dtype=object))


# ----------------------------------------------------------------------------- notebook parsing
def test_split_hidden_and_static_parsing():
    visible, hidden = split_hidden("a = 1\n### BEGIN HIDDEN TESTS\nb = 2\n### END HIDDEN TESTS\nc = 3\n")
    assert "a = 1" in visible and "c = 3" in visible and "b = 2" not in visible
    assert "b = 2" in hidden and "a = 1" not in hidden
    assert defined_names("import os\ndef f(x):\n    return x\ng = f\nclass C: pass\n") == ["f", "g", "C"]
    assert forbidden_literals('check_function(f, [], expected=[], forbid=("a.b", "c.d"))') == {"a.b", "c.d"}


def test_static_forbidden_detection_follows_aliases_and_helpers():
    setup = ["import jax\nimport jax.numpy as jnp"]
    student = ["from course_lib import activations as A\n"
               "def helper(x):\n    return A.sigmoid(x)\n"
               "def sigmoid(x):\n    return helper(x)\n"
               "def other(x):\n    return jax.nn.relu(x)\n"]
    refs = static.referenced_names(student, setup, ["sigmoid"])
    assert static.forbidden_used(refs, {"course_lib.activations.sigmoid"}) == {"course_lib.activations.sigmoid"}
    assert not static.forbidden_used(refs, {"jax.nn.relu"})  # used only by another function
    private = static.referenced_names(["import course_lib.activations\ndef s(x):\n"
                                       "    return course_lib.activations._sigmoid(x)\n"], [], ["s"])
    assert static.forbidden_used(private, {"course_lib.activations.sigmoid"})


def test_find_submissions_layouts(tmp_path):
    a = load_assignment(SOURCE03)
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / "ann.ipynb").write_text("{}")
    nbg = tmp_path / "course" / "submitted" / "bob" / A03
    nbg.mkdir(parents=True)
    (nbg / "03_exercises.ipynb").write_text("{}")
    (tmp_path / "course" / "submitted" / "eve").mkdir()
    assert find_submissions(tmp_path / "flat", a) == [("ann", tmp_path / "flat" / "ann.ipynb")]
    found = dict(find_submissions(tmp_path / "course", a))
    assert found == {"bob": nbg / "03_exercises.ipynb", "eve": None}


# ----------------------------------------------------------------------------- hostile submissions
EXPECTED = {
    # case: points per task (TASKS order), status of each failing task, words in its reason
    "good": ([2, 2, 2, 2, 3], {}),
    "infinite_loop": ([0, 2, 0, 2, 3], {"test_sigmoid": ("timeout", "did not return"),
                                        "test_relu_grad": ("missing", "did not finish")}),
    "memory_bomb": ([0, 2, 2, 0, 0], {"test_sigmoid": ("error", "MemoryError"),
                                      "test_leaky_relu_grad": ("error", "RESOURCE_EXHAUSTED"),
                                      "test_softmax": ("error", "MemoryError")}),
    "sys_exit": ([2, 0, 0, 2, 3], {"test_sigmoid_grad": ("missing", "SystemExit"),
                                   "test_relu_grad": ("error", "SystemExit")}),
    "os_exit": ([0, 2, 0, 2, 3], {"test_sigmoid": ("missing", "stopped the kernel"),
                                  "test_relu_grad": ("crashed", "exited with code 3")}),
    "crash": ([0, 2, 0, 2, 0], {"test_sigmoid": ("error", "PermissionError"),
                                "test_relu_grad": ("crashed", "SIGABRT"),
                                "test_softmax": ("crashed", "SIGSEGV")}),
    "invalid_json": ([0, 0, 0, 0, 0], {t: ("invalid-notebook", "not valid notebook JSON") for t in TASKS}),
    "missing_and_reordered": ([2, 2, 0, 2, 3], {"test_relu_grad": ("missing", "missing from your notebook")}),
    "edited_tests": ([0, 0, 2, 2, 0], {"test_sigmoid": ("failed", "values differ"),
                                       "test_sigmoid_grad": ("failed", "values differ"),
                                       "test_softmax": ("failed", "values differ")}),
    "monkeypatch": ([0, 0, 0, 2, 0], {t: ("failed", "values differ") for t in TASKS if t != "test_leaky_relu_grad"}),
    "read_solutions": ([0, 2, 2, 2, 0], {"test_sigmoid": ("failed", "values differ"),
                                         "test_softmax": ("failed", "values differ")}),
    "write_files": ([2, 2, 2, 2, 3], {}),
    "huge_output": ([2, 2, 2, 2, 3], {}),
    "bad_answers": ([0, 0, 0, 2, 0], {"test_sigmoid": ("failed", "NaN"),
                                      "test_sigmoid_grad": ("failed", "expected an array"),
                                      "test_relu_grad": ("failed", "wrong dtype"),
                                      "test_softmax": ("failed", "wrong shape")}),
    "forbidden_call": ([0, 2, 0, 2, 0], {"test_sigmoid": ("forbidden", "course_lib.activations.sigmoid"),
                                         "test_relu_grad": ("forbidden", "course_lib.activations.relu_grad"),
                                         "test_softmax": ("forbidden", "jax.nn.softmax")}),
}


def _digest(folder: pathlib.Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """Grade every fixture (plus an untouched classmate) with `python -m grader`, as an instructor would."""
    root = tmp_path_factory.mktemp("grading")
    subs = root / "submissions"
    subs.mkdir()
    for case in EXPECTED:
        shutil.copy(FIXTURES / f"{case}.ipynb", subs / f"{case}.ipynb")
    shutil.copy(FIXTURES / "good.ipynb", subs / "classmate.ipynb")
    before = _digest(subs)
    out = root / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "grader", A03, str(subs), "--out", str(out), "--jobs", "2", "--timeout", "15",
         "--cache", str(root / "cache")],
        capture_output=True, text=True, cwd=REPO, timeout=1500)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(out / "gradebook.csv") as f:
        rows = list(csv.DictReader(f))
    return {"rows": rows, "stdout": proc.stdout, "out": out, "subs": subs, "before": before, "root": root}


def _rows(graded, student):
    return {r["task"]: r for r in graded["rows"] if r["student"] == student}


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_hostile_submission_gets_exact_scores(graded, case):
    points, failures = EXPECTED[case]
    rows = _rows(graded, case)
    got = [float(rows[t]["points"]) for t in TASKS]
    assert got == points, {t: (rows[t]["status"], rows[t]["reason"][:200]) for t in TASKS}
    for task in TASKS:
        if task in failures:
            status, words = failures[task]
            assert rows[task]["status"] == status, rows[task]
            assert words in rows[task]["reason"], rows[task]
        else:
            assert rows[task]["status"] == "passed", rows[task]
            assert rows[task]["max_points"] == f"{FULL[task]:g}"


def test_every_submission_is_graded_with_progress(graded):
    students = {r["student"] for r in graded["rows"]}
    assert students == set(EXPECTED) | {"classmate"}
    lines = [line for line in graded["stdout"].splitlines() if line.startswith("[")]
    assert len(lines) == len(students) and lines[-1].startswith(f"[{len(students)}/{len(students)}]")
    assert "graded 16 submission(s)" in graded["stdout"]
    header = list(graded["rows"][0])
    assert header == ["student", "assignment", "task", "points", "max_points", "status", "reason"]
    manual = [r for r in graded["rows"] if r["student"] == "good" and r["task"].startswith("q_")]
    assert len(manual) == 3 and all(r["status"] == "manual" and r["points"] == "" for r in manual)


def test_nothing_else_is_lost_or_overwritten(graded):
    assert _digest(graded["subs"]) == graded["before"], "a submission file was modified"
    text = (graded["out"] / "gradebook.csv").read_text()
    assert "HACKED" not in text
    for fb in (graded["out"] / "feedback").iterdir():
        assert "HACKED" not in fb.read_text()
    assert not pathlib.Path("/tmp/hacked_by_student.txt").exists()
    assert not (graded["root"] / "hacked_by_student.txt").exists()
    assert _rows(graded, "classmate")["test_softmax"]["status"] == "passed"


def test_feedback_says_what_failed_without_revealing_hidden_tests(graded):
    a = load_assignment(SOURCE03)
    hidden_lines = [line.strip() for t in a.tasks for line in t.hidden.splitlines()
                    if len(line.strip()) > 12 and line.strip() not in t.visible]
    for fb in (graded["out"] / "feedback").iterdir():
        text = fb.read_text()
        assert len(text) < 20_000, f"{fb.name}: feedback too long"
        for line in hidden_lines:
            assert line not in text, f"{fb.name} reveals a hidden test line: {line}"
        for secret in ("80.", "500.", "700.", "linspace", "default_rng", "_sigmoid64", "_softmax64"):
            assert secret not in text, f"{fb.name} reveals {secret}"
    bad = (graded["out"] / "feedback" / "bad_answers.md").read_text()
    assert "### Task 3: the derivative of ReLU: failed" in bad and "expected" in bad and "got" in bad
    assert "test_relu_grad" not in bad  # tasks are named by their titles, not their test cells
    assert "array([ True" in bad or "bool" in bad  # what came back, for a visible test
    edited = (graded["out"] / "feedback" / "edited_tests.md").read_text()
    assert "**auto 4/11, manual 5 pending**" in edited
    good = (graded["out"] / "feedback" / "good.md").read_text()
    assert "**auto 11/11, manual 5 pending**" in good and "| Question 1: saturation | pending / 2 |" in good


def test_console_names_tasks_and_cuts_no_word(graded):
    lines = {line.split("] ", 1)[1].split(":", 1)[0]: line for line in graded["stdout"].splitlines()
             if line.startswith("[")}
    assert lines["good"].split(": ", 1)[1].startswith("auto 11/11, manual 5 pending in ")
    assert "(Task 1: failed; Task 2: failed; Task 5: failed)" in lines["edited_tests"]
    crash = lines["crash"]
    assert crash.endswith(")") and "test_" not in crash


def test_feedback_markdown_for_an_unreadable_notebook(graded):
    text = (graded["out"] / "feedback" / "invalid_json.md").read_text()
    assert "auto 0/11, manual 0/5" in text and "not valid notebook JSON" in text


def test_cli_rejects_unknown_assignment(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "grader", "99_nope", str(tmp_path)], capture_output=True,
                          text=True, cwd=REPO)
    assert proc.returncode == 2 and "no source notebook" in proc.stderr


# ----------------------------------------------------------------------------- defence in depth
@pytest.mark.skipif(not hasattr(__import__("os"), "getuid") or __import__("os").getuid() != 0,
                    reason="mount namespaces need root")
def test_sandbox_hides_folders_even_from_code_that_gets_past_the_audit_hook(tmp_path):
    """os.stat and _posixsubprocess are not audited: the hidden folders must be empty anyway."""
    from grader.sandbox import Limits, RemoteFunction, Sandbox

    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "answers.txt").write_text("42")
    limits = Limits(timeout=60)
    limits.run_dir = str(tmp_path / "run")
    pathlib.Path(limits.run_dir).mkdir()
    limits.hide = [str(secret), limits.run_dir]
    code = f'''
import os
def probe():
    out = {{"secret": os.path.exists({str(secret / "answers.txt")!r}), "proc": os.path.exists("/proc/1/root")}}
    try:
        import _posixsubprocess
        _posixsubprocess.fork_exec(["/bin/true"], [b"/bin/true"], True, (), None, None, -1, -1, -1, -1, -1,
                                   -1, -1, -1, False, False, None, None, None, -1, None, False)
        out["spawn"] = "ran"
    except Exception as exc:
        out["spawn"] = type(exc).__name__
    with open("mine.txt", "w") as f:   # its own folder stays writable
        f.write("ok")
    out["own"] = open("mine.txt").read()
    return out
'''
    sandbox = Sandbox([{"id": "c", "source": code}], limits=limits)
    try:
        got = RemoteFunction(sandbox, "probe")()
    finally:
        sandbox.close()
    assert sandbox.isolated
    assert got == {"secret": False, "proc": False, "spawn": "PermissionError", "own": "ok"}
    assert (secret / "answers.txt").read_text() == "42"


def test_check_value_rejects_bad_dtype_mode():
    with pytest.raises(ValueError, match="dtype must be one of"):
        check_value(1.0, 1.0, dtype="float32")


def _write_source(path, cells):
    from grader.authoring import write

    write(path, cells)
    return path


def test_load_assignment_rejects_malformed_sources(tmp_path):
    from grader.authoring import setup, solution, tests

    ok = [setup("x = 1"), solution("f", "def f():\n    return 1")]
    with pytest.raises(ValueError, match="needs points > 0"):
        load_assignment(_write_source(tmp_path / "a.ipynb", ok + [tests("t", 0, "check_value(f(), 1)")]))
    with pytest.raises(ValueError, match="duplicate grade_id 'f'"):
        load_assignment(_write_source(tmp_path / "b.ipynb", ok + [solution("f", "g = 2")]))
    with pytest.raises(ValueError, match="invalid grade_id"):
        load_assignment(_write_source(tmp_path / "c.ipynb", ok + [tests("bad id!", 1, "pass")]))
    with pytest.raises(ValueError, match="not valid Python"):
        load_assignment(_write_source(tmp_path / "d.ipynb", ok + [tests("t", 1, "check_value(f(, 1)")]))


def test_missing_submissions_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="submissions folder"):
        find_submissions(tmp_path / "nope", load_assignment(SOURCE03))


def test_forbid_recorder_keeps_the_original_visible(capsys):
    """Grading with forbid= wraps a library function; the wrapper must stay transparent (unwrap, name, source)."""
    import inspect

    from course_lib import activations, checks

    check_function(lambda x: x * 0 + np.maximum(x, 0), [(np.array([1.0, -1.0], np.float32),)],
                   expected=[np.array([1.0, 0.0], np.float32)], forbid=("course_lib.activations.relu",))
    capsys.readouterr()
    assert activations.relu.__name__ == "relu"
    assert inspect.unwrap(activations.relu).__code__.co_name == "relu"
    checks.show_source(activations.relu)
    assert capsys.readouterr().out.startswith("def relu(x):")
