"""course_lib.metrics against sklearn.metrics: property-based (ties, single class, empty predictions)."""
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.linear_model import Ridge
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score

from course_lib import classic
from course_lib import metrics as M

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

labels = st.integers(0, 3)
pairs = st.integers(1, 25).flatmap(lambda n: st.tuples(st.lists(labels, min_size=n, max_size=n),
                                                        st.lists(labels, min_size=n, max_size=n)))


def _both(fn_ours, fn_ref):
    """Run both; they must agree on the value, or both raise ValueError."""
    try:
        ref = fn_ref()
    except ValueError:
        with pytest.raises(ValueError):
            fn_ours()
        return
    np.testing.assert_allclose(fn_ours(), ref, rtol=1e-12, atol=1e-12)


@SETTINGS
@given(pairs)
def test_confusion_matrix_and_accuracy(pair):
    yt, yp = map(np.array, pair)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)   # sklearn warns when only one label occurs
        ref = skm.confusion_matrix(yt, yp)
    np.testing.assert_array_equal(M.confusion_matrix(yt, yp), ref)
    assert M.accuracy(yt, yp) == pytest.approx(skm.accuracy_score(yt, yp), abs=1e-15)


@SETTINGS
@given(pairs, st.sampled_from(["binary", "micro", "macro", "weighted"]), st.sampled_from([0.0, 1.0]))
def test_precision_recall_f1_equal_sklearn(pair, average, zd):
    yt, yp = map(np.array, pair)
    if average == "binary":          # restrict to at most two labels most of the time
        yt, yp = yt % 2 + (yt == 3), yp % 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _both(lambda: M.precision_recall_f1(yt, yp, average=average, zero_division=zd),
              lambda: skm.precision_recall_fscore_support(yt, yp, average=average, zero_division=zd)[:3])


@SETTINGS
@given(pairs)
def test_per_class_arrays_equal_sklearn(pair):
    yt, yp = map(np.array, pair)
    ours = M.precision_recall_f1(yt, yp, average=None)
    ref = skm.precision_recall_fscore_support(yt, yp, average=None, zero_division=0.0)[:3]
    for a, b in zip(ours, ref):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_micro_f1_equals_accuracy_for_multiclass():
    rng = np.random.default_rng(0)
    yt, yp = rng.integers(0, 4, 100), rng.integers(0, 4, 100)
    assert M.f1_score(yt, yp, average="micro") == pytest.approx(M.accuracy(yt, yp))


def test_empty_predictions_of_the_positive_class_give_zero_division():
    yt, yp = np.array([0, 1, 1]), np.array([0, 0, 0])
    assert M.precision(yt, yp) == 0.0 == skm.precision_score(yt, yp, zero_division=0)
    assert M.precision(yt, yp, zero_division=1.0) == 1.0 == skm.precision_score(yt, yp, zero_division=1)
    assert M.recall(yt, yp) == 0.0


binary = st.integers(2, 30).flatmap(lambda n: st.tuples(
    st.lists(st.integers(0, 1), min_size=n, max_size=n),
    st.lists(st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0]), min_size=n, max_size=n)))  # many ties


@SETTINGS
@given(binary, st.booleans())
def test_roc_curve_and_auc_equal_sklearn(data, drop):
    yt, s = np.array(data[0]), np.array(data[1])
    if len(set(yt)) < 2:
        with pytest.raises(ValueError, match="both classes"):
            M.roc_curve(yt, s)
        with pytest.warns(UndefinedMetricWarning):   # sklearn: a warning and NaN
            assert np.isnan(skm.roc_auc_score(yt, s))
        return
    for a, b in zip(M.roc_curve(yt, s, drop_intermediate=drop), skm.roc_curve(yt, s, drop_intermediate=drop)):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    assert M.roc_auc(yt, s) == pytest.approx(skm.roc_auc_score(yt, s), abs=1e-12)


@SETTINGS
@given(binary)
def test_pr_curve_and_average_precision_equal_sklearn(data):
    yt, s = np.array(data[0]), np.array(data[1])
    if len(set(yt)) < 2:
        with pytest.raises(ValueError, match="both classes"):
            M.average_precision(yt, s)
        return
    for a, b in zip(M.precision_recall_curve(yt, s), skm.precision_recall_curve(yt, s)):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    assert M.average_precision(yt, s) == pytest.approx(skm.average_precision_score(yt, s), abs=1e-12)


def test_auc_is_the_probability_a_positive_outranks_a_negative():
    rng = np.random.default_rng(3)
    yt = rng.integers(0, 2, 60); s = rng.integers(0, 5, 60) / 4.0
    pos, neg = s[yt == 1], s[yt == 0]
    pairwise = np.mean((pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :]))
    assert M.roc_auc(yt, s) == pytest.approx(pairwise, abs=1e-12)


def test_counts_at_threshold_match_confusion_matrix():
    rng = np.random.default_rng(5)
    yt = rng.integers(0, 2, 50); s = rng.random(50)
    tn, fp, fn, tp = M.binary_counts_at_threshold(yt, s, 0.3)
    assert (tn, fp, fn, tp) == tuple(skm.confusion_matrix(yt, (s >= 0.3).astype(int)).ravel())


@SETTINGS
@given(st.integers(1, 20).flatmap(lambda n: st.tuples(
    st.lists(st.integers(0, 2), min_size=n, max_size=n),
    st.lists(st.lists(st.floats(0.0, 1.0), min_size=3, max_size=3), min_size=n, max_size=n))))
def test_log_loss_equals_sklearn(data):
    yt = np.array(data[0])
    p = np.array(data[1]) + 1e-3
    p = p / p.sum(1, keepdims=True)
    assert M.log_loss(yt, p) == pytest.approx(skm.log_loss(yt, p, labels=[0, 1, 2]), rel=1e-12)


def test_binary_log_loss_and_clipping():
    yt = np.array([0, 1, 1]); p = np.array([0.0, 1.0, 0.0])   # one confident mistake
    assert M.log_loss(yt, p) == pytest.approx(skm.log_loss(yt, p), rel=1e-12)


def test_kfold_equals_sklearn():
    for n, k in ((10, 3), (17, 5), (6, 6)):
        for (tr, va), (rtr, rva) in zip(M.kfold_indices(n, k), KFold(k).split(np.zeros(n))):
            np.testing.assert_array_equal(tr, rtr)
            np.testing.assert_array_equal(va, rva)
    folds = M.kfold_indices(23, 4, shuffle=True, seed=1)
    np.testing.assert_array_equal(np.sort(np.concatenate([va for _, va in folds])), np.arange(23))


def _ridge_fit(X, y, alpha):
    return classic.ridge_regression(X, y, alpha=alpha)


def _neg_mse(p, X, y):
    return -float(np.mean((np.asarray(classic.linear_predict(p, X)) - y) ** 2))


@pytest.fixture(scope="module")
def reg():
    from sklearn.datasets import make_regression
    return make_regression(n_samples=60, n_features=8, noise=20.0, random_state=0)


def test_cross_val_and_grid_search_equal_sklearn(reg):
    X, y = reg
    ours = M.cross_val_scores(_ridge_fit, _neg_mse, X, y, k=5, alpha=3.0)
    ref = cross_val_score(Ridge(alpha=3.0), X, y, cv=KFold(5), scoring="neg_mean_squared_error")
    np.testing.assert_allclose(ours, ref, rtol=1e-8)
    grid = {"alpha": [0.01, 1.0, 10.0, 100.0, 1000.0]}
    res = M.grid_search(_ridge_fit, _neg_mse, X, y, grid, k=5)
    gs = GridSearchCV(Ridge(), grid, cv=KFold(5), scoring="neg_mean_squared_error").fit(X, y)
    np.testing.assert_allclose(res["mean_scores"], gs.cv_results_["mean_test_score"], rtol=1e-8)
    assert res["best_params"] == gs.best_params_


def test_random_search_is_a_grid_search_over_its_draws(reg):
    X, y = reg
    res = M.random_search(_ridge_fit, _neg_mse, X, y, {"alpha": lambda r: 10 ** r.uniform(-2, 3)}, n_iter=6)
    alphas = [p["alpha"] for p in res["params"]]
    assert len(set(alphas)) == 6 and all(0.01 <= a <= 1000 for a in alphas)
    again = M.grid_search(_ridge_fit, _neg_mse, X, y, {"alpha": alphas})
    np.testing.assert_allclose(res["mean_scores"], again["mean_scores"], rtol=1e-12)
    assert res["best_score"] == pytest.approx(max(res["mean_scores"]))


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="same length"):
        M.accuracy([0, 1], [0])
    with pytest.raises(ValueError, match="must not be empty"):
        M.f1_score(np.array([], int), np.array([], int))
    with pytest.raises(TypeError, match="y_pred must be an integer array"):
        M.accuracy([0, 1], [0.2, 0.9])
    with pytest.raises(ValueError, match="average must be one of"):
        M.f1_score([0, 1], [0, 1], average="samples")
    with pytest.raises(ValueError, match="at most two labels"):
        M.f1_score([0, 1, 2], [0, 1, 2])
    with pytest.raises(ValueError, match="pos_label=1 is not one of"):
        M.f1_score([2, 3], [2, 3])
    with pytest.raises(ValueError, match="y_score must be finite"):
        M.roc_curve([0, 1], [0.1, np.nan])
    with pytest.raises(ValueError, match="binary labels"):
        M.roc_auc([0, 2], [0.1, 0.3])
    with pytest.raises(ValueError, match="sum to 1"):
        M.log_loss([0, 1], np.array([[0.5, 0.6], [0.5, 0.5]]))
    with pytest.raises(ValueError, match=r"k must be an int <= 5, got 6"):
        M.kfold_indices(5, 6)
    with pytest.raises(TypeError, match="fit must be callable"):
        M.cross_val_scores(None, _neg_mse, np.zeros((4, 1)), np.zeros(4))
    with pytest.raises(ValueError, match="x must be monotonic"):
        M.auc([0.0, 1.0, 0.5], [0.0, 1.0, 1.0])
