"""Direct 3x3 stride-1 convolution, a block of output rows at a time: the fast tier's path for few channels.

im2col + GEMM (``cpu_conv.py``) pays for itself when a GEMM has many rows and a deep K; a 3x3 conv with
8 or 16 channels at 64x64 or 128x128 (a U-Net's outer levels, a network's 1-channel stem) gives BLAS
(O x 9 C) @ (9 C x H W) products with tiny M and K: the im2col copy (9 C values per output pixel) and
the GEMM's call and packing overhead then cost more than the arithmetic. These kernels skip both.

For a block of ``nr`` output rows ``i0 .. i0 + nr - 1`` of image ``n`` they copy the ``nr + 2`` input rows
the block reads (per input channel, zero-padded, each row ``wp = Wo + 2`` values long, flat:
``rows[c, r * wp + jj]`` = input row ``i0 - ph + r``, column ``jj - pw``) into a small buffer. On that
flat grid output ``(i0 + r, j)`` is position ``q = r * wp + j`` and tap ``(u, v)`` reads
``rows[c, q + u * wp + v]``, so for every pair of (output channel o, input channel c) ONE pass over the
block adds all nine taps:

    acc[o, q] += sum_{u, v} w[o, c, u, v] * rows[c, q + u * wp + v]          (q = 0 .. nr * wp - 1)

(the two last columns of each grid row are junk outputs, dropped when the block is stored). The loop over
``q`` reads the rows in L1 and keeps the nine weights in registers: nine multiply-adds per load and store
of ``acc`` (LLVM vectorises it over ``q``). Blocks are independent, so ``prange`` spreads them over the
threads. A block holds at least ``ROW_BLOCK_VALUES`` outputs, so narrow images still give long vector loops.

The weight gradient is the same loop turned into nine dot products per (o, c) and block:

    dL/dw[o, c, u, v] = sum_{n, blocks, q} gy[n, o, q] * rows[c, q + u * wp + v]      (gy 0 in junk columns)

each thread summing its share of the blocks into its own float64 (O, C, 3, 3) buffer (the caller adds the
shares). The input gradient of a stride-1 conv is a stride-1 conv of ``gy`` with the flipped,
transposed weights and padding ``2 - p`` (``cpu_conv.conv2d_backward_input`` calls the forward here).

Used by ``cpu_conv`` for groups = 1, 3x3, stride 1, dilation 1 and few channel pairs (``use_rows``; where
Winograd does not apply) and, with 27 taps as three passes of nine, by ``cpu_conv3d`` (``use_rows3``);
measurements in ``benchmarks/NOTES.md`` section 9.
"""

from __future__ import annotations

import numpy as np
from numba import get_num_threads, njit, prange

# reassoc: the nine-term sums and the dot products may be regrouped into vector lanes; contract: a * b + c
# may become one fused multiply-add. No NaN / inf assumptions.
_FM = {"reassoc", "contract"}
# a block of rows is one flat loop of about this many outputs (LLVM's vector loop runs 32-64 values per
# iteration: a single 28-value row would run in its scalar remainder loop)
ROW_BLOCK_VALUES = 128
# which convs take this path (cpu_conv.use_rows): at most ROWS_MAX_PAIRS (input, output) channel pairs, or
# up to ROWS_WIDE_MAX_PAIRS when the output rows are at least ROWS_WIDE_MIN_WIDTH wide (the weight gradient
# only when it has no more output than input channels there); im2col + GEMM wins above that
ROWS_MAX_PAIRS = 256
ROWS_WIDE_MAX_PAIRS = 1024
ROWS_WIDE_MIN_WIDTH = 48
# conv3d (use_rows3): at most this many channel pairs (the weight gradient: ROWS3_MAX_PAIRS_WGRAD)
ROWS3_MAX_PAIRS = 512
ROWS3_MAX_PAIRS_WGRAD = 256


@njit(nogil=True, cache=True, inline="always")
def _load_rows(x, n, i0, nr, ph, pw, wp, rows):
    """rows[c, r * wp + jj] = x[n, c, i0 - ph + r, jj - pw] for r < nr + 2 (0 outside the image and in the
    last few values of the buffer, which only junk outputs read)."""
    c, h, wd = x.shape[1], x.shape[2], x.shape[3]
    for ch in range(c):
        dst = rows[ch]
        dst[:] = 0
        for r in range(nr + 2):
            hi = i0 - ph + r
            if 0 <= hi < h:
                dst[r * wp + pw : r * wp + pw + wd] = x[n, ch, hi]


@njit(nogil=True, cache=True, inline="always")
def _block(t, nblk, nr, ho):
    """Block t of nr output rows -> (plane, first row, rows): plane = t // nblk is the image (2-D) or the
    (image, output depth) pair n * Do + d (3-D); the last block of a plane may be short."""
    plane, i0 = t // nblk, (t % nblk) * nr
    return plane, i0, min(nr, ho - i0)


@njit(nogil=True, cache=True, inline="always")
def _add_taps(a, r0, r1, r2, k, m):
    """a[q] += the nine taps of the 3x3 kernel k over rows r0, r1, r2 (u = 0, 1, 2), for q < m."""
    w00, w01, w02 = k[0, 0], k[0, 1], k[0, 2]
    w10, w11, w12 = k[1, 0], k[1, 1], k[1, 2]
    w20, w21, w22 = k[2, 0], k[2, 1], k[2, 2]
    for q in range(m):  # q = r * wp + j; j >= Wo are junk outputs, dropped by the caller
        a[q] += (w00 * r0[q] + w01 * r0[q + 1] + w02 * r0[q + 2]
                 + w10 * r1[q] + w11 * r1[q + 1] + w12 * r1[q + 2]
                 + w20 * r2[q] + w21 * r2[q + 1] + w22 * r2[q + 2])


@njit(nogil=True, cache=True, inline="always")
def _add_dots(g, r0, r1, r2, k, m, zero):
    """k[u, v] (3x3, float64) += sum_{q < m} g[q] r_u[q + v]: the nine dot products of a weight gradient."""
    s00 = s01 = s02 = s10 = s11 = s12 = s20 = s21 = s22 = zero
    for q in range(m):
        gq = g[q]
        s00 += gq * r0[q]
        s01 += gq * r0[q + 1]
        s02 += gq * r0[q + 2]
        s10 += gq * r1[q]
        s11 += gq * r1[q + 1]
        s12 += gq * r1[q + 2]
        s20 += gq * r2[q]
        s21 += gq * r2[q + 1]
        s22 += gq * r2[q + 2]
    k[0, 0] += s00
    k[0, 1] += s01
    k[0, 2] += s02
    k[1, 0] += s10
    k[1, 1] += s11
    k[1, 2] += s12
    k[2, 0] += s20
    k[2, 1] += s21
    k[2, 2] += s22


@njit(parallel=True, cache=True, fastmath=_FM)
def rows_forward(x, w, ph, pw, nr, y):
    """y[n, o, i, j] = sum_{c, u, v} w[o, c, u, v] xpad[n, c, i + u, j + v]; y is (N, O, Ho, Wo); blocks of
    nr output rows."""
    n_, c_ = x.shape[0], x.shape[1]
    o_, ho, wo = y.shape[1], y.shape[2], y.shape[3]
    wp = wo + 2
    nblk = (ho + nr - 1) // nr
    length = nr * wp
    for t in prange(n_ * nblk):
        n, i0, rr = _block(t, nblk, nr, ho)
        rows = np.empty((c_, (nr + 2) * wp + 2), dtype=x.dtype)
        _load_rows(x, n, i0, rr, ph, pw, wp, rows)
        acc = np.zeros((o_, length), dtype=x.dtype)
        m = rr * wp
        for c in range(c_):
            # the three input rows a block row reads, as views (offsets q + 1, q + 2 only: Numba then knows
            # every index is >= 0 and emits no negative-index wraparound, which would block vectorisation)
            r0, r1, r2 = rows[c], rows[c, wp:], rows[c, 2 * wp :]
            for o in range(o_):
                _add_taps(acc[o], r0, r1, r2, w[o, c], m)
        for o in range(o_):
            for r in range(rr):
                y[n, o, i0 + r, :] = acc[o, r * wp : r * wp + wo]


@njit(parallel=True, cache=True, fastmath=_FM)
def rows_backward_weight(gy, x, ph, pw, nr, shares):
    """shares[p] (float64, (O, C, 3, 3), zeroed) += this part's row blocks of sum gy[n, o, i, j] xpad[...]."""
    n_, c_ = x.shape[0], x.shape[1]
    o_, ho, wo = gy.shape[1], gy.shape[2], gy.shape[3]
    wp = wo + 2
    nblk = (ho + nr - 1) // nr
    parts = shares.shape[0]
    for p in prange(parts):
        rows = np.empty((c_, (nr + 2) * wp + 2), dtype=x.dtype)
        g = np.zeros(nr * wp, dtype=x.dtype)  # gy's rows on the wp grid, 0 in the junk columns
        zero = np.zeros(1, dtype=x.dtype)[0]  # the sums below in x's dtype (vector lanes of float32)
        gw = shares[p]
        for t in range(p, n_ * nblk, parts):
            n, i0, rr = _block(t, nblk, nr, ho)
            m = rr * wp
            _load_rows(x, n, i0, rr, ph, pw, wp, rows)
            for o in range(o_):
                for r in range(rr):
                    g[r * wp : r * wp + wo] = gy[n, o, i0 + r]
                for c in range(c_):
                    r0, r1, r2 = rows[c], rows[c, wp:], rows[c, 2 * wp :]
                    _add_dots(g, r0, r1, r2, gw[o, c], m, zero)


def block_rows(wo: int, ho: int) -> int:
    """Output rows per block: enough for a flat inner loop of >= ROW_BLOCK_VALUES values (at most Ho)."""
    return min(max(1, -(-ROW_BLOCK_VALUES // (wo + 2))), max(ho, 1))


def use_rows(kernel, stride, dilation, groups, cin, cout, out_w, weight_grad=False) -> bool:
    """Whether a conv (cin -> cout channels, output rows out_w wide) runs on these kernels."""
    if tuple(kernel) != (3, 3) or tuple(stride) != (1, 1) or tuple(dilation) != (1, 1) or groups != 1:
        return False
    pairs = cin * cout
    if pairs <= ROWS_MAX_PAIRS:
        return True
    return (out_w >= ROWS_WIDE_MIN_WIDTH and pairs <= ROWS_WIDE_MAX_PAIRS
            and (cout <= cin or not weight_grad))


def conv2d_forward_rows(x, w, padding):
    """The forward conv (3x3, stride 1, dilation 1, groups 1) by rows_forward; fresh (N, O, Ho, Wo)."""
    ph, pw = padding
    n, _, h, wd = x.shape
    y = np.empty((n, w.shape[0], h + 2 * ph - 2, wd + 2 * pw - 2), dtype=x.dtype)
    rows_forward(x, w, ph, pw, block_rows(y.shape[3], y.shape[2]), y)
    return y


def conv2d_backward_weight_rows(gy, x, padding):
    """dL/dw (O, C, 3, 3) by rows_backward_weight, one float64 share per thread, summed here."""
    parts = max(1, min(get_num_threads(), gy.shape[0] * gy.shape[2]))
    shares = np.zeros((parts, gy.shape[1], x.shape[1], 3, 3), dtype=np.float64)
    nr = block_rows(gy.shape[3], gy.shape[2])
    rows_backward_weight(gy, x, padding[0], padding[1], nr, shares)
    return shares.sum(axis=0).astype(gy.dtype)


# ------------------------------------------------------------------------------ 3-D (NCDHW, 3x3x3)
# The same scheme one axis up: a block of output rows of one output depth slice d reads, per input channel,
# three input depth slices d - pd + t (t = 0, 1, 2) of nr + 2 rows each; the 27 taps are added as three
# passes of nine (one per depth tap t: nine weights in registers, as in 2-D).
@njit(nogil=True, cache=True, inline="always")
def _load_rows3(x, n, d, i0, nr, pd, ph, pw, wp, rows):
    """rows[c, t, r * wp + jj] = x[n, c, d - pd + t, i0 - ph + r, jj - pw] (0 outside the volume)."""
    c, dd, h, wd = x.shape[1], x.shape[2], x.shape[3], x.shape[4]
    for ch in range(c):
        for t in range(3):
            dst = rows[ch, t]
            dst[:] = 0
            z = d - pd + t
            if z < 0 or z >= dd:
                continue
            for r in range(nr + 2):
                hi = i0 - ph + r
                if 0 <= hi < h:
                    dst[r * wp + pw : r * wp + pw + wd] = x[n, ch, z, hi]


@njit(parallel=True, cache=True, fastmath=_FM)
def rows_forward3(x, w, pd, ph, pw, nr, y):
    """y[n, o, d, i, j] = sum_{c, t, u, v} w[o, c, t, u, v] xpad[n, c, d + t, i + u, j + v]."""
    n_, c_ = x.shape[0], x.shape[1]
    o_, do, ho, wo = y.shape[1], y.shape[2], y.shape[3], y.shape[4]
    wp = wo + 2
    nblk = (ho + nr - 1) // nr
    length = nr * wp
    for t_ in prange(n_ * do * nblk):
        nd, i0, rr = _block(t_, nblk, nr, ho)
        n, d = nd // do, nd % do
        rows = np.empty((c_, 3, (nr + 2) * wp + 2), dtype=x.dtype)
        _load_rows3(x, n, d, i0, rr, pd, ph, pw, wp, rows)
        acc = np.zeros((o_, length), dtype=x.dtype)
        m = rr * wp
        for c in range(c_):
            for t in range(3):
                r0, r1, r2 = rows[c, t], rows[c, t, wp:], rows[c, t, 2 * wp :]
                for o in range(o_):
                    _add_taps(acc[o], r0, r1, r2, w[o, c, t], m)
        for o in range(o_):
            for r in range(rr):
                y[n, o, d, i0 + r, :] = acc[o, r * wp : r * wp + wo]


@njit(parallel=True, cache=True, fastmath=_FM)
def rows_backward_weight3(gy, x, pd, ph, pw, nr, shares):
    """shares[p] (float64, (O, C, 3, 3, 3), zeroed) += this part's row blocks of sum gy xpad."""
    n_, c_ = x.shape[0], x.shape[1]
    o_, do, ho, wo = gy.shape[1], gy.shape[2], gy.shape[3], gy.shape[4]
    wp = wo + 2
    nblk = (ho + nr - 1) // nr
    parts = shares.shape[0]
    for p in prange(parts):
        rows = np.empty((c_, 3, (nr + 2) * wp + 2), dtype=x.dtype)
        g = np.zeros(nr * wp, dtype=x.dtype)
        zero = np.zeros(1, dtype=x.dtype)[0]
        gw = shares[p]
        for t_ in range(p, n_ * do * nblk, parts):
            nd, i0, rr = _block(t_, nblk, nr, ho)
            n, d = nd // do, nd % do
            m = rr * wp
            _load_rows3(x, n, d, i0, rr, pd, ph, pw, wp, rows)
            for o in range(o_):
                for r in range(rr):
                    g[r * wp : r * wp + wo] = gy[n, o, d, i0 + r]
                for c in range(c_):
                    for t in range(3):
                        r0, r1, r2 = rows[c, t], rows[c, t, wp:], rows[c, t, 2 * wp :]
                        _add_dots(g, r0, r1, r2, gw[o, c, t], m, zero)


def use_rows3(kernel, stride, dilation, groups, cin, cout, weight_grad=False) -> bool:
    """Whether a conv3d runs on the 3-D row kernels: 3x3x3, stride 1, dilation 1, groups 1 and at most
    ROWS3_MAX_PAIRS channel pairs (ROWS3_MAX_PAIRS_WGRAD for the weight gradient)."""
    if tuple(kernel) != (3, 3, 3) or tuple(stride) != (1, 1, 1) or tuple(dilation) != (1, 1, 1):
        return False
    return groups == 1 and cin * cout <= (ROWS3_MAX_PAIRS_WGRAD if weight_grad else ROWS3_MAX_PAIRS)


def conv3d_forward_rows(x, w, padding):
    """conv3d (3x3x3, stride 1, dilation 1, groups 1) by rows_forward3; fresh (N, O, Do, Ho, Wo)."""
    pd, ph, pw = padding
    n, _, dd, h, wd = x.shape
    y = np.empty((n, w.shape[0], dd + 2 * pd - 2, h + 2 * ph - 2, wd + 2 * pw - 2), dtype=x.dtype)
    rows_forward3(x, w, pd, ph, pw, block_rows(y.shape[4], y.shape[3]), y)
    return y


def conv3d_backward_weight_rows(gy, x, padding):
    """dL/dw (O, C, 3, 3, 3) by rows_backward_weight3, one float64 share per thread, summed here."""
    parts = max(1, min(get_num_threads(), gy.shape[0] * gy.shape[2] * gy.shape[3]))
    shares = np.zeros((parts, gy.shape[1], x.shape[1], 3, 3, 3), dtype=np.float64)
    nr = block_rows(gy.shape[4], gy.shape[3])
    rows_backward_weight3(gy, x, *padding, nr, shares)
    return shares.sum(axis=0).astype(gy.dtype)
