"""Tier 2, 3-D: the fast CPU convolution of volumes (NCDHW): Numba vol2col / col2vol around BLAS GEMMs.

The 2-D scheme of ``cpu_conv.py`` with one more axis; read that file's docstring first. For one image
``x[n]`` (C, D, H, W) and weights ``w`` (O, C, kd, kh, kw), the "columns" of a slab of output depths
``z0 .. z0 + nz`` are

    cols[((c*kd + a)*kh + u)*kw + v, (t*Ho + i)*Wo + j] = xpad[c, (z0+t)*s + a*d, i*s + u*d, j*s + v*d]

(K = C*kd*kh*kw rows), and the whole slab of the output is ONE matrix product,
``y[n, :, z0:z0+nz] (O, nz*Ho*Wo) = w.reshape(O, K) @ cols`` (BLAS sgemm / dgemm). The backward passes
turn it around exactly as in 2-D (``gw += gy @ cols.T``, ``gcols = w.T @ gy`` then col2vol).

What is the same as the 2-D path (and reused from it, not copied): the per-thread scratch buffers kept
between calls (``cpu_conv.scratch``: a fresh 30 MB allocation per call costs tens of ms), the split of
the work across threads with OpenBLAS on one thread meanwhile (``threads.run_parts``), ``CHUNK_BYTES``
per chunk, the direct loops for depthwise-like grouped convs, the weight-gradient GEMM oriented so the
larger side is its M (``cpu_conv.accumulate_gw``), and stride-1 backward-data as a forward conv of
``gy`` with the flipped, transposed weights. What is new for volumes:

* A volume's columns are big (16 channels x 27 taps at 28^3: 38 MB per image), so a chunk is a *slab of
  output depths* of one image (sized to ~CHUNK_BYTES), not a group of images; the work items are
  (image, slab) pairs, so even a batch of 2 at 64^3 splits evenly across threads. Small volumes (late
  layers) put several whole images side by side in one chunk instead.
* The slab of the output ``y[n, o, z0:z0+nz]`` is one contiguous run per channel, so the GEMM's result
  is stored with one copy per (image, channel), and ``gy``'s slab is read by BLAS in place (a strided
  2-D view) when a chunk holds one image.
* Backward-data with stride > 1 (col2vol) adds into overlapping input depths from neighbouring slabs,
  so there the threads split the batch by whole images.
* 3x3x3 stride-1 convs with few channels (the 1-channel stem) skip vol2col: the direct row kernels of
  ``cpu_conv_rows.py`` (27 taps as three passes of nine over a block of output rows).
* (kd, 3, 3) stride-1 convs with kd*C and O >= 32 (SmallCNN3D's 16->32, 32->64, 64->128 layers) are 2-D
  convs of the depth taps stacked as channels, run by the 2-D fast path's Winograd F(2x2, 3x3)
  (``cpu_conv3d_stack.py``).
* Other convs of one group with >= CL_MIN_C input channels build their columns transposed and channels-last
  (``cols_cl[voxel, tap*C + c]``, from a padded channels-last copy of the chunk): a column row is then a few
  runs of kw*C contiguous values instead of K scattered ones, and the GEMM ``y.T = cols_cl @ w_cl`` reads a
  row-major matrix, the orientation OpenBLAS runs fastest here; the weight gradient is ``gy @ cols_cl``.
  With it, stride-1 backward-data of up to CL_FLIP_MAX_O gy channels is the flipped forward.

Every function takes and returns NCDHW float32/float64 arrays, returns fresh arrays, and is tested
against ``kernels/reference3d.py``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numba
import numpy as np
from numba import njit

from . import cpu_conv3d_stack as stack
from .cpu_conv import (
    CHUNK_BYTES,
    DIRECT_MAX_CG,
    ROWS,
    SPLIT_MIN_MACS,
    WGRAD_MIN_COLS,
    accumulate_gw,
    scratch,
)
from .cpu_conv_rows import conv3d_backward_weight_rows, conv3d_forward_rows, use_rows3
from .cpu_plain3d import (
    direct_backward_input,
    direct_backward_weight,
    direct_forward,
    geometry3,
    prep,
    valid_range,
)
from .threads import run_parts, serialized

CL = os.environ.get("TGR_CONV3D_CL", "1") != "0"  # channels-last columns for many-channel convs

__all__ = ["conv3d_forward", "conv3d_backward_input", "conv3d_backward_weight"]


# ------------------------------------------------------------------------------- vol2col / col2vol
@njit(nogil=True, cache=True)
def _vol2col(x, n0, nb, z0, nz, kd, kh, kw, sd, sh, sw, pd, ph, pw, dd, dh, dw, ho, wo, cols):
    """cols[((c*kd + a)*kh + u)*kw + v, bb*L + (t*ho + i)*wo + j] = xpad[n0+bb, c, (z0+t)*sd + a*dd,
    i*sh + u*dh, j*sw + v*dw] with L = nz*ho*wo (0 in the padding)."""
    c, dep, h, wd = x.shape[1], x.shape[2], x.shape[3], x.shape[4]
    length = nz * ho * wo
    for bb in range(nb):
        for ch in range(c):
            xi = x[n0 + bb, ch]
            for a in range(kd):
                for u in range(kh):
                    for v in range(kw):
                        dst = cols[((ch * kd + a) * kh + u) * kw + v]
                        off = v * dw - pw
                        jlo, jhi = valid_range(off, sw, wd, wo)
                        for t in range(nz):
                            zi = (z0 + t) * sd - pd + a * dd
                            for i in range(ho):
                                base = bb * length + (t * ho + i) * wo
                                hi = i * sh - ph + u * dh
                                if zi < 0 or zi >= dep or hi < 0 or hi >= h:
                                    for j in range(wo):
                                        dst[base + j] = 0
                                    continue
                                for j in range(jlo):
                                    dst[base + j] = 0
                                for j in range(jlo, jhi):
                                    dst[base + j] = xi[zi, hi, j * sw + off]
                                for j in range(jhi, wo):
                                    dst[base + j] = 0


@njit(nogil=True, cache=True)
def _col2vol(gcols, n0, nb, z0, nz, kd, kh, kw, sd, sh, sw, pd, ph, pw, dd, dh, dw, ho, wo, gx):
    """gx[n0 + bb, c] += gcols scattered back over every tap (the adjoint of _vol2col; gx is not zeroed)."""
    c, dep, h, wd = gx.shape[1], gx.shape[2], gx.shape[3], gx.shape[4]
    length = nz * ho * wo
    for bb in range(nb):
        for ch in range(c):
            dst = gx[n0 + bb, ch]
            for a in range(kd):
                for u in range(kh):
                    for v in range(kw):
                        src = gcols[((ch * kd + a) * kh + u) * kw + v]
                        off = v * dw - pw
                        jlo, jhi = valid_range(off, sw, wd, wo)
                        for t in range(nz):
                            zi = (z0 + t) * sd - pd + a * dd
                            if zi < 0 or zi >= dep:
                                continue
                            for i in range(ho):
                                hi = i * sh - ph + u * dh
                                if hi < 0 or hi >= h:
                                    continue
                                base = bb * length + (t * ho + i) * wo
                                for j in range(jlo, jhi):
                                    dst[zi, hi, j * sw + off] += src[base + j]


@njit(nogil=True, cache=True)
def _store(yw, transposed, n0, nb, z0, length, y):
    """y[n0 + bb, o, flat z0*plane + q] = yw[o, bb*L + q] (or ywt[bb*L + q, o]), q < L: a slab of each
    output channel is one contiguous run of the NCDHW output."""
    o = y.shape[1]
    plane = y.shape[3] * y.shape[4]
    yf = y.reshape(y.shape[0], o, y.shape[2] * plane)
    start = z0 * plane
    for bb in range(nb):
        dst = yf[n0 + bb]
        if transposed:
            for q in range(length):
                row = yw[bb * length + q]
                for oc in range(o):
                    dst[oc, start + q] = row[oc]
        else:
            for oc in range(o):
                src = yw[oc]
                for q in range(length):
                    dst[oc, start + q] = src[bb * length + q]


@njit(nogil=True, cache=True)
def _gather(gy, n0, nb, z0, length, out):
    """out[o, bb*L + q] = gy[n0 + bb, o, flat z0*plane + q]: a chunk of several images side by side."""
    o = gy.shape[1]
    plane = gy.shape[3] * gy.shape[4]
    gf = gy.reshape(gy.shape[0], o, gy.shape[2] * plane)
    start = z0 * plane
    for bb in range(nb):
        for oc in range(o):
            for q in range(length):
                out[oc, bb * length + q] = gf[n0 + bb, oc, start + q]


# ------------------------------------------------ stride-1 "wide rows" scheme (long contiguous copies)
# As in 2-D (cpu_conv._im2col_wide): for stride 1, pad the input depths a chunk needs once into flat
# (nz_in * Hp * Wp) planes and compute the output on a grid of nz x Hp x Wp (the rows i >= Ho and the
# columns j >= Wo are junk, dropped by the store). Then the column row of tap (c, a, u, v) is ONE contiguous
# run of the padded volume, xpad[c, a*dd*Hp*Wp + u*dh*Wp + v*dw :][:nz*Hp*Wp]: vol2col becomes one copy per
# tap instead of nz*Ho row copies with padding checks, at the price of Hp*Wp / (Ho*Wo) - 1 extra GEMM columns
# (15 % at 28^3, 6 % at 64^3): used while that stays under WIDE_MAX_JUNK.
WIDE_MAX_JUNK = 0.35


@njit(nogil=True, cache=True)
def _pad_slab(x, n0, nb, z0, nzin, pd, ph, pw, xpad):
    """xpad[bb, c] (flat) = the zero-padded input depths z0 - pd .. z0 - pd + nzin - 1 of image n0 + bb,
    rows of Wp = W + 2 pw, planes of Hp * Wp; zeros after the end (the last taps read past it)."""
    c, dep, h, wd = x.shape[1], x.shape[2], x.shape[3], x.shape[4]
    hp, wp = h + 2 * ph, wd + 2 * pw
    for bb in range(nb):
        for ch in range(c):
            plane = xpad[bb, ch]
            plane[:] = 0
            for t in range(nzin):
                zi = z0 + t - pd
                if zi < 0 or zi >= dep:
                    continue
                for i in range(h):
                    start = (t * hp + i + ph) * wp + pw
                    plane[start : start + wd] = x[n0 + bb, ch, zi, i]


@njit(nogil=True, cache=True)
def _vol2col_wide(xpad, nb, kd, kh, kw, dd, dh, dw, hp, wp, length, cols):
    """cols[((c*kd + a)*kh + u)*kw + v, bb*L + q] = xpad[bb, c, a*dd*hp*wp + u*dh*wp + v*dw + q], q < L."""
    c = xpad.shape[1]
    for bb in range(nb):
        for ch in range(c):
            src = xpad[bb, ch]
            for a in range(kd):
                for u in range(kh):
                    for v in range(kw):
                        off = (a * dd * hp + u * dh) * wp + v * dw
                        dst = cols[((ch * kd + a) * kh + u) * kw + v]
                        dst[bb * length : (bb + 1) * length] = src[off : off + length]


@njit(nogil=True, cache=True)
def _store_wide(yw, transposed, n0, nb, z0, nz, hp, wp, y):
    """y[n0 + bb, o, z0 + t, i, j] = yw[o, bb*L + (t*hp + i)*wp + j] (or its transpose), i < Ho, j < Wo."""
    o, ho, wo = y.shape[1], y.shape[3], y.shape[4]
    length = nz * hp * wp
    for bb in range(nb):
        for t in range(nz):
            for i in range(ho):
                base = bb * length + (t * hp + i) * wp
                if transposed:
                    for j in range(wo):
                        row = yw[base + j]
                        for oc in range(o):
                            y[n0 + bb, oc, z0 + t, i, j] = row[oc]
                else:
                    for oc in range(o):
                        src = yw[oc]
                        for j in range(wo):
                            y[n0 + bb, oc, z0 + t, i, j] = src[base + j]


@njit(nogil=True, cache=True)
def _widen(gy, n0, nb, z0, nz, hp, wp, out):
    """out[o, bb*L + (t*hp + i)*wp + j] = gy[n0 + bb, o, z0 + t, i, j], and 0 in the junk rows / columns."""
    o, ho, wo = gy.shape[1], gy.shape[3], gy.shape[4]
    length = nz * hp * wp
    for oc in range(o):
        dst = out[oc]
        dst[: nb * length] = 0
        for bb in range(nb):
            for t in range(nz):
                for i in range(ho):
                    base = bb * length + (t * hp + i) * wp
                    dst[base : base + wo] = gy[n0 + bb, oc, z0 + t, i]


# ------------------------------------------------------ channels-last columns (groups 1, many channels)
# With C >= CL_MIN_C channels, the columns are built transposed and channels-last: one ROW per output voxel,
# K = kd*kh*kw*C values ordered (tap, channel). The chunk's input is first copied once into a zero-padded
# channels-last block xcl[bb, z, i, j, c]; a column row is then kd*kh runs of kw*C contiguous floats
# (stride 1) instead of K single values, and the GEMM reads a row-major A (m x K) — the orientation
# OpenBLAS runs fastest for these shapes (benchmarks/NOTES.md 10a).
CL_MIN_C = 16
CL_FLIP_MAX_O = 64  # backward-data as the flipped forward up to this many gy channels (see below)


@njit(nogil=True, cache=True)
def _to_cl_padded(x, n0, nb, zlo, nzin, pd, ph, pw, xcl):
    """xcl[bb, t, i, j, c] = xpad[n0 + bb, c, zlo + t, i, j] (padded coordinates, 0 in the padding)."""
    c, dep, h, wd = x.shape[1], x.shape[2], x.shape[3], x.shape[4]
    for bb in range(nb):
        xcl[bb, :nzin] = 0
        for t in range(nzin):
            zi = zlo + t - pd
            if zi < 0 or zi >= dep:
                continue
            for i in range(h):
                dst = xcl[bb, t, i + ph]
                for ch in range(c):
                    src = x[n0 + bb, ch, zi, i]
                    for j in range(wd):
                        dst[j + pw, ch] = src[j]


@njit(nogil=True, cache=True)
def _vol2col_cl(xcl, nb, nz, kd, kh, kw, sd, sh, sw, dd, dh, dw, ho, wo, cols):
    """cols[bb*L + (t*ho + i)*wo + j, ((a*kh + u)*kw + v)*C + c] = xcl[bb, t*sd + a*dd, i*sh + u*dh,
    j*sw + v*dw, c] with L = nz*ho*wo."""
    c, wp = xcl.shape[4], xcl.shape[3]
    length = nz * ho * wo
    for bb in range(nb):
        for t in range(nz):
            for i in range(ho):
                r0 = bb * length + (t * ho + i) * wo
                for a in range(kd):
                    for u in range(kh):
                        src = xcl[bb, t * sd + a * dd, i * sh + u * dh].reshape(wp * c)
                        base = (a * kh + u) * kw * c
                        for j in range(wo):
                            if dw == 1:  # the kw taps are one run of kw*C floats
                                s0 = j * sw * c
                                cols[r0 + j, base : base + kw * c] = src[s0 : s0 + kw * c]
                            else:
                                for v in range(kw):
                                    s0 = (j * sw + v * dw) * c
                                    cols[r0 + j, base + v * c : base + (v + 1) * c] = src[s0 : s0 + c]


# ------------------------------------------------------------------------------------------ plan
@dataclass(frozen=True)
class _Plan3:
    n: int
    c: int
    o: int
    cg: int
    kernel: tuple
    out: tuple
    args: tuple  # (sd, sh, sw, pd, ph, pw, dd, dh, dw)
    groups: int
    items: tuple  # chunks (n0, nb, z0, nz): one image's slab of depths, or several whole images
    wide: bool  # stride 1 on the "wide rows" grid: GEMM columns per output depth gplane = Hp * Wp
    hp: int
    wp: int

    @property
    def kg(self):
        return self.cg * self.kernel[0] * self.kernel[1] * self.kernel[2]

    @property
    def k(self):
        return self.kg * self.groups

    @property
    def og(self):
        return self.o // self.groups

    @property
    def plane(self):
        return self.out[1] * self.out[2]

    @property
    def gplane(self):
        """GEMM columns per output depth: Ho * Wo, or Hp * Wp on the wide grid."""
        return self.hp * self.wp if self.wide else self.plane

    @property
    def max_cols(self):
        return max(nb * nz for _, nb, _, nz in self.items) * self.gplane

    @property
    def pad_len(self):
        """Flat length of one padded slab plane of the wide scheme (input depths of the largest chunk)."""
        nzin = max(nz for *_, nz in self.items) + (self.kernel[0] - 1) * self.args[6]
        tail = (self.kernel[1] - 1) * self.args[7] * self.wp + (self.kernel[2] - 1) * self.args[8]
        return nzin * self.hp * self.wp + tail

    def parts(self, units):
        """Threads to split over (None: all), 1 for convs too small to be worth a hand-off."""
        macs = self.n * self.o * self.kg * self.out[0] * self.plane
        return None if macs >= SPLIT_MIN_MACS and units > 1 else 1


def _plan3(x_shape, w_shape, stride, padding, dilation, groups, itemsize, allow_wide=True, min_cols=0):
    n, c, o, cg, out = geometry3(x_shape, w_shape, stride, padding, dilation, groups)
    do, plane = out[0], out[1] * out[2]
    k = c * int(np.prod(w_shape[2:]))
    hp, wp = x_shape[3] + 2 * padding[1], x_shape[4] + 2 * padding[2]
    wide = (allow_wide and tuple(stride) == (1, 1, 1) and not _use_direct(groups, cg)
            and hp * wp <= (1 + WIDE_MAX_JUNK) * plane)
    if wide:  # cols + the GEMM's output + the padded input, per output depth
        per_depth = (k + o + c) * hp * wp * itemsize
    else:  # cols + the GEMM's output for one output depth
        per_depth = (k + o) * plane * itemsize
    nz = max(1, min(do, CHUNK_BYTES // max(per_depth, 1)))
    if n == 0:  # an empty batch: no chunks (the outputs are empty, the weight gradient zero)
        items = ()
    elif nz == do:  # whole volumes fit: several images per chunk
        nb = max(1, min(n, CHUNK_BYTES // max(per_depth * do, 1)))
        # the weight gradient's GEMM reduces over the chunk's columns: at least min_cols of them (as 2-D)
        nb = max(nb, min(n, -(-min_cols // (do * (hp * wp if wide else plane)))))
        # NOTE: a multiple of the thread count of chunks, of equal size: one chunk for the whole batch would
        # leave the other threads idle (run_parts splits the chunks, not the images)
        threads = numba.get_num_threads()
        count = threads * -(-n // (threads * nb))
        nb = -(-n // count)
        items = tuple((n0, min(nb, n - n0), 0, do) for n0 in range(0, n, nb))
    else:
        items = tuple((b, 1, z0, min(nz, do - z0)) for b in range(n) for z0 in range(0, do, nz))
    args = (*map(int, stride), *map(int, padding), *map(int, dilation))
    return _Plan3(n, c, o, cg, tuple(map(int, w_shape[2:])), out, args, int(groups), items, wide, hp, wp)


def _use_direct(groups, cg):
    return groups > 1 and cg < DIRECT_MAX_CG


def _gy_chunk(gy, n0, nb, z0, nz, q, name):
    """gy's chunk as an (O, nb*L) matrix: a strided view (one image: BLAS reads it in place) or a copy."""
    length = nz * q.plane
    if nb == 1:
        return gy[n0].reshape(q.o, q.out[0] * q.plane)[:, z0 * q.plane : z0 * q.plane + length]
    buf = scratch(name, (q.o, nb * length), gy.dtype)
    _gather(gy, n0, nb, z0, length, buf)
    return buf


def _fill_cols(x, n0, nb, z0, nz, q, cols, xpad):
    """cols (K, nb*nz*gplane) <- the columns of the chunk (wide-rows grid or the plain one)."""
    if q.wide:
        kd, kh, kw = q.kernel
        _pad_slab(x, n0, nb, z0, nz + (kd - 1) * q.args[6], *q.args[3:6], xpad)
        _vol2col_wide(xpad, nb, kd, kh, kw, *q.args[6:9], q.hp, q.wp, nz * q.gplane, cols)
    else:
        _vol2col(x, n0, nb, z0, nz, *q.kernel, *q.args, q.out[1], q.out[2], cols)


def _pad_buffer(q, dtype):
    nb = max(nb for _, nb, _, _ in q.items)
    return scratch("xpad3d", (nb, q.c, q.pad_len), dtype) if q.wide else None


def _use_cl(q):
    """Channels-last columns: one group (grouped convs keep the per-group K-row layout) and many channels."""
    return q.groups == 1 and q.c >= CL_MIN_C


def _cl_input_depths(q, nz):
    return (nz - 1) * q.args[0] + (q.kernel[0] - 1) * q.args[6] + 1


def _cl_buffers(q, dtype):
    nb = max(nb for _, nb, _, _ in q.items)
    nzin = max(_cl_input_depths(q, nz) for *_, nz in q.items)
    cols = scratch("cols3d_cl", (q.max_cols, q.k), dtype)
    return cols, scratch("xcl3d", (nb, nzin, q.hp, q.wp, q.c), dtype)


def _fill_cols_cl(x, n0, nb, z0, nz, q, cols, xcl):
    """cols (nb*nz*plane, K) <- the chunk's channels-last columns."""
    _to_cl_padded(x, n0, nb, z0 * q.args[0], _cl_input_depths(q, nz), *q.args[3:6], xcl)
    _vol2col_cl(xcl, nb, nz, *q.kernel, *q.args[0:3], *q.args[6:9], q.out[1], q.out[2], cols)


def _forward_part_cl(x, wcl, y, items, q):
    cols, xcl = _cl_buffers(q, x.dtype)
    yw = scratch("out3d_cl", (q.max_cols, q.o), x.dtype)
    for n0, nb, z0, nz in items:
        m = nb * nz * q.plane
        _fill_cols_cl(x, n0, nb, z0, nz, q, cols, xcl)
        np.matmul(cols[:m], wcl, out=yw[:m])  # y.T (m, O) = cols (m, K) @ w_cl (K, O)
        _store(yw, True, n0, nb, z0, nz * q.plane, y)


def _backward_weight_part_cl(gy, x, items, q):
    """This thread's share of gw in the (O, K) tap-major layout: the sum over its chunks of gy @ cols."""
    gw = np.zeros((q.o, q.k), dtype=gy.dtype)
    part = scratch("gw3d_cl_part", (q.o, q.k), gy.dtype)
    cols, xcl = _cl_buffers(q, x.dtype)
    for n0, nb, z0, nz in items:
        m = nb * nz * q.plane
        _fill_cols_cl(x, n0, nb, z0, nz, q, cols, xcl)
        np.matmul(_gy_chunk(gy, n0, nb, z0, nz, q, "gy3d"), cols[:m], out=part)  # (O, m) @ (m, K)
        gw += part
    return gw


def _cl_weight(w):
    """w (O, C, kd, kh, kw) -> (kd*kh*kw*C, O), rows ordered (tap, channel) like the columns."""
    return np.ascontiguousarray(w.transpose(2, 3, 4, 1, 0)).reshape(-1, w.shape[0])



# Each *_part function does the chunks items[lo:hi] on the calling thread (run_parts calls one per thread).
def _forward_part(x, wm, y, items, q):
    og, kg = q.og, q.kg
    cols = scratch("cols3d", (q.k, q.max_cols), x.dtype)
    xpad = _pad_buffer(q, x.dtype)
    # NOTE: as in 2-D, OpenBLAS ran these products faster when the result has at least as many rows as
    # columns, so a chunk with more columns than output channels computes y.T (benchmarks/NOTES.md 1h)
    transposed = q.o < q.max_cols
    yw = scratch("out3d", (q.max_cols, q.o) if transposed else (q.o, q.max_cols), x.dtype)
    for n0, nb, z0, nz in items:
        m = nb * nz * q.gplane
        _fill_cols(x, n0, nb, z0, nz, q, cols, xpad)
        for g in range(q.groups):
            wg, cg_ = wm[g * og : (g + 1) * og], cols[g * kg : (g + 1) * kg, :m]
            if transposed:  # y_g.T (m, og) = cols_g.T @ w_g.T
                np.matmul(cg_.T, wg.T, out=yw[:m, g * og : (g + 1) * og])
            else:  # y_g (og, m) = w_g (og, Kg) @ cols_g (Kg, m)
                np.matmul(wg, cg_, out=yw[g * og : (g + 1) * og, :m])
        if q.wide:
            _store_wide(yw, transposed, n0, nb, z0, nz, q.hp, q.wp, y)
        else:
            _store(yw, transposed, n0, nb, z0, nz * q.plane, y)


def _backward_weight_part(gy, x, items, q):
    """This thread's share of gw (O, Kg): the sum over its chunks of gy @ cols.T."""
    gw = np.zeros((q.o, q.kg), dtype=gy.dtype)
    cols = scratch("cols3d", (q.k, q.max_cols), x.dtype)
    xpad = _pad_buffer(q, x.dtype)
    gyw = scratch("gy3d_wide", (q.o, q.max_cols), gy.dtype) if q.wide else None
    for n0, nb, z0, nz in items:
        m = nb * nz * q.gplane
        _fill_cols(x, n0, nb, z0, nz, q, cols, xpad)
        if q.wide:  # gy on the wide grid, 0 in the junk columns (so they add nothing)
            _widen(gy, n0, nb, z0, nz, q.hp, q.wp, gyw)
            g2 = gyw[:, :m]
        else:
            g2 = _gy_chunk(gy, n0, nb, z0, nz, q, "gy3d")
        # gw_g (og, Kg) += gy_g (og, m) @ cols_g (Kg, m).T
        accumulate_gw(gw, g2, cols[:, :m], q.og, q.kg, q.groups, "gw3d_part")
    return gw


def _backward_input_part(gy, wm, gx, items, q):
    """gcols (K, m) = w.T @ gy per chunk, then col2vol adds it into gx (zeroed by the caller)."""
    og, kg = q.og, q.kg
    gcols = scratch("gcols3d", (q.k, q.max_cols), gy.dtype)
    for n0, nb, z0, nz in items:
        m = nb * nz * q.plane
        g2 = _gy_chunk(gy, n0, nb, z0, nz, q, "gy3d")
        for g in range(q.groups):
            # gcols_g (Kg, m) = w_g.T (Kg, og) @ gy_g (og, m)
            np.matmul(wm[g * og : (g + 1) * og].T, g2[g * og : (g + 1) * og],
                      out=gcols[g * kg : (g + 1) * kg, :m])
        _col2vol(gcols, n0, nb, z0, nz, *q.kernel, *q.args, q.out[1], q.out[2], gx)


def _run_items(q, fn):
    """fn(items) over the plan's chunks, split across threads; returns the per-thread results."""
    items = q.items
    return run_parts(len(items), lambda lo, hi: fn(items[lo:hi]), q.parts(len(items)))


def _flip_transpose3(w, groups):
    """The transposed conv's weights: w'[g*cg + c, o, a, u, v] = w[g*og + o, c, kd-1-a, kh-1-u, kw-1-v]."""
    o, cg = w.shape[:2]
    wg = w.reshape(groups, o // groups, cg, *w.shape[2:]).transpose(0, 2, 1, 3, 4, 5)
    wg = wg[:, :, :, ::-1, ::-1, ::-1]
    return np.ascontiguousarray(wg).reshape(groups * cg, o // groups, *w.shape[2:])


# ------------------------------------------------------------------------------ public functions
@serialized
def conv3d_forward(x, w, stride, padding, dilation, groups):
    """y = conv3d(x, w) (no bias), NCDHW. Example: ``conv3d_forward(x, w, (1,) * 3, (1,) * 3, (1,) * 3, 1)``.
    """
    x = prep(x)
    w = prep(w, x.dtype)
    q = _plan3(x.shape, w.shape, stride, padding, dilation, groups, x.itemsize)
    if q.n == 0:  # an empty batch (PyTorch returns the empty output)
        return np.empty((0, q.o, *q.out), dtype=x.dtype)
    if stack.use_stack(q.kernel, stride, dilation, q.groups, q.c, q.o, q.out):  # (before the rows: 10c)
        return stack.stacked_forward(x, w, tuple(map(int, padding)), q.out)
    if ROWS and use_rows3(q.kernel, stride, dilation, q.groups, q.cg, q.o):
        return conv3d_forward_rows(x, w, tuple(map(int, padding)))
    y = np.empty((q.n, q.o, *q.out), dtype=x.dtype)
    if _use_direct(q.groups, q.cg):
        direct_forward(x, w, *q.args, q.groups, y)
        return y
    if CL and _use_cl(q):
        q = _plan3(x.shape, w.shape, stride, padding, dilation, groups, x.itemsize, allow_wide=False)
        wcl = _cl_weight(w)
        _run_items(q, lambda items: _forward_part_cl(x, wcl, y, items, q))
        return y
    wm = w.reshape(q.o, q.kg)
    _run_items(q, lambda items: _forward_part(x, wm, y, items, q))
    return y


@serialized
def conv3d_backward_input(gy, w, x_shape, stride, padding, dilation, groups):
    """dL/dx of conv3d (= a transposed convolution of ``gy``), NCDHW, fresh array of ``x_shape``."""
    gy = prep(gy)
    w = prep(w, gy.dtype)
    q = _plan3(tuple(x_shape), w.shape, stride, padding, dilation, groups, gy.itemsize, allow_wide=False)
    if gy.shape != (q.n, q.o, *q.out):
        raise ValueError(f"conv3d_backward_input: gy has shape {gy.shape}, expected {(q.n, q.o, *q.out)}")
    if q.n == 0:
        return np.zeros(tuple(x_shape), dtype=gy.dtype)
    if stack.use_stack(q.kernel, stride, dilation, q.groups, q.c, q.o, q.out):
        return stack.stacked_backward_input(gy, w, tuple(x_shape), tuple(map(int, padding)))
    if _use_direct(q.groups, q.cg):
        gx = np.empty(tuple(x_shape), dtype=gy.dtype)
        direct_backward_input(gy, w, *q.args, q.groups, gx)
        return gx
    flipped_pad = tuple(d * (k - 1) - p for k, p, d in zip(q.kernel, padding, dilation))
    flip_rows = ROWS and use_rows3(q.kernel, stride, dilation, q.groups, q.og, q.cg)
    # NOTE: with channels-last columns the flipped forward beat GEMM + col2vol for gy of 32 and 64 channels,
    # not for 128 (its columns are 27 x 128 wide): benchmarks/NOTES.md 10a
    flip_cl = CL and q.groups == 1 and CL_MIN_C <= q.o <= CL_FLIP_MAX_O
    if tuple(stride) == (1, 1, 1) and min(flipped_pad) >= 0 and (q.og < 2 * q.cg or flip_rows or flip_cl):
        # dx = conv3d(gy, flipped and transposed w, padding d (k - 1) - p): a plain forward conv whose
        # GEMMs are (C x O*k^3) @ (O*k^3 x voxels), no col2vol scatter.
        # NOTE: the 2-D rule (cpu_conv.conv2d_backward_input): when og >= 2 cg that GEMM's M = cg is too
        # small next to the (Kg x og) @ (og x voxels) product of GEMM + col2vol, which is used then
        return conv3d_forward(gy, _flip_transpose3(w, q.groups), (1, 1, 1), flipped_pad, tuple(dilation),
                              q.groups)
    gx = np.zeros(tuple(x_shape), dtype=gy.dtype)
    wm = w.reshape(q.o, q.kg)
    # neighbouring slabs add into the same input depths: each thread takes whole images
    units = []
    for item in q.items:
        if units and units[-1][-1][0] == item[0]:
            units[-1].append(item)
        else:
            units.append([item])
    run_parts(len(units), lambda lo, hi: _backward_input_part(
        gy, wm, gx, [it for u in units[lo:hi] for it in u], q), q.parts(len(units)))
    return gx


@serialized
def conv3d_backward_weight(gy, x, w_shape, stride, padding, dilation, groups):
    """dL/dw of conv3d: the sum over chunks of gy @ cols.T, fresh array of ``w_shape``."""
    gy = prep(gy)
    x = prep(x, gy.dtype)
    q = _plan3(x.shape, tuple(w_shape), stride, padding, dilation, groups, gy.itemsize,
               min_cols=WGRAD_MIN_COLS)
    if gy.shape != (q.n, q.o, *q.out):
        raise ValueError(f"conv3d_backward_weight: gy has shape {gy.shape}, expected {(q.n, q.o, *q.out)}")
    if _use_direct(q.groups, q.cg):
        gw = np.empty(tuple(w_shape), dtype=gy.dtype)
        direct_backward_weight(gy, x, *q.args, q.groups, gw)
        return gw
    if ROWS and use_rows3(q.kernel, stride, dilation, q.groups, q.cg, q.o, weight_grad=True):
        return conv3d_backward_weight_rows(gy, x, tuple(map(int, padding)))
    if not q.items:
        return np.zeros(tuple(w_shape), dtype=gy.dtype)
    if stack.use_stack(q.kernel, stride, dilation, q.groups, q.c, q.o, q.out):
        return stack.stacked_backward_weight(gy, x, tuple(w_shape), tuple(map(int, padding)))
    if CL and _use_cl(q):
        q = _plan3(x.shape, tuple(w_shape), stride, padding, dilation, groups, gy.itemsize, allow_wide=False,
                   min_cols=WGRAD_MIN_COLS)
        shares = _run_items(q, lambda items: _backward_weight_part_cl(gy, x, items, q))
        gw = shares[0]
        for share in shares[1:]:
            gw += share
        kd, kh, kw = q.kernel
        gw = gw.reshape(q.o, kd, kh, kw, q.c).transpose(0, 4, 1, 2, 3)
        return np.ascontiguousarray(gw)
    shares = _run_items(q, lambda items: _backward_weight_part(gy, x, items, q))
    gw = shares[0]
    for share in shares[1:]:
        gw += share
    return gw.reshape(tuple(w_shape))
