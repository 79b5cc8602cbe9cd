"""Segmentation and detection losses, written with Tensor ops so autodiff derives their gradients.

Formulas follow MONAI (``DiceLoss``, ``DiceCELoss``, ``TverskyLoss``, ``FocalLoss``) and torchvision
(``sigmoid_focal_loss``); argument names follow theirs.

    >>> import tinygrad_rad as tr
    >>> from tinygrad_rad.losses import DiceBCELoss
    >>> logits = tr.randn(2, 1, 8, 8, requires_grad=True)
    >>> mask = (tr.rand(2, 1, 8, 8) > 0.5).float()
    >>> DiceBCELoss()(logits, mask).backward()

Shapes: ``input`` holds logits (N, C, *spatial). A binary ``target`` may be (N, 1, *spatial) or
(N, *spatial) of 0/1; a multi-class target is integer labels (N, *spatial) or (N, 1, *spatial), or a
one-hot float tensor of the input's shape.
"""

from __future__ import annotations

import numpy as np

from .device import xp_for
from .nn import functional as F
from .tensor import Tensor

__all__ = [
    "DiceLoss",
    "DiceBCELoss",
    "DiceCELoss",
    "TverskyLoss",
    "FocalLoss",
    "sigmoid_focal_loss",
    "centernet_focal_loss",
    "dice_loss",
    "tversky_loss",
]


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


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
    ce = F.binary_cross_entropy_with_logits(inputs, y, reduction="none")
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


class _Loss:
    """Base: a callable object like ``torch.nn`` loss modules (``loss(input, target)``)."""

    def __call__(self, input: Tensor, target) -> Tensor:
        return self.forward(input, target)

    def forward(self, input: Tensor, target) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class _FunctionalLoss(_Loss):
    """A loss object that calls ``_function(input, target, **its attributes)``."""

    _function = None

    def forward(self, input: Tensor, target) -> Tensor:
        return type(self)._function(input, target, **vars(self))


class DiceLoss(_FunctionalLoss):
    """Soft Dice loss (MONAI's ``DiceLoss``); see :func:`dice_loss`.

    >>> DiceLoss(sigmoid=True)(logits, mask)            # binary, (N, 1, H, W)
    >>> DiceLoss(softmax=True, include_background=False)(logits, labels)   # labels (N, H, W)
    """

    _function = staticmethod(dice_loss)

    def __init__(
        self,
        include_background: bool = True,
        sigmoid: bool = False,
        softmax: bool = False,
        smooth_nr: float = 1e-5,
        smooth_dr: float = 1e-5,
        batch: bool = False,
        reduction: str = "mean",
    ):
        self.include_background, self.sigmoid, self.softmax = include_background, sigmoid, softmax
        self.smooth_nr, self.smooth_dr, self.batch, self.reduction = smooth_nr, smooth_dr, batch, reduction


class TverskyLoss(_FunctionalLoss):
    """Tversky loss (MONAI's ``TverskyLoss``): alpha weighs false positives, beta false negatives."""

    _function = staticmethod(tversky_loss)

    def __init__(
        self,
        include_background: bool = True,
        sigmoid: bool = False,
        softmax: bool = False,
        alpha: float = 0.5,
        beta: float = 0.5,
        smooth_nr: float = 1e-5,
        smooth_dr: float = 1e-5,
        batch: bool = False,
        reduction: str = "mean",
    ):
        self.include_background, self.sigmoid, self.softmax = include_background, sigmoid, softmax
        self.alpha, self.beta = alpha, beta
        self.smooth_nr, self.smooth_dr, self.batch, self.reduction = smooth_nr, smooth_dr, batch, reduction


class FocalLoss(_Loss):
    """Binary focal loss on logits; see :func:`sigmoid_focal_loss` (default reduction 'mean')."""

    def __init__(self, alpha: float | None = 0.25, gamma: float = 2.0, reduction: str = "mean"):
        self.alpha, self.gamma, self.reduction = alpha, gamma, reduction

    def forward(self, input: Tensor, target) -> Tensor:
        t = _as_array(target)
        if t.shape != input.shape and t.shape == (input.shape[0],) + input.shape[2:] and input.shape[1] == 1:
            t = t[:, None]
        return sigmoid_focal_loss(input, _const(t, input), self.alpha, self.gamma, self.reduction)


class DiceBCELoss(_Loss):
    """``lambda_dice * Dice(sigmoid) + lambda_bce * BCE-with-logits`` for binary masks (N, 1, H, W)."""

    def __init__(
        self,
        lambda_dice: float = 1.0,
        lambda_bce: float = 1.0,
        smooth_nr: float = 1e-5,
        smooth_dr: float = 1e-5,
        batch: bool = False,
    ):
        self.lambda_dice, self.lambda_bce = lambda_dice, lambda_bce
        self.smooth_nr, self.smooth_dr, self.batch = smooth_nr, smooth_dr, batch

    def forward(self, input: Tensor, target) -> Tensor:
        g = _target_like("DiceBCELoss", input, target)
        d = dice_loss(
            input, g, sigmoid=True, smooth_nr=self.smooth_nr, smooth_dr=self.smooth_dr, batch=self.batch
        )
        b = F.binary_cross_entropy_with_logits(input, g)
        return self.lambda_dice * d + self.lambda_bce * b


class DiceCELoss(_Loss):
    """``lambda_dice * Dice(softmax) + lambda_ce * cross_entropy`` for C-class labels (N, H, W)."""

    def __init__(
        self,
        include_background: bool = True,
        lambda_dice: float = 1.0,
        lambda_ce: float = 1.0,
        smooth_nr: float = 1e-5,
        smooth_dr: float = 1e-5,
        batch: bool = False,
    ):
        self.include_background = include_background
        self.lambda_dice, self.lambda_ce = lambda_dice, lambda_ce
        self.smooth_nr, self.smooth_dr, self.batch = smooth_nr, smooth_dr, batch

    def forward(self, input: Tensor, target) -> Tensor:
        t = _as_array(target)
        n = input.shape[0]
        if t.shape == (n, 1) + input.shape[2:]:
            t = t[:, 0]
        if np.issubdtype(t.dtype, np.floating) and t.shape == input.shape:
            t = t.argmax(1)  # one-hot given: CE takes the labels
        labels = t.astype(np.int64)
        d = dice_loss(
            input,
            labels,
            sigmoid=False,
            softmax=True,
            include_background=self.include_background,
            smooth_nr=self.smooth_nr,
            smooth_dr=self.smooth_dr,
            batch=self.batch,
        )
        ce = F.cross_entropy(input, Tensor(labels, device=input.device))
        return self.lambda_dice * d + self.lambda_ce * ce
