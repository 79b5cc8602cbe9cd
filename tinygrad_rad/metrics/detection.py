"""Detection metrics on NumPy boxes: FROC (LUNA16-style) and average precision.

Inputs are per image: ``pred_boxes[i]`` (K_i, 4), ``pred_scores[i]`` (K_i,), ``gt_boxes[i]`` (M_i, 4),
boxes as half-open ``(x_min, y_min, x_max, y_max)`` pixels.

    >>> from tinygrad_rad.metrics.detection import froc, average_precision
    >>> r = froc(pred_boxes, pred_scores, gt_boxes)
    >>> r["sensitivity_at"]["1"], r["mean_sensitivity"]
    >>> average_precision(pred_boxes, pred_scores, gt_boxes, iou_threshold=0.5, criterion="iou")

Hit criterion (``criterion``): ``"center_or_iou"`` (default for both metrics) - a prediction hits a true
box when the prediction's centre lies inside the true box OR their IoU is >= ``iou_threshold``;
``"iou"`` - IoU >= threshold only; ``"center"`` - centre inside only.

* FROC: every true box hit by a prediction with score >= t counts as detected (sensitivity = detected
  / all true boxes); a prediction that hits no true box is a false positive; extra hits on an already
  found box are ignored, neither TP nor FP (as in LUNA16). Sensitivity is read at 1/8, 1/4, 1/2, 1, 2,
  4, 8 average false positives per image (per slice here) - the best sensitivity among thresholds
  whose FP rate is <= the target (0 if none) - and averaged (the CPM score).
* AP: predictions sorted by score are greedily matched one-to-one to the unmatched true box they hit
  best (highest IoU); precision-recall is integrated with the all-point interpolation (VOC 2010+,
  COCO-like without the 101-point sampling).
* Edge cases: no true boxes anywhere -> sensitivities and AP are nan (undefined) and FPs still count;
  no predictions -> sensitivity 0 and AP 0 (when there are true boxes); all predictions false -> 0.
"""

from __future__ import annotations

import math

import numpy as np

from ..boxes import as_boxes, box_iou

__all__ = ["FROC_RATES", "match_hits", "froc", "average_precision", "detection_report"]

FROC_RATES = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)


def _check(pred_boxes, pred_scores, gt_boxes):
    if not (len(pred_boxes) == len(pred_scores) == len(gt_boxes)):
        raise ValueError(
            f"detection metrics: got {len(pred_boxes)} pred_boxes, {len(pred_scores)} pred_scores and "
            f"{len(gt_boxes)} gt_boxes lists; they need one entry per image"
        )
    pb = [as_boxes(b, f"pred_boxes[{i}]") for i, b in enumerate(pred_boxes)]
    ps = [np.asarray(s, dtype=np.float64).reshape(-1) for s in pred_scores]
    gb = [as_boxes(b, f"gt_boxes[{i}]") for i, b in enumerate(gt_boxes)]
    for i, (b, s) in enumerate(zip(pb, ps)):
        if len(b) != len(s):
            raise ValueError(f"image {i}: {len(b)} predicted boxes but {len(s)} scores")
    return pb, ps, gb


def match_hits(pred: np.ndarray, gt: np.ndarray, iou_threshold: float, criterion: str = "center_or_iou"):
    """Boolean (K, M) matrix: does prediction k hit true box m (see module docstring), and the IoUs."""
    pred, gt = as_boxes(pred), as_boxes(gt)
    iou = box_iou(pred, gt)
    if criterion not in ("center_or_iou", "iou", "center"):
        raise ValueError(f"criterion must be 'center_or_iou', 'iou' or 'center', got {criterion!r}")
    cx = (pred[:, 0] + pred[:, 2]) / 2
    cy = (pred[:, 1] + pred[:, 3]) / 2
    inside = (
        (cx[:, None] >= gt[None, :, 0])
        & (cx[:, None] < gt[None, :, 2])
        & (cy[:, None] >= gt[None, :, 1])
        & (cy[:, None] < gt[None, :, 3])
    )
    by_iou = iou >= iou_threshold
    hit = {"center_or_iou": inside | by_iou, "iou": by_iou, "center": inside}[criterion]
    return hit, iou


def froc(
    pred_boxes,
    pred_scores,
    gt_boxes,
    rates=FROC_RATES,
    iou_threshold: float = 0.1,
    criterion: str = "center_or_iou",
) -> dict:
    """FROC curve and sensitivities at the given FP-per-image rates; see the module docstring.

    Returns ``{"fps": FP/image per threshold, "sensitivity": per threshold, "thresholds",
    "sensitivity_at": {str(rate): s}, "mean_sensitivity", "n_images", "n_gt", "n_pred"}``.
    """
    pb, ps, gb = _check(pred_boxes, pred_scores, gt_boxes)
    n_img = len(pb)
    n_gt = sum(len(g) for g in gb)
    # for each prediction: its score, and which global true box(es) it hits
    scores, hits_of = [], []
    offset = 0
    for b, s, g in zip(pb, ps, gb):
        hit, _ = match_hits(b, g, iou_threshold, criterion)
        for k in range(len(b)):
            scores.append(s[k])
            hits_of.append(offset + np.nonzero(hit[k])[0])
        offset += len(g)
    scores = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-scores, kind="stable")
    found = np.zeros(n_gt, bool)
    n_found, n_fp = 0, 0
    thr, sens, fps = [], [], []
    for rank, k in enumerate(order):
        h = hits_of[k]
        if h.size == 0:
            n_fp += 1
        else:
            new = h[~found[h]]
            found[new] = True
            n_found += new.size
        # record an operating point after the last prediction of each distinct score
        if rank + 1 == len(order) or scores[order[rank + 1]] != scores[k]:
            thr.append(scores[k])
            sens.append(n_found / n_gt if n_gt else math.nan)
            fps.append(n_fp / max(n_img, 1))
    fps_a, sens_a = np.asarray(fps), np.asarray(sens)
    at = {}
    for r in rates:
        if n_gt == 0:
            at[_rate_key(r)] = math.nan
            continue
        ok = fps_a <= r
        at[_rate_key(r)] = float(sens_a[ok].max()) if ok.any() else 0.0
    vals = list(at.values())
    return {
        "fps": fps_a,
        "sensitivity": sens_a,
        "thresholds": np.asarray(thr),
        "sensitivity_at": at,
        "mean_sensitivity": float(np.mean(vals)) if n_gt else math.nan,
        "n_images": n_img,
        "n_gt": n_gt,
        "n_pred": int(len(scores)),
        "max_sensitivity": float(sens_a.max()) if len(sens_a) and n_gt else (0.0 if n_gt else math.nan),
    }


def _rate_key(r: float) -> str:
    return {0.125: "1/8", 0.25: "1/4", 0.5: "1/2"}.get(r, f"{r:g}")


def average_precision(
    pred_boxes, pred_scores, gt_boxes, iou_threshold: float = 0.5, criterion: str = "center_or_iou"
) -> float:
    """All-point-interpolated AP with one-to-one greedy matching (see the module docstring)."""
    pb, ps, gb = _check(pred_boxes, pred_scores, gt_boxes)
    n_gt = sum(len(g) for g in gb)
    if n_gt == 0:
        return math.nan
    recs = []  # (score, image, k)
    for i, s in enumerate(ps):
        recs.extend((float(s[k]), i, k) for k in range(len(s)))
    if not recs:
        return 0.0
    recs.sort(key=lambda r: -r[0])
    hits = [match_hits(b, g, iou_threshold, criterion) for b, g in zip(pb, gb)]
    used = [np.zeros(len(g), bool) for g in gb]
    tp = np.zeros(len(recs))
    for r, (_, i, k) in enumerate(recs):
        hit, iou = hits[i]
        if hit.shape[1] == 0:
            continue
        cand = np.nonzero(hit[k] & ~used[i])[0]
        if cand.size:
            m = cand[np.argmax(iou[k, cand])]
            used[i][m] = True
            tp[r] = 1
    ctp = np.cumsum(tp)
    recall = ctp / n_gt
    precision = ctp / np.arange(1, len(recs) + 1)
    mrec = np.concatenate([[0.0], recall, [recall[-1]]])
    mpre = np.concatenate([[1.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    idx = np.nonzero(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[idx + 1] - mrec[idx]) * mpre[idx + 1]))


def detection_report(pred_boxes, pred_scores, gt_boxes, froc_iou: float = 0.1) -> dict:
    """FROC sensitivities (per FP/slice rate and mean) and AP at IoU 0.5 and 0.1 (centre-or-IoU hits)."""
    f = froc(pred_boxes, pred_scores, gt_boxes, iou_threshold=froc_iou)
    return {
        "froc_sensitivity": f["sensitivity_at"],
        "froc_mean": f["mean_sensitivity"],
        "max_sensitivity": f["max_sensitivity"],
        "ap50": average_precision(pred_boxes, pred_scores, gt_boxes, 0.5),
        "ap10": average_precision(pred_boxes, pred_scores, gt_boxes, 0.1),
        "ap50_iou_only": average_precision(pred_boxes, pred_scores, gt_boxes, 0.5, criterion="iou"),
        "n_images": f["n_images"],
        "n_gt": f["n_gt"],
        "n_pred": f["n_pred"],
    }
