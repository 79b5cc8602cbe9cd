"""Plain NumPy reference versions of every kernel (``tinygrad_rad.kernels.reference``).

They are written for clarity, not speed: each optimised kernel (Numba CPU, Numba CUDA, CUDA C) is
tested against the function of the same name here. All image tensors are NCHW; conv weights are
(C_out, C_in / groups, kH, kW), as in PyTorch.

Shape rule used throughout (PyTorch's):
    H_out = floor((H + 2 p - d (k - 1) - 1) / s) + 1
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import as_strided


def out_size(n: int, k: int, s: int, p: int, d: int = 1) -> int:
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


def erf(x):
    """Error function, elementwise (``math.erf`` per element)."""
    return np.vectorize(math.erf, otypes=[x.dtype])(x) if x.size else x.copy()


def matmul(a, b):
    return np.matmul(a, b)


def relu_forward(x):
    """max(x, 0), elementwise (NaN stays NaN, as in PyTorch)."""
    return np.where(x > 0, x, np.where(np.isnan(x), x, 0)).astype(x.dtype, copy=False)


def relu_backward(g, out):
    """g where the forward output was positive, else 0: d relu(a)/da = [a > 0]."""
    return np.where(out > 0, g, 0).astype(g.dtype, copy=False)


# ---------------------------------------------------------------------------------- convolution
def _windows(xpad, kh, kw, sh, sw, dh, dw, ho, wo):
    """View of padded input (N, C, Hp, Wp) as (N, C, kh, kw, Ho, Wo) without copying (im2col view)."""
    n, c = xpad.shape[:2]
    s0, s1, s2, s3 = xpad.strides
    strides = (s0, s1, s2 * dh, s3 * dw, s2 * sh, s3 * sw)
    return as_strided(xpad, (n, c, kh, kw, ho, wo), strides, writeable=False)


def conv2d_forward(x, w, stride, padding, dilation, groups):
    """y[n, o, i, j] = sum_{c, u, v} w[o, c, u, v] * xpad[n, g*Cg + c, i*s + u*d, j*s + v*d]."""
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    ho, wo = out_size(h, kh, sh, ph, dh), out_size(wd, kw, sw, pw, dw)
    xpad = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    cols = _windows(xpad, kh, kw, sh, sw, dh, dw, ho, wo)  # (N, C, kh, kw, Ho, Wo)
    og = o // groups
    y = np.empty((n, o, ho, wo), dtype=x.dtype)
    for g in range(groups):
        cg_cols = cols[:, g * cg : (g + 1) * cg]
        wg = w[g * og : (g + 1) * og]
        y[:, g * og : (g + 1) * og] = np.einsum("ncuvij,ocuv->noij", cg_cols, wg, optimize=True)
    return y


def conv2d_backward_input(gy, w, x_shape, stride, padding, dilation, groups):
    """dL/dx: scatter each output gradient back through the weights it was computed with (col2im)."""
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    n, c, h, wd = x_shape
    o, cg, kh, kw = w.shape
    ho, wo = gy.shape[2:]
    og = o // groups
    gxp = np.zeros((n, c, h + 2 * ph, wd + 2 * pw), dtype=gy.dtype)
    for g in range(groups):
        gy_g, w_g = gy[:, g * og : (g + 1) * og], w[g * og : (g + 1) * og]
        gcols = np.einsum("noij,ocuv->ncuvij", gy_g, w_g, optimize=True)
        for u in range(kh):
            for v in range(kw):
                gxp[:, g * cg : (g + 1) * cg, u * dh : u * dh + sh * (ho - 1) + 1 : sh,
                    v * dw : v * dw + sw * (wo - 1) + 1 : sw] += gcols[:, :, u, v]
    return gxp[:, :, ph : ph + h, pw : pw + wd]


def conv2d_backward_weight(gy, x, w_shape, stride, padding, dilation, groups):
    """dL/dw[o, c, u, v] = sum_{n, i, j} gy[n, o, i, j] * xpad[n, c, i*s + u*d, j*s + v*d]."""
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    o, cg, kh, kw = w_shape
    ho, wo = gy.shape[2:]
    og = o // groups
    xpad = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    cols = _windows(xpad, kh, kw, sh, sw, dh, dw, ho, wo)
    gw = np.empty(w_shape, dtype=gy.dtype)
    for g in range(groups):
        gw[g * og : (g + 1) * og] = np.einsum(
            "noij,ncuvij->ocuv", gy[:, g * og : (g + 1) * og], cols[:, g * cg : (g + 1) * cg], optimize=True
        )
    return gw


# -------------------------------------------------------------------------------------- pooling
def max_pool2d_forward(x, kernel, stride, padding, dilation=(1, 1)):
    """Max over each window; also returns the argmax (0..kh*kw-1 within the window) for backward."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    n, c, h, wd = x.shape
    ho, wo = out_size(h, kh, sh, ph, dh), out_size(wd, kw, sw, pw, dw)
    xpad = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=-np.inf)
    win = _windows(xpad, kh, kw, sh, sw, dh, dw, ho, wo)  # (N, C, kh, kw, Ho, Wo)
    flat = win.reshape(n, c, kh * kw, ho, wo)
    idx = flat.argmax(axis=2)
    y = np.take_along_axis(flat, idx[:, :, None], axis=2)[:, :, 0]
    return y, idx.astype(np.int32)


def max_pool2d_backward(gy, idx, x_shape, kernel, stride, padding, dilation=(1, 1)):
    """Route each output gradient to the input element that was the window's max."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    n, c, h, wd = x_shape
    ho, wo = gy.shape[2:]
    gxp = np.zeros((n, c, h + 2 * ph, wd + 2 * pw), dtype=gy.dtype)
    for u in range(kh):
        for v in range(kw):
            rows = slice(u * dh, u * dh + sh * (ho - 1) + 1, sh)
            cols = slice(v * dw, v * dw + sw * (wo - 1) + 1, sw)
            gxp[:, :, rows, cols] += gy * (idx == u * kw + v)
    return gxp[:, :, ph : ph + h, pw : pw + wd]


def avg_divisor(x_shape, kernel, stride, padding, count_include_pad, dtype):
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    h, wd = x_shape[2:]
    ho, wo = out_size(h, kh, sh, ph), out_size(wd, kw, sw, pw)
    if count_include_pad:
        # PyTorch counts padded zeros, but not window parts that hang past the padding
        hs = np.arange(ho) * sh - ph
        ws = np.arange(wo) * sw - pw
        hcount = np.minimum(hs + kh, h + ph) - hs
        wcount = np.minimum(ws + kw, wd + pw) - ws
    else:
        hs = np.arange(ho) * sh - ph
        ws = np.arange(wo) * sw - pw
        hcount = np.minimum(hs + kh, h) - np.maximum(hs, 0)
        wcount = np.minimum(ws + kw, wd) - np.maximum(ws, 0)
    return (hcount[:, None] * wcount[None, :]).astype(dtype)


def avg_pool2d_forward(x, kernel, stride, padding, count_include_pad=True):
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    n, c, h, wd = x.shape
    ho, wo = out_size(h, kh, sh, ph), out_size(wd, kw, sw, pw)
    xpad = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    win = _windows(xpad, kh, kw, sh, sw, 1, 1, ho, wo)
    div = avg_divisor(x.shape, kernel, stride, padding, count_include_pad, x.dtype)
    return (win.sum(axis=(2, 3)) / div).astype(x.dtype)


def avg_pool2d_backward(gy, x_shape, kernel, stride, padding, count_include_pad=True):
    """Each input in a window gets gy / window_size."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    n, c, h, wd = x_shape
    ho, wo = gy.shape[2:]
    g = gy / avg_divisor(x_shape, kernel, stride, padding, count_include_pad, gy.dtype)
    gxp = np.zeros((n, c, h + 2 * ph, wd + 2 * pw), dtype=gy.dtype)
    for u in range(kh):
        for v in range(kw):
            gxp[:, :, u : u + sh * (ho - 1) + 1 : sh, v : v + sw * (wo - 1) + 1 : sw] += g
    return gxp[:, :, ph : ph + h, pw : pw + wd]


# ----------------------------------------------------------------------------------- batch norm
def bn_axes(x):
    return (0,) + tuple(range(2, x.ndim))


def _bn_shape(x):
    return (1, x.shape[1]) + (1,) * (x.ndim - 2)


def batch_norm_forward_train(x, weight, bias, eps):
    """Normalise with the batch's per-channel mean and biased variance; returns (y, mean, invstd)."""
    axes, shp = bn_axes(x), _bn_shape(x)
    mean = x.mean(axis=axes)
    var = x.var(axis=axes)
    invstd = 1.0 / np.sqrt(var + eps)
    xhat = (x - mean.reshape(shp)) * invstd.reshape(shp)
    y = xhat * weight.reshape(shp) + bias.reshape(shp) if weight is not None else xhat
    return y.astype(x.dtype), mean.astype(x.dtype), invstd.astype(x.dtype)


def batch_norm_backward(gy, x, weight, mean, invstd):
    """dx = invstd/M (M dxhat - sum dxhat - xhat sum(dxhat xhat)), dxhat = gy w;
    dw = sum gy xhat; db = sum gy."""
    axes, shp = bn_axes(x), _bn_shape(x)
    m = x.size // x.shape[1]
    xhat = (x - mean.reshape(shp)) * invstd.reshape(shp)
    gb = gy.sum(axis=axes)
    gw = (gy * xhat).sum(axis=axes)
    w = weight.reshape(shp) if weight is not None else 1.0
    dxhat_sum = (gb * (weight if weight is not None else 1.0)).reshape(shp)
    dxhat_xhat_sum = (gw * (weight if weight is not None else 1.0)).reshape(shp)
    gx = invstd.reshape(shp) / m * (m * gy * w - dxhat_sum - xhat * dxhat_xhat_sum)
    return gx.astype(x.dtype), gw.astype(x.dtype), gb.astype(x.dtype)


def batch_norm_relu_forward_train(x, weight, bias, eps):
    """relu(batch_norm(x)) with the batch's statistics: (y, mean, invstd) as batch_norm_forward_train."""
    y, mean, invstd = batch_norm_forward_train(x, weight, bias, eps)
    return np.maximum(y, 0).astype(x.dtype, copy=False), mean, invstd


def batch_norm_relu_backward(gy, x, weight, bias, mean, invstd):
    """The backward of relu(batch_norm(x)): gy masked where the ReLU was off, then batch_norm_backward.
    The mask [y > 0] comes from x, mean and invstd (y is not kept): y = (x - mean) invstd w + b."""
    shp = _bn_shape(x)
    y = (x - mean.reshape(shp)) * invstd.reshape(shp)
    if weight is not None:
        y = y * weight.reshape(shp) + bias.reshape(shp)
    return batch_norm_backward(np.where(y > 0, gy, 0).astype(gy.dtype), x, weight, mean, invstd)


def channel_affine_forward(x, scale, shift):
    """y = x * scale[c] + shift[c] for each channel c of (N, C, ...) input (batch norm at eval time)."""
    shp = _bn_shape(x)
    return (x * scale.reshape(shp) + shift.reshape(shp)).astype(x.dtype, copy=False)


def conv2d_affine_forward(x, w, stride, padding, dilation, groups, scale, shift, residual, relu):
    """[relu](conv2d(x, w) * scale[o] + shift[o] [+ residual]): a conv followed by an eval-time batch norm,
    the residual add of a ResNet block and the ReLU, one kernel call (inference only; ``residual`` may be
    None, ``relu`` a bool)."""
    y = channel_affine_forward(conv2d_forward(x, w, stride, padding, dilation, groups), scale, shift)
    if residual is not None:
        y = (y + residual).astype(y.dtype, copy=False)
    return relu_forward(y) if relu else y


def channel_affine_backward(g, x, scale):
    """dx = g * scale[c]; dscale[c] = sum g x; dshift[c] = sum g (sums over all but the channel axis)."""
    axes, shp = bn_axes(x), _bn_shape(x)
    gx = (g * scale.reshape(shp)).astype(x.dtype, copy=False)
    return gx, (g * x).sum(axis=axes).astype(x.dtype), g.sum(axis=axes).astype(x.dtype)


# ------------------------------------------------------------------------ softmax cross-entropy
def check_ce(x, target):
    if x.ndim != 2:
        raise ValueError(f"softmax_cross_entropy: expected (rows, classes) logits, got {tuple(x.shape)}")
    if tuple(target.shape) != tuple(x.shape):
        raise ValueError(f"softmax_cross_entropy: target {tuple(target.shape)} != logits {tuple(x.shape)}")


def softmax_cross_entropy_forward(x, target, scale):
    """-> (loss, logp): logp = log_softmax(x) over each row, loss = -scale * sum(target * logp) (0-d).

    ``x`` and ``target`` are (M, C); ``target`` is a dense per-row distribution with any class weights
    and label smoothing already folded in (``scale`` is typically 1 / M or 1 / sum of weights).
    """
    check_ce(x, target)
    shifted = x - x.max(axis=1, keepdims=True)  # log_softmax = x - max - log(sum(exp(x - max)))
    logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return np.asarray(-(target * logp).sum() * scale, dtype=x.dtype), logp


def softmax_cross_entropy_backward(g, logp, target, scale):
    """d loss / dx = scale * g * (softmax(x) * sum_c target - target), row by row (``g``: 0-d)."""
    # d/dx_i [-sum_c t_c log softmax_c] = softmax_i * sum_c t_c - t_i
    grad = (np.exp(logp) * target.sum(axis=1, keepdims=True) - target) * (scale * g)
    return grad.astype(logp.dtype, copy=False)


# ------------------------------------------------------------------------------------------ adam
def adam_step(p, g, m, v, vmax, *, lr, beta1, beta2, eps, weight_decay, step, maximize=False,
              decoupled=False, amsgrad=False) -> None:
    """One Adam / AdamW step on ``p`` with its state ``m``, ``v`` (and ``vmax`` with amsgrad), in place.

    g <- -g (maximize); g += wd p (Adam) or p *= 1 - lr wd (AdamW); m = b1 m + (1 - b1) g;
    v = b2 v + (1 - b2) g^2; vmax = max(vmax, v) (amsgrad, then used for v);
    p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps).

    The same float operations in the same order as ``optim/adam.py``'s NumPy code (one scratch array,
    in-place ufuncs, Python constants rounded to p's dtype), so both give identical bits.
    """
    g = -g if maximize else g
    if weight_decay != 0:
        if decoupled:
            p *= 1 - lr * weight_decay
        else:
            g = g + weight_decay * p
    tmp = np.subtract(g, m)
    tmp *= 1 - beta1
    m += tmp  # = b1 m + (1 - b1) g  (PyTorch's lerp)
    v *= beta2
    np.multiply(g, 1 - beta2, out=tmp)
    tmp *= g
    v += tmp
    bc1 = 1 - beta1**step
    bc2_sqrt = math.sqrt(1 - beta2**step)
    if amsgrad:
        np.maximum(vmax, v, out=vmax)
        np.sqrt(vmax, out=tmp)
    else:
        np.sqrt(v, out=tmp)
    tmp /= bc2_sqrt
    tmp += eps  # denom
    np.divide(m, tmp, out=tmp)
    tmp *= lr / bc1
    p -= tmp


# -------------------------------------------------------------------------------- 3-D (volumes, NCDHW)
# conv3d_* / max_pool3d_* / avg_pool3d_*: the 2-D interface with one more axis (issue 13), in reference3d.py.
# NOTE: imported last (that module does not import this one).
from .reference3d import (  # noqa: E402, F401
    avg_pool3d_backward,
    avg_pool3d_forward,
    conv3d_backward_input,
    conv3d_backward_weight,
    conv3d_forward,
    max_pool3d_backward,
    max_pool3d_forward,
)
