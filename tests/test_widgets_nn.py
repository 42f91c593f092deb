"""Widgets of chapters 01, 05, 06 driven headlessly: controls change the picture, numbers match references."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from course_lib import layers, perceptron
from course_lib.widgets import gradient_flow as GF
from course_lib.widgets import perceptron as PW
from course_lib.widgets import playground as PG


# ------------------------------------------------------------------------------ perceptron stepper
@pytest.fixture(scope="module")
def stepper():
    return PW.build_perceptron_stepper()


def test_stepper_shows_the_trajectory_of_train_perceptron(stepper):
    X, y = stepper.data["separable"]
    run = perceptron.train_perceptron(X, y, epochs=PW.STEPS // len(y))
    before = stepper.live.image.value
    stepper.controls["step"].value = 37
    assert stepper.live.image.value != before
    np.testing.assert_allclose(stepper.values["w"], run["w_history"][37])
    assert stepper.values["b"] == pytest.approx(float(run["b_history"][37]))
    assert stepper.values["mistakes"] == int(run["mistake"][:37].sum())
    xs, ys = stepper.line.get_data()
    w, b = run["w_history"][37], run["b_history"][37]
    np.testing.assert_allclose(w[0] * np.asarray(xs) + w[1] * np.asarray(ys) + b, 0, atol=1e-4)
    stepper.controls["step"].value = PW.STEPS
    assert stepper.values["errors"] == 0  # separable: the rule has converged


def test_stepper_xor_never_fits(stepper):
    stepper.controls["dataset"].value = "XOR"
    for t in (50, 120, PW.STEPS):
        stepper.controls["step"].value = t
        assert stepper.values["errors"] >= 1
    assert len(stepper.points.get_offsets()) == 4
    stepper.controls["dataset"].value = "separable"


def test_line_points_and_bad_args():
    xs, ys = PW.line_points(np.array([1.0, 2.0]), 0.5)
    np.testing.assert_allclose(xs + 2 * ys + 0.5, 0, atol=1e-12)
    assert PW.line_points(np.zeros(2), 1.0)[0].size == 0
    with pytest.raises(ValueError, match="dataset must be one of"):
        PW.build_perceptron_stepper(dataset="OR")
    with pytest.raises(ValueError, match="step must be an int >= 0"):
        PW.build_perceptron_stepper(step=-1)


# ------------------------------------------------------------------------------------ playground
@pytest.fixture(scope="module")
def playground():
    return PG.build_playground(dataset="xor", width=6, depth=2, activation="tanh", lr=0.03)


@pytest.mark.parametrize("width,depth,act", [(3, 1, "relu"), (6, 2, "tanh"), (16, 4, "sigmoid"),
                                             (5, 3, "leaky_relu")])
def test_masked_network_equals_plain_mlp(width, depth, act):
    """The padded/masked network computes exactly the MLP of the chosen width and depth."""
    X, y = PG.playground_data("moons", 0.1)
    run = PG.train_playground(X, y, width, depth, act, lr=0.05)
    grid = PG.surface_grid()
    for params, k in ((run["init_params"], 0), (run["params"], PG.SNAPSHOTS)):
        plain = [{"W": jnp.asarray(p["W"]), "b": jnp.asarray(p["b"])} for p in PG.unpad_params(params, width, depth)]
        assert layers.layer_sizes(plain) == (2,) + (width,) * depth + (2,)
        prob = jax.nn.softmax(layers.mlp_apply(plain, grid, act))[:, 1]
        np.testing.assert_allclose(run["surface"][k].ravel(), prob, rtol=1e-4, atol=1e-5)
    plain0 = [{"W": jnp.asarray(p["W"]), "b": jnp.asarray(p["b"])}
              for p in PG.unpad_params(run["init_params"], width, depth)]
    logp = jax.nn.log_softmax(layers.mlp_apply(plain0, X, act))
    assert run["loss"][0] == pytest.approx(float(-jnp.mean(logp[jnp.arange(len(y)), y])), rel=1e-4)
    assert run["loss"][-1] < run["loss"][0]


def test_playground_learns_and_redraws_without_training(playground):
    pg = playground
    assert pg.values["trained"] and pg.values["acc"] >= 0.95
    before = pg.live.image.value
    run = pg.run
    pg.controls["epoch"].value = 3
    assert pg.live.image.value != before and pg.run is run  # scrubbing only indexes
    assert pg.values["step"] == 3 * (PG.STEPS // PG.SNAPSHOTS)
    np.testing.assert_array_equal(pg.image.get_array(), run["surface"][3])
    pg.controls["noise"].value = 0.2
    assert not pg.values["trained"]
    pg.controls["dataset"].value = "circles"
    pg.train()
    assert pg.values["trained"] and pg.run["config"]["dataset"] == "circles"
    assert pg.values["snapshot"] == PG.SNAPSHOTS
    pg.controls["width"].value = 2
    assert not pg.values["trained"]


def test_untrained_playground_shows_every_setting_and_disables_the_snapshot_slider(playground):
    """Without a run the snapshot slider has nothing to show (disabled); each model setting still
    changes the figure: it names the network that Train will fit."""
    pg = playground
    pg.train()
    assert not pg.controls["epoch"].disabled
    pg.controls["depth"].value = 3 if pg.controls["depth"].value != 3 else 2
    assert not pg.values["trained"] and pg.controls["epoch"].disabled
    for name, value in (("depth", 4), ("width", 5), ("activation", "relu"), ("lr", 0.1)):
        png = pg.live.image.value
        pg.controls[name].value = value
        assert pg.live.image.value != png, name
    assert pg.label.get_text() == "press Train: 4 x 5 relu, lr 0.1"
    pg.train()
    assert pg.values["trained"] and not pg.controls["epoch"].disabled


def test_playground_learning_rate_is_exactly_on_its_slider():
    """The browser draws a slider's value on the slider's own grid; a value off the grid would come
    back changed and discard the run. The rate given is one of the slider's exact options."""
    pg = PG.build_playground(dataset="xor", lr=0.07, train=False)
    assert pg.controls["lr"].value == 0.07 and 0.07 in pg.controls["lr"].options
    assert set(PG.LEARNING_RATES) <= set(pg.controls["lr"].options)
    for bad in (0.0, 1.5, float("nan")):
        with pytest.raises(ValueError, match=r"lr must be a finite number in \(0, 1\]"):
            PG.build_playground(lr=bad, train=False)
    for bad in ("0.1", True):
        with pytest.raises(TypeError, match="lr must be a number"):
            PG.build_playground(lr=bad, train=False)


def test_playground_is_an_explorer_with_train_button_and_readout():
    from course_lib.widgets.base import Explorer

    pg = PG.build_playground(dataset="moons", width=4, depth=1, activation="relu", lr=0.1, train=False)
    assert isinstance(pg, Explorer)
    assert list(pg.controls) == ["dataset", "noise", "depth", "width", "activation", "lr", "epoch"]
    assert pg.main_controls == ("epoch", "dataset", "noise")
    top, readout, figures = pg.widget.children
    assert top.children == tuple(pg.controls.values()) + (pg.button,)   # Train after the controls
    assert readout is pg.readout and figures.children == (pg.live.image,)
    assert pg.run is None and not pg.values["trained"] and "press Train" in pg.readout.value
    png = pg.live.image.value
    pg.button.click()                          # the button trains with the controls' values
    assert pg.values["trained"] and pg.live.image.value != png
    assert pg.run["config"] == {"dataset": "moons", "noise": 0.05, "width": 4, "depth": 1,
                                "activation": "relu", "lr": 0.1}
    pg.controls["noise"].value = 0.3           # new data: points regenerated, the run dropped
    X, y = PG.playground_data("moons", 0.3)
    np.testing.assert_array_equal(pg.X, X)
    np.testing.assert_array_equal(pg.points.get_offsets(), X)
    assert pg.run is None
    pg.button.click()
    pg.controls["lr"].value = 0.01             # a model change drops the run, even if undone
    pg.controls["lr"].value = 0.1
    assert pg.run is None and not pg.values["trained"]
    pg.controls["epoch"].value = 7             # the snapshot alone never trains
    assert pg.run is None and pg.values == {"trained": False, "snapshot": 7}
    assert "application/vnd.jupyter.widget-view+json" in pg._repr_mimebundle_()


def test_width_one_linear_model_cannot_fit_xor():
    X, y = PG.playground_data("xor", 0.0)
    lin = PG.train_playground(X, y, width=8, depth=1, activation="identity", lr=0.05)
    deep = PG.train_playground(X, y, width=8, depth=2, activation="tanh", lr=0.05)
    assert lin["acc"][-1] < 0.75 and deep["acc"][-1] > 0.97


def test_playground_bad_args():
    X, y = PG.playground_data("xor", 0.0)
    with pytest.raises(ValueError, match="dataset must be one of"):
        PG.playground_data("gauss", 0.1)
    with pytest.raises(ValueError, match=r"noise must be a finite number in \[0, 0.5\]"):
        PG.playground_data("xor", 2.0)
    with pytest.raises(ValueError, match="width must be an int >= 1"):
        PG.train_playground(X, y, width=0)
    with pytest.raises(ValueError, match="depth must be an int <= 4"):
        PG.train_playground(X, y, depth=9)
    with pytest.raises(ValueError, match="activation must be one of"):
        PG.train_playground(X, y, activation="elu")
    with pytest.raises(ValueError, match=r"lr must be a finite number in \(0, 1\]"):
        PG.train_playground(X, y, lr=0.0)
    with pytest.raises(ValueError, match=r"X must have shape \(n, 2\)"):
        PG.train_playground(X[:, :1], y)


# --------------------------------------------------------------------------------- gradient flow
@pytest.fixture(scope="module")
def flow():
    return GF.build_gradient_flow()


@pytest.mark.parametrize("act,scale,depth", [("sigmoid", 1.0, 10), ("relu", 1.41, 6), ("tanh", 2.5, 3),
                                             ("relu", 0.5, 20)])
def test_flow_table_equals_jax_grad_of_plain_mlp(flow, act, scale, depth):
    X, y, (Z_in, Z_h, Z_out) = GF.flow_problem()
    Ws = [scale * Z_in / np.sqrt(GF.N_IN)] + [scale * Z_h[k] / np.sqrt(GF.WIDTH) for k in range(depth - 1)]
    Ws.append(Z_out / np.sqrt(GF.WIDTH))
    f = {"sigmoid": jax.nn.sigmoid, "tanh": jnp.tanh, "relu": jax.nn.relu}[act]

    def loss(Ws):
        h = X
        for W in Ws[:-1]:
            h = f(h @ W)
        return -jnp.mean(jax.nn.log_softmax(h @ Ws[-1])[jnp.arange(len(y)), y])

    ref = [float(jnp.linalg.norm(g)) for g in jax.grad(loss)([jnp.asarray(W) for W in Ws])]
    got = flow.table["norms"][GF.ACTIVATIONS.index(act), GF.SCALES.index(scale), GF.DEPTHS.index(depth)]
    np.testing.assert_allclose(got[: depth + 1], ref, rtol=2e-4)
    assert np.all(np.isnan(got[depth + 1:]))


def test_flow_widget_shows_vanishing_and_stable(flow):
    before = flow.live.image.value
    flow.controls["activation"].value = "sigmoid"
    flow.controls["scale"].value = 1.0
    flow.controls["depth"].value = 20
    assert flow.live.image.value != before
    assert flow.values["norms"][0] < 1e-6 * flow.values["norms"][-1]  # sigmoid: vanishing
    np.testing.assert_allclose(flow.line.get_data()[1], np.clip(flow.values["norms"], 1e-20, None))
    flow.controls["activation"].value = "relu"
    flow.controls["scale"].value = 1.41  # He initialization
    assert 0.1 < flow.values["ratio_first_last"] < 10
    flow.controls["scale"].value = 3.0
    assert flow.values["norms"].max() > 1e3  # too large: exploding
    hist = flow.table["hist"][GF.ACTIVATIONS.index("relu"), GF.SCALES.index(3.0), GF.DEPTHS.index(20)]
    np.testing.assert_array_equal(hist.sum(axis=1), GF.N_IN * GF.WIDTH)  # every weight counted once


def test_flow_figure_is_readable(flow):
    """Integer ticks for layers (never 2.5), a named colour bar, labels not cut ("hidden la...")."""
    flow.controls["depth"].value = 3
    fig = flow.live.fig
    ax, ax_h = fig.axes[0], fig.axes[1]
    flow.live.redraw()
    for ticks in (ax.get_xticks(), ax_h.get_yticks()):
        np.testing.assert_array_equal(ticks, np.round(ticks))
    assert fig.axes[2].get_ylabel() == "weights per bin / largest bin"          # the colour bar
    assert all(c.style.description_width == "initial" for c in flow.controls.values())


def test_flow_bad_args():
    with pytest.raises(ValueError, match="activation must be one of"):
        GF.build_gradient_flow(activation="elu")
    with pytest.raises(ValueError, match="depth must be one of"):
        GF.build_gradient_flow(depth=7)
    with pytest.raises(ValueError, match="scale must be one of"):
        GF.build_gradient_flow(scale=0.3)


def test_gradient_flow_histogram_equals_numpy_at_and_around_the_edges():
    import jax.numpy as jnp
    rng = np.random.default_rng(0)
    edges = GF.BINS.astype(np.float32)
    near = np.concatenate([edges, np.nextafter(edges, np.float32(-np.inf)), np.nextafter(edges, np.float32(np.inf))])
    tiny = np.finfo(np.float32).tiny   # XLA on CPU flushes subnormals (the neighbours of 0) to 0
    near = np.where((near != 0) & (np.abs(near) < tiny), np.sign(near) * tiny, near)
    v = np.concatenate([rng.uniform(GF.BINS[0], GF.BINS[-1], (3, 500)).astype(np.float32),
                        np.tile(np.clip(near, GF.BINS[0], GF.BINS[-1]), (3, 1)).astype(np.float32)], axis=1)
    got = np.asarray(GF._histogram_rows(jnp.asarray(v)))
    want = np.stack([np.histogram(row, bins=edges)[0] for row in v])
    np.testing.assert_array_equal(got, want)
