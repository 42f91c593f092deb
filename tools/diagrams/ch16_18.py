"""Diagrams of chapters 16-18: the autodiff engine's record of a computation and its backward sweep,
forward vs reverse mode; the axes of batch and layer normalization, plain and residual blocks and the
gradient's path through a residual stack; scaled dot-product attention, the causal and padding masks,
multi-head attention and the pre-norm transformer block."""
from __future__ import annotations

import numpy as np
from matplotlib.patches import Rectangle

from . import Diagram
from .style import (BWD, DATA, FILL, FWD, GREY, INK, PURPLE, arrow, box, canvas, circle, grid, outline,
                    polyline_arrow, r2, text)


# ------------------------------------------------------------------------------------------ 16
def _engine_sweep():
    """f = x*x + x at x = 3 (the example of chapter 16's misconception box), by course_lib.autodiff:
    each node's value and gradient, the topological order, and the contributions of the sweep."""
    from course_lib import autodiff

    x = autodiff.Tensor(3.0, "x")
    u = x * x
    f = u + x
    f.backward()
    order = autodiff.topological_order(f)
    assert [id(n) for n in order] == [id(x), id(u), id(f)]
    assert u.parents == (x, x) and f.parents == (u, x) and (u.op, f.op) == ("*", "+")
    v = {"x": float(x.data), "u": float(u.data), "f": float(f.data),
         "gx": float(x.grad), "gu": float(u.grad), "gf": float(f.grad)}
    # the sweep in reverse topological order: f hands its gradient to u and x (local derivative 1 each),
    # then u = x*x hands each factor the other factor times its gradient
    from_f = v["gf"] * 1.0
    from_u = v["gu"] * v["x"]
    assert v["gu"] == from_f and v["gx"] == from_f + 2 * from_u        # the engine accumulated exactly these
    v["from_f"], v["from_u"] = from_f, from_u
    return v


def engine_record():
    v = _engine_sweep()
    fig, ax = canvas(7.8, 4.3)
    w, h = 1.75, 1.12
    nodes = {"x": (0.25, 2.45), "u": (3.0, 2.45), "f": (5.75, 2.45)}
    rows = {"x": ("x", "input", "()", v["x"], v["gx"], 1, FILL["data"]),
            "u": ("u = x * x", "'*'", "(x, x)", v["u"], v["gu"], 2, FILL["fwd"]),
            "f": ("f = u + x", "'+'", "(u, x)", v["f"], v["gf"], 3, FILL["fwd"])}
    for key, (x0, y0) in nodes.items():
        title, op, parents, data, grad, k, fc = rows[key]
        box(ax, x0, y0, w, h, "", fc=fc, round_=0.06)
        text(ax, x0 + w / 2, y0 + h - 0.17, f"Tensor {title}", size=9.5, weight="bold")
        text(ax, x0 + 0.14, y0 + h - 0.43, f"data = {data:g}", size=9, color=FWD, ha="left")
        text(ax, x0 + 0.14, y0 + h - 0.64, f"grad = {grad:g}", size=9, color=BWD, ha="left")
        text(ax, x0 + 0.14, y0 + h - 0.85, f"op = {op},  parents = {parents}", size=8.5, ha="left")
        text(ax, x0 + w / 2, y0 + h + 0.42, f"topological order: {k}", size=8.5, color=GREY)
    # forward edges (blue): parent -> child, one per use
    xr, ur, fr = (nodes[k][0] for k in ("x", "u", "f"))
    y_mid = 2.45 + h / 2
    arrow(ax, (xr + w, y_mid + 0.18), (ur, y_mid + 0.18), color=FWD)
    arrow(ax, (xr + w, y_mid - 0.02), (ur, y_mid - 0.02), color=FWD)
    arrow(ax, (ur + w, y_mid + 0.18), (fr, y_mid + 0.18), color=FWD)
    y_top = 2.45 + h
    polyline_arrow(ax, [(xr + w / 2, y_top), (xr + w / 2, y_top + 0.22), (fr + w / 2, y_top + 0.22),
                        (fr + w / 2, y_top)], color=FWD, lw=1.2, head=8)
    # backward contributions (red): child -> parent, labelled with what they add
    arrow(ax, (ur, y_mid - 0.3), (xr + w, y_mid - 0.3), color=BWD, ls="--")
    text(ax, (xr + w + ur) / 2, y_mid - 0.47, f"{v['from_u']:g} + {v['from_u']:g}", size=8.5, color=BWD)
    text(ax, (xr + w + ur) / 2, y_mid + 0.38, "twice (x · x)", size=8.5, color=FWD)
    arrow(ax, (fr, y_mid - 0.3), (ur + w, y_mid - 0.3), color=BWD, ls="--")
    text(ax, (ur + w + fr) / 2, y_mid - 0.47, f"{v['from_f']:g}", size=8.5, color=BWD)
    polyline_arrow(ax, [(fr + w / 2, 2.45), (fr + w / 2, 2.2), (xr + w / 2, 2.2), (xr + w / 2, 2.45)],
                   color=BWD, lw=1.1, head=8)
    text(ax, 3.87, 2.06, f"{v['from_f']:g}  (f = u + x hands its gradient to each input)", size=8.5, color=BWD)
    # the sweep, as a table: the .grad fields after each visit
    text(ax, 0.25, 1.55, "f.backward(): set every grad to 0 and f.grad = 1, then visit the nodes in reverse "
         "topological order (3, 2, 1);", size=8.5, ha="left")
    text(ax, 0.25, 1.33, "each visit adds (local derivative × its own grad) to its parents' grads:", size=8.5,
         ha="left")
    table = [("start", "1", "0", "0"),
             ("visit 3: f = u + x", "1", f"0 + {v['from_f']:g} = {v['gu']:g}", f"0 + {v['from_f']:g} = {v['from_f']:g}"),
             ("visit 2: u = x · x", "1", f"{v['gu']:g}",
              f"{v['from_f']:g} + {v['from_u']:g} + {v['from_u']:g} = {v['gx']:g}"),
             ("visit 1: x (input)", "1", f"{v['gu']:g}", f"{v['gx']:g} = df/dx = 2x + 1")]
    cols, widths, y0, rh = ["", "f.grad", "u.grad", "x.grad"], [1.95, 0.8, 1.35, 2.6], 1.13, 0.24
    xs = np.concatenate([[0.25], 0.25 + np.cumsum(widths)])
    for j, name in enumerate(cols):
        text(ax, xs[j] + widths[j] / 2, y0 - rh / 2, name, size=8.5, color=BWD, weight="bold")
    for i, row in enumerate(table):
        yy = y0 - (i + 1.5) * rh
        ax.add_patch(Rectangle((xs[0], yy - rh / 2), xs[-1] - xs[0], rh, fc=FILL["grey"] if i % 2 else "white",
                               ec="none", zorder=0))
        for j, cell in enumerate(row):
            text(ax, xs[j] + (0.08 if j == 0 else widths[j] / 2), yy, cell, size=8.5,
                 ha="left" if j == 0 else "center", color=INK if j == 0 else BWD)
    return fig


def _log_side(n):
    """Side length (inches) of a matrix dimension n, on a log scale so that 1 and 784 both fit."""
    return 0.07 + 0.3 * np.log10(n)


def forward_reverse():
    sizes = [784, 256, 128, 10, 1]
    L = len(sizes) - 1
    fig, ax = canvas(7.8, 4.5)

    def matrix(x, y_mid, rows, cols, fc, label=None, ec=INK):
        w, hgt = _log_side(cols), _log_side(rows)
        ax.add_patch(Rectangle((x, y_mid - hgt / 2), w, hgt, fc=fc, ec=ec, lw=1.0, zorder=2))
        if label:
            text(ax, x + w / 2, y_mid - hgt / 2 - 0.13, label, size=8, color=INK)
        return x + w

    # the chain of Jacobians, in the order of the product J_4 J_3 J_2 J_1
    y = 3.65
    text(ax, 0.1, 4.3, "$\\partial J/\\partial\\theta = J_4\\,J_3\\,J_2\\,J_1$, layer sizes 784 → 256 → 128 → 10 → 1; "
         "$J_l$ is $n_l \\times n_{l-1}$ (sides drawn on a log scale)", size=9, ha="left")
    x = 0.5
    for l in range(L, 0, -1):
        text(ax, x - 0.14, y, f"$J_{l}$", size=9.5, color=PURPLE)
        x = matrix(x, y, sizes[l], sizes[l - 1], FILL["purple"], f"{sizes[l]}×{sizes[l - 1]}") + 0.45

    def chain(y, title, color, shapes, costs, note, start):
        text(ax, 0.1, y + 0.62, title, size=9.5, ha="left", color=color, weight="bold")
        x = 0.25
        for k, ((r, c), cost) in enumerate(zip(shapes, costs)):
            if k:
                arrow(ax, (x - 0.62, y), (x - 0.05, y), color=color, lw=1.1, head=7)
                text(ax, x - 0.34, y + 0.28, cost[0], size=8, color=color)
                text(ax, x - 0.34, y - 0.28, cost[1], size=7.5, color=GREY)
            x = matrix(x, y, r, c, FILL["fwd"] if color == FWD else FILL["bwd"],
                       f"{r}×{c}" + (f" = {start}" if not k else "")) + 0.67
        text(ax, 7.7, y - 0.45, note, size=8.5, color=color, ha="right")

    fwd_shapes = [(sizes[l], sizes[0]) for l in range(1, L + 1)]
    fwd_costs = [(f"× $J_{l + 1}$", f"{sizes[l + 1] * sizes[l] * sizes[0]:,}") for l in range(1, L)]
    rev_shapes = [(1, sizes[l]) for l in range(L - 1, -1, -1)]
    rev_costs = [(f"× $J_{l + 1}$", f"{sizes[l + 1] * sizes[l]:,}") for l in range(L - 2, -1, -1)]
    fwd_total = sum(sizes[l + 1] * sizes[l] * sizes[0] for l in range(1, L))
    rev_total = sum(sizes[l + 1] * sizes[l] for l in range(L - 1))
    chain(2.25, "forward mode, right to left: $J_4(J_3(J_2 J_1))$ carries an $n_l \\times 784$ matrix",
          FWD, fwd_shapes, [("", "")] + fwd_costs, f"{fwd_total:,} multiply-adds", "$J_1$")
    chain(0.7, "reverse mode, left to right: $((J_4 J_3) J_2) J_1$ carries a $1 \\times n_l$ row",
          BWD, rev_shapes, [("", "")] + rev_costs, f"{rev_total:,} multiply-adds", "$J_4$")
    text(ax, 0.1, 0.12, "grey: multiply-adds of each step. Same result, ≈ "
         f"{fwd_total / rev_total:.0f}× fewer operations in reverse: one output, many inputs.", size=8.5,
         ha="left", color=GREY)
    return fig


# ------------------------------------------------------------------------------------------ 17
def _norm_stats():
    """A 4 x 5 batch and its statistics per feature (batch norm) and per example (layer norm), by
    course_lib.normalization.normalize."""
    from course_lib import normalization as N

    x = np.array([[1.2, -0.4, 3.1, 0.0, 2.2],
                  [0.8, 0.6, 2.5, -1.4, 1.6],
                  [2.0, -1.0, 3.9, 0.6, 2.8],
                  [1.6, 0.2, 3.3, -0.8, 1.8]], np.float32)
    _, _, mean_bn, var_bn = N.normalize(x, 0)
    _, _, mean_ln, var_ln = N.normalize(x, -1)
    mean_bn, mean_ln = np.ravel(np.asarray(mean_bn)), np.ravel(np.asarray(mean_ln))
    std_bn, std_ln = np.sqrt(np.ravel(np.asarray(var_bn))), np.sqrt(np.ravel(np.asarray(var_ln)))
    assert mean_bn.shape == (5,) and mean_ln.shape == (4,)
    return x, [r2(m) for m in mean_bn], [r2(s) for s in std_bn], [r2(m) for m in mean_ln], [r2(s) for s in std_ln]


def norm_axes():
    x, mu_bn, sd_bn, mu_ln, sd_ln = _norm_stats()
    N_, D = x.shape
    fig, ax = canvas(7.8, 3.95)
    c = 0.4
    top = 3.0
    for panel, x0 in enumerate((1.0, 4.75)):
        color = FWD if panel == 0 else PURPLE
        hl = FILL["fwd"] if panel == 0 else FILL["purple"]
        title = ("batch norm", "each feature (column) over the batch") if panel == 0 else \
            ("layer norm", "each example (row) over its features")
        text(ax, x0 + D * c / 2, 3.75, title[0], size=9.5, weight="bold", color=color)
        text(ax, x0 + D * c / 2, 3.52, title[1], size=9, color=color)
        colors = [[hl if (panel == 0 and j == 2) or (panel == 1 and i == 1) else "white" for j in range(D)]
                  for i in range(N_)]
        grid(ax, x0, top, x, cell=c, fmt="{:.1f}", size=8, colors=colors)
        text(ax, x0 + D * c / 2, top + 0.14, "D = 5 features $j$", size=8, color=GREY)
        if panel == 0:
            outline(ax, x0 + 2 * c, top - N_ * c, c, N_ * c, color=FWD, lw=1.8)
            arrow(ax, (x0 - 0.12, top - 0.05), (x0 - 0.12, top - N_ * c + 0.05), color=FWD, lw=1.4, head=8)
            text(ax, x0 - 0.2, top - N_ * c / 2, "over\nthe N = 4\nexamples $n$", size=8, ha="right", color=FWD)
            for j in range(D):
                text(ax, x0 + (j + 0.5) * c, top - N_ * c - 0.18, f"{mu_bn[j]:.2f}", size=7.5, color=FWD)
                text(ax, x0 + (j + 0.5) * c, top - N_ * c - 0.4, f"{sd_bn[j]:.2f}", size=7.5, color=FWD)
            text(ax, x0 - 0.1, top - N_ * c - 0.18, "$\\mu_j$", size=9, ha="right", color=FWD)
            text(ax, x0 - 0.1, top - N_ * c - 0.4, "$\\sigma_j$", size=9, ha="right", color=FWD)
            notes = ["axis 0: D means and D stds, shape (1, D);", "an example's output depends on its batch;",
                     "running averages for evaluation mode"]
        else:
            outline(ax, x0, top - 2 * c, D * c, c, color=PURPLE, lw=1.8)
            arrow(ax, (x0 + 0.05, top - N_ * c - 0.12), (x0 + D * c - 0.05, top - N_ * c - 0.12), color=PURPLE,
                  lw=1.4, head=8)
            text(ax, x0 + D * c / 2, top - N_ * c - 0.3, "over the D = 5 features $j$", size=8, color=PURPLE)
            text(ax, x0 - 0.12, top - N_ * c / 2, "N = 4\nexamples $n$", size=8, ha="right", color=GREY)
            for i in range(N_):
                text(ax, x0 + D * c + 0.3, top - (i + 0.5) * c, f"{mu_ln[i]:.2f}", size=7.5, color=PURPLE)
                text(ax, x0 + D * c + 0.72, top - (i + 0.5) * c, f"{sd_ln[i]:.2f}", size=7.5, color=PURPLE)
            text(ax, x0 + D * c + 0.3, top + 0.14, "$\\mu_n$", size=9, color=PURPLE)
            text(ax, x0 + D * c + 0.72, top + 0.14, "$\\sigma_n$", size=9, color=PURPLE)
            notes = ["axis −1: N means and N stds, shape (N, 1);", "each example on its own, the same in",
                     "training and evaluation (no running stats)"]
        for k, line in enumerate(notes):
            text(ax, x0 - 0.75, 0.72 - k * 0.21, line, size=8, ha="left")
    return fig


def residual_block():
    fig, ax = canvas(7.8, 2.6)
    y = 1.25
    for x0, residual in ((0.2, False), (4.1, True)):
        text(ax, x0 + 1.7, 2.35, "residual block: $h_l = h_{l-1} + F(h_{l-1})$" if residual else
             "plain block: $h_l = F(h_{l-1})$", size=9.5, weight="bold")
        text(ax, x0 + 0.15, y, "$h_{l-1}$", size=10)
        arrow(ax, (x0 + 0.42, y), (x0 + 0.9, y))
        box(ax, x0 + 0.9, y - 0.38, 1.35, 0.76, "$F$: weights,\nnorm, $f$", fc=FILL["param"], size=9)
        if residual:
            arrow(ax, (x0 + 2.25, y), (x0 + 2.62, y))
            circle(ax, x0 + 2.8, y, 0.18, "+", size=11, fc="white")
            polyline_arrow(ax, [(x0 + 0.62, y), (x0 + 0.62, y + 0.72), (x0 + 2.8, y + 0.72), (x0 + 2.8, y + 0.18)],
                           color=INK, lw=1.6, head=8)
            text(ax, x0 + 1.72, y + 0.88, "identity (skip connection)", size=8.5, color=INK)
            arrow(ax, (x0 + 2.98, y), (x0 + 3.3, y))
            text(ax, x0 + 3.48, y, "$h_l$", size=10)
            text(ax, x0 + 1.7, 0.3, "$F$ only learns a correction to $h_{l-1}$;\n"
                 "$F = 0$ passes the input on unchanged", size=8.5, color=GREY)
        else:
            arrow(ax, (x0 + 2.25, y), (x0 + 3.0, y))
            text(ax, x0 + 3.2, y, "$h_l$", size=10)
            text(ax, x0 + 1.7, 0.3, "every block replaces its input;\n$F = 0$ erases it", size=8.5, color=GREY)
    return fig


def _flow_ratios():
    """||dJ/dW_1|| / ||dJ/dW_20|| at initialization for 20 sigmoid blocks (scale 1), plain and residual,
    from the tables of chapter 17's widget (course_lib.widgets.deep_flow.deep_flow_tables)."""
    from course_lib.widgets import gradient_flow as gf
    from course_lib.widgets.deep_flow import deep_flow_tables

    tables = deep_flow_tables(0)
    idx = gf.ACTIVATIONS.index("sigmoid"), gf.SCALES.index(1.0), gf.DEPTHS.index(20)
    out = {}
    for network in ("plain", "residual"):
        norms = np.asarray(tables[network]["norms"])[idx]
        out[network] = float(f"{norms[0] / norms[19]:.0e}")        # one significant digit
    return out


def _ratio(exponent_or_value):
    v = exponent_or_value
    return f"{v:.1f}" if v >= 0.05 else f"$10^{{{int(np.round(np.log10(v)))}}}$"


def gradient_path():
    ratios = _flow_ratios()
    fig, ax = canvas(7.8, 3.6)
    # a residual stack of three blocks, unrolled
    y = 2.05
    xs = [0.3, 2.45, 4.6, 6.75]
    for l, x in enumerate(xs):
        text(ax, x, y, f"$h_{l}$", size=10.5)
    for l in range(3):
        x = xs[l]
        box(ax, x + 0.42, y - 0.85, 0.85, 0.46, f"$F_{l + 1}$", fc=FILL["param"], size=10)
        polyline_arrow(ax, [(x + 0.22, y - 0.12), (x + 0.22, y - 0.62), (x + 0.42, y - 0.62)], color=INK, lw=1.0,
                       head=7)
        polyline_arrow(ax, [(x + 1.27, y - 0.62), (x + 1.55, y - 0.62), (x + 1.55, y - 0.14)], color=INK, lw=1.0,
                       head=7)
        circle(ax, x + 1.55, y, 0.14, "+", size=9)
        arrow(ax, (x + 0.22, y), (x + 1.41, y), color=INK)
        arrow(ax, (x + 1.69, y), (xs[l + 1] - 0.22, y), color=INK)
        # the gradient: along the identity (red, top) and through the block (red, dashed, below)
        arrow(ax, (xs[l + 1] - 0.15, y + 0.32), (x + 0.15, y + 0.32), color=BWD, lw=1.6)
        text(ax, x + 1.0, y + 0.5, "$\\times I$", size=9, color=BWD)
        polyline_arrow(ax, [(x + 1.65, y - 0.22), (x + 1.65, y - 1.0), (x + 0.12, y - 1.0), (x + 0.12, y - 0.2)],
                       color=BWD, lw=1.0, head=7)
        text(ax, x + 0.85, y - 1.2, f"$\\times\\, \\partial F_{l + 1}/\\partial h_{l}$", size=8.5, color=BWD)
    arrow(ax, (6.97, y), (7.4, y))
    text(ax, 7.58, y, "$J$", size=10.5)
    arrow(ax, (7.5, y + 0.32), (6.9, y + 0.32), color=BWD, lw=1.6)
    text(ax, 0.1, 3.35, "$\\partial J/\\partial h_0 = \\partial J/\\partial h_3\\,(I + J_3)(I + J_2)(I + J_1)"
         "= \\partial J/\\partial h_3\\,(I + J_1 + J_2 + J_3 + J_2J_1 + \\dots + J_3J_2J_1)$", size=9, ha="left")
    text(ax, 0.1, 3.05, "($J_l = \\partial F_l/\\partial h_{l-1}$): one term per path; the identity path "
         "(red, top) reaches $h_0$ untouched", size=8.5, ha="left", color=BWD)
    text(ax, 0.1, 0.45, "plain stack: only the path through every block, $\\partial J/\\partial h_3\\, J_3 J_2 J_1$: "
         "a product that shrinks or grows geometrically with depth", size=8.5, ha="left")
    text(ax, 0.1, 0.15, "measured at initialization, 20 sigmoid blocks (section 1): "
         "$\\|\\partial J/\\partial W_1\\| / \\|\\partial J/\\partial W_{20}\\|$ ≈ "
         f"{_ratio(ratios['plain'])} plain, {_ratio(ratios['residual'])} residual", size=8.5, ha="left", color=GREY)
    return fig


def hidden_blocks():
    """The four hidden blocks of normalization.hidden_block, bottom to top."""
    from course_lib import normalization as N

    fig, ax = canvas(7.8, 3.9)
    specs = {"plain": ["$hW + b$", "$f$"], "batchnorm": ["$hW$", "BN ($\\gamma, \\beta$)", "$f$"],
             "residual": ["$f$", "$\\cdot W + b$"], "residual+layernorm": ["LN ($\\gamma, \\beta$)", "$f$",
                                                                           "$\\cdot W + b$"]}
    formula = {"plain": "$f(hW + b)$", "batchnorm": "$f(\\mathrm{BN}(hW))$", "residual": "$h + f(h)W + b$",
               "residual+layernorm": "$h + f(\\mathrm{LN}(h))W + b$"}
    assert tuple(specs) == N.NETWORKS
    fills = {"BN": FILL["fwd"], "LN": FILL["purple"], "$f": FILL["white"]}
    for k, network in enumerate(N.NETWORKS):
        xc = 0.85 + k * 1.9
        residual = network.startswith("residual")
        text(ax, xc, 3.65, network, size=9.5, weight="bold")
        text(ax, xc, 3.37, formula[network], size=9)
        text(ax, xc, 0.15, "$h$ (N, 32)", size=9)
        y = 0.45
        arrow(ax, (xc, 0.27), (xc, y + 0.12), color=INK)
        y += 0.12
        for k_, name in enumerate(specs[network]):
            fc = next((v for key, v in fills.items() if name.startswith(key)), FILL["param"])
            if k_:
                arrow(ax, (xc, y - 0.2), (xc, y), color=INK)
            box(ax, xc - 0.55, y, 1.1, 0.42, name, fc=fc, size=8.5)
            y += 0.62
        y -= 0.2
        if residual:
            arrow(ax, (xc, y), (xc, y + 0.2), color=INK)
            circle(ax, xc, y + 0.34, 0.14, "+", size=9)
            polyline_arrow(ax, [(xc, 0.37), (xc + 0.75, 0.37), (xc + 0.75, y + 0.34), (xc + 0.14, y + 0.34)],
                           color=INK, lw=1.5, head=7)
            text(ax, xc + 0.85, 1.5, "identity", size=8, color=GREY, rotation=90)
            arrow(ax, (xc, y + 0.48), (xc, 3.05), color=INK)
        else:
            arrow(ax, (xc, y), (xc, 3.05), color=INK)
        text(ax, xc, 3.15, "new $h$", size=8.5)
    return fig


# ------------------------------------------------------------------------------------------ 18
Q_DEMO = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 0.5]])
K_DEMO = np.array([[1.0, 0.5], [0.0, 1.0], [1.0, -1.0], [0.5, 0.5]])
V_DEMO = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 1.0, 1.0]])
TOKENS = "cats"


def _attention_numbers():
    """Scores, causal mask, weights and outputs of one small self-attention by
    course_lib.attention.attention_forward (S recomputed from its definition for the drawing)."""
    from course_lib import attention as A

    mask = np.asarray(A.causal_mask(4))
    out, cache = A.attention_forward(Q_DEMO.astype(np.float32), K_DEMO.astype(np.float32),
                                     V_DEMO.astype(np.float32), mask)
    weights = np.asarray(cache[3], float)
    S = Q_DEMO @ K_DEMO.T / np.sqrt(2)
    masked = np.where(mask, S, -np.inf)
    soft = np.exp(masked - masked.max(1, keepdims=True))
    assert np.allclose(soft / soft.sum(1, keepdims=True), weights, atol=1e-6)
    return S, mask, weights, np.asarray(out, float)


def attention():
    S, mask, W, out = _attention_numbers()
    fig, ax = canvas(7.8, 3.45)
    c = 0.31
    cs = 0.37                                      # the T x T matrices get wider cells (two decimals)
    top = 2.75

    def labelled(x, values, title, shape, fc, cell=c, colors=None):
        text(ax, x + values.shape[1] * cell / 2, top + 0.45, title, size=9.5, weight="bold")
        text(ax, x + values.shape[1] * cell / 2, top + 0.2, shape, size=8, color=GREY)
        grid(ax, x, top, values, cell=cell, fmt="{}", size=7.5, fc=fc, colors=colors)
        return x + values.shape[1] * cell

    def numbers(values, fmt):
        return np.array([[fmt.format(v) for v in row] for row in values], dtype=object)

    for i, ch in enumerate(TOKENS):
        text(ax, 0.15, top - (i + 0.5) * c, ch, size=9, color=DATA)
    x = labelled(0.3, numbers(Q_DEMO, "{:g}"), "$Q$", "T×$d_k$ = 4×2", FILL["fwd"])
    x = labelled(x + 0.22, numbers(K_DEMO, "{:g}"), "$K$", "4×2", FILL["fwd"])
    x = labelled(x + 0.22, numbers(V_DEMO, "{:g}"), "$V$", "T×$d_v$ = 4×3", FILL["fwd"])
    # scores with the mask applied
    sx = x + 0.8
    arrow(ax, (x + 0.1, top - 2 * c), (sx - 0.1, top - 2 * c), color=INK)
    text(ax, (x + sx) / 2, top - 2 * c + 0.25, "$QK^\\top\\!/\\sqrt{2}$", size=8.5)
    labels = np.array([[f"{S[i, j]:.2f}" if mask[i, j] else "−∞" for j in range(4)] for i in range(4)], dtype=object)
    colors = [[FILL["white"] if mask[i, j] else FILL["grey"] for j in range(4)] for i in range(4)]
    end = labelled(sx, labels, "scores $S$, masked", "T×T, causal: key ≤ query", None, cs, colors)
    wx = end + 0.8
    arrow(ax, (end + 0.1, top - 2 * c), (wx - 0.1, top - 2 * c), color=INK)
    text(ax, (end + wx) / 2, top - 2 * c + 0.3, "softmax\nper row", size=8)
    shade = [[(1.0 - 0.55 * W[i, j], 1.0 - 0.35 * W[i, j], 1.0 - 0.1 * W[i, j]) if mask[i, j] else FILL["grey"]
              for j in range(4)] for i in range(4)]
    labelled(wx, numbers(W, "{:.2f}"), "weights $A$", "each row sums to 1", None, cs, shade)
    for j, ch in enumerate(TOKENS):
        for x0 in (sx, wx):
            text(ax, x0 + (j + 0.5) * cs, top - 4 * cs - 0.13, ch, size=8.5, color=DATA)
    # the output row of the last query
    text(ax, 0.3, 0.75, "out = $AV$: row $t$ averages the rows of $V$ with the weights of row $t$ of $A$; "
         "for the last query (\"s\"):", size=8.5, ha="left")
    terms = " + ".join(f"{W[3, j]:.2f}·$v_{j}$" for j in range(4))
    text(ax, 0.3, 0.42, f"out$_3$ = {terms} = ({', '.join(f'{o:.2f}' for o in out[3])})", size=8.5,
         ha="left", color=FWD)
    return fig


def causal_mask():
    from course_lib import attention as A

    T, length = 6, 4
    mask = np.asarray(A.causal_mask(T) & A.padding_mask(np.array([length]), T))[0]
    causal = np.asarray(A.causal_mask(T))
    tokens = list("cats") + ["pad", "pad"]
    fig, ax = canvas(7.8, 3.75)
    # left: which keys query 2 ('t') may read
    q = 2
    xs = [0.45 + 0.62 * t for t in range(T)]
    for t, tok in enumerate(tokens):
        box(ax, xs[t] - 0.24, 0.75, 0.48, 0.4, tok, fc=FILL["data"] if t < length else FILL["grey"], size=8.5)
        text(ax, xs[t], 0.55, f"{t}", size=8, color=GREY)
    box(ax, xs[q] - 0.3, 2.6, 0.6, 0.42, f"query {q}", fc=FILL["fwd"], size=8.5)
    for t in range(T):
        ok = bool(mask[q, t])
        arrow(ax, (xs[t], 1.17), (xs[q] + (t - q) * 0.06, 2.58), color=FWD if ok else GREY, lw=1.4 if ok else 0.8,
              ls="-" if ok else ":", head=7)
        if not ok:
            text(ax, (xs[t] + xs[q]) / 2 + (t - q) * 0.03, 1.87, "×", size=12, color=BWD)
    text(ax, 0.2, 3.45, "query 2 (\"t\", predicting the next letter) reads keys 0-2 only", size=9, ha="left")
    text(ax, 0.2, 0.2, "keys 3-5: the future (causal mask) and padding", size=8.5, ha="left", color=GREY)
    # right: the combined mask
    c = 0.36
    x0, top = 5.05, 3.2
    colors = [[FILL["fwd"] if mask[i, j] else (FILL["yellow"] if not causal[i, j] else FILL["grey"])
               for j in range(T)] for i in range(T)]
    labels = np.array([["✓" if mask[i, j] else "" for j in range(T)] for i in range(T)], dtype=object)
    grid(ax, x0, top, labels, cell=c, fmt="{}", size=8.5, colors=colors, text_color=FWD)
    outline(ax, x0, top - (q + 1) * c, T * c, c, color=INK, lw=1.8)
    for t, tok in enumerate(tokens):
        text(ax, x0 + (t + 0.5) * c, top + 0.14, tok, size=8.5 if len(tok) == 1 else 7, color=DATA)
        text(ax, x0 - 0.08, top - (t + 0.5) * c, tok, size=8.5 if len(tok) == 1 else 7, color=DATA, ha="right")
    text(ax, x0 + T * c / 2, top + 0.4, "key position →", size=8.5)
    text(ax, x0 - 0.42, top - T * c / 2, "query\nposition", size=8.5, ha="right")
    text(ax, x0 + T * c / 2, top - T * c - 0.17, "causal_mask(6) & padding_mask([4], 6)", size=8, color=GREY)
    for k, (fc, s) in enumerate(((FILL["fwd"], "may attend (True)"), (FILL["yellow"], "future: causal mask"),
                                 (FILL["grey"], "padded key: padding mask"))):
        ax.add_patch(Rectangle((x0 - 0.3, 0.55 - k * 0.22), 0.16, 0.16, fc=fc, ec=GREY, lw=0.6))
        text(ax, x0 - 0.05, 0.63 - k * 0.22, s, size=8, ha="left")
    return fig


def _model_shapes():
    from course_lib import attention as A

    params = A.init_transformer(25, 32, seed=0)
    H, d, dh = np.shape(params["blocks"][0]["attn"]["W_q"])
    d_ff = np.shape(params["blocks"][0]["W1"])[1]
    return int(H), int(d), int(dh), int(d_ff), len(params["blocks"])


def multihead():
    H, d, dh, _, _ = _model_shapes()
    fig, ax = canvas(7.8, 3.7)
    box(ax, 0.1, 1.45, 0.85, 0.7, f"$x$\nT×{d}", fc=FILL["data"], size=9)
    heads = [0, 1, H - 1]
    ys = [2.85, 1.85, 0.45]
    for k, (hd, y) in enumerate(zip(heads, ys)):
        label = f"{hd + 1}"
        arrow(ax, (0.95, 1.8), (1.3, y + 0.25), color=INK, lw=1.0, head=7)
        box(ax, 1.3, y, 1.55, 0.5, f"$xW_q^{{({label})}}, xW_k^{{({label})}}, xW_v^{{({label})}}$", fc=FILL["param"],
            size=8)
        arrow(ax, (2.85, y + 0.25), (3.1, y + 0.25), color=INK, lw=1.0, head=7)
        box(ax, 3.1, y, 1.25, 0.5, "attention", fc=FILL["fwd"], size=8.5)
        arrow(ax, (4.35, y + 0.25), (4.6, y + 0.25), color=INK, lw=1.0, head=7)
        box(ax, 4.6, y, 0.75, 0.5, f"T×{dh}", fc=FILL["fwd"], size=8.5)
        arrow(ax, (5.35, y + 0.25), (5.6, y + 0.25), color=INK, lw=1.0, head=7)
        box(ax, 5.6, y, 0.75, 0.5, f"$\\cdot W_o^{{({label})}}$", fc=FILL["param"], size=8.5)
        arrow(ax, (6.35, y + 0.25), (6.75, 1.8), color=INK, lw=1.0, head=7)
        text(ax, 1.4, y + 0.62, f"head {label}: q, k, v of shape T×{dh}", size=8, color=GREY, ha="left")
    text(ax, 3.7, 1.35, "⋮", size=14, color=GREY)
    circle(ax, 6.95, 1.8, 0.2, "Σ", size=10)
    arrow(ax, (7.15, 1.8), (7.4, 1.8))
    text(ax, 7.6, 1.8, f"T×{d}", size=8.5)
    text(ax, 0.1, 0.12, f"H = {H} heads of size $d_h = d/H$ = {dh}: $W_q^{{(h)}}, W_k^{{(h)}}, W_v^{{(h)}}$ are "
         f"{d}×{dh}, $W_o^{{(h)}}$ is {dh}×{d}; {4 * d * d:,} weights in all, as one head of size {d}",
         size=8.5, ha="left", color=GREY)
    return fig


def transformer_block():
    H, d, dh, d_ff, layers = _model_shapes()
    fig, ax = canvas(7.8, 4.3)
    xc, half = 2.05, 1.55
    steps = [(0.95, "LN$_1$", FILL["purple"]), (1.55, f"multi-head attention ({H} heads, causal mask)", FILL["fwd"]),
             (2.45, "LN$_2$", FILL["purple"]), (3.05, f"$W_1$ ({d}×{d_ff}), relu, $W_2$ ({d_ff}×{d})", FILL["param"])]
    text(ax, xc, 0.35, f"$x$  (B, T, {d})", size=9.5)
    for y, label, fc in steps:
        box(ax, xc - half, y, 2 * half, 0.4, label, fc=fc, size=8.5)
    # main path
    for y0, y1 in ((0.5, 0.95), (1.35, 1.55), (1.95, 2.05), (2.29, 2.45), (2.85, 3.05), (3.45, 3.55), (3.79, 4.0)):
        arrow(ax, (xc, y0), (xc, y1))
    circle(ax, xc, 2.17, 0.12, "+", size=9)
    circle(ax, xc, 3.67, 0.12, "+", size=9)
    text(ax, xc, 4.13, f"out (B, T, {d})", size=9.5)
    text(ax, xc - 0.25, 2.17, "$h$", size=9.5, ha="right")
    # residual paths, and the gradient that comes back along them
    skip = xc + half + 0.3
    for y_from, y_to in ((0.75, 2.17), (2.35, 3.67)):
        polyline_arrow(ax, [(xc, y_from), (skip, y_from), (skip, y_to), (xc + 0.12, y_to)], color=INK, lw=1.2,
                       head=7)
        arrow(ax, (skip + 0.18, y_to), (skip + 0.18, y_from + 0.05), color=BWD, lw=1.2, head=7, ls="--")
        text(ax, skip + 0.3, (y_from + y_to) / 2, "residual\n(gradient\ncopied back)", size=8, ha="left",
             color=GREY)
    # what each half does
    x_note = 5.05
    text(ax, x_note, 3.45, "$\\text{out} = h + \\mathrm{MLP}(\\mathrm{LN}_2(h))$", size=9, ha="left")
    text(ax, x_note, 3.2, "each position on its own", size=8.5, ha="left", color=GREY)
    text(ax, x_note, 1.95, "$h = x + \\mathrm{MultiHead}(\\mathrm{LN}_1(x))$", size=9, ha="left")
    text(ax, x_note, 1.7, "positions exchange information", size=8.5, ha="left", color=GREY)
    text(ax, x_note, 0.75, "backward (red): at each +, the gradient goes", size=8.5, ha="left", color=BWD)
    text(ax, x_note, 0.52, "down the branch and the skip; at the split", size=8.5, ha="left", color=BWD)
    text(ax, x_note, 0.29, "below, the two are added", size=8.5, ha="left", color=BWD)
    text(ax, x_note, 4.05, f"this chapter's model: {layers} blocks, d = {d}", size=8.5, ha="left", color=GREY)
    return fig


DIAGRAMS = [
    Diagram("16_engine_record", "16_automatic_differentiation", "cell-003",
            "Three Tensor records for f = x times x plus x at x = 3, with their data, grad, op and parents, "
            "blue forward edges and red backward contributions, and a table of the grad fields after each "
            "visit of the backward sweep.",
            "What the engine records for $f = x\\cdot x + x$ at $x = 3$: one `Tensor` per value, with its "
            "`data`, `op` and `parents`. `f.backward()` visits the nodes in reverse topological order and each "
            "visit adds its local derivative times its own `grad` to its parents' `grad`; $x$ is used three "
            "times and receives the sum $1 + 3 + 3 = 7$. The numbers are `course_lib.autodiff`'s.",
            engine_record),
    Diagram("16_forward_reverse", "16_automatic_differentiation", "cell-021",
            "The four Jacobians of a 784-256-128-10-1 network drawn as rectangles; forward mode multiplies them "
            "from the right and carries an n by 784 matrix, reverse mode from the left and carries a row "
            "vector; the multiply-add counts of each step.",
            "The two orders of the same product, drawn to scale (log scale): forward mode carries a matrix "
            "with one column per input, reverse mode a single row, so for one output and many inputs reverse "
            "mode needs far fewer multiply-adds (the counts of the next cell).", forward_reverse),
    Diagram("17_norm_axes", "17_training_deep_networks", "cell-005",
            "The same 4 by 5 batch twice: batch norm computes a mean and a standard deviation per column, "
            "layer norm one per row.",
            "Which axis is normalized, on a batch of $N = 4$ examples and $D = 5$ features: batch norm "
            "standardizes each column with its own $\\mu_j, \\sigma_j$ (computed over the batch), layer norm "
            "each row with its own $\\mu_n, \\sigma_n$ (over the features). The statistics are "
            "`norm.normalize`'s.", norm_axes),
    Diagram("17_residual_block", "17_training_deep_networks", "cell-018",
            "A plain block maps h to F(h); a residual block adds F(h) to h through a skip connection.",
            "A plain block replaces its input; a residual block adds a correction to it. The skip connection "
            "is the identity, so the block computes the identity when $F = 0$.", residual_block),
    Diagram("17_gradient_path", "17_training_deep_networks", "cell-018",
            "Three residual blocks unrolled; the gradient flows back along the identity path unchanged and "
            "through each block multiplied by its Jacobian; the expanded product has one term per path.",
            "The gradient through a residual stack: expanding the product of $(I + J_l)$ gives one term per "
            "path, and the identity path brings $\\partial J/\\partial h_L$ to every layer unchanged; a plain "
            "stack has only the product $J_L\\cdots J_1$. The measured ratios are those of the widget's "
            "tables (`deep_flow_tables`).", gradient_path),
    Diagram("17_hidden_blocks", "17_training_deep_networks", "cell-020",
            "The four hidden blocks of the chapter's deep networks, bottom to top: plain, batch norm, residual, "
            "and residual with layer norm, with their skip connections.",
            "The four hidden blocks of `norm.hidden_block`: where the normalization sits (batch norm after the "
            "product, layer norm at the start of the residual branch, the pre-norm block of chapter 18) and "
            "which blocks have an identity path.", hidden_blocks),
    Diagram("18_attention", "18_attention_and_transformers", "cell-005",
            "Q, K and V of four tokens with their shapes; the scores Q K transpose over square root of 2 with "
            "the causal mask's entries set to minus infinity; the softmax weights, each row summing to one; "
            "the output of the last query as a weighted sum of values.",
            "Scaled dot-product attention on four tokens with $d_k = 2$: every query is compared with every "
            "key, masked scores become $-\\infty$, a softmax per row turns scores into weights, and each "
            "output row is the weighted average of the value rows. Numbers from `attn.attention_forward`.",
            attention),
    Diagram("18_causal_mask", "18_attention_and_transformers", "cell-010",
            "A sequence c, a, t, s and two padding tokens; query position 2 may read keys 0 to 2; the 6 by 6 "
            "mask is lower triangular with the padded columns removed.",
            "The causal and padding masks of a sequence of length 4 padded to 6: a query reads only keys at "
            "or before its position (lower triangle) and never a padded key. The mask is "
            "`attn.causal_mask(6) & attn.padding_mask([4], 6)`.", causal_mask),
    Diagram("18_multihead", "18_attention_and_transformers", "cell-014",
            "Multi-head attention: the input is projected separately for each head, each head attends, each "
            "head's output is mapped back to d dimensions, and the heads' outputs are summed.",
            "Multi-head attention with the shapes of this chapter's model: $H$ heads, each with its own "
            "projections of size $d/H$, attend independently; their outputs, each mapped back by its "
            "$W_o^{(h)}$, are added.", multihead),
    Diagram("18_transformer_block", "18_attention_and_transformers", "cell-018",
            "The pre-norm transformer block, bottom to top: layer norm, multi-head attention, residual add; "
            "layer norm, MLP, residual add; the gradient goes down both the branches and the skips.",
            "The pre-norm transformer block: each half (attention, then the MLP) sits in a residual "
            "connection with a layer norm in front; in the backward pass each $+$ sends the gradient both "
            "ways and adds the two on the way down.", transformer_block),
]
