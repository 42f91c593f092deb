"""Capacity / penalty explorer: polynomial degree and ridge penalty against train and validation error.

Question it answers: *what do model capacity and regularization do to under- and overfitting?*
Noisy samples of a smooth curve are fitted by ridge regression on polynomial features. A low degree
underfits (both errors high); a high degree with no penalty overfits (train error ~0, validation
error large); raising the penalty alpha tames the high-degree model, and too much penalty brings
underfitting back. The right panel shows both errors against the degree at the current alpha.

Every (degree, alpha) fit is precomputed when the explorer is built (the closed-form ridge solution
of ``course_lib.classic.ridge_regression``, batched in float64 NumPy, one linear solve per fit);
moving a slider only indexes the stored curves and errors, then blits.

Widget protocol: see ``course_lib/widgets/activations.py``.

Taught in: notebooks/08_regularization_and_training.ipynb
"""
from __future__ import annotations

import numpy as np

from .base import Explorer, LiveFigure, new_figure, panel

__all__ = ["WIDGETS", "make_curve_data", "ridge_poly_fits", "build_capacity_explorer", "CapacityExplorer"]

WIDGETS = ("build_capacity_explorer",)


def make_curve_data(n_train=20, n_val=200, noise=0.25, seed=0):
    """x in [-1, 1], y = sin(pi x) + N(0, noise^2); returns (x_train, y_train, x_val, y_val)."""
    rng = np.random.default_rng(seed)
    xt, xv = np.sort(rng.uniform(-1, 1, n_train)), np.sort(rng.uniform(-1, 1, n_val))
    return (xt, np.sin(np.pi * xt) + noise * rng.standard_normal(n_train),
            xv, np.sin(np.pi * xv) + noise * rng.standard_normal(n_val))


def _design(x, degree):
    return np.stack([x ** k for k in range(1, degree + 1)], axis=1)


def ridge_poly_fits(x_train, y_train, x_eval, degrees, alphas):
    """Predictions on ``x_eval`` of ridge(alpha) on polynomial features of each degree, float64.

    Same objective as ``course_lib.classic.ridge_regression(polynomial_features(x, degree), y,
    alpha)``: ||y - Xw - b||^2 + alpha ||w||^2 with an unpenalised intercept. Returns an array
    (len(degrees), len(alphas), len(x_eval))."""
    out = np.zeros((len(degrees), len(alphas), len(x_eval)))
    for i, d in enumerate(degrees):
        X, E = _design(np.asarray(x_train, float), d), _design(np.asarray(x_eval, float), d)
        xm, ym = X.mean(0), np.mean(y_train)
        Xc = X - xm
        A = Xc.T @ Xc
        rhs = Xc.T @ (y_train - ym)
        for j, a in enumerate(alphas):
            w = np.linalg.lstsq(A + a * np.eye(d), rhs, rcond=None)[0]
            out[i, j] = (E - xm) @ w + ym
    return out


class CapacityExplorer(Explorer):
    """Precomputed fits and errors, two sliders (degree, log10 alpha), the live figure."""

    def __init__(self, data=None, max_degree=15, degree=3, log_alpha=-8.0):
        import ipywidgets as widgets

        self.xt, self.yt, self.xv, self.yv = make_curve_data() if data is None else map(np.asarray, data)
        self.degrees = np.arange(1, max_degree + 1)
        self.log_alphas = np.round(np.arange(-8.0, 2.01, 0.5), 10)
        self.alphas = 10.0 ** self.log_alphas
        self.x_plot = np.linspace(-1, 1, 200)
        every = np.concatenate([self.x_plot, self.xt, self.xv])
        preds = ridge_poly_fits(self.xt, self.yt, every, self.degrees, self.alphas)
        n_p, n_t = len(self.x_plot), len(self.xt)
        self.curves = preds[..., :n_p]
        self.train_mse = np.mean((preds[..., n_p:n_p + n_t] - self.yt) ** 2, -1)
        self.val_mse = np.mean((preds[..., n_p + n_t:] - self.yv) ** 2, -1)
        self.values: dict = {}
        self.controls = {
            "degree": widgets.IntSlider(value=degree, min=1, max=max_degree, description="degree"),
            "log_alpha": widgets.FloatSlider(value=log_alpha, min=-8.0, max=2.0, step=0.5,
                                             description="log10 α", readout_format=".1f"),
        }
        self.main_controls = ("degree", "log_alpha")
        self.readout = widgets.HTML()
        self._build()
        self._connect()

    def _build(self):
        fig, (ax_fit, ax_err) = new_figure(1, 2, figsize=(10.0, 3.6))
        ax_fit.scatter(self.xv, self.yv, s=6, color="0.75", label="validation data")
        ax_fit.scatter(self.xt, self.yt, s=22, color="C0", label="training data")
        ax_fit.plot(self.x_plot, np.sin(np.pi * self.x_plot), ls="--", color="0.4", lw=1, label="true sin(πx)")
        self.fit_line, = ax_fit.plot(self.x_plot, self.curves[0, 0], color="C3", lw=2, label="ridge fit")
        ax_fit.set(title="fit (polynomial features + ridge)", xlabel="x", ylabel="y", ylim=(-2.0, 2.0))
        ax_fit.legend(loc="upper left", fontsize=7)
        self.train_line, = ax_err.plot(self.degrees, self.train_mse[:, 0], "o-", ms=3, color="C0",
                                       label="train MSE")
        self.val_line, = ax_err.plot(self.degrees, self.val_mse[:, 0], "o-", ms=3, color="C1",
                                     label="validation MSE")
        self.cursor = ax_err.axvline(1, color="C3", lw=1.5)
        ax_err.set(title="error vs capacity at this α", xlabel="polynomial degree", ylabel="MSE (log scale)",
                   yscale="log", ylim=(1e-3, 10.0))
        ax_err.legend(loc="upper right", fontsize=8)
        self.live = LiveFigure(fig, animated=[self.fit_line, self.train_line, self.val_line, self.cursor])

    def update(self, degree, log_alpha):
        i = int(np.clip(degree - 1, 0, len(self.degrees) - 1))
        j = int(np.argmin(np.abs(self.log_alphas - log_alpha)))
        self.fit_line.set_ydata(self.curves[i, j])
        self.train_line.set_ydata(self.train_mse[:, j])
        self.val_line.set_ydata(self.val_mse[:, j])
        self.cursor.set_xdata([degree, degree])
        tr, va = float(self.train_mse[i, j]), float(self.val_mse[i, j])
        best = float(self.val_mse.min())
        verdict = ("underfitting: both errors high" if tr > 0.12 else
                   "overfitting: validation error far above train error" if va > 1.5 * best and va > 2 * tr else
                   "a good balance")
        self.values = {"degree": int(self.degrees[i]), "alpha": float(self.alphas[j]), "train_mse": tr,
                       "val_mse": va, "verdict": verdict}
        self.readout.value = (f"degree {degree}, α = {self.alphas[j]:.1e}: train MSE {tr:.4f}, "
                              f"validation MSE {va:.4f} — {verdict}")
        self.live.blit()


def build_capacity_explorer(data=None, max_degree=15):
    """Build the explorer (default data: 20 noisy samples of sin(pi x)); display ``.widget``."""
    return CapacityExplorer(data, max_degree)
