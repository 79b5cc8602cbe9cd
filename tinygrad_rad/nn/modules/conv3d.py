"""3-D convolutions: ``Conv3d`` and ``ConvTranspose3d`` over (N, C, D, H, W) volumes (PyTorch's weight
layouts, arguments and initialisation).

    >>> Conv3d(1, 8, 3, padding=1)(tinygrad_rad.randn(2, 1, 16, 16, 16)).shape
    (2, 8, 16, 16, 16)
"""

from __future__ import annotations

from ...tensor import Tensor
from .. import functional as F
from ..functional_3d import triple
from .conv import _ConvNd

__all__ = ["Conv3d", "ConvTranspose3d"]


def _check_groups(name: str, in_channels: int, out_channels: int, groups: int) -> None:
    if groups < 1:
        raise ValueError(f"{name}: groups must be a positive integer, got {groups}")
    if in_channels % groups:
        raise ValueError(f"{name}: in_channels must be divisible by groups (in_channels={in_channels}, "
                         f"groups={groups})")
    if out_channels % groups:
        raise ValueError(f"{name}: out_channels must be divisible by groups (out_channels={out_channels}, "
                         f"groups={groups})")


class Conv3d(_ConvNd):
    """3-D convolution; ``weight`` (C_out, C_in/groups, kD, kH, kW); ``padding`` an int, a triple,
    ``'same'`` or ``'valid'``.

    >>> Conv3d(4, 8, 3, stride=2, padding=1)(tinygrad_rad.randn(1, 4, 28, 28, 28)).shape
    (1, 8, 14, 14, 14)
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, padding_mode: str = "zeros", device=None,
                 dtype=None) -> None:
        super().__init__()
        if padding_mode != "zeros":
            raise NotImplementedError(f"Conv3d: padding_mode {padding_mode!r} is not supported")
        _check_groups("Conv3d", in_channels, out_channels, groups)
        self.in_channels, self.out_channels, self.groups = int(in_channels), int(out_channels), int(groups)
        self.kernel_size = triple(kernel_size, "kernel_size", "Conv3d")
        self.stride = triple(stride, "stride", "Conv3d")
        self.dilation = triple(dilation, "dilation", "Conv3d")
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(
                    f"Conv3d: Invalid padding string {padding!r}, should be one of ['valid', 'same']"
                )
            if padding == "same" and self.stride != (1, 1, 1):
                raise ValueError("Conv3d: padding='same' is not supported for strided convolutions")
            self.padding = padding
        else:
            self.padding = triple(padding, "padding", "Conv3d")
        self.padding_mode = padding_mode
        self._make_parameters(bias, dtype, device)

    def forward(self, input: Tensor) -> Tensor:
        return F.conv3d(input, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class ConvTranspose3d(_ConvNd):
    """Transposed 3-D convolution; ``weight`` (C_in, C_out/groups, kD, kH, kW) as in PyTorch.

    >>> ConvTranspose3d(8, 4, 2, stride=2)(tinygrad_rad.randn(1, 8, 7, 7, 7)).shape
    (1, 4, 14, 14, 14)
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 output_padding=0, groups: int = 1, bias: bool = True, dilation=1,
                 padding_mode: str = "zeros", device=None, dtype=None) -> None:
        super().__init__()
        if padding_mode != "zeros":
            raise NotImplementedError(f"ConvTranspose3d: padding_mode {padding_mode!r} is not supported")
        _check_groups("ConvTranspose3d", in_channels, out_channels, groups)
        name = "ConvTranspose3d"
        self.in_channels, self.out_channels, self.groups = int(in_channels), int(out_channels), int(groups)
        self.kernel_size = triple(kernel_size, "kernel_size", name)
        self.stride, self.dilation = triple(stride, "stride", name), triple(dilation, "dilation", name)
        self.padding = triple(padding, "padding", name)
        self.output_padding = triple(output_padding, "output_padding", name)
        self.padding_mode = padding_mode
        self._make_parameters(bias, dtype, device, transposed=True)

    def forward(self, input: Tensor, output_size=None) -> Tensor:
        output_padding = self.output_padding
        if output_size is not None:
            output_padding = self._output_padding(input, output_size)
        return F.conv_transpose3d(input, self.weight, self.bias, self.stride, self.padding, output_padding,
                                  self.groups, self.dilation)

    def _output_padding(self, input: Tensor, output_size) -> tuple:
        size = tuple(int(s) for s in tuple(output_size)[-3:])
        pads = []
        for i in range(3):
            base = ((input.shape[-3 + i] - 1) * self.stride[i] - 2 * self.padding[i]
                    + self.dilation[i] * (self.kernel_size[i] - 1) + 1)
            extra = size[i] - base
            if not 0 <= extra < max(self.stride[i], self.dilation[i]):
                raise ValueError(
                    f"ConvTranspose3d: requested an output size of {list(size)}, but valid sizes range from "
                    f"{base} to {base + max(self.stride[i], self.dilation[i]) - 1} along dim {i} "
                    f"(for an input of {list(input.shape[-3:])})"
                )
            pads.append(extra)
        return tuple(pads)
