"""Attention and transformers from scratch: scaled dot-product attention, masks, multi-head
attention, positional encodings, a (pre-norm) transformer block with its hand-written backward pass,
and a small decoder-only transformer.

Shapes: a batch of sequences of T tokens is ``(B, T)`` (int ids); their vectors ``x (B, T, d)``.

**Scaled dot-product attention** for queries ``q (..., Tq, dk)``, keys ``k (..., Tk, dk)`` and values
``v (..., Tk, dv)``::

    S = q k^T / sqrt(dk)           (..., Tq, Tk)   how well each query matches each key
    A = softmax(S) over the keys   (masked entries get weight 0)
    out = A v                      (..., Tq, dv)   a weighted average of the values

``mask`` (bool, broadcastable to ``(..., Tq, Tk)``, True = may attend): causal (position t sees
positions <= t) and/or padding (no position looks at a padded key). Every query must keep at least
one key (the causal mask always leaves its own position; padding masks only keys): a mask with a
row of False is rejected with a ValueError, except inside ``jax.jit`` where the mask is traced and
cannot be checked, and such a row gets equal weights 1/Tk on its forbidden keys (not zeros).

**Multi-head attention** with H heads of size dh = d / H: head h projects ``x`` with its own
``W_q[h], W_k[h], W_v[h] (d, dh)``, attends, and ``W_o[h] (dh, d)`` maps its output back; the
heads' outputs are summed (the same as concatenating them and multiplying by one (d, d) matrix).

**Transformer block** (pre-norm, as in GPT-2)::

    h   = x + MultiHead(LN1(x))                    (attention: tokens exchange information)
    out = h + relu(LN2(h) W1 + b1) W2 + b2         (MLP: each token on its own; rows times matrices)

Backward passes follow chapter 06's contract, ``forward(...) -> (out, cache)``,
``backward(dout, cache) -> grads``, and reuse chapter 06's dense/activation layers and chapter
17's layer norm.

Taught in: notebooks/18_attention_and_transformers.ipynb
"""
from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from . import _validation as V
from . import backprop, optim, recurrent
from .losses import cross_entropy
from .normalization import layernorm_backward, layernorm_forward

__all__ = ["sinusoidal_positions", "causal_mask", "padding_mask",
           "attention_forward", "attention_backward", "multihead_forward", "multihead_backward",
           "init_block", "block_forward", "block_backward",
           "init_transformer", "transformer_forward", "transformer_logits", "count_params",
           "reverse_task", "text_windows", "char_corpus", "init_lstm_lm", "lstm_logits",
           "fit_models", "evaluate_models"]


# ----------------------------------------------------------------------------------- validation
def _floats(x, name, ndim=None):
    x = V.as_float_array(x, name)
    if ndim is not None:
        V.check_ndim(x, name, ndim)
    return V.check_finite(x, name)


def _check_mask(mask, shape):
    """None, or a bool array broadcastable to ``shape`` (..., Tq, Tk), every query seeing a key."""
    if mask is None:
        return None
    if not hasattr(mask, "dtype") or mask.dtype != bool:
        raise TypeError(f"mask must be a bool array (True = may attend), got "
                        f"{getattr(mask, 'dtype', type(mask).__name__)}")
    try:
        full = jnp.broadcast_shapes(tuple(mask.shape), tuple(shape))
    except ValueError:
        full = None
    if full != tuple(shape):
        raise ValueError(f"mask of shape {tuple(mask.shape)} does not broadcast to the scores' shape {tuple(shape)}")
    if V.is_concrete(mask) and not np.asarray(mask).any(axis=-1).all():
        raise ValueError("mask leaves a query with no key to attend to (a row of False)")
    return mask


# ------------------------------------------------------------------------- positions and masks
def sinusoidal_positions(length, d_model):
    """The fixed positional encodings of Vaswani et al. (2017), ``(length, d_model)``::

        P[t, 2i] = sin(t / 10000^(2i / d)),     P[t, 2i + 1] = cos(t / 10000^(2i / d))

    Each pair of columns is a clock of its own period (2 pi to 2 pi 10000): together they give
    every position a distinct code, and P[t + k] is a fixed rotation of P[t] for every t.
    """
    length, d = V.check_int(length, "length", minimum=1), V.check_int(d_model, "d_model", minimum=2)
    if d % 2:
        raise ValueError(f"d_model must be even (sine and cosine pairs), got {d}")
    t = np.arange(length)[:, None]
    freq = 1.0 / 10000.0 ** (np.arange(0, d, 2) / d)
    P = np.zeros((length, d))
    P[:, 0::2], P[:, 1::2] = np.sin(t * freq), np.cos(t * freq)
    return P.astype(np.float32)


def causal_mask(length):
    """``(T, T)`` bool, True on and below the diagonal: position t may attend to positions <= t."""
    length = V.check_int(length, "length", minimum=1)
    return jnp.tril(jnp.ones((length, length), dtype=bool))


def padding_mask(lengths, max_len):
    """``(B, 1, T)`` bool, True at the valid (non-padded) positions ``t < lengths[b]``: as a key mask
    it broadcasts over the queries; combine with ``causal_mask`` by ``&``."""
    max_len = V.check_int(max_len, "max_len", minimum=1)
    lengths = V.as_int_array(lengths, "lengths")
    V.check_ndim(lengths, "lengths", 1)
    if V.is_concrete(lengths) and lengths.size:               # NumPy on the host: works inside a jit trace
        low, high = int(np.min(np.asarray(lengths))), int(np.max(np.asarray(lengths)))
        if low < 1 or high > max_len:
            raise ValueError(f"lengths must lie in [1, {max_len}], got {low} to {high}")
    return (jnp.arange(max_len)[None, :] < lengths[:, None])[:, None, :]


# ------------------------------------------------------------------- scaled dot-product attention
def attention_forward(q, k, v, mask=None):
    """Scaled dot-product attention (formulas in the module docstring); returns ``(out, cache)``,
    the attention weights are ``cache[3]`` (..., Tq, Tk).

    Taught in: notebooks/18_attention_and_transformers.ipynb
    """
    q, k, v = _floats(q, "q"), _floats(k, "k"), _floats(v, "v")
    if q.ndim < 2 or q.shape[-1] != k.shape[-1] or k.shape[:-1] != v.shape[:-1] or q.shape[:-2] != k.shape[:-2]:
        raise ValueError(f"q (..., Tq, dk), k (..., Tk, dk) and v (..., Tk, dv) do not fit: got shapes "
                         f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")
    mask = _check_mask(mask, q.shape[:-1] + (k.shape[-2],))
    scale = 1.0 / np.sqrt(q.shape[-1])
    S = q @ jnp.swapaxes(k, -1, -2) * scale                   # (..., Tq, Tk)
    if mask is not None:
        S = jnp.where(mask, S, jnp.finfo(S.dtype).min)          # weight exp(min - max) = 0
    S = S - jnp.max(S, axis=-1, keepdims=True)                 # stable softmax over the keys
    A = jnp.exp(S)
    A = A / jnp.sum(A, axis=-1, keepdims=True)
    return A @ v, (q, k, v, A, scale)


def attention_backward(dout, cache):
    """Backward of :func:`attention_forward`: ``(dq, dk, dv)``::

        dA = dout v^T      dv = A^T dout      dS = A * (dA - sum_keys(dA * A))   (softmax backward)
        dq = dS k / sqrt(dk)      dk = dS^T q / sqrt(dk)

    Masked entries have A = 0, hence dS = 0: no gradient flows through a connection that was cut.

    Taught in: notebooks/18_attention_and_transformers.ipynb
    """
    q, k, v, A, scale = V.check_cache(cache, "cache", "attention_forward", 5)
    dout = V.check_shape(_floats(dout, "dout"), "dout", A.shape[:-1] + v.shape[-1:])
    dA = dout @ jnp.swapaxes(v, -1, -2)
    dv = jnp.swapaxes(A, -1, -2) @ dout
    dS = A * (dA - jnp.sum(dA * A, axis=-1, keepdims=True))
    dq = dS @ k * scale
    dk = jnp.swapaxes(dS, -1, -2) @ q * scale
    return dq, dk, dv


# ----------------------------------------------------------------------------- multi-head attention
def _check_heads(params, d):
    if not isinstance(params, dict) or set(params) != {"W_q", "W_k", "W_v", "W_o"}:
        raise TypeError("params must be a dict with W_q, W_k, W_v (H, d, dh) and W_o (H, dh, d)")
    if jnp.ndim(params["W_q"]) != 3:
        raise ValueError(f"params['W_q'] must have shape (H, d, dh), got {jnp.shape(params['W_q'])}")
    H, _, dh = jnp.shape(params["W_q"])
    for name, want in (("W_q", (H, d, dh)), ("W_k", (H, d, dh)), ("W_v", (H, d, dh)), ("W_o", (H, dh, d))):
        V.check_shape(V.as_float_array(params[name], f"params['{name}']"), f"params['{name}']", want)


def _head_mask(mask):
    """A (T, T) mask broadcasts over batch and heads as it is; (B, T, T) gets a heads axis."""
    return mask[:, None] if mask is not None and mask.ndim == 3 else mask


def multihead_forward(x, params, mask=None):
    """Multi-head self-attention of ``x (B, T, d)``; returns ``(out (B, T, d), cache)`` with the
    weights of every head in ``cache[1][3]`` (B, H, T, T). ``mask`` broadcastable to (B, T, T).

    Taught in: notebooks/18_attention_and_transformers.ipynb
    """
    x = _floats(x, "x", ndim=3)
    _check_heads(params, x.shape[-1])
    if mask is not None and mask.ndim < 2:
        raise ValueError(f"mask must have 2 or 3 dimensions ((T, T) or (B, T, T)), got shape {mask.shape}")
    q = jnp.einsum("btd,hde->bhte", x, params["W_q"])        # head h: x W_q[h], (B, H, T, dh)
    k = jnp.einsum("btd,hde->bhte", x, params["W_k"])
    v = jnp.einsum("btd,hde->bhte", x, params["W_v"])
    heads, att = attention_forward(q, k, v, _head_mask(mask))
    out = jnp.einsum("bhte,hed->btd", heads, params["W_o"])  # sum over heads of head_h W_o[h]
    return out, (x, att, heads, params)


def multihead_backward(dout, cache):
    """Backward of :func:`multihead_forward`: ``(dx, grads)``, grads a dict like ``params``.

    Taught in: notebooks/18_attention_and_transformers.ipynb
    """
    x, att, heads, params = V.check_cache(cache, "cache", "multihead_forward", 4)
    dout = V.check_shape(_floats(dout, "dout", ndim=3), "dout", tuple(x.shape))
    grads = {"W_o": jnp.einsum("bhte,btd->hed", heads, dout)}
    dheads = jnp.einsum("btd,hed->bhte", dout, params["W_o"])
    dq, dk, dv = attention_backward(dheads, att)
    dx = 0.0
    for name, g in (("W_q", dq), ("W_k", dk), ("W_v", dv)):
        grads[name] = jnp.einsum("btd,bhte->hde", x, g)       # like dense: input^T @ gradient
        dx = dx + jnp.einsum("bhte,hde->btd", g, params[name])
    return dx, grads


# ---------------------------------------------------------------------------------- the block
def init_block(d_model, n_heads, d_ff, *, seed=0, residual_scale=1.0):
    """Parameters of one transformer block (NumPy draws, float32): attention projections and MLP
    weights ~ N(0, 1/fan-in); the two matrices that write into the residual stream (``W_o``, ``W2``)
    multiplied by ``residual_scale`` (chapter 17: scale the branches of a deep residual stack)."""
    d, H, d_ff = (V.check_int(v, name, minimum=1)
                  for v, name in ((d_model, "d_model"), (n_heads, "n_heads"), (d_ff, "d_ff")))
    if d % H:
        raise ValueError(f"d_model must be a multiple of n_heads, got {d} and {H}")
    rng, dh = np.random.default_rng(V.check_int(seed, "seed", minimum=0)), d // H
    normal = lambda shape, fan_in: rng.standard_normal(shape) / np.sqrt(fan_in)  # noqa: E731
    p = {"ln1_g": np.ones(d), "ln1_b": np.zeros(d), "ln2_g": np.ones(d), "ln2_b": np.zeros(d),
         "attn": {"W_q": normal((H, d, dh), d), "W_k": normal((H, d, dh), d), "W_v": normal((H, d, dh), d),
                  "W_o": normal((H, dh, d), d) * residual_scale},
         "W1": normal((d, d_ff), d), "b1": np.zeros(d_ff), "W2": normal((d_ff, d), d_ff) * residual_scale,
         "b2": np.zeros(d)}
    return jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), p)


def block_forward(x, params, mask=None):
    """One pre-norm transformer block (module docstring) of ``x (B, T, d)``: ``(out, cache)``.

    Taught in: notebooks/18_attention_and_transformers.ipynb
    """
    x = _floats(x, "x", ndim=3)
    keys = {"ln1_g", "ln1_b", "attn", "ln2_g", "ln2_b", "W1", "b1", "W2", "b2"}
    if not isinstance(params, dict) or set(params) != keys:
        raise TypeError(f"params must be the dict of init_block, with keys {sorted(keys)}")
    B, T, d = x.shape
    a, ln1 = layernorm_forward(x, params["ln1_g"], params["ln1_b"])
    att, mha = multihead_forward(a, params["attn"], mask)
    h = x + att                                                 # residual around attention
    u, ln2 = layernorm_forward(h, params["ln2_g"], params["ln2_b"])
    z, dense1 = backprop.dense_forward(u.reshape(B * T, d), params["W1"], params["b1"])
    r, act = backprop.activation_forward(z, "relu")
    m, dense2 = backprop.dense_forward(r, params["W2"], params["b2"])
    return h + m.reshape(B, T, d), (ln1, mha, ln2, dense1, act, dense2)   # residual around MLP


def block_backward(dout, cache):
    """Backward of :func:`block_forward`: ``(dx, grads)``, grads a dict like the block's params.
    Each piece's backward in reverse order; each residual connection adds its gradient.

    Taught in: notebooks/18_attention_and_transformers.ipynb
    """
    ln1, mha, ln2, dense1, act, dense2 = V.check_cache(cache, "cache", "block_forward", 6)
    dout = _floats(dout, "dout", ndim=3)
    B, T, d = dout.shape
    dr, dW2, db2 = backprop.dense_backward(dout.reshape(B * T, d), dense2)
    du, dW1, db1 = backprop.dense_backward(backprop.activation_backward(dr, act), dense1)
    dh_ln, dg2, dbeta2 = layernorm_backward(du.reshape(B, T, d), ln2)
    dh = dout + dh_ln                                           # the MLP's residual path
    da, dattn = multihead_backward(dh, mha)
    dx_ln, dg1, dbeta1 = layernorm_backward(da, ln1)
    dx = dh + dx_ln                                             # the attention's residual path
    return dx, {"ln1_g": dg1, "ln1_b": dbeta1, "ln2_g": dg2, "ln2_b": dbeta2, "attn": dattn,
                "W1": dW1, "b1": db1, "W2": dW2, "b2": db2}


# ------------------------------------------------------------------------ a decoder-only model
def init_transformer(vocab_size, max_len, *, d_model=32, n_heads=4, n_layers=2, d_ff=64, seed=0):
    """A small GPT-style model: token embeddings ``embed (V, d)``, learned positions ``pos
    (max_len, d)`` (initialised with :func:`sinusoidal_positions`), ``n_layers`` blocks, a final
    layer norm and a read-out ``W_out (d, V)``. The blocks' residual branches are scaled by
    1 / sqrt(2 n_layers) (GPT-2's rule, chapter 17's lesson).

    Taught in: notebooks/18_attention_and_transformers.ipynb
    """
    V_, T, d = (V.check_int(v, name, minimum=1)
                for v, name in ((vocab_size, "vocab_size"), (max_len, "max_len"), (d_model, "d_model")))
    L, seed = V.check_int(n_layers, "n_layers", minimum=1), V.check_int(seed, "seed", minimum=0)
    rng = np.random.default_rng(seed)
    blocks = [init_block(d, n_heads, d_ff, seed=seed + 1 + l, residual_scale=1 / np.sqrt(2 * L)) for l in range(L)]
    f32 = lambda a: jnp.asarray(a, jnp.float32)  # noqa: E731
    return {"embed": f32(rng.standard_normal((V_, d)) / np.sqrt(d)), "pos": f32(sinusoidal_positions(T, d) / np.sqrt(d)),
            "blocks": blocks, "ln_f_g": f32(np.ones(d)), "ln_f_b": f32(np.zeros(d)),
            "W_out": f32(rng.standard_normal((d, V_)) / np.sqrt(d)), "b_out": f32(np.zeros(V_))}


def transformer_forward(params, tokens, mask=None):
    """Logits ``(B, T, V)`` of the next token at every position and the attention weights
    ``(n_layers, B, H, T, T)``. ``mask`` defaults to causal (each position sees only the past).

    Taught in: notebooks/18_attention_and_transformers.ipynb
    """
    tokens = V.as_int_array(tokens, "tokens")
    V.check_ndim(tokens, "tokens", 2)
    vocab, max_len = jnp.shape(params["embed"])[0], jnp.shape(params["pos"])[0]
    if tokens.shape[1] > max_len:
        raise ValueError(f"tokens must have at most max_len = {max_len} positions, got {tokens.shape[1]}")
    if V.is_concrete(tokens) and tokens.size:                 # NumPy on the host: works inside a jit trace
        host = np.asarray(tokens)
        if host.min() < 0 or host.max() >= vocab:
            raise ValueError(f"tokens must be ids in [0, {vocab})")
    T = tokens.shape[1]
    x = params["embed"][tokens] + params["pos"][:T]            # embedding: a row lookup
    mask = causal_mask(T) if mask is None else mask
    maps = []
    for block in params["blocks"]:
        x, cache = block_forward(x, block, mask)
        maps.append(cache[1][1][3])                             # this block's attention weights
    x, _ = layernorm_forward(x, params["ln_f_g"], params["ln_f_b"])
    return x @ params["W_out"] + params["b_out"], jnp.stack(maps)


def transformer_logits(params, tokens):
    """Only the logits of :func:`transformer_forward` with the causal mask (for training)."""
    return transformer_forward(params, tokens)[0]


def count_params(params):
    """Number of scalar parameters in a pytree."""
    return int(sum(np.size(leaf) for leaf in jax.tree_util.tree_leaves(params)))


# ------------------------------------------------------------------------------------- data
def reverse_task(n, length, *, n_symbols=8, seed=0):
    """Sequences ``x_1 .. x_L | x_L .. x_1`` of random symbols (ids 0..n_symbols-1, "|" = n_symbols),
    for next-token prediction: returns ``(inputs (n, 2L), targets (n, 2L), weights (n, 2L))`` with
    weight 1 where the target is a symbol of the reversed half (the part that can be predicted).
    Position L + j must recall position L - 1 - j: attention can look it up directly.
    """
    n, L = V.check_int(n, "n", minimum=1), V.check_int(length, "length", minimum=1)
    k = V.check_int(n_symbols, "n_symbols", minimum=2)
    x = np.random.default_rng(V.check_int(seed, "seed", minimum=0)).integers(0, k, size=(n, L))
    seq = np.concatenate([x, np.full((n, 1), k), x[:, ::-1]], axis=1)       # (n, 2L + 1)
    weights = np.zeros((n, 2 * L), np.float32)
    weights[:, L:] = 1.0
    return seq[:, :-1].astype(np.int32), seq[:, 1:].astype(np.int32), weights


def text_windows(ids, length, *, n=None, seed=0):
    """Next-character windows of a token sequence ``ids``: ``(inputs, targets, weights)`` of shape
    ``(n, length)`` (targets = inputs shifted by one, weights all 1). ``n=None``: the consecutive,
    non-overlapping windows that cover ``ids`` (for evaluation); else ``n`` windows at random starts."""
    ids = np.asarray(V.as_int_array(ids, "ids"))
    length = V.check_int(length, "length", minimum=1)
    if ids.ndim != 1 or ids.size < length + 1:
        raise ValueError(f"ids must be 1-D with more than length = {length} tokens, got shape {ids.shape}")
    if n is None:
        starts = np.arange(0, ids.size - length, length)
    else:
        rng = np.random.default_rng(V.check_int(seed, "seed", minimum=0))
        starts = rng.integers(0, ids.size - length, V.check_int(n, "n", minimum=1))
    windows = ids[starts[:, None] + np.arange(length + 1)]
    return windows[:, :-1], windows[:, 1:], np.ones((len(starts), length), np.float32)


# ---- the one place that depends on chapter 11's code (course_lib.recurrent: its corpus and LSTM) ----
def char_corpus(n_sentences=2000, *, seed=0):
    """Chapter 11's character corpus: ``(ids int32, vocab str)`` of ``make_grammar_corpus``."""
    from . import recurrent

    text = recurrent.make_grammar_corpus(n_sentences, seed=seed)
    vocab = recurrent.char_vocabulary(text)
    return recurrent.encode_text(text, vocab), vocab


def init_lstm_lm(vocab_size, hidden_size, *, seed=0):
    """Chapter 11's LSTM language model (one-hot input, an LSTM layer, a dense read-out)."""
    from . import recurrent

    return recurrent.init_sequence_model("lstm", vocab_size, hidden_size, vocab_size, seed=seed)


def lstm_logits(params, tokens):
    """Next-token logits ``(B, T, V)`` of chapter 11's LSTM language model for int ``tokens (B, T)``:
    the tokens one-hot, through ``course_lib.recurrent.sequence_model``. (The chapter's long training
    runs use ``course_lib.fast.attention.lstm_logits``, the same function through chapter 11's fast
    wing, tested equal.)"""
    tokens = V.check_ndim(V.as_int_array(tokens, "tokens"), "tokens", 2)
    xs = jax.nn.one_hot(tokens, params["W_out"].shape[1], dtype=params["W_out"].dtype)
    return recurrent.sequence_model("lstm", params, xs)[0]
# ------------------------------------------------------------------------------------------------


def _weighted_ce(logits, targets, weights):
    nll = cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), "none")
    nll = nll.reshape(targets.shape)
    return jnp.sum(nll * weights) / jnp.maximum(jnp.sum(weights), 1.0)


def _fit_one(params, data, forward, learning_rate):
    opt = optim.adam(learning_rate)

    def step(carry, batch):
        p, state = carry
        loss_fn = lambda p: _weighted_ce(forward(p, batch[0]), batch[1], batch[2])  # noqa: E731
        loss, grads = jax.value_and_grad(loss_fn)(p)
        updates, state = opt.update(grads, state, p)
        return (optim.apply_updates(p, updates), state), loss

    (params, _), losses = jax.lax.scan(step, (params, opt.init(params)), data)
    return params, losses


@partial(jax.jit, static_argnames=("forward",))
def _fit_many(params, data, learning_rate, forward):       # one compilation for every learning rate
    return jax.vmap(lambda p, d: _fit_one(p, d, forward, learning_rate))(params, data)


def _check_data(data, n_dims):
    if not isinstance(data, tuple) or len(data) != 3:
        raise TypeError("data must be a tuple (inputs, targets, weights)")
    inputs, targets = V.as_int_array(data[0], "inputs"), V.as_int_array(data[1], "targets")
    weights = V.as_float_array(data[2], "weights")
    V.check_ndim(inputs, "inputs", n_dims)
    V.check_same_shape(inputs, "inputs", targets, "targets")
    V.check_same_shape(inputs, "inputs", weights, "weights")
    return inputs, targets, weights


def fit_models(forward, params, data, *, learning_rate=3e-3):
    """Train S models at once (one per seed, ``params`` stacked on a leading axis of size S) with
    Adam on the weighted next-token cross-entropy, one compiled call (``jax.vmap`` over the seeds,
    ``lax.scan`` over the steps). ``forward(params, tokens) -> logits`` (e.g. ``transformer_logits``
    or ``lstm_logits``); ``data = (inputs, targets, weights)``, each ``(S, steps, B, T)``.
    Returns ``(params, losses (S, steps))``.

    Taught in: notebooks/18_attention_and_transformers.ipynb
    """
    if not callable(forward):
        raise TypeError(f"forward must be a function (params, tokens) -> logits, got {type(forward).__name__}")
    V.check_number(learning_rate, "learning_rate", low=0, low_open=True)
    return _fit_many(params, _check_data(data, 4), jnp.float32(learning_rate), forward)


@partial(jax.jit, static_argnames=("forward",))
def _evaluate_many(params, inputs, targets, weights, forward):
    def one(p):
        logits = forward(p, inputs)
        hit = (jnp.argmax(logits, axis=-1) == targets) * weights
        return _weighted_ce(logits, targets, weights), jnp.sum(hit) / jnp.sum(weights)
    return jax.vmap(one)(params)


def evaluate_models(forward, params, data):
    """Weighted cross-entropy (nats per predicted token) and accuracy of S stacked models on
    ``data = (inputs, targets, weights)``, each ``(B, T)``: ``(losses (S,), accuracies (S,))``.

    Taught in: notebooks/18_attention_and_transformers.ipynb
    """
    if not callable(forward):
        raise TypeError(f"forward must be a function (params, tokens) -> logits, got {type(forward).__name__}")
    return _evaluate_many(params, *_check_data(data, 2), forward)
