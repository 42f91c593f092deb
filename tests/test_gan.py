"""GAN pieces against optax, the pointwise optimum of the discriminator objective, and training."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from course_lib import gan


def test_gan_losses_equal_optax_and_minimax_saturates():
    rng = np.random.default_rng(3)
    real, fake = rng.normal(size=7) * 3, rng.normal(size=7) * 3
    want_d = (optax.sigmoid_binary_cross_entropy(real, np.ones(7)).mean()
              + optax.sigmoid_binary_cross_entropy(fake, np.zeros(7)).mean())
    np.testing.assert_allclose(float(gan.gan_discriminator_loss(real, fake)), float(want_d), rtol=1e-12)
    np.testing.assert_allclose(float(gan.gan_generator_loss(fake)),
                               float(optax.sigmoid_binary_cross_entropy(fake, np.ones(7)).mean()), rtol=1e-12)
    np.testing.assert_allclose(float(gan.gan_generator_loss(fake, "minimax")),
                               float(np.mean(np.log(1 - 1 / (1 + np.exp(-fake))))), rtol=1e-10)
    # A discriminator that confidently rejects fakes (logit -8): minimax gradient vanishes.
    z = jnp.array([-8.0])
    g_ns = jax.grad(lambda l: gan.gan_generator_loss(l))(z)
    g_mm = jax.grad(lambda l: gan.gan_generator_loss(l, "minimax"))(z)
    assert abs(float(g_mm[0])) < 1e-3 < abs(float(g_ns[0]))


def test_optimal_discriminator_maximises_the_pointwise_objective():
    for pd, pm in [(0.3, 0.1), (0.05, 0.4), (1.0, 1.0)]:
        grid = np.linspace(1e-4, 1 - 1e-4, 200_001)
        best = grid[np.argmax(pd * np.log(grid) + pm * np.log(1 - grid))]
        assert abs(float(gan.optimal_discriminator(jnp.array(pd), jnp.array(pm))) - best) < 1e-4


def test_gan_moves_samples_onto_the_data():
    rng = np.random.default_rng(0)
    centers = np.array([[2.0, 0.0], [-2.0, 0.0]])
    X = (centers[rng.integers(0, 2, 1000)] + 0.1 * rng.normal(size=(1000, 2))).astype(np.float32)
    params = gan.init_gan(2, 2, (32, 32), seed=0)
    _, losses, samples = gan.train_gan(params, X, steps=600, snapshots=3, n_samples=200)
    assert losses.shape == (600, 2) and samples.shape == (3, 200, 2)
    dist = lambda s: np.linalg.norm(s[:, None] - centers[None], axis=-1).min(1).mean()
    assert dist(samples[-1]) < 0.5 * dist(samples[0])


def test_bad_inputs():
    with pytest.raises(ValueError, match="kind"):
        gan.gan_generator_loss(np.zeros(3), "wasserstein")
    gp = gan.init_gan(2, 2, (4,))
    with pytest.raises(ValueError, match="features"):
        gan.train_gan(gp, np.zeros((10, 3), np.float32), steps=10, snapshots=2)
    with pytest.raises(ValueError, match="multiple"):
        gan.train_gan(gp, np.zeros((10, 2), np.float32), steps=10, snapshots=3)
    with pytest.raises(ValueError, match="densities"):
        gan.optimal_discriminator(np.array([-0.1]), np.array([0.2]))
