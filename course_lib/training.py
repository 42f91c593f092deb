"""A small training loop, written as the loop it is: mini-batches, history, early stopping.

    for epoch in 1..epochs:
        shuffle the training rows; for each mini-batch (xb, yb):
            loss, grads = value_and_grad(loss_fn)(params, xb, yb)      (or your own backprop)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            params = params + updates
        record train loss/accuracy (means over the epoch's batches) and validation loss/accuracy
        stop early if a hook says so

Batches have equal size: the ``N mod batch_size`` rows left over after shuffling are skipped for
that epoch (a different few each epoch). ``optimizer`` is anything with optax's interface:
``init(params) -> state`` and ``update(grads, state, params) -> (updates, state)`` --
``course_lib.optim.adam(1e-3)`` or ``optax.adam(1e-3)``.

Dropout and other randomness: with ``fit(..., rng=seed)`` the model is called as
``apply_fn(params, xb, key=k)`` during training, with a fresh ``jax.random`` key ``k`` for every
step (derived from ``seed``, the epoch and the step), and as ``apply_fn(params, x)`` -- no key, i.e.
evaluation mode -- for the validation metrics and in :func:`evaluate`.

``course_lib.fast.training.fit`` has the same signature and computes the same (tested equal): it
runs a whole epoch as one compiled call and reuses compiled epochs across calls.

Taught in: notebooks/05_feedforward_networks.ipynb (and used in later chapters)
"""
from __future__ import annotations

from functools import partial
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from . import _validation as V
from .progress import bar
from .losses import cross_entropy

__all__ = ["EarlyStopping", "early_stopping", "make_train_step", "fit", "evaluate", "accuracy"]

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
    V.check_int(patience, "patience", minimum=1)
    V.check_option(monitor, "monitor", MONITORS)
    V.check_number(min_delta, "min_delta", low=0)
    return EarlyStopping(int(patience), monitor, float(min_delta), bool(restore_best))


# ----------------------------------------------------------------------------------- the step
def _loss_value(loss, out, y, label_smoothing=0.0):
    """The batch loss; with ``label_smoothing`` = eps (may be traced) the cross-entropy against the
    smoothed target q = (1 - eps) * one_hot(y) + eps / C."""
    if loss == "cross_entropy":
        if label_smoothing:
            C = out.shape[-1]
            y = (1.0 - label_smoothing) * jax.nn.one_hot(y, C, dtype=out.dtype) + label_smoothing / C
        return cross_entropy(out, y)
    return jnp.mean((out - y) ** 2)


def _check_label_smoothing(label_smoothing, loss, grad_fn):
    eps = V.check_number(label_smoothing, "label_smoothing", low=0, high=1, high_open=True)
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
    the plain Python function (``course_lib.fast.training.fit`` scans it inside its compiled epoch).
    ``label_smoothing`` = eps in [0, 1) trains on the cross-entropy against the smoothed target
    ``(1 - eps) * one_hot(y) + eps / C`` (C classes; equals ``optax.softmax_cross_entropy`` with
    ``optax.smooth_labels``); the reported batch loss is that smoothed loss.

    Taught in: notebooks/05_feedforward_networks.ipynb
    """
    V.check_callable(apply_fn, "apply_fn")
    _check_optimizer(optimizer)
    V.check_option(loss, "loss", LOSSES)
    if grad_fn is not None:
        V.check_callable(grad_fn, "grad_fn")
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


# ----------------------------------------------------------------------------------- validation
def _check_data(X, y, loss, xname, yname):
    # the data stay on the host (NumPy) for shuffling and slicing
    X = np.asarray(V.as_float_array(X, xname))
    V.check_ndim(X, xname, 2)
    V.check_finite(X, xname)
    if loss == "cross_entropy":
        y = np.asarray(V.as_int_array(y, yname))
        V.check_shape(y, yname, (X.shape[0],))
    else:
        y = np.asarray(V.as_float_array(y, yname))
        if y.shape[:1] != X.shape[:1]:
            raise ValueError(f"{yname} must have {X.shape[0]} rows like {xname}, got shape {y.shape}")
        V.check_finite(y, yname)
    return X, y


def accuracy(logits, labels):
    """Fraction of rows whose ``argmax(logits)`` equals the integer label."""
    logits = V.as_float_array(logits, "logits")
    V.check_ndim(logits, "logits", 2)
    labels = V.as_int_array(labels, "labels")
    V.check_shape(labels, "labels", (logits.shape[0],))
    return float(jnp.mean(jnp.argmax(logits, axis=-1) == labels))


@partial(jax.jit, static_argnames=("apply_fn", "loss"))
def _evaluate(apply_fn, loss, params, X, y):
    out = apply_fn(params, X)
    return _loss_value(loss, out, y), _acc_value(loss, out, y)


def evaluate(apply_fn: Callable, params, X, y, loss: str = "cross_entropy"):
    """``(loss, accuracy)`` of a model on a whole data set, as Python floats (accuracy 0 for mse)."""
    V.check_callable(apply_fn, "apply_fn")
    V.check_option(loss, "loss", LOSSES)
    X, y = _check_data(X, y, loss, "X", "y")
    value, acc = _evaluate(apply_fn, loss, params, X, y)
    return float(value), float(acc)


def _check_fit(apply_fn, optimizer, X_train, y_train, X_val, y_val, epochs, batch_size, loss,
               grad_fn, early_stopping, callbacks, rng, label_smoothing):
    """The arguments of :func:`fit` checked (both wings): the data as NumPy arrays, epochs,
    batch_size and label_smoothing as numbers."""
    V.check_callable(apply_fn, "apply_fn")
    _check_optimizer(optimizer)
    V.check_option(loss, "loss", LOSSES)
    X_train, y_train = _check_data(X_train, y_train, loss, "X_train", "y_train")
    if (X_val is None) != (y_val is None):
        raise ValueError("X_val and y_val must be given together (or both left out)")
    if X_val is not None:
        X_val, y_val = _check_data(X_val, y_val, loss, "X_val", "y_val")
    epochs = V.check_int(epochs, "epochs", minimum=1)
    batch_size = V.check_int(batch_size, "batch_size", minimum=1)
    if batch_size > X_train.shape[0]:
        raise ValueError(f"batch_size must be at most the number of training rows "
                         f"({X_train.shape[0]}), got {batch_size}")
    if early_stopping is not None:
        if not isinstance(early_stopping, EarlyStopping):
            raise TypeError("early_stopping must be an EarlyStopping (course_lib.training.early_stopping"
                            f"(...)), got {type(early_stopping).__name__}")
        if early_stopping.monitor.startswith("val") and X_val is None:
            raise ValueError(f"early_stopping monitors {early_stopping.monitor!r} but no X_val/y_val was given")
    for i, cb in enumerate(callbacks):
        V.check_callable(cb, f"callbacks[{i}]")
    label_smoothing = _check_label_smoothing(label_smoothing, loss, grad_fn)
    if rng is not None:
        V.check_int(rng, "rng", minimum=0, maximum=2 ** 32 - 1)
    return X_train, y_train, X_val, y_val, epochs, batch_size, label_smoothing


def _step_keys(rng, epoch, n_steps):
    """The ``jax.random`` key of each step of ``epoch`` (None without ``rng``): the split of the key
    of (seed ``rng``, ``epoch``)."""
    if rng is None:
        return [None] * n_steps
    seed_epoch = np.array([rng, epoch], dtype=np.uint32)
    return jax.random.split(jax.random.fold_in(jax.random.PRNGKey(seed_epoch[0]), seed_epoch[1]), n_steps)


def _record_epoch(history, part, loss_value, acc, epoch):
    """Append an epoch's ``{part}_loss`` and ``{part}_acc`` to ``history``; a non-finite training
    loss raises ``ValueError`` (the step size is too large)."""
    loss_value, acc = float(loss_value), float(acc)
    if part == "train" and not np.isfinite(loss_value):
        raise ValueError(f"training diverged: the train loss is {loss_value} in epoch {epoch}; "
                         "lower the learning rate (or check the data for huge values)")
    history[f"{part}_loss"].append(loss_value)
    history[f"{part}_acc"].append(acc)


def _finish_history(params, best_params, history, early_stopping):
    """``(params, history)`` at the end of :func:`fit`: ``epochs_run`` and ``best_epoch`` added,
    the best epoch's parameters with ``early_stopping.restore_best``, no val lists without data."""
    history["epochs_run"] = len(history["train_loss"])
    history["best_epoch"] = history["epochs_run"] - 1
    if early_stopping is not None:
        history["best_epoch"] = early_stopping.best_epoch(history)
        params = best_params if early_stopping.restore_best else params
    if not history["val_loss"]:
        del history["val_loss"], history["val_acc"]
    return params, history
# ----------------------------------------------------------------------------------------- fit
def fit(apply_fn: Callable, params, optimizer, X_train, y_train, *, X_val=None, y_val=None,
        epochs: int = 20, batch_size: int = 64, loss: str = "cross_entropy",
        grad_fn: Callable | None = None, seed: int = 0, progress: bool = False,
        early_stopping: EarlyStopping | None = None, callbacks=(), rng: int | None = None,
        label_smoothing: float = 0.0):
    """Train ``params`` with mini-batch ``optimizer`` steps; returns ``(params, history)``.

    ``history``: per-epoch ``train_loss``, ``train_acc`` (means over the batches, before each
    update), ``val_loss``, ``val_acc`` (with X_val/y_val), ``epochs_run``, ``best_epoch``. A
    ``callbacks(epoch, params, history)`` returning True, or ``early_stopping``, stops; a non-finite
    loss raises. ``rng`` (a seed): ``apply_fn(params, xb, key=k)``, a fresh key per step (dropout).
    ``label_smoothing`` = eps: targets ``(1 - eps) one_hot(y) + eps / C``. Same results as
    ``course_lib.fast.training.fit``, which compiles whole epochs.
    Taught in: notebooks/05_feedforward_networks.ipynb
    """
    X_train, y_train, X_val, y_val, epochs, batch_size, label_smoothing = _check_fit(
        apply_fn, optimizer, X_train, y_train, X_val, y_val, epochs, batch_size, loss, grad_fn,
        early_stopping, callbacks, rng, label_smoothing)
    step = make_train_step(apply_fn, optimizer, loss, grad_fn, with_key=rng is not None,
                           label_smoothing=label_smoothing)
    opt_state, best_params, shuffle = optimizer.init(params), params, np.random.default_rng(seed)
    n_batches = X_train.shape[0] // batch_size
    history = {"train_loss": [], "train_acc": [], "val_loss": [], "val_acc": []}
    for epoch in (bar(range(epochs), "epochs") if progress else range(epochs)):
        order = shuffle.permutation(X_train.shape[0])[: n_batches * batch_size]
        losses, accs = [], []
        for idx, key in zip(order.reshape(n_batches, batch_size), _step_keys(rng, epoch, n_batches)):
            extra = () if key is None else (key,)
            params, opt_state, value, acc = step(params, opt_state, X_train[idx], y_train[idx], *extra)
            losses.append(float(value))
            accs.append(float(acc))
        _record_epoch(history, "train", np.mean(losses), np.mean(accs), epoch)
        if X_val is not None:
            _record_epoch(history, "val", *_evaluate(apply_fn, loss, params, X_val, y_val), epoch)
        if early_stopping is not None and early_stopping.best_epoch(history) == epoch:
            best_params = params
        stop = early_stopping is not None and early_stopping.should_stop(history)
        if any([bool(cb(epoch, params, history)) for cb in callbacks]) or stop:
            break
    return _finish_history(params, best_params, history, early_stopping)
