"""MedMNIST v2 / MedMNIST+ 2D and 3D datasets: registry, checked download, validated loading.

    >>> from tinygrad_rad.data import load_medmnist
    >>> ds = load_medmnist("pneumoniamnist", split="train", data_dir="../shared/data")
    >>> ds.images.shape, ds.labels.shape, ds.task
    ((4690, 28, 28), (4690, 1), 'binary-class')
    >>> x, y = ds[0]           # x: float32 (1, 28, 28) in [0, 1]; y: int (an int64 array for multi-label)

3D flags (``organmnist3d nodulemnist3d adrenalmnist3d fracturemnist3d vesselmnist3d synapsemnist3d``,
sizes 28 and 64) load the same way; their volumes are uint8 ``(N, D, H, W)`` and come out as float32
``(C=1, D, H, W)`` items / ``(B, 1, D, H, W)`` batches:

    >>> vol = load_medmnist("vesselmnist3d", "train", data_dir="../shared/data")
    >>> vol.images.shape, vol.get_batch([0, 1])[0].shape
    ((1335, 28, 28, 28), (2, 1, 28, 28, 28))

Files are ``{flag}.npz`` (28x28) or ``{flag}_{size}.npz`` (64, 128, 224) with the keys
``{train,val,test}_{images,labels}``. They are looked for in the data folder (argument, else
``$TINYGRAD_RAD_DATA``, else ``~/.cache/tinygrad_rad``) and its ``medmnist/`` subfolder. A missing file
is downloaded from the official Zenodo record and MD5-checked; an existing file is *not* MD5-checked
(a local copy may legitimately differ, e.g. deduplicated) but its structure is validated.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .download import DownloadError, download_url, resolve_data_dir
from .io import NumpyFileError, open_npz
from .loader import EmptySplitError

SPLITS = ("train", "val", "test")
SIZES = (28, 64, 128, 224)
SIZES_3D = (28, 64)
HOMEPAGE = "https://medmnist.com/"
_ZENODO = "https://zenodo.org/records/10519652/files/{name}?download=1"

_ORGANS = [
    "bladder", "femur-left", "femur-right", "heart", "kidney-left", "kidney-right",
    "liver", "lung-left", "lung-right", "pancreas", "spleen",
]  # fmt: skip

# (task, label names, n_channels, (n_train, n_val, n_test), {size: md5}, license)
# MD5s from the medmnist package's info.py (v3.0.2, Zenodo record 10519652).
_RAW = {
    "pathmnist": ("multi-class", [
        "adipose", "background", "debris", "lymphocytes", "mucus", "smooth muscle",
        "normal colon mucosa", "cancer-associated stroma", "colorectal adenocarcinoma epithelium"],
        3, (89996, 10004, 7180),
        {28: "a8b06965200029087d5bd730944a56c1", 64: "55aa9c1e0525abe5a6b9d8343a507616",
         128: "ac42d08fb904d92c244187169d1fd1d9", 224: "2c51a510bcdc9cf8ddb2af93af1eadec"}, "CC BY 4.0"),
    "chestmnist": ("multi-label", [
        "atelectasis", "cardiomegaly", "effusion", "infiltration", "mass", "nodule", "pneumonia",
        "pneumothorax", "consolidation", "edema", "emphysema", "fibrosis", "pleural", "hernia"],
        1, (78468, 11219, 22433),
        {28: "02c8a6516a18b556561a56cbdd36c4a8", 64: "9de6cd0b934ebb5b7426cfba5efbae16",
         128: "db107e5590b27930b62dbaf558aebee3", 224: "45bd33e6f06c3e8cdb481c74a89152aa"}, "CC BY 4.0"),
    "dermamnist": ("multi-class", [
        "actinic keratoses and intraepithelial carcinoma", "basal cell carcinoma",
        "benign keratosis-like lesions", "dermatofibroma", "melanoma", "melanocytic nevi",
        "vascular lesions"],
        3, (7007, 1003, 2005),
        {28: "0744692d530f8e62ec473284d019b0c7", 64: "b70a2f5635c6199aeaa28c31d7202e1f",
         128: "2defd784463fa5243564e855ed717de1", 224: "8974907d8e169bef5f5b96bc506ae45d"}, "CC BY-NC 4.0"),
    "octmnist": ("multi-class", [
        "choroidal neovascularization", "diabetic macular edema", "drusen", "normal"],
        1, (97477, 10832, 1000),
        {28: "c68d92d5b585d8d81f7112f81e2d0842", 64: "e229e9440236b774d9f0dfef9d07bdaf",
         128: "0a97e76651ace45c5d943ee3f65b63ae", 224: "abc493b6d529d5de7569faaef2773ba3"}, "CC BY 4.0"),
    "pneumoniamnist": ("binary-class", ["normal", "pneumonia"],
        1, (4708, 524, 624),
        {28: "28209eda62fecd6e6a2d98b1501bb15f", 64: "8f4eceb4ccffa70c672198ea285246c6",
         128: "05b46931834c231683c68f40c47b2971", 224: "d6a3c71de1b945ea11211b03746c1fe1"}, "CC BY 4.0"),
    "retinamnist": ("ordinal-regression", ["0", "1", "2", "3", "4"],
        3, (1080, 120, 400),
        {28: "bd4c0672f1bba3e3a89f0e4e876791e4", 64: "afda852cc34dcda56f86ad2b2457dbcc",
         128: "e48e916a24454daf90583d4e6efb1a18", 224: "eae7e3b6f3fcbda4ae613ebdcbe35348"}, "CC BY 4.0"),
    "breastmnist": ("binary-class", ["malignant", "normal, benign"],
        1, (546, 78, 156),
        {28: "750601b1f35ba3300ea97c75c52ff8f6", 64: "742edef2a1fd1524b2efff4bd7ba9364",
         128: "363e4b3f8d712e9b5de15470a2aaadf1", 224: "b56378a6eefa9fed602bb16d192d4c8b"}, "CC BY 4.0"),
    "bloodmnist": ("multi-class", [
        "basophil", "eosinophil", "erythroblast",
        "immature granulocytes(myelocytes, metamyelocytes and promyelocytes)", "lymphocyte",
        "monocyte", "neutrophil", "platelet"],
        3, (11959, 1712, 3421),
        {28: "7053d0359d879ad8a5505303e11de1dc", 64: "2b94928a2ae4916078ca51e05b6b800b",
         128: "adace1e0ed228fccda1f39692059dd4c", 224: "b718ff6835fcbdb22ba9eacccd7b2601"}, "CC BY 4.0"),
    "tissuemnist": ("multi-class", [
        "Collecting Duct, Connecting Tubule", "Distal Convoluted Tubule",
        "Glomerular endothelial cells", "Interstitial endothelial cells", "Leukocytes", "Podocytes",
        "Proximal Tubule Segments", "Thick Ascending Limb"],
        1, (165466, 23640, 47280),
        {28: "ebe78ee8b05294063de985d821c1c34b", 64: "123ece2eba09d0aa5d698fda57103344",
         128: "61b955355d7425a89687b06cca3ce0c2", 224: "b077128c4a949f0a4eb01517f9037b9c"}, "CC BY 4.0"),
    "organamnist": ("multi-class", _ORGANS,
        1, (34561, 6491, 17778),
        {28: "68e3f8846a6bd62f0c9bf841c0d9eacc", 64: "2dcccc29b88e6da5a01161ef20cda288",
         128: "eeae80d0a227a8d099027e1b3cfd3b60", 224: "50747347e05c87dd3aaf92c49f9f3170"}, "CC BY 4.0"),
    "organcmnist": ("multi-class", _ORGANS,
        1, (12975, 2392, 8216),
        {28: "b9ceb9546e10131b32923c5bbeaea2b1", 64: "3ce34a8724ea6f548e6db4744d03b6a9",
         128: "773c1f009daa3fe5d9a2a201b2a7ed94", 224: "050f5e875dc056f6768abf94ec9995d1"}, "CC BY 4.0"),
    "organsmnist": ("multi-class", _ORGANS,
        1, (13932, 2452, 8827),
        {28: "9ab87b696fb54e2a387ebe992d6ed5f1", 64: "53a6d115339d874c25e309a994ff46d3",
         128: "ded0c5fa01a95dc4978b956f613e9b8e", 224: "b354719e553fbbb2513d5533f52a4cb1"}, "CC BY 4.0"),
}  # fmt: skip


# 3D flags: (task, label names, (n_train, n_val, n_test), {size: md5}, license), from the same
# info.py (v3.0.2): its "MD5" / "MD5_64" entries for the 28^3 / 64^3 files.
_RAW_3D = {
    "organmnist3d": ("multi-class", [
        "liver", "kidney-right", "kidney-left", "femur-right", "femur-left", "bladder", "heart",
        "lung-right", "lung-left", "spleen", "pancreas"],
        (971, 161, 610),
        {28: "a0c5a1ff56af4f155c46d46fbb45a2fe", 64: "58a2205adf14a9d0a189cb06dc78bf10"}, "CC BY 4.0"),
    "nodulemnist3d": ("binary-class", ["benign", "malignant"],
        (1158, 165, 310),
        {28: "8755a7e9e05a4d9ce80a24c3e7a256f3", 64: "c47c5b7d457bf6332200d2ea6d64ecd8"}, "CC BY 4.0"),
    "adrenalmnist3d": ("binary-class", ["normal", "hyperplasia"],
        (1188, 98, 298),
        {28: "bbd3c5a5576322bc4cdfea780653b1ce", 64: "17721accfe9fb005146a47d33bc54b2f"}, "CC BY 4.0"),
    "fracturemnist3d": ("multi-class", [
        "buckle rib fracture", "nondisplaced rib fracture", "displaced rib fracture"],
        (1027, 103, 240),
        {28: "6aa7b0143a6b42da40027a9dda61302f", 64: "f01d7e6316aedf4210da0da5b7437b42"}, "CC BY 4.0"),
    "vesselmnist3d": ("binary-class", ["vessel", "aneurysm"],
        (1335, 191, 382),
        {28: "b41fd4f7e7e2feedddb201585ecafa1b", 64: "6bb274a8846e1097066dcd64e2c4520f"}, "CC BY 4.0"),
    "synapsemnist3d": ("binary-class", ["inhibitory synapse", "excitatory synapse"],
        (1230, 177, 352),
        {28: "1235b78a3cd6280881dd7850a78eadb6", 64: "43bd14ebf3af9d3dd072446fedc14d5e"}, "CC BY 4.0"),
}  # fmt: skip


def medmnist_filename(flag: str, size: int = 28) -> str:
    """``pneumoniamnist.npz`` at size 28, ``pneumoniamnist_64.npz`` otherwise."""
    return f"{flag}.npz" if int(size) == 28 else f"{flag}_{int(size)}.npz"


def _entry(flag: str, task: str, labels: list, ch: int, n: tuple, md5s: dict, lic: str, ndim: int) -> dict:
    sizes = SIZES if ndim == 2 else SIZES_3D
    return {
        "flag": flag,
        # "binary-class" | "multi-class" | "multi-label" | "ordinal-regression"
        "task": task,
        # the loss MedMNIST trains with: BCE-with-logits per label for multi-label, else CE
        "loss": "bce" if task == "multi-label" else "ce",
        "label": {str(i): name for i, name in enumerate(labels)},
        "n_classes": len(labels),
        "n_channels": ch,
        "n_samples": dict(zip(SPLITS, n)),
        "ndim": ndim,  # 2: images (N, H, W[, 3]); 3: volumes (N, D, H, W)
        "sizes": sizes,
        "url": {s: _ZENODO.format(name=medmnist_filename(flag, s)) for s in sizes},
        "md5": {s: md5s.get(s) for s in sizes},
        "license": lic,
    }


def _build_info() -> dict:
    info = {flag: _entry(flag, *raw, ndim=2) for flag, raw in _RAW.items()}
    info.update({flag: _entry(flag, task, labels, 1, n, md5s, lic, ndim=3)
                 for flag, (task, labels, n, md5s, lic) in _RAW_3D.items()})
    return info


INFO: dict = _build_info()
FLAGS = tuple(f for f in INFO if INFO[f]["ndim"] == 2)  # the 2D flags (as before the 3D ones came)
FLAGS_3D = tuple(f for f in INFO if INFO[f]["ndim"] == 3)
ALL_FLAGS = FLAGS + FLAGS_3D


def get_info(flag: str) -> dict:
    """The registry entry of one flag, 2D or 3D (raises ``KeyError`` listing the known flags)."""
    key = str(flag).lower()
    if key not in INFO:
        raise KeyError(
            f"unknown MedMNIST flag {flag!r}; known 2D flags: {', '.join(FLAGS)}; "
            f"known 3D flags: {', '.join(FLAGS_3D)}"
        )
    return INFO[key]


class MedMNISTFileError(NumpyFileError):
    """A MedMNIST ``.npz`` file is malformed (bad keys, shapes, dtypes or values, or a damaged file).
    A ``ValueError``; a missing / unreadable file or a folder raises the ``OSError`` subclasses of
    :class:`~tinygrad_rad.data.io.NumpyFileError` instead."""


def _check_size(size: int, info: dict | None = None) -> int:
    size = int(size)
    sizes = SIZES if info is None else info["sizes"]
    if size not in sizes:
        what = "" if info is None else f" for {info['flag']}"
        raise ValueError(f"size must be one of {sizes}{what}, got {size}")
    return size


def _as_file_error(e: NumpyFileError) -> NumpyFileError:
    """A content error of the safe reader as a :class:`MedMNISTFileError` (OS-level errors stay as is)."""
    return e if isinstance(e, (OSError, KeyError)) else MedMNISTFileError(str(e))


def _flat_labels(labels: np.ndarray, info: dict) -> np.ndarray:
    """Flat ``(N,)`` labels (common in community copies) -> ``(N, 1)`` for single-label tasks."""
    if labels.ndim == 1 and info["task"] != "multi-label":
        return labels[:, None]
    return labels


def validate_arrays(images: np.ndarray, labels: np.ndarray, info: dict, split: str, size: int,
                    path: str | os.PathLike = "<arrays>") -> None:
    """Raise :class:`MedMNISTFileError` saying exactly what is wrong with one split's arrays."""
    ik, lk = f"{split}_images", f"{split}_labels"
    ch, task, ncls = info["n_channels"], info["task"], info["n_classes"]
    if images.dtype != np.uint8:
        raise MedMNISTFileError(f"{path}: {ik} has dtype {images.dtype} but expected uint8")
    if info.get("ndim", 2) == 3:
        if images.ndim != 4:
            raise MedMNISTFileError(f"{path}: {ik} has shape {images.shape} but expected (N, D, H, W)")
        if images.shape[1:] != (size, size, size):
            raise MedMNISTFileError(
                f"{path}: {ik} has shape {images.shape} but expected {size}x{size}x{size} volumes "
                f"for size={size}"
            )
    else:
        want = "(N, H, W)" if ch == 1 else "(N, H, W, 3)"
        if (ch == 1 and images.ndim != 3) or (ch == 3 and (images.ndim != 4 or images.shape[-1] != 3)):
            raise MedMNISTFileError(f"{path}: {ik} has shape {images.shape} but expected {want}")
        if images.shape[1:3] != (size, size):
            raise MedMNISTFileError(
                f"{path}: {ik} has shape {images.shape} but expected {size}x{size} images for size={size}"
            )
    n_labels = ncls if task == "multi-label" else 1
    labels = _flat_labels(labels, info)
    if labels.ndim != 2 or labels.shape[1] != n_labels:
        raise MedMNISTFileError(f"{path}: {lk} has shape {labels.shape} but expected (N, {n_labels})")
    if labels.shape[0] != images.shape[0]:
        raise MedMNISTFileError(
            f"{path}: {lk} has {labels.shape[0]} rows but {ik} has {images.shape[0]} images"
        )
    if not (np.issubdtype(labels.dtype, np.integer) or labels.dtype == np.bool_):
        raise MedMNISTFileError(f"{path}: {lk} has dtype {labels.dtype} but expected an integer dtype")
    if labels.size:
        hi = 1 if task == "multi-label" else ncls - 1
        lo_v, hi_v = int(labels.min()), int(labels.max())
        if lo_v < 0 or hi_v > hi:
            raise MedMNISTFileError(
                f"{path}: {lk} has values in [{lo_v}, {hi_v}] but expected labels in [0, {hi}] "
                f"for {info['flag']} ({task})"
            )


def find_medmnist_file(flag: str, size: int = 28, data_dir=None) -> Path | None:
    """The first existing ``{data_dir}/{file}`` or ``{data_dir}/medmnist/{file}``, else None.

    # NOTE: a folder of that name is returned too, so that loading says "is a folder" instead of
    # downloading beside it.
    """
    root = resolve_data_dir(data_dir)
    name = medmnist_filename(flag, size)
    for cand in (root / name, root / "medmnist" / name):
        if cand.exists():
            return cand
    return None


def download_medmnist(flag: str, size: int = 28, data_dir=None, progress: bool = True) -> Path:
    """Download one MedMNIST file into the data folder (MD5-checked). Returns its path."""
    info = get_info(flag)
    size = _check_size(size, info)
    root = resolve_data_dir(data_dir)
    name = medmnist_filename(info["flag"], size)
    url, md5 = info["url"][size], info["md5"][size]
    if md5 is None:
        raise DownloadError(
            f"no official MD5 is recorded for {name}; refusing an unverified download of {url}"
        )
    return download_url(url, root / name, md5=md5, progress=progress)


class MedMNIST:
    """One split of a MedMNIST 2D or 3D dataset held in memory.

    ``images`` uint8 ``(N, H, W)`` or ``(N, H, W, 3)`` (2D), ``(N, D, H, W)`` (3D); ``labels`` int64
    ``(N, L)``. ``ds[i]`` gives ``(image float32 (C, H, W) or (C, D, H, W) in [0, 1] after transform,
    label)`` where ``label`` is an ``int`` (``L == 1``) or an int64 ``(L,)`` array (multi-label).
    ``get_batch(indices)`` is the vectorised path the :class:`~tinygrad_rad.data.DataLoader` uses.

        >>> ds = MedMNIST("pneumoniamnist", "test", data_dir="../shared/data")
        >>> xb, yb = ds.get_batch(np.arange(8))     # (8, 1, 28, 28) float32, (8,) int64
        >>> vs = MedMNIST("vesselmnist3d", "test", data_dir="../shared/data")
        >>> xb, yb = vs.get_batch(np.arange(8))     # (8, 1, 28, 28, 28) float32, (8,) int64
    """

    def __init__(self, flag: str, split: str = "train", size: int = 28, data_dir=None, download: bool = True,
                 transform=None, as_rgb: bool = False, progress: bool = True, allow_empty: bool = False):
        self.info = get_info(flag)
        self.flag = self.info["flag"]
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        self.split, self.size = split, _check_size(size, self.info)
        self.transform, self.as_rgb = transform, bool(as_rgb)
        path = find_medmnist_file(self.flag, self.size, data_dir)
        if path is None:
            path = self._fetch(data_dir, download, progress)
        self.path = path
        self.images, self.labels = self._load(path)
        if not allow_empty and len(self) == 0:
            raise EmptySplitError(
                f"MedMNIST {self.flag} split {split!r} is empty (0 images in {path}); every split needs "
                "images to train and evaluate (pass allow_empty=True to load it anyway)"
            )

    def _fetch(self, data_dir, download: bool, progress: bool) -> Path:
        root = resolve_data_dir(data_dir)
        name = medmnist_filename(self.flag, self.size)
        url = self.info["url"][self.size]
        where = f"put {name} into {root} (or {root / 'medmnist'}); download it from {url}"
        if not download:
            raise FileNotFoundError(f"MedMNIST file {name} not found and download=False: {where}")
        try:
            return download_medmnist(self.flag, self.size, data_dir, progress=progress)
        except DownloadError:
            raise
        except OSError as e:  # urllib.error.URLError is an OSError: offline, DNS, HTTP errors
            raise FileNotFoundError(
                f"MedMNIST file {name} not found and the download failed ({e}): {where}"
            ) from e

    def _load(self, path: Path):
        ik, lk = f"{self.split}_images", f"{self.split}_labels"
        try:
            with open_npz(path, what="MedMNIST file") as npz:
                missing = [k for k in (ik, lk) if k not in npz.files]
                if missing:
                    raise MedMNISTFileError(
                        f"{path}: missing key(s) {missing}; found {sorted(npz.files)}; expected "
                        f"{{train,val,test}}_{{images,labels}}"
                    )
                images, labels = npz[ik], npz[lk]
        except MedMNISTFileError:
            raise
        except NumpyFileError as e:
            raise _as_file_error(e) from None
        labels = _flat_labels(labels, self.info)
        validate_arrays(images, labels, self.info, self.split, self.size, path)
        return np.ascontiguousarray(images), labels.astype(np.int64)

    # --- dataset protocol -------------------------------------------------------------------------
    @property
    def ndim(self) -> int:
        """2 for images, 3 for volumes (the number of spatial axes)."""
        return int(self.info["ndim"])

    @property
    def task(self) -> str:
        return self.info["task"]

    @property
    def n_classes(self) -> int:
        return self.info["n_classes"]

    @property
    def n_channels(self) -> int:
        return 3 if self.as_rgb else self.info["n_channels"]

    @property
    def label_names(self) -> list[str]:
        return [self.info["label"][str(i)] for i in range(self.n_classes)]

    @property
    def targets(self) -> np.ndarray:
        """Labels as the loss wants them: int64 ``(N,)`` (single-label) or ``(N, L)`` (multi-label)."""
        return self.labels[:, 0] if self.task != "multi-label" else self.labels

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def _to_float(self, imgs: np.ndarray) -> np.ndarray:
        """uint8 ``(B, H, W[, 3])`` -> float32 ``(B, C, H, W)``; ``(B, D, H, W)`` (3D) -> ``(B, 1, D, H, W)``;
        in [0, 1]."""
        x = imgs.astype(np.float32) * np.float32(1.0 / 255.0)
        if self.ndim == 3 or x.ndim == 3:
            x = x[:, None]
        else:
            x = x.transpose(0, 3, 1, 2)
        if self.as_rgb and x.shape[1] == 1:
            x = np.repeat(x, 3, axis=1)
        return np.ascontiguousarray(x)

    def get_batch(self, indices, rng: np.random.Generator | None = None):
        """``(images float32 (B, C, H, W), targets int64 (B,) or (B, L))`` for an index array."""
        idx = np.asarray(indices, dtype=np.int64)
        x = self._to_float(self.images[idx])
        if self.transform is not None:
            x = self.transform(x, rng=rng)
        return x, self.targets[idx]

    def __getitem__(self, i: int):
        if not -len(self) <= int(i) < len(self):
            raise IndexError(f"index {i} out of range for {self.flag} {self.split} with {len(self)} images")
        x = self._to_float(self.images[int(i)][None])[0]
        if self.transform is not None:
            x = self.transform(x)
        y = self.targets[int(i)]
        return x, (int(y) if np.ndim(y) == 0 else y.copy())

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(flag={self.flag!r}, split={self.split!r}, size={self.size}, "
                f"n={len(self)}, task={self.task!r}, path='{self.path}')")


class MedMNIST3D(MedMNIST):
    """One split of a MedMNIST 3D dataset (refuses 2D flags): volumes uint8 ``(N, D, H, W)``, items
    float32 ``(1, D, H, W)`` (``(3, D, H, W)`` with ``as_rgb``), batches ``(B, 1, D, H, W)``.

        >>> ds = MedMNIST3D("vesselmnist3d", "train", data_dir="../shared/data")
        >>> x, y = ds[0]                             # (1, 28, 28, 28) float32 in [0, 1], int
    """

    def __init__(self, flag: str, *args, **kwargs):
        info = get_info(flag)
        if info["ndim"] != 3:
            raise ValueError(f"{info['flag']} is a 2D MedMNIST flag; 3D flags: {', '.join(FLAGS_3D)}")
        super().__init__(flag, *args, **kwargs)


def load_medmnist(flag: str, split: str = "train", size: int = 28, data_dir=None, download: bool = True,
                  transform=None, as_rgb: bool = False, progress: bool = True,
                  allow_empty: bool = False) -> MedMNIST:
    """Load one split of a MedMNIST 2D or 3D dataset (downloading it when missing). See :class:`MedMNIST`;
    a 3D flag gives a :class:`MedMNIST3D` (sizes 28 and 64).

    An empty split raises :class:`~tinygrad_rad.data.EmptySplitError` naming the dataset and split
    unless ``allow_empty=True``. Flat ``(N,)`` labels load as ``(N, 1)``.
    """
    cls = MedMNIST3D if get_info(flag)["ndim"] == 3 else MedMNIST
    return cls(flag, split, size, data_dir, download, transform, as_rgb, progress, allow_empty)
