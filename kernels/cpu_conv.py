"""CPU convolution kernels: Numba im2col / col2im around one BLAS GEMM per chunk of images (and group).

From plain to fast: the plain twin (``cpu_plain.conv2d_*``, tier 1) computes every output, input pixel
or weight tap as a direct sum, parallel over (image, channel) planes - Cg * kh * kw multiply-adds per
output, read straight from the input, with no cache blocking or vectorised GEMM. This file keeps that
code for depthwise-like convs and adds, for everything else: (1) the batch split across threads,
(2) im2col so that each chunk of images is one BLAS GEMM (cache-blocked and vectorised by OpenBLAS),
with "wide rows" copies for stride 1, (3) a choice of GEMM shape per pass, and (4) Winograd F(2x2, 3x3)
for 3x3 stride-1 and stride-2 convs.

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

* The batch is split across threads (``threads.run_parts``): each thread takes a contiguous slice of the
  images and runs its own copies (serial Numba code that releases the GIL) and its own GEMMs (OpenBLAS on
  one thread), with no barrier until the end. (Threading each GEMM inside BLAS and each copy inside Numba
  instead made the two thread pools take turns dozens of times per conv: NOTES.md sections 1e and 5.)
* Within its slice a thread processes images in chunks of B, laid side by side: cols is (K, B*Ho*Wo), so
  each chunk costs ONE big GEMM per group (small per-image GEMMs were slower, and
  ``np.matmul(2-D, 3-D)`` silently leaves BLAS). The result is then copied into the NCHW output.
* The chunk's buffers (~CHUNK_BYTES) are per-thread scratch arrays kept between calls (``scratch``): a
  fresh allocation over ~32 MB costs tens of milliseconds, because glibc hands large blocks back to the OS.
* im2col / col2im are pure memory traffic (K times the input size), as costly as the GEMM if written
  naively. Their inner loops are contiguous runs (the padding is handled by computing the valid range of
  ``j`` once per row).
* Stride 1 (most layers) uses "wide rows" (see ``_im2col_wide``): one memcpy per tap and plane.
* Stride-1 backward-data is either GEMM + wide col2im, or a plain forward conv of ``gy`` with the
  flipped, transposed weights, whichever gives BLAS the better-shaped product.
* The weight gradient's GEMM is computed in the orientation that makes the larger side its M.
* 3x3 stride-1 convs with enough channels skip im2col altogether: all three passes go through Winograd
  F(2x2, 3x3) (``cpu_winograd.py``), 2.25x fewer multiplications; 3x3 stride-2 ones through its stride-2
  twin (25 products per 2x2 output tile instead of 36).
* At inference, ``conv2d_affine_forward`` applies an eval-time batch norm, a residual add and a ReLU as
  Winograd's output transform stores each value (``nn.conv_bn``).
* 3x3 stride-1 convs with few channels (a 1-channel stem, a U-Net's outer levels: tiny GEMMs whose im2col
  copy costs more than the arithmetic) skip im2col too: direct row kernels (``cpu_conv_rows.py``) add the
  nine taps in one vectorised pass over a block of output rows.
* Grouped convolutions with very few channels per group (depthwise ones, ``C_in/groups`` small) would
  make many tiny GEMMs, so they use the plain tier's direct Numba loops instead (``cpu_plain.direct_*``).

Every function here takes and returns NCHW float32/float64 arrays and returns fresh arrays; only the
scratch buffers are reused. The ground truth is ``kernels/reference.py``.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

import numpy as np
from numba import njit, prange

from . import cpu_winograd as wino
from .cpu_conv_patch import (
    conv2d_backward_input_patch,
    conv2d_backward_weight_patch,
    conv2d_forward_patch,
    use_patch,
)
from .cpu_conv_rows import conv2d_backward_weight_rows, conv2d_forward_rows, use_rows
from .cpu_plain import (  # the direct loops serve depthwise-like convs unchanged
    direct_backward_input,
    direct_backward_weight,
    direct_forward,
    geometry,
    prep,
    valid_range,
)
from .threads import blas_threads, run_parts, serialized

# images per chunk are chosen so that one chunk's buffers take about this many bytes per thread
CHUNK_BYTES = 4 << 20
# grouped convs with fewer input channels per group than this use the direct loops, not GEMMs
DIRECT_MAX_CG = 4
# 3x3 stride-1 convs with at least this many channels per group in and out use Winograd F(2x2, 3x3) in
# all three passes (cpu_winograd.py); TGR_WINOGRAD=0 turns it off (im2col + GEMM for every conv)
WINOGRAD = os.environ.get("TGR_WINOGRAD", "1") != "0"
WINOGRAD_MIN_CHANNELS = 32
# ... and at least this output size: with the channels-last transforms even ResNet's layer4 (512 -> 512 at
# 4x4) is ~1.8x faster by Winograd than by im2col + GEMM (benchmarks/NOTES.md section 6b)
WINOGRAD_MIN_SIZE = 4
# 3x3 stride-2 convs use the stride-2 Winograd scheme (cpu_winograd.F2X2_3X3_S2, 25 products per 2x2 output
# tile instead of 36) under the same rules; TGR_WINOGRAD_S2=0 keeps them on im2col + GEMM
WINOGRAD_S2 = os.environ.get("TGR_WINOGRAD_S2", "1") != "0"
# a Winograd chunk holds at least this many tiles per channel (of the larger of C, O): each chunk's 16 GEMMs
# (tiles x C) @ (C x O) stream all of U, 16 C O values, which a 4 MB chunk of 64 tiles barely used for
# ResNet's layer4 (16 MB of U; ~1.2x faster with 512 tiles: benchmarks/NOTES.md section 11a)
WINOGRAD_TILES_PER_CHANNEL = 1
# 3x3 stride-1 convs with few channels (and no Winograd) use the direct row kernels of cpu_conv_rows.py;
# TGR_CONV_ROWS=0 turns them off
ROWS = os.environ.get("TGR_CONV_ROWS", "1") != "0"
# kernel == stride convs (a U-Net's 2x2 transposed convs) as space-to-depth + one batched GEMM
# (cpu_conv_patch.py); TGR_CONV_PATCH=0 turns it off
PATCH = os.environ.get("TGR_CONV_PATCH", "1") != "0"
# the weight gradient's GEMM reduces over the chunk's columns (images x positions): keep at least this many
# so that writing and accumulating the (O, K) result does not dominate (ResNet's 512x512 @4x4: 16 per image)
WGRAD_MIN_COLS = 1024
# gap added after each of Winograd's 16 scratch planes (see _planes)
PLANE_PAD_BYTES = 64
# below this many multiply-adds a conv runs on the calling thread only (a thread hand-off costs ~50 us)
SPLIT_MIN_MACS = 1 << 21

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


# ------------------------------------------------------------------------------- im2col / col2im
@njit(nogil=True, cache=True)
def _im2col(x, n0, nb, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo, cols):
    """cols[(c*kh + u)*kw + v, b, i*wo + j] = xpad[n0 + b, c, i*sh + u*dh, j*sw + v*dw] (0 in the padding)."""
    c, h, wd = x.shape[1], x.shape[2], x.shape[3]
    for t in range(nb * c):
        b, ch = t // c, t % c
        xi = x[n0 + b, ch]
        for u in range(kh):
            for v in range(kw):
                dst = cols[(ch * kh + u) * kw + v, b]
                off = v * dw - pw
                jlo, jhi = valid_range(off, sw, wd, wo)
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


@njit(nogil=True, cache=True)
def _col2im(gcols, n0, nb, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo, gx):
    """gx[n0 + b, c] = sum over taps (u, v) of gcols scattered back (the adjoint of _im2col)."""
    c, h, wd = gx.shape[1], gx.shape[2], gx.shape[3]
    for t in range(nb * c):
        b, ch = t // c, t % c
        dst = gx[n0 + b, ch]
        dst[:, :] = 0
        for u in range(kh):
            for v in range(kw):
                src = gcols[(ch * kh + u) * kw + v, b]
                off = v * dw - pw
                jlo, jhi = valid_range(off, sw, wd, wo)
                for i in range(ho):
                    hi = i * sh - ph + u * dh
                    if hi < 0 or hi >= h:
                        continue
                    row = dst[hi]
                    base = i * wo
                    for j in range(jlo, jhi):
                        row[j * sw + off] += src[base + j]


# ------------------------------------------------- stride-1 "wide rows" scheme (long contiguous copies)
# For stride 1, pad each input plane once into a flat buffer of Hp*Wp values. If we compute the output on
# a grid of Ho rows x Wp columns (the last Wp - Wo columns of each row are junk and get dropped), the
# column row of tap (c, u, v) is ONE contiguous run of the padded plane: xpad_flat[c, u*d*Wp + v*d :][:Ho*Wp].
# im2col becomes kh*kw memcpys per plane instead of Ho*kh*kw short row copies with padding checks (~4x
# faster), at the price of (Wp - Wo) / Wo extra GEMM columns (7% at 28x28): used when that is small.
@njit(nogil=True, cache=True)
def _im2col_wide(x, n0, nb, kh, kw, ph, pw, dh, dw, xpad, cols):
    """Pad each plane of x[n0:n0+nb] into xpad[b, c] (flat, row length wp = W + 2 pw, zeros after the end),
    then cols[(c*kh + u)*kw + v, b, q] = xpad[b, c, u*dh*wp + v*dw + q] for q < Ho*wp: one copy per tap."""
    c, h, wd = x.shape[1], x.shape[2], x.shape[3]
    wp = wd + 2 * pw
    length = cols.shape[2]
    for t in range(nb * c):
        b, ch = t // c, t % c
        plane = xpad[b, ch]
        plane[:] = 0
        src = x[n0 + b, ch]
        for i in range(h):
            start = (i + ph) * wp + pw
            plane[start : start + wd] = src[i]
        for u in range(kh):
            for v in range(kw):
                off = u * dh * wp + v * dw
                cols[(ch * kh + u) * kw + v, b, :] = plane[off : off + length]


@njit(nogil=True, cache=True)
def _col2im_wide(gcols, n0, nb, kh, kw, ph, pw, dh, dw, xpad, gx):
    """The adjoint of _im2col_wide: add each tap's run back into a zeroed padded plane, then crop it
    into gx[n0 + b, c]. Needs zeros in the junk columns of gcols (guaranteed by zero gy there)."""
    c, h, wd = gx.shape[1], gx.shape[2], gx.shape[3]
    wp = wd + 2 * pw
    length = gcols.shape[2]
    for t in range(nb * c):
        b, ch = t // c, t % c
        plane = xpad[b, ch]
        plane[:] = 0
        for u in range(kh):
            for v in range(kw):
                off = u * dh * wp + v * dw
                plane[off : off + length] += gcols[(ch * kh + u) * kw + v, b, :]
        dst = gx[n0 + b, ch]
        for i in range(h):
            start = (i + ph) * wp + pw
            dst[i, :] = plane[start : start + wd]


@njit(nogil=True, cache=True)
def _store_planes(yw, n0, nb, wp, y):
    """y[n0 + b, o, i, j] = yw[o, b, i*wp + j] for j < Wo (the GEMM gave (O, B*P); drop junk columns)."""
    o, ho, wo = y.shape[1], y.shape[2], y.shape[3]
    if wp == wo:  # no junk: each plane is one contiguous run on both sides
        _copy_runs(yw.reshape(yw.size), yw.shape[1], y.reshape(y.size), n0, nb, o, ho * wo, False)
        return
    for b in range(nb):
        for oc in range(o):
            src = yw[oc, b]
            dst = y[n0 + b, oc]
            for i in range(ho):
                dst[i, :] = src[i * wp : i * wp + wo]


@njit(nogil=True, cache=True, inline="always")
def _copy_runs(a, a_nb, x, n0, nb, o, plane, to_a):
    """Copy planes between a (O, a_nb, plane) and x (N, O, plane), both flat: a[o, b] <-> x[n0 + b, o].

    # NOTE: flat offsets, no per-plane or per-row views: for ResNet's small planes (4x4 to 14x14) the
    # slice-per-row copies cost 2-5 ns per value, the flat runs 0.4-1.
    """
    for b in range(nb):
        for oc in range(o):
            xo = ((n0 + b) * o + oc) * plane
            ao = (oc * a_nb + b) * plane
            if to_a:
                for f in range(plane):
                    a[ao + f] = x[xo + f]
            else:
                for f in range(plane):
                    x[xo + f] = a[ao + f]


@njit(nogil=True, cache=True)
def _store_rows(ywt, n0, nb, wp, y):
    """y[n0 + b, o, i, j] = ywt[b, i*wp + j, o] for j < Wo (the GEMM gave (B*P, O): a transposing copy).
    The inner loop runs over o: contiguous reads, and O write streams that stay in L1 across j."""
    o, ho, wo = y.shape[1], y.shape[2], y.shape[3]
    for b in range(nb):
        src = ywt[b]
        dst = y[n0 + b]
        for i in range(ho):
            for j in range(wo):
                row = src[i * wp + j]
                for oc in range(o):
                    dst[oc, i, j] = row[oc]


@njit(nogil=True, cache=True)
def _widen(gy, n0, nb, wp, gyw):
    """gyw[o, b, i*wp + j] = gy[n0 + b, o, i, j], and 0 in the junk columns j >= Wo (none if wp = Wo:
    then this just lays the chunk's images side by side for one GEMM)."""
    o, ho, wo = gy.shape[1], gy.shape[2], gy.shape[3]
    if wp == wo:
        _copy_runs(gyw.reshape(gyw.size), gyw.shape[1], gy.reshape(gy.size), n0, nb, o, ho * wo, True)
        return
    for t in range(nb * o):
        b, oc = t // o, t % o
        src = gy[n0 + b, oc]
        dst = gyw[oc, b]
        for i in range(ho):
            dst[i * wp : i * wp + wo] = src[i]
            dst[i * wp + wo : (i + 1) * wp] = 0


# ------------------------------------------------------------------------------ public functions
@dataclass(frozen=True)
class _Plan:
    """Everything a conv kernel needs to know about its shapes, computed once per call."""

    n: int
    c: int
    h: int
    wd: int
    o: int
    cg: int
    kh: int
    kw: int
    ho: int
    wo: int
    sh: int
    sw: int
    ph: int
    pw: int
    dh: int
    dw: int
    groups: int
    wide: bool  # stride 1 on the "wide rows" grid
    wp: int  # output grid row length: W + 2 pw when wide, else Wo
    p: int  # GEMM columns per image: Ho * wp
    plane: int  # flat padded-plane length (wide only)
    nb: int  # images per chunk
    winograd: bool = False  # 3x3 stride 1 or 2 by Winograd (stride 1: F(2x2, 3x3)); then nb is sized for its
    # V and M, and wide/wp/p/plane describe the plain grid (for the im2col fallback of conv2d_backward_input)

    @property
    def scheme(self):
        return wino.scheme_for(self.sh)

    @property
    def k(self):
        return self.c * self.kh * self.kw

    @property
    def og(self):
        return self.o // self.groups

    @property
    def kg(self):
        return self.cg * self.kh * self.kw

    def parts(self):
        """How many threads to split the batch over (None: all), 1 for convs too small to be worth it."""
        return None if self.n * self.o * self.kg * self.ho * self.wo >= SPLIT_MIN_MACS else 1


def _plan(x_shape, w_shape, stride, padding, dilation, groups, itemsize, min_cols=0):
    n, c, h, wd, o, cg, kh, kw, ho, wo = geometry(x_shape, w_shape, stride, padding, dilation, groups)
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    k = c * kh * kw
    if use_winograd((kh, kw), stride, dilation, groups, cg, o // groups, (ho, wo)):
        th, tw = wino.tiles(ho, wo)
        min_tiles = max(min_cols, WINOGRAD_TILES_PER_CHANNEL * max(c, o))
        planes = wino.scheme_for(sh).planes
        nb = max(_images_per_chunk(n, planes * (c + o) * th * tw * itemsize),
                 min(n, -(-min_tiles // (th * tw))))
        return _Plan(n, c, h, wd, o, cg, kh, kw, ho, wo, sh, sw, ph, pw, dh, dw, groups,
                     False, wo, ho * wo, 0, nb, winograd=True)
    wide = not _use_direct(groups, cg) and _use_wide(stride, padding, dilation, kw, wo)
    if wide:
        wp = wd + 2 * pw
        plane = (h + 2 * ph) * wp + (kw - 1) * dw  # the last tap's run reads past the padded plane
        per_image = k * ho * wp + o * ho * wp + c * plane
    else:
        wp, plane = wo, 0
        per_image = (k + o) * ho * wo
    nb = max(_images_per_chunk(n, per_image * itemsize), min(n, -(-min_cols // (ho * wp))))
    return _Plan(n, c, h, wd, o, cg, kh, kw, ho, wo, sh, sw, ph, pw, dh, dw, groups,
                 wide, wp, ho * wp, plane, nb)


def _fill_cols(x, n0, b, q, cols, xpad):
    """cols (K, nb, P) <- the columns of images x[n0 : n0 + b] (wide-rows grid or the plain one)."""
    if q.wide:
        _im2col_wide(x, n0, b, q.kh, q.kw, q.ph, q.pw, q.dh, q.dw, xpad, cols)
    else:
        _im2col(x, n0, b, q.kh, q.kw, q.sh, q.sw, q.ph, q.pw, q.dh, q.dw, q.ho, q.wo, cols)


def _images_per_chunk(n, per_image_bytes):
    return max(1, min(n, CHUNK_BYTES // max(per_image_bytes, 1)))


def use_winograd(kernel, stride, dilation, groups, cg, og, out_hw):
    """3x3, stride 1 (or 2), no dilation, enough channels per group in and out for the 16 (25) GEMMs to
    pay, and an output big enough for the transforms to pay."""
    strides = ((1, 1), (2, 2)) if WINOGRAD_S2 else ((1, 1),)
    return (WINOGRAD and tuple(kernel) == (3, 3) and tuple(stride) in strides and tuple(dilation) == (1, 1)
            and not _use_direct(groups, cg) and min(cg, og) >= WINOGRAD_MIN_CHANNELS
            and min(out_hw) >= WINOGRAD_MIN_SIZE)


def _use_direct(groups, cg):
    return groups > 1 and cg < DIRECT_MAX_CG


def _rows(q, cin, cout, out_w, weight_grad=False):
    """3x3 stride-1 convs with few channels: the direct row kernels of cpu_conv_rows (not Winograd's)."""
    return ROWS and not q.winograd and use_rows((q.kh, q.kw), (q.sh, q.sw), (q.dh, q.dw), q.groups, cin, cout,
                                                out_w, weight_grad)


def _use_wide(stride, padding, dilation, kw, wo):
    """Stride 1 and at most 15% junk columns: each row has Wp - Wo = (kw - 1) * d junk values."""
    return tuple(stride) == (1, 1) and 20 * (kw - 1) * dilation[1] <= 3 * wo


def accumulate_gw(gw, gy2, cols2, og, kg, groups, part_name):
    """gw[g] (og, Kg) += gy_g (og, L) @ cols_g (Kg, L).T for each group, one GEMM each.

    # NOTE: we let the larger of og, Kg be the GEMM's M: OpenBLAS on 2 threads ran the small-M form of
    # this long-K product up to ~10x slower (benchmarks/NOTES.md section 1b).
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


# Each *_part function does images [lo, hi) on the calling thread (run_parts calls one per thread).
def _forward_part(x, wm, y, lo, hi, q):
    k, og, kg, nb, p, o = q.k, q.og, q.kg, q.nb, q.p, q.o
    cols = scratch("cols", (k, nb, p), x.dtype)
    xpad = scratch("xpad", (nb, q.c, q.plane), x.dtype) if q.wide else None
    c2 = cols.reshape(k, nb * p)
    # NOTE: OpenBLAS ran our GEMMs 1.3-8x faster when the output has at least as many rows as columns
    # (benchmarks/NOTES.md section 1h), so for a wide chunk we compute y.T.
    transposed = o < nb * p
    yw = scratch("out", (nb * p, o) if transposed else (o, nb * p), x.dtype)
    for n0 in range(lo, hi, nb):
        b = min(nb, hi - n0)
        _fill_cols(x, n0, b, q, cols, xpad)
        for g in range(q.groups):
            # y_g (og, b*P) = w_g (og, Kg) @ cols_g (Kg, b*P): one GEMM for the whole chunk
            wg, cg_ = wm[g * og : (g + 1) * og], c2[g * kg : (g + 1) * kg, : b * p]
            if transposed:  # y_g.T (b*P, og) = cols_g.T @ w_g.T
                np.matmul(cg_.T, wg.T, out=yw[: b * p, g * og : (g + 1) * og])
            else:
                np.matmul(wg, cg_, out=yw[g * og : (g + 1) * og, : b * p])
        if transposed:
            _store_rows(yw.reshape(nb, p, o), n0, b, q.wp, y)
        else:
            _store_planes(yw.reshape(o, nb, p), n0, b, q.wp, y)


def _gemm_buffers(q, dtype, cols_name):
    """This thread's scratch for one chunk of a backward pass: columns (K, nb, P), gy on the output grid
    (O, nb, P), and the padded planes of the wide-rows scheme (None otherwise)."""
    cols = scratch(cols_name, (q.k, q.nb, q.p), dtype)
    gyw = scratch("wide_in", (q.o, q.nb, q.p), dtype)
    xpad = scratch("xpad", (q.nb, q.c, q.plane), dtype) if q.wide else None
    return cols, gyw, xpad


def _backward_input_part(gy, wm, gx, lo, hi, q):
    """gcols (K, b*P) = w.T @ gy per chunk (on the wide grid, junk columns of gy = 0), then col2im."""
    k, og, kg, nb, p, o = q.k, q.og, q.kg, q.nb, q.p, q.o
    gcols, gyw, xpad = _gemm_buffers(q, gy.dtype, "gcols")
    gc2, g2 = gcols.reshape(k, nb * p), gyw.reshape(o, nb * p)
    for n0 in range(lo, hi, nb):
        b = min(nb, hi - n0)
        _widen(gy, n0, b, q.wp, gyw)
        for g in range(q.groups):
            # gcols_g (Kg, b*P) = w_g.T (Kg, og) @ gy_g (og, b*P)
            np.matmul(wm[g * og : (g + 1) * og].T, g2[g * og : (g + 1) * og, : b * p],
                      out=gc2[g * kg : (g + 1) * kg, : b * p])
        if q.wide:
            _col2im_wide(gcols, n0, b, q.kh, q.kw, q.ph, q.pw, q.dh, q.dw, xpad, gx)
        else:
            _col2im(gcols, n0, b, q.kh, q.kw, q.sh, q.sw, q.ph, q.pw, q.dh, q.dw, q.ho, q.wo, gx)


def _backward_weight_part(gy, x, lo, hi, q):
    """This thread's share of gw (og, Kg): sum over its images of gy @ cols.T (the caller adds the shares)."""
    k, nb, p, o = q.k, q.nb, q.p, q.o
    gw = np.zeros((o, q.kg), dtype=gy.dtype)
    cols, gyw, xpad = _gemm_buffers(q, gy.dtype, "cols")
    c2, g2 = cols.reshape(k, nb * p), gyw.reshape(o, nb * p)
    for n0 in range(lo, hi, nb):
        b = min(nb, hi - n0)
        _fill_cols(x, n0, b, q, cols, xpad)
        _widen(gy, n0, b, q.wp, gyw)  # junk columns get gy = 0, so they add nothing
        # gw_g (og, Kg) += gy_g (og, b*P) @ cols_g (Kg, b*P).T
        accumulate_gw(gw, g2[:, : b * p], c2[:, : b * p], q.og, q.kg, q.groups, "gw_part")
    return gw


def _planes(name, rows, cols, dtype, planes=16):
    """Winograd's V or M: the flat (planes, rows*cols + pad) scratch the transforms write, and its (planes,
    rows, cols) view for the GEMMs (rows = tiles, cols = channels; 16 planes, 25 for stride 2).

    # NOTE: the 16 planes are NOT a multiple of 4 KiB apart: the output transform reads several planes at
    # the same offset, and when planes were a multiple of 4 KiB apart (256 channels x 1024 tiles: ResNet's
    # layer3 weight gradient) such streams mapped to the same L1 cache sets and evicted each other (a
    # transform ran 3-8x slower: benchmarks/NOTES.md section 5g). One extra cache line per plane
    # (PLANE_PAD_BYTES) spreads them out.
    """
    flat = scratch(name, (planes, rows * cols + PLANE_PAD_BYTES // np.dtype(dtype).itemsize), dtype)
    return flat, flat[:, : rows * cols].reshape(planes, rows, cols)


def _wino_buffers(q, dtype):
    """This thread's Winograd scratch for one chunk: (tile rows, tile columns, V flat, V (planes, tiles, C),
    M flat, M (planes, tiles, O)); the same buffers serve forward, input and weight gradients."""
    th, tw = wino.tiles(q.ho, q.wo)
    planes = q.scheme.planes
    vflat, v = _planes("wino_v", q.nb * th * tw, q.c, dtype, planes)
    mflat, m = _planes("wino_m", q.nb * th * tw, q.o, dtype, planes)
    return th, tw, vflat, v, mflat, m


def _winograd_forward_part(x, u, y, lo, hi, q, epilogue=None):
    """Winograd: V = input transform, M[xi] = V[xi] @ U[xi].T (16 GEMMs per group), y = output transform."""
    nb, og, cg, sc = q.nb, q.og, q.cg, q.scheme
    th, tw, vflat, v, mflat, m = _wino_buffers(q, x.dtype)
    for n0 in range(lo, hi, nb):
        b = min(nb, hi - n0)
        tiles = b * th * tw
        wino.input_transform(x, n0, b, q.ph, q.pw, th, tw, vflat, sc)
        for g in range(q.groups):
            # M_g[xi] (tiles, og) = V_g[xi] (tiles, cg) @ U_g[xi].T (cg, og), the 16 xi in ONE stacked matmul
            # call (NumPy runs one BLAS GEMM per xi, without 16 trips through Python)
            np.matmul(v[:, :tiles, g * cg : (g + 1) * cg], u[:, g * og : (g + 1) * og].transpose(0, 2, 1),
                      out=m[:, :tiles, g * og : (g + 1) * og])
        wino.output_transform(mflat, n0, b, th, tw, y, sc, epilogue)


def _winograd_input_part(gy, u, gx, lo, hi, q):
    """Input gradient of a stride-2 Winograd conv, the forward run backwards: dM = A dY A^T (adjoint of the
    output transform), dV[xi] (tiles, cg) = dM[xi] (tiles, og) @ U[xi] (og, cg), gx = the adjoint of the
    input transform (overlapping patches add up). (Stride 1 does not need it: its input gradient is a
    forward conv with flipped weights.)"""
    nb, og, cg, sc = q.nb, q.og, q.cg, q.scheme
    th, tw, vflat, dv, mflat, dm = _wino_buffers(q, gy.dtype)
    for n0 in range(lo, hi, nb):
        b = min(nb, hi - n0)
        tiles = b * th * tw
        wino.output_transform_adjoint(gy, n0, b, th, tw, mflat, sc)
        for g in range(q.groups):
            np.matmul(dm[:, :tiles, g * og : (g + 1) * og], u[:, g * og : (g + 1) * og],
                      out=dv[:, :tiles, g * cg : (g + 1) * cg])
        wino.input_transform_adjoint(vflat, n0, b, q.ph, q.pw, th, tw, gx, sc)


def _winograd_weight_part(gy, x, lo, hi, q):
    """This thread's share of dU (16, O, cg): sum over tiles of dM[xi].T @ V[xi], dM = A dY A^T."""
    nb, o, sc = q.nb, q.o, q.scheme
    du = np.zeros((sc.planes, o, q.cg), dtype=gy.dtype)
    th, tw, vflat, v, mflat, dm = _wino_buffers(q, gy.dtype)
    for n0 in range(lo, hi, nb):
        b = min(nb, hi - n0)
        tiles = b * th * tw
        wino.input_transform(x, n0, b, q.ph, q.pw, th, tw, vflat, sc)
        wino.output_transform_adjoint(gy, n0, b, th, tw, mflat, sc)
        if q.groups == 1:  # dU[xi] += dM[xi].T (O, tiles) @ V[xi] (tiles, C), the 16 xi in one stacked call
            du += np.matmul(dm[:, :tiles].transpose(0, 2, 1), v[:, :tiles],
                            out=scratch("wino_du", du.shape, du.dtype))
        else:
            for xi in range(sc.planes):
                accumulate_gw(du[xi], dm[xi, :tiles].T, v[xi, :tiles].T, q.og, q.cg, q.groups, "gw_part")
    return du


@serialized
def conv2d_forward(x, w, stride, padding, dilation, groups):
    """y = conv2d(x, w) (no bias), NCHW. Example: ``conv2d_forward(x, w, (1, 1), (1, 1), (1, 1), 1)``."""
    return _conv2d_forward(x, w, stride, padding, dilation, groups)[0]


@serialized
def conv2d_affine_forward(x, w, stride, padding, dilation, groups, scale, shift, residual, relu):
    """[relu](conv2d(x, w) * scale[o] + shift[o] [+ residual]) (inference: an eval-time batch norm, a ResNet
    block's residual add and ReLU after the conv). Winograd convs apply it in their output transform, as
    each value is stored; the other paths in one pass over the conv's output."""
    x = prep(x)
    scale, shift = prep(scale, x.dtype), prep(shift, x.dtype)
    residual = None if residual is None else prep(residual, x.dtype)
    q = _plan(x.shape, w.shape, stride, padding, dilation, groups, x.itemsize)
    if residual is not None and residual.shape != (q.n, q.o, q.ho, q.wo):
        raise ValueError(f"conv2d_affine_forward: residual has shape {residual.shape}, "
                         f"expected {(q.n, q.o, q.ho, q.wo)}")
    if scale.shape != (q.o,) or shift.shape != (q.o,):
        raise ValueError(f"conv2d_affine_forward: scale and shift have shapes {scale.shape}, {shift.shape}, "
                         f"expected ({q.o},)")
    ep = (scale, shift, residual, bool(relu))
    y, fused = _conv2d_forward(x, w, stride, padding, dilation, groups, ep)
    if not fused:
        y3 = y.reshape(y.shape[0], y.shape[1], -1)
        r3 = y3 if residual is None else residual.reshape(y3.shape)
        _epilogue(y3, scale, shift, r3, residual is not None, bool(relu))
    return y


@njit(parallel=True, cache=True)
def _epilogue(y, scale, shift, res, has_res, relu):
    """y[n, o] = [relu](y[n, o] * scale[o] + shift[o] [+ res[n, o]]) in place, over (N, O, H*W) arrays."""
    for no in prange(y.shape[0] * y.shape[1]):
        n, o = no // y.shape[1], no % y.shape[1]
        row, rrow, s, t = y[n, o], res[n, o], scale[o], shift[o]
        for i in range(row.shape[0]):
            val = row[i] * s + t
            if has_res:
                val += rrow[i]
            if relu and val < 0:
                val = 0
            row[i] = val


def _conv2d_forward(x, w, stride, padding, dilation, groups, epilogue=None):
    """conv2d_forward -> (y, fused): fused is True when a Winograd conv applied the ``epilogue``."""
    x = prep(x)
    w = prep(w, x.dtype)
    q = _plan(x.shape, w.shape, stride, padding, dilation, groups, x.itemsize)
    if PATCH and q.n and use_patch((q.kh, q.kw), stride, padding, dilation, groups):
        return conv2d_forward_patch(x, w), False
    if _rows(q, q.cg, q.o, q.wo):
        return conv2d_forward_rows(x, w, (q.ph, q.pw)), False
    y = np.empty((q.n, q.o, q.ho, q.wo), dtype=x.dtype)
    if _use_direct(groups, q.cg):
        direct_forward(x, w, q.sh, q.sw, q.ph, q.pw, q.dh, q.dw, groups, y)
        return y, False
    if q.winograd:
        # NOTE: a small GEMM: on one BLAS thread, or OpenBLAS's woken worker keeps spinning through the
        # batch-split conv that follows (3 busy threads on 2 cores: benchmarks/NOTES.md section 5f)
        with blas_threads(1):
            u = wino.weight_transform(w, q.scheme)
        run_parts(q.n, lambda lo, hi: _winograd_forward_part(x, u, y, lo, hi, q, epilogue), q.parts())
        return y, epilogue is not None
    wm = w.reshape(q.o, q.kg)
    run_parts(q.n, lambda lo, hi: _forward_part(x, wm, y, lo, hi, q), q.parts())
    return y, False


@serialized
def conv2d_backward_input(gy, w, x_shape, stride, padding, dilation, groups):
    """dL/dx of conv2d (= a transposed convolution of ``gy``), NCHW, fresh array of ``x_shape``."""
    gy = prep(gy)
    w = prep(w, gy.dtype)
    q = _plan(x_shape, w.shape, stride, padding, dilation, groups, gy.itemsize)
    if gy.shape != (q.n, q.o, q.ho, q.wo):
        raise ValueError(f"conv2d_backward_input: gy has shape {gy.shape}, "
                         f"expected {(q.n, q.o, q.ho, q.wo)}")
    if PATCH and q.n and use_patch((q.kh, q.kw), stride, padding, dilation, groups):
        return conv2d_backward_input_patch(gy, w, (q.n, q.c, q.h, q.wd))
    gx = np.empty((q.n, q.c, q.h, q.wd), dtype=gy.dtype)
    if _use_direct(groups, q.cg):
        direct_backward_input(gy, w, q.sh, q.sw, q.ph, q.pw, q.dh, q.dw, groups, gx)
        return gx
    if q.winograd and q.sh == 2:  # stride 2 by the adjoint of its Winograd forward
        with blas_threads(1):
            u = wino.weight_transform(w, q.scheme)
        run_parts(q.n, lambda lo, hi: _winograd_input_part(gy, u, gx, lo, hi, q), q.parts())
        return gx
    qh, qw = q.dh * (q.kh - 1) - q.ph, q.dw * (q.kw - 1) - q.pw
    # the transposed conv has og inputs and cg outputs per group: Winograd if that is big enough
    flip_wino = use_winograd((q.kh, q.kw), (q.sh, q.sw), (q.dh, q.dw), groups, q.og, q.cg, (q.h, q.wd))
    flip_rows = _rows(q, q.og, q.cg, q.wd)
    if (q.sh, q.sw) == (1, 1) and qh >= 0 and qw >= 0 and (flip_wino or flip_rows
                                                           or not (q.wide and q.og >= 2 * q.cg)):
        # NOTE: two ways for stride 1, picked by GEMM shape. GEMM + col2im multiplies (Kg x og) @ (og x b*P):
        # good when og is large next to cg; the conv of gy with flipped weights here is (cg x og*k*k) @ (...),
        # whose M = cg is too small then (up to 2x slower for 32->64 @28), but it wins when og ~ cg (2-4x
        # faster than the shallow K = og GEMM for 64->64 @28; benchmarks/NOTES.md section 1d).
        # dx = conv2d(gy, flipped and transposed w, padding d (k - 1) - p): a plain forward conv
        return _conv2d_forward(gy, _flip_transpose(w, groups), (1, 1), (qh, qw), (q.dh, q.dw), groups)[0]
    wm = w.reshape(q.o, q.kg)
    run_parts(q.n, lambda lo, hi: _backward_input_part(gy, wm, gx, lo, hi, q), q.parts())
    return gx


@serialized
def conv2d_backward_weight(gy, x, w_shape, stride, padding, dilation, groups):
    """dL/dw of conv2d: sum over images of gy[n] @ cols[n].T, fresh array of ``w_shape``."""
    gy = prep(gy)
    x = prep(x, gy.dtype)
    q = _plan(x.shape, w_shape, stride, padding, dilation, groups, gy.itemsize, min_cols=WGRAD_MIN_COLS)
    if gy.shape != (q.n, q.o, q.ho, q.wo):
        raise ValueError(f"conv2d_backward_weight: gy has shape {gy.shape}, "
                         f"expected {(q.n, q.o, q.ho, q.wo)}")
    if PATCH and q.n and use_patch((q.kh, q.kw), stride, padding, dilation, groups):
        return conv2d_backward_weight_patch(gy, x, tuple(w_shape))
    if _use_direct(groups, q.cg):
        gw = np.empty(w_shape, dtype=gy.dtype)
        direct_backward_weight(gy, x, q.sh, q.sw, q.ph, q.pw, q.dh, q.dw, groups, gw)
        return gw
    if _rows(q, q.cg, q.o, q.wo, weight_grad=True):
        return conv2d_backward_weight_rows(gy, x, (q.ph, q.pw))
    part = _winograd_weight_part if q.winograd else _backward_weight_part
    shares = run_parts(q.n, lambda lo, hi: part(gy, x, lo, hi, q), q.parts())
    gw = shares[0]
    for share in shares[1:]:
        gw += share
    if q.winograd:
        with blas_threads(1):
            return wino.weight_transform_adjoint(gw, gy.dtype, q.scheme)  # dL/dw = G^T dU G
    return gw.reshape(w_shape)
