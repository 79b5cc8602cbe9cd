// Tensor-core GEMM with the WMMA API: C[z] = op(A[z % batch_a]) @ op(B[z % batch_b]), fp32 accumulate.
// Split-K: grid z walks batch * splits blocks; block z multiplies K-slice z % splits (k_chunk deep, a
// multiple of BLOCK_K) of batch entry z / splits into its own partial C[z]; the caller sums the partials.
//
//   tc_gemm_tf32  float  inputs, rounded to TF32 (m16n16k8)   - sm_80+
//   tc_gemm_f16   half   inputs                   (m16n16k16) - sm_70+
//   tc_gemm_bf16  bf16   inputs                   (m16n16k16) - sm_80+
//
// A block of THREADS = 8 warps computes a BLOCK_M x BLOCK_N tile of C. Per step of BLOCK_K its
// threads copy the A and B tiles into shared memory (zero-filled past the matrix edges, so any
// M, N, K work; a transposed operand is read in its stored layout), then each warp multiplies its
// WARP_M x WARP_N sub-tile as (WARP_M/16) x (WARP_N/16) 16x16 accumulator fragments. The epilogue
// goes through a per-warp 16x16 shared scratch so edge tiles are written with bounds checks.
// Loaded from Python with cupy.RawModule (kernels/tensorcore.py).
#include <mma.h>
#include <cuda_fp16.h>
#include <cuda_bf16.h>

using namespace nvcuda;

#define BLOCK_M 128
#define BLOCK_N 128
#define BLOCK_K 32
#define WARPS_M 2                      // warps along M
#define WARPS_N 4                      // warps along N
#define THREADS (32 * WARPS_M * WARPS_N)
#define WARP_M (BLOCK_M / WARPS_M)     // 64
#define WARP_N (BLOCK_N / WARPS_N)     // 32
#define FRAG_M (WARP_M / 16)           // 4 fragments along M per warp
#define FRAG_N (WARP_N / 16)           // 2 fragments along N per warp
#define PAD 8                          // shared-memory row padding (avoids bank conflicts)

template <typename T> __device__ __forceinline__ T from_float(float v);
template <> __device__ __forceinline__ float from_float<float>(float v) { return v; }
template <> __device__ __forceinline__ __half from_float<__half>(float v) { return __float2half(v); }
template <> __device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) {
    return __float2bfloat16(v);
}

// The value staged in shared memory: float inputs are rounded to TF32 here, once per element, so the
// fragments loaded from the tile already hold TF32 values (instead of converting every loaded fragment)
template <typename T, int FK> __device__ __forceinline__ T to_frag(T v) { return v; }
template <> __device__ __forceinline__ float to_frag<float, 8>(float v) { return wmma::__float_to_tf32(v); }

// T: element type in memory; FragT: WMMA input precision; FK: fragment K (8 for tf32, 16 for half)
template <typename T, typename FragT, int FK>
__device__ __forceinline__ void tc_gemm(const T* __restrict__ A, const T* __restrict__ B, float* __restrict__ C,
                                        int M, int N, int K, int trans_a, int trans_b, int batch_a, int batch_b,
                                        int splits, int k_chunk) {
    __shared__ __align__(32) T As[BLOCK_M][BLOCK_K + PAD];   // As[m][k]
    __shared__ __align__(32) T Bs[BLOCK_K][BLOCK_N + PAD];   // Bs[k][n]
    __shared__ __align__(32) float scratch[THREADS / 32][16 * 16];

    const int z = blockIdx.z, bz = z / splits;
    const int k_lo = (z % splits) * k_chunk, k_hi = min(K, k_lo + k_chunk);
    const T* a = A + (size_t)(bz % batch_a) * M * K;
    const T* b = B + (size_t)(bz % batch_b) * K * N;
    float* c = C + (size_t)z * M * N;
    const int row0 = blockIdx.y * BLOCK_M, col0 = blockIdx.x * BLOCK_N;
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
    const int wm = warp / WARPS_N, wn = warp % WARPS_N;

    wmma::fragment<wmma::accumulator, 16, 16, FK, float> acc[FRAG_M][FRAG_N];
#pragma unroll
    for (int i = 0; i < FRAG_M; ++i)
#pragma unroll
        for (int j = 0; j < FRAG_N; ++j) wmma::fill_fragment(acc[i][j], 0.0f);

    for (int k0 = k_lo; k0 < k_hi; k0 += BLOCK_K) {
        // A tile: coalesced along whichever axis is contiguous in memory
        for (int l = tid; l < BLOCK_M * BLOCK_K; l += THREADS) {
            int m, kk;
            if (trans_a) { m = l % BLOCK_M; kk = l / BLOCK_M; }   // stored (K, M)
            else         { kk = l % BLOCK_K; m = l / BLOCK_K; }   // stored (M, K)
            int gm = row0 + m, gk = k0 + kk;
            T v = from_float<T>(0.0f);
            if (gm < M && gk < k_hi) v = trans_a ? a[(size_t)gk * M + gm] : a[(size_t)gm * K + gk];
            As[m][kk] = to_frag<T, FK>(v);
        }
        for (int l = tid; l < BLOCK_K * BLOCK_N; l += THREADS) {
            int n, kk;
            if (trans_b) { kk = l % BLOCK_K; n = l / BLOCK_K; }   // stored (N, K)
            else         { n = l % BLOCK_N; kk = l / BLOCK_N; }   // stored (K, N)
            int gn = col0 + n, gk = k0 + kk;
            T v = from_float<T>(0.0f);
            if (gn < N && gk < k_hi) v = trans_b ? b[(size_t)gn * K + gk] : b[(size_t)gk * N + gn];
            Bs[kk][n] = to_frag<T, FK>(v);
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < BLOCK_K; kk += FK) {
            wmma::fragment<wmma::matrix_a, 16, 16, FK, FragT, wmma::row_major> fa[FRAG_M];
            wmma::fragment<wmma::matrix_b, 16, 16, FK, FragT, wmma::row_major> fb[FRAG_N];
#pragma unroll
            for (int i = 0; i < FRAG_M; ++i) {
                wmma::load_matrix_sync(fa[i], &As[wm * WARP_M + i * 16][kk], BLOCK_K + PAD);
            }
#pragma unroll
            for (int j = 0; j < FRAG_N; ++j) {
                wmma::load_matrix_sync(fb[j], &Bs[kk][wn * WARP_N + j * 16], BLOCK_N + PAD);
            }
#pragma unroll
            for (int i = 0; i < FRAG_M; ++i)
#pragma unroll
                for (int j = 0; j < FRAG_N; ++j) wmma::mma_sync(acc[i][j], fa[i], fb[j], acc[i][j]);
        }
        __syncthreads();
    }
    // epilogue: fragment -> per-warp scratch -> C with bounds checks
#pragma unroll
    for (int i = 0; i < FRAG_M; ++i) {
#pragma unroll
        for (int j = 0; j < FRAG_N; ++j) {
            wmma::store_matrix_sync(scratch[warp], acc[i][j], 16, wmma::mem_row_major);
            __syncwarp();
            int r0 = row0 + wm * WARP_M + i * 16, c0 = col0 + wn * WARP_N + j * 16;
            for (int e = lane; e < 256; e += 32) {
                int r = r0 + e / 16, cc = c0 + e % 16;
                if (r < M && cc < N) c[(size_t)r * N + cc] = scratch[warp][e];
            }
            __syncwarp();
        }
    }
}

extern "C" __global__ void __launch_bounds__(THREADS)
tc_gemm_tf32(const float* A, const float* B, float* C, int M, int N, int K, int trans_a, int trans_b,
             int batch_a, int batch_b, int splits, int k_chunk) {
    tc_gemm<float, wmma::precision::tf32, 8>(A, B, C, M, N, K, trans_a, trans_b, batch_a, batch_b, splits, k_chunk);
}

extern "C" __global__ void __launch_bounds__(THREADS)
tc_gemm_f16(const __half* A, const __half* B, float* C, int M, int N, int K, int trans_a, int trans_b,
            int batch_a, int batch_b, int splits, int k_chunk) {
    tc_gemm<__half, __half, 16>(A, B, C, M, N, K, trans_a, trans_b, batch_a, batch_b, splits, k_chunk);
}

extern "C" __global__ void __launch_bounds__(THREADS)
tc_gemm_bf16(const __nv_bfloat16* A, const __nv_bfloat16* B, float* C, int M, int N, int K, int trans_a,
             int trans_b, int batch_a, int batch_b, int splits, int k_chunk) {
    tc_gemm<__nv_bfloat16, __nv_bfloat16, 16>(A, B, C, M, N, K, trans_a, trans_b, batch_a, batch_b, splits,
                                              k_chunk);
}
