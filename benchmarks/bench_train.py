"""End-to-end benchmark: training / eval images/s, tinygrad_rad vs PyTorch, each framework in its own process.

The headline numbers of the README. Every measurement is a fresh worker process that imports only its
own framework::

    python -m benchmarks.bench_train --worker torch --model smallcnn --mode train --batch 128 --threads 2

The worker builds the model and optimizer, times its first step on its own (``first_step_s``: Numba's
compile or cache load, PyTorch's lazy init, first allocations), runs ``--warmup`` untimed steps, then
times ``--steps`` steps one by one and prints JSON. The parent alternates the frameworks A B A B for
``--rounds`` rounds (a burst of load from other processes hits both alike), and reports per framework
the median over rounds of each round's median step, with the min-max over rounds; ratio = PyTorch's
median step time / ours (> 1: tinygrad_rad is faster). Both get the same thread count (default 2):
ours through ``kernels.configure_cpu`` (as the CLI runs), PyTorch through ``torch.set_num_threads``.

Models (the issue-16 targets): SmallCNN and ResNet-18 ('28' stem) at batch 128 on random 28x28x1
images, 2 classes, cross-entropy, train and eval; the U-Net segmentation default (tasks/segment.py:
depth 4, base 8 channels, BN, transposed-conv up, batch 8, 128x128x1, Dice+BCE loss, Adam lr 2e-3),
train. Optimizer: Adam (lr 1e-3 for the classifiers; the CLI's default), or ``--optimizer sgd``
(momentum 0.9). Eval = forward under no_grad in eval mode.

Also measured: the cold start of ``tinygrad-rad train`` (a fresh process: imports, data loading, model
build, first step) to its first step, per classifier, on a small ``--limit-train`` of PneumoniaMNIST
(skipped when the data is not there).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python -m benchmarks.bench_train   # minutes
    .venv/bin/python -m benchmarks.bench_train --tiny     # batch 2, 1 round, seconds (smoke test)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchmarks.common import RESULTS_DIR, machine_info, print_table, write_json

ROOT = Path(__file__).resolve().parent.parent
MODEL_NAMES = ("smallcnn", "resnet18", "unet")
CLASSIFIERS = ("smallcnn", "resnet18")
FRAMEWORKS = ("ours", "torch")
FW_KEY = {"ours": "tinygrad_rad", "torch": "torch"}  # JSON keys (as in the other benchmarks)
NUM_CLASSES = 2
# the segmentation task's default config (tinygrad_rad/tasks/segment.py SegmentConfig)
UNET = {"depth": 4, "base_channels": 8, "size": 128, "batch": 8, "lr": 2e-3}
# timed steps per worker (full size); ResNet-18 steps take ~1 s
STEPS = {"smallcnn": 8, "resnet18": 3, "unet": 5}


def torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


# ------------------------------------------------------------------------------------- models
def build_ours(name: str, in_channels: int = 1, num_classes: int = NUM_CLASSES):
    from tinygrad_rad.models import ResNet18, SmallCNN, UNet

    if name == "smallcnn":
        return SmallCNN(in_channels, num_classes)
    if name == "resnet18":
        return ResNet18(in_channels, num_classes, variant="28")
    if name == "unet":
        return UNet(in_channels, 1, depth=UNET["depth"], base_channels=UNET["base_channels"], batch_norm=True,
                    up="transpose")
    raise ValueError(f"unknown model {name!r}; expected one of {MODEL_NAMES}")


def build_torch(name: str, in_channels: int = 1, num_classes: int = NUM_CLASSES):
    """The same networks in PyTorch (layer for layer; ResNet-18 in torchvision's layout, '28' stem)."""
    import torch
    import torch.nn as tnn

    def cbr(cin, cout):
        return [tnn.Conv2d(cin, cout, 3, padding=1, bias=False), tnn.BatchNorm2d(cout), tnn.ReLU()]

    if name == "smallcnn":
        return tnn.Sequential(
            *cbr(in_channels, 32), *cbr(32, 64), tnn.MaxPool2d(2), *cbr(64, 128), tnn.MaxPool2d(2),
            tnn.AdaptiveAvgPool2d(1), tnn.Flatten(1), tnn.Dropout(0.3), tnn.Linear(128, num_classes),
        )
    if name == "unet":
        class Up(tnn.Module):
            def __init__(self, cin, cout):
                super().__init__()
                self.up = tnn.ConvTranspose2d(cin, cout, 2, stride=2)
                self.conv = tnn.Sequential(*cbr(2 * cout, cout), *cbr(cout, cout))

            def forward(self, x, skip):
                return self.conv(torch.cat([self.up(x), skip], 1))

        class UNet(tnn.Module):  # tinygrad_rad.models.UNet, layer for layer
            def __init__(self):
                super().__init__()
                chans = [UNET["base_channels"] * 2**i for i in range(UNET["depth"] + 1)]
                cin, self.down = in_channels, tnn.ModuleList()
                for c in chans[:-1]:
                    self.down.append(tnn.Sequential(*cbr(cin, c), *cbr(c, c)))
                    cin = c
                self.pool = tnn.MaxPool2d(2)
                self.bottleneck = tnn.Sequential(*cbr(chans[-2], chans[-1]), *cbr(chans[-1], chans[-1]))
                self.ups = tnn.ModuleList([Up(chans[i + 1], chans[i])
                                           for i in reversed(range(UNET["depth"]))])
                self.head = tnn.Conv2d(chans[0], 1, 1)

            def forward(self, x):
                skips = []
                for block in self.down:
                    x = block(x)
                    skips.append(x)
                    x = self.pool(x)
                x = self.bottleneck(x)
                for up, skip in zip(self.ups, reversed(skips)):
                    x = up(x, skip)
                return self.head(x)

        return UNet()
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
def make_data(batch: int, seed: int = 0, model: str = "smallcnn", size: int | None = None):
    """Random inputs and targets: classifiers (batch, 1, 28, 28) + int64 labels; U-Net (batch, 1, S, S)
    + a float32 0/1 mask of the same shape (S = 128 unless ``size``)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    if model == "unet":
        s = size or UNET["size"]
        x = rng.random((batch, 1, s, s), dtype=np.float32)
        y = (rng.random((batch, 1, s, s)) < 0.2).astype(np.float32)
        return x, y
    x = rng.standard_normal((batch, 1, size or 28, size or 28)).astype(np.float32)
    y = rng.integers(0, NUM_CLASSES, size=batch).astype(np.int64)
    return x, y


def _lr(name: str) -> float:
    return UNET["lr"] if name == "unet" else 1e-3


def ours_steps(name: str, x, y, optimizer: str = "adam"):
    """(train_step, eval_step) closures for tinygrad_rad (the step's model and optimizer as attributes)."""
    import tinygrad_rad as tr
    import tinygrad_rad.nn.functional as F
    from tinygrad_rad import nn
    from tinygrad_rad.optim import SGD, Adam

    tr.manual_seed(0)
    model = build_ours(name)
    opt = (Adam(model.parameters(), lr=_lr(name)) if optimizer == "adam"
           else SGD(model.parameters(), lr=0.01, momentum=0.9))
    tx, ty = tr.Tensor(x), tr.Tensor(y)
    loss_fn = nn.DiceBCELoss() if name == "unet" else F.cross_entropy

    def train_step():
        model.train()
        opt.zero_grad()
        loss = loss_fn(model(tx), ty)
        loss.backward()
        opt.step()
        return loss.item()

    def eval_step():
        model.eval()
        with tr.no_grad():
            return model(tx).numpy()

    train_step.model = eval_step.model = model
    train_step.optimizer = opt
    return train_step, eval_step


def torch_dice_bce(x, g):
    """tinygrad_rad's DiceBCELoss in PyTorch: soft Dice of sigmoid(x) per (image, channel), mean, plus
    BCE-with-logits (smooth 1e-5 in numerator and denominator)."""
    import torch
    import torch.nn.functional as tF

    p = torch.sigmoid(x)
    inter = (p * g).sum((2, 3))
    denom = p.sum((2, 3)) + g.sum((2, 3))
    dice = (1.0 - (2.0 * inter + 1e-5) / (denom + 1e-5)).mean()
    return dice + tF.binary_cross_entropy_with_logits(x, g)


def torch_steps(name: str, x, y, optimizer: str = "adam"):
    """(train_step, eval_step) closures for PyTorch."""
    import torch
    import torch.nn.functional as tF

    torch.manual_seed(0)
    model = build_torch(name)
    opt = (torch.optim.Adam(model.parameters(), lr=_lr(name)) if optimizer == "adam"
           else torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9))
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    loss_fn = torch_dice_bce if name == "unet" else tF.cross_entropy

    def train_step():
        model.train()
        opt.zero_grad()
        loss = loss_fn(model(tx), ty)
        loss.backward()
        opt.step()
        return loss.item()

    def eval_step():
        model.eval()
        with torch.no_grad():
            return model(tx).numpy()

    train_step.model = eval_step.model = model
    train_step.optimizer = opt
    return train_step, eval_step


def setup_framework(fw: str, threads: int) -> dict:
    """Configure only ``fw``'s threads in this (worker) process; returns what was set."""
    if fw == "ours":
        from tinygrad_rad.kernels import configure_cpu

        return configure_cpu(num_threads=threads)  # workqueue layer, malloc, threads: as the CLI runs
    if fw == "torch":
        import torch

        try:
            from threadpoolctl import threadpool_limits

            threadpool_limits(threads)  # NumPy's BLAS too (unused in the step, but alike)
        except ImportError:  # pragma: no cover
            pass
        torch.set_num_threads(threads)
        return {"num_threads": torch.get_num_threads()}
    raise ValueError(f"unknown framework {fw!r}; expected one of {FRAMEWORKS}")


# -------------------------------------------------------------------------------------- worker
def worker(fw: str, model: str, mode: str, batch: int, steps: int, warmup: int, threads: int,
           optimizer: str = "adam", size: int | None = None) -> dict:
    """One measurement in this process: first step, warm-up, then ``steps`` timed steps (ms)."""
    t_start = time.perf_counter()
    configured = setup_framework(fw, threads)
    x, y = make_data(batch, model=model, size=size)
    train_step, eval_step = (ours_steps if fw == "ours" else torch_steps)(model, x, y, optimizer)
    step = train_step if mode == "train" else eval_step
    setup_s = time.perf_counter() - t_start
    t0 = time.perf_counter()
    step()
    first_step_s = time.perf_counter() - t0
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append((time.perf_counter() - t0) * 1e3)
    out = {"framework": FW_KEY[fw], "model": model, "mode": mode, "batch": batch, "threads": threads,
           "optimizer": optimizer if mode == "train" else None, "configured": configured,
           "setup_s": setup_s, "first_step_s": first_step_s, "warmup": warmup, "times_ms": times,
           "median_ms": statistics.median(times), "min_ms": min(times), "max_ms": max(times),
           "other_framework_imported": sorted({"torch", "tinygrad_rad"} - {FW_KEY[fw]} & set(sys.modules))}
    if fw == "ours":
        import numba

        from benchmarks.common import numba_info

        out["numba"] = numba_info()
        out["numba"]["version"] = numba.__version__
    else:
        from benchmarks.common import torch_info

        out["torch"] = torch_info()
    return out


def measure(fw: str, model: str, mode: str, batch: int, steps: int, warmup: int, threads: int,
            optimizer: str = "adam", size: int | None = None, timeout: float = 900) -> dict:
    """Start a fresh worker process for one measurement and return its JSON result."""
    cmd = [sys.executable, "-m", "benchmarks.bench_train", "--worker", fw, "--model", model, "--mode", mode,
           "--batch", str(batch), "--steps", str(steps), "--warmup", str(warmup), "--threads", str(threads),
           "--optimizer", optimizer] + (["--size", str(size)] if size else [])
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError(f"train worker {fw}/{model}/{mode} failed (exit {p.returncode}):\n"
                           f"{p.stderr[-3000:]}")
    res = json.loads(p.stdout.strip().splitlines()[-1])
    res["process_s"] = time.perf_counter() - t0
    return res


# --------------------------------------------------------------------------------- cold start
_FIRST_STEP = re.compile(r"(?<![\d/])1/\d+(?![\d/])")


def _first_step_seen(buf: str) -> bool:
    """Whether the progress output holds a 'step 1 of N' of epoch 1 (plain ProgressBar line
    'epoch 1/1 1/4 loss=...' or tqdm's 'epoch 1/1:  25%|...| 1/4 [...]')."""
    for seg in re.split(r"[\r\n]", buf):
        m = re.match(r"\s*epoch 1/\d+", seg)
        if m and _FIRST_STEP.search(seg[m.end():]):
            return True
    return False


def cli_command() -> list[str]:
    """``tinygrad-rad`` as installed beside this Python (the console script), else ``python -m``."""
    script = Path(sys.executable).parent / "tinygrad-rad"
    return [str(script)] if script.exists() else [sys.executable, "-m", "tinygrad_rad"]


def cold_start(model: str, batch: int, threads: int, limit_train: int, timeout: float = 600) -> dict:
    """Wall time from starting ``tinygrad-rad train`` (a fresh process) to its first training step's
    progress line, and to the end of the tiny run (1 epoch on ``limit_train`` images, then val/test)."""
    with tempfile.TemporaryDirectory(prefix="tgr_cold_") as out:
        cmd = cli_command() + ["train", "--model", model, "--epochs", "1", "--batch-size", str(batch),
                               "--limit-train", str(limit_train), "--limit-eval", str(max(batch, 2)),
                               "--num-threads", str(threads), "--no-plots", "--no-download", "--out", out]
        env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
        t0 = time.perf_counter()
        # NOTE: only the reader thread reads stderr (communicate() would race it for the chunks)
        p = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        first: list = []
        chunks: list = []

        def read_err():
            while True:
                b = os.read(p.stderr.fileno(), 4096)
                if not b:
                    return
                chunks.append(b.decode(errors="replace"))
                if not first and _first_step_seen("".join(chunks)):
                    first.append(time.perf_counter() - t0)

        reader = threading.Thread(target=read_err, daemon=True)
        reader.start()
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            return {"model": model, "status": f"timed out after {timeout:.0f} s", "command": cmd}
        total = time.perf_counter() - t0
        reader.join(timeout=5)
    err = "".join(chunks)
    res = {"model": model, "command": " ".join(cmd[:1] + cmd[1:]).replace(out, "OUT"), "batch": batch,
           "limit_train": limit_train, "threads": threads, "exit": p.returncode, "total_s": total,
           "to_first_step_s": first[0] if first else None}
    if p.returncode != 0:
        tail = err.strip().splitlines()[-1:] or ["?"]
        no_data = any(s in err for s in ("not found", "No such file", "download"))
        res["status"] = "skipped: no data" if no_data else f"failed: {tail[0][:200]}"
    else:
        res["status"] = "ok" if first else "ok (no progress line seen)"
    return res


# -------------------------------------------------------------------------------------- run
def _img_s(ms: float, batch: int) -> float:
    return batch / ms * 1e3


def summarize_runs(runs: dict, batch: int) -> dict:
    """From the workers' results per framework: median over rounds of each round's median step (ms),
    min-max over rounds, images/s, first step; ratio = torch / ours step time (> 1: ours faster)."""
    out: dict = {}
    for key, rs in runs.items():
        meds = [r["median_ms"] for r in rs]
        med = statistics.median(meds)
        firsts = [r["first_step_s"] for r in rs]
        out[key] = {"rounds": len(rs), "round_median_ms": meds, "median_ms": med, "min_ms": min(meds),
                    "max_ms": max(meds),
                    "img_s": {"median": _img_s(med, batch), "min": _img_s(max(meds), batch),
                              "max": _img_s(min(meds), batch)},
                    "first_step_s": statistics.median(firsts), "first_step_s_all": firsts,
                    "first_call_s": statistics.median(firsts),  # the old key, for readers of older JSON
                    "setup_s": statistics.median(r["setup_s"] for r in rs),
                    "other_framework_imported": sorted({m for r in rs
                                                        for m in r["other_framework_imported"]})}
    if "torch" in out and "tinygrad_rad" in out:
        out["ratio_vs_torch"] = out["torch"]["median_ms"] / out["tinygrad_rad"]["median_ms"]
        # per-round ratios (same round = same minute of machine load): their range shows the noise
        rr = [t["median_ms"] / o["median_ms"] for o, t in zip(runs["tinygrad_rad"], runs["torch"])]
        out["ratio_round"] = {"values": rr, "min": min(rr), "max": max(rr)}
    return out


def bench_model(name: str, modes, batch: int, rounds: int, steps: int, warmup: int, threads: int,
                frameworks, optimizer: str, size: int | None = None) -> dict:
    entry: dict = {"model": name, "batch": batch, "steps": steps, "warmup": warmup, "rounds": rounds}
    for mode in modes:
        runs: dict = {FW_KEY[fw]: [] for fw in frameworks}
        for _ in range(rounds):  # A B A B ...
            for fw in frameworks:
                res = measure(fw, name, mode, batch, steps, warmup, threads, optimizer, size)
                runs[FW_KEY[fw]].append(res)
        entry[mode] = summarize_runs(runs, batch)
        entry[mode]["workers"] = runs
        print(f"# {name} {mode}: " + ", ".join(
            f"{k} {v['img_s']['median']:.4g} img/s" for k, v in entry[mode].items()
            if isinstance(v, dict) and "img_s" in v), file=sys.stderr, flush=True)
    return entry


def rows_for(results: list[dict]) -> list[dict]:
    rows = []
    for r in results:
        for mode in ("train", "eval"):
            if mode not in r:
                continue
            m = r[mode]
            ours = m["tinygrad_rad"]["img_s"]
            row = {"model": r["model"], "mode": mode, "batch": r["batch"],
                   "ours img/s": ours["median"], "ours range": f"{ours['min']:.4g}-{ours['max']:.4g}"}
            if "torch" in m:
                t = m["torch"]["img_s"]
                row.update({"torch img/s": t["median"], "torch range": f"{t['min']:.4g}-{t['max']:.4g}",
                            "ratio": m["ratio_vs_torch"],
                            "round ratios": f"{m['ratio_round']['min']:.2f}-{m['ratio_round']['max']:.2f}"})
            else:
                row.update({"torch img/s": "n/a", "torch range": "", "ratio": "n/a", "round ratios": ""})
            row["ours 1st step s"] = m["tinygrad_rad"]["first_step_s"]
            row["torch 1st step s"] = m["torch"]["first_step_s"] if "torch" in m else "n/a"
            rows.append(row)
    return rows


TINY_MODELS = ("smallcnn", "unet")  # --tiny: a ResNet-18 worker alone takes seconds of imports and compile


def run(tiny: bool = False, models=MODEL_NAMES, batch: int | None = None, rounds: int | None = None,
        steps: int | None = None, threads: int | None = None, out_dir: Path | str = RESULTS_DIR,
        optimizer: str = "adam", cold: bool = True, warmup: int | None = None) -> dict:
    threads = threads or (1 if tiny else 2)  # --tiny: 1 thread (a loaded machine makes 2-thread OpenMP crawl)
    with_torch = torch_available()
    frameworks = FRAMEWORKS if with_torch else FRAMEWORKS[:1]
    rounds = rounds or (1 if tiny else 5)
    warmup = (0 if tiny else 1) if warmup is None else warmup
    if tiny and tuple(models) == MODEL_NAMES:
        models = TINY_MODELS
    t0 = time.perf_counter()
    results = []
    for name in models:
        b = batch or (2 if tiny else (UNET["batch"] if name == "unet" else 128))
        size = 32 if tiny and name == "unet" else None  # 2**depth divides 32
        modes = ("train",) if name == "unet" else ("train", "eval")
        n = steps or (1 if tiny else STEPS[name])
        results.append(bench_model(name, modes, b, rounds, n, warmup, threads, frameworks, optimizer, size))
        print(f"# {name}: done at {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    rows = rows_for(results)
    print_table(rows, floatfmt=".4g")
    print(f"# separate processes, {rounds} round(s) A B alternated, {threads} thread(s); median over rounds "
          "of per-round median step; range = min-max over rounds; ratio > 1: tinygrad_rad faster")
    cold_rows = []
    if cold:
        for name in (m for m in models if m in CLASSIFIERS):
            cb, lim = (2, 4) if tiny else (128, 256)
            cold_rows.append(cold_start(name, cb, threads, lim))
        if cold_rows:
            print_table([{k: r.get(k) for k in ("model", "status", "to_first_step_s", "total_s")}
                         for r in cold_rows], floatfmt=".3g")
            print("# cold start: `tinygrad-rad train` in a fresh process to its first step's progress line "
                  "(imports, data, model, Numba cache load or compile, step 1), and to the end of the run")
    if not with_torch:
        print("# PyTorch is not installed: absolute numbers only, no baseline", flush=True)
    ours_w = next((w for r in results for m in ("train", "eval") if m in r
                   for w in r[m]["workers"]["tinygrad_rad"]), None)
    torch_w = next((w for r in results for m in ("train", "eval") if m in r
                    for w in r[m]["workers"].get("torch", [])), None)
    machine = machine_info(torch=with_torch)
    if ours_w:  # what the ours workers actually ran on (the parent never runs a kernel)
        machine["numba_threading_layer_used"] = ours_w["numba"]["numba_threading_layer_used"]
    payload = {
        "benchmark": "train", "tiny": tiny, "threads": threads, "rounds": rounds, "optimizer": optimizer,
        "method": "separate processes, alternated A B per round; median of per-round medians; "
                  "warm-up excluded",
        "torch_available": with_torch, "torch_version": torch_w["torch"]["version"] if torch_w else None,
        "torch_threads": torch_w["configured"]["num_threads"] if torch_w else None,
        "numba_threading_layer_used": machine.get("numba_threading_layer_used"), "machine": machine,
        "results": results, "table": rows, "cold_start": cold_rows, "wall_s": time.perf_counter() - t0,
    }
    path = write_json("train", payload, out_dir)
    print(f"# wrote {path}", flush=True)
    return payload


def main(argv=None) -> dict | None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tiny", action="store_true",
                    help="SmallCNN + U-Net (32x32), batch 2, 1 thread, 1 round, 1 step: a smoke test")
    ap.add_argument("--models", default=",".join(MODEL_NAMES), help="comma-separated: smallcnn,resnet18,unet")
    ap.add_argument("--batch", type=int, default=None, help="default 128 (U-Net 8; 2 with --tiny)")
    ap.add_argument("--rounds", type=int, default=None, help="A B rounds per measurement (default 5)")
    ap.add_argument("--steps", type=int, default=None, help="timed steps per worker (default per model)")
    ap.add_argument("--warmup", type=int, default=None, help="untimed steps after the first (default 1)")
    ap.add_argument("--threads", type=int, default=None, help="threads for both frameworks (default 2)")
    ap.add_argument("--optimizer", choices=["adam", "sgd"], default="adam",
                    help="adam, or sgd (momentum 0.9)")
    ap.add_argument("--no-cold-start", action="store_true", help="skip the `tinygrad-rad train` cold start")
    ap.add_argument("--out", default=str(RESULTS_DIR), help="results directory (train.json)")
    ap.add_argument("--worker", choices=FRAMEWORKS, help=argparse.SUPPRESS)
    ap.add_argument("--model", default="smallcnn", help=argparse.SUPPRESS)
    ap.add_argument("--mode", choices=["train", "eval"], default="train", help=argparse.SUPPRESS)
    ap.add_argument("--size", type=int, default=None, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.worker:
        warm = 1 if a.warmup is None else a.warmup
        res = worker(a.worker, a.model, a.mode, a.batch or 128, a.steps or 3, warm, a.threads or 2,
                     a.optimizer, a.size)
        print(json.dumps(res, default=str), flush=True)
        return None
    models = [m.strip() for m in a.models.split(",") if m.strip()]
    for m in models:
        if m not in MODEL_NAMES:
            ap.error(f"unknown model {m!r}; expected some of {MODEL_NAMES}")
    return run(a.tiny, models, a.batch, a.rounds, a.steps, a.threads, a.out, a.optimizer,
               not a.no_cold_start, a.warmup)


if __name__ == "__main__":
    main()
