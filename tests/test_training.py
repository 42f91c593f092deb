"""course_lib.training.fit against a hand-written optax loop (float64), early stopping, bad inputs."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from course_lib import backprop, layers, optim, training


def _apply(p, x):
    return layers.mlp_apply(p, x, "tanh")


def _ref_loss(p, x, y):
    h = jnp.tanh(x @ p[0]["W"] + p[0]["b"])
    logits = h @ p[1]["W"] + p[1]["b"]
    return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(x.shape[0]), y])


def _data(n=90, d=4, c=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int) + (X[:, 2] > 1).astype(int)
    return X, y


def _reference_fit(params, opt, X, y, epochs, batch_size, seed, loss=None):
    """The same loop written out with optax: same shuffles, same steps (``loss`` defaults to _ref_loss)."""
    loss = _ref_loss if loss is None else loss
    rng = np.random.default_rng(seed)
    state = opt.init(params)
    n = X.shape[0]
    nb = n // batch_size
    losses = []
    for _ in range(epochs):
        idx = rng.permutation(n)[: nb * batch_size]
        batch_losses = []
        for k in range(nb):
            sl = idx[k * batch_size:(k + 1) * batch_size]
            value, g = jax.value_and_grad(loss)(params, X[sl], y[sl])
            updates, state = opt.update(g, state, params)
            params = optax.apply_updates(params, updates)
            batch_losses.append(float(value))
        losses.append(np.mean(batch_losses))
    return params, losses


@pytest.mark.parametrize("opt", [optax.adam(0.01), optax.sgd(0.1, momentum=0.9)], ids=["adam", "momentum"])
def test_fit_equals_reference_loop(opt):
    X, y = _data()
    p0 = layers.init_mlp((4, 6, 3), "xavier", seed=1, dtype=np.float64)
    got, hist = training.fit(_apply, p0, opt, X, y, epochs=3, batch_size=16, seed=5)
    want, losses = _reference_fit(p0, opt, X, y, 3, 16, 5)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g["W"], w["W"], rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(g["b"], w["b"], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(hist["train_loss"], losses, rtol=1e-9)
    assert hist["epochs_run"] == 3 and hist["best_epoch"] == 2 and "val_loss" not in hist


def test_validation_history_and_evaluate():
    X, y = _data()
    Xv, yv = _data(40, seed=1)
    p0 = layers.init_mlp((4, 6, 3), "xavier", seed=1, dtype=np.float64)
    p, hist = training.fit(_apply, p0, optax.adam(0.01), X, y, X_val=Xv, y_val=yv, epochs=4, batch_size=30)
    assert len(hist["val_loss"]) == len(hist["val_acc"]) == len(hist["train_acc"]) == 4
    vl, va = training.evaluate(_apply, p, Xv, yv)
    assert vl == pytest.approx(float(_ref_loss(p, Xv, yv)), rel=1e-12) == pytest.approx(hist["val_loss"][-1])
    logits = _apply(p, Xv)
    assert va == pytest.approx(float(np.mean(np.argmax(logits, 1) == yv))) == hist["val_acc"][-1]
    assert training.accuracy(logits, yv) == pytest.approx(va)


def test_hand_written_backprop_as_grad_fn_gives_same_training():
    X, y = _data()
    p0 = layers.init_mlp((4, 6, 3), "xavier", seed=2, dtype=np.float64)
    manual = lambda p, xb, yb: backprop.loss_and_grads(p, xb, yb, "tanh")
    a, ha = training.fit(_apply, p0, optax.adam(0.01), X, y, epochs=2, batch_size=16)
    b, hb = training.fit(_apply, p0, optax.adam(0.01), X, y, epochs=2, batch_size=16, grad_fn=manual)
    for ga, gb in zip(a, b):
        np.testing.assert_allclose(ga["W"], gb["W"], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ha["train_loss"], hb["train_loss"], rtol=1e-9)
    np.testing.assert_allclose(ha["train_acc"], hb["train_acc"])


def test_mse_regression():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 2))
    y = (X @ np.array([[1.0], [-2.0]]) + 0.5)
    apply = lambda p, x: layers.mlp_apply(p, x, "identity")
    p, hist = training.fit(apply, layers.init_mlp((2, 1), "zeros", dtype=np.float64), optax.sgd(0.1),
                           X, y, epochs=60, batch_size=64, loss="mse")
    np.testing.assert_allclose(p[0]["W"][:, 0], [1.0, -2.0], atol=1e-4)
    assert hist["train_loss"][-1] < 1e-7


def test_early_stopping_rule_and_restore_best():
    es = training.early_stopping(patience=2, monitor="val_loss")
    h = {"val_loss": [1.0, 0.8, 0.9, 0.85]}
    assert es.best_epoch(h) == 1 and es.should_stop(h)
    assert not es.should_stop({"val_loss": [1.0, 0.8, 0.9]})
    acc = training.early_stopping(patience=1, monitor="val_acc", min_delta=0.05)
    assert acc.best_epoch({"val_acc": [0.5, 0.53, 0.6]}) == 2
    assert acc.should_stop({"val_acc": [0.5, 0.53]})  # +0.03 is not an improvement beyond 0.05
    # in fit: a huge learning rate makes the validation loss jump about; stop and restore the best
    X, y = _data(120)
    Xv, yv = _data(60, seed=3)
    p0 = layers.init_mlp((4, 32, 3), "xavier", seed=0, dtype=np.float64)
    p, hist = training.fit(_apply, p0, optax.sgd(2.0), X, y, X_val=Xv, y_val=yv, epochs=60,
                           batch_size=8, early_stopping=training.early_stopping(patience=3))
    best = int(np.argmin(hist["val_loss"]))
    assert hist["epochs_run"] < 60 and hist["best_epoch"] == best
    assert hist["epochs_run"] == best + 4
    assert training.evaluate(_apply, p, Xv, yv)[0] == pytest.approx(hist["val_loss"][best], rel=1e-12)


def test_callback_can_stop():
    X, y = _data()
    p0 = layers.init_mlp((4, 6, 3), "xavier", seed=1, dtype=np.float64)
    seen = []
    def cb(epoch, params, history):
        seen.append(epoch)
        return epoch == 2
    _, hist = training.fit(_apply, p0, optax.adam(0.01), X, y, epochs=10, batch_size=30, callbacks=[cb])
    assert seen == [0, 1, 2] and hist["epochs_run"] == 3


def test_bad_inputs():
    X, y = _data()
    p0 = layers.init_mlp((4, 6, 3), "xavier", seed=1, dtype=np.float64)
    opt = optax.adam(0.01)
    with pytest.raises(TypeError, match="optimizer must have init"):
        training.fit(_apply, p0, "adam", X, y)
    with pytest.raises(TypeError, match="apply_fn must be callable"):
        training.fit(None, p0, opt, X, y)
    with pytest.raises(ValueError, match=r"y_train must have shape \(90\)"):
        training.fit(_apply, p0, opt, X, y[:10])
    with pytest.raises(TypeError, match="y_train must be an integer array"):
        training.fit(_apply, p0, opt, X, y.astype(float))
    with pytest.raises(ValueError, match="X_train must be finite"):
        training.fit(_apply, p0, opt, np.full_like(X, np.nan), y)
    with pytest.raises(ValueError, match="X_val and y_val must be given together"):
        training.fit(_apply, p0, opt, X, y, X_val=X)
    with pytest.raises(ValueError, match="batch_size must be at most"):
        training.fit(_apply, p0, opt, X, y, batch_size=1000)
    with pytest.raises(ValueError, match="epochs must be an int >= 1"):
        training.fit(_apply, p0, opt, X, y, epochs=0)
    with pytest.raises(ValueError, match="loss must be one of"):
        training.fit(_apply, p0, opt, X, y, loss="hinge")
    with pytest.raises(ValueError, match="no X_val/y_val"):
        training.fit(_apply, p0, opt, X, y, early_stopping=training.early_stopping())
    with pytest.raises(TypeError, match="early_stopping must be an EarlyStopping"):
        training.fit(_apply, p0, opt, X, y, early_stopping=5)
    with pytest.raises(ValueError, match="monitor must be one of"):
        training.early_stopping(monitor="loss")
    with pytest.raises(ValueError, match="patience must be an int >= 1"):
        training.early_stopping(patience=0)
    with pytest.raises(ValueError, match="training diverged"):
        training.fit(lambda p, x: layers.mlp_apply(p, x, "identity"), p0, optax.sgd(1.0), X * 1e150, y,
                     epochs=3, batch_size=30)


# ------------------------------------------------------------------ per-step keys (dropout)
def test_rng_gives_a_fresh_key_every_step_and_none_at_evaluation():
    X, y = _data()
    p0 = layers.init_mlp((4, 6, 3), "xavier", seed=1, dtype=np.float64)
    seen, eval_calls = [], []

    def model(p, x, key=None):
        if key is None:
            eval_calls.append(x.shape)
        else:
            jax.debug.callback(lambda k: seen.append(np.asarray(k).tobytes()), jax.random.key_data(key)
                               if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else key)
        return layers.mlp_apply(p, x, "tanh")

    Xv, yv = _data(40, seed=1)
    _, hist = training.fit(model, p0, optax.adam(0.01), X, y, X_val=Xv, y_val=yv, epochs=3, batch_size=16, rng=7)
    jax.effects_barrier()
    n_steps = 3 * (90 // 16)
    assert len(seen) == n_steps and len(set(seen)) == n_steps      # one distinct key per step
    assert eval_calls                                                # validation ran without a key
    # the same rng seed gives the same keys (reproducible); another seed other keys
    first = list(seen)
    seen.clear()
    training.fit(model, p0, optax.adam(0.01), X, y, epochs=3, batch_size=16, rng=7)
    jax.effects_barrier()
    assert seen == first
    seen.clear()
    training.fit(model, p0, optax.adam(0.01), X, y, epochs=1, batch_size=16, rng=8)
    jax.effects_barrier()
    assert not set(seen) & set(first)
    # without rng the model is called without a key (a two-argument apply_fn keeps working)
    training.fit(lambda p, x: layers.mlp_apply(p, x, "tanh"), p0, optax.adam(0.01), X, y, epochs=1, batch_size=16)
    with pytest.raises(ValueError, match="rng must be an int >= 0"):
        training.fit(model, p0, optax.adam(0.01), X, y, rng=-1)
    with pytest.raises(TypeError, match="rng must be an int"):
        training.fit(model, p0, optax.adam(0.01), X, y, rng=0.5)


def test_make_train_step_with_key_uses_the_mask():
    X, y = _data()
    p0 = layers.init_mlp((4, 64, 3), "xavier", seed=1, dtype=np.float64)
    model = lambda p, x, key=None: layers.mlp_apply(p, x, "tanh", dropout=0.5, key=key)  # noqa: E731
    opt = optax.sgd(0.1)
    step = training.make_train_step(model, opt, with_key=True)
    s0 = opt.init(p0)
    a = step(p0, s0, X, y, jax.random.PRNGKey(0))
    b = step(p0, s0, X, y, jax.random.PRNGKey(1))
    assert float(a[2]) != float(b[2])
    key = jax.random.PRNGKey(0)
    want_loss, want_g = jax.value_and_grad(lambda p: _ce(model(p, X, key), y))(p0)
    assert float(a[2]) == pytest.approx(float(want_loss), rel=1e-12)
    np.testing.assert_allclose(a[0][0]["W"], p0[0]["W"] - 0.1 * want_g[0]["W"], rtol=1e-10, atol=1e-14)


def _ce(logits, y):
    return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(y.shape[0]), y])


def test_dropout_shrinks_the_train_validation_gap_of_an_overfitting_net():
    """100 noisy two-moons points, a 2-256-256-2 net trained far too long: it memorises the noise.
    A large experiment (300 epochs, twice): run with the fast wing's fit, tested equal to this
    module's fit in tests/test_fast_training.py."""
    from course_lib import data
    from course_lib.fast import training as fast_training
    X, y = data.make_moons(600, noise=0.35, seed=0)
    X = X.astype(np.float64)
    Xtr, ytr, Xva, yva = X[:100], y[:100], X[100:], y[100:]
    gaps, acc_gaps = {}, {}
    for p_drop in (0.0, 0.5):
        model = lambda p, x, key=None, r=p_drop: layers.mlp_apply(p, x, "relu", dropout=r, key=key)  # noqa: E731
        p0 = layers.init_mlp((2, 256, 256, 2), "he", seed=0, dtype=np.float64)
        p, _ = fast_training.fit(model, p0, optim.adam(3e-3), Xtr, ytr, epochs=300, batch_size=20, seed=0,
                                 rng=0)
        (tl, ta), (vl, va) = training.evaluate(model, p, Xtr, ytr), training.evaluate(model, p, Xva, yva)
        gaps[p_drop], acc_gaps[p_drop] = vl - tl, ta - va
    assert gaps[0.0] > 0.8                       # the plain net overfits: validation loss >> train loss
    assert gaps[0.5] < 0.5 * gaps[0.0]           # dropout closes more than half of the gap
    assert acc_gaps[0.5] < acc_gaps[0.0]


# ------------------------------------------------------------------ label smoothing
def _ref_smoothed_fit(params, opt, X, y, epochs, batch_size, seed, eps):
    """The reference loop with optax's own smoothed cross-entropy."""
    def loss(p, xb, yb):
        q = optax.smooth_labels(jax.nn.one_hot(yb, 3, dtype=xb.dtype), eps)
        return jnp.mean(optax.softmax_cross_entropy(_apply(p, xb), q))
    return _reference_fit(params, opt, X, y, epochs, batch_size, seed, loss=loss)


@pytest.mark.parametrize("eps", [0.1, 0.3])
def test_label_smoothing_equals_optax_smooth_labels(eps):
    X, y = _data()
    Xv, yv = _data(40, seed=1)
    p0 = layers.init_mlp((4, 6, 3), "xavier", seed=1, dtype=np.float64)
    got, hist = training.fit(_apply, p0, optim.adam(0.01), X, y, X_val=Xv, y_val=yv, epochs=3, batch_size=16,
                             seed=5, label_smoothing=eps)
    want, losses = _ref_smoothed_fit(p0, optax.adam(0.01), X, y, 3, 16, 5, eps)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g["W"], w["W"], rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(g["b"], w["b"], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(hist["train_loss"], losses, rtol=1e-9)
    # the validation loss stays the plain cross-entropy
    assert hist["val_loss"][-1] == pytest.approx(float(_ref_loss(got, Xv, yv)), rel=1e-12)
    # and a smoothed fit is a different compiled epoch from an unsmoothed one
    plain, _ = training.fit(_apply, p0, optim.adam(0.01), X, y, epochs=3, batch_size=16, seed=5)
    assert not np.allclose(plain[0]["W"], got[0]["W"])


def test_label_smoothing_zero_is_the_plain_loss_and_step_accepts_it():
    X, y = _data()
    p0 = layers.init_mlp((4, 6, 3), "xavier", seed=1, dtype=np.float64)
    a, ha = training.fit(_apply, p0, optim.adam(0.01), X, y, epochs=2, batch_size=16, seed=5)
    b, hb = training.fit(_apply, p0, optim.adam(0.01), X, y, epochs=2, batch_size=16, seed=5, label_smoothing=0.0)
    np.testing.assert_array_equal(a[0]["W"], b[0]["W"])
    assert ha["train_loss"] == hb["train_loss"]
    step = training.make_train_step(_apply, optax.sgd(0.1), label_smoothing=0.2)
    state = optax.sgd(0.1).init(p0)
    _, _, value, _ = step(p0, state, X[:16], y[:16])
    q = optax.smooth_labels(jax.nn.one_hot(y[:16], 3, dtype=X.dtype), 0.2)
    assert float(value) == pytest.approx(float(jnp.mean(optax.softmax_cross_entropy(_apply(p0, X[:16]), q))),
                                         rel=1e-12)


@pytest.mark.parametrize("kw, exc, match", [
    (dict(label_smoothing=-0.1), ValueError, r"label_smoothing must be a finite number in \[0, 1\)"),
    (dict(label_smoothing=1.0), ValueError, r"label_smoothing must be a finite number in \[0, 1\)"),
    (dict(label_smoothing=float("nan")), ValueError, "label_smoothing"),
    (dict(label_smoothing="0.1"), TypeError, "label_smoothing must be a number"),
    (dict(label_smoothing=True), TypeError, "label_smoothing must be a number"),
    (dict(label_smoothing=0.1, grad_fn=lambda p, xb, yb: backprop.loss_and_grads(p, xb, yb, "tanh")),
     ValueError, "label_smoothing applies to the autodiff loss"),
])
def test_label_smoothing_bad_input(kw, exc, match):
    X, y = _data()
    p0 = layers.init_mlp((4, 6, 3), "xavier", seed=1, dtype=np.float64)
    with pytest.raises(exc, match=match):
        training.fit(_apply, p0, optim.adam(0.01), X, y, epochs=1, batch_size=16, **kw)
    with pytest.raises(ValueError, match="label_smoothing needs loss='cross_entropy'"):
        training.fit(_apply, p0, optim.adam(0.01), X, X[:, :3], epochs=1, batch_size=16, loss="mse",
                     label_smoothing=0.1)


# ------------------------------------------------------------------ host-side data checks, jitted init
@pytest.mark.parametrize("x", [np.ones((3, 2)), np.ones((3, 2), np.float32), [1.0, 2.0], 1.5, jnp.ones(3),
                               np.float16([1.0])])
def test_host_data_have_the_dtype_of_as_float_array(x):
    """fit keeps the data on the host (NumPy) with the dtype and values as_float_array gives."""
    from course_lib import _validation as V
    a = V.as_float_array(x, "x")
    X2 = np.reshape(np.asarray(x), (-1, 1))
    b, y = training._check_data(X2, np.arange(X2.shape[0], dtype=np.int8), "cross_entropy", "X", "y")
    assert isinstance(b, np.ndarray) and b.dtype == a.dtype and b.shape == X2.shape
    np.testing.assert_array_equal(b.ravel(), np.asarray(a).ravel())
    c = V.as_int_array(np.arange(X2.shape[0], dtype=np.int8), "y")
    assert isinstance(y, np.ndarray) and y.dtype == c.dtype
    np.testing.assert_array_equal(y, np.asarray(c))


@pytest.mark.parametrize("bad, exc, match", [
    ("abc", TypeError, "X_train must be a floating-point array, got str"),
    (np.arange(6).reshape(3, 2), TypeError, "X_train must be a floating-point array, got dtype int"),
    (np.ones((3, 2), complex), TypeError, "X_train must be a real floating-point array"),
    (np.array([[1.0], [1.0, 2.0]], dtype=object), TypeError, "Python objects"),
])
def test_host_data_bad_input_same_messages(bad, exc, match):
    from course_lib import _validation as V
    with pytest.raises(exc, match=match):
        V.as_float_array(bad, "X_train")
    with pytest.raises(exc, match=match):
        training._check_data(bad, np.zeros(3, np.int32), "cross_entropy", "X_train", "y_train")
    with pytest.raises(TypeError, match="y_train must be an integer array"):
        training._check_data(np.ones((3, 2)), np.ones(3), "cross_entropy", "X_train", "y_train")


def test_fit_with_adagrad_nonzero_initial_state_equals_optax():
    """The optimizer state is built by one cached jitted init: it must equal optax's init."""
    X, y = _data()
    p0 = layers.init_mlp((4, 6, 3), "xavier", seed=1, dtype=np.float64)
    for _ in range(2):   # second call: the cached init
        got, hist = training.fit(_apply, p0, optim.adagrad(0.1, initial_accumulator_value=0.3), X, y, epochs=2,
                                 batch_size=16, seed=5)
    want, losses = _reference_fit(p0, optax.adagrad(0.1, initial_accumulator_value=0.3), X, y, 2, 16, 5)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g["W"], w["W"], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(hist["train_loss"], losses, rtol=1e-9)
