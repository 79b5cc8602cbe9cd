"""The 3D default recipe (``tinygrad_rad.tasks.classify3d``) trained in PyTorch: the baseline of issue 13.

"A PyTorch run of your recipe on the same machine must land within seed noise of yours": this script
trains the very recipe of ``tinygrad-rad train --dataset vesselmnist3d`` in PyTorch (CPU), so that
the two results (and training times) compare like for like.

What is the same as tinygrad_rad's run (``Classify3DConfig()`` defaults):

* data: the MedMNIST 3D file read by ``tinygrad_rad.data.load_medmnist`` (through
  ``tasks.classify.load_dataset``), the same ``--limit-train`` cut, inputs ``(x / 255 - 0.5) / 0.5``;
* batches: tinygrad_rad's own training loader (``tasks.classify3d.make_loader``): the seeded shuffle
  (``default_rng([seed, epoch])``), batch 32 (a last batch of one dropped), the flips along D, H and W
  with p = 0.5 each drawn by ``RandomFlip3d`` from the loader's per-batch generator (none for label
  sets that name a side) -- for a given seed, exactly the same augmented batches in the same order;
* model: ``SmallCNN3D`` as a ``torch.nn.Module`` twin with the same state_dict keys (four 3x3x3
  conv-BN-ReLU stages 16 -> 128 channels, bias-free convs, 2x2x2 max-pools after the first two,
  global average pool, dropout 0.3, linear); PyTorch's default initialisation (``--init tinygrad_rad``
  copies tinygrad_rad's initial weights instead);
* optimizer: Adam (lr 1e-3, betas 0.9 / 0.999, eps 1e-8, no weight decay), the learning rate set per
  batch by ``tasks.classify.lr_factor`` (cosine over all steps) through ``LambdaLR``;
* loss: cross-entropy (BCE-with-logits for a multi-label flag), mean over the batch;
* the recipe's label smoothing (cross-entropy's ``label_smoothing``), weight average (``ema_epochs``:
  ``torch.optim.swa_utils.AveragedModel`` with the same decay), precise batch norm (``precise_bn``:
  ``swa_utils.update_bn`` on the same clean training batches) and test-time flips (``tta``) when the
  recipe uses them;
* 30 epochs; after each, validation (eval mode, batches of 64) with ``tinygrad_rad.metrics``
  (``classification_report`` on softmax probabilities); the weights of the best validation AUC
  (strictly better than the best so far) are tested once on the test split;
* training time as the loop measures it: the sum of the step times (waiting for the loader included,
  validation excluded); img/s = training volumes / training time.

PyTorch is used only here (benchmarks/) and in tests/, never by the package.

    .venv/bin/python -m benchmarks.train3d_torch --seed 0            # the full recipe, 2 threads
    .venv/bin/python -m benchmarks.train3d_torch --tiny --out /tmp/t.json   # seconds (the smoke test)

Writes ``benchmarks/results/train3d_torch_seed{seed}.json`` (``--out``): val / test AUC and ACC, best
epoch, training time, img/s, per-epoch history, the recipe and machine info.
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a file: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import RESULTS_DIR, machine_info, write_json  # noqa: E402

TINY = {"epochs": 1, "limit_train": 64, "limit_eval": 32}  # --tiny: 2 batches of 32, 1 epoch


def default_data_dir() -> str:
    """``$TINYGRAD_RAD_DATA``, else ``/work/shared/data`` (``../shared/data`` beside the project)."""
    env = os.environ.get("TINYGRAD_RAD_DATA")
    if env:
        return env
    return str(Path(__file__).resolve().parents[2] / "shared" / "data")


# ------------------------------------------------------------------------------ the PyTorch twin
def smallcnn3d_torch(in_channels: int = 1, num_classes: int = 2, dropout: float = 0.3,
                     widths: tuple = (16, 32, 64, 128)):
    """``tinygrad_rad.models.SmallCNN3D`` in PyTorch, with the same state_dict keys (``features.0.weight``,
    ``features.1.running_mean``, ..., ``fc.bias``) and PyTorch's default initialisation."""
    import torch
    import torch.nn as tnn

    def cbr(cin, cout):
        return [tnn.Conv3d(cin, cout, 3, padding=1, bias=False), tnn.BatchNorm3d(cout), tnn.ReLU()]

    w1, w2, w3, w4 = (int(w) for w in widths)

    class SmallCNN3D(tnn.Module):
        def __init__(self):
            super().__init__()
            self.in_channels, self.num_classes = in_channels, num_classes
            self.features = tnn.Sequential(*cbr(in_channels, w1), tnn.MaxPool3d(2), *cbr(w1, w2),
                                           tnn.MaxPool3d(2), *cbr(w2, w3), *cbr(w3, w4))
            self.avgpool = tnn.AdaptiveAvgPool3d(1)
            self.dropout = tnn.Dropout(dropout)
            self.fc = tnn.Linear(w4, num_classes)

        def forward(self, x):
            return self.fc(self.dropout(torch.flatten(self.avgpool(self.features(x)), 1)))

    return SmallCNN3D()


def copy_weights(ours, twin) -> None:
    """Load tinygrad_rad's state_dict (parameters and buffers) into the twin, key for key (strict)."""
    import torch

    sd = {k: torch.from_numpy(np.array(v.numpy(), copy=True)) for k, v in ours.state_dict().items()}
    twin.load_state_dict(sd, strict=True)


# ------------------------------------------------------------------------------------ training
def make_config(args):
    """The run's ``Classify3DConfig``: the 3D defaults with this command line's overrides."""
    from tinygrad_rad.tasks.classify3d import Classify3DConfig

    cfg = Classify3DConfig(dataset=args.dataset, seed=args.seed, data_dir=args.data_dir, download=False,
                           num_threads=args.threads, progress=False, plots=False, out="")
    if args.tiny:
        for k, v in TINY.items():
            setattr(cfg, k, v)
    if args.epochs is not None:
        cfg.epochs = int(args.epochs)
    if args.limit_train is not None:
        cfg.limit_train = int(args.limit_train)
    if args.limit_eval is not None:
        cfg.limit_eval = int(args.limit_eval)
    for k in ("ema_epochs", "precise_bn", "tta", "label_smoothing"):  # the recipe's own values unless given
        if getattr(args, k, None) is not None:
            setattr(cfg, k, type(getattr(cfg, k))(getattr(args, k)))
    return cfg


def train(cfg, init: str = "torch", log=print) -> dict:
    """Train ``cfg`` (a ``Classify3DConfig``) in PyTorch on tinygrad_rad's data pipeline; the result dict."""
    import torch
    import torch.nn.functional as tF

    import tinygrad_rad as tr
    from tinygrad_rad.metrics import classification_report
    from tinygrad_rad.tasks.classify import _limit, is_multilabel, load_dataset, lr_factor, probabilities
    from tinygrad_rad.tasks.classify3d import (
        Classify3DTask,
        check_config,
        flip_axes_for,
        make_loader,
        preprocess3d,
    )

    if cfg.model != "smallcnn3d" or cfg.optimizer != "adam" or cfg.mixup or cfg.class_weight != "none" or \
            cfg.train_subset:
        raise ValueError("train3d_torch: only the recipe options smallcnn3d, adam, ema_epochs, precise_bn, "
                         "label_smoothing and tta have a PyTorch twin here")
    check_config(cfg)
    # the same global seeding as tinygrad_rad.tasks.loop.train (the loader has its own seed)
    tr.manual_seed(cfg.seed)
    np.random.seed(cfg.seed % (2**32))
    torch.manual_seed(cfg.seed)
    data, info = load_dataset(cfg.dataset, cfg.size, cfg.data_dir, download=False)
    task = info.task
    train_split = _limit(data["train"], cfg.limit_train)
    val, test = _limit(data["val"], cfg.limit_eval), _limit(data["test"], cfg.limit_eval)
    if len(train_split.images) < 2 or not len(val.images) or not len(test.images):
        raise ValueError(f"{cfg.dataset}: need >= 2 training volumes and non-empty val / test splits")
    flip_axes = flip_axes_for(info.label_names)
    model = smallcnn3d_torch(1, info.n_outputs)
    if init == "tinygrad_rad":
        from tinygrad_rad.models import build_model

        copy_weights(build_model(cfg.model, in_channels=1, num_classes=info.n_outputs), model)
    loader = make_loader(train_split, cfg, flip_axes)
    spe = len(loader)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(cfg, s, spe))
    # the weight average and precise batch norm of tasks.classify.make_ema / ClassifyTask.eval_model, in
    # PyTorch's own swa_utils; the clean batches are the very ones tinygrad_rad's task draws
    ema = None
    if cfg.ema_epochs > 0:
        decay = 1.0 - 1.0 / max(1.0, float(cfg.ema_epochs) * spe)
        swa = torch.optim.swa_utils
        ema = swa.AveragedModel(model, multi_avg_fn=swa.get_ema_multi_avg_fn(decay),
                                use_buffers=cfg.precise_bn <= 0)
    picker = Classify3DTask(cfg)
    picker.train_split = train_split
    tta_axes = flip_axes if cfg.tta else ()

    def eval_model():
        m = ema.module if ema is not None else model
        if cfg.precise_bn > 0:
            torch.optim.swa_utils.update_bn([torch.from_numpy(b.numpy()) for b in picker.clean_batches(
                cfg.precise_bn)], m)
        return m

    def loss_of(logits, y, smoothing=0.0):  # training: the recipe's label smoothing; evaluation: none
        if is_multilabel(task):
            t = y.astype(np.float32) * (1.0 - smoothing) + 0.5 * smoothing
            return tF.binary_cross_entropy_with_logits(logits, torch.from_numpy(t.astype(np.float32)))
        target = torch.from_numpy(y.reshape(-1).astype(np.int64))
        return tF.cross_entropy(logits, target, label_smoothing=smoothing)

    def correct(logits: np.ndarray, y: np.ndarray) -> float:
        if is_multilabel(task):
            return float(((logits > 0) == (y > 0)).mean(axis=1).sum())
        return float((logits.argmax(axis=1) == y.reshape(-1)).sum())

    def evaluate(split, m) -> tuple[dict, np.ndarray]:
        m.eval()
        bs = cfg.eval_batch_size

        def logits_of(v):  # the mean over the volume and its flips when the recipe uses TTA
            views = [v] + [np.ascontiguousarray(np.flip(v, 1 + a)) for a in tta_axes]
            outs = [m(torch.from_numpy(preprocess3d(w))).numpy().astype(np.float64) for w in views]
            return sum(outs) / len(views)

        with torch.no_grad():
            logits = np.concatenate([logits_of(split.images[i:i + bs])
                                     for i in range(0, len(split.images), bs)])
            loss = float(loss_of(torch.from_numpy(logits.astype(np.float32)), split.labels))
        m.train()
        probs = probabilities(task, logits)
        res = classification_report(task, split.labels, probs)
        res["loss"] = loss
        return res, probs

    n_params = sum(p.numel() for p in model.parameters())
    flips = "flips on " + ",".join("DHW"[a] for a in flip_axes) if flip_axes else "no flips"
    log(f"PyTorch {torch.__version__} ({torch.get_num_threads()} threads) | {cfg.dataset} ({task}, "
        f"{cfg.size}^3): train {len(train_split.images)} / val {len(val.images)} / test {len(test.images)} | "
        f"smallcnn3d ({n_params:,} parameters, {init} init) | adam lr {cfg.lr} batch {cfg.batch_size} "
        f"{cfg.scheduler} | {cfg.epochs} epochs | {flips} | ema {cfg.ema_epochs} precise_bn {cfg.precise_bn} "
        f"tta {cfg.tta} | seed {cfg.seed}")
    history, best, best_epoch, best_state = [], None, None, None
    train_seconds, train_images, t_start = 0.0, 0, time.perf_counter()
    for epoch in range(cfg.epochs):
        model.train()
        loss_sum, n, n_correct, seconds = 0.0, 0, 0.0, 0.0
        lr0 = float(opt.param_groups[0]["lr"])
        t_epoch = t_prev = time.perf_counter()
        for xb, yb in loader:
            x, y = torch.from_numpy(xb.numpy()), yb.numpy()
            logits = model(x)
            loss = loss_of(logits, y, cfg.label_smoothing)
            lv = float(loss.item())
            if not math.isfinite(lv):
                raise FloatingPointError(f"non-finite loss {lv} at epoch {epoch + 1}")
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            if ema is not None:
                ema.update_parameters(model)
            now = time.perf_counter()  # step time includes waiting for the loader, as in tasks.loop
            dt, t_prev = now - t_prev, now
            loss_sum += lv * len(y)
            n += len(y)
            n_correct += correct(logits.detach().numpy(), y)
            seconds += dt
        train_seconds += seconds
        train_images += n
        judged = eval_model()
        v, _ = evaluate(val, judged)
        row = {"epoch": epoch + 1, "lr": lr0, "train_loss": loss_sum / max(1, n),
               "train_acc": n_correct / max(1, n),
               "val_loss": v["loss"], "val_auc": v["auc"], "val_acc": v["acc"],
               "epoch_seconds": time.perf_counter() - t_epoch, "images_per_second": n / max(seconds, 1e-9)}
        history.append(row)
        improved = best is None or (math.isfinite(v["auc"]) and v["auc"] > best)  # as tasks.loop
        if improved:
            best = v["auc"] if math.isfinite(v["auc"]) else None
            best_epoch, best_state = epoch + 1, copy.deepcopy(judged.state_dict())
        mark = " *best*" if improved else ""
        log(f"epoch {epoch + 1}/{cfg.epochs}: train loss {row['train_loss']:.4f} acc {row['train_acc']:.3f} "
            f"| val loss {v['loss']:.4f} AUC {v['auc']:.4f} ACC {v['acc']:.3f}{mark} "
            f"| {row['images_per_second']:.1f} img/s | {row['epoch_seconds']:.1f}s")
    wall = time.perf_counter() - t_start
    model.load_state_dict(best_state)
    t, _ = evaluate(test, model)
    best_row = next(r for r in history if r["epoch"] == best_epoch)
    result = {f"test_{k}": m for k, m in t.items() if k not in ("confusion_matrix", "per_class_auc",
                                                                     "per_label_auc")}
    result.update({
        "test_confusion_matrix": t.get("confusion_matrix"),
        "test_per_class_auc": t.get("per_class_auc") or t.get("per_label_auc"),
        "best_epoch": best_epoch, "best_val_auc": best, "best_val_acc": best_row["val_acc"],
        "epochs": cfg.epochs, "train_seconds": train_seconds, "wall_seconds": wall,
        "images_per_second": train_images / max(train_seconds, 1e-9),
        "n_train": len(train_split.images), "n_val": len(val.images), "n_test": len(test.images),
        "task": task, "label_names": info.label_names, "flip_axes": list(flip_axes),
        "framework": "torch", "torch_version": torch.__version__, "threads": torch.get_num_threads(),
        "init": init, "n_parameters": n_params, "history": history,
    })
    log(f"test (best epoch {best_epoch}): AUC {result['test_auc']:.4f} ACC {result['test_acc']:.4f} | "
        f"train {train_seconds:.0f}s ({result['images_per_second']:.1f} img/s), wall {wall:.0f}s")
    return result


def main(argv=None) -> int:
    from tinygrad_rad.data.medmnist import FLAGS_3D
    from tinygrad_rad.utils import json_safe

    ap = argparse.ArgumentParser(prog="python -m benchmarks.train3d_torch",
                                 description="The tinygrad_rad 3D default recipe trained in PyTorch (CPU).")
    ap.add_argument("--dataset", default="vesselmnist3d", choices=list(FLAGS_3D), help="a MedMNIST 3D flag")
    ap.add_argument("--data-dir", default=default_data_dir(),
                    help="folder with the MedMNIST .npz files (default: $TINYGRAD_RAD_DATA, else "
                    "../shared/data beside the project)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=None, help="default: the recipe's (30)")
    ap.add_argument("--limit-train", type=int, default=None, help="use only the first N training volumes")
    ap.add_argument("--limit-eval", type=int, default=None, help="use only the first N val / test volumes")
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    ap.add_argument("--init", choices=("torch", "tinygrad_rad"), default="torch",
                    help="initial weights: PyTorch's default init, or a copy of tinygrad_rad's")
    ap.add_argument("--ema-epochs", type=float, default=None, help="default: the recipe's")
    ap.add_argument("--precise-bn", type=int, default=None, help="default: the recipe's")
    ap.add_argument("--tta", type=int, choices=(0, 1), default=None, help="default: the recipe's")
    ap.add_argument("--label-smoothing", type=float, default=None, help="default: the recipe's")
    ap.add_argument("--tiny", action="store_true", help="smoke run: 1 epoch, 64 train / 32 val+test volumes")
    ap.add_argument("--out", default=None, help="result JSON (default: benchmarks/results/"
                    "train3d_torch_seed{seed}.json; with --tiny: ..._tiny.json)")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(max(1, int(args.threads)))
    cfg = make_config(args)
    try:
        result = train(cfg, init=args.init, log=lambda s: print(s, flush=True))
    except (FileNotFoundError, ValueError) as e:  # missing data file, bad flag / split: one line, exit 2
        print(f"train3d_torch: error: {e}", file=sys.stderr)
        return 2
    payload = {**result, "recipe": cfg.to_dict(), "tiny": bool(args.tiny), "command": sys.argv,
               "machine": machine_info(torch=True)}
    default_name = f"train3d_torch_seed{args.seed}{'_tiny' if args.tiny else ''}.json"
    out = Path(args.out) if args.out else RESULTS_DIR / default_name
    name = out.name[:-5] if out.name.endswith(".json") else out.name
    path = write_json(name, json_safe(payload), out.parent)  # NaN (an undefined AUC) -> null
    print(f"wrote {path}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
