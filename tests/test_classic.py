"""course_lib.classic against scikit-learn / SciPy on the same data (float64)."""
import warnings

import jax.numpy as jnp
import numpy as np
import pytest
from scipy.cluster.hierarchy import linkage as scipy_linkage
from sklearn import cluster, datasets, linear_model, mixture, naive_bayes, neighbors, preprocessing, svm, tree
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import adjusted_rand_score

from course_lib import classic as C


@pytest.fixture(scope="module")
def reg_data():
    X, y = datasets.make_regression(n_samples=80, n_features=5, noise=5.0, random_state=0)
    return X, y


@pytest.fixture(scope="module")
def cancer():
    X, y = datasets.load_breast_cancer(return_X_y=True)
    return preprocessing.StandardScaler().fit_transform(X), y


@pytest.fixture(scope="module")
def iris():
    X, y = datasets.load_iris(return_X_y=True)
    return preprocessing.StandardScaler().fit_transform(X), y


# ---------------------------------------------------------------- regression
@pytest.mark.parametrize("method", ["normal", "lstsq"])
def test_linear_regression_equals_sklearn(reg_data, method):
    X, y = reg_data
    p = C.linear_regression(X, y, method=method)
    ref = linear_model.LinearRegression().fit(X, y)
    np.testing.assert_allclose(p["w"], ref.coef_, rtol=1e-8)
    np.testing.assert_allclose(p["b"], ref.intercept_, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(C.linear_predict(p, X), ref.predict(X), rtol=1e-8)


def test_linear_regression_gd_converges_to_normal_equations(reg_data):
    X, y = reg_data
    p, losses = C.linear_regression_gd(X, y, lr=0.1, n_steps=2000)
    ref = linear_model.LinearRegression().fit(X, y)
    np.testing.assert_allclose(p["w"], ref.coef_, rtol=1e-6)
    assert losses.shape == (2000,) and np.all(np.diff(np.asarray(losses)) <= 1e-9)


@pytest.mark.parametrize("alpha", [0.0, 0.1, 10.0])
def test_ridge_equals_sklearn(reg_data, alpha):
    X, y = reg_data
    p = C.ridge_regression(X, y, alpha=alpha)
    ref = linear_model.Ridge(alpha=alpha, solver="cholesky").fit(X, y)
    np.testing.assert_allclose(p["w"], ref.coef_, rtol=1e-8)
    np.testing.assert_allclose(p["b"], ref.intercept_, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("alpha", [0.1, 1.0, 20.0])
def test_lasso_equals_sklearn(reg_data, alpha):
    X, y = reg_data
    p = C.lasso_regression(X, y, alpha=alpha, n_sweeps=500)
    ref = linear_model.Lasso(alpha=alpha, tol=1e-12, max_iter=100_000).fit(X, y)
    np.testing.assert_allclose(p["w"], ref.coef_, atol=1e-7)
    np.testing.assert_allclose(p["b"], ref.intercept_, atol=1e-7)


def test_lasso_sets_coefficients_exactly_to_zero(reg_data):
    X, y = reg_data
    w = np.asarray(C.lasso_regression(X, y, alpha=40.0)["w"])
    assert np.sum(w == 0.0) >= 1
    assert np.sum(np.asarray(C.ridge_regression(X, y, alpha=40.0)["w"]) == 0.0) == 0


@pytest.mark.parametrize("degree", [1, 2, 3])
def test_polynomial_features_equal_sklearn(degree):
    X = np.random.default_rng(0).normal(size=(7, 3))
    ref = preprocessing.PolynomialFeatures(degree, include_bias=False).fit_transform(X)
    np.testing.assert_allclose(C.polynomial_features(X, degree), ref, rtol=1e-12)


# ---------------------------------------------------------------- logistic regression
@pytest.mark.parametrize("Cval", [0.1, 1.0])
def test_binary_logistic_equals_sklearn(cancer, Cval):
    X, y = cancer
    p = C.logistic_regression(X, y, C=Cval)
    ref = linear_model.LogisticRegression(C=Cval, solver="newton-cholesky", tol=1e-12, max_iter=10_000).fit(X, y)
    np.testing.assert_allclose(p["w"], ref.coef_[0], atol=1e-6)
    np.testing.assert_allclose(p["b"], ref.intercept_[0], atol=1e-6)
    # sklearn's lbfgs stops with a gradient of ~1e-6 (see the stationarity test), hence 1e-6 here
    np.testing.assert_allclose(C.logistic_predict_proba(p, X), ref.predict_proba(X), atol=1e-6)
    np.testing.assert_array_equal(C.logistic_predict(p, X), ref.predict(X))


@pytest.mark.parametrize("Cval", [0.1, 1.0])
def test_logistic_solution_is_stationary_under_jax_grad(cancer, iris, Cval):
    import jax
    X, y = cancer
    t = 2.0 * y - 1.0
    p = C.logistic_regression(X, y, C=Cval)
    obj = lambda w, b: 0.5 * w @ w + Cval * jnp.sum(jnp.logaddexp(0.0, -t * (X @ w + b)))
    for g in jax.grad(obj, (0, 1))(p["w"], p["b"]):
        assert np.max(np.abs(g)) < 1e-8
    X, y = iris   # the softmax objective is ~1e2, so 1e-7 is ~1e-9 relative: float64 round-off
    p = C.logistic_regression(X, y, C=Cval)
    onehot = np.eye(3)[y]
    obj = lambda W, b: 0.5 * jnp.sum(W ** 2) + Cval * jnp.sum(
        jax.nn.logsumexp(X @ W + b, axis=1) - jnp.sum(onehot * (X @ W + b), axis=1))
    for g in jax.grad(obj, (0, 1))(p["W"], p["b"]):
        assert np.max(np.abs(g)) < 1e-7


def test_softmax_logistic_equals_sklearn(iris):
    X, y = iris
    p = C.logistic_regression(X, y, C=1.0)
    ref = linear_model.LogisticRegression(C=1.0, solver="newton-cholesky", tol=1e-12, max_iter=10_000).fit(X, y)
    np.testing.assert_allclose(p["W"], ref.coef_.T, atol=1e-6)
    np.testing.assert_allclose(p["b"] - p["b"].mean(), ref.intercept_ - ref.intercept_.mean(), atol=1e-6)
    np.testing.assert_allclose(C.logistic_predict_proba(p, X), ref.predict_proba(X), atol=1e-6)


def test_logistic_sample_weight_equals_sklearn_class_weight(cancer):
    X, y = cancer
    weights = {0: 3.0, 1: 0.5}
    p = C.logistic_regression(X, y, sample_weight=np.where(y == 0, 3.0, 0.5))
    ref = linear_model.LogisticRegression(class_weight=weights, solver="newton-cholesky", tol=1e-12,
                                           max_iter=10_000).fit(X, y)
    np.testing.assert_allclose(p["w"], ref.coef_[0], atol=1e-6)


# ---------------------------------------------------------------- KNN, naive Bayes
@pytest.mark.parametrize("k", [1, 4, 7])
def test_knn_equals_sklearn(iris, k):
    X, y = iris
    rng = np.random.default_rng(1)
    Xq = rng.normal(size=(50, 4))
    ref = neighbors.KNeighborsClassifier(n_neighbors=k).fit(X[::2], y[::2]).predict(Xq)
    np.testing.assert_array_equal(C.knn_predict(X[::2], y[::2], Xq, k=k), ref)
    yr = rng.normal(size=X.shape[0])
    ref_r = neighbors.KNeighborsRegressor(n_neighbors=k).fit(X, yr).predict(Xq)
    np.testing.assert_allclose(C.knn_regress(X, yr, Xq, k=k), ref_r, rtol=1e-10)


def test_gaussian_nb_equals_sklearn(iris):
    X, y = iris
    p = C.gaussian_nb_fit(X, y)
    ref = naive_bayes.GaussianNB().fit(X, y)
    np.testing.assert_allclose(p["prior"], ref.class_prior_, rtol=1e-10)
    np.testing.assert_allclose(p["theta"], ref.theta_, rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(p["var"], ref.var_, rtol=1e-7)
    np.testing.assert_allclose(C.gaussian_nb_predict_proba(p, X), ref.predict_proba(X), atol=1e-7)
    np.testing.assert_array_equal(C.gaussian_nb_predict(p, X), ref.predict(X))


# ---------------------------------------------------------------- decision tree
@pytest.mark.parametrize("depth", [1, 2, 3])
def test_decision_tree_equals_sklearn(depth):
    # continuous features and nodes large enough that no two candidate splits tie (sklearn breaks
    # ties by a random feature order, so deeper nodes with 4-5 samples can legitimately differ)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4))
    y = ((X[:, 0] + X[:, 1] ** 2 > 0.5).astype(int) + (X[:, 2] > 1)).astype(int)
    Xt = rng.normal(size=(500, 4))
    t = C.decision_tree_fit(X, y, max_depth=depth)
    ref = tree.DecisionTreeClassifier(max_depth=depth, random_state=0).fit(X, y)
    assert len(t["feature"]) == ref.tree_.node_count
    np.testing.assert_array_equal(np.where(t["left"] < 0, -2, t["feature"]), ref.tree_.feature)
    # sklearn casts X to float32 before splitting, so its thresholds are float32 midpoints
    np.testing.assert_allclose(np.where(t["left"] < 0, -2, t["threshold"]), ref.tree_.threshold, rtol=1e-6)
    np.testing.assert_array_equal(C.decision_tree_predict(t, Xt), ref.predict(Xt))
    np.testing.assert_allclose(C.decision_tree_predict(t, Xt, return_proba=True), ref.predict_proba(Xt))


def test_unlimited_tree_fits_training_data_perfectly_like_sklearn():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 3)); y = rng.integers(0, 3, 200)   # pure noise labels
    t = C.decision_tree_fit(X, y)
    assert np.all(np.asarray(C.decision_tree_predict(t, X)) == y)  # memorises noise: overfitting
    assert tree.DecisionTreeClassifier(random_state=0).fit(X, y).score(X, y) == 1.0


def test_decision_tree_iris_training_accuracy_matches_sklearn(iris):
    X, y = iris
    for depth in (1, 2, 3):
        t = C.decision_tree_fit(X, y, max_depth=depth)
        ref = tree.DecisionTreeClassifier(max_depth=depth, random_state=0).fit(X, y)
        assert np.mean(np.asarray(C.decision_tree_predict(t, X)) == y) == pytest.approx(ref.score(X, y))


# ---------------------------------------------------------------- SVM
@pytest.mark.parametrize("Cval", [0.01, 1.0, 100.0])
def test_linear_svm_equals_sklearn_svc(Cval):
    X, y = datasets.make_blobs(n_samples=120, centers=2, cluster_std=2.0, random_state=3)
    t = 2.0 * y - 1.0
    p = C.linear_svm(X, y, C=Cval)
    ref = svm.SVC(kernel="linear", C=Cval, tol=1e-10).fit(X, y)
    # libsvm stops early at large C (its objective is ~1e-5 above ours at C=100), hence rtol 5e-4;
    # the duality-gap check below is the exact certificate of optimality
    np.testing.assert_allclose(p["w"], ref.coef_[0], rtol=5e-4)
    np.testing.assert_array_equal(C.svm_predict(p, X), ref.predict(X))
    primal = lambda w, b: 0.5 * w @ w + Cval * np.sum(np.maximum(0.0, 1.0 - t * (X @ w + b)))
    ours = primal(np.asarray(p["w"]), float(p["b"]))
    assert ours <= primal(ref.coef_[0], ref.intercept_[0]) * (1 + 1e-9)   # at least as good as libsvm
    a = np.asarray(p["alpha"])
    dual = a.sum() - 0.5 * np.sum((a * t) @ X * ((a * t) @ X))
    assert abs(ours - dual) <= 1e-6 * ours                                   # duality gap ~ 0: optimal
    assert np.all(a >= 0) and np.all(a <= Cval * (1 + 1e-12)) and abs(a @ t) < 1e-8 * Cval


def test_hinge_loss_formula():
    s = np.array([2.0, 0.5, -1.0]); t = np.array([1.0, 1.0, 1.0])
    np.testing.assert_allclose(C.hinge_loss(s, t), [0.0, 0.5, 2.0])


# ---------------------------------------------------------------- clustering
@pytest.fixture(scope="module")
def blobs():
    X, y = datasets.make_blobs(n_samples=300, centers=4, cluster_std=0.8, random_state=2)
    return X, y


def test_kmeans_equals_sklearn_from_same_init(blobs):
    X, _ = blobs
    init = X[[0, 1, 2, 3]]
    out = C.kmeans(X, 4, init=init, n_iter=100)
    ref = cluster.KMeans(4, init=init, n_init=1, algorithm="lloyd", tol=0, max_iter=300).fit(X)
    np.testing.assert_allclose(out["centers"], ref.cluster_centers_, atol=1e-10)
    np.testing.assert_array_equal(out["labels"], ref.labels_)
    np.testing.assert_allclose(out["inertia"], ref.inertia_, rtol=1e-10)


def test_kmeans_inertia_never_increases(blobs):
    X, _ = blobs
    _, _, inertia = C.kmeans_history(X, X[:4], n_iter=15)
    assert np.all(np.diff(np.asarray(inertia)) <= 1e-9)


def test_kmeans_plusplus_reaches_the_best_inertia(blobs):
    X, _ = blobs
    best = cluster.KMeans(4, n_init=10, random_state=0).fit(X).inertia_
    hits = sum(abs(float(C.kmeans(X, 4, seed=s)["inertia"]) - best) < 1e-6 * best for s in range(10))
    centers = np.asarray(C.kmeans_plusplus(X, 4, seed=0))
    assert all(np.any(np.all(X == c, axis=1)) for c in centers)   # seeds are data points
    assert hits >= 8   # k-means++ is a randomised seeding: a good start, not a guarantee


@pytest.mark.parametrize("method", ["single", "complete", "average"])
def test_agglomerative_equals_scipy_and_sklearn(method):
    X = np.random.default_rng(4).normal(size=(40, 2))
    Z = C.agglomerative_linkage(X, linkage=method)
    ref = scipy_linkage(X, method=method)
    np.testing.assert_allclose(Z[:, 2], ref[:, 2], rtol=1e-10)
    np.testing.assert_array_equal(Z[:, 3], ref[:, 3])
    for k in (2, 3, 5):
        sk = cluster.AgglomerativeClustering(n_clusters=k, linkage=method).fit_predict(X)
        assert adjusted_rand_score(C.cut_linkage(Z, k), sk) == 1.0


def test_gmm_em_equals_sklearn(blobs):
    X, _ = blobs
    k = 4
    w0 = np.full(k, 0.25); m0 = X[[0, 1, 2, 3]]; c0 = np.stack([np.eye(2) * 2.0] * k)
    out = C.gmm_em(X, k, n_iter=25, init=(w0, m0, c0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ref = mixture.GaussianMixture(k, weights_init=w0, means_init=m0, precisions_init=np.linalg.inv(c0),
                                      max_iter=25, tol=0.0).fit(X)
    np.testing.assert_allclose(out["weights"], ref.weights_, rtol=1e-6)
    np.testing.assert_allclose(out["means"], ref.means_, rtol=1e-6)
    np.testing.assert_allclose(out["covs"], ref.covariances_, rtol=1e-6)
    np.testing.assert_allclose(out["log_likelihood"][-1], ref.score(X), rtol=1e-8)
    assert np.all(np.diff(np.asarray(out["log_likelihood"])) >= -1e-10)   # EM never decreases it


def test_gmm_e_and_m_steps_against_numpy(blobs):
    X, _ = blobs
    w = np.array([0.5, 0.5]); m = X[:2]; c = np.stack([np.eye(2), 2 * np.eye(2)])
    resp, ll = C.gmm_e_step(X, w, m, c)
    from scipy.stats import multivariate_normal
    dens = np.stack([w[j] * multivariate_normal(m[j], c[j]).pdf(X) for j in range(2)], 1)
    np.testing.assert_allclose(resp, dens / dens.sum(1, keepdims=True), rtol=1e-10)
    np.testing.assert_allclose(ll, np.mean(np.log(dens.sum(1))), rtol=1e-12)
    w2, m2, _ = C.gmm_m_step(X, resp, reg_covar=0.0)
    np.testing.assert_allclose(m2, (resp.T @ X) / resp.sum(0)[:, None], rtol=1e-10)
    np.testing.assert_allclose(w2, resp.mean(0), rtol=1e-10)


# ---------------------------------------------------------------- bad input
def test_bad_inputs_raise_clear_errors(iris):
    X, y = iris
    with pytest.raises(ValueError, match="X must have 2 dimension"):
        C.linear_regression(X[:, 0], y.astype(float))
    with pytest.raises(ValueError, match="y must have shape"):
        C.ridge_regression(X, y[:-1].astype(float))
    with pytest.raises(ValueError, match="X must be finite"):
        C.lasso_regression(np.where(X > 2, np.nan, X), y.astype(float))
    with pytest.raises(ValueError, match="method must be one of"):
        C.linear_regression(X, y.astype(float), method="qr")
    with pytest.raises(TypeError, match="y must be an integer array"):
        C.logistic_regression(X, y.astype(float))
    with pytest.raises(ValueError, match="C must be a finite number > 0"):
        C.logistic_regression(X, y, C=0.0)
    with pytest.raises(ValueError, match="k must be <="):
        C.knn_predict(X, y, X, k=1000)
    with pytest.raises(ValueError, match="X_query must have 4 columns"):
        C.knn_predict(X, y, X[:, :2], k=3)
    with pytest.raises(ValueError, match="y must hold both labels 0 and 1"):
        C.linear_svm(X, y)
    with pytest.raises(ValueError, match="linkage must be one of"):
        C.agglomerative_linkage(X[:10], linkage="ward")
    with pytest.raises(ValueError, match="must contain every class"):
        C.gaussian_nb_fit(X, np.where(y == 1, 2, y))
    with pytest.raises(ValueError, match="max_depth must be an int >= 0"):
        C.decision_tree_fit(X, y, max_depth=-1)
    with pytest.raises(ValueError, match="weights must be positive and sum to 1"):
        C.gmm_em(X, 2, init=(np.array([0.3, 0.3]), X[:2], np.stack([np.eye(4)] * 2)))
    with pytest.raises(ValueError, match="centers must have 4 columns|X must have"):
        C.kmeans_step(X, X[:3, :2])
    with pytest.raises(TypeError, match="params must be a dict"):
        C.linear_predict([1, 2], X)
    with pytest.raises(ValueError, match="degree must be an int >= 1"):
        C.polynomial_features(X, 0)
