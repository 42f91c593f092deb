"""course_lib.regularization against jax.grad, scikit-learn, SciPy and float64 NumPy formulas."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage as ndi
from sklearn import datasets, linear_model
from sklearn.model_selection import PredefinedSplit
from sklearn.model_selection import learning_curve as sk_learning_curve
from sklearn.utils.class_weight import compute_class_weight

from course_lib import classic
from course_lib import regularization as R


@pytest.fixture
def params():
    rng = np.random.default_rng(0)
    return [{"W": jnp.asarray(rng.normal(size=(3, 4))), "b": jnp.asarray(rng.normal(size=4))},
            {"W": jnp.asarray(rng.normal(size=(4, 2))), "b": jnp.asarray(rng.normal(size=2))}]


def test_penalties_match_numpy_formulas(params):
    W = np.concatenate([np.ravel(p["W"]) for p in params])
    assert float(R.l1_penalty(params, 0.3)) == pytest.approx(0.3 * np.abs(W).sum(), rel=1e-12)
    assert float(R.l2_penalty(params, 0.3)) == pytest.approx(0.15 * (W ** 2).sum(), rel=1e-12)
    assert float(R.elastic_net_penalty(params, 0.3, 0.25)) == pytest.approx(
        0.3 * (0.25 * np.abs(W).sum() + 0.375 * (W ** 2).sum()), rel=1e-12)
    all_ = np.concatenate([np.ravel(leaf) for leaf in jax.tree_util.tree_leaves(params)])
    assert float(R.l2_penalty(params, 1.0, include_bias=True)) == pytest.approx(0.5 * (all_ ** 2).sum())


@pytest.mark.parametrize("kind", ["l1", "l2", "elastic_net"])
def test_penalty_grad_equals_jax_grad(params, kind):
    f = {"l1": lambda p: R.l1_penalty(p, 0.2), "l2": lambda p: R.l2_penalty(p, 0.2),
         "elastic_net": lambda p: R.elastic_net_penalty(p, 0.2, 0.4)}[kind]
    ours = R.penalty_grad(params, kind, 0.2, l1_ratio=0.4)
    for a, b in zip(jax.tree_util.tree_leaves(ours), jax.tree_util.tree_leaves(jax.grad(f)(params))):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)


def test_l2_gradient_step_is_weight_decay(params):
    lr, lam = 0.1, 0.5
    g = R.penalty_grad(params, "l2", lam)
    stepped = jax.tree_util.tree_map(lambda p, gg: p - lr * gg, params, g)
    np.testing.assert_allclose(stepped[0]["W"], (1 - lr * lam) * params[0]["W"], rtol=1e-12)
    np.testing.assert_allclose(stepped[0]["b"], params[0]["b"])   # biases not decayed


def test_penalties_work_under_jit(params):
    assert float(jax.jit(lambda p: R.l1_penalty(p, 1.0))(params)) == pytest.approx(float(R.l1_penalty(params, 1.0)))


@pytest.mark.parametrize("alpha,l1_ratio", [(0.5, 0.5), (2.0, 0.9), (1.0, 1.0), (3.0, 0.0)])
def test_elastic_net_regression_equals_sklearn(alpha, l1_ratio):
    X, y = datasets.make_regression(n_samples=60, n_features=6, noise=5.0, random_state=1)
    p = R.elastic_net_regression(X, y, alpha=alpha, l1_ratio=l1_ratio, n_steps=20000)
    ref = linear_model.ElasticNet(alpha=alpha, l1_ratio=l1_ratio, tol=1e-14, max_iter=100_000).fit(X, y)
    np.testing.assert_allclose(p["w"], ref.coef_, atol=1e-7)
    np.testing.assert_allclose(p["b"], ref.intercept_, atol=1e-7)
    if l1_ratio == 1.0:
        np.testing.assert_allclose(p["w"], classic.lasso_regression(X, y, alpha=alpha)["w"], atol=1e-7)


def test_soft_threshold():
    np.testing.assert_allclose(R.soft_threshold(np.array([-2.0, -0.5, 0.0, 0.3, 1.5]), 0.5),
                               [-1.5, 0.0, 0.0, 0.0, 1.0])


def test_penalized_grad_fn_equals_jax_grad(params):
    x = jnp.asarray(np.random.default_rng(1).normal(size=(5, 3)))
    y = jnp.array([0, 1, 1, 0, 1])

    def apply_fn(p, x):
        return jnp.tanh(x @ p[0]["W"] + p[0]["b"]) @ p[1]["W"] + p[1]["b"]

    loss, grads = R.penalized_grad_fn(apply_fn, "l2", 0.1)(params, x, y)
    ref = lambda p: jnp.mean(-jax.nn.log_softmax(apply_fn(p, x))[jnp.arange(5), y]) + 0.05 * sum(
        jnp.sum(q["W"] ** 2) for q in p)
    assert float(loss) == pytest.approx(float(ref(params)), rel=1e-12)
    for a, b in zip(jax.tree_util.tree_leaves(grads), jax.tree_util.tree_leaves(jax.grad(ref)(params))):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-14)


# ---------------------------------------------------------------- augmentation
@pytest.fixture(scope="module")
def digits():
    X, _ = datasets.load_digits(return_X_y=True)
    return (X[:6] / 16.0).reshape(6, 8, 8)


def test_shift_equals_scipy(digits):
    dx, dy = np.array([1, -2, 0, 3, -1, 0]), np.array([0, 1, -1, 2, -3, 0])
    out = R.shift_images(digits, dx, dy)
    for i in range(6):
        np.testing.assert_allclose(out[i], ndi.shift(digits[i], (dy[i], dx[i]), order=0, cval=0.0), atol=1e-12)


@pytest.mark.parametrize("angle", [-15.0, 7.0, 90.0])
def test_rotate_equals_scipy(digits, angle):
    out = R.rotate_images(digits, angle)
    for i in range(6):
        ref = ndi.rotate(digits[i], angle, reshape=False, order=1, mode="constant", cval=0.0)
        np.testing.assert_allclose(out[i], ref, atol=1e-10)


def test_noise_and_augment_are_seeded_and_bounded(digits):
    a = R.augment_images(digits, seed=3)
    np.testing.assert_array_equal(a, R.augment_images(digits, seed=3))
    assert not np.allclose(a, R.augment_images(digits, seed=4))
    assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0 and a.shape == digits.shape
    n = R.add_noise(digits, 0.1, seed=0, clip=False) - digits
    assert abs(float(np.std(n)) - 0.1) < 0.01


# ---------------------------------------------------------------- imbalanced data
def test_class_weights_equal_sklearn():
    y = np.array([0] * 90 + [1] * 8 + [2] * 2)
    np.testing.assert_allclose(R.class_weights(y), compute_class_weight("balanced", classes=np.arange(3), y=y))
    w = R.sample_weights(y)
    assert np.allclose([w[y == c].sum() for c in range(3)], 100 / 3)


def test_weighted_cross_entropy_numpy_formula():
    rng = np.random.default_rng(2)
    logits, labels, w = rng.normal(size=(7, 3)), rng.integers(0, 3, 7), np.array([0.5, 2.0, 1.0])
    logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    ref = -np.sum(w[labels] * logp[np.arange(7), labels]) / w[labels].sum()
    assert float(R.weighted_cross_entropy(logits, labels, w)) == pytest.approx(ref, rel=1e-12)


def test_weighted_cross_entropy_rejects_labels_outside_the_classes():
    """A label of -1 would wrap around to the last class, one past the last class would read nan."""
    logits, w = np.zeros((3, 4)), np.ones(4)
    for bad in (-1, 4):
        with pytest.raises(ValueError, match=rf"labels must be class indices in \[0, 3\], got values from"):
            R.weighted_cross_entropy(logits, np.array([0, 1, bad]), w)
    with pytest.raises(TypeError, match="labels must be an integer array"):
        R.weighted_cross_entropy(logits, np.array([0.0, 1.0, 2.0]), w)
    with pytest.raises(ValueError, match="weights must be >= 0"):
        R.weighted_cross_entropy(logits, np.array([0, 1, 2]), np.array([1.0, -1.0, 1.0, 1.0]))
    # under jit (tracers) only shapes are checked, and the result equals the eager one
    labels = np.array([0, 1, 2])
    assert float(jax.jit(R.weighted_cross_entropy)(logits, labels, w)) == pytest.approx(np.log(4))


def test_over_and_undersampling_balance_classes():
    X = np.arange(30, dtype=float)[:, None]; y = np.array([0] * 24 + [1] * 6)
    Xo, yo = R.oversample(X, y, seed=0)
    assert np.bincount(yo).tolist() == [24, 24]
    assert set(Xo[yo == 1, 0]) == set(X[y == 1, 0])          # only copies of real minority rows
    Xu, yu = R.undersample(X, y, seed=0)
    assert np.bincount(yu).tolist() == [6, 6] and len(set(Xu[:, 0])) == 12


def test_learning_curve_equals_sklearn():
    X, y = datasets.make_regression(n_samples=80, n_features=10, noise=10.0, random_state=0)
    fold = np.r_[np.full(60, -1), np.zeros(20, int)]
    sizes = np.array([12, 20, 40, 60])
    fit = lambda X, y: classic.ridge_regression(X, y, alpha=1.0)
    score = lambda p, X, y: -float(np.mean((np.asarray(classic.linear_predict(p, X)) - y) ** 2))
    tr, va = R.learning_curve(fit, score, X[:60], y[:60], X[60:], y[60:], sizes)
    _, rtr, rva = sk_learning_curve(linear_model.Ridge(alpha=1.0), X, y, train_sizes=sizes,
                                    cv=PredefinedSplit(fold), scoring="neg_mean_squared_error")
    np.testing.assert_allclose(tr, rtr[:, 0], rtol=1e-8)
    np.testing.assert_allclose(va, rva[:, 0], rtol=1e-8)


# ---------------------------------------------------------------- bad input
def test_bad_inputs_raise_clear_errors(params, digits):
    with pytest.raises(ValueError, match="lam must be a finite number >= 0"):
        R.l2_penalty(params, -1.0)
    with pytest.raises(ValueError, match="l1_ratio must lie in"):
        R.elastic_net_penalty(params, 1.0, 1.5)
    with pytest.raises(ValueError, match="kind must be one of"):
        R.penalty_grad(params, "l3", 1.0)
    with pytest.raises(TypeError, match="params must be"):
        R.l1_penalty(None, 1.0)
    with pytest.raises(ValueError, match="images must have 3 dimension"):
        R.shift_images(digits[0], 1, 1)
    with pytest.raises(TypeError, match="dx must be integer"):
        R.shift_images(digits, 0.5, 1)
    with pytest.raises(ValueError, match="angles must have shape"):
        R.rotate_images(digits, np.zeros(3))
    with pytest.raises(ValueError, match="images must be finite"):
        R.add_noise(np.full((1, 2, 2), np.nan), 0.1)
    with pytest.raises(ValueError, match="every class 0..2 must occur"):
        R.class_weights(np.array([0, 2, 2]))
    with pytest.raises(ValueError, match="weights must have shape"):
        R.weighted_cross_entropy(np.zeros((2, 3)), np.array([0, 1]), np.ones(2))
    with pytest.raises(ValueError, match="sizes must be"):
        R.learning_curve(lambda X, y: None, lambda m, X, y: 0.0, np.zeros((5, 1)), np.zeros(5),
                         np.zeros((2, 1)), np.zeros(2), [0, 3])


# ---------------------------------------------------------------- multi-seed training sweep
def _sweep_data():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(30, 4))
    y = (X[:, 0] + X[:, 1] > 0).astype(np.int32) + (X[:, 2] > 1).astype(np.int32)
    Xv = rng.normal(size=(11, 4))
    yv = (Xv[:, 0] + Xv[:, 1] > 0).astype(np.int32)
    return X, y, Xv, yv


def test_mlp_sweep_equals_a_plain_optax_loop_per_run():
    """Every (lam, seed) run equals a separate Python loop: optax.adam on CE + lam/2 sum W^2 (float64),
    from init_mlp(seed) with the mini-batches of numpy.random.default_rng(seed)."""
    optax = pytest.importorskip("optax")
    from course_lib import layers
    X, y, Xv, yv = _sweep_data()
    sizes, lams, seeds, epochs, bs, lr = (4, 8, 3), [0.0, 0.1], [0, 5], 3, 8, 0.01
    out = R.mlp_sweep(sizes, X, y, Xv, yv, lams=lams, seeds=seeds, epochs=epochs, batch_size=bs, learning_rate=lr)
    assert out["val_loss"].shape == (2, 2, epochs) and out["train_acc"].shape == (2, 2)

    def ce(p, xb, yb):
        logp = jax.nn.log_softmax(layers.mlp_apply(p, xb, "relu"))
        return -jnp.mean(logp[jnp.arange(len(yb)), yb])

    for i, lam in enumerate(lams):
        for j, seed in enumerate(seeds):
            p = layers.init_mlp(sizes, "he", seed=seed, dtype=np.float64)
            opt = optax.adam(lr)
            state = opt.init(p)
            rng = np.random.default_rng(seed)
            grad = jax.jit(jax.grad(lambda p, xb, yb: ce(p, xb, yb) + 0.5 * lam * sum(jnp.sum(l["W"] ** 2) for l in p)))
            val_loss, train_loss = [], []
            for _ in range(epochs):
                perm = rng.permutation(len(X))[: (len(X) // bs) * bs].reshape(-1, bs)
                losses = []
                for ib in perm:
                    losses.append(float(ce(p, X[ib], y[ib])))
                    updates, state = opt.update(grad(p, X[ib], y[ib]), state, p)
                    p = optax.apply_updates(p, updates)
                train_loss.append(np.mean(losses))
                val_loss.append(float(ce(p, Xv, yv)))
            np.testing.assert_allclose(out["val_loss"][i, j], val_loss, rtol=1e-9)
            np.testing.assert_allclose(out["train_loss"][i, j], train_loss, rtol=1e-9)
            logits = np.asarray(layers.mlp_apply(p, Xv, "relu"))
            np.testing.assert_allclose(out["val_acc"][i, j, -1], np.mean(logits.argmax(1) == yv))
            norm = np.sqrt(sum(float(np.sum(np.asarray(l["W"]) ** 2)) for l in p))
            assert out["weight_norm"][i, j] == pytest.approx(norm, rel=1e-9)
            for mine, ref in zip(jax.tree_util.tree_leaves(out["params"]), jax.tree_util.tree_leaves(p)):
                np.testing.assert_allclose(np.asarray(mine)[i, j], ref, rtol=1e-8, atol=1e-12)


def test_mlp_sweep_bad_inputs_raise_clear_errors():
    X, y, Xv, yv = _sweep_data()
    kw = dict(lams=[0.0], seeds=[0], epochs=1, batch_size=8)
    with pytest.raises(ValueError, match=r"lams\[0\] must be a finite number >= 0, got -1.0"):
        R.mlp_sweep((4, 8, 3), X, y, Xv, yv, **{**kw, "lams": [-1.0]})
    with pytest.raises(TypeError, match=r"seeds\[0\] must be an int, got float"):
        R.mlp_sweep((4, 8, 3), X, y, Xv, yv, **{**kw, "seeds": [0.5]})
    with pytest.raises(ValueError, match="X must have sizes"):
        R.mlp_sweep((5, 8, 3), X, y, Xv, yv, **kw)
    with pytest.raises(ValueError, match="class indices"):
        R.mlp_sweep((4, 8, 2), X, y, Xv, yv, **kw)
    with pytest.raises(ValueError, match="batch_size must be at most"):
        R.mlp_sweep((4, 8, 3), X, y, Xv, yv, **{**kw, "batch_size": 31})
    with pytest.raises(ValueError, match="epochs must be an int >= 1"):
        R.mlp_sweep((4, 8, 3), X, y, Xv, yv, **{**kw, "epochs": 0})
    with pytest.raises(ValueError, match="X_val must have shape"):
        R.mlp_sweep((4, 8, 3), X, y, Xv[:, :3], yv, **kw)
    with pytest.raises(ValueError, match="X must be finite"):
        R.mlp_sweep((4, 8, 3), np.where(X > 1, np.nan, X), y, Xv, yv, **kw)
