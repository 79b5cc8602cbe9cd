"""Batch norm (training mode), forward and backward, in Numba CUDA.

``x`` is viewed as (N, C, L) (L = H*W for images, 1 for (N, C) inputs). The per-channel sums are
two-stage, so few channels with many values still fill the GPU: block (c, s) sums slice s of channel
c's N*L values (each thread a strided share, then a shared-memory tree of ``log2(RT)`` steps) into a
partial, and one block per channel adds its partials. Statistics use two passes (mean, then the sum of
squared deviations), which is as accurate as NumPy's ``var``. The elementwise parts are grid-stride
kernels. Constants (1/M, eps) reach a float32 kernel as float32 scalars: no float64 arithmetic.

    >>> y, mean, invstd = batch_norm_forward_train(x, weight, bias, 1e-5)
"""

from __future__ import annotations

import functools
import math

import numpy as np
from numba import cuda

from .cuda_common import contiguous, dev, launch_1d, nb_type, reduce_threads, simulator, stream, xp_of

TARGET_BLOCKS = 528  # blocks of a per-channel reduction on a GPU (4 per SM on 132 SMs)
SIM_TARGET_BLOCKS = 4  # the same in the simulator (few threads: quick tests)
MAX_SLICES = 256  # slices per channel
MIN_PER_THREAD = 4  # values each thread sums at least before a slice is split further


def n_slices(c: int, m: int, rt: int) -> int:
    """Slices each channel's m values are split into (one block per channel and slice): enough blocks to
    fill the GPU even for few channels, but every thread still sums a few values."""
    target = SIM_TARGET_BLOCKS if simulator() else TARGET_BLOCKS
    return int(max(1, min(-(-target // max(c, 1)), MAX_SLICES, m // (rt * MIN_PER_THREAD))))


@functools.cache
def make_bn_kernels(dtype, RT: int):
    """(partial_kernel, finish_kernel) of the two-stage per-channel sums.

    Stage 1, ``partial_kernel(x, gy, mean, invstd, mode, part_a, part_b)``: block (c, s) sums slice s
    of channel c (values e = s*RT + tid, stepping by S*RT, of the N*L per channel) into part_a[c, s]
    (and part_b[c, s]): mode 0: x; mode 1: (x - mean)^2; mode 2: gy and gy * xhat.
    Stage 2, ``finish_kernel(part, out, scale, eps, mode)``: one group of RT threads per channel sums
    part[c, :]; out[c] = total * scale (mode 0) or 1 / sqrt(total * scale + eps) (mode 1).
    """
    T = nb_type(dtype)

    @cuda.jit(device=True)
    def _block_sum(sh, tid, v):
        sh[tid] = v
        cuda.syncthreads()
        s = RT // 2  # tree-sum sh[0:RT] into sh[0]
        while s > 0:
            if tid < s:
                sh[tid] += sh[tid + s]
            cuda.syncthreads()
            s //= 2
        tot = sh[0]
        cuda.syncthreads()
        return tot

    @cuda.jit
    def partial_kernel(x, gy, mean, invstd, mode, part_a, part_b):
        sh = cuda.shared.array(RT, T)
        c = cuda.blockIdx.x
        sl = cuda.blockIdx.y
        n_sl = cuda.gridDim.y
        tid = cuda.threadIdx.x
        n_img, _, L = x.shape
        m = n_img * L
        mu = mean[c] if mode != 0 else T(0)
        inv = invstd[c] if mode == 2 else T(0)
        # walk e = start, start + step, ... as (image n, position l) without a division per value
        start = sl * RT + tid
        step = n_sl * RT
        dn = step // L
        dl = step - dn * L
        n = start // L
        pos = start - n * L
        a = T(0)
        b = T(0)
        for _ in range(start, m, step):
            v = x[n, c, pos]
            if mode == 0:
                a += v
            elif mode == 1:
                d = v - mu
                a += d * d
            else:
                g = gy[n, c, pos]
                a += g
                b += g * (v - mu) * inv
            pos += dl
            n += dn
            if pos >= L:
                pos -= L
                n += 1
        ta = _block_sum(sh, tid, a)
        if mode == 2:
            tb = _block_sum(sh, tid, b)
            if tid == 0:
                part_b[c, sl] = tb
        if tid == 0:
            part_a[c, sl] = ta

    @cuda.jit
    def finish_kernel(part, out, scale, eps, mode):
        sh = cuda.shared.array(RT, T)
        c = cuda.blockIdx.x
        tid = cuda.threadIdx.x
        acc = T(0)
        for j in range(tid, part.shape[1], RT):
            acc += part[c, j]
        tot = _block_sum(sh, tid, acc)
        if tid == 0:
            out[c] = tot * scale if mode == 0 else T(1) / math.sqrt(tot * scale + eps)

    return partial_kernel, finish_kernel


@cuda.jit
def bn_apply_kernel(x, mean, invstd, weight, bias, y):
    """y = (x - mean[c]) * invstd[c] * weight[c] + bias[c]."""
    _, ch, L = x.shape
    for e in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        c = (e // L) % ch
        n = e // (L * ch)
        l = e % L
        y[n, c, l] = (x[n, c, l] - mean[c]) * invstd[c] * weight[c] + bias[c]


@cuda.jit
def bn_backward_kernel(gy, x, mean, invstd, weight, sum_gy, sum_gy_xhat, inv_m, gx):
    """gx = w invstd (gy - sum(gy)/M - xhat sum(gy xhat)/M); ``inv_m`` = 1/M as a scalar of x's dtype."""
    _, ch, L = x.shape
    for e in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        c = (e // L) % ch
        n = e // (L * ch)
        l = e % L
        xhat = (x[n, c, l] - mean[c]) * invstd[c]
        gx[n, c, l] = weight[c] * invstd[c] * (gy[n, c, l] - sum_gy[c] * inv_m
                                               - xhat * sum_gy_xhat[c] * inv_m)


def _channel_sums(x3, gy3, mean, invstd, mode, outs, scale, eps, finish_mode):
    """Two-stage per-channel reduction: partials per (channel, slice), then one block per channel."""
    xp = xp_of(x3)
    c = x3.shape[1]
    rt = reduce_threads()
    partial, finish = make_bn_kernels(np.dtype(x3.dtype).str, rt)
    sl = n_slices(c, x3.shape[0] * x3.shape[2], rt)
    parts = [xp.empty((c, sl), dtype=x3.dtype) for _ in outs]
    # NOTE: never the same array twice in one launch: the simulator copies each argument back
    pb = parts[1] if len(parts) > 1 else xp.empty((1, 1), dtype=x3.dtype)
    T = x3.dtype.type
    partial[(c, sl), rt, stream()](dev(x3), dev(gy3), dev(mean), dev(invstd), mode, dev(parts[0]), dev(pb))
    for p, out in zip(parts, outs):
        finish[c, rt, stream()](dev(p), dev(out), T(scale), T(eps), finish_mode)


def _as3(x):
    return contiguous(x).reshape(x.shape[0], x.shape[1], -1)


def _affine(xp, weight, bias, c, dtype):
    w = xp.ones(c, dtype=dtype) if weight is None else contiguous(weight).astype(dtype, copy=False)
    b = xp.zeros(c, dtype=dtype) if bias is None else contiguous(bias).astype(dtype, copy=False)
    return w, b


def batch_norm_forward_train(x, weight, bias, eps):
    """Normalise with the batch's per-channel statistics; returns (y, mean, invstd)."""
    if x.ndim < 2:
        raise ValueError(f"batch_norm: input must be (N, C, ...), got shape {tuple(x.shape)}")
    xp = xp_of(x)
    c = x.shape[1]
    x3 = _as3(x)
    m = x3.shape[0] * x3.shape[2]
    mean = xp.empty(c, dtype=x.dtype)
    invstd = xp.empty(c, dtype=x.dtype)
    if c and m:
        # two passes over x (the mean, then the squared deviations from it): as accurate as NumPy's var
        _channel_sums(x3, x3, mean, invstd, 0, [mean], 1.0 / m, eps, 0)
        _channel_sums(x3, x3, mean, invstd, 1, [invstd], 1.0 / m, eps, 1)
    elif c:  # no values: NaN statistics, as NumPy's mean of nothing
        mean[...] = np.nan
        invstd[...] = np.nan
    w, b = _affine(xp, weight, bias, c, x.dtype)
    y = xp.empty_like(x3)
    if y.size:
        blocks, threads = launch_1d(y.size)
        bn_apply_kernel[blocks, threads, stream()](dev(x3), dev(mean), dev(invstd), dev(w), dev(b), dev(y))
    return y.reshape(x.shape), mean, invstd


def batch_norm_backward(gy, x, weight, mean, invstd):
    """Returns (gx, gweight, gbias); gweight = sum(gy xhat), gbias = sum(gy) per channel."""
    xp = xp_of(x)
    c = x.shape[1]
    x3, gy3 = _as3(x), _as3(gy)
    m = x3.shape[0] * x3.shape[2]
    sum_gy = xp.zeros(c, dtype=x.dtype)
    sum_gy_xhat = xp.zeros(c, dtype=x.dtype)
    mean, invstd = contiguous(mean), contiguous(invstd)
    if c and m:
        _channel_sums(x3, gy3, mean, invstd, 2, [sum_gy, sum_gy_xhat], 1.0, 0.0, 0)
    w, _ = _affine(xp, weight, None, c, x.dtype)
    gx = xp.empty_like(x3)
    if gx.size:
        blocks, threads = launch_1d(gx.size)
        bn_backward_kernel[blocks, threads, stream()](
            dev(gy3), dev(x3), dev(mean), dev(invstd), dev(w), dev(sum_gy), dev(sum_gy_xhat),
            x.dtype.type(1.0 / m), dev(gx)
        )
    return gx.reshape(x.shape), sum_gy_xhat, sum_gy
