"""Tier 1: plain, readable Numba CPU loops, one per backend function (``TGR_BACKEND=cpu_plain``).

Each function has the signature and semantics of the function of the same name in
``kernels/reference.py`` (tier 0, NumPy) and computes it the obvious way: loops over the output, parallel
(``prange``) over the outermost independent dimension - images x channels for convs and pools, channels
for batch-norm sums, rows for softmax-cross-entropy, elements for the elementwise ops. No BLAS, no
scratch buffers, no special cases. Read these first; ``cpu.py`` / ``cpu_conv.py`` (tier 2) say what
their fast versions add, and reuse the loops below where they are already as fast as it gets (ReLU,
pooling, softmax-CE, depthwise convs).

Example::

    >>> from tinygrad_rad.kernels import cpu_plain
    >>> y = cpu_plain.conv2d_forward(x, w, (1, 1), (1, 1), (1, 1), 1)
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from . import compose
from .reference import avg_divisor, check_ce, out_size
from .threads import serialized

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
@njit(parallel=True, cache=True)
def _matmul(a, b, out):
    """out[z, i, j] = sum_k a[z, i, k] b[z, k, j]; the loops run i, k, j so the innermost one walks
    along rows of b and out (contiguous) instead of down a column of b."""
    nz, n, kk = a.shape
    m = b.shape[2]
    for t in prange(nz * n):
        z, i = t // n, t % n
        for j in range(m):
            out[z, i, j] = 0
        for k in range(kk):
            aik = a[z, i, k]
            for j in range(m):
                out[z, i, j] += aik * b[z, k, j]


@serialized
def matmul(a, b):
    """(..., n, k) @ (..., k, m) with NumPy's broadcasting of the batch dims (1-D operands as np.matmul)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError("matmul: 0-d operands are not allowed (use *)")
    dtype = np.result_type(a, b)
    a2 = a[None, :] if a.ndim == 1 else a
    b2 = b[:, None] if b.ndim == 1 else b
    if a2.shape[-1] != b2.shape[-2]:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not match (inner dims)")
    batch = np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2])
    n, k, m = a2.shape[-2], a2.shape[-1], b2.shape[-1]
    a3 = np.ascontiguousarray(np.broadcast_to(a2, batch + (n, k)), dtype=dtype).reshape(-1, n, k)
    b3 = np.ascontiguousarray(np.broadcast_to(b2, batch + (k, m)), dtype=dtype).reshape(-1, k, m)
    out = np.empty((a3.shape[0], n, m), dtype=dtype)
    if out.size:
        _matmul(a3, b3, out)
    out = out.reshape(batch + (n, m))
    if a.ndim == 1:
        out = out[..., 0, :]
    if b.ndim == 1:
        out = out[..., 0]
    return out


# ------------------------------------------------------------------------------------------- erf
@njit(parallel=True, cache=True)
def _erf(x, y):
    for i in prange(x.size):
        y[i] = math.erf(x[i])


@serialized
def erf(x):
    """Error function, elementwise (``math.erf`` per element), a fresh array."""
    x = np.ascontiguousarray(x)
    y = np.empty_like(x)
    _erf(x.reshape(-1), y.reshape(-1))
    return y


# ------------------------------------------------------------------------------------------ relu
# NOTE: NumPy needs two passes and a bool temporary for the backward (g * (out > 0)) and runs on one
# core; these are one parallel pass each, twice as fast (benchmarks/NOTES.md section 5f).
@njit(parallel=True, cache=True)
def relu_fwd_loop(x, y):
    for i in prange(x.size):
        v = x[i]
        y[i] = v if v > 0 or v != v else 0  # NaN stays NaN


@njit(parallel=True, cache=True)
def relu_bwd_loop(g, out, gx):
    for i in prange(g.size):
        gx[i] = g[i] if out[i] > 0 else 0


@serialized
def relu_forward(x):
    """max(x, 0) elementwise (NaN stays NaN), a fresh array."""
    x = np.ascontiguousarray(x)
    y = np.empty_like(x)
    relu_fwd_loop(x.reshape(-1), y.reshape(-1))
    return y


@serialized
def relu_backward(g, out):
    """g * [out > 0] in one pass."""
    g, out = np.ascontiguousarray(g), np.ascontiguousarray(out)
    gx = np.empty(g.shape, dtype=g.dtype)
    relu_bwd_loop(g.reshape(-1), out.reshape(-1), gx.reshape(-1))
    return gx


# ----------------------------------------------------------------------------------- convolution
@njit(cache=True, inline="always")
def valid_range(off, stride, size, n_out):
    """Output indices j in [lo, hi) whose input index j*stride + off lies inside [0, size)."""
    lo = 0 if off >= 0 else (-off + stride - 1) // stride
    hi = (size - off + stride - 1) // stride if size - off > 0 else 0
    hi = min(hi, n_out)
    lo = min(lo, hi)
    return lo, hi


def prep(a, dtype=None):
    a = np.ascontiguousarray(a)
    return a if dtype is None or a.dtype == dtype else a.astype(dtype)


def geometry(x_shape, w_shape, stride, padding, dilation, groups):
    n, c, h, wd = x_shape
    o, cg, kh, kw = w_shape
    if c != cg * groups or o % groups:
        raise ValueError(
            f"conv2d: input channels {c} and weight shape {tuple(w_shape)} do not match groups={groups}"
        )
    ho = out_size(h, kh, stride[0], padding[0], dilation[0])
    wo = out_size(wd, kw, stride[1], padding[1], dilation[1])
    if ho <= 0 or wo <= 0:
        raise ValueError(f"conv2d: output size ({ho}, {wo}) is empty for input {tuple(x_shape)}, kernel "
                         f"{(kh, kw)}, stride {tuple(stride)}, padding {tuple(padding)}, "
                         f"dilation {tuple(dilation)}")
    return n, c, h, wd, o, cg, kh, kw, ho, wo


# Direct loops: each output (forward), input pixel (backward-input) or weight tap (backward-weight) is a
# sum computed in place; the valid j range of each row is computed once (no padding checks inside).
@njit(parallel=True, cache=True)
def direct_forward(x, w, sh, sw, ph, pw, dh, dw, groups, y):
    n, h, wd = x.shape[0], x.shape[2], x.shape[3]
    o, cg, kh, kw = w.shape
    ho, wo = y.shape[2], y.shape[3]
    og = o // groups
    for t in prange(n * o):
        b, oc = t // o, t % o
        g = oc // og
        out = y[b, oc]
        out[:, :] = 0
        for ci in range(cg):
            xi = x[b, g * cg + ci]
            for u in range(kh):
                for v in range(kw):
                    wv = w[oc, ci, u, v]
                    off = v * dw - pw
                    jlo, jhi = valid_range(off, sw, wd, wo)
                    for i in range(ho):
                        hi = i * sh - ph + u * dh
                        if hi < 0 or hi >= h:
                            continue
                        row = xi[hi]
                        orow = out[i]
                        for j in range(jlo, jhi):
                            orow[j] += wv * row[j * sw + off]


@njit(parallel=True, cache=True)
def direct_backward_input(gy, w, sh, sw, ph, pw, dh, dw, groups, gx):
    n, c, h, wd = gx.shape
    o, cg, kh, kw = w.shape
    ho, wo = gy.shape[2], gy.shape[3]
    og = o // groups
    for t in prange(n * c):
        b, ch = t // c, t % c
        g, ci = ch // cg, ch % cg
        dst = gx[b, ch]
        dst[:, :] = 0
        for oc in range(g * og, (g + 1) * og):
            gi = gy[b, oc]
            for u in range(kh):
                for v in range(kw):
                    wv = w[oc, ci, u, v]
                    off = v * dw - pw
                    jlo, jhi = valid_range(off, sw, wd, wo)
                    for i in range(ho):
                        hi = i * sh - ph + u * dh
                        if hi < 0 or hi >= h:
                            continue
                        row = dst[hi]
                        grow = gi[i]
                        for j in range(jlo, jhi):
                            row[j * sw + off] += wv * grow[j]


@njit(parallel=True, cache=True)
def direct_backward_weight(gy, x, sh, sw, ph, pw, dh, dw, groups, gw):
    n, h, wd = x.shape[0], x.shape[2], x.shape[3]
    o, cg, kh, kw = gw.shape
    ho, wo = gy.shape[2], gy.shape[3]
    og = o // groups
    for t in prange(o * cg):
        oc, ci = t // cg, t % cg
        g = oc // og
        for u in range(kh):
            for v in range(kw):
                off = v * dw - pw
                jlo, jhi = valid_range(off, sw, wd, wo)
                acc = 0.0  # float64 accumulator: sums run over N*Ho*Wo terms
                for b in range(n):
                    xi = x[b, g * cg + ci]
                    gi = gy[b, oc]
                    for i in range(ho):
                        hi = i * sh - ph + u * dh
                        if hi < 0 or hi >= h:
                            continue
                        row = xi[hi]
                        grow = gi[i]
                        for j in range(jlo, jhi):
                            acc += grow[j] * row[j * sw + off]
                gw[oc, ci, u, v] = acc

@serialized
def conv2d_forward(x, w, stride, padding, dilation, groups):
    """y[n, o, i, j] = sum_{c, u, v} w[o, c, u, v] xpad[n, g Cg + c, i s + u d, j s + v d], NCHW."""
    x = prep(x)
    w = prep(w, x.dtype)
    n, c, h, wd, o, cg, kh, kw, ho, wo = geometry(x.shape, w.shape, stride, padding, dilation, groups)
    y = np.empty((n, o, ho, wo), dtype=x.dtype)
    direct_forward(x, w, *stride, *padding, *dilation, groups, y)
    return y


@serialized
def conv2d_backward_input(gy, w, x_shape, stride, padding, dilation, groups):
    """dL/dx: every input pixel gathers gy * w over the outputs and taps that read it."""
    gy = prep(gy)
    w = prep(w, gy.dtype)
    n, c, h, wd, o, cg, kh, kw, ho, wo = geometry(x_shape, w.shape, stride, padding, dilation, groups)
    if gy.shape != (n, o, ho, wo):
        raise ValueError(f"conv2d_backward_input: gy has shape {gy.shape}, expected {(n, o, ho, wo)}")
    gx = np.empty((n, c, h, wd), dtype=gy.dtype)
    direct_backward_input(gy, w, *stride, *padding, *dilation, groups, gx)
    return gx


@serialized
def conv2d_backward_weight(gy, x, w_shape, stride, padding, dilation, groups):
    """dL/dw[o, c, u, v] = sum_{n, i, j} gy[n, o, i, j] xpad[n, g Cg + c, i s + u d, j s + v d]."""
    gy = prep(gy)
    x = prep(x, gy.dtype)
    n, c, h, wd, o, cg, kh, kw, ho, wo = geometry(x.shape, w_shape, stride, padding, dilation, groups)
    if gy.shape != (n, o, ho, wo):
        raise ValueError(f"conv2d_backward_weight: gy has shape {gy.shape}, expected {(n, o, ho, wo)}")
    gw = np.empty(tuple(w_shape), dtype=gy.dtype)
    direct_backward_weight(gy, x, *stride, *padding, *dilation, groups, gw)
    return gw


# ------------------------------------------------------------------------------------- max pool
def pool_args(kernel, stride, padding, dilation=(1, 1)):
    return (*kernel, *stride, *padding, *dilation)


def check4d(name, x):
    if x.ndim != 4:
        raise ValueError(f"{name}: expected an NCHW array (4 dims), got shape {x.shape}")


# NOTE: inside these loops we index with full subscripts (x[b, c, i, j]) rather than taking row views
# (row = x[b, c, i]): every view created in a parallel Numba loop does an atomic reference-count update on
# the parent array, and with both cores hammering the same counter that made max-pool ~10x slower.
@njit(parallel=True, cache=True)
def max_pool_fwd(x, kh, kw, sh, sw, ph, pw, dh, dw, y, idx):
    n, c, h, wd = x.shape
    ho, wo = y.shape[2], y.shape[3]
    for t in prange(n * c):
        b, ch = t // c, t % c
        for i in range(ho):
            for j in range(wo):
                best = -np.inf
                bi = 0
                for u in range(kh):
                    hi = i * sh - ph + u * dh
                    for v in range(kw):
                        wi = j * sw - pw + v * dw
                        val = x[b, ch, hi, wi] if 0 <= hi < h and 0 <= wi < wd else -np.inf
                        # first maximum wins, and a NaN beats everything (NumPy's argmax rule)
                        if (u == 0 and v == 0) or val > best or (val != val and best == best):
                            best = val
                            bi = u * kw + v
                y[b, ch, i, j] = best
                idx[b, ch, i, j] = bi


@njit(parallel=True, cache=True)
def _max_pool_bwd(gy, idx, kh, kw, sh, sw, ph, pw, dh, dw, gx):
    n, c, h, wd = gx.shape
    ho, wo = gy.shape[2], gy.shape[3]
    for t in prange(n * c):
        b, ch = t // c, t % c
        for hi in range(h):
            for wi in range(wd):
                gx[b, ch, hi, wi] = 0
        for i in range(ho):
            for j in range(wo):
                k = idx[b, ch, i, j]
                hi = i * sh - ph + (k // kw) * dh
                wi = j * sw - pw + (k % kw) * dw
                if 0 <= hi < h and 0 <= wi < wd:
                    gx[b, ch, hi, wi] += gy[b, ch, i, j]

@serialized
def max_pool2d_forward(x, kernel, stride, padding, dilation=(1, 1)):
    """Max over each window -> (y, idx); idx (int32) is the argmax's position inside its window."""
    check4d("max_pool2d", x)
    x = np.ascontiguousarray(x)
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    n, c, h, wd = x.shape
    ho, wo = out_size(h, kh, sh, ph, dh), out_size(wd, kw, sw, pw, dw)
    y = np.empty((n, c, ho, wo), dtype=x.dtype)
    idx = np.empty((n, c, ho, wo), dtype=np.int32)
    max_pool_fwd(x, *pool_args(kernel, stride, padding, dilation), y, idx)
    return y, idx


@serialized
def max_pool2d_backward(gy, idx, x_shape, kernel, stride, padding, dilation=(1, 1)):
    """Route each output gradient to the element that was its window's max: gx[argmax] += gy."""
    gy, idx = np.ascontiguousarray(gy), np.ascontiguousarray(idx, dtype=np.int32)
    gx = np.empty(x_shape, dtype=gy.dtype)
    # NOTE: the fast tier has a 2x2 version writing each cell once (cpu._max_pool_bwd_2x2; a first one,
    # gathering per cell, was 2x slower than this zero-then-scatter loop: NOTES.md 6d, 10g)
    _max_pool_bwd(gy, idx, *pool_args(kernel, stride, padding, dilation), gx)
    return gx


# ------------------------------------------------------------------------------------- avg pool
@njit(parallel=True, cache=True)
def _avg_pool_fwd(x, kh, kw, sh, sw, ph, pw, div, y):
    n, c, h, wd = x.shape
    ho, wo = y.shape[2], y.shape[3]
    for t in prange(n * c):
        b, ch = t // c, t % c
        for i in range(ho):
            h0, h1 = max(i * sh - ph, 0), min(i * sh - ph + kh, h)
            for j in range(wo):
                w0, w1 = max(j * sw - pw, 0), min(j * sw - pw + kw, wd)
                s = 0.0
                for hi in range(h0, h1):
                    for wi in range(w0, w1):
                        s += x[b, ch, hi, wi]
                y[b, ch, i, j] = s / div[i, j]


@njit(parallel=True, cache=True)
def _avg_pool_bwd(gy, kh, kw, sh, sw, ph, pw, div, gx):
    n, c, h, wd = gx.shape
    ho, wo = gy.shape[2], gy.shape[3]
    for t in prange(n * c):
        b, ch = t // c, t % c
        for hi in range(h):
            for wi in range(wd):
                gx[b, ch, hi, wi] = 0
        for i in range(ho):
            h0, h1 = max(i * sh - ph, 0), min(i * sh - ph + kh, h)
            for j in range(wo):
                w0, w1 = max(j * sw - pw, 0), min(j * sw - pw + kw, wd)
                g = gy[b, ch, i, j] / div[i, j]
                for hi in range(h0, h1):
                    for wi in range(w0, w1):
                        gx[b, ch, hi, wi] += g


@serialized
def avg_pool2d_forward(x, kernel, stride, padding, count_include_pad=True):
    """Mean over each window (padded zeros counted when ``count_include_pad``, as in PyTorch)."""
    check4d("avg_pool2d", x)
    x = np.ascontiguousarray(x)
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    n, c, h, wd = x.shape
    ho, wo = out_size(h, kh, sh, ph), out_size(wd, kw, sw, pw)
    div = avg_divisor(x.shape, kernel, stride, padding, count_include_pad, np.float64)
    y = np.empty((n, c, ho, wo), dtype=x.dtype)
    _avg_pool_fwd(x, kh, kw, sh, sw, ph, pw, div, y)
    return y


@serialized
def avg_pool2d_backward(gy, x_shape, kernel, stride, padding, count_include_pad=True):
    """Every element of a window receives gy / window_size."""
    gy = np.ascontiguousarray(gy)
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    div = avg_divisor(x_shape, kernel, stride, padding, count_include_pad, np.float64)
    gx = np.empty(x_shape, dtype=gy.dtype)
    _avg_pool_bwd(gy, kh, kw, sh, sw, ph, pw, div, gx)
    return gx

# ----------------------------------------------------------------------------------- batch norm
@njit(parallel=True, cache=True)
def _bn_fwd(x, weight, bias, eps, y, mean, invstd):
    """x, y: (N, C, M). Per channel, three passes: the mean, the biased variance around it, then
    y = (x - mean) * invstd * weight + bias (float64 sums)."""
    n, c, m = x.shape
    cnt = n * m
    for ch in prange(c):
        s = 0.0
        for b in range(n):
            for i in range(m):
                s += x[b, ch, i]
        mu = s / cnt
        ss = 0.0
        for b in range(n):
            for i in range(m):
                d = x[b, ch, i] - mu
                ss += d * d
        inv = 1.0 / math.sqrt(ss / cnt + eps)
        for b in range(n):
            for i in range(m):
                y[b, ch, i] = (x[b, ch, i] - mu) * inv * weight[ch] + bias[ch]
        mean[ch] = mu
        invstd[ch] = inv


@njit(parallel=True, cache=True)
def _bn_bwd(gy, x, weight, mean, invstd, gx, gw, gb):
    """dx = w invstd / M (M gy - sum gy - xhat sum(gy xhat)); dw = sum gy xhat; db = sum gy."""
    n, c, m = x.shape
    cnt = n * m
    for ch in prange(c):
        mu, inv = mean[ch], invstd[ch]
        sg = 0.0
        sgx = 0.0
        for b in range(n):
            for i in range(m):
                sg += gy[b, ch, i]
                sgx += gy[b, ch, i] * (x[b, ch, i] - mu) * inv
        gb[ch] = sg
        gw[ch] = sgx
        for b in range(n):
            for i in range(m):
                xhat = (x[b, ch, i] - mu) * inv
                gx[b, ch, i] = weight[ch] * inv / cnt * (cnt * gy[b, ch, i] - sg - xhat * sgx)


def _bn_view(x):
    if x.ndim < 2:
        raise ValueError(f"batch_norm: expected (N, C) or (N, C, ...) input, got shape {x.shape}")
    return np.ascontiguousarray(x).reshape(x.shape[0], x.shape[1], -1)


def _per_channel(a, c, dtype, fill):
    """weight / bias / scale as a contiguous (C,) array of ``dtype`` (``fill`` where None)."""
    return np.full(c, fill, dtype) if a is None else np.ascontiguousarray(a, dtype=dtype)


@serialized
def batch_norm_forward_train(x, weight, bias, eps):
    """Normalise with the batch's per-channel mean and biased variance -> (y, mean, invstd)."""
    x3 = _bn_view(x)
    c = x.shape[1]
    y = np.empty(x3.shape, dtype=x.dtype)
    mean, invstd = np.empty(c, x.dtype), np.empty(c, x.dtype)
    _bn_fwd(x3, _per_channel(weight, c, x.dtype, 1), _per_channel(bias, c, x.dtype, 0), float(eps), y, mean,
            invstd)
    return y.reshape(x.shape), mean, invstd


@serialized
def batch_norm_backward(gy, x, weight, mean, invstd):
    """-> (gx, gw, gb); gw, gb are per-channel sums (returned even when ``weight`` is None)."""
    x3, gy3 = _bn_view(x), _bn_view(gy)
    c = x.shape[1]
    gx = np.empty(x3.shape, dtype=x.dtype)
    gw, gb = np.empty(c, x.dtype), np.empty(c, x.dtype)
    _bn_bwd(gy3, x3, _per_channel(weight, c, x.dtype, 1), np.ascontiguousarray(mean),
            np.ascontiguousarray(invstd), gx, gw, gb)
    return gx.reshape(x.shape), gw, gb


# ------------------------------------------------------------------------------- channel affine
@njit(parallel=True, cache=True)
def _affine_fwd(x, scale, shift, y):
    n, c, m = x.shape
    for t in prange(n * c):
        b, ch = t // c, t % c
        for i in range(m):
            y[b, ch, i] = x[b, ch, i] * scale[ch] + shift[ch]


@njit(parallel=True, cache=True)
def _affine_bwd(g, x, scale, gx, gs, gb):
    """gx = g * scale; per channel gs = sum g x, gb = sum g (float64 sums)."""
    n, c, m = x.shape
    for ch in prange(c):
        s = 0.0
        sx = 0.0
        for b in range(n):
            for i in range(m):
                gx[b, ch, i] = g[b, ch, i] * scale[ch]
                s += g[b, ch, i]
                sx += g[b, ch, i] * x[b, ch, i]
        gb[ch] = s
        gs[ch] = sx


@serialized
def channel_affine_forward(x, scale, shift):
    """y = x * scale[c] + shift[c] per channel of (N, C, ...) input (batch norm at eval time)."""
    x3 = _bn_view(x)
    c = x.shape[1]
    y = np.empty(x3.shape, dtype=x.dtype)
    _affine_fwd(x3, _per_channel(scale, c, x.dtype, 1), _per_channel(shift, c, x.dtype, 0), y)
    return y.reshape(x.shape)


@serialized
def conv2d_affine_forward(x, w, stride, padding, dilation, groups, scale, shift, residual, relu):
    """[relu](conv2d(x, w) * scale[o] + shift[o] [+ residual]), this tier's conv, affine and ReLU in a row."""
    return compose.conv2d_affine_forward(conv2d_forward, channel_affine_forward, relu_forward, x, w, stride,
                                         padding, dilation, groups, scale, shift, residual, relu)


def channel_affine_backward(g, x, scale):
    """-> (gx, gscale, gshift): gx = g * scale[c], gscale = sum g x, gshift = sum g per channel."""
    x3, g3 = _bn_view(x), _bn_view(g)
    c = x.shape[1]
    gx = np.empty(x3.shape, dtype=x.dtype)
    gs, gb = np.empty(c, x.dtype), np.empty(c, x.dtype)
    _affine_bwd(g3, x3, _per_channel(scale, c, x.dtype, 1), gx, gs, gb)
    return gx.reshape(x.shape), gs, gb


# ------------------------------------------------------------------------ softmax cross-entropy
@njit(parallel=True, cache=True)
def _ce_fwd(x, t, logp, row_loss):
    """Per row r, in one visit of the row: logp[r] = x[r] - max - log(sum exp(x[r] - max)) and
    row_loss[r] = sum_c t[r, c] logp[r, c] (float64 sums)."""
    m, c = x.shape
    for r in prange(m):
        mx = x[r, 0]
        for j in range(1, c):
            v = x[r, j]
            mx = v if v > mx or v != v else mx  # NaN wins, as with np.max
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


@njit(parallel=True, cache=True)
def _ce_bwd(logp, t, coef, gx):
    """gx[r, c] = coef * (exp(logp[r, c]) * sum_c' t[r, c'] - t[r, c]), one parallel pass over rows."""
    m, c = logp.shape
    for r in prange(m):
        ts = 0.0
        for j in range(c):
            ts += t[r, j]
        for j in range(c):
            gx[r, j] = (math.exp(logp[r, j]) * ts - t[r, j]) * coef


def _ce_args(x, target):
    check_ce(x, target)
    return np.ascontiguousarray(x), np.ascontiguousarray(target, dtype=x.dtype)


@serialized
def softmax_cross_entropy_forward(x, target, scale):
    """-> (loss, logp): logp = log_softmax(x) per row, loss = -scale * sum(target * logp) as a 0-d array.
    One parallel pass over the rows (float64 row sums) instead of NumPy's six passes."""
    x, target = _ce_args(x, target)
    logp = np.empty_like(x)
    row_loss = np.zeros(x.shape[0], dtype=np.float64)
    if x.size:
        _ce_fwd(x, target, logp, row_loss)
    return np.asarray(-row_loss.sum() * scale, dtype=x.dtype), logp


@serialized
def softmax_cross_entropy_backward(g, logp, target, scale):
    """d loss / dx = scale * g * (softmax(x) * sum_c target - target) (``g``: the 0-d loss gradient)."""
    logp, target = _ce_args(logp, target)
    gx = np.empty_like(logp)
    if logp.size:
        _ce_bwd(logp, target, logp.dtype.type(scale * float(g)), gx)
    return gx

# ------------------------------------------------------------------------------------------ adam
@njit(parallel=True, cache=True)
def _adam(p, g, m, v, vmax, lr, beta1, beta2, eps, wd, step, maximize, decoupled, amsgrad):
    """The textbook Adam update, one element at a time (in p's dtype, constants in float64)."""
    bc1 = 1 - beta1**step
    bc2 = 1 - beta2**step
    for i in prange(p.size):
        gi = -g[i] if maximize else g[i]
        if wd != 0:
            if decoupled:
                p[i] = p[i] * (1 - lr * wd)  # AdamW: decay the weight itself
            else:
                gi = gi + wd * p[i]  # Adam: L2 penalty in the gradient
        m[i] = beta1 * m[i] + (1 - beta1) * gi
        v[i] = beta2 * v[i] + (1 - beta2) * gi * gi
        vi = v[i]
        if amsgrad:
            if vi > vmax[i] or vi != vi:  # np.maximum: NaN wins
                vmax[i] = vi
            vi = vmax[i]
        p[i] = p[i] - lr / bc1 * m[i] / (math.sqrt(vi) / math.sqrt(bc2) + eps)


@serialized
def adam_step(p, g, m, v, vmax, *, lr, beta1, beta2, eps, weight_decay, step, maximize=False,
              decoupled=False, amsgrad=False) -> None:
    """Adam / AdamW (``decoupled``) update of ``p``, ``m``, ``v`` (and ``vmax`` with amsgrad) in place:
    m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2; p -= lr / (1 - b1^t) m / (sqrt(v) / sqrt(1 - b2^t) + eps).
    ``vmax`` may be None without amsgrad. Equal to the reference up to rounding (the reference's order of
    operations is ``cpu.adam_step``'s, bit for bit)."""
    arrays = [p, m, v] + ([vmax] if vmax is not None else [])
    work = [np.ascontiguousarray(a) for a in arrays]  # copies only for non-contiguous state: written back
    flat = [a.reshape(-1) for a in work]
    _adam(flat[0], np.ascontiguousarray(g, dtype=p.dtype).reshape(-1), flat[1], flat[2], flat[-1],
          float(lr), float(beta1), float(beta2), float(eps), float(weight_decay), int(step), bool(maximize),
          bool(decoupled), bool(amsgrad))
    for a, w in zip(arrays, work):
        if w is not a:
            a[...] = w


# -------------------------------------------------------------------------------- 3-D (volumes, NCDHW)
# conv3d_* / max_pool3d_* / avg_pool3d_*: the 2-D interface with one more axis (issue 13), in cpu_plain3d.py.
# NOTE: imported last (that module does not import this one).
from .cpu_plain3d import (  # noqa: E402, F401
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
