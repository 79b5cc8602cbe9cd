"""Compile every Numba CUDA kernel of the backend to PTX without a GPU (NVVM only), for a given
compute capability; ``ptxas -v`` on the result then reports registers and spills.

The simulator runs kernels as Python, so it never checks that Numba can *type* them for the GPU
(e.g. a variable that changes type, an unsupported call). Compiling ahead catches that in CI.
Needs ``NUMBA_ENABLE_CUDASIM=0`` and libNVVM (a CUDA toolkit); no driver, no GPU.

    $ NUMBA_ENABLE_CUDASIM=0 python -m tinygrad_rad.kernels.cuda_ptx 80 /tmp/ptx
"""

from __future__ import annotations

import os
import sys


def _patch_numba_without_nvrtc() -> None:
    """NOTE: numba-cuda asks NVRTC only for the list of supported archs (and its path); a toolkit
    without NVRTC (or no driver) still has NVVM, so answer those two questions here."""
    from numba.cuda import cuda_paths
    from numba.cuda.cudadrv import nvrtc

    try:
        nvrtc.get_supported_ccs()
    except Exception:
        nvrtc.get_supported_ccs = lambda: ((7, 5), (8, 0), (8, 6), (8, 9), (9, 0))
        cuda_paths._get_nvrtc_path = lambda: cuda_paths._env_path_tuple("none", None)


def kernel_signatures(dtype: str = "float32") -> list:
    """(name, python function, argument types) of every kernel, as the backend launches them."""
    import numba
    from numba import boolean, int32, int64

    from . import cuda as K
    from . import cuda_bn, cuda_conv, cuda_gemm, cuda_pool, cuda_softmax

    T = getattr(numba, dtype)
    a1, a2, a3, a4 = T[::1], T[:, ::1], T[:, :, ::1], T[:, :, :, ::1]
    i4 = int32[:, :, :, ::1]
    ints = lambda n: (int64,) * n  # noqa: E731
    code = "<f4" if dtype == "float32" else "<f8"
    isz = 4 if dtype == "float32" else 8
    out = []
    for tiles in (cuda_gemm.GPU_TILES, cuda_gemm.GPU_TILES_SMALL, cuda_gemm.GPU_TILES_WIDE,
                  cuda_gemm.GPU_TILES_TALL):
        for ta, tb in ((False, False), (True, False), (False, True)):
            k, nt = cuda_gemm.make_gemm_kernel(code, *tiles, ta, tb)
            lay = "nn" if not (ta or tb) else ("tn" if ta else "nt")
            bounds = cuda_gemm.launch_bounds(nt, tiles[3] * tiles[4] * isz)
            out.append((f"gemm{tiles}{lay}", k.py_func, (a3, a3, a3, *ints(5)), bounds))
    rt = 256
    partial, finish = cuda_bn.make_bn_kernels(code, rt)
    logsm, ce_fwd, sumrows = cuda_softmax.make_row_kernels(code, 32, 8)
    avg_fwd, avg_bwd = cuda_pool.make_avg_kernels(code)
    total = cuda_softmax.make_total_kernel(code, rt)
    out += [
        ("im2col", cuda_conv.im2col_kernel.py_func, (a4, a2, *ints(10), T)),
        ("col2im", cuda_conv.col2im_kernel.py_func, (a2, a4, *ints(10), T)),
        ("max_pool_fwd", cuda_pool.max_pool_fwd_kernel.py_func, (a4, a4, i4, *ints(8), T)),
        ("max_pool_bwd", cuda_pool.max_pool_bwd_kernel.py_func, (a4, i4, a4, *ints(8), T)),
        ("avg_pool_fwd", avg_fwd.py_func, (a4, a4, *ints(6), boolean, T)),
        ("avg_pool_bwd", avg_bwd.py_func, (a4, a4, *ints(6), boolean, T)),
        ("bn_partial", partial.py_func, (a3, a3, a1, a1, int64, a2, a2)),
        ("bn_finish", finish.py_func, (a2, a1, T, T, int64)),
        ("bn_apply", cuda_bn.bn_apply_kernel.py_func, (a3, a1, a1, a1, a1, a3)),
        ("bn_backward", cuda_bn.bn_backward_kernel.py_func, (a3, a3, a1, a1, a1, a1, a1, T, a3)),
        ("log_softmax", logsm.py_func, (a2, a2)),
        ("ce_forward", ce_fwd.py_func, (a2, a2, a2, a1)),
        ("sum_rows", sumrows.py_func, (a2, a1)),
        ("total", total.py_func, (a1, a1)),
        ("ce_grad", cuda_softmax._ce_grad_kernel.py_func, (a2, a2, a1, T, a2)),
        ("erf", K._erf_kernel.py_func, (a1, a1)),
        ("adam", K._adam_kernel.py_func, (a1, a1, a1, a1, a1, *(T,) * 8, boolean, int64, boolean)),
    ]
    return out


def compile_all(cc: tuple = (8, 0), dtype: str = "float32", names=None) -> dict:
    """{kernel name: PTX text} for every kernel (or those in ``names``)."""
    if os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0"):
        raise RuntimeError("compile_all needs NUMBA_ENABLE_CUDASIM=0 (the simulator compiles nothing)")
    _patch_numba_without_nvrtc()
    import types

    from numba import cuda
    from numba.cuda import dispatcher

    # NOTE: a device function called by a kernel is compiled for the *current device's* compute
    # capability; without a driver there is none, so answer with the one asked for here
    real = dispatcher.get_current_device
    dispatcher.get_current_device = lambda: types.SimpleNamespace(compute_capability=tuple(cc))
    try:
        res = {}
        for name, fn, sig, *bounds in kernel_signatures(dtype):
            if names is None or name in names:
                res[name], _ = cuda.compile_ptx(fn, sig, cc=cc, launch_bounds=bounds[0] if bounds else None)
    finally:
        dispatcher.get_current_device = real
    return res


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    cc = int(argv[0]) if argv else 80
    out_dir = argv[1] if len(argv) > 1 else "."
    os.makedirs(out_dir, exist_ok=True)
    for name, ptx in compile_all((cc // 10, cc % 10)).items():
        safe = "".join(ch if ch.isalnum() else "_" for ch in name).strip("_")
        with open(os.path.join(out_dir, f"{safe}.ptx"), "w") as f:
            f.write(ptx)
        print(f"{safe}.ptx")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
