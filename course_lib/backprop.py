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

from . import _validation as V
from .layers import _check_activation, _check_input, check_mlp_params

__all__ = [
    "dense_forward", "dense_backward",
    "activation_forward", "activation_backward",
    "softmax_cross_entropy_forward", "softmax_cross_entropy_backward",
    "mlp_forward", "mlp_backward", "loss_and_grads", "delta_rule", "gradient_norms",
]


def _acts(name):
    from . import activations  # lazily: written by another module owner
    return activations.get(name)


# --------------------------------------------------------------------------- private pure cores
def _dense_forward(x, W, b):
    return x @ W + b, (x, W)


def _dense_backward(dout, cache):
    x, W = cache
    return dout @ W.T, x.T @ dout, jnp.sum(dout, axis=0)


def _activation_forward(z, name):
    return _acts(name)[0](z), z


def _activation_backward(da, z, name):
    return da * _acts(name)[1](z)


def _onehot(labels, n_classes, dtype):
    if labels.ndim == 2:
        return labels.astype(dtype)
    return jax.nn.one_hot(labels, n_classes, dtype=dtype)


def _softmax_ce_forward(logits, labels):
    logp = jax.nn.log_softmax(logits, axis=-1)
    target = _onehot(labels, logits.shape[-1], logits.dtype)
    loss = -jnp.sum(target * logp) / logits.shape[0]
    return loss, (jnp.exp(logp), target)


def _softmax_ce_backward(dloss, cache):
    probs, target = cache
    return dloss * (probs - target) / probs.shape[0]


def _mlp_forward(params, x, activation):
    caches = []
    h = x
    for layer in params[:-1]:
        z, dcache = _dense_forward(h, layer["W"], layer["b"])
        h, z_saved = _activation_forward(z, activation)
        caches.append((dcache, z_saved))
    logits, dcache = _dense_forward(h, params[-1]["W"], params[-1]["b"])
    caches.append((dcache, None))
    return logits, caches


def _mlp_backward(dlogits, caches, activation):
    grads = [None] * len(caches)
    dout = dlogits
    for l in range(len(caches) - 1, -1, -1):
        dcache, z = caches[l]
        if z is not None:  # hidden layer: through the activation first
            dout = _activation_backward(dout, z, activation)
        dout, dW, db = _dense_backward(dout, dcache)
        grads[l] = {"W": dW, "b": db}
    return grads


def _loss_and_grads(params, x, labels, activation):
    logits, caches = _mlp_forward(params, x, activation)
    loss, ce_cache = _softmax_ce_forward(logits, labels)
    return loss, _mlp_backward(_softmax_ce_backward(1.0, ce_cache), caches, activation)


def _delta_rule(params, x, labels, activation):
    f, df = _acts(activation)
    a, z = [x], []                                   # a[0] = x, z[l-1] = z_l
    for l, layer in enumerate(params):
        z.append(a[-1] @ layer["W"] + layer["b"])
        a.append(f(z[-1]) if l < len(params) - 1 else z[-1])
    probs = jax.nn.softmax(z[-1], axis=-1)
    deltas = [None] * len(params)
    deltas[-1] = (probs - _onehot(labels, probs.shape[-1], probs.dtype)) / x.shape[0]
    for l in range(len(params) - 2, -1, -1):
        deltas[l] = (deltas[l + 1] @ params[l + 1]["W"].T) * df(z[l])
    grads = [{"W": a[l].T @ deltas[l], "b": jnp.sum(deltas[l], axis=0)} for l in range(len(params))]
    return grads, deltas


_dense_forward_jit = jax.jit(_dense_forward)
_dense_backward_jit = jax.jit(_dense_backward)
_activation_forward_jit = jax.jit(_activation_forward, static_argnums=1)
_activation_backward_jit = jax.jit(_activation_backward, static_argnums=2)
_softmax_ce_forward_jit = jax.jit(_softmax_ce_forward)
_softmax_ce_backward_jit = jax.jit(_softmax_ce_backward)
_mlp_forward_jit = jax.jit(_mlp_forward, static_argnums=2)
_mlp_backward_jit = jax.jit(_mlp_backward, static_argnums=2)
_loss_and_grads_jit = jax.jit(_loss_and_grads, static_argnums=3)
_delta_rule_jit = jax.jit(_delta_rule, static_argnums=3)


# -------------------------------------------------------------------------------- validation
def _check_grad_in(dout, shape, name="dout"):
    dout = V.as_float_array(dout, name)
    V.check_shape(dout, name, shape)
    V.check_finite(dout, name)
    return dout


def _check_cache(cache, kind, n):
    if not isinstance(cache, tuple) or len(cache) != n:
        raise TypeError(f"cache must be the tuple returned by {kind}_forward, got {type(cache).__name__}")
    return cache


def _check_labels(labels, n_rows, n_classes, name="labels"):
    if hasattr(labels, "dtype") and jnp.issubdtype(labels.dtype, jnp.floating):
        labels = V.as_float_array(labels, name)
        V.check_shape(labels, name, (n_rows, n_classes))
        V.check_probability(labels, name)
        return labels
    labels = V.as_int_array(labels, name)
    V.check_shape(labels, name, (n_rows,))
    if V.is_concrete(labels) and labels.size and (int(labels.min()) < 0 or int(labels.max()) >= n_classes):
        raise ValueError(f"{name} must be class indices in [0, {n_classes}), got values from "
                         f"{int(labels.min())} to {int(labels.max())}")
    return labels


# ------------------------------------------------------------------------------------ dense
def dense_forward(x, W, b):
    """Dense layer forward: ``out = x @ W + b``; x (N, n_in), W (n_in, n_out), b (n_out,).

    Returns ``(out, cache)`` with ``cache = (x, W)``, what the backward pass needs.

    Taught in: notebooks/06_backpropagation.ipynb
    """
    W = V.as_float_array(W, "W")
    V.check_ndim(W, "W", 2)
    b = V.as_float_array(b, "b")
    V.check_shape(b, "b", (W.shape[1],))
    x = _check_input(x, W.shape[0])
    return _dense_forward_jit(x, W, b)


def dense_backward(dout, cache):
    """Dense layer backward: from dJ/dout (N, n_out) to ``(dx, dW, db)``.

    ``dx = dout @ W.T`` (N, n_in), ``dW = x.T @ dout`` (n_in, n_out), ``db = dout.sum(0)`` (n_out,).
    Each is the chain rule for z_nj = sum_i x_ni W_ij + b_j: a weight's gradient sums, over the
    examples, (its input) x (the gradient arriving at its output).

    Taught in: notebooks/06_backpropagation.ipynb
    """
    x, W = _check_cache(cache, "dense", 2)
    dout = _check_grad_in(dout, (x.shape[0], W.shape[1]))
    return _dense_backward_jit(dout, (x, W))


# ------------------------------------------------------------------------------- activations
def activation_forward(z, activation: str = "relu"):
    """Elementwise activation forward ``a = sigma(z)``; returns ``(a, cache)``, cache = (z, name).

    ``activation`` in "sigmoid", "tanh", "relu", "leaky_relu", "identity" (course_lib.activations).

    Taught in: notebooks/06_backpropagation.ipynb
    """
    _check_activation(activation)
    z = V.as_float_array(z, "z")
    V.check_finite(z, "z")
    a, z = _activation_forward_jit(z, activation)
    return a, (z, activation)


def activation_backward(dout, cache):
    """Elementwise activation backward: ``dz = dout * sigma'(z)`` (the Jacobian is diagonal).

    Taught in: notebooks/06_backpropagation.ipynb
    """
    z, activation = _check_cache(cache, "activation", 2)
    _check_activation(activation, "cache[1] (activation)")
    dout = _check_grad_in(dout, tuple(z.shape))
    return _activation_backward_jit(dout, z, activation)


# ---------------------------------------------------------------------- softmax + cross-entropy
def softmax_cross_entropy_forward(logits, labels):
    """Mean cross-entropy of softmax(logits): ``J = -(1/N) sum_n log softmax(z_n)[y_n]``.

    logits (N, C); labels int (N,) or probability rows (N, C). Computed with log-softmax (stable for
    large logits). Returns ``(loss, cache)`` with ``cache = (probs, onehot_targets)``.

    Taught in: notebooks/06_backpropagation.ipynb
    """
    logits = V.as_float_array(logits, "logits")
    V.check_ndim(logits, "logits", 2)
    V.check_finite(logits, "logits")
    labels = _check_labels(labels, logits.shape[0], logits.shape[1])
    return _softmax_ce_forward_jit(logits, labels)


def softmax_cross_entropy_backward(dloss, cache):
    """Backward of softmax + mean cross-entropy: ``dlogits = dloss * (softmax(z) - onehot(y)) / N``.

    Taken together the softmax Jacobian and the log's 1/p cancel to this simple difference; it is
    *not* ``dJ/dp * softmax'(z)`` elementwise (softmax is not elementwise). ``dloss`` is dJ_total/dJ,
    1.0 when J is the final loss.

    Taught in: notebooks/06_backpropagation.ipynb
    """
    probs, target = _check_cache(cache, "softmax_cross_entropy", 2)
    dloss = V.as_float_array(dloss, "dloss", allow_int=True)
    V.check_ndim(dloss, "dloss", 0)
    V.check_finite(dloss, "dloss")
    return _softmax_ce_backward_jit(dloss, (probs, target))


# ---------------------------------------------------------------------------------- whole MLP
def mlp_forward(params, x, activation: str = "relu"):
    """Forward pass of an MLP (:func:`course_lib.layers.mlp_apply`) that also returns the caches.

    Returns ``(logits, caches)``; ``caches[l] = ((a_{l-1}, W_l), z_l)`` (``z_l`` is None for the
    linear output layer).

    Taught in: notebooks/06_backpropagation.ipynb
    """
    sizes = check_mlp_params(params)
    _check_activation(activation)
    x = _check_input(x, sizes[0])
    logits, caches = _mlp_forward_jit(list(params), x, activation)
    return logits, caches


def mlp_backward(dlogits, caches, activation: str = "relu"):
    """Backward pass of an MLP built from the layers' backwards: returns ``[{"W": dW, "b": db}, ...]``.

    Walks the layers from last to first: dense_backward, then (for hidden layers) the activation's
    backward. ``dlogits`` is dJ/dlogits (N, n_L), e.g. from :func:`softmax_cross_entropy_backward`.

    Taught in: notebooks/06_backpropagation.ipynb
    """
    _check_activation(activation)
    if not isinstance(caches, (list, tuple)) or not caches:
        raise TypeError(f"caches must be the list returned by mlp_forward, got {type(caches).__name__}")
    (x_last, W_last), _ = caches[-1]
    dlogits = _check_grad_in(dlogits, (x_last.shape[0], W_last.shape[1]), "dlogits")
    return _mlp_backward_jit(dlogits, list(caches), activation)


def loss_and_grads(params, x, labels, activation: str = "relu"):
    """Softmax cross-entropy loss of an MLP and its gradients, all by hand (no autodiff).

    ``loss, grads = loss_and_grads(params, x, y)`` gives the same numbers as
    ``jax.value_and_grad(lambda p: cross_entropy(mlp_apply(p, x), y))(params)``.

    Taught in: notebooks/06_backpropagation.ipynb
    """
    sizes = check_mlp_params(params)
    _check_activation(activation)
    x = _check_input(x, sizes[0])
    labels = _check_labels(labels, x.shape[0], sizes[-1])
    return _loss_and_grads_jit(list(params), x, labels, activation)


def delta_rule(params, x, labels, activation: str = "relu"):
    """The delta rule written formula by formula (corrected indices of document 001 section 3.2).

    Returns ``(grads, deltas)`` where ``deltas[l-1] = dJ/dz_l`` (N, n_l) for l = 1..L. Same grads as
    :func:`loss_and_grads`, which composes the per-layer backwards instead.

    Taught in: notebooks/06_backpropagation.ipynb
    """
    sizes = check_mlp_params(params)
    _check_activation(activation)
    x = _check_input(x, sizes[0])
    labels = _check_labels(labels, x.shape[0], sizes[-1])
    return _delta_rule_jit(list(params), x, labels, activation)


def gradient_norms(grads):
    """Frobenius norm of each layer's weight gradient, ``[||dJ/dW_1||, ..., ||dJ/dW_L||]`` (numpy).

    Taught in: notebooks/06_backpropagation.ipynb
    """
    check_mlp_params(grads, "grads")
    for l, g in enumerate(grads):
        V.check_finite(g["W"], f"grads[{l}]['W']")
    return np.array([float(jnp.linalg.norm(g["W"])) for g in grads])
