"""Winograd F(2x2, 3x3) convolution on the CPU: 3x3, stride-1 convs with 2.25x fewer multiplications
(and a stride-2 twin with 1.44x fewer: ``F2X2_3X3_S2`` below).

The idea (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2015), for learners
-----------------------------------------------------------------------------------------------
Cut the output into 2x2 tiles. Each one depends on a 4x4 patch ``d`` of the (padded) input. For one
input channel and one 3x3 filter ``g``, the 2x2 output tile is

    Y = A^T [ (G g G^T)  *  (B^T d B) ] A        (* = elementwise, on 4x4 matrices)
              U: 4x4        V: 4x4

with the small constant matrices B^T (4x4), G (4x3) and A^T (2x4) below. Direct correlation needs
2*2*3*3 = 36 multiplications per tile and channel pair; this needs 16. Summed over input channels, the
elementwise product becomes, for each of the 16 positions xi of the 4x4 matrices, a matrix product:

    M[xi] (T, O) = V[xi] (T, C) @ U[xi].T (C, O)        (T = tiles in the chunk: 16 GEMMs per chunk)

then each tile's output is A^T M A. The transforms are additions only (coefficients 0, +-1, +-1/2), so
the cost moves from 9*C*O multiply-adds per output pixel to 4*C*O plus cheap transforms.

Stride 2 uses the same machinery with 5x5 patches 4 apart and 25 products (``Scheme``: the kernels take
the matrices' nonzero tables as arguments). Its input gradient is the forward run backwards: dM = A dY A^T,
dV[xi] = dM[xi] @ U[xi], and the adjoint of the input transform puts B dV B^T back at each (overlapping)
patch (``input_transform_adjoint``).

Backward passes:
* input gradient of a 3x3 stride-1 conv = the same conv of ``gy`` with flipped, transposed weights
  (``cpu_conv`` dispatches that to ``forward`` below);
* weight gradient: with dM = A dY A^T (the adjoint of the output transform), dU[xi] (O, C) = sum over
  tiles of dM[xi].T (O, T) @ V[xi] (T, C), and dL/dg = G^T dU G (the adjoint of the weight transform).

Numerics: the transforms are exact in binary floating point up to rounding of the sums; float32 results
differ from direct convolution by a few ulps more (tests/test_kernels_cpu.py checks both dtypes against
the NumPy reference). Each function takes a per-thread slice of images like ``cpu_conv``'s ``*_part``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from numba import njit, prange

# Y = A^T [(G g G^T) * (B^T d B)] A; the kernels below spell out B^T and A^T as additions.
BT = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], dtype=np.float64)
G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], dtype=np.float64)
AT = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], dtype=np.float64)

# Stride 2: the same form with a 5x5 patch per 2x2 output tile (patches 4 apart) and 25 products instead of
# 36. In 1-D, the two outputs y0 = w0 x0 + w1 x1 + w2 x2 and y1 = w0 x2 + w1 x3 + w2 x4 split by tap parity:
# the even taps (w0, w2) on the even inputs (x0, x2, x4) are F(2, 2) (3 products: (x0 - x2) w0,
# x2 (w0 + w2), (x4 - x2) w2), the odd tap w1 on x1 and x3 is 2 products; 5 instead of 6, and 5 x 5 = 25
# instead of 36 in 2-D (1.44x fewer multiplications). The coefficients are 0 and +-1: no rounding beyond
# the sums'.
BT_S2 = np.array([[1, 0, -1, 0, 0], [0, 0, 1, 0, 0], [0, 0, -1, 0, 1], [0, 1, 0, 0, 0], [0, 0, 0, 1, 0]],
                 dtype=np.float64)
G_S2 = np.array([[1, 0, 0], [1, 0, 1], [0, 0, 1], [0, 1, 0], [0, 1, 0]], dtype=np.float64)
AT_S2 = np.array([[1, 1, 0, 1, 0], [0, 1, 1, 0, 1]], dtype=np.float64)


def _nonzeros(mat: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(index, value) tables of the nonzero entries of each row of ``mat``, padded to ``width`` per row with
    value-0 entries (so that every row is a fixed-length sum in the kernels)."""
    idx = np.zeros((mat.shape[0], width), dtype=np.int64)
    val = np.zeros((mat.shape[0], width), dtype=np.float64)
    for r, row in enumerate(mat):
        nz = np.flatnonzero(row)
        assert len(nz) <= width, "a transform row with more nonzeros than its kernel sums"
        idx[r, : len(nz)], val[r, : len(nz)] = nz, row[nz]
    return idx, val


@dataclass(frozen=True)
class Scheme:
    """One Winograd algorithm for 3x3 kernels: a p x p input patch per 2x2 output tile, patches ``step``
    apart (2 for stride 1, 4 for stride 2), p*p products. The kernels take its tables as arguments."""

    bt: np.ndarray  # (p, p)
    g: np.ndarray  # (p, 3)
    at: np.ndarray  # (2, p)
    step: int

    @property
    def p(self) -> int:
        return self.bt.shape[0]

    @property
    def planes(self) -> int:
        return self.p * self.p

    @property
    def gg(self) -> np.ndarray:  # (G (x) G)[p a + b, 3 i + j] = G[a, i] G[b, j]
        return np.kron(self.g, self.g)

    # the (index, value) tables of the nonzero entries the kernels sum (computed once per scheme)
    @cached_property
    def bt_rows(self):
        return _nonzeros(self.bt, 2)

    @cached_property
    def bt_cols(self):
        return _nonzeros(self.bt.T, 3)

    @cached_property
    def at_rows(self):
        return _nonzeros(self.at, 3)

    @cached_property
    def gg_rows(self):
        return _nonzeros(self.gg, 9)

    @cached_property
    def gg_cols(self):
        return _nonzeros(self.gg.T, 9)


F2X2_3X3 = Scheme(BT, G, AT, 2)
F2X2_3X3_S2 = Scheme(BT_S2, G_S2, AT_S2, 4)


def scheme_for(stride: int) -> Scheme:
    """The Winograd scheme of a 3x3 conv of this stride (1 or 2)."""
    return F2X2_3X3 if stride == 1 else F2X2_3X3_S2


def tiles(ho: int, wo: int) -> tuple[int, int]:
    """Number of 2x2 output tiles down and across (the last ones may hang over the edge)."""
    return (ho + 1) // 2, (wo + 1) // 2


def weight_transform(w: np.ndarray, scheme: Scheme = F2X2_3X3) -> np.ndarray:
    """U (P, O, Cg) with U[p a + b, o, c] = (G w[o, c] G^T)[a, b] (P = p*p: 16, or 25 for stride 2)."""
    o, cg = w.shape[:2]
    (gi, gv), u = scheme.gg_rows, np.empty((scheme.planes, o * cg), dtype=w.dtype)
    _weight_transform(np.ascontiguousarray(w).reshape(o * cg, 9), gi, gv, u)
    return u.reshape(scheme.planes, o, cg)


def weight_transform_adjoint(du: np.ndarray, dtype, scheme: Scheme = F2X2_3X3) -> np.ndarray:
    """dL/dw (O, Cg, 3, 3) = G^T dU[o, c] G from dU (P, O, Cg) (float64 sums)."""
    o, cg = du.shape[1:]
    (gi, gv), gw = scheme.gg_cols, np.empty((o * cg, 9), dtype=dtype)
    _weight_transform_adjoint(np.ascontiguousarray(du).reshape(scheme.planes, o * cg), gi, gv, gw)
    return gw.reshape(o, cg, 3, 3)


# NOTE: a parallel Numba loop over the O*C filters, summing in float64 only the nonzero terms of G (x) G: the
# earlier float64 GEMM with the dense (P, 9) Kronecker product (plus its casts and transposes) ran on one
# thread for 7-9 ms per call at ResNet's layer4 (benchmarks/NOTES.md section 12a)
_WT_BLOCK = 64  # filters per block: their 9 taps are transposed into a (9, block) buffer, then every plane of
# U is a vectorised sum of a few of its rows


@njit(parallel=True, cache=True)
def _weight_transform(w9, gi, gv, u):
    nf = w9.shape[0]
    for blk in prange((nf + _WT_BLOCK - 1) // _WT_BLOCK):
        r0 = blk * _WT_BLOCK
        m = min(_WT_BLOCK, nf - r0)
        taps = np.empty((9, _WT_BLOCK), dtype=np.float64)
        for r in range(m):
            for k in range(9):
                taps[k, r] = w9[r0 + r, k]
        acc = np.empty(_WT_BLOCK, dtype=np.float64)
        for xi in range(gi.shape[0]):
            acc[:] = 0.0
            for e in range(gi.shape[1]):
                c = gv[xi, e]
                if c != 0.0:
                    row = taps[gi[xi, e]]
                    for r in range(m):
                        acc[r] += c * row[r]
            dst = u[xi, r0 : r0 + m]
            for r in range(m):
                dst[r] = acc[r]


@njit(parallel=True, cache=True)
def _weight_transform_adjoint(du, gi, gv, gw):
    nf = gw.shape[0]
    for blk in prange((nf + _WT_BLOCK - 1) // _WT_BLOCK):
        r0 = blk * _WT_BLOCK
        m = min(_WT_BLOCK, nf - r0)
        acc = np.empty((9, _WT_BLOCK), dtype=np.float64)
        for k in range(9):
            acc[k, :] = 0.0
            for e in range(gi.shape[1]):
                c = gv[k, e]
                if c != 0.0:
                    src = du[gi[k, e], r0 : r0 + m]
                    for r in range(m):
                        acc[k, r] += c * src[r]
        for r in range(m):
            for k in range(9):
                gw[r0 + r, k] = acc[k, r]


# The transforms below use a channels-last tile layout: V[xi] and M[xi] are (tiles, channels) matrices,
# stored flat as v[xi, t*C + c] with tile t = (k*th + ti)*tw + tj (image k of the chunk, tile row ti, tile
# column tj). Every inner loop then runs over the tw*C values of one row of tiles, contiguous in memory and
# long (224-1792 values), so LLVM vectorises it; the GEMMs take V[xi] as (T, C) and U[xi].T as (C, O).
# (The first version kept V as (C, T): its loops ran over one row of 7-14 tiles per channel, too short for
# vector code; benchmarks/NOTES.md section 6 has the numbers.) Each loop reads at most four input streams
# and writes one, which keeps LLVM's run-time aliasing checks few enough for it to vectorise at all.
# Each row of B^T has at most two nonzero entries and each row of A^T three: the transforms take these
# (index, value) tables (``Scheme.tables``) and sum that many streams per output.


@njit(nogil=True, cache=True, inline="always")
def _lincomb4(dst, p0, p1, p2, p3, c0, c1, c2, c3):
    """dst = c0 p0 + c1 p1 + c2 p2 + c3 p3 (1-D arrays of one length).

    # NOTE: inlined into the caller: called as a function, passing the four array views cost 15-40 % of the
    # transforms' time (benchmarks/NOTES.md section 6a).
    """
    for f in range(dst.shape[0]):
        dst[f] = c0 * p0[f] + c1 * p1[f] + c2 * p2[f] + c3 * p3[f]


@njit(nogil=True, cache=True, inline="always")
def _lincomb3(dst, p0, p1, p2, c0, c1, c2):
    """dst = c0 p0 + c1 p1 + c2 p2 (1-D arrays of one length)."""
    for f in range(dst.shape[0]):
        dst[f] = c0 * p0[f] + c1 * p1[f] + c2 * p2[f]


def input_transform(x, n0, nb, ph, pw, th, tw, v, scheme: Scheme = F2X2_3X3):
    """v[P a + b, t*C + c] = (B^T d B)[a, b] for tile t = (k*th + ti)*tw + tj of image n0 + k, channel c, and
    the p x p patch d whose top-left corner is (step ti - ph, step tj - pw) (zeros outside the image)."""
    bi, bv = scheme.bt_rows
    _input_transform(x, n0, nb, ph, pw, th, tw, v, bi, bv.astype(x.dtype), scheme.step)


def input_transform_adjoint(dv, n0, nb, ph, pw, th, tw, gx, scheme: Scheme = F2X2_3X3):
    """gx[n0 + k] = the sum over tiles of B dV B^T put back at each tile's patch (overlapping patches add
    up; what falls on the padding is dropped): the adjoint of ``input_transform``, used by the input
    gradient of a stride-2 conv."""
    ci, cv = scheme.bt_cols
    _input_transform_adjoint(dv, n0, nb, ph, pw, th, tw, gx, ci, cv.astype(gx.dtype), scheme.step)


def output_transform(m, n0, nb, th, tw, y, scheme: Scheme = F2X2_3X3, epilogue=None):
    """y[n0 + k, o, 2 ti + r, 2 tj + s] = (A^T M A)[r, s] with M[a, b] = m[p a + b, t*O + o] for tile
    t = (k*th + ti)*tw + tj (the parts of the last tiles that hang over the edge are dropped).

    ``epilogue = (scale, shift, residual, relu)`` stores [relu](Y * scale[o] + shift[o] [+ residual]) instead
    (an eval-time batch norm, a ResNet block's residual add and its ReLU, applied as each value is stored).
    """
    ai, av = scheme.at_rows
    if epilogue is None:
        scale = shift = np.empty(0, dtype=y.dtype)
        res, mode = y, 0
    else:
        scale, shift, residual, relu = epilogue
        res = y if residual is None else residual
        mode = 1 + (2 if residual is not None else 0) + (4 if relu else 0)
    _output_transform(m, n0, nb, th, tw, y, ai, av.astype(y.dtype), scheme.p, scale, shift, res, mode)


def output_transform_adjoint(gy, n0, nb, th, tw, dm, scheme: Scheme = F2X2_3X3):
    """dm[p a + b, t*O + o] = (A dY A^T)[a, b] for the 2x2 tile dY of gy[n0 + k, o] at tile t (zeros past
    the edge): the adjoint of ``output_transform``, used by the weight gradient (and stride 2's input one)."""
    _output_transform_adjoint(gy, n0, nb, th, tw, dm, scheme.at.astype(gy.dtype))


@njit(nogil=True, cache=True)
def _input_transform(x, n0, nb, ph, pw, th, tw, v, bi, bv, step):
    # Each image is first copied, padded, into a channels-last buffer whose rows are split by column residue
    # mod step, xs[row, j % step, j // step, c] = xpad[c, row, j]: then element (i, j) of tile tj, for all
    # tiles of a tile row and all channels at once, is the contiguous run starting at
    # xs[step ti + i, j % step, tj + j // step, 0].
    c_, h, w = x.shape[1], x.shape[2], x.shape[3]
    p_ = bi.shape[0]
    part = tw + (p_ - 1) // step
    hp, row_len = step * th + p_ - step, step * part * c_
    xs = np.zeros(hp * row_len, dtype=x.dtype)  # the padding stays zero: every image writes the same cells
    coef = np.empty((p_, p_, 4), dtype=x.dtype)  # coef[a, b, 2 r + q] = B^T[a, i_r] B^T[b, j_q]
    for a in range(p_):
        for b in range(p_):
            for r in range(2):
                for q in range(2):
                    coef[a, b, 2 * r + q] = bv[a, r] * bv[b, q]
    i_lo, i_hi = max(0, -ph), min(h, hp - ph)
    j_lo, j_hi = max(0, -pw), min(w, step * part - pw)
    n = tw * c_  # values per tile row and position
    s = np.empty(4, dtype=np.int64)  # where the four patch values of a position start in xs
    for k in range(nb):
        img = x[n0 + k]
        for i in range(i_lo, i_hi):  # NCHW -> channels-last: contiguous stores, one strided load each
            for j in range(j_lo, j_hi):
                jp = j + pw
                start = (i + ph) * row_len + ((jp % step) * part + jp // step) * c_
                dst = xs[start : start + c_]
                for c in range(c_):
                    dst[c] = img[c, i, j]
        for ti in range(th):
            top = step * ti * row_len
            out = (k * th + ti) * n
            for a in range(p_):
                for b in range(p_):
                    # V[a, b] = sum of B^T[a, i] B^T[b, j] d[i, j] over the two nonzero i of row a, j of row b
                    for r in range(2):
                        for q in range(2):
                            i, j = bi[a, r], bi[b, q]
                            s[2 * r + q] = top + i * row_len + ((j % step) * part + j // step) * c_
                    _lincomb4(v[p_ * a + b, out : out + n], xs[s[0] : s[0] + n], xs[s[1] : s[1] + n],
                              xs[s[2] : s[2] + n], xs[s[3] : s[3] + n],
                              coef[a, b, 0], coef[a, b, 1], coef[a, b, 2], coef[a, b, 3])


@njit(nogil=True, cache=True)
def _input_transform_adjoint(dv, n0, nb, ph, pw, th, tw, gx, ci, cv, step):
    # the transpose of _input_transform: for each patch position (i, j), the run of all tiles of a tile row
    # gets sum_ab B^T[a, i] B^T[b, j] dV[a, b], in two passes (over a, then over b: <= 3 nonzeros each)
    c_, h, w = gx.shape[1], gx.shape[2], gx.shape[3]
    p_ = ci.shape[0]
    part = tw + (p_ - 1) // step
    hp, row_len = step * th + p_ - step, step * part * c_
    xs = np.empty(hp * row_len, dtype=gx.dtype)
    n = tw * c_
    t = np.empty((p_, p_, n), dtype=gx.dtype)  # t[i, b] = sum_a B^T[a, i] dV[a, b]
    i_lo, i_hi = max(0, -ph), min(h, hp - ph)
    j_lo, j_hi = max(0, -pw), min(w, step * part - pw)
    for k in range(nb):
        xs[:] = 0
        for ti in range(th):
            top = step * ti * row_len
            src = (k * th + ti) * n
            for i in range(p_):
                a0, a1, a2 = ci[i, 0], ci[i, 1], ci[i, 2]
                for b in range(p_):
                    _lincomb3(t[i, b], dv[p_ * a0 + b, src : src + n], dv[p_ * a1 + b, src : src + n],
                              dv[p_ * a2 + b, src : src + n], cv[i, 0], cv[i, 1], cv[i, 2])
            for i in range(p_):
                for j in range(p_):
                    b0, b1, b2 = ci[j, 0], ci[j, 1], ci[j, 2]
                    c0, c1, c2 = cv[j, 0], cv[j, 1], cv[j, 2]
                    st = top + i * row_len + ((j % step) * part + j // step) * c_
                    dst, t0, t1, t2 = xs[st : st + n], t[i, b0], t[i, b1], t[i, b2]
                    for f in range(n):
                        dst[f] += c0 * t0[f] + c1 * t1[f] + c2 * t2[f]
        img = gx[n0 + k]
        for i in range(i_lo, i_hi):  # channels-last -> NCHW, the padding dropped
            for j in range(j_lo, j_hi):
                jp = j + pw
                start = (i + ph) * row_len + ((jp % step) * part + jp // step) * c_
                src_c = xs[start : start + c_]
                for c in range(c_):
                    img[c, i, j] = src_c[c]
        for i in range(h):  # rows and columns no patch reaches (past the last tile) get no gradient
            for j in range(w):
                if i < i_lo or i >= i_hi or j < j_lo or j >= j_hi:
                    for c in range(c_):
                        img[c, i, j] = 0


@njit(nogil=True, cache=True)
def _output_transform(m, n0, nb, th, tw, y, ai, av, p_, scale, shift, res, mode):
    o_, ho, wo = y.shape[1], y.shape[2], y.shape[3]
    n = tw * o_
    sr = np.empty((p_, n), dtype=y.dtype)  # row r of A^T M, for every tile of the row and channel
    q = np.empty((2, n), dtype=y.dtype)  # q[s, tj*O + o] = Y[r, s]
    for k in range(nb):
        img, rimg = y[n0 + k], res[n0 + k]
        for ti in range(th):
            src = (k * th + ti) * n
            for r in range(min(2, ho - 2 * ti)):
                a0, a1, a2 = ai[r, 0], ai[r, 1], ai[r, 2]
                for b in range(p_):  # (A^T M)[r, b] = sum_a A^T[r, a] M[a, b]
                    _lincomb3(sr[b], m[p_ * a0 + b, src : src + n], m[p_ * a1 + b, src : src + n],
                              m[p_ * a2 + b, src : src + n], av[r, 0], av[r, 1], av[r, 2])
                for s in range(2):  # Y[r, s] = sum_b (A^T M)[r, b] A^T[s, b]
                    _lincomb3(q[s], sr[ai[s, 0]], sr[ai[s, 1]], sr[ai[s, 2]], av[s, 0], av[s, 1], av[s, 2])
                row = 2 * ti + r
                for j in range(wo):  # channels-last -> NCHW: contiguous loads, one strided store each
                    src_j = q[j & 1, (j >> 1) * o_ : (j >> 1) * o_ + o_]
                    if mode == 0:
                        for o in range(o_):
                            img[o, row, j] = src_j[o]
                        continue
                    for o in range(o_):  # the epilogue: y * scale + shift [+ residual] [relu]
                        val = src_j[o] * scale[o] + shift[o]
                        if mode & 2:
                            val += rimg[o, row, j]
                        if mode & 4 and val < 0:  # NaN stays NaN, as relu_forward
                            val = 0
                        img[o, row, j] = val


@njit(nogil=True, cache=True)
def _output_transform_adjoint(gy, n0, nb, th, tw, dm, at):
    o_, ho, wo = gy.shape[1], gy.shape[2], gy.shape[3]
    p_ = at.shape[1]
    n = tw * o_
    coef = np.empty((p_, p_, 4), dtype=gy.dtype)  # coef[a, b, 2r + s] = A[a, r] A[b, s] = AT[r, a] AT[s, b]
    for a in range(p_):
        for b in range(p_):
            for r in range(2):
                for s in range(2):
                    coef[a, b, 2 * r + s] = at[r, a] * at[s, b]
    g = np.zeros((4, n), dtype=gy.dtype)  # g[2r + s, tj*O + o] = dY[r, s] of tile tj, channel o
    for k in range(nb):
        img = gy[n0 + k]
        for ti in range(th):
            for r in range(2):
                row = 2 * ti + r
                if row >= ho:
                    g[2 * r] = 0
                    g[2 * r + 1] = 0
                    continue
                for j in range(wo):  # NCHW -> channels-last
                    dst = g[2 * r + (j & 1), (j >> 1) * o_ : (j >> 1) * o_ + o_]
                    for o in range(o_):
                        dst[o] = img[o, row, j]
                if wo & 1:  # the last tile's right column hangs over the edge
                    g[2 * r + 1, (wo >> 1) * o_ :] = 0
            out = (k * th + ti) * n
            for a in range(p_):
                for b in range(p_):
                    _lincomb4(dm[p_ * a + b, out : out + n], g[0], g[1], g[2], g[3],
                              coef[a, b, 0], coef[a, b, 1], coef[a, b, 2], coef[a, b, 3])
