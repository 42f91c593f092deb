"""Data sets and batching, entirely offline.

Real data come from the small data sets shipped inside scikit-learn (no download, ever); toy data are
generated with a seed. Loaders return NumPy arrays: features as float32, labels as int32 (the dtypes
JAX uses by default, so nothing is silently converted later).

Loaders do **not** standardise the features: each docstring states the scale. Standardise with
statistics of the *training* split only (computing them on all the data leaks the test set).

Used in: notebooks/01_what_is_deep_learning.ipynb (train/val/test workflow),
notebooks/02_classic_ml.ipynb (iris, wine, breast cancer), notebooks/05_feedforward_networks.ipynb
(moons, circles, spirals, digits), notebooks/08_regularization_and_training.ipynb and
notebooks/09_model_evaluation.ipynb (digits, breast cancer), notebooks/10_convolutional_networks.ipynb
(sample photos, digits images), notebooks/07_optimizers.ipynb (mini-batches).
"""
from __future__ import annotations

import numpy as np

from course_lib import _validation as V

__all__ = ["load_digits", "load_iris", "load_breast_cancer", "load_wine", "load_sample_images",
           "make_moons", "make_circles", "make_spirals", "train_val_test_split", "minibatches"]


def _features_and_labels(X, y):
    if isinstance(X, (str, bytes)) or X is None:
        raise TypeError(f"X must be an array of samples, got {type(X).__name__}")
    if isinstance(y, (str, bytes)) or y is None:
        raise TypeError(f"y must be a 1-D array of labels/targets, got {type(y).__name__}")
    X = np.asarray(X)
    y = np.asarray(y)
    if X.dtype == object or y.dtype == object:
        raise TypeError("X and y must be numeric arrays, got an array of Python objects")
    if X.ndim < 1:
        raise ValueError(f"X must have at least 1 dimension (samples first), got shape {X.shape}")
    if y.ndim != 1:
        raise ValueError(f"y must have 1 dimension (one label per sample), got shape {y.shape}")
    if X.shape[0] != y.shape[0]:
        raise ValueError(f"X and y must have the same number of samples, got {X.shape[0]} and {y.shape[0]}")
    for arr, name in ((X, "X"), (y, "y")):
        if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
            raise TypeError(f"{name} must be a numeric array, got dtype {arr.dtype}")
        if np.issubdtype(arr.dtype, np.inexact) and np.isnan(arr).any():
            raise ValueError(f"{name} contains {int(np.isnan(arr).sum())} NaN value(s)")
    return X, y


def _xy(X, y):
    return X.astype(np.float32), y.astype(np.int32)


# --------------------------------------------------------------------------- scikit-learn data sets
def load_digits(images=False):
    """8x8 handwritten digits (0-9), 1797 images, from scikit-learn's shipped copy of the UCI set.

    Returns ``(X, y)``: X float32 with pixel intensities scaled from 0..16 to [0, 1] (divided by 16),
    shape (1797, 64), or (1797, 8, 8) with ``images=True``; y int32 in 0..9 (about 180 per class).

    Used in: notebooks/05_feedforward_networks.ipynb, notebooks/08_regularization_and_training.ipynb,
    notebooks/10_convolutional_networks.ipynb, notebooks/12_autoencoders_and_vae.ipynb.
    """
    from sklearn import datasets

    images = V.check_bool(images, "images")
    d = datasets.load_digits()
    X = d.images if images else d.data
    return (X / 16.0).astype(np.float32), d.target.astype(np.int32)


def load_iris():
    """Iris: 150 flowers, 4 features (sepal/petal length and width, in cm, 0.1 to 7.9), 3 classes.

    Returns ``(X float32 (150, 4), y int32 (150,))``, raw centimetres (not standardised), classes
    ordered (50 of each). Used in: notebooks/02_classic_ml.ipynb.
    """
    from sklearn import datasets

    d = datasets.load_iris()
    return _xy(d.data, d.target)


def load_breast_cancer():
    """Wisconsin breast cancer: 569 tumours, 30 features, 2 classes (0 malignant, 1 benign).

    Returns ``(X float32 (569, 30), y int32 (569,))``. Raw features with very different scales (the
    largest value of one feature is 0.03, of another 4254, "worst area"): standardise before gradient
    descent.
    Used in: notebooks/02_classic_ml.ipynb and notebooks/09_model_evaluation.ipynb.
    """
    from sklearn import datasets

    d = datasets.load_breast_cancer()
    return _xy(d.data, d.target)


def load_wine():
    """Wine: 178 wines, 13 chemical features (raw scales, 0.13 to 1680 for proline), 3 cultivars.

    Returns ``(X float32 (178, 13), y int32 (178,))``, not standardised.
    Used in: notebooks/02_classic_ml.ipynb.
    """
    from sklearn import datasets

    d = datasets.load_wine()
    return _xy(d.data, d.target)


def load_sample_images():
    """The two photos shipped with scikit-learn, as a dict name -> uint8 array (427, 640, 3), RGB.

    Keys: "china" (a temple) and "flower". Values 0..255 (divide by 255 for [0, 1] floats).
    Used in: notebooks/10_convolutional_networks.ipynb (filters on a real photo).
    """
    from sklearn import datasets

    d = datasets.load_sample_images()
    out = {}
    for path, img in zip(d.filenames, d.images):
        name = path.replace("\\", "/").rsplit("/", 1)[-1].rsplit(".", 1)[0]
        out[name] = np.asarray(img, dtype=np.uint8)
    return out


# --------------------------------------------------------------------------- generated toy data
def make_moons(n=200, noise=0.1, seed=0):
    """Two interleaving half circles in 2-D (scikit-learn's generator), seeded.

    ``n`` total points (half per class), Gaussian noise of std ``noise`` on each coordinate.
    Returns ``(X float32 (n, 2), y int32 (n,))``; coordinates roughly in [-1, 2] x [-0.5, 1].
    Used in: notebooks/05_feedforward_networks.ipynb.
    """
    from sklearn import datasets

    n = V.check_int(n, "n", minimum=2)
    noise = V.check_number(noise, "noise", low=0)
    seed = V.check_int(seed, "seed", minimum=0)
    X, y = datasets.make_moons(n_samples=n, noise=noise, random_state=seed)
    return _xy(X, y)


def make_circles(n=200, noise=0.05, seed=0, factor=0.5):
    """A small circle (class 1, radius ``factor``) inside a large one (class 0, radius 1), seeded.

    ``n`` total points, Gaussian noise of std ``noise``; ``factor`` in (0, 1).
    Returns ``(X float32 (n, 2), y int32 (n,))``. Not linearly separable: a single neuron cannot
    classify it, one hidden layer can. Used in: notebooks/05_feedforward_networks.ipynb.
    """
    from sklearn import datasets

    n = V.check_int(n, "n", minimum=2)
    noise = V.check_number(noise, "noise", low=0)
    seed = V.check_int(seed, "seed", minimum=0)
    factor = V.check_number(factor, "factor", low=0, high=1, high_open=True)
    if factor == 0.0:
        raise ValueError("factor must be in (0, 1), got 0.0")
    X, y = datasets.make_circles(n_samples=n, noise=noise, random_state=seed, factor=factor)
    return _xy(X, y)


def make_spirals(n=300, n_classes=2, noise=0.2, seed=0):
    """``n_classes`` interleaved spiral arms in 2-D (the classic CS231n toy problem), seeded.

    Arm k: radius r from 0 to 1, angle t = 2 pi k / K + 4 r (radians) plus Gaussian noise of std
    ``noise`` on the angle; the point is r (sin t, cos t). ``n`` total points, split as evenly as
    possible across arms, returned in shuffled order. Returns ``(X float32 (n, 2), y int32 (n,))``,
    coordinates in about [-1, 1].
    Used in: notebooks/05_feedforward_networks.ipynb (a problem a linear model cannot solve).
    """
    n = V.check_int(n, "n", minimum=1)
    n_classes = V.check_int(n_classes, "n_classes", minimum=2)
    if n < n_classes:
        raise ValueError(f"n must be at least n_classes ({n_classes}), got {n}")
    noise = V.check_number(noise, "noise", low=0)
    seed = V.check_int(seed, "seed", minimum=0)
    rng = np.random.default_rng(seed)
    counts = np.full(n_classes, n // n_classes)
    counts[: n % n_classes] += 1
    Xs, ys = [], []
    for k, m in enumerate(counts):
        r = np.linspace(0.0, 1.0, m)
        t = 2.0 * np.pi * k / n_classes + 4.0 * r + noise * rng.standard_normal(m)
        Xs.append(np.stack([r * np.sin(t), r * np.cos(t)], axis=1))
        ys.append(np.full(m, k))
    X, y = np.concatenate(Xs), np.concatenate(ys)
    order = rng.permutation(n)
    return _xy(X[order], y[order])


# --------------------------------------------------------------------------- splitting and batching
def train_val_test_split(X, y, val_size=0.15, test_size=0.15, seed=0, stratify=True):
    """Split into disjoint train / validation / test sets that together cover every sample once.

    ``val_size`` and ``test_size`` are fractions in [0, 1) with sum < 1. With ``stratify=True``
    (needs integer class labels ``y``) each class is split in the same proportions, so a rare class
    appears in every split. Seeded: the same seed gives the same split. Returns a dict with keys
    X_train, y_train, X_val, y_val, X_test, y_test (NumPy arrays, samples shuffled).

    The validation set chooses hyper-parameters; the test set is looked at once, at the end.
    Used in: notebooks/01_what_is_deep_learning.ipynb first, then every chapter that trains on real data.
    """
    X, y = _features_and_labels(X, y)
    val_size = V.check_number(val_size, "val_size", low=0, high=1, high_open=True)
    test_size = V.check_number(test_size, "test_size", low=0, high=1, high_open=True)
    if val_size + test_size >= 1.0:
        raise ValueError(f"val_size + test_size must be < 1 to leave training data, "
                         f"got {val_size} + {test_size}")
    seed = V.check_int(seed, "seed", minimum=0)
    stratify = V.check_bool(stratify, "stratify")
    rng = np.random.default_rng(seed)
    n = len(y)
    if stratify:
        if not (np.issubdtype(y.dtype, np.integer) or y.dtype == bool):
            raise ValueError(f"stratify=True needs integer class labels y, got dtype {y.dtype}; "
                             f"use stratify=False for regression targets")
        groups = [np.flatnonzero(y == c) for c in np.unique(y)]
    else:
        groups = [np.arange(n)]
    parts = {"train": [], "val": [], "test": []}
    for idx in groups:
        idx = rng.permutation(idx)
        n_test = int(round(test_size * len(idx)))
        n_val = int(round(val_size * len(idx)))
        if n_test + n_val > len(idx):  # can only happen through rounding on tiny groups
            n_val = len(idx) - n_test
        parts["test"].append(idx[:n_test])
        parts["val"].append(idx[n_test:n_test + n_val])
        parts["train"].append(idx[n_test + n_val:])
    out = {}
    for split, chunks in parts.items():
        idx = rng.permutation(np.concatenate(chunks).astype(np.int64))
        out[f"X_{split}"] = X[idx]
        out[f"y_{split}"] = y[idx]
    return {k: out[k] for k in ("X_train", "y_train", "X_val", "y_val", "X_test", "y_test")}


def minibatches(X, y, batch_size, seed=0, shuffle=True, drop_last=False):
    """Iterate over one epoch of ``(X_batch, y_batch)`` pairs of ``batch_size`` samples.

    Every sample appears exactly once per epoch (``drop_last=True`` drops the final, smaller batch
    instead). With ``shuffle=True`` the order is a seeded permutation: pass a different ``seed`` per
    epoch (e.g. ``seed=epoch``) to reshuffle. Returns a generator; arguments are checked at once.

    Used in: notebooks/07_optimizers.ipynb (SGD vs full batch) and every training loop.
    """
    X, y = _features_and_labels(X, y)
    batch_size = V.check_int(batch_size, "batch_size", minimum=1)
    seed = V.check_int(seed, "seed", minimum=0)
    shuffle = V.check_bool(shuffle, "shuffle")
    drop_last = V.check_bool(drop_last, "drop_last")
    n = len(y)
    order = np.random.default_rng(seed).permutation(n) if shuffle else np.arange(n)
    stop = n - n % batch_size if drop_last else n

    def generate():
        for start in range(0, stop, batch_size):
            idx = order[start:start + batch_size]
            yield X[idx], y[idx]

    return generate()
