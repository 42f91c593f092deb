"""Exploration and reward-shaping explorer: an epsilon slider over bandit curves, a shaping control on a grid world.

Questions it answers: *how much should a bandit agent explore?* (too little and it locks onto a
bad arm, too much and it keeps paying for random pulls), and *what does changing the reward do to
the optimal behaviour?* (potential-based shaping changes the values but never the greedy policy; a
naive bonus can make the agent farm the bonus instead of reaching the goal).

Everything is precomputed when the explorer is built: the bandit curves for every epsilon of the
slider's grid (plus UCB) by one compiled call of :func:`course_lib.rl.bandit_experiment`, and value
iteration (NumPy, no compilation) for every shaping setting. Moving a control only indexes those
arrays and blits.

Widget protocol: see ``benchmarks/README.md``.

Taught in: notebooks/14_reinforcement_learning.ipynb
"""
from __future__ import annotations

import numpy as np
from matplotlib.patches import Rectangle

from course_lib import rl

from .base import Explorer, LiveFigure, new_figure

__all__ = ["WIDGETS", "BANDIT_MEANS", "EPSILONS", "LAYOUT", "GAMMA", "SLIP", "SHAPINGS", "STRENGTHS",
           "BONUS_CELL", "bandit_curves", "goal_distance", "shaping_table", "build_rl_explorer", "RLExplorer"]

WIDGETS = ("build_rl_explorer",)

#: True mean reward of each of the 10 arms (rewards are these plus N(0, 1) noise); arm 2 is best.
BANDIT_MEANS = np.array([0.2, -0.8, 1.5, 0.4, 1.1, -1.5, -0.1, -1.0, 0.8, -0.5], np.float32)
#: The epsilon slider's grid (epsilon = 0 is the pure greedy strategy).
EPSILONS = np.round(np.arange(0.0, 0.5001, 0.02), 2)
#: The grid world of the chapter (Russell & Norvig's 4x3 world): S start, G goal (+1), X pit (-1), # wall.
LAYOUT = ("...G", ".#.X", "S...")
GAMMA = 0.9
SLIP = 0.2
#: Shaping options: key -> label.
SHAPINGS = {"none": "no shaping",
            "potential": "potential: Phi = -k * distance to goal",
            "naive": "naive: +k for each step that ends in the cell right of S"}
STRENGTHS = np.round(np.arange(0.0, 2.0001, 0.1), 1)
#: (row, column) of the naive bonus cell.
BONUS_CELL = (2, 1)
# Arrow of each action in data coordinates (x = column, y = row; the y axis is inverted so that row 0
# is on top): (column step, row step) of rl.ACTIONS.
_ARROWS = np.array([(dc, dr) for dr, dc in rl.ACTIONS.values()], dtype=float)


def bandit_curves(epsilons=EPSILONS, *, means=BANDIT_MEANS, runs: int = 100, steps: int = 1000,
                  seed: int = 0, c: float = 2.0) -> dict:
    """Averaged bandit curves for epsilon-greedy at every epsilon of ``epsilons`` and for UCB.

    Returns ``epsilons`` (E,), ``optimal_fraction`` and ``regret`` (E, steps) for epsilon-greedy,
    ``final_regret`` (E,) (mean over runs), and the same for UCB under ``ucb_*`` keys. One call of
    :func:`course_lib.rl.bandit_experiment` (one compilation).
    """
    eps = np.asarray(epsilons, dtype=float)
    if eps.ndim != 1 or eps.size < 1 or not np.all((eps >= 0) & (eps <= 1)):
        raise ValueError(f"epsilons must be a 1-D array of probabilities in [0, 1], got {epsilons!r}")
    E = eps.size
    out = rl.bandit_experiment(means, ["epsilon_greedy"] * E + ["ucb"], epsilon=list(eps) + [0.0], c=c,
                               runs=runs, steps=steps, seed=seed)
    return {"epsilons": eps, "means": np.asarray(means), "c": float(c), "runs": runs,
            "optimal_fraction": out["optimal_fraction"][:E], "regret": out["regret"][:E],
            "average_reward": out["average_reward"][:E], "final_regret": out["final_regret"][:E].mean(axis=1),
            "ucb_optimal_fraction": out["optimal_fraction"][E], "ucb_regret": out["regret"][E],
            "ucb_final_regret": float(out["final_regret"][E].mean())}


def goal_distance(world: rl.GridWorld) -> np.ndarray:
    """Manhattan distance of every state to the nearest goal cell (ignores walls), shape (S,)."""
    goals = np.array([(r, c) for r, row in enumerate(world.layout) for c, ch in enumerate(row) if ch == "G"])
    return np.abs(world.cells[:, None, :] - goals[None]).sum(axis=2).min(axis=1).astype(float)


def shaping_table(world: rl.GridWorld, gamma: float = GAMMA, strengths=STRENGTHS, *, bonus_cell=BONUS_CELL) -> dict:
    """Value iteration on the shaped world for every shaping kind and strength k.

    ``potential``: Phi(s) = -k * goal_distance(s) (potential-based shaping); ``naive``: a bonus k for
    every entry into ``bonus_cell``. Returns ``{kind: {"V": (K, S), "policy": (K, S), "true_value":
    (K,)}}``: the shaped optimal values, their greedy policy, and that policy's value at the start
    state under the *original* rewards (what the agent really earns). ``none`` has K = 1.
    """
    strengths = np.asarray(strengths, dtype=float)
    index = {tuple(rc): i for i, rc in enumerate(world.cells)}
    if tuple(bonus_cell) not in index:
        raise ValueError(f"bonus_cell must be a free cell of the grid, got {bonus_cell!r}")
    dist = goal_distance(world)
    table = {}
    for kind in SHAPINGS:
        rows = {"V": [], "policy": [], "true_value": []}
        for k in (strengths if kind != "none" else [0.0]):
            if kind == "none":
                shaped = world
            elif kind == "potential":
                shaped = rl.shape_rewards(world, -k * dist, gamma)
            else:
                bonus = np.zeros(len(world.cells))
                bonus[index[tuple(bonus_cell)]] = k
                shaped = rl.shape_rewards(world, gamma=gamma, bonus=bonus)
            V, policy, _ = rl.value_iteration(shaped, gamma)
            rows["V"].append(V)
            rows["policy"].append(policy)
            rows["true_value"].append(rl.policy_evaluation(world, policy, gamma)[world.start])
        table[kind] = {key: np.array(v) for key, v in rows.items()}
    return table


class RLExplorer(Explorer):
    """The explorer's state: precomputed bandit curves and shaping table, controls, figure, readout.

    Use :func:`build_rl_explorer`. ``values`` holds what the readout shows (tests read it).
    """

    def __init__(self, epsilon: float = 0.1, shaping: str = "none", strength: float = 1.0, curves=None):
        import ipywidgets as widgets

        if shaping not in SHAPINGS:
            raise ValueError(f"shaping must be one of {', '.join(map(repr, SHAPINGS))}; got {shaping!r}")
        if not EPSILONS[0] <= epsilon <= EPSILONS[-1]:
            raise ValueError(f"epsilon must lie in [{EPSILONS[0]}, {EPSILONS[-1]}], got {epsilon!r}")
        if not STRENGTHS[0] <= strength <= STRENGTHS[-1]:
            raise ValueError(f"strength must lie in [{STRENGTHS[0]}, {STRENGTHS[-1]}], got {strength!r}")
        self.curves = bandit_curves() if curves is None else curves
        if not isinstance(self.curves, dict) or "optimal_fraction" not in self.curves:
            raise TypeError("curves must be the dict returned by bandit_curves()")
        self.world = rl.make_gridworld(LAYOUT, slip=SLIP)
        self.table = shaping_table(self.world)
        self._index = {tuple(rc): i for i, rc in enumerate(self.world.cells)}
        self.values: dict = {}
        self.controls = {
            "epsilon": widgets.FloatSlider(value=epsilon, min=float(EPSILONS[0]), max=float(EPSILONS[-1]),
                                           step=0.02, description="epsilon", readout_format=".2f"),
            "shaping": widgets.Dropdown(options=[(label, key) for key, label in SHAPINGS.items()], value=shaping,
                                        description="shaping"),
            "strength": widgets.FloatSlider(value=strength, min=float(STRENGTHS[0]), max=float(STRENGTHS[-1]),
                                            step=0.1, description="strength k", readout_format=".1f"),
        }
        self.main_controls = ("epsilon", "shaping", "strength")
        self.bench_presets = {"strength": {"shaping": "naive"}}
        self._build_figure()
        self._connect()

    # ------------------------------------------------------------------------------------ figures
    def _build_figure(self):
        """Two live figures, so that moving epsilon redraws only the bandit curves and moving the
        shaping controls only the grid world."""
        c = self.curves
        fig, (a_opt, a_reg, a_eps) = new_figure(1, 3, figsize=(10.5, 3.0))
        steps = np.arange(1, c["optimal_fraction"].shape[1] + 1)
        a_opt.set(title="% optimal action", xlabel="step", ylabel="% of runs playing the best arm", ylim=(0, 100))
        a_reg.set(title="cumulative regret (mean over runs)", xlabel="step", ylabel="regret")
        a_eps.set(title="final regret vs epsilon", xlabel="epsilon", ylabel="regret at the last step")
        for ax in (a_opt, a_reg, a_eps):
            ax.grid(alpha=0.3)
        a_opt.plot(steps, 100 * c["optimal_fraction"][0], color="0.6", lw=1, label="greedy (epsilon = 0)")
        a_opt.plot(steps, 100 * c["ucb_optimal_fraction"], color="C2", lw=1, label=f"UCB (c = {c['c']:g})")
        a_reg.plot(steps, c["regret"][0], color="0.6", lw=1, label="greedy")
        a_reg.plot(steps, c["ucb_regret"], color="C2", lw=1, label="UCB")
        a_reg.set_ylim(0, 1.05 * max(c["regret"][:, -1].max(), c["ucb_regret"][-1]))
        (self.opt_line,) = a_opt.plot(steps, 100 * c["optimal_fraction"][0], color="C0", lw=2, label="epsilon-greedy")
        (self.reg_line,) = a_reg.plot(steps, c["regret"][0], color="C0", lw=2, label="epsilon-greedy")
        a_opt.legend(loc="lower right", fontsize=7)
        a_eps.plot(c["epsilons"], c["final_regret"], "o-", color="C0", ms=3, label="epsilon-greedy")
        a_eps.axhline(c["ucb_final_regret"], color="C2", ls="--", label="UCB")
        a_eps.legend(fontsize=7)
        (self.eps_marker,) = a_eps.plot([], [], "o", color="C3", ms=9)
        self.bandit_live = LiveFigure(fig, animated=[self.opt_line, self.reg_line, self.eps_marker])

        fig, a_grid = new_figure(1, 1, figsize=(4.0, 3.4))
        rows, cols = self.world.shape
        a_grid.set(xlim=(-0.5, cols - 0.5), ylim=(rows - 0.5, -0.5), xticks=range(cols), yticks=range(rows),
                   xlabel="column", ylabel="row", title="greedy policy (arrows) and V (colour)")
        walls = np.array([[ch == "#" for ch in row] for row in self.world.layout], float)
        a_grid.imshow(np.where(walls > 0, 1.0, np.nan), cmap="Greys", vmin=0, vmax=1.5)
        self.heat = a_grid.imshow(np.zeros((rows, cols)), cmap="viridis", alpha=0.85)
        for ri, ci in self.world.cells:
            ch = self.world.layout[ri][ci]
            if ch in "GX":
                a_grid.add_patch(Rectangle((ci - 0.5, ri - 0.5), 1, 1, color="#9be39b" if ch == "G" else "#f4a3a3"))
                a_grid.text(ci, ri, "goal\n+1" if ch == "G" else "pit\n-1", ha="center", va="center", fontsize=9)
        r, cc = self.world.cells[:, 0], self.world.cells[:, 1]
        self.arrows = a_grid.quiver(cc, r, np.zeros(len(r)), np.zeros(len(r)), angles="xy", scale_units="xy",
                                    scale=2.4, color="w", width=0.014)
        self.changed = a_grid.scatter([], [], marker="s", s=1500, facecolors="none", edgecolors="C3", linewidths=2.5)
        # drawn after the heat map (animated), so that it stays readable: the start label, and the
        # shaping setting written into the wall cell
        sr, sc = self.world.cells[self.world.start]
        start_label = a_grid.text(sc - 0.4, sr - 0.28, "S", fontsize=9, fontweight="bold", color="k",
                                  bbox={"boxstyle": "square,pad=0.15", "fc": "w", "ec": "none"})
        wall = np.argwhere(walls > 0)
        wr, wc = wall[0] if len(wall) else (rows - 0.5, cols / 2 - 0.5)
        self.title = a_grid.text(wc, wr, "", ha="center", va="center", fontsize=8, color="w")
        self.grid_live = LiveFigure(fig, animated=[self.heat, self.arrows, self.changed, start_label, self.title])
        self.live = [self.bandit_live, self.grid_live]

    def _connect(self, **kwargs):
        import ipywidgets as widgets

        super()._connect(figures=self.live)
        self.widget = widgets.VBox([widgets.HBox(list(self.controls.values()),
                                                 layout=widgets.Layout(flex_flow="row wrap")),
                                    self.bandit_live.image,
                                    widgets.HBox([self.grid_live.image, self.readout])])
        return self.widget

    # ------------------------------------------------------------------------------------ update
    def update(self, epsilon: float, shaping: str, strength: float):
        """Index the precomputed curves and value tables, set the artists' data, blit what changed."""
        c = self.curves
        e = int(np.argmin(np.abs(c["epsilons"] - epsilon)))
        k = 0 if shaping == "none" else int(np.argmin(np.abs(STRENGTHS - strength)))
        bandit_key, grid_key = e, (shaping, k)
        if bandit_key != getattr(self, "_bandit_shown", None):
            self.opt_line.set_ydata(100 * c["optimal_fraction"][e])
            self.reg_line.set_ydata(c["regret"][e])
            self.eps_marker.set_data([c["epsilons"][e]], [c["final_regret"][e]])
            self.bandit_live.blit()
            self._bandit_shown = bandit_key

        self.controls["strength"].disabled = shaping == "none"      # no shaping: k changes nothing
        row = self.table[shaping]
        V, policy, true_value = row["V"][k], row["policy"][k], float(row["true_value"][k])
        live = ~self.world.terminal
        diff = live & (policy != self.table["none"]["policy"][0])
        optimum = float(self.table["none"]["V"][0][self.world.start])
        strength_k = float(STRENGTHS[k]) if shaping != "none" else 0.0
        if grid_key != getattr(self, "_grid_shown", None):
            grid = np.full(self.world.shape, np.nan)
            grid[self.world.cells[:, 0], self.world.cells[:, 1]] = np.where(live, V, np.nan)
            self.heat.set_data(grid)
            lo, hi = float(np.nanmin(grid)), float(np.nanmax(grid))
            self.heat.set_clim(lo, hi if hi > lo else lo + 1e-9)
            uv = np.where(live[:, None], _ARROWS[policy], 0.0)
            self.arrows.set_UVC(uv[:, 0], uv[:, 1])
            self.changed.set_offsets(self.world.cells[diff][:, ::-1] if diff.any() else np.empty((0, 2)))
            self.title.set_text(shaping if shaping == "none" else f"{shaping}\nk = {strength_k:.1f}")
            self.grid_live.blit()
            self._grid_shown = grid_key

        self.values = {"epsilon": float(c["epsilons"][e]), "final_optimal": float(c["optimal_fraction"][e, -1]),
                       "final_regret": float(c["final_regret"][e]), "ucb_final_regret": c["ucb_final_regret"],
                       "shaping": shaping, "strength": strength_k, "V": V, "policy": policy,
                       "changed_states": int(diff.sum()), "true_value": true_value, "optimal_value": optimum}
        value_rows = "".join(
            "<tr>" + "".join(self._cell_html(ri, ci, V) for ci in range(self.world.shape[1])) + "</tr>"
            for ri in range(self.world.shape[0]))
        self.readout.value = (
            f"<p><b>epsilon = {c['epsilons'][e]:.2f}</b>: best arm played in {100 * c['optimal_fraction'][e, -1]:.1f}% "
            f"of runs at the last step; final regret {c['final_regret'][e]:.1f} (greedy "
            f"{c['final_regret'][0]:.1f}, UCB {c['ucb_final_regret']:.1f})</p>"
            f"<p><b>{SHAPINGS[shaping]}</b>{', k = %.1f' % strength_k if shaping != 'none' else ''}: the greedy "
            f"policy differs from the optimal one in {int(diff.sum())} states (red squares). Its true return from S, "
            f"with the original rewards, is {true_value:+.3f}; the optimum is {optimum:+.3f}.</p>"
            f"<p>Values V of the {'shaped' if shaping != 'none' else 'original'} rewards:</p>"
            f"<table>{value_rows}</table>")

    def _cell_html(self, ri, ci, V):
        ch = self.world.layout[ri][ci]
        if ch == "#":
            return "<td style='background:#999'>&nbsp;</td>"
        s = self._index[(ri, ci)]
        return f"<td><code>{ch if ch in 'GX' else f'{V[s]:+.2f}'}</code></td>"


def build_rl_explorer(epsilon: float = 0.1, shaping: str = "none", strength: float = 1.0, curves=None) -> RLExplorer:
    """Build the chapter-14 exploration and reward-shaping explorer; display it with ``display(e.widget)``.

    ``epsilon``: initial exploration rate in [0, 0.5]; ``shaping``: a key of :data:`SHAPINGS`;
    ``strength``: k in [0, 2]; ``curves``: the result of :func:`bandit_curves` if already computed
    (otherwise it is computed here: 100 runs x 1000 steps for every epsilon of :data:`EPSILONS`).
    """
    return RLExplorer(epsilon=epsilon, shaping=shaping, strength=strength, curves=curves)
