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

    M[xi] (O, T) = U[xi] (O, C) @ V[xi] (C, T)          (T = tiles in the chunk: 16 GEMMs per chunk)

then each tile's output is A^T M A. The transforms are additions only (coefficients 0, +-1, +-1/2), so
the cost moves from 9*C*O multiply-adds per output pixel to 4*C*O plus cheap transforms.

Backward passes:
* input gradient of a 3x3 stride-1 conv = the same conv of ``gy`` with flipped, transposed weights
  (``cpu_conv`` dispatches that to ``forward`` below);
* weight gradient: with dM = A dY A^T (the adjoint of the output transform), dU[xi] (O, C) = sum over
  tiles of dM[xi] (O, T) @ V[xi].T (T, C), and dL/dg = G^T dU G (the adjoint of the weight transform).

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
    # np.einsum("ai,ocij,bj->aboc", ...) (or two tensordots) took 18 ms for a 256x256 conv on every call
    u = _GG @ w.reshape(o * cg, 9).T.astype(np.float64)
    return u.astype(w.dtype).reshape(16, o, cg)


def weight_transform_adjoint(du: np.ndarray, dtype) -> np.ndarray:
    """dL/dw (O, Cg, 3, 3) = G^T dU[o, c] G from dU (16, O, Cg) (float64 sums)."""
    o, cg = du.shape[1:]
    gw = _GG.T @ du.reshape(16, o * cg).astype(np.float64)  # (9, O*C): the transpose of the forward map
    return np.ascontiguousarray(gw.T, dtype=dtype).reshape(o, cg, 3, 3)


# NOTE: the three transforms below are pure memory traffic plus a few additions per value. Written tile by
# tile with small 4x4 scratch arrays and bounds checks they ran at ~0.6 GB/s (20 ms for a conv the GEMMs do
# in 13 ms). They now work a row of tiles at a time: pad the plane once, combine 4 input rows into the
# rows of B^T d with contiguous loops, and give each of the 16 outputs its own contiguous stream over the
# tiles of the row, so LLVM can vectorise the inner loops.
@njit(nogil=True, cache=True)
def input_transform(x, n0, nb, ph, pw, th, tw, v):
    """v[4a + b, c, (k*th + ti)*tw + tj] = (B^T d B)[a, b] for image n0 + k, channel c and the 4x4 patch d
    whose top-left corner is (2 ti - ph, 2 tj - pw) (zeros outside the image)."""
    c_, h, w = x.shape[1], x.shape[2], x.shape[3]
    hp, wpad = 2 * th + 2, 2 * tw + 2
    xp = np.zeros((hp, wpad), dtype=x.dtype)  # the padded plane (rows/columns past the tiles are cut)
    t = np.empty((4, wpad), dtype=x.dtype)  # rows of B^T d for one row of tiles
    i_lo, i_hi = max(0, -ph), min(h, hp - ph)
    j_lo, j_hi = max(0, -pw), min(w, wpad - pw)
    for k in range(nb):
        for c in range(c_):
            plane = x[n0 + k, c]
            for i in range(i_lo, i_hi):
                for j in range(j_lo, j_hi):
                    xp[i + ph, j + pw] = plane[i, j]
            for ti in range(th):
                r = 2 * ti
                for j in range(wpad):  # t = B^T d, for every column of the 4-row strip
                    a0, a1, a2, a3 = xp[r, j], xp[r + 1, j], xp[r + 2, j], xp[r + 3, j]
                    t[0, j] = a0 - a2
                    t[1, j] = a1 + a2
                    t[2, j] = a2 - a1
                    t[3, j] = a1 - a3
                base = (k * th + ti) * tw
                for a in range(4):  # V = t B, row a of every tile in the strip
                    for tj in range(tw):
                        q = 2 * tj
                        t0, t1, t2, t3 = t[a, q], t[a, q + 1], t[a, q + 2], t[a, q + 3]
                        v[4 * a + 0, c, base + tj] = t0 - t2
                        v[4 * a + 1, c, base + tj] = t1 + t2
                        v[4 * a + 2, c, base + tj] = t2 - t1
                        v[4 * a + 3, c, base + tj] = t1 - t3


@njit(nogil=True, cache=True)
def output_transform(m, n0, nb, th, tw, y):
    """y[n0 + k, o, 2 ti + r, 2 tj + s] = (A^T M A)[r, s] with M[a, b] = m[4a + b, o, (k*th + ti)*tw + tj]
    (the parts of the last tiles that hang over the edge are dropped)."""
    o_, ho, wo = y.shape[1], y.shape[2], y.shape[3]
    rows = np.empty((2, 2 * tw), dtype=y.dtype)
    for k in range(nb):
        for o in range(o_):
            dst = y[n0 + k, o]
            for ti in range(th):
                base = (k * th + ti) * tw
                for tj in range(tw):
                    col = base + tj
                    # s = A^T M (2 x 4): s0j = m0j + m1j + m2j, s1j = m1j - m2j - m3j
                    s00 = m[0, o, col] + m[4, o, col] + m[8, o, col]
                    s01 = m[1, o, col] + m[5, o, col] + m[9, o, col]
                    s02 = m[2, o, col] + m[6, o, col] + m[10, o, col]
                    s03 = m[3, o, col] + m[7, o, col] + m[11, o, col]
                    s10 = m[4, o, col] - m[8, o, col] - m[12, o, col]
                    s11 = m[5, o, col] - m[9, o, col] - m[13, o, col]
                    s12 = m[6, o, col] - m[10, o, col] - m[14, o, col]
                    s13 = m[7, o, col] - m[11, o, col] - m[15, o, col]
                    # Y = s A (2 x 2)
                    rows[0, 2 * tj] = s00 + s01 + s02
                    rows[0, 2 * tj + 1] = s01 - s02 - s03
                    rows[1, 2 * tj] = s10 + s11 + s12
                    rows[1, 2 * tj + 1] = s11 - s12 - s13
                for r in range(min(2, ho - 2 * ti)):
                    for j in range(wo):
                        dst[2 * ti + r, j] = rows[r, j]


@njit(nogil=True, cache=True)
def output_transform_adjoint(gy, n0, nb, th, tw, dm):
    """dm[4a + b, o, col] = (A dY A^T)[a, b] for the 2x2 tile dY of gy[n0 + k, o] (zeros past the edge):
    the adjoint of ``output_transform``, used by the weight gradient."""
    o_, ho, wo = gy.shape[1], gy.shape[2], gy.shape[3]
    rows = np.zeros((2, 2 * tw), dtype=gy.dtype)  # two rows of gy, zero past the last column
    for k in range(nb):
        for o in range(o_):
            src = gy[n0 + k, o]
            for ti in range(th):
                for r in range(2):
                    if 2 * ti + r < ho:
                        for j in range(wo):
                            rows[r, j] = src[2 * ti + r, j]
                    else:
                        rows[r, :] = 0
                base = (k * th + ti) * tw
                for tj in range(tw):
                    col = base + tj
                    y00, y01 = rows[0, 2 * tj], rows[0, 2 * tj + 1]
                    y10, y11 = rows[1, 2 * tj], rows[1, 2 * tj + 1]
                    # r = A dY (4 x 2), rows of A: (1, 0), (1, 1), (1, -1), (0, -1); then dM = r A^T,
                    # whose row a is (r_a0, r_a0 + r_a1, r_a0 - r_a1, -r_a1)
                    s0, d0 = y00 + y10, y00 - y10
                    s1, d1 = y01 + y11, y01 - y11
                    dm[0, o, col], dm[1, o, col], dm[2, o, col], dm[3, o, col] = (
                        y00, y00 + y01, y00 - y01, -y01)
                    dm[4, o, col], dm[5, o, col], dm[6, o, col], dm[7, o, col] = s0, s0 + s1, s0 - s1, -s1
                    dm[8, o, col], dm[9, o, col], dm[10, o, col], dm[11, o, col] = d0, d0 + d1, d0 - d1, -d1
                    dm[12, o, col], dm[13, o, col], dm[14, o, col], dm[15, o, col] = (
                        -y10, -y10 - y11, y11 - y10, y11)
