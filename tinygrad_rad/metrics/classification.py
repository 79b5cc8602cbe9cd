"""Classification metrics on NumPy arrays (scikit-learn's conventions, no scikit-learn needed).

    >>> from tinygrad_rad.metrics import roc_auc_score, binary_report, evaluate_predictions
    >>> roc_auc_score([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    0.75
    >>> binary_report([0, 1, 1], [0.2, 0.7, 0.4])["sensitivity"]
    0.5
    >>> evaluate_predictions("binary-class", y_true, probs)     # MedMNIST's {"auc", "acc"}

Binary metrics take the positive class as 1. Ratios with an empty denominator (e.g. specificity with
no negatives) are ``nan`` rather than an exception, except AUC, which raises ``ValueError`` when only
one class is present (it is undefined there).
"""

from __future__ import annotations

import numpy as np


def _np(a) -> np.ndarray:
    if hasattr(a, "numpy") and not isinstance(a, np.ndarray):
        a = a.numpy()
    if hasattr(a, "get") and type(a).__module__.startswith("cupy"):
        a = a.get()
    return np.asarray(a)


def _labels_1d(y, name: str = "y_true") -> np.ndarray:
    y = _np(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(f"{name} must be 1-D (or (N, 1)), got shape {y.shape}")
    return y


def _binary_true(y_true) -> np.ndarray:
    y = _labels_1d(y_true)
    vals = np.unique(y)
    if not np.all(np.isin(vals, [0, 1])):
        raise ValueError(f"binary y_true must hold only 0 and 1, got values {vals[:10].tolist()}")
    return y.astype(np.int64)


def _same_len(a: np.ndarray, b: np.ndarray, na: str, nb: str) -> None:
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"{na} has {a.shape[0]} samples but {nb} has {b.shape[0]}")


# ------------------------------------------------------------------------------------------ ranking
def _binary_clf_curve(y_true: np.ndarray, y_score: np.ndarray):
    """False/true positive counts at each distinct score, highest score first (like sklearn)."""
    order = np.argsort(y_score, kind="mergesort")[::-1]
    s, y = y_score[order], y_true[order]
    distinct = np.where(np.diff(s))[0]
    ends = np.r_[distinct, y.size - 1]
    tps = np.cumsum(y)[ends]
    fps = 1 + ends - tps
    return fps, tps, s[ends]


def roc_curve(y_true, y_score, drop_intermediate: bool = False):
    """``(fpr, tpr, thresholds)`` for a binary problem; ``thresholds[0]`` is ``inf`` as in sklearn>=1.3.

        >>> fpr, tpr, thr = roc_curve([0, 1, 1], [0.1, 0.9, 0.4])
    """
    y = _binary_true(y_true)
    s = _labels_1d(y_score, "y_score").astype(np.float64)
    _same_len(y, s, "y_true", "y_score")
    if y.sum() == 0 or y.sum() == y.size:
        raise ValueError(
            f"roc_curve needs both classes in y_true; got only class {int(y[0]) if y.size else 'none'}"
        )
    fps, tps, thr = _binary_clf_curve(y, s)
    if drop_intermediate and fps.size > 2:
        keep = np.where(np.r_[True, np.logical_or(np.diff(fps, 2), np.diff(tps, 2)), True])[0]
        fps, tps, thr = fps[keep], tps[keep], thr[keep]
    fps, tps, thr = np.r_[0, fps], np.r_[0, tps], np.r_[np.inf, thr]
    return fps / fps[-1], tps / tps[-1], thr


def _binary_auc(y: np.ndarray, s: np.ndarray) -> float:
    """Area under the ROC curve by trapezoids over distinct scores (exact on ties)."""
    pos = int(y.sum())
    if pos == 0 or pos == y.size:
        raise ValueError(
            "ROC AUC is undefined when y_true holds only one class "
            f"(got {y.size} samples, all of class {int(y[0]) if y.size else 'none'})"
        )
    fps, tps, _ = _binary_clf_curve(y, s)
    fpr = np.r_[0, fps] / fps[-1]
    tpr = np.r_[0, tps] / tps[-1]
    return float(np.trapezoid(tpr, fpr) if hasattr(np, "trapezoid") else np.trapz(tpr, fpr))


def roc_auc_score(y_true, y_score, multi_class: str = "ovr", average: str | None = "macro"):
    """ROC AUC like ``sklearn.metrics.roc_auc_score``.

    * binary: ``y_true`` (N,) in {0, 1}, ``y_score`` (N,) (or (N, 2): column 1 is used);
    * multi-class: ``y_true`` (N,) in 0..K-1, ``y_score`` (N, K) probabilities, one-vs-rest,
      ``average`` "macro" | "weighted" | None (per class);
    * multi-label: ``y_true`` (N, L) in {0, 1}, ``y_score`` (N, L); ``average`` "macro" | "micro" |
      "weighted" | None.
    """
    yt, ys = _np(y_true), _np(y_score).astype(np.float64)
    if yt.ndim == 2 and yt.shape[1] > 1:  # multi-label indicator matrix
        if ys.shape != yt.shape:
            raise ValueError(f"multi-label y_true has shape {yt.shape} but y_score has shape {ys.shape}")
        if average == "micro":
            return _binary_auc(_binary_true(yt.ravel()), ys.ravel())
        aucs = np.array([_binary_auc(_binary_true(yt[:, j]), ys[:, j]) for j in range(yt.shape[1])])
        return _average(aucs, yt.sum(0), average)
    yt = _labels_1d(yt)
    if ys.ndim == 2 and ys.shape[1] == 1:
        ys = ys[:, 0]
    if ys.ndim == 2 and ys.shape[1] == 2 and np.all(np.isin(np.unique(yt), [0, 1])):
        ys = ys[:, 1]
    _same_len(yt, ys, "y_true", "y_score")
    if ys.ndim == 1:
        return _binary_auc(_binary_true(yt), ys)
    if multi_class != "ovr":
        raise ValueError(f"multi_class={multi_class!r} is not supported; use 'ovr'")
    k = ys.shape[1]
    yi = yt.astype(np.int64)
    if yi.min() < 0 or yi.max() >= k:
        raise ValueError(f"y_true holds classes in [{yi.min()}, {yi.max()}] but y_score has {k} columns")
    missing = sorted(set(range(k)) - set(np.unique(yi).tolist()))
    if missing:
        raise ValueError(f"one-vs-rest ROC AUC needs every class in y_true; classes {missing} are absent")
    aucs = np.array([_binary_auc((yi == c).astype(np.int64), ys[:, c]) for c in range(k)])
    return _average(aucs, np.bincount(yi, minlength=k), average)


def _average(values: np.ndarray, support: np.ndarray, average: str | None):
    if average is None:
        return values
    if average == "macro":
        return float(values.mean())
    if average == "weighted":
        return float(np.sum(values * support) / np.sum(support))
    raise ValueError(f"average must be 'macro', 'weighted', 'micro' (multi-label) or None, got {average!r}")


# -------------------------------------------------------------------------------- counting metrics
def accuracy(y_true, y_pred) -> float:
    """Fraction of exact matches (``(N,)`` labels; ``(N, L)`` compares element-wise and averages)."""
    yt, yp = _np(y_true), _np(y_pred)
    if yt.shape != yp.shape:
        yt, yp = _labels_1d(yt), _labels_1d(yp, "y_pred")
    _same_len(yt, yp, "y_true", "y_pred")
    if yt.size == 0:
        raise ValueError("accuracy of an empty set is undefined")
    return float(np.mean(yt == yp))


def confusion_matrix(y_true, y_pred, num_classes: int | None = None) -> np.ndarray:
    """``C[i, j]`` = number of samples of true class ``i`` predicted as ``j`` (int64, K x K).

        >>> confusion_matrix([0, 1, 1], [0, 0, 1])
        array([[1, 0],
               [1, 1]])
    """
    yt = _labels_1d(y_true).astype(np.int64)
    yp = _labels_1d(y_pred, "y_pred").astype(np.int64)
    _same_len(yt, yp, "y_true", "y_pred")
    if yt.size and min(yt.min(), yp.min()) < 0:
        raise ValueError("confusion_matrix labels must be non-negative integers")
    k = int(num_classes) if num_classes is not None else int(max(yt.max(initial=0), yp.max(initial=0)) + 1)
    k = max(k, 2)
    if yt.size and max(yt.max(), yp.max()) >= k:
        raise ValueError(f"labels go up to {max(yt.max(), yp.max())} but num_classes={k}")
    return np.bincount(yt * k + yp, minlength=k * k).reshape(k, k)


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den > 0 else float("nan")


def _counts(y_true, y_pred):
    yt = _binary_true(y_true)
    yp = _labels_1d(y_pred, "y_pred").astype(np.int64)
    _same_len(yt, yp, "y_true", "y_pred")
    tp = int(np.sum((yt == 1) & (yp == 1)))
    tn = int(np.sum((yt == 0) & (yp == 0)))
    fp = int(np.sum((yt == 0) & (yp == 1)))
    fn = int(np.sum((yt == 1) & (yp == 0)))
    return tp, tn, fp, fn


def sensitivity(y_true, y_pred) -> float:
    """TP / (TP + FN) (recall, true positive rate) of binary predictions."""
    tp, _, _, fn = _counts(y_true, y_pred)
    return _ratio(tp, tp + fn)


recall = sensitivity


def specificity(y_true, y_pred) -> float:
    """TN / (TN + FP) (true negative rate)."""
    _, tn, fp, _ = _counts(y_true, y_pred)
    return _ratio(tn, tn + fp)


def ppv(y_true, y_pred) -> float:
    """TP / (TP + FP) (precision, positive predictive value)."""
    tp, _, fp, _ = _counts(y_true, y_pred)
    return _ratio(tp, tp + fp)


precision = ppv


def npv(y_true, y_pred) -> float:
    """TN / (TN + FN) (negative predictive value)."""
    _, tn, _, fn = _counts(y_true, y_pred)
    return _ratio(tn, tn + fn)


def f1_score(y_true, y_pred, average: str = "binary") -> float:
    """F1 = 2 TP / (2 TP + FP + FN). ``average="binary"`` (class 1) or ``"macro"`` over classes."""
    if average == "binary":
        tp, _, fp, fn = _counts(y_true, y_pred)
        return _ratio(2 * tp, 2 * tp + fp + fn) if (tp + fp + fn) else 0.0
    if average == "macro":
        cm = confusion_matrix(y_true, y_pred)
        tp = np.diag(cm).astype(np.float64)
        den = 2 * tp + (cm.sum(0) - tp) + (cm.sum(1) - tp)
        return float(np.mean(np.where(den > 0, 2 * tp / np.maximum(den, 1), 0.0)))
    raise ValueError(f"average must be 'binary' or 'macro', got {average!r}")


def balanced_accuracy(y_true, y_pred) -> float:
    """Mean per-class recall over the classes present in ``y_true`` (sklearn's definition)."""
    yt = _labels_1d(y_true).astype(np.int64)
    yp = _labels_1d(y_pred, "y_pred").astype(np.int64)
    _same_len(yt, yp, "y_true", "y_pred")
    classes = np.unique(yt)
    if classes.size == 0:
        raise ValueError("balanced_accuracy of an empty set is undefined")
    return float(np.mean([np.mean(yp[yt == c] == c) for c in classes]))


def binary_report(y_true, y_prob, threshold: float = 0.5) -> dict:
    """All binary metrics at one threshold: auc, accuracy, sensitivity, specificity, ppv, npv, f1,
    balanced_accuracy, tp/tn/fp/fn, threshold, n. ``auc`` is ``nan`` when one class is missing.

        >>> binary_report([0, 1, 1, 0], [0.2, 0.9, 0.4, 0.6])["accuracy"]
        0.5
    """
    yt = _binary_true(y_true)
    p = _np(y_prob).astype(np.float64)
    if p.ndim == 2 and p.shape[1] == 2:
        p = p[:, 1]
    p = _labels_1d(p, "y_prob")
    _same_len(yt, p, "y_true", "y_prob")
    yp = (p >= threshold).astype(np.int64)
    tp, tn, fp, fn = _counts(yt, yp)
    try:
        auc = _binary_auc(yt, p)
    except ValueError:
        auc = float("nan")
    return {
        "auc": auc,
        "accuracy": _ratio(tp + tn, yt.size),
        "sensitivity": _ratio(tp, tp + fn),
        "specificity": _ratio(tn, tn + fp),
        "ppv": _ratio(tp, tp + fp),
        "npv": _ratio(tn, tn + fn),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn) if (tp + fp + fn) else 0.0,
        "balanced_accuracy": balanced_accuracy(yt, yp),
        "tp": tp,
        "tn": tn,
        "fp": fp,
        "fn": fn,
        "threshold": float(threshold),
        "n": int(yt.size),
    }


def _auc_or_nan(y: np.ndarray, s: np.ndarray, undefined: str, what: str) -> float:
    try:
        return _binary_auc(y, s)
    except ValueError as e:
        if undefined == "nan":
            return float("nan")
        raise ValueError(f"{what}: {e} (pass undefined='nan' to skip it)") from e


def evaluate_predictions(task: str, y_true, y_prob, threshold: float = 0.5, undefined: str = "raise") -> dict:
    """MedMNIST's ``{"auc", "acc"}`` for one task (its ``evaluator`` convention).

    * "binary-class": ``y_prob`` (N,) positive-class probability or (N, 2); AUC on it, ACC at threshold.
    * "multi-class" / "ordinal-regression": ``y_prob`` (N, K); one-vs-rest macro AUC, ACC of argmax.
    * "multi-label" (or "multi-label, binary-class"): ``y_true``/``y_prob`` (N, L); mean of per-label
      AUCs, ACC = mean over labels of the per-label accuracy at ``threshold``.

    An AUC that is undefined (a class / label with only one value in ``y_true``, e.g. on a tiny
    subset) raises ``ValueError``; with ``undefined="nan"`` it is left out of the mean instead
    (``auc`` is ``nan`` when nothing is defined).

        >>> evaluate_predictions("multi-class", [0, 2, 1], np.eye(3)[[0, 2, 2]])
        {'auc': 0.75, 'acc': 0.666...}
    """
    if undefined not in ("raise", "nan"):
        raise ValueError(f"undefined must be 'raise' or 'nan', got {undefined!r}")
    yt, p = _np(y_true), _np(y_prob).astype(np.float64)

    def mean_auc(aucs):
        aucs = np.asarray(aucs, dtype=np.float64)
        return float(np.mean(aucs[~np.isnan(aucs)])) if np.any(~np.isnan(aucs)) else float("nan")

    if task.startswith("multi-label"):
        if yt.ndim != 2 or p.shape != yt.shape:
            raise ValueError(
                f"multi-label needs y_true and y_prob of the same (N, L) shape, got {yt.shape}, {p.shape}"
            )
        aucs = [_auc_or_nan(_binary_true(yt[:, j]), p[:, j], undefined, f"AUC of label {j}")
                for j in range(yt.shape[1])]
        accs = [float(np.mean((p[:, j] >= threshold) == (yt[:, j] == 1))) for j in range(yt.shape[1])]
        return {"auc": mean_auc(aucs), "acc": float(np.mean(accs))}
    yt = _labels_1d(yt).astype(np.int64)
    if task == "binary-class":
        if p.ndim == 2:
            if p.shape[1] not in (1, 2):
                raise ValueError(f"binary-class y_prob must be (N,), (N, 1) or (N, 2), got {p.shape}")
            p = p[:, -1]
        _same_len(yt, p, "y_true", "y_prob")
        auc = _auc_or_nan(_binary_true(yt), p, undefined, "binary AUC")
        return {"auc": auc, "acc": float(np.mean((p >= threshold) == (yt == 1)))}
    if task in ("multi-class", "ordinal-regression"):
        if p.ndim != 2:
            raise ValueError(f"{task} needs y_prob of shape (N, K), got {p.shape}")
        _same_len(yt, p, "y_true", "y_prob")
        if yt.size and (yt.min() < 0 or yt.max() >= p.shape[1]):
            raise ValueError(
                f"y_true holds classes in [{yt.min()}, {yt.max()}] but y_prob has {p.shape[1]} columns"
            )
        aucs = [_auc_or_nan((yt == c).astype(np.int64), p[:, c], undefined, f"one-vs-rest AUC of class {c}")
                for c in range(p.shape[1])]
        return {"auc": mean_auc(aucs), "acc": float(np.mean(np.argmax(p, axis=1) == yt))}
    raise ValueError(
        f"unknown task {task!r}; expected 'binary-class', 'multi-class', 'multi-label' "
        "or 'ordinal-regression'"
    )


def classification_report(task: str, y_true, y_prob, threshold: float = 0.5) -> dict:
    """Everything a training run reports for one MedMNIST task: ``auc``, ``acc``, ``sensitivity``,
    ``specificity``, ``ppv``, ``npv``, ``f1``, ``balanced_accuracy`` (+ ``confusion_matrix`` and
    ``per_class_auc`` for softmax tasks, ``per_label_auc`` for multi-label ones).

    * binary (2 softmax columns): AUC on the positive-class column, the rest from argmax;
    * multi-class: macro one-vs-rest AUC, argmax ACC, sensitivity/specificity/... macro over classes;
    * multi-label: macro over labels at ``threshold``; ACC over every (image, label) decision.

    Undefined values (an AUC with one class present, a ratio with an empty denominator) are ``nan``
    and left out of the macro means.

        >>> classification_report("binary-class", [[0], [1]], [[0.8, 0.2], [0.3, 0.7]])["acc"]
        1.0
    """
    yt = _np(y_true)
    p = _np(y_prob).astype(np.float64)
    if yt.ndim == 1:
        yt = yt[:, None]
    out: dict = {}
    if task.startswith("multi-label"):
        pred, truth = p >= threshold, yt > 0
        aucs = [_auc_or_nan(truth[:, j].astype(np.int64), p[:, j], "nan", "") for j in range(truth.shape[1])]
        out["auc"] = float(np.nanmean(aucs)) if not all(np.isnan(aucs)) else float("nan")
        out["acc"] = float((pred == truth).mean())
        tp, tn = (pred & truth).sum(0), (~pred & ~truth).sum(0)
        fp, fn = (pred & ~truth).sum(0), (~pred & truth).sum(0)
        out["per_label_auc"] = [float(a) for a in aucs]
    else:
        labels = yt.reshape(-1).astype(np.int64)
        k = p.shape[1]
        pred = p.argmax(axis=1)
        cm = confusion_matrix(labels, pred, num_classes=k)
        out["confusion_matrix"] = cm.tolist()
        out["acc"] = float((pred == labels).mean()) if len(labels) else float("nan")
        if k == 2:
            out["auc"] = _auc_or_nan((labels == 1).astype(np.int64), p[:, 1], "nan", "")
            tp, tn, fp, fn = (np.array([v]) for v in (cm[1, 1], cm[0, 0], cm[0, 1], cm[1, 0]))
        else:
            aucs = [_auc_or_nan((labels == j).astype(np.int64), p[:, j], "nan", "") for j in range(k)]
            out["auc"] = float(np.nanmean(aucs)) if not all(np.isnan(aucs)) else float("nan")
            out["per_class_auc"] = [float(a) for a in aucs]
            tp = np.diag(cm)
            fp, fn = cm.sum(0) - tp, cm.sum(1) - tp
            tn = cm.sum() - tp - fp - fn
    with np.errstate(invalid="ignore", divide="ignore"):
        rates = {"sensitivity": tp / (tp + fn), "specificity": tn / (tn + fp), "ppv": tp / (tp + fp),
                 "npv": tn / (tn + fn), "f1": 2 * tp / (2 * tp + fp + fn)}
    for name, v in rates.items():  # macro mean over classes / labels of the defined values
        v = np.asarray(v, dtype=np.float64)
        out[name] = float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")
    out["balanced_accuracy"] = (out["sensitivity"] + out["specificity"]) / 2.0
    return out


def youden_threshold(y_true, y_prob) -> float:
    """The threshold maximising sensitivity + specificity - 1 (Youden's J) on the ROC curve.

    Pick it on validation data, then report test metrics at it with :func:`binary_report`.

        >>> youden_threshold([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
        0.8
    """
    fpr, tpr, thr = roc_curve(y_true, y_prob)
    j = tpr - fpr
    best = int(np.argmax(j[1:])) + 1  # skip the +inf threshold
    return float(thr[best])


def bootstrap_ci(metric, y_true, y_score, n_boot: int = 1000, alpha: float = 0.05, seed: int = 0) -> dict:
    """Percentile bootstrap confidence interval of ``metric(y_true, y_score)`` (resampling cases).

    Resamples where the metric is undefined (e.g. one class only for AUC) are skipped.

        >>> bootstrap_ci(roc_auc_score, y_test, p_test)          # {"value", "lower", "upper", "n_boot"}
    """
    yt, ys = _np(y_true), _np(y_score)
    _same_len(yt, ys, "y_true", "y_score")
    rng = np.random.default_rng(seed)
    n = yt.shape[0]
    vals = []
    for _ in range(int(n_boot)):
        idx = rng.integers(0, n, n)
        try:
            v = float(metric(yt[idx], ys[idx]))
        except ValueError:
            continue
        if not np.isnan(v):
            vals.append(v)
    if not vals:
        raise ValueError("bootstrap_ci: the metric was undefined on every resample")
    lo, hi = np.quantile(vals, [alpha / 2, 1 - alpha / 2])
    return {"value": float(metric(yt, ys)), "lower": float(lo), "upper": float(hi), "n_boot": len(vals)}
