"""Grading helpers called by the test cells of exercise notebooks (see docs/exercise_format.md).

The same helpers run in two places:

* in a normal Jupyter kernel (the student's, or nbgrader's autograder), where ``student_fn`` is the
  student's own function: the check runs locally, prints ``✓ ...`` or raises :class:`TaskFailed`;
* in the trusted grader process (``python -m grader``), where ``student_fn`` is a proxy that runs the
  student's function in a sandboxed child process and brings back plain arrays. The expected values
  and every comparison are computed here, so nothing the student's code does can change them.

A failure raises :class:`TaskFailed` (an ``AssertionError``) whose ``status`` says why
(``failed``, ``error``, ``not-attempted``, ``timeout``, ``crashed``, ``forbidden``, ``missing``) and
whose message is written for the student: one short line naming the output that is wrong
(``dW: wrong shape: expected (3, 2), got (2, 3)``), the call, and the expected and returned values
when they fit on a line. In IPython the error shows only that message, or, when the student's own
code raised, only the student's own frames (``_render_traceback_``): never this module's frames.
Inside hidden tests the message names only the kind of mismatch, the output and the test's
``description``: never the inputs, the expected values or the code.
"""
from __future__ import annotations

import ast
import contextlib
import copy
import functools
import importlib
import inspect
import sys
import textwrap
import threading
import types

import numpy as np

__all__ = ["check_function", "check_raises", "check_value", "TaskFailed", "StudentCodeError"]

_ctx = threading.local()
_DTYPE_MODES = ("kind", "exact", None)
_LINE = 100                      # longest value shown inline in a message
_OUTPUT_NAMES: dict[tuple, tuple] = {}   # (function name, test cell) -> names of its outputs (given once per task)


class TaskFailed(AssertionError):
    """A test of a task failed; ``status`` is the gradebook status, the message is the feedback.

    ``student_exc`` is the exception the student's own code raised, if that is why (local mode):
    IPython then shows the student's frames of it, and nothing of the grader.
    """

    def __init__(self, message: str, status: str = "failed", student_exc: BaseException | None = None):
        super().__init__(message)
        self.status = status
        self.student_exc = student_exc
        self.after_frames = ""   # shorter message shown below the student's frames

    def _render_traceback_(self):
        """What IPython shows for this error: the message, after the student's own frames if any."""
        lines = []
        exc = self.student_exc
        if exc is not None:
            try:
                from IPython import get_ipython

                shell = get_ipython()
                if shell is not None:
                    lines = list(shell.InteractiveTB.structured_traceback(type(exc), exc, exc.__traceback__))
            except Exception:
                lines = []
        text = (self.after_frames if lines and self.after_frames else str(self)).splitlines() or [""]
        return lines + [f"\x1b[0;31m{type(self).__bases__[0].__name__}\x1b[0m: {text[0]}"] + text[1:]


class StudentCodeError(Exception):
    """Raised by a sandbox proxy when the student's code did not return a value.

    ``kind`` is ``error`` (it raised), ``timeout``, ``crashed``, ``missing`` (name not defined) or
    ``unsupported`` (returned something that cannot cross the sandbox boundary). ``exc_type`` and
    ``detail`` describe the exception the student's code raised, if any.
    """

    def __init__(self, kind: str, message: str, exc_type: str = "", detail: str = ""):
        super().__init__(message)
        self.kind = kind
        self.exc_type = exc_type
        self.detail = detail


def _hidden() -> bool:
    return bool(getattr(_ctx, "hidden", False))


@contextlib.contextmanager
def hidden_section(flag: bool = True):
    """Used by the grader: checks inside report failures without revealing the test."""
    old = _hidden()
    _ctx.hidden = flag
    try:
        yield
    finally:
        _ctx.hidden = old


# ----------------------------------------------------------------------------- local forbid checks
_local_wrapped: dict[str, object] = {}
_local_calls = threading.local()


def _resolve(dotted: str):
    parts = dotted.split(".")
    for i in range(len(parts) - 1, 0, -1):
        try:
            mod = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        obj = mod
        for attr in parts[i:-1]:
            obj = getattr(obj, attr, None)
            if obj is None:
                return None, None
        return obj, parts[-1]
    return None, None


def _install_local_recorder(dotted: str) -> None:
    if dotted in _local_wrapped:
        return
    owner, attr = _resolve(dotted)
    original = getattr(owner, attr, None) if owner is not None else None
    if original is None or not callable(original):
        _local_wrapped[dotted] = None
        return

    @functools.wraps(original)  # keeps __wrapped__: inspect.unwrap / show_source still find the original
    def recorder(*args, **kwargs):
        __tracebackhide__ = True
        used = getattr(_local_calls, "used", None)
        if used is not None:
            used.add(dotted)
        return original(*args, **kwargs)

    setattr(owner, attr, recorder)
    _local_wrapped[dotted] = recorder


def _student_frames_only(exc: BaseException) -> BaseException:
    """Cut this module's frames out of ``exc``'s traceback (the student's frames stay)."""
    tb = exc.__traceback__
    kept = []
    while tb is not None:
        if tb.tb_frame.f_code.co_filename != __file__:
            kept.append(tb)
        tb = tb.tb_next
    for a, b in zip(kept, kept[1:] + [None]):
        a.tb_next = b
    exc.__traceback__ = kept[0] if kept else None
    return exc


def _call_student(student_fn, args, kwargs, forbid):
    """Call the student's function; return (result, forbidden names it called)."""
    remote = getattr(student_fn, "_grader_remote", False)
    if remote:
        result = student_fn(*args, **kwargs)
        used = set(getattr(student_fn, "last_forbidden_calls", ()))
        return result, used & set(forbid)
    for name in forbid:
        _install_local_recorder(name)
    # The student's code gets its own copies: an in-place change must not alter the reference's input.
    args, kwargs = copy.deepcopy(args), copy.deepcopy(kwargs)
    _local_calls.used = set()
    try:
        result = student_fn(*args, **kwargs)
    finally:
        used, _local_calls.used = _local_calls.used, None
    return result, used & set(forbid)


# ----------------------------------------------------------------------------- showing values
def _one_line(text: str) -> str:
    return " ".join(text.split())


def clip(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters at a word boundary (never mid-word), marked with ..."""
    if len(text) <= limit:
        return text
    cut = text[:limit - 4]
    if text[len(cut)] != " " and " " in cut:   # the cut falls inside a word: end at the word before
        cut = cut[:cut.rfind(" ")]
    return cut.rstrip(" ,;:") + " ..."


def _short(value, limit: int = _LINE) -> str:
    """A one-line description of ``value``: the values if they fit, else its type and shape."""
    if isinstance(value, (np.ndarray, np.generic)) or (hasattr(value, "__array__") and hasattr(value, "shape")
                                                       and not isinstance(value, (str, bytes))):
        try:
            arr = np.asarray(value)
        except Exception:
            return type(value).__name__
        if arr.ndim == 0:
            text = repr(arr[()].item()) if arr.dtype.kind in "biufc" else repr(arr[()])
            return text if arr.dtype in (np.float64, np.int64, np.bool_) else f"{text} ({arr.dtype})"
        text = _one_line(np.array2string(arr, precision=6, separator=", ", threshold=arr.size + 1))
        text = f"array({text}, {arr.dtype})"
        if len(text) <= limit:
            return text
        return f"<{arr.dtype} array {arr.shape}>"
    if isinstance(value, (list, tuple)):
        inner = [_short(v, limit) for v in value]
        open_, close = ("(", ",)" if len(value) == 1 else ")") if isinstance(value, tuple) else ("[", "]")
        text = open_ + ", ".join(inner) + close
        if len(text) <= limit:
            return text
        return f"<{type(value).__name__} of {len(value)} items>"
    if isinstance(value, dict):
        text = "{" + ", ".join(f"{k!r}: {_short(v, limit)}" for k, v in value.items()) + "}"
        return text if len(text) <= limit else f"<dict with keys {', '.join(map(repr, value))}>"
    if callable(value):
        return getattr(value, "__name__", type(value).__name__)
    return clip(repr(value), limit)


def _kind(dtype) -> str:
    k = np.dtype(dtype).kind
    return {"u": "i"}.get(k, k)


_KIND_NAMES = {"f": "floating point", "i": "integer", "b": "boolean", "c": "complex"}


def _is_arraylike(x) -> bool:
    return isinstance(x, (np.ndarray, np.generic, int, float, bool)) or (
        hasattr(x, "__array__") and hasattr(x, "shape") and hasattr(x, "dtype"))


# ----------------------------------------------------------------------------- comparison
class _Mismatch:
    """What differs: ``where`` (the output's name), a sentence, and the two values at that place."""

    def __init__(self, where: str, problem: str, got, expected):
        self.where, self.problem, self.got, self.expected = where, problem, got, expected

    def __str__(self):
        return f"{self.where}: {self.problem}" if self.where else self.problem


def _sub(where: str, key) -> str:
    if isinstance(key, str):
        return f"{where}[{key!r}]" if where else key
    return f"{where}[{key}]"


def _mismatch(got, expected, *, rtol, atol, dtype, where, names=None):
    """None if ``got`` matches ``expected``, else a :class:`_Mismatch`.

    ``names``: the names of the items of a tuple/list output (used instead of ``where[i]``).
    """
    if isinstance(expected, (tuple, list)):
        label = f" ({', '.join(names)})" if names else ""
        if not isinstance(got, (tuple, list)):
            return _Mismatch(where, f"expected a tuple of {len(expected)} items{label}, got "
                             f"{type(got).__name__}", got, expected)
        if len(got) != len(expected):
            return _Mismatch(where, f"expected {len(expected)} items{label}, got {len(got)}", got, expected)
        for i, (g, e) in enumerate(zip(got, expected)):
            sub = names[i] if names and len(names) == len(expected) else _sub(where, i) if where else f"item {i}"
            problem = _mismatch(g, e, rtol=rtol, atol=atol, dtype=dtype, where=sub)
            if problem:
                return problem
        return None
    if isinstance(expected, dict):
        if not isinstance(got, dict):
            return _Mismatch(where, f"expected a dict with keys {sorted(map(str, expected))}, got "
                             f"{type(got).__name__}", got, expected)
        if set(got) != set(expected):
            return _Mismatch(where, f"expected keys {sorted(map(str, expected))}, got {sorted(map(str, got))}",
                             got, expected)
        for key in expected:
            problem = _mismatch(got[key], expected[key], rtol=rtol, atol=atol, dtype=dtype, where=_sub(where, key))
            if problem:
                return problem
        return None
    where = where or "result"
    if expected is None or isinstance(expected, str):
        return None if got == expected else _Mismatch(where, f"expected {expected!r}, got {_short(got)}", got,
                                                      expected)
    if not _is_arraylike(got) or isinstance(got, (str, bytes)):
        return _Mismatch(where, f"expected an array, got {type(got).__name__}", got, expected)
    e = np.asarray(expected)
    try:
        g = np.asarray(got)
    except Exception:
        return _Mismatch(where, f"could not convert the answer ({type(got).__name__}) to an array", got, expected)
    if g.dtype.kind not in "biufc":
        return _Mismatch(where, f"expected a numeric array, got dtype {g.dtype}", got, expected)
    if g.shape != e.shape:
        return _Mismatch(where, f"wrong shape: expected {e.shape}, got {g.shape}", got, expected)
    python_scalar = isinstance(expected, (int, float)) and not isinstance(expected, bool)
    if dtype == "exact" and g.dtype != e.dtype and not python_scalar:
        return _Mismatch(where, f"wrong dtype: expected {e.dtype}, got {g.dtype}", got, expected)
    if dtype is not None:
        ek, gk = _kind(e.dtype), _kind(g.dtype)
        numeric = python_scalar and gk in "if"
        if ek != gk and not numeric:
            return _Mismatch(where, f"wrong dtype: expected {_KIND_NAMES.get(ek, ek)} ({e.dtype}), "
                             f"got {_KIND_NAMES.get(gk, gk)} ({g.dtype})", got, expected)

    def at(idx):
        return f"[{', '.join(map(str, idx))}]" if idx else ""

    def first(mask):
        return tuple(int(i) for i in np.argwhere(mask)[0]) if mask.ndim else ()

    if e.dtype.kind in "biu" and g.dtype.kind in "biu":
        bad = g != e
        if bad.any():
            i = first(bad)
            return _Mismatch(where, f"{int(bad.sum())} of {e.size} entries differ; at {at(i) or 'the value'}: "
                             f"expected {e[i].item()!r}, got {g[i].item()!r}", got, expected)
        return None
    g64 = g.astype(np.complex128 if g.dtype.kind == "c" else np.float64)
    e64 = e.astype(np.complex128 if e.dtype.kind == "c" else np.float64)
    g_nan, e_nan = np.isnan(g64), np.isnan(e64)
    if (g_nan & ~e_nan).any():
        i = first(g_nan & ~e_nan)
        return _Mismatch(where, f"contains NaN at {int((g_nan & ~e_nan).sum())} of {e.size} positions "
                         f"(first {at(i) or 'the value'}, expected {e64[i]:.6g})", got, expected)
    if (e_nan & ~g_nan).any():
        return _Mismatch(where, f"expected NaN at {int((e_nan & ~g_nan).sum())} position(s), got numbers",
                         got, expected)
    g_inf, e_inf = np.isinf(g64), np.isinf(e64)
    if (g_inf != e_inf).any() or (g64[g_inf] != e64[g_inf]).any():
        i = first((g_inf != e_inf) | (g_inf & (g64 != e64)))
        return _Mismatch(where, f"infinite values where they should not be (or missing where expected): at "
                         f"{at(i) or 'the value'} expected {e64[i]:.6g}, got {g64[i]:.6g}", got, expected)
    ok = g_nan | g_inf
    err = np.where(ok, 0.0, np.abs(g64 - e64))
    tol = atol + rtol * np.abs(np.where(ok, 0.0, e64))
    bad = err > tol
    if bad.any():
        i = tuple(int(k) for k in np.unravel_index(int(np.argmax(err - tol)), err.shape)) if err.ndim else ()
        where_text = f"{int(bad.sum())} of {e.size} positions, worst at {at(i)}" if e.size > 1 else "the value"
        near = err[i] < 100 * tol[i]   # a near miss: say how close it has to be
        return _Mismatch(where, f"values differ at {where_text}: expected {e64[i]:.7g}, got {g64[i]:.7g}"
                         + (f" (tolerance {atol:g} + {rtol:g}·|expected|)" if near else ""), got, expected)
    return None


def compare(got, expected, *, rtol=1e-5, atol=1e-6, dtype="kind", where="output", names=None):
    """Return None if ``got`` matches ``expected``, else a sentence saying what differs and where."""
    problem = _mismatch(got, expected, rtol=rtol, atol=atol, dtype=dtype, where=where, names=names)
    return None if problem is None else str(problem)


# ----------------------------------------------------------------------------- public helpers
def _split_case(case):
    if isinstance(case, dict) and set(case) <= {"args", "kwargs"}:
        args = case.get("args", ())
        return (tuple(args) if isinstance(args, (tuple, list)) else (args,)), dict(case.get("kwargs", {}))
    if isinstance(case, tuple):
        return case, {}
    return (case,), {}


def _describe_call(name, args, kwargs) -> str:
    parts = [_short(a, 40) for a in args] + [f"{k}={_short(v, 40)}" for k, v in kwargs.items()]
    return clip(f"{name}({', '.join(parts)})", 2 * _LINE)


def _case(name, case, i, n, description, hidden):
    """(args, kwargs, the case's label, the call line) of case ``i`` of ``n``; hidden: no call shown."""
    args, kwargs = _split_case(case)
    about = f" ({description})" if description else ""
    label = f"{name}: hidden test{about}, case {i + 1} of {n}" if hidden else f"{name}, case {i + 1} of {n}{about}"
    call = "" if hidden else f"\n  call:     {_describe_call(name, args, kwargs)}"
    return args, kwargs, label, call


def _summary(problem: _Mismatch) -> str:
    """The output and the kind of mismatch only (for hidden tests: no shapes, values or positions)."""
    text = problem.problem
    kind = "wrong answer"
    for key, name in (("wrong shape", "wrong shape"), ("wrong dtype", "wrong dtype"),
                      ("contains NaN", "NaN in the answer"), ("NaN", "wrong NaN pattern"),
                      ("infinite", "wrong infinite values"), ("values differ", "values differ"),
                      ("entries differ", "values differ"), ("expected an array", "not an array"),
                      ("items", "wrong structure"), ("keys", "wrong structure"), ("expected '", "wrong value")):
        if key in text:
            kind = name
            break
    return f"{problem.where}: {kind}" if problem.where else kind


def _returned_names(fn) -> tuple | None:
    """Names in the last ``return a, b, c`` (or ``return a``) statement of a local function's source."""
    try:
        src = textwrap.dedent(inspect.getsource(fn))
        tree = ast.parse(src)
    except (OSError, TypeError, SyntaxError, IndentationError):
        return None
    func = tree.body[0] if tree.body and isinstance(tree.body[0], (ast.FunctionDef, ast.AsyncFunctionDef)) else None
    if func is None or not func.body or not isinstance(func.body[-1], ast.Return) or func.body[-1].value is None:
        return None
    value = func.body[-1].value
    items = value.elts if isinstance(value, ast.Tuple) else [value]
    if all(isinstance(v, ast.Name) for v in items):
        return tuple(v.id for v in items)
    return None


def _output_names(student_fn, name, outputs, cell):
    """The names of the function's outputs: given now, given earlier in the same test cell (``cell``: the
    file name its code was compiled under), or read from a local function's return statement."""
    if outputs is not None:
        names = (outputs,) if isinstance(outputs, str) else tuple(outputs)
        if not all(isinstance(n, str) for n in names):
            raise TypeError(f"outputs must be a name or a tuple of names, got {outputs!r}")
        _OUTPUT_NAMES[(name, cell)] = names
        return names
    if (name, cell) in _OUTPUT_NAMES:
        return _OUTPUT_NAMES[(name, cell)]
    if isinstance(student_fn, types.FunctionType):
        return _returned_names(student_fn)
    return None


def _fail(message: str, status: str = "failed", student_exc=None, after_frames: str = ""):
    __tracebackhide__ = True
    exc = TaskFailed(message, status, student_exc)
    exc.after_frames = after_frames
    raise exc from None


def _compare_output(got, want, names, *, rtol, atol, dtype):
    if names and len(names) == 1:
        return _mismatch(got, want, rtol=rtol, atol=atol, dtype=dtype, where=names[0])
    return _mismatch(got, want, rtol=rtol, atol=atol, dtype=dtype, where="", names=names)


def _check_arguments(student_fn, cases):
    __tracebackhide__ = True
    if not callable(student_fn):
        _fail(f"expected a function, got {type(student_fn).__name__}: did you define it?", "missing")
    if not isinstance(cases, (list, tuple)) or len(cases) == 0:
        raise ValueError("cases must be a non-empty list of argument tuples")


def _not_attempted(name):
    __tracebackhide__ = True
    _fail(f"{name}: not attempted yet (it still raises NotImplementedError)", "not-attempted")


def check_function(student_fn, cases, *, reference=None, expected=None, test=None, rtol=1e-5, atol=1e-6,
                   dtype="kind", forbid=(), description="", outputs=None):
    """Call ``student_fn`` on every case and compare with ``reference(*case)`` or ``expected[i]``,
    or judge the result with ``test(result, *case)`` (None if fine, else a sentence saying what is
    wrong: for results that have no single right value, such as trained weights).

    ``outputs``: the name of the result, or the names of the items of a tuple result
    (``("dx", "dW", "db")``), used in the messages; given once per task (later calls for the same
    function reuse them), else read from the function's ``return a, b`` line when it is local.
    See docs/exercise_format.md. Raises :class:`TaskFailed` on the first failing case.
    """
    __tracebackhide__ = True
    _check_arguments(student_fn, cases)
    if sum(x is not None for x in (reference, expected, test)) != 1:
        raise ValueError("give exactly one of reference=, expected= or test=")
    if expected is not None and len(expected) != len(cases):
        raise ValueError(f"expected must have one entry per case ({len(cases)}), got {len(expected)}")
    if dtype not in _DTYPE_MODES:
        raise ValueError(f"dtype must be one of {_DTYPE_MODES}, got {dtype!r}")
    if isinstance(forbid, str):
        forbid = (forbid,)
    name = getattr(student_fn, "__name__", "function")
    names = _output_names(student_fn, name, outputs, sys._getframe(1).f_code.co_filename)
    hidden = _hidden()
    n = len(cases)
    for i, case in enumerate(cases):
        args, kwargs, label, call = _case(name, case, i, n, description, hidden)
        try:
            got, used = _call_student(student_fn, args, kwargs, forbid)
        except StudentCodeError as exc:
            if exc.exc_type == "NotImplementedError":
                _not_attempted(name)
            status = "error" if exc.kind in ("error", "unsupported") else exc.kind
            if hidden:
                what = f"your function raised {exc.exc_type}" if exc.exc_type else exc.kind
                _fail(f"{label}: {what}", status)
            _fail(f"{label}: {exc}{call}", status)
        except (TaskFailed, KeyboardInterrupt):
            raise
        except NotImplementedError:
            _not_attempted(name)
        except Exception as exc:  # local mode: the student's function raised
            if hidden:
                _fail(f"{label}: your function raised {type(exc).__name__}", "error")
            _fail(f"{label}: your function raised {type(exc).__name__}: {clip(_one_line(str(exc)), 300)}{call}",
                  "error", _student_frames_only(exc), f"{label}: your function raised the error above{call}")
        if used:
            _fail(f"{label}: calls {', '.join(sorted(used))}, which this task forbids (write it yourself)",
                  "forbidden")
        if test is not None:
            verdict = test(got, *args, **kwargs)
            if verdict:
                _fail(f"{label}: {verdict}" if hidden else f"{label}:\n  {verdict}{call}")
            continue
        want = reference(*args, **kwargs) if reference is not None else expected[i]
        problem = _compare_output(got, want, names, rtol=rtol, atol=atol, dtype=dtype)
        if problem:
            if hidden:
                _fail(f"{label}: {_summary(problem)}")
            shown = ""
            e_text, g_text = _short(problem.expected), _short(problem.got)
            if not (e_text + g_text).startswith("<") and " array (" not in e_text + g_text:
                shown = f"\n  expected: {e_text}\n  got:      {g_text}"
            _fail(f"{label}:\n  {problem}{call}{shown}")
    if not hidden:
        print(f"✓ {name}: {n} case{'s' if n > 1 else ''} passed")


def _raised_type_matches(type_name: str, exception) -> bool:
    import builtins

    cls = getattr(builtins, type_name, None)
    if isinstance(cls, type) and issubclass(cls, BaseException):
        return issubclass(cls, exception)
    return type_name == exception.__name__


def check_raises(student_fn, cases, exception=ValueError, *, match="", forbid=(), description=""):
    """Every case must make ``student_fn`` raise ``exception`` (a subclass counts); ``match``: a
    regular expression its message must contain (e.g. the argument's name)."""
    __tracebackhide__ = True
    import re

    _check_arguments(student_fn, cases)
    name = getattr(student_fn, "__name__", "function")
    hidden = _hidden()
    n = len(cases)
    want = exception.__name__ + (f" whose message mentions {match!r}" if match else "")
    for i, case in enumerate(cases):
        args, kwargs, label, call = _case(name, case, i, n, description, hidden)
        raised, message = None, ""
        try:
            got, used = _call_student(student_fn, args, kwargs, forbid)
        except StudentCodeError as exc:
            if exc.kind not in ("error", "unsupported") or not exc.exc_type:
                _fail(f"{label}: {exc}{call}", exc.kind)
            raised, message = exc.exc_type, exc.detail or str(exc)  # detail: never shown in a hidden test
        except (TaskFailed, KeyboardInterrupt):
            raise
        except Exception as exc:  # local mode
            raised, message = type(exc).__name__, str(exc)
            if isinstance(exc, exception):
                raised = exception.__name__
        else:
            if used:
                _fail(f"{label}: calls {', '.join(sorted(used))}, which this task forbids (write it yourself)",
                      "forbidden")
            _fail(f"{label}: expected {want}, but it returned {'a value' if hidden else _short(got)}{call}")
        if raised == "NotImplementedError" and exception is not NotImplementedError:
            _not_attempted(name)
        if not _raised_type_matches(raised, exception):
            _fail(f"{label}: expected {want}, got {raised}" + ("" if hidden else f": {clip(_one_line(message), 200)}{call}"),
                  "failed")
        if match and not re.search(match, message):
            _fail(f"{label}: the {raised} does not mention {match!r}"
                  + ("" if hidden else f"; its message: {clip(_one_line(message), 200)}{call}"))
    if not hidden:
        print(f"✓ {name}: {n} bad input{'s' if n > 1 else ''} rejected")


def check_value(student_value, expected, *, rtol=1e-5, atol=1e-6, dtype="kind", description=""):
    """Compare a value the student computed (a variable) with ``expected``."""
    __tracebackhide__ = True
    if dtype not in _DTYPE_MODES:
        raise ValueError(f"dtype must be one of {_DTYPE_MODES}, got {dtype!r}")
    fetch = getattr(student_value, "_grader_fetch", None)
    name = getattr(student_value, "__name__", "value")
    if fetch is not None:
        try:
            student_value = fetch()
        except StudentCodeError as exc:
            _fail(f"{name}: {exc}", "missing" if exc.kind == "missing" else exc.kind)
    hidden = _hidden()
    problem = _mismatch(student_value, expected, rtol=rtol, atol=atol, dtype=dtype, where=name)
    if problem:
        if hidden:
            _fail(f"{name}: hidden test{f' ({description})' if description else ''}: wrong value")
        _fail(f"{problem}\n  expected: {_short(expected)}\n  got:      {_short(student_value)}")
    if not hidden:
        print(f"✓ {name}: value matches")
