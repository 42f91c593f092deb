"""A small training loop: jitted steps, mini-batches, history, early stopping, progress bar.

    for epoch in 1..epochs:
        shuffle the training rows; for each mini-batch (xb, yb):
            loss, grads = value_and_grad(loss_fn)(params, xb, yb)      (or your own backprop)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            params = params + updates
        record train loss/accuracy (means over the epoch's batches) and validation loss/accuracy
        stop early if a hook says so

One epoch is one jitted call (``lax.scan`` over the batches of that epoch), so Python overhead is paid
once per epoch, not once per step. Batches have equal size: the ``N mod batch_size`` rows left over
after shuffling are skipped for that epoch (a different few each epoch).

``optimizer`` is anything with optax's interface: ``init(params) -> state`` and
``update(grads, state, params) -> (updates, state)`` -- ``course_lib.optim.adam(1e-3)`` or
``optax.adam(1e-3)``.

Compiled once, reused: the jitted epoch is cached under a key made of *what the functions compute*
(the code of ``apply_fn``/``grad_fn`` and the values they close over or read as globals, when all of
those are hashable: strings, numbers, modules, other such functions), the optimizer (a
``course_lib.optim`` optimizer contributes its formula and fixed hyper-parameters; its float learning
rate is passed to the compiled epoch as an argument, so every learning rate shares one compile), the
loss and the shapes and dtypes of the parameters and batches. A second ``fit`` of the same model --
even through a new ``lambda`` -- therefore costs no compilation. When a function closes over
something unhashable (an array, say) nothing is cached and every call compiles afresh, as before.

Dropout and other randomness: with ``fit(..., rng=seed)`` the model is called as
``apply_fn(params, xb, key=k)`` during training, with a fresh ``jax.random`` key ``k`` for every
step (derived from ``seed``, the epoch and the step), and as ``apply_fn(params, x)`` -- no key, i.e.
evaluation mode -- for the validation metrics and in :func:`evaluate`.

Taught in: notebooks/05_feedforward_networks.ipynb (and used in later chapters)
"""
from __future__ import annotations

import functools
import math
import types
from collections import OrderedDict
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from . import _validation as V

__all__ = ["EarlyStopping", "early_stopping", "make_train_step", "fit", "evaluate", "accuracy",
           "cache_info"]

LOSSES = ("cross_entropy", "mse")
MONITORS = ("val_loss", "val_acc", "train_loss", "train_acc")


# ----------------------------------------------------------------------------------- early stopping
class EarlyStopping(NamedTuple):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience`` epochs.

    Stateless: it reads the history, so the same object can be reused for several runs. With
    ``restore_best`` :func:`fit` returns the parameters of the best epoch, not of the last one.
    """
    patience: int = 5
    monitor: str = "val_loss"
    min_delta: float = 0.0
    restore_best: bool = True

    def best_epoch(self, history) -> int:
        """Index (0-based) of the best epoch so far; ties keep the earliest."""
        values = np.asarray(history[self.monitor], dtype=float)
        sign = -1.0 if self.monitor.endswith("acc") else 1.0
        best, best_i = np.inf, 0
        for i, v in enumerate(sign * values):
            if v < best - self.min_delta:
                best, best_i = v, i
        return best_i

    def should_stop(self, history) -> bool:
        n = len(history[self.monitor])
        return n > 0 and n - 1 - self.best_epoch(history) >= self.patience


def early_stopping(patience: int = 5, monitor: str = "val_loss", min_delta: float = 0.0,
                   restore_best: bool = True) -> EarlyStopping:
    """Validated constructor of :class:`EarlyStopping` (the hook :func:`fit` accepts).

    Taught in: notebooks/08_regularization_and_training.ipynb
    """
    if isinstance(patience, bool) or not isinstance(patience, (int, np.integer)) or patience < 1:
        raise ValueError(f"patience must be a positive integer, got {patience!r}")
    V.check_option(monitor, "monitor", MONITORS)
    V.check_positive(min_delta, "min_delta", allow_zero=True)
    return EarlyStopping(int(patience), monitor, float(min_delta), bool(restore_best))


# ----------------------------------------------------------------------------------- the step
def _smoothed_cross_entropy(logits, y, eps):
    """Mean cross-entropy of ``logits`` (N, C) against the smoothed target q = (1 - eps) *
    one_hot(y) + eps / C. ``eps`` may be traced."""
    logp = jax.nn.log_softmax(logits, axis=-1)
    true = jnp.take_along_axis(logp, y[:, None], axis=-1)[:, 0]
    return -jnp.mean((1.0 - eps) * true + (eps / logits.shape[-1]) * jnp.sum(logp, axis=-1))


def _loss_value(loss, out, y, label_smoothing=0.0):
    if loss == "cross_entropy":
        if label_smoothing:
            return _smoothed_cross_entropy(out, y, label_smoothing)
        logp = jax.nn.log_softmax(out, axis=-1)
        return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=-1))
    return jnp.mean((out - y) ** 2)


def _check_label_smoothing(label_smoothing, loss, grad_fn):
    if isinstance(label_smoothing, bool) or not isinstance(label_smoothing, (int, float, np.integer, np.floating)):
        raise TypeError(f"label_smoothing must be a number in [0, 1), got {type(label_smoothing).__name__}")
    eps = float(label_smoothing)
    if not 0.0 <= eps < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing!r}")
    if eps and loss != "cross_entropy":
        raise ValueError(f"label_smoothing needs loss='cross_entropy', got loss={loss!r}")
    if eps and grad_fn is not None:
        raise ValueError("label_smoothing applies to the autodiff loss: leave grad_fn=None (a grad_fn "
                         "computes its own loss)")
    return eps


def _acc_value(loss, out, y):
    if loss == "cross_entropy":
        return jnp.mean((jnp.argmax(out, axis=-1) == y).astype(out.dtype))
    return jnp.zeros((), out.dtype)


def _add(params, updates):
    return jax.tree_util.tree_map(lambda p, u: p + u.astype(p.dtype), params, updates)


def _check_callable(f, name):
    if not callable(f):
        raise TypeError(f"{name} must be callable, got {type(f).__name__}")


def _check_optimizer(optimizer):
    if not (callable(getattr(optimizer, "init", None)) and callable(getattr(optimizer, "update", None))):
        raise TypeError("optimizer must have init(params) and update(grads, state, params) like "
                        f"course_lib.optim.adam(...) or optax.adam(...), got {type(optimizer).__name__}")


def make_train_step(apply_fn: Callable, optimizer, loss: str = "cross_entropy",
                    grad_fn: Callable | None = None, *, with_key: bool = False, jit: bool = True,
                    label_smoothing: float = 0.0):
    """A jitted ``step(params, opt_state, xb, yb) -> (params, opt_state, batch_loss, batch_acc)``.

    ``apply_fn(params, x) -> outputs`` (logits for "cross_entropy", predictions for "mse").
    ``grad_fn(params, xb, yb) -> (loss, grads)`` replaces autodiff if given (e.g. the hand-written
    ``course_lib.backprop.loss_and_grads``). Loss and accuracy are measured on the batch *before*
    the update. ``with_key=True``: the step takes a fifth argument, a ``jax.random`` key, and passes
    it on as ``apply_fn(params, xb, key=key)`` (a fresh dropout mask per step). ``jit=False`` returns
    the plain Python function (:func:`fit` scans it inside its own jitted epoch).
    ``label_smoothing`` = eps in [0, 1) trains on the cross-entropy against the smoothed target
    ``(1 - eps) * one_hot(y) + eps / C`` (C classes; equals ``optax.softmax_cross_entropy`` with
    ``optax.smooth_labels``); the reported batch loss is that smoothed loss.

    Taught in: notebooks/05_feedforward_networks.ipynb
    """
    _check_callable(apply_fn, "apply_fn")
    _check_optimizer(optimizer)
    V.check_option(loss, "loss", LOSSES)
    if grad_fn is not None:
        _check_callable(grad_fn, "grad_fn")
    label_smoothing = _check_label_smoothing(label_smoothing, loss, grad_fn)

    def forward(params, xb, key):
        return apply_fn(params, xb, key=key) if with_key else apply_fn(params, xb)

    def objective(params, xb, yb, key):
        out = forward(params, xb, key)
        return _loss_value(loss, out, yb, label_smoothing), out

    def step(params, opt_state, xb, yb, key=None):
        if grad_fn is None:
            (value, out), grads = jax.value_and_grad(objective, has_aux=True)(params, xb, yb, key)
        else:
            value, grads = grad_fn(params, xb, yb, key=key) if with_key else grad_fn(params, xb, yb)
            out = forward(params, xb, key)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return _add(params, updates), opt_state, value, _acc_value(loss, out, yb)

    return jax.jit(step) if jit else step


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
    from .optim import OptimizerSpec, traced_update
    if isinstance(spec, OptimizerSpec):
        key = _fingerprint(("course_lib.optim", spec.name, spec.core, spec.schedule, spec.frozen,
                            spec.lr is None))
        lr = 0.0 if spec.lr is None else spec.lr
        return key, lr, lambda lr_arg: traced_update(spec, lr_arg)
    return _fingerprint(("optimizer", optimizer)), 0.0, lambda lr_arg: optimizer.update


# XLA:CPU compiles a fusion either with its newer MLIR "fusion emitters" or with the classic
# elemental LLVM-IR emitter. For the small graphs of this module the classic emitter compiles in ~2/3
# of the CPU time (Adam epoch of a 64-128-10 MLP: 0.73 s vs 1.14 s CPU on this machine) and gave
# bit-identical results on every fit compared (4 activations x 7 optimizers and schedules, dropout,
# label smoothing, mse, hand-written gradients; see benchmarks/bench_nn.py). CPU backend only.
_CPU_COMPILER_OPTIONS = {"xla_cpu_use_fusion_emitters": False}


# An evaluation runs once per epoch (or once) on a few hundred rows: its run time is negligible and
# its compile is not. LLVM -O0 compiles the evaluation of a 64-128-10 MLP in ~40 ms instead of
# ~110 ms; the matrix products are library calls either way.
_CPU_EVAL_COMPILER_OPTIONS = dict(_CPU_COMPILER_OPTIONS, xla_backend_optimization_level=0)


def _jit(fn, options=None):
    """``jax.jit`` with the compile options above (or ``options``) on the CPU backend."""
    if jax.default_backend() == "cpu":
        return jax.jit(fn, compiler_options=_CPU_COMPILER_OPTIONS if options is None else options)
    return jax.jit(fn)


def _init_state(optimizer, opt_key, params):
    """``optimizer.init(params)``; for another keyed optimizer (optax's) in one cached jitted call.
    Op by op, every ``zeros_like`` of a new shape compiles its own small XLA program (~30 ms each, 5
    for Adam on a 2-layer MLP); one jitted init compiles once (~70 ms) per optimizer and parameter
    shapes. course_lib's optimizers build their initial state on the host and compile nothing."""
    from .optim import OptimizerSpec
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
# flat vector plus one that concatenates the gradients and one slice per weight matrix.
# Measured on the digits MLP of benchmarks/bench_nn.py (cold, hand-written gradients, back to back
# in fresh processes): first fit 0.62-0.69 s instead of 0.78-0.84 s; the compile went from
# 0.40-0.42 s to 0.29-0.31 s. Other optimizers (optax's) may treat leaves differently (per-layer
# trust ratios, masks): they keep the tree.
def _flat_layout(optimizer, params):
    """``(treedef, shapes, dtype)`` when :func:`fit` trains ``params`` as one flat vector, else None:
    a course_lib optimizer and a non-empty tree of concrete float arrays of one dtype."""
    from .optim import OptimizerSpec
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
        from .optim import _check_grads
        _check_grads(grads, tree, None)      # the same errors as on the tree
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
        from .optim import GradientTransformation
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
        return _loss_value(loss, out, y), _acc_value(loss, out, y)

    return _jit(ev, _CPU_EVAL_COMPILER_OPTIONS)


def _eval_fn(apply_fn, loss, params, X, y):
    fp = _fingerprint(apply_fn)
    key = None if fp is None else ("eval", fp, loss, _abstract((params, X, y)))
    return _cached(key, lambda: _build_eval(apply_fn, loss))


# ----------------------------------------------------------------------------------- validation
def _check_data(X, y, loss, xname, yname):
    # Host (NumPy) versions of the checks: the data stay on the host for shuffling and slicing, and
    # jnp.asarray would compile a small XLA program per new data shape (20-130 ms each).
    X = V.as_float_array_host(X, xname)
    V.check_ndim(X, xname, 2)
    V.check_finite(X, xname)
    if loss == "cross_entropy":
        y = V.as_int_array_host(y, yname)
        V.check_shape(y, yname, (X.shape[0],))
    else:
        y = V.as_float_array_host(y, yname)
        if y.shape[:1] != X.shape[:1]:
            raise ValueError(f"{yname} must have {X.shape[0]} rows like {xname}, got shape {y.shape}")
        V.check_finite(y, yname)
    return np.asarray(X), np.asarray(y)


def _positive_int(v, name):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise ValueError(f"{name} must be a positive integer, got {v!r}")
    return int(v)


def accuracy(logits, labels):
    """Fraction of rows whose ``argmax(logits)`` equals the integer label."""
    logits = V.as_float_array(logits, "logits")
    V.check_ndim(logits, "logits", 2)
    labels = V.as_int_array(labels, "labels")
    V.check_shape(labels, "labels", (logits.shape[0],))
    return float(jnp.mean(jnp.argmax(logits, axis=-1) == labels))


def evaluate(apply_fn: Callable, params, X, y, loss: str = "cross_entropy"):
    """``(loss, accuracy)`` of a model on a whole data set, as Python floats (accuracy 0 for mse)."""
    _check_callable(apply_fn, "apply_fn")
    V.check_option(loss, "loss", LOSSES)
    X, y = _check_data(X, y, loss, "X", "y")
    value, acc = _eval_fn(apply_fn, loss, params, X, y)(params, X, y)
    return float(value), float(acc)


# ----------------------------------------------------------------------------------------- fit
def fit(apply_fn: Callable, params, optimizer, X_train, y_train, *, X_val=None, y_val=None,
        epochs: int = 20, batch_size: int = 64, loss: str = "cross_entropy",
        grad_fn: Callable | None = None, seed: int = 0, progress: bool = False,
        early_stopping: EarlyStopping | None = None, callbacks=(), rng: int | None = None,
        label_smoothing: float = 0.0):
    """Train ``params`` with mini-batch ``optimizer`` steps; returns ``(params, history)``.

    ``history`` holds per-epoch lists ``train_loss``, ``train_acc`` (means over the epoch's batches,
    measured before each update), ``val_loss``, ``val_acc`` (after the epoch; only with X_val/y_val),
    plus ``epochs_run`` and ``best_epoch`` (0-based; the last epoch without early stopping).
    ``progress=True`` shows a ``tqdm`` bar (a widget in Jupyter). ``early_stopping`` is an
    :class:`EarlyStopping`; each of ``callbacks(epoch, params, history)`` may return True to stop.
    A non-finite training loss stops with a ``ValueError`` (the step size is too large).
    ``seed`` fixes the shuffling. ``rng`` (an int) switches on per-step randomness: training calls
    ``apply_fn(params, xb, key=k)`` (and ``grad_fn(params, xb, yb, key=k)``) with a fresh key every
    step -- for dropout -- while validation calls ``apply_fn(params, x)`` without a key.
    ``label_smoothing`` = eps in [0, 1): train on the cross-entropy against ``(1 - eps) * one_hot(y)
    + eps / C`` (as ``optax.smooth_labels``); ``train_loss`` is that smoothed loss, ``val_loss`` the
    plain cross-entropy. Autodiff only (``grad_fn=None``).
    Repeated calls with the same model, optimizer (any float learning rate), loss and shapes reuse
    one compiled epoch (see the module docstring and :func:`cache_info`). With a course_lib optimizer
    and parameters of one float dtype, the compiled epoch updates all parameters as one concatenated
    vector (the same element-by-element arithmetic, far fewer kernels to compile); ``apply_fn``,
    ``grad_fn``, the callbacks and the result still see the parameter tree.

    Taught in: notebooks/05_feedforward_networks.ipynb
    """
    _check_callable(apply_fn, "apply_fn")
    _check_optimizer(optimizer)
    V.check_option(loss, "loss", LOSSES)
    X_train, y_train = _check_data(X_train, y_train, loss, "X_train", "y_train")
    if (X_val is None) != (y_val is None):
        raise ValueError("X_val and y_val must be given together (or both left out)")
    has_val = X_val is not None
    if has_val:
        X_val, y_val = _check_data(X_val, y_val, loss, "X_val", "y_val")
    epochs = _positive_int(epochs, "epochs")
    batch_size = _positive_int(batch_size, "batch_size")
    n = X_train.shape[0]
    if batch_size > n:
        raise ValueError(f"batch_size must be at most the number of training rows ({n}), got {batch_size}")
    if early_stopping is not None:
        if not isinstance(early_stopping, EarlyStopping):
            raise TypeError("early_stopping must be an EarlyStopping (course_lib.training.early_stopping"
                            f"(...)), got {type(early_stopping).__name__}")
        if early_stopping.monitor.startswith("val") and not has_val:
            raise ValueError(f"early_stopping monitors {early_stopping.monitor!r} but no X_val/y_val was given")
    for i, cb in enumerate(callbacks):
        _check_callable(cb, f"callbacks[{i}]")
    label_smoothing = _check_label_smoothing(label_smoothing, loss, grad_fn)
    use_key = rng is not None
    if use_key:
        if isinstance(rng, bool) or not isinstance(rng, (int, np.integer)) or not 0 <= rng < 2 ** 32:
            raise ValueError(f"rng must be None or an integer seed in [0, 2**32), got {rng!r}")

    n_batches = n // batch_size
    opt_key, lr, make_update = _optimizer_parts(optimizer)
    eval_fn = _eval_fn(apply_fn, loss, params, X_val, y_val) if has_val else None
    layout = _flat_layout(optimizer, params)
    if layout is not None:
        params = jax.device_put(_flatten_host(params, layout))
    tree = (lambda p: p) if layout is None else (lambda p: _as_tree(p, layout))
    opt_state = _init_state(optimizer, opt_key, params)
    fps = (_fingerprint(apply_fn), None if grad_fn is None else _fingerprint(grad_fn))
    key = None
    if opt_key is not None and fps[0] is not None and (grad_fn is None or fps[1] is not None):
        shapes = _abstract((params, opt_state, X_train[:batch_size], y_train[:batch_size]))
        key = ("epoch", fps, grad_fn is None, opt_key, loss, use_key, n_batches, shapes)
        if label_smoothing:   # the key of an unsmoothed fit is unchanged
            key += (("label_smoothing", label_smoothing),)
        if layout is not None:
            key += (("flat", layout),)
    epoch_fn = _cached(key, lambda: _build_epoch(apply_fn, optimizer, make_update, loss, grad_fn, use_key,
                                                 label_smoothing, layout))
    shuffle = np.random.default_rng(seed)
    history = {"train_loss": [], "train_acc": [], "val_loss": [], "val_acc": []}
    best_params = params
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=epochs, desc="epochs", unit="epoch")
    try:
        for epoch in range(epochs):
            idx = shuffle.permutation(n)[: n_batches * batch_size]
            Xb = X_train[idx].reshape(n_batches, batch_size, *X_train.shape[1:])
            Yb = y_train[idx].reshape(n_batches, batch_size, *y_train.shape[1:])
            seed_epoch = np.array([0 if rng is None else rng, epoch], dtype=np.uint32)
            params, opt_state, tl, ta = epoch_fn(params, opt_state, Xb, Yb, lr, seed_epoch)
            tl, ta = float(tl), float(ta)
            if not np.isfinite(tl):
                raise ValueError(f"training diverged: the train loss is {tl} in epoch {epoch}; "
                                 "lower the learning rate (or check the data for huge values)")
            history["train_loss"].append(tl)
            history["train_acc"].append(ta)
            # the parameter tree of this epoch, sliced once for validation and the callbacks
            current = tree(params) if has_val or callbacks else None
            if has_val:
                vl, va = eval_fn(current, X_val, y_val)
                history["val_loss"].append(float(vl))
                history["val_acc"].append(float(va))
            stop = False
            if early_stopping is not None:
                if early_stopping.best_epoch(history) == epoch:
                    best_params = params
                stop = early_stopping.should_stop(history)
            for cb in callbacks:
                stop = bool(cb(epoch, current, history)) or stop
            if bar is not None:
                post = {"loss": f"{tl:.4f}"}
                if has_val:
                    post["val_acc"] = f"{history['val_acc'][-1]:.3f}"
                bar.set_postfix(post)
                bar.update(1)
            if stop:
                break
    finally:
        if bar is not None:
            bar.close()
    history["epochs_run"] = len(history["train_loss"])
    if early_stopping is not None:
        history["best_epoch"] = early_stopping.best_epoch(history)
        if early_stopping.restore_best:
            params = best_params
    else:
        history["best_epoch"] = history["epochs_run"] - 1
    if not has_val:
        del history["val_loss"], history["val_acc"]
    return tree(params), history
