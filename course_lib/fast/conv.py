"""The fast wing of ``course_lib.conv``: the same functions, same signatures, same numbers, faster.

``course_lib.conv`` is what a student reads: loops over kernel taps, run op by op. This module
computes the same things the way XLA on a CPU runs fastest, and ``tests/test_fast_conv.py`` checks
every function against its reference (values and gradients, float64: strides, padding, dilation,
ties in max pooling, dropout masks, chunked batches, whole training runs). Measurements behind the
choices below are in ``benchmarks/README.md`` (``benchmarks/bench_conv.py``).

* **im2col by one gather.** The ``k_h*k_w`` strided, dilated views the reference slices one by one
  are read with ONE gather from a constant index table built in NumPy and cached per geometry
  (:func:`_tap_index`); then one matrix product.
* **col2im by taps.** The backward's ``dout @ w^T`` is sent back to the input tap by tap, each
  tap's block zero-padded into place (``lax.pad`` with interior padding for the stride) and the
  blocks summed, which XLA fuses into one kernel (:func:`_scatter_taps`).
* **Chunks.** A big batch is convolved a few images at a time (``lax.map``/``lax.scan``) so each
  chunk's patch matrix stays in the CPU cache (:func:`_chunk_size`).
* **custom_vjp.** ``conv2d``, ``max_pool2d`` and ``avg_pool2d`` are differentiated with the
  hand-written backward above, not by autodiff of the forward.
* **Jitted, compile-cached.** Every function is one jitted core per configuration; the digits
  CNN's training step is compiled once per shape with LLVM at -O1 (``_STEP_COMPILER_OPTIONS``),
  works on one flat parameter vector, and takes the learning rate and label smoothing as
  arguments, so one compile serves every run.

Validation is the reference's (the same checks and messages). Nothing in the reference wing
imports this module.

Used in: notebooks/10_convolutional_networks.ipynb (training the digits CNN)
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from course_lib import conv as ref
from course_lib import losses
from course_lib._validation import as_int_pair, check_cache
from course_lib.optim import AdamState
from course_lib.fast.training import _as_tree, _flatten_host, _jit, _unflatten

__all__ = [
    "im2col", "conv2d_forward", "conv2d_backward", "conv2d",
    "max_pool_forward", "max_pool_backward", "max_pool2d",
    "avg_pool_forward", "avg_pool_backward", "avg_pool2d",
    "cnn_forward", "cnn_features", "cnn_apply", "cnn_predict", "train_cnn",
]


# --------------------------------------------------------------------------- im2col and col2im
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


def _patches(xp, kh, kw, stride, dilation):
    """im2col of the padded input: (N, ho, wo, kh*kw*C), ordered (i, j, c) like w.reshape(-1, O),
    as one gather with the constant indices of :func:`_tap_index`."""
    n, hp, wp, c = xp.shape
    idx, ho, wo = _tap_index(hp, wp, kh, kw, stride, dilation)
    rows = xp.reshape(n, hp * wp, c).at[:, idx, :].get(mode="promise_in_bounds")
    return rows.reshape(n, ho, wo, kh * kw * c)


def _scatter_taps(parts, x_shape, kernel, stride, ho, wo, dilation=(1, 1)):
    """col2im: sum each tap's (N, ho, wo, C) block back into the input positions it was read from.
    Tap (i, j), listed row by row, read positions (i*d_h + y*s_h, j*d_w + x*s_w)."""
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


def _conv_fwd(xp, w, stride, dilation):
    kh, kw, c, o = w.shape
    p = _patches(xp, kh, kw, stride, dilation)
    out = jnp.dot(p.reshape(-1, kh * kw * c), w.reshape(-1, o)).reshape(p.shape[:3] + (o,))
    return out, p


def _conv_bwd(p, w, g, xp_hw, stride, dilation):
    """(dxp, dw) of the padded-input correlation: ``dw = patches^T @ g`` and
    ``dxp = col2im(g @ w^T)`` (:func:`_scatter_taps`)."""
    kh, kw, c, o = w.shape
    n, ho, wo, _ = g.shape
    g2 = g.reshape(-1, o)
    dw = jnp.dot(p.reshape(-1, kh * kw * c).T, g2).reshape(w.shape)
    dp = jnp.dot(g2, w.reshape(-1, o).T).reshape(n, ho, wo, kh, kw, c)
    parts = [dp[:, :, :, i, j, :] for i in range(kh) for j in range(kw)]
    return _scatter_taps(parts, (n,) + tuple(xp_hw) + (c,), (kh, kw), stride, ho, wo, dilation), dw


# --------------------------------------------------------------------------- chunks over the batch
#: Bytes of patch matrix per chunk of images (see :func:`_chunk_size`).
_CHUNK_BYTES = 1 << 20


def _chunk_size(xp, w, stride, dilation):
    """Images per chunk (the whole batch when its patch matrix is small): at most ``_CHUNK_BYTES``
    of patches per chunk, and where possible equal chunks (the fewest chunks k that divide the
    batch, if one of k_min .. 2 k_min does), so no remainder is convolved on its own."""
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


# --------------------------------------------------------------------------- convolution
@functools.partial(jax.jit, static_argnums=(3, 4, 5))
def _conv2d_core(x, w, b, stride, pads, dilation):
    out = _conv_vjp(_pad_hw(x, pads), w, stride, dilation)
    return out if b is None else out + b


def _checked_conv(x, w, b, stride, padding, dilation):
    x, w, b = ref._check_conv(x, w, b)
    stride, pads, dilation, _ = ref._conv_geometry(x.shape, w.shape, stride, padding, dilation)
    return x, w, b, stride, pads, dilation


def conv2d(x, w, b=None, *, stride=1, padding="valid", dilation=1):
    """:func:`course_lib.conv.conv2d`, fast: im2col by one gather, chunked over the batch, and
    differentiated with the hand-written backward (``custom_vjp``)."""
    return _conv2d_core(*_checked_conv(x, w, b, stride, padding, dilation))


@functools.partial(jax.jit, static_argnums=(3, 4, 5))
def _conv2d_forward_core(x, w, b, stride, pads, dilation):
    out, p = _conv_fwd(_pad_hw(x, pads), w, stride, dilation)
    return (out if b is None else out + b), p


def conv2d_forward(x, w, b=None, *, stride=1, padding="valid", dilation=1):
    """:func:`course_lib.conv.conv2d_forward`, fast: ``(out, cache)``, the cache holding the patch
    matrix."""
    x, w, b, stride, pads, dilation = _checked_conv(x, w, b, stride, padding, dilation)
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
    """:func:`course_lib.conv.conv2d_backward`, fast: ``(dx, dw, db)`` with ``dw = patches^T @ dout``
    and ``dx = col2im(dout @ w^T)``."""
    check_cache(cache, "cache", "course_lib.fast.conv.conv2d_forward",
                ("patches", "w", "has_bias", "x_shape", "stride", "pads", "dilation"))
    dout = ref._check_dout(dout, cache["patches"].shape[:3] + (cache["w"].shape[3],))
    dx, dw, db = _conv2d_backward_core(dout, cache["patches"], cache["w"], cache["x_shape"],
                                       cache["stride"], cache["pads"], cache["dilation"])
    return dx, dw, (db if cache["has_bias"] else None)


@functools.partial(jax.jit, static_argnums=(1, 2, 3, 4))
def _im2col_core(x, kernel_hw, stride, pads, dilation):
    return _patches(_pad_hw(x, pads), *kernel_hw, stride, dilation)


def im2col(x, kernel_hw, *, stride=1, padding="valid", dilation=1):
    """:func:`course_lib.conv.im2col`, fast: one gather with a cached index table."""
    x, kernel_hw = ref._check_images(x, "x"), as_int_pair(kernel_hw, "kernel_hw", minimum=1)
    stride, pads, dilation, _ = ref._conv_geometry(x.shape, kernel_hw + (x.shape[3], 1), stride,
                                                   padding, dilation)
    return _im2col_core(x, kernel_hw, stride, pads, dilation)


# --------------------------------------------------------------------------- pooling
def _windows(x, kernel, ho, wo):
    """Non-overlapping windows as (N, ho, kh, wo, kw, C) by a reshape (crop the remainder)."""
    kh, kw = kernel
    n, _, _, c = x.shape
    return x[:, :ho * kh, :wo * kw, :].reshape(n, ho, kh, wo, kw, c)


def _pool_taps(x, kernel, stride, ho, wo):
    """The kh*kw views x[:, i + y*s_h, j + x*s_w, :], each (N, ho, wo, C), listed row by row."""
    if kernel == stride:
        win = _windows(x, kernel, ho, wo)
        return [win[:, :, i, :, j, :] for i in range(kernel[0]) for j in range(kernel[1])]
    (sh, sw), (kh, kw) = stride, kernel
    return [x[:, i: i + (ho - 1) * sh + 1: sh, j: j + (wo - 1) * sw + 1: sw, :]
            for i in range(kh) for j in range(kw)]


def _max_fwd(x, kernel, stride, ho, wo):
    if kernel == stride:
        return jnp.max(_windows(x, kernel, ho, wo), axis=(2, 4))
    return functools.reduce(jnp.maximum, _pool_taps(x, kernel, stride, ho, wo))


def _max_bwd(x, out, g, kernel, stride, ho, wo):
    """Route each output gradient to the first maximum of its window (row-major)."""
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


def _pool(pool_jit, x, kernel, stride):
    """The checked ``x, kernel, stride`` and the output of the compiled pool ``pool_jit``."""
    x, kernel, stride, (ho, wo) = ref._check_pool(x, kernel, stride)
    return x, kernel, stride, pool_jit(x, kernel, stride, ho, wo)


def max_pool2d(x, kernel=2, stride=None):
    """:func:`course_lib.conv.max_pool2d`, fast (a reshape for side-by-side windows; custom_vjp)."""
    return _pool(_max_pool_jit, x, kernel, stride)[3]


def max_pool_forward(x, kernel=2, stride=None):
    """:func:`course_lib.conv.max_pool_forward`, fast: ``(out, cache)``."""
    x, kernel, stride, out = _pool(_max_pool_jit, x, kernel, stride)
    return out, {"x": x, "out": out, "kernel": kernel, "stride": stride}


def max_pool_backward(dout, cache):
    """:func:`course_lib.conv.max_pool_backward`, fast: the first maximum of each window gets
    ``dout``."""
    check_cache(cache, "cache", "course_lib.fast.conv.max_pool_forward", ("x", "out", "kernel", "stride"))
    out = cache["out"]
    dout = ref._check_dout(dout, out.shape)
    return _max_bwd_jit(cache["x"], out, dout, cache["kernel"], cache["stride"], out.shape[1],
                        out.shape[2])


def _avg_fwd(x, kernel, stride, ho, wo):
    if kernel == stride:
        return jnp.mean(_windows(x, kernel, ho, wo), axis=(2, 4))
    return functools.reduce(jnp.add, _pool_taps(x, kernel, stride, ho, wo)) / (kernel[0] * kernel[1])


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
    """:func:`course_lib.conv.avg_pool2d`, fast."""
    return _pool(_avg_pool_jit, x, kernel, stride)[3]


def avg_pool_forward(x, kernel=2, stride=None):
    """:func:`course_lib.conv.avg_pool_forward`, fast: ``(out, cache)``."""
    x, kernel, stride, out = _pool(_avg_pool_jit, x, kernel, stride)
    return out, {"x_shape": tuple(x.shape), "out_shape": tuple(out.shape), "kernel": kernel,
                 "stride": stride}


def avg_pool_backward(dout, cache):
    """:func:`course_lib.conv.avg_pool_backward`, fast."""
    check_cache(cache, "cache", "course_lib.fast.conv.avg_pool_forward",
                ("x_shape", "out_shape", "kernel", "stride"))
    dout = ref._check_dout(dout, cache["out_shape"])
    return _avg_bwd_jit(dout, cache["x_shape"], cache["kernel"], cache["stride"],
                        cache["out_shape"][1], cache["out_shape"][2])


# --------------------------------------------------------------------------- the digits CNN
def cnn_forward(params, x, mask=None):
    """:func:`course_lib.conv.cnn_forward`, fast: the fast conv and pooling (traced by
    :func:`cnn_features` and inside the training step; checks shapes only)."""
    x, mask = ref._check_cnn(params, x, mask)

    def conv2d(h, w, b, padding):   # 'same' for the 3x3 kernels of the digits CNN
        return _conv_vjp(_pad_hw(h, ((1, 1), (1, 1))), w, (1, 1), (1, 1)) + b

    def max_pool2d(h, kernel):
        return _max_pool_vjp(h, (kernel, kernel), (kernel, kernel), h.shape[1] // kernel, h.shape[2] // kernel)

    return ref._cnn_layers(params, x, mask, conv2d, max_pool2d)


_cnn_features_jit = jax.jit(cnn_forward)
_cnn_logits_jit = jax.jit(lambda params, x: cnn_forward(params, x)["logits"])


def cnn_features(params, x, mask=None):
    """:func:`course_lib.conv.cnn_features`, fast: one jitted forward."""
    x, mask = ref._check_cnn(params, x, mask)
    return _cnn_features_jit(params, x, mask)


def cnn_apply(params, x):
    """:func:`course_lib.conv.cnn_apply`, fast: logits of ``_EVAL_BLOCK`` images at a time."""
    x, _ = ref._check_cnn(params, x)
    return _logits_in_blocks(params, np.asarray(x))


def cnn_predict(params, x):
    """:func:`course_lib.conv.cnn_predict`, fast: a NumPy array of predicted classes (N,)."""
    return np.argmax(cnn_apply(params, x), axis=-1)


#: Images per jitted forward call in evaluation: small enough that the forward needs no chunking;
#: the last block is zero-padded, so one compile serves every data set of one image size.
_EVAL_BLOCK = 32


def _logits_in_blocks(params, x):
    n = x.shape[0]
    padded = np.zeros((-(-n // _EVAL_BLOCK) * _EVAL_BLOCK,) + x.shape[1:], x.dtype)
    padded[:n] = x
    blocks = [_cnn_logits_jit(params, padded[i:i + _EVAL_BLOCK])
              for i in range(0, padded.shape[0], _EVAL_BLOCK)]
    return np.concatenate(jax.device_get(blocks))[:n]


# --------------------------------------------------------------------------- training
def train_cnn(X_train, y_train, X_val=None, y_val=None, *, epochs: int = 30, batch_size: int = 64,
              learning_rate: float = 5e-3, seed: int = 0, channels=(32, 64), dropout: float = 0.3,
              params=None, augment_shift: int = 0, cosine_decay: bool = True,
              label_smoothing: float = 0.1):
    """:func:`course_lib.conv.train_cnn`, fast: the same mini-batches, masks and Adam updates, with
    one compiled step per mini-batch on one flat parameter vector.

    The learning rate of every step is computed on the host (the reference's cosine schedule) and
    passed to the step, which applies Adam at learning rate 1 scaled by it (Adam's step is linear
    in the learning rate): one compiled step serves every learning rate, schedule, label smoothing
    and data-set size. A Python loop over steps: ``lax.scan`` around a convolution is slower on a
    CPU. Returns ``(params, history)`` like the reference.

    Used in: notebooks/10_convolutional_networks.ipynb
    """
    X, y, X_val, y_val, params, o = ref._check_training(X_train, y_train, X_val, y_val, params, dict(
        epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, seed=seed, channels=channels,
        dropout=dropout, augment_shift=augment_shift, cosine_decay=cosine_decay,
        label_smoothing=label_smoothing))
    leaves, treedef = jax.tree_util.tree_flatten(params)
    layout = (treedef, tuple(np.shape(leaf) for leaf in leaves), np.result_type(*leaves))
    flat = _flatten_host(params, layout)
    n_batches = X.shape[0] // o["batch_size"]
    t = np.arange(o["epochs"] * n_batches)
    lrs = o["learning_rate"] * (0.5 * (1 + np.cos(np.pi * t / t.size)) if o["cosine_decay"]
                                else np.ones(t.size))
    lrs = lrs.astype(flat.dtype).reshape(o["epochs"], n_batches)
    step = _make_train_step(*layout[:2])
    state = AdamState(np.zeros((), np.int32), np.zeros_like(flat), np.zeros_like(flat))
    eps = np.asarray(o["label_smoothing"], flat.dtype)            # an argument: no recompile per value
    rng = np.random.default_rng(o["seed"])
    history = {"train_loss": [], "train_acc": []} | ({"val_loss": [], "val_acc": []} if y_val is not None else {})
    for epoch in range(o["epochs"]):
        xs, ys, masks = ref._epoch_batches(rng, X, y, o["batch_size"], o["augment_shift"], o["dropout"],
                                           np.shape(params["dense"]["w"])[0])
        stats = []
        for b in range(n_batches):
            flat, state, loss, acc = step(flat, state, xs[b], ys[b], masks[b].astype(flat.dtype),
                                          lrs[epoch, b], eps)
            stats.append((loss, acc))
        ref._record(history, np.mean(jax.device_get(stats), axis=0), _as_tree(flat, layout), X_val,
                    y_val, _logits_in_blocks)
    return _as_tree(flat, layout), history


#: The training step is the biggest program of the course; LLVM at -O1 compiles it faster than
#: XLA's default and the compiled step runs as fast, bit for bit the same (benchmarks/README.md).
_STEP_COMPILER_OPTIONS = {"xla_backend_optimization_level": 1}


@functools.lru_cache(maxsize=8)
def _make_train_step(treedef, shapes):
    from course_lib import optim

    opt = optim.adam(1.0)       # Adam's step is linear in the learning rate: scaled in the step

    def loss_fn(flat, xb, yb, mask, eps):
        logits = cnn_forward(_unflatten(flat, treedef, shapes), xb, mask=mask)["logits"]
        n_classes = logits.shape[-1]
        target = (1 - eps) * jax.nn.one_hot(yb, n_classes, dtype=logits.dtype) + eps / n_classes
        return losses.cross_entropy(logits, target), jnp.mean(jnp.argmax(logits, -1) == yb)

    @functools.partial(_jit, options=_STEP_COMPILER_OPTIONS)
    def step(flat, state, xb, yb, mask, lr, eps):
        (loss, acc), grads = jax.value_and_grad(loss_fn, has_aux=True)(flat, xb, yb, mask, eps)
        updates, state = opt.update(grads, state, flat)
        return flat + lr * updates, state, loss, acc

    return step
