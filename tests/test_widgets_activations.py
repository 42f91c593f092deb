"""The chapter-03 activation + derivative explorer, driven headlessly.

References: float64 NumPy formulas of each activation and its derivative (independent of
course_lib), and course_lib.activations itself (the readout must show what the library computes).
"""
import numpy as np
import pytest

from course_lib import activations as act
from course_lib.widgets import activations as wa
from course_lib.widgets.base import LiveFigure


def _np_reference(name, x, alpha=0.1):
    x = np.asarray(x, dtype=np.float64)
    if name == "sigmoid":
        s = 1.0 / (1.0 + np.exp(-x))
        return s, s * (1.0 - s)
    if name == "tanh":
        t = np.tanh(x)
        return t, 1.0 - t ** 2
    if name == "relu":
        return np.maximum(x, 0.0), (x > 0).astype(float)
    if name == "leaky_relu":
        return np.where(x > 0, x, alpha * x), np.where(x > 0, 1.0, alpha)
    return x, np.ones_like(x)


@pytest.fixture(scope="module")
def explorer():
    return wa.build_activation_explorer()


def test_protocol(explorer):
    assert "build_activation_explorer" in wa.WIDGETS
    assert isinstance(explorer.live, LiveFigure)
    assert set(explorer.main_controls) <= set(explorer.controls)
    assert explorer.widget is not None


@pytest.mark.parametrize("name", wa.ACTIVATIONS)
@pytest.mark.parametrize("x", [-3.0, -0.5, 0.25, 2.0, 4.95])
def test_readout_matches_library_and_float64_formula(explorer, name, x):
    explorer.controls["alpha"].value = 0.1
    explorer.controls["activation"].value = name
    explorer.controls["x"].value = x
    v = explorer.values
    assert v["activation"] == name and v["x"] == pytest.approx(x, abs=1e-9)
    f, df = act.get(name)
    kw = {"alpha": 0.1} if name == "leaky_relu" else {}
    x32 = np.float32(x)
    assert v["f"] == float(f(x32, **kw))
    assert v["df"] == float(df(x32, **kw))
    f_ref, df_ref = _np_reference(name, x, alpha=0.1)
    np.testing.assert_allclose(v["f"], f_ref, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(v["df"], df_ref, rtol=1e-6, atol=1e-7)
    # the markers sit on the readout numbers, and the readout text prints them
    assert explorer.f_marker.get_data()[1][0] == v["f"]
    assert explorer.d_marker.get_data()[1][0] == v["df"]
    assert f"f(x) = {v['f']:+.4f}" in explorer.readout.value
    assert f"f'(x) = {v['df']:.4f}" in explorer.readout.value


@pytest.mark.parametrize("name", wa.ACTIVATIONS)
def test_curves_are_the_activation_and_its_derivative(explorer, name):
    explorer.controls["alpha"].value = 0.2
    explorer.controls["activation"].value = name
    xs = explorer.f_line.get_xdata()
    f_ref, df_ref = _np_reference(name, xs, alpha=0.2)
    np.testing.assert_allclose(explorer.f_line.get_ydata(), f_ref, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(explorer.d_line.get_ydata(), df_ref, rtol=1e-6, atol=1e-6)


def test_derivative_curve_matches_finite_differences(explorer):
    # independent of any closed form: central differences of the plotted f, in float64
    explorer.controls["activation"].value = "tanh"
    xs = np.asarray(explorer.f_line.get_xdata(), dtype=np.float64)
    h = 1e-5
    fd = (np.tanh(xs + h) - np.tanh(xs - h)) / (2 * h)
    np.testing.assert_allclose(explorer.d_line.get_ydata(), fd, rtol=1e-5, atol=1e-7)


def test_tangent_has_slope_f_prime(explorer):
    explorer.controls["activation"].value = "sigmoid"
    explorer.controls["x"].value = 1.0
    (x0, x1), (y0, y1) = explorer.tangent.get_data()
    assert (y1 - y0) / (x1 - x0) == pytest.approx(explorer.values["df"], rel=1e-6)


@pytest.mark.parametrize("control,value", [("x", -1.5), ("activation", "relu"), ("alpha", 0.25)])
def test_each_control_changes_the_png(explorer, control, value):
    explorer.controls["activation"].value = "leaky_relu"
    explorer.controls["alpha"].value = 0.05
    explorer.controls["x"].value = 1.0
    before = explorer.live.image.value
    explorer.controls[control].value = value
    after = explorer.live.image.value
    assert after[:8] == b"\x89PNG\r\n\x1a\n"
    assert after != before


def test_alpha_moves_only_the_leaky_curve(explorer):
    explorer.controls["activation"].value = "leaky_relu"
    explorer.controls["alpha"].value = 0.0
    flat = np.array(explorer.f_line.get_ydata())
    explorer.controls["alpha"].value = 0.3
    assert explorer.values["alpha"] == pytest.approx(0.3)
    xs = explorer.f_line.get_xdata()
    neg = xs < 0
    np.testing.assert_allclose(np.asarray(explorer.f_line.get_ydata())[neg], 0.3 * xs[neg], rtol=1e-6)
    np.testing.assert_allclose(flat[neg], 0.0)
    explorer.controls["activation"].value = "relu"
    np.testing.assert_allclose(np.asarray(explorer.f_line.get_ydata())[neg], 0.0)


def test_alpha_slider_is_disabled_unless_leaky_relu_is_shown(explorer):
    """The slope alpha only exists for Leaky ReLU: elsewhere its slider is disabled (moving it would
    change nothing on screen)."""
    for name in wa.ACTIVATIONS:
        explorer.controls["activation"].value = name
        assert explorer.controls["alpha"].disabled == (name != "leaky_relu")


def test_tangent_is_drawn_solid_and_long_enough_to_read(explorer):
    explorer.controls["activation"].value = "sigmoid"
    explorer.controls["x"].value = 2.0
    (x0, x1), _ = explorer.tangent.get_data()
    assert explorer.tangent.get_linestyle() == "-" and explorer.tangent.get_linewidth() >= 2
    assert x1 - x0 >= 3.0 and explorer.tangent.get_zorder() > explorer.f_line.get_zorder()


def test_saturation_and_dead_notes(explorer):
    explorer.controls["activation"].value = "sigmoid"
    explorer.controls["x"].value = 4.95
    assert explorer.values["df"] < 0.01 and "saturated" in explorer.readout.value
    explorer.controls["activation"].value = "relu"
    explorer.controls["x"].value = -2.0
    assert explorer.values["df"] == 0.0 and "zero gradient" in explorer.readout.value


@pytest.mark.parametrize("kwargs,match", [
    ({"activation": "swish"}, "activation must be one of"),
    ({"alpha": 0.5}, "alpha must lie in"),
    ({"alpha": -0.1}, "alpha must lie in"),
    ({"x": 7.0}, "x must lie in"),
    ({"x_range": 0}, "x_range must be"),
    ({"x_range": float("nan")}, "x_range must be"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        wa.build_activation_explorer(**kwargs)


def test_activation_curves_validates_its_grids():
    with pytest.raises(ValueError, match="x_grid"):
        wa.activation_curves(np.zeros((2, 3)), [0.1])
    with pytest.raises(ValueError, match="x_grid"):
        wa.activation_curves([0.0, np.nan], [0.1])
    with pytest.raises(ValueError, match="alphas"):
        wa.activation_curves([0.0, 1.0], [1.5])
