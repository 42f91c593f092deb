"""course_lib.attention: attention, multi-head attention and the transformer block against independent
float64 references (NumPy / jax.numpy written again here); hand-written backward passes against jax.grad
(relative error <= 1e-7); masks, positions, tasks, training."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from course_lib import attention as A
from course_lib import checks, recurrent


def _f64(tree):
    return jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), tree)


def _ref_attention(q, k, v, mask=None):
    S = q @ jnp.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    if mask is not None:
        S = jnp.where(mask, S, -jnp.inf)
    return jax.nn.softmax(S, axis=-1) @ v


def _ref_multihead(x, p, mask=None):
    heads = []
    for h in range(p["W_q"].shape[0]):
        m = None if mask is None else (mask[:, None] if mask.ndim == 3 else mask)
        m = None if m is None else (m[:, 0] if m.ndim == 4 else m)
        heads.append(_ref_attention(x @ p["W_q"][h], x @ p["W_k"][h], x @ p["W_v"][h], m) @ p["W_o"][h])
    return sum(heads)


def _ref_ln(x, g, b):
    return g * (x - x.mean(-1, keepdims=True)) / jnp.sqrt(x.var(-1, keepdims=True) + 1e-5) + b


def _ref_block(x, p, mask=None):
    h = x + _ref_multihead(_ref_ln(x, p["ln1_g"], p["ln1_b"]), p["attn"], mask)
    u = _ref_ln(h, p["ln2_g"], p["ln2_b"])
    return h + jax.nn.relu(u @ p["W1"] + p["b1"]) @ p["W2"] + p["b2"]


@pytest.fixture
def qkv():
    rng = np.random.default_rng(0)
    return rng.normal(size=(2, 3, 5, 4)), rng.normal(size=(2, 3, 6, 4)), rng.normal(size=(2, 3, 6, 7))


@pytest.mark.parametrize("masked", [False, True])
def test_attention_forward_and_backward_match_references(qkv, masked):
    q, k, v = qkv
    mask = (np.random.default_rng(1).random((2, 1, 5, 6)) < 0.6) if masked else None
    if masked:
        mask[..., 0] = True                                  # every query sees a key
    out, cache = A.attention_forward(q, k, v, mask)
    np.testing.assert_allclose(out, _ref_attention(q, k, v, mask), rtol=1e-12, atol=1e-12)
    weights = np.asarray(cache[3])
    np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-12)
    if masked:
        assert np.all(weights[np.broadcast_to(~mask, weights.shape)] == 0.0)
    dout = np.random.default_rng(2).normal(size=out.shape)
    ref = jax.jit(jax.grad(lambda q, k, v: jnp.sum(_ref_attention(q, k, v, mask) * dout), argnums=(0, 1, 2)))(q, k, v)
    for mine, r in zip(A.attention_backward(dout, cache), ref):
        assert checks.rel_error(mine, r) <= 1e-7


def test_attention_backward_matches_finite_differences():
    rng = np.random.default_rng(3)
    q, k, v, dout = rng.normal(size=(4, 3)), rng.normal(size=(5, 3)), rng.normal(size=(5, 2)), rng.normal(size=(4, 2))
    _, cache = A.attention_forward(q, k, v)
    dq, _, _ = A.attention_backward(dout, cache)
    num = checks.numerical_gradient(lambda x: float(np.sum(A.attention_forward(x, k, v)[0] * dout)), q)
    assert checks.rel_error(dq, num) <= 1e-6


def test_scaling_keeps_the_softmax_out_of_saturation():
    rng = np.random.default_rng(4)
    q, k = rng.normal(size=(64, 256)), rng.normal(size=(64, 256))
    scaled = A.attention_forward(q, k, k)[1][3]
    raw = jax.nn.softmax(q @ k.T, axis=-1)
    assert float(np.max(scaled, axis=-1).mean()) < 0.9 < float(np.max(raw, axis=-1).mean())


@pytest.mark.parametrize("mask_kind", [None, "causal", "causal+padding"])
def test_multihead_forward_and_backward_match_references(mask_kind):
    rng = np.random.default_rng(5)
    x = rng.normal(size=(2, 6, 8))
    p = _f64(A.init_block(8, 2, 16, seed=1)["attn"])
    mask = None if mask_kind is None else A.causal_mask(6)
    if mask_kind == "causal+padding":
        mask = mask & A.padding_mask(np.array([6, 4]), 6)
    out, cache = A.multihead_forward(x, p, mask)
    np.testing.assert_allclose(out, _ref_multihead(x, p, mask), rtol=1e-10, atol=1e-12)
    assert cache[1][3].shape == (2, 2, 6, 6)
    dout = rng.normal(size=out.shape)
    ref_dx, ref_p = jax.jit(jax.grad(lambda x, p: jnp.sum(_ref_multihead(x, p, mask) * dout), argnums=(0, 1)))(x, p)
    dx, grads = A.multihead_backward(dout, cache)
    assert checks.rel_error(dx, ref_dx) <= 1e-7
    for name in p:
        assert checks.rel_error(grads[name], ref_p[name]) <= 1e-7, name


@pytest.mark.parametrize("masked", [False, True])
def test_block_forward_and_hand_written_backward_match_references(masked):
    rng = np.random.default_rng(6)
    x = rng.normal(size=(2, 5, 8))
    p = _f64(A.init_block(8, 4, 12, seed=2))
    p = jax.tree.map(lambda a: a + 0.1 * rng.normal(size=a.shape), p)   # non-trivial norms and biases
    mask = (A.causal_mask(5) & A.padding_mask(np.array([5, 3]), 5)) if masked else None
    out, cache = A.block_forward(x, p, mask)
    np.testing.assert_allclose(out, _ref_block(x, p, mask), rtol=1e-10, atol=1e-12)
    dout = rng.normal(size=out.shape)
    ref_dx, ref_p = jax.jit(jax.grad(lambda x, p: jnp.sum(_ref_block(x, p, mask) * dout), argnums=(0, 1)))(x, p)
    dx, grads = A.block_backward(dout, cache)
    assert checks.rel_error(dx, ref_dx) <= 1e-7
    flat_mine, flat_ref = jax.tree_util.tree_leaves_with_path(grads), jax.tree_util.tree_leaves(ref_p)
    assert jax.tree_util.tree_structure(grads) == jax.tree_util.tree_structure(ref_p)
    for (path, mine), r in zip(flat_mine, flat_ref):
        assert checks.rel_error(mine, r) <= 1e-7, jax.tree_util.keystr(path)


def test_transformer_is_causal_and_its_maps_are_distributions():
    params = A.init_transformer(7, 10, d_model=8, n_heads=2, n_layers=2, d_ff=16, seed=3)
    tokens = np.random.default_rng(7).integers(0, 7, size=(3, 10))
    logits, maps = A.transformer_forward(params, tokens)
    assert logits.shape == (3, 10, 7) and maps.shape == (2, 3, 2, 10, 10)
    np.testing.assert_allclose(np.asarray(maps).sum(-1), 1.0, rtol=1e-5)
    assert np.all(np.triu(np.asarray(maps), k=1) == 0.0)         # no weight on the future
    changed = tokens.copy()
    changed[:, 6:] = (changed[:, 6:] + 1) % 7
    logits2, _ = A.transformer_forward(params, changed)
    np.testing.assert_allclose(logits2[:, :6], logits[:, :6], rtol=1e-5, atol=1e-6)
    assert not np.allclose(logits2[:, 6:], logits[:, 6:])
    np.testing.assert_allclose(A.transformer_logits(params, tokens), logits, rtol=1e-6)


def test_sinusoidal_positions_and_masks():
    P = A.sinusoidal_positions(50, 8)
    t, i = 13, 2
    assert P[t, 2 * i] == pytest.approx(np.sin(t / 10000 ** (2 * i / 8)), abs=1e-6)
    assert P[t, 2 * i + 1] == pytest.approx(np.cos(t / 10000 ** (2 * i / 8)), abs=1e-6)
    assert len({tuple(np.round(row, 5)) for row in P}) == 50          # every position has its own code
    np.testing.assert_array_equal(A.causal_mask(3), [[1, 0, 0], [1, 1, 0], [1, 1, 1]])
    np.testing.assert_array_equal(A.padding_mask(np.array([1, 3]), 3)[:, 0], [[1, 0, 0], [1, 1, 1]])


def test_padding_does_not_change_the_valid_positions():
    params = A.init_block(8, 2, 16, seed=4)
    rng = np.random.default_rng(8)
    short = rng.normal(size=(1, 4, 8)).astype(np.float32)
    padded = np.concatenate([short, rng.normal(size=(1, 3, 8)).astype(np.float32)], axis=1)
    mask = A.causal_mask(7) & A.padding_mask(np.array([4]), 7)
    out_short, _ = A.block_forward(short, params, A.causal_mask(4))
    out_padded, _ = A.block_forward(padded, params, mask)
    np.testing.assert_allclose(out_padded[:, :4], out_short, rtol=1e-5, atol=1e-6)


def test_tasks_and_corpus():
    inputs, targets, weights = A.reverse_task(5, 4, n_symbols=3, seed=0)
    assert inputs.shape == targets.shape == weights.shape == (5, 8)
    np.testing.assert_array_equal(inputs[:, 4], 3)                      # the separator
    np.testing.assert_array_equal(targets[:, 4:], inputs[:, :4][:, ::-1])
    np.testing.assert_array_equal(weights[:, :4], 0)
    np.testing.assert_array_equal(weights[:, 4:], 1)
    ids, vocab = A.char_corpus(50, seed=1)
    assert recurrent.decode_text(ids, vocab) == recurrent.make_grammar_corpus(50, seed=1)
    x, y, w = A.text_windows(ids, 10, n=4, seed=2)
    assert x.shape == (4, 10) and np.all(y[:, :-1] == x[:, 1:]) and np.all(w == 1)
    x, y, _ = A.text_windows(ids, 10)
    assert len(x) == (len(ids) - 10 - 1) // 10 + 1
    np.testing.assert_array_equal(x.reshape(-1), ids[: x.size])


def test_lstm_is_chapter_11s_and_models_train():
    params = A.init_lstm_lm(6, 5, seed=0)
    tokens = np.random.default_rng(9).integers(0, 6, size=(2, 7))
    want, _ = recurrent.sequence_model("lstm", params, jax.nn.one_hot(tokens, 6, dtype=jnp.float32))
    np.testing.assert_allclose(A.lstm_logits(params, tokens), want, rtol=1e-6, atol=1e-7)
    assert A.count_params(params) == 4 * 5 * (6 + 5 + 1) + 5 * 6 + 6
    inputs, targets, weights = A.reverse_task(2 * 60 * 8, 3, n_symbols=4, seed=0)
    data = tuple(a.reshape(2, 60, 8, -1) for a in (inputs, targets, weights))
    stacked = jax.tree.map(lambda *a: jnp.stack(a), *[A.init_transformer(5, 6, d_model=8, n_heads=2, n_layers=1,
                                                                           d_ff=8, seed=s) for s in (0, 1)])
    trained, losses = A.fit_models(A.transformer_logits, stacked, data, learning_rate=1e-2)
    assert losses.shape == (2, 60) and np.all(losses[:, -10:].mean(1) < 0.7 * losses[:, :10].mean(1))
    loss, acc = A.evaluate_models(A.transformer_logits, trained, A.reverse_task(50, 3, n_symbols=4, seed=5))
    assert loss.shape == acc.shape == (2,) and np.all(np.asarray(acc) > 0.25)


# ------------------------------------------------------------------------------------ bad input
def test_bad_attention_arguments(qkv):
    q, k, v = qkv
    with pytest.raises(TypeError, match="q"):
        A.attention_forward("q", k, v)
    with pytest.raises(ValueError, match="do not fit"):
        A.attention_forward(q[..., :3], k, v)
    with pytest.raises(ValueError, match="do not fit"):
        A.attention_forward(q, k, v[..., :5, :])
    with pytest.raises(ValueError, match="k must be finite"):
        A.attention_forward(q, np.full(k.shape, np.nan), v)
    with pytest.raises(TypeError, match="mask must be a bool"):
        A.attention_forward(q, k, v, np.ones((5, 6)))
    with pytest.raises(ValueError, match="does not broadcast"):
        A.attention_forward(q, k, v, np.ones((5, 5), bool))
    with pytest.raises(ValueError, match="no key"):
        A.attention_forward(q, k, v, np.zeros((5, 6), bool))
    _, cache = A.attention_forward(q, k, v)
    with pytest.raises(ValueError, match="dout"):
        A.attention_backward(np.ones((2, 3, 5, 6)), cache)
    with pytest.raises(TypeError, match="cache"):
        A.attention_backward(np.ones((2, 3, 5, 7)), cache[:3])


def test_bad_multihead_block_and_model_arguments():
    block = A.init_block(8, 2, 16)
    x = np.ones((1, 4, 8), np.float32)
    with pytest.raises(ValueError, match="x must have 3"):
        A.multihead_forward(x[0], block["attn"])
    with pytest.raises(TypeError, match="params must be a dict with W_q"):
        A.multihead_forward(x, {"W_q": block["attn"]["W_q"]})
    with pytest.raises(ValueError, match=r"params\['W_o'\]"):
        A.multihead_forward(x, {**block["attn"], "W_o": np.ones((2, 4, 7))})
    with pytest.raises(ValueError, match="mask must have 2 or 3"):
        A.multihead_forward(x, block["attn"], np.ones(4, bool))
    with pytest.raises(TypeError, match="params must be the dict of init_block"):
        A.block_forward(x, block["attn"])
    _, cache = A.block_forward(x, block)
    with pytest.raises(TypeError, match="cache"):
        A.block_backward(x, cache[:5])
    with pytest.raises(ValueError, match="multiple of n_heads"):
        A.init_block(10, 4, 16)
    with pytest.raises(ValueError, match="n_heads"):
        A.init_block(8, 0, 16)
    model = A.init_transformer(5, 6, d_model=8, n_heads=2, n_layers=1, d_ff=8)
    with pytest.raises(ValueError, match="tokens must be ids"):
        A.transformer_forward(model, np.array([[0, 5]]))
    with pytest.raises(ValueError, match="at most max_len"):
        A.transformer_forward(model, np.zeros((1, 7), np.int32))
    with pytest.raises(TypeError, match="tokens"):
        A.transformer_forward(model, np.zeros((1, 3)))
    with pytest.raises(ValueError, match="tokens must have 2"):
        A.transformer_forward(model, np.zeros(3, np.int32))


def test_bad_model_and_data_arguments():
    block = A.init_block(8, 2, 16)
    _, cache = A.multihead_forward(np.ones((1, 4, 8), np.float32), block["attn"])
    with pytest.raises(ValueError, match="dout"):
        A.multihead_backward(np.ones((1, 4, 7)), cache)
    with pytest.raises(TypeError, match="cache"):
        A.multihead_backward(np.ones((1, 4, 8)), cache[:3])
    with pytest.raises(ValueError, match="n_layers"):
        A.init_transformer(5, 6, n_layers=0)
    with pytest.raises(ValueError, match="vocab_size"):
        A.init_transformer(0, 6)
    with pytest.raises(TypeError, match="max_len"):
        A.init_transformer(5, 6.5)
    lstm = A.init_lstm_lm(5, 4)
    with pytest.raises(TypeError, match="tokens"):
        A.lstm_logits(lstm, np.zeros((1, 3)))
    with pytest.raises(ValueError, match="tokens"):
        A.lstm_logits(lstm, np.zeros(3, np.int32))
    with pytest.raises(ValueError, match="hidden_size"):
        A.init_lstm_lm(5, 0)
    with pytest.raises(ValueError, match="n_sentences"):
        A.char_corpus(0)


def test_bad_helper_arguments():
    with pytest.raises(ValueError, match="d_model must be even"):
        A.sinusoidal_positions(4, 5)
    with pytest.raises(ValueError, match="length"):
        A.causal_mask(0)
    with pytest.raises(ValueError, match="lengths"):
        A.padding_mask(np.array([0, 2]), 3)
    with pytest.raises(TypeError, match="lengths"):
        A.padding_mask(np.array([1.0]), 3)
    with pytest.raises(ValueError, match="n_symbols"):
        A.reverse_task(3, 4, n_symbols=1)
    with pytest.raises(ValueError, match="ids"):
        A.text_windows(np.arange(5), 10)
    with pytest.raises(TypeError, match="forward"):
        A.fit_models("f", {}, (np.zeros((1, 1, 1, 1), np.int32),) * 2 + (np.ones((1, 1, 1, 1)),))
    with pytest.raises(TypeError, match="data"):
        A.fit_models(A.transformer_logits, {}, [1, 2, 3])
    with pytest.raises(ValueError, match="inputs and weights"):
        A.evaluate_models(A.transformer_logits, {}, (np.zeros((2, 3), np.int32), np.zeros((2, 3), np.int32),
                                                      np.ones((2, 4))))
    with pytest.raises(ValueError, match="learning_rate"):
        A.fit_models(A.transformer_logits, {}, (np.zeros((1, 1, 1, 1), np.int32),) * 2 + (np.ones((1, 1, 1, 1)),),
                     learning_rate=-1.0)


def test_a_fully_masked_query_row_is_rejected_or_gets_equal_weights_under_jit():
    """The documented behaviour (module docstring): a concrete mask with a row of False raises; under
    jit (mask traced) that row gets weights 1/Tk, and the other rows are unaffected. Reference: a
    float64 NumPy softmax of the masked scores."""
    rng = np.random.default_rng(5)
    q, k, v = rng.normal(size=(3, 4)), rng.normal(size=(5, 4)), rng.normal(size=(5, 2))
    mask = np.ones((3, 5), bool)
    mask[1] = False                                     # query 1 may use no key
    mask[2, 3:] = False
    with pytest.raises(ValueError, match="no key"):
        A.attention_forward(q, k, v, mask)
    out, cache = jax.jit(A.attention_forward)(q, k, v, mask)
    weights = np.asarray(cache[3])
    np.testing.assert_allclose(weights[1], np.full(5, 0.2), rtol=1e-6)
    s = q @ k.T / 2.0
    for row in (0, 2):
        e = np.exp(np.where(mask[row], s[row], -np.inf) - s[row][mask[row]].max())
        np.testing.assert_allclose(weights[row], e / e.sum(), rtol=1e-5, atol=1e-7)
    assert np.all(weights[2, 3:] == 0)
