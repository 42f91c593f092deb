"""Reinforcement learning from scratch: bandits, a grid world, value iteration, REINFORCE, shaping.

A *reward function* r(s, a) scores what the agent did; the agent maximises the expected discounted
return G_t = sum_k gamma^k r_{t+k}. It is not an activation function (it is not part of any network)
and not a loss (nothing differentiates through it: the policy gradient only needs its values).

Contents
- Multi-armed bandit: :func:`run_bandit` with strategies "greedy", "epsilon_greedy" and "ucb"
  (UCB1: a_t = argmax_a Q_a + c sqrt(ln t / N_a)); :func:`bandit_experiment` averages many runs of
  several strategies in one compiled call. Random tables are drawn with NumPy (:func:`bandit_tables`).
- Policy gradient on a bandit: :func:`reinforce_bandit_samples` returns per-sample REINFORCE
  estimates (r - b) grad log pi_theta(a) of grad J(theta), J(theta) = sum_a pi_theta(a) mu_a.
- Grid world: :func:`make_gridworld` builds transition probabilities P[s, a, s'] and expected rewards
  R[s, a]; :func:`value_iteration` solves V*(s) = max_a R[s,a] + gamma sum_s' P[s,a,s'] V*(s');
  :func:`policy_evaluation` solves V^pi = (I - gamma P^pi)^-1 R^pi exactly.
- Reward shaping: :func:`shape_rewards` adds F = gamma Phi(s') - Phi(s) (potential-based shaping,
  which provably keeps the optimal policy; Ng, Harada & Russell 1999) or any bonus you give it.
- :func:`reinforce_gridworld`: REINFORCE with a tabular softmax policy (or a small network, via
  ``logits_fn``: :func:`init_policy_network`, :func:`policy_network_logits`), episodes rolled out
  with ``lax.scan``, all episodes of a call in one compiled function; :func:`policy_table` gives
  pi(a|s) for exact evaluation with :func:`policy_evaluation`.

Taught in: notebooks/14_reinforcement_learning.ipynb
"""
from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from course_lib._validation import as_float_array, check_finite, check_int, check_ndim, check_number, check_option

__all__ = [
    "BANDIT_STRATEGIES", "bandit_tables", "run_bandit", "bandit_experiment", "reinforce_bandit_samples",
    "bandit_objective",
    "GridWorld", "make_gridworld", "ACTIONS", "value_iteration", "policy_evaluation", "greedy_policy",
    "shape_rewards", "reinforce_gridworld", "rollout_return", "init_policy_network",
    "policy_network_logits", "policy_table",
]

BANDIT_STRATEGIES = ("greedy", "epsilon_greedy", "ucb")
#: Grid-world actions: index -> (row step, column step).
ACTIONS = {"up": (-1, 0), "right": (0, 1), "down": (1, 0), "left": (0, -1)}
_MOVES = np.array(list(ACTIONS.values()))


# ----------------------------------------------------------------------------------------- bandits
def _means(means):
    means = as_float_array(means, "means", allow_int=True)
    check_ndim(means, "means", 1)
    check_finite(means, "means")
    if means.shape[0] < 2:
        raise ValueError(f"means must hold at least 2 arms, got {means.shape[0]}")
    return means


def bandit_tables(seed: int, steps: int, n_arms: int, runs=None):
    """All randomness of one bandit run, drawn up front with NumPy: ``(noise, explore_u, explore_arm)``.

    Reward at step t for arm a is ``means[a] + reward_std * noise[t, a]``; epsilon-greedy explores at
    step t when ``explore_u[t] < epsilon`` and then plays ``explore_arm[t]``. Drawing the tables first
    makes a run reproducible and lets a test replay it with an independent implementation.
    With ``runs=R`` the tables of runs seed, seed+1, ..., seed+R-1 are stacked on a leading axis.
    (NumPy, not jax.random: drawing in JAX would cost seconds of compilation for a few ms of work.)
    """
    seed, steps = check_int(seed, "seed", minimum=0), check_int(steps, "steps", minimum=1)
    n_arms = check_int(n_arms, "n_arms", minimum=2)
    if runs is not None:
        tables = [bandit_tables(seed + k, steps, n_arms) for k in range(check_int(runs, "runs", minimum=1))]
        return tuple(np.stack(parts) for parts in zip(*tables))
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((steps, n_arms))
    explore_u = rng.random(steps)
    explore_arm = rng.integers(0, n_arms, steps).astype(np.int32)
    return noise, explore_u, explore_arm


def _bandit_core(means, code, noise, explore_u, explore_arm, epsilon, c, reward_std):
    """One bandit run; ``code`` = index of the strategy in BANDIT_STRATEGIES (traced, so one compile
    serves every strategy: all three choices are computed, the code selects one)."""
    n_arms = means.shape[0]

    def step(carry, inputs):
        q, n = carry
        t, z, u, rand_arm = inputs
        greedy = jnp.argmax(q)
        eps_arm = jnp.where(u < epsilon, rand_arm, greedy)
        bonus = c * jnp.sqrt(jnp.log(t + 1.0) / jnp.maximum(n, 1))
        ucb_arm = jnp.where(jnp.any(n == 0), jnp.argmin(n), jnp.argmax(q + bonus))  # play each arm once
        arm = jnp.select([code == 1, code == 2], [eps_arm, ucb_arm], greedy)
        reward = means[arm] + reward_std * z[arm]
        n = n.at[arm].add(1)
        q = q.at[arm].add((reward - q[arm]) / n[arm])  # incremental sample mean
        return (q, n), (arm, reward)

    init = (jnp.zeros(n_arms, means.dtype), jnp.zeros(n_arms, jnp.int32))
    t = jnp.arange(noise.shape[0], dtype=means.dtype)
    (q, n), (arms, rewards) = jax.lax.scan(step, init, (t, noise, explore_u, explore_arm))
    regret = jnp.cumsum(jnp.max(means) - means[arms])
    return {"actions": arms, "rewards": rewards, "regret": regret, "estimates": q, "counts": n}


_run_bandit = jax.jit(_bandit_core)


def _check_bandit_options(strategy, epsilon, c, reward_std):
    check_option(strategy, "strategy", BANDIT_STRATEGIES)
    check_number(epsilon, "epsilon", low=0)
    if float(epsilon) > 1:
        raise ValueError(f"epsilon must be a probability in [0, 1], got {epsilon!r}")
    check_number(c, "c", low=0)
    check_number(reward_std, "reward_std", low=0)


def run_bandit(means, strategy: str = "epsilon_greedy", *, steps: int = 1000, seed: int = 0,
               epsilon: float = 0.1, c: float = 2.0, reward_std: float = 1.0):
    """Play a Gaussian multi-armed bandit with one strategy.

    Returns a dict: ``actions`` (steps,), ``rewards`` (steps,), ``regret`` (cumulative
    sum_t max(mu) - mu_{a_t}), ``estimates`` Q (n_arms,) and ``counts`` N (n_arms,).
    Q is the running sample mean: Q_a <- Q_a + (r - Q_a) / N_a.
    """
    means = _means(means)
    _check_bandit_options(strategy, epsilon, c, reward_std)
    noise, u, arm = bandit_tables(seed, steps, means.shape[0])
    dt = means.dtype
    return _run_bandit(means, jnp.int32(BANDIT_STRATEGIES.index(strategy)), jnp.asarray(noise, dt),
                       jnp.asarray(u, dt), jnp.asarray(arm), jnp.asarray(epsilon, dt), jnp.asarray(c, dt),
                       jnp.asarray(reward_std, dt))


@jax.jit
def _bandit_experiment(means, tables, codes, epsilons, cs, reward_std):
    best = jnp.argmax(means)

    def one_config(code, eps, c):
        out = jax.vmap(lambda z, u, a: _bandit_core(means, code, z, u, a, eps, c, reward_std))(*tables)
        return {"average_reward": out["rewards"].mean(axis=0),
                "optimal_fraction": (out["actions"] == best).mean(axis=0, dtype=means.dtype),
                "regret": out["regret"].mean(axis=0),
                "final_regret": out["regret"][:, -1]}

    return jax.lax.map(lambda args: one_config(*args), (codes, epsilons, cs))


def _per_config(value, name, n):
    """One float or one float per configuration -> float array of shape (n,)."""
    arr = np.asarray(value, dtype=float)
    if arr.ndim == 0:
        return np.full(n, float(arr))
    if arr.shape != (n,):
        raise ValueError(f"{name} must be one value or one per strategy ({n}), got shape {arr.shape}")
    return arr


def bandit_experiment(means, strategies, *, epsilon=0.1, c=2.0, runs: int = 200, steps: int = 1000,
                      seed: int = 0, reward_std: float = 1.0):
    """Many independent runs of several bandit strategies, averaged: the curves of a bandit study.

    ``strategies``: one name or a sequence of E names from :data:`BANDIT_STRATEGIES`; ``epsilon`` and
    ``c``: one value or one per strategy (E,). Run k uses the random tables of ``seed + k``, so it is
    exactly ``run_bandit(means, strategy, seed=seed + k, ...)``. Every configuration is computed by
    one compiled call. Returns numpy arrays with a leading axis over the E configurations:
    ``average_reward`` (E, steps): mean over runs of the reward at step t; ``optimal_fraction``
    (E, steps): fraction of runs that played the best arm at step t; ``regret`` (E, steps): mean
    cumulative regret sum_{s<=t} max(mu) - mu_{a_s}; ``final_regret`` (E, runs).
    """
    means = _means(means)
    names = [strategies] if isinstance(strategies, str) else list(strategies)
    if not names:
        raise ValueError("strategies must name at least one strategy")
    E = len(names)
    eps, cs = _per_config(epsilon, "epsilon", E), _per_config(c, "c", E)
    for name, e, ci in zip(names, eps, cs):
        if not (np.isfinite(e) and np.isfinite(ci)):
            raise ValueError(f"epsilon and c must be finite, got epsilon={e!r}, c={ci!r}")
        _check_bandit_options(name, e, ci, reward_std)
    runs, steps = check_int(runs, "runs", minimum=1), check_int(steps, "steps", minimum=1)
    seed = check_int(seed, "seed", minimum=0)
    dt = means.dtype
    codes = jnp.asarray([BANDIT_STRATEGIES.index(n) for n in names], jnp.int32)
    noise, u, arm = bandit_tables(seed, steps, means.shape[0], runs=runs)
    tables = (jnp.asarray(noise, dt), jnp.asarray(u, dt), jnp.asarray(arm))
    out = _bandit_experiment(means, tables, codes, jnp.asarray(eps, dt), jnp.asarray(cs, dt),
                             jnp.asarray(reward_std, dt))
    return {k: np.asarray(v) for k, v in out.items()}


def bandit_objective(theta, means):
    """J(theta) = E_{a ~ softmax(theta)}[mu_a] = sum_a softmax(theta)_a mu_a (the exact objective)."""
    return jnp.sum(jax.nn.softmax(theta) * means)


@jax.jit
def _reinforce_samples(theta, arms, rewards, baseline):
    probs = jax.nn.softmax(theta)
    # grad_theta log softmax(theta)_a = onehot(a) - pi  (written by hand, no autodiff)
    score = jax.nn.one_hot(arms, theta.shape[0], dtype=theta.dtype) - probs
    return (rewards - baseline)[:, None] * score


def reinforce_bandit_samples(theta, means, *, n_samples: int = 1000, seed: int = 0,
                             reward_std: float = 1.0, baseline: float = 0.0):
    """Per-sample REINFORCE estimates of grad J(theta), shape (n_samples, n_arms).

    Each row is (r - b) (onehot(a) - softmax(theta)) for one action a ~ pi_theta and reward
    r ~ N(mu_a, reward_std^2). Its expectation is grad J(theta) for any constant baseline b (the
    baseline only changes the variance). Actions and rewards are drawn with NumPy (seeded).
    """
    means = _means(means)
    theta = as_float_array(theta, "theta")
    check_ndim(theta, "theta", 1)
    check_finite(theta, "theta")
    if theta.shape != means.shape:
        raise ValueError(f"theta must have one logit per arm, shape {means.shape}, got {theta.shape}")
    check_number(reward_std, "reward_std", low=0)
    if not np.isfinite(float(baseline)):
        raise ValueError(f"baseline must be finite, got {baseline!r}")
    n_samples = check_int(n_samples, "n_samples", minimum=1)
    rng = np.random.default_rng(check_int(seed, "seed", minimum=0))
    t64 = np.asarray(theta, dtype=float)
    probs = np.exp(t64 - t64.max())
    cdf = np.cumsum(probs / probs.sum())
    arms = np.minimum(np.searchsorted(cdf, rng.random(n_samples), side="right"), len(cdf) - 1)
    rewards = np.asarray(means, dtype=float)[arms] + float(reward_std) * rng.standard_normal(n_samples)
    dt = theta.dtype
    return _reinforce_samples(theta, jnp.asarray(arms, jnp.int32), jnp.asarray(rewards, dt),
                              jnp.asarray(float(baseline), dt))


# -------------------------------------------------------------------------------------- grid world
class GridWorld(NamedTuple):
    """A finite MDP on a grid. States are the non-wall cells, numbered row by row."""
    P: np.ndarray          # (S, A, S) transition probabilities
    R: np.ndarray          # (S, A) expected immediate reward
    terminal: np.ndarray   # (S,) bool; terminal states are absorbing with reward 0
    start: int             # index of the start state
    cells: np.ndarray      # (S, 2) row, column of each state
    shape: tuple           # grid (rows, columns)
    layout: tuple          # the layout strings


def make_gridworld(layout, *, step_reward: float = -0.04, goal_reward: float = 1.0,
                   pit_reward: float = -1.0, slip: float = 0.0) -> GridWorld:
    """Build a grid world from strings: ``.`` free, ``#`` wall, ``S`` start, ``G`` goal, ``X`` pit.

    Moving into a wall or off the grid leaves the agent in place. With probability ``slip`` the move
    goes to one of the two perpendicular directions instead (``slip/2`` each). Entering G or X ends
    the episode with ``goal_reward``/``pit_reward``; every other move costs ``step_reward``.
    """
    if isinstance(layout, str) or not all(isinstance(row, str) for row in layout):
        raise TypeError("layout must be a sequence of strings, one per grid row")
    layout = tuple(layout)
    if not layout or len({len(r) for r in layout}) != 1 or len(layout[0]) == 0:
        raise ValueError("layout must be non-empty rows of equal length")
    bad = set("".join(layout)) - set(".#SGX")
    if bad:
        raise ValueError(f"layout may only contain . # S G X, got {''.join(sorted(bad))!r}")
    if "".join(layout).count("S") != 1 or "G" not in "".join(layout):
        raise ValueError("layout must contain exactly one start 'S' and at least one goal 'G'")
    if not 0.0 <= float(slip) <= 1.0:
        raise ValueError(f"slip must be a probability in [0, 1], got {slip!r}")
    for name, value in (("step_reward", step_reward), ("goal_reward", goal_reward), ("pit_reward", pit_reward)):
        if not np.isfinite(float(value)):
            raise ValueError(f"{name} must be finite, got {value!r}")
    rows, cols = len(layout), len(layout[0])
    cells = np.array([(r, c) for r in range(rows) for c in range(cols) if layout[r][c] != "#"])
    index = {tuple(rc): i for i, rc in enumerate(cells)}
    n = len(cells)
    kinds = np.array([layout[r][c] for r, c in cells])
    terminal = np.isin(kinds, ["G", "X"])
    P = np.zeros((n, 4, n))
    R = np.zeros((n, 4))
    for s, (r, c) in enumerate(cells):
        if terminal[s]:
            P[s, :, s] = 1.0
            continue
        for a in range(4):
            outcomes = [(a, 1.0 - slip), ((a + 1) % 4, slip / 2), ((a + 3) % 4, slip / 2)]
            for move, prob in outcomes:
                if prob == 0:
                    continue
                nr, nc = r + _MOVES[move][0], c + _MOVES[move][1]
                s2 = index.get((nr, nc), s)
                P[s, a, s2] += prob
                reward = {"G": goal_reward, "X": pit_reward}.get(kinds[s2], step_reward)
                R[s, a] += prob * reward
    start = int(np.flatnonzero(kinds == "S")[0])
    return GridWorld(P, R, terminal, start, cells, (rows, cols), layout)


def _gamma(gamma):
    g = float(gamma)
    if not 0.0 <= g < 1.0:
        raise ValueError(f"gamma must be in [0, 1) so that returns are finite, got {gamma!r}")
    return g


def _world(world):
    if not isinstance(world, GridWorld):
        raise TypeError(f"world must be a GridWorld (from make_gridworld), got {type(world).__name__}")
    return world


def value_iteration(world: GridWorld, gamma: float = 0.95, *, tol: float = 1e-10, max_iter: int = 100_000):
    """Solve the Bellman optimality equation by fixed-point iteration.

    V_{k+1}(s) = max_a [ R(s,a) + gamma sum_s' P(s,a,s') V_k(s') ], stopped when
    max |V_{k+1} - V_k| < tol. Returns ``(V, policy, n_iterations)`` with the greedy policy.
    """
    world, gamma = _world(world), _gamma(gamma)
    check_number(tol, "tol", low=0, low_open=True)
    V = np.zeros(len(world.cells))
    for k in range(1, check_int(max_iter, "max_iter", minimum=1) + 1):
        Q = world.R + gamma * world.P @ V
        V_new = Q.max(axis=1)
        if np.max(np.abs(V_new - V)) < tol:
            return V_new, Q.argmax(axis=1), k
        V = V_new
    raise RuntimeError(f"value iteration did not converge to tol={tol} in {max_iter} iterations")


def greedy_policy(world: GridWorld, V, gamma: float = 0.95):
    """argmax_a R(s,a) + gamma sum_s' P(s,a,s') V(s') for every state."""
    world, gamma = _world(world), _gamma(gamma)
    V = np.asarray(V, dtype=float)
    if V.shape != (len(world.cells),):
        raise ValueError(f"V must have shape ({len(world.cells)},), got {V.shape}")
    return (world.R + gamma * world.P @ V).argmax(axis=1)


def policy_evaluation(world: GridWorld, policy, gamma: float = 0.95):
    """Exact value of a deterministic (S,) or stochastic (S, A) policy: solve (I - gamma P^pi) V = R^pi."""
    world, gamma = _world(world), _gamma(gamma)
    n = len(world.cells)
    policy = np.asarray(policy)
    if policy.shape == (n,):
        if not np.issubdtype(policy.dtype, np.integer) or policy.min() < 0 or policy.max() > 3:
            raise ValueError("policy of shape (S,) must hold action indices 0..3")
        policy = np.eye(4)[policy]
    elif policy.shape != (n, 4):
        raise ValueError(f"policy must have shape ({n},) or ({n}, 4), got {policy.shape}")
    elif not np.allclose(policy.sum(axis=1), 1.0) or (policy < 0).any():
        raise ValueError("policy rows of shape (S, 4) must be probability distributions")
    P_pi = np.einsum("sa,sat->st", policy, world.P)
    R_pi = np.einsum("sa,sa->s", policy, world.R)
    return np.linalg.solve(np.eye(n) - gamma * P_pi, R_pi)


def shape_rewards(world: GridWorld, potential=None, gamma: float = 0.95, *, bonus=None) -> GridWorld:
    """Return a copy of ``world`` with shaped rewards.

    ``potential`` Phi (S,): potential-based shaping R'(s,a) = R(s,a) + gamma E[Phi(s')] - Phi(s),
    with Phi taken as 0 at terminal states. It changes values but provably not the optimal policy.
    ``bonus`` (S,): a naive shaping R'(s,a) = R(s,a) + E[bonus(s')], which can change the optimal
    policy (e.g. an agent that loops around a bonus cell instead of finishing).
    """
    world, gamma = _world(world), _gamma(gamma)
    n = len(world.cells)
    R = world.R.copy()
    live = ~world.terminal
    if potential is not None:
        phi = np.asarray(potential, dtype=float)
        if phi.shape != (n,) or not np.all(np.isfinite(phi)):
            raise ValueError(f"potential must be {n} finite values, one per state, got shape {phi.shape}")
        phi = np.where(world.terminal, 0.0, phi)
        R[live] += gamma * (world.P @ phi)[live] - phi[live, None]
    if bonus is not None:
        b = np.asarray(bonus, dtype=float)
        if b.shape != (n,) or not np.all(np.isfinite(b)):
            raise ValueError(f"bonus must be {n} finite values, one per state")
        R[live] += (world.P @ b)[live]
    if potential is None and bonus is None:
        raise ValueError("give a potential or a bonus (or both)")
    return world._replace(R=R)


def rollout_return(world: GridWorld, policy, gamma: float = 0.95, *, episodes: int = 1000,
                   max_steps: int = 200, seed: int = 0) -> float:
    """Monte-Carlo estimate of the discounted return from the start state.

    An independent check of :func:`policy_evaluation`: sample episodes, add up gamma^t R(s_t, a_t)
    (R is the expected reward of (s, a), so the estimate is unbiased), average.
    """
    world, gamma = _world(world), _gamma(gamma)
    rng = np.random.default_rng(check_int(seed, "seed", minimum=0))
    policy = np.asarray(policy)
    probs = np.eye(4)[policy] if policy.ndim == 1 else policy
    if probs.shape != (len(world.cells), 4):
        raise ValueError(f"policy must have shape ({len(world.cells)},) or ({len(world.cells)}, 4)")
    total = 0.0
    for _ in range(check_int(episodes, "episodes", minimum=1)):
        s, discount = world.start, 1.0
        for _ in range(check_int(max_steps, "max_steps", minimum=1)):
            if world.terminal[s]:
                break
            a = rng.choice(4, p=probs[s])
            total += discount * world.R[s, a]
            discount *= gamma
            s = rng.choice(len(world.cells), p=world.P[s, a])
    return total / episodes


def _sample(probs, u):
    """Inverse-CDF sampling: the first index whose cumulative probability reaches u in (0, 1]."""
    return jnp.minimum(jnp.sum(jnp.cumsum(probs) < u), probs.shape[0] - 1)


@partial(jax.jit, static_argnums=(0,))
def _reinforce_train(logits_fn, params, P, R, terminal, uniforms, start, gamma, lr):
    """REINFORCE, one update per episode; episodes rolled out with lax.scan, masked after termination.

    ``uniforms`` (episodes, max_steps, 2) holds the random numbers (drawn with NumPy) that pick each
    action and each next state, so no jax.random code has to be compiled.
    """
    max_steps = uniforms.shape[1]

    def episode(params, u_episode):
        def step(carry, u):
            s, done = carry
            logp = jax.nn.log_softmax(logits_fn(params, s))
            a = _sample(jnp.exp(logp), u[0])
            s2 = _sample(P[s, a], u[1])
            live = ~done
            out = (jnp.where(live, R[s, a], 0.0), jnp.where(live, logp[a], 0.0))
            return (s2, done | terminal[s2]), out

        _, (rewards, logps) = jax.lax.scan(step, (start, terminal[start]), u_episode)
        # returns-to-go G_t = r_t + gamma G_{t+1}, by a reverse scan
        _, returns = jax.lax.scan(lambda g, r: (r + gamma * g, r + gamma * g), 0.0, rewards, reverse=True)
        discounts = gamma ** jnp.arange(max_steps)
        surrogate = jnp.sum(jax.lax.stop_gradient(discounts * returns) * logps)
        return surrogate, returns[0]

    def update(params, u_episode):
        grads, ret = jax.grad(episode, has_aux=True)(params, u_episode)
        params = jax.tree_util.tree_map(lambda p, g: (p + lr * g).astype(p.dtype), params, grads)  # *ascent*
        return params, ret

    return jax.lax.scan(update, params, uniforms)


def _tabular_logits(theta, s):
    return theta[s]


def init_policy_network(n_states: int, hidden: int = 16, *, seed: int = 0, scale: float = 0.1):
    """Weights of a small policy network, drawn with NumPy (no eager jax.random): a dict of float32
    ``W1`` (S, H), ``b1`` (H,), ``W2`` (H, 4), ``b2`` (4,), W ~ N(0, scale^2), biases 0."""
    n_states, hidden = check_int(n_states, "n_states", minimum=1), check_int(hidden, "hidden", minimum=1)
    check_number(scale, "scale", low=0)
    rng = np.random.default_rng(check_int(seed, "seed", minimum=0))
    return {"W1": (scale * rng.normal(size=(n_states, hidden))).astype(np.float32),
            "b1": np.zeros(hidden, np.float32),
            "W2": (scale * rng.normal(size=(hidden, 4))).astype(np.float32),
            "b2": np.zeros(4, np.float32)}


def policy_network_logits(params, s):
    """Logits of the policy network for state index s: tanh(onehot(s) W1 + b1) W2 + b2, shape (4,).

    onehot(s) W1 is row s of W1, so the first layer is a lookup. Pass this function as
    ``logits_fn`` to :func:`reinforce_gridworld`.
    """
    h = jnp.tanh(params["W1"][s] + params["b1"])
    return h @ params["W2"] + params["b2"]


@partial(jax.jit, static_argnums=(0, 2))
def _policy_table(logits_fn, params, n_states):
    return jax.nn.softmax(jax.vmap(lambda s: logits_fn(params, s))(jnp.arange(n_states)), axis=-1)


def policy_table(world: GridWorld, params, logits_fn=None):
    """pi(a | s) for every state, shape (S, 4): softmax of the policy's logits (tabular by default)."""
    world = _world(world)
    logits_fn = _tabular_logits if logits_fn is None else logits_fn
    if not callable(logits_fn):
        raise TypeError("logits_fn must be callable as logits_fn(params, state) -> (4,) logits")
    return np.asarray(_policy_table(logits_fn, params, len(world.cells)), dtype=float)


def reinforce_gridworld(world: GridWorld, gamma: float = 0.95, *, episodes: int = 500,
                        learning_rate: float = 0.5, max_steps: int = 50, seed: int = 0,
                        params=None, logits_fn=None):
    """Train a softmax policy with REINFORCE (Monte-Carlo policy gradient).

    theta <- theta + lr * sum_t gamma^t G_t grad log pi_theta(a_t | s_t), one episode per update.
    By default the policy is tabular, logits = theta[s] with theta of shape (S, 4); pass
    ``logits_fn(params, s)`` and initial ``params`` to use a network instead.
    Returns ``(params, returns)`` with the discounted return of every training episode.
    """
    world, gamma = _world(world), _gamma(gamma)
    check_number(learning_rate, "learning_rate", low=0, low_open=True)
    n = len(world.cells)
    if logits_fn is None:
        logits_fn = _tabular_logits
        params = jnp.zeros((n, 4)) if params is None else params
    elif params is None:
        raise ValueError("params must be given together with logits_fn")
    if not callable(logits_fn):
        raise TypeError("logits_fn must be callable as logits_fn(params, state) -> (4,) logits")
    episodes, max_steps = check_int(episodes, "episodes", minimum=1), check_int(max_steps, "max_steps", minimum=1)
    dtype = jnp.result_type(float)
    P, R = jnp.asarray(world.P, dtype), jnp.asarray(world.R, dtype)
    terminal = jnp.asarray(world.terminal)
    rng = np.random.default_rng(check_int(seed, "seed", minimum=0))
    uniforms = 1.0 - rng.random((episodes, max_steps, 2))  # in (0, 1]
    params, returns = _reinforce_train(logits_fn, params, P, R, terminal, jnp.asarray(uniforms, dtype),
                                       world.start, jnp.asarray(gamma, dtype), jnp.asarray(learning_rate, dtype))
    return params, np.asarray(returns)
