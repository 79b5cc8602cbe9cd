"""Whole-stack parity with PyTorch (issue 15, part 1): the same model, initial weights, batches,
augmentation draws, optimizer and per-step schedule, trained side by side in tinygrad_rad and PyTorch.

* Models: SmallCNN and ResNet-18 (28). The PyTorch twins below use the same state_dict key names, and
  tinygrad_rad's freshly initialised state_dict is copied into them (``load_state_dict(strict=True)``).
* Batches: drawn ONCE per step by tinygrad_rad's own training loader (``tasks.classify.make_loader``:
  seeded shuffle, the default RandomAffine augmentation, [-1, 1] scaling) from real PneumoniaMNIST
  when ``../shared/data`` has it (else random images through the same pipeline); the identical float
  array goes into both frameworks. SmallCNN's dropout mask is the one tinygrad_rad drew (read off the
  graph), fed to the twin's dropout.
* Optimizer / schedule: the default recipe's (``tasks.classify.make_optimizer``: Adam, or SGD with
  Nesterov momentum 0.9) against ``torch.optim.Adam`` / ``torch.optim.SGD(nesterov=True)``; the
  learning rate follows ``tasks.classify.lr_factor`` per step (cosine over the run's steps) through
  each framework's own ``LambdaLR``.
* float32 for N steps (drift from rounding grows slowly) and float64 for a few steps (both models
  cast with ``.double()``, torch's default dtype set to float64): float64 must agree to ~1e-10.

Reported: the loss difference every k steps (abs and relative), the first step's gradient difference
per parameter, and the final max difference per parameter / buffer tensor (table + JSON in
``benchmarks/results/parity_train.json`` with machine info).

    .venv/bin/python -m benchmarks.parity_train                      # SmallCNN + ResNet-18, Adam + SGD
    .venv/bin/python -m benchmarks.parity_train --model smallcnn --optimizer adam --steps 300
    .venv/bin/python -m benchmarks.parity_train --tiny               # seconds (smoke test)
    .venv/bin/python -m benchmarks.parity_train --full --seeds 0,1,2 # the default recipe end to end,
                                                                     # each framework in its own process

``--flips N`` counts, on N batches at the initial weights, the float32 ReLU inputs whose sign and the
2x2 max-pool windows whose argmax differ from float64, in both frameworks (where first-step float32
gradients differ by more than rounding). ``--probe-val tinygrad_rad|torch [--no-augment]`` trains the
default recipe a few epochs and scores validation ACC with BN running statistics (eval mode), batch
statistics, and statistics recomputed on clean / augmented training batches, plus the best threshold
(why validation ACC swings while AUC does not).

``--full`` trains the default recipe (``TrainConfig()``) in tinygrad_rad (``tasks.classify.fit``) and
the same recipe in PyTorch (same data pipeline, model, initial weights, optimizer, schedule,
best-validation-AUC checkpoint, one test evaluation) and reports test AUC / ACC per seed and mean +- std.
PyTorch is used only here (benchmarks/) and in tests/, never by the package.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a file: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import machine_info, print_table, set_threads, write_json  # noqa: E402

MODEL_NAMES = ("smallcnn", "resnet18")
OPTIMIZERS = ("adam", "sgd")
DEFAULT_STEPS = {"smallcnn": (300, 50), "resnet18": (20, 3)}  # (float32 steps, float64 steps)
DATA_DIR = Path(os.environ.get("TINYGRAD_RAD_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


# ------------------------------------------------------------------------------ PyTorch twins
def torch_twin(name: str, in_channels: int = 1, num_classes: int = 2):
    """The PyTorch twin of ``tinygrad_rad.models.build_model(name)`` with the same state_dict keys."""
    import torch
    import torch.nn as tnn

    class MaskDropout(tnn.Module):
        """Dropout whose mask (already scaled by 1/(1-p)) is set from outside before each forward."""

        def __init__(self):
            super().__init__()
            self.mask = None

        def forward(self, x):
            if not self.training or self.mask is None:
                return x
            return x * self.mask

    def cbr(cin, cout):
        return [tnn.Conv2d(cin, cout, 3, padding=1, bias=False), tnn.BatchNorm2d(cout), tnn.ReLU()]

    class SmallCNN(tnn.Module):
        def __init__(self):
            super().__init__()
            self.features = tnn.Sequential(*cbr(in_channels, 32), *cbr(32, 64), tnn.MaxPool2d(2),
                                           *cbr(64, 128), tnn.MaxPool2d(2))
            self.avgpool = tnn.AdaptiveAvgPool2d(1)
            self.dropout = MaskDropout()
            self.fc = tnn.Linear(128, num_classes)

        def forward(self, x):
            return self.fc(self.dropout(torch.flatten(self.avgpool(self.features(x)), 1)))

    class BasicBlock(tnn.Module):
        def __init__(self, cin, planes, stride=1):
            super().__init__()
            self.conv1 = tnn.Conv2d(cin, planes, 3, stride, 1, bias=False)
            self.bn1 = tnn.BatchNorm2d(planes)
            self.relu = tnn.ReLU()
            self.conv2 = tnn.Conv2d(planes, planes, 3, 1, 1, bias=False)
            self.bn2 = tnn.BatchNorm2d(planes)
            self.downsample = None
            if stride != 1 or cin != planes:
                self.downsample = tnn.Sequential(tnn.Conv2d(cin, planes, 1, stride, bias=False),
                                                 tnn.BatchNorm2d(planes))

        def forward(self, x):
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            return self.relu(out + (x if self.downsample is None else self.downsample(x)))

    class ResNet18(tnn.Module):  # torchvision's layout, MedMNIST "(28)" stem: 3x3 stride 1, no max-pool
        def __init__(self):
            super().__init__()
            self.conv1 = tnn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
            self.bn1 = tnn.BatchNorm2d(64)
            self.relu = tnn.ReLU()
            self.maxpool = tnn.Identity()
            cin, layers = 64, []
            for planes, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
                layers.append(tnn.Sequential(BasicBlock(cin, planes, stride), BasicBlock(planes, planes)))
                cin = planes
            self.layer1, self.layer2, self.layer3, self.layer4 = layers
            self.avgpool = tnn.AdaptiveAvgPool2d(1)
            self.fc = tnn.Linear(512, num_classes)

        def forward(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.fc(torch.flatten(self.avgpool(x), 1))

    if name == "smallcnn":
        return SmallCNN()
    if name == "resnet18":
        return ResNet18()
    raise ValueError(f"unknown model {name!r}; expected one of {MODEL_NAMES}")


def copy_weights(ours, twin) -> None:
    """Load tinygrad_rad's state_dict (parameters and buffers) into the twin, key for key."""
    import torch

    sd = {k: torch.from_numpy(np.array(v.numpy(), copy=True)) for k, v in ours.state_dict().items()}
    twin.load_state_dict(sd, strict=True)


# ------------------------------------------------------------------------------------ data
def load_split(data: str, limit: int | None = None, seed: int = 0):
    """The training split as a ``tasks.classify.Split``: real PneumoniaMNIST, or random uint8 images."""
    from tinygrad_rad.tasks.classify import Split, load_dataset

    if data == "auto":
        data = "pneumoniamnist" if (DATA_DIR / "pneumoniamnist.npz").is_file() else "random"
    if data == "random":
        rng = np.random.default_rng(seed)
        n = limit or 1024
        split = Split(rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(0, 2, (n, 1)))
        return split, "random"
    splits, _ = load_dataset(data, 28, str(DATA_DIR), download=False, splits=("train",))
    split = splits["train"]
    if limit:
        split = Split(split.images[:limit], split.labels[:limit])
    return split, data


def recipe(steps: int, batch_size: int, n_train: int, optimizer: str, lr: float | None, seed: int = 0):
    """The default TrainConfig with the cosine schedule spread over exactly ``steps`` optimizer steps."""
    from tinygrad_rad.tasks.classify import TrainConfig, steps_per_epoch

    cfg = TrainConfig(batch_size=batch_size, optimizer=optimizer, seed=seed)
    if lr is not None:
        cfg.lr = lr
    spe = steps_per_epoch(n_train, batch_size)
    cfg.epochs = max(1, math.ceil(steps / spe))
    return cfg, spe


def batches(split, cfg, steps: int):
    """``steps`` training batches (x float32 (B, 1, 28, 28), y int64 (B,)) of the default loader."""
    from tinygrad_rad.tasks.classify import make_loader

    loader = make_loader(split, cfg)
    done = 0
    while done < steps:
        for x, y in loader:
            yield x.numpy(), y.numpy().reshape(-1)
            done += 1
            if done >= steps:
                return


# ------------------------------------------------------------------------------- side by side
def _max_abs(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b))) if a.size else 0.0


def _rel(a, b) -> float:
    scale = float(np.max(np.abs(np.asarray(b, np.float64)))) if np.size(b) else 0.0
    return _max_abs(a, b) / max(scale, 1e-300)


def parity_run(model: str, optimizer: str, dtype: str, steps: int, split, batch_size: int = 128,
               lr: float | None = None, seed: int = 0, every: int = 10, log=print,
               reference64: bool = True) -> dict:
    """Train ours and the PyTorch twin in lockstep for ``steps`` steps; returns the differences.

    ``reference64`` (float32 runs): also train a float64 PyTorch twin on the same batches, the scale of
    plain float32 rounding drift: ``|torch32 - torch64|`` beside ``|ours32 - torch64|``.
    """
    import torch
    import torch.nn.functional as tF

    import tinygrad_rad as tr
    from tinygrad_rad.nn import functional as F
    from tinygrad_rad.tasks.classify import build, lr_factor, make_optimizer, make_scheduler

    cfg, spe = recipe(steps, batch_size, len(split.images), optimizer, lr, seed)
    tr.manual_seed(seed)
    ours = build(model, 1, 2)
    twin = torch_twin(model)
    copy_weights(ours, twin)
    ref = None
    if reference64 and dtype == "float32":
        ref = torch_twin(model)
        copy_weights(ours, ref)
        ref.double()
    start = {k: np.array(v.numpy(), np.float64) for k, v in ours.state_dict().items()}
    f64 = dtype == "float64"
    old_default = torch.get_default_dtype()
    if f64:
        ours.double()
        twin.double()
        torch.set_default_dtype(torch.float64)
    np_dtype = np.float64 if f64 else np.float32
    try:
        opt = make_optimizer(cfg, ours.parameters())
        sched = make_scheduler(cfg, opt, spe)

        def torch_optim(net):
            if optimizer == "adam":
                o = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
            elif optimizer == "sgd":
                o = torch.optim.SGD(net.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                                    weight_decay=cfg.weight_decay, nesterov=True)
            else:
                raise ValueError(f"unknown optimizer {optimizer!r}; expected one of {OPTIMIZERS}")
            return o, torch.optim.lr_scheduler.LambdaLR(o, lambda s: lr_factor(cfg, s, spe))

        def torch_step(net, o, sch, x, y, mask):
            """One training step of a twin -> (loss, logits); the caller steps the optimizer."""
            if hasattr(net, "dropout"):
                net.dropout.mask = None if mask is None else torch.from_numpy(np.asarray(mask, x.dtype))
            out = net(torch.from_numpy(x))
            loss = tF.cross_entropy(out, torch.from_numpy(y))
            o.zero_grad()
            loss.backward()
            return loss, out

        topt, tsched = torch_optim(twin)
        if ref is not None:
            ropt, rsched = torch_optim(ref)
            ref.train()

        masks: list = []
        if hasattr(ours, "dropout"):  # record the dropout mask tinygrad_rad draws (from its graph node)
            drop = ours.dropout
            plain = drop.forward

            def recording(x):
                out = plain(x)
                masks.append(getattr(getattr(out, "_ctx", None), "mask", None))
                return out

            drop.forward = recording

        ours.train()
        twin.train()
        rows, losses, grads0 = [], [], None
        t0 = time.perf_counter()
        for step, (x, y) in enumerate(batches(split, cfg, steps)):
            x = x.astype(np_dtype)
            masks.clear()
            logits = ours(tr.Tensor(x))
            loss = F.cross_entropy(logits, tr.Tensor(y))
            opt.zero_grad()
            loss.backward()
            mask = masks[0] if masks else None
            tloss, tlogits = torch_step(twin, topt, tsched, x, y, mask)
            if step == 0:  # the first gradient, before either framework has updated anything
                tp = dict(twin.named_parameters())
                grads0 = {k: {"max_abs": _max_abs(p.grad.numpy(), tp[k].grad.numpy()),
                              "rel": _rel(p.grad.numpy(), tp[k].grad.numpy())}
                          for k, p in ours.named_parameters()}
                logit_diff = _max_abs(logits.numpy(), tlogits.detach().numpy())
            lr_ours, lr_torch = opt.param_groups[0]["lr"], topt.param_groups[0]["lr"]
            opt.step()
            sched.step()
            topt.step()
            tsched.step()
            a, b = float(loss.item()), float(tloss.item())
            c = math.nan
            if ref is not None:
                rloss, _ = torch_step(ref, ropt, rsched, x.astype(np.float64), y, mask)
                if step == 0:  # each float32 gradient against the float64 one
                    rp, tp = dict(ref.named_parameters()), dict(twin.named_parameters())
                    for k, p in ours.named_parameters():
                        g64 = rp[k].grad.numpy()
                        grads0[k].update(ours_vs_torch64_rel=_rel(p.grad.numpy(), g64),
                                         torch_vs_torch64_rel=_rel(tp[k].grad.numpy(), g64))
                ropt.step()
                rsched.step()
                c = float(rloss.item())
            losses.append((a, b, c))
            if step % every == 0 or step == steps - 1:
                row = {"step": step + 1, "loss_ours": a, "loss_torch": b, "abs_diff": abs(a - b),
                       "rel_diff": abs(a - b) / max(abs(b), 1e-300), "lr": lr_ours,
                       "lr_diff": abs(lr_ours - lr_torch)}
                extra = ""
                if ref is not None:
                    row.update(loss_torch64=c, ours_vs_torch64=abs(a - c), torch_vs_torch64=abs(b - c))
                    extra = f" | vs torch float64: ours {abs(a - c):.3g}, torch {abs(b - c):.3g}"
                rows.append(row)
                log(f"  {model} {optimizer} {dtype} step {step + 1:4d}: loss {a:.10g} vs {b:.10g} "
                    f"|diff| {abs(a - b):.3g}{extra}")
        seconds = time.perf_counter() - t0

        tsd = twin.state_dict()
        rsd = ref.state_dict() if ref is not None else None
        tensors = []
        for k, v in ours.state_dict().items():
            ov, tv = v.numpy(), tsd[k].detach().numpy()
            moved = _max_abs(tv, start[k])  # how far training moved the tensor (in PyTorch)
            t = {"tensor": k, "shape": list(ov.shape), "max_abs": _max_abs(ov, tv), "rel": _rel(ov, tv),
                 "max_abs_value": float(np.max(np.abs(tv), initial=0.0)), "moved": moved,
                 "rel_to_moved": _max_abs(ov, tv) / moved if moved else 0.0}
            if rsd is not None:
                rv = rsd[k].detach().numpy()
                t.update(ours_vs_torch64=_max_abs(ov, rv), torch_vs_torch64=_max_abs(tv, rv))
            tensors.append(t)
    finally:
        torch.set_default_dtype(old_default)
    la = np.array(losses, dtype=np.float64)
    d = np.abs(la[:, 0] - la[:, 1])
    params = [t for t in tensors if "running" not in t["tensor"] and "num_batches" not in t["tensor"]]
    drift = {}
    if ref is not None:  # float32 rounding drift, measured against the float64 PyTorch run
        drift = {"loss_max_abs_diff_ours_vs_torch64": float(np.abs(la[:, 0] - la[:, 2]).max()),
                 "loss_max_abs_diff_torch_vs_torch64": float(np.abs(la[:, 1] - la[:, 2]).max()),
                 "final_param_max_abs_diff_ours_vs_torch64": max(t["ours_vs_torch64"] for t in params),
                 "final_param_max_abs_diff_torch_vs_torch64": max(t["torch_vs_torch64"] for t in params)}
    return {**drift,
        "model": model, "optimizer": optimizer, "dtype": dtype, "steps": steps, "batch_size": batch_size,
        "lr": cfg.lr, "schedule": f"{cfg.scheduler} over {cfg.epochs} epochs x {spe} steps "
                                  "(LambdaLR per step, tasks.classify.lr_factor)",
        "seconds": seconds,
        "loss_first": losses[0], "loss_last": losses[-1],
        "loss_max_abs_diff": float(d.max()), "loss_max_rel_diff": float((d / np.abs(la[:, 1])).max()),
        "first_step_logits_max_abs_diff": logit_diff,
        "first_step_grad_max_abs_diff": max(g["max_abs"] for g in grads0.values()),
        "first_step_grad_max_rel_diff": max(g["rel"] for g in grads0.values()),
        "first_step_grads": grads0,
        **({f"first_step_grad_max_rel_diff_{who}_vs_torch64":
            max(g[f"{who}_vs_torch64_rel"] for g in grads0.values())
            for who in ("ours", "torch")} if ref is not None else {}),
        "final_param_max_abs_diff": max(t["max_abs"] for t in params),
        "final_param_max_rel_diff": max(t["rel"] for t in params),
        "final_param_max_diff_over_moved": max(t["rel_to_moved"] for t in params),
        "final_tensor_max_abs_diff": max(t["max_abs"] for t in tensors),
        "reference64": ref is not None,
        "loss_rows": rows, "tensors": tensors,
    }


def summary_row(r: dict) -> dict:
    return {"model": r["model"], "opt": r["optimizer"], "dtype": r["dtype"], "steps": r["steps"],
            "loss0": r["loss_first"][1], "lossN": r["loss_last"][1], "max|dloss|": r["loss_max_abs_diff"],
            "max rel dloss": r["loss_max_rel_diff"], "grad0 rel": r["first_step_grad_max_rel_diff"],
            "max|dW| end": r["final_param_max_abs_diff"], "rel dW end": r["final_param_max_rel_diff"],
            "dW/moved": r["final_param_max_diff_over_moved"],
            "max|dbuf| end": r["final_tensor_max_abs_diff"],
            "dloss ours-t64": r.get("loss_max_abs_diff_ours_vs_torch64", math.nan),
            "dloss t32-t64": r.get("loss_max_abs_diff_torch_vs_torch64", math.nan),
            "dW ours-t64": r.get("final_param_max_abs_diff_ours_vs_torch64", math.nan),
            "dW t32-t64": r.get("final_param_max_abs_diff_torch_vs_torch64", math.nan), "s": r["seconds"]}


# ------------------------------------------------------------------------------- full runs
def _torch_full(cfg_dict: dict) -> dict:
    """The default recipe end to end in PyTorch on tinygrad_rad's data pipeline (this process only)."""
    import copy

    import torch
    import torch.nn.functional as tF

    import tinygrad_rad as tr
    from tinygrad_rad.metrics import classification_report
    from tinygrad_rad.tasks.classify import (
        ClassifyTask,
        TrainConfig,
        _limit,
        build,
        load_dataset,
        lr_factor,
        make_loader,
        preprocess,
        probabilities,
        stratified_subset,
    )

    cfg = TrainConfig.from_dict(cfg_dict)
    if cfg.ema_epochs or cfg.mixup or cfg.label_smoothing or cfg.class_weight != "none" or cfg.tta:
        raise ValueError("parity_train --full: the PyTorch twin has the default recipe's pieces only "
                         "(border padding, flips, precise BN, train_subset)")
    torch.manual_seed(cfg.seed)
    data, info = load_dataset(cfg.dataset, cfg.size, cfg.data_dir, download=False)
    train = _limit(stratified_subset(data["train"], cfg.train_subset, cfg.subset_seed), cfg.limit_train)
    val, test = _limit(data["val"], cfg.limit_eval), _limit(data["test"], cfg.limit_eval)
    picker = ClassifyTask(cfg)  # the same clean training batches for precise BN as tinygrad_rad's task
    picker.train_split = train
    tr.manual_seed(cfg.seed)
    model = torch_twin(cfg.model, info.in_channels, info.n_outputs)
    copy_weights(build(cfg.model, info.in_channels, info.n_outputs), model)  # tinygrad_rad's init
    if hasattr(model, "dropout"):
        model.dropout = torch.nn.Dropout(0.3)
    loader = make_loader(train, cfg)
    spe = len(loader)
    if cfg.optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                              weight_decay=cfg.weight_decay, nesterov=True)
    else:
        kind = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
        opt = kind(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(cfg, s, spe))

    def evaluate(split):
        model.eval()
        with torch.no_grad():
            logits = np.concatenate([model(torch.from_numpy(preprocess(split.images[i:i + 256]))).numpy()
                                     for i in range(0, len(split.images), 256)])
        model.train()
        return classification_report(info.task, split.labels, probabilities(info.task, logits))

    best, best_state, best_epoch, history, t0 = -1.0, None, 0, [], time.perf_counter()
    for epoch in range(cfg.epochs):
        model.train()
        for x, y in loader:
            target = torch.from_numpy(y.numpy().reshape(-1))
            loss = tF.cross_entropy(model(torch.from_numpy(x.numpy())), target)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        if cfg.precise_bn > 0:  # the recipe's precise BN, with PyTorch's own update_bn
            torch.optim.swa_utils.update_bn([torch.from_numpy(b.numpy())
                                             for b in picker.clean_batches(cfg.precise_bn)], model)
        v = evaluate(val)
        history.append({"epoch": epoch + 1, "val_auc": v["auc"], "val_acc": v["acc"]})
        if v["auc"] > best:
            best, best_state, best_epoch = v["auc"], copy.deepcopy(model.state_dict()), epoch + 1
    seconds = time.perf_counter() - t0
    model.load_state_dict(best_state)
    t = evaluate(test)
    return {"test_auc": t["auc"], "test_acc": t["acc"], "best_epoch": best_epoch, "best_val_auc": best,
            "train_seconds": seconds, "history": history}


def _ours_full(cfg_dict: dict) -> dict:
    from tinygrad_rad.tasks.classify import TrainConfig, fit

    cfg = TrainConfig.from_dict(cfg_dict)
    with tempfile.TemporaryDirectory() as tmp:
        cfg.out, cfg.plots, cfg.progress, cfg.download = tmp, False, False, False
        r = fit(cfg, log=lambda s: None)
    return {"test_auc": r["test_auc"], "test_acc": r["test_acc"], "best_epoch": r["best_epoch"],
            "best_val_auc": r["best_val_auc"], "train_seconds": r["train_seconds"]}


def full_runs(seeds, tiny: bool, threads: int, epochs: int | None, log=print,
              frameworks=("tinygrad_rad", "torch")) -> dict:
    """The default recipe end to end, each framework and seed in its own process -> per-seed + mean/std."""
    from tinygrad_rad.tasks.classify import TrainConfig

    runs = []
    for seed in seeds:
        cfg = TrainConfig(seed=seed, data_dir=str(DATA_DIR), download=False, num_threads=threads)
        if epochs:
            cfg.epochs = epochs
        if tiny:
            cfg.epochs, cfg.limit_train, cfg.limit_eval, cfg.batch_size = 1, 256, 128, 32
        for fw in frameworks:
            cmd = [sys.executable, "-m", "benchmarks.parity_train", "--full-worker", fw,
                   "--threads", str(threads), "--worker-config", json.dumps(cfg.to_dict())]
            p = subprocess.run(cmd, cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True)
            if p.returncode != 0:
                raise RuntimeError(f"{fw} seed {seed} failed:\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
            res = json.loads(p.stdout.strip().splitlines()[-1])
            res.update(framework=fw, seed=seed)
            runs.append(res)
            log(f"  full {fw} seed {seed}: test AUC {res['test_auc']:.4f} ACC {res['test_acc']:.4f} "
                f"(best epoch {res['best_epoch']}, {res['train_seconds']:.0f}s)")
    agg = {}
    for fw in frameworks:
        rs = [r for r in runs if r["framework"] == fw]
        agg[fw] = {k: {"mean": float(np.mean([r[k] for r in rs])), "std": float(np.std([r[k] for r in rs]))}
                   for k in ("test_auc", "test_acc", "train_seconds")}
    return {"recipe": {**TrainConfig().to_dict(), "tiny": tiny}, "runs": runs, "summary": agg}


# ------------------------------------------------------------- float32 discontinuity flips
def _pool_argmax(a: np.ndarray, k: int = 2):
    """Per k x k window (stride k) of a (N, C, H, W): (argmax, max)."""
    n, c, h, w = a.shape
    a = a[:, :, :h // k * k, :w // k * k].reshape(n, c, h // k, k, w // k, k)
    a = a.transpose(0, 1, 2, 4, 3, 5).reshape(n, c, h // k, w // k, k * k)
    return a.argmax(-1), a.max(-1)


def _record_input(module, store: list) -> None:
    """Make a tinygrad_rad module append a copy of its input array to ``store`` on every call."""
    plain = module.forward

    def forward(t):
        store.append(t.numpy().copy())
        return plain(t)

    module.forward = forward


def discontinuity_flips(model: str, split, batch_size: int = 128, n_batches: int = 4, seed: int = 0) -> dict:
    """Where does float32 rounding cross a kink? For ``n_batches`` training batches at the initial
    weights, count ReLU inputs whose sign differs between the float32 and the float64 forward, and
    2x2 max-pool windows whose argmax differs (max > 0), in tinygrad_rad and in PyTorch. Each such
    flip routes a gradient differently, so the first-step gradients below it differ by more than
    rounding (both choices are valid subgradients at a tie)."""
    import torch

    import tinygrad_rad as tr
    from tinygrad_rad import nn
    from tinygrad_rad.tasks.classify import build

    cfg, _ = recipe(n_batches, batch_size, len(split.images), "adam", None, seed)
    counts = {fw: {"relu_sign_flips": 0, "maxpool_argmax_flips": 0} for fw in ("tinygrad_rad", "torch")}
    sizes = {"relu_values": 0, "maxpool_windows": 0}
    for x, _ in batches(split, cfg, n_batches):
        acts = {}
        for fw in ("tinygrad_rad", "torch"):
            for dt in (np.float64, np.float32):
                tr.manual_seed(seed)
                ours = build(model, 1, 2)
                rec = {"relu": [], "pool": []}
                if fw == "tinygrad_rad":
                    net = ours
                    if dt == np.float64:
                        net.double()
                    for m in net.modules():
                        if isinstance(m, (nn.ReLU, nn.MaxPool2d)):
                            _record_input(m, rec["relu" if isinstance(m, nn.ReLU) else "pool"])
                    net.train()
                    net(tr.Tensor(x.astype(dt)))
                else:
                    net = torch_twin(model)
                    copy_weights(ours, net)
                    net.to(torch.float64 if dt == np.float64 else torch.float32)
                    for m in net.modules():
                        if isinstance(m, (torch.nn.ReLU, torch.nn.MaxPool2d)):
                            store = rec["relu" if isinstance(m, torch.nn.ReLU) else "pool"]
                            m.register_forward_hook(lambda mod, i, o, r=store: r.append(i[0].numpy().copy()))
                    net.train()
                    with torch.no_grad():
                        net(torch.from_numpy(x.astype(dt)))
                acts[fw, dt] = rec
        for fw in ("tinygrad_rad", "torch"):
            a64, a32 = acts[fw, np.float64], acts[fw, np.float32]
            counts[fw]["relu_sign_flips"] += sum(int(((u > 0) != (v > 0)).sum())
                                                 for u, v in zip(a64["relu"], a32["relu"]))
            for u, v in zip(a64["pool"], a32["pool"]):
                i64, m64 = _pool_argmax(u)
                i32, _ = _pool_argmax(v)
                counts[fw]["maxpool_argmax_flips"] += int(((i64 != i32) & (m64 > 0)).sum())
        sizes["relu_values"] += sum(int(u.size) for u in acts["torch", np.float64]["relu"])
        sizes["maxpool_windows"] += sum(int(u.size) // 4 for u in acts["torch", np.float64]["pool"])
    return {"model": model, "batches": n_batches, "batch_size": batch_size, **sizes, **counts,
            "TGR_WINOGRAD": os.environ.get("TGR_WINOGRAD", "1")}


# ------------------------------------------------------------------ validation-accuracy probe
def _best_threshold(labels: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    """(threshold, ACC) of the best threshold on P(positive) - an oracle on the split it is chosen on."""
    y = np.asarray(labels).reshape(-1)
    best = (0.5, float(((p >= 0.5) == (y == 1)).mean()))
    for t in np.unique(np.quantile(p, np.linspace(0.0, 1.0, 401))):
        acc = float(((p >= t) == (y == 1)).mean())
        if acc > best[1]:
            best = (float(t), acc)
    return best


def val_probe(framework: str = "tinygrad_rad", epochs: int = 4, time_limit: float = 170.0, seed: int = 0,
              n_stat_batches: int = 20, augment: bool = True, log=print) -> dict:
    """Why does validation ACC swing while AUC stays high? The default recipe (PneumoniaMNIST, binary)
    trained for a few epochs in ``framework`` ("tinygrad_rad" or "torch": the same data pipeline and
    initial weights); after every epoch the validation split is scored five ways:

    ``eval``: eval mode (BN running statistics), as the training loop does; ``bn_batch``: BN with the
    statistics of the validation batch itself (two batches of ~262); ``clean``: BN running statistics
    recomputed (cumulative average) on ``n_stat_batches`` clean (not augmented) training batches;
    ``aug``: the same on augmented training batches; plus the best threshold on P(pneumonia) (an oracle:
    chosen on the split it is measured on) and the fraction predicted positive at 0.5 (prevalence 0.74).
    """
    import tinygrad_rad as tr
    from tinygrad_rad.metrics import classification_report
    from tinygrad_rad.tasks.classify import (
        ClassificationSet,
        TrainConfig,
        build,
        load_dataset,
        make_loader,
        make_optimizer,
        make_scheduler,
        preprocess,
        probabilities,
    )

    cfg = TrainConfig(seed=seed, augment=augment)
    data, info = load_dataset(cfg.dataset, 28, str(DATA_DIR), download=False)
    train, val = data["train"], data["val"]
    tr.manual_seed(seed)
    ours = build(cfg.model, info.in_channels, info.n_outputs)
    loader = make_loader(train, cfg)
    spe = len(loader)
    rng = np.random.default_rng(1234)
    stat_idx = [np.sort(rng.choice(len(train.images), cfg.batch_size, replace=False))
                for _ in range(n_stat_batches)]
    clean = [preprocess(train.images[i]) for i in stat_idx]
    augset = ClassificationSet(train, cfg, augment=True)
    aug = [augset.get_batch(i, np.random.default_rng([7, k]))[0] for k, i in enumerate(stat_idx)]
    val_x = preprocess(val.images)

    if framework == "torch":
        import copy

        import torch
        import torch.nn.functional as tF

        from tinygrad_rad.tasks.classify import lr_factor

        torch.manual_seed(seed)
        model = torch_twin(cfg.model, info.in_channels, info.n_outputs)
        copy_weights(ours, model)
        model.dropout = torch.nn.Dropout(0.3)
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(cfg, s, spe))
        bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]

        def step(x, y):
            loss = tF.cross_entropy(model(torch.from_numpy(x)), torch.from_numpy(y))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            return float(loss.item())

        def forward(x):
            with torch.no_grad():
                return model(torch.from_numpy(x)).numpy().astype(np.float64)

        def snapshot():
            return copy.deepcopy(model.state_dict())

        def restore(sd):
            model.load_state_dict(sd)
    else:
        from tinygrad_rad import nn
        from tinygrad_rad.autograd import no_grad
        from tinygrad_rad.nn import functional as F

        model = ours
        opt = make_optimizer(cfg, model.parameters())
        sched = make_scheduler(cfg, opt, spe)
        bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]

        def step(x, y):
            loss = F.cross_entropy(model(tr.Tensor(x)), tr.Tensor(y))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            return float(loss.item())

        def forward(x):
            with no_grad():
                return model(tr.Tensor(x)).numpy().astype(np.float64)

        def snapshot():
            return {k: np.array(v.numpy(), copy=True) for k, v in model.state_dict().items()}

        def restore(sd):
            model.load_state_dict({k: tr.Tensor(v) for k, v in sd.items()})

    def score(mode: str) -> dict:
        saved = snapshot()
        model.eval()
        if mode in ("clean", "aug"):  # recompute the running statistics, cumulative average
            for m in bns:
                m.reset_running_stats()
                m.momentum = None
                m.train()
            for x in (clean if mode == "clean" else aug):
                forward(x)
            for m in bns:
                m.momentum = 0.1
                m.eval()
        if mode == "bn_batch":
            for m in bns:
                m.train()
            logits = np.concatenate([forward(x) for x in np.array_split(val_x, 2)])
        else:
            logits = forward(val_x)
        restore(saved)
        model.train()
        probs = probabilities(info.task, logits)
        rep = classification_report(info.task, val.labels, probs)
        thr, acc = _best_threshold(val.labels, probs[:, 1])
        return {"auc": rep["auc"], "acc": rep["acc"], "pos_rate": float((probs[:, 1] >= 0.5).mean()),
                "best_threshold": thr, "best_threshold_acc": acc}

    rows, t0 = [], time.perf_counter()
    for epoch in range(epochs):
        model.train()
        losses = []
        lr = opt.param_groups[0]["lr"]
        for xb, yb in loader:
            losses.append(step(xb.numpy(), yb.numpy().reshape(-1)))
        row = {"epoch": epoch + 1, "lr": lr, "train_loss": float(np.mean(losses))}
        for mode in ("eval", "bn_batch", "clean", "aug"):
            row.update({f"{mode}_{k}": v for k, v in score(mode).items()})
        rows.append(row)
        log(f"  {framework} epoch {epoch + 1}: loss {row['train_loss']:.4f} | ACC eval {row['eval_acc']:.3f} "
            f"(pos {row['eval_pos_rate']:.2f}, best thr {row['eval_best_threshold']:.3f} -> "
            f"{row['eval_best_threshold_acc']:.3f}) bn_batch {row['bn_batch_acc']:.3f} clean "
            f"{row['clean_acc']:.3f} aug {row['aug_acc']:.3f} | AUC eval {row['eval_auc']:.4f} clean "
            f"{row['clean_auc']:.4f} | {time.perf_counter() - t0:.0f}s")
        if time.perf_counter() - t0 > time_limit:
            break
    return {"framework": framework, "seed": seed, "augment": augment, "schedule_epochs": cfg.epochs,
            "rows": rows, "seconds": time.perf_counter() - t0}


# ------------------------------------------------------------------------------------ main
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=(*MODEL_NAMES, "all"), default="all")
    ap.add_argument("--optimizer", choices=(*OPTIMIZERS, "all"), default="all")
    ap.add_argument("--dtype", choices=("float32", "float64", "all"), default="all")
    ap.add_argument("--steps", type=int, default=None,
                    help="steps per run (default: SmallCNN 300 float32 / 50 float64, ResNet-18 20 / 3)")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=None, help="default: the recipe's (1e-3)")
    ap.add_argument("--every", type=int, default=None, help="report the loss every k steps")
    ap.add_argument("--data", default="auto", help="auto (PneumoniaMNIST if present), pneumoniamnist, random")
    ap.add_argument("--threads", type=int, default=None, help="threads for both (default: all cores)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tiny", action="store_true", help="a few small steps (smoke test)")
    ap.add_argument("--out", default="parity_train", help="results name (benchmarks/results/NAME.json)")
    ap.add_argument("--results-dir", default=None)
    ap.add_argument("--full", action="store_true", help="full default-recipe runs in each framework")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--frameworks", default="tinygrad_rad,torch", help="--full: which frameworks to run")
    ap.add_argument("--epochs", type=int, default=None, help="--full: epochs (default: the recipe's)")
    ap.add_argument("--probe-val", choices=("tinygrad_rad", "torch"),
                    help="train the default recipe a few epochs (--epochs, default 4) and score validation "
                         "ACC with BN in eval / batch / recomputed-statistics modes and the best threshold")
    ap.add_argument("--time-limit", type=float, default=170.0, help="--probe-val: stop after this many s")
    ap.add_argument("--no-augment", action="store_true", help="--probe-val: train without augmentation")
    ap.add_argument("--flips", type=int, default=0, metavar="N",
                    help="count float32 ReLU-sign / max-pool-argmax flips vs float64 on N batches (both "
                         "frameworks) instead of training")
    ap.add_argument("--full-worker", choices=("tinygrad_rad", "torch"), help=argparse.SUPPRESS)
    ap.add_argument("--worker-config", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    threads = set_threads(args.threads)

    if args.full_worker:
        cfg = json.loads(args.worker_config)
        res = _ours_full(cfg) if args.full_worker == "tinygrad_rad" else _torch_full(cfg)
        print(json.dumps(res, default=float))
        return 0

    kw = {"results_dir": args.results_dir} if args.results_dir else {}
    info = machine_info()
    if args.probe_val:
        res = val_probe(args.probe_val, args.epochs or 4, args.time_limit, args.seed,
                        augment=not args.no_augment)
        name = args.out if args.out != "parity_train" else (
            f"parity_valprobe_{args.probe_val}{'_noaug' if args.no_augment else ''}")
        write_json(name, {"machine": info, "threads": threads, **res}, **kw)
        return 0
    if args.full:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
        res = full_runs(seeds, args.tiny, threads, args.epochs, frameworks=tuple(args.frameworks.split(",")))
        print_table([{"framework": fw, **{f"{k} mean": v["mean"] for k, v in s.items()},
                      **{f"{k} std": v["std"] for k, v in s.items()}} for fw, s in res["summary"].items()],
                    floatfmt=".4f")
        write_json(args.out if args.out != "parity_train" else "parity_full", {
            "machine": info, "tiny": args.tiny, "threads": threads, **res}, **kw)
        return 0

    models = MODEL_NAMES if args.model == "all" else (args.model,)
    if args.flips:
        split, data_name = load_split(args.data, seed=args.seed)
        res = [discontinuity_flips(m, split, args.batch_size, args.flips, args.seed) for m in models]
        print_table([{k: v if not isinstance(v, dict) else f"relu {v['relu_sign_flips']}, pool "
                      f"{v['maxpool_argmax_flips']}" for k, v in r.items()} for r in res])
        write_json(args.out if args.out != "parity_train" else "parity_flips",
                   {"machine": info, "data": data_name, "runs": res}, **kw)
        return 0
    opts = OPTIMIZERS if args.optimizer == "all" else (args.optimizer,)
    dtypes = ("float32", "float64") if args.dtype == "all" else (args.dtype,)
    split, data_name = load_split(args.data, limit=256 if args.tiny else None, seed=args.seed)
    bs = 16 if args.tiny else args.batch_size
    import torch

    def save(complete: bool):  # rewritten after every run: a stopped run keeps what it measured
        return write_json(args.out, {
            "machine": info, "torch": torch.__version__, "threads": threads, "data": data_name,
            "n_train": int(len(split.images)), "tiny": args.tiny, "complete": complete,
            "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
            "summary": [summary_row(r) for r in results], "runs": results}, **kw)

    results = []
    for m in models:
        for o in opts:
            for dt in dtypes:
                steps = args.steps or (3 if args.tiny else DEFAULT_STEPS[m][dt == "float64"])
                every = args.every or max(1, steps // 10)
                print(f"{m} / {o} / {dt}: {steps} steps of batch {bs} on {data_name}", flush=True)
                results.append(parity_run(m, o, dt, steps, split, bs, args.lr, args.seed, every))
                save(False)
    print()
    print_table([summary_row(r) for r in results], floatfmt=".3g")
    for r in results:
        print(f"\n{r['model']} / {r['optimizer']} / {r['dtype']}: final max |difference| per tensor")
        cols = ("tensor", "max_abs", "rel", "max_abs_value", "moved", "rel_to_moved", "ours_vs_torch64",
                "torch_vs_torch64")
        print_table([{k: t.get(k, "") for k in cols} for t in r["tensors"]], floatfmt=".3g")
    path = save(True)
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
