"""Shared pieces that make a slider-driven figure update in place, fast.

A figure is rendered by Matplotlib's Agg backend into an ``ipywidgets.Image``. The static parts
(axes, ticks, labels, reference curves) are drawn once; a control change only sets the data of the
*animated* artists and re-draws those on top of the cached background (blitting), then encodes the
canvas as PNG. On a laptop CPU that is ~10 ms per update instead of ~100 ms for a full redraw.

The same objects work headlessly (tests, benchmarks): set a control's ``.value`` and read
``live.image.value`` (PNG bytes) or the artists' data.

Taught in: every chapter with a widget (first in notebooks/03_neurons_and_activations.ipynb).
"""
from __future__ import annotations

import io
from typing import Callable, Iterable, Mapping

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image as _PILImage

__all__ = ["new_figure", "LiveFigure", "link_controls", "panel", "Explorer"]


def new_figure(nrows: int = 1, ncols: int = 1, *, figsize=(8.0, 3.2), dpi: int = 80, **subplot_kw):
    """A Matplotlib figure with its own Agg canvas, not managed by pyplot.

    Pyplot would also show the figure as a static inline image under the widget; a figure made here
    is shown only through its ``LiveFigure``. Returns ``(fig, axes)`` like ``plt.subplots``.
    """
    if not (isinstance(nrows, int) and isinstance(ncols, int)) or nrows < 1 or ncols < 1:
        raise ValueError(f"nrows and ncols must be positive integers, got {nrows!r} and {ncols!r}")
    fig = Figure(figsize=figsize, dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=True, **subplot_kw)
    return fig, axes


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
        self._background = canvas.copy_from_bbox(self.fig.bbox)
        self._draw_animated()
        self._publish()

    def blit(self):
        """Fast update: restore the cached background and draw only the animated artists."""
        if self._background is None:
            self.redraw()
            return
        self.fig.canvas.restore_region(self._background)
        self._draw_animated()
        self._publish()

    def save_background(self):
        """The cached static background (valid after :meth:`redraw`), to reuse with :meth:`restore_background`.

        A widget that switches between a few static layouts (e.g. loss surfaces) keeps one background
        per layout, so switching is a blit instead of a full redraw.
        """
        return self._background

    def restore_background(self, background):
        """Reuse a background saved with :meth:`save_background`; then call :meth:`blit`."""
        self._background = background

    def _draw_animated(self):
        for artist in self.animated:
            if artist.get_visible():
                self.fig.draw_artist(artist)

    def png(self) -> bytes:
        """The current canvas as PNG bytes (fast, low-compression encoding)."""
        rgba = np.asarray(self.fig.canvas.buffer_rgba())
        buf = io.BytesIO()
        # frombuffer wraps the canvas memory without a strided copy (~25% faster than fromarray(rgba[..., :3]))
        image = _PILImage.frombuffer("RGBA", (rgba.shape[1], rgba.shape[0]), rgba, "raw", "RGBA", 0, 1)
        image.convert("RGB").save(buf, format="png", compress_level=1)
        return buf.getvalue()

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
