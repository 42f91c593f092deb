"""The chapter-14 exploration and reward-shaping explorer, driven headlessly.

References: the bandit curves are replayed by a plain NumPy loop over the same random tables; the
grid-world values and policies by value iteration on independently shaped rewards (the potential
term written out here) and exact policy evaluation.
"""
import numpy as np
import pytest

from course_lib import rl
from course_lib.widgets import rl as wrl
from course_lib.widgets.base import LiveFigure

EPS = np.array([0.0, 0.1, 0.3])


def loop_bandit(means, epsilon, noise, u, rand_arm):
    q, n, arms = np.zeros(len(means)), np.zeros(len(means), int), []
    for t in range(len(noise)):
        a = int(rand_arm[t]) if u[t] < epsilon else int(np.argmax(q))
        r = means[a] + noise[t, a]
        n[a] += 1
        q[a] += (r - q[a]) / n[a]
        arms.append(a)
    return np.array(arms)


@pytest.fixture(scope="module")
def curves():
    return wrl.bandit_curves(wrl.EPSILONS, runs=4, steps=120, seed=2)


@pytest.fixture(scope="module")
def explorer(curves):
    return wrl.build_rl_explorer(epsilon=0.1, curves=curves)


def test_protocol(explorer):
    assert wrl.WIDGETS == ("build_rl_explorer",)
    assert all(isinstance(live, LiveFigure) for live in explorer.live)
    assert set(explorer.main_controls) <= set(explorer.controls)
    assert set(explorer.bench_presets) <= set(explorer.controls)


def test_bandit_curves_equal_the_loop_reference(curves):
    means = wrl.BANDIT_MEANS.astype(float)
    noise, u, arm = rl.bandit_tables(2, 120, len(means), runs=4)
    best = int(np.argmax(means))
    for e in (0, 5, 15):
        eps = curves["epsilons"][e]
        arms = np.array([loop_bandit(means, eps, noise[k], u[k], arm[k]) for k in range(4)])
        np.testing.assert_allclose(curves["optimal_fraction"][e], (arms == best).mean(axis=0))
        regret = np.cumsum(means.max() - means[arms], axis=1)
        np.testing.assert_allclose(curves["regret"][e], regret.mean(axis=0), rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(curves["final_regret"][e], regret[:, -1].mean(), rtol=1e-5)


def test_epsilon_slider_moves_the_curves_and_the_marker(explorer, curves):
    for e in (3, 0, 20):
        before = explorer.bandit_live.image.value
        explorer.controls["epsilon"].value = float(curves["epsilons"][e])
        assert explorer.bandit_live.image.value != before
        np.testing.assert_allclose(explorer.opt_line.get_ydata(), 100 * curves["optimal_fraction"][e])
        np.testing.assert_allclose(explorer.reg_line.get_ydata(), curves["regret"][e])
        x, y = explorer.eps_marker.get_data()
        assert x[0] == pytest.approx(curves["epsilons"][e]) and y[0] == pytest.approx(curves["final_regret"][e])
        assert f"epsilon = {curves['epsilons'][e]:.2f}" in explorer.readout.value


def _arrows(explorer):
    return np.stack([explorer.arrows.U, explorer.arrows.V], axis=1)


def test_arrows_point_where_the_greedy_action_moves(explorer):
    world = rl.make_gridworld(wrl.LAYOUT, slip=wrl.SLIP)
    for shaping, k in (("none", 0.0), ("naive", 1.0)):
        explorer.controls["shaping"].value = shaping
        explorer.controls["strength"].value = k
        policy = explorer.values["policy"]
        live = ~world.terminal
        ax = explorer.arrows.axes
        assert ax.yaxis_inverted()  # row 0 drawn on top
        for s in np.flatnonzero(live):
            # deterministic move (no slip): the cell the action leads to, unless a wall blocks it
            dr, dc = list(rl.ACTIONS.values())[policy[s]]
            assert (explorer.arrows.U[s], explorer.arrows.V[s]) == (dc, dr), (s, policy[s])
        # the start state's optimal action is "up": its arrow points to smaller row numbers
        if shaping == "none":
            assert explorer.arrows.V[world.start] < 0 and explorer.arrows.U[world.start] == 0


def test_potential_shaping_keeps_the_policy_and_shifts_values_by_the_potential(explorer):
    world = rl.make_gridworld(wrl.LAYOUT, slip=wrl.SLIP)
    V0, pi0, _ = rl.value_iteration(world, wrl.GAMMA)
    explorer.controls["shaping"].value = "none"
    arrows0 = _arrows(explorer).copy()
    goal = (0, 3)
    dist = np.abs(world.cells - np.array(goal)).sum(axis=1).astype(float)
    for k in (0.5, 2.0):
        before = explorer.grid_live.image.value
        explorer.controls["shaping"].value = "potential"
        explorer.controls["strength"].value = k
        assert explorer.grid_live.image.value != before
        live = ~world.terminal
        phi = np.where(live, -k * dist, 0.0)
        # Shaped optimal values are V* - Phi (Ng et al. 1999); the greedy policy is unchanged.
        np.testing.assert_allclose(explorer.values["V"][live], (V0 - phi)[live], atol=1e-8)
        np.testing.assert_array_equal(explorer.values["policy"][live], pi0[live])
        np.testing.assert_allclose(_arrows(explorer), arrows0)
        assert explorer.values["changed_states"] == 0
        assert explorer.values["true_value"] == pytest.approx(V0[world.start], abs=1e-10)


def test_naive_bonus_changes_the_policy_and_lowers_the_true_return(explorer):
    world = rl.make_gridworld(wrl.LAYOUT, slip=wrl.SLIP)
    V0, pi0, _ = rl.value_iteration(world, wrl.GAMMA)
    explorer.controls["shaping"].value = "naive"
    explorer.controls["strength"].value = 1.0
    bonus_state = [tuple(c) for c in world.cells].index(wrl.BONUS_CELL)
    R = world.R.copy()
    live = ~world.terminal
    R[live] += world.P[live][:, :, bonus_state] * 1.0        # expected bonus of each move
    V, pi, _ = rl.value_iteration(world._replace(R=R), wrl.GAMMA)
    np.testing.assert_allclose(explorer.values["V"], V, atol=1e-8)
    assert explorer.values["changed_states"] == int((pi != pi0)[live].sum()) > 0
    true = rl.policy_evaluation(world, pi, wrl.GAMMA)[world.start]
    assert explorer.values["true_value"] == pytest.approx(true, abs=1e-10)
    assert true < V0[world.start] - 0.1
    assert len(explorer.changed.get_offsets()) == explorer.values["changed_states"]
    before = explorer.grid_live.image.value
    explorer.controls["strength"].value = 0.0
    assert explorer.grid_live.image.value != before
    assert explorer.values["changed_states"] == 0


def test_each_control_updates_only_its_figure(explorer):
    explorer.controls["shaping"].value = "naive"
    grid_png = explorer.grid_live.image.value
    explorer.controls["epsilon"].value = 0.2 if explorer.controls["epsilon"].value != 0.2 else 0.4
    assert explorer.grid_live.image.value == grid_png
    bandit_png = explorer.bandit_live.image.value
    explorer.controls["strength"].value = 1.5 if explorer.controls["strength"].value != 1.5 else 0.5
    assert explorer.bandit_live.image.value == bandit_png


def test_strength_is_disabled_without_shaping(explorer):
    """k only scales a shaping: with shaping "none" its slider is disabled (it would change nothing)."""
    for key in ("none", "potential", "naive"):
        explorer.controls["shaping"].value = key
        assert explorer.controls["strength"].disabled == (key == "none")


def test_bad_inputs(curves):
    with pytest.raises(ValueError, match="shaping"):
        wrl.build_rl_explorer(shaping="bonus", curves=curves)
    with pytest.raises(ValueError, match="epsilon"):
        wrl.build_rl_explorer(epsilon=0.9, curves=curves)
    with pytest.raises(ValueError, match="strength"):
        wrl.build_rl_explorer(strength=-1, curves=curves)
    with pytest.raises(TypeError, match="curves"):
        wrl.build_rl_explorer(curves=[1, 2])
    with pytest.raises(ValueError, match="epsilons"):
        wrl.bandit_curves([0.1, 1.5])
    with pytest.raises(ValueError, match="bonus_cell"):
        wrl.shaping_table(rl.make_gridworld(wrl.LAYOUT), bonus_cell=(1, 1))
