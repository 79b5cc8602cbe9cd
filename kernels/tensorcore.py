"""CUDA C tensor-core GEMM (``kernels/tc_gemm.cu``), loaded with CuPy's ``RawModule``.

``C = op(A) @ op(B)`` with the WMMA API: TF32 inputs for float32 (10-bit mantissa, ~1e-3 relative
error), FP16 / BF16 inputs for float16 / bfloat16, always accumulated in float32. Tile sizes are
``#define``s at the top of the ``.cu`` file.

Selection (env ``TGR_TENSOR_CORES``), on a real GPU only:

* ``auto`` (default): float16 / bfloat16 products (which the Numba SGEMM does not handle) use tensor
  cores once a self-test on this GPU (a small product of each precision against CuPy/cuBLAS) has
  passed; float32 keeps the exact Numba SGEMM (TF32 changes results at the 1e-3 level).
* ``1``: float32 products use TF32 tensor cores too (after the same self-test).
* ``0``: never; half-precision products then go to CuPy's matmul.

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
    if m != "1" and name == "float32":
        return False
    return self_test(name)


@functools.cache
def _module():
    """Compile tc_gemm.cu once per process (NVRTC; nvcc if NVRTC cannot find the headers)."""
    import cupy

    code = CU_FILE.read_text()
    try:
        mod = cupy.RawModule(code=code, options=("-std=c++17",))
        mod.get_function(_KERNELS["float32"])  # forces the compile
        return mod
    except Exception:
        mod = cupy.RawModule(code=code, options=("-std=c++17",), backend="nvcc")
        mod.get_function(_KERNELS["float32"])
        return mod


@functools.cache
def self_test(name: str = "float32") -> bool:
    """Run one odd-sized, transposed, batched product on this GPU against cuBLAS; False on any error.

    NOTE: cached per process, so a broken toolkit costs one warning, not one per matmul.
    """
    import warnings

    try:
        import cupy

        dt = np.dtype(name)
        rng = np.random.default_rng(0)
        a = cupy.asarray(rng.standard_normal((2, 67, 45)).astype(dt))  # stored (K, M): trans_a
        b = cupy.asarray(rng.standard_normal((1, 130, 67)).astype(dt))  # stored (N, K): trans_b
        got = gemm(a, b, trans_a=True, trans_b=True).astype(cupy.float32)
        want = cupy.matmul(a.astype(cupy.float32).swapaxes(1, 2), b.astype(cupy.float32).swapaxes(1, 2))
        err = float(cupy.abs(got - want).max() / (cupy.abs(want).max() + 1e-30))
        ok = err < (5e-3 if name == "float32" else 2e-2)
        if not ok:
            warnings.warn(f"tensor-core GEMM self-test failed for {name} (rel. error {err:.2e}); not used",
                          stacklevel=2)
        return ok
    except Exception as e:  # compile error, missing headers, launch failure
        warnings.warn(f"tensor-core GEMM unavailable for {name}: {type(e).__name__}: {e}", stacklevel=2)
        return False


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
