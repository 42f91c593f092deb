"""Grading on a Dask cluster (grader.cluster) gives the local gradebook, whatever happens to the cluster.

A LocalCluster of 2 worker processes (1 thread each, behind nannies that restart a dead worker) grades a
mixed set of the hostile fixtures of tests/grading/fixtures next to honest and wrong submissions, with
the operating-system sandbox on. The reference is the same set graded locally by `python -m grader`.
Each test compares gradebooks row for row: the CLI run, a run in which a busy worker is killed, a run
whose client loses its connection to the scheduler, and a submission that outlives its time on the
worker (retried, then reported). Local grading never imports Dask.
"""
from __future__ import annotations

import csv
import io
import os
import pathlib
import shutil
import signal
import subprocess
import sys

import pytest

from grader import cluster
from grader.grade import PER_RUN_CACHE, find_submissions, write_outputs
from grader.notebook import find_source, load_assignment
from grader.sandbox import Limits, SandboxUnavailable

distributed = pytest.importorskip("distributed")

REPO = pathlib.Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "grading" / "fixtures"
sys.path.insert(0, str(FIXTURES.parent))
from make_fixtures import copy_submissions  # noqa: E402
A03 = "03_neurons_and_activations"
TIMEOUT = "15"
# honest, wrong and hostile (issue 20's attack classes among them)
MIXED = ["good", "bad_answers", "edited_tests", "invalid_json", "infinite_loop", "memory_bomb", "os_exit", "crash",
         "spawn_escape", "hidden_leak", "forbid_bypass", "path_guard_bypass", "cache_poison"]
HONEST = ["classmate"]
# the smaller set of the runs that break the cluster on purpose
SMALL = ["good", "bad_answers", "memory_bomb", "spawn_escape", "os_exit", "classmate"]


def _env():
    return dict(os.environ, JAX_PLATFORMS="cpu", PYTHONHASHSEED="0", TF_CPP_MIN_LOG_LEVEL="3")


def _grader(*args):
    return subprocess.run([sys.executable, "-m", "grader", *map(str, args)], capture_output=True, text=True,
                          cwd=REPO, env=_env(), timeout=1800)


def _csv_rows(text: str, students=None) -> list[dict]:
    rows = list(csv.DictReader(io.StringIO(text)))
    return [r for r in rows if students is None or r["student"] in students]


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """The submissions folder, and their gradebook and feedback graded locally by the command."""
    root = tmp_path_factory.mktemp("cluster")
    subs = copy_submissions(root, MIXED, HONEST)
    proc = _grader(A03, subs, "--out", root / "local", "--timeout", TIMEOUT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "dask" not in proc.stdout.lower()
    return {"root": root, "subs": subs, "local": root / "local",
            "gradebook": (root / "local" / "gradebook.csv").read_text()}


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=50) as lc, distributed.Client(lc, set_as_default=False) as c:
        yield c


def _assignment():
    return load_assignment(find_source(REPO / "solutions", A03), A03)


def _limits():
    return Limits(float(TIMEOUT), cache_dir=PER_RUN_CACHE)


def _run(client, subs_folder, students, tmp_path, say, **kwargs):
    a = _assignment()
    subs = [(s, p) for s, p in find_submissions(subs_folder, a) if s in students]
    results = cluster.grade_on_cluster(a, subs, _limits(), None, say=say, client=client, **kwargs)
    assert [r.student for r in results] == [s for s, _ in subs], "one result per submission, in order"
    return (write_outputs(results, a, tmp_path / "out")).read_text(), results


def test_local_grading_never_imports_dask(tmp_path):
    subs = tmp_path / "subs"
    subs.mkdir()
    for case in ("good", "bad_answers"):
        shutil.copy(FIXTURES / f"{case}.ipynb", subs / f"{case}.ipynb")
    code = ("import sys\nimport grader, grader.grade\nfrom grader.__main__ import main\n"
            f"rc = main([{A03!r}, {str(subs)!r}, '--out', {str(tmp_path / 'out')!r}, '--cache', 'none', '--quiet'])\n"
            "print('RC', rc, sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=_env(),
                          timeout=900)
    assert "RC 0 []" in proc.stdout, proc.stdout + proc.stderr[-2000:]
    assert len(_csv_rows((tmp_path / "out" / "gradebook.csv").read_text())) == 16


def test_cluster_gradebook_equals_the_local_one_row_for_row(mixed, client, tmp_path):
    out = tmp_path / "out"
    proc = _grader(A03, mixed["subs"], "--out", out, "--timeout", TIMEOUT, "--scheduler", client.scheduler.address)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (out / "gradebook.csv").read_text() == mixed["gradebook"]
    local_feedback = sorted((mixed["local"] / "feedback").iterdir())
    assert [p.name for p in sorted((out / "feedback").iterdir())] == [p.name for p in local_feedback]
    for path in local_feedback:
        assert (out / "feedback" / path.name).read_text() == path.read_text(), path.name
    n = len(MIXED) + len(HONEST)
    progress = [line for line in proc.stdout.splitlines() if line.startswith("[")]
    assert len(progress) == n and progress[-1].startswith(f"[{n}/{n}]"), proc.stdout
    assert proc.stdout.count("source notebook checked in") == 2, "one warm-up per worker"
    assert "retrying" not in proc.stdout and "WARNING" not in proc.stdout


def test_killing_a_busy_worker_mid_run_loses_nothing(mixed, client, tmp_path):
    client.wait_for_workers(2, timeout=120)
    lines, killed = [], []

    def say(line):
        lines.append(line)
        if line.startswith("[") and not killed:  # a submission is done: kill a worker that grades another
            busy = [w for w, keys in client.processing().items() if keys]
            for address, pid in client.run(os.getpid, workers=busy[:1]).items():
                os.kill(pid, signal.SIGKILL)
                killed.append(address)

    gradebook, _ = _run(client, mixed["subs"], SMALL, tmp_path, say)
    assert killed, "no worker was busy when the first submission was done"
    assert _csv_rows(gradebook) == _csv_rows(mixed["gradebook"], SMALL)
    assert len([ln for ln in lines if ln.startswith("[")]) == len(SMALL)


def test_a_lost_connection_costs_a_retry_not_the_gradebook(mixed, client, tmp_path):
    client.wait_for_workers(2, timeout=120)
    lines, cut = [], []

    def say(line):
        lines.append(line)
        if line.startswith("[") and not cut:
            cut.append(line)
            client.loop.add_callback(client.scheduler_comm.comm.abort)

    gradebook, _ = _run(client, mixed["subs"], SMALL, tmp_path, say)
    assert any("retrying" in ln and "connection to the Dask scheduler was lost" in ln for ln in lines), lines
    assert _csv_rows(gradebook) == _csv_rows(mixed["gradebook"], SMALL)
    assert len([ln for ln in lines if ln.startswith("[")]) == len(SMALL)


def test_workers_that_cannot_sandbox_refuse_the_run(mixed, client):
    a = _assignment()
    subs = [(s, p) for s, p in find_submissions(mixed["subs"], a) if s == "good"]
    limits = Limits(float(TIMEOUT), cache_dir=None, bwrap="/nonexistent/bwrap")
    with pytest.raises(SandboxUnavailable, match=r"worker tcp://.*bubblewrap was not found at /nonexistent/bwrap"):
        cluster.grade_on_cluster(a, subs, limits, None, say=lambda line: None, client=client)


def test_worker_answers_are_checked_against_the_assignment():
    a = _assignment()
    rows = [{"student": "ann", "assignment": A03, "task": t.grade_id, "points": t.points, "max_points": t.points,
             "status": "passed", "reason": ""} for t in a.tasks]
    rows += [{"student": "ann", "assignment": A03, "task": q.grade_id, "points": None, "max_points": q.points,
              "status": "manual", "reason": "written"} for q in a.questions]
    good = {"student": "ann", "rows": rows, "seconds": 1.0}
    assert cluster.result_from(good, a, "ann").score == sum(t.points for t in a.tasks)
    bad = [({**good, "student": "bob"}, "came back for"),
           ({**good, "rows": rows[1:]}, "not the assignment's"),
           ({**good, "rows": [{**rows[0], "points": rows[0]["max_points"] + 1}] + rows[1:]}, "malformed"),
           ({**good, "rows": [{**rows[0], "status": "excellent"}] + rows[1:]}, "malformed"),
           ({**good, "rows": [{**rows[0], "student": "bob"}] + rows[1:]}, "malformed"),
           ({**good, "rows": [{**rows[0], "extra": 1}] + rows[1:]}, "not the gradebook's")]
    for answer, words in bad:
        with pytest.raises(cluster.MalformedAnswer, match=words):
            cluster.result_from(answer, a, "ann")


def test_cli_options_need_a_scheduler_and_dask(tmp_path):
    proc = _grader(A03, tmp_path, "--retries", "1")
    assert proc.returncode == 2 and "--retries and --task-timeout need --scheduler" in proc.stderr
    code = ("import sys\nsys.modules['distributed'] = None\nfrom grader.__main__ import main\n"
            f"sys.exit(main([{A03!r}, {str(tmp_path)!r}, '--out', {str(tmp_path / 'out')!r}, "
            "'--scheduler', 'tcp://127.0.0.1:1']))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=_env(),
                          timeout=300)
    assert proc.returncode == 2 and "pip install -e '.[cluster]'" in proc.stderr, proc.stderr[-2000:]


def test_a_submission_that_outlives_its_time_is_retried_then_reported(mixed, client, tmp_path):
    """Last in this file: the timed-out gradings go on in their workers until the sandbox's own limits end them."""
    client.wait_for_workers(2, timeout=120)
    lines = []
    gradebook, results = _run(client, mixed["subs"], ["infinite_loop"], tmp_path, lines.append, retries=1,
                              task_timeout=3)
    rows = _csv_rows(gradebook)
    assert [r["task"] for r in rows] == [t.grade_id for t in _assignment().tasks]
    for r in rows:
        assert r["status"] == "grader-error" and r["points"] == "0", r
        assert "not graded: grading took longer than 3 s on worker tcp://" in r["reason"] and "(2 attempts)" in r["reason"]
    assert sum("retrying infinite_loop (attempt 2 of 2)" in ln for ln in lines) == 1, lines
