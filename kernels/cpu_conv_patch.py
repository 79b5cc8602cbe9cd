"""Convolutions whose kernel equals their stride ("patchify"): the fast path for windows that tile the image.

A conv with kernel == stride (k x k, stride k, no padding, no dilation, one group) reads each input pixel
once: its windows tile the image. A U-Net's 2x2 / stride-2 transposed convs are such convs run backwards
(``ConvTranspose2d``'s forward is this conv's backward-data, its backward-data is this forward). im2col +
GEMM (``cpu_conv.py``) handles them like any conv, with its chunk plans, padding checks and col2im
scatter-adds; here the columns are just the input rearranged ("space to depth"):

    P[n, (c*k + u)*k + v, i*Wo + j] = x[n, c, k i + u, k j + v]            (one copy of x)

and the three passes are one batched GEMM each, on BLAS's threads, plus a rearranging copy:

    forward            y[n]    (O, Ho*Wo)   = w (O, C*k*k)   @ P[n]
    backward-data      gP[n]   (C*k*k, HW)  = w.T            @ gy[n],   then gx = depth to space of gP
    backward-weight    dL/dw   (O, C*k*k)   = sum_n gy[n]    @ P[n].T

(rows and columns past ``k * Ho`` / ``k * Wo``, which no window covers, get 0 in gx). Measurements in
``benchmarks/NOTES.md`` section 10e.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .threads import run_parts

__all__ = ["use_patch", "conv2d_forward_patch", "conv2d_backward_input_patch", "conv2d_backward_weight_patch"]


def use_patch(kernel, stride, padding, dilation, groups) -> bool:
    """kernel == stride > 1, no padding, no dilation, one group."""
    return (tuple(kernel) == tuple(stride) and min(kernel) > 1 and tuple(padding) == (0, 0)
            and tuple(dilation) == (1, 1) and groups == 1)


# NOTE: the batch is split across threads by run_parts, each part's GEMMs on one BLAS thread: the same
# products on OpenBLAS's own two threads left its woken worker spinning through the Numba kernels that
# follow, and a U-Net training step ran 35 % slower with this path than without it (NOTES.md 10e)
@njit(nogil=True, cache=True)
def _space_to_depth(x, kh, kw, ho, wo, p):
    """p[n, (c*kh + u)*kw + v, i*wo + j] = x[n, c, kh*i + u, kw*j + v]."""
    n, c = x.shape[0], x.shape[1]
    for b in range(n):
        for ch in range(c):
            for u in range(kh):
                for v in range(kw):
                    dst = p[b, (ch * kh + u) * kw + v]
                    for i in range(ho):
                        src = x[b, ch, kh * i + u]
                        for j in range(wo):
                            dst[i * wo + j] = src[kw * j + v]


@njit(nogil=True, cache=True)
def _depth_to_space(gp, kh, kw, ho, wo, gx):
    """gx[n, c, kh*i + u, kw*j + v] = gp[n, (c*kh + u)*kw + v, i*wo + j]; 0 where no window reaches."""
    n, c, h, w = gx.shape
    for b in range(n):
        for ch in range(c):
            for r in range(h):
                row = gx[b, ch, r]
                if r >= kh * ho:
                    row[:] = 0
                    continue
                i, u = r // kh, r % kh
                for v in range(kw):
                    src = gp[b, (ch * kh + u) * kw + v]
                    for j in range(wo):
                        row[kw * j + v] = src[i * wo + j]
                for col in range(kw * wo, w):
                    row[col] = 0


def _patches(x, kh, kw, ho, wo):
    p = np.empty((x.shape[0], x.shape[1] * kh * kw, ho * wo), dtype=x.dtype)
    _space_to_depth(x, kh, kw, ho, wo, p)
    return p


def conv2d_forward_patch(x, w):
    """y = conv2d(x, w, stride=kernel): a GEMM per image on the rearranged input (x, w contiguous, one dtype).

    >>> conv2d_forward_patch(np.ones((1, 1, 4, 4)), np.ones((1, 1, 2, 2)))[0, 0]
    array([[4., 4.],
           [4., 4.]])
    """
    n, o, (kh, kw) = x.shape[0], w.shape[0], w.shape[2:]
    ho, wo = x.shape[2] // kh, x.shape[3] // kw
    wm = w.reshape(o, -1)
    y = np.empty((n, o, ho * wo), dtype=x.dtype)

    def part(lo, hi):
        np.matmul(wm, _patches(x[lo:hi], kh, kw, ho, wo), out=y[lo:hi])  # y[n] = w @ P[n]

    run_parts(n, part)
    return y.reshape(n, o, ho, wo)


def conv2d_backward_input_patch(gy, w, x_shape):
    """dL/dx of the k == stride conv (the transposed conv's forward), fresh array of ``x_shape``."""
    n, o, ho, wo = gy.shape
    kh, kw = w.shape[2:]
    wt, g3 = w.reshape(o, -1).T, gy.reshape(n, o, ho * wo)
    gx = np.empty(tuple(x_shape), dtype=gy.dtype)

    def part(lo, hi):
        _depth_to_space(np.matmul(wt, g3[lo:hi]), kh, kw, ho, wo, gx[lo:hi])  # gP[n] = w.T @ gy[n]

    run_parts(n, part)
    return gx


def conv2d_backward_weight_patch(gy, x, w_shape):
    """dL/dw of the k == stride conv: the sum over images of gy[n] @ P[n].T, fresh array of ``w_shape``."""
    n, o, ho, wo = gy.shape
    kh, kw = w_shape[2:]
    g3 = gy.reshape(n, o, ho * wo)

    def part(lo, hi):
        # NOTE: BLAS reads P[n].T in place (a transposed operand): no copy of the columns
        p = _patches(x[lo:hi], kh, kw, ho, wo)
        return np.matmul(g3[lo:hi], p.transpose(0, 2, 1)).sum(axis=0)  # (O, C*kh*kw)

    shares = run_parts(n, part)
    gw = shares[0]
    for share in shares[1:]:
        gw += share
    return gw.reshape(tuple(w_shape))
