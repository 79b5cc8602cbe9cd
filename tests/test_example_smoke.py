"""examples/train_pneumonia.py and train_vessel3d.py --tiny run top to bottom (synthetic MedMNIST files)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def test_train_pneumonia_tiny(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {}
    for split, m in (("train", 64), ("val", 64), ("test", 64)):
        y = (np.arange(m) % 2).reshape(-1, 1).astype(np.uint8)
        x = rng.integers(0, 100, (m, 28, 28))
        x[y[:, 0] == 1, 9:19, 9:19] += 120
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = x.astype(np.uint8), y
    np.savez(tmp_path / "pneumoniamnist.npz", **arrays)
    out = tmp_path / "out"
    script = ROOT / "examples" / "train_pneumonia.py"
    cmd = [sys.executable, str(script), "--tiny", "--data-dir", str(tmp_path), "--out", str(out)]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert re.search(r"epoch  2/2 .*val AUC", proc.stdout), proc.stdout
    m = re.search(r"test \(best epoch \d\): AUC ([\d.]+)\s+ACC ([\d.]+)", proc.stdout)
    assert m, proc.stdout
    assert 0.0 <= float(m.group(1)) <= 1.0 and 0.0 <= float(m.group(2)) <= 1.0
    assert (out / "best.safetensors").is_file()


def test_train_vessel3d_tiny(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {}
    for split, m in (("train", 16), ("val", 32), ("test", 32)):
        y = (np.arange(m) % 2).reshape(-1, 1).astype(np.uint8)
        x = rng.integers(0, 100, (m, 28, 28, 28))
        x[y[:, 0] == 1, 9:19, 9:19, 9:19] += 120
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = x.astype(np.uint8), y
    np.savez(tmp_path / "vesselmnist3d.npz", **arrays)
    out = tmp_path / "out"
    script = ROOT / "examples" / "train_vessel3d.py"
    cmd = [sys.executable, str(script), "--tiny", "--data-dir", str(tmp_path), "--out", str(out)]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert re.search(r"epoch  2/2 .*val AUC", proc.stdout), proc.stdout
    m = re.search(r"test \(best epoch \d\): AUC ([\d.]+)\s+ACC ([\d.]+)", proc.stdout)
    assert m, proc.stdout
    assert 0.0 <= float(m.group(1)) <= 1.0 and 0.0 <= float(m.group(2)) <= 1.0
    assert (out / "best.safetensors").is_file()
