"""The fast wing of ``course_lib.training``: :func:`fit` and :func:`evaluate` with the same
signatures and results as the reference (tested equal in ``tests/test_fast_training.py``), faster.

What makes them faster than the reference's loop over compiled steps:

* One epoch is one compiled call (``lax.scan`` over the batches of that epoch), so Python overhead
  is paid once per epoch, not once per step.
* Compiled once, reused: the compiled epoch is cached under a key made of *what the functions
  compute* (the code of ``apply_fn``/``grad_fn`` and the values they close over or read as globals,
  when all of those are hashable: strings, numbers, modules, other such functions), the optimizer (a
  ``course_lib.optim`` optimizer contributes its formula and fixed hyper-parameters; its float
  learning rate is passed to the compiled epoch as an argument, so every learning rate shares one
  compile), the loss and the shapes and dtypes of the parameters and batches. A second ``fit`` of
  the same model -- even through a new ``lambda`` -- therefore costs no compilation. When a function
  closes over something unhashable (an array, say) nothing is cached and every call compiles afresh.
* With a course_lib optimizer the parameters are updated as one flat vector (fewer kernels).
* Compiler options chosen for small graphs on the CPU backend.

Measured effects are in ``benchmarks/README.md``.
"""
from __future__ import annotations

import functools
import math
import types
from collections import OrderedDict
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from course_lib import _validation as V
from course_lib import training as ref
from course_lib.progress import bar
from course_lib.training import EarlyStopping, make_train_step

__all__ = ["fit", "evaluate", "cache_info"]


# ----------------------------------------------------------------------------------- compile cache
class _Unhashable(Exception):
    """A function reads a value that cannot serve as a cache key (an array, a mutable object)."""


_PLAIN = (str, bytes, int, float, complex, bool, type(None), range, type, types.ModuleType, np.dtype)
_MAX_DEPTH = 12
_LIBRARIES = {"course_lib", "jax", "jaxlib", "numpy", "optax", "functools", "scipy", "sklearn"}


def _stateless_types():
    """Callable objects without mutable state that changes what they compute: jitted functions,
    jax.numpy ufuncs, custom_jvp/vjp functions, builtins. Identity is a safe key for them."""
    kinds = [types.BuiltinFunctionType, type(jax.jit(abs)), jax.custom_jvp, jax.custom_vjp]
    if hasattr(jnp, "ufunc"):
        kinds.append(jnp.ufunc)
    return tuple(kinds)


_STATELESS = _stateless_types()


def _global_names(code, out):
    out.update(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            _global_names(const, out)
    return out


def _freeze(v, depth=0, seen=None):
    """A hashable stand-in for ``v`` that is equal for two values computing the same thing."""
    if depth > _MAX_DEPTH:
        raise _Unhashable("too deep")
    seen = set() if seen is None else seen
    if isinstance(v, _PLAIN):
        return (type(v), v)
    if isinstance(v, np.generic):
        return (type(v), v.item())
    if isinstance(v, (tuple, list)):
        return (type(v), tuple(_freeze(x, depth + 1, seen) for x in v))
    if isinstance(v, dict):
        return (type(v), tuple((_freeze(k, depth + 1, seen), _freeze(x, depth + 1, seen)) for k, x in v.items()))
    if isinstance(v, functools.partial):
        return ("partial", _freeze(v.func, depth + 1, seen), _freeze(v.args, depth + 1, seen),
                _freeze(v.keywords, depth + 1, seen))
    if isinstance(v, types.MethodType):
        return ("method", _freeze(v.__func__, depth + 1, seen), _freeze(v.__self__, depth + 1, seen))
    if isinstance(v, types.FunctionType):
        if id(v) in seen:  # recursion (a function that calls itself through a global)
            return ("recursive", v.__code__)
        seen = seen | {id(v)}
        try:
            cells = tuple(_freeze(c.cell_contents, depth + 1, seen) for c in (v.__closure__ or ()))
        except ValueError:  # an empty closure cell
            raise _Unhashable("empty closure cell") from None
        if (getattr(v, "__module__", None) or "").split(".")[0] in _LIBRARIES:
            globs = ()  # a library's module-level names are fixed: code and closure say it all
        else:  # a notebook's or script's globals change: key on the values the code reads
            names = sorted(_global_names(v.__code__, set()))
            globs = tuple((n, _freeze(v.__globals__[n], depth + 1, seen)) for n in names if n in v.__globals__)
        return ("function", v.__code__, cells, _freeze(v.__defaults__, depth + 1, seen),
                _freeze(v.__kwdefaults__, depth + 1, seen), globs,
                _freeze(getattr(v, "__wrapped__", None), depth + 1, seen))
    if isinstance(v, _STATELESS):
        return ("object", v)
    raise _Unhashable(type(v).__name__)


def _fingerprint(v):
    """``_freeze(v)``, or None when ``v`` cannot be keyed (then nothing is cached)."""
    try:
        key = _freeze(v)
        hash(key)
    except (_Unhashable, TypeError, RecursionError):
        return None
    return key


def _abstract(tree):
    """Structure, shapes and dtypes of a pytree (what jit specialises on)."""
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    return treedef, tuple((tuple(np.shape(x)), str(jnp.result_type(x)), isinstance(x, (int, float, complex)))
                          for x in leaves)


_CACHE: "OrderedDict[tuple, Callable]" = OrderedDict()
_CACHE_SIZE = 256
_INIT_CACHE: "OrderedDict[tuple, Callable]" = OrderedDict()
_STATS = {"hits": 0, "misses": 0, "uncached": 0}


def _lru_get(cache, key, build):
    """``(cache[key], hit)``, building and inserting it on a miss (LRU of _CACHE_SIZE)."""
    fn = cache.get(key)
    if fn is not None:
        cache.move_to_end(key)
        return fn, True
    fn = cache[key] = build()
    if len(cache) > _CACHE_SIZE:
        cache.popitem(last=False)
    return fn, False


def _cached(key, build):
    """``build()`` once per hashable ``key`` (LRU of _CACHE_SIZE); ``key=None`` always builds."""
    if key is None:
        _STATS["uncached"] += 1
        return build()
    fn, hit = _lru_get(_CACHE, key, build)
    _STATS["hits" if hit else "misses"] += 1
    return fn


def cache_info() -> dict:
    """Counts of :func:`fit`/:func:`evaluate` compile-cache ``hits``, ``misses`` (a new compile) and
    ``uncached`` calls (a function closed over something unhashable), and the ``size`` of the cache."""
    return dict(_STATS, size=len(_CACHE))


def _optimizer_parts(optimizer):
    """(key, learning-rate argument, make_update(lr) -> update) for an optimizer."""
    spec = getattr(getattr(optimizer, "update", None), "spec", None)
    from course_lib.optim import OptimizerSpec, traced_update
    if isinstance(spec, OptimizerSpec):
        key = _fingerprint(("course_lib.optim", spec.name, spec.core, spec.schedule, spec.frozen,
                            spec.lr is None))
        lr = 0.0 if spec.lr is None else spec.lr
        return key, lr, lambda lr_arg: traced_update(spec, lr_arg)
    return _fingerprint(("optimizer", optimizer)), 0.0, lambda lr_arg: optimizer.update


# XLA:CPU compiles a fusion either with its newer MLIR "fusion emitters" or with the classic
# elemental LLVM-IR emitter; for the small graphs of this module the classic one compiles faster and
# gave bit-identical results (benchmarks/README.md, "course_lib.fast.training"). CPU backend only.
_CPU_COMPILER_OPTIONS = {"xla_cpu_use_fusion_emitters": False}


# An evaluation runs once per epoch (or once) on a few hundred rows: its run time is negligible and
# its compile is not, so it is compiled at LLVM -O0 (the matrix products are library calls either way).
_CPU_EVAL_COMPILER_OPTIONS = dict(_CPU_COMPILER_OPTIONS, xla_backend_optimization_level=0)


def _jit(fn, options=None):
    """``jax.jit`` with the compile options above (or ``options``) on the CPU backend."""
    if jax.default_backend() == "cpu":
        return jax.jit(fn, compiler_options=_CPU_COMPILER_OPTIONS if options is None else options)
    return jax.jit(fn)


def _init_state(optimizer, opt_key, params):
    """``optimizer.init(params)``; for another keyed optimizer (optax's) in one cached jitted call.
    Op by op, every ``zeros_like`` of a new shape compiles its own small XLA program; one jitted
    init compiles once per optimizer and parameter shapes. course_lib's optimizers build their
    initial state on the host and compile nothing."""
    from course_lib.optim import OptimizerSpec
    if opt_key is None or isinstance(getattr(optimizer.update, "spec", None), OptimizerSpec):
        return optimizer.init(params)   # course_lib's inits build their zeros on the host: no compile
    # kept apart from _CACHE: cache_info() counts the compiled epochs and evaluations
    fn, _ = _lru_get(_INIT_CACHE, (opt_key, _abstract(params)), lambda: _jit(optimizer.init))
    return fn(params)


# ----------------------------------------------------------------------------- one flat vector
# course_lib's optimizers act element by element, so updating the parameters as ONE concatenated
# vector is the same arithmetic as updating them leaf by leaf. The compiled epoch then holds one
# optimizer update instead of one per leaf: XLA:CPU makes a separate kernel of each moment and
# parameter update (multi-output fusion is off): 12 for Adam on a 2-layer MLP, against 3 on the
# flat vector plus one that concatenates the gradients and one slice per weight matrix (effect
# measured: benchmarks/README.md, "course_lib.fast.training"). Other optimizers (optax's) may treat leaves differently (per-layer
# trust ratios, masks): they keep the tree.
def _flat_layout(optimizer, params):
    """``(treedef, shapes, dtype)`` when :func:`fit` trains ``params`` as one flat vector, else None:
    a course_lib optimizer and a non-empty tree of concrete float arrays of one dtype."""
    from course_lib.optim import OptimizerSpec
    if not isinstance(getattr(getattr(optimizer, "update", None), "spec", None), OptimizerSpec):
        return None
    leaves, treedef = jax.tree_util.tree_flatten(params)
    dtypes = set()
    for leaf in leaves:
        if (isinstance(leaf, jax.core.Tracer) or not hasattr(leaf, "dtype")
                or getattr(leaf, "weak_type", False) or not jnp.issubdtype(leaf.dtype, jnp.floating)):
            return None
        dtypes.add(jax.dtypes.canonicalize_dtype(leaf.dtype))
    if len(dtypes) != 1:
        return None
    return treedef, tuple(tuple(np.shape(leaf)) for leaf in leaves), dtypes.pop()


def _flatten_host(params, layout):
    """The leaves of ``params`` concatenated into one NumPy vector of dtype ``layout[2]`` (built on
    the host: compiles nothing). Also used by ``course_lib.fast.conv.train_cnn``."""
    return np.concatenate([np.asarray(leaf, layout[2]).ravel()
                           for leaf in jax.tree_util.tree_leaves(params)])


def _unflatten(flat, treedef, shapes):
    """Inverse of concatenating the raveled leaves: a tree of ``shapes`` cut from ``flat`` in order.
    Works on a traced vector (inside a compiled step) and on a NumPy one (on the host)."""
    leaves, start = [], 0
    for shape in shapes:
        n = math.prod(shape)
        leaves.append(flat[start:start + n].reshape(shape))
        start += n
    return jax.tree_util.tree_unflatten(treedef, leaves)


def _as_tree(flat, layout):
    """The parameter tree (JAX arrays) of a flat vector, sliced on the host (compiles nothing)."""
    return jax.device_put(_unflatten(np.asarray(flat), *layout[:2]))


def _flat_functions(apply_fn, grad_fn, layout):
    """``apply_fn`` / ``grad_fn`` of the parameter tree turned into functions of the flat vector."""
    def apply_flat(flat, x, **kw):
        return apply_fn(_unflatten(flat, *layout[:2]), x, **kw)
    if grad_fn is None:
        return apply_flat, None

    def grad_flat(flat, xb, yb, **kw):
        tree = _unflatten(flat, *layout[:2])
        value, grads = grad_fn(tree, xb, yb, **kw)
        from course_lib.optim import _check_grads
        _check_grads(grads, None, tree)      # the same errors as on the tree
        return value, jnp.concatenate([g.reshape(-1) for g in jax.tree_util.tree_leaves(grads)])
    return apply_flat, grad_flat


def _build_epoch(apply_fn, optimizer, make_update, loss, grad_fn, use_key, label_smoothing=0.0,
                 layout=None):
    """One jitted epoch: ``lax.scan`` of the step over the batches ``Xb, Yb`` (n_batches, B, ...).

    ``lr`` is the optimizer's learning rate (an argument, not a constant); ``seed_epoch`` = (seed,
    epoch) as uint32 gives each step its own dropout key when ``use_key``. With a ``layout``
    (:func:`_flat_layout`) the parameters and optimizer state are flat vectors.
    """
    if layout is not None:
        apply_fn, grad_fn = _flat_functions(apply_fn, grad_fn, layout)

    @_jit
    def epoch(params, opt_state, Xb, Yb, lr, seed_epoch):
        from course_lib.optim import GradientTransformation
        opt = GradientTransformation(optimizer.init, make_update(lr))
        step = make_train_step(apply_fn, opt, loss, grad_fn, with_key=use_key, jit=False,
                               label_smoothing=label_smoothing)
        if use_key:
            base = jax.random.fold_in(jax.random.PRNGKey(seed_epoch[0]), seed_epoch[1])
            keys = jax.random.split(base, Xb.shape[0])
        else:
            keys = jnp.zeros((Xb.shape[0],), jnp.uint32)  # unused

        def body(carry, batch):
            p, s = carry
            xb, yb, k = batch
            p, s, value, acc = step(p, s, xb, yb, k if use_key else None)
            return (p, s), (value, acc)

        (params, opt_state), (values, accs) = jax.lax.scan(body, (params, opt_state), (Xb, Yb, keys))
        return params, opt_state, jnp.mean(values), jnp.mean(accs)

    return epoch


def _build_eval(apply_fn, loss):
    def ev(params, X, y):
        out = apply_fn(params, X)
        return ref._loss_value(loss, out, y), ref._acc_value(loss, out, y)

    return _jit(ev, _CPU_EVAL_COMPILER_OPTIONS)


def _eval_fn(apply_fn, loss, params, X, y):
    fp = _fingerprint(apply_fn)
    key = None if fp is None else ("eval", fp, loss, _abstract((params, X, y)))
    return _cached(key, lambda: _build_eval(apply_fn, loss))


def evaluate(apply_fn: Callable, params, X, y, loss: str = "cross_entropy"):
    """:func:`course_lib.training.evaluate`, fast: compiled once per model, loss and shapes (cached
    across calls, see :func:`cache_info`)."""
    V.check_callable(apply_fn, "apply_fn")
    V.check_option(loss, "loss", ref.LOSSES)
    X, y = ref._check_data(X, y, loss, "X", "y")
    value, acc = _eval_fn(apply_fn, loss, params, X, y)(params, X, y)
    return float(value), float(acc)


def fit(apply_fn: Callable, params, optimizer, X_train, y_train, *, X_val=None, y_val=None,
        epochs: int = 20, batch_size: int = 64, loss: str = "cross_entropy",
        grad_fn: Callable | None = None, seed: int = 0, progress: bool = False,
        early_stopping: EarlyStopping | None = None, callbacks=(), rng: int | None = None,
        label_smoothing: float = 0.0):
    """:func:`course_lib.training.fit`, fast: one compiled call per epoch (``lax.scan`` over its
    batches), compiled once and reused across calls.

    Repeated calls with the same model, optimizer (any float learning rate), loss and shapes reuse
    one compiled epoch (see the module docstring and :func:`cache_info`). With a course_lib optimizer
    and parameters of one float dtype, the compiled epoch updates all parameters as one concatenated
    vector (the same element-by-element arithmetic, far fewer kernels to compile); ``apply_fn``,
    ``grad_fn``, the callbacks and the result still see the parameter tree.
    """
    X_train, y_train, X_val, y_val, epochs, batch_size, label_smoothing = ref._check_fit(
        apply_fn, optimizer, X_train, y_train, X_val, y_val, epochs, batch_size, loss, grad_fn,
        early_stopping, callbacks, rng, label_smoothing)
    n = X_train.shape[0]
    n_batches = n // batch_size
    opt_key, lr, make_update = _optimizer_parts(optimizer)
    eval_fn = None if X_val is None else _eval_fn(apply_fn, loss, params, X_val, y_val)
    layout = _flat_layout(optimizer, params)
    if layout is not None:
        params = jax.device_put(_flatten_host(params, layout))
    tree = (lambda p: p) if layout is None else (lambda p: _as_tree(p, layout))
    opt_state = _init_state(optimizer, opt_key, params)
    epoch_fn = _epoch_function(apply_fn, optimizer, opt_key, make_update, loss, grad_fn, rng is not None,
                               label_smoothing, layout, n_batches, (params, opt_state, X_train[:batch_size],
                                                                    y_train[:batch_size]))
    shuffle, best_params = np.random.default_rng(seed), params
    history = {"train_loss": [], "train_acc": [], "val_loss": [], "val_acc": []}
    for epoch in (bar(range(epochs), "epochs") if progress else range(epochs)):
        idx = shuffle.permutation(n)[: n_batches * batch_size]
        Xb = X_train[idx].reshape(n_batches, batch_size, *X_train.shape[1:])
        Yb = y_train[idx].reshape(n_batches, batch_size, *y_train.shape[1:])
        seed_epoch = np.array([0 if rng is None else rng, epoch], dtype=np.uint32)
        params, opt_state, tl, ta = epoch_fn(params, opt_state, Xb, Yb, lr, seed_epoch)
        ref._record_epoch(history, "train", tl, ta, epoch)
        # the parameter tree of this epoch, sliced once for validation and the callbacks
        current = tree(params) if X_val is not None or callbacks else None
        if X_val is not None:
            ref._record_epoch(history, "val", *eval_fn(current, X_val, y_val), epoch)
        if early_stopping is not None and early_stopping.best_epoch(history) == epoch:
            best_params = params
        stop = early_stopping is not None and early_stopping.should_stop(history)
        if any([bool(cb(epoch, current, history)) for cb in callbacks]) or stop:
            break
    params, history = ref._finish_history(params, best_params, history, early_stopping)
    return tree(params), history


def _epoch_function(apply_fn, optimizer, opt_key, make_update, loss, grad_fn, use_key,
                    label_smoothing, layout, n_batches, example):
    """The compiled epoch of :func:`fit`, from the cache when the functions can be keyed."""
    fps = (_fingerprint(apply_fn), None if grad_fn is None else _fingerprint(grad_fn))
    key = None
    if opt_key is not None and fps[0] is not None and (grad_fn is None or fps[1] is not None):
        key = ("epoch", fps, grad_fn is None, opt_key, loss, use_key, n_batches, _abstract(example))
        if label_smoothing:   # the key of an unsmoothed fit is unchanged
            key += (("label_smoothing", label_smoothing),)
        if layout is not None:
            key += (("flat", layout),)
    return _cached(key, lambda: _build_epoch(apply_fn, optimizer, make_update, loss, grad_fn, use_key,
                                             label_smoothing, layout))
