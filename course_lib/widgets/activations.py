"""Activation + derivative explorer: f(x) and f'(x) side by side, with a marker you can move.

Question it answers: *where does an activation pass a useful gradient back, and where does it
saturate (saturation, 饱和) or die?* Choose an activation (and Leaky ReLU's slope ``alpha``), move
the input ``x``; the left panel shows ``f`` with its tangent at ``x``, the right panel ``f'``, and the
readout prints ``f(x)`` and ``f'(x)`` as ``course_lib.activations`` computes them. The ``alpha``
slider is disabled unless Leaky ReLU is selected (it changes nothing otherwise).

Every curve is computed once, when the explorer is built, with ``course_lib.activations.get(name)``
on a fixed grid of inputs (and of ``alpha`` values); moving a control only indexes those arrays and
blits. The axes keep fixed limits, so all activations are drawn on the same scale and a change never
needs a full redraw.

Widget protocol (used by ``benchmarks/bench_widgets.py``, see ``benchmarks/README.md``): the module
lists its builders in ``WIDGETS``; a builder called without arguments returns an object with
``controls`` (name -> ipywidgets control), ``main_controls`` (names to benchmark), ``live`` (the
``LiveFigure``) and ``widget`` (the box to display).

Taught in: notebooks/03_neurons_and_activations.ipynb
"""
from __future__ import annotations

import numpy as np

from course_lib import _validation as V
from .base import Explorer, LiveFigure, new_figure

__all__ = ["WIDGETS", "ACTIVATIONS", "activation_curves", "build_activation_explorer", "ActivationExplorer"]

WIDGETS = ("build_activation_explorer",)

#: Activations offered by the explorer (names understood by ``course_lib.activations.get``).
ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky_relu", "identity")

_LABELS = {"sigmoid": "sigmoid", "tanh": "tanh", "relu": "ReLU", "leaky_relu": "Leaky ReLU",
           "identity": "identity"}


def _grid(lo: float, hi: float, step: float) -> np.ndarray:
    """Points lo, lo+step, ..., hi, rounded so that a slider value maps to an exact index."""
    n = int(round((hi - lo) / step))
    return np.round(lo + step * np.arange(n + 1), 10)


def _curves_fn():
    import jax

    from course_lib import activations as act

    @jax.jit
    def curves(x, alphas):
        out = {}
        for name in ACTIVATIONS:
            f, df = act.get(name)
            if name == "leaky_relu":
                out[name] = (jax.vmap(lambda a: f(x, alpha=a))(alphas), jax.vmap(lambda a: df(x, alpha=a))(alphas))
            else:
                out[name] = (f(x), df(x))
        return out

    return curves


def activation_curves(x_grid, alphas) -> dict:
    """Precompute ``f`` and ``f'`` of every activation in :data:`ACTIVATIONS` on ``x_grid``.

    Returns ``{name: (f, df)}`` with arrays of shape ``(len(x_grid),)``, except ``"leaky_relu"``
    whose arrays have shape ``(len(alphas), len(x_grid))`` (one row per slope ``alpha``). Values come
    from the public functions of ``course_lib.activations`` (float32), traced together under one
    ``jax.jit`` (one compilation), so the explorer shows exactly what the library computes.
    """
    x = np.asarray(x_grid, dtype=np.float32)
    if x.ndim != 1 or x.size < 2 or not np.all(np.isfinite(x)):
        raise ValueError(f"x_grid must be a 1-D array of at least 2 finite points, got shape {x.shape}")
    alphas = np.asarray(alphas, dtype=np.float32)
    if alphas.ndim != 1 or alphas.size < 1 or np.any(alphas < 0) or np.any(alphas >= 1):
        raise ValueError(f"alphas must be a non-empty 1-D array of slopes in [0, 1), got {alphas!r}")
    out = _curves_fn()(x, alphas)
    return {name: (np.asarray(f), np.asarray(df)) for name, (f, df) in out.items()}


class ActivationExplorer(Explorer):
    """The explorer's state: precomputed curves, controls, the live figure and the readout.

    Use :func:`build_activation_explorer` to make one. ``values`` holds the numbers the readout
    shows (``x``, ``f``, ``df``), which tests compare with ``course_lib.activations``.
    """

    def __init__(self, activation: str = "sigmoid", alpha: float = 0.1, x: float = 2.0,
                 x_range: float = 5.0, x_step: float = 0.05, alpha_max: float = 0.3):
        import ipywidgets as widgets

        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {', '.join(map(repr, ACTIVATIONS))}; got {activation!r}")
        for name, v in (("x_range", x_range), ("x_step", x_step), ("alpha_max", alpha_max)):
            V.check_number(v, name, low=0, low_open=True)
        if not 0 <= alpha <= alpha_max:
            raise ValueError(f"alpha must lie in [0, alpha_max={alpha_max}], got {alpha!r}")
        if not -x_range <= x <= x_range:
            raise ValueError(f"x must lie in [-x_range, x_range] = [{-x_range}, {x_range}], got {x!r}")

        self.x_grid = _grid(-x_range, x_range, x_step)
        self.alphas = _grid(0.0, alpha_max, 0.01)
        self._x_step = x_step
        self.curves = activation_curves(self.x_grid, self.alphas)
        self.values: dict = {}

        self.controls = {
            "activation": widgets.Dropdown(options=[(_LABELS[n], n) for n in ACTIVATIONS], value=activation,
                                           description="activation"),
            "alpha": widgets.FloatSlider(value=alpha, min=0.0, max=alpha_max, step=0.01,
                                         description="Leaky α", readout_format=".2f", continuous_update=True),
            "x": widgets.FloatSlider(value=x, min=-x_range, max=x_range, step=x_step, description="input x",
                                     readout_format=".2f", continuous_update=True),
        }
        self.main_controls = ("x", "activation", "alpha")
        # alpha only matters for Leaky ReLU: benchmarks set this first (see benchmarks/README.md)
        self.bench_presets = {"alpha": {"activation": "leaky_relu"}}
        self._shown = None
        self.readout = widgets.HTML()
        self._build_figure(x_range)
        self._connect()

    def _build_figure(self, x_range: float):
        fig, (ax_f, ax_d) = new_figure(1, 2, figsize=(8.0, 3.2))
        ax_f.set(title="activation f(x)", xlabel="pre-activation x", ylabel="f(x)",
                 xlim=(-x_range, x_range), ylim=(-1.25, 3.25))
        ax_d.set(title="derivative f'(x)", xlabel="pre-activation x", ylabel="f'(x)",
                 xlim=(-x_range, x_range), ylim=(-0.1, 1.1))
        for ax in (ax_f, ax_d):
            ax.axhline(0, color="0.8", lw=0.8)
            ax.axvline(0, color="0.8", lw=0.8)
            ax.grid(alpha=0.3)
        xg = self.x_grid
        (self.f_line,) = ax_f.plot(xg, np.zeros_like(xg), color="C0", lw=2)
        # the tangent: a solid line of its own colour, drawn over the curve and long enough to read
        # its slope, f'(x), at a glance
        (self.tangent,) = ax_f.plot([], [], color="C3", lw=2.2, solid_capstyle="round", zorder=3)
        (self.f_marker,) = ax_f.plot([], [], "o", color="C3", ms=7, zorder=4)
        (self.d_line,) = ax_d.plot(xg, np.zeros_like(xg), color="C1", lw=2)
        (self.d_marker,) = ax_d.plot([], [], "o", color="C3", ms=7)
        # the activation's name is shown in the readout, not in the figure: text is the most
        # expensive artist to re-draw on every update
        self.live = LiveFigure(fig, animated=[self.f_line, self.tangent, self.f_marker, self.d_line,
                                              self.d_marker])

    def _index(self, grid: np.ndarray, value: float, step: float) -> int:
        return int(np.clip(round((value - grid[0]) / step), 0, len(grid) - 1))

    def update(self, activation: str, alpha: float, x: float):
        """Set the artists' data for the given control values and blit (no computation of f)."""
        f_all, d_all = self.curves[activation]
        a_i = self._index(self.alphas, alpha, 0.01)
        if activation == "leaky_relu":
            f_all, d_all = f_all[a_i], d_all[a_i]
        i = self._index(self.x_grid, x, self._x_step)
        x0, f0, d0 = float(self.x_grid[i]), float(f_all[i]), float(d_all[i])
        self.values = {"activation": activation, "alpha": float(self.alphas[a_i]), "x": x0, "f": f0, "df": d0}
        self.controls["alpha"].disabled = activation != "leaky_relu"     # the slope only exists there

        if self._shown != (activation, a_i):  # moving x alone leaves the curves' data untouched
            self._shown = (activation, a_i)
            self.f_line.set_ydata(f_all)
            self.d_line.set_ydata(d_all)
        half = 1.5
        self.tangent.set_data([x0 - half, x0 + half], [f0 - half * d0, f0 + half * d0])
        self.f_marker.set_data([x0], [f0])
        self.d_marker.set_data([x0], [d0])
        name = _LABELS[activation] + (f" (α = {self.alphas[a_i]:.2f})" if activation == "leaky_relu" else "")
        self.live.blit()
        note = ""
        if activation in ("sigmoid", "tanh") and d0 < 0.01:
            note = " &mdash; saturated: almost no gradient flows back"
        elif d0 == 0.0:
            note = " &mdash; zero gradient: this unit does not learn from this input"
        self.readout.value = (f"<b>{name}</b> &nbsp; <code>x = {x0:+.2f} &nbsp; f(x) = {f0:+.4f} &nbsp; "
                              f"f'(x) = {d0:.4f}</code>{note}")


def build_activation_explorer(activation: str = "sigmoid", alpha: float = 0.1, x: float = 2.0,
                              x_range: float = 5.0) -> ActivationExplorer:
    """Build the chapter-03 activation + derivative explorer; display it with ``display(e.widget)``.

    ``activation``: initial activation (one of :data:`ACTIVATIONS`); ``alpha``: initial Leaky ReLU
    slope in [0, 0.3]; ``x``: initial marker position; ``x_range``: the inputs shown, [-x_range, x_range].
    """
    return ActivationExplorer(activation=activation, alpha=alpha, x=x, x_range=x_range)
