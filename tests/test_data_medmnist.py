"""MedMNIST loading: synthetic files (good and bad), download path (file:// URLs), the real file."""

from __future__ import annotations

import hashlib
import re
import sys

import numpy as np
import pytest

from tinygrad_rad.data import (
    FLAGS,
    INFO,
    DownloadError,
    MedMNISTFileError,
    download_url,
    load_medmnist,
    medmnist_filename,
    resolve_data_dir,
)

ALL_2D = {
    "pneumoniamnist", "breastmnist", "chestmnist", "dermamnist", "octmnist", "organamnist",
    "organcmnist", "organsmnist", "pathmnist", "bloodmnist", "tissuemnist", "retinamnist",
}  # fmt: skip


def _arrays(n_channels=1, n_labels=1, n_classes=2, size=28, n=(10, 4, 6), seed=0):
    rng = np.random.default_rng(seed)
    out = {}
    for split, k in zip(("train", "val", "test"), n):
        shape = (k, size, size) if n_channels == 1 else (k, size, size, 3)
        out[f"{split}_images"] = rng.integers(0, 256, shape, dtype=np.uint8)
        out[f"{split}_labels"] = rng.integers(0, n_classes, (k, n_labels)).astype(np.uint8)
    return out


def _write(path, **arrays):
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return path


def test_registry_is_complete():
    assert set(FLAGS) == ALL_2D
    for flag, info in INFO.items():
        assert info["task"] in ("binary-class", "multi-class", "multi-label", "ordinal-regression")
        assert info["n_classes"] == len(info["label"]) >= 2
        assert info["n_channels"] in (1, 3)
        assert set(info["n_samples"]) == {"train", "val", "test"}
        assert info["sizes"] == ((28, 64, 128, 224) if flag in ALL_2D else (28, 64)), flag
        assert info["ndim"] == (2 if flag in ALL_2D else 3)
        assert set(info["md5"]) == set(info["url"]) == set(info["sizes"])
        for size in info["sizes"]:
            assert re.fullmatch(r"[0-9a-f]{32}", info["md5"][size]), (flag, size)
            assert info["url"][size].startswith("https://zenodo.org/records/10519652/files/" + (
                f"{flag}.npz" if size == 28 else f"{flag}_{size}.npz"))
    assert INFO["chestmnist"]["task"] == "multi-label" and INFO["chestmnist"]["loss"] == "bce"
    assert INFO["pneumoniamnist"]["loss"] == "ce" and INFO["pneumoniamnist"]["md5"][28] == (
        "28209eda62fecd6e6a2d98b1501bb15f")
    assert medmnist_filename("bloodmnist", 64) == "bloodmnist_64.npz"


def test_load_synthetic_binary(tmp_path):
    arrs = _arrays()
    _write(tmp_path / "pneumoniamnist.npz", **arrs)
    ds = load_medmnist("pneumoniamnist", "val", data_dir=tmp_path, download=False)
    assert len(ds) == 4 and ds.task == "binary-class" and ds.info["task"] == "binary-class"
    assert ds.images.dtype == np.uint8 and ds.images.shape == (4, 28, 28)
    assert ds.labels.dtype == np.int64 and ds.labels.shape == (4, 1)
    x, y = ds[1]
    assert x.shape == (1, 28, 28) and x.dtype == np.float32
    np.testing.assert_allclose(x[0], arrs["val_images"][1] / 255.0, rtol=1e-6)
    assert y == int(arrs["val_labels"][1, 0]) and isinstance(y, int)
    xb, yb = ds.get_batch([3, 0])
    assert xb.shape == (2, 1, 28, 28) and yb.dtype == np.int64 and yb.shape == (2,)
    np.testing.assert_array_equal(yb, arrs["val_labels"][[3, 0], 0])
    ds3 = load_medmnist("pneumoniamnist", "test", data_dir=tmp_path, download=False, as_rgb=True,
                        transform=lambda a, rng=None: a * 2)
    x3, _ = ds3[0]
    assert x3.shape == (3, 28, 28)
    np.testing.assert_allclose(x3[2], arrs["test_images"][0].astype(np.float64) * 2 / 255.0, rtol=1e-6)
    with pytest.raises(IndexError):
        ds[4]


def test_load_rgb_and_multilabel_and_subfolder(tmp_path, monkeypatch):
    _write(tmp_path / "medmnist" / "dermamnist_64.npz", **_arrays(3, 1, 7, size=64))
    ds = load_medmnist("dermamnist", "train", size=64, data_dir=tmp_path, download=False)
    assert ds.images.shape == (10, 64, 64, 3) and ds[0][0].shape == (3, 64, 64)
    _write(tmp_path / "chestmnist.npz", **_arrays(1, 14, 2))
    monkeypatch.setenv("TINYGRAD_RAD_DATA", str(tmp_path))
    assert resolve_data_dir() == tmp_path
    ds = load_medmnist("chestmnist", "train", download=False)  # found through the env variable
    assert ds.task == "multi-label" and ds.info["loss"] == "bce"
    x, y = ds[0]
    assert y.shape == (14,) and y.dtype == np.int64
    assert ds.get_batch(np.arange(3))[1].shape == (3, 14)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda a: a.pop("train_labels"), r"missing key\(s\) \['train_labels'\]"),
        (lambda a: a.__setitem__("train_labels", np.zeros((10, 2), np.uint8)),
         r"train_labels has shape \(10, 2\) but expected \(N, 1\)"),
        (lambda a: a.__setitem__("train_images", np.zeros((10, 28, 28), np.float32)),
         r"train_images has dtype float32 but expected uint8"),
        (lambda a: a.__setitem__("train_images", np.zeros((10, 32, 32), np.uint8)),
         r"expected 28x28 images"),
        (lambda a: a.__setitem__("train_images", np.zeros((10, 28, 28, 3), np.uint8)),
         r"train_images has shape \(10, 28, 28, 3\) but expected \(N, H, W\)"),
        (lambda a: a.__setitem__("train_labels", np.zeros((9, 1), np.uint8)),
         r"train_labels has 9 rows but train_images has 10 images"),
        (lambda a: a.__setitem__("train_labels", np.full((10, 1), 2, np.uint8)),
         r"values in \[2, 2\] but expected labels in \[0, 1\]"),
        (lambda a: a.__setitem__("train_labels", np.zeros((10, 1), np.float32)),
         r"train_labels has dtype float32 but expected an integer dtype"),
        (lambda a: a.__setitem__("train_labels", np.array([[None]] * 10, dtype=object)),
         r"contains Python objects \(pickle\); tinygrad_rad never unpickles files"),
    ],
)
def test_bad_files_are_refused(tmp_path, mutate, message):
    arrs = _arrays()
    mutate(arrs)
    _write(tmp_path / "pneumoniamnist.npz", **arrs)
    with pytest.raises(MedMNISTFileError, match=message):
        load_medmnist("pneumoniamnist", "train", data_dir=tmp_path, download=False)


def test_not_an_npz(tmp_path):
    (tmp_path / "breastmnist.npz").write_bytes(b"this is not a zip file")
    with pytest.raises(MedMNISTFileError, match="breastmnist.npz is not a valid .npz file"):
        load_medmnist("breastmnist", data_dir=tmp_path, download=False)
    with pytest.raises(KeyError, match="unknown MedMNIST flag"):
        load_medmnist("kneemnist", data_dir=tmp_path)
    with pytest.raises(ValueError, match="split must be"):
        load_medmnist("breastmnist", "training", data_dir=tmp_path)


def test_missing_file_offline_message(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        load_medmnist("breastmnist", data_dir=tmp_path / "empty", download=False)
    msg = str(e.value)
    assert "breastmnist.npz" in msg and str(tmp_path / "empty") in msg
    assert "https://zenodo.org/records/10519652/files/breastmnist.npz" in msg


def _source(tmp_path):
    src = _write(tmp_path / "src" / "payload.npz", **_arrays())
    return src, src.as_uri(), hashlib.md5(src.read_bytes()).hexdigest()


def test_download_checked_and_atomic(tmp_path, monkeypatch):
    src, url, md5 = _source(tmp_path)
    monkeypatch.setitem(INFO["breastmnist"]["url"], 28, url)
    monkeypatch.setitem(INFO["breastmnist"]["md5"], 28, md5)
    dest = tmp_path / "data"
    ds = load_medmnist("breastmnist", "train", data_dir=dest, progress=False)
    assert len(ds) == 10 and (dest / "breastmnist.npz").read_bytes() == src.read_bytes()
    assert sorted(p.name for p in dest.iterdir()) == ["breastmnist.npz"]  # no temp files left


def test_download_md5_mismatch_and_offline(tmp_path, monkeypatch, capsys):
    src, url, md5 = _source(tmp_path)
    monkeypatch.setitem(INFO["breastmnist"]["url"], 28, url)
    monkeypatch.setitem(INFO["breastmnist"]["md5"], 28, "0" * 32)
    dest = tmp_path / "data"
    with pytest.raises(DownloadError, match=f"expected {'0' * 32}, got {md5}"):
        load_medmnist("breastmnist", data_dir=dest, progress=False)
    assert not dest.exists() or list(dest.iterdir()) == []
    monkeypatch.setitem(INFO["breastmnist"]["md5"], 28, None)
    with pytest.raises(DownloadError, match="no official MD5"):
        load_medmnist("breastmnist", data_dir=dest)
    monkeypatch.setitem(INFO["breastmnist"]["url"], 28, (tmp_path / "nowhere.npz").as_uri())
    monkeypatch.setitem(INFO["breastmnist"]["md5"], 28, md5)
    with pytest.raises(FileNotFoundError, match="download failed") as e:
        load_medmnist("breastmnist", data_dir=dest, progress=False)
    assert str(dest) in str(e.value) and "nowhere.npz" in str(e.value)
    # without tqdm the progress is one stderr line
    monkeypatch.setitem(sys.modules, "tqdm", None)
    out = download_url(url, tmp_path / "x.npz", md5=md5, progress=True)
    assert out.read_bytes() == src.read_bytes()
    assert "downloading x.npz" in capsys.readouterr().err
    with pytest.raises(DownloadError, match="unverified"):
        download_url(url, tmp_path / "y.npz", md5=None)
    assert download_url(url, tmp_path / "y.npz", md5=None, allow_unverified=True, progress=False).exists()


def test_existing_file_is_not_md5_checked(tmp_path, monkeypatch):
    # the local file differs from the official one (like the deduplicated shared pneumoniamnist)
    _write(tmp_path / "pneumoniamnist.npz", **_arrays())
    monkeypatch.setitem(INFO["pneumoniamnist"]["url"], 28, (tmp_path / "nowhere").as_uri())
    assert len(load_medmnist("pneumoniamnist", data_dir=tmp_path)) == 10


def test_real_pneumoniamnist(data_dir):
    if not (data_dir / "pneumoniamnist.npz").exists():
        pytest.skip("pneumoniamnist.npz is absent")
    sizes = {}
    for split in ("train", "val", "test"):
        ds = load_medmnist("pneumoniamnist", split, data_dir=data_dir, download=False)
        sizes[split] = len(ds)
        assert ds.images.shape[1:] == (28, 28) and ds.images.dtype == np.uint8
        assert set(np.unique(ds.labels).tolist()) == {0, 1}
    assert sizes == {"train": 4690, "val": 524, "test": 624}
    test = load_medmnist("pneumoniamnist", "test", data_dir=data_dir, download=False)
    assert np.bincount(test.targets).tolist() == [234, 390]


def test_flat_labels_load_as_column(tmp_path):
    arrs = _arrays()
    flat = {k: (v[:, 0] if k.endswith("_labels") else v) for k, v in arrs.items()}
    _write(tmp_path / "pneumoniamnist.npz", **flat)
    ds = load_medmnist("pneumoniamnist", "train", data_dir=tmp_path, download=False)
    assert ds.labels.shape == (10, 1) and ds.labels.dtype == np.int64
    np.testing.assert_array_equal(ds.labels, arrs["train_labels"].astype(np.int64))
    assert ds.get_batch(np.arange(3))[1].shape == (3,)
    # multi-label files still need (N, L): a flat array is refused with the expected shape
    ml = _arrays(n_labels=14)
    ml["train_labels"] = ml["train_labels"][:, 0]
    _write(tmp_path / "chestmnist.npz", **ml)
    with pytest.raises(MedMNISTFileError, match=r"train_labels has shape \(10,\) but expected \(N, 14\)"):
        load_medmnist("chestmnist", "train", data_dir=tmp_path, download=False)


def test_empty_split_is_refused_when_loading(tmp_path):
    from tinygrad_rad.data import EmptySplitError, check_not_empty

    _write(tmp_path / "pneumoniamnist.npz", **_arrays(n=(10, 4, 0)))
    assert len(load_medmnist("pneumoniamnist", "train", data_dir=tmp_path, download=False)) == 10
    with pytest.raises(EmptySplitError, match=r"MedMNIST pneumoniamnist split 'test' is empty \(0 images"):
        load_medmnist("pneumoniamnist", "test", data_dir=tmp_path, download=False)
    ds = load_medmnist("pneumoniamnist", "test", data_dir=tmp_path, download=False, allow_empty=True)
    assert len(ds) == 0 and ds.labels.shape == (0, 1)
    with pytest.raises(EmptySplitError, match=r"pneumoniamnist test is empty \(0 samples\) in .*mnist.npz"):
        check_not_empty(ds, "pneumoniamnist test")
    assert issubclass(EmptySplitError, ValueError)
