"""Recurrent networks from scratch: RNN, LSTM and GRU cells, unrolled over time with ``lax.scan``.

Shapes (batch first, like the rest of the course): a sequence batch ``xs`` is ``(B, T, D)``
(B sequences, T time steps, D input features), a hidden state ``h`` is ``(B, H)``, the outputs
``hs`` of a layer are ``(B, T, H)``. Parameters are dicts of arrays (see ``init_rnn``,
``init_lstm``, ``init_gru``); the input-to-hidden weights of all gates are stored side by side in
one matrix, so the input projection of a whole sequence is *one* matrix product done before the
time loop, and each time step only multiplies by the recurrent matrix.

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

Backpropagation through time (BPTT) is ordinary backpropagation applied to the network *unrolled*
over the time steps: the same weights appear at every step, so their gradient is the sum of the
per-step contributions. ``rnn_forward``/``rnn_backward`` write it out by hand for the vanilla RNN;
the LSTM and GRU layers use hand-written reverse-time scans too (checked against ``jax.grad``).

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

from course_lib import _parallel, activations, losses
from course_lib._validation import (as_float_array, as_int_array, check_finite, check_ndim,
                                    check_option, check_positive, is_binary_np, is_concrete)

__all__ = [
    "KINDS", "ACTIVATIONS",
    "init_rnn", "init_lstm", "init_gru", "init",
    "rnn_cell", "lstm_cell", "gru_cell", "lstm_cell_gates",
    "rnn", "lstm", "gru", "run", "bidirectional", "lstm_gate_activations",
    "rnn_step_forward", "rnn_step_backward", "rnn_forward", "rnn_backward",
    "sequence_mask", "sequence_cross_entropy", "sequence_mse",
    "global_norm", "clip_by_global_norm", "clip_by_value",
    "hidden_gradient_norms",
    "recall_task_batch", "make_grammar_corpus", "char_vocabulary", "encode_text", "decode_text",
    "make_series", "random_windows",
    "init_sequence_model", "sequence_model", "fit", "generate", "forecast",
]

KINDS = ("rnn", "lstm", "gru")
ACTIVATIONS = ("tanh", "relu", "sigmoid", "identity")
_GATES = {"rnn": 1, "lstm": 4, "gru": 3}
_KEYS = {"rnn": ("W_xh", "W_hh", "b"), "lstm": ("W_x", "W_h", "b"),
         "gru": ("W_x", "W_h", "b_x", "b_h")}


# =========================================================================== validation
def _size(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be a positive integer, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value}")
    return int(value)


def _kind(kind):
    if not isinstance(kind, str):
        raise TypeError(f"kind must be a string, one of {', '.join(map(repr, KINDS))}; "
                        f"got {type(kind).__name__}")
    return check_option(kind, "kind", KINDS)


def _activation(activation):
    if not isinstance(activation, str):
        raise TypeError(f"activation must be a string, got {type(activation).__name__}")
    return check_option(activation, "activation", ACTIVATIONS)


def _float(x, name):
    x = as_float_array(x, name)
    check_finite(x, name)
    return x


def _check_params(kind, params):
    """Validate a parameter dict of ``kind``; return ``(input_size, hidden_size)``."""
    if not isinstance(params, dict):
        raise TypeError(f"params must be a dict of arrays as returned by init_{kind}(), "
                        f"got {type(params).__name__}")
    keys = _KEYS[kind]
    missing = [k for k in keys if k not in params]
    if missing:
        raise ValueError(f"params for a {kind.upper()} must have the keys {', '.join(keys)}; "
                         f"missing {', '.join(missing)} (got {', '.join(map(str, params))})")
    for k in keys:
        _float(params[k], f"params[{k!r}]")
    n = _GATES[kind]
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
        if jnp.shape(params[k]) != (n * hidden,):
            raise ValueError(f"params[{k!r}] must have shape ({n * hidden},) to match the hidden "
                             f"size H={hidden}, got {tuple(jnp.shape(params[k]))}")
    return w_in.shape[0], hidden


def _check_xs(xs, input_size, name="xs"):
    xs = _float(xs, name)
    if jnp.ndim(xs) != 3:
        raise ValueError(f"{name} must have 3 dimension(s) (B sequences, T steps, D features), "
                         f"got shape {tuple(jnp.shape(xs))}")
    if xs.shape[2] != input_size:
        raise ValueError(f"{name} must have {input_size} features in its last axis to match the "
                         f"input weights, got shape {tuple(xs.shape)}")
    if xs.shape[1] == 0:
        raise ValueError(f"{name} must have at least one time step, got shape {tuple(xs.shape)}")
    return xs


def _check_state(h, name, batch, hidden, dtype):
    if h is None:
        return jnp.zeros((batch, hidden), dtype)
    h = _float(h, name)
    if jnp.shape(h) != (batch, hidden):
        raise ValueError(f"{name} must have shape (B, H) = ({batch}, {hidden}) to match the inputs "
                         f"and the hidden size of params, got {tuple(jnp.shape(h))}")
    return h.astype(dtype)


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


# =========================================================================== initialisation
def _orthogonal(rng, n):
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    return q * np.sign(np.diag(r))


def _draw(kind, input_size, hidden_size, seed, recurrent_scale):
    """Input weights U(-1/sqrt(H), 1/sqrt(H)) (PyTorch's default); recurrent ones the same, or
    ``recurrent_scale`` times a random orthogonal matrix per gate (all singular values equal
    ``recurrent_scale``)."""
    input_size = _size(input_size, "input_size")
    hidden_size = _size(hidden_size, "hidden_size")
    if recurrent_scale is not None:
        check_positive(recurrent_scale, "recurrent_scale", allow_zero=True)
    if not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an integer, got {type(seed).__name__}")
    rng = np.random.default_rng(seed)
    n, k = _GATES[kind], 1.0 / np.sqrt(hidden_size)
    w_in = rng.uniform(-k, k, (input_size, n * hidden_size))
    if recurrent_scale is None:
        w_rec = rng.uniform(-k, k, (hidden_size, n * hidden_size))
    else:
        w_rec = np.concatenate([recurrent_scale * _orthogonal(rng, hidden_size) for _ in range(n)], 1)
    return rng, k, w_in, w_rec


def _as(tree, dtype):
    return {name: jnp.asarray(np.asarray(v, dtype=dtype)) for name, v in tree.items()}


def init_rnn(input_size, hidden_size, *, seed=0, recurrent_scale=None, dtype="float32"):
    """Parameters of a vanilla RNN: ``W_xh (D, H)``, ``W_hh (H, H)``, ``b (H,)`` (NumPy-drawn).

    Taught in: notebooks/11_recurrent_networks.ipynb
    """
    rng, k, w_in, w_rec = _draw("rnn", input_size, hidden_size, seed, recurrent_scale)
    return _as({"W_xh": w_in, "W_hh": w_rec, "b": np.zeros(w_rec.shape[1])}, dtype)


def init_lstm(input_size, hidden_size, *, seed=0, recurrent_scale=None, forget_bias=1.0,
              dtype="float32"):
    """LSTM parameters ``W_x (D, 4H)``, ``W_h (H, 4H)``, ``b (4H,)``, gate order (i, f, g, o).

    The forget-gate bias starts at ``forget_bias`` (1 by default, Jozefowicz et al. 2015): with
    ``f = sigma(1) = 0.73`` the cell state is mostly kept at the start of training.

    Taught in: notebooks/11_recurrent_networks.ipynb
    """
    rng, k, w_in, w_rec = _draw("lstm", input_size, hidden_size, seed, recurrent_scale)
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
    rng, k, w_in, w_rec = _draw("gru", input_size, hidden_size, seed, recurrent_scale)
    hidden = w_rec.shape[0]
    b_x = np.zeros(3 * hidden)
    b_x[hidden:2 * hidden] = float(update_bias)
    return _as({"W_x": w_in, "W_h": w_rec, "b_x": b_x, "b_h": np.zeros(3 * hidden)}, dtype)


def init(kind, input_size, hidden_size, **kwargs):
    """``init_rnn``, ``init_lstm`` or ``init_gru`` chosen by ``kind``."""
    return {"rnn": init_rnn, "lstm": init_lstm, "gru": init_gru}[_kind(kind)](
        input_size, hidden_size, **kwargs)


# =========================================================================== one time step
def _rnn_step(params, h, x, activation="tanh"):
    phi, _ = activations.get(activation)
    return phi(x @ params["W_xh"] + h @ params["W_hh"] + params["b"])


def _lstm_gates_from(z, c):
    """From the stacked pre-activations z (B, 4H) and the old cell c: (i, f, g, o, c', h')."""
    i, f, g, o = jnp.split(z, 4, axis=-1)
    i, f, g, o = activations.sigmoid(i), activations.sigmoid(f), activations.tanh(g), activations.sigmoid(o)
    c_new = f * c + i * g
    return i, f, g, o, c_new, o * activations.tanh(c_new)


def _lstm_step(params, state, x):
    h, c = state
    *_, c_new, h_new = _lstm_gates_from(x @ params["W_x"] + params["b"] + h @ params["W_h"], c)
    return h_new, c_new


def _gru_parts(xw, hw):
    """From x W_x + b_x and h W_h + b_h (both (B, 3H)): (r, z, n, h W_hn + b_hn)."""
    xr, xz, xn = jnp.split(xw, 3, axis=-1)
    hr, hz, hn = jnp.split(hw, 3, axis=-1)
    r = activations.sigmoid(xr + hr)
    z = activations.sigmoid(xz + hz)
    n = activations.tanh(xn + r * hn)
    return r, z, n, hn


def _gru_step(params, h, x):
    r, z, n, _ = _gru_parts(x @ params["W_x"] + params["b_x"], h @ params["W_h"] + params["b_h"])
    return (1.0 - z) * n + z * h


_rnn_step_jit = jax.jit(_rnn_step, static_argnames="activation")
_lstm_step_jit = jax.jit(_lstm_step)
_gru_step_jit = jax.jit(_gru_step)


def _check_cell(kind, params, h, x):
    d, hidden = _check_params(kind, params)
    x = _float(x, "x")
    if jnp.ndim(x) != 2 or x.shape[1] != d:
        raise ValueError(f"x must have shape (B, D) with D={d} (the input size of params), "
                         f"got {tuple(jnp.shape(x))}")
    return x, hidden


def rnn_cell(params, h, x, activation="tanh"):
    """One vanilla-RNN step: ``h' = phi(x W_xh + h W_hh + b)``. ``h (B, H)``, ``x (B, D)``.

    Taught in: notebooks/11_recurrent_networks.ipynb
    """
    x, hidden = _check_cell("rnn", params, h, x)
    h = _check_state(h, "h", x.shape[0], hidden, x.dtype)
    return _rnn_step_jit(params, h, x, activation=_activation(activation))


def lstm_cell(params, state, x):
    """One LSTM step (equations in the module docstring). ``state = (h, c)``, both ``(B, H)``;
    returns ``(h', c')``.

    Taught in: notebooks/11_recurrent_networks.ipynb
    """
    x, hidden = _check_cell("lstm", params, None, x)
    if not isinstance(state, (tuple, list)) or len(state) != 2:
        raise TypeError("state must be a pair (h, c) of arrays (B, H)")
    h = _check_state(state[0], "state[0] (h)", x.shape[0], hidden, x.dtype)
    c = _check_state(state[1], "state[1] (c)", x.shape[0], hidden, x.dtype)
    return _lstm_step_jit(params, (h, c), x)


def lstm_cell_gates(params, state, x):
    """Like ``lstm_cell`` but returns every intermediate: a dict with i, f, g, o, c, h (B, H)."""
    x, hidden = _check_cell("lstm", params, None, x)
    if not isinstance(state, (tuple, list)) or len(state) != 2:
        raise TypeError("state must be a pair (h, c) of arrays (B, H)")
    h = _check_state(state[0], "state[0] (h)", x.shape[0], hidden, x.dtype)
    c = _check_state(state[1], "state[1] (c)", x.shape[0], hidden, x.dtype)
    return _lstm_gates_jit(params, h, c, x)


@jax.jit
def _lstm_gates_jit(params, h, c, x):
    z = x @ params["W_x"] + params["b"] + h @ params["W_h"]
    return dict(zip("ifgoch", _lstm_gates_from(z, c)))


def gru_cell(params, h, x):
    """One GRU step (equations in the module docstring). ``h (B, H)``, ``x (B, D)``.

    Taught in: notebooks/11_recurrent_networks.ipynb
    """
    x, hidden = _check_cell("gru", params, h, x)
    h = _check_state(h, "h", x.shape[0], hidden, x.dtype)
    return _gru_step_jit(params, h, x)


# =========================================================================== hand-written BPTT (RNN)
def _keep(m, new, old):
    """Masked state update: ``new`` where the step is valid, ``old`` (carried over) where padded."""
    return new if m is None else m[:, None] * new + (1.0 - m[:, None]) * old


def _sum_outer(a, b):
    """sum over every leading axis of a[..., :, None] * b[..., None, :]: the weight gradient
    sum_t x_t^T d_t of a layer applied at every step, as ONE product of the flattened (N, K) and
    (N, G) arrays contracting their first axes. XLA:CPU runs that as a plain transposed-operand
    product; ``einsum("btk,btg->kg")`` made it first copy the smaller operand into a transposed
    (K, N) buffer. Forward+backward at B=32, T=50, D=16, H=64, A/B in one process: RNN 16 %,
    GRU 4 %, LSTM 1-3 % faster."""
    return lax.dot_general(a.reshape(-1, a.shape[-1]), b.reshape(-1, b.shape[-1]),
                           (((0,), (0,)), ((), ())))


def _rnn_forward_core(xs, h0, W_xh, W_hh, b, mask, activation):
    """Time-major (T, B, D) forward. Returns outputs (T, B, H), h_T and the BPTT cache."""
    phi, _ = activations.get(activation)
    ax = xs @ W_xh + b                                   # all input projections in one product

    def step(h, inp):
        a_x, m = inp
        a = a_x + h @ W_hh                               # pre-activation of this step
        h_new = _keep(m, phi(a), h)
        return h_new, (h_new, a)

    h_last, (hs, pre) = lax.scan(step, h0, (ax, mask))
    out = hs if mask is None else hs * mask[..., None]
    return out, h_last, (xs, h0, W_xh, W_hh, hs, pre, mask)


def _rnn_backward_core(dout, dh_last, cache, activation):
    """BPTT: walk the time steps backwards, carrying dL/dh_t. Returns (dxs, dh0, dW_xh, dW_hh, db).

    At step t the hidden state h_t receives gradient from the loss at step t (``dout[t]``) and
    from step t+1 (the carry). Through h_t = phi(a_t) it becomes da_t = dh_t * phi'(a_t); then
    dh_{t-1} = da_t W_hh^T. The weights are shared by all steps, so their gradients are sums over
    t, computed after the loop as single products: dW_hh = sum_t h_{t-1}^T da_t, etc.
    """
    xs, h0, W_xh, W_hh, hs, pre, mask = cache
    _, phi_grad = activations.get(activation)
    slopes = phi_grad(pre)                               # phi'(a_t) for all steps, before the loop
    W_hhT = W_hh.T

    def step(dh_next, inp):
        d_out, slope, m = inp
        dh = dh_next + (d_out if m is None else m[:, None] * d_out)
        da = slope * (dh if m is None else m[:, None] * dh)
        dh_prev = da @ W_hhT + (0.0 if m is None else (1.0 - m[:, None]) * dh)
        return dh_prev, da

    dh0, das = lax.scan(step, dh_last, (dout, slopes, mask), reverse=True)
    h_prev = jnp.concatenate([h0[None], hs[:-1]], axis=0)
    dW_xh = _sum_outer(xs, das)
    dW_hh = _sum_outer(h_prev, das)
    return das @ W_xh.T, dh0, dW_xh, dW_hh, das.sum(axis=(0, 1))


@partial(jax.custom_vjp, nondiff_argnums=(6,))
def _rnn_seq(xs, h0, W_xh, W_hh, b, mask, activation):
    out, h_last, _ = _rnn_forward_core(xs, h0, W_xh, W_hh, b, mask, activation)
    return out, h_last


def _rnn_seq_fwd(xs, h0, W_xh, W_hh, b, mask, activation):
    out, h_last, cache = _rnn_forward_core(xs, h0, W_xh, W_hh, b, mask, activation)
    return (out, h_last), cache


def _rnn_seq_bwd(activation, cache, cotangents):
    dout, dh_last = cotangents
    grads = _rnn_backward_core(dout, dh_last, cache, activation)
    mask = cache[-1]
    return (*grads, None if mask is None else jnp.zeros_like(mask))


_rnn_seq.defvjp(_rnn_seq_fwd, _rnn_seq_bwd)


def _check_weights(x, h, W_xh, W_hh, b):
    W_xh, W_hh, b = _float(W_xh, "W_xh"), _float(W_hh, "W_hh"), _float(b, "b")
    check_ndim(W_xh, "W_xh", 2)
    hidden = W_hh.shape[0] if jnp.ndim(W_hh) == 2 else None
    if hidden is None or W_hh.shape != (hidden, hidden):
        raise ValueError(f"W_hh must be square (H, H), got shape {tuple(jnp.shape(W_hh))}")
    if W_xh.shape[1] != hidden:
        raise ValueError(f"W_xh must have shape (D, {hidden}) to match W_hh (H={hidden}), "
                         f"got {tuple(W_xh.shape)}")
    if b.shape != (hidden,):
        raise ValueError(f"b must have shape ({hidden},) to match W_hh, got {tuple(b.shape)}")
    if x.shape[-1] != W_xh.shape[0]:
        raise ValueError(f"x must have {W_xh.shape[0]} features (rows of W_xh) in its last axis, "
                         f"got shape {tuple(x.shape)}")
    h = _check_state(h, "h0" if x.ndim == 3 else "h_prev", x.shape[0], hidden, x.dtype)
    return h, W_xh, W_hh, b


@partial(jax.jit, static_argnames="activation")
def _rnn_step_forward_jit(x, h_prev, W_xh, W_hh, b, activation):
    phi, _ = activations.get(activation)
    a = x @ W_xh + h_prev @ W_hh + b
    return phi(a), (x, h_prev, W_xh, W_hh, a)


def rnn_step_forward(x, h_prev, W_xh, W_hh, b, activation="tanh"):
    """One RNN step with a cache for the backward pass: ``h = phi(x W_xh + h_prev W_hh + b)``.

    ``x (B, D)``, ``h_prev (B, H)``. Returns ``(h, cache)``; CS231n's layer contract.

    Taught in: notebooks/11_recurrent_networks.ipynb
    """
    x = _float(x, "x")
    check_ndim(x, "x", 2)
    h_prev, W_xh, W_hh, b = _check_weights(x, h_prev, W_xh, W_hh, b)
    h, cache = _rnn_step_forward_jit(x, h_prev, W_xh, W_hh, b, _activation(activation))
    return h, (*cache, activation)


@partial(jax.jit, static_argnames="activation")
def _rnn_step_backward_jit(dh, x, h_prev, W_xh, W_hh, a, activation):
    _, phi_grad = activations.get(activation)
    da = dh * phi_grad(a)                        # through the nonlinearity
    return da @ W_xh.T, da @ W_hh.T, x.T @ da, h_prev.T @ da, da.sum(axis=0)


def rnn_step_backward(dh, cache):
    """Backward of ``rnn_step_forward``: ``(dx, dh_prev, dW_xh, dW_hh, db)``.

    With ``a = x W_xh + h_prev W_hh + b``: ``da = dh * phi'(a)``, ``dx = da W_xh^T``,
    ``dh_prev = da W_hh^T``, ``dW_xh = x^T da``, ``dW_hh = h_prev^T da``, ``db = sum_batch da``.

    Taught in: notebooks/11_recurrent_networks.ipynb
    """
    if not isinstance(cache, tuple) or len(cache) != 6:
        raise TypeError("cache must be the cache returned by rnn_step_forward")
    x, h_prev, W_xh, W_hh, a, activation = cache
    dh = _float(dh, "dh")
    if dh.shape != h_prev.shape:
        raise ValueError(f"dh must have the shape of h, {tuple(h_prev.shape)}, got {tuple(dh.shape)}")
    return _rnn_step_backward_jit(dh, x, h_prev, W_xh, W_hh, a, activation)


@partial(jax.jit, static_argnames="activation")
def _rnn_forward_jit(xs, h0, W_xh, W_hh, b, activation):
    out, _, cache = _rnn_forward_core(jnp.swapaxes(xs, 0, 1), h0, W_xh, W_hh, b, None, activation)
    return jnp.swapaxes(out, 0, 1), cache


def rnn_forward(xs, h0, W_xh, W_hh, b, activation="tanh"):
    """Run the RNN over a whole sequence and keep what BPTT needs.

    ``xs (B, T, D)``, ``h0 (B, H)`` or None (zeros). Returns ``(hs (B, T, H), cache)``.

    Taught in: notebooks/11_recurrent_networks.ipynb
    """
    xs = _float(xs, "xs")
    if jnp.ndim(xs) != 3:
        raise ValueError(f"xs must have 3 dimension(s) (B, T, D), got shape {tuple(jnp.shape(xs))}")
    h0, W_xh, W_hh, b = _check_weights(xs, h0, W_xh, W_hh, b)
    hs, cache = _rnn_forward_jit(xs, h0, W_xh, W_hh, b, _activation(activation))
    return hs, (cache, activation)


@partial(jax.jit, static_argnames="activation")
def _rnn_backward_jit(dhs, cache, activation):
    dxs, dh0, dW_xh, dW_hh, db = _rnn_backward_core(
        jnp.swapaxes(dhs, 0, 1), jnp.zeros_like(cache[1]), cache, activation)
    return jnp.swapaxes(dxs, 0, 1), dh0, dW_xh, dW_hh, db


def rnn_backward(dhs, cache):
    """Backpropagation through time for ``rnn_forward``.

    ``dhs (B, T, H)`` is dL/dh_t from the loss at every step (zeros where the loss ignores a
    step). Returns ``(dxs, dh0, dW_xh, dW_hh, db)``.

    Taught in: notebooks/11_recurrent_networks.ipynb
    """
    if not isinstance(cache, tuple) or len(cache) != 2:
        raise TypeError("cache must be the cache returned by rnn_forward")
    core, activation = cache
    dhs = _float(dhs, "dhs")
    want = (core[1].shape[0], core[0].shape[0], core[1].shape[1])
    if dhs.shape != want:
        raise ValueError(f"dhs must have the shape of hs, (B, T, H) = {want}, got {tuple(dhs.shape)}")
    return _rnn_backward_jit(dhs, core, activation)


# =========================================================================== LSTM layer
def _gate_scale(blocks, hidden, dtype):
    """Per-column factors s for gate blocks ``blocks`` ("s" sigmoid, "t" tanh; "ssts" for the
    LSTM): 1/2 on sigmoid columns, 1 on tanh ones. Then ``s * tanh(s * z) + (1 - s)`` is
    ``sigma(z) = (1 + tanh(z / 2)) / 2`` (the same function) on the sigmoid columns and ``tanh(z)``
    on the others: all gates of a step in *one* elementwise pass."""
    return jnp.asarray(np.repeat([0.5 if k == "s" else 1.0 for k in blocks], hidden), dtype)


def _lstm_forward_core(xs, h0, c0, W_x, W_h, b, mask, cache=True):
    """Batch-major (B, T, D) LSTM. Fast form of the gate equations: with the factors s of
    ``_gate_scale`` each step is one product ``h @ W_h``, one tanh over all 4H columns, and the
    cell update.

    The sequences stay batch-major: step t reads column t of the input projections and writes
    column t of (B, T, .) buffers, so no (T, B) <-> (B, T) transposed copy of the inputs, outputs
    or gradients is ever made. For the backward pass (``cache=True``) the state buffer holds the
    state h_{t-1} each step *received* (exactly what dW_h = sum_t h_{t-1}^T dz_t needs; the
    outputs are the same buffer shifted by one step), a second buffer the cell states c_t, and the
    gates a_t overwrite the input projections zx_t in place (step t reads column t before it
    writes it): no (B, T, 4H) buffer is allocated and zero-filled for them. The six local
    derivatives the reverse scan multiplies by are formed from those after the loop, for all steps
    at once, in one (B, T, 6H) array: the loop itself stays short (the serial part is what costs on
    a CPU: the same derivatives formed inside the loop took 4-8 % longer for a forward + backward at
    B=32, T=50, H=64, in back-to-back runs). Reusing the buffers made that forward + backward
    1.7-2.8 % faster and its compile 7-15 % faster than zero-filled stacks, with bit-identical
    gradients (A/B in one process)."""
    hidden = W_h.shape[0]
    s = _gate_scale("ssts", hidden, xs.dtype)
    zx = xs @ W_x                  # (B, T, 4H) in one product; b is added in the step, where
    #                                the add is fused for free (not a pass over (B, T, 4H))

    def step(carry, t):
        h, c, buf, cbuf, P = carry
        z_x = lax.dynamic_index_in_dim(P, t, axis=1, keepdims=False)
        m = None if mask is None else lax.dynamic_index_in_dim(mask, t, axis=1, keepdims=False)
        a = s * jnp.tanh(s * (z_x + h @ W_h + b)) + (1.0 - s)   # (i, f, g, o) side by side
        i, f, g, o = (a[:, k * hidden:(k + 1) * hidden] for k in range(4))
        c_new = _keep(m, f * c + i * g, c)
        h_new = _keep(m, o * jnp.tanh(c_new), h)
        buf = lax.dynamic_update_index_in_dim(buf, h if cache else h_new, t, axis=1)
        if cache:
            P = lax.dynamic_update_index_in_dim(P, a, t, axis=1)       # the gates overwrite zx_t
            cbuf = lax.dynamic_update_index_in_dim(cbuf, c_new, t, axis=1)
        return (h_new, c_new, buf, cbuf, P), None

    buf0 = jnp.zeros(xs.shape[:2] + (hidden,), xs.dtype)
    cbuf0 = jnp.zeros(xs.shape[:2] + (hidden,), xs.dtype) if cache else jnp.zeros((), xs.dtype)
    (h_last, c_last, buf, cs, A), _ = lax.scan(step, (h0, c0, buf0, cbuf0, zx),
                                               jnp.arange(xs.shape[1]))
    hs = jnp.concatenate([buf[:, 1:], h_last[:, None]], axis=1) if cache else buf
    out = hs if mask is None else hs * mask[..., None]
    if not cache:
        return out, h_last, c_last
    c_prev = jnp.concatenate([c0[:, None], cs[:, :-1]], axis=1)
    tc = jnp.tanh(cs)
    i, f, g, o = (A[..., k * hidden:(k + 1) * hidden] for k in range(4))
    # dz = [dc, dc, dc, dh] * k[:4H]; dc gets dh * k[4H:5H]; dc_prev = dc * k[5H:] (= f).
    # (At a padded step c_t is the carried state, not the one the step would have made: its
    # derivatives meet a zero gradient either way.)
    # stacked on a new axis, not concatenated: XLA:CPU then writes the six blocks in one pass
    # (bit-identical, 0.17 vs 0.23 ms for these shapes)
    coef = jnp.stack([g * i * (1.0 - i), c_prev * f * (1.0 - f), i * (1.0 - g * g),
                      tc * o * (1.0 - o), o * (1.0 - tc * tc), f], axis=2)
    coef = coef.reshape(coef.shape[:2] + (6 * hidden,))                        # (B, T, 6H)
    return out, h_last, c_last, (xs, W_x, W_h, buf, coef, mask, A)


def _lstm_backward_core(dout, dh_last, dc_last, cache):
    """Reverse-time scan of the LSTM. Everything that does not depend on the gradient flowing
    back (the gate derivatives) was stored by the forward scan; a step then only forms dz_t
    (B, 4H), writes it to column t of a (B, T, 4H) buffer, and does one product dz_t W_h^T. That
    buffer is the forward's gate buffer, no longer needed (every column is overwritten). The
    weight gradients are summed over all steps after the loop, as single products. (At a padded
    step the stored derivatives are those of the step not taken; they meet a zero gradient.)"""
    xs, W_x, W_h, h_prev, coef, mask, A = cache
    hidden = W_h.shape[0]
    if mask is not None:
        dout = dout * mask[..., None]
    W_hT = W_h.T

    def step(carry, t):
        dh_next, dc_next, dzs = carry
        d_out = lax.dynamic_index_in_dim(dout, t, axis=1, keepdims=False)
        k = lax.dynamic_index_in_dim(coef, t, axis=1, keepdims=False)
        m = None if mask is None else lax.dynamic_index_in_dim(mask, t, axis=1, keepdims=False)
        dh = dh_next + d_out
        dh_in = dh if m is None else m[:, None] * dh          # the part that reaches this step
        dc_in = dc_next if m is None else m[:, None] * dc_next
        dc = dc_in + dh_in * k[:, 4 * hidden:5 * hidden]      # h = o tanh(c)
        dz = jnp.concatenate([dc, dc, dc, dh_in], axis=-1) * k[:, :4 * hidden]
        dh_prev = dz @ W_hT
        dc_prev = dc * k[:, 5 * hidden:]                      # c = f c_prev + i g
        if m is not None:
            dh_prev = dh_prev + (1.0 - m[:, None]) * dh
            dc_prev = dc_prev + (1.0 - m[:, None]) * dc_next
        return (dh_prev, dc_prev, lax.dynamic_update_index_in_dim(dzs, dz, t, axis=1)), None

    (dh0, dc0, dzs), _ = lax.scan(step, (dh_last, dc_last, A), jnp.arange(xs.shape[1]),
                                  reverse=True)
    dW_x = _sum_outer(xs, dzs)
    dW_h = _sum_outer(h_prev, dzs)
    return dzs @ W_x.T, dh0, dc0, dW_x, dW_h, dzs.sum(axis=(0, 1))


@jax.custom_vjp
def _lstm_seq(xs, h0, c0, W_x, W_h, b, mask):
    return _lstm_forward_core(xs, h0, c0, W_x, W_h, b, mask, cache=False)


def _lstm_seq_fwd(xs, h0, c0, W_x, W_h, b, mask):
    out, h_last, c_last, cache = _lstm_forward_core(xs, h0, c0, W_x, W_h, b, mask)
    return (out, h_last, c_last), cache


def _lstm_seq_bwd(cache, cotangents):
    grads = _lstm_backward_core(*cotangents, cache)
    mask = cache[-2]
    return (*grads, None if mask is None else jnp.zeros_like(mask))


_lstm_seq.defvjp(_lstm_seq_fwd, _lstm_seq_bwd)


# =========================================================================== GRU layer
def _gru_forward_core(xs, h0, W_x, W_h, b_x, b_h, mask, cache=True):
    """Batch-major (B, T, D) GRU; r and z in one tanh pass, sigma(v) = (1 + tanh(v / 2)) / 2.

    Like the LSTM core, step t reads column t of the input projections and writes column t of a
    (B, T, H) state buffer (no transposed copies). For the backward pass (``cache=True``) the
    buffer holds the state h_{t-1} each step received, and each step stores in one (B, 5H) row
    the factors the reverse scan needs (see ``_gru_backward_core``)."""
    hidden = W_h.shape[0]
    xw = xs @ W_x + b_x                                  # (B, T, 3H) in one product

    def step(carry, t):
        h, buf = carry
        x_w = lax.dynamic_index_in_dim(xw, t, axis=1, keepdims=False)
        m = None if mask is None else lax.dynamic_index_in_dim(mask, t, axis=1, keepdims=False)
        hw = h @ W_h + b_h
        if cache:
            rz = 0.5 * jnp.tanh(0.5 * (x_w[:, :2 * hidden] + hw[:, :2 * hidden])) + 0.5
        else:
            # Without the cache XLA:CPU fused the whole step into scalar code (2.60 ms forward at
            # B=32, T=50, H=64); one tanh over whole (B, 3H) rows, although their last H columns
            # are not needed, gives one vectorized pass (1.12 ms). With the cache it cost ~5 % more.
            rz = 0.5 * jnp.tanh(jnp.concatenate([0.5 * (x_w[:, :2 * hidden] + hw[:, :2 * hidden]),
                                                 x_w[:, 2 * hidden:]], axis=-1)) + 0.5
        r, z, hn = rz[:, :hidden], rz[:, hidden:2 * hidden], hw[:, 2 * hidden:]
        n = jnp.tanh(x_w[:, 2 * hidden:] + r * hn)
        h_new = _keep(m, n + z * (h - n), h)                 # (1 - z) n + z h
        buf = lax.dynamic_update_index_in_dim(buf, h if cache else h_new, t, axis=1)
        if not cache:
            return (h_new, buf), None
        a = (1.0 - z) * (1.0 - n * n)
        # d(h W_h + b_h) = dh * k[:3H], dh_prev gets dh * k[3H:4H] (= z), d(x W_x + b_x) = dh * [k[:2H], k[4H:]]
        k = jnp.concatenate([a * hn * r * (1.0 - r), (h - n) * z * (1.0 - z), a * r, z, a], axis=-1)
        return (h_new, buf), k

    buf0 = jnp.zeros(xs.shape[:2] + (hidden,), xs.dtype)
    (h_last, buf), coef = lax.scan(step, (h0, buf0), jnp.arange(xs.shape[1]))
    hs = jnp.concatenate([buf[:, 1:], h_last[:, None]], axis=1) if cache else buf
    out = hs if mask is None else hs * mask[..., None]
    if not cache:
        return out, h_last
    return out, h_last, (xs, W_x, W_h, buf, coef, mask)


def _gru_backward_core(dout, dh_last, cache):
    """Reverse-time scan of the GRU. With A = (1 - z)(1 - n^2), every pre-activation gradient is
    dh times a factor known from the forward pass (dn = dh A, dz = dh (h_prev - n) z (1 - z),
    dr = dh A hn r (1 - r)): the forward scan stored the factors, and a step is one multiply and
    one product with W_h^T. It writes d(h W_h + b_h) to column t of a (B, T, 3H) buffer."""
    xs, W_x, W_h, h_prev, coef, mask = cache
    hidden = W_h.shape[0]
    if mask is not None:
        dout = dout * mask[..., None]
    W_hT = W_h.T

    def step(carry, inp):
        dh_next, dhws = carry
        t, k = inp
        d_out = lax.dynamic_index_in_dim(dout, t, axis=1, keepdims=False)
        m = None if mask is None else lax.dynamic_index_in_dim(mask, t, axis=1, keepdims=False)
        dh = dh_next + d_out
        dh_in = dh if m is None else m[:, None] * dh          # the part that reaches this step
        dhw = jnp.concatenate([dh_in, dh_in, dh_in], axis=-1) * k[:, :3 * hidden]
        dh_prev = dh_in * k[:, 3 * hidden:4 * hidden] + dhw @ W_hT
        if m is not None:
            dh_prev = dh_prev + (1.0 - m[:, None]) * dh
        return (dh_prev, lax.dynamic_update_index_in_dim(dhws, dhw, t, axis=1)), dh_in * k[:, 4 * hidden:]

    dhw0 = jnp.zeros(xs.shape[:2] + (3 * hidden,), xs.dtype)
    (dh0, dhws), dns = lax.scan(step, (dh_last, dhw0), (jnp.arange(xs.shape[1]), coef), reverse=True)
    dxws = jnp.concatenate([dhws[..., :2 * hidden], jnp.swapaxes(dns, 0, 1)], axis=-1)
    dW_x = _sum_outer(xs, dxws)
    dW_h = _sum_outer(h_prev, dhws)
    return dxws @ W_x.T, dh0, dW_x, dW_h, dxws.sum(axis=(0, 1)), dhws.sum(axis=(0, 1))


@jax.custom_vjp
def _gru_seq(xs, h0, W_x, W_h, b_x, b_h, mask):
    return _gru_forward_core(xs, h0, W_x, W_h, b_x, b_h, mask, cache=False)


def _gru_seq_fwd(xs, h0, W_x, W_h, b_x, b_h, mask):
    out, h_last, cache = _gru_forward_core(xs, h0, W_x, W_h, b_x, b_h, mask)
    return (out, h_last), cache


def _gru_seq_bwd(cache, cotangents):
    grads = _gru_backward_core(*cotangents, cache)
    mask = cache[-1]
    return (*grads, None if mask is None else jnp.zeros_like(mask))


_gru_seq.defvjp(_gru_seq_fwd, _gru_seq_bwd)


# =========================================================================== public layers
def _time_major(xs, mask, reverse):
    xs = jnp.swapaxes(xs, 0, 1)
    mask = None if mask is None else mask.T
    if reverse:
        xs = xs[::-1]
        mask = None if mask is None else mask[::-1]
    return xs, mask


def _batch_major(out, reverse):
    return jnp.swapaxes(out[::-1] if reverse else out, 0, 1)


#: Products per step and hidden unit: the LSTM's 4 gate blocks, the GRU's 3, the RNN's 1.
_GATES = {"rnn": 1, "lstm": 4, "gru": 3}
#: Forward multiply-adds from which a batch is split over the CPU devices (``_parallel``). Measured
#: forward+backward on 2 cores (benchmarks/bench_recurrent.py --sweep): a split pays from about
#: 20 M; below that the extra ~0.4 ms per call of a two-device computation costs more than it saves.
_PARALLEL_WORK = 20e6


@partial(jax.jit, static_argnames=("kind", "reverse", "activation"))
def _run(kind, params, xs, state0, mask, reverse, activation):
    (b, t, d), hidden = xs.shape, (state0[0] if kind == "lstm" else state0).shape[1]
    k = _parallel.shards(b, t * b * _GATES[kind] * hidden * (hidden + d), _PARALLEL_WORK)
    return _parallel.over_batch(partial(_run_local, kind, reverse=reverse, activation=activation),
                                k, params, xs, state0, mask)


def _run_local(kind, params, xs, state0, mask, *, reverse, activation):
    if kind != "rnn":                                    # batch-major cores
        if reverse:
            xs, mask = xs[:, ::-1], (None if mask is None else mask[:, ::-1])
        if kind == "lstm":
            out, h, c = _lstm_seq(xs, *state0, params["W_x"], params["W_h"], params["b"], mask)
            final = (h, c)
        else:
            out, final = _gru_seq(xs, state0, params["W_x"], params["W_h"], params["b_x"],
                                  params["b_h"], mask)
        return (out[:, ::-1] if reverse else out), final
    xs, mask = _time_major(xs, mask, reverse)
    out, h = _rnn_seq(xs, state0, params["W_xh"], params["W_hh"], params["b"], mask, activation)
    return _batch_major(out, reverse), h


def _validate_run(kind, params, xs, state0, mask, activation):
    d, hidden = _check_params(kind, params)
    xs = _check_xs(xs, d)
    b, t = xs.shape[:2]
    if kind == "lstm":
        if state0 is None:
            state0 = (None, None)
        if not isinstance(state0, (tuple, list)) or len(state0) != 2:
            raise TypeError("state0 must be a pair (h0, c0) of arrays (B, H) for an LSTM, or None")
        state0 = (_check_state(state0[0], "state0[0] (h0)", b, hidden, xs.dtype),
                  _check_state(state0[1], "state0[1] (c0)", b, hidden, xs.dtype))
    else:
        state0 = _check_state(state0, "h0", b, hidden, xs.dtype)
    return xs, state0, _check_mask(mask, b, t, xs.dtype), _activation(activation)


def run(kind, params, xs, state0=None, *, mask=None, reverse=False, activation="tanh"):
    """Run a recurrent layer of ``kind`` ("rnn", "lstm", "gru") over ``xs (B, T, D)``.

    Returns ``(hs (B, T, H), final_state)``; the final state is ``h_T`` (RNN, GRU) or
    ``(h_T, c_T)`` (LSTM). ``state0`` defaults to zeros. ``activation`` only applies to the
    vanilla RNN. The time loop is a ``lax.scan``; its gradient is a hand-written reverse scan.

    Taught in: notebooks/11_recurrent_networks.ipynb
    """
    kind = _kind(kind)
    if not isinstance(reverse, bool):
        raise TypeError(f"reverse must be True or False, got {type(reverse).__name__}")
    xs, state0, mask, activation = _validate_run(kind, params, xs, state0, mask, activation)
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
    kind = _kind(kind)
    _, h_f = _check_params(kind, params_fwd)
    _, h_b = _check_params(kind, params_bwd)
    hs_f, fin_f = run(kind, params_fwd, xs, mask=mask, activation=activation)
    hs_b, fin_b = run(kind, params_bwd, xs, mask=mask, reverse=True, activation=activation)
    return jnp.concatenate([hs_f, hs_b], axis=-1), (fin_f, fin_b)


@jax.jit
def _lstm_gates_seq(params, xs):
    zx = jnp.swapaxes(xs, 0, 1) @ params["W_x"] + params["b"]
    hidden = params["W_h"].shape[0]

    def step(carry, z_x):
        h, c = carry
        i, f, g, o, c_new, h_new = _lstm_gates_from(z_x + h @ params["W_h"], c)
        return (h_new, c_new), dict(i=i, f=f, g=g, o=o, c=c_new, h=h_new)

    zeros = jnp.zeros((xs.shape[0], hidden), xs.dtype)
    _, seq = lax.scan(step, (zeros, zeros), zx)
    return {k: jnp.swapaxes(v, 0, 1) for k, v in seq.items()}


def lstm_gate_activations(params, xs):
    """Every gate of an LSTM over ``xs (B, T, D)`` from a zero state: dict i, f, g, o, c, h of
    arrays ``(B, T, H)``. What the gate widget shows.

    Taught in: notebooks/11_recurrent_networks.ipynb
    """
    d, _ = _check_params("lstm", params)
    return _lstm_gates_seq(params, _check_xs(xs, d))


# =========================================================================== losses with masks
def sequence_mask(lengths, max_len, *, padding="right", dtype="float32"):
    """Mask (B, T) with 1 at the valid steps of sequences of the given ``lengths``.

    ``padding="right"``: sequence b occupies steps 0..lengths[b]-1; ``"left"``: the last lengths[b]
    steps. Taught in: notebooks/11_recurrent_networks.ipynb
    """
    max_len = _size(max_len, "max_len")
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
    check_positive(max_norm, "max_norm")
    return _clip_global(grads, max_norm)


def clip_by_value(grads, max_abs):
    """Clip every gradient entry to ``[-max_abs, max_abs]`` (changes the direction, unlike
    ``clip_by_global_norm``). Equals ``optax.clip``."""
    _tree(grads)
    check_positive(max_abs, "max_abs")
    return jax.tree_util.tree_map(lambda g: jnp.clip(g, -max_abs, max_abs), grads)


# =========================================================================== gradient through time
def _perturbed_run(kind, params, xs, eps, activation):
    """Plain autodiff scan (time-major) where eps_t is added to h_t: dL/deps_t = dL/dh_t."""
    b, hidden = xs.shape[1], eps.shape[-1]
    h0 = jnp.zeros((b, hidden), xs.dtype)

    def step(carry, inp):
        x, e = inp
        if kind == "lstm":
            h, c = _lstm_step(params, carry, x)
            return (h + e, c), h + e
        h = (_rnn_step(params, carry, x, activation) if kind == "rnn" else _gru_step(params, carry, x)) + e
        return h, h

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
    kind = _kind(kind)
    d, _ = _check_params(kind, params)
    xs = _check_xs(xs, d)
    t = xs.shape[1]
    step = t - 1 if loss_step is None else loss_step
    if is_concrete(step) and not (0 <= int(step) < t):
        raise ValueError(f"loss_step must be a step index in [0, {t - 1}], got {loss_step}")
    return _hidden_gradient_norms(kind, params, xs, step, _activation(activation))


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
    batch_size, n_symbols = _size(batch_size, "batch_size"), _size(n_symbols, "n_symbols")
    if isinstance(n_noise, bool) or not isinstance(n_noise, (int, np.integer)) or n_noise < 0:
        raise ValueError(f"n_noise must be an integer >= 0, got {n_noise!r}")
    if max_len is None:
        max_len = _size(length, "length")
    max_len = _size(max_len, "max_len")
    if is_concrete(length) and not 1 <= int(length) <= max_len:
        raise ValueError(f"length must lie in [1, max_len={max_len}], got {length}")
    return _recall_batch(key, length, batch_size, max_len, n_symbols, int(n_noise))


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
    n_sentences = _size(n_sentences, "n_sentences")
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
    n_steps = _size(n_steps, "n_steps")
    check_positive(noise, "noise", allow_zero=True)
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
    batch_size, window = _size(batch_size, "batch_size"), _size(window, "window")
    check_ndim(seq, "seq", 1)
    if window > jnp.shape(seq)[0]:
        raise ValueError(f"window must be at most len(seq) = {jnp.shape(seq)[0]}, got {window}")
    return _random_windows(key, seq, batch_size, window)


# =========================================================================== models, training, sampling
def init_sequence_model(kind, input_size, hidden_size, output_size, *, seed=0, **cell_kwargs):
    """A recurrent layer plus a dense read-out at every step: ``{"cell": ..., "W_out", "b_out"}``.

    Taught in: notebooks/11_recurrent_networks.ipynb
    """
    kind = _kind(kind)
    output_size = _size(output_size, "output_size")
    cell = init(kind, input_size, hidden_size, seed=seed, **cell_kwargs)
    rng = np.random.default_rng(seed + 1)
    k = 1.0 / np.sqrt(hidden_size)
    dtype = cell[_KEYS[kind][0]].dtype
    return {"cell": cell, "W_out": jnp.asarray(rng.uniform(-k, k, (hidden_size, output_size)).astype(dtype)),
            "b_out": jnp.zeros(output_size, dtype)}


def sequence_model(kind, params, xs, *, mask=None, state0=None, activation="tanh"):
    """Outputs ``(B, T, C) = hs W_out + b_out`` at every step and the final state of the layer."""
    if not isinstance(params, dict) or not {"cell", "W_out", "b_out"} <= set(params):
        raise ValueError("params must be a dict with keys 'cell', 'W_out', 'b_out' "
                         "(from init_sequence_model)")
    hs, final = run(kind, params["cell"], xs, state0, mask=mask, activation=activation)
    w = _float(params["W_out"], "params['W_out']")
    if w.shape[0] != hs.shape[-1]:
        raise ValueError(f"params['W_out'] must have {hs.shape[-1]} rows (the hidden size), "
                         f"got shape {tuple(w.shape)}")
    return hs @ w + params["b_out"], final


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
    steps = _size(steps, "steps")
    if clip_norm is not None:
        check_positive(clip_norm, "clip_norm")
        clip_norm = float(clip_norm)
    if not (hasattr(optimizer, "init") and hasattr(optimizer, "update")):
        raise TypeError(f"optimizer must have init and update (e.g. course_lib.optim.adam(1e-2)), "
                        f"got {type(optimizer).__name__}")
    return _fit(loss_fn, params, sample_batch, key, data, steps, optimizer, clip_norm)


@partial(jax.jit, static_argnames=("kind", "n_steps", "activation"))
def _generate(kind, params, prompt, key, temperature, n_steps, activation):
    vocab = params["W_out"].shape[1]
    xs = jax.nn.one_hot(prompt, vocab, dtype=params["W_out"].dtype)[None]
    hs, state = _run(kind, params["cell"], xs, _zero_state(kind, params, 1, xs.dtype), None, False,
                     activation)
    cell = params["cell"]

    def step(carry, k):
        state, h = carry
        token = jax.random.categorical(k, (h @ params["W_out"] + params["b_out"]) / temperature)
        x = jax.nn.one_hot(token, vocab, dtype=h.dtype)
        if kind == "lstm":
            state = _lstm_step(cell, state, x)
            h = state[0]
        else:
            state = _rnn_step(cell, state, x, activation) if kind == "rnn" else _gru_step(cell, state, x)
            h = state
        return (state, h), token[0]

    _, tokens = lax.scan(step, (state, hs[:, -1]), jax.random.split(key, n_steps))
    return tokens


@partial(jax.jit, static_argnames=("kind", "n_steps"))
def _forecast(kind, params, history, n_steps):
    xs = history[None, :, None]
    hs, state = _run(kind, params["cell"], xs, _zero_state(kind, params, 1, xs.dtype), None, False,
                     "tanh")
    cell = params["cell"]

    def step(carry, _):
        state, h = carry
        y = h @ params["W_out"] + params["b_out"]                  # (1, 1): the next value
        if kind == "lstm":
            state = _lstm_step(cell, state, y)
            h = state[0]
        else:
            state = _rnn_step(cell, state, y) if kind == "rnn" else _gru_step(cell, state, y)
            h = state
        return (state, h), y[0, 0]

    _, ys = lax.scan(step, (state, hs[:, -1]), None, length=n_steps)
    return ys


def forecast(kind, params, history, n_steps):
    """Autoregressive forecast of a scalar series: read ``history (T,)``, then predict the next
    value and feed each prediction back as the next input, ``n_steps`` times. Returns ``(n_steps,)``.
    The model must have input and output size 1 (``init_sequence_model(kind, 1, H, 1)``).

    Taught in: notebooks/11_recurrent_networks.ipynb
    """
    kind = _kind(kind)
    history = _float(history, "history")
    check_ndim(history, "history", 1)
    d, _ = _check_params(kind, params["cell"])
    if d != 1 or jnp.shape(params["W_out"])[1] != 1:
        raise ValueError("forecast needs a model with input size 1 and output size 1")
    return _forecast(kind, params, history, _size(n_steps, "n_steps"))


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
    kind = _kind(kind)
    prompt = as_int_array(prompt, "prompt")
    check_ndim(prompt, "prompt", 1)
    if prompt.shape[0] < 1:
        raise ValueError("prompt must hold at least one token id")
    vocab = jnp.shape(params["W_out"])[1]
    if int(prompt.min()) < 0 or int(prompt.max()) >= vocab:
        raise ValueError(f"prompt must hold token ids in [0, {vocab - 1}]")
    check_positive(temperature, "temperature")
    return _generate(kind, params, prompt, key, float(temperature), _size(n_steps, "n_steps"),
                     _activation(activation))
