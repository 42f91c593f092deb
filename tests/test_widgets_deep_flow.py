"""Chapter 17's gradient-flow view: each network's table equals jax.grad of that network, written again."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from course_lib.widgets import deep_flow as DF
from course_lib.widgets import gradient_flow as GF


@pytest.fixture(scope="module")
def flow():
    return DF.build_deep_flow()


def _ln(h):
    return (h - h.mean(-1, keepdims=True)) / jnp.sqrt(h.var(-1, keepdims=True) + 1e-5)


def _bn(h):
    return (h - h.mean(0)) / jnp.sqrt(h.var(0) + 1e-5)


@pytest.mark.parametrize("network,act,scale,depth", [
    ("plain", "sigmoid", 1.0, 10), ("batchnorm", "sigmoid", 1.0, 20), ("batchnorm", "relu", 1.41, 6),
    ("residual", "tanh", 2.5, 12), ("residual", "relu", 1.0, 20), ("residual+layernorm", "sigmoid", 0.5, 8),
    ("residual+layernorm", "relu", 3.0, 20)])
def test_table_equals_jax_grad_of_the_network(flow, network, act, scale, depth):
    X, y, (Z_in, Z_h, Z_out) = GF.flow_problem()
    s_h = scale / np.sqrt(max(depth - 1, 1)) if network == "residual" else scale
    Ws = [scale * Z_in / np.sqrt(GF.N_IN)] + [s_h * Z_h[k] / np.sqrt(GF.WIDTH) for k in range(depth - 1)]
    Ws.append(Z_out / np.sqrt(GF.WIDTH))
    f = {"sigmoid": jax.nn.sigmoid, "tanh": jnp.tanh, "relu": jax.nn.relu}[act]
    block = {"plain": lambda h, W: f(h @ W), "batchnorm": lambda h, W: f(_bn(h @ W)),
             "residual": lambda h, W: h + f(h) @ W, "residual+layernorm": lambda h, W: h + f(_ln(h)) @ W}[network]

    def loss(Ws):
        h = f(X @ Ws[0])
        for W in Ws[1:-1]:
            h = block(h, W)
        return -jnp.mean(jax.nn.log_softmax(h @ Ws[-1])[jnp.arange(len(y)), y])

    ref = [float(jnp.linalg.norm(g)) for g in jax.grad(loss)([jnp.asarray(W) for W in Ws])]
    got = flow.tables[network]["norms"][GF.ACTIVATIONS.index(act), GF.SCALES.index(scale), GF.DEPTHS.index(depth)]
    np.testing.assert_allclose(got[: depth + 1], ref, rtol=2e-4)
    assert np.all(np.isnan(got[depth + 1:]))


def test_plain_table_is_chapter_06s(flow):
    ref = GF.gradient_flow_table()
    np.testing.assert_allclose(flow.tables["plain"]["norms"], ref["norms"], rtol=1e-5, equal_nan=True)


def test_controls_change_the_picture_and_the_network_decides_the_flow(flow):
    for name, value in (("network", "batchnorm"), ("depth", 15), ("scale", 0.5), ("activation", "relu"),
                        ("network", "residual")):
        before = flow.live.image.value
        flow.controls[name].value = value
        assert flow.live.image.value != before, name
        assert flow.values["network"] == flow.controls["network"].value
    flow.controls["activation"].value, flow.controls["depth"].value, flow.controls["scale"].value = "sigmoid", 20, 1.0
    ratios = {}
    for network in ("plain", "batchnorm", "residual", "residual+layernorm"):
        flow.controls["network"].value = network
        ratios[network] = flow.values["ratio_first_last"]
        assert network in flow.readout.value
    # chapter 06's vanishing sigmoid network; normalization and the residual path keep the gradient
    assert ratios["plain"] < 1e-10
    assert all(1e-2 < ratios[n] < 1e2 for n in ("batchnorm", "residual", "residual+layernorm"))


def test_bad_arguments():
    with pytest.raises(ValueError, match="network"):
        DF.build_deep_flow(network="resnet")
    with pytest.raises(ValueError, match="depth"):
        DF.build_deep_flow(depth=7)
    with pytest.raises(ValueError, match="activation"):
        DF.build_deep_flow(activation="elu")
    with pytest.raises(ValueError, match="scale"):
        DF.build_deep_flow(scale=0.3)
    with pytest.raises(ValueError, match="seed"):
        DF.build_deep_flow(seed=-1)


def test_the_seed_reaches_the_tables(flow, monkeypatch):
    seeds = []
    monkeypatch.setattr(DF, "deep_flow_tables", lambda seed=0: seeds.append(seed) or flow.tables)
    DF.build_deep_flow(seed=3)
    assert seeds == [3]
