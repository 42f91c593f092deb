"""Dense (fully connected) layers and multi-layer perceptrons: initialization, forward pass, size.

Convention used everywhere in the course (row vectors, one example per row)::

    z = x @ W + b        x: (N, n_in)   W: (n_in, n_out)   b: (n_out,)   z: (N, n_out)
    a = sigma(z)

Document 001 (section 3.1.2) writes the same layer for one column vector, ``z = W a + b``; its ``W`` is
our ``W.T``. An MLP's parameters are a list of dicts ``[{"W": W1, "b": b1}, {"W": W2, "b": b2}, ...]``
(a pytree, so ``jax.grad``, optax and ``course_lib.optim`` work on it unchanged). Hidden layers use
the chosen activation; the last layer is linear and returns *logits* (softmax lives in the loss).

Taught in: notebooks/05_feedforward_networks.ipynb
"""
from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from course_lib import activations
from course_lib._validation import (as_float_array, check_finite, check_int, check_key, check_ndim,
                                    check_number, check_option, check_shape, checked)

__all__ = ["INITS", "ACTIVATIONS", "init_dense", "init_mlp", "dense", "mlp_apply",
           "mlp_predict", "param_count", "count_params", "layer_sizes", "check_mlp_params"]

INITS = ("zeros", "normal", "xavier", "he")
ACTIVATIONS = activations.NAMES


# ----------------------------------------------------------------------------------- argument checks
def _check_sizes(sizes, name="sizes"):
    """Layer widths ``(n_0, ..., n_L)`` as a tuple of ints >= 1 (at least two of them)."""
    if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__len__"):
        raise TypeError(f"{name} must be a sequence of layer widths like (64, 128, 10), "
                        f"got {type(sizes).__name__}")
    sizes = tuple(check_int(n, f"{name}[{i}]", minimum=1) for i, n in enumerate(sizes))
    if len(sizes) < 2:
        raise ValueError(f"{name} must list at least an input and an output width, got {sizes}")
    return sizes


def check_mlp_params(params, name: str = "params"):
    """Check an MLP parameter list and return its layer sizes ``(n_0, n_1, ..., n_L)``.

    Raises ``TypeError`` for a wrong container or dtype and ``ValueError`` for mismatched layer sizes
    (layer l's ``W`` must have as many rows as layer l-1 has units), naming the offending layer.
    """
    if not isinstance(params, (list, tuple)) or len(params) == 0:
        raise TypeError(f"{name} must be a non-empty list of {{'W': ..., 'b': ...}} dicts "
                        f"(one per layer), got {type(params).__name__}")
    sizes = []
    for l, layer in enumerate(params):
        if not isinstance(layer, dict) or set(layer) != {"W", "b"}:
            keys = sorted(layer) if isinstance(layer, dict) else type(layer).__name__
            raise TypeError(f"{name}[{l}] must be a dict with keys 'W' and 'b', got {keys}")
        W = check_ndim(as_float_array(layer["W"], f"{name}[{l}]['W']"), f"{name}[{l}]['W']", 2)
        b = check_ndim(as_float_array(layer["b"], f"{name}[{l}]['b']"), f"{name}[{l}]['b']", 1)
        if b.shape[0] != W.shape[1]:
            raise ValueError(f"{name}[{l}]['b'] must have shape ({W.shape[1]},) to match "
                             f"{name}[{l}]['W'] of shape {W.shape}, got {b.shape}")
        if l == 0:
            sizes.append(W.shape[0])
        elif W.shape[0] != sizes[-1]:
            raise ValueError(f"mismatched layer sizes: {name}[{l}]['W'] has {W.shape[0]} input rows "
                             f"but layer {l - 1} outputs {sizes[-1]} units (W of shape "
                             f"{tuple(params[l - 1]['W'].shape)})")
        sizes.append(W.shape[1])
    return tuple(int(s) for s in sizes)


def _check_input(x, n_in, name="x"):
    """A finite float batch ``x`` of shape (N, n_in)."""
    x = check_ndim(as_float_array(x, name), name, 2)
    if x.shape[1] != n_in:
        raise ValueError(f"{name} must have shape (any, {n_in}) to match the first layer, got {x.shape}")
    return check_finite(x, name)


def _check_activation(activation, name="activation"):
    return check_option(activation, name, ACTIVATIONS)


def _check_dense(x, W, b):
    W = check_ndim(as_float_array(W, "W"), "W", 2)
    b = check_shape(as_float_array(b, "b"), "b", (W.shape[1],))
    return _check_input(x, W.shape[0]), W, b


def _check_mlp_apply(params, x, activation="relu", *, dropout=0.0, key=None):
    sizes = check_mlp_params(params)
    x = _check_input(x, sizes[0])
    dropout = check_number(dropout, "dropout", low=0, high=1, high_open=True)
    key = None if key is None else check_key(key, "key")
    return list(params), x, _check_activation(activation), dropout, key


# ---------------------------------------------------------------------------------- initialization
def init_dense(n_in: int, n_out: int, init: str = "he", *, scale: float | None = None, seed: int = 0,
               dtype=np.float32):
    """Weights ``W`` (n_in, n_out) and bias ``b`` (n_out,) of one dense layer (biases start at 0).

    ``init``:
      - ``"zeros"``: W = 0 (every unit computes the same thing: the symmetry is never broken);
      - ``"normal"``: W ~ N(0, scale^2), scale defaults to 0.01;
      - ``"xavier"`` (Glorot & Bengio 2010): W ~ N(0, scale^2 * 2 / (n_in + n_out)), keeps the
        variance of activations and gradients ~constant for tanh/sigmoid-like units;
      - ``"he"`` (He et al. 2015): W ~ N(0, scale^2 * 2 / n_in), the same for ReLU units.
    ``scale`` defaults to 1 for xavier/he (a gain). Drawn with numpy (``default_rng(seed)``).

    Taught in: notebooks/05_feedforward_networks.ipynb
    """
    return init_mlp((n_in, n_out), init, scale=scale, seed=seed, dtype=dtype)[0]


def init_mlp(sizes: Sequence[int], init: str = "he", *, scale: float | None = None, seed: int = 0,
             dtype=np.float32):
    """Parameters of an MLP with layer widths ``sizes = (n_0, n_1, ..., n_L)``.

    Returns ``[{"W": (n_0, n_1), "b": (n_1,)}, ..., {"W": (n_{L-1}, n_L), "b": (n_L,)}]`` as JAX
    arrays of ``dtype``. See :func:`init_dense` for ``init`` and ``scale``. Same seed, same numbers.

    Taught in: notebooks/05_feedforward_networks.ipynb
    """
    sizes, init = _check_sizes(sizes), check_option(init, "init", INITS)
    scale = check_number((0.01 if init == "normal" else 1.0) if scale is None else scale, "scale", low=0)
    rng, dtype = np.random.default_rng(check_int(seed, "seed", minimum=0)), np.dtype(dtype)
    if not np.issubdtype(dtype, np.floating):
        raise TypeError(f"dtype must be a floating-point dtype, got {dtype}")
    params = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        std = {"zeros": 0.0, "normal": scale, "xavier": scale * np.sqrt(2.0 / (n_in + n_out)),
               "he": scale * np.sqrt(2.0 / n_in)}[init]
        W = rng.standard_normal((n_in, n_out)) * std
        params.append({"W": jax.device_put(W.astype(dtype)), "b": jax.device_put(np.zeros((n_out,), dtype))})
    return params


# ----------------------------------------------------------------------------------------- forward
@checked(_check_dense)
def dense(x, W, b):
    """One dense layer, ``z = x @ W + b`` with x (N, n_in), W (n_in, n_out), b (n_out,) -> (N, n_out).

    Taught in: notebooks/05_feedforward_networks.ipynb
    """
    return x @ W + b


@checked(_check_mlp_apply, static_argnames=("activation", "dropout"))
def mlp_apply(params, x, activation: str = "relu", *, dropout: float = 0.0, key=None):
    """Forward pass of an MLP: hidden layers ``h = activation(h @ W + b)``, last layer linear.

    Returns the logits (N, n_L). ``activation`` is one of "sigmoid", "tanh", "relu", "leaky_relu",
    "identity". Works under ``jax.jit``/``jax.grad`` (value checks are skipped on tracers).

    ``dropout`` = p in [0, 1): with a ``jax.random`` ``key`` (training), each hidden unit's output
    is zeroed with probability p and the survivors are scaled by 1/(1 - p) (inverted dropout, so the
    expected activation is unchanged); a new key gives a new mask. Without a key (evaluation) the
    network is used whole, no rescaling. ``training.fit(..., rng=seed)`` passes a fresh key per step::

        model = lambda p, x, key=None: layers.mlp_apply(p, x, "relu", dropout=0.5, key=key)

    Taught in: notebooks/05_feedforward_networks.ipynb (dropout: 08_regularization_and_training)
    """
    f = activations.get(activation)[0]
    h = x
    for l, layer in enumerate(params[:-1]):
        h = f(h @ layer["W"] + layer["b"])
        if key is not None and dropout > 0:   # inverted dropout: keep with prob 1 - p, scale by 1/(1 - p)
            keep = jax.random.bernoulli(jax.random.fold_in(key, l), 1.0 - dropout, h.shape)
            h = jnp.where(keep, h / (1.0 - dropout), 0.0)
    return h @ params[-1]["W"] + params[-1]["b"]


def mlp_predict(params, x, activation: str = "relu"):
    """Predicted class indices ``argmax(logits)`` (N,) of :func:`mlp_apply`."""
    return jnp.argmax(mlp_apply(params, x, activation), axis=-1)


# ------------------------------------------------------------------------------------------ sizes
def param_count(sizes: Sequence[int]) -> int:
    """Number of parameters of an MLP of widths ``(n_0, ..., n_L)``: sum_l (n_l + 1) * n_{l+1}.

    This is document 001 section 3.1.1's formula (its L counts the input layer as a layer, so its
    sum runs to L-1): each layer has an (n_l x n_{l+1}) weight matrix plus n_{l+1} biases -- the
    "+1". The input layer itself has no parameters.

    Taught in: notebooks/05_feedforward_networks.ipynb
    """
    sizes = _check_sizes(sizes)
    return int(sum((a + 1) * b for a, b in zip(sizes[:-1], sizes[1:])))


def count_params(params) -> int:
    """Number of scalars actually stored in a parameter pytree (checks :func:`param_count`)."""
    return int(sum(np.size(leaf) for leaf in jax.tree_util.tree_leaves(params)))


def layer_sizes(params):
    """Layer widths ``(n_0, ..., n_L)`` of an MLP parameter list (validated)."""
    return check_mlp_params(params)
