"""CPU convolution kernels: Numba im2col / col2im around one BLAS GEMM per image (and per group).

How a convolution becomes a matrix product (the scheme, for learners)
---------------------------------------------------------------------
For one image ``x[n]`` (C, H, W) and weights ``w`` (O, C, kh, kw), lay every input value that a
kernel tap ``(c, u, v)`` sees at output position ``(i, j)`` into a matrix, "columns":

    cols[(c*kh + u)*kw + v, i*Wo + j] = xpad[c, i*s + u*d, j*s + v*d]      (K = C*kh*kw rows, Ho*Wo columns)

Then the whole convolution of that image is ONE matrix product, and it lands directly in NCHW order:

    y[n] (O, Ho*Wo) = w.reshape(O, K) @ cols                               (BLAS sgemm / dgemm)

The backward passes are the same product turned around:

    gw (O, K)      += gy[n] (O, Ho*Wo) @ cols.T          (weight gradient; summed over images)
    gcols (K, HoWo) = w.reshape(O, K).T @ gy[n]           (then col2im scatters gcols back into gx[n])

Where the time goes, and what we do about it:

* im2col / col2im are pure memory traffic (K times the input size), as costly as the GEMM if written
  naively with NumPy slicing. Here they are Numba loops, parallel over (image, channel) planes, whose
  inner loop is a contiguous run of one image row (the padding is handled by computing the valid
  range of ``j`` once, not by an ``if`` per element).
* We never im2col the whole batch at once: images are processed in chunks of ``B`` so that the column
  buffer (B x K x Ho*Wo) stays in the last-level cache while the GEMM reads it. The buffer is a scratch
  array kept between calls: a fresh allocation over ~32 MB costs tens of milliseconds because glibc
  hands large blocks back to the OS every time.
* A 1x1 convolution with stride 1 and no padding needs no im2col at all (``cols`` is ``x[n]`` itself).
* ``np.matmul`` on stacks (B, K, HoWo) calls BLAS once per image; one Python call per chunk.
* Grouped convolutions with very few channels per group (depthwise ones, ``C_in/groups`` small) would
  make many tiny GEMMs, so they use a direct Numba loop instead (``_direct_*``).

Every function here takes and returns NCHW float32/float64 arrays and returns fresh arrays; only the
scratch buffers are reused. The ground truth is ``kernels/reference.py``.
"""

from __future__ import annotations

import threading

import numpy as np
from numba import njit, prange

from .reference import out_size

# images per chunk are chosen so that one chunk's columns take about this many bytes (fits in L3)
CHUNK_BYTES = 24 << 20
# grouped convs with fewer input channels per group than this use the direct loops, not GEMMs
DIRECT_MAX_CG = 4

_local = threading.local()


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


def _is_pointwise(kh, kw, stride, padding, groups):
    return kh == kw == 1 and tuple(stride) == (1, 1) and tuple(padding) == (0, 0) and groups == 1


def _gemm_each(a, b, out):
    """out[i] = a @ b[i] for each i, one BLAS call each.

    # NOTE: ``np.matmul(a, b)`` with a 2-D ``a`` and a 3-D ``b`` broadcasts ``a`` with stride 0, which
    # NumPy cannot hand to BLAS: it falls back to a naive loop ~30x slower. So we loop in Python.
    """
    for i in range(b.shape[0]):
        np.matmul(a, b[i], out=out[i])


def _chunk(n, per_image_bytes):
    return max(1, min(n, CHUNK_BYTES // max(per_image_bytes, 1)))


def _to_wide(a, n0, b, buf):
    """buf (R, b, P) <- a[n0:n0+b] (N, R, P): images side by side, so one GEMM covers the chunk."""
    buf[:, :b] = a[n0 : n0 + b].transpose(1, 0, 2)
    part = buf[:, :b] if b == buf.shape[1] else np.ascontiguousarray(buf[:, :b])
    return part.reshape(buf.shape[0], -1)


def conv2d_forward(x, w, stride, padding, dilation, groups):
    """y = conv2d(x, w) (no bias), NCHW. Example: ``conv2d_forward(x, w, (1, 1), (1, 1), (1, 1), 1)``."""
    x = _prep(x)
    w = _prep(w, x.dtype)
    n, c, h, wd, o, cg, kh, kw, ho, wo = _geometry(x.shape, w.shape, stride, padding, dilation, groups)
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    y = np.empty((n, o, ho, wo), dtype=x.dtype)
    if groups > 1 and cg < DIRECT_MAX_CG:
        _direct_forward(x, w, sh, sw, ph, pw, dh, dw, groups, y)
        return y
    k, og, kg, p = c * kh * kw, o // groups, cg * kh * kw, ho * wo
    wm = w.reshape(o, kg)
    ym = y.reshape(n, o, p)
    nb = _chunk(n, (k + o) * p * x.itemsize)
    cols = scratch("cols", (k, nb * p), x.dtype)
    yw = scratch("wide_out", (o, nb * p), x.dtype)
    for n0 in range(0, n, nb):
        b = min(nb, n - n0)
        _im2col(x, n0, b, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo, cols.reshape(k, nb, p))
        for g in range(groups):
            # y_g (og, b*P) = w_g (og, Kg) @ cols_g (Kg, b*P): one GEMM for the whole chunk
            np.matmul(wm[g * og : (g + 1) * og], cols[g * kg : (g + 1) * kg, : b * p],
                      out=yw[g * og : (g + 1) * og, : b * p])
        ym[n0 : n0 + b] = yw[:, : b * p].reshape(o, b, p).transpose(1, 0, 2)
    return y


def conv2d_backward_input(gy, w, x_shape, stride, padding, dilation, groups):
    """dL/dx of conv2d (= a transposed convolution of ``gy``), NCHW, fresh array of ``x_shape``."""
    gy = _prep(gy)
    w = _prep(w, gy.dtype)
    n, c, h, wd, o, cg, kh, kw, ho, wo = _geometry(x_shape, w.shape, stride, padding, dilation, groups)
    if gy.shape != (n, o, ho, wo):
        raise ValueError(f"conv2d_backward_input: gy has shape {gy.shape}, expected {(n, o, ho, wo)}")
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    gx = np.empty((n, c, h, wd), dtype=gy.dtype)
    if groups > 1 and cg < DIRECT_MAX_CG:
        _direct_backward_input(gy, w, sh, sw, ph, pw, dh, dw, groups, gx)
        return gx
    k, og, kg, p = c * kh * kw, o // groups, cg * kh * kw, ho * wo
    wm = w.reshape(o, kg)
    gym = gy.reshape(n, o, p)
    nb = _chunk(n, (k + o) * p * gy.itemsize)
    gcols = scratch("gcols", (k, nb * p), gy.dtype)
    gyw = scratch("wide_in", (o, nb, p), gy.dtype)
    for n0 in range(0, n, nb):
        b = min(nb, n - n0)
        g2 = _to_wide(gym, n0, b, gyw)
        for g in range(groups):
            # gcols_g (Kg, b*P) = w_g.T (Kg, og) @ gy_g (og, b*P)
            np.matmul(wm[g * og : (g + 1) * og].T, g2[g * og : (g + 1) * og],
                      out=gcols[g * kg : (g + 1) * kg, : b * p])
        _col2im(gcols.reshape(k, nb, p), n0, b, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo, gx)
    return gx


def conv2d_backward_weight(gy, x, w_shape, stride, padding, dilation, groups):
    """dL/dw of conv2d: sum over images of gy[n] @ cols[n].T, fresh array of ``w_shape``."""
    gy = _prep(gy)
    x = _prep(x, gy.dtype)
    n, c, h, wd, o, cg, kh, kw, ho, wo = _geometry(x.shape, w_shape, stride, padding, dilation, groups)
    if gy.shape != (n, o, ho, wo):
        raise ValueError(f"conv2d_backward_weight: gy has shape {gy.shape}, expected {(n, o, ho, wo)}")
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    if groups > 1 and cg < DIRECT_MAX_CG:
        gw = np.empty(w_shape, dtype=gy.dtype)
        _direct_backward_weight(gy, x, sh, sw, ph, pw, dh, dw, groups, gw)
        return gw
    k, og, kg, p = c * kh * kw, o // groups, cg * kh * kw, ho * wo
    gym = gy.reshape(n, o, p)
    gw = np.zeros((o, kg), dtype=gy.dtype)
    part = scratch("gw_part", (kg, og), gy.dtype)
    nb = _chunk(n, (k + o) * p * gy.itemsize)
    cols = scratch("cols", (k, nb * p), gy.dtype)
    gyw = scratch("wide_in", (o, nb, p), gy.dtype)
    for n0 in range(0, n, nb):
        b = min(nb, n - n0)
        g2 = _to_wide(gym, n0, b, gyw)
        _im2col(x, n0, b, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo, cols.reshape(k, nb, p))
        for g in range(groups):
            # gw_g (og, Kg) += gy_g (og, b*P) @ cols_g (Kg, b*P).T, computed transposed:
            # NOTE: OpenBLAS on 2 threads was ~10x slower on the (og x Kg, long-K) form than on its transpose
            np.matmul(cols[g * kg : (g + 1) * kg, : b * p], g2[g * og : (g + 1) * og].T, out=part)
            gw[g * og : (g + 1) * og] += part.T
    return gw.reshape(w_shape)
