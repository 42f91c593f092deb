"""Chapter 11 widgets, driven headlessly: set a control's value, check the artists and the PNG."""
import numpy as np
import jax.numpy as jnp
import pytest

from course_lib import recurrent as R
from course_lib.widgets import recurrent as W


@pytest.fixture(scope="module")
def data():
    return W.gradient_through_time_data(max_len=12, hidden_size=6, input_size=3, batch_size=2,
                                        scales=(0.5, 1.0, 2.0), gate_biases=(0.0, 3.0),
                                        lengths=(4, 8, 12))


def test_table_equals_direct_gradient_norms(data):
    xs = jnp.asarray(data["xs"], jnp.float64)
    base = {k: {n: jnp.asarray(v, jnp.float64) for n, v in p.items()} for k, p in data["base"].items()}
    p = dict(base["rnn"], W_hh=base["rnn"]["W_hh"] * 2.0)
    want = R.hidden_gradient_norms("rnn", p, xs, loss_step=7, activation="relu")
    np.testing.assert_allclose(data["rnn"]["relu"][2, 1], want, rtol=2e-4, atol=1e-30)
    p = dict(base["lstm"], W_h=base["lstm"]["W_h"] * 0.5)
    p["b"] = p["b"].at[6:12].set(3.0)
    want = R.hidden_gradient_norms("lstm", p, xs, loss_step=11)
    np.testing.assert_allclose(data["lstm"][0, 1, 2], want, rtol=2e-4, atol=1e-30)
    assert data["gru"].shape == (3, 2, 3, 12)


def test_gradient_widget_follows_controls(data):
    box, live, controls = W.gradient_through_time_widget(data)
    lines = {line.get_label(): line for line in live.fig.axes[0].get_lines() if line.get_label() in ("RNN", "LSTM", "GRU")}
    png0 = live.image.value
    y0 = np.array(lines["RNN"].get_ydata(), dtype=float)
    np.testing.assert_allclose(y0, np.maximum(data["rnn"]["tanh"][1, 2], 1e-30), rtol=1e-12)
    controls["activation"].value = "sigmoid"
    y1 = np.array(lines["RNN"].get_ydata(), dtype=float)
    np.testing.assert_allclose(y1, np.maximum(data["rnn"]["sigmoid"][1, 2], 1e-30), rtol=1e-12)
    assert live.image.value != png0
    controls["length"].value = 4
    y2 = np.array(lines["GRU"].get_ydata(), dtype=float)
    assert np.isnan(y2[4:]).all() and np.isfinite(y2[:4]).all()
    png1 = live.image.value
    assert controls["gate_bias"].value == 3.0
    controls["gate_bias"].value = 0.0
    np.testing.assert_allclose(np.array(lines["LSTM"].get_ydata(), dtype=float)[:4],
                               np.maximum(data["lstm"][1, 0, 0, :4], 1e-30), rtol=1e-12)
    assert live.image.value != png1
    controls["scale"].value = 2.0
    assert box.children


def test_sigmoid_rnn_vanishes_faster_than_tanh(data):
    tanh, sigm = data["rnn"]["tanh"][1, 2], data["rnn"]["sigmoid"][1, 2]
    assert sigm[0] / sigm[-1] < tanh[0] / tanh[-1] < 1


def test_gates_widget_follows_controls():
    p = R.init_lstm(3, 5, seed=1)
    xs = np.random.default_rng(0).standard_normal((4, 7, 3)).astype(np.float32)
    mask = R.sequence_mask(np.array([7, 5, 7, 2]), 7)
    box, live, controls = W.lstm_gates_widget(p, xs, mask=mask)
    im_in, im_g = live.animated[0], live.animated[1]
    gates = R.lstm_gate_activations(p, xs)
    np.testing.assert_allclose(np.asarray(im_g.get_array()), np.asarray(gates["f"][0]).T, rtol=1e-6)
    png0 = live.image.value
    controls["gate"].value = "c"
    np.testing.assert_allclose(np.asarray(im_g.get_array()), np.asarray(gates["c"][0]).T, rtol=1e-6)
    assert live.image.value != png0
    controls["example"].value = 3
    arr = np.ma.filled(im_g.get_array().astype(float), np.nan)
    assert np.isnan(arr[:, 2:]).all() and np.isfinite(arr[:, :2]).all()
    np.testing.assert_allclose(arr[:, :2], np.asarray(gates["c"][3, :2]).T, rtol=1e-6)
    gates_widget = W.LSTMGates(p, xs, mask=mask)
    gates_widget.controls["example"].value = 3
    mean = float(np.mean(np.asarray(gates["f"][3, :2])))
    assert f"mean over the valid steps {mean:.3f}" in gates_widget.readout.value
    assert gates_widget.readout.value.startswith("sequence 3: forget gate f")


def test_gates_widget_names_the_gate_in_words_title_and_colour_bar():
    """Readable: toggles say "forget gate f", not "f"; the heat map's title and its colour bar name
    the gate shown, and the colour range is the gate's own (a sigmoid gate 0..1, c its data's)."""
    p = R.init_lstm(3, 5, seed=1)
    xs = np.random.default_rng(0).standard_normal((2, 6, 3)).astype(np.float32)
    g = W.LSTMGates(p, xs, input_labels=["x one", "x two", "x three"])
    labels = [label for label, _ in g.controls["gate"].options]
    assert labels == ["input gate i", "forget gate f", "candidate g", "output gate o", "cell state c",
                      "hidden state h"]
    colorbar_ax = g.live.fig.axes[-1]
    for key, name, clim in (("i", "input gate i", (0, 1)), ("g", "candidate g", (-1, 1)),
                            ("c", "cell state c", (-g.c_max, g.c_max))):
        png = g.live.image.value
        g.controls["gate"].value = key
        assert name in g.ax_g.get_title() and name in colorbar_ax.get_ylabel()
        np.testing.assert_allclose(g.im_g.get_clim(), clim)
        assert g.live.image.value != png
    ticks = g.live.fig.axes[0].get_yticklabels()
    assert [t.get_text() for t in ticks] == ["x one", "x two", "x three"]
    assert min(t.get_fontsize() for t in ticks) >= 9            # readable at the size shown
    with pytest.raises(ValueError, match="input_labels"):
        W.LSTMGates(p, xs, input_labels=["only one"])


def test_widgets_are_explorers_and_the_functions_return_their_parts(data):
    from course_lib.widgets.base import Explorer

    gtt = W.GradientThroughTime(data)
    assert isinstance(gtt, Explorer) and gtt.main_controls == ("length", "scale", "activation", "gate_bias")
    top, readout, figures = gtt.widget.children           # the ratios are in the readout
    assert top.children == tuple(gtt.controls.values()) and figures.children == (gtt.live.image,)
    curve = data["lstm"][data["scales"].index(1.0), data["gate_biases"].index(3.0), data["lengths"].index(12)]
    assert readout is gtt.readout and f"LSTM |dL/dh_1| / |dL/dh_T| = {curve[0] / curve[11]:.1e}" in readout.value
    box, live, controls = W.gradient_through_time_widget(data)
    assert list(controls) == list(gtt.controls) and live.image.value == gtt.live.image.value
    assert [c.value for c in controls.values()] == [12, 1.0, "tanh", 3.0]
    p = R.init_lstm(3, 5, seed=1)
    xs = np.random.default_rng(0).standard_normal((2, 4, 3)).astype(np.float32)
    gates = W.LSTMGates(p, xs, input_labels=["a", "b", "c"])
    assert isinstance(gates, Explorer) and gates.main_controls == ("example", "gate")
    top, readout, figures = gates.widget.children
    assert top.children == tuple(gates.controls.values()) and figures.children == (gates.live.image,)
    assert readout is gates.readout and "forget gate f" in readout.value
    assert [t.get_text() for t in gates.live.fig.axes[0].get_yticklabels()] == ["a", "b", "c"]
    assert "application/vnd.jupyter.widget-view+json" in gates._repr_mimebundle_()


def test_widgets_builders_need_no_arguments_and_check_their_input():
    """The WIDGETS builders (widget protocol): callable without arguments; the default LSTM gates
    equal the library's lstm_gate_activations; bad sequences get a clear error."""
    assert W.WIDGETS == ("build_gradient_through_time", "build_lstm_gates")
    gates = W.build_lstm_gates()
    assert isinstance(gates, W.LSTMGates)
    t = np.arange(40, dtype=np.float32)
    xs = np.stack([np.sin(t * f) for f in (0.1, 0.2, 0.4, 0.8)])[..., None]
    ref = R.lstm_gate_activations(R.init_lstm(1, 16, seed=0), xs)
    np.testing.assert_allclose(gates.gates["f"], np.asarray(ref["f"]), rtol=1e-6)
    with pytest.raises(ValueError, match="xs"):
        W.build_lstm_gates(R.init_lstm(3, 5, seed=0), np.zeros((2, 4, 2), np.float32))


def _pixels(png):
    import io

    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)


def test_gate_switches_show_what_a_fresh_viewer_and_a_full_redraw_show():
    """A switch restores the gate's background drawn at build time and changes only the heat map's
    colours and the texts' state. In any order of switches the picture must be byte for byte what a
    viewer built for that state shows, and match a full redraw of the state (title, colour bar with
    its colours) up to the sub-pixel moves of constrained layout: fewer than 0.5 % of the pixels differ
    (a colour bar with the wrong colours alone is ~2.5 % of them)."""
    viewer = W.build_lstm_gates()
    for example, gate in [(0, "c"), (2, "i"), (2, "g"), (1, "c"), (3, "h"), (0, "f"), (0, "o")]:
        fresh = W.build_lstm_gates()
        for w in (viewer, fresh):
            w.controls["example"].value, w.controls["gate"].value = example, gate
        assert viewer.live.image.value == fresh.live.image.value, (example, gate)
        fresh._show_layout(gate)
        fresh.live.redraw()
        differ = np.any(_pixels(viewer.live.image.value) != _pixels(fresh.live.image.value), axis=-1)
        assert differ.mean() < 0.005, (example, gate, differ.mean())
        assert (viewer.ax_g.get_title(), viewer._colorbar.ax.get_ylabel()) == \
            (fresh.ax_g.get_title(), fresh._colorbar.ax.get_ylabel())
