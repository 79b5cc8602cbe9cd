"""Datasets of your own image files: one folder per class, or a CSV of ``path,label``.

    >>> from tinygrad_rad.data import ImageFolder, CSVImageDataset, DataLoader
    >>> from tinygrad_rad.data import transforms as T
    >>> ds = ImageFolder("xrays/train", transform=T.Resize(64))      # xrays/train/{normal,pneumonia}/*.png
    >>> ds.classes, len(ds)
    (['normal', 'pneumonia'], 812)
    >>> x, y = ds[0]                       # float32 (C, 64, 64) in [0, 1], int label
    >>> ds = CSVImageDataset("labels.csv", root="images/", ct_window="lung")

Images are read with :func:`tinygrad_rad.data.io.read_image` (PNG/JPEG/TIFF, DICOM, NIfTI). To batch
images of different sizes, give a ``transform`` that resizes or crops them to one size.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .io import IMAGE_EXTS, read_image
from .loader import Dataset


class _FileDataset(Dataset):
    samples: list[tuple[Path, int]]
    classes: list[str]

    def __init__(self, transform: Callable | None, ct_window, loader: Callable | None):
        self.transform, self.ct_window = transform, ct_window
        self.loader = loader

    @property
    def class_to_idx(self) -> dict[str, int]:
        return {c: i for i, c in enumerate(self.classes)}

    @property
    def targets(self) -> np.ndarray:
        return np.array([t for _, t in self.samples], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, path: Path) -> np.ndarray:
        if self.loader is not None:
            return np.asarray(self.loader(path), dtype=np.float32)
        return read_image(path, ct_window=self.ct_window)

    def __getitem__(self, i: int):
        path, target = self.samples[i]
        x = self.load(path)
        if self.transform is not None:
            x = self.transform(x)
        return x, target


class ImageFolder(_FileDataset):
    """``root/<class>/<image>`` -> (image, class index); classes are the sorted sub-folder names.

    ``ImageFolder(root, transform=None, extensions=IMAGE_EXTS, ct_window=None, loader=None)``.
    Files are found recursively inside each class folder; hidden files are skipped.
    """

    def __init__(self, root, transform: Callable | None = None, extensions=IMAGE_EXTS, ct_window=None,
                 loader: Callable | None = None):
        super().__init__(transform, ct_window, loader)
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"ImageFolder root {self.root} is not a folder")
        exts = tuple(e.lower() for e in extensions)
        self.classes = sorted(
            d.name for d in self.root.iterdir() if d.is_dir() and not d.name.startswith(".")
        )
        if not self.classes:
            raise FileNotFoundError(
                f"ImageFolder: {self.root} has no class sub-folders (expected root/<class>/<image>)"
            )
        self.samples = []
        for idx, cls in enumerate(self.classes):
            for dirpath, dirnames, filenames in os.walk(self.root / cls):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                for f in sorted(filenames):
                    if not f.startswith(".") and f.lower().endswith(exts):
                        self.samples.append((Path(dirpath) / f, idx))
        if not self.samples:
            raise FileNotFoundError(
                f"ImageFolder: no image files with extensions {', '.join(exts)} under {self.root}"
            )


class CSVImageDataset(_FileDataset):
    """Images listed in a CSV file with a header row: columns ``path`` and ``label``.

    Relative paths are resolved against ``root`` (default: the CSV's folder). Labels may be integers
    (used as they are) or class names (mapped to indices in sorted order; see ``classes``).
    """

    def __init__(self, csv_path, root=None, transform: Callable | None = None, path_column: str = "path",
                 label_column: str = "label", ct_window=None, loader: Callable | None = None):
        super().__init__(transform, ct_window, loader)
        self.csv_path = Path(csv_path)
        if not self.csv_path.is_file():
            raise FileNotFoundError(f"CSV file {self.csv_path} does not exist")
        self.root = Path(root) if root is not None else self.csv_path.parent
        with open(self.csv_path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            cols = reader.fieldnames or []
            for col in (path_column, label_column):
                if col not in cols:
                    raise ValueError(f"{self.csv_path}: no column {col!r}; the header has {cols}")
            rows = [(r[path_column], (r[label_column] or "").strip()) for r in reader]
        if not rows:
            raise ValueError(f"{self.csv_path} lists no images")
        for line, (p, lab) in enumerate(rows, start=2):
            if not p or not lab:
                raise ValueError(f"{self.csv_path} line {line}: empty {path_column!r} or {label_column!r}")
        labels = [lab for _, lab in rows]
        if all(_is_int(lab) for lab in labels):
            ints = [int(lab) for lab in labels]
            if min(ints) < 0:
                raise ValueError(f"{self.csv_path}: integer labels must be >= 0, got {min(ints)}")
            self.classes = [str(i) for i in range(max(ints) + 1)]
        else:
            self.classes = sorted(set(labels))
            ints = [self.classes.index(lab) for lab in labels]
        self.samples = [(self._resolve(p), t) for (p, _), t in zip(rows, ints)]

    def _resolve(self, p: str) -> Path:
        path = Path(p)
        return path if path.is_absolute() else self.root / path


def _is_int(s: str) -> bool:
    try:
        int(s)
        return True
    except ValueError:
        return False
