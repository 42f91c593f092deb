"""Backpropagation written by hand: one contract for every layer, and a whole-MLP backward.

Every layer has ``forward(inputs..., ) -> (out, cache)`` and, right below it,
``backward(dout, cache) -> grads``: ``dout`` is dJ/d(out), the gradient of the scalar loss with respect
to the layer's output; ``backward`` returns dJ/d(inputs) and dJ/d(parameters). Chaining them from the
loss back to the input *is* backpropagation (the chain rule, evaluated right to left so that every
product is a vector times a matrix, never a matrix times a matrix).

For an MLP with rows as examples (``z_l = a_{l-1} @ W_l + b_l``, ``a_l = sigma(z_l)``, ``a_0 = x``,
logits ``z_L``, softmax + cross-entropy loss J averaged over the N rows), this is the delta rule of
document 001 section 3.2 with its indices put right::

    delta_L = dJ/dz_L = (softmax(z_L) - onehot(y)) / N
    delta_l = (delta_{l+1} @ W_{l+1}.T) * sigma'(z_l)          l = L-1, ..., 1
    dJ/dW_l = a_{l-1}.T @ delta_l       dJ/db_l = sum over rows of delta_l

(001 writes dJ/dW^(l) = delta^(l+1) (a^(l))^T, which mixes two numbering conventions: with its own
forward pass z^(l) = W^(l) a^(l-1) + b^(l), the gradient of W^(l) needs delta^(l) and a^(l-1).)

Taught in: notebooks/06_backpropagation.ipynb
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from course_lib import activations, losses
from course_lib._validation import (as_float_array, check_cache, check_finite, check_ndim, check_shape,
                                    check_targets, checked)
from course_lib.layers import _check_activation, _check_input, check_mlp_params

__all__ = [
    "dense_forward", "dense_backward",
    "activation_forward", "activation_backward",
    "softmax_cross_entropy_forward", "softmax_cross_entropy_backward",
    "mlp_forward", "mlp_backward", "loss_and_grads", "delta_rule", "gradient_norms",
]


# -------------------------------------------------------------------------------- argument checks
def _check_grad_in(dout, shape, name="dout"):
    """A finite float gradient of the given shape (what a backward receives)."""
    return check_finite(check_shape(as_float_array(dout, name), name, shape), name)


def _check_dense_forward(x, W, b):
    W = check_ndim(as_float_array(W, "W"), "W", 2)
    b = check_shape(as_float_array(b, "b"), "b", (W.shape[1],))
    return _check_input(x, W.shape[0]), W, b


def _check_dense_backward(dout, cache):
    x, W = check_cache(cache, "cache", "dense_forward", 2)
    return _check_grad_in(dout, (x.shape[0], W.shape[1])), cache


def _check_ce_forward(logits, labels):
    logits = check_finite(check_ndim(as_float_array(logits, "logits"), "logits", 2), "logits")
    return logits, check_targets(labels, "labels", *logits.shape)


def _check_ce_backward(dloss, cache):
    check_cache(cache, "cache", "softmax_cross_entropy_forward", 2)
    dloss = check_ndim(as_float_array(dloss, "dloss", allow_int=True), "dloss", 0)
    return check_finite(dloss, "dloss"), cache


def _check_mlp_forward(params, x, activation="relu"):
    sizes = check_mlp_params(params)
    return list(params), _check_input(x, sizes[0]), _check_activation(activation)


def _check_mlp_backward(dlogits, caches, activation="relu"):
    if not isinstance(caches, (list, tuple)) or not caches:
        raise TypeError(f"caches must be the list returned by mlp_forward, got {type(caches).__name__}")
    (x_last, W_last), _ = caches[-1]
    dlogits = _check_grad_in(dlogits, (x_last.shape[0], W_last.shape[1]), "dlogits")
    return dlogits, list(caches), _check_activation(activation)


def _check_mlp_labels(params, x, labels, activation="relu"):
    sizes = check_mlp_params(params)
    x = _check_input(x, sizes[0])
    return list(params), x, check_targets(labels, "labels", x.shape[0], sizes[-1]), _check_activation(activation)


# ------------------------------------------------------------------------------------ dense
@checked(_check_dense_forward)
def dense_forward(x, W, b):
    """Dense layer forward: ``out = x @ W + b``; x (N, n_in), W (n_in, n_out), b (n_out,).

    Returns ``(out, cache)`` with ``cache = (x, W)``, what the backward pass needs.

    Taught in: notebooks/06_backpropagation.ipynb
    """
    return x @ W + b, (x, W)


@checked(_check_dense_backward)
def dense_backward(dout, cache):
    """Dense layer backward: from dJ/dout (N, n_out) to ``(dx, dW, db)``.

    ``dx = dout @ W.T`` (N, n_in), ``dW = x.T @ dout`` (n_in, n_out), ``db = dout.sum(0)`` (n_out,).
    Each is the chain rule for z_nj = sum_i x_ni W_ij + b_j: a weight's gradient sums, over the
    examples, (its input) x (the gradient arriving at its output).

    Taught in: notebooks/06_backpropagation.ipynb
    """
    x, W = cache
    return dout @ W.T, x.T @ dout, jnp.sum(dout, axis=0)


# ------------------------------------------------------------------------------- activations
def activation_forward(z, activation: str = "relu"):
    """Elementwise activation forward ``a = sigma(z)``; returns ``(a, cache)``, cache = (z, name).

    ``activation`` in "sigmoid", "tanh", "relu", "leaky_relu", "identity" (course_lib.activations).

    Taught in: notebooks/06_backpropagation.ipynb
    """
    activation = _check_activation(activation)
    z = check_finite(as_float_array(z, "z"), "z")
    sigma = activations.get(activation)[0]
    return sigma(z), (z, activation)


def activation_backward(dout, cache):
    """Elementwise activation backward: ``dz = dout * sigma'(z)`` (the Jacobian is diagonal).

    Taught in: notebooks/06_backpropagation.ipynb
    """
    z, activation = check_cache(cache, "cache", "activation_forward", 2)
    sigma_grad = activations.get(_check_activation(activation, "cache[1] (activation)"))[1]
    return _check_grad_in(dout, tuple(z.shape)) * sigma_grad(z)


# ---------------------------------------------------------------------- softmax + cross-entropy
@checked(_check_ce_forward)
def softmax_cross_entropy_forward(logits, labels):
    """Mean cross-entropy of softmax(logits): ``J = -(1/N) sum_n sum_c y_nc log softmax(z_n)_c``.

    logits (N, C); labels int (N,) or probability rows (N, C) summing to 1. The loss is
    :func:`course_lib.losses.cross_entropy` (log-softmax: stable for large logits). Returns
    ``(loss, cache)`` with ``cache = (probs, targets)``, the targets as probability rows (one-hot
    for integer labels).

    Taught in: notebooks/06_backpropagation.ipynb
    """
    if jnp.issubdtype(labels.dtype, jnp.integer):
        targets = jax.nn.one_hot(labels, logits.shape[-1], dtype=logits.dtype)
    else:
        targets = labels.astype(logits.dtype)
    return losses.cross_entropy(logits, labels), (activations.softmax(logits), targets)


@checked(_check_ce_backward)
def softmax_cross_entropy_backward(dloss, cache):
    """Backward of softmax + mean cross-entropy: ``dlogits = dloss * (softmax(z) - y) / N``.

    Taken together the softmax Jacobian and the log's 1/p cancel to this simple difference; it is
    *not* ``dJ/dp * softmax'(z)`` elementwise (softmax is not elementwise). ``dloss`` is dJ_total/dJ,
    1.0 when J is the final loss.

    Taught in: notebooks/06_backpropagation.ipynb
    """
    probs, targets = cache
    return dloss * (probs - targets) / probs.shape[0]


# ---------------------------------------------------------------------------------- whole MLP
@checked(_check_mlp_forward, static_argnames="activation")
def mlp_forward(params, x, activation: str = "relu"):
    """Forward pass of an MLP (:func:`course_lib.layers.mlp_apply`) that also returns the caches.

    Returns ``(logits, caches)``; ``caches[l] = ((a_{l-1}, W_l), z_l)`` (``z_l`` is None for the
    linear output layer).

    Taught in: notebooks/06_backpropagation.ipynb
    """
    sigma = activations.get(activation)[0]
    caches, h = [], x
    for layer in params[:-1]:
        z, dense_cache = dense_forward(h, layer["W"], layer["b"])
        h = sigma(z)
        caches.append((dense_cache, z))
    logits, dense_cache = dense_forward(h, params[-1]["W"], params[-1]["b"])
    return logits, caches + [(dense_cache, None)]


@checked(_check_mlp_backward, static_argnames="activation")
def mlp_backward(dlogits, caches, activation: str = "relu"):
    """Backward pass of an MLP built from the layers' backwards: returns ``[{"W": dW, "b": db}, ...]``.

    Walks the layers from last to first: dense_backward, then (for hidden layers) the activation's
    backward, ``dz = da * sigma'(z)``. ``dlogits`` is dJ/dlogits (N, n_L), e.g. from
    :func:`softmax_cross_entropy_backward`.

    Taught in: notebooks/06_backpropagation.ipynb
    """
    sigma_grad = activations.get(activation)[1]
    grads, dout = [None] * len(caches), dlogits
    for l in range(len(caches) - 1, -1, -1):
        dense_cache, z = caches[l]
        if z is not None:  # hidden layer: through the activation first
            dout = dout * sigma_grad(z)
        dout, dW, db = dense_backward(dout, dense_cache)
        grads[l] = {"W": dW, "b": db}
    return grads


@checked(_check_mlp_labels, static_argnames="activation")
def loss_and_grads(params, x, labels, activation: str = "relu"):
    """Softmax cross-entropy loss of an MLP and its gradients, all by hand (no autodiff).

    ``loss, grads = loss_and_grads(params, x, y)`` gives the same numbers as
    ``jax.value_and_grad(lambda p: cross_entropy(mlp_apply(p, x), y))(params)``.

    Taught in: notebooks/06_backpropagation.ipynb
    """
    logits, caches = mlp_forward(params, x, activation)
    loss, ce_cache = softmax_cross_entropy_forward(logits, labels)
    return loss, mlp_backward(softmax_cross_entropy_backward(1.0, ce_cache), caches, activation)


@checked(_check_mlp_labels, static_argnames="activation")
def delta_rule(params, x, labels, activation: str = "relu"):
    """The delta rule written formula by formula (corrected indices of document 001 section 3.2).

    Returns ``(grads, deltas)`` where ``deltas[l-1] = dJ/dz_l`` (N, n_l) for l = 1..L. Same grads as
    :func:`loss_and_grads`, which composes the per-layer backwards instead.

    Taught in: notebooks/06_backpropagation.ipynb
    """
    f, df = activations.get(activation)
    a, z = [x], []                                   # a[0] = x, z[l-1] = z_l
    for l, layer in enumerate(params):
        z.append(a[-1] @ layer["W"] + layer["b"])
        a.append(f(z[-1]) if l < len(params) - 1 else z[-1])
    y = labels if labels.ndim == 2 else jax.nn.one_hot(labels, z[-1].shape[-1], dtype=x.dtype)
    deltas = [None] * len(params)
    deltas[-1] = (activations.softmax(z[-1]) - y) / x.shape[0]
    for l in range(len(params) - 2, -1, -1):
        deltas[l] = (deltas[l + 1] @ params[l + 1]["W"].T) * df(z[l])
    grads = [{"W": a[l].T @ deltas[l], "b": jnp.sum(deltas[l], axis=0)} for l in range(len(params))]
    return grads, deltas


def gradient_norms(grads):
    """Frobenius norm of each layer's weight gradient, ``[||dJ/dW_1||, ..., ||dJ/dW_L||]`` (numpy).

    Taught in: notebooks/06_backpropagation.ipynb
    """
    check_mlp_params(grads, "grads")
    for l, g in enumerate(grads):
        check_finite(g["W"], f"grads[{l}]['W']")
    return np.array([np.linalg.norm(np.asarray(g["W"], np.float64)) for g in grads])
