"""Max / average pooling, forward and backward, in Numba CUDA (NCHW).

Forward: one thread per output element scans its window. Backward *gathers*: one thread per input
element visits the (few) output windows that contain it and adds their gradient, so there are no
atomics and the result is deterministic. Window (i, j) covers input rows
``i * sh - ph + u * dh`` (u < kh); so input row h is tap u of output row ``i = (h + ph - u dh) / sh``
when that division is exact.

    >>> y, idx = max_pool2d_forward(x, (2, 2), (2, 2), (0, 0))
"""

from __future__ import annotations

import functools
import math

import numpy as np
from numba import cuda

from .cuda_common import contiguous, dev, launch_1d, nb_type, stream, xp_of
from .reference import out_size


@cuda.jit
def max_pool_fwd_kernel(x, y, idx, kh, kw, sh, sw, ph, pw, dh, dw, neg_inf):
    n_img, ch, ho, wo = y.shape
    h, w = x.shape[2], x.shape[3]
    for e in range(cuda.grid(1), y.size, cuda.gridsize(1)):
        j = e % wo
        t = e // wo
        i = t % ho
        t = t // ho
        c = t % ch
        n = t // ch
        best = neg_inf
        arg = 0
        for u in range(kh):
            hh = i * sh - ph + u * dh
            for v in range(kw):
                ww = j * sw - pw + v * dw
                val = neg_inf  # padding counts as -inf, as in PyTorch
                if hh >= 0 and hh < h and ww >= 0 and ww < w:
                    val = x[n, c, hh, ww]
                # first max wins; a NaN wins over numbers (NumPy's argmax rule)
                if val > best or (val != val and best == best):
                    best = val
                    arg = u * kw + v
        y[n, c, i, j] = best
        idx[n, c, i, j] = arg


@cuda.jit
def max_pool_bwd_kernel(gy, idx, gx, kh, kw, sh, sw, ph, pw, dh, dw, zero):
    n_img, ch, h, w = gx.shape
    ho, wo = gy.shape[2], gy.shape[3]
    for e in range(cuda.grid(1), gx.size, cuda.gridsize(1)):
        ww = e % w
        t = e // w
        hh = t % h
        t = t // h
        c = t % ch
        n = t // ch
        acc = zero
        for u in range(kh):
            hi = hh + ph - u * dh
            if hi >= 0 and hi % sh == 0 and hi // sh < ho:
                i = hi // sh
                for v in range(kw):
                    wj = ww + pw - v * dw
                    if wj >= 0 and wj % sw == 0 and wj // sw < wo:
                        j = wj // sw
                        if idx[n, c, i, j] == u * kw + v:
                            acc += gy[n, c, i, j]
        gx[n, c, hh, ww] = acc


@functools.cache
def make_avg_kernels(dtype):
    """(forward, backward) average-pooling kernels for one dtype (the divisor is converted to it)."""
    T = nb_type(dtype)

    @cuda.jit
    def avg_pool_fwd_kernel(x, y, kh, kw, sh, sw, ph, pw, include_pad, zero):
        n_img, ch, ho, wo = y.shape
        h, w = x.shape[2], x.shape[3]
        for e in range(cuda.grid(1), y.size, cuda.gridsize(1)):
            j = e % wo
            t = e // wo
            i = t % ho
            t = t // ho
            c = t % ch
            n = t // ch
            acc = zero
            for u in range(kh):
                hh = i * sh - ph + u
                if hh >= 0 and hh < h:
                    for v in range(kw):
                        ww = j * sw - pw + v
                        if ww >= 0 and ww < w:
                            acc += x[n, c, hh, ww]
            # PyTorch's divisor: padded zeros count (include_pad), the part past the padding never
            hs = i * sh - ph
            ws = j * sw - pw
            if include_pad:
                div = (min(hs + kh, h + ph) - hs) * (min(ws + kw, w + pw) - ws)
            else:
                div = (min(hs + kh, h) - max(hs, 0)) * (min(ws + kw, w) - max(ws, 0))
            y[n, c, i, j] = acc / T(div)  # a division of x's dtype, not float64


    @cuda.jit
    def avg_pool_bwd_kernel(gy, gx, kh, kw, sh, sw, ph, pw, include_pad, zero):
        n_img, ch, h, w = gx.shape
        ho, wo = gy.shape[2], gy.shape[3]
        for e in range(cuda.grid(1), gx.size, cuda.gridsize(1)):
            ww = e % w
            t = e // w
            hh = t % h
            t = t // h
            c = t % ch
            n = t // ch
            acc = zero
            for u in range(kh):
                hi = hh + ph - u
                if hi >= 0 and hi % sh == 0 and hi // sh < ho:
                    i = hi // sh
                    for v in range(kw):
                        wj = ww + pw - v
                        if wj >= 0 and wj % sw == 0 and wj // sw < wo:
                            j = wj // sw
                            hs = i * sh - ph  # the window's divisor, as in the forward
                            ws = j * sw - pw
                            if include_pad:
                                div = (min(hs + kh, h + ph) - hs) * (min(ws + kw, w + pw) - ws)
                            else:
                                div = (min(hs + kh, h) - max(hs, 0)) * (min(ws + kw, w) - max(ws, 0))
                            acc += gy[n, c, i, j] / T(div)
            gx[n, c, hh, ww] = acc

    return avg_pool_fwd_kernel, avg_pool_bwd_kernel


def _launch(kernel, n, *args):
    if n:
        blocks, threads = launch_1d(n)
        kernel[blocks, threads, stream()](*args)


def max_pool2d_forward(x, kernel, stride, padding, dilation=(1, 1)):
    """Returns (y, idx): idx is the argmax (0 .. kh*kw-1) inside each window, int32."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    n, c, h, w = x.shape
    ho, wo = out_size(h, kh, sh, ph, dh), out_size(w, kw, sw, pw, dw)
    xp = xp_of(x)
    x = contiguous(x)
    y = xp.empty((n, c, ho, wo), dtype=x.dtype)
    idx = xp.empty((n, c, ho, wo), dtype=xp.int32)
    _launch(max_pool_fwd_kernel, y.size, dev(x), dev(y), dev(idx), kh, kw, sh, sw, ph, pw, dh, dw,
            x.dtype.type(-math.inf))
    return y, idx


def max_pool2d_backward(gy, idx, x_shape, kernel, stride, padding, dilation=(1, 1)):
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    gy, idx = contiguous(gy), contiguous(idx)
    gx = xp_of(gy).empty(tuple(x_shape), dtype=gy.dtype)
    _launch(max_pool_bwd_kernel, gx.size, dev(gy), dev(idx), dev(gx), kh, kw, sh, sw, ph, pw, dh, dw,
            gy.dtype.type(0))
    return gx


def avg_pool2d_forward(x, kernel, stride, padding, count_include_pad=True):
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    n, c, h, w = x.shape
    ho, wo = out_size(h, kh, sh, ph), out_size(w, kw, sw, pw)
    x = contiguous(x)
    y = xp_of(x).empty((n, c, ho, wo), dtype=x.dtype)
    fwd = make_avg_kernels(np.dtype(x.dtype).str)[0]
    _launch(fwd, y.size, dev(x), dev(y), kh, kw, sh, sw, ph, pw, bool(count_include_pad), x.dtype.type(0))
    return y


def avg_pool2d_backward(gy, x_shape, kernel, stride, padding, count_include_pad=True):
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    gy = contiguous(gy)
    gx = xp_of(gy).empty(tuple(x_shape), dtype=gy.dtype)
    bwd = make_avg_kernels(np.dtype(gy.dtype).str)[1]
    _launch(bwd, gx.size, dev(gy), dev(gx), kh, kw, sh, sw, ph, pw, bool(count_include_pad), gy.dtype.type(0))
    return gx
