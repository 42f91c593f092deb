"""course_lib.optim against optax: 100-step trajectories on several problems, pytrees, schedules,
and the errors a learner gets for bad input.

optax's ``update`` is jitted in the reference runs, as ours is: eager optax evaluates schedules
op by op, which differs from a compiled evaluation in the last bit, and Adam amplifies that to ~1e-9.
"""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from course_lib import optim, schedules

N_STEPS = 100


# ------------------------------------------------------------------ problems (loss over a pytree)
def _bowl(p):  # ill-conditioned quadratic, condition number 50
    return 0.5 * (p[0] ** 2 + 50.0 * p[1] ** 2)


def _rosenbrock(p):
    return (1.0 - p[0]) ** 2 + 100.0 * (p[1] - p[0] ** 2) ** 2


_rng = np.random.default_rng(0)
_X = jnp.asarray(_rng.normal(size=(40, 5)))
_Y = jnp.asarray((_rng.normal(size=40) > 0).astype(np.float64))


def _logreg(p):  # nested pytree: dict holding a list and a tuple
    z = _X @ p["layer"][0] + p["layer"][1] + p["extra"][0] * jnp.tanh(_X[:, 0])
    return jnp.mean(jnp.logaddexp(0.0, z) - _Y * z) + 0.01 * jnp.sum(p["layer"][0] ** 2)


PROBLEMS = {
    "bowl": (_bowl, jnp.array([-1.5, 0.8])),
    "rosenbrock": (_rosenbrock, jnp.array([-1.2, 1.0])),
    "logreg_pytree": (_logreg, {"layer": [jnp.asarray(_rng.normal(size=5) * 0.1), jnp.array(0.0)],
                                "extra": (jnp.array([0.3]),)}),
}

# (ours, optax reference) with the same hyper-parameters
OPTIMIZERS = {
    "gd": (lambda: optim.gd(1e-3), lambda: optax.sgd(1e-3)),
    "sgd": (lambda: optim.sgd(2e-3), lambda: optax.sgd(2e-3)),
    "minibatch_sgd": (lambda: optim.minibatch_sgd(1e-3), lambda: optax.sgd(1e-3)),
    "momentum": (lambda: optim.momentum(1e-3, beta=0.9), lambda: optax.sgd(1e-3, momentum=0.9)),
    "sgd_momentum_kw": (lambda: optim.sgd(5e-4, momentum=0.5), lambda: optax.sgd(5e-4, momentum=0.5)),
    "nesterov": (lambda: optim.nesterov(1e-3, beta=0.8),
                 lambda: optax.sgd(1e-3, momentum=0.8, nesterov=True)),
    "adagrad": (lambda: optim.adagrad(0.1), lambda: optax.adagrad(0.1)),
    "adagrad_custom": (lambda: optim.adagrad(0.05, initial_accumulator_value=0.5, eps=1e-5),
                       lambda: optax.adagrad(0.05, initial_accumulator_value=0.5, eps=1e-5)),
    "rmsprop": (lambda: optim.rmsprop(1e-2), lambda: optax.rmsprop(1e-2)),
    "rmsprop_decay": (lambda: optim.rmsprop(3e-3, decay=0.99, eps=1e-6),
                      lambda: optax.rmsprop(3e-3, decay=0.99, eps=1e-6)),
    "adam": (lambda: optim.adam(1e-2), lambda: optax.adam(1e-2)),
    "adam_betas": (lambda: optim.adam(5e-2, b1=0.5, b2=0.9, eps=1e-6, eps_root=1e-9),
                   lambda: optax.adam(5e-2, b1=0.5, b2=0.9, eps=1e-6, eps_root=1e-9)),
    # learning-rate schedules inside the optimizer
    "adam_warmup_cosine": (
        lambda: optim.adam(schedules.warmup_cosine_decay(0.0, 2e-2, 10, N_STEPS, 1e-3)),
        lambda: optax.adam(optax.warmup_cosine_decay_schedule(0.0, 2e-2, 10, N_STEPS, 1e-3))),
    "momentum_step_decay": (
        lambda: optim.momentum(schedules.step_decay(1e-3, 30, 0.5), beta=0.9),
        lambda: optax.sgd(optax.exponential_decay(1e-3, 30, 0.5, staircase=True), momentum=0.9)),
    "rmsprop_exponential": (
        lambda: optim.rmsprop(schedules.exponential_decay(1e-2, 10, 0.9)),
        lambda: optax.rmsprop(optax.exponential_decay(1e-2, 10, 0.9))),
    "adagrad_cosine": (
        lambda: optim.adagrad(schedules.cosine_decay(0.2, 80, alpha=0.1)),
        lambda: optax.adagrad(optax.cosine_decay_schedule(0.2, 80, alpha=0.1))),
}


_GRADS = {}  # one compiled gradient per problem, shared by all tests


def _trajectory(opt, loss, params, apply, jit_update=False):
    grad = _GRADS.setdefault(loss, jax.jit(jax.grad(loss)))
    update = jax.jit(opt.update) if jit_update else opt.update
    state = opt.init(params)
    path = [params]
    for _ in range(N_STEPS):
        updates, state = update(grad(params), state, params)
        params = apply(params, updates)
        path.append(params)
    return path


@pytest.mark.parametrize("problem", sorted(PROBLEMS))
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_100_step_trajectory_equals_optax(name, problem):
    ours, ref = OPTIMIZERS[name]
    loss, p0 = PROBLEMS[problem]
    got = _trajectory(ours(), loss, p0, optim.apply_updates)
    want = _trajectory(ref(), loss, p0, optax.apply_updates, jit_update=True)
    for step, (g, w) in enumerate(zip(got, want)):
        assert jax.tree_util.tree_structure(g) == jax.tree_util.tree_structure(w)
        for a, b in zip(jax.tree_util.tree_leaves(g), jax.tree_util.tree_leaves(w)):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-10, atol=1e-12,
                                       err_msg=f"{name} on {problem} differs from optax at step {step}")
    # the run actually moved the parameters (a trajectory of a no-op would also "match")
    moved = max(float(jnp.max(jnp.abs(a - b))) for a, b in
                zip(jax.tree_util.tree_leaves(got[-1]), jax.tree_util.tree_leaves(got[0])))
    assert moved > 1e-3


def test_update_inside_jit_equals_eager():
    loss, p0 = PROBLEMS["logreg_pytree"]
    opt = optim.adam(schedules.warmup_cosine_decay(0.0, 1e-2, 5, 50))
    eager = _trajectory(opt, loss, p0, optim.apply_updates)

    @jax.jit
    def step(params, state):
        updates, state = opt.update(jax.grad(loss)(params), state, params)
        return optim.apply_updates(params, updates), state

    params, state = p0, opt.init(p0)
    for _ in range(N_STEPS):
        params, state = step(params, state)
    for a, b in zip(jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(eager[-1])):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-10, atol=1e-12)


def test_adam_matches_float64_numpy_formula_and_bias_correction():
    """An independent NumPy transcription of Kingma & Ba's Algorithm 1."""
    rng = np.random.default_rng(1)
    grads = rng.normal(size=(20, 4)) * np.array([1e-3, 1.0, 10.0, 1e3])
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8
    theta, m, v = np.zeros(4), np.zeros(4), np.zeros(4)
    opt = optim.adam(lr, b1, b2, eps)
    p = jnp.zeros(4)
    state = opt.init(p)
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        theta = theta - lr * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
        u, state = opt.update(jnp.asarray(g), state)
        if t == 1:  # bias-corrected first step is lr * g / (|g| + eps) ~ lr * sign(g), at any scale
            np.testing.assert_allclose(np.asarray(u), -lr * g / (np.abs(g) + eps), rtol=1e-12)
        p = optim.apply_updates(p, u)
    np.testing.assert_allclose(np.asarray(p), theta, rtol=1e-12, atol=1e-15)
    assert int(state.count) == len(grads)


def test_classic_momentum_form_is_the_same_method():
    """v <- beta v - lr g; theta <- theta + v (constant lr) gives the same iterates as ours."""
    loss, p0 = PROBLEMS["bowl"]
    grad = jax.grad(loss)
    lr, beta = 0.01, 0.9
    ours = _trajectory(optim.momentum(lr, beta), loss, p0, optim.apply_updates)
    theta, v = np.asarray(p0), np.zeros(2)
    for k in range(N_STEPS):
        v = beta * v - lr * np.asarray(grad(jnp.asarray(theta)))
        theta = theta + v
    np.testing.assert_allclose(np.asarray(ours[-1]), theta, rtol=1e-10, atol=1e-12)


def test_float32_params_keep_their_dtype():
    p = {"w": jnp.ones((3, 2), jnp.float32), "b": jnp.zeros(2, jnp.float32)}
    for name in optim.NAMES:
        opt = optim.get(name, 0.1)
        state = opt.init(p)
        g = jax.tree_util.tree_map(lambda x: jnp.full_like(x, 0.5), p)
        u, state = opt.update(g, state, p)
        new = optim.apply_updates(p, u)
        assert all(x.dtype == jnp.float32 for x in jax.tree_util.tree_leaves(new)), name
        assert not np.allclose(np.asarray(new["w"]), 1.0), name


def _reference_init(name, params):
    """The initial state built op by op with jnp (what init computed before it moved to the host)."""
    zeros = lambda t: jax.tree_util.tree_map(jnp.zeros_like, t)  # noqa: E731
    count = jnp.zeros([], jnp.int32)
    if name == "adagrad":
        return (count, jax.tree_util.tree_map(lambda x: jnp.full_like(x, 0.1), params))
    if name == "adam":
        return (count, zeros(params), zeros(params))
    return None


@pytest.mark.parametrize("kind", ["numpy", "jax", "traced"])
def test_init_state_is_built_on_the_host_with_the_same_values_and_dtypes(kind):
    host = {"w": np.arange(6.0).reshape(3, 2), "b": np.ones(2, np.float32), "s": np.float32(3)}
    params = host if kind == "numpy" else jax.tree_util.tree_map(jnp.asarray, host)
    for name in ("adagrad", "adam", "sgd", "momentum", "rmsprop"):
        opt = optim.get(name, 0.1)
        state = jax.jit(opt.init)(params) if kind == "traced" else opt.init(params)
        ref = jax.tree_util.tree_map(jnp.asarray, host)
        expected = _reference_init(name, ref) or jax.jit(opt.init)(ref)
        got_leaves, want_leaves = jax.tree_util.tree_leaves(state), jax.tree_util.tree_leaves(expected)
        assert len(got_leaves) == len(want_leaves), name
        for g, w in zip(got_leaves, want_leaves):
            assert isinstance(g, jax.Array), (name, type(g))
            assert g.dtype == w.dtype and g.shape == w.shape, (name, g.dtype, w.dtype)
            np.testing.assert_array_equal(np.asarray(g), np.asarray(w))
    # a Python float parameter keeps its weak type (jnp.zeros_like semantics)
    mu = optim.adam(0.1).init({"t": 1.0}).mu["t"]
    assert mu.weak_type and float(mu) == 0.0


def test_get_builds_by_name_with_hyper_parameters():
    a = optim.get("adam", 0.1, b1=0.5)
    b = optim.adam(0.1, b1=0.5)
    p = jnp.array([1.0, -2.0])
    ua, _ = a.update(p, a.init(p))
    ub, _ = b.update(p, b.init(p))
    np.testing.assert_array_equal(np.asarray(ua), np.asarray(ub))
    assert set(optim.NAMES) == {"gd", "sgd", "minibatch_sgd", "momentum", "nesterov", "adagrad",
                                "rmsprop", "adam"}


# ------------------------------------------------------------------ bad input
P = {"w": jnp.ones((2, 3)), "b": jnp.zeros(3)}


@pytest.mark.parametrize("name", ["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_gradients_are_rejected_naming_the_leaf(name, bad):
    opt = optim.get(name, 0.1)
    state = opt.init(P)
    g = {"w": jnp.ones((2, 3)).at[1, 2].set(bad), "b": jnp.ones(3)}
    with pytest.raises(ValueError, match=r"grads\['w'\] must be finite"):
        opt.update(g, state, P)


def test_gradient_structure_shape_and_dtype_errors():
    opt = optim.adam(0.1)
    state = opt.init(P)
    with pytest.raises(ValueError, match="grads must have the same pytree structure"):
        opt.update({"w": jnp.ones((2, 3))}, state)
    with pytest.raises(ValueError, match=r"grads\['b'\] must have shape \(3,\)"):
        opt.update({"w": jnp.ones((2, 3)), "b": jnp.ones(4)}, state)
    with pytest.raises(TypeError, match=r"grads\['w'\] must be a floating-point array"):
        opt.update({"w": jnp.ones((2, 3), jnp.int32), "b": jnp.ones(3)}, state)
    with pytest.raises(TypeError, match="state must be the state returned by adam.init"):
        opt.update(P, {"count": 0})
    with pytest.raises(ValueError, match="params must be a non-empty pytree"):
        opt.init({})
    with pytest.raises(TypeError, match=r"params\['w'\] must be a floating-point array"):
        opt.init({"w": np.arange(3)})


def test_update_compares_gradient_shapes_with_the_params():
    """With params given, update compares the gradients with them (not only later apply_updates)."""
    opt = optim.sgd(0.1)
    state = opt.init(P)
    with pytest.raises(ValueError, match=r"grads\['w'\] must have shape \(2, 3\) like params, got \(3, 2\)"):
        opt.update({"w": jnp.ones((3, 2)), "b": jnp.ones(3)}, state, P)
    with pytest.raises(ValueError, match="grads must have the same pytree structure as params"):
        opt.update({"w": jnp.ones((2, 3))}, state, P)
    momentum = optim.sgd(0.1, momentum=0.9)       # with a velocity, no params are needed
    with pytest.raises(ValueError, match=r"grads\['b'\] must have shape \(3,\)"):
        momentum.update({"w": jnp.ones((2, 3)), "b": jnp.ones(4)}, momentum.init(P))


@pytest.mark.parametrize("make, exc, match", [
    (lambda: optim.sgd(-0.1), ValueError, "learning_rate must be a finite number > 0"),
    (lambda: optim.sgd(0.0), ValueError, "learning_rate"),
    (lambda: optim.adam(float("nan")), ValueError, "learning_rate"),
    (lambda: optim.adam("0.1"), TypeError, "learning_rate must be a number"),
    (lambda: optim.adam(True), TypeError, "learning_rate must be a number"),
    (lambda: optim.adam(0.1, b1=1.0), ValueError, r"b1 must be a finite number in \[0.0, 1.0\)"),
    (lambda: optim.adam(0.1, b2=-0.1), ValueError, "b2"),
    (lambda: optim.adam(0.1, eps=-1e-8), ValueError, "eps"),
    (lambda: optim.rmsprop(0.1, decay=1.0), ValueError, "decay"),
    (lambda: optim.momentum(0.1, beta=1.5), ValueError, "beta"),
    (lambda: optim.nesterov(0.1, beta=-0.5), ValueError, "beta"),
    (lambda: optim.sgd(0.1, momentum=1.0), ValueError, "momentum"),
    (lambda: optim.sgd(0.1, nesterov=True), ValueError, "nesterov=True needs a momentum"),
    (lambda: optim.sgd(0.1, momentum=0.9, nesterov="yes"), TypeError, "nesterov must be a bool"),
    (lambda: optim.adagrad(0.1, initial_accumulator_value=-1.0), ValueError, "initial_accumulator_value"),
    (lambda: optim.get("adamw", 0.1), ValueError, "name must be one of 'gd', 'sgd'"),
])
def test_bad_hyper_parameters(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


def test_apply_updates_errors():
    with pytest.raises(ValueError, match="updates must have the same pytree structure as params"):
        optim.apply_updates(P, {"w": jnp.ones((2, 3))})
    with pytest.raises(ValueError, match=r"updates\['w'\] must have shape \(2, 3\)"):
        optim.apply_updates(P, {"w": jnp.ones((3, 2)), "b": jnp.ones(3)})
    with pytest.raises(TypeError, match=r"updates\['b'\] must be a floating-point array"):
        optim.apply_updates(P, {"w": jnp.ones((2, 3)), "b": np.arange(3)})


def test_constructors_work_under_vmap_over_hyper_parameters():
    """Hyper-parameters may be traced (the optimizer race precomputes a grid in one vmapped call)."""
    loss, p0 = PROBLEMS["bowl"]

    def final(lr):
        opt = optim.momentum(lr, beta=0.9)
        p, s = p0, opt.init(p0)
        for _ in range(5):
            u, s = opt.update(jax.grad(loss)(p), s)
            p = optim.apply_updates(p, u)
        return p

    lrs = jnp.array([1e-3, 1e-2])
    batched = jax.vmap(final)(lrs)
    for i, lr in enumerate([1e-3, 1e-2]):
        np.testing.assert_allclose(np.asarray(batched[i]), np.asarray(final(lr)), rtol=1e-12)


@pytest.mark.parametrize("make", [lambda: optim.sgd(0.1), lambda: optim.momentum(0.1), lambda: optim.nesterov(0.1),
                                  lambda: optim.adagrad(0.1), lambda: optim.rmsprop(0.1), lambda: optim.adam(0.1)],
                         ids=["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam"])
def test_update_without_params_rejects_gradients_shaped_unlike_the_params(make):
    """Every optimizer's state remembers the parameters' shapes (plain SGD records them at init):
    update, without params, rejects a gradient of another shape or structure, inside jit too,
    with the same message as apply_updates would give."""
    opt = make()
    state = opt.init(P)
    with pytest.raises(ValueError, match=r"^grads\['w'\] must have shape \(2, 3\) like params, got \(3, 2\)$"):
        opt.update({"w": jnp.ones((3, 2)), "b": jnp.ones(3)}, state)
    with pytest.raises(ValueError, match="^grads must have the same pytree structure as params"):
        opt.update({"w": jnp.ones((2, 3))}, state)
    with pytest.raises(ValueError, match=r"^grads\['b'\] must have shape \(3,\) like params, got \(4,\)"):
        jax.jit(opt.update)({"w": jnp.ones((2, 3)), "b": jnp.ones(4)}, state)
    updates, state = jax.jit(opt.update)({"w": jnp.ones((2, 3)), "b": jnp.ones(3)}, state)   # still usable
    updates, _ = opt.update({"w": jnp.ones((2, 3)), "b": jnp.ones(3)}, state)
    assert jax.tree_util.tree_map(jnp.shape, updates) == {"w": (2, 3), "b": (3,)}
