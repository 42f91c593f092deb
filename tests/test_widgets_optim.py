"""The optimizer race, driven headlessly: its trajectories are course_lib.optim's (checked step by
step against an eager run, and Adam's against optax), and moving a control changes the figure."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from course_lib import optim
from course_lib.widgets import optimizer_race as R


@pytest.fixture(scope="module")
def race():
    return R.build_optimizer_race()


def _eager_path(surface, name, lr, beta, steps):
    loss = lambda p: R.surface_value(surface, p[0], p[1], jnp)  # noqa: E731
    opt = R._make_optimizer(name, lr, beta)
    p = jnp.asarray(R.SURFACES[surface][1], jnp.float32)
    state = opt.init(p)
    path = [np.asarray(p)]
    for _ in range(steps):
        u, state = opt.update(jax.grad(loss)(p), state)
        p = optim.apply_updates(p, u)
        path.append(np.asarray(p))
    return np.array(path)


@pytest.mark.parametrize("surface, name, i_lr, beta", [
    ("rosenbrock", "momentum", 4, 0.9), ("saddle", "adam", 8, 0.5), ("bowl", "nesterov", 8, 0.8),
    ("bowl", "rmsprop", 6, 0.0), ("saddle", "adagrad", 10, 0.9), ("rosenbrock", "gd", 3, 0.99),
])
def test_precomputed_trajectories_are_course_lib_optim(race, surface, name, i_lr, beta):
    adaptive = R.OPTIMIZERS[name][2]
    lr = (R.LR_ADAPTIVE if adaptive else R.LR_PLAIN)[i_lr]
    path, loss = race.race[surface, name]
    got = path[i_lr, R.BETAS.index(beta), :61]
    want = _eager_path(surface, name, lr, beta, 60)
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-6)
    np.testing.assert_allclose(loss[i_lr, R.BETAS.index(beta), :61],
                               R.surface_value(surface, want[:, 0].astype(np.float64), want[:, 1]),
                               rtol=1e-4, atol=1e-5)


def test_adam_trajectory_equals_optax_float64():
    """The race uses course_lib.optim.adam; in float64 it is optax's trajectory on Rosenbrock."""
    assert jax.config.jax_enable_x64  # tests/conftest.py
    loss = lambda p: R.surface_value("rosenbrock", p[0], p[1], jnp)  # noqa: E731
    grad = jax.jit(jax.grad(loss))
    ours, ref = optim.adam(0.1, b1=0.8), optax.adam(0.1, b1=0.8)
    ref_update = jax.jit(ref.update)
    p = q = jnp.asarray([-1.2, 1.0], jnp.float64)
    s, t = ours.init(p), ref.init(q)
    for _ in range(100):
        u, s = ours.update(grad(p), s)
        p = optim.apply_updates(p, u)
        v, t = ref_update(grad(q), t)
        q = optax.apply_updates(q, v)
    np.testing.assert_allclose(np.asarray(p), np.asarray(q), rtol=1e-10, atol=1e-12)


def test_divergence_is_marked_nan_and_reported(race):
    race.controls["surface"].value = "bowl"
    race.controls["lr_plain"].value = R.LR_PLAIN[-1]    # 0.1 > 2 / 25: GD diverges along y
    race.controls["steps"].value = 300
    assert race.values["gd"]["diverged"]
    assert "diverged" in race.readout.value
    path, _ = race.race["bowl", "gd"]
    assert np.isnan(path[-1, 0, -1]).all()
    race.controls["lr_plain"].value = R.LR_PLAIN[10]    # 0.0316 < 0.08: converges
    assert not race.values["gd"]["diverged"]
    assert race.values["gd"]["loss"] < 1e-3


def test_controls_change_the_picture_and_the_artists(race):
    race.controls["surface"].value = "rosenbrock"
    race.controls["steps"].value = 300
    before_png = race.live.image.value
    before = race.lines["momentum"].get_xydata().copy()
    race.controls["beta"].value = 0.5
    assert race.live.image.value != before_png
    after = race.lines["momentum"].get_xydata()
    assert after.shape == before.shape and not np.allclose(after, before, equal_nan=True)
    png = race.live.image.value
    race.controls["steps"].value = 50
    assert race.live.image.value != png
    assert race.lines["adam"].get_xydata().shape == (51, 2)
    png = race.live.image.value
    race.controls["surface"].value = "saddle"
    assert race.live.image.value != png
    assert np.array_equal(race.image.get_array(), race.landscapes["saddle"])
    # the readout shows the numbers of the trajectory it draws
    i = R.LR_ADAPTIVE.index(race.controls["lr_adaptive"].value)
    path, loss = race.race["saddle", "adam"]
    assert race.values["adam"]["loss"] == pytest.approx(float(loss[i, R.BETAS.index(0.5), 50]))
    assert race.values["adam"]["x"] == pytest.approx(float(path[i, R.BETAS.index(0.5), 50, 0]))


def test_adam_is_invariant_to_gradient_scale():
    """Saddle and bowl have x-terms x^2 and x^2/2: Adam's x-coordinates coincide, GD's do not."""
    race = R.race_trajectories(num_steps=40)
    pa_s, _ = race["saddle", "adam"]
    pa_b, _ = race["bowl", "adam"]
    np.testing.assert_allclose(pa_s[..., 0], pa_b[..., 0], rtol=1e-5, atol=1e-6)
    pg_s, _ = race["saddle", "gd"]
    pg_b, _ = race["bowl", "gd"]
    assert not np.allclose(pg_s[3, 0, 1:, 0], pg_b[3, 0, 1:, 0])


@pytest.mark.parametrize("kwargs, exc, match", [
    ({"surface": "himmelblau"}, ValueError, "surface must be one of 'rosenbrock', 'saddle', 'bowl'"),
    ({"lr_plain": 5.0}, ValueError, r"lr_plain must be a finite number in \[0.0001, 0.1\]"),
    ({"lr_adaptive": "big"}, TypeError, "lr_adaptive must be a number"),
    ({"beta": 0.7}, ValueError, "beta must be one of"),
    ({"steps": 1000}, ValueError, r"steps must be an int <= 300"),
])
def test_builder_rejects_bad_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        R.build_optimizer_race(**kwargs)


@pytest.mark.parametrize("kwargs, match", [
    ({"betas": (0.9, 1.0)}, "betas must be a non-empty 1-D list of numbers in"),
    ({"lr_plain": (0.1, -0.1)}, "lr_plain must be a non-empty 1-D list"),
    ({"lr_plain": (0.1,), "lr_adaptive": (0.1, 0.2)}, "must have the same length"),
    ({"num_steps": 0}, "num_steps must be an int >= 1"),
])
def test_race_trajectories_rejects_bad_grids(kwargs, match):
    with pytest.raises(ValueError, match=match):
        R.race_trajectories(**kwargs)


def test_surface_value_unknown_name():
    with pytest.raises(ValueError, match="surface must be one of"):
        R.surface_value("ackley", 0.0, 0.0)


def test_cached_surface_backgrounds_redraw_identically():
    race = R.build_optimizer_race(steps=100)
    first = race.live.image.value
    race.controls["surface"].value = "saddle"
    saddle_png = race.live.image.value
    race.controls["surface"].value = "bowl"
    race.controls["surface"].value = "rosenbrock"          # cached background, blitted
    assert race.live.image.value == first
    race.controls["surface"].value = "saddle"
    assert race.live.image.value == saddle_png
