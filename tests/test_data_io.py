"""Image readers (real DICOM/NIfTI samples shipped with pydicom/nibabel, PNGs made here) and the
folder/CSV datasets."""

from __future__ import annotations

import os

import numpy as np
import pytest

from tinygrad_rad.data import (
    CSVImageDataset,
    DataLoader,
    ImageFolder,
    ImageReadError,
    read_image,
    read_nifti_slices,
)
from tinygrad_rad.data import transforms as T


def _png(path, arr):
    Image = pytest.importorskip("PIL.Image")
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


def _ct_small():
    pytest.importorskip("pydicom")
    from pydicom.data import get_testdata_file

    return get_testdata_file("CT_small.dcm")


def _anatomical():
    nib = pytest.importorskip("nibabel")
    path = os.path.join(os.path.dirname(nib.__file__), "tests", "data", "anatomical.nii")
    if not os.path.exists(path):
        pytest.skip("nibabel's test data is not installed")
    return path


def test_png_grey_and_rgb(tmp_path):
    g = np.arange(12 * 10, dtype=np.uint8).reshape(12, 10)
    x = read_image(_png(tmp_path / "g.png", g))
    assert x.shape == (1, 12, 10) and x.dtype == np.float32
    np.testing.assert_allclose(x[0], g / 255.0, rtol=1e-6)
    rgb = np.random.default_rng(0).integers(0, 256, (6, 7, 3), dtype=np.uint8)
    x = read_image(_png(tmp_path / "c.png", rgb))
    assert x.shape == (3, 6, 7)
    np.testing.assert_allclose(x, rgb.transpose(2, 0, 1) / 255.0, rtol=1e-6)
    g16 = (np.arange(20, dtype=np.uint16) * 3000).reshape(4, 5)
    x = read_image(_png(tmp_path / "g16.png", g16))
    np.testing.assert_allclose(x[0], g16 / 65535.0, rtol=1e-5)


def test_unreadable_files_name_the_path(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png at all")
    with pytest.raises(ImageReadError, match="broken.png"):
        read_image(bad)
    with pytest.raises(FileNotFoundError, match="missing.dcm"):
        read_image(tmp_path / "missing.dcm")
    bad_dcm = tmp_path / "broken.dcm"
    bad_dcm.write_bytes(b"\x00" * 10)
    with pytest.raises(ImageReadError, match="broken.dcm"):
        read_image(bad_dcm)
    with pytest.raises(ValueError, match="ct_window"):
        read_image(_png(tmp_path / "g.png", np.zeros((3, 3), np.uint8)), ct_window="lung")


def test_dicom_ct_rescale_and_windows():
    pydicom = pytest.importorskip("pydicom")
    path = _ct_small()
    ds = pydicom.dcmread(path)
    hu_ref = ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    hu = read_image(path, normalize=False)
    assert hu.shape == (1, 128, 128)
    np.testing.assert_allclose(hu[0], hu_ref)
    lung = read_image(path, ct_window="lung")
    np.testing.assert_allclose(lung[0], np.clip((hu_ref + 1350) / 1500, 0, 1), atol=1e-6)
    med = read_image(path, ct_window=(50, 350))
    np.testing.assert_allclose(med[0], np.clip((hu_ref + 125) / 350, 0, 1), atol=1e-6)
    bone = read_image(path, ct_window="bone")
    assert 0.0 <= bone.min() and bone.max() <= 1.0
    auto = read_image(path)  # no window in the file -> min-max
    assert auto.min() == 0.0 and auto.max() == 1.0


def test_dicom_mr_window_from_file_and_monochrome1(tmp_path):
    pydicom = pytest.importorskip("pydicom")
    from pydicom.data import get_testdata_file

    path = get_testdata_file("MR_small.dcm")
    ds = pydicom.dcmread(path)
    px = ds.pixel_array.astype(np.float64)
    c, w = float(ds.WindowCenter), float(ds.WindowWidth)
    x = read_image(path)
    assert x.shape == (1, 64, 64)
    np.testing.assert_allclose(x[0], np.clip((px - (c - w / 2)) / w, 0, 1), atol=1e-6)
    ds.PhotometricInterpretation = "MONOCHROME1"
    inv = tmp_path / "mono1.dcm"
    ds.save_as(inv)
    np.testing.assert_allclose(read_image(inv), 1.0 - x, atol=1e-6)


def test_nifti_slices():
    nib = pytest.importorskip("nibabel")
    path = _anatomical()
    vol = np.asarray(nib.as_closest_canonical(nib.load(path)).dataobj, dtype=np.float64)
    depth = vol.shape[2]
    mid = read_image(path)
    assert mid.shape == (1, vol.shape[1], vol.shape[0]) and mid.dtype == np.float32
    raw = read_image(path, normalize=False, slice_index=3)
    np.testing.assert_allclose(raw[0], vol[:, :, 3].T[::-1, ::-1])
    slices = read_nifti_slices(path)
    assert slices.shape == (depth, 1, vol.shape[1], vol.shape[0])
    assert slices.min() == 0.0 and slices.max() == 1.0
    lo, hi = vol.min(), vol.max()
    np.testing.assert_allclose(slices[depth // 2, 0], (vol[:, :, depth // 2].T[::-1, ::-1] - lo) / (hi - lo),
                               atol=1e-6)
    assert read_nifti_slices(path, indices=[0, -1]).shape[0] == 2
    with pytest.raises(IndexError, match="out of range"):
        read_image(path, slice_index=depth)


def test_image_folder_and_loader(tmp_path):
    rng = np.random.default_rng(0)
    for cls, n in (("pneumonia", 3), ("normal", 2)):
        for i in range(n):
            _png(tmp_path / "train" / cls / f"{i}.png", rng.integers(0, 256, (10 + i, 12), dtype=np.uint8))
    (tmp_path / "train" / "normal" / "notes.txt").write_text("not an image")
    ds = ImageFolder(tmp_path / "train", transform=T.Resize(8))
    assert ds.classes == ["normal", "pneumonia"] and ds.class_to_idx == {"normal": 0, "pneumonia": 1}
    assert len(ds) == 5 and ds.targets.tolist() == [0, 0, 1, 1, 1]
    x, y = ds[2]
    assert x.shape == (1, 8, 8) and y == 1
    xb, yb = next(iter(DataLoader(ds, batch_size=5)))
    assert xb.shape == (5, 1, 8, 8) and yb.numpy().tolist() == [0, 0, 1, 1, 1]
    with pytest.raises(FileNotFoundError, match="no class sub-folders"):
        ImageFolder(tmp_path / "train" / "normal")
    with pytest.raises(FileNotFoundError, match="not a folder"):
        ImageFolder(tmp_path / "nope")


def test_csv_dataset(tmp_path):
    _png(tmp_path / "img" / "a.png", np.zeros((5, 5), np.uint8))
    _png(tmp_path / "img" / "b.png", np.full((5, 5), 255, np.uint8))
    (tmp_path / "labels.csv").write_text("path,label\nimg/a.png,normal\nimg/b.png,pneumonia\n")
    ds = CSVImageDataset(tmp_path / "labels.csv")
    assert ds.classes == ["normal", "pneumonia"] and ds.targets.tolist() == [0, 1]
    x, y = ds[1]
    assert y == 1 and float(x.max()) == 1.0
    (tmp_path / "ints.csv").write_text("path,label\na.png,2\nb.png,0\n")
    ds = CSVImageDataset(tmp_path / "ints.csv", root=tmp_path / "img")
    assert ds.targets.tolist() == [2, 0] and ds[0][0].shape == (1, 5, 5)
    (tmp_path / "bad.csv").write_text("file,label\na.png,0\n")
    with pytest.raises(ValueError, match="no column 'path'"):
        CSVImageDataset(tmp_path / "bad.csv")
    (tmp_path / "missing.csv").write_text("path,label\nimg/zzz.png,0\n")
    with pytest.raises(FileNotFoundError, match="zzz.png"):
        CSVImageDataset(tmp_path / "missing.csv")[0]


def test_npy_images_are_read_safely(tmp_path):
    from tinygrad_rad.data import NumpyFileError, read_image

    np.save(tmp_path / "g.npy", np.array([[0, 255], [51, 102]], np.uint8))
    x = read_image(tmp_path / "g.npy")
    assert x.shape == (1, 2, 2) and x.dtype == np.float32
    np.testing.assert_allclose(x[0], [[0, 1], [0.2, 0.4]], rtol=1e-6)
    np.save(tmp_path / "rgb.npy", np.zeros((4, 5, 3), np.uint16))
    assert read_image(tmp_path / "rgb.npy").shape == (3, 4, 5)
    np.save(tmp_path / "hu.npy", np.array([[-1000, 400]], np.int16))
    np.testing.assert_allclose(read_image(tmp_path / "hu.npy", ct_window=(-300, 1400))[0], [[0, 1]])
    np.testing.assert_array_equal(read_image(tmp_path / "hu.npy", normalize=False)[0], [[-1000, 400]])
    np.save(tmp_path / "obj.npy", np.array([None], dtype=object), allow_pickle=True)
    with pytest.raises(NumpyFileError, match=r"image .*obj.npy contains Python objects \(pickle\)"):
        read_image(tmp_path / "obj.npy")
    (tmp_path / "e.npy").write_bytes(b"")
    with pytest.raises(NumpyFileError, match=r"e.npy is empty"):
        read_image(tmp_path / "e.npy")
