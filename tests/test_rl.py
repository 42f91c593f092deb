"""Reinforcement learning: each algorithm against an independent computation."""
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from course_lib import rl

LAYOUT = ["...G", ".#.X", "S..."]


def numpy_bandit(means, strategy, noise, u, rand_arm, epsilon, c, reward_std):
    """Straightforward loop implementation of the three strategies, fed the same random tables."""
    k = len(means)
    q, n = np.zeros(k), np.zeros(k, int)
    arms = []
    for t in range(len(noise)):
        if strategy == "epsilon_greedy" and u[t] < epsilon:
            a = rand_arm[t]
        elif strategy == "ucb":
            if (n == 0).any():
                a = int(np.argmin(n))
            else:
                a = int(np.argmax(q + c * np.sqrt(np.log(t + 1.0) / n)))
        else:
            a = int(np.argmax(q))
        r = means[a] + reward_std * noise[t, a]
        n[a] += 1
        q[a] += (r - q[a]) / n[a]
        arms.append(a)
    return np.array(arms), q, n


@pytest.mark.parametrize("strategy", rl.BANDIT_STRATEGIES)
def test_bandit_equals_loop_reference(strategy):
    means = np.array([0.2, -0.5, 0.9, 0.4])
    out = rl.run_bandit(means, strategy, steps=400, seed=3, epsilon=0.2, c=1.5, reward_std=0.7)
    noise, u, arm = (np.asarray(a) for a in rl.bandit_tables(3, 400, 4))
    arms, q, n = numpy_bandit(means, strategy, noise, u, arm, 0.2, 1.5, 0.7)
    np.testing.assert_array_equal(np.asarray(out["actions"]), arms)
    np.testing.assert_allclose(np.asarray(out["estimates"]), q, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(np.asarray(out["counts"]), n)
    regret = np.cumsum(means.max() - means[arms])
    np.testing.assert_allclose(np.asarray(out["regret"]), regret, rtol=1e-12)


def test_bandit_experiment_averages_the_loop_reference_over_runs():
    means = np.array([0.2, -0.5, 0.9, 0.4])
    strategies = ["greedy", "epsilon_greedy", "epsilon_greedy", "ucb"]
    eps, cs = [0.0, 0.1, 0.3, 0.0], [2.0, 2.0, 2.0, 1.0]
    out = rl.bandit_experiment(means, strategies, epsilon=eps, c=cs, runs=6, steps=150, seed=4, reward_std=0.5)
    noise, u, arm = rl.bandit_tables(4, 150, 4, runs=6)
    for e, (name, ep, c) in enumerate(zip(strategies, eps, cs)):
        runs = [numpy_bandit(means, name, noise[k], u[k], arm[k], ep, c, 0.5)[0] for k in range(6)]
        arms = np.array(runs)                                   # (runs, steps)
        rewards = means[arms] + 0.5 * np.take_along_axis(noise, arms[..., None], axis=2)[..., 0]
        regret = np.cumsum(means.max() - means[arms], axis=1)
        np.testing.assert_allclose(out["average_reward"][e], rewards.mean(axis=0), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(out["optimal_fraction"][e], (arms == 2).mean(axis=0))
        np.testing.assert_allclose(out["regret"][e], regret.mean(axis=0), rtol=1e-12)
        np.testing.assert_allclose(out["final_regret"][e], regret[:, -1], rtol=1e-12)
    # run k of the experiment is run_bandit with seed + k
    single = rl.run_bandit(means, "ucb", steps=150, seed=4 + 3, c=1.0, reward_std=0.5)
    assert float(single["regret"][-1]) == pytest.approx(out["final_regret"][3, 3], rel=1e-12)


def test_exploration_beats_pure_greedy_on_average():
    means = np.array([0.0, 0.3, 0.6, 1.0, 0.8])
    final = {s: np.mean([float(rl.run_bandit(means, s, steps=1000, seed=k)["regret"][-1]) for k in range(20)])
             for s in rl.BANDIT_STRATEGIES}
    assert final["ucb"] < final["greedy"] and final["epsilon_greedy"] < final["greedy"]


def test_reinforce_estimator_is_unbiased_for_any_baseline():
    means = jnp.array([0.1, 0.5, -0.3, 0.8])
    theta = jnp.array([0.2, -0.4, 0.1, 0.3])
    exact = np.asarray(jax.grad(rl.bandit_objective)(theta, means))
    for baseline in (0.0, 0.4):
        samples = np.asarray(rl.reinforce_bandit_samples(theta, means, n_samples=200_000, seed=1,
                                                         baseline=baseline))
        mean = samples.mean(axis=0)
        stderr = samples.std(axis=0, ddof=1) / np.sqrt(len(samples))
        assert np.all(np.abs(mean - exact) < 4.5 * stderr), (mean, exact, stderr)
    var0 = rl.reinforce_bandit_samples(theta, means + 5, n_samples=50_000, seed=2).var(axis=0).sum()
    var_b = rl.reinforce_bandit_samples(theta, means + 5, n_samples=50_000, seed=2, baseline=5.3).var(axis=0).sum()
    assert var_b < 0.2 * var0  # a baseline near the mean reward cuts the variance


def test_gridworld_transitions_are_distributions_and_walls_block():
    w = rl.make_gridworld(LAYOUT, slip=0.2)
    np.testing.assert_allclose(w.P.sum(axis=2), 1.0)
    assert len(w.cells) == 11  # 12 cells minus one wall
    # From the start (row 2, col 0) moving "up" deterministically lands on (1, 0).
    det = rl.make_gridworld(LAYOUT)
    s2 = det.P[det.start, 0].argmax()
    assert tuple(det.cells[s2]) == (1, 0)


def brute_force_optimum(world, gamma):
    best = None
    live = np.flatnonzero(~world.terminal)
    for actions in itertools.product(range(4), repeat=len(live)):
        policy = np.zeros(len(world.cells), int)
        policy[live] = actions
        v = rl.policy_evaluation(world, policy, gamma)
        best = v if best is None else np.maximum(best, v)
    return best


@pytest.mark.parametrize("slip", [0.0, 0.2])
def test_value_iteration_equals_brute_force_over_all_policies(slip):
    world = rl.make_gridworld(["S.G", ".#X"], slip=slip)
    V, policy, _ = rl.value_iteration(world, 0.9)
    np.testing.assert_allclose(V, brute_force_optimum(world, 0.9), atol=1e-8)
    np.testing.assert_allclose(rl.policy_evaluation(world, policy, 0.9), V, atol=1e-8)


def test_value_iteration_satisfies_bellman_optimality_and_matches_monte_carlo():
    world = rl.make_gridworld(LAYOUT, slip=0.1)
    V, policy, _ = rl.value_iteration(world, 0.9)
    residual = np.max(np.abs((world.R + 0.9 * world.P @ V).max(axis=1) - V))
    assert residual < 1e-9
    mc = rl.rollout_return(world, policy, 0.9, episodes=4000, seed=0)
    assert abs(mc - V[world.start]) < 0.03


def test_potential_shaping_keeps_the_optimal_policy_and_a_naive_bonus_can_break_it():
    world = rl.make_gridworld(["S....G"])
    gamma = 0.9
    _, policy, _ = rl.value_iteration(world, gamma)
    rng = np.random.default_rng(0)
    for _ in range(5):
        phi = rng.normal(size=len(world.cells)) * 3
        _, shaped_policy, _ = rl.value_iteration(rl.shape_rewards(world, phi, gamma), gamma)
        live = ~world.terminal
        np.testing.assert_array_equal(shaped_policy[live], policy[live])
    bonus = np.zeros(len(world.cells))
    bonus[1] = 1.0  # +1 every time the agent enters cell 1: looping there beats finishing
    _, bonus_policy, _ = rl.value_iteration(rl.shape_rewards(world, gamma=gamma, bonus=bonus), gamma)
    assert (bonus_policy[~world.terminal] != policy[~world.terminal]).any()


def test_reinforce_surrogate_gradient_equals_hand_formula():
    # For a tabular softmax policy, d log pi(a|s) / d theta[s] = onehot(a) - pi(.|s).
    theta = jnp.array([[0.3, -0.2, 0.5, 0.0]])
    a = 2
    auto = jax.grad(lambda t: jax.nn.log_softmax(t[0])[a])(theta)
    hand = jax.nn.one_hot(a, 4) - jax.nn.softmax(theta[0])
    np.testing.assert_allclose(np.asarray(auto[0]), np.asarray(hand), rtol=1e-12)


def numpy_reinforce(world, gamma, episodes, lr, max_steps, seed):
    """Tabular REINFORCE written as plain loops, fed the same uniform random numbers."""
    S = len(world.cells)
    theta = np.zeros((S, 4))
    uniforms = 1.0 - np.random.default_rng(seed).random((episodes, max_steps, 2))
    first_returns = []
    for e in range(episodes):
        s, done, steps = world.start, bool(world.terminal[world.start]), []
        for t in range(max_steps):
            pi = np.exp(theta[s] - theta[s].max())
            pi /= pi.sum()
            a = min(int(np.sum(np.cumsum(pi) < uniforms[e, t, 0])), 3)
            s2 = min(int(np.sum(np.cumsum(world.P[s, a]) < uniforms[e, t, 1])), S - 1)
            if not done:
                steps.append((t, s, a, world.R[s, a], pi))
            done = done or bool(world.terminal[s2])
            s = s2
        grad, g = np.zeros_like(theta), 0.0
        for t, s, a, r, pi in reversed(steps):
            g = r + gamma * g
            grad[s] += gamma ** t * g * (np.eye(4)[a] - pi)
        theta += lr * grad
        first_returns.append(g if steps else 0.0)
    return theta, np.array(first_returns)


@pytest.mark.parametrize("slip", [0.0, 0.2])
def test_reinforce_training_equals_a_loop_implementation(slip):
    world = rl.make_gridworld(LAYOUT, slip=slip)
    theta, returns = rl.reinforce_gridworld(world, 0.9, episodes=30, learning_rate=0.5, max_steps=25, seed=5)
    theta_ref, returns_ref = numpy_reinforce(world, 0.9, 30, 0.5, 25, 5)
    np.testing.assert_allclose(returns, returns_ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(np.asarray(theta), theta_ref, rtol=1e-9, atol=1e-12)


def test_reinforce_rollouts_sample_the_mdp():
    # With a negligible learning rate the policy stays uniform, so the mean episode return is a
    # Monte-Carlo estimate of the exact value of the uniform policy from the start state.
    world = rl.make_gridworld(LAYOUT, slip=0.2)
    _, returns = rl.reinforce_gridworld(world, 0.8, episodes=6000, learning_rate=1e-12, max_steps=120, seed=3)
    exact = rl.policy_evaluation(world, np.full((len(world.cells), 4), 0.25), 0.8)[world.start]
    stderr = returns.std(ddof=1) / np.sqrt(len(returns))
    assert abs(returns.mean() - exact) < 4.5 * stderr, (returns.mean(), exact, stderr)


def test_policy_network_and_policy_table_equal_numpy_formulas():
    world = rl.make_gridworld(LAYOUT)
    params = rl.init_policy_network(len(world.cells), 8, seed=1, scale=0.7)
    assert {k: v.shape for k, v in params.items()} == {"W1": (11, 8), "b1": (8,), "W2": (8, 4), "b2": (4,)}
    params["b1"] = np.linspace(-0.5, 0.5, 8).astype(np.float32)
    table = rl.policy_table(world, params, rl.policy_network_logits)
    onehot = np.eye(11)
    logits = np.tanh(onehot @ params["W1"].astype(float) + params["b1"]) @ params["W2"].astype(float) + params["b2"]
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    np.testing.assert_allclose(table, probs / probs.sum(axis=1, keepdims=True), rtol=1e-5, atol=1e-7)
    theta = np.random.default_rng(0).normal(size=(11, 4))
    e = np.exp(theta)
    np.testing.assert_allclose(rl.policy_table(world, theta), e / e.sum(axis=1, keepdims=True), rtol=1e-12)


def test_reinforce_with_a_policy_network_improves_the_return():
    world = rl.make_gridworld(LAYOUT)
    params = rl.init_policy_network(len(world.cells), 16, seed=0)
    trained, returns = rl.reinforce_gridworld(world, 0.9, episodes=600, learning_rate=0.2, seed=0,
                                              params=params, logits_fn=rl.policy_network_logits)
    before = rl.policy_evaluation(world, rl.policy_table(world, params, rl.policy_network_logits), 0.9)
    after = rl.policy_evaluation(world, rl.policy_table(world, trained, rl.policy_network_logits), 0.9)
    V, _, _ = rl.value_iteration(world, 0.9)
    assert after[world.start] > before[world.start] + 0.3
    assert after[world.start] > V[world.start] - 0.1
    assert returns[-100:].mean() > returns[:100].mean()


def test_reinforce_learns_to_reach_the_goal():
    world = rl.make_gridworld(LAYOUT)
    theta, returns = rl.reinforce_gridworld(world, 0.9, episodes=400, learning_rate=0.5, seed=0)
    assert returns.shape == (400,)
    greedy = np.asarray(theta).argmax(axis=1)
    learned = rl.policy_evaluation(world, greedy, 0.9)[world.start]
    V, _, _ = rl.value_iteration(world, 0.9)
    assert returns[-50:].mean() > returns[:50].mean() + 0.3
    assert learned > V[world.start] - 0.05


def test_bad_inputs():
    with pytest.raises(ValueError, match="strategy"):
        rl.run_bandit([0.1, 0.2], "softmax")
    with pytest.raises(ValueError, match="means"):
        rl.run_bandit([0.1], "ucb")
    with pytest.raises(ValueError, match="means must be finite"):
        rl.run_bandit([0.1, float("nan")])
    with pytest.raises(ValueError, match="epsilon"):
        rl.run_bandit([0.1, 0.2], epsilon=1.5)
    with pytest.raises(ValueError, match="steps"):
        rl.run_bandit([0.1, 0.2], steps=0)
    with pytest.raises(TypeError, match="seed"):
        rl.run_bandit([0.1, 0.2], seed=1.5)
    with pytest.raises(ValueError, match="strategy"):
        rl.bandit_experiment([0.1, 0.2], ["ucb", "boltzmann"])
    with pytest.raises(ValueError, match="epsilon"):
        rl.bandit_experiment([0.1, 0.2], ["ucb", "greedy"], epsilon=[0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="epsilon"):
        rl.bandit_experiment([0.1, 0.2], "epsilon_greedy", epsilon=-0.1)
    with pytest.raises(ValueError, match="c must"):
        rl.bandit_experiment([0.1, 0.2], ["ucb"], c=[1.0, 2.0])
    with pytest.raises(ValueError, match="runs"):
        rl.bandit_experiment([0.1, 0.2], "ucb", runs=0)
    with pytest.raises(ValueError, match="baseline"):
        rl.reinforce_bandit_samples(jnp.zeros(2), jnp.zeros(2), baseline=float("nan"))
    with pytest.raises(ValueError, match="hidden"):
        rl.init_policy_network(5, 0)
    with pytest.raises(TypeError, match="logits_fn"):
        rl.policy_table(world_for_errors := rl.make_gridworld(["S.G"]), np.zeros((3, 4)), logits_fn=3)
    with pytest.raises(ValueError, match="theta"):
        rl.reinforce_bandit_samples(jnp.zeros(3), jnp.zeros(2))
    with pytest.raises(ValueError, match="layout"):
        rl.make_gridworld(["S.?G"])
    with pytest.raises(ValueError, match="start"):
        rl.make_gridworld(["..G"])
    with pytest.raises(TypeError, match="layout"):
        rl.make_gridworld("S.G")
    with pytest.raises(ValueError, match="slip"):
        rl.make_gridworld(["S.G"], slip=2)
    world = rl.make_gridworld(["S.G"])
    with pytest.raises(ValueError, match="gamma"):
        rl.value_iteration(world, 1.0)
    with pytest.raises(TypeError, match="world"):
        rl.value_iteration("grid", 0.9)
    with pytest.raises(ValueError, match="policy"):
        rl.policy_evaluation(world, np.array([0, 9, 0]), 0.9)
    with pytest.raises(ValueError, match="potential"):
        rl.shape_rewards(world, np.zeros(2), 0.9)
    with pytest.raises(ValueError, match="learning_rate"):
        rl.reinforce_gridworld(world, 0.9, learning_rate=-1)
    with pytest.raises(ValueError, match="params"):
        rl.reinforce_gridworld(world, 0.9, logits_fn=lambda p, s: p)
