"""Plain NumPy reference versions of the 3-D kernels (volumes, NCDHW), the ground truth of every 3-D tier.

Re-exported by ``kernels/reference.py``; the same shape rule per axis as the 2-D kernels
(``D_out = floor((D + 2 p - d (k - 1) - 1) / s) + 1``). Conv weights are (C_out, C_in / groups, kD, kH,
kW), as in PyTorch; max pooling's ``idx`` is the argmax's position ``(a * kH + u) * kW + v`` inside its
window (``a, u, v`` the depth, row and column tap).

    >>> y = conv3d_forward(x, w, (1, 1, 1), (1, 1, 1), (1, 1, 1), 1)
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided


def out_size(n: int, k: int, s: int, p: int, d: int = 1) -> int:
    """PyTorch's output size along one axis (as ``reference.out_size``; not imported from there: reference.py
    re-exports this module, and either may be imported first)."""
    return (n + 2 * p - d * (k - 1) - 1) // s + 1

__all__ = [
    "conv3d_forward", "conv3d_backward_input", "conv3d_backward_weight",
    "max_pool3d_forward", "max_pool3d_backward", "avg_pool3d_forward", "avg_pool3d_backward",
]


def out_shape3(spatial, kernel, stride, padding, dilation=(1, 1, 1)) -> tuple:
    """(D_out, H_out, W_out) of a 3-D window op."""
    return tuple(out_size(n, k, s, p, d) for n, k, s, p, d in zip(spatial, kernel, stride, padding, dilation))


def _pad3(x, padding, value=0.0):
    (pd, ph, pw) = padding
    return np.pad(x, ((0, 0), (0, 0), (pd, pd), (ph, ph), (pw, pw)), constant_values=value)


def _windows3(xpad, kernel, stride, dilation, out):
    """View of padded input (N, C, Dp, Hp, Wp) as (N, C, kd, kh, kw, Do, Ho, Wo) without copying (vol2col)."""
    n, c = xpad.shape[:2]
    s0, s1, s2, s3, s4 = xpad.strides
    (sd, sh, sw), (dd, dh, dw) = stride, dilation
    strides = (s0, s1, s2 * dd, s3 * dh, s4 * dw, s2 * sd, s3 * sh, s4 * sw)
    return as_strided(xpad, (n, c, *kernel, *out), strides, writeable=False)


def _taps(kernel):
    kd, kh, kw = kernel
    return [(a, u, v) for a in range(kd) for u in range(kh) for v in range(kw)]


def _tap_slices(tap, stride, dilation, out):
    """The slices of the padded input that tap (a, u, v) reads for all outputs (stride s, from a * d)."""
    return tuple(slice(t * d, t * d + s * (o - 1) + 1, s) for t, s, d, o in zip(tap, stride, dilation, out))


def _crop(gxp, padding, spatial):
    return gxp[:, :, padding[0] : padding[0] + spatial[0], padding[1] : padding[1] + spatial[1],
               padding[2] : padding[2] + spatial[2]]


# ---------------------------------------------------------------------------------- convolution
def conv3d_forward(x, w, stride, padding, dilation, groups):
    """y[n, o, z, i, j] = sum_{c, a, u, v} w[o, c, a, u, v] * xpad[n, g Cg + c, z s + a d, i s + u d,
    j s + v d]."""
    o, cg = w.shape[:2]
    out = out_shape3(x.shape[2:], w.shape[2:], stride, padding, dilation)
    cols = _windows3(_pad3(x, padding), w.shape[2:], stride, dilation, out)  # (N, C, kd, kh, kw, Do, Ho, Wo)
    og = o // groups
    y = np.empty((x.shape[0], o, *out), dtype=x.dtype)
    for g in range(groups):
        y[:, g * og : (g + 1) * og] = np.einsum("ncauvzij,ocauv->nozij", cols[:, g * cg : (g + 1) * cg],
                                                w[g * og : (g + 1) * og], optimize=True)
    return y


def conv3d_backward_input(gy, w, x_shape, stride, padding, dilation, groups):
    """dL/dx: scatter each output gradient back through the weights it was computed with (col2vol)."""
    n, c = x_shape[:2]
    o, cg = w.shape[:2]
    out = gy.shape[2:]
    og = o // groups
    gxp = np.zeros((n, c) + tuple(s + 2 * p for s, p in zip(x_shape[2:], padding)), dtype=gy.dtype)
    for g in range(groups):
        gcols = np.einsum("nozij,ocauv->ncauvzij", gy[:, g * og : (g + 1) * og], w[g * og : (g + 1) * og],
                          optimize=True)
        for a, u, v in _taps(w.shape[2:]):
            sl = _tap_slices((a, u, v), stride, dilation, out)
            gxp[(slice(None), slice(g * cg, (g + 1) * cg)) + sl] += gcols[:, :, a, u, v]
    return _crop(gxp, padding, x_shape[2:])


def conv3d_backward_weight(gy, x, w_shape, stride, padding, dilation, groups):
    """dL/dw[o, c, a, u, v] = sum_{n, z, i, j} gy[n, o, z, i, j] * xpad[n, c, z s + a d, i s + u d,
    j s + v d]."""
    o, cg = w_shape[:2]
    og = o // groups
    cols = _windows3(_pad3(x, padding), w_shape[2:], stride, dilation, gy.shape[2:])
    gw = np.empty(tuple(w_shape), dtype=gy.dtype)
    for g in range(groups):
        gw[g * og : (g + 1) * og] = np.einsum("nozij,ncauvzij->ocauv", gy[:, g * og : (g + 1) * og],
                                              cols[:, g * cg : (g + 1) * cg], optimize=True)
    return gw


# -------------------------------------------------------------------------------------- pooling
def max_pool3d_forward(x, kernel, stride, padding, dilation=(1, 1, 1)):
    """Max over each window; also returns the argmax (0..kd*kh*kw-1 within the window) for backward."""
    n, c = x.shape[:2]
    out = out_shape3(x.shape[2:], kernel, stride, padding, dilation)
    win = _windows3(_pad3(x, padding, -np.inf), kernel, stride, dilation, out)
    flat = win.reshape(n, c, int(np.prod(kernel)), *out)
    idx = flat.argmax(axis=2)
    y = np.take_along_axis(flat, idx[:, :, None], axis=2)[:, :, 0]
    return y, idx.astype(np.int32)


def max_pool3d_backward(gy, idx, x_shape, kernel, stride, padding, dilation=(1, 1, 1)):
    """Route each output gradient to the input element that was the window's max."""
    n, c = x_shape[:2]
    gxp = np.zeros((n, c) + tuple(s + 2 * p for s, p in zip(x_shape[2:], padding)), dtype=gy.dtype)
    for t, tap in enumerate(_taps(kernel)):
        gxp[(slice(None), slice(None)) + _tap_slices(tap, stride, dilation, gy.shape[2:])] += gy * (idx == t)
    return _crop(gxp, padding, x_shape[2:])


def _avg_counts(n, k, s, p, n_out, count_include_pad):
    """Per-axis window sizes (PyTorch's rule: padded zeros count with count_include_pad, never the part of
    a window past the padding)."""
    start = np.arange(n_out) * s - p
    end = np.minimum(start + k, n + p)
    return end - start if count_include_pad else np.minimum(end, n) - np.maximum(start, 0)


def avg_divisor3(x_shape, kernel, stride, padding, count_include_pad, dtype):
    """(Do, Ho, Wo) array of each window's divisor."""
    out = out_shape3(x_shape[2:], kernel, stride, padding)
    cd, ch, cw = (_avg_counts(x_shape[2 + i], kernel[i], stride[i], padding[i], out[i], count_include_pad)
                  for i in range(3))
    return (cd[:, None, None] * ch[None, :, None] * cw[None, None, :]).astype(dtype)


def avg_pool3d_forward(x, kernel, stride, padding, count_include_pad=True):
    """Mean over each window (padded zeros counted when ``count_include_pad``, as in PyTorch)."""
    out = out_shape3(x.shape[2:], kernel, stride, padding)
    win = _windows3(_pad3(x, padding), kernel, stride, (1, 1, 1), out)
    div = avg_divisor3(x.shape, kernel, stride, padding, count_include_pad, x.dtype)
    return (win.sum(axis=(2, 3, 4)) / div).astype(x.dtype)


def avg_pool3d_backward(gy, x_shape, kernel, stride, padding, count_include_pad=True):
    """Each input in a window gets gy / window_size."""
    n, c = x_shape[:2]
    g = gy / avg_divisor3(x_shape, kernel, stride, padding, count_include_pad, gy.dtype)
    gxp = np.zeros((n, c) + tuple(s + 2 * p for s, p in zip(x_shape[2:], padding)), dtype=gy.dtype)
    for tap in _taps(kernel):
        gxp[(slice(None), slice(None)) + _tap_slices(tap, stride, (1, 1, 1), gy.shape[2:])] += g
    return _crop(gxp, padding, x_shape[2:])
