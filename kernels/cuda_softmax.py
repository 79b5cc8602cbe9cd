"""Row-wise kernels in Numba CUDA: log-softmax, fused softmax-cross-entropy, row sums, a total.

Rows of an (M, C) array go to *one warp each* (``W`` threads; ``R`` rows per block): the warp's threads
stride over the C columns and combine their partial max / sum in shared memory as a tree of
``log2(W)`` steps, so rows of any length work and a 10-class (or 2-class) problem does not leave a
256-thread block per row idle. A total over many values (the cross-entropy loss) is two-stage: each
of up to ``MAX_PARTS`` blocks sums a strided share into one partial, then one block sums the partials.

The cross-entropy loss is ``-scale * sum(target * log_softmax(x))`` with a dense (M, C) target
(class weights and label smoothing folded in), its gradient
``scale * g * (softmax(x) * sum_c target - target)``. The forward kernel writes logp and each row's
``sum_c target * logp`` in one pass.

Every constant reaches a float32 kernel as a float32 scalar: no float64 arithmetic on the GPU.

    >>> loss, logp = softmax_cross_entropy_forward(logits, target, 1 / n)
"""

from __future__ import annotations

import functools
import math

import numpy as np
from numba import cuda

from .cuda_common import contiguous, dev, launch_1d, nb_type, reduce_threads, simulator, stream, xp_of

MAX_PARTS = 1024  # blocks of the first stage of a total


def warp_shape() -> tuple[int, int]:
    """(W, R): threads per row and rows per block (32 x 8 on a GPU; 4 x 2 in the simulator)."""
    return (4, 2) if simulator() else (32, 8)


@functools.cache
def make_row_kernels(dtype, W: int, R: int):
    """(log_softmax, ce_forward, sum_rows) kernels: one group of W threads per row, R rows per block."""
    T = nb_type(dtype)

    @cuda.jit(device=True)
    def _warp_sum(sh, w, lane, v):
        # tree-sum v over the W lanes of group w (every thread of the block calls it: barriers)
        sh[w, lane] = v
        cuda.syncthreads()
        s = W // 2
        while s > 0:
            if lane < s:
                sh[w, lane] += sh[w, lane + s]
            cuda.syncthreads()
            s //= 2
        total = sh[w, 0]
        cuda.syncthreads()
        return total

    @cuda.jit(device=True)
    def _warp_max(sh, w, lane, v):
        sh[w, lane] = v
        cuda.syncthreads()
        s = W // 2
        while s > 0:
            if lane < s:
                sh[w, lane] = max(sh[w, lane], sh[w, lane + s])
            cuda.syncthreads()
            s //= 2
        total = sh[w, 0]
        cuda.syncthreads()
        return total

    @cuda.jit(device=True)
    def _row_lse(sh, x, r, valid, w, lane):
        """log(sum(exp(x[r]))) of row r (numerically: max + log sum exp(x - max))."""
        c = x.shape[1]
        m = T(-math.inf)
        if valid:
            for j in range(lane, c, W):
                m = max(m, x[r, j])
        mx = _warp_max(sh, w, lane, m)
        acc = T(0)
        if valid:
            for j in range(lane, c, W):
                acc += math.exp(x[r, j] - mx)
        tot = _warp_sum(sh, w, lane, acc)
        return mx + math.log(tot) if valid else T(0)  # (rows past the end: no log(0))

    @cuda.jit
    def log_softmax_kernel(x, out):
        sh = cuda.shared.array((R, W), T)
        w = cuda.threadIdx.x // W
        lane = cuda.threadIdx.x % W
        r = cuda.blockIdx.x * R + w
        valid = r < x.shape[0]
        lse = _row_lse(sh, x, r, valid, w, lane)
        if valid:
            for j in range(lane, x.shape[1], W):
                out[r, j] = x[r, j] - lse

    @cuda.jit
    def ce_forward_kernel(x, target, logp, row_loss):
        # logp = log_softmax(x); row_loss[r] = sum_j target[r, j] * logp[r, j]
        sh = cuda.shared.array((R, W), T)
        w = cuda.threadIdx.x // W
        lane = cuda.threadIdx.x % W
        r = cuda.blockIdx.x * R + w
        valid = r < x.shape[0]
        lse = _row_lse(sh, x, r, valid, w, lane)
        acc = T(0)
        if valid:
            for j in range(lane, x.shape[1], W):
                lp = x[r, j] - lse
                logp[r, j] = lp
                acc += target[r, j] * lp
        tot = _warp_sum(sh, w, lane, acc)
        if valid and lane == 0:
            row_loss[r] = tot

    @cuda.jit
    def sum_rows_kernel(x, out):
        sh = cuda.shared.array((R, W), T)
        w = cuda.threadIdx.x // W
        lane = cuda.threadIdx.x % W
        r = cuda.blockIdx.x * R + w
        valid = r < x.shape[0]
        acc = T(0)
        if valid:
            for j in range(lane, x.shape[1], W):
                acc += x[r, j]
        tot = _warp_sum(sh, w, lane, acc)
        if valid and lane == 0:
            out[r] = tot

    return log_softmax_kernel, ce_forward_kernel, sum_rows_kernel


@functools.cache
def make_total_kernel(dtype, RT: int):
    """Stage kernel of a total: block b sums x[b*RT + tid :: blocks*RT] into out[b] (a shared tree)."""
    T = nb_type(dtype)

    @cuda.jit
    def block_sum_kernel(x, out):
        sh = cuda.shared.array(RT, T)
        tid = cuda.threadIdx.x
        acc = T(0)
        for e in range(cuda.blockIdx.x * RT + tid, x.size, cuda.gridDim.x * RT):
            acc += x[e]
        sh[tid] = acc
        cuda.syncthreads()
        s = RT // 2
        while s > 0:
            if tid < s:
                sh[tid] += sh[tid + s]
            cuda.syncthreads()
            s //= 2
        if tid == 0:
            out[cuda.blockIdx.x] = sh[0]

    return block_sum_kernel


@cuda.jit
def _ce_grad_kernel(logp, target, tsum, coef, grad):
    """grad[r, j] = coef * (exp(logp[r, j]) * tsum[r] - target[r, j])."""
    c = logp.shape[1]
    for e in range(cuda.grid(1), logp.size, cuda.gridsize(1)):
        r = e // c
        j = e - r * c
        grad[r, j] = coef * (math.exp(logp[r, j]) * tsum[r] - target[r, j])


def _check2d(name, x):
    if x.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D (rows, columns) array, got shape {tuple(x.shape)}")


def _rows(kind: int, x, *arrays):
    """Launch row kernel ``kind`` (0 log_softmax, 1 ce_forward, 2 sum_rows) over the rows of x."""
    w, r = warp_shape()
    kernel = make_row_kernels(np.dtype(x.dtype).str, w, r)[kind]
    kernel[(x.shape[0] + r - 1) // r, w * r, stream()](dev(x), *[dev(a) for a in arrays])


def log_softmax(x):
    """log_softmax over the last axis of a 2-D array (one warp per row)."""
    _check2d("log_softmax", x)
    x = contiguous(x)
    out = xp_of(x).empty_like(x)
    if x.shape[0] and x.shape[1]:
        _rows(0, x, out)
    return out


def sum_rows(x):
    """Sum over the last axis of a 2-D array (one warp per row)."""
    _check2d("sum_rows", x)
    x = contiguous(x)
    out = xp_of(x).zeros(x.shape[0], dtype=x.dtype)
    if x.shape[0] and x.shape[1]:
        _rows(2, x, out)
    return out


def total(x):
    """Sum of all values of ``x`` as a 1-element array, in two stages (partials per block, then one block)."""
    xp = xp_of(x)
    flat = contiguous(x).reshape(-1)
    rt = reduce_threads()
    kernel = make_total_kernel(np.dtype(flat.dtype).str, rt)
    if flat.size == 0:
        return xp.zeros(1, dtype=flat.dtype)
    while flat.size > MAX_PARTS:  # stage 1 (repeated only for more than MAX_PARTS**2 * rt values)
        parts = min(MAX_PARTS, (flat.size + rt - 1) // rt)
        partial = xp.empty(parts, dtype=flat.dtype)
        kernel[parts, rt, stream()](dev(flat), dev(partial))
        flat = partial
    out = xp.empty(1, dtype=flat.dtype)  # stage 2: one block
    kernel[1, rt, stream()](dev(flat), dev(out))
    return out


def softmax_cross_entropy_forward(x, target, scale):
    """Returns (loss as a 0-d array, logp): loss = -scale * sum(target * log_softmax(x))."""
    _check2d("softmax_cross_entropy", x)
    if tuple(target.shape) != tuple(x.shape):
        raise ValueError(f"softmax_cross_entropy: target {tuple(target.shape)} != logits {tuple(x.shape)}")
    xp = xp_of(x)
    x = contiguous(x)
    target = contiguous(target).astype(x.dtype, copy=False)
    logp = xp.empty_like(x)
    row_loss = xp.zeros(x.shape[0], dtype=x.dtype)
    if x.shape[0] and x.shape[1]:
        _rows(1, x, target, logp, row_loss)
    loss = (total(row_loss) * x.dtype.type(-scale)).reshape(())
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
        _ce_grad_kernel[blocks, threads, stream()](dev(logp), dev(target), dev(tsum), coef, dev(grad))
    if xp_of(g) is not np:
        grad *= g.astype(grad.dtype, copy=False)
    return grad
