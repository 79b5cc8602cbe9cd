"""The shared training loop (tinygrad_rad.tasks.loop) on a new task written in a few lines: files,
exact resume, the non-finite-loss stop; the three task modules share it."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass

import numpy as np
import pytest

import tinygrad_rad as tr
import tinygrad_rad.nn.functional as F
from tinygrad_rad import nn, optim
from tinygrad_rad.checkpoint import load_checkpoint
from tinygrad_rad.data import DataLoader, TensorDataset
from tinygrad_rad.tasks import NonFiniteLoss, Task, TrainingInterrupted, classify, detect, segment, train
from tinygrad_rad.utils import ConfigDictMixin


# ---------------------------------------------------------------- a fourth task: the whole of it
@dataclass
class LineConfig(ConfigDictMixin):
    epochs: int = 3
    lr: float = 0.05
    out: str = "runs/line"
    seed: int = 0
    device: str = "cpu"
    progress: bool = False
    plots: bool = False
    nan_at_epoch: int | None = None  # test hook: the loss becomes nan in this epoch


class LineTask(Task):
    """Fit y = x w + noise with a linear layer; best checkpoint by validation -MSE."""

    name, monitor = "line", "neg_mse"

    def setup(self, log):
        rng = np.random.default_rng(0)
        x = rng.normal(size=(80, 3)).astype(np.float32)
        y = (x @ np.array([[1.0], [-2.0], [0.5]]) + 0.1 * rng.normal(size=(80, 1))).astype(np.float32)
        self.val = (tr.tensor(x[64:]), tr.tensor(y[64:]))
        self.model = nn.Sequential(nn.Linear(3, 8), nn.Dropout(0.2), nn.Linear(8, 1))  # dropout: global RNG
        self.optimizer = optim.Adam(self.model.parameters(), lr=self.config.lr)
        self.loader = DataLoader(TensorDataset(x[:64], y[:64]), batch_size=16, shuffle=True,
                                 seed=self.config.seed)

    def train_step(self, batch):
        x, y = batch
        loss = F.mse_loss(self.model(x), y)
        if self.state["epoch"] == self.config.nan_at_epoch:
            loss = loss * float("nan")
        return loss, {"n": len(x)}

    def validate(self):
        self.model.eval()
        with tr.no_grad():
            mse = float(F.mse_loss(self.model(self.val[0]), self.val[1]).item())
        return {"neg_mse": -mse}

    def test(self, state, checkpoint, log):
        return {"val_mse": -self.validate()["neg_mse"], "best_epoch": state["best_epoch"], **checkpoint}


def _weights(path):
    return load_checkpoint(path)["model_state"]


def test_a_new_task_gets_checkpoints_history_metrics(tmp_path):
    out = tmp_path / "run"
    res = train(LineTask(LineConfig(out=str(out))), log=lambda s: None)
    for name in ("last.safetensors", "best.safetensors", "history.csv", "metrics.json"):
        assert (out / name).is_file(), name
    rows = list(csv.DictReader(open(out / "history.csv")))
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["val_mse"] == pytest.approx(res["val_mse"]) and saved["path"].endswith("best.safetensors")
    assert saved["epoch"] == res["best_epoch"]


def test_a_new_task_resumes_exactly(tmp_path):
    ref = tmp_path / "ref"
    train(LineTask(LineConfig(out=str(ref))), log=lambda s: None)
    run = tmp_path / "run"

    def stop_mid_epoch_2(event, info):
        return event == "step" and info["epoch"] == 1 and info["step"] == 2

    with pytest.raises(TrainingInterrupted) as e:
        train(LineTask(LineConfig(out=str(run))), callbacks=[stop_mid_epoch_2], log=lambda s: None)
    assert (e.value.epoch, e.value.step) == (1, 2)
    train(LineTask(LineConfig(out=str(run))), resume=True, log=lambda s: None)
    a, b = _weights(ref / "last.safetensors"), _weights(run / "last.safetensors")
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert (ref / "history.csv").read_text().split("\n")[1].split(",")[:3] == \
        (run / "history.csv").read_text().split("\n")[1].split(",")[:3]


def test_resume_can_train_a_finished_run_for_longer(tmp_path):
    ref, run = tmp_path / "ref", tmp_path / "run"
    train(LineTask(LineConfig(out=str(ref), epochs=3)), log=lambda s: None)
    train(LineTask(LineConfig(out=str(run), epochs=2)), log=lambda s: None)
    # the stored epochs (2) win unless the caller keeps its own
    train(LineTask(LineConfig(out=str(run), epochs=3)), resume=True, log=lambda s: None)
    assert load_checkpoint(run / "last.safetensors")["epoch"] == 2
    train(LineTask(LineConfig(out=str(run), epochs=3)), resume=True, keep=("epochs",), log=lambda s: None)
    assert load_checkpoint(run / "last.safetensors")["epoch"] == 3
    assert len((run / "history.csv").read_text().splitlines()) == 4


def test_a_non_finite_loss_stops_before_the_update_and_keeps_the_last_good_checkpoint(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(NonFiniteLoss, match=r"epoch 2, step 1 .*last good checkpoint is .*last.safetensors"):
        train(LineTask(LineConfig(out=str(out), nan_at_epoch=1)), log=lambda s: None)
    ck = load_checkpoint(out / "last.safetensors")
    assert ck["epoch"] == 1 and all(np.isfinite(v).all() for v in ck["model_state"].values())
    assert not (out / "metrics.json").exists()


def test_the_three_tasks_are_built_on_the_loop():
    for task in (classify.ClassifyTask, segment.SegmentTask, detect.DetectTask):
        assert issubclass(task, Task)
    assert detect.DetectTask.monitor is None and detect.DetectTask.last_name == "model.safetensors"


def test_a_run_removes_the_temporary_files_a_killed_run_left(tmp_path):
    import os
    import subprocess
    import sys

    out = tmp_path / "run"
    out.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()  # a writer that has exited
    stale = out / f".last.safetensors.tgr-tmp-{dead}-0a1b2c3d.tmp"
    stale.write_bytes(b"half a checkpoint")
    os.utime(stale, (1e9, 1e9))  # written long before this process started
    keep = out / "notes.txt"
    keep.write_text("not a temporary file")
    lines = []
    train(LineTask(LineConfig(out=str(out))), log=lines.append)
    assert not stale.exists() and keep.read_text() == "not a temporary file"
    assert any(stale.name in line for line in lines)
