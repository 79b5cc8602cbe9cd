"""(kd, 3, 3) 3-D convs as 2-D Winograd convs of the depth taps stacked as channels (fast CPU tier).

A conv with a (kd, 3, 3) kernel, stride 1 and no dilation is, for each output depth z, a 2-D 3x3 conv of
the kd input depths z .. z + kd - 1 (of the depth-padded input) stacked as kd*C channels:

    y[n, :, z] = conv2d(xs[n, z], w2)   with   xs[n, z, a*C + c] = xpad[n, c, z + a],
                                                w2[o, a*C + c] = w[o, c, a]

so the N*Do slices run through the 2-D fast path (cpu_conv), whose Winograd F(2x2, 3x3) needs 2.25x fewer
multiplications than the GEMM of vol2col. The backward passes turn around the same way: dxs by the 2-D
backward-data, added back over the kd depths it was copied from; dw2 by the 2-D weight gradient.

Used by ``cpu_conv3d`` where ``use_stack`` says (one group, stride 1, no dilation, kd*C and O >= 32,
outputs at least 4 wide: the 2-D Winograd rule of ``cpu_conv.use_winograd``); TGR_CONV3D_STACK=0 turns it off.
Measurements in ``benchmarks/NOTES.md`` section 10c.
"""

from __future__ import annotations

import os

import numpy as np

from .cpu_conv import conv2d_backward_input, conv2d_backward_weight, conv2d_forward, use_winograd

__all__ = ["use_stack", "stacked_forward", "stacked_backward_input", "stacked_backward_weight"]

STACK = os.environ.get("TGR_CONV3D_STACK", "1") != "0"
STACK_BYTES = 64 << 20  # the stacked slices (kd x the input) are built for chunks of images of at most this


def use_stack(kernel, stride, dilation, groups, c, o, out):
    """Where the 2-D Winograd applies to the stacked slices (cpu_conv.use_winograd's rule)."""
    return (STACK and groups == 1 and tuple(stride) == (1, 1, 1) and tuple(dilation) == (1, 1, 1)
            and tuple(kernel[1:]) == (3, 3)
            and use_winograd(kernel[1:], (1, 1), (1, 1), 1, kernel[0] * c, o, out[1:]))


def _stack_depths(x, kd, pd, do):
    """xs (N*Do, kd*C, H, W): xs[n*Do + z, a*C + c] = x[n, c, z + a - pd] (0 outside the volume)."""
    n, c, d, h, w = x.shape
    xs = np.zeros((n, do, kd, c, h, w), dtype=x.dtype)
    for a in range(kd):
        lo, hi = max(0, pd - a), min(do, d + pd - a)  # output depths whose input depth z + a - pd exists
        if hi > lo:
            xs[:, lo:hi, a] = x[:, :, lo + a - pd : hi + a - pd].transpose(0, 2, 1, 3, 4)
    return xs.reshape(n * do, kd * c, h, w)


def _stacked_weight(w):
    o, c, kd = w.shape[:3]
    return np.ascontiguousarray(w.transpose(0, 2, 1, 3, 4)).reshape(o, kd * c, 3, 3)


def _slices(gy):
    """gy (N, O, Do, Ho, Wo) -> (N*Do, O, Ho, Wo), the 2-D convs' output gradient."""
    n, o, do = gy.shape[:3]
    return np.ascontiguousarray(gy.transpose(0, 2, 1, 3, 4)).reshape(n * do, o, *gy.shape[3:])


def _stack_chunks(n, slice_values, itemsize):
    """Image ranges whose stacked slices (slice_values values per image) stay under STACK_BYTES."""
    nb = max(1, STACK_BYTES // max(slice_values * itemsize, 1))
    return [(n0, min(n, n0 + nb)) for n0 in range(0, n, nb)]


def stacked_forward(x, w, padding, out):
    n, c, _, h, wd = x.shape
    o, kd = w.shape[0], w.shape[2]
    w2 = _stacked_weight(w)
    y = np.empty((n, o, *out), dtype=x.dtype)
    for n0, n1 in _stack_chunks(n, out[0] * kd * c * h * wd, x.itemsize):
        xs = _stack_depths(x[n0:n1], kd, padding[0], out[0])
        y2 = conv2d_forward(xs, w2, (1, 1), padding[1:], (1, 1), 1)
        y[n0:n1] = y2.reshape(n1 - n0, out[0], o, *out[1:]).transpose(0, 2, 1, 3, 4)
    return y


def stacked_backward_input(gy, w, x_shape, padding):
    n, c, d, h, wd = x_shape
    kd, pd, do = w.shape[2], padding[0], gy.shape[2]
    w2 = _stacked_weight(w)
    gx = np.zeros(tuple(x_shape), dtype=gy.dtype)
    for n0, n1 in _stack_chunks(n, do * kd * c * h * wd, gy.itemsize):
        xs_shape = ((n1 - n0) * do, kd * c, h, wd)
        gxs = conv2d_backward_input(_slices(gy[n0:n1]), w2, xs_shape, (1, 1), padding[1:], (1, 1), 1)
        gxs = gxs.reshape(n1 - n0, do, kd, c, h, wd)
        for a in range(kd):  # the adjoint of the stacking copy: add each tap's slices back to their depths
            lo, hi = max(0, pd - a), min(do, d + pd - a)
            if hi > lo:
                gx[n0:n1, :, lo + a - pd : hi + a - pd] += gxs[:, lo:hi, a].transpose(0, 2, 1, 3, 4)
    return gx


def stacked_backward_weight(gy, x, w_shape, padding):
    o, c, kd = w_shape[:3]
    n, _, _, h, wd = x.shape
    do = gy.shape[2]
    gw2 = np.zeros((o, kd * c, 3, 3), dtype=gy.dtype)
    for n0, n1 in _stack_chunks(n, do * kd * c * h * wd, gy.itemsize):
        xs = _stack_depths(x[n0:n1], kd, padding[0], do)
        gw2 += conv2d_backward_weight(_slices(gy[n0:n1]), xs, gw2.shape, (1, 1), padding[1:], (1, 1), 1)
    return np.ascontiguousarray(gw2.reshape(o, kd, c, 3, 3).transpose(0, 2, 1, 3, 4))
