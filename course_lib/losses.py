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

from functools import partial

import jax
import jax.numpy as jnp

import numpy as np

from course_lib._validation import (as_float_array, check_finite_np, check_option,
                                    check_probability_np, check_same_shape, is_concrete)

__all__ = ["mse", "cross_entropy", "cross_entropy_grad", "binary_cross_entropy",
           "binary_cross_entropy_with_logits", "kl_divergence", "REDUCTIONS"]

REDUCTIONS = ("mean", "sum", "none")

#: Rows of probability labels / distributions must sum to 1 within this tolerance (float32 safe).
_SUM_TOL = 1e-3


# --------------------------------------------------------------------------- validation helpers
def _reduction(reduction, allowed=REDUCTIONS):
    if not isinstance(reduction, str):
        raise TypeError(f"reduction must be a string, one of {', '.join(map(repr, allowed))}; "
                        f"got {type(reduction).__name__}")
    return check_option(reduction, "reduction", allowed)


def _float(x, name):
    x = as_float_array(x, name)
    check_finite_np(x, name)
    return x


def _check_rows_sum_to_one(p, name, axis=-1):
    if is_concrete(p) and p.size:
        total = np.asarray(p, dtype=np.float64).sum(axis=axis)
        worst = float(np.max(np.abs(total - 1.0)))
        if worst > _SUM_TOL:
            raise ValueError(f"{name} must be probability distributions summing to 1 along axis "
                             f"{axis}; the worst sum is off by {worst:.3g}")


def _logits_and_labels(logits, labels):
    """Validate (logits (N, C), labels int (N,) or probability rows (N, C)); return them + kind."""
    logits = _float(logits, "logits")
    if jnp.ndim(logits) != 2:
        raise ValueError(f"logits must have 2 dimension(s) (N samples, C classes), "
                         f"got shape {tuple(jnp.shape(logits))}")
    n, c = logits.shape
    if isinstance(labels, (str, bytes)) or labels is None:
        raise TypeError(f"labels must be an integer array (N,) of class indices or a float array "
                        f"(N, C) of probabilities, got {type(labels).__name__}")
    dtype = labels.dtype if hasattr(labels, "dtype") else jnp.asarray(labels).dtype
    if jnp.issubdtype(dtype, jnp.integer):
        labels = jnp.asarray(labels)
        if labels.shape != (n,):
            raise ValueError(f"labels of integer class indices must have shape ({n},) to match "
                             f"logits of shape {(n, c)}, got {tuple(labels.shape)}")
        if is_concrete(labels) and n:
            lo, hi = int(np.min(np.asarray(labels))), int(np.max(np.asarray(labels)))
            if lo < 0 or hi >= c:
                raise ValueError(f"labels must be class indices in [0, {c - 1}], got values from "
                                 f"{lo} to {hi}")
        return logits, labels, "index"
    if jnp.issubdtype(dtype, jnp.floating):
        labels = jnp.asarray(labels)
        if labels.shape != (n, c):
            raise ValueError(f"labels of class probabilities must have the shape of logits {(n, c)}, "
                             f"got {tuple(labels.shape)}; integer class indices need an integer dtype")
        check_probability_np(labels, "labels")
        _check_rows_sum_to_one(labels, "labels")
        return logits, labels, "prob"
    raise TypeError(f"labels must be an integer array (N,) of class indices or a float array (N, C) "
                    f"of probabilities, got dtype {dtype}")


# --------------------------------------------------------------------------- jitted cores
def _reduce(per_sample, reduction):
    if reduction == "mean":
        return jnp.mean(per_sample)
    if reduction == "sum":
        return jnp.sum(per_sample)
    return per_sample


@partial(jax.jit, static_argnames="reduction")
def _mse(pred, target, reduction):
    return _reduce((pred - target.astype(pred.dtype)) ** 2, reduction)


def _log_softmax(logits):
    m = jax.lax.stop_gradient(jnp.max(logits, axis=-1, keepdims=True))
    z = logits - m
    return z - jnp.log(jnp.sum(jnp.exp(z), axis=-1, keepdims=True))


@partial(jax.jit, static_argnames="reduction")
def _ce_index(logits, labels, reduction):
    logp = _log_softmax(logits)
    per_sample = -jnp.take_along_axis(logp, labels[:, None], axis=-1)[:, 0]
    return _reduce(per_sample, reduction)


@partial(jax.jit, static_argnames="reduction")
def _ce_prob(logits, probs, reduction):
    probs = probs.astype(logits.dtype)
    logp = _log_softmax(logits)
    # where: 0 * log p = 0 even if log p were -inf (it is not, log-softmax is finite for finite logits)
    per_sample = -jnp.sum(jnp.where(probs > 0, probs * logp, 0.0), axis=-1)
    return _reduce(per_sample, reduction)


@partial(jax.jit, static_argnames="reduction")
def _ce_grad(logits, targets, reduction):
    if jnp.issubdtype(targets.dtype, jnp.integer):
        targets = jax.nn.one_hot(targets, logits.shape[1], dtype=logits.dtype)
    targets = targets.astype(logits.dtype)
    m = jnp.max(logits, axis=-1, keepdims=True)
    e = jnp.exp(logits - m)
    g = e / jnp.sum(e, axis=-1, keepdims=True) - targets
    return g / logits.shape[0] if reduction == "mean" else g


@partial(jax.jit, static_argnames="reduction")
def _bce(probs, targets, reduction):
    targets = targets.astype(probs.dtype)
    eps = jnp.finfo(probs.dtype).eps
    p = jnp.clip(probs, eps, 1.0 - eps)
    return _reduce(-(targets * jnp.log(p) + (1.0 - targets) * jnp.log1p(-p)), reduction)


@partial(jax.jit, static_argnames="reduction")
def _bce_logits(logits, targets, reduction):
    # -[t log sigma(z) + (1-t) log(1 - sigma(z))] = softplus(z) - t z, with the stable
    # softplus(z) = log(1 + e^z) = max(z, 0) + log(1 + e^-|z|) (jax.nn.softplus; its derivative
    # is sigma(z) everywhere, also at the kink z = 0 of max and |.|)
    loss = jax.nn.softplus(logits) - targets * logits
    return _reduce(loss, reduction)


@partial(jax.jit, static_argnames="axis")
def _kl(p, q, axis):
    pos = p > 0
    p_safe = jnp.where(pos, p, 1.0)
    q_safe = jnp.where(pos, q, 1.0)  # where q = 0 < p: log 0 = -inf, so the term is +inf (true value)
    return jnp.sum(jnp.where(pos, p * (jnp.log(p_safe) - jnp.log(q_safe)), 0.0), axis=axis)


# --------------------------------------------------------------------------- public functions
def mse(pred, target, reduction="mean"):
    """Mean squared error: (1/n) sum_i (pred_i - target_i)^2 over all n elements.

    ``pred`` and ``target``: the same shape (any). ``reduction="none"`` returns the elementwise
    squared errors, "sum" their sum. No factor 1/2: some texts write (1/2n) sum(...) so that the
    derivative is (pred - target)/n; it only rescales the gradient (and the learning rate).

    Taught in: notebooks/04_loss_functions.ipynb
    """
    reduction = _reduction(reduction)
    pred = _float(pred, "pred")
    target = _float(target, "target")
    check_same_shape(pred, "pred", target, "target")
    return _mse(pred, target, reduction)


def cross_entropy(logits, labels, reduction="mean"):
    """Softmax cross-entropy from logits: loss_n = -sum_c y_nc log softmax(logits_n)_c.

    ``logits``: (N, C) unnormalised scores. ``labels``: int class indices (N,) (then
    loss_n = -log softmax(logits_n)_{labels_n} = logsumexp(logits_n) - logits_n[labels_n]) or float
    probability rows (N, C) summing to 1 (soft labels, label smoothing). log-softmax is computed with
    the log-sum-exp trick, so the value and its gradient stay finite for logits of +-1e4.

    Natural log, so the unit is nats. Cross-entropy is not entropy: H(y, q) = H(y) + KL(y || q)
    >= H(y), equal to the label entropy H(y) (not 0) when the prediction matches soft labels; it is
    0 only for one-hot labels predicted with certainty, and unbounded above (log C is the loss of the
    uniform prediction, not a maximum).

    Taught in: notebooks/04_loss_functions.ipynb
    """
    reduction = _reduction(reduction)
    logits, labels, kind = _logits_and_labels(logits, labels)
    if kind == "index":
        return _ce_index(logits, labels, reduction)
    return _ce_prob(logits, labels, reduction)


def cross_entropy_grad(logits, labels, reduction="mean"):
    """Gradient of :func:`cross_entropy` with respect to the logits: softmax(logits) - y.

    ``y`` is the one-hot encoding of integer labels (or the probability rows). With
    ``reduction="mean"`` (default) the result is divided by N, the number of samples; "sum" is the
    undivided gradient. Shape (N, C), like ``logits``.

    Taught in: notebooks/04_loss_functions.ipynb (derived again in notebooks/06_backpropagation.ipynb)
    """
    reduction = _reduction(reduction, ("mean", "sum"))
    logits, labels, _ = _logits_and_labels(logits, labels)
    return _ce_grad(logits, labels, reduction)


def binary_cross_entropy(probs, targets, reduction="mean"):
    """Binary cross-entropy from probabilities: -[t log p + (1 - t) log(1 - p)], elementwise.

    ``probs`` in [0, 1] and ``targets`` in [0, 1] (soft targets allowed), the same shape. ``probs``
    are clipped to [eps, 1 - eps], eps = machine epsilon of their dtype (as scikit-learn's
    ``log_loss``), so p = 0 or 1 gives a large finite loss, not inf/NaN. Inside that clip the
    gradient is exact; outside it (p exactly 0 or 1) the gradient with respect to p is 0. For
    training, compute from logits with :func:`binary_cross_entropy_with_logits`.

    Taught in: notebooks/04_loss_functions.ipynb
    """
    reduction = _reduction(reduction)
    probs = as_float_array(probs, "probs")
    check_probability_np(probs, "probs")
    targets = as_float_array(targets, "targets", allow_int=True)
    check_probability_np(targets, "targets")
    check_same_shape(probs, "probs", targets, "targets")
    return _bce(probs, targets, reduction)


def binary_cross_entropy_with_logits(logits, targets, reduction="mean"):
    """Binary cross-entropy from logits z: -[t log sigma(z) + (1 - t) log(1 - sigma(z))].

    Computed as softplus(z) - t z = max(z, 0) - t z + log(1 + exp(-|z|)), which never overflows; its
    gradient is sigma(z) - t. ``logits`` and ``targets`` (in [0, 1]) have the same shape.

    Taught in: notebooks/04_loss_functions.ipynb
    """
    reduction = _reduction(reduction)
    logits = _float(logits, "logits")
    targets = as_float_array(targets, "targets", allow_int=True)
    check_probability_np(targets, "targets")
    check_same_shape(logits, "logits", targets, "targets")
    return _bce_logits(logits, targets.astype(logits.dtype), reduction)


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
    p = as_float_array(p, "p")
    q = as_float_array(q, "q")
    check_probability_np(p, "p")
    check_probability_np(q, "q")
    check_same_shape(p, "p", q, "q")
    if isinstance(axis, bool) or not isinstance(axis, int):
        raise TypeError(f"axis must be an int, got {type(axis).__name__}")
    ndim = jnp.ndim(p)
    if ndim == 0:
        raise ValueError("p must have at least 1 dimension (the axis of outcomes), got a scalar")
    if not -ndim <= axis < ndim:
        raise ValueError(f"axis must be in [{-ndim}, {ndim - 1}] for p of shape {tuple(p.shape)}, got {axis}")
    _check_rows_sum_to_one(p, "p", axis)
    _check_rows_sum_to_one(q, "q", axis)
    dtype = jnp.result_type(p, q)
    return _kl(p.astype(dtype), q.astype(dtype), axis % ndim)
