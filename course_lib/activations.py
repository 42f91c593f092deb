"""Activation functions and their derivatives, written from scratch.

Every elementwise activation ``f`` comes with ``f_grad(x) = f'(x)``: the derivative evaluated at the
*pre-activation* ``x`` (not at the output ``f(x)``). Backpropagation multiplies the upstream gradient
by it: ``dx = dout * f_grad(x)``.

Each function checks its input first (a real array without NaN; an axis, a slope) and then computes
its formula, compiled (``_validation.checked``): the body of each function below is the math. They
work inside ``jax.jit``/``jax.grad``/``jax.vmap`` too (there only shapes and dtypes are checked).

Taught in: notebooks/03_neurons_and_activations.ipynb
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from course_lib._validation import (as_float_array, check_axis, check_finite, check_nonempty,
                                    check_number, check_option, checked)

__all__ = [
    "sigmoid", "sigmoid_grad", "tanh", "tanh_grad", "relu", "relu_grad", "leaky_relu",
    "leaky_relu_grad", "identity", "identity_grad", "softmax", "softmax_jacobian", "log_softmax",
    "log_softmax_jacobian", "get", "NAMES",
]

#: Names accepted by :func:`get` (the elementwise activations).
NAMES = ("sigmoid", "tanh", "relu", "leaky_relu", "identity")


# --------------------------------------------------------------------------- argument checks
def _input(x):
    """An activation's input: a real array (ints are cast to float), without NaN or infinity."""
    return check_finite(as_float_array(x, "x", allow_int=True), "x")


def _check_x(x):
    return (_input(x),)


def _check_leaky(x, alpha=0.01):
    return _input(x), check_number(alpha, "alpha", low=0, high=1, high_open=True)


def _check_axis(x, axis=-1):
    x = _input(x)
    axis = check_axis(axis, x)
    return check_nonempty(x, "x", axis), axis


def _check_last_axis(x):
    return (_check_axis(x, -1)[0],)


# --------------------------------------------------------------------------- elementwise
@checked(_check_x)
def sigmoid(x):
    """Logistic sigmoid, elementwise: sigma(x) = 1 / (1 + exp(-x)), values in (0, 1).

    Computed in the overflow-free form 1/(1+e^{-x}) for x >= 0 and e^{x}/(1+e^{x}) for x < 0: with
    e = exp(-|x|) <= 1 nothing overflows, so ``sigmoid(-1e4)`` is 0 and not a NaN. ``x``: any shape;
    returns the same shape.

    Taught in: notebooks/03_neurons_and_activations.ipynb
    """
    e = jnp.exp(-jnp.abs(x))
    return jnp.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


@checked(_check_x)
def sigmoid_grad(x):
    """Derivative of the sigmoid at the pre-activation ``x``: sigma'(x) = sigma(x) (1 - sigma(x)).

    Written as e / (1 + e)^2 with e = exp(-|x|) (sigma' is even), so 1 - sigma(x) is never formed by
    a cancelling subtraction. Its maximum is 1/4 at x = 0 (not 1): a chain of sigmoids multiplies
    gradients by at most 0.25 per layer (times the weights), one reason deep sigmoid networks suffer
    from vanishing gradients.

    Taught in: notebooks/03_neurons_and_activations.ipynb
    """
    e = jnp.exp(-jnp.abs(x))
    return e / (1.0 + e) ** 2


@checked(_check_x)
def tanh(x):
    """Hyperbolic tangent, elementwise: tanh(x) = (e^x - e^-x) / (e^x + e^-x) = 2 sigma(2x) - 1.

    Values in (-1, 1), zero-centred. It saturates like the sigmoid (tanh'(x) -> 0 for large |x|),
    so it does not avoid vanishing gradients; it only shrinks them less (maximum slope 1, not 1/4).

    Taught in: notebooks/03_neurons_and_activations.ipynb
    """
    return jnp.tanh(x)


@checked(_check_x)
def tanh_grad(x):
    """Derivative of tanh at the pre-activation ``x``: tanh'(x) = 1 - tanh(x)^2, maximum 1 at x = 0.

    Written as 4 e / (1 + e)^2 with e = exp(-2|x|): no cancellation for large |x|.

    Taught in: notebooks/03_neurons_and_activations.ipynb
    """
    e = jnp.exp(-2.0 * jnp.abs(x))
    return 4.0 * e / (1.0 + e) ** 2


@checked(_check_x)
def relu(x):
    """Rectified linear unit, elementwise: relu(x) = max(x, 0).

    Written with ``where`` (not ``maximum``) so that ``jax.grad`` gives 0 at x = 0, the convention
    of :func:`relu_grad`.

    Taught in: notebooks/03_neurons_and_activations.ipynb
    """
    return jnp.where(x > 0, x, jnp.zeros_like(x))


@checked(_check_x)
def relu_grad(x):
    """Derivative of ReLU at the pre-activation ``x``: 1 for x > 0, 0 for x < 0.

    ReLU is not differentiable at 0; the convention here (the same as ``jax.grad(jax.nn.relu)``) is
    relu'(0) = 0.

    Taught in: notebooks/03_neurons_and_activations.ipynb
    """
    return jnp.where(x > 0, jnp.ones_like(x), jnp.zeros_like(x))


@checked(_check_leaky)
def leaky_relu(x, alpha=0.01):
    """Leaky ReLU, elementwise: x for x > 0, alpha * x otherwise (``alpha`` in [0, 1)).

    Taught in: notebooks/03_neurons_and_activations.ipynb
    """
    return jnp.where(x > 0, x, alpha * x)


@checked(_check_leaky)
def leaky_relu_grad(x, alpha=0.01):
    """Derivative of leaky ReLU at the pre-activation ``x``: 1 for x > 0, alpha for x < 0.

    At the kink x = 0 the convention is the left slope, alpha, so that ``alpha = 0`` gives exactly
    :func:`relu_grad` (whose value at 0 is 0).

    Taught in: notebooks/03_neurons_and_activations.ipynb
    """
    return jnp.where(x > 0, jnp.ones_like(x), jnp.full_like(x, alpha))


@checked(_check_x)
def identity(x):
    """Identity activation f(x) = x (a linear output layer). Taught in: notebooks/03_neurons_and_activations.ipynb"""
    return x


@checked(_check_x)
def identity_grad(x):
    """Derivative of the identity: 1 everywhere. Taught in: notebooks/03_neurons_and_activations.ipynb"""
    return jnp.ones_like(x)


# --------------------------------------------------------------------------- softmax
@checked(_check_axis, static_argnames="axis")
def softmax(x, axis=-1):
    """Softmax along ``axis``: s_i = exp(x_i) / sum_j exp(x_j).

    Computed as exp(x_i - m) / sum_j exp(x_j - m) with m = max_j x_j: the result is mathematically
    the same (softmax is invariant to adding a constant), but exp never overflows. The outputs are
    positive and sum to 1 along ``axis``, which must not be empty.

    Taught in: notebooks/03_neurons_and_activations.ipynb
    """
    z = x - jax.lax.stop_gradient(jnp.max(x, axis=axis, keepdims=True))
    e = jnp.exp(z)
    return e / jnp.sum(e, axis=axis, keepdims=True)


@checked(_check_axis, static_argnames="axis")
def log_softmax(x, axis=-1):
    """log(softmax(x)) along ``axis``, computed stably: x_i - m - log(sum_j exp(x_j - m)), m = max x.

    Taking ``jnp.log(softmax(x))`` instead gives -inf (and NaN gradients) once a probability
    underflows to 0, e.g. for logits spread by more than ~100 in float32.

    Taught in: notebooks/03_neurons_and_activations.ipynb (used in notebooks/04_loss_functions.ipynb)
    """
    z = x - jax.lax.stop_gradient(jnp.max(x, axis=axis, keepdims=True))
    return z - jnp.log(jnp.sum(jnp.exp(z), axis=axis, keepdims=True))


@checked(_check_last_axis)
def softmax_jacobian(x):
    """Jacobian of the softmax over the last axis: J_ij = d s_i / d x_j = s_i (delta_ij - s_j).

    In matrix form J = diag(s) - s s^T. ``x``: shape (..., n); returns shape (..., n, n) (one n x n
    Jacobian per row). J is symmetric and each row sums to 0.

    Taught in: notebooks/03_neurons_and_activations.ipynb
    """
    s = softmax(x, -1)
    eye = jnp.eye(x.shape[-1], dtype=s.dtype)
    return s[..., :, None] * eye - s[..., :, None] * s[..., None, :]


@checked(_check_last_axis)
def log_softmax_jacobian(x):
    """Jacobian of log_softmax over the last axis: d log s_i / d x_j = delta_ij - s_j.

    In matrix form I - 1 s^T. ``x``: shape (..., n); returns shape (..., n, n).

    Taught in: notebooks/03_neurons_and_activations.ipynb
    """
    s = softmax(x, -1)
    return jnp.eye(x.shape[-1], dtype=s.dtype) - s[..., None, :]


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
    check_option(name, "name", NAMES)
    return _TABLE[name]
