"""Convolution, pooling, local response normalization and dropout, written from scratch in JAX.

Layout: images are NHWC ``(batch, height, width, channels)`` and kernels are HWIO
``(kernel_h, kernel_w, in_channels, out_channels)``, the layout XLA runs fastest on a CPU.

What deep-learning libraries call "convolution" is a *cross-correlation* (the kernel is not
flipped)::

    out[n, y, x, o] = b[o] + sum_{i, j, c} xp[n, y*s_h + i*d_h, x*s_w + j*d_w, c] * w[i, j, c, o]

with ``xp`` the zero-padded input, ``s`` the stride and ``d`` the dilation. Its output size per
spatial axis is ``floor((n + pad_lo + pad_hi - d*(k-1) - 1) / s) + 1``.

Nothing here calls ``jax.lax.conv*`` or ``lax.reduce_window``: the forward pass reads the
``k_h*k_w`` shifted (strided, dilated) views of the input side by side ("im2col", one gather with
a constant index table built in NumPy) and does one matrix product. The backward pass is written
by hand right below its forward (CS231n contract ``forward(...) -> (out, cache)``,
``backward(dout, cache) -> grads``) and is itself a convolution of the same kind: ``dw`` is
patches^T @ dout, and ``dx`` (the correlation of the stride-dilated, padded ``dout`` with the
flipped, channel-swapped kernel) is computed as dout @ w^T sent back to the positions it was read
from (col2im: each tap's block zero-padded back into place, the blocks summed in one fused pass).
The differentiable functions (``conv2d``, ``max_pool2d``, ``avg_pool2d``) use that backward through
``jax.custom_vjp``, so ``jax.grad`` of a jitted network runs the same hand-written code.

Taught in: notebooks/10_convolutional_networks.ipynb
"""
from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from course_lib._validation import (as_float_array, check_finite, check_ndim, check_option,
                                    is_concrete)
from course_lib.training import (_as_tree, _check_label_smoothing, _flatten_host, _jit,  # train_cnn
                                 _smoothed_cross_entropy, _unflatten)

__all__ = [
    "conv_output_size", "conv_output_shape", "resolve_padding",
    "conv2d", "conv2d_forward", "conv2d_backward",
    "max_pool2d", "max_pool_forward", "max_pool_backward",
    "avg_pool2d", "avg_pool_forward", "avg_pool_backward",
    "local_response_norm", "dropout", "dropout_forward", "dropout_backward",
    "conv_param_count", "dense_param_count",
    "init_cnn", "cnn_apply", "cnn_features", "cnn_predict", "train_cnn", "CNN_LAYERS",
]


# --------------------------------------------------------------------------- argument helpers
def _pair(value, name: str, *, minimum: int = 1):
    """An int or a pair of ints -> a pair of Python ints >= minimum."""
    vals = (value, value) if isinstance(value, (int, np.integer)) else value
    try:
        vals = tuple(vals)
    except TypeError:
        raise TypeError(f"{name} must be an int or a pair of ints, got {type(value).__name__}") from None
    if len(vals) != 2 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                                 for v in vals):
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
    if any(v < minimum for v in vals):
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return int(vals[0]), int(vals[1])


def conv_output_size(n: int, k: int, stride: int = 1, padding=0, dilation: int = 1) -> int:
    """Output length of a convolution or pooling along one axis.

    ``floor((n + pad_lo + pad_hi - dilation*(k-1) - 1) / stride) + 1``; ``padding`` is an int
    (the same on both sides) or a pair ``(lo, hi)``. Raises ``ValueError`` if the (dilated)
    kernel does not fit in the padded input.

    Taught in: notebooks/10_convolutional_networks.ipynb
    """
    for v, name in ((n, "n"), (k, "k"), (stride, "stride"), (dilation, "dilation")):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    lo, hi = _pair(padding, "padding", minimum=0)
    span = dilation * (k - 1) + 1
    if n + lo + hi < span:
        raise ValueError(f"the kernel (size {k}, dilation {dilation}, span {span}) is larger than the "
                         f"padded input (size {n} + padding {lo}+{hi}); pad the input or use a "
                         f"smaller kernel")
    return (n + lo + hi - span) // stride + 1


def resolve_padding(padding, in_hw, k_hw, stride=1, dilation=1):
    """Turn ``padding`` into explicit ``((top, bottom), (left, right))``.

    ``padding`` is ``"valid"`` (no padding), ``"same"`` (output size ``ceil(n / stride)``, the extra
    row/column going to the bottom/right, like ``lax.conv_general_dilated``), an int, a pair
    ``(ph, pw)`` or explicit ``((top, bottom), (left, right))``.
    """
    stride, dilation = _pair(stride, "stride"), _pair(dilation, "dilation")
    if isinstance(padding, str):
        check_option(padding.lower(), "padding", ("valid", "same"))
        if padding.lower() == "valid":
            return (0, 0), (0, 0)
        pads = []
        for n, k, s, d in zip(in_hw, k_hw, stride, dilation):
            out = -(-n // s)
            total = max((out - 1) * s + d * (k - 1) + 1 - n, 0)
            pads.append((total // 2, total - total // 2))
        return tuple(pads)
    if isinstance(padding, (int, np.integer)) and not isinstance(padding, bool):
        p = _pair(padding, "padding", minimum=0)
        return (p[0], p[0]), (p[1], p[1])
    try:
        items = tuple(padding)
    except TypeError:
        raise TypeError(f"padding must be 'valid', 'same', an int, a pair or ((top, bottom), "
                        f"(left, right)), got {type(padding).__name__}") from None
    if len(items) != 2:
        raise ValueError(f"padding must have 2 entries (height, width), got {padding!r}")
    if all(isinstance(p, (int, np.integer)) for p in items):
        ph, pw = _pair(items, "padding", minimum=0)
        return (ph, ph), (pw, pw)
    return _pair(items[0], "padding[0]", minimum=0), _pair(items[1], "padding[1]", minimum=0)


def conv_output_shape(input_shape, kernel_shape, stride=1, padding="valid", dilation=1):
    """Output shape ``(N, H_out, W_out, C_out)`` of :func:`conv2d` for NHWC input and HWIO kernel.

    Raises ``ValueError`` on a channel mismatch or a kernel that does not fit.
    """
    if len(input_shape) != 4:
        raise ValueError(f"input_shape must have 4 entries (N, H, W, C), got {tuple(input_shape)}")
    if len(kernel_shape) != 4:
        raise ValueError(f"kernel_shape must have 4 entries (KH, KW, C_in, C_out), got "
                         f"{tuple(kernel_shape)}")
    n, h, w, c = input_shape
    kh, kw, cin, cout = kernel_shape
    if c != cin:
        raise ValueError(f"w has {cin} input channels (kernel shape {tuple(kernel_shape)}) but x has "
                         f"{c} channels (input shape {tuple(input_shape)}); they must match")
    stride, dilation = _pair(stride, "stride"), _pair(dilation, "dilation")
    (pt, pb), (pl, pr) = resolve_padding(padding, (h, w), (kh, kw), stride, dilation)
    ho = conv_output_size(h, kh, stride[0], (pt, pb), dilation[0])
    wo = conv_output_size(w, kw, stride[1], (pl, pr), dilation[1])
    return n, ho, wo, cout


def conv_param_count(kh: int, kw: int, c_in: int, c_out: int, bias: bool = True) -> int:
    """Parameters of a conv layer: ``kh*kw*c_in*c_out (+ c_out)``, independent of the image size."""
    return kh * kw * c_in * c_out + (c_out if bias else 0)


def dense_param_count(n_in: int, n_out: int, bias: bool = True) -> int:
    """Parameters of a dense layer: ``n_in*n_out (+ n_out)``."""
    return n_in * n_out + (n_out if bias else 0)


def _check_image(x, name="x"):
    x = as_float_array(x, name)
    if jnp.ndim(x) != 4:
        raise ValueError(f"{name} must have 4 dimension(s) (N, H, W, C), got shape "
                         f"{tuple(jnp.shape(x))}; add a batch axis with {name}[None] or a channel "
                         f"axis with {name}[..., None]")
    return check_finite(x, name)


# --------------------------------------------------------------------------- conv core
@functools.lru_cache(maxsize=128)
def _tap_index(hp, wp, kh, kw, stride, dilation):
    """Where each patch entry is read from (NumPy, built once per geometry): ``(idx, ho, wo)``.

    ``idx`` (ho*wo*kh*kw,): the flat position ``(y*s_h + i*d_h) * wp + (x*s_w + j*d_w)`` in the
    padded image that output pixel (y, x), tap (i, j) reads, ordered (y, x, i, j).
    """
    (sh, sw), (dh, dw) = stride, dilation
    ho = (hp - dh * (kh - 1) - 1) // sh + 1
    wo = (wp - dw * (kw - 1) - 1) // sw + 1
    y, x, i, j = np.meshgrid(np.arange(ho), np.arange(wo), np.arange(kh), np.arange(kw),
                             indexing="ij")
    idx = ((y * sh + i * dh) * wp + (x * sw + j * dw)).reshape(-1)
    return idx.astype(np.int32), ho, wo


def _gather_rows(a, rows):
    """``a[:, rows, :]`` for a constant, in-bounds NumPy index array (a single gather)."""
    return a.at[:, rows, :].get(mode="promise_in_bounds")


def _patches(xp, kh, kw, stride, dilation):
    """im2col: (N, ho, wo, kh*kw*C), ordered (i, j, c) like w.reshape(-1, C_out).

    One gather with constant indices (:func:`_tap_index`) reads the kh*kw shifted (strided,
    dilated) views side by side: it compiles about 8x faster than kh*kw slices concatenated and
    runs faster too (benchmarks/bench_conv.py).
    """
    n, hp, wp, c = xp.shape
    idx, ho, wo = _tap_index(hp, wp, kh, kw, stride, dilation)
    return _gather_rows(xp.reshape(n, hp * wp, c), idx).reshape(n, ho, wo, kh * kw * c)


def _conv_fwd(xp, w, stride, dilation):
    kh, kw, c, o = w.shape
    p = _patches(xp, kh, kw, stride, dilation)
    out = jnp.dot(p.reshape(-1, kh * kw * c), w.reshape(-1, o)).reshape(p.shape[:3] + (o,))
    return out, p


def _conv_bwd(p, w, g, xp_hw, stride, dilation):
    """Gradients of the padded-input correlation: (dxp, dw).

    dw[i, j, c, o] = sum_{n,y,x} patches[n, y, x, (i, j, c)] * g[n, y, x, o]   (patches^T @ g)
    dpatches = g @ w^T, and every entry goes back to the input position it was read from
    (col2im): tap (i, j)'s (N, ho, wo, C) block is zero-padded back to the positions it read
    (offset i*d, spacing s) and the kh*kw blocks are summed (:func:`_scatter_taps`, which XLA fuses
    into one kernel). The result is the transpose of the forward correlation, i.e. the correlation
    of the stride-dilated ``g`` with the flipped kernel (channels swapped), computed without
    building its patches. (The sum as one gather with an inverse index table and a reduction took
    1.6 of 6.1 ms for N=64, C=8, 28x28, O=16; padded blocks save 0.3 ms of that.)
    """
    kh, kw, c, o = w.shape
    n, ho, wo, _ = g.shape
    g2 = g.reshape(-1, o)
    dw = jnp.dot(p.reshape(-1, kh * kw * c).T, g2).reshape(w.shape)
    dp = jnp.dot(g2, w.reshape(-1, o).T).reshape(n, ho, wo, kh, kw, c)
    parts = [dp[:, :, :, i, j, :] for i in range(kh) for j in range(kw)]
    return _scatter_taps(parts, (n,) + tuple(xp_hw) + (c,), (kh, kw), stride, ho, wo, dilation), dw


#: Bytes of patch matrix per chunk of images. A big batch is convolved a few images at a time
#: (``lax.map`` / ``lax.scan`` over chunks) so that each chunk's patch matrix stays in the CPU
#: cache instead of making a round trip through memory: measured 1.5-2x faster for N=64, 28x28.
_CHUNK_BYTES = 1 << 20


def _chunk_size(xp, w, stride, dilation):
    """Images per chunk (the whole batch when its patch matrix is small).

    At most ``_CHUNK_BYTES`` of patches per chunk, and where possible equal chunks: the fewest
    chunks k that divide the batch, if one of k_min .. 2 k_min does (k_min: the fewest that fit),
    so no remainder is convolved on its own. The digits CNN's second convolution (batch 64,
    18 KB of patches per image) then runs as 2 x 32 images instead of 56 + 8: its training took
    2.6 % less time (A/B in one process)."""
    kh, kw, c, _ = w.shape
    n, hp, wp, _ = xp.shape
    ho = (hp - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    wo = (wp - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    per_image = ho * wo * kh * kw * c * xp.dtype.itemsize
    cap = max(1, min(n, _CHUNK_BYTES // max(per_image, 1)))
    k_min = -(-n // cap)
    for k in range(k_min, min(2 * k_min, n) + 1):
        if n % k == 0:
            return n // k
    return cap


def _in_chunks(xs, size):
    """Split the batch axis of each array into (n // size, size, ...) and the remainder."""
    m = xs[0].shape[0] // size * size
    main = tuple(a[:m].reshape((m // size, size) + a.shape[1:]) for a in xs)
    rest = tuple(a[m:] for a in xs)
    return main, rest, m


def _conv_fwd_chunked(xp, w, stride, dilation):
    """``_conv_fwd(...)[0]`` computed chunk by chunk over the batch (same numbers)."""
    size = _chunk_size(xp, w, stride, dilation)
    if size >= xp.shape[0]:
        return _conv_fwd(xp, w, stride, dilation)[0]
    (xm,), (xr,), m = _in_chunks((xp,), size)
    out = lax.map(lambda xc: _conv_fwd(xc, w, stride, dilation)[0], xm)
    out = out.reshape((m,) + out.shape[2:])
    if m == xp.shape[0]:
        return out
    return jnp.concatenate([out, _conv_fwd(xr, w, stride, dilation)[0]])


def _conv_bwd_chunked(xp, w, g, stride, dilation):
    """``_conv_bwd`` chunk by chunk, rebuilding each chunk's patches from ``xp`` (in cache)."""
    def one(xc, gc):
        p = _patches(xc, w.shape[0], w.shape[1], stride, dilation)
        return _conv_bwd(p, w, gc, xc.shape[1:3], stride, dilation)

    size = _chunk_size(xp, w, stride, dilation)
    if size >= xp.shape[0]:
        return one(xp, g)

    def body(dw, chunk):
        dxc, dwc = one(*chunk)
        return dw + dwc, dxc

    (xm, gm), (xr, gr), m = _in_chunks((xp, g), size)
    dw, dxp = lax.scan(body, jnp.zeros_like(w), (xm, gm))
    dxp = dxp.reshape((m,) + dxp.shape[2:])
    if m < xp.shape[0]:
        dxr, dwr = one(xr, gr)
        dxp, dw = jnp.concatenate([dxp, dxr]), dw + dwr
    return dxp, dw


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _conv_vjp(xp, w, stride, dilation):
    return _conv_fwd_chunked(xp, w, stride, dilation)


def _conv_vjp_fwd(xp, w, stride, dilation):
    return _conv_fwd_chunked(xp, w, stride, dilation), (xp, w)


def _conv_vjp_bwd(stride, dilation, res, g):
    xp, w = res
    return _conv_bwd_chunked(xp, w, g, stride, dilation)


_conv_vjp.defvjp(_conv_vjp_fwd, _conv_vjp_bwd)


def _pad_hw(x, pads):
    (pt, pb), (pl, pr) = pads
    if pt == pb == pl == pr == 0:
        return x
    return jnp.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))


@functools.partial(jax.jit, static_argnums=(3, 4, 5))
def _conv2d_core(x, w, b, stride, pads, dilation):
    out = _conv_vjp(_pad_hw(x, pads), w, stride, dilation)
    return out if b is None else out + b


def _validate_conv(x, w, b, stride, padding, dilation):
    x = _check_image(x, "x")
    w = as_float_array(w, "w")
    if jnp.ndim(w) != 4:
        raise ValueError(f"w must have 4 dimension(s) (KH, KW, C_in, C_out), got shape "
                         f"{tuple(jnp.shape(w))}")
    check_finite(w, "w")
    if b is not None:
        b = as_float_array(b, "b")
        if jnp.shape(b) != (w.shape[3],):
            raise ValueError(f"b must have shape ({w.shape[3]},) (one bias per output channel), got "
                             f"{tuple(jnp.shape(b))}")
        check_finite(b, "b")
    stride, dilation = _pair(stride, "stride"), _pair(dilation, "dilation")
    pads = resolve_padding(padding, x.shape[1:3], w.shape[:2], stride, dilation)
    conv_output_shape(x.shape, w.shape, stride, pads, dilation)       # channel / size errors
    return x, w, b, stride, pads, dilation


def conv2d(x, w, b=None, *, stride=1, padding="valid", dilation=1):
    """2-D cross-correlation (what deep learning calls convolution), batched, multi-channel.

    x: (N, H, W, C_in); w: (KH, KW, C_in, C_out); b: (C_out,) or None.
    ``padding``: "valid", "same", int, (ph, pw) or ((top, bottom), (left, right));
    ``stride``, ``dilation``: int or (sh, sw). Returns (N, H_out, W_out, C_out) with
    ``out[n,y,x,o] = b[o] + sum_{i,j,c} xpad[n, y*s+i*d, x*s+j*d, c] w[i,j,c,o]``.
    Differentiable with ``jax.grad``; the gradient is the hand-written one of :func:`conv2d_backward`.

    Taught in: notebooks/10_convolutional_networks.ipynb
    """
    x, w, b, stride, pads, dilation = _validate_conv(x, w, b, stride, padding, dilation)
    return _conv2d_core(x, w, b, stride, pads, dilation)


@functools.partial(jax.jit, static_argnums=(3, 4, 5))
def _conv2d_forward_core(x, w, b, stride, pads, dilation):
    out, p = _conv_fwd(_pad_hw(x, pads), w, stride, dilation)
    return (out if b is None else out + b), p


def conv2d_forward(x, w, b=None, *, stride=1, padding="valid", dilation=1):
    """Layer-contract forward of :func:`conv2d`: returns ``(out, cache)``.

    The cache holds the patch matrix (im2col), the kernel and the static configuration.
    """
    x, w, b, stride, pads, dilation = _validate_conv(x, w, b, stride, padding, dilation)
    out, p = _conv2d_forward_core(x, w, b, stride, pads, dilation)
    return out, {"patches": p, "w": w, "has_bias": b is not None, "x_shape": tuple(x.shape),
                 "stride": stride, "pads": pads, "dilation": dilation}


@functools.partial(jax.jit, static_argnums=(3, 4, 5, 6))
def _conv2d_backward_core(g, p, w, x_shape, stride, pads, dilation):
    (pt, pb), (pl, pr) = pads
    hp, wp = x_shape[1] + pt + pb, x_shape[2] + pl + pr
    dxp, dw = _conv_bwd(p, w, g, (hp, wp), stride, dilation)
    dx = dxp[:, pt:pt + x_shape[1], pl:pl + x_shape[2], :]
    return dx, dw, jnp.sum(g, axis=(0, 1, 2))


def conv2d_backward(dout, cache):
    """Backward of :func:`conv2d_forward`: returns ``(dx, dw, db)`` (``db`` is None without bias).

    dw = patches^T @ dout; dx = col2im(dout @ w^T), which equals the correlation of the
    zero-dilated (by the stride) and padded dout with the flipped kernel whose in/out channels are
    swapped; db = sum of dout over N, H, W.
    """
    dout = as_float_array(dout, "dout")
    want = cache["patches"].shape[:3] + (cache["w"].shape[3],)
    if tuple(jnp.shape(dout)) != want:
        raise ValueError(f"dout must have the forward output's shape {want}, got "
                         f"{tuple(jnp.shape(dout))}")
    check_finite(dout, "dout")
    dx, dw, db = _conv2d_backward_core(dout, cache["patches"], cache["w"], cache["x_shape"],
                                       cache["stride"], cache["pads"], cache["dilation"])
    return dx, dw, (db if cache["has_bias"] else None)


# --------------------------------------------------------------------------- pooling
def _pool_geometry(x_shape, kernel, stride):
    kernel = _pair(kernel, "kernel")
    stride = kernel if stride is None else _pair(stride, "stride")
    ho = conv_output_size(x_shape[1], kernel[0], stride[0])
    wo = conv_output_size(x_shape[2], kernel[1], stride[1])
    return kernel, stride, ho, wo


def _reshape_ok(x_shape, kernel, stride):
    return kernel == stride


def _windows(x, kernel, ho, wo):
    """Non-overlapping windows as (N, ho, kh, wo, kw, C) by a reshape (crop the remainder)."""
    kh, kw = kernel
    n, _, _, c = x.shape
    return x[:, :ho * kh, :wo * kw, :].reshape(n, ho, kh, wo, kw, c)


def _scatter_taps(parts, x_shape, kernel, stride, ho, wo, dilation=(1, 1)):
    """Sum each tap's (N, ho, wo, C) contribution back into input positions (the col2im step):
    tap (i, j), listed row by row, read positions (i*d_h + y*s_h, j*d_w + x*s_w)."""
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    _, h, w, _ = x_shape
    if kernel == stride and dilation == (1, 1):                 # disjoint windows: a reshape
        rows = [jnp.stack(parts[i * kw:(i + 1) * kw], axis=3) for i in range(kh)]
        dx = jnp.stack(rows, axis=2).reshape(x_shape[0], ho * kh, wo * kw, x_shape[3])
        return jnp.pad(dx, ((0, 0), (0, h - ho * kh), (0, w - wo * kw), (0, 0)))
    zero = jnp.zeros((), parts[0].dtype)
    total = 0
    for t, part in enumerate(parts):
        i, j = divmod(t, kw)
        top, left = i * dh, j * dw
        total = total + lax.pad(part, zero, [(0, 0, 0), (top, h - top - (ho - 1) * sh - 1, sh - 1),
                                             (left, w - left - (wo - 1) * sw - 1, sw - 1), (0, 0, 0)])
    return total


def _taps(xp, kh, kw, ho, wo, stride, dilation):
    """The kh*kw shifted views xp[:, i*d + y*s, j*d + x*s, :], each (N, ho, wo, C)."""
    (sh, sw), (dh, dw) = stride, dilation
    return [xp[:, i * dh: i * dh + (ho - 1) * sh + 1: sh, j * dw: j * dw + (wo - 1) * sw + 1: sw, :]
            for i in range(kh) for j in range(kw)]


def _pool_taps(x, kernel, stride, ho, wo):
    if kernel == stride:
        win = _windows(x, kernel, ho, wo)
        return [win[:, :, i, :, j, :] for i in range(kernel[0]) for j in range(kernel[1])]
    return _taps(x, kernel[0], kernel[1], ho, wo, stride, (1, 1))


def _max_fwd(x, kernel, stride, ho, wo):
    if kernel == stride:
        return jnp.max(_windows(x, kernel, ho, wo), axis=(2, 4))
    taps = _pool_taps(x, kernel, stride, ho, wo)
    return functools.reduce(jnp.maximum, taps)


def _max_bwd(x, out, g, kernel, stride, ho, wo):
    """Route each output gradient to the first maximum of its window (row-major), like PyTorch."""
    taps = _pool_taps(x, kernel, stride, ho, wo)
    taken = jnp.zeros(out.shape, bool)
    parts = []
    for tap in taps:
        hit = (tap == out) & ~taken
        taken = taken | hit
        parts.append(jnp.where(hit, g, jnp.zeros((), g.dtype)))
    return _scatter_taps(parts, x.shape, kernel, stride, ho, wo)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3, 4))
def _max_pool_vjp(x, kernel, stride, ho, wo):
    return _max_fwd(x, kernel, stride, ho, wo)


def _max_pool_vjp_fwd(x, kernel, stride, ho, wo):
    out = _max_fwd(x, kernel, stride, ho, wo)
    return out, (x, out)


def _max_pool_vjp_bwd(kernel, stride, ho, wo, res, g):
    x, out = res
    return (_max_bwd(x, out, g, kernel, stride, ho, wo),)


_max_pool_vjp.defvjp(_max_pool_vjp_fwd, _max_pool_vjp_bwd)
_max_pool_jit = jax.jit(_max_pool_vjp, static_argnums=(1, 2, 3, 4))
_max_bwd_jit = jax.jit(_max_bwd, static_argnums=(3, 4, 5, 6))


def _validate_pool(x, kernel, stride):
    x = _check_image(x, "x")
    kernel, stride, ho, wo = _pool_geometry(x.shape, kernel, stride)
    return x, kernel, stride, ho, wo


def max_pool2d(x, kernel=2, stride=None):
    """Max pooling over ``kernel`` windows moved by ``stride`` (default: ``kernel``), no padding.

    x: (N, H, W, C) -> (N, H_out, W_out, C), ``H_out = floor((H - kh) / sh) + 1``. No parameters.
    Differentiable: the gradient goes to the (first) maximum of each window.

    Taught in: notebooks/10_convolutional_networks.ipynb
    """
    x, kernel, stride, ho, wo = _validate_pool(x, kernel, stride)
    return _max_pool_jit(x, kernel, stride, ho, wo)


def max_pool_forward(x, kernel=2, stride=None):
    """Layer-contract forward of :func:`max_pool2d`: ``(out, cache)``."""
    x, kernel, stride, ho, wo = _validate_pool(x, kernel, stride)
    out = _max_pool_jit(x, kernel, stride, ho, wo)
    return out, {"x": x, "out": out, "kernel": kernel, "stride": stride}


def _check_dout(dout, want):
    dout = as_float_array(dout, "dout")
    if tuple(jnp.shape(dout)) != tuple(want):
        raise ValueError(f"dout must have the forward output's shape {tuple(want)}, got "
                         f"{tuple(jnp.shape(dout))}")
    return check_finite(dout, "dout")


def max_pool_backward(dout, cache):
    """Backward of :func:`max_pool_forward`: ``dx`` (the window's first maximum gets ``dout``)."""
    out = cache["out"]
    dout = _check_dout(dout, out.shape)
    return _max_bwd_jit(cache["x"], out, dout, cache["kernel"], cache["stride"], out.shape[1],
                        out.shape[2])


def _avg_fwd(x, kernel, stride, ho, wo):
    if kernel == stride:
        return jnp.mean(_windows(x, kernel, ho, wo), axis=(2, 4))
    taps = _pool_taps(x, kernel, stride, ho, wo)
    return functools.reduce(jnp.add, taps) / (kernel[0] * kernel[1])


def _avg_bwd(g, x_shape, kernel, stride, ho, wo):
    part = g / (kernel[0] * kernel[1])
    return _scatter_taps([part] * (kernel[0] * kernel[1]), x_shape, kernel, stride, ho, wo)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3, 4))
def _avg_pool_vjp(x, kernel, stride, ho, wo):
    return _avg_fwd(x, kernel, stride, ho, wo)


def _avg_pool_vjp_fwd(x, kernel, stride, ho, wo):
    return _avg_fwd(x, kernel, stride, ho, wo), x.shape


def _avg_pool_vjp_bwd(kernel, stride, ho, wo, x_shape, g):
    return (_avg_bwd(g, x_shape, kernel, stride, ho, wo),)


_avg_pool_vjp.defvjp(_avg_pool_vjp_fwd, _avg_pool_vjp_bwd)
_avg_pool_jit = jax.jit(_avg_pool_vjp, static_argnums=(1, 2, 3, 4))
_avg_bwd_jit = jax.jit(_avg_bwd, static_argnums=(1, 2, 3, 4, 5))


def avg_pool2d(x, kernel=2, stride=None):
    """Average pooling (no padding): the mean of each ``kernel`` window, moved by ``stride``.

    Equal to a fixed (not learned) depthwise convolution with weights ``1/(kh*kw)``.

    Taught in: notebooks/10_convolutional_networks.ipynb
    """
    x, kernel, stride, ho, wo = _validate_pool(x, kernel, stride)
    return _avg_pool_jit(x, kernel, stride, ho, wo)


def avg_pool_forward(x, kernel=2, stride=None):
    """Layer-contract forward of :func:`avg_pool2d`: ``(out, cache)``."""
    x, kernel, stride, ho, wo = _validate_pool(x, kernel, stride)
    out = _avg_pool_jit(x, kernel, stride, ho, wo)
    return out, {"x_shape": tuple(x.shape), "out_shape": tuple(out.shape), "kernel": kernel,
                 "stride": stride}


def avg_pool_backward(dout, cache):
    """Backward of :func:`avg_pool_forward`: each input gets ``dout / (kh*kw)`` per window."""
    dout = _check_dout(dout, cache["out_shape"])
    return _avg_bwd_jit(dout, cache["x_shape"], cache["kernel"], cache["stride"],
                        cache["out_shape"][1], cache["out_shape"][2])


# --------------------------------------------------------------------------- LRN
@functools.partial(jax.jit, static_argnums=(1,))
def _lrn_core(x, size, alpha, beta, k):
    c = x.shape[-1]
    sq = jnp.pad(x * x, [(0, 0)] * (x.ndim - 1) + [(size // 2, (size - 1) // 2)])
    window = functools.reduce(jnp.add, [sq[..., t:t + c] for t in range(size)])
    return x / (k + (alpha / size) * window) ** beta


def local_response_norm(x, size: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 2.0):
    """Local response normalization across channels (AlexNet, 2012), PyTorch's convention:

    ``b[..., c] = a[..., c] / (k + alpha/size * sum_{c' in window(c)} a[..., c']^2)^beta``,
    the window being ``size`` neighbouring *channels* at the same pixel (not a spatial window).
    x: (..., C), channels last. Differentiable with ``jax.grad``.

    Taught in: notebooks/10_convolutional_networks.ipynb
    """
    x = as_float_array(x, "x")
    if jnp.ndim(x) < 1:
        raise ValueError("x must have at least 1 dimension (channels last), got a scalar")
    check_finite(x, "x")
    if not isinstance(size, (int, np.integer)) or isinstance(size, bool) or size < 1:
        raise ValueError(f"size must be a positive int (number of channels in the window), got {size!r}")
    for v, name in ((alpha, "alpha"), (beta, "beta"), (k, "k")):
        if not isinstance(v, (int, float, np.floating)) or not math.isfinite(float(v)):
            raise TypeError(f"{name} must be a finite number, got {v!r}")
    if k <= 0 or alpha < 0:
        raise ValueError(f"k must be > 0 and alpha >= 0, got k={k!r}, alpha={alpha!r}")
    return _lrn_core(x, int(size), float(alpha), float(beta), float(k))


# --------------------------------------------------------------------------- dropout
@jax.jit
def _dropout_mask(key, shape_like, rate):
    keep = jax.random.bernoulli(key, 1.0 - rate, shape_like.shape)
    return keep.astype(shape_like.dtype) / (1.0 - rate)


def _check_dropout(x, rate, key, train):
    x = as_float_array(x, "x")
    check_finite(x, "x")
    if not isinstance(train, (bool, np.bool_)):
        raise TypeError(f"train must be True or False, got {train!r}")
    try:
        r = float(rate)
    except (TypeError, ValueError):
        raise TypeError(f"rate must be a number in [0, 1), got {type(rate).__name__}") from None
    if not 0.0 <= r < 1.0:
        raise ValueError(f"rate must be in [0, 1) (the probability of dropping a unit), got {rate!r}")
    if train and r > 0 and key is None:
        raise ValueError("key must be a jax.random key when train=True (dropout is random); "
                         "pass train=False at evaluation time")
    return x, r


def dropout_forward(x, rate: float, key=None, *, train: bool = True):
    """Inverted dropout, layer contract: ``(out, cache)``.

    Training: each unit is kept with probability ``1 - rate`` and scaled by ``1/(1 - rate)``, a
    fresh mask for every call (every mini-batch), so ``E[out] = x``. Evaluation (``train=False``):
    the identity, no rescaling needed. The cache is the scaled mask.

    Taught in: notebooks/10_convolutional_networks.ipynb
    """
    x, r = _check_dropout(x, rate, key, train)
    if not train or r == 0.0:
        return x, None
    mask = _dropout_mask(key, x, r)
    return x * mask, mask


def dropout_backward(dout, cache):
    """Backward of :func:`dropout_forward`: ``dout * mask / (1 - rate)`` (identity in eval mode)."""
    dout = as_float_array(dout, "dout")
    if cache is None:
        return dout
    if jnp.shape(dout) != jnp.shape(cache):
        raise ValueError(f"dout must have the forward output's shape {tuple(jnp.shape(cache))}, got "
                         f"{tuple(jnp.shape(dout))}")
    return dout * cache


def dropout(x, rate: float, key=None, *, train: bool = True):
    """Inverted dropout (see :func:`dropout_forward`); returns only the output."""
    return dropout_forward(x, rate, key, train=train)[0]


# --------------------------------------------------------------------------- a small CNN
CNN_LAYERS = ("conv1", "pool1", "conv2", "pool2")


def init_cnn(seed: int = 0, in_channels: int = 1, n_classes: int = 10, channels=(16, 32),
             kernel: int = 3, image_hw=(8, 8)):
    """He-initialised parameters (numpy, float32) of conv-relu-pool-conv-relu-pool-dense.

    The convolutions are 'same', the pools 2x2; the dense layer sees
    ``(H//4) * (W//4) * channels[1]`` features.
    """
    rng = np.random.default_rng(seed)
    c1, c2 = channels
    h, w = image_hw
    feat = (h // 4) * (w // 4) * c2

    def he(shape, fan_in):
        return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)

    return {
        "conv1": {"w": he((kernel, kernel, in_channels, c1), kernel * kernel * in_channels),
                  "b": np.zeros(c1, np.float32)},
        "conv2": {"w": he((kernel, kernel, c1, c2), kernel * kernel * c1),
                  "b": np.zeros(c2, np.float32)},
        "dense": {"w": (rng.standard_normal((feat, n_classes)) / np.sqrt(feat)).astype(np.float32),
                  "b": np.zeros(n_classes, np.float32)},
    }


def _cnn_features(params, x, mask=None):
    """Every activation of the CNN of :func:`init_cnn`. ``mask`` (training only): an inverted-dropout
    mask for the flattened pool2 features, already scaled by 1 / (1 - rate) (train_cnn draws it on
    the host)."""
    h1 = jax.nn.relu(_conv_vjp(_pad_hw(x, ((1, 1), (1, 1))), params["conv1"]["w"], (1, 1), (1, 1))
                     + params["conv1"]["b"])
    p1 = _max_pool_vjp(h1, (2, 2), (2, 2), h1.shape[1] // 2, h1.shape[2] // 2)
    h2 = jax.nn.relu(_conv_vjp(_pad_hw(p1, ((1, 1), (1, 1))), params["conv2"]["w"], (1, 1), (1, 1))
                     + params["conv2"]["b"])
    p2 = _max_pool_vjp(h2, (2, 2), (2, 2), h2.shape[1] // 2, h2.shape[2] // 2)
    flat = p2.reshape(p2.shape[0], -1)
    if mask is not None:
        flat = flat * mask
    logits = flat @ params["dense"]["w"] + params["dense"]["b"]
    return {"conv1": h1, "pool1": p1, "conv2": h2, "pool2": p2, "logits": logits}


_cnn_features_jit = jax.jit(_cnn_features)
_cnn_logits_jit = jax.jit(lambda params, x: _cnn_features(params, x)["logits"])


def _check_cnn_input(params, x):
    x = _check_image(x, "x")
    cin = params["conv1"]["w"].shape[2]
    if x.shape[3] != cin:
        raise ValueError(f"x has {x.shape[3]} channels but params['conv1']['w'] expects {cin}")
    if x.shape[1] % 4 or x.shape[2] % 4:
        raise ValueError(f"x height and width must be multiples of 4 (two 2x2 pools), got "
                         f"{x.shape[1]}x{x.shape[2]}")
    return x


def cnn_features(params, x):
    """All intermediate maps of the CNN of :func:`init_cnn`: dict conv1, pool1, conv2, pool2, logits.

    x: (N, H, W, C_in) with H, W multiples of 4. conv maps are after the ReLU.
    """
    return _cnn_features_jit(params, _check_cnn_input(params, x))


def cnn_apply(params, x):
    """Logits (N, n_classes) of the CNN of :func:`init_cnn`."""
    return _cnn_logits_jit(params, _check_cnn_input(params, x))


_EVAL_BLOCK = 32          # small enough that the forward needs no chunking (less to compile)


def _logits_xla(params, x):
    """Logits of many images with the jitted forward, ``_EVAL_BLOCK`` at a time (the last block
    zero-padded): one compile serves every data set of the same image size. Used for the
    per-epoch validation of :func:`train_cnn`, where the compile is paid once and each call is
    several times cheaper than NumPy."""
    x = np.asarray(x)
    n = x.shape[0]
    padded = np.zeros((-(-n // _EVAL_BLOCK) * _EVAL_BLOCK,) + x.shape[1:], x.dtype)
    padded[:n] = x
    blocks = [_cnn_logits_jit(params, padded[i:i + _EVAL_BLOCK])
              for i in range(0, padded.shape[0], _EVAL_BLOCK)]
    return np.concatenate(jax.device_get(blocks))[:n]


def _np_conv_same(x, w, b):
    """NumPy 'same' stride-1 convolution (the im2col gather of :func:`_patches`, one product)."""
    kh, kw, c, o = w.shape
    n, h, wd, _ = x.shape
    (pt, pb), (pl, pr) = resolve_padding("same", (h, wd), (kh, kw))
    xp = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    idx, ho, wo = _tap_index(h + pt + pb, wd + pl + pr, kh, kw, (1, 1), (1, 1))
    p = xp.reshape(n, -1, c)[:, idx, :].reshape(n * ho * wo, kh * kw * c)
    return (p @ w.reshape(-1, o) + b).reshape(n, ho, wo, o)


def _np_pool2(x):
    h, w = x.shape[1] // 2 * 2, x.shape[2] // 2 * 2
    return np.maximum(np.maximum(x[:, 0:h:2, 0:w:2], x[:, 0:h:2, 1:w:2]),
                      np.maximum(x[:, 1:h:2, 0:w:2], x[:, 1:h:2, 1:w:2]))


def _logits_in_blocks(params, x, block: int = 512):
    """Logits of many images computed in NumPy, ``block`` images at a time: the same network as
    :func:`cnn_apply` (same numbers up to float rounding) without compiling anything, which is
    what a one-off prediction (:func:`cnn_predict`) needs on a CPU: an XLA compile of the
    forward pass costs more than the whole evaluation."""
    x = np.asarray(x)
    pr = jax.tree_util.tree_map(np.asarray, params)
    out = []
    for i in range(0, x.shape[0], block):
        h = x[i:i + block]
        for name in ("conv1", "conv2"):
            h = _np_pool2(np.maximum(_np_conv_same(h, pr[name]["w"], pr[name]["b"]), 0))
        out.append(h.reshape(h.shape[0], -1) @ pr["dense"]["w"] + pr["dense"]["b"])
    return np.concatenate(out)


def cnn_predict(params, x):
    """Predicted class indices (N,) of the CNN of :func:`init_cnn` (a NumPy array)."""
    return np.argmax(_logits_in_blocks(params, _check_cnn_input(params, x)), axis=-1)


def train_cnn(X_train, y_train, X_val=None, y_val=None, *, epochs: int = 30, batch_size: int = 64,
              learning_rate: float = 5e-3, seed: int = 0, channels=(32, 64), dropout: float = 0.3,
              params=None, augment_shift: int = 0, cosine_decay: bool = True,
              label_smoothing: float = 0.1):
    """Train the CNN of :func:`init_cnn` with Adam (``course_lib.optim``) and cross-entropy.

    The defaults are the recipe chosen on the validation sets of five digits splits (never on a
    test set; notebooks/10_convolutional_networks.ipynb section 9): 32 and 64 channels, inverted
    dropout (rate 0.3) on the features entering the dense layer, batches of 64, Adam 5e-3 with
    cosine decay, 30 epochs (mean validation accuracy 99.26%, min 98.88%; batches of 32 with
    Adam 3e-3 reached 98.81%, batches of 128 98.74%, 20 epochs 98.88%, shift augmentation 98.59%).
    Label smoothing 0.1 was added later, chosen by 5-fold cross-validation on the training +
    validation images of each split (two repetitions: 15,280 held-out predictions, 165 errors
    without smoothing, 130 with 0.1, 127 with 0.05; on split 0's images alone 25 and 17 of 3,056).
    ``benchmarks/bench_conv.py`` reports its test accuracy over 5 splits, trained on the training
    set, and refit on training + validation once the recipe is fixed.

    ``dropout``: rate of :func:`dropout` applied, during training only, to the flattened pool2
    features (a fresh mask every mini-batch). ``augment_shift > 0`` is data augmentation: every
    training image of every mini-batch is moved by a random offset of up to ``augment_shift``
    pixels in each direction (zero fill). ``cosine_decay``: the learning rate follows
    ``course_lib.schedules.cosine_decay`` down to 0 over all steps (the last epochs settle).
    ``label_smoothing`` = eps in [0, 1): train on the cross-entropy against ``(1 - eps) *
    one_hot(y) + eps / C`` (as ``course_lib.training.fit`` and ``optax.smooth_labels``): the network
    is no longer pushed towards infinite logits on the training images. As in ``fit``,
    ``train_loss`` is that smoothed loss (it cannot fall below the target's entropy, 0.50 nats for
    eps = 0.1 and 10 classes) and ``val_loss`` the plain cross-entropy.

    One jitted training step per mini-batch (a Python loop over steps: ``lax.scan`` around a
    convolution is several times slower on CPU). Returns ``(params, history)``: per epoch,
    ``train_loss`` and ``train_acc`` are the means over that epoch's mini-batches as they were
    trained (dropout on, weights changing: the usual running figures, free to compute), and with
    validation data ``val_loss`` and ``val_acc`` are measured at the end of the epoch.
    """
    X_train = _check_image(X_train, "X_train")
    y_train = np.asarray(y_train)
    if y_train.shape != (X_train.shape[0],) or not np.issubdtype(y_train.dtype, np.integer):
        raise ValueError(f"y_train must be integer labels of shape ({X_train.shape[0]},), got "
                         f"{y_train.dtype} {y_train.shape}")
    if (X_val is None) != (y_val is None):
        raise ValueError("pass both X_val and y_val, or neither")
    if X_val is not None:
        X_val = _check_image(X_val, "X_val")
        y_val = np.asarray(y_val)
        if X_val.shape[1:] != X_train.shape[1:]:
            raise ValueError(f"X_val images must have the shape of X_train's {X_train.shape[1:]}, "
                             f"got {X_val.shape[1:]}")
        if y_val.shape != (X_val.shape[0],) or not np.issubdtype(y_val.dtype, np.integer):
            raise ValueError(f"y_val must be integer labels of shape ({X_val.shape[0]},), got "
                             f"{y_val.dtype} {y_val.shape}")
    for v, name in ((epochs, "epochs"), (batch_size, "batch_size")):
        if not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    if batch_size > X_train.shape[0]:
        raise ValueError(f"batch_size must be <= the number of training images "
                         f"({X_train.shape[0]}), got {batch_size}")
    if not isinstance(augment_shift, (int, np.integer)) or augment_shift < 0:
        raise ValueError(f"augment_shift must be an int >= 0, got {augment_shift!r}")
    if isinstance(learning_rate, bool) or not isinstance(learning_rate, (int, float, np.floating)) \
            or not math.isfinite(float(learning_rate)) or learning_rate <= 0:
        raise ValueError(f"learning_rate must be a finite number > 0, got {learning_rate!r}")
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float, np.floating)) \
            or not 0.0 <= float(dropout) < 1.0:
        raise ValueError(f"dropout must be a rate in [0, 1), got {dropout!r}")
    eps = _check_label_smoothing(label_smoothing, "cross_entropy", None)
    n_classes = int(y_train.max()) + 1
    if params is None:
        params = init_cnn(seed, X_train.shape[3], n_classes, channels, image_hw=X_train.shape[1:3])
    # The step works on ONE flat parameter vector (and Adam on one leaf): fewer arguments to pass
    # per call and far fewer kernels to compile than six separate leaves (flattened in NumPy, so
    # nothing is compiled for it either).
    leaves, treedef = jax.tree_util.tree_flatten(params)
    layout = (treedef, tuple(np.shape(leaf) for leaf in leaves), np.result_type(*leaves))
    flat = _flatten_host(params, layout)
    n_batches = X_train.shape[0] // batch_size
    rate = float(dropout)
    # The learning rate of every step, computed here (course_lib.schedules.cosine_decay's formula,
    # lr * (1 + cos(pi * t / T)) / 2 at step t = 0 .. T-1) and passed to the step as an argument:
    # one compiled step serves every learning rate, schedule and data-set size (a refit included).
    t = np.arange(epochs * n_batches)
    lrs = float(learning_rate) * (0.5 * (1 + np.cos(np.pi * t / t.size)) if cosine_decay
                                  else np.ones(t.size))
    lrs = lrs.astype(flat.dtype).reshape(epochs, n_batches)
    step = _make_train_step(int(augment_shift), *layout[:2])
    from course_lib.optim import AdamState
    state = AdamState(np.zeros((), np.int32), np.zeros_like(flat), np.zeros_like(flat))
    eps = np.asarray(eps, flat.dtype)                        # an argument: no recompile per value
    rng = np.random.default_rng(seed)
    Xtr = np.asarray(X_train)
    feat = params["dense"]["w"].shape[0]
    history = {"train_loss": [], "train_acc": [], "val_loss": [], "val_acc": []}
    for epoch in range(epochs):
        order = rng.permutation(Xtr.shape[0])[:n_batches * batch_size].reshape(n_batches, batch_size)
        xs, ys = Xtr[order], y_train[order].astype(np.int32)        # one gather per epoch
        offsets = rng.integers(0, 2 * augment_shift + 1, (n_batches, batch_size, 2)).astype(np.int32)
        # inverted dropout masks for the whole epoch, drawn on the host: a fresh mask per
        # mini-batch, kept with probability 1 - rate and scaled by 1 / (1 - rate)
        masks = ((rng.random((n_batches, batch_size, feat), np.float32) >= rate)
                 .astype(flat.dtype) / np.asarray(1.0 - rate, flat.dtype))
        stats = []
        for b in range(n_batches):
            flat, state, loss, acc = step(flat, state, xs[b], ys[b], offsets[b], masks[b],
                                          lrs[epoch, b], eps)
            stats.append((loss, acc))
        loss, acc = np.mean(jax.device_get(stats), axis=0)
        history["train_loss"].append(float(loss))
        history["train_acc"].append(float(acc))
        if X_val is not None:
            loss, acc = _evaluate(_as_tree(flat, layout), X_val, np.asarray(y_val))
            history["val_loss"].append(float(loss))
            history["val_acc"].append(float(acc))
    if X_val is None:
        del history["val_loss"], history["val_acc"]
    return _as_tree(flat, layout), history                  # sliced on the host: no compile


# The training step is the biggest program of the course (forward, hand-written backward and Adam
# of two conv layers: ~60 kernels). LLVM at -O1 instead of XLA's default compiles it in ~0.57 s
# instead of ~0.76 s on this machine, and the compiled step ran just as fast (1.85-1.91 vs 1.89-2.14
# ms) with bit-identical results (measured on the step and on whole train_cnn runs;
# benchmarks/bench_conv.py times the cold start). CPU backend only.
_STEP_COMPILER_OPTIONS = {"xla_backend_optimization_level": 1}


@functools.lru_cache(maxsize=8)
def _make_train_step(shift, treedef, shapes):
    from course_lib import optim

    opt = optim.adam(1.0)       # Adam's step is linear in the learning rate: scaled in the step

    def crop(img, offset):
        return lax.dynamic_slice(img, (offset[0], offset[1], 0), (img.shape[0] - 2 * shift,
                                                                 img.shape[1] - 2 * shift, img.shape[2]))

    def loss_fn(flat, xb, yb, mask, eps):
        logits = _cnn_features(_unflatten(flat, treedef, shapes), xb, mask=mask)["logits"]
        return _smoothed_cross_entropy(logits, yb, eps), jnp.mean(jnp.argmax(logits, -1) == yb)

    @functools.partial(_jit, options=_STEP_COMPILER_OPTIONS)
    def step(flat, state, xb, yb, offsets, mask, lr, eps):
        if shift:
            xb = jax.vmap(crop)(_pad_hw(xb, ((shift, shift), (shift, shift))), offsets)
        (loss, acc), grads = jax.value_and_grad(loss_fn, has_aux=True)(flat, xb, yb, mask, eps)
        updates, state = opt.update(grads, state, flat)
        return flat + lr * updates, state, loss, acc

    return step


def _evaluate(params, x, y):
    """(mean cross-entropy, accuracy) on a data set, computed from blocked logits on the host."""
    logits = _logits_xla(params, x).astype(np.float64)
    z = logits - logits.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return -np.mean(logp[np.arange(len(y)), y]), np.mean(np.argmax(logits, 1) == y)
