"""The optional pieces of the classification recipes (2D and 3D), one place for each: the flip rule
(:data:`FLIP_DATASETS`), the stratified training subset, balanced class weights, the weight average
(:func:`make_ema`), test-time augmentation views, and the checks of their values. ``tasks/classify.py``
uses them (and re-exports them); which are on by default is its ``TrainConfig``'s business.

    >>> from tinygrad_rad.tasks.recipe import stratified_subset, uses_hflip
    >>> small = stratified_subset(train_split, 500)             # 500 images, label shares kept
"""

from __future__ import annotations

import math

import numpy as np

from ..data.transforms import canonical_padding_mode
from ..optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

__all__ = ["FLIP_DATASETS", "uses_hflip", "tta_options", "stratified_subset", "check_recipe",
           "balanced_weights", "make_ema", "shift_images", "tta_views"]

# Datasets whose mirror image is still a plausible image of the same class (microscopy, skin and
# fundus photographs): ``hflip="auto"`` flips these at random during training. Radiographs, CT and
# ultrasound are not mirrored (the heart is on the left; organ laterality is anatomy).
FLIP_DATASETS = frozenset({"pathmnist", "dermamnist", "bloodmnist", "tissuemnist", "retinamnist"})


def tta_options(cfg) -> dict:
    """``{"tta": True, "flip": ...}`` for :func:`evaluate` / :func:`predict` when the run's recipe uses
    test-time augmentation, else ``{}``."""
    if not getattr(cfg, "tta", False):
        return {}
    return {"tta": True, "flip": uses_hflip(cfg), "padding_mode": getattr(cfg, "padding_mode", "zeros")}


def uses_hflip(cfg) -> bool:
    """Whether the run flips training images left-right (``cfg.hflip``: auto / yes / no)."""
    mode = str(cfg.hflip).lower()
    if mode not in ("auto", "yes", "no"):
        raise ValueError(f"hflip must be auto, yes or no, got {cfg.hflip!r}")
    return mode == "yes" or (mode == "auto" and cfg.dataset.lower() in FLIP_DATASETS)


def stratified_subset(split, n: int | None, seed: int = 0):
    """A split (anything with ``images`` and ``labels`` built as ``type(split)(images, labels)``) cut to
    ``n`` images drawn without replacement so that every label (row of ``labels``) keeps its share
    (largest remainders round the counts; at least one image of each label when ``n`` allows).

        >>> small = stratified_subset(data["train"], 500)      # the small-data regime
    """
    total = len(split.images)
    if n is None or n >= total:
        return split
    if n < 2:
        raise ValueError(f"train_subset must be >= 2, got {n}")
    keys = [tuple(r) for r in np.asarray(split.labels).reshape(total, -1)]
    groups: dict = {}
    for i, k in enumerate(keys):
        groups.setdefault(k, []).append(i)
    names = sorted(groups)
    exact = np.array([len(groups[k]) * n / total for k in names])
    counts = np.floor(exact).astype(int)
    for j in np.argsort(-(exact - counts), kind="stable")[: n - counts.sum()]:
        counts[j] += 1
    if n >= len(names):  # every label present when there is room
        for j in np.flatnonzero(counts == 0):
            counts[int(np.argmax(counts))] -= 1
            counts[j] = 1
    rng = np.random.default_rng(seed)
    idx = np.sort(np.concatenate([rng.choice(groups[k], c, replace=False) for k, c in zip(names, counts)]))
    return type(split)(split.images[idx], split.labels[idx])


def check_recipe(cfg) -> None:
    """Refuse recipe values that cannot work, naming the field (before any data is loaded)."""
    if getattr(cfg, "class_weight", "none") not in ("none", "balanced"):
        raise ValueError(f"class_weight must be none or balanced, got {cfg.class_weight!r}")
    if not 0.0 <= float(cfg.label_smoothing) < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1), got {cfg.label_smoothing}")
    for name in ("mixup", "ema_epochs", "precise_bn"):
        v = getattr(cfg, name)
        if not math.isfinite(float(v)) or float(v) < 0:
            raise ValueError(f"{name} must be >= 0 (0: off), got {v}")


def balanced_weights(task: str, labels: np.ndarray, n_outputs: int) -> np.ndarray | None:
    """Class weights ``n / (K n_k)`` of the training labels (None for multi-label tasks); a class with no
    training image gets weight 1.

        >>> balanced_weights("binary-class", np.array([[0], [1], [1], [1]]), 2)
        array([2.        , 0.66666667])
    """
    if task.startswith("multi-label"):
        return None
    counts = np.bincount(np.asarray(labels).reshape(-1), minlength=n_outputs).astype(np.float64)
    return np.where(counts > 0, counts.sum() / (n_outputs * np.maximum(counts, 1)), 1.0)


def make_ema(cfg, model, steps_per_ep: int):
    """The weight average of the recipe (None when ``ema_epochs`` is 0): an EMA with decay
    ``1 - 1 / (ema_epochs * steps_per_epoch)``, so its memory is the same number of epochs whatever the
    dataset's size. Without ``precise_bn`` it averages the batch-norm statistics too."""
    if not cfg.ema_epochs or cfg.ema_epochs <= 0:
        return None
    decay = 1.0 - 1.0 / max(1.0, float(cfg.ema_epochs) * steps_per_ep)
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=cfg.precise_bn <= 0)


def shift_images(images: np.ndarray, dy: int, dx: int, padding_mode: str = "zeros") -> np.ndarray:
    """uint8 images (N, H, W[, C]) moved by (dy, dx) pixels; the uncovered border is black (``"zeros"``)
    or repeats the nearest edge pixel (``"border"``, as the augmentation's ``padding_mode``).

        >>> shift_images(np.eye(3, dtype=np.uint8)[None], 0, 1)[0]
        array([[0, 1, 0],
               [0, 0, 1],
               [0, 0, 0]], dtype=uint8)
    """
    h, w = images.shape[1:3]
    if canonical_padding_mode(padding_mode) == "border":
        rows = np.clip(np.arange(h) - dy, 0, h - 1)
        cols = np.clip(np.arange(w) - dx, 0, w - 1)
        return np.ascontiguousarray(images[:, rows][:, :, cols])
    out = np.zeros_like(images)
    if abs(dy) >= h or abs(dx) >= w:
        return out
    src_y, dst_y = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    src_x, dst_x = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[:, dst_y, dst_x] = images[:, src_y, src_x]
    return out


def tta_views(images: np.ndarray, flip: bool = False, padding_mode: str = "zeros") -> list:
    """Test-time augmentation views: the images, their four 1-pixel shifts (the uncovered edge filled as
    the training augmentation fills it) and, with ``flip``, their left-right mirror (only for datasets
    whose mirror image is plausible, :func:`uses_hflip`)."""
    views = [images] + [shift_images(images, dy, dx, padding_mode)
                        for dy, dx in ((1, 0), (-1, 0), (0, 1), (0, -1))]
    if flip:
        views.append(np.ascontiguousarray(images[:, :, ::-1]))
    return views
