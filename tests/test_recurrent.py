"""course_lib.recurrent (the reference wing) against independent references: float64 NumPy cells
written here, jax.grad / jax.vjp of a plain Python-loop unroll written here, finite differences,
optax, and (if installed) PyTorch. The fast wing is checked against this module in
tests/test_fast_recurrent.py."""
import numpy as np
import jax
import jax.numpy as jnp
import optax
import pytest

from course_lib import optim, recurrent as R

B, T, D, H = 3, 6, 4, 5


def sig(x):
    return 1.0 / (1.0 + np.exp(-x))


# ----------------------------------------------------------------- float64 NumPy references
def np_rnn_cell(p, h, x, act="tanh"):
    a = x @ p["W_xh"] + h @ p["W_hh"] + p["b"]
    return {"tanh": np.tanh, "relu": lambda v: np.maximum(v, 0), "sigmoid": sig,
            "identity": lambda v: v}[act](a)


def np_lstm_cell(p, state, x):
    h, c = state
    z = x @ p["W_x"] + h @ p["W_h"] + p["b"]
    n = h.shape[1]
    i, f, g, o = sig(z[:, :n]), sig(z[:, n:2 * n]), np.tanh(z[:, 2 * n:3 * n]), sig(z[:, 3 * n:])
    c_new = f * c + i * g
    return o * np.tanh(c_new), c_new


def np_gru_cell(p, h, x):
    n = h.shape[1]
    xw = x @ p["W_x"] + p["b_x"]
    hw = h @ p["W_h"] + p["b_h"]
    r = sig(xw[:, :n] + hw[:, :n])
    z = sig(xw[:, n:2 * n] + hw[:, n:2 * n])
    cand = np.tanh(xw[:, 2 * n:] + r * hw[:, 2 * n:])
    return (1 - z) * cand + z * h


def np_run(kind, p, xs, mask=None, reverse=False, act="tanh"):
    """Loop over time in NumPy; masked steps carry the state and output 0."""
    p = {k: np.asarray(v, np.float64) for k, v in p.items()}
    xs = np.asarray(xs, np.float64)
    b, t, _ = xs.shape
    hidden = p["W_hh" if kind == "rnn" else "W_h"].shape[0]
    mask = np.ones((b, t)) if mask is None else np.asarray(mask, np.float64)
    h = np.zeros((b, hidden))
    c = np.zeros((b, hidden))
    out = np.zeros((b, t, hidden))
    for s in (range(t - 1, -1, -1) if reverse else range(t)):
        m = mask[:, s:s + 1]
        if kind == "rnn":
            h_new, c_new = np_rnn_cell(p, h, xs[:, s], act), c
        elif kind == "lstm":
            h_new, c_new = np_lstm_cell(p, (h, c), xs[:, s])
        else:
            h_new, c_new = np_gru_cell(p, h, xs[:, s]), c
        h = m * h_new + (1 - m) * h
        c = m * c_new + (1 - m) * c
        out[:, s] = m[:, 0:1] * h
    return out, ((h, c) if kind == "lstm" else h)


def rand_params(kind, seed=0, d=D, hidden=H):
    """Library init plus random biases, so every term of every equation is exercised."""
    rng = np.random.default_rng(seed + 100)
    p = R.init(kind, d, hidden, seed=seed, dtype="float64")
    return {k: v + 0.3 * rng.standard_normal(v.shape) for k, v in p.items()}


@pytest.fixture
def xs():
    return jnp.asarray(np.random.default_rng(1).standard_normal((B, T, D)))


@pytest.fixture
def mask():
    return R.sequence_mask(np.array([6, 3, 1]), T, dtype="float64")


# ----------------------------------------------------------------- one step, forward and backward
@pytest.mark.parametrize("act", R.ACTIVATIONS)
def test_rnn_step_forward_matches_numpy(act):
    p = rand_params("rnn")
    rng = np.random.default_rng(2)
    h, x = rng.standard_normal((B, H)), rng.standard_normal((B, D))
    got, _ = R.rnn_step_forward(x, h, p, activation=act)
    np.testing.assert_allclose(got, np_rnn_cell({k: np.asarray(v) for k, v in p.items()}, h, x, act),
                               rtol=1e-12, atol=1e-14)


def test_lstm_and_gru_step_forward_match_numpy():
    rng = np.random.default_rng(3)
    h, c, x = rng.standard_normal((B, H)), rng.standard_normal((B, H)), rng.standard_normal((B, D))
    p = rand_params("lstm")
    pn = {k: np.asarray(v) for k, v in p.items()}
    (got_h, got_c), cache = R.lstm_step_forward(x, (h, c), p)
    want_h, want_c = np_lstm_cell(pn, (h, c), x)
    np.testing.assert_allclose(got_h, want_h, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(got_c, want_c, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(cache["c"], want_c, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(cache["f"], sig(x @ pn["W_x"][:, H:2 * H] + h @ pn["W_h"][:, H:2 * H]
                                               + pn["b"][H:2 * H]), rtol=1e-12)
    p = rand_params("gru")
    got, cache = R.gru_step_forward(x, h, p)
    np.testing.assert_allclose(got, np_gru_cell({k: np.asarray(v) for k, v in p.items()}, h, x),
                               rtol=1e-12, atol=1e-14)
    assert 0 < float(cache["z"].min()) and float(cache["z"].max()) < 1


def jnp_step(kind, act="tanh"):
    """One step written here with jnp (not the library's): (x, state, params) -> state."""
    sg = jax.nn.sigmoid

    def step(x, state, p):
        if kind == "rnn":
            return {"tanh": jnp.tanh, "relu": lambda v: jnp.maximum(v, 0), "sigmoid": sg,
                    "identity": lambda v: v}[act](x @ p["W_xh"] + state @ p["W_hh"] + p["b"])
        if kind == "lstm":
            h, c = state
            z = x @ p["W_x"] + h @ p["W_h"] + p["b"]
            n = h.shape[1]
            c = sg(z[:, n:2 * n]) * c + sg(z[:, :n]) * jnp.tanh(z[:, 2 * n:3 * n])
            return sg(z[:, 3 * n:]) * jnp.tanh(c), c
        n = state.shape[1]
        xw, hw = x @ p["W_x"] + p["b_x"], state @ p["W_h"] + p["b_h"]
        r, z = sg(xw[:, :n] + hw[:, :n]), sg(xw[:, n:2 * n] + hw[:, n:2 * n])
        return (1 - z) * jnp.tanh(xw[:, 2 * n:] + r * hw[:, 2 * n:]) + z * state
    return step


@pytest.mark.parametrize("kind,act", [("rnn", a) for a in R.ACTIVATIONS] + [("lstm", "tanh"), ("gru", "tanh")])
def test_step_backward_equals_jax_vjp(kind, act):
    """<cell>_step_backward(dstate, cache) = the VJP of a step written here, for every input."""
    rng = np.random.default_rng(8)
    p = rand_params(kind)
    x = rng.standard_normal((B, D))
    state = (rng.standard_normal((B, H)), rng.standard_normal((B, H))) if kind == "lstm" else rng.standard_normal((B, H))
    dstate = jax.tree_util.tree_map(lambda a: rng.standard_normal(a.shape), state)
    forward = {"rnn": lambda x, s, p: R.rnn_step_forward(x, s, p, activation=act),
               "lstm": R.lstm_step_forward, "gru": R.gru_step_forward}[kind]
    backward = {"rnn": R.rnn_step_backward, "lstm": R.lstm_step_backward, "gru": R.gru_step_backward}[kind]
    out, cache = forward(x, state, p)
    want, vjp = jax.vjp(jnp_step(kind, act), x, state, p)
    for o, w in zip(jax.tree_util.tree_leaves(out), jax.tree_util.tree_leaves(want)):
        np.testing.assert_allclose(o, w, rtol=1e-12, atol=1e-14)
    got = backward(dstate, cache)
    assert set(got[2]) == set(p)
    for g, w in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(vjp(dstate))):
        np.testing.assert_allclose(g, w, rtol=1e-11, atol=1e-13)


def test_lstm_step_backward_matches_finite_differences():
    """The LSTM step backward against central differences in float64 (no autodiff at all)."""
    rng = np.random.default_rng(13)
    p = rand_params("lstm")
    x, h, c = (rng.standard_normal((2, D)), rng.standard_normal((2, H)), rng.standard_normal((2, H)))
    w_h, w_c = rng.standard_normal((2, H)), rng.standard_normal((2, H))
    _, cache = R.lstm_step_forward(x, (h, c), p)
    dx, (dh_prev, dc_prev), dparams = R.lstm_step_backward((w_h, w_c), cache)
    pn = {k: np.asarray(v) for k, v in p.items()}

    def loss(x, h, c, W_h):
        h_new, c_new = np_lstm_cell({**pn, "W_h": W_h}, (h, c), x)
        return float(np.sum(h_new * w_h) + np.sum(c_new * w_c))

    args = [x, h, c, pn["W_h"]]
    for k, got in enumerate([dx, dh_prev, dc_prev, dparams["W_h"]]):
        fd = np.zeros_like(args[k])
        for idx in np.ndindex(args[k].shape):
            plus, minus = [a.copy() for a in args], [a.copy() for a in args]
            plus[k][idx] += 1e-6
            minus[k][idx] -= 1e-6
            fd[idx] = (loss(*plus) - loss(*minus)) / 2e-6
        np.testing.assert_allclose(got, fd, rtol=1e-7, atol=1e-8)


def test_gru_has_two_gates_and_lstm_three():
    """The GRU's stacked matrices hold 3 blocks (r, z and the candidate n), of which 2 are gates."""
    assert R.init_gru(D, H)["W_h"].shape == (H, 3 * H)
    assert R.init_lstm(D, H)["W_h"].shape == (H, 4 * H)
    p = R.init_lstm(D, H, forget_bias=1.0)
    np.testing.assert_array_equal(p["b"][H:2 * H], np.ones(H))
    np.testing.assert_array_equal(p["b"][:H], np.zeros(H))


def test_recurrent_scale_sets_all_singular_values():
    p = R.init_rnn(D, 8, recurrent_scale=0.7, dtype="float64")
    np.testing.assert_allclose(np.linalg.svd(np.asarray(p["W_hh"]), compute_uv=False), 0.7, rtol=1e-12)
    p = R.init_rnn(D, 8, seed=5)
    assert float(jnp.max(jnp.abs(p["W_hh"]))) <= 1 / np.sqrt(8)
    assert p["W_hh"].dtype == jnp.float32


# ----------------------------------------------------------------- layers over time
@pytest.mark.parametrize("kind", R.KINDS)
@pytest.mark.parametrize("use_mask", [False, True])
@pytest.mark.parametrize("reverse", [False, True])
def test_layer_matches_numpy_loop(kind, use_mask, reverse, xs, mask):
    p = rand_params(kind)
    m = mask if use_mask else None
    hs, final = R.run(kind, p, xs, mask=m, reverse=reverse)
    want_hs, want_final = np_run(kind, p, xs, m, reverse)
    np.testing.assert_allclose(hs, want_hs, rtol=1e-11, atol=1e-13)
    for got, want in zip(jax.tree_util.tree_leaves(final), jax.tree_util.tree_leaves(want_final)):
        np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize("kind", R.KINDS)
def test_right_padding_gives_the_state_at_the_last_valid_step(kind, xs, mask):
    p = rand_params(kind)
    _, final = R.run(kind, p, xs, mask=mask)
    for b, length in enumerate([6, 3, 1]):
        _, alone = R.run(kind, p, xs[b:b + 1, :length])
        for got, want in zip(jax.tree_util.tree_leaves(final), jax.tree_util.tree_leaves(alone)):
            np.testing.assert_allclose(got[b], want[0], rtol=1e-12, atol=1e-14)
    # reversed: each sequence is read from its own last valid step
    hs_rev, _ = R.run(kind, p, xs, mask=mask, reverse=True)
    alone, _ = R.run(kind, p, xs[1:2, :3][:, ::-1])
    np.testing.assert_allclose(hs_rev[1, :3], alone[0, ::-1], rtol=1e-12, atol=1e-14)


def test_bidirectional_concatenates_both_directions(xs, mask):
    pf, pb = rand_params("gru", 1), rand_params("gru", 2)
    hs, (ff, fb) = R.bidirectional("gru", pf, pb, xs, mask=mask)
    assert hs.shape == (B, T, 2 * H)
    np.testing.assert_allclose(hs[..., :H], np_run("gru", pf, xs, mask)[0], rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(hs[..., H:], np_run("gru", pb, xs, mask, reverse=True)[0],
                               rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(fb, np_run("gru", pb, xs, mask, reverse=True)[1], rtol=1e-11)


def test_lstm_gate_activations_match_numpy(xs):
    p = rand_params("lstm")
    gates = R.lstm_gate_activations(p, xs)
    want, _ = np_run("lstm", p, xs)
    np.testing.assert_allclose(gates["h"], want, rtol=1e-11, atol=1e-13)
    for k in "ifo":
        assert 0 < float(gates[k].min()) and float(gates[k].max()) < 1


def test_float32_inputs_stay_float32():
    p = R.init_lstm(D, H)
    x32 = jnp.ones((2, 3, D), jnp.float32)
    hs, (h, c) = R.lstm(p, x32)
    assert hs.dtype == h.dtype == jnp.float32
    want, _ = np_run("lstm", p, x32)
    np.testing.assert_allclose(hs, want, rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------- gradients: BPTT vs jax.grad
@pytest.mark.parametrize("kind", R.KINDS)
@pytest.mark.parametrize("use_mask", [False, True])
def test_layer_gradients_equal_jax_grad_of_plain_unroll(kind, use_mask, xs, mask):
    p = rand_params(kind)
    m = mask if use_mask else jnp.ones((B, T))
    rng = np.random.default_rng(4)
    w_out, w_h, w_c = rng.standard_normal((B, T, H)), rng.standard_normal((B, H)), rng.standard_normal((B, H))
    h0 = jnp.asarray(rng.standard_normal((B, H)))

    def loss_lib(p, xs, h0):
        state0 = (h0, 0.5 * h0) if kind == "lstm" else h0
        hs, final = R.run(kind, p, xs, state0, mask=m if use_mask else None)
        h, c = final if kind == "lstm" else (final, final)
        return jnp.sum(hs * w_out) + jnp.sum(h * w_h) + (jnp.sum(c * w_c) if kind == "lstm" else 0.0)

    def loss_ref(p, xs, h0):
        hs, h, c = jnp_unroll_from(kind, p, xs, m, h0)
        return jnp.sum(hs * w_out) + jnp.sum(h * w_h) + (jnp.sum(c * w_c) if kind == "lstm" else 0.0)

    np.testing.assert_allclose(loss_lib(p, xs, h0), loss_ref(p, xs, h0), rtol=1e-12)
    got = jax.grad(loss_lib, argnums=(0, 1, 2))(p, xs, h0)
    want = jax.grad(loss_ref, argnums=(0, 1, 2))(p, xs, h0)
    for g, w in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kind", R.KINDS)
@pytest.mark.parametrize("use_mask", [False, True])
def test_reversed_layer_gradients_equal_jax_grad_of_plain_unroll(kind, use_mask, xs, mask):
    """reverse=True reads each sequence backwards (the values are checked against NumPy in
    test_layer_matches_numpy_loop): its gradient is that of the plain unroll over the flipped
    sequence (and flipped mask), outputs flipped back."""
    p = rand_params(kind)
    m = mask if use_mask else jnp.ones((B, T))
    w_out = np.random.default_rng(7).standard_normal((B, T, H))
    h0 = jnp.asarray(np.random.default_rng(8).standard_normal((B, H)))

    def loss_lib(p, xs, h0):
        state0 = (h0, 0.5 * h0) if kind == "lstm" else h0
        hs, _ = R.run(kind, p, xs, state0, mask=m if use_mask else None, reverse=True)
        return jnp.sum(hs * w_out)

    def loss_ref(p, xs, h0):
        hs, _, _ = jnp_unroll_from(kind, p, xs[:, ::-1], m[:, ::-1], h0)
        return jnp.sum(hs[:, ::-1] * w_out)

    got = jax.grad(loss_lib, argnums=(0, 1, 2))(p, xs, h0)
    want = jax.grad(loss_ref, argnums=(0, 1, 2))(p, xs, h0)
    for g, w in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12)


def jnp_unroll_from(kind, p, xs, mask, h0):
    """A plain Python loop of jnp cells written here (not the library's), from the initial state
    h0 (and c0 = h0 / 2 for the LSTM); masked steps carry the state and output 0."""
    hidden = h0.shape[1]
    h, c = h0, 0.5 * h0
    outs = []
    sg = jax.nn.sigmoid
    for s in range(xs.shape[1]):
        x, m = xs[:, s], mask[:, s:s + 1]
        if kind == "rnn":
            h_new, c_new = jnp.tanh(x @ p["W_xh"] + h @ p["W_hh"] + p["b"]), c
        elif kind == "lstm":
            z = x @ p["W_x"] + h @ p["W_h"] + p["b"]
            i, f = sg(z[:, :hidden]), sg(z[:, hidden:2 * hidden])
            g, o = jnp.tanh(z[:, 2 * hidden:3 * hidden]), sg(z[:, 3 * hidden:])
            c_new = f * c + i * g
            h_new = o * jnp.tanh(c_new)
        else:
            xw, hw = x @ p["W_x"] + p["b_x"], h @ p["W_h"] + p["b_h"]
            r = sg(xw[:, :hidden] + hw[:, :hidden])
            z = sg(xw[:, hidden:2 * hidden] + hw[:, hidden:2 * hidden])
            n = jnp.tanh(xw[:, 2 * hidden:] + r * hw[:, 2 * hidden:])
            h_new, c_new = (1 - z) * n + z * h, c
        h, c = m * h_new + (1 - m) * h, m * c_new + (1 - m) * c
        outs.append(m * h)
    return jnp.stack(outs, 1), h, c


def test_lstm_gradient_matches_finite_differences(xs):
    p = rand_params("lstm")
    w = np.random.default_rng(5).standard_normal((B, T, H))

    def loss(wh):
        hs, _ = R.lstm({**p, "W_h": wh}, xs)
        return float(jnp.sum(hs * w))

    g = np.asarray(jax.grad(lambda wh: jnp.sum(R.lstm({**p, "W_h": wh}, xs)[0] * w))(p["W_h"]))
    wh = np.asarray(p["W_h"])
    eps = 1e-6
    for idx in [(0, 0), (1, 7), (4, 19), (2, 12)]:
        plus, minus = wh.copy(), wh.copy()
        plus[idx] += eps
        minus[idx] -= eps
        fd = (loss(jnp.asarray(plus)) - loss(jnp.asarray(minus))) / (2 * eps)
        assert abs(fd - g[idx]) <= 1e-7 * max(1.0, abs(fd))


@pytest.mark.parametrize("kind,act", [("rnn", a) for a in R.ACTIVATIONS] + [("lstm", "tanh"), ("gru", "tanh")])
@pytest.mark.parametrize("use_mask", [False, True])
def test_sequence_backward_equals_jax_vjp_of_plain_unroll(kind, act, use_mask, xs, mask):
    """sequence_forward's outputs and final state equal a plain Python loop of a step written here;
    sequence_backward (BPTT over the library's step backwards) equals jax.vjp of that loop, for a
    loss on every output and on the final state (h and c), with and without a mask."""
    p = rand_params(kind)
    rng = np.random.default_rng(6)
    m = mask if use_mask else jnp.ones((B, T))
    state0 = ((rng.standard_normal((B, H)), rng.standard_normal((B, H))) if kind == "lstm"
              else rng.standard_normal((B, H)))
    dhs = jnp.asarray(rng.standard_normal((B, T, H)))
    dstate_T = jax.tree_util.tree_map(lambda a: rng.standard_normal(a.shape), state0)
    hs, state_T, cache = R.sequence_forward(kind, xs, state0, p, mask=m if use_mask else None, activation=act)

    def ref(xs, state0, p):
        state, out, step = state0, [], jnp_step(kind, act)
        for s in range(T):
            mt = m[:, s:s + 1]
            state = jax.tree_util.tree_map(lambda a, b: mt * a + (1 - mt) * b, step(xs[:, s], state, p), state)
            out.append(mt * (state[0] if kind == "lstm" else state))
        return jnp.stack(out, 1), state

    (want_hs, want_state), vjp = jax.vjp(ref, xs, state0, p)
    np.testing.assert_allclose(hs, want_hs, rtol=1e-12, atol=1e-14)
    for g, w in zip(jax.tree_util.tree_leaves(state_T), jax.tree_util.tree_leaves(want_state)):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-14)
    got = R.sequence_backward(kind, dhs, cache, dstate_T)
    for g, w in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(vjp((dhs, dstate_T)))):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12)


def test_bptt_over_three_steps_by_hand():
    """Three steps, loss on the last state only: dL/dW_hh = sum over the three steps."""
    rng = np.random.default_rng(7)
    W_xh, W_hh, b = rng.standard_normal((2, 3)), 0.5 * rng.standard_normal((3, 3)), rng.standard_normal(3)
    xs = rng.standard_normal((1, 3, 2))
    hs, _, cache = R.sequence_forward("rnn", xs, None, {"W_xh": W_xh, "W_hh": W_hh, "b": b})
    dhs = np.zeros((1, 3, 3))
    dhs[0, 2] = 1.0                                    # L = sum(h_3)
    _, dh0, dparams = R.sequence_backward("rnn", dhs, cache)
    # by hand in NumPy: h_t = tanh(a_t), delta_t = dL/da_t
    h = [np.zeros(3)]
    for t in range(3):
        h.append(np.tanh(xs[0, t] @ W_xh + h[-1] @ W_hh + b))
    d3 = 1.0 * (1 - h[3] ** 2)
    d2 = (W_hh @ d3) * (1 - h[2] ** 2)
    d1 = (W_hh @ d2) * (1 - h[1] ** 2)
    want = np.outer(h[2], d3) + np.outer(h[1], d2) + np.outer(h[0], d1)
    np.testing.assert_allclose(dparams["W_hh"], want, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(dh0[0], W_hh @ d1, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(hs[0], np.stack(h[1:]), rtol=1e-12)


def test_hidden_gradient_norms_equal_jacobian_products():
    p = rand_params("rnn")
    xs = np.random.default_rng(9).standard_normal((2, 8, D))
    got = R.hidden_gradient_norms("rnn", p, xs, loss_step=6)
    pn = {k: np.asarray(v) for k, v in p.items()}
    want = np.zeros((2, 8))
    for b in range(2):
        h, pre = np.zeros(H), []
        for t in range(8):
            a = xs[b, t] @ pn["W_xh"] + h @ pn["W_hh"] + pn["b"]
            pre.append(a)
            h = np.tanh(a)
        g = np.ones(H) / np.sqrt(H)                    # dL/dh_6
        for t in range(6, -1, -1):
            want[b, t] = np.linalg.norm(g)
            g = pn["W_hh"] @ ((1 - np.tanh(pre[t]) ** 2) * g)
    np.testing.assert_allclose(got, want.mean(0), rtol=1e-11, atol=1e-15)
    assert float(got[7]) == 0.0
    for kind in ("lstm", "gru"):
        norms = R.hidden_gradient_norms(kind, rand_params(kind), xs)
        np.testing.assert_allclose(norms[-1], 1.0, rtol=1e-12)


# ----------------------------------------------------------------- losses, masks, clipping
def test_sequence_mask_right_and_left():
    np.testing.assert_array_equal(R.sequence_mask([2, 0, 3], 3), [[1, 1, 0], [0, 0, 0], [1, 1, 1]])
    np.testing.assert_array_equal(R.sequence_mask(np.array([1, 2]), 3, padding="left"), [[0, 0, 1], [0, 1, 1]])


def test_sequence_cross_entropy_and_mse_match_numpy(mask):
    rng = np.random.default_rng(10)
    logits = rng.standard_normal((B, T, 7))
    labels = rng.integers(0, 7, (B, T))
    m = np.asarray(mask)
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    nll = -np.take_along_axis(logp, labels[..., None], -1)[..., 0]
    np.testing.assert_allclose(R.sequence_cross_entropy(logits, labels, mask), (nll * m).sum() / m.sum(),
                               rtol=1e-12)
    np.testing.assert_allclose(R.sequence_cross_entropy(logits, labels), nll.mean(), rtol=1e-12)
    pred, target = rng.standard_normal((B, T, 2)), rng.standard_normal((B, T, 2))
    want = (((pred - target) ** 2) * m[..., None]).sum() / (m.sum() * 2)
    np.testing.assert_allclose(R.sequence_mse(pred, target, mask), want, rtol=1e-12)
    np.testing.assert_allclose(R.sequence_mse(pred[..., 0], target[..., 0]),
                               ((pred[..., 0] - target[..., 0]) ** 2).mean(), rtol=1e-12)


def test_clipping_equals_optax():
    rng = np.random.default_rng(11)
    grads = {"a": jnp.asarray(rng.standard_normal((3, 4)) * 5), "b": jnp.asarray(rng.standard_normal(6))}
    for max_norm in (0.5, 3.0, 1e3):
        got, norm = R.clip_by_global_norm(grads, max_norm)
        want, _ = optax.clip_by_global_norm(max_norm).update(grads, None)
        for k in grads:
            np.testing.assert_allclose(got[k], want[k], rtol=1e-12)
        np.testing.assert_allclose(norm, optax.tree.norm(grads), rtol=1e-12)
    np.testing.assert_allclose(R.global_norm(grads), optax.tree.norm(grads), rtol=1e-12)
    got = R.clip_by_value(grads, 0.7)
    want, _ = optax.clip(0.7).update(grads, None)
    for k in grads:
        np.testing.assert_allclose(got[k], want[k], rtol=0)


# ----------------------------------------------------------------- training and sampling
def test_fit_equals_a_manual_sgd_loop():
    p = R.init_sequence_model("gru", D, H, 2, seed=3, dtype="float64")
    data = jnp.asarray(np.random.default_rng(12).standard_normal((4, T, D)))

    def sample(key, data):
        return data + 0.1 * jax.random.normal(key, data.shape, data.dtype)

    def loss(p, xs):
        out, _ = R.sequence_model("gru", p, xs)
        return jnp.mean(out ** 2)

    key = jax.random.PRNGKey(0)
    got, history = R.fit(loss, p, sample, key, steps=3, optimizer=optim.sgd(0.1), clip_norm=0.5,
                         data=data)
    want = p
    for i, k in enumerate(jax.random.split(key, 3)):
        l_val, g = jax.value_and_grad(loss)(want, sample(k, data))
        g, _ = optax.clip_by_global_norm(0.5).update(g, None)
        want = jax.tree_util.tree_map(lambda w, d: w - 0.1 * d, want, g)
        np.testing.assert_allclose(history[i], l_val, rtol=1e-12)
    for g, w in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kind", R.KINDS)
def test_generate_at_low_temperature_is_greedy_decoding(kind):
    vocab = 6
    p = R.init_sequence_model(kind, vocab, 8, vocab, seed=4, dtype="float64")
    p["W_out"] = p["W_out"] * 20  # well separated logits: no ties at T -> 0
    prompt = np.array([1, 4, 2])
    got = np.asarray(R.generate(kind, p, prompt, 7, jax.random.PRNGKey(1), temperature=1e-4))
    seq = list(prompt)
    for _ in range(7):
        xs = np.eye(vocab)[seq][None]
        out, _ = np_run(kind, p["cell"], xs)
        seq.append(int(np.argmax(out[0, -1] @ np.asarray(p["W_out"]) + np.asarray(p["b_out"]))))
    assert got.tolist() == seq[3:]


# ----------------------------------------------------------------- bad input
def test_bad_inputs_give_clear_errors(xs):
    p = R.init_lstm(D, H, dtype="float64")
    with pytest.raises(ValueError, match="xs must have 3 dimension"):
        R.lstm(p, xs[0])
    with pytest.raises(ValueError, match="xs must have 4 features"):
        R.lstm(p, jnp.ones((B, T, D + 1)))
    with pytest.raises(TypeError, match="xs must be a floating-point array"):
        R.lstm(p, np.ones((B, T, D), dtype=int))
    with pytest.raises(ValueError, match="xs must be finite"):
        R.lstm(p, np.full((B, T, D), np.nan))
    with pytest.raises(ValueError, match=r"state0\[0\] \(h0\) must have shape \(B, H\) = \(3, 5\)"):
        R.lstm(p, xs, (jnp.zeros((B, H + 1)), jnp.zeros((B, H))))
    with pytest.raises(ValueError, match="kind must be one of"):
        R.run("transformer", p, xs)
    with pytest.raises(ValueError, match="activation must be one of"):
        R.rnn(R.init_rnn(D, H), xs, activation="softmax")
    with pytest.raises(ValueError, match="mask must have shape"):
        R.gru(R.init_gru(D, H), xs, mask=jnp.ones((B, T + 1)))
    with pytest.raises(ValueError, match="mask must hold only 0"):
        R.gru(R.init_gru(D, H), xs, mask=jnp.full((B, T), 0.5))
    with pytest.raises(ValueError, match="missing W_hh"):
        R.rnn({"W_xh": jnp.ones((D, H)), "b": jnp.ones(H)}, xs)
    with pytest.raises(TypeError, match="reverse must be True or False"):
        R.gru(R.init_gru(D, H), xs, reverse="yes")


def test_value_checks_work_inside_jit_on_closed_over_arrays(xs, mask):
    """A concrete mask captured by a jitted function is still checked (with NumPy): a jnp check
    would be staged into the trace and bool() of it would fail."""
    p = rand_params("gru")
    got = jax.jit(lambda xs: R.run("gru", p, xs, mask=mask)[0])(xs)
    np.testing.assert_allclose(got, R.run("gru", p, xs, mask=mask)[0], rtol=1e-12)
    logits = jnp.asarray(np.random.default_rng(3).standard_normal((B, T, 4)))
    labels = jnp.zeros((B, T), jnp.int32)
    jax.jit(lambda lg: R.sequence_cross_entropy(lg, labels, mask))(logits)
    jax.jit(lambda: R.sequence_mask(np.array([2, 0, 6]), T))()
    bad = 2 * mask                             # concrete: made outside the trace
    with pytest.raises(ValueError, match="mask must hold only 0"):
        jax.jit(lambda xs: R.run("gru", p, xs, mask=bad)[0])(xs)


def test_mismatched_hidden_sizes_are_named():
    p = R.init_lstm(D, H)
    with pytest.raises(ValueError, match=r"params\['W_x'\] must have shape \(D, 20\) to match the hidden size H=5"):
        R.lstm({**p, "W_x": jnp.ones((D, 4 * (H + 1)))}, jnp.ones((1, 2, D)))
    with pytest.raises(ValueError, match=r"params\['W_h'\] must have shape \(H, 4\*H\)"):
        R.lstm({**p, "W_h": jnp.ones((H, 3 * H))}, jnp.ones((1, 2, D)))
    with pytest.raises(ValueError, match=r"params\['b_h'\] must have shape \(15,\)"):
        R.gru({**R.init_gru(D, H), "b_h": jnp.ones(12)}, jnp.ones((1, 2, D)))
    with pytest.raises(ValueError, match=r"params\['W_xh'\] must have shape \(D, 5\) to match the hidden size"):
        R.sequence_forward("rnn", jnp.ones((1, 2, D)), None,
                           {"W_xh": jnp.ones((D, 4)), "W_hh": jnp.ones((H, H)), "b": jnp.ones(H)})
    with pytest.raises(ValueError, match=r"params\['W_hh'\] must have shape \(H, 1\*H\)"):
        R.rnn_step_forward(jnp.ones((1, D)), jnp.ones((1, H)),
                           {"W_xh": jnp.ones((D, H)), "W_hh": jnp.ones((H, 4)), "b": jnp.ones(H)})
    with pytest.raises(ValueError, match=r"h_prev must have shape \(B, H\) = \(2, 5\)"):
        R.gru_step_forward(jnp.ones((2, D)), jnp.ones((2, 4)), R.init_gru(D, H))
    with pytest.raises(ValueError, match=r"x must have shape \(B, D\) with D=4"):
        R.rnn_step_forward(jnp.ones((2, 3)), jnp.ones((2, H)), R.init_rnn(D, H))
    with pytest.raises(TypeError, match=r"state_prev must be a pair \(h_prev, c_prev\)"):
        R.lstm_step_forward(jnp.ones((2, D)), jnp.ones((2, H)), R.init_lstm(D, H))
    with pytest.raises(ValueError, match="x must be finite"):
        R.lstm_step_forward(np.full((2, D), np.nan), None, R.init_lstm(D, H))
    _, cache = R.gru_step_forward(jnp.ones((2, D)), None, R.init_gru(D, H))
    with pytest.raises(ValueError, match=r"dh must have shape \(B, H\) = \(2, 5\)"):
        R.gru_step_backward(jnp.ones((2, H + 1)), cache)
    with pytest.raises(TypeError, match="cache must be the cache returned by lstm_step_forward"):
        R.lstm_step_backward((jnp.ones((2, H)), jnp.ones((2, H))), cache)
    with pytest.raises(TypeError, match=r"dstate must be a pair \(dh, dc\)"):
        _, lcache = R.lstm_step_forward(jnp.ones((2, D)), None, R.init_lstm(D, H))
        R.lstm_step_backward(jnp.ones((2, H)), lcache)
    _, _, cache = R.sequence_forward("rnn", jnp.ones((1, 2, D)), None, R.init_rnn(D, H))
    with pytest.raises(ValueError, match="dhs must have the shape of hs"):
        R.sequence_backward("rnn", jnp.ones((1, 3, H)), cache)
    with pytest.raises(TypeError, match=r"cache\['steps'\] must be the cache returned by sequence_forward\('gru'"):
        R.sequence_backward("gru", jnp.ones((1, 2, H)), cache)
    with pytest.raises(TypeError, match=r"cache must be the cache returned by sequence_forward \(a dict"):
        R.sequence_backward("rnn", jnp.ones((1, 2, H)), cache["steps"])
    with pytest.raises(ValueError, match="kind must be one of"):
        R.sequence_forward("elman", jnp.ones((1, 2, D)), None, R.init_rnn(D, H))


def test_bad_options_of_helpers():
    with pytest.raises(ValueError, match="lengths must lie in"):
        R.sequence_mask([4], 3)
    with pytest.raises(TypeError, match="lengths must be an integer array"):
        R.sequence_mask([1.5], 3)
    with pytest.raises(ValueError, match="padding must be one of"):
        R.sequence_mask([1], 3, padding="middle")
    with pytest.raises(ValueError, match=r"labels must have shape \(B, T\)"):
        R.sequence_cross_entropy(jnp.ones((2, 3, 4)), jnp.zeros((2, 4), int))
    with pytest.raises(ValueError, match="mask must mark at least one valid step"):
        R.sequence_cross_entropy(jnp.ones((2, 3, 4)), jnp.zeros((2, 3), int), jnp.zeros((2, 3)))
    with pytest.raises(ValueError, match="max_norm must be a finite number > 0"):
        R.clip_by_global_norm({"a": jnp.ones(2)}, 0.0)
    with pytest.raises(ValueError, match="loss_step must be a step index"):
        R.hidden_gradient_norms("rnn", R.init_rnn(D, H), jnp.ones((1, 4, D)), loss_step=4)
    with pytest.raises(ValueError, match="hidden_size must be an int >= 1, got 0"):
        R.init_gru(D, 0)
    with pytest.raises(ValueError, match="prompt must hold token ids"):
        R.generate("gru", R.init_sequence_model("gru", 3, 4, 3), np.array([5]), 2, jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="steps must be an int >= 1, got 0"):
        R.fit(lambda p, b: 0.0, {}, lambda k, d: None, jax.random.PRNGKey(0), steps=0,
              optimizer=optim.sgd(0.1))


# ----------------------------------------------------------------- PyTorch (benchmark extra)
def test_cells_equal_torch_with_copied_weights():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    x = torch.randn(B, D, dtype=torch.float64)
    h = torch.randn(B, H, dtype=torch.float64)
    c = torch.randn(B, H, dtype=torch.float64)
    cell = torch.nn.LSTMCell(D, H).double()
    p = {"W_x": cell.weight_ih.detach().numpy().T, "W_h": cell.weight_hh.detach().numpy().T,
         "b": (cell.bias_ih + cell.bias_hh).detach().numpy()}
    want_h, want_c = cell(x, (h, c))
    (got_h, got_c), _ = R.lstm_step_forward(x.numpy(), (h.numpy(), c.numpy()), p)
    np.testing.assert_allclose(got_h, want_h.detach().numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(got_c, want_c.detach().numpy(), rtol=1e-12, atol=1e-14)
    gcell = torch.nn.GRUCell(D, H).double()
    p = {"W_x": gcell.weight_ih.detach().numpy().T, "W_h": gcell.weight_hh.detach().numpy().T,
         "b_x": gcell.bias_ih.detach().numpy(), "b_h": gcell.bias_hh.detach().numpy()}
    np.testing.assert_allclose(R.gru_step_forward(x.numpy(), h.numpy(), p)[0], gcell(x, h).detach().numpy(),
                               rtol=1e-12, atol=1e-14)


def test_lstm_layer_and_its_gradient_equal_torch():
    torch = pytest.importorskip("torch")
    torch.manual_seed(1)
    layer = torch.nn.LSTM(D, H, batch_first=True).double()
    x = torch.randn(B, T, D, dtype=torch.float64, requires_grad=True)
    out, _ = layer(x)
    (out ** 2).sum().backward()
    p = {"W_x": layer.weight_ih_l0.detach().numpy().T, "W_h": layer.weight_hh_l0.detach().numpy().T,
         "b": (layer.bias_ih_l0 + layer.bias_hh_l0).detach().numpy()}
    hs, _ = R.lstm(p, x.detach().numpy())
    np.testing.assert_allclose(hs, out.detach().numpy(), rtol=1e-12, atol=1e-14)
    g_p, g_x = jax.grad(lambda p, xs: jnp.sum(R.lstm(p, xs)[0] ** 2), argnums=(0, 1))(p, x.detach().numpy())
    np.testing.assert_allclose(g_x, x.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(g_p["W_h"], layer.weight_hh_l0.grad.numpy().T, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(g_p["b"], layer.bias_ih_l0.grad.numpy(), rtol=1e-10, atol=1e-12)


# ----------------------------------------------------------------- task data
def test_recall_task_batch_layout():
    xs, mask, labels = R.recall_task_batch(jax.random.PRNGKey(3), 5, batch_size=8, max_len=9)
    xs, mask, labels = np.asarray(xs), np.asarray(mask), np.asarray(labels)
    assert xs.shape == (8, 9, 4 + 1 + 4) and mask.shape == (8, 9) and labels.shape == (8,)
    np.testing.assert_array_equal(mask, R.sequence_mask(np.full(8, 5), 9, padding="left"))
    np.testing.assert_array_equal(xs[:, :4], 0.0)                      # padding is all zeros
    np.testing.assert_array_equal(np.argmax(xs[:, 4, :4], -1), labels)  # first valid step shows it
    np.testing.assert_array_equal(xs[:, 4, 4], 1.0)                    # with the marker bit
    np.testing.assert_array_equal(xs[:, 5:, :5], 0.0)                  # later steps: noise only
    assert np.all(np.abs(xs[:, 5:, 5:]) > 0)
    with pytest.raises(ValueError, match="length must lie in"):
        R.recall_task_batch(jax.random.PRNGKey(0), 10, max_len=9)


def test_gru_update_bias():
    p = R.init_gru(D, H, update_bias=2.0)
    np.testing.assert_array_equal(p["b_x"][H:2 * H], 2.0)
    np.testing.assert_array_equal(p["b_x"][:H], 0.0)


def test_corpus_vocabulary_and_text_round_trip():
    text = R.make_grammar_corpus(50, seed=1)
    assert text == R.make_grammar_corpus(50, seed=1) and text != R.make_grammar_corpus(50, seed=2)
    assert text.count(".") == 50
    vocab = R.char_vocabulary(text)
    assert list(vocab) == sorted(set(text))
    ids = R.encode_text(text, vocab)
    assert ids.dtype == np.int32 and R.decode_text(ids, vocab) == text
    with pytest.raises(ValueError, match="not in vocab"):
        R.encode_text("xyz!", vocab)
    with pytest.raises(ValueError, match="ids must lie in"):
        R.decode_text(np.array([len(vocab)]), vocab)


def test_random_windows_are_contiguous_slices():
    seq = jnp.arange(100)
    w = np.asarray(R.random_windows(jax.random.PRNGKey(0), seq, 16, 9))
    assert w.shape == (16, 9)
    np.testing.assert_array_equal(np.diff(w, axis=1), 1)
    assert w.min() >= 0 and w.max() <= 99
    with pytest.raises(ValueError, match="window must be at most"):
        R.random_windows(jax.random.PRNGKey(0), seq, 2, 101)
    s = R.make_series(300, seed=0)
    assert s.shape == (300,) and s.dtype == np.float32


@pytest.mark.parametrize("kind", R.KINDS)
def test_forecast_feeds_predictions_back(kind):
    p = R.init_sequence_model(kind, 1, 6, 1, seed=2, dtype="float64")
    history = np.sin(np.arange(10) / 2.0)
    got = np.asarray(R.forecast(kind, p, history, 5))
    seq = list(history)
    w, b = np.asarray(p["W_out"]), np.asarray(p["b_out"])
    for _ in range(5):
        out, _ = np_run(kind, p["cell"], np.array(seq)[None, :, None])
        seq.append(float((out[0, -1] @ w + b)[0]))
    np.testing.assert_allclose(got, seq[10:], rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="input size 1 and output size 1"):
        R.forecast(kind, R.init_sequence_model(kind, 2, 3, 1), history, 2)
