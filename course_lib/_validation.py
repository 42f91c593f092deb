"""Argument checks shared by every public function of course_lib.

Each public function validates its inputs *before* calling its jitted core, so a student who passes
the wrong thing gets a ``TypeError``/``ValueError`` that names the argument and what was expected,
instead of an XLA shape error three frames deep. Value checks (NaN, ranges) run only on concrete
arrays: inside ``jax.jit``/``jax.grad`` the inputs are tracers and only shapes and dtypes are checked.
"""
from __future__ import annotations

import functools
from typing import Iterable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "is_concrete",
    "as_float_array",
    "as_int_array",
    "check_ndim",
    "check_shape",
    "check_same_shape",
    "check_finite",
    "check_option",
    "check_positive",
    "check_probability",
    "check_bool",
    "checked",
]


def is_concrete(x) -> bool:
    """True if ``x`` holds actual values (not a tracer inside jit/grad/vmap)."""
    return not isinstance(x, jax.core.Tracer)


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


def _int_dtype(x, name: str):
    if isinstance(x, (str, bytes)) or x is None:
        raise TypeError(f"{name} must be an integer array, got {type(x).__name__}")
    dtype = _dtype_of(x)
    if jnp.issubdtype(dtype, jnp.integer):
        return jax.dtypes.canonicalize_dtype(dtype if hasattr(x, "dtype") else jnp.result_type(int))
    raise TypeError(f"{name} must be an integer array (class indices), got dtype {dtype}")


def _to_jax(x, dtype):
    # A NumPy array goes over with device_put: jnp.asarray would compile a small XLA "stage"
    # program for every new shape (20-460 ms each, cold). Same values, same dtype.
    if isinstance(x, np.ndarray):
        return jax.device_put(np.asarray(x, dtype=dtype))
    arr = jnp.asarray(x)  # keeps a Python float weakly typed, as before
    return arr if arr.dtype == dtype else arr.astype(dtype)


def as_float_array(x, name: str, *, allow_int: bool = False):
    """Return ``x`` as a floating-point JAX array or raise ``TypeError`` naming ``name``.

    Python floats, lists of floats, numpy and JAX float arrays pass. Integer and boolean arrays are
    rejected unless ``allow_int`` (they are then cast to the default float dtype): an integer array
    where a float was meant is a classic silent bug (``np.array([1, 2]) / 2`` is fine, but a logits
    array of ints usually means the labels were passed in the wrong slot).
    """
    return _to_jax(x, _float_dtype(x, name, allow_int))


def as_int_array(x, name: str):
    """Return ``x`` as an integer JAX array (class labels, indices) or raise ``TypeError``."""
    return _to_jax(x, _int_dtype(x, name))


def check_ndim(x, name: str, ndims: int | Iterable[int]):
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
    if jnp.shape(a) != jnp.shape(b):
        raise ValueError(f"{a_name} and {b_name} must have the same shape, "
                         f"got {tuple(jnp.shape(a))} and {tuple(jnp.shape(b))}")


def check_finite(x, name: str):
    """Raise ``ValueError`` if a concrete ``x`` holds NaN or infinity (no-op under jit).

    Evaluated with NumPy on the host (~30 us), not with eager JAX reductions (~400 us each).
    """
    return check_finite_np(x, name)


def check_option(value, name: str, allowed: Iterable):
    allowed = tuple(allowed)
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(repr(a) for a in allowed)}; got {value!r}")
    return value


def check_positive(value, name: str, *, allow_zero: bool = False):
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}") from None
    if not np.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")
    return value


def check_bool(value, name: str) -> bool:
    """``TypeError`` unless ``value`` is True or False (a NumPy bool passes)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__}")
    return bool(value)


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

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            return compiled(*check(*args, **kwargs))
        return wrapper
    return decorate


def check_probability(x, name: str, *, open_interval: bool = False):
    """Check that a concrete ``x`` lies in [0, 1] (or (0, 1)); no-op under jit (host NumPy check)."""
    return check_probability_np(x, name, open_interval=open_interval)


# --- appended (course_lib core): host-side value checks ------------------------------------------
# The same contracts and messages as check_finite / check_probability, but the value test of a
# concrete array runs in NumPy on the host instead of as eager JAX ops: on CPU a (1024, 128) float32
# array costs ~30 us instead of ~400 us (each eager jnp reduction is a separate XLA dispatch plus a
# device sync). Under tracing they are no-ops, exactly like the originals.

def _host_values(x):
    return np.asarray(x)


def is_binary_np(x) -> bool:
    """All values of a concrete ``x`` are 0 or 1, checked with NumPy on the host (a ``jnp`` test of
    a concrete array would be staged, not evaluated, when called inside a jit trace)."""
    v = _host_values(x)
    return bool(((v == 0) | (v == 1)).all())


def check_finite_np(x, name: str):
    """Like :func:`check_finite` (same message), evaluated with NumPy on the host."""
    if is_concrete(x):
        v = _host_values(x)
        if not np.isfinite(v).all():
            n_nan = int(np.isnan(v).sum())
            n_inf = int(np.isinf(v).sum())
            raise ValueError(f"{name} must be finite, got {n_nan} NaN and {n_inf} infinite value(s)")
    return x


def check_probability_np(x, name: str, *, open_interval: bool = False):
    """Like :func:`check_probability` (same message), evaluated with NumPy on the host."""
    check_finite_np(x, name)
    if is_concrete(x):
        v = _host_values(x)
        if v.size:
            lo_ok = (v > 0).all() if open_interval else (v >= 0).all()
            hi_ok = (v < 1).all() if open_interval else (v <= 1).all()
            if not (lo_ok and hi_ok):
                interval = "(0, 1)" if open_interval else "[0, 1]"
                raise ValueError(f"{name} must lie in {interval}, got values from "
                                 f"{float(v.min()):.4g} to {float(v.max()):.4g}")
    return x


__all__ += ["is_binary_np", "check_finite_np", "check_probability_np"]


# --- appended (training): host-side array conversion -----------------------------------------------
# as_float_array / as_int_array return JAX arrays: jnp.asarray of a NumPy array compiles a small
# XLA program ("stage") for every new shape, 20-130 ms each on this machine. Code that keeps data on
# the host (training.fit slices and shuffles it with NumPy) uses these instead: the same checks and
# messages, NumPy out, the dtype canonicalized the way jnp.asarray does it (float64 -> float32 unless
# jax_enable_x64), no device transfer and no compile. Tracers go through the originals.

def as_float_array_host(x, name: str, *, allow_int: bool = False):
    """Like :func:`as_float_array` (same checks and messages) but returns a NumPy array."""
    if not is_concrete(x):
        return as_float_array(x, name, allow_int=allow_int)
    return np.asarray(x, dtype=_float_dtype(x, name, allow_int))


def as_int_array_host(x, name: str):
    """Like :func:`as_int_array` (same check and message) but returns a NumPy array."""
    if not is_concrete(x):
        return as_int_array(x, name)
    return np.asarray(x, dtype=_int_dtype(x, name))


__all__ += ["as_float_array_host", "as_int_array_host"]


def to_jax(x):
    """``jnp.asarray(x)``, but a NumPy array goes over with ``jax.device_put`` (see ``_to_jax``:
    jnp.asarray compiles a small program per new shape). Same values and canonical dtype."""
    if isinstance(x, np.ndarray):
        return _to_jax(x, jax.dtypes.canonicalize_dtype(x.dtype))
    return jnp.asarray(x)


__all__ += ["to_jax"]


# --- appended (conv): scalar options, integer pairs, random keys, empty arrays, layer caches ------
# One helper per kind of argument, shared by every module: a wrong *type* is a TypeError, a wrong
# *value* a ValueError, and the message names the argument and what was expected.

def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def check_number(value, name: str, *, low=None, high=None, low_open: bool = False,
                 high_open: bool = False) -> float:
    """A real number (a Python or NumPy scalar or a 0-d array; not a bool or a string) in a range,
    as a Python float. ``TypeError`` for another type; ``ValueError`` for NaN, infinity or a value
    outside ``[low, high]`` (``low_open``/``high_open`` exclude an end)."""
    dtype = getattr(value, "dtype", None)
    scalar = (isinstance(value, (int, float, np.integer, np.floating))
              or (dtype is not None and np.ndim(value) == 0 and not isinstance(value, jax.core.Tracer)
                  and (jnp.issubdtype(dtype, jnp.floating) or jnp.issubdtype(dtype, jnp.integer))))
    if isinstance(value, (bool, np.bool_)) or not scalar:
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    v = float(value)
    bad = not np.isfinite(v)
    if low is not None:
        bad |= v <= low if low_open else v < low
    if high is not None:
        bad |= v >= high if high_open else v > high
    if bad:
        interval = (f"{'(' if low_open or low is None else '['}{'-inf' if low is None else low}, "
                    f"{'inf' if high is None else high}{')' if high_open or high is None else ']'}")
        raise ValueError(f"{name} must be a finite number in {interval}, got {value!r}")
    return v


def check_int(value, name: str, *, minimum=None) -> int:
    """A Python or NumPy integer (not a bool, not 1.0) as a Python int: ``TypeError`` for another
    type, ``ValueError`` if it is below ``minimum``."""
    if not _is_int(value):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def as_int_pair(value, name: str, *, minimum=None) -> tuple[int, int]:
    """An int or a pair of ints (height, width), as a pair of Python ints: ``TypeError`` for
    anything else, ``ValueError`` if an entry is below ``minimum``."""
    pair = (value, value) if _is_int(value) else value
    if not isinstance(pair, (tuple, list)) or len(pair) != 2 or not all(map(_is_int, pair)):
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
    if minimum is not None and min(pair) < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return int(pair[0]), int(pair[1])


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


def check_nonempty(x, name: str, axes: int | Iterable[int] = 0):
    """``ValueError`` if ``x`` has size 0 along any of ``axes`` (e.g. an empty batch)."""
    shape = tuple(jnp.shape(x))
    for axis in ((axes,) if isinstance(axes, int) else tuple(axes)):
        if shape[axis] == 0:
            raise ValueError(f"{name} must not be empty along axis {axis}, got shape {shape}")
    return x


def check_cache(cache, name: str, forward: str, keys: Iterable[str]):
    """``TypeError`` unless ``cache`` is the dict (with ``keys``) that ``forward`` returned."""
    keys = tuple(keys)
    if not isinstance(cache, dict) or any(k not in cache for k in keys):
        raise TypeError(f"{name} must be the cache returned by {forward} (a dict with "
                        f"{', '.join(keys)}), got {type(cache).__name__}")
    return cache


__all__ += ["check_number", "check_int", "as_int_pair", "check_key", "check_nonempty",
            "check_cache"]
