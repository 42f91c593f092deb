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
                                    check_int, check_number, check_same_shape)
from course_lib.losses import binary_cross_entropy_with_logits

__all__ = [
    "init_autoencoder", "encode", "decode_logits", "decode", "autoencoder_loss", "corrupt",
    "init_vae", "vae_encode", "reparameterize", "kl_standard_normal", "vae_loss",
    "fit_autoencoder", "pca", "pca_reconstruct", "fit_linear_autoencoder", "linear_autoencoder_apply",
]

_CORRUPTIONS = ("gaussian", "mask")


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
    seed = check_int(seed, "seed")
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
    check_number(amount, "amount", low=0)
    if kind == "mask" and float(amount) > 1:
        raise ValueError(f"amount must be a probability in [0, 1] for kind='mask', got {amount!r}")
    return _corrupt(x, jax.random.PRNGKey(check_int(seed, "seed")), kind, jnp.asarray(amount, x.dtype))


# --------------------------------------------------------------------------------------------- VAE
def init_vae(sizes, *, seed: int = 0, init: str = "he"):
    """VAE with encoder widths ``(d, h_1, ..., k)``: the encoder's last layer outputs 2k numbers
    (mu and log sigma^2); the decoder mirrors it, ``(k, ..., h_1, d)``."""
    sizes = _sizes(sizes, "sizes")
    seed = check_int(seed, "seed")
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
    mu, logvar, eps = (check_finite(as_float_array(a, n), n)
                       for a, n in ((mu, "mu"), (logvar, "logvar"), (eps, "eps")))
    check_same_shape(mu, "mu", logvar, "logvar")
    check_same_shape(mu, "mu", eps, "eps")
    return mu + jnp.exp(0.5 * logvar) * eps


def kl_standard_normal(mu, logvar):
    """KL(N(mu, diag exp(logvar)) || N(0, I)) per sample (sum over the last axis), in closed form."""
    mu = as_float_array(mu, "mu")
    logvar = as_float_array(logvar, "logvar")
    check_same_shape(mu, "mu", logvar, "logvar")
    check_finite(mu, "mu"), check_finite(logvar, "logvar")
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
@partial(jax.jit, static_argnums=(0, 5, 6))
def _fit_steps(kind, params, opt_state, X, batches_and_noise, opt, activation, beta, noise):
    """Every minibatch step of every epoch in one compiled ``lax.scan``.

    ``batches_and_noise = (idx, e)``: idx (steps, B) row indices, e (steps, B, w) standard normal
    noise (w = d for "ae": the denoising noise; w = k for "vae": the reparameterization's eps), both
    drawn on the host, so the compiled graph holds no random-number generator (half the compile
    time). ``kind`` is "ae" (plain and denoising: ``noise`` is a traced std, 0 = plain) or "vae";
    ``beta`` and ``noise`` are traced, so a sweep over them reuses one compilation.
    """

    def loss_fn(p, xb, e):
        if kind == "vae":
            loss, parts = vae_loss(p, xb, e, activation, beta)
            return loss, jnp.stack([parts["recon"], parts["kl"]])
        inp = jnp.where(noise > 0, jnp.clip(xb + noise * e, 0.0, 1.0), xb)
        loss = jnp.mean(_recon_per_sample(
            decode_logits(p, encode(p, inp, activation), activation), xb))
        return loss, jnp.stack([loss, jnp.zeros_like(loss)])

    def step(carry, inputs):
        p, s = carry
        idx, e = inputs
        (_, parts), grads = jax.value_and_grad(loss_fn, has_aux=True)(p, X[idx], e)
        updates, s = opt.update(grads, s, p)
        return (optim.apply_updates(p, updates), s), parts

    (params, opt_state), parts = jax.lax.scan(step, (params, opt_state), batches_and_noise)
    return params, opt_state, parts


def _host_batches(n, batch_size, epochs, width, seed):
    """Row indices (epochs * n_batches, B): a fresh permutation per epoch, cut into full batches;
    and standard normal noise (epochs * n_batches, B, width), float32, from one NumPy generator."""
    rng = np.random.default_rng(seed)
    n_batches = n // batch_size
    idx = np.stack([rng.permutation(n)[: n_batches * batch_size] for _ in range(epochs)])
    idx = idx.reshape(epochs * n_batches, batch_size).astype(np.int32)
    return idx, rng.standard_normal((epochs * n_batches, batch_size, width), dtype=np.float32)


def _check_model(params, kind, d):
    """The encoder/decoder widths must fit the kind and the data width ``d``."""
    try:
        enc, dec = layers.check_mlp_params(params["encoder"]), layers.check_mlp_params(params["decoder"])
    except (KeyError, TypeError, IndexError) as err:
        raise ValueError("params must be a dict with MLPs 'encoder' and 'decoder' "
                         "(from init_autoencoder or init_vae)") from err
    code = dec[0]
    want = 2 * code if kind == "vae" else code
    if enc[-1] != want:
        maker = "init_vae" if kind == "vae" else "init_autoencoder"
        raise ValueError(f"params must come from {maker} for kind={kind!r}: the encoder outputs {enc[-1]} "
                         f"numbers, expected {want} for a decoder that takes {code}")
    if enc[0] != d or dec[-1] != d:
        raise ValueError(f"X must have {enc[0]} columns like the encoder's input, got {d}")


def fit_autoencoder(params, X, *, kind: str = "ae", epochs: int = 20, batch_size: int = 64,
                    learning_rate: float = 1e-3, seed: int = 0, activation: str = "relu",
                    beta: float = 1.0, noise: float = 0.3):
    """Train an autoencoder (``kind="ae"``), denoising autoencoder (``"dae"``, Gaussian noise of std
    ``noise``, clipped to [0, 1]) or VAE (``"vae"``, params from :func:`init_vae`, KL weight ``beta``)
    with Adam, all epochs in one jitted call. Each epoch visits a fresh random permutation in
    ``len(X) // batch_size`` full minibatches. Permutations and noise come from
    ``numpy.random.default_rng(seed)``: same seed, same model.

    One compilation serves "ae" and "dae" (and any ``noise``), one serves "vae" (any ``beta``), per
    architecture, data shape, batch size and number of epochs (``epochs`` sets the scan length):
    sweeping ``beta``, ``noise``, ``seed`` or the data's values reuses it.

    Returns ``(params, history)``; history is (epochs, 2): per epoch, mean (recon, kl) over the
    minibatches for a VAE and (loss, 0) otherwise.
    """
    check_option(kind, "kind", ("ae", "dae", "vae"))
    X = _x(X, "X")
    check_int(epochs, "epochs", minimum=1)
    check_int(batch_size, "batch_size", minimum=1)
    if batch_size > X.shape[0]:
        raise ValueError(f"batch_size must be at most the number of samples {X.shape[0]}, got {batch_size}")
    check_number(learning_rate, "learning_rate", low=0, low_open=True)
    check_number(beta, "beta", low=0)
    check_number(noise, "noise", low=0)
    layers._check_activation(activation)
    _check_model(params, kind, X.shape[1])
    opt = _adam_cache(float(learning_rate), 0.9)
    width = params["decoder"][0]["W"].shape[0] if kind == "vae" else X.shape[1]
    idx, e = _host_batches(X.shape[0], int(batch_size), int(epochs), width, check_int(seed, "seed"))
    noise = float(noise) if kind == "dae" else 0.0
    params, _, parts = _fit_steps("vae" if kind == "vae" else "ae", params, opt.init(params), X,
                                  (idx, e.astype(X.dtype)), opt, activation,
                                  jnp.asarray(beta, X.dtype), jnp.asarray(noise, X.dtype))
    history = np.asarray(parts).reshape(int(epochs), -1, 2).mean(axis=1)
    return params, history


_ADAMS: dict = {}


def _adam_cache(lr, b1):
    """One optimizer object per hyper-parameters, so jit's static-argument cache hits on re-runs."""
    return _ADAMS.setdefault((lr, b1), optim.adam(lr, b1=b1))


# ------------------------------------------------------------------- PCA: the linear autoencoder
@jax.jit
def _pca(X):
    mean = X.mean(axis=0)
    _, s, vt = jnp.linalg.svd(X - mean, full_matrices=False)
    # sign convention: the largest-magnitude entry of each component is positive
    signs = jnp.sign(vt[jnp.arange(vt.shape[0]), jnp.argmax(jnp.abs(vt), axis=1)])
    vt = vt * signs[:, None]
    return mean, vt, s ** 2 / (X.shape[0] - 1)


def pca(X, k: int):
    """Principal component analysis from the SVD of the centred data, X - mean = U S V^T.

    Returns ``{"mean": (d,), "components": (k, d), "explained_variance": (k,)}``: the top-k right
    singular vectors (orthonormal rows, each with its largest-magnitude entry made positive) and the
    variances S^2 / (N - 1) along them. The best rank-k reconstruction in squared error (Eckart-Young)
    is ``mean + (X - mean) V_k^T V_k``: a linear autoencoder with encoder V_k^T and decoder V_k.
    """
    X = _x(X, "X")
    check_int(k, "k", minimum=1, maximum=min(X.shape))   # at most min(X.shape) components
    mean, comps, var = _pca(X)          # one compilation per data shape, whatever k
    return {"mean": mean, "components": comps[:k], "explained_variance": var[:k]}


@jax.jit
def _pca_reconstruct(mean, comps, X):
    return mean + ((X - mean) @ comps.T) @ comps


def pca_reconstruct(model, X):
    """Project onto the principal subspace and back: mean + (X - mean) V_k^T V_k, shape of X."""
    X = _x(X, "X")
    if not isinstance(model, dict) or not {"mean", "components"} <= set(model):
        raise ValueError("model must be the dict returned by pca() (keys 'mean', 'components')")
    if X.shape[1] != model["components"].shape[1]:
        raise ValueError(f"X must have {model['components'].shape[1]} columns like the PCA model, got {X.shape[1]}")
    return _pca_reconstruct(model["mean"], model["components"], X)


@partial(jax.jit, static_argnums=(1, 2, 3))
def _fit_linear_ae(X, k, steps, opt, W0):
    d = X.shape[1]
    params = {"W_enc": W0[:, :k], "b_enc": jnp.zeros(k, X.dtype),
              "W_dec": W0[:, k:].T, "b_dec": jnp.zeros(d, X.dtype)}

    def loss(p):
        z = X @ p["W_enc"] + p["b_enc"]
        return jnp.mean(jnp.sum((z @ p["W_dec"] + p["b_dec"] - X) ** 2, axis=1))

    def step(carry, _):
        p, s = carry
        value, grads = jax.value_and_grad(loss)(p)
        updates, s = opt.update(grads, s, p)
        return (optim.apply_updates(p, updates), s), value

    (params, _), history = jax.lax.scan(step, (params, opt.init(params)), None, length=steps)
    return params, history


def fit_linear_autoencoder(X, k: int, *, steps: int = 2000, learning_rate: float = 1e-2, seed: int = 0):
    """A linear autoencoder x_hat = (x W_enc + b_enc) W_dec + b_dec with a k-wide code, trained by
    full-batch Adam on the mean over samples of the squared error summed over features.

    Its optimum spans the same subspace as the top-k principal components (Baldi & Hornik 1989), but
    W_dec's rows need not be the components themselves: any invertible k x k mixing of the code gives
    the same reconstruction. Returns ``(params, history)`` with the per-step loss (steps,).
    """
    X = _x(X, "X")
    check_int(k, "k", minimum=1, maximum=X.shape[1])
    check_int(steps, "steps", minimum=1)
    check_number(learning_rate, "learning_rate", low=0, low_open=True)
    d = X.shape[1]
    W0 = np.random.default_rng(check_int(seed, "seed")).normal(0.0, 1.0 / np.sqrt(d), (d, 2 * int(k))).astype(X.dtype)
    params, history = _fit_linear_ae(X, int(k), int(steps), _adam_cache(float(learning_rate), 0.9), W0)
    return params, np.asarray(history)


def linear_autoencoder_apply(params, X):
    """Reconstruction (x W_enc + b_enc) W_dec + b_dec of :func:`fit_linear_autoencoder`'s model."""
    X = _x(X, "X")
    if X.shape[1] != params["W_enc"].shape[0]:
        raise ValueError(f"X must have {params['W_enc'].shape[0]} columns, got {X.shape[1]}")
    return (X @ params["W_enc"] + params["b_enc"]) @ params["W_dec"] + params["b_dec"]
