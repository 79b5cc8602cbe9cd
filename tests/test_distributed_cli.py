"""``tinygrad-rad train --nproc 2`` end to end (the shared training loop on 2 MPI ranks).

Skipped until the CLI has ``--nproc`` (the integration patch), without mpi4py / mpirun, or without the
real PneumoniaMNIST file. One tiny run (256 images, 2 epochs), then a resumed one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import tinygrad_rad.distributed as dist


def _has_nproc() -> bool:
    from tinygrad_rad.cli import build_parser

    return "--nproc" in build_parser()._subparsers._group_actions[0].choices["train"].format_help()


pytestmark = [
    pytest.mark.skipif(not (dist.is_available() and dist.find_mpirun()), reason="needs mpi4py and mpirun"),
    pytest.mark.skipif(not _has_nproc(), reason="the CLI has no --nproc yet (distributed integration)"),
]


def _cli(args: list, timeout: float = 300):
    env = dict(os.environ, TGR_DIST_TIMEOUT="120")
    env.pop("NUMBA_ENABLE_CUDASIM", None)
    cmd = [sys.executable, "-m", "tinygrad_rad", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)


def test_train_nproc_2_writes_once_and_resumes(data_dir, tmp_path):
    if not (data_dir / "pneumoniamnist.npz").is_file():
        pytest.skip("pneumoniamnist.npz is absent")
    out = tmp_path / "run"
    common = ["--data-dir", str(data_dir), "--no-progress", "--no-plots"]
    p = _cli(["train", "--nproc", "2", "--sync-bn", "--epochs", "1", "--limit-train", "256", "--limit-eval",
              "128", "--batch-size", "64", "--out", str(out), *common])
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    assert p.stdout.count('"test_auc"') == 1  # only rank 0 prints
    assert p.stderr.count("epoch 1/1") == 1  # and logs
    assert sorted(f.name for f in out.iterdir()) == ["best.safetensors", "history.csv", "last.safetensors",
                                                     "metrics.json", "test_predictions.npz"]
    r = _cli(["train", "--nproc", "2", "--resume", str(out), "--epochs", "2", *common[2:]])
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    rows = (out / "history.csv").read_text().strip().splitlines()
    assert len(rows) == 3  # header + 2 epochs
    assert json.loads((out / "metrics.json").read_text())["best_epoch"] in (1, 2)
    bad = _cli(["train", "--nproc", "2", "--batch-size", "63", "--epochs", "1", "--limit-train", "64",
                "--out", str(tmp_path / "bad"), *common])
    assert bad.returncode != 0 and "not divisible" in bad.stderr
