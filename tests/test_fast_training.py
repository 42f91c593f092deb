"""course_lib.fast.training (the fast wing's fit/evaluate): equal to the reference fit of
course_lib.training (float64, every option), its compile cache and its flat parameter vector."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from course_lib import backprop, layers, optim, training
from course_lib.fast import training as ft
from test_training import _apply, _ce, _data, _ref_loss, _reference_fit


def _dropout_apply(p, x, key=None):
    return layers.mlp_apply(p, x, "relu", dropout=0.3, key=key)


def _same(a, b):
    for u, v in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("opt", ["adam", "optax_momentum"])
@pytest.mark.parametrize("kw", [
    {},
    {"validation": True, "early_stopping": training.early_stopping(2, monitor="val_acc")},
    {"rng": 3},
    {"label_smoothing": 0.1},
    {"grad_fn": "backprop"},
    {"callbacks": "stop_at_2"},
], ids=["plain", "val_early_stopping", "dropout_rng", "label_smoothing", "grad_fn", "callback"])
def test_fast_fit_equals_the_reference_fit(opt, kw):
    """Same signature, same parameters and history (float64), whatever the options."""
    X, y = _data()
    p0 = layers.init_mlp((4, 6, 3), "xavier", seed=1, dtype=np.float64)
    kw = dict(kw)
    if kw.pop("validation", False):
        kw.update(X_val=X[:30], y_val=y[:30])
    if kw.get("grad_fn") == "backprop":
        kw["grad_fn"] = lambda p, xb, yb: backprop.loss_and_grads(p, xb, yb, "relu")
    if kw.get("callbacks") == "stop_at_2":
        kw["callbacks"] = (lambda epoch, params, history: epoch == 2,)
    model = _dropout_apply if "rng" in kw else (lambda p, x: layers.mlp_apply(p, x, "relu"))
    make = (lambda: optim.adam(0.02)) if opt == "adam" else (lambda: optax.sgd(0.1, momentum=0.9))
    got, hist = ft.fit(model, p0, make(), X, y, epochs=5, batch_size=16, seed=4, **kw)
    want, hist_ref = training.fit(model, p0, make(), X, y, epochs=5, batch_size=16, seed=4, **kw)
    _same(got, want)
    assert hist.keys() == hist_ref.keys()
    for k in hist:
        np.testing.assert_allclose(hist[k], hist_ref[k], rtol=1e-10, atol=1e-13)
    assert ft.evaluate(model, got, X, y) == pytest.approx(training.evaluate(model, want, X, y), rel=1e-10)


def test_fast_fit_checks_its_arguments_like_the_reference():
    X, y = _data()
    p0 = layers.init_mlp((4, 6, 3), seed=1, dtype=np.float64)
    for fit in (training.fit, ft.fit):
        with pytest.raises(ValueError, match="batch_size must be at most the number of training rows"):
            fit(_apply, p0, optim.adam(0.1), X, y, batch_size=1000)
        with pytest.raises(ValueError, match="X_val and y_val must be given together"):
            fit(_apply, p0, optim.adam(0.1), X, y, X_val=X)


# ------------------------------------------------------------------ compile cache
ACT = "tanh"   # read as a global by _global_act_apply: changing it must change what fit computes


def _global_act_apply(p, x):
    return layers.mlp_apply(p, x, ACT)


def test_repeated_fit_reuses_the_compiled_epoch_even_through_new_lambdas():
    X, y = _data()
    p0 = layers.init_mlp((4, 6, 3), "xavier", seed=1, dtype=np.float64)
    runs = []
    for _ in range(3):
        before = ft.cache_info()
        runs.append(ft.fit(lambda p, x: layers.mlp_apply(p, x, "tanh"), p0, optim.adam(0.01), X, y,
                                 epochs=2, batch_size=16, seed=5))
        after = ft.cache_info()
    assert after["misses"] == before["misses"] and after["hits"] == before["hits"] + 1
    for p, _ in runs[1:]:
        np.testing.assert_array_equal(p[0]["W"], runs[0][0][0]["W"])
    # a closure over an array cannot be keyed: not cached, still correct
    W_extra = jnp.zeros(3)
    before = ft.cache_info()
    p_unc, _ = ft.fit(lambda p, x: layers.mlp_apply(p, x, "tanh") + W_extra, p0, optim.adam(0.01), X, y,
                            epochs=2, batch_size=16, seed=5)
    assert ft.cache_info()["uncached"] == before["uncached"] + 1
    np.testing.assert_allclose(p_unc[0]["W"], runs[0][0][0]["W"], rtol=1e-12)


@pytest.mark.parametrize("lr", [0.01, 0.003, 0.05])
def test_learning_rate_is_an_argument_of_the_cached_epoch_not_a_stale_constant(lr):
    """Every learning rate shares one compile, and each run equals optax with *its* rate."""
    X, y = _data()
    p0 = layers.init_mlp((4, 6, 3), "xavier", seed=1, dtype=np.float64)
    got, hist = ft.fit(_apply, p0, optim.adam(lr), X, y, epochs=3, batch_size=16, seed=5)
    want, losses = _reference_fit(p0, optax.adam(lr), X, y, 3, 16, 5)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g["W"], w["W"], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(hist["train_loss"], losses, rtol=1e-9)
    n_before = ft.cache_info()
    ft.fit(_apply, p0, optim.adam(lr * 2), X, y, epochs=1, batch_size=16, seed=5)
    assert ft.cache_info()["misses"] == n_before["misses"]


def test_cache_key_follows_globals_closures_and_schedules():
    global ACT
    X, y = _data()
    p0 = layers.init_mlp((4, 6, 3), "xavier", seed=1, dtype=np.float64)
    out = {}
    for act in ("tanh", "relu", "tanh"):
        ACT = act
        out.setdefault(act, []).append(ft.fit(_global_act_apply, p0, optax.sgd(0.1), X, y, epochs=2,
                                                    batch_size=16)[0][0]["W"])
    ACT = "tanh"
    relu_direct = ft.fit(lambda p, x: layers.mlp_apply(p, x, "relu"), p0, optax.sgd(0.1), X, y, epochs=2,
                               batch_size=16)[0][0]["W"]
    np.testing.assert_array_equal(out["relu"][0], relu_direct)
    np.testing.assert_array_equal(out["tanh"][0], out["tanh"][1])
    assert not np.allclose(out["relu"][0], out["tanh"][0])
    # closures: the same code over different values is a different model
    make = lambda act: (lambda p, x: layers.mlp_apply(p, x, act))  # noqa: E731
    a = ft.fit(make("relu"), p0, optax.sgd(0.1), X, y, epochs=2, batch_size=16)[0][0]["W"]
    b = ft.fit(make("sigmoid"), p0, optax.sgd(0.1), X, y, epochs=2, batch_size=16)[0][0]["W"]
    np.testing.assert_array_equal(a, relu_direct)
    assert not np.allclose(a, b)
    # two schedules with different numbers are different optimizers
    from course_lib import schedules
    s1 = ft.fit(_apply, p0, optim.sgd(schedules.step_decay(0.1, 5, 0.5)), X, y, epochs=2, batch_size=16)
    s2 = ft.fit(_apply, p0, optim.sgd(schedules.step_decay(0.1, 5, 0.1)), X, y, epochs=2, batch_size=16)
    ref = _reference_fit(p0, optax.sgd(optax.exponential_decay(0.1, 5, 0.1, staircase=True)), X, y, 2, 16, 0)[0]
    np.testing.assert_allclose(s2[0][0]["W"], ref[0]["W"], rtol=1e-9, atol=1e-12)
    assert not np.allclose(s1[0][0]["W"], s2[0][0]["W"])


def test_evaluate_is_cached():
    X, y = _data()
    p0 = layers.init_mlp((4, 6, 3), "xavier", seed=1, dtype=np.float64)
    for i in range(2):   # a new lambda object each time, the same code
        before = ft.cache_info()
        v = ft.evaluate(lambda p, x: layers.mlp_apply(p, x, "tanh"), p0, X, y)
    assert ft.cache_info()["hits"] == before["hits"] + 1
    assert v[0] == pytest.approx(float(_ref_loss(p0, X, y)), rel=1e-12)



# ------------------------------------------------------------------ one flat parameter vector
# fit trains with a course_lib optimizer on ONE concatenated vector (fewer kernels to compile); the
# results must be those of the leaf-by-leaf loop, and the caller sees the parameter tree throughout.
FLAT_PAIRS = {
    "gd": (lambda: optim.gd(0.1), lambda: optax.sgd(0.1)),
    "momentum": (lambda: optim.momentum(0.05, beta=0.9), lambda: optax.sgd(0.05, momentum=0.9)),
    "nesterov": (lambda: optim.nesterov(0.05, beta=0.8), lambda: optax.sgd(0.05, momentum=0.8, nesterov=True)),
    "adagrad": (lambda: optim.adagrad(0.1), lambda: optax.adagrad(0.1)),
    "rmsprop": (lambda: optim.rmsprop(1e-2), lambda: optax.rmsprop(1e-2)),
    "adam": (lambda: optim.adam(1e-2), lambda: optax.adam(1e-2)),
}


def _deep_params():
    """Three layers (six leaves of different shapes): the flat vector has to be cut correctly."""
    return layers.init_mlp((4, 7, 5, 3), "xavier", seed=3, dtype=np.float64)


def _deep_apply(p, x):
    return layers.mlp_apply(p, x, "tanh")


def _deep_ref_loss(p, x, y):
    return _ce(_deep_apply(p, x), y)


@pytest.mark.parametrize("name", list(FLAT_PAIRS))
def test_course_lib_optimizers_train_a_flat_vector_with_the_results_of_optax(name):
    ours, ref = FLAT_PAIRS[name]
    X, y = _data()
    p0 = _deep_params()
    assert ft._flat_layout(ours(), p0) is not None
    assert ft._flat_layout(ref(), p0) is None                     # optax keeps the tree
    got, hist = ft.fit(_deep_apply, p0, ours(), X, y, epochs=3, batch_size=16, seed=5)
    want, losses = _reference_fit(p0, ref(), X, y, 3, 16, 5, loss=_deep_ref_loss)
    assert jax.tree_util.tree_structure(got) == jax.tree_util.tree_structure(p0)
    for g, w in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)):
        assert isinstance(g, jax.Array) and g.dtype == np.float64 and g.shape == w.shape
        np.testing.assert_allclose(g, w, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(hist["train_loss"], losses, rtol=1e-9)


def test_flat_vector_with_validation_early_stopping_callbacks_and_grad_fn():
    """Everything fit shows the caller (validation history, callbacks' params, the restored best
    epoch) is the same with a course_lib optimizer (flat vector) as with optax's (tree)."""
    X, y = _data()
    Xv, yv = _data(40, seed=1)
    p0 = layers.init_mlp((4, 6, 3), "xavier", seed=2, dtype=np.float64)
    manual = lambda p, xb, yb: backprop.loss_and_grads(p, xb, yb, "tanh")  # noqa: E731
    runs = {}
    for name, opt in (("flat", optim.adam(0.05)), ("tree", optax.adam(0.05))):
        seen = []

        def cb(epoch, params, history):
            assert jax.tree_util.tree_structure(params) == jax.tree_util.tree_structure(p0)
            seen.append(jax.tree_util.tree_map(np.asarray, params))
        runs[name] = (*ft.fit(_apply, p0, opt, X, y, X_val=Xv, y_val=yv, epochs=12, batch_size=16,
                                    grad_fn=manual, callbacks=[cb],
                                    early_stopping=training.early_stopping(patience=3, monitor="val_acc")),
                      seen)
    (pf, hf, sf), (pt, ht, st) = runs["flat"], runs["tree"]
    assert hf["epochs_run"] == ht["epochs_run"] and hf["best_epoch"] == ht["best_epoch"]
    for k in ("train_loss", "val_loss", "val_acc"):
        np.testing.assert_allclose(hf[k], ht[k], rtol=1e-9)
    for a, b in zip(jax.tree_util.tree_leaves(pf), jax.tree_util.tree_leaves(pt)):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    assert len(sf) == len(st) == hf["epochs_run"]
    for a, b in zip(jax.tree_util.tree_leaves(sf), jax.tree_util.tree_leaves(st)):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    # the returned (best) params are those the callback saw at the best epoch
    for a, b in zip(jax.tree_util.tree_leaves(pf), jax.tree_util.tree_leaves(sf[hf["best_epoch"]])):
        np.testing.assert_array_equal(a, b)


def test_flat_vector_only_for_trees_of_one_float_dtype():
    p64 = layers.init_mlp((4, 6, 3), "xavier", seed=1, dtype=np.float64)
    mixed = [p64[0], jax.tree_util.tree_map(lambda a: np.asarray(a, np.float32), p64[1])]
    assert ft._flat_layout(optim.adam(0.1), p64)[2] == np.float64
    assert ft._flat_layout(optim.adam(0.1), mixed) is None
    assert ft._flat_layout(optim.adam(0.1), {"w": np.arange(3)}) is None
    assert ft._flat_layout(optim.adam(0.1), {"w": 1.5}) is None
    # a mixed tree still trains (leaf by leaf), and an integer leaf still gets the optimizer's error
    X, y = _data()
    p, _ = ft.fit(_apply, mixed, optim.adam(0.01), X, y, epochs=1, batch_size=30)
    assert p[0]["W"].dtype == np.float64 and p[1]["W"].dtype == np.float32
    bad = [p64[0], {"W": np.ones((6, 3), np.int64), "b": p64[1]["b"]}]
    with pytest.raises(TypeError, match=r"must be a floating-point array, got dtype int64"):
        ft.fit(_apply, bad, optim.adam(0.01), X, y, epochs=1, batch_size=30)


def test_flat_vector_bad_grad_fn_output_gives_the_tree_errors():
    X, y = _data()
    p0 = layers.init_mlp((4, 6, 3), "xavier", seed=1, dtype=np.float64)

    def wrong_shape(p, xb, yb):
        value, g = backprop.loss_and_grads(p, xb, yb, "tanh")
        return value, [g[0], {"W": g[1]["W"][:, :2], "b": g[1]["b"]}]

    def wrong_structure(p, xb, yb):
        value, g = backprop.loss_and_grads(p, xb, yb, "tanh")
        return value, g[0]
    with pytest.raises(ValueError, match=r"grads\[1\]\['W'\] must have shape \(6, 3\)"):
        ft.fit(_apply, p0, optim.adam(0.01), X, y, epochs=1, batch_size=30, grad_fn=wrong_shape)
    with pytest.raises(ValueError, match="grads must have the same pytree structure"):
        ft.fit(_apply, p0, optim.adam(0.01), X, y, epochs=1, batch_size=30, grad_fn=wrong_structure)
