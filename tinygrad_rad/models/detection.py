"""CenterNet-style single-stage detector for small objects (Zhou et al. 2019, "Objects as Points").

    >>> from tinygrad_rad.models import CenterNet
    >>> net = CenterNet(in_channels=1, base_channels=8, depth=3, stride=2)
    >>> out = net(tinygrad_rad.randn(2, 1, 128, 128))
    >>> out["heat"].shape, out["size"].shape, out["offset"].shape
    ((2, 1, 64, 64), (2, 2, 64, 64), (2, 2, 64, 64))

Backbone: a U-Net encoder (``depth`` poolings, channels ``base * 2**i``) and a decoder that stops at
output ``stride`` (1, 2, 4, ...). Three heads (3x3 conv-ReLU-1x1 conv) predict, per output cell, the
object-centre heat-map logit, log(width, height) in output cells, and the sub-cell centre offset.
Decode with :func:`tinygrad_rad.detect.decode_centernet`; train with
:func:`tinygrad_rad.losses.centernet_focal_loss` plus masked L1 on size and offset (``centernet_loss``).
"""

from __future__ import annotations

import math

import numpy as np

from .. import nn
from ..tensor import Tensor, cat
from .unet import DoubleConv, UNetEncoderMixin

__all__ = ["CenterNet", "centernet_loss"]


class _Head(nn.Module):
    def __init__(self, channels: int, out: int, bias_init: float = 0.0):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.relu = nn.ReLU()
        self.out = nn.Conv2d(channels, out, 1)
        if bias_init:
            self.out.bias.data[...] = bias_init

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.relu(self.conv(x)))


class CenterNet(UNetEncoderMixin, nn.Module):
    """``CenterNet(in_channels=1, base_channels=8, depth=3, stride=2, batch_norm=True)``.

    Input (N, C, H, W) with H, W divisible by ``2**depth``; returns a dict of ``heat`` (N, 1, H/s, W/s)
    logits, ``size`` (N, 2, H/s, W/s) and ``offset`` (N, 2, H/s, W/s).
    """

    def __init__(
        self,
        in_channels: int = 1,
        base_channels: int = 8,
        depth: int = 3,
        stride: int = 2,
        batch_norm: bool = True,
        prior: float = 0.01,
    ):
        super().__init__()
        if stride < 1 or stride & (stride - 1) or stride > 2**depth:
            raise ValueError(
                f"CenterNet: stride must be a power of 2 in [1, 2**depth={2**depth}], got {stride}"
            )
        self.in_channels, self.base_channels, self.depth, self.stride = (
            in_channels,
            base_channels,
            depth,
            stride,
        )
        chans = [base_channels * 2**i for i in range(depth + 1)]
        self._build_encoder(in_channels, chans, batch_norm)
        n_up = depth - int(math.log2(stride))
        self.ups = nn.ModuleList()
        self.up_convs = nn.ModuleList()
        for i in reversed(range(depth - n_up, depth)):
            self.ups.append(nn.ConvTranspose2d(chans[i + 1], chans[i], 2, stride=2))
            self.up_convs.append(DoubleConv(2 * chans[i], chans[i], batch_norm))
        c_out = chans[depth - n_up]
        # heat-map bias so that sigmoid starts at ``prior`` (CenterNet / RetinaNet initialisation)
        self.heat = _Head(c_out, 1, bias_init=-math.log((1 - prior) / prior))
        self.size = _Head(c_out, 2)
        self.offset = _Head(c_out, 2)

    def forward(self, x: Tensor) -> dict:
        self._check_input(x)
        x, skips = self._encode(x)
        for up, conv, skip in zip(self.ups, self.up_convs, reversed(skips)):
            x = conv(cat([up(x), skip], dim=1))
        return {"heat": self.heat(x), "size": self.size(x), "offset": self.offset(x)}

    def extra_repr(self) -> str:
        return (
            f"in_channels={self.in_channels}, base_channels={self.base_channels}, depth={self.depth}, "
            f"stride={self.stride}"
        )


def centernet_loss(
    out: dict, heat, size, offset, mask, size_weight: float = 0.1, offset_weight: float = 1.0
) -> tuple[Tensor, dict]:
    """Total CenterNet loss: focal(heat) + size_weight * L1(size) + offset_weight * L1(offset), the L1
    terms averaged over object centres (``mask`` = 1 there). Returns (loss, {part: float})."""
    from ..device import xp_for
    from ..losses import centernet_focal_loss

    def const(a, like):
        a = a.numpy() if isinstance(a, Tensor) else np.asarray(a)
        return Tensor._wrap(xp_for(like.device).asarray(a.astype(like.dtype)), device=like.device)

    hl = centernet_focal_loss(out["heat"], heat.numpy() if isinstance(heat, Tensor) else heat)
    m = const(mask, out["size"])
    n = max(float(m.numpy().sum()), 1.0)
    sl = ((out["size"] - const(size, out["size"])).abs() * m).sum() * (1.0 / n)
    ol = ((out["offset"] - const(offset, out["offset"])).abs() * m).sum() * (1.0 / n)
    total = hl + size_weight * sl + offset_weight * ol
    return total, {"heat": float(hl.item()), "size": float(sl.item()), "offset": float(ol.item())}
