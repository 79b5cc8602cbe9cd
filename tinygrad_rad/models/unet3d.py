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
from ..tensor import Tensor, cat

__all__ = ["UNet3D", "DoubleConv3d"]


class DoubleConv3d(nn.Module):
    """[conv3x3x3 (padding 1) -> BatchNorm3d -> ReLU] x 2 (without BN the conv has a bias)."""

    def __init__(self, in_channels: int, out_channels: int, batch_norm: bool = True):
        super().__init__()
        layers = []
        for cin in (in_channels, out_channels):
            layers.append(nn.Conv3d(cin, out_channels, 3, padding=1, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm3d(out_channels))
            layers.append(nn.ReLU())
        self.block = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.block(x)


class _Up3d(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, up: str, batch_norm: bool):
        super().__init__()
        if up == "transpose":
            self.up = nn.ConvTranspose3d(in_channels, out_channels, 2, stride=2)
        else:
            self.up = nn.Sequential(
                nn.Upsample(scale_factor=2, mode="trilinear", align_corners=False),
                nn.Conv3d(in_channels, out_channels, 1),
            )
        self.conv = DoubleConv3d(2 * out_channels, out_channels, batch_norm)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        return self.conv(cat([self.up(x), skip], dim=1))


class UNet3D(nn.Module):
    """``UNet3D(in_channels=1, num_classes=1, depth=3, base_channels=16, batch_norm=True, up="transpose")``.

    Input (N, in_channels, D, H, W) with D, H and W divisible by ``2**depth``; output logits
    (N, num_classes, D, H, W) (sigmoid for ``num_classes=1``, softmax over dim 1 otherwise).
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 1,
        depth: int = 3,
        base_channels: int = 16,
        batch_norm: bool = True,
        up: str = "transpose",
    ):
        super().__init__()
        if depth < 1:
            raise ValueError(f"UNet3D: depth must be >= 1, got {depth}")
        if in_channels < 1 or num_classes < 1 or base_channels < 1:
            raise ValueError(
                f"UNet3D: in_channels, num_classes and base_channels must be >= 1, got "
                f"{in_channels}, {num_classes}, {base_channels}"
            )
        if up not in ("transpose", "interp"):
            raise ValueError(f"UNet3D: up must be 'transpose' or 'interp', got {up!r}")
        self.in_channels, self.num_classes, self.depth = in_channels, num_classes, depth
        self.base_channels, self.batch_norm, self.up_mode = base_channels, batch_norm, up
        chans = [base_channels * 2**i for i in range(depth + 1)]
        self.down = nn.ModuleList()
        cin = in_channels
        for c in chans[:-1]:
            self.down.append(DoubleConv3d(cin, c, batch_norm))
            cin = c
        self.pool = nn.MaxPool3d(2)
        self.bottleneck = DoubleConv3d(chans[-2], chans[-1], batch_norm)
        self.ups = nn.ModuleList(
            [_Up3d(chans[i + 1], chans[i], up, batch_norm) for i in reversed(range(depth))]
        )
        self.head = nn.Conv3d(chans[0], num_classes, 1)

    def _check_input(self, x: Tensor) -> None:
        if x.ndim != 5 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"UNet3D: expected input (N, {self.in_channels}, D, H, W), got shape {x.shape}"
            )
        m = 2**self.depth
        if any(s % m for s in x.shape[2:]):
            raise ValueError(
                f"UNet3D: input depth, height and width must be divisible by 2**depth = {m}, got "
                f"{'x'.join(str(s) for s in x.shape[2:])} (pad or resize the volume, or lower depth)"
            )

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x)
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottleneck(x)
        for up, skip in zip(self.ups, reversed(skips)):
            x = up(x, skip)
        return self.head(x)

    def extra_repr(self) -> str:
        return (
            f"in_channels={self.in_channels}, num_classes={self.num_classes}, depth={self.depth}, "
            f"base_channels={self.base_channels}, batch_norm={self.batch_norm}, up={self.up_mode!r}"
        )
