"""Grading on a Dask cluster: ``python -m grader <assignment> <submissions> --scheduler tcp://host:8786``.

Imported only when ``--scheduler`` is given (``pip install .[cluster]``); local grading never loads Dask.

**What runs where.** This process (the *client*) is the trusted side that an instructor runs: it
reads the assignment and the submissions, sends each submission to a Dask worker, checks what comes
back and writes the one gradebook and the feedback files, exactly as local grading does
(:func:`grader.grade.grade_all`). Each *worker* is trusted infrastructure running the same code
path as local grading: a :class:`grader.grade.Grader` per run and worker process (the source's
setup cells, the test cells, the comparisons) and, for every submission, a bubblewrap sandbox in
which the student's code, and only it, runs (:mod:`grader.sandbox`). Student code never runs in the
client, and never outside bwrap on a worker.

**What crosses the wire.** To each worker, once per run (``Client.scatter``): the source notebook
(setup cells, solutions, visible and hidden tests) and the limits, i.e. what the trusted process of
a local run has, no more; the worker keeps it in a private temporary folder that no sandbox can
see, and deletes it when the run ends. Per submission: the student's name, the file name and the
notebook's bytes. Back: plain rows (student, task, points, status, reason), which the client checks
against the assignment before trusting them. Dask's protocol pickles, so a worker must be as
trusted as the client; on any network you do not control, use ``tls://`` (Dask's TLS settings).

**Failures.** A worker that dies mid-submission: the scheduler runs the submission again elsewhere
(at most ``distributed.scheduler.allowed-failures`` times, then the submission is reported). A
grading that outlives ``task_timeout`` on its worker, a lost connection to the scheduler, or any
other error costs the submission one retry, at most ``retries``; after that it is reported with
status ``grader-error`` and the reason. Every submission ends graded or reported, each exactly once:
a second answer for the same student (a retried task whose first run also finished) is ignored.
"""
from __future__ import annotations

import collections
import dataclasses
import functools
import hashlib
import os
import pathlib
import shutil
import socket
import sys
import tempfile
import threading
import time
import uuid

from .grade import (Grader, Result, Row, _ThreadAwareStdout, grader_error_result, internal_error_reason,
                    invalid_result, progress_line, read_submission, refusal, warm_up_line)
from .notebook import Assignment, NotebookError, load_assignment
from .sandbox import Limits, SandboxUnavailable, sandbox_problem

RETRIES = 2                    # a submission is tried at most 1 + RETRIES times
# every status a worker's row may carry (the gradebook's; "not-attempted" is wip/exercises' status for an
# answer left as handed out): a status missing here turns that submission into a grader-error on a cluster
STATUSES = {"passed", "failed", "error", "timeout", "crashed", "forbidden", "missing", "invalid-notebook", "manual",
            "unanswered", "not-attempted", "grader-error"}
_LIMIT_FIELDS = ("timeout", "memory_mb", "budget", "cache_dir", "sandbox", "bwrap", "processes", "tmp_mb")


def default_task_timeout(limits: Limits) -> float:
    """Seconds one submission may take on its worker: twice the sandbox budget, plus a minute."""
    return 2 * limits.budget + 60


# ----------------------------------------------------------------------------- what both sides run
@functools.lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """A digest of the grading code (grader, course_lib) and of the versions that decide a grade, as this
    process first saw them (computed once; JAX is not imported for it: the client never needs JAX)."""
    import importlib.metadata
    import importlib.util

    versions = [f"{n} {importlib.metadata.version(n)}" for n in ("jax", "jaxlib", "numpy")]
    h = hashlib.sha256(f"{sys.version_info[:3]} {versions}".encode())
    course_lib = pathlib.Path(importlib.util.find_spec("course_lib").origin).resolve().parent
    for pkg in (pathlib.Path(__file__).resolve().parent, course_lib):
        for path in sorted(pkg.rglob("*.py")):
            h.update(f"{pkg.name}/{path.relative_to(pkg)}".encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:16]


@dataclasses.dataclass
class Job:
    """What every worker receives once per run."""
    run_id: str
    assignment: str
    source_name: str
    source: bytes
    limits: dict
    fingerprint: str


# ----------------------------------------------------------------------------- worker side
def _cpu_seconds() -> float:
    """CPU time of this process and of its children that ended (the sandboxes)."""
    import resource

    return sum(r.ru_utime + r.ru_stime for r in (resource.getrusage(resource.RUSAGE_SELF),
                                                 resource.getrusage(resource.RUSAGE_CHILDREN)))


class _WorkerRun:
    """One run's grader in one worker process: the source in a private folder, the warm-up done once."""

    def __init__(self, job: Job):
        self.folder = pathlib.Path(tempfile.mkdtemp(prefix="grader-cluster-"))
        source = self.folder / "source" / job.assignment / job.source_name
        source.parent.mkdir(parents=True)
        source.write_bytes(job.source)
        cpu0 = _cpu_seconds()
        limits = Limits(**job.limits)
        problem = sandbox_problem(limits) if limits.sandbox else None  # also sets up what it checks (cgroups)
        if problem:
            raise SandboxUnavailable(problem)
        self.grader = Grader(load_assignment(source, job.assignment), limits)
        self.warm = self.grader.warm_up() if self.grader.limits.cache_dir else None
        self.cpu = _cpu_seconds() - cpu0  # this worker's fixed cost of the run (its threads wait meanwhile)
        self.warm_reported = False

    def close(self):
        self.grader.close()
        shutil.rmtree(self.folder, ignore_errors=True)


_RUNS: dict[str, _WorkerRun] = {}
_RUNS_LOCK = threading.Lock()


def _worker_name() -> str:
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return f"{socket.gethostname()}:{os.getpid()}"


def _run_for(job: Job) -> _WorkerRun:
    with _RUNS_LOCK:  # the other threads of this worker wait for the warm-up: they need its cache
        run = _RUNS.get(job.run_id)
        if run is None:
            if not isinstance(sys.stdout, _ThreadAwareStdout):  # test cells' ✓ lines are discarded, as locally
                sys.stdout = _ThreadAwareStdout(sys.stdout)
            run = _RUNS[job.run_id] = _WorkerRun(job)
        return run


def grade_task(job: Job, student: str, name: str, data: bytes, deadline: float) -> dict:
    """Run on a worker: grade one submission with the local code path; plain data back."""
    worker = _worker_name()
    if job.fingerprint != code_fingerprint():
        return {"refused": f"worker {worker} runs other grading code or versions than this client "
                           f"({code_fingerprint()} instead of {job.fingerprint}): install the same commit there"}
    limits = Limits(**job.limits)
    problem = sandbox_problem(limits) if limits.sandbox else None
    if problem:
        return {"refused": f"worker {worker}: {refusal(problem)}"}
    try:
        run = _run_for(job)
    except Exception as exc:  # the source itself cannot be graded there: no submission can
        return {"refused": f"worker {worker} could not prepare the assignment: {type(exc).__name__}: {exc}"}
    box = {}

    def work():
        try:
            box["result"] = run.grader.grade_bytes(student, data, name)
        except Exception as exc:  # a bug of the grader: this submission only, as locally
            box["result"] = grader_error_result(student, run.grader.assignment, internal_error_reason(exc))

    thread = threading.Thread(target=work, name=f"grade-{student}", daemon=True)
    thread.start()
    thread.join(deadline)
    if thread.is_alive():  # the sandbox's own limits end it later; its answer is dropped
        return {"timed_out": deadline, "worker": worker}
    res = box["result"]
    out = {"student": res.student, "rows": [dataclasses.asdict(r) for r in res.rows], "seconds": res.seconds,
           "worker": worker, "warm": None}
    with _RUNS_LOCK:
        if run.warm is not None and not run.warm_reported:
            run.warm_reported = True
            out["warm"] = {"line": warm_up_line(run.warm), "seconds": run.warm.seconds, "cpu": run.cpu}
    return out


def forget_run(run_id: str) -> bool:
    """Run on every worker at the end: drop the run's grader, its sandboxes' folder and the source."""
    with _RUNS_LOCK:
        run = _RUNS.pop(run_id, None)
    if run is not None:
        run.close()
    return run is not None


# ----------------------------------------------------------------------------- client side
class MalformedAnswer(ValueError):
    pass


def result_from(answer: dict, assignment: Assignment, student: str) -> Result:
    """A worker's answer as a Result, after checking it is one row per task and question of this assignment."""
    ids = [t.grade_id for t in assignment.tasks] + [q.grade_id for q in assignment.questions]
    points = {t.grade_id: t.points for t in assignment.tasks} | {q.grade_id: q.points for q in assignment.questions}
    if answer.get("student") != student:
        raise MalformedAnswer(f"an answer for {answer.get('student')!r} came back for {student!r}")
    rows = answer.get("rows")
    if not isinstance(rows, list) or not all(isinstance(r, dict) and set(r) == set(_ROW_FIELDS) for r in rows):
        raise MalformedAnswer("rows are not the gradebook's")
    got = [r["task"] for r in rows]
    if got not in (ids, ids[:len(assignment.tasks)]):  # a grader error has task rows only, as locally
        raise MalformedAnswer(f"tasks {got} are not the assignment's")
    for r in rows:
        p = r["points"]
        if (r["student"] != student or r["assignment"] != assignment.name or r["status"] not in STATUSES
                or r["max_points"] != points[r["task"]] or not isinstance(r["reason"], str)
                or not (p is None or (isinstance(p, (int, float)) and 0 <= p <= points[r["task"]]))):
            raise MalformedAnswer(f"row {r['task']} is malformed")
    return Result(student, [Row(**r) for r in rows], float(answer.get("seconds") or 0.0))


_ROW_FIELDS = tuple(f.name for f in dataclasses.fields(Row))


def _distributed():
    try:
        import distributed
    except ImportError:
        raise ValueError("--scheduler needs Dask's distributed package: pip install -e '.[cluster]'") from None
    return distributed


def _connect(scheduler: str):
    try:
        return _distributed().Client(scheduler, timeout=60, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise ValueError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None


def grade_on_cluster(assignment: Assignment, subs: list, limits: Limits, scheduler: str | None, *, say=print,
                     retries: int = RETRIES, task_timeout: float | None = None, client=None) -> list[Result]:
    """Grade ``subs`` ((student, notebook path) pairs) on the cluster of ``scheduler`` (or ``client``)."""
    distributed = _distributed()
    if retries < 0:
        raise ValueError(f"retries must be >= 0, got {retries}")
    deadline = float(task_timeout or default_task_timeout(limits))
    own = client is None
    if own:
        client = _connect(scheduler)
    settings = {k: getattr(limits, k) for k in _LIMIT_FIELDS}
    if isinstance(settings["cache_dir"], pathlib.Path):  # a folder on each worker's machine
        settings["cache_dir"] = str(settings["cache_dir"])
    job = Job(uuid.uuid4().hex, assignment.name, assignment.path.name, assignment.path.read_bytes(), settings,
              code_fingerprint())
    queue = collections.deque((s, p, None, 0) for s, p in subs)  # (student, path, (name, bytes), attempt)
    inflight: dict = {}
    done: dict[str, Result] = {}
    n = len(subs)
    job_future, scatter_failures = None, 0
    threads, threads_checked = 1, -float("inf")  # the cluster's worker threads, asked every 5 s at most

    def finish(student, res):
        if student in done:  # graded already (a retried task whose first run also answered): never twice
            return
        done[student] = res
        say(progress_line(len(done), n, res, assignment))

    def retry(student, path, payload, attempt, why):
        if attempt >= retries:
            finish(student, grader_error_result(student, assignment, (
                f"not graded: {why} ({attempt + 1} attempts); grade this one by hand or run the grader again")))
        else:
            say(f"retrying {student} (attempt {attempt + 2} of {retries + 1}): {why}")
            queue.appendleft((student, path, payload, attempt + 1))

    try:
        while queue or inflight:
            if client.status != "running":  # reconnecting after a lost connection
                if client.status in ("closing", "closed"):
                    for fut, (student, path, payload, attempt) in list(inflight.items()):
                        retry(student, path, payload, retries, "the connection to the Dask scheduler was lost")
                    inflight.clear()
                    while queue:
                        student, path, payload, attempt = queue.popleft()
                        retry(student, path, payload, retries, "the connection to the Dask scheduler was lost")
                    break
                time.sleep(0.5)
                continue
            if job_future is None or job_future.status != "finished":
                try:
                    job_future = client.scatter(job, broadcast=True, hash=False)
                    scatter_failures = 0
                except Exception:  # the connection went while sending: the status check above waits for it
                    job_future, scatter_failures = None, scatter_failures + 1
                    if scatter_failures > 20:
                        raise
                    time.sleep(0.5)
                    continue
            if time.monotonic() >= threads_checked + 5:  # (a round trip to the scheduler: not for every answer)
                threads = sum(w.get("nthreads", 1) for w in client.scheduler_info().get("workers", {}).values())
                threads_checked = time.monotonic()
            while queue and len(inflight) < max(2, 2 * threads):
                student, path, payload, attempt = queue.popleft()
                if payload is None:
                    try:
                        payload = (pathlib.Path(path).name, read_submission(path, source=assignment.path))
                    except NotebookError as exc:  # nothing to send: the same rows as a local run
                        finish(student, invalid_result(student, assignment, exc, time.monotonic()))
                        continue
                fut = client.submit(grade_task, job_future, student, payload[0], payload[1], deadline,
                                    key=f"grade-{job.run_id[:8]}-{student}-{attempt}", pure=False)
                inflight[fut] = (student, path, payload, attempt)
            if not inflight:
                continue
            try:
                with client.as_current():
                    finished, _ = distributed.wait(list(inflight), timeout=2, return_when="FIRST_COMPLETED")
            except TimeoutError:
                continue
            except distributed.client.FuturesCancelledError:  # the connection was lost: handled below
                finished = [fut for fut in inflight if fut.done()]
            for fut in finished:
                student, path, payload, attempt = inflight.pop(fut)
                if fut.status == "finished":
                    answer = fut.result()
                    if "refused" in answer:
                        raise SandboxUnavailable(answer["refused"])
                    if "timed_out" in answer:
                        retry(student, path, payload, attempt,
                              f"grading took longer than {answer['timed_out']:g} s on worker {answer['worker']}")
                        continue
                    if answer.get("warm"):
                        say(f"{answer['worker']}: {answer['warm']['line']} ({answer['warm']['cpu']:.1f} CPU s)")
                    try:
                        finish(student, result_from(answer, assignment, student))
                    except MalformedAnswer as exc:
                        finish(student, grader_error_result(student, assignment, (
                            f"not graded: worker {answer.get('worker')} answered wrongly ({exc}); grade this one "
                            f"by hand")))
                elif fut.status == "error":
                    exc = fut.exception()
                    if isinstance(exc, distributed.KilledWorker):  # the scheduler already ran it again as often as it allows
                        retry(student, path, payload, retries, f"workers died while grading it ({exc})")
                    else:
                        retry(student, path, payload, attempt, f"{type(exc).__name__}: {str(exc)[:200]}")
                else:  # cancelled: the connection to the scheduler was lost (Dask cancels every future then)
                    retry(student, path, payload, attempt, "the connection to the Dask scheduler was lost")
    finally:
        for fut in inflight:
            fut.cancel()
        if client.status == "running":
            try:
                client.run(forget_run, job.run_id)
            except Exception:  # a worker that is gone has nothing left to forget
                pass
        if own:
            client.close()
    return [done[s] for s, _ in subs]
