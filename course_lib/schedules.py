"""Learning-rate schedules: functions ``step -> learning rate``.

A schedule is a plain callable ``schedule(step)`` that works on a Python int, a NumPy/JAX integer
array (vectorised) and a traced step inside ``jax.jit`` (the optimizers in
:mod:`course_lib.optim` call it with their step counter). Each constructor returns numbers equal to
the optax schedule named in its docstring, and validates its hyper-parameters at construction.

Why decay at all? With a constant learning rate, stochastic gradients keep the iterate bouncing in a
band around the minimum whose width grows with the learning rate. Shrinking the rate late in
training shrinks that band, so the iterate *settles*. (It is not a way to "avoid local minima": a
small rate makes escaping a basin harder, not easier.) Warm-up does the opposite at the start: tiny
steps while the gradient statistics (Adam's second moment) are still unreliable.

Taught in: notebooks/07_optimizers.ipynb
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from course_lib._validation import check_int, check_number, check_option, is_concrete

__all__ = [
    "constant", "step_decay", "exponential_decay", "cosine_decay", "linear_warmup",
    "warmup_cosine_decay", "get", "evaluate", "NAMES",
]

Schedule = Callable[[object], jax.Array]


# ------------------------------------------------------------------ validation helpers
def _check_step(step):
    """Validate the argument of a schedule: a non-negative, finite step count (int or array)."""
    if isinstance(step, (str, bytes)) or step is None or isinstance(step, bool):
        raise TypeError(f"step must be an integer step count, got {type(step).__name__}")
    arr = step if isinstance(step, jax.Array) else np.asarray(step)
    if not (jnp.issubdtype(arr.dtype, jnp.integer) or jnp.issubdtype(arr.dtype, jnp.floating)):
        raise TypeError(f"step must be an integer step count, got dtype {arr.dtype}")
    if is_concrete(step):
        a = np.asarray(step)
        if not np.all(np.isfinite(a)):
            raise ValueError("step must be finite, got NaN or infinity")
        if np.any(a < 0):
            raise ValueError(f"step must be >= 0, got minimum {a.min()}")
    return step


def _public(core: Callable, doc: str) -> Schedule:
    def schedule(step):
        _check_step(step)
        return core(step)
    schedule.__doc__ = doc
    schedule.core = core  # the unvalidated formula, for show_source in the notebook
    return schedule


# ------------------------------------------------------------------ schedules
def constant(value) -> Schedule:
    """``lr(t) = value``.  Equals ``optax.constant_schedule(value)``."""
    value = check_number(value, "value")

    def core(step):
        return jnp.full(jnp.shape(step), value)
    return _public(core, f"constant({value})")


def step_decay(init_value, step_size: int, gamma: float = 0.1) -> Schedule:
    """Step decay: ``lr(t) = init_value * gamma ** floor(t / step_size)``.

    Divide the rate by ``1/gamma`` every ``step_size`` steps (the classic "divide by 10 at epochs 30,
    60, 90"). Equals ``optax.exponential_decay(init_value, step_size, gamma, staircase=True)``.
    """
    init_value = check_number(init_value, "init_value")
    step_size = check_int(step_size, "step_size", minimum=1)
    gamma = check_number(gamma, "gamma")
    if not 0 < gamma <= 1:
        raise ValueError(f"gamma must lie in (0, 1], got {gamma!r}")

    def core(step):
        return init_value * jnp.power(gamma, jnp.floor(step / step_size))
    return _public(core, f"step_decay({init_value}, step_size={step_size}, gamma={gamma})")


def exponential_decay(init_value, transition_steps: int, decay_rate: float, *,
                      staircase: bool = False, transition_begin: int = 0, end_value=None) -> Schedule:
    """``lr(t) = init_value * decay_rate ** ((t - transition_begin) / transition_steps)``.

    Constant ``init_value`` before ``transition_begin``; with ``staircase`` the exponent is floored;
    with ``end_value`` the rate never falls below it. Equals ``optax.exponential_decay`` with the
    same arguments.
    """
    init_value = check_number(init_value, "init_value")
    transition_steps = check_int(transition_steps, "transition_steps", minimum=1)
    transition_begin = check_int(transition_begin, "transition_begin", minimum=0)
    decay_rate = check_number(decay_rate, "decay_rate")
    if not 0 < decay_rate <= 1:
        raise ValueError(f"decay_rate must lie in (0, 1] for a decay, got {decay_rate!r}")
    if not isinstance(staircase, bool):
        raise TypeError(f"staircase must be a bool, got {type(staircase).__name__}")
    if end_value is not None:
        end_value = check_number(end_value, "end_value")

    def core(step):
        t = step - transition_begin
        p = t / transition_steps
        if staircase:
            p = jnp.floor(p)
        lr = jnp.where(t <= 0, init_value, init_value * jnp.power(decay_rate, p))
        return lr if end_value is None else jnp.maximum(lr, end_value)
    return _public(core, f"exponential_decay({init_value}, {transition_steps}, {decay_rate})")


def cosine_decay(init_value, decay_steps: int, alpha: float = 0.0) -> Schedule:
    """``lr(t) = init_value * ((1 - alpha) * 0.5 * (1 + cos(pi * min(t, T) / T)) + alpha)``, T = decay_steps.

    Falls smoothly from ``init_value`` to ``alpha * init_value`` at step T, then stays there.
    Equals ``optax.cosine_decay_schedule(init_value, decay_steps, alpha)``.
    """
    init_value = check_number(init_value, "init_value")
    decay_steps = check_int(decay_steps, "decay_steps", minimum=1)
    alpha = check_number(alpha, "alpha")
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha!r}")

    def core(step):
        t = jnp.minimum(step, float(decay_steps))
        cosine = 0.5 * (1 + jnp.cos(jnp.pi * t / decay_steps))
        return init_value * ((1 - alpha) * cosine + alpha)
    return _public(core, f"cosine_decay({init_value}, {decay_steps}, alpha={alpha})")


def linear_warmup(init_value, peak_value, warmup_steps: int) -> Schedule:
    """Linear ramp from ``init_value`` to ``peak_value`` over ``warmup_steps``, then constant.

    Equals ``optax.linear_schedule(init_value, peak_value, warmup_steps)``.
    """
    init_value = check_number(init_value, "init_value")
    peak_value = check_number(peak_value, "peak_value")
    warmup_steps = check_int(warmup_steps, "warmup_steps", minimum=1)

    def core(step):
        frac = 1 - jnp.clip(step, 0, warmup_steps) / warmup_steps
        return (init_value - peak_value) * frac + peak_value
    return _public(core, f"linear_warmup({init_value}, {peak_value}, {warmup_steps})")


def warmup_cosine_decay(init_value, peak_value, warmup_steps: int, decay_steps: int,
                        end_value=0.0) -> Schedule:
    """Linear warm-up to ``peak_value`` for ``warmup_steps``, then cosine decay to ``end_value``.

    ``decay_steps`` counts the *whole* schedule (warm-up included), as in
    ``optax.warmup_cosine_decay_schedule(init_value, peak_value, warmup_steps, decay_steps,
    end_value)``, which it equals.
    """
    init_value = check_number(init_value, "init_value")
    peak_value = check_number(peak_value, "peak_value")
    end_value = check_number(end_value, "end_value")
    warmup_steps = check_int(warmup_steps, "warmup_steps", minimum=1)
    decay_steps = check_int(decay_steps, "decay_steps", minimum=1)
    if decay_steps <= warmup_steps:
        raise ValueError(f"decay_steps must be larger than warmup_steps (it counts the whole "
                         f"schedule), got decay_steps={decay_steps}, warmup_steps={warmup_steps}")
    if peak_value <= 0:
        raise ValueError(f"peak_value must be > 0, got {peak_value!r}")
    warm = linear_warmup(init_value, peak_value, warmup_steps).core
    cos = cosine_decay(peak_value, decay_steps - warmup_steps, alpha=end_value / peak_value).core

    def core(step):
        return jnp.where(step < warmup_steps, warm(step), cos(step - warmup_steps))
    return _public(core, f"warmup_cosine_decay({init_value}, {peak_value}, {warmup_steps}, "
                         f"{decay_steps}, {end_value})")


_CONSTRUCTORS = {
    "constant": constant, "step": step_decay, "exponential": exponential_decay,
    "cosine": cosine_decay, "warmup": linear_warmup, "warmup_cosine": warmup_cosine_decay,
}
NAMES = tuple(_CONSTRUCTORS)


def get(name: str, *args, **kwargs) -> Schedule:
    """Build a schedule by name: one of ``NAMES`` ('constant', 'step', 'exponential', 'cosine',
    'warmup', 'warmup_cosine'); the remaining arguments go to its constructor."""
    check_option(name, "name", NAMES)
    return _CONSTRUCTORS[name](*args, **kwargs)


def evaluate(schedule: Schedule, num_steps: int) -> np.ndarray:
    """``[schedule(0), ..., schedule(num_steps - 1)]`` as a float64 NumPy array (for plotting)."""
    if not callable(schedule):
        raise TypeError(f"schedule must be callable (step -> lr), got {type(schedule).__name__}")
    num_steps = check_int(num_steps, "num_steps", minimum=1)
    return np.asarray(schedule(np.arange(num_steps)), dtype=np.float64)
