"""GPU benchmarks: the project's CUDA kernels against cuBLAS / cuDNN / PyTorch on the same GPU, one run.

Sections (each fails alone: an error is recorded in its rows and the next section runs; the JSON is
rewritten after every section, so a run stopped by a timeout keeps what it measured):

1. ``sgemm``   - the Numba CUDA SGEMM (``kernels/cuda_gemm.py``) vs cuBLAS FP32 (``cupy.matmul``, and
   ``torch.matmul`` with TF32 *off*).
2. ``tc_gemm`` - the CUDA C tensor-core GEMM (``kernels/tc_gemm.cu``) vs cuBLAS at the same precision:
   TF32 (``torch.matmul`` with TF32 on), FP16 and BF16 (``torch.matmul`` on half tensors).
3. ``conv``    - conv2d forward, backward-input and backward-weight on ResNet-18 (28 px) layer shapes vs
   cuDNN through PyTorch: ``f32`` (Numba SGEMM vs cuDNN with TF32 off) and ``tf32`` (our tensor-core
   GEMM vs cuDNN with TF32 on).
4. ``train``   - SmallCNN and ResNet-18 (variant "28") training steps (Adam, batch 128), images/s vs
   PyTorch + cuDNN in FP32 (TF32 off: the same precision as ours).

NOTE: PyTorch's FP32 baselines pin TF32 off (``torch.backends.cuda.matmul.allow_tf32`` and
``torch.backends.cudnn.allow_tf32``; cuDNN convolutions default to TF32 on Ampere+), and
``CUPY_TF32=0``: an FP32 baseline that runs TF32 is not FP32. Each TF32 case switches it on explicitly.

Times: the median of 3 batches of calls (each batch between two device synchronisations, launch
overhead included the same way for both sides), after warm-up calls (Numba compiles on the first).
The table is printed last; the JSON (card, driver, CUDA versions, date, every number) goes to
``benchmarks/results/gpu_<date>.json`` (atomic write).

    $ python -m benchmarks.bench_gpu                  # on a GPU machine (see benchmarks/gpu_check.sh)
    $ NUMBA_ENABLE_CUDASIM=1 python -m benchmarks.bench_gpu --tiny --out /tmp/r   # toy sizes, no GPU

``--tiny`` runs the same code paths at toy sizes under the CUDA simulator (NumPy arrays): the
baselines are then NumPy, so its numbers only prove the script works.
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import subprocess
import sys
import time
import traceback
from pathlib import Path

import numpy as np

os.environ.setdefault("CUPY_TF32", "0")  # NOTE: before CuPy is imported: cuBLAS FP32 stays FP32

if __package__ in (None, ""):  # run as a file: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import RESULTS_DIR, print_table, write_json  # noqa: E402


# ------------------------------------------------------------------------------------ helpers
def real_gpu() -> bool:
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "0") in ("", "0")


def xp():
    return __import__("cupy") if real_gpu() else np


def sync() -> None:
    if real_gpu():
        import cupy

        cupy.cuda.Device().synchronize()
        torch = torch_cuda()
        if torch is not None:
            torch.cuda.synchronize()


def timeit(fn, target_s: float, max_iters: int = 50, warmup: int = 1, batches: int = 3) -> tuple[float, int]:
    """(seconds per call, calls per batch): the median over ``batches`` batches of enough calls to fill
    ~target_s / batches each (one call, one batch if target_s <= 0)."""
    for _ in range(warmup):
        fn()
    sync()
    if target_s <= 0:
        t0 = time.perf_counter()
        fn()
        sync()
        return time.perf_counter() - t0, 1
    t0 = time.perf_counter()
    fn()
    sync()
    one = max(time.perf_counter() - t0, 1e-6)
    iters = int(max(1, min(max_iters, target_s / batches / one)))
    times = []
    for _ in range(batches):
        t0 = time.perf_counter()
        for _ in range(iters):
            fn()
        sync()
        times.append((time.perf_counter() - t0) / iters)
    return statistics.median(times), iters


_TORCH = []


def torch_cuda():
    """torch if it can use the GPU (real-GPU mode), else None; TF32 pinned off on first use."""
    if not _TORCH:
        try:
            import torch

            ok = real_gpu() and torch.cuda.is_available()
        except ImportError:
            ok = False
        _TORCH.append(torch if ok else None)
        if ok:
            set_tf32(False)
    return _TORCH[0]


def set_tf32(on: bool) -> None:
    """PyTorch's TF32 switches for matmuls and cuDNN convolutions."""
    import torch

    torch.backends.cuda.matmul.allow_tf32 = on
    torch.backends.cudnn.allow_tf32 = on


def rel_err(got, want) -> tuple[float, float]:
    """(||got - want|| / ||want||, max|got - want| / max|want|) in float64 on the host."""
    g = np.asarray(got.get() if hasattr(got, "get") else got, dtype=np.float64)
    w = np.asarray(want.get() if hasattr(want, "get") else want, dtype=np.float64)
    d = g - w
    return (float(np.linalg.norm(d) / (np.linalg.norm(w) + 1e-300)),
            float(np.abs(d).max(initial=0.0) / (np.abs(w).max(initial=0.0) + 1e-300)))


def err_row(section: str, case: str, e: BaseException) -> dict:
    return {"section": section, "case": case, "error": f"{type(e).__name__}: {str(e)[:300]}"}


def gemm_row(section, case, flop, t_ours, t_base, base, err, it) -> dict:
    return {"section": section, "case": case, "ours_ms": t_ours * 1e3, "baseline": base,
            "base_ms": t_base * 1e3, "ours_tflops": flop / t_ours / 1e12, "base_tflops": flop / t_base / 1e12,
            "ours/base": t_base / t_ours, "rel_err": err[0] if err else None,
            "max_rel_err": err[1] if err else None, "iters": it}


# ------------------------------------------------------------------------------------ sections
def bench_sgemm(sizes, target_s, warmup: int = 1) -> list:
    from tinygrad_rad.kernels import cuda_gemm

    m_ = xp()
    torch = torch_cuda()
    rows = []
    for n in sizes:
        try:
            rng = np.random.default_rng(n)
            ah, bh = (rng.standard_normal((n, n), dtype=np.float32) for _ in range(2))
            a, b = m_.asarray(ah), m_.asarray(bh)
            err = rel_err(cuda_gemm.gemm(a, b), ah.astype(np.float64) @ bh) if n <= 2048 else None
            t_ours, it = timeit(lambda a=a, b=b: cuda_gemm.gemm(a, b), target_s, warmup=warmup)
            flop = 2.0 * n**3
            t_base, _ = timeit(lambda a=a, b=b: m_.matmul(a, b), target_s, warmup=warmup)
            base = "cuBLAS FP32 (cupy.matmul, CUPY_TF32=0)" if real_gpu() else "numpy.matmul"
            rows.append(gemm_row("sgemm", f"{n}x{n}x{n} f32", flop, t_ours, t_base, base, err, it))
            if torch is not None:
                ta, tb = torch.as_tensor(a, device="cuda"), torch.as_tensor(b, device="cuda")
                t_t, _ = timeit(lambda ta=ta, tb=tb: ta @ tb, target_s, warmup=warmup)
                rows.append(gemm_row("sgemm", f"{n}x{n}x{n} f32", flop, t_ours, t_t,
                                     "cuBLAS FP32 (torch.matmul, TF32 off)", err, it))
        except Exception as e:  # noqa: BLE001 - a failed case is reported, the rest still runs
            rows.append(err_row("sgemm", f"{n}", e))
    return rows


def bench_tc(sizes, target_s) -> list:
    if not real_gpu():
        return [{"section": "tc_gemm", "case": "-", "error": "skipped: CUDA C needs a real GPU"}]
    import cupy
    from tinygrad_rad.kernels import tensorcore

    torch = torch_cuda()
    rows = []
    built = tensorcore._module() is not None
    if not built:
        return [{"section": "tc_gemm", "case": "-",
                 "error": f"tc_gemm.cu not built: {tensorcore._BUILD_ERROR}"}]
    for prec in ("tf32", "fp16", "bf16"):
        for n in sizes:
            case = f"{n}x{n}x{n} {prec}"
            try:
                rng = np.random.default_rng(n)
                ah, bh = (rng.standard_normal((1, n, n), dtype=np.float32) for _ in range(2))
                if prec == "bf16":
                    ab, bb = tensorcore.bf16_bits(ah), tensorcore.bf16_bits(bh)
                    a, b = cupy.asarray(ab), cupy.asarray(bb)

                    def ours(a=a, b=b):
                        return tensorcore.gemm(a, b, precision="bfloat16")

                    ref_a, ref_b = tensorcore._as_f32(ab, True), tensorcore._as_f32(bb, True)
                else:
                    dt = np.float32 if prec == "tf32" else np.float16
                    a, b = cupy.asarray(ah.astype(dt)), cupy.asarray(bh.astype(dt))

                    def ours(a=a, b=b):
                        return tensorcore.gemm(a, b)

                    ref_a, ref_b = ah.astype(dt), bh.astype(dt)
                err = rel_err(ours(), ref_a[0].astype(np.float64) @ ref_b[0]) if n <= 2048 else None
                t_ours, it = timeit(ours, target_s)
                if torch is None:
                    raise RuntimeError("PyTorch with CUDA is needed for the cuBLAS tensor-core baselines")
                tdt = {"tf32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[prec]
                ta = torch.as_tensor(ref_a[0].astype(np.float32), device="cuda").to(tdt)
                tb = torch.as_tensor(ref_b[0].astype(np.float32), device="cuda").to(tdt)
                set_tf32(prec == "tf32")
                try:
                    t_base, _ = timeit(lambda ta=ta, tb=tb: ta @ tb, target_s)
                finally:
                    set_tf32(False)
                rows.append(gemm_row("tc_gemm", case, 2.0 * n**3, t_ours, t_base,
                                     f"cuBLAS {prec.upper()} (torch.matmul)", err, it))
            except Exception as e:  # noqa: BLE001
                rows.append(err_row("tc_gemm", case, e))
    return rows


def bench_conv(shapes, target_s, warmup: int = 1) -> list:
    """conv2d fwd / bwd-input / bwd-weight, each timed alone. ``f32``: Numba SGEMM vs cuDNN with TF32 off;
    ``tf32`` (real GPU only): the tensor-core GEMM (``TGR_TENSOR_CORES=1``) vs cuDNN with TF32 on."""
    from tinygrad_rad.kernels import cuda as K
    from tinygrad_rad.kernels import reference as R

    m_ = xp()
    torch = torch_cuda()
    if torch is not None:
        torch.backends.cudnn.benchmark = True
    rows = []
    precisions = ("f32", "tf32") if real_gpu() else ("f32",)
    saved_env = os.environ.get("TGR_TENSOR_CORES")
    try:
        for prec in precisions:
            os.environ["TGR_TENSOR_CORES"] = "1" if prec == "tf32" else "0"
            if torch is not None:
                set_tf32(prec == "tf32")
            for (n, c, h, o, k, s) in shapes:
                case = f"N{n} C{c} H{h} O{o} k{k} s{s} {prec}"
                try:
                    rows += _conv_case(K, R, m_, torch, case, n, c, h, o, k, s, target_s, warmup)
                except Exception as e:  # noqa: BLE001
                    rows.append(err_row("conv", case, e))
    finally:
        if torch is not None:
            set_tf32(False)
        if saved_env is None:
            os.environ.pop("TGR_TENSOR_CORES", None)
        else:
            os.environ["TGR_TENSOR_CORES"] = saved_env
    return rows


def _conv_case(K, R, m_, torch, case, n, c, h, o, k, s, target_s, warmup) -> list:
    p = k // 2
    args = ((s, s), (p, p), (1, 1), 1)
    rng = np.random.default_rng(0)
    xh = rng.standard_normal((n, c, h, h), dtype=np.float32)
    wh = rng.standard_normal((o, c, k, k), dtype=np.float32) * 0.1
    x, w = m_.asarray(xh), m_.asarray(wh)
    y = K.conv2d_forward(x, w, *args)
    gy = m_.asarray(rng.standard_normal(tuple(y.shape), dtype=np.float32))
    ours = {"fwd": lambda: K.conv2d_forward(x, w, *args),
            "bwd_input": lambda: K.conv2d_backward_input(gy, w, x.shape, *args),
            "bwd_weight": lambda: K.conv2d_backward_weight(gy, x, w.shape, *args)}
    if torch is not None:
        tF, tgrad = torch.nn.functional, torch.nn.grad
        tx, tw = torch.as_tensor(x, device="cuda"), torch.as_tensor(w, device="cuda")
        tgy = torch.as_tensor(gy, device="cuda")
        base = {"fwd": lambda: tF.conv2d(tx, tw, stride=s, padding=p),
                "bwd_input": lambda: tgrad.conv2d_input(tx.shape, tw, tgy, stride=s, padding=p),
                "bwd_weight": lambda: tgrad.conv2d_weight(tx, tw.shape, tgy, stride=s, padding=p)}
        name = f"cuDNN {case.split()[-1].upper()} (PyTorch)"
        ref_y = tF.conv2d(tx.double(), tw.double(), stride=s, padding=p).cpu().numpy()
    else:
        gyh = np.asarray(gy)
        base = {"fwd": lambda: R.conv2d_forward(xh, wh, *args),
                "bwd_input": lambda: R.conv2d_backward_input(gyh, wh, xh.shape, *args),
                "bwd_weight": lambda: R.conv2d_backward_weight(gyh, xh, wh.shape, *args)}
        name = "reference (NumPy)"
        ref_y = R.conv2d_forward(xh.astype(np.float64), wh.astype(np.float64), *args)
    err = rel_err(y, ref_y)
    ho = (h + 2 * p - k) // s + 1
    flop = 2.0 * n * o * ho * ho * c * k * k
    rows = []
    for part in ("fwd", "bwd_input", "bwd_weight"):
        t_ours, it = timeit(ours[part], target_s, warmup=warmup)
        t_base, _ = timeit(base[part], target_s, warmup=warmup)
        e = err if part == "fwd" else None
        rows.append(gemm_row("conv", f"{case} {part}", flop, t_ours, t_base, name, e, it))
    return rows


def bench_train(models, batch: int, steps: int, tiny: bool) -> list:
    rows = []
    for model_name in models:
        try:
            rows.append(_train_case(model_name, batch, steps, tiny))
        except Exception as e:  # noqa: BLE001
            traceback.print_exc()
            rows.append(err_row("train", model_name, e))
    return rows


def _train_case(model_name: str, batch: int, steps: int, tiny: bool) -> dict:
    import tinygrad_rad as tr
    import tinygrad_rad.nn.functional as F
    from tinygrad_rad.optim import Adam

    size, classes = (8, 3) if tiny else (28, 10)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, 1, size, size)).astype(np.float32)
    y = rng.integers(0, classes, batch).astype(np.int64)
    tr.manual_seed(0)
    if tiny:
        from tinygrad_rad import nn

        model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                              nn.Flatten(), nn.Linear(4 * (size // 2) ** 2, classes))
    else:
        from benchmarks.bench_train import build_ours

        model = build_ours(model_name, in_channels=1, num_classes=classes)
    model = model.to("cuda")
    opt = Adam(model.parameters(), lr=1e-3)
    tx, ty = tr.tensor(x, device="cuda"), tr.tensor(y, device="cuda")

    def step():
        opt.zero_grad()
        loss = F.cross_entropy(model(tx), ty)
        loss.backward()
        opt.step()

    t_ours, it = timeit(step, 0.0 if tiny else 2.0, max_iters=steps, warmup=0 if tiny else 2)
    row = {"section": "train", "case": f"{'tiny CNN' if tiny else model_name} {size}px batch {batch}",
           "ours_ms": t_ours * 1e3, "ours_img_s": batch / t_ours, "iters": it}
    torch = torch_cuda()
    if torch is not None and not tiny:
        try:
            from benchmarks.bench_train import build_torch

            torch.manual_seed(0)
            torch.backends.cudnn.benchmark = True
            tm = build_torch(model_name, in_channels=1, num_classes=classes).cuda()
            topt = torch.optim.Adam(tm.parameters(), lr=1e-3)
            ttx, tty = torch.as_tensor(x, device="cuda"), torch.as_tensor(y, device="cuda")

            def tstep():
                topt.zero_grad()
                torch.nn.functional.cross_entropy(tm(ttx), tty).backward()
                topt.step()

            t_base, _ = timeit(tstep, 2.0, max_iters=50, warmup=3)
            row.update(baseline="PyTorch + cuDNN FP32 (TF32 off)", base_ms=t_base * 1e3,
                       base_img_s=batch / t_base, **{"ours/base": t_base / t_ours})
        except Exception as e:  # noqa: BLE001
            row["baseline_error"] = f"{type(e).__name__}: {e}"
    return row


# ------------------------------------------------------------------------------------ machine
def _nvidia_smi() -> dict:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm",
                              "--format=csv,noheader"], capture_output=True, text=True, timeout=20)
        name, driver, mem, clock = [v.strip() for v in out.stdout.splitlines()[0].split(",")]
        return {"smi_name": name, "driver": driver, "memory": mem, "max_sm_clock": clock}
    except Exception as e:  # noqa: BLE001 - no nvidia-smi (simulator, CI)
        return {"smi_error": f"{type(e).__name__}: {e}"}


def device_description() -> dict:
    import tinygrad_rad as tr

    info = dict(tr.cuda.device_info())
    info["date_utc"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    info["python"] = sys.version.split()[0]
    info.update(_nvidia_smi() if real_gpu() else {})
    for mod in ("numpy", "numba", "cupy", "torch"):
        try:
            info[mod] = __import__(mod).__version__
        except ImportError:
            pass
    try:
        import numba.cuda

        info["numba_cuda"] = getattr(numba.cuda, "__version__", None) or __import__("numba_cuda").__version__
    except Exception:  # noqa: BLE001
        pass
    if real_gpu():
        try:
            import cupy

            info["cuda_runtime"] = cupy.cuda.runtime.runtimeGetVersion()
            info["cuda_driver_api"] = cupy.cuda.runtime.driverGetVersion()
        except Exception as e:  # noqa: BLE001
            info["cuda_version_error"] = str(e)
        torch = torch_cuda()
        if torch is not None:
            info["torch_cuda"] = torch.version.cuda
            info["cudnn"] = torch.backends.cudnn.version()
    info["fp32_baselines"] = "TF32 off: torch allow_tf32=False (matmul, cuDNN), CUPY_TF32=0"
    info["CUDA_HOME"] = os.environ.get("CUDA_HOME")
    return info


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="toy sizes (for the CUDA simulator / a smoke test)")
    ap.add_argument("--out", default=str(RESULTS_DIR), help="folder for the JSON result")
    ap.add_argument("--sections", default="sgemm,tc_gemm,conv,train",
                    help="comma-separated subset of sgemm,tc_gemm,conv,train")
    ap.add_argument("--sizes", default=None, help="GEMM sizes, e.g. 1024,2048,4096,8192")
    ap.add_argument("--batch", type=int, default=None, help="training batch size (default 128; tiny: 2)")
    ap.add_argument("--models", default="smallcnn,resnet18", help="training models (bench_train names)")
    args = ap.parse_args(argv)
    if args.tiny:
        os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

    t_start = time.perf_counter()
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    sizes = ([int(s) for s in args.sizes.split(",")] if args.sizes else
             ([8, 17] if args.tiny else [1024, 2048, 4096, 8192]))
    target = 0.0 if args.tiny else 0.4
    warmup = 0 if args.tiny else 1
    conv_shapes = ([(1, 2, 5, 2, 3, 2)] if args.tiny else
                   # ResNet-18 (28 px), batch 128: (N, C, H, O, k, stride)
                   [(128, 64, 28, 64, 3, 1), (128, 64, 28, 128, 3, 2), (128, 128, 14, 128, 3, 1),
                    (128, 128, 14, 256, 3, 2), (128, 256, 7, 256, 3, 1), (128, 256, 7, 512, 3, 2),
                    (128, 512, 4, 512, 3, 1), (128, 64, 28, 128, 1, 2)])
    batch = args.batch or (2 if args.tiny else 128)
    models = ["tiny"] if args.tiny else [m.strip() for m in args.models.split(",") if m.strip()]

    runners = {
        "sgemm": lambda: bench_sgemm(sizes, target, warmup),
        "tc_gemm": lambda: bench_tc(sizes, target),
        "conv": lambda: bench_conv(conv_shapes, target * 0.6, warmup),  # 8 shapes x 2 precisions x 3 passes
        "train": lambda: bench_train(models, batch, 1 if args.tiny else 20, args.tiny),
    }
    unknown = [s for s in sections if s not in runners]
    if unknown:
        raise SystemExit(f"bench_gpu: unknown section(s) {unknown}; expected some of {list(runners)}")
    payload = {"device": device_description(), "tiny": args.tiny, "rows": [], "sections_s": {},
               "timing": "median of 3 batches, wall clock between device synchronisations, launch overhead "
                         "included"}
    name = "gpu_tiny" if args.tiny else f"gpu_{time.strftime('%Y%m%d_%H%M%S')}"
    path = None
    for s in sections:
        t0 = time.perf_counter()
        payload["rows"] += runners[s]()
        payload["sections_s"][s] = time.perf_counter() - t0
        payload["wall_s"] = time.perf_counter() - t_start
        path = write_json(name, payload, args.out)  # after every section: a timeout keeps the rest
        print(f"[bench_gpu] {s} done in {payload['sections_s'][s]:.1f} s", flush=True)
    rows = payload["rows"]
    cols = ["section", "case", "ours_ms", "base_ms", "ours/base", "ours_tflops", "base_tflops", "ours_img_s",
            "base_img_s", "baseline", "rel_err", "error"]
    used = [c for c in cols if any(c in r for r in rows)]
    print(f"\nGPU benchmark on {payload['device'].get('name')} (ours/base > 1: ours is faster); JSON: {path}")
    print_table(rows, used)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
