"""Chapter 7 exercises: ROC AUC with ties, sensitivity, specificity, Youden's threshold."""

from __future__ import annotations

import numpy as np

from . import Exercise
from ._util import close, rng


def _cases():
    r = rng(0)
    y = r.integers(0, 2, 60)
    yield y, r.random(60)  # distinct scores
    yield y, np.round(r.random(60), 1)  # many ties
    yield np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])
    yield np.array([1, 0, 1, 0, 1]), np.array([0.5, 0.5, 0.5, 0.5, 0.9])


def _auc_pairs(y, s):
    pos, neg = s[y == 1], s[y == 0]
    d = pos[:, None] - neg[None, :]
    return ((d > 0).sum() + 0.5 * (d == 0).sum()) / d.size


def test_auc(roc_auc_score) -> None:
    for y, s in _cases():
        close(float(roc_auc_score(y, s)), _auc_pairs(y, s), f"AUC of {len(y)} samples", rtol=1e-9)


def _preds():
    r = rng(1)
    for _ in range(3):
        yield r.integers(0, 2, 40), r.integers(0, 2, 40)
    yield np.array([1, 1, 0, 0, 1]), np.array([1, 0, 0, 1, 1])


def test_sensitivity(sensitivity) -> None:
    for y, p in _preds():
        close(float(sensitivity(y, p)), ((p == 1) & (y == 1)).sum() / (y == 1).sum(), "sensitivity")


def test_specificity(specificity) -> None:
    for y, p in _preds():
        close(float(specificity(y, p)), ((p == 0) & (y == 0)).sum() / (y == 0).sum(), "specificity")


def _youden(y, s, t):
    p = s >= t
    return (p & (y == 1)).sum() / (y == 1).sum() + (~p & (y == 0)).sum() / (y == 0).sum() - 1


def test_youden(youden_threshold) -> None:
    for y, s in _cases():
        t = float(youden_threshold(y, s))
        best = max(_youden(y, s, c) for c in np.unique(s))
        if t not in set(np.unique(s).tolist()):
            raise AssertionError(f"threshold {t} is not one of the scores")
        close(_youden(y, s, t), best, f"Youden's J at the returned threshold {t}")


EXERCISES = [
    Exercise("roc_auc_score", "binary ROC AUC, exact with tied scores", test_auc,
             "tinygrad_rad.metrics:roc_auc_score"),
    Exercise("sensitivity", "TP / (TP + FN)", test_sensitivity, "tinygrad_rad.metrics:sensitivity"),
    Exercise("specificity", "TN / (TN + FP)", test_specificity, "tinygrad_rad.metrics:specificity"),
    Exercise("youden_threshold", "the score threshold maximising sensitivity + specificity - 1", test_youden,
             "tinygrad_rad.metrics:youden_threshold"),
]
