"""Tier 3, 3-D: plain Numba CUDA kernels for volumes (NCDHW), one thread per output element; re-exported
by ``cuda_plain.py``. The 2-D kernels of ``cuda_plain.py`` with one more axis: each thread computes one
output voxel (forward), one input voxel (backward-input: it *gathers* from the outputs that read it, so
no atomics) or one weight tap (backward-weight), with a grid-stride loop. The fast tier
(``cuda_conv3d.py``) turns the convolutions into vol2col + GEMM; these pooling kernels are already one
thread per output and serve both tiers.

Arrays are CuPy arrays on a GPU and NumPy arrays under the simulator (``NUMBA_ENABLE_CUDASIM=1``).
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda

from .cuda_common import contiguous, launch, xp_of
from .reference3d import out_shape3

__all__ = [
    "conv3d_forward", "conv3d_backward_input", "conv3d_backward_weight",
    "max_pool3d_forward", "max_pool3d_backward", "avg_pool3d_forward", "avg_pool3d_backward",
]


def geometry3(x_shape, w_shape, stride, padding, dilation, groups, fn="conv3d"):
    """Checked shapes of a 3-D convolution -> (N, O, (D_out, H_out, W_out))."""
    if len(x_shape) != 5 or len(w_shape) != 5:
        raise ValueError(f"{fn}: input {tuple(x_shape)} and weight {tuple(w_shape)} must both be 5-D")
    if x_shape[1] != w_shape[1] * groups or w_shape[0] % groups:
        raise ValueError(f"{fn}: input channels {x_shape[1]} and weight shape {tuple(w_shape)} do not match "
                         f"groups={groups}")
    out = out_shape3(x_shape[2:], w_shape[2:], stride, padding, dilation)
    if min(out) <= 0:
        raise ValueError(f"{fn}: output size {out} is empty for input {tuple(x_shape)}, kernel "
                         f"{tuple(w_shape[2:])}, stride {tuple(stride)}, padding {tuple(padding)}, "
                         f"dilation {tuple(dilation)}")
    return x_shape[0], w_shape[0], out


def _ints(*triples):
    return tuple(int(v) for t in triples for v in t)


# ----------------------------------------------------------------------------------- convolution
@cuda.jit
def _conv_fwd_kernel(x, w, sd, sh, sw, pd, ph, pw, dd, dh, dw, groups, y):
    """y[b, oc, z, i, j] = sum_{ci, a, u, v} w[oc, ci, a, u, v] xpad[b, g cg + ci, z sd + a dd, i sh + u dh,
    j sw + v dw]."""
    n, o, do, ho, wo = y.shape
    cg, kd, kh, kw = w.shape[1], w.shape[2], w.shape[3], w.shape[4]
    dep, h, wd = x.shape[2], x.shape[3], x.shape[4]
    og = o // groups
    for e in range(cuda.grid(1), y.size, cuda.gridsize(1)):
        j = e % wo
        i = (e // wo) % ho
        z = (e // (wo * ho)) % do
        oc = (e // (wo * ho * do)) % o
        b = e // (wo * ho * do * o)
        g = oc // og
        acc = 0.0
        for ci in range(cg):
            for a in range(kd):
                zi = z * sd - pd + a * dd
                if 0 <= zi < dep:
                    for u in range(kh):
                        hi = i * sh - ph + u * dh
                        if 0 <= hi < h:
                            for v in range(kw):
                                wi = j * sw - pw + v * dw
                                if 0 <= wi < wd:
                                    acc += x[b, g * cg + ci, zi, hi, wi] * w[oc, ci, a, u, v]
        y[b, oc, z, i, j] = acc


@cuda.jit
def _conv_bwd_input_kernel(gy, w, sd, sh, sw, pd, ph, pw, dd, dh, dw, groups, gx):
    """gx[b, ch, zi, hi, wi] = sum over the outputs (oc, z, i, j) and taps (a, u, v) that read xpad at this
    voxel: zi = z sd - pd + a dd, hi = i sh - ph + u dh, wi = j sw - pw + v dw."""
    n, c, dep, h, wd = gx.shape
    o, cg, kd, kh, kw = w.shape
    do, ho, wo = gy.shape[2], gy.shape[3], gy.shape[4]
    og = o // groups
    for e in range(cuda.grid(1), gx.size, cuda.gridsize(1)):
        wi = e % wd
        hi = (e // wd) % h
        zi = (e // (wd * h)) % dep
        ch = (e // (wd * h * dep)) % c
        b = e // (wd * h * dep * c)
        g, ci = ch // cg, ch % cg
        acc = 0.0
        for a in range(kd):
            tz = zi + pd - a * dd  # = z sd for the output depth z that reads this voxel through tap a
            if tz >= 0 and tz % sd == 0 and tz // sd < do:
                z = tz // sd
                for u in range(kh):
                    ti = hi + ph - u * dh
                    if ti >= 0 and ti % sh == 0 and ti // sh < ho:
                        i = ti // sh
                        for v in range(kw):
                            tj = wi + pw - v * dw
                            if tj >= 0 and tj % sw == 0 and tj // sw < wo:
                                j = tj // sw
                                for oc in range(g * og, (g + 1) * og):
                                    acc += gy[b, oc, z, i, j] * w[oc, ci, a, u, v]
        gx[b, ch, zi, hi, wi] = acc


@cuda.jit
def _conv_bwd_weight_kernel(gy, x, sd, sh, sw, pd, ph, pw, dd, dh, dw, groups, gw):
    """gw[oc, ci, a, u, v] = sum_{b, z, i, j} gy[b, oc, z, i, j] xpad[b, g cg + ci, z sd + a dd, i sh + u dh,
    j sw + v dw]."""
    o, cg, kd, kh, kw = gw.shape
    n, dep, h, wd = x.shape[0], x.shape[2], x.shape[3], x.shape[4]
    do, ho, wo = gy.shape[2], gy.shape[3], gy.shape[4]
    og = o // groups
    for e in range(cuda.grid(1), gw.size, cuda.gridsize(1)):
        v = e % kw
        u = (e // kw) % kh
        a = (e // (kw * kh)) % kd
        ci = (e // (kw * kh * kd)) % cg
        oc = e // (kw * kh * kd * cg)
        ch = (oc // og) * cg + ci
        acc = 0.0
        for b in range(n):
            for z in range(do):
                zi = z * sd - pd + a * dd
                if 0 <= zi < dep:
                    for i in range(ho):
                        hi = i * sh - ph + u * dh
                        if 0 <= hi < h:
                            for j in range(wo):
                                wi = j * sw - pw + v * dw
                                if 0 <= wi < wd:
                                    acc += gy[b, oc, z, i, j] * x[b, ch, zi, hi, wi]
        gw[oc, ci, a, u, v] = acc


def conv3d_forward(x, w, stride, padding, dilation, groups):
    """y = conv3d(x, w) (no bias), NCDHW: one thread per y[n, o, z, i, j]."""
    x = contiguous(x)
    w = contiguous(w).astype(x.dtype, copy=False)
    n, o, out = geometry3(x.shape, w.shape, stride, padding, dilation, groups)
    y = xp_of(x).empty((n, o, *out), dtype=x.dtype)
    launch(_conv_fwd_kernel, y.size, x, w, *_ints(stride, padding, dilation), int(groups), y)
    return y


def conv3d_backward_input(gy, w, x_shape, stride, padding, dilation, groups):
    """dL/dx of conv3d: one thread per input voxel, gathering from the outputs that read it."""
    gy = contiguous(gy)
    w = contiguous(w).astype(gy.dtype, copy=False)
    n, o, out = geometry3(tuple(x_shape), w.shape, stride, padding, dilation, groups)
    if tuple(gy.shape) != (n, o, *out):
        raise ValueError(f"conv3d_backward_input: gy has shape {tuple(gy.shape)}, expected {(n, o, *out)}")
    gx = xp_of(gy).empty(tuple(x_shape), dtype=gy.dtype)
    launch(_conv_bwd_input_kernel, gx.size, gy, w, *_ints(stride, padding, dilation), int(groups), gx)
    return gx


def conv3d_backward_weight(gy, x, w_shape, stride, padding, dilation, groups):
    """dL/dw of conv3d: one thread per weight tap, summing over images and output voxels."""
    gy = contiguous(gy)
    x = contiguous(x).astype(gy.dtype, copy=False)
    n, o, out = geometry3(x.shape, tuple(w_shape), stride, padding, dilation, groups)
    if tuple(gy.shape) != (n, o, *out):
        raise ValueError(f"conv3d_backward_weight: gy has shape {tuple(gy.shape)}, expected {(n, o, *out)}")
    gw = xp_of(gy).empty(tuple(w_shape), dtype=gy.dtype)
    launch(_conv_bwd_weight_kernel, gw.size, gy, x, *_ints(stride, padding, dilation), int(groups), gw)
    return gw


# -------------------------------------------------------------------------------------- pooling
@cuda.jit
def _max_pool_fwd_kernel(x, kd, kh, kw, sd, sh, sw, pd, ph, pw, dd, dh, dw, y, idx):
    """One thread per output: the window's max and its position (the first maximum wins, NaN beats all)."""
    n, c, do, ho, wo = y.shape
    dep, h, wd = x.shape[2], x.shape[3], x.shape[4]
    for e in range(cuda.grid(1), y.size, cuda.gridsize(1)):
        j = e % wo
        i = (e // wo) % ho
        z = (e // (wo * ho)) % do
        ch = (e // (wo * ho * do)) % c
        b = e // (wo * ho * do * c)
        best = -math.inf
        bi = 0
        for a in range(kd):
            zi = z * sd - pd + a * dd
            for u in range(kh):
                hi = i * sh - ph + u * dh
                for v in range(kw):
                    wi = j * sw - pw + v * dw
                    inside = 0 <= zi < dep and 0 <= hi < h and 0 <= wi < wd
                    val = x[b, ch, zi, hi, wi] if inside else -math.inf
                    if (a == 0 and u == 0 and v == 0) or val > best or (val != val and best == best):
                        best = val
                        bi = (a * kh + u) * kw + v
        y[b, ch, z, i, j] = best
        idx[b, ch, z, i, j] = bi


@cuda.jit
def _max_pool_bwd_kernel(gy, idx, kd, kh, kw, sd, sh, sw, pd, ph, pw, dd, dh, dw, gx):
    """One thread per input voxel: the sum of gy over the windows whose argmax is this voxel."""
    n, c, dep, h, wd = gx.shape
    do, ho, wo = gy.shape[2], gy.shape[3], gy.shape[4]
    for e in range(cuda.grid(1), gx.size, cuda.gridsize(1)):
        wi = e % wd
        hi = (e // wd) % h
        zi = (e // (wd * h)) % dep
        ch = (e // (wd * h * dep)) % c
        b = e // (wd * h * dep * c)
        acc = 0.0
        for a in range(kd):
            tz = zi + pd - a * dd
            if tz >= 0 and tz % sd == 0 and tz // sd < do:
                for u in range(kh):
                    ti = hi + ph - u * dh
                    if ti >= 0 and ti % sh == 0 and ti // sh < ho:
                        for v in range(kw):
                            tj = wi + pw - v * dw
                            if tj >= 0 and tj % sw == 0 and tj // sw < wo:
                                if idx[b, ch, tz // sd, ti // sh, tj // sw] == (a * kh + u) * kw + v:
                                    acc += gy[b, ch, tz // sd, ti // sh, tj // sw]
        gx[b, ch, zi, hi, wi] = acc


@cuda.jit(device=True)
def _avg_count(i, s, p, k, size, include_pad):
    """How many positions of window i (start i s - p, length k) count along one axis (PyTorch's rule)."""
    start = i * s - p
    if include_pad:
        return min(start + k, size + p) - start
    return min(start + k, size) - max(start, 0)


@cuda.jit
def _avg_pool_fwd_kernel(x, kd, kh, kw, sd, sh, sw, pd, ph, pw, include_pad, y):
    n, c, do, ho, wo = y.shape
    dep, h, wd = x.shape[2], x.shape[3], x.shape[4]
    for e in range(cuda.grid(1), y.size, cuda.gridsize(1)):
        j = e % wo
        i = (e // wo) % ho
        z = (e // (wo * ho)) % do
        ch = (e // (wo * ho * do)) % c
        b = e // (wo * ho * do * c)
        acc = 0.0
        for zi in range(max(z * sd - pd, 0), min(z * sd - pd + kd, dep)):
            for hi in range(max(i * sh - ph, 0), min(i * sh - ph + kh, h)):
                for wi in range(max(j * sw - pw, 0), min(j * sw - pw + kw, wd)):
                    acc += x[b, ch, zi, hi, wi]
        div = (_avg_count(z, sd, pd, kd, dep, include_pad) * _avg_count(i, sh, ph, kh, h, include_pad)
               * _avg_count(j, sw, pw, kw, wd, include_pad))
        y[b, ch, z, i, j] = acc / div


@cuda.jit
def _avg_pool_bwd_kernel(gy, kd, kh, kw, sd, sh, sw, pd, ph, pw, include_pad, gx):
    """One thread per input voxel: the sum of gy / window size over the windows that contain it."""
    n, c, dep, h, wd = gx.shape
    do, ho, wo = gy.shape[2], gy.shape[3], gy.shape[4]
    for e in range(cuda.grid(1), gx.size, cuda.gridsize(1)):
        wi = e % wd
        hi = (e // wd) % h
        zi = (e // (wd * h)) % dep
        ch = (e // (wd * h * dep)) % c
        b = e // (wd * h * dep * c)
        acc = 0.0
        for a in range(kd):
            tz = zi + pd - a
            if tz >= 0 and tz % sd == 0 and tz // sd < do:
                z = tz // sd
                for u in range(kh):
                    ti = hi + ph - u
                    if ti >= 0 and ti % sh == 0 and ti // sh < ho:
                        i = ti // sh
                        for v in range(kw):
                            tj = wi + pw - v
                            if tj >= 0 and tj % sw == 0 and tj // sw < wo:
                                j = tj // sw
                                div = (_avg_count(z, sd, pd, kd, dep, include_pad)
                                       * _avg_count(i, sh, ph, kh, h, include_pad)
                                       * _avg_count(j, sw, pw, kw, wd, include_pad))
                                acc += gy[b, ch, z, i, j] / div
        gx[b, ch, zi, hi, wi] = acc


def _check5d(name, x):
    if x.ndim != 5:
        raise ValueError(f"{name}: expected an NCDHW array (5 dims), got shape {tuple(x.shape)}")


def max_pool3d_forward(x, kernel, stride, padding, dilation=(1, 1, 1)):
    """Max over each window -> (y, idx); idx (int32) is the argmax's position inside its window."""
    _check5d("max_pool3d", x)
    x = contiguous(x)
    shape = tuple(x.shape[:2]) + out_shape3(x.shape[2:], kernel, stride, padding, dilation)
    xp = xp_of(x)
    y, idx = xp.empty(shape, dtype=x.dtype), xp.empty(shape, dtype=np.int32)
    launch(_max_pool_fwd_kernel, y.size, x, *_ints(kernel, stride, padding, dilation), y, idx)
    return y, idx


def max_pool3d_backward(gy, idx, x_shape, kernel, stride, padding, dilation=(1, 1, 1)):
    """Route each output gradient to the element that was its window's max (gathered per input voxel)."""
    gy, idx = contiguous(gy), contiguous(idx)
    gx = xp_of(gy).empty(tuple(x_shape), dtype=gy.dtype)
    launch(_max_pool_bwd_kernel, gx.size, gy, idx, *_ints(kernel, stride, padding, dilation), gx)
    return gx


def avg_pool3d_forward(x, kernel, stride, padding, count_include_pad=True):
    """Mean over each window (padded zeros counted when ``count_include_pad``, as in PyTorch)."""
    _check5d("avg_pool3d", x)
    x = contiguous(x)
    shape = tuple(x.shape[:2]) + out_shape3(x.shape[2:], kernel, stride, padding)
    y = xp_of(x).empty(shape, dtype=x.dtype)
    launch(_avg_pool_fwd_kernel, y.size, x, *_ints(kernel, stride, padding), bool(count_include_pad), y)
    return y


def avg_pool3d_backward(gy, x_shape, kernel, stride, padding, count_include_pad=True):
    """Every element of a window receives gy / window_size."""
    gy = contiguous(gy)
    gx = xp_of(gy).empty(tuple(x_shape), dtype=gy.dtype)
    launch(_avg_pool_bwd_kernel, gx.size, gy, *_ints(kernel, stride, padding), bool(count_include_pad), gx)
    return gx
