"""Classic machine learning from scratch: the baselines every deep net should be compared with.

Linear / ridge / lasso / polynomial regression, logistic regression (binary and softmax), k-nearest
neighbours, Gaussian naive Bayes, a CART decision tree (Gini), a soft-margin linear SVM (hinge loss),
k-means (k-means++ init), agglomerative clustering and EM for Gaussian mixtures.

Every estimator is a pair of pure functions, ``fit_*(X, y, ...) -> params`` (a dict of arrays) and
``*_predict(params, X)``, and each one is checked against scikit-learn in ``tests/test_classic.py``
(the tolerance is stated in each docstring). Array-shaped work runs in jitted JAX cores; the decision
tree and the agglomerative clustering are written in NumPy because their shape (the tree, the merge
order) depends on the data, which ``jax.jit`` cannot trace.

Taught in: notebooks/02_classic_ml.ipynb
"""
from __future__ import annotations

import itertools
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from course_lib._validation import (as_float_array, as_int_array, check_int, check_ndim,
                                    check_option, check_number, check_shape)
from course_lib.losses import cross_entropy

__all__ = [
    "linear_regression", "linear_regression_gd", "ridge_regression", "lasso_regression",
    "linear_predict", "polynomial_features",
    "logistic_regression", "logistic_predict_proba", "logistic_predict",
    "knn_predict", "knn_regress",
    "gaussian_nb_fit", "gaussian_nb_predict_proba", "gaussian_nb_predict",
    "decision_tree_fit", "decision_tree_predict",
    "hinge_loss", "linear_svm", "svm_decision_function", "svm_predict",
    "kmeans_plusplus", "kmeans_step", "kmeans", "kmeans_history",
    "agglomerative_linkage", "cut_linkage",
    "gmm_log_likelihood", "gmm_e_step", "gmm_m_step", "gmm_em",
]


# --------------------------------------------------------------------------- validation helpers
def _finite(x, name):
    """check_finite in NumPy: an eager jnp check would compile a small kernel for every new shape."""
    a = np.asarray(x)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be finite, got {int(np.sum(np.isnan(a)))} NaN and "
                         f"{int(np.sum(np.isinf(a)))} infinite value(s)")
    return x


def _features(X, name="X"):
    X = as_float_array(X, name, allow_int=True)
    check_ndim(X, name, 2)
    if X.shape[0] == 0:
        raise ValueError(f"{name} must have at least one row, got shape {tuple(X.shape)}")
    _finite(X, name)
    return X


def _targets(y, X, name="y"):
    y = as_float_array(y, name, allow_int=True)
    check_shape(y, name, (X.shape[0],))
    _finite(y, name)
    return jnp.asarray(np.asarray(y).astype(X.dtype))


def _labels(y, X, name="y", n_classes=None, min_classes=2):
    y = as_int_array(y, name)
    check_shape(y, name, (X.shape[0],))
    yn = np.asarray(y)
    if yn.min() < 0:
        raise ValueError(f"{name} must hold class indices 0..K-1, got a negative label {int(yn.min())}")
    k = int(yn.max()) + 1 if n_classes is None else int(n_classes)
    if yn.max() >= k:
        raise ValueError(f"{name} holds label {int(yn.max())} but n_classes={k}")
    missing = sorted(set(range(k)) - set(np.unique(yn).tolist()))
    if missing or k < min_classes:
        raise ValueError(f"{name} must contain every class 0..{k - 1} (at least {min_classes}); "
                         f"missing {missing if missing else 'classes'}")
    return y, k


def _same_width(X, Z, xname, zname):
    if Z.shape[1] != X.shape[1]:
        raise ValueError(f"{zname} must have {X.shape[1]} columns like {xname}, got shape {tuple(Z.shape)}")


def _params(params, name, keys):
    if not isinstance(params, dict) or any(k not in params for k in keys):
        raise TypeError(f"{name} must be a dict with keys {list(keys)} (returned by the fit function), "
                        f"got {type(params).__name__}"
                        + (f" with keys {sorted(params)}" if isinstance(params, dict) else ""))


def _pad_rows(a, multiple=128):
    """Pad axis 0 with zeros up to a multiple of ``multiple``: fits on 386 and 387 rows (k-fold
    splits) then share one compiled function instead of compiling twice."""
    a = np.asarray(a)
    extra = (-a.shape[0]) % multiple
    return np.pad(a, [(0, extra)] + [(0, 0)] * (a.ndim - 1)) if extra else a


# --------------------------------------------------------------------------- linear regression
@partial(jax.jit, static_argnames="method")
def _linreg(X, y, method):
    xm, ym = X.mean(0), y.mean()
    Xc, yc = X - xm, y - ym
    if method == "normal":
        w = jnp.linalg.solve(Xc.T @ Xc, Xc.T @ yc)
    else:
        w = jnp.linalg.lstsq(Xc, yc)[0]
    return {"w": w, "b": ym - xm @ w}


def linear_regression(X, y, method="normal"):
    """Least squares: minimise sum_i (x_i.w + b - y_i)^2.

    ``method="normal"`` solves the normal equations (Xc^T Xc) w = Xc^T yc on centred data (then
    b = mean(y) - mean(X).w); ``"lstsq"`` uses an SVD least-squares solve, which also works when
    X^T X is singular or badly conditioned (e.g. high-degree polynomial features in float32).
    X: (n, d), y: (n,). Returns {"w": (d,), "b": ()}. Equals sklearn LinearRegression (rtol 1e-8).

    Taught in: notebooks/02_classic_ml.ipynb
    """
    X = _features(X)
    y = _targets(y, X)
    check_option(method, "method", ("normal", "lstsq"))
    return _linreg(X, y, method)


@partial(jax.jit, static_argnames="n_steps")
def _linreg_gd(X, y, lr, n_steps):
    def loss(p):
        return jnp.mean((X @ p["w"] + p["b"] - y) ** 2)

    def step(p, _):
        value, g = jax.value_and_grad(loss)(p)
        return jax.tree_util.tree_map(lambda a, b: a - lr * b, p, g), value

    p0 = {"w": jnp.zeros(X.shape[1], X.dtype), "b": jnp.zeros((), X.dtype)}
    return lax.scan(step, p0, None, length=n_steps)


def linear_regression_gd(X, y, lr=0.1, n_steps=1000):
    """Full-batch gradient descent on the mean squared error (1/n) sum_i (x_i.w + b - y_i)^2.

    Starts from zero; returns (params, losses) with losses[t] the MSE before step t. Converges to
    the normal-equation solution when lr < 2 / (largest eigenvalue of the Hessian (2/n) X~^T X~).

    Taught in: notebooks/02_classic_ml.ipynb
    """
    X = _features(X)
    y = _targets(y, X)
    check_number(lr, "lr", low=0, low_open=True)
    n_steps = check_int(n_steps, "n_steps", minimum=1)
    return _linreg_gd(X, y, jnp.asarray(lr, X.dtype), n_steps)


@jax.jit
def _ridge(X, y, alpha):
    xm, ym = X.mean(0), y.mean()
    Xc, yc = X - xm, y - ym
    w = jnp.linalg.solve(Xc.T @ Xc + alpha * jnp.eye(X.shape[1], dtype=X.dtype), Xc.T @ yc)
    return {"w": w, "b": ym - xm @ w}


def ridge_regression(X, y, alpha=1.0):
    """Ridge: minimise ||y - Xw - b||^2 + alpha ||w||^2 (the intercept is not penalised).

    Closed form on centred data: w = (Xc^T Xc + alpha I)^{-1} Xc^T yc. Same objective as
    sklearn Ridge(alpha) (equal within rtol 1e-8).

    Taught in: notebooks/02_classic_ml.ipynb
    """
    X = _features(X)
    y = _targets(y, X)
    check_number(alpha, "alpha", low=0)
    return _ridge(X, y, jnp.asarray(alpha, X.dtype))


def _soft_threshold(z, t):
    return jnp.sign(z) * jnp.maximum(jnp.abs(z) - t, 0.0)


@partial(jax.jit, static_argnames="n_sweeps")
def _lasso(X, y, alpha, n_sweeps):
    n, d = X.shape
    xm, ym = X.mean(0), y.mean()
    Xc, yc = X - xm, y - ym
    col = jnp.sum(Xc ** 2, 0) / n

    def coord(j, carry):
        w, r = carry
        xj = Xc[:, j]
        rho = xj @ r / n + col[j] * w[j]
        wj = jnp.where(col[j] > 0, _soft_threshold(rho, alpha) / jnp.where(col[j] > 0, col[j], 1.0), 0.0)
        return w.at[j].set(wj), r + xj * (w[j] - wj)

    def sweep(_, carry):
        return lax.fori_loop(0, d, coord, carry)

    w, _ = lax.fori_loop(0, n_sweeps, sweep, (jnp.zeros(d, X.dtype), yc))
    return {"w": w, "b": ym - xm @ w}


def lasso_regression(X, y, alpha=1.0, n_sweeps=1000):
    """Lasso: minimise (1/2n) ||y - Xw - b||^2 + alpha ||w||_1 by cyclic coordinate descent.

    Each coordinate update is exact: w_j = S(rho_j, alpha) / (||x_j||^2 / n), with the soft threshold
    S(z, t) = sign(z) max(|z| - t, 0); that is what sets coefficients exactly to zero. Same objective
    as sklearn Lasso(alpha) (coefficients equal within atol 1e-7 after enough sweeps).

    Taught in: notebooks/02_classic_ml.ipynb, notebooks/08_regularization_and_training.ipynb
    """
    X = _features(X)
    y = _targets(y, X)
    check_number(alpha, "alpha", low=0)
    n_sweeps = check_int(n_sweeps, "n_sweeps", minimum=1)
    return _lasso(X, y, jnp.asarray(alpha, X.dtype), n_sweeps)


@jax.jit
def _linpred(w, b, X):
    return X @ w + b


def linear_predict(params, X):
    """y_hat = X w + b for params from any linear fit. X: (n, d) -> (n,)."""
    _params(params, "params", ("w", "b"))
    X = _features(X)
    _same_width(np.zeros((1, params["w"].shape[0])), X, "params['w']", "X")
    return _linpred(params["w"].astype(X.dtype), params["b"], X)


def _poly_index(d, degree):
    return [c for k in range(1, degree + 1) for c in itertools.combinations_with_replacement(range(d), k)]


@partial(jax.jit, static_argnames="combos")
def _poly(X, combos):
    return jnp.stack([jnp.prod(X[:, list(c)], axis=1) for c in combos], axis=1)


def polynomial_features(X, degree=2):
    """All monomials of the d inputs of total degree 1..degree (no constant column).

    Ordered by degree, then lexicographically (x0, x1, x0^2, x0 x1, x1^2, ...), the same columns as
    sklearn PolynomialFeatures(degree, include_bias=False). X: (n, d) -> (n, C(d + degree, d) - 1).

    Taught in: notebooks/02_classic_ml.ipynb, notebooks/08_regularization_and_training.ipynb
    """
    X = _features(X)
    degree = check_int(degree, "degree", minimum=1)
    return _poly(X, tuple(_poly_index(X.shape[1], degree)))


# --------------------------------------------------------------------------- Newton's method
def _newton(obj, theta, n_iter):
    """Damped Newton: direction H^-1 g, step chosen as the best of 1, 1/2, ..., 1/2^47."""
    grad, hess = jax.grad(obj), jax.hessian(obj)
    steps = 0.5 ** jnp.arange(48, dtype=theta.dtype)
    eye = jnp.eye(theta.shape[0], dtype=theta.dtype)

    def body(_, th):
        g, H = grad(th), hess(th)
        d = -jnp.linalg.solve(H + 1e-12 * jnp.trace(H) / th.shape[0] * eye, g)
        vals = jax.vmap(lambda s: obj(th + s * d))(steps)
        vals = jnp.where(jnp.isfinite(vals), vals, jnp.inf)
        best = jnp.argmin(vals)
        # "<=": in float32 the objective stops changing before the gradient is ~0; a Newton step that
        # does not increase it is still a good step near the optimum
        return jnp.where(vals[best] <= obj(th), th + steps[best] * d, th)

    return lax.fori_loop(0, n_iter, body, theta)


# --------------------------------------------------------------------------- logistic regression
@partial(jax.jit, static_argnames=("k", "n_iter"))
def _logreg(X, y, sw, C, k, n_iter):
    n, d = X.shape
    if k == 2:
        t = 2.0 * y.astype(X.dtype) - 1.0

        def obj(th):
            z = X @ th[:d] + th[d]
            return 0.5 * th[:d] @ th[:d] + C * jnp.sum(sw * jnp.logaddexp(0.0, -t * z))

        th = _newton(obj, jnp.zeros(d + 1, X.dtype), n_iter)
        return {"w": th[:d], "b": th[d]}

    def obj(th):
        W, b = th[: d * k].reshape(d, k), th[d * k:]
        ce = cross_entropy(X @ W + b, y, "none")
        # The softmax is unchanged if the same constant is added to every bias, so the data term
        # cannot fix sum(b); the last term (zero at the optimum we return) pins it to 0.
        return 0.5 * jnp.sum(W ** 2) + C * jnp.sum(sw * ce) + 0.5 * jnp.sum(b) ** 2

    th = _newton(obj, jnp.zeros(d * k + k, X.dtype), n_iter)
    return {"W": th[: d * k].reshape(d, k), "b": th[d * k:]}


def logistic_regression(X, y, C=1.0, sample_weight=None, n_iter=30):
    """L2-regularised logistic regression fitted by Newton's method.

    Minimises 0.5 ||W||^2 + C sum_i s_i CE(softmax(x_i W + b), y_i); with two classes this is the
    sigmoid model p(y=1|x) = sigmoid(x.w + b) and params are {"w": (d,), "b": ()}; with K > 2 classes
    it is the multinomial (softmax) model with {"W": (d, K), "b": (K,)}. Logistic regression is NOT
    limited to two classes. ``sample_weight`` s_i (n,) implements class weights. Same objective as
    sklearn LogisticRegression(C=C) (coefficients and probabilities within atol 1e-6 on
    standardised data: sklearn's lbfgs stops at a gradient of ~1e-6, Newton reaches ~1e-10).
    Fitting it with SGD instead of Newton changes the optimiser, not the model.

    Taught in: notebooks/02_classic_ml.ipynb
    """
    X = _features(X)
    y, k = _labels(y, X)
    check_number(C, "C", low=0, low_open=True)
    if sample_weight is None:
        sw = np.ones(X.shape[0], X.dtype)
    else:
        sw = np.asarray(as_float_array(sample_weight, "sample_weight", allow_int=True)).astype(X.dtype)
        check_shape(sw, "sample_weight", (X.shape[0],))
        _finite(sw, "sample_weight")
        if np.any(sw < 0):
            raise ValueError("sample_weight must be >= 0")
    n_iter = check_int(n_iter, "n_iter", minimum=1)
    # padded rows get weight 0, so they do not change the objective (only the compiled shape)
    return _logreg(_pad_rows(X), _pad_rows(y), _pad_rows(sw), jnp.asarray(C, X.dtype), k, n_iter)


@jax.jit
def _logreg_proba(params, X):
    if "w" in params:
        p = jax.nn.sigmoid(X @ params["w"] + params["b"])
        return jnp.stack([1.0 - p, p], axis=1)
    return jax.nn.softmax(X @ params["W"] + params["b"], axis=1)


def logistic_predict_proba(params, X):
    """Class probabilities (n, K) (for two classes: columns [1 - p, p]) like sklearn predict_proba."""
    if not isinstance(params, dict) or not ({"w", "b"} <= set(params) or {"W", "b"} <= set(params)):
        raise TypeError("params must be the dict returned by logistic_regression")
    X = _features(X)
    width = params["w"].shape[0] if "w" in params else params["W"].shape[0]
    _same_width(np.zeros((1, width)), X, "params", "X")
    return _logreg_proba({k: v.astype(X.dtype) for k, v in params.items()}, _pad_rows(X))[: X.shape[0]]


def logistic_predict(params, X):
    """Most probable class (n,) int."""
    return jnp.argmax(logistic_predict_proba(params, X), axis=1)


# --------------------------------------------------------------------------- k-nearest neighbours
def _sqdist(A, B):
    return jnp.maximum(jnp.sum(A ** 2, 1)[:, None] - 2.0 * A @ B.T + jnp.sum(B ** 2, 1)[None, :], 0.0)


@partial(jax.jit, static_argnames=("k", "n_classes"))
def _knn(Xtr, ytr, Xq, k, n_classes):
    _, idx = lax.top_k(-_sqdist(Xq, Xtr), k)
    votes = jnp.sum(jax.nn.one_hot(ytr[idx], n_classes), axis=1)
    return jnp.argmax(votes, axis=1)  # a tie goes to the smallest label, as in scikit-learn


@partial(jax.jit, static_argnames="k")
def _knn_reg(Xtr, ytr, Xq, k):
    _, idx = lax.top_k(-_sqdist(Xq, Xtr), k)
    return jnp.mean(ytr[idx], axis=1)


def _knn_check(X_train, X_query, k):
    X_train = _features(X_train, "X_train")
    X_query = _features(X_query, "X_query")
    _same_width(X_train, X_query, "X_train", "X_query")
    k = check_int(k, "k", minimum=1)
    if k > X_train.shape[0]:
        raise ValueError(f"k must be <= the number of training points {X_train.shape[0]}, got {k}")
    return X_train, X_query, k


def knn_predict(X_train, y_train, X_query, k=5):
    """k-nearest-neighbour classification: the majority label among the k closest training points
    (Euclidean distance; a tie goes to the smallest label).

    There is no training step: the "model" is the stored training set, and all the work happens at
    prediction time (O(n_train d) per query). k is a hyper-parameter chosen on validation data.
    Equals sklearn KNeighborsClassifier(k).predict (exactly, when no distances tie).

    Taught in: notebooks/02_classic_ml.ipynb
    """
    X_train, X_query, k = _knn_check(X_train, X_query, k)
    y_train, n_classes = _labels(y_train, X_train, "y_train", min_classes=1)
    return _knn(X_train, y_train, X_query.astype(X_train.dtype), k, n_classes)


def knn_regress(X_train, y_train, X_query, k=5):
    """k-nearest-neighbour regression: the mean target of the k closest training points."""
    X_train, X_query, k = _knn_check(X_train, X_query, k)
    y_train = _targets(y_train, X_train, "y_train")
    return _knn_reg(X_train, y_train, X_query.astype(X_train.dtype), k)


# --------------------------------------------------------------------------- Gaussian naive Bayes
@partial(jax.jit, static_argnames="k")
def _gnb_fit(X, y, k):
    onehot = jax.nn.one_hot(y, k, dtype=X.dtype)
    counts = onehot.sum(0)
    theta = (onehot.T @ X) / counts[:, None]
    var = (onehot.T @ X ** 2) / counts[:, None] - theta ** 2
    var = jnp.maximum(var, 0.0) + 1e-9 * jnp.max(jnp.var(X, axis=0))
    return {"prior": counts / X.shape[0], "theta": theta, "var": var}


def gaussian_nb_fit(X, y):
    """Gaussian naive Bayes: p(x | y=c) = prod_j N(x_j; theta_cj, var_cj).

    The real assumption is *conditional independence of the features given the class* (a diagonal
    covariance per class), not a joint Gaussian with a full covariance matrix. Fitting = counting:
    class priors, per-class feature means and variances (plus sklearn's var_smoothing 1e-9 * the
    largest feature variance). Returns {"prior": (K,), "theta": (K, d), "var": (K, d)}; equals
    sklearn GaussianNB (rtol 1e-7).

    Taught in: notebooks/02_classic_ml.ipynb
    """
    X = _features(X)
    y, k = _labels(y, X, min_classes=1)
    return _gnb_fit(X, y, k)


@jax.jit
def _gnb_logjoint(p, X):
    ll = -0.5 * jnp.sum(jnp.log(2 * jnp.pi * p["var"]), 1)[None, :] \
        - 0.5 * jnp.sum((X[:, None, :] - p["theta"][None]) ** 2 / p["var"][None], 2)
    return ll + jnp.log(p["prior"])[None, :]


def gaussian_nb_predict_proba(params, X):
    """Posterior p(y=c | x) = prior_c prod_j N(x_j) / evidence, computed in log space. (n, K)."""
    _params(params, "params", ("prior", "theta", "var"))
    X = _features(X)
    _same_width(params["theta"], X, "params['theta']", "X")
    return jax.nn.softmax(_gnb_logjoint(params, X.astype(params["theta"].dtype)), axis=1)


def gaussian_nb_predict(params, X):
    """Most probable class (n,)."""
    return jnp.argmax(gaussian_nb_predict_proba(params, X), axis=1)


# --------------------------------------------------------------------------- decision tree (CART)
def _best_split(X, Y):
    """Best (feature, threshold) by weighted Gini; None if every feature is constant."""
    n = X.shape[0]
    best = (np.inf, None, None)
    for f in range(X.shape[1]):
        order = np.argsort(X[:, f], kind="stable")
        xs, cl = X[order, f], np.cumsum(Y[order], axis=0)[:-1]   # left counts for split after i
        nl = np.arange(1, n, dtype=float)
        cr = Y.sum(0) - cl
        score = (nl - (cl ** 2).sum(1) / nl) + ((n - nl) - (cr ** 2).sum(1) / (n - nl))
        score = np.where(xs[1:] > xs[:-1] + 1e-7, score, np.inf)
        i = int(np.argmin(score))
        if score[i] < best[0] - 1e-12:
            thr = 0.5 * (xs[i] + xs[i + 1])
            best = (score[i], f, xs[i] if thr == xs[i + 1] else thr)
    return None if best[1] is None else best[1:]


def decision_tree_fit(X, y, max_depth=None, min_samples_split=2):
    """A CART classification tree grown greedily with the Gini impurity G = 1 - sum_c p_c^2.

    At each node, every feature and every threshold halfway between consecutive distinct values is
    tried; the split minimising n_L G_L + n_R G_R is kept. A node becomes a leaf when it is pure,
    has depth ``max_depth`` (pre-pruning), fewer than ``min_samples_split`` samples, or no split.
    Returns arrays in the layout of sklearn's ``tree_``: feature, threshold, left, right (-1 for a
    leaf), value (class counts, (nodes, K)) and depth. Written in NumPy: the tree's shape depends on
    the data. Predictions equal sklearn DecisionTreeClassifier(max_depth) when no two splits tie.

    Taught in: notebooks/02_classic_ml.ipynb
    """
    Xj = _features(X)
    yj, k = _labels(y, Xj, min_classes=1)
    if max_depth is not None:
        max_depth = check_int(max_depth, "max_depth", minimum=0)
    min_samples_split = check_int(min_samples_split, "min_samples_split", minimum=2)
    X, Y = np.asarray(Xj, dtype=float), np.eye(k)[np.asarray(yj)]
    nodes = []

    def grow(idx, depth):
        node = len(nodes)
        counts = Y[idx].sum(0)
        nodes.append([-1, 0.0, -1, -1, counts, depth])
        pure = np.count_nonzero(counts) <= 1
        if pure or len(idx) < min_samples_split or (max_depth is not None and depth >= max_depth):
            return node
        split = _best_split(X[idx], Y[idx])
        if split is None:
            return node
        f, t = split
        go_left = X[idx, f] <= t
        nodes[node][0], nodes[node][1] = f, t
        nodes[node][2] = grow(idx[go_left], depth + 1)
        nodes[node][3] = grow(idx[~go_left], depth + 1)
        return node

    grow(np.arange(X.shape[0]), 0)
    cols = list(zip(*nodes))
    return {"feature": np.array(cols[0]), "threshold": np.array(cols[1]),
            "left": np.array(cols[2]), "right": np.array(cols[3]),
            "value": np.stack(cols[4]), "depth": np.array(cols[5])}


def _tree_leaves(tree, X):
    """Leaf index of every row: all rows descend one level per pass (NumPy, vectorised)."""
    node = np.zeros(X.shape[0], dtype=np.int64)
    rows = np.arange(X.shape[0])
    for _ in range(int(np.max(tree["depth"]))):
        inner = tree["left"][node] >= 0
        go_left = X[rows, np.maximum(tree["feature"][node], 0)] <= tree["threshold"][node]
        node = np.where(inner, np.where(go_left, tree["left"][node], tree["right"][node]), node)
    return node


def decision_tree_predict(tree, X, return_proba=False):
    """Route each row to its leaf and return the leaf's majority class (or its class frequencies).
    NumPy, like the fit: the number of levels depends on the tree. Returns (n,) or (n, K)."""
    _params(tree, "tree", ("feature", "threshold", "left", "right", "value", "depth"))
    X = _features(X)
    if X.shape[1] <= int(np.max(tree["feature"])):
        raise ValueError(f"X has {X.shape[1]} columns but the tree splits on feature "
                         f"{int(np.max(tree['feature']))}")
    value = tree["value"][_tree_leaves(tree, np.asarray(X, dtype=float))]
    if return_proba:
        return value / value.sum(1, keepdims=True)
    return np.argmax(value, axis=1)


# --------------------------------------------------------------------------- linear SVM
def _pm1(y, X):
    y = as_int_array(y, "y")
    check_shape(y, "y", (X.shape[0],))
    vals = set(np.unique(np.asarray(y)).tolist())
    if not vals <= {0, 1} or len(vals) < 2:
        raise ValueError(f"y must hold both labels 0 and 1, got labels {sorted(vals)}")
    return 2.0 * y.astype(X.dtype) - 1.0


def hinge_loss(scores, y_pm):
    """Hinge loss max(0, 1 - y f(x)) per sample; y in {-1, +1}. Zero only beyond the margin."""
    scores = as_float_array(scores, "scores")
    y_pm = as_float_array(y_pm, "y_pm", allow_int=True)
    if scores.shape != y_pm.shape:
        raise ValueError(f"scores and y_pm must have the same shape, got {scores.shape} and {y_pm.shape}")
    return jnp.maximum(0.0, 1.0 - y_pm * scores)


@partial(jax.jit, static_argnames="max_iter")
def _svm_smo(X, t, C, tol, max_iter):
    n = X.shape[0]
    Q = (t[:, None] * t[None, :]) * (X @ X.T)
    diag = jnp.diagonal(Q)

    def violation(alpha, G):
        up = ((t > 0) & (alpha < C)) | ((t < 0) & (alpha > 0))
        low = ((t > 0) & (alpha > 0)) | ((t < 0) & (alpha < C))
        score = -t * G
        i = jnp.argmax(jnp.where(up, score, -jnp.inf))
        j = jnp.argmin(jnp.where(low, score, jnp.inf))
        return i, j, score[i] - score[j]

    def cond(state):
        alpha, G, it = state
        return (violation(alpha, G)[2] > tol) & (it < max_iter)

    def body(state):
        alpha, G, it = state
        i, j, gap = violation(alpha, G)
        curv = jnp.maximum(diag[i] + diag[j] - 2 * t[i] * t[j] * Q[i, j], 1e-12)
        room_i = jnp.where(t[i] > 0, C - alpha[i], alpha[i])
        room_j = jnp.where(t[j] > 0, alpha[j], C - alpha[j])
        lam = jnp.minimum(gap / curv, jnp.minimum(room_i, room_j))
        alpha = alpha.at[i].add(t[i] * lam).at[j].add(-t[j] * lam)
        G = G + lam * (t[i] * Q[:, i] - t[j] * Q[:, j])
        return alpha, G, it + 1

    alpha, G, it = lax.while_loop(cond, body, (jnp.zeros(n, X.dtype), -jnp.ones(n, X.dtype), 0))
    i, j, _ = violation(alpha, G)
    free = (alpha > 1e-12 * C) & (alpha < C * (1 - 1e-12))
    score = -t * G
    b = jnp.where(jnp.any(free), jnp.sum(jnp.where(free, score, 0.0)) / jnp.maximum(jnp.sum(free), 1),
                  0.5 * (score[i] + score[j]))
    return {"w": X.T @ (alpha * t), "b": b, "alpha": alpha, "n_iter": it}


def linear_svm(X, y, C=1.0, tol=None, max_iter=100_000):
    """Soft-margin linear SVM: minimise 0.5 ||w||^2 + C sum_i max(0, 1 - t_i (x_i.w + b)), t = 2y - 1.

    The slack xi_i = max(0, 1 - t_i f(x_i)) lets points sit inside the margin or on the wrong side;
    C trades margin width against total slack. The hard-margin SVM is the limit C -> infinity and
    exists only for linearly separable data. Solved in the dual, max_a sum_i a_i - 0.5 sum_ij a_i a_j
    t_i t_j x_i.x_j with 0 <= a_i <= C and sum_i a_i t_i = 0, by SMO (two coordinates at a time,
    the most violating pair, as libsvm does); w = sum_i a_i t_i x_i, and the support vectors are the
    points with a_i > 0. SMO stops when the most violating pair violates the optimality conditions by
    less than ``tol`` (default 1e-10 in float64, 1e-5 in float32). Same problem as sklearn SVC(kernel="linear", C) (w within rtol 5e-4; our
    duality gap is below 1e-6 relative, and our objective is never above libsvm's).
    y: (n,) of 0/1. Returns {"w": (d,), "b": (), "alpha": (n,), "n_iter": ()}.

    Taught in: notebooks/02_classic_ml.ipynb
    """
    X = _features(X)
    t = _pm1(y, X)
    check_number(C, "C", low=0, low_open=True)
    if tol is None:
        tol = 1e-10 if X.dtype == jnp.float64 else 1e-5
    check_number(tol, "tol", low=0, low_open=True)
    max_iter = check_int(max_iter, "max_iter", minimum=1)
    return _svm_smo(X, t, jnp.asarray(C, X.dtype), jnp.asarray(tol, X.dtype), max_iter)


def svm_decision_function(params, X):
    """f(x) = x.w + b (positive -> class 1); |f(x)| / ||w|| is the distance to the boundary."""
    return linear_predict(params, X)


def svm_predict(params, X):
    """Class 0/1 from the sign of the decision function."""
    return (svm_decision_function(params, X) > 0).astype(jnp.int32)


# --------------------------------------------------------------------------- k-means
@partial(jax.jit, static_argnames="k")
def _kmeanspp(X, key, k):
    n = X.shape[0]
    keys = jax.random.split(key, k)
    first = jax.random.randint(keys[0], (), 0, n)
    centers = jnp.zeros((k, X.shape[1]), X.dtype).at[0].set(X[first])
    d2 = jnp.sum((X - X[first]) ** 2, 1)

    def body(i, carry):
        centers, d2 = carry
        j = jax.random.categorical(keys[i], jnp.log(jnp.maximum(d2, 1e-300)))
        j = jnp.where(jnp.sum(d2) > 0, j, jax.random.randint(keys[i], (), 0, n))
        return centers.at[i].set(X[j]), jnp.minimum(d2, jnp.sum((X - X[j]) ** 2, 1))

    return lax.fori_loop(1, k, body, (centers, d2))[0]


def kmeans_plusplus(X, k, seed=0):
    """k-means++ seeding: the first centre is a random point, each next one is a data point drawn
    with probability proportional to D(x)^2, its squared distance to the nearest centre chosen so far.
    Returns (k, d) centres. Taught in: notebooks/02_classic_ml.ipynb
    """
    X = _features(X)
    k = check_int(k, "k", minimum=1)
    if k > X.shape[0]:
        raise ValueError(f"k must be <= the number of points {X.shape[0]}, got {k}")
    return _kmeanspp(X, jax.random.PRNGKey(int(seed)), k)


def _assign(X, centers):
    d2 = _sqdist(X, centers)
    labels = jnp.argmin(d2, 1)
    return labels, jnp.sum(jnp.min(d2, 1))


def _update(X, centers, labels):
    onehot = jax.nn.one_hot(labels, centers.shape[0], dtype=X.dtype)
    counts = onehot.sum(0)
    means = (onehot.T @ X) / jnp.maximum(counts, 1)[:, None]
    return jnp.where(counts[:, None] > 0, means, centers)   # an empty cluster keeps its centre


@jax.jit
def _kmeans_step(X, centers):
    labels, inertia = _assign(X, centers)
    return labels, _update(X, centers, labels), inertia


def _kmeans_check(X, centers):
    X = _features(X)
    centers = as_float_array(centers, "centers", allow_int=True)
    check_ndim(centers, "centers", 2)
    _same_width(X, centers, "X", "centers")
    _finite(centers, "centers")
    return X, jnp.asarray(np.asarray(centers).astype(X.dtype))


def kmeans_step(X, centers):
    """One Lloyd iteration: assign each point to its nearest centre, then move each centre to the
    mean of its points. Returns (labels (n,), new_centers (k, d), inertia of the assignment).
    The inertia sum_i ||x_i - c_{label_i}||^2 never increases from one step to the next."""
    X, centers = _kmeans_check(X, centers)
    return _kmeans_step(X, centers)


@partial(jax.jit, static_argnames="n_iter")
def _kmeans_hist(X, centers, n_iter):
    def step(c, _):
        labels, new, inertia = _kmeans_step(X, c)
        return new, (c, labels, inertia)

    last, (cs, ls, ins) = lax.scan(step, centers, None, length=n_iter)
    labels, inertia = _assign(X, last)
    return (jnp.concatenate([cs, last[None]]), jnp.concatenate([ls, labels[None]]),
            jnp.concatenate([ins, inertia[None]]))


def kmeans_history(X, centers, n_iter=10):
    """Every Lloyd step from ``centers``: (centers (T+1, k, d), labels (T+1, n), inertia (T+1,)),
    where labels[t] and inertia[t] belong to centers[t]. Used by the step-through widget."""
    X, centers = _kmeans_check(X, centers)
    return _kmeans_hist(X, centers, check_int(n_iter, "n_iter", minimum=1))


def kmeans(X, k, seed=0, n_iter=100, init=None):
    """k-means (Lloyd's algorithm) from k-means++ seeding (or the given ``init`` centres).

    Minimises the inertia sum_i ||x_i - c_{label_i}||^2; converges to a local minimum that depends
    on the seeding. Returns {"centers", "labels", "inertia"}; from the same initial centres it equals
    sklearn KMeans(init=centres, n_init=1, algorithm="lloyd") (centres within atol 1e-10).

    Taught in: notebooks/02_classic_ml.ipynb
    """
    X = _features(X)
    k = check_int(k, "k", minimum=1)
    centers = kmeans_plusplus(X, k, seed) if init is None else _kmeans_check(X, init)[1]
    if centers.shape[0] != k:
        raise ValueError(f"init must have k={k} rows, got shape {tuple(centers.shape)}")
    cs, ls, ins = _kmeans_hist(X, centers, check_int(n_iter, "n_iter", minimum=1))
    return {"centers": cs[-1], "labels": ls[-1], "inertia": ins[-1]}


# --------------------------------------------------------------------------- hierarchical clustering
def agglomerative_linkage(X, linkage="average"):
    """Bottom-up (agglomerative) clustering: start with every point as its own cluster and repeatedly
    merge the two closest clusters, where the cluster distance is the "single" (closest pair),
    "complete" (farthest pair) or "average" (mean pair) Euclidean distance.

    Returns the merge history in SciPy's format, (n - 1, 4): [cluster a, cluster b, distance, size],
    the cluster made at step s getting id n + s. O(n^3) NumPy, for small data sets (a few hundred
    points). Distances equal scipy.cluster.hierarchy.linkage (rtol 1e-10).

    Taught in: notebooks/02_classic_ml.ipynb
    """
    X = np.asarray(_features(X), dtype=float)
    check_option(linkage, "linkage", ("single", "complete", "average"))
    n = X.shape[0]
    D = np.sqrt(np.maximum(((X[:, None, :] - X[None, :, :]) ** 2).sum(-1), 0.0))
    np.fill_diagonal(D, np.inf)
    ids, sizes, Z = list(range(n)), np.ones(n), np.zeros((n - 1, 4))
    for s in range(n - 1):
        a, b = np.unravel_index(np.argmin(D), D.shape)
        a, b = min(a, b), max(a, b)
        Z[s] = [min(ids[a], ids[b]), max(ids[a], ids[b]), D[a, b], sizes[a] + sizes[b]]
        if linkage == "single":
            new = np.minimum(D[a], D[b])
        elif linkage == "complete":
            new = np.maximum(D[a], D[b])
        else:
            new = (sizes[a] * D[a] + sizes[b] * D[b]) / (sizes[a] + sizes[b])
        D[a], D[:, a] = new, new
        D[a, a] = np.inf
        D[b], D[:, b] = np.inf, np.inf
        ids[a], sizes[a] = n + s, sizes[a] + sizes[b]
    return Z


def cut_linkage(Z, n_clusters):
    """Flat labels 0..n_clusters-1 from a merge history: undo the last n_clusters - 1 merges."""
    Z = np.asarray(Z)
    if Z.ndim != 2 or Z.shape[1] != 4:
        raise ValueError(f"Z must have shape (n - 1, 4), got {Z.shape}")
    n = Z.shape[0] + 1
    n_clusters = check_int(n_clusters, "n_clusters", minimum=1)
    if n_clusters > n:
        raise ValueError(f"n_clusters must be <= {n}, got {n_clusters}")
    parent = list(range(2 * n - 1))
    for s in range(n - n_clusters):
        a, b = int(Z[s, 0]), int(Z[s, 1])
        parent[a] = parent[b] = n + s

    def root(i):
        while parent[i] != i:
            i = parent[i]
        return i

    roots = [root(i) for i in range(n)]
    order = {r: j for j, r in enumerate(dict.fromkeys(roots))}
    return np.array([order[r] for r in roots])


# --------------------------------------------------------------------------- EM for Gaussian mixtures
def _log_gauss(X, means, covs):
    L = jnp.linalg.cholesky(covs)                                   # (k, d, d)
    diff = X[None, :, :] - means[:, None, :]                        # (k, n, d)
    sol = jax.scipy.linalg.solve_triangular(L, jnp.swapaxes(diff, 1, 2), lower=True)  # (k, d, n)
    maha = jnp.sum(sol ** 2, axis=1)                                # (k, n)
    logdet = 2 * jnp.sum(jnp.log(jnp.diagonal(L, axis1=1, axis2=2)), axis=1)
    return (-0.5 * (X.shape[1] * jnp.log(2 * jnp.pi) + logdet[:, None] + maha)).T   # (n, k)


@jax.jit
def _e_step(X, weights, means, covs):
    logp = _log_gauss(X, means, covs) + jnp.log(weights)[None, :]
    lse = jax.nn.logsumexp(logp, axis=1)
    return jnp.exp(logp - lse[:, None]), jnp.mean(lse)


@jax.jit
def _m_step(X, resp, reg_covar):
    nk = resp.sum(0) + 10 * jnp.finfo(X.dtype).eps
    means = (resp.T @ X) / nk[:, None]
    diff = X[None, :, :] - means[:, None, :]
    covs = jnp.einsum("kn,kni,knj->kij", resp.T, diff, diff) / nk[:, None, None]
    covs = covs + reg_covar * jnp.eye(X.shape[1], dtype=X.dtype)
    return nk / X.shape[0], means, covs


def _gmm_check(X, weights, means, covs):
    X = _features(X)
    weights = as_float_array(weights, "weights").astype(X.dtype)
    means = as_float_array(means, "means").astype(X.dtype)
    covs = as_float_array(covs, "covs").astype(X.dtype)
    k, d = weights.shape[0] if weights.ndim == 1 else -1, X.shape[1]
    check_ndim(weights, "weights", 1)
    check_shape(means, "means", (k, d))
    check_shape(covs, "covs", (k, d, d))
    for a, name in ((weights, "weights"), (means, "means"), (covs, "covs")):
        _finite(a, name)
    if abs(float(np.sum(weights)) - 1.0) > 1e-5 or bool(np.any(np.asarray(weights) <= 0)):
        raise ValueError("weights must be positive and sum to 1")
    return X, weights, means, covs


def gmm_log_likelihood(X, weights, means, covs):
    """Mean log-likelihood (1/n) sum_i log sum_k pi_k N(x_i; mu_k, Sigma_k) (sklearn's ``score``)."""
    return _e_step(*_gmm_check(X, weights, means, covs))[1]


def gmm_e_step(X, weights, means, covs):
    """E-step: responsibilities r_ik = p(z_i = k | x_i) under the current parameters, (n, k);
    also returns the mean log-likelihood of those parameters."""
    return _e_step(*_gmm_check(X, weights, means, covs))


def gmm_m_step(X, resp, reg_covar=1e-6):
    """M-step: the parameters maximising the expected complete-data log-likelihood given the
    responsibilities: N_k = sum_i r_ik, pi_k = N_k / n, mu_k = sum_i r_ik x_i / N_k,
    Sigma_k = sum_i r_ik (x_i - mu_k)(x_i - mu_k)^T / N_k + reg_covar I. Returns (weights, means, covs)."""
    X = _features(X)
    resp = as_float_array(resp, "resp").astype(X.dtype)
    check_ndim(resp, "resp", 2)
    check_shape(resp, "resp", (X.shape[0], None))
    _finite(resp, "resp")
    check_number(reg_covar, "reg_covar", low=0)
    return _m_step(X, resp, jnp.asarray(reg_covar, X.dtype))


@partial(jax.jit, static_argnames="n_iter")
def _gmm_em(X, weights, means, covs, reg_covar, n_iter):
    def step(p, _):
        resp, ll = _e_step(X, *p)
        new = _m_step(X, resp, reg_covar)
        return new, (p, ll)

    last, (hist, lls) = lax.scan(step, (weights, means, covs), None, length=n_iter)
    _, ll = _e_step(X, *last)
    hist = jax.tree_util.tree_map(lambda h, x: jnp.concatenate([h, x[None]]), hist, last)
    return last, hist, jnp.concatenate([lls, ll[None]])


def gmm_em(X, k, seed=0, n_iter=100, reg_covar=1e-6, init=None):
    """EM for a Gaussian mixture with full covariances.

    Alternates the E-step (responsibilities) and the M-step (weighted means/covariances); the
    log-likelihood never decreases, and EM converges to a local maximum that depends on the
    initialisation. ``init`` = (weights, means, covs); by default k-means++ centres, equal weights and
    the data covariance. Returns {"weights", "means", "covs", "log_likelihood" (n_iter + 1,) mean
    log-likelihood before each step and at the end, "history": (weights, means, covs) stacked}.
    From the same start it equals sklearn GaussianMixture(max_iter=n_iter, reg_covar) (rtol 1e-6).

    Taught in: notebooks/02_classic_ml.ipynb
    """
    X = _features(X)
    k = check_int(k, "k", minimum=1)
    check_number(reg_covar, "reg_covar", low=0)
    if init is None:
        means = kmeans_plusplus(X, k, seed)
        cov = jnp.cov(X.T).reshape(X.shape[1], X.shape[1]) + reg_covar * jnp.eye(X.shape[1], dtype=X.dtype)
        init = (jnp.full(k, 1.0 / k, X.dtype), means, jnp.broadcast_to(cov, (k,) + cov.shape))
    if not (isinstance(init, (tuple, list)) and len(init) == 3):
        raise TypeError("init must be a tuple (weights, means, covs)")
    X, w, m, c = _gmm_check(X, *init)
    if w.shape[0] != k:
        raise ValueError(f"init weights must have k={k} entries, got {w.shape[0]}")
    last, hist, lls = _gmm_em(X, w, m, c, jnp.asarray(reg_covar, X.dtype), check_int(n_iter, "n_iter", minimum=1))
    return {"weights": last[0], "means": last[1], "covs": last[2], "log_likelihood": lls, "history": hist}
