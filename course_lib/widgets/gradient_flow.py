"""Gradient flow through a deep MLP: per-layer gradient norms and histograms at initialization.

Question it answers: *why do deep sigmoid networks not learn, and what do initialization and ReLU
change?* Choose the depth (hidden layers), the activation and the init scale ``s`` (weights drawn
from N(0, s^2 / fan_in); s = 1 is LeCun/Xavier-like, s = sqrt(2) is He); the left panel shows the norm
of dJ/dW for every layer (log scale: a straight falling line is *vanishing*, a rising one
*exploding* gradients), the right panel a histogram of log10 |dJ/dW| per layer.

Everything is computed when the widget is built, for every combination of the controls, in one
jitted call (``vmap`` over configurations): one network of ``MAX_DEPTH`` hidden layers in which layers
beyond ``depth`` are skipped, a fixed batch of random inputs and labels, softmax cross-entropy.
Moving a control only indexes the stored arrays and blits.

Widget protocol: see ``course_lib/widgets/activations.py``.

Taught in: notebooks/06_backpropagation.ipynb
"""
from __future__ import annotations

import numpy as np

from matplotlib.ticker import MaxNLocator

from .base import Explorer, LiveFigure, new_figure, panel

__all__ = ["WIDGETS", "ACTIVATIONS", "DEPTHS", "SCALES", "MAX_DEPTH", "WIDTH", "BINS",
           "flow_problem", "gradient_flow_table", "build_gradient_flow", "GradientFlow"]

WIDGETS = ("build_gradient_flow",)
ACTIVATIONS = ("sigmoid", "tanh", "relu")
DEPTHS = (1, 2, 3, 4, 6, 8, 10, 12, 15, 20)
SCALES = (0.25, 0.5, 0.75, 1.0, 1.25, 1.41, 1.75, 2.0, 2.5, 3.0)
MAX_DEPTH = max(DEPTHS)
WIDTH = 32
N_IN, N_OUT, BATCH = 32, 10, 64
BINS = np.linspace(-20.0, 4.0, 49)  # log10 |gradient| histogram edges


def flow_problem(seed: int = 0):
    """The fixed inputs, labels and unit-variance weight draws shared by every configuration."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((BATCH, N_IN)).astype(np.float32)
    y = rng.integers(0, N_OUT, size=BATCH).astype(np.int32)
    Z_in = rng.standard_normal((N_IN, WIDTH)).astype(np.float32)
    Z_h = rng.standard_normal((MAX_DEPTH - 1, WIDTH, WIDTH)).astype(np.float32)
    Z_out = rng.standard_normal((WIDTH, N_OUT)).astype(np.float32)
    return X, y, (Z_in, Z_h, Z_out)


def _histogram_rows(v):
    """np.histogram(row, BINS)[0] for every row of v (values inside [BINS[0], BINS[-1]]).

    The bins are uniform, so the bin is computed, not searched for (jnp.histogram's
    searchsorted made this table take seconds to compile), then corrected by exact comparisons
    with the edges so that rounding in the division never moves a value across an edge: bins
    are [e_k, e_{k+1}), the last one closed, as in NumPy."""
    import jax.numpy as jnp

    edges = jnp.asarray(BINS, v.dtype)
    n_bins = len(BINS) - 1
    k = jnp.clip(jnp.floor((v - BINS[0]) / (BINS[1] - BINS[0])).astype(jnp.int32), 0, n_bins - 1)
    k = jnp.where(v < edges[k], k - 1, k)
    k = jnp.where((v >= edges[jnp.minimum(k + 1, n_bins)]) & (k < n_bins - 1), k + 1, k)
    k = jnp.clip(k, 0, n_bins - 1)
    rows = jnp.arange(v.shape[0])[:, None]
    return jnp.zeros((v.shape[0], n_bins), jnp.int32).at[rows, k].add(1)



def _table_fn():
    import jax
    import jax.numpy as jnp
    from course_lib.losses import cross_entropy

    from course_lib import activations

    acts = [activations.get(name)[0] for name in ACTIVATIONS]

    def grads_for(act, scale, depth, X, y, Z):
        Z_in, Z_h, Z_out = Z
        params = {"W_in": scale * Z_in / np.sqrt(N_IN), "W_h": scale * Z_h / np.sqrt(WIDTH),
                  "W_out": Z_out / np.sqrt(WIDTH)}  # the readout layer keeps a standard scale
        pick = jax.nn.one_hot(act, len(acts), dtype=X.dtype)
        f = lambda z: sum(pick[i] * a(z) for i, a in enumerate(acts))

        def loss(p):
            h = f(X @ p["W_in"])

            def layer(h, k):
                return jnp.where(k + 1 < depth, f(h @ p["W_h"][k]), h), None

            h, _ = jax.lax.scan(layer, h, jnp.arange(MAX_DEPTH - 1))
            return cross_entropy(h @ p["W_out"], y)

        g = jax.grad(loss)(params)
        layers = jnp.concatenate([g["W_in"][None], g["W_h"]], axis=0)     # (MAX_DEPTH, W, W) hidden
        norms = jnp.sqrt(jnp.sum(layers ** 2, axis=(1, 2)))
        out_norm = jnp.sqrt(jnp.sum(g["W_out"] ** 2))
        # clipped into the histogram's range: exact zeros (dead ReLUs) land in the first bin
        logs = jnp.clip(jnp.log10(jnp.abs(layers).reshape(MAX_DEPTH, -1) + 1e-30), BINS[0], BINS[-1])
        return norms, out_norm, _histogram_rows(logs)

    @jax.jit
    def table(acts_idx, scales, depths, X, y, Z):
        fn = jax.vmap(grads_for, in_axes=(0, 0, 0, None, None, None))
        return fn(acts_idx, scales, depths, X, y, Z)

    return table


def gradient_flow_table(seed: int = 0) -> dict:
    """Per-layer gradient statistics for every (activation, scale, depth) in the control grids.

    Returns ``norms`` (A, S, D, MAX_DEPTH + 1): ||dJ/dW_l|| for hidden layers l = 1..depth (NaN
    beyond) and the output layer in the column ``depth``; and ``hist`` (A, S, D, MAX_DEPTH,
    len(BINS) - 1): counts of log10 |dJ/dW| per hidden layer, clipped into [BINS[0], BINS[-1]] so
    every weight is counted (rows beyond depth are zero).
    """
    X, y, Z = flow_problem(seed)
    A, S, D = len(ACTIVATIONS), len(SCALES), len(DEPTHS)
    a_i, s_i, d_i = np.meshgrid(np.arange(A), np.arange(S), np.arange(D), indexing="ij")
    norms, out_norm, hist = _table_fn()(a_i.ravel().astype(np.int32),
                                        np.asarray(SCALES, np.float32)[s_i.ravel()],
                                        np.asarray(DEPTHS, np.int32)[d_i.ravel()], X, y, Z)
    norms = np.asarray(norms, np.float64).reshape(A, S, D, MAX_DEPTH)
    out_norm = np.asarray(out_norm, np.float64).reshape(A, S, D)
    hist = np.array(hist).reshape(A, S, D, MAX_DEPTH, len(BINS) - 1)
    full = np.full((A, S, D, MAX_DEPTH + 1), np.nan)
    for j, d in enumerate(DEPTHS):
        full[:, :, j, :d] = norms[:, :, j, :d]
        full[:, :, j, d] = out_norm[:, :, j]
        hist[:, :, j, d:] = 0
    return {"norms": full, "hist": hist}


class GradientFlow(Explorer):
    """Precomputed gradient table, controls and the live figure (see :func:`build_gradient_flow`)."""

    def __init__(self, activation: str = "sigmoid", depth: int = 10, scale: float = 1.0):
        import ipywidgets as widgets

        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {', '.join(map(repr, ACTIVATIONS))}; got {activation!r}")
        if depth not in DEPTHS:
            raise ValueError(f"depth must be one of {DEPTHS}, got {depth!r}")
        if scale not in SCALES:
            raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
        self.table = gradient_flow_table()
        self.values: dict = {}
        self.controls = {
            "activation": widgets.Dropdown(options=list(ACTIVATIONS), value=activation, description="activation"),
            "depth": widgets.SelectionSlider(options=list(DEPTHS), value=depth, description="hidden layers"),
            "scale": widgets.SelectionSlider(options=list(SCALES), value=scale, description="init scale s"),
        }
        self.main_controls = ("depth", "scale", "activation")
        self.readout = widgets.HTML()
        self._build_figure()
        self._connect()

    def _build_figure(self):
        fig, (ax, ax_h) = new_figure(1, 2, figsize=(8.4, 3.4))
        ax.set(title="gradient norm per layer", xlabel="layer (1 = next to the input)",
               ylabel="||dJ/dW|| (log scale)", yscale="log", xlim=(0.5, MAX_DEPTH + 1.5), ylim=(1e-20, 1e6))
        ax.grid(alpha=0.3, which="major")
        ax_h.set(title="histogram of log10|dJ/dW| per hidden layer", xlabel="log10 |dJ/dW| (clipped to [-20, 4])",
                 ylabel="hidden layer")
        (self.line,) = ax.plot([], [], "o-", color="C0", ms=4)
        (self.out_point,) = ax.plot([], [], "s", color="C3", ms=6, label="output layer")
        ax.legend(loc="lower right", fontsize=8)
        self.image = ax_h.imshow(np.zeros((MAX_DEPTH, len(BINS) - 1)), origin="lower", aspect="auto",
                                 cmap="viridis", vmin=0, vmax=1,
                                 extent=(BINS[0], BINS[-1], 0.5, MAX_DEPTH + 0.5))
        # layers are whole numbers: ticks only at integers (never 2.5 or 7.5)
        for axis in (ax.xaxis, ax_h.yaxis):
            axis.set_major_locator(MaxNLocator(integer=True))
        fig.colorbar(self.image, ax=ax_h, label="weights per bin / largest bin")
        self.label = ax.text(0.02, 0.03, "", transform=ax.transAxes, va="bottom", fontsize=9,
                             bbox=dict(facecolor="white", alpha=0.8, edgecolor="none"))
        self.live = LiveFigure(fig, animated=[self.line, self.out_point, self.image, self.label])

    def update(self, activation: str, depth: int, scale: float):
        """Index the precomputed table and blit."""
        a, s, d = ACTIVATIONS.index(activation), SCALES.index(scale), DEPTHS.index(depth)
        norms = self.table["norms"][a, s, d]
        hidden = norms[:depth]
        layers = np.arange(1, depth + 1)
        self.line.set_data(layers, np.clip(hidden, 1e-20, None))
        self.out_point.set_data([depth + 1], [norms[depth]])
        hist = self.table["hist"][a, s, d].astype(float)
        self.image.set_data(hist / max(hist.max(), 1.0))
        ratio = hidden[0] / hidden[-1] if hidden[-1] > 0 else np.inf
        self.label.set_text(f"||dJ/dW_1|| = {hidden[0]:.1e}\n||dJ/dW_{depth}|| = {hidden[-1]:.1e}")
        self.live.blit()
        self.values = {"activation": activation, "depth": depth, "scale": scale, "norms": hidden.copy(),
                       "output_norm": float(norms[depth]), "ratio_first_last": float(ratio)}
        if hidden.max() < 1e-6:
            verdict = "every layer's gradient is tiny: nothing learns (vanishing)"
        elif ratio < 1e-2:
            verdict = "gradients vanish towards the input"
        elif ratio > 1e2 or hidden.max() > 1e2:
            verdict = "gradients explode"
        else:
            verdict = "gradients of similar size in every layer"
        self.readout.value = (f"<code>||dJ/dW_1|| = {hidden[0]:.2e}, ||dJ/dW_{depth}|| = {hidden[-1]:.2e}"
                              f", ratio {ratio:.2g}</code> &mdash; {verdict}")


def build_gradient_flow(activation: str = "sigmoid", depth: int = 10, scale: float = 1.0) -> GradientFlow:
    """Build the chapter-06 gradient-flow view; display it with ``display(g.widget)``."""
    return GradientFlow(activation, depth, scale)
