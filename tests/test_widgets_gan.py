"""The chapter-13 training-dynamics viewer, driven headlessly, on a small stored GAN run.

References: the stored history arrays themselves (the viewer must show exactly them), numpy means
of the loss windows, course_lib.gan.count_modes recomputed independently with a numpy loop.
"""
import numpy as np
import pytest

from course_lib import gan
from course_lib.widgets import gan as wg
from course_lib.widgets.base import LiveFigure


@pytest.fixture(scope="module")
def run():
    X, C = gan.make_ring(600, std=0.05, seed=0)
    g = np.linspace(-3, 3, 9)
    grid = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)
    h = gan.train_gan_history(gan.init_gan(2, 2, (8,), seed=0), X, steps=40, snapshots=4, batch_size=16,
                              n_samples=50, grid=grid)
    return h, X, C


@pytest.fixture(scope="module")
def viewer(run):
    h, X, C = run
    return wg.build_gan_viewer(h, X, centers=C)


def test_protocol(viewer):
    assert "build_gan_viewer" in wg.WIDGETS
    assert isinstance(viewer.live, LiveFigure)
    assert set(viewer.main_controls) <= set(viewer.controls)
    s = viewer.controls["step"]
    assert (s.min, s.max, s.step) == (10, 40, 10)


@pytest.mark.parametrize("step", [20, 40, 10, 30])
def test_step_shows_the_stored_snapshot(viewer, run, step):
    h, _, C = run
    before = viewer.live.image.value
    viewer.controls["step"].value = step
    i = step // 10 - 1
    np.testing.assert_allclose(viewer.scat.get_offsets(), h["samples"][i], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(viewer.heat.get_array()).ravel(), h["d_grid"][i], rtol=1e-6)
    assert list(viewer.marker.get_xdata()) == [step, step]
    want = h["losses"][i * 10:(i + 1) * 10].astype(np.float64).mean(0)
    assert viewer.values["d_loss"] == pytest.approx(want[0]) and viewer.values["g_loss"] == pytest.approx(want[1])
    assert f"{want[0]:.3f}" in viewer.readout.value
    d = np.linalg.norm(h["samples"][i][:, None] - C[None], axis=-1)
    counts = np.array([np.sum((d.argmin(1) == k) & (d.min(1) <= 0.2)) for k in range(len(C))])
    assert viewer.values["modes"] == int((counts >= 5).sum())
    if step != 20:  # the fixture's previous value differs: the picture must change
        assert viewer.live.image.value != before


def test_image_mode_tiles_the_samples():
    rng = np.random.default_rng(0)
    h = {"losses": rng.random((6, 2)), "samples": rng.random((3, 40, 64))}
    v = wg.build_gan_viewer(h, image_side=8)
    v.controls["step"].value = 4
    got = np.asarray(v.im.get_array())
    np.testing.assert_allclose(got[:8, :8], h["samples"][1, 0].reshape(8, 8))
    np.testing.assert_allclose(got[9:17, 18:26], h["samples"][1, 10].reshape(8, 8))  # row 1, col 2
    assert np.isnan(got[8, 0])
    assert "modes" not in v.values


def test_smooth_is_a_trailing_mean():
    x = np.array([1.0, 3.0, 5.0, 7.0])
    np.testing.assert_allclose(wg.smooth(x, 2), [1.0, 2.0, 4.0, 6.0])


def test_bad_inputs(run):
    h, X, _ = run
    with pytest.raises(ValueError, match="history"):
        wg.build_gan_viewer({"losses": h["losses"]}, X)
    with pytest.raises(ValueError, match="image_side"):
        wg.build_gan_viewer(h, X, image_side=3)
    with pytest.raises(ValueError, match="multiple"):
        wg.build_gan_viewer({"losses": h["losses"][:7], "samples": h["samples"]}, X)
    with pytest.raises(ValueError, match="d = 2"):
        wg.build_gan_viewer({"losses": h["losses"], "samples": np.zeros((4, 5, 3))})
    with pytest.raises(ValueError, match="images"):
        wg.image_grid(np.zeros((3, 64)), 8, 2, 2)


@pytest.mark.parametrize("step", [30, 10, 40])
def test_loss_curves_end_at_the_step_and_are_trailing_averages(viewer, run, step):
    """The curves show the losses up to the chosen step only (what a chaotic run's first picture shows
    then depends only on its start), each point the mean of the last w = 1 losses (40 steps // 100,
    at least 1) recomputed here with a numpy loop; the loss axis is fixed."""
    h, _, _ = run
    viewer.controls["step"].value = step
    losses = np.asarray(h["losses"], np.float64)
    for j, curve in enumerate(viewer.curves):
        x, y = curve.get_data()
        assert list(x) == list(range(1, step + 1))
        np.testing.assert_allclose(y, [losses[max(0, t - 1):t, j].mean() for t in range(1, step + 1)], rtol=1e-12)
    assert viewer.curves[0].axes.get_ylim() == (0.0, wg.LOSS_TOP)


def test_trailing_average_reference():
    x = np.array([1.0, 2.0, 4.0, 8.0, 16.0])
    want = [np.mean(x[max(0, t - 3):t]) for t in range(1, 6)]
    np.testing.assert_allclose(wg.smooth(x, 3), want, rtol=1e-12)
