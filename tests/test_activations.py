"""course_lib.activations against independent references.

Values: float64 NumPy/SciPy formulas. Derivatives: ``jax.grad``/``jax.jacfwd`` of JAX's own
``jax.nn`` functions AND central finite differences of the NumPy formulas in float64, each with a
relative error <= 1e-7. Points for ReLU/leaky ReLU stay away from the kink at 0; the value *at* 0
is tested separately against the documented convention.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special

from course_lib import activations as A

TOL = 1e-7


def rel_err(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape
    return float(np.max(np.abs(a - b) / np.maximum(1e-8, np.abs(a) + np.abs(b))))


def central_diff(f, x, h=1e-5):
    """Elementwise derivative of an elementwise NumPy function, float64 central differences."""
    x = np.asarray(x, dtype=np.float64)
    return (f(x + h) - f(x - h)) / (2 * h)


def fd_jacobian(f, x, h=1e-5):
    """Jacobian over the last axis of a row-wise NumPy function: out[..., i, j] = d f_i / d x_j."""
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[-1]
    cols = []
    for j in range(n):
        e = np.zeros(n)
        e[j] = h
        cols.append((f(x + e) - f(x - e)) / (2 * h))
    return np.stack(cols, axis=-1)


def np_sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


ALPHA = 0.1
NUMPY_REF = {
    "sigmoid": np_sigmoid,
    "tanh": np.tanh,
    "relu": lambda x: np.maximum(x, 0.0),
    "leaky_relu": lambda x: np.where(x > 0, x, ALPHA * x),
    "identity": lambda x: x,
}
JAX_REF = {
    "sigmoid": jax.nn.sigmoid,
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "leaky_relu": lambda x: jax.nn.leaky_relu(x, negative_slope=ALPHA),
    "identity": lambda x: x,
}
OURS = {
    "sigmoid": (A.sigmoid, A.sigmoid_grad),
    "tanh": (A.tanh, A.tanh_grad),
    "relu": (A.relu, A.relu_grad),
    "leaky_relu": (lambda x: A.leaky_relu(x, ALPHA), lambda x: A.leaky_relu_grad(x, ALPHA)),
    "identity": (A.identity, A.identity_grad),
}


@pytest.fixture
def points():
    """Points in [-6, 6], none within 0.05 of the kink at 0."""
    rng = np.random.default_rng(0)
    u = rng.uniform(0.05, 6.0, size=200)
    return u * rng.choice([-1.0, 1.0], size=200)


@pytest.mark.parametrize("name", list(OURS))
def test_values_match_numpy(name, points):
    f, _ = OURS[name]
    assert rel_err(f(points), NUMPY_REF[name](points)) <= 1e-12


def test_sigmoid_matches_scipy_expit():
    x = np.linspace(-30, 30, 121)
    assert rel_err(A.sigmoid(x), scipy.special.expit(x)) <= 1e-13


@pytest.mark.parametrize("name", list(OURS))
def test_derivative_matches_jax_grad(name, points):
    _, f_grad = OURS[name]
    expected = jax.vmap(jax.grad(JAX_REF[name]))(jnp.asarray(points))
    assert rel_err(f_grad(points), expected) <= TOL


@pytest.mark.parametrize("name", list(OURS))
def test_derivative_matches_finite_differences(name, points):
    _, f_grad = OURS[name]
    assert rel_err(f_grad(points), central_diff(NUMPY_REF[name], points)) <= TOL


@pytest.mark.parametrize("name", list(OURS))
def test_autodiff_of_our_function_equals_our_derivative(name, points):
    f, f_grad = OURS[name]
    assert rel_err(jax.vmap(jax.grad(f))(jnp.asarray(points)), f_grad(points)) <= TOL


def test_derivatives_at_the_kink_follow_the_documented_convention():
    zero = np.array([0.0])
    assert float(A.relu_grad(zero)[0]) == 0.0
    assert float(A.leaky_relu_grad(zero, 0.2)[0]) == 0.2        # the left slope, alpha
    assert float(A.leaky_relu_grad(zero, 0.0)[0]) == float(A.relu_grad(zero)[0])
    assert float(jax.grad(jax.nn.relu)(0.0)) == 0.0              # same convention as JAX
    assert float(jax.grad(lambda x: A.relu(x))(0.0)) == 0.0     # autodiff of ours agrees
    assert float(A.sigmoid_grad(0.0)) == 0.25 and float(A.tanh_grad(0.0)) == 1.0


def test_derivative_maxima():
    x = np.linspace(-10, 10, 2001)
    assert float(np.max(A.sigmoid_grad(x))) == pytest.approx(0.25, abs=1e-15)
    assert float(np.max(A.tanh_grad(x))) == pytest.approx(1.0, abs=1e-15)


@pytest.fixture
def logits():
    return np.random.default_rng(1).normal(size=(3, 4, 5))


def test_softmax_and_log_softmax_match_scipy(logits):
    for axis in (-1, 0, 1):
        assert rel_err(A.softmax(logits, axis=axis), scipy.special.softmax(logits, axis=axis)) <= 1e-13
        assert rel_err(A.log_softmax(logits, axis=axis),
                       scipy.special.log_softmax(logits, axis=axis)) <= 1e-13
    s = np.asarray(A.softmax(logits))
    np.testing.assert_allclose(s.sum(-1), 1.0, rtol=1e-14)
    assert np.all(s > 0)


JACOBIANS = {
    "softmax_jacobian": (A.softmax_jacobian, jax.nn.softmax, scipy.special.softmax),
    "log_softmax_jacobian": (A.log_softmax_jacobian, jax.nn.log_softmax, scipy.special.log_softmax),
}


@pytest.mark.parametrize("name", list(JACOBIANS))
def test_jacobian_matches_jacfwd_and_finite_differences(name, logits):
    ours, jax_ref, np_ref = JACOBIANS[name]
    J = np.asarray(ours(logits))
    assert J.shape == (3, 4, 5, 5)
    ref = jax.vmap(jax.jacfwd(jax_ref))(jnp.asarray(logits.reshape(-1, 5))).reshape(3, 4, 5, 5)
    assert rel_err(J, ref) <= TOL
    assert rel_err(J, fd_jacobian(lambda z: np_ref(z, axis=-1), logits)) <= TOL


def test_softmax_jacobian_is_symmetric_with_rows_summing_to_zero(logits):
    J = np.asarray(A.softmax_jacobian(logits))
    np.testing.assert_allclose(J, np.swapaxes(J, -1, -2), atol=1e-15)
    np.testing.assert_allclose(J.sum(-1), 0.0, atol=1e-15)


def test_jacobian_of_a_single_vector():
    x = np.array([1.0, 2.0, 0.5])
    assert A.softmax_jacobian(x).shape == (3, 3)
    assert rel_err(A.softmax_jacobian(x), jax.jacfwd(jax.nn.softmax)(jnp.asarray(x))) <= TOL


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_extreme_inputs_stay_finite(dtype):
    x = np.array([-1e4, -100.0, 0.0, 100.0, 1e4], dtype=dtype)
    for name, (f, f_grad) in OURS.items():
        assert np.all(np.isfinite(f(x))), name
        assert np.all(np.isfinite(f_grad(x))), name
        assert f(x).dtype == dtype, name
    np.testing.assert_array_equal(np.asarray(A.sigmoid(x))[[0, 4]], [0.0, 1.0])
    z = np.array([[1e4, -1e4, 0.0]], dtype=dtype)
    np.testing.assert_allclose(A.softmax(z), [[1.0, 0.0, 0.0]])
    np.testing.assert_allclose(A.log_softmax(z), [[0.0, -2e4, -1e4]])
    assert np.all(np.isfinite(A.softmax_jacobian(z))) and np.all(np.isfinite(A.log_softmax_jacobian(z)))
    g = jax.grad(lambda v: jnp.sum(A.log_softmax(v)[0, 1]))(jnp.asarray(z))
    assert np.all(np.isfinite(g))


def test_naive_log_of_softmax_fails_where_log_softmax_does_not():
    z = np.array([0.0, -200.0], dtype=np.float32)
    with np.errstate(divide="ignore"):
        naive = np.log(np.asarray(A.softmax(z)))
    assert np.isneginf(naive[1])                        # exp(-200) underflows in float32
    assert float(A.log_softmax(z)[1]) == pytest.approx(-200.0)


def test_works_inside_jit_grad_and_vmap():
    x = jnp.linspace(-2.0, 2.0, 7)
    np.testing.assert_allclose(jax.jit(A.sigmoid)(x), A.sigmoid(x))
    np.testing.assert_allclose(jax.jit(lambda v: A.softmax(v, axis=0))(x), A.softmax(x))
    np.testing.assert_allclose(jax.vmap(A.tanh)(x), A.tanh(x))
    np.testing.assert_allclose(jax.jit(A.leaky_relu)(x, 0.3), A.leaky_relu(x, 0.3))
    # alpha can be traced (a widget can vmap over it without recompiling)
    da = jax.grad(lambda a: jnp.sum(A.leaky_relu(x, a)))(0.3)
    assert float(da) == pytest.approx(float(jnp.sum(jnp.where(x > 0, 0.0, x))))


def test_float32_in_float32_out():
    x = np.linspace(-1, 1, 5, dtype=np.float32)
    for f in (A.sigmoid, A.sigmoid_grad, A.relu, A.softmax, A.log_softmax, A.softmax_jacobian):
        assert f(x).dtype == jnp.float32


def test_integer_input_is_cast_to_float():
    np.testing.assert_allclose(A.relu(np.array([-2, 3])), [0.0, 3.0])
    assert float(A.sigmoid(0)) == 0.5


def test_get_returns_function_and_derivative():
    for name in A.NAMES:
        f, f_grad = A.get(name)
        assert callable(f) and callable(f_grad)
    assert A.get("relu") == (A.relu, A.relu_grad)
    f, f_grad = A.get("identity")
    np.testing.assert_array_equal(f(np.array([1.5, -2.0])), [1.5, -2.0])
    np.testing.assert_array_equal(f_grad(np.array([1.5, -2.0])), [1.0, 1.0])


# ----------------------------------------------------------------------------- bad input
def test_get_rejects_unknown_name():
    with pytest.raises(ValueError, match="name must be one of .*'relu'.*got 'sigmoidd'"):
        A.get("sigmoidd")
    with pytest.raises(TypeError, match="name must be a string"):
        A.get(A.relu)


ALL_ELEMENTWISE = [A.sigmoid, A.sigmoid_grad, A.tanh, A.tanh_grad, A.relu, A.relu_grad, A.leaky_relu,
                   A.leaky_relu_grad, A.identity, A.identity_grad, A.softmax, A.log_softmax,
                   A.softmax_jacobian, A.log_softmax_jacobian]


@pytest.mark.parametrize("f", ALL_ELEMENTWISE, ids=lambda f: f.__name__)
def test_rejects_nan(f):
    with pytest.raises(ValueError, match="x must be finite, got 1 NaN"):
        f(np.array([0.5, np.nan, 1.0]))


@pytest.mark.parametrize("f", ALL_ELEMENTWISE, ids=lambda f: f.__name__)
def test_rejects_wrong_dtype(f):
    with pytest.raises(TypeError, match="x must be a floating-point array"):
        f("1.0")
    with pytest.raises(TypeError, match="x must be a real floating-point array"):
        f(np.array([1 + 2j, 3.0]))
    with pytest.raises(TypeError, match="x must be a floating-point array"):
        f([[1.0, 2.0], [3.0]])


@pytest.mark.parametrize("f", [A.leaky_relu, A.leaky_relu_grad])
def test_leaky_relu_rejects_bad_alpha(f):
    x = np.array([1.0, -1.0])
    with pytest.raises(ValueError, match=r"alpha must be a finite number in \[0, 1\), got 1.5"):
        f(x, alpha=1.5)
    with pytest.raises(ValueError, match=r"alpha must be a finite number in \[0, 1\), got -0.1"):
        f(x, alpha=-0.1)
    with pytest.raises(ValueError, match=r"alpha must be a finite number in \[0, 1\), got nan"):
        f(x, alpha=float("nan"))
    with pytest.raises(TypeError, match="alpha must be a number, got str"):
        f(x, alpha="0.1")
    with pytest.raises(TypeError, match="alpha must be a number, got bool"):
        f(x, alpha=True)
    with pytest.raises(TypeError, match="alpha must be a number, got ndarray"):   # one slope, not one per unit
        f(x, alpha=np.array([0.1, 0.2]))


@pytest.mark.parametrize("f", [A.softmax, A.log_softmax])
def test_softmax_rejects_bad_axis_and_scalars(f):
    x = np.ones((2, 3))
    with pytest.raises(ValueError, match=r"axis must be in \[-2, 1\].*got 2"):
        f(x, axis=2)
    with pytest.raises(TypeError, match="axis must be an int"):
        f(x, axis=1.0)
    with pytest.raises(TypeError, match="axis must be an int"):
        f(x, axis=True)
    with pytest.raises(ValueError, match="x must have at least 1 dimension"):
        f(1.0)


@pytest.mark.parametrize("f", [A.softmax, A.log_softmax, A.softmax_jacobian, A.log_softmax_jacobian])
def test_softmax_rejects_an_empty_axis(f):
    """A softmax over no classes has no value (JAX would fail in its max reduction); an empty batch
    is fine."""
    with pytest.raises(ValueError, match=r"x must not be empty along axis 1, got shape \(2, 0\)"):
        f(np.ones((2, 0)))
    assert f(np.ones((0, 3))).shape[0] == 0


@pytest.mark.parametrize("f", [A.softmax_jacobian, A.log_softmax_jacobian])
def test_jacobians_reject_scalars(f):
    with pytest.raises(ValueError, match="x must have at least 1 dimension"):
        f(np.float64(2.0))


# ----------------------------------------------------------------------------- properties (hypothesis)
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra.numpy import arrays  # noqa: E402


@settings(max_examples=40, deadline=None)
@given(x=arrays(np.float64, (5, 4), elements=st.floats(-700.0, 700.0, allow_nan=False)),
       shift=st.floats(-100.0, 100.0))
def test_softmax_properties(x, shift):
    s = np.asarray(A.softmax(x))
    assert np.all(np.isfinite(s)) and np.all(s >= 0)
    np.testing.assert_allclose(s.sum(-1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(A.softmax(x + shift)), s, rtol=1e-6, atol=1e-300)
    np.testing.assert_allclose(np.exp(np.asarray(A.log_softmax(x))), s, rtol=1e-12, atol=1e-300)


@settings(max_examples=40, deadline=None)
@given(x=arrays(np.float64, (16,), elements=st.floats(-700.0, 700.0, allow_nan=False)))
def test_sigmoid_symmetry_and_range(x):
    s = np.asarray(A.sigmoid(x))
    assert np.all((s >= 0) & (s <= 1))
    np.testing.assert_allclose(np.asarray(A.sigmoid(-x)), 1 - s, atol=1e-15)
    # sigma(x) (1 - sigma(x)) = sigma(x) sigma(-x): the right side has no cancelling subtraction
    # (for x = 17, 1 - sigma(x) computed by subtraction is already off by 3e-9 relative)
    ref = scipy.special.expit(x) * scipy.special.expit(-x)
    np.testing.assert_allclose(np.asarray(A.sigmoid_grad(x)), ref, rtol=1e-12, atol=1e-300)
