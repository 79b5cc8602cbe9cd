"""Every functional loss, in one place: the classification and regression losses of
``torch.nn.functional`` and the segmentation / detection losses of MONAI and torchvision. All are
re-exported by :mod:`tinygrad_rad.nn.functional` (``F.cross_entropy``, ``F.dice_loss``, ...); the
loss *modules* (``nn.CrossEntropyLoss``, ``nn.DiceLoss``, ...) call these.

    >>> import tinygrad_rad as tr
    >>> import tinygrad_rad.nn.functional as F
    >>> logits = tr.randn(4, 3, requires_grad=True)
    >>> F.cross_entropy(logits, tr.tensor([0, 2, 1, 0]), label_smoothing=0.1).backward()
    >>> F.dice_loss(tr.randn(2, 1, 8, 8), (tr.rand(2, 1, 8, 8) > 0.5).float(), sigmoid=True).shape
    ()

Written with Tensor ops, so autodiff derives the gradients, except softmax cross-entropy, which is
one fused op (``SoftmaxCrossEntropy``: softmax and the loss in one pass, gradient ``softmax - target``).

Segmentation shapes: ``input`` holds logits (N, C, *spatial). A binary ``target`` may be
(N, 1, *spatial) or (N, *spatial) of 0/1; a multi-class target is integer labels (N, *spatial) or
(N, 1, *spatial), or a one-hot float tensor of the input's shape. Formulas follow MONAI
(``DiceLoss``, ``DiceCELoss``, ``TverskyLoss``) and torchvision (``sigmoid_focal_loss``); argument
names follow theirs.
"""

from __future__ import annotations

import numpy as np

from .. import ops
from ..device import xp_for
from ..dtypes import is_floating
from ..tensor import Tensor, where
from .argcheck import check_float

__all__ = [
    "cross_entropy", "nll_loss", "binary_cross_entropy_with_logits", "binary_cross_entropy", "mse_loss",
    "l1_loss", "smooth_l1_loss", "dice_loss", "tversky_loss", "dice_bce_loss", "dice_ce_loss",
    "sigmoid_focal_loss", "centernet_focal_loss",
]


# ------------------------------------------------------------------ classification / regression
def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        if loss.numel() == 0:  # the mean of nothing is 0/0 = nan, as in PyTorch
            return loss.sum() * float("nan")
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _class_last(input: Tensor) -> Tensor:
    """(N, C, d1, ...) -> (N * d1 * ..., C)."""
    if input.ndim == 2:
        return input
    c = input.shape[1]
    perm = (0,) + tuple(range(2, input.ndim)) + (1,)
    return input.permute(*perm).reshape(-1, c)


def _targets(fn, input: Tensor, target: Tensor):
    if not isinstance(target, Tensor):
        target = Tensor(np.asarray(target))
    if is_floating(target.dtype):
        expect = (input.shape[0],) + input.shape[2:]
        probs = f" or class probabilities of the input shape {input.shape}" if fn == "cross_entropy" else ""
        raise TypeError(
            f"{fn}: target must hold class indices (an integer tensor of shape {expect}){probs}, "
            f"got dtype {target.dtype} and shape {target.shape}"
        )
    expect = (input.shape[0],) + input.shape[2:]
    if target.shape != expect:
        raise ValueError(
            f"{fn}: input of shape {input.shape} needs a target of shape {expect}, got {target.shape}"
        )
    return target.numpy().reshape(-1).astype(np.int64)


def _unbatched(fn, input: Tensor, target, weight, ignore_index, reduction, *rest) -> Tensor:
    """``fn`` on a batch of one: (C,) -> (1, C), the target 0-d -> (1,) (or (C,) -> (1, C))."""
    if not isinstance(target, Tensor):
        target = Tensor(np.asarray(target))
    target = target.reshape(1, -1) if target.ndim == 1 else target.reshape(1)
    out = fn(input.reshape(1, -1), target, weight, ignore_index, reduction, *rest)
    return out.reshape(()) if reduction == "none" else out


def cross_entropy(input: Tensor, target: Tensor, weight: Tensor | None = None, ignore_index: int = -100,
                  reduction: str = "mean", label_smoothing: float = 0.0) -> Tensor:
    """Softmax cross-entropy on logits (N, C) or (N, C, d1, ...) with integer class targets.

    With ``label_smoothing`` e the target distribution is (1 - e) one_hot + e / C. Class ``weight``
    and ``ignore_index`` follow PyTorch (the mean divides by the summed weight of the targets).
    """
    check_float("cross_entropy", input=input, weight=weight)
    if input.ndim == 1:  # unbatched (C,) logits with a 0-d class index or (C,) probabilities
        return _unbatched(cross_entropy, input, target, weight, ignore_index, reduction, label_smoothing)
    if input.ndim < 2:
        raise ValueError(f"cross_entropy: expected logits of shape (N, C, ...) or (C,), got {input.shape}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(
            f"cross_entropy: label_smoothing must be between 0.0 and 1.0. Got: {label_smoothing}"
        )
    c = input.shape[1]
    if isinstance(target, Tensor) and is_floating(target.dtype) and target.shape == input.shape:
        return _cross_entropy_probs(input, target, weight, reduction, label_smoothing)
    t = _targets("cross_entropy", input, target)
    valid = t != ignore_index
    if ((t[valid] < 0) | (t[valid] >= c)).any():
        bad = t[valid][(t[valid] < 0) | (t[valid] >= c)][0]
        raise ValueError(
            f"cross_entropy: Target {bad} is out of bounds (target {bad} is out of range for {c} classes)"
        )
    w = _class_weight("cross_entropy", weight, c)
    m = t.shape[0]
    rows = np.arange(m)[valid]
    dense = np.zeros((m, c), dtype=np.float64)
    dense[rows, t[valid]] = (1.0 - label_smoothing) * w[t[valid]]
    if label_smoothing:
        dense[valid] += label_smoothing / c * w[None, :]
    logits = _class_last(input)
    xp = xp_for(input.device)
    if reduction == "none":
        logp = logits.log_softmax(1)
        tgt = Tensor._wrap(xp.asarray(dense.astype(input.dtype)), device=input.device)
        loss = -(logp * tgt).sum(dim=1)
        return loss.reshape((input.shape[0],) + input.shape[2:])
    denom = w[t[valid]].sum() if reduction == "mean" else 1.0
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    tgt = xp.asarray(dense.astype(input.dtype))
    if not valid.any() and reduction == "mean":
        # NOTE: every target ignored: the mean is 0/0 = nan, but the gradient is zero (as in PyTorch),
        # so one fully-ignored batch cannot poison the weights
        return ops.SoftmaxCrossEntropy.apply(logits, target=tgt, scale=0.0) + float("nan")
    # NOTE: as PyTorch, divide by the summed weight as it is, even when it is <= 0 (0 gives inf / nan)
    return ops.SoftmaxCrossEntropy.apply(logits, target=tgt, scale=_inverse(denom))


def _inverse(denom) -> float:
    """1 / denom with IEEE semantics (1/0 = inf), as PyTorch's division by the total weight."""
    with np.errstate(divide="ignore"):
        return float(np.float64(1.0) / np.float64(denom))


def _class_weight(fn: str, weight: Tensor | None, c: int) -> np.ndarray:
    """The class weights as float64 (ones without ``weight``), checked: shape (C,), finite."""
    if weight is None:
        return np.ones(c)
    if weight.shape != (c,):
        raise ValueError(
            f"{fn}: weight tensor should be defined either for all {c} classes or no classes but got "
            f"weight tensor of shape: {list(weight.shape)}"
        )
    w = weight.numpy().astype(np.float64)
    if not np.isfinite(w).all():
        raise ValueError(f"{fn}: weight holds non-finite values ({w.tolist()}); the loss would be nan")
    return w


def _cross_entropy_probs(input: Tensor, target: Tensor, weight, reduction: str,
                         label_smoothing: float) -> Tensor:
    """Cross-entropy with class probabilities as target (same shape as input), as in PyTorch: the mean
    divides by the number of samples, not by the weights. A target that requires grad gets its
    gradient (d loss / d target = -w log_softmax(input)); otherwise one fused op does it all."""
    c = input.shape[1]
    w = None if weight is None else _class_weight("cross_entropy", weight, c)
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    logits = _class_last(input)
    if target.requires_grad or reduction == "none":
        tgt = _class_last(target.to(dtype=input.dtype) if target.dtype != input.dtype else target)
        if label_smoothing:
            tgt = tgt * (1.0 - label_smoothing) + label_smoothing / c
        if w is not None:
            tgt = tgt * _const(w.reshape(1, c), input)
        loss = -(logits.log_softmax(1) * tgt).sum(dim=1)
        if reduction == "none":
            return loss.reshape((input.shape[0],) + input.shape[2:])
        return loss.mean() if reduction == "mean" else loss.sum()
    tgt = _class_last(target.detach()).data.astype(input.dtype)  # (M, C)
    if label_smoothing:
        tgt = tgt * (1.0 - label_smoothing) + label_smoothing / c
    if w is not None:
        tgt = tgt * xp_for(input.device).asarray(w.astype(input.dtype).reshape(1, c))
    scale = _inverse(tgt.shape[0]) if reduction == "mean" else 1.0
    return ops.SoftmaxCrossEntropy.apply(logits, target=tgt, scale=scale)


def nll_loss(input: Tensor, target: Tensor, weight: Tensor | None = None, ignore_index: int = -100,
             reduction: str = "mean") -> Tensor:
    """Negative log-likelihood on log-probabilities (N, C) or (N, C, d1, ...)."""
    check_float("nll_loss", input=input, weight=weight)
    if input.ndim == 1:  # unbatched (C,) log-probabilities with a 0-d class index
        return _unbatched(nll_loss, input, target, weight, ignore_index, reduction)
    if input.ndim < 2:
        raise ValueError(
            f"nll_loss: expected log-probabilities of shape (N, C, ...) or (C,), got {input.shape}"
        )
    c = input.shape[1]
    t = _targets("nll_loss", input, target)
    valid = t != ignore_index
    if ((t[valid] < 0) | (t[valid] >= c)).any():
        bad = t[valid][(t[valid] < 0) | (t[valid] >= c)][0]
        raise ValueError(
            f"nll_loss: Target {bad} is out of bounds (target {bad} is out of range for {c} classes)"
        )
    w = _class_weight("nll_loss", weight, c)
    m = t.shape[0]
    dense = np.zeros((m, c), dtype=input.dtype)
    dense[np.arange(m)[valid], t[valid]] = w[t[valid]]
    xp = xp_for(input.device)
    per = -(_class_last(input) * Tensor._wrap(xp.asarray(dense), device=input.device)).sum(dim=1)
    if reduction == "none":
        return per.reshape((input.shape[0],) + input.shape[2:])
    if reduction == "sum":
        return per.sum()
    if reduction == "mean":
        if not valid.any():  # every target ignored: nan loss, zero gradient (as in PyTorch)
            return per.sum() * 0.0 + float("nan")
        # as PyTorch: divide by the summed weight as it is, even when it is <= 0
        return per.sum() * _inverse(w[t[valid]].sum())
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _same_shape(fn: str, input: Tensor, target: Tensor) -> Tensor:
    if not isinstance(target, Tensor):
        target = Tensor(np.asarray(target, dtype=input.dtype), device=input.device)
    if input.shape != target.shape:
        raise ValueError(f"{fn}: input shape {input.shape} and target shape {target.shape} differ")
    if target.dtype != input.dtype:
        target = target.to(dtype=input.dtype)
    return target


def binary_cross_entropy_with_logits(input: Tensor, target: Tensor, weight: Tensor | None = None,
                                     reduction: str = "mean", pos_weight: Tensor | None = None) -> Tensor:
    """Stable BCE on logits: l = (1 - y) x + (1 + (pw - 1) y) softplus(-x)."""
    check_float("binary_cross_entropy_with_logits", input=input)
    target = _same_shape("binary_cross_entropy_with_logits", input, target)
    sp = (-input).softplus()
    if pos_weight is not None:
        loss = (1 - target) * input + (1 + (pos_weight - 1) * target) * sp
    else:
        loss = (1 - target) * input + sp
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)


def binary_cross_entropy(input: Tensor, target: Tensor, weight: Tensor | None = None,
                         reduction: str = "mean") -> Tensor:
    """BCE on probabilities (log clamped at -100 as in PyTorch)."""
    target = _same_shape("binary_cross_entropy", input, target)
    if input.numel() and not bool(((input.data >= 0) & (input.data <= 1)).all()):
        raise ValueError(
            "binary_cross_entropy: all elements of input should be between 0 and 1 (pass logits to "
            "binary_cross_entropy_with_logits)"
        )
    loss = -(target * input.log().clamp(min=-100) + (1 - target) * (1 - input).log().clamp(min=-100))
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)


def mse_loss(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    d = input - _same_shape("mse_loss", input, target)
    return _reduce(d * d, reduction)


def l1_loss(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    return _reduce((input - _same_shape("l1_loss", input, target)).abs(), reduction)


def smooth_l1_loss(input: Tensor, target: Tensor, reduction: str = "mean", beta: float = 1.0) -> Tensor:
    """0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta."""
    d = (input - _same_shape("smooth_l1_loss", input, target)).abs()
    if beta == 0:
        return _reduce(d, reduction)
    loss = where(d < beta, d * d * (0.5 / beta), d - 0.5 * beta)
    return _reduce(loss, reduction)


# --------------------------------------------------------------- segmentation / detection
def _const(arr: np.ndarray, like: Tensor) -> Tensor:
    """A constant (no-grad) tensor on ``like``'s device with its dtype."""
    return Tensor._wrap(xp_for(like.device).asarray(np.asarray(arr, dtype=like.dtype)), device=like.device)


def _as_array(target) -> np.ndarray:
    """A target (Tensor or array-like) as a NumPy array."""
    return target.numpy() if isinstance(target, Tensor) else np.asarray(target)


def _target_like(fn: str, input: Tensor, target) -> Tensor:
    """A constant target of ``input``'s shape (N, C, *spatial); (N, *spatial) is accepted when C = 1."""
    if input.ndim < 3:
        raise ValueError(f"{fn}: input must be (N, C, *spatial) logits, got shape {input.shape}")
    t = _as_array(target)
    n = input.shape[0]
    spatial = input.shape[2:]
    if t.shape == (n,) + spatial and input.shape[1] == 1:
        t = t[:, None]
    if t.shape != input.shape:
        raise ValueError(
            f"{fn}: target shape {t.shape} does not fit input shape {input.shape} "
            f"(expected {input.shape}{' or ' + str((n,) + spatial) if input.shape[1] == 1 else ''})"
        )
    return _const(t, input)


def _labels_to_onehot(fn: str, input: Tensor, target) -> Tensor:
    t = _as_array(target)
    n, c = input.shape[:2]
    spatial = input.shape[2:]
    if t.shape == input.shape and np.issubdtype(t.dtype, np.floating):
        return _const(t, input)
    if t.shape == (n, 1) + spatial:
        t = t[:, 0]
    if t.shape != (n,) + spatial:
        raise ValueError(
            f"{fn}: target shape {t.shape} does not fit input {input.shape}; give labels "
            f"{(n,) + spatial} or a one-hot target {input.shape}"
        )
    t = t.astype(np.int64)
    if t.min() < 0 or t.max() >= c:
        raise ValueError(f"{fn}: labels must be in [0, {c - 1}], got range [{t.min()}, {t.max()}]")
    onehot = np.moveaxis(np.eye(c, dtype=np.float64)[t], -1, 1)
    return _const(onehot, input)


def _probs_and_target(fn: str, input: Tensor, target, sigmoid: bool, softmax: bool, include_background: bool):
    if sigmoid and softmax:
        raise ValueError(f"{fn}: choose sigmoid or softmax, not both")
    if input.ndim < 3:
        raise ValueError(f"{fn}: input must be (N, C, *spatial) logits, got shape {input.shape}")
    c = input.shape[1]
    if softmax:
        if c == 1:
            raise ValueError(f"{fn}: softmax needs at least 2 channels, got input {input.shape}")
        p = input.softmax(1)
        g = _labels_to_onehot(fn, input, target)
    else:
        p = input.sigmoid() if sigmoid else input
        t = _as_array(target)
        if c > 1 and not np.issubdtype(t.dtype, np.floating):
            g = _labels_to_onehot(fn, input, target)
        else:
            g = _target_like(fn, input, target)
    if not include_background:
        if c == 1:
            raise ValueError(f"{fn}: include_background=False needs more than one channel")
        p, g = p[:, 1:], g[:, 1:]
    return p, g


def _sum_axes(p: Tensor, batch: bool) -> tuple:
    """The spatial axes of (N, C, *spatial) (and the batch axis too when ``batch``): what Dice sums over."""
    return tuple(range(2, p.ndim)) if not batch else (0,) + tuple(range(2, p.ndim))


def dice_loss(
    input: Tensor,
    target,
    sigmoid: bool = False,
    softmax: bool = False,
    include_background: bool = True,
    smooth_nr: float = 1e-5,
    smooth_dr: float = 1e-5,
    batch: bool = False,
    reduction: str = "mean",
) -> Tensor:
    """Soft Dice loss: ``1 - (2 sum(p g) + smooth_nr) / (sum(p) + sum(g) + smooth_dr)``.

    ``p`` is ``sigmoid(input)`` (``sigmoid=True``), ``softmax(input, 1)`` (``softmax=True``) or ``input``
    itself (both False, MONAI's default: input already holds probabilities). Sums run over the spatial
    axes per image and channel (and over the batch too when ``batch=True``); ``reduction`` then averages
    (or sums) the per-(image,) channel losses, as MONAI's ``DiceLoss``.
    """
    p, g = _probs_and_target("dice_loss", input, target, sigmoid, softmax, include_background)
    axes = _sum_axes(p, batch)
    inter = (p * g).sum(dim=axes)
    denom = p.sum(dim=axes) + g.sum(dim=axes)
    f = 1.0 - (2.0 * inter + smooth_nr) / (denom + smooth_dr)
    return _reduce(f, reduction)


def tversky_loss(
    input: Tensor,
    target,
    alpha: float = 0.5,
    beta: float = 0.5,
    sigmoid: bool = False,
    softmax: bool = False,
    include_background: bool = True,
    smooth_nr: float = 1e-5,
    smooth_dr: float = 1e-5,
    batch: bool = False,
    reduction: str = "mean",
) -> Tensor:
    """Tversky loss ``1 - (TP + s_nr) / (TP + alpha FP + beta FN + s_dr)`` with soft counts
    TP = sum(p g), FP = sum(p (1 - g)), FN = sum((1 - p) g). alpha = beta = 0.5 is the Dice loss."""
    p, g = _probs_and_target("tversky_loss", input, target, sigmoid, softmax, include_background)
    axes = _sum_axes(p, batch)
    tp = (p * g).sum(dim=axes)
    fp = (p * (1.0 - g)).sum(dim=axes)
    fn = ((1.0 - p) * g).sum(dim=axes)
    f = 1.0 - (tp + smooth_nr) / (tp + alpha * fp + beta * fn + smooth_dr)
    return _reduce(f, reduction)


def sigmoid_focal_loss(
    inputs: Tensor, targets, alpha: float | None = 0.25, gamma: float = 2.0, reduction: str = "none"
) -> Tensor:
    """Binary focal loss on logits (Lin et al. 2017), as torchvision's ``sigmoid_focal_loss``.

    ``loss = alpha_t (1 - p_t)^gamma BCE(x, y)`` with p_t = p if y = 1 else 1 - p and
    alpha_t = alpha y + (1 - alpha)(1 - y) (no weighting when alpha is None or negative).
    """
    y = targets if isinstance(targets, Tensor) else _const(np.asarray(targets), inputs)
    if y.shape != inputs.shape:
        raise ValueError(f"sigmoid_focal_loss: inputs {inputs.shape} and targets {y.shape} differ in shape")
    if y.dtype != inputs.dtype:
        y = y.to(dtype=inputs.dtype)
    y = y.detach()
    ce = binary_cross_entropy_with_logits(inputs, y, reduction="none")
    # 1 - p_t = sigmoid(-x (2y - 1)); computed from logits, stable for large |x|
    one_minus_pt = (-inputs * (2.0 * y - 1.0)).sigmoid()
    loss = ce * one_minus_pt**gamma if gamma != 0 else ce
    if alpha is not None and alpha >= 0:
        loss = (alpha * y + (1.0 - alpha) * (1.0 - y)) * loss
    return _reduce(loss, reduction)


def centernet_focal_loss(input: Tensor, target, alpha: float = 2.0, beta: float = 4.0) -> Tensor:
    """CenterNet's penalty-reduced focal loss on heat-map logits (Zhou et al. 2019, eq. 1).

    ``target`` is a Gaussian heat map in [0, 1] with exact 1 at object centres:
    ``-1/N sum[ y=1: (1-p)^alpha log p ; else: (1-y)^beta p^alpha log(1-p) ]``, N = number of centres
    (at least 1). log p and log(1-p) come from softplus of the logits, so they stay finite.
    """
    y = _as_array(target)
    if y.shape != input.shape:
        raise ValueError(f"centernet_focal_loss: input {input.shape} and target {y.shape} differ in shape")
    pos = (y >= 1.0).astype(np.float64)
    n_pos = max(float(pos.sum()), 1.0)
    neg_w = (1.0 - pos) * (1.0 - y) ** beta
    p = input.sigmoid()
    log_p = -(-input).softplus()  # log sigmoid(x)
    log_1mp = -input.softplus()  # log (1 - sigmoid(x))
    pos_t, negw_t = _const(pos, input), _const(neg_w, input)
    loss = pos_t * (1.0 - p) ** alpha * log_p + negw_t * p**alpha * log_1mp
    return -loss.sum() * (1.0 / n_pos)


def dice_bce_loss(input: Tensor, target, lambda_dice: float = 1.0, lambda_bce: float = 1.0,
                  smooth_nr: float = 1e-5, smooth_dr: float = 1e-5, batch: bool = False) -> Tensor:
    """``lambda_dice * dice_loss(sigmoid) + lambda_bce * BCE-with-logits`` for binary masks (N, 1, *spatial)
    (or (N, *spatial))."""
    g = _target_like("dice_bce_loss", input, target)
    d = dice_loss(input, g, sigmoid=True, smooth_nr=smooth_nr, smooth_dr=smooth_dr, batch=batch)
    b = binary_cross_entropy_with_logits(input, g)
    return lambda_dice * d + lambda_bce * b


def dice_ce_loss(input: Tensor, target, include_background: bool = True, lambda_dice: float = 1.0,
                 lambda_ce: float = 1.0, smooth_nr: float = 1e-5, smooth_dr: float = 1e-5,
                 batch: bool = False) -> Tensor:
    """``lambda_dice * dice_loss(softmax) + lambda_ce * cross_entropy`` for C-class labels (N, *spatial)
    (or (N, 1, *spatial), or a one-hot target of the input's shape)."""
    t = _as_array(target)
    n = input.shape[0]
    if t.shape == (n, 1) + input.shape[2:]:
        t = t[:, 0]
    if np.issubdtype(t.dtype, np.floating) and t.shape == input.shape:
        t = t.argmax(1)  # one-hot given: CE takes the labels
    labels = t.astype(np.int64)
    d = dice_loss(input, labels, sigmoid=False, softmax=True, include_background=include_background,
                  smooth_nr=smooth_nr, smooth_dr=smooth_dr, batch=batch)
    ce = cross_entropy(input, Tensor(labels, device=input.device))
    return lambda_dice * d + lambda_ce * ce
