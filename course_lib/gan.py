"""Generative adversarial networks from scratch: losses, the optimal discriminator, compiled training.

GAN (Goodfellow et al. 2014): the discriminator D minimises BCE(D(x), 1) + BCE(D(G(z)), 0); the
generator minimises -log D(G(z)) ("non-saturating", used in practice) or log(1 - D(G(z))) (the
original minimax form, whose gradient vanishes when D easily rejects fakes). At the game's optimum the
*generator's distribution* equals the data distribution and D(x) = 1/2 everywhere.

Taught in: notebooks/13_gans.ipynb
"""
from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from course_lib import layers, optim
from course_lib._validation import as_float_array, check_option, check_positive, check_same_shape
from course_lib.generative import _adam_cache, _seed, _x
from course_lib.losses import binary_cross_entropy_with_logits

__all__ = ["gan_discriminator_loss", "gan_generator_loss", "optimal_discriminator", "GENERATOR_LOSSES",
           "init_gan", "train_gan"]

GENERATOR_LOSSES = ("non_saturating", "minimax")


def gan_discriminator_loss(real_logits, fake_logits):
    """BCE(D(x), 1) + BCE(D(G(z)), 0), each averaged over its batch (D = sigmoid of the logits)."""
    real = as_float_array(real_logits, "real_logits")
    fake = as_float_array(fake_logits, "fake_logits")
    return (binary_cross_entropy_with_logits(real, jnp.ones_like(real))
            + binary_cross_entropy_with_logits(fake, jnp.zeros_like(fake)))


def gan_generator_loss(fake_logits, kind: str = "non_saturating"):
    """Generator loss: ``"non_saturating"`` -mean log D(G(z)), or ``"minimax"`` mean log(1 - D(G(z)))."""
    fake = as_float_array(fake_logits, "fake_logits")
    check_option(kind, "kind", GENERATOR_LOSSES)
    if kind == "non_saturating":
        return binary_cross_entropy_with_logits(fake, jnp.ones_like(fake))
    return -binary_cross_entropy_with_logits(fake, jnp.zeros_like(fake))


def optimal_discriminator(p_data, p_model):
    """D*(x) = p_data(x) / (p_data(x) + p_model(x)): the best D for a fixed generator."""
    p_data = as_float_array(p_data, "p_data")
    p_model = as_float_array(p_model, "p_model")
    check_same_shape(p_data, "p_data", p_model, "p_model")
    if bool(jnp.any((p_data < 0) | (p_model < 0))):
        raise ValueError("p_data and p_model must be densities (>= 0)")
    return p_data / (p_data + p_model)


def init_gan(data_dim: int, latent_dim: int, hidden=(64, 64), *, seed: int = 0):
    """Generator MLP (latent_dim, *hidden, data_dim) and discriminator MLP (data_dim, *hidden, 1)."""
    for name, v in (("data_dim", data_dim), ("latent_dim", latent_dim)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    hidden = tuple(hidden)
    seed = _seed(seed)
    return {"G": layers.init_mlp((latent_dim, *hidden, data_dim), "he", seed=seed),
            "D": layers.init_mlp((data_dim, *hidden, 1), "he", seed=seed + 1)}


@partial(jax.jit, static_argnums=(0, 1, 2, 3, 4, 5))
def _train_gan(g_kind, activation, out_fn, opt, steps_per_snap, batch_size, params, state, X, keys, z_fixed):
    def gen(p, z):
        out = layers.mlp_apply(p["G"], z, activation)
        return jax.nn.sigmoid(out) if out_fn == "sigmoid" else out

    def disc(p, x):
        return layers.mlp_apply(p["D"], x, activation)[:, 0]

    def step(carry, key):
        p, (sd, sg) = carry
        k1, k2, k3 = jax.random.split(key, 3)
        real = X[jax.random.randint(k1, (batch_size,), 0, X.shape[0])]
        z = jax.random.normal(k2, (batch_size, z_fixed.shape[1]), X.dtype)

        def d_loss(pd):
            fake = jax.lax.stop_gradient(gen(p, z))
            return gan_discriminator_loss(disc({"D": pd}, real), disc({"D": pd}, fake))

        ld, gd = jax.value_and_grad(d_loss)(p["D"])
        ud, sd = opt.update(gd, sd, p["D"])
        p = {"G": p["G"], "D": optim.apply_updates(p["D"], ud)}
        z2 = jax.random.normal(k3, z.shape, X.dtype)

        def g_loss(pg):
            return gan_generator_loss(disc(p, gen({"G": pg}, z2)), g_kind)

        lg, gg = jax.value_and_grad(g_loss)(p["G"])
        ug, sg = opt.update(gg, sg, p["G"])
        p = {"G": optim.apply_updates(p["G"], ug), "D": p["D"]}
        return (p, (sd, sg)), jnp.stack([ld, lg])

    def snapshot(carry, ks):
        carry, losses = jax.lax.scan(step, carry, ks)
        return carry, (losses, gen(carry[0], z_fixed))

    return jax.lax.scan(snapshot, (params, state), keys)


def train_gan(params, X, *, steps: int = 2000, snapshots: int = 20, batch_size: int = 128,
              learning_rate: float = 1e-3, b1: float = 0.5, generator_loss: str = "non_saturating",
              n_samples: int = 500, output: str = "linear", activation: str = "relu", seed: int = 0):
    """Train a GAN with Adam (one D step, then one G step, per iteration), compiled in one call.

    Returns ``(params, losses, samples)``: ``losses`` (steps, 2) discriminator and generator loss per
    step; ``samples`` (snapshots, n_samples, d): generator outputs for a *fixed* batch of latent
    vectors after every ``steps / snapshots`` steps (for the training-dynamics viewer).
    ``output="sigmoid"`` squashes generator outputs into (0, 1) (images).
    """
    X = _x(X, "X")
    check_option(generator_loss, "generator_loss", GENERATOR_LOSSES)
    check_option(output, "output", ("linear", "sigmoid"))
    for name, v in (("steps", steps), ("snapshots", snapshots), ("batch_size", batch_size),
                    ("n_samples", n_samples)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    if steps % snapshots:
        raise ValueError(f"steps ({steps}) must be a multiple of snapshots ({snapshots})")
    if layers.layer_sizes(params["D"])[0] != X.shape[1]:
        raise ValueError(f"X has {X.shape[1]} features but the discriminator expects "
                         f"{layers.layer_sizes(params['D'])[0]}")
    check_positive(learning_rate, "learning_rate")
    opt = _adam_cache(float(learning_rate), float(b1))
    latent = layers.layer_sizes(params["G"])[0]
    key = jax.random.PRNGKey(_seed(seed))
    kz, kt = jax.random.split(key)
    z_fixed = jax.random.normal(kz, (int(n_samples), latent), X.dtype)
    keys = jax.random.split(kt, steps).reshape(snapshots, steps // snapshots, 2)
    state = (opt.init(params["D"]), opt.init(params["G"]))
    (params, _), (losses, samples) = _train_gan(generator_loss, activation, output, opt,
                                                steps // snapshots, int(batch_size), params, state,
                                                X, keys, z_fixed)
    return params, np.asarray(losses).reshape(steps, 2), np.asarray(samples)
