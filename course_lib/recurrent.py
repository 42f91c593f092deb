"""Recurrent networks from scratch: the vanilla RNN, LSTM and GRU cells and backpropagation through
time (BPTT).

This module is the *reference*, written to be read. Each cell is a step forward and a step backward
with CS231n's contract, ``<cell>_step_forward(x, h_prev, params) -> (h, cache)`` and
``<cell>_step_backward(dh, cache) -> (dx, dh_prev, dparams)``; a sequence is a loop over time
(``lax.scan``) of the step forward (:func:`sequence_forward`), and BPTT the same loop run backwards
over the step backward (:func:`sequence_backward`). The layers (:func:`run`, :func:`lstm`, ...)
are that forward, with that BPTT as their gradient. ``course_lib.fast.recurrent`` computes the same
layers faster (same signatures, tested equal); chapter 11 uses it for its large experiments.

Shapes (batch first, like the rest of the course): a sequence batch ``xs`` is ``(B, T, D)``
(B sequences, T time steps, D input features), a hidden state ``h`` is ``(B, H)``, the outputs
``hs`` of a layer are ``(B, T, H)``. Parameters are dicts of arrays (see ``init_rnn``,
``init_lstm``, ``init_gru``); the input-to-hidden weights of all gates are stored side by side in
one matrix, as PyTorch does.

Cell equations (``x`` the input at step t, ``h`` the previous hidden state, ``*`` elementwise):

* vanilla RNN (Elman): ``h' = phi(x W_xh + h W_hh + b)``, ``phi`` = tanh by default.
* LSTM (Hochreiter & Schmidhuber 1997, with the forget gate of Gers et al. 2000) has *three gates*
  i, f, o and a *cell state* c, which is not a gate::

      i = sigma(x W_xi + h W_hi + b_i)     input gate:  how much of the candidate to write
      f = sigma(x W_xf + h W_hf + b_f)     forget gate: how much of the old cell state to keep
      g = tanh(x W_xg + h W_hg + b_g)      candidate values
      o = sigma(x W_xo + h W_ho + b_o)     output gate: how much of the cell to expose
      c' = f * c + i * g                   the cell state is updated additively
      h' = o * tanh(c')

  Gate order in the stacked matrices is (i, f, g, o), the same as PyTorch's ``nn.LSTM``.
* GRU (Cho et al. 2014) has *two gates*, reset r and update z; the candidate n is not a gate::

      r = sigma(x W_xr + b_xr + h W_hr + b_hr)           reset gate
      z = sigma(x W_xz + b_xz + h W_hz + b_hz)           update gate
      n = tanh(x W_xn + b_xn + r * (h W_hn + b_hn))      candidate state
      h' = (1 - z) * n + z * h

  This is the variant of PyTorch/cuDNN (``r`` multiplies ``h W_hn + b_hn``; Cho et al. apply it to
  ``h`` before the product). Gate order (r, z, n), as in ``nn.GRU``.

Variable lengths: ``mask`` (B, T) marks valid steps with 1. At a masked step the state is carried
over unchanged and the output is 0, so right-padded sequences give the state at each one's last
valid step, and ``reverse=True`` starts each sequence at its own last valid step.

Taught in: notebooks/11_recurrent_networks.ipynb
"""
from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from course_lib import activations, losses
from course_lib._validation import (as_float_array, as_int_array, check_bool, check_cache, check_finite,
                                    check_int, check_ndim, check_option, check_number, checked,
                                    is_binary_np, is_concrete)

__all__ = [
    "KINDS", "ACTIVATIONS", "GATES",
    "init_rnn", "init_lstm", "init_gru", "init",
    "rnn_step_forward", "rnn_step_backward", "lstm_step_forward", "lstm_step_backward",
    "gru_step_forward", "gru_step_backward", "sequence_forward", "sequence_backward",
    "rnn", "lstm", "gru", "run", "bidirectional", "lstm_gate_activations",
    "sequence_mask", "sequence_cross_entropy", "sequence_mse",
    "global_norm", "clip_by_global_norm", "clip_by_value",
    "hidden_gradient_norms",
    "recall_task_batch", "make_grammar_corpus", "char_vocabulary", "encode_text", "decode_text",
    "make_series", "random_windows",
    "init_sequence_model", "sequence_model", "fit", "generate", "forecast",
]

KINDS = ("rnn", "lstm", "gru")
ACTIVATIONS = ("tanh", "relu", "sigmoid", "identity")
#: Weight blocks per cell: the LSTM's 4 (i, f, g, o), the GRU's 3 (r, z, n), the RNN's 1.
GATES = {"rnn": 1, "lstm": 4, "gru": 3}
_KEYS = {"rnn": ("W_xh", "W_hh", "b"), "lstm": ("W_x", "W_h", "b"),
         "gru": ("W_x", "W_h", "b_x", "b_h")}


# =========================================================================== validation
def _float(x, name):
    return check_finite(as_float_array(x, name), name)


def _check_params(kind, params):
    """Validate a parameter dict of ``kind``; return ``(params, input_size, hidden_size)`` with
    exactly the keys of ``kind``, as float arrays."""
    if not isinstance(params, dict):
        raise TypeError(f"params must be a dict of arrays as returned by init_{kind}(), "
                        f"got {type(params).__name__}")
    keys = _KEYS[kind]
    missing = [k for k in keys if k not in params]
    if missing:
        raise ValueError(f"params for a {kind.upper()} must have the keys {', '.join(keys)}; "
                         f"missing {', '.join(missing)} (got {', '.join(map(str, params))})")
    params = {k: _float(params[k], f"params[{k!r}]") for k in keys}
    n = GATES[kind]
    w_in, w_rec = params[keys[0]], params[keys[1]]
    check_ndim(w_in, f"params[{keys[0]!r}]", 2)
    check_ndim(w_rec, f"params[{keys[1]!r}]", 2)
    hidden = w_rec.shape[0]
    if w_rec.shape != (hidden, n * hidden):
        raise ValueError(f"params[{keys[1]!r}] must have shape (H, {n}*H) for a {kind.upper()} with "
                         f"hidden size H, got {tuple(w_rec.shape)}")
    if w_in.shape[1] != n * hidden:
        raise ValueError(f"params[{keys[0]!r}] must have shape (D, {n * hidden}) to match the hidden "
                         f"size H={hidden} of params[{keys[1]!r}], got {tuple(w_in.shape)}")
    for k in keys[2:]:
        if params[k].shape != (n * hidden,):
            raise ValueError(f"params[{k!r}] must have shape ({n * hidden},) to match the hidden "
                             f"size H={hidden}, got {tuple(params[k].shape)}")
    return params, w_in.shape[0], hidden


def _check_xs(xs, input_size, name="xs"):
    xs = _float(xs, name)
    if xs.ndim != 3:
        raise ValueError(f"{name} must have 3 dimension(s) (B sequences, T steps, D features), "
                         f"got shape {tuple(xs.shape)}")
    if xs.shape[2] != input_size:
        raise ValueError(f"{name} must have {input_size} features in its last axis to match the "
                         f"input weights, got shape {tuple(xs.shape)}")
    if xs.shape[1] == 0:
        raise ValueError(f"{name} must have at least one time step, got shape {tuple(xs.shape)}")
    return xs


def _check_h(h, name, batch, hidden, dtype):
    if h is None:
        return jnp.zeros((batch, hidden), dtype)
    h = _float(h, name)
    if h.shape != (batch, hidden):
        raise ValueError(f"{name} must have shape (B, H) = ({batch}, {hidden}) to match the inputs "
                         f"and the hidden size of params, got {tuple(h.shape)}")
    return h.astype(dtype)


def _check_state(kind, state, names, batch, hidden, dtype):
    """A state of ``kind``: h (B, H), or the pair (h, c) for the LSTM; None gives zeros. ``names``:
    the argument's name, then those of h and c, e.g. ("state0", "h0", "c0")."""
    if kind != "lstm":
        return _check_h(state, names[1], batch, hidden, dtype)
    if state is None:
        state = (None, None)
    if not isinstance(state, (tuple, list)) or len(state) != 2:
        raise TypeError(f"{names[0]} must be a pair ({names[1]}, {names[2]}) of arrays (B, H) for an "
                        f"LSTM, or None")
    return (_check_h(state[0], f"{names[0]}[0] ({names[1]})", batch, hidden, dtype),
            _check_h(state[1], f"{names[0]}[1] ({names[2]})", batch, hidden, dtype))


def _check_mask(mask, batch, steps, dtype):
    if mask is None:
        return None
    if isinstance(mask, (str, bytes)):
        raise TypeError(f"mask must be an array of 0/1 (B, T), got {type(mask).__name__}")
    mask = jnp.asarray(mask)
    if mask.shape != (batch, steps):
        raise ValueError(f"mask must have shape (B, T) = ({batch}, {steps}), got {tuple(mask.shape)}")
    if is_concrete(mask) and not is_binary_np(mask):
        raise ValueError("mask must hold only 0 (padding) and 1 (valid step)")
    return mask.astype(dtype)


def _check_run(kind, params, xs, state0, mask, activation):
    """The checks of every sequence function; returns ``(params, xs, state0, mask, activation)``."""
    params, d, hidden = _check_params(kind, params)
    xs = _check_xs(xs, d)
    b, t = xs.shape[:2]
    state0 = _check_state(kind, state0, ("state0", "h0", "c0"), b, hidden, xs.dtype)
    return (params, xs, state0, _check_mask(mask, b, t, xs.dtype),
            check_option(activation, "activation", ACTIVATIONS))


def _check_step(kind, x, state_prev, params):
    params, d, hidden = _check_params(kind, params)
    x = _float(x, "x")
    if x.ndim != 2 or x.shape[1] != d:
        raise ValueError(f"x must have shape (B, D) with D={d} (the input size of params), "
                         f"got {tuple(x.shape)}")
    state_prev = _check_state(kind, state_prev, ("state_prev", "h_prev", "c_prev"), x.shape[0], hidden,
                              x.dtype)
    return x, state_prev, params


def _check_rnn_step(x, h_prev, params, activation="tanh"):
    return (*_check_step("rnn", x, h_prev, params), check_option(activation, "activation", ACTIVATIONS))


def _check_step_grad(kind, dstate, cache):
    check_cache(cache, "cache", f"{kind}_step_forward", _CACHE_KEYS[kind])
    b, hidden = cache["h_prev"].shape
    return _check_state(kind, dstate, ("dstate", "dh", "dc"), b, hidden, cache["h_prev"].dtype), cache


# =========================================================================== initialisation
def _orthogonal(rng, n):
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    return q * np.sign(np.diag(r))


def _draw(kind, input_size, hidden_size, seed, recurrent_scale):
    """Input weights U(-1/sqrt(H), 1/sqrt(H)) (PyTorch's default); recurrent ones the same, or
    ``recurrent_scale`` times a random orthogonal matrix per gate (all singular values equal
    ``recurrent_scale``)."""
    input_size = check_int(input_size, "input_size", minimum=1)
    hidden_size = check_int(hidden_size, "hidden_size", minimum=1)
    if recurrent_scale is not None:
        check_number(recurrent_scale, "recurrent_scale", low=0)
    check_int(seed, "seed", minimum=0)
    rng = np.random.default_rng(seed)
    n, k = GATES[kind], 1.0 / np.sqrt(hidden_size)
    w_in = rng.uniform(-k, k, (input_size, n * hidden_size))
    if recurrent_scale is None:
        w_rec = rng.uniform(-k, k, (hidden_size, n * hidden_size))
    else:
        w_rec = np.concatenate([recurrent_scale * _orthogonal(rng, hidden_size) for _ in range(n)], 1)
    return w_in, w_rec


def _as(tree, dtype):
    return {name: jnp.asarray(np.asarray(v, dtype=dtype)) for name, v in tree.items()}


def init_rnn(input_size, hidden_size, *, seed=0, recurrent_scale=None, dtype="float32"):
    """Parameters of a vanilla RNN: ``W_xh (D, H)``, ``W_hh (H, H)``, ``b (H,)`` (NumPy-drawn).

    Taught in: notebooks/11_recurrent_networks.ipynb
    """
    w_in, w_rec = _draw("rnn", input_size, hidden_size, seed, recurrent_scale)
    return _as({"W_xh": w_in, "W_hh": w_rec, "b": np.zeros(w_rec.shape[1])}, dtype)


def init_lstm(input_size, hidden_size, *, seed=0, recurrent_scale=None, forget_bias=1.0,
              dtype="float32"):
    """LSTM parameters ``W_x (D, 4H)``, ``W_h (H, 4H)``, ``b (4H,)``, gate order (i, f, g, o).

    The forget-gate bias starts at ``forget_bias`` (1 by default, Jozefowicz et al. 2015): with
    ``f = sigma(1) = 0.73`` the cell state is mostly kept at the start of training.

    Taught in: notebooks/11_recurrent_networks.ipynb
    """
    w_in, w_rec = _draw("lstm", input_size, hidden_size, seed, recurrent_scale)
    hidden = w_rec.shape[0]
    b = np.zeros(4 * hidden)
    b[hidden:2 * hidden] = float(forget_bias)
    return _as({"W_x": w_in, "W_h": w_rec, "b": b}, dtype)


def init_gru(input_size, hidden_size, *, seed=0, recurrent_scale=None, update_bias=0.0,
             dtype="float32"):
    """GRU parameters ``W_x (D, 3H)``, ``W_h (H, 3H)``, ``b_x (3H,)``, ``b_h (3H,)``, order (r, z, n).

    ``update_bias`` starts the update gate's input bias there: with ``z = sigma(3) = 0.95`` the
    state is mostly kept (``h' = (1 - z) n + z h``), the GRU's analogue of the LSTM forget bias.

    Taught in: notebooks/11_recurrent_networks.ipynb
    """
    w_in, w_rec = _draw("gru", input_size, hidden_size, seed, recurrent_scale)
    hidden = w_rec.shape[0]
    b_x = np.zeros(3 * hidden)
    b_x[hidden:2 * hidden] = float(update_bias)
    return _as({"W_x": w_in, "W_h": w_rec, "b_x": b_x, "b_h": np.zeros(3 * hidden)}, dtype)


def init(kind, input_size, hidden_size, **kwargs):
    """``init_rnn``, ``init_lstm`` or ``init_gru`` chosen by ``kind``."""
    return {"rnn": init_rnn, "lstm": init_lstm, "gru": init_gru}[check_option(kind, "kind", KINDS)](
        input_size, hidden_size, **kwargs)


# =========================================================================== one time step
#: What each step forward keeps for its step backward.
_CACHE_KEYS = {"rnn": ("x", "h_prev", "dphi", "params"),
               "lstm": ("x", "h_prev", "c_prev", "i", "f", "g", "o", "c", "params"),
               "gru": ("x", "h_prev", "r", "z", "n", "u_n", "params")}


@checked(_check_rnn_step, static_argnames="activation")
def rnn_step_forward(x, h_prev, params, activation="tanh"):
    """One step of a vanilla RNN, with a cache for the backward pass:

        a = x W_xh + h_prev W_hh + b,        h = phi(a)

    ``x (B, D)``, ``h_prev (B, H)`` (None: zeros), ``params`` from ``init_rnn``. Returns
    ``(h, cache)`` (CS231n's layer contract).

    Taught in: notebooks/11_recurrent_networks.ipynb
    """
    phi, phi_grad = activations.get(activation)
    a = x @ params["W_xh"] + h_prev @ params["W_hh"] + params["b"]
    return phi(a), {"x": x, "h_prev": h_prev, "dphi": phi_grad(a), "params": params}


@checked(partial(_check_step_grad, "rnn"))
def rnn_step_backward(dh, cache):
    """Backward of ``rnn_step_forward``: from dL/dh to ``(dx, dh_prev, dparams)``.

        da = dh * phi'(a)                      (through the nonlinearity)
        dx = da W_xh^T,   dh_prev = da W_hh^T
        dW_xh = x^T da,   dW_hh = h_prev^T da,   db = sum over the batch of da

    ``dparams`` is a dict with the keys of ``params``.

    Taught in: notebooks/11_recurrent_networks.ipynb
    """
    p = cache["params"]
    da = dh * cache["dphi"]
    dparams = {"W_xh": cache["x"].T @ da, "W_hh": cache["h_prev"].T @ da, "b": da.sum(axis=0)}
    return da @ p["W_xh"].T, da @ p["W_hh"].T, dparams


@checked(partial(_check_step, "lstm"))
def lstm_step_forward(x, state_prev, params):
    """One LSTM step, with a cache for the backward pass. ``state_prev = (h_prev, c_prev)``, both
    (B, H) (None: zeros):

        z = x W_x + h_prev W_h + b, split into four blocks of H columns z_i, z_f, z_g, z_o
        i = sigma(z_i),  f = sigma(z_f),  g = tanh(z_g),  o = sigma(z_o)
        c = f * c_prev + i * g,           h = o * tanh(c)

    ``x (B, D)``, ``params`` from ``init_lstm``. Returns ``((h, c), cache)``.

    Taught in: notebooks/11_recurrent_networks.ipynb
    """
    h_prev, c_prev = state_prev
    z = x @ params["W_x"] + h_prev @ params["W_h"] + params["b"]
    z_i, z_f, z_g, z_o = jnp.split(z, 4, axis=-1)
    i, f, o = jax.nn.sigmoid(z_i), jax.nn.sigmoid(z_f), jax.nn.sigmoid(z_o)
    g = jnp.tanh(z_g)
    c = f * c_prev + i * g
    h = o * jnp.tanh(c)
    cache = {"x": x, "h_prev": h_prev, "c_prev": c_prev, "i": i, "f": f, "g": g, "o": o, "c": c,
             "params": params}
    return (h, c), cache


@checked(partial(_check_step_grad, "lstm"))
def lstm_step_backward(dstate, cache):
    """Backward of ``lstm_step_forward``: from ``dstate = (dh, dc)``, the gradients reaching h and c,
    to ``(dx, (dh_prev, dc_prev), dparams)``. With sigma' = sigma (1 - sigma), tanh' = 1 - tanh^2:

        do = dh * tanh(c)
        dc = dc + dh * o * (1 - tanh(c)^2)     (c reaches the loss directly and through h)
        di = dc * g,   df = dc * c_prev,   dg = dc * i,   dc_prev = dc * f
        dz = [di * i (1 - i), df * f (1 - f), dg * (1 - g^2), do * o (1 - o)]   (4 blocks)
        dx = dz W_x^T,  dh_prev = dz W_h^T,  dW_x = x^T dz,  dW_h = h_prev^T dz,  db = sum_batch dz

    Taught in: notebooks/11_recurrent_networks.ipynb
    """
    dh, dc = dstate
    i, f, g, o, p = cache["i"], cache["f"], cache["g"], cache["o"], cache["params"]
    tanh_c = jnp.tanh(cache["c"])
    do = dh * tanh_c
    dc = dc + dh * o * (1.0 - tanh_c ** 2)
    di, df, dg = dc * g, dc * cache["c_prev"], dc * i
    dz = jnp.concatenate([di * i * (1.0 - i), df * f * (1.0 - f), dg * (1.0 - g ** 2),
                          do * o * (1.0 - o)], axis=-1)
    dparams = {"W_x": cache["x"].T @ dz, "W_h": cache["h_prev"].T @ dz, "b": dz.sum(axis=0)}
    return dz @ p["W_x"].T, (dz @ p["W_h"].T, dc * f), dparams


@checked(partial(_check_step, "gru"))
def gru_step_forward(x, h_prev, params):
    """One GRU step, with a cache for the backward pass:

        a = x W_x + b_x,   u = h_prev W_h + b_h,   each split into blocks (r, z, n) of H columns
        r = sigma(a_r + u_r),   z = sigma(a_z + u_z),   n = tanh(a_n + r * u_n)
        h = (1 - z) * n + z * h_prev

    ``x (B, D)``, ``h_prev (B, H)`` (None: zeros), ``params`` from ``init_gru``. Returns
    ``(h, cache)``.

    Taught in: notebooks/11_recurrent_networks.ipynb
    """
    a_r, a_z, a_n = jnp.split(x @ params["W_x"] + params["b_x"], 3, axis=-1)
    u_r, u_z, u_n = jnp.split(h_prev @ params["W_h"] + params["b_h"], 3, axis=-1)
    r = jax.nn.sigmoid(a_r + u_r)
    z = jax.nn.sigmoid(a_z + u_z)
    n = jnp.tanh(a_n + r * u_n)
    h = (1.0 - z) * n + z * h_prev
    return h, {"x": x, "h_prev": h_prev, "r": r, "z": z, "n": n, "u_n": u_n, "params": params}


@checked(partial(_check_step_grad, "gru"))
def gru_step_backward(dh, cache):
    """Backward of ``gru_step_forward``: from dL/dh to ``(dx, dh_prev, dparams)``.

        dn = dh * (1 - z),   dz = dh * (h_prev - n),   and h_prev reaches h directly: dh * z
        d(a_n) = dn * (1 - n^2),   dr = d(a_n) * u_n,   d(u_n) = d(a_n) * r
        d(a_r) = d(u_r) = dr * r (1 - r),   d(a_z) = d(u_z) = dz * z (1 - z)
        dx = da W_x^T,   dh_prev = dh * z + du W_h^T
        dW_x = x^T da,   dW_h = h_prev^T du,   db_x = sum_batch da,   db_h = sum_batch du

    Taught in: notebooks/11_recurrent_networks.ipynb
    """
    r, z, n, p = cache["r"], cache["z"], cache["n"], cache["params"]
    d_an = dh * (1.0 - z) * (1.0 - n ** 2)
    d_ar = d_an * cache["u_n"] * r * (1.0 - r)
    d_az = dh * (cache["h_prev"] - n) * z * (1.0 - z)
    da = jnp.concatenate([d_ar, d_az, d_an], axis=-1)
    du = jnp.concatenate([d_ar, d_az, d_an * r], axis=-1)
    dparams = {"W_x": cache["x"].T @ da, "W_h": cache["h_prev"].T @ du, "b_x": da.sum(axis=0),
               "b_h": du.sum(axis=0)}
    return da @ p["W_x"].T, dh * z + du @ p["W_h"].T, dparams


STEP_FORWARD = {"rnn": rnn_step_forward, "lstm": lstm_step_forward, "gru": gru_step_forward}
STEP_BACKWARD = {"rnn": rnn_step_backward, "lstm": lstm_step_backward, "gru": gru_step_backward}


# =========================================================================== a sequence: forward and BPTT
def _step_forward(kind, activation):
    """The step forward of ``kind`` (for the vanilla RNN with its ``activation``)."""
    return partial(rnn_step_forward, activation=activation) if kind == "rnn" else STEP_FORWARD[kind]


def _h(state):
    """The hidden state h of a state: h itself, or the h of the LSTM's pair (h, c)."""
    return state[0] if isinstance(state, tuple) else state


def _plus_h(state, dh):
    """``state`` with ``dh`` added to its h."""
    return (state[0] + dh, state[1]) if isinstance(state, tuple) else state + dh


def _times(m, state):
    """``m * state`` for every array of ``state`` (h, or the LSTM's pair (h, c))."""
    return jax.tree_util.tree_map(lambda a: m * a, state)


def _mix(m, new, old):
    """``m * new + (1 - m) * old`` for every array of the states ``new``, ``old`` (``m`` (B, 1)): the
    new state at a valid step (m = 1), the old one carried over at a padded step (m = 0)."""
    return jax.tree_util.tree_map(lambda a, b: m * a + (1.0 - m) * b, new, old)


def _check_sequence(kind, xs, state0, params, mask=None, activation="tanh"):
    kind = check_option(kind, "kind", KINDS)
    params, xs, state0, mask, activation = _check_run(kind, params, xs, state0, mask, activation)
    return kind, xs, state0, params, (jnp.ones(xs.shape[:2], xs.dtype) if mask is None else mask), activation


@checked(_check_sequence, static_argnames=("kind", "activation"))
def sequence_forward(kind, xs, state0, params, mask=None, activation="tanh"):
    """Run a cell of ``kind`` ("rnn", "lstm", "gru") over a sequence, keeping what BPTT needs:

        for t = 1, ..., T:   state_t, cache_t = <kind>_step_forward(x_t, state_{t-1}, params)
                             (at a padded step, mask 0: state_t = state_{t-1} and the output is 0)

    The same ``params`` at every step. ``xs (B, T, D)``; ``state0``: h0 (B, H), (h0, c0) for the
    LSTM, or None (zeros); ``mask (B, T)`` of 0/1 or None (every step valid); ``activation`` is the
    vanilla RNN's. The loop is a ``lax.scan``: its body is compiled once, whatever T.

    Returns ``(hs (B, T, H), state_T, cache)``: the output h_t of every step, the final state and
    the cache for ``sequence_backward`` (every step's cache, stacked along time, and the mask).

    Taught in: notebooks/11_recurrent_networks.ipynb
    """
    step_forward = _step_forward(kind, activation)            # e.g. lstm_step_forward

    def one_step(state, inputs):
        x_t, m_t = inputs
        new_state, cache_t = step_forward(x_t, state, params)
        new_state = _mix(m_t[:, None], new_state, state)      # a padded step keeps the old state
        return new_state, (m_t[:, None] * _h(new_state), cache_t)   # output h_t (0 if padded)

    state_T, (hs, caches) = lax.scan(one_step, state0, (jnp.swapaxes(xs, 0, 1), mask.T))
    return jnp.swapaxes(hs, 0, 1), state_T, {"steps": caches, "mask": mask.T}


def _check_sequence_grad(kind, dhs, cache, dstate_T=None):
    kind = check_option(kind, "kind", KINDS)
    check_cache(cache, "cache", "sequence_forward", ("steps", "mask"))
    check_cache(cache["steps"], "cache['steps']", f"sequence_forward({kind!r}, ...)", _CACHE_KEYS[kind])
    (t, b), hidden = cache["mask"].shape, cache["steps"]["h_prev"].shape[-1]
    dhs = _float(dhs, "dhs")
    if dhs.shape != (b, t, hidden):
        raise ValueError(f"dhs must have the shape of hs, (B, T, H) = {(b, t, hidden)}, got {tuple(dhs.shape)}")
    return kind, dhs, cache, _check_state(kind, dstate_T, ("dstate_T", "dh_T", "dc_T"), b, hidden, dhs.dtype)


@checked(_check_sequence_grad, static_argnames="kind")
def sequence_backward(kind, dhs, cache, dstate_T=None):
    """Backpropagation through time (BPTT) for ``sequence_forward``: walk the steps backwards,
    carrying dstate_t = dL/dstate_t, the gradient that reaches the state of step t:

        for t = T, ..., 1:   dstate_t += dL/dh_t of the loss at step t          (dhs[:, t])
                             dx_t, dstate_{t-1}, dparams_t = <kind>_step_backward(dstate_t, cache_t)
                             (at a padded step dstate_t passes on unchanged, adding nothing)
        dparams = sum over t of dparams_t       (every step used the same weights)

    ``dhs (B, T, H)``: dL/dh_t of the loss at every step (zeros where it has none); ``dstate_T``: the
    gradient reaching the final state (None: zeros). Returns ``(dxs (B, T, D), dstate_0, dparams)``.

    Taught in: notebooks/11_recurrent_networks.ipynb
    """
    step_backward = STEP_BACKWARD[kind]                       # e.g. lstm_step_backward

    def one_step(dstate, inputs):
        dh_t, cache_t, m_t = inputs
        m = m_t[:, None]
        dstate = _plus_h(dstate, m * dh_t)                    # + the loss at step t (output m * h_t)
        dx_t, dstate_prev, dparams_t = step_backward(_times(m, dstate), cache_t)   # 0 if padded
        return _mix(m, dstate_prev, dstate), (dx_t, dparams_t)   # padded: dstate passes on as it is

    dstate_0, (dxs, dparams) = lax.scan(one_step, dstate_T, (jnp.swapaxes(dhs, 0, 1), cache["steps"],
                                                             cache["mask"]), reverse=True)
    dparams = jax.tree_util.tree_map(lambda g: g.sum(axis=0), dparams)   # shared weights: sum over t
    return jnp.swapaxes(dxs, 0, 1), dstate_0, dparams


# =========================================================================== layers
@partial(jax.custom_vjp, nondiff_argnums=(0, 5))
def _layer(kind, params, xs, state0, mask, activation):
    """``sequence_forward`` whose gradient is ``sequence_backward`` (hand-written BPTT)."""
    hs, state_T, _ = sequence_forward(kind, xs, state0, params, mask, activation)
    return hs, state_T


def _layer_fwd(kind, params, xs, state0, mask, activation):
    hs, state_T, cache = sequence_forward(kind, xs, state0, params, mask, activation)
    return (hs, state_T), (cache, mask)


def _layer_bwd(kind, activation, residuals, cotangents):
    cache, mask = residuals
    dhs, dstate_T = cotangents
    dxs, dstate0, dparams = sequence_backward(kind, dhs, cache, dstate_T)
    return dparams, dxs, dstate0, (None if mask is None else jnp.zeros_like(mask))


_layer.defvjp(_layer_fwd, _layer_bwd)


@partial(jax.jit, static_argnames=("kind", "reverse", "activation"))
def _run(kind, params, xs, state0, mask, reverse, activation):
    if reverse:                             # read each sequence from its last step to its first
        xs, mask = xs[:, ::-1], (None if mask is None else mask[:, ::-1])
    hs, final = _layer(kind, params, xs, state0, mask, activation)
    return (hs[:, ::-1] if reverse else hs), final


def run(kind, params, xs, state0=None, *, mask=None, reverse=False, activation="tanh"):
    """Run a recurrent layer of ``kind`` ("rnn", "lstm", "gru") over ``xs (B, T, D)``.

    Returns ``(hs (B, T, H), final_state)``; the final state is ``h_T`` (RNN, GRU) or
    ``(h_T, c_T)`` (LSTM). ``state0`` defaults to zeros. ``activation`` only applies to the
    vanilla RNN. The forward pass is ``sequence_forward``; its gradient (``jax.grad`` of anything
    computed from the outputs) is ``sequence_backward``, the hand-written BPTT.

    Taught in: notebooks/11_recurrent_networks.ipynb
    """
    kind = check_option(kind, "kind", KINDS)
    reverse = check_bool(reverse, "reverse")
    params, xs, state0, mask, activation = _check_run(kind, params, xs, state0, mask, activation)
    return _run(kind, params, xs, state0, mask, reverse, activation)


def rnn(params, xs, h0=None, *, mask=None, reverse=False, activation="tanh"):
    """Vanilla RNN over a sequence: ``run("rnn", ...)``. Returns ``(hs, h_T)``."""
    return run("rnn", params, xs, h0, mask=mask, reverse=reverse, activation=activation)


def lstm(params, xs, state0=None, *, mask=None, reverse=False):
    """LSTM over a sequence: ``run("lstm", ...)``. Returns ``(hs, (h_T, c_T))``."""
    return run("lstm", params, xs, state0, mask=mask, reverse=reverse)


def gru(params, xs, h0=None, *, mask=None, reverse=False):
    """GRU over a sequence: ``run("gru", ...)``. Returns ``(hs, h_T)``."""
    return run("gru", params, xs, h0, mask=mask, reverse=reverse)


def bidirectional(kind, params_fwd, params_bwd, xs, *, mask=None, activation="tanh"):
    """A forward and a backward layer over the same sequence, outputs concatenated: ``(B, T, 2H)``.

    The backward layer reads each sequence from its last valid step to its first (with ``mask``
    for right-padded sequences). Returns ``(hs, (final_fwd, final_bwd))``.

    Taught in: notebooks/11_recurrent_networks.ipynb
    """
    kind = check_option(kind, "kind", KINDS)
    _check_params(kind, params_fwd)
    _check_params(kind, params_bwd)
    hs_f, fin_f = run(kind, params_fwd, xs, mask=mask, activation=activation)
    hs_b, fin_b = run(kind, params_bwd, xs, mask=mask, reverse=True, activation=activation)
    return jnp.concatenate([hs_f, hs_b], axis=-1), (fin_f, fin_b)


def lstm_gate_activations(params, xs):
    """Every gate of an LSTM over ``xs (B, T, D)`` from a zero state: dict i, f, g, o, c, h of
    arrays ``(B, T, H)`` (read from the caches of ``sequence_forward``). What the gate widget shows.

    Taught in: notebooks/11_recurrent_networks.ipynb
    """
    hs, _, cache = sequence_forward("lstm", xs, None, params)
    return {**{k: jnp.swapaxes(cache["steps"][k], 0, 1) for k in "ifgoc"}, "h": hs}


# =========================================================================== losses with masks
def sequence_mask(lengths, max_len, *, padding="right", dtype="float32"):
    """Mask (B, T) with 1 at the valid steps of sequences of the given ``lengths``.

    ``padding="right"``: sequence b occupies steps 0..lengths[b]-1; ``"left"``: the last lengths[b]
    steps. Taught in: notebooks/11_recurrent_networks.ipynb
    """
    max_len = check_int(max_len, "max_len", minimum=1)
    check_option(padding, "padding", ("right", "left"))
    lengths = as_int_array(lengths, "lengths")
    check_ndim(lengths, "lengths", 1)
    if is_concrete(lengths) and lengths.size:
        lo, hi = int(np.min(np.asarray(lengths))), int(np.max(np.asarray(lengths)))
        if lo < 0 or hi > max_len:
            raise ValueError(f"lengths must lie in [0, max_len={max_len}], got values from {lo} to {hi}")
    t = jnp.arange(max_len)[None, :]
    valid = t < lengths[:, None] if padding == "right" else t >= max_len - lengths[:, None]
    return valid.astype(dtype)


def _seq_mask_for(mask, shape, dtype):
    """:func:`_check_mask` for a sequence loss: no mask means every step counts, and a mask must
    mark at least one step."""
    if mask is None:
        return jnp.ones(shape, dtype)
    mask = _check_mask(mask, *shape, dtype)
    if is_concrete(mask) and not (np.asarray(mask) == 1).any():
        raise ValueError("mask must mark at least one valid step")
    return mask.astype(dtype)


def sequence_cross_entropy(logits, labels, mask=None):
    """Mean cross-entropy over the valid steps: sum_{b,t} m_bt CE(logits_bt, y_bt) / sum m_bt.

    ``logits (B, T, C)``, ``labels (B, T)`` int class indices, ``mask (B, T)`` of 0/1 (None: all
    valid). Padded steps neither add to the loss nor to the count, so a batch of short sequences
    is not diluted by its padding. Taught in: notebooks/11_recurrent_networks.ipynb
    """
    logits = _float(logits, "logits")
    check_ndim(logits, "logits", 3)
    labels = as_int_array(labels, "labels")
    b, t, c = logits.shape
    if labels.shape != (b, t):
        raise ValueError(f"labels must have shape (B, T) = {(b, t)} to match logits, got {tuple(labels.shape)}")
    mask = _seq_mask_for(mask, (b, t), logits.dtype)
    per_step = losses.cross_entropy(logits.reshape(b * t, c), labels.reshape(b * t), reduction="none")
    return jnp.sum(per_step * mask.reshape(-1)) / jnp.sum(mask)


def sequence_mse(pred, target, mask=None):
    """Mean squared error over the valid steps: sum m_bt (pred - target)^2 / (sum m_bt * F).

    ``pred``, ``target`` (B, T) or (B, T, F); ``mask (B, T)``. Taught in: notebooks/11_recurrent_networks.ipynb
    """
    pred, target = _float(pred, "pred"), _float(target, "target")
    check_ndim(pred, "pred", (2, 3))
    if pred.shape != target.shape:
        raise ValueError(f"pred and target must have the same shape, got {tuple(pred.shape)} and "
                         f"{tuple(target.shape)}")
    mask = _seq_mask_for(mask, pred.shape[:2], pred.dtype)
    sq = (pred - target) ** 2
    if sq.ndim == 3:
        return jnp.sum(sq * mask[..., None]) / (jnp.sum(mask) * sq.shape[2])
    return jnp.sum(sq * mask) / jnp.sum(mask)


# =========================================================================== gradient clipping
def _tree(grads, name="grads"):
    leaves = jax.tree_util.tree_leaves(grads)
    if not leaves:
        raise ValueError(f"{name} must be a non-empty pytree of float arrays")
    for leaf in leaves:
        as_float_array(leaf, name)
    return leaves


def global_norm(grads):
    """sqrt(sum of squares of every entry of every leaf): the norm of all gradients as one vector."""
    return jnp.sqrt(sum(jnp.sum(jnp.square(g)) for g in _tree(grads)))


@jax.jit
def _clip_global(grads, max_norm):
    norm = jnp.sqrt(sum(jnp.sum(jnp.square(g)) for g in jax.tree_util.tree_leaves(grads)))
    scale = jnp.where(norm > max_norm, max_norm / jnp.where(norm > 0, norm, 1.0), 1.0)
    return jax.tree_util.tree_map(lambda g: (g * scale).astype(g.dtype), grads), norm


def clip_by_global_norm(grads, max_norm):
    """Rescale all gradients together so their global norm is at most ``max_norm``.

    ``g <- g * max_norm / max(norm, max_norm)``: the direction is kept, only the length shrinks,
    which is what tames exploding gradients in RNNs (Pascanu et al. 2013). Equals
    ``optax.clip_by_global_norm``. Returns ``(clipped, norm_before)``.

    Taught in: notebooks/11_recurrent_networks.ipynb
    """
    _tree(grads)
    check_number(max_norm, "max_norm", low=0, low_open=True)
    return _clip_global(grads, max_norm)


def clip_by_value(grads, max_abs):
    """Clip every gradient entry to ``[-max_abs, max_abs]`` (changes the direction, unlike
    ``clip_by_global_norm``). Equals ``optax.clip``."""
    _tree(grads)
    check_number(max_abs, "max_abs", low=0, low_open=True)
    return jax.tree_util.tree_map(lambda g: jnp.clip(g, -max_abs, max_abs), grads)


# =========================================================================== gradient through time
def _perturbed_run(kind, params, xs, eps, activation):
    """Plain autodiff scan (time-major) where eps_t is added to h_t: dL/deps_t = dL/dh_t."""
    b, hidden = xs.shape[1], eps.shape[-1]
    h0 = jnp.zeros((b, hidden), xs.dtype)
    step_forward = _step_forward(kind, activation)

    def step(state, inp):
        x, e = inp
        state = _plus_h(step_forward(x, state, params)[0], e)
        return state, _h(state)

    _, hs = lax.scan(step, (h0, h0) if kind == "lstm" else h0, (xs, eps))
    return hs


def _gradient_norms_core(kind, params, xs, loss_steps, activation):
    """``(len(loss_steps), T)``: one forward pass, then its VJP (``jax.vjp``) applied to one
    cotangent per loss step, vmapped, so all loss steps share the forward pass."""
    xs = jnp.swapaxes(xs, 0, 1)
    t, b = xs.shape[:2]
    hidden = params["W_hh" if kind == "rnn" else "W_h"].shape[0]
    direction = jnp.ones((hidden,), xs.dtype) / jnp.sqrt(hidden)
    _, pullback = jax.vjp(lambda eps: _perturbed_run(kind, params, xs, eps, activation),
                          jnp.zeros((t, b, hidden), xs.dtype))
    at_step = (jnp.arange(t)[None, :] == jnp.asarray(loss_steps)[:, None]).astype(xs.dtype)
    cotangents = jnp.broadcast_to(at_step[:, :, None, None] * direction, at_step.shape + (b, hidden))
    (g,) = jax.vmap(pullback)(cotangents)                                 # (n, T, B, H)
    return jnp.mean(jnp.sqrt(jnp.sum(g * g, axis=-1)), axis=-1)


@partial(jax.jit, static_argnames=("kind", "activation"))
def _hidden_gradient_norms(kind, params, xs, loss_step, activation):
    return _gradient_norms_core(kind, params, xs, jnp.reshape(loss_step, (1,)), activation)[0]


def hidden_gradient_norms(kind, params, xs, *, loss_step=None, activation="tanh"):
    """||dL/dh_t|| for every step t, with ``L = sum_b h_{loss_step} . u`` (u = ones / sqrt(H)).

    ``xs (B, T, D)``; ``loss_step`` defaults to the last step. Returns ``(T,)``: the mean over the
    batch of each sequence's gradient norm (0 after ``loss_step``). A loss at the last step
    reaching step t only through T - t Jacobians dh_{s+1}/dh_s is why a vanilla RNN's gradient
    vanishes (or explodes) geometrically with the distance. Computed with ``jax.grad``.

    Taught in: notebooks/11_recurrent_networks.ipynb
    """
    kind = check_option(kind, "kind", KINDS)
    params, xs, _, _, activation = _check_run(kind, params, xs, None, None, activation)
    t = xs.shape[1]
    step = t - 1 if loss_step is None else loss_step
    if is_concrete(step) and not (0 <= int(step) < t):
        raise ValueError(f"loss_step must be a step index in [0, {t - 1}], got {loss_step}")
    return _hidden_gradient_norms(kind, params, xs, step, activation)


# =========================================================================== tasks
@partial(jax.jit, static_argnames=("batch_size", "max_len", "n_symbols", "n_noise"))
def _recall_batch(key, length, batch_size, max_len, n_symbols, n_noise):
    k_sym, k_noise = jax.random.split(key)
    symbol = jax.random.randint(k_sym, (batch_size,), 0, n_symbols)
    t = jnp.arange(max_len)
    start = max_len - length
    valid = jnp.broadcast_to((t >= start).astype(jnp.float32), (batch_size, max_len))
    marker = (t == start).astype(jnp.float32)[None, :, None] * jnp.ones((batch_size, 1, 1))
    shown = jax.nn.one_hot(symbol, n_symbols)[:, None, :] * marker
    noise = jax.random.normal(k_noise, (batch_size, max_len, n_noise)) * (1.0 - marker)
    xs = jnp.concatenate([shown, marker, noise], axis=-1) * valid[..., None]
    return xs, valid, symbol


def recall_task_batch(key, length, *, batch_size=32, max_len=None, n_symbols=4, n_noise=4):
    """A long-range memory task: remember the symbol shown at the first step of a sequence of
    ``length`` steps and name it after the last one.

    Step 1 shows one of ``n_symbols`` symbols (one-hot) with a marker bit; the other steps carry
    only Gaussian noise in ``n_noise`` channels, to be ignored. Sequences are left-padded to
    ``max_len`` (default ``length``) so several lengths share one compiled model. Returns
    ``(xs (B, max_len, n_symbols + 1 + n_noise), mask (B, max_len), labels (B,))``; chance
    accuracy is 1 / n_symbols. ``length`` may be a traced integer (inside ``jit``/``vmap``).

    Taught in: notebooks/11_recurrent_networks.ipynb
    """
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    n_symbols = check_int(n_symbols, "n_symbols", minimum=1)
    n_noise = check_int(n_noise, "n_noise", minimum=0)
    if max_len is None:
        max_len = check_int(length, "length", minimum=1)
    max_len = check_int(max_len, "max_len", minimum=1)
    if is_concrete(length) and not 1 <= int(length) <= max_len:
        raise ValueError(f"length must lie in [1, max_len={max_len}], got {length}")
    return _recall_batch(key, length, batch_size, max_len, n_symbols, n_noise)


_GRAMMAR = {
    "subject": ("the cat", "the dog", "a bird", "my sister", "the old man", "a small child",
                "the teacher", "our neighbour"),
    "verb_t": ("sees", "likes", "follows", "paints", "finds", "helps", "watches"),
    "object": ("the ball", "a red apple", "the river", "a tall tree", "the moon", "her friend",
               "the garden", "a green door"),
    "verb_i": ("sleeps", "runs", "sings", "waits", "laughs", "dreams"),
    "adverb": ("quickly", "at night", "in the garden", "every day", "slowly", "again"),
}


def make_grammar_corpus(n_sentences=2000, *, seed=0):
    """A text written by the course: ``n_sentences`` sentences of a small English grammar::

        sentence -> subject verb_t object [adverb] "." | subject verb_i [adverb] "."

    (vocabulary in ``_GRAMMAR``), joined by spaces. No download; deterministic for a seed.

    Taught in: notebooks/11_recurrent_networks.ipynb
    """
    n_sentences = check_int(n_sentences, "n_sentences", minimum=1)
    rng = np.random.default_rng(seed)
    pick = lambda part: _GRAMMAR[part][rng.integers(len(_GRAMMAR[part]))]  # noqa: E731
    out = []
    for _ in range(n_sentences):
        words = [pick("subject")]
        words += [pick("verb_t"), pick("object")] if rng.random() < 0.6 else [pick("verb_i")]
        if rng.random() < 0.5:
            words.append(pick("adverb"))
        out.append(" ".join(words) + ".")
    return " ".join(out)


def char_vocabulary(text):
    """The sorted distinct characters of ``text``, as one string (index = token id)."""
    if not isinstance(text, str) or not text:
        raise TypeError("text must be a non-empty string")
    return "".join(sorted(set(text)))


def encode_text(text, vocab):
    """Token ids (int32 NumPy array) of the characters of ``text`` in ``vocab``."""
    if not isinstance(text, str) or not isinstance(vocab, str):
        raise TypeError("text and vocab must be strings")
    index = {ch: i for i, ch in enumerate(vocab)}
    unknown = sorted(set(text) - set(index))
    if unknown:
        raise ValueError(f"text holds characters that are not in vocab: {''.join(unknown)!r}")
    return np.array([index[ch] for ch in text], dtype=np.int32)


def decode_text(ids, vocab):
    """The string of the token ``ids`` in ``vocab``."""
    ids = np.asarray(as_int_array(ids, "ids"))
    if ids.size and (ids.min() < 0 or ids.max() >= len(vocab)):
        raise ValueError(f"ids must lie in [0, {len(vocab) - 1}]")
    return "".join(vocab[i] for i in ids.reshape(-1))


def make_series(n_steps=1200, *, seed=0, noise=0.05):
    """A synthetic time series to forecast: two sines (periods 24 and 9.5 steps) with a slowly
    varying amplitude, plus Gaussian noise of standard deviation ``noise``. float32 ``(n_steps,)``.

    Taught in: notebooks/11_recurrent_networks.ipynb
    """
    n_steps = check_int(n_steps, "n_steps", minimum=1)
    check_number(noise, "noise", low=0)
    t = np.arange(n_steps)
    amp = 1.0 + 0.3 * np.sin(2 * np.pi * t / 300.0)
    clean = amp * np.sin(2 * np.pi * t / 24.0) + 0.5 * np.sin(2 * np.pi * t / 9.5 + 1.0)
    return (clean + noise * np.random.default_rng(seed).standard_normal(n_steps)).astype(np.float32)


@partial(jax.jit, static_argnames=("batch_size", "window"))
def _random_windows(key, seq, batch_size, window):
    starts = jax.random.randint(key, (batch_size,), 0, seq.shape[0] - window + 1)
    return jax.vmap(lambda s: lax.dynamic_slice_in_dim(seq, s, window))(starts)


def random_windows(key, seq, batch_size, window):
    """``batch_size`` random windows of ``window`` consecutive entries of the 1-D ``seq``:
    ``(batch_size, window)``. Usable inside ``fit``'s compiled loop."""
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    window = check_int(window, "window", minimum=1)
    check_ndim(seq, "seq", 1)
    if window > jnp.shape(seq)[0]:
        raise ValueError(f"window must be at most len(seq) = {jnp.shape(seq)[0]}, got {window}")
    return _random_windows(key, seq, batch_size, window)


# =========================================================================== models, training, sampling
def init_sequence_model(kind, input_size, hidden_size, output_size, *, seed=0, **cell_kwargs):
    """A recurrent layer plus a dense read-out at every step: ``{"cell": ..., "W_out", "b_out"}``.

    Taught in: notebooks/11_recurrent_networks.ipynb
    """
    kind = check_option(kind, "kind", KINDS)
    output_size = check_int(output_size, "output_size", minimum=1)
    cell = init(kind, input_size, hidden_size, seed=seed, **cell_kwargs)
    rng = np.random.default_rng(seed + 1)
    k = 1.0 / np.sqrt(hidden_size)
    dtype = cell[_KEYS[kind][0]].dtype
    return {"cell": cell, "W_out": jnp.asarray(rng.uniform(-k, k, (hidden_size, output_size)).astype(dtype)),
            "b_out": jnp.zeros(output_size, dtype)}


def _with_readout(run_layer, kind, params, xs, mask, state0, activation):
    """``run_layer`` (this module's ``run`` or the fast wing's) followed by the read-out."""
    if not isinstance(params, dict) or not {"cell", "W_out", "b_out"} <= set(params):
        raise ValueError("params must be a dict with keys 'cell', 'W_out', 'b_out' "
                         "(from init_sequence_model)")
    hs, final = run_layer(kind, params["cell"], xs, state0, mask=mask, activation=activation)
    w = _float(params["W_out"], "params['W_out']")
    if w.shape[0] != hs.shape[-1]:
        raise ValueError(f"params['W_out'] must have {hs.shape[-1]} rows (the hidden size), "
                         f"got shape {tuple(w.shape)}")
    return hs @ w + params["b_out"], final


def sequence_model(kind, params, xs, *, mask=None, state0=None, activation="tanh"):
    """Outputs ``(B, T, C) = hs W_out + b_out`` at every step and the final state of the layer."""
    return _with_readout(run, kind, params, xs, mask, state0, activation)


@partial(jax.jit, static_argnames=("loss_fn", "sample_batch", "steps", "optimizer", "clip_norm"))
def _fit(loss_fn, params, sample_batch, key, data, steps, optimizer, clip_norm):
    from course_lib import optim

    def step(carry, k):
        p, state = carry
        loss, grads = jax.value_and_grad(loss_fn)(p, sample_batch(k, data))
        if clip_norm is not None:
            grads, _ = _clip_global(grads, clip_norm)
        updates, state = optimizer.update(grads, state, p)
        return (optim.apply_updates(p, updates), state), loss

    (params, _), history = lax.scan(step, (params, optimizer.init(params)), jax.random.split(key, steps))
    return params, history


def fit(loss_fn, params, sample_batch, key, *, steps, optimizer, clip_norm=None, data=None):
    """Train for ``steps`` steps inside one compiled ``lax.scan``; returns ``(params, losses)``.

    ``sample_batch(key, data) -> batch`` draws a fresh mini-batch each step (the data is generated
    or sliced inside the compiled loop), ``loss_fn(params, batch) -> scalar``, ``optimizer`` an
    optax-style pair from ``course_lib.optim`` (e.g. ``optim.adam(1e-2)``), ``clip_norm`` an
    optional global-norm clip. ``data`` (any pytree of arrays) is passed to ``sample_batch``
    unchanged; changing its values does not recompile.

    Taught in: notebooks/11_recurrent_networks.ipynb
    """
    if not callable(loss_fn) or not callable(sample_batch):
        raise TypeError("loss_fn and sample_batch must be callables")
    steps = check_int(steps, "steps", minimum=1)
    if clip_norm is not None:
        check_number(clip_norm, "clip_norm", low=0, low_open=True)
        clip_norm = float(clip_norm)
    if not (hasattr(optimizer, "init") and hasattr(optimizer, "update")):
        raise TypeError(f"optimizer must have init and update (e.g. course_lib.optim.adam(1e-2)), "
                        f"got {type(optimizer).__name__}")
    return _fit(loss_fn, params, sample_batch, key, data, steps, optimizer, clip_norm)


def _read(kind, params, xs, activation):
    """The final state and last output h of the layer of a sequence model over ``xs`` (1, T, D)."""
    _, state, _ = sequence_forward(kind, xs, _zero_state(kind, params, 1, xs.dtype), params["cell"],
                                   None, activation)
    return state, _h(state)


@partial(jax.jit, static_argnames=("kind", "n_steps", "activation"))
def _generate(kind, params, prompt, key, temperature, n_steps, activation):
    vocab = params["W_out"].shape[1]
    state, h = _read(kind, params, jax.nn.one_hot(prompt, vocab, dtype=params["W_out"].dtype)[None],
                     activation)
    step_forward = _step_forward(kind, activation)

    def step(carry, k):
        state, h = carry
        token = jax.random.categorical(k, (h @ params["W_out"] + params["b_out"]) / temperature)
        state, _ = step_forward(jax.nn.one_hot(token, vocab, dtype=h.dtype), state, params["cell"])
        return (state, _h(state)), token[0]

    _, tokens = lax.scan(step, (state, h), jax.random.split(key, n_steps))
    return tokens


@partial(jax.jit, static_argnames=("kind", "n_steps"))
def _forecast(kind, params, history, n_steps):
    state, h = _read(kind, params, history[None, :, None], "tanh")
    step_forward = _step_forward(kind, "tanh")

    def step(carry, _):
        state, h = carry
        y = h @ params["W_out"] + params["b_out"]                  # (1, 1): the next value
        state, _ = step_forward(y, state, params["cell"])
        return (state, _h(state)), y[0, 0]

    _, ys = lax.scan(step, (state, h), None, length=n_steps)
    return ys


def forecast(kind, params, history, n_steps):
    """Autoregressive forecast of a scalar series: read ``history (T,)``, then predict the next
    value and feed each prediction back as the next input, ``n_steps`` times. Returns ``(n_steps,)``.
    The model must have input and output size 1 (``init_sequence_model(kind, 1, H, 1)``).

    Taught in: notebooks/11_recurrent_networks.ipynb
    """
    kind = check_option(kind, "kind", KINDS)
    history = _float(history, "history")
    check_ndim(history, "history", 1)
    _, d, _ = _check_params(kind, params["cell"])
    if d != 1 or jnp.shape(params["W_out"])[1] != 1:
        raise ValueError("forecast needs a model with input size 1 and output size 1")
    return _forecast(kind, params, history, check_int(n_steps, "n_steps", minimum=1))


def _zero_state(kind, params, batch, dtype):
    hidden = params["W_out"].shape[0]
    z = jnp.zeros((batch, hidden), dtype)
    return (z, z) if kind == "lstm" else z


def generate(kind, params, prompt, n_steps, key, *, temperature=1.0, activation="tanh"):
    """Sample ``n_steps`` tokens from a one-hot-input sequence model after reading ``prompt``.

    ``prompt``: int array (P,) of token ids (P >= 1). Each step draws the next token from
    ``softmax(logits / temperature)`` and feeds it back as the next input. Returns the new ids
    ``(n_steps,)``. Low temperature: likelier, more repetitive text; high: more random.

    Taught in: notebooks/11_recurrent_networks.ipynb
    """
    kind = check_option(kind, "kind", KINDS)
    prompt = as_int_array(prompt, "prompt")
    check_ndim(prompt, "prompt", 1)
    if prompt.shape[0] < 1:
        raise ValueError("prompt must hold at least one token id")
    vocab = jnp.shape(params["W_out"])[1]
    if int(prompt.min()) < 0 or int(prompt.max()) >= vocab:
        raise ValueError(f"prompt must hold token ids in [0, {vocab - 1}]")
    check_number(temperature, "temperature", low=0, low_open=True)
    return _generate(kind, params, prompt, key, float(temperature), check_int(n_steps, "n_steps", minimum=1),
                     check_option(activation, "activation", ACTIVATIONS))
