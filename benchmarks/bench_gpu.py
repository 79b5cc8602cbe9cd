"""GPU benchmarks: the project's CUDA kernels against cuBLAS / cuDNN / PyTorch on the same GPU.

Sections (each one fails alone: an error is recorded in its rows and the next section runs):

1. ``sgemm``   - the Numba CUDA SGEMM (``kernels/cuda_gemm.py``) vs ``cupy.matmul`` (cuBLAS), float32.
2. ``tc_gemm`` - the CUDA C tensor-core GEMM (``kernels/tc_gemm.cu``) vs cuBLAS at the same precision:
   TF32 vs ``torch.matmul`` with TF32 allowed, FP16 vs ``cupy.matmul`` on float16.
3. ``conv``    - conv2d forward + backward (input and weight) on ResNet-18 (28 px) layer shapes vs
   PyTorch (cuDNN).
4. ``train``   - end-to-end ResNet-18 (variant "28") training steps, images/s, vs PyTorch.

Every time is wall-clock over ``iters`` calls between two device synchronisations (launch overhead
included, the same way for both sides), after warm-up calls (Numba compiles on the first call).
The table is printed last; the JSON goes to ``benchmarks/results/`` (atomic write).

    $ python -m benchmarks.bench_gpu                  # on a GPU machine (see benchmarks/gpu_check.sh)
    $ NUMBA_ENABLE_CUDASIM=1 python -m benchmarks.bench_gpu --tiny --out /tmp/r   # toy sizes, no GPU

``--tiny`` runs the same code paths at toy sizes under the CUDA simulator (NumPy arrays): the
baselines are then NumPy / PyTorch-CPU, so its numbers only prove the script works.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a file: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import RESULTS_DIR, print_table, write_json  # noqa: E402


# ------------------------------------------------------------------------------------ helpers
def real_gpu() -> bool:
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "0") in ("", "0")


def sync() -> None:
    if real_gpu():
        import cupy

        cupy.cuda.Device().synchronize()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.synchronize()
        except ImportError:
            pass


def timeit(fn, target_s: float, max_iters: int = 50, warmup: int = 1) -> tuple[float, int]:
    """(seconds per call, calls): mean over enough calls to fill ~target_s (1 call if target_s <= 0)."""
    for _ in range(warmup):
        fn()
    sync()
    iters = 1
    if target_s > 0:
        t0 = time.perf_counter()
        fn()
        sync()
        one = max(time.perf_counter() - t0, 1e-6)
        iters = int(max(1, min(max_iters, target_s / one)))
    t0 = time.perf_counter()
    for _ in range(iters):
        fn()
    sync()
    return (time.perf_counter() - t0) / iters, iters


def torch_cuda():
    """torch if it can use the GPU (real-GPU mode), else None."""
    try:
        import torch
    except ImportError:
        return None
    if real_gpu() and torch.cuda.is_available():
        return torch
    return None


def err_row(section: str, case: str, e: BaseException) -> dict:
    return {"section": section, "case": case, "error": f"{type(e).__name__}: {e}"}


# ------------------------------------------------------------------------------------ sections
def bench_sgemm(sizes, target_s, warmup: int = 1) -> list:
    from tinygrad_rad.kernels import cuda_gemm

    xp = __import__("cupy") if real_gpu() else np
    rows = []
    for n in sizes:
        try:
            rng = np.random.default_rng(0)
            a = xp.asarray(rng.standard_normal((n, n), dtype=np.float32))
            b = xp.asarray(rng.standard_normal((n, n), dtype=np.float32))
            ours = cuda_gemm.gemm(a, b)
            ref = xp.matmul(a, b)
            err = float(abs(ours - ref).max() / abs(ref).max())
            t_ours, it = timeit(lambda a=a, b=b: cuda_gemm.gemm(a, b), target_s, warmup=warmup)
            t_base, _ = timeit(lambda a=a, b=b: xp.matmul(a, b), target_s, warmup=warmup)
            flop = 2.0 * n**3
            rows.append({"section": "sgemm", "case": f"{n}x{n}x{n} f32", "ours_ms": t_ours * 1e3,
                         "baseline": "cuBLAS (cupy.matmul)" if real_gpu() else "numpy.matmul",
                         "base_ms": t_base * 1e3, "ours_tflops": flop / t_ours / 1e12,
                         "base_tflops": flop / t_base / 1e12, "ours/base": t_base / t_ours,
                         "max_rel_err": err, "iters": it})
        except Exception as e:  # noqa: BLE001 - a failed case is reported, the rest still runs
            rows.append(err_row("sgemm", f"{n}", e))
    return rows


def bench_tc(sizes, target_s) -> list:
    rows = []
    if not real_gpu():
        return [{"section": "tc_gemm", "case": "-", "error": "skipped: CUDA C needs a real GPU"}]
    import cupy
    from tinygrad_rad.kernels import tensorcore

    torch = torch_cuda()
    for prec in ("tf32", "fp16"):
        for n in sizes:
            case = f"{n}x{n}x{n} {prec}"
            try:
                dt = np.float32 if prec == "tf32" else np.float16
                rng = np.random.default_rng(0)
                a = cupy.asarray(rng.standard_normal((1, n, n)).astype(dt))
                b = cupy.asarray(rng.standard_normal((1, n, n)).astype(dt))
                ours = tensorcore.gemm(a, b)
                ref = cupy.matmul(a.astype(cupy.float32), b.astype(cupy.float32))
                err = float(abs(ours.astype(cupy.float32) - ref).max() / abs(ref).max())
                t_ours, it = timeit(lambda a=a, b=b: tensorcore.gemm(a, b), target_s)
                if prec == "tf32":
                    if torch is None:
                        raise RuntimeError("PyTorch with CUDA is needed for the TF32 cuBLAS baseline")
                    torch.backends.cuda.matmul.allow_tf32 = True
                    ta, tb = torch.as_tensor(a[0], device="cuda"), torch.as_tensor(b[0], device="cuda")
                    t_base, _ = timeit(lambda ta=ta, tb=tb: ta @ tb, target_s)
                    base = "cuBLAS TF32 (torch.matmul)"
                else:
                    t_base, _ = timeit(lambda a=a, b=b: cupy.matmul(a[0], b[0]), target_s)
                    base = "cuBLAS FP16 (cupy.matmul)"
                flop = 2.0 * n**3
                rows.append({"section": "tc_gemm", "case": case, "ours_ms": t_ours * 1e3, "baseline": base,
                             "base_ms": t_base * 1e3, "ours_tflops": flop / t_ours / 1e12,
                             "base_tflops": flop / t_base / 1e12, "ours/base": t_base / t_ours,
                             "max_rel_err": err, "iters": it})
            except Exception as e:  # noqa: BLE001
                rows.append(err_row("tc_gemm", case, e))
    return rows


def bench_conv(shapes, target_s, warmup: int = 1) -> list:
    """conv2d fwd + bwd-input + bwd-weight. ``f32``: Numba SGEMM vs cuDNN with TF32 off; ``tf32`` (real
    GPU only): the tensor-core GEMM (``TGR_TENSOR_CORES=1``) vs cuDNN with TF32 on (PyTorch's default)."""
    from tinygrad_rad.kernels import cuda as K
    from tinygrad_rad.kernels import reference as R

    xp = __import__("cupy") if real_gpu() else np
    torch = torch_cuda()
    if torch is not None:
        torch.backends.cudnn.benchmark = True
    rows = []
    precisions = ("f32", "tf32") if real_gpu() else ("f32",)
    saved_env = os.environ.get("TGR_TENSOR_CORES")
    for prec in precisions:
        os.environ["TGR_TENSOR_CORES"] = "1" if prec == "tf32" else "0"
        if torch is not None:
            torch.backends.cudnn.allow_tf32 = prec == "tf32"
        for (n, c, h, o, k, s) in shapes:
            case = f"N{n} C{c} H{h} O{o} k{k} s{s} {prec}"
            try:
                p = k // 2
                args = ((s, s), (p, p), (1, 1), 1)
                rng = np.random.default_rng(0)
                x = xp.asarray(rng.standard_normal((n, c, h, h), dtype=np.float32))
                w = xp.asarray(rng.standard_normal((o, c, k, k), dtype=np.float32) * 0.1)

                def ours(x=x, w=w, args=args):
                    y = K.conv2d_forward(x, w, *args)
                    K.conv2d_backward_input(y, w, x.shape, *args)
                    K.conv2d_backward_weight(y, x, w.shape, *args)

                t_ours, it = timeit(ours, target_s, warmup=warmup)
                if torch is not None:
                    tx = torch.as_tensor(x, device="cuda").requires_grad_(True)
                    tw = torch.as_tensor(w, device="cuda").requires_grad_(True)

                    def base(tx=tx, tw=tw, s=s, p=p):
                        y = torch.nn.functional.conv2d(tx, tw, stride=s, padding=p)
                        y.backward(y.detach())

                    name = f"PyTorch cuDNN {prec}"
                else:
                    xh, wh = np.asarray(x), np.asarray(w)

                    def base(xh=xh, wh=wh, args=args):
                        y = R.conv2d_forward(xh, wh, *args)
                        R.conv2d_backward_input(y, wh, xh.shape, *args)
                        R.conv2d_backward_weight(y, xh, wh.shape, *args)

                    name = "reference (NumPy)"
                t_base, _ = timeit(base, target_s, warmup=warmup)
                ho = (h + 2 * p - k) // s + 1
                flop = 3 * 2.0 * n * o * ho * ho * c * k * k  # fwd + 2 backward products
                rows.append({"section": "conv", "case": case + " fwd+bwd", "ours_ms": t_ours * 1e3,
                             "baseline": name, "base_ms": t_base * 1e3, "ours_tflops": flop / t_ours / 1e12,
                             "base_tflops": flop / t_base / 1e12, "ours/base": t_base / t_ours, "iters": it})
            except Exception as e:  # noqa: BLE001
                rows.append(err_row("conv", case, e))
    if saved_env is None:
        os.environ.pop("TGR_TENSOR_CORES", None)
    else:
        os.environ["TGR_TENSOR_CORES"] = saved_env
    return rows


def bench_train(batch: int, steps: int, tiny: bool) -> list:
    import tinygrad_rad as tr
    import tinygrad_rad.nn.functional as F
    from tinygrad_rad import nn
    from tinygrad_rad.optim import SGD

    rows = []
    name = "tiny CNN 6px" if tiny else "ResNet-18 (28) 28px"
    size, classes = (6, 3) if tiny else (28, 10)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, 1, size, size)).astype(np.float32)
    y = rng.integers(0, classes, batch)
    try:
        if tiny:
            model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                                  nn.MaxPool2d(2), nn.Flatten(), nn.Linear(36, classes))
        else:
            from tinygrad_rad.models import ResNet18

            model = ResNet18(in_channels=1, num_classes=classes, variant="28")
        model = model.to("cuda")
        opt = SGD(model.parameters(), lr=0.01, momentum=0.9)
        tx, ty = tr.tensor(x, device="cuda"), tr.tensor(y, device="cuda")

        def step():
            opt.zero_grad()
            loss = F.cross_entropy(model(tx), ty)
            loss.backward()
            opt.step()

        warm = 0 if tiny else 2
        t_ours, it = timeit(step, 0.0 if tiny else 3.0, max_iters=steps, warmup=warm)
        row = {"section": "train", "case": f"{name} batch {batch}", "ours_ms": t_ours * 1e3,
               "ours_img_s": batch / t_ours, "iters": it}
        torch = torch_cuda()
        if torch is not None and not tiny:
            try:
                from benchmarks.bench_train import build_torch

                tm = build_torch("resnet18", in_channels=1, num_classes=classes).cuda()
                topt = torch.optim.SGD(tm.parameters(), lr=0.01, momentum=0.9)
                ttx = torch.as_tensor(x, device="cuda")
                tty = torch.as_tensor(y, device="cuda")

                def tstep():
                    topt.zero_grad()
                    torch.nn.functional.cross_entropy(tm(ttx), tty).backward()
                    topt.step()

                t_base, _ = timeit(tstep, 2.0, max_iters=50, warmup=3)
                row.update(baseline="PyTorch (cuDNN)", base_ms=t_base * 1e3, base_img_s=batch / t_base,
                           **{"ours/base": t_base / t_ours})
            except Exception as e:  # noqa: BLE001
                row["baseline_error"] = f"{type(e).__name__}: {e}"
        rows.append(row)
    except Exception as e:  # noqa: BLE001
        traceback.print_exc()
        rows.append(err_row("train", name, e))
    return rows


def device_description() -> dict:
    import tinygrad_rad as tr

    info = tr.cuda.device_info()
    try:
        import cupy

        info["cupy"] = cupy.__version__
    except ImportError:
        pass
    try:
        import numba

        info["numba"] = numba.__version__
    except ImportError:
        pass
    return info


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="toy sizes (for the CUDA simulator / a smoke test)")
    ap.add_argument("--out", default=str(RESULTS_DIR), help="folder for the JSON result")
    ap.add_argument("--sections", default="sgemm,tc_gemm,conv,train",
                    help="comma-separated subset of sgemm,tc_gemm,conv,train")
    ap.add_argument("--sizes", default=None, help="GEMM sizes, e.g. 1024,2048,4096,8192")
    ap.add_argument("--batch", type=int, default=None, help="training batch size (default 128; tiny: 2)")
    args = ap.parse_args(argv)
    if args.tiny:
        os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

    t_start = time.perf_counter()
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else ([8, 17] if args.tiny else
                                                                         [1024, 2048, 4096, 8192])
    target = 0.0 if args.tiny else 0.4
    warmup = 0 if args.tiny else 1
    conv_shapes = ([(1, 2, 5, 2, 3, 2)] if args.tiny else
                   # ResNet-18 (28 px), batch 128: (N, C, H, O, k, stride)
                   [(128, 64, 28, 64, 3, 1), (128, 64, 28, 128, 3, 2), (128, 128, 14, 128, 3, 1),
                    (128, 128, 14, 256, 3, 2), (128, 256, 7, 256, 3, 1), (128, 256, 7, 512, 3, 2),
                    (128, 512, 4, 512, 3, 1), (128, 64, 28, 128, 1, 2)])
    batch = args.batch or (2 if args.tiny else 128)

    rows: list[dict] = []
    runners = {
        "sgemm": lambda: bench_sgemm(sizes, target, warmup),
        "tc_gemm": lambda: bench_tc(sizes, target),
        "conv": lambda: bench_conv(conv_shapes, target, warmup),
        "train": lambda: bench_train(batch, 1 if args.tiny else 20, args.tiny),
    }
    for s in sections:
        if s not in runners:
            raise SystemExit(f"bench_gpu: unknown section {s!r}; expected some of {list(runners)}")
        t0 = time.perf_counter()
        rows += runners[s]()
        print(f"[bench_gpu] {s} done in {time.perf_counter() - t0:.1f} s", flush=True)

    payload = {"device": device_description(), "tiny": args.tiny, "rows": rows,
               "wall_s": time.perf_counter() - t_start,
               "timing": "wall clock between device synchronisations, launch overhead included"}
    name = "gpu_tiny" if args.tiny else f"gpu_{time.strftime('%Y%m%d_%H%M%S')}"
    path = write_json(name, payload, args.out)
    cols = ["section", "case", "ours_ms", "base_ms", "ours/base", "ours_tflops", "base_tflops", "ours_img_s",
            "base_img_s", "baseline", "max_rel_err", "error"]
    used = [c for c in cols if any(c in r for r in rows)]
    print(f"\nGPU benchmark on {payload['device'].get('name')} (ours/base > 1: ours is faster); JSON: {path}")
    print_table(rows, used)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
