"""Batch norm (training mode), forward and backward, in Numba CUDA.

``x`` is viewed as (N, C, L) (L = H*W for images, 1 for (N, C) inputs). One block per channel
reduces over its N*L values: each thread sums a strided slice, then the block adds the partial sums
in shared memory as a tree (``log2(RT)`` steps). Statistics use two passes (mean, then the sum of
squared deviations), which is as accurate as NumPy's ``var``. The elementwise parts are grid-stride
kernels.

    >>> y, mean, invstd = batch_norm_forward_train(x, weight, bias, 1e-5)
"""

from __future__ import annotations

import functools
import math

import numpy as np
from numba import cuda

from .cuda_common import contiguous, dev, launch_1d, nb_type, reduce_threads, xp_of


@functools.cache
def make_bn_kernels(dtype, RT: int):
    T = nb_type(dtype)

    @cuda.jit
    def stats_kernel(x, mean, invstd, eps):
        # x: (N, C, L); block c computes mean[c] and invstd[c] = 1 / sqrt(var[c] + eps)
        sh = cuda.shared.array(RT, T)
        c = cuda.blockIdx.x
        tid = cuda.threadIdx.x
        n_img, _, L = x.shape
        m = n_img * L
        acc = T(0)
        for e in range(tid, m, RT):
            acc += x[e // L, c, e % L]
        sh[tid] = acc
        cuda.syncthreads()
        s = RT // 2  # tree-sum sh[0:RT] into sh[0]
        while s > 0:
            if tid < s:
                sh[tid] += sh[tid + s]
            cuda.syncthreads()
            s //= 2
        mu = sh[0] / m
        cuda.syncthreads()
        acc = T(0)
        for e in range(tid, m, RT):
            d = x[e // L, c, e % L] - mu
            acc += d * d
        sh[tid] = acc
        cuda.syncthreads()
        s = RT // 2  # tree-sum sh[0:RT] into sh[0]
        while s > 0:
            if tid < s:
                sh[tid] += sh[tid + s]
            cuda.syncthreads()
            s //= 2
        if tid == 0:
            mean[c] = mu
            invstd[c] = 1 / math.sqrt(sh[0] / m + eps)

    @cuda.jit
    def grad_sums_kernel(gy, x, mean, invstd, sum_gy, sum_gy_xhat):
        # block c: sum_gy[c] = sum gy, sum_gy_xhat[c] = sum gy * xhat
        sh = cuda.shared.array(RT, T)
        sh2 = cuda.shared.array(RT, T)
        c = cuda.blockIdx.x
        tid = cuda.threadIdx.x
        n_img, _, L = x.shape
        m = n_img * L
        mu = mean[c]
        inv = invstd[c]
        a = T(0)
        b = T(0)
        for e in range(tid, m, RT):
            n = e // L
            l = e % L
            g = gy[n, c, l]
            a += g
            b += g * (x[n, c, l] - mu) * inv
        sh[tid] = a
        sh2[tid] = b
        cuda.syncthreads()
        s = RT // 2  # tree-sum sh[0:RT] into sh[0]
        while s > 0:
            if tid < s:
                sh[tid] += sh[tid + s]
                sh2[tid] += sh2[tid + s]
            cuda.syncthreads()
            s //= 2
        if tid == 0:
            sum_gy[c] = sh[0]
            sum_gy_xhat[c] = sh2[0]

    return stats_kernel, grad_sums_kernel


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
def bn_backward_kernel(gy, x, mean, invstd, weight, sum_gy, sum_gy_xhat, gx):
    """gx = w invstd (gy - sum(gy)/M - xhat sum(gy xhat)/M)."""
    n_img, ch, L = x.shape
    m = n_img * L
    for e in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        c = (e // L) % ch
        n = e // (L * ch)
        l = e % L
        xhat = (x[n, c, l] - mean[c]) * invstd[c]
        gx[n, c, l] = weight[c] * invstd[c] * (gy[n, c, l] - sum_gy[c] / m - xhat * sum_gy_xhat[c] / m)


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
    mean = xp.empty(c, dtype=x.dtype)
    invstd = xp.empty(c, dtype=x.dtype)
    rt = reduce_threads()
    stats, _ = make_bn_kernels(np.dtype(x.dtype).str, rt)
    if c:
        stats[c, rt](dev(x3), dev(mean), dev(invstd), float(eps))
    w, b = _affine(xp, weight, bias, c, x.dtype)
    y = xp.empty_like(x3)
    if y.size:
        blocks, threads = launch_1d(y.size)
        bn_apply_kernel[blocks, threads](dev(x3), dev(mean), dev(invstd), dev(w), dev(b), dev(y))
    return y.reshape(x.shape), mean, invstd


def batch_norm_backward(gy, x, weight, mean, invstd):
    """Returns (gx, gweight, gbias); gweight = sum(gy xhat), gbias = sum(gy) per channel."""
    xp = xp_of(x)
    c = x.shape[1]
    x3, gy3 = _as3(x), _as3(gy)
    sum_gy = xp.empty(c, dtype=x.dtype)
    sum_gy_xhat = xp.empty(c, dtype=x.dtype)
    rt = reduce_threads()
    _, sums = make_bn_kernels(np.dtype(x.dtype).str, rt)
    mean, invstd = contiguous(mean), contiguous(invstd)
    if c:
        sums[c, rt](dev(gy3), dev(x3), dev(mean), dev(invstd), dev(sum_gy), dev(sum_gy_xhat))
    w, _ = _affine(xp, weight, None, c, x.dtype)
    gx = xp.empty_like(x3)
    if gx.size:
        blocks, threads = launch_1d(gx.size)
        bn_backward_kernel[blocks, threads](
            dev(gy3), dev(x3), dev(mean), dev(invstd), dev(w), dev(sum_gy), dev(sum_gy_xhat), dev(gx)
        )
    return gx.reshape(x.shape), sum_gy_xhat, sum_gy
