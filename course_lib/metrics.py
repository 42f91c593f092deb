"""Model evaluation from scratch: classification metrics, ROC / PR curves, cross-validation, search.

Everything is derived from counts. The confusion matrix C[i, j] counts the samples whose TRUE class
is labels[i] and whose PREDICTED class is labels[j] (rows: truth, columns: prediction); its diagonal
holds the correct predictions, everything off the diagonal is an error. Precision, recall and F1
come from its columns and rows; ROC and PR curves are the binary confusion counts at every
threshold.

Conventions follow scikit-learn (``tests/test_metrics.py`` checks each function against
``sklearn.metrics`` with property-based tests, ties and single-class inputs included): labels are
the sorted union of the labels in ``y_true`` and ``y_pred``; a ratio whose denominator is 0 takes
the value ``zero_division`` (default 0.0, like sklearn's ``zero_division=0``); ROC AUC / PR curves
on data with a single class raise ``ValueError`` (they are undefined; sklearn returns NaN with a
warning).

The confusion counts run in a jitted JAX core (inputs padded to a power-of-two length so that new
sizes rarely recompile); curves, whose length depends on the number of distinct scores, are NumPy.

Taught in: notebooks/09_model_evaluation.ipynb
"""
from __future__ import annotations

import itertools
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from course_lib._validation import as_float_array, as_int_array, check_finite, check_int, check_option

__all__ = [
    "accuracy", "confusion_matrix", "precision_recall_f1", "precision", "recall", "f1_score",
    "binary_counts_at_threshold", "roc_curve", "auc", "roc_auc", "precision_recall_curve",
    "average_precision", "log_loss", "kfold_indices", "cross_val_scores", "grid_search",
    "random_search",
]

AVERAGES = ("binary", "micro", "macro", "weighted", None)


# --------------------------------------------------------------------------- validation
def _label_pair(y_true, y_pred, a="y_true", b="y_pred"):
    yt = np.asarray(as_int_array(_intify(y_true, a), a))
    yp = np.asarray(as_int_array(_intify(y_pred, b), b))
    if yt.ndim != 1 or yp.ndim != 1:
        raise ValueError(f"{a} and {b} must be 1-D label arrays, got shapes {yt.shape} and {yp.shape}")
    if yt.shape != yp.shape:
        raise ValueError(f"{a} and {b} must have the same length, got {yt.shape[0]} and {yp.shape[0]}")
    if yt.size == 0:
        raise ValueError(f"{a} must not be empty: a metric of zero samples is undefined")
    return yt, yp


def _intify(y, name):
    """Booleans count as 0/1 labels; floats are rejected (they usually are scores, not labels)."""
    arr = np.asarray(y) if not isinstance(y, (str, bytes)) and y is not None else y
    if isinstance(arr, np.ndarray) and arr.dtype == bool:
        return arr.astype(np.int64)
    return y


def _binary_scores(y_true, y_score):
    yt = np.asarray(as_int_array(_intify(y_true, "y_true"), "y_true"))
    s = as_float_array(y_score, "y_score", allow_int=True)
    if yt.ndim != 1 or s.ndim != 1 or yt.shape != s.shape:
        raise ValueError(f"y_true and y_score must be 1-D of the same length, got shapes {yt.shape} and {s.shape}")
    check_finite(s, "y_score")
    vals = set(np.unique(yt).tolist())
    if not vals <= {0, 1}:
        raise ValueError(f"y_true must hold binary labels 0/1, got labels {sorted(vals)}")
    if len(vals) < 2:
        raise ValueError("y_true must contain both classes 0 and 1: with a single class the curve "
                         "(and its area) is undefined")
    return yt, np.asarray(s, dtype=np.float64)


# --------------------------------------------------------------------------- confusion matrix
@partial(jax.jit, static_argnames="k")
def _confusion(yt, yp, weight, k):
    return jnp.zeros((k, k), jnp.int32).at[yt, yp].add(weight)


def _counts(yt, yp, labels):
    """Confusion matrix over ``labels`` (indices via searchsorted), in the jitted core."""
    n = yt.shape[0]
    size = 1 << max(int(n - 1).bit_length(), 3)                 # pad to a power of two >= 8
    ti, pi = np.searchsorted(labels, yt), np.searchsorted(labels, yp)
    pad = size - n
    ti, pi = np.pad(ti, (0, pad)), np.pad(pi, (0, pad))
    w = np.pad(np.ones(n, np.int32), (0, pad))
    return np.asarray(_confusion(jnp.asarray(ti), jnp.asarray(pi), jnp.asarray(w), len(labels)))


def confusion_matrix(y_true, y_pred, labels=None):
    """C[i, j] = number of samples with true label labels[i] predicted as labels[j].

    Rows are the truth, columns the prediction (sklearn's convention); the diagonal counts the
    correct predictions. For a binary problem with labels (0, 1): [[TN, FP], [FN, TP]].
    labels: default the sorted union of both arrays. Returns an int array (K, K).

    Taught in: notebooks/09_model_evaluation.ipynb
    """
    yt, yp = _label_pair(y_true, y_pred)
    if labels is None:
        labels = np.union1d(yt, yp)
    else:
        labels = np.asarray(as_int_array(labels, "labels"))
        if labels.ndim != 1 or len(np.unique(labels)) != len(labels) or len(labels) == 0:
            raise ValueError(f"labels must be a non-empty 1-D array of distinct labels, got {labels}")
        keep = np.isin(yt, labels) & np.isin(yp, labels)
        order = np.argsort(labels)
        cm = _counts(yt[keep], yp[keep], labels[order]) if keep.any() else np.zeros((len(labels),) * 2, int)
        inv = np.argsort(order)
        return cm[np.ix_(inv, inv)]
    return _counts(yt, yp, labels)


def accuracy(y_true, y_pred):
    """Fraction of samples whose predicted label equals the true label: trace(C) / n.

    (Not "the fraction whose predicted probability exceeds a threshold": a threshold turns scores
    into labels; accuracy then compares those labels with the truth.)"""
    yt, yp = _label_pair(y_true, y_pred)
    return float(np.mean(yt == yp))


def _ratio(num, den, zero_division):
    num, den = np.asarray(num, float), np.asarray(den, float)
    return np.where(den > 0, num / np.where(den > 0, den, 1.0), zero_division)


def precision_recall_f1(y_true, y_pred, average="binary", pos_label=1, zero_division=0.0):
    """Precision TP/(TP+FP), recall TP/(TP+FN) and F1 = 2TP/(2TP+FP+FN) (their harmonic mean).

    average: "binary" (only the class ``pos_label``; the labels must be at most two), "micro" (pool
    the counts of all classes: for single-label multiclass data this equals accuracy), "macro"
    (unweighted mean over classes), "weighted" (mean weighted by each class's true support), or None
    (per-class arrays). A ratio with a zero denominator takes ``zero_division``. Returns (p, r, f1).

    Taught in: notebooks/09_model_evaluation.ipynb
    """
    check_option(average, "average", AVERAGES)
    if zero_division not in (0, 0.0, 1, 1.0) and not (isinstance(zero_division, float) and np.isnan(zero_division)):
        raise ValueError(f"zero_division must be 0.0, 1.0 or nan, got {zero_division!r}")
    yt, yp = _label_pair(y_true, y_pred)
    labels = np.union1d(yt, yp)
    if average == "binary":
        if len(labels) > 2:
            raise ValueError(f"average='binary' needs at most two labels, got {labels.tolist()}; "
                             f"use average='micro', 'macro' or 'weighted' for multiclass data")
        if len(labels) == 2 and pos_label not in labels:
            raise ValueError(f"pos_label={pos_label} is not one of the labels {labels.tolist()}")
        labels = np.array([pos_label])
        cm = confusion_matrix(yt, yp, labels=np.union1d(np.union1d(yt, yp), labels))
        idx = int(np.searchsorted(np.union1d(np.union1d(yt, yp), labels), pos_label))
        tp, fp, fn = cm[idx, idx], cm[:, idx].sum() - cm[idx, idx], cm[idx, :].sum() - cm[idx, idx]
        return tuple(float(v) for v in (_ratio(tp, tp + fp, zero_division), _ratio(tp, tp + fn, zero_division),
                                        _ratio(2 * tp, 2 * tp + fp + fn, zero_division)))
    cm = confusion_matrix(yt, yp)
    tp = np.diag(cm)
    fp, fn = cm.sum(0) - tp, cm.sum(1) - tp
    if average == "micro":
        tp, fp, fn = tp.sum(), fp.sum(), fn.sum()
    p, r, f = (_ratio(tp, tp + fp, zero_division), _ratio(tp, tp + fn, zero_division),
               _ratio(2 * tp, 2 * tp + fp + fn, zero_division))
    if average == "micro":
        return float(p), float(r), float(f)
    if average is None:
        return p, r, f
    weights = None if average == "macro" else (tp + fn) / (tp + fn).sum()
    return tuple(float(np.average(v, weights=weights)) for v in (p, r, f))


def precision(y_true, y_pred, average="binary", pos_label=1, zero_division=0.0):
    """Precision TP / (TP + FP): of the samples predicted positive, the fraction that are."""
    return precision_recall_f1(y_true, y_pred, average, pos_label, zero_division)[0]


def recall(y_true, y_pred, average="binary", pos_label=1, zero_division=0.0):
    """Recall (sensitivity, TPR) TP / (TP + FN): of the positive samples, the fraction found."""
    return precision_recall_f1(y_true, y_pred, average, pos_label, zero_division)[1]


def f1_score(y_true, y_pred, average="binary", pos_label=1, zero_division=0.0):
    """F1 = 2 P R / (P + R) = 2TP / (2TP + FP + FN)."""
    return precision_recall_f1(y_true, y_pred, average, pos_label, zero_division)[2]


# --------------------------------------------------------------------------- curves
def binary_counts_at_threshold(y_true, y_score, threshold):
    """(TN, FP, FN, TP) when every sample with score >= threshold is predicted positive."""
    yt, s = _binary_scores(y_true, y_score)
    try:
        threshold = float(threshold)
    except (TypeError, ValueError):
        raise TypeError(f"threshold must be a number, got {type(threshold).__name__}") from None
    pred = (s >= threshold).astype(np.int64)
    return tuple(int(v) for v in confusion_matrix(yt, pred, labels=np.array([0, 1])).ravel())


def _cumulative_counts(yt, s):
    """TP and FP counts when predicting positive for scores >= each distinct score (descending)."""
    order = np.argsort(-s, kind="mergesort")
    s, yt = s[order], yt[order]
    last_of_group = np.r_[np.nonzero(np.diff(s))[0], yt.size - 1]
    tps = np.cumsum(yt)[last_of_group].astype(float)
    fps = (last_of_group + 1) - tps
    return fps, tps, s[last_of_group]


def roc_curve(y_true, y_score, drop_intermediate=True):
    """ROC curve: (FPR, TPR, thresholds), one point per distinct score, from (0, 0) at threshold
    +inf to (1, 1). FPR = FP / N, TPR = TP / P. ``drop_intermediate`` keeps only the corners (points
    where the curve changes direction), which leaves the area unchanged.

    Taught in: notebooks/09_model_evaluation.ipynb
    """
    yt, s = _binary_scores(y_true, y_score)
    fps, tps, thr = _cumulative_counts(yt, s)
    if drop_intermediate and len(fps) > 2:
        bend = (np.diff(fps, 2) != 0) | (np.diff(tps, 2) != 0)
        keep = np.concatenate([[True], bend, [True]])
        fps, tps, thr = fps[keep], tps[keep], thr[keep]
    fps, tps, thr = np.r_[0.0, fps], np.r_[0.0, tps], np.r_[np.inf, thr]
    return fps / fps[-1], tps / tps[-1], thr


def auc(x, y):
    """Area under a curve by the trapezoidal rule; x must be monotonic (either direction)."""
    x = np.asarray(as_float_array(x, "x", allow_int=True), float)
    y = np.asarray(as_float_array(y, "y", allow_int=True), float)
    if x.ndim != 1 or x.shape != y.shape or x.size < 2:
        raise ValueError(f"x and y must be 1-D of the same length >= 2, got shapes {x.shape} and {y.shape}")
    dx = np.diff(x)
    if np.any(dx < 0) and np.any(dx > 0):
        raise ValueError("x must be monotonic (increasing or decreasing)")
    area = np.sum(dx * (y[1:] + y[:-1]) / 2.0)
    return float(abs(area))


def roc_auc(y_true, y_score):
    """Area under the ROC curve = P(score of a random positive > score of a random negative), ties
    counting 1/2. 0.5 is a random ranking, 1.0 a perfect one."""
    fpr, tpr, _ = roc_curve(y_true, y_score, drop_intermediate=False)
    return auc(fpr, tpr)


def precision_recall_curve(y_true, y_score):
    """PR curve in sklearn's layout: precision and recall for each distinct score as threshold,
    in increasing threshold order, followed by the point (recall 0, precision 1). Returns
    (precision (T + 1,), recall (T + 1,), thresholds (T,))."""
    yt, s = _binary_scores(y_true, y_score)
    fps, tps, thr = _cumulative_counts(yt, s)
    prec = tps / (tps + fps)
    rec = tps / tps[-1]
    return np.r_[prec[::-1], 1.0], np.r_[rec[::-1], 0.0], thr[::-1]


def average_precision(y_true, y_score):
    """AP = sum_k (R_k - R_{k-1}) P_k: precision averaged over the recall gained at each threshold
    (a step-wise area, not the trapezoidal one, which is optimistic for PR curves)."""
    prec, rec, _ = precision_recall_curve(y_true, y_score)
    return float(-np.sum(np.diff(rec) * prec[:-1]))


def log_loss(y_true, y_prob):
    """Mean negative log-likelihood -(1/n) sum_i log p_i[y_i] (cross-entropy of predicted probs).

    y_true: (n,) class indices; y_prob: (n,) probabilities of class 1 for a binary problem or
    (n, K) rows summing to 1. Probabilities are clipped to [eps, 1 - eps] (eps of their dtype), as
    sklearn does, so a confident wrong answer costs -log(eps) ~ 36 in float64 instead of infinity."""
    yt = np.asarray(as_int_array(_intify(y_true, "y_true"), "y_true"))
    p = as_float_array(y_prob, "y_prob")
    check_finite(p, "y_prob")
    p = np.asarray(p)
    if p.ndim == 1:
        p = np.stack([1.0 - p, p], axis=1)
    if p.ndim != 2 or yt.ndim != 1 or p.shape[0] != yt.shape[0] or yt.size == 0:
        raise ValueError(f"y_prob must have shape (n,) or (n, K) with n = len(y_true) > 0, got {np.shape(y_prob)} "
                         f"for y_true of shape {yt.shape}")
    if np.any(p < 0) or np.any(p > 1):
        raise ValueError("y_prob must lie in [0, 1]")
    if np.any(np.abs(p.sum(1) - 1.0) > 1e-4):
        raise ValueError("each row of y_prob must sum to 1")
    if yt.min() < 0 or yt.max() >= p.shape[1]:
        raise ValueError(f"y_true must hold class indices 0..{p.shape[1] - 1}, got {yt.min()}..{yt.max()}")
    eps = np.finfo(p.dtype).eps
    return float(-np.mean(np.log(np.clip(p[np.arange(yt.size), yt], eps, 1 - eps))))


# --------------------------------------------------------------------------- cross-validation & search
def kfold_indices(n, k=5, shuffle=False, seed=0):
    """k-fold split of range(n): a list of k (train_idx, val_idx) pairs. Each sample is validated
    exactly once; the first n % k folds get one extra sample. Without shuffling the folds are the
    same as sklearn KFold(k); with it a NumPy permutation (seeded) is applied first.

    Taught in: notebooks/09_model_evaluation.ipynb
    """
    n = check_int(n, "n")
    k = check_int(k, "k", minimum=2, maximum=n)   # k folds of at least one sample each
    idx = np.random.default_rng(seed).permutation(n) if shuffle else np.arange(n)
    sizes = np.full(k, n // k) + (np.arange(k) < n % k)
    bounds = np.r_[0, np.cumsum(sizes)]
    return [(np.r_[idx[:bounds[i]], idx[bounds[i + 1]:]], idx[bounds[i]:bounds[i + 1]]) for i in range(k)]


def _check_callables(fit, score):
    for f, name in ((fit, "fit"), (score, "score")):
        if not callable(f):
            raise TypeError(f"{name} must be callable, got {type(f).__name__}")


def cross_val_scores(fit, score, X, y, k=5, shuffle=False, seed=0, **params):
    """Scores of ``score(fit(X_tr, y_tr, **params), X_val, y_val)`` over the k folds, (k,) array.

    fit(X, y, **params) -> model; score(model, X, y) -> float, higher is better. The test set is
    never touched: cross-validation works inside the training data to choose hyper-parameters."""
    _check_callables(fit, score)
    n = np.shape(X)[0]
    if np.shape(y)[0] != n:
        raise ValueError(f"X and y must have the same number of rows, got {n} and {np.shape(y)[0]}")
    X, y = np.asarray(X), np.asarray(y)
    return np.array([float(score(fit(X[tr], y[tr], **params), X[va], y[va]))
                     for tr, va in kfold_indices(n, k, shuffle, seed)])


def _search(fit, score, X, y, candidates, k, shuffle, seed):
    scores = [cross_val_scores(fit, score, X, y, k, shuffle, seed, **p) for p in candidates]
    means = np.array([s.mean() for s in scores])
    best = int(np.argmax(means))      # the first of equal means wins, as in GridSearchCV
    return {"params": candidates, "mean_scores": means, "std_scores": np.array([s.std() for s in scores]),
            "best_params": candidates[best], "best_score": float(means[best])}


def grid_search(fit, score, X, y, param_grid, k=5, shuffle=False, seed=0):
    """Try every combination of ``param_grid`` (dict name -> list of values) by k-fold CV.

    Candidates are enumerated like sklearn's ParameterGrid (keys sorted, the last key varying
    fastest). Returns {"params", "mean_scores", "std_scores", "best_params", "best_score"}."""
    if not isinstance(param_grid, dict) or not param_grid:
        raise TypeError("param_grid must be a non-empty dict name -> list of values")
    keys = sorted(param_grid)
    for key in keys:
        if isinstance(param_grid[key], (str, bytes)) or not hasattr(param_grid[key], "__len__") \
                or len(param_grid[key]) == 0:
            raise ValueError(f"param_grid[{key!r}] must be a non-empty list of values")
    candidates = [dict(zip(keys, vals)) for vals in itertools.product(*(param_grid[kk] for kk in keys))]
    return _search(fit, score, X, y, candidates, k, shuffle, seed)


def random_search(fit, score, X, y, param_distributions, n_iter=10, k=5, shuffle=False, seed=0):
    """Like grid_search, but ``n_iter`` random candidates: each parameter is drawn from a list
    (uniformly) or from a callable ``rng -> value`` (e.g. ``lambda r: 10 ** r.uniform(-3, 2)``).
    Random search covers each important parameter with n_iter distinct values, where a grid of the
    same budget repeats the same few values (Bergstra & Bengio, 2012)."""
    if not isinstance(param_distributions, dict) or not param_distributions:
        raise TypeError("param_distributions must be a non-empty dict name -> list or callable")
    check_int(n_iter, "n_iter", minimum=1)
    rng = np.random.default_rng(seed)
    keys = sorted(param_distributions)
    for key in keys:
        d = param_distributions[key]
        if not callable(d) and (isinstance(d, (str, bytes)) or not hasattr(d, "__len__") or len(d) == 0):
            raise ValueError(f"param_distributions[{key!r}] must be a non-empty list or a callable rng -> value")

    def draw(d):
        return d(rng) if callable(d) else d[int(rng.integers(len(d)))]

    candidates = [{key: draw(param_distributions[key]) for key in keys} for _ in range(n_iter)]
    return _search(fit, score, X, y, candidates, k, shuffle, seed)
