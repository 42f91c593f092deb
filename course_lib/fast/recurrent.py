"""The fast wing of ``course_lib.recurrent``: the same layers (``run`` and ``sequence_model``, same
signatures, same checks), computed faster. Each is tested equal to the
reference, values and gradients, with and without masks, in float64 (``tests/test_fast_recurrent.py``).

What makes them faster than the reference's loop over ``<cell>_step_forward``:

* the input projections x_t W_x of all steps are one matrix product before the time loop;
* the LSTM computes its gates with one tanh over all 4H columns, since sigma(v) = (1 + tanh(v/2)) / 2;
* the LSTM and GRU stay batch-major and write into preallocated (B, T, .) buffers, the LSTM's gates
  overwriting its input projections in place;
* the backward scans multiply by derivative blocks stored (stacked) by the forward pass, and sum the
  weight gradients over all steps after the loop, as single products;
* with several CPU devices (``course_lib.fast.use_cpu_cores(2)``, an opt-in), a large batch is split
  over them (``course_lib.fast.parallel``).

The time and compile figures behind these choices are in ``benchmarks/README.md``.

Taught in: notebooks/11_recurrent_networks.ipynb (used there for the large experiments)
"""
from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from course_lib import activations
from course_lib import recurrent as R
from course_lib._validation import check_bool, check_option
from course_lib.fast import parallel

__all__ = ["run", "sequence_model", "PARALLEL_WORK"]


# =========================================================================== RNN layer
def _keep(m, new, old):
    """Masked state update: ``new`` where the step is valid, ``old`` (carried over) where padded."""
    return new if m is None else m[:, None] * new + (1.0 - m[:, None]) * old


def _sum_outer(a, b):
    """sum over every leading axis of a[..., :, None] * b[..., None, :]: the weight gradient
    sum_t x_t^T d_t of a layer applied at every step, as ONE product of the flattened (N, K) and
    (N, G) arrays contracting their first axes (XLA:CPU runs that as a plain transposed-operand
    product, where ``einsum("btk,btg->kg")`` first copies an operand into a transposed buffer)."""
    return lax.dot_general(a.reshape(-1, a.shape[-1]), b.reshape(-1, b.shape[-1]),
                           (((0,), (0,)), ((), ())))


def _rnn_forward_core(xs, h0, W_xh, W_hh, b, mask, activation):
    """Time-major (T, B, D) forward. Returns outputs (T, B, H), h_T and the BPTT cache. The input
    projections of all steps are one product before the loop; a step only multiplies by W_hh."""
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


# =========================================================================== LSTM layer
def _gate_scale(blocks, hidden, dtype):
    """Per-column factors s for gate blocks ``blocks`` ("s" sigmoid, "t" tanh; "ssts" for the
    LSTM): 1/2 on sigmoid columns, 1 on tanh ones. Then ``s * tanh(s * z) + (1 - s)`` is
    ``sigma(z) = (1 + tanh(z / 2)) / 2`` (the same function) on the sigmoid columns and ``tanh(z)``
    on the others: all gates of a step in *one* elementwise pass."""
    return jnp.asarray(np.repeat([0.5 if k == "s" else 1.0 for k in blocks], hidden), dtype)


def _lstm_forward_core(xs, h0, c0, W_x, W_h, b, mask, cache=True):
    """Batch-major (B, T, D) LSTM, the equations of ``recurrent.lstm_step_forward``. Fast form of
    the gates: with the factors s of ``_gate_scale`` each step is one product ``h @ W_h``, one tanh
    over all 4H columns, and the cell update.

    The sequences stay batch-major: step t reads column t of the input projections and writes
    column t of (B, T, .) buffers, so no (T, B) <-> (B, T) transposed copy of the inputs, outputs
    or gradients is ever made. For the backward pass (``cache=True``) the state buffer holds the
    state h_{t-1} each step *received* (exactly what dW_h = sum_t h_{t-1}^T dz_t needs; the
    outputs are the same buffer shifted by one step), a second buffer the cell states c_t, and the
    gates a_t overwrite the input projections zx_t in place (step t reads column t before it
    writes it): no (B, T, 4H) buffer is allocated and zero-filled for them. The six local
    derivatives the reverse scan multiplies by are formed from those after the loop, for all steps
    at once, in one (B, T, 6H) array, so that the serial loop stays short."""
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
    """Batch-major (B, T, D) GRU, the equations of ``recurrent.gru_step_forward``; r and z in one
    tanh pass, sigma(v) = (1 + tanh(v / 2)) / 2.

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
            # The same r and z. Without the cache XLA:CPU fuses the form above into scalar code;
            # one tanh over whole (B, 3H) rows (their last H columns unused) stays vectorized.
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


def _time_major(xs, mask, reverse):
    xs = jnp.swapaxes(xs, 0, 1)
    mask = None if mask is None else mask.T
    if reverse:
        xs = xs[::-1]
        mask = None if mask is None else mask[::-1]
    return xs, mask


def _batch_major(out, reverse):
    return jnp.swapaxes(out[::-1] if reverse else out, 0, 1)


# =========================================================================== public layers
#: Forward multiply-adds from which a batch is split over the CPU devices, if there are several
#: (``fast.use_cpu_cores``): below it a two-device call costs more than it saves. Measured with
#: ``benchmarks/bench_recurrent.py --sweep`` (figures in ``benchmarks/README.md``).
PARALLEL_WORK = 20e6


@partial(jax.jit, static_argnames=("kind", "reverse", "activation"))
def _run(kind, params, xs, state0, mask, reverse, activation):
    (b, t, d), hidden = xs.shape, (state0[0] if kind == "lstm" else state0).shape[1]
    k = parallel.shards(b, t * b * R.GATES[kind] * hidden * (hidden + d), PARALLEL_WORK)
    return parallel.over_batch(partial(_run_local, kind, reverse=reverse, activation=activation),
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


def run(kind, params, xs, state0=None, *, mask=None, reverse=False, activation="tanh"):
    """``course_lib.recurrent.run``, fast: a recurrent layer of ``kind`` over ``xs (B, T, D)``;
    returns ``(hs (B, T, H), final_state)``. Its gradient is a hand-written reverse scan."""
    kind = check_option(kind, "kind", R.KINDS)
    reverse = check_bool(reverse, "reverse")
    params, xs, state0, mask, activation = R._check_run(kind, params, xs, state0, mask, activation)
    return _run(kind, params, xs, state0, mask, reverse, activation)


def sequence_model(kind, params, xs, *, mask=None, state0=None, activation="tanh"):
    """``course_lib.recurrent.sequence_model``, fast: outputs ``(B, T, C) = hs W_out + b_out`` at
    every step and the final state of the layer."""
    return R._with_readout(run, kind, params, xs, mask, state0, activation)
