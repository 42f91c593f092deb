"""Chapter 06's gradient-flow view, now for four kinds of deep network: plain, batch-normalized,
residual, and residual with layer normalization.

Question it answers: *why do normalization and residual connections let deep networks train?* The
same controls and panels as chapter 06 (``gradient_flow.GradientFlow``, reused unchanged) plus a
"network" dropdown. The blocks are those of ``course_lib.normalization`` (``deep_mlp_forward``):
plain f(h W), batchnorm f(BN(h W)), residual h + f(h) W, residual+layernorm h + f(LN(h)) W. The
inputs, labels and weight draws are chapter 06's (``gradient_flow.flow_problem``), so the "plain"
table is exactly chapter 06's. As in ``init_deep_mlp``, the residual network (no normalization)
scales its branches by 1/sqrt(depth).

Everything is computed when the widget is built, in one jitted call; the controls only index the
stored tables.

Taught in: notebooks/17_training_deep_networks.ipynb
"""
from __future__ import annotations

import functools

import numpy as np

from course_lib import _validation as V
from . import gradient_flow as gf

__all__ = ["WIDGETS", "deep_flow_tables", "build_deep_flow", "DeepFlow"]

WIDGETS = ("build_deep_flow",)


@functools.cache                                   # one compiled program for every seed
def _tables_fn():
    import jax
    import jax.numpy as jnp
    from course_lib.losses import cross_entropy

    from course_lib import normalization as N

    acts = [N.ACTIVATIONS[name] for name in gf.ACTIVATIONS]

    def grads_for(network, act, scale, depth, X, y, Z):
        Z_in, Z_h, Z_out = Z
        blocks = jnp.maximum(depth - 1, 1).astype(X.dtype)                        # hidden layers after the first
        s_h = scale / jnp.sqrt(blocks) if network == "residual" else scale         # as in init_deep_mlp
        params = {"W_in": scale * Z_in / np.sqrt(gf.N_IN), "W_h": s_h * Z_h / np.sqrt(gf.WIDTH),
                  "W_out": Z_out / np.sqrt(gf.WIDTH)}
        pick = jax.nn.one_hot(act, len(acts), dtype=X.dtype)
        f = lambda z: sum(pick[i] * a(z) for i, a in enumerate(acts))          # noqa: E731
        ones, zeros = jnp.ones(gf.WIDTH, X.dtype), jnp.zeros(gf.WIDTH, X.dtype)

        def loss(p):
            h = f(X @ p["W_in"])

            def layer(h, k):
                stats = {"mean": zeros, "var": ones}
                new, _ = N.hidden_block(h, p["W_h"][k], zeros, ones, zeros, stats, network, activation=f)
                return jnp.where(k + 1 < depth, new, h), None

            h, _ = jax.lax.scan(layer, h, jnp.arange(gf.MAX_DEPTH - 1))
            return cross_entropy(h @ p["W_out"], y)

        g = jax.grad(loss)(params)
        layers = jnp.concatenate([g["W_in"][None], g["W_h"]], axis=0)
        norms = jnp.sqrt(jnp.sum(layers ** 2, axis=(1, 2)))
        logs = jnp.clip(jnp.log10(jnp.abs(layers).reshape(gf.MAX_DEPTH, -1) + 1e-30), gf.BINS[0], gf.BINS[-1])
        return norms, jnp.sqrt(jnp.sum(g["W_out"] ** 2)), gf._histogram_rows(logs)

    @jax.jit
    def tables(acts_idx, scales, depths, X, y, Z):
        return {net: jax.vmap(lambda a, s, d, net=net: grads_for(net, a, s, d, X, y, Z))(acts_idx, scales, depths)
                for net in N.NETWORKS}

    return tables


def deep_flow_tables(seed: int = 0) -> dict:
    """``{network: table}`` for every network of ``course_lib.normalization.NETWORKS``; each table
    is shaped like chapter 06's ``gradient_flow_table`` (``norms`` (A, S, D, MAX_DEPTH + 1) with NaN
    beyond the depth, ``hist`` (A, S, D, MAX_DEPTH, bins))."""
    X, y, Z = gf.flow_problem(seed)
    A, S, D = len(gf.ACTIVATIONS), len(gf.SCALES), len(gf.DEPTHS)
    a_i, s_i, d_i = np.meshgrid(np.arange(A), np.arange(S), np.arange(D), indexing="ij")
    out = _tables_fn()(a_i.ravel().astype(np.int32), np.asarray(gf.SCALES, np.float32)[s_i.ravel()],
                       np.asarray(gf.DEPTHS, np.int32)[d_i.ravel()], X, y, Z)
    result = {}
    for net, (norms, out_norm, hist) in out.items():
        norms = np.asarray(norms, np.float64).reshape(A, S, D, gf.MAX_DEPTH)
        out_norm = np.asarray(out_norm, np.float64).reshape(A, S, D)
        hist = np.array(hist).reshape(A, S, D, gf.MAX_DEPTH, len(gf.BINS) - 1)
        full = np.full((A, S, D, gf.MAX_DEPTH + 1), np.nan)
        for j, d in enumerate(gf.DEPTHS):
            full[:, :, j, :d] = norms[:, :, j, :d]
            full[:, :, j, d] = out_norm[:, :, j]
            hist[:, :, j, d:] = 0
        result[net] = {"norms": full, "hist": hist}
    return result


class DeepFlow(gf.GradientFlow):
    """Chapter 06's figure and update, with one precomputed table per network (module docstring)."""

    def __init__(self, network: str = "plain", activation: str = "sigmoid", depth: int = 20, scale: float = 1.0,
                 seed: int = 0):
        import ipywidgets as widgets

        from course_lib.normalization import NETWORKS

        if network not in NETWORKS:
            raise ValueError(f"network must be one of {', '.join(map(repr, NETWORKS))}; got {network!r}")
        if activation not in gf.ACTIVATIONS:
            raise ValueError(f"activation must be one of {', '.join(map(repr, gf.ACTIVATIONS))}; got {activation!r}")
        if depth not in gf.DEPTHS:
            raise ValueError(f"depth must be one of {gf.DEPTHS}, got {depth!r}")
        if scale not in gf.SCALES:
            raise ValueError(f"scale must be one of {gf.SCALES}, got {scale!r}")
        V.check_int(seed, "seed", minimum=0)
        self.tables = deep_flow_tables(int(seed))
        self.table = self.tables[network]
        self.values: dict = {}
        self.controls = {
            "network": widgets.Dropdown(options=list(NETWORKS), value=network, description="network"),
            "activation": widgets.Dropdown(options=list(gf.ACTIVATIONS), value=activation, description="activation"),
            "depth": widgets.SelectionSlider(options=list(gf.DEPTHS), value=depth, description="hidden layers"),
            "scale": widgets.SelectionSlider(options=list(gf.SCALES), value=scale, description="init scale s"),
        }
        self.main_controls = ("network", "depth", "scale", "activation")
        self.readout = widgets.HTML()
        self._build_figure()
        self._connect()

    def update(self, network: str, activation: str, depth: int, scale: float):
        """Pick the network's table, then chapter 06's update (index and blit)."""
        self.table = self.tables[network]
        super().update(activation, depth, scale)
        self.values["network"] = network
        self.readout.value = f"<b>{network}</b>: " + self.readout.value


def build_deep_flow(network: str = "plain", activation: str = "sigmoid", depth: int = 20,
                    scale: float = 1.0, seed: int = 0) -> DeepFlow:
    """Build the chapter-17 gradient-flow view; display it with ``display(w.widget)``. ``seed`` draws
    the inputs, labels and weights (``gradient_flow.flow_problem``)."""
    return DeepFlow(network, activation, depth, scale, seed)
