"""``Identity`` and ``Linear`` (y = x W^T + b).

    >>> Linear(4, 2)(tinygrad_rad.randn(3, 4)).shape
    (3, 2)
"""

from __future__ import annotations

import math

from ...tensor import Tensor
from .. import functional as F
from .. import init
from .module import Module, new_parameter

__all__ = ["Identity", "Linear"]


class Identity(Module):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__()

    def forward(self, x):
        return x


class Linear(Module):
    """y = x W^T + b; ``weight`` (out_features, in_features), initialised as in PyTorch.

    >>> Linear(4, 2)(tinygrad_rad.randn(3, 4)).shape
    (3, 2)
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, device=None,
                 dtype=None) -> None:
        super().__init__()
        self.in_features, self.out_features = int(in_features), int(out_features)
        self.weight = new_parameter((self.out_features, self.in_features), dtype, device)
        if bias:
            self.bias = new_parameter((self.out_features,), dtype, device)
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in = self.in_features
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input: Tensor) -> Tensor:
        return F.linear(input, self.weight, self.bias)

    def extra_repr(self) -> str:
        has_bias = self.bias is not None
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={has_bias}"
