"""Gradient-based optimizers, written from scratch in optax's shape.

An optimizer is a pair of pure functions (a ``GradientTransformation``)::

    opt = optim.adam(1e-3)
    state = opt.init(params)                              # moments, step counter
    updates, state = opt.update(grads, state, params)     # the step to take (already * -lr)
    params = optim.apply_updates(params, updates)          # params + updates

``params``/``grads`` are any pytree of float arrays (a dict of weights, a list of layers...). The
numbers equal optax's (``optax.sgd``, ``optax.adagrad``, ``optax.rmsprop``, ``optax.adam``) for the
same hyper-parameters, so a learner can swap ours for optax's and see the same trajectory.
``learning_rate`` is a float or a schedule ``step -> lr`` from :mod:`course_lib.schedules`; the
schedule is evaluated at the step counter *before* it is incremented (first step uses ``lr(0)``).

GD, SGD and mini-batch SGD share one update rule, ``theta <- theta - lr * g``: they differ only in
which gradient ``g`` is fed in (the whole data set, one example, or a mini-batch of B examples).
What deep-learning frameworks call "SGD" is almost always mini-batch SGD.

Taught in: notebooks/07_optimizers.ipynb
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from course_lib._validation import (as_float_array, check_finite, check_number, check_option, check_tree,
                                    is_concrete)

__all__ = [
    "GradientTransformation", "ParamShapes", "SgdState", "AdagradState", "RmspropState", "AdamState",
    "gd", "sgd", "minibatch_sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam",
    "apply_updates", "get", "NAMES",
]


class GradientTransformation(NamedTuple):
    """``init(params) -> state`` and ``update(grads, state, params=None) -> (updates, state)``."""
    init: Callable
    update: Callable


@jax.tree_util.register_static
@dataclasses.dataclass(frozen=True)
class ParamShapes:
    """The structure and leaf shapes of the parameters, without their values. SGD's state records
    them at ``init`` (plain SGD keeps nothing else shaped like the parameters), so that ``update``
    rejects gradients of another shape. A static pytree node (no arrays): a state holding it passes
    through ``jax.jit`` and ``lax.scan``."""
    treedef: Any
    leaves: tuple   # one jax.ShapeDtypeStruct per parameter

    @classmethod
    def of(cls, params):
        leaves, treedef = jax.tree_util.tree_flatten(params)
        return cls(treedef, tuple(jax.ShapeDtypeStruct(jnp.shape(p), jnp.result_type(p)) for p in leaves))

    def tree(self):
        return jax.tree_util.tree_unflatten(self.treedef, self.leaves)


class SgdState(NamedTuple):
    count: jax.Array   # int32 step counter (for schedules)
    trace: Any         # velocity pytree (zeros-like params), or None without momentum
    shapes: ParamShapes  # the parameters' structure and shapes, recorded by init


class AdagradState(NamedTuple):
    count: jax.Array
    sum_of_squares: Any  # G_t = G_0 + sum_s g_s**2, elementwise


class RmspropState(NamedTuple):
    count: jax.Array
    nu: Any              # exponential moving average of g**2


class AdamState(NamedTuple):
    count: jax.Array
    mu: Any              # first moment m_t (EMA of g)
    nu: Any              # second moment v_t (EMA of g**2)


# ------------------------------------------------------------------ validation
def _learning_rate(lr):
    if callable(lr):
        return lr
    return check_number(lr, "learning_rate", low=0, low_open=True, grid=True)


@jax.jit
def _all_finite(leaves):
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))


def _check_grads(grads, state, params):
    """Structure, dtype and shape of grads against the parameters, or without them against the
    state (SGD records the parameters' shapes, the other methods' last entry has them);
    NaN/inf on concrete values."""
    if params is not None:
        check_tree(params, "params")
        like = params
    else:
        like = state.shapes.tree() if isinstance(state, SgdState) else state[-1]
    leaves = check_tree(grads, "grads", like=like)
    values = [g for _, g in leaves]
    if all(is_concrete(g) for g in values) and not bool(_all_finite(values)):
        for path, g in leaves:
            try:
                check_finite(g, f"grads{jax.tree_util.keystr(path)}")
            except ValueError as err:
                raise ValueError(f"{err}: the loss diverged (learning rate too high?) or the loss "
                                 f"itself is NaN") from None


def _make(name: str, init_core: Callable, update_core: Callable, learning_rate, **hyper
          ) -> GradientTransformation:
    """Wrap a pure ``update_core(grads, state, lr, **hyper)`` with validation.

    The core is jitted once per module (hyper-parameters and a float learning rate are *arguments*,
    so new optimizer instances reuse the compiled code; a schedule is a static argument). Called
    inside a user's ``jax.jit`` the core is simply inlined.
    """
    schedule = learning_rate if callable(learning_rate) else None
    lr = None if schedule is not None else learning_rate
    values = [lr, *hyper.values()]
    if all(is_concrete(v) for v in values):
        # Hyper-parameters are static (hashable Python numbers): XLA folds them as constants, the
        # way optax's closures do, and optimizers with equal hyper-parameters share one compile.
        lr = None if lr is None else float(lr)
        frozen = tuple((k, v if v is None or isinstance(v, bool) else float(v))
                       for k, v in hyper.items())
        run = functools.partial(_JITTED[update_core], lr=lr, schedule=schedule, frozen=frozen)
        spec = OptimizerSpec(name, update_core, lr, schedule, frozen)
    else:  # traced hyper-parameters (vmap over a grid): trace the pure core directly
        run = functools.partial(update_core, lr=lr, schedule=schedule, hyper=hyper)
        spec = None

    def init(params):
        check_tree(params, "params")
        return init_core(jax.tree_util.tree_map(lambda p: as_float_array(p, "params"), params), **hyper)

    def update(grads, state, params=None):
        if not isinstance(state, tuple) or not hasattr(state, "count"):
            raise TypeError(f"state must be the state returned by {name}.init(params), "
                            f"got {type(state).__name__}")
        _check_grads(grads, state, params)
        return run(grads, state)

    init.__doc__ = f"{name}: the initial optimizer state for ``params``."
    update.__doc__ = f"{name}: ``(grads, state, params=None) -> (updates, new_state)``."
    update.core = update_core  # the pure formula, shown in the notebook
    update.spec = spec          # hashable description, lets training.fit reuse one compiled epoch
    return GradientTransformation(init, update)


class OptimizerSpec(NamedTuple):
    """What an optimizer built with concrete hyper-parameters computes, as hashable data.

    ``lr`` is the float learning rate (None with a ``schedule``). Two optimizers with equal specs
    compute the same updates; :func:`traced_update` rebuilds the update with the learning rate as
    an argument, so :func:`course_lib.training.fit` compiles one epoch for every learning rate.
    """
    name: str
    core: Callable
    lr: Any
    schedule: Any
    frozen: tuple


def traced_update(spec: OptimizerSpec, lr):
    """``update(grads, state, params=None)`` of the optimizer ``spec`` with learning rate ``lr``
    (a traced scalar inside ``jax.jit``; ignored when the spec has a schedule). Same validation
    (structure/shape/dtype of the gradients) as the optimizer's own ``update``."""
    lr = None if spec.schedule is not None else lr

    def update(grads, state, params=None):
        _check_grads(grads, state, params)
        return spec.core(grads, state, lr=lr, schedule=spec.schedule, hyper=dict(spec.frozen))

    return update


_JITTED: dict = {}


def _register(core):
    """Jit ``core(grads, state, lr, schedule, hyper)`` with everything but the arrays static."""
    def frozen_core(grads, state, *, lr, schedule, frozen):
        return core(grads, state, lr=lr, schedule=schedule, hyper=dict(frozen))
    _JITTED[core] = jax.jit(frozen_core, static_argnames=("lr", "schedule", "frozen"))
    return core


def _full(p, value):
    """``jnp.full_like(p, value)``, built on the host when it can be: op by op, every new shape
    compiles its own small XLA program (Adam on a 2-layer MLP has 4), while a NumPy
    array moved with ``jax.device_put`` compiles nothing. Same values, dtype and weak type."""
    if (isinstance(p, jax.core.Tracer) or not is_concrete(value)
            or getattr(p, "weak_type", False)):
        return jnp.full_like(p, value)
    return jax.device_put(np.full(np.shape(p), value, dtype=jnp.result_type(p)))


def _zeros(params):
    return jax.tree_util.tree_map(lambda p: _full(p, 0), params)


def _count0():
    return jax.device_put(np.zeros((), np.int32))


def _scale_by_lr(updates, count, lr, schedule):
    """``-lr * updates``; with a schedule, ``lr = schedule(count)`` (count = steps taken so far)."""
    if schedule is not None:
        lr = schedule(count)
        return jax.tree_util.tree_map(lambda u: -jnp.asarray(lr, dtype=u.dtype) * u, updates)
    return jax.tree_util.tree_map(lambda u: -lr * u, updates)


def _tree(f, *trees):
    return jax.tree_util.tree_map(f, *trees)


# ------------------------------------------------------------------ plain, momentum, Nesterov
def _sgd_init(params, momentum, nesterov):
    return SgdState(_count0(), None if momentum is None else _zeros(params), ParamShapes.of(params))


@_register
def _sgd_update(grads, state, lr, schedule, hyper):
    beta = hyper["momentum"]
    if beta is None:                                            # plain (S)GD
        direction, trace = grads, None
    else:
        trace = _tree(lambda g, v: g + beta * v, grads, state.trace)       # v <- beta v + g
        direction = _tree(lambda g, v: g + beta * v, grads, trace) if hyper["nesterov"] else trace
    return _scale_by_lr(direction, state.count, lr, schedule), SgdState(state.count + 1, trace, state.shapes)


def sgd(learning_rate, momentum: float | None = None, nesterov: bool = False) -> GradientTransformation:
    """(Stochastic) gradient descent, optionally with (Nesterov) momentum.

    Without momentum:   ``theta <- theta - lr * g``.
    With momentum beta: ``v <- beta * v + g``,  ``theta <- theta - lr * v``            (heavy ball)
    Nesterov:           ``v <- beta * v + g``,  ``theta <- theta - lr * (g + beta * v)``

    ``v`` starts at 0. Equals ``optax.sgd(learning_rate, momentum, nesterov)``. (Some texts write
    ``v <- beta * v + (1 - beta) * g``: the same method with the learning rate scaled by 1 - beta.)
    """
    learning_rate = _learning_rate(learning_rate)
    if momentum is not None:
        momentum = check_number(momentum, "momentum", low=0.0, high=1.0, high_open=True, grid=True)
    if not isinstance(nesterov, bool):
        raise TypeError(f"nesterov must be a bool, got {type(nesterov).__name__}")
    if nesterov and momentum is None:
        raise ValueError("nesterov=True needs a momentum value (e.g. momentum=0.9)")
    return _make("sgd", _sgd_init, _sgd_update, learning_rate, momentum=momentum, nesterov=nesterov)


def gd(learning_rate) -> GradientTransformation:
    """Full-batch gradient descent, ``theta <- theta - lr * grad L(theta)`` over the whole data set.

    Same update as :func:`sgd` without momentum; "full batch" is about the gradient you pass in.
    """
    return sgd(learning_rate)


def minibatch_sgd(learning_rate) -> GradientTransformation:
    """Mini-batch SGD: :func:`sgd`'s update, fed the mean gradient of a batch of B examples.

    The estimate is unbiased and its variance falls like 1/B; B = 1 is "pure" SGD, B = N is GD.
    """
    return sgd(learning_rate)


def momentum(learning_rate, beta: float = 0.9) -> GradientTransformation:
    """Heavy-ball momentum (Polyak): ``v <- beta v + g``, ``theta <- theta - lr v``.

    Equals ``optax.sgd(learning_rate, momentum=beta)``.
    """
    return sgd(learning_rate, momentum=check_number(beta, "beta", low=0.0, high=1.0, high_open=True, grid=True))


def nesterov(learning_rate, beta: float = 0.9) -> GradientTransformation:
    """Nesterov momentum: ``v <- beta v + g``, ``theta <- theta - lr (g + beta v)``.

    The look-ahead form used by PyTorch and optax (Sutskever et al. 2013), which needs no gradient
    at a shifted point. Equals ``optax.sgd(learning_rate, momentum=beta, nesterov=True)``.
    """
    return sgd(learning_rate, momentum=check_number(beta, "beta", low=0.0, high=1.0, high_open=True, grid=True),
               nesterov=True)


# ------------------------------------------------------------------ adaptive methods
def _adagrad_init(params, initial_accumulator_value, eps):
    return AdagradState(_count0(), _tree(lambda p: _full(p, initial_accumulator_value), params))


@_register
def _adagrad_update(grads, state, lr, schedule, hyper):
    acc = _tree(lambda g, s: g * g + s, grads, state.sum_of_squares)          # G <- G + g^2
    direction = _tree(lambda g, s: jnp.where(s > 0, jax.lax.rsqrt(s + hyper["eps"]), 0.0) * g,
                      grads, acc)                                              # g / sqrt(G + eps)
    return _scale_by_lr(direction, state.count, lr, schedule), AdagradState(state.count + 1, acc)


def adagrad(learning_rate, initial_accumulator_value: float = 0.1, eps: float = 1e-7) -> GradientTransformation:
    """Adagrad: ``G <- G + g**2``,  ``theta <- theta - lr * g / sqrt(G + eps)``  (elementwise).

    ``G`` starts at ``initial_accumulator_value``. The effective step ``lr / sqrt(G)`` only ever
    shrinks. Equals ``optax.adagrad(learning_rate, initial_accumulator_value, eps)``.
    """
    learning_rate = _learning_rate(learning_rate)
    init_acc = check_number(initial_accumulator_value, "initial_accumulator_value", low=0.0, grid=True)
    eps = check_number(eps, "eps", low=0.0, grid=True)
    return _make("adagrad", _adagrad_init, _adagrad_update, learning_rate,
                 initial_accumulator_value=init_acc, eps=eps)


def _rmsprop_init(params, decay, eps):
    return RmspropState(_count0(), _zeros(params))


@_register
def _rmsprop_update(grads, state, lr, schedule, hyper):
    rho = hyper["decay"]
    nu = _tree(lambda g, s: (1 - rho) * (g * g) + rho * s, grads, state.nu)   # EMA of g^2
    direction = _tree(lambda g, s: jax.lax.rsqrt(s + hyper["eps"]) * g, grads, nu)
    return _scale_by_lr(direction, state.count, lr, schedule), RmspropState(state.count + 1, nu)


def rmsprop(learning_rate, decay: float = 0.9, eps: float = 1e-8) -> GradientTransformation:
    """RMSProp: ``s <- decay * s + (1 - decay) * g**2``,  ``theta <- theta - lr * g / sqrt(s + eps)``.

    ``s`` starts at 0 and is *not* bias-corrected. Equals ``optax.rmsprop(learning_rate, decay, eps)``.
    """
    learning_rate = _learning_rate(learning_rate)
    decay = check_number(decay, "decay", low=0.0, high=1.0, high_open=True, grid=True)
    eps = check_number(eps, "eps", low=0.0, grid=True)
    return _make("rmsprop", _rmsprop_init, _rmsprop_update, learning_rate, decay=decay, eps=eps)


def _adam_init(params, **hyper):
    return AdamState(_count0(), _zeros(params), _zeros(params))


@_register
def _adam_update(grads, state, lr, schedule, hyper):
    b1, b2, eps, eps_root = hyper["b1"], hyper["b2"], hyper["eps"], hyper["eps_root"]
    mu = _tree(lambda g, m: (1 - b1) * g + b1 * m, grads, state.mu)           # m <- EMA of g
    nu = _tree(lambda g, v: (1 - b2) * (g * g) + b2 * v, grads, state.nu)     # v <- EMA of g^2
    t = state.count + 1
    c1, c2 = 1 - b1 ** t, 1 - b2 ** t        # bias corrections: m, v start at 0; -> 1 as t grows
    mu_hat = _tree(lambda m: m / c1.astype(m.dtype), mu)
    nu_hat = _tree(lambda v: v / c2.astype(v.dtype), nu)
    direction = _tree(lambda m, v: m / (jnp.sqrt(v + eps_root) + eps), mu_hat, nu_hat)
    return _scale_by_lr(direction, state.count, lr, schedule), AdamState(t, mu, nu)


def adam(learning_rate, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8,
         eps_root: float = 0.0) -> GradientTransformation:
    """Adam (Kingma & Ba 2015), with bias correction::

        m <- b1 m + (1 - b1) g            v <- b2 v + (1 - b2) g**2
        m_hat = m / (1 - b1**t)           v_hat = v / (1 - b2**t)        (t = 1, 2, ...)
        theta <- theta - lr * m_hat / (sqrt(v_hat + eps_root) + eps)

    ``m`` and ``v`` start at 0, so both are biased towards zero at first (``m_1 = 0.1 g``,
    ``v_1 = 0.001 g**2`` with the default betas); dividing by ``1 - b**t`` (small at first, -> 1)
    removes the bias, and the first step is ``lr * g / (|g| + eps)``, about ``lr`` in size whatever
    the scale of the gradient. Without the correction the step ``m / sqrt(v)`` would be
    ``(1 - b1**t) / sqrt(1 - b2**t)`` times the corrected one: with the default betas 3.2 times too
    *large* at t = 1 (the uncorrected ``v`` is the bigger error), not too small.
    Equals ``optax.adam(learning_rate, b1, b2, eps, eps_root)``.
    """
    learning_rate = _learning_rate(learning_rate)
    b1 = check_number(b1, "b1", low=0.0, high=1.0, high_open=True, grid=True)
    b2 = check_number(b2, "b2", low=0.0, high=1.0, high_open=True, grid=True)
    eps = check_number(eps, "eps", low=0.0, grid=True)
    eps_root = check_number(eps_root, "eps_root", low=0.0, grid=True)
    return _make("adam", _adam_init, _adam_update, learning_rate,
                 b1=b1, b2=b2, eps=eps, eps_root=eps_root)


# ------------------------------------------------------------------ helpers
def apply_updates(params, updates):
    """``params + updates`` leaf by leaf, keeping each parameter's dtype (like optax.apply_updates)."""
    check_tree(params, "params")
    check_tree(updates, "updates", like=params)
    return _apply_updates(params, updates)


@jax.jit
def _apply_updates(params, updates):
    return jax.tree_util.tree_map(lambda p, u: (p + u).astype(jnp.asarray(p).dtype), params, updates)


_CONSTRUCTORS = {
    "gd": gd, "sgd": sgd, "minibatch_sgd": minibatch_sgd, "momentum": momentum,
    "nesterov": nesterov, "adagrad": adagrad, "rmsprop": rmsprop, "adam": adam,
}
NAMES = tuple(_CONSTRUCTORS)


def get(name: str, learning_rate, **hyper) -> GradientTransformation:
    """Build an optimizer by name (one of ``NAMES``), e.g. ``get("adam", 1e-3, b1=0.9)``."""
    check_option(name, "name", NAMES)
    return _CONSTRUCTORS[name](learning_rate, **hyper)
