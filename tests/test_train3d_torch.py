"""``benchmarks/train3d_torch.py`` (the 3D default recipe in PyTorch, issue 13's baseline): the PyTorch
twin has SmallCNN3D's state_dict keys and shapes, and a ``--tiny`` run trains, tests and writes its JSON.

Runs on a tiny synthetic MedMNIST-3D file in tmp_path (like tests/test_task_3d.py), so it needs no real
data; skips without torch. A few seconds.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import train3d_torch as t3  # noqa: E402


@pytest.fixture(autouse=True)
def _torch_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def _write_vessel3d(folder: Path, n=(40, 16, 16), seed=0) -> Path:
    """Noise volumes; label 1 ones hold a bright ball off-centre. Both classes in every split."""
    rng = np.random.default_rng(seed)
    d, h, w = np.meshgrid(*(np.arange(28),) * 3, indexing="ij")
    ball = (d - 10) ** 2 + (h - 16) ** 2 + (w - 12) ** 2 < 25
    arrays = {}
    for split, m in zip(("train", "val", "test"), n):
        y = (np.arange(m) % 2).astype(np.uint8)
        x = rng.integers(0, 90, (m, 28, 28, 28)).astype(np.int64)
        x[y == 1] += 140 * ball
        arrays[f"{split}_images"] = np.clip(x, 0, 255).astype(np.uint8)
        arrays[f"{split}_labels"] = y.reshape(-1, 1)
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / "vesselmnist3d.npz", **arrays)
    return folder


def test_twin_matches_smallcnn3d_keys_and_shapes():
    from tinygrad_rad.models import SmallCNN3D

    ours = SmallCNN3D(in_channels=1, num_classes=3)
    twin = t3.smallcnn3d_torch(1, 3)
    ref = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in twin.state_dict().items()}
    assert got == ref
    t3.copy_weights(ours, twin)  # strict load: same keys, same shapes
    assert np.allclose(twin.features[0].weight.detach().numpy(), ours.features[0].weight.numpy())
    # the same function: eval-mode outputs agree once the weights are the same
    x = np.random.default_rng(0).standard_normal((2, 1, 12, 12, 12)).astype(np.float32)
    ours.eval()
    twin.eval()
    import tinygrad_rad as tr

    with torch.no_grad():
        y_twin = twin(torch.from_numpy(x)).numpy()
    y_ours = ours(tr.tensor(x)).numpy()
    np.testing.assert_allclose(y_twin, y_ours, rtol=1e-4, atol=1e-5)


def test_tiny_run_writes_json(tmp_path):
    data = _write_vessel3d(tmp_path / "data")
    out = tmp_path / "res" / "tiny.json"
    rc = t3.main(["--tiny", "--data-dir", str(data), "--out", str(out), "--threads", "2", "--seed", "1"])
    assert rc == 0 and out.exists()
    res = json.loads(out.read_text())
    assert res["tiny"] is True and res["framework"] == "torch"
    assert res["epochs"] == 1 and res["best_epoch"] == 1 and len(res["history"]) == 1
    assert (res["n_train"], res["n_val"], res["n_test"]) == (40, 16, 16)
    assert 0.0 <= res["test_auc"] <= 1.0 and 0.0 <= res["test_acc"] <= 1.0
    assert 0.0 <= res["best_val_auc"] <= 1.0
    assert res["train_seconds"] > 0 and res["images_per_second"] > 0
    assert res["flip_axes"] == [0, 1, 2] and res["threads"] == 2
    assert res["recipe"]["batch_size"] == 32 and res["recipe"]["lr"] == 1e-3 and res["recipe"]["seed"] == 1
    assert "torch" in res["machine"]
    row = res["history"][0]
    assert np.isfinite(row["train_loss"]) and 0.0 <= row["val_auc"] <= 1.0


def test_the_recipe_options_have_their_twin(tmp_path):
    """EMA + precise batch norm + test-time flips: the twin runs them with torch.optim.swa_utils."""
    data = _write_vessel3d(tmp_path / "data")
    out = tmp_path / "res" / "opts.json"
    rc = t3.main(["--tiny", "--data-dir", str(data), "--out", str(out), "--ema-epochs", "1", "--precise-bn",
                  "32", "--tta", "1", "--label-smoothing", "0.1"])
    assert rc == 0
    res = json.loads(out.read_text())
    assert res["recipe"]["ema_epochs"] == 1.0 and res["recipe"]["precise_bn"] == 32 and res["recipe"]["tta"]
    assert res["recipe"]["label_smoothing"] == 0.1
    assert 0.0 <= res["test_auc"] <= 1.0 and np.isfinite(res["test_loss"])


def test_missing_data_is_a_one_line_error(tmp_path, capsys):
    out = tmp_path / "x.json"
    assert t3.main(["--tiny", "--data-dir", str(tmp_path / "nowhere"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "vesselmnist3d.npz" in err and str(tmp_path / "nowhere") in err and "Traceback" not in err
    assert not out.exists()
