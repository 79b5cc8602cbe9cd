"""CPU convolution kernels: Numba im2col / col2im around one BLAS GEMM per chunk of images (and group).

How a convolution becomes a matrix product (the scheme, for learners)
---------------------------------------------------------------------
For one image ``x[n]`` (C, H, W) and weights ``w`` (O, C, kh, kw), lay every input value that a
kernel tap ``(c, u, v)`` sees at output position ``(i, j)`` into a matrix, "columns":

    cols[(c*kh + u)*kw + v, i*Wo + j] = xpad[c, i*s + u*d, j*s + v*d]      (K = C*kh*kw rows, Ho*Wo columns)

Then the whole convolution of that image is ONE matrix product:

    y[n] (O, Ho*Wo) = w.reshape(O, K) @ cols                               (BLAS sgemm / dgemm)

The backward passes are the same product turned around:

    gw (O, K)      += gy[n] (O, Ho*Wo) @ cols.T          (weight gradient; summed over images)
    gcols (K, HoWo) = w.reshape(O, K).T @ gy[n]           (then col2im adds gcols back into gx[n])

Where the time goes, and what we do about it (measurements: benchmarks/NOTES.md):

* Images are processed in chunks of B, laid side by side: cols is (K, B*Ho*Wo), so each chunk costs ONE
  big GEMM per group (small per-image GEMMs were slower, and ``np.matmul(2-D, 3-D)`` silently leaves
  BLAS). The (O, B, Ho*Wo) result is then copied into the NCHW output.
* The chunk's buffers (~CHUNK_BYTES) are scratch arrays kept between calls (``scratch``): a fresh
  allocation over ~32 MB costs tens of milliseconds, because glibc hands large blocks back to the OS.
* im2col / col2im are pure memory traffic (K times the input size), as costly as the GEMM if written
  naively. They are Numba loops, parallel over (image, channel) planes, whose inner loop is a
  contiguous run (the padding is handled by computing the valid range of ``j`` once per row).
* Stride 1 (most layers) uses "wide rows" (see ``_im2col_wide``): one memcpy per tap and plane.
* Stride-1 backward-data is either GEMM + wide col2im, or a plain forward conv of ``gy`` with the
  flipped, transposed weights, whichever gives BLAS the better-shaped product.
* The weight gradient's GEMM is computed in the orientation that makes the larger side its M.
* Grouped convolutions with very few channels per group (depthwise ones, ``C_in/groups`` small) would
  make many tiny GEMMs, so they use direct Numba loops instead (``_direct_*``).

Every function here takes and returns NCHW float32/float64 arrays and returns fresh arrays; only the
scratch buffers are reused. The ground truth is ``kernels/reference.py``.
"""

from __future__ import annotations

import functools
import inspect
import os
import threading

import numba
import numpy as np
from numba import njit, prange

from .reference import out_size

# images per chunk are chosen so that one chunk's columns take about this many bytes (fits in L3)
CHUNK_BYTES = 24 << 20
# grouped convs with fewer input channels per group than this use the direct loops, not GEMMs
DIRECT_MAX_CG = 4

_local = threading.local()

# NOTE: Numba's default "omp" threading layer (GNU OpenMP) leaves its threads spinning after each
# parallel loop; OpenBLAS's threads do the same after each GEMM. We alternate between the two dozens of
# times per convolution, so on a 2-core machine the spinners starved each other: with 2 threads convs
# ran 3-5x slower than with 1. The "workqueue" layer's threads sleep between loops (measured: 2-5x faster
# here). It is process-wide and must be chosen before the first parallel kernel runs, so we choose it on
# import unless the user already did (NUMBA_THREADING_LAYER). workqueue aborts the process when two Python
# threads launch parallel kernels at the same time, hence the lock below.
if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "workqueue"

# Serialises the public kernels across Python threads (re-entrant: backward-input may call forward), so
# that a second thread waits instead of making workqueue abort the process.
PARALLEL_LOCK = threading.RLock()


def serialized(fn):
    """Decorator: run ``fn`` under PARALLEL_LOCK (one parallel Numba kernel at a time in the process)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with PARALLEL_LOCK:
            return fn(*args, **kwargs)

    return wrapper


def serial_copies_around_blas(weight_shape):
    """Decorator for a GEMM-based conv kernel: its Numba copy loops (im2col, col2im, ...) run on the calling
    thread only, unless ``weight_shape(bound_args)`` and ``groups`` select the direct (BLAS-free) loops.

    # NOTE: after each GEMM OpenBLAS's worker threads keep spinning for a while (its THREAD_TIMEOUT), and
    # the im2col/col2im that follow every GEMM then fought them for the 2 cores: a SmallCNN training step
    # (batch 128, Numba and BLAS on 2 threads, idle machine) took 0.87-0.92 s; with the copies on one
    # thread 0.60-0.62 s (benchmarks/NOTES.md, "In-step conv slowdown").
    """

    def deco(fn):
        sig = inspect.signature(fn)

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            threads = numba.get_num_threads()
            if threads > 1:
                bound = sig.bind(*args, **kwargs).arguments
                if not _use_direct(bound["groups"], weight_shape(bound)[1]):
                    numba.set_num_threads(1)
                    try:
                        return fn(*args, **kwargs)
                    finally:
                        numba.set_num_threads(threads)
            return fn(*args, **kwargs)

        return wrapper

    return deco


def scratch(name: str, shape: tuple, dtype) -> np.ndarray:
    """A reusable, uninitialised scratch array of ``shape`` (grown on demand, kept between calls).

    # NOTE: the array is overwritten by the next call asking for the same ``name``; never return it.
    """
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape)) * dtype.itemsize
    bufs = getattr(_local, "bufs", None)
    if bufs is None:
        bufs = _local.bufs = {}
    buf = bufs.get(name)
    if buf is None or buf.nbytes < nbytes:
        buf = bufs[name] = np.empty(max(nbytes, 64), dtype=np.uint8)
    return buf[:nbytes].view(dtype).reshape(shape)


# -------------------------------------------------------------------------------------- helpers
@njit(cache=True, inline="always")
def _valid_range(off, stride, size, n_out):
    """Output indices j in [lo, hi) whose input index j*stride + off lies inside [0, size)."""
    lo = 0 if off >= 0 else (-off + stride - 1) // stride
    hi = (size - off + stride - 1) // stride if size - off > 0 else 0
    hi = min(hi, n_out)
    lo = min(lo, hi)
    return lo, hi


@njit(parallel=True, cache=True)
def _im2col(x, n0, nb, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo, cols):
    """cols[(c*kh + u)*kw + v, b, i*wo + j] = xpad[n0 + b, c, i*sh + u*dh, j*sw + v*dw] (0 in the padding)."""
    c, h, wd = x.shape[1], x.shape[2], x.shape[3]
    for t in prange(nb * c):
        b, ch = t // c, t % c
        xi = x[n0 + b, ch]
        for u in range(kh):
            for v in range(kw):
                dst = cols[(ch * kh + u) * kw + v, b]
                off = v * dw - pw
                jlo, jhi = _valid_range(off, sw, wd, wo)
                for i in range(ho):
                    hi = i * sh - ph + u * dh
                    base = i * wo
                    if hi < 0 or hi >= h:
                        for j in range(wo):
                            dst[base + j] = 0
                        continue
                    for j in range(jlo):
                        dst[base + j] = 0
                    row = xi[hi]
                    for j in range(jlo, jhi):
                        dst[base + j] = row[j * sw + off]
                    for j in range(jhi, wo):
                        dst[base + j] = 0


@njit(parallel=True, cache=True)
def _col2im(gcols, n0, nb, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo, gx):
    """gx[n0 + b, c] = sum over taps (u, v) of gcols scattered back (the adjoint of _im2col)."""
    c, h, wd = gx.shape[1], gx.shape[2], gx.shape[3]
    for t in prange(nb * c):
        b, ch = t // c, t % c
        dst = gx[n0 + b, ch]
        dst[:, :] = 0
        for u in range(kh):
            for v in range(kw):
                src = gcols[(ch * kh + u) * kw + v, b]
                off = v * dw - pw
                jlo, jhi = _valid_range(off, sw, wd, wo)
                for i in range(ho):
                    hi = i * sh - ph + u * dh
                    if hi < 0 or hi >= h:
                        continue
                    row = dst[hi]
                    base = i * wo
                    for j in range(jlo, jhi):
                        row[j * sw + off] += src[base + j]


# --------------------------------------------------------------- direct loops (depthwise-like)
@njit(parallel=True, cache=True)
def _direct_forward(x, w, sh, sw, ph, pw, dh, dw, groups, y):
    n, h, wd = x.shape[0], x.shape[2], x.shape[3]
    o, cg, kh, kw = w.shape
    ho, wo = y.shape[2], y.shape[3]
    og = o // groups
    for t in prange(n * o):
        b, oc = t // o, t % o
        g = oc // og
        out = y[b, oc]
        out[:, :] = 0
        for ci in range(cg):
            xi = x[b, g * cg + ci]
            for u in range(kh):
                for v in range(kw):
                    wv = w[oc, ci, u, v]
                    off = v * dw - pw
                    jlo, jhi = _valid_range(off, sw, wd, wo)
                    for i in range(ho):
                        hi = i * sh - ph + u * dh
                        if hi < 0 or hi >= h:
                            continue
                        row = xi[hi]
                        orow = out[i]
                        for j in range(jlo, jhi):
                            orow[j] += wv * row[j * sw + off]


@njit(parallel=True, cache=True)
def _direct_backward_input(gy, w, sh, sw, ph, pw, dh, dw, groups, gx):
    n, c, h, wd = gx.shape
    o, cg, kh, kw = w.shape
    ho, wo = gy.shape[2], gy.shape[3]
    og = o // groups
    for t in prange(n * c):
        b, ch = t // c, t % c
        g, ci = ch // cg, ch % cg
        dst = gx[b, ch]
        dst[:, :] = 0
        for oc in range(g * og, (g + 1) * og):
            gi = gy[b, oc]
            for u in range(kh):
                for v in range(kw):
                    wv = w[oc, ci, u, v]
                    off = v * dw - pw
                    jlo, jhi = _valid_range(off, sw, wd, wo)
                    for i in range(ho):
                        hi = i * sh - ph + u * dh
                        if hi < 0 or hi >= h:
                            continue
                        row = dst[hi]
                        grow = gi[i]
                        for j in range(jlo, jhi):
                            row[j * sw + off] += wv * grow[j]


@njit(parallel=True, cache=True)
def _direct_backward_weight(gy, x, sh, sw, ph, pw, dh, dw, groups, gw):
    n, h, wd = x.shape[0], x.shape[2], x.shape[3]
    o, cg, kh, kw = gw.shape
    ho, wo = gy.shape[2], gy.shape[3]
    og = o // groups
    for t in prange(o * cg):
        oc, ci = t // cg, t % cg
        g = oc // og
        for u in range(kh):
            for v in range(kw):
                off = v * dw - pw
                jlo, jhi = _valid_range(off, sw, wd, wo)
                acc = 0.0  # float64 accumulator: sums run over N*Ho*Wo terms
                for b in range(n):
                    xi = x[b, g * cg + ci]
                    gi = gy[b, oc]
                    for i in range(ho):
                        hi = i * sh - ph + u * dh
                        if hi < 0 or hi >= h:
                            continue
                        row = xi[hi]
                        grow = gi[i]
                        for j in range(jlo, jhi):
                            acc += grow[j] * row[j * sw + off]
                gw[oc, ci, u, v] = acc


# ------------------------------------------------- stride-1 "wide rows" scheme (long contiguous copies)
# For stride 1, pad each input plane once into a flat buffer of Hp*Wp values. If we compute the output on
# a grid of Ho rows x Wp columns (the last Wp - Wo columns of each row are junk and get dropped), the
# column row of tap (c, u, v) is ONE contiguous run of the padded plane: xpad_flat[c, u*d*Wp + v*d :][:Ho*Wp].
# im2col becomes kh*kw memcpys per plane instead of Ho*kh*kw short row copies with padding checks (~4x
# faster), at the price of (Wp - Wo) / Wo extra GEMM columns (7% at 28x28): used when that is small.
@njit(parallel=True, cache=True)
def _im2col_wide(x, n0, nb, kh, kw, ph, pw, dh, dw, xp, cols):
    """Pad each plane of x[n0:n0+nb] into xp[b, c] (flat, row length wp = W + 2 pw, zeros after the end),
    then cols[(c*kh + u)*kw + v, b, q] = xp[b, c, u*dh*wp + v*dw + q] for q < Ho*wp: one copy per tap."""
    c, h, wd = x.shape[1], x.shape[2], x.shape[3]
    wp = wd + 2 * pw
    length = cols.shape[2]
    for t in prange(nb * c):
        b, ch = t // c, t % c
        plane = xp[b, ch]
        plane[:] = 0
        src = x[n0 + b, ch]
        for i in range(h):
            start = (i + ph) * wp + pw
            plane[start : start + wd] = src[i]
        for u in range(kh):
            for v in range(kw):
                off = u * dh * wp + v * dw
                cols[(ch * kh + u) * kw + v, b, :] = plane[off : off + length]


@njit(parallel=True, cache=True)
def _col2im_wide(gcols, n0, nb, kh, kw, ph, pw, dh, dw, xp, gx):
    """The adjoint of _im2col_wide: add each tap's run back into a zeroed padded plane, then crop it
    into gx[n0 + b, c]. Needs zeros in the junk columns of gcols (guaranteed by zero gy there)."""
    c, h, wd = gx.shape[1], gx.shape[2], gx.shape[3]
    wp = wd + 2 * pw
    length = gcols.shape[2]
    for t in prange(nb * c):
        b, ch = t // c, t % c
        plane = xp[b, ch]
        plane[:] = 0
        for u in range(kh):
            for v in range(kw):
                off = u * dh * wp + v * dw
                plane[off : off + length] += gcols[(ch * kh + u) * kw + v, b, :]
        dst = gx[n0 + b, ch]
        for i in range(h):
            start = (i + ph) * wp + pw
            dst[i, :] = plane[start : start + wd]


@njit(parallel=True, cache=True)
def _unwiden(yw, n0, nb, wp, y):
    """y[n0 + b, o, i, j] = yw[o, b, i*wp + j] for j < Wo (drop the junk columns)."""
    o, ho, wo = y.shape[1], y.shape[2], y.shape[3]
    for t in prange(nb * o):
        b, oc = t // o, t % o
        src = yw[oc, b]
        dst = y[n0 + b, oc]
        for i in range(ho):
            dst[i, :] = src[i * wp : i * wp + wo]


@njit(parallel=True, cache=True)
def _widen(gy, n0, nb, wp, gyw):
    """gyw[o, b, i*wp + j] = gy[n0 + b, o, i, j], and 0 in the junk columns j >= Wo."""
    o, ho, wo = gy.shape[1], gy.shape[2], gy.shape[3]
    for t in prange(nb * o):
        b, oc = t // o, t % o
        src = gy[n0 + b, oc]
        dst = gyw[oc, b]
        for i in range(ho):
            dst[i * wp : i * wp + wo] = src[i]
            dst[i * wp + wo : (i + 1) * wp] = 0


# ------------------------------------------------------------------------------ public functions
def _prep(a, dtype=None):
    a = np.ascontiguousarray(a)
    return a if dtype is None or a.dtype == dtype else a.astype(dtype)


def _geometry(x_shape, w_shape, stride, padding, dilation, groups):
    n, c, h, wd = x_shape
    o, cg, kh, kw = w_shape
    if c != cg * groups or o % groups:
        raise ValueError(
            f"conv2d: input channels {c} and weight shape {tuple(w_shape)} do not match groups={groups}"
        )
    ho = out_size(h, kh, stride[0], padding[0], dilation[0])
    wo = out_size(wd, kw, stride[1], padding[1], dilation[1])
    if ho <= 0 or wo <= 0:
        raise ValueError(f"conv2d: output size ({ho}, {wo}) is empty for input {tuple(x_shape)}, kernel "
                         f"{(kh, kw)}, stride {tuple(stride)}, padding {tuple(padding)}, "
                         f"dilation {tuple(dilation)}")
    return n, c, h, wd, o, cg, kh, kw, ho, wo


def _chunk(n, per_image_bytes):
    return max(1, min(n, CHUNK_BYTES // max(per_image_bytes, 1)))


def _use_direct(groups, cg):
    return groups > 1 and cg < DIRECT_MAX_CG


def _use_wide(stride, padding, dilation, kw, wo):
    """Stride 1 and at most 15% junk columns: each row has Wp - Wo = (kw - 1) * d junk values."""
    return tuple(stride) == (1, 1) and 20 * (kw - 1) * dilation[1] <= 3 * wo


def _side_by_side(a, n0, b, buf):
    """buf (R, nb, P) <- a[n0:n0+b] (N, R, P): images side by side, so one GEMM covers the chunk."""
    buf[:, :b] = a[n0 : n0 + b].transpose(1, 0, 2)
    part = buf[:, :b] if b == buf.shape[1] else np.ascontiguousarray(buf[:, :b])
    return part.reshape(buf.shape[0], -1)


def _accumulate_gw(gw, gy2, cols2, og, kg, groups, part_name):
    """gw[g] (og, Kg) += gy_g (og, L) @ cols_g (Kg, L).T for each group, one GEMM each.

    # NOTE: we let the larger of og, Kg be the GEMM's M: OpenBLAS on 2 threads ran the small-M form of
    # this long-K product up to ~10x slower.
    """
    part = scratch(part_name, (max(og, kg), min(og, kg)), gw.dtype)
    for g in range(groups):
        a, c = gy2[g * og : (g + 1) * og], cols2[g * kg : (g + 1) * kg]
        if kg >= og:
            np.matmul(c, a.T, out=part)
            gw[g * og : (g + 1) * og] += part.T
        else:
            np.matmul(a, c.T, out=part)
            gw[g * og : (g + 1) * og] += part


def _flip_transpose(w, groups):
    """The weights of the transposed conv: w'[g*cg + c, o, u, v] = w[g*og + o, c, kh-1-u, kw-1-v]."""
    o, cg, kh, kw = w.shape
    wg = w.reshape(groups, o // groups, cg, kh, kw).transpose(0, 2, 1, 3, 4)[:, :, :, ::-1, ::-1]
    return np.ascontiguousarray(wg).reshape(groups * cg, o // groups, kh, kw)


@serialized
@serial_copies_around_blas(lambda b: b["w"].shape)
def conv2d_forward(x, w, stride, padding, dilation, groups):
    """y = conv2d(x, w) (no bias), NCHW. Example: ``conv2d_forward(x, w, (1, 1), (1, 1), (1, 1), 1)``."""
    x = _prep(x)
    w = _prep(w, x.dtype)
    n, c, h, wd, o, cg, kh, kw, ho, wo = _geometry(x.shape, w.shape, stride, padding, dilation, groups)
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    y = np.empty((n, o, ho, wo), dtype=x.dtype)
    if _use_direct(groups, cg):
        _direct_forward(x, w, sh, sw, ph, pw, dh, dw, groups, y)
        return y
    k, og, kg = c * kh * kw, o // groups, cg * kh * kw
    wm = w.reshape(o, kg)
    if _use_wide(stride, padding, dilation, kw, wo):
        wp = wd + 2 * pw
        p = ho * wp  # columns per image, junk included
        plane = (h + 2 * ph) * wp + (kw - 1) * dw  # the last tap's run reads past the padded plane
        nb = _chunk(n, (k * p + o * p + c * plane) * x.itemsize)
        xp = scratch("xpad", (nb, c, plane), x.dtype)
    else:
        p = ho * wo
        nb = _chunk(n, (k + o) * p * x.itemsize)
    cols = scratch("cols", (k, nb * p), x.dtype)
    # NOTE: OpenBLAS (2 threads) ran our GEMMs 1.3-8x faster when the output has at least as many rows as
    # columns (measured 7 vs 57 GFLOP/s for 256x441 vs 441x256), so for a wide chunk we compute y.T.
    transposed = o < nb * p
    yw = scratch("wide_out", (nb * p, o) if transposed else (o, nb * p), x.dtype)
    for n0 in range(0, n, nb):
        b = min(nb, n - n0)
        if p == ho * wo:
            _im2col(x, n0, b, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo, cols.reshape(k, nb, p))
        else:
            _im2col_wide(x, n0, b, kh, kw, ph, pw, dh, dw, xp, cols.reshape(k, nb, p))
        for g in range(groups):
            # y_g (og, b*P) = w_g (og, Kg) @ cols_g (Kg, b*P): one GEMM for the whole chunk
            wg, cg_ = wm[g * og : (g + 1) * og], cols[g * kg : (g + 1) * kg, : b * p]
            if transposed:  # y_g.T (b*P, og) = cols_g.T @ w_g.T
                np.matmul(cg_.T, wg.T, out=yw[: b * p, g * og : (g + 1) * og])
            else:
                np.matmul(wg, cg_, out=yw[g * og : (g + 1) * og, : b * p])
        if transposed:  # (b, Ho, Wp, O) -> (b, O, Ho, Wo), dropping the junk columns of the wide grid
            y[n0 : n0 + b] = yw[: b * p].reshape(b, ho, p // ho, o)[:, :, :wo].transpose(0, 3, 1, 2)
        elif p == ho * wo:
            y.reshape(n, o, p)[n0 : n0 + b] = yw[:, : b * p].reshape(o, b, p).transpose(1, 0, 2)
        else:
            _unwiden(yw.reshape(o, nb, p), n0, b, wp, y)
    return y


@serialized
@serial_copies_around_blas(lambda b: b["w"].shape)
def conv2d_backward_input(gy, w, x_shape, stride, padding, dilation, groups):
    """dL/dx of conv2d (= a transposed convolution of ``gy``), NCHW, fresh array of ``x_shape``."""
    gy = _prep(gy)
    w = _prep(w, gy.dtype)
    n, c, h, wd, o, cg, kh, kw, ho, wo = _geometry(x_shape, w.shape, stride, padding, dilation, groups)
    if gy.shape != (n, o, ho, wo):
        raise ValueError(f"conv2d_backward_input: gy has shape {gy.shape}, expected {(n, o, ho, wo)}")
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    if _use_direct(groups, cg):
        gx = np.empty((n, c, h, wd), dtype=gy.dtype)
        _direct_backward_input(gy, w, sh, sw, ph, pw, dh, dw, groups, gx)
        return gx
    k, og, kg = c * kh * kw, o // groups, cg * kh * kw
    wm = w.reshape(o, kg)
    if _use_wide(stride, padding, dilation, kw, wo) and og >= 2 * cg:
        # NOTE: two ways for stride 1, picked by GEMM shape. Here the GEMM is (Kg x og) @ (og x b*P):
        # good when og is large next to cg; the conv with flipped weights below is (cg x og*k*k) @ (...),
        # whose M = cg is too small then (measured: 32->64 @28 159-258 ms here vs 341-366 ms there),
        # but it wins when og ~ cg (64->64 @28: 263-552 ms there vs 1000+ ms here, a shallow K = og GEMM).
        # gcols (K, b*P) = w.T @ gy on the wide grid (junk columns of gy = 0), then add the taps' runs back
        wp = wd + 2 * pw
        p = ho * wp
        plane = (h + 2 * ph) * wp + (kw - 1) * dw
        nb = _chunk(n, (k * p + o * p + c * plane) * gy.itemsize)
        xp = scratch("xpad", (nb, c, plane), gy.dtype)
        gcols = scratch("gcols", (k, nb * p), gy.dtype)
        gyw = scratch("wide_in", (o, nb, p), gy.dtype)
        gx = np.empty((n, c, h, wd), dtype=gy.dtype)
        for n0 in range(0, n, nb):
            b = min(nb, n - n0)
            _widen(gy, n0, b, wp, gyw)
            g2 = gyw.reshape(o, nb * p)
            for g in range(groups):
                np.matmul(wm[g * og : (g + 1) * og].T, g2[g * og : (g + 1) * og, : b * p],
                          out=gcols[g * kg : (g + 1) * kg, : b * p])
            _col2im_wide(gcols.reshape(k, nb, p), n0, b, kh, kw, ph, pw, dh, dw, xp, gx)
        return gx
    qh, qw = dh * (kh - 1) - ph, dw * (kw - 1) - pw
    if (sh, sw) == (1, 1) and qh >= 0 and qw >= 0:
        # stride 1: dx = conv2d(gy, flipped and transposed w, padding d (k - 1) - p): a plain forward conv
        return conv2d_forward(gy, _flip_transpose(w, groups), (1, 1), (qh, qw), dilation, groups)
    gx = np.empty((n, c, h, wd), dtype=gy.dtype)
    p = ho * wo
    gym = gy.reshape(n, o, p)
    nb = _chunk(n, (k + o) * p * gy.itemsize)
    gcols = scratch("gcols", (k, nb * p), gy.dtype)
    gyw = scratch("wide_in", (o, nb, p), gy.dtype)
    for n0 in range(0, n, nb):
        b = min(nb, n - n0)
        g2 = _side_by_side(gym, n0, b, gyw)
        for g in range(groups):
            # gcols_g (Kg, b*P) = w_g.T (Kg, og) @ gy_g (og, b*P)
            np.matmul(wm[g * og : (g + 1) * og].T, g2[g * og : (g + 1) * og],
                      out=gcols[g * kg : (g + 1) * kg, : b * p])
        _col2im(gcols.reshape(k, nb, p), n0, b, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo, gx)
    return gx


@serialized
@serial_copies_around_blas(lambda b: b["w_shape"])
def conv2d_backward_weight(gy, x, w_shape, stride, padding, dilation, groups):
    """dL/dw of conv2d: sum over images of gy[n] @ cols[n].T, fresh array of ``w_shape``."""
    gy = _prep(gy)
    x = _prep(x, gy.dtype)
    n, c, h, wd, o, cg, kh, kw, ho, wo = _geometry(x.shape, w_shape, stride, padding, dilation, groups)
    if gy.shape != (n, o, ho, wo):
        raise ValueError(f"conv2d_backward_weight: gy has shape {gy.shape}, expected {(n, o, ho, wo)}")
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    if _use_direct(groups, cg):
        gw = np.empty(w_shape, dtype=gy.dtype)
        _direct_backward_weight(gy, x, sh, sw, ph, pw, dh, dw, groups, gw)
        return gw
    k, og, kg = c * kh * kw, o // groups, cg * kh * kw
    gw = np.zeros((o, kg), dtype=gy.dtype)
    wide = _use_wide(stride, padding, dilation, kw, wo)
    if wide:
        wp = wd + 2 * pw
        p = ho * wp
        plane = (h + 2 * ph) * wp + (kw - 1) * dw
        nb = _chunk(n, (k * p + o * p + c * plane) * gy.itemsize)
        xp = scratch("xpad", (nb, c, plane), gy.dtype)
    else:
        p = ho * wo
        nb = _chunk(n, (k + o) * p * gy.itemsize)
    cols = scratch("cols", (k, nb * p), gy.dtype)
    gyw = scratch("wide_in", (o, nb, p), gy.dtype)
    for n0 in range(0, n, nb):
        b = min(nb, n - n0)
        if wide:
            _im2col_wide(x, n0, b, kh, kw, ph, pw, dh, dw, xp, cols.reshape(k, nb, p))
            _widen(gy, n0, b, wp, gyw)  # junk columns get gy = 0, so they add nothing
            g2 = gyw.reshape(o, nb * p) if b == nb else np.ascontiguousarray(gyw[:, :b]).reshape(o, -1)
        else:
            _im2col(x, n0, b, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo, cols.reshape(k, nb, p))
            g2 = _side_by_side(gy.reshape(n, o, p), n0, b, gyw)
        # gw_g (og, Kg) += gy_g (og, b*P) @ cols_g (Kg, b*P).T
        _accumulate_gw(gw, g2, cols[:, : b * p], og, kg, groups, "gw_part")
    return gw.reshape(w_shape)
