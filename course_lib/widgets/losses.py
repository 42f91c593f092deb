"""Loss vs prediction explorer: each loss and its gradient as the prediction moves, for one example.

Question it answers: *how hard does each loss push a wrong prediction back, and through which
variable?* One example with true label ``y`` (a hard label 0/1 or a soft target in between) and a
predicted probability ``p = sigmoid(z)``. The top row shows each chosen loss and its derivative as a
function of ``p``; the bottom row as a function of the logit ``z`` (what a network actually outputs
before the sigmoid). There one sees why mean squared error (均方误差) behind a sigmoid learns slowly
when it is confidently wrong (its ``dL/dz`` goes to 0) while binary cross-entropy (二元交叉熵) does
not (``dL/dz = p - y``), and that KL divergence differs from cross-entropy only by a constant in
``p`` (same gradients).

All curves are computed once, when the explorer is built, by one jitted call of the
``course_lib.losses`` functions and ``jax.grad`` over a grid of predictions and targets; moving a
control only indexes those arrays and blits.

Widget protocol: see :mod:`course_lib.widgets.activations` and ``benchmarks/README.md``.

Taught in: notebooks/04_loss_functions.ipynb
"""
from __future__ import annotations

import numpy as np

from .activations import _grid
from .base import Explorer, LiveFigure, new_figure

__all__ = ["WIDGETS", "LOSSES", "loss_curves", "build_loss_explorer", "LossExplorer"]

WIDGETS = ("build_loss_explorer",)

#: Losses offered by the explorer: key -> label.
LOSSES = {"mse": "squared error", "bce": "binary cross-entropy", "kl": "KL divergence"}

_P_STEP = 0.0025     # grid of predicted probabilities: 0.0025, 0.005, ..., 0.9975 (399 points)
_T_STEP = 0.05       # grid of targets: 0, 0.05, ..., 1


def _curves_fn():
    import jax
    import jax.numpy as jnp

    from course_lib import losses

    def bernoulli(q):  # (..., ) -> (..., 2) rows [q, 1 - q]
        return jnp.stack([q, 1.0 - q], axis=-1)

    def by_p(name, p, y):
        if name == "mse":
            return losses.mse(p, y, reduction="none")
        if name == "bce":
            return losses.binary_cross_entropy(p, y, reduction="none")
        return losses.kl_divergence(bernoulli(y), bernoulli(p))

    def by_z(name, z, y):
        if name == "bce":  # the stable form: never computes log(sigmoid(z)) directly
            return losses.binary_cross_entropy_with_logits(z, y, reduction="none")
        return by_p(name, jax.nn.sigmoid(z), y)

    @jax.jit
    def curves(p, z, y):
        out = {}
        for name in LOSSES:
            value = by_p(name, p, y)
            dp = jax.grad(lambda p_: jnp.sum(by_p(name, p_, y)))(p)
            value_z = by_z(name, z, y)
            dz = jax.grad(lambda z_: jnp.sum(by_z(name, z_, y)))(z)
            out[name] = {"value": value, "dp": dp, "value_z": value_z, "dz": dz}
        return out

    return curves


def loss_curves(p_grid, targets) -> dict:
    """Every loss of :data:`LOSSES` and its derivatives, for all predictions and targets.

    ``p_grid``: predicted probabilities in (0, 1), shape (G,); ``targets``: true labels/targets in
    [0, 1], shape (T,). Returns ``{loss: {"value", "dp", "value_z", "dz"}}`` with numpy arrays of
    shape (T, G): the loss, ``dL/dp``, the loss computed from the logit ``z = log(p / (1 - p))``, and
    ``dL/dz``. Computed in float32 by ``course_lib.losses`` under one ``jax.jit``.
    """
    p = np.asarray(p_grid, dtype=np.float64)
    y = np.asarray(targets, dtype=np.float64)
    if p.ndim != 1 or p.size < 2 or not np.all((p > 0) & (p < 1)):
        raise ValueError(f"p_grid must be a 1-D array of at least 2 probabilities in (0, 1), got {p!r}")
    if y.ndim != 1 or y.size < 1 or not np.all((y >= 0) & (y <= 1)):
        raise ValueError(f"targets must be a 1-D array of values in [0, 1], got {y!r}")
    z = np.log(p) - np.log1p(-p)
    P, Y = np.broadcast_arrays(p[None, :], y[:, None])
    Z = np.broadcast_to(z[None, :], P.shape)
    out = _curves_fn()(P.astype(np.float32), Z.astype(np.float32), Y.astype(np.float32))
    return {k: {kk: np.asarray(vv) for kk, vv in v.items()} for k, v in out.items()}


class LossExplorer(Explorer):
    """The explorer's state: precomputed curves, controls, live figure, readout.

    Use :func:`build_loss_explorer`. ``values`` holds what the readout shows: for each selected
    loss, ``(loss, dL/dp, dL/dz)`` at the marker, which tests compare with ``course_lib.losses``.
    """

    def __init__(self, target: float = 1.0, losses=("mse", "bce"), p: float = 0.1):
        import ipywidgets as widgets

        losses = tuple(losses)
        for name in losses:
            if name not in LOSSES:
                raise ValueError(f"losses must be a subset of {', '.join(map(repr, LOSSES))}; got {name!r}")
        if not 0 <= target <= 1:
            raise ValueError(f"target must lie in [0, 1], got {target!r}")
        if not 0.01 <= p <= 0.99:
            raise ValueError(f"p must lie in [0.01, 0.99], got {p!r}")

        self.p_grid = _grid(_P_STEP, 1 - _P_STEP, _P_STEP)
        self.z_grid = np.log(self.p_grid) - np.log1p(-self.p_grid)
        self.targets = _grid(0.0, 1.0, _T_STEP)
        self.curves = loss_curves(self.p_grid, self.targets)
        self.values: dict = {}

        self.controls = {
            "target": widgets.FloatSlider(value=target, min=0.0, max=1.0, step=_T_STEP, description="true y",
                                          readout_format=".2f"),
            "losses": widgets.SelectMultiple(options=[(label, key) for key, label in LOSSES.items()],
                                             value=losses, rows=3, description="losses"),
            "p": widgets.FloatSlider(value=p, min=0.01, max=0.99, step=0.01, description="predicted p",
                                     readout_format=".2f"),
        }
        self.main_controls = ("p", "target", "losses")
        self._shown = None
        self.readout = widgets.HTML()
        self._build_figure()
        self._connect()

    def _build_figure(self):
        fig, axes = new_figure(2, 2, figsize=(7.2, 5.0))
        (a_lp, a_dp), (a_lz, a_dz) = axes
        a_lp.set(title="loss vs predicted probability", xlabel="predicted probability p", ylabel="loss L",
                 xlim=(0, 1), ylim=(-0.1, 4))
        a_dp.set(title="gradient dL/dp", xlabel="predicted probability p", ylabel="dL/dp",
                 xlim=(0, 1), ylim=(-8, 8))
        zmax = float(self.z_grid[-1])
        a_lz.set(title="loss vs logit (p = sigmoid(z))", xlabel="logit z", ylabel="loss L",
                 xlim=(-zmax, zmax), ylim=(-0.1, 4))
        a_dz.set(title="gradient dL/dz", xlabel="logit z", ylabel="dL/dz", xlim=(-zmax, zmax), ylim=(-1.1, 1.1))
        for ax in axes.flat:
            ax.axhline(0, color="0.8", lw=0.8)
            ax.grid(alpha=0.3)
        self.lines, self.markers = {}, {}
        animated = []
        for k, (key, label) in enumerate(LOSSES.items()):
            color, ls = f"C{k}", ("-", "-", ":")[k]
            row = {}
            for slot, ax, xg in (("value", a_lp, self.p_grid), ("dp", a_dp, self.p_grid),
                                 ("value_z", a_lz, self.z_grid), ("dz", a_dz, self.z_grid)):
                (row[slot],) = ax.plot(xg, np.zeros_like(xg), color=color, ls=ls, lw=2,
                                       label=label if slot == "value" else None)
            self.lines[key] = row
            self.markers[key] = {slot: ax.plot([], [], "o", color=color, ms=6)[0]
                                 for slot, ax in (("value", a_lp), ("dp", a_dp), ("value_z", a_lz), ("dz", a_dz))}
            animated += list(row.values()) + list(self.markers[key].values())
        a_lp.legend(loc="upper center", fontsize=8)
        self.live = LiveFigure(fig, animated=animated)

    def update(self, target: float, losses, p: float):
        """Index the precomputed curves for the control values, set the artists' data, blit."""
        t = int(np.clip(round(target / _T_STEP), 0, len(self.targets) - 1))
        i = int(np.clip(round(p / _P_STEP) - 1, 0, len(self.p_grid) - 1))
        p0, z0 = float(self.p_grid[i]), float(self.z_grid[i])
        values = {}
        new_curves = self._shown != (t, tuple(losses))
        self._shown = (t, tuple(losses))
        for key in LOSSES:
            shown = key in losses
            c = self.curves[key]
            if new_curves:  # moving p alone leaves the curves' data untouched
                for slot, line in self.lines[key].items():
                    line.set_visible(shown)
                    line.set_ydata(c[slot][t])
            for slot, marker in self.markers[key].items():
                marker.set_visible(shown)
                marker.set_data([z0 if slot in ("value_z", "dz") else p0], [float(c[slot][t, i])])
            if shown:
                values[key] = (float(c["value"][t, i]), float(c["dp"][t, i]), float(c["dz"][t, i]))
        self.values = {"target": float(self.targets[t]), "p": p0, "z": z0, "losses": values}
        self.live.blit()
        rows = "".join(f"<tr><td>{LOSSES[k]}</td><td>{v[0]:.4f}</td><td>{v[1]:+.4f}</td><td>{v[2]:+.4f}</td></tr>"
                       for k, v in values.items())
        self.readout.value = (f"<code>y = {self.targets[t]:.2f}, p = {p0:.3f}, z = {z0:+.3f}</code>"
                              f"<table><tr><th>loss</th><th>L</th><th>dL/dp</th><th>dL/dz</th></tr>{rows}</table>")


def build_loss_explorer(target: float = 1.0, losses=("mse", "bce"), p: float = 0.1) -> LossExplorer:
    """Build the chapter-04 loss vs prediction explorer; display it with ``display(e.widget)``.

    ``target``: true label/target y in [0, 1]; ``losses``: keys of :data:`LOSSES` shown at first;
    ``p``: initial predicted probability in [0.01, 0.99].
    """
    return LossExplorer(target=target, losses=losses, p=p)
