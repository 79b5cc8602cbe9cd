"""3-D volumes from files: NIfTI (nibabel), DICOM series (pydicom); resampling to a target spacing.

    >>> from tinygrad_rad.data.volumes import read_volume, resample_volume
    >>> vol = read_volume("ct.nii.gz")                 # or a folder of DICOM slices
    >>> vol.array.shape, vol.spacing                   # (D, H, W) float32, mm per voxel along D, H, W
    ((120, 512, 512), (2.5, 0.7, 0.7))
    >>> x = ct_window(vol.array, "lung")               # HU -> [0, 1]   (tinygrad_rad.data.transforms)
    >>> iso = vol.resample((1.0, 1.0, 1.0))            # trilinear; order=0 for label masks

One axis convention for every reader (so that the same patient gives the same array from NIfTI and DICOM):

* ``array`` is float32 ``(D, H, W)``; its axes point to the patient's **S**uperior, **P**osterior and
  **L**eft (LPS+): slice 0 is the most inferior, and ``array[d]`` is an axial slice as radiologists view
  it (anterior at the top, the patient's right on the image's left) -- the same picture
  :func:`~tinygrad_rad.data.io.read_nifti_slices` gives. Oblique scans are put on the closest axes.
* ``spacing`` is ``(sd, sh, sw)`` in mm, in the array's axis order.
* ``affine`` (4x4) maps an index ``(d, h, w, 1)`` to LPS patient coordinates in mm (DICOM's frame; for
  NIfTI the RAS+ world of the file with x and y negated).

NIfTI volumes are first brought to canonical RAS+ with ``nibabel.as_closest_canonical`` (``scl_slope``
/ ``scl_inter`` applied); nibabel's canonical array ``a[x, y, z]`` becomes
``array = a.transpose(2, 1, 0)[:, ::-1, ::-1]``. DICOM series are sorted by ImagePositionPatient along
the slice normal, rescaled with each slice's RescaleSlope / RescaleIntercept (HU for CT), spaced by
PixelSpacing and the slice positions. Mixed series (several SeriesInstanceUIDs, orientations, sizes or
pixel spacings in one folder) and folders without DICOM images are refused with one line naming the
folder. The readers are optional dependencies (``pip install tinygrad_rad[medical]``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .io import NIFTI_EXTS, ImageReadError, check_exists, image_kind, need_package


class DicomSeriesError(ImageReadError):
    """A folder does not hold one consistent DICOM series (the message names the folder and why)."""


class Volume(NamedTuple):
    """``(array float32 (D, H, W), spacing (sd, sh, sw) mm, affine (4, 4) index -> LPS mm)``; unpacks
    as a tuple: ``array, spacing, affine = read_nifti_volume(path)``. See the module docstring."""

    array: np.ndarray
    spacing: tuple
    affine: np.ndarray

    def resample(self, target_spacing, order: int = 1) -> Volume:
        """This volume on a grid of ``target_spacing`` mm (see :func:`resample_volume`); the first
        voxel keeps its position, so the affine keeps its origin and scales its columns."""
        arr, sp = resample_volume(self.array, self.spacing, target_spacing, order=order)
        aff = np.array(self.affine, dtype=np.float64, copy=True)
        aff[:3, :3] = aff[:3, :3] * (np.asarray(sp) / np.asarray(self.spacing, dtype=np.float64))
        return Volume(arr, sp, aff)


# ------------------------------------------------------------------------------------ orientation
_LPS_ORDER = (2, 1, 0)  # array axis 0 -> world z (S), 1 -> y (P), 2 -> x (L)


def _to_lps(array: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Transpose / flip a 3-D ``array`` (with ``affine``: index -> LPS mm) so that its axes point to
    (S, P, L); returns the new array and its affine (the closest axes for oblique scans)."""
    aff = np.asarray(affine, dtype=np.float64)
    m = np.abs(aff[:3, :3])  # m[world, axis]
    used: set[int] = set()
    # NOTE: greedy by the strongest direction cosine first, so an oblique scan maps one-to-one.
    pairs = sorted(((m[w, a], w, a) for w in range(3) for a in range(3)), reverse=True)
    world_to_axis: dict[int, int] = {}
    for _, w, a in pairs:
        if w in world_to_axis or a in used:
            continue
        world_to_axis[w] = a
        used.add(a)
    perm = [world_to_axis[w] for w in _LPS_ORDER]
    out = np.transpose(array, perm)
    new = np.eye(4)
    new[:3, 3] = aff[:3, 3]
    new[:3, :3] = aff[:3, perm]
    for t, w in enumerate(_LPS_ORDER):
        if new[w, t] < 0:  # this axis runs against its world direction: flip it
            n = out.shape[t]
            new[:3, 3] = new[:3, 3] + new[:3, t] * (n - 1)
            new[:3, t] = -new[:3, t]
            out = np.flip(out, axis=t)
    return np.ascontiguousarray(out), new


def _spacing(affine: np.ndarray) -> tuple:
    return tuple(float(v) for v in np.linalg.norm(np.asarray(affine)[:3, :3], axis=0))


# ------------------------------------------------------------------------------------ NIfTI
_RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


def read_nifti_volume(path: str | os.PathLike, frame: int = 0) -> Volume:
    """A NIfTI file (``.nii`` / ``.nii.gz``) as a :class:`Volume` (float32 ``(D, H, W)``, axes S, P, L).

    Values are the stored ones after ``scl_slope`` / ``scl_inter`` (HU for CT). A 4-D file gives volume
    ``frame``; a 2-D file a single slice (D = 1).

        >>> arr, spacing, affine = read_nifti_volume("anatomical.nii")
    """
    path = Path(path)
    check_exists(path)
    nib = need_package("nibabel")
    try:
        img = nib.as_closest_canonical(nib.load(str(path)))
        data = np.asarray(img.dataobj, dtype=np.float32)
        affine = np.asarray(img.affine, dtype=np.float64)
    except Exception as e:  # nibabel raises ImageFileError, HeaderDataError, EOFError, zlib errors...
        raise ImageReadError(f"cannot read NIfTI {path}: {type(e).__name__}: {e}") from e
    if data.ndim == 4:
        if not -data.shape[3] <= int(frame) < data.shape[3]:
            raise IndexError(f"frame {frame} out of range for NIfTI {path} with {data.shape[3]} volumes")
        data = data[..., int(frame)]
    elif data.ndim == 2:
        data = data[:, :, None]
    if data.ndim != 3:
        raise ImageReadError(f"cannot read NIfTI {path}: expected a 3-D volume, got shape {data.shape}")
    arr, aff = _to_lps(data, _RAS_TO_LPS @ affine)
    return Volume(arr.astype(np.float32, copy=False), _spacing(aff), aff)


# ------------------------------------------------------------------------------------ DICOM series
def _floats(ds, key: str, n: int, path: Path):
    v = getattr(ds, key, None)
    try:
        out = [float(x) for x in v]
    except (TypeError, ValueError):
        out = []
    if len(out) != n:
        raise DicomSeriesError(f"DICOM file {path} has no valid {key} (got {v!r}); cannot place its slice")
    return np.array(out)


def _dicom_files(folder: Path, recursive: bool) -> list[Path]:
    it = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in it if p.is_file())


def _summary(values: dict) -> str:
    return "; ".join(f"{k} ({len(v)} files, e.g. {v[0].name})" for k, v in values.items())


def read_dicom_series(folder: str | os.PathLike, series_uid: str | None = None,
                      recursive: bool = False) -> Volume:
    """A folder of DICOM slices (one series) as a :class:`Volume` in HU (float32 ``(D, H, W)``, axes
    S, P, L).

    Slices are sorted by ImagePositionPatient projected on the slice normal (never by file name or
    InstanceNumber); each is rescaled with its own RescaleSlope / RescaleIntercept. Spacing: PixelSpacing
    (rows, columns) and the distance between slice positions. Files that are not DICOM images (no
    preamble / no PixelData, e.g. DICOMDIR or notes) are skipped. ``series_uid`` picks one series from a
    folder holding several; without it a mixed folder is an error listing the series.

        >>> hu, spacing, affine = read_dicom_series("CT_series/")
    """
    folder = Path(folder)
    if not folder.exists():
        raise FileNotFoundError(f"DICOM folder {folder} does not exist")
    if not folder.is_dir():
        raise DicomSeriesError(f"{folder} is not a folder; read_dicom_series reads a folder of DICOM slices")
    pydicom = need_package("pydicom")
    from pydicom.errors import InvalidDicomError

    files = _dicom_files(folder, recursive)
    slices = []
    for p in files:
        try:
            ds = pydicom.dcmread(str(p))
        except (InvalidDicomError, EOFError, OSError, ValueError, KeyError, TypeError):
            continue  # NOTE: not a DICOM file (or a damaged one): skipped, like DICOM viewers do
        if "PixelData" not in ds:
            continue
        slices.append((p, ds))
    if not slices:
        raise DicomSeriesError(
            f"no DICOM image files in {folder} ({len(files)} file(s) looked at"
            f"{'' if recursive else ', not in subfolders'}); expected one slice per file with PixelData"
        )
    by_uid: dict[str, list] = {}
    for p, ds in slices:
        by_uid.setdefault(str(getattr(ds, "SeriesInstanceUID", "<no SeriesInstanceUID>")), []).append((p, ds))
    if series_uid is not None:
        if str(series_uid) not in by_uid:
            raise DicomSeriesError(
                f"DICOM folder {folder} has no series {series_uid}; it holds: "
                f"{_summary({k: [p for p, _ in v] for k, v in by_uid.items()})}"
            )
        slices = by_uid[str(series_uid)]
    elif len(by_uid) > 1:
        raise DicomSeriesError(
            f"DICOM folder {folder} mixes {len(by_uid)} series (SeriesInstanceUID): "
            f"{_summary({k: [p for p, _ in v] for k, v in by_uid.items()})}; pass series_uid= to pick one"
        )
    _check_same(folder, slices)
    return _stack_series(folder, slices)


def _fmt(values: np.ndarray) -> str:
    """``[1, 0, 0, 0, 1, 0]``: rounded to 1e-4 (so float noise does not split a series), no -0."""
    return "[" + ", ".join(f"{v:g}" for v in np.round(values, 4) + 0.0) + "]"


def _check_same(folder: Path, slices: list) -> None:
    """One orientation, one image size, one pixel spacing, single-frame slices."""
    groups: dict[str, dict] = {"orientation (ImageOrientationPatient)": {}, "size (Rows x Columns)": {},
                               "PixelSpacing": {}}
    for p, ds in slices:
        frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
        if frames > 1:
            raise DicomSeriesError(
                f"DICOM folder {folder}: {p.name} is a multi-frame file ({frames} frames); "
                "read_dicom_series reads one slice per file"
            )
        iop = _fmt(_floats(ds, "ImageOrientationPatient", 6, p))
        size = (int(ds.Rows), int(ds.Columns))
        ps = _fmt(_floats(ds, "PixelSpacing", 2, p)) if "PixelSpacing" in ds else None
        for key, val in zip(groups, (iop, f"{size[0]}x{size[1]}", ps)):
            groups[key].setdefault(str(val), []).append(p)
    for key, vals in groups.items():
        if len(vals) > 1:
            raise DicomSeriesError(
                f"DICOM folder {folder} mixes slices of different {key}: {_summary(vals)}; "
                "one volume needs one series"
            )


def _stack_series(folder: Path, slices: list) -> Volume:
    p0, ds0 = slices[0]
    iop = _floats(ds0, "ImageOrientationPatient", 6, p0)
    row_cos, col_cos = iop[:3], iop[3:]  # NOTE: row_cos: direction of increasing column index
    normal = np.cross(row_cos, col_cos)
    pos = np.stack([_floats(ds, "ImagePositionPatient", 3, p) for p, ds in slices])
    dist = pos @ normal
    order = np.argsort(dist, kind="stable")
    dist, pos = dist[order], pos[order]
    slices = [slices[i] for i in order]
    gaps = np.diff(dist)
    if gaps.size and gaps.min() < 1e-3:
        k = int(np.argmin(gaps))
        raise DicomSeriesError(
            f"DICOM folder {folder}: {slices[k][0].name} and {slices[k + 1][0].name} lie at the same "
            f"position ({dist[k]:.3f} mm along the slice normal); one volume needs one slice per position"
        )
    if gaps.size and (gaps.max() - gaps.min()) > max(1e-2, 0.01 * float(gaps.mean())):
        raise DicomSeriesError(
            f"DICOM folder {folder}: uneven slice spacing ({gaps.min():.3f} to {gaps.max():.3f} mm between "
            "slice positions); slices are missing or the folder mixes acquisitions"
        )
    if gaps.size:
        dz = float(gaps.mean())
    else:  # a single slice: its thickness
        dz = float(getattr(ds0, "SpacingBetweenSlices", None) or getattr(ds0, "SliceThickness", None) or 1.0)
    if "PixelSpacing" in ds0:
        dr, dc = (float(v) for v in ds0.PixelSpacing)  # (between rows, between columns)
    else:
        dr = dc = 1.0
    planes = []
    for p, ds in slices:
        try:
            a = np.asarray(ds.pixel_array, dtype=np.float32)
        except Exception as e:
            ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "unknown")
            raise ImageReadError(
                f"cannot decode the pixels of DICOM {p} (transfer syntax {ts}): {type(e).__name__}: {e}"
            ) from e
        if a.ndim != 2:
            raise DicomSeriesError(
                f"DICOM folder {folder}: {p.name} is not a grey-level slice (pixel array shape {a.shape})"
            )
        slope = float(getattr(ds, "RescaleSlope", 1.0) or 1.0)
        intercept = float(getattr(ds, "RescaleIntercept", 0.0) or 0.0)
        planes.append(a * np.float32(slope) + np.float32(intercept))
    arr = np.stack(planes)  # (slice, row, column)
    aff = np.eye(4)
    aff[:3, 0] = normal * dz
    aff[:3, 1] = col_cos * dr
    aff[:3, 2] = row_cos * dc
    aff[:3, 3] = pos[0]
    arr, aff = _to_lps(arr, aff)
    return Volume(arr.astype(np.float32, copy=False), _spacing(aff), aff)


# ------------------------------------------------------------------------------------ dispatch
def read_volume(path: str | os.PathLike, **kwargs) -> Volume:
    """A NIfTI file or a DICOM folder (a single DICOM file: its folder's series) as a :class:`Volume`."""
    path = Path(path)
    if path.is_dir():
        return read_dicom_series(path, **kwargs)
    if path.name.lower().endswith(NIFTI_EXTS):
        return read_nifti_volume(path, **kwargs)
    if not path.exists():
        raise FileNotFoundError(f"volume {path} does not exist")
    if image_kind(path) == "dicom":  # by extension or by the "DICM" magic of extension-less files
        return read_dicom_series(path.parent, **kwargs)
    raise ImageReadError(
        f"cannot read {path} as a volume: expected a NIfTI file ({', '.join(NIFTI_EXTS)}) or a folder of "
        "DICOM slices"
    )


# ------------------------------------------------------------------------------------ resampling
def _axis_coords(n_in: int, n_out: int, scale: float) -> np.ndarray:
    # NOTE: output voxel i sits at i * target mm from the first voxel, i.e. at input index i * scale.
    return np.arange(n_out, dtype=np.float64) * scale


def _resample_axis(a: np.ndarray, axis: int, coords: np.ndarray, order: int) -> np.ndarray:
    n = a.shape[axis]
    c = np.clip(coords, 0.0, n - 1.0)  # samples past the last voxel repeat it (border)
    if order == 0:
        return np.take(a, np.floor(c + 0.5).astype(np.int64).clip(0, n - 1), axis=axis)
    i0 = np.floor(c).astype(np.int64)
    i1 = np.minimum(i0 + 1, n - 1)
    shape = [1] * a.ndim
    shape[axis] = -1
    w = (c - i0).astype(a.dtype).reshape(shape)
    lo, hi = np.take(a, i0, axis=axis), np.take(a, i1, axis=axis)
    return lo + (hi - lo) * w


def resample_volume(array, spacing, target_spacing, order: int = 1) -> tuple[np.ndarray, tuple]:
    """Resample the last three axes of ``array`` (``(D, H, W)`` or ``(..., D, H, W)``) from ``spacing``
    to ``target_spacing`` (mm, a number or three). Returns ``(array, new_spacing)``.

    ``order=1``: trilinear (float32 out, float64 stays float64); ``order=0``: nearest neighbour, dtype
    kept -- use it for label masks. The first voxel keeps its place; output size along each axis is
    ``max(1, round(n * spacing / target))``, and the output spacing is exactly ``target``. Linear
    interpolation is separable, so it runs as three 1-D passes (cheapest axis order first).

        >>> mask1mm, sp = resample_volume(mask, (2.5, 0.7, 0.7), 1.0, order=0)
    """
    a = np.asarray(array)
    if a.ndim < 3:
        raise ValueError(f"resample_volume needs a (D, H, W) array, got shape {a.shape}")
    sp = np.broadcast_to(np.asarray(spacing, dtype=np.float64), (3,))
    tg = np.broadcast_to(np.asarray(target_spacing, dtype=np.float64), (3,))
    if np.any(~np.isfinite(sp)) or np.any(sp <= 0) or np.any(~np.isfinite(tg)) or np.any(tg <= 0):
        raise ValueError(f"spacings must be finite and > 0, got {tuple(sp)} -> {tuple(tg)}")
    if order not in (0, 1):
        raise ValueError(f"order must be 0 (nearest, for masks) or 1 (trilinear), got {order}")
    if order == 1 and a.dtype != np.float64:
        a = a.astype(np.float32)
    shape_in = a.shape[-3:]
    shape_out = tuple(max(1, int(round(n * s / t))) for n, s, t in zip(shape_in, sp, tg))
    # NOTE: shrink first (fewer values for the later passes)
    axes = sorted(range(3), key=lambda k: shape_out[k] / shape_in[k])
    for k in axes:
        if shape_out[k] == shape_in[k] and sp[k] == tg[k]:
            continue
        a = _resample_axis(a, a.ndim - 3 + k, _axis_coords(shape_in[k], shape_out[k], tg[k] / sp[k]), order)
    return np.ascontiguousarray(a), tuple(float(t) for t in tg)
