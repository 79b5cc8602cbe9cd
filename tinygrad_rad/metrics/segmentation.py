"""Segmentation metrics on NumPy masks: Dice, IoU, 95% Hausdorff distance, average surface distance.

    >>> from tinygrad_rad.metrics.segmentation import dice_score, hd95
    >>> a = np.zeros((8, 8), bool); a[2:6, 2:6] = True
    >>> dice_score(a, a), hd95(a, a)
    (1.0, 0.0)

Empty masks (stated once, used everywhere here):

* both masks empty: Dice = IoU = 1, HD95 = ASD = 0 (a perfect "nothing there" answer);
* exactly one empty: Dice = IoU = 0, HD95 = ASD = ``inf`` (no surface to measure to).
  :func:`aggregate` averages distances over the finite values and reports how many were infinite.

Distances use an exact Euclidean distance transform (Felzenszwalb & Huttenlocher 2012, separable
lower envelope of parabolas), in pixels or, given ``spacing`` (row, col), in mm. The surface of a
mask is its pixels with a 4-neighbour outside the mask (image border counts as outside), as in
MONAI / scipy ``binary_erosion``.
"""

from __future__ import annotations

import math

import numba
import numpy as np

__all__ = [
    "dice_score",
    "iou_score",
    "hd95",
    "hausdorff_distance",
    "average_surface_distance",
    "distance_transform_edt",
    "surface",
    "segmentation_report",
    "aggregate",
]


def _as_bool(name: str, a) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim < 2:
        raise ValueError(f"{name}: expected a 2-D (or N-D) mask, got shape {a.shape}")
    return a.astype(bool) if a.dtype != bool else a


def _pair(pred, target, fn: str):
    p, t = _as_bool(f"{fn}: pred", pred), _as_bool(f"{fn}: target", target)
    if p.shape != t.shape:
        raise ValueError(f"{fn}: pred shape {p.shape} and target shape {t.shape} differ")
    return p, t


def dice_score(pred, target) -> float:
    """Dice = 2 |P ∩ T| / (|P| + |T|) on binary masks; 1.0 when both are empty."""
    p, t = _pair(pred, target, "dice_score")
    s = int(p.sum()) + int(t.sum())
    return 1.0 if s == 0 else 2.0 * int((p & t).sum()) / s


def iou_score(pred, target) -> float:
    """IoU (Jaccard) = |P ∩ T| / |P ∪ T|; 1.0 when both are empty."""
    p, t = _pair(pred, target, "iou_score")
    u = int((p | t).sum())
    return 1.0 if u == 0 else int((p & t).sum()) / u


# --------------------------------------------------------------------------- distance transform
@numba.njit(cache=True)
def _edt_1d(f, spacing, d, v, z):
    """Squared DT of one line f (0 at sites, huge elsewhere): d[q] = min_p (q - p)^2 s^2 + f[p]."""
    n = f.shape[0]
    s2 = spacing * spacing
    k = 0
    # skip leading infinite entries: the envelope starts at the first finite one
    first = -1
    for q in range(n):
        if f[q] < 1e300:
            first = q
            break
    if first < 0:
        for q in range(n):
            d[q] = f[q]
        return
    v[0] = first
    z[0] = -1e308
    z[1] = 1e308
    for q in range(first + 1, n):
        if f[q] >= 1e300:
            continue
        while True:
            p = v[k]
            s = ((f[q] + s2 * q * q) - (f[p] + s2 * p * p)) / (2.0 * s2 * (q - p))
            if s <= z[k]:
                k -= 1
                if k < 0:
                    break
            else:
                break
        k += 1
        v[k] = q
        z[k] = s
        z[k + 1] = 1e308
    k = 0
    for q in range(n):
        while z[k + 1] < q:
            k += 1
        p = v[k]
        d[q] = s2 * (q - p) * (q - p) + f[p]


@numba.njit(cache=True)
def _edt_2d(sites, sy, sx):
    h, w = sites.shape
    big = 1e308
    g = np.empty((h, w))
    for i in range(h):
        for j in range(w):
            g[i, j] = 0.0 if sites[i, j] else big
    n = max(h, w)
    v = np.empty(n, np.int64)
    z = np.empty(n + 1)
    d = np.empty(n)
    col = np.empty(h)
    for j in range(w):  # pass 1: along columns (axis 0)
        for i in range(h):
            col[i] = g[i, j]
        _edt_1d(col, sy, d[:h], v, z)
        for i in range(h):
            g[i, j] = d[i]
    for i in range(h):  # pass 2: along rows (axis 1)
        row = g[i].copy()
        _edt_1d(row, sx, d[:w], v, z)
        for j in range(w):
            g[i, j] = d[j]
    return g


def distance_transform_edt(mask, spacing=(1.0, 1.0)) -> np.ndarray:
    """Euclidean distance from every pixel to the nearest *zero* pixel of ``mask`` (scipy's convention).

    ``spacing`` is the (row, col) pixel size; returns float64, ``inf`` everywhere if ``mask`` has no
    zero pixel.

    >>> distance_transform_edt(np.array([[1, 1, 0]]))
    array([[2., 1., 0.]])
    """
    m = np.asarray(mask)
    if m.ndim != 2:
        raise ValueError(f"distance_transform_edt: expected a 2-D mask, got shape {m.shape}")
    sy, sx = (float(spacing), float(spacing)) if np.isscalar(spacing) else map(float, spacing)
    sites = np.ascontiguousarray(~m.astype(bool))
    if not sites.any():
        return np.full(m.shape, np.inf)
    return np.sqrt(_edt_2d(sites, sy, sx))


def surface(mask) -> np.ndarray:
    """Boundary pixels: in the mask with at least one 4-neighbour outside it (or on the image edge)."""
    m = _as_bool("surface", mask)
    p = np.pad(m, 1, constant_values=False)
    inner = p[1:-1, 1:-1] & p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]
    return m & ~inner


def _surface_distances(pred, target, spacing):
    """Distances from each surface pixel of pred to target's surface, and back (None if one is empty)."""
    sp, st = surface(pred), surface(target)
    if not sp.any() or not st.any():
        return None
    dt_t = distance_transform_edt(~st, spacing)  # distance to target surface
    dt_p = distance_transform_edt(~sp, spacing)
    return dt_t[sp], dt_p[st]


def _distance_metric(pred, target, spacing, fn, reduce):
    p, t = _pair(pred, target, fn)
    if p.ndim != 2:
        raise ValueError(
            f"{fn}: expected 2-D masks, got shape {p.shape} (loop over slices or use segmentation_report)"
        )
    if not p.any() and not t.any():
        return 0.0
    if not p.any() or not t.any():
        return math.inf
    d_pt, d_tp = _surface_distances(p, t, spacing)
    return float(reduce(d_pt, d_tp))


def hausdorff_distance(pred, target, spacing=(1.0, 1.0), percentile: float = 100.0) -> float:
    """Symmetric Hausdorff distance between the mask surfaces; ``percentile`` < 100 gives the robust
    version: max of the two directed percentiles (MONAI's ``compute_hausdorff_distance``)."""
    return _distance_metric(
        pred,
        target,
        spacing,
        "hausdorff_distance",
        lambda a, b: max(np.percentile(a, percentile), np.percentile(b, percentile)),
    )


def hd95(pred, target, spacing=(1.0, 1.0)) -> float:
    """95th-percentile Hausdorff distance (pixels, or mm with ``spacing``); 0 if both empty, inf if one is."""
    return hausdorff_distance(pred, target, spacing, 95.0)


def average_surface_distance(pred, target, spacing=(1.0, 1.0), symmetric: bool = True) -> float:
    """Mean distance between surfaces: over both directions pooled (``symmetric=True``, MONAI's
    ``compute_average_surface_distance(symmetric=True)``) or from pred's surface to target's only."""

    def red(a, b):
        return np.concatenate([a, b]).mean() if symmetric else a.mean()

    return _distance_metric(pred, target, spacing, "average_surface_distance", red)


def segmentation_report(preds, targets, spacing=(1.0, 1.0)) -> list[dict]:
    """Per-image dice, iou, hd95, asd for stacks (N, H, W) of binary masks (or a single 2-D pair)."""
    p, t = _pair(preds, targets, "segmentation_report")
    if p.ndim == 2:
        p, t = p[None], t[None]
    if p.ndim != 3:
        raise ValueError(f"segmentation_report: expected (N, H, W) masks, got shape {p.shape}")
    return [
        dict(
            dice=dice_score(a, b),
            iou=iou_score(a, b),
            hd95=hd95(a, b, spacing),
            asd=average_surface_distance(a, b, spacing),
        )
        for a, b in zip(p, t)
    ]


def aggregate(per_image: list[dict]) -> dict:
    """Mean of each metric over images. Infinite distances (one mask empty) are left out of the mean
    and counted in ``{name}_n_inf``; a mean over no finite value is nan."""
    out: dict = {"n": len(per_image)}
    if not per_image:
        return out
    for k in per_image[0]:
        v = np.array([r[k] for r in per_image], dtype=np.float64)
        fin = np.isfinite(v)
        out[k] = float(v[fin].mean()) if fin.any() else math.nan
        if (~fin).any():
            out[f"{k}_n_inf"] = int((~fin).sum())
    return out
