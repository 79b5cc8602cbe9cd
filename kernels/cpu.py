"""CPU backend: the kernel functions the ops call for ``device="cpu"``.

* matmul: NumPy's BLAS (OpenBLAS sgemm/dgemm).
* convolution: ``cpu_conv`` - Numba im2col/col2im around one BLAS GEMM per chunk of images.
* pooling and batch norm: Numba loops below, parallel over (image, channel) planes or channels,
  one pass over the data where the math allows (the reference versions make several NumPy passes).

Every function has the signature and semantics of the function of the same name in
``kernels/reference.py`` and returns fresh arrays (autograd keeps them; conv adds its bias in place).

Example::

    >>> from tinygrad_rad.kernels import cpu
    >>> y, idx = cpu.max_pool2d_forward(x, (2, 2), (2, 2), (0, 0), (1, 1))
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import njit, prange

from .cpu_conv import conv2d_backward_input, conv2d_backward_weight, conv2d_forward, serialized  # noqa: F401
from .reference import _avg_divisor, out_size
from .threads import tune_malloc

tune_malloc()  # keep big freed blocks in the heap: no page zeroing every step (threads.tune_malloc)

__all__ = [
    "matmul", "erf", "relu_forward", "relu_backward",
    "conv2d_forward", "conv2d_backward_input", "conv2d_backward_weight",
    "max_pool2d_forward", "max_pool2d_backward", "avg_pool2d_forward", "avg_pool2d_backward",
    "batch_norm_forward_train", "batch_norm_backward",
]


def matmul(a, b):
    """(..., n, k) @ (..., k, m) through NumPy's BLAS (sgemm/dgemm)."""
    return np.matmul(a, b)


@numba.vectorize(["float32(float32)", "float64(float64)"], cache=True)
def _erf(x):
    return math.erf(x)


def erf(x):
    """Elementwise error function (Numba ufunc around ``math.erf``)."""
    return _erf(x)


# ------------------------------------------------------------------------------------------ relu
# NOTE: NumPy needs two passes and a bool temporary for the backward (g * (out > 0)) and runs on one
# core; these are one parallel pass each (the SmallCNN step's ReLUs: 21 ms -> ~10 ms, NOTES.md section 5).
@njit(parallel=True, cache=True)
def _relu_fwd(x, y):
    for i in prange(x.size):
        v = x[i]
        y[i] = v if v > 0 or v != v else 0  # NaN stays NaN


@njit(parallel=True, cache=True)
def _relu_bwd(g, out, gx):
    for i in prange(g.size):
        gx[i] = g[i] if out[i] > 0 else 0


@serialized
def relu_forward(x):
    """max(x, 0) elementwise (NaN stays NaN), a fresh array."""
    x = np.ascontiguousarray(x)
    y = np.empty_like(x)
    _relu_fwd(x.reshape(-1), y.reshape(-1))
    return y


@serialized
def relu_backward(g, out):
    """g * [out > 0] in one pass."""
    g, out = np.ascontiguousarray(g), np.ascontiguousarray(out)
    gx = np.empty(g.shape, dtype=g.dtype)
    _relu_bwd(g.reshape(-1), out.reshape(-1), gx.reshape(-1))
    return gx


def _pool_args(kernel, stride, padding, dilation=(1, 1)):
    return (*kernel, *stride, *padding, *dilation)


def _check4d(name, x):
    if x.ndim != 4:
        raise ValueError(f"{name}: expected an NCHW array (4 dims), got shape {x.shape}")


# ------------------------------------------------------------------------------------- max pool
# NOTE: inside these loops we index with full subscripts (x[b, c, i, j]) rather than taking row views
# (row = x[b, c, i]): every view created in a parallel Numba loop does an atomic reference-count update on
# the parent array, and with both cores hammering the same counter that made max-pool ~10x slower.
@njit(parallel=True, cache=True)
def _max_pool_fwd(x, kh, kw, sh, sw, ph, pw, dh, dw, y, idx):
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
def _max_pool_fwd_nopad(x, kh, kw, sh, sw, dh, dw, y, idx):
    """Same as _max_pool_fwd when padding is 0: every window lies inside the image, no bounds checks."""
    n, c = x.shape[0], x.shape[1]
    ho, wo = y.shape[2], y.shape[3]
    for t in prange(n * c):
        b, ch = t // c, t % c
        for i in range(ho):
            for j in range(wo):
                best = x[b, ch, i * sh, j * sw]
                bi = 0
                for u in range(kh):
                    for v in range(kw):
                        val = x[b, ch, i * sh + u * dh, j * sw + v * dw]
                        if val > best or (val != val and best == best):
                            best = val
                            bi = u * kw + v
                y[b, ch, i, j] = best
                idx[b, ch, i, j] = bi


@njit(parallel=True, cache=True)
def _max_pool_fwd_2x2(x, y, idx):
    """2x2 windows, stride 2, no padding (the common case), with the four taps spelled out.

    # NOTE: the generic loops above ran at ~0.5 GB/s here (52 ms single-threaded for (128, 64, 28, 28),
    # NumPy's four strided np.maximum calls took 8.5 ms): runtime-length tap loops with a branchy argmax do
    # not vectorise. Same first-maximum-wins / NaN-wins rule, as selects on the four values.
    """
    n, c = x.shape[0], x.shape[1]
    ho, wo = y.shape[2], y.shape[3]
    for t in prange(n * c):
        b, ch = t // c, t % c
        for i in range(ho):
            for j in range(wo):
                best = x[b, ch, 2 * i, 2 * j]
                bi = 0
                v = x[b, ch, 2 * i, 2 * j + 1]
                take = v > best or (v != v and best == best)
                best, bi = (v, 1) if take else (best, bi)
                v = x[b, ch, 2 * i + 1, 2 * j]
                take = v > best or (v != v and best == best)
                best, bi = (v, 2) if take else (best, bi)
                v = x[b, ch, 2 * i + 1, 2 * j + 1]
                take = v > best or (v != v and best == best)
                best, bi = (v, 3) if take else (best, bi)
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
    _check4d("max_pool2d", x)
    x = np.ascontiguousarray(x)
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    n, c, h, wd = x.shape
    ho, wo = out_size(h, kh, sh, ph, dh), out_size(wd, kw, sw, pw, dw)
    y = np.empty((n, c, ho, wo), dtype=x.dtype)
    idx = np.empty((n, c, ho, wo), dtype=np.int32)
    if (kh, kw) == (sh, sw) == (2, 2) and ph == pw == 0 and dh == dw == 1:
        _max_pool_fwd_2x2(x, y, idx)
    elif ph == pw == 0:
        _max_pool_fwd_nopad(x, kh, kw, sh, sw, dh, dw, y, idx)
    else:
        _max_pool_fwd(x, *_pool_args(kernel, stride, padding, dilation), y, idx)
    return y, idx


@serialized
def max_pool2d_backward(gy, idx, x_shape, kernel, stride, padding, dilation=(1, 1)):
    """Route each output gradient to the element that was its window's max: gx[argmax] += gy."""
    gy, idx = np.ascontiguousarray(gy), np.ascontiguousarray(idx, dtype=np.int32)
    gx = np.empty(x_shape, dtype=gy.dtype)
    _max_pool_bwd(gy, idx, *_pool_args(kernel, stride, padding, dilation), gx)
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
    _check4d("avg_pool2d", x)
    x = np.ascontiguousarray(x)
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    n, c, h, wd = x.shape
    ho, wo = out_size(h, kh, sh, ph), out_size(wd, kw, sw, pw)
    div = _avg_divisor(x.shape, kernel, stride, padding, count_include_pad, np.float64)
    y = np.empty((n, c, ho, wo), dtype=x.dtype)
    _avg_pool_fwd(x, kh, kw, sh, sw, ph, pw, div, y)
    return y


@serialized
def avg_pool2d_backward(gy, x_shape, kernel, stride, padding, count_include_pad=True):
    """Every element of a window receives gy / window_size."""
    gy = np.ascontiguousarray(gy)
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    div = _avg_divisor(x_shape, kernel, stride, padding, count_include_pad, np.float64)
    gx = np.empty(x_shape, dtype=gy.dtype)
    _avg_pool_bwd(gy, kh, kw, sh, sw, ph, pw, div, gx)
    return gx


# ----------------------------------------------------------------------------------- batch norm
@njit(parallel=True, cache=True)
def _bn_fwd(x, weight, bias, eps, y, mean, invstd):
    """x, y: (N, C, M). Per channel: mean and biased variance in ONE pass (float64 sums of x - k and
    (x - k)^2, shifted by the channel's first value k so that a large mean does not cancel the variance),
    then y = x a + b."""
    n, c, m = x.shape
    cnt = n * m
    for ch in prange(c):
        k = float(x[0, ch, 0]) if cnt else 0.0
        s = 0.0
        ss = 0.0
        for b in range(n):
            for i in range(m):
                d = x[b, ch, i] - k
                s += d
                ss += d * d
        ds = s / cnt
        mu = k + ds
        var = max(ss / cnt - ds * ds, 0.0)
        inv = 1.0 / math.sqrt(var + eps)
        scale = inv * weight[ch]
        shift = bias[ch] - mu * scale
        for b in range(n):
            for i in range(m):
                y[b, ch, i] = x[b, ch, i] * scale + shift
        mean[ch] = mu
        invstd[ch] = inv


@njit(parallel=True, cache=True)
def _bn_bwd(gy, x, weight, mean, invstd, gx, gw, gb):
    """dx = w invstd (gy - mean(gy) - xhat mean(gy xhat)); dw = sum gy xhat; db = sum gy."""
    n, c, m = x.shape
    cnt = n * m
    for ch in prange(c):
        mu, inv = mean[ch], invstd[ch]
        sg = 0.0
        sgx = 0.0
        for b in range(n):
            for k in range(m):
                g = gy[b, ch, k]
                sg += g
                sgx += g * (x[b, ch, k] - mu)
        sgx *= inv  # = sum gy * xhat
        gb[ch] = sg
        gw[ch] = sgx
        scale = weight[ch] * inv
        a = sg / cnt
        bq = sgx / cnt * inv  # xhat * mean(gy xhat) = (x - mu) * bq
        for b in range(n):
            for k in range(m):
                gx[b, ch, k] = scale * (gy[b, ch, k] - a - (x[b, ch, k] - mu) * bq)


def _bn_view(x):
    if x.ndim < 2:
        raise ValueError(f"batch_norm: expected (N, C) or (N, C, ...) input, got shape {x.shape}")
    return np.ascontiguousarray(x).reshape(x.shape[0], x.shape[1], -1)


@serialized
def batch_norm_forward_train(x, weight, bias, eps):
    """Normalise with the batch's per-channel mean and biased variance -> (y, mean, invstd)."""
    x3 = _bn_view(x)
    c = x.shape[1]
    w = np.ones(c, x.dtype) if weight is None else np.ascontiguousarray(weight, dtype=x.dtype)
    b = np.zeros(c, x.dtype) if bias is None else np.ascontiguousarray(bias, dtype=x.dtype)
    y = np.empty(x3.shape, dtype=x.dtype)
    mean, invstd = np.empty(c, x.dtype), np.empty(c, x.dtype)
    _bn_fwd(x3, w, b, float(eps), y, mean, invstd)
    return y.reshape(x.shape), mean, invstd


@serialized
def batch_norm_backward(gy, x, weight, mean, invstd):
    """-> (gx, gw, gb); gw, gb are per-channel sums (returned even when ``weight`` is None)."""
    x3, gy3 = _bn_view(x), _bn_view(gy)
    c = x.shape[1]
    w = np.ones(c, x.dtype) if weight is None else np.ascontiguousarray(weight, dtype=x.dtype)
    gx = np.empty(x3.shape, dtype=x.dtype)
    gw, gb = np.empty(c, x.dtype), np.empty(c, x.dtype)
    _bn_bwd(gy3, x3, w, np.ascontiguousarray(mean), np.ascontiguousarray(invstd), gx, gw, gb)
    return gx.reshape(x.shape), gw, gb
