"""course_lib.losses against independent references (optax, scikit-learn, SciPy, float64 formulas),
finite for logits of +-1e4 (value and gradient), and strict about bad input."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.special
from sklearn.metrics import log_loss, mean_squared_error

from course_lib import losses as L


def rel_err(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape
    return float(np.max(np.abs(a - b) / np.maximum(1e-8, np.abs(a) + np.abs(b))))


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=2.0, size=(16, 5))
    labels = rng.integers(0, 5, size=16)
    probs = rng.dirichlet(np.ones(5), size=16)
    return logits, labels, probs


REDUCE = {"mean": np.mean, "sum": np.sum, "none": lambda v: v}


# ----------------------------------------------------------------------------- MSE
@pytest.mark.parametrize("reduction", list(REDUCE))
def test_mse_matches_float64_formula(reduction):
    rng = np.random.default_rng(1)
    pred, target = rng.normal(size=(2, 10, 3))
    assert rel_err(L.mse(pred, target, reduction), REDUCE[reduction]((pred - target) ** 2)) <= 1e-14


def test_mse_matches_scikit_learn():
    rng = np.random.default_rng(2)
    pred, target = rng.normal(size=(2, 50, 3))
    assert rel_err(L.mse(pred, target), mean_squared_error(target, pred)) <= 1e-14


def test_mse_gradient_matches_formula():
    rng = np.random.default_rng(3)
    pred, target = rng.normal(size=(2, 8))
    g = jax.grad(L.mse)(jnp.asarray(pred), jnp.asarray(target))
    assert rel_err(g, 2 * (pred - target) / pred.size) <= 1e-14


# ----------------------------------------------------------------------------- cross-entropy
@pytest.mark.parametrize("reduction", list(REDUCE))
@pytest.mark.parametrize("kind", ["indices", "probabilities"])
def test_cross_entropy_matches_optax(data, kind, reduction):
    logits, labels, probs = data
    if kind == "indices":
        y, ref_loss = labels, optax.softmax_cross_entropy_with_integer_labels
    else:
        y, ref_loss = probs, optax.softmax_cross_entropy
    ref = np.asarray(ref_loss(jnp.asarray(logits), jnp.asarray(y)))
    assert rel_err(L.cross_entropy(logits, y, reduction), REDUCE[reduction](ref)) <= 1e-13


def test_cross_entropy_matches_scikit_learn_log_loss(data):
    logits, labels, _ = data
    probs = scipy.special.softmax(logits, axis=1)
    assert rel_err(L.cross_entropy(logits, labels), log_loss(labels, probs, labels=range(5))) <= 1e-12


def test_one_hot_rows_give_the_same_loss_as_indices(data):
    logits, labels, _ = data
    onehot = np.eye(5)[labels]
    assert rel_err(L.cross_entropy(logits, onehot), L.cross_entropy(logits, labels)) <= 1e-14


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_cross_entropy_grad_matches_jax_grad_of_optax(data, reduction):
    logits, labels, probs = data
    red = jnp.mean if reduction == "mean" else jnp.sum
    for y, ref_loss in ((labels, optax.softmax_cross_entropy_with_integer_labels),
                        (probs, optax.softmax_cross_entropy)):
        expected = jax.grad(lambda z: red(ref_loss(z, jnp.asarray(y))))(jnp.asarray(logits))
        assert rel_err(L.cross_entropy_grad(logits, y, reduction), expected) <= 1e-12
        # ... and autodiff through our own loss agrees
        ours = jax.grad(lambda z: L.cross_entropy(z, y, reduction))(jnp.asarray(logits))
        assert rel_err(ours, expected) <= 1e-12


def test_cross_entropy_grad_default_is_divided_by_n(data):
    logits, labels, _ = data
    expected = (scipy.special.softmax(logits, axis=1) - np.eye(5)[labels]) / len(labels)
    assert rel_err(L.cross_entropy_grad(logits, labels), expected) <= 1e-13


def test_cross_entropy_grad_matches_finite_differences(data):
    logits, labels, _ = data
    # h = 1e-4: some gradient entries are ~1e-4 (tiny softmax probabilities), so rounding
    # (~1e-16 / h) would dominate a smaller step; the truncation error O(h^2) stays ~1e-9 relative.
    h = 1e-4
    f = lambda z: float(L.cross_entropy(z, labels, reduction="sum"))  # noqa: E731
    fd = np.zeros_like(logits)
    for idx in np.ndindex(logits.shape):
        e = np.zeros_like(logits)
        e[idx] = h
        fd[idx] = (f(logits + e) - f(logits - e)) / (2 * h)
    assert rel_err(L.cross_entropy_grad(logits, labels, reduction="sum"), fd) <= 1e-7
    assert rel_err(L.cross_entropy_grad(logits, labels), fd / len(labels)) <= 1e-7


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_finite_for_huge_logits(dtype):
    logits = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 3.0], [0.0, 0.0, 0.0]], dtype=dtype)
    labels = np.array([1, 1, 2])
    value = L.cross_entropy(logits, labels, reduction="none")
    np.testing.assert_allclose(value, [2e4, 0.0, np.log(3.0)], rtol=1e-6)
    ref = optax.softmax_cross_entropy_with_integer_labels(jnp.asarray(logits), jnp.asarray(labels))
    np.testing.assert_allclose(value, ref, rtol=1e-6)
    g = jax.grad(lambda z: L.cross_entropy(z, labels))(jnp.asarray(logits))
    assert np.all(np.isfinite(g))
    np.testing.assert_allclose(g, L.cross_entropy_grad(logits, labels), atol=1e-7)
    soft = np.array([[0.5, 0.5, 0.0], [0.0, 0.0, 1.0], [1 / 3, 1 / 3, 1 / 3]], dtype=dtype)
    assert np.all(np.isfinite(L.cross_entropy(logits, soft, reduction="none")))
    assert np.all(np.isfinite(jax.grad(lambda z: L.cross_entropy(z, soft))(jnp.asarray(logits))))


# ----------------------------------------------------------------------------- binary CE
def test_binary_cross_entropy_matches_scikit_learn_including_0_and_1():
    rng = np.random.default_rng(4)
    targets = rng.integers(0, 2, size=40)
    probs = rng.uniform(0.01, 0.99, size=40)
    probs[:4] = [0.0, 1.0, 0.0, 1.0]         # exactly 0 and 1: both sides clip to machine epsilon
    targets[:4] = [1, 0, 0, 1]
    got = L.binary_cross_entropy(probs, targets)
    assert np.isfinite(float(got))
    assert rel_err(got, log_loss(targets, probs, labels=[0, 1])) <= 1e-12


def test_binary_cross_entropy_confident_mistake_costs_minus_log_eps():
    for dtype in (np.float32, np.float64):
        eps = np.finfo(dtype).eps
        v = L.binary_cross_entropy(np.array([0.0], dtype=dtype), np.array([1.0], dtype=dtype), "sum")
        assert float(v) == pytest.approx(-np.log(eps), rel=1e-6)


@pytest.mark.parametrize("reduction", list(REDUCE))
def test_binary_cross_entropy_soft_targets_match_formula(reduction):
    rng = np.random.default_rng(5)
    p = rng.uniform(0.01, 0.99, size=(6, 3))
    t = rng.uniform(0.0, 1.0, size=(6, 3))
    ref = -(t * np.log(p) + (1 - t) * np.log(1 - p))
    assert rel_err(L.binary_cross_entropy(p, t, reduction), REDUCE[reduction](ref)) <= 1e-13


def test_binary_cross_entropy_gradient_matches_formula_inside_the_clip():
    p = np.array([0.1, 0.5, 0.9, 1e-10])
    t = np.array([1.0, 0.0, 1.0, 1.0])
    g = jax.grad(lambda q: L.binary_cross_entropy(q, t, "sum"))(jnp.asarray(p))
    assert rel_err(g, -t / p + (1 - t) / (1 - p)) <= 1e-12


@pytest.mark.parametrize("reduction", list(REDUCE))
def test_binary_cross_entropy_with_logits_matches_optax(reduction):
    rng = np.random.default_rng(6)
    z = rng.normal(scale=3.0, size=(8, 4))
    t = rng.uniform(size=(8, 4))
    ref = optax.sigmoid_binary_cross_entropy(jnp.asarray(z), jnp.asarray(t))
    assert rel_err(L.binary_cross_entropy_with_logits(z, t, reduction), REDUCE[reduction](np.asarray(ref))) <= 1e-13


def test_bce_with_logits_equals_bce_of_sigmoid():
    z = np.linspace(-8, 8, 33)
    t = (z > 0.5).astype(float)
    assert rel_err(L.binary_cross_entropy_with_logits(z, t, "none"),
                   L.binary_cross_entropy(scipy.special.expit(z), t, "none")) <= 1e-9


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bce_with_logits_finite_for_huge_logits(dtype):
    z = np.array([1e4, -1e4, 1e4, -1e4], dtype=dtype)
    t = np.array([0.0, 1.0, 1.0, 0.0], dtype=dtype)
    np.testing.assert_allclose(L.binary_cross_entropy_with_logits(z, t, "none"), [1e4, 1e4, 0.0, 0.0])
    g = jax.grad(lambda v: L.binary_cross_entropy_with_logits(v, t, "sum"))(jnp.asarray(z))
    np.testing.assert_array_equal(g, scipy.special.expit(z.astype(np.float64)) - t)   # sigma(z) - t


def test_integer_targets_are_accepted_for_binary_losses():
    z = np.array([0.3, -1.0])
    assert float(L.binary_cross_entropy_with_logits(z, np.array([1, 0]))) == pytest.approx(
        float(L.binary_cross_entropy_with_logits(z, np.array([1.0, 0.0]))))


# ----------------------------------------------------------------------------- KL
def test_kl_matches_scipy_and_optax():
    rng = np.random.default_rng(7)
    p = rng.dirichlet(np.ones(6), size=4)
    q = rng.dirichlet(np.ones(6), size=4)
    expected = scipy.special.rel_entr(p, q).sum(-1)
    assert rel_err(L.kl_divergence(p, q), expected) <= 1e-12
    assert rel_err(L.kl_divergence(p, q), optax.kl_divergence(jnp.log(q), jnp.asarray(p))) <= 1e-12
    assert rel_err(L.kl_divergence(p.T, q.T, axis=0), expected) <= 1e-12


def test_kl_conventions_zero_p_and_zero_q():
    p = np.array([0.5, 0.5, 0.0])
    q = np.array([0.25, 0.25, 0.5])
    assert float(L.kl_divergence(p, q)) == pytest.approx(np.log(2.0))      # 0 log(0/q) = 0
    assert float(L.kl_divergence(p, np.array([0.0, 0.5, 0.5]))) == np.inf  # p > 0, q = 0 -> inf
    assert float(scipy.special.rel_entr(p, np.array([0.0, 0.5, 0.5])).sum()) == np.inf
    assert float(L.kl_divergence(np.array([0.0, 1.0]), np.array([0.0, 1.0]))) == 0.0
    g = jax.grad(lambda a: L.kl_divergence(a, q))(jnp.asarray(p))
    assert np.all(np.isfinite(g))


def test_kl_is_nonnegative_zero_at_equality_and_not_symmetric():
    p = np.array([0.7, 0.2, 0.1])
    q = np.array([0.1, 0.3, 0.6])
    assert float(L.kl_divergence(p, p)) == 0.0
    assert float(L.kl_divergence(p, q)) > 0 and float(L.kl_divergence(q, p)) > 0
    pq, qp = float(L.kl_divergence(p, q)), float(L.kl_divergence(q, p))
    assert pq == pytest.approx(scipy.special.rel_entr(p, q).sum(), rel=1e-12)   # 1.1019
    assert qp == pytest.approx(scipy.special.rel_entr(q, p).sum(), rel=1e-12)   # 1.0021
    assert abs(pq - qp) > 0.05


def test_losses_work_inside_jit(data):
    logits, labels, probs = data
    f = jax.jit(lambda z: L.cross_entropy(z, labels) + L.kl_divergence(probs, jax.nn.softmax(z)).sum())
    assert np.isfinite(float(f(jnp.asarray(logits))))
    g = jax.jit(jax.grad(lambda z: L.binary_cross_entropy_with_logits(z, probs)))(jnp.asarray(logits))
    assert g.shape == logits.shape


# ----------------------------------------------------------------------------- bad input
LOSS_CALLS = {
    "mse": lambda r: L.mse(np.ones(3), np.zeros(3), r),
    "cross_entropy": lambda r: L.cross_entropy(np.zeros((2, 3)), np.array([0, 1]), r),
    "binary_cross_entropy": lambda r: L.binary_cross_entropy(np.full(2, 0.5), np.ones(2), r),
    "binary_cross_entropy_with_logits": lambda r: L.binary_cross_entropy_with_logits(np.zeros(2), np.ones(2), r),
}


@pytest.mark.parametrize("name", list(LOSS_CALLS))
def test_unknown_reduction_is_rejected(name):
    with pytest.raises(ValueError, match="reduction must be one of 'mean', 'sum', 'none'; got 'avg'"):
        LOSS_CALLS[name]("avg")
    with pytest.raises(TypeError, match="reduction must be a string"):
        LOSS_CALLS[name](None)


def test_cross_entropy_grad_rejects_reduction_none():
    with pytest.raises(ValueError, match="reduction must be one of 'mean', 'sum'; got 'none'"):
        L.cross_entropy_grad(np.zeros((2, 3)), np.array([0, 1]), reduction="none")


def test_mse_rejects_bad_input():
    with pytest.raises(ValueError, match=r"pred and target must have the same shape, got \(3,\) and \(3, 1\)"):
        L.mse(np.ones(3), np.ones((3, 1)))
    with pytest.raises(ValueError, match="target must be finite, got 1 NaN"):
        L.mse(np.ones(3), np.array([0.0, np.nan, 1.0]))
    with pytest.raises(ValueError, match="pred must be finite"):
        L.mse(np.array([np.inf, 0.0]), np.ones(2))
    with pytest.raises(TypeError, match="pred must be a floating-point array"):
        L.mse(np.array([1, 2]), np.ones(2))
    with pytest.raises(TypeError, match="target must be a floating-point array"):
        L.mse(np.ones(2), "12")


@pytest.mark.parametrize("f", [L.cross_entropy, L.cross_entropy_grad])
def test_cross_entropy_rejects_bad_input(f):
    z = np.zeros((4, 3))
    with pytest.raises(ValueError, match=r"logits must have 2 dimension\(s\).*got shape \(3,\)"):
        f(np.zeros(3), np.array([0]))
    with pytest.raises(TypeError, match="logits must be a floating-point array"):
        f(np.zeros((4, 3), dtype=int), np.array([0, 1, 2, 0]))
    with pytest.raises(ValueError, match="logits must be finite, got 1 NaN"):
        f(np.array([[np.nan, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0]]), np.array([0, 1, 2, 0]))
    with pytest.raises(ValueError, match=r"labels must have shape \(4,\) \(one class index per row\), got \(4, 1\)"):
        f(z, np.array([[0], [1], [2], [0]]))
    with pytest.raises(ValueError, match=r"labels must be class indices in \[0, 2\], got values from 0 to 3"):
        f(z, np.array([0, 1, 3, 0]))
    with pytest.raises(ValueError, match=r"labels must be class indices in \[0, 2\], got values from -1"):
        f(z, np.array([0, -1, 2, 0]))
    with pytest.raises(ValueError, match=r"labels of class probabilities must have the shape of the logits"):
        f(z, np.array([0.0, 1.0, 2.0, 0.0]))
    with pytest.raises(ValueError, match="labels must be finite, got 1 NaN"):
        f(z, np.array([[1.0, 0, 0], [np.nan, 0, 1], [0, 1, 0], [0, 0, 1]]))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 1\]"):
        f(z, np.array([[2.0, -1.0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]]))
    with pytest.raises(ValueError, match="labels must be probability distributions summing to 1"):
        f(z, np.full((4, 3), 0.5))
    with pytest.raises(TypeError, match="labels must be an integer array"):
        f(z, "0123")
    with pytest.raises(TypeError, match="labels must be an integer array"):
        f(z, np.array([True, False, True, False]))


def test_binary_cross_entropy_rejects_bad_input():
    p = np.array([0.2, 0.8])
    with pytest.raises(ValueError, match=r"probs must lie in \[0, 1\], got values from -0.1 to 0.8"):
        L.binary_cross_entropy(np.array([-0.1, 0.8]), np.ones(2))
    with pytest.raises(ValueError, match=r"probs must lie in \[0, 1\]"):
        L.binary_cross_entropy(np.array([0.2, 1.5]), np.ones(2))
    with pytest.raises(ValueError, match="probs must be finite, got 1 NaN"):
        L.binary_cross_entropy(np.array([np.nan, 0.5]), np.ones(2))
    with pytest.raises(ValueError, match="targets must be finite, got 1 NaN"):
        L.binary_cross_entropy(p, np.array([np.nan, 1.0]))
    with pytest.raises(ValueError, match=r"targets must lie in \[0, 1\]"):
        L.binary_cross_entropy(p, np.array([0.0, 2.0]))
    with pytest.raises(ValueError, match="probs and targets must have the same shape"):
        L.binary_cross_entropy(p, np.ones(3))
    with pytest.raises(TypeError, match="probs must be a floating-point array"):
        L.binary_cross_entropy(np.array([0, 1]), np.ones(2))


def test_binary_cross_entropy_with_logits_rejects_bad_input():
    z = np.array([0.2, -3.0])
    with pytest.raises(ValueError, match="logits must be finite, got 1 NaN"):
        L.binary_cross_entropy_with_logits(np.array([np.nan, 0.0]), np.ones(2))
    with pytest.raises(ValueError, match="targets must be finite, got 1 NaN"):
        L.binary_cross_entropy_with_logits(z, np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match=r"targets must lie in \[0, 1\]"):
        L.binary_cross_entropy_with_logits(z, np.array([1.0, -1.0]))
    with pytest.raises(ValueError, match="logits and targets must have the same shape"):
        L.binary_cross_entropy_with_logits(z, np.ones((2, 1)))
    with pytest.raises(TypeError, match="logits must be a floating-point array"):
        L.binary_cross_entropy_with_logits(np.array([1, 0]), np.ones(2))


def test_kl_divergence_rejects_bad_input():
    p = np.array([0.5, 0.5])
    with pytest.raises(ValueError, match="p and q must have the same shape"):
        L.kl_divergence(p, np.array([0.2, 0.3, 0.5]))
    with pytest.raises(ValueError, match="q must be finite, got 1 NaN"):
        L.kl_divergence(p, np.array([np.nan, 0.5]))
    with pytest.raises(ValueError, match=r"p must lie in \[0, 1\]"):
        L.kl_divergence(np.array([1.5, -0.5]), p)
    with pytest.raises(ValueError, match="q must be probability distributions summing to 1"):
        L.kl_divergence(p, np.array([0.5, 0.2]))
    with pytest.raises(TypeError, match="p must be a floating-point array"):
        L.kl_divergence(np.array([1, 0]), p)
    with pytest.raises(ValueError, match=r"axis must be in \[-1, 0\].*got 1"):
        L.kl_divergence(p, p, axis=1)
    with pytest.raises(TypeError, match="axis must be an int"):
        L.kl_divergence(p, p, axis="0")
    with pytest.raises(ValueError, match="p must have at least 1 dimension"):
        L.kl_divergence(np.float64(1.0), np.float64(1.0))


def test_cross_entropy_is_not_entropy_and_not_bounded_by_log_c():
    from scipy.stats import entropy

    y = np.array([[0.6, 0.3, 0.1]])
    # the best prediction (q = y) costs the label entropy H(y), not 0
    assert float(L.cross_entropy(np.log(y), y)) == pytest.approx(entropy(y[0]), rel=1e-12)
    # H(y, q) = H(y) + KL(y || q)
    q_logits = np.array([[0.0, 1.0, 2.0]])
    q = scipy.special.softmax(q_logits, axis=1)
    assert float(L.cross_entropy(q_logits, y)) == pytest.approx(
        entropy(y[0]) + float(L.kl_divergence(y, q)[0]), rel=1e-12)
    # the uniform prediction costs log C; a confident wrong one costs far more
    assert float(L.cross_entropy(np.zeros((1, 3)), np.array([2]))) == pytest.approx(np.log(3))
    assert float(L.cross_entropy(np.array([[10.0, 0.0, -10.0]]), np.array([2]))) > 10 * np.log(3)


# ----------------------------------------------------------------------------- properties (hypothesis)
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra.numpy import arrays  # noqa: E402

_logit_rows = arrays(np.float64, (6, 4), elements=st.floats(-50.0, 50.0, allow_nan=False))


@settings(max_examples=40, deadline=None)
@given(z=_logit_rows, shift=st.floats(-100.0, 100.0), labels=arrays(np.int64, (6,), elements=st.integers(0, 3)))
def test_cross_entropy_properties(z, shift, labels):
    value = float(L.cross_entropy(z, labels, reduction="sum"))
    assert value >= 0.0
    # invariant to adding a constant to every logit of a row (softmax is)
    assert float(L.cross_entropy(z + shift, labels, reduction="sum")) == pytest.approx(value, rel=1e-9, abs=1e-9)
    # the gradient of each row sums to zero (softmax - onehot)
    np.testing.assert_allclose(np.asarray(L.cross_entropy_grad(z, labels)).sum(axis=1), 0.0, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(a=_logit_rows, b=_logit_rows)
def test_kl_properties(a, b):
    p = scipy.special.softmax(a, axis=1)
    q = scipy.special.softmax(b, axis=1)
    kl = np.asarray(L.kl_divergence(p, q))
    assert np.all(kl >= -1e-12)
    np.testing.assert_allclose(kl, scipy.special.rel_entr(p, q).sum(1), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(np.asarray(L.kl_divergence(p, p)), 0.0, atol=1e-15)


@pytest.mark.parametrize("t", [0.0, 0.3, 1.0])
def test_bce_with_logits_gradient_at_zero_is_sigmoid_minus_target(t):
    # The kink of max(z, 0) and |z| at z = 0 must not leak into the gradient: d/dz = sigma(0) - t.
    import jax
    from course_lib.losses import binary_cross_entropy_with_logits
    g = jax.grad(lambda z: binary_cross_entropy_with_logits(z, jnp.full((1,), t)))(jnp.zeros(1))
    fd = (float(binary_cross_entropy_with_logits(jnp.full((1,), 1e-6), jnp.full((1,), t)))
          - float(binary_cross_entropy_with_logits(jnp.full((1,), -1e-6), jnp.full((1,), t)))) / 2e-6
    np.testing.assert_allclose(float(g[0]), 0.5 - t, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(fd, 0.5 - t, rtol=1e-7, atol=1e-9)
