"""Segmentation datasets (image + mask pairs) and joint geometric augmentation.

    >>> from tinygrad_rad.data.segmentation import SegmentationNPZ, JointRandomAffine
    >>> from tinygrad_rad.data import DataLoader
    >>> path = "../shared/data/ct_lung/lung_ct_128.npz"
    >>> train = SegmentationNPZ(path, "train", augment=JointRandomAffine())
    >>> for x, y in DataLoader(train, batch_size=8, shuffle=True, seed=0):
    ...     pass      # x: (8, 1, 128, 128) float32 in [0, 1]; y: (8, 1, 128, 128) float32 0/1

Both datasets implement ``get_batch(indices, rng)``, so :class:`~tinygrad_rad.data.DataLoader` reads
them batch-wise and hands each batch its own seeded generator (reproducible augmentation).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .io import load_npy, open_npz

__all__ = ["window_hu", "JointRandomAffine", "SegmentationNPZ", "SegmentationFolder", "affine_warp",
           "IMAGE_EXTS", "file_stem", "read_array"]

LUNG_WINDOW = (-1000.0, 400.0)


def window_hu(hu, low: float = -1000.0, high: float = 400.0) -> np.ndarray:
    """Clip Hounsfield units to ``[low, high]`` and scale to [0, 1] (float32). Lung window -1000..400 by
    default (``tinygrad_rad.data.transforms.ct_window`` does the same from a (center, width) pair).

    >>> window_hu(np.array([-2000, -300, 1000]))
    array([0. , 0.5, 1. ], dtype=float32)
    """
    if high <= low:
        raise ValueError(f"window_hu: high ({high}) must be above low ({low})")
    a = np.asarray(hu, dtype=np.float32)
    return ((np.clip(a, low, high) - low) / (high - low)).astype(np.float32)


# ----------------------------------------------------------------------------------- augmentation
def _affine_matrix(
    h: int, w: int, angle_deg: float, tx: float, ty: float, scale: float, hflip: bool, vflip: bool
):
    """3x3 matrix mapping *output* pixel (row, col, 1) to *input* coordinates (inverse warp), about the
    image centre."""
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    a = math.radians(angle_deg)
    c, s = math.cos(a) / scale, math.sin(a) / scale
    # forward: out = R S (in - centre) + centre + t  ->  in = S^-1 R^-1 (out - centre - t) + centre
    inv = np.array([[c, s], [-s, c]])
    fl = np.diag([-1.0 if vflip else 1.0, -1.0 if hflip else 1.0])
    m = fl @ inv
    off = np.array([cy, cx]) - m @ np.array([cy + ty, cx + tx])
    out = np.eye(3)
    out[:2, :2], out[:2, 2] = m, off
    return out


def affine_warp(img: np.ndarray, matrix: np.ndarray, order: int = 1, fill: float = 0.0) -> np.ndarray:
    """Resample a 2-D (H, W) or (C, H, W) array: output[p] = img[matrix @ p] with bilinear
    (``order=1``) or nearest (``order=0``) sampling; outside pixels get ``fill``."""
    squeeze = img.ndim == 2
    a = img[None] if squeeze else img
    _, h, w = a.shape
    rr, cc = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64), indexing="ij")
    sr = matrix[0, 0] * rr + matrix[0, 1] * cc + matrix[0, 2]
    sc = matrix[1, 0] * rr + matrix[1, 1] * cc + matrix[1, 2]
    if order == 0:
        ir, ic = np.rint(sr).astype(np.int64), np.rint(sc).astype(np.int64)
        ok = (ir >= 0) & (ir < h) & (ic >= 0) & (ic < w)
        out = np.full(a.shape, fill, dtype=a.dtype)
        out[:, ok] = a[:, ir[ok], ic[ok]]
    else:
        r0, c0 = np.floor(sr).astype(np.int64), np.floor(sc).astype(np.int64)
        fr, fc = sr - r0, sc - c0
        out = np.zeros(a.shape, dtype=np.float64)
        for dr, dc, wgt in (
            (0, 0, (1 - fr) * (1 - fc)),
            (1, 0, fr * (1 - fc)),
            (0, 1, (1 - fr) * fc),
            (1, 1, fr * fc),
        ):
            r, c = r0 + dr, c0 + dc
            ok = (r >= 0) & (r < h) & (c >= 0) & (c < w)
            vals = np.full(a.shape, fill, dtype=np.float64)
            vals[:, ok] = a[:, r[ok], c[ok]]
            out += vals * wgt
        out = out.astype(a.dtype)
    return out[0] if squeeze else out


class JointRandomAffine:
    """Random flip / rotation / shift / scale applied identically to an image and its mask (or to an
    image and points/boxes via :meth:`sample`). Images are resampled bilinearly, masks by nearest
    neighbour so they stay binary.

    ``JointRandomAffine(degrees=10, translate=0.05, scale=(0.9, 1.1), hflip=0.5, vflip=0.0, p=1.0)``;
    ``translate`` is a fraction of the image size; ``p`` the chance a sample is transformed at all.

        >>> aug = JointRandomAffine(degrees=10)
        >>> img2, mask2 = aug(img, mask, rng=np.random.default_rng(0))    # (C, H, W), (H, W) or (1, H, W)
    """

    def __init__(
        self,
        degrees: float = 10.0,
        translate: float = 0.05,
        scale: Sequence[float] = (0.9, 1.1),
        hflip: float = 0.5,
        vflip: float = 0.0,
        p: float = 1.0,
        fill: float = 0.0,
    ):
        if degrees < 0 or translate < 0 or not 0 <= hflip <= 1 or not 0 <= vflip <= 1 or not 0 <= p <= 1:
            raise ValueError(
                f"JointRandomAffine: bad settings degrees={degrees}, translate={translate}, "
                f"hflip={hflip}, vflip={vflip}, p={p}"
            )
        if len(scale) != 2 or not 0 < scale[0] <= scale[1]:
            raise ValueError(f"JointRandomAffine: scale must be (lo, hi) with 0 < lo <= hi, got {scale}")
        self.degrees, self.translate, self.scale = float(degrees), float(translate), tuple(map(float, scale))
        self.hflip, self.vflip, self.p, self.fill = float(hflip), float(vflip), float(p), float(fill)

    def sample(self, h: int, w: int, rng: np.random.Generator) -> np.ndarray | None:
        """Draw one transform for an (h, w) image: the inverse-warp matrix, or None (identity)."""
        if rng.random() >= self.p:
            return None
        angle = rng.uniform(-self.degrees, self.degrees)
        tx = rng.uniform(-self.translate, self.translate) * w
        ty = rng.uniform(-self.translate, self.translate) * h
        s = rng.uniform(*self.scale)
        hf, vf = rng.random() < self.hflip, rng.random() < self.vflip
        return _affine_matrix(h, w, angle, tx, ty, s, hf, vf)

    def __call__(
        self, image: np.ndarray, mask: np.ndarray | None = None, rng: np.random.Generator | None = None
    ):
        rng = np.random.default_rng() if rng is None else rng
        h, w = image.shape[-2:]
        m = self.sample(h, w, rng)
        if m is None:
            return (image, mask) if mask is not None else image
        img = affine_warp(image, m, order=1, fill=self.fill)
        if mask is None:
            return img
        return img, affine_warp(mask, m, order=0, fill=0)

    def __repr__(self) -> str:
        return (
            f"JointRandomAffine(degrees={self.degrees}, translate={self.translate}, scale={self.scale}, "
            f"hflip={self.hflip}, vflip={self.vflip}, p={self.p})"
        )


# ----------------------------------------------------------------------------------- datasets
class _PairDataset:
    images: np.ndarray  # (N, 1, H, W) float32
    masks: np.ndarray  # (N, 1, H, W) float32 (0/1) or int64 labels
    augment = None

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def get_batch(self, indices, rng: np.random.Generator | None = None):
        idx = np.asarray(indices, dtype=np.int64)
        x, y = self.images[idx].copy(), self.masks[idx].copy()
        if self.augment is not None:
            rng = np.random.default_rng() if rng is None else rng
            for k in range(len(idx)):
                x[k], y[k] = self.augment(x[k], y[k], rng=rng)
        return x, y

    def __getitem__(self, i: int):
        return self.images[i], self.masks[i]


class SegmentationNPZ(_PairDataset):
    """One split of an ``.npz`` with ``{split}_images`` and ``{split}_masks`` (the ct_lung format).

    Integer images are treated as Hounsfield units and put through ``window`` (lung -1000..400 by
    default) to [0, 1]; float images are kept. Masks become float32 0/1 of shape (N, 1, H, W)
    (``num_classes > 2``: int64 labels). ``ids`` holds ``{split}_ids`` when present.

        >>> ds = SegmentationNPZ(path, "test")
        >>> ds.images.shape, ds.masks.shape        # ((53, 1, 128, 128), (53, 1, 128, 128))
    """

    def __init__(
        self,
        path: str | os.PathLike,
        split: str = "train",
        window: tuple[float, float] | None = LUNG_WINDOW,
        augment=None,
        num_classes: int = 2,
    ):
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"SegmentationNPZ: no such file {path}")
        with open_npz(path, what="SegmentationNPZ file") as z:
            ki, km = f"{split}_images", f"{split}_masks"
            if ki not in z or km not in z:
                splits = sorted({k.rsplit("_", 1)[0] for k in z.files if k.endswith("_images")})
                raise KeyError(
                    f"SegmentationNPZ: {path} has no split {split!r} (keys {ki}/{km}); splits there: {splits}"
                )
            imgs, masks = z[ki], z[km]
            self.ids = z[f"{split}_ids"] if f"{split}_ids" in z else np.arange(len(imgs))
        if imgs.shape[0] != masks.shape[0] or imgs.shape[-2:] != masks.shape[-2:]:
            raise ValueError(
                f"SegmentationNPZ: images {imgs.shape} and masks {masks.shape} in {path} do not match"
            )
        if np.issubdtype(imgs.dtype, np.integer) and window is not None:
            imgs = window_hu(imgs, *window)
        imgs = imgs.astype(np.float32)
        if imgs.ndim == 3:
            imgs = imgs[:, None]
        if masks.ndim == 4:
            masks = masks[:, 0]
        self.images = np.ascontiguousarray(imgs)
        self.masks = (
            (masks[:, None] > 0).astype(np.float32) if num_classes <= 2 else masks.astype(np.int64)[:, None]
        )
        self.augment, self.split, self.path = augment, split, path


IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".dcm", ".nii", ".nii.gz", ".npy")


def file_stem(p: Path) -> str:
    n = p.name
    for e in (".nii.gz",) + IMAGE_EXTS:
        if n.lower().endswith(e):
            return n[: -len(e)]
    return p.stem


def read_array(path: Path, ct_window: tuple | str | None) -> np.ndarray:
    """An image file (PNG, JPEG, DICOM, NIfTI, .npy) as an array; ``ct_window`` is read_image's (center,
    width) or preset name."""
    if path.name.lower().endswith(".npy"):
        return load_npy(path, what="image")
    from . import read_image

    return np.asarray(read_image(path, ct_window=ct_window))


def _resize_nearest(a: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    h, w = a.shape[-2:]
    ri = np.minimum((np.arange(size[0]) * h / size[0]).astype(np.int64), h - 1)
    ci = np.minimum((np.arange(size[1]) * w / size[1]).astype(np.int64), w - 1)
    return a[..., ri[:, None], ci[None, :]]


def _resize_area(a: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Block mean when the size divides evenly, else bilinear-free nearest (documented simplification)."""
    h, w = a.shape[-2:]
    if h % size[0] == 0 and w % size[1] == 0:
        fh, fw = h // size[0], w // size[1]
        return a.reshape(a.shape[:-2] + (size[0], fh, size[1], fw)).mean(axis=(-3, -1))
    return _resize_nearest(a, size)


class SegmentationFolder(_PairDataset):
    """Images and masks from two folders, paired by file name stem (``case1.png`` ↔ ``case1.png``).

    Files may be PNG/JPEG, DICOM, NIfTI (2-D or one slice) or ``.npy``; they are read with
    :func:`tinygrad_rad.data.read_image`; ``ct_window`` is passed to it for DICOM/NIfTI images
    (``(center, width)`` or a preset name such as ``"lung"``). Images are scaled to [0, 1] if they are
    not already; masks are thresholded at > 0.
    ``size=(H, W)`` resizes everything (block mean for images, nearest for masks).

        >>> ds = SegmentationFolder("data/images", "data/masks", size=(128, 128))
    """

    def __init__(
        self,
        images_dir: str | os.PathLike,
        masks_dir: str | os.PathLike,
        ct_window: tuple | str | None = None,
        size: tuple[int, int] | None = None,
        augment=None,
    ):
        images_dir, masks_dir = Path(images_dir), Path(masks_dir)
        for d in (images_dir, masks_dir):
            if not d.is_dir():
                raise FileNotFoundError(f"SegmentationFolder: no such folder {d}")
        masks = {file_stem(p): p for p in sorted(masks_dir.iterdir()) if p.is_file()}
        pairs = [
            (p, masks[file_stem(p)])
            for p in sorted(images_dir.iterdir())
            if p.is_file() and file_stem(p) in masks
        ]
        if not pairs:
            raise ValueError(
                f"SegmentationFolder: no image in {images_dir} has a mask of the same name in {masks_dir}"
            )
        imgs, msks = [], []
        for ip, mp in pairs:
            im = np.squeeze(read_array(ip, ct_window)).astype(np.float32)
            mk = np.squeeze(read_array(mp, None))
            if im.ndim == 3 and im.shape[-1] in (3, 4):
                im = im[..., :3].mean(-1)
            if mk.ndim == 3 and mk.shape[-1] in (3, 4):
                mk = mk[..., 0]
            if im.ndim != 2 or mk.ndim != 2:
                raise ValueError(
                    f"SegmentationFolder: {ip} / {mp} are not 2-D images (shapes {im.shape}, {mk.shape})"
                )
            if im.shape != mk.shape:
                raise ValueError(
                    f"SegmentationFolder: image {ip} {im.shape} and mask {mp} {mk.shape} differ in size"
                )
            if size is not None:
                im, mk = _resize_area(im, tuple(size)), _resize_nearest(mk, tuple(size))
            lo, hi = float(im.min()), float(im.max())
            if lo < 0.0 or hi > 1.0:
                im = (im - lo) / (hi - lo) if hi > lo else np.zeros_like(im)
            imgs.append(im)
            msks.append(mk > 0)
        shapes = {a.shape for a in imgs}
        if len(shapes) > 1:
            raise ValueError(
                f"SegmentationFolder: images have different sizes {sorted(shapes)}; pass size=(H, W)"
            )
        self.images = np.stack(imgs)[:, None].astype(np.float32)
        self.masks = np.stack(msks)[:, None].astype(np.float32)
        self.ids = np.array([file_stem(p) for p, _ in pairs])
        self.augment = augment
