"""The chapter-04 loss vs prediction explorer, driven headlessly.

References: float64 NumPy formulas of each loss and its derivatives with respect to the probability
p and the logit z (independent of course_lib), and course_lib.losses for the values shown.
"""
import numpy as np
import pytest

from course_lib import losses
from course_lib.widgets import losses as wl
from course_lib.widgets.base import LiveFigure


def _np_reference(name, p, y):
    """(loss, dL/dp, dL/dz) in float64 for p = sigmoid(z)."""
    p, y = np.float64(p), np.float64(y)
    if name == "mse":
        return (p - y) ** 2, 2 * (p - y), 2 * (p - y) * p * (1 - p)
    xlogy = lambda a, b: 0.0 if a == 0 else a * np.log(b)  # noqa: E731
    bce = -(xlogy(y, p) + xlogy(1 - y, 1 - p))
    grads = ((p - y) / (p * (1 - p)), p - y)
    if name == "bce":
        return (bce, *grads)
    entropy = -(xlogy(y, y) + xlogy(1 - y, 1 - y))
    return (bce - entropy, *grads)  # KL = cross-entropy - entropy of y: same gradients


@pytest.fixture(scope="module")
def explorer():
    return wl.build_loss_explorer(losses=tuple(wl.LOSSES))


def test_protocol(explorer):
    assert "build_loss_explorer" in wl.WIDGETS
    assert isinstance(explorer.live, LiveFigure)
    assert set(explorer.main_controls) <= set(explorer.controls)


# course_lib.losses.binary_cross_entropy_with_logits differentiates to -t (not sigmoid(0) - t) at
# exactly z = 0: jnp.maximum and jnp.abs have one-sided derivatives there whose halves do not cancel.
# Reported to the owner of course_lib/losses.py; strict, so the marker must go once it is fixed.


@pytest.mark.parametrize("y", [0.0, 0.3, 1.0])
@pytest.mark.parametrize("p", [0.02, 0.37, 0.5, 0.9, 0.99])
def test_readout_matches_float64_formulas(explorer, y, p):
    explorer.controls["losses"].value = tuple(wl.LOSSES)
    explorer.controls["target"].value = y
    explorer.controls["p"].value = p
    v = explorer.values
    assert v["p"] == pytest.approx(p) and v["target"] == pytest.approx(y)
    assert v["z"] == pytest.approx(np.log(p / (1 - p)), abs=1e-9)
    for name in wl.LOSSES:
        got = v["losses"][name]
        ref = _np_reference(name, p, y)
        for what, g, r in zip(("loss", "dL/dp", "dL/dz"), got, ref):
            np.testing.assert_allclose(g, r, rtol=2e-5, atol=2e-6, err_msg=f"{name} {what} at p={p}, y={y}")


@pytest.mark.parametrize("y", [0.0, 1.0])
def test_readout_loss_values_are_course_lib_values(explorer, y):
    explorer.controls["target"].value = y
    explorer.controls["p"].value = 0.23
    v = explorer.values["losses"]
    p32 = np.float32(explorer.values["p"])
    y32 = np.float32(y)
    assert v["mse"][0] == float(losses.mse(p32[None], y32[None]))
    assert v["bce"][0] == pytest.approx(float(losses.binary_cross_entropy(p32[None], y32[None])), rel=1e-6)
    kl = losses.kl_divergence(np.array([y32, 1 - y32]), np.array([p32, 1 - p32]))
    assert v["kl"][0] == pytest.approx(float(kl), rel=1e-5, abs=1e-7)
    for name in wl.LOSSES:
        assert f"{v[name][0]:.4f}" in explorer.readout.value


def test_curves_follow_the_target(explorer):
    explorer.controls["target"].value = 0.0
    explorer.controls["losses"].value = tuple(wl.LOSSES)
    ps = np.asarray(explorer.lines["mse"]["value"].get_xdata())
    np.testing.assert_allclose(explorer.lines["mse"]["value"].get_ydata(), ps ** 2, rtol=1e-5, atol=1e-7)
    explorer.controls["target"].value = 1.0
    np.testing.assert_allclose(explorer.lines["mse"]["value"].get_ydata(), (ps - 1) ** 2, rtol=1e-5, atol=1e-7)
    off_zero = np.abs(ps - 0.5) > 1e-9
    np.testing.assert_allclose(explorer.lines["bce"]["dz"].get_ydata()[off_zero], ps[off_zero] - 1,
                               rtol=1e-5, atol=1e-6)


def test_bce_logit_gradient_curve_at_z_equal_zero(explorer):
    explorer.controls["target"].value = 1.0
    zs = np.asarray(explorer.lines["bce"]["dz"].get_xdata())
    i = int(np.argmin(np.abs(zs)))
    assert zs[i] == 0.0
    assert explorer.lines["bce"]["dz"].get_ydata()[i] == pytest.approx(-0.5, abs=1e-6)


def test_mse_behind_a_sigmoid_gives_a_vanishing_gradient_when_confidently_wrong(explorer):
    # the chapter's point: y = 1, p = 0.01 -> MSE's dL/dz is tiny, cross-entropy's is about -1
    explorer.controls["target"].value = 1.0
    explorer.controls["p"].value = 0.01
    mse_dz, bce_dz = explorer.values["losses"]["mse"][2], explorer.values["losses"]["bce"][2]
    assert abs(mse_dz) < 0.02 and bce_dz == pytest.approx(-0.99, abs=1e-5)


def test_selecting_losses_toggles_their_artists_and_readout(explorer):
    explorer.controls["losses"].value = ("bce",)
    assert set(explorer.values["losses"]) == {"bce"}
    assert all(line.get_visible() for line in explorer.lines["bce"].values())
    assert not any(line.get_visible() for line in explorer.lines["mse"].values())
    assert "squared error" not in explorer.readout.value


@pytest.mark.parametrize("control,value", [("p", 0.7), ("target", 0.4), ("losses", ("mse",))])
def test_each_control_changes_the_png(explorer, control, value):
    explorer.controls["losses"].value = ("mse", "bce")
    explorer.controls["target"].value = 1.0
    explorer.controls["p"].value = 0.2
    before = explorer.live.image.value
    explorer.controls[control].value = value
    after = explorer.live.image.value
    assert after[:8] == b"\x89PNG\r\n\x1a\n" and after != before


@pytest.mark.parametrize("kwargs,match", [
    ({"losses": ("mse", "hinge")}, "losses must be a subset"),
    ({"target": 1.5}, "target must lie in"),
    ({"p": 0.0}, "p must lie in"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        wl.build_loss_explorer(**kwargs)


def test_loss_curves_validates_its_grids():
    with pytest.raises(ValueError, match="p_grid"):
        wl.loss_curves([0.0, 0.5], [1.0])
    with pytest.raises(ValueError, match="targets"):
        wl.loss_curves([0.2, 0.5], [2.0])
