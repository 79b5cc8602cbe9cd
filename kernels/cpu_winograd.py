"""Winograd F(2x2, 3x3) convolution on the CPU: 3x3, stride-1 convs with 2.25x fewer multiplications.

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

import numpy as np
from numba import njit

# Y = A^T [(G g G^T) * (B^T d B)] A; the kernels below spell out B^T and A^T as additions.
BT = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], dtype=np.float64)
G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], dtype=np.float64)
AT = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], dtype=np.float64)


# (G (x) G)[4a + b, 3i + j] = G[a, i] G[b, j]: U[4a + b] = sum_ij G[a, i] w[i, j] G[b, j] for every filter
_GG = np.kron(G, G)


def tiles(ho: int, wo: int) -> tuple[int, int]:
    """Number of 2x2 output tiles down and across (the last ones may hang over the edge)."""
    return (ho + 1) // 2, (wo + 1) // 2


def weight_transform(w: np.ndarray) -> np.ndarray:
    """U (16, O, Cg) with U[4a + b, o, c] = (G w[o, c] G^T)[a, b]."""
    o, cg = w.shape[:2]
    # NOTE: one GEMM with the Kronecker product, U (16, O*C) = (G (x) G) (16, 9) @ w (O*C, 9).T, in float64:
    # np.einsum("ai,ocij,bj->aboc", ...) (or two tensordots) cost ~150 ms per ResNet-18 step (NOTES.md 5f)
    u = _GG @ w.reshape(o * cg, 9).T.astype(np.float64)
    return u.astype(w.dtype).reshape(16, o, cg)


def weight_transform_adjoint(du: np.ndarray, dtype) -> np.ndarray:
    """dL/dw (O, Cg, 3, 3) = G^T dU[o, c] G from dU (16, O, Cg) (float64 sums)."""
    o, cg = du.shape[1:]
    gw = _GG.T @ du.reshape(16, o * cg).astype(np.float64)  # (9, O*C): the transpose of the forward map
    return np.ascontiguousarray(gw.T, dtype=dtype).reshape(o, cg, 3, 3)


# The transforms below use a channels-last tile layout: V[xi] and M[xi] are (tiles, channels) matrices,
# stored flat as v[xi, t*C + c] with tile t = (k*th + ti)*tw + tj (image k of the chunk, tile row ti, tile
# column tj). Every inner loop then runs over the tw*C values of one row of tiles, contiguous in memory and
# long (224-1792 values), so LLVM vectorises it; the GEMMs take V[xi] as (T, C) and U[xi].T as (C, O).
# (The first version kept V as (C, T): its loops ran over one row of 7-14 tiles per channel, too short for
# vector code; benchmarks/NOTES.md section 6 has the numbers.) Each loop reads at most four input streams
# and writes one, which keeps LLVM's run-time aliasing checks few enough for it to vectorise at all.
# Where the nonzero entries of each row of B^T (two) and of A^T (three) are: the transforms below build
# their coefficient tables from these and the matrices themselves.
_BT_NZ = np.array([np.flatnonzero(row) for row in BT])  # (4, 2)
_AT_NZ = np.array([np.flatnonzero(row) for row in AT])  # (2, 3)


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


@njit(nogil=True, cache=True)
def input_transform(x, n0, nb, ph, pw, th, tw, v):
    """v[4a + b, t*C + c] = (B^T d B)[a, b] for tile t = (k*th + ti)*tw + tj of image n0 + k, channel c, and
    the 4x4 patch d whose top-left corner is (2 ti - ph, 2 tj - pw) (zeros outside the image).

    Each image is first copied, padded, into a channels-last buffer whose rows are split by column
    parity, xs[row, j % 2, j // 2, c] = xpad[c, row, j]: then element (i, j) of tile tj, for all tiles of
    a tile row and all channels at once, is the contiguous run starting at xs[2 ti + i, j % 2, j // 2, 0].
    """
    c_, h, w = x.shape[1], x.shape[2], x.shape[3]
    hp, half = 2 * th + 2, tw + 1  # padded rows; columns of each parity
    row_len = 2 * half * c_
    xs = np.zeros(hp * row_len, dtype=x.dtype)  # the padding stays zero: every image writes the same cells
    coef = np.empty((4, 4, 4), dtype=x.dtype)  # coef[a, b, 2p + q] = B^T[a, i_p] B^T[b, j_q]
    for a in range(4):
        for b in range(4):
            for p in range(2):
                for q in range(2):
                    coef[a, b, 2 * p + q] = BT[a, _BT_NZ[a, p]] * BT[b, _BT_NZ[b, q]]
    i_lo, i_hi = max(0, -ph), min(h, hp - ph)
    j_lo, j_hi = max(0, -pw), min(w, 2 * half - pw)
    n = tw * c_  # values per tile row and position
    s = np.empty(4, dtype=np.int64)  # where the four patch values of a position start in xs
    for k in range(nb):
        img = x[n0 + k]
        for i in range(i_lo, i_hi):  # NCHW -> channels-last: contiguous stores, one strided load each
            for j in range(j_lo, j_hi):
                jp = j + pw
                start = (i + ph) * row_len + ((jp & 1) * half + (jp >> 1)) * c_
                dst = xs[start : start + c_]
                for c in range(c_):
                    dst[c] = img[c, i, j]
        for ti in range(th):
            top = 2 * ti * row_len
            out = (k * th + ti) * n
            for a in range(4):
                for b in range(4):
                    # V[a, b] = sum of B^T[a, i] B^T[b, j] d[i, j] over the two nonzero i of row a, j of row b
                    for p in range(2):
                        for q in range(2):
                            i, j = _BT_NZ[a, p], _BT_NZ[b, q]
                            s[2 * p + q] = top + i * row_len + ((j & 1) * half + (j >> 1)) * c_
                    _lincomb4(v[4 * a + b, out : out + n], xs[s[0] : s[0] + n], xs[s[1] : s[1] + n],
                              xs[s[2] : s[2] + n], xs[s[3] : s[3] + n],
                              coef[a, b, 0], coef[a, b, 1], coef[a, b, 2], coef[a, b, 3])


@njit(nogil=True, cache=True)
def output_transform(m, n0, nb, th, tw, y):
    """y[n0 + k, o, 2 ti + r, 2 tj + s] = (A^T M A)[r, s] with M[a, b] = m[4a + b, t*O + o] for tile
    t = (k*th + ti)*tw + tj (the parts of the last tiles that hang over the edge are dropped)."""
    o_, ho, wo = y.shape[1], y.shape[2], y.shape[3]
    n = tw * o_
    coef = np.empty((2, 3), dtype=y.dtype)
    for r in range(2):
        for p in range(3):
            coef[r, p] = AT[r, _AT_NZ[r, p]]
    sr = np.empty((4, n), dtype=y.dtype)  # row r of A^T M, for every tile of the row and channel
    q = np.empty((2, n), dtype=y.dtype)  # q[s, tj*O + o] = Y[r, s]
    for k in range(nb):
        img = y[n0 + k]
        for ti in range(th):
            src = (k * th + ti) * n
            for r in range(min(2, ho - 2 * ti)):
                a0, a1, a2 = _AT_NZ[r, 0], _AT_NZ[r, 1], _AT_NZ[r, 2]
                for b in range(4):  # (A^T M)[r, b] = sum_a A^T[r, a] M[a, b]
                    _lincomb3(sr[b], m[4 * a0 + b, src : src + n], m[4 * a1 + b, src : src + n],
                              m[4 * a2 + b, src : src + n], coef[r, 0], coef[r, 1], coef[r, 2])
                for s in range(2):  # Y[r, s] = sum_b (A^T M)[r, b] A^T[s, b]
                    _lincomb3(q[s], sr[_AT_NZ[s, 0]], sr[_AT_NZ[s, 1]], sr[_AT_NZ[s, 2]],
                              coef[s, 0], coef[s, 1], coef[s, 2])
                row = 2 * ti + r
                for j in range(wo):  # channels-last -> NCHW: contiguous loads, one strided store each
                    src_j = q[j & 1, (j >> 1) * o_ : (j >> 1) * o_ + o_]
                    for o in range(o_):
                        img[o, row, j] = src_j[o]


@njit(nogil=True, cache=True)
def output_transform_adjoint(gy, n0, nb, th, tw, dm):
    """dm[4a + b, t*O + o] = (A dY A^T)[a, b] for the 2x2 tile dY of gy[n0 + k, o] at tile t (zeros past
    the edge): the adjoint of ``output_transform``, used by the weight gradient."""
    o_, ho, wo = gy.shape[1], gy.shape[2], gy.shape[3]
    n = tw * o_
    coef = np.empty((4, 4, 4), dtype=gy.dtype)  # coef[a, b, 2r + s] = A[a, r] A[b, s] = AT[r, a] AT[s, b]
    for a in range(4):
        for b in range(4):
            for r in range(2):
                for s in range(2):
                    coef[a, b, 2 * r + s] = AT[r, a] * AT[s, b]
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
            for a in range(4):
                for b in range(4):
                    _lincomb4(dm[4 * a + b, out : out + n], g[0], g[1], g[2], g[3],
                              coef[a, b, 0], coef[a, b, 1], coef[a, b, 2], coef[a, b, 3])
