"""Metrics on NumPy arrays (classification here; segmentation and detection in their own modules).

    >>> from tinygrad_rad.metrics import roc_auc_score, evaluate_predictions
"""

from __future__ import annotations

from .classification import (
    accuracy,
    balanced_accuracy,
    binary_report,
    bootstrap_ci,
    classification_report,
    confusion_matrix,
    evaluate_predictions,
    f1_score,
    npv,
    ppv,
    precision,
    recall,
    roc_auc_score,
    roc_curve,
    sensitivity,
    specificity,
    youden_threshold,
)

__all__ = [
    "accuracy",
    "balanced_accuracy",
    "binary_report",
    "bootstrap_ci",
    "classification_report",
    "confusion_matrix",
    "evaluate_predictions",
    "f1_score",
    "npv",
    "ppv",
    "precision",
    "recall",
    "roc_auc_score",
    "roc_curve",
    "sensitivity",
    "specificity",
    "youden_threshold",
]
from .detection import average_precision, detection_report, froc  # noqa: E402,F401
from .segmentation import average_surface_distance, dice_score, hd95, iou_score, segmentation_report  # noqa: E402,F401
