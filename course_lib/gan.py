"""Generative adversarial networks from scratch: losses, the optimal discriminator, compiled training.

GAN (Goodfellow et al. 2014): a generator G maps latent noise z ~ N(0, I) to samples G(z); a
discriminator D outputs the probability that its input is real. They play the two-player game

    min_G max_D  V(D, G) = E_{x ~ p_data}[log D(x)] + E_{z ~ p_z}[log(1 - D(G(z)))].

D minimises BCE(D(x), 1) + BCE(D(G(z)), 0). For a fixed G the best D is
D*(x) = p_data(x) / (p_data(x) + p_g(x)), and then V(D*, G) = -log 4 + 2 JSD(p_data || p_g). The
generator minimises -log D(G(z)) ("non-saturating", used in practice) or log(1 - D(G(z))) (the
original minimax form, whose gradient vanishes when D easily rejects fakes). At the game's optimum the
*generator's distribution* equals the data distribution, p_g = p_data, and D(x) = 1/2 everywhere.

Mode collapse (the generator covers only some modes of p_data) is measured with :func:`count_modes`
on a ring of Gaussians (:func:`make_ring`). One remedy is implemented: *packing* (PacGAN, Lin et al.
2018), a member of the minibatch-discrimination family: D judges ``pack`` samples at once (all real or
all fake, concatenated into one input vector), so a generator whose samples all look alike is easy
to reject.

GAN training is chaotic: another seed, or another CPU's last-bit rounding, can end a run with other
modes covered. :func:`train_gan_seeds` trains one GAN per seed side by side in one compiled call
(``jax.vmap``), so that a claim about a setup can be checked over seeds.

Taught in: notebooks/13_gans.ipynb
"""
from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from course_lib import layers, optim
from course_lib._validation import (as_float_array, check_finite, check_int, check_int_sequence, check_ndim,
                                    check_number, check_option, check_same_shape)
from course_lib.generative import _adam_cache, _x
from course_lib.losses import binary_cross_entropy_with_logits

__all__ = ["gan_discriminator_loss", "gan_generator_loss", "optimal_discriminator", "GENERATOR_LOSSES",
           "init_gan", "train_gan", "train_gan_history", "train_gan_seeds", "pack_samples", "make_ring",
           "mode_counts", "count_modes"]

GENERATOR_LOSSES = ("non_saturating", "minimax")


def gan_discriminator_loss(real_logits, fake_logits):
    """BCE(D(x), 1) + BCE(D(G(z)), 0), each averaged over its batch (D = sigmoid of the logits).

    = -mean log D(x) - mean log(1 - D(G(z))): the negative of the value V(D, G) that D maximises.
    """
    real = as_float_array(real_logits, "real_logits")
    fake = as_float_array(fake_logits, "fake_logits")
    return (binary_cross_entropy_with_logits(real, jnp.ones_like(real))
            + binary_cross_entropy_with_logits(fake, jnp.zeros_like(fake)))


def gan_generator_loss(fake_logits, kind: str = "non_saturating"):
    """Generator loss: ``"non_saturating"`` -mean log D(G(z)), or ``"minimax"`` mean log(1 - D(G(z))).

    With D = sigmoid(l): d/dl of the minimax loss is -D (-> 0 when D rejects the fakes, D -> 0);
    d/dl of the non-saturating loss is D - 1 (-> -1 there: the strongest push when G is worst).
    """
    fake = as_float_array(fake_logits, "fake_logits")
    check_option(kind, "kind", GENERATOR_LOSSES)
    if kind == "non_saturating":
        return binary_cross_entropy_with_logits(fake, jnp.ones_like(fake))
    return -binary_cross_entropy_with_logits(fake, jnp.zeros_like(fake))


def optimal_discriminator(p_data, p_model):
    """D*(x) = p_data(x) / (p_data(x) + p_model(x)): the best D for a fixed generator.

    It maximises p_data log D + p_model log(1 - D) pointwise. Where both densities are 0 (outside
    both supports) any D is optimal; the convention here is 1/2.
    """
    p_data = as_float_array(p_data, "p_data")
    p_model = as_float_array(p_model, "p_model")
    check_same_shape(p_data, "p_data", p_model, "p_model")
    check_finite(p_data, "p_data")
    check_finite(p_model, "p_model")
    if bool(jnp.any((p_data < 0) | (p_model < 0))):
        raise ValueError("p_data and p_model must be densities (>= 0)")
    total = p_data + p_model
    return jnp.where(total > 0, p_data / jnp.where(total > 0, total, 1), 0.5)


def init_gan(data_dim: int, latent_dim: int, hidden=(64, 64), *, seed: int = 0, pack: int = 1):
    """Generator MLP (latent_dim, *hidden, data_dim) and discriminator MLP (pack * data_dim, *hidden, 1).

    ``pack > 1``: the discriminator of a packed GAN (PacGAN), which reads ``pack`` samples at once.
    """
    data_dim = check_int(data_dim, "data_dim", minimum=1)
    latent_dim = check_int(latent_dim, "latent_dim", minimum=1)
    pack = check_int(pack, "pack", minimum=1)
    hidden = tuple(hidden)
    seed = check_int(seed, "seed")
    return {"G": layers.init_mlp((latent_dim, *hidden, data_dim), "he", seed=seed),
            "D": layers.init_mlp((pack * data_dim, *hidden, 1), "he", seed=seed + 1)}


def pack_samples(x, pack: int):
    """(N, d) -> (N / pack, pack * d): consecutive groups of ``pack`` samples become one D input."""
    x = as_float_array(x, "x")
    check_ndim(x, "x", 2)
    pack = check_int(pack, "pack", minimum=1)
    if x.shape[0] % pack:
        raise ValueError(f"x has {x.shape[0]} rows, not a multiple of pack={pack}")
    return _pack(x, pack)


def _pack(x, pack):
    return x.reshape(x.shape[0] // pack, pack * x.shape[1])


@partial(jax.jit, static_argnums=(0, 1, 2, 3, 4, 5, 6))
def _train_gan(g_kind, activation, out_fn, opt, batch_size, pack, d_steps, params, state, X, keys,
               z_fixed, grid):
    def gen(p, z):
        out = layers.mlp_apply(p["G"], z, activation)
        return jax.nn.sigmoid(out) if out_fn == "sigmoid" else out

    def disc(pd, x):  # x: (B, d) -> logits (B / pack,)
        return layers.mlp_apply(pd, _pack(x, pack), activation)[:, 0]

    def d_step(carry, key):
        p, sd = carry
        k1, k2 = jax.random.split(key)
        real = X[jax.random.randint(k1, (batch_size,), 0, X.shape[0])]
        fake = jax.lax.stop_gradient(gen(p, jax.random.normal(k2, (batch_size, z_fixed.shape[1]), X.dtype)))
        ld, gd = jax.value_and_grad(lambda pd: gan_discriminator_loss(disc(pd, real), disc(pd, fake)))(p["D"])
        ud, sd = opt.update(gd, sd, p["D"])
        return ({"G": p["G"], "D": optim.apply_updates(p["D"], ud)}, sd), ld

    def step(carry, key):
        p, (sd, sg) = carry
        kd, kg = jax.random.split(key)
        if d_steps == 1:  # no inner loop: a one-step scan costs compile time for nothing
            (p, sd), ld = d_step((p, sd), jax.random.split(kd, 1)[0])
            ld = ld[None]
        else:
            (p, sd), ld = jax.lax.scan(d_step, (p, sd), jax.random.split(kd, d_steps))
        z2 = jax.random.normal(kg, (batch_size, z_fixed.shape[1]), X.dtype)
        lg, gg = jax.value_and_grad(lambda pg: gan_generator_loss(disc(p["D"], gen({"G": pg}, z2)), g_kind))(p["G"])
        ug, sg = opt.update(gg, sg, p["G"])
        p = {"G": optim.apply_updates(p["G"], ug), "D": p["D"]}
        return (p, (sd, sg)), jnp.stack([ld[-1], lg])

    def d_prob(p):  # D(x) on grid points; a packed D sees `pack` copies of the same point
        if grid is None:
            return None
        return jax.nn.sigmoid(layers.mlp_apply(p["D"], jnp.tile(grid, (1, pack)), activation)[:, 0])

    def snapshot(carry, ks):
        carry, losses = jax.lax.scan(step, carry, ks)
        return carry, (losses, gen(carry[0], z_fixed), d_prob(carry[0]))

    return jax.lax.scan(snapshot, (params, state), keys)


def _check_run(params, X, *, steps, snapshots, batch_size, learning_rate, b1, generator_loss, n_samples,
               output, pack, d_steps, grid):
    """Validate the arguments of one training run; returns (X, grid, opt) ready for the compiled loop."""
    X = _x(X, "X")
    check_option(generator_loss, "generator_loss", GENERATOR_LOSSES)
    check_option(output, "output", ("linear", "sigmoid"))
    for name, value in (("steps", steps), ("snapshots", snapshots), ("batch_size", batch_size),
                        ("n_samples", n_samples), ("pack", pack), ("d_steps", d_steps)):
        check_int(value, name, minimum=1)
    if steps % snapshots:
        raise ValueError(f"steps ({steps}) must be a multiple of snapshots ({snapshots})")
    if batch_size % pack:
        raise ValueError(f"batch_size ({batch_size}) must be a multiple of pack ({pack})")
    d_in = layers.layer_sizes(params["D"])[0]
    if d_in != pack * X.shape[1]:
        raise ValueError(f"X has {X.shape[1]} features and pack={pack}, so the discriminator must take "
                         f"{pack * X.shape[1]} inputs; it expects {d_in} (init_gan(..., pack={pack}))")
    g_out = layers.layer_sizes(params["G"])[-1]
    if g_out != X.shape[1]:
        raise ValueError(f"X has {X.shape[1]} features but the generator outputs {g_out}")
    if grid is not None:
        grid = _x(grid, "grid")
        if grid.shape[1] != X.shape[1]:
            raise ValueError(f"grid must have {X.shape[1]} columns like X, got shape {grid.shape}")
        grid = grid.astype(X.dtype)
    check_number(learning_rate, "learning_rate", low=0, low_open=True)
    return X, grid, _adam_cache(float(learning_rate), float(b1))


def _run_start(params, X, opt, steps, snapshots, n_samples, seed):
    """The fixed latent batch, the per-step keys (snapshots, steps / snapshots, 2) and the Adam states."""
    latent = layers.layer_sizes(params["G"])[0]
    kz, kt = jax.random.split(jax.random.PRNGKey(check_int(seed, "seed")))
    z_fixed = jax.random.normal(kz, (n_samples, latent), X.dtype)
    keys = jax.random.split(kt, steps).reshape(snapshots, steps // snapshots, 2)
    return z_fixed, keys, (opt.init(params["D"]), opt.init(params["G"]))


def train_gan_history(params, X, *, steps: int = 2000, snapshots: int = 20, batch_size: int = 128,
                      learning_rate: float = 1e-3, b1: float = 0.5, generator_loss: str = "non_saturating",
                      n_samples: int = 500, output: str = "linear", activation: str = "relu", pack: int = 1,
                      d_steps: int = 1, grid=None, seed: int = 0) -> dict:
    """Train a GAN with Adam, compiled in one call, and keep its history for the training-dynamics viewer.

    Each iteration: ``d_steps`` discriminator steps (fresh real and fake batches), then one generator
    step. ``pack > 1`` trains a packed GAN (the discriminator from ``init_gan(..., pack=pack)``).
    Returns a dict:

    * ``"params"``: the trained ``{"G", "D"}``;
    * ``"losses"`` (steps, 2): discriminator loss (its last step of the iteration) and generator loss;
    * ``"samples"`` (snapshots, n_samples, d): generator outputs for one *fixed* batch of latent vectors
      after every ``steps / snapshots`` iterations;
    * ``"d_grid"`` (snapshots, M) D(x) at the M points of ``grid`` (M, d) at every snapshot, or None.

    GAN training is chaotic: another seed, or the last-bit rounding of another CPU, can end in a
    different outcome. To state what a setup does, train several seeds with :func:`train_gan_seeds`.
    """
    X, grid, opt = _check_run(params, X, steps=steps, snapshots=snapshots, batch_size=batch_size,
                              learning_rate=learning_rate, b1=b1, generator_loss=generator_loss,
                              n_samples=n_samples, output=output, pack=pack, d_steps=d_steps, grid=grid)
    z_fixed, keys, state = _run_start(params, X, opt, steps, snapshots, n_samples, seed)
    (params, _), (losses, samples, d_grid) = _train_gan(generator_loss, activation, output, opt, batch_size,
                                                        pack, d_steps, params, state, X, keys, z_fixed, grid)
    return {"params": params, "losses": np.asarray(losses).reshape(steps, 2), "samples": np.asarray(samples),
            "d_grid": None if d_grid is None else np.asarray(d_grid)}


@partial(jax.jit, static_argnums=(0, 1, 2, 3, 4, 5, 6))
def _train_gan_seeds(g_kind, activation, out_fn, opt, batch_size, pack, d_steps, params, state, X, keys,
                     z_fixed, grid):
    def one(p, s, k, z):
        return _train_gan(g_kind, activation, out_fn, opt, batch_size, pack, d_steps, p, s, X, k, z, grid)

    return jax.vmap(one)(params, state, keys, z_fixed)


def train_gan_seeds(X, seeds, *, latent_dim: int, hidden=(64, 64), steps: int = 2000, snapshots: int = 20,
                    batch_size: int = 128, learning_rate: float = 1e-3, b1: float = 0.5,
                    generator_loss: str = "non_saturating", n_samples: int = 500, output: str = "linear",
                    activation: str = "relu", pack: int = 1, d_steps: int = 1, grid=None) -> dict:
    """One GAN per seed, all trained side by side in one compiled call (``jax.vmap`` over the seeds).

    Run ``k`` is ``train_gan_history(init_gan(X.shape[1], latent_dim, hidden, seed=seeds[k],
    pack=pack), X, seed=seeds[k], ...)``: the same initial weights, random numbers and updates (equal
    up to float rounding). GAN training is chaotic, so what one run shows (how many modes it finds,
    where its losses end) can change with the seed or with the last-bit rounding of another CPU; a
    claim about a setup is one that holds over several seeds.

    Returns the dict of :func:`train_gan_history` with a leading axis over the seeds on every entry:
    ``"params"`` (stacked pytree), ``"losses"`` (S, steps, 2), ``"samples"`` (S, snapshots,
    n_samples, d), ``"d_grid"`` (S, snapshots, M) or None; plus ``"seeds"``.
    """
    seed_list = check_int_sequence(seeds, "seeds")
    X = _x(X, "X")
    inits = [init_gan(X.shape[1], latent_dim, hidden, seed=int(s), pack=pack) for s in seed_list]
    X, grid, opt = _check_run(inits[0], X, steps=steps, snapshots=snapshots, batch_size=batch_size,
                              learning_rate=learning_rate, b1=b1, generator_loss=generator_loss,
                              n_samples=n_samples, output=output, pack=pack, d_steps=d_steps, grid=grid)
    starts = [_run_start(p, X, opt, steps, snapshots, n_samples, s) for p, s in zip(inits, seed_list)]
    stack = lambda *trees: jax.tree_util.tree_map(lambda *leaves: jnp.stack(leaves), *trees)  # noqa: E731
    params0 = stack(*inits)
    z_fixed, keys, state = (stack(*parts) for parts in zip(*starts))
    (params, _), (losses, samples, d_grid) = _train_gan_seeds(generator_loss, activation, output, opt,
                                                              batch_size, pack, d_steps, params0, state, X,
                                                              keys, z_fixed, grid)
    S = len(seed_list)
    return {"params": params, "losses": np.asarray(losses).reshape(S, steps, 2), "samples": np.asarray(samples),
            "d_grid": None if d_grid is None else np.asarray(d_grid), "seeds": np.asarray(seed_list)}


def train_gan(params, X, **kwargs):
    """:func:`train_gan_history` without the grid; returns ``(params, losses, samples)``.

    ``losses`` (steps, 2): discriminator and generator loss per step; ``samples`` (snapshots,
    n_samples, d): generator outputs for a fixed latent batch at every snapshot. ``output="sigmoid"``
    squashes generator outputs into (0, 1) (images).
    """
    if "grid" in kwargs:
        raise TypeError("train_gan has no grid argument; use train_gan_history")
    h = train_gan_history(params, X, **kwargs)
    return h["params"], h["losses"], h["samples"]


# ------------------------------------------------------------------ a ring of Gaussians and its modes
def make_ring(n: int, n_modes: int = 8, radius: float = 2.0, std: float = 0.05, *, seed: int = 0):
    """n points of an equal-weight mixture of ``n_modes`` Gaussians N(c_k, std^2 I) on a circle.

    Returns ``(X float32 (n, 2), centers float64 (n_modes, 2))``; centre k at angle 2 pi k / n_modes.
    """
    n, n_modes = check_int(n, "n", minimum=1), check_int(n_modes, "n_modes", minimum=1)
    check_number(radius, "radius", low=0, low_open=True)
    check_number(std, "std", low=0, low_open=True)
    rng = np.random.default_rng(check_int(seed, "seed"))
    angle = 2 * np.pi * np.arange(n_modes) / n_modes
    centers = radius * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    X = centers[rng.integers(0, n_modes, n)] + std * rng.standard_normal((n, 2))
    return X.astype(np.float32), centers


def mode_counts(samples, centers, radius: float):
    """How many samples lie within ``radius`` of each centre (a sample counts for its nearest centre).

    ``samples`` (N, d), ``centers`` (K, d) -> int array (K,). Samples farther than ``radius`` from
    every centre count for none ("low-quality" samples); ``counts.sum() / N`` is the fraction of
    high-quality samples.
    """
    s = np.asarray(as_float_array(samples, "samples"), np.float64)
    c = np.asarray(as_float_array(centers, "centers"), np.float64)
    check_ndim(s, "samples", 2)
    check_ndim(c, "centers", 2)
    if s.shape[1] != c.shape[1]:
        raise ValueError(f"samples and centers must have the same number of columns, got {s.shape} and {c.shape}")
    check_finite(s, "samples")
    check_number(radius, "radius", low=0, low_open=True)
    d = np.sqrt(((s[:, None, :] - c[None, :, :]) ** 2).sum(-1))
    near = d.min(1) <= radius
    return np.bincount(d.argmin(1)[near], minlength=len(c)).astype(np.int64)


def count_modes(samples, centers, radius: float, min_count: int = 1) -> int:
    """Number of modes *covered*: centres with at least ``min_count`` samples within ``radius``."""
    min_count = check_int(min_count, "min_count", minimum=1)
    return int((mode_counts(samples, centers, radius) >= min_count).sum())
