"""The grader: helpers, wire format, static checks, and hostile submissions graded end to end.

The hostile notebooks live in tests/grading/fixtures/ (written by tests/grading/make_fixtures.py from
the chapter-03 student copy). They are graded once, by the real command (`python -m grader`) with its
operating-system sandbox (bubblewrap), in a folder that also holds honest students' files; each test
then asserts the exact score of every task, that nothing outside the sandboxes changed (the project's
files, a canary in the home folder, an earlier gradebook), that no process outlived the grading and
that no feedback shows a hidden test or its inputs. Further tests check the kernel's layer without the
audit hook, the refusal without bubblewrap (and --no-sandbox), and the forbidden-function stubs.
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
import pathlib
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

from grader import _child, api, static
from grader.api import TaskFailed, check_function, check_raises, check_value, compare
from grader.grade import feedback_markdown, find_submissions
from grader.notebook import defined_names, forbidden_literals, load_assignment, split_hidden

REPO = pathlib.Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "grading" / "fixtures"
sys.path.insert(0, str(FIXTURES.parent))
from make_fixtures import copy_submissions  # noqa: E402


@pytest.fixture(autouse=True)
def _library_left_as_found():
    """check_function(forbid=...) run in this process leaves its recorder installed in place of the
    forbidden library function (in a student's kernel that is harmless: the wrapper is transparent).
    Other test files that share this worker compare library functions by identity, so each test here
    puts every course_lib function back as it found it (the module these tests forbid from is
    imported first, so that it is among them)."""
    import course_lib.activations  # noqa: F401

    modules = {name: mod for name, mod in sys.modules.items() if name.startswith("course_lib")}
    saved = {name: dict(vars(mod)) for name, mod in modules.items()}
    yield
    for name, mod in modules.items():
        for attr, value in saved[name].items():
            if vars(mod).get(attr) is not value:
                setattr(mod, attr, value)


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


def test_wire_read_message_turns_every_malformed_header_into_a_value_error():
    for header in (b"[" * 60_000, b"\xff\xfe", b"[1, 2]", b'{"op": NaN'):  # (all of it fits in a pipe's buffer)
        r, w = os.pipe()
        os.write(w, len(header).to_bytes(8, "little") + (0).to_bytes(8, "little") + header)
        os.close(w)
        with pytest.raises(ValueError):
            _child.read_message(r, time.monotonic() + 5)
        os.close(r)


def test_text_from_the_sandbox_is_made_safe_to_show():
    from grader.safe_text import clean_text

    assert clean_text("a\udcff\x00\x1b[2J\u202eb\nc\td", 100) == "a\\udcff\\x00\\x1b[2J\\u202eb\nc\td"
    assert clean_text("x" * 1000, 10) == "x" * 10
    "".join(clean_text(chr(i), 5) for i in range(0x110000)).encode("utf-8")  # always writable


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
    # sigmoid_grad uses activations.sigmoid, which only test_sigmoid forbids: it runs in a child of its own
    "forbidden_call": ([0, 2, 0, 2, 0], {"test_sigmoid": ("forbidden", "course_lib.activations.sigmoid"),
                                         "test_relu_grad": ("forbidden", "course_lib.activations.relu_grad"),
                                         "test_softmax": ("forbidden", "jax.nn.softmax")}),
    # issue 20: attacks on the isolation itself; the attacked function raises unless the attack worked
    "path_guard_bypass": ([0, 2, 2, 2, 3], {"test_sigmoid": ("error", "nothing outside the sandbox was reachable")}),
    "spawn_escape": ([0, 2, 2, 2, 3], {"test_sigmoid": ("error", "no process could be started")}),
    "cache_poison": ([0, 2, 2, 2, 3], {"test_sigmoid": ("error", "the compile cache is read-only")}),
    "forbid_bypass": ([0, 2, 2, 2, 0], {"test_sigmoid": ("forbidden", "course_lib.activations.sigmoid"),
                                        "test_softmax": ("forbidden", "course_lib.activations.softmax")}),
    "hidden_leak": ([2, 2, 0, 2, 0], {"test_relu_grad": ("error", "inputs seen so far: [-1.0, 0.0, 2.0]"),
                                      "test_softmax": ("error", "raised an exception of its own class")}),
    # red-teaming the bubblewrap grader: each of these got through before the fix named in the comment
    # seccomp: no memfd, shared memory or io_uring (memory the address-space limit does not count)
    "kernel_memory": ([0, 2, 2, 2, 3], {"test_sigmoid": ("error", "no memory outside the limits")}),
    # a pids cgroup (as root) / RLIMIT_NPROC: the kernel holds each sandbox to 256 processes and threads
    "thread_bomb": ([0, 2, 2, 2, 3], {"test_sigmoid": ("error", "the thread limit held")}),
    # the zygote stops a child that keeps more than 10000 files in /tmp
    "file_flood": ([0, 2, 2, 2, 3], {"test_sigmoid": ("crashed", "more than 10000 files")}),
    # /tmp wiped between children; forged messages refused; hidden-phase failures carry no exit status
    "hidden_exit_leak": ([2, 2, 2, 0, 0], {"test_leaky_relu_grad": ("crashed", "hidden test (alpha = 0.3)"),
                                           "test_softmax": ("crashed", "the sandbox failed before running your code")}),
    # the grader's parser and CSV writer survive what a solution cell holds
    "parser_bombs": ([2, 2, 0, 2, 0], {"test_relu_grad": ("missing", "nested too deeply for the grader"),
                                       "test_softmax": ("error", "bad \\udcff\\x00 =cmd|' /C calc'!A0 \\x1b]0;owned\\x07\\x1b[2J \\u202eexe.txt")}),
    "huge_cell": ([0, 0, 0, 0, 0], {t: ("invalid-notebook", "characters of code; the grader accepts") for t in TASKS}),
    # visible and hidden tests compile into separate caches; a student's sandbox shows only the visible one
    # (the audit hook refuses the hidden one's path first; without it, it is not mounted: kernel test below)
    "cache_snoop": ([0, 2, 2, 2, 3], {"test_sigmoid": ("error", "hidden compilations unreadable (PermissionError)")}),
}
HONEST = ["classmate", "zz_classmate"]  # copies of `good`, graded before and after every attacker


def _digest(folder: pathlib.Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def _project_digest() -> dict:
    """Every file git tracks in the project, its .git pointer, and what the venv runs at startup (.pth)."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout.split(b"\0")
    out = {}
    for name in [f.decode() for f in files if f] + [".git"]:
        path = REPO / name
        if path.is_file():
            out[name] = hashlib.sha256(path.read_bytes()).hexdigest()
    for site in {pathlib.Path(p) for p in sys.path if "site-packages" in p and pathlib.Path(p).is_dir()}:
        out[f"{site}: entries"] = ",".join(sorted(p.name for p in site.iterdir()))
        for pth in site.glob("*.pth"):
            out[str(pth)] = hashlib.sha256(pth.read_bytes()).hexdigest()
    return out


def _processes_with(marker: str) -> list:
    found = []
    for proc in pathlib.Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if proc.name.isdigit() and marker in cmdline and int(proc.name) != os.getpid():
            found.append(cmdline[:200])
    return found


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """Grade every fixture (plus two untouched classmates) with `python -m grader`, as an instructor would,
    with the operating-system sandbox on; record what lies outside the sandbox before and after."""
    root = tmp_path_factory.mktemp("grading")
    subs = copy_submissions(root, EXPECTED, HONEST)
    earlier = root / "earlier-run" / "gradebook.csv"     # a gradebook of an earlier grading run
    earlier.parent.mkdir()
    earlier.write_text("student,assignment,task,points\nann,03,test_sigmoid,2\n")
    canary = pathlib.Path.home() / f".grader-canary-{os.getpid()}"
    canary.write_text("the instructor's own file")
    before = {"subs": _digest(subs), "project": _project_digest(), "earlier": earlier.read_text()}
    out = root / "out"
    cache = root / "cache"   # named on every sandbox's command line: finds leftover processes
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "grader", A03, str(subs), "--out", str(out), "--jobs", "2", "--timeout", "15",
             "--cache", str(cache)], capture_output=True, text=True, cwd=REPO, timeout=1800)
        time.sleep(6)  # longer than an escaped process would wait before it strikes
        after = {"subs": _digest(subs), "project": _project_digest(), "earlier": earlier.read_text(),
                 "canary": canary.read_text() if canary.exists() else None,
                 "leftovers": _processes_with(str(cache)) + _processes_with("grader-escapee")}
    finally:
        canary.unlink(missing_ok=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(out / "gradebook.csv") as f:
        rows = list(csv.DictReader(f))
    return {"rows": rows, "stdout": proc.stdout, "stderr": proc.stderr, "out": out, "subs": subs,
            "before": before, "after": after, "root": root, "cache": cache}


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


@pytest.mark.parametrize("student", HONEST)
def test_honest_students_get_full_marks_next_to_attackers(graded, student):
    rows = _rows(graded, student)
    assert [float(rows[t]["points"]) for t in TASKS] == EXPECTED["good"][0], rows


def test_every_submission_is_graded_with_progress(graded):
    students = {r["student"] for r in graded["rows"]}
    assert students == set(EXPECTED) | set(HONEST)
    lines = [line for line in graded["stdout"].splitlines() if line.startswith("[")]
    assert len(lines) == len(students) and lines[-1].startswith(f"[{len(students)}/{len(students)}]")
    assert f"graded {len(students)} submission(s)" in graded["stdout"]
    assert "WARNING" not in graded["stdout"] + graded["stderr"]
    assert not (graded["out"] / "WARNING-no-sandbox.txt").exists()
    header = list(graded["rows"][0])
    assert header == ["student", "assignment", "task", "points", "max_points", "status", "reason"]
    manual = [r for r in graded["rows"] if r["student"] == "good" and r["task"].startswith("q_")]
    assert len(manual) == 3 and all(r["status"] == "manual" and r["points"] == "" for r in manual)


def test_nothing_outside_the_sandbox_changed(graded):
    before, after = graded["before"], graded["after"]
    assert after["subs"] == before["subs"], "a submission file was modified"
    changed = {k for k in set(before["project"]) | set(after["project"])
               if before["project"].get(k) != after["project"].get(k)}
    assert not changed, f"project files changed: {sorted(changed)[:10]}"
    assert after["earlier"] == before["earlier"], "an earlier gradebook was modified"
    assert after["canary"] == "the instructor's own file", "the canary in the home folder was touched"
    assert after["leftovers"] == [], "processes outlived the grading"
    text = (graded["out"] / "gradebook.csv").read_text()
    assert "HACKED" not in text
    for fb in (graded["out"] / "feedback").iterdir():
        assert "HACKED" not in fb.read_text() and "ATTACK WORKED" not in fb.read_text()
    assert not pathlib.Path("/tmp/hacked_by_student.txt").exists()
    assert not (graded["root"] / "hacked_by_student.txt").exists()


def _test_inputs(part: str) -> set[float]:
    """The numbers the visible or hidden tests of chapter 03 send (found by running them with a recording
    stand-in); for the visible part, also the expected values (feedback may show those)."""
    a = load_assignment(SOURCE03)
    seen = set()

    def record(fn, cases, expected=(), **kwargs):
        for case in cases:
            args = case["args"] if isinstance(case, dict) else case
            seen.update(float(v) for v in np.ravel(np.asarray(args[0], np.float64)))
        for value in expected:
            seen.update(float(v) for v in np.ravel(np.asarray(value, np.float64)))

    ns = {}
    for kind, _, src in a.cells:  # the setup cells define the forbid lists the tests name
        if kind == "setup":
            exec(src, ns)
    ns.update({"np": np, "check_function": record, "check_value": lambda *a, **k: None})
    for name in a.student_names:
        ns[name] = name
    for task in a.tasks:
        exec(getattr(task, part), ns)
    return seen


def _hidden_inputs() -> list[str]:
    """The numbers only the hidden tests of chapter 03 send, as they would be printed (7 characters)."""
    visible = _test_inputs("visible")
    return sorted({repr(v)[:7] for v in _test_inputs("hidden") - visible if len(repr(v)) >= 6})


def test_feedback_says_what_failed_without_revealing_hidden_tests(graded):
    a = load_assignment(SOURCE03)
    hidden_lines = [line.strip() for t in a.tasks for line in t.hidden.splitlines()
                    if len(line.strip()) > 12 and line.strip() not in t.visible]
    numbers = _hidden_inputs()
    assert len(numbers) > 50 and {"-700.0", "-500.0"} <= set(numbers)
    for fb in (graded["out"] / "feedback").iterdir():
        text = fb.read_text()
        assert len(text) < 20_000, f"{fb.name}: feedback too long"
        for line in hidden_lines:
            assert line not in text, f"{fb.name} reveals a hidden test line: {line}"
        for secret in ("80.", "500.", "700.", "linspace", "default_rng", "_sigmoid64", "_softmax64", "Leak_"):
            assert secret not in text, f"{fb.name} reveals {secret}"
        for number in numbers:
            assert number not in text, f"{fb.name} reveals a hidden test input ({number})"
    leak = (graded["out"] / "feedback" / "hidden_leak.md").read_text()
    assert "inputs seen so far: [-1.0, 0.0, 2.0]" in leak  # the recording works: it only ever saw visible inputs
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


def test_nothing_a_submission_chose_reaches_the_outputs_unescaped(graded):
    """Control characters, lone surrogates and formulas from a student's exception message are escaped; a
    hidden test's failure never shows an exit status (the student's code chooses it)."""
    texts = [(graded["out"] / "gradebook.csv").read_text(encoding="utf-8")]
    texts += [fb.read_text(encoding="utf-8") for fb in (graded["out"] / "feedback").iterdir()]
    texts.append(graded["stdout"])
    for text in texts:
        assert not any(ord(c) < 32 and c not in "\n\t" for c in text)
        assert "\u202e" not in text and not any(0xD800 <= ord(c) < 0xE000 for c in text)
    with open(graded["out"] / "gradebook.csv") as f:
        assert not any(cell[:1] in "=+-@" for row in csv.reader(f) for cell in row if cell)
    leak = (graded["out"] / "feedback" / "hidden_exit_leak.md").read_text()
    assert "exited with code" not in leak and "77" not in leak and "216" not in leak


def test_compile_cache_keeps_hidden_compilations_apart(graded):
    """The source notebook's visible and hidden tests filled separate folders of the cache."""
    visible, hidden = graded["cache"] / "visible", graded["cache"] / "hidden"
    assert visible.is_dir() and hidden.is_dir()
    assert not any(p.is_file() for p in graded["cache"].iterdir())
    # Chapter 03's solutions and tests are plain NumPy since issue 22 (nothing is compiled): the folders
    # can only be compared when the source compiles something (chapter 00's does, next test).
    if any(hidden.iterdir()):
        assert not {p.name for p in hidden.iterdir()} & {p.name for p in visible.iterdir()}


def test_compile_cache_of_a_jitted_assignment_keeps_hidden_compilations_apart(tmp_path):
    """Chapter 00's source compiles JAX functions in its visible and in its hidden tests: after the
    warm-up both folders hold compilations, and none of the hidden ones is in the folder students see."""
    from grader.grade import Grader
    from grader.notebook import find_source, load_assignment
    from grader.sandbox import Limits, sandbox_problem

    name = "00_jax_primer"
    limits = Limits(cache_dir=tmp_path / "cache")
    assert sandbox_problem(limits) is None
    grader = Grader(load_assignment(find_source(REPO / "solutions", name), name), limits)
    try:
        warm = grader.warm_up()
    finally:
        grader.close()
    assert all(r.status in ("passed", "manual") for r in warm.rows), warm.rows
    visible = {p.name for p in (tmp_path / "cache" / "visible").iterdir()}
    hidden = {p.name for p in (tmp_path / "cache" / "hidden").iterdir()}
    assert visible and hidden and not visible & hidden


def _crafted_folder(root: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
    """A submissions folder whose entries attack the grader itself, and a copy of the sources next to it."""
    source = root / "source"
    shutil.copytree(REPO / "solutions" / A03, source / A03)
    subs = root / "subs"
    subs.mkdir()
    good = FIXTURES / "good.ipynb"
    shutil.copy(good, subs / "classmate.ipynb")
    names = {"bytes": b"\xff\xfe".decode("utf-8", "surrogateescape"), "formula": "=cmd|' -c calc'!A0",
             "newline": "eve\n[2|9] alice: 11|16 points\x1b[2J\u202e"}
    for name in names.values():
        shutil.copy(good, subs / f"{name}.ipynb")  # (graded normally, under a name that is safe to show)
    os.symlink(source, subs / "mallory")                                   # a "student folder": the solutions
    os.symlink(source / A03 / "03_exercises.ipynb", subs / "trudy.ipynb")  # a notebook: the source itself
    os.symlink("/etc/shadow", subs / "shadow.ipynb")
    os.link(source / A03 / "03_exercises.ipynb", subs / "hardy.ipynb")   # the source, under another name
    os.mkfifo(subs / "fifo.ipynb")                                         # reading it would block forever
    (subs / "folder.ipynb").mkdir()
    (subs / "huge.ipynb").write_text("[" + "{}," * 1_100_000 + "{}]")  # ~600 MB to parse
    return source, subs


def test_hostile_submission_folder(tmp_path):
    """File names, links, a FIFO: every entry is graded or refused, the grader finishes, the outputs
    are safe to open (no formulas, no terminal escapes), classmates are graded in full."""
    source, subs = _crafted_folder(tmp_path)
    out = tmp_path / "out"
    before = _digest(source / A03)
    proc = subprocess.run([sys.executable, "-m", "grader", A03, str(subs), "--out", str(out), "--source", str(source),
                           "--jobs", "2", "--cache", "none"], capture_output=True, text=True, cwd=REPO, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _digest(source / A03) == before
    with open(out / "gradebook.csv", encoding="utf-8") as f:
        rows = {}
        for r in csv.DictReader(f):
            rows.setdefault(r["student"], {})[r["task"]] = r
    graded_in_full = {"classmate", "\\xff\\xfe", "'=cmd|' -c calc'!A0", "eve\\n[2|9] alice: 11|16 points\\x1b[2J\\u202e"}
    refused = {"mallory": "symbolic link", "trudy": "symbolic link", "shadow": "symbolic link",
               "hardy": "the instructor's source notebook", "fifo": "not a regular file",
               "huge": "JSON items", "folder.ipynb": "no notebook was submitted"}
    assert set(rows) == graded_in_full | set(refused), sorted(rows)
    for student in graded_in_full:
        assert [float(rows[student][t]["points"]) for t in TASKS] == EXPECTED["good"][0], student
    for student, words in refused.items():
        assert all(rows[student][t]["status"] == "invalid-notebook" and words in rows[student][t]["reason"]
                   for t in TASKS), (student, rows[student]["test_sigmoid"])
    lines = [line for line in proc.stdout.splitlines() if line.startswith("[")]
    assert len(lines) == len(rows) and not any(ord(c) < 32 for c in proc.stdout.replace("\n", ""))
    feedback = sorted(p.name for p in (out / "feedback").iterdir())
    assert len(feedback) == len(rows)
    heading = [(out / "feedback" / n).read_text().splitlines()[0] for n in feedback if n.startswith("eve")]
    assert heading == ["# Feedback: 03_neurons_and_activations, eve\\\\n\\[2\\|9\\] alice: 11\\|16 points"
                       "\\\\x1b\\[2J\\\\u202e"]


def test_feedback_markdown_for_an_unreadable_notebook(graded):
    text = (graded["out"] / "feedback" / "invalid_json.md").read_text()
    assert "auto 0/11, manual 0/5" in text and "not valid notebook JSON" in text


def test_cli_rejects_unknown_assignment(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "grader", "99_nope", str(tmp_path)], capture_output=True,
                          text=True, cwd=REPO)
    assert proc.returncode == 2 and "no source notebook" in proc.stderr


# ----------------------------------------------------------------------------- without bubblewrap
def test_grader_refuses_untrusted_grading_when_bwrap_cannot_run(tmp_path):
    subs = tmp_path / "subs"
    subs.mkdir()
    shutil.copy(FIXTURES / "good.ipynb", subs / "ann.ipynb")
    env = dict(os.environ, GRADER_BWRAP=str(tmp_path / "no" / "bwrap"))
    proc = subprocess.run([sys.executable, "-m", "grader", A03, str(subs), "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"bubblewrap was not found at {tmp_path / 'no' / 'bwrap'}" in proc.stderr
    assert "--no-sandbox" in proc.stderr and "apt-get install bubblewrap" in proc.stderr
    assert not (tmp_path / "out" / "gradebook.csv").exists()


def test_grader_refuses_when_the_seccomp_filter_cannot_be_installed(tmp_path):
    """Without libseccomp the filter (no new processes, no exec, no memfd...) would be off: refuse, and with
    --no-sandbox say so in the warning."""
    subs = tmp_path / "subs"
    subs.mkdir()
    shutil.copy(FIXTURES / "good.ipynb", subs / "ann.ipynb")
    env = dict(os.environ, GRADER_LIBSECCOMP="libseccomp-missing.so.2")
    cmd = [sys.executable, "-m", "grader", A03, str(subs), "--out", str(tmp_path / "out"), "--cache", "none"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "seccomp filter cannot be installed" in proc.stderr and "apt-get install libseccomp2" in proc.stderr
    assert not (tmp_path / "out" / "gradebook.csv").exists()
    proc = subprocess.run(cmd + ["--no-sandbox"], capture_output=True, text=True, cwd=REPO, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "no seccomp filter" in proc.stderr
    assert "no seccomp filter" in (tmp_path / "out" / "WARNING-no-sandbox.txt").read_text()


def test_grader_as_root_refuses_when_no_pids_cgroup_can_hold_the_sandboxes(monkeypatch):
    """As root the kernel does not apply RLIMIT_NPROC to the sandboxes: without a pids cgroup, refuse."""
    from grader import sandbox

    if os.geteuid() != 0:
        pytest.skip("only a root user's sandboxes need a pids cgroup")
    monkeypatch.setattr(sandbox._PidsCgroups, "find", classmethod(lambda cls: None))
    monkeypatch.setattr(sandbox, "_PROBED", {})
    problem = sandbox.sandbox_problem(sandbox.Limits())
    assert "runs as root" in problem and "no pids cgroup could be made" in problem


def test_no_sandbox_grades_with_a_warning_on_the_console_and_in_the_output_folder(tmp_path):
    subs = tmp_path / "subs"
    subs.mkdir()
    shutil.copy(FIXTURES / "good.ipynb", subs / "ann.ipynb")
    shutil.copy(FIXTURES / "path_guard_bypass.ipynb", subs / "eve.ipynb")
    shutil.copy(FIXTURES / "spawn_escape.ipynb", subs / "mallory.ipynb")
    env = dict(os.environ, GRADER_BWRAP=str(tmp_path / "no" / "bwrap"))
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "grader", A03, str(subs), "--out", str(out), "--no-sandbox",
                           "--cache", "none"], capture_output=True, text=True, cwd=REPO, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "WARNING" in proc.stderr and "--no-sandbox" in proc.stderr and "without the operating-system" in proc.stderr
    warning = (out / "WARNING-no-sandbox.txt").read_text()
    assert "without the operating-system sandbox" in warning
    with open(out / "gradebook.csv") as f:
        rows = {(r["student"], r["task"]): r for r in csv.DictReader(f)}
    assert [float(rows[("ann", t)]["points"]) for t in TASKS] == EXPECTED["good"][0]
    # the guards inside the process (audit hook, seccomp) still stop the path-guard bypass and new processes
    assert rows[("eve", "test_sigmoid")]["status"] == "error"
    assert "nothing outside the sandbox was reachable" in rows[("eve", "test_sigmoid")]["reason"]
    assert "no process could be started" in rows[("mallory", "test_sigmoid")]["reason"]
    assert _processes_with("grader-escapee") == []


# ----------------------------------------------------------------------------- the operating-system layer alone
def _fixture_cell(case: str, grade_id: str) -> str:
    nb = json.loads((FIXTURES / f"{case}.ipynb").read_text())
    return next("".join(c["source"]) for c in nb["cells"]
                if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id)


def _bare_sandbox(tmp_path, source, **kwargs):
    """A sandbox whose child runs ``source`` WITHOUT the audit hook: only the kernel's limits apply."""
    from grader.sandbox import Limits, Sandbox

    from grader.sandbox import sandbox_problem

    limits = Limits(timeout=60, cache_dir=kwargs.pop("cache_dir", None))
    limits.run_dir = str(tmp_path)
    limits.audit_hook = False
    assert sandbox_problem(limits) is None  # (and, as root, the pids cgroups that hold the sandboxes)
    setup = {"id": "setup", "source": "import numpy as np\nimport jax\nimport jax.numpy as jnp"}
    return Sandbox([setup, {"id": "code", "source": source}], limits=limits, **kwargs)


@pytest.mark.parametrize("case, words", [
    ("path_guard_bypass", "nothing outside the sandbox was reachable"),
    ("spawn_escape", "no process could be started"),
    ("cache_poison", "the compile cache is read-only"),
    ("cache_snoop", r"hidden compilations unreadable \(FileNotFoundError\)"),  # hidden/ is not mounted
])
def test_attacks_are_contained_by_the_kernel_even_without_the_audit_hook(tmp_path, case, words):
    from grader.sandbox import RemoteFunction

    cache = tmp_path / "cache"
    (cache / "visible").mkdir(parents=True)  # (the part of the cache a student's sandbox shows)
    (cache / "visible" / "jit_exp-1234").write_bytes(b"a compiled kernel")
    (cache / "visible" / "jit_negative-1234").write_bytes(b"another kernel")
    (cache / "hidden").mkdir()
    (cache / "hidden" / "jit_exp-5678").write_bytes(b"a hidden test's kernel")
    before = [_digest(cache / part) for part in ("visible", "hidden")]
    sandbox = _bare_sandbox(tmp_path, _fixture_cell(case, "sigmoid"), cache_dir=cache)
    try:
        with pytest.raises(api.StudentCodeError, match=words):
            RemoteFunction(sandbox, "sigmoid")(np.array([1.0], np.float32))
        assert sandbox.isolated and sandbox.seccomp
    finally:
        sandbox.close()
    assert [_digest(cache / part) for part in ("visible", "hidden")] == before
    assert _processes_with("grader-escapee") == []


def test_what_the_sandbox_sees_and_may_do(tmp_path):
    """Without the audit hook: uid, namespaces, file system view, network, processes, limits."""
    from grader.sandbox import RemoteFunction

    IPC_KEY = 0x6A7E57  # noqa: N806  (a System V key no other program uses)
    canary = pathlib.Path.home() / f".grader-canary-{os.getpid()}-probe"
    canary.write_text("secret")
    secret = tmp_path / "secret.txt"
    secret.write_text("42")
    probe = f'''
import ctypes, errno, os, resource, socket, sys
def probe():
    libc = ctypes.CDLL(None, use_errno=True)
    out = {{"uid": (os.getuid(), os.getgid(), os.geteuid()), "pid": os.getpid()}}
    out["sees"] = {{name: os.path.exists(path) for name, path in {{
        "home canary": {str(canary)!r}, "test folder": {str(secret)!r}, "solutions": {str(REPO / "solutions")!r},
        "tests": {str(REPO / "tests")!r}, "git": {str(REPO / ".git")!r}, "proc": "/proc/1", "etc": "/etc/passwd",
        "course_lib": {str(REPO / "course_lib" / "activations.py")!r}, "python": sys.executable}}.items()}}
    out["project"] = sorted(os.listdir({str(REPO)!r}))
    def attempt(f):
        try:
            f()
            return "ok"
        except OSError as exc:
            return errno.errorcode.get(exc.errno, str(exc.errno))
    out["write"] = {{"tmp": attempt(lambda: open("/tmp/mine.txt", "w").write("x")),
                     "root": attempt(lambda: open("/evil", "w")),
                     "venv": attempt(lambda: open(sys.prefix + "/evil.pth", "w")),
                     "course_lib": attempt(lambda: open({str(REPO / "course_lib" / "evil.py")!r}, "w")),
                     "dev": attempt(lambda: open("/dev/evil", "w")), "dev/null": attempt(lambda: open("/dev/null", "w"))}}
    def fill():
        for i in range(100):
            with open(f"/tmp/fill{{i}}", "wb") as f:
                f.write(b"x" * 2**20)
    out["big file"] = attempt(lambda: open("/tmp/big", "wb").write(b"x" * 40 * 2**20))
    os.remove("/tmp/big")
    out["fill /tmp"] = attempt(fill)
    out["net"] = attempt(lambda: socket.create_connection(("1.1.1.1", 80), timeout=3))
    out["unix connect"] = attempt(lambda: socket.socket(socket.AF_UNIX).connect("/tmp/nothing"))
    out["memfd"] = attempt(lambda: os.memfd_create("x"))
    import threading
    threading.stack_size(32768)
    stop, started = threading.Event(), 0
    try:
        for _ in range(400):
            threading.Thread(target=stop.wait, daemon=True).start()
            started += 1
    except RuntimeError:
        pass
    stop.set()
    out["threads"] = started
    out["fork"] = libc.fork(), ctypes.get_errno()
    out["clone"] = libc.syscall(56, 17, 0, 0, 0, 0), ctypes.get_errno()
    out["exec"] = libc.execv(b"/usr/bin/true", None), ctypes.get_errno()
    out["kill zygote"] = libc.kill(1, 9), libc.kill(-1, 9)
    out["setuid"] = libc.setuid(0), ctypes.get_errno()
    out["ptrace"] = libc.ptrace(16, 1, 0, 0), ctypes.get_errno()  # PTRACE_ATTACH to the zygote
    out["capabilities"] = sum(libc.prctl(23, cap, 0, 0, 0) == 1 for cap in range(64))  # PR_CAPBSET_READ
    out["read memory"] = libc.process_vm_readv(1, None, 0, None, 0, 0), ctypes.get_errno()
    out["new namespaces"] = [libc.unshare(flag) for flag in (0x10000000, 0x00020000, 0x20000000, 0x40000000)]
    out["host name"] = os.uname().nodename
    out["shm"] = libc.shmget({IPC_KEY}, 4096, 0o1600), ctypes.get_errno()  # a System V segment
    out["limits"] = [resource.getrlimit(r)[0] for r in (resource.RLIMIT_AS, resource.RLIMIT_FSIZE,
                                                        resource.RLIMIT_NPROC, resource.RLIMIT_NOFILE,
                                                        resource.RLIMIT_CPU)]
    return out
'''
    sandbox = _bare_sandbox(tmp_path, probe, forbid=["course_lib.activations.sigmoid"])
    try:
        got = RemoteFunction(sandbox, "probe")()
        keys = [line.split()[0] for line in pathlib.Path("/proc/sysvipc/shm").read_text().splitlines()[1:]]
        assert str(IPC_KEY) not in keys  # no segment was made
        sandbox.use(("second",), ["course_lib.activations.sigmoid"])  # the zygote was not killed: it still forks
        again = RemoteFunction(sandbox, "probe")()
        zygote = sandbox.zygote.proc
        assert again["sees"] == got["sees"]
    finally:
        sandbox.close()
        canary.unlink()
    # bwrap is gone, and with it every process of the sandbox; the zygote left (after ending its
    # children) when the grader closed its socket: it was not killed
    assert zygote.poll() == 0
    assert got["uid"] == (65534, 65534, 65534)
    assert got["pid"] < 10  # its own pid namespace
    assert got["sees"] == {"home canary": False, "test folder": False, "solutions": False, "tests": False,
                           "git": False, "proc": False, "etc": False, "course_lib": True, "python": True}
    assert got["project"] == [".venv", "course_lib", "grader"]
    assert got["write"] == {"tmp": "ok", "root": "EROFS", "venv": "EROFS", "course_lib": "EROFS", "dev": "EROFS",
                            "dev/null": "ok"}
    assert got["fill /tmp"] == "ENOSPC"  # /tmp holds 64 MB
    assert got["big file"] == "EFBIG"    # no file above 32 MB (RLIMIT_FSIZE)
    assert got["net"] == "EAFNOSUPPORT" and got["unix connect"] == "EPERM"  # only AF_UNIX pairs (seccomp)
    assert got["memfd"] == "EPERM" and got["shm"] == (-1, 1)  # no memory the address-space limit misses
    assert got["kill zygote"] == (-1, -1)                     # no signal to another process (seccomp)
    assert 200 < got["threads"] < 256                         # JAX's threads and these: 256 in all
    assert got["fork"] == (-1, 1) and got["clone"] == (-1, 1) and got["exec"] == (-1, 1)  # EPERM (seccomp)
    assert got["setuid"] == (-1, 22)  # EINVAL: root does not even exist in its user namespace
    assert got["ptrace"] == (-1, 1) and got["read memory"] == (-1, 1) and got["capabilities"] == 0
    assert got["new namespaces"] == [-1, -1, -1, -1]  # user, mount, pid, network
    assert got["host name"] == "sandbox"
    assert got["limits"] == [2048 * 2**20, 32 * 2**20, 256, 256, 190]
    assert canary.parent.exists() and secret.read_text() == "42"


def test_compile_cache_keeps_library_kernels_only(tmp_path):
    """After the warm-up, entries compiled from functions the source notebook defines are deleted."""
    from grader.grade import _prune_cache

    for name in ("jit_exp-1a2b", "jit__where-3c4d", "jit_sigmoid-5e6f", "jit__sigmoid64-7a8b", "jit__lambda_-9c0d",
                 "jit_softmax-1111"):
        (tmp_path / name).write_bytes(b"kernel")
    _prune_cache(tmp_path, load_assignment(SOURCE03))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["jit__where-3c4d", "jit_exp-1a2b"]


# ----------------------------------------------------------------------------- forbidden functions
def test_stubs_leave_no_way_back_to_a_forbidden_function(tmp_path):
    """In a fresh process: stub every function any assignment forbids, then look for the originals."""
    names = sorted(set().union(*(load_assignment(p).forbid for p in sorted((REPO / "solutions").glob("*/*.ipynb")))))
    script = tmp_path / "stubs.py"
    script.write_text(f'''
import collections, gc, importlib, inspect, json, sys, types, weakref
import numpy as np
sys.path.insert(0, {str(REPO)!r})
from grader import _child
names = {names!r}
c_only, codes, calls = set(), [], {{}}
for dotted in names:
    _child._resolve(dotted)  # imports the module
shared = collections.Counter(id(o.__code__) for o in gc.get_objects() if isinstance(o, types.FunctionType))
for dotted in names:
    owner, attr = _child._resolve(dotted)
    obj = getattr(owner, attr, None)
    if obj is None:
        continue
    try:  # arguments that fit the signature (wrappers check it before they call what they wrap)
        params = inspect.signature(obj).parameters.values()
        calls[dotted] = (sum(p.kind == p.POSITIONAL_OR_KEYWORD and p.default is p.empty for p in params),
                         [p.name for p in params if p.kind == p.KEYWORD_ONLY and p.default is p.empty])
    except (TypeError, ValueError):
        calls[dotted] = (1, [])
    funcs = _child._python_functions(obj)
    if not funcs and not isinstance(obj, type):
        c_only.add(id(obj))
    codes += [weakref.ref(f.__code__) for f in funcs if shared[id(f.__code__)] == 1]  # not a decorator's code
    del obj, funcs
record = []
files, modules = _child._install_stubs(names, record)
gc.collect()
report = {{"alive codes": sum(r() is not None for r in codes), "codes": len(codes), "raised": [], "called": [],
           "in module dicts": []}}
for dotted in names:
    owner, attr = _child._resolve(dotted)
    obj = getattr(owner, attr)
    n, keywords = calls[dotted]
    # arrays first; then plain integers, for jitted functions whose static arguments must be hashable
    # (jax.numpy.polyfit's deg): their wrapper rejects arrays before it reaches the stub
    for x in (np.ones((2, 3), np.float32), 1):
        del record[:]
        try:
            obj(*[x] * n, **{{k: x for k in keywords}})
            report["called"].append(dotted)
        except PermissionError:
            if dotted in record:
                report["raised"].append(dotted)
        except Exception as exc:
            if isinstance(x, int):
                report["called"].append(dotted + ": " + repr(exc)[:200])
            continue
        break
for mod in list(sys.modules.values()):
    for k, v in list(getattr(mod, "__dict__", {{}}).items()):
        if id(v) in c_only:
            report["in module dicts"].append(mod.__name__ + "." + k)
report["protected"] = sorted(m for m in modules if m.startswith("course_lib"))
print(json.dumps(report))
''')
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path, timeout=600,
                          env=dict(os.environ, JAX_PLATFORMS="cpu"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["codes"] > 100 and report["alive codes"] == 0     # no original code object survives
    assert report["called"] == [] and report["raised"] == names     # every forbidden name records and raises
    assert report["in module dicts"] == []                          # C callables (ufuncs) are gone too
    assert "course_lib.activations" in report["protected"]         # its file cannot be loaded again


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
    shown = capsys.readouterr().out.splitlines()
    assert shown[0].startswith(("def relu(x):", "@checked(")), shown[:2]  # relu's own source, its decorator first
    assert "def relu(x):" in shown[:2]


def test_a_pooled_zygote_serves_the_next_submission_from_a_clean_slate(tmp_path):
    """A zygote handed to the next submission (grader.sandbox.ZygotePool) was reset: the first child of
    that submission is numbered 1 again and finds nothing the previous student's child left in /tmp,
    though it runs in the same sandbox (no new bwrap, same zygote process)."""
    import threading

    from grader.sandbox import RemoteFunction, ZygotePool

    look = '''
import os, threading
def look():
    return os.getcwd(), sorted(os.listdir("/tmp")), sorted(os.listdir(os.getcwd()))
def litter():
    for path in ("/tmp/left-by-the-last-student.txt", "mine.txt"):
        with open(path, "w") as f:
            f.write("secret")
    threading.Thread(target=lambda: [open("/tmp/still-writing", "w") for _ in iter(int, 1)], daemon=True).start()
    return look()
'''
    pool = ZygotePool()
    first = _bare_sandbox(tmp_path, look, pool=pool)
    box = {}
    # started by a thread that ends before the next submission: the sandbox must not end with it
    worker = threading.Thread(target=lambda: box.update(litter=RemoteFunction(first, "litter")()))
    worker.start()
    worker.join()
    zygote = first.zygote
    first.close()
    assert pool._idle == [zygote] and zygote.healthy
    second = _bare_sandbox(tmp_path, look, pool=pool)
    try:
        cwd, tmp, here = RemoteFunction(second, "look")()
        assert second.zygote is zygote and second.zygote_starts == 0  # the same sandbox, not a new one
    finally:
        second.close()
    assert box["litter"][0] == cwd == "/tmp/child-1"
    assert "left-by-the-last-student.txt" in box["litter"][1] and box["litter"][2] == ["mine.txt"]
    assert tmp == ["child-1"] and here == []  # the zygote emptied /tmp and stopped the writing thread
    pool.close()
    assert zygote.proc.poll() == 0 and pool._idle == []  # it left when its socket closed: not killed
    third = _bare_sandbox(tmp_path, look, pool=pool)  # a closed pool keeps nothing
    try:
        RemoteFunction(third, "look")()
    finally:
        third.close()
    assert third.zygote is None and pool._idle == []


def test_a_trusted_or_dead_zygote_is_not_handed_on(tmp_path):
    from grader.sandbox import RemoteFunction, ZygotePool

    pool = ZygotePool()
    trusted = _bare_sandbox(tmp_path, "def f():\n    return 1", pool=pool, trusted=True)  # the warm-up's
    try:
        assert RemoteFunction(trusted, "f")() == 1
        assert trusted.pool is None
    finally:
        trusted.close()
    assert pool._idle == []
    crash = _bare_sandbox(tmp_path, "def f():\n    return 1", pool=pool)
    try:
        assert RemoteFunction(crash, "f")() == 1
        crash.zygote.proc.kill()  # bwrap, and with it the zygote
        crash.zygote.proc.wait()
    finally:
        crash.close()
    assert pool._idle == []
    pool.close()
