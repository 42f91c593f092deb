"""course_lib.conv (the plain reference) against jax.lax (conv_general_dilated, reduce_window),
jax.grad, finite differences, optax and float64 numpy loops.

Property-based (hypothesis) over random shapes, paddings, strides and dilations, in float64. The
fast wing (course_lib.fast.conv) is tested equal to this reference in tests/test_fast_conv.py.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jax import lax

from course_lib import conv

TOL = dict(rtol=1e-6, atol=1e-6)
SETTINGS = settings(max_examples=15, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])


def _lax_conv(x, w, b, stride, pads, dilation):
    out = lax.conv_general_dilated(x, w, stride, pads, rhs_dilation=dilation,
                                   dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return out if b is None else out + b


@st.composite
def conv_problems(draw):
    n, c, o = draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.integers(1, 4))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    kind = draw(st.sampled_from(["valid", "same", "int", "explicit"]))
    padding = {"valid": "valid", "same": "same", "int": draw(st.integers(0, 2)),
               "explicit": ((draw(st.integers(0, 3)), draw(st.integers(0, 3))),
                            (draw(st.integers(0, 3)), draw(st.integers(0, 3))))}[kind]
    h = draw(st.integers(dilation[0] * (kh - 1) + 1, 10))
    w = draw(st.integers(dilation[1] * (kw - 1) + 1, 10))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, h, w, c))
    wt = rng.standard_normal((kh, kw, c, o))
    b = rng.standard_normal(o) if draw(st.booleans()) else None
    return x, wt, b, stride, padding, dilation, rng


@SETTINGS
@given(conv_problems())
def test_conv2d_values_and_grads_equal_lax(problem):
    x, w, b, stride, padding, dilation, rng = problem
    pads = conv.resolve_padding(padding, x.shape[1:3], w.shape[:2], stride, dilation)
    ref = _lax_conv(x, w, b, stride, pads, dilation)
    got = conv.conv2d(x, w, b, stride=stride, padding=padding, dilation=dilation)
    assert got.shape == ref.shape == conv.conv_output_shape(x.shape, w.shape, stride, padding, dilation)
    np.testing.assert_allclose(got, ref, **TOL)
    g = rng.standard_normal(ref.shape)
    args = (x, w) if b is None else (x, w, b)
    ref_grads = jax.vjp(lambda *a: _lax_conv(*a, *([None] if b is None else []), stride, pads,
                                             dilation), *args)[1](g)
    # 1) hand-written backward, layer contract
    out, cache = conv.conv2d_forward(x, w, b, stride=stride, padding=padding, dilation=dilation)
    np.testing.assert_allclose(out, ref, **TOL)
    dx, dw, db = conv.conv2d_backward(g, cache)
    np.testing.assert_allclose(dx, ref_grads[0], **TOL)
    np.testing.assert_allclose(dw, ref_grads[1], **TOL)
    if b is None:
        assert db is None
    else:
        np.testing.assert_allclose(db, ref_grads[2], **TOL)
    # 2) jax.vjp through the public function (autodiff of the loop over taps)
    got_grads = jax.vjp(lambda *a: conv.conv2d(*a, stride=stride, padding=padding,
                                               dilation=dilation), *args)[1](g)
    for a, r in zip(got_grads, ref_grads):
        np.testing.assert_allclose(a, r, **TOL)
    # 3) the im2col form: one matrix product
    cols = conv.im2col(x, w.shape[:2], stride=stride, padding=padding, dilation=dilation)
    assert cols.shape == ref.shape[:3] + (w.shape[0] * w.shape[1] * w.shape[2],)
    np.testing.assert_allclose(cols @ w.reshape(-1, w.shape[3]) + (0 if b is None else b), ref, **TOL)


def test_im2col_rows_are_the_windows_in_kernel_order():
    x = np.random.default_rng(4).standard_normal((2, 7, 6, 3))
    cols = np.asarray(conv.im2col(x, (3, 2), stride=(2, 1), padding=((1, 0), (0, 1)), dilation=(1, 2)))
    xp = np.pad(x, ((0, 0), (1, 0), (0, 1), (0, 0)))
    assert cols.shape == (2, 3, 5, 3 * 2 * 3)
    for y in range(3):
        for xx in range(5):
            window = xp[:, 2 * y: 2 * y + 3, xx: xx + 3: 2, :]       # rows y*2 + i, columns x + 2j
            np.testing.assert_array_equal(cols[:, y, xx], window.reshape(2, -1))


def test_tap_slices_read_every_output_position_of_one_tap():
    xp = np.arange(2 * 9 * 10 * 1).reshape(2, 9, 10, 1)
    block = xp[conv.tap_slices(2, 1, (3, 4), stride=(3, 2), dilation=(1, 2))]
    assert block.shape == (2, 3, 4, 1)
    for y in range(3):
        for x in range(4):
            assert block[1, y, x, 0] == xp[1, y * 3 + 2 * 1, x * 2 + 1 * 2, 0]


@pytest.mark.parametrize("stride,padding,dilation", [(1, "same", 1), (2, 1, 1), ((1, 2), "valid", 2)])
def test_jax_grad_of_jitted_network_equals_lax(stride, padding, dilation):
    rng = np.random.default_rng(5)
    x, w, b = rng.standard_normal((2, 9, 8, 3)), rng.standard_normal((3, 3, 3, 4)), rng.standard_normal(4)
    pads = conv.resolve_padding(padding, (9, 8), (3, 3), stride, dilation)

    def loss(conv_fn, x, w, b):
        h = jnp.tanh(conv_fn(x, w, b))
        return jnp.sum(conv.max_pool2d(h, 2) ** 2) if conv_fn is not _ref else \
            jnp.sum(_rw(h, (2, 2), None, "max") ** 2)

    def ours(x, w, b):
        return conv.conv2d(x, w, b, stride=stride, padding=padding, dilation=dilation)

    def _ref(x, w, b):
        return _lax_conv(x, w, b, _pair(stride), pads, _pair(dilation))

    got = jax.jit(jax.grad(lambda *a: loss(ours, *a), argnums=(0, 1, 2)))(x, w, b)   # traced: works in jit
    ref = jax.grad(lambda *a: loss(_ref, *a), argnums=(0, 1, 2))(x, w, b)
    for a, r in zip(got, ref):
        np.testing.assert_allclose(a, r, **TOL)


def _pair(v):
    return (v, v) if isinstance(v, int) else v


def test_conv2d_matches_float64_numpy_loop():
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((2, 6, 5, 3)), rng.standard_normal((3, 2, 3, 4)), rng.standard_normal(4)
    out = np.zeros((2, 4, 4, 4))
    for n in range(2):
        for y in range(4):
            for xx in range(4):
                out[n, y, xx] = np.einsum("ijc,ijco->o", x[n, y:y + 3, xx:xx + 2], w) + b
    np.testing.assert_allclose(conv.conv2d(x, w, b), out, **TOL)


def test_conv2d_gradient_matches_finite_differences():
    from course_lib import checks

    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((1, 5, 5, 2)), rng.standard_normal((3, 3, 2, 2))
    f = lambda w_: jnp.sum(jnp.sin(conv.conv2d(x, w_, stride=2, padding="same")))
    np.testing.assert_allclose(jax.grad(f)(w), checks.numerical_gradient(f, w), rtol=1e-6, atol=1e-7)


def test_convolution_is_flipped_correlation():
    rng = np.random.default_rng(2)
    img, k = rng.standard_normal((7, 7)), rng.standard_normal((3, 3))
    from scipy.signal import convolve2d, correlate2d

    ours = conv.conv2d(img[None, :, :, None], k[:, :, None, None])[0, :, :, 0]
    np.testing.assert_allclose(ours, correlate2d(img, k, mode="valid"), **TOL)
    flipped = conv.conv2d(img[None, :, :, None], k[::-1, ::-1, None, None])[0, :, :, 0]
    np.testing.assert_allclose(flipped, convolve2d(img, k, mode="valid"), **TOL)


@pytest.mark.parametrize("n,k,s,p,d,expected", [
    (28, 3, 1, 1, 1, 28), (28, 5, 1, 0, 1, 24), (32, 3, 2, 1, 1, 16), (7, 3, 2, 0, 1, 3),
    (10, 3, 1, 0, 2, 6), (227, 11, 4, 0, 1, 55), (5, 2, 2, (0, 1), 1, 3)])
def test_conv_output_size_formula(n, k, s, p, d, expected):
    assert conv.conv_output_size(n, k, s, p, d) == expected


def test_same_padding_keeps_size_and_matches_lax():
    assert conv.resolve_padding("same", (28, 28), (3, 3)) == ((1, 1), (1, 1))
    assert conv.resolve_padding("same", (8, 8), (4, 4)) == ((1, 2), (1, 2))
    pads = lax.padtype_to_pads((9, 10), (5, 3), (2, 3), "SAME")
    assert conv.resolve_padding("same", (9, 10), (3, 3), (2, 3), (2, 1)) == tuple(map(tuple, pads))


def test_param_counts():
    assert conv.conv_param_count(3, 3, 8, 16) == 3 * 3 * 8 * 16 + 16 == 1168
    assert conv.conv_param_count(3, 3, 8, 16, bias=False) == 1152
    assert conv.dense_param_count(28 * 28 * 8, 28 * 28 * 16) == 6272 * 12544 + 12544


# --------------------------------------------------------------------------- pooling
@st.composite
def pool_problems(draw):
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = draw(st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    h, w = draw(st.integers(kernel[0], 9)), draw(st.integers(kernel[1], 9))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    ties = draw(st.booleans())
    shape = (draw(st.integers(1, 2)), h, w, draw(st.integers(1, 3)))
    x = rng.integers(0, 3, shape).astype(np.float64) if ties else rng.standard_normal(shape)
    return x, kernel, stride, rng


def _rw(x, kernel, stride, op):
    s = kernel if stride is None else stride
    if op == "max":
        return lax.reduce_window(x, -jnp.inf, lax.max, (1,) + kernel + (1,), (1,) + s + (1,), "VALID")
    return lax.reduce_window(x, 0.0, lax.add, (1,) + kernel + (1,), (1,) + s + (1,),
                             "VALID") / (kernel[0] * kernel[1])


@SETTINGS
@given(pool_problems())
def test_max_pool_values_and_grads_equal_reduce_window(problem):
    """Also with ties (integer inputs): the first maximum of a window gets the gradient."""
    x, kernel, stride, rng = problem
    ref, vjp = jax.vjp(lambda a: _rw(a, kernel, stride, "max"), x)
    g = rng.standard_normal(ref.shape)
    out, cache = conv.max_pool_forward(x, kernel, stride)
    np.testing.assert_allclose(out, ref, **TOL)
    np.testing.assert_allclose(conv.max_pool_backward(g, cache), vjp(g)[0], **TOL)
    got = jax.vjp(lambda a: conv.max_pool2d(a, kernel, stride), x)[1](g)[0]
    np.testing.assert_allclose(got, vjp(g)[0], **TOL)


@SETTINGS
@given(pool_problems())
def test_avg_pool_values_and_grads_equal_reduce_window(problem):
    x, kernel, stride, rng = problem
    ref, vjp = jax.vjp(lambda a: _rw(a, kernel, stride, "avg"), x)
    g = rng.standard_normal(ref.shape)
    out, cache = conv.avg_pool_forward(x, kernel, stride)
    np.testing.assert_allclose(out, ref, **TOL)
    np.testing.assert_allclose(conv.avg_pool_backward(g, cache), vjp(g)[0], **TOL)
    got = jax.vjp(lambda a: conv.avg_pool2d(a, kernel, stride), x)[1](g)[0]
    np.testing.assert_allclose(got, vjp(g)[0], **TOL)


def test_avg_pool_is_a_fixed_depthwise_convolution():
    x = np.random.default_rng(3).standard_normal((2, 6, 6, 1))
    w = np.full((2, 2, 1, 1), 0.25)
    np.testing.assert_allclose(conv.avg_pool2d(x, 2), conv.conv2d(x, w, stride=2), **TOL)


# --------------------------------------------------------------------------- LRN
def _lrn_numpy(x, size, alpha, beta, k):
    c = x.shape[-1]
    out = np.empty_like(x)
    for ch in range(c):
        lo, hi = max(0, ch - size // 2), min(c, ch + (size - 1) // 2 + 1)
        s = np.sum(x[..., lo:hi] ** 2, axis=-1)
        out[..., ch] = x[..., ch] / (k + alpha / size * s) ** beta
    return out


@pytest.mark.parametrize("size", [1, 2, 3, 5])
def test_lrn_matches_numpy_and_grad_matches_finite_differences(size):
    from course_lib import checks

    rng = np.random.default_rng(size)
    x = rng.standard_normal((2, 3, 3, 7)) * 3
    np.testing.assert_allclose(conv.local_response_norm(x, size, 0.5, 0.75, 1.0),
                               _lrn_numpy(x, size, 0.5, 0.75, 1.0), **TOL)
    f = lambda a: jnp.sum(jnp.cos(conv.local_response_norm(a, size, 0.5, 0.75, 1.0)))
    np.testing.assert_allclose(jax.grad(f)(x), checks.numerical_gradient(f, x), rtol=1e-6, atol=1e-7)


def test_lrn_acts_across_channels_not_space():
    x = np.zeros((1, 3, 3, 5))
    x[0, 1, 1, 2] = 10.0
    out = np.asarray(conv.local_response_norm(x, 3, alpha=1.0, beta=1.0, k=1.0))
    assert out[0, 1, 1, 2] == pytest.approx(10.0 / (1 + 100 / 3))
    x2 = x.copy()
    x2[0, 1, 1, 3] = 10.0                       # a neighbouring channel suppresses it
    assert conv.local_response_norm(x2, 3, 1.0, 1.0, 1.0)[0, 1, 1, 2] < out[0, 1, 1, 2]
    x3 = x.copy()
    x3[0, 0, 1, 2] = 10.0                       # a neighbouring pixel does not
    assert float(conv.local_response_norm(x3, 3, 1.0, 1.0, 1.0)[0, 1, 1, 2]) == pytest.approx(out[0, 1, 1, 2])


# --------------------------------------------------------------------------- dropout
def test_dropout_inverted_scaling_and_eval_identity():
    x = np.ones((200, 500), np.float32)
    key = jax.random.key(0)
    out, mask = conv.dropout_forward(x, 0.3, key)
    vals = np.unique(np.asarray(out))
    np.testing.assert_allclose(vals, [0.0, 1 / 0.7], rtol=1e-6)
    frac = float(np.mean(np.asarray(out) == 0))
    assert abs(frac - 0.3) < 0.005                        # 100k draws: std 0.0014
    assert abs(float(out.mean()) - 1.0) < 0.01           # expectation preserved
    np.testing.assert_array_equal(conv.dropout(x, 0.3, train=False), x)
    np.testing.assert_array_equal(conv.dropout(x, 0.0, key), x)
    out2 = conv.dropout(x, 0.3, jax.random.key(1))
    assert not np.array_equal(out, out2)                 # a fresh mask per call/key


def test_dropout_backward_equals_jax_grad():
    x = np.random.default_rng(0).standard_normal((4, 6))
    key = jax.random.key(3)
    out, cache = conv.dropout_forward(x, 0.5, key)
    g = np.random.default_rng(1).standard_normal((4, 6))
    ref = jax.vjp(lambda a: conv.dropout(a, 0.5, key), x)[1](g)[0]
    np.testing.assert_allclose(conv.dropout_backward(g, cache), ref, **TOL)
    _, cache_eval = conv.dropout_forward(x, 0.5, train=False)
    np.testing.assert_array_equal(conv.dropout_backward(g, cache_eval), g)


# --------------------------------------------------------------------------- bad input
def test_conv_bad_inputs():
    x, w = np.zeros((1, 5, 5, 3)), np.zeros((3, 3, 3, 4))
    with pytest.raises(ValueError, match="w has 2 input channels.*x has 3 channels"):
        conv.conv2d(x, np.zeros((3, 3, 2, 4)))
    with pytest.raises(ValueError, match="kernel .* larger than the padded input"):
        conv.conv2d(x, np.zeros((7, 7, 3, 1)))
    assert conv.conv2d(x, np.zeros((7, 7, 3, 1)), padding=1).shape == (1, 1, 1, 1)
    with pytest.raises(ValueError, match=r"x must have 4 dimension\(s\)"):
        conv.conv2d(np.zeros((5, 5, 3)), w)
    with pytest.raises(ValueError, match=r"w \(k_h, k_w, C_in, C_out\) must have 4 dimension\(s\)"):
        conv.conv2d(x, np.zeros((3, 3, 3)))
    with pytest.raises(ValueError, match=r"b must have shape \(4\), got \(3,\)"):
        conv.conv2d(x, w, np.zeros(3))
    with pytest.raises(ValueError, match="padding must be one of 'valid', 'same'"):
        conv.conv2d(x, w, padding="full")
    with pytest.raises(ValueError, match="stride must be >= 1"):
        conv.conv2d(x, w, stride=0)
    with pytest.raises(TypeError, match="dilation must be an int or a pair"):
        conv.conv2d(x, w, dilation=1.5)
    with pytest.raises(TypeError, match="padding must be an int or a pair"):
        conv.conv2d(x, w, padding=1.0)
    with pytest.raises(TypeError, match="x must be a floating-point array"):
        conv.conv2d(np.zeros((1, 5, 5, 3), int), w)
    bad = x.copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="x must be finite"):
        conv.conv2d(bad, w)
    # an empty batch (or an empty image) is an error, not a silently empty output
    with pytest.raises(ValueError, match=r"x must not be empty along axis 0, got shape \(0, 5, 5, 3\)"):
        conv.conv2d(np.zeros((0, 5, 5, 3)), w)
    with pytest.raises(ValueError, match="x must not be empty along axis 2"):
        conv.conv2d_forward(np.zeros((1, 5, 0, 3)), w, padding=1)
    _, cache = conv.conv2d_forward(x, w)
    with pytest.raises(ValueError, match=r"dout must have shape \(1, 3, 3, 4\), got \(1, 2, 2, 4\)"):
        conv.conv2d_backward(np.zeros((1, 2, 2, 4)), cache)
    with pytest.raises(TypeError, match="cache must be the cache returned by conv2d_forward"):
        conv.conv2d_backward(np.zeros((1, 3, 3, 4)), (x, w))
    with pytest.raises(ValueError, match="kernel_shape must have 4 entries"):
        conv.conv_output_shape((1, 5, 5, 3), (3, 3, 3))
    with pytest.raises(ValueError, match="stride must be an int >= 1"):
        conv.conv_output_size(5, 3, 0)
    with pytest.raises(TypeError, match="k must be an int"):
        conv.conv_output_size(5, 3.0)
    with pytest.raises(TypeError, match="kernel_hw must be an int or a pair"):
        conv.im2col(x, (3, 3, 3))
    with pytest.raises(ValueError, match="kernel .* larger than the padded input"):
        conv.im2col(x, 6)
    with pytest.raises(ValueError, match="c_in must be an int >= 1"):
        conv.conv_param_count(3, 3, 0, 4)
    with pytest.raises(TypeError, match="bias must be True or False"):
        conv.dense_param_count(3, 4, bias="yes")
    with pytest.raises(ValueError, match="i must be an int >= 0"):
        conv.tap_slices(-1, 0, (2, 2))


def test_pool_lrn_dropout_bad_inputs():
    x = np.zeros((1, 4, 4, 2))
    with pytest.raises(ValueError, match="kernel .* larger than the padded input"):
        conv.max_pool2d(x, 5)
    with pytest.raises(ValueError, match=r"x must have 4 dimension\(s\)"):
        conv.avg_pool2d(np.zeros((4, 4)), 2)
    with pytest.raises(ValueError, match="kernel must be >= 1"):
        conv.max_pool2d(x, 0)
    with pytest.raises(ValueError, match="x must not be empty along axis 0"):
        conv.max_pool2d(np.zeros((0, 4, 4, 2)), 2)
    _, cache = conv.max_pool_forward(x, 2)
    with pytest.raises(ValueError, match=r"dout must have shape \(1, 2, 2, 2\)"):
        conv.max_pool_backward(np.zeros((1, 4, 4, 2)), cache)
    with pytest.raises(TypeError, match="cache must be the cache returned by max_pool_forward"):
        conv.max_pool_backward(np.zeros((1, 2, 2, 2)), conv.avg_pool_forward(x, 2)[1])
    _, cache = conv.avg_pool_forward(x, 2)
    with pytest.raises(ValueError, match=r"dout must have shape \(1, 2, 2, 2\)"):
        conv.avg_pool_backward(np.zeros((1, 4, 4, 2)), cache)
    with pytest.raises(ValueError, match="size must be an int >= 1"):
        conv.local_response_norm(x, size=0)
    with pytest.raises(ValueError, match=r"k must be a finite number > 0"):
        conv.local_response_norm(x, k=0.0)
    with pytest.raises(TypeError, match="alpha must be a number"):
        conv.local_response_norm(x, alpha="1e-4")
    with pytest.raises(ValueError, match=r"rate must be a finite number in \[0, 1\)"):
        conv.dropout(x, 1.0, jax.random.key(0))
    with pytest.raises(ValueError, match="key must be a jax.random key"):
        conv.dropout(x, 0.5)
    with pytest.raises(TypeError, match="train must be True or False"):
        conv.dropout(x, 0.5, jax.random.key(0), train="yes")
    # a string rate is not silently converted; an int seed is not a key
    with pytest.raises(TypeError, match="rate must be a number, got str"):
        conv.dropout(x, "0.5", jax.random.key(0))
    with pytest.raises(TypeError, match=r"key must be a JAX random key \(jax.random.key\(seed\)\), got int"):
        conv.dropout(x, 0.5, 3)
    with pytest.raises(TypeError, match="key must be a JAX random key"):
        conv.dropout_forward(x, 0.5, np.zeros(3, np.uint32))
    out = conv.dropout(x + 1, 0.5, jax.random.PRNGKey(0))          # a raw uint32 key is a key too
    assert set(np.unique(np.asarray(out))) <= {0.0, 2.0}
    _, cache = conv.dropout_forward(x, 0.5, jax.random.key(0))
    with pytest.raises(ValueError, match=r"dout must have shape \(1, 4, 4, 2\)"):
        conv.dropout_backward(np.zeros((4, 4)), cache)


# --------------------------------------------------------------------------- the small CNN
def _lax_cnn(params, x, mask=None):
    """The digits CNN written with jax.lax (an independent reference for cnn_features)."""
    def conv_relu(h, layer):
        return jax.nn.relu(_lax_conv(h, layer["w"], layer["b"], (1, 1), ((1, 1), (1, 1)), (1, 1)))

    p1 = _rw(conv_relu(x, params["conv1"]), (2, 2), None, "max")
    p2 = _rw(conv_relu(p1, params["conv2"]), (2, 2), None, "max")
    flat = p2.reshape(p2.shape[0], -1) * (1.0 if mask is None else mask)
    return flat @ params["dense"]["w"] + params["dense"]["b"]


def _digits(n, dtype=np.float64):
    from course_lib import data

    X, y = data.load_digits(images=True)
    return np.asarray(X[:n], dtype)[..., None], np.asarray(y[:n])


def _float64(params):
    return jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), params)


def test_cnn_features_equal_lax_with_and_without_a_dropout_mask():
    X, _ = _digits(12)
    params = _float64(conv.init_cnn(1, channels=(4, 8)))
    feats = conv.cnn_features(params, X)
    assert [feats[k].shape for k in conv.CNN_LAYERS + ("logits",)] == [
        (12, 8, 8, 4), (12, 4, 4, 4), (12, 4, 4, 8), (12, 2, 2, 8), (12, 10)]
    np.testing.assert_allclose(feats["logits"], _lax_cnn(params, X), **TOL)
    eager = conv.cnn_forward(params, X)                          # the same forward, not compiled
    for k in conv.CNN_LAYERS + ("logits",):
        np.testing.assert_allclose(eager[k], feats[k], **TOL)
    np.testing.assert_allclose(conv.cnn_apply(params, X), _lax_cnn(params, X), **TOL)
    np.testing.assert_array_equal(conv.cnn_predict(params, X), np.argmax(_lax_cnn(params, X), -1))
    # an inverted-dropout mask (what train_cnn draws) multiplies the flattened pool2 features only
    mask = np.tile([0.0, 2.0], (12, 16))
    masked = conv.cnn_features(params, X, mask)
    np.testing.assert_allclose(masked["logits"], _lax_cnn(params, X, mask), **TOL)
    np.testing.assert_array_equal(masked["pool2"], feats["pool2"])
    assert not np.allclose(masked["logits"], feats["logits"])
    # gradients through the whole network (jax.grad through the loops over taps)
    g_ours = jax.grad(lambda p: jnp.sum(jnp.sin(conv.cnn_apply(p, X))))(params)
    g_lax = jax.grad(lambda p: jnp.sum(jnp.sin(_lax_cnn(p, X))))(params)
    for a, r in zip(jax.tree_util.tree_leaves(g_ours), jax.tree_util.tree_leaves(g_lax)):
        np.testing.assert_allclose(a, r, **TOL)
    with pytest.raises(ValueError, match="x has 3 channels"):
        conv.cnn_apply(params, np.zeros((1, 8, 8, 3)))
    with pytest.raises(ValueError, match="multiples of 4"):
        conv.cnn_apply(params, np.zeros((1, 6, 8, 1)))
    with pytest.raises(ValueError, match=r"mask must have shape \(12, 32\)"):
        conv.cnn_features(params, X, mask[:, :8])
    with pytest.raises(TypeError, match="params must be the dict of init_cnn"):
        conv.cnn_apply({"conv1": params["conv1"]}, X)


def test_train_cnn_learns_and_records_its_history():
    X, y = _digits(200, np.float32)
    trained, hist = conv.train_cnn(X, y, X[:50], y[:50], epochs=8, batch_size=20, seed=0)
    # the trained network beats chance by far on the data it saw
    assert hist["train_acc"][-1] > 0.8 and len(hist["val_loss"]) == len(hist["val_acc"]) == 8
    logits = np.asarray(conv.cnn_apply(trained, X[:50]), np.float64)
    logp = logits - logits.max(1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(1, keepdims=True))
    np.testing.assert_allclose(hist["val_loss"][-1], -np.mean(logp[np.arange(50), y[:50]]), rtol=1e-5)
    assert hist["val_acc"][-1] == np.mean(np.argmax(logits, 1) == y[:50])
    trained, hist = conv.train_cnn(X, y, epochs=1, batch_size=100)         # no validation data
    assert set(hist) == {"train_loss", "train_acc"}


def test_train_cnn_bad_inputs():
    X, y = _digits(40, np.float32)
    with pytest.raises(TypeError, match="y_train must be an integer array"):
        conv.train_cnn(X, y.astype(float))
    with pytest.raises(ValueError, match=r"y_train must have shape \(40\), got \(10,\)"):
        conv.train_cnn(X, y[:10])
    with pytest.raises(ValueError, match="y_train must hold class indices >= 0"):
        conv.train_cnn(X, y - 1, batch_size=8)
    with pytest.raises(ValueError, match="y_val must hold class indices < 10"):
        conv.train_cnn(X, y, X, y + 5, batch_size=8)
    with pytest.raises(ValueError, match="pass both X_val and y_val"):
        conv.train_cnn(X, y, X)
    with pytest.raises(ValueError, match="X_val images must have the shape"):
        conv.train_cnn(X, y, X[:, :4, :4], y)
    with pytest.raises(ValueError, match="batch_size must be <= the number of training images"):
        conv.train_cnn(X, y, batch_size=41)
    for bad in (1.0, -0.1, float("nan")):
        with pytest.raises(ValueError, match=r"dropout must be a finite number in \[0, 1\)"):
            conv.train_cnn(X, y, dropout=bad, batch_size=8)
    for bad in ("0.3", True, None):
        with pytest.raises(TypeError, match="dropout must be a number"):
            conv.train_cnn(X, y, dropout=bad, batch_size=8)
    with pytest.raises(ValueError, match="augment_shift must be an int >= 0"):
        conv.train_cnn(X, y, augment_shift=-1, batch_size=8)
    with pytest.raises(TypeError, match="epochs must be an int"):
        conv.train_cnn(X, y, epochs=2.0, batch_size=8)
    with pytest.raises(TypeError, match="cosine_decay must be True or False"):
        conv.train_cnn(X, y, cosine_decay=1, batch_size=8)


@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_train_cnn_matches_optax_adam_with_cosine_decay(eps):
    """train_cnn (Adam with a cosine-decayed learning rate, label smoothing eps) follows
    optax.adam(optax.cosine_decay_schedule) with optax's smoothed cross-entropy, batch for batch
    (no dropout; the batch order replays train_cnn's random stream)."""
    optax = pytest.importorskip("optax")
    from course_lib import data

    X, y = data.load_digits(images=True)
    X, y = np.asarray(X[:96], np.float32)[..., None], np.asarray(y[:96])
    epochs, bs, lr = 2, 32, 5e-3
    trained, hist = conv.train_cnn(X, y, epochs=epochs, batch_size=bs, learning_rate=lr, seed=3,
                                   channels=(4, 8), dropout=0.0, label_smoothing=eps)
    params = jax.tree_util.tree_map(jnp.asarray, conv.init_cnn(3, 1, 10, (4, 8)))
    opt = optax.adam(optax.cosine_decay_schedule(lr, epochs * 3))
    state = opt.init(params)

    def loss(p, xb, yb):
        logits = _lax_cnn(p, xb)
        target = optax.smooth_labels(jax.nn.one_hot(yb, 10), eps)
        return jnp.mean(optax.softmax_cross_entropy(logits, target))

    first = []

    rng = np.random.default_rng(3)
    for _ in range(epochs):
        order = rng.permutation(96).reshape(3, bs)
        rng.integers(0, 1, (3, bs, 2))                       # augmentation offsets (none)
        rng.random((3, bs, 2 * 2 * 8), np.float32)           # dropout masks (rate 0: all kept)
        losses = []
        for b in range(3):
            value, g = jax.value_and_grad(loss)(params, jnp.asarray(X[order[b]]),
                                                jnp.asarray(y[order[b]]))
            losses.append(float(value))
            updates, state = opt.update(g, state, params)
            params = optax.apply_updates(params, updates)
        first.append(np.mean(losses))
    for name in ("conv1", "conv2", "dense"):
        for k in ("w", "b"):
            np.testing.assert_allclose(trained[name][k], params[name][k], rtol=1e-4, atol=1e-6)
    # train_loss is the smoothed loss the step minimised, batch by batch before each update
    np.testing.assert_allclose(hist["train_loss"], first, rtol=1e-5)
    for bad in (0.0, -1e-3, float("nan")):
        with pytest.raises(ValueError, match=r"learning_rate must be a finite number > 0"):
            conv.train_cnn(X, y, learning_rate=bad)
    for bad in ("0.01", True):
        with pytest.raises(TypeError, match="learning_rate must be a number"):
            conv.train_cnn(X, y, learning_rate=bad)
    for bad in (1.0, -0.1, float("nan")):
        with pytest.raises(ValueError, match=r"label_smoothing must be a finite number in \[0, 1\)"):
            conv.train_cnn(X, y, label_smoothing=bad)
    for bad in ("0.1", True, None):
        with pytest.raises(TypeError, match="label_smoothing must be a number"):
            conv.train_cnn(X, y, label_smoothing=bad)
