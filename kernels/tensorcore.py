"""CUDA C tensor-core GEMM (``kernels/tc_gemm.cu``), loaded with CuPy's ``RawModule``.

``C = op(A) @ op(B)`` with the WMMA API: TF32 inputs for float32 (10-bit mantissa, ~1e-3 relative
error), FP16 / BF16 inputs for float16 / bfloat16, always accumulated in float32. Tile sizes are
``#define``s at the top of the ``.cu`` file.

Selection: ``TGR_TENSOR_CORES=1`` routes float32 (and half) matmuls to it on a real GPU; the default
``auto`` keeps the exact Numba SGEMM for float32 (TF32 changes results at the 1e-3 level) and uses
tensor cores only for float16 / bfloat16, which the SGEMM does not handle; ``0`` switches it off.

    >>> from tinygrad_rad.kernels import tensorcore
    >>> c = tensorcore.gemm(a, b)            # CuPy arrays, (B, M, K) @ (B, K, N)
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np

CU_FILE = Path(__file__).with_name("tc_gemm.cu")

# kernel name in tc_gemm.cu per input dtype
_KERNELS = {"float32": "tc_gemm_tf32", "float16": "tc_gemm_f16", "bfloat16": "tc_gemm_bf16"}
# must match BLOCK_M / BLOCK_N / THREADS in tc_gemm.cu
BLOCK_M, BLOCK_N, THREADS = 128, 128, 256


def mode() -> str:
    """``"auto"`` (default), ``"1"`` (float32 too) or ``"0"`` (off), from ``TGR_TENSOR_CORES``."""
    v = os.environ.get("TGR_TENSOR_CORES", "auto").strip().lower()
    return {"on": "1", "true": "1", "off": "0", "false": "0", "": "auto"}.get(v, v)


def available() -> bool:
    """A real GPU with CuPy (the simulator cannot run CUDA C)."""
    from .cuda_common import simulator

    if simulator():
        return False
    try:
        import cupy

        return bool(cupy.cuda.is_available())
    except Exception:
        return False


def wants(dtype) -> bool:
    """Should a matmul of ``dtype`` use the tensor-core GEMM?"""
    m = mode()
    name = np.dtype(dtype).name
    if m == "0" or name not in _KERNELS or not available():
        return False
    return m == "1" or name != "float32"


@functools.cache
def _module():
    import cupy

    return cupy.RawModule(code=CU_FILE.read_text(), options=("-std=c++17",), name_expressions=None)


def gemm(a, b, trans_a: bool = False, trans_b: bool = False):
    """Batched ``op(a) @ op(b)`` on tensor cores; same conventions as ``cuda_gemm.gemm``.

    a: (Ba, M, K) or (Ba, K, M) with trans_a; b: (Bb, K, N) or (Bb, N, K) with trans_b; the batch
    ``max(Ba, Bb)`` reads operand z % Ba / z % Bb. Returns (batch, M, N) in the inputs' dtype.
    """
    import cupy

    name = np.dtype(a.dtype).name
    if name not in _KERNELS or a.dtype != b.dtype:
        raise TypeError(f"tensor-core gemm: unsupported dtypes {a.dtype}, {b.dtype}")
    a = cupy.ascontiguousarray(a)
    b = cupy.ascontiguousarray(b)
    m, k = (a.shape[2], a.shape[1]) if trans_a else (a.shape[1], a.shape[2])
    kb, n = (b.shape[2], b.shape[1]) if trans_b else (b.shape[1], b.shape[2])
    if k != kb:
        raise ValueError(f"tensor-core gemm: inner dims differ ({k} vs {kb})")
    batch = max(a.shape[0], b.shape[0])
    c = cupy.empty((batch, m, n), dtype=cupy.float32)
    fn = _module().get_function(_KERNELS[name])
    grid = ((n + BLOCK_N - 1) // BLOCK_N, (m + BLOCK_M - 1) // BLOCK_M, batch)
    fn(grid, (THREADS,), (a, b, c, np.int32(m), np.int32(n), np.int32(k), np.int32(int(trans_a)),
                          np.int32(int(trans_b)), np.int32(a.shape[0]), np.int32(b.shape[0])))
    return c if name == "float32" else c.astype(a.dtype)
