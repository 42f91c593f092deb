"""Diagrams of chapters 06-09: backpropagation, optimizers, regularization, evaluation."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Polygon, Rectangle

from . import Diagram
from .style import (BWD, DATA, FILL, FWD, GREY, INK, PARAM, PURPLE, arrow, box, canvas, circle, edge_label,
                    polyline_arrow, r2, text)


# ------------------------------------------------------------------------------------------ 06
def _graph_numbers():
    """One sigmoid neuron with a binary cross-entropy loss, forward and backward, by course_lib.backprop."""
    import jax
    import jax.numpy as jnp

    from course_lib import backprop, losses

    x = np.array([[2.0, -1.0]], np.float32)
    W = np.array([[-0.5], [0.75]], np.float32)
    b = np.array([0.5], np.float32)
    y = jnp.ones((1, 1), jnp.float32)
    z, dense_cache = backprop.dense_forward(x, W, b)
    a, act_cache = backprop.activation_forward(z, "sigmoid")
    loss = losses.binary_cross_entropy(a, y)
    dloss_da = jax.grad(lambda p: losses.binary_cross_entropy(p, y))(a)
    dz = backprop.activation_backward(dloss_da, act_cache)
    dx, dW, db = backprop.dense_backward(dz, dense_cache)
    f = lambda v: r2(np.asarray(v).ravel()[0])  # noqa: E731
    return {"x1": 2.0, "x2": -1.0, "w1": -0.5, "w2": 0.75, "b": 0.5, "p1": 2.0 * -0.5, "p2": -1.0 * 0.75,
            "z": f(z), "a": f(a), "L": f(loss), "dL_da": f(dloss_da), "dz": f(dz),
            "dx1": r2(np.asarray(dx)[0, 0]), "dx2": r2(np.asarray(dx)[0, 1]), "dw1": r2(np.asarray(dW)[0, 0]),
            "dw2": r2(np.asarray(dW)[1, 0]), "db": f(db)}


def computational_graph():
    v = _graph_numbers()
    fig, ax = canvas(7.8, 3.6)
    leaves = {"x1": (0.1, 3.0, DATA, "$x_1$"), "w1": (0.1, 2.25, PARAM, "$w_1$"),
              "x2": (0.1, 1.35, DATA, "$x_2$"), "w2": (0.1, 0.6, PARAM, "$w_2$")}
    fills = {DATA: FILL["data"], PARAM: FILL["param"]}
    for key, (x, y, color, name) in leaves.items():
        box(ax, x, y - 0.22, 1.0, 0.44, f"{name} = {v[key]:+.2f}", fc=fills[color], size=9)
        text(ax, x + 0.5, y - 0.36, f"grad {v['d' + key]:+.3f}", size=8.5, color=BWD)
    nodes = {"m1": (2.0, 2.62), "m2": (2.0, 0.98), "add": (3.55, 1.8), "sig": (5.0, 1.8)}
    for key, sym in (("m1", "×"), ("m2", "×"), ("add", "+"), ("sig", "σ")):
        circle(ax, *nodes[key], 0.25, sym, fc=FILL["fwd"], size=13)
    box(ax, 6.05, 1.5, 0.95, 0.6, "$-\\log a$\n($y$ = 1)", fc=FILL["grey"], size=9)
    box(ax, 3.05, 0.1, 1.0, 0.44, f"$b$ = {v['b']:+.2f}", fc=FILL["param"], size=9)
    text(ax, 4.45, 0.32, f"grad {v['db']:+.3f}", size=8.5, color=BWD, ha="left")

    def edge(p0, p1, fwd, bwd, t=0.5):
        arrow(ax, p0, p1, shrink=0.0, color=INK)
        edge_label(ax, p0, p1, fwd, t=t, offset=0.13, size=8.5, color=FWD)
        edge_label(ax, p0, p1, bwd, t=t, offset=-0.13, size=8.5, color=BWD)

    for key, node in (("x1", "m1"), ("w1", "m1"), ("x2", "m2"), ("w2", "m2")):
        x, y = leaves[key][0] + 1.0, leaves[key][1]
        nx, ny = nodes[node]
        arrow(ax, (x, y), (nx - 0.25, ny + (0.08 if y > ny else -0.08)), color=INK)
    edge((2.25, 2.55), (3.33, 1.9), f"{v['p1']:+.2f}", f"{v['dz']:+.3f}")
    edge((2.25, 1.05), (3.33, 1.7), f"{v['p2']:+.2f}", f"{v['dz']:+.3f}")
    arrow(ax, (3.55, 0.54), (3.55, 1.55), color=INK)
    edge((3.8, 1.8), (4.75, 1.8), f"z = {v['z']:+.2f}", f"{v['dz']:+.3f}")
    edge((5.25, 1.8), (6.05, 1.8), f"a = {v['a']:.3f}", f"{v['dL_da']:+.2f}")
    arrow(ax, (7.0, 1.8), (7.35, 1.8), color=INK)
    text(ax, 7.58, 2.05, f"L", size=10, color=FWD)
    text(ax, 7.58, 1.8, f"{v['L']:.3f}", size=9, color=FWD)
    text(ax, 7.58, 1.52, "grad 1", size=8.5, color=BWD)
    text(ax, 4.5, 3.35, "forward values (blue, above each edge)", size=9, color=FWD, ha="left")
    text(ax, 4.5, 3.08, "gradients ∂L/∂(edge value) (red, below)", size=9, color=BWD, ha="left")
    text(ax, 5.3, 0.75, "σ: multiply by σ'(z) = a(1 − a)\n+: copy the gradient to each input\n"
         "×: multiply by the other input", size=8.5, color=GREY, ha="left")
    return fig


def backprop_layers():
    fig, ax = canvas(7.8, 3.1)
    y = 2.05
    items = [(0.05, 0.55, "$\\mathbf{x}$\nN×4", FILL["data"]), (0.95, 0.9, "dense\n$W_1, \\mathbf{b}_1$", FILL["param"]),
             (2.2, 0.6, "$\\mathbf{z}_1$\nN×6", FILL["fwd"]), (3.15, 0.55, "σ", FILL["fwd"]),
             (4.05, 0.6, "$\\mathbf{a}_1$\nN×6", FILL["fwd"]), (5.0, 0.9, "dense\n$W_2, \\mathbf{b}_2$", FILL["param"]),
             (6.25, 0.6, "$\\mathbf{z}_2$\nN×3", FILL["fwd"]), (7.1, 0.65, "J", FILL["grey"])]
    for x, w, label, fc in items:
        box(ax, x, y, w, 0.62, label, fc=fc, size=9)
    for (x0, w0, *_), (x1, *_) in zip(items[:-1], items[1:]):
        arrow(ax, (x0 + w0, y + 0.42), (x1, y + 0.42), color=FWD)
        arrow(ax, (x1, y + 0.18), (x0 + w0, y + 0.18), color=BWD)
    text(ax, 7.42, y + 0.8, "softmax + CE", size=8, color=GREY)
    text(ax, 0.05, 2.95, "forward (blue): each layer keeps a cache (its input, $\\mathbf{z}$) for the backward "
         "pass (red)", size=8.5, color=FWD, ha="left")
    # the gradient with respect to each tensor, under that tensor
    for x, ylab, s in ((6.55, 1.55, "$\\delta_2 = \\frac{1}{N}(\\mathrm{softmax}(\\mathbf{z}_2) - \\mathrm{onehot}(y))$"),
                       (4.35, 1.2, "$\\partial J/\\partial\\mathbf{a}_1 = \\delta_2 W_2^\\top$"),
                       (2.5, 1.55, "$\\delta_1 = (\\delta_2 W_2^\\top) \\odot \\sigma'(\\mathbf{z}_1)$")):
        arrow(ax, (x, y), (x, ylab + 0.14), color=BWD, lw=1.0, head=7)
        text(ax, min(x, 6.0), ylab, s, size=8.5, color=BWD)
    # the parameter gradients, under the dense layers
    for x, s in ((5.45, "$\\partial J/\\partial W_2 = \\mathbf{a}_1^\\top\\delta_2$  (6×3)"),
                 (1.4, "$\\partial J/\\partial W_1 = \\mathbf{x}^\\top\\delta_1$  (4×6)")):
        polyline_arrow(ax, [(x, y), (x, 0.82)], color=PARAM, lw=1.0, head=7)
        text(ax, x, 0.62, s, size=8.5, color=PARAM)
    text(ax, 3.9, 0.17, "and $\\partial J/\\partial\\mathbf{b}_l = \\sum_n (\\delta_l)_n$; every gradient has "
         "the shape of what it differentiates", size=8.5, color=GREY)
    return fig


# ------------------------------------------------------------------------------------------ 07
def _gd_iterates(lr, a=10.0, theta0=1.0, steps=6):
    import jax.numpy as jnp

    from course_lib import optim

    opt = optim.sgd(lr)
    theta = jnp.asarray(theta0, jnp.float32)
    state = opt.init(theta)
    out = [theta0]
    for _ in range(steps):
        updates, state = opt.update(a * theta, state, theta)
        theta = optim.apply_updates(theta, updates)
        out.append(r2(theta))
    return np.array(out)


def gd_step_size():
    a = 10.0
    fig, axes = plt.subplots(1, 3, figsize=(7.6, 2.8))
    fig.subplots_adjust(left=0.04, right=0.99, bottom=0.15, top=0.72, wspace=0.12)
    th = np.linspace(-1.6, 1.6, 200)
    for ax, lr, verdict in zip(axes, (0.05, 0.18, 0.21), ("converges smoothly", "overshoots, converges",
                                                          "overshoots, diverges")):
        it = _gd_iterates(lr, a)
        ax.plot(th, a / 2 * th ** 2, color=GREY, lw=1.2)
        ax.plot(it, a / 2 * it ** 2, "-o", color=FWD if lr < 0.2 else BWD, ms=3.5, lw=1.2)
        ax.plot([it[0]], [a / 2 * it[0] ** 2], "s", color=INK, ms=5)
        ax.set(xlim=(-1.6, 1.6), ylim=(-0.5, 13), xticks=[-1, 0, 1], yticks=[])
        ax.set_title(f"η = {lr}: θ × (1 − ηa) = θ × {1 - lr * a:+.1f}\n{verdict}", fontsize=8.5)
        ax.set_xlabel("θ", fontsize=9)
        for side in ("top", "right", "left"):
            ax.spines[side].set_visible(False)
    fig.text(0.5, 0.93, f"gradient descent on L(θ) = aθ²/2, a = {a:g}: stable iff η < 2/a = {2 / a:g} "
             "(iterates from optim.sgd)", ha="center", fontsize=9, color=INK)
    return fig


def momentum_vectors():
    import jax.numpy as jnp

    from course_lib import optim

    lr, beta = 1.0, 0.9
    g_prev, g = np.array([0.9, -0.6], np.float32), np.array([0.2, -0.7], np.float32)
    steps = {}
    for name, opt in (("momentum", optim.momentum(lr, beta)), ("nesterov", optim.nesterov(lr, beta))):
        p = jnp.zeros(2, jnp.float32)
        state = opt.init(p)
        _, state = opt.update(jnp.asarray(g_prev), state, p)      # after one step, v_t = g_prev
        upd, _ = opt.update(jnp.asarray(g), state, p)
        steps[name] = np.array([r2(u) for u in np.asarray(upd)])
    v_t = g_prev.astype(float)
    v_next = beta * v_t + g
    parts = {"momentum": [("$-\\eta\\beta v_t$", -lr * beta * v_t, GREY), ("$-\\eta g_t$", -lr * g, BWD)],
             "nesterov": [("$-\\eta g_t$", -lr * g, BWD), ("$-\\eta\\beta v_{t+1}$", -lr * beta * v_next, PURPLE)]}
    for name in parts:       # the pieces add up to the step the library takes
        assert np.allclose(sum(v for _, v, _ in parts[name]), steps[name], atol=1e-3)
    fig, axes = plt.subplots(1, 2, figsize=(7.4, 3.3))
    fig.subplots_adjust(left=0.02, right=0.98, bottom=0.1, top=0.86, wspace=0.1)
    for ax, name in zip(axes, ("momentum", "nesterov")):
        start = np.zeros(2)
        for label, vec, color in parts[name]:
            ax.annotate("", xy=start + vec, xytext=start, arrowprops=dict(arrowstyle="-|>", color=color, lw=2,
                                                                          shrinkA=0, shrinkB=0))
            mid = start + vec / 2
            ax.text(mid[0] + 0.1, mid[1] - 0.02, label, color=color, fontsize=10, ha="left", va="top")
            start = start + vec
        step = steps[name]
        ax.annotate("", xy=step, xytext=(0, 0), arrowprops=dict(arrowstyle="-|>", color=FWD, lw=2.6,
                                                                shrinkA=0, shrinkB=0))
        ax.plot([0], [0], "o", color=INK)
        ax.text(0.05, -0.1, "$\\theta_t$", fontsize=11, ha="left", va="top")
        ax.text(step[0] - 0.08, step[1], "$\\theta_{t+1}$", fontsize=11, ha="right", va="center")
        ax.set(xlim=(-2.5, 0.9), ylim=(-0.35, 2.9), aspect="equal")
        ax.axis("off")
        title = ("heavy ball: $\\theta_{t+1} = \\theta_t - \\eta(\\beta v_t + g_t)$" if name == "momentum" else
                 "Nesterov: $\\theta_{t+1} = \\theta_t - \\eta(g_t + \\beta v_{t+1})$")
        ax.set_title(title, fontsize=9.5)
    fig.text(0.5, 0.03, "blue: the step taken by optim.momentum / optim.nesterov (β = 0.9); "
             "$v_{t+1} = \\beta v_t + g_t$, $v_t$ = the previous gradient", ha="center", fontsize=8.5, color=FWD)
    return fig


# ------------------------------------------------------------------------------------------ 08
def bias_variance():
    from course_lib.widgets.regularization import make_curve_data, ridge_poly_fits

    xt, yt, xv, yv = make_curve_data()
    degrees = np.arange(1, 16)
    xp = np.linspace(-1, 1, 200)
    every = np.concatenate([xp, xt, xv])
    preds = ridge_poly_fits(xt, yt, every, degrees, [1e-8])[:, 0]
    n_p, n_t = len(xp), len(xt)
    train = np.mean((preds[:, n_p:n_p + n_t] - yt) ** 2, -1)
    val = np.mean((preds[:, n_p + n_t:] - yv) ** 2, -1)
    fig = plt.figure(figsize=(7.8, 2.8))
    best = int(degrees[np.argmin(val)])
    shown = {1: "degree 1: underfits", best: f"degree {best}: about right", 15: "degree 15: overfits"}
    for k, (d, title) in enumerate(shown.items()):
        ax = fig.add_axes((0.01 + 0.17 * k, 0.12, 0.155, 0.68))
        ax.plot(xp, np.sin(np.pi * xp), color=GREY, lw=1, ls="--")
        ax.plot(xp, preds[d - 1, :n_p], color=FWD, lw=1.6)
        ax.plot(xt, yt, "o", color=INK, ms=3)
        ax.set(xlim=(-1, 1), ylim=(-2, 2), xticks=[], yticks=[])
        ax.set_title(title, fontsize=8.5)
    ax = fig.add_axes((0.58, 0.17, 0.4, 0.68))
    ax.semilogy(degrees, train, "-o", color=FWD, ms=3, label="training error")
    ax.semilogy(degrees, val, "-o", color=BWD, ms=3, label="validation error")
    ax.axvline(best, color=GREY, lw=1, ls=":")
    ax.text(1.0, val.max() * 0.8, "underfitting:\nboth errors high", fontsize=8, color=INK, va="top")
    ax.text(9.5, val.max() * 0.8, "overfitting:\nlarge gap", fontsize=8, color=INK, va="top", ha="right")
    ax.text(best + 0.2, val.max() * 0.04, f"lowest validation\nerror: degree {best}", fontsize=8, color=GREY)
    ax.set_xlabel("polynomial degree (capacity)", fontsize=9)
    ax.set_ylabel("MSE (log scale)", fontsize=9)
    ax.legend(fontsize=8, loc="center right")
    ax.tick_params(labelsize=8)
    fig.text(0.25, 0.93, "20 noisy samples of sin(πx) (dashed)", ha="center", fontsize=9, color=GREY)
    return fig


def l1_l2_geometry():
    fig, axes = plt.subplots(1, 2, figsize=(7.0, 3.2))
    fig.subplots_adjust(left=0.02, right=0.98, bottom=0.02, top=0.88, wspace=0.06)
    center = np.array([1.9, 0.55])                      # unpenalised optimum
    A = np.array([[1.0, 0.3], [0.3, 1.2]])              # loss (w - c)^T A (w - c)
    g1, g2 = np.meshgrid(np.linspace(-1.6, 2.6, 300), np.linspace(-1.6, 2.2, 300))
    W = np.stack([g1 - center[0], g2 - center[1]], -1)
    loss = np.einsum("...i,ij,...j->...", W, A, W)
    t = np.linspace(0, 2 * np.pi, 2001)
    for ax, kind in zip(axes, ("L2", "L1")):
        if kind == "L2":
            boundary = np.stack([np.cos(t), np.sin(t)], 1)
            ax.add_patch(plt.Circle((0, 0), 1, fc=FILL["param"], ec=PARAM, lw=1.5))
        else:
            boundary = np.stack([np.cos(t), np.sin(t)], 1)
            boundary = boundary / np.abs(boundary).sum(1, keepdims=True)
            ax.add_patch(Polygon([(1, 0), (0, 1), (-1, 0), (0, -1)], fc=FILL["param"], ec=PARAM, lw=1.5))
        d = boundary - center
        best = boundary[np.argmin(np.einsum("ni,ij,nj->n", d, A, d))]
        level = float(np.einsum("i,ij,j->", best - center, A, best - center))
        ax.contour(g1, g2, loss, levels=[level * f for f in (0.25, 0.6, 1.0, 1.6)], colors=[GREY] * 3 + [GREY],
                   linewidths=[0.8, 0.8, 1.6, 0.8])
        ax.plot(*center, "x", color=INK, ms=7)
        ax.text(center[0] + 0.08, center[1] + 0.1, "unpenalised\nminimum", fontsize=8)
        ax.plot(*best, "o", color=BWD, ms=7, zorder=5)
        ax.axhline(0, color=INK, lw=0.6)
        ax.axvline(0, color=INK, lw=0.6)
        ax.text(2.5, -0.2, "$w_1$", fontsize=10)
        ax.text(0.08, 2.05, "$w_2$", fontsize=10)
        note = (f"solution ({best[0]:.2f}, {best[1]:.2f}): both weights shrink" if kind == "L2"
                else f"solution ({best[0]:.2f}, {abs(best[1]):.2f}): $w_2$ is exactly 0")
        ax.text(-1.5, -1.45, note, fontsize=8.5, color=BWD)
        ax.set(xlim=(-1.6, 2.6), ylim=(-1.6, 2.2), aspect="equal")
        ax.axis("off")
        ax.set_title("L2: $\\|\\mathbf{w}\\|_2 \\leq 1$ (a disc)" if kind == "L2" else
                     "L1: $\\|\\mathbf{w}\\|_1 \\leq 1$ (a diamond)", fontsize=10)
    return fig


def early_stopping_curve():
    from course_lib import training

    epochs = np.arange(60)
    train = 1.6 * np.exp(-epochs / 9) + 0.05
    val = 1.6 * np.exp(-epochs / 9) + 0.25 + 0.0009 * np.maximum(epochs - 14, 0) ** 1.6
    val = val + 0.02 * np.sin(epochs * 1.7)             # a little noise, as real curves have
    stopper = training.early_stopping(patience=10, monitor="val_loss")
    stop = next(n for n in range(1, len(epochs) + 1) if stopper.should_stop({"val_loss": val[:n]}))
    best = stopper.best_epoch({"val_loss": val[:stop]})
    fig = plt.figure(figsize=(6.8, 2.8))
    ax = fig.add_axes((0.08, 0.17, 0.62, 0.75))
    ax.plot(epochs, train, color=FWD, lw=1.8, label="training loss")
    ax.plot(epochs[:stop], val[:stop], color=BWD, lw=1.8, label="validation loss")
    ax.plot(epochs[stop - 1:], val[stop - 1:], color=BWD, lw=1.2, ls=":", label="(not trained)")
    ax.axvspan(best, stop - 1, color=FILL["yellow"])
    ax.plot([best], [val[best]], "o", color=BWD, ms=7)
    ax.axvline(stop - 1, color=INK, lw=1, ls="--")
    ax.text(best, val[best] - 0.12, f"best epoch {best}", ha="center", va="top", fontsize=8.5)
    ax.text((best + stop - 1) / 2, 1.5, f"patience\n{stop - 1 - best} epochs", ha="center", fontsize=8.5)
    ax.text(stop - 0.5, 1.5, f"stop\n(epoch {stop - 1})", ha="left", fontsize=8.5)
    ax.set(xlabel="epoch", ylabel="loss", ylim=(0, 1.8), xlim=(0, 59))
    ax.legend(fontsize=8, loc="upper right", bbox_to_anchor=(1.0, 0.75))
    tx = fig.add_axes((0.72, 0.1, 0.27, 0.85))
    tx.axis("off")
    tx.text(0, 0.9, "training.early_stopping(\n  patience=10,\n  monitor=\"val_loss\")", fontsize=8.5,
            family="DejaVu Sans Mono", va="top")
    tx.text(0, 0.5, "stops when the validation\nloss has not improved for\n10 epochs, and returns the\n"
            "parameters of the best\nepoch", fontsize=8.5, va="top")
    return fig


def dropout_net():
    import jax

    from course_lib import conv

    h = np.ones((1, 6), np.float32)
    out = np.asarray(conv.dropout(h, 0.5, jax.random.key(3)))
    kept = out[0] > 0
    fig, ax = canvas(7.2, 3.1)
    layers_y = {0: np.linspace(0.5, 2.4, 4), 1: np.linspace(0.3, 2.6, 6), 2: np.linspace(0.6, 2.2, 3)}
    xs = {0: 0.5, 1: 2.1, 2: 3.7}
    for (l0, l1) in ((0, 1), (1, 2)):
        for i, y0 in enumerate(layers_y[l0]):
            for j, y1 in enumerate(layers_y[l1]):
                dead = (l0 == 1 and not kept[i]) or (l1 == 1 and not kept[j])
                ax.plot([xs[l0], xs[l1]], [y0, y1], color=GREY if not dead else "#dddddd",
                        lw=0.8 if not dead else 0.5, ls="-" if not dead else ":", zorder=1)
    for l, ys in layers_y.items():
        for j, y in enumerate(ys):
            if l == 1 and not kept[j]:
                circle(ax, xs[l], y, 0.16, "", fc="#f2f2f2", ec="#bbbbbb")
                text(ax, xs[l], y, "×", size=12, color=BWD)
            else:
                circle(ax, xs[l], y, 0.16, "", fc=FILL["fwd"] if l == 1 else FILL["grey"])
                if l == 1:
                    text(ax, xs[l] + 0.3, y, f"×{out[0, j]:.0f}", size=8.5, color=FWD, ha="left")
    text(ax, 2.1, 2.95, "hidden layer, p = 0.5", size=9)
    text(ax, 5.6, 2.2, "training: a fresh random mask\nper mini-batch; survivors × 1/(1 − p)",
         size=9, color=INK)
    text(ax, 5.6, 1.3, "evaluation: no mask, no scaling\n(the expected activation is the same)",
         size=9, color=INK)
    text(ax, 5.6, 0.45, "mask drawn by conv.dropout(h, 0.5, key)", size=8, color=GREY)
    return fig


# ------------------------------------------------------------------------------------------ 09
def confusion_anatomy():
    from course_lib import metrics

    y_true = np.array([0] * 60 + [1] * 40)
    y_pred = np.array([0] * 52 + [1] * 8 + [0] * 6 + [1] * 34)
    cm = np.asarray(metrics.confusion_matrix(y_true, y_pred))
    (tn, fp), (fn, tp) = cm
    prec, rec = tp / (tp + fp), tp / (tp + fn)
    fig, ax = canvas(7.4, 3.1)
    x0, top, cell = 1.45, 2.45, 1.05
    names = [["TN", "FP"], ["FN", "TP"]]
    fills = [[FILL["data"], FILL["bwd"]], [FILL["bwd"], FILL["data"]]]
    for i in range(2):
        for j in range(2):
            ax.add_patch(Rectangle((x0 + j * cell, top - (i + 1) * cell), cell, cell, fc=fills[i][j], ec=INK))
            text(ax, x0 + (j + 0.5) * cell, top - (i + 0.5) * cell, f"{names[i][j]}\n{cm[i, j]}", size=10)
    text(ax, x0 + cell, top + 0.3, "predicted class $j$", size=9)
    text(ax, x0 + 0.5 * cell, top + 0.1, "0", size=9)
    text(ax, x0 + 1.5 * cell, top + 0.1, "1", size=9)
    text(ax, x0 - 0.45, top - cell, "true class $i$", size=9, rotation=90)
    text(ax, x0 - 0.15, top - 0.5 * cell, "0", size=9)
    text(ax, x0 - 0.15, top - 1.5 * cell, "1", size=9)
    # precision: the predicted-1 column; recall: the true-1 row
    ax.add_patch(Rectangle((x0 + cell + 0.05, top - 2 * cell + 0.05), cell - 0.1, 2 * cell - 0.1, fill=False,
                           ec=PURPLE, lw=2.2, ls="--"))
    ax.add_patch(Rectangle((x0 + 0.05, top - 2 * cell + 0.08), 2 * cell - 0.1, cell - 0.16, fill=False, ec=PARAM,
                           lw=2.2))
    text(ax, 5.05, 2.2, f"precision = TP / (TP + FP) = {tp}/{tp + fp} = {prec:.3f}\n(the predicted-1 column, dashed)",
         size=9, color=PURPLE)
    text(ax, 5.05, 1.35, f"recall = TP / (TP + FN) = {tp}/{tp + fn} = {rec:.3f}\n(the true-1 row, solid)",
         size=9, color=PARAM)
    text(ax, 5.05, 0.55, f"accuracy = trace / n = ({tn} + {tp})/{cm.sum()} = {(tn + tp) / cm.sum():.2f}\n"
         "(the diagonal: correct predictions)", size=9, color=DATA)
    text(ax, 0.1, 0.1, "rows: truth, columns: prediction (metrics.confusion_matrix)", size=8, color=GREY,
         ha="left")
    return fig


def roc_anatomy():
    from course_lib import metrics

    neg = np.array([0.05, 0.12, 0.2, 0.33, 0.41, 0.48, 0.57, 0.7])
    pos = np.array([0.3, 0.45, 0.62, 0.66, 0.74, 0.81, 0.88, 0.95])
    y = np.r_[np.zeros(8, int), np.ones(8, int)]
    s = np.r_[neg, pos]
    fpr, tpr, thr = (np.asarray(v, float) for v in metrics.roc_curve(y, s, drop_intermediate=False))
    area = float(metrics.auc(fpr, tpr))
    t = 0.6
    tn, fp, fn, tp = (int(v) for v in metrics.binary_counts_at_threshold(y, s, t))
    fig = plt.figure(figsize=(7.8, 3.0))
    ax = fig.add_axes((0.12, 0.36, 0.44, 0.42))
    ax.scatter(neg, np.zeros_like(neg), s=45, color=FILL["bwd"], edgecolors=BWD, zorder=3)
    ax.scatter(pos, np.ones_like(pos), s=45, color=FILL["fwd"], edgecolors=FWD, zorder=3)
    ax.axvline(t, color=INK, lw=1.5, ls="--")
    ax.axvspan(t, 1.0, color=FILL["yellow"], zorder=0)
    ax.set(xlim=(0, 1.0), ylim=(-0.5, 1.5), yticks=[0, 1], yticklabels=["negatives", "positives"])
    ax.set_title(f"threshold t = {t}: predict 1 right of the line", fontsize=9)
    ax.set_xlabel("score", fontsize=9)
    ax.tick_params(labelsize=8)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    fig.text(0.34, 0.1, f"TP = {tp}, FN = {fn} (of P = {tp + fn});   FP = {fp}, TN = {tn} (of N = {fp + tn})",
             ha="center", fontsize=8.5)
    ax2 = fig.add_axes((0.66, 0.14, 0.3, 0.72))
    ax2.fill_between(fpr, tpr, step="post", color=FILL["fwd"])
    ax2.step(fpr, tpr, where="post", color=FWD, lw=1.8)
    ax2.plot([0, 1], [0, 1], color=GREY, ls=":", lw=1)
    ax2.plot([fp / 8], [tp / 8], "o", color=BWD, ms=8, zorder=5)
    ax2.annotate(f"t = {t}: ({fp}/8, {tp}/8)", xy=(fp / 8, tp / 8), xytext=(0.3, 0.45), fontsize=8.5,
                 arrowprops=dict(arrowstyle="-", color=BWD))
    ax2.text(0.55, 0.12, f"AUC = {area:.3f}", fontsize=9, color=FWD)
    ax2.text(0.62, 0.55, "random\nranking", fontsize=8, color=GREY, rotation=0)
    ax2.set(xlim=(0, 1), ylim=(0, 1.02), aspect="equal")
    ax2.set_xlabel("FPR = FP / N", fontsize=9)
    ax2.set_ylabel("TPR = TP / P", fontsize=9)
    ax2.tick_params(labelsize=8)
    fig.text(0.3, 0.92, "one threshold = one confusion matrix = one point of the ROC curve", ha="center",
             fontsize=9)
    fig.text(0.34, 0.02, "metrics.roc_curve and metrics.auc on these 16 scores", ha="center", fontsize=8,
             color=GREY)
    return fig


def kfold():
    from course_lib import metrics

    folds = metrics.kfold_indices(20, 5, shuffle=False) if _kfold_accepts_shuffle() else metrics.kfold_indices(20, 5)
    fig, ax = canvas(7.4, 2.7)
    x0, w = 1.0, 4.2
    for k, fold in enumerate(folds):
        val_idx = np.asarray(fold[1])
        y = 2.15 - k * 0.42
        text(ax, 0.55, y + 0.15, f"fold {k + 1}", size=9)
        for i in range(20):
            fc = FILL["param"] if i in set(val_idx.tolist()) else FILL["fwd"]
            ax.add_patch(Rectangle((x0 + i * w / 20, y), w / 20, 0.3, fc=fc, ec="white", lw=1))
        text(ax, x0 + w + 0.15, y + 0.15, f"score$_{k + 1}$", size=9, ha="left")
    ax.add_patch(Rectangle((x0 + w + 1.0, 0.47), 0.85, 1.98, fc=FILL["bwd"], ec=INK))
    text(ax, x0 + w + 1.425, 1.46, "test\nset\n(once,\nat the\nend)", size=8.5)
    text(ax, x0 + w / 2, 2.6, "training + validation data (20 samples here), split into k = 5 folds", size=9)
    text(ax, x0, 0.2, "blue: fit on k − 1 folds;  orange: validate on the held-out fold;  "
         "CV score = mean of the k scores", size=8.5, ha="left")
    return fig


def _kfold_accepts_shuffle():
    import inspect

    from course_lib import metrics

    return "shuffle" in inspect.signature(metrics.kfold_indices).parameters


DIAGRAMS = [
    Diagram("06_computational_graph", "06_backpropagation", "cell-002",
            "A computational graph of one sigmoid neuron with a cross-entropy loss, with the forward value "
            "above every edge and the gradient below it.",
            "A computational graph with numbers: $z = w_1x_1 + w_2x_2 + b$, $a = \\sigma(z)$, "
            "$L = -\\log a$ (label 1). Forward values (blue) are computed left to right, gradients (red) "
            "right to left, each node applying its local rule; every number comes from "
            "`backprop.dense_forward`/`activation_forward` and their backward functions.",
            computational_graph),
    Diagram("06_backprop_layers", "06_backpropagation", "cell-004",
            "A 4-6-3 network as a chain of layers with forward arrows and, below, the backward quantities "
            "delta and the parameter gradients with their shapes.",
            "The delta rule on a 4-6-3 network: the forward pass (blue) leaves a cache in every layer; the "
            "backward pass (red) turns $\\delta_2$ into $\\delta_1$ and every layer's parameter gradient. "
            "Each gradient has the shape of what it differentiates.", backprop_layers),
    Diagram("07_gd_step_size", "07_optimizers", "cell-002",
            "Three runs of gradient descent on a parabola: a small learning rate converges smoothly, a "
            "larger one zig-zags in, one above 2/a diverges.",
            "Gradient descent on $L(\\theta) = \\tfrac a2\\theta^2$ with $a = 10$: each step multiplies "
            "$\\theta$ by $1 - \\eta a$, so it converges exactly when $\\eta < 2/a = 0.2$. The iterates are "
            "those of `optim.sgd`.", gd_step_size),
    Diagram("07_momentum", "07_optimizers", "cell-012",
            "Vector diagrams of one momentum step and one Nesterov step, built from the previous velocity "
            "and the current gradient.",
            "One step of heavy-ball momentum and of Nesterov momentum, as `optim.momentum` and "
            "`optim.nesterov` compute it: the velocity $\\beta v_t$ keeps the old direction, the gradient "
            "corrects it; Nesterov adds the gradient a second time, scaled by $\\beta$ (its look-ahead).",
            momentum_vectors),
    Diagram("08_bias_variance", "08_regularization_and_training", "c004",
            "Three polynomial fits to noisy points (degree 1, 4 and 15) and the training and validation "
            "error against the degree.",
            "Capacity against error on this chapter's data (20 noisy samples of $\\sin(\\pi x)$): the "
            "training error keeps falling with the degree, the validation error falls, then rises. Low "
            "degrees underfit (high bias), high degrees overfit (high variance).", bias_variance),
    Diagram("08_l1_l2_geometry", "08_regularization_and_training", "c009",
            "Loss contours around an unpenalised minimum and the L2 disc and L1 diamond constraints: the L2 "
            "solution has two non-zero weights, the L1 solution sits on a corner with one weight zero.",
            "Why L1 gives exact zeros: minimising the loss inside $\\|\\mathbf w\\| \\le 1$ stops where a "
            "contour first touches the constraint. The disc is touched anywhere (both weights shrink); the "
            "diamond is usually touched at a corner, where a weight is exactly 0.", l1_l2_geometry),
    Diagram("08_early_stopping", "08_regularization_and_training", "c022",
            "Training and validation loss against epochs; the best validation epoch, the patience window "
            "and the epoch where training stops are marked.",
            "Early stopping with `patience=10` on a validation curve that starts to rise: "
            "`training.early_stopping` stops 10 epochs after the best epoch and returns that epoch's "
            "parameters.", early_stopping_curve),
    Diagram("08_dropout", "08_regularization_and_training", "c024",
            "A three-layer network in which half of the hidden units are crossed out and the survivors "
            "are multiplied by 2.",
            "Inverted dropout with $p = 0.5$ on a hidden layer: the mask (drawn here by `conv.dropout`) "
            "removes units and their connections for one mini-batch; the survivors are scaled by "
            "$1/(1-p)$ so that the expected activation is unchanged.", dropout_net),
    Diagram("09_confusion_matrix", "09_model_evaluation", "c004",
            "A 2 by 2 confusion matrix with TN, FP, FN and TP; precision is read from the predicted-1 column "
            "and recall from the true-1 row.",
            "Anatomy of a binary confusion matrix (rows: truth, columns: prediction). The diagonal counts "
            "correct predictions; precision reads the predicted-positive column, recall the "
            "true-positive row.", confusion_anatomy),
    Diagram("09_roc_anatomy", "09_model_evaluation", "c017",
            "Scores of positives and negatives on a line with a threshold, and the ROC curve with the point "
            "of that threshold and the area under the curve shaded.",
            "Where a ROC curve comes from: a threshold $t$ turns scores into labels and gives one pair "
            "(FPR, TPR); sweeping $t$ from $+\\infty$ to $-\\infty$ traces the curve from (0, 0) to (1, 1). "
            "Computed with `metrics.roc_curve` and `metrics.auc`.", roc_anatomy),
    Diagram("09_kfold", "09_model_evaluation", "c033",
            "Five rows of twenty cells; in each row a different block of four cells is the validation fold; "
            "the test set is kept aside.",
            "5-fold cross-validation (`metrics.kfold_indices`): every sample is validated exactly once, "
            "the model is fitted 5 times, and the 5 scores are averaged. The test set takes no part in it.",
            kfold),
]
