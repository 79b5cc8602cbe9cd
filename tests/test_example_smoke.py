"""examples/train_pneumonia.py and train_vessel3d.py --tiny run top to bottom (synthetic MedMNIST files)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _synthetic_medmnist(path, shape: tuple, sizes: tuple) -> None:
    """Binary MedMNIST-layout file: noise images, a bright centre cube (square) in the positives."""
    rng = np.random.default_rng(0)
    arrays = {}
    for split, m in zip(("train", "val", "test"), sizes):
        y = (np.arange(m) % 2).reshape(-1, 1).astype(np.uint8)
        x = rng.integers(0, 100, (m, *shape))
        x[(y[:, 0] == 1, *[slice(9, 19)] * len(shape))] += 120
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = x.astype(np.uint8), y
    np.savez(path, **arrays)


# (example script, its dataset flag, image shape, train / val / test sizes)
EXAMPLES = [
    ("train_pneumonia.py", "pneumoniamnist", (28, 28), (64, 64, 64)),
    ("train_vessel3d.py", "vesselmnist3d", (28, 28, 28), (16, 32, 32)),
]


@pytest.mark.parametrize("script, flag, shape, sizes", EXAMPLES, ids=[e[0][:-3] for e in EXAMPLES])
def test_example_tiny(tmp_path, script, flag, shape, sizes):
    _synthetic_medmnist(tmp_path / f"{flag}.npz", shape, sizes)
    out = tmp_path / "out"
    cmd = [sys.executable, str(ROOT / "examples" / script), "--tiny", "--data-dir", str(tmp_path), "--out",
           str(out)]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert re.search(r"epoch  2/2 .*val AUC", proc.stdout), proc.stdout
    m = re.search(r"test \(best epoch \d\): AUC ([\d.]+)\s+ACC ([\d.]+)", proc.stdout)
    assert m, proc.stdout
    assert 0.0 <= float(m.group(1)) <= 1.0 and 0.0 <= float(m.group(2)) <= 1.0
    assert (out / "best.safetensors").is_file()
