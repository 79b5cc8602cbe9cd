"""3D data: MedMNIST 3D (registry, synthetic files of the official layout, download, the real
vesselmnist3d.npz), volumes from NIfTI / DICOM series, CT windowing and resampling, 3D transforms."""

from __future__ import annotations

import hashlib
import re
import sys

import numpy as np
import pytest

from tinygrad_rad.data import (
    FLAGS,
    FLAGS_3D,
    INFO,
    DataLoader,
    DownloadError,
    EmptySplitError,
    MedMNIST3D,
    MedMNISTFileError,
    load_medmnist,
    md5sum,
)

ALL_3D = {"organmnist3d", "nodulemnist3d", "adrenalmnist3d", "fracturemnist3d", "vesselmnist3d",
          "synapsemnist3d"}
VESSEL_MD5 = "b41fd4f7e7e2feedddb201585ecafa1b"


def _arrays3d(n_classes=2, size=28, n=(6, 3, 4), seed=0, flat=False):
    rng = np.random.default_rng(seed)
    out = {}
    for split, k in zip(("train", "val", "test"), n):
        out[f"{split}_images"] = rng.integers(0, 256, (k, size, size, size), dtype=np.uint8)
        labels = rng.integers(0, n_classes, (k, 1)).astype(np.uint8)
        out[f"{split}_labels"] = labels[:, 0] if flat else labels
    return out


def _write(path, **arrays):
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return path


# ------------------------------------------------------------------------------ MedMNIST 3D
def test_registry_3d():
    assert set(FLAGS_3D) == ALL_3D and not set(FLAGS) & ALL_3D
    for flag in FLAGS_3D:
        info = INFO[flag]
        assert info["ndim"] == 3 and info["n_channels"] == 1 and info["sizes"] == (28, 64)
        assert info["task"] in ("binary-class", "multi-class") and info["loss"] == "ce"
        assert info["n_classes"] == len(info["label"]) >= 2
        for size in (28, 64):
            assert re.fullmatch(r"[0-9a-f]{32}", info["md5"][size]), (flag, size)
            name = f"{flag}.npz" if size == 28 else f"{flag}_{size}.npz"
            assert info["url"][size] == f"https://zenodo.org/records/10519652/files/{name}?download=1"
    assert INFO["vesselmnist3d"]["md5"][28] == VESSEL_MD5
    assert INFO["vesselmnist3d"]["n_samples"] == {"train": 1335, "val": 191, "test": 382}
    assert INFO["organmnist3d"]["n_classes"] == 11 and INFO["fracturemnist3d"]["n_classes"] == 3
    assert len({INFO[f]["md5"][s] for f in FLAGS_3D for s in (28, 64)}) == 12  # all distinct


@pytest.mark.parametrize("flag", sorted(ALL_3D))
def test_load_synthetic_3d_every_flag(tmp_path, flag):
    ncls = INFO[flag]["n_classes"]
    arrs = _arrays3d(n_classes=ncls)
    _write(tmp_path / f"{flag}.npz", **arrs)
    ds = load_medmnist(flag, "val", data_dir=tmp_path, download=False)
    assert isinstance(ds, MedMNIST3D) and ds.ndim == 3 and ds.n_classes == ncls
    assert ds.images.shape == (3, 28, 28, 28) and ds.images.dtype == np.uint8
    assert ds.labels.shape == (3, 1) and ds.labels.dtype == np.int64
    x, y = ds[2]
    assert x.shape == (1, 28, 28, 28) and x.dtype == np.float32 and isinstance(y, int)
    np.testing.assert_allclose(x[0], arrs["val_images"][2] / 255.0, rtol=1e-6)
    xb, yb = ds.get_batch([2, 0])
    assert xb.shape == (2, 1, 28, 28, 28) and xb.dtype == np.float32
    np.testing.assert_array_equal(yb, arrs["val_labels"][[2, 0], 0])
    assert f"MedMNIST3D(flag='{flag}'" in repr(ds)


def test_load_3d_size64_subfolder_flat_labels_rgb(tmp_path):
    arrs = _arrays3d(size=64, n=(2, 1, 1), flat=True)
    _write(tmp_path / "medmnist" / "nodulemnist3d_64.npz", **arrs)
    ds = MedMNIST3D("nodulemnist3d", "train", size=64, data_dir=tmp_path, download=False, as_rgb=True)
    assert ds.images.shape == (2, 64, 64, 64) and ds.labels.shape == (2, 1)  # flat labels -> (N, 1)
    np.testing.assert_array_equal(ds.targets, arrs["train_labels"])
    x, _ = ds[0]
    assert x.shape == (3, 64, 64, 64) and ds.n_channels == 3
    np.testing.assert_array_equal(x[0], x[2])


def test_3d_dataloader_and_transform(tmp_path):
    _write(tmp_path / "vesselmnist3d.npz", **_arrays3d(n=(7, 1, 1)))
    calls = []

    def tf(a, rng=None):
        calls.append(a.shape)
        return a * 2

    ds = load_medmnist("vesselmnist3d", "train", data_dir=tmp_path, download=False, transform=tf)
    batches = list(DataLoader(ds, batch_size=4, shuffle=True, seed=0, prefetch=0))
    assert [tuple(b[0].shape) for b in batches] == [(4, 1, 28, 28, 28), (3, 1, 28, 28, 28)]
    assert calls == [(4, 1, 28, 28, 28), (3, 1, 28, 28, 28)]
    assert float(batches[0][0].numpy().max()) > 1.0
    assert batches[0][1].numpy().dtype == np.int64 and tuple(batches[0][1].shape) == (4,)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda a: a.__setitem__("train_images", np.zeros((6, 28, 28), np.uint8)),
         r"train_images has shape \(6, 28, 28\) but expected \(N, D, H, W\)"),
        (lambda a: a.__setitem__("train_images", np.zeros((6, 28, 28, 32), np.uint8)),
         r"expected 28x28x28 volumes for size=28"),
        (lambda a: a.__setitem__("train_images", np.zeros((6, 28, 28, 28), np.float32)),
         r"train_images has dtype float32 but expected uint8"),
        (lambda a: a.__setitem__("train_labels", np.full((6, 1), 2, np.uint8)),
         r"values in \[2, 2\] but expected labels in \[0, 1\] for vesselmnist3d"),
        (lambda a: a.__setitem__("train_labels", np.zeros((5, 1), np.uint8)),
         r"train_labels has 5 rows but train_images has 6 images"),
        (lambda a: a.pop("train_images"), r"missing key\(s\) \['train_images'\]"),
    ],
)
def test_bad_3d_files_are_refused(tmp_path, mutate, message):
    arrs = _arrays3d()
    mutate(arrs)
    _write(tmp_path / "vesselmnist3d.npz", **arrs)
    with pytest.raises(MedMNISTFileError, match=message):
        load_medmnist("vesselmnist3d", "train", data_dir=tmp_path, download=False)


def test_3d_argument_errors(tmp_path):
    with pytest.raises(ValueError, match=r"size must be one of \(28, 64\) for vesselmnist3d, got 128"):
        load_medmnist("vesselmnist3d", size=128, data_dir=tmp_path, download=False)
    with pytest.raises(ValueError, match="pneumoniamnist is a 2D MedMNIST flag"):
        MedMNIST3D("pneumoniamnist", data_dir=tmp_path, download=False)
    with pytest.raises(KeyError, match="known 3D flags: organmnist3d"):
        load_medmnist("brainmnist3d", data_dir=tmp_path)
    _write(tmp_path / "synapsemnist3d.npz", **_arrays3d(n=(3, 0, 1)))
    with pytest.raises(EmptySplitError, match="synapsemnist3d split 'val' is empty"):
        load_medmnist("synapsemnist3d", "val", data_dir=tmp_path, download=False)


def test_3d_offline_message(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError) as e:
        load_medmnist("adrenalmnist3d", size=64, data_dir=tmp_path / "empty", download=False)
    msg = str(e.value)
    assert "adrenalmnist3d_64.npz" in msg and str(tmp_path / "empty") in msg
    assert "https://zenodo.org/records/10519652/files/adrenalmnist3d_64.npz" in msg
    monkeypatch.setitem(INFO["fracturemnist3d"]["url"], 28, (tmp_path / "nowhere.npz").as_uri())
    with pytest.raises(FileNotFoundError, match="download failed") as e:  # offline / unreachable
        load_medmnist("fracturemnist3d", data_dir=tmp_path / "d", progress=False)
    assert "nowhere.npz" in str(e.value) and str(tmp_path / "d") in str(e.value)


def test_3d_download_md5_checked(tmp_path, monkeypatch, capsys):
    src = _write(tmp_path / "src" / "payload.npz", **_arrays3d(n_classes=3))
    md5 = hashlib.md5(src.read_bytes()).hexdigest()
    monkeypatch.setitem(INFO["fracturemnist3d"]["url"], 28, src.as_uri())
    monkeypatch.setitem(INFO["fracturemnist3d"]["md5"], 28, "f" * 32)
    dest = tmp_path / "data"
    with pytest.raises(DownloadError, match=f"expected {'f' * 32}, got {md5}"):
        load_medmnist("fracturemnist3d", data_dir=dest, progress=False)
    assert not dest.exists() or list(dest.iterdir()) == []
    monkeypatch.setitem(INFO["fracturemnist3d"]["md5"], 28, md5)
    monkeypatch.setitem(sys.modules, "tqdm", None)  # the one-line stderr progress
    ds = load_medmnist("fracturemnist3d", "test", data_dir=dest, progress=True)
    assert len(ds) == 4 and sorted(p.name for p in dest.iterdir()) == ["fracturemnist3d.npz"]
    assert "downloading fracturemnist3d.npz" in capsys.readouterr().err


def test_real_vesselmnist3d(data_dir):
    path = data_dir / "vesselmnist3d.npz"
    if not path.exists():
        pytest.skip("vesselmnist3d.npz is absent")
    assert md5sum(path) == VESSEL_MD5 == INFO["vesselmnist3d"]["md5"][28]
    sizes, positives = {}, {}
    for split in ("train", "val", "test"):
        ds = load_medmnist("vesselmnist3d", split, data_dir=data_dir, download=False)
        assert ds.images.shape[1:] == (28, 28, 28) and ds.images.dtype == np.uint8
        sizes[split], positives[split] = len(ds), int(ds.targets.sum())
    assert sizes == INFO["vesselmnist3d"]["n_samples"]
    assert positives == {"train": 150, "val": 22, "test": 43}
    xb, yb = ds.get_batch(np.arange(5))
    assert xb.shape == (5, 1, 28, 28, 28) and 0.0 <= xb.min() and xb.max() <= 1.0 and xb.max() > 0
