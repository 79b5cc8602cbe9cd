"""Run every CPU benchmark, then write the combined JSON, the chart and print the summary (``make bench``).

Each script runs in its own process (``python -m benchmarks.<script> --out DIR [--tiny]``) so that
one's imports, threads and memory do not leak into the next; a script that fails is recorded as
such and the others still run. Afterwards ``DIR/all.json`` holds the machine info, every script's
results and a summary against the targets, and ``DIR/ratios.png`` the chart (benchmarks.chart).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python -m benchmarks.run_all   # ~15-25 min
    .venv/bin/python -m benchmarks.run_all --tiny --out /tmp/bench                          # smoke test
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import RESULTS_DIR, machine_info, print_table, write_json

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ("bench_kernels", "bench_overhead", "bench_train", "bench_memory", "profile_step")
# seconds each script may take at full size (bench_train: 5 rounds x 2 frameworks x 5 measurements)
TIMEOUTS = {"bench_train": 2400, "profile_step": 900}
# issue 16's targets (training / eval images/s from separate processes, 2 threads): ratios where > 1 is
# better for tinygrad_rad unless noted
TARGETS = {
    "smallcnn_train_vs_torch": 1.2,
    "smallcnn_eval_vs_torch": 1.2,
    "resnet18_train_vs_torch": 1.2,
    "resnet18_eval_vs_torch": 1.2,
    "unet_train_vs_torch": 1.0,
    "peak_memory_vs_torch_max": 1.2,  # lower is better: tinygrad_rad peak RSS / PyTorch peak RSS
}


def _json_snapshot(out: Path) -> dict:
    return {p.name: p.stat().st_mtime_ns for p in out.glob("*.json")}


def run_script(name: str, out: Path, tiny: bool, timeout: float) -> dict:
    """Run one benchmark script in a subprocess; return {status, seconds, files, results}."""
    if not (ROOT / "benchmarks" / f"{name}.py").exists():
        return {"status": "missing", "seconds": 0.0, "files": [], "results": {}}
    before = _json_snapshot(out)
    cmd = [sys.executable, "-m", f"benchmarks.{name}", "--out", str(out)] + (["--tiny"] if tiny else [])
    print(f"\n=== {' '.join(cmd[1:])}", flush=True)
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, cwd=ROOT, timeout=timeout)
        status = "ok" if p.returncode == 0 else f"failed (exit {p.returncode})"
    except subprocess.TimeoutExpired:
        status = f"timed out after {timeout:.0f} s"
    seconds = time.perf_counter() - t0
    after = _json_snapshot(out)
    files = sorted(f for f, m in after.items() if before.get(f) != m and f != "all.json")
    results = {}
    for f in files:
        try:
            results[f[:-5]] = json.loads((out / f).read_text())
        except (OSError, ValueError) as e:
            results[f[:-5]] = {"error": f"could not read {out / f}: {e}"}
    return {"status": status, "seconds": seconds, "files": files, "results": results}


# ------------------------------------------------------------------------------------ summary
def kernel_ratios(kernels: dict) -> dict:
    """From bench_kernels' rows: matmul vs NumPy at the largest size (and the lowest over sizes), and
    the geometric mean of the ratios vs PyTorch of each other section (conv2d.fwd, max_pool2d.bwd, ...)."""
    import math

    rows = [r for r in kernels.get("rows", []) if isinstance(r.get("ratio"), (int, float))]
    out: dict = {}
    mm = [r["ratio"] for r in rows if r.get("section") == "matmul" and r.get("baseline") == "numpy"]
    if mm:
        out["matmul_vs_numpy"] = mm[-1]
        out["matmul_vs_numpy_min"] = min(mm)
    sections: dict = {}
    for r in rows:
        if r.get("baseline") == "torch" and r["ratio"] > 0:
            sections.setdefault(r["section"], []).append(r["ratio"])
    for sec, vals in sections.items():
        out[f"kernel_{sec}_vs_torch"] = math.exp(sum(math.log(v) for v in vals) / len(vals))
    return out


def summarize(payloads: dict) -> dict:
    """The headline ratios (tinygrad_rad vs baseline) and whether each target is met."""
    s: dict = {}
    train = payloads.get("train", {})
    for r in train.get("results", []):
        for mode in ("train", "eval"):
            m = r.get(mode)
            if not m:
                continue
            s[f"{r['model']}_{mode}_img_s"] = m.get("tinygrad_rad", {}).get("img_s", {}).get("median")
            first = m.get("tinygrad_rad", {}).get("first_step_s")
            if first is not None:
                s[f"{r['model']}_{mode}_first_step_s"] = first
            if "torch" in m:
                s[f"{r['model']}_{mode}_torch_img_s"] = m["torch"]["img_s"]["median"]
                s[f"{r['model']}_{mode}_vs_torch"] = m["ratio_vs_torch"]
    for c in train.get("cold_start", []):
        if c.get("to_first_step_s") is not None:
            s[f"{c['model']}_cold_start_to_first_step_s"] = c["to_first_step_s"]
    mem = payloads.get("memory", {})
    ratios = [r["peak_ratio_vs_torch"] for r in mem.get("results", []) if "peak_ratio_vs_torch" in r]
    for r in mem.get("results", []):
        if "peak_ratio_vs_torch" in r:
            s[f"{r['model']}_peak_memory_vs_torch"] = r["peak_ratio_vs_torch"]
    if ratios:
        s["peak_memory_vs_torch_max"] = max(ratios)
    for name, p in payloads.items():
        if "kernels" in name:
            s.update(kernel_ratios(p))
    ovh = payloads.get("overhead", {})
    for r in ovh.get("results", []):
        key = f"overhead_{r['op']}_{'fwdbwd' if r['grad'] else 'fwd'}"
        s[f"{key}_us"] = r["us_per_op"]["tinygrad_rad"]["median"]
        if "slowdown_vs_torch" in r:
            s[f"{key}_x_torch"] = r["slowdown_vs_torch"]
    met = {}
    for k, target in TARGETS.items():
        v = s.get(k)
        if v is not None:
            met[k] = {"value": v, "target": target, "met": v <= target if k.endswith("_max") else v >= target}
    s["targets"] = met
    return s


def run(tiny: bool = False, out: Path | str = RESULTS_DIR, scripts=SCRIPTS,
        timeout: float | None = None) -> dict:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    runs, payloads = {}, {}
    for name in scripts:
        r = run_script(name, out, tiny, timeout or TIMEOUTS.get(name, 600))
        runs[name] = {k: r[k] for k in ("status", "seconds", "files")}
        payloads.update(r["results"])
    summary = summarize(payloads)
    combined = {"benchmark": "all", "tiny": tiny, "machine": machine_info(torch=True), "runs": runs,
                "summary": summary, "results": payloads, "wall_s": time.perf_counter() - t0}
    path = write_json("all", combined, out)
    from benchmarks import chart

    try:
        png = chart.plot(combined, out / "ratios.png")
        print(f"# chart: {png}")
    except ImportError as e:  # matplotlib is an optional extra
        print(f"# no chart: {e}")
    print("\n=== summary (ratio > 1: tinygrad_rad faster; memory ratio < 1: tinygrad_rad smaller)")
    print_table([{"script": k, **v, "files": " ".join(v["files"])} for k, v in runs.items()])
    rows = [{"target": k, "value": v["value"],
             "goal": ("<= " if k.endswith("_max") else ">= ") + str(v["target"]),
             "met": "yes" if v["met"] else "NO"} for k, v in summary["targets"].items()]
    if rows:
        print()
        print_table(rows)
    print(f"# wrote {path} in {combined['wall_s']:.0f} s", flush=True)
    return combined


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tiny", action="store_true", help="every script at its smoke-test size")
    ap.add_argument("--out", default=str(RESULTS_DIR), help="results directory")
    ap.add_argument("--scripts", default=",".join(SCRIPTS), help="comma-separated subset")
    ap.add_argument("--timeout", type=float, default=None,
                    help="seconds per script (default: 600, bench_train 2400, profile_step 900)")
    a = ap.parse_args(argv)
    scripts = [s.strip() for s in a.scripts.split(",") if s.strip()]
    for s in scripts:
        if s not in SCRIPTS:
            ap.error(f"unknown script {s!r}; expected some of {SCRIPTS}")
    combined = run(a.tiny, a.out, scripts, a.timeout)
    return 0 if all(r["status"] in ("ok", "missing") for r in combined["runs"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
