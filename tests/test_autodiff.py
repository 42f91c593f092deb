"""course_lib.autodiff: the from-scratch engine gives jax.grad's gradients (float64) on random graphs."""
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib import autodiff, backprop, layers
from course_lib.autodiff import Tensor

UNARY = ("tanh", "exp", "log", "relu", "neg", "sum0", "sum1")
BINARY = ("add", "mul", "sub", "add_bias", "mul_bias", "matmul", "radd", "rsub")


def random_program(seed, n_ops=12):
    """A random graph over three (3, 4) inputs, a (4,) bias and a (4, 4) matrix, ending in a
    softmax cross-entropy. Every node is (3, 4); each op reads one or two earlier nodes chosen at
    random (so nodes fan out and gradients must add up). ``run`` evaluates it with either library."""
    rng = np.random.default_rng(seed)
    inputs = [rng.normal(size=(3, 4)) for _ in range(3)] + [rng.normal(size=4), rng.normal(size=(4, 4)) / 2]
    ops = []
    for i in range(n_ops):                           # node 3 + i reads nodes among 0 .. 2 + i
        a, b = (int(j) for j in rng.integers(0, 3 + i, size=2))
        ops.append((str(rng.choice(UNARY + BINARY)), a, b))
    ops.append(("softmax_ce", 2 + n_ops, None))
    labels = rng.integers(0, 4, size=3)
    return ops, inputs, labels


def run(ops, inputs, labels, lib):
    """Evaluate the program with the engine (lib="engine") or with jax.numpy (lib="jax")."""
    if lib == "engine":
        xs = list(inputs)
        tanh, exp, log, relu = Tensor.tanh, Tensor.exp, Tensor.log, Tensor.relu
        ce = autodiff.softmax_cross_entropy
        summ = lambda v, ax: v.sum(axis=ax)  # noqa: E731
    else:
        xs = list(inputs)
        tanh, exp, log, relu = jnp.tanh, jnp.exp, jnp.log, jax.nn.relu
        ce = lambda z, y: -jnp.mean(jax.nn.log_softmax(z)[jnp.arange(z.shape[0]), y])  # noqa: E731
        summ = lambda v, ax: jnp.sum(v, axis=ax)  # noqa: E731
    nodes = xs[:3]
    bias, W = xs[3], xs[4]
    for kind, a, b in ops:
        x = nodes[a]
        if kind == "tanh":
            out = tanh(x)
        elif kind == "exp":
            out = exp(tanh(x))                      # bounded: no overflow whatever the graph
        elif kind == "log":
            out = log(x * x + 1.0)                  # positive argument
        elif kind == "relu":
            out = relu(x)
        elif kind == "neg":
            out = -x
        elif kind == "sum0":
            out = x + summ(x, 0)                    # (4,) broadcast back over the rows
        elif kind == "sum1":
            s = summ(x, 1)                          # (3,)
            out = x * tanh(s.sum() * 0.1)           # a scalar node broadcast over (3, 4)
        elif kind == "add":
            out = x + nodes[b]
        elif kind == "mul":
            out = tanh(x * nodes[b])
        elif kind == "sub":
            out = x - nodes[b]
        elif kind == "add_bias":
            out = x + bias
        elif kind == "mul_bias":
            out = x * bias
        elif kind == "matmul":
            out = tanh(x @ W)
        elif kind == "radd":
            out = 0.5 + x
        elif kind == "rsub":
            out = 1.0 - x
        elif kind == "softmax_ce":
            return ce(x, labels)
        nodes.append(out)
    raise AssertionError("program without a loss")


def engine_grads(ops, inputs, labels):
    leaves = [Tensor(v) for v in inputs]
    loss = run(ops, leaves, labels, "engine")
    loss.backward()
    return float(loss.data), [leaf.grad for leaf in leaves]


def jax_grads(ops, inputs, labels):
    f = lambda xs: run(ops, xs, labels, "jax")  # noqa: E731
    value, grads = jax.value_and_grad(f)([jnp.asarray(v) for v in inputs])
    return float(value), [np.asarray(g) for g in grads]


@settings(max_examples=60, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**31 - 1), n_ops=st.integers(1, 16))
def test_random_graphs_match_jax_grad(seed, n_ops):
    ops, inputs, labels = random_program(seed, n_ops)
    v_mine, g_mine = engine_grads(ops, inputs, labels)
    v_ref, g_ref = jax_grads(ops, inputs, labels)
    assert v_mine == pytest.approx(v_ref, rel=1e-12, abs=1e-14)
    for mine, ref in zip(g_mine, g_ref):
        np.testing.assert_allclose(mine, ref, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("seed", range(20))
def test_seeded_random_graphs_match_jax_grad(seed):
    ops, inputs, labels = random_program(1000 + seed, n_ops=25)
    _, g_mine = engine_grads(ops, inputs, labels)
    _, g_ref = jax_grads(ops, inputs, labels)
    for mine, ref in zip(g_mine, g_ref):
        np.testing.assert_allclose(mine, ref, rtol=1e-9, atol=1e-12)


def test_each_rule_against_jax_grad():
    rng = np.random.default_rng(0)
    x = rng.uniform(0.5, 2.0, size=(2, 3))
    for name, f_engine, f_jax in (
            ("tanh", lambda t: t.tanh(), jnp.tanh), ("exp", lambda t: t.exp(), jnp.exp),
            ("log", lambda t: t.log(), jnp.log), ("relu", lambda t: (t - 1.0).relu(), lambda v: jax.nn.relu(v - 1.0)),
            ("square", lambda t: t * t, lambda v: v * v), ("neg", lambda t: -t, lambda v: -v),
            ("rmatmul", lambda t: np.ones((4, 2)) @ t, lambda v: jnp.ones((4, 2)) @ v)):
        leaf = Tensor(x)
        w = rng.normal(size=f_engine(Tensor(x)).shape)
        (f_engine(leaf) * w).sum().backward()
        ref = jax.grad(lambda v: jnp.sum(f_jax(v) * w))(x)
        np.testing.assert_allclose(leaf.grad, ref, rtol=1e-12, atol=1e-15, err_msg=name)


def test_fan_out_adds_the_contributions():
    x = Tensor(3.0)
    y = x * x + x                                  # x used three times: dy/dx = 2x + 1
    y.backward()
    assert x.grad == pytest.approx(7.0)


def test_backward_twice_gives_the_same_gradient_not_twice_it():
    x = Tensor([1.0, -2.0])
    loss = (x * x).sum()
    loss.backward()
    loss.backward()
    np.testing.assert_allclose(x.grad, [2.0, -4.0])


def test_broadcast_bias_gets_the_sum_over_rows():
    x = Tensor(np.arange(6.0).reshape(3, 2))
    b = Tensor([0.5, -1.0])
    (x + b).sum().backward()
    np.testing.assert_allclose(b.grad, [3.0, 3.0])
    assert b.grad.shape == (2,)
    c = Tensor([[2.0]])                             # (1, 1) stretched over (3, 2)
    (x * c).sum().backward()
    np.testing.assert_allclose(c.grad, [[15.0]])


def test_softmax_cross_entropy_matches_jax_and_is_stable():
    rng = np.random.default_rng(1)
    z = rng.normal(size=(5, 4)) * 300.0            # large logits: no overflow
    y = rng.integers(0, 4, size=5)
    t = Tensor(z)
    loss = autodiff.softmax_cross_entropy(t, y)
    loss.backward()
    ref_f = lambda v: -jnp.mean(jax.nn.log_softmax(v)[jnp.arange(5), y])  # noqa: E731
    assert float(loss.data) == pytest.approx(float(ref_f(z)), rel=1e-12)
    np.testing.assert_allclose(t.grad, jax.grad(ref_f)(z), rtol=1e-10, atol=1e-14)


def test_engine_rederives_chapter_06_mlp_gradients():
    rng = np.random.default_rng(2)
    params = layers.init_mlp((5, 7, 6, 3), "he", seed=2, dtype=np.float64)
    x, y = rng.normal(size=(9, 5)), rng.integers(0, 3, size=9)
    leaves = [{k: Tensor(np.asarray(v)) for k, v in p.items()} for p in params]
    h = Tensor(x)
    for l, p in enumerate(leaves):
        h = h @ p["W"] + p["b"]
        h = h.relu() if l < len(leaves) - 1 else h
    loss = autodiff.softmax_cross_entropy(h, y)
    loss.backward()
    ref_loss, ref = backprop.loss_and_grads(params, x, y, "relu")
    assert float(loss.data) == pytest.approx(float(ref_loss), rel=1e-12)
    for mine, theirs in zip(leaves, ref):
        for k in ("W", "b"):
            np.testing.assert_allclose(mine[k].grad, theirs[k], rtol=1e-10, atol=1e-14)


def test_topological_order_puts_parents_first_and_lists_each_node_once():
    a, b = Tensor(1.0, "a"), Tensor(2.0, "b")
    c = a * b
    d = c + a
    order = autodiff.topological_order(d)
    assert order.index(a) < order.index(c) < order.index(d) and order.index(b) < order.index(c)
    assert len(order) == len({id(n) for n in order}) == 4
    assert d.op == "+" and a.op == "" and d.parents == (c, a)


def _recursive_order(root):
    """The textbook depth-first search (chapter 16's exercise 4), for graphs of modest depth."""
    order, seen = [], set()

    def visit(node):
        if id(node) not in seen:
            seen.add(id(node))
            for parent in node.parents:
                visit(parent)
            order.append(node)
    visit(root)
    return order


@pytest.mark.parametrize("seed", range(10))
def test_topological_order_is_the_recursive_depth_first_order(seed):
    ops, inputs, labels = random_program(2000 + seed, n_ops=20)
    loss = run(ops, [Tensor(v) for v in inputs], labels, "engine")
    assert [id(n) for n in autodiff.topological_order(loss)] == [id(n) for n in _recursive_order(loss)]


def test_a_graph_deeper_than_the_recursion_limit():
    import sys

    x = Tensor(0.3)
    h = x
    depth = sys.getrecursionlimit() + 1000
    for _ in range(depth // 2):                    # tanh(h) * 1.0: a tanh, a constant and a product
        h = h.tanh() * 1.0
    h.backward()
    assert len(autodiff.topological_order(h)) == 3 * (depth // 2) + 1   # every node, the constants too
    value, grad = 0.3, 1.0
    for _ in range(depth // 2):                    # the chain rule by hand: d tanh(v)/dv = 1 - tanh(v)^2
        grad *= 1.0 - np.tanh(value) ** 2
        value = np.tanh(value)
    assert float(h.data) == pytest.approx(value, rel=1e-12) and float(x.grad) == pytest.approx(grad, rel=1e-9)


def test_unbroadcast_sums_added_and_stretched_axes():
    g = np.arange(24.0).reshape(2, 3, 4)
    for shape in ((2, 3, 4), (3, 4), (4,), (3, 1), (1, 1, 4), (2, 1, 1), ()):
        ref = jax.grad(lambda a: jnp.sum(jnp.broadcast_to(a, g.shape) * g))(jnp.zeros(shape))
        np.testing.assert_allclose(autodiff.unbroadcast(g, shape), ref, rtol=1e-12)
        assert np.shape(autodiff.unbroadcast(g, shape)) == shape


def test_each_result_records_its_parents_op_and_rule():
    a, b = Tensor(2.0, "a"), Tensor(5.0, "b")
    c = a * b
    assert c.parents == (a, b) and c.op == "*" and a.backward_rule is None
    c.backward_rule(np.array(3.0))                # dJ/dc = 3: a receives 3 b, b receives 3 a
    assert float(a.grad) == 15.0 and float(b.grad) == 6.0


def test_float64_whatever_jax_mode():
    with jax.enable_x64(False):
        t = Tensor(jnp.float32(0.5))
        u = Tensor(0.1)
    assert t.data.dtype == np.float64 and u.data == 0.1


def test_engine_fits_in_200_lines():
    source = pathlib.Path(autodiff.__file__).read_text().splitlines()
    assert len(source) <= 200


# ------------------------------------------------------------------------------ bad input
def test_bad_data_is_rejected_with_the_argument_named():
    with pytest.raises(TypeError, match="data"):
        Tensor("1.0")
    with pytest.raises(TypeError, match="data"):
        Tensor(np.array([1 + 2j]))
    with pytest.raises(ValueError, match="data"):
        Tensor([1.0, np.nan])
    with pytest.raises(TypeError, match="name"):
        Tensor(1.0, name=3)
    with pytest.raises(TypeError, match="data"):
        Tensor(1.0) + "x"


def test_bad_operations_are_rejected():
    with pytest.raises(ValueError, match="inner sizes"):
        Tensor(np.ones((2, 3))) @ Tensor(np.ones((2, 3)))
    with pytest.raises(ValueError, match="2-D"):
        Tensor(np.ones(3)) @ Tensor(np.ones((3, 2)))
    with pytest.raises(ValueError, match="axis"):
        Tensor(np.ones((2, 3))).sum(axis=2)
    with pytest.raises(TypeError, match="axis must be an int, got bool"):
        Tensor(np.ones((2, 3))).sum(axis=True)
    with pytest.raises(ValueError, match="positive"):
        Tensor([1.0, 0.0]).log()
    with pytest.raises(ValueError, match="scalar"):
        Tensor([1.0, 2.0]).backward()
    with pytest.raises(TypeError, match="root"):
        autodiff.topological_order(np.ones(2))


def test_bad_cross_entropy_arguments():
    z = Tensor(np.zeros((2, 3)))
    with pytest.raises(TypeError, match="logits"):
        autodiff.softmax_cross_entropy(np.zeros((2, 3)), [0, 1])
    with pytest.raises(ValueError, match="logits"):
        autodiff.softmax_cross_entropy(Tensor(np.zeros(3)), [0])
    with pytest.raises(TypeError, match="labels"):
        autodiff.softmax_cross_entropy(z, [0.0, 1.0])
    with pytest.raises(ValueError, match="labels"):
        autodiff.softmax_cross_entropy(z, [0, 3])
    with pytest.raises(ValueError, match="labels"):
        autodiff.softmax_cross_entropy(z, [-1, 0])
    with pytest.raises(ValueError, match="labels"):
        autodiff.softmax_cross_entropy(z, [0])
