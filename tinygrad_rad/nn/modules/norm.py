"""Batch normalisation: ``BatchNorm1d`` and ``BatchNorm2d`` (running stats as buffers, as in PyTorch).

    >>> bn = BatchNorm2d(8).eval()
    >>> bn(tinygrad_rad.randn(2, 8, 4, 4)).shape
    (2, 8, 4, 4)
"""

from __future__ import annotations

import numpy as np

from ...device import xp_of
from ...dtypes import to_dtype
from ...tensor import Tensor
from .. import functional as F
from .. import init
from .module import Module, new_parameter

__all__ = ["BatchNorm1d", "BatchNorm2d"]


class _BatchNorm(Module):
    _expected_dims: tuple = ()

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True, device=None, dtype=None) -> None:
        super().__init__()
        self.num_features, self.eps, self.momentum = int(num_features), float(eps), momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        if affine:
            self.weight = new_parameter((self.num_features,), dtype, device)
            self.bias = new_parameter((self.num_features,), dtype, device)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            dt = to_dtype(dtype) if dtype is not None else np.float32
            self.register_buffer("running_mean", Tensor(np.zeros(self.num_features, dtype=dt), device=device))
            self.register_buffer("running_var", Tensor(np.ones(self.num_features, dtype=dt), device=device))
            self.register_buffer("num_batches_tracked", Tensor(np.array(0, dtype=np.int64), device=device))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
        self.reset_parameters()

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            init.zeros_(self.running_mean)
            init.ones_(self.running_var)
            self.num_batches_tracked.data = xp_of(self.num_batches_tracked.data).zeros((), dtype=np.int64)

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        if self.affine:
            init.ones_(self.weight)
            init.zeros_(self.bias)

    def forward(self, input: Tensor) -> Tensor:
        return self._normalise(input, False)

    def forward_relu(self, input: Tensor) -> Tensor:
        """``relu(self(input))`` as one fused op (``F.batch_norm_relu``): what ``nn.Sequential`` calls for
        this module followed by an ``nn.ReLU``. A subclass that changes ``forward`` keeps its own."""
        if type(self).forward is not _BatchNorm.forward:
            return F.relu(self(input))
        return self._normalise(input, True)

    def _normalise(self, input: Tensor, with_relu: bool) -> Tensor:
        if input.ndim not in self._expected_dims:
            dims = " or ".join(f"{d}-D" for d in self._expected_dims)
            raise ValueError(f"{type(self).__name__}: expected a {dims} input, got shape {input.shape}")
        if input.shape[1] != self.num_features:
            raise ValueError(
                f"{type(self).__name__}: expected {self.num_features} channels, "
                f"got input of shape {input.shape}"
            )
        momentum = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            nbt = self.num_batches_tracked.data
            self.num_batches_tracked.data = xp_of(nbt).asarray(nbt + 1, dtype=nbt.dtype)  # stays 0-d
            if self.momentum is None:  # cumulative moving average
                momentum = 1.0 / float(self.num_batches_tracked.item())
        use_batch = self.training or not self.track_running_stats
        tracking = self.training and self.track_running_stats
        return (F.batch_norm_relu if with_relu else F.batch_norm)(
            input,
            self.running_mean if tracking or not use_batch else None,
            self.running_var if tracking or not use_batch else None,
            self.weight, self.bias, use_batch, momentum, self.eps,
        )

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch norm over (N, C) or (N, C, L)."""

    _expected_dims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch norm over (N, C, H, W): per-channel batch statistics when training, running ones in eval.

    >>> bn = BatchNorm2d(8); bn.eval()
    """

    _expected_dims = (4,)
