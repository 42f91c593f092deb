"""A computation graph with its values and gradients, recomputed by the chapter-16 engine as you
move the inputs.

Question it answers: *what does the backward pass store at each node, and why is dJ/dx the slope of
J along x?* The graph is one tanh neuron with a squared error, ``J = (tanh(x1 w1 + x2 w2 + b) - y)^2``,
built from ``course_lib.autodiff.Tensor`` operations. Each node shows its gradient dJ/d(node)
(backward pass) under it, and the ring around it is coloured by that gradient (blue negative, red
positive); the table above the figure lists every node's value (forward pass) and gradient. The right panel sweeps one input ("slope along") over its slider
range with everything else fixed, and draws J along it with the tangent whose slope is that input's
``.grad``.

Each control change runs the engine on a graph of 13 nodes (and once more on an array of 121 values
for the sweep): about a millisecond of NumPy, no JAX, nothing compiled. (Agg draws text glyph by
glyph, so the figure carries one short number per node and the table the rest.) ``draw_graph`` draws any
engine graph (the chapter's pictures use it too).

Taught in: notebooks/16_automatic_differentiation.ipynb
"""
from __future__ import annotations

import numpy as np

from course_lib import _validation as V
from .base import Explorer, LiveFigure, new_figure

__all__ = ["WIDGETS", "INPUTS", "RANGE", "neuron_graph", "graph_layout", "draw_graph",
           "build_autodiff_graph", "AutodiffGraph"]

WIDGETS = ("build_autodiff_graph",)
INPUTS = ("x1", "w1", "x2", "w2", "b")
RANGE = (-2.0, 2.0)
TARGET = 0.5                                       # y, the neuron's target
_SWEEP = np.round(np.linspace(*RANGE, 121), 10)


def neuron_graph(x1, w1, x2, w2, b, y=TARGET):
    """Build ``J = (tanh(x1 w1 + x2 w2 + b) - y)^2`` with the engine, run ``J.backward()`` and
    return ``(J, leaves)`` where ``leaves`` maps each input name to its Tensor. The inputs may be
    arrays of one shape (then J is summed over them before the backward pass)."""
    from course_lib.autodiff import Tensor

    leaves = {name: Tensor(v, name) for name, v in zip(INPUTS + ("y",), (x1, w1, x2, w2, b, y))}
    z = leaves["x1"] * leaves["w1"] + leaves["x2"] * leaves["w2"] + leaves["b"]
    err = z.tanh() - leaves["y"]
    J = err * err
    J.name = "J"
    total = J if J.data.ndim == 0 else J.sum()
    total.backward()
    return J, leaves


def graph_layout(root):
    """Positions for drawing: columns by depth (an input sits just left of its first user), rows
    near the mean row of a node's users, at least one unit apart.

    Returns ``(order, xy)``: the nodes in topological order and an (n, 2) array of positions."""
    from course_lib.autodiff import topological_order

    order = topological_order(root)
    index = {id(n): i for i, n in enumerate(order)}
    users = [[] for _ in order]
    depth = np.zeros(len(order), dtype=int)
    for i, node in enumerate(order):
        for p in node.parents:
            users[index[id(p)]].append(i)
        depth[i] = max((depth[index[id(p)]] + 1 for p in node.parents), default=0)
    for i in range(len(order) - 1, -1, -1):          # inputs move right, next to their first user
        if not order[i].parents and users[i]:
            depth[i] = min(depth[u] for u in users[i]) - 1
    xy = np.zeros((len(order), 2))
    xy[:, 0] = depth - depth.min()
    for d in sorted(set(depth), reverse=True):        # from the loss leftwards
        members = [i for i in range(len(order)) if depth[i] == d]
        want = [np.mean([xy[u, 1] for u in users[i]]) if users[i] else 0.0 for i in members]
        ranked = sorted(range(len(members)), key=lambda k: -want[k])
        ys = []
        for k in ranked:
            ys.append(min(want[k], ys[-1] - 1.0) if ys else want[k])
        shift = np.mean(want) - np.mean(ys)
        for k, y in zip(ranked, ys):
            xy[members[k], 1] = y + shift
    return order, xy


def _label(node):
    if node.name and node.op:                                       # a named result: "J=*"
        return f"{node.name}={node.op}"
    if node.name:
        return node.name
    return node.op or f"{float(node.data.reshape(-1)[0]):g}"      # an unnamed input: a constant


def draw_graph(ax, root, *, values=True):
    """Draw an engine graph on ``ax``: one circle per node (input name or operation), arrows from
    parents to children, and, with ``values``, each node's value and gradient under it (scalars).
    Returns ``(order, rings, texts)`` for a caller that updates the drawing: ``rings`` (a scatter of
    one ring per node, to colour), ``texts`` the node labels, then the value/gradient texts."""
    order, xy = graph_layout(root)
    index = {id(n): i for i, n in enumerate(order)}
    for i, node in enumerate(order):
        for k, p in enumerate(node.parents):
            j = index[id(p)]
            uses = [m for m, q in enumerate(node.parents) if q is p]     # a parent used twice: two arcs
            rad = 0.0 if len(uses) == 1 else (0.35 if k == uses[0] else -0.35)
            ax.annotate("", xy=xy[i], xytext=xy[j], arrowprops=dict(arrowstyle="->", color="0.55",
                        shrinkA=9, shrinkB=9, lw=1.0, connectionstyle=f"arc3,rad={rad}"))
    ax.scatter(xy[:, 0], xy[:, 1], s=380, c="white", edgecolors="0.3", zorder=2)
    boxes = ax.scatter(xy[:, 0], xy[:, 1], s=520, facecolors="none", edgecolors="0.3", linewidths=3, zorder=2)
    labels = [ax.text(x, y, _label(node), ha="center", va="center", zorder=3,
                      fontsize=8 if len(_label(node)) < 3 else 6.5)
              for (x, y), node in zip(xy, order)]
    texts = [ax.text(x, y - 0.22, "", ha="center", va="top", fontsize=7, zorder=3) for x, y in xy]
    if values:
        for node, t in zip(order, texts):
            t.set_text(_node_text(node))
    ax.set_xlim(xy[:, 0].min() - 0.5, xy[:, 0].max() + 0.5)
    ax.set_ylim(xy[:, 1].min() - 0.75, xy[:, 1].max() + 0.35)
    ax.set_axis_off()
    return order, boxes, labels + texts


def _node_text(node):
    return f"{float(node.data):+.3f}\n{float(node.grad):+.3f}"


class AutodiffGraph(Explorer):
    """The neuron's graph, its values and gradients, and J along one input (see module docstring)."""

    def __init__(self, x1=1.0, w1=-0.5, x2=0.5, w2=1.0, b=0.2, along="w1"):
        import ipywidgets as widgets

        start = dict(x1=x1, w1=w1, x2=x2, w2=w2, b=b)
        for name, v in start.items():
            V.check_number(v, name, low=RANGE[0], high=RANGE[1])
        if along not in INPUTS:
            raise ValueError(f"along must be one of {', '.join(map(repr, INPUTS))}; got {along!r}")
        self.controls = {name: widgets.FloatSlider(value=v, min=RANGE[0], max=RANGE[1], step=0.05,
                                                   description=name, continuous_update=True)
                         for name, v in start.items()}
        self.controls["along"] = widgets.Dropdown(options=list(INPUTS), value=along, description="slope along")
        self.values: dict = {}
        self.readout = widgets.HTML()
        # the benchmark's slider sweeps end with every input equal, where x1/w1 and x2/w2 are symmetric
        self.bench_presets = {"along": dict(x1=1.0, w1=-0.5, x2=0.5, w2=1.5, b=0.2)}
        self._build_figure()
        self._connect()

    def _build_figure(self):
        fig, (ax, ax_j) = new_figure(1, 2, figsize=(8.6, 3.3), width_ratios=(1.9, 1.0))
        J, _ = neuron_graph(*(c.value for c in list(self.controls.values())[:5]))
        self.order, self.rings, texts = draw_graph(ax, J, values=False)
        self.labels, self.texts = texts[:len(self.order)], texts[len(self.order):]
        ax.set_title("dJ/d node under each node (values and gradients: table above)", fontsize=9)
        ax_j.set(title="J along one input, tangent slope = its .grad", xlabel="input value",
                 ylabel="J", xlim=RANGE, ylim=(-0.1, 2.4))
        ax_j.title.set_fontsize(9)
        ax_j.grid(alpha=0.3)
        (self.curve,) = ax_j.plot([], [], color="C0", lw=1.5)
        (self.tangent,) = ax_j.plot([], [], color="C3", lw=1.2, ls="--")
        (self.point,) = ax_j.plot([], [], "o", color="C3", ms=5)
        self.live = LiveFigure(fig, animated=[self.rings, *self.texts, self.curve, self.tangent, self.point])

    def update(self, x1, w1, x2, w2, b, along):
        """Run the engine forward and backward, write each node's value and gradient, redraw."""
        import matplotlib.cm as cm

        J, leaves = neuron_graph(x1, w1, x2, w2, b)
        from course_lib.autodiff import topological_order

        order = topological_order(J)
        for node, t in zip(order, self.texts):
            t.set_text(f"{float(node.grad):+.2f}")
        grads = np.array([float(n.grad) for n in order])
        self.rings.set_edgecolors(cm.coolwarm(0.5 + 0.5 * np.tanh(grads)))
        inputs = dict(x1=x1, w1=w1, x2=x2, w2=w2, b=b)
        curve, _ = neuron_graph(**{**inputs, along: _SWEEP})
        slope = float(leaves[along].grad)
        at = inputs[along]
        self.curve.set_data(_SWEEP, curve.data)
        self.tangent.set_data([at - 0.6, at + 0.6], [float(J.data) - 0.6 * slope, float(J.data) + 0.6 * slope])
        self.point.set_data([at], [float(J.data)])
        self.live.blit()
        self.values = {"J": float(J.data), "grads": {k: float(v.grad) for k, v in leaves.items()},
                       "curve": np.array(curve.data), "slope": slope}
        cells = "".join(f"<td style='padding:0 6px'>{_label(n)}</td>" for n in order)
        values = "".join(f"<td style='padding:0 6px'>{float(n.data):+.3f}</td>" for n in order)
        gradients = "".join(f"<td style='padding:0 6px'>{float(n.grad):+.3f}</td>" for n in order)
        self.readout.value = (f"<table style='font-family:monospace;font-size:12px'><tr><td>node</td>{cells}</tr>"
                              f"<tr><td>value</td>{values}</tr><tr><td>dJ/d node</td>{gradients}</tr></table>")


def build_autodiff_graph(x1=1.0, w1=-0.5, x2=0.5, w2=1.0, b=0.2, along="w1") -> AutodiffGraph:
    """Build the chapter-16 graph explorer; display it with ``display(g.widget)``."""
    return AutodiffGraph(x1, w1, x2, w2, b, along)
