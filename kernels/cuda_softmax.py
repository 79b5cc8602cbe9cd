"""Row-wise kernels in Numba CUDA: log-softmax, fused softmax-cross-entropy, row sums.

Each row of an (M, C) array is handled by one block: its threads stride over the C columns and
combine their partial max / sum in shared memory (a tree of ``log2(RT)`` steps), so rows of any
length work. The cross-entropy loss is ``-scale * sum(target * log_softmax(x))`` with a dense
(M, C) target (class weights and label smoothing folded in), its gradient
``scale * g * (softmax(x) * sum_c target - target)``.

    >>> loss, logp = softmax_cross_entropy_forward(logits, target, 1 / n)
"""

from __future__ import annotations

import functools
import math

import numpy as np
from numba import cuda

from .cuda_common import contiguous, dev, launch_1d, nb_type, reduce_threads, xp_of


@functools.cache
def make_row_kernels(dtype, RT: int):
    T = nb_type(dtype)

    @cuda.jit
    def log_softmax_kernel(x, out):
        sh = cuda.shared.array(RT, T)
        r = cuda.blockIdx.x
        tid = cuda.threadIdx.x
        c = x.shape[1]
        m = -math.inf
        for j in range(tid, c, RT):
            m = max(m, x[r, j])
        sh[tid] = m
        cuda.syncthreads()
        s = RT // 2
        while s > 0:
            if tid < s:
                sh[tid] = max(sh[tid], sh[tid + s])
            cuda.syncthreads()
            s //= 2
        mx = sh[0]
        cuda.syncthreads()
        acc = T(0)
        for j in range(tid, c, RT):
            acc += math.exp(x[r, j] - mx)
        sh[tid] = acc
        cuda.syncthreads()
        s = RT // 2
        while s > 0:
            if tid < s:
                sh[tid] += sh[tid + s]
            cuda.syncthreads()
            s //= 2
        lse = mx + math.log(sh[0])
        for j in range(tid, c, RT):
            out[r, j] = x[r, j] - lse

    @cuda.jit
    def sum_rows_kernel(x, out):
        sh = cuda.shared.array(RT, T)
        r = cuda.blockIdx.x
        tid = cuda.threadIdx.x
        acc = T(0)
        for j in range(tid, x.shape[1], RT):
            acc += x[r, j]
        sh[tid] = acc
        cuda.syncthreads()
        s = RT // 2
        while s > 0:
            if tid < s:
                sh[tid] += sh[tid + s]
            cuda.syncthreads()
            s //= 2
        if tid == 0:
            out[r] = sh[0]

    return log_softmax_kernel, sum_rows_kernel


@cuda.jit
def _ce_grad_kernel(logp, target, tsum, coef, grad):
    """grad[r, j] = coef * (exp(logp[r, j]) * tsum[r] - target[r, j])."""
    c = logp.shape[1]
    for e in range(cuda.grid(1), logp.size, cuda.gridsize(1)):
        r = e // c
        j = e - r * c
        grad[r, j] = coef * (math.exp(logp[r, j]) * tsum[r] - target[r, j])


@cuda.jit
def _mul_kernel(a, b, out):
    for e in range(cuda.grid(1), a.size, cuda.gridsize(1)):
        out[e] = a[e] * b[e]


def _check2d(name, x):
    if x.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D (rows, columns) array, got shape {tuple(x.shape)}")


def log_softmax(x):
    """log_softmax over the last axis of a 2-D array."""
    _check2d("log_softmax", x)
    x = contiguous(x)
    out = xp_of(x).empty_like(x)
    rt = reduce_threads()
    if x.shape[0] and x.shape[1]:
        make_row_kernels(np.dtype(x.dtype).str, rt)[0][x.shape[0], rt](dev(x), dev(out))
    return out


def sum_rows(x):
    """Sum over the last axis of a 2-D array (one block per row)."""
    _check2d("sum_rows", x)
    x = contiguous(x)
    out = xp_of(x).empty(x.shape[0], dtype=x.dtype)
    rt = reduce_threads()
    if x.shape[0]:
        make_row_kernels(np.dtype(x.dtype).str, rt)[1][x.shape[0], rt](dev(x), dev(out))
    return out


def softmax_cross_entropy_forward(x, target, scale):
    """Returns (loss as a 0-d array, logp): loss = -scale * sum(target * log_softmax(x))."""
    _check2d("softmax_cross_entropy", x)
    if tuple(target.shape) != tuple(x.shape):
        raise ValueError(f"softmax_cross_entropy: target {tuple(target.shape)} != logits {tuple(x.shape)}")
    logp = log_softmax(x)
    target = contiguous(target).astype(x.dtype, copy=False)
    prod = xp_of(x).empty(x.size, dtype=x.dtype)
    if x.size:
        blocks, threads = launch_1d(x.size)
        _mul_kernel[blocks, threads](dev(target.reshape(-1)), dev(logp.reshape(-1)), dev(prod))
    total = sum_rows(prod.reshape(1, -1))
    loss = (total * x.dtype.type(-scale)).reshape(())
    return loss, logp


def softmax_cross_entropy_backward(g, logp, target, scale):
    """Gradient w.r.t. the logits; ``g`` is the (0-d) gradient of the loss."""
    target = contiguous(target).astype(logp.dtype, copy=False)
    tsum = sum_rows(target)
    grad = xp_of(logp).empty_like(logp)
    coef = logp.dtype.type(float(g) * scale) if xp_of(g) is np else None
    if coef is None:  # CuPy 0-d array: keep it on the device by folding it in afterwards
        coef = logp.dtype.type(scale)
    if logp.size:
        blocks, threads = launch_1d(logp.size)
        _ce_grad_kernel[blocks, threads](dev(logp), dev(target), dev(tsum), coef, dev(grad))
    if xp_of(g) is not np:
        grad *= g
    return grad
