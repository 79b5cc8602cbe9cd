"""Tier 1, 3-D: plain, readable Numba CPU loops for volumes (NCDHW), re-exported by ``cpu_plain.py``.

The 2-D direct loops of ``cpu_plain.py`` with one more axis: every output voxel (forward), input voxel
(backward-input) or weight tap (backward-weight) is a direct sum, parallel over (image, channel) volumes;
the valid ``j`` range of each row is computed once, so the innermost loop has no padding checks. The
fast tier (``cpu_conv3d.py``) turns convolutions into GEMMs and keeps these loops for depthwise-like
convs; the pooling loops here are already one parallel pass each and serve both tiers.

    >>> y = conv3d_forward(x, w, (1, 1, 1), (1, 1, 1), (1, 1, 1), 1)
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .reference3d import avg_divisor3, out_shape3
from .threads import serialized

__all__ = [
    "conv3d_forward", "conv3d_backward_input", "conv3d_backward_weight",
    "max_pool3d_forward", "max_pool3d_backward", "avg_pool3d_forward", "avg_pool3d_backward",
]


@njit(cache=True, inline="always")
def valid_range(off, stride, size, n_out):
    """Output indices j in [lo, hi) whose input index j*stride + off lies inside [0, size)
    (``cpu_plain.valid_range``; not imported: cpu_plain.py re-exports this module)."""
    lo = 0 if off >= 0 else (-off + stride - 1) // stride
    hi = (size - off + stride - 1) // stride if size - off > 0 else 0
    hi = min(hi, n_out)
    lo = min(lo, hi)
    return lo, hi


def prep(a, dtype=None):
    a = np.ascontiguousarray(a)
    return a if dtype is None or a.dtype == dtype else a.astype(dtype)


def geometry3(x_shape, w_shape, stride, padding, dilation, groups, fn="conv3d"):
    """Checked shapes of a 3-D convolution -> (N, C, O, Cg, (D_out, H_out, W_out))."""
    if len(x_shape) != 5 or len(w_shape) != 5:
        raise ValueError(f"{fn}: input {tuple(x_shape)} and weight {tuple(w_shape)} must both be 5-D")
    n, c = x_shape[:2]
    o, cg = w_shape[:2]
    if c != cg * groups or o % groups:
        raise ValueError(f"{fn}: input channels {c} and weight shape {tuple(w_shape)} do not match "
                         f"groups={groups}")
    out = out_shape3(x_shape[2:], w_shape[2:], stride, padding, dilation)
    if min(out) <= 0:
        raise ValueError(f"{fn}: output size {out} is empty for input {tuple(x_shape)}, kernel "
                         f"{tuple(w_shape[2:])}, stride {tuple(stride)}, padding {tuple(padding)}, "
                         f"dilation {tuple(dilation)}")
    return n, c, o, cg, out


def _args(stride, padding, dilation):
    return (*map(int, stride), *map(int, padding), *map(int, dilation))


# ----------------------------------------------------------------------------------- convolution
@njit(parallel=True, cache=True)
def direct_forward(x, w, sd, sh, sw, pd, ph, pw, dd, dh, dw, groups, y):
    """y[b, oc] = sum over (ci, a, u, v) of w[oc, ci, a, u, v] times the shifted input volume."""
    n, dep, h, wd = x.shape[0], x.shape[2], x.shape[3], x.shape[4]
    o, cg, kd, kh, kw = w.shape
    do, ho, wo = y.shape[2], y.shape[3], y.shape[4]
    og = o // groups
    for t in prange(n * o):
        b, oc = t // o, t % o
        g = oc // og
        out = y[b, oc]
        out[:, :, :] = 0
        for ci in range(cg):
            xi = x[b, g * cg + ci]
            for a in range(kd):
                for u in range(kh):
                    for v in range(kw):
                        wv = w[oc, ci, a, u, v]
                        off = v * dw - pw
                        jlo, jhi = valid_range(off, sw, wd, wo)
                        for z in range(do):
                            zi = z * sd - pd + a * dd
                            if zi < 0 or zi >= dep:
                                continue
                            for i in range(ho):
                                hi = i * sh - ph + u * dh
                                if hi < 0 or hi >= h:
                                    continue
                                for j in range(jlo, jhi):
                                    out[z, i, j] += wv * xi[zi, hi, j * sw + off]


@njit(parallel=True, cache=True)
def direct_backward_input(gy, w, sd, sh, sw, pd, ph, pw, dd, dh, dw, groups, gx):
    """gx[b, ch] = the sum of gy * w scattered back over every output and tap that read each voxel."""
    n, c, dep, h, wd = gx.shape
    o, cg, kd, kh, kw = w.shape
    do, ho, wo = gy.shape[2], gy.shape[3], gy.shape[4]
    og = o // groups
    for t in prange(n * c):
        b, ch = t // c, t % c
        g, ci = ch // cg, ch % cg
        dst = gx[b, ch]
        dst[:, :, :] = 0
        for oc in range(g * og, (g + 1) * og):
            gi = gy[b, oc]
            for a in range(kd):
                for u in range(kh):
                    for v in range(kw):
                        wv = w[oc, ci, a, u, v]
                        off = v * dw - pw
                        jlo, jhi = valid_range(off, sw, wd, wo)
                        for z in range(do):
                            zi = z * sd - pd + a * dd
                            if zi < 0 or zi >= dep:
                                continue
                            for i in range(ho):
                                hi = i * sh - ph + u * dh
                                if hi < 0 or hi >= h:
                                    continue
                                for j in range(jlo, jhi):
                                    dst[zi, hi, j * sw + off] += wv * gi[z, i, j]


@njit(parallel=True, cache=True)
def direct_backward_weight(gy, x, sd, sh, sw, pd, ph, pw, dd, dh, dw, groups, gw):
    """gw[oc, ci, a, u, v] = sum over images and output voxels of gy times the input voxel it read."""
    n, dep, h, wd = x.shape[0], x.shape[2], x.shape[3], x.shape[4]
    o, cg, kd, kh, kw = gw.shape
    do, ho, wo = gy.shape[2], gy.shape[3], gy.shape[4]
    og = o // groups
    for t in prange(o * cg):
        oc, ci = t // cg, t % cg
        g = oc // og
        for a in range(kd):
            for u in range(kh):
                for v in range(kw):
                    off = v * dw - pw
                    jlo, jhi = valid_range(off, sw, wd, wo)
                    acc = 0.0  # float64 accumulator: sums run over N*Do*Ho*Wo terms
                    for b in range(n):
                        xi = x[b, g * cg + ci]
                        gi = gy[b, oc]
                        for z in range(do):
                            zi = z * sd - pd + a * dd
                            if zi < 0 or zi >= dep:
                                continue
                            for i in range(ho):
                                hi = i * sh - ph + u * dh
                                if hi < 0 or hi >= h:
                                    continue
                                for j in range(jlo, jhi):
                                    acc += gi[z, i, j] * xi[zi, hi, j * sw + off]
                    gw[oc, ci, a, u, v] = acc


@serialized
def conv3d_forward(x, w, stride, padding, dilation, groups):
    """y[n, o, z, i, j] = sum_{c, a, u, v} w[o, c, a, u, v] xpad[n, g Cg + c, z s + a d, i s + u d,
    j s + v d].
    """
    x = prep(x)
    w = prep(w, x.dtype)
    n, c, o, cg, out = geometry3(x.shape, w.shape, stride, padding, dilation, groups)
    y = np.empty((n, o, *out), dtype=x.dtype)
    direct_forward(x, w, *_args(stride, padding, dilation), int(groups), y)
    return y


@serialized
def conv3d_backward_input(gy, w, x_shape, stride, padding, dilation, groups):
    """dL/dx: every input voxel gathers gy * w over the outputs and taps that read it."""
    gy = prep(gy)
    w = prep(w, gy.dtype)
    n, c, o, cg, out = geometry3(tuple(x_shape), w.shape, stride, padding, dilation, groups)
    if gy.shape != (n, o, *out):
        raise ValueError(f"conv3d_backward_input: gy has shape {gy.shape}, expected {(n, o, *out)}")
    gx = np.empty(tuple(x_shape), dtype=gy.dtype)
    direct_backward_input(gy, w, *_args(stride, padding, dilation), int(groups), gx)
    return gx


@serialized
def conv3d_backward_weight(gy, x, w_shape, stride, padding, dilation, groups):
    """dL/dw[o, c, a, u, v] = sum_{n, z, i, j} gy[n, o, z, i, j] xpad[n, g Cg + c, z s + a d, i s + u d,
    j s + v d]."""
    gy = prep(gy)
    x = prep(x, gy.dtype)
    n, c, o, cg, out = geometry3(x.shape, tuple(w_shape), stride, padding, dilation, groups)
    if gy.shape != (n, o, *out):
        raise ValueError(f"conv3d_backward_weight: gy has shape {gy.shape}, expected {(n, o, *out)}")
    gw = np.empty(tuple(w_shape), dtype=gy.dtype)
    direct_backward_weight(gy, x, *_args(stride, padding, dilation), int(groups), gw)
    return gw


# -------------------------------------------------------------------------------------- pooling
def _check5d(name, x):
    if x.ndim != 5:
        raise ValueError(f"{name}: expected an NCDHW array (5 dims), got shape {x.shape}")


# NOTE: full subscripts (x[b, c, z, i, j]) inside the parallel loops, no per-row views: each view made in
# a parallel Numba loop updates the parent's reference count atomically (see cpu_plain's max pool)
@njit(parallel=True, cache=True)
def _max_pool_fwd(x, kd, kh, kw, sd, sh, sw, pd, ph, pw, dd, dh, dw, y, idx):
    n, c, dep, h, wd = x.shape
    do, ho, wo = y.shape[2], y.shape[3], y.shape[4]
    for t in prange(n * c):
        b, ch = t // c, t % c
        for z in range(do):
            for i in range(ho):
                for j in range(wo):
                    best = -np.inf
                    bi = 0
                    for a in range(kd):
                        zi = z * sd - pd + a * dd
                        for u in range(kh):
                            hi = i * sh - ph + u * dh
                            for v in range(kw):
                                wi = j * sw - pw + v * dw
                                inside = 0 <= zi < dep and 0 <= hi < h and 0 <= wi < wd
                                val = x[b, ch, zi, hi, wi] if inside else -np.inf
                                # first maximum wins, and a NaN beats everything (NumPy's argmax rule)
                                first = a == 0 and u == 0 and v == 0
                                if first or val > best or (val != val and best == best):
                                    best = val
                                    bi = (a * kh + u) * kw + v
                    y[b, ch, z, i, j] = best
                    idx[b, ch, z, i, j] = bi


@njit(parallel=True, cache=True)
def _max_pool_bwd(gy, idx, kd, kh, kw, sd, sh, sw, pd, ph, pw, dd, dh, dw, gx):
    n, c, dep, h, wd = gx.shape
    do, ho, wo = gy.shape[2], gy.shape[3], gy.shape[4]
    for t in prange(n * c):
        b, ch = t // c, t % c
        for zi in range(dep):
            for hi in range(h):
                for wi in range(wd):
                    gx[b, ch, zi, hi, wi] = 0
        for z in range(do):
            for i in range(ho):
                for j in range(wo):
                    k = idx[b, ch, z, i, j]
                    zi = z * sd - pd + (k // (kh * kw)) * dd
                    hi = i * sh - ph + ((k // kw) % kh) * dh
                    wi = j * sw - pw + (k % kw) * dw
                    if 0 <= zi < dep and 0 <= hi < h and 0 <= wi < wd:
                        gx[b, ch, zi, hi, wi] += gy[b, ch, z, i, j]


@serialized
def max_pool3d_forward(x, kernel, stride, padding, dilation=(1, 1, 1)):
    """Max over each window -> (y, idx); idx (int32) is the argmax's position inside its window."""
    _check5d("max_pool3d", x)
    x = np.ascontiguousarray(x)
    out = out_shape3(x.shape[2:], kernel, stride, padding, dilation)
    y = np.empty(x.shape[:2] + out, dtype=x.dtype)
    idx = np.empty(x.shape[:2] + out, dtype=np.int32)
    _max_pool_fwd(x, *map(int, kernel), *_args(stride, padding, dilation), y, idx)
    return y, idx


@serialized
def max_pool3d_backward(gy, idx, x_shape, kernel, stride, padding, dilation=(1, 1, 1)):
    """Route each output gradient to the element that was its window's max: gx[argmax] += gy."""
    gy, idx = np.ascontiguousarray(gy), np.ascontiguousarray(idx, dtype=np.int32)
    gx = np.empty(tuple(x_shape), dtype=gy.dtype)
    _max_pool_bwd(gy, idx, *map(int, kernel), *_args(stride, padding, dilation), gx)
    return gx


@njit(parallel=True, cache=True)
def _avg_pool_fwd(x, kd, kh, kw, sd, sh, sw, pd, ph, pw, div, y):
    n, c, dep, h, wd = x.shape
    do, ho, wo = y.shape[2], y.shape[3], y.shape[4]
    for t in prange(n * c):
        b, ch = t // c, t % c
        for z in range(do):
            z0, z1 = max(z * sd - pd, 0), min(z * sd - pd + kd, dep)
            for i in range(ho):
                h0, h1 = max(i * sh - ph, 0), min(i * sh - ph + kh, h)
                for j in range(wo):
                    w0, w1 = max(j * sw - pw, 0), min(j * sw - pw + kw, wd)
                    s = 0.0
                    for zi in range(z0, z1):
                        for hi in range(h0, h1):
                            for wi in range(w0, w1):
                                s += x[b, ch, zi, hi, wi]
                    y[b, ch, z, i, j] = s / div[z, i, j]


@njit(parallel=True, cache=True)
def _avg_pool_bwd(gy, kd, kh, kw, sd, sh, sw, pd, ph, pw, div, gx):
    n, c, dep, h, wd = gx.shape
    do, ho, wo = gy.shape[2], gy.shape[3], gy.shape[4]
    for t in prange(n * c):
        b, ch = t // c, t % c
        for zi in range(dep):
            for hi in range(h):
                for wi in range(wd):
                    gx[b, ch, zi, hi, wi] = 0
        for z in range(do):
            z0, z1 = max(z * sd - pd, 0), min(z * sd - pd + kd, dep)
            for i in range(ho):
                h0, h1 = max(i * sh - ph, 0), min(i * sh - ph + kh, h)
                for j in range(wo):
                    w0, w1 = max(j * sw - pw, 0), min(j * sw - pw + kw, wd)
                    g = gy[b, ch, z, i, j] / div[z, i, j]
                    for zi in range(z0, z1):
                        for hi in range(h0, h1):
                            for wi in range(w0, w1):
                                gx[b, ch, zi, hi, wi] += g


@serialized
def avg_pool3d_forward(x, kernel, stride, padding, count_include_pad=True):
    """Mean over each window (padded zeros counted when ``count_include_pad``, as in PyTorch)."""
    _check5d("avg_pool3d", x)
    x = np.ascontiguousarray(x)
    out = out_shape3(x.shape[2:], kernel, stride, padding)
    div = avg_divisor3(x.shape, kernel, stride, padding, count_include_pad, np.float64)
    y = np.empty(x.shape[:2] + out, dtype=x.dtype)
    _avg_pool_fwd(x, *map(int, kernel), *map(int, stride), *map(int, padding), div, y)
    return y


@serialized
def avg_pool3d_backward(gy, x_shape, kernel, stride, padding, count_include_pad=True):
    """Every element of a window receives gy / window_size."""
    gy = np.ascontiguousarray(gy)
    div = avg_divisor3(tuple(x_shape), kernel, stride, padding, count_include_pad, np.float64)
    gx = np.empty(tuple(x_shape), dtype=gy.dtype)
    _avg_pool_bwd(gy, *map(int, kernel), *map(int, stride), *map(int, padding), div, gx)
    return gx
