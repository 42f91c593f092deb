"""Diagrams of chapters 00-05: JAX's tools, the perceptron, classic models, the neuron, losses, the MLP."""
from __future__ import annotations

import numpy as np

from . import Diagram
from matplotlib.patches import Rectangle

from .style import (BWD, DATA, FILL, FWD, GREY, INK, PARAM, arrow, box, canvas, circle, edge_label, grid,
                    polyline_arrow, r2, text)


# ------------------------------------------------------------------------------------------ 00
def jit_tracing():
    fig, ax = canvas(7.6, 2.6)
    y = 1.55
    box(ax, 0.05, y - 0.3, 1.25, 0.6, "call jit(f)(x)\nx: float32[3]", fc=FILL["data"], size=9)
    box(ax, 1.6, y - 0.3, 1.15, 0.6, "key: shapes\nand dtypes", fc=FILL["grey"], size=9)
    box(ax, 3.05, y - 0.3, 0.95, 0.6, "in the\ncache?", fc=FILL["yellow"], size=9, round_=0.2)
    for x0, x1 in ((1.3, 1.6), (2.75, 3.05)):
        arrow(ax, (x0, y), (x1, y))
    # miss: trace, lower, compile, store
    steps = [("trace f on tracers\n(print runs here)", FILL["fwd"]), ("jaxpr", FILL["grey"]),
             ("XLA compile\n0.2-0.6 s", FILL["param"]), ("store in\ncache", FILL["grey"])]
    xs = [4.35, 5.75, 6.55, 6.55]
    box(ax, 4.3, 1.95, 1.55, 0.55, steps[0][0], fc=steps[0][1], size=8.5)
    box(ax, 6.15, 1.95, 0.7, 0.55, "jaxpr", fc=FILL["grey"], size=9)
    box(ax, 4.3, 1.1 - 0.05, 1.55, 0.55, "XLA compiles the\njaxpr (0.2-0.6 s)", fc=FILL["param"], size=8.5)
    box(ax, 6.15, 1.05, 1.4, 0.55, "cache[key] =\nprogram", fc=FILL["grey"], size=8.5)
    polyline_arrow(ax, [(4.0, y + 0.12), (4.12, y + 0.12), (4.12, 2.22), (4.3, 2.22)])
    text(ax, 4.06, 1.98, "no", size=8, color=BWD, ha="right")
    arrow(ax, (5.85, 2.22), (6.15, 2.22))
    polyline_arrow(ax, [(6.5, 1.95), (6.5, 1.82), (5.08, 1.82), (5.08, 1.6)])
    arrow(ax, (5.85, 1.32), (6.15, 1.32))
    # hit, and both paths end in running the program
    box(ax, 3.05, 0.1, 2.0, 0.55, "run the compiled program\n(no Python, no tracing)", fc=FILL["fwd"], size=8.5)
    polyline_arrow(ax, [(3.52, y - 0.3), (3.52, 0.65)])
    text(ax, 3.45, 0.95, "yes", size=8, color=DATA, ha="right")
    polyline_arrow(ax, [(6.85, 1.05), (6.85, 0.37), (5.05, 0.37)])
    box(ax, 0.3, 0.1, 1.9, 0.55, "result: float32[3]", fc=FILL["data"], size=9)
    arrow(ax, (3.05, 0.37), (2.2, 0.37))
    text(ax, 0.1, 0.92, "a new shape or dtype is a new key:\ntrace and compile again",
         size=8, color=GREY, ha="left")
    return fig


def prng_split():
    fig, ax = canvas(6.6, 2.3)
    box(ax, 0.1, 0.9, 1.3, 0.5, "key(42)", fc=FILL["param"], size=10)
    box(ax, 1.85, 0.9, 0.9, 0.5, "split", fc=FILL["grey"], size=9)
    arrow(ax, (1.4, 1.15), (1.85, 1.15))
    box(ax, 3.2, 1.55, 0.8, 0.45, "k1", fc=FILL["param"], size=10)
    box(ax, 3.2, 0.3, 0.8, 0.45, "k2", fc=FILL["param"], size=10)
    arrow(ax, (2.75, 1.25), (3.2, 1.77))
    arrow(ax, (2.75, 1.05), (3.2, 0.52))
    box(ax, 4.45, 1.55, 2.05, 0.45, "normal(k1, (64, 32))", fc=FILL["data"], size=9)
    arrow(ax, (4.0, 1.77), (4.45, 1.77))
    box(ax, 4.45, 0.3, 0.9, 0.45, "split", fc=FILL["grey"], size=9)
    arrow(ax, (4.0, 0.52), (4.45, 0.52))
    box(ax, 5.7, 0.62, 0.8, 0.4, "k3", fc=FILL["param"], size=9)
    box(ax, 5.7, 0.05, 0.8, 0.4, "k4", fc=FILL["param"], size=9)
    arrow(ax, (5.35, 0.6), (5.7, 0.82))
    arrow(ax, (5.35, 0.45), (5.7, 0.25))
    text(ax, 0.1, 2.1, "the same key always gives the same numbers: split it, and use each key once",
         size=9, color=GREY, ha="left")
    return fig


# ------------------------------------------------------------------------------------------ 01
def _step_glyph(ax, x, y, w, h, color=INK):
    ax.plot([x, x + w / 2, x + w / 2, x + w], [y, y, y + h, y + h], color=color, lw=1.6, zorder=3)


def perceptron():
    fig, ax = canvas(7.0, 2.9)
    ys = [2.4, 1.75, 0.75]
    names = ["$x_1$", "$x_2$", "$x_n$"]
    for yy, name, w in zip(ys, names, ["$w_1$", "$w_2$", "$w_n$"]):
        circle(ax, 0.45, yy, 0.24, name, fc=FILL["data"], size=11)
        arrow(ax, (0.69, yy), (2.55, 1.6), shrink=0.03, color=INK)
        edge_label(ax, (0.69, yy), (2.55, 1.6), w, t=0.45, offset=0.15, size=11, color=PARAM)
    text(ax, 0.45, 1.27, "$\\vdots$", size=13)
    circle(ax, 2.85, 1.6, 0.33, "$\\Sigma$", fc=FILL["fwd"], size=14)
    box(ax, 2.45, 0.25, 0.8, 0.45, "$+\\,b$", fc=FILL["param"], size=11)
    arrow(ax, (2.85, 0.7), (2.85, 1.27))
    arrow(ax, (3.18, 1.6), (4.35, 1.6))
    text(ax, 3.76, 1.82, "$z = \\mathbf{x}\\cdot\\mathbf{w} + b$", size=10, color=FWD)
    box(ax, 4.35, 1.2, 0.95, 0.8, "", fc="white")
    _step_glyph(ax, 4.5, 1.38, 0.65, 0.42)
    text(ax, 4.83, 1.05, "threshold", size=8, color=GREY)
    arrow(ax, (5.3, 1.6), (6.05, 1.6))
    text(ax, 6.5, 1.6, "$\\hat y \\in \\{0, 1\\}$", size=11)
    text(ax, 4.85, 0.45, "learns only from mistakes:\nif $t\\,(\\mathbf{x}\\cdot\\mathbf{w}+b) \\leq 0$:  "
         "$\\mathbf{w} \\leftarrow \\mathbf{w} + \\eta\\, t\\, \\mathbf{x}$,  $b \\leftarrow b + \\eta\\, t$",
         size=9, color=BWD)
    text(ax, 0.1, 0.15, "inputs", size=8, color=GREY, ha="left")
    text(ax, 2.0, 2.75, "no hidden layer: one weight vector, one bias", size=8.5, color=GREY, ha="left")
    return fig


def workflow():
    from course_lib import data

    X, y = data.load_breast_cancer()
    split = data.train_val_test_split(X, y, seed=0)
    n = {k: len(split[f"y_{k}"]) for k in ("train", "val", "test")}
    total = sum(n.values())
    fig, ax = canvas(7.2, 2.6)
    x0, width = 0.2, 6.8
    colors = {"train": FILL["fwd"], "val": FILL["param"], "test": FILL["bwd"]}
    names = {"train": "training set", "val": "validation set", "test": "test set"}
    jobs = {"train": "fits the parameters θ\n(weights, biases)",
            "val": "chooses hyper-parameters\n(learning rate, epochs, ...)",
            "test": "estimates the error on new\ndata: used once, at the end"}
    x = x0
    for k in ("train", "val", "test"):
        w = width * n[k] / total
        label = (f"{names[k]}\n{n[k]} samples ({100 * n[k] / total:.0f} %)" if k == "train"
                 else f"{names[k].split()[0]}\n{n[k]} ({100 * n[k] / total:.0f} %)")
        box(ax, x, 1.5, w, 0.7, label, fc=colors[k], size=8.5, round_=0.03)
        cx = x + w / 2 if k == "train" else (x + w / 2 if k == "val" else x + w / 2)
        tx = {"train": x + w / 2, "val": 4.55, "test": 6.3}[k]
        arrow(ax, (cx, 1.5), (tx, 0.95), color=INK)
        text(ax, tx, 0.62, jobs[k], size=8.5)
        x += w
    text(ax, x0, 2.42, f"breast-cancer data: {total} tumours, shuffled and split 70/15/15 with the class "
         "proportions kept (train_val_test_split)", size=8.5, ha="left", color=GREY)
    text(ax, x0 + width / 2, 0.12, "all three are samples of the same distribution, the one the model will "
         "meet in use", size=8.5, color=DATA)
    return fig


# ------------------------------------------------------------------------------------------ 02
def decision_tree():
    from course_lib import classic, data

    X, y = data.load_iris()
    tree = classic.decision_tree_fit(np.asarray(X)[:, 2:4], np.asarray(y), max_depth=2)
    feats = ["petal length (cm)", "petal width (cm)"]
    classes = ["setosa", "versicolor", "virginica"]
    fig, ax = canvas(7.0, 3.0)
    pos = {0: (3.5, 2.35), 1: (1.55, 1.25), 2: (5.2, 1.25), 3: (3.85, 0.2), 4: (6.0, 0.2)}

    def node_text(i):
        counts = np.asarray(tree["value"][i])
        gini = 1 - np.sum((counts / counts.sum()) ** 2)
        head = (f"{feats[int(tree['feature'][i])]} ≤ {r2(tree['threshold'][i]):.2f}?\n"
                if tree["left"][i] >= 0 else f"leaf: {classes[int(np.argmax(counts))]}\n")
        return head + f"Gini {gini:.3f}, counts {counts.astype(int).tolist()}"

    for i, (cx, cy) in pos.items():
        leaf = tree["left"][i] < 0
        box(ax, cx - 1.1, cy, 2.2, 0.58, node_text(i), fc=FILL["data"] if leaf else FILL["grey"], size=8)
    for parent, child, label in ((0, 1, "yes"), (0, 2, "no"), (2, 3, "yes"), (2, 4, "no")):
        (px, py), (cx, cy) = pos[parent], pos[child]
        arrow(ax, (px, py), (cx, cy + 0.58), shrink=0.02)
        text(ax, (px + cx) / 2 + (0.12 if cx > px else -0.12), (py + cy + 0.58) / 2 + 0.05, label, size=8,
             color=GREY, ha="left" if cx > px else "right")
    text(ax, 0.05, 0.25, "iris, petal features,\nmax_depth = 2\n(classic.decision_tree_fit)", size=8,
         ha="left", color=GREY)
    return fig


def svm_margin():
    from sklearn import datasets

    from course_lib import classic

    Xs, ys = datasets.make_blobs(n_samples=40, centers=2, cluster_std=2.0, random_state=7)
    Xs = Xs.astype(np.float64)
    m = classic.linear_svm(Xs, ys.astype(np.int64), C=1.0)
    w, b, alpha = np.asarray(m["w"], float), float(m["b"]), np.asarray(m["alpha"], float)
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(5.6, 3.4))
    ax = fig.add_axes((0.02, 0.04, 0.62, 0.92))
    t = 2 * ys - 1
    f = Xs @ w + b
    margin_viol = (t * f < 1 - 1e-6)
    sv = alpha > 1e-6
    lo, hi = Xs.min(0) - 1.0, Xs.max(0) + 1.0
    xx = np.linspace(lo[0], hi[0], 2)
    for level, style, color in ((0, "-", INK), (1, "--", GREY), (-1, "--", GREY)):
        ax.plot(xx, (level - b - w[0] * xx) / w[1], style, color=color, lw=1.4)
    ax.scatter(*Xs[ys == 0].T, s=22, color=FILL["bwd"], edgecolors=BWD, lw=0.8, zorder=3)
    ax.scatter(*Xs[ys == 1].T, s=22, color=FILL["fwd"], edgecolors=FWD, lw=0.8, zorder=3)
    ax.scatter(*Xs[sv].T, s=110, facecolors="none", edgecolors=INK, lw=1.1, zorder=4)
    # slack of the worst margin violator: its distance inside the margin, xi = 1 - t f
    i = int(np.argmax(np.where(margin_viol, 1 - t * f, -np.inf)))
    target = Xs[i] + (1 - t[i] * f[i]) / (w @ w) * t[i] * w
    ax.annotate("", xy=target, xytext=Xs[i], arrowprops=dict(arrowstyle="-|>", color=PARAM, lw=1.6,
                                                             shrinkA=4, shrinkB=0))
    ax.set(xlim=(lo[0], hi[0]), ylim=(lo[1], hi[1]), xticks=[], yticks=[], aspect="equal")
    for s in ax.spines.values():
        s.set_color(GREY)
    tx = fig.add_axes((0.66, 0.04, 0.33, 0.92))
    tx.axis("off")
    lines = [("$\\mathbf{x}^\\top\\mathbf{w} + b = 0$", INK, "boundary"),
             ("$\\mathbf{x}^\\top\\mathbf{w} + b = \\pm 1$", GREY, "margin, width $2/\\|\\mathbf{w}\\|$"),
             ("circled", INK, f"support vectors ({int(sv.sum())}):\nthey alone fix $\\mathbf{{w}}$"),
             ("orange arrow", PARAM, f"slack $\\xi_i = 1 - t_i f(\\mathbf{{x}}_i)$ = {1 - t[i] * f[i]:.2f}\nof a point inside the margin")]
    yy = 0.97
    for head, color, body in lines:
        tx.text(0.0, yy, head, color=color, fontsize=9.5, va="top", transform=tx.transAxes)
        tx.text(0.0, yy - 0.075, body, color=INK, fontsize=8.5, va="top", transform=tx.transAxes)
        yy -= 0.23
    tx.text(0.0, 0.02, "classic.linear_svm, C = 1", color=GREY, fontsize=8, transform=tx.transAxes)
    return fig


# ------------------------------------------------------------------------------------------ 03
def neuron():
    fig, ax = canvas(7.2, 3.0)
    ys = [2.45, 1.8, 0.85]
    for yy, i in zip(ys, ["1", "2", "n"]):
        circle(ax, 0.45, yy, 0.24, f"$x_{i}$", fc=FILL["data"], size=11)
        arrow(ax, (0.69, yy), (2.4, 1.7), shrink=0.03)
        edge_label(ax, (0.69, yy), (2.4, 1.7), f"$w_{i}$", t=0.45, offset=0.15, size=11, color=PARAM)
    text(ax, 0.45, 1.37, "$\\vdots$", size=13)
    circle(ax, 2.72, 1.7, 0.34, "$\\Sigma$", fc=FILL["fwd"], size=14)
    box(ax, 2.32, 0.35, 0.8, 0.45, "$+\\,b$", fc=FILL["param"], size=11)
    arrow(ax, (2.72, 0.8), (2.72, 1.36))
    arrow(ax, (3.06, 1.7), (4.4, 1.7))
    text(ax, 3.73, 1.95, "$z = \\mathbf{w}^\\top\\mathbf{x} + b$", size=10, color=FWD)
    box(ax, 4.4, 1.3, 0.85, 0.8, "$f$", fc=FILL["fwd"], size=15)
    arrow(ax, (5.25, 1.7), (6.4, 1.7))
    text(ax, 5.85, 1.95, "$a = f(z)$", size=10, color=FWD)
    text(ax, 6.75, 1.7, "$a$", size=12)
    # backward: the gradient is multiplied by f'(z) on its way back
    arrow(ax, (6.4, 1.05), (5.25, 1.05), color=BWD)
    text(ax, 5.85, 0.82, "$\\partial L/\\partial a$", size=10, color=BWD)
    arrow(ax, (4.4, 1.05), (3.06, 1.05), color=BWD)
    text(ax, 3.73, 0.82, "$\\partial L/\\partial z = \\partial L/\\partial a \\cdot f'(z)$", size=10, color=BWD)
    text(ax, 3.6, 2.75, "forward: weighted sum, then the activation (blue); backward: the gradient is "
         "multiplied by $f'(z)$ (red)", size=8.5, color=GREY)
    return fig


def softmax_numbers():
    import jax.numpy as jnp

    from course_lib import activations

    z = np.array([2.0, 1.0, 0.1], np.float32)
    s = np.asarray(activations.softmax(jnp.asarray(z)), float)
    e = np.exp(z.astype(float))
    assert np.allclose(s, e / e.sum(), rtol=1e-5)
    fig, ax = canvas(7.2, 2.2)
    cols = [("logits $z$", z, FILL["fwd"], "{:+.1f}"), ("$e^{z_i}$", e, FILL["grey"], "{:.2f}"),
            ("$s_i = e^{z_i} / \\sum_j e^{z_j}$", s, FILL["data"], "{:.3f}")]
    xs = [0.5, 2.55, 5.05]
    for (title, vals, fc, fmt), x in zip(cols, xs):
        text(ax, x + 0.45, 1.95, title, size=9.5)
        grid(ax, x, 1.7, np.asarray(vals).reshape(-1, 1), cell=0.45, fmt=fmt, size=9.5, fc=fc)
        grid(ax, x, 1.7, np.asarray(vals).reshape(-1, 1), cell=0.45, fmt=None, fc="none")
    for x0, x1, label in ((1.0, 2.5, "exponentiate"), (3.05, 5.0, f"divide by the sum {e.sum():.2f}")):
        arrow(ax, (x0, 1.03), (x1, 1.03))
        text(ax, (x0 + x1) / 2, 1.2, label, size=8.5, color=GREY)
    # the probabilities as bars
    for i, p in enumerate(s):
        ax.add_patch(Rectangle((5.6, 1.7 - (i + 0.8) * 0.45), 1.2 * p, 0.3, fc=DATA, ec="none"))
    text(ax, 6.2, 0.2, f"sum = {s.sum():.3f}", size=9, color=DATA)
    text(ax, 0.5, 0.2, "activations.softmax of the scores (2.0, 1.0, 0.1)", size=8.5, ha="left", color=GREY)
    return fig


# ------------------------------------------------------------------------------------------ 04
def gaussian_nll():
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(6.8, 2.6))
    ax = fig.add_axes((0.1, 0.17, 0.47, 0.75))
    yhat, sigma = 1.0, 0.5
    ys = np.linspace(-0.6, 2.6, 400)
    dens = np.exp(-(ys - yhat) ** 2 / (2 * sigma ** 2)) / (np.sqrt(2 * np.pi) * sigma)
    ax.plot(ys, dens, color=FWD, lw=2)
    ax.fill_between(ys, dens, color=FILL["fwd"])
    y_obs = 1.8
    d_obs = np.exp(-(y_obs - yhat) ** 2 / (2 * sigma ** 2)) / (np.sqrt(2 * np.pi) * sigma)
    ax.axvline(yhat, color=INK, lw=1, ls="--")
    ax.plot([y_obs, y_obs], [0, d_obs], color=BWD, lw=1.6)
    ax.plot([y_obs], [d_obs], "o", color=BWD)
    ax.annotate("", xy=(y_obs, 0.05), xytext=(yhat, 0.05), arrowprops=dict(arrowstyle="<->", color=BWD))
    ax.text((y_obs + yhat) / 2, 0.09, "$y - \\hat y$", color=BWD, ha="center", fontsize=10)
    ax.text(yhat + 0.05, 0.86, "$\\hat y$", ha="left", fontsize=11)
    ax.text(y_obs + 0.05, d_obs + 0.03, "$p(y\\mid\\hat y)$", color=BWD, fontsize=10)
    ax.set(xlabel="target $y$", ylabel="density", ylim=(0, 0.95), xlim=(-0.6, 2.6))
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    tx = fig.add_axes((0.6, 0.05, 0.39, 0.9))
    tx.axis("off")
    tx.text(0, 0.85, "noise model: $y = \\hat y + \\varepsilon$,\n$\\varepsilon \\sim \\mathcal{N}(0, \\sigma^2)$",
            fontsize=10, va="top")
    tx.text(0, 0.5, "$-\\log p(y\\mid\\hat y) = \\dfrac{(y-\\hat y)^2}{2\\sigma^2} + \\log(\\sqrt{2\\pi}\\,\\sigma)$",
            fontsize=10, va="top", color=BWD)
    tx.text(0, 0.2, "summed over examples: a multiple of\nthe MSE plus a constant", fontsize=9, va="top")
    return fig


def ce_from_logits():
    import jax.numpy as jnp

    from course_lib import losses

    z = np.array([[2.0, 1.0, 0.1]], np.float32)
    y = np.array([1])
    ce = float(losses.cross_entropy(jnp.asarray(z), jnp.asarray(y)))
    g = np.asarray(losses.cross_entropy_grad(jnp.asarray(z), jnp.asarray(y)), float)[0]
    m = float(z.max())
    lse = m + np.log(np.exp(z[0] - m).sum())
    fig, ax = canvas(7.4, 2.9)
    box(ax, 0.1, 1.55, 1.3, 0.8, "logits\n$\\mathbf{z}$ = (2.0, 1.0, 0.1)", fc=FILL["fwd"], size=9)
    box(ax, 1.85, 1.55, 2.0, 0.8, "log-sum-exp, stable:\n$m + \\log\\sum_j e^{z_j - m}$\n"
        f"= {lse:.3f}  ($m$ = {m:.1f})", fc=FILL["grey"], size=8.5)
    box(ax, 4.3, 1.55, 1.35, 0.8, "minus $z_y$\n($y$ = 1: $z_y$ = 1.0)", fc=FILL["grey"], size=8.5)
    box(ax, 6.05, 1.55, 1.25, 0.8, f"CE = {ce:.3f}\nnats", fc=FILL["data"], size=9.5)
    for x0, x1 in ((1.4, 1.85), (3.85, 4.3), (5.65, 6.05)):
        arrow(ax, (x0, 1.95), (x1, 1.95), color=FWD)
    text(ax, 3.7, 2.65, "forward: $\\mathrm{CE}(\\mathbf{z}, y) = \\log\\sum_j e^{z_j} - z_y$, never computing "
         "$\\log(\\mathrm{softmax})$ of an underflowed 0", size=8.5, color=FWD)
    # backward
    text(ax, 0.1, 1.15, "backward:  $\\partial\\,\\mathrm{CE}/\\partial\\mathbf{z} = "
         "\\mathrm{softmax}(\\mathbf{z}) - \\mathrm{onehot}(y)$", size=10, color=BWD, ha="left")
    sm = g + np.eye(3)[1]
    rows = [("softmax(z)", sm, "{:.3f}"), ("onehot(y)", np.eye(3)[1], "{:.0f}"), ("gradient", g, "{:+.3f}")]
    for k, (name, vals, fmt) in enumerate(rows):
        text(ax, 0.1 + k * 2.45, 0.78, name, size=8.5, ha="left", color=BWD if k == 2 else INK)
        grid(ax, 0.1 + k * 2.45, 0.65, vals.reshape(1, -1), cell=0.62, fmt=fmt, size=8.5,
             fc=FILL["bwd"] if k == 2 else "white")
    text(ax, 2.1, 0.35, "−", size=12)
    text(ax, 4.55, 0.35, "=", size=12)
    return fig


# ------------------------------------------------------------------------------------------ 05
def mlp_shapes():
    from course_lib import layers

    params = layers.init_mlp((64, 128, 10), "he", seed=0)
    shapes = [(np.asarray(p["W"]).shape, np.asarray(p["b"]).shape) for p in params]
    n_params = layers.count_params(params) if hasattr(layers, "count_params") else None
    fig, ax = canvas(7.4, 3.1)
    cols = [(0.1, "input $X$", "N × 64", FILL["data"], 1.7),
            (2.55, "hidden $A_1$", "N × 128", FILL["fwd"], 2.1),
            (5.15, "logits $Z_2$", "N × 10", FILL["fwd"], 1.2)]
    for x, name, shape, fc, h in cols:
        box(ax, x, 1.65 - h / 2, 0.75, h, "", fc=fc, round_=0.05)
        text(ax, x + 0.375, 1.65 + h / 2 + 0.15, name, size=9.5)
        text(ax, x + 0.375, 1.65, shape, size=9, rotation=90)
    (w1, b1), (w2, b2) = shapes
    for x0, x1, w, b, act, idx in ((0.85, 2.55, w1, b1, "ReLU", 1), (3.3, 5.15, w2, b2, "none (logits)", 2)):
        arrow(ax, (x0, 1.65), (x1, 1.65))
        text(ax, (x0 + x1) / 2, 2.15, f"$W_{idx}$: {w[0]} × {w[1]}\n$\\mathbf{{b}}_{idx}$: {b[0]}", size=9,
             color=PARAM)
        text(ax, (x0 + x1) / 2, 1.32, f"$Z_{idx} = A_{idx - 1} W_{idx} + \\mathbf{{b}}_{idx}$", size=9, color=FWD)
        text(ax, (x0 + x1) / 2, 1.0, f"activation: {act}", size=8.5, color=GREY)
    arrow(ax, (5.9, 1.65), (6.45, 1.65))
    text(ax, 6.85, 1.65, "softmax\ninside\nthe loss", size=8.5, color=GREY)
    counts = [(w[0] + 1) * w[1] for w, _ in shapes]
    total = n_params if n_params is not None else sum(counts)
    text(ax, 3.7, 0.2, f"parameters: $(64+1)\\cdot128 + (128+1)\\cdot10$ = {counts[0]:,} + {counts[1]:,} = "
         f"{total:,}; the input layer has none", size=9)
    return fig


def xor_network():
    from course_lib import perceptron

    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)
    units = {"OR": (np.array([1.0, 1.0]), -0.5), "NAND": (np.array([-1.0, -1.0]), 1.5),
             "AND": (np.array([1.0, 1.0]), -1.5)}
    h_or = np.asarray(perceptron.predict(units["OR"][0], units["OR"][1], X))
    h_nand = np.asarray(perceptron.predict(units["NAND"][0], units["NAND"][1], X))
    H = np.stack([h_or, h_nand], 1).astype(np.float32)
    out = np.asarray(perceptron.predict(units["AND"][0], units["AND"][1], H))
    assert out.tolist() == [0, 1, 1, 0]
    fig, ax = canvas(8.0, 2.8)
    circle(ax, 0.45, 2.0, 0.26, "$x_1$", fc=FILL["data"], size=11)
    circle(ax, 0.45, 0.8, 0.26, "$x_2$", fc=FILL["data"], size=11)
    hid = {"OR": (2.3, 2.0), "NAND": (2.3, 0.8)}
    for name, (hx, hy) in hid.items():
        w, b = units[name]
        box(ax, hx - 0.6, hy - 0.35, 1.2, 0.7, f"{name}\n$\\mathbf{{w}}$ = ({w[0]:+.0f}, {w[1]:+.0f})\n$b$ = {b:+.1f}",
            fc=FILL["fwd"], size=8.5)
        for sx, sy in ((0.45, 2.0), (0.45, 0.8)):
            arrow(ax, (sx + 0.26, sy), (hx - 0.6, hy), shrink=0.02)
    w, b = units["AND"]
    box(ax, 3.85, 1.05, 1.2, 0.7, f"AND\n$\\mathbf{{w}}$ = ({w[0]:+.0f}, {w[1]:+.0f})\n$b$ = {b:+.1f}",
        fc=FILL["fwd"], size=8.5)
    for name, (hx, hy) in hid.items():
        arrow(ax, (hx + 0.6, hy), (3.85, 1.4), shrink=0.02)
    arrow(ax, (5.05, 1.4), (5.4, 1.4))
    text(ax, 5.55, 1.4, "$\\hat y$", size=12)
    header = np.array([["$x_1$", "$x_2$", "OR", "NAND", "$\\hat y$"]], dtype=object)
    body = np.column_stack([X.astype(int), h_or, h_nand, out]).astype(int).astype(str)
    grid(ax, 5.8, 2.35, header, cell=0.44, fmt="{}", size=8, fc=FILL["grey"])
    colors = [["white"] * 4 + [FILL["data"]] for _ in range(4)]
    grid(ax, 5.8, 1.91, body, cell=0.44, fmt="{}", size=9, colors=colors)
    text(ax, 2.9, 0.15, "each unit: 1 if $\\mathbf{x}\\cdot\\mathbf{w} + b > 0$ else 0 (perceptron.predict); "
         "the table is that computation", size=8.5, color=GREY)
    return fig


DIAGRAMS = [
    Diagram("00_jit_tracing", "00_jax_primer", "cell-014",
            "Flow of a call to a jitted function: a cache lookup by shapes and dtypes; on a miss, tracing "
            "with tracers, a jaxpr, XLA compilation and storage; then the compiled program runs.",
            "What `jax.jit(f)(x)` does. The cache is keyed by the shapes and dtypes of the arguments: the "
            "first call (and every new shape) traces `f` with tracers and compiles the recorded jaxpr; later "
            "calls with the same key run the compiled program without executing any Python.", jit_tracing),
    Diagram("00_prng_split", "00_jax_primer", "cell-022",
            "A random key is split into two keys; one draws weights, the other is split again.",
            "Explicit random keys: `key(42)` is split into independent keys, and each key is used once. "
            "Reusing a key would give the same numbers twice.", prng_split),
    Diagram("01_workflow", "01_what_is_deep_learning", "cell-005",
            "The breast-cancer data split into training, validation and test sets, with the job of each.",
            "The workflow of every experiment in this course: the training set fits $\\theta$, the validation "
            "set chooses what training cannot, and the test set estimates the error once, at the end. The "
            "counts are those of `data.train_val_test_split` on the breast-cancer data.", workflow),
    Diagram("01_perceptron", "01_what_is_deep_learning", "cell-008",
            "A perceptron: inputs times weights, summed with a bias, then a threshold giving 0 or 1.",
            "Rosenblatt's perceptron: one weighted sum $z = \\mathbf x\\cdot\\mathbf w + b$ and a threshold, "
            "no hidden layer. Its rule changes $\\mathbf w$ and $b$ only after a mistake.", perceptron),
    Diagram("02_decision_tree", "02_classic_ml", "c013",
            "A depth-2 decision tree on the iris petal features with the Gini impurity and class counts of "
            "every node.",
            "A CART tree of depth 2 (pre-pruned) grown by `classic.decision_tree_fit` on the two petal "
            "features of iris. Each split is the threshold that most reduces the size-weighted Gini impurity "
            "$G = 1 - \\sum_c p_c^2$ of the two children.", decision_tree),
    Diagram("02_svm_margin", "02_classic_ml", "c024",
            "Two classes of points, the SVM boundary, the two margin lines, circled support vectors and the "
            "slack of a point inside the margin.",
            "A soft-margin linear SVM fitted by `classic.linear_svm` ($C = 1$): the boundary "
            "$\\mathbf x^\\top\\mathbf w + b = 0$, the margin $\\pm 1$, the support vectors (circled) and the "
            "slack $\\xi_i$ of a point that sits inside the margin.", svm_margin),
    Diagram("03_neuron", "03_neurons_and_activations", "cell-003",
            "An artificial neuron: inputs x1..xn times weights, a sum plus bias giving z, the activation f "
            "giving a; below, the gradient flowing back is multiplied by f'(z).",
            "The artificial neuron of the equation above (here: one digit, $n = 64$). Forward (blue): $z = \\mathbf w^\\top\\mathbf x + b$, "
            "$a = f(z)$. Backward (red): the gradient arriving at $a$ is multiplied by $f'(z)$, the number "
            "this chapter is about.", neuron),
    Diagram("03_softmax", "03_neurons_and_activations", "cell-027",
            "Softmax step by step: the logits 2.0, 1.0, 0.1 are exponentiated and divided by their sum, giving "
            "probabilities 0.659, 0.242, 0.099.",
            "Softmax of the scores $(2.0, 1.0, 0.1)$, computed by `activations.softmax`: exponentiate, then "
            "divide by the sum. Adding a constant to every $z_i$ multiplies every $e^{z_i}$ by the same "
            "factor, which cancels.", softmax_numbers),
    Diagram("04_gaussian_nll", "04_loss_functions", "cell-003",
            "A Gaussian density centred on the prediction; an observed target away from it has a lower "
            "density, and its negative log is the squared error over 2 sigma squared plus a constant.",
            "The maximum-likelihood view of the MSE: with Gaussian noise around $\\hat y$, the negative "
            "log-density of an observed $y$ is $(y - \\hat y)^2 / 2\\sigma^2$ plus a constant.", gaussian_nll),
    Diagram("04_ce_from_logits", "04_loss_functions", "cell-006",
            "Cross-entropy computed from logits through a stable log-sum-exp, and its gradient softmax minus "
            "one-hot with numbers.",
            "Cross-entropy from logits, as `losses.cross_entropy` computes it for $\\mathbf z = (2, 1, 0.1)$ "
            "and $y = 1$; the gradient on the logits is predicted minus true "
            "(`losses.cross_entropy_grad`).", ce_from_logits),
    Diagram("05_mlp_shapes", "05_feedforward_networks", "cell-002",
            "A 64-128-10 MLP drawn as three blocks with the shapes of X, A1 and the logits and of every "
            "weight matrix and bias.",
            "The digits MLP of this chapter with every shape: one example per row of $X$, "
            "$Z = XW + \\mathbf b$ per layer, a ReLU hidden layer and linear logits. The parameter count is "
            "the formula of section 2.", mlp_shapes),
    Diagram("05_xor_network", "05_feedforward_networks", "cell-012",
            "A 2-2-1 network of threshold units: OR and NAND in the hidden layer, AND at the output, with "
            "its truth table giving XOR.",
            "Why one hidden layer is enough for XOR: two threshold units compute OR and NAND, an output "
            "unit computes their AND. The truth table is computed with `perceptron.predict`.", xor_network),
]
