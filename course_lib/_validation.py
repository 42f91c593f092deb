"""Argument checks shared by every public function of course_lib (both wings).

One helper per kind of argument. A wrong *type* raises ``TypeError``, a wrong *value* (shape, range,
option, NaN) raises ``ValueError``, and the message names the argument and what was expected, so a
student who passes the wrong thing learns what to pass instead of reading an XLA shape error three
frames deep.

Value checks (NaN, ranges, labels, sums) run only on concrete arrays, with NumPy on the host:
inside ``jax.jit``/``jax.grad``/``jax.vmap`` the inputs are tracers and only shapes and dtypes are
checked, so a public function still works inside a user's compiled code.

A public function checks its arguments first and then computes, either in its own body or with
:func:`checked`, which runs a check function and then the function's body compiled.
"""
from __future__ import annotations

import functools
import inspect
from typing import Iterable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "is_concrete", "is_binary_np", "checked",
    "as_float_array", "as_int_array", "check_ndim", "check_shape", "check_same_shape",
    "check_axis", "check_nonempty", "check_finite", "check_probability", "check_distribution", "check_labels",
    "check_targets",
    "check_option", "check_number", "check_int", "check_int_sequence", "as_int_pair", "check_bool", "check_key",
    "check_callable", "check_tree", "check_cache",
]


def is_concrete(x) -> bool:
    """True if ``x`` holds actual values (not a tracer inside jit/grad/vmap)."""
    return not isinstance(x, jax.core.Tracer)


def is_binary_np(x) -> bool:
    """All values of a concrete ``x`` are 0 or 1, checked with NumPy on the host (a ``jnp`` test of
    a concrete array would be staged, not evaluated, when called inside a jit trace)."""
    v = np.asarray(x)
    return bool(((v == 0) | (v == 1)).all())


def checked(check, *, static_argnames=()):
    """Decorator of a public function whose body is only the math.

    ``check`` takes the function's arguments and returns all of them, validated and converted, as a
    tuple in the order of the signature; the body then runs compiled (``jax.jit`` with
    ``static_argnames``). So an eager call gets the value checks (NaN, ranges) and one compiled
    program, and a call inside another traced function only its shape and dtype checks.
    ``inspect.unwrap`` (and ``checks.show_source``) gives the undecorated function.
    """
    def decorate(fn):
        compiled = jax.jit(fn, static_argnames=static_argnames)
        names = tuple(inspect.signature(fn).parameters)

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            return compiled(**dict(zip(names, check(*args, **kwargs))))
        return wrapper
    return decorate


# --------------------------------------------------------------------------- arrays
def _dtype_of(x):
    return x.dtype if hasattr(x, "dtype") else np.asarray(x).dtype


def _float_dtype(x, name: str, allow_int: bool):
    """The dtype ``x`` becomes as a float array (JAX's canonical dtype), or raise ``TypeError``."""
    if isinstance(x, (str, bytes)) or x is None:
        raise TypeError(f"{name} must be a floating-point array, got {type(x).__name__}")
    try:
        dtype = _dtype_of(x)
    except Exception as exc:  # e.g. ragged lists
        raise TypeError(f"{name} must be a floating-point array, got {type(x).__name__}: {exc}") from None
    if dtype == object:
        raise TypeError(f"{name} must be a floating-point array, got an array of Python objects "
                        f"(ragged nested lists?)")
    if jnp.issubdtype(dtype, jnp.floating):
        if not hasattr(x, "dtype"):  # Python floats / lists: jnp.asarray gives the default float
            dtype = jnp.result_type(float)
        return jax.dtypes.canonicalize_dtype(dtype)
    if jnp.issubdtype(dtype, jnp.complexfloating):
        raise TypeError(f"{name} must be a real floating-point array, got {dtype}")
    if allow_int and (jnp.issubdtype(dtype, jnp.integer) or dtype == bool):
        return jax.dtypes.canonicalize_dtype(jnp.result_type(float))
    raise TypeError(f"{name} must be a floating-point array, got dtype {dtype}; "
                    f"convert it with {name}.astype(float) if that is what you meant")


def _to_jax(x, dtype):
    # A NumPy array goes over with device_put (jnp.asarray would compile a small XLA program for
    # every new shape; see benchmarks/README.md). Same values, same dtype.
    if isinstance(x, np.ndarray):
        return jax.device_put(np.asarray(x, dtype=dtype))
    arr = jnp.asarray(x)  # keeps a Python float weakly typed
    return arr if arr.dtype == dtype else arr.astype(dtype)


def as_float_array(x, name: str, *, allow_int: bool = False):
    """Return ``x`` as a floating-point JAX array or raise ``TypeError`` naming ``name``.

    Python floats, lists of floats, numpy and JAX float arrays pass. Integer and boolean arrays are
    rejected unless ``allow_int`` (they are then cast to the default float dtype): an integer array
    where a float was meant is a classic silent bug (a logits array of ints usually means the labels
    were passed in the wrong slot).
    """
    return _to_jax(x, _float_dtype(x, name, allow_int))


def as_int_array(x, name: str):
    """Return ``x`` as an integer JAX array (class labels, indices) or raise ``TypeError``."""
    if isinstance(x, (str, bytes)) or x is None:
        raise TypeError(f"{name} must be an integer array, got {type(x).__name__}")
    dtype = _dtype_of(x)
    if not jnp.issubdtype(dtype, jnp.integer):
        raise TypeError(f"{name} must be an integer array (class indices), got dtype {dtype}")
    return _to_jax(x, jax.dtypes.canonicalize_dtype(dtype if hasattr(x, "dtype") else jnp.result_type(int)))


def check_ndim(x, name: str, ndims: int | Iterable[int]):
    """``ValueError`` unless ``x`` has one of the numbers of dimensions ``ndims``."""
    allowed = (ndims,) if isinstance(ndims, int) else tuple(ndims)
    if jnp.ndim(x) not in allowed:
        want = " or ".join(str(n) for n in allowed)
        raise ValueError(f"{name} must have {want} dimension(s), got shape {tuple(jnp.shape(x))}")
    return x


def check_shape(x, name: str, shape: Sequence[int | None]):
    """Check ``x.shape`` against ``shape`` where ``None`` matches any size."""
    got = tuple(jnp.shape(x))
    if len(got) != len(shape) or any(s is not None and s != g for s, g in zip(shape, got)):
        want = "(" + ", ".join("any" if s is None else str(s) for s in shape) + ")"
        raise ValueError(f"{name} must have shape {want}, got {got}")
    return x


def check_same_shape(a, a_name: str, b, b_name: str):
    """``ValueError`` unless ``a`` and ``b`` have the same shape."""
    if jnp.shape(a) != jnp.shape(b):
        raise ValueError(f"{a_name} and {b_name} must have the same shape, "
                         f"got {tuple(jnp.shape(a))} and {tuple(jnp.shape(b))}")


def check_axis(axis, x, x_name: str = "x", name: str = "axis") -> int:
    """An axis of ``x``, as a non-negative int: ``TypeError`` for a non-int, ``ValueError`` for a
    scalar ``x`` or an axis outside ``[-ndim, ndim - 1]``."""
    axis = check_int(axis, name)
    ndim = jnp.ndim(x)
    if ndim == 0:
        raise ValueError(f"{x_name} must have at least 1 dimension (to take {name} {axis} of), got a scalar")
    if not -ndim <= axis < ndim:
        raise ValueError(f"{name} must be in [{-ndim}, {ndim - 1}] for {x_name} of shape "
                         f"{tuple(jnp.shape(x))}, got {axis}")
    return axis % ndim


def check_nonempty(x, name: str, axes: int | Iterable[int] = 0):
    """``ValueError`` if ``x`` has size 0 along any of ``axes`` (e.g. an empty batch)."""
    shape = tuple(jnp.shape(x))
    for axis in ((axes,) if isinstance(axes, int) else tuple(axes)):
        if shape[axis] == 0:
            raise ValueError(f"{name} must not be empty along axis {axis}, got shape {shape}")
    return x


# --------------------------------------------------------------------------- values of arrays
def check_finite(x, name: str):
    """``ValueError`` if a concrete ``x`` holds NaN or infinity (skipped for tracers)."""
    if is_concrete(x):
        v = np.asarray(x)
        if not np.isfinite(v).all():
            raise ValueError(f"{name} must be finite, got {int(np.isnan(v).sum())} NaN and "
                             f"{int(np.isinf(v).sum())} infinite value(s)")
    return x


def check_probability(x, name: str, *, open_interval: bool = False):
    """``ValueError`` unless a concrete ``x`` lies in [0, 1] (or (0, 1)); skipped for tracers."""
    check_finite(x, name)
    if is_concrete(x):
        v = np.asarray(x)
        if v.size:
            lo_ok = (v > 0).all() if open_interval else (v >= 0).all()
            hi_ok = (v < 1).all() if open_interval else (v <= 1).all()
            if not (lo_ok and hi_ok):
                interval = "(0, 1)" if open_interval else "[0, 1]"
                raise ValueError(f"{name} must lie in {interval}, got values from "
                                 f"{float(v.min()):.4g} to {float(v.max()):.4g}")
    return x


#: Rows of probability distributions must sum to 1 within this tolerance (float32 safe).
SUM_TOL = 1e-3


def check_distribution(p, name: str, axis: int = -1):
    """``ValueError`` unless a concrete ``p`` holds probability distributions along ``axis``: values
    in [0, 1] that sum to 1 (within ``SUM_TOL``). Skipped for tracers."""
    check_probability(p, name)
    if is_concrete(p) and np.size(p):
        worst = float(np.max(np.abs(np.asarray(p, dtype=np.float64).sum(axis=axis) - 1.0)))
        if worst > SUM_TOL:
            raise ValueError(f"{name} must be probability distributions summing to 1 along axis "
                             f"{axis}; the worst sum is off by {worst:.3g}")
    return p


def check_labels(y, name: str, n_classes: int | None = None, n: int | None = None):
    """Integer class indices as a JAX array: ``TypeError`` for another dtype, ``ValueError`` for a
    shape other than ``(n,)`` (when ``n`` is given; otherwise 1-D) or, on concrete values, an index
    outside ``[0, n_classes - 1]`` (a negative label would silently wrap around in an indexing
    operation, one past the last class would read garbage)."""
    y = as_int_array(y, name)
    if n is None:
        check_ndim(y, name, 1)
    elif y.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},) (one class index per row), got {tuple(y.shape)}")
    if is_concrete(y) and y.size:
        v = np.asarray(y)
        lo, hi = int(v.min()), int(v.max())
        if lo < 0 or (n_classes is not None and hi >= n_classes):
            want = ">= 0" if n_classes is None else f"in [0, {n_classes - 1}]"
            raise ValueError(f"{name} must be class indices {want}, got values from {lo} to {hi}")
    return y


def check_targets(labels, name: str, n: int, n_classes: int):
    """The targets of a softmax classifier with ``n`` rows and ``n_classes`` classes: integer class
    indices (n,) (see :func:`check_labels`) or probability rows (n, n_classes) summing to 1 (soft
    labels, see :func:`check_distribution`). Returned as a JAX array of their kind."""
    if isinstance(labels, (str, bytes)) or labels is None:
        raise TypeError(f"{name} must be an integer array (N,) of class indices or a float array "
                        f"(N, C) of probabilities, got {type(labels).__name__}")
    dtype = labels.dtype if hasattr(labels, "dtype") else np.asarray(labels).dtype
    if not jnp.issubdtype(dtype, jnp.floating):
        return check_labels(labels, name, n_classes=n_classes, n=n)
    labels = as_float_array(labels, name)
    if labels.shape != (n, n_classes):
        raise ValueError(f"{name} of class probabilities must have the shape of the logits "
                         f"{(n, n_classes)}, got {tuple(labels.shape)}; integer class indices need "
                         f"an integer dtype")
    return check_distribution(labels, name)


# --------------------------------------------------------------------------- scalars and options
def check_option(value, name: str, allowed: Iterable):
    """``value`` if it is one of ``allowed``; ``TypeError`` for a non-string where the options are
    strings, ``ValueError`` for an unknown option."""
    allowed = tuple(allowed)
    if all(isinstance(a, str) for a in allowed) and not isinstance(value, str):
        raise TypeError(f"{name} must be a string, one of {', '.join(repr(a) for a in allowed)}; "
                        f"got {type(value).__name__}")
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(repr(a) for a in allowed)}; got {value!r}")
    return value


def _interval(low, high, low_open, high_open):
    """``> 0``, ``<= 1`` or ``in [0, 1)``: the allowed range of a number, as the message states it
    (empty without bounds)."""
    if low is None and high is None:
        return ""
    if high is None and low is not None:
        return f"{'>' if low_open else '>='} {low}"
    if low is None and high is not None:
        return f"{'<' if high_open else '<='} {high}"
    return (f"in {'(' if low_open or low is None else '['}{'-inf' if low is None else low}, "
            f"{'inf' if high is None else high}{')' if high_open or high is None else ']'}")


def check_number(value, name: str, *, low=None, high=None, low_open: bool = False,
                 high_open: bool = False, grid: bool = False):
    """A real number (a Python or NumPy scalar or a 0-d array; not a bool or a string) in a range,
    as a Python float. ``TypeError`` for another type; ``ValueError`` for NaN, infinity or a value
    outside ``[low, high]`` (``low_open``/``high_open`` exclude an end). A 0-d tracer (a number
    inside ``jax.jit``/``vmap``) is returned as it is: its value cannot be checked; with
    ``grid=True`` so is a traced array of numbers (a grid of values broadcast elementwise, e.g. the
    learning rates of several runs computed side by side)."""
    dtype = getattr(value, "dtype", None)
    real = dtype is not None and (jnp.issubdtype(dtype, jnp.floating) or jnp.issubdtype(dtype, jnp.integer))
    if not is_concrete(value) and real and (grid or np.ndim(value) == 0):
        return value
    scalar = isinstance(value, (int, float, np.integer, np.floating)) or (real and np.ndim(value) == 0)
    if isinstance(value, (bool, np.bool_)) or not scalar:
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    v = float(value)
    bad = not np.isfinite(v)
    if low is not None:
        bad |= v <= low if low_open else v < low
    if high is not None:
        bad |= v >= high if high_open else v > high
    if bad:
        interval = _interval(low, high, low_open, high_open)
        raise ValueError(f"{name} must be a finite number{' ' + interval if interval else ''}, got {value!r}")
    return v


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def check_int(value, name: str, *, minimum=None, maximum=None) -> int:
    """A Python or NumPy integer (not a bool, not 1.0) as a Python int: ``TypeError`` for another
    type, ``ValueError`` if it is below ``minimum`` or above ``maximum``."""
    if not _is_int(value):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be an int <= {maximum}, got {value!r}")
    return int(value)


def check_int_sequence(values, name: str, *, minimum=None) -> list[int]:
    """A non-empty sequence of ints (seeds, say) as a list of Python ints: ``TypeError`` for a
    non-sequence or a non-int entry, ``ValueError`` if it is empty or an entry is below ``minimum``."""
    if isinstance(values, (str, bytes, dict)) or not hasattr(values, "__len__") or getattr(values, "ndim", 1) == 0:
        raise TypeError(f"{name} must be a sequence of ints, got {type(values).__name__}")
    if len(values) == 0:
        raise ValueError(f"{name} must be a non-empty sequence of ints, got {values!r}")
    return [check_int(v, f"{name}[{i}]", minimum=minimum) for i, v in enumerate(values)]


def as_int_pair(value, name: str, *, minimum=None) -> tuple[int, int]:
    """An int or a pair of ints (height, width), as a pair of Python ints: ``TypeError`` for
    anything else, ``ValueError`` if an entry is below ``minimum``."""
    pair = (value, value) if _is_int(value) else value
    if not isinstance(pair, (tuple, list)) or len(pair) != 2 or not all(map(_is_int, pair)):
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
    if minimum is not None and min(pair) < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return int(pair[0]), int(pair[1])


def check_bool(value, name: str) -> bool:
    """``TypeError`` unless ``value`` is True or False (a NumPy bool passes)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__}")
    return bool(value)


def check_key(key, name: str = "key"):
    """A JAX random key: a typed key array (``jax.random.key(0)``) or a raw ``uint32`` key of shape
    (2,) (``jax.random.PRNGKey(0)``). ``TypeError`` for anything else (an int seed included)."""
    dtype = getattr(key, "dtype", None)
    if dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
        return key
    if dtype == np.uint32 and tuple(np.shape(key)) == (2,):
        return key
    raise TypeError(f"{name} must be a JAX random key (jax.random.key(seed)), got "
                    f"{type(key).__name__}{'' if dtype is None else f' of dtype {dtype}'}; "
                    f"turn a seed into a key with jax.random.key(seed)")


def check_callable(f, name: str):
    """``TypeError`` unless ``f`` can be called."""
    if not callable(f):
        raise TypeError(f"{name} must be callable, got {type(f).__name__}")
    return f


# --------------------------------------------------------------------------- pytrees and caches
def check_tree(tree, name: str, like=None):
    """A non-empty pytree of float arrays (parameters, gradients): ``TypeError`` for a leaf that is
    not a float array; with ``like``, ``ValueError`` unless the tree has the structure and the leaf
    shapes of ``like``. Returns the list of ``(path, leaf)``."""
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    if not leaves:
        raise ValueError(f"{name} must be a non-empty pytree of float arrays, got {tree!r}")
    for path, leaf in leaves:
        dtype = _dtype_of(leaf) if not isinstance(leaf, (str, bytes)) else np.dtype("U1")
        if not jnp.issubdtype(dtype, jnp.floating):
            raise TypeError(f"{name}{jax.tree_util.keystr(path)} must be a floating-point array, "
                            f"got dtype {dtype}")
    if like is not None:
        want = jax.tree_util.tree_structure(like)
        if jax.tree_util.tree_structure(tree) != want:
            raise ValueError(f"{name} must have the same pytree structure as params, got "
                             f"{jax.tree_util.tree_structure(tree)} but expected {want}")
        for (path, leaf), ref in zip(leaves, jax.tree_util.tree_leaves(like)):
            if jnp.shape(leaf) != jnp.shape(ref):
                raise ValueError(f"{name}{jax.tree_util.keystr(path)} must have shape "
                                 f"{tuple(jnp.shape(ref))} like params, got {tuple(jnp.shape(leaf))}")
    return leaves


def check_cache(cache, name: str, forward: str, keys: Iterable[str] | int):
    """``TypeError`` unless ``cache`` is the dict (with ``keys``) that ``forward`` returned; with an
    int ``keys``, the tuple of that many entries that ``forward`` returned."""
    if isinstance(keys, int):
        if not isinstance(cache, tuple) or len(cache) != keys:
            raise TypeError(f"{name} must be the cache returned by {forward} (a tuple of {keys}), "
                            f"got {type(cache).__name__}")
        return cache
    keys = tuple(keys)
    if not isinstance(cache, dict) or any(k not in cache for k in keys):
        raise TypeError(f"{name} must be the cache returned by {forward} (a dict with "
                        f"{', '.join(keys)}), got {type(cache).__name__}")
    return cache
