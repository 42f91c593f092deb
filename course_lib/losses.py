"""Loss functions, written from scratch and numerically stable.

Stability choices, each checked by tests for logits of +-1e4:

* cross-entropy works on *logits* through log-softmax (the log-sum-exp trick), never ``log(softmax)``;
* binary cross-entropy from logits uses the softplus form ``max(z, 0) - t z + log(1 + exp(-|z|))``;
* binary cross-entropy from *probabilities* clips them to ``[eps, 1 - eps]`` with ``eps`` the machine
  epsilon of their dtype (2.2e-16 in float64, 1.2e-7 in float32), the same rule as scikit-learn's
  ``log_loss``: a confident wrong prediction costs at most -log(eps) (36.0 in float64, 15.9 in
  float32) instead of infinity. Prefer :func:`binary_cross_entropy_with_logits` for training;
* ``kl_divergence`` uses 0 log(0/q) = 0 and returns ``inf`` where p > 0 but q = 0 (the true value).

``reduction`` is one of "mean" (average over samples), "sum" or "none" (one loss per sample).

Taught in: notebooks/04_loss_functions.ipynb
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from course_lib._validation import (as_float_array, check_axis, check_distribution, check_finite,
                                    check_ndim, check_option, check_probability, check_same_shape,
                                    check_targets, checked)
from course_lib.activations import log_softmax, softmax

__all__ = ["mse", "cross_entropy", "cross_entropy_grad", "binary_cross_entropy",
           "binary_cross_entropy_with_logits", "kl_divergence", "REDUCTIONS"]

REDUCTIONS = ("mean", "sum", "none")


# --------------------------------------------------------------------------- argument checks
def _finite(x, name, allow_int=False):
    return check_finite(as_float_array(x, name, allow_int=allow_int), name)


def _check_mse(pred, target, reduction="mean"):
    pred, target = _finite(pred, "pred"), _finite(target, "target")
    check_same_shape(pred, "pred", target, "target")
    return pred, target, check_option(reduction, "reduction", REDUCTIONS)


def _check_cross_entropy(logits, labels, reduction="mean", allowed=REDUCTIONS):
    logits = check_ndim(_finite(logits, "logits"), "logits", 2)
    labels = check_targets(labels, "labels", *logits.shape)
    return logits, labels, check_option(reduction, "reduction", allowed)


def _check_cross_entropy_grad(logits, labels, reduction="mean"):
    return _check_cross_entropy(logits, labels, reduction, ("mean", "sum"))


def _check_bce(probs, targets, reduction="mean"):
    probs = check_probability(as_float_array(probs, "probs"), "probs")
    targets = check_probability(as_float_array(targets, "targets", allow_int=True), "targets")
    check_same_shape(probs, "probs", targets, "targets")
    return probs, targets, check_option(reduction, "reduction", REDUCTIONS)


def _check_bce_logits(logits, targets, reduction="mean"):
    logits = _finite(logits, "logits")
    targets = check_probability(as_float_array(targets, "targets", allow_int=True), "targets")
    check_same_shape(logits, "logits", targets, "targets")
    return logits, targets, check_option(reduction, "reduction", REDUCTIONS)


def _check_kl(p, q, axis=-1):
    p, q = as_float_array(p, "p"), as_float_array(q, "q")
    check_probability(p, "p"), check_probability(q, "q")
    check_same_shape(p, "p", q, "q")
    axis = check_axis(axis, p, "p")
    return check_distribution(p, "p", axis), check_distribution(q, "q", axis), axis


def _reduce(per_sample, reduction):
    """The mean or the sum of the per-sample losses, or all of them (``"none"``)."""
    if reduction == "mean":
        return jnp.mean(per_sample)
    if reduction == "sum":
        return jnp.sum(per_sample)
    return per_sample


# --------------------------------------------------------------------------- losses
@checked(_check_mse, static_argnames="reduction")
def mse(pred, target, reduction="mean"):
    """Mean squared error: (1/n) sum_i (pred_i - target_i)^2 over all n elements.

    ``pred`` and ``target``: the same shape (any). ``reduction="none"`` returns the elementwise
    squared errors, "sum" their sum. No factor 1/2: some texts write (1/2n) sum(...) so that the
    derivative is (pred - target)/n; it only rescales the gradient (and the learning rate).

    Taught in: notebooks/04_loss_functions.ipynb
    """
    return _reduce((pred - target.astype(pred.dtype)) ** 2, reduction)


@checked(_check_cross_entropy, static_argnames="reduction")
def cross_entropy(logits, labels, reduction="mean"):
    """Softmax cross-entropy from logits: loss_n = -sum_c y_nc log softmax(logits_n)_c.

    ``logits``: (N, C) unnormalised scores. ``labels``: int class indices (N,) (then
    loss_n = -log softmax(logits_n)_{labels_n} = logsumexp(logits_n) - logits_n[labels_n]) or float
    probability rows (N, C) summing to 1 (soft labels, label smoothing). log-softmax is computed with
    the log-sum-exp trick, so the value and its gradient stay finite for logits of +-1e4.

    Natural log, so the unit is nats. Cross-entropy is not entropy: H(y, q) = H(y) + KL(y || q)
    >= H(y), equal to the label entropy H(y) (not 0) when the prediction matches soft labels; it is
    0 only for one-hot labels predicted with certainty, and unbounded above (log C is the loss of the
    uniform prediction, not a maximum). This is the course's one softmax cross-entropy: every other
    module computes it by calling this function.

    Taught in: notebooks/04_loss_functions.ipynb
    """
    logp = log_softmax(logits, -1)
    if jnp.issubdtype(labels.dtype, jnp.integer):
        per_sample = -jnp.take_along_axis(logp, labels[:, None], axis=-1)[:, 0]
    else:   # where: a label probability of 0 contributes 0, whatever log p is
        probs = labels.astype(logits.dtype)
        per_sample = -jnp.sum(jnp.where(probs > 0, probs * logp, 0.0), axis=-1)
    return _reduce(per_sample, reduction)


@checked(_check_cross_entropy_grad, static_argnames="reduction")
def cross_entropy_grad(logits, labels, reduction="mean"):
    """Gradient of :func:`cross_entropy` with respect to the logits: softmax(logits) - y.

    ``y`` is the one-hot encoding of integer labels (or the probability rows). With
    ``reduction="mean"`` (default) the result is divided by N, the number of samples; "sum" is the
    undivided gradient. Shape (N, C), like ``logits``.

    Taught in: notebooks/04_loss_functions.ipynb (derived again in notebooks/06_backpropagation.ipynb)
    """
    if jnp.issubdtype(labels.dtype, jnp.integer):
        labels = jax.nn.one_hot(labels, logits.shape[1], dtype=logits.dtype)
    g = softmax(logits, -1) - labels.astype(logits.dtype)
    return g / logits.shape[0] if reduction == "mean" else g


@checked(_check_bce, static_argnames="reduction")
def binary_cross_entropy(probs, targets, reduction="mean"):
    """Binary cross-entropy from probabilities: -[t log p + (1 - t) log(1 - p)], elementwise.

    ``probs`` in [0, 1] and ``targets`` in [0, 1] (soft targets allowed), the same shape. ``probs``
    are clipped to [eps, 1 - eps], eps = machine epsilon of their dtype (as scikit-learn's
    ``log_loss``), so p = 0 or 1 gives a large finite loss, not inf/NaN. Inside that clip the
    gradient is exact; outside it (p exactly 0 or 1) the gradient with respect to p is 0. For
    training, compute from logits with :func:`binary_cross_entropy_with_logits`.

    Taught in: notebooks/04_loss_functions.ipynb
    """
    t = targets.astype(probs.dtype)
    eps = jnp.finfo(probs.dtype).eps
    p = jnp.clip(probs, eps, 1.0 - eps)
    return _reduce(-(t * jnp.log(p) + (1.0 - t) * jnp.log1p(-p)), reduction)


@checked(_check_bce_logits, static_argnames="reduction")
def binary_cross_entropy_with_logits(logits, targets, reduction="mean"):
    """Binary cross-entropy from logits z: -[t log sigma(z) + (1 - t) log(1 - sigma(z))].

    Computed as softplus(z) - t z = max(z, 0) - t z + log(1 + exp(-|z|)), which never overflows
    (``jax.nn.softplus``; its derivative is sigma(z) everywhere, also at the kink z = 0); the
    gradient is sigma(z) - t. ``logits`` and ``targets`` (in [0, 1]) have the same shape.

    Taught in: notebooks/04_loss_functions.ipynb
    """
    return _reduce(jax.nn.softplus(logits) - targets.astype(logits.dtype) * logits, reduction)


@checked(_check_kl, static_argnames="axis")
def kl_divergence(p, q, axis=-1):
    """Kullback-Leibler divergence KL(p || q) = sum_i p_i log(p_i / q_i) along ``axis``.

    ``p`` and ``q``: probability distributions of the same shape, summing to 1 along ``axis``.
    Conventions: a term with p_i = 0 is 0 (the limit of p log p), whatever q_i is; a term with
    p_i > 0 and q_i = 0 is +inf, so the result is ``inf`` (q gives zero probability to something p
    can produce). KL >= 0, = 0 only when p = q, and it is not symmetric: KL(p||q) != KL(q||p), so it
    is not a distance. Natural log: the unit is nats (divide by log 2 for bits).
    Returns the shape of ``p`` without ``axis``.

    Taught in: notebooks/04_loss_functions.ipynb
    """
    dtype = jnp.result_type(p, q)
    p, q = p.astype(dtype), q.astype(dtype)
    pos = p > 0
    p_safe, q_safe = jnp.where(pos, p, 1.0), jnp.where(pos, q, 1.0)   # q = 0 < p: log 0 = -inf, +inf
    return jnp.sum(jnp.where(pos, p * (jnp.log(p_safe) - jnp.log(q_safe)), 0.0), axis=axis)
