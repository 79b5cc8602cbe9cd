"""Peak resident memory of a training run, each framework and model in its own fresh process.

The parent starts one worker per (framework, model): ``python -m benchmarks.bench_memory --worker
torch --model smallcnn``. The worker imports only its own framework, builds the model and Adam, runs
a few training steps (forward + backward + step) and prints JSON with ``ru_maxrss`` (the peak
resident set size of the whole process, imports included) and the peak during training alone
(VmHWM reset through /proc/self/clear_refs just before the first step) minus the RSS at that moment,
so the table shows both the whole-process peak and what training itself added.

    .venv/bin/python -m benchmarks.bench_memory            # batch 128 (U-Net 8 at 128x128), 2 threads
    .venv/bin/python -m benchmarks.bench_memory --tiny     # batch 2, SmallCNN only
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import RESULTS_DIR, machine_info, print_table, write_json

FRAMEWORKS = ("tinygrad_rad", "torch")
MODEL_NAMES = ("smallcnn", "resnet18", "unet")
ROOT = Path(__file__).resolve().parent.parent


def _rss_mb() -> float:
    try:
        import psutil

        return psutil.Process().memory_info().rss / 2**20
    except ImportError:  # pragma: no cover - psutil is a dev dependency
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mb() -> float:
    # NOTE: ru_maxrss is in KiB on Linux (bytes on macOS)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def _reset_hwm() -> bool:
    """Reset this process's peak RSS (VmHWM) to its current RSS (Linux >= 4.0); False if impossible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return _hwm_mb() is not None
    except OSError:
        return False


def _hwm_mb() -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 2**10
    except OSError:
        pass
    return None


def worker(framework: str, model: str, batch: int, steps: int, threads: int, warm: bool = True) -> dict:
    """Run ``steps`` training steps in this process and return its memory figures (MiB)."""
    rss_start = _rss_mb()
    from benchmarks import bench_train as bt

    x, y = bt.make_data(batch, model=model)
    # NOTE: each worker imports only its own framework (common.set_threads would import both)
    if framework == "tinygrad_rad":
        from tinygrad_rad.kernels import configure_cpu

        configure_cpu(num_threads=threads)  # threads, workqueue layer, malloc: as the CLI runs
        train_step, _ = bt.ours_steps(model, x, y)
    elif framework == "torch":
        import torch

        try:
            from threadpoolctl import threadpool_limits

            threadpool_limits(threads)
        except ImportError:  # pragma: no cover
            pass
        torch.set_num_threads(threads)
        train_step, _ = bt.torch_steps(model, x, y)
    else:
        raise ValueError(f"unknown framework {framework!r}; expected one of {FRAMEWORKS}")
    # one batch-2 step of a throwaway model first: Numba's cache load / JIT and PyTorch's lazy init
    # then count before rss_before, so train_increment_mb is the training itself
    if warm:
        wx, wy = bt.make_data(2, model=model)
        warm_step, _ = (bt.ours_steps if framework == "tinygrad_rad" else bt.torch_steps)(model, wx, wy)
        warm_step()
        del warm_step
        gc.collect()
    rss_before = _rss_mb()
    peak_before = _peak_mb()
    hwm_reset = _reset_hwm()
    t0 = time.perf_counter()
    for _ in range(steps):
        train_step()
    train_peak = _hwm_mb() if hwm_reset else _peak_mb()
    leaked = sorted({"torch", "tinygrad_rad"} - {framework} & set(sys.modules))
    return {"framework": framework, "model": model, "other_framework_imported": leaked, "batch": batch,
            "steps": steps, "threads": threads,
            "rss_start_mb": rss_start, "rss_before_train_mb": rss_before, "peak_before_train_mb": peak_before,
            "peak_rss_mb": _peak_mb(), "train_peak_mb": train_peak, "hwm_reset": hwm_reset,
            "train_increment_mb": max(train_peak - rss_before, 0.0),
            "seconds": time.perf_counter() - t0}


def measure(framework: str, model: str, batch: int, steps: int, threads: int, timeout: float = 600,
            warm: bool = True) -> dict:
    """Start a fresh worker process for one (framework, model) and return its JSON result."""
    cmd = [sys.executable, "-m", "benchmarks.bench_memory", "--worker", framework, "--model", model,
           "--batch", str(batch), "--steps", str(steps), "--threads", str(threads)]
    cmd += [] if warm else ["--no-warm"]
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError(
            f"memory worker {framework}/{model} failed (exit {p.returncode}):\n{p.stderr[-2000:]}"
        )
    return json.loads(p.stdout.strip().splitlines()[-1])


def run(tiny: bool = False, models=MODEL_NAMES, batch: int | None = None, steps: int | None = None,
        threads: int | None = None, out_dir: Path | str = RESULTS_DIR) -> dict:
    batch_arg = batch
    steps = steps or (1 if tiny else 2)
    threads = threads or (1 if tiny else 2)  # as bench_train
    models = ("smallcnn",) if tiny and tuple(models) == MODEL_NAMES else tuple(models)
    from benchmarks import bench_train as bt
    from benchmarks.bench_train import torch_available

    frameworks = FRAMEWORKS if torch_available() else FRAMEWORKS[:1]
    t0 = time.perf_counter()
    results, rows = [], []
    for model in models:
        batch = batch_arg or (2 if tiny else (bt.UNET["batch"] if model == "unet" else 128))
        # --tiny: no separate warm-up step (the one batch-2 step is all there is)
        res = {fw: measure(fw, model, batch, steps, threads, warm=not tiny) for fw in frameworks}
        entry = {"model": model, "batch": batch, "steps": steps, **res}
        row = {"model": model, "batch": batch, "ours peak MiB": res["tinygrad_rad"]["peak_rss_mb"],
               "ours train MiB": res["tinygrad_rad"]["train_increment_mb"]}
        if "torch" in res:
            # < 1: tinygrad_rad's peak is below PyTorch's
            entry["peak_ratio_vs_torch"] = res["tinygrad_rad"]["peak_rss_mb"] / res["torch"]["peak_rss_mb"]
            t_inc = res["torch"]["train_increment_mb"]
            # NOTE: at --tiny sizes the increments are ~0 MiB, so their ratio means nothing
            entry["train_increment_ratio_vs_torch"] = (res["tinygrad_rad"]["train_increment_mb"] / t_inc
                                                       if t_inc >= 1.0 else None)
            row.update({"torch peak MiB": res["torch"]["peak_rss_mb"],
                        "torch train MiB": res["torch"]["train_increment_mb"],
                        "peak ratio": entry["peak_ratio_vs_torch"],
                        "train ratio": entry["train_increment_ratio_vs_torch"] or "n/a"})
        results.append(entry)
        rows.append(row)
    print_table(rows, floatfmt=".4g")
    print("# peak = whole-process ru_maxrss (imports included); train = peak during the timed steps minus "
          "RSS before them")
    if "torch" not in frameworks:
        print("# PyTorch is not installed: no torch baseline")
    payload = {"benchmark": "memory", "tiny": tiny, "threads": threads, "machine": machine_info(),
               "results": results, "table": rows, "wall_s": time.perf_counter() - t0}
    path = write_json("memory", payload, out_dir)
    print(f"# wrote {path}", flush=True)
    return payload


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tiny", action="store_true", help="batch 2, one step, SmallCNN only")
    ap.add_argument("--models", default=",".join(MODEL_NAMES), help="comma-separated: smallcnn,resnet18,unet")
    ap.add_argument("--batch", type=int, default=None, help="default 128, U-Net 8 (2 with --tiny)")
    ap.add_argument("--steps", type=int, default=None, help="training steps per worker (default 2)")
    ap.add_argument("--threads", type=int, default=None, help="default 2 (1 with --tiny)")
    ap.add_argument("--out", default=str(RESULTS_DIR), help="results directory (memory.json)")
    ap.add_argument("--worker", choices=FRAMEWORKS, help=argparse.SUPPRESS)
    ap.add_argument("--model", default="smallcnn", help=argparse.SUPPRESS)
    ap.add_argument("--no-warm", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.worker:
        batch = a.batch or (8 if a.model == "unet" else 128)
        res = worker(a.worker, a.model, batch, a.steps or 2, a.threads or 1, warm=not a.no_warm)
        print(json.dumps(res), flush=True)
        return None
    models = [m.strip() for m in a.models.split(",") if m.strip()]
    for m in models:
        if m not in MODEL_NAMES:
            ap.error(f"unknown model {m!r}; expected some of {MODEL_NAMES}")
    return run(a.tiny, models, a.batch, a.steps, a.threads, a.out)


if __name__ == "__main__":
    main()
