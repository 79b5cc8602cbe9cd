"""PNG bar chart of the benchmark ratios (from run_all's ``all.json``): every bar is "baseline time /
tinygrad_rad time" (or PyTorch peak memory / ours), so > 1 means tinygrad_rad does better.

    .venv/bin/python -m benchmarks.chart benchmarks/results/all.json benchmarks/results/ratios.png
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

from benchmarks.common import RESULTS_DIR


def bars(combined: dict) -> list[tuple[str, float, str]]:
    """(label, ratio, group) for every ratio in the combined results; ratio > 1: tinygrad_rad better."""
    s = combined.get("summary", {})
    out = []
    for model in ("smallcnn", "resnet18", "unet"):
        for mode in ("train", "eval"):
            v = s.get(f"{model}_{mode}_vs_torch")
            if v is not None:
                out.append((f"{model} {mode} img/s", v, "vs PyTorch"))
        v = s.get(f"{model}_peak_memory_vs_torch")
        if v:
            out.append((f"{model} peak memory", 1.0 / v, "vs PyTorch"))
    if s.get("matmul_vs_numpy") is not None:
        out.append(("matmul (largest)", s["matmul_vs_numpy"], "vs NumPy"))
    for k, v in s.items():
        if k.startswith("kernel_") and k.endswith("_vs_torch") and v:
            out.append((k[len("kernel_"):-len("_vs_torch")] + " (geo-mean)", v, "vs PyTorch"))
    for k, v in s.items():
        if k.startswith("overhead_") and k.endswith("_x_torch") and v:
            label = k[len("overhead_"):-len("_x_torch")]
            label = label.replace("_fwdbwd", " fwd+bwd").replace("_fwd", " fwd")
            out.append((f"tiny {label}", 1.0 / v, "vs PyTorch"))
    return out


def plot(combined: dict, path: Path | str) -> Path:
    """Draw the chart to ``path`` (atomically) and return the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    data = bars(combined)
    fig, ax = plt.subplots(figsize=(8, 0.35 * max(len(data), 3) + 1.2))
    if data:
        labels = [f"{lab} ({grp})" for lab, _, grp in data]
        vals = [v for _, v, _ in data]
        colors = ["tab:green" if v >= 1 else "tab:red" for v in vals]
        y = range(len(data))
        ax.barh(list(y), vals, color=colors)
        ax.set_yticks(list(y), labels)
        ax.invert_yaxis()
        ax.set_xscale("log")
        ax.axvline(1.0, color="black", lw=1)
        for i, v in enumerate(vals):
            ax.text(v, i, f" {v:.2f}x", va="center", fontsize=8)
    else:
        ax.text(0.5, 0.5, "no ratios (PyTorch missing?)", ha="center", transform=ax.transAxes)
    m = combined.get("machine", {})
    ax.set_xlabel("ratio: > 1 means tinygrad_rad is faster (or smaller); log scale")
    ax.set_title(f"tinygrad_rad vs baselines - {m.get('cpu', '?')}, {m.get('cores', '?')} cores"
                 + (" (tiny sizes)" if combined.get("tiny") else ""), fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".png")
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=110, format="png")
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("json", nargs="?", default=str(RESULTS_DIR / "all.json"), help="run_all's combined JSON")
    ap.add_argument("png", nargs="?", default=str(RESULTS_DIR / "ratios.png"), help="output PNG")
    a = ap.parse_args(argv)
    path = Path(a.json)
    if not path.exists():
        raise SystemExit(f"chart: {path} not found; run `make bench` (benchmarks.run_all) first")
    print(plot(json.loads(path.read_text()), a.png))


if __name__ == "__main__":
    main()
