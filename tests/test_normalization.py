"""course_lib.normalization: batch/layer norm forward against a float64 NumPy formula, the hand-written
backward against jax.grad (float64, relative error <= 1e-7), running statistics, the deep MLPs."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from course_lib import checks
from course_lib import normalization as N


def _np_normalize(x, axis, eps=1e-5):
    mu = x.mean(axis=axis, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=axis, keepdims=True)
    return (x - mu) / np.sqrt(var + eps), mu, var


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_normalize_and_its_backward_match_numpy_and_jax_grad(axis):
    rng = np.random.default_rng(7)
    x, dxhat = rng.normal(1.0, 2.0, size=(6, 4)), rng.normal(size=(6, 4))
    xhat, inv_std, mu, var = N.normalize(x, axis, 1e-5)
    want, want_mu, want_var = _np_normalize(x, axis)
    np.testing.assert_allclose(xhat, want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(mu, want_mu, rtol=1e-12)
    np.testing.assert_allclose(var, want_var, rtol=1e-12)
    ref = jax.grad(lambda v: jnp.sum(N.normalize(v, axis)[0] * dxhat))(x)
    assert checks.rel_error(N.normalize_backward(dxhat, xhat, inv_std, axis), ref) <= 1e-7


@pytest.fixture
def batch():
    rng = np.random.default_rng(0)
    x = rng.normal(2.0, 3.0, size=(8, 5))
    gamma, beta = rng.normal(size=5), rng.normal(size=5)
    state = {"mean": rng.normal(size=5), "var": rng.uniform(0.5, 2.0, size=5)}
    return x, gamma, beta, state, rng.normal(size=(8, 5))


def test_batchnorm_train_forward_and_running_statistics(batch):
    x, gamma, beta, state, _ = batch
    y, _, new = N.batchnorm_forward(x, gamma, beta, state, train=True, momentum=0.8, eps=1e-5)
    xhat, mu, var = _np_normalize(x, 0)
    np.testing.assert_allclose(y, gamma * xhat + beta, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(new["mean"], 0.8 * state["mean"] + 0.2 * mu[0], rtol=1e-12)
    np.testing.assert_allclose(new["var"], 0.8 * state["var"] + 0.2 * var[0], rtol=1e-12)
    # each feature of y has mean beta and standard deviation |gamma| (up to eps)
    np.testing.assert_allclose(np.asarray(y).mean(0), beta, atol=1e-12)


def test_batchnorm_eval_uses_running_statistics_and_ignores_batch_mates(batch):
    x, gamma, beta, state, _ = batch
    y, _, same = N.batchnorm_forward(x, gamma, beta, state, train=False)
    want = gamma * (x - state["mean"]) / np.sqrt(state["var"] + 1e-5) + beta
    np.testing.assert_allclose(y, want, rtol=1e-12)
    assert same["mean"] is not None
    np.testing.assert_array_equal(same["mean"], state["mean"])
    y_alone, _, _ = N.batchnorm_forward(x[:1], gamma, beta, state, train=False)
    np.testing.assert_allclose(y_alone, y[:1], rtol=1e-12)
    y_train_a, _, _ = N.batchnorm_forward(x[:4], gamma, beta, state, train=True)
    assert not np.allclose(y_train_a, y[:4])        # in training mode the batch matters


@pytest.mark.parametrize("train", [True, False])
def test_batchnorm_backward_matches_jax_grad(batch, train):
    x, gamma, beta, state, dy = batch

    def f(x, gamma, beta):
        if train:
            xhat = (x - x.mean(0)) / jnp.sqrt(x.var(0) + 1e-5)
        else:
            xhat = (x - state["mean"]) / jnp.sqrt(state["var"] + 1e-5)
        return jnp.sum((gamma * xhat + beta) * dy)

    _, cache, _ = N.batchnorm_forward(x, gamma, beta, state, train=train)
    mine = N.batchnorm_backward(dy, cache)
    ref = jax.grad(f, argnums=(0, 1, 2))(x, gamma, beta)
    for m, r in zip(mine, ref):
        assert checks.rel_error(m, r) <= 1e-7
        np.testing.assert_allclose(m, r, rtol=1e-10, atol=1e-12)


def test_batchnorm_backward_matches_finite_differences(batch):
    x, gamma, beta, state, dy = batch
    _, cache, _ = N.batchnorm_forward(x, gamma, beta, state)
    dx, _, _ = N.batchnorm_backward(dy, cache)
    num = checks.numerical_gradient(lambda v: float(np.sum(N.batchnorm_forward(v, gamma, beta, state)[0] * dy)), x)
    assert checks.rel_error(dx, num) <= 1e-6


@pytest.mark.parametrize("shape", [(6, 7), (2, 5, 4)])
def test_layernorm_forward_and_backward_match_references(shape):
    rng = np.random.default_rng(1)
    x = rng.normal(-1.0, 2.0, size=shape)
    gamma, beta, dy = rng.normal(size=shape[-1]), rng.normal(size=shape[-1]), rng.normal(size=shape)
    y, cache = N.layernorm_forward(x, gamma, beta)
    xhat, _, _ = _np_normalize(x, -1)
    np.testing.assert_allclose(y, gamma * xhat + beta, rtol=1e-12, atol=1e-12)

    def f(x, gamma, beta):
        xh = (x - x.mean(-1, keepdims=True)) / jnp.sqrt(x.var(-1, keepdims=True) + 1e-5)
        return jnp.sum((gamma * xh + beta) * dy)

    ref = jax.grad(f, argnums=(0, 1, 2))(x, gamma, beta)
    for m, r in zip(N.layernorm_backward(dy, cache), ref):
        assert m.shape == r.shape
        assert checks.rel_error(m, r) <= 1e-7


def test_layernorm_is_the_same_in_any_batch():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(5, 6))
    g, b = np.ones(6), np.zeros(6)
    np.testing.assert_allclose(N.layernorm_forward(x[2:3], g, b)[0], N.layernorm_forward(x, g, b)[0][2:3], rtol=1e-12)


def test_bias_before_batchnorm_gets_zero_gradient(batch):
    x, gamma, beta, state, dy = batch
    bias_grad = jax.grad(lambda c: jnp.sum(N.batchnorm_forward(x + c, gamma, beta, state)[0] * dy))(np.ones(5))
    np.testing.assert_allclose(bias_grad, 0.0, atol=1e-12)


# --------------------------------------------------------------------------------- deep networks
def _reference_forward(params, state, x, network, f):
    """The four blocks written again with NumPy-style jnp (independent of normalization._block)."""
    P = {k: np.asarray(v, np.float64) for k, v in params.items()}
    h = f(x @ P["W_in"] + P["b_in"])
    for l in range(P["W"].shape[0]):
        W, b, g, be = P["W"][l], P["b"][l], P["gamma"][l], P["beta"][l]
        if network == "plain":
            h = f(h @ W + b)
        elif network == "batchnorm":
            z = h @ W
            h = f(g * _np_normalize(z, 0)[0] + be)
        elif network == "residual":
            h = h + f(h) @ W + b
        else:
            h = h + f(g * _np_normalize(h, -1)[0] + be) @ W + b
    return h @ P["W_out"] + P["b_out"]


@pytest.mark.parametrize("network", N.NETWORKS)
@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
def test_deep_mlp_forward_matches_a_reference(network, activation):
    params, state = N.init_deep_mlp(6, 5, 4, 3, network, activation=activation, seed=3)
    params = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params)
    state = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), state)
    x = np.random.default_rng(4).normal(size=(7, 6))
    f = {"relu": lambda z: np.maximum(z, 0), "sigmoid": lambda z: 1 / (1 + np.exp(-z))}[activation]
    logits, new_state = N.deep_mlp_forward(params, state, x, network, activation=activation)
    np.testing.assert_allclose(logits, _reference_forward(params, state, x, network, f), rtol=1e-9, atol=1e-12)
    moved = not np.allclose(new_state["mean"], state["mean"])
    assert moved == (network == "batchnorm")         # only batch norm keeps running statistics


def test_init_deep_mlp_scales():
    p, s = N.init_deep_mlp(64, 32, 20, 10, "plain", activation="relu", seed=0)
    assert p["W"].shape == (20, 32, 32) and s["mean"].shape == (20, 32) and p["W"].dtype == jnp.float32
    assert np.std(np.asarray(p["W"])) == pytest.approx(np.sqrt(2 / 32), rel=0.05)
    r, _ = N.init_deep_mlp(64, 32, 20, 10, "residual", activation="relu", seed=0)
    np.testing.assert_allclose(np.asarray(r["W"]), np.asarray(p["W"]) / np.sqrt(20), rtol=1e-6)
    q, _ = N.init_deep_mlp(64, 32, 20, 10, "plain", activation="sigmoid", seed=0)
    np.testing.assert_allclose(np.asarray(q["W"]) * np.sqrt(2), np.asarray(p["W"]), rtol=1e-6)


def test_fit_and_evaluate_deep_mlps_train_a_small_problem():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(120, 4)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 0).astype(np.int32)
    inits = [N.init_deep_mlp(4, 8, 3, 2, "batchnorm", seed=s) for s in (0, 1)]
    P = jax.tree.map(lambda *a: jnp.stack(a), *[i[0] for i in inits])
    S = jax.tree.map(lambda *a: jnp.stack(a), *[i[1] for i in inits])
    batches = np.stack([np.random.default_rng(s).integers(0, 120, (150, 32)) for s in (0, 1)])
    P2, S2, losses = N.fit_deep_mlps(P, S, X, y, batches, "batchnorm", learning_rate=1e-2)
    assert losses.shape == (2, 150) and np.all(losses[:, -10:].mean(1) < 0.5 * losses[:, :10].mean(1))
    loss, acc = N.evaluate_deep_mlps(P2, S2, X, y, "batchnorm")
    assert loss.shape == acc.shape == (2,) and np.all(np.asarray(acc) > 0.9)
    # evaluation mode: the running statistics, not the batch's
    one = jax.tree.map(lambda a: a[0], P2), jax.tree.map(lambda a: a[0], S2)
    logits, _ = N.deep_mlp_forward(*one, X, "batchnorm", train=False)
    assert float(acc[0]) == pytest.approx(float(np.mean(np.argmax(logits, 1) == y)))


# ------------------------------------------------------------------------------------ bad input
def test_bad_batchnorm_arguments(batch):
    x, gamma, beta, state, dy = batch
    with pytest.raises(TypeError, match="x"):
        N.batchnorm_forward("x", gamma, beta, state)
    with pytest.raises(ValueError, match="x must have 2"):
        N.batchnorm_forward(x[0], gamma, beta, state)
    with pytest.raises(ValueError, match="x must be finite"):
        N.batchnorm_forward(np.full((2, 5), np.nan), gamma, beta, state)
    with pytest.raises(ValueError, match="gamma"):
        N.batchnorm_forward(x, gamma[:3], beta, state)
    with pytest.raises(ValueError, match="beta"):
        N.batchnorm_forward(x, gamma, np.ones(4), state)
    with pytest.raises(TypeError, match="state"):
        N.batchnorm_forward(x, gamma, beta, {"mean": state["mean"]})
    with pytest.raises(ValueError, match=r"state\['var'\]"):
        N.batchnorm_forward(x, gamma, beta, {"mean": state["mean"], "var": np.ones(3)})
    with pytest.raises(ValueError, match="at least 2 rows"):
        N.batchnorm_forward(x[:1], gamma, beta, state, train=True)
    with pytest.raises(TypeError, match="train"):
        N.batchnorm_forward(x, gamma, beta, state, train="yes")
    with pytest.raises(ValueError, match="momentum"):
        N.batchnorm_forward(x, gamma, beta, state, momentum=1.5)
    with pytest.raises(ValueError, match="eps"):
        N.batchnorm_forward(x, gamma, beta, state, eps=0.0)
    _, cache, _ = N.batchnorm_forward(x, gamma, beta, state)
    with pytest.raises(ValueError, match="dy"):
        N.batchnorm_backward(dy[:3], cache)
    with pytest.raises(TypeError, match="cache"):
        N.batchnorm_backward(dy, cache[:2])
    with pytest.raises(ValueError, match="n_features"):
        N.init_batchnorm_state(0)


def test_bad_normalize_arguments():
    x = np.ones((3, 4))
    with pytest.raises(ValueError, match="axis"):
        N.normalize(x, 2)
    with pytest.raises(TypeError, match="axis must be an int"):
        N.normalize(x, 1.0)
    with pytest.raises(ValueError, match="eps"):
        N.normalize(x, 0, eps=-1.0)
    with pytest.raises(ValueError, match="xhat"):
        N.normalize_backward(x, np.ones((4, 3)), 1.0, 0)
    with pytest.raises(TypeError, match="dxhat"):
        N.normalize_backward("dx", x, 1.0, 0)


def test_hidden_block_takes_a_name_or_a_function():
    rng = np.random.default_rng(8)
    h, W = rng.normal(size=(4, 3)), rng.normal(size=(3, 3))
    b, g, be = np.zeros(3), np.ones(3), np.zeros(3)
    stats = {"mean": np.zeros(3), "var": np.ones(3)}
    by_name, _ = N.hidden_block(h, W, b, g, be, stats, "residual", activation="tanh")
    by_fn, _ = N.hidden_block(h, W, b, g, be, stats, "residual", activation=jnp.tanh)
    np.testing.assert_allclose(by_name, h + np.tanh(h) @ W, rtol=1e-12)
    np.testing.assert_allclose(by_fn, by_name, rtol=1e-12)
    with pytest.raises(ValueError, match="network"):
        N.hidden_block(h, W, b, g, be, stats, "dense")
    with pytest.raises(ValueError, match="activation"):
        N.hidden_block(h, W, b, g, be, stats, "plain", activation="gelu")


def test_bad_layernorm_arguments():
    x = np.ones((3, 4))
    with pytest.raises(ValueError, match="x"):
        N.layernorm_forward(np.float64(1.0), np.ones(1), np.zeros(1))
    with pytest.raises(ValueError, match="gamma"):
        N.layernorm_forward(x, np.ones(3), np.zeros(4))
    with pytest.raises(TypeError, match="gamma"):
        N.layernorm_forward(x, "1", np.zeros(4))
    _, cache = N.layernorm_forward(x, np.ones(4), np.zeros(4))
    with pytest.raises(ValueError, match="dy"):
        N.layernorm_backward(np.ones((3, 5)), cache)
    with pytest.raises(TypeError, match="cache"):
        N.layernorm_backward(np.ones((3, 4)), (1, 2))


def test_bad_deep_mlp_arguments():
    with pytest.raises(ValueError, match="network"):
        N.init_deep_mlp(4, 8, 3, 2, "dense")
    with pytest.raises(ValueError, match="activation"):
        N.init_deep_mlp(4, 8, 3, 2, "plain", activation="gelu")
    with pytest.raises(ValueError, match="depth"):
        N.init_deep_mlp(4, 8, 0, 2, "plain")
    with pytest.raises(TypeError, match="width"):
        N.init_deep_mlp(4, 8.0, 3, 2, "plain")
    with pytest.raises(ValueError, match="scale"):
        N.init_deep_mlp(4, 8, 3, 2, "plain", scale=-1.0)
    p, s = N.init_deep_mlp(4, 8, 3, 2, "plain")
    with pytest.raises(ValueError, match="x must have 4 features"):
        N.deep_mlp_forward(p, s, np.ones((2, 5)), "plain")
    with pytest.raises(TypeError, match="params"):
        N.deep_mlp_forward([p], s, np.ones((2, 4)), "plain")
    P = jax.tree.map(lambda a: a[None], p)
    S = jax.tree.map(lambda a: a[None], s)
    with pytest.raises(ValueError, match="batches"):
        N.fit_deep_mlps(P, S, np.ones((5, 4)), np.zeros(5, np.int32), np.full((1, 2, 3), 7), "plain")
    with pytest.raises(ValueError, match="y"):
        N.fit_deep_mlps(P, S, np.ones((5, 4)), np.zeros(4, np.int32), np.zeros((1, 2, 3), np.int32), "plain")
    with pytest.raises(ValueError, match="network"):
        N.evaluate_deep_mlps(P, S, np.ones((5, 4)), np.zeros(5, np.int32), "dense")
    with pytest.raises(ValueError, match="y"):
        N.evaluate_deep_mlps(P, S, np.ones((5, 4)), np.zeros(4, np.int32), "plain")
    with pytest.raises(ValueError, match="learning_rate"):
        N.fit_deep_mlps(P, S, np.ones((5, 4)), np.zeros(5, np.int32), np.zeros((1, 2, 3), np.int32), "plain",
                        learning_rate=0.0)
