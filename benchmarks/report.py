"""Write the README's "Performance" section from run_all's ``all.json``.

Only the text between ``<!-- perf:start -->`` and ``<!-- perf:end -->`` is replaced; when the markers
are missing, a ``## Performance`` section holding them is appended at the end of the README.

    .venv/bin/python -m benchmarks.report                      # results/all.json -> README.md
    .venv/bin/python -m benchmarks.report --json X.json --readme /tmp/README.md --print
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

from benchmarks.common import RESULTS_DIR

ROOT = Path(__file__).resolve().parent.parent
START, END = "<!-- perf:start -->", "<!-- perf:end -->"


def _f(v, fmt=".3g") -> str:
    return "n/a" if v is None else format(v, fmt)


def _n(v, word: str) -> str:
    return f"{v if v is not None else '?'} {word}{'' if v == 1 else 's'}"


def _ratio(v) -> str:
    return "n/a" if v is None else f"{v:.2f}x"


def _blas(machine: dict) -> str:
    """NumPy's BLAS as threadpoolctl sees it: library, version, core type chosen, threads."""
    blas = machine.get("blas")
    if isinstance(blas, list):
        names = []
        for b in blas:
            if b.get("internal_api") == "openmp":
                continue
            arch = f", core type {b['architecture']}" if b.get("architecture") else ""
            names.append(f"{b.get('internal_api')} {b.get('version') or ''}{arch}, "
                         f"{b.get('num_threads')} threads".replace(" ,", ","))
        return "; ".join(names) or "n/a"
    return str(blas)


def _caches(machine: dict) -> str:
    parts = []
    for c in machine.get("caches", []):
        kind = {"Data": "d", "Instruction": "i"}.get(c.get("type"), "")
        shared = c.get("shared_cpu_list", "")
        share = f" shared by CPUs {shared}" if ("-" in shared or "," in shared) else " per core"
        parts.append(f"L{c.get('level')}{kind} {c.get('size')}{share}")
    return ", ".join(parts) or "n/a"


def machine_block(machine: dict, train: dict | None = None) -> list[str]:
    """The machine the numbers come from, as Markdown bullet lines."""
    train = train or {}
    t = machine.get("torch") or {}
    flags = machine.get("cpu_flags")
    lines = [
        f"- CPU: {machine.get('cpu', '?')}, {machine.get('cores', '?')} cores; "
        f"flags: {', '.join(flags) if flags else 'n/a'}",
        f"- caches: {_caches(machine)}",
        f"- NumPy {machine.get('numpy', '?')} BLAS: {_blas(machine)}",
        f"- Numba {machine.get('numba', '?')}, threading layer used: "
        f"{train.get('numba_threading_layer_used') or machine.get('numba_threading_layer_used') or 'n/a'}",
    ]
    if t:
        lines.append(f"- PyTorch {t.get('version', '?')}: ATen CPU capability "
                     f"{t.get('cpu_capability') or '?'}, "
                     f"{t.get('onednn') or 'oneDNN n/a'}"
                     + (f" (ONEDNN_MAX_CPU_ISA={t['onednn_max_cpu_isa_env']})"
                        if t.get("onednn_max_cpu_isa_env") else "")
                     + (f", {t['blas']}" if t.get("blas") else ""))
    else:
        lines.append("- PyTorch: not installed")
    env = machine.get("env") or {}
    env_s = ", ".join(f"{k}={v}" for k, v in env.items()) or "none of the thread / BLAS variables set"
    load = train.get("machine", {}).get("load_avg") or machine.get("load_avg")
    load_s = f"; load average at the end of the training benchmark {load[0]:.1f}" if load else ""
    lines.append(f"- environment: {env_s}{load_s}; {machine.get('platform', '')}, Python "
                 f"{machine.get('python', '?')}")
    return lines


def _range(img: dict) -> str:
    return f"{_f(img['median'], '.4g')} ({_f(img['min'], '.4g')}-{_f(img['max'], '.4g')})"


def train_table(train: dict, targets: dict) -> list[str]:
    lines = ["| model (batch) | mode | tinygrad_rad img/s | PyTorch img/s | ratio (per-round range) | goal "
             "| first step s (ours / PyTorch) |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in train["results"]:
        for mode in ("train", "eval"):
            e = r.get(mode)
            if not e:
                continue
            t = e.get("torch")
            ratio = _ratio(e.get("ratio_vs_torch"))
            if e.get("ratio_round"):
                ratio += f" ({e['ratio_round']['min']:.2f}-{e['ratio_round']['max']:.2f})"
            goal = targets.get(f"{r['model']}_{mode}_vs_torch")
            goal_s = f">= {goal['target']}: {'met' if goal['met'] else 'not met'}" if goal else ""
            o_first = e["tinygrad_rad"].get("first_step_s", e["tinygrad_rad"].get("first_call_s"))
            t_first = t.get("first_step_s", t.get("first_call_s")) if t else None
            first = f"{_f(o_first, '.2f')} / {_f(t_first, '.2f')}"
            lines.append(f"| {r['model']} ({r['batch']}) | {mode} | {_range(e['tinygrad_rad']['img_s'])} "
                         f"| {_range(t['img_s']) if t else 'n/a'} | {ratio} | {goal_s} | {first} |")
    return lines


ALWAYS_KINDS = ("conv fwd", "conv bwd-data", "conv bwd-weight", "batch norm fwd", "batch norm bwd",
                "relu fwd", "relu bwd", "max pool fwd", "max pool bwd", "optimizer", "framework overhead")


def profile_table(prof: dict, min_share: float = 0.005) -> list[str]:
    """Per-kind totals of profile_step (ours vs PyTorch, ms per training step); kinds under ``min_share``
    of both steps are summed into one row; then the layer shapes where ours loses the most time."""
    lines = []
    for m in prof.get("models", []):
        kinds = m.get("kinds", [])
        if not kinds:
            continue
        so, st = m.get("ours_step_ms") or 0.0, m.get("torch_step_ms") or 0.0
        lines += [f"| {m['model']} (batch {m['batch']}): op kind | tinygrad_rad ms (% of step) "
                  "| PyTorch ms (% of step) | ratio |", "| --- | --- | --- | --- |"]

        def cell(v, step):
            return "n/a" if v is None else (f"{v:.1f} ({100 * v / step:.0f} %)" if step else f"{v:.1f}")

        small = {"ours_ms": 0.0, "torch_ms": 0.0, "n": 0}
        for k in kinds:
            o, t = k.get("ours_ms"), k.get("torch_ms")
            big = (o or 0) >= min_share * so or (t or 0) >= min_share * st
            if k["kind"] not in ALWAYS_KINDS and not big:
                small["ours_ms"] += o or 0.0
                small["torch_ms"] += t or 0.0
                small["n"] += 1
                continue
            lines.append(f"| {k['kind']} | {cell(o, so)} | {cell(t, st)} | {_ratio(k.get('ratio'))} |")
        if small["n"]:
            lines.append(f"| {small['n']} smaller kinds (< {100 * min_share:.1f} % each) "
                         f"| {cell(small['ours_ms'], so)} | {cell(small['torch_ms'], st)} | |")
        lines.append(f"| **step (unprofiled median)** | {_f(m.get('ours_step_ms'), '.1f')} "
                     f"| {_f(m.get('torch_step_ms'), '.1f')} | {_ratio(m.get('step_ratio'))} |")
        lines.append("")
        gaps = [r for r in m.get("rows", []) if r.get("shape") and r.get("ours_ms") is not None
                and r.get("torch_ms") is not None and r["ours_ms"] > r["torch_ms"]]
        gaps.sort(key=lambda r: r["torch_ms"] - r["ours_ms"])
        if gaps:
            worst = "; ".join(f"{r['kind']} {r['shape'].removeprefix('conv ')} "
                              f"+{r['ours_ms'] - r['torch_ms']:.1f}" for r in gaps[:5])
            lines.append(f"{m['model']}: where PyTorch gains most per layer shape "
                         f"(ours - PyTorch ms): {worst}.")
            lines.append("")
    return lines


def section(combined: dict, chart: str | None = "benchmarks/results/ratios.png") -> str:
    """The Markdown of the section (without the markers)."""
    res = combined.get("results", {})
    train = res.get("train", {})
    m = train.get("machine") or combined.get("machine", {})
    summary = combined.get("summary", {})
    targets = summary.get("targets", {})
    lines = []
    tiny = " **(tiny smoke-test sizes: not meaningful)**" if combined.get("tiny") else ""
    opt = {"adam": "Adam", "sgd": "SGD with momentum 0.9"}.get(train.get("optimizer"), "Adam")
    if train.get("results") and not train.get("method"):
        lines.append("**These results come from the older same-process `bench_train` (both frameworks in "
                     "one process): rerun `make bench` for the separate-process measurement described "
                     "below.**")
        lines.append("")
    lines.append(
        f"Measured by `make bench` (`benchmarks/run_all.py`){tiny}. Each framework runs in its own fresh "
        f"process per measurement (tinygrad_rad's worker never imports PyTorch and vice versa), the two "
        f"alternated A B for {_n(train.get('rounds'), 'round')}, {_n(train.get('threads'), 'thread')} each "
        "(ours via `kernels.configure_cpu`, as the CLI runs: it also selects Numba's workqueue layer and "
        "raises glibc's malloc thresholds, in the ours process only; PyTorch via `torch.set_num_threads`), "
        "OpenBLAS core-type "
        "overrides unset. Each worker times its first step apart, runs a warm-up step, then times its "
        "steps; a framework's figure is the median over rounds of each round's median step, with the "
        "min-max over rounds in brackets. Ratio = PyTorch's step time / ours: > 1 means tinygrad_rad is "
        "faster; the per-round range pairs the two runs of the same round. The machine may be shared, "
        "so expect some noise. Raw results: `benchmarks/results/*.json`."
    )
    lines.append("")
    lines.append("Machine:")
    lines.append("")
    lines += machine_block(m, train)
    lines.append("")
    if train.get("results"):
        lines += train_table(train, targets)
        lines.append("")
        lines.append(f"Training step = forward + loss + backward + {opt} step; SmallCNN and ResNet-18 (28x28 "
                     "stem) on random 28x28x1 images, 2 classes, cross-entropy; U-Net = the segmentation "
                     "default (depth 4, 8 base channels, batch norm, transposed-conv upsampling) on random "
                     "128x128x1 images with Dice+BCE loss, Adam lr 2e-3. Eval = forward in eval mode under "
                     "no_grad. First step = Numba cache load / compile (ours) or lazy init (PyTorch), "
                     "excluded from the medians.")
        lines.append("")
    cold = [c for c in train.get("cold_start", [])]
    if cold:
        lines += ["| cold start | to first step s | whole tiny run s | status |", "| --- | --- | --- | --- |"]
        for c in cold:
            lines.append(f"| `tinygrad-rad train --model {c['model']}` "
                         f"| {_f(c.get('to_first_step_s'), '.2f')} "
                         f"| {_f(c.get('total_s'), '.2f')} | {c.get('status')} |")
        c0 = cold[0]
        lines.append("")
        lines.append(f"Cold start: a fresh `tinygrad-rad train` process (imports, PneumoniaMNIST load, "
                     f"model, Numba cache load or compile, first step) until its first step's progress "
                     f"line; batch {c0.get('batch')}, `--limit-train {c0.get('limit_train')}`, 1 epoch, "
                     f"{_n(c0.get('threads'), 'thread')}.")
        lines.append("")
    mem = res.get("memory", {})
    if mem.get("results"):
        lines += ["| model (batch) | tinygrad_rad peak RSS MiB | PyTorch peak RSS MiB | ratio | "
                  "training adds (ours / PyTorch) MiB |", "| --- | --- | --- | --- | --- |"]
        for r in mem["results"]:
            o, t = r["tinygrad_rad"], r.get("torch")
            tpeak = _f(t["peak_rss_mb"], ".0f") if t else "n/a"
            tinc = _f(t["train_increment_mb"], ".0f") if t else "n/a"
            ratio = _ratio(r.get("peak_ratio_vs_torch"))
            lines.append(f"| {r['model']} ({r['batch']}) | {o['peak_rss_mb']:.0f} | {tpeak} | {ratio} "
                         f"| {o['train_increment_mb']:.0f} / {tinc} |")
        lines.append("")
        lines.append("Peak memory: each framework and model in its own fresh process (whole-process "
                     "`ru_maxrss`, imports included); ratio < 1 means tinygrad_rad uses less.")
        lines.append("")
    prof = res.get("profile_step", {})
    ptab = profile_table(prof) if prof else []
    if ptab:
        lines.append("Where one training step's time goes (`benchmarks/profile_step.py`; each framework in "
                     "its own process; tinygrad_rad through `tr.trace` and timed kernel calls, PyTorch "
                     "through `torch.profiler`; per layer shape in `benchmarks/results/profile_step.json`; "
                     "ours fuses each BatchNorm -> ReLU pair into one op, counted under batch norm, so its "
                     "relu rows are the ReLUs after residual adds only; PyTorch's profiled events include "
                     "the profiler's own cost, which varies from run to run, mostly in backward: a negative "
                     "framework overhead is that excess, so compare its rows with care):")
        lines.append("")
        lines += ptab
    kern = [(k, v) for k, v in summary.items() if k.startswith(("matmul_vs", "kernel_")) and v is not None]
    if kern:
        lines += ["| kernel, same process interleaved (bench_kernels) | ratio |", "| --- | --- |"]
        for k, v in kern:
            label = {"matmul_vs_numpy": "matmul vs NumPy, largest size",
                     "matmul_vs_numpy_min": "matmul vs NumPy, worst size"}.get(k)
            label = label or k[len("kernel_"):].replace("_vs_torch", " vs PyTorch (geo-mean over shapes)")
            lines.append(f"| {label} | {_ratio(v)} |")
        lines.append("")
        lines.append("Kernel timings are secondary: both libraries in one process, interleaved A B, at the "
                     "layer shapes of SmallCNN and ResNet-18 (batch 128); per shape in "
                     "`benchmarks/results/bench_kernels.json`.")
        lines.append("")
    ovh = res.get("overhead", {})
    if ovh.get("results"):
        lines += ["| tiny op | tinygrad_rad us | PyTorch us | NumPy us |", "| --- | --- | --- | --- |"]
        for r in ovh["results"]:
            us = r["us_per_op"]
            lines.append(
                f"| {r['op']} {'fwd+bwd' if r['grad'] else 'fwd'} | {_f(us['tinygrad_rad']['median'])} "
                f"| {_f(us.get('torch', {}).get('median'))} | {_f(us.get('numpy', {}).get('median'))} |"
            )
        lines.append("")
        lines.append("Per-op overhead: microseconds per op on (4,) tensors (matmul 4x4), single thread; "
                     "this is the Python dispatch of `Function.apply` and the backward walk.")
        lines.append("")
    if targets:
        goals = []
        for k, v in targets.items():
            op = "<=" if k.endswith("_max") else ">="
            met = "met" if v["met"] else "not met"
            goals.append(f"`{k}` {v['value']:.2f} (goal {op} {v['target']}: {met})")
        lines.append("Targets (issue 16): " + "; ".join(goals) + ".")
        lines.append("Where the time goes and what was tried: `benchmarks/NOTES.md`.")
        lines.append("")
    runs = combined.get("runs", {})
    bad = [f"{k}: {v['status']}" for k, v in runs.items() if v["status"] != "ok"]
    if bad:
        lines.append("Not in this run: " + "; ".join(bad) + ".")
        lines.append("")
    if chart:
        lines.append(f"![benchmark ratios]({chart})")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def update_readme(readme: Path | str, body: str) -> str:
    """Replace the text between the markers in ``readme`` (atomically); returns the new text."""
    readme = Path(readme)
    text = readme.read_text()
    block = f"{START}\n{body.rstrip()}\n{END}"
    if START in text and END in text:
        i, j = text.index(START), text.index(END) + len(END)
        if i > j:
            raise ValueError(f"{readme}: {END!r} comes before {START!r}")
        new = text[:i] + block + text[j:]
    elif START in text or END in text:
        raise ValueError(f"{readme}: only one of the markers {START!r} / {END!r} is present")
    else:
        new = text.rstrip("\n") + "\n\n## Performance\n\n" + block + "\n"
    fd, tmp = tempfile.mkstemp(dir=readme.parent, prefix=f".{readme.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(new)
        os.replace(tmp, readme)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return new


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", default=str(RESULTS_DIR / "all.json"), help="run_all's combined JSON")
    ap.add_argument("--readme", default=str(ROOT / "README.md"), help="README to update")
    ap.add_argument("--chart", default="benchmarks/results/ratios.png", help="chart as linked from README")
    ap.add_argument("--print", action="store_true", help="only print the section, do not write")
    a = ap.parse_args(argv)
    path = Path(a.json)
    if not path.exists():
        raise SystemExit(f"report: {path} not found; run `make bench` (benchmarks.run_all) first")
    body = section(json.loads(path.read_text()), a.chart or None)
    if a.print:
        print(body)
        return
    update_readme(a.readme, body)
    print(f"# updated the Performance section of {a.readme}")


if __name__ == "__main__":
    main()
