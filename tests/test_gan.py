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


# ---------------------------------------------------------------- the optimum, packing, modes, one exact step
def test_optimal_discriminator_is_half_where_densities_agree_and_rejects_nan():
    p = np.array([0.0, 0.2, 0.7, 0.0])
    q = np.array([0.0, 0.2, 0.1, 0.5])
    np.testing.assert_allclose(np.asarray(gan.optimal_discriminator(p, q)), [0.5, 0.5, 0.7 / 0.8, 0.0], rtol=1e-12)
    with pytest.raises(ValueError, match="p_model"):
        gan.optimal_discriminator(np.array([0.1]), np.array([np.nan]))
    with pytest.raises(ValueError, match="shape"):
        gan.optimal_discriminator(np.ones(3), np.ones(2))


def test_value_at_optimal_discriminator_is_minus_log4_plus_2jsd():
    # Two 1-D densities on a grid (float64 numpy reference): V(D*, G) = -log 4 + 2 JSD(p_data || p_g).
    x = np.linspace(-5, 5, 40_001)
    dx = x[1] - x[0]
    gauss = lambda m, s: np.exp(-0.5 * ((x - m) / s) ** 2)  # noqa: E731
    pd, pg = gauss(0.0, 1.0), 0.5 * gauss(-2.0, 0.5) + 0.5 * gauss(1.5, 0.8)
    pd, pg = pd / (pd.sum() * dx), pg / (pg.sum() * dx)  # densities on the grid (integrate to 1 there)
    d = np.asarray(gan.optimal_discriminator(pd, pg))
    v = np.sum(pd * np.log(d) + pg * np.log1p(-d)) * dx
    m = 0.5 * (pd + pg)
    jsd = 0.5 * np.sum(pd * np.log(pd / m)) * dx + 0.5 * np.sum(pg * np.log(pg / m)) * dx
    np.testing.assert_allclose(v, -np.log(4) + 2 * jsd, rtol=1e-9)
    d_same = np.asarray(gan.optimal_discriminator(pd, pd))
    np.testing.assert_allclose(d_same, 0.5, rtol=1e-12)


def test_pack_samples_concatenates_consecutive_rows():
    x = np.arange(24, dtype=np.float32).reshape(12, 2)
    got = np.asarray(gan.pack_samples(x, 3))
    want = np.stack([np.concatenate(x[i:i + 3]) for i in range(0, 12, 3)])
    np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match="multiple of pack"):
        gan.pack_samples(x, 5)
    with pytest.raises(ValueError, match="pack"):
        gan.pack_samples(x, 0)
    with pytest.raises(ValueError, match="x must have 2"):
        gan.pack_samples(np.zeros(4, np.float32), 2)


def test_make_ring_and_mode_counts_against_a_loop():
    X, C = gan.make_ring(8000, n_modes=8, radius=2.0, std=0.05, seed=1)
    assert X.shape == (8000, 2) and X.dtype == np.float32 and C.shape == (8, 2)
    np.testing.assert_allclose(np.linalg.norm(C, axis=1), 2.0)
    nearest = np.argmin(((X[:, None] - C[None]) ** 2).sum(-1), axis=1)
    for k in range(8):
        pts = X[nearest == k].astype(np.float64)
        np.testing.assert_allclose(pts.mean(0), C[k], atol=0.01)
        np.testing.assert_allclose(pts.std(0), 0.05, rtol=0.1)
    rng = np.random.default_rng(0)
    S = rng.normal(size=(300, 2)) * 1.5
    counts = gan.mode_counts(S, C, 0.4)
    want = np.zeros(8, int)
    for s in S:  # a plain loop: nearest centre, counted only if within the radius
        d = [np.hypot(*(s - c)) for c in C]
        if min(d) <= 0.4:
            want[int(np.argmin(d))] += 1
    np.testing.assert_array_equal(counts, want)
    assert gan.count_modes(S, C, 0.4, min_count=1) == int((want >= 1).sum())
    assert gan.count_modes(np.repeat(C[:3], 5, axis=0), C, 0.1, min_count=5) == 3
    with pytest.raises(ValueError, match="columns"):
        gan.mode_counts(np.zeros((3, 3)), C, 0.1)
    with pytest.raises(ValueError, match="samples"):
        gan.mode_counts(np.full((3, 2), np.nan), C, 0.1)
    with pytest.raises(ValueError, match="radius"):
        gan.mode_counts(S, C, -1.0)
    with pytest.raises(ValueError, match="min_count"):
        gan.count_modes(S, C, 0.1, min_count=0)
    with pytest.raises(ValueError, match="n_modes"):
        gan.make_ring(10, n_modes=0)


@pytest.mark.parametrize("pack,d_steps", [(1, 1), (2, 2)])
def test_one_training_iteration_equals_optax_adam_on_jax_grad(pack, d_steps):
    """One iteration of train_gan_history rebuilt with jax.grad and optax.adam, same random numbers."""
    import jax.random as jr

    from course_lib import layers
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 2)).astype(np.float32)
    p0 = gan.init_gan(2, 3, (8,), seed=4, pack=pack)
    h = gan.train_gan_history(p0, X, steps=1, snapshots=1, batch_size=8, learning_rate=0.01, b1=0.5,
                              n_samples=5, pack=pack, d_steps=d_steps, seed=7)
    mlp = lambda p, x: layers.mlp_apply(p, x, "relu")  # noqa: E731
    disc = lambda pd, x: mlp(pd, x.reshape(x.shape[0] // pack, -1))[:, 0]  # noqa: E731
    bce = lambda l, t: optax.sigmoid_binary_cross_entropy(l, jnp.full_like(l, t)).mean()  # noqa: E731
    opt = optax.adam(0.01, b1=0.5)
    G, D = p0["G"], p0["D"]
    sd, sg = opt.init(D), opt.init(G)
    kz, kt = jr.split(jr.PRNGKey(7))
    kd, kg = jr.split(jr.split(kt, 1)[0])
    for k in jr.split(kd, d_steps):
        k1, k2 = jr.split(k)
        real = X[jr.randint(k1, (8,), 0, 50)]
        fake = mlp(G, jr.normal(k2, (8, 3), jnp.float32))
        ld, gd = jax.value_and_grad(lambda d: bce(disc(d, real), 1.0) + bce(disc(d, fake), 0.0))(D)
        u, sd = opt.update(gd, sd, D)
        D = optax.apply_updates(D, u)
    z = jr.normal(kg, (8, 3), jnp.float32)
    lg, gg = jax.value_and_grad(lambda g: bce(disc(D, mlp(g, z)), 1.0))(G)
    u, sg = opt.update(gg, sg, G)
    G = optax.apply_updates(G, u)
    np.testing.assert_allclose(h["losses"][0], [float(ld), float(lg)], rtol=1e-5)
    for got, want in zip(jax.tree_util.tree_leaves(h["params"]), jax.tree_util.tree_leaves({"G": G, "D": D})):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(h["samples"][0], np.asarray(mlp(G, jr.normal(kz, (5, 3), jnp.float32))), rtol=1e-4, atol=1e-6)


def test_history_grid_holds_discriminator_probabilities():
    X, _ = gan.make_ring(500, seed=0)
    grid = np.stack(np.meshgrid(np.linspace(-3, 3, 7), np.linspace(-3, 3, 7)), -1).reshape(-1, 2)
    p0 = gan.init_gan(2, 2, (16,), seed=0, pack=2)
    h = gan.train_gan_history(p0, X, steps=20, snapshots=4, batch_size=16, pack=2, grid=grid, n_samples=10)
    assert h["d_grid"].shape == (4, 49) and h["samples"].shape == (4, 10, 2) and h["losses"].shape == (20, 2)
    from course_lib import layers
    D = h["params"]["D"]
    want = jax.nn.sigmoid(layers.mlp_apply(D, np.tile(grid, (1, 2)).astype(np.float32))[:, 0])
    np.testing.assert_allclose(h["d_grid"][-1], np.asarray(want), rtol=1e-5)
    assert gan.train_gan_history(p0, X, steps=4, snapshots=2, batch_size=16, pack=2)["d_grid"] is None


def test_packing_covers_more_modes_than_a_collapsing_gan():
    """Same data, seeds and hyper-parameters (latent 32, lr 2e-3): vanilla collapses, pack=4 covers more modes."""
    X, C = gan.make_ring(4000, std=0.02, seed=0)
    modes = {}
    for pack in (1, 4):
        modes[pack] = [gan.count_modes(gan.train_gan(gan.init_gan(2, 32, (64, 64), seed=s, pack=pack), X,
                                                     steps=2000, snapshots=1, learning_rate=2e-3, pack=pack,
                                                     n_samples=500, seed=s)[2][-1], C, 0.2, 10)
                       for s in (0, 1, 2)]
    assert np.mean(modes[1]) <= 2.5, modes        # collapsed onto one or two of the eight modes
    assert np.mean(modes[4]) >= np.mean(modes[1]) + 3, modes


def test_more_bad_inputs():
    X = np.zeros((10, 2), np.float32)
    with pytest.raises(ValueError, match="pack"):
        gan.train_gan(gan.init_gan(2, 2, (4,)), X, steps=4, snapshots=2, batch_size=8, pack=2)
    with pytest.raises(ValueError, match="batch_size"):
        gan.train_gan(gan.init_gan(2, 2, (4,), pack=3), X, steps=4, snapshots=2, batch_size=8, pack=3)
    with pytest.raises(ValueError, match="d_steps"):
        gan.train_gan(gan.init_gan(2, 2, (4,)), X, steps=4, snapshots=2, d_steps=0)
    with pytest.raises(ValueError, match="generator_loss"):
        gan.train_gan(gan.init_gan(2, 2, (4,)), X, steps=4, snapshots=2, generator_loss="wgan")
    with pytest.raises(ValueError, match="X"):
        gan.train_gan(gan.init_gan(2, 2, (4,)), np.full((10, 2), np.nan, np.float32), steps=4, snapshots=2)
    with pytest.raises(ValueError, match="grid"):
        gan.train_gan_history(gan.init_gan(2, 2, (4,)), X, steps=4, snapshots=2, grid=np.zeros((3, 3)))
    with pytest.raises(TypeError, match="grid"):
        gan.train_gan(gan.init_gan(2, 2, (4,)), X, steps=4, snapshots=2, grid=np.zeros((3, 2)))
    with pytest.raises(ValueError, match="latent_dim"):
        gan.init_gan(2, 0)
    with pytest.raises(TypeError, match="seed"):
        gan.init_gan(2, 2, seed=1.5)


def test_train_gan_seeds_equals_one_train_gan_history_per_seed():
    """Run k of the vmapped trainer is train_gan_history from init_gan(seed=seeds[k]) with seed=seeds[k]
    (float32 data: equal up to float32 rounding, vmapped and unbatched kernels round differently)."""
    X, _ = gan.make_ring(300, seed=1)
    grid = np.stack(np.meshgrid(np.linspace(-3, 3, 5), np.linspace(-3, 3, 5)), -1).reshape(-1, 2)
    kw = dict(steps=12, snapshots=3, batch_size=16, learning_rate=5e-3, n_samples=10, pack=2, d_steps=2, grid=grid)
    seeds = [3, 0, 7]
    out = gan.train_gan_seeds(X, seeds, latent_dim=4, hidden=(8, 8), **kw)
    assert out["losses"].shape == (3, 12, 2) and out["samples"].shape == (3, 3, 10, 2)
    assert out["d_grid"].shape == (3, 3, 25) and list(out["seeds"]) == seeds
    for k, s in enumerate(seeds):
        h = gan.train_gan_history(gan.init_gan(2, 4, (8, 8), seed=s, pack=2), X, seed=s, **kw)
        np.testing.assert_allclose(out["losses"][k], h["losses"], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(out["samples"][k], h["samples"], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(out["d_grid"][k], h["d_grid"], rtol=1e-5, atol=1e-6)
        for got, want in zip(jax.tree_util.tree_leaves(out["params"]), jax.tree_util.tree_leaves(h["params"])):
            np.testing.assert_allclose(np.asarray(got)[k], np.asarray(want), rtol=1e-5, atol=1e-6)
    assert gan.train_gan_seeds(X, [0], latent_dim=2, hidden=(4,), steps=2, snapshots=1, batch_size=8)["d_grid"] is None


def test_train_gan_seeds_bad_inputs():
    X = np.zeros((10, 2), np.float32)
    with pytest.raises(TypeError, match=r"seeds\[0\] must be an int, got float 0.5"):
        gan.train_gan_seeds(X, [0.5], latent_dim=2, steps=2, snapshots=1, batch_size=8)
    with pytest.raises(ValueError, match="seeds must be a non-empty sequence of ints"):
        gan.train_gan_seeds(X, [], latent_dim=2, steps=2, snapshots=1, batch_size=8)
    with pytest.raises(ValueError, match="batch_size"):
        gan.train_gan_seeds(X, [0], latent_dim=2, steps=2, snapshots=1, batch_size=6, pack=4)
    with pytest.raises(ValueError, match="X must be finite"):
        gan.train_gan_seeds(np.full((10, 2), np.nan), [0], latent_dim=2, steps=2, snapshots=1, batch_size=8)
    with pytest.raises(ValueError, match="latent_dim"):
        gan.train_gan_seeds(X, [0], latent_dim=0, steps=2, snapshots=1, batch_size=8)
