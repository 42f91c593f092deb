"""Grading helpers called by the test cells of exercise notebooks (see docs/exercise_format.md).

The same helpers run in two places:

* in a normal Jupyter kernel (the student's, or nbgrader's autograder), where ``student_fn`` is the
  student's own function: the check runs locally, prints ``✓ ...`` or raises ``AssertionError``;
* in the trusted grader process (``python -m grader``), where ``student_fn`` is a proxy that runs the
  student's function in a sandboxed child process and brings back plain arrays. The expected values
  and every comparison are computed here, so nothing the student's code does can change them.

A failure raises :class:`TaskFailed` (an ``AssertionError``) whose ``status`` says why
(``failed``, ``error``, ``timeout``, ``crashed``, ``forbidden``, ``missing``). Inside hidden tests
the message names only the kind of mismatch and the test's ``description``: never the inputs, the
expected values or the code.
"""
from __future__ import annotations

import contextlib
import functools
import importlib
import threading

import numpy as np

__all__ = ["check_function", "check_value", "TaskFailed", "StudentCodeError"]

_ctx = threading.local()
_DTYPE_MODES = ("kind", "exact", None)
_MAX_REPR = 400


class TaskFailed(AssertionError):
    """A test of a task failed; ``status`` is the gradebook status, the message is the feedback."""

    def __init__(self, message: str, status: str = "failed"):
        super().__init__(message)
        self.status = status


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
        used = getattr(_local_calls, "used", None)
        if used is not None:
            used.add(dotted)
        return original(*args, **kwargs)

    setattr(owner, attr, recorder)
    _local_wrapped[dotted] = recorder


def _call_student(student_fn, args, kwargs, forbid):
    """Call the student's function; return (result, forbidden names it called)."""
    remote = getattr(student_fn, "_grader_remote", False)
    if remote:
        result = student_fn(*args, **kwargs)
        used = set(getattr(student_fn, "last_forbidden_calls", ()))
        return result, used & set(forbid)
    for name in forbid:
        _install_local_recorder(name)
    _local_calls.used = set()
    try:
        result = student_fn(*args, **kwargs)
    finally:
        used, _local_calls.used = _local_calls.used, None
    return result, used & set(forbid)


# ----------------------------------------------------------------------------- comparison
def _short(value) -> str:
    if isinstance(value, np.ndarray) or hasattr(value, "__array__") and not isinstance(value, (str, bytes)):
        try:
            arr = np.asarray(value)
            text = np.array2string(arr, precision=6, threshold=24, edgeitems=3, max_line_width=100)
            text = f"array({text}, dtype={arr.dtype}, shape={arr.shape})"
        except Exception:
            text = repr(value)
    else:
        text = repr(value)
    return text if len(text) <= _MAX_REPR else text[:_MAX_REPR] + " ..."


def _kind(dtype) -> str:
    k = np.dtype(dtype).kind
    return {"u": "i"}.get(k, k)


_KIND_NAMES = {"f": "floating point", "i": "integer", "b": "boolean", "c": "complex"}


def _is_arraylike(x) -> bool:
    return isinstance(x, (np.ndarray, np.generic, int, float, bool)) or (
        hasattr(x, "__array__") and hasattr(x, "shape") and hasattr(x, "dtype"))


def compare(got, expected, *, rtol=1e-5, atol=1e-6, dtype="kind", where="output"):
    """Return None if ``got`` matches ``expected``, else a sentence saying what differs."""
    if isinstance(expected, (tuple, list)):
        if not isinstance(got, (tuple, list)):
            return f"{where}: expected a tuple of {len(expected)} items, got {type(got).__name__}"
        if len(got) != len(expected):
            return f"{where}: expected {len(expected)} items, got {len(got)}"
        for i, (g, e) in enumerate(zip(got, expected)):
            problem = compare(g, e, rtol=rtol, atol=atol, dtype=dtype, where=f"{where}[{i}]")
            if problem:
                return problem
        return None
    if isinstance(expected, dict):
        if not isinstance(got, dict):
            return f"{where}: expected a dict with keys {sorted(expected)}, got {type(got).__name__}"
        if set(got) != set(expected):
            return f"{where}: expected keys {sorted(map(str, expected))}, got {sorted(map(str, got))}"
        for key in expected:
            problem = compare(got[key], expected[key], rtol=rtol, atol=atol, dtype=dtype,
                              where=f"{where}[{key!r}]")
            if problem:
                return problem
        return None
    if expected is None or isinstance(expected, str):
        return None if got == expected else f"{where}: expected {expected!r}, got {_short(got)}"
    if not _is_arraylike(got) or isinstance(got, (str, bytes)):
        return f"{where}: expected an array, got {type(got).__name__}"
    e = np.asarray(expected)
    try:
        g = np.asarray(got)
    except Exception:
        return f"{where}: could not convert the answer ({type(got).__name__}) to an array"
    if g.dtype.kind not in "biufc":
        return f"{where}: expected a numeric array, got dtype {g.dtype}"
    if g.shape != e.shape:
        return f"{where}: wrong shape: expected {e.shape}, got {g.shape}"
    python_scalar = isinstance(expected, (int, float)) and not isinstance(expected, bool)
    if dtype == "exact" and g.dtype != e.dtype and not python_scalar:
        return f"{where}: wrong dtype: expected {e.dtype}, got {g.dtype}"
    if dtype is not None:
        ek, gk = _kind(e.dtype), _kind(g.dtype)
        numeric = python_scalar and gk in "if"
        if ek != gk and not numeric:
            return (f"{where}: wrong dtype: expected {_KIND_NAMES.get(ek, ek)} ({e.dtype}), "
                    f"got {_KIND_NAMES.get(gk, gk)} ({g.dtype})")
    if e.dtype.kind in "biu" and g.dtype.kind in "biu":
        bad = g != e
        if bad.any():
            idx = tuple(int(i) for i in np.argwhere(bad)[0])
            return f"{where}: {int(bad.sum())} of {e.size} entries differ (first at index {idx})"
        return None
    g64 = g.astype(np.complex128 if g.dtype.kind == "c" else np.float64)
    e64 = e.astype(np.complex128 if e.dtype.kind == "c" else np.float64)
    g_nan, e_nan = np.isnan(g64), np.isnan(e64)
    if (g_nan & ~e_nan).any():
        return f"{where}: contains NaN at {int((g_nan & ~e_nan).sum())} of {e.size} positions"
    if (e_nan & ~g_nan).any():
        return f"{where}: expected NaN at {int((e_nan & ~g_nan).sum())} position(s), got numbers"
    g_inf, e_inf = np.isinf(g64), np.isinf(e64)
    if (g_inf != e_inf).any() or (g64[g_inf] != e64[g_inf]).any():
        return f"{where}: infinite values where they should not be (or missing where expected)"
    ok = g_nan | g_inf
    err = np.where(ok, 0.0, np.abs(g64 - e64))
    tol = atol + rtol * np.abs(np.where(ok, 0.0, e64))
    bad = err > tol
    if bad.any():
        idx = tuple(int(i) for i in np.unravel_index(int(np.argmax(err - tol)), err.shape)) if err.ndim else ()
        return (f"{where}: values differ at {int(bad.sum())} of {e.size} positions; "
                f"max abs diff {float(err.max()):.3g} (first at index {idx}; "
                f"tolerance atol={atol:g}, rtol={rtol:g})")
    return None


# ----------------------------------------------------------------------------- public helpers
def _split_case(case):
    if isinstance(case, dict) and set(case) <= {"args", "kwargs"}:
        args = case.get("args", ())
        return (tuple(args) if isinstance(args, (tuple, list)) else (args,)), dict(case.get("kwargs", {}))
    if isinstance(case, tuple):
        return case, {}
    return (case,), {}


def _describe_call(name, args, kwargs) -> str:
    parts = [_short(a) for a in args] + [f"{k}={_short(v)}" for k, v in kwargs.items()]
    return f"{name}({', '.join(parts)})"


def _summary(problem: str) -> str:
    """The kind of mismatch only (for hidden tests: no shapes, values or positions)."""
    for key, text in (("wrong shape", "wrong shape"), ("wrong dtype", "wrong dtype"),
                      ("NaN", "NaN in the answer" if "contains NaN" in problem else "wrong NaN pattern"),
                      ("infinite", "wrong infinite values"), ("values differ", "values differ"),
                      ("entries differ", "values differ"), ("expected an array", "not an array"),
                      ("items", "wrong structure"), ("keys", "wrong structure")):
        if key in problem:
            return text
    return "wrong answer"


def _fail(message: str, status: str = "failed"):
    raise TaskFailed(message, status)


def check_function(student_fn, cases, *, reference=None, expected=None, rtol=1e-5, atol=1e-6,
                   dtype="kind", forbid=(), description=""):
    """Call ``student_fn`` on every case and compare with ``reference(*case)`` or ``expected[i]``.

    See docs/exercise_format.md. Raises :class:`TaskFailed` on the first failing case.
    """
    if not callable(student_fn):
        _fail(f"expected a function, got {type(student_fn).__name__}: did you define it?", "missing")
    if not isinstance(cases, (list, tuple)) or len(cases) == 0:
        raise ValueError("cases must be a non-empty list of argument tuples")
    if (reference is None) == (expected is None):
        raise ValueError("give exactly one of reference= or expected=")
    if expected is not None and len(expected) != len(cases):
        raise ValueError(f"expected must have one entry per case ({len(cases)}), got {len(expected)}")
    if dtype not in _DTYPE_MODES:
        raise ValueError(f"dtype must be one of {_DTYPE_MODES}, got {dtype!r}")
    if isinstance(forbid, str):
        forbid = (forbid,)
    name = getattr(student_fn, "__name__", "function")
    hidden = _hidden()
    n = len(cases)
    for i, case in enumerate(cases):
        args, kwargs = _split_case(case)
        label = (f"hidden test{f' ({description})' if description else ''}, case {i + 1} of {n}" if hidden
                 else f"case {i + 1} of {n}{f' ({description})' if description else ''}")
        call = "" if hidden else f"\n  call:     {_describe_call(name, args, kwargs)}"
        try:
            got, used = _call_student(student_fn, args, kwargs, forbid)
        except StudentCodeError as exc:
            status = "error" if exc.kind in ("error", "unsupported") else exc.kind
            if hidden:
                what = f"your function raised {exc.exc_type}" if exc.exc_type else exc.kind
                _fail(f"{name}: {label}: {what}", status)
            _fail(f"{name}: {label}: {exc}{call}", status)
        except (TaskFailed, KeyboardInterrupt):
            raise
        except Exception as exc:  # local mode: the student's function raised
            msg = type(exc).__name__ if hidden else f"{type(exc).__name__}: {exc}"
            _fail(f"{name}: {label}: your function raised {msg}{call}", "error")
        if used:
            _fail(f"{name}: {label}: calls {', '.join(sorted(used))}, which this task forbids "
                  f"(write it yourself)", "forbidden")
        want = reference(*args, **kwargs) if reference is not None else expected[i]
        problem = compare(got, want, rtol=rtol, atol=atol, dtype=dtype)
        if problem:
            if hidden:
                _fail(f"{name}: {label}: {_summary(problem)}")
            _fail(f"{name}: {label}: {problem}{call}\n  expected: {_short(want)}\n  got:      {_short(got)}")
    if not hidden:
        print(f"✓ {name}: {n} case(s) passed")


def check_value(student_value, expected, *, rtol=1e-5, atol=1e-6, dtype="kind", description=""):
    """Compare a value the student computed (a variable) with ``expected``."""
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
    problem = compare(student_value, expected, rtol=rtol, atol=atol, dtype=dtype, where=name)
    if problem:
        if hidden:
            _fail(f"{name}: hidden test{f' ({description})' if description else ''}: wrong value")
        _fail(f"{problem}\n  expected: {_short(expected)}\n  got:      {_short(student_value)}")
    if not hidden:
        print(f"✓ {name}: value matches")
