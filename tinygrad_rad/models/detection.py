"""CenterNet-style single-stage detector for small objects (Zhou et al. 2019, "Objects as Points").

    >>> from tinygrad_rad.models import CenterNet
    >>> net = CenterNet(in_channels=1, base_channels=8, depth=3, stride=2)
    >>> out = net(tinygrad_rad.randn(2, 1, 128, 128))
    >>> out["heat"].shape, out["size"].shape, out["offset"].shape
    ((2, 1, 64, 64), (2, 2, 64, 64), (2, 2, 64, 64))

Backbone: a U-Net encoder (``depth`` poolings, channels ``base * 2**i``) and a decoder that stops at
output ``stride`` (1, 2, 4, ...). Three heads (3x3 conv-ReLU-1x1 conv) predict, per output cell, the
object-centre heat-map logit, log(width, height) in output cells, and the sub-cell centre offset.
Training targets come from :func:`centernet_targets` (Gaussian peaks at the box centres, log sizes,
sub-cell offsets) and predictions from :func:`decode_centernet` (3x3 peaks, then NMS); train with
:func:`tinygrad_rad.nn.functional.centernet_focal_loss` plus masked L1 on size and offset
(``centernet_loss``).
"""

from __future__ import annotations

import math

import numpy as np

from .. import nn
from ..boxes import as_boxes, local_maxima, nms
from ..device import xp_for
from ..nn.functional import centernet_focal_loss
from ..tensor import Tensor, cat
from .unet import DoubleConv, UNetEncoderMixin

__all__ = ["CenterNet", "centernet_loss", "gaussian_radius", "draw_gaussian", "centernet_targets",
           "decode_centernet"]


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


# ------------------------------------------------------------------ targets and decoding (NumPy)
def gaussian_radius(h: float, w: float, min_overlap: float = 0.7) -> float:
    """CenterNet's radius: the largest centre shift that keeps IoU >= min_overlap with the true box."""
    a1, b1 = 1.0, h + w
    c1 = w * h * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + math.sqrt(b1**2 - 4 * a1 * c1)) / 2
    a2, b2 = 4.0, 2 * (h + w)
    c2 = (1 - min_overlap) * w * h
    r2 = (b2 + math.sqrt(b2**2 - 4 * a2 * c2)) / 2
    a3, b3 = 4 * min_overlap, -2 * min_overlap * (h + w)
    c3 = (min_overlap - 1) * w * h
    r3 = (b3 + math.sqrt(b3**2 - 4 * a3 * c3)) / 2
    return min(r1, r2, r3)


def draw_gaussian(heat: np.ndarray, cx: int, cy: int, sigma: float) -> None:
    """heat = max(heat, exp(-d^2 / 2 sigma^2)) around integer centre (cx, cy), in place (peak exactly 1)."""
    h, w = heat.shape
    r = max(1, int(math.ceil(3 * sigma)))
    y0, y1, x0, x1 = max(0, cy - r), min(h, cy + r + 1), max(0, cx - r), min(w, cx + r + 1)
    yy, xx = np.mgrid[y0:y1, x0:x1]
    g = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma * sigma))
    np.maximum(heat[y0:y1, x0:x1], g, out=heat[y0:y1, x0:x1])


def centernet_targets(boxes, out_h: int, out_w: int, stride: int) -> dict:
    """Dense CenterNet targets for one image at output size (out_h, out_w) = image size / stride:
    ``heat`` (1, H, W) Gaussian peaks, ``size`` (2, H, W) log(w, h) in output pixels, ``offset`` (2, H, W)
    sub-cell centre offset in [0, 1), and ``mask`` (1, H, W) = 1 at the centre cells."""
    b = as_boxes(boxes)
    heat = np.zeros((out_h, out_w), np.float32)
    size = np.zeros((2, out_h, out_w), np.float32)
    off = np.zeros((2, out_h, out_w), np.float32)
    mask = np.zeros((1, out_h, out_w), np.float32)
    for x0, y0, x1, y1 in b:
        w, h = (x1 - x0) / stride, (y1 - y0) / stride
        if w <= 0 or h <= 0:
            continue
        cx, cy = (x0 + x1) / 2 / stride, (y0 + y1) / 2 / stride
        ix, iy = int(math.floor(cx)), int(math.floor(cy))
        if not (0 <= ix < out_w and 0 <= iy < out_h):
            continue
        r = max(0.0, gaussian_radius(h, w))
        draw_gaussian(heat, ix, iy, sigma=max((2 * int(r) + 1) / 6.0, 0.5))
        size[:, iy, ix] = np.log(w), np.log(h)
        off[:, iy, ix] = cx - ix, cy - iy
        mask[0, iy, ix] = 1.0
    return {"heat": heat[None], "size": size, "offset": off, "mask": mask}


def decode_centernet(
    heat_logits: np.ndarray,
    size: np.ndarray,
    offset: np.ndarray,
    stride: int,
    top_k: int = 50,
    score_threshold: float = 0.01,
    nms_iou: float | None = 0.3,
):
    """Boxes and scores for one image from head outputs: heat (1, H, W) logits, size (2, H, W) log sizes,
    offset (2, H, W). Peaks = 3x3 local maxima of sigmoid(heat); then optional box NMS.

    Returns ``(boxes (K, 4) in input pixels, scores (K,))`` sorted by score."""
    hm = 1.0 / (1.0 + np.exp(-np.asarray(heat_logits, np.float64)[0]))
    peaks = local_maxima(hm) & (hm >= score_threshold)
    ys, xs = np.nonzero(peaks)
    sc = hm[ys, xs]
    order = np.argsort(-sc, kind="stable")[:top_k]
    ys, xs, sc = ys[order], xs[order], sc[order]
    w = np.exp(np.clip(size[0, ys, xs], -5, 6))
    h = np.exp(np.clip(size[1, ys, xs], -5, 6))
    cx, cy = xs + offset[0, ys, xs], ys + offset[1, ys, xs]
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1) * stride
    if nms_iou is not None and len(boxes):
        keep = nms(boxes, sc, nms_iou)
        boxes, sc = boxes[keep], sc[keep]
    return boxes.reshape(-1, 4), sc
