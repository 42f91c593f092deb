"""Convolution, pooling, local response normalization, dropout and a small CNN: the plain reference.

Layout: images are NHWC ``(N, H, W, C)`` and kernels HWIO ``(k_h, k_w, C_in, C_out)``.

What deep learning calls "convolution" is a *cross-correlation* (the kernel is not flipped). With
``xp`` the zero-padded input, stride ``s`` and dilation ``d``::

    out[n, y, x, o] = b[o] + sum_{i, j, c} xp[n, y*s_h + i*d_h, x*s_w + j*d_w, c] * w[i, j, c, o]

Every function here is written as that sum reads: a loop over the kernel taps ``(i, j)``, where tap
``(i, j)`` meets the input values ``xp[:, i*d_h + y*s_h, j*d_w + x*s_w, :]`` of every output
position ``(y, x)`` at once (:func:`tap_slices`). Layers with a hand-written backward follow one
contract (CS231n): ``forward(x, params...) -> (out, cache)`` and, right below it,
``backward(dout, cache) -> grads``. ``conv2d``, ``max_pool2d`` and ``avg_pool2d`` return the
forward's output alone and are differentiated by ``jax.grad`` through the same loop.

:func:`im2col` is the bridge to speed: it lays every output pixel's window out as one row, so the
whole convolution becomes one matrix product. ``course_lib.fast.conv`` holds the optimized versions
of these functions (same signatures, tested equal); nothing here imports it.

Taught in: notebooks/10_convolutional_networks.ipynb
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from course_lib import losses, optim, schedules
from course_lib._validation import (as_float_array, as_int_array, as_int_pair, check_bool, check_cache,
                                    check_finite, check_int, check_key, check_ndim, check_nonempty,
                                    check_number, check_option, check_shape)

__all__ = [
    "conv_output_size", "conv_output_shape", "resolve_padding", "conv_param_count",
    "dense_param_count", "tap_slices", "im2col",
    "conv2d_forward", "conv2d_backward", "conv2d",
    "max_pool_forward", "max_pool_backward", "max_pool2d",
    "avg_pool_forward", "avg_pool_backward", "avg_pool2d",
    "local_response_norm", "dropout_forward", "dropout_backward", "dropout",
    "CNN_LAYERS", "init_cnn", "cnn_forward", "cnn_features", "cnn_apply", "cnn_predict", "train_cnn",
]


# --------------------------------------------------------------------------- sizes and padding
def conv_output_size(n: int, k: int, stride: int = 1, padding=0, dilation: int = 1) -> int:
    """Output length of a convolution or pooling along one axis.

    ``n_out = floor((n + pad_lo + pad_hi - d*(k-1) - 1) / s) + 1``; ``padding`` is an int (the
    same on both sides) or a pair ``(lo, hi)``. ``ValueError`` if the (dilated) kernel, whose span
    is ``d*(k-1) + 1``, does not fit in the padded input.

    Taught in: notebooks/10_convolutional_networks.ipynb
    """
    n, k = check_int(n, "n", minimum=1), check_int(k, "k", minimum=1)
    stride, dilation = check_int(stride, "stride", minimum=1), check_int(dilation, "dilation", minimum=1)
    lo, hi = as_int_pair(padding, "padding", minimum=0)
    span = dilation * (k - 1) + 1
    if n + lo + hi < span:
        raise ValueError(f"the kernel (size {k}, dilation {dilation}, span {span}) is larger than the "
                         f"padded input (size {n} + padding {lo}+{hi}); pad the input or use a "
                         f"smaller kernel")
    return (n + lo + hi - span) // stride + 1


def resolve_padding(padding, in_hw, k_hw, stride=1, dilation=1):
    """``padding`` as explicit ``((top, bottom), (left, right))``.

    ``padding`` is ``"valid"`` (none), ``"same"`` (output size ``ceil(n / s)``; an odd extra row or
    column goes to the bottom/right, as in ``lax.conv_general_dilated``), an int, a pair
    ``(p_h, p_w)`` or explicit ``((top, bottom), (left, right))``.

    Taught in: notebooks/10_convolutional_networks.ipynb
    """
    stride, dilation = as_int_pair(stride, "stride", minimum=1), as_int_pair(dilation, "dilation", minimum=1)
    if isinstance(padding, str):
        if check_option(padding.lower(), "padding", ("valid", "same")) == "valid":
            return (0, 0), (0, 0)
        pads = []
        for n, k, s, d in zip(in_hw, k_hw, stride, dilation):
            total = max((-(-n // s) - 1) * s + d * (k - 1) + 1 - n, 0)
            pads.append((total // 2, total - total // 2))
        return tuple(pads)
    if isinstance(padding, (tuple, list)) and len(padding) == 2 and \
            all(isinstance(p, (tuple, list)) for p in padding):
        return (as_int_pair(padding[0], "padding[0]", minimum=0),
                as_int_pair(padding[1], "padding[1]", minimum=0))
    p_h, p_w = as_int_pair(padding, "padding", minimum=0)
    return (p_h, p_h), (p_w, p_w)


def conv_output_shape(input_shape, kernel_shape, stride=1, padding="valid", dilation=1):
    """Output shape ``(N, H_out, W_out, C_out)`` of :func:`conv2d` for an NHWC input and an HWIO
    kernel. ``ValueError`` on a channel mismatch or a kernel that does not fit.

    Taught in: notebooks/10_convolutional_networks.ipynb
    """
    if len(input_shape) != 4:
        raise ValueError(f"input_shape must have 4 entries (N, H, W, C), got {tuple(input_shape)}")
    if len(kernel_shape) != 4:
        raise ValueError(f"kernel_shape must have 4 entries (k_h, k_w, C_in, C_out), got "
                         f"{tuple(kernel_shape)}")
    n, h, w, c = input_shape
    kh, kw, c_in, c_out = kernel_shape
    if c != c_in:
        raise ValueError(f"w has {c_in} input channels (kernel shape {tuple(kernel_shape)}) but x has "
                         f"{c} channels (input shape {tuple(input_shape)}); they must match")
    stride, dilation = as_int_pair(stride, "stride", minimum=1), as_int_pair(dilation, "dilation", minimum=1)
    pads = resolve_padding(padding, (h, w), (kh, kw), stride, dilation)
    return (n, conv_output_size(h, kh, stride[0], pads[0], dilation[0]),
            conv_output_size(w, kw, stride[1], pads[1], dilation[1]), c_out)


def conv_param_count(kh: int, kw: int, c_in: int, c_out: int, bias: bool = True) -> int:
    """Parameters of a conv layer, ``k_h*k_w*C_in*C_out (+ C_out)``: independent of the image size.

    Taught in: notebooks/10_convolutional_networks.ipynb
    """
    for v, name in ((kh, "kh"), (kw, "kw"), (c_in, "c_in"), (c_out, "c_out")):
        check_int(v, name, minimum=1)
    return kh * kw * c_in * c_out + (c_out if check_bool(bias, "bias") else 0)


def dense_param_count(n_in: int, n_out: int, bias: bool = True) -> int:
    """Parameters of a dense layer, ``n_in*n_out (+ n_out)``.

    Taught in: notebooks/10_convolutional_networks.ipynb
    """
    check_int(n_in, "n_in", minimum=1), check_int(n_out, "n_out", minimum=1)
    return n_in * n_out + (n_out if check_bool(bias, "bias") else 0)


# --------------------------------------------------------------------------- argument checks
def _check_images(x, name="x"):
    """A finite float batch of images (N >= 1, H, W, C)."""
    x = as_float_array(x, name)
    if jnp.ndim(x) != 4:
        raise ValueError(f"{name} must have 4 dimension(s) (N, H, W, C), got shape "
                         f"{tuple(jnp.shape(x))}; add a batch axis with {name}[None] or a channel "
                         f"axis with {name}[..., None]")
    check_nonempty(x, name, axes=(0, 1, 2, 3))
    return check_finite(x, name)


def _conv_geometry(x_shape, kernel_shape, stride, padding, dilation):
    """Checked ``(stride, pads, dilation, out_shape)`` of a convolution."""
    stride, dilation = as_int_pair(stride, "stride", minimum=1), as_int_pair(dilation, "dilation", minimum=1)
    pads = resolve_padding(padding, x_shape[1:3], kernel_shape[:2], stride, dilation)
    return stride, pads, dilation, conv_output_shape(x_shape, kernel_shape, stride, pads, dilation)


def _check_conv(x, w, b):
    x = _check_images(x, "x")
    w = check_finite(check_ndim(as_float_array(w, "w"), "w (k_h, k_w, C_in, C_out)", 4), "w")
    if b is not None:
        b = check_finite(check_shape(as_float_array(b, "b"), "b", (w.shape[3],)), "b")
    return x, w, b


def _check_pool(x, kernel, stride):
    x = _check_images(x, "x")
    kernel = as_int_pair(kernel, "kernel", minimum=1)
    stride = kernel if stride is None else as_int_pair(stride, "stride", minimum=1)
    out_hw = (conv_output_size(x.shape[1], kernel[0], stride[0]),
              conv_output_size(x.shape[2], kernel[1], stride[1]))
    return x, kernel, stride, out_hw


def _check_dout(dout, shape):
    return check_finite(check_shape(as_float_array(dout, "dout"), "dout", shape), "dout")


# --------------------------------------------------------------------------- convolution
def tap_slices(i: int, j: int, out_hw, stride=1, dilation=1):
    """Where kernel tap ``(i, j)`` reads the input, for every output position at once.

    Output pixel ``(y, x)`` meets input row ``y*s_h + i*d_h`` and column ``x*s_w + j*d_w``; for
    ``y = 0..H_out-1`` those rows are the slice ``i*d_h : i*d_h + (H_out-1)*s_h + 1 : s_h``. So
    ``xp[tap_slices(i, j, ...)]`` is the ``(N, H_out, W_out, C)`` block of inputs that ``w[i, j]``
    multiplies, and ``dxp.at[tap_slices(i, j, ...)].add(...)`` sends gradients back to them.

    Taught in: notebooks/10_convolutional_networks.ipynb
    """
    i, j = check_int(i, "i", minimum=0), check_int(j, "j", minimum=0)
    (ho, wo), (sh, sw) = as_int_pair(out_hw, "out_hw", minimum=1), as_int_pair(stride, "stride", minimum=1)
    dh, dw = as_int_pair(dilation, "dilation", minimum=1)
    rows = slice(i * dh, i * dh + (ho - 1) * sh + 1, sh)
    cols = slice(j * dw, j * dw + (wo - 1) * sw + 1, sw)
    return slice(None), rows, cols, slice(None)


def conv2d_forward(x, w, b=None, *, stride=1, padding="valid", dilation=1):
    """2-D convolution (cross-correlation), layer contract: returns ``(out, cache)``.

    ``out[n, y, x, o] = b[o] + sum_{i,j} xp[n, y*s_h + i*d_h, x*s_w + j*d_w, :] @ w[i, j, :, o]``:
    for every kernel tap (i, j), the inputs that tap meets (all output positions at once) times
    the ``(C_in, C_out)`` matrix ``w[i, j]``, summed over the taps.
    x: (N, H, W, C_in); w: (k_h, k_w, C_in, C_out); b: (C_out,) or None. ``padding``: "valid",
    "same", an int, ``(p_h, p_w)`` or ``((top, bottom), (left, right))``; ``stride``, ``dilation``:
    an int or ``(s_h, s_w)``. out: (N, H_out, W_out, C_out), sizes from :func:`conv_output_size`.

    Taught in: notebooks/10_convolutional_networks.ipynb
    """
    x, w, b = _check_conv(x, w, b)
    stride, pads, dilation, out_shape = _conv_geometry(x.shape, w.shape, stride, padding, dilation)
    xp = jnp.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))          # zero padding
    k_h, k_w = w.shape[:2]
    out = jnp.zeros(out_shape, jnp.result_type(x, w))
    for i in range(k_h):
        for j in range(k_w):
            x_ij = xp[tap_slices(i, j, out_shape[1:3], stride, dilation)]   # (N, H_out, W_out, C_in)
            out = out + x_ij @ w[i, j]
    if b is not None:
        out = out + b
    cache = {"xp": xp, "w": w, "has_bias": b is not None, "pads": pads, "stride": stride,
             "dilation": dilation}
    return out, cache


def conv2d_backward(dout, cache):
    """Backward of :func:`conv2d_forward`: ``(dx, dw, db)`` (``db`` is None without a bias).

    Each tap (i, j) of the forward computed ``x_ij @ w[i, j]``, so, tap by tap:
    ``dw[i, j] = sum_{n,y,x} x_ij[n, y, x, :]^T dout[n, y, x, :]`` (a ``(C_in, C_out)`` matrix),
    and ``dout @ w[i, j]^T`` goes back to the input positions ``x_ij`` was read from (added, since
    a position read by several taps gets a gradient from each). ``dx`` is the padded gradient with
    the padding cut off; ``db[o] = sum_{n,y,x} dout[n, y, x, o]``.
    dout: (N, H_out, W_out, C_out) -> dx (N, H, W, C_in), dw (k_h, k_w, C_in, C_out), db (C_out,).

    Taught in: notebooks/10_convolutional_networks.ipynb
    """
    check_cache(cache, "cache", "conv2d_forward", ("xp", "w", "has_bias", "pads", "stride", "dilation"))
    xp, w, stride, dilation = cache["xp"], cache["w"], cache["stride"], cache["dilation"]
    out_hw = conv_output_shape(xp.shape, w.shape, stride, 0, dilation)[1:3]
    dout = _check_dout(dout, (xp.shape[0],) + out_hw + (w.shape[3],))
    dxp, dw = jnp.zeros(xp.shape, dout.dtype), []
    for i in range(w.shape[0]):
        for j in range(w.shape[1]):
            taps = tap_slices(i, j, out_hw, stride, dilation)
            dw.append(jnp.einsum("nyxc,nyxo->co", xp[taps], dout))            # dw[i, j]
            dxp = dxp.at[taps].add(dout @ w[i, j].T)
    dw = jnp.stack(dw).reshape(w.shape)
    (top, bottom), (left, right) = cache["pads"]
    dx = dxp[:, top:xp.shape[1] - bottom, left:xp.shape[2] - right, :]
    db = jnp.sum(dout, axis=(0, 1, 2)) if cache["has_bias"] else None
    return dx, dw, db


def conv2d(x, w, b=None, *, stride=1, padding="valid", dilation=1):
    """2-D convolution (cross-correlation): the output of :func:`conv2d_forward` alone.

    ``out[n, y, x, o] = b[o] + sum_{i,j,c} xp[n, y*s_h + i*d_h, x*s_w + j*d_w, c] w[i, j, c, o]``;
    x: (N, H, W, C_in), w: (k_h, k_w, C_in, C_out), b: (C_out,) or None. Differentiable with
    ``jax.grad`` (through the loop over taps).

    Taught in: notebooks/10_convolutional_networks.ipynb
    """
    return conv2d_forward(x, w, b, stride=stride, padding=padding, dilation=dilation)[0]


def im2col(x, kernel_hw, *, stride=1, padding="valid", dilation=1):
    """The patch matrix of a convolution ("image to columns"): one row per output pixel.

    ``cols[n, y, x, (i, j, c)] = xp[n, y*s_h + i*d_h, x*s_w + j*d_w, c]``, the taps side by side in
    the order of ``w.reshape(-1, C_out)``, so the whole convolution is ONE matrix product:
    ``conv2d(x, w) == im2col(x, w.shape[:2]) @ w.reshape(-1, C_out)``.
    x: (N, H, W, C) -> (N, H_out, W_out, k_h*k_w*C). The price: every input value is copied up
    to k_h*k_w times.

    Taught in: notebooks/10_convolutional_networks.ipynb
    """
    x, (k_h, k_w) = _check_images(x, "x"), as_int_pair(kernel_hw, "kernel_hw", minimum=1)
    stride, pads, dilation, out_shape = _conv_geometry(x.shape, (k_h, k_w, x.shape[3], 1), stride,
                                                       padding, dilation)
    xp = jnp.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))
    taps = [xp[tap_slices(i, j, out_shape[1:3], stride, dilation)]
            for i in range(k_h) for j in range(k_w)]
    return jnp.concatenate(taps, axis=-1)


# --------------------------------------------------------------------------- pooling
def max_pool_forward(x, kernel=2, stride=None):
    """Max pooling (no padding), layer contract: ``(out, cache)``.

    ``out[n, y, x, c] = max_{i,j} x[n, y*s_h + i, x*s_w + j, c]``, a loop over the window's taps
    (i, j) in row-major order; the cache remembers which tap won, the first one on a tie.
    x: (N, H, W, C) -> (N, H_out, W_out, C), ``H_out = floor((H - k_h) / s_h) + 1``; ``stride``
    defaults to ``kernel`` (windows side by side). No parameters.

    Taught in: notebooks/10_convolutional_networks.ipynb
    """
    x, kernel, stride, out_hw = _check_pool(x, kernel, stride)
    out = x[tap_slices(0, 0, out_hw, stride)]
    winner = jnp.zeros(out.shape, jnp.int32)                      # tap index t = i*k_w + j
    for t in range(1, kernel[0] * kernel[1]):
        x_t = x[tap_slices(*divmod(t, kernel[1]), out_hw, stride)]
        bigger = x_t > out                                        # strict: a tie keeps the first
        out = jnp.where(bigger, x_t, out)
        winner = jnp.where(bigger, t, winner)
    return out, {"x_shape": x.shape, "winner": winner, "kernel": kernel, "stride": stride}


def max_pool_backward(dout, cache):
    """Backward of :func:`max_pool_forward`: ``dx`` (N, H, W, C).

    Max is a switch: each output's gradient goes to the input that won its window (the first
    maximum), zero elsewhere. Tap by tap: ``dx[tap (i, j) of every window] += dout where that tap
    won``; overlapping windows (stride < kernel) add up.

    Taught in: notebooks/10_convolutional_networks.ipynb
    """
    check_cache(cache, "cache", "max_pool_forward", ("x_shape", "winner", "kernel", "stride"))
    winner, kernel, stride = cache["winner"], cache["kernel"], cache["stride"]
    dout = _check_dout(dout, winner.shape)
    dx = jnp.zeros(cache["x_shape"], dout.dtype)
    for t in range(kernel[0] * kernel[1]):
        taps = tap_slices(*divmod(t, kernel[1]), winner.shape[1:3], stride)
        dx = dx.at[taps].add(jnp.where(winner == t, dout, 0))
    return dx


def max_pool2d(x, kernel=2, stride=None):
    """Max pooling: the output of :func:`max_pool_forward` alone, differentiable with ``jax.grad``
    (the gradient reaches the first maximum of each window).

    ``out[n, y, x, c] = max_{i,j} x[n, y*s_h + i, x*s_w + j, c]``; x: (N, H, W, C).

    Taught in: notebooks/10_convolutional_networks.ipynb
    """
    return max_pool_forward(x, kernel, stride)[0]


def avg_pool_forward(x, kernel=2, stride=None):
    """Average pooling (no padding), layer contract: ``(out, cache)``.

    ``out[n, y, x, c] = 1/(k_h k_w) sum_{i,j} x[n, y*s_h + i, x*s_w + j, c]``: a fixed (not
    learned) convolution of each channel with weights ``1/(k_h k_w)``.
    x: (N, H, W, C) -> (N, H_out, W_out, C); ``stride`` defaults to ``kernel``.

    Taught in: notebooks/10_convolutional_networks.ipynb
    """
    x, kernel, stride, out_hw = _check_pool(x, kernel, stride)
    out = 0.0
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            out = out + x[tap_slices(i, j, out_hw, stride)]
    out = out / (kernel[0] * kernel[1])
    return out, {"x_shape": x.shape, "out_shape": out.shape, "kernel": kernel, "stride": stride}


def avg_pool_backward(dout, cache):
    """Backward of :func:`avg_pool_forward`: every input of a window gets ``dout / (k_h k_w)``
    (added up where windows overlap). Returns dx (N, H, W, C).

    Taught in: notebooks/10_convolutional_networks.ipynb
    """
    check_cache(cache, "cache", "avg_pool_forward", ("x_shape", "out_shape", "kernel", "stride"))
    out_shape, kernel, stride = cache["out_shape"], cache["kernel"], cache["stride"]
    dout = _check_dout(dout, out_shape)
    dx = jnp.zeros(cache["x_shape"], dout.dtype)
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            dx = dx.at[tap_slices(i, j, out_shape[1:3], stride)].add(dout / (kernel[0] * kernel[1]))
    return dx


def avg_pool2d(x, kernel=2, stride=None):
    """Average pooling: the output of :func:`avg_pool_forward` alone, differentiable with
    ``jax.grad``. ``out[n, y, x, c] = mean_{i,j} x[n, y*s_h + i, x*s_w + j, c]``.

    Taught in: notebooks/10_convolutional_networks.ipynb
    """
    return avg_pool_forward(x, kernel, stride)[0]


# --------------------------------------------------------------------------- LRN and dropout
def local_response_norm(x, size: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 2.0):
    """Local response normalization across channels (AlexNet, 2012), in PyTorch's convention:

    ``b[..., c] = a[..., c] / (k + alpha/size * sum_{c' = c - size//2}^{c + (size-1)//2} a[..., c']^2)^beta``,
    the window being ``size`` neighbouring *channels* at the same pixel (not a spatial window);
    channels past either end count as 0. x: (..., C), channels last. Differentiable.

    Taught in: notebooks/10_convolutional_networks.ipynb
    """
    x = check_finite(as_float_array(x, "x"), "x")
    if jnp.ndim(x) < 1:
        raise ValueError("x must have at least 1 dimension (channels last), got a scalar")
    size = check_int(size, "size", minimum=1)
    alpha, beta = check_number(alpha, "alpha", low=0), check_number(beta, "beta")
    k = check_number(k, "k", low=0, low_open=True)
    c = x.shape[-1]
    sq = jnp.pad(x * x, [(0, 0)] * (x.ndim - 1) + [(size // 2, (size - 1) // 2)])
    window = sum(sq[..., t:t + c] for t in range(size))        # window[..., c] = the sum above
    return x / (k + (alpha / size) * window) ** beta


def dropout_forward(x, rate: float, key=None, *, train: bool = True):
    """Inverted dropout, layer contract: ``(out, cache)``.

    Training: ``out = x * m / (1 - p)`` with ``m ~ Bernoulli(1 - p)`` drawn afresh for every call
    (every mini-batch), so ``E[out] = x``; p = ``rate`` in [0, 1). Evaluation (``train=False``): the
    identity, nothing to rescale. The cache is the scaled mask ``m / (1 - p)`` (None in evaluation).
    x: any shape; key: a ``jax.random.key``, needed when training with p > 0.

    Taught in: notebooks/10_convolutional_networks.ipynb
    """
    x = check_finite(as_float_array(x, "x"), "x")
    rate = check_number(rate, "rate", low=0, high=1, high_open=True)
    if key is not None:
        check_key(key, "key")
    if not check_bool(train, "train") or rate == 0.0:
        return x, None
    if key is None:
        raise ValueError("key must be a jax.random key when train=True (dropout is random); "
                         "pass train=False at evaluation time")
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
    mask = keep.astype(x.dtype) / (1.0 - rate)
    return x * mask, mask


def dropout_backward(dout, cache):
    """Backward of :func:`dropout_forward`: ``dx = dout * m / (1 - p)`` (``dout`` in evaluation).

    Taught in: notebooks/10_convolutional_networks.ipynb
    """
    dout = as_float_array(dout, "dout")
    if cache is None:
        return dout
    return _check_dout(dout, jnp.shape(cache)) * cache


def dropout(x, rate: float, key=None, *, train: bool = True):
    """Inverted dropout: the output of :func:`dropout_forward` alone.

    Taught in: notebooks/10_convolutional_networks.ipynb
    """
    return dropout_forward(x, rate, key, train=train)[0]


# --------------------------------------------------------------------------- the digits CNN
CNN_LAYERS = ("conv1", "pool1", "conv2", "pool2")


def init_cnn(seed: int = 0, in_channels: int = 1, n_classes: int = 10, channels=(16, 32),
             kernel: int = 3, image_hw=(8, 8)):
    """He-initialised parameters (NumPy, float32) of conv-relu-pool-conv-relu-pool-dense.

    The convolutions are 'same', the pools 2x2, so the dense layer sees ``(H//4)*(W//4)*C_2``
    features. Weights ``~ N(0, 2/fan_in)`` (dense: ``1/fan_in``), biases 0.

    Taught in: notebooks/10_convolutional_networks.ipynb
    """
    rng = np.random.default_rng(check_int(seed, "seed", minimum=0))
    c_in, n_classes = check_int(in_channels, "in_channels", minimum=1), check_int(n_classes, "n_classes", minimum=2)
    (c1, c2), kernel = as_int_pair(channels, "channels", minimum=1), check_int(kernel, "kernel", minimum=1)
    h, w = as_int_pair(image_hw, "image_hw", minimum=4)
    feat = (h // 4) * (w // 4) * c2

    def normal(shape, fan_in, gain):
        return (rng.standard_normal(shape) * np.sqrt(gain / fan_in)).astype(np.float32)

    return {"conv1": {"w": normal((kernel, kernel, c_in, c1), kernel * kernel * c_in, 2.0),
                      "b": np.zeros(c1, np.float32)},
            "conv2": {"w": normal((kernel, kernel, c1, c2), kernel * kernel * c1, 2.0),
                      "b": np.zeros(c2, np.float32)},
            "dense": {"w": normal((feat, n_classes), feat, 1.0), "b": np.zeros(n_classes, np.float32)}}


def _check_cnn(params, x, mask=None):
    """Parameters of :func:`init_cnn`, images that fit them and an optional dropout mask."""
    if not isinstance(params, dict) or any(not isinstance(params.get(n), dict) or set(params[n]) != {"w", "b"}
                                           for n in ("conv1", "conv2", "dense")):
        raise TypeError("params must be the dict of init_cnn: {'conv1'|'conv2'|'dense': {'w', 'b'}}")
    x = _check_images(x, "x")
    c_in = np.shape(params["conv1"]["w"])[2]
    if x.shape[3] != c_in:
        raise ValueError(f"x has {x.shape[3]} channels but params['conv1']['w'] expects {c_in}")
    if x.shape[1] % 4 or x.shape[2] % 4:
        raise ValueError(f"x height and width must be multiples of 4 (two 2x2 pools), got "
                         f"{x.shape[1]}x{x.shape[2]}")
    if mask is not None:
        feat = np.shape(params["dense"]["w"])[0]
        mask = check_finite(check_shape(as_float_array(mask, "mask"), "mask", (x.shape[0], feat)), "mask")
    return x, mask


def cnn_forward(params, x, mask=None):
    """Forward pass of the CNN of :func:`init_cnn`, every activation kept: the one CNN forward.

    ``conv1 = relu(conv2d(x, W1, b1, 'same'))``, ``pool1 = max_pool2d(conv1, 2)``,
    ``conv2 = relu(conv2d(pool1, W2, b2, 'same'))``, ``pool2 = max_pool2d(conv2, 2)``,
    ``logits = (flatten(pool2) * mask) @ W3 + b3``. ``mask`` (training only): an inverted-dropout
    mask (N, features), already scaled by ``1/(1 - p)`` (see :func:`dropout_forward`).
    x: (N, H, W, C_in) with H, W multiples of 4. Returns a dict with the keys of
    :data:`CNN_LAYERS` and "logits" (N, n_classes). :func:`cnn_features` runs it compiled.

    Taught in: notebooks/10_convolutional_networks.ipynb
    """
    x, mask = _check_cnn(params, x, mask)
    return _cnn_layers(params, x, mask, conv2d, max_pool2d)


def _cnn_layers(params, x, mask, conv2d, max_pool2d):
    """The layers of :func:`cnn_forward` with the given ``conv2d(x, w, b, padding=)`` and
    ``max_pool2d(x, kernel)`` (the reference's, or the fast wing's: one CNN forward for both)."""
    conv1 = jax.nn.relu(conv2d(x, params["conv1"]["w"], params["conv1"]["b"], padding="same"))
    pool1 = max_pool2d(conv1, 2)
    conv2 = jax.nn.relu(conv2d(pool1, params["conv2"]["w"], params["conv2"]["b"], padding="same"))
    pool2 = max_pool2d(conv2, 2)
    flat = pool2.reshape(pool2.shape[0], -1)
    if mask is not None:
        flat = flat * mask
    logits = flat @ params["dense"]["w"] + params["dense"]["b"]
    return {"conv1": conv1, "pool1": pool1, "conv2": conv2, "pool2": pool2, "logits": logits}


# cnn_features and cnn_apply run cnn_forward compiled, once per input shape.
_cnn_forward_jit = jax.jit(cnn_forward)
_cnn_logits_jit = jax.jit(lambda params, x: cnn_forward(params, x)["logits"])


def cnn_features(params, x, mask=None):
    """:func:`cnn_forward` (every activation of the CNN of :func:`init_cnn`), checked and compiled.

    Taught in: notebooks/10_convolutional_networks.ipynb
    """
    x, mask = _check_cnn(params, x, mask)
    return _cnn_forward_jit(params, x, mask)


def cnn_apply(params, x):
    """Logits (N, n_classes) of the CNN of :func:`init_cnn` (evaluation: no dropout).

    Taught in: notebooks/10_convolutional_networks.ipynb
    """
    return _cnn_logits_jit(params, _check_cnn(params, x)[0])


def cnn_predict(params, x):
    """Predicted classes (N,), a NumPy array: the argmax of :func:`cnn_apply`'s logits.

    Taught in: notebooks/10_convolutional_networks.ipynb
    """
    return np.argmax(np.asarray(cnn_apply(params, x)), axis=-1)


# --------------------------------------------------------------------------- training
def _check_labels(y, n, name):
    y = as_int_array(y, name)
    check_shape(y, name, (n,))
    if int(np.min(y)) < 0:
        raise ValueError(f"{name} must hold class indices >= 0, got {int(np.min(y))}")
    return np.asarray(y)


def _check_training(X_train, y_train, X_val, y_val, params, options):
    """Checked data, initial parameters (:func:`init_cnn` when None) and options of
    :func:`train_cnn` (also used by ``course_lib.fast.conv``)."""
    X_train = np.asarray(_check_images(X_train, "X_train"))
    y_train = _check_labels(y_train, X_train.shape[0], "y_train")
    if (X_val is None) != (y_val is None):
        raise ValueError("pass both X_val and y_val, or neither")
    if X_val is not None:
        X_val = np.asarray(_check_images(X_val, "X_val"))
        if X_val.shape[1:] != X_train.shape[1:]:
            raise ValueError(f"X_val images must have the shape of X_train's {X_train.shape[1:]}, "
                             f"got {X_val.shape[1:]}")
        y_val = _check_labels(y_val, X_val.shape[0], "y_val")
    o = dict(options)
    o["epochs"], o["seed"] = check_int(o["epochs"], "epochs", minimum=1), check_int(o["seed"], "seed", minimum=0)
    o["batch_size"] = check_int(o["batch_size"], "batch_size", minimum=1)
    if o["batch_size"] > X_train.shape[0]:
        raise ValueError(f"batch_size must be <= the number of training images "
                         f"({X_train.shape[0]}), got {o['batch_size']}")
    o["augment_shift"] = check_int(o["augment_shift"], "augment_shift", minimum=0)
    o["learning_rate"] = check_number(o["learning_rate"], "learning_rate", low=0, low_open=True)
    o["dropout"] = check_number(o["dropout"], "dropout", low=0, high=1, high_open=True)
    o["label_smoothing"] = check_number(o["label_smoothing"], "label_smoothing", low=0, high=1, high_open=True)
    o["cosine_decay"] = check_bool(o["cosine_decay"], "cosine_decay")
    if params is None:
        params = init_cnn(o["seed"], X_train.shape[3], int(y_train.max()) + 1, o["channels"],
                          image_hw=X_train.shape[1:3])
    _check_cnn(params, X_train[:1])
    n_classes = np.shape(params["dense"]["w"])[1]
    for y, name in ((y_train, "y_train"), (y_val, "y_val")):
        if y is not None and int(y.max()) >= n_classes:
            raise ValueError(f"{name} must hold class indices < {n_classes} (the network's classes), "
                             f"got {int(y.max())}")
    return X_train, y_train, X_val, y_val, params, o


def _epoch_batches(rng, X, y, batch_size, shift, rate, n_features):
    """One epoch's mini-batches, drawn on the host from ``rng`` (both wings draw the same):
    ``(xs, ys, masks)`` of shapes (B, batch, H, W, C), (B, batch), (B, batch, n_features).

    A random order (the ``N mod batch_size`` images left over sit this epoch out); each image moved
    by a random offset of up to ``shift`` pixels per axis (zero fill); inverted-dropout masks,
    kept with probability ``1 - rate`` and scaled by ``1/(1 - rate)``."""
    n_batches = X.shape[0] // batch_size
    order = rng.permutation(X.shape[0])[:n_batches * batch_size].reshape(n_batches, batch_size)
    offsets = rng.integers(0, 2 * shift + 1, (n_batches, batch_size, 2))
    masks = ((rng.random((n_batches, batch_size, n_features), np.float32) >= rate).astype(X.dtype)
             / np.asarray(1.0 - rate, X.dtype))
    xs = X[order]
    if shift:
        h, w = X.shape[1:3]
        padded = np.pad(xs, ((0, 0), (0, 0), (shift, shift), (shift, shift), (0, 0)))
        rows = offsets[..., 0, None] + np.arange(h)                      # (B, batch, H)
        cols = offsets[..., 1, None] + np.arange(w)
        b, n = np.indices((n_batches, batch_size))
        xs = padded[b[..., None, None], n[..., None, None], rows[..., :, None], cols[..., None, :]]
    return xs, y[order].astype(np.int32), masks


def train_cnn(X_train, y_train, X_val=None, y_val=None, *, epochs: int = 30, batch_size: int = 64,
              learning_rate: float = 5e-3, seed: int = 0, channels=(32, 64), dropout: float = 0.3,
              params=None, augment_shift: int = 0, cosine_decay: bool = True,
              label_smoothing: float = 0.1):
    """Train the CNN of :func:`init_cnn` with Adam on the label-smoothed cross-entropy.

    Per epoch: the mini-batches of a random order (with ``augment_shift > 0`` every image moved by
    up to that many pixels, and a fresh dropout mask of rate ``dropout`` on the features entering
    the dense layer, every mini-batch); per mini-batch one step
    ``params <- params + adam_update(grad of loss)``, the learning rate decaying as
    ``lr * (1 + cos(pi t / T)) / 2`` over the T steps (``cosine_decay``). The loss is the
    cross-entropy against ``(1 - eps) one_hot(y) + eps / C`` (``eps = label_smoothing``): it cannot
    fall below the target's entropy (0.50 nats for eps = 0.1 and 10 classes). Randomness (initial
    weights, order, shifts, masks) comes from ``seed``.

    Returns ``(params, history)``: per epoch, ``train_loss`` and ``train_acc`` are the means over
    that epoch's mini-batches as they were trained (dropout on, weights moving); with validation
    data, ``val_loss`` (plain cross-entropy) and ``val_acc`` at the end of the epoch.
    ``course_lib.fast.conv.train_cnn`` computes the same, faster. The defaults are the recipe
    chosen in notebooks/10_convolutional_networks.ipynb section 9.

    Taught in: notebooks/10_convolutional_networks.ipynb
    """
    X, y, X_val, y_val, params, o = _check_training(X_train, y_train, X_val, y_val, params, dict(
        epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, seed=seed, channels=channels,
        dropout=dropout, augment_shift=augment_shift, cosine_decay=cosine_decay,
        label_smoothing=label_smoothing))
    n_classes = int(np.shape(params["dense"]["w"])[1])
    steps = o["epochs"] * (X.shape[0] // o["batch_size"])
    lr = schedules.cosine_decay(o["learning_rate"], steps) if o["cosine_decay"] else o["learning_rate"]
    opt, eps = optim.adam(lr), o["label_smoothing"]

    @jax.jit
    def step(params, state, xb, yb, mask):
        def loss_fn(p):
            logits = cnn_forward(p, xb, mask)["logits"]
            target = (1 - eps) * jax.nn.one_hot(yb, n_classes, dtype=logits.dtype) + eps / n_classes
            return losses.cross_entropy(logits, target), jnp.mean(jnp.argmax(logits, -1) == yb)
        (loss, acc), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, state = opt.update(grads, state, params)
        return optim.apply_updates(params, updates), state, loss, acc

    rng, state = np.random.default_rng(o["seed"]), opt.init(params)
    history = {"train_loss": [], "train_acc": []} | ({"val_loss": [], "val_acc": []} if y_val is not None else {})
    for _ in range(o["epochs"]):
        stats = []
        for xb, yb, mask in zip(*_epoch_batches(rng, X, y, o["batch_size"], o["augment_shift"],
                                               o["dropout"], np.shape(params["dense"]["w"])[0])):
            params, state, loss, acc = step(params, state, xb, yb, mask)
            stats.append((loss, acc))
        _record(history, np.mean(jax.device_get(stats), axis=0), params, X_val, y_val, cnn_apply)
    return params, history


def _record(history, train_stats, params, X_val, y_val, logits_fn):
    """Append one epoch's train means and, with validation data, its validation loss/accuracy."""
    history["train_loss"].append(float(train_stats[0]))
    history["train_acc"].append(float(train_stats[1]))
    if X_val is not None:
        logits = np.asarray(logits_fn(params, X_val), np.float64)
        history["val_loss"].append(float(losses.cross_entropy(logits, y_val)))
        history["val_acc"].append(float(np.mean(np.argmax(logits, axis=-1) == y_val)))
