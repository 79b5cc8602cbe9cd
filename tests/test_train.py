"""The classification task: metrics, schedules, exact resumption, multi-label/RGB runs, real data."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from tinygrad_rad.checkpoint import load_checkpoint
from tinygrad_rad.data.medmnist import get_info
from tinygrad_rad.metrics import classification_report
from tinygrad_rad.tasks.classify import (
    TrainConfig,
    TrainingInterrupted,
    fit,
    load_trained,
    lr_factor,
    predict,
    preprocess,
)


def make_medmnist_npz(folder, flag="pneumoniamnist", n=(48, 32, 32), seed=0):
    """A learnable MedMNIST-format file: label-1 images (or each positive label) carry a bright blob."""
    info = get_info(flag)
    rng = np.random.default_rng(seed)
    k, task, ch = info["n_classes"], info["task"], info["n_channels"]
    arrays = {}
    for split, m in zip(("train", "val", "test"), n):
        if task == "multi-label":
            labels = (rng.random((m, k)) < 0.3).astype(np.uint8)
        else:
            labels = (np.arange(m) % k).reshape(-1, 1).astype(np.uint8)
            rng.shuffle(labels)
        imgs = rng.integers(0, 90, (m, 28, 28)).astype(np.float64)
        for i in range(m):
            on = np.flatnonzero(labels[i]) if task == "multi-label" else [int(labels[i, 0])]
            for c in on:
                r, col = 4 + 2 * (c % 8), 4 + 6 * (c // 8)
                imgs[i, r:r + 8, col:col + 8] += 140 * (1 if c else 0) + (40 if task != "binary-class" else 0)
        imgs = np.clip(imgs, 0, 255).astype(np.uint8)
        if ch == 3:
            imgs = np.stack([imgs, imgs[:, ::-1], imgs.transpose(0, 2, 1)], axis=-1)
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = imgs, labels
    path = folder / f"{flag}.npz"
    np.savez(path, **arrays)
    return path


# ------------------------------------------------------------------------------------- metrics
def test_classification_report_binary_by_hand():
    y = np.array([[0], [0], [0], [1], [1], [1], [1]])
    p1 = np.array([0.1, 0.6, 0.3, 0.8, 0.4, 0.9, 0.7])
    m = classification_report("binary-class", y, np.stack([1 - p1, p1], axis=1))
    # positives ranked above negatives in 11 of 12 pairs (0.4 < 0.6)
    assert m["auc"] == pytest.approx(11 / 12)
    # threshold 0.5: predicted [0, 1, 0, 1, 0, 1, 1] -> TN 2, FP 1, FN 1, TP 3
    assert m["confusion_matrix"] == [[2, 1], [1, 3]]
    assert m["acc"] == pytest.approx(5 / 7)
    assert m["sensitivity"] == pytest.approx(3 / 4)
    assert m["specificity"] == pytest.approx(2 / 3)
    assert m["ppv"] == pytest.approx(3 / 4)
    assert m["npv"] == pytest.approx(2 / 3)


def test_classification_report_multiclass_and_multilabel_match_sklearn():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(1)
    y = rng.integers(0, 4, 60)
    p = rng.dirichlet(np.ones(4), 60) + np.eye(4)[y] * 0.3
    p /= p.sum(1, keepdims=True)
    m = classification_report("multi-class", y[:, None], p)
    assert m["auc"] == pytest.approx(metrics.roc_auc_score(y, p, multi_class="ovr", average="macro"))
    assert m["acc"] == pytest.approx(metrics.accuracy_score(y, p.argmax(1)))
    assert m["sensitivity"] == pytest.approx(metrics.recall_score(y, p.argmax(1), average="macro"))

    yl = (rng.random((50, 5)) < 0.4).astype(int)
    pl = np.clip(yl * 0.3 + rng.random((50, 5)) * 0.7, 0, 1)
    ml = classification_report("multi-label", yl, pl)
    assert ml["auc"] == pytest.approx(metrics.roc_auc_score(yl, pl, average="macro"))
    assert ml["acc"] == pytest.approx(np.mean([(yl[:, j] == (pl[:, j] >= 0.5)).mean() for j in range(5)]))


def test_preprocess_layout_and_scale():
    g = preprocess(np.array([[[0, 255], [51, 102]]], dtype=np.uint8))
    assert g.shape == (1, 1, 2, 2) and g.dtype == np.float32
    np.testing.assert_allclose(g[0, 0], [[-1.0, 1.0], [-0.6, -0.2]], atol=1e-6)
    rgb = preprocess(np.zeros((3, 5, 5, 3), np.uint8))
    assert rgb.shape == (3, 3, 5, 5)
    with pytest.raises(ValueError, match="shape"):
        preprocess(np.zeros((5, 5), np.uint8))


def test_lr_schedules():
    c = TrainConfig(epochs=4, scheduler="cosine")
    assert lr_factor(c, 0, 10) == pytest.approx(1.0)
    assert lr_factor(c, 20, 10) == pytest.approx(0.5)
    assert lr_factor(c, 40, 10) == pytest.approx(0.0, abs=1e-12)
    w = TrainConfig(epochs=4, scheduler="cosine", warmup_epochs=1)
    assert [lr_factor(w, s, 10) for s in (0, 4, 9)] == pytest.approx([0.1, 0.5, 1.0])
    assert lr_factor(w, 10, 10) == pytest.approx(1.0)
    ms = TrainConfig(epochs=8, scheduler="multistep")
    assert [lr_factor(ms, e * 10, 10) for e in (3, 4, 6)] == pytest.approx([1.0, 0.1, 0.01])
    assert lr_factor(TrainConfig(scheduler="none"), 123, 10) == 1.0
    with pytest.raises(ValueError, match="scheduler"):
        lr_factor(TrainConfig(scheduler="bogus"), 1, 10)


# ----------------------------------------------------------------------------------- resumption
def test_interrupt_and_resume_give_the_same_result(tmp_path):
    """2 epochs straight == interrupted at the end of epoch 1 and again mid-epoch 2, resumed each time."""
    make_medmnist_npz(tmp_path, n=(32, 16, 16))
    base = dict(data_dir=str(tmp_path), epochs=2, batch_size=16, progress=False, plots=False)
    quiet = dict(log=lambda s: None)
    ref = fit(TrainConfig(out=str(tmp_path / "ref"), **base), **quiet)

    run = tmp_path / "run"

    def stop_after_epoch_1(event, info):
        return event == "epoch" and info["epoch"] == 0

    def stop_mid_epoch_2(event, info):
        return event == "step" and info["epoch"] == 1 and info["step"] == 1

    with pytest.raises(TrainingInterrupted) as e1:
        fit(TrainConfig(out=str(run), **base), callbacks=[stop_after_epoch_1], **quiet)
    assert (e1.value.epoch, e1.value.step) == (1, 0)
    assert load_checkpoint(run / "last.safetensors")["epoch"] == 1
    with pytest.raises(TrainingInterrupted) as e2:
        fit(TrainConfig(out=str(run), progress=False), resume=True, callbacks=[stop_mid_epoch_2], **quiet)
    assert (e2.value.epoch, e2.value.step) == (1, 1)
    res = fit(TrainConfig(out=str(run), progress=False), resume=True, **quiet)

    a = load_checkpoint(tmp_path / "ref" / "last.safetensors")["model_state"]
    b = load_checkpoint(run / "last.safetensors")["model_state"]
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    for k in ("test_auc", "test_acc", "test_loss", "best_epoch", "best_val_auc"):
        assert res[k] == ref[k], k
    with open(run / "history.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    for k in ("train_loss", "val_auc", "val_loss"):
        assert [r[k] for r in rows] == [str(ref_row) for ref_row in _hist(tmp_path / "ref", k)]


def _hist(folder, key):
    with open(folder / "history.csv") as f:
        return [r[key] for r in csv.DictReader(f)]


def test_resume_without_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="last.safetensors"):
        fit(TrainConfig(out=str(tmp_path / "nothing")), resume=True)


# ------------------------------------------------------------------------------ other task kinds
@pytest.mark.parametrize("flag", ["chestmnist", "dermamnist"])
def test_fit_multilabel_and_rgb_multiclass(tmp_path, flag):
    make_medmnist_npz(tmp_path, flag, n=(32, 24, 24))
    out = tmp_path / "out"
    res = fit(TrainConfig(dataset=flag, data_dir=str(tmp_path), out=str(out), epochs=1, batch_size=16,
                          progress=False, plots=False), log=lambda s: None)
    info = get_info(flag)
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["task"] == info["task"] and saved["n_test"] == 24
    for k in ("test_auc", "test_acc", "test_sensitivity", "test_specificity"):
        assert 0.0 <= saved[k] <= 1.0, k
    assert saved["test_auc"] == pytest.approx(res["test_auc"])
    model, meta = load_trained(out / "best.safetensors")
    assert meta["num_classes"] == info["n_classes"] and meta["in_channels"] == info["n_channels"]
    imgs = np.load(tmp_path / f"{flag}.npz")["test_images"][:5]
    p = predict(model, imgs, meta["task"])
    assert p.shape == (5, info["n_classes"])
    if flag == "dermamnist":
        np.testing.assert_allclose(p.sum(1), 1.0, rtol=1e-6)  # softmax
    else:
        assert ((p > 0) & (p < 1)).all()  # independent sigmoids


# ----------------------------------------------------------------------------------- real data
def test_real_pneumoniamnist_training_steps(data_dir, tmp_path):
    if not (data_dir / "pneumoniamnist.npz").is_file():
        pytest.skip("pneumoniamnist.npz is absent")
    losses = []
    res = fit(TrainConfig(data_dir=str(data_dir), out=str(tmp_path), epochs=1, batch_size=64, limit_train=128,
                          limit_eval=64, progress=False, plots=False),
              callbacks=[lambda ev, info: losses.append(info["loss"]) if ev == "step" else None],
              log=lambda s: None)
    assert len(losses) == 2 and all(np.isfinite(losses))
    assert res["n_train"] == 128 and res["n_test"] == 64
    assert 0.0 <= res["test_auc"] <= 1.0 and res["label_names"] == ["normal", "pneumonia"]
