"""course_lib.perceptron against scikit-learn's Perceptron and a float64 numpy loop."""
import warnings

import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.datasets import make_blobs
from sklearn.linear_model import Perceptron

from course_lib import perceptron as P


def _numpy_perceptron(X, y, epochs, lr):
    w, b = np.zeros(X.shape[1]), 0.0
    for _ in range(epochs):
        for x, label in zip(X, y):
            t = 1 if label == 1 else -1
            if t * (x @ w + b) <= 0:
                w, b = w + lr * t * x, b + lr * t
    return w, b


@pytest.mark.parametrize("epochs,lr", [(1, 1.0), (3, 0.5), (10, 0.1)])
def test_matches_sklearn_and_numpy(epochs, lr):
    X, y = make_blobs(60, centers=2, cluster_std=2.5, random_state=0)
    r = P.train_perceptron(X, y, epochs=epochs, lr=lr)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning for few epochs
        sk = Perceptron(shuffle=False, eta0=lr, max_iter=epochs, tol=None, penalty=None).fit(X, y)
    np.testing.assert_allclose(r["w"], sk.coef_[0], rtol=1e-12, atol=1e-12)
    assert float(r["b"]) == pytest.approx(float(sk.intercept_[0]), abs=1e-12)
    w, b = _numpy_perceptron(X, y, epochs, lr)
    np.testing.assert_allclose(r["w"], w, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(P.predict(r["w"], r["b"], X), (X @ w + b > 0).astype(int))


def test_history_and_single_update():
    X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    y_and = np.array([0, 0, 0, 1])
    r = P.train_perceptron(X, y_and, epochs=10)
    assert r["converged"] and r["mistakes_per_epoch"][-1] == 0
    np.testing.assert_array_equal(P.predict(r["w"], r["b"], X), y_and)
    assert r["w_history"].shape == (41, 2) and r["b_history"].shape == (41,)
    np.testing.assert_array_equal(r["w_history"][0], [0, 0])
    # replaying perceptron_update step by step reproduces the stored trajectory
    w, b = jnp.zeros(2), jnp.zeros(())
    for t, i in enumerate(r["order"]):
        w, b, mistake = P.perceptron_update(w, b, X[i], int(y_and[i]))
        assert mistake == bool(r["mistake"][t])
        np.testing.assert_allclose(w, r["w_history"][t + 1])
    w, b, mistake = P.perceptron_update(jnp.zeros(2), jnp.zeros(()), np.array([2.0, 3.0]), 1, lr=0.5)
    assert mistake and np.allclose(w, [1.0, 1.5]) and float(b) == 0.5


def test_xor_never_converges():
    X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    r = P.train_perceptron(X, np.array([0, 1, 1, 0]), epochs=100)
    assert not r["converged"] and np.all(r["mistakes_per_epoch"] >= 1)


def test_shuffle_is_seeded():
    X, y = make_blobs(30, centers=2, random_state=1)
    a = P.train_perceptron(X, y, epochs=3, shuffle=True, seed=1)
    b = P.train_perceptron(X, y, epochs=3, shuffle=True, seed=1)
    np.testing.assert_array_equal(a["order"], b["order"])
    assert not np.array_equal(a["order"][:30], np.arange(30))


def test_bad_inputs():
    X, y = np.ones((4, 2)), np.array([0, 1, 0, 1])
    with pytest.raises(ValueError, match="y must hold binary labels 0/1"):
        P.train_perceptron(X, np.array([0, 2, 0, 1]))
    with pytest.raises(ValueError, match=r"y must have shape \(4\)"):
        P.train_perceptron(X, y[:3])
    with pytest.raises(TypeError, match="y must be an integer array"):
        P.train_perceptron(X, y.astype(float))
    with pytest.raises(ValueError, match="X must be finite"):
        P.train_perceptron(np.full((4, 2), np.nan), y)
    with pytest.raises(ValueError, match="epochs must be an int >= 1"):
        P.train_perceptron(X, y, epochs=0)
    with pytest.raises(ValueError, match="lr must be a finite number > 0"):
        P.train_perceptron(X, y, lr=-1.0)
    with pytest.raises(ValueError, match=r"w must have shape \(2\)"):
        P.predict(np.ones(3), 0.0, X)
    with pytest.raises(ValueError, match="y must be the label 0 or 1"):
        P.perceptron_update(np.zeros(2), 0.0, np.ones(2), -1)
