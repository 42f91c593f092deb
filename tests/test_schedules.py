"""course_lib.schedules against optax's schedules, and the errors for bad arguments."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from course_lib import schedules

STEPS = np.arange(0, 400)

CASES = {
    "constant": (lambda: schedules.constant(0.03), lambda: optax.constant_schedule(0.03)),
    "step": (lambda: schedules.step_decay(0.1, 30, 0.5),
             lambda: optax.exponential_decay(0.1, 30, 0.5, staircase=True)),
    "step_default_gamma": (lambda: schedules.step_decay(1.0, 100),
                           lambda: optax.exponential_decay(1.0, 100, 0.1, staircase=True)),
    "exponential": (lambda: schedules.exponential_decay(0.1, 20, 0.9),
                    lambda: optax.exponential_decay(0.1, 20, 0.9)),
    "exponential_full": (
        lambda: schedules.exponential_decay(0.2, 25, 0.7, staircase=True, transition_begin=40,
                                            end_value=0.01),
        lambda: optax.exponential_decay(0.2, 25, 0.7, transition_begin=40, staircase=True,
                                        end_value=0.01)),
    "cosine": (lambda: schedules.cosine_decay(0.1, 250), lambda: optax.cosine_decay_schedule(0.1, 250)),
    "cosine_alpha": (lambda: schedules.cosine_decay(0.5, 120, alpha=0.2),
                     lambda: optax.cosine_decay_schedule(0.5, 120, alpha=0.2)),
    "warmup": (lambda: schedules.linear_warmup(0.0, 0.3, 50), lambda: optax.linear_schedule(0.0, 0.3, 50)),
    "warmup_cosine": (lambda: schedules.warmup_cosine_decay(0.0, 0.1, 30, 300, 0.001),
                      lambda: optax.warmup_cosine_decay_schedule(0.0, 0.1, 30, 300, 0.001)),
    "warmup_cosine_from_nonzero": (
        lambda: schedules.warmup_cosine_decay(0.01, 1.0, 1, 200),
        lambda: optax.warmup_cosine_decay_schedule(0.01, 1.0, 1, 200)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_schedule_equals_optax_per_step_and_vectorised(name):
    ours, ref = CASES[name][0](), CASES[name][1]()
    want = np.array([float(ref(int(t))) for t in STEPS])
    per_step = np.array([float(ours(int(t))) for t in STEPS])
    np.testing.assert_allclose(per_step, want, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(np.asarray(ours(STEPS)), want, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(schedules.evaluate(ours, len(STEPS)), want, rtol=1e-12, atol=1e-15)
    # an int32 step traced under jit, as inside an optimizer's update (int32 counter): optax then
    # divides in float32 for some schedules, and ours must do exactly the same (both compiled: XLA
    # may fold a division by a constant differently from eager op-by-op evaluation)
    jitted, ref_jitted = jax.jit(ours), jax.jit(ref)
    for t in (0, 7, 123, 399):
        c = jnp.asarray(t, jnp.int32)
        np.testing.assert_allclose(float(jitted(c)), float(ref_jitted(c)), rtol=1e-12, atol=1e-15)


def test_shapes_of_the_schedules_a_reader_can_check_by_hand():
    s = schedules.step_decay(0.1, 30, 0.1)
    np.testing.assert_allclose([float(s(t)) for t in (0, 29, 30, 59, 60)],
                               [0.1, 0.1, 0.01, 0.01, 0.001], rtol=1e-12)
    c = schedules.cosine_decay(1.0, 100, alpha=0.1)
    np.testing.assert_allclose([float(c(0)), float(c(50)), float(c(100)), float(c(1000))],
                               [1.0, 0.55, 0.1, 0.1], rtol=1e-12)
    w = schedules.warmup_cosine_decay(0.0, 1.0, 10, 110)
    np.testing.assert_allclose([float(w(0)), float(w(5)), float(w(10)), float(w(60)), float(w(110))],
                               [0.0, 0.5, 1.0, 0.5, 0.0], atol=1e-12)


def test_get_by_name():
    np.testing.assert_allclose(np.asarray(schedules.get("cosine", 0.1, 50)(STEPS[:60])),
                               np.asarray(schedules.cosine_decay(0.1, 50)(STEPS[:60])), rtol=0)
    assert set(schedules.NAMES) == {"constant", "step", "exponential", "cosine", "warmup",
                                    "warmup_cosine"}


@pytest.mark.parametrize("make, exc, match", [
    (lambda: schedules.get("linear", 0.1), ValueError, "name must be one of 'constant'"),
    (lambda: schedules.constant("fast"), TypeError, "value must be a number"),
    (lambda: schedules.constant(float("nan")), ValueError, "value must be a finite number"),
    (lambda: schedules.step_decay(0.1, 0), ValueError, "step_size must be an int >= 1"),
    (lambda: schedules.step_decay(0.1, 2.5), TypeError, "step_size must be an int"),
    (lambda: schedules.step_decay(0.1, 10, gamma=2.0), ValueError, r"gamma must lie in \(0, 1\]"),
    (lambda: schedules.exponential_decay(0.1, -5, 0.9), ValueError, "transition_steps must be an int >= 1"),
    (lambda: schedules.exponential_decay(0.1, 5, 0.0), ValueError, "decay_rate must lie in"),
    (lambda: schedules.exponential_decay(0.1, 5, 0.9, staircase="yes"), TypeError, "staircase must be a bool"),
    (lambda: schedules.exponential_decay(0.1, 5, 0.9, transition_begin=-1), ValueError, "transition_begin"),
    (lambda: schedules.cosine_decay(0.1, 100, alpha=1.5), ValueError, r"alpha must lie in \[0, 1\]"),
    (lambda: schedules.cosine_decay(0.1, True), TypeError, "decay_steps must be an int"),
    (lambda: schedules.linear_warmup(0.0, 0.1, 0), ValueError, "warmup_steps must be an int >= 1"),
    (lambda: schedules.warmup_cosine_decay(0.0, 0.1, 100, 50), ValueError,
     "decay_steps must be larger than warmup_steps"),
    (lambda: schedules.warmup_cosine_decay(0.0, 0.0, 10, 50), ValueError, "peak_value must be > 0"),
    (lambda: schedules.evaluate("cosine", 10), TypeError, "schedule must be callable"),
    (lambda: schedules.evaluate(schedules.constant(1.0), 0), ValueError, "num_steps must be an int >= 1"),
])
def test_bad_arguments(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


@pytest.mark.parametrize("step, exc, match", [
    (-1, ValueError, "step must be >= 0"),
    (np.array([0, 5, -3]), ValueError, "step must be >= 0"),
    (float("nan"), ValueError, "step must be finite"),
    ("10", TypeError, "step must be an integer step count"),
    (None, TypeError, "step must be an integer step count"),
    (np.array([1 + 2j]), TypeError, "step must be an integer step count"),
])
def test_bad_step(step, exc, match):
    s = schedules.cosine_decay(0.1, 10)
    with pytest.raises(exc, match=match):
        s(step)
