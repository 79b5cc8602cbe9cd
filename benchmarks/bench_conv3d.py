"""3-D convolution benchmark (issue 13): conv3d forward, backward-input and backward-weight at 28^3 and
64^3, and the training step of a small 3D CNN, tinygrad_rad's fast CPU tier vs PyTorch CPU.

Each framework runs in its own fresh worker process that imports only that framework::

    python -m benchmarks.bench_conv3d --worker ours --part kernels --threads 2

A ``kernels`` worker times every (shape, pass) case: first call on its own, one warm-up, then
``--repeats`` calls, median; a ``train`` worker times the training step of the small 3D CNN (4 conv-BN-ReLU
stages 16 -> 128 channels, max-pools after the first two, global average pool, dropout, linear; Adam 1e-3,
cross-entropy, random 28^3 volumes, the MedMNIST 3D shape). The parent alternates the frameworks
A B A B for ``--rounds`` rounds and reports, per case, the median over rounds of each round's median with
the min-max over rounds; ratio = PyTorch's median / ours (> 1: tinygrad_rad is faster). Both get the
same threads (default: all cores): ours through ``kernels.configure_cpu`` (as the CLI runs), PyTorch
through ``torch.set_num_threads``. Our passes are the backend functions (``kernels.cpu.conv3d_*``);
PyTorch's are ``F.conv3d`` and ``torch.nn.grad.conv3d_input`` / ``conv3d_weight`` (its
``convolution_backward`` kernels, oneDNN where it applies). Results: ``benchmarks/results/conv3d.json``
with the machine description.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python -m benchmarks.bench_conv3d   # minutes
    .venv/bin/python -m benchmarks.bench_conv3d --tiny     # tiny shapes, 1 round: a smoke test (seconds)
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

from benchmarks.common import RESULTS_DIR, machine_info, print_table, write_json

ROOT = Path(__file__).resolve().parent.parent
FRAMEWORKS = ("ours", "torch")
FW_KEY = {"ours": "tinygrad_rad", "torch": "torch"}
PASSES = ("forward", "backward_input", "backward_weight")

# (name, batch, C_in, C_out, size): the conv layers of a small 3D CNN (3x3x3, stride 1, padding 1) at the
# MedMNIST 3D sizes, batch 8 at 28^3 and 2 at 64^3
CASES = [
    ("28^3 1->16", 8, 1, 16, 28),
    ("28^3 16->32", 8, 16, 32, 28),
    ("14^3 32->64", 8, 32, 64, 14),
    ("7^3 64->128", 8, 64, 128, 7),
    ("64^3 1->16", 2, 1, 16, 64),
    ("64^3 16->32", 2, 16, 32, 64),
    ("32^3 32->64", 2, 32, 64, 32),
]
TINY_CASES = [("6^3 2->4", 2, 2, 4, 6), ("4^3 4->8", 1, 4, 8, 4)]
TRAIN = {"batch": 32, "size": 28, "widths": (16, 32, 64, 128), "steps": 3}
TINY_TRAIN = {"batch": 2, "size": 8, "widths": (4, 4, 8, 8), "steps": 1}


def _env() -> dict:
    return {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}


def setup_framework(fw: str, threads: int) -> dict:
    """Configure only ``fw``'s threads in this (worker) process; returns what was set."""
    if fw == "ours":
        from tinygrad_rad.kernels import configure_cpu

        return configure_cpu(num_threads=threads)
    import torch

    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(threads)
    except ImportError:  # pragma: no cover
        pass
    torch.set_num_threads(threads)
    return {"num_threads": torch.get_num_threads()}


def _time(fn, repeats: int) -> dict:
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return {"first_call_s": first, "times_ms": times, "median_ms": statistics.median(times)}


# -------------------------------------------------------------------------------------- workers
def _passes(fw: str, x, w, gy) -> dict:
    """The three passes of a 3x3x3, stride-1, padding-1 conv as zero-argument callables."""
    one = (1, 1, 1)
    if fw == "ours":
        from tinygrad_rad.kernels import cpu as K

        return {"forward": lambda: K.conv3d_forward(x, w, one, one, one, 1),
                "backward_input": lambda: K.conv3d_backward_input(gy, w, x.shape, one, one, one, 1),
                "backward_weight": lambda: K.conv3d_backward_weight(gy, x, w.shape, one, one, one, 1)}
    import torch
    import torch.nn.functional as TF

    tx, tw, tgy = torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(gy)
    return {"forward": lambda: TF.conv3d(tx, tw, None, 1, 1),
            "backward_input": lambda: torch.nn.grad.conv3d_input(tx.shape, tw, tgy, 1, 1),
            "backward_weight": lambda: torch.nn.grad.conv3d_weight(tx, tw.shape, tgy, 1, 1)}


def kernel_worker(fw: str, cases, repeats: int) -> dict:
    import numpy as np

    rng = np.random.default_rng(0)
    out = {}
    for name, n, cin, cout, s in cases:
        x = rng.standard_normal((n, cin, s, s, s), dtype=np.float32)
        w = (rng.standard_normal((cout, cin, 3, 3, 3), dtype=np.float32) * 0.1).astype(np.float32)
        gy = rng.standard_normal((n, cout, s, s, s), dtype=np.float32)
        fns = _passes(fw, x, w, gy)
        out[name] = {p: _time(fns[p], repeats) for p in PASSES}
        macs = n * cout * cin * 27 * s**3
        for p in PASSES:
            out[name][p]["gflops"] = 2 * macs / out[name][p]["median_ms"] / 1e6
    return out


def _ours_cnn(widths, num_classes=2):
    from tinygrad_rad import nn

    layers, cin = [], 1
    for i, c in enumerate(widths):
        layers += [nn.Conv3d(cin, c, 3, padding=1, bias=False), nn.BatchNorm3d(c), nn.ReLU()]
        if i < 2:
            layers.append(nn.MaxPool3d(2))
        cin = c
    layers += [nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.Dropout(0.3), nn.Linear(cin, num_classes)]
    return nn.Sequential(*layers)


def _torch_cnn(widths, num_classes=2):
    import torch

    layers, cin = [], 1
    for i, c in enumerate(widths):
        layers += [torch.nn.Conv3d(cin, c, 3, padding=1, bias=False), torch.nn.BatchNorm3d(c),
                   torch.nn.ReLU()]
        if i < 2:
            layers.append(torch.nn.MaxPool3d(2))
        cin = c
    layers += [torch.nn.AdaptiveAvgPool3d(1), torch.nn.Flatten(), torch.nn.Dropout(0.3),
               torch.nn.Linear(cin, num_classes)]
    return torch.nn.Sequential(*layers)


def train_worker(fw: str, cfg: dict) -> dict:
    import numpy as np

    rng = np.random.default_rng(0)
    b, s = cfg["batch"], cfg["size"]
    x = rng.standard_normal((b, 1, s, s, s), dtype=np.float32)
    y = rng.integers(0, 2, b)
    if fw == "ours":
        import tinygrad_rad as tr
        from tinygrad_rad import optim
        from tinygrad_rad.nn import functional as F

        tr.manual_seed(0)
        model = _ours_cnn(cfg["widths"])
        opt = optim.Adam(model.parameters(), lr=1e-3)
        tx, ty = tr.tensor(x), tr.tensor(y)

        def step():
            opt.zero_grad()
            loss = F.cross_entropy(model(tx), ty)
            loss.backward()
            opt.step()
    else:
        import torch
        import torch.nn.functional as TF

        torch.manual_seed(0)
        model = _torch_cnn(cfg["widths"])
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        tx, ty = torch.from_numpy(x), torch.from_numpy(y)

        def step():
            opt.zero_grad()
            loss = TF.cross_entropy(model(tx), ty)
            loss.backward()
            opt.step()

    res = _time(step, cfg["steps"])
    res["img_s"] = b / (res["median_ms"] / 1e3)
    return res


def worker(fw: str, part: str, tiny: bool, repeats: int, threads: int) -> dict:
    configured = setup_framework(fw, threads)
    if part == "kernels":
        result = kernel_worker(fw, TINY_CASES if tiny else CASES, repeats)
    else:
        result = train_worker(fw, TINY_TRAIN if tiny else TRAIN)
    return {"framework": FW_KEY[fw], "part": part, "threads": threads, "configured": configured,
            "result": result,
            "other_framework_imported": sorted({"torch", "tinygrad_rad"} - {FW_KEY[fw]} & set(sys.modules))}


def measure(fw: str, part: str, tiny: bool, repeats: int, threads: int, timeout: float = 1800) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.bench_conv3d", "--worker", fw, "--part", part,
           "--repeats", str(repeats), "--threads", str(threads)] + (["--tiny"] if tiny else [])
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=_env())
    if p.returncode != 0:
        raise RuntimeError(f"conv3d worker {fw}/{part} failed (exit {p.returncode}):\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------------------- parent
def _summary(values: list[float]) -> dict:
    return {"median_ms": statistics.median(values), "min_ms": min(values), "max_ms": max(values),
            "rounds": values}


def summarize(runs: dict) -> tuple[list[dict], dict]:
    """Per-case rows (median over rounds of the round medians, min-max) and the training step."""
    rows, train = [], {}
    kernels = {fw: [r["result"] for r in rs if r["part"] == "kernels"] for fw, rs in runs.items()}
    for fw_runs in kernels.values():
        if not fw_runs:
            return rows, train
    first = next(iter(kernels.values()))[0]
    for case in first:
        for p in PASSES:
            row = {"case": case, "pass": p}
            for fw, rs in kernels.items():
                row[fw] = _summary([r[case][p]["median_ms"] for r in rs])
            if "torch" in row:
                row["ratio_vs_torch"] = row["torch"]["median_ms"] / row["tinygrad_rad"]["median_ms"]
            rows.append(row)
    trains = {fw: [r["result"] for r in rs if r["part"] == "train"] for fw, rs in runs.items()}
    for fw, rs in trains.items():
        if rs:
            train[fw] = _summary([r["median_ms"] for r in rs])
            train[fw]["first_step_s"] = statistics.median(r["first_call_s"] for r in rs)
    if "torch" in train and "tinygrad_rad" in train:
        train["ratio_vs_torch"] = train["torch"]["median_ms"] / train["tinygrad_rad"]["median_ms"]
    return rows, train


def torch_available() -> bool:
    try:
        import importlib.util

        return importlib.util.find_spec("torch") is not None
    except Exception:  # pragma: no cover
        return False


def run(tiny: bool = False, rounds: int | None = None, repeats: int | None = None, threads: int | None = None,
        parts=("kernels", "train"), out_dir: Path | str = RESULTS_DIR) -> dict:
    rounds = rounds or (1 if tiny else 3)
    repeats = repeats or (1 if tiny else 5)
    threads = threads or (1 if tiny else (os.cpu_count() or 1))
    frameworks = ["ours"] + (["torch"] if torch_available() else [])
    runs: dict = {FW_KEY[fw]: [] for fw in frameworks}
    for part in parts:
        for r in range(rounds):  # A B A B ..., the order flipped every round
            order = frameworks if r % 2 == 0 else frameworks[::-1]
            for fw in order:
                runs[FW_KEY[fw]].append(measure(fw, part, tiny, repeats, threads))
    rows, train = summarize(runs)
    table = [{"case": r["case"], "pass": r["pass"], "ours_ms": r["tinygrad_rad"]["median_ms"],
              "torch_ms": r.get("torch", {}).get("median_ms", float("nan")),
              "torch/ours": r.get("ratio_vs_torch", float("nan"))} for r in rows]
    print_table(table)
    if train:
        line = ", ".join(f"{k} {v['median_ms']:.4g} ms" for k, v in train.items() if isinstance(v, dict))
        if "ratio_vs_torch" in train:
            line += f", torch/ours {train['ratio_vs_torch']:.3g}"
        print(f"train step (small 3D CNN): {line}", flush=True)
    payload = {"tiny": tiny, "rounds": rounds, "repeats": repeats, "threads": threads,
               "cases": [dict(zip(("name", "batch", "c_in", "c_out", "size"), c)) for c in
                         (TINY_CASES if tiny else CASES)],
               "train_config": TINY_TRAIN if tiny else TRAIN, "kernels": rows, "train": train,
               "workers": runs, "machine": machine_info()}
    path = write_json("conv3d", payload, out_dir)
    print(f"wrote {path}", file=sys.stderr)
    return payload


def main(argv=None) -> dict | None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tiny", action="store_true", help="tiny shapes, 1 round, 1 thread (smoke test)")
    ap.add_argument("--rounds", type=int, default=None, help="A/B rounds (default 3; 1 with --tiny)")
    ap.add_argument("--repeats", type=int, default=None, help="timed calls per case per worker (default 5)")
    ap.add_argument("--threads", type=int, default=None, help="threads for both frameworks (default: all)")
    ap.add_argument("--part", choices=("kernels", "train", "both"), default="both")
    ap.add_argument("--out", default=str(RESULTS_DIR), help="results folder (default benchmarks/results)")
    ap.add_argument("--worker", choices=FRAMEWORKS, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.worker:
        part = "kernels" if a.part == "both" else a.part
        res = worker(a.worker, part, a.tiny, a.repeats or 1, a.threads or 1)
        print(json.dumps(res))
        return None
    parts = ("kernels", "train") if a.part == "both" else (a.part,)
    return run(a.tiny, a.rounds, a.repeats, a.threads, parts, a.out)


if __name__ == "__main__":
    main()
