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
    with pytest.raises(ValueError, match="sizes"):
        g.init_vae((4,))
    with pytest.raises(ValueError, match="kind"):
        g.fit_autoencoder(p, np.zeros((8, 4), np.float32), kind="gan")
    with pytest.raises(ValueError, match="batch_size"):
        g.fit_autoencoder(p, np.zeros((8, 4), np.float32), batch_size=9)
