"""Tiled SGEMM/DGEMM in Numba CUDA with shared-memory tiles and register blocking.

``C[z] = op(A[z % Ba]) @ op(B[z % Bb])`` for a batch of ``z``, where ``op`` is the identity or a
transpose (``trans_a`` / ``trans_b``: the operand is stored as (K, M) / (N, K), so a transposed
view needs no copy). Any M, N, K (edges are zero-padded inside the tiles).

One block computes a BM x BN tile of C. Per step of BK along K, its threads copy a BM x BK tile of
A and a BK x BN tile of B into shared memory (coalesced: consecutive threads read consecutive
addresses of whichever layout the operand has), then each thread multiplies a TM x TN sub-tile held
in registers (``acc``): it reads TM + TN shared values per k and does TM * TN multiply-adds, which
is what makes the kernel compute-bound instead of shared-memory-bound. A thread's rows are
``ty + i * (BM / TM)`` (strided, not adjacent), so a warp reads distinct shared banks and writes
C coalesced.

Split-K (``splits > 1``): grid z also walks ``splits`` slices of K and each writes its own partial
C; the caller sums them. It keeps the GPU busy for skinny products with a huge K (conv weight
gradients: K = batch * H_out * W_out).

    >>> c = gemm(a, b)                       # (M, K) @ (K, N)
    >>> c = gemm(a, b_t, trans_b=True)       # a @ b_t.T, b_t stored (N, K)
"""

from __future__ import annotations

import functools
import math

import numpy as np
from numba import cuda

from .cuda_common import contiguous, dev, nb_type, simulator, xp_of

# (BM, BN, BK, TM, TN): tile of C per block, K step, per-thread register tile
GPU_TILES = (128, 128, 8, 8, 8)  # 256 threads, 8 KiB shared for float32
GPU_TILES_SMALL = (64, 64, 8, 4, 4)  # 256 threads, for small M*N
SIM_TILES = (32, 32, 8, 8, 8)  # 16 threads, few blocks: quickest in the simulator
MAX_GRID_Z = 65535


@functools.cache
def make_gemm_kernel(dtype, BM: int, BN: int, BK: int, TM: int, TN: int):
    """Compile (lazily) the batched GEMM kernel for one dtype and tile shape."""
    # NOTE: `cuda` must be a module global: the simulator swaps it in the kernel's globals.
    if BM % TM or BN % TN:
        raise ValueError(f"tile ({BM}, {BN}) must be a multiple of the thread tile ({TM}, {TN})")
    T = nb_type(dtype)
    NTX = BN // TN  # threads along N
    NTY = BM // TM  # threads along M
    NT = NTX * NTY

    @cuda.jit
    def gemm_kernel(A, B, C, M, N, K, trans_a, trans_b, splits, k_chunk):
        As = cuda.shared.array((BK, BM), T)  # As[k, m]
        Bs = cuda.shared.array((BK, BN), T)  # Bs[k, n]
        acc = cuda.local.array((TM, TN), T)
        ra = cuda.local.array(TM, T)
        rb = cuda.local.array(TN, T)
        tid = cuda.threadIdx.x
        tx = tid % NTX
        ty = tid // NTX
        row0 = cuda.blockIdx.y * BM
        col0 = cuda.blockIdx.x * BN
        z = cuda.blockIdx.z
        bz = z // splits
        ia = bz % A.shape[0]
        ib = bz % B.shape[0]
        k_lo = (z % splits) * k_chunk
        k_hi = min(K, k_lo + k_chunk)
        zero = T(0)
        for i in range(TM):
            for j in range(TN):
                acc[i, j] = zero
        for k0 in range(k_lo, k_hi, BK):
            # ---- A tile -> shared (BM x BK), coalesced along the operand's contiguous axis
            for l in range(tid, BM * BK, NT):
                if trans_a:  # A[ia] is (K, M): consecutive l -> consecutive m
                    m = l % BM
                    kk = l // BM
                else:  # A[ia] is (M, K): consecutive l -> consecutive k
                    kk = l % BK
                    m = l // BK
                gm = row0 + m
                gk = k0 + kk
                v = zero
                if gm < M and gk < k_hi:
                    v = A[ia, gk, gm] if trans_a else A[ia, gm, gk]
                As[kk, m] = v
            # ---- B tile -> shared (BK x BN)
            for l in range(tid, BN * BK, NT):
                if trans_b:  # B[ib] is (N, K)
                    kk = l % BK
                    n = l // BK
                else:  # B[ib] is (K, N)
                    n = l % BN
                    kk = l // BN
                gn = col0 + n
                gk = k0 + kk
                v = zero
                if gn < N and gk < k_hi:
                    v = B[ib, gn, gk] if trans_b else B[ib, gk, gn]
                Bs[kk, n] = v
            cuda.syncthreads()
            # ---- register-blocked outer products over the BK slice
            for kk in range(BK):
                for i in range(TM):
                    ra[i] = As[kk, ty + i * NTY]
                for j in range(TN):
                    rb[j] = Bs[kk, tx + j * NTX]
                for i in range(TM):
                    for j in range(TN):
                        acc[i, j] += ra[i] * rb[j]
            cuda.syncthreads()
        for i in range(TM):
            gm = row0 + ty + i * NTY
            if gm < M:
                for j in range(TN):
                    gn = col0 + tx + j * NTX
                    if gn < N:
                        C[z, gm, gn] = acc[i, j]

    return gemm_kernel, NT


def pick_tiles(m: int, n: int) -> tuple:
    if simulator():
        return SIM_TILES
    # small products: smaller tiles give more blocks (better occupancy of the SMs)
    if m * n <= 512 * 512:
        return GPU_TILES_SMALL
    return GPU_TILES


def gemm(a, b, trans_a: bool = False, trans_b: bool = False, splits: int = 1, tiles: tuple | None = None):
    """Batched ``op(a) @ op(b)`` with the Numba CUDA kernel.

    ``a``: (Ba, M, K) (or (Ba, K, M) with ``trans_a``), ``b``: (Bb, K, N) (or (Bb, N, K) with
    ``trans_b``), 2-D operands are taken as a batch of one. The batch is ``max(Ba, Bb)``; an operand
    with a batch of 1 (or a batch that divides it, repeated) is broadcast. Returns (batch, M, N)
    (2-D if both operands were 2-D). ``splits`` > 1 splits K (results are summed here).
    """
    two_d = a.ndim == 2 and b.ndim == 2
    a3 = a[None] if a.ndim == 2 else a
    b3 = b[None] if b.ndim == 2 else b
    if a3.ndim != 3 or b3.ndim != 3:
        raise ValueError(f"gemm: operands must be 2-D or 3-D, got shapes {a.shape} and {b.shape}")
    if a3.dtype != b3.dtype:
        raise TypeError(f"gemm: dtypes differ ({a3.dtype} and {b3.dtype})")
    m, ka = (a3.shape[2], a3.shape[1]) if trans_a else (a3.shape[1], a3.shape[2])
    kb, n = (b3.shape[2], b3.shape[1]) if trans_b else (b3.shape[1], b3.shape[2])
    if ka != kb:
        raise ValueError(
            f"gemm: inner dims differ: op(a) is ({m}, {ka}), op(b) is ({kb}, {n}) "
            f"(shapes {a.shape}, {b.shape}, trans_a={trans_a}, trans_b={trans_b})"
        )
    batch = max(a3.shape[0], b3.shape[0])
    if batch % a3.shape[0] or batch % b3.shape[0]:
        raise ValueError(f"gemm: batch sizes {a3.shape[0]} and {b3.shape[0]} do not broadcast")
    xp = xp_of(a3)
    a3, b3 = contiguous(a3), contiguous(b3)
    splits = max(1, min(int(splits), max(1, ka)))
    if ka == 0 or m == 0 or n == 0:
        out = xp.zeros((batch, m, n), dtype=a3.dtype)
        return out[0] if two_d else out
    k_chunk = -(-ka // splits)
    splits = -(-ka // k_chunk)
    BM, BN, BK, TM, TN = tiles or pick_tiles(m, n)
    kernel, nt = make_gemm_kernel(np.dtype(a3.dtype).str, BM, BN, BK, TM, TN)
    out = xp.empty((batch * splits, m, n), dtype=a3.dtype)
    # NOTE: gridDim.z is at most 65535: launch big batches in chunks. An operand holding the whole
    # batch is sliced; a repeated one (batch 1, or a divisor read as z % B) is passed whole, so
    # chunks start at multiples of its batch size.
    period = math.lcm(*[x.shape[0] for x in (a3, b3) if x.shape[0] != batch] or [1])
    step = batch if batch * splits <= MAX_GRID_Z else max(period, MAX_GRID_Z // splits // period * period)
    for z0 in range(0, batch, step):
        z1 = min(batch, z0 + step)
        a_part = a3[z0:z1] if a3.shape[0] == batch else a3
        b_part = b3[z0:z1] if b3.shape[0] == batch else b3
        grid = ((n + BN - 1) // BN, (m + BM - 1) // BM, (z1 - z0) * splits)
        kernel[grid, nt](dev(a_part), dev(b_part), dev(out[z0 * splits : z1 * splits]), m, n, ka, trans_a,
                         trans_b, splits, k_chunk)
    if splits > 1:
        out = out.reshape(batch, splits, m, n).sum(axis=1)
    return out[0] if two_d else out
