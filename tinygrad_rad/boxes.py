"""Boxes in NumPy: area, IoU, non-maximum suppression, connected components and the boxes of a mask.

Boxes are ``(x_min, y_min, x_max, y_max)`` in half-open pixel coordinates: pixel column ``i`` spans
``[i, i + 1)``, so a box of one pixel is ``(i, j, i + 1, j + 1)`` and its centre is ``(i + 0.5, j + 0.5)``.

    >>> from tinygrad_rad.boxes import nms, box_iou
    >>> boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]], float)
    >>> nms(boxes, np.array([0.9, 0.8, 0.7]), iou_threshold=0.5)
    array([0, 2])

Used by the detection data (:mod:`tinygrad_rad.data.detection`), the CenterNet decoder
(:mod:`tinygrad_rad.models.detection`), the detection metrics and the detection task.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["as_boxes", "box_area", "box_iou", "nms", "local_maxima", "label_components", "boxes_from_mask"]


# -------------------------------------------------------------------------------------------- boxes
def as_boxes(b, name: str = "boxes") -> np.ndarray:
    """``b`` as a float64 (K, 4) array (an empty input gives (0, 4)); a clear error for any other shape."""
    a = np.asarray(b, dtype=np.float64)
    if a.size == 0:
        return a.reshape(0, 4)
    if a.ndim != 2 or a.shape[1] != 4:
        raise ValueError(f"{name} must have shape (K, 4) as (x_min, y_min, x_max, y_max), got {a.shape}")
    return a


def box_area(boxes) -> np.ndarray:
    b = as_boxes(boxes)
    return np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)


def box_iou(a, b) -> np.ndarray:
    """Pairwise IoU (K, M) of two box sets (torchvision's ``box_iou``)."""
    a, b = as_boxes(a, "a"), as_boxes(b, "b")
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def nms(boxes, scores, iou_threshold: float = 0.5) -> np.ndarray:
    """Greedy non-maximum suppression (torchvision's ``nms``): indices of kept boxes, best score first.
    A box is dropped when its IoU with an already kept box is > ``iou_threshold``."""
    b = as_boxes(boxes)
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if s.shape[0] != b.shape[0]:
        raise ValueError(f"nms: {b.shape[0]} boxes but {s.shape[0]} scores")
    order = np.argsort(-s, kind="stable")
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        if order.size == 1:
            break
        iou = box_iou(b[i : i + 1], b[order[1:]])[0]
        order = order[1:][iou <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


# ------------------------------------------------------------------------------ connected components
@numba.njit(cache=True)
def _label(mask, eight):
    h, w = mask.shape
    lab = np.zeros((h, w), np.int32)
    stack = np.empty((h * w, 2), np.int64)
    n = 0
    for i in range(h):
        for j in range(w):
            if mask[i, j] and lab[i, j] == 0:
                n += 1
                lab[i, j] = n
                top = 0
                stack[0, 0], stack[0, 1] = i, j
                top = 1
                while top > 0:
                    top -= 1
                    y, x = stack[top, 0], stack[top, 1]
                    for dy in range(-1, 2):
                        for dx in range(-1, 2):
                            if dy == 0 and dx == 0:
                                continue
                            if not eight and dy != 0 and dx != 0:
                                continue
                            yy, xx = y + dy, x + dx
                            if 0 <= yy < h and 0 <= xx < w and mask[yy, xx] and lab[yy, xx] == 0:
                                lab[yy, xx] = n
                                stack[top, 0], stack[top, 1] = yy, xx
                                top += 1
    return lab, n


def label_components(mask, connectivity: int = 8) -> tuple[np.ndarray, int]:
    """Connected components of a 2-D binary mask: (labels int32 with 0 = background, count)."""
    m = np.ascontiguousarray(np.asarray(mask).astype(bool))
    if m.ndim != 2:
        raise ValueError(f"label_components: expected a 2-D mask, got shape {m.shape}")
    if connectivity not in (4, 8):
        raise ValueError(f"label_components: connectivity must be 4 or 8, got {connectivity}")
    return _label(m, connectivity == 8)


def boxes_from_mask(mask, connectivity: int = 4, min_pixels: int = 1) -> np.ndarray:
    """One half-open box per connected component (K, 4), ordered by label (raster order). The default
    4-connectivity is scipy.ndimage.label's, with which lidc_nodules/boxes_512.csv was made."""
    lab, n = label_components(mask, connectivity)
    out = []
    for k in range(1, n + 1):
        ys, xs = np.nonzero(lab == k)
        if ys.size >= min_pixels:
            out.append((xs.min(), ys.min(), xs.max() + 1, ys.max() + 1))
    return np.asarray(out, dtype=np.float64).reshape(-1, 4)


# ------------------------------------------------------------------------------------ peaks
def local_maxima(a: np.ndarray, k: int = 3) -> np.ndarray:
    """Boolean map of pixels that equal the maximum of their k x k neighbourhood (the 'max-pool NMS')."""
    p = k // 2
    padded = np.pad(a, ((p, p), (p, p)), constant_values=-np.inf)
    h, w = a.shape
    m = np.full(a.shape, -np.inf)
    for dy in range(k):
        for dx in range(k):
            m = np.maximum(m, padded[dy : dy + h, dx : dx + w])
    return a >= m
