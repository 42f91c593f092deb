"""Shared pieces that make a slider-driven figure update in place, fast.

A figure is rendered by Matplotlib's Agg backend into an ``ipywidgets.Image``. The static parts
(axes, ticks, labels, reference curves) are drawn once; a control change only sets the data of the
*animated* artists and re-draws those on top of the cached background (blitting), then encodes the
canvas as PNG, a fraction of the cost of a full redraw (figures: benchmarks/README.md).

The same objects work headlessly (tests, benchmarks): set a control's ``.value`` and read
``live.image.value`` (PNG bytes) or the artists' data.

Taught in: every chapter with a widget (first in notebooks/03_neurons_and_activations.ipynb).
"""
from __future__ import annotations

import struct
import zlib
from typing import Callable, Iterable, Mapping

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from matplotlib.transforms import IdentityTransform
from PIL import Image as _PILImage

from course_lib import _validation as V

__all__ = ["CSS_DPI", "PIXEL_RATIO", "new_figure", "encode_png", "NearestImage", "nearest_imshow", "LiveFigure", "link_controls", "panel", "Explorer"]

#: Size at which a widget figure is shown: CSS pixels per inch of ``figsize``.
CSS_DPI = 80
#: Device pixels per CSS pixel. Figures are rendered at twice the pixels they are shown with, so
#: lines and labels stay sharp on high-density ("retina") screens; the browser scales the PNG down
#: on ordinary ones.
PIXEL_RATIO = 2


def new_figure(nrows: int = 1, ncols: int = 1, *, figsize=(8.0, 3.2), dpi: int = CSS_DPI,
               pixel_ratio: int | None = None, **subplot_kw):
    """A Matplotlib figure with its own Agg canvas, not managed by pyplot.

    Pyplot would also show the figure as a static inline image under the widget; a figure made here
    is shown only through its ``LiveFigure``. ``dpi`` is the size it is shown at (CSS pixels per
    inch); it is rendered with ``pixel_ratio`` (default :data:`PIXEL_RATIO`) times as many pixels in
    each direction. Returns ``(fig, axes)`` like ``plt.subplots``.
    """
    if pixel_ratio is None:
        pixel_ratio = PIXEL_RATIO
    V.check_int(nrows, "nrows", minimum=1)
    V.check_int(ncols, "ncols", minimum=1)
    V.check_int(pixel_ratio, "pixel_ratio", minimum=1)
    fig = Figure(figsize=figsize, dpi=dpi * pixel_ratio, layout="constrained")
    fig.pixel_ratio = pixel_ratio       # read by LiveFigure: the PNG is shown at 1/pixel_ratio size
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=True, **subplot_kw)
    return fig, axes


class NearestImage(AxesImage):
    """An ``AxesImage`` whose nearest-neighbour upsampling is done by NumPy indexing.

    A widget's heat map is a small array (a 32 x 60 gate map) shown over hundreds of thousands of
    screen pixels (twice as many at ``PIXEL_RATIO = 2``); Matplotlib's general resampler redoes
    that work on every blit. For an axis-aligned image drawn with ``interpolation=
    "nearest"`` this class colours the small array once and copies each cell to the screen pixels
    whose centres fall in it (a gather with two index vectors), then lets the renderer paste the
    result unscaled. Anything else (another interpolation, a non-affine transform, vector output)
    takes Matplotlib's own path. Make one with :func:`nearest_imshow`.
    """

    def make_image(self, renderer, magnification=1.0, unsampled=False):
        trans = self.get_transform()
        if (unsampled or magnification != 1.0 or self.get_interpolation() != "nearest"
                or not trans.is_affine or self._A is None or self._A.ndim not in (2, 3)):
            return super().make_image(renderer, magnification, unsampled)
        left, right, bottom, top = self.get_extent()
        (xa, ya), (xb, yb) = trans.transform([[left, bottom], [right, top]])
        clip = (self.get_clip_box() or self.axes.bbox) if self.get_clip_on() else self.get_figure(root=True).bbox
        x0, x1 = max(min(xa, xb), clip.x0), min(max(xa, xb), clip.x1)
        y0, y1 = max(min(ya, yb), clip.y0), min(max(ya, yb), clip.y1)
        l, b = int(np.floor(x0)), int(np.floor(y0))
        width, height = int(np.ceil(x1)) - l, int(np.ceil(y1)) - b
        if width <= 0 or height <= 0:
            return None, 0, 0, None
        inv = trans.inverted()
        # data coordinates of the pixel centres: one row of x (left to right), one column of y (bottom
        # up: the renderer pastes the first row of the array at the bottom, y = b)
        xs = inv.transform(np.column_stack([l + 0.5 + np.arange(width), np.full(width, b + 0.5)]))[:, 0]
        ys = inv.transform(np.column_stack([np.full(height, l + 0.5), b + 0.5 + np.arange(height)]))[:, 1]
        rows, cols = self._A.shape[:2]
        first_row, last_row = (top, bottom) if self.origin == "upper" else (bottom, top)
        ci = np.floor((xs - left) / (right - left) * cols).astype(int)
        ri = np.floor((ys - first_row) / (last_row - first_row) * rows).astype(int)
        small = self.to_rgba(self._A, bytes=True, alpha=self.get_alpha())     # colour map once, small
        padded = np.zeros((rows + 1, cols + 1, 4), np.uint8)                    # the last row/column: nothing
        padded[:rows, :cols] = small
        ri = np.where((ri >= 0) & (ri < rows), ri, rows)
        ci = np.where((ci >= 0) & (ci < cols), ci, cols)
        # one 32-bit word per RGBA pixel, gathered by two 1-D takes (columns, then rows): the same
        # pixels as padded[ri[:, None], ci[None, :]] (why not that: benchmarks/README.md)
        words = padded.view(np.uint32)[..., 0]
        gathered = np.take(np.take(words, ci, axis=1), ri, axis=0)
        return gathered.view(np.uint8).reshape(height, width, 4), l, b, IdentityTransform()


def nearest_imshow(ax, data, **kwargs) -> NearestImage:
    """``ax.imshow(data, interpolation="nearest", **kwargs)``, drawn by :class:`NearestImage`."""
    im = ax.imshow(data, interpolation="nearest", **kwargs)
    im.__class__ = NearestImage          # same state, only make_image differs
    return im


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def encode_png(rgba: np.ndarray, level: int = 1) -> bytes:
    """PNG bytes of an (H, W, 4) uint8 RGBA canvas, written as 8-bit RGB (alpha dropped).

    Every row uses PNG filter 0 ("none") and zlib at ``level`` 1: for a plot (large flat areas) that
    is as small as Pillow's adaptive filtering and about twice as fast, which matters at twice the
    pixels (``PIXEL_RATIO``). Decoded, the image equals the canvas exactly (lossless).
    """
    rgba = np.asarray(rgba)
    if rgba.dtype != np.uint8 or rgba.ndim != 3 or rgba.shape[2] != 4:
        raise ValueError(f"rgba must be an (H, W, 4) uint8 array, got {rgba.dtype} {rgba.shape}")
    h, w = rgba.shape[:2]
    # RGBA -> RGB with PIL rather than a NumPy copy (why: benchmarks/README.md)
    rgb = _PILImage.frombuffer("RGBA", (w, h), np.ascontiguousarray(rgba), "raw", "RGBA", 0, 1).convert("RGB")
    raw = np.empty((h, 1 + 3 * w), np.uint8)
    raw[:, 0] = 0                                          # filter type of each row: none
    raw[:, 1:] = np.frombuffer(rgb.tobytes(), np.uint8).reshape(h, 3 * w)
    header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)  # 8 bits per channel, colour type 2 (RGB)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
            + _png_chunk(b"IDAT", zlib.compress(raw.data, level)) + _png_chunk(b"IEND", b""))


class _Background:
    """A saved canvas region plus the position of every axes when it was drawn."""

    def __init__(self, region, fig: Figure):
        self.region = region
        # (axes, original position, active position): the active one differs under a fixed aspect
        self.positions = [(ax, ax.get_position(original=True).frozen(), ax.get_position(original=False).frozen())
                          for ax in fig.axes]

    def restore_positions(self):
        for ax, original, active in self.positions:
            # the private setter keeps the axes in the figure's layout engine (set_position would
            # take it out); the active position goes last, since setting 'original' does not move it
            ax._set_position(original, which="original")
            ax._set_position(active, which="active")


class LiveFigure:
    """A figure shown as an ``ipywidgets.Image`` whose animated artists are updated by blitting.

    Usage::

        fig, ax = new_figure()
        line, = ax.plot(x, f(x))
        live = LiveFigure(fig, animated=[line])
        def update(scale):
            line.set_ydata(f(scale * x))
            live.blit()
        link_controls({"scale": slider}, update)
        display(panel(live, [slider]))

    Call :meth:`redraw` instead of :meth:`blit` after changing anything static (axis limits, ticks).
    """

    def __init__(self, fig: Figure, animated: Iterable = (), *, fmt: str = "png"):
        import ipywidgets as widgets  # imported here so non-widget users of course_lib don't pay for it

        if not isinstance(fig, Figure):
            raise TypeError(f"fig must be a matplotlib Figure, got {type(fig).__name__}")
        if fmt not in ("png",):
            raise ValueError(f"fmt must be 'png', got {fmt!r}")
        if not isinstance(fig.canvas, FigureCanvasAgg):
            FigureCanvasAgg(fig)
        self.fig = fig
        self.animated: list = []
        self._background = None
        self.image = widgets.Image(format=fmt)
        # shown at 1/pixel_ratio of its pixel size (new_figure renders 2x for high-density screens);
        # max-width lets a narrow notebook column shrink it without distorting it
        width_px = fig.canvas.get_width_height()[0]
        self.image.width = str(int(round(width_px / getattr(fig, "pixel_ratio", 1))))
        self.image.layout.max_width = "100%"
        self.image.layout.height = "auto"
        self.add_animated(*animated)
        self.redraw()

    def add_animated(self, *artists):
        """Mark artists as animated: they are re-drawn on every :meth:`blit`."""
        for artist in artists:
            if getattr(artist, "figure", None) is not self.fig and getattr(artist, "axes", None) is None:
                raise ValueError("every animated artist must belong to this LiveFigure's figure")
            artist.set_animated(True)
            self.animated.append(artist)
        self._background = None

    def redraw(self):
        """Full draw: re-render the static background, then the animated artists."""
        canvas = self.fig.canvas
        canvas.draw()
        self._background = _Background(canvas.copy_from_bbox(self.fig.bbox), self.fig)
        self._draw_animated()
        self._publish()

    def blit(self):
        """Fast update: restore the cached background and draw only the animated artists."""
        if self._background is None:
            self.redraw()
            return
        self.fig.canvas.restore_region(self._background.region)
        self._draw_animated()
        self._publish()

    def save_background(self):
        """The cached static background (valid after :meth:`redraw`), to reuse with :meth:`restore_background`.

        A widget that switches between a few static layouts (e.g. loss surfaces, images of different
        sizes) keeps one background per layout, so switching is a blit instead of a full redraw. The
        background remembers where every axes was drawn: a layout with other limits or another aspect
        ratio puts the axes elsewhere, and the animated artists must be drawn where its pixels are.
        """
        return self._background

    def restore_background(self, background):
        """Reuse a background saved with :meth:`save_background`; then call :meth:`blit`.

        The axes are moved back to where they were when that background was drawn (a full draw may
        have moved them since: constrained layout, fixed aspect ratios).
        """
        if not isinstance(background, _Background):
            raise TypeError(f"background must come from save_background(), got {type(background).__name__}")
        background.restore_positions()
        self._background = background

    def freeze_layout(self):
        """Keep the axes where the last full draw (constrained layout) put them.

        Constrained layout is recomputed on every full draw and depends on what it starts from, so
        two redraws of the same state can differ by a fraction of a pixel. A widget whose layouts
        share one grid (images of different shapes in the same axes) freezes it after the first draw:
        every later redraw, and every background, then uses the same original positions (a fixed
        aspect ratio still shrinks the active position per image).
        """
        self.fig.set_layout_engine("none")

    def _draw_animated(self):
        for artist in self.animated:
            if artist.get_visible():
                self.fig.draw_artist(artist)

    def png(self) -> bytes:
        """The current canvas as PNG bytes (fast encoding: see :func:`encode_png`)."""
        return encode_png(np.asarray(self.fig.canvas.buffer_rgba()))

    def _publish(self):
        self.image.value = self.png()

    def _repr_mimebundle_(self, **kwargs):
        return self.image._repr_mimebundle_(**kwargs)


def link_controls(controls: Mapping[str, object], update: Callable[..., None], *, run_now: bool = True):
    """Call ``update(**{name: control.value})`` whenever any control's value changes.

    ``controls`` maps keyword names to ipywidgets controls. Returns a function that runs the update
    once with the current values (also run immediately unless ``run_now=False``).
    """
    if not callable(update):
        raise TypeError(f"update must be callable, got {type(update).__name__}")
    for name, control in controls.items():
        if not hasattr(control, "observe") or not hasattr(control, "value"):
            raise TypeError(f"controls[{name!r}] must be an ipywidgets control with .value, "
                            f"got {type(control).__name__}")

    def refresh(_change=None):
        update(**{name: c.value for name, c in controls.items()})

    for control in controls.values():
        control.observe(refresh, names="value")
    if run_now:
        refresh()
    return refresh


def panel(live: "LiveFigure | Iterable[LiveFigure]", controls: Iterable, *, readout=None):
    """Lay out controls above one or more live figures (and an optional readout widget)."""
    import ipywidgets as widgets

    figures = [live] if isinstance(live, LiveFigure) else list(live)
    rows = [widgets.HBox(list(controls), layout=widgets.Layout(flex_flow="row wrap"))]
    if readout is not None:
        rows.append(readout)
    rows.append(widgets.HBox([f.image for f in figures]))
    return widgets.VBox(rows)


def _readable_description(control):
    """Give a control's label the width of its text (ipywidgets cuts it at ~80 px by default:
    "hidden la..."), unless the widget chose a width itself."""
    style = getattr(control, "style", None)
    if getattr(control, "description", "") and hasattr(style, "description_width") and not style.description_width:
        style.description_width = "initial"


class Explorer:
    """Base of the course's widgets: named controls drive ``update(**values)``, shown above live figures.

    A subclass builds ``self.controls`` (name -> ipywidgets control), its figure(s) and ``update``,
    then calls :meth:`_connect`. That links the controls (running ``update`` once now), and builds
    ``self.widget`` (controls, an optional HTML ``self.readout``, the figures). The object displays
    itself in Jupyter. ``main_controls`` names the controls the benchmarks and the browser tests move
    (see benchmarks/README.md's widget protocol).

    Layouts the standard panel cannot express: ``_connect(extra=[button])`` puts widgets that are not
    value controls (a Train button) after the controls in the top row; ``_connect(widget=box)`` shows
    a layout the subclass built itself (a grid of weight boxes beside the figure) instead of the panel.
    """

    controls: dict
    main_controls: tuple = ()
    live: "LiveFigure"
    widget: object

    def _connect(self, *, readout: bool = True, figures=None, extra: Iterable = (), widget=None):
        """Link ``self.controls`` to ``self.update`` (run once now) and build ``self.widget``.

        ``readout``: create ``self.readout`` (an HTML widget) if the subclass has none, and show it
        between the controls and the figures. ``figures``: the LiveFigure(s) to show (default
        ``self.live``). ``extra``: widgets shown after the controls in the top row but not linked
        (buttons). ``widget``: a ready-made layout to show instead of the standard panel (then
        ``figures`` and ``extra`` must not be given).
        """
        import ipywidgets as widgets

        extra = list(extra)
        if widget is not None and (figures is not None or extra):
            raise ValueError("widget (a ready-made layout) excludes figures and extra; place them in it")
        if widget is not None and not isinstance(widget, widgets.Widget):
            raise TypeError(f"widget must be an ipywidgets widget, got {type(widget).__name__}")
        for i, w in enumerate(extra):
            if not isinstance(w, widgets.Widget):
                raise TypeError(f"extra[{i}] must be an ipywidgets widget, got {type(w).__name__}")

        if readout and not hasattr(self, "readout"):
            self.readout = widgets.HTML()
        if not self.main_controls:
            self.main_controls = tuple(self.controls)
        unknown = [n for n in self.main_controls if n not in self.controls]
        if unknown:
            raise ValueError(f"main_controls names unknown controls {unknown}; known: {list(self.controls)}")
        for control in self.controls.values():
            _readable_description(control)
        link_controls(self.controls, self.update)
        if widget is not None:
            self.widget = widget
        else:
            self.widget = panel(self.live if figures is None else figures, list(self.controls.values()) + extra,
                                readout=getattr(self, "readout", None) if readout else None)
        return self.widget

    def update(self, **values):  # pragma: no cover - every subclass defines it
        raise NotImplementedError

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)
