"""course_lib.fast.recurrent (the fast wing) equals course_lib.recurrent (the reference), which
tests/test_recurrent.py checks against NumPy, jax.grad of plain loops and finite differences:
values and gradients (weights, inputs, initial state; losses on the outputs and the final state), in
float64, with and without masks, forwards and reversed, unsplit and with the batch split over two CPU
devices (tests/conftest.py opts in to two with course_lib.fast.use_cpu_cores)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from course_lib import recurrent as R
from course_lib.fast import recurrent as F

B, T, D, H = 4, 6, 3, 5


def rand_params(kind, seed=0):
    """Library init plus random biases, so every term of every equation is exercised."""
    rng = np.random.default_rng(seed + 100)
    p = R.init(kind, D, H, seed=seed, dtype="float64")
    return {k: v + 0.3 * rng.standard_normal(v.shape) for k, v in p.items()}


def state_of(kind, rng, batch=B):
    h = jnp.asarray(rng.standard_normal((batch, H)))
    return (h, 0.5 * h) if kind == "lstm" else h


def case(kind, seed, lengths):
    """Parameters, inputs, a mask of the given lengths, an initial state, and the weights of a loss
    on the outputs and on the final state."""
    rng = np.random.default_rng(seed)
    p = rand_params(kind)
    xs = jnp.asarray(rng.standard_normal((B, T, D)))
    mask = None if lengths is None else R.sequence_mask(np.array(lengths), T, dtype="float64")
    state0 = state_of(kind, rng)
    w_out = rng.standard_normal((B, T, H))
    w_final = [rng.standard_normal((B, H)) for _ in jax.tree_util.tree_leaves(state0)]
    return p, xs, mask, state0, w_out, w_final


def loss_and_grads(run, kind, p, xs, state0, mask, reverse, w_out, w_final, act="tanh"):
    """A loss on every output and on every array of the final state, and its gradient with respect
    to the weights, the inputs and the initial state."""
    def loss(p, xs, state0):
        hs, final = run(kind, p, xs, state0, mask=mask, reverse=reverse, activation=act)
        return jnp.sum(hs * w_out) + sum(jnp.sum(f * w) for f, w in zip(jax.tree_util.tree_leaves(final), w_final))
    return jax.value_and_grad(loss, argnums=(0, 1, 2))(p, xs, state0)


def assert_same(got, want, rtol=1e-10, atol=1e-12):
    got_leaves, want_leaves = jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)
    assert len(got_leaves) == len(want_leaves)
    for g, w in zip(got_leaves, want_leaves):
        np.testing.assert_allclose(g, w, rtol=rtol, atol=atol)


@pytest.mark.parametrize("kind,act", [("rnn", a) for a in R.ACTIVATIONS] + [("lstm", "tanh"), ("gru", "tanh")])
@pytest.mark.parametrize("use_mask", [False, True])
@pytest.mark.parametrize("reverse", [False, True])
def test_fast_layers_equal_the_reference(kind, act, use_mask, reverse):
    p, xs, mask, state0, w_out, w_final = case(kind, 1, [6, 3, 1, 5] if use_mask else None)
    assert_same(F.run(kind, p, xs, state0, mask=mask, reverse=reverse, activation=act),
                R.run(kind, p, xs, state0, mask=mask, reverse=reverse, activation=act), 1e-12, 1e-14)
    assert_same(loss_and_grads(F.run, kind, p, xs, state0, mask, reverse, w_out, w_final, act),
                loss_and_grads(R.run, kind, p, xs, state0, mask, reverse, w_out, w_final, act))


def test_the_sequence_model_equals_the_reference():
    rng = np.random.default_rng(2)
    xs = jnp.asarray(rng.standard_normal((B, T, D)))
    mask = R.sequence_mask(np.array([6, 3, 1, 5]), T, dtype="float64")
    for kind in R.KINDS:
        model = R.init_sequence_model(kind, D, H, 3, seed=1, dtype="float64")

        def loss(model, model_fn):
            out, _ = model_fn(kind, model, xs, mask=mask)
            return jnp.sum(jnp.sin(out))
        assert_same(jax.value_and_grad(loss)(model, F.sequence_model),
                    jax.value_and_grad(loss)(model, R.sequence_model))


def test_chapter_18s_fast_lstm_language_model_equals_the_reference():
    """course_lib.fast.attention.lstm_logits (chapter 18's training runs) against the reference
    course_lib.attention.lstm_logits: values and gradients in float64, and the same input errors."""
    from course_lib import attention as A
    from course_lib.fast import attention as FA

    params = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), A.init_lstm_lm(6, 5, seed=3))
    tokens = np.random.default_rng(4).integers(0, 6, size=(3, 7))

    def loss(p, logits_fn):
        return jnp.sum(jnp.sin(logits_fn(p, tokens)))
    assert_same(jax.value_and_grad(loss)(params, FA.lstm_logits), jax.value_and_grad(loss)(params, A.lstm_logits))
    for bad in (np.zeros((1, 3)), np.zeros(3, np.int32)):
        with pytest.raises((TypeError, ValueError)) as want:
            A.lstm_logits(params, bad)
        with pytest.raises(type(want.value), match="tokens"):
            FA.lstm_logits(params, bad)


def test_fast_layers_equal_the_reference_under_jit_and_vmap():
    """Chapter 11 trains a stack of models with jax.vmap inside one compiled loop."""
    rng = np.random.default_rng(3)
    xs = jnp.asarray(rng.standard_normal((2, B, T, D)))
    for kind in R.KINDS:
        ps = jax.tree_util.tree_map(lambda *a: jnp.stack(a), rand_params(kind, 0), rand_params(kind, 1))

        def loss(ps, xs, run=None):
            return jnp.sum(jnp.sin(jax.vmap(lambda p, x: run(kind, p, x)[0])(ps, xs)))
        assert_same(jax.jit(jax.value_and_grad(lambda ps, xs: loss(ps, xs, F.run), argnums=(0, 1)))(ps, xs),
                    jax.value_and_grad(lambda ps, xs: loss(ps, xs, R.run), argnums=(0, 1))(ps, xs))


def test_float32_stays_float32_and_close_to_the_reference():
    p = R.init_lstm(D, H)
    xs = jnp.asarray(np.random.default_rng(4).standard_normal((2, T, D)), jnp.float32)
    hs, (h, c) = F.run("lstm", p, xs)
    assert hs.dtype == h.dtype == c.dtype == jnp.float32
    np.testing.assert_allclose(hs, R.lstm(p, xs)[0], rtol=1e-5, atol=1e-6)


def test_bad_inputs_get_the_reference_errors():
    p = R.init_lstm(D, H, dtype="float64")
    xs = jnp.ones((B, T, D))
    with pytest.raises(ValueError, match="xs must have 3 dimension"):
        F.run("lstm", p, xs[0])
    with pytest.raises(ValueError, match="xs must be finite"):
        F.run("lstm", p, np.full((B, T, D), np.nan))
    with pytest.raises(ValueError, match="kind must be one of"):
        F.run("transformer", p, xs)
    with pytest.raises(ValueError, match="mask must hold only 0"):
        F.run("gru", R.init_gru(D, H), xs, mask=jnp.full((B, T), 0.5))
    with pytest.raises(TypeError, match="reverse must be True or False"):
        F.run("gru", R.init_gru(D, H), xs, reverse="yes")
    with pytest.raises(ValueError, match="params must be a dict with keys 'cell'"):
        F.sequence_model("gru", R.init_gru(D, H), xs)


# ----------------------------------------------------------------- batch split over CPU devices
@pytest.fixture
def split_every_batch(monkeypatch):
    """Every even batch is split over 2 CPU devices (course_lib.fast.parallel), however small."""
    if len(jax.devices("cpu")) < 2:
        pytest.skip("one CPU device (tests/conftest.py asks for two with course_lib.fast.use_cpu_cores)")
    monkeypatch.setattr(F, "PARALLEL_WORK", 0.0)
    F._run.clear_cache()                       # the split is decided when _run is traced
    yield
    F._run.clear_cache()


def _splits(kind, p, xs):
    return "shard_map" in str(jax.make_jaxpr(lambda p, xs: F.run(kind, p, xs))(p, xs))


@pytest.mark.parametrize("kind", R.KINDS)
@pytest.mark.parametrize("use_mask", [False, True])
@pytest.mark.parametrize("reverse", [False, True])
def test_split_batch_values_and_gradients_equal_the_reference(kind, use_mask, reverse, split_every_batch):
    """With the batch of 4 split into 2 x 2 over the CPU devices, outputs and gradients (weights
    summed over the devices, inputs and initial state per share) equal the reference's."""
    p, xs, mask, state0, w_out, w_final = case(kind, 11, [6, 2, 5, 1] if use_mask else None)
    assert _splits(kind, p, xs)
    assert_same(F.run(kind, p, xs, state0, mask=mask, reverse=reverse),
                R.run(kind, p, xs, state0, mask=mask, reverse=reverse), 1e-12, 1e-14)
    got = jax.jit(lambda p, xs, s: loss_and_grads(F.run, kind, p, xs, s, mask, reverse, w_out, w_final))(
        p, xs, state0)
    assert_same(got, loss_and_grads(R.run, kind, p, xs, state0, mask, reverse, w_out, w_final))


@pytest.mark.parametrize("kind", R.KINDS)
def test_split_batch_under_vmap_equals_the_reference(kind, split_every_batch):
    rng = np.random.default_rng(12)
    ps = jax.tree_util.tree_map(lambda *a: jnp.stack(a), rand_params(kind, 0), rand_params(kind, 1))
    xs = jnp.asarray(rng.standard_normal((2, B, T, D)))

    def loss(ps, xs, run):
        return jnp.sum(jnp.sin(jax.vmap(lambda p, x: run(kind, p, x)[0])(ps, xs)))

    assert _splits(kind, rand_params(kind), xs[0])
    assert_same(jax.jit(jax.value_and_grad(lambda ps, xs: loss(ps, xs, F.run), argnums=(0, 1)))(ps, xs),
                jax.value_and_grad(lambda ps, xs: loss(ps, xs, R.run), argnums=(0, 1))(ps, xs))


def test_which_batches_are_split(split_every_batch, monkeypatch):
    """An odd batch over 2 devices is not split; below the work threshold nothing is; the benchmark
    shape (B=32, T=50, D=16, H=64) is, with the threshold the fast wing ships."""
    p = R.init("lstm", D, H, dtype="float64")
    assert not _splits("lstm", p, jnp.zeros((3, T, D)))
    assert _splits("lstm", p, jnp.zeros((2, T, D)))
    monkeypatch.undo()                         # the shipped threshold
    F._run.clear_cache()
    assert not _splits("lstm", p, jnp.zeros((4, T, D)))
    assert _splits("lstm", R.init("lstm", 16, 64, dtype="float64"), jnp.zeros((32, 50, 16)))
    assert not _splits("gru", R.init("gru", 16, 64), jnp.zeros((16, 50, 16)))


# ----------------------------------------------------------------- PyTorch (benchmark extra)
def test_fast_lstm_and_gru_layers_and_gradients_equal_torch():
    torch = pytest.importorskip("torch")
    torch.manual_seed(1)
    for cls in (torch.nn.LSTM, torch.nn.GRU):
        layer = cls(D, H, batch_first=True).double()
        x = torch.randn(B, T, D, dtype=torch.float64, requires_grad=True)
        out, _ = layer(x)
        (out ** 2).sum().backward()
        w_ih, w_hh = layer.weight_ih_l0.detach().numpy().T, layer.weight_hh_l0.detach().numpy().T
        b_ih, b_hh = layer.bias_ih_l0.detach().numpy(), layer.bias_hh_l0.detach().numpy()
        kind = "lstm" if cls is torch.nn.LSTM else "gru"
        p = ({"W_x": w_ih, "W_h": w_hh, "b": b_ih + b_hh} if kind == "lstm"
             else {"W_x": w_ih, "W_h": w_hh, "b_x": b_ih, "b_h": b_hh})
        np.testing.assert_allclose(F.run(kind, p, x.detach().numpy())[0], out.detach().numpy(),
                                   rtol=1e-12, atol=1e-14)
        g_p, g_x = jax.grad(lambda p, xs: jnp.sum(F.run(kind, p, xs)[0] ** 2), argnums=(0, 1))(
            p, x.detach().numpy())
        np.testing.assert_allclose(g_x, x.grad.numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(g_p["W_h"], layer.weight_hh_l0.grad.numpy().T, rtol=1e-10, atol=1e-12)


def test_no_reference_module_imports_the_fast_wing():
    """The reference wing stands alone: no module of course_lib outside course_lib/fast/ imports it."""
    import ast
    import pathlib

    import course_lib
    root = pathlib.Path(course_lib.__file__).parent
    for path in sorted(root.rglob("*.py")):
        if "fast" in path.relative_to(root).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                dotted = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):      # relative imports resolved to course_lib
                base = "course_lib" + (f".{node.module}" if node.module else "") if node.level else node.module
                dotted = [f"{base}.{a.name}" for a in node.names]
            else:
                continue
            assert not [d for d in dotted if d.split(".")[:2] == ["course_lib", "fast"]], f"{path} imports {dotted}"
