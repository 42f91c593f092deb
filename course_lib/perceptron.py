"""Rosenblatt's perceptron (1958): a linear threshold unit and its mistake-driven learning rule.

    score = x . w + b,     prediction = 1 if score > 0 else 0
    for each example (x, y), with t = +1 if y == 1 else -1:
        if t * score <= 0:                 (a mistake, or exactly on the boundary)
            w <- w + lr * t * x
            b <- b + lr * t

For labels in {0, 1} and a prediction that is wrong this is the textbook
``w <- w + lr * (y - y_hat) * x``. A perceptron has *no hidden layer*: one layer of weights from the
inputs straight to a threshold output. If the classes are linearly separable the rule stops making
mistakes after a finite number of updates (Novikoff 1962); if they are not (XOR), it never settles.

Taught in: notebooks/01_what_is_deep_learning.ipynb
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from . import _validation as V

__all__ = ["predict", "perceptron_update", "train_perceptron"]


def _check_xy(X, y):
    X = V.as_float_array(X, "X", allow_int=True)
    V.check_ndim(X, "X", 2)
    V.check_finite(X, "X")
    y = V.as_int_array(y, "y")
    V.check_shape(y, "y", (X.shape[0],))
    if V.is_concrete(y) and not V.is_binary_np(y):
        raise ValueError(f"y must hold binary labels 0/1, got values {sorted(set(np.asarray(y).tolist()))[:5]}")
    return X, y


def _check_wb(w, b, d):
    w = V.as_float_array(w, "w")
    V.check_shape(w, "w", (d,))
    b = V.as_float_array(b, "b")
    V.check_ndim(b, "b", 0)
    V.check_finite(w, "w")
    V.check_finite(b, "b")
    return w, b


@jax.jit
def _predict(w, b, X):
    return (X @ w + b > 0).astype(jnp.int32)


def _step(w, b, x, y, lr):
    t = 2 * y - 1
    mistake = t * (x @ w + b) <= 0
    dt = jnp.where(mistake, lr * t, 0.0).astype(w.dtype)
    return w + dt * x, b + dt, mistake


_update = jax.jit(_step)


@jax.jit
def _train(X, y, order, lr):
    def body(carry, i):
        w, b = carry
        w, b, mistake = _step(w, b, X[i], y[i], lr)
        return (w, b), (w, b, mistake)

    w0 = jnp.zeros(X.shape[1], X.dtype)
    b0 = jnp.zeros((), X.dtype)
    _, (ws, bs, mistakes) = jax.lax.scan(body, (w0, b0), order)
    return ws, bs, mistakes


def predict(w, b, X):
    """Perceptron output ``1 if X @ w + b > 0 else 0`` for each row of X (N, d) -> int (N,).

    Taught in: notebooks/01_what_is_deep_learning.ipynb
    """
    X = V.as_float_array(X, "X", allow_int=True)
    V.check_ndim(X, "X", 2)
    w, b = _check_wb(w, b, X.shape[1])
    return _predict(w, b, X)


def perceptron_update(w, b, x, y, lr: float = 1.0):
    """One step of the perceptron rule on a single example x (d,), label y in {0, 1}.

    Returns ``(w, b, mistake)``; w and b change only if the example was misclassified (or on the
    boundary), by ``+lr * x`` for a missed positive and ``-lr * x`` for a missed negative.

    Taught in: notebooks/01_what_is_deep_learning.ipynb
    """
    x = V.as_float_array(x, "x", allow_int=True)
    V.check_ndim(x, "x", 1)
    V.check_finite(x, "x")
    w, b = _check_wb(w, b, x.shape[0])
    if V.check_int(y, "y") not in (0, 1):
        raise ValueError(f"y must be the label 0 or 1, got {y!r}")
    V.check_number(lr, "lr", low=0, low_open=True)
    w2, b2, mistake = _update(w, b, x.astype(w.dtype), jnp.asarray(y), jnp.asarray(lr, w.dtype))
    return w2, b2, bool(mistake)


def train_perceptron(X, y, epochs: int = 10, lr: float = 1.0, *, shuffle: bool = False, seed: int = 0):
    """Run the perceptron rule for ``epochs`` passes over (X, y), starting from w = 0, b = 0.

    X (N, d), y (N,) in {0, 1}. Visits the rows in order (or in a fresh random order per epoch if
    ``shuffle``). Returns a dict with the final ``w``, ``b``; the whole trajectory ``w_history``
    (T+1, d) and ``b_history`` (T+1,) with T = epochs * N steps (row 0 is the start); ``order`` (T,)
    the row visited at each step; ``mistake`` (T,) bool; ``mistakes_per_epoch`` (epochs,); and
    ``converged`` (an epoch without a single mistake happened).

    Taught in: notebooks/01_what_is_deep_learning.ipynb
    """
    X, y = _check_xy(X, y)
    V.check_int(epochs, "epochs", minimum=1)
    V.check_number(lr, "lr", low=0, low_open=True)
    n = X.shape[0]
    rng = np.random.default_rng(seed)
    order = np.concatenate([rng.permutation(n) if shuffle else np.arange(n) for _ in range(epochs)])
    ws, bs, mistakes = _train(X, y, jnp.asarray(order), jnp.asarray(lr, X.dtype))
    ws = np.concatenate([np.zeros((1, X.shape[1]), ws.dtype), np.asarray(ws)])
    bs = np.concatenate([np.zeros(1, bs.dtype), np.asarray(bs)])
    mistakes = np.asarray(mistakes)
    per_epoch = mistakes.reshape(epochs, n).sum(axis=1)
    return {"w": ws[-1], "b": bs[-1], "w_history": ws, "b_history": bs, "order": order,
            "mistake": mistakes, "mistakes_per_epoch": per_epoch,
            "converged": bool(np.any(per_epoch == 0))}
