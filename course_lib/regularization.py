"""Regularization and training practice: penalties, data augmentation, imbalanced data, learning curves.

What regularization does: it *restricts* the model (smaller weights, fewer active weights, noisier
inputs), so the fit to the training data gets WORSE while, if the model was overfitting, the fit to
new data gets better. It cures overfitting and makes underfitting worse; underfitting is cured by more
capacity or less regularization.

Whether a penalty helps is decided on validation data, and one training run cannot decide it: another
seed can move the validation numbers as much as the penalty does. :func:`mlp_sweep` trains one MLP per (L2 strength,
seed) pair, all side by side in one compiled call, so such a claim can be checked over seeds.

Related pieces that live elsewhere (one function, one place): dropout in ``course_lib.conv``
(``dropout``, ``dropout_forward``), early stopping in ``course_lib.training`` (``early_stopping``),
initialization schemes in ``course_lib.layers`` (``init_mlp(..., init="zeros"|"normal"|"xavier"|"he")``),
lasso in ``course_lib.classic``.

Taught in: notebooks/08_regularization_and_training.ipynb
"""
from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from course_lib._validation import (as_float_array, as_int_array, check_finite, check_labels, check_ndim,
                                    check_int, check_int_sequence, check_nonempty,
                                    check_option, check_number, check_shape, checked, is_concrete)
from course_lib.losses import cross_entropy

__all__ = [
    "l1_penalty", "l2_penalty", "elastic_net_penalty", "penalty_grad", "soft_threshold",
    "elastic_net_regression", "penalized_grad_fn", "mlp_sweep",
    "shift_images", "rotate_images", "add_noise", "augment_images",
    "class_weights", "sample_weights", "weighted_cross_entropy", "oversample", "undersample",
    "learning_curve",
]


# --------------------------------------------------------------------------- penalties
def _is_bias(path):
    last = path[-1] if path else None
    key = getattr(last, "key", getattr(last, "name", None))
    return key in ("b", "bias")


def _weights(params, include_bias):
    if isinstance(params, (str, bytes)) or params is None:
        raise TypeError(f"params must be an array or a pytree of arrays, got {type(params).__name__}")
    leaves = jax.tree_util.tree_flatten_with_path(params)[0]
    out = []
    for path, leaf in leaves:
        arr = as_float_array(leaf, "params")
        if include_bias or not _is_bias(path):
            out.append(arr)
    if not out:
        raise ValueError("params holds no weights to penalise (only biases?)")
    return out


def _check_lam(lam):
    check_number(lam, "lam", low=0)
    return lam


def l1_penalty(params, lam, include_bias=False):
    """lam * sum_j |w_j| over every weight of the pytree (biases, keys "b"/"bias", are skipped).

    Its (sub)gradient lam * sign(w) has the same size for a tiny and a large weight, so it pushes
    small weights all the way to zero: the L1 penalty makes solutions sparse.

    Taught in: notebooks/08_regularization_and_training.ipynb
    """
    _check_lam(lam)
    return lam * sum(jnp.sum(jnp.abs(w)) for w in _weights(params, include_bias))


def l2_penalty(params, lam, include_bias=False):
    """(lam / 2) * sum_j w_j^2 -- the *squared* L2 norm (not the norm ||w||_2 itself).

    Its gradient lam * w is proportional to the weight, so a gradient step multiplies every weight
    by (1 - lr * lam) before the data gradient: "weight decay" (the same thing for plain SGD; for
    Adam the two differ, which is why AdamW exists). It shrinks weights but rarely makes them 0.

    Taught in: notebooks/08_regularization_and_training.ipynb
    """
    _check_lam(lam)
    return 0.5 * lam * sum(jnp.sum(w ** 2) for w in _weights(params, include_bias))


def elastic_net_penalty(params, lam, l1_ratio=0.5, include_bias=False):
    """lam * (l1_ratio * ||w||_1 + (1 - l1_ratio) / 2 * ||w||_2^2), sklearn ElasticNet's penalty.

    l1_ratio = 1 is the lasso, 0 is ridge; in between it keeps L1's sparsity while L2 spreads the
    weight over groups of correlated features instead of picking one at random.
    """
    _check_lam(lam)
    try:
        r = float(l1_ratio)
    except (TypeError, ValueError):
        raise TypeError(f"l1_ratio must be a number, got {type(l1_ratio).__name__}") from None
    if not 0.0 <= r <= 1.0:
        raise ValueError(f"l1_ratio must lie in [0, 1], got {l1_ratio!r}")
    return l1_penalty(params, lam * r, include_bias) + l2_penalty(params, lam * (1 - r), include_bias)


def penalty_grad(params, kind, lam, l1_ratio=0.5, include_bias=False):
    """Gradient of the penalty w.r.t. every leaf (sign(0) = 0 for L1): lam*sign(w), lam*w or their
    mix; biases get zeros unless ``include_bias``. A pytree shaped like ``params``."""
    check_option(kind, "kind", ("l1", "l2", "elastic_net"))
    _check_lam(lam)
    r = {"l1": 1.0, "l2": 0.0}.get(kind, float(l1_ratio))

    def g(path, w):
        w = as_float_array(w, "params")
        if not include_bias and _is_bias(path):
            return jnp.zeros_like(w)
        return lam * (r * jnp.sign(w) + (1 - r) * w)

    return jax.tree_util.tree_map_with_path(g, params)


def soft_threshold(z, t):
    """Proximal operator of t * |.|: sign(z) * max(|z| - t, 0). Exactly 0 when |z| <= t."""
    z = as_float_array(z, "z", allow_int=True)
    check_number(t, "t", low=0)
    return jnp.sign(z) * jnp.maximum(jnp.abs(z) - t, 0.0)


@partial(jax.jit, static_argnames="n_steps")
def _prox_grad(X, y, alpha, l1_ratio, n_steps):
    n = X.shape[0]
    xm, ym = X.mean(0), y.mean()
    Xc, yc = X - xm, y - ym
    lr = 1.0 / (jnp.linalg.eigvalsh(Xc.T @ Xc / n)[-1] + alpha * (1 - l1_ratio))

    def step(w, _):
        grad = Xc.T @ (Xc @ w - yc) / n + alpha * (1 - l1_ratio) * w     # smooth part
        z = w - lr * grad
        return jnp.sign(z) * jnp.maximum(jnp.abs(z) - lr * alpha * l1_ratio, 0.0), None   # L1 prox

    w = jax.lax.scan(step, jnp.zeros(X.shape[1], X.dtype), None, length=n_steps)[0]
    return {"w": w, "b": ym - xm @ w}


def elastic_net_regression(X, y, alpha=1.0, l1_ratio=0.5, n_steps=5000):
    """Minimise (1/2n) ||y - Xw - b||^2 + elastic_net_penalty(w, alpha, l1_ratio) by proximal
    gradient descent (ISTA): a gradient step on the smooth part, then soft-thresholding for the L1
    part -- which is what produces exact zeros. Same objective as sklearn ElasticNet(alpha, l1_ratio).

    Taught in: notebooks/08_regularization_and_training.ipynb
    """
    X = as_float_array(X, "X", allow_int=True)
    check_ndim(X, "X", 2)
    check_finite(X, "X")
    y = as_float_array(y, "y", allow_int=True)
    check_shape(y, "y", (X.shape[0],))
    check_finite(y, "y")
    check_number(alpha, "alpha", low=0)
    check_number(l1_ratio, "l1_ratio", low=0, high=1)
    check_int(n_steps, "n_steps", minimum=1)
    return _prox_grad(X, y.astype(X.dtype), jnp.asarray(alpha, X.dtype), jnp.asarray(l1_ratio, X.dtype),
                      int(n_steps))


def penalized_grad_fn(apply_fn, kind="l2", lam=1e-3, l1_ratio=0.5):
    """A ``grad_fn(params, xb, yb) -> (loss, grads)`` for ``course_lib.training.fit`` that minimises
    mean cross-entropy + penalty(params). The reported loss includes the penalty."""
    if not callable(apply_fn):
        raise TypeError(f"apply_fn must be callable, got {type(apply_fn).__name__}")
    check_option(kind, "kind", ("l1", "l2", "elastic_net"))
    _check_lam(lam)
    pen = {"l1": lambda p: l1_penalty(p, lam), "l2": lambda p: l2_penalty(p, lam),
           "elastic_net": lambda p: elastic_net_penalty(p, lam, l1_ratio)}[kind]

    def objective(params, xb, yb):
        return cross_entropy(apply_fn(params, xb), yb) + pen(params)

    return jax.value_and_grad(objective)


def _squared_weights(params):
    """sum of w^2 over the weight matrices "W" of an MLP (biases skipped); works on traced params."""
    return sum(jnp.sum(layer["W"] ** 2) for layer in params)


@partial(jax.jit, static_argnums=(0,))
def _mlp_sweep(opt, params0, X, y, Xv, yv, batches, lams):
    """vmap over runs of: scan over epochs of (scan over mini-batches of optimizer steps)."""
    from course_lib import layers, optim

    def one(p0, run_batches, lam):
        def objective(p, xb, yb):
            ce = cross_entropy(layers.mlp_apply(p, xb, "relu"), yb)
            return ce + 0.5 * lam * _squared_weights(p), ce

        def step(carry, ib):
            p, s = carry
            (_, ce), g = jax.value_and_grad(objective, has_aux=True)(p, X[ib], y[ib])
            u, s = opt.update(g, s, p)
            return (optim.apply_updates(p, u), s), ce

        def epoch(carry, ibs):
            carry, ces = jax.lax.scan(step, carry, ibs)
            logits = layers.mlp_apply(carry[0], Xv, "relu")
            return carry, (jnp.mean(ces), cross_entropy(logits, yv),
                           jnp.mean(jnp.argmax(logits, -1) == yv))

        (p, _), curves = jax.lax.scan(epoch, (p0, opt.init(p0)), run_batches)
        train_acc = jnp.mean(jnp.argmax(layers.mlp_apply(p, X, "relu"), -1) == y)
        return p, curves, train_acc, jnp.sqrt(_squared_weights(p))

    return jax.vmap(one)(params0, batches, lams)


def _check_sweep(sizes, X, y, X_val, y_val, lams, seeds, epochs, batch_size, learning_rate):
    """The arguments of :func:`mlp_sweep`, checked and converted."""
    from course_lib import layers

    sizes = layers._check_sizes(sizes)
    X = as_float_array(X, "X")
    check_ndim(X, "X", 2)
    check_finite(X, "X")
    Xv = as_float_array(X_val, "X_val")
    check_shape(Xv, "X_val", (None, X.shape[1]))
    check_finite(Xv, "X_val")
    if X.shape[1] != sizes[0]:
        raise ValueError(f"X must have sizes[0] = {sizes[0]} columns, got {X.shape[1]}")
    y = check_labels(y, "y", n_classes=sizes[-1], n=X.shape[0])
    yv = check_labels(y_val, "y_val", n_classes=sizes[-1], n=Xv.shape[0])
    lam_arr = np.array([check_number(lam, f"lams[{i}]", low=0) for i, lam in enumerate(np.reshape(lams, -1).tolist())])
    check_nonempty(lam_arr, "lams")
    seed_list = check_int_sequence(seeds, "seeds")
    check_int(epochs, "epochs", minimum=1)
    check_int(batch_size, "batch_size", minimum=1)
    if batch_size > X.shape[0]:
        raise ValueError(f"batch_size must be at most the number of training rows ({X.shape[0]}), "
                         f"got {batch_size}")
    check_number(learning_rate, "learning_rate", low=0, low_open=True)
    return X, y, Xv, yv, lam_arr, seed_list, int(epochs), int(batch_size)


def mlp_sweep(sizes, X, y, X_val, y_val, *, lams, seeds, epochs=150, batch_size=50, learning_rate=1e-3):
    """Train one ReLU MLP per (lam, seed) pair, all pairs side by side in one compiled call.

    Run (lam, seed) minimises mean cross-entropy + ``l2_penalty(params, lam)`` = CE + (lam/2) sum W^2
    (biases not penalised) with Adam(``learning_rate``) from ``layers.init_mlp(sizes, "he",
    seed=seed)``, on mini-batches of ``batch_size`` rows: one permutation per epoch drawn from
    ``numpy.random.default_rng(seed)`` (the last ``N mod batch_size`` rows of each are skipped). The
    batches and initial weights depend on the seed only, so within one seed the penalty is the only
    difference between the runs. ``jax.vmap`` over the runs, ``lax.scan`` over epochs and batches:
    a sweep over penalties *and* seeds costs one compilation, which is what makes a claim checkable
    over several seeds.

    Returns a dict of NumPy arrays with leading axes ``(len(lams), len(seeds))``: ``train_loss``
    (mean data cross-entropy over the epoch's batches, penalty excluded), ``val_loss`` and ``val_acc``
    after every epoch, shape ``(..., epochs)``; ``train_acc`` and ``weight_norm`` (sqrt of sum W^2)
    at the end; ``params``: the trained MLPs, stacked on the same two leading axes; and ``lams``,
    ``seeds``.

    Taught in: notebooks/08_regularization_and_training.ipynb
    """
    from course_lib import layers
    from course_lib.generative import _adam_cache

    X, y, Xv, yv, lam_arr, seed_list, epochs, batch_size = _check_sweep(
        sizes, X, y, X_val, y_val, lams, seeds, epochs, batch_size, learning_rate)
    n = X.shape[0]
    L, S, nb = lam_arr.size, len(seed_list), n // int(batch_size)
    inits = [layers.init_mlp(sizes, "he", seed=int(s), dtype=X.dtype) for s in seed_list]
    params0 = jax.tree_util.tree_map(lambda *leaves: jnp.stack(leaves * L), *inits)   # run r: seed r % S
    batches = np.stack([np.stack([rng.permutation(n)[: nb * int(batch_size)].reshape(nb, int(batch_size))
                                  for _ in range(int(epochs))])
                        for rng in (np.random.default_rng(int(s)) for s in seed_list)]).astype(np.int32)
    runs_lam = np.repeat(lam_arr, S).astype(X.dtype)
    params, (tl, vl, va), train_acc, norm = _mlp_sweep(
        _adam_cache(float(learning_rate), 0.9), params0, X, y, Xv, yv, np.tile(batches, (L, 1, 1, 1)),
        runs_lam)
    shape = lambda a: np.asarray(a).reshape((L, S) + np.shape(a)[1:])                  # noqa: E731
    return {"train_loss": shape(tl), "val_loss": shape(vl), "val_acc": shape(va),
            "train_acc": shape(train_acc), "weight_norm": shape(norm),
            "params": jax.tree_util.tree_map(shape, params), "lams": lam_arr, "seeds": np.asarray(seed_list)}


# --------------------------------------------------------------------------- augmentation
def _images(images):
    images = as_float_array(images, "images")
    check_ndim(images, "images", 3)
    check_finite(images, "images")
    return images


def _per_image(v, name, n, dtype):
    v = jnp.asarray(v, dtype)
    if v.ndim == 0:
        v = jnp.full((n,), v)
    check_shape(v, name, (n,))
    return v


@jax.jit
def _shift(images, dx, dy):
    H, W = images.shape[1:]
    rows, cols = jnp.arange(H)[:, None], jnp.arange(W)[None, :]

    def one(img, dx, dy):
        src_r, src_c = rows - dy, cols - dx
        ok = (src_r >= 0) & (src_r < H) & (src_c >= 0) & (src_c < W)
        return jnp.where(ok, img[jnp.clip(src_r, 0, H - 1), jnp.clip(src_c, 0, W - 1)], 0.0)

    return jax.vmap(one)(images, dx, dy)


def shift_images(images, dx, dy):
    """Translate each image by integer (dx, dy) pixels (right, down), filling with 0.
    images (N, H, W); dx, dy ints or (N,) int arrays. out[r, c] = img[r - dy, c - dx]."""
    images = _images(images)
    n = images.shape[0]
    for v, name in ((dx, "dx"), (dy, "dy")):
        if not np.issubdtype(np.asarray(v).dtype, np.integer):
            raise TypeError(f"{name} must be integer pixel shifts, got dtype {np.asarray(v).dtype}")
    return _shift(images, _per_image(dx, "dx", n, jnp.int32), _per_image(dy, "dy", n, jnp.int32))


@jax.jit
def _rotate(images, angles):
    H, W = images.shape[1:]
    cy, cx = (H - 1) / 2.0, (W - 1) / 2.0
    r, c = jnp.meshgrid(jnp.arange(H, dtype=images.dtype), jnp.arange(W, dtype=images.dtype), indexing="ij")

    def one(img, deg):
        t = jnp.deg2rad(deg)
        # inverse map: the source pixel of each output pixel (rotation by +deg, counter-clockwise
        # on screen, the convention of scipy.ndimage.rotate)
        sr = cy + jnp.cos(t) * (r - cy) + jnp.sin(t) * (c - cx)
        sc = cx - jnp.sin(t) * (r - cy) + jnp.cos(t) * (c - cx)
        inside = (sr > -1e-9) & (sr < H - 1 + 1e-9) & (sc > -1e-9) & (sc < W - 1 + 1e-9)
        val = jax.scipy.ndimage.map_coordinates(img, [sr, sc], order=1, mode="nearest")
        return jnp.where(inside, val, 0.0)      # a source point outside the image gives 0

    return jax.vmap(one)(images, angles)


def rotate_images(images, angles):
    """Rotate each image by ``angles`` degrees (counter-clockwise) about its centre, bilinear
    interpolation, 0 outside. Equals scipy.ndimage.rotate(img, angle, reshape=False, order=1)."""
    images = _images(images)
    angles = as_float_array(angles, "angles", allow_int=True)
    check_finite(angles, "angles")
    return _rotate(images, _per_image(angles, "angles", images.shape[0], images.dtype))


def add_noise(images, sigma, seed=0, clip=True):
    """images + N(0, sigma^2) noise (numpy generator, seeded), clipped to [0, 1] if ``clip``."""
    images = _images(images)
    check_number(sigma, "sigma", low=0)
    noise = np.random.default_rng(seed).standard_normal(images.shape).astype(images.dtype)
    out = images + sigma * jnp.asarray(noise)
    return jnp.clip(out, 0.0, 1.0) if clip else out


def augment_images(images, seed=0, max_shift=1, max_angle=10.0, noise=0.05):
    """A random augmented copy of every image: an integer shift in [-max_shift, max_shift]^2, a
    rotation in [-max_angle, max_angle] degrees and Gaussian noise of std ``noise``.

    Augmentation adds label-preserving variations of the training images (a slightly moved or
    tilted 3 is still a 3); it never touches validation or test data.

    Taught in: notebooks/08_regularization_and_training.ipynb
    """
    images = _images(images)
    check_int(max_shift, "max_shift", minimum=0)
    check_number(max_angle, "max_angle", low=0)
    check_number(noise, "noise", low=0)
    rng = np.random.default_rng(seed)
    n = images.shape[0]
    dx, dy = rng.integers(-max_shift, max_shift + 1, (2, n))
    angles = rng.uniform(-max_angle, max_angle, n)
    out = _rotate(_shift(images, jnp.asarray(dx, jnp.int32), jnp.asarray(dy, jnp.int32)),
                  jnp.asarray(angles, images.dtype))
    return add_noise(out, noise, seed=int(rng.integers(2 ** 31)))


# --------------------------------------------------------------------------- imbalanced data
def _class_labels(y, n_classes=None, name="y"):
    y = np.asarray(as_int_array(y, name))
    if y.ndim != 1 or y.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D label array, got shape {y.shape}")
    if y.min() < 0:
        raise ValueError(f"{name} must hold class indices >= 0")
    k = int(y.max()) + 1 if n_classes is None else int(n_classes)
    if y.max() >= k:
        raise ValueError(f"{name} holds label {int(y.max())} but n_classes={k}")
    counts = np.bincount(y, minlength=k)
    if np.any(counts == 0):
        raise ValueError(f"every class 0..{k - 1} must occur in {name}; missing "
                         f"{np.nonzero(counts == 0)[0].tolist()}")
    return y, counts


def class_weights(y, n_classes=None):
    """Balanced class weights w_c = n / (K * n_c): each class then carries the same total weight.
    Equals sklearn compute_class_weight("balanced"). Returns (K,) float64."""
    y, counts = _class_labels(y, n_classes)
    return y.size / (len(counts) * counts.astype(float))


def sample_weights(y, n_classes=None):
    """Per-sample weights class_weights(y)[y_i], (n,)."""
    y, _ = _class_labels(y, n_classes)
    return class_weights(y, n_classes)[y]


def _check_wce(logits, labels, weights):
    logits = check_finite(check_ndim(as_float_array(logits, "logits"), "logits", 2), "logits")
    labels = check_labels(labels, "labels", n_classes=logits.shape[1], n=logits.shape[0])
    weights = as_float_array(weights, "weights", allow_int=True)
    check_finite(check_shape(weights, "weights", (logits.shape[1],)), "weights")
    if is_concrete(weights) and (np.asarray(weights) < 0).any():
        raise ValueError(f"weights must be >= 0 (one per class), got a minimum of {float(np.min(weights))}")
    return logits, labels, weights


@checked(_check_wce)
def weighted_cross_entropy(logits, labels, weights):
    """sum_i w_{y_i} CE_i / sum_i w_{y_i}: cross-entropy where a sample of class c counts w_c times
    (PyTorch's CrossEntropyLoss(weight=...) convention). logits (N, K), labels (N,) class indices in
    [0, K - 1], weights (K,) >= 0. CE_i is :func:`course_lib.losses.cross_entropy` per sample."""
    sw = weights.astype(logits.dtype)[labels]
    return jnp.sum(sw * cross_entropy(logits, labels, reduction="none")) / jnp.sum(sw)


def _resample(X, y, seed, mode):
    X = np.asarray(as_float_array(X, "X", allow_int=True))
    y, counts = _class_labels(y)
    if X.shape[0] != y.shape[0]:
        raise ValueError(f"X and y must have the same number of rows, got {X.shape[0]} and {y.shape[0]}")
    rng = np.random.default_rng(seed)
    target = counts.max() if mode == "over" else counts.min()
    idx = []
    for c in range(len(counts)):
        members = np.nonzero(y == c)[0]
        if mode == "over":
            extra = rng.choice(members, target - members.size, replace=True)
            idx.append(np.concatenate([members, extra]))
        else:
            idx.append(rng.choice(members, target, replace=False))
    idx = rng.permutation(np.concatenate(idx))
    return X[idx], y[idx]


def oversample(X, y, seed=0):
    """Random oversampling: repeat random samples of the smaller classes until every class has as
    many as the largest. Only ever applied to the training split (never validation/test)."""
    return _resample(X, y, seed, "over")


def undersample(X, y, seed=0):
    """Random undersampling: keep a random subset of each class as large as the smallest class."""
    return _resample(X, y, seed, "under")


# --------------------------------------------------------------------------- learning curves
def learning_curve(fit, score, X_train, y_train, X_val, y_val, sizes):
    """Train/validation score of ``fit`` trained on the first ``size`` training rows, per size.

    fit(X, y) -> model; score(model, X, y) -> float. A large persistent gap (high train, low val
    score) is overfitting (high variance: more data or regularization help); both curves low and
    close is underfitting (high bias: more data will not help, more capacity will).
    Returns (train_scores (len(sizes),), val_scores (len(sizes),)).
    """
    for f, name in ((fit, "fit"), (score, "score")):
        if not callable(f):
            raise TypeError(f"{name} must be callable, got {type(f).__name__}")
    n = np.shape(X_train)[0]
    sizes = np.asarray(sizes)
    if sizes.ndim != 1 or not np.issubdtype(sizes.dtype, np.integer) or np.any(sizes < 1) or np.any(sizes > n):
        raise ValueError(f"sizes must be a 1-D list of ints in [1, {n}], got {sizes.tolist()}")
    X_train, y_train = np.asarray(X_train), np.asarray(y_train)
    tr, va = [], []
    for m in sizes:
        model = fit(X_train[:m], y_train[:m])
        tr.append(float(score(model, X_train[:m], y_train[:m])))
        va.append(float(score(model, X_val, y_val)))
    return np.array(tr), np.array(va)
