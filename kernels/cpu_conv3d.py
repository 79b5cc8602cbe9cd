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
larger side is its M (``cpu_conv._accumulate_gw``), and stride-1 backward-data as a forward conv of
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

Every function takes and returns NCDHW float32/float64 arrays, returns fresh arrays, and is tested
against ``kernels/reference3d.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from .cpu_conv import CHUNK_BYTES, DIRECT_MAX_CG, SPLIT_MIN_MACS, _accumulate_gw, scratch
from .cpu_plain3d import (
    _direct_backward_input,
    _direct_backward_weight,
    _direct_forward,
    _prep,
    _valid,
    geometry3,
)
from .threads import run_parts, serialized

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
                        jlo, jhi = _valid(off, sw, wd, wo)
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
                        jlo, jhi = _valid(off, sw, wd, wo)
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
    def max_cols(self):
        return max(nb * nz for _, nb, _, nz in self.items) * self.plane

    def parts(self, units):
        """Threads to split over (None: all), 1 for convs too small to be worth a hand-off."""
        macs = self.n * self.o * self.kg * self.out[0] * self.plane
        return None if macs >= SPLIT_MIN_MACS and units > 1 else 1


def _plan3(x_shape, w_shape, stride, padding, dilation, groups, itemsize):
    n, c, o, cg, out = geometry3(x_shape, w_shape, stride, padding, dilation, groups)
    do, plane = out[0], out[1] * out[2]
    k = c * int(np.prod(w_shape[2:]))
    per_depth = (k + o) * plane * itemsize  # cols + the GEMM's output for one output depth
    nz = max(1, min(do, CHUNK_BYTES // max(per_depth, 1)))
    if nz == do:  # whole volumes fit: several images per chunk
        nb = max(1, min(n, CHUNK_BYTES // max(per_depth * do, 1)))
        items = tuple((n0, min(nb, n - n0), 0, do) for n0 in range(0, n, nb))
    else:
        items = tuple((b, 1, z0, min(nz, do - z0)) for b in range(n) for z0 in range(0, do, nz))
    args = (*map(int, stride), *map(int, padding), *map(int, dilation))
    return _Plan3(n, c, o, cg, tuple(map(int, w_shape[2:])), out, args, int(groups), items)


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


# Each *_part function does the chunks items[lo:hi] on the calling thread (run_parts calls one per thread).
def _forward_part(x, wm, y, items, q):
    og, kg = q.og, q.kg
    cols = scratch("cols3d", (q.k, q.max_cols), x.dtype)
    # NOTE: as in 2-D, OpenBLAS ran these products faster when the result has at least as many rows as
    # columns, so a chunk with more columns than output channels computes y.T (benchmarks/NOTES.md 1h)
    transposed = q.o < q.max_cols
    yw = scratch("out3d", (q.max_cols, q.o) if transposed else (q.o, q.max_cols), x.dtype)
    for n0, nb, z0, nz in items:
        m = nb * nz * q.plane
        _vol2col(x, n0, nb, z0, nz, *q.kernel, *q.args, q.out[1], q.out[2], cols)
        for g in range(q.groups):
            wg, cg_ = wm[g * og : (g + 1) * og], cols[g * kg : (g + 1) * kg, :m]
            if transposed:  # y_g.T (m, og) = cols_g.T @ w_g.T
                np.matmul(cg_.T, wg.T, out=yw[:m, g * og : (g + 1) * og])
            else:  # y_g (og, m) = w_g (og, Kg) @ cols_g (Kg, m)
                np.matmul(wg, cg_, out=yw[g * og : (g + 1) * og, :m])
        _store(yw, transposed, n0, nb, z0, nz * q.plane, y)


def _backward_weight_part(gy, x, items, q):
    """This thread's share of gw (O, Kg): the sum over its chunks of gy @ cols.T."""
    gw = np.zeros((q.o, q.kg), dtype=gy.dtype)
    cols = scratch("cols3d", (q.k, q.max_cols), x.dtype)
    for n0, nb, z0, nz in items:
        m = nb * nz * q.plane
        _vol2col(x, n0, nb, z0, nz, *q.kernel, *q.args, q.out[1], q.out[2], cols)
        g2 = _gy_chunk(gy, n0, nb, z0, nz, q, "gy3d")
        # gw_g (og, Kg) += gy_g (og, m) @ cols_g (Kg, m).T
        _accumulate_gw(gw, g2, cols[:, :m], q.og, q.kg, q.groups, "gw3d_part")
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
    x = _prep(x)
    w = _prep(w, x.dtype)
    q = _plan3(x.shape, w.shape, stride, padding, dilation, groups, x.itemsize)
    y = np.empty((q.n, q.o, *q.out), dtype=x.dtype)
    if _use_direct(q.groups, q.cg):
        _direct_forward(x, w, *q.args, q.groups, y)
        return y
    wm = w.reshape(q.o, q.kg)
    _run_items(q, lambda items: _forward_part(x, wm, y, items, q))
    return y


@serialized
def conv3d_backward_input(gy, w, x_shape, stride, padding, dilation, groups):
    """dL/dx of conv3d (= a transposed convolution of ``gy``), NCDHW, fresh array of ``x_shape``."""
    gy = _prep(gy)
    w = _prep(w, gy.dtype)
    q = _plan3(tuple(x_shape), w.shape, stride, padding, dilation, groups, gy.itemsize)
    if gy.shape != (q.n, q.o, *q.out):
        raise ValueError(f"conv3d_backward_input: gy has shape {gy.shape}, expected {(q.n, q.o, *q.out)}")
    if _use_direct(q.groups, q.cg):
        gx = np.empty(tuple(x_shape), dtype=gy.dtype)
        _direct_backward_input(gy, w, *q.args, q.groups, gx)
        return gx
    flipped_pad = tuple(d * (k - 1) - p for k, p, d in zip(q.kernel, padding, dilation))
    if tuple(stride) == (1, 1, 1) and min(flipped_pad) >= 0:
        # dx = conv3d(gy, flipped and transposed w, padding d (k - 1) - p): a plain forward conv whose
        # GEMMs are (C x O*k^3) @ (O*k^3 x voxels), no col2vol scatter
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
    gy = _prep(gy)
    x = _prep(x, gy.dtype)
    q = _plan3(x.shape, tuple(w_shape), stride, padding, dilation, groups, gy.itemsize)
    if gy.shape != (q.n, q.o, *q.out):
        raise ValueError(f"conv3d_backward_weight: gy has shape {gy.shape}, expected {(q.n, q.o, *q.out)}")
    if _use_direct(q.groups, q.cg):
        gw = np.empty(tuple(w_shape), dtype=gy.dtype)
        _direct_backward_weight(gy, x, *q.args, q.groups, gw)
        return gw
    shares = _run_items(q, lambda items: _backward_weight_part(gy, x, items, q))
    gw = shares[0]
    for share in shares[1:]:
        gw += share
    return gw.reshape(tuple(w_shape))
