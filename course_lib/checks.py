"""Checking code against a reference: relative error, numerical gradients, readable comparisons.

Everything here computes in float64 NumPy, whatever precision JAX runs in (notebooks run JAX in
float32): a check must be more precise than the thing it checks.

Taught in: notebooks/06_backpropagation.ipynb (gradient checking)
"""
from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp
import numpy as np

from course_lib._validation import check_number

__all__ = ["rel_error", "numerical_gradient", "check_close", "show_source"]


def _f64(x, name):
    """``x`` as a float64 NumPy array (ints and bools allowed), rejecting NaN with a clear message.

    Converted with NumPy, never through ``jnp.asarray`` (which would round to float32 when JAX's
    64-bit mode is off, as in the notebooks).
    """
    if isinstance(x, (str, bytes)) or x is None:
        raise TypeError(f"{name} must be a real array or number, got {type(x).__name__}")
    try:
        arr = np.asarray(x)
    except Exception as exc:  # ragged lists and the like
        raise TypeError(f"{name} must be a real array or number, got {type(x).__name__}: {exc}") from None
    # jnp.issubdtype also knows JAX's extra floats (bfloat16, float8) that NumPy files under "void"
    if not (jnp.issubdtype(arr.dtype, jnp.floating) or np.issubdtype(arr.dtype, np.integer)
            or arr.dtype == bool):
        raise TypeError(f"{name} must be a real array or number, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    n_nan = int(np.isnan(arr).sum())
    if n_nan:
        raise ValueError(f"{name} contains {n_nan} NaN value(s); a NaN usually comes from log(0), "
                         f"0/0 or an overflow upstream")
    return arr


def _same_shape(a, a_name, b, b_name):
    if a.shape != b.shape:
        raise ValueError(f"{a_name} and {b_name} must have the same shape, got {a.shape} and {b.shape}")


def rel_error(x, y):
    """Maximum relative error: max_i |x_i - y_i| / max(1e-8, |x_i| + |y_i|), as a Python float.

    The CS231n gradient-check measure: around 1e-7 or less means two float64 computations agree;
    around 1e-2 or more usually means a bug. The 1e-8 floor keeps entries where both are ~0 from
    dividing by zero. ``x`` and ``y`` must have the same shape.

    Taught in: notebooks/06_backpropagation.ipynb
    """
    x = _f64(x, "x")
    y = _f64(y, "y")
    _same_shape(x, "x", y, "y")
    if x.size == 0:
        return 0.0
    both_inf_equal = np.isinf(x) & (x == y)
    with np.errstate(invalid="ignore"):  # inf - inf and inf / inf are handled just below
        diff = np.where(both_inf_equal, 0.0, np.abs(x - y))
        scale = np.maximum(1e-8, np.abs(x) + np.abs(y))
        ratio = np.where(both_inf_equal, 0.0, diff / scale)
    ratio = np.where(np.isnan(ratio), np.inf, ratio)  # inf vs -inf, inf vs finite: as bad as it gets
    return float(np.max(ratio))


def numerical_gradient(f, x, eps=1e-6):
    """Gradient of a scalar function by central differences, in float64.

    df/dx_i ~ (f(x + eps e_i) - f(x - eps e_i)) / (2 eps), one pair of calls per entry of ``x``.
    The truncation error is O(eps^2) and the rounding error O(machine_eps / eps); eps = 1e-6 in
    float64 balances them (~1e-10 absolute). ``f`` is called with a float64 array of the shape of
    ``x`` with JAX's 64-bit mode switched on, so a JAX ``f`` also computes in float64. Avoid kinks
    (ReLU at 0): there the difference quotient straddles two slopes.

    Returns a float64 NumPy array shaped like ``x``.

    Taught in: notebooks/06_backpropagation.ipynb
    """
    if not callable(f):
        raise TypeError(f"f must be a callable returning a scalar, got {type(f).__name__}")
    x = np.array(_f64(x, "x"), copy=True)  # a private copy: we perturb it in place
    if not np.all(np.isfinite(x)):
        raise ValueError("x must be finite, got infinite value(s)")
    eps = check_number(eps, "eps", low=0, low_open=True)

    def call(v):
        out = f(v)
        try:
            arr = np.asarray(out, dtype=np.float64)
        except (TypeError, ValueError):
            raise TypeError(f"f must return a real scalar, got {type(out).__name__}") from None
        if arr.size != 1:
            raise ValueError(f"f must return a scalar, got an output of shape {arr.shape}")
        value = float(arr.reshape(()))
        if not np.isfinite(value):
            raise ValueError(f"f returned a non-finite value ({value}) near x; "
                             f"numerical_gradient needs a finite f around x")
        return value

    grad = np.zeros_like(x)
    with jax.enable_x64(True):
        flat = x.reshape(-1)
        g = grad.reshape(-1)
        for i in range(flat.size):
            old = flat[i]
            flat[i] = old + eps
            plus = call(x.copy())
            flat[i] = old - eps
            minus = call(x.copy())
            flat[i] = old
            g[i] = (plus - minus) / (2.0 * eps)
    return grad


def check_close(got, expected, name="", rtol=1e-6, atol=1e-8):
    """Compare ``got`` with ``expected`` and print a one-line verdict; return True if close.

    Prints ``name | close: True  | |got - expected| <= atol + rtol·|expected|`` with the two
    tolerances filled in. *close* is the rule of ``np.allclose``, checked entry by entry. Shapes must
    match exactly (no broadcasting: a (N,) vs (N, 1) mix-up is a bug, not a match).

    On success only the verdict and the tolerance are printed, never the size of the difference:
    two CPUs round float32 differently in the last bits, so a printed "max diff: 1.63e-07" would read
    2.08e-07 on another machine, while the verdict against a stated tolerance is the same on both.
    When the check fails, the worst entry is named with both values, so you know where to look.

    Taught in: notebooks/06_backpropagation.ipynb
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a string, got {type(name).__name__}")
    check_number(rtol, "rtol", low=0)
    check_number(atol, "atol", low=0)
    g = _f64(got, "got")
    e = _f64(expected, "expected")
    _same_shape(g, "got", e, "expected")
    approx = bool(np.allclose(g, e, rtol=float(rtol), atol=float(atol)))
    label = f"{name:<16s} | " if name else ""
    line = (f"{label}close: {approx!s:<5} | |got - expected| <= {float(atol):g} + "
            f"{float(rtol):g}·|expected|")
    if not approx and g.size:
        with np.errstate(invalid="ignore"):
            diff = np.where(g == e, 0.0, np.abs(g - e))
        diff = np.where(np.isnan(diff), np.inf, diff)
        where = np.unravel_index(int(np.argmax(diff)), diff.shape)
        idx = tuple(int(i) for i in where)
        line += (f" | max diff {float(diff[where]):.2e} at index {idx}: got {g[where]:.6g}, "
                 f"expected {e[where]:.6g}")
    print(line)
    return approx


def show_source(obj):
    """Show the source code of a public course_lib function (or class/module) in a notebook.

    Only public objects: a name that starts with ``_`` is an implementation detail, not what a
    chapter teaches, and is refused with a ``TypeError`` (special methods such as ``__mul__`` are
    public). A function wrapped by a decorator (``jax.jit``, ``_validation.checked``) is shown as
    written, decorator included. In Jupyter the code is shown with syntax highlighting; elsewhere it
    is printed.

    Used in: every chapter from notebooks/03_neurons_and_activations.ipynb on (taught in
    notebooks/06_backpropagation.ipynb with the other checks)
    """
    target = inspect.unwrap(obj) if callable(obj) else obj
    if not (inspect.isfunction(target) or inspect.isclass(target) or inspect.ismodule(target)
            or inspect.ismethod(target)):
        raise TypeError(f"obj must be a Python function, class or module, got {type(obj).__name__}")
    name = getattr(target, "__name__", "").rsplit(".", 1)[-1]
    if name.startswith("_") and not (name.startswith("__") and name.endswith("__")):
        raise TypeError(f"obj must be a public function, class or module; {name} is private (its "
                        f"name starts with '_'): show the public function that uses it")
    try:
        source = inspect.getsource(target)
    except (OSError, TypeError) as exc:
        raise TypeError(f"obj has no Python source to show ({exc})") from None
    try:
        from IPython import get_ipython
        from IPython.display import Code, display
    except ImportError:  # pragma: no cover - IPython is a dependency of the course
        print(source)
        return None
    if get_ipython() is None:
        print(source)
    else:
        display(Code(source, language="python"))
    return None
