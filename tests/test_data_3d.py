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


# ------------------------------------------------------------------------------ volumes from files
# One synthetic patient: V[d, h, w] in HU on LPS axes (d -> S, h -> P, w -> L), origin at (0, 0, 0).
SHAPE, SPACING = (4, 5, 6), (2.5, 0.8, 0.7)


def _patient(seed=0):
    return (np.random.default_rng(seed).integers(-500, 500, SHAPE) * 2).astype(np.float32)


def _nifti(path, data, affine, slope=None, inter=None):
    nib = pytest.importorskip("nibabel")
    img = nib.Nifti1Image(data, affine)
    if slope is not None:
        img.header.set_slope_inter(slope, inter)
    nib.save(img, str(path))
    return path


def _dicom_slice(path, pixels, ipp, iop, pixel_spacing, series_uid, slope=1.0, intercept=0.0, instance=1):
    pydicom = pytest.importorskip("pydicom")
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.SeriesInstanceUID, ds.InstanceNumber = "CT", series_uid, instance
    ds.ImagePositionPatient = [float(v) for v in ipp]
    ds.ImageOrientationPatient = [float(v) for v in iop]
    ds.PixelSpacing = [float(v) for v in pixel_spacing]
    ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    raw = np.round((pixels - intercept) / slope).astype(np.int16)
    ds.Rows, ds.Columns = raw.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.PixelData = raw.tobytes()
    ds.save_as(str(path), enforce_file_format=True)
    assert pydicom.dcmread(str(path)).pixel_array.shape == raw.shape
    return path


def _axial_series(folder, vol, uid="1.2.3.1", seed=0, spacing=SPACING, iop=(1, 0, 0, 0, 1, 0), z0=0.0):
    """One file per axial slice, in a shuffled order of file names, slope/intercept varying per slice."""
    folder.mkdir(parents=True, exist_ok=True)
    names = np.random.default_rng(seed).permutation(vol.shape[0])
    sd, sh, sw = spacing
    for k in range(vol.shape[0]):
        slope = 2.0 if k % 2 else 1.0
        _dicom_slice(folder / f"IM{names[k]:04d}", vol[k], (0.0, 0.0, z0 + k * sd), iop, (sh, sw), uid,
                     slope=slope, intercept=-1024.0 + 2 * k, instance=int(names[k]) + 1)
    return folder


def test_nifti_canonical_orientation_spacing_and_slope(tmp_path):
    v = _patient()
    sd, sh, sw = SPACING
    # the same patient stored three ways: RAS+ (x, y, z), LAS (x flipped), and permuted axes (d, h, w)
    ras = np.ascontiguousarray(v.transpose(2, 1, 0)[::-1, ::-1, :])        # a[x, y, z], x -> R, y -> A
    aff_ras = np.diag([sw, sh, sd, 1.0])
    aff_ras[:3, 3] = [-(SHAPE[2] - 1) * sw, -(SHAPE[1] - 1) * sh, 0.0]    # LPS origin (0, 0, 0)
    las = np.ascontiguousarray(ras[::-1])
    aff_las = aff_ras.copy()
    aff_las[0, 0], aff_las[0, 3] = -sw, 0.0
    aff_dhw = np.array([[0, 0, -sw, 0], [0, -sh, 0, 0], [sd, 0, 0, 0], [0, 0, 0, 1]], float)
    from tinygrad_rad.data.volumes import Volume, read_nifti_volume

    for name, data, aff in (("ras", ras, aff_ras), ("las", las, aff_las), ("dhw", v, aff_dhw)):
        vol = read_nifti_volume(_nifti(tmp_path / f"{name}.nii.gz", data, aff))
        assert isinstance(vol, Volume) and vol.array.dtype == np.float32, name
        np.testing.assert_array_equal(vol.array, v, err_msg=name)
        np.testing.assert_allclose(vol.spacing, SPACING, rtol=1e-6)
        np.testing.assert_allclose(vol.affine @ [0, 0, 0, 1], [0, 0, 0, 1], atol=1e-6)
        np.testing.assert_allclose(vol.affine @ [1, 2, 3, 1], [3 * sw, 2 * sh, sd, 1], atol=1e-5)
    # scl_slope / scl_inter give HU; axial slices agree with the 2D reader
    raw = ((v + 1024) / 2).astype(np.int16)
    p = _nifti(tmp_path / "scaled.nii", raw, aff_dhw, slope=2.0, inter=-1024.0)
    arr, spacing, affine = read_nifti_volume(p)
    np.testing.assert_array_equal(arr, v)
    from tinygrad_rad.data import read_nifti_slices

    np.testing.assert_array_equal(read_nifti_slices(p, normalize=False)[:, 0], arr)


def test_nifti_4d_2d_and_errors(tmp_path):
    from tinygrad_rad.data.volumes import ImageReadError, read_nifti_volume, read_volume

    four = np.stack([np.full((3, 4, 5), k, np.float32) for k in range(3)], axis=-1)
    p = _nifti(tmp_path / "t.nii", four, np.eye(4))
    assert read_nifti_volume(p).array.shape == (5, 4, 3) and read_nifti_volume(p, frame=2).array.max() == 2
    with pytest.raises(IndexError, match="frame 3 out of range"):
        read_nifti_volume(p, frame=3)
    flat = _nifti(tmp_path / "s.nii", np.ones((3, 4), np.float32), np.eye(4))
    assert read_volume(flat).array.shape == (1, 4, 3)
    (tmp_path / "bad.nii.gz").write_bytes(b"not a nifti file at all")
    with pytest.raises(ImageReadError, match="cannot read NIfTI .*bad.nii.gz"):
        read_nifti_volume(tmp_path / "bad.nii.gz")
    with pytest.raises(FileNotFoundError, match="nothere.nii"):
        read_nifti_volume(tmp_path / "nothere.nii")
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(ImageReadError, match="expected a NIfTI file"):
        read_volume(tmp_path / "x.txt")


def test_nifti_real_sample():
    nib = pytest.importorskip("nibabel")
    from pathlib import Path

    from tinygrad_rad.data.volumes import read_nifti_volume

    path = Path(nib.__file__).parent / "tests" / "data" / "anatomical.nii"
    if not path.exists():
        pytest.skip("nibabel's anatomical.nii sample is absent")
    can = nib.as_closest_canonical(nib.load(str(path)))
    arr, spacing, affine = read_nifti_volume(path)
    ref = np.asarray(can.dataobj, np.float32)
    np.testing.assert_array_equal(arr, ref.transpose(2, 1, 0)[:, ::-1, ::-1])
    np.testing.assert_allclose(spacing, can.header.get_zooms()[:3][::-1], rtol=1e-5)
    # the affine places voxel (d, h, w) where nibabel places it (LPS = RAS with x, y negated)
    d, h, w = 3, 5, 7
    i, j, k = ref.shape[0] - 1 - w, ref.shape[1] - 1 - h, d
    np.testing.assert_allclose(affine @ [d, h, w, 1], np.diag([-1, -1, 1, 1]) @ can.affine @ [i, j, k, 1],
                               atol=1e-4)


def test_dicom_series_sorted_rescaled_spaced(tmp_path):
    from tinygrad_rad.data.volumes import read_dicom_series, read_volume

    v = _patient()
    folder = _axial_series(tmp_path / "ct", v)
    (folder / "README.txt").write_text("not a DICOM file")  # skipped
    vol = read_dicom_series(folder)
    np.testing.assert_array_equal(vol.array, v)  # sorted by position, HU per slice
    np.testing.assert_allclose(vol.spacing, SPACING, rtol=1e-6)
    np.testing.assert_allclose(vol.affine @ [1, 2, 3, 1], [3 * SPACING[2], 2 * SPACING[1], SPACING[0], 1])
    np.testing.assert_array_equal(read_volume(folder).array, v)
    np.testing.assert_array_equal(read_volume(next(folder.glob("IM*"))).array, v)  # a file: its series
    # a sagittal acquisition of the same patient reads as the same LPS volume
    sag = tmp_path / "sag"
    sag.mkdir()
    sd, sh, sw = SPACING
    for k, w in enumerate(np.random.default_rng(1).permutation(SHAPE[2])):
        img = v[::-1, :, w]  # rows: superior -> inferior, columns: anterior -> posterior
        _dicom_slice(sag / f"s{k}.dcm", img, (w * sw, 0.0, (SHAPE[0] - 1) * sd), (0, 1, 0, 0, 0, -1),
                     (sd, sh), "1.2.3.9", intercept=-1024.0)
    vol2 = read_dicom_series(sag)
    np.testing.assert_array_equal(vol2.array, v)
    np.testing.assert_allclose(vol2.spacing, SPACING, rtol=1e-6)
    np.testing.assert_allclose(vol2.affine, vol.affine, atol=1e-6)


def test_dicom_series_errors(tmp_path):
    from tinygrad_rad.data.volumes import DicomSeriesError, read_dicom_series

    v = _patient()
    empty = tmp_path / "notes"
    empty.mkdir()
    (empty / "a.txt").write_text("hello")
    with pytest.raises(DicomSeriesError, match=f"no DICOM image files in {empty}"):
        read_dicom_series(empty)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_dicom_series(tmp_path / "nowhere")
    # two series in one folder: refused (naming both), or one picked by series_uid
    mixed = _axial_series(tmp_path / "mixed", v, uid="1.2.3.1")
    _dicom_slice(mixed / "other.dcm", v[0], (0, 0, 0), (1, 0, 0, 0, 1, 0), SPACING[1:], "1.2.3.2")
    want = re.escape(str(mixed)) + r" mixes 2 series .*1\.2\.3\.1 \(4 files.*1\.2\.3\.2 \(1 files"
    with pytest.raises(DicomSeriesError, match=want):
        read_dicom_series(mixed)
    np.testing.assert_array_equal(read_dicom_series(mixed, series_uid="1.2.3.1").array, v)
    assert read_dicom_series(mixed, series_uid="1.2.3.2").array.shape == (1, 5, 6)
    with pytest.raises(DicomSeriesError, match="has no series 9.9"):
        read_dicom_series(mixed, series_uid="9.9")
    # one series, but a slice of another orientation / size / at a duplicate position / a gap
    for name, pix, ipp, iop, match in (
        ("orient", v[0], (0, 0, 10.0), (0, 1, 0, 0, 0, -1), "different orientation"),
        ("size", v[0, :4], (0, 0, 10.0), (1, 0, 0, 0, 1, 0), r"different size \(Rows x Columns\): 5x6"),
        ("dup", v[0], (0, 0, 2.5), (1, 0, 0, 0, 1, 0), "lie at the same position"),
        ("gap", v[0], (0, 0, 20.0), (1, 0, 0, 0, 1, 0), "uneven slice spacing"),
    ):
        f = _axial_series(tmp_path / name, v)
        _dicom_slice(f / "extra.dcm", pix, ipp, iop, SPACING[1:], "1.2.3.1")
        with pytest.raises(DicomSeriesError, match=match) as e:
            read_dicom_series(f)
        assert str(f) in str(e.value)


def test_dicom_real_sample_single_slice(tmp_path):
    pydicom = pytest.importorskip("pydicom")
    import shutil

    from pydicom.data import get_testdata_file

    from tinygrad_rad.data import read_dicom
    from tinygrad_rad.data.volumes import read_dicom_series

    src = get_testdata_file("CT_small.dcm")
    shutil.copy(src, tmp_path / "CT_small.dcm")
    vol = read_dicom_series(tmp_path)
    ds = pydicom.dcmread(src)
    assert vol.array.shape == (1, int(ds.Rows), int(ds.Columns))
    np.testing.assert_allclose(vol.spacing[1:], [float(x) for x in ds.PixelSpacing], rtol=1e-6)
    np.testing.assert_allclose(vol.array[0], read_dicom(src, normalize=False)[0], rtol=1e-6)


def test_resample_volume():
    from tinygrad_rad.data.volumes import Volume, resample_volume

    d, h, w = np.meshgrid(np.arange(6.0), np.arange(8.0), np.arange(10.0), indexing="ij")
    ramp = (3 * d + 2 * h - w).astype(np.float32)
    out, sp = resample_volume(ramp, (2.0, 1.0, 1.0), (1.0, 0.5, 2.0))
    assert out.shape == (12, 16, 5) and sp == (1.0, 0.5, 2.0) and out.dtype == np.float32
    dd, hh, ww = np.meshgrid(np.arange(12) * 0.5, np.arange(16) * 0.5, np.arange(5) * 2.0, indexing="ij")
    inside = (dd <= 5) & (hh <= 7)
    np.testing.assert_allclose(out[inside], (3 * dd + 2 * hh - ww)[inside], atol=1e-5)  # linear is exact
    np.testing.assert_array_equal(out[-1], out[-2])  # past the last voxel: the edge repeats
    same, sp2 = resample_volume(ramp, 1.5, 1.5)
    np.testing.assert_array_equal(same, ramp)
    # masks: nearest keeps the dtype and the label set; 2x down picks every other voxel
    mask = np.random.default_rng(0).integers(0, 3, (6, 8, 10)).astype(np.uint8)
    m2, _ = resample_volume(mask, 1.0, 2.0, order=0)
    assert m2.dtype == np.uint8 and m2.shape == (3, 4, 5)
    np.testing.assert_array_equal(m2, mask[::2, ::2, ::2])
    up, _ = resample_volume(mask, 2.0, 1.0, order=0)
    assert set(np.unique(up)) <= {0, 1, 2} and up.shape == (12, 16, 20)
    # leading axes (channels) ride along; Volume.resample keeps the origin and rescales the affine
    two, _ = resample_volume(np.stack([ramp, -ramp]), 1.0, 2.0)
    np.testing.assert_allclose(two[1], -two[0])
    vol = Volume(ramp, (2.0, 1.0, 1.0), np.diag([2.0, 1.0, 1.0, 1.0]))
    iso = vol.resample(1.0)
    assert iso.array.shape == (12, 8, 10) and iso.spacing == (1.0, 1.0, 1.0)
    np.testing.assert_allclose(iso.affine, np.eye(4))
    with pytest.raises(ValueError, match="spacings must be finite and > 0"):
        resample_volume(ramp, 1.0, 0.0)
    with pytest.raises(ValueError, match="order must be 0"):
        resample_volume(ramp, 1.0, 2.0, order=3)
    with pytest.raises(ValueError, match=r"needs a \(D, H, W\) array"):
        resample_volume(np.zeros((4, 4)), 1.0, 2.0)


def test_ct_window_on_volumes():
    from tinygrad_rad.data.transforms import CTWindow, ct_window

    hu = np.array([[[-1350.0, -600.0], [150.0, 2000.0]]], np.float32)  # (1, 2, 2)
    np.testing.assert_allclose(ct_window(hu, -600, 1500), [[[0.0, 0.5], [1.0, 1.0]]])
    np.testing.assert_allclose(CTWindow("lung")(hu[None, None]), ct_window(hu, "lung")[None, None])
    assert ct_window(hu, 40, 400).dtype == np.float32 and ct_window(hu, 40, 400).max() == 1.0


# ------------------------------------------------------------------------------ 3D transforms
def _vols(*shape, seed=0):
    return np.random.default_rng(seed).random(shape).astype(np.float32)


def _all_3d_aug():
    from tinygrad_rad.data import transforms as T
    from tinygrad_rad.data import transforms3d as T3

    return T.Compose([T3.RandomFlip3d(), T3.RandomAffine3d(8, translate=0.05, scale=(0.95, 1.05), p=0.7),
                      T3.RandomShift3d(2), T3.RandomIntensity3d(0.1, 0.1, p=0.5), T3.Normalize3d(0.5, 0.5)])


def test_3d_transforms_are_seeded():
    x = _vols(5, 1, 9, 10, 11)
    aug = _all_3d_aug()
    a = aug(x, rng=np.random.default_rng(3))
    b = aug(x, rng=np.random.default_rng(3))
    c = aug(x, rng=np.random.default_rng(4))
    assert a.shape == x.shape and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    # batched == one volume at a time with the same per-volume draws (flip: one (N, 3) draw)
    from tinygrad_rad.data import transforms3d as T3

    flip = T3.RandomFlip3d()
    fb = flip(x, rng=np.random.default_rng(0))
    draws = np.random.default_rng(0).random((5, 3)) < 0.5
    for i in range(5):
        np.testing.assert_array_equal(fb[i], T3.flip3d(x[i], np.flatnonzero(draws[i])))
    assert flip(x[0], rng=np.random.default_rng(0)).shape == x[0].shape  # one (C, D, H, W) volume


def test_flips_are_exact_involutions():
    from tinygrad_rad.data import transforms3d as T3

    x = _vols(3, 2, 4, 5, 6)
    for axes in ((0,), (1,), (2,), (0, 1), (0, 2), (1, 2), (0, 1, 2)):
        np.testing.assert_array_equal(T3.flip3d(T3.flip3d(x, axes), axes), x)
    np.testing.assert_array_equal(T3.flip3d(x, (2,)), x[..., ::-1])
    np.testing.assert_array_equal(T3.RandomFlip3d(p=1.0, axes=(0,))(x), x[:, :, ::-1])
    np.testing.assert_array_equal(T3.RandomFlip3d(p=0.0)(x), x)
    flip = T3.RandomFlip3d(p=0.5)
    once = flip(x, rng=np.random.default_rng(9))
    np.testing.assert_array_equal(flip(once, rng=np.random.default_rng(9)), x)  # same draws undo it
    with pytest.raises(ValueError, match="axes must be among"):
        T3.RandomFlip3d(axes=(3,))


def test_rotation_by_zero_is_identity_and_quarter_turns():
    from tinygrad_rad.data import transforms3d as T3

    x = _vols(2, 1, 7, 7, 7)
    np.testing.assert_array_equal(T3.RandomRotation3d(0)(x, rng=np.random.default_rng(0)), x)
    np.testing.assert_array_equal(T3.RandomAffine3d(0, translate=0.0, scale=(1, 1))(x), x)
    ident = T3.affine_matrices3d(np.zeros((1, 3)), np.zeros((1, 3)), 1.0, (7, 7, 7))
    np.testing.assert_array_equal(ident[0], np.eye(3, 4))
    # +90 degrees about D, H, W = np.rot90 in the (H, W), (D, W), (D, H) planes (counter-clockwise)
    for k, plane in enumerate(((3, 4), (2, 4), (2, 3))):
        ang = np.zeros((1, 3))
        ang[0, k] = 90.0
        got = T3.affine_sample3d(x[:1], T3.affine_matrices3d(ang, np.zeros((1, 3)), 1.0, (7, 7, 7)))
        np.testing.assert_allclose(got, np.rot90(x[:1], 1, axes=plane), atol=1e-5)
    # whole-voxel translations move the content exactly
    sh = T3.affine_matrices3d(np.zeros((1, 3)), [[1, -2, 0]], 1.0, (7, 7, 7))
    np.testing.assert_array_equal(T3.affine_sample3d(x[0], sh[0]), T3.shift3d(x[0], (1, -2, 0)))


def test_rotation_about_d_matches_the_2d_rotation():
    from tinygrad_rad.data import transforms as T
    from tinygrad_rad.data import transforms3d as T3

    x = _vols(1, 1, 5, 12, 10)
    m3 = T3.affine_matrices3d([[7.0, 0, 0]], [[0, 1.5, -2.0]], 1.0, (5, 12, 10))  # (scale is 3-D)
    got = T3.affine_sample3d(x, m3)[0, 0]
    m2 = T.affine_matrices([7.0], [[-2.0, 1.5]], [1.0], [0.0], 12, 10)  # 2D translations are (x, y)
    ref = T.affine_sample(x[0, 0][:, None], np.repeat(m2, 5, axis=0))[:, 0]
    np.testing.assert_allclose(got, ref, atol=1e-5)


@pytest.mark.parametrize("padding_mode", ["zeros", "border"])
def test_affine_sample3d_matches_torch_grid_sample(padding_mode):
    torch = pytest.importorskip("torch")
    from tinygrad_rad.data import transforms3d as T3

    F = torch.nn.functional
    n, c, D, H, W = 3, 2, 5, 7, 6
    x = _vols(n, c, D, H, W)
    rng = np.random.default_rng(0)
    theta = rng.normal(size=(n, 3, 4)) * 0.2 + np.eye(3, 4)
    grid = F.affine_grid(torch.tensor(theta, dtype=torch.float32), (n, c, D, H, W), align_corners=False)
    ref = F.grid_sample(torch.tensor(x), grid, mode="bilinear", padding_mode=padding_mode,
                        align_corners=False)  # "bilinear" on 5-D input is trilinear
    # torch's normalised (x, y, z) = (w, h, d) -> our voxel (d, h, w)
    s_in = np.zeros((4, 4))
    for row, (col, size) in enumerate(((2, D), (1, H), (0, W))):
        s_in[row, col], s_in[row, 3] = size / 2, (size - 1) / 2
    s_in[3, 3] = 1.0
    th4 = np.concatenate([theta, np.tile([[[0.0, 0, 0, 1]]], (n, 1, 1))], 1)
    mats = (s_in @ th4 @ np.linalg.inv(s_in))[:, :3]
    got = T3.affine_sample3d(x, mats, padding_mode=padding_mode)
    np.testing.assert_allclose(got, ref.numpy(), atol=3e-6)


def test_shift_intensity_normalize():
    from tinygrad_rad.data import transforms3d as T3

    x = _vols(4, 1, 6, 6, 6)
    s = T3.shift3d(x[0], (2, 0, -1), fill=-1.0)
    np.testing.assert_array_equal(s[:, 2:, :, :-1], x[0][:, :-2, :, 1:])
    assert (s[:, :2] == -1).all() and (s[..., -1] == -1).all()
    assert (T3.shift3d(x[0], (6, 0, 0)) == 0).all()
    np.testing.assert_array_equal(T3.RandomShift3d(0)(x), x)
    sh = T3.RandomShift3d((1, 0, 0))(x, rng=np.random.default_rng(0))
    shifts = np.random.default_rng(0).integers(-np.array([1, 0, 0]), np.array([1, 0, 0]) + 1, size=(4, 3))
    for i in range(4):
        np.testing.assert_array_equal(sh[i], T3.shift3d(x[i], shifts[i]))
    out = T3.RandomIntensity3d(0.2, 0.3)(x, rng=np.random.default_rng(1))
    r = np.random.default_rng(1)
    sc, b = r.uniform(0.8, 1.2, 4).astype(np.float32), r.uniform(-0.3, 0.3, 4).astype(np.float32)
    want = x * sc[:, None, None, None, None] + b[:, None, None, None, None]
    np.testing.assert_allclose(out, want, rtol=1e-6)
    np.testing.assert_array_equal(T3.RandomIntensity3d(0, 0)(x), x)
    assert T3.RandomIntensity3d(1.0, 1.0, clip=(0, 1))(x).max() <= 1.0
    two = np.concatenate([x, 2 * x], axis=1)
    np.testing.assert_allclose(T3.Normalize3d([0, 1], [1, 2])(two)[:, 1], (2 * x[:, 0] - 1) / 2, rtol=1e-6)
    with pytest.raises(ValueError, match=r"expected a volume \(C, D, H, W\) or a batch"):
        T3.RandomFlip3d()(np.zeros((6, 6, 6)))
    with pytest.raises(ValueError, match="3 means"):
        T3.Normalize3d([0, 0, 0], 1)(two)


def test_3d_augmentation_resumes_exactly_through_the_loader():
    from tinygrad_rad.data import TensorDataset

    ds = TensorDataset(_vols(10, 1, 8, 8, 8), np.arange(10) % 2, transform=_all_3d_aug())

    def run(loader, epochs):
        return [b[0].numpy().copy() for _ in range(epochs) for b in loader]

    full = run(DataLoader(ds, batch_size=4, shuffle=True, seed=5, prefetch=0), 2)  # 3 batches per epoch
    first = DataLoader(ds, batch_size=4, shuffle=True, seed=5, prefetch=2)
    seen = run(first, 1)
    it = iter(first)
    seen.append(next(it)[0].numpy().copy())
    state = first.state_dict()
    assert state == {"seed": 5, "epoch": 1, "batch": 1}
    it.close()
    resumed = DataLoader(ds, batch_size=4, shuffle=True, seed=0, prefetch=2)
    resumed.load_state_dict(state)
    seen += run(resumed, 1)
    assert len(seen) == len(full) == 6
    for a, b in zip(seen, full):
        np.testing.assert_array_equal(a, b)
    assert not np.allclose(full[0], full[3][: len(full[0])])  # epochs differ
