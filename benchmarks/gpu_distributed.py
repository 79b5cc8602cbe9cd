"""GPU check of tinygrad_rad.distributed (the parts CI cannot run: NCCL and CuPy arrays).

    python benchmarks/gpu_distributed.py                 # on a GPU machine (CuPy with NCCL)
    python benchmarks/gpu_distributed.py --device cpu    # the same steps on the CPU (smoke test)

1. NCCL (no MPI needed): ``init_process_group(backend="nccl")`` in a 1-process world, then the
   communicator's all-reduce / broadcast / all-gather on CuPy arrays, polled through ``Work`` with the
   deadline, and the all-reduce bandwidth of a 64 MB buffer (1 rank: the NCCL launch cost only).
2. With mpi4py + mpirun: ``mpirun -n 2`` data-parallel training of a small conv net on the device
   (backend ``nccl`` when there are 2+ GPUs, else ``mpi``: CuPy gradients staged through host memory,
   both ranks on one GPU), compared with the 1-process run on the global batch; images/s of both.
Prints one line per check (``OK`` / ``FAIL`` / ``SKIP``) and exits 1 if any failed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

B, W, STEPS = 8, 2, 4
N = STEPS * B * W


def _model(seed: int, device: str):
    import tinygrad_rad as tr
    from tinygrad_rad import nn

    tr.manual_seed(seed)
    m = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(),
                      nn.Linear(8 * 16 * 16, 3))
    return m.to(device)


def _data():
    import numpy as np

    rng = np.random.default_rng(0)
    return rng.standard_normal((N, 1, 16, 16)).astype(np.float32), rng.integers(0, 3, N)


def _train(model, opt, x_all, y_all, order_fn, per: int, device: str, ddp=None) -> float:
    import tinygrad_rad as tr
    import tinygrad_rad.nn.functional as F

    t0 = time.perf_counter()
    for step in range(STEPS):
        idx = order_fn(step, per)
        x = tr.tensor(x_all[idx], device=device)
        y = tr.tensor(y_all[idx], device=device)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        if ddp is not None:
            ddp.finish_gradient_synchronization()
        opt.step()
    loss.item()  # synchronises the device
    return time.perf_counter() - t0


def _worker(device: str, backend: str, out: Path) -> None:
    import numpy as np

    import tinygrad_rad.distributed as dist
    from tinygrad_rad import optim

    dist.init_process_group(backend=backend)
    rank = dist.get_rank()
    x_all, y_all = _data()
    # global batch s of step s: rows s*B*W .. ; rank r takes every W-th (as DistributedSampler does)
    model = dist.SyncBatchNorm.convert_sync_batchnorm(_model(rank * 7, device))
    ddp = dist.DistributedDataParallel(model, bucket_cap_mb=0.01)
    opt = optim.SGD(ddp.parameters(), lr=0.1, momentum=0.9)
    secs = _train(ddp, opt, x_all, y_all, lambda s, per: np.arange(s * B * W + rank, (s + 1) * B * W, W), B,
                  device, ddp)
    if rank == 0:
        np.savez(out / "ddp.npz", **{k: v.numpy() for k, v in model.state_dict().items()})
        (out / "ddp.json").write_text(json.dumps({"seconds": secs, **ddp.comm_stats()}))


def _check_nccl(device: str) -> tuple[str, str]:
    if device != "cuda":
        return "SKIP", "NCCL needs --device cuda"
    try:
        import cupy
        import numpy as np

        import tinygrad_rad.distributed as dist
    except ImportError as e:
        return "SKIP", f"CuPy is not installed ({e})"
    g = dist.init_process_group(backend="nccl")
    try:
        a = cupy.arange(10, dtype=cupy.float32)
        dist.Work(g, g.nccl.all_reduce(a, "sum"), "nccl all_reduce").wait()
        b = cupy.full(5, 3.0, dtype=cupy.float64)
        dist.Work(g, g.nccl.broadcast(b, 0), "nccl broadcast").wait()
        out = cupy.zeros((1, 10), cupy.float32)
        dist.Work(g, g.nccl.all_gather(a, out), "nccl all_gather").wait()
        ok = (np.array_equal(a.get(), np.arange(10)) and np.array_equal(b.get(), np.full(5, 3.0))
              and np.array_equal(out.get()[0], np.arange(10)))
        big = cupy.ones(16 * 2**20, cupy.float32)
        dist.Work(g, g.nccl.all_reduce(big, "sum"), "warm-up").wait()
        t0 = time.perf_counter()
        for _ in range(5):
            dist.Work(g, g.nccl.all_reduce(big, "sum"), "64 MB all_reduce").wait()
        ms = (time.perf_counter() - t0) / 5 * 1e3
        return ("OK" if ok else "FAIL"), f"1-rank NCCL collectives correct={ok}; 64 MB all-reduce {ms:.2f} ms"
    finally:
        dist.destroy_process_group()


def _check_ddp(device: str, out: Path) -> tuple[str, str]:
    import numpy as np

    import tinygrad_rad.distributed as dist
    from tinygrad_rad import optim

    if not (dist.is_available() and dist.find_mpirun()):
        return "SKIP", f"no MPI ({dist.INSTALL_HINT})"
    backend = "mpi"
    try:  # NOTE: under the CUDA simulator (NUMBA_ENABLE_CUDASIM=1) there is no CuPy: MPI on NumPy arrays
        import cupy

        if device == "cuda" and cupy.cuda.runtime.getDeviceCount() >= 2:
            backend = "nccl"
    except ImportError:
        pass
    argv, env = dist.mpirun_command(W, [sys.executable, __file__, "--worker", "--device", device, "--backend",
                                        backend, "--out", str(out)], threads_per_rank=1)
    p = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        return "FAIL", f"mpirun exited {p.returncode}: {p.stderr[-1500:]}"
    x_all, y_all = _data()
    ref = _model(0, device)
    opt = optim.SGD(ref.parameters(), lr=0.1, momentum=0.9)
    secs1 = _train(ref, opt, x_all, y_all, lambda s, per: np.arange(s * per, (s + 1) * per), B * W, device)
    with np.load(out / "ddp.npz", allow_pickle=False) as z:
        worst = max(float(np.abs(z[k] - v.numpy()).max()) for k, v in ref.state_dict().items())
    info = json.loads((out / "ddp.json").read_text())
    ok = worst < 1e-4
    return ("OK" if ok else "FAIL"), (
        f"backend={backend}: 2-rank DDP vs 1-process max |diff| {worst:.2e} after {STEPS} steps; "
        f"{STEPS * B * W / info['seconds']:.0f} img/s (2 ranks) vs {STEPS * B * W / secs1:.0f} img/s "
        f"(1 process, includes the first-step compile), {info['buckets']} buckets, wait "
        f"{1e3 * info['wait_s'] / max(info['steps'], 1):.2f} ms/step")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    p.add_argument("--out", default=None)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--backend", default="mpi", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.worker:
        _worker(a.device, a.backend, Path(a.out))
        return 0
    out = Path(a.out or os.environ.get("TMPDIR", "/tmp")) / "gpu_distributed"
    out.mkdir(parents=True, exist_ok=True)
    failed = False
    for name, check in (("nccl", lambda: _check_nccl(a.device)), ("ddp", lambda: _check_ddp(a.device, out))):
        try:
            status, msg = check()
        except Exception as e:  # noqa: BLE001 - report and go on with the next check
            status, msg = "FAIL", f"{type(e).__name__}: {e}"
        failed |= status == "FAIL"
        print(f"{status:4s} {name}: {msg}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
