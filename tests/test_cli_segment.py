"""``tinygrad-rad segment train|evaluate|predict`` end to end on tiny data (a few steps)."""

from __future__ import annotations

import json
import struct
import zlib

import numpy as np
import pytest

from tinygrad_rad import cli
from tinygrad_rad.plots import overlay, write_png


def _npz(path, n=(8, 4, 4), size=32):
    rng = np.random.default_rng(0)
    arrays = {}
    yy, xx = np.mgrid[:size, :size]
    for split, k in zip(("train", "val", "test"), n):
        masks = np.zeros((k, size, size), np.uint8)
        imgs = np.full((k, size, size), -1000, np.int16)
        for i in range(k):
            cy, cx, r = rng.integers(10, size - 10, 2).tolist() + [int(rng.integers(4, 8))]
            m = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
            masks[i] = m
            imgs[i][~m] = 40  # soft tissue around a dark "lung"
        arrays.update({f"{split}_images": imgs, f"{split}_masks": masks, f"{split}_ids": np.arange(k)})
    np.savez(path, **arrays)
    return path


def _read_png_size(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    w, h = struct.unpack(">II", data[16:24])
    return w, h


def test_write_png_is_valid(tmp_path):
    img = (np.arange(12, dtype=np.uint8) * 20).reshape(3, 4)
    p = write_png(tmp_path / "a.png", img)
    assert _read_png_size(p) == (4, 3)
    # decode the single IDAT chunk and compare pixels (filter byte 0 per row)
    data = p.read_bytes()
    n = struct.unpack(">I", data[33:37])[0]
    raw = zlib.decompress(data[41 : 41 + n])
    rows = np.frombuffer(raw, np.uint8).reshape(3, 5)
    assert (rows[:, 0] == 0).all() and (rows[:, 1:] == img).all()
    rgb = overlay(np.zeros((8, 8)), np.eye(8, dtype=bool), np.eye(8, dtype=bool), scale=2)
    assert rgb.shape == (16, 16, 3) and (rgb[0, 0] == (255, 255, 0)).all()


def test_segment_train_evaluate_predict(tmp_path, capsys):
    data = _npz(tmp_path / "tiny.npz")
    out = tmp_path / "run"
    args = [
        "segment",
        "train",
        "--data",
        str(data),
        "--epochs",
        "2",
        "--batch-size",
        "4",
        "--depth",
        "2",
        "--base-channels",
        "4",
        "--out",
        str(out),
        "--no-progress",
        "--overlays",
        "2",
    ]
    assert cli.main(args) == 0
    m = json.loads((out / "metrics.json").read_text())
    for k in ("test_dice", "test_iou", "test_hd95", "test_asd", "best_epoch", "train_seconds"):
        assert k in m
    assert 0.0 <= m["test_dice"] <= 1.0 and m["n_test"] == 4 and len(m["per_image"]) == 4
    assert (out / "best.safetensors").is_file() and (out / "last.safetensors").is_file()
    assert (out / "history.csv").read_text().count("\n") == 3
    pngs = sorted((out / "overlays").glob("*.png"))
    assert len(pngs) == 2 and _read_png_size(pngs[0]) == (256, 256)
    capsys.readouterr()
    # evaluate reproduces the test Dice of the best checkpoint
    assert (
        cli.main(
            [
                "segment",
                "evaluate",
                "--checkpoint",
                str(out / "best.safetensors"),
                "--out",
                str(tmp_path / "ev"),
            ]
        )
        == 0
    )
    ev = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert ev["test_dice"] == pytest.approx(m["test_dice"], abs=1e-9)
    # predict on a folder of .npy HU slices of another size
    src = tmp_path / "in"
    src.mkdir()
    np.save(src / "scan1.npy", np.full((40, 40), -800, np.int16))
    assert (
        cli.main(
            [
                "segment",
                "predict",
                "--checkpoint",
                str(out / "best.safetensors"),
                "--input",
                str(src),
                "--out",
                str(tmp_path / "pred"),
                "--hu-window",
                "-1000",
                "400",
            ]
        )
        == 0
    )
    assert _read_png_size(tmp_path / "pred" / "scan1_mask.png") == (40, 40)
    assert (tmp_path / "pred" / "scan1_overlay.png").is_file()
    # the shared loop's resume: one more epoch, with the stored recipe; recipe flags are refused
    assert cli.main(["segment", "train", "--resume", str(out), "--lr", "0.1"]) == 2
    assert "--lr cannot change" in capsys.readouterr().err
    assert cli.main(["segment", "train", "--resume", str(out), "--epochs", "3", "--no-progress"]) == 0
    assert (out / "history.csv").read_text().count("\n") == 4
    assert json.loads((out / "metrics.json").read_text())["config"]["depth"] == 2


def test_segment_errors_are_clear(tmp_path, capsys):
    assert (
        cli.main(["segment", "train", "--data", str(tmp_path / "missing.npz"), "--out", str(tmp_path)]) == 2
    )
    assert "missing.npz" in capsys.readouterr().err
    data = _npz(tmp_path / "tiny.npz", size=36)
    assert (
        cli.main(["segment", "train", "--data", str(data), "--depth", "3", "--out", str(tmp_path / "o")]) == 2
    )
    assert "divisible" in capsys.readouterr().err
    assert cli.main(["segment", "evaluate", "--checkpoint", str(tmp_path / "nope.safetensors")]) == 2
    empty = _npz(tmp_path / "empty.npz", n=(8, 0, 4))
    argv = ["segment", "train", "--data", str(empty), "--depth", "2", "--out", str(tmp_path / "e")]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "val" in err and "empty" in err and not (tmp_path / "e" / "last.safetensors").exists()


def test_segment_real_ct_lung_few_steps(data_dir, tmp_path):
    path = data_dir / "ct_lung" / "lung_ct_128.npz"
    if not path.is_file():
        pytest.skip("ct_lung absent")
    out = tmp_path / "lung"
    assert (
        cli.main(
            [
                "segment",
                "train",
                "--data-dir",
                str(data_dir),
                "--epochs",
                "1",
                "--limit-train",
                "8",
                "--limit-eval",
                "4",
                "--batch-size",
                "4",
                "--depth",
                "2",
                "--base-channels",
                "4",
                "--out",
                str(out),
                "--no-progress",
                "--overlays",
                "1",
            ]
        )
        == 0
    )
    m = json.loads((out / "metrics.json").read_text())
    assert m["n_test"] == 4 and m["config"]["size"] == 128


def test_segmentation_folder_reads_png_pairs_and_joint_augmentation(tmp_path):
    pytest.importorskip("PIL")
    from tinygrad_rad.data.segmentation import JointRandomAffine, SegmentationFolder

    (tmp_path / "img").mkdir()
    (tmp_path / "msk").mkdir()
    for k in range(3):
        img = np.zeros((32, 32), np.uint8)
        img[8 + k : 20 + k, 10:22] = 200
        write_png(tmp_path / "img" / f"case{k}.png", img)
        write_png(tmp_path / "msk" / f"case{k}.png", (img > 0).astype(np.uint8) * 255)
    write_png(tmp_path / "img" / "unpaired.png", np.zeros((32, 32), np.uint8))
    ds = SegmentationFolder(
        tmp_path / "img",
        tmp_path / "msk",
        size=(16, 16),
        augment=JointRandomAffine(degrees=15, translate=0.1),
    )
    assert len(ds) == 3 and ds.images.shape == (3, 1, 16, 16) and list(ds.ids) == ["case0", "case1", "case2"]
    assert set(np.unique(ds.masks)) == {0.0, 1.0} and ds.images.max() <= 1.0
    x, y = ds.get_batch([0, 1, 2], rng=np.random.default_rng(0))
    assert set(np.unique(y)) <= {0.0, 1.0}  # nearest-neighbour keeps masks binary
    # the bright square and its mask move together
    assert ((x > 0.5) == (y > 0.5)).mean() > 0.95
