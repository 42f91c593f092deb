"""course_lib.backprop: every hand-written backward equals jax autodiff (float64, 1e-6 relative)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from course_lib import backprop, layers

ACTS = ["sigmoid", "tanh", "relu", "leaky_relu", "identity"]
F = {"sigmoid": jax.nn.sigmoid, "tanh": jnp.tanh, "relu": jax.nn.relu,
     "leaky_relu": lambda z: jnp.where(z > 0, z, 0.01 * z), "identity": lambda z: z}


def _ref_loss(params, x, y, act):
    """Reference loss written with jax.nn only (independent of course_lib)."""
    h = x
    for layer in params[:-1]:
        h = F[act](h @ layer["W"] + layer["b"])
    logits = h @ params[-1]["W"] + params[-1]["b"]
    return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(x.shape[0]), y])


_ref_value_and_grad = jax.jit(jax.value_and_grad(_ref_loss), static_argnums=3)


def _rel(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return np.linalg.norm(a - b) / max(np.linalg.norm(a), np.linalg.norm(b), 1e-300)


def _problem(sizes, seed, n=17):
    rng = np.random.default_rng(seed)
    params = layers.init_mlp(sizes, "xavier", scale=1.5, seed=seed, dtype=np.float64)
    params = [{"W": p["W"], "b": jnp.asarray(rng.normal(size=p["b"].shape) * 0.1)} for p in params]
    x = rng.normal(size=(n, sizes[0]))
    y = rng.integers(0, sizes[-1], size=n)
    return params, x, y


def _assert_grads_equal(got, want):
    assert len(got) == len(want)
    for l, (g, w) in enumerate(zip(got, want)):
        for k in ("W", "b"):
            assert g[k].shape == w[k].shape
            assert _rel(g[k], w[k]) < 1e-6, (l, k, _rel(g[k], w[k]))
            np.testing.assert_allclose(g[k], w[k], rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("sizes", [(4, 3), (5, 8, 3), (6, 7, 5, 4), (3, 9, 9, 9, 9, 2)])
def test_mlp_backward_equals_jax_grad(sizes, act):
    params, x, y = _problem(sizes, seed=len(sizes) * 10 + ACTS.index(act))
    loss, grads = backprop.loss_and_grads(params, x, y, act)
    ref_loss, ref_grads = _ref_value_and_grad(params, x, y, act)
    assert float(loss) == pytest.approx(float(ref_loss), rel=1e-12)
    _assert_grads_equal(grads, ref_grads)


@pytest.mark.parametrize("act,sizes", [("sigmoid", (5, 8, 3)), ("relu", (6, 7, 5, 4)),
                                       ("tanh", (3, 9, 9, 9, 9, 2))])
def test_delta_rule_and_layer_composition_equal_jax_grad(act, sizes):
    params, x, y = _problem(sizes, seed=1)
    ref_loss, ref_grads = _ref_value_and_grad(params, x, y, act)
    # the formula-by-formula delta rule gives the same numbers, and its deltas are dJ/dz_l
    grads2, deltas = backprop.delta_rule(params, x, y, act)
    _assert_grads_equal(grads2, ref_grads)
    assert [d.shape for d in deltas] == [(x.shape[0], n) for n in sizes[1:]]
    # composing the public forward/backward pieces by hand gives them too
    logits, caches = backprop.mlp_forward(params, x, act)
    l2, ce_cache = backprop.softmax_cross_entropy_forward(logits, y)
    _assert_grads_equal(backprop.mlp_backward(backprop.softmax_cross_entropy_backward(1.0, ce_cache),
                                              caches, act), ref_grads)


def test_matches_float64_finite_differences():
    params, x, y = _problem((3, 4, 3), seed=7, n=5)
    _, grads = backprop.loss_and_grads(params, x, y, "tanh")
    eps = 1e-6
    W = np.array(params[0]["W"])
    num = np.zeros_like(W)
    for idx in np.ndindex(W.shape):
        for sign in (1, -1):
            Wp = W.copy()
            Wp[idx] += sign * eps
            p = [{"W": jnp.asarray(Wp), "b": params[0]["b"]}, params[1]]
            num[idx] += sign * float(_ref_loss(p, x, y, "tanh")) / (2 * eps)
    assert _rel(grads[0]["W"], num) < 1e-7


def test_probability_labels_equal_int_labels():
    params, x, y = _problem((4, 5, 3), seed=3)
    onehot = np.eye(3)[y]
    _, g_int = backprop.loss_and_grads(params, x, y, "relu")
    _, g_prob = backprop.loss_and_grads(params, x, onehot, "relu")
    _assert_grads_equal(g_int, g_prob)


def test_dense_backward_equals_vjp():
    rng = np.random.default_rng(0)
    x, W, b = rng.normal(size=(6, 4)), rng.normal(size=(4, 3)), rng.normal(size=(3,))
    dout = rng.normal(size=(6, 3))
    out, cache = backprop.dense_forward(x, W, b)
    np.testing.assert_allclose(out, x @ W + b, rtol=1e-12)
    ref_out, vjp = jax.vjp(lambda x, W, b: x @ W + b, x, W, b)
    for got, want in zip(backprop.dense_backward(dout, cache), vjp(dout)):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("act", ACTS)
def test_activation_backward_equals_vjp(act):
    rng = np.random.default_rng(1)
    z, dout = rng.normal(size=(5, 4)), rng.normal(size=(5, 4))
    a, cache = backprop.activation_forward(z, act)
    ref, vjp = jax.vjp(F[act], z)
    np.testing.assert_allclose(a, ref, rtol=1e-12)
    np.testing.assert_allclose(backprop.activation_backward(dout, cache), vjp(dout)[0], rtol=1e-10,
                               atol=1e-14)


def test_softmax_cross_entropy_backward_equals_grad():
    rng = np.random.default_rng(2)
    logits, y = rng.normal(size=(7, 4)) * 3, rng.integers(0, 4, size=7)
    loss, cache = backprop.softmax_cross_entropy_forward(logits, y)
    f = lambda z: -jnp.mean(jax.nn.log_softmax(z)[jnp.arange(7), y])
    assert float(loss) == pytest.approx(float(f(logits)), rel=1e-12)
    np.testing.assert_allclose(backprop.softmax_cross_entropy_backward(2.0, cache),
                               2.0 * jax.grad(f)(logits), rtol=1e-10, atol=1e-14)
    big = np.array([[1000.0, 0.0], [0.0, 1000.0]])  # stable: no overflow for huge logits
    loss_big, _ = backprop.softmax_cross_entropy_forward(big, np.array([1, 1]))
    assert float(loss_big) == pytest.approx(500.0)


def test_gradient_norms():
    params, x, y = _problem((4, 5, 3), seed=4)
    _, grads = backprop.loss_and_grads(params, x, y, "relu")
    norms = backprop.gradient_norms(grads)
    np.testing.assert_allclose(norms, [np.linalg.norm(np.asarray(g["W"])) for g in grads])
    bad = [dict(g) for g in grads]
    bad[1]["W"] = bad[1]["W"].at[0, 0].set(jnp.nan)
    with pytest.raises(ValueError, match=r"grads\[1\]\['W'\] must be finite"):
        backprop.gradient_norms(bad)


def test_bad_inputs():
    params, x, y = _problem((4, 5, 3), seed=5)
    with pytest.raises(ValueError, match="mismatched layer sizes"):
        backprop.loss_and_grads([params[0], {"W": jnp.ones((4, 3)), "b": jnp.ones(3)}], x, y)
    with pytest.raises(ValueError, match="activation must be one of"):
        backprop.loss_and_grads(params, x, y, "gelu")
    with pytest.raises(ValueError, match=r"labels must be class indices in \[0, 2\], got values from 3 to 5"):
        backprop.loss_and_grads(params, x, y + 3)
    with pytest.raises(ValueError, match=r"labels must have shape \(17,\)"):
        backprop.loss_and_grads(params, x, y[:5])
    with pytest.raises(TypeError, match="labels must be an integer array"):
        backprop.loss_and_grads(params, x, "abc")
    with pytest.raises(ValueError, match="x must be finite"):
        backprop.loss_and_grads(params, np.full_like(x, np.inf), y)
    out, cache = backprop.dense_forward(x, params[0]["W"], params[0]["b"])
    with pytest.raises(ValueError, match=r"dout must have shape \(17, 5\)"):
        backprop.dense_backward(np.ones((17, 4)), cache)
    with pytest.raises(ValueError, match="dout must be finite"):
        backprop.dense_backward(np.full((17, 5), np.nan), cache)
    with pytest.raises(TypeError, match=r"cache must be the cache returned by dense_forward \(a tuple of 2\), got list"):
        backprop.dense_backward(np.ones((17, 5)), [1, 2, 3])
    with pytest.raises(ValueError, match="activation must be one of"):
        backprop.activation_forward(np.ones(3), "softmax")
    with pytest.raises(ValueError, match="logits must have 2 dimension"):
        backprop.softmax_cross_entropy_forward(np.ones(3), np.array([0]))
    # soft labels must be distributions, as losses.cross_entropy requires (the loss is that function)
    soft = np.array([[0.5, 0.4, 0.3], [0.2, 0.3, 0.5]])
    with pytest.raises(ValueError, match="labels must be probability distributions summing to 1 along "
                                         "axis -1; the worst sum is off by 0.2"):
        backprop.softmax_cross_entropy_forward(np.zeros((2, 3)), soft)
    with pytest.raises(ValueError, match="labels must be probability distributions summing to 1"):
        backprop.loss_and_grads(params, x[:2], soft)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 1\]"):
        backprop.softmax_cross_entropy_forward(np.zeros((2, 3)), np.array([[1.5, -0.5, 0.0]] * 2))
    with pytest.raises(ValueError, match=r"dlogits must have shape"):
        _, caches = backprop.mlp_forward(params, x, "relu")
        backprop.mlp_backward(np.ones((17, 4)), caches, "relu")
