"""Autoencoders and VAE pieces against closed forms, float64 formulas and optax."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy import stats

from course_lib import generative as g
from course_lib import layers


def np_bce_logits(z, t):
    z, t = np.asarray(z, np.float64), np.asarray(t, np.float64)
    p = 1 / (1 + np.exp(-z))
    return -(t * np.log(p) + (1 - t) * np.log(1 - p))


def test_kl_closed_form_equals_per_dimension_formula_and_monte_carlo():
    rng = np.random.default_rng(0)
    mu, logvar = rng.normal(size=(3, 4)), rng.normal(size=(3, 4)) * 0.5
    sigma = np.exp(0.5 * logvar)
    per_dim = np.log(1 / sigma) + (sigma ** 2 + mu ** 2) / 2 - 0.5
    np.testing.assert_allclose(np.asarray(g.kl_standard_normal(mu, logvar)), per_dim.sum(-1), rtol=1e-12)
    # Monte Carlo: E_q[log q(z) - log p(z)] for the first sample
    z = mu[0] + sigma[0] * rng.normal(size=(200_000, 4))
    mc = (stats.norm.logpdf(z, mu[0], sigma[0]) - stats.norm.logpdf(z)).sum(-1)
    assert abs(mc.mean() - per_dim[0].sum()) < 4 * mc.std() / np.sqrt(len(mc))


def test_reparameterization_gradient_equals_hand_formula():
    rng = np.random.default_rng(1)
    mu, logvar, eps = rng.normal(size=5), rng.normal(size=5), rng.normal(size=(1000, 5))

    def f(mu, logvar):
        return jnp.mean(g.reparameterize(jnp.broadcast_to(mu, eps.shape), jnp.broadcast_to(logvar, eps.shape), eps) ** 2)

    dmu, dlogvar = jax.grad(f, argnums=(0, 1))(mu, logvar)
    sigma = np.exp(0.5 * logvar)
    z = mu + sigma * eps
    # d/dmu mean(z^2) = 2 mean(z) / 5 per coordinate (the mean runs over 1000*5 entries)
    np.testing.assert_allclose(np.asarray(dmu), 2 * z.mean(0) / 5, rtol=1e-10)
    np.testing.assert_allclose(np.asarray(dlogvar), (2 * z * eps * 0.5 * sigma).mean(0) / 5, rtol=1e-10)


def test_vae_and_autoencoder_losses_equal_float64_formulas():
    rng = np.random.default_rng(2)
    x = rng.uniform(size=(6, 10))
    p = g.init_vae((10, 8, 3), seed=0)
    p = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), p)
    eps = rng.normal(size=(6, 3))
    loss, parts = g.vae_loss(p, x, eps, "tanh")
    mu, logvar = (np.asarray(a) for a in g.vae_encode(p, x, "tanh"))
    z = mu + np.exp(0.5 * logvar) * eps
    logits = np.asarray(layers.mlp_apply(p["decoder"], z, "tanh"))
    recon = np_bce_logits(logits, x).sum(-1).mean()
    kl = (-0.5 * (1 + logvar - mu ** 2 - np.exp(logvar)).sum(-1)).mean()
    np.testing.assert_allclose(float(parts["recon"]), recon, rtol=1e-10)
    np.testing.assert_allclose(float(parts["kl"]), kl, rtol=1e-10)
    np.testing.assert_allclose(float(loss), recon + kl, rtol=1e-10)
    np.testing.assert_allclose(float(parts["elbo"]), -(recon + kl), rtol=1e-10)

    ae = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), g.init_autoencoder((10, 4)))
    noisy = np.clip(x + 0.1, 0, 1)
    logits = np.asarray(g.decode_logits(ae, g.encode(ae, noisy)))
    np.testing.assert_allclose(float(g.autoencoder_loss(ae, noisy, x)), np_bce_logits(logits, x).sum(-1).mean(),
                               rtol=1e-10)


def test_autoencoders_and_vae_learn_digits():
    from course_lib import data
    X, _ = data.load_digits()
    X = X[:512]
    for kind, params in (("ae", g.init_autoencoder((64, 32, 8))), ("dae", g.init_autoencoder((64, 32, 8))),
                         ("vae", g.init_vae((64, 32, 2)))):
        _, history = g.fit_autoencoder(params, X, kind=kind, epochs=8, batch_size=64, learning_rate=3e-3)
        assert history.shape == (8, 2)
        assert history[-1, 0] < 0.8 * history[0, 0], (kind, history[:, 0])


def test_bad_inputs():
    p = g.init_autoencoder((4, 2))
    with pytest.raises(ValueError, match="x must have 2"):
        g.autoencoder_loss(p, np.zeros(4, np.float32))
    with pytest.raises(ValueError, match="x and target"):
        g.autoencoder_loss(p, np.zeros((2, 4), np.float32), np.zeros((3, 4), np.float32))
    with pytest.raises(TypeError, match="x must be a floating"):
        g.autoencoder_loss(p, np.zeros((2, 4), int))
    with pytest.raises(ValueError, match="kind"):
        g.corrupt(np.zeros((2, 4), np.float32), kind="salt")
    with pytest.raises(ValueError, match="amount"):
        g.corrupt(np.zeros((2, 4), np.float32), kind="mask", amount=2.0)
    with pytest.raises(ValueError, match="mu and eps"):
        g.reparameterize(np.zeros(3), np.zeros(3), np.zeros(2))
    with pytest.raises(ValueError, match="logvar must be finite"):
        g.kl_standard_normal(np.zeros(2), np.array([0.0, np.nan]))
    with pytest.raises(ValueError, match=r"^mu must be finite, got 1 NaN"):
        g.kl_standard_normal(np.array([0.0, np.nan]), np.zeros(2))
    for i, name in enumerate(("mu", "logvar", "eps")):
        args = [np.zeros(3), np.zeros(3), np.zeros(3)]
        args[i] = np.array([0.0, np.nan, 0.0])
        with pytest.raises(ValueError, match=rf"^{name} must be finite, got 1 NaN"):
            g.reparameterize(*args)
    with pytest.raises(ValueError, match="sizes"):
        g.init_vae((4,))
    with pytest.raises(ValueError, match="kind"):
        g.fit_autoencoder(p, np.zeros((8, 4), np.float32), kind="gan")
    with pytest.raises(ValueError, match="batch_size"):
        g.fit_autoencoder(p, np.zeros((8, 4), np.float32), batch_size=9)


# ------------------------------------------------------------------------- fit_autoencoder contracts
def test_one_epoch_one_batch_equals_an_optax_adam_step():
    # one minibatch = the whole (permuted) data set: the update is one Adam step on autoencoder_loss
    rng = np.random.default_rng(3)
    X = rng.uniform(size=(16, 6))
    p0 = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), g.init_autoencoder((6, 5, 2), seed=1))
    got, _ = g.fit_autoencoder(p0, X, kind="ae", epochs=1, batch_size=16, learning_rate=1e-2)
    opt = optax.adam(1e-2)
    grads = jax.grad(lambda p: g.autoencoder_loss(p, X))(p0)
    updates, _ = opt.update(grads, opt.init(p0), p0)
    want = optax.apply_updates(p0, updates)
    for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-10, atol=1e-12)


def test_dae_with_zero_noise_is_the_plain_autoencoder_and_noise_changes_it():
    rng = np.random.default_rng(4)
    X = rng.uniform(size=(32, 6)).astype(np.float32)
    p0 = g.init_autoencoder((6, 4, 2))
    ae, h_ae = g.fit_autoencoder(p0, X, kind="ae", epochs=3, batch_size=8)
    dae0, h_dae0 = g.fit_autoencoder(p0, X, kind="dae", noise=0.0, epochs=3, batch_size=8)
    dae, h_dae = g.fit_autoencoder(p0, X, kind="dae", noise=0.3, epochs=3, batch_size=8)
    np.testing.assert_array_equal(h_ae, h_dae0)
    for a, b in zip(jax.tree_util.tree_leaves(ae), jax.tree_util.tree_leaves(dae0)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert not np.array_equal(h_ae, h_dae)


def test_beta_trades_reconstruction_for_kl():
    from course_lib import data
    X, _ = data.load_digits()
    X = X[:512]
    p0 = g.init_vae((64, 32, 2))
    kls = [g.fit_autoencoder(p0, X, kind="vae", beta=b, epochs=10, batch_size=64, learning_rate=3e-3)[1][-1, 1]
           for b in (0.25, 4.0)]
    assert kls[1] < kls[0]


# --------------------------------------------------------------------------------------------- PCA
def test_pca_equals_scikit_learn():
    from sklearn.decomposition import PCA
    rng = np.random.default_rng(5)
    X = rng.normal(size=(50, 6)) @ rng.normal(size=(6, 6))
    m = g.pca(X, 3)
    sk = PCA(n_components=3).fit(X)
    comps = np.asarray(m["components"])
    signs = np.sign(np.sum(comps * sk.components_, axis=1))
    np.testing.assert_allclose(comps * signs[:, None], sk.components_, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(np.asarray(m["explained_variance"]), sk.explained_variance_, rtol=1e-10)
    np.testing.assert_allclose(np.asarray(m["mean"]), sk.mean_, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(g.pca_reconstruct(m, X)), sk.inverse_transform(sk.transform(X)),
                               rtol=1e-9, atol=1e-12)
    # sign convention: the largest-magnitude entry of each component is positive
    assert np.all(comps[np.arange(3), np.argmax(np.abs(comps), axis=1)] > 0)


def test_pca_reconstruction_is_the_best_rank_k_approximation():
    # Eckart-Young: the truncated SVD of the centred data (float64 numpy)
    rng = np.random.default_rng(6)
    X = rng.normal(size=(40, 8))
    Xc = X - X.mean(0)
    U, s, Vt = np.linalg.svd(Xc, full_matrices=False)
    best = X.mean(0) + (U[:, :3] * s[:3]) @ Vt[:3]
    np.testing.assert_allclose(np.asarray(g.pca_reconstruct(g.pca(X, 3), X)), best, rtol=1e-9, atol=1e-12)


def test_linear_autoencoder_finds_the_pca_subspace():
    from course_lib import data
    X, _ = data.load_digits()
    k = 8
    m = g.pca(X, k)
    pca_err = np.mean(np.sum((np.asarray(g.pca_reconstruct(m, X), np.float64) - X) ** 2, axis=1))
    lin, hist = g.fit_linear_autoencoder(X, k, steps=2000, learning_rate=3e-2)
    lin_err = np.mean(np.sum((np.asarray(g.linear_autoencoder_apply(lin, X), np.float64) - X) ** 2, axis=1))
    assert hist.shape == (2000,) and hist[-1] < hist[0]
    assert pca_err <= lin_err * (1 + 1e-4)           # PCA is optimal (float32 rounding aside) ...
    assert lin_err < 1.01 * pca_err                  # ... and gradient descent gets there
    Q, _ = np.linalg.qr(np.asarray(lin["W_dec"], np.float64).T)
    cosines = np.linalg.svd(np.asarray(m["components"], np.float64) @ Q, compute_uv=False)
    assert cosines.min() > 0.99


def test_bad_inputs_of_the_extensions():
    X = np.zeros((8, 4), np.float32)
    with pytest.raises(ValueError, match="init_vae"):
        g.fit_autoencoder(g.init_autoencoder((4, 2)), X, kind="vae", batch_size=4)
    with pytest.raises(ValueError, match="init_autoencoder"):
        g.fit_autoencoder(g.init_vae((4, 2)), X, kind="ae", batch_size=4)
    with pytest.raises(ValueError, match="X must have 4 columns"):
        g.fit_autoencoder(g.init_autoencoder((4, 2)), np.zeros((8, 5), np.float32), batch_size=4)
    with pytest.raises(ValueError, match="params must be a dict"):
        g.fit_autoencoder({"W": 1}, X, batch_size=4)
    with pytest.raises(ValueError, match="beta"):
        g.fit_autoencoder(g.init_vae((4, 2)), X, kind="vae", beta=-1.0, batch_size=4)
    with pytest.raises(ValueError, match="noise"):
        g.fit_autoencoder(g.init_autoencoder((4, 2)), X, kind="dae", noise=-0.1, batch_size=4)
    with pytest.raises(ValueError, match="activation"):
        g.fit_autoencoder(g.init_autoencoder((4, 2)), X, activation="swish", batch_size=4)
    with pytest.raises(ValueError, match="epochs"):
        g.fit_autoencoder(g.init_autoencoder((4, 2)), X, epochs=0, batch_size=4)
    with pytest.raises(ValueError, match="k must be an int"):
        g.pca(X, 0)
    with pytest.raises(ValueError, match="k must be an int"):
        g.pca(X, 9)
    with pytest.raises(ValueError, match="X must be finite"):
        g.pca(np.array([[0.0, np.nan], [1.0, 2.0]]), 1)
    with pytest.raises(ValueError, match="model must be"):
        g.pca_reconstruct({"mean": 0}, X)
    with pytest.raises(ValueError, match="X must have 4 columns"):
        g.pca_reconstruct(g.pca(X + np.eye(8, 4, dtype=np.float32), 2), np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match="k must be an int"):
        g.fit_linear_autoencoder(X, 5)
    with pytest.raises(ValueError, match="steps"):
        g.fit_linear_autoencoder(X, 2, steps=0)
    with pytest.raises(TypeError, match="X must be a floating"):
        g.fit_linear_autoencoder(np.zeros((8, 4), int), 2)
