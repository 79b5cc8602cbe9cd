"""Detection helpers in NumPy: boxes, NMS, connected components, CenterNet targets and decoding, and a
non-learned blob-detector baseline.

Boxes are ``(x_min, y_min, x_max, y_max)`` in half-open pixel coordinates: pixel column ``i`` spans
``[i, i + 1)``, so a box of one pixel is ``(i, j, i + 1, j + 1)`` and its centre is ``(i + 0.5, j + 0.5)``.

    >>> from tinygrad_rad.detect import nms, box_iou
    >>> boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]], float)
    >>> nms(boxes, np.array([0.9, 0.8, 0.7]), iou_threshold=0.5)
    array([0, 2])
"""

from __future__ import annotations

import math

import numba
import numpy as np

__all__ = [
    "box_iou",
    "box_area",
    "nms",
    "label_components",
    "boxes_from_mask",
    "gaussian_radius",
    "draw_gaussian",
    "centernet_targets",
    "decode_centernet",
    "blob_detect",
    "gaussian_blur",
]


# -------------------------------------------------------------------------------------------- boxes
def _boxes(b, name="boxes") -> np.ndarray:
    a = np.asarray(b, dtype=np.float64)
    if a.size == 0:
        return a.reshape(0, 4)
    if a.ndim != 2 or a.shape[1] != 4:
        raise ValueError(f"{name} must have shape (K, 4) as (x_min, y_min, x_max, y_max), got {a.shape}")
    return a


def box_area(boxes) -> np.ndarray:
    b = _boxes(boxes)
    return np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)


def box_iou(a, b) -> np.ndarray:
    """Pairwise IoU (K, M) of two box sets (torchvision's ``box_iou``)."""
    a, b = _boxes(a, "a"), _boxes(b, "b")
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def nms(boxes, scores, iou_threshold: float = 0.5) -> np.ndarray:
    """Greedy non-maximum suppression (torchvision's ``nms``): indices of kept boxes, best score first.
    A box is dropped when its IoU with an already kept box is > ``iou_threshold``."""
    b = _boxes(boxes)
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


# ------------------------------------------------------------------------------------ CenterNet
def gaussian_radius(h: float, w: float, min_overlap: float = 0.7) -> float:
    """CenterNet's radius: the largest centre shift that keeps IoU >= min_overlap with the true box."""
    a1, b1 = 1.0, h + w
    c1 = w * h * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + math.sqrt(b1**2 - 4 * a1 * c1)) / 2
    a2, b2 = 4.0, 2 * (h + w)
    c2 = (1 - min_overlap) * w * h
    r2 = (b2 + math.sqrt(b2**2 - 4 * a2 * c2)) / 2
    a3, b3 = 4 * min_overlap, -2 * min_overlap * (h + w)
    c3 = (min_overlap - 1) * w * h
    r3 = (b3 + math.sqrt(b3**2 - 4 * a3 * c3)) / 2
    return min(r1, r2, r3)


def draw_gaussian(heat: np.ndarray, cx: int, cy: int, sigma: float) -> None:
    """heat = max(heat, exp(-d^2 / 2 sigma^2)) around integer centre (cx, cy), in place (peak exactly 1)."""
    h, w = heat.shape
    r = max(1, int(math.ceil(3 * sigma)))
    y0, y1, x0, x1 = max(0, cy - r), min(h, cy + r + 1), max(0, cx - r), min(w, cx + r + 1)
    yy, xx = np.mgrid[y0:y1, x0:x1]
    g = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma * sigma))
    np.maximum(heat[y0:y1, x0:x1], g, out=heat[y0:y1, x0:x1])


def centernet_targets(boxes, out_h: int, out_w: int, stride: int) -> dict:
    """Dense CenterNet targets for one image at output size (out_h, out_w) = image size / stride:
    ``heat`` (1, H, W) Gaussian peaks, ``size`` (2, H, W) log(w, h) in output pixels, ``offset`` (2, H, W)
    sub-cell centre offset in [0, 1), and ``mask`` (1, H, W) = 1 at the centre cells."""
    b = _boxes(boxes)
    heat = np.zeros((out_h, out_w), np.float32)
    size = np.zeros((2, out_h, out_w), np.float32)
    off = np.zeros((2, out_h, out_w), np.float32)
    mask = np.zeros((1, out_h, out_w), np.float32)
    for x0, y0, x1, y1 in b:
        w, h = (x1 - x0) / stride, (y1 - y0) / stride
        if w <= 0 or h <= 0:
            continue
        cx, cy = (x0 + x1) / 2 / stride, (y0 + y1) / 2 / stride
        ix, iy = int(math.floor(cx)), int(math.floor(cy))
        if not (0 <= ix < out_w and 0 <= iy < out_h):
            continue
        r = max(0.0, gaussian_radius(h, w))
        draw_gaussian(heat, ix, iy, sigma=max((2 * int(r) + 1) / 6.0, 0.5))
        size[:, iy, ix] = np.log(w), np.log(h)
        off[:, iy, ix] = cx - ix, cy - iy
        mask[0, iy, ix] = 1.0
    return {"heat": heat[None], "size": size, "offset": off, "mask": mask}


def _local_max(a: np.ndarray, k: int = 3) -> np.ndarray:
    """Boolean map of pixels that equal the maximum of their k x k neighbourhood (the 'max-pool NMS')."""
    p = k // 2
    padded = np.pad(a, ((p, p), (p, p)), constant_values=-np.inf)
    h, w = a.shape
    m = np.full(a.shape, -np.inf)
    for dy in range(k):
        for dx in range(k):
            m = np.maximum(m, padded[dy : dy + h, dx : dx + w])
    return a >= m


def decode_centernet(
    heat_logits: np.ndarray,
    size: np.ndarray,
    offset: np.ndarray,
    stride: int,
    top_k: int = 50,
    score_threshold: float = 0.01,
    nms_iou: float | None = 0.3,
):
    """Boxes and scores for one image from head outputs: heat (1, H, W) logits, size (2, H, W) log sizes,
    offset (2, H, W). Peaks = 3x3 local maxima of sigmoid(heat); then optional box NMS.

    Returns ``(boxes (K, 4) in input pixels, scores (K,))`` sorted by score."""
    hm = 1.0 / (1.0 + np.exp(-np.asarray(heat_logits, np.float64)[0]))
    peaks = _local_max(hm) & (hm >= score_threshold)
    ys, xs = np.nonzero(peaks)
    sc = hm[ys, xs]
    order = np.argsort(-sc, kind="stable")[:top_k]
    ys, xs, sc = ys[order], xs[order], sc[order]
    w = np.exp(np.clip(size[0, ys, xs], -5, 6))
    h = np.exp(np.clip(size[1, ys, xs], -5, 6))
    cx, cy = xs + offset[0, ys, xs], ys + offset[1, ys, xs]
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1) * stride
    if nms_iou is not None and len(boxes):
        keep = nms(boxes, sc, nms_iou)
        boxes, sc = boxes[keep], sc[keep]
    return boxes.reshape(-1, 4), sc


# ------------------------------------------------------------------------------------ blob baseline
def _gauss_matrix(n: int, sigma: float) -> np.ndarray:
    """(n, n) matrix that blurs one axis with a Gaussian (edges: renormalised, like 'nearest'-ish)."""
    i = np.arange(n)
    g = np.exp(-((i[:, None] - i[None, :]) ** 2) / (2 * sigma * sigma))
    return g / g.sum(1, keepdims=True)


def gaussian_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of a 2-D image as two small matrix products ``G_h @ img @ G_w^T``."""
    a = np.asarray(img, dtype=np.float64)
    return _gauss_matrix(a.shape[0], sigma) @ a @ _gauss_matrix(a.shape[1], sigma).T


def blob_detect(
    img: np.ndarray,
    sigmas=(1.0, 1.5, 2.0, 3.0, 4.0, 6.0),
    min_intensity: float = 0.1,
    threshold: float = 0.0,
    top_k: int = 50,
    nms_iou: float = 0.3,
):
    """Non-learned baseline: multi-scale Hessian bright-blob detector.

    At each scale the image is Gaussian-blurred and its Hessian eigenvalues l1 <= l2 computed; a bright
    blob has both negative, a bright vessel (tube) only one, so the score ``sigma^2 * max(0, -l2)`` (the
    scale-normalised smaller curvature) keeps blobs and suppresses vessels. Scores are maxed over
    scales; 3x3 local maxima above ``threshold`` whose blurred intensity exceeds ``min_intensity`` become
    boxes of side ``2 sqrt(2) sigma`` centred on the peak. Returns ``(boxes (K, 4), scores (K,))``
    sorted by score (at most ``top_k`` after NMS at ``nms_iou``).
    """
    a = np.asarray(img, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"blob_detect: expected a 2-D image, got shape {a.shape}")
    resp = np.zeros(a.shape)
    best_sigma = np.full(a.shape, float(sigmas[0]))
    for s in sigmas:
        g = gaussian_blur(a, s)
        gy, gx = np.gradient(g)
        gyy, gyx = np.gradient(gy)
        _, gxx = np.gradient(gx)
        # eigenvalues of [[gxx, gyx], [gyx, gyy]]: mean +- sqrt(((gxx - gyy) / 2)^2 + gyx^2)
        mean, dev = (gxx + gyy) / 2, np.sqrt(((gxx - gyy) / 2) ** 2 + gyx**2)
        score = s * s * np.clip(-(mean + dev), 0, None)
        better = score > resp
        resp[better], best_sigma[better] = score[better], s
    peaks = _local_max(resp) & (resp > threshold) & (gaussian_blur(a, 1.0) > min_intensity)
    ys, xs = np.nonzero(peaks)
    sc = resp[ys, xs]
    order = np.argsort(-sc, kind="stable")[: top_k * 4]
    ys, xs, sc = ys[order], xs[order], sc[order]
    half = np.sqrt(2) * best_sigma[ys, xs]
    cx, cy = xs + 0.5, ys + 0.5
    boxes = np.stack([cx - half, cy - half, cx + half, cy + half], axis=1).reshape(-1, 4)
    if len(boxes):
        keep = nms(boxes, sc, nms_iou)[:top_k]
        boxes, sc = boxes[keep], sc[keep]
    return boxes, sc
