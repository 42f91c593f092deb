"""course_lib.widgets.base, headless: blitting changes the published PNG, redraw works, controls call
their update when a value is set, and bad arguments raise."""
import io

import ipywidgets as widgets
import matplotlib
import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

from course_lib.widgets import base
from course_lib.widgets.base import Explorer, LiveFigure, encode_png, link_controls, new_figure, panel


def decode(png):
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


@pytest.fixture
def live_line():
    fig, ax = new_figure()
    x = np.linspace(0, 2 * np.pi, 100)
    line, = ax.plot(x, np.sin(x))
    ax.set_ylim(-3, 3)
    return LiveFigure(fig, animated=[line]), line, x


def test_new_figure_has_its_own_agg_canvas_and_axes():
    fig, axes = new_figure(1, 2)
    assert isinstance(fig, Figure) and isinstance(fig.canvas, FigureCanvasAgg)
    assert len(axes) == 2
    fig, ax = new_figure()
    assert isinstance(ax, matplotlib.axes.Axes)


def test_live_figure_publishes_a_png_at_construction(live_line):
    live, _, _ = live_line
    assert isinstance(live.image, widgets.Image)
    assert live.image.value[:8] == b"\x89PNG\r\n\x1a\n"
    w, h = live.fig.canvas.get_width_height()
    assert decode(live.image.value).shape == (h, w, 3)


def test_blit_changes_the_png_after_an_artist_changes(live_line):
    live, line, x = live_line
    before = live.image.value
    line.set_ydata(2.0 * np.cos(x))
    live.blit()
    after = live.image.value
    assert after != before
    assert not np.array_equal(decode(after), decode(before))
    np.testing.assert_allclose(line.get_ydata(), 2.0 * np.cos(x))
    # setting the old data back restores the old picture exactly (the background is cached)
    line.set_ydata(np.sin(x))
    live.blit()
    np.testing.assert_array_equal(decode(live.image.value), decode(before))


def test_blit_without_a_change_gives_the_same_png(live_line):
    live, _, _ = live_line
    before = live.image.value
    live.blit()
    np.testing.assert_array_equal(decode(live.image.value), decode(before))


def test_redraw_after_a_static_change(live_line):
    live, _, _ = live_line
    before = decode(live.image.value)
    ax = live.fig.axes[0]
    ax.set_ylim(-10, 10)                      # static: needs a full redraw
    live.redraw()
    assert not np.array_equal(decode(live.image.value), before)
    ax.set_ylim(-3, 3)
    live.redraw()
    np.testing.assert_array_equal(decode(live.image.value), before)


def test_hidden_animated_artist_is_not_drawn(live_line):
    live, line, _ = live_line
    with_line = decode(live.image.value)
    line.set_visible(False)
    live.blit()
    assert not np.array_equal(decode(live.image.value), with_line)


def test_figure_without_canvas_gets_one():
    fig = Figure()
    fig.add_subplot().plot([0, 1], [0, 1])
    live = LiveFigure(fig)
    assert isinstance(fig.canvas, FigureCanvasAgg) and live.image.value[:4] == b"\x89PNG"


def test_link_controls_calls_update_when_a_slider_value_is_set():
    a = widgets.FloatSlider(value=1.0, min=0.0, max=5.0)
    b = widgets.FloatSlider(value=2.0, min=0.0, max=5.0)
    calls = []
    refresh = link_controls({"a": a, "b": b}, lambda a, b: calls.append((a, b)))
    assert calls == [(1.0, 2.0)]              # run_now
    a.value = 3.0
    b.value = 4.5
    assert calls == [(1.0, 2.0), (3.0, 2.0), (3.0, 4.5)]
    refresh()
    assert calls[-1] == (3.0, 4.5) and len(calls) == 4


def test_link_controls_run_now_false():
    s = widgets.FloatSlider(value=1.0)
    calls = []
    link_controls({"s": s}, lambda s: calls.append(s), run_now=False)
    assert calls == []
    s.value = 2.0
    assert calls == [2.0]


def test_slider_drives_a_live_figure_end_to_end(live_line):
    live, line, x = live_line
    slider = widgets.FloatSlider(value=1.0, min=0.1, max=3.0)

    def update(amp):
        line.set_ydata(amp * np.sin(x))
        live.blit()

    link_controls({"amp": slider}, update)
    first = live.image.value
    slider.value = 2.5
    np.testing.assert_allclose(line.get_ydata(), 2.5 * np.sin(x))
    assert live.image.value != first


def test_panel_lays_out_controls_figures_and_readout(live_line):
    live, _, _ = live_line
    s = widgets.FloatSlider()
    readout = widgets.HTML("x")
    box = panel(live, [s], readout=readout)
    assert isinstance(box, widgets.VBox)
    assert box.children[0].children == (s,) and box.children[1] is readout
    assert box.children[2].children == (live.image,)
    two = panel([live, live], [s])
    assert len(two.children[-1].children) == 2


def test_bad_arguments_raise():
    with pytest.raises(TypeError, match="fig must be a matplotlib Figure, got str"):
        LiveFigure("figure")
    fig, ax = new_figure()
    with pytest.raises(ValueError, match="fmt must be 'png'"):
        LiveFigure(fig, fmt="jpeg")
    other_fig, other_ax = new_figure()
    foreign, = other_ax.plot([0, 1])
    foreign.remove()                          # an artist that belongs to no axes and another figure
    with pytest.raises(ValueError, match="every animated artist must belong to this LiveFigure's figure"):
        LiveFigure(fig, animated=[foreign])
    with pytest.raises(ValueError, match="nrows must be an int >= 1, got 0"):
        new_figure(0, 1)
    with pytest.raises(TypeError, match="nrows must be an int, got float 1.5"):
        new_figure(1.5, 1)
    with pytest.raises(TypeError, match="update must be callable, got int"):
        link_controls({"s": widgets.FloatSlider()}, 3)
    with pytest.raises(TypeError, match=r"controls\['s'\] must be an ipywidgets control with .value, got float"):
        link_controls({"s": 0.5}, lambda s: None)


class _Scaler(Explorer):
    """A minimal explorer: one slider scales a sine curve."""

    def __init__(self, main=None):
        fig, ax = new_figure()
        self.x = np.linspace(0, 2 * np.pi, 50)
        self.line, = ax.plot(self.x, np.sin(self.x))
        ax.set_ylim(-3, 3)
        self.live = LiveFigure(fig, animated=[self.line])
        self.controls = {"scale": widgets.FloatSlider(value=1.0, min=0.0, max=3.0)}
        if main is not None:
            self.main_controls = main
        self._connect(**self._layout())

    def _layout(self):
        return {}

    def update(self, scale):
        self.line.set_ydata(scale * np.sin(self.x))
        self.readout.value = f"scale {scale:.2f}"
        self.live.blit()


def test_explorer_links_controls_builds_the_panel_and_displays():
    ex = _Scaler()
    assert ex.main_controls == ("scale",) and ex.readout.value == "scale 1.00"
    before = ex.live.image.value
    ex.controls["scale"].value = 2.5
    assert ex.readout.value == "scale 2.50" and ex.live.image.value != before
    np.testing.assert_allclose(ex.line.get_ydata(), 2.5 * np.sin(ex.x))
    assert ex.widget.children[1] is ex.readout and ex.widget.children[2].children == (ex.live.image,)
    bundle = ex._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle


def test_explorer_rejects_unknown_main_controls():
    with pytest.raises(ValueError, match=r"main_controls names unknown controls \['speed'\]"):
        _Scaler(main=("speed",))


class _Counter(_Scaler):
    """A scaler with a reset button after its slider (``extra``) or in its own layout (``widget``)."""

    def __init__(self, layout="panel"):
        self.calls = []
        self.layout_kind = layout
        super().__init__()

    def _layout(self):
        self.button = widgets.Button(description="reset")
        self.button.on_click(lambda _b: setattr(self.controls["scale"], "value", 1.0))
        self.readout = widgets.HTML()
        if self.layout_kind == "panel":
            return {"extra": [self.button]}
        self.box = widgets.HBox([widgets.VBox([self.controls["scale"], self.button, self.readout]),
                                 self.live.image])
        return {"widget": self.box}

    def update(self, scale):
        self.calls.append(scale)
        super().update(scale)


def test_explorer_extra_widgets_follow_the_controls_unlinked():
    ex = _Counter()
    top, readout, figures = ex.widget.children
    assert top.children == (ex.controls["scale"], ex.button)      # the button after the controls
    assert readout is ex.readout and figures.children == (ex.live.image,)
    assert ex.calls == [1.0] and list(ex.controls) == ["scale"]    # the button is not a control
    png = ex.live.image.value
    ex.controls["scale"].value = 2.0
    assert ex.calls == [1.0, 2.0] and ex.live.image.value != png
    ex.button.click()                                               # its own handler: back to 1.0
    assert ex.calls == [1.0, 2.0, 1.0] and ex.readout.value == "scale 1.00"
    np.testing.assert_allclose(ex.line.get_ydata(), np.sin(ex.x))


def test_explorer_shows_a_ready_made_layout():
    ex = _Counter(layout="own")
    assert ex.widget is ex.box and ex.main_controls == ("scale",)
    assert ex.readout.value == "scale 1.00"                        # update ran once at _connect
    png = ex.live.image.value
    ex.controls["scale"].value = 0.5
    assert ex.calls == [1.0, 0.5] and ex.live.image.value != png
    assert "application/vnd.jupyter.widget-view+json" in ex._repr_mimebundle_()


def test_explorer_connect_rejects_bad_layout_arguments():
    ex = _Scaler()
    with pytest.raises(TypeError, match=r"extra\[0\] must be an ipywidgets widget, got str"):
        ex._connect(extra=["Train"])
    with pytest.raises(TypeError, match="widget must be an ipywidgets widget, got list"):
        ex._connect(widget=[ex.live.image])
    with pytest.raises(ValueError, match="widget .* excludes figures and extra"):
        ex._connect(widget=widgets.HBox(), extra=[widgets.Button()])
    with pytest.raises(ValueError, match="widget .* excludes figures and extra"):
        ex._connect(widget=widgets.HBox(), figures=[ex.live])


def test_figures_are_rendered_at_twice_the_pixels_they_are_shown_with():
    fig, _ = new_figure(figsize=(5.0, 2.0))
    live = LiveFigure(fig)
    assert base.PIXEL_RATIO == 2 and fig.canvas.get_width_height() == (800, 320)
    assert decode(live.image.value).shape == (320, 800, 3)
    assert live.image.width == "400" and live.image.layout.max_width == "100%"      # CSS pixels
    fig, _ = new_figure(figsize=(5.0, 2.0), pixel_ratio=1)
    assert LiveFigure(fig).image.width == "400" and fig.canvas.get_width_height() == (400, 160)
    with pytest.raises(ValueError, match="pixel_ratio"):
        new_figure(pixel_ratio=0)


def test_encode_png_is_lossless_and_checks_its_input():
    rgba = np.random.default_rng(0).integers(0, 256, (7, 9, 4), dtype=np.uint8)
    png = encode_png(rgba)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    np.testing.assert_array_equal(decode(png), rgba[:, :, :3])           # Pillow decodes it exactly
    with pytest.raises(ValueError, match="rgba"):
        encode_png(rgba[:, :, :3])
    with pytest.raises(ValueError, match="rgba"):
        encode_png(rgba.astype(np.float32))


def test_a_restored_background_brings_its_axes_positions_back():
    """Two layouts of one axes with a fixed aspect (a wide and a square image): each background
    remembers where the axes was drawn, so a blit after switching draws the image inside its axes,
    exactly as a full redraw of that state does."""
    fig, ax = new_figure(figsize=(4.0, 3.0))
    wide, square = np.random.default_rng(1).random((10, 40)), np.random.default_rng(2).random((8, 8))
    im = ax.imshow(wide, interpolation="nearest")
    live = LiveFigure(fig, animated=[im])
    live.freeze_layout()
    backgrounds = {}
    for name, arr in (("wide", wide), ("square", square)):
        im.set_data(arr)
        im.set_extent((-0.5, arr.shape[1] - 0.5, arr.shape[0] - 0.5, -0.5))
        ax.set(xlim=(-0.5, arr.shape[1] - 0.5), ylim=(arr.shape[0] - 0.5, -0.5))
        live.redraw()
        backgrounds[name] = (live.save_background(), ax.get_position().frozen(), decode(live.image.value))
    assert backgrounds["wide"][1].bounds != backgrounds["square"][1].bounds
    im.set_data(wide)
    im.set_extent((-0.5, 39.5, 9.5, -0.5))
    ax.set(xlim=(-0.5, 39.5), ylim=(9.5, -0.5))
    live.restore_background(backgrounds["wide"][0])
    live.blit()
    assert ax.get_position(original=False).bounds == backgrounds["wide"][1].bounds
    np.testing.assert_array_equal(decode(live.image.value), backgrounds["wide"][2])
    with pytest.raises(TypeError, match="background"):
        live.restore_background("not a background")


def test_explorer_labels_are_as_wide_as_their_text():
    class Named(Explorer):
        def __init__(self):
            fig, _ = new_figure()
            self.live = LiveFigure(fig)
            self.controls = {"a": widgets.FloatSlider(description="a long description"),
                             "b": widgets.FloatSlider(description="fixed", style={"description_width": "50px"})}
            self._connect()

        def update(self, a, b):
            pass

    ex = Named()
    assert ex.controls["a"].style.description_width == "initial"
    assert ex.controls["b"].style.description_width == "50px"


@pytest.mark.parametrize("origin,aspect", [("upper", "auto"), ("lower", "equal"), ("upper", "equal")])
def test_nearest_image_draws_exactly_what_matplotlib_draws(origin, aspect):
    """NearestImage's NumPy upsampling gives the same pixels as Matplotlib's own nearest-neighbour
    resampler (the reference), NaN cells transparent included, for both origins and aspects."""
    from course_lib.widgets.base import NearestImage, nearest_imshow

    data = np.random.default_rng(0).random((9, 60))
    data[2, 5:9] = np.nan
    pictures = []
    for fast in (False, True):
        fig, ax = new_figure(figsize=(8, 3))
        kw = dict(origin=origin, aspect=aspect, cmap="viridis")
        im = nearest_imshow(ax, data, **kw) if fast else ax.imshow(data, interpolation="nearest", **kw)
        assert isinstance(im, NearestImage) == fast
        pictures.append(decode(LiveFigure(fig, animated=[im]).image.value))
    np.testing.assert_array_equal(pictures[0], pictures[1])
    im.set_interpolation("bilinear")              # anything else: Matplotlib's own path
    assert im.make_image(fig.canvas.get_renderer())[0] is not None
