"""Data-parallel training speed: images/s on 1, 2 (, 4, 8) MPI ranks, scaling efficiency, and how much
of the gradient all-reduce the backward pass hides.

Strong scaling: the global batch (default 128 images, 28x28x1, SmallCNN) is fixed and split over the
ranks, so every configuration trains the same model (see docs/distributed.md). Each configuration
runs in fresh processes (``mpirun -n R`` with T kernel threads per rank; 1 rank runs without MPI):

* ``1x1`` - 1 rank x 1 thread: the baseline of the scaling efficiency,
* ``1xT`` - 1 rank x T threads (T = all cores): what one process does with the whole machine,
* ``Rx1`` - R ranks x 1 thread (R = 2 here; ``--ranks 2,4,8`` on a bigger machine).

Per configuration: images/s (global batch x steps / time, median step), scaling efficiency
``img/s(R ranks) / (R x img/s(1x1))``, and for R > 1 the all-reduce accounting from
``DistributedDataParallel.comm_stats()``: ``wait_ms`` (time backward's last hook blocked waiting for
the buckets, per step), ``allreduce_alone_ms`` (the same bytes all-reduced in one blocking call,
nothing to overlap with) and ``hidden = 1 - wait / alone`` (the share of the communication that ran
during backward).

    .venv/bin/python -m benchmarks.bench_distributed                 # a few minutes, machine otherwise idle
    .venv/bin/python -m benchmarks.bench_distributed --tiny --out /tmp/b   # smoke test (seconds)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------------- worker
def _worker(a) -> None:
    import numpy as np

    from benchmarks.common import set_threads

    set_threads(a.threads)
    import tinygrad_rad as tr
    import tinygrad_rad.distributed as dist
    import tinygrad_rad.nn.functional as F
    from tinygrad_rad import optim
    from tinygrad_rad.models import SmallCNN

    dist.init_process_group()
    W, rank = dist.get_world_size(), dist.get_rank()
    if a.batch % W:
        raise SystemExit(f"--batch {a.batch} is not divisible by {W} ranks")
    per = a.batch // W
    tr.manual_seed(0)
    model = SmallCNN(1, 2)
    net = dist.DistributedDataParallel(model, bucket_cap_mb=a.bucket_mb) if W > 1 else model
    opt = optim.Adam(net.parameters(), lr=1e-3)
    rng = np.random.default_rng(rank)
    x = tr.tensor(rng.standard_normal((per, 1, a.size, a.size)).astype(np.float32))
    y = tr.tensor(rng.integers(0, 2, per))
    times = []
    for i in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        loss = F.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        if W > 1:
            net.finish_gradient_synchronization()
        opt.step()
        times.append(time.perf_counter() - t0)
        if i == a.warmup - 1 and W > 1:
            stats0 = net.comm_stats()
    res = {"ranks": W, "threads": a.threads, "batch": a.batch, "steps": a.steps,
           "first_step_s": times[0], "step_s": statistics.median(times[a.warmup:])}
    if W > 1:
        st = net.comm_stats()
        n = st["steps"] - stats0["steps"]
        res.update(buckets=st["buckets"], bytes_per_step=st["bytes_per_step"],
                   wait_ms=1e3 * (st["wait_s"] - stats0["wait_s"]) / max(n, 1),
                   hook_ms=1e3 * (st["hook_s"] - stats0["hook_s"]) / max(n, 1))
        buf = np.zeros(st["bytes_per_step"] // 4, np.float32)
        g = dist.group()
        alone = []
        for _ in range(max(3, a.steps)):
            dist.barrier()
            t0 = time.perf_counter()
            g.start_all_reduce(buf, "sum", "all-reduce alone").wait()
            alone.append(time.perf_counter() - t0)
        res["allreduce_alone_ms"] = 1e3 * statistics.median(alone)
        res["hidden"] = max(0.0, 1.0 - res["wait_ms"] / res["allreduce_alone_ms"]) if alone else None
        times_all: list = []
        dist.all_gather_object(times_all, res["step_s"])
        res["step_s"] = max(times_all)  # a step ends when the slowest rank is done
    if rank == 0:
        res["images_per_s"] = a.batch / res["step_s"]
        print("RESULT " + json.dumps(res), flush=True)


# ----------------------------------------------------------------------------------- parent
def _run(ranks: int, threads: int, a) -> dict:
    import tinygrad_rad.distributed as dist

    cmd = [sys.executable, "-m", "benchmarks.bench_distributed", "--worker", "--threads", str(threads),
           "--batch", str(a.batch), "--steps", str(a.steps), "--warmup", str(a.warmup), "--size", str(a.size),
           "--bucket-mb", str(a.bucket_mb)]
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    if ranks == 1:
        env.update({v: str(threads) for v in dist.launcher.THREAD_VARS})
        argv = cmd
    else:
        argv, env = dist.mpirun_command(ranks, cmd, threads_per_rank=threads, env=env)
    p = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True, timeout=a.timeout)
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")]
    if p.returncode != 0 or not lines:
        tail = f"{p.stdout[-2000:]}\n{p.stderr[-3000:]}"
        raise RuntimeError(f"{ranks}x{threads} failed (exit {p.returncode}):\n{tail}")
    return json.loads(lines[-1][len("RESULT "):])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tiny", action="store_true", help="smoke test: batch 4, 8x8 images, 2 steps")
    p.add_argument("--ranks", default="2", help="comma-separated rank counts beyond 1 (e.g. 2,4,8)")
    p.add_argument("--batch", type=int, default=128, help="global batch")
    p.add_argument("--size", type=int, default=28, help="image side")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--bucket-mb", type=float, default=4.0)
    p.add_argument("--timeout", type=float, default=900)
    p.add_argument("--out", default=None, help="results folder (default benchmarks/results)")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.tiny:
        a.batch, a.size, a.steps, a.warmup = 4, 8, 2, 1
    if a.worker:
        _worker(a)
        return 0
    import tinygrad_rad.distributed as dist
    from benchmarks.common import RESULTS_DIR, machine_info, print_table, write_json

    cores = os.cpu_count() or 1
    ranks = [int(r) for r in a.ranks.split(",") if r.strip()]
    configs = [(1, 1)] + ([(1, cores)] if cores > 1 else []) + [(r, 1) for r in ranks]
    if not (dist.is_available() and dist.find_mpirun()):
        print(f"MPI is not installed ({dist.INSTALL_HINT}); running the 1-rank configurations only")
        configs = [c for c in configs if c[0] == 1]
    rows = []
    for r, t in configs:
        res = _run(r, t, a)
        rows.append(res)
        print(f"{r} rank(s) x {t} thread(s): {res['images_per_s']:.1f} img/s", flush=True)
    base = rows[0]["images_per_s"]
    for res in rows:
        res["config"] = f"{res['ranks']}x{res['threads']}"
        res["scaling_efficiency"] = res["images_per_s"] / (base * res["ranks"] * res["threads"])
    cols = ["config", "images_per_s", "scaling_efficiency", "step_s", "wait_ms", "allreduce_alone_ms",
            "hidden", "bytes_per_step", "buckets"]
    print_table([{c: r.get(c, "") for c in cols} for r in rows], cols)
    payload = {"tiny": a.tiny, "model": "smallcnn", "global_batch": a.batch, "image_size": a.size,
               "steps": a.steps, "bucket_mb": a.bucket_mb, "results": rows, "machine": machine_info()}
    path = write_json("distributed", payload, a.out or RESULTS_DIR)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
