"""End-to-end benchmark: training and eval images/s of SmallCNN and ResNet-18 (28), tinygrad_rad vs PyTorch.

One training step = forward + cross-entropy + backward + Adam step on a batch of 128 random
28x28x1 images; eval = forward under no_grad in eval mode. Both frameworks run in the same process
with the same thread count (Numba = BLAS = torch threads), interleaved A B A B (benchmarks.common.compare).
The first step of each (Numba compile / cache load, PyTorch's first allocations) is reported apart
as ``first_call_s``. Peak memory is measured in separate processes by ``benchmarks.bench_memory``.

    .venv/bin/python -m benchmarks.bench_train            # full size (a few minutes)
    .venv/bin/python -m benchmarks.bench_train --tiny     # batch 2, seconds (smoke test)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from benchmarks.common import RESULTS_DIR, compare, machine_info, print_table, set_threads, write_json

MODEL_NAMES = ("smallcnn", "resnet18")
NUM_CLASSES = 2
# images/s measured for PyTorch 2.13 CPU, 2 threads, batch 128 on the project machine (the targets)
REFERENCE_TORCH_TRAIN_IMG_S = {"smallcnn": 562.0, "resnet18": 52.0}


def torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


# ------------------------------------------------------------------------------------- models
def build_ours(name: str, in_channels: int = 1, num_classes: int = NUM_CLASSES):
    from tinygrad_rad.models import ResNet18, SmallCNN

    if name == "smallcnn":
        return SmallCNN(in_channels, num_classes)
    if name == "resnet18":
        return ResNet18(in_channels, num_classes, variant="28")
    raise ValueError(f"unknown model {name!r}; expected one of {MODEL_NAMES}")


def build_torch(name: str, in_channels: int = 1, num_classes: int = NUM_CLASSES):
    """The same networks in PyTorch (layer for layer; ResNet-18 in torchvision's layout, '28' stem)."""
    import torch.nn as tnn

    def cbr(cin, cout):
        return [tnn.Conv2d(cin, cout, 3, padding=1, bias=False), tnn.BatchNorm2d(cout), tnn.ReLU()]

    if name == "smallcnn":
        return tnn.Sequential(
            *cbr(in_channels, 32), *cbr(32, 64), tnn.MaxPool2d(2), *cbr(64, 128), tnn.MaxPool2d(2),
            tnn.AdaptiveAvgPool2d(1), tnn.Flatten(1), tnn.Dropout(0.3), tnn.Linear(128, num_classes),
        )
    if name != "resnet18":
        raise ValueError(f"unknown model {name!r}; expected one of {MODEL_NAMES}")

    class BasicBlock(tnn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = tnn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = tnn.BatchNorm2d(cout)
            self.relu = tnn.ReLU()
            self.conv2 = tnn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = tnn.BatchNorm2d(cout)
            self.downsample = None
            if stride != 1 or cin != cout:
                self.downsample = tnn.Sequential(tnn.Conv2d(cin, cout, 1, stride, bias=False),
                                                 tnn.BatchNorm2d(cout))

        def forward(self, x):
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            return self.relu(out + (x if self.downsample is None else self.downsample(x)))

    layers = [tnn.Conv2d(in_channels, 64, 3, 1, 1, bias=False), tnn.BatchNorm2d(64), tnn.ReLU()]
    cin = 64
    for planes, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        layers += [BasicBlock(cin, planes, stride), BasicBlock(planes, planes, 1)]
        cin = planes
    layers += [tnn.AdaptiveAvgPool2d(1), tnn.Flatten(1), tnn.Linear(512, num_classes)]
    return tnn.Sequential(*layers)


# ------------------------------------------------------------------------------ step closures
def make_data(batch: int, seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, NUM_CLASSES, size=batch).astype(np.int64)
    return x, y


def ours_steps(name: str, x, y):
    """(train_step, eval_step) closures for tinygrad_rad."""
    import tinygrad_rad as tr
    import tinygrad_rad.nn.functional as F
    from tinygrad_rad.optim import Adam

    tr.manual_seed(0)
    model = build_ours(name)
    opt = Adam(model.parameters(), lr=1e-3)
    tx, ty = tr.Tensor(x), tr.Tensor(y)

    def train_step():
        model.train()
        opt.zero_grad()
        loss = F.cross_entropy(model(tx), ty)
        loss.backward()
        opt.step()
        return loss.item()

    def eval_step():
        model.eval()
        with tr.no_grad():
            return model(tx).numpy()

    return train_step, eval_step


def torch_steps(name: str, x, y):
    """(train_step, eval_step) closures for PyTorch."""
    import torch
    import torch.nn.functional as tF

    torch.manual_seed(0)
    model = build_torch(name)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)

    def train_step():
        model.train()
        opt.zero_grad()
        loss = tF.cross_entropy(model(tx), ty)
        loss.backward()
        opt.step()
        return loss.item()

    def eval_step():
        model.eval()
        with torch.no_grad():
            return model(tx).numpy()

    return train_step, eval_step


# -------------------------------------------------------------------------------------- profile
def profile_ours(train_step, steps: int = 2) -> dict:
    """Where one tinygrad_rad training step spends its time, per op and direction (tr.trace timings).

    Returns ``{"step_ms": wall, "ops": [{"op", "dir", "calls", "ms"}...], "untraced_ms": ...}`` where
    untraced = the optimizer step, zero_grad, the backward walk's bookkeeping and Python glue.
    """
    import io
    import re

    import tinygrad_rad as tr

    buf = io.StringIO()
    t0 = time.perf_counter()
    for _ in range(steps):
        with tr.trace(file=buf):
            train_step()
    step_ms = (time.perf_counter() - t0) * 1e3 / steps
    acc: dict = {}
    for line in buf.getvalue().splitlines():
        m = re.match(r"(fwd|bwd) (\S+)\s.*\s([\d.]+) ms$", line)
        if m:
            e = acc.setdefault((m.group(2), m.group(1)), [0, 0.0])
            e[0] += 1
            e[1] += float(m.group(3))
    ops = [{"op": k[0], "dir": k[1], "calls": c // steps, "ms": ms / steps} for k, (c, ms) in acc.items()]
    ops.sort(key=lambda r: -r["ms"])
    traced = sum(r["ms"] for r in ops)
    return {"step_ms": step_ms, "ops": ops, "untraced_ms": step_ms - traced}


def profile_torch(train_step, steps: int = 2, top: int = 12) -> dict:
    """PyTorch's own per-op self CPU time for the same step (torch.profiler), for comparison."""
    from torch.profiler import ProfilerActivity, profile

    t0 = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            train_step()
    step_ms = (time.perf_counter() - t0) * 1e3 / steps
    rows = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)[:top]
    return {"step_ms_profiled": step_ms,
            "ops": [{"op": e.key, "calls": e.count // steps,
                     "self_cpu_ms": e.self_cpu_time_total / 1e3 / steps} for e in rows]}


# -------------------------------------------------------------------------------------- run
def _img_s(stats: dict, batch: int) -> dict:
    """images/s from compare()'s ms stats: median, and the range (from the max and min times)."""
    return {"median": batch / stats["median_ms"] * 1e3, "min": batch / stats["max_ms"] * 1e3,
            "max": batch / stats["min_ms"] * 1e3}


def bench_model(name: str, batch: int, repeats: int, with_torch: bool, warmup: int = 1,
                profile: bool = False) -> dict:
    x, y = make_data(batch)
    ours_train, ours_eval = ours_steps(name, x, y)
    cands_train, cands_eval = {"tinygrad_rad": ours_train}, {"tinygrad_rad": ours_eval}
    if with_torch:
        t_train, t_eval = torch_steps(name, x, y)
        cands_train["torch"], cands_eval["torch"] = t_train, t_eval
    out = {"model": name, "batch": batch}
    for mode, cands in (("train", cands_train), ("eval", cands_eval)):
        stats = compare(cands, repeats=repeats, warmup=warmup)
        res = {fw: {**s, "img_s": _img_s(s, batch)} for fw, s in stats.items()}
        if with_torch:
            # > 1: tinygrad_rad processes more images per second than PyTorch
            res["ratio_vs_torch"] = stats["torch"]["median_ms"] / stats["tinygrad_rad"]["median_ms"]
        out[mode] = res
    if profile:
        steps = 1 if batch <= 8 else 2  # tiny runs: one profiled step is enough
        out["profile"] = {"tinygrad_rad": profile_ours(ours_train, steps)}
        if with_torch:
            out["profile"]["torch"] = profile_torch(cands_train["torch"], steps)
    return out


def rows_for(results: list[dict]) -> list[dict]:
    rows = []
    for r in results:
        for mode in ("train", "eval"):
            m = r[mode]
            ours = m["tinygrad_rad"]["img_s"]
            row = {"model": r["model"], "mode": mode, "batch": r["batch"],
                   "ours img/s": ours["median"], "ours range": f"{ours['min']:.3g}-{ours['max']:.3g}",
                   "ours first s": m["tinygrad_rad"]["first_call_s"]}
            if "torch" in m:
                t = m["torch"]["img_s"]
                row.update({"torch img/s": t["median"], "torch range": f"{t['min']:.3g}-{t['max']:.3g}",
                            "ratio": m["ratio_vs_torch"]})
            else:
                row.update({"torch img/s": "n/a", "torch range": "", "ratio": "n/a"})
            rows.append(row)
    return rows


def run(tiny: bool = False, models=MODEL_NAMES, batch: int | None = None, repeats: int | None = None,
        threads: int | None = None, out_dir: Path | str = RESULTS_DIR, no_profile: bool = False) -> dict:
    # NOTE: --tiny runs single-threaded: on a loaded machine OpenMP spin-waits make 2-thread torch crawl
    n = set_threads(threads or (1 if tiny else None))
    with_torch = torch_available()
    batch = batch or (2 if tiny else 128)
    results = []
    t0 = time.perf_counter()
    for name in models:
        # ResNet-18 at ~50 img/s is ~2.5 s per step: a few timed steps only
        reps = repeats or (1 if tiny else (5 if name == "resnet18" else 9))
        results.append(bench_model(name, batch, reps, with_torch, warmup=0 if tiny else 1,
                                   profile=name == "smallcnn" and not no_profile))
        print(f"# {name}: done in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    for r in results:
        if "profile" in r:
            p = r["profile"]["tinygrad_rad"]
            print(f"\n# {r['model']}: tinygrad_rad training step {p['step_ms']:.0f} ms (traced), per op:")
            big = [o for o in p["ops"] if o["ms"] >= 0.005 * p["step_ms"]]  # >= 0.5 % of the step
            prow = [{"op": o["op"], "dir": o["dir"], "calls": o["calls"], "ms": o["ms"],
                     "%": 100 * o["ms"] / p["step_ms"]} for o in big]
            prow.append({"op": "(optimizer, walk, glue)", "dir": "", "calls": "", "ms": p["untraced_ms"],
                         "%": 100 * p["untraced_ms"] / p["step_ms"]})
            print_table(prow, floatfmt=".1f")
            if "torch" in r["profile"]:
                tp = r["profile"]["torch"]
                print(f"# PyTorch, same step ({tp['step_ms_profiled']:.0f} ms, torch.profiler), top ops:")
                print_table(tp["ops"][:8], floatfmt=".1f")
        print()
    rows = rows_for(results)
    print_table(rows)
    if not with_torch:
        print("# PyTorch is not installed: absolute numbers only, no baseline", flush=True)
    payload = {
        "benchmark": "train", "tiny": tiny, "threads": n, "torch_available": with_torch,
        "torch_version": _torch_version(), "torch_threads": _torch_threads(),
        "numba_threading_layer_used": _numba_layer(), "machine": machine_info(),
        "reference_torch_train_img_s": REFERENCE_TORCH_TRAIN_IMG_S,
        "results": results, "table": rows, "wall_s": time.perf_counter() - t0,
    }
    path = write_json("train", payload, out_dir)
    print(f"# wrote {path}", flush=True)
    return payload


def _torch_threads():
    try:
        import torch

        return torch.get_num_threads()
    except ImportError:
        return None


def _numba_layer():
    """The threading layer Numba actually picked (known only after a parallel kernel ran)."""
    import numba

    try:
        return numba.threading_layer()
    except ValueError:
        return None


def _torch_version():
    try:
        import torch

        return torch.__version__
    except ImportError:
        return None


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tiny", action="store_true", help="batch 2, 1 thread, 1 repeat: a smoke test")
    ap.add_argument("--models", default=",".join(MODEL_NAMES), help="comma-separated: smallcnn,resnet18")
    ap.add_argument("--batch", type=int, default=None, help="default 128 (2 with --tiny)")
    ap.add_argument("--repeats", type=int, default=None, help="timed steps per framework")
    ap.add_argument("--threads", type=int, default=None, help="Numba/BLAS/torch threads (default: all cores)")
    ap.add_argument("--out", default=str(RESULTS_DIR), help="results directory (train.json)")
    ap.add_argument("--no-profile", action="store_true", help="skip the per-op profile of SmallCNN's step")
    a = ap.parse_args(argv)
    models = [m.strip() for m in a.models.split(",") if m.strip()]
    for m in models:
        if m not in MODEL_NAMES:
            ap.error(f"unknown model {m!r}; expected some of {MODEL_NAMES}")
    return run(a.tiny, models, a.batch, a.repeats, a.threads, a.out, a.no_profile)


if __name__ == "__main__":
    main()
