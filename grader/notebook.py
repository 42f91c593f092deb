"""Reading exercise notebooks: the instructor's source (trusted) and a student's submission (not).

The source defines the assignment: its setup cells, solution cells (what the student writes), test
cells (tasks, with hidden parts) and manually graded answer cells. A submission contributes only the
text of its solution and answer cells, matched by ``grade_id``; everything else in it (edited or
deleted tests, extra cells, outputs, metadata) is ignored, as nbgrader does.
"""
from __future__ import annotations

import ast
import errno
import json
import os
import pathlib
import re
import stat
import threading
from dataclasses import dataclass, field

BEGIN_SOLUTION, END_SOLUTION = "### BEGIN SOLUTION", "### END SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
MAX_NOTEBOOK_BYTES = 20 * 2**20
MAX_JSON_ITEMS = 1_000_000       # objects, arrays and strings in a notebook's JSON (bounds the memory parsing takes)
MAX_CELL_CHARS = 64_000          # code in one solution cell (the grader parses it; real solutions are a few kB)
MAX_CODE_CHARS = 256_000         # code in all solution cells of a submission
_ID_RE = re.compile(r"^[A-Za-z0-9_\-]+$")


_AST_LOCK = threading.Lock()


def parse(source: str) -> ast.Module:
    """ast.parse under a lock: CPython 3.11's AST conversion is not safe in parallel threads
    ("SystemError: AST constructor recursion depth mismatch")."""
    with _AST_LOCK:
        return ast.parse(source)


class NotebookError(ValueError):
    """The file is not a readable notebook (bad JSON, wrong structure, too large)."""


def cell_source(cell) -> str:
    src = cell.get("source", "")
    if isinstance(src, list):
        if not all(isinstance(s, str) for s in src):
            raise NotebookError("a cell's source is not text")
        return "".join(src)
    if not isinstance(src, str):
        raise NotebookError("a cell's source is not text")
    return src


def nbgrader_meta(cell) -> dict:
    meta = cell.get("metadata")
    if not isinstance(meta, dict):
        return {}
    nbg = meta.get("nbgrader")
    return nbg if isinstance(nbg, dict) else {}


def read_notebook_bytes(path: pathlib.Path) -> bytes:
    """The bytes of a notebook file. A submitted file is not trusted: it must be a regular file (not a
    symbolic link, a FIFO that would block the reader, or a device) of at most MAX_NOTEBOOK_BYTES."""
    path = pathlib.Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise NotebookError(f"{path.name} is a symbolic link") from None
        raise NotebookError(f"cannot read {path.name}: {exc.strerror}") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise NotebookError(f"{path.name} is not a regular file")
    if st.st_size > MAX_NOTEBOOK_BYTES:
        os.close(fd)
        raise NotebookError(f"{path.name} is {st.st_size / 2**20:.0f} MB (limit {MAX_NOTEBOOK_BYTES // 2**20} MB)")
    with os.fdopen(fd, "rb") as f:
        raw = f.read(MAX_NOTEBOOK_BYTES + 1)
    if len(raw) > MAX_NOTEBOOK_BYTES:
        raise NotebookError(f"{path.name} is larger than {MAX_NOTEBOOK_BYTES // 2**20} MB")
    return raw


def parse_notebook(data: bytes, name: str) -> dict:
    """A notebook's JSON from its bytes (``name``: the file name, for messages), of bounded size and
    structure."""
    if len(data) > MAX_NOTEBOOK_BYTES:
        raise NotebookError(f"{name} is {len(data) / 2**20:.0f} MB (limit {MAX_NOTEBOOK_BYTES // 2**20} MB)")
    if data.count(b'"') // 2 + data.count(b"{") + data.count(b"[") > MAX_JSON_ITEMS:
        raise NotebookError(f"{name} holds more than {MAX_JSON_ITEMS} JSON items")
    try:
        nb = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise NotebookError(f"{name} is not valid notebook JSON ({str(exc)[:120]})") from None
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise NotebookError(f"{name} has no list of cells")
    if not all(isinstance(c, dict) for c in nb["cells"]):
        raise NotebookError(f"{name} has malformed cells")
    return nb


def load_json_notebook(path: pathlib.Path) -> dict:
    return parse_notebook(read_notebook_bytes(path), pathlib.Path(path).name)


def split_hidden(source: str) -> tuple[str, str]:
    """Split a test cell into (visible code, hidden code); markers must be at the top level."""
    visible, hidden, inside = [], [], False
    for line in source.splitlines():
        stripped = line.strip()
        if stripped == BEGIN_HIDDEN:
            inside = True
            continue
        if stripped == END_HIDDEN:
            inside = False
            continue
        (hidden if inside else visible).append(line)
        (visible if inside else hidden).append("")  # keep line numbers aligned
    return "\n".join(visible) + "\n", "\n".join(hidden) + "\n"


def defined_names(source: str) -> list[str]:
    """Top-level names a solution cell defines (functions, classes, assignments)."""
    try:
        tree = parse(source)
    except SyntaxError:
        return []
    names = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.append(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                for n in ast.walk(t):
                    if isinstance(n, ast.Name):
                        names.append(n.id)
    return list(dict.fromkeys(names))


def _strings(node, constants: dict) -> set[str] | None:
    """The strings a ``forbid=`` expression stands for: literals, tuples/lists of them, names of
    constants holding them, and ``+`` of those. None if the expression is anything else."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, (ast.Tuple, ast.List)):
        out: set[str] = set()
        for elt in node.elts:
            sub = _strings(elt, constants)
            if sub is None:
                return None
            out |= sub
        return out
    if isinstance(node, ast.Name):
        return set(constants[node.id]) if node.id in constants else None
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _strings(node.left, constants), _strings(node.right, constants)
        return None if left is None or right is None else left | right
    return None


def string_constants(source: str, known: dict | None = None) -> dict[str, set[str]]:
    """Top-level ``NAME = ("a.b", ...)`` assignments of ``source`` (tuples of string literals, or
    ``+`` of such tuples and earlier constants): the forbid lists a setup or test cell defines once."""
    out = dict(known or {})
    try:
        tree = parse(source)
    except SyntaxError:
        return out
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name) \
                and not (isinstance(node.value, ast.Constant)):
            value = _strings(node.value, out)
            if value is not None:
                out[node.targets[0].id] = value
    return out


def forbidden_literals(source: str, constants: dict | None = None) -> set[str]:
    """Dotted names given in ``forbid=`` of check_function calls, read statically: string literals,
    or constants defined (as tuples of literals) in a setup cell or at the top of the test cell.

    Raises ValueError for a ``forbid=`` the grader cannot read without running code.
    """
    out: set[str] = set()
    try:
        tree = parse(source)
    except SyntaxError:
        return out
    constants = string_constants(source, constants)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            for kw in node.keywords:
                if kw.arg == "forbid":
                    names = _strings(kw.value, constants)
                    if names is None:
                        raise ValueError(f"forbid={ast.unparse(kw.value)} is not a tuple of string literals or "
                                         f"a constant defined as one in a setup cell")
                    out |= names
    return out


_POINTS = re.compile(r"\s*\(\s*\d+(?:\.\d+)?\s+points?\s*\)", re.IGNORECASE)


def heading_title(markdown: str) -> str:
    """``## Task 1 (2 points): a stable sigmoid`` -> ``Task 1: a stable sigmoid`` (first line only)."""
    for line in markdown.splitlines():
        line = line.strip()
        if line:
            line = line.lstrip("#").strip()
            if line.startswith("**"):
                line = line[2:].split("**", 1)[0]
            return " ".join(_POINTS.sub("", line).split()).rstrip(".")
    return ""


@dataclass
class Task:
    grade_id: str
    points: float
    visible: str
    hidden: str
    forbid: set[str]
    uses: list[str]            # student names the test cell refers to
    index: int                 # position in the source notebook
    title: str = ""            # the task's heading ("Task 1: a stable sigmoid"), for the feedback


@dataclass
class Question:
    grade_id: str
    points: float
    prompt: str
    title: str = ""


@dataclass
class Assignment:
    name: str
    path: pathlib.Path
    cells: list = field(default_factory=list)          # (kind, grade_id, source) in source order
    tasks: list = field(default_factory=list)
    questions: list = field(default_factory=list)
    student_names: list = field(default_factory=list)
    solution_ids: list = field(default_factory=list)

    @property
    def forbid(self) -> set[str]:
        return set().union(*(t.forbid for t in self.tasks)) if self.tasks else set()

    def title(self, grade_id: str) -> str:
        """The heading of a task or question (its grade_id if it has none)."""
        for item in self.tasks + self.questions:
            if item.grade_id == grade_id:
                return item.title or grade_id
        return grade_id

    @property
    def max_points(self) -> float:
        return sum(t.points for t in self.tasks) + sum(q.points for q in self.questions)


def load_assignment(path: pathlib.Path, name: str | None = None) -> Assignment:
    """Parse a source notebook (solutions/<assignment>/<nb>.ipynb)."""
    path = pathlib.Path(path)
    nb = load_json_notebook(path)
    a = Assignment(name=name or path.parent.name, path=path)
    seen: set[str] = set()
    last_prompt = ""
    last_title = ""
    constants: dict[str, set[str]] = {}
    for i, cell in enumerate(nb["cells"]):
        meta = nbgrader_meta(cell)
        src = cell_source(cell)
        ctype = cell.get("cell_type")
        if ctype == "markdown" and not (meta.get("solution") and meta.get("grade")) and src.lstrip().startswith(("#", "**")):
            last_title = heading_title(src)
        if not meta:
            if ctype == "markdown":
                last_prompt = src
            continue
        gid = str(meta.get("grade_id", ""))
        if not _ID_RE.match(gid):
            raise ValueError(f"{path}: cell {i} has an invalid grade_id {gid!r}")
        if gid in seen:
            raise ValueError(f"{path}: duplicate grade_id {gid!r}")
        seen.add(gid)
        solution, grade = bool(meta.get("solution")), bool(meta.get("grade"))
        points = float(meta.get("points", 0) or 0)
        if ctype == "code" and solution:
            a.cells.append(("solution", gid, src))
            a.solution_ids.append(gid)
            a.student_names.extend(n for n in defined_names(src) if n not in a.student_names)
        elif ctype == "code" and grade:
            if points <= 0:
                raise ValueError(f"{path}: test cell {gid!r} needs points > 0")
            visible, hidden = split_hidden(src)
            try:
                forbid = forbidden_literals(src, constants)
            except ValueError as exc:
                raise ValueError(f"{path}: test cell {gid}: {exc}") from None
            a.tasks.append(Task(gid, points, visible, hidden, forbid, [], i, last_title))
        elif ctype == "code":
            a.cells.append(("setup", gid, src))
            constants = string_constants(src, constants)
        elif ctype == "markdown" and solution and grade:
            a.questions.append(Question(gid, points, last_prompt, last_title))
        elif ctype == "markdown":
            last_prompt = src
    for t in a.tasks:
        try:
            used = {n.id for n in ast.walk(parse(t.visible + t.hidden)) if isinstance(n, ast.Name)}
        except SyntaxError as exc:
            raise ValueError(f"{path}: test cell {t.grade_id} is not valid Python: {exc}") from None
        t.uses = [n for n in a.student_names if n in used]
    return a


def find_source(root: pathlib.Path, assignment: str) -> pathlib.Path:
    folder = pathlib.Path(root) / assignment
    notebooks = sorted(p for p in folder.glob("*.ipynb") if not p.name.startswith("."))
    if not notebooks:
        raise FileNotFoundError(f"no source notebook in {folder} (is {assignment!r} an assignment name?)")
    if len(notebooks) > 1:
        raise ValueError(f"{folder} holds {len(notebooks)} notebooks; one per assignment is supported")
    return notebooks[0]


def student_cells(nb: dict, assignment: Assignment) -> tuple[dict, dict]:
    """Solution code and answer text of a submission, by grade_id (first occurrence wins)."""
    code, answers = {}, {}
    wanted_code = set(assignment.solution_ids)
    wanted_md = {q.grade_id for q in assignment.questions}
    for cell in nb["cells"]:
        gid = nbgrader_meta(cell).get("grade_id")
        if not isinstance(gid, str):
            continue
        try:
            src = cell_source(cell)
        except NotebookError:
            continue
        if gid in wanted_code and gid not in code and cell.get("cell_type") == "code":
            if len(src) > MAX_CELL_CHARS:
                raise NotebookError(f"solution cell {gid} holds {len(src)} characters of code; the grader accepts "
                                    f"at most {MAX_CELL_CHARS} per cell")
            code[gid] = src
        elif gid in wanted_md and gid not in answers:
            answers[gid] = src
    if sum(map(len, code.values())) > MAX_CODE_CHARS:
        raise NotebookError(f"the solution cells hold more than {MAX_CODE_CHARS} characters of code")
    return code, answers


def unparsable(source: str) -> str | None:
    """Why the grader cannot parse this code (None: it can, or it is plain invalid Python, which the
    sandbox reports like any syntax error). A cell the grader cannot parse is not run: its static check
    would see nothing in it."""
    try:
        parse(source)
    except SyntaxError:
        return None
    except (RecursionError, MemoryError):
        return "it is nested too deeply for the grader to check"
    except ValueError as exc:  # e.g. null bytes
        return f"the grader cannot parse it ({str(exc)[:80]})"
    return None
