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

Building: NVRTC (CuPy's default) with ``-I`` the first folder holding ``crt/mma.h`` (the
``nvidia-cuda-crt`` wheel of the ``cuda`` extra, or the CUDA toolkit: :func:`include_dirs`), then
``nvcc``. When neither builds it, :func:`gemm` warns once and computes the product without tensor
cores. Split-K, grid-z chunking and the shape checks are shared with the Numba GEMM (``cuda_gemm``).

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
# must match BLOCK_M / BLOCK_N / BLOCK_K / THREADS in tc_gemm.cu
BLOCK_M, BLOCK_N, BLOCK_K, THREADS = 128, 128, 32, 256


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


def include_dirs() -> list:
    """Folders holding ``crt/mma.h`` (which ``mma.h`` includes) for NVRTC: the pip wheels'
    (``nvidia-cuda-crt`` puts it in ``site-packages/nvidia/cu13/include``) first, then the toolkit's
    (``CUDA_HOME`` / ``CUDA_PATH``, the folder above ``nvcc``'s, ``/usr/local/cuda``).

    NOTE: NVRTC ships ``cuda_fp16.h`` / ``cuda_bf16.h`` built in, but not ``crt/mma.h``; without one of
    these folders CuPy's NVRTC compile of tc_gemm.cu fails with "cannot open source file crt/mma.h".
    """
    import glob
    import shutil
    import sys

    cands = []
    for base in sys.path:
        cands += sorted(glob.glob(os.path.join(base, "nvidia", "cu1[3-9]", "include")), reverse=True)
        cands += [os.path.join(base, "nvidia", sub, "include") for sub in ("cuda_crt", "cuda_runtime")]
    for var in ("CUDA_HOME", "CUDA_PATH"):
        if os.environ.get(var):
            cands.append(os.path.join(os.environ[var], "include"))
    nvcc = shutil.which("nvcc")
    if nvcc:
        cands.append(os.path.join(os.path.dirname(os.path.dirname(os.path.realpath(nvcc))), "include"))
    cands += ["/usr/local/cuda/include"] + sorted(glob.glob("/usr/local/cuda-*/include"), reverse=True)
    out = []
    for d in cands:
        if os.path.isfile(os.path.join(d, "crt", "mma.h")) and d not in out:
            out.append(d)
    return out


def nvrtc_options() -> tuple:
    """The NVRTC options tc_gemm.cu is compiled with: C++17 and the first folder with ``crt/mma.h``."""
    dirs = include_dirs()
    return ("-std=c++17",) + ((f"-I{dirs[0]}",) if dirs else ())


_BUILD_ERROR: list = []  # why the module could not be built (one entry once it failed)


def _build():
    """Compile tc_gemm.cu (NVRTC with :func:`nvrtc_options`; nvcc when NVRTC fails); raises on failure."""
    import cupy

    code = CU_FILE.read_text()
    errors = []
    for backend, options in (("nvrtc", nvrtc_options()), ("nvcc", ("-std=c++17",))):
        try:
            mod = cupy.RawModule(code=code, options=options, backend=backend)
            for name in _KERNELS.values():
                mod.get_function(name)  # forces the compile
            return mod
        except Exception as e:  # noqa: BLE001 - try the next compiler, report both
            errors.append(f"{backend}: {type(e).__name__}: {str(e).strip()[:300]}")
    raise RuntimeError("tc_gemm.cu could not be built: " + " | ".join(errors))


@functools.cache
def _module():
    """The compiled module, once per process; None (and a warning, once) when it cannot be built."""
    import warnings

    try:
        return _build()
    except Exception as e:  # noqa: BLE001 - no CuPy, no compiler, no headers: the callers fall back
        _BUILD_ERROR.append(f"{type(e).__name__}: {e}")
        warnings.warn(f"tensor-core GEMM unavailable, using the Numba / CuPy GEMM instead: {e}", stacklevel=3)
        return None


@functools.cache
def self_test(name: str = "float32") -> bool:
    """Run one odd-sized, transposed, batched product on this GPU against cuBLAS; False on any error.

    NOTE: cached per process, so a broken toolkit costs one warning, not one per matmul.
    """
    import warnings

    if not available() or _module() is None:  # (the fallback would pass the test without tensor cores)
        return False
    try:
        import cupy

        rng = np.random.default_rng(0)
        a = rng.standard_normal((2, 67, 45)).astype(np.float32)  # stored (K, M): trans_a
        b = rng.standard_normal((1, 130, 67)).astype(np.float32)  # stored (N, K): trans_b
        if name == "bfloat16":  # as bit patterns (CuPy has no bfloat16 dtype)
            a, b = bf16_bits(a), bf16_bits(b)
            got = gemm(cupy.asarray(a), cupy.asarray(b), trans_a=True, trans_b=True, precision=name)
            a, b = _as_f32(a, True), _as_f32(b, True)
        else:
            a, b = a.astype(name), b.astype(name)
            got = gemm(cupy.asarray(a), cupy.asarray(b), trans_a=True, trans_b=True).astype(cupy.float32)
        want = cupy.asarray(a.astype(np.float32).swapaxes(1, 2) @ b.astype(np.float32).swapaxes(1, 2))
        err = float(cupy.abs(got - want).max() / (cupy.abs(want).max() + 1e-30))
        ok = err < (5e-3 if name == "float32" else 2e-2)
        if not ok:
            warnings.warn(f"tensor-core GEMM self-test failed for {name} (rel. error {err:.2e}); not used",
                          stacklevel=2)
        return ok
    except Exception as e:  # compile error, missing headers, launch failure
        warnings.warn(f"tensor-core GEMM unavailable for {name}: {type(e).__name__}: {e}", stacklevel=2)
        return False


def bf16_bits(x) -> np.ndarray:
    """bfloat16 bit patterns (uint16, round to nearest even) of a float32 NumPy array."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    odd = (u >> np.uint32(16)) & np.uint32(1)
    return ((u + np.uint32(0x7FFF) + odd) >> np.uint32(16)).astype(np.uint16)


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def _as_f32(a, raw_bf16: bool):
    """float32 values of ``a`` (bfloat16 bit patterns held as uint16 when ``raw_bf16``)."""
    if raw_bf16:
        return (a.astype(np.uint32) << 16).view(np.float32)
    return a.astype(np.float32)


def _fallback(a3, b3, trans_a, trans_b, splits, raw_bf16=False):
    """The product without tensor cores: the Numba GEMM for float32 / float64, else the array module's
    matmul in float32 (float16 / bfloat16 inputs, float32 accumulation like the tensor cores)."""
    from .cuda_common import xp_of
    from .cuda_gemm import gemm as numba_gemm

    if not raw_bf16 and np.dtype(a3.dtype) in (np.dtype(np.float32), np.dtype(np.float64)):
        return numba_gemm(a3, b3, trans_a=trans_a, trans_b=trans_b, splits=splits)
    xp = xp_of(a3)
    a, b = _as_f32(a3, raw_bf16), _as_f32(b3, raw_bf16)
    c = xp.matmul(a.swapaxes(1, 2) if trans_a else a, b.swapaxes(1, 2) if trans_b else b)
    return c if raw_bf16 else c.astype(a3.dtype)


def gemm(a, b, trans_a: bool = False, trans_b: bool = False, splits: int | None = None,
         precision: str | None = None):
    """Batched ``op(a) @ op(b)`` on tensor cores; same conventions as ``cuda_gemm.gemm``.

    a: (Ba, M, K) or (Ba, K, M) with trans_a; b: (Bb, K, N) or (Bb, N, K) with trans_b (2-D: a batch of
    one); the batch ``max(Ba, Bb)`` reads operand z % Ba / z % Bb. Returns (batch, M, N) (2-D for 2-D
    operands) in the inputs' dtype. ``splits``: K-slices summed afterwards (None: chosen so that few
    output tiles with a deep K still fill the GPU, ``cuda_gemm.auto_splits``). Batches above the grid
    limit launch in chunks, empty products return zeros, and when the CUDA C module cannot be built
    (no compiler, no headers, the simulator) the product runs without tensor cores (:func:`_fallback`).
    ``precision="bfloat16"`` with uint16 operands: they hold bfloat16 bit patterns (CuPy has no bfloat16
    dtype); the result is then float32.
    """
    from . import cuda_gemm
    from .cuda_common import contiguous, xp_of

    raw_bf16 = precision == "bfloat16" and np.dtype(a.dtype) == np.uint16
    name = "bfloat16" if raw_bf16 else np.dtype(a.dtype).name
    if name not in _KERNELS or a.dtype != b.dtype or precision not in (None, name):
        raise TypeError(f"tensor-core gemm: unsupported dtypes {a.dtype}, {b.dtype} (precision={precision})")
    a3, b3, m, n, k, batch, two_d = cuda_gemm.gemm_shapes(a, b, trans_a, trans_b, "tensor-core gemm")
    xp = xp_of(a3)
    out_dtype = np.float32 if raw_bf16 else a3.dtype
    if m == 0 or n == 0 or k == 0 or batch == 0:
        out = xp.zeros((batch, m, n), dtype=out_dtype)
        return out[0] if two_d else out
    if splits is None:
        splits = cuda_gemm.auto_splits(m, n, k, batch, BLOCK_M, BLOCK_N)
    splits = max(1, min(int(splits), _ceil(k, BLOCK_K)))
    splits = cuda_gemm.fit_splits(batch, a3.shape[0], b3.shape[0], splits)
    mod = _module() if available() else None
    if mod is None:
        out = _fallback(contiguous(a3), contiguous(b3), trans_a, trans_b, splits, raw_bf16)
        return out[0] if two_d else out
    # each K-slice a multiple of BLOCK_K deep, so only the last one has a ragged edge
    k_chunk = _ceil(_ceil(k, splits), BLOCK_K) * BLOCK_K
    splits = _ceil(k, k_chunk)
    a3, b3 = contiguous(a3), contiguous(b3)
    c = xp.empty((batch * splits, m, n), dtype=np.float32)
    fn = mod.get_function(_KERNELS[name])
    for z0, z1 in cuda_gemm.batch_chunks(batch, a3.shape[0], b3.shape[0], splits):
        a_part = a3[z0:z1] if a3.shape[0] == batch else a3
        b_part = b3[z0:z1] if b3.shape[0] == batch else b3
        grid = ((n + BLOCK_N - 1) // BLOCK_N, (m + BLOCK_M - 1) // BLOCK_M, (z1 - z0) * splits)
        fn(grid, (THREADS,), (a_part, b_part, c[z0 * splits : z1 * splits], np.int32(m), np.int32(n),
                              np.int32(k), np.int32(int(trans_a)), np.int32(int(trans_b)),
                              np.int32(a_part.shape[0]), np.int32(b_part.shape[0]), np.int32(splits),
                              np.int32(k_chunk)))
    if splits > 1:
        c = c.reshape(batch, splits, m, n).sum(axis=1)
    out = c if name == "float32" or raw_bf16 else c.astype(a3.dtype)
    return out[0] if two_d else out
