"""Pictures of a run: matplotlib plots (curves, ROC, confusion matrix, Grad-CAM grid) and plain-NumPy
PNGs (:func:`write_png`, segmentation outlines :func:`overlay`, detection boxes :func:`draw_boxes`).

    >>> from tinygrad_rad import plots
    >>> plots.plot_history(history, "runs/demo/curves.png")      # history: list of per-epoch dicts
    >>> plots.plot_roc("binary-class", y_true, y_prob, "runs/demo/roc.png")

matplotlib is optional (the ``viz`` extra): :func:`available` says whether it is installed, and every
matplotlib plotting function raises :class:`PlotsUnavailable` with an install hint when it is not.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np

from .metrics import roc_auc_score, roc_curve
from .metrics.segmentation import surface
from .utils import atomic_output, atomic_write_bytes

MISSING_MESSAGE = "matplotlib is not installed; install it with: pip install 'tinygrad_rad[viz]'"


class PlotsUnavailable(ImportError):
    """matplotlib is missing."""


def available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _plt():
    try:
        import matplotlib

        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise PlotsUnavailable(MISSING_MESSAGE) from e
    return plt


def _save(fig, path) -> Path:
    """Save a figure atomically (temp file + os.replace) and close it."""
    plt = _plt()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_output(path, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    finally:
        plt.close(fig)
    return path


_LABELS = {"train_loss": "train", "val_loss": "validation", "val_auc": "val AUC", "val_acc": "val ACC",
           "train_acc": "train ACC", "val_dice": "val Dice", "val_iou": "val IoU"}


def plot_history(history: list, path) -> Path:
    """Per-epoch curves of a training run's ``history.csv`` rows: the losses on the left (``train_loss``,
    ``val_loss`` or ``loss``), the validation metrics (every ``val_*`` column but the loss, and
    ``train_acc``) on the right when there are any.

        >>> plot_history([{"epoch": 1, "train_loss": .5, "val_loss": .4, "val_auc": .9}], "c.png")
    """
    plt = _plt()
    ep = [r["epoch"] for r in history]
    keys = list(history[0]) if history else []

    def col(k):
        return [np.nan if r.get(k) is None else r[k] for r in history]

    losses = [k for k in ("train_loss", "val_loss", "loss") if k in keys]
    metrics = [k for k in keys if k.startswith("val_") and k != "val_loss"]
    fig, axes = plt.subplots(1, 2 if metrics else 1, figsize=(10 if metrics else 5.2, 3.8), squeeze=False)
    a1 = axes[0, 0]
    for k in losses:
        a1.plot(ep, col(k), "o-", label=_LABELS.get(k, k))
    a1.set_xlabel("epoch")
    a1.set_ylabel("loss")
    a1.set_title("loss")
    a1.legend()
    a1.grid(alpha=0.3)
    if metrics:
        a2 = axes[0, 1]
        for k, style in zip(metrics, ("o-", "s-", "^-", "v-", "d-")):
            a2.plot(ep, col(k), style, label=_LABELS.get(k, k))
        if any(r.get("train_acc") is not None for r in history):
            a2.plot(ep, col("train_acc"), "--", alpha=0.7, label="train ACC")
        a2.set_xlabel("epoch")
        a2.set_title("validation")
        a2.legend()
        a2.grid(alpha=0.3)
    from matplotlib.ticker import MaxNLocator

    for ax in axes.ravel():
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    return _save(fig, path)


def _roc(y, s):
    fpr, tpr, _ = roc_curve(y, s)
    return fpr, tpr, roc_auc_score(y, s)


def plot_roc(task: str, y_true, y_prob, path, label_names: list | None = None, max_curves: int = 14) -> Path:
    """ROC curve of the positive class (binary) or one-vs-rest curves per class/label, with AUCs.

        >>> plot_roc("binary-class", y_true, y_prob, "roc.png")    # y_prob (N, 2) or (N,)
    """
    plt = _plt()
    y_true = np.asarray(y_true)
    y_prob = np.asarray(y_prob, dtype=np.float64)
    fig, ax = plt.subplots(figsize=(4.8, 4.6))
    if task == "binary-class":
        s = y_prob[:, -1] if y_prob.ndim == 2 else y_prob
        fpr, tpr, auc = _roc(y_true.reshape(-1), s)
        name = label_names[-1] if label_names else "positive"
        ax.plot(fpr, tpr, lw=2, label=f"{name} (AUC = {auc:.3f})")
    else:
        k = y_prob.shape[1]
        multilabel = task.startswith("multi-label")
        for j in range(min(k, max_curves)):
            yj = y_true[:, j] if multilabel else (y_true.reshape(-1) == j)
            if yj.min() == yj.max():
                continue
            fpr, tpr, auc = _roc(yj.astype(np.int64), y_prob[:, j])
            name = label_names[j] if label_names and j < len(label_names) else str(j)
            ax.plot(fpr, tpr, lw=1.2, label=f"{name} ({auc:.3f})")
    ax.plot([0, 1], [0, 1], "k--", lw=0.8, alpha=0.6)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("false positive rate (1 - specificity)")
    ax.set_ylabel("true positive rate (sensitivity)")
    ax.set_title("test ROC")
    ax.legend(loc="lower right", fontsize=7 if task != "binary-class" else 9)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_confusion_matrix(cm, path, label_names: list | None = None,
                          title: str = "test confusion matrix") -> Path:
    """Counts (and row percentages) of a K x K confusion matrix (rows: true class, columns: predicted).

        >>> plot_confusion_matrix([[200, 34], [10, 380]], "cm.png", ["normal", "pneumonia"])
    """
    plt = _plt()
    cm = np.asarray(cm, dtype=np.int64)
    k = cm.shape[0]
    names = list(label_names) if label_names and len(label_names) == k else [str(i) for i in range(k)]
    size = max(3.8, 0.55 * k + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(cm, cmap="Blues")
    rows = cm.sum(axis=1, keepdims=True).clip(min=1)
    thresh = cm.max() / 2.0 if cm.size else 0
    for i in range(k):
        for j in range(k):
            txt = f"{cm[i, j]}\n{100.0 * cm[i, j] / rows[i, 0]:.0f}%" if k <= 6 else f"{cm[i, j]}"
            ax.text(j, i, txt, ha="center", va="center", fontsize=9 if k <= 6 else 6,
                    color="white" if cm[i, j] > thresh else "black")
    ax.set_xticks(range(k))
    ax.set_yticks(range(k))
    ax.set_xticklabels(names, rotation=45 if k > 2 else 0, ha="right" if k > 2 else "center", fontsize=8)
    ax.set_yticklabels(names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    return _save(fig, path)


def _gray(img: np.ndarray) -> np.ndarray:
    img = np.asarray(img, dtype=np.float64)
    if img.ndim == 3 and img.shape[0] in (1, 3):  # (C, H, W) -> (H, W, C)
        img = img.transpose(1, 2, 0)
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    lo, hi = float(img.min()), float(img.max())
    return (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)


def plot_explanations(images, cams, saliency, path, titles: list | None = None, alpha: float = 0.45) -> Path:
    """A grid: per image, the image, its Grad-CAM heat map overlaid, and its gradient saliency map.

    ``images`` (N, H, W), (N, H, W, 3) or (N, C, H, W); ``cams`` and ``saliency`` (N, H, W) in [0, 1].

        >>> plot_explanations(imgs, cams, sal, "gradcam.png", titles=["p=0.93", ...])
    """
    plt = _plt()
    n = len(images)
    if n == 0:
        raise ValueError("plot_explanations: no images to plot")
    per_row = 4 if n >= 4 else n
    rows = -(-n // per_row)
    fig, axes = plt.subplots(rows, per_row * 3, figsize=(per_row * 3 * 1.5, rows * 2.1), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for i in range(n):
        r, c = divmod(i, per_row)
        img = _gray(images[i])
        cmap = "gray" if img.ndim == 2 else None
        a0, a1, a2 = axes[r, 3 * c], axes[r, 3 * c + 1], axes[r, 3 * c + 2]
        a0.imshow(img, cmap=cmap)
        a1.imshow(img, cmap=cmap)
        a1.imshow(np.asarray(cams[i]), cmap="jet", alpha=alpha, vmin=0, vmax=1)
        a2.imshow(np.asarray(saliency[i]), cmap="hot", vmin=0, vmax=1)
        if titles:
            a0.set_title(titles[i], fontsize=7)
        a1.set_title("Grad-CAM", fontsize=7)
        a2.set_title("saliency", fontsize=7)
    fig.tight_layout(pad=0.3)
    return _save(fig, path)


# ------------------------------------------------------- pictures in NumPy (no matplotlib needed)
def write_png(path: str | os.PathLike, img: np.ndarray) -> Path:
    """Write a uint8 (H, W) gray or (H, W, 3) RGB array as a PNG, atomically (zlib only, no imaging library).
    Float arrays in [0, 1] are scaled by 255."""
    a = np.asarray(img)
    if a.dtype != np.uint8:
        a = np.clip(
            np.rint(a.astype(np.float64) * (255.0 if a.max(initial=0) <= 1.0 else 1.0)), 0, 255
        ).astype(np.uint8)
    if a.ndim == 2:
        color = 0
    elif a.ndim == 3 and a.shape[2] == 3:
        color = 2
    else:
        raise ValueError(f"write_png: expected (H, W) or (H, W, 3), got shape {a.shape}")
    h, w = a.shape[:2]
    raw = b"".join(b"\x00" + a[r].tobytes() for r in range(h))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)
        )

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, color, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")
    atomic_write_bytes(path, png)
    return Path(path)


def overlay(
    image: np.ndarray, pred: np.ndarray | None = None, target: np.ndarray | None = None, scale: int = 1
) -> np.ndarray:
    """RGB uint8 picture of a [0, 1] image with the target's outline in green and the prediction's in red
    (yellow where they coincide); ``scale`` enlarges by pixel repetition."""
    g = np.clip(np.asarray(image, dtype=np.float64), 0, 1)
    rgb = np.repeat((g * 255).astype(np.uint8)[..., None], 3, axis=2)
    if target is not None:
        s = surface(np.asarray(target) > 0)
        rgb[s] = (0, 255, 0)
    if pred is not None:
        s = surface(np.asarray(pred) > 0)
        both = s & (surface(np.asarray(target) > 0) if target is not None else False)
        rgb[s] = (255, 0, 0)
        rgb[both] = (255, 255, 0)
    if scale > 1:
        rgb = rgb.repeat(scale, 0).repeat(scale, 1)
    return rgb


def draw_boxes(image: np.ndarray, pred=None, gt=None, scale: int = 2, max_pred: int = 5) -> np.ndarray:
    """RGB uint8 picture: image (min-max scaled), true boxes in green, the ``max_pred`` best predicted
    boxes in red (brightness ~ score)."""
    a = np.asarray(image, dtype=np.float64)
    lo, hi = np.percentile(a, 0.5), np.percentile(a, 99.5)
    g = np.clip((a - lo) / (hi - lo if hi > lo else 1.0), 0, 1)
    rgb = np.repeat((g * 255).astype(np.uint8)[..., None], 3, axis=2).repeat(scale, 0).repeat(scale, 1)
    h, w = rgb.shape[:2]

    def rect(b, color):
        x0, y0, x1, y1 = (np.asarray(b, float) * scale).round().astype(int)
        x0, y0 = np.clip(x0, 0, w - 1), np.clip(y0, 0, h - 1)
        x1, y1 = np.clip(x1 - 1, 0, w - 1), np.clip(y1 - 1, 0, h - 1)
        rgb[y0, x0 : x1 + 1] = rgb[y1, x0 : x1 + 1] = color
        rgb[y0 : y1 + 1, x0] = rgb[y0 : y1 + 1, x1] = color

    for b in np.asarray(gt if gt is not None else np.zeros((0, 4))).reshape(-1, 4):
        rect(b, (0, 255, 0))
    if pred is not None:
        boxes, scores = pred
        for b, s in list(zip(np.asarray(boxes).reshape(-1, 4), np.asarray(scores)))[:max_pred]:
            rect(b, (255, int(200 * (1 - min(max(s, 0), 1))), 0))
    return rgb
