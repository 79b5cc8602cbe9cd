"""``tinygrad-rad detect train|evaluate|predict`` end to end on a tiny synthetic LIDC-like folder."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tinygrad_rad import cli
from tinygrad_rad.tasks.detect import DetectConfig, cross_validate


def _fake_lidc(root, n_per_patient=2, patients=4):
    """lidc_nodules/ with 512x512 slices holding one bright disc each, and the matching boxes CSV."""
    d = root / "lidc_nodules"
    d.mkdir(parents=True)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:512, :512]
    imgs, masks, ids, pat, rows = [], [], [], [], []
    for p in range(1, patients + 1):
        for k in range(n_per_patient):
            cy, cx, r = int(rng.integers(100, 400)), int(rng.integers(100, 400)), int(rng.integers(8, 20))
            m = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
            imgs.append((m * 1.0 + rng.normal(0, 0.05, m.shape)).astype(np.float16))
            masks.append(m.astype(np.uint8))
            sid = f"{p:04d}_NI000_slice{k:03d}"
            ids.append(sid)
            pat.append(p)
            ys, xs = np.nonzero(m)
            rows.append(f"{sid},{xs.min()},{ys.min()},{xs.max() + 1},{ys.max() + 1},3")
    np.savez(
        d / "lidc_nodule_slices_512.npz",
        images=np.stack(imgs),
        masks=np.stack(masks),
        ids=np.array(ids),
        patient=np.array(pat),
        malignancy=np.full(len(ids), 3),
    )
    (d / "boxes_512.csv").write_text("slice_id,x_min,y_min,x_max,y_max,malignancy\n" + "\n".join(rows) + "\n")
    return root


TINY = [
    "--epochs",
    "1",
    "--batch-size",
    "4",
    "--base-channels",
    "4",
    "--depth",
    "2",
    "--crop",
    "64",
    "--no-progress",
    "--draw",
    "2",
]


def test_detect_train_evaluate_predict(tmp_path, capsys):
    data = _fake_lidc(tmp_path / "data")
    out = tmp_path / "run"
    assert (
        cli.main(["detect", "train", "--data-dir", str(data), "--fold", "1", "--out", str(out), *TINY]) == 0
    )
    m = json.loads((out / "metrics.json").read_text())
    assert m["fold"] == 1 and m["n_test"] == 2
    assert not set(m["train_patients"]) & set(m["test_patients"])
    for who in ("model", "baseline"):
        assert set(m[who]["froc_sensitivity"]) == {"1/8", "1/4", "1/2", "1", "2", "4", "8"}
        assert "ap50" in m[who] and "ap10" in m[who]
    assert len(list((out / "drawings").glob("*.png"))) == 2
    capsys.readouterr()
    assert (
        cli.main(
            ["detect", "evaluate", "--checkpoint", str(out / "model.safetensors"), "--data-dir", str(data)]
        )
        == 0
    )
    ev = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert ev["fold"] == 1 and ev["model"]["froc_mean"] == pytest.approx(m["model"]["froc_mean"])
    src = tmp_path / "slices.npz"
    np.savez(src, images=np.zeros((2, 512, 512), np.float32), ids=np.array(["a", "b"]))
    assert (
        cli.main(
            [
                "detect",
                "predict",
                "--checkpoint",
                str(out / "model.safetensors"),
                "--input",
                str(src),
                "--out",
                str(tmp_path / "pred"),
            ]
        )
        == 0
    )
    preds = json.loads((tmp_path / "pred" / "predictions.json").read_text())
    assert [p["id"] for p in preds] == ["a", "b"] and (tmp_path / "pred" / "a_boxes.png").is_file()
    # the shared loop: history.csv per run, and --resume trains the fold for more epochs
    assert (out / "history.csv").read_text().count("\n") == 2
    assert cli.main(["detect", "train", "--resume", str(out), "--epochs", "2", "--no-progress"]) == 0
    assert (out / "history.csv").read_text().count("\n") == 3
    assert json.loads((out / "metrics.json").read_text())["fold"] == 1


def test_cross_validation_is_patient_wise(tmp_path):
    data = _fake_lidc(tmp_path / "data", n_per_patient=1)
    cfg = DetectConfig(
        data_dir=str(data),
        folds=2,
        epochs=1,
        batch_size=2,
        base_channels=4,
        depth=2,
        crop=64,
        progress=False,
        draw=0,
        out=str(tmp_path / "cv"),
    )
    r = cross_validate(cfg, log=lambda s: None)
    assert len(r["folds"]) == 2
    tested = sorted(p for f in r["folds"] for p in f["test_patients"])
    assert tested == [1, 2, 3, 4]
    for f in r["folds"]:
        assert not set(f["train_patients"]) & set(f["test_patients"])
    assert r["pooled"]["model"]["n_images"] == 4 and r["pooled"]["baseline"]["n_gt"] == 4
    assert (tmp_path / "cv" / "cv_metrics.json").is_file()


def test_detect_errors_are_clear(tmp_path, capsys):
    assert (
        cli.main(["detect", "train", "--data-dir", str(tmp_path), "--out", str(tmp_path / "o"), *TINY]) == 2
    )
    assert "lidc_nodule_slices_512.npz" in capsys.readouterr().err
    assert cli.main(["detect", "evaluate", "--checkpoint", str(tmp_path / "x.safetensors")]) == 2


def test_detect_real_lidc_one_step(data_dir, tmp_path):
    if not (data_dir / "lidc_nodules" / "boxes_512.csv").is_file():
        pytest.skip("lidc_nodules absent")
    out = tmp_path / "real"
    assert (
        cli.main(
            [
                "detect",
                "train",
                "--data-dir",
                str(data_dir),
                "--fold",
                "0",
                "--limit-train",
                "4",
                "--limit-test",
                "2",
                "--out",
                str(out),
                *TINY,
            ]
        )
        == 0
    )
    m = json.loads((out / "metrics.json").read_text())
    assert m["test_patients"] and m["model"]["n_gt"] >= 2
