"""``Dropout`` (elements) and ``Dropout2d`` (whole channels), active only in training mode.

    >>> Dropout(0.5).eval()(tinygrad_rad.ones(4)).numpy()
    array([1., 1., 1., 1.], dtype=float32)
"""

from __future__ import annotations

from ...device import xp_for
from ...random import get_generator
from ...tensor import Tensor
from .. import functional as F
from .module import Module

__all__ = ["Dropout", "Dropout2d"]


class Dropout(Module):
    """Zero elements with probability ``p`` while training (scaling the rest by 1/(1-p))."""

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1], got {p}")
        self.p, self.inplace = float(p), inplace

    def forward(self, input: Tensor) -> Tensor:
        return F.dropout(input, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Dropout2d(Dropout):
    """Zero whole channels of (N, C, H, W) with probability ``p`` while training."""

    def forward(self, input: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return input
        if input.ndim != 4:
            raise ValueError(f"Dropout2d: expected a 4-D input (N, C, H, W), got shape {input.shape}")
        keep = get_generator().random(input.shape[:2] + (1, 1)) >= self.p
        scale = 0.0 if self.p == 1.0 else 1.0 / (1.0 - self.p)
        mask = xp_for(input.device).asarray((keep * scale).astype(input.dtype))
        # d(x m)/dx = m (m broadcast over H, W)
        return input * Tensor._wrap(mask, device=input.device)
