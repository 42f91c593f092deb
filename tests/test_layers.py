"""course_lib.layers: initialization, dense/MLP forward and parameter counts against references."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from course_lib import layers

ACTS = {"sigmoid": jax.nn.sigmoid, "tanh": jnp.tanh, "relu": jax.nn.relu,
        "leaky_relu": lambda z: jax.nn.leaky_relu(z, 0.01), "identity": lambda z: z}


def _numpy_mlp(params, x, act):
    """Float64 numpy reference forward pass (independent of course_lib)."""
    f = {"sigmoid": lambda z: 1 / (1 + np.exp(-z)), "tanh": np.tanh, "relu": lambda z: np.maximum(z, 0),
         "leaky_relu": lambda z: np.where(z > 0, z, 0.01 * z), "identity": lambda z: z}[act]
    h = np.asarray(x, np.float64)
    for l, layer in enumerate(params):
        h = h @ np.asarray(layer["W"], np.float64) + np.asarray(layer["b"], np.float64)
        if l < len(params) - 1:
            h = f(h)
    return h


@pytest.mark.parametrize("sizes", [(2, 3), (64, 128, 10), (5, 7, 7, 3, 2)])
def test_shapes_and_count_match_formula_of_001(sizes):
    params = layers.init_mlp(sizes, "xavier", seed=1)
    assert [p["W"].shape for p in params] == list(zip(sizes[:-1], sizes[1:]))
    assert [p["b"].shape for p in params] == [(n,) for n in sizes[1:]]
    assert layers.count_params(params) == layers.param_count(sizes)
    # the formula of document 001 section 3.1.1: sum_{l=1}^{L-1} (n_l + 1) n_{l+1}
    assert layers.param_count(sizes) == sum((sizes[l] + 1) * sizes[l + 1] for l in range(len(sizes) - 1))
    assert layers.layer_sizes(params) == tuple(sizes)


def test_param_count_digits_mlp():
    assert layers.param_count((64, 128, 10)) == 65 * 128 + 129 * 10 == 9610


@pytest.mark.parametrize("init,expected_std", [
    ("normal", 0.01), ("xavier", np.sqrt(2 / (400 + 600))), ("he", np.sqrt(2 / 400))])
def test_init_std_matches_formula(init, expected_std):
    W = np.asarray(layers.init_mlp((400, 600), init, seed=3, dtype=np.float64)[0]["W"])
    assert abs(W.mean()) < 0.01 * expected_std * 10
    assert W.std() == pytest.approx(expected_std, rel=0.01)  # 240k samples: std error ~0.15%


def test_init_scale_zeros_seed_dtype():
    p = layers.init_mlp((3, 4, 2), "zeros")
    assert all(float(jnp.abs(l["W"]).sum()) == 0 for l in p)
    a = layers.init_mlp((3, 4, 2), "he", seed=5)
    b = layers.init_mlp((3, 4, 2), "he", seed=5)
    c = layers.init_mlp((3, 4, 2), "he", seed=6)
    assert np.array_equal(a[0]["W"], b[0]["W"]) and not np.array_equal(a[0]["W"], c[0]["W"])
    assert a[0]["W"].dtype == jnp.float32
    assert layers.init_mlp((3, 2), dtype=np.float64)[0]["W"].dtype == jnp.float64
    W1 = np.asarray(layers.init_mlp((50, 50), "he", seed=0, dtype=np.float64)[0]["W"])
    W3 = np.asarray(layers.init_mlp((50, 50), "he", scale=3.0, seed=0, dtype=np.float64)[0]["W"])
    np.testing.assert_allclose(W3, 3 * W1)
    d = layers.init_dense(4, 3, "xavier", seed=2)
    assert d["W"].shape == (4, 3) and d["b"].shape == (3,)


@pytest.mark.parametrize("act", sorted(ACTS))
def test_mlp_apply_matches_numpy(act):
    params = layers.init_mlp((6, 8, 5, 3), "xavier", seed=0, dtype=np.float64)
    x = np.random.default_rng(0).normal(size=(11, 6))
    got = layers.mlp_apply(params, x, act)
    np.testing.assert_allclose(got, _numpy_mlp(params, x, act), rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(layers.mlp_predict(params, x, act), np.argmax(got, axis=1))


def test_dense_matches_numpy_and_works_under_jit_and_grad():
    rng = np.random.default_rng(1)
    x, W, b = rng.normal(size=(4, 3)), rng.normal(size=(3, 2)), rng.normal(size=(2,))
    np.testing.assert_allclose(layers.dense(x, W, b), x @ W + b, rtol=1e-12)
    params = layers.init_mlp((3, 4, 2), "he", seed=0, dtype=np.float64)
    f = jax.jit(lambda p, x: jnp.sum(layers.mlp_apply(p, x, "tanh") ** 2))
    g = jax.grad(f)(params, x)
    assert g[0]["W"].shape == (3, 4)


def test_bad_inputs():
    params = layers.init_mlp((3, 4, 2), seed=0)
    x = np.ones((5, 3), np.float32)
    with pytest.raises(ValueError, match="mismatched layer sizes"):
        layers.mlp_apply([params[0], {"W": jnp.ones((5, 2)), "b": jnp.ones(2)}], x)
    with pytest.raises(ValueError, match=r"params\[0\]\['b'\]"):
        layers.mlp_apply([{"W": jnp.ones((3, 4)), "b": jnp.ones(3)}, params[1]], x)
    with pytest.raises(TypeError, match="keys 'W' and 'b'"):
        layers.mlp_apply([{"w": jnp.ones((3, 4))}], x)
    with pytest.raises(TypeError, match="params must be a non-empty list"):
        layers.mlp_apply({"W": 1}, x)
    with pytest.raises(ValueError, match="activation must be one of"):
        layers.mlp_apply(params, x, "swish")
    with pytest.raises(ValueError, match=r"x must have shape \(any, 3\)"):
        layers.mlp_apply(params, np.ones((5, 4), np.float32))
    with pytest.raises(ValueError, match="x must have 2 dimension"):
        layers.mlp_apply(params, np.ones(3, np.float32))
    with pytest.raises(TypeError, match="x must be a floating-point array"):
        layers.mlp_apply(params, np.ones((5, 3), int))
    with pytest.raises(ValueError, match="x must be finite"):
        layers.mlp_apply(params, np.full((5, 3), np.nan, np.float32))
    with pytest.raises(ValueError, match="init must be one of"):
        layers.init_mlp((3, 2), "glorot")
    with pytest.raises(ValueError, match=r"sizes\[1\] must be an int >= 1, got 0"):
        layers.init_mlp((3, 0, 2))
    with pytest.raises(ValueError, match="at least an input and an output"):
        layers.param_count((3,))
    with pytest.raises(TypeError, match="sizes must be a sequence"):
        layers.param_count(5)
    with pytest.raises(ValueError, match="scale must be a finite number"):
        layers.init_mlp((3, 2), "he", scale=-1.0)
    with pytest.raises(TypeError, match="dtype must be a floating-point"):
        layers.init_mlp((3, 2), dtype=np.int32)
    with pytest.raises(ValueError, match=r"b must have shape \(2\)"):
        layers.dense(x, np.ones((3, 2)), np.ones(3))


def test_mlp_dropout_inverted_masks_and_eval_mode():
    params = layers.init_mlp((10, 2000, 3), "he", seed=0, dtype=np.float64)
    x = np.random.default_rng(0).normal(size=(4, 10))
    h = np.maximum(x @ np.asarray(params[0]["W"]), 0.0)          # hidden activations, float64 numpy
    for p in (0.25, 0.5):
        key = jax.random.PRNGKey(3)
        got = layers.mlp_apply(params, x, "relu", dropout=p, key=key)
        # recover the kept units from the same mask draw the layer makes (fold_in(key, layer 0))
        keep = np.asarray(jax.random.bernoulli(jax.random.fold_in(key, 0), 1.0 - p, h.shape))
        want = (np.where(keep, h / (1 - p), 0.0)) @ np.asarray(params[1]["W"])
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
        assert abs(keep.mean() - (1 - p)) < 0.02                  # 8000 Bernoulli draws
    # no key = evaluation: the whole network, unscaled; p = 0 with a key: no dropout
    np.testing.assert_allclose(layers.mlp_apply(params, x, "relu", dropout=0.5), layers.mlp_apply(params, x, "relu"))
    np.testing.assert_allclose(layers.mlp_apply(params, x, "relu", key=jax.random.PRNGKey(0)),
                               layers.mlp_apply(params, x, "relu"))
    a = layers.mlp_apply(params, x, "relu", dropout=0.5, key=jax.random.PRNGKey(1))
    b = layers.mlp_apply(params, x, "relu", dropout=0.5, key=jax.random.PRNGKey(2))
    assert not np.allclose(a, b)                                  # a new key, a new mask
    # inverted dropout keeps the mean: average over many masks -> the full network
    keys = jax.random.split(jax.random.PRNGKey(0), 400)
    mean = jax.vmap(lambda k: layers.mlp_apply(params, x, "relu", dropout=0.5, key=k))(keys).mean(0)
    full = layers.mlp_apply(params, x, "relu")
    assert float(jnp.max(jnp.abs(mean - full))) < 0.1 * float(jnp.max(jnp.abs(full)))
    # under jit and grad
    f = jax.jit(lambda p, k: jnp.sum(layers.mlp_apply(p, x, "relu", dropout=0.5, key=k)))
    assert float(f(params, jax.random.PRNGKey(1))) == pytest.approx(float(jnp.sum(a)), rel=1e-12)
    g = jax.grad(lambda p: jnp.sum(layers.mlp_apply(p, x, "relu", dropout=0.5, key=jax.random.PRNGKey(1))))(params)
    assert g[0]["W"].shape == (10, 2000)


def test_mlp_dropout_bad_inputs():
    params = layers.init_mlp((3, 4, 2), seed=0)
    x = np.ones((5, 3), np.float32)
    with pytest.raises(ValueError, match=r"dropout must be a finite number in \[0, 1\), got 1.0"):
        layers.mlp_apply(params, x, dropout=1.0)
    with pytest.raises(ValueError, match=r"dropout must be a finite number in \[0, 1\), got -0.1"):
        layers.mlp_apply(params, x, dropout=-0.1)
    with pytest.raises(TypeError, match="dropout must be a number"):
        layers.mlp_apply(params, x, dropout="0.5")
    with pytest.raises(TypeError, match=r"key must be a JAX random key \(jax.random.key\(seed\)\)"):
        layers.mlp_apply(params, x, dropout=0.5, key=3)
    with pytest.raises(TypeError, match=r"key must be a JAX random key \(jax.random.key\(seed\)\)"):
        layers.mlp_apply(params, x, dropout=0.5, key=jnp.ones(3, jnp.uint32))
