"""Loss modules: PyTorch's (``CrossEntropyLoss``, ``NLLLoss``, ``BCEWithLogitsLoss``, ``MSELoss``,
``L1Loss``, ``SmoothL1Loss``) and the segmentation ones of MONAI (``DiceLoss``, ``TverskyLoss``,
``DiceBCELoss``, ``DiceCELoss``) and torchvision (``FocalLoss``). Each calls its function in
:mod:`tinygrad_rad.nn.losses`.

    >>> loss_fn = CrossEntropyLoss(label_smoothing=0.1)
    >>> loss_fn(tinygrad_rad.randn(4, 3), tinygrad_rad.tensor([0, 2, 1, 0])).shape
    ()
    >>> DiceBCELoss()(tinygrad_rad.randn(2, 1, 8, 8), (tinygrad_rad.rand(2, 1, 8, 8) > 0.5).float())
"""

from __future__ import annotations

import numpy as np

from ...tensor import Tensor
from .. import functional as F
from .module import Module

__all__ = [
    "CrossEntropyLoss", "NLLLoss", "BCEWithLogitsLoss", "MSELoss", "L1Loss", "SmoothL1Loss",
    "DiceLoss", "TverskyLoss", "FocalLoss", "DiceBCELoss", "DiceCELoss",
]


class _Loss(Module):
    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(
                f"{type(self).__name__}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}"
            )
        self.reduction = reduction

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"


class CrossEntropyLoss(_Loss):
    """Softmax cross-entropy on logits with class-index targets: ``CrossEntropyLoss()(logits, y)``."""

    def __init__(self, weight: Tensor | None = None, ignore_index: int = -100, reduction: str = "mean",
                 label_smoothing: float = 0.0) -> None:
        super().__init__(reduction)
        self.ignore_index, self.label_smoothing = ignore_index, label_smoothing
        self.register_buffer("weight", weight)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.cross_entropy(input, target, self.weight, self.ignore_index, self.reduction,
                               self.label_smoothing)


class NLLLoss(_Loss):
    def __init__(self, weight: Tensor | None = None, ignore_index: int = -100,
                 reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.ignore_index = ignore_index
        self.register_buffer("weight", weight)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.nll_loss(input, target, self.weight, self.ignore_index, self.reduction)


class BCEWithLogitsLoss(_Loss):
    def __init__(self, weight: Tensor | None = None, reduction: str = "mean",
                 pos_weight: Tensor | None = None) -> None:
        super().__init__(reduction)
        self.register_buffer("weight", weight)
        self.register_buffer("pos_weight", pos_weight)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.binary_cross_entropy_with_logits(input, target, self.weight, self.reduction, self.pos_weight)


class MSELoss(_Loss):
    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.mse_loss(input, target, self.reduction)


class L1Loss(_Loss):
    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.l1_loss(input, target, self.reduction)


class SmoothL1Loss(_Loss):
    def __init__(self, reduction: str = "mean", beta: float = 1.0) -> None:
        super().__init__(reduction)
        self.beta = beta

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.smooth_l1_loss(input, target, self.reduction, self.beta)


# ------------------------------------------------------------------ segmentation / detection losses
class DiceLoss(_Loss):
    """Soft Dice loss (MONAI's ``DiceLoss``); see :func:`tinygrad_rad.nn.functional.dice_loss`.

    >>> DiceLoss(sigmoid=True)(logits, mask)            # binary, (N, 1, H, W)
    >>> DiceLoss(softmax=True, include_background=False)(logits, labels)   # labels (N, H, W)
    """

    def __init__(self, include_background: bool = True, sigmoid: bool = False, softmax: bool = False,
                 smooth_nr: float = 1e-5, smooth_dr: float = 1e-5, batch: bool = False,
                 reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.include_background, self.sigmoid, self.softmax = include_background, sigmoid, softmax
        self.smooth_nr, self.smooth_dr, self.batch = smooth_nr, smooth_dr, batch

    def forward(self, input: Tensor, target) -> Tensor:
        return F.dice_loss(input, target, sigmoid=self.sigmoid, softmax=self.softmax,
                           include_background=self.include_background, smooth_nr=self.smooth_nr,
                           smooth_dr=self.smooth_dr, batch=self.batch, reduction=self.reduction)

    def extra_repr(self) -> str:
        return (f"include_background={self.include_background}, sigmoid={self.sigmoid}, "
                f"softmax={self.softmax}, batch={self.batch}, reduction={self.reduction!r}")


class TverskyLoss(_Loss):
    """Tversky loss (MONAI's ``TverskyLoss``): ``alpha`` weighs false positives, ``beta`` false negatives."""

    def __init__(self, include_background: bool = True, sigmoid: bool = False, softmax: bool = False,
                 alpha: float = 0.5, beta: float = 0.5, smooth_nr: float = 1e-5, smooth_dr: float = 1e-5,
                 batch: bool = False, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.include_background, self.sigmoid, self.softmax = include_background, sigmoid, softmax
        self.alpha, self.beta = alpha, beta
        self.smooth_nr, self.smooth_dr, self.batch = smooth_nr, smooth_dr, batch

    def forward(self, input: Tensor, target) -> Tensor:
        return F.tversky_loss(input, target, alpha=self.alpha, beta=self.beta, sigmoid=self.sigmoid,
                              softmax=self.softmax, include_background=self.include_background,
                              smooth_nr=self.smooth_nr, smooth_dr=self.smooth_dr, batch=self.batch,
                              reduction=self.reduction)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, beta={self.beta}, sigmoid={self.sigmoid}, softmax={self.softmax}"


class FocalLoss(_Loss):
    """Binary focal loss on logits; see :func:`tinygrad_rad.nn.functional.sigmoid_focal_loss` (default
    reduction 'mean'). A target (N, *spatial) is accepted for a one-channel input (N, 1, *spatial)."""

    def __init__(self, alpha: float | None = 0.25, gamma: float = 2.0, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.alpha, self.gamma = alpha, gamma

    def forward(self, input: Tensor, target) -> Tensor:
        t = target.numpy() if isinstance(target, Tensor) else np.asarray(target)
        if t.shape != input.shape and t.shape == (input.shape[0],) + input.shape[2:] and input.shape[1] == 1:
            t = t[:, None]
        return F.sigmoid_focal_loss(input, t, self.alpha, self.gamma, self.reduction)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, gamma={self.gamma}, reduction={self.reduction!r}"


class DiceBCELoss(Module):
    """``lambda_dice * Dice(sigmoid) + lambda_bce * BCE-with-logits`` for binary masks (N, 1, H, W)."""

    def __init__(self, lambda_dice: float = 1.0, lambda_bce: float = 1.0, smooth_nr: float = 1e-5,
                 smooth_dr: float = 1e-5, batch: bool = False) -> None:
        super().__init__()
        self.lambda_dice, self.lambda_bce = lambda_dice, lambda_bce
        self.smooth_nr, self.smooth_dr, self.batch = smooth_nr, smooth_dr, batch

    def forward(self, input: Tensor, target) -> Tensor:
        return F.dice_bce_loss(input, target, self.lambda_dice, self.lambda_bce, self.smooth_nr,
                               self.smooth_dr, self.batch)

    def extra_repr(self) -> str:
        return f"lambda_dice={self.lambda_dice}, lambda_bce={self.lambda_bce}"


class DiceCELoss(Module):
    """``lambda_dice * Dice(softmax) + lambda_ce * cross_entropy`` for C-class labels (N, H, W)."""

    def __init__(self, include_background: bool = True, lambda_dice: float = 1.0, lambda_ce: float = 1.0,
                 smooth_nr: float = 1e-5, smooth_dr: float = 1e-5, batch: bool = False) -> None:
        super().__init__()
        self.include_background = include_background
        self.lambda_dice, self.lambda_ce = lambda_dice, lambda_ce
        self.smooth_nr, self.smooth_dr, self.batch = smooth_nr, smooth_dr, batch

    def forward(self, input: Tensor, target) -> Tensor:
        return F.dice_ce_loss(input, target, self.include_background, self.lambda_dice, self.lambda_ce,
                              self.smooth_nr, self.smooth_dr, self.batch)

    def extra_repr(self) -> str:
        return (f"include_background={self.include_background}, lambda_dice={self.lambda_dice}, "
                f"lambda_ce={self.lambda_ce}")
