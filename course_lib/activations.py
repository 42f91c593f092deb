"""Activation functions and their derivatives, written from scratch.

Every elementwise activation ``f`` comes with ``f_grad(x) = f'(x)``: the derivative evaluated at the
*pre-activation* ``x`` (not at the output ``f(x)``). Backpropagation multiplies the upstream gradient
by it: ``dx = dout * f_grad(x)``.

Public functions validate their arguments (dtype, NaN, options) and then call a jitted private core,
so they are fast in a loop and still work inside ``jax.jit``/``jax.grad``/``jax.vmap``.

Taught in: notebooks/03_neurons_and_activations.ipynb
"""
from __future__ import annotations

import operator
from functools import partial

import jax
import jax.numpy as jnp

from course_lib._validation import as_float_array, check_finite_np, check_option, is_concrete

__all__ = [
    "sigmoid", "sigmoid_grad", "tanh", "tanh_grad", "relu", "relu_grad", "leaky_relu",
    "leaky_relu_grad", "identity", "identity_grad", "softmax", "softmax_jacobian", "log_softmax",
    "log_softmax_jacobian", "get", "NAMES",
]

#: Names accepted by :func:`get` (the elementwise activations).
NAMES = ("sigmoid", "tanh", "relu", "leaky_relu", "identity")


# --------------------------------------------------------------------------- validation helpers
def _x(x, name="x"):
    """An activation's input: a real array (ints are cast to float), without NaN or infinity."""
    x = as_float_array(x, name, allow_int=True)
    check_finite_np(x, name)
    return x


def _alpha(alpha):
    if isinstance(alpha, bool) or isinstance(alpha, (str, bytes)) or alpha is None:
        raise TypeError(f"alpha must be a real number (the slope for x < 0), got {type(alpha).__name__}")
    if isinstance(alpha, (int, float)):
        alpha = float(alpha)
    else:
        alpha = as_float_array(alpha, "alpha", allow_int=True)
        if jnp.ndim(alpha) != 0:
            raise ValueError(f"alpha must be a scalar, got shape {tuple(jnp.shape(alpha))}")
    if is_concrete(alpha) and not (0.0 <= float(alpha) < 1.0):
        raise ValueError(f"alpha must be a number in [0, 1) (the slope for x < 0), got {float(alpha)!r}")
    return alpha


def _axis(axis, x):
    if isinstance(axis, bool):
        raise TypeError("axis must be an int, got bool")
    if not isinstance(axis, int):
        try:
            axis = operator.index(axis)
        except TypeError:
            raise TypeError(f"axis must be an int, got {type(axis).__name__}") from None
    ndim = jnp.ndim(x)
    if ndim == 0:
        raise ValueError("x must have at least 1 dimension (the axis of classes), got a scalar")
    if not -ndim <= axis < ndim:
        raise ValueError(f"axis must be in [{-ndim}, {ndim - 1}] for x of shape {tuple(jnp.shape(x))}, "
                         f"got {axis}")
    return axis % ndim


def _vector_x(x):
    x = _x(x)
    if jnp.ndim(x) == 0:
        raise ValueError("x must have at least 1 dimension (the last axis holds the n classes), "
                         "got a scalar")
    return x


# --------------------------------------------------------------------------- jitted cores
@jax.jit
def _sigmoid(x):
    # Stable form: with e = exp(-|x|) <= 1 nothing overflows,
    # sigma(x) = 1 / (1 + e) for x >= 0 and e / (1 + e) for x < 0.
    e = jnp.exp(-jnp.abs(x))
    return jnp.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


@jax.jit
def _sigmoid_grad(x):
    # sigma'(x) = sigma(x) (1 - sigma(x)) = e / (1 + e)^2 with e = exp(-|x|) (sigma' is even).
    # Written this way, 1 - sigma(x) is never formed by a cancelling subtraction.
    e = jnp.exp(-jnp.abs(x))
    return e / (1.0 + e) ** 2


@jax.jit
def _tanh(x):
    return jnp.tanh(x)


@jax.jit
def _tanh_grad(x):
    # tanh'(x) = 1 - tanh(x)^2 = 4 e / (1 + e)^2 with e = exp(-2|x|): no cancellation for large |x|.
    e = jnp.exp(-2.0 * jnp.abs(x))
    return 4.0 * e / (1.0 + e) ** 2


@jax.jit
def _relu(x):
    # where (not maximum): autodiff then gives 0 at x = 0, the same convention as relu_grad
    return jnp.where(x > 0, x, jnp.zeros_like(x))


@jax.jit
def _relu_grad(x):
    return jnp.where(x > 0, jnp.ones_like(x), jnp.zeros_like(x))


@jax.jit
def _leaky_relu(x, alpha):
    return jnp.where(x > 0, x, alpha * x)


@jax.jit
def _leaky_relu_grad(x, alpha):
    return jnp.where(x > 0, jnp.ones_like(x), jnp.full_like(x, alpha))


@jax.jit
def _identity(x):
    return x


@jax.jit
def _identity_grad(x):
    return jnp.ones_like(x)


@partial(jax.jit, static_argnames="axis")
def _softmax(x, axis):
    z = x - jax.lax.stop_gradient(jnp.max(x, axis=axis, keepdims=True))
    e = jnp.exp(z)
    return e / jnp.sum(e, axis=axis, keepdims=True)


@partial(jax.jit, static_argnames="axis")
def _log_softmax(x, axis):
    z = x - jax.lax.stop_gradient(jnp.max(x, axis=axis, keepdims=True))
    return z - jnp.log(jnp.sum(jnp.exp(z), axis=axis, keepdims=True))


@jax.jit
def _softmax_jacobian(x):
    s = _softmax(x, -1)
    eye = jnp.eye(x.shape[-1], dtype=s.dtype)
    return s[..., :, None] * eye - s[..., :, None] * s[..., None, :]


@jax.jit
def _log_softmax_jacobian(x):
    s = _softmax(x, -1)
    eye = jnp.eye(x.shape[-1], dtype=s.dtype)
    return eye - s[..., None, :]


# --------------------------------------------------------------------------- public functions
def sigmoid(x):
    """Logistic sigmoid, elementwise: sigma(x) = 1 / (1 + exp(-x)), values in (0, 1).

    Computed in the overflow-free form 1/(1+e^{-x}) for x >= 0 and e^{x}/(1+e^{x}) for x < 0, so
    ``sigmoid(-1e4)`` is 0 and not a NaN. ``x``: any shape; returns the same shape.

    Taught in: notebooks/03_neurons_and_activations.ipynb
    """
    return _sigmoid(_x(x))


def sigmoid_grad(x):
    """Derivative of the sigmoid at the pre-activation ``x``: sigma'(x) = sigma(x) (1 - sigma(x)).

    Its maximum is 1/4 at x = 0 (not 1): a chain of sigmoids multiplies gradients by at most 0.25 per
    layer, one reason deep sigmoid networks suffer from vanishing gradients.

    Taught in: notebooks/03_neurons_and_activations.ipynb
    """
    return _sigmoid_grad(_x(x))


def tanh(x):
    """Hyperbolic tangent, elementwise: tanh(x) = (e^x - e^-x) / (e^x + e^-x) = 2 sigma(2x) - 1.

    Values in (-1, 1), zero-centred. It saturates like the sigmoid (tanh'(x) -> 0 for large |x|),
    so it does not avoid vanishing gradients; it only shrinks them less (maximum slope 1, not 1/4).

    Taught in: notebooks/03_neurons_and_activations.ipynb
    """
    return _tanh(_x(x))


def tanh_grad(x):
    """Derivative of tanh at the pre-activation ``x``: tanh'(x) = 1 - tanh(x)^2, maximum 1 at x = 0.

    Taught in: notebooks/03_neurons_and_activations.ipynb
    """
    return _tanh_grad(_x(x))


def relu(x):
    """Rectified linear unit, elementwise: relu(x) = max(x, 0).

    Taught in: notebooks/03_neurons_and_activations.ipynb
    """
    return _relu(_x(x))


def relu_grad(x):
    """Derivative of ReLU at the pre-activation ``x``: 1 for x > 0, 0 for x < 0.

    ReLU is not differentiable at 0; the convention here (the same as ``jax.grad(jax.nn.relu)``) is
    relu'(0) = 0.

    Taught in: notebooks/03_neurons_and_activations.ipynb
    """
    return _relu_grad(_x(x))


def leaky_relu(x, alpha=0.01):
    """Leaky ReLU, elementwise: x for x > 0, alpha * x otherwise (``alpha`` in [0, 1)).

    Taught in: notebooks/03_neurons_and_activations.ipynb
    """
    return _leaky_relu(_x(x), _alpha(alpha))


def leaky_relu_grad(x, alpha=0.01):
    """Derivative of leaky ReLU at the pre-activation ``x``: 1 for x > 0, alpha for x < 0.

    At the kink x = 0 the convention is the left slope, alpha, so that ``alpha = 0`` gives exactly
    :func:`relu_grad` (whose value at 0 is 0).

    Taught in: notebooks/03_neurons_and_activations.ipynb
    """
    return _leaky_relu_grad(_x(x), _alpha(alpha))


def identity(x):
    """Identity activation f(x) = x (a linear output layer). Taught in: notebooks/03_neurons_and_activations.ipynb"""
    return _identity(_x(x))


def identity_grad(x):
    """Derivative of the identity: 1 everywhere. Taught in: notebooks/03_neurons_and_activations.ipynb"""
    return _identity_grad(_x(x))


def softmax(x, axis=-1):
    """Softmax along ``axis``: s_i = exp(x_i) / sum_j exp(x_j).

    Computed as exp(x_i - m) / sum_j exp(x_j - m) with m = max_j x_j: the result is mathematically
    the same (softmax is invariant to adding a constant), but exp never overflows. The outputs are
    positive and sum to 1 along ``axis``.

    Taught in: notebooks/03_neurons_and_activations.ipynb
    """
    x = _x(x)
    return _softmax(x, _axis(axis, x))


def log_softmax(x, axis=-1):
    """log(softmax(x)) along ``axis``, computed stably: x_i - m - log(sum_j exp(x_j - m)), m = max x.

    Taking ``jnp.log(softmax(x))`` instead gives -inf (and NaN gradients) once a probability
    underflows to 0, e.g. for logits spread by more than ~100 in float32.

    Taught in: notebooks/03_neurons_and_activations.ipynb (used in notebooks/04_loss_functions.ipynb)
    """
    x = _x(x)
    return _log_softmax(x, _axis(axis, x))


def softmax_jacobian(x):
    """Jacobian of the softmax over the last axis: J_ij = d s_i / d x_j = s_i (delta_ij - s_j).

    In matrix form J = diag(s) - s s^T. ``x``: shape (..., n); returns shape (..., n, n) (one n x n
    Jacobian per row). J is symmetric and each row sums to 0.

    Taught in: notebooks/03_neurons_and_activations.ipynb
    """
    return _softmax_jacobian(_vector_x(x))


def log_softmax_jacobian(x):
    """Jacobian of log_softmax over the last axis: d log s_i / d x_j = delta_ij - s_j.

    In matrix form I - 1 s^T. ``x``: shape (..., n); returns shape (..., n, n).

    Taught in: notebooks/03_neurons_and_activations.ipynb
    """
    return _log_softmax_jacobian(_vector_x(x))


_TABLE = {
    "sigmoid": (sigmoid, sigmoid_grad),
    "tanh": (tanh, tanh_grad),
    "relu": (relu, relu_grad),
    "leaky_relu": (leaky_relu, leaky_relu_grad),
    "identity": (identity, identity_grad),
}


def get(name):
    """Return ``(f, f_grad)`` for an elementwise activation by name.

    ``name`` is one of "sigmoid", "tanh", "relu", "leaky_relu", "identity". ``f_grad(x)`` is the
    derivative at the pre-activation ``x``.

    Taught in: notebooks/03_neurons_and_activations.ipynb
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a string naming an activation, got {type(name).__name__}")
    check_option(name, "name", NAMES)
    return _TABLE[name]
