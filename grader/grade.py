"""Grade submissions of one assignment: gradebook CSV + per-student Markdown feedback.

For each submission: read the notebook (never executing it here), take the student's solution cells
by ``grade_id``, run them with the source's setup cells in a :class:`~grader.sandbox.Sandbox` (an
operating-system sandbox of its own), then execute each test cell *of the source* in this trusted
process, where the student's names are proxies into the sandbox: first the visible part of every
task, then each task's hidden part in a fresh child of the sandbox. Results are compared here; the
gradebook and the feedback are written only by this process, after the sandboxes are gone.
"""
from __future__ import annotations

import csv
import io
import os
import pathlib
import re
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass

from . import api, static
from .api import clip
from .notebook import (Assignment, NotebookError, find_source, load_assignment, parse_notebook,
                       read_notebook_bytes, student_cells, unparsable)
from .safe_text import markdown_text, no_formula, student_name
from .sandbox import (Limits, NeedOwnChild, RemoteFunction, Sandbox, SandboxUnavailable, ZygotePool, sandbox_problem,
                      unsandboxed_guards)

REPO = pathlib.Path(__file__).resolve().parents[1]
CSV_FIELDS = ["student", "assignment", "task", "points", "max_points", "status", "reason"]
UNANSWERED = {"", "YOUR ANSWER HERE"}
_SETUP_MODULE = "__grader_setup__"
NO_SANDBOX_WARNING = "WARNING-no-sandbox.txt"  # written into the output folder by --no-sandbox
PER_RUN_CACHE = "per-run"  # Limits.cache_dir: a fresh compile cache in the run's temporary folder


@dataclass
class Row:
    student: str
    assignment: str
    task: str
    points: float | None
    max_points: float
    status: str
    reason: str = ""

    def as_csv(self) -> dict:
        pts = "" if self.points is None else f"{self.points:g}"
        return {"student": no_formula(self.student), "assignment": self.assignment, "task": self.task,
                "points": pts, "max_points": f"{self.max_points:g}", "status": self.status,
                "reason": no_formula(clip(" ".join(self.reason.split()), 500))}


@dataclass
class Result:
    student: str
    rows: list
    seconds: float
    output_chars: int = 0

    @property
    def score(self) -> float:
        return sum(r.points or 0.0 for r in self.rows)


def _same_file(a, b) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _ipython_to_python(src: str) -> str:
    try:
        from IPython.core.inputtransformer2 import TransformerManager

        from .notebook import _AST_LOCK

        with _AST_LOCK:
            return TransformerManager().transform_cell(src)
    except Exception:
        return src


class Grader:
    """Grades submissions of one assignment; student code runs in sandboxes (see grader.sandbox)."""

    def __init__(self, assignment: Assignment, limits: Limits | None = None):
        self.assignment = assignment
        self.limits = limits or Limits()
        import tempfile

        self.limits.run_dir = tempfile.mkdtemp(prefix="grader-run-")
        if self.limits.cache_dir == PER_RUN_CACHE:
            self.limits.cache_dir = pathlib.Path(self.limits.run_dir) / "jax-cache"
        self.setup_sources = [src for kind, _, src in assignment.cells if kind == "setup"]
        self.trusted_ns = {"__name__": _SETUP_MODULE}
        for src in self.setup_sources:
            exec(compile(src, f"<setup of {assignment.name}>", "exec"), self.trusted_ns)
        self.refs = {id(v): k for k, v in self.trusted_ns.items()
                     if callable(v) and getattr(v, "__module__", None) == _SETUP_MODULE}
        # Imported by each sandbox's zygote, before any student code (with the modules that hold the
        # functions some task forbids).
        self.preimport = ["course_lib"]
        self.zygotes = ZygotePool()  # sandboxes handed from one submission to the next

    def close(self):
        import shutil

        self.zygotes.close()
        if self.limits.run_dir:
            shutil.rmtree(self.limits.run_dir, ignore_errors=True)

    # ------------------------------------------------------------------ one submission
    def warm_up(self) -> Result:
        """Grade the source notebook itself, letting it fill the JAX compile cache that students read.

        Also a sanity check: the source must pass all its own tests. Visible and hidden tests compile
        into separate folders of the cache, and a student's sandbox shows only the first (``visible``), so
        the cache does not tell a student's code the shapes the hidden tests use. Afterwards
        the cache keeps only compilations of library code: those of functions named in the source
        notebook (its solution and test functions) are deleted.
        """
        cache = self.limits.cache_dir
        if cache:
            for phase in ("visible", "hidden"):  # a student's sandbox shows only the first
                (pathlib.Path(cache) / phase).mkdir(parents=True, exist_ok=True)
        result = self.grade("(source)", self.assignment.path, trusted=True)
        if cache:
            _prune_cache(pathlib.Path(cache), self.assignment)
        return result

    def grade(self, student: str, path: pathlib.Path | None, trusted: bool = False) -> Result:
        t0 = time.monotonic()
        try:
            data = read_submission(path, source=None if trusted else self.assignment.path)
        except NotebookError as exc:
            return invalid_result(student, self.assignment, exc, t0)
        return self.grade_bytes(student, data, pathlib.Path(path).name, trusted=trusted, t0=t0)

    def grade_bytes(self, student: str, data: bytes, name: str, trusted: bool = False, t0=None) -> Result:
        """Grade a submitted notebook given as its file's bytes (``name``: the file name, for messages):
        what :meth:`grade` does after reading the file, and what a Dask worker does (grader.cluster)."""
        a = self.assignment
        t0 = time.monotonic() if t0 is None else t0
        try:
            code, answers = student_cells(parse_notebook(data, name), a)
        except NotebookError as exc:
            return invalid_result(student, a, exc, t0)

        cells, missing, unreadable = [], [], {}
        for kind, gid, src in a.cells:
            if kind == "setup":
                cells.append({"id": gid, "source": src})
            elif gid in code:
                code[gid] = _ipython_to_python(code[gid])  # what runs is what the static check reads
                why = unparsable(code[gid])
                if why:
                    unreadable[gid] = f"solution cell {gid} was not run: {why}"
                    del code[gid]
                cells.append({"id": gid, "source": code.get(gid, "")})
            else:
                missing.append(gid)
        sandbox = Sandbox(cells, forbid=a.forbid, preimport=self.preimport, limits=self.limits, trusted=trusted,
                          pool=self.zygotes)
        for gid in missing:
            sandbox.skip[gid] = f"solution cell {gid} is missing from your notebook"
        sandbox.skip.update(unreadable)
        student_sources = [code[g] for g in a.solution_ids if g in code]
        try:
            rows = self._run_tasks(student, sandbox, student_sources)
        finally:
            sandbox.close()
        for q in a.questions:
            text = answers.get(q.grade_id)
            if text is None:
                rows.append(Row(student, a.name, q.grade_id, 0.0, q.points, "missing",
                                "answer cell missing from the notebook"))
            elif text.strip() in UNANSWERED:
                rows.append(Row(student, a.name, q.grade_id, 0.0, q.points, "unanswered", "no answer written"))
            else:
                rows.append(Row(student, a.name, q.grade_id, None, q.points, "manual",
                                "written answer: graded by the instructor"))
        return Result(student, rows, time.monotonic() - t0, sandbox.output_chars)

    def _namespace(self, sandbox) -> dict:
        """A test cell's namespace: the setup cells' names, and a proxy for each student name."""
        ns = dict(self.trusted_ns)
        refs = dict(self.refs)
        for name in self.assignment.student_names:
            proxy = RemoteFunction(sandbox, name, refs)
            refs[id(proxy)] = name
            ns[name] = proxy
        return ns

    def _run_tasks(self, student, sandbox, student_sources) -> list:
        """The visible tests of every task first, then each task's hidden tests in a fresh child.

        Visible tests share one child in which every function the assignment forbids anywhere is a
        stub; a task that needs one of them (forbidden only elsewhere) runs again in a child of its
        own. A task's hidden tests run in a child forked from the pristine zygote after all visible
        tests are done, with that task's stubs: no state that a hidden test's inputs went through
        is ever seen by a test whose failure the student reads.
        """
        a = self.assignment
        rows, later, share = {}, [], True
        for task in a.tasks:
            hits = static.forbidden_used(
                static.referenced_names(student_sources, self.setup_sources, task.uses), task.forbid)
            if hits:
                rows[task.grade_id] = Row(student, a.name, task.grade_id, 0.0, task.points, "forbidden",
                                          f"your code refers to {', '.join(sorted(hits))}, which this task "
                                          f"forbids (write it yourself)")
                continue
            ns = self._namespace(sandbox)
            for attempt in range(2):
                if share and not attempt:
                    sandbox.use(("visible",), a.forbid, task.forbid)
                else:
                    sandbox.use(("visible", task.grade_id), task.forbid)
                try:
                    row = self._run_part(student, task, sandbox, ns, hidden=False)
                    break
                except NeedOwnChild:
                    share = share and not (sandbox.cells_fired - task.forbid)  # the cells need them: stop sharing
                    ns.clear()
                    ns.update(self._namespace(sandbox))
            else:  # pragma: no cover - a child of its own never raises NeedOwnChild
                row = Row(student, a.name, task.grade_id, 0.0, task.points, "grader-error", "forbid stubs")
            if row is None and task.hidden.strip():
                later.append((task, ns))
            else:
                rows[task.grade_id] = row or Row(student, a.name, task.grade_id, task.points, task.points, "passed")
        for task, ns in later:
            sandbox.use(("hidden", task.grade_id), task.forbid, hidden=True)
            row = self._run_part(student, task, sandbox, ns, hidden=True)
            rows[task.grade_id] = row or Row(student, a.name, task.grade_id, task.points, task.points, "passed")
        return [rows[t.grade_id] for t in a.tasks]

    def _run_part(self, student, task, sandbox, ns, hidden: bool) -> Row | None:
        """Run the visible or hidden part of a test cell; None if it passed, else the task's row."""
        a = self.assignment

        def row(points, status, reason=""):
            return Row(student, a.name, task.grade_id, points, task.points, status, reason)

        part = task.hidden if hidden else task.visible
        if not part.strip():
            return None
        if sandbox.broken:
            return row(0.0, "crashed", sandbox.broken)
        try:
            with api.hidden_section(hidden), _quiet():
                exec(compile(part, f"<{task.grade_id}>", "exec"), ns)
        except api.TaskFailed as exc:
            return row(0.0, exc.status, str(exc))
        except api.StudentCodeError as exc:
            status = "error" if exc.kind == "unsupported" else exc.kind
            return row(0.0, status, (f"a hidden test failed: {exc.kind}" if hidden else str(exc)))
        except AssertionError as exc:
            return row(0.0, "failed", "a hidden test failed" if hidden else f"assertion failed: {exc}")
        except Exception as exc:
            return row(0.0, "error", f"a hidden test raised {type(exc).__name__}" if hidden
                       else f"{type(exc).__name__}: {str(exc)[:300]}")
        return None


def read_submission(path: pathlib.Path | None, source: pathlib.Path | None = None) -> bytes:
    """The bytes of a submitted notebook; NotebookError if there is none, or none that may be read
    (a symbolic link, or a hard link to the instructor's ``source`` notebook)."""
    if path is None:
        raise NotebookError("no notebook was submitted")
    if pathlib.Path(path).is_symlink():
        raise NotebookError("the submitted notebook is a symbolic link")
    if source is not None and _same_file(path, source):
        raise NotebookError("the submitted notebook is the instructor's source notebook (a hard link)")
    return read_notebook_bytes(path)


def invalid_result(student: str, a: Assignment, exc: NotebookError, t0: float) -> Result:
    rows = [Row(student, a.name, t.grade_id, 0.0, t.points, "invalid-notebook", str(exc)) for t in a.tasks]
    rows += [Row(student, a.name, q.grade_id, 0.0, q.points, "invalid-notebook", str(exc)) for q in a.questions]
    return Result(student, rows, time.monotonic() - t0)


def internal_error_reason(exc: Exception) -> str:
    return f"internal grader error ({type(exc).__name__}: {exc}); grade this one by hand"


def grader_error_result(student: str, a: Assignment, reason: str) -> Result:
    """Rows for a submission the grader could not grade (its own bug, or a cluster that gave up on it)."""
    return Result(student, [Row(student, a.name, t.grade_id, 0.0, t.points, "grader-error", reason)
                            for t in a.tasks], 0.0)


def _prune_cache(cache: pathlib.Path, assignment: Assignment) -> None:
    """Delete the compile-cache entries of functions the source notebook defines (its solutions and
    test helpers, jitted as a whole): students may read the cache, so it keeps library code only."""
    names = set()
    for _, _, src in assignment.cells:
        names.update(_function_names(src))
    for t in assignment.tasks:
        names.update(_function_names(t.visible + t.hidden))
    for entry in cache.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            _prune_cache(entry, assignment)
            continue
        module = entry.name.partition("-")[0]  # jit_<function>-<hash>[-...]: names have no "-"
        fun = module[4:] if module.startswith("jit_") else module
        if fun in names or "lambda" in fun:
            entry.unlink()


def _function_names(source: str) -> set:
    import ast

    from .notebook import parse

    try:
        tree = parse(source)
    except SyntaxError:
        return set()
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            out.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            out.add(node.id)
    return out


class _quiet:
    """Discard what test cells print (✓ lines) in this thread; other threads still print."""

    _local = threading.local()

    def __enter__(self):
        self._local.quiet = True

    def __exit__(self, *exc):
        self._local.quiet = False


class _ThreadAwareStdout(io.TextIOBase):
    def __init__(self, real):
        self.real = real

    def write(self, s):
        if getattr(_quiet._local, "quiet", False):
            return len(s)
        return self.real.write(s)

    def flush(self):
        self.real.flush()


# ---------------------------------------------------------------------- submissions and output
def find_submissions(folder: pathlib.Path, assignment: Assignment) -> list[tuple[str, pathlib.Path | None]]:
    """(student, notebook) pairs from ``folder``.

    Layouts: ``folder/<student>.ipynb``; nbgrader's ``folder/<student>/<assignment>/*.ipynb`` (also
    when ``folder`` is a course root holding ``submitted/``); ``folder/<student>/*.ipynb``.
    """
    folder = pathlib.Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"submissions folder {folder} does not exist")
    if (folder / "submitted").is_dir() and not any(folder.glob("*.ipynb")):
        folder = folder / "submitted"
    out = []
    for nb in sorted(p for p in folder.glob("*.ipynb") if p.is_symlink() or not p.is_dir()):
        out.append((student_name(nb.stem), nb))
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if sub.is_symlink():  # a folder elsewhere (the solutions?): graded as a symbolic link, i.e. refused
            out.append((student_name(sub.name), sub))
            continue
        where = sub / assignment.name if (sub / assignment.name).is_dir() else sub
        if where.is_symlink():
            out.append((student_name(sub.name), where))
            continue
        notebooks = sorted(p for p in where.glob("*.ipynb") if not p.name.startswith("."))
        named = [p for p in notebooks if p.name == assignment.path.name]
        out.append((student_name(sub.name), (named or notebooks or [None])[0]))
    return out


def safe_name(student: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", student)[:100] or "student"


_STATUS_TEXT = {"manual": "to be graded by your instructor", "unanswered": "no answer written",
                "not-attempted": "not attempted", "invalid-notebook": "notebook unreadable",
                "forbidden": "uses a forbidden function", "error": "your code raised an error"}


def score_summary(result: Result, assignment: Assignment) -> str:
    """``auto 9/11, manual 5 pending``: autograded points, and written answers still to grade."""
    task_ids = {t.grade_id for t in assignment.tasks}
    auto = [r for r in result.rows if r.task in task_ids]
    written = [r for r in result.rows if r.task not in task_ids]
    text = f"auto {sum(r.points or 0 for r in auto):g}/{sum(r.max_points for r in auto):g}"
    if written:
        pending = sum(r.max_points for r in written if r.status == "manual")
        scored = [r for r in written if r.status != "manual"]
        lost = sum(r.max_points - (r.points or 0) for r in scored)
        if pending:
            text += f", manual {pending:g} pending" + (f" ({lost:g} not answered)" if lost else "")
        else:
            text += f", manual {sum(r.points or 0 for r in scored):g}/{sum(r.max_points for r in written):g}"
    return text


def console_line(i: int, n: int, result: Result, assignment: Assignment) -> str:
    """One progress line per graded submission: ``[ 7/40] alice: auto 9/11, manual 5 pending in 3.1 s
    (Task 5: failed)``; the list of failures ends at a whole item."""
    width = len(str(n))
    line = f"[{i:>{width}}/{n}] {result.student}: {score_summary(result, assignment)} in {result.seconds:.1f} s"
    bad = [f"{assignment.title(r.task).split(':')[0]}: {_STATUS_TEXT.get(r.status, r.status)}"
           for r in result.rows if r.status not in ("passed", "manual")]
    shown: list[str] = []
    for k, item in enumerate(bad):
        rest = len(bad) - k - 1
        if shown and len("; ".join(shown + [item])) > 90 - (12 if rest else 0):
            shown.append(f"and {len(bad) - k} more")
            break
        shown.append(item)
    return line + (f" ({'; '.join(shown)})" if shown else "")


def feedback_markdown(result: Result, assignment: Assignment) -> str:
    task_ids = {t.grade_id for t in assignment.tasks}
    written = [r for r in result.rows if r.task not in task_ids]
    pending = sum(r.max_points for r in written if r.status == "manual")
    lines = [f"# Feedback: {assignment.name}, {markdown_text(result.student)}", "",
             f"**{score_summary(result, assignment)}**"]
    if pending:
        lines.append(f"(your instructor grades the {pending:g} points of written answers)")
    lines += ["", "| task | points | status |", "|---|---|---|"]
    for r in result.rows:
        pts = "pending" if r.points is None else f"{r.points:g}"
        title = assignment.title(r.task).replace("|", "\\|")
        lines.append(f"| {title} | {pts} / {r.max_points:g} | {_STATUS_TEXT.get(r.status, r.status)} |")
    bad = [r for r in result.rows if r.status not in ("passed", "manual")]
    if bad:
        lines += ["", "## What went wrong", ""]
        for r in bad:
            reason = clip(r.reason, 2000).replace("`" * 3, "'" * 3)
            lines += [f"### {assignment.title(r.task)}: {_STATUS_TEXT.get(r.status, r.status)}", "",
                      "`" * 3, reason, "`" * 3, ""]
    lines += ["", "Hidden tests are not shown: a failing hidden test reports only the kind of mismatch."]
    return "\n".join(lines) + "\n"


def write_outputs(results: list[Result], assignment: Assignment, out: pathlib.Path) -> pathlib.Path:
    out = pathlib.Path(out)
    (out / "feedback").mkdir(parents=True, exist_ok=True)
    gradebook = out / "gradebook.csv"
    tmp = gradebook.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="", encoding="utf-8", errors="backslashreplace") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        writer.writeheader()
        for res in sorted(results, key=lambda r: r.student):
            for r in res.rows:
                writer.writerow(r.as_csv())
    os.replace(tmp, gradebook)
    used: set[str] = set()
    for res in sorted(results, key=lambda r: r.student):
        name = base = safe_name(res.student)
        n = 1
        while name.lower() in used:  # two students whose names differ only in what safe_name replaces
            n += 1
            name = f"{base}-{n}"
        used.add(name.lower())
        (out / "feedback" / f"{name}.md").write_text(feedback_markdown(res, assignment), encoding="utf-8",
                                                     errors="backslashreplace")
    return gradebook


def _user() -> str:
    try:
        import pwd

        return f"user {pwd.getpwuid(os.getuid()).pw_name}"
    except (ImportError, KeyError):
        return "the user who ran the grader"


def refusal(problem: str) -> SandboxUnavailable:
    return SandboxUnavailable(f"refusing to grade untrusted submissions without the operating-system sandbox: "
                              f"{problem}. Install bubblewrap (apt-get install bubblewrap), or pass --no-sandbox "
                              f"to grade submissions you trust without it")


progress_line = console_line  # the name the local and the cluster paths (grader.cluster) print with


def warm_up_line(warm: Result) -> str:
    bad = [r for r in warm.rows if r.status not in ("passed", "manual")]
    return f"source notebook checked in {warm.seconds:.1f} s" + (
        f"; WARNING: it fails {', '.join(r.task for r in bad)}" if bad else "")


def grade_all(assignment_name: str, submissions: pathlib.Path, *, source_root=None, out=None, jobs=2,
              limits: Limits | None = None, progress=True, scheduler: str | None = None,
              cluster_options: dict | None = None) -> tuple[list[Result], pathlib.Path]:
    """Grade every submission in ``submissions``; write the gradebook and feedback under ``out``.

    With ``scheduler`` (a Dask scheduler's address), the submissions are graded by that cluster's
    workers (:mod:`grader.cluster`, imported only then; ``cluster_options`` go to its
    ``grade_on_cluster``); this process still writes the gradebook and the feedback.
    """
    source_root = pathlib.Path(source_root or REPO / "solutions")
    assignment = load_assignment(find_source(source_root, assignment_name), assignment_name)
    out = pathlib.Path(out or pathlib.Path("grading-output") / assignment_name)
    subs = find_submissions(submissions, assignment)
    limits = limits or Limits()
    if scheduler is None:  # on a cluster, each worker checks its own bubblewrap
        problem = sandbox_problem(limits) if limits.sandbox else None
        if problem:
            raise refusal(problem)
    out.mkdir(parents=True, exist_ok=True)
    warning_file = out / NO_SANDBOX_WARNING
    if limits.sandbox:
        warning_file.unlink(missing_ok=True)
    else:
        who = "the Dask workers' user" if scheduler else _user()
        text = (f"WARNING: {assignment_name} was graded with --no-sandbox: the submissions ran without the "
                f"operating-system sandbox (bubblewrap), with the rights of {who}, guarded only inside Python. "
                f"Only trust these grades for submissions you trust.")
        text = "\n".join([text] + [f"WARNING: {note}" for note in unsandboxed_guards(limits)])
        print(text, file=sys.stderr, flush=True)
        warning_file.write_text(text + "\n")
    real_stdout = sys.stdout

    def say(text):
        if progress:
            print(text, file=real_stdout, flush=True)

    t0 = time.monotonic()
    if scheduler is not None:
        from .cluster import grade_on_cluster

        results = grade_on_cluster(assignment, subs, limits, scheduler, say=say, **(cluster_options or {}))
    else:
        results = _grade_here(assignment, subs, limits, jobs, say)
    gradebook = write_outputs(results, assignment, out)
    say(f"graded {len(results)} submission(s) of {assignment_name} in {time.monotonic() - t0:.1f} s; "
        f"gradebook: {gradebook}; feedback: {out / 'feedback'}")
    return results, gradebook


def _grade_here(assignment: Assignment, subs: list, limits: Limits, jobs: int, say) -> list[Result]:
    """Grade on this machine: ``jobs`` submissions at a time, each thread with a sandbox of its own."""
    grader = Grader(assignment, limits)
    results: list[Result] = []

    def work(student, path):
        try:
            return grader.grade(student, path)
        except Exception as exc:  # a bug of the grader must not lose the other submissions
            return grader_error_result(student, assignment, internal_error_reason(exc))

    real_stdout = sys.stdout
    sys.stdout = _ThreadAwareStdout(real_stdout)
    try:
        if grader.limits.cache_dir:
            say(warm_up_line(grader.warm_up()))
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            futures = [pool.submit(work, s, p) for s, p in subs]
            for i, fut in enumerate(as_completed(futures), 1):
                res = fut.result()
                results.append(res)
                say(progress_line(i, len(subs), res, assignment))
    finally:
        sys.stdout = real_stdout
        grader.close()
    return results
