"""Detection data: the LIDC nodule slices with boxes, resampling, box-aware augmentation, patient folds.

    >>> from tinygrad_rad.data.detection import load_lidc_nodules, patient_folds
    >>> data = load_lidc_nodules("../shared/data", size=256)      # images (108, 1, 256, 256), boxes list
    >>> for train_idx, test_idx in patient_folds(data["patient"], n_folds=4):
    ...     pass                                                  # no patient on both sides

Boxes are half-open ``(x_min, y_min, x_max, y_max)`` pixels (see :mod:`tinygrad_rad.boxes`).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..boxes import boxes_from_mask
from .io import open_npz

__all__ = [
    "read_boxes_csv",
    "boxes_from_masks",
    "resize_images",
    "scale_boxes",
    "load_lidc_nodules",
    "patient_folds",
    "RandomBoxAffine",
    "DetectionDataset",
]


def read_boxes_csv(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """``{slice_id: boxes (K, 4)}`` from a CSV with columns ``slice_id,x_min,y_min,x_max,y_max[,...]``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"read_boxes_csv: no such file {path}")
    out: dict[str, list] = {}
    with open(path, newline="") as f:
        r = csv.DictReader(f)
        need = {"slice_id", "x_min", "y_min", "x_max", "y_max"}
        if r.fieldnames is None or not need <= set(r.fieldnames):
            raise ValueError(f"read_boxes_csv: {path} needs columns {sorted(need)}, has {r.fieldnames}")
        for line, row in enumerate(r, start=2):
            try:
                b = [float(row[k]) for k in ("x_min", "y_min", "x_max", "y_max")]
            except ValueError as e:
                raise ValueError(f"read_boxes_csv: {path} line {line}: {e}") from None
            if b[2] <= b[0] or b[3] <= b[1]:
                raise ValueError(f"read_boxes_csv: {path} line {line}: empty box {b}")
            out.setdefault(row["slice_id"], []).append(b)
    return {k: np.asarray(v, dtype=np.float64).reshape(-1, 4) for k, v in out.items()}


def boxes_from_masks(masks: np.ndarray, connectivity: int = 4) -> list[np.ndarray]:
    """One box per connected component of each mask in a stack (N, H, W)."""
    m = np.asarray(masks)
    if m.ndim == 4:
        m = m[:, 0]
    return [boxes_from_mask(x, connectivity) for x in m]


def resize_images(images: np.ndarray, size: int) -> np.ndarray:
    """Block-mean downsample (N, H, W) -> (N, size, size); size must divide H and W."""
    n, h, w = images.shape
    if h % size or w % size:
        raise ValueError(f"resize_images: size {size} must divide the image size {h}x{w}")
    fh, fw = h // size, w // size
    return images.reshape(n, size, fh, size, fw).mean(axis=(2, 4), dtype=np.float64).astype(np.float32)


def scale_boxes(boxes: np.ndarray, factor: float) -> np.ndarray:
    """Resample half-open boxes to an image scaled by ``factor`` (continuous coordinates scale exactly)."""
    return np.asarray(boxes, dtype=np.float64).reshape(-1, 4) * factor


def load_lidc_nodules(data_dir: str | os.PathLike, size: int = 256, boxes_from: str = "csv") -> dict:
    """The lidc_nodules subset at ``size`` (512 -> block mean): ``images`` (N, 1, size, size) float32,
    ``boxes`` list of (K, 4) at ``size``, ``patient``, ``ids``, ``malignancy``.

    ``boxes_from="csv"`` reads ``boxes_512.csv``; ``"masks"`` derives them from the masks (connected
    components, 4-connectivity) - the CSV was made the same way and matches exactly.
    """
    d = Path(data_dir) / "lidc_nodules"
    npz = d / "lidc_nodule_slices_512.npz"
    if not npz.is_file():
        raise FileNotFoundError(
            f"load_lidc_nodules: {npz} not found (give the data folder holding lidc_nodules/)"
        )
    if 512 % size:
        raise ValueError(f"load_lidc_nodules: size must divide 512, got {size}")
    with open_npz(npz, what="load_lidc_nodules: file") as z:
        imgs, ids = z["images"].astype(np.float32), z["ids"]
        patient, malig = z["patient"], z["malignancy"]
        masks = z["masks"] if boxes_from == "masks" else None
    if boxes_from == "csv":
        table = read_boxes_csv(d / "boxes_512.csv")
        boxes512 = [table.get(str(i), np.zeros((0, 4))) for i in ids]
    elif boxes_from == "masks":
        boxes512 = boxes_from_masks(masks)
    else:
        raise ValueError(f"load_lidc_nodules: boxes_from must be 'csv' or 'masks', got {boxes_from!r}")
    f = size / 512
    return {
        "images": resize_images(imgs, size)[:, None],
        "boxes": [scale_boxes(b, f) for b in boxes512],
        "patient": np.asarray(patient),
        "ids": np.asarray(ids),
        "malignancy": np.asarray(malig),
        "size": size,
    }


def patient_folds(patient: Sequence, n_folds: int = 4) -> list[tuple[np.ndarray, np.ndarray]]:
    """Patient-wise K-fold split: sorted patient ids dealt round-robin into ``n_folds`` groups; returns
    ``[(train_indices, test_indices)]`` with no patient on both sides."""
    p = np.asarray(patient)
    ids = np.unique(p)
    if n_folds < 2 or n_folds > len(ids):
        raise ValueError(f"patient_folds: n_folds must be in [2, {len(ids)} patients], got {n_folds}")
    groups = [ids[k::n_folds] for k in range(n_folds)]
    return [(np.nonzero(~np.isin(p, g))[0], np.nonzero(np.isin(p, g))[0]) for g in groups]


class RandomBoxAffine:
    """Box-aware augmentation: random flips, shift and scale (no rotation, so boxes stay exact).

    ``RandomBoxAffine(hflip=0.5, vflip=0.5, translate=0.1, scale=(0.9, 1.1))``; ``translate`` is a
    fraction of the image size. Boxes whose centre leaves the image are dropped; others are clipped.

        >>> img2, boxes2 = RandomBoxAffine()(img, boxes, rng)       # img (C, H, W), boxes (K, 4)
    """

    def __init__(
        self,
        hflip: float = 0.5,
        vflip: float = 0.5,
        translate: float = 0.1,
        scale: Sequence[float] = (0.9, 1.1),
    ):
        self.hflip, self.vflip, self.translate, self.scale = hflip, vflip, translate, tuple(scale)

    def __call__(self, img: np.ndarray, boxes: np.ndarray, rng: np.random.Generator):
        from .segmentation import affine_warp

        c, h, w = img.shape
        b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4).copy()
        s = rng.uniform(*self.scale)
        tx, ty = rng.uniform(-self.translate, self.translate, 2) * (w, h)
        hf, vf = rng.random() < self.hflip, rng.random() < self.vflip
        # forward map on continuous coords: x' = s (x - w/2) + w/2 + tx (then flips)
        mx, my = w / 2.0, h / 2.0
        x0, x1 = s * (b[:, 0] - mx) + mx + tx, s * (b[:, 2] - mx) + mx + tx
        y0, y1 = s * (b[:, 1] - my) + my + ty, s * (b[:, 3] - my) + my + ty
        if hf:
            x0, x1 = w - x1, w - x0
        if vf:
            y0, y1 = h - y1, h - y0
        nb = np.stack([x0, y0, x1, y1], axis=1)
        # inverse warp for pixels (row, col index -> centre coords +0.5)
        m = np.eye(3)
        fx, fy = (-1.0 if hf else 1.0), (-1.0 if vf else 1.0)
        # out pixel centre (r + .5, c + .5): undo flip, then undo scale/shift
        # row: y = fy * (r + .5 - my) + my ; y_in = (y - my - ty) / s + my ; r_in = y_in - .5
        m[0, 0] = fy / s
        m[0, 2] = (fy * (0.5 - my) - ty) / s + my - 0.5
        m[1, 1] = fx / s
        m[1, 2] = (fx * (0.5 - mx) - tx) / s + mx - 0.5
        out = affine_warp(img, m, order=1, fill=float(np.median(img)))
        cx, cy = (nb[:, 0] + nb[:, 2]) / 2, (nb[:, 1] + nb[:, 3]) / 2
        keep = (cx >= 0) & (cx < w) & (cy >= 0) & (cy < h)
        nb = nb[keep]
        nb[:, [0, 2]] = np.clip(nb[:, [0, 2]], 0, w)
        nb[:, [1, 3]] = np.clip(nb[:, [1, 3]], 0, h)
        return out, nb


class DetectionDataset:
    """Images (N, 1, H, W) with per-image boxes, producing CenterNet targets at ``stride`` for the
    DataLoader: ``get_batch`` returns (images, heat, size, offset, mask). Training crops of
    ``crop`` x ``crop`` pixels (centred on a random box with probability ``p_object``, else anywhere)
    keep CPU cost down; the network is fully convolutional, so it is evaluated on whole images."""

    def __init__(
        self,
        images: np.ndarray,
        boxes: list,
        stride: int = 2,
        augment: RandomBoxAffine | None = None,
        crop: int | None = None,
        p_object: float = 0.8,
    ):
        if len(images) != len(boxes):
            raise ValueError(f"DetectionDataset: {len(images)} images but {len(boxes)} box lists")
        self.images, self.boxes, self.stride = np.asarray(images, np.float32), list(boxes), stride
        self.augment, self.crop, self.p_object = augment, crop, p_object

    def __len__(self) -> int:
        return len(self.images)

    def _crop(self, img, boxes, rng):
        c = self.crop
        _, h, w = img.shape
        if c is None or c >= h:
            return img, boxes
        if len(boxes) and rng.random() < self.p_object:
            b = boxes[rng.integers(len(boxes))]
            cx, cy = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
            x0 = int(np.clip(cx - rng.uniform(0.2, 0.8) * c, 0, w - c))
            y0 = int(np.clip(cy - rng.uniform(0.2, 0.8) * c, 0, h - c))
        else:
            x0, y0 = int(rng.integers(0, w - c + 1)), int(rng.integers(0, h - c + 1))
        nb = boxes - np.array([x0, y0, x0, y0], dtype=np.float64)
        cx, cy = (nb[:, 0] + nb[:, 2]) / 2, (nb[:, 1] + nb[:, 3]) / 2
        nb = nb[(cx >= 0) & (cx < c) & (cy >= 0) & (cy < c)]
        return img[:, y0 : y0 + c, x0 : x0 + c], np.clip(nb, 0, c)

    def get_batch(self, indices, rng: np.random.Generator | None = None):
        from ..models.detection import centernet_targets

        rng = np.random.default_rng() if rng is None else rng
        xs, heat, size, off, mask = [], [], [], [], []
        for i in np.asarray(indices, dtype=np.int64):
            img, b = self.images[i], np.asarray(self.boxes[i], np.float64).reshape(-1, 4)
            img, b = self._crop(img, b, rng)  # crop first: augmenting the small crop is cheaper
            if self.augment is not None:
                img, b = self.augment(img, b, rng)
            _, h, w = img.shape
            t = centernet_targets(b, h // self.stride, w // self.stride, self.stride)
            xs.append(img)
            heat.append(t["heat"])
            size.append(t["size"])
            off.append(t["offset"])
            mask.append(t["mask"])
        return (
            np.stack(xs).astype(np.float32),
            np.stack(heat),
            np.stack(size),
            np.stack(off),
            np.stack(mask),
        )
