"""Tier 3: plain Numba CUDA kernels, one thread per output element (``TGR_BACKEND=cuda_plain``).

Every function has the signature and semantics of the function of the same name in
``kernels/reference.py``. Each kernel is the textbook GPU version: a thread computes one output element
(one ``y[n, o, i, j]`` of a conv, one pixel of an input gradient, one weight tap, one value of an
elementwise op) by looping over the inputs it depends on - gathers only, no atomics, no shared memory.
Reductions use one thread per reduced item instead (per channel for batch norm, per row for
softmax-cross-entropy), then one thread per element for the rest. Sums are float64.

The threads walk their outputs in a grid-stride loop (``for e in range(cuda.grid(1), n,
cuda.gridsize(1))``), so a small grid covers any size. Arrays are CuPy arrays on a GPU and NumPy arrays
under Numba's simulator (``NUMBA_ENABLE_CUDASIM=1``); ``cuda_common`` hands them over. The fast CUDA
tier (``cuda.py`` and the ``cuda_*.py`` it imports) adds shared-memory tiles, register blocking and
im2col + GEMM for the convs.

    >>> from tinygrad_rad.kernels import cuda_plain as K
    >>> y = K.conv2d_forward(x, w, (1, 1), (1, 1), (1, 1), 1)
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda

from . import compose
from .cuda_common import contiguous, launch, xp_of
from .reference import check_ce, out_size

__all__ = [
    "matmul", "erf", "relu_forward", "relu_backward",
    "conv2d_forward", "conv2d_backward_input", "conv2d_backward_weight",
    "max_pool2d_forward", "max_pool2d_backward", "avg_pool2d_forward", "avg_pool2d_backward",
    "batch_norm_forward_train", "batch_norm_backward", "batch_norm_relu_forward_train",
    "batch_norm_relu_backward", "channel_affine_forward", "channel_affine_backward",
    "conv2d_affine_forward",
    "softmax_cross_entropy_forward", "softmax_cross_entropy_backward", "adam_step",
    "conv3d_forward", "conv3d_backward_input", "conv3d_backward_weight",
    "max_pool3d_forward", "max_pool3d_backward", "avg_pool3d_forward", "avg_pool3d_backward",
]


# ---------------------------------------------------------------------------------------- matmul
@cuda.jit
def _matmul_kernel(a, b, out):
    """out[z, i, j] = sum_k a[z, i, k] b[z, k, j], one thread per out[z, i, j]."""
    nz, n, m = out.shape
    for e in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        z, r = e // (n * m), e % (n * m)
        i, j = r // m, r % m
        acc = 0.0
        for k in range(a.shape[2]):
            acc += a[z, i, k] * b[z, k, j]
        out[z, i, j] = acc


def _batched(xp, a, batch, dtype):
    """``a`` broadcast to the batch dims ``batch`` as a contiguous (B, rows, cols) array of ``dtype``."""
    if tuple(a.shape[:-2]) != batch:
        a = xp.ascontiguousarray(xp.broadcast_to(a, batch + tuple(a.shape[-2:])))  # a copy: writable
    return contiguous(a.astype(dtype, copy=False)).reshape((-1,) + tuple(a.shape[-2:]))


def matmul(a, b):
    """(..., n, k) @ (..., k, m) with broadcast batch dims (1-D operands as in np.matmul); integer
    and other non-float dtypes fall back to the array module's matmul."""
    xp = xp_of(a)
    dtype = np.result_type(a.dtype, b.dtype)
    if dtype.kind != "f" or a.ndim == 0 or b.ndim == 0:
        return xp.matmul(a, b)
    a2 = a[None, :] if a.ndim == 1 else a
    b2 = b[:, None] if b.ndim == 1 else b
    if a2.shape[-1] != b2.shape[-2]:
        raise ValueError(f"matmul: shapes {tuple(a.shape)} and {tuple(b.shape)} do not match (inner dims)")
    batch = tuple(np.broadcast_shapes(tuple(a2.shape[:-2]), tuple(b2.shape[:-2])))
    n, m = a2.shape[-2], b2.shape[-1]
    a3 = _batched(xp, a2, batch, dtype)
    b3 = _batched(xp, b2, batch, dtype)
    out = xp.empty((a3.shape[0], n, m), dtype=dtype)
    launch(_matmul_kernel, out.size, a3, b3, out)
    out = out.reshape(batch + (n, m))
    if a.ndim == 1:
        out = out[..., 0, :]
    if b.ndim == 1:
        out = out[..., 0]
    return out


# ----------------------------------------------------------------------------- elementwise
@cuda.jit
def _erf_kernel(x, y):
    for e in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        y[e] = math.erf(x[e])


@cuda.jit
def _relu_fwd_kernel(x, y):
    for e in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        v = x[e]
        y[e] = v if v > 0 or v != v else 0  # NaN stays NaN


@cuda.jit
def _relu_bwd_kernel(g, out, gx):
    for e in range(cuda.grid(1), g.size, cuda.gridsize(1)):
        gx[e] = g[e] if out[e] > 0 else 0


def _flat(a):
    return contiguous(a).reshape(-1)


def erf(x):
    """Error function, elementwise (integer input gives float64)."""
    if np.dtype(x.dtype).kind != "f":
        x = x.astype(np.float64)
    xf = _flat(x)
    y = xp_of(x).empty_like(xf)
    launch(_erf_kernel, xf.size, xf, y)
    return y.reshape(x.shape)


def relu_forward(x):
    """max(x, 0) elementwise (NaN stays NaN)."""
    xf = _flat(x)
    y = xp_of(x).empty_like(xf)
    launch(_relu_fwd_kernel, xf.size, xf, y)
    return y.reshape(x.shape)


def relu_backward(g, out):
    """g where the forward output was positive, else 0."""
    gf = _flat(g)
    gx = xp_of(g).empty_like(gf)
    launch(_relu_bwd_kernel, gf.size, gf, _flat(out), gx)
    return gx.reshape(g.shape)


# ----------------------------------------------------------------------------------- convolution
@cuda.jit
def _conv_fwd_kernel(x, w, sh, sw, ph, pw, dh, dw, groups, y):
    """y[b, oc, i, j] = sum_{ci, u, v} w[oc, ci, u, v] xpad[b, g cg + ci, i sh + u dh, j sw + v dw]."""
    n, o, ho, wo = y.shape
    cg, kh, kw = w.shape[1], w.shape[2], w.shape[3]
    h, wd = x.shape[2], x.shape[3]
    og = o // groups
    for e in range(cuda.grid(1), y.size, cuda.gridsize(1)):
        j = e % wo
        i = (e // wo) % ho
        oc = (e // (wo * ho)) % o
        b = e // (wo * ho * o)
        g = oc // og
        acc = 0.0
        for ci in range(cg):
            for u in range(kh):
                hi = i * sh - ph + u * dh
                if 0 <= hi < h:
                    for v in range(kw):
                        wi = j * sw - pw + v * dw
                        if 0 <= wi < wd:
                            acc += x[b, g * cg + ci, hi, wi] * w[oc, ci, u, v]
        y[b, oc, i, j] = acc


@cuda.jit
def _conv_bwd_input_kernel(gy, w, sh, sw, ph, pw, dh, dw, groups, gx):
    """gx[b, ch, hi, wi] = sum over the outputs (oc, i, j) and taps (u, v) that read xpad at this pixel:
    hi = i sh - ph + u dh, wi = j sw - pw + v dw."""
    n, c, h, wd = gx.shape
    o, cg, kh, kw = w.shape
    ho, wo = gy.shape[2], gy.shape[3]
    og = o // groups
    for e in range(cuda.grid(1), gx.size, cuda.gridsize(1)):
        wi = e % wd
        hi = (e // wd) % h
        ch = (e // (wd * h)) % c
        b = e // (wd * h * c)
        g, ci = ch // cg, ch % cg
        acc = 0.0
        for u in range(kh):
            ti = hi + ph - u * dh  # = i sh for the output row i that reads this pixel through tap u
            if ti >= 0 and ti % sh == 0 and ti // sh < ho:
                i = ti // sh
                for v in range(kw):
                    tj = wi + pw - v * dw
                    if tj >= 0 and tj % sw == 0 and tj // sw < wo:
                        j = tj // sw
                        for oc in range(g * og, (g + 1) * og):
                            acc += gy[b, oc, i, j] * w[oc, ci, u, v]
        gx[b, ch, hi, wi] = acc


@cuda.jit
def _conv_bwd_weight_kernel(gy, x, sh, sw, ph, pw, dh, dw, groups, gw):
    """gw[oc, ci, u, v] = sum_{b, i, j} gy[b, oc, i, j] xpad[b, g cg + ci, i sh + u dh, j sw + v dw]."""
    o, cg, kh, kw = gw.shape
    n, h, wd = x.shape[0], x.shape[2], x.shape[3]
    ho, wo = gy.shape[2], gy.shape[3]
    og = o // groups
    for e in range(cuda.grid(1), gw.size, cuda.gridsize(1)):
        v = e % kw
        u = (e // kw) % kh
        ci = (e // (kw * kh)) % cg
        oc = e // (kw * kh * cg)
        ch = (oc // og) * cg + ci
        acc = 0.0
        for b in range(n):
            for i in range(ho):
                hi = i * sh - ph + u * dh
                if 0 <= hi < h:
                    for j in range(wo):
                        wi = j * sw - pw + v * dw
                        if 0 <= wi < wd:
                            acc += gy[b, oc, i, j] * x[b, ch, hi, wi]
        gw[oc, ci, u, v] = acc


def _conv_geometry(x_shape, w_shape, stride, padding, dilation, groups):
    n, c, h, wd = x_shape
    o, cg, kh, kw = w_shape
    if c != cg * groups or o % groups:
        raise ValueError(f"conv2d: input channels {c} and weight shape {tuple(w_shape)} do not match "
                         f"groups={groups}")
    ho = out_size(h, kh, stride[0], padding[0], dilation[0])
    wo = out_size(wd, kw, stride[1], padding[1], dilation[1])
    if ho <= 0 or wo <= 0:
        raise ValueError(f"conv2d: output size ({ho}, {wo}) is empty for input {tuple(x_shape)}, kernel "
                         f"{(kh, kw)}, stride {tuple(stride)}, padding {tuple(padding)}, "
                         f"dilation {tuple(dilation)}")
    return n, o, ho, wo


def _conv_args(stride, padding, dilation, groups):
    return (*map(int, stride), *map(int, padding), *map(int, dilation), int(groups))


def conv2d_forward(x, w, stride, padding, dilation, groups):
    """y = conv2d(x, w) (no bias), NCHW: one thread per y[n, o, i, j]."""
    x = contiguous(x)
    w = contiguous(w).astype(x.dtype, copy=False)
    n, o, ho, wo = _conv_geometry(x.shape, w.shape, stride, padding, dilation, groups)
    y = xp_of(x).empty((n, o, ho, wo), dtype=x.dtype)
    launch(_conv_fwd_kernel, y.size, x, w, *_conv_args(stride, padding, dilation, groups), y)
    return y


def conv2d_backward_input(gy, w, x_shape, stride, padding, dilation, groups):
    """dL/dx of conv2d: one thread per input pixel, gathering from the outputs that read it."""
    gy = contiguous(gy)
    w = contiguous(w).astype(gy.dtype, copy=False)
    n, o, ho, wo = _conv_geometry(tuple(x_shape), w.shape, stride, padding, dilation, groups)
    if tuple(gy.shape) != (n, o, ho, wo):
        raise ValueError(f"conv2d_backward_input: gy has shape {tuple(gy.shape)}, expected {(n, o, ho, wo)}")
    gx = xp_of(gy).empty(tuple(x_shape), dtype=gy.dtype)
    launch(_conv_bwd_input_kernel, gx.size, gy, w, *_conv_args(stride, padding, dilation, groups), gx)
    return gx


def conv2d_backward_weight(gy, x, w_shape, stride, padding, dilation, groups):
    """dL/dw of conv2d: one thread per weight tap, summing over images and output positions."""
    gy = contiguous(gy)
    x = contiguous(x).astype(gy.dtype, copy=False)
    n, o, ho, wo = _conv_geometry(x.shape, tuple(w_shape), stride, padding, dilation, groups)
    if tuple(gy.shape) != (n, o, ho, wo):
        raise ValueError(f"conv2d_backward_weight: gy has shape {tuple(gy.shape)}, expected {(n, o, ho, wo)}")
    gw = xp_of(gy).empty(tuple(w_shape), dtype=gy.dtype)
    launch(_conv_bwd_weight_kernel, gw.size, gy, x, *_conv_args(stride, padding, dilation, groups), gw)
    return gw


# -------------------------------------------------------------------------------------- pooling
@cuda.jit
def _max_pool_fwd_kernel(x, kh, kw, sh, sw, ph, pw, dh, dw, y, idx):
    """One thread per output: the window's max and its position (the first maximum wins, NaN beats all)."""
    n, c, ho, wo = y.shape
    h, wd = x.shape[2], x.shape[3]
    for e in range(cuda.grid(1), y.size, cuda.gridsize(1)):
        j = e % wo
        i = (e // wo) % ho
        ch = (e // (wo * ho)) % c
        b = e // (wo * ho * c)
        best = -math.inf
        bi = 0
        for u in range(kh):
            hi = i * sh - ph + u * dh
            for v in range(kw):
                wi = j * sw - pw + v * dw
                val = x[b, ch, hi, wi] if 0 <= hi < h and 0 <= wi < wd else -math.inf
                if (u == 0 and v == 0) or val > best or (val != val and best == best):
                    best = val
                    bi = u * kw + v
        y[b, ch, i, j] = best
        idx[b, ch, i, j] = bi


@cuda.jit
def _max_pool_bwd_kernel(gy, idx, kh, kw, sh, sw, ph, pw, dh, dw, gx):
    """One thread per input pixel: the sum of gy over the windows whose argmax is this pixel."""
    n, c, h, wd = gx.shape
    ho, wo = gy.shape[2], gy.shape[3]
    for e in range(cuda.grid(1), gx.size, cuda.gridsize(1)):
        wi = e % wd
        hi = (e // wd) % h
        ch = (e // (wd * h)) % c
        b = e // (wd * h * c)
        acc = 0.0
        for u in range(kh):
            ti = hi + ph - u * dh
            if ti >= 0 and ti % sh == 0 and ti // sh < ho:
                for v in range(kw):
                    tj = wi + pw - v * dw
                    if tj >= 0 and tj % sw == 0 and tj // sw < wo:
                        if idx[b, ch, ti // sh, tj // sw] == u * kw + v:
                            acc += gy[b, ch, ti // sh, tj // sw]
        gx[b, ch, hi, wi] = acc


@cuda.jit(device=True)
def _avg_count(i, s, p, k, size, include_pad):
    """How many positions of window i (start i s - p, length k) are counted along one axis (PyTorch's
    rule: padded zeros count with count_include_pad, positions past the padding never do)."""
    start = i * s - p
    if include_pad:
        return min(start + k, size + p) - start
    return min(start + k, size) - max(start, 0)


@cuda.jit
def _avg_pool_fwd_kernel(x, kh, kw, sh, sw, ph, pw, include_pad, y):
    n, c, ho, wo = y.shape
    h, wd = x.shape[2], x.shape[3]
    for e in range(cuda.grid(1), y.size, cuda.gridsize(1)):
        j = e % wo
        i = (e // wo) % ho
        ch = (e // (wo * ho)) % c
        b = e // (wo * ho * c)
        acc = 0.0
        for hi in range(max(i * sh - ph, 0), min(i * sh - ph + kh, h)):
            for wi in range(max(j * sw - pw, 0), min(j * sw - pw + kw, wd)):
                acc += x[b, ch, hi, wi]
        div = _avg_count(i, sh, ph, kh, h, include_pad) * _avg_count(j, sw, pw, kw, wd, include_pad)
        y[b, ch, i, j] = acc / div


@cuda.jit
def _avg_pool_bwd_kernel(gy, kh, kw, sh, sw, ph, pw, include_pad, gx):
    """One thread per input pixel: the sum of gy / window size over the windows that contain it."""
    n, c, h, wd = gx.shape
    ho, wo = gy.shape[2], gy.shape[3]
    for e in range(cuda.grid(1), gx.size, cuda.gridsize(1)):
        wi = e % wd
        hi = (e // wd) % h
        ch = (e // (wd * h)) % c
        b = e // (wd * h * c)
        acc = 0.0
        for u in range(kh):
            ti = hi + ph - u
            if ti >= 0 and ti % sh == 0 and ti // sh < ho:
                i = ti // sh
                for v in range(kw):
                    tj = wi + pw - v
                    if tj >= 0 and tj % sw == 0 and tj // sw < wo:
                        j = tj // sw
                        div = _avg_count(i, sh, ph, kh, h, include_pad) * _avg_count(j, sw, pw, kw, wd,
                                                                                     include_pad)
                        acc += gy[b, ch, i, j] / div
        gx[b, ch, hi, wi] = acc


def _check4d(name, x):
    if x.ndim != 4:
        raise ValueError(f"{name}: expected an NCHW array (4 dims), got shape {tuple(x.shape)}")


def _ints(*pairs):
    return tuple(int(v) for pair in pairs for v in pair)


def max_pool2d_forward(x, kernel, stride, padding, dilation=(1, 1)):
    """Max over each window -> (y, idx); idx (int32) is the argmax's position inside its window."""
    _check4d("max_pool2d", x)
    x = contiguous(x)
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    n, c, h, wd = x.shape
    shape = (n, c, out_size(h, kh, sh, ph, dh), out_size(wd, kw, sw, pw, dw))
    xp = xp_of(x)
    y, idx = xp.empty(shape, dtype=x.dtype), xp.empty(shape, dtype=np.int32)
    launch(_max_pool_fwd_kernel, y.size, x, *_ints(kernel, stride, padding, dilation), y, idx)
    return y, idx


def max_pool2d_backward(gy, idx, x_shape, kernel, stride, padding, dilation=(1, 1)):
    """Route each output gradient to the element that was its window's max (gathered per input pixel)."""
    gy, idx = contiguous(gy), contiguous(idx)
    gx = xp_of(gy).empty(tuple(x_shape), dtype=gy.dtype)
    launch(_max_pool_bwd_kernel, gx.size, gy, idx, *_ints(kernel, stride, padding, dilation), gx)
    return gx


def avg_pool2d_forward(x, kernel, stride, padding, count_include_pad=True):
    """Mean over each window (padded zeros counted when ``count_include_pad``, as in PyTorch)."""
    _check4d("avg_pool2d", x)
    x = contiguous(x)
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    n, c, h, wd = x.shape
    y = xp_of(x).empty((n, c, out_size(h, kh, sh, ph), out_size(wd, kw, sw, pw)), dtype=x.dtype)
    launch(_avg_pool_fwd_kernel, y.size, x, *_ints(kernel, stride, padding), bool(count_include_pad), y)
    return y


def avg_pool2d_backward(gy, x_shape, kernel, stride, padding, count_include_pad=True):
    """Every element of a window receives gy / window_size."""
    gy = contiguous(gy)
    gx = xp_of(gy).empty(tuple(x_shape), dtype=gy.dtype)
    launch(_avg_pool_bwd_kernel, gx.size, gy, *_ints(kernel, stride, padding), bool(count_include_pad), gx)
    return gx


# ------------------------------------------------------------------------ batch norm, channel affine
# x is viewed as (N, C, M): M = the values per image and channel (1 for (N, C) input)
@cuda.jit
def _bn_stats_kernel(x, eps, mean, invstd):
    """One thread per channel: mean, then the biased variance around it (two passes, float64)."""
    n, c, m = x.shape
    for ch in range(cuda.grid(1), c, cuda.gridsize(1)):
        s = 0.0
        for b in range(n):
            for i in range(m):
                s += x[b, ch, i]
        mu = s / (n * m)
        ss = 0.0
        for b in range(n):
            for i in range(m):
                d = x[b, ch, i] - mu
                ss += d * d
        mean[ch] = mu
        invstd[ch] = 1.0 / math.sqrt(ss / (n * m) + eps)


@cuda.jit
def _bn_apply_kernel(x, mean, invstd, weight, bias, y):
    """One thread per element: y = (x - mean) invstd weight + bias."""
    n, c, m = x.shape
    for e in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        ch = (e // m) % c
        b, i = e // (m * c), e % m
        y[b, ch, i] = (x[b, ch, i] - mean[ch]) * invstd[ch] * weight[ch] + bias[ch]


@cuda.jit
def _channel_sums_kernel(g, x, mean, invstd, sg, sgx):
    """One thread per channel: sg = sum g, sgx = sum g (x - mean) invstd (= sum g xhat)."""
    n, c, m = x.shape
    for ch in range(cuda.grid(1), c, cuda.gridsize(1)):
        a = 0.0
        ax = 0.0
        for b in range(n):
            for i in range(m):
                a += g[b, ch, i]
                ax += g[b, ch, i] * (x[b, ch, i] - mean[ch]) * invstd[ch]
        sg[ch] = a
        sgx[ch] = ax


@cuda.jit
def _bn_grad_kernel(gy, x, weight, mean, invstd, sg, sgx, gx):
    """One thread per element: dx = w invstd / M (M gy - sum gy - xhat sum(gy xhat))."""
    n, c, m = x.shape
    cnt = n * m
    for e in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        ch = (e // m) % c
        b, i = e // (m * c), e % m
        xhat = (x[b, ch, i] - mean[ch]) * invstd[ch]
        gx[b, ch, i] = weight[ch] * invstd[ch] / cnt * (cnt * gy[b, ch, i] - sg[ch] - xhat * sgx[ch])


def _view3(x):
    if x.ndim < 2:
        raise ValueError(f"batch_norm: expected (N, C) or (N, C, ...) input, got shape {tuple(x.shape)}")
    return contiguous(x).reshape(x.shape[0], x.shape[1], -1)


def _per_channel(a, c, xp, dtype, fill):
    return xp.full(c, fill, dtype=dtype) if a is None else contiguous(a).astype(dtype, copy=False)


def batch_norm_forward_train(x, weight, bias, eps):
    """Normalise with the batch's per-channel mean and biased variance -> (y, mean, invstd)."""
    x3, xp, c = _view3(x), xp_of(x), x.shape[1]
    mean, invstd = xp.empty(c, dtype=x.dtype), xp.empty(c, dtype=x.dtype)
    launch(_bn_stats_kernel, c, x3, float(eps), mean, invstd)
    y = xp.empty_like(x3)
    launch(_bn_apply_kernel, y.size, x3, mean, invstd, _per_channel(weight, c, xp, x.dtype, 1),
            _per_channel(bias, c, xp, x.dtype, 0), y)
    return y.reshape(x.shape), mean, invstd


def batch_norm_backward(gy, x, weight, mean, invstd):
    """-> (gx, gw, gb); gw = sum gy xhat, gb = sum gy per channel (also when ``weight`` is None)."""
    x3, gy3, xp, c = _view3(x), _view3(gy), xp_of(x), x.shape[1]
    mean, invstd = contiguous(mean), contiguous(invstd)
    gb, gw = xp.empty(c, dtype=x.dtype), xp.empty(c, dtype=x.dtype)
    launch(_channel_sums_kernel, c, gy3, x3, mean, invstd, gb, gw)
    gx = xp.empty_like(x3)
    launch(_bn_grad_kernel, gx.size, gy3, x3, _per_channel(weight, c, xp, x.dtype, 1), mean, invstd, gb, gw,
            gx)
    return gx.reshape(x.shape), gw, gb


@cuda.jit
def _affine_kernel(x, scale, shift, y):
    n, c, m = x.shape
    for e in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        ch = (e // m) % c
        b, i = e // (m * c), e % m
        y[b, ch, i] = x[b, ch, i] * scale[ch] + shift[ch]


def channel_affine_forward(x, scale, shift):
    """y = x * scale[c] + shift[c] per channel of (N, C, ...) input, one thread per element."""
    x3, xp, c = _view3(x), xp_of(x), x.shape[1]
    y = xp.empty_like(x3)
    launch(_affine_kernel, y.size, x3, _per_channel(scale, c, xp, x.dtype, 1),
            _per_channel(shift, c, xp, x.dtype, 0), y)
    return y.reshape(x.shape)


def conv2d_affine_forward(x, w, stride, padding, dilation, groups, scale, shift, residual, relu):
    """[relu](conv2d(x, w) * scale[o] + shift[o] [+ residual]), this tier's conv, affine and ReLU in a row."""
    return compose.conv2d_affine_forward(conv2d_forward, channel_affine_forward, relu_forward, x, w, stride,
                                         padding, dilation, groups, scale, shift, residual, relu)


def channel_affine_backward(g, x, scale):
    """-> (gx, gscale, gshift): gx = g * scale[c] (the forward itself, shift 0); gscale = sum g x and
    gshift = sum g per channel (the batch-norm sums with mean 0, invstd 1)."""
    x3, g3, xp, c = _view3(x), _view3(g), xp_of(x), x.shape[1]
    scale = _per_channel(scale, c, xp, x.dtype, 1)
    gx = xp.empty_like(g3)
    launch(_affine_kernel, gx.size, g3, scale, xp.zeros(c, dtype=x.dtype), gx)
    gb, gs = xp.empty(c, dtype=x.dtype), xp.empty(c, dtype=x.dtype)
    launch(_channel_sums_kernel, c, g3, x3, xp.zeros(c, dtype=x.dtype), xp.ones(c, dtype=x.dtype), gb, gs)
    return gx.reshape(x.shape), gs, gb


# ------------------------------------------------------------------------ softmax cross-entropy
@cuda.jit
def _ce_rows_kernel(x, t, logp, row_loss):
    """One thread per row r: logp[r] = x[r] - max - log(sum exp(x[r] - max)); row_loss[r] = sum t logp."""
    m, c = x.shape
    for r in range(cuda.grid(1), m, cuda.gridsize(1)):
        mx = x[r, 0]
        for j in range(1, c):
            v = x[r, j]
            if v > mx or v != v:
                mx = v
        s = 0.0
        for j in range(c):
            s += math.exp(x[r, j] - mx)
        lse = mx + math.log(s)
        acc = 0.0
        for j in range(c):
            lp = x[r, j] - lse
            logp[r, j] = lp
            acc += t[r, j] * lp
        row_loss[r] = acc


@cuda.jit
def _ce_total_kernel(row_loss, scale, out):
    """One thread: out[0] = -scale * sum of the row losses."""
    if cuda.grid(1) == 0:
        acc = 0.0
        for r in range(row_loss.size):
            acc += row_loss[r]
        out[0] = -scale * acc


@cuda.jit
def _row_sums_kernel(t, out):
    """One thread per row: out[r] = sum_c t[r, c]."""
    for r in range(cuda.grid(1), t.shape[0], cuda.gridsize(1)):
        acc = 0.0
        for j in range(t.shape[1]):
            acc += t[r, j]
        out[r] = acc


@cuda.jit
def _ce_grad_kernel(logp, t, tsum, g, scale, gx):
    """One thread per element: gx = scale g (softmax tsum - t), softmax = exp(logp)."""
    c = logp.shape[1]
    for e in range(cuda.grid(1), logp.size, cuda.gridsize(1)):
        r, j = e // c, e % c
        gx[r, j] = (math.exp(logp[r, j]) * tsum[r] - t[r, j]) * (scale * g[0])


def softmax_cross_entropy_forward(x, target, scale):
    """-> (loss, logp): logp = log_softmax(x) per row, loss = -scale * sum(target * logp) as a 0-d array."""
    check_ce(x, target)
    xp = xp_of(x)
    x, target = contiguous(x), contiguous(target).astype(x.dtype, copy=False)
    logp = xp.empty_like(x)
    row_loss = xp.zeros(x.shape[0], dtype=np.float64)
    launch(_ce_rows_kernel, x.shape[0] if x.size else 0, x, target, logp, row_loss)
    out = xp.zeros(1, dtype=x.dtype)
    launch(_ce_total_kernel, 1, row_loss, float(scale), out)
    return out.reshape(()), logp


def softmax_cross_entropy_backward(g, logp, target, scale):
    """d loss / dx = scale * g * (softmax(x) * sum_c target - target); ``g`` is the 0-d loss gradient
    (read on the device: no host round-trip)."""
    xp = xp_of(logp)
    logp, target = contiguous(logp), contiguous(target).astype(logp.dtype, copy=False)
    tsum = xp.empty(logp.shape[0], dtype=np.float64)
    launch(_row_sums_kernel, logp.shape[0], target, tsum)
    gx = xp.empty_like(logp)
    launch(_ce_grad_kernel, gx.size, logp, target, tsum, xp.asarray(g, dtype=logp.dtype).reshape(1),
            float(scale), gx)
    return gx


# ------------------------------------------------------------------------------------------ adam
@cuda.jit
def _adam_kernel(p, g, m, v, vmax, decay, wd, one_m_b1, b2, one_m_b2, bc2_sqrt, eps, step_size, maximize,
                 decay_mode, amsgrad):
    """One thread per parameter: the operations of reference.adam_step in its order (constants in p's
    dtype); decay_mode 0: no weight decay, 1: g += wd p (Adam), 2: p *= 1 - lr wd (AdamW)."""
    for i in range(cuda.grid(1), p.size, cuda.gridsize(1)):
        gi = -g[i] if maximize else g[i]
        if decay_mode == 2:
            p[i] *= decay
        elif decay_mode == 1:
            gi = gi + wd * p[i]
        mi = m[i] + (gi - m[i]) * one_m_b1
        m[i] = mi
        vi = v[i] * b2 + (gi * one_m_b2) * gi
        v[i] = vi
        if amsgrad:
            a = vmax[i]
            if a > vi or a != a:  # np.maximum: NaN wins
                vi = a
            vmax[i] = vi
        p[i] -= (mi / (math.sqrt(vi) / bc2_sqrt + eps)) * step_size


def _unused(p):
    """A stand-in for an array argument the kernel never touches.
    # NOTE: not an alias of another argument: the simulator copies every array back after the launch."""
    return xp_of(p).empty(1, dtype=p.dtype)


def adam_step(p, g, m, v, vmax, *, lr, beta1, beta2, eps, weight_decay, step, maximize=False,
              decoupled=False, amsgrad=False) -> None:
    """Adam / AdamW update of ``p``, ``m``, ``v`` (and ``vmax`` with amsgrad) in place, one thread per
    element. ``vmax`` may be None without amsgrad."""
    t = np.dtype(p.dtype).type
    consts = [t(c) for c in (1 - lr * weight_decay, weight_decay, 1 - beta1, beta2, 1 - beta2,
                             math.sqrt(1 - beta2**step), eps, lr / (1 - beta1**step))]
    arrays = [p, m, v] + ([vmax] if vmax is not None else [])
    work = [contiguous(a) for a in arrays]  # copies only for non-contiguous state: written back below
    pw, mw, vw = work[:3]
    decay_mode = 0 if weight_decay == 0 else (2 if decoupled else 1)
    launch(_adam_kernel, p.size, pw.reshape(-1), _flat(g).astype(p.dtype, copy=False), mw.reshape(-1),
            vw.reshape(-1), work[3].reshape(-1) if vmax is not None else _unused(p), *consts, bool(maximize),
            decay_mode, bool(amsgrad))
    for a, w in zip(arrays, work):
        if w is not a:
            a[...] = w


# -------------------------------------------------------------------------------- 3-D (volumes, NCDHW)
# conv3d_* / max_pool3d_* / avg_pool3d_*: the 2-D interface with one more axis (issue 13), in cuda_plain3d.py.
# NOTE: imported last (that module does not import this one).
from .cuda_plain3d import (  # noqa: E402, F401
    avg_pool3d_backward,
    avg_pool3d_forward,
    conv3d_backward_input,
    conv3d_backward_weight,
    conv3d_forward,
    max_pool3d_backward,
    max_pool3d_forward,
)


# ------------------------------------------------------------------------- batch norm + ReLU
def batch_norm_relu_forward_train(x, weight, bias, eps):
    """relu(batch_norm(x)) -> (y, mean, invstd): this tier's batch norm, then its ReLU (compose.py)."""
    return compose.batch_norm_relu_forward(batch_norm_forward_train, relu_forward, x, weight, bias, eps)


def batch_norm_relu_backward(gy, x, weight, bias, mean, invstd):
    """-> (gx, gw, gb): gy masked where the ReLU was off (from x), then this tier's batch-norm backward."""
    return compose.batch_norm_relu_backward(batch_norm_backward, relu_backward, channel_affine_forward, gy, x,
                                            weight, bias, mean, invstd)
