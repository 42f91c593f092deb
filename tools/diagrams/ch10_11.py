"""Diagrams of chapters 10-11: convolution (sliding window, im2col, padding and stride, pooling, a CNN)
and recurrent networks (the unrolled RNN and BPTT, the LSTM cell, the GRU cell)."""
from __future__ import annotations

import numpy as np
from matplotlib.patches import FancyBboxPatch, Rectangle

from . import Diagram
from .style import (BWD, FILL, FWD, GREY, INK, PARAM, PURPLE, arrow, box, canvas, circle, grid, outline,
                    polyline_arrow, text)

#: colours of the windows drawn on one input (one per output pixel shown)
WINDOW = ["#c0392b", "#1f5fa8", "#2e8540", "#6a3d9a"]


def _conv(x, w, **kw):
    """course_lib.conv.conv2d of one single-channel image with one kernel, as a 2-D NumPy array."""
    from course_lib import conv

    out = conv.conv2d(np.asarray(x, np.float32)[None, :, :, None], np.asarray(w, np.float32)[:, :, None, None], **kw)
    return np.rint(np.asarray(out)[0, :, :, 0]).astype(int)      # integer inputs: exact integers


X5 = np.array([[0, 1, 2, 1, 0],
               [1, 3, 3, 2, 0],
               [0, 2, 3, 3, 1],
               [0, 1, 2, 3, 2],
               [0, 0, 1, 2, 1]])
K3 = np.array([[1, 0, -1],
               [1, 0, -1],
               [1, 0, -1]])


# ------------------------------------------------------------------------------------------ 10
def sliding_window():
    out = _conv(X5, K3)
    y, x = 1, 2
    window = X5[y:y + 3, x:x + 3]
    assert int((window * K3).sum()) == out[y, x]
    fig, ax = canvas(7.6, 3.0)
    c = 0.4
    text(ax, 0.1 + 2.5 * c, 2.75, "input $x$ (5×5)", size=9.5)
    grid(ax, 0.1, 2.55, X5, cell=c, fmt="{:d}", size=9.5, fc=FILL["data"])
    outline(ax, 0.1 + x * c, 2.55 - (y + 3) * c, 3 * c, 3 * c, color=WINDOW[0])
    text(ax, 2.35, 1.55, "⊙", size=16)
    text(ax, 2.75 + 1.5 * c, 2.35, "kernel $w$ (3×3)", size=9.5)
    grid(ax, 2.75, 2.15, K3, cell=c, fmt="{:+d}", size=9.5, fc=FILL["param"])
    text(ax, 4.35, 1.55, "=", size=14)
    text(ax, 5.0 + 1.5 * c, 2.35, "output (3×3)", size=9.5)
    grid(ax, 5.0, 2.15, out, cell=c, fmt="{:+d}", size=9.5, fc=FILL["fwd"])
    outline(ax, 5.0 + x * c, 2.15 - (y + 1) * c, c, c, color=WINDOW[0])
    polyline_arrow(ax, [(0.1 + (x + 1.5) * c, 2.55 - (y + 3) * c), (0.1 + (x + 1.5) * c, 0.68),
                        (5.0 + (x + 0.5) * c, 0.68), (5.0 + (x + 0.5) * c, 2.15 - (y + 1) * c)],
                   color=WINDOW[0], lw=1.2, head=8)
    terms = " + ".join(f"{a}·{b}" if b >= 0 else f"{a}·(−{-b})" for a, b in zip(window.ravel(), K3.ravel()))
    text(ax, 0.1, 0.42, f"out[{y}, {x}] = Σ$_{{i,j}}$ x[{y}+i, {x}+j] · w[i, j] = {terms}",
         size=8.5, ha="left")
    text(ax, 0.1, 0.15, f"= {out[y, x]}.  Slide the window one pixel and repeat: same 9 weights at every "
         "position (conv.conv2d, padding \"valid\")", size=8.5, ha="left")
    return fig


def im2col():
    x = np.arange(1, 17).reshape(4, 4)
    w = np.array([[1, 0, 0], [0, 1, 0], [0, 0, -1]])
    out = _conv(x, w)
    patches = np.stack([x[i:i + 3, j:j + 3].ravel() for i in range(2) for j in range(2)])
    assert np.array_equal(patches @ w.ravel(), out.ravel())
    fig, ax = canvas(7.8, 3.0)
    c = 0.36
    text(ax, 0.15 + 2 * c, 2.8, "input (4×4)", size=9.5)
    grid(ax, 0.15, 2.6, x, cell=c, fmt="{:d}", size=8.5, fc=FILL["data"])
    for k, (i, j) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
        inset = 0.03 * (k + 1)
        outline(ax, 0.15 + j * c + inset, 2.6 - (i + 3) * c + inset, 3 * c - 2 * inset, 3 * c - 2 * inset,
                color=WINDOW[k], lw=1.6)
    arrow(ax, (1.75, 1.85), (2.15, 1.85))
    cp = 0.3
    text(ax, 2.2 + 4.5 * cp, 2.8, "patch matrix (4 output pixels × 9 taps)", size=9.5)
    colors = [[FILL["white"]] * 9 for _ in range(4)]
    grid(ax, 2.2, 2.6, patches, cell=cp, fmt="{:d}", size=8, colors=colors)
    for k in range(4):
        outline(ax, 2.2, 2.6 - (k + 1) * cp, 9 * cp, cp, color=WINDOW[k], lw=1.6)
    text(ax, 5.05, 2.0, "×", size=14)
    text(ax, 5.45, 2.8, "kernel", size=9.5)
    grid(ax, 5.3, 2.6, w.reshape(-1, 1), cell=cp * 0.62, fmt="{:+d}", size=7, fc=FILL["param"])
    text(ax, 5.75, 2.0, "=", size=14)
    text(ax, 6.3, 2.8, "output", size=9.5)
    grid(ax, 6.15, 2.6, out.reshape(-1, 1), cell=cp, fmt="{:+d}", size=8, fc=FILL["fwd"])
    for k in range(4):
        outline(ax, 6.15, 2.6 - (k + 1) * cp, cp, cp, color=WINDOW[k], lw=1.6)
    arrow(ax, (6.6, 2.0), (6.95, 2.0))
    grid(ax, 7.0, 2.3, out, cell=cp, fmt="{:+d}", size=8, fc=FILL["fwd"])
    text(ax, 7.3, 2.5, "2×2", size=8.5)
    text(ax, 0.15, 0.62, "one row per output pixel, holding the $k_h k_w C_{in}$ input values its window "
         "covers; the convolution is then one matrix product", size=8.5, ha="left")
    text(ax, 0.15, 0.32, "(conv.conv2d builds the rows with one gather from an index table, _tap_index)",
         size=8.5, ha="left", color=GREY)
    return fig


def padding_stride():
    from course_lib import conv

    n, k, s, p = 5, 3, 2, 1
    n_out = conv.conv_output_size(n, k, stride=s, padding=p)
    shape = conv.conv_output_shape((1, n, n, 1), (k, k, 1, 1), stride=s, padding=p)
    out = _conv(X5, K3, stride=s, padding=p)
    assert out.shape == (n_out, n_out) and tuple(shape)[1:3] == (n_out, n_out)
    padded = np.pad(X5, p)
    fig, ax = canvas(7.6, 3.25)
    c = 0.36
    top = 2.95
    labels = [[f"{v}" for v in row] for row in padded]
    colors = [[FILL["grey"] if (i in (0, 6) or j in (0, 6)) else FILL["data"] for j in range(7)] for i in range(7)]
    grid(ax, 0.2, top, np.array(labels, dtype=object), cell=c, fmt="{}", size=8.5, colors=colors)
    for m, col in enumerate(range(n_out)):
        inset = 0.025 * (m + 1)
        outline(ax, 0.2 + col * s * c + inset, top - 3 * c + inset, 3 * c - 2 * inset, 3 * c - 2 * inset,
                color=WINDOW[m], lw=1.8)
    text(ax, 0.2 + 3.5 * c, top - 7 * c - 0.2, "5×5 input, zero padding p = 1 (grey)", size=8.5)
    text(ax, 3.35, 2.3, "stride s = 2:\nthe window\njumps 2 pixels", size=8.5)
    arrow(ax, (2.95, 1.6), (3.75, 1.6))
    grid(ax, 3.95, 2.15, out, cell=c * 1.2, fmt="{:+d}", size=9, fc=FILL["fwd"])
    for m in range(n_out):
        outline(ax, 3.95 + m * c * 1.2, 2.15 - c * 1.2, c * 1.2, c * 1.2, color=WINDOW[m], lw=1.8)
    text(ax, 3.95 + 1.5 * c * 1.2, 2.35, f"output {n_out}×{n_out}", size=9)
    text(ax, 5.6, 2.75, "$n_{out} = \\left\\lfloor \\dfrac{n + p_{lo} + p_{hi} - d(k-1) - 1}{s} \\right\\rfloor + 1$",
         size=9.5)
    text(ax, 5.4, 1.55, f"$= \\lfloor (5 + 1 + 1 - 2 - 1)/2 \\rfloor + 1 = {n_out}$", size=9, ha="left")
    text(ax, 5.4, 1.1, "(k = 3, d = 1;\nconv.conv_output_size)", size=8, ha="left", color=GREY)
    return fig


def pooling():
    import jax.numpy as jnp

    from course_lib import conv

    x = np.array([[1, 3, 2, 0], [4, 2, 1, 5], [0, 6, 3, 2], [1, 2, 7, 1]], np.float32)
    mx, cache = conv.max_pool_forward(jnp.asarray(x)[None, :, :, None], 2)
    av = np.asarray(conv.avg_pool2d(jnp.asarray(x)[None, :, :, None], 2))[0, :, :, 0]
    dout = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)
    dx = np.asarray(conv.max_pool_backward(jnp.asarray(dout)[None, :, :, None], cache))[0, :, :, 0]
    mx = np.asarray(mx)[0, :, :, 0]
    fig, ax = canvas(7.8, 2.9)
    c = 0.38
    quad = [[FILL["data"], FILL["data"], FILL["param"], FILL["param"]]] * 2 + \
           [[FILL["fwd"], FILL["fwd"], FILL["purple"], FILL["purple"]]] * 2
    text(ax, 0.15 + 2 * c, 2.7, "input (4×4)", size=9.5)
    grid(ax, 0.15, 2.5, x.astype(int), cell=c, fmt="{:d}", size=9.5, colors=quad)
    # max pooling
    arrow(ax, (1.8, 1.95), (2.3, 1.95))
    text(ax, 2.05, 2.15, "max", size=8.5)
    small = [[FILL["data"], FILL["param"]], [FILL["fwd"], FILL["purple"]]]
    grid(ax, 2.4, 2.33, mx.astype(int), cell=c, fmt="{:d}", size=9.5, colors=small)
    arrow(ax, (1.8, 1.25), (2.3, 1.25))
    text(ax, 2.05, 1.45, "mean", size=8.5)
    grid(ax, 2.4, 1.63, av, cell=c, fmt="{:.2f}", size=7.5, colors=small)
    text(ax, 2.4 + c, 0.8, "2×2 windows,\nstride 2,\nno parameters", size=8, color=GREY, va="top")
    # backward of max pooling
    text(ax, 4.75, 2.7, "backward of max pooling", size=9.5, color=BWD)
    text(ax, 3.95, 2.45, "dout", size=8.5, color=BWD)
    grid(ax, 3.75, 2.33, dout.astype(int), cell=c, fmt="{:d}", size=9.5, fc=FILL["bwd"])
    arrow(ax, (4.6, 1.95), (5.05, 1.95), color=BWD)
    text(ax, 5.15 + 2 * c, 2.45, "dx: each gradient goes to its window's maximum", size=8.5, color=BWD)
    colors = [[FILL["bwd"] if dx[i, j] != 0 else "white" for j in range(4)] for i in range(4)]
    grid(ax, 5.15, 2.33, dx.astype(int), cell=c, fmt="{:d}", size=9.5, colors=colors)
    text(ax, 5.15 + 2 * c, 0.55, "(average pooling would spread\neach one as 1/4 over its window)", size=8,
         color=GREY)
    text(ax, 0.15, 0.15, "conv.max_pool_forward / max_pool_backward and conv.avg_pool2d", size=8, color=GREY,
         ha="left")
    return fig


def cnn_architecture():
    from course_lib import conv

    shapes = [("input", (8, 8, 1))]
    s = conv.conv_output_shape((1, 8, 8, 1), (3, 3, 1, 32), padding="same")[1:]
    shapes.append(("conv 3×3, 32\n+ ReLU", tuple(s)))
    s = (s[0] // 2, s[1] // 2, s[2])
    shapes.append(("max-pool 2", s))
    s = conv.conv_output_shape((1, *s), (3, 3, 32, 64), padding="same")[1:]
    shapes.append(("conv 3×3, 64\n+ ReLU", tuple(s)))
    s = (s[0] // 2, s[1] // 2, s[2])
    shapes.append(("max-pool 2", s))
    flat = int(np.prod(s))
    params = [0, conv.conv_param_count(3, 3, 1, 32), 0, conv.conv_param_count(3, 3, 32, 64), 0]
    dense = conv.dense_param_count(flat, 10)
    fig, ax = canvas(7.8, 2.9)
    x = 0.15
    base = 1.05
    for k, ((name, (h, w, ch)), n_par) in enumerate(zip(shapes, params)):
        side = 0.09 * h
        depth = 0.03 + 0.006 * ch
        fc = FILL["fwd"] if ch > 1 else FILL["data"]
        for m in range(3, 0, -1):             # a stack of maps: offset squares
            off = depth * m / 3
            ax.add_patch(Rectangle((x + off, base + off), side, side, fc=fc, ec=INK, lw=0.8))
        ax.add_patch(Rectangle((x, base), side, side, fc=fc, ec=INK, lw=1))
        cx = x + (side + depth) / 2
        text(ax, cx, 0.8, f"{h}×{w}×{ch}", size=8.5)
        text(ax, cx, 2.75, name, size=8.5, va="top")
        if n_par:
            text(ax, cx, 0.5, f"{n_par:,} params", size=8, color=PARAM)
        x += side + depth + 0.4
        arrow(ax, (x - 0.33, base + 0.2), (x - 0.07, base + 0.2), head=7)
    box(ax, x, base - 0.05, 0.65, 0.5, f"flatten\n{flat}", fc=FILL["grey"], size=8)
    arrow(ax, (x + 0.65, base + 0.2), (x + 0.9, base + 0.2), head=7)
    box(ax, x + 0.9, base - 0.05, 0.95, 0.5, "dropout 0.3\ndense 10", fc=FILL["param"], size=8)
    text(ax, x + 1.375, 0.5, f"{dense:,} params", size=8, color=PARAM)
    text(ax, x + 1.375, 0.8, "10 logits", size=8.5)
    text(ax, 0.15, 0.12, f"shapes by conv.conv_output_shape (NHWC, 'same' padding); parameters by "
         f"conv_param_count / dense_param_count: {sum(params) + dense:,} in all", size=8, color=GREY, ha="left")
    return fig


# ------------------------------------------------------------------------------------------ 11
def rnn_unrolled():
    fig, ax = canvas(7.8, 3.3)
    # folded
    box(ax, 0.3, 1.35, 0.8, 0.6, "cell", fc=FILL["fwd"], size=10)
    arrow(ax, (0.7, 0.75), (0.7, 1.35))
    text(ax, 0.7, 0.55, "$x_t$", size=11)
    arrow(ax, (0.7, 1.95), (0.7, 2.6))
    text(ax, 0.7, 2.8, "$h_t$", size=11)
    ax.add_patch(FancyBboxPatch((1.18, 1.45), 0.01, 0.4, boxstyle="round,pad=0", ec="none", fc="none"))
    arrow(ax, (1.1, 1.8), (1.1, 1.5), rad=-2.2, color=INK)
    text(ax, 1.6, 1.65, "$W_{hh}$", size=9, color=PARAM)
    text(ax, 2.05, 1.65, "=", size=16)
    # unrolled
    xs = [2.6, 3.9, 5.2, 6.5]
    labels = ["1", "2", "3", "T"]
    text(ax, 2.25, 1.65, "$h_0$", size=10)
    for k, (x, t) in enumerate(zip(xs, labels)):
        box(ax, x, 1.35, 0.8, 0.6, f"cell", fc=FILL["fwd"], size=9)
        arrow(ax, (x + 0.4, 0.75), (x + 0.4, 1.35))
        text(ax, x + 0.4, 0.55, f"$x_{t}$", size=10)
        text(ax, x + 0.55, 1.05, "$W_{xh}$", size=8, color=PARAM, ha="left")
        arrow(ax, (x + 0.4, 1.95), (x + 0.4, 2.45))
        text(ax, x + 0.4, 2.62, f"$h_{t}$ → $L_{t}$", size=9)
        prev = xs[k - 1] + 0.8 if k else 2.4
        if k == 3:
            text(ax, (prev + x) / 2 + 0.05, 1.9, "…", size=12)
        arrow(ax, (prev, 1.73), (x, 1.73), color=FWD)
        arrow(ax, (x, 1.55), (prev, 1.55), color=BWD)
        text(ax, (prev + x) / 2, 1.32, "$W_{hh}$", size=8, color=PARAM)
        arrow(ax, (x + 0.62, 2.45), (x + 0.62, 1.95), color=BWD)
    text(ax, 5.4, 3.1, "forward: $h_t = \\phi(x_t W_{xh} + h_{t-1} W_{hh} + b)$, the same weights at every step",
         size=8.5, color=FWD)
    text(ax, 3.9, 0.2, "backward (red): $\\delta h_t$ = (from the loss at $t$) + $\\delta a_{t+1} W_{hh}^\\top$;  "
         "$\\partial L/\\partial W_{hh} = \\sum_t h_{t-1}^\\top \\delta a_t$", size=8.5, color=BWD)
    return fig


def _gate(ax, x, y, name, fc=FILL["fwd"]):
    box(ax, x - 0.26, y - 0.2, 0.52, 0.4, name, fc=fc, size=9)


def _op(ax, x, y, sym, fc="white"):
    circle(ax, x, y, 0.15, sym, fc=fc, size=10)


def _cell_frame(width, line_end, state_in, state_out):
    """The frame of a gated cell: a box, and the state line along its top (in on the left, out right)."""
    fig, ax = canvas(7.6, 3.5)
    ax.add_patch(FancyBboxPatch((0.75, 0.75), width, 2.35, boxstyle="round,pad=0.05", fc="#fafafa", ec=GREY, lw=1))
    top, bottom = 2.75, 1.05
    arrow(ax, (0.15, top), (line_end, top), color=INK, lw=1.8)
    text(ax, 0.15, top + 0.2, state_in, size=10, ha="left")
    text(ax, line_end, top + 0.2, state_out, size=10, ha="right")
    return fig, ax, top, bottom


def lstm_cell():
    # the cell state runs along the top: one product, one sum
    fig, ax, top, bottom = _cell_frame(4.85, 6.45, "$c_{t-1}$", "$c_t$")
    _op(ax, 1.75, top, "×")
    _op(ax, 3.05, top, "+")
    # [h_{t-1}, x_t] feed every gate
    polyline_arrow(ax, [(0.15, bottom), (4.5, bottom)], color=INK, lw=1.2)
    text(ax, 0.15, bottom - 0.22, "$h_{t-1}$", size=10, ha="left")
    arrow(ax, (1.0, 0.3), (1.0, bottom), color=INK)
    text(ax, 1.1, 0.35, "$x_t$", size=10, ha="left")
    gates = [(1.75, "σ", "$f_t$"), (2.55, "σ", "$i_t$"), (3.25, "tanh", "$g_t$"), (4.25, "σ", "$o_t$")]
    for x, fn, name in gates:
        polyline_arrow(ax, [(x, bottom), (x, 1.55)], color=INK, lw=1.0, head=7)
        _gate(ax, x, 1.75, fn, fc=FILL["param"] if fn == "σ" else FILL["fwd"])
        text(ax, x + 0.07, 1.3, name, size=9.5, ha="left", color=PURPLE if fn == "σ" else FWD)
    polyline_arrow(ax, [(1.75, 1.95), (1.75, top - 0.15)], color=INK, lw=1.0, head=7)
    _op(ax, 2.9, 2.3, "×")
    polyline_arrow(ax, [(2.55, 1.95), (2.55, 2.3), (2.75, 2.3)], color=INK, lw=1.0, head=7)
    polyline_arrow(ax, [(3.25, 1.95), (3.25, 2.15), (3.03, 2.22)], color=INK, lw=1.0, head=7)
    polyline_arrow(ax, [(2.9, 2.45), (2.97, top - 0.14)], color=INK, lw=1.0, head=7)
    # output: h_t = o_t * tanh(c_t)
    _gate(ax, 5.05, 2.3, "tanh", fc=FILL["fwd"])
    polyline_arrow(ax, [(5.05, top), (5.05, 2.5)], color=INK, lw=1.0, head=7)
    _op(ax, 5.05, 1.75, "×")
    polyline_arrow(ax, [(5.05, 2.1), (5.05, 1.9)], color=INK, lw=1.0, head=7)
    polyline_arrow(ax, [(4.25, 1.95), (4.25, 2.05), (4.6, 2.05), (4.6, 1.75), (4.9, 1.75)], color=INK, lw=1.0,
                   head=7)
    polyline_arrow(ax, [(5.05, 1.6), (5.05, 1.3), (6.45, 1.3)], color=INK, lw=1.4)
    text(ax, 6.45, 1.1, "$h_t$", size=10, ha="right")
    polyline_arrow(ax, [(5.85, 1.3), (5.85, 3.35)], color=INK, lw=1.0)
    text(ax, 5.95, 3.35, "$h_t$ (output)", size=9, ha="left")
    text(ax, 6.05, 2.45, "$c_t = f_t \\odot c_{t-1} + i_t \\odot g_t$", size=9, ha="left")
    text(ax, 6.05, 2.05, "$h_t = o_t \\odot \\tanh(c_t)$", size=9, ha="left")
    text(ax, 5.0, 0.45, "orange: the gates, σ of $x_t W_{x\\cdot} + h_{t-1} W_{h\\cdot} + b_\\cdot$, in (0, 1);\n"
         "blue: tanh (the candidate $g_t$ is not a gate)", size=8.5, color=GREY)
    return fig


def gru_cell():
    fig, ax, top, bottom = _cell_frame(4.7, 6.2, "$h_{t-1}$", "$h_t$")
    polyline_arrow(ax, [(0.45, top), (0.45, bottom), (4.2, bottom)], color=INK, lw=1.1)
    arrow(ax, (1.0, 0.3), (1.0, bottom), color=INK)
    text(ax, 1.1, 0.35, "$x_t$", size=10, ha="left")
    _op(ax, 3.95, top, "×")
    _op(ax, 4.95, top, "+")
    for x, name in ((1.55, "$r_t$"), (2.4, "$z_t$")):
        polyline_arrow(ax, [(x, bottom), (x, 1.55)], color=INK, lw=1.0, head=7)
        _gate(ax, x, 1.75, "σ", fc=FILL["param"])
        text(ax, x + 0.07, 1.3, name, size=9.5, ha="left", color=PURPLE)
    # z_t keeps the old state (top product) and, as 1 - z_t, weighs the candidate
    polyline_arrow(ax, [(2.4, 1.95), (2.4, 2.3), (3.95, 2.3), (3.95, top - 0.15)], color=INK, lw=1.0, head=7)
    polyline_arrow(ax, [(3.95, 2.3), (4.3, 2.3)], color=INK, lw=1.0, head=7)
    box(ax, 4.3, 2.15, 0.38, 0.3, "1−", fc="white", size=8.5, round_=0.04)
    _op(ax, 4.95, 2.3, "×")
    polyline_arrow(ax, [(4.68, 2.3), (4.8, 2.3)], color=INK, lw=1.0, head=7)
    polyline_arrow(ax, [(4.95, 2.45), (4.95, top - 0.15)], color=INK, lw=1.0, head=7)
    # candidate n_t = tanh(x W_xn + b_xn + r * (h W_hn + b_hn))
    _op(ax, 3.2, 1.75, "×")
    polyline_arrow(ax, [(1.55, 1.95), (1.55, 2.1), (3.05, 2.1), (3.12, 1.88)], color=INK, lw=1.0, head=7)
    polyline_arrow(ax, [(3.2, bottom), (3.2, 1.6)], color=INK, lw=1.0, head=7)
    text(ax, 3.26, 1.3, "$h_{t-1}W_{hn} + b_{hn}$", size=7.5, ha="left", color=GREY)
    _op(ax, 4.2, 1.75, "+")
    polyline_arrow(ax, [(3.35, 1.75), (4.05, 1.75)], color=INK, lw=1.0, head=7)
    polyline_arrow(ax, [(4.2, bottom), (4.2, 1.6)], color=INK, lw=1.0, head=7)
    text(ax, 4.26, 1.15, "$x_tW_{xn} + b_{xn}$", size=7.5, ha="left", color=GREY)
    _gate(ax, 4.95, 1.75, "tanh", fc=FILL["fwd"])
    polyline_arrow(ax, [(4.35, 1.75), (4.69, 1.75)], color=INK, lw=1.0, head=7)
    polyline_arrow(ax, [(4.95, 1.95), (4.95, 2.15)], color=INK, lw=1.0, head=7)
    text(ax, 5.28, 1.95, "$n_t$", size=9.5, ha="left", color=FWD)
    text(ax, 5.65, 2.35, "$h_t = (1-z_t) \\odot n_t + z_t \\odot h_{t-1}$", size=9, ha="left")
    text(ax, 5.65, 1.55, "$n_t = \\tanh(x_tW_{xn} + b_{xn}$\n$\\quad + r_t \\odot (h_{t-1}W_{hn} + b_{hn}))$",
         size=9, ha="left")
    text(ax, 4.9, 0.42, "orange: the two gates, reset $r_t$ and update $z_t$ (σ, in (0, 1)); blue: the candidate "
         "$n_t$ (tanh)", size=8.5, color=GREY)
    return fig


DIAGRAMS = [
    Diagram("10_sliding_window", "10_convolutional_networks", "4eff01b6",
            "A 5 by 5 input with a 3 by 3 window outlined, the kernel, and the 3 by 3 output with the matching "
            "cell outlined; the sum of the nine products is written out.",
            "The sliding window of the equation above: one output number is the sum of the window times the "
            "kernel, elementwise; sliding the window over every position gives the feature map. The numbers "
            "are `conv.conv2d`'s.", sliding_window),
    Diagram("10_im2col", "10_convolutional_networks", "4eff01b6",
            "The four 3 by 3 windows of a 4 by 4 input become the four rows of a patch matrix; times the "
            "flattened kernel they give the four outputs.",
            "im2col: each output pixel's window becomes one row of a patch matrix, so the convolution is a "
            "single matrix product. The output equals `conv.conv2d`'s.", im2col),
    Diagram("10_padding_stride", "10_convolutional_networks", "da1958fa",
            "A 5 by 5 input padded with a ring of zeros; three windows two pixels apart; a 3 by 3 output; "
            "the output-size formula evaluated.",
            "Padding and stride: with $p = 1$ and $s = 2$ a 3×3 kernel visits every other position of the "
            "padded 7×7 grid, so a 5×5 input gives a 3×3 output, as the formula says.", padding_stride),
    Diagram("10_pooling", "10_convolutional_networks", "55de92f9",
            "A 4 by 4 input divided into four coloured 2 by 2 windows, its max pooling and average pooling "
            "results, and the backward pass of max pooling sending each gradient to the maximum's position.",
            "Max and average pooling over 2×2 windows (stride 2), and the backward pass of max pooling: each "
            "output's gradient goes to the position of its window's maximum, zero elsewhere.", pooling),
    Diagram("10_cnn_architecture", "10_convolutional_networks", "ddda3c51",
            "The digits CNN as a sequence of feature-map stacks with their shapes and parameter counts.",
            "The digits CNN of this section, with the shape after every layer (height × width × channels) and "
            "the parameters of each layer: almost all of them are in the convolutions' kernels and the final "
            "dense layer.", cnn_architecture),
    Diagram("11_rnn_unrolled", "11_recurrent_networks", "cell-009",
            "A recurrent cell with a loop, and the same network unrolled into a chain of copies sharing "
            "W_xh and W_hh, with forward arrows and backward gradient arrows.",
            "The loop unrolled: a chain of $T$ copies of the cell that all use the same $W_{xh}$, $W_{hh}$, "
            "$b$. BPTT walks the chain backwards (red), and each shared weight's gradient is the sum of the "
            "copies' contributions.", rnn_unrolled),
    Diagram("11_lstm_cell", "11_recurrent_networks", "cell-020",
            "An LSTM cell: the cell state runs along the top, multiplied by the forget gate and added to the "
            "input gate times the candidate; the output gate times tanh of the cell state gives h_t.",
            "The LSTM cell of the equations above: the cell state $c$ runs along the top and is changed only "
            "by an elementwise product (forget gate) and a sum (input gate × candidate), which is why its "
            "gradient survives many steps.", lstm_cell),
    Diagram("11_gru_cell", "11_recurrent_networks", "cell-024",
            "A GRU cell: reset and update gates from x_t and h_{t-1}; the candidate n_t uses the reset gate; "
            "h_t mixes n_t and h_{t-1} with the update gate.",
            "The GRU cell (PyTorch's variant): two gates, reset $r_t$ and update $z_t$; $h_t$ mixes the "
            "candidate $n_t$ and the old state with weights $1-z_t$ and $z_t$.", gru_cell),
]
