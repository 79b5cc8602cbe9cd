"""U-Net (Ronneberger et al. 2015) for 2-D segmentation, with 'same' padding so output size = input size.

    >>> from tinygrad_rad.models import UNet
    >>> net = UNet(in_channels=1, num_classes=1, depth=3, base_channels=16)
    >>> net(tinygrad_rad.randn(2, 1, 128, 128)).shape
    (2, 1, 128, 128)

Encoder: ``depth`` stages of [conv3x3-BN-ReLU] x 2 then 2x2 max-pool, channels ``base * 2**i``; a
bottleneck at ``base * 2**depth``; the decoder upsamples (2x2 transposed conv, or bilinear resize +
1x1 conv with ``up="interp"``), concatenates the skip connection and applies two convs. A final
1x1 conv gives ``num_classes`` logits per pixel (use sigmoid for ``num_classes=1``, softmax otherwise).
"""

from __future__ import annotations

from .. import nn
from ..tensor import Tensor, cat

__all__ = ["UNet", "DoubleConv", "UNetEncoderMixin"]


# The layer types are class attributes: the 3-D U-Net (unet3d.py: DoubleConv3d, UNet3D) is these classes
# with Conv3d / BatchNorm3d / MaxPool3d / ConvTranspose3d and trilinear upsampling.
class DoubleConv(nn.Module):
    """[conv3x3 (padding 1) -> BatchNorm -> ReLU] x 2 (no BN when ``batch_norm=False``: conv has a bias)."""

    Conv, BatchNorm = nn.Conv2d, nn.BatchNorm2d

    def __init__(self, in_channels: int, out_channels: int, batch_norm: bool = True):
        super().__init__()
        layers = []
        for cin in (in_channels, out_channels):
            layers.append(self.Conv(cin, out_channels, 3, padding=1, bias=not batch_norm))
            if batch_norm:
                layers.append(self.BatchNorm(out_channels))
            layers.append(nn.ReLU())
        self.block = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.block(x)


class UNetEncoderMixin:
    """The U-Net contracting path for a :class:`~tinygrad_rad.nn.Module` (``UNet``, ``CenterNet``).

    ``_build_encoder`` sets ``down`` (a :class:`DoubleConv` per level), ``pool`` and ``bottleneck`` on the
    module itself, so parameter names (``down.0.block.0.weight``...) match across models and checkpoints.

        >>> x, skips = self._encode(x)   # x: bottleneck output; skips: one per level, finest first
    """

    Block, MaxPool = DoubleConv, nn.MaxPool2d

    def _build_encoder(self, in_channels: int, chans: list, batch_norm: bool) -> None:
        self.down = nn.ModuleList()
        cin = in_channels
        for c in chans[:-1]:
            self.down.append(self.Block(cin, c, batch_norm))
            cin = c
        self.pool = self.MaxPool(2)
        self.bottleneck = self.Block(chans[-2], chans[-1], batch_norm)

    def _check_input(self, x: Tensor, hint: str = "") -> None:
        name = type(self).__name__
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"{name}: expected input (N, {self.in_channels}, H, W), got shape {x.shape}")
        m = 2**self.depth
        if x.shape[2] % m or x.shape[3] % m:
            raise ValueError(
                f"{name}: input height and width must be divisible by 2**depth = {m}, got "
                f"{x.shape[2]}x{x.shape[3]}{hint}"
            )

    def _encode(self, x: Tensor) -> tuple[Tensor, list]:
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = self.pool(x)
        return self.bottleneck(x), skips


class _Up(nn.Module):
    Conv, ConvTranspose, Block, interp = nn.Conv2d, nn.ConvTranspose2d, DoubleConv, "bilinear"

    def __init__(self, in_channels: int, out_channels: int, up: str, batch_norm: bool):
        super().__init__()
        self.mode = up
        if up == "transpose":
            self.up = self.ConvTranspose(in_channels, out_channels, 2, stride=2)
        else:
            self.up = nn.Sequential(
                nn.Upsample(scale_factor=2, mode=self.interp, align_corners=False),
                self.Conv(in_channels, out_channels, 1),
            )
        self.conv = self.Block(2 * out_channels, out_channels, batch_norm)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        return self.conv(cat([self.up(x), skip], dim=1))


class UNet(UNetEncoderMixin, nn.Module):
    """``UNet(in_channels=1, num_classes=1, depth=4, base_channels=32, batch_norm=True, up="transpose")``.

    Input (N, in_channels, H, W) with H and W divisible by ``2**depth``; output logits
    (N, num_classes, H, W).
    """

    Up, Conv = _Up, nn.Conv2d
    input_hint = " (pad or resize the image, or lower depth)"

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 1,
        depth: int = 4,
        base_channels: int = 32,
        batch_norm: bool = True,
        up: str = "transpose",
    ):
        super().__init__()
        name = type(self).__name__
        if depth < 1:
            raise ValueError(f"{name}: depth must be >= 1, got {depth}")
        if in_channels < 1 or num_classes < 1 or base_channels < 1:
            raise ValueError(
                f"{name}: in_channels, num_classes and base_channels must be >= 1, got "
                f"{in_channels}, {num_classes}, {base_channels}"
            )
        if up not in ("transpose", "interp"):
            raise ValueError(f"{name}: up must be 'transpose' or 'interp', got {up!r}")
        self.in_channels, self.num_classes, self.depth = in_channels, num_classes, depth
        self.base_channels, self.batch_norm, self.up_mode = base_channels, batch_norm, up
        chans = [base_channels * 2**i for i in range(depth + 1)]
        self._build_encoder(in_channels, chans, batch_norm)
        self.ups = nn.ModuleList(
            [self.Up(chans[i + 1], chans[i], up, batch_norm) for i in reversed(range(depth))]
        )
        self.head = self.Conv(chans[0], num_classes, 1)

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x, hint=self.input_hint)
        x, skips = self._encode(x)
        for up, skip in zip(self.ups, reversed(skips)):
            x = up(x, skip)
        return self.head(x)

    def extra_repr(self) -> str:
        return (
            f"in_channels={self.in_channels}, num_classes={self.num_classes}, depth={self.depth}, "
            f"base_channels={self.base_channels}, batch_norm={self.batch_norm}, up={self.up_mode!r}"
        )
