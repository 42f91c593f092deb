"""Chapter-10 widgets (kernel editor, feature-map explorer), driven headlessly.

References: scipy.signal.correlate2d in float64 (what the editor must show), course_lib.conv
(what the explorer must show), and numpy shifts (equivariance of the convolution).
"""
import io

import numpy as np
import pytest
from PIL import Image
from scipy.signal import correlate2d

from course_lib import conv
from course_lib.widgets import conv as wc
from course_lib.widgets.base import LiveFigure


@pytest.fixture(scope="module")
def editor():
    rng = np.random.default_rng(0)
    images = {"noise": rng.random((12, 16)).astype(np.float32),
              "square": np.pad(np.ones((4, 4), np.float32), 3)}
    return wc.build_kernel_editor(images)


def test_protocol():
    assert set(wc.WIDGETS) == {"build_kernel_editor", "build_feature_explorer"}


@pytest.mark.parametrize("preset", list(wc.PRESETS))
def test_editor_shows_correlation_of_preset(editor, preset):
    editor.controls["image"].value = "noise"
    before = editor.live.image.value
    editor.controls["preset"].value = preset
    k = np.asarray(wc.PRESETS[preset], np.float64)
    np.testing.assert_allclose(editor.kernel, k, rtol=1e-6)
    ref = correlate2d(editor.images["noise"].astype(np.float64), k, mode="same")
    np.testing.assert_allclose(editor.output, ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(editor.im_out.get_array(), ref, rtol=1e-5, atol=1e-5)
    if preset != "Sobel x (vertical edges)":          # the default: nothing to change
        assert editor.live.image.value != before


def test_typing_a_weight_switches_to_custom_and_updates(editor):
    editor.controls["preset"].value = "identity"
    editor.controls["image"].value = "square"
    png = editor.live.image.value
    editor.controls["w11"].value = 2.0
    assert editor.controls["preset"].value == "custom"
    np.testing.assert_allclose(editor.output, 2.0 * editor.images["square"], rtol=1e-6)
    # the colours are output / max|output|: scaling the kernel leaves the picture as it was, and only
    # the readout (range, sum of weights) says what changed
    assert "sum of weights +2.000" in editor.readout.value and "+2.000]" in editor.readout.value
    editor.controls["w01"].value = 1.0                 # a second tap: the output's shape changes
    ref = correlate2d(editor.images["square"].astype(np.float64), editor.kernel.astype(np.float64), mode="same")
    np.testing.assert_allclose(editor.output, ref, rtol=1e-6)
    assert editor.live.image.value != png


def _pixels(png):
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)


@pytest.mark.parametrize("order", [("china", "digit", "china"), ("digit", "china", "flower", "digit")])
def test_blitted_output_lies_where_a_full_redraw_puts_it(order):
    """The images have different shapes, so each has its own layout (axes positions). A blit after a
    switch must put the output image exactly where a full redraw of the same state draws it (the
    bug: drawn with the last-built layout's positions, up and to the right of its axes)."""
    imgs = wc.load_images()
    images = {"china": imgs["china"], "flower": imgs["flower"],
              "digit": next(v for k, v in imgs.items() if k.startswith("digit"))}
    ed = wc.build_kernel_editor(images)
    for name in order:
        ed.controls["image"].value = name
        blitted = _pixels(ed.live.image.value)
        ed.live.redraw()
        np.testing.assert_array_equal(blitted, _pixels(ed.live.image.value))


def test_image_switch_changes_input_artist(editor):
    editor.controls["image"].value = "noise"
    np.testing.assert_array_equal(editor.im_in.get_array(), editor.images["noise"])
    editor.controls["image"].value = "square"
    np.testing.assert_array_equal(editor.im_in.get_array(), editor.images["square"])
    assert editor.output.shape == (10, 10)


def test_image_switch_is_a_blit_on_a_precomputed_background(editor, monkeypatch):
    """Switching the image reuses the background drawn for it at build time: no full redraw."""
    assert set(editor._backgrounds) == set(editor.images)
    editor.controls["image"].value = "square"
    calls = []
    monkeypatch.setattr(editor.live, "redraw", lambda: calls.append("redraw"))
    for name in ("noise", "square", "noise"):
        png = editor.live.image.value
        editor.controls["image"].value = name
        assert editor.live.image.value != png
        assert editor.ax_in.get_xlim() == (-0.5, editor.images[name].shape[1] - 0.5)
        ref = correlate2d(editor.images[name].astype(np.float64), editor.kernel.astype(np.float64),
                          mode="same")
        np.testing.assert_allclose(editor.im_out.get_array(), ref, rtol=1e-5, atol=1e-5)
    assert calls == []


def test_default_images_and_errors():
    imgs = wc.load_images()
    assert set(imgs) >= {"china", "flower"} and imgs["china"].shape == (107, 160)
    assert all(0 <= v.min() and v.max() <= 1 for v in imgs.values())
    with pytest.raises(ValueError, match="kernel must have shape"):
        wc.apply_kernel(np.zeros((5, 5)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="image must have 2 dimension"):
        wc.apply_kernel(np.zeros((5, 5, 3)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="preset must be one of"):
        wc.build_kernel_editor({"a": np.zeros((5, 5))}, preset="emboss")


def test_shift_image():
    img = np.arange(12.0).reshape(3, 4)
    np.testing.assert_array_equal(wc.shift_image(img, 0, 1)[:, 1:], img[:, :-1])
    np.testing.assert_array_equal(wc.shift_image(img, 0, 1)[:, 0], 0)
    np.testing.assert_array_equal(wc.shift_image(img, -1, 0)[:-1], img[1:])
    np.testing.assert_array_equal(wc.shift_image(img, 0, 0), img)
    with pytest.raises(ValueError, match="must be smaller than the image"):
        wc.shift_image(img, 3, 0)


@pytest.fixture(scope="module")
def explorer():
    from course_lib import data

    X, y = data.load_digits(images=True)
    return wc.build_feature_explorer(conv.init_cnn(0), np.asarray(X[:3]), np.asarray(y[:3]))


def test_explorer_shows_library_feature_maps(explorer):
    from course_lib import data

    X, _ = data.load_digits(images=True)
    ex = explorer
    for layer, channel, dy, dx in [("conv1", 3, 0, 1), ("pool1", 5, -2, 1), ("conv2", 30, 2, -1),
                                   ("pool2", 7, 1, 2)]:
        png = ex.live.image.value
        ex.controls["image"].value = 1
        ex.controls["layer"].value = layer
        ex.controls["channel"].value = channel
        ex.controls["dy"].value = dy
        ex.controls["dx"].value = dx
        shifted = wc.shift_image(np.asarray(X[1], np.float32), dy, dx)
        ref = conv.cnn_features(ex.params, shifted[None, :, :, None])[layer][0, :, :, channel]
        np.testing.assert_allclose(ex.values["map"], ref, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(ex.im_map.get_array(), ref, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(ex.im_in.get_array(), shifted)
        assert ex.live.image.value != png
        assert f"{layer}, channel {channel}" in ex.readout.value


def test_conv_maps_move_with_the_input(explorer):
    """Equivariance: away from the border, conv1(shift(x)) == shift(conv1(x)) exactly."""
    m = explorer.maps[0]["conv1"]            # (S, S, 8, 8, C)
    c0 = wc.SHIFTS.index(0)
    right = m[c0, wc.SHIFTS.index(1)]
    np.testing.assert_allclose(right[:, 1:7], m[c0, c0][:, 0:6], rtol=1e-5, atol=1e-6)
    down = m[wc.SHIFTS.index(1), c0]
    np.testing.assert_allclose(down[1:7], m[c0, c0][0:6], rtol=1e-5, atol=1e-6)


def test_explorer_errors():
    with pytest.raises(ValueError, match="params .* are required"):
        wc.build_feature_explorer(None, np.zeros((2, 8, 8)))
    with pytest.raises(ValueError, match="images must have shape"):
        wc.build_feature_explorer(conv.init_cnn(0), np.zeros((8,)))


def test_live_figures_are_livefigures(editor, explorer):
    assert isinstance(editor.live, LiveFigure) and isinstance(explorer.live, LiveFigure)
    assert set(editor.main_controls) <= set(editor.controls)
    assert set(explorer.main_controls) <= set(explorer.controls)


def test_widgets_are_explorers_with_their_layouts(editor, explorer):
    from course_lib.widgets.base import Explorer

    assert isinstance(editor, Explorer) and isinstance(explorer, Explorer)
    # editor: its own layout, the controls, the 3x3 grid of weights and the readout beside the figure
    left, image = editor.widget.children
    assert image is editor.live.image
    image_menu, preset_menu, label, grid, readout = left.children
    assert (image_menu, preset_menu, readout) == (editor.controls["image"], editor.controls["preset"],
                                                  editor.readout)
    assert grid.children == tuple(editor.cells) and "cross-correlation" in label.value
    assert list(editor.controls)[2:] == [f"w{i}{j}" for i in range(3) for j in range(3)]
    # explorer: the standard panel (controls, readout, figure)
    top, readout, figures = explorer.widget.children
    assert top.children == tuple(explorer.controls.values()) and readout is explorer.readout
    assert figures.children == (explorer.live.image,)
    assert explorer.main_controls == ("dx", "dy", "channel", "layer", "image")
    for w in (editor, explorer):
        assert "application/vnd.jupyter.widget-view+json" in w._repr_mimebundle_()


def test_explorer_channel_slider_follows_the_layer(explorer):
    explorer.controls["layer"].value = "conv2"
    explorer.controls["channel"].value = explorer.maps[0]["conv2"].shape[-1] - 1
    explorer.controls["layer"].value = "conv1"       # fewer channels: the slider shrinks and clamps
    n1 = explorer.maps[0]["conv1"].shape[-1]
    assert explorer.controls["channel"].max == n1 - 1 and explorer.controls["channel"].value == n1 - 1
    assert explorer.values["layer"] == "conv1" and explorer.values["channel"] == n1 - 1


def test_explorer_labels_the_map_and_names_a_dead_channel():
    """A channel that never fires looks the same in conv2 and pool2 (all zero): the label written on
    the map still tells the two apart (a new picture), and the readout says the channel is dead."""
    from course_lib import data

    X, y = data.load_digits(images=True)
    params = conv.init_cnn(0)
    params["conv2"]["w"][..., 1] = 0.0       # channel 1: w = 0 ...
    params["conv2"]["b"][1] = -1.0           # ... and b < 0: its ReLU is 0 everywhere
    ex = wc.build_feature_explorer(params, np.asarray(X[:2]), np.asarray(y[:2]))
    ex.controls["layer"].value = "conv2"
    ex.controls["channel"].value = 1
    assert ex.values["all_zero"] and not np.any(ex.values["map"])
    assert ex.map_label.get_text() == "conv2, channel 1 (all zero)"
    assert "dead" in ex.readout.value
    png = ex.live.image.value
    ex.controls["layer"].value = "pool2"
    assert not np.any(ex.values["map"]) and ex.map_label.get_text() == "pool2, channel 1 (all zero)"
    assert ex.live.image.value != png
    ex.controls["channel"].value = 0
    assert not ex.values["all_zero"] and ex.map_label.get_text() == "pool2, channel 0"
    assert "dead" not in ex.readout.value
