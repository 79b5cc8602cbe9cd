"""Read one medical image as float32 ``(C, H, W)``: PNG/JPEG/TIFF (pillow), DICOM (pydicom), NIfTI (nibabel).

    >>> from tinygrad_rad.data.io import read_image, read_nifti_slices
    >>> x = read_image("chest.png")                        # (1, H, W) in [0, 1]
    >>> ct = read_image("slice.dcm", ct_window="lung")     # HU -> lung window -> [0, 1]
    >>> hu = read_image("slice.dcm", normalize=False)      # raw modality values (HU for CT)
    >>> vol = read_nifti_slices("ct.nii.gz", ct_window=(-600, 1500))   # (S, 1, H, W)

Scaling (``normalize=True``): 8/16-bit pictures are divided by 255 / 65535 (others: min-max); DICOM and NIfTI
use ``ct_window`` when given, else the DICOM file's own WindowCenter/WindowWidth, else the image's
min-max. DICOM pixel values go through RescaleSlope/RescaleIntercept first (giving HU for CT), and
MONOCHROME1 images are inverted so that bright always means dense. The readers are optional
dependencies (``pip install tinygrad_rad[medical]``); a missing one gives an error naming it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .transforms import CT_WINDOWS
from .transforms import ct_window as _apply_window

PICTURE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif")
DICOM_EXTS = (".dcm", ".dicom", ".ima")
NIFTI_EXTS = (".nii", ".nii.gz")
IMAGE_EXTS = PICTURE_EXTS + DICOM_EXTS + NIFTI_EXTS


class ImageReadError(OSError):
    """A file exists but cannot be read as an image (the message names the path and the reason)."""


def _need(module: str, extra: str = "medical"):
    try:
        return __import__(module)
    except ImportError as e:
        raise ImportError(
            f"reading this file needs the {module!r} package: pip install tinygrad_rad[{extra}]"
        ) from e


def _window_arg(ct_window):
    if ct_window is None:
        return None
    if isinstance(ct_window, str):
        if ct_window.lower() not in CT_WINDOWS:
            raise ValueError(f"unknown CT window {ct_window!r}; known: {', '.join(CT_WINDOWS)}")
        return CT_WINDOWS[ct_window.lower()]
    c, w = ct_window
    return float(c), float(w)


def _minmax(a: np.ndarray) -> np.ndarray:
    lo, hi = float(a.min()), float(a.max())
    if hi <= lo:
        return np.zeros_like(a, dtype=np.float32)
    return ((a - lo) / (hi - lo)).astype(np.float32)


def image_kind(path: str | os.PathLike) -> str:
    """"dicom", "nifti" or "picture", from the extension (DICOM also by its "DICM" magic)."""
    name = str(path).lower()
    if name.endswith(NIFTI_EXTS):
        return "nifti"
    if name.endswith(DICOM_EXTS):
        return "dicom"
    if name.endswith(PICTURE_EXTS):
        return "picture"
    try:
        with open(path, "rb") as f:
            head = f.read(132)
        if head[128:132] == b"DICM":
            return "dicom"
    except OSError:
        pass
    return "picture"


def _check_exists(path: Path) -> None:
    if not path.exists():
        raise FileNotFoundError(f"image file {path} does not exist")
    if path.is_dir():
        raise ImageReadError(f"{path} is a folder, not an image file")


# ------------------------------------------------------------------------------------ pictures
def read_picture(path, normalize: bool = True) -> np.ndarray:
    """PNG/JPEG/BMP/TIFF -> float32 ``(1, H, W)`` (grey) or ``(3, H, W)`` (colour; alpha dropped)."""
    path = Path(path)
    _check_exists(path)
    _need("PIL", "medical")
    from PIL import Image
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("1", "P", "LA", "PA", "CMYK", "YCbCr", "HSV", "RGBA", "RGBX", "LAB"):
                im = im.convert("L" if im.mode in ("1", "LA") else "RGB")
            arr = np.asarray(im)
    except Exception as e:  # PIL raises UnidentifiedImageError, OSError, SyntaxError, ...
        raise ImageReadError(f"cannot read image {path}: {type(e).__name__}: {e}") from e
    if arr.ndim == 2:
        arr = arr[None]
    elif arr.ndim == 3:
        arr = arr.transpose(2, 0, 1)
    else:
        raise ImageReadError(f"cannot read image {path}: unexpected array shape {arr.shape}")
    if not normalize:
        return arr.astype(np.float32)
    if arr.dtype in (np.uint8, np.uint16, np.bool_):
        top = 1.0 if arr.dtype == np.bool_ else np.iinfo(arr.dtype).max
        return arr.astype(np.float32) / np.float32(top)
    return _minmax(arr.astype(np.float32))  # NOTE: 32-bit integer / float pictures: min-max


# ------------------------------------------------------------------------------------ DICOM
def _first(v):
    """WindowCenter/WindowWidth may be multi-valued."""
    try:
        return float(v[0])
    except TypeError:
        return float(v)


def read_dicom(path, ct_window=None, normalize: bool = True, frame: int | None = None) -> np.ndarray:
    """A DICOM image -> float32 ``(C, H, W)``.

    Rescale slope/intercept are applied (HU for CT). ``ct_window`` (center, width) or a preset name
    ("lung", "mediastinum", "bone", ...) maps to [0, 1]; without it the file's WindowCenter/Width is
    used, else min-max. ``normalize=False`` returns the rescaled values. Multi-frame files give
    frame ``frame`` (default: the middle one). MONOCHROME1 is inverted.
    """
    path = Path(path)
    _check_exists(path)
    pydicom = _need("pydicom")
    try:
        ds = pydicom.dcmread(str(path))
    except Exception as e:
        raise ImageReadError(f"cannot read DICOM {path}: {type(e).__name__}: {e}") from e
    if "PixelData" not in ds:
        raise ImageReadError(f"cannot read DICOM {path}: it has no pixel data (PixelData element missing)")
    try:
        arr = ds.pixel_array
    except Exception as e:
        ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "unknown")
        raise ImageReadError(
            f"cannot decode the pixels of DICOM {path} (transfer syntax {ts}): {type(e).__name__}: {e}"
        ) from e
    photometric = str(getattr(ds, "PhotometricInterpretation", "MONOCHROME2")).upper()
    n_frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    samples = int(getattr(ds, "SamplesPerPixel", 1) or 1)
    if n_frames > 1:
        k = n_frames // 2 if frame is None else int(frame)
        if not 0 <= k < n_frames:
            raise IndexError(f"frame {frame} out of range for DICOM {path} with {n_frames} frames")
        arr = arr[k]
    if samples == 3 or (arr.ndim == 3 and arr.shape[-1] in (3, 4)):
        # NOTE: pydicom >= 3 already converts YBR colour to RGB in pixel_array.
        rgb = np.asarray(arr)[..., :3].transpose(2, 0, 1)
        if not normalize:
            return rgb.astype(np.float32)
        bits = int(getattr(ds, "BitsStored", 8) or 8)
        return (rgb.astype(np.float32) / np.float32(2**bits - 1)).astype(np.float32)
    a = np.asarray(arr, dtype=np.float32)
    slope = float(getattr(ds, "RescaleSlope", 1.0) or 1.0)
    intercept = float(getattr(ds, "RescaleIntercept", 0.0) or 0.0)
    a = a * np.float32(slope) + np.float32(intercept)
    if normalize:
        win = _window_arg(ct_window)
        if win is None and "WindowCenter" in ds and "WindowWidth" in ds:
            try:
                win = (_first(ds.WindowCenter), _first(ds.WindowWidth))
                if win[1] <= 0:
                    win = None
            except (TypeError, ValueError):
                win = None
        a = _apply_window(a, *win) if win is not None else _minmax(a)
        if photometric == "MONOCHROME1":
            a = 1.0 - a
    else:
        if ct_window is not None:
            raise ValueError("ct_window needs normalize=True (the window maps values to [0, 1])")
        if photometric == "MONOCHROME1":
            a = (a.max() + a.min()) - a
    return a[None].astype(np.float32, copy=False)


# ------------------------------------------------------------------------------------ NIfTI
def _nifti_volume(path: Path) -> np.ndarray:
    nib = _need("nibabel")
    _check_exists(path)
    try:
        img = nib.as_closest_canonical(nib.load(str(path)))
        vol = np.asarray(img.dataobj, dtype=np.float32)  # applies scl_slope / scl_inter
    except Exception as e:
        raise ImageReadError(f"cannot read NIfTI {path}: {type(e).__name__}: {e}") from e
    if vol.ndim == 4:
        vol = vol[..., 0]
    if vol.ndim == 2:
        vol = vol[:, :, None]
    if vol.ndim != 3:
        raise ImageReadError(f"cannot read NIfTI {path}: expected a 3-D volume, got shape {vol.shape}")
    return vol


def _axial(vol: np.ndarray, k: int) -> np.ndarray:
    # NOTE: canonical RAS+ voxel axes (i: left->right, j: posterior->anterior). Shown radiologically:
    # anterior at the top, the patient's right on the image's left.
    return np.ascontiguousarray(vol[:, :, k].T[::-1, ::-1])


def _scale(a: np.ndarray, ct_window, normalize: bool) -> np.ndarray:
    if not normalize:
        if ct_window is not None:
            raise ValueError("ct_window needs normalize=True (the window maps values to [0, 1])")
        return a.astype(np.float32, copy=False)
    win = _window_arg(ct_window)
    return _apply_window(a, *win) if win is not None else _minmax(a)


def read_nifti_slices(path, indices=None, ct_window=None, normalize: bool = True) -> np.ndarray:
    """Axial slices of a NIfTI volume as float32 ``(S, 1, H, W)`` (all slices, or ``indices``).

    Without ``ct_window`` the min-max of the whole volume is used, so slices stay comparable.
    """
    path = Path(path)
    vol = _nifti_volume(path)
    depth = vol.shape[2]
    idx = range(depth) if indices is None else [int(i) for i in np.atleast_1d(indices)]
    for i in idx:
        if not -depth <= i < depth:
            raise IndexError(f"slice {i} out of range for NIfTI {path} with {depth} axial slices")
    slices = np.stack([_axial(vol, i % depth) for i in idx])[:, None]
    if normalize and _window_arg(ct_window) is None:
        lo, hi = float(vol.min()), float(vol.max())
        return ((slices - lo) / (hi - lo) if hi > lo else np.zeros_like(slices)).astype(np.float32)
    return _scale(slices, ct_window, normalize)


def read_nifti(path, slice_index: int | None = None, ct_window=None, normalize: bool = True) -> np.ndarray:
    """One axial slice (default: the middle one) of a NIfTI volume as float32 ``(1, H, W)``."""
    path = Path(path)
    vol = _nifti_volume(path)
    depth = vol.shape[2]
    k = depth // 2 if slice_index is None else int(slice_index)
    if not -depth <= k < depth:
        raise IndexError(f"slice {slice_index} out of range for NIfTI {path} with {depth} axial slices")
    return _scale(_axial(vol, k % depth)[None], ct_window, normalize)


# ------------------------------------------------------------------------------------ dispatch
def read_image(path, ct_window=None, normalize: bool = True, slice_index: int | None = None) -> np.ndarray:
    """Read any supported image as float32 ``(C, H, W)`` (see the module docstring for scaling).

        >>> read_image("CT_small.dcm", ct_window="lung").shape
        (1, 128, 128)
    """
    kind = image_kind(path)
    if kind == "dicom":
        return read_dicom(path, ct_window=ct_window, normalize=normalize, frame=slice_index)
    if kind == "nifti":
        return read_nifti(path, slice_index=slice_index, ct_window=ct_window, normalize=normalize)
    if ct_window is not None:
        raise ValueError(f"ct_window applies to DICOM/NIfTI values, not to the picture file {path}")
    return read_picture(path, normalize=normalize)
