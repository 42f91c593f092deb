"""The chapter 02 / 08 / 09 widgets, driven headlessly: set a control, check the artists and the PNG."""
import numpy as np
import pytest
from sklearn import cluster, linear_model, metrics as skm

from course_lib import classic
from course_lib.widgets import classic as wc
from course_lib.widgets import evaluation as we
from course_lib.widgets import regularization as wr
from course_lib.widgets.base import LiveFigure


@pytest.fixture(scope="module")
def thr():
    return we.build_threshold_explorer()


@pytest.fixture(scope="module")
def cap():
    return wr.build_capacity_explorer()


@pytest.fixture(scope="module")
def stepper():
    return wc.build_clustering_stepper()


@pytest.mark.parametrize("mod,name", [(we, "thr"), (wr, "cap"), (wc, "stepper")])
def test_protocol(mod, name, request):
    w = request.getfixturevalue(name)
    assert len(mod.WIDGETS) == 1 and isinstance(w.live, LiveFigure) and w.widget is not None
    assert set(w.main_controls) <= set(w.controls)


@pytest.mark.parametrize("t", [0.0, 0.2, 0.5, 0.73, 1.0])
def test_threshold_explorer_counts_equal_sklearn(thr, t):
    thr.controls["threshold"].value = t
    v = thr.values
    pred = (thr.scores >= v["threshold"]).astype(int)
    tn, fp, fn, tp = skm.confusion_matrix(thr.y_true, pred, labels=[0, 1]).ravel()
    assert (v["tn"], v["fp"], v["fn"], v["tp"]) == (tn, fp, fn, tp)
    assert v["recall"] == pytest.approx(skm.recall_score(thr.y_true, pred))
    if tp + fp:
        assert v["precision"] == pytest.approx(skm.precision_score(thr.y_true, pred))
    np.testing.assert_array_equal(thr.image.get_array(), [[tn, fp], [fn, tp]])
    assert thr.roc_marker.get_data()[0][0] == pytest.approx(fp / (fp + tn))
    assert thr.pr_marker.get_data()[0][0] == pytest.approx(v["recall"])


def test_threshold_marker_lies_on_the_roc_curve(thr):
    thr.controls["threshold"].value = 0.4
    fpr, tpr, _ = skm.roc_curve(thr.y_true, thr.scores, drop_intermediate=False)
    x, y = thr.roc_marker.get_data()
    assert np.any(np.isclose(fpr, x[0]) & np.isclose(tpr, y[0]))


def test_threshold_png_changes(thr):
    thr.controls["threshold"].value = 0.1
    a = thr.live.image.value
    thr.controls["threshold"].value = 0.9
    assert thr.live.image.value != a


def test_capacity_explorer_fits_equal_course_lib_ridge(cap):
    cap.controls["degree"].value = 5
    cap.controls["log_alpha"].value = -2.0
    X = np.asarray(classic.polynomial_features(cap.xt[:, None], 5))
    p = classic.ridge_regression(X, cap.yt, alpha=1e-2)
    Xp = np.asarray(classic.polynomial_features(cap.x_plot[:, None], 5))
    np.testing.assert_allclose(cap.fit_line.get_ydata(), np.asarray(classic.linear_predict(p, Xp)), rtol=1e-6, atol=1e-8)
    ref = linear_model.Ridge(alpha=1e-2).fit(X, cap.yt)
    Xv = np.asarray(classic.polynomial_features(cap.xv[:, None], 5))
    assert cap.values["val_mse"] == pytest.approx(np.mean((ref.predict(Xv) - cap.yv) ** 2), rel=1e-6)


def test_capacity_explorer_shows_under_and_overfitting(cap):
    cap.controls["log_alpha"].value = -8.0
    cap.controls["degree"].value = 1
    assert cap.values["verdict"].startswith("underfitting")
    cap.controls["degree"].value = 15
    assert cap.values["verdict"].startswith("overfitting")
    assert cap.values["train_mse"] < cap.values["val_mse"]
    before = cap.values["val_mse"]
    cap.controls["log_alpha"].value = -2.0     # the penalty cures the overfit
    assert cap.values["val_mse"] < before
    a = cap.live.image.value
    cap.controls["degree"].value = 4
    assert cap.live.image.value != a


def test_clustering_stepper_kmeans_equals_sklearn_and_never_increases(stepper):
    stepper.controls["method"].value = "k-means"
    stepper.controls["step"].value = stepper.n_steps
    init = stepper.km["centers"][0].astype(np.float64)
    ref = cluster.KMeans(3, init=init, n_init=1, algorithm="lloyd", tol=0).fit(stepper.X.astype(np.float64))
    order = np.argsort(stepper.values["centers"][:, 0])
    np.testing.assert_allclose(stepper.values["centers"][order], ref.cluster_centers_[np.argsort(ref.cluster_centers_[:, 0])],
                               atol=1e-4)
    np.testing.assert_allclose(stepper.centers.get_offsets(), stepper.values["centers"])
    assert np.all(np.diff(stepper.km["objective"]) <= 1e-3 * stepper.km["objective"][0])


def test_clustering_stepper_em_loglik_rises_and_png_changes(stepper):
    stepper.controls["method"].value = "EM"
    stepper.controls["step"].value = 0
    a = stepper.live.image.value
    stepper.controls["step"].value = 5
    assert stepper.live.image.value != a
    assert np.all(np.diff(stepper.em["objective"]) >= -1e-4)
    x, y = stepper.ellipses[0].get_data()
    assert len(x) == 60
    assert stepper.values["objective"] == pytest.approx(float(stepper.em["objective"][5]))


def test_ellipse_points_are_on_the_mahalanobis_contour():
    cov = np.array([[2.0, 0.5], [0.5, 1.0]]); mean = np.array([1.0, -1.0])
    e = wc.ellipse_points(mean, cov, n_std=2.0)
    d = e - mean
    np.testing.assert_allclose(np.einsum("ni,ij,nj->n", d, np.linalg.inv(cov), d), 4.0, rtol=1e-10)


def test_bad_inputs():
    with pytest.raises(ValueError, match="X must have shape"):
        wc.build_clustering_stepper(np.zeros((10, 3)))
    with pytest.raises(ValueError, match="given together"):
        we.build_threshold_explorer(np.array([0, 1]))
    with pytest.raises(ValueError, match="probabilities"):
        we.build_threshold_explorer(np.array([0, 1]), np.array([-1.0, 2.0]))


def test_switching_the_method_is_a_blit_that_equals_a_full_redraw(stepper, monkeypatch):
    """Each method has its own precomputed background (objective curve, limits, title): switching
    reuses it, and the result is exactly what a full redraw of that state draws."""
    import io

    from PIL import Image

    def pixels(png):
        return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))

    assert set(stepper._backgrounds) == {"k-means", "EM"}
    for method in ("EM", "k-means", "EM"):
        calls = []
        with monkeypatch.context() as m:
            m.setattr(stepper.live, "redraw", lambda: calls.append("redraw"))
            stepper.controls["method"].value = method
        assert calls == []
        blitted = pixels(stepper.live.image.value)
        stepper.live.redraw()
        np.testing.assert_array_equal(blitted, pixels(stepper.live.image.value))
