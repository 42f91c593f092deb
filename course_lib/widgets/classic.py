"""k-means / EM step-through: watch Lloyd's algorithm and EM for a Gaussian mixture, one step at a time.

Question it answers: *what does each iteration of k-means and of EM actually do, and why does its
objective only ever improve?* k-means makes hard assignments (each point takes its nearest centre's
colour) and moves each centre to the mean of its points; EM makes soft assignments (a point's colour
mixes the components by responsibility) and refits weights, means and covariances (the ellipses are
the 2-sigma contours). The right panel shows the inertia (k-means, falls) or the mean
log-likelihood (EM, rises) per step.

Both runs start from the same k-means++ centres and are computed in full when the stepper is built
(``course_lib.classic.kmeans_history`` and ``gmm_em``); the slider only indexes them and blits.

Widget protocol: see ``course_lib/widgets/activations.py``.

Taught in: notebooks/02_classic_ml.ipynb
"""
from __future__ import annotations

import numpy as np

from .base import Explorer, LiveFigure, new_figure, panel

__all__ = ["WIDGETS", "ellipse_points", "build_clustering_stepper", "ClusteringStepper"]

WIDGETS = ("build_clustering_stepper",)
_COLORS = np.array([[0.12, 0.47, 0.71], [1.0, 0.5, 0.05], [0.17, 0.63, 0.17], [0.84, 0.15, 0.16],
                    [0.58, 0.4, 0.74], [0.55, 0.34, 0.29]])


def ellipse_points(mean, cov, n_std=2.0, n=60):
    """(n, 2) points on the ellipse {x : (x - mean)^T cov^{-1} (x - mean) = n_std^2}."""
    vals, vecs = np.linalg.eigh(np.asarray(cov, float))
    t = np.linspace(0, 2 * np.pi, n)
    circle = np.stack([np.cos(t), np.sin(t)], 1)
    return np.asarray(mean, float) + n_std * (circle * np.sqrt(np.maximum(vals, 0))) @ vecs.T


def _demo_data(seed=0):
    rng = np.random.default_rng(seed)
    centers = np.array([[-2.0, 0.0], [1.5, 1.5], [1.0, -2.0]])
    covs = [np.array([[0.6, 0.3], [0.3, 0.4]]), np.array([[0.3, 0.0], [0.0, 0.9]]), np.array([[0.8, -0.4], [-0.4, 0.5]])]
    X = np.concatenate([rng.multivariate_normal(c, s, 100) for c, s in zip(centers, covs)])
    return X.astype(np.float32)


class ClusteringStepper(Explorer):
    """Precomputed k-means and EM histories, a step slider and a method toggle."""

    def __init__(self, X=None, k=3, seed=0, n_steps=20):
        import ipywidgets as widgets

        from course_lib import classic

        X = _demo_data() if X is None else np.asarray(X, np.float32)
        if X.ndim != 2 or X.shape[1] != 2:
            raise ValueError(f"X must have shape (n, 2) (the stepper draws points in the plane), got {X.shape}")
        if not 1 <= k <= len(_COLORS):
            raise ValueError(f"k must be between 1 and {len(_COLORS)}, got {k}")
        self.X, self.k = X, k
        init = classic.kmeans_plusplus(X, k, seed)
        cs, ls, inertia = classic.kmeans_history(X, init, n_iter=n_steps)
        self.km = {"centers": np.asarray(cs), "labels": np.asarray(ls), "objective": np.asarray(inertia)}
        cov0 = np.cov(X.T) + 1e-6 * np.eye(2)
        gmm = classic.gmm_em(X, k, n_iter=n_steps, init=(np.full(k, 1.0 / k, np.float32), np.asarray(init),
                                                        np.stack([cov0] * k).astype(np.float32)))
        w, m, c = (np.asarray(a) for a in gmm["history"])
        resp = np.stack([np.asarray(classic.gmm_e_step(X, w[t], m[t], c[t])[0]) for t in range(n_steps + 1)])
        self.em = {"weights": w, "means": m, "covs": c, "resp": resp, "objective": np.asarray(gmm["log_likelihood"])}
        self.n_steps = n_steps
        self.values: dict = {}
        self.controls = {
            "method": widgets.ToggleButtons(options=["k-means", "EM"], value="k-means", description="method"),
            "step": widgets.IntSlider(value=0, min=0, max=n_steps, description="step"),
        }
        self.main_controls = ("step", "method")
        self.readout = widgets.HTML()
        self._method = None
        self._build()
        self._connect()

    def _build(self):
        fig, (ax, ax_obj) = new_figure(1, 2, figsize=(10.0, 3.8))
        self.points = ax.scatter(self.X[:, 0], self.X[:, 1], s=10, c=np.tile(_COLORS[:1], (len(self.X), 1)))
        self.centers = ax.scatter(*self.km["centers"][0].T, s=160, marker="X", c=_COLORS[:self.k],
                                  edgecolors="black", linewidths=1.2)
        self.ellipses = [ax.plot([], [], color=_COLORS[j], lw=1.5)[0] for j in range(self.k)]
        pad = 0.5
        ax.set(title="assignments and centres", xlabel="x₁", ylabel="x₂",
               xlim=(self.X[:, 0].min() - pad, self.X[:, 0].max() + pad),
               ylim=(self.X[:, 1].min() - pad, self.X[:, 1].max() + pad))
        self.obj_line, = ax_obj.plot(np.arange(self.n_steps + 1), self.km["objective"], "o-", ms=3, color="0.3")
        self.obj_marker, = ax_obj.plot([0], [self.km["objective"][0]], "o", color="C3", ms=9)
        ax_obj.set(xlabel="step")
        self.ax_obj = ax_obj
        self.live = LiveFigure(fig, animated=[self.points, self.centers, *self.ellipses, self.obj_marker])
        # one static background per method (its objective curve, limits, title), drawn once: switching
        # the method is then a blit, not a full redraw
        self._backgrounds = {}
        for method in ("k-means", "EM"):
            self._set_method(method)
            self.live.redraw()
            self._backgrounds[method] = self.live.save_background()

    def _set_method(self, method):
        hist = self.km if method == "k-means" else self.em
        y = hist["objective"]
        self.obj_line.set_ydata(y)
        span = float(y.max() - y.min()) or 1.0
        self.ax_obj.set_ylim(float(y.min()) - 0.05 * span, float(y.max()) + 0.05 * span)
        self.ax_obj.set_title("inertia Σ‖x − c‖² (never increases)" if method == "k-means"
                              else "mean log-likelihood (never decreases)")
        self.ax_obj.set_ylabel("inertia" if method == "k-means" else "log-likelihood per point (nats)")
        self._method = method

    def update(self, method, step):
        t = int(np.clip(step, 0, self.n_steps))
        if method != self._method:
            self._set_method(method)
            self.live.restore_background(self._backgrounds[method])
        if method == "k-means":
            colors = _COLORS[self.km["labels"][t]]
            centers = self.km["centers"][t]
            for line in self.ellipses:
                line.set_data([], [])
        else:
            colors = np.clip(self.em["resp"][t] @ _COLORS[:self.k], 0, 1)
            centers = self.em["means"][t]
            for j, line in enumerate(self.ellipses):
                e = ellipse_points(self.em["means"][t, j], self.em["covs"][t, j])
                line.set_data(e[:, 0], e[:, 1])
        self.points.set_facecolor(colors)
        self.centers.set_offsets(centers)
        obj = float((self.km if method == "k-means" else self.em)["objective"][t])
        self.obj_marker.set_data([t], [obj])
        self.values = {"method": method, "step": t, "objective": obj, "centers": np.asarray(centers)}
        name = "inertia" if method == "k-means" else "mean log-likelihood"
        self.readout.value = f"{method}, step {t}: {name} = {obj:.4f}"
        self.live.blit()


def build_clustering_stepper(X=None, k=3, seed=0, n_steps=20):
    """Build the stepper (default: 300 points from 3 elongated Gaussian blobs); display ``.widget``."""
    return ClusteringStepper(X, k, seed, n_steps)
