"""The default recipe on the TEST splits, once it has been chosen on validation splits
(``benchmarks/recipe_search.py``): ``tinygrad-rad train`` with no recipe options, 3 seeds, on
PneumoniaMNIST, RetinaMNIST and PneumoniaMNIST with 500 stratified training images, each run in its
own process as a user runs it. Writes ``benchmarks/results/recipe_final.json`` (every run's metrics,
the machine) and prints the README table (mean ± std over seeds, published baselines beside it).

    python -m benchmarks.recipe_final                 # 3 seeds x 3 regimes
    python -m benchmarks.recipe_final --table         # only print the table of the saved results
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

# ---- settings
RESULTS = Path(__file__).resolve().parent / "results" / "recipe_final.json"
REGIMES = {  # name -> extra CLI arguments (the recipe itself is the CLI's default)
    "pneumonia": ["--dataset", "pneumoniamnist"],
    "retina": ["--dataset", "retinamnist"],
    "pneumonia500": ["--dataset", "pneumoniamnist", "--train-subset", "500"],
}
SEEDS = (0, 1, 2)
# MedMNIST v2 (Yang et al. 2023) test AUC / ACC, and the targets
PUBLISHED = {
    "pneumonia": [("ResNet-18 (28)", 0.944, 0.854), ("ResNet-50 (224)", 0.962, 0.884),
                  ("Google AutoML Vision", 0.991, 0.946)],
    "retina": [("ResNet-18 (28)", 0.717, 0.524), ("ResNet-50 (28)", 0.726, 0.528),
               ("Google AutoML Vision", 0.750, 0.531)],
    "pneumonia500": [("ResNet-18 (28), all 4,708 images", 0.944, 0.854)],
}
TARGETS = {"pneumonia": (0.965, 0.91), "retina": (0.75, 0.55), "pneumonia500": (0.944, 0.854)}
TITLES = {"pneumonia": "PneumoniaMNIST", "retina": "RetinaMNIST",
          "pneumonia500": "PneumoniaMNIST, 500 training images"}


def machine() -> dict:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu or platform.processor(), "cores": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform()}


def run(regime: str, seed: int, out_root: Path) -> dict:
    out = out_root / f"{regime}-s{seed}"
    cmd = [sys.executable, "-m", "tinygrad_rad", "train", *REGIMES[regime], "--seed", str(seed), "--out",
           str(out), "--no-progress", "--no-plots"]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    m = json.loads((out / "metrics.json").read_text())
    keep = ("test_auc", "test_acc", "test_sensitivity", "test_specificity", "best_epoch", "best_val_auc",
            "best_val_acc", "train_seconds", "wall_seconds", "images_per_second", "n_train")
    return {"regime": regime, "seed": seed, **{k: m.get(k) for k in keep},
            "process_seconds": time.perf_counter() - t0, "config": m.get("config")}


def table(results: dict) -> str:
    rows = results["runs"]
    lines = ["| dataset | tinygrad_rad default, test AUC | test ACC | training time | target AUC / ACC | "
             "published (MedMNIST v2) AUC / ACC |", "| --- | --- | --- | --- | --- | --- |"]
    for g in REGIMES:
        rs = [r for r in rows if r["regime"] == g]
        if not rs:
            continue
        auc = np.array([r["test_auc"] for r in rs])
        acc = np.array([r["test_acc"] for r in rs])
        mins = np.array([r["train_seconds"] for r in rs]) / 60
        pub = "; ".join(f"{n} {a:.3f} / {c:.3f}" for n, a, c in PUBLISHED[g])
        ta, tc = TARGETS[g]
        lines.append(f"| {TITLES[g]} | **{auc.mean():.3f} ± {auc.std(ddof=1) if len(rs) > 1 else 0:.3f}** | "
                     f"**{acc.mean():.3f} ± {acc.std(ddof=1) if len(rs) > 1 else 0:.3f}** | "
                     f"{mins.mean():.1f} min | {ta} / {tc} | {pub} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--regimes", nargs="*", default=list(REGIMES))
    ap.add_argument("--seeds", nargs="*", type=int, default=list(SEEDS))
    ap.add_argument("--out-root", default="runs/recipe_final")
    ap.add_argument("--results", default=str(RESULTS))
    ap.add_argument("--table", action="store_true")
    a = ap.parse_args(argv)
    path = Path(a.results)
    if a.table:
        print(table(json.loads(path.read_text())))
        return 0
    results = json.loads(path.read_text()) if path.is_file() else {"runs": []}
    results["machine"] = machine()
    for seed in a.seeds:  # NOTE: seeds outermost, so that a partial run still covers every regime
        for g in a.regimes:
            r = run(g, seed, Path(a.out_root))
            results["runs"] = [x for x in results["runs"] if (x["regime"], x["seed"]) != (g, seed)] + [r]
            results["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(results, indent=1))
            print(f"{g} seed {seed}: test AUC {r['test_auc']:.4f} ACC {r['test_acc']:.4f} (best epoch "
                  f"{r['best_epoch']}), {r['train_seconds'] / 60:.1f} min", flush=True)
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
