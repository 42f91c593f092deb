"""Perceptron learning, step by step: the line w.x + b = 0 moves each time an example is misclassified.

Question it answers: *what does the perceptron rule actually do, and why does it never settle on
XOR?* Choose a data set (linearly separable blobs, AND, XOR) and move the ``step`` slider: the left
panel shows the points, the current decision line and the example visited at that step (a red ring
if it was a mistake, which moved the line); the right panel counts the mistakes made so far.

All trajectories are computed once when the widget is built (``course_lib.perceptron.train_perceptron``,
one jitted ``lax.scan`` per data set); moving a control only indexes them and blits.

Widget protocol: see ``course_lib/widgets/activations.py`` (``WIDGETS``, ``controls``,
``main_controls``, ``live``, ``widget``).

Taught in: notebooks/01_what_is_deep_learning.ipynb
"""
from __future__ import annotations

import numpy as np

from course_lib import _validation as V
from .base import Explorer, LiveFigure, new_figure, panel

__all__ = ["WIDGETS", "DATASETS", "perceptron_datasets", "line_points", "build_perceptron_stepper",
           "PerceptronStepper"]

WIDGETS = ("build_perceptron_stepper",)
DATASETS = ("separable", "AND", "XOR")
STEPS = 200  # every data set is run for the same number of single-example steps


def perceptron_datasets(seed: int = 0) -> dict:
    """``{name: (X (n, 2) float, y (n,) int)}`` for the data sets of :data:`DATASETS`, in [-1.5, 1.5]^2."""
    rng = np.random.default_rng(seed)
    n = 40
    # separable by construction: labels from a true line, points too close to it dropped
    cand = rng.uniform(-1.3, 1.3, size=(4 * n, 2))
    margin = 0.8 * cand[:, 0] - 0.6 * cand[:, 1] + 0.3
    X = cand[np.abs(margin) > 0.1][:n]
    y = (0.8 * X[:, 0] - 0.6 * X[:, 1] + 0.3 > 0).astype(int)
    order = rng.permutation(n)
    corners = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    return {"separable": (X[order], y[order]),
            "AND": (corners, np.array([0, 0, 0, 1])),
            "XOR": (corners, np.array([0, 1, 1, 0]))}


def line_points(w, b, lim: float = 1.5):
    """Two points of the line ``w[0] x + w[1] y + b = 0`` spanning [-lim, lim] (empty if w == 0)."""
    w0, w1 = float(w[0]), float(w[1])
    b = float(b)
    if abs(w1) > abs(w0) and abs(w1) > 1e-12:
        xs = np.array([-lim, lim])
        return xs, -(w0 * xs + b) / w1
    if abs(w0) > 1e-12:
        ys = np.array([-lim, lim])
        return -(w1 * ys + b) / w0, ys
    return np.array([]), np.array([])


class PerceptronStepper(Explorer):
    """Precomputed perceptron runs, the controls and the live figure (see :func:`build_perceptron_stepper`)."""

    def __init__(self, dataset: str = "separable", step: int = 0, lr: float = 1.0, seed: int = 0):
        import ipywidgets as widgets

        from course_lib import perceptron

        if dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {', '.join(map(repr, DATASETS))}; got {dataset!r}")
        V.check_int(step, "step", minimum=0, maximum=STEPS)
        self.data = perceptron_datasets(seed)
        self.runs = {}
        for name, (X, y) in self.data.items():
            epochs = STEPS // len(y)
            self.runs[name] = perceptron.train_perceptron(X, y, epochs=epochs, lr=lr)
        self.values: dict = {}
        self.controls = {
            "dataset": widgets.Dropdown(options=list(DATASETS), value=dataset, description="data"),
            "step": widgets.IntSlider(value=step, min=0, max=STEPS, step=1, description="step",
                                      continuous_update=True),
        }
        self.main_controls = ("step", "dataset")
        self.readout = widgets.HTML()
        self._build_figure()
        self._connect()

    def _build_figure(self):
        fig, (ax, ax_m) = new_figure(1, 2, figsize=(8.0, 3.4))
        lim = 1.5
        ax.set(title="perceptron decision line", xlabel="feature x1", ylabel="feature x2",
               xlim=(-lim, lim), ylim=(-lim, lim), aspect="equal")
        ax.grid(alpha=0.3)
        ax_m.set(title="mistakes so far", xlabel="step (one example per step)", ylabel="mistakes",
                 xlim=(0, STEPS), ylim=(0, 1.05 * max(int(r["mistake"].sum()) for r in self.runs.values()) + 1))
        ax_m.grid(alpha=0.3)
        self.points = ax.scatter(np.zeros(40), np.zeros(40), c=np.zeros(40), cmap="coolwarm", vmin=0, vmax=1,
                                 s=30, edgecolors="k", linewidths=0.5)
        (self.line,) = ax.plot([], [], color="k", lw=2)
        (self.ring,) = ax.plot([], [], "o", ms=14, mfc="none", mew=2)
        (self.curve,) = ax_m.plot([], [], color="C0", lw=1.5)
        (self.marker,) = ax_m.plot([], [], "o", color="C3")
        self.label = ax.text(0.02, 0.98, "", transform=ax.transAxes, va="top", fontsize=9,
                             bbox=dict(facecolor="white", alpha=0.8, edgecolor="none"))
        self.live = LiveFigure(fig, animated=[self.points, self.line, self.ring, self.curve, self.marker,
                                              self.label])

    def update(self, dataset: str, step: int):
        """Show the state after ``step`` single-example updates on ``dataset`` (indexing only)."""
        X, y = self.data[dataset]
        run = self.runs[dataset]
        t = int(np.clip(step, 0, STEPS))
        w, b = run["w_history"][t], run["b_history"][t]
        cum = np.concatenate([[0], np.cumsum(run["mistake"])])
        self.points.set_offsets(X)
        self.points.set_array(y.astype(float))
        self.line.set_data(*line_points(w, b))
        if t > 0:
            i = int(run["order"][t - 1])
            was_mistake = bool(run["mistake"][t - 1])
            self.ring.set_data([X[i, 0]], [X[i, 1]])
            self.ring.set_color("C3" if was_mistake else "0.5")
        else:
            was_mistake = False
            self.ring.set_data([], [])
        self.curve.set_data(np.arange(t + 1), cum[: t + 1])
        self.marker.set_data([t], [cum[t]])
        errors = int(np.sum((X @ w + b > 0).astype(int) != y))
        self.label.set_text(f"w = ({w[0]:+.2f}, {w[1]:+.2f}), b = {b:+.2f}\n"
                            f"misclassified now: {errors} of {len(y)}")
        self.live.blit()
        self.values = {"dataset": dataset, "step": t, "w": np.array(w), "b": float(b),
                       "mistakes": int(cum[t]), "errors": errors, "last_was_mistake": was_mistake}
        self.readout.value = (f"<code>step {t}: {int(cum[t])} mistakes so far, {errors} points "
                              f"misclassified by the current line</code>")


def build_perceptron_stepper(dataset: str = "separable", step: int = 0) -> PerceptronStepper:
    """Build the chapter-01 perceptron stepper; display it with ``display(s.widget)``."""
    return PerceptronStepper(dataset=dataset, step=step)
