"""Tier 2: the fast CPU kernels, the default backend for ``device="cpu"`` (``TGR_BACKEND=cpu``).

Every function has the signature and semantics of the function of the same name in
``kernels/reference.py`` and returns fresh arrays (autograd keeps them; conv adds its bias in place).
Read its plain twin in ``cpu_plain.py`` (tier 1) first; what each fast kernel adds beyond it:

* matmul: NumPy's BLAS (OpenBLAS sgemm/dgemm) instead of the triple loop.
* erf: a Numba ufunc (``numba.vectorize``) instead of a prange loop.
* convolution (``cpu_conv.py``): batch split across threads, im2col + one BLAS GEMM per chunk of
  images, "wide rows" copies for stride 1, Winograd F(2x2, 3x3) for 3x3 stride-1 convs
  (``cpu_winograd.py``); depthwise-like convs keep the plain direct loops.
* max pool forward: two specialisations - no padding (no bounds checks) and 2x2 / stride 2 (two
  vectorised pairwise passes); any other window uses the plain loop. The 2x2 backward writes each cell
  once (gy or 0); any other window's backward is the plain loop. In 3-D, 2x2x2 / stride 2 has its own
  forward (pairwise passes) and backward (one write per voxel).
* batch norm: one pass for mean and variance (shifted sums) instead of two, ``y = x a + b`` with the
  per-channel a, b folded, vectorised float64 sums (``fastmath={"reassoc"}``); the backward likewise.
* batch norm + ReLU (``batch_norm_relu_*``): the ReLU inside the batch norm's passes (its mask recomputed
  from x in the backward), where the other tiers run their batch norm and ReLU kernels in a row.
* channel affine: the backward's sums vectorised (``fastmath={"reassoc"}``); the forward as plain.
* Adam: the constants rounded to p's dtype first and the reference's order of operations, so the
  result has the NumPy reference's bits (the plain tier is the textbook formula).
* ReLU, avg pool, softmax-cross-entropy: the plain loops are already one parallel pass each and are
  used as they are (imported from ``cpu_plain``).

Example::

    >>> from tinygrad_rad.kernels import cpu
    >>> y, idx = cpu.max_pool2d_forward(x, (2, 2), (2, 2), (0, 0), (1, 1))
"""
from __future__ import annotations

import math

import numba
import numpy as np
from numba import njit, prange

from .cpu_conv import (  # noqa: F401
    conv2d_affine_forward,
    conv2d_backward_input,
    conv2d_backward_weight,
    conv2d_forward,
)
from .cpu_plain import (  # noqa: F401  (the plain kernels that are already the fast ones: see above)
    avg_pool2d_backward,
    avg_pool2d_forward,
    check4d,
    max_pool_fwd,
    pool_args,
    relu_bwd_loop,
    relu_fwd_loop,
)
from .cpu_plain import max_pool2d_backward as _plain_max_pool2d_backward

# NOTE: the fused softmax-cross-entropy of the fast tier is the reference's vectorised NumPy code: it is
# what the op computed before the kernel tiers existed (bit for bit, so default runs keep their results);
# at the sizes a classifier's loss sees, (batch, classes), a Numba pass (cpu_plain's float64 sums) gains
# nothing and changes the rounding
from .reference import out_size, softmax_cross_entropy_backward, softmax_cross_entropy_forward  # noqa: F401
from .threads import serialized

__all__ = [
    "matmul", "erf", "relu_forward", "relu_backward",
    "conv2d_forward", "conv2d_backward_input", "conv2d_backward_weight",
    "max_pool2d_forward", "max_pool2d_backward", "avg_pool2d_forward", "avg_pool2d_backward",
    "batch_norm_forward_train", "batch_norm_backward", "batch_norm_relu_forward_train",
    "batch_norm_relu_backward", "channel_affine_forward", "channel_affine_backward",
    "conv2d_affine_forward",
    "softmax_cross_entropy_forward", "softmax_cross_entropy_backward", "adam_step",
    "conv3d_forward", "conv3d_backward_input", "conv3d_backward_weight",
    "max_pool3d_forward", "max_pool3d_backward", "avg_pool3d_forward", "avg_pool3d_backward",
]


# ------------------------------------------------------------------------------------------ relu
# NOTE: a parallel launch costs ~20-120 us under the workqueue threading layer (its threads sleep between
# loops; benchmarks/NOTES.md section 7), more than a small ReLU itself: below SERIAL_MAX elements the
# plain tier's loop runs serially on the calling thread (the same per-element expression: same bits).
SERIAL_MAX = 1 << 15
_relu_fwd_serial = njit(cache=True)(relu_fwd_loop.py_func)
_relu_bwd_serial = njit(cache=True)(relu_bwd_loop.py_func)


@serialized
def relu_forward(x):
    """max(x, 0) elementwise (NaN stays NaN), a fresh array."""
    x = np.ascontiguousarray(x)
    y = np.empty_like(x)
    loop = _relu_fwd_serial if x.size < SERIAL_MAX else relu_fwd_loop
    loop(x.reshape(-1), y.reshape(-1))
    return y


@serialized
def relu_backward(g, out):
    """g * [out > 0] in one pass."""
    g, out = np.ascontiguousarray(g), np.ascontiguousarray(out)
    gx = np.empty(g.shape, dtype=g.dtype)
    loop = _relu_bwd_serial if g.size < SERIAL_MAX else relu_bwd_loop
    loop(g.reshape(-1), out.reshape(-1), gx.reshape(-1))
    return gx


def matmul(a, b):
    """(..., n, k) @ (..., k, m) through NumPy's BLAS (sgemm/dgemm)."""
    return np.matmul(a, b)


@numba.vectorize(["float32(float32)", "float64(float64)"], cache=True)
def _erf(x):
    return math.erf(x)


def erf(x):
    """Elementwise error function (Numba ufunc around ``math.erf``)."""
    return _erf(x)


# ------------------------------------------------------------------------------------- max pool
@njit(parallel=True, cache=True)
def _max_pool_fwd_nopad(x, kh, kw, sh, sw, dh, dw, y, idx):
    """Same as max_pool_fwd when padding is 0: every window lies inside the image, no bounds checks."""
    n, c = x.shape[0], x.shape[1]
    ho, wo = y.shape[2], y.shape[3]
    for t in prange(n * c):
        b, ch = t // c, t % c
        for i in range(ho):
            for j in range(wo):
                best = x[b, ch, i * sh, j * sw]
                bi = 0
                for u in range(kh):
                    for v in range(kw):
                        val = x[b, ch, i * sh + u * dh, j * sw + v * dw]
                        if val > best or (val != val and best == best):
                            best = val
                            bi = u * kw + v
                y[b, ch, i, j] = best
                idx[b, ch, i, j] = bi


@njit(cache=True, inline="always")
def _max_pairs(xf, src, hm, hb, dst, count):
    """hm[dst + q], hb[dst + q] = max and position (0 / 1) of the pair xf[src + 2q], xf[src + 2q + 1].

    # NOTE: a separate loop with its own constant bounds: the same loop with bounds chosen by a tuple
    # expression inside the kernel did not vectorise (3x slower: benchmarks/NOTES.md section 6d).
    """
    for q in range(count):
        a = xf[src + 2 * q]
        b = xf[src + 2 * q + 1]
        take = (b > a) | ((b != b) & (a == a))  # bitwise, not `or`: no branches, so it vectorises
        hm[dst + q] = b if take else a
        hb[dst + q] = 1 if take else 0


@njit(parallel=True, cache=True)
def _max_pool_fwd_2x2(x, y, idx):
    """2x2 windows, stride 2, no padding (the common case) in two passes per plane: the max of each
    horizontal pair of every row, then the max of each vertical pair of those.

    # NOTE: the generic loops (cpu_plain.max_pool_fwd) ran at ~0.5 GB/s here, slower than NumPy's four
    # strided np.maximum calls: runtime-length tap loops with a branchy argmax do not vectorise. One pass
    # over each window with the four taps spelled out still ran over rows of only 7-14 windows; the
    # horizontal pass here runs over the whole plane at once when W is even (2x faster than that again:
    # benchmarks/NOTES.md sections 5f and 6d). Same rule as the generic loops: the first maximum wins, a
    # NaN beats everything; the pairwise order gives the same winner ((a0, a1) then (a2, a3), then top vs
    # bottom).
    """
    n, c, h, w = x.shape
    ho, wo = y.shape[2], y.shape[3]
    planes = n * c
    xf = x.reshape(planes * h * w)
    yf = y.reshape(planes * ho * wo)
    idf = idx.reshape(planes * ho * wo)
    nchunks = min(planes, 64)
    for chunk in prange(nchunks):
        hm = np.empty(2 * ho * wo, dtype=x.dtype)  # max of each horizontal pair, rows 0 .. 2 ho - 1
        hb = np.empty(2 * ho * wo, dtype=np.int32)  # which one: 0 left, 1 right
        for t in range(chunk * planes // nchunks, (chunk + 1) * planes // nchunks):
            base = t * h * w
            if w == 2 * wo:  # rows of exactly 2 wo values lie end to end: one flat loop over the plane
                _max_pairs(xf, base, hm, hb, 0, 2 * ho * wo)
            else:
                for r in range(2 * ho):
                    _max_pairs(xf, base + r * w, hm, hb, r * wo, wo)
            out = t * ho * wo
            for i in range(ho):
                top, bottom = 2 * i * wo, (2 * i + 1) * wo
                for j in range(wo):
                    a = hm[top + j]
                    b = hm[bottom + j]
                    take = (b > a) | ((b != b) & (a == a))
                    yf[out + i * wo + j] = b if take else a
                    idf[out + i * wo + j] = (2 + hb[bottom + j]) if take else hb[top + j]


def _is_2x2(kernel, stride, padding, dilation):
    """The common 2x2 / stride 2 / no padding window that has fast paths."""
    return tuple(kernel) == tuple(stride) == (2, 2) and tuple(padding) == (0, 0) and tuple(dilation) == (1, 1)


@serialized
def max_pool2d_forward(x, kernel, stride, padding, dilation=(1, 1)):
    """Max over each window -> (y, idx); idx (int32) is the argmax's position inside its window."""
    check4d("max_pool2d", x)
    x = np.ascontiguousarray(x)
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    n, c, h, wd = x.shape
    ho, wo = out_size(h, kh, sh, ph, dh), out_size(wd, kw, sw, pw, dw)
    y = np.empty((n, c, ho, wo), dtype=x.dtype)
    idx = np.empty((n, c, ho, wo), dtype=np.int32)
    if _is_2x2(kernel, stride, padding, dilation):
        _max_pool_fwd_2x2(x, y, idx)
    elif ph == pw == 0:
        _max_pool_fwd_nopad(x, kh, kw, sh, sw, dh, dw, y, idx)
    else:
        max_pool_fwd(x, *pool_args(kernel, stride, padding, dilation), y, idx)
    return y, idx


@njit(cache=True, inline="always")
def _route_pairs(row, gyr, ir, k0, wo):
    """One input row of a 2-wide-window max pool's backward: row[2j + v] = gyr[j] where the window's argmax
    ir[j] is k0 + v, else 0 (and 0 past the last window)."""
    for j in range(wo):
        g, k = gyr[j], ir[j] - k0
        row[2 * j] = g if k == 0 else 0
        row[2 * j + 1] = g if k == 1 else 0
    for wi in range(2 * wo, row.shape[0]):
        row[wi] = 0


@njit(parallel=True, cache=True)
def _max_pool_bwd_2x2(gy, idx, gx):
    """gx[2i + u, 2j + v] = gy[i, j] where (u, v) was that window's argmax, else 0: 2x2 windows do not
    overlap, so each cell is written once (no zeroing pass, no scatter-add).

    # NOTE: the pairs are written as row[2j] / row[2j + 1] from one load of gy and idx; 1.8-3.8x faster than
    # the plain zero-then-scatter loop on SmallCNN's and U-Net's pools (benchmarks/NOTES.md 10g; an earlier
    # write-once version that gathered gy[wi // 2] per cell was 2x slower, 6d)
    """
    n, c, h, w = gx.shape
    ho, wo = gy.shape[2], gy.shape[3]
    for t in prange(n * c):
        b, ch = t // c, t % c
        for hi in range(h):
            row = gx[b, ch, hi]
            if hi >= 2 * ho:  # a trailing odd row no window covers
                row[:] = 0
                continue
            _route_pairs(row, gy[b, ch, hi // 2], idx[b, ch, hi // 2], 2 * (hi % 2), wo)


@serialized
def max_pool2d_backward(gy, idx, x_shape, kernel, stride, padding, dilation=(1, 1)):
    """Route each output gradient to its window's max: gx[argmax] += gy; 2x2 / stride 2 has its own kernel.

    Example: ``max_pool2d_backward(gy, idx, x.shape, (2, 2), (2, 2), (0, 0))``.
    """
    if not (len(x_shape) == 4 and _is_2x2(kernel, stride, padding, dilation) and min(x_shape[2:]) >= 2):
        return _plain_max_pool2d_backward(gy, idx, x_shape, kernel, stride, padding, dilation)
    gy, idx = np.ascontiguousarray(gy), np.ascontiguousarray(idx, dtype=np.int32)
    gx = np.empty(tuple(x_shape), dtype=gy.dtype)
    _max_pool_bwd_2x2(gy, idx, gx)
    return gx


# ----------------------------------------------------------------------------------- batch norm
# NOTE: fastmath "reassoc" (only that flag: no NaN/inf assumptions) lets LLVM split the per-channel float64
# sums below into vector lanes; without it each sum is one serial chain of dependent adds (forward and
# backward 1.3-2x faster on SmallCNN's shapes: benchmarks/NOTES.md section 6c). The sums change only by
# rounding (the same order on every run: one channel is summed by one thread).
@njit(parallel=True, cache=True, fastmath={"reassoc"})
def _bn_fwd(x, weight, bias, eps, relu, y, mean, invstd):
    """x, y: (N, C, M). Per channel: mean and biased variance in ONE pass (float64 sums of x - k and
    (x - k)^2, shifted by the channel's first value k so that a large mean does not cancel the variance),
    then y = x a + b (relu: y = max(x a + b, 0) in the same pass, batch norm + ReLU fused)."""
    n, c, m = x.shape
    cnt = n * m
    for ch in prange(c):
        k = float(x[0, ch, 0]) if cnt else 0.0
        s = 0.0
        ss = 0.0
        for b in range(n):
            for i in range(m):
                d = x[b, ch, i] - k
                s += d
                ss += d * d
        ds = s / cnt
        mu = k + ds
        var = max(ss / cnt - ds * ds, 0.0)
        inv = 1.0 / math.sqrt(var + eps)
        scale = inv * weight[ch]
        shift = bias[ch] - mu * scale
        for b in range(n):
            for i in range(m):
                v = x[b, ch, i] * scale + shift
                y[b, ch, i] = (v if v > 0 or v != v else 0) if relu else v  # NaN stays NaN, as in relu
        mean[ch] = mu
        invstd[ch] = inv


@njit(parallel=True, cache=True, fastmath={"reassoc"})
def _bn_bwd(gy, x, weight, bias, mean, invstd, relu, gx, gw, gb):
    """dx = w invstd (gy - mean(gy) - xhat mean(gy xhat)); dw = sum gy xhat; db = sum gy.
    relu: the backward of relu(batch_norm(x)): gy is first zeroed where y = x a + b <= 0 (a = w invstd,
    b = bias - mean a: y recomputed from x, which both passes read anyway)."""
    n, c, m = x.shape
    cnt = n * m
    for ch in prange(c):
        mu, inv = mean[ch], invstd[ch]
        ya = weight[ch] * inv
        yb = bias[ch] - mu * ya
        sg = 0.0
        sgx = 0.0
        for b in range(n):
            for k in range(m):
                xv = x[b, ch, k]
                g = gy[b, ch, k] if not relu or xv * ya + yb > 0 else 0
                sg += g
                sgx += g * (xv - mu)
        sgx *= inv  # = sum gy * xhat
        gb[ch] = sg
        gw[ch] = sgx
        scale = weight[ch] * inv
        a = sg / cnt
        bq = sgx / cnt * inv  # xhat * mean(gy xhat) = (x - mu) * bq
        for b in range(n):
            for k in range(m):
                xv = x[b, ch, k]
                g = gy[b, ch, k] if not relu or xv * ya + yb > 0 else 0
                gx[b, ch, k] = scale * (g - a - (xv - mu) * bq)


def _bn_view(x):
    if x.ndim < 2:
        raise ValueError(f"batch_norm: expected (N, C) or (N, C, ...) input, got shape {x.shape}")
    return np.ascontiguousarray(x).reshape(x.shape[0], x.shape[1], -1)


def _affine_params(x, weight, bias):
    c = x.shape[1]
    w = np.ones(c, x.dtype) if weight is None else np.ascontiguousarray(weight, dtype=x.dtype)
    b = np.zeros(c, x.dtype) if bias is None else np.ascontiguousarray(bias, dtype=x.dtype)
    return w, b


def _bn_forward(x, weight, bias, eps, relu):
    x3 = _bn_view(x)
    c = x.shape[1]
    w, b = _affine_params(x, weight, bias)
    y = np.empty(x3.shape, dtype=x.dtype)
    mean, invstd = np.empty(c, x.dtype), np.empty(c, x.dtype)
    _bn_fwd(x3, w, b, float(eps), relu, y, mean, invstd)
    return y.reshape(x.shape), mean, invstd


def _bn_backward(gy, x, weight, bias, mean, invstd, relu):
    x3, gy3 = _bn_view(x), _bn_view(gy)
    c = x.shape[1]
    w, b = _affine_params(x, weight, bias)
    gx = np.empty(x3.shape, dtype=x.dtype)
    gw, gb = np.empty(c, x.dtype), np.empty(c, x.dtype)
    _bn_bwd(gy3, x3, w, b, np.ascontiguousarray(mean), np.ascontiguousarray(invstd), relu, gx, gw, gb)
    return gx.reshape(x.shape), gw, gb


@serialized
def batch_norm_forward_train(x, weight, bias, eps):
    """Normalise with the batch's per-channel mean and biased variance -> (y, mean, invstd)."""
    return _bn_forward(x, weight, bias, eps, False)


@serialized
def batch_norm_backward(gy, x, weight, mean, invstd):
    """-> (gx, gw, gb); gw, gb are per-channel sums (returned even when ``weight`` is None)."""
    return _bn_backward(gy, x, weight, None, mean, invstd, False)


@serialized
def batch_norm_relu_forward_train(x, weight, bias, eps):
    """relu(batch_norm(x)) in the batch norm's own passes (no separate ReLU pass) -> (y, mean, invstd)."""
    return _bn_forward(x, weight, bias, eps, True)


@serialized
def batch_norm_relu_backward(gy, x, weight, bias, mean, invstd):
    """The backward of relu(batch_norm(x)) -> (gx, gw, gb): the ReLU's mask recomputed from x inside the
    batch norm's two passes (no separate ReLU pass, no stored output)."""
    return _bn_backward(gy, x, weight, bias, mean, invstd, True)


# ------------------------------------------------------------------------------- channel affine
@njit(parallel=True, cache=True)
def _affine_fwd(x, scale, shift, y):
    n, c, m = x.shape
    for t in prange(n * c):
        b, ch = t // c, t % c
        a, d = scale[ch], shift[ch]
        for i in range(m):
            y[b, ch, i] = x[b, ch, i] * a + d


@njit(parallel=True, cache=True, fastmath={"reassoc"})
def _affine_bwd(g, x, scale, gx, gs, gb):
    """gx = g * scale; per channel gs = sum g x, gb = sum g (float64 sums, vectorised as in _bn_bwd)."""
    n, c, m = x.shape
    for ch in prange(c):
        a = scale[ch]
        s = 0.0
        sx = 0.0
        for b in range(n):
            for i in range(m):
                gi = g[b, ch, i]
                gx[b, ch, i] = gi * a
                s += gi
                sx += gi * x[b, ch, i]
        gb[ch] = s
        gs[ch] = sx


@serialized
def channel_affine_forward(x, scale, shift):
    """y = x * scale[c] + shift[c] per channel of (N, C, ...) input, one parallel pass (eval batch norm)."""
    x3 = _bn_view(x)
    y = np.empty(x3.shape, dtype=x.dtype)
    _affine_fwd(x3, np.ascontiguousarray(scale, dtype=x.dtype), np.ascontiguousarray(shift, dtype=x.dtype), y)
    return y.reshape(x.shape)


@serialized
def channel_affine_backward(g, x, scale):
    """-> (gx, gscale, gshift): gx = g * scale[c], gscale = sum g x, gshift = sum g per channel."""
    x3, g3 = _bn_view(x), _bn_view(g)
    c = x.shape[1]
    gx = np.empty(x3.shape, dtype=x.dtype)
    gs, gb = np.empty(c, x.dtype), np.empty(c, x.dtype)
    _affine_bwd(g3, x3, np.ascontiguousarray(scale, dtype=x.dtype), gx, gs, gb)
    return gx.reshape(x.shape), gs, gb


# ------------------------------------------------------------------------------------------ adam
@njit(parallel=True, cache=True)
def _adam(p, g, m, v, vmax, c, maximize, decay_mode, amsgrad):
    """One fused pass of Adam over flat arrays; c holds the constants in p's dtype (see adam_step);
    decay_mode 0: no weight decay, 1: g += wd p (Adam), 2: p *= 1 - lr wd (AdamW)."""
    decay, wd, one_m_b1, b2 = c[0], c[1], c[2], c[3]
    one_m_b2, bc2_sqrt, eps, step_size = c[4], c[5], c[6], c[7]
    for i in prange(p.size):
        gi = -g[i] if maximize else g[i]
        if decay_mode == 2:
            p[i] *= decay
        elif decay_mode == 1:
            gi = gi + wd * p[i]
        mi = m[i] + (gi - m[i]) * one_m_b1  # = b1 m + (1 - b1) g
        m[i] = mi
        vi = v[i] * b2 + (gi * one_m_b2) * gi
        v[i] = vi
        if amsgrad:
            a = vmax[i]
            vi = a if (a > vi) | (a != a) else vi  # np.maximum: NaN wins
            vmax[i] = vi
        p[i] -= (mi / (np.sqrt(vi) / bc2_sqrt + eps)) * step_size


@serialized
def adam_step(p, g, m, v, vmax, *, lr, beta1, beta2, eps, weight_decay, step, maximize=False,
              decoupled=False, amsgrad=False) -> None:
    """Adam / AdamW update of ``p``, ``m``, ``v`` (and ``vmax`` with amsgrad) in place, in one parallel pass.

    The same float operations in the same order as the NumPy code in ``optim/adam.py`` (constants rounded
    to p's dtype first, as NumPy does with Python scalars), so both give identical bits. All arrays are
    C-contiguous and of p's dtype; ``vmax`` may be None without amsgrad.
    Example: ``adam_step(p, g, m, v, None, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0,
    step=1)``
    """
    c = np.array([1 - lr * weight_decay, weight_decay, 1 - beta1, beta2, 1 - beta2,
                  math.sqrt(1 - beta2**step), eps, lr / (1 - beta1**step)], dtype=p.dtype)
    vmax = v if vmax is None else vmax
    decay_mode = 0 if weight_decay == 0 else (2 if decoupled else 1)
    _adam(p.reshape(-1), g.reshape(-1), m.reshape(-1), v.reshape(-1), vmax.reshape(-1), c,
          bool(maximize), decay_mode, bool(amsgrad))


# -------------------------------------------------------------------------------- 3-D (volumes, NCDHW)
# conv3d_* / max_pool3d_* / avg_pool3d_*: the 2-D interface with one more axis (issue 13), in
# cpu_conv3d.py (convs; pools from cpu_plain3d.py).
# NOTE: imported last (that module does not import this one).
from .cpu_conv3d import (  # noqa: E402, F401
    conv3d_backward_input,
    conv3d_backward_weight,
    conv3d_forward,
)
from .cpu_plain3d import (  # noqa: E402, F401
    avg_pool3d_backward,
    avg_pool3d_forward,
)
from .cpu_plain3d import max_pool3d_backward as _plain_max_pool3d_backward  # noqa: E402
from .cpu_plain3d import max_pool3d_forward as _plain_max_pool3d_forward  # noqa: E402


@njit(parallel=True, cache=True)
def _max_pool3d_fwd_2x2x2(x, y, idx):
    """2x2x2 windows, stride 2, no padding, in two passes per volume (as the 2-D kernel): the max of each
    horizontal pair of every row (one flat loop), then per output row the vertical pairs of the front and
    the back depth and the max of those two. idx = 4 a + 2 u + v (depth, row, column inside the window);
    the pairwise order keeps the generic loop's rule (the first maximum wins, a NaN beats everything).

    # NOTE: the generic loop (cpu_plain3d) ran SmallCNN3D's 16 x 28^3 pool at batch 32 in ~50 ms (0.9 GB/s);
    # see benchmarks/NOTES.md section 10b for this one.
    """
    n, c, d, h, w = x.shape
    do, ho, wo = y.shape[2], y.shape[3], y.shape[4]
    planes = n * c
    xf = x.reshape(planes * d * h * w)
    yf = y.reshape(planes * do * ho * wo)
    idf = idx.reshape(planes * do * ho * wo)
    nchunks = min(planes, 64)
    for chunk in prange(nchunks):
        hm = np.empty(2 * do * 2 * ho * wo, dtype=x.dtype)  # pass 1: max of each horizontal pair
        hb = np.empty(2 * do * 2 * ho * wo, dtype=np.int32)  # 0 left, 1 right
        for t in range(chunk * planes // nchunks, (chunk + 1) * planes // nchunks):
            base = t * d * h * w
            if w == 2 * wo and h == 2 * ho:  # the rows used lie end to end: one flat loop
                _max_pairs(xf, base, hm, hb, 0, 2 * do * 2 * ho * wo)
            else:
                for z in range(2 * do):
                    for r in range(2 * ho):
                        _max_pairs(xf, base + (z * h + r) * w, hm, hb, (z * 2 * ho + r) * wo, wo)
            out = t * do * ho * wo
            for z in range(do):
                for i in range(ho):
                    front = (2 * z * 2 * ho + 2 * i) * wo  # pair rows (2z, 2i) and (2z, 2i + 1)
                    back = ((2 * z + 1) * 2 * ho + 2 * i) * wo  # (2z + 1, 2i) and (2z + 1, 2i + 1)
                    o = out + (z * ho + i) * wo
                    for j in range(wo):
                        a, b = hm[front + j], hm[front + wo + j]
                        take = (b > a) | ((b != b) & (a == a))
                        f = b if take else a
                        fi = (2 + hb[front + wo + j]) if take else hb[front + j]
                        a, b = hm[back + j], hm[back + wo + j]
                        take = (b > a) | ((b != b) & (a == a))
                        g = b if take else a
                        gi = (6 + hb[back + wo + j]) if take else (4 + hb[back + j])
                        take = (g > f) | ((g != g) & (f == f))
                        yf[o + j] = g if take else f
                        idf[o + j] = gi if take else fi


@njit(parallel=True, cache=True)
def _max_pool3d_bwd_2x2x2(gy, idx, gx):
    """gx[z, i, j] = gy[z//2, i//2, j//2] where that window's argmax is (z%2, i%2, j%2), else 0: the
    windows do not overlap, so each input voxel is written once (no zeroing pass, no scatter)."""
    n, c, d, h, w = gx.shape
    do, ho, wo = gy.shape[2], gy.shape[3], gy.shape[4]
    for t in prange(n * c):
        b, ch = t // c, t % c
        for zi in range(d):
            for hi in range(h):
                row = gx[b, ch, zi, hi]
                if zi >= 2 * do or hi >= 2 * ho:  # a trailing odd depth / row no window covers
                    row[:] = 0
                    continue
                k0 = 4 * (zi % 2) + 2 * (hi % 2)
                _route_pairs(row, gy[b, ch, zi // 2, hi // 2], idx[b, ch, zi // 2, hi // 2], k0, wo)


def _is_2x2x2(kernel, stride, padding, dilation):
    return (tuple(kernel) == tuple(stride) == (2, 2, 2) and tuple(padding) == (0, 0, 0)
            and tuple(dilation) == (1, 1, 1))


@serialized
def max_pool3d_forward(x, kernel, stride, padding, dilation=(1, 1, 1)):
    """Max over each window -> (y, idx) (int32 position inside the window); 2x2x2 / stride 2 has its own
    kernel, any other window the plain loop. Example: ``max_pool3d_forward(x, (2,) * 3, (2,) * 3, (0,) * 3)``.
    """
    if not (x.ndim == 5 and _is_2x2x2(kernel, stride, padding, dilation) and min(x.shape[2:]) >= 2):
        return _plain_max_pool3d_forward(x, kernel, stride, padding, dilation)
    x = np.ascontiguousarray(x)
    y = np.empty(x.shape[:2] + tuple(s // 2 for s in x.shape[2:]), dtype=x.dtype)
    idx = np.empty(y.shape, dtype=np.int32)
    _max_pool3d_fwd_2x2x2(x, y, idx)
    return y, idx


@serialized
def max_pool3d_backward(gy, idx, x_shape, kernel, stride, padding, dilation=(1, 1, 1)):
    """Route each output gradient to its window's max: gx[argmax] = gy (2x2x2 windows do not overlap)."""
    if not (len(x_shape) == 5 and _is_2x2x2(kernel, stride, padding, dilation) and min(x_shape[2:]) >= 2):
        return _plain_max_pool3d_backward(gy, idx, x_shape, kernel, stride, padding, dilation)
    gy, idx = np.ascontiguousarray(gy), np.ascontiguousarray(idx, dtype=np.int32)
    gx = np.empty(tuple(x_shape), dtype=gy.dtype)
    _max_pool3d_bwd_2x2x2(gy, idx, gx)
    return gx
