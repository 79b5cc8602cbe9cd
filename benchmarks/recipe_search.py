"""Choose the default 2D recipe on VALIDATION splits only: train candidate recipes on three regimes
(PneumoniaMNIST, RetinaMNIST, PneumoniaMNIST with 500 stratified training images) and record each
run's validation metrics. The test split is never loaded: the task below swaps it for the validation
split before training starts, so nothing here can look at it.

    python -m benchmarks.recipe_search --candidates base ema_pbn --seeds 0
    python -m benchmarks.recipe_search --list

Each finished run appends one JSON line to ``benchmarks/results/recipe_search.jsonl``: candidate,
regime, seed, the best validation AUC and the validation ACC at that epoch (the checkpoint the recipe
would keep), the last epoch's validation AUC / ACC, and the training time. ``--summary`` prints the
mean over regimes per candidate. The chosen recipe is then run once on the test split with the CLI
(``benchmarks/run_recipe.sh``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

# ---- settings
RESULTS = Path(__file__).resolve().parent / "results" / "recipe_search.jsonl"
REGIMES = {  # name -> TrainConfig overrides
    "pneumonia": {"dataset": "pneumoniamnist"},
    "retina": {"dataset": "retinamnist"},
    "pneumonia500": {"dataset": "pneumoniamnist", "train_subset": 500},
}
# the recipe before this search (README demo of 2026-11-28), spelled out: candidates change it
BASE = {"epochs": 20, "padding_mode": "zeros", "precise_bn": 0, "ema_epochs": 0.0, "label_smoothing": 0.0,
        "mixup": 0.0, "tta": False, "class_weight": "none", "hflip": "auto", "model": "smallcnn"}
PBN = {"precise_bn": 2048}
EMA = {"ema_epochs": 1.0, "precise_bn": 2048}
CANDIDATES = {
    "base": {},
    "pbn": PBN,
    "ema_pbn": EMA,
    "ema": {"ema_epochs": 1.0},
    "ema_pbn_ls": {**EMA, "label_smoothing": 0.1},
    "ema_pbn_mix": {**EMA, "mixup": 0.2},
    "ema_pbn_e40": {**EMA, "epochs": 40},
    "ema_pbn_adamw": {**EMA, "optimizer": "adamw", "weight_decay": 0.05, "warmup_epochs": 1.0},
    "ema_pbn_lr2": {**EMA, "lr": 2e-3, "warmup_epochs": 1.0},
    "ema_pbn_ls_e40": {**EMA, "label_smoothing": 0.1, "epochs": 40},
    "ema_pbn_mix_e40": {**EMA, "mixup": 0.2, "epochs": 40},
    "ema2_pbn_e40": {**EMA, "ema_epochs": 2.0, "epochs": 40},
    "ema_pbn_noflip": {**EMA, "hflip": "no"},
    "ema_pbn_cw": {**EMA, "class_weight": "balanced"},
    "ema_pbn_wide": {**EMA, "model": "smallcnn_wide"},
    "ema_pbn_tta_e40": {**EMA, "tta": True, "epochs": 40},
    "ema_tta_e40": {"ema_epochs": 1.0, "tta": True, "epochs": 40},
    "tta_e40": {"tta": True, "epochs": 40},
    "pbn_ls": {**PBN, "label_smoothing": 0.1},
    "pbn_ls_tta": {**PBN, "label_smoothing": 0.1, "tta": True},
    "pbn_ls_e40": {**PBN, "label_smoothing": 0.1, "epochs": 40},
    "border_ls": {"padding_mode": "border", "label_smoothing": 0.1},
    "border": {"padding_mode": "border"},
    "border_pbn": {"padding_mode": "border", "precise_bn": 2048},
    "border_tta": {"padding_mode": "border", "tta": True},
    "border_pbn_e30": {"padding_mode": "border", "precise_bn": 2048, "epochs": 30},
    "border_pbn_ls": {"padding_mode": "border", "precise_bn": 2048, "label_smoothing": 0.1},
}


# the 3D recipe (tasks/classify3d.py defaults) and its candidates, on VesselMNIST3D's validation split
REGIMES_3D = {"vessel3d": {"dataset": "vesselmnist3d"}}
CANDIDATES_3D = {
    "base3d": {},
    "ema_pbn3d": {"ema_epochs": 1.0, "precise_bn": 512},
    "ema_pbn_tta3d": {"ema_epochs": 1.0, "precise_bn": 512, "tta": True},
    "ema_pbn_ls_tta3d": {"ema_epochs": 1.0, "precise_bn": 512, "label_smoothing": 0.1, "tta": True},
    "pbn_ls_tta3d": {"precise_bn": 512, "label_smoothing": 0.1, "tta": True},
}


def run_one(candidate: str, regime: str, seed: int, data_dir: str, out_root: str, tiny: bool = False) -> dict:
    from tinygrad_rad.tasks.classify import ClassifyTask, TrainConfig
    from tinygrad_rad.tasks.classify3d import Classify3DConfig, Classify3DTask
    from tinygrad_rad.tasks.loop import train

    three_d = regime in REGIMES_3D
    base_task = Classify3DTask if three_d else ClassifyTask

    class ValOnlyTask(base_task):
        def load_splits(self) -> None:
            super().load_splits()
            self.test_split = self.val  # NOTE: the test split is never used while choosing

        def test(self, state, checkpoint, log) -> dict:
            hist = state["history"]
            best = next(r for r in hist if r["epoch"] == state["best_epoch"])
            return {"best_epoch": state["best_epoch"], "val_auc": best["val_auc"], "val_acc": best["val_acc"],
                    "last_val_auc": hist[-1]["val_auc"], "last_val_acc": hist[-1]["val_acc"],
                    "train_seconds": state["train_seconds"],
                    "wall_seconds": float(sum(r["epoch_seconds"] for r in hist))}

        def summary(self, r: dict) -> str:
            return ""

    if three_d:
        overrides, config_cls = {**REGIMES_3D[regime], **CANDIDATES_3D[candidate]}, Classify3DConfig
    else:
        overrides, config_cls = {**BASE, **REGIMES[regime], **CANDIDATES[candidate]}, TrainConfig
    if tiny:  # the smoke test: one short epoch
        overrides.update(epochs=1, limit_train=48, limit_eval=32, batch_size=16, precise_bn=min(
            overrides.get("precise_bn", 0), 32))
    out = Path(out_root) / f"{candidate}-{regime}-s{seed}"
    cfg = config_cls(**overrides, seed=seed, data_dir=data_dir, out=str(out), progress=False, plots=False)
    t0 = time.perf_counter()
    r = train(ValOnlyTask(cfg), log=lambda s: None)
    r.update({"candidate": candidate, "regime": regime, "seed": seed, "overrides": overrides,
              "total_seconds": time.perf_counter() - t0})
    return r


def tta_check(out_root: str) -> None:
    """Validation AUC / ACC of every saved search run's best checkpoint with and without test-time
    augmentation (mean logits over the image and its four 1-pixel shifts; + the left-right mirror where
    the recipe flips): decides whether TTA joins the recipe without training anything again."""
    from tinygrad_rad.metrics import classification_report
    from tinygrad_rad.tasks.classify import (
        load_dataset,
        load_trained,
        predict_logits,
        probabilities,
        uses_hflip,
    )

    cache = {}
    for run in sorted(Path(out_root).glob("*-s*")):
        if not (run / "best.safetensors").is_file():
            continue
        model, meta = load_trained(run)
        cfg = meta["config"]
        if cfg.dataset not in cache:
            cache[cfg.dataset] = load_dataset(cfg.dataset, cfg.size, cfg.data_dir, splits=("val",))[0]["val"]
        val = cache[cfg.dataset]
        plain = classification_report(meta["task"], val.labels,
                                      probabilities(meta["task"], predict_logits(model, val.images)))
        logits = predict_logits(model, val.images, tta=True, flip=uses_hflip(cfg),
                                padding_mode=cfg.padding_mode)
        tta = classification_report(meta["task"], val.labels, probabilities(meta["task"], logits))
        print(f"{run.name:32s} val AUC {plain['auc']:.4f} -> {tta['auc']:.4f}  ACC {plain['acc']:.4f} -> "
              f"{tta['acc']:.4f}", flush=True)


def summary(path: Path = RESULTS) -> None:
    rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.is_file() else []
    by: dict = {}
    for r in rows:
        by.setdefault(r["candidate"], {}).setdefault(r["regime"], []).append(r)
    regimes = list(REGIMES) + list(REGIMES_3D)
    print(f"{'candidate':18s} " + " ".join(f"{g + ' AUC/ACC':>22s}" for g in regimes) + f" {'mean AUC':>9s} "
          f"{'mean ACC':>9s} {'min':>5s}")
    for c, per in by.items():
        cells, aucs, accs, mins = [], [], [], []
        for g in regimes:
            rs = per.get(g, [])
            if not rs:
                cells.append(f"{'-':>22s}")
                continue
            a = sum(r["val_auc"] for r in rs) / len(rs)
            b = sum(r["val_acc"] for r in rs) / len(rs)
            aucs.append(a)
            accs.append(b)
            mins.append(sum(r["train_seconds"] for r in rs) / len(rs) / 60)
            cells.append(f"{a:.4f}/{b:.4f} ({len(rs)}s)".rjust(22))
        if aucs:
            mean_auc, mean_acc = sum(aucs) / len(aucs), sum(accs) / len(accs)
            print(f"{c:18s} " + " ".join(cells) + f" {mean_auc:9.4f} {mean_acc:9.4f} {max(mins):5.1f}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--candidates", nargs="*", default=["base"])
    ap.add_argument("--regimes", nargs="*", default=list(REGIMES))
    ap.add_argument("--seeds", nargs="*", type=int, default=[0])
    ap.add_argument("--data-dir", default=os.environ.get("TINYGRAD_RAD_DATA"))
    ap.add_argument("--out-root", default="runs/recipe_search")
    ap.add_argument("--results", default=str(RESULTS))
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--tiny", action="store_true", help="1 short epoch per run (smoke test)")
    ap.add_argument("--summary", action="store_true")
    ap.add_argument("--tta-check", action="store_true",
                    help="TTA vs none on the saved runs' best checkpoints")
    a = ap.parse_args(argv)
    if a.list:
        for k, v in {**CANDIDATES, **CANDIDATES_3D}.items():
            print(f"{k:18s} {v}")
        return 0
    if a.summary:
        summary(Path(a.results))
        return 0
    if a.tta_check:
        tta_check(a.out_root)
        return 0
    from tinygrad_rad.kernels import configure_cpu

    configure_cpu()  # as the CLI does
    for c in a.candidates:
        if c not in CANDIDATES and c not in CANDIDATES_3D:
            sys.exit(f"unknown candidate {c!r}; --list shows them")
        regimes = list(REGIMES_3D) if c in CANDIDATES_3D else a.regimes
        for seed in a.seeds:
            for g in regimes:
                r = run_one(c, g, seed, a.data_dir, a.out_root, a.tiny)
                print(f"{c} {g} seed {seed}: val AUC {r['val_auc']:.4f} ACC {r['val_acc']:.4f} (epoch "
                      f"{r['best_epoch']}), last {r['last_val_auc']:.4f}/{r['last_val_acc']:.4f}, "
                      f"{r['train_seconds'] / 60:.1f} min", flush=True)
                Path(a.results).parent.mkdir(parents=True, exist_ok=True)
                with open(a.results, "a") as f:
                    f.write(json.dumps(r) + "\n")
    summary(Path(a.results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
