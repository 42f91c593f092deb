"""Generative models from scratch: autoencoders, denoising autoencoders and VAEs (GANs: course_lib.gan).

Every model here is built from :mod:`course_lib.layers` MLPs and trained with :mod:`course_lib.optim`.

Autoencoder: z = enc(x), x_hat = sigmoid(dec(z)); loss = binary cross-entropy between x_hat and x
(pixels in [0, 1]), summed over pixels, averaged over the batch. A *denoising* autoencoder feeds a
corrupted x~ but scores the reconstruction against the clean x.

VAE (Kingma & Welling 2014): the encoder outputs (mu, log sigma^2) of q(z|x) = N(mu, diag sigma^2);
the reparameterization trick samples z = mu + sigma * eps, eps ~ N(0, I), so gradients flow through
mu and sigma. The loss is the negative ELBO::

    -ELBO = E_q[-log p(x|z)]  +  KL(q(z|x) || N(0, I))
    KL    = -1/2 sum_j (1 + log sigma_j^2 - mu_j^2 - sigma_j^2)      (closed form)

Taught in: notebooks/12_autoencoders_and_vae.ipynb
"""
from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from course_lib import layers, optim
from course_lib._validation import (as_float_array, check_finite, check_ndim, check_option,
                                    check_positive, check_same_shape)
from course_lib.losses import binary_cross_entropy_with_logits

__all__ = [
    "init_autoencoder", "encode", "decode_logits", "decode", "autoencoder_loss", "corrupt",
    "init_vae", "vae_encode", "reparameterize", "kl_standard_normal", "vae_loss",
    "fit_autoencoder",
]

_CORRUPTIONS = ("gaussian", "mask")


def _seed(seed):
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    return int(seed)


def _x(x, name="x"):
    x = as_float_array(x, name)
    check_ndim(x, name, 2)
    check_finite(x, name)
    return x


def _sizes(sizes, name):
    if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__len__") or len(sizes) < 2:
        raise ValueError(f"{name} must list at least an input and an output width, got {sizes!r}")
    return tuple(sizes)


# ------------------------------------------------------------------------------------ autoencoder
def init_autoencoder(sizes, *, seed: int = 0, init: str = "he"):
    """Encoder MLP with widths ``sizes = (d, h_1, ..., k)`` and a mirrored decoder ``(k, ..., h_1, d)``."""
    sizes = _sizes(sizes, "sizes")
    seed = _seed(seed)
    return {"encoder": layers.init_mlp(sizes, init, seed=seed),
            "decoder": layers.init_mlp(sizes[::-1], init, seed=seed + 1)}


def encode(params, x, activation: str = "relu"):
    """z = enc(x): the code (N, k); the encoder's last layer is linear."""
    return layers.mlp_apply(params["encoder"], x, activation)


def decode_logits(params, z, activation: str = "relu"):
    """Decoder pre-activations (N, d); ``sigmoid`` of them is the reconstruction."""
    return layers.mlp_apply(params["decoder"], z, activation)


def decode(params, z, activation: str = "relu"):
    """x_hat = sigmoid(dec(z)), pixels in (0, 1)."""
    return jax.nn.sigmoid(decode_logits(params, z, activation))


def _recon_per_sample(logits, target):
    # Bernoulli negative log-likelihood summed over pixels (stable: BCE from logits).
    return jnp.sum(binary_cross_entropy_with_logits(logits, target, reduction="none"), axis=-1)


def autoencoder_loss(params, x, target=None, activation: str = "relu"):
    """Mean over the batch of sum_pixels BCE(sigmoid(dec(enc(x))), target); target defaults to x.

    For a denoising autoencoder pass the corrupted input as ``x`` and the clean image as ``target``.
    """
    x = _x(x)
    target = x if target is None else _x(target, "target")
    check_same_shape(x, "x", target, "target")
    logits = decode_logits(params, encode(params, x, activation), activation)
    return jnp.mean(_recon_per_sample(logits, target))


@partial(jax.jit, static_argnums=(2,))
def _corrupt(x, key, kind, amount):
    if kind == "gaussian":
        return jnp.clip(x + amount * jax.random.normal(key, x.shape, x.dtype), 0.0, 1.0)
    keep = jax.random.bernoulli(key, 1.0 - amount, x.shape)
    return jnp.where(keep, x, 0.0)


def corrupt(x, *, seed: int = 0, kind: str = "gaussian", amount: float = 0.3):
    """Corrupt images in [0, 1]: additive Gaussian noise of std ``amount`` (clipped to [0, 1]), or
    ``kind="mask"``: each pixel set to 0 with probability ``amount``."""
    x = _x(x)
    check_option(kind, "kind", _CORRUPTIONS)
    check_positive(amount, "amount", allow_zero=True)
    if kind == "mask" and float(amount) > 1:
        raise ValueError(f"amount must be a probability in [0, 1] for kind='mask', got {amount!r}")
    return _corrupt(x, jax.random.PRNGKey(_seed(seed)), kind, jnp.asarray(amount, x.dtype))


# --------------------------------------------------------------------------------------------- VAE
def init_vae(sizes, *, seed: int = 0, init: str = "he"):
    """VAE with encoder widths ``(d, h_1, ..., k)``: the encoder's last layer outputs 2k numbers
    (mu and log sigma^2); the decoder mirrors it, ``(k, ..., h_1, d)``."""
    sizes = _sizes(sizes, "sizes")
    seed = _seed(seed)
    enc = tuple(sizes[:-1]) + (2 * sizes[-1],)
    return {"encoder": layers.init_mlp(enc, init, seed=seed),
            "decoder": layers.init_mlp(sizes[::-1], init, seed=seed + 1)}


def vae_encode(params, x, activation: str = "relu"):
    """(mu, logvar) of q(z|x), each (N, k)."""
    h = layers.mlp_apply(params["encoder"], x, activation)
    k = h.shape[-1] // 2
    return h[:, :k], h[:, k:]


def reparameterize(mu, logvar, eps):
    """z = mu + exp(logvar / 2) * eps: a sample of N(mu, sigma^2) that is differentiable in mu, logvar."""
    mu, logvar, eps = (as_float_array(a, n) for a, n in ((mu, "mu"), (logvar, "logvar"), (eps, "eps")))
    check_same_shape(mu, "mu", logvar, "logvar")
    check_same_shape(mu, "mu", eps, "eps")
    return mu + jnp.exp(0.5 * logvar) * eps


def kl_standard_normal(mu, logvar):
    """KL(N(mu, diag exp(logvar)) || N(0, I)) per sample (sum over the last axis), in closed form."""
    mu = as_float_array(mu, "mu")
    logvar = as_float_array(logvar, "logvar")
    check_same_shape(mu, "mu", logvar, "logvar")
    check_finite(logvar, "logvar")
    return -0.5 * jnp.sum(1.0 + logvar - mu ** 2 - jnp.exp(logvar), axis=-1)


def vae_loss(params, x, eps, activation: str = "relu", beta: float = 1.0):
    """Negative ELBO averaged over the batch, with ``eps`` (N, k) standard normal noise.

    Returns ``(loss, parts)`` where ``parts = {"recon", "kl", "elbo"}`` are batch means;
    loss = recon + beta * kl (beta = 1 is the true negative ELBO; beta != 1 is the beta-VAE).
    """
    x = _x(x)
    mu, logvar = vae_encode(params, x, activation)
    z = reparameterize(mu, logvar, eps)
    recon = jnp.mean(_recon_per_sample(decode_logits(params, z, activation), x))
    kl = jnp.mean(kl_standard_normal(mu, logvar))
    return recon + beta * kl, {"recon": recon, "kl": kl, "elbo": -(recon + kl)}


# -------------------------------------------------------------------------------------- training
def _epoch_batches(n, batch_size, key):
    perm = jax.random.permutation(key, n)
    n_batches = n // batch_size
    return perm[: n_batches * batch_size].reshape(n_batches, batch_size)


@partial(jax.jit, static_argnums=(0, 4, 6, 7))
def _fit_epochs(kind, params, opt_state, X, batch_size, key_and_noise, opt, activation_beta):
    """All epochs in one compiled call: lax.scan over epochs of lax.scan over minibatches."""
    activation, beta, noise_amount = activation_beta
    keys = key_and_noise

    def loss_fn(p, xb, k):
        if kind == "vae":
            latent = p["decoder"][0]["W"].shape[0]
            eps = jax.random.normal(k, (xb.shape[0], latent), xb.dtype)
            loss, parts = vae_loss(p, xb, eps, activation, beta)
            return loss, jnp.stack([parts["recon"], parts["kl"]])
        inp = xb
        if kind == "dae":
            inp = jnp.clip(xb + noise_amount * jax.random.normal(k, xb.shape, xb.dtype), 0.0, 1.0)
        loss = jnp.mean(_recon_per_sample(
            decode_logits(p, encode(p, inp, activation), activation), xb))
        return loss, jnp.stack([loss, jnp.zeros_like(loss)])

    def batch_step(carry, inputs):
        p, s = carry
        idx, k = inputs
        (loss, parts), grads = jax.value_and_grad(loss_fn, has_aux=True)(p, X[idx], k)
        updates, s = opt.update(grads, s, p)
        return (optim.apply_updates(p, updates), s), parts

    def epoch(carry, key):
        k1, k2 = jax.random.split(key)
        batches = _epoch_batches(X.shape[0], batch_size, k1)
        ks = jax.random.split(k2, batches.shape[0])
        carry, parts = jax.lax.scan(batch_step, carry, (batches, ks))
        return carry, parts.mean(axis=0)

    (params, opt_state), history = jax.lax.scan(epoch, (params, opt_state), keys)
    return params, opt_state, history


def fit_autoencoder(params, X, *, kind: str = "ae", epochs: int = 20, batch_size: int = 64,
                    learning_rate: float = 1e-3, seed: int = 0, activation: str = "relu",
                    beta: float = 1.0, noise: float = 0.3):
    """Train an autoencoder (``kind="ae"``), denoising autoencoder (``"dae"``, Gaussian noise of std
    ``noise``) or VAE (``"vae"``, params from :func:`init_vae`) with Adam, all epochs in one jitted call.

    Returns ``(params, history)``; history is (epochs, 2): per epoch, mean (recon, kl) for a VAE and
    (loss, 0) otherwise.
    """
    check_option(kind, "kind", ("ae", "dae", "vae"))
    X = _x(X, "X")
    for name, v in (("epochs", epochs), ("batch_size", batch_size)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    if batch_size > X.shape[0]:
        raise ValueError(f"batch_size must be at most the number of samples {X.shape[0]}, got {batch_size}")
    check_positive(learning_rate, "learning_rate")
    opt = _adam_cache(float(learning_rate), 0.9)
    keys = jax.random.split(jax.random.PRNGKey(_seed(seed)), int(epochs))
    params, _, history = _fit_epochs(kind, params, opt.init(params), X, int(batch_size), keys, opt,
                                     (activation, float(beta), float(noise)))
    return params, np.asarray(history)


_ADAMS: dict = {}


def _adam_cache(lr, b1):
    """One optimizer object per hyper-parameters, so jit's static-argument cache hits on re-runs."""
    return _ADAMS.setdefault((lr, b1), optim.adam(lr, b1=b1))
