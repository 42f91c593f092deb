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

Taught in: notebooks/05_feedforward_networks.ipynb (and used in later chapters)
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from . import _validation as V

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
    if isinstance(patience, bool) or not isinstance(patience, (int, np.integer)) or patience < 1:
        raise ValueError(f"patience must be a positive integer, got {patience!r}")
    V.check_option(monitor, "monitor", MONITORS)
    V.check_positive(min_delta, "min_delta", allow_zero=True)
    return EarlyStopping(int(patience), monitor, float(min_delta), bool(restore_best))


# ----------------------------------------------------------------------------------- the step
def _loss_value(loss, out, y):
    if loss == "cross_entropy":
        logp = jax.nn.log_softmax(out, axis=-1)
        return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=-1))
    return jnp.mean((out - y) ** 2)


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
                    grad_fn: Callable | None = None):
    """A jitted ``step(params, opt_state, xb, yb) -> (params, opt_state, batch_loss, batch_acc)``.

    ``apply_fn(params, x) -> outputs`` (logits for "cross_entropy", predictions for "mse").
    ``grad_fn(params, xb, yb) -> (loss, grads)`` replaces autodiff if given (e.g. the hand-written
    ``course_lib.backprop.loss_and_grads``). Loss and accuracy are measured on the batch *before*
    the update.

    Taught in: notebooks/05_feedforward_networks.ipynb
    """
    _check_callable(apply_fn, "apply_fn")
    _check_optimizer(optimizer)
    V.check_option(loss, "loss", LOSSES)
    if grad_fn is not None:
        _check_callable(grad_fn, "grad_fn")

    def objective(params, xb, yb):
        out = apply_fn(params, xb)
        return _loss_value(loss, out, yb), out

    def step(params, opt_state, xb, yb):
        if grad_fn is None:
            (value, out), grads = jax.value_and_grad(objective, has_aux=True)(params, xb, yb)
        else:
            value, grads = grad_fn(params, xb, yb)
            out = apply_fn(params, xb)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return _add(params, updates), opt_state, value, _acc_value(loss, out, yb)

    return jax.jit(step)


def _make_epoch(step):
    @jax.jit
    def epoch(params, opt_state, Xb, Yb):
        def body(carry, batch):
            p, s = carry
            p, s, value, acc = step(p, s, *batch)
            return (p, s), (value, acc)

        (params, opt_state), (values, accs) = jax.lax.scan(body, (params, opt_state), (Xb, Yb))
        return params, opt_state, jnp.mean(values), jnp.mean(accs)

    return epoch


def _make_eval(apply_fn, loss):
    @jax.jit
    def ev(params, X, y):
        out = apply_fn(params, X)
        return _loss_value(loss, out, y), _acc_value(loss, out, y)

    return ev


# ----------------------------------------------------------------------------------- validation
def _check_data(X, y, loss, xname, yname):
    X = V.as_float_array(X, xname)
    V.check_ndim(X, xname, 2)
    V.check_finite(X, xname)
    if loss == "cross_entropy":
        y = V.as_int_array(y, yname)
        V.check_shape(y, yname, (X.shape[0],))
    else:
        y = V.as_float_array(y, yname)
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
    value, acc = _make_eval(apply_fn, loss)(params, X, y)
    return float(value), float(acc)


# ----------------------------------------------------------------------------------------- fit
def fit(apply_fn: Callable, params, optimizer, X_train, y_train, *, X_val=None, y_val=None,
        epochs: int = 20, batch_size: int = 64, loss: str = "cross_entropy",
        grad_fn: Callable | None = None, seed: int = 0, progress: bool = False,
        early_stopping: EarlyStopping | None = None, callbacks=()):
    """Train ``params`` with mini-batch ``optimizer`` steps; returns ``(params, history)``.

    ``history`` holds per-epoch lists ``train_loss``, ``train_acc`` (means over the epoch's batches,
    measured before each update), ``val_loss``, ``val_acc`` (after the epoch; only with X_val/y_val),
    plus ``epochs_run`` and ``best_epoch`` (0-based; the last epoch without early stopping).
    ``progress=True`` shows a ``tqdm`` bar (a widget in Jupyter). ``early_stopping`` is an
    :class:`EarlyStopping`; each of ``callbacks(epoch, params, history)`` may return True to stop.
    A non-finite training loss stops with a ``ValueError`` (the step size is too large).

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

    epoch_fn = _make_epoch(make_train_step(apply_fn, optimizer, loss, grad_fn))
    eval_fn = _make_eval(apply_fn, loss) if has_val else None
    opt_state = optimizer.init(params)
    rng = np.random.default_rng(seed)
    n_batches = n // batch_size
    history = {"train_loss": [], "train_acc": [], "val_loss": [], "val_acc": []}
    best_params = params
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=epochs, desc="epochs", unit="epoch")
    try:
        for epoch in range(epochs):
            idx = rng.permutation(n)[: n_batches * batch_size]
            Xb = X_train[idx].reshape(n_batches, batch_size, *X_train.shape[1:])
            Yb = y_train[idx].reshape(n_batches, batch_size, *y_train.shape[1:])
            params, opt_state, tl, ta = epoch_fn(params, opt_state, Xb, Yb)
            tl, ta = float(tl), float(ta)
            if not np.isfinite(tl):
                raise ValueError(f"training diverged: the train loss is {tl} in epoch {epoch}; "
                                 "lower the learning rate (or check the data for huge values)")
            history["train_loss"].append(tl)
            history["train_acc"].append(ta)
            if has_val:
                vl, va = eval_fn(params, X_val, y_val)
                history["val_loss"].append(float(vl))
                history["val_acc"].append(float(va))
            stop = False
            if early_stopping is not None:
                if early_stopping.best_epoch(history) == epoch:
                    best_params = params
                stop = early_stopping.should_stop(history)
            for cb in callbacks:
                stop = bool(cb(epoch, params, history)) or stop
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
    return params, history
