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
gradients: K = batch * H_out * W_out; :func:`auto_splits` chooses the factor). Shared tiles have two
stages: slice t + 1 is loaded into registers while slice t is multiplied. Batches beyond the grid's
z limit launch in chunks (:func:`batch_chunks`); empty products return zeros. The tile shape follows
the output (:func:`pick_tiles`): 128 x 128, 64 x 128 when M <= 64, 128 x 64 when N <= 64, 64 x 64
for small products and float64. The shape checks and chunking are shared with the tensor-core GEMM
(``tensorcore.gemm``).

    >>> c = gemm(a, b)                       # (M, K) @ (K, N)
    >>> c = gemm(a, b_t, trans_b=True)       # a @ b_t.T, b_t stored (N, K)
"""

from __future__ import annotations

import functools
import math

import numpy as np
from numba import cuda

from .cuda_common import contiguous, dev, nb_type, simulator, stream, xp_of

# (BM, BN, BK, TM, TN): tile of C per block, K step, per-thread register tile; every GPU tile has 256 threads
GPU_TILES = (128, 128, 8, 8, 8)  # 16 KiB shared (two stages) for float32
GPU_TILES_SMALL = (64, 64, 8, 4, 4)  # small M*N: more blocks
GPU_TILES_WIDE = (64, 128, 8, 4, 8)  # M <= 64 (conv weight gradients, the fc layers): no half-empty tiles
GPU_TILES_TALL = (128, 64, 8, 8, 4)  # N <= 64
SIM_TILES = (32, 32, 8, 8, 8)  # 16 threads, few blocks: quickest in the simulator
# blocks per SM ptxas must fit (launch bounds: 65536 / (2 * 256) = 128 registers) for register tiles of at
# most CAP_TILE_BYTES; bigger ones (8 x 8 floats: 64 accumulators) spill under that cap and run uncapped
MIN_BLOCKS = 2
CAP_TILE_BYTES = 128
MAX_GRID_Z = 65535  # gridDim.z limit: bigger batches launch in chunks (batch_chunks)


@functools.cache
def make_gemm_kernel(dtype, BM: int, BN: int, BK: int, TM: int, TN: int, trans_a: bool = False,
                     trans_b: bool = False):
    """Compile (lazily) the batched GEMM kernel for one dtype, tile shape and operand layout.

    Register tiles and shared tiles are indexed ``[k, i, t]`` (loop counter, compile-time constant,
    per-thread offset) rather than ``[k, t + i * NT]``: the constant part then folds into the load
    instruction's offset, so the inner loop keeps no per-``i`` address registers (ptxas -v, sm_90,
    128 x 128 float32 tile: 222 -> 200 registers; 64-bit integer instructions per k step of 64 FMAs:
    77 -> 15; the float64 128-tile: 20 bytes of spills -> none). Two shared stages: the next K-slice is
    read from global memory into registers while the current one is multiplied (one barrier per
    slice instead of two). ``trans_a`` / ``trans_b`` are compile-time constants (one kernel per layout).
    """
    # NOTE: `cuda` must be a module global: the simulator swaps it in the kernel's globals.
    if BM % TM or BN % TN:
        raise ValueError(f"tile ({BM}, {BN}) must be a multiple of the thread tile ({TM}, {TN})")
    T = nb_type(dtype)
    NTX = BN // TN  # threads along N
    NTY = BM // TM  # threads along M
    NT = NTX * NTY
    if (BM * BK) % NT or (BN * BK) % NT:
        raise ValueError(f"tile ({BM}, {BN}, {BK}) cannot be loaded evenly by {NT} threads")
    LA = BM * BK // NT  # A values each thread loads per K-slice
    LB = BN * BK // NT

    def gemm_kernel(A, B, C, M, N, K, splits, k_chunk):
        # As[s, k, i, t] holds op(A)[row0 + t + i * NTY, k0 + k] of stage s (row m = t + i * NTY)
        As = cuda.shared.array((2, BK, TM, NTY), T)
        Bs = cuda.shared.array((2, BK, TN, NTX), T)
        acc = cuda.local.array((TM, TN), T)
        ra = cuda.local.array(TM, T)
        rb = cuda.local.array(TN, T)
        pa = cuda.local.array(LA, T)  # the next slice, in flight
        pb = cuda.local.array(LB, T)
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
        n_slices = (k_hi - k_lo + BK - 1) // BK
        for t in range(n_slices + 1):
            # ---- read slice t from global memory into registers (coalesced along the stored layout)
            if t < n_slices:
                k0 = k_lo + t * BK
                for r in range(LA):
                    l = tid + r * NT
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
                    pa[r] = v
                for r in range(LB):
                    l = tid + r * NT
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
                    pb[r] = v
            # ---- multiply slice t - 1 (stage (t - 1) % 2) while those loads are in flight
            if t > 0:
                s = (t - 1) % 2
                for kk in range(BK):
                    for i in range(TM):
                        ra[i] = As[s, kk, i, ty]
                    for j in range(TN):
                        rb[j] = Bs[s, kk, j, tx]
                    for i in range(TM):
                        for j in range(TN):
                            acc[i, j] += ra[i] * rb[j]
            # ---- registers -> stage t % 2 (its last readers finished before the previous barrier)
            if t < n_slices:
                s = t % 2
                for r in range(LA):
                    l = tid + r * NT
                    if trans_a:
                        m = l % BM
                        kk = l // BM
                    else:
                        kk = l % BK
                        m = l // BK
                    As[s, kk, m // NTY, m % NTY] = pa[r]
                for r in range(LB):
                    l = tid + r * NT
                    if trans_b:
                        kk = l % BK
                        n = l // BK
                    else:
                        n = l % BN
                        kk = l // BN
                    Bs[s, kk, n // NTX, n % NTX] = pb[r]
            cuda.syncthreads()
        for i in range(TM):
            gm = row0 + ty + i * NTY
            if gm < M:
                for j in range(TN):
                    gn = col0 + tx + j * NTX
                    if gn < N:
                        C[z, gm, gn] = acc[i, j]

    if not simulator():  # NOTE: the simulator's jit takes no launch bounds
        bounds = launch_bounds(NT, TM * TN * np.dtype(dtype).itemsize)
        gemm_kernel = cuda.jit(launch_bounds=bounds)(gemm_kernel)
    else:
        gemm_kernel = cuda.jit(gemm_kernel)
    return gemm_kernel, NT


def launch_bounds(nt: int, tile_bytes: int):
    """(threads, MIN_BLOCKS) for ``cuda.jit(launch_bounds=...)``, or None (no register cap) for a register
    tile of ``tile_bytes`` (measured with ``python -m tinygrad_rad.kernels.cuda_ptx`` + ``ptxas -v``)."""
    return None if MIN_BLOCKS is None or tile_bytes > CAP_TILE_BYTES else (nt, MIN_BLOCKS)


def pick_tiles(m: int, n: int, dtype=np.float32) -> tuple:
    """The tile shape for an (m, n) output: 128 x 128 for big products, a 64-row (64-column) tile when
    m (n) is at most 64, 64 x 64 for small products and for float64 (whose 8 x 8 register tile of
    doubles does not fit in the registers)."""
    if simulator():
        return SIM_TILES
    if np.dtype(dtype).itemsize > 4 or m * n <= 512 * 512 or (m <= 64 and n <= 64):
        return GPU_TILES_SMALL
    if m <= 64:
        return GPU_TILES_WIDE
    if n <= 64:
        return GPU_TILES_TALL
    return GPU_TILES


def auto_splits(m: int, n: int, k: int, batch: int, bm: int = 128, bn: int = 128, sms: int = 132) -> int:
    """Split-K factor that gives a product with few output tiles and a deep K about two waves of blocks
    over ``sms`` multiprocessors, each K-slice at least 1024 deep (1 for products that fill the GPU)."""
    tiles = max(1, -(-m // bm) * -(-n // bn) * batch)
    if tiles >= sms or k < 2048:
        return 1
    return int(max(1, min(k // 1024, -(-2 * sms // tiles), 256)))


def gemm_shapes(a, b, trans_a: bool, trans_b: bool, name: str = "gemm"):
    """Check and normalise the operands of a batched ``op(a) @ op(b)``: returns
    ``(a3, b3, m, n, k, batch, two_d)`` with 3-D operands (a 2-D one as a batch of one)."""
    two_d = a.ndim == 2 and b.ndim == 2
    a3 = a[None] if a.ndim == 2 else a
    b3 = b[None] if b.ndim == 2 else b
    if a3.ndim != 3 or b3.ndim != 3:
        raise ValueError(f"{name}: operands must be 2-D or 3-D, got shapes {tuple(a.shape)} and "
                         f"{tuple(b.shape)}")
    if a3.dtype != b3.dtype:
        raise TypeError(f"{name}: dtypes differ ({a3.dtype} and {b3.dtype})")
    m, ka = (a3.shape[2], a3.shape[1]) if trans_a else (a3.shape[1], a3.shape[2])
    kb, n = (b3.shape[2], b3.shape[1]) if trans_b else (b3.shape[1], b3.shape[2])
    if ka != kb:
        raise ValueError(
            f"{name}: inner dims differ: op(a) is ({m}, {ka}), op(b) is ({kb}, {n}) "
            f"(shapes {tuple(a.shape)}, {tuple(b.shape)}, trans_a={trans_a}, trans_b={trans_b})"
        )
    if a3.shape[0] == 0 or b3.shape[0] == 0:
        batch = 0
        if max(a3.shape[0], b3.shape[0]) > 1:
            raise ValueError(f"{name}: batch sizes {a3.shape[0]} and {b3.shape[0]} do not broadcast")
    else:
        batch = max(a3.shape[0], b3.shape[0])
        if batch % a3.shape[0] or batch % b3.shape[0]:
            raise ValueError(f"{name}: batch sizes {a3.shape[0]} and {b3.shape[0]} do not broadcast")
    return a3, b3, m, n, ka, batch, two_d


def _period(batch: int, batch_a: int, batch_b: int) -> int:
    """The batch period of the repeated operands (1 when both hold the whole batch)."""
    return math.lcm(*[x for x in (batch_a, batch_b) if x != batch] or [1])


def fit_splits(batch: int, batch_a: int, batch_b: int, splits: int, max_z: int | None = None) -> int:
    """``splits`` lowered so that one chunk of the batch (a multiple of the repeated operands' period)
    times the K-splits fits in grid z."""
    max_z = MAX_GRID_Z if max_z is None else max_z
    if batch * splits <= max_z:
        return splits
    return max(1, min(splits, max_z // _period(batch, batch_a, batch_b)))


def batch_chunks(batch: int, batch_a: int, batch_b: int, splits: int = 1, max_z: int | None = None) -> list:
    """[(z0, z1)]: ranges of the batch launched together, each with ``(z1 - z0) * splits <= max_z`` blocks
    along grid z (default MAX_GRID_Z; call :func:`fit_splits` first). An operand holding the whole batch
    is sliced per chunk; a repeated one (batch 1, or a divisor read as z % B) is passed whole, so chunks
    start at multiples of its size.
    """
    max_z = MAX_GRID_Z if max_z is None else max_z
    if batch * splits <= max_z:
        return [(0, batch)] if batch else []
    period = _period(batch, batch_a, batch_b)
    step = period * max(1, max_z // splits // period)
    if step * splits > max_z:
        raise ValueError(f"gemm: a repeated operand batch of {period} exceeds the grid limit {max_z}; "
                         "materialise the broadcast first")
    return [(z0, min(batch, z0 + step)) for z0 in range(0, batch, step)]


def gemm(a, b, trans_a: bool = False, trans_b: bool = False, splits: int = 1, tiles: tuple | None = None):
    """Batched ``op(a) @ op(b)`` with the Numba CUDA kernel.

    ``a``: (Ba, M, K) (or (Ba, K, M) with ``trans_a``), ``b``: (Bb, K, N) (or (Bb, N, K) with
    ``trans_b``), 2-D operands are taken as a batch of one. The batch is ``max(Ba, Bb)``; an operand
    with a batch of 1 (or a batch that divides it, repeated) is broadcast. Returns (batch, M, N)
    (2-D if both operands were 2-D). ``splits`` > 1 splits K (results are summed here).
    """
    a3, b3, m, n, ka, batch, two_d = gemm_shapes(a, b, trans_a, trans_b)
    xp = xp_of(a3)
    a3, b3 = contiguous(a3), contiguous(b3)
    if ka == 0 or m == 0 or n == 0 or batch == 0:
        out = xp.zeros((batch, m, n), dtype=a3.dtype)
        return out[0] if two_d else out
    splits = fit_splits(batch, a3.shape[0], b3.shape[0], max(1, min(int(splits), ka)))
    k_chunk = -(-ka // splits)
    splits = -(-ka // k_chunk)
    BM, BN, BK, TM, TN = tiles or pick_tiles(m, n, a3.dtype)
    kernel, nt = make_gemm_kernel(np.dtype(a3.dtype).str, BM, BN, BK, TM, TN, bool(trans_a), bool(trans_b))
    out = xp.empty((batch * splits, m, n), dtype=a3.dtype)
    for z0, z1 in batch_chunks(batch, a3.shape[0], b3.shape[0], splits):
        a_part = a3[z0:z1] if a3.shape[0] == batch else a3
        b_part = b3[z0:z1] if b3.shape[0] == batch else b3
        grid = ((n + BN - 1) // BN, (m + BM - 1) // BM, (z1 - z0) * splits)
        kernel[grid, nt, stream()](dev(a_part), dev(b_part), dev(out[z0 * splits : z1 * splits]), m, n, ka,
                                   splits, k_chunk)
    if splits > 1:
        out = out.reshape(batch, splits, m, n).sum(axis=1)
    return out[0] if two_d else out
