"""Training deep networks: batch normalization, layer normalization and residual connections.

**Batch normalization** (Ioffe & Szegedy 2015) of a batch ``x (N, D)``, feature by feature, over
the N rows (训练模式, training mode)::

    mu = (1/N) sum_n x_n      var = (1/N) sum_n (x_n - mu)^2      xhat = (x - mu) / sqrt(var + eps)
    y = gamma * xhat + beta                                       (gamma, beta: (D,), learned)
    running <- momentum * running + (1 - momentum) * (mu, var)    (kept for evaluation)

In evaluation mode the running averages replace the batch's mu and var, so an example's output no
longer depends on the other examples of its batch.

**Layer normalization** (Ba, Kiros & Hinton 2016): the same formulas per example, over its D
features (the last axis); no running statistics, identical in training and evaluation.

**Backward**, for both (M = number of values averaged: N for batch norm, D for layer norm; sums over
the normalized axis)::

    dxhat = dy * gamma
    dx = inv_std / M * (M * dxhat - sum(dxhat) - xhat * sum(dxhat * xhat))
    dgamma = sum of dy * xhat,   dbeta = sum of dy      (over every axis but the features)

The two subtracted terms are the paths through mu and var: every x_n moves the statistics that
normalize all the others. (In evaluation mode mu and var are constants: ``dx = dxhat * inv_std``.)

**Residual connection** (He et al. 2016): ``h_l = h_{l-1} + F(h_{l-1})``, so
``dJ/dh_{l-1} = dJ/dh_l (I + dF/dh_{l-1})``: the identity carries the gradient past every block.

Taught in: notebooks/17_training_deep_networks.ipynb
"""
from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from . import _validation as V
from . import optim
from .losses import cross_entropy

__all__ = ["NETWORKS", "ACTIVATIONS",
           "normalize", "normalize_backward", "init_batchnorm_state", "batchnorm_forward", "batchnorm_backward",
           "layernorm_forward", "layernorm_backward",
           "init_deep_mlp", "hidden_block", "deep_mlp_forward", "fit_deep_mlps", "evaluate_deep_mlps"]

NETWORKS = ("plain", "batchnorm", "residual", "residual+layernorm")
ACTIVATIONS = {"relu": jax.nn.relu, "tanh": jnp.tanh, "sigmoid": jax.nn.sigmoid}


# ----------------------------------------------------------------------------------- validation
def _features(x, name, n_features=None, ndim=None):
    x = V.as_float_array(x, name)
    if ndim is not None:
        V.check_ndim(x, name, ndim)
    elif x.ndim < 1:
        raise ValueError(f"{name} must have at least 1 dimension (features last), got a scalar")
    if n_features is not None and x.shape[-1] != n_features:
        raise ValueError(f"{name} must have {n_features} features (last axis), got shape {tuple(x.shape)}")
    return V.check_finite(x, name)


def _affine(gamma, beta, d):
    gamma = V.check_finite(V.check_shape(V.as_float_array(gamma, "gamma"), "gamma", (d,)), "gamma")
    beta = V.check_finite(V.check_shape(V.as_float_array(beta, "beta"), "beta", (d,)), "beta")
    return gamma, beta


def _check_eps(eps):
    return V.check_number(eps, "eps", low=0, low_open=True)


# ---------------------------------------------------------------------------- the shared maths
def normalize(x, axis, eps=1e-5):
    """``xhat = (x - mean) / sqrt(var + eps)`` over ``axis`` (0: batch norm, -1: layer norm).

    Returns ``(xhat, inv_std, mean, var)``, the statistics with ``axis`` kept (size 1).

    Taught in: notebooks/17_training_deep_networks.ipynb
    """
    x = _features(x, "x")
    axis, eps = V.check_axis(axis, x), _check_eps(eps)
    mu = jnp.mean(x, axis=axis, keepdims=True)
    var = jnp.mean((x - mu) ** 2, axis=axis, keepdims=True)     # the biased (1/M) variance
    inv_std = 1.0 / jnp.sqrt(var + eps)
    return (x - mu) * inv_std, inv_std, mu, var


def normalize_backward(dxhat, xhat, inv_std, axis):
    """dJ/dx of :func:`normalize`, from dJ/dxhat: with M the size of ``axis`` and sums over it,
    ``dx = inv_std / M * (M dxhat - sum(dxhat) - xhat * sum(dxhat * xhat))``.

    Taught in: notebooks/17_training_deep_networks.ipynb
    """
    dxhat = _features(dxhat, "dxhat")
    xhat = V.check_shape(V.as_float_array(xhat, "xhat"), "xhat", tuple(dxhat.shape))
    axis = V.check_axis(axis, dxhat, "dxhat")
    m = dxhat.shape[axis]
    return inv_std / m * (m * dxhat - jnp.sum(dxhat, axis=axis, keepdims=True)
                          - xhat * jnp.sum(dxhat * xhat, axis=axis, keepdims=True))


# ------------------------------------------------------------------------------ batch normalization
def init_batchnorm_state(n_features, dtype="float32"):
    """Running statistics before any training step: ``{"mean": zeros (D,), "var": ones (D,)}``."""
    d = V.check_int(n_features, "n_features", minimum=1)
    return {"mean": jnp.zeros(d, dtype), "var": jnp.ones(d, dtype)}


def _check_batchnorm(x, gamma, beta, state, train, momentum):
    x = _features(x, "x", ndim=2)
    gamma, beta = _affine(gamma, beta, x.shape[1])
    if not isinstance(state, dict) or set(state) != {"mean", "var"}:
        raise TypeError("state must be a dict with keys 'mean' and 'var' (init_batchnorm_state)")
    mean = V.check_shape(V.as_float_array(state["mean"], "state['mean']"), "state['mean']", (x.shape[1],))
    var = V.check_shape(V.as_float_array(state["var"], "state['var']"), "state['var']", (x.shape[1],))
    V.check_finite(var, "state['var']")
    if not isinstance(train, (bool, np.bool_)):
        raise TypeError(f"train must be True or False, got {type(train).__name__}")
    if train and x.shape[0] < 2:
        raise ValueError(f"x must hold at least 2 rows in training mode (a batch statistic of one row "
                         f"is the row itself), got shape {tuple(x.shape)}")
    V.check_probability(momentum, "momentum")
    return x, gamma, beta, {"mean": mean, "var": var}


def batchnorm_forward(x, gamma, beta, state, *, train=True, momentum=0.9, eps=1e-5):
    """Batch normalization of ``x (N, D)`` over its rows; returns ``(y, cache, new_state)``.

    ``state``: running ``{"mean": (D,), "var": (D,)}`` (see :func:`init_batchnorm_state`).
    ``train=True`` normalizes with the batch's statistics and moves the running ones towards them
    (``new_state``); ``train=False`` normalizes with the running statistics and returns ``state``
    unchanged. Formulas in the module docstring.

    Taught in: notebooks/17_training_deep_networks.ipynb
    """
    x, gamma, beta, state = _check_batchnorm(x, gamma, beta, state, train, momentum)
    if train:
        xhat, inv_std, mu, var = normalize(x, 0, eps)
        state = {"mean": momentum * state["mean"] + (1 - momentum) * mu[0],
                 "var": momentum * state["var"] + (1 - momentum) * var[0]}
    else:                                          # evaluation: the running statistics, constants
        inv_std = 1.0 / jnp.sqrt(state["var"] + _check_eps(eps))
        xhat = (x - state["mean"]) * inv_std
    return gamma * xhat + beta, (xhat, inv_std, gamma, bool(train)), state


def batchnorm_backward(dy, cache):
    """Backward of :func:`batchnorm_forward`: ``(dx, dgamma, dbeta)`` from ``dy = dJ/dy (N, D)``.

    Taught in: notebooks/17_training_deep_networks.ipynb
    """
    xhat, inv_std, gamma, train = V.check_cache(cache, "cache", "batchnorm_forward", 4)
    dy = V.check_shape(_features(dy, "dy", ndim=2), "dy", tuple(xhat.shape))
    dxhat = dy * gamma
    dx = normalize_backward(dxhat, xhat, inv_std, 0) if train else dxhat * inv_std
    return dx, jnp.sum(dy * xhat, axis=0), jnp.sum(dy, axis=0)


# ------------------------------------------------------------------------------ layer normalization
def layernorm_forward(x, gamma, beta, *, eps=1e-5):
    """Layer normalization of ``x (..., D)`` over its last axis; returns ``(y, cache)``.

    Each example (row, or token in ``(B, T, D)``) is normalized on its own: no batch statistics, so
    training and evaluation are the same computation.

    Taught in: notebooks/17_training_deep_networks.ipynb
    """
    x = _features(x, "x")
    gamma, beta = _affine(gamma, beta, x.shape[-1])
    xhat, inv_std, _, _ = normalize(x, -1, eps)
    return gamma * xhat + beta, (xhat, inv_std, gamma)


def layernorm_backward(dy, cache):
    """Backward of :func:`layernorm_forward`: ``(dx, dgamma, dbeta)``.

    Taught in: notebooks/17_training_deep_networks.ipynb
    """
    xhat, inv_std, gamma = V.check_cache(cache, "cache", "layernorm_forward", 3)
    dy = V.check_shape(_features(dy, "dy"), "dy", tuple(xhat.shape))
    rows = tuple(range(dy.ndim - 1))                       # every axis but the features
    dx = normalize_backward(dy * gamma, xhat, inv_std, -1)
    return dx, jnp.sum(dy * xhat, axis=rows), jnp.sum(dy, axis=rows)


# ------------------------------------------------------------------------- deep networks to compare
def init_deep_mlp(n_in, width, depth, n_out, network, *, activation="relu", scale=None, seed=0):
    """Parameters and batch-norm state of a deep MLP of ``depth`` hidden blocks of ``width`` units.

    Weights of the blocks ~ N(0, s^2 / width), stacked as ``W (depth, width, width)``;
    ``s = scale`` or, by default, He's sqrt(2) for ReLU and 1 for tanh/sigmoid. A ``"residual"``
    network (no normalization) divides its blocks' s by sqrt(depth): each block adds its branch to
    the stream, so unscaled branches would make the stream's variance grow geometrically. Returns
    ``(params, state)``, float32, drawn with NumPy (same seed, same numbers).

    Taught in: notebooks/17_training_deep_networks.ipynb
    """
    n_in, width, n_out, depth = (V.check_int(v, name, minimum=1) for v, name in
                                 ((n_in, "n_in"), (width, "width"), (n_out, "n_out"), (depth, "depth")))
    V.check_option(network, "network", NETWORKS)
    V.check_option(activation, "activation", tuple(ACTIVATIONS))
    s = ((np.sqrt(2.0) if activation == "relu" else 1.0) if scale is None
         else V.check_number(scale, "scale", low=0, low_open=True))
    if network == "residual":
        s /= np.sqrt(depth)
    rng = np.random.default_rng(V.check_int(seed, "seed", minimum=0))
    params = {"W_in": rng.standard_normal((n_in, width)) / np.sqrt(n_in), "b_in": np.zeros(width),
              "W": rng.standard_normal((depth, width, width)) * s / np.sqrt(width),
              "b": np.zeros((depth, width)), "gamma": np.ones((depth, width)), "beta": np.zeros((depth, width)),
              "W_out": rng.standard_normal((width, n_out)) / np.sqrt(width), "b_out": np.zeros(n_out)}
    state = {"mean": np.zeros((depth, width)), "var": np.ones((depth, width))}
    as32 = lambda tree: {k: jnp.asarray(v, jnp.float32) for k, v in tree.items()}  # noqa: E731
    return as32(params), as32(state)


def hidden_block(h, W, b, gamma, beta, stats, network, *, activation="relu", train=True):
    """One hidden block of the deep MLPs; returns ``(new h, new batch-norm stats)``.

    ``h (N, width)``; ``W (width, width)``, ``b``, ``gamma``, ``beta`` ``(width,)``; ``stats`` the
    block's running ``{"mean", "var"}`` (used by "batchnorm" only, returned unchanged otherwise).
    ``activation``: a name of ``ACTIVATIONS`` or an elementwise function.

    Taught in: notebooks/17_training_deep_networks.ipynb
    """
    V.check_option(network, "network", NETWORKS)
    if not callable(activation):
        V.check_option(activation, "activation", tuple(ACTIVATIONS))
    f = activation if callable(activation) else ACTIVATIONS[activation]
    if network == "plain":
        return f(h @ W + b), stats
    if network == "batchnorm":                 # no bias: the mean subtraction would cancel it
        z, _, stats = batchnorm_forward(h @ W, gamma, beta, stats, train=train)
        return f(z), stats
    if network == "residual":                  # h + F(h), F(h) = f(h) W + b
        return h + f(h) @ W + b, stats
    u, _ = layernorm_forward(h, gamma, beta)   # "residual+layernorm": h + f(LN(h)) W + b
    return h + f(u) @ W + b, stats


def _deep_forward(params, state, x, network, activation, train):
    h = ACTIVATIONS[activation](x @ params["W_in"] + params["b_in"])

    def step(h, layer):
        return hidden_block(h, *layer, network, activation=activation, train=train)

    layers = (params["W"], params["b"], params["gamma"], params["beta"], state)
    h, stats = jax.lax.scan(step, h, layers)
    return h @ params["W_out"] + params["b_out"], stats


def _check_deep(params, state, x):
    if not isinstance(params, dict) or not {"W_in", "W", "W_out"} <= set(params):
        raise TypeError("params must be the dict returned by init_deep_mlp")
    if not isinstance(state, dict) or set(state) != {"mean", "var"}:
        raise TypeError("state must be the dict returned by init_deep_mlp")
    return _features(x, "x", jnp.shape(params["W_in"])[-2], ndim=2)


def deep_mlp_forward(params, state, x, network, *, activation="relu", train=True):
    """Logits ``(N, n_out)`` of the deep MLP and the new batch-norm state: ``(logits, state)``.

    ``network`` (one of ``NETWORKS``) chooses the hidden block, for a stream h of ``width`` units:
    ``"plain"`` f(h W + b); ``"batchnorm"`` f(BN(h W)); ``"residual"`` h + f(h) W + b;
    ``"residual+layernorm"`` h + f(LN(h)) W + b (the "pre-norm" block of chapter 18's transformer).

    Taught in: notebooks/17_training_deep_networks.ipynb
    """
    x = _check_deep(params, state, x)
    V.check_option(network, "network", NETWORKS)
    V.check_option(activation, "activation", tuple(ACTIVATIONS))
    return _deep_forward_jit(params, state, x, network, activation, bool(train))


_deep_forward_jit = jax.jit(_deep_forward, static_argnames=("network", "activation", "train"))


def _fit_one(params, state, X, y, batches, network, activation, learning_rate):
    opt = optim.adam(learning_rate)

    def loss_fn(p, s, xb, yb):
        logits, s = _deep_forward(p, s, xb, network, activation, True)
        return cross_entropy(logits, yb), s

    def step(carry, idx):
        p, s, opt_state = carry
        (loss, s), grads = jax.value_and_grad(loss_fn, has_aux=True)(p, s, X[idx], y[idx])
        updates, opt_state = opt.update(grads, opt_state, p)
        return (optim.apply_updates(p, updates), s, opt_state), loss

    (params, state, _), losses = jax.lax.scan(step, (params, state, opt.init(params)), batches)
    return params, state, losses


@partial(jax.jit, static_argnames=("network", "activation", "learning_rate"))
def _fit_many(params, state, X, y, batches, network, activation, learning_rate):
    one = partial(_fit_one, network=network, activation=activation, learning_rate=learning_rate)
    return jax.vmap(one, in_axes=(0, 0, None, None, 0))(params, state, X, y, batches)


def fit_deep_mlps(params, state, X, y, batches, network, *, activation="relu", learning_rate=1e-3):
    """Train S deep MLPs at once (one per seed; ``params``/``state`` stacked on a leading axis of
    size S) with Adam, one compiled call. ``batches (S, steps, B)``: row indices of ``X`` for every
    step of every run. Returns ``(params, state, losses (S, steps))``.

    Taught in: notebooks/17_training_deep_networks.ipynb
    """
    X = _features(X, "X", ndim=2)
    y = V.as_int_array(y, "y")
    V.check_shape(y, "y", (X.shape[0],))
    batches = V.as_int_array(batches, "batches")
    V.check_ndim(batches, "batches", 3)
    if V.is_concrete(batches) and (np.min(np.asarray(batches)) < 0 or np.max(np.asarray(batches)) >= X.shape[0]):
        raise ValueError(f"batches must hold row indices in [0, {X.shape[0]})")
    V.check_option(network, "network", NETWORKS)
    V.check_option(activation, "activation", tuple(ACTIVATIONS))
    V.check_number(learning_rate, "learning_rate", low=0, low_open=True)
    return _fit_many(params, state, X, y, batches, network, activation, float(learning_rate))


@partial(jax.jit, static_argnames=("network", "activation"))
def _evaluate_many(params, state, X, y, network, activation):
    def one(p, s):
        logits, _ = _deep_forward(p, s, X, network, activation, False)
        return (cross_entropy(logits, y),
                jnp.mean(jnp.argmax(logits, axis=1) == y))
    return jax.vmap(one)(params, state)


def evaluate_deep_mlps(params, state, X, y, network, *, activation="relu"):
    """Loss and accuracy of S stacked deep MLPs on ``(X, y)``, in evaluation mode (batch norm uses
    its running statistics): ``(losses (S,), accuracies (S,))``.

    Taught in: notebooks/17_training_deep_networks.ipynb
    """
    X = _features(X, "X", ndim=2)
    y = V.check_shape(V.as_int_array(y, "y"), "y", (X.shape[0],))
    V.check_option(network, "network", NETWORKS)
    V.check_option(activation, "activation", tuple(ACTIVATIONS))
    return _evaluate_many(params, state, X, y, network, activation)
