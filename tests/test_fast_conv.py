"""course_lib.fast.conv (the fast wing) equals course_lib.conv (the plain reference), in float64.

Values and gradients of every function, over random strides, paddings and dilations
(hypothesis), ties in max pooling, dropout masks, batches convolved in chunks, and whole training
runs (dropout, shift augmentation, label smoothing, cosine decay). The reference itself is tested
against jax.lax, finite differences and optax in tests/test_conv.py.
"""
import pathlib
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from test_conv import SETTINGS, TOL, _digits, _float64, conv_problems, pool_problems

from course_lib import conv
from course_lib.fast import conv as fast


def _close(got, want):
    for a, r in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)):
        np.testing.assert_allclose(a, r, **TOL)


@SETTINGS
@given(conv_problems())
def test_conv2d_values_and_gradients_equal_the_reference(problem):
    x, w, b, stride, padding, dilation, rng = problem
    kw = dict(stride=stride, padding=padding, dilation=dilation)
    want, want_cache = conv.conv2d_forward(x, w, b, **kw)
    got, got_cache = fast.conv2d_forward(x, w, b, **kw)
    _close(got, want)
    _close(fast.conv2d(x, w, b, **kw), want)
    g = rng.standard_normal(want.shape)
    want_grads = conv.conv2d_backward(g, want_cache)
    got_grads = fast.conv2d_backward(g, got_cache)
    assert (got_grads[2] is None) == (want_grads[2] is None) == (b is None)
    _close(got_grads, want_grads)
    args = (x, w) if b is None else (x, w, b)
    _close(jax.vjp(lambda *a: fast.conv2d(*a, **kw), *args)[1](g), want_grads[:len(args)])
    _close(fast.im2col(x, w.shape[:2], **kw), conv.im2col(x, w.shape[:2], **kw))


IMAGE_PATCH_BYTES = 6 * 5 * 9 * 3 * 8      # one (6, 5, 3) float64 image's 3x3 'same' patches


@pytest.mark.parametrize("n,fit,size", [(7, 4, 4),     # no k in 2..4 divides 7: 4 + a remainder of 3
                                        (8, 3, 2),     # k_min = 3; 4 equal chunks of 2
                                        (4, 1, 1),     # one image per chunk
                                        (6, 6, 6)])    # the whole batch fits: no chunks
def test_chunked_batch_equals_the_reference(monkeypatch, n, fit, size):
    """A big batch is convolved a few images at a time (lax.map/scan over chunks, equal chunks where
    a divisor of the batch allows, else a remainder): the same values and gradients."""
    monkeypatch.setattr(fast, "_CHUNK_BYTES", fit * IMAGE_PATCH_BYTES)   # ``fit`` images per chunk
    rng = np.random.default_rng(11)
    x, w, b = rng.standard_normal((n, 6, 5, 3)), rng.standard_normal((3, 3, 3, 2)), rng.standard_normal(2)
    xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    assert fast._chunk_size(xp, jnp.asarray(w), (1, 1), (1, 1)) == size
    want, cache = conv.conv2d_forward(x, w, b, padding="same")
    g = rng.standard_normal(want.shape)
    # jit retraces for this new shape, so the patched chunk size is the one used
    got, vjp = jax.vjp(lambda *a: fast.conv2d(*a, padding="same"), x, w, b)
    _close(got, want)
    _close(vjp(g), conv.conv2d_backward(g, cache))


@SETTINGS
@given(pool_problems())
def test_pooling_values_and_gradients_equal_the_reference(problem):
    """Max and average pooling; with ties (integer inputs) the first maximum gets the gradient in
    both wings."""
    x, kernel, stride, rng = problem
    for forward, backward, pool in ((conv.max_pool_forward, conv.max_pool_backward, fast.max_pool2d),
                                    (conv.avg_pool_forward, conv.avg_pool_backward, fast.avg_pool2d)):
        name = forward.__name__
        want, cache = forward(x, kernel, stride)
        got, got_cache = getattr(fast, name)(x, kernel, stride)
        _close(got, want)
        _close(pool(x, kernel, stride), want)
        g = rng.standard_normal(want.shape)
        want_dx = backward(g, cache)
        _close(getattr(fast, name.replace("forward", "backward"))(g, got_cache), want_dx)
        _close(jax.vjp(lambda a: pool(a, kernel, stride), x)[1](g)[0], want_dx)


def test_cnn_forward_and_prediction_equal_the_reference():
    X, _ = _digits(70)                          # 70 images: three evaluation blocks of 32
    params = _float64(conv.init_cnn(2, channels=(4, 8)))
    mask = np.random.default_rng(0).integers(0, 2, (70, 32)) * 2.0
    for m in (None, mask):
        _close(fast.cnn_features(params, X, m), conv.cnn_features(params, X, m))
    _close(fast.cnn_apply(params, X), conv.cnn_apply(params, X))
    np.testing.assert_array_equal(fast.cnn_predict(params, X), conv.cnn_predict(params, X))
    loss = lambda apply: lambda p: jnp.sum(jnp.sin(apply(p, X[:8])))
    _close(jax.grad(loss(lambda p, x: fast.cnn_features(p, x)["logits"]))(params),
           jax.grad(loss(conv.cnn_apply))(params))


@pytest.mark.parametrize("options", [
    dict(dropout=0.3, augment_shift=1, label_smoothing=0.1, cosine_decay=True),
    dict(dropout=0.0, augment_shift=0, label_smoothing=0.0, cosine_decay=False)])
def test_train_cnn_equals_the_reference(options):
    """The same mini-batches, shifts, dropout masks and Adam steps: the same parameters and history
    (float64, 2 epochs of 3 steps)."""
    X, y = _digits(96)
    params = _float64(conv.init_cnn(3, 1, 10, (4, 8)))
    kw = dict(epochs=2, batch_size=32, learning_rate=5e-3, seed=3, params=params, **options)
    want, want_hist = conv.train_cnn(X, y, X[:40], y[:40], **kw)
    got, got_hist = fast.train_cnn(X, y, X[:40], y[:40], **kw)
    _close(got, want)
    assert set(got_hist) == set(want_hist) == {"train_loss", "train_acc", "val_loss", "val_acc"}
    for k in want_hist:
        np.testing.assert_allclose(got_hist[k], want_hist[k], **TOL)


def test_fast_functions_validate_like_the_reference():
    x, w = np.zeros((1, 5, 5, 3)), np.zeros((3, 3, 3, 4))
    with pytest.raises(ValueError, match="x must not be empty along axis 0"):
        fast.conv2d(np.zeros((0, 5, 5, 3)), w)
    with pytest.raises(ValueError, match="w has 2 input channels.*x has 3 channels"):
        fast.conv2d_forward(x, np.zeros((3, 3, 2, 4)))
    with pytest.raises(TypeError, match="dilation must be an int or a pair"):
        fast.im2col(x, 3, dilation=1.5)
    _, cache = fast.conv2d_forward(x, w)
    with pytest.raises(ValueError, match=r"dout must have shape \(1, 3, 3, 4\)"):
        fast.conv2d_backward(np.zeros((1, 2, 2, 4)), cache)
    with pytest.raises(TypeError, match="cache must be the cache returned by course_lib.fast.conv.conv2d_forward"):
        fast.conv2d_backward(np.zeros((1, 3, 3, 4)), conv.conv2d_forward(x, w)[1])
    with pytest.raises(ValueError, match="kernel must be >= 1"):
        fast.max_pool2d(x, 0)
    with pytest.raises(ValueError, match=r"dout must have shape \(1, 2, 2, 3\)"):
        fast.avg_pool_backward(np.zeros((1, 5, 5, 3)), fast.avg_pool_forward(x, 2)[1])
    params = conv.init_cnn(0)
    with pytest.raises(ValueError, match="x has 3 channels"):
        fast.cnn_apply(params, np.zeros((1, 8, 8, 3)))
    X, y = _digits(40, np.float32)
    with pytest.raises(TypeError, match="dropout must be a number"):
        fast.train_cnn(X, y, dropout="0.3", batch_size=8)
    with pytest.raises(ValueError, match="y_train must hold class indices >= 0"):
        fast.train_cnn(X, y - 1, batch_size=8)


def test_no_reference_module_imports_the_fast_wing():
    root = pathlib.Path(conv.__file__).parent
    pattern = re.compile(r"^\s*(from|import)\s.*\bfast\b", re.MULTILINE)
    offenders = [p.name for p in root.glob("*.py") if pattern.search(p.read_text())]
    assert offenders == []
