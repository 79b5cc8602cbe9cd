"""Convolutions: ``Conv1d``, ``Conv2d`` and ``ConvTranspose2d`` (PyTorch's weight layouts and initialisation).

    >>> Conv2d(1, 8, 3, padding="same")(tinygrad_rad.randn(2, 1, 28, 28)).shape
    (2, 8, 28, 28)
"""

from __future__ import annotations

import math

from ...tensor import Tensor
from .. import functional as F
from .. import init
from ..argcheck import pair
from .module import Module, new_parameter

__all__ = ["Conv1d", "Conv2d", "ConvTranspose2d"]


class _ConvNd(Module):
    def _make_parameters(self, bias: bool, dtype, device, transposed: bool = False) -> None:
        """``weight`` (C_out, C_in/groups, *kernel) - transposed: (C_in, C_out/groups, *kernel) -, ``bias``
        (C_out,) or None, then PyTorch's initialisation."""
        o, i = self.out_channels, self.in_channels
        wshape = (i, o // self.groups) if transposed else (o, i // self.groups)
        self.weight = new_parameter(wshape + self.kernel_size, dtype, device)
        if bias:
            self.bias = new_parameter((self.out_channels,), dtype, device)
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = init.calculate_fan_in_and_fan_out(self.weight)
            if fan_in != 0:
                bound = 1 / math.sqrt(fan_in)
                init.uniform_(self.bias, -bound, bound)

    def extra_repr(self) -> str:
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if isinstance(self.padding, str) or any(self.padding):
            s += f", padding={self.padding}"
        if any(d != 1 for d in self.dilation):
            s += f", dilation={self.dilation}"
        if any(getattr(self, "output_padding", ())):
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        return s


class Conv2d(_ConvNd):
    """2-D convolution over (N, C_in, H, W); ``padding`` may be an int, a pair, ``'same'`` or ``'valid'``.

    >>> Conv2d(1, 8, 3, padding="same")(tinygrad_rad.randn(2, 1, 28, 28)).shape
    (2, 8, 28, 28)
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, padding_mode: str = "zeros", device=None,
                 dtype=None) -> None:
        super().__init__()
        if padding_mode != "zeros":
            raise NotImplementedError(f"Conv2d: padding_mode {padding_mode!r} is not supported")
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f"Conv2d: groups={groups} must divide in_channels={in_channels} and "
                f"out_channels={out_channels}"
            )
        self.in_channels, self.out_channels, self.groups = int(in_channels), int(out_channels), int(groups)
        self.kernel_size, self.stride = pair(kernel_size, "kernel_size"), pair(stride, "stride")
        self.dilation = pair(dilation, "dilation")
        self.padding = padding if isinstance(padding, str) else pair(padding, "padding")
        self.padding_mode = padding_mode
        self._make_parameters(bias, dtype, device)

    def forward(self, input: Tensor) -> Tensor:
        return F.conv2d(input, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


def _single(v, name: str) -> tuple:
    v = tuple(v) if isinstance(v, (tuple, list)) else (v,)
    if len(v) != 1:
        raise ValueError(f"Conv1d: {name} must be an int or a 1-tuple, got {v!r}")
    return (int(v[0]),)


class Conv1d(_ConvNd):
    """1-D convolution over (N, C_in, L); ``weight`` (C_out, C_in/groups, K) as in PyTorch.

    >>> Conv1d(3, 8, 5, padding=2)(tinygrad_rad.randn(2, 3, 40)).shape
    (2, 8, 40)
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, padding_mode: str = "zeros", device=None,
                 dtype=None) -> None:
        super().__init__()
        if padding_mode != "zeros":
            raise NotImplementedError(f"Conv1d: padding_mode {padding_mode!r} is not supported")
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f"Conv1d: groups={groups} must divide in_channels={in_channels} and "
                f"out_channels={out_channels}"
            )
        self.in_channels, self.out_channels, self.groups = int(in_channels), int(out_channels), int(groups)
        self.kernel_size, self.stride = _single(kernel_size, "kernel_size"), _single(stride, "stride")
        self.dilation = _single(dilation, "dilation")
        self.padding = padding if isinstance(padding, str) else _single(padding, "padding")
        self.padding_mode = padding_mode
        self._make_parameters(bias, dtype, device)

    def forward(self, input: Tensor) -> Tensor:
        return F.conv1d(input, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class ConvTranspose2d(_ConvNd):
    """Transposed 2-D convolution; ``weight`` is (C_in, C_out/groups, kH, kW) as in PyTorch.

    >>> ConvTranspose2d(8, 4, 2, stride=2)(tinygrad_rad.randn(1, 8, 7, 7)).shape
    (1, 4, 14, 14)
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 output_padding=0, groups: int = 1, bias: bool = True, dilation=1,
                 padding_mode: str = "zeros", device=None, dtype=None) -> None:
        super().__init__()
        if padding_mode != "zeros":
            raise NotImplementedError(f"ConvTranspose2d: padding_mode {padding_mode!r} is not supported")
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f"ConvTranspose2d: groups={groups} must divide in_channels={in_channels} and "
                f"out_channels={out_channels}"
            )
        self.in_channels, self.out_channels, self.groups = int(in_channels), int(out_channels), int(groups)
        self.kernel_size, self.stride = pair(kernel_size, "kernel_size"), pair(stride, "stride")
        self.dilation = pair(dilation, "dilation")
        self.padding, self.output_padding = pair(padding, "padding"), pair(output_padding, "output_padding")
        self.padding_mode = padding_mode
        self._make_parameters(bias, dtype, device, transposed=True)

    def forward(self, input: Tensor, output_size=None) -> Tensor:
        output_padding = self.output_padding
        if output_size is not None:
            output_padding = self._output_padding(input, output_size)
        return F.conv_transpose2d(input, self.weight, self.bias, self.stride, self.padding, output_padding,
                                  self.groups, self.dilation)

    def _output_padding(self, input: Tensor, output_size) -> tuple:
        size = tuple(output_size)[-2:]
        pads = []
        for i in (0, 1):
            base = ((input.shape[2 + i] - 1) * self.stride[i] - 2 * self.padding[i]
                    + self.dilation[i] * (self.kernel_size[i] - 1) + 1)
            extra = int(size[i]) - base
            if not 0 <= extra < max(self.stride[i], self.dilation[i]):
                raise ValueError(
                    f"ConvTranspose2d: output_size {size} is not reachable from input {input.shape} "
                    f"(valid sizes start at {base})"
                )
            pads.append(extra)
        return tuple(pads)
