"""Smoke test of the benchmark suite: ``run_all --tiny`` starts every script, each writes valid JSON with
the machine block, the combined JSON and the chart exist, and the README section is generated between
its markers.

No timings are asserted (benchmarks are not tests): only that the numbers are there and sane.
"""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HAS_TORCH = importlib.util.find_spec("torch") is not None
HAS_KERNELS_BENCH = (ROOT / "benchmarks" / "bench_kernels.py").exists()


@pytest.fixture(scope="module")
def bench_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    p = subprocess.run([sys.executable, "-m", "benchmarks.run_all", "--tiny", "--out", str(out)], cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return out


def _load(path: Path) -> dict:
    assert path.exists(), f"{path} was not written"
    return json.loads(path.read_text())


def _check_machine(m: dict) -> None:
    assert m["cores"] >= 1 and m["cpu"]
    assert isinstance(m["cpu_flags"], list) and isinstance(m["caches"], list)
    assert "numba_threading_layer" in m and "blas" in m


def test_every_script_writes_json(bench_dir):
    combined = _load(bench_dir / "all.json")
    assert combined["tiny"] is True
    _check_machine(combined["machine"])
    if HAS_TORCH:
        assert combined["machine"]["torch"]["cpu_capability"]
    expected = {"bench_overhead", "bench_train", "bench_memory", "profile_step"}
    expected |= {"bench_kernels"} if HAS_KERNELS_BENCH else set()
    for name in expected:
        run = combined["runs"][name]
        assert run["status"] == "ok" and run["files"], (name, run)
        for f in run["files"]:
            payload = _load(bench_dir / f)
            assert payload == combined["results"][f[:-5]]
            _check_machine(payload["machine"])
    assert not list(bench_dir.glob(".*.tmp")), "a temp file was left behind (writes must be atomic)"
    if HAS_KERNELS_BENCH:
        assert combined["summary"]["matmul_vs_numpy"] > 0


def test_train_results(bench_dir):
    train = _load(bench_dir / "train.json")
    assert {r["model"] for r in train["results"]} == {"smallcnn", "unet"}  # --tiny's models
    assert train["rounds"] == 1 and train["threads"] == 1
    assert train["numba_threading_layer_used"] == "workqueue"  # configure_cpu in the ours worker
    for r in train["results"]:
        modes = ("train",) if r["model"] == "unet" else ("train", "eval")
        assert set(modes) <= set(r) and ("eval" in r) == (r["model"] != "unet")
        for mode in modes:
            ours = r[mode]["tinygrad_rad"]
            assert ours["img_s"]["median"] > 0 and ours["first_step_s"] > 0
            assert ours["min_ms"] <= ours["median_ms"] <= ours["max_ms"]
            (w,) = r[mode]["workers"]["tinygrad_rad"]  # one round: one worker process per framework
            assert w["other_framework_imported"] == [] and w["median_ms"] == ours["median_ms"]
            if HAS_TORCH:
                (tw,) = r[mode]["workers"]["torch"]
                assert tw["other_framework_imported"] == []  # never imported tinygrad_rad
                assert r[mode]["torch"]["img_s"]["median"] > 0
                assert r[mode]["ratio_vs_torch"] == pytest.approx(
                    r[mode]["torch"]["median_ms"] / ours["median_ms"])
    assert train["torch_available"] == HAS_TORCH
    (cold,) = train["cold_start"]
    assert cold["model"] == "smallcnn" and (cold["status"] == "ok" or cold["status"].startswith("skipped"))
    if cold["status"] == "ok":
        assert 0 < cold["to_first_step_s"] <= cold["total_s"]


def test_profile_step_results(bench_dir):
    prof = _load(bench_dir / "profile_step.json")
    (m,) = prof["models"]
    assert m["model"] == "smallcnn" and m["ours_step_ms"] > 0
    kinds = {k["kind"]: k for k in m["kinds"]}
    for kind in ("conv fwd", "conv bwd-data", "conv bwd-weight", "batch norm fwd", "batch norm bwd",
                 "relu fwd", "relu bwd", "max pool fwd", "max pool bwd", "optimizer", "framework overhead"):
        # SmallCNN's every ReLU follows a BatchNorm: ours runs them fused (counted as batch norm)
        if not kind.startswith("relu"):
            assert "ours_ms" in kinds[kind], kind
        if HAS_TORCH:
            assert "torch_ms" in kinds[kind], kind
    assert "ours_ms" not in kinds["relu fwd"] and "ours_ms" not in kinds["relu bwd"]
    shapes = {r["shape"] for r in m["rows"] if r["kind"] == "conv fwd"}
    assert shapes == {"conv 1->32 28x28 k3 s1", "conv 32->64 28x28 k3 s1", "conv 64->128 14x14 k3 s1"}
    # the first conv's input needs no gradient: no backward-data in either framework
    assert not [r for r in m["rows"] if r["kind"] == "conv bwd-data" and r["shape"].startswith("conv 1->")]
    ours = m["workers"]["tinygrad_rad"]
    # every op row plus the overhead adds up to the unprofiled step
    assert sum(r["ms"] for r in ours["rows"]) == pytest.approx(ours["step_ms"])
    assert ours["other_framework_imported"] == []
    if HAS_TORCH:
        assert m["workers"]["torch"]["other_framework_imported"] == []
        assert m["step_ratio"] == pytest.approx(m["torch_step_ms"] / m["ours_step_ms"])


def test_overhead_and_memory_results(bench_dir):
    ovh = _load(bench_dir / "overhead.json")
    assert {(r["op"], r["grad"]) for r in ovh["results"]} == {
        (op, g) for op in ("add", "mul", "relu", "sum", "matmul") for g in (False, True)}
    for r in ovh["results"]:
        assert r["us_per_op"]["tinygrad_rad"]["median"] > 0
        assert ("numpy" in r["us_per_op"]) == (not r["grad"])
    mem = _load(bench_dir / "memory.json")
    (entry,) = mem["results"]
    ours = entry["tinygrad_rad"]
    assert ours["peak_rss_mb"] > 10 and ours["other_framework_imported"] == []
    if HAS_TORCH:
        # measured in separate processes: the torch worker never imported tinygrad_rad and vice versa
        assert entry["torch"]["other_framework_imported"] == []
        ratio = ours["peak_rss_mb"] / entry["torch"]["peak_rss_mb"]
        assert entry["peak_ratio_vs_torch"] == pytest.approx(ratio)


def test_chart_is_a_png(bench_dir):
    assert (bench_dir / "ratios.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_replaces_only_the_marked_region(bench_dir, tmp_path):
    from benchmarks import report

    combined = _load(bench_dir / "all.json")
    readme = tmp_path / "README.md"
    readme.write_text("# title\n\nbefore\n\n<!-- perf:start -->\nold text\n<!-- perf:end -->\n\nafter\n")
    report.update_readme(readme, report.section(combined))
    text = readme.read_text()
    assert text.startswith("# title\n\nbefore\n\n<!-- perf:start -->\n")
    assert text.endswith("<!-- perf:end -->\n\nafter\n")
    assert "old text" not in text and "smallcnn (2) | train" in text and "tiny smoke-test sizes" in text
    assert "unet (2) | train" in text and "Machine:" in text and "- CPU: " in text and "cold start" in text
    assert "kernel, same process interleaved" in text or not HAS_KERNELS_BENCH
    assert "PyTorch trains at" not in text  # no hard-coded PyTorch reference figure
    report.update_readme(readme, report.section(combined))  # idempotent
    assert readme.read_text() == text
    # without markers the section is appended under its own heading
    bare = tmp_path / "BARE.md"
    bare.write_text("# title\n")
    report.update_readme(bare, "body\n")
    assert bare.read_text() == "# title\n\n## Performance\n\n<!-- perf:start -->\nbody\n<!-- perf:end -->\n"
    half = tmp_path / "HALF.md"
    half.write_text("<!-- perf:start -->\n")
    with pytest.raises(ValueError, match="only one of the markers"):
        report.update_readme(half, "body\n")


def test_summary_ratios_and_targets():
    from benchmarks.run_all import kernel_ratios, summarize

    def stats(ms):
        return {"median_ms": ms, "img_s": {"median": 128e3 / ms}}

    payloads = {
        "train": {"results": [
            {"model": "smallcnn", "train": {"tinygrad_rad": stats(200.0), "torch": stats(250.0),
                                            "ratio_vs_torch": 1.25},
             "eval": {"tinygrad_rad": stats(50.0), "torch": stats(40.0), "ratio_vs_torch": 0.8}}]},
        "memory": {"results": [{"model": "smallcnn", "peak_ratio_vs_torch": 1.2},
                               {"model": "resnet18", "peak_ratio_vs_torch": 1.6}]},
        "bench_kernels": {"rows": [
            {"section": "matmul", "baseline": "numpy", "ratio": 0.9},
            {"section": "matmul", "baseline": "numpy", "ratio": 1.1},
            {"section": "conv2d.fwd", "baseline": "torch", "ratio": 2.0},
            {"section": "conv2d.fwd", "baseline": "torch", "ratio": 0.5}]},
    }
    s = summarize(payloads)
    assert s["smallcnn_train_img_s"] == pytest.approx(640.0) and s["smallcnn_train_vs_torch"] == 1.25
    assert s["matmul_vs_numpy"] == 1.1 and s["matmul_vs_numpy_min"] == 0.9  # largest size is last
    assert s["kernel_conv2d.fwd_vs_torch"] == pytest.approx(1.0)  # geometric mean of 2 and 0.5
    t = s["targets"]  # issue 16: >= 1.2x train and eval, peak memory <= 1.2x
    assert t["smallcnn_train_vs_torch"] == {"value": 1.25, "target": 1.2, "met": True}
    assert t["smallcnn_eval_vs_torch"] == {"value": 0.8, "target": 1.2, "met": False}
    assert t["peak_memory_vs_torch_max"] == {"value": 1.6, "target": 1.2, "met": False}
    assert "resnet18_train_vs_torch" not in t and "unet_train_vs_torch" not in t  # not measured: no verdict
    assert "matmul_vs_numpy" not in t  # a kernel figure, not a target
    assert kernel_ratios({}) == {}
