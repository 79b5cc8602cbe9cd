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


def _ratio(v) -> str:
    return "n/a" if v is None else f"{v:.2f}x"


def _blas(machine: dict) -> str:
    blas = machine.get("blas")
    if isinstance(blas, list):
        names = [f"{b.get('internal_api')} {b.get('version') or ''} {b.get('architecture') or ''}".strip()
                 for b in blas if b.get("internal_api") != "openmp"]
        return ", ".join(names) or "n/a"
    return str(blas)


def section(combined: dict, chart: str | None = "benchmarks/results/ratios.png") -> str:
    """The Markdown of the section (without the markers)."""
    res = combined.get("results", {})
    m = combined.get("machine", {})
    train = res.get("train", {})
    lines = []
    tiny = " **(tiny smoke-test sizes: not meaningful)**" if combined.get("tiny") else ""
    lines.append(
        f"Measured by `make bench` (`benchmarks/run_all.py`){tiny} on {m.get('cpu', '?')}, "
        f"{m.get('cores', '?')} cores, threads={train.get('threads', '?')} for Numba, BLAS and PyTorch "
        f"(BLAS: {_blas(m)}; numpy {m.get('numpy', '?')}, numba {m.get('numba', '?')}, "
        f"PyTorch {train.get('torch_version') or 'not installed'}). Both frameworks run in the same "
        "process, interleaved, after a warm-up; numbers are medians (min-max in brackets); a ratio > 1 "
        "means tinygrad_rad is faster. The machine is shared, so expect some noise. "
        "Raw results: `benchmarks/results/*.json`."
    )
    lines.append("")
    if train.get("results"):
        lines += ["| model (batch) | mode | tinygrad_rad img/s | PyTorch img/s | ratio | first step (s) |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for r in train["results"]:
            for mode in ("train", "eval"):
                e = r[mode]
                o = e["tinygrad_rad"]["img_s"]
                t = e.get("torch", {}).get("img_s")
                tcol = f"{_f(t['median'])} ({_f(t['min'])}-{_f(t['max'])})" if t else "n/a"
                ocol = f"{_f(o['median'])} ({_f(o['min'])}-{_f(o['max'])})"
                first = _f(e["tinygrad_rad"]["first_call_s"], ".2f")
                lines.append(f"| {r['model']} ({r['batch']}) | {mode} | {ocol} | {tcol} "
                             f"| {_ratio(e.get('ratio_vs_torch'))} | {first} |")
        lines.append("")
        lines.append("Training = forward + cross-entropy + backward + Adam step on random 28x28x1 images; "
                     "first step = Numba cache load / compile, excluded from the medians. Importing "
                     "tinygrad_rad's CPU kernels raises glibc's malloc thresholds for the whole process "
                     "(`TGR_TUNE_MALLOC`), which speeds the in-process PyTorch up as well: the ratios are "
                     "against that faster PyTorch.")
        ref = train.get("reference_torch_train_img_s")
        if ref:
            load = train.get("machine", {}).get("load_avg")
            load_s = f" (load average as the training run ended: {load[0]:.1f})" if load else ""
            refs = ", ".join(f"{k} about {v:.0f} img/s" for k, v in ref.items())
            lines.append(f"For scale: PyTorch trains at {refs} on this machine when it is otherwise idle; "
                         "PyTorch figures well below those mean the machine was busy with other work during "
                         f"the run{load_s}.")
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
    summary = combined.get("summary", {})
    kern = [(k, v) for k, v in summary.items() if k.startswith(("matmul_vs", "kernel_")) and v is not None]
    if kern:
        lines += ["| kernel (bench_kernels) | ratio |", "| --- | --- |"]
        for k, v in kern:
            label = {"matmul_vs_numpy": "matmul vs NumPy, largest size",
                     "matmul_vs_numpy_min": "matmul vs NumPy, worst size"}.get(k)
            label = label or k[len("kernel_"):].replace("_vs_torch", " vs PyTorch (geo-mean over shapes)")
            lines.append(f"| {label} | {_ratio(v)} |")
        lines.append("")
        lines.append("Per-shape kernel timings: `benchmarks/results/bench_kernels.json`.")
        lines.append("")
    targets = summary.get("targets", {})
    if targets:
        goals = []
        for k, v in targets.items():
            op = "<=" if k.endswith("_max") else ">="
            met = "met" if v["met"] else "not met"
            goals.append(f"`{k}` {v['value']:.2f} (goal {op} {v['target']}: {met})")
        lines.append("Targets: " + "; ".join(goals) + ".")
        if not all(v["met"] for v in targets.values()):
            lines.append("Where the time goes and what was tried: `benchmarks/NOTES.md` (sections 5 and 6 "
                         "for the training-step profile).")
        else:
            lines.append("How the kernels got there, with each change measured before and after: "
                         "`benchmarks/NOTES.md` (sections 5 and 6 for the training step).")
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
