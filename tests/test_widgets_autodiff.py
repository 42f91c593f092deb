"""Chapter 16's graph explorer, driven headlessly: the numbers it shows are the engine's and jax.grad's."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from course_lib import autodiff
from course_lib.widgets import autodiff_graph as AG


def _jax_loss(p, y=AG.TARGET):
    return (jnp.tanh(p["x1"] * p["w1"] + p["x2"] * p["w2"] + p["b"]) - y) ** 2


@pytest.fixture(scope="module")
def explorer():
    return AG.build_autodiff_graph()


def test_every_control_changes_the_picture_and_the_gradients_are_jax_grad(explorer):
    for name, value in (("x1", -1.5), ("w1", 0.75), ("x2", 1.25), ("w2", -2.0), ("b", 1.0)):
        before = explorer.live.image.value
        explorer.controls[name].value = value
        assert explorer.live.image.value != before, name
        point = {k: explorer.controls[k].value for k in AG.INPUTS}
        ref = jax.grad(_jax_loss)(point)
        for k in AG.INPUTS:
            assert explorer.values["grads"][k] == pytest.approx(float(ref[k]), rel=1e-9, abs=1e-12)
        assert explorer.values["J"] == pytest.approx(float(_jax_loss(point)), rel=1e-12)
    before = explorer.live.image.value
    explorer.controls["along"].value = "b"
    assert explorer.live.image.value != before


def test_the_curve_is_J_along_the_chosen_input_and_the_tangent_has_its_gradient(explorer):
    explorer.controls["along"].value = "x2"
    point = {k: explorer.controls[k].value for k in AG.INPUTS}
    sweep = np.asarray(explorer.curve.get_xdata())
    want = [float(_jax_loss({**point, "x2": v})) for v in sweep]
    np.testing.assert_allclose(explorer.curve.get_ydata(), want, rtol=1e-12, atol=1e-14)
    xs, ys = explorer.tangent.get_data()
    slope = (ys[1] - ys[0]) / (xs[1] - xs[0])
    assert slope == pytest.approx(float(jax.grad(_jax_loss)(point)["x2"]), rel=1e-9, abs=1e-12)
    # the node texts carry value and gradient of every node of the engine's graph
    J, _ = AG.neuron_graph(*(point[k] for k in AG.INPUTS))
    order = autodiff.topological_order(J)
    assert [t.get_text() for t in explorer.texts] == [f"{float(n.grad):+.2f}" for n in order]
    assert all(f"{float(n.data):+.3f}" in explorer.readout.value for n in order)


def test_layout_puts_each_node_right_of_its_parents_and_apart_in_its_column():
    J, _ = AG.neuron_graph(1.0, -0.5, 0.5, 1.0, 0.2)
    order, xy = AG.graph_layout(J)
    index = {id(n): i for i, n in enumerate(order)}
    for i, node in enumerate(order):
        for p in node.parents:
            assert xy[index[id(p)], 0] < xy[i, 0]
    for column in np.unique(xy[:, 0]):
        ys = np.sort(xy[xy[:, 0] == column, 1])
        assert np.all(np.diff(ys) >= 1.0 - 1e-12)


def test_draw_graph_draws_any_engine_graph():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    W = autodiff.Tensor(np.ones((3, 2)), "W")
    loss = autodiff.softmax_cross_entropy(autodiff.Tensor(np.ones((4, 3)), "x") @ W, [0, 1, 0, 1])
    fig, ax = plt.subplots()
    order, rings, texts = AG.draw_graph(ax, loss, values=False)
    assert len(order) == 4 and len(texts) == 8 and rings.get_offsets().shape == (4, 2)
    assert [t.get_text() for t in texts[:4]] == ["x", "W", "@", "softmax-CE"]
    plt.close(fig)


def test_bad_arguments():
    with pytest.raises(ValueError, match="x1"):
        AG.build_autodiff_graph(x1=5.0)
    with pytest.raises(TypeError, match="b must be a number, got str"):
        AG.build_autodiff_graph(b="1")
    with pytest.raises(ValueError, match="along"):
        AG.build_autodiff_graph(along="y")
