"""3-D U-Net (Çiçek et al. 2016) for volume segmentation, 'same' padding so output size = input size.

    >>> from tinygrad_rad.models import UNet3D
    >>> net = UNet3D(in_channels=1, num_classes=1, depth=3, base_channels=8)
    >>> net(tinygrad_rad.randn(1, 1, 32, 32, 32)).shape
    (1, 1, 32, 32, 32)

The 2-D :class:`~tinygrad_rad.models.UNet` with every layer in 3-D: ``depth`` encoder stages of
[conv3x3x3-BN-ReLU] x 2 then a 2x2x2 max-pool, channels ``base * 2**i``; a bottleneck at
``base * 2**depth``; the decoder upsamples (2x2x2 transposed conv, or trilinear resize + 1x1x1 conv
with ``up="interp"``), concatenates the skip connection and applies two convs; a final 1x1x1 conv
gives ``num_classes`` logits per voxel. Module names match ``UNet``'s (``down.0.block.0.weight``,
``bottleneck``, ``ups.0.up``, ``head``...).
"""

from __future__ import annotations

from .. import nn
from ..tensor import Tensor
from .unet import DoubleConv, UNet, _Up

__all__ = ["UNet3D", "DoubleConv3d"]


class DoubleConv3d(DoubleConv):
    """[conv3x3x3 (padding 1) -> BatchNorm3d -> ReLU] x 2 (without BN the conv has a bias)."""

    Conv, BatchNorm = nn.Conv3d, nn.BatchNorm3d


class _Up3d(_Up):
    Conv, ConvTranspose, Block, interp = nn.Conv3d, nn.ConvTranspose3d, DoubleConv3d, "trilinear"


class UNet3D(UNet):
    """``UNet3D(in_channels=1, num_classes=1, depth=3, base_channels=16, batch_norm=True, up="transpose")``.

    Input (N, in_channels, D, H, W) with D, H and W divisible by ``2**depth``; output logits
    (N, num_classes, D, H, W) (sigmoid for ``num_classes=1``, softmax over dim 1 otherwise).
    """

    Block, MaxPool, Up, Conv = DoubleConv3d, nn.MaxPool3d, _Up3d, nn.Conv3d
    input_hint = " (pad or resize the volume, or lower depth)"

    def __init__(self, in_channels: int = 1, num_classes: int = 1, depth: int = 3, base_channels: int = 16,
                 batch_norm: bool = True, up: str = "transpose"):
        super().__init__(in_channels, num_classes, depth, base_channels, batch_norm, up)

    def _check_input(self, x: Tensor, hint: str = "") -> None:
        if x.ndim != 5 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"UNet3D: expected input (N, {self.in_channels}, D, H, W), got shape {x.shape}"
            )
        m = 2**self.depth
        if any(s % m for s in x.shape[2:]):
            raise ValueError(
                f"UNet3D: input depth, height and width must be divisible by 2**depth = {m}, got "
                f"{'x'.join(str(s) for s in x.shape[2:])}{hint}"
            )
