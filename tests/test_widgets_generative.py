"""The chapter-12 latent-space explorer, driven headlessly.

Reference: an independent float64 NumPy forward pass of the decoder MLP (ReLU hidden layers, linear
last layer, sigmoid output), evaluated at the latent point the sliders select.
"""
import numpy as np
import pytest

from course_lib import generative as g
from course_lib.widgets import generative as wg
from course_lib.widgets.base import LiveFigure


def np_decode(params, z):
    h = np.asarray(z, np.float64)
    layers = params["decoder"]
    for i, layer in enumerate(layers):
        h = h @ np.asarray(layer["W"], np.float64) + np.asarray(layer["b"], np.float64)
        if i < len(layers) - 1:
            h = np.maximum(h, 0.0)
    return 1.0 / (1.0 + np.exp(-h))


@pytest.fixture(scope="module")
def params():
    p = g.init_vae((64, 16, 2), seed=3)
    # non-zero biases, so that a wrong bias handling would show
    rng = np.random.default_rng(0)
    for layer in p["decoder"]:
        layer["b"] = np.asarray(rng.normal(0, 0.5, layer["b"].shape), np.float32)
    return p


@pytest.fixture(scope="module")
def explorer(params):
    from course_lib import data
    X, y = data.load_digits()
    return wg.build_latent_explorer(params, X[:100], y[:100])


def test_protocol(explorer):
    assert wg.WIDGETS == ("build_latent_explorer",)
    assert isinstance(explorer.live, LiveFigure)
    assert set(explorer.main_controls) == {"z1", "z2"} <= set(explorer.controls)
    assert explorer.widget is not None


@pytest.mark.parametrize("z1, z2", [(0.0, 0.0), (-3.0, 3.0), (1.3, -0.7), (2.9, 0.1)])
def test_decoded_digit_matches_an_independent_decoder(explorer, params, z1, z2):
    explorer.controls["z1"].value = z1
    explorer.controls["z2"].value = z2
    v = explorer.values
    assert v["z"] == pytest.approx((z1, z2), abs=1e-9)
    ref = np_decode(params, np.array([[z1, z2]])).reshape(8, 8)
    np.testing.assert_allclose(v["image"], ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(explorer.digit.get_array(), v["image"])
    xs, ys = explorer.marker.get_data()
    assert (xs[0], ys[0]) == pytest.approx((z1, z2), abs=1e-9)
    assert f"z = ({z1:+.1f}, {z2:+.1f})" in explorer.readout.value
    density = np.exp(-0.5 * (z1 ** 2 + z2 ** 2)) / (2 * np.pi)
    assert f"p(z) = {density:.4f}" in explorer.readout.value


def test_every_move_publishes_new_png_bytes(explorer):
    explorer.controls["z1"].value = 0.0
    before = explorer.live.image.value
    explorer.controls["z1"].value = 1.5
    after = explorer.live.image.value
    assert before != after and after[:8] == b"\x89PNG\r\n\x1a\n"
    explorer.controls["z2"].value = -2.0
    assert explorer.live.image.value != after


def test_values_between_grid_points_snap_to_the_nearest(explorer):
    explorer.controls["z1"].value = 0.0
    explorer.update(z1=0.04, z2=-0.06)
    assert explorer.values["z"] == pytest.approx((0.0, -0.1), abs=1e-9)


def test_decoded_grid_and_mosaic_layout(params):
    grid = wg.latent_grid(1.0, 0.5)
    np.testing.assert_allclose(grid, [-1.0, -0.5, 0.0, 0.5, 1.0])
    images = wg.decoded_grid(params, grid)
    assert images.shape == (5, 5, 64)
    np.testing.assert_allclose(images[1, 3], np_decode(params, [[-0.5, 0.5]])[0], rtol=1e-5, atol=1e-6)
    # mosaic for imshow(origin="lower"): block (row j from the bottom, column i) is image [i, j],
    # flipped so that the digit's top pixel row ends up on top
    fake = np.arange(3 * 3 * 64, dtype=float).reshape(3, 3, 64)
    m = wg.mosaic(fake)
    assert m.shape == (24, 24)
    i, j = 2, 1
    block = m[8 * j: 8 * j + 8, 8 * i: 8 * i + 8]
    np.testing.assert_array_equal(block[::-1], fake[i, j].reshape(8, 8))


def test_bad_inputs(params):
    with pytest.raises(ValueError, match="lim"):
        wg.latent_grid(-1.0, 0.1)
    with pytest.raises(ValueError, match="step"):
        wg.latent_grid(1.0, 0.3)
    with pytest.raises(ValueError, match="2-D latent"):
        wg.decoded_grid(g.init_vae((64, 8, 3)), wg.latent_grid())
    with pytest.raises(ValueError, match="grid"):
        wg.decoded_grid(params, np.array([0.0, np.nan]))
    with pytest.raises(ValueError, match="images must have shape"):
        wg.mosaic(np.zeros((3, 2, 64)))
    with pytest.raises(ValueError, match="z1 must lie"):
        wg.build_latent_explorer(params, z1=5.0)
    with pytest.raises(ValueError, match="n_mosaic"):
        wg.build_latent_explorer(params, n_mosaic=1)


def test_default_builder_trains_a_vae_whose_explorer_draws_digits():
    explorer = wg.build_latent_explorer()
    # a trained decoder: the mosaic is not one repeated image (an untrained or collapsed one is)
    spread = explorer.images.reshape(-1, 64).std(axis=0).mean()
    assert spread > 0.05
    explorer.controls["z1"].value = -1.0
    assert explorer.values["z"][0] == pytest.approx(-1.0)
