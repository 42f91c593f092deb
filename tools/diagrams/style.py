"""Drawing primitives shared by every course diagram, and the settings that make the SVG reproducible.

A diagram is drawn on a canvas whose data coordinates are inches (origin bottom left), so boxes,
arrows and text are placed by hand, like on paper. ``save`` writes an SVG that is byte-for-byte the
same on every run: a fixed hash salt for the ids, no date, text converted to paths in Matplotlib's
bundled DejaVu Sans (so every viewer draws the same glyphs, with or without that font installed).
"""
from __future__ import annotations

import contextlib
import io
import pathlib
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch, Rectangle  # noqa: E402

#: Matplotlib settings for every diagram (applied with ``rc_context`` around each drawing).
RC = {
    "svg.hashsalt": "dl-course-diagrams",
    "svg.fonttype": "path",
    "svg.image_inline": True,
    "font.family": "DejaVu Sans",
    "font.size": 10,
    "mathtext.fontset": "dejavusans",
    "axes.unicode_minus": True,
    "path.simplify": True,
    "savefig.dpi": 100,
    "image.interpolation": "nearest",
}

# One meaning per colour, in every diagram: forward values blue, gradients red, parameters orange,
# data / inputs green, everything else grey.
FWD = "#1f5fa8"
BWD = "#c0392b"
PARAM = "#d9730d"
DATA = "#2e8540"
INK = "#222222"
GREY = "#8a8a8a"
FILL = {"fwd": "#dde9f7", "bwd": "#f8dedb", "param": "#fbe7d3", "data": "#dcefdf", "grey": "#eeeeee",
        "purple": "#e9e1f4", "yellow": "#fdf5cc", "white": "#ffffff"}
PURPLE = "#6a3d9a"


@contextlib.contextmanager
def settings():
    with matplotlib.rc_context(RC):
        yield


def canvas(width: float, height: float):
    """A figure ``width`` x ``height`` inches whose data coordinates are inches."""
    fig = plt.figure(figsize=(width, height))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.set_aspect("equal")
    ax.axis("off")
    return fig, ax


def save(fig, path: pathlib.Path | None = None, png: pathlib.Path | None = None) -> bytes:
    """The figure as deterministic SVG bytes (written to ``path`` if given; a PNG preview to ``png``)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    data = compact(buf.getvalue().decode("utf-8")).encode("utf-8")
    if path is not None:
        pathlib.Path(path).write_bytes(data)
    if png is not None:
        fig.savefig(png, format="png", dpi=150)
    plt.close(fig)
    return data


_NUMBER = re.compile(r"-?\d+\.\d{3,}")


def _round(match) -> str:
    v = f"{float(match.group(0)):.2f}".rstrip("0").rstrip(".")
    return "0" if v in ("-0", "") else v


def compact(svg: str) -> str:
    """Smaller SVG, same picture: no metadata block or indentation, and coordinates in path data and
    translations rounded to 0.01 pt (scale factors, which need their digits, are left alone)."""
    svg = re.sub(r"\s*<metadata>.*?</metadata>", "", svg, flags=re.S)
    svg = re.sub(r'\bd="([^"]*)"', lambda m: 'd="' + " ".join(_NUMBER.sub(_round, m.group(1)).split()) + '"', svg)
    svg = re.sub(r"translate\(([^)]*)\)", lambda m: "translate(" + _NUMBER.sub(_round, m.group(1)) + ")", svg)
    svg = re.sub(r"<!--.*?-->\n?", "", svg, flags=re.S)            # the text of each label, as a comment
    svg = re.sub(r'<g id="[^"]*"', "<g", svg)                        # group names (figure_1, text_5, ...)
    svg = re.sub(r"<g>\n((?:(?!<g[ >]).)*?)</g>\n", r"\1", svg, flags=re.S)   # groups that set nothing
    return re.sub(r"\n[ ]+", "\n", svg)


def text(ax, x, y, s, *, size=10, color=INK, ha="center", va="center", weight="normal", **kw):
    return ax.text(x, y, s, fontsize=size, color=color, ha=ha, va=va, fontweight=weight, **kw)


def box(ax, x, y, w, h, label="", *, fc=FILL["grey"], ec=INK, lw=1.2, size=10, color=INK, round_=0.08,
        weight="normal", ls="-", zorder=2):
    """A rounded box with its lower-left corner at (x, y) and a centred label."""
    ax.add_patch(FancyBboxPatch((x + round_, y + round_), w - 2 * round_, h - 2 * round_,
                                boxstyle=f"round,pad={round_}", fc=fc, ec=ec, lw=lw, ls=ls, zorder=zorder))
    if label:
        text(ax, x + w / 2, y + h / 2, label, size=size, color=color, weight=weight, zorder=zorder + 1)
    return (x, y, w, h)


def circle(ax, x, y, r, label="", *, fc="white", ec=INK, lw=1.2, size=10, color=INK, zorder=2):
    ax.add_patch(Circle((x, y), r, fc=fc, ec=ec, lw=lw, zorder=zorder))
    if label:
        text(ax, x, y, label, size=size, color=color, zorder=zorder + 1)


def arrow(ax, start, end, *, color=INK, lw=1.3, style="-|>", head=9, shrink=0.0, ls="-", rad=0.0, zorder=1,
          alpha=1.0):
    """An arrow from ``start`` to ``end`` (``rad`` bends it); ``shrink`` leaves a gap at both ends."""
    start, end = np.asarray(start, float), np.asarray(end, float)
    if shrink:
        d = end - start
        n = np.hypot(*d)
        start, end = start + d * shrink / n, end - d * shrink / n
    p = FancyArrowPatch(tuple(start), tuple(end), arrowstyle=style, mutation_scale=head, color=color, lw=lw,
                        ls=ls, connectionstyle=f"arc3,rad={rad}", zorder=zorder, alpha=alpha,
                        shrinkA=0, shrinkB=0)
    ax.add_patch(p)
    return p


def polyline_arrow(ax, points, *, color=INK, lw=1.3, head=9, zorder=1):
    """A path of straight segments through ``points`` with an arrow head at the end."""
    pts = np.asarray(points, float)
    ax.plot(pts[:-1, 0], pts[:-1, 1], color=color, lw=lw, zorder=zorder, solid_capstyle="butt")
    ax.plot([pts[-2, 0]], [pts[-2, 1]], color=color)  # keeps the joint when the last segment is short
    arrow(ax, pts[-2], pts[-1], color=color, lw=lw, head=head, zorder=zorder)


def grid(ax, x, y, values, *, cell=0.36, fmt="{:g}", size=9, fc="white", ec=GREY, lw=0.8, colors=None,
         text_color=INK, zorder=2):
    """A matrix of numbers drawn as cells; (x, y) is the top-left corner. ``colors[i][j]`` fills cells."""
    values = np.asarray(values)
    rows, cols = values.shape
    for i in range(rows):
        for j in range(cols):
            face = colors[i][j] if colors is not None else fc
            ax.add_patch(Rectangle((x + j * cell, y - (i + 1) * cell), cell, cell, fc=face, ec=ec, lw=lw,
                                   zorder=zorder))
            v = values[i, j]
            if isinstance(v, str) or fmt:
                text(ax, x + (j + 0.5) * cell, y - (i + 0.5) * cell, v if isinstance(v, str) else fmt.format(v),
                     size=size, color=text_color, zorder=zorder + 1)
    return x, y - rows * cell, cols * cell, rows * cell


def outline(ax, x, y, w, h, *, color=BWD, lw=2.2, ls="-", zorder=4):
    """An unfilled rectangle (x, y is the lower-left corner)."""
    ax.add_patch(Rectangle((x, y), w, h, fill=False, ec=color, lw=lw, ls=ls, zorder=zorder))


def r2(v) -> float:
    """Round a value computed by course_lib before it sets a position: the last bits of float32
    results differ between CPUs, and the SVG must not."""
    return float(np.round(float(v), 4))


def edge_label(ax, start, end, s, *, t=0.5, offset=0.14, size=10, color=INK, **kw):
    """A label beside the straight edge ``start`` -> ``end``: at fraction ``t`` along it, moved
    ``offset`` inches to its left (above an edge that points right), so it never sits on the line."""
    (x0, y0), (x1, y1) = start, end
    dx, dy = x1 - x0, y1 - y0
    n = np.hypot(dx, dy)
    return text(ax, x0 + t * dx - offset * dy / n, y0 + t * dy + offset * dx / n, s, size=size, color=color, **kw)
