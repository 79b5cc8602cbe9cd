"""Read one medical image as float32 ``(C, H, W)``: PNG/JPEG/TIFF (pillow), DICOM (pydicom), NIfTI (nibabel),
``.npy``; and NumPy ``.npy`` / ``.npz`` files safely (:func:`load_npy`, :func:`load_npz`, :func:`open_npz`).

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

NumPy files: every loader of tinygrad_rad reads ``.npy`` / ``.npz`` through :func:`load_npy` /
:func:`open_npz` / :func:`load_npz`, which never unpickle (object arrays are refused) and turn every way a
file can be broken (empty, random bytes, a damaged zip member, a header claiming more data than the file
holds, a folder, no read permission, missing keys) into ONE line naming the path and the array:

    >>> from tinygrad_rad.data.io import load_npz
    >>> arrs = load_npz("lung_ct_128.npz", keys=["test_images", "test_masks"], what="segmentation data")
    >>> load_npz("broken.npz")
    NumpyFileError: broken.npz: array 'x' is corrupted (Bad CRC-32 for file 'x.npy')
"""

from __future__ import annotations

import os
import struct
import zipfile
import zlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from .transforms import CT_WINDOWS
from .transforms import ct_window as _apply_window

PICTURE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif")
DICOM_EXTS = (".dcm", ".dicom", ".ima")
NIFTI_EXTS = (".nii", ".nii.gz")
NUMPY_EXTS = (".npy",)
IMAGE_EXTS = PICTURE_EXTS + DICOM_EXTS + NIFTI_EXTS + NUMPY_EXTS


class ImageReadError(OSError):
    """A file exists but cannot be read as an image (the message names the path and the reason)."""


def need_package(module: str, extra: str = "medical"):
    """``import module``, or an ImportError naming the extra that installs it."""
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
    """"dicom", "nifti", "numpy" or "picture", from the extension (DICOM also by its "DICM" magic)."""
    name = str(path).lower()
    if name.endswith(NIFTI_EXTS):
        return "nifti"
    if name.endswith(NUMPY_EXTS):
        return "numpy"
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


def check_exists(path: Path) -> None:
    """A missing path or a folder where a file is expected: one clear error."""
    if not path.exists():
        raise FileNotFoundError(f"image file {path} does not exist")
    if path.is_dir():
        raise ImageReadError(f"{path} is a folder, not an image file")


# ------------------------------------------------------------------------------------ pictures
def read_picture(path, normalize: bool = True) -> np.ndarray:
    """PNG/JPEG/BMP/TIFF -> float32 ``(1, H, W)`` (grey) or ``(3, H, W)`` (colour; alpha dropped)."""
    path = Path(path)
    check_exists(path)
    need_package("PIL", "medical")
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
    check_exists(path)
    pydicom = need_package("pydicom")
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
    nib = need_package("nibabel")
    check_exists(path)
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


# ------------------------------------------------------------------------------------ .npy images
def read_npy_image(path, ct_window=None, normalize: bool = True) -> np.ndarray:
    """A ``.npy`` image (read safely with :func:`load_npy`) as float32 ``(C, H, W)``.

    ``(H, W)`` -> ``(1, H, W)``; ``(H, W, 3|4)`` -> ``(3, H, W)``; ``(C, H, W)`` is kept. Scaling as for
    pictures (8/16-bit and bool divided by their maximum, others min-max), or ``ct_window`` on the raw
    values (e.g. HU).
    """
    path = Path(path)
    a = load_npy(path, what="image")
    if a.dtype.kind not in "biuf":
        raise ImageReadError(f"cannot read image {path}: dtype {a.dtype} is not numeric")
    if a.ndim == 2:
        a = a[None]
    elif a.ndim == 3 and a.shape[-1] in (3, 4) and a.shape[0] not in (1, 3):
        a = a[..., :3].transpose(2, 0, 1)
    elif a.ndim != 3:
        raise ImageReadError(f"cannot read image {path}: expected (H, W) or (C, H, W), got shape {a.shape}")
    if not normalize or ct_window is not None:
        return _scale(a.astype(np.float32), ct_window, normalize)
    if a.dtype in (np.uint8, np.uint16, np.bool_):
        top = 1.0 if a.dtype == np.bool_ else np.iinfo(a.dtype).max
        return a.astype(np.float32) / np.float32(top)
    return _minmax(a.astype(np.float32))


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
    if kind == "numpy":
        return read_npy_image(path, ct_window=ct_window, normalize=normalize)
    if ct_window is not None:
        raise ValueError(f"ct_window applies to DICOM/NIfTI values, not to the picture file {path}")
    return read_picture(path, normalize=normalize)


# ------------------------------------------------------------------------------------ NumPy files
class NumpyFileError(ValueError):
    """A ``.npy`` / ``.npz`` file cannot be read safely; the one-line message names the path (and array)."""


class NumpyFileNotFoundError(NumpyFileError, FileNotFoundError):
    """The file does not exist (also a ``FileNotFoundError``)."""


class NumpyIsADirectoryError(NumpyFileError, IsADirectoryError):
    """A folder was given where a file is expected (also an ``IsADirectoryError``)."""


class NumpyPermissionError(NumpyFileError, PermissionError):
    """The file exists but may not be read (also a ``PermissionError``)."""


class NumpyKeyError(NumpyFileError, KeyError):
    """An ``.npz`` archive lacks an expected array (also a ``KeyError``)."""

    def __str__(self) -> str:  # NOTE: KeyError's str() would quote the whole message
        return str(self.args[0]) if self.args else ""


_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a local file header / an empty archive
_NPY_MAGIC = np.lib.format.MAGIC_PREFIX
_CHUNK = 1 << 24
PICKLE_REFUSED = "contains Python objects (pickle); tinygrad_rad never unpickles files"


def _label(path: Path, what: str | None) -> str:
    return f"{what} {path}" if what else str(path)


def _nbytes(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} bytes"  # pragma: no cover


def _open_file(path: Path, what: str | None, kind: str):
    """``path`` opened for reading, with one clear error for a missing file, a folder, no permission
    or an empty file."""
    lab = _label(path, what)
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise NumpyFileNotFoundError(f"{lab} does not exist") from None
    except IsADirectoryError:
        raise NumpyIsADirectoryError(f"{lab} is a folder, not a {kind} file") from None
    except PermissionError:
        raise NumpyPermissionError(f"{lab}: permission denied (the file exists but cannot be read)") from None
    except OSError as e:
        raise NumpyFileError(f"{lab} cannot be opened: {e.strerror or e}") from None
    try:
        size = os.fstat(f.fileno()).st_size
        if os.path.isdir(path):  # NOTE: some platforms open folders without IsADirectoryError
            raise NumpyIsADirectoryError(f"{lab} is a folder, not a {kind} file")
        if size == 0:
            raise NumpyFileError(f"{lab} is empty (0 bytes), not a valid {kind} file")
    except BaseException:
        f.close()
        raise
    return f


def _sniff(head: bytes, lab: str, kind: str) -> None:
    """Raise unless ``head`` (the first bytes) starts like a ``kind`` (".npy" / ".npz") file."""
    if kind == ".npz" and head[:4] in _ZIP_MAGIC:
        return
    if kind == ".npy" and head[:6] == _NPY_MAGIC:
        return
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        raise NumpyFileError(f"{lab} is a Python pickle, not a {kind} file; {PICKLE_REFUSED.split('; ')[1]}")
    if kind == ".npz" and head[:6] == _NPY_MAGIC:
        raise NumpyFileError(f"{lab} is a single-array .npy file, not a .npz archive (read it with load_npy)")
    if kind == ".npy" and head[:4] in _ZIP_MAGIC:
        raise NumpyFileError(f"{lab} is a .npz archive, not a single-array .npy file (read it with load_npz)")
    raise NumpyFileError(f"{lab} is not a valid {kind} file (it does not start with the {kind} signature)")


def _read_array(fp, available: int, lab: str) -> np.ndarray:
    """Read one ``.npy`` stream (the file, or one member of a zip); ``available``: its size in bytes."""
    try:
        version = np.lib.format.read_magic(fp)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fp)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fp)
        else:
            shape, fortran, dtype = np.lib.format._read_array_header(fp, version)
    except (ValueError, TypeError, SyntaxError, EOFError, struct.error) as e:
        raise NumpyFileError(f"{lab} has a corrupt .npy header ({e})") from None
    if dtype.hasobject:
        raise NumpyFileError(f"{lab} {PICKLE_REFUSED} (dtype {dtype}); refused")
    count = 1
    for n in shape:
        count *= int(n)
    need = count * dtype.itemsize
    have = available - fp.tell()
    if need > have:
        raise NumpyFileError(
            f"{lab} is truncated or corrupt: its header claims shape {tuple(shape)} {dtype} "
            f"({_nbytes(need)}) but only {_nbytes(max(have, 0))} of data follow"
        )
    try:
        arr = np.empty(count, dtype=dtype)
    except (MemoryError, ValueError) as e:
        raise NumpyFileError(
            f"{lab} cannot be loaded: shape {tuple(shape)} {dtype} needs {_nbytes(need)} of memory "
            f"({type(e).__name__})"
        ) from None
    if need:
        view = memoryview(arr.view(np.uint8).reshape(-1))
        pos = 0
        while pos < need:
            got = fp.readinto(view[pos:pos + _CHUNK])
            if not got:
                raise NumpyFileError(
                    f"{lab} is truncated: expected {_nbytes(need)} of array data, got {_nbytes(pos)}"
                )
            pos += got
    if fortran:
        return arr.reshape(tuple(shape)[::-1]).transpose()
    return arr.reshape(tuple(shape))


def load_npy(path: str | os.PathLike, what: str | None = None) -> np.ndarray:
    """Read a ``.npy`` file safely (never unpickles). ``what`` starts the error messages ("input image").

        >>> x = load_npy("slice.npy")

    Raises :class:`NumpyFileError` (a ``ValueError``; its ``...NotFoundError`` / ``...IsADirectoryError``
    / ``...PermissionError`` subclasses are also the matching ``OSError``) with the path in the message.
    """
    path = Path(path)
    lab = _label(path, what)
    with _open_file(path, what, ".npy") as f:
        size = os.fstat(f.fileno()).st_size
        _sniff(f.read(8), lab, ".npy")
        f.seek(0)
        try:
            return _read_array(f, size, lab)
        except OSError as e:
            raise NumpyFileError(f"{lab} cannot be read: {e}") from None


# NOTE: what a damaged zip archive / member raises while it is read
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, struct.error, OSError, NotImplementedError,
               RuntimeError)


class NpzFile:
    """A lazily read ``.npz`` archive (like ``np.load``'s ``NpzFile``): ``files``, ``key in z``, ``z[key]``,
    ``z.get(key)``; each array is read (and checked) on access. Use :func:`open_npz` to make one."""

    def __init__(self, path: str | os.PathLike, what: str | None = None):
        self.path, self.what = Path(path), what
        self._lab = _label(self.path, what)
        self._f = _open_file(self.path, what, ".npz")
        try:
            _sniff(self._f.read(8), self._lab, ".npz")
            self._f.seek(0)
            try:
                self._zip = zipfile.ZipFile(self._f)
            except _ZIP_ERRORS as e:
                raise NumpyFileError(
                    f"{self._lab} is not a valid .npz file (truncated or damaged zip archive: {e})"
                ) from None
        except BaseException:
            self._f.close()
            raise
        self._members = {}
        for info in self._zip.infolist():
            key = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            self._members.setdefault(key, info)
        self.files = list(self._members)

    # --- mapping protocol -------------------------------------------------------------------------
    def __contains__(self, key) -> bool:
        return key in self._members

    def __iter__(self):
        return iter(self.files)

    def __len__(self) -> int:
        return len(self.files)

    def keys(self):
        return list(self.files)

    def get(self, key: str, default=None):
        return self[key] if key in self._members else default

    def __getitem__(self, key: str) -> np.ndarray:
        if key not in self._members:
            raise NumpyKeyError(f"{self._lab} has no array {key!r}; it holds {_keys(self.files)}")
        info = self._members[key]
        lab = f"{self._lab}: array {key!r}"
        if not info.filename.endswith(".npy"):
            raise NumpyFileError(f"{lab} is not a .npy member ({info.filename})")
        try:
            with self._zip.open(info) as fp:
                arr = _read_array(fp, info.file_size, lab)
                fp.read()  # NOTE: reading to the member's end makes zipfile check its CRC-32
        except NumpyFileError:
            raise
        except _ZIP_ERRORS as e:
            raise NumpyFileError(f"{lab} is corrupted ({type(e).__name__}: {e})") from None
        return arr

    def require(self, keys: Iterable[str]) -> None:
        """Raise :class:`NumpyKeyError` naming the expected and the present keys unless all ``keys`` exist."""
        keys = list(keys)
        missing = [k for k in keys if k not in self._members]
        if missing:
            raise NumpyKeyError(
                f"{self._lab} is missing the array(s) {_keys(missing)}; expected {_keys(keys)}, "
                f"found {_keys(self.files)}"
            )

    # --- lifetime ---------------------------------------------------------------------------------
    def close(self) -> None:
        if self._f is not None:
            self._zip.close()
            self._f.close()
            self._f = None

    def __enter__(self) -> NpzFile:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self) -> str:
        return f"NpzFile('{self.path}', files={self.files})"


def _keys(keys) -> str:
    return "[" + ", ".join(repr(k) for k in keys) + "]" if keys else "no arrays"


def open_npz(path: str | os.PathLike, what: str | None = None) -> NpzFile:
    """Open a ``.npz`` archive safely (never unpickles); arrays are read on access.

        >>> with open_npz("pneumoniamnist.npz", what="MedMNIST file") as z:
        ...     z.require(["test_images", "test_labels"])
        ...     x = z["test_images"]
    """
    return NpzFile(path, what)


def load_npz(path: str | os.PathLike, keys: Iterable[str] | None = None, what: str | None = None,
             optional: Iterable[str] = ()) -> dict[str, np.ndarray]:
    """Read the arrays ``keys`` (all when None) plus the ``optional`` ones present from a ``.npz``, safely.

        >>> d = load_npz("data.npz", keys=["images", "masks"], optional=["ids"])

    A missing key raises :class:`NumpyKeyError` naming the expected and the present keys.
    """
    with open_npz(path, what) as z:
        want = list(z.files) if keys is None else list(keys)
        z.require(want)
        out = {k: z[k] for k in want}
        for k in optional:
            if k in z and k not in out:
                out[k] = z[k]
    return out
