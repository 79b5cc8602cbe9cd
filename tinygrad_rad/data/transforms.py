"""Image transforms on float32 NumPy arrays: one image ``(C, H, W)`` or a batch ``(N, C, H, W)``.

Every transform is called as ``t(x, rng=None)``. Random ones draw *per-image* parameters from ``rng``
(a ``numpy.random.Generator``; default: the global ``tinygrad_rad`` generator), so a whole batch is
augmented in one call and a seeded ``rng`` makes it repeatable.

    >>> import numpy as np
    >>> from tinygrad_rad.data import transforms as T
    >>> aug = T.Compose([T.RandomAffine(10, translate=(0.1, 0.1), scale=(0.9, 1.1)), T.Normalize(0.5, 0.5)])
    >>> xb = aug(np.random.rand(128, 1, 28, 28).astype("float32"), rng=np.random.default_rng(0))

Geometry follows torchvision: angles in degrees, positive = counter-clockwise as displayed, rotation
and scaling about the image centre, bilinear sampling (``padding_mode="zeros"`` fills with ``fill``,
``"border"`` repeats the edge, like ``torch.nn.functional.grid_sample``).
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Callable, Iterator, Sequence

import numba
import numpy as np

from ..random import get_generator

CT_WINDOWS = {
    "lung": (-600.0, 1500.0),
    "mediastinum": (50.0, 350.0),
    "soft_tissue": (40.0, 400.0),
    "abdomen": (40.0, 400.0),
    "bone": (400.0, 1800.0),
    "brain": (40.0, 80.0),
}


_LOCAL = threading.local()


def resolve_rng(rng) -> np.random.Generator:
    """``rng``; else the one a :func:`default_rng` block set; else the global generator."""
    if rng is not None:
        return rng
    local = getattr(_LOCAL, "rng", None)
    return local if local is not None else get_generator()


@contextlib.contextmanager
def default_rng(rng: np.random.Generator | None) -> Iterator[None]:
    """Within this block (in this thread), transforms called without ``rng`` draw from ``rng``.

    The DataLoader uses it so that per-item dataset transforms are seeded per batch and never touch
    the global generator from its background thread.
    """
    prev = getattr(_LOCAL, "rng", None)
    _LOCAL.rng = rng
    try:
        yield
    finally:
        _LOCAL.rng = prev


_PADDING = {"zeros": "zeros", "zero": "zeros", "constant": "zeros", "border": "border", "edge": "border"}


def canonical_padding_mode(mode: str) -> str:
    """A padding mode's name ('zeros', 'zero', 'constant', 'border', 'edge') -> 'zeros' or 'border'."""
    if mode not in _PADDING:
        raise ValueError(
            f"padding_mode must be 'zeros' (or 'constant') or 'border' (or 'edge'), got {mode!r}"
        )
    return _PADDING[mode]


def _as_batch(x) -> tuple[np.ndarray, bool]:
    """``(C, H, W)`` -> ``(1, C, H, W)`` (flag True), ``(N, C, H, W)`` unchanged."""
    x = np.asarray(x)
    if x.ndim == 3:
        return x[None], True
    if x.ndim == 4:
        return x, False
    raise ValueError(f"expected an image (C, H, W) or a batch (N, C, H, W), got shape {x.shape}")


def _unbatch(x: np.ndarray, single: bool) -> np.ndarray:
    return x[0] if single else x


def _pair(v, name: str) -> tuple[float, float]:
    if isinstance(v, (int, float)):
        return float(v), float(v)
    if len(v) != 2:
        raise ValueError(f"{name} must be a number or a pair, got {v!r}")
    return float(v[0]), float(v[1])


def _size2(size, name: str = "size") -> tuple[int, int]:
    if isinstance(size, (int, np.integer)):
        return int(size), int(size)
    h, w = size
    return int(h), int(w)


class Transform:
    """Base class: subclasses implement ``__call__(x, rng=None)``."""

    def __call__(self, x, rng: np.random.Generator | None = None):
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({args})"


class Compose(Transform):
    """Apply transforms in order: ``Compose([RandomHorizontalFlip(), Normalize(0.5, 0.5)])``."""

    def __init__(self, transforms: Sequence[Callable]):
        self.transforms = list(transforms)

    def __call__(self, x, rng=None):
        rng = resolve_rng(rng)
        for t in self.transforms:
            x = t(x, rng=rng) if isinstance(t, Transform) else t(x)
        return x


class Lambda(Transform):
    """Wrap a plain function ``f(x)``."""

    def __init__(self, fn: Callable):
        self.fn = fn

    def __call__(self, x, rng=None):
        return self.fn(x)


class ToFloat(Transform):
    """Integer images -> float32 scaled to [0, 1] (``uint8`` / 255, else / ``max_value``).

    Channel-last input ``(H, W, C)`` / ``(N, H, W, C)`` with ``channels_last=True`` is moved to
    channels-first; 2-D ``(H, W)`` gets a channel axis.
    """

    def __init__(self, max_value: float | None = None, channels_last: bool = False):
        self.max_value, self.channels_last = max_value, channels_last

    def __call__(self, x, rng=None):
        a = np.asarray(x)
        if self.channels_last:
            a = np.moveaxis(a, -1, -3)
        elif a.ndim == 2:
            a = a[None]
        if np.issubdtype(a.dtype, np.floating) and self.max_value is None:
            return a.astype(np.float32, copy=False)
        m = self.max_value
        if m is None:
            m = float(np.iinfo(a.dtype).max) if np.issubdtype(a.dtype, np.integer) else 1.0
        return (a.astype(np.float32) * np.float32(1.0 / m)).astype(np.float32, copy=False)


class Normalize(Transform):
    """``(x - mean) / std`` per channel: ``Normalize(0.5, 0.5)`` or ``Normalize([m0, m1], [s0, s1])``."""

    def __init__(self, mean, std):
        self.mean = np.atleast_1d(np.asarray(mean, dtype=np.float32))
        self.std = np.atleast_1d(np.asarray(std, dtype=np.float32))
        if np.any(self.std == 0):
            raise ValueError(f"Normalize: std must be non-zero, got {std}")

    def __call__(self, x, rng=None):
        a, single = _as_batch(x)
        c = a.shape[1]
        if self.mean.size not in (1, c) or self.std.size not in (1, c):
            raise ValueError(f"Normalize has {self.mean.size} means / {self.std.size} stds for {c} channels")
        m, s = self.mean.reshape(1, -1, 1, 1), self.std.reshape(1, -1, 1, 1)
        return _unbatch(((a - m) / s).astype(np.float32, copy=False), single)


class _RandomFlip(Transform):
    """Flip each image along ``axis`` (-1: left-right, -2: top-bottom) with probability ``p``."""

    axis = -1

    def __init__(self, p: float = 0.5):
        self.p = float(p)

    def __call__(self, x, rng=None):
        a, single = _as_batch(x)
        flip = resolve_rng(rng).random(a.shape[0]) < self.p
        out = a.copy()
        out[flip] = np.flip(a[flip], self.axis)
        return _unbatch(out, single)


class RandomHorizontalFlip(_RandomFlip):
    """Flip each image left-right with probability ``p``.

    NOTE: chest X-rays are not left-right symmetric (heart on the left); don't flip them.
    """

    axis = -1


class RandomVerticalFlip(_RandomFlip):
    """Flip each image top-bottom with probability ``p``."""

    axis = -2


# ------------------------------------------------------------------------------ affine resampling
@numba.njit(cache=True, nogil=True)  # nogil: the loader's thread augments while the model computes
def _affine_kernel(x, mats, border, fill, out):  # pragma: no cover - compiled
    n_img, n_ch, h, w = x.shape
    ho, wo = out.shape[2], out.shape[3]
    for n in range(n_img):
        a00, a01, a02 = mats[n, 0, 0], mats[n, 0, 1], mats[n, 0, 2]
        a10, a11, a12 = mats[n, 1, 0], mats[n, 1, 1], mats[n, 1, 2]
        for i in range(ho):
            for j in range(wo):
                sx = a00 * j + a01 * i + a02
                sy = a10 * j + a11 * i + a12
                if border:
                    sx = min(max(sx, 0.0), w - 1.0)
                    sy = min(max(sy, 0.0), h - 1.0)
                x0 = math.floor(sx)
                y0 = math.floor(sy)
                wx = sx - x0
                wy = sy - y0
                x0i, y0i = int(x0), int(y0)
                x1i, y1i = x0i + 1, y0i + 1
                in_x0 = 0 <= x0i < w
                in_x1 = 0 <= x1i < w
                in_y0 = 0 <= y0i < h
                in_y1 = 0 <= y1i < h
                w00 = (1.0 - wx) * (1.0 - wy)
                w01 = wx * (1.0 - wy)
                w10 = (1.0 - wx) * wy
                w11 = wx * wy
                for c in range(n_ch):
                    v00 = x[n, c, y0i, x0i] if (in_y0 and in_x0) else fill
                    v01 = x[n, c, y0i, x1i] if (in_y0 and in_x1) else fill
                    v10 = x[n, c, y1i, x0i] if (in_y1 and in_x0) else fill
                    v11 = x[n, c, y1i, x1i] if (in_y1 and in_x1) else fill
                    out[n, c, i, j] = w00 * v00 + w01 * v01 + w10 * v10 + w11 * v11


def affine_sample(x, mats, out_size=None, padding_mode: str = "zeros", fill: float = 0.0) -> np.ndarray:
    """Bilinear resampling: ``out[n, :, i, j] = x[n, :, A_n @ (j, i, 1)]`` in pixel coordinates.

    ``mats`` is ``(2, 3)`` or ``(N, 2, 3)``, mapping an output pixel ``(x=j, y=i)`` to the input
    position it samples. ``padding_mode`` "zeros" (samples outside read ``fill``) or "border"
    (repeat the edge; "edge" is accepted too).

        >>> shift_right = np.array([[1, 0, -2], [0, 1, 0]], "float32")     # out(j) = in(j - 2)
        >>> y = affine_sample(np.random.rand(1, 1, 8, 8).astype("float32"), shift_right)
    """
    a, single = _as_batch(x)
    a = np.ascontiguousarray(a, dtype=np.float32)
    m = np.asarray(mats, dtype=np.float64)
    if m.shape == (2, 3):
        m = np.broadcast_to(m, (a.shape[0], 2, 3))
    if m.shape != (a.shape[0], 2, 3):
        raise ValueError(f"mats must be (2, 3) or ({a.shape[0]}, 2, 3), got {np.shape(mats)}")
    padding_mode = canonical_padding_mode(padding_mode)
    ho, wo = a.shape[2:] if out_size is None else _size2(out_size)
    out = np.empty((a.shape[0], a.shape[1], ho, wo), dtype=np.float32)
    _affine_kernel(a, np.ascontiguousarray(m), padding_mode == "border", np.float32(fill), out)
    return _unbatch(out, single)


def affine_matrices(angles, translations, scales, shears, height: int, width: int) -> np.ndarray:
    """Inverse (output -> input) pixel matrices ``(N, 2, 3)`` for per-image rotation (degrees,
    counter-clockwise), translation (pixels ``(tx, ty)``), scale and shear (degrees, x-shear) about
    the image centre ``((W - 1) / 2, (H - 1) / 2)``."""
    ang = np.deg2rad(np.asarray(angles, dtype=np.float64))
    t = np.asarray(translations, dtype=np.float64).reshape(-1, 2)
    s = np.asarray(scales, dtype=np.float64)
    sh = np.deg2rad(np.asarray(shears, dtype=np.float64))
    n = ang.shape[0]
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    cos, sin = np.cos(ang), np.sin(ang)
    # forward (input -> output) linear part, y axis pointing down: rotate CCW on screen, then shear.
    fwd = np.empty((n, 2, 2))
    fwd[:, 0, 0], fwd[:, 0, 1] = cos, sin
    fwd[:, 1, 0], fwd[:, 1, 1] = -sin, cos
    shear = np.zeros((n, 2, 2))
    shear[:, 0, 0], shear[:, 1, 1], shear[:, 0, 1] = 1.0, 1.0, np.tan(sh)
    fwd = shear @ fwd * s[:, None, None]
    inv = np.linalg.inv(fwd)
    # out = c + t + F (in - c)  =>  in = c + F^-1 (out - c - t)
    c = np.array([cx, cy])
    off = c - np.einsum("nij,nj->ni", inv, c + t)
    return np.concatenate([inv, off[:, :, None]], axis=2)


class RandomAffine(Transform):
    """Random rotation / translation / scale / shear per image, bilinear (torchvision's arguments).

    ``RandomAffine(degrees, translate=None, scale=None, shear=None, padding_mode="zeros", fill=0.0,
    p=1.0)``: angle ~ U(-degrees, degrees) (or U(a, b) for a pair), shift ~ U(-tx W, tx W) and
    U(-ty H, ty H) pixels, scale ~ U(lo, hi), x-shear ~ U(-shear, shear) degrees. Each image is
    transformed with probability ``p`` (others pass through).

        >>> aug = RandomAffine(10, translate=(2 / 28, 2 / 28), scale=(0.9, 1.1))
        >>> xb = aug(xb, rng=np.random.default_rng(0))         # (N, C, H, W) -> (N, C, H, W)
    """

    def __init__(self, degrees=0.0, translate=None, scale=None, shear=None, padding_mode: str = "zeros",
                 fill: float = 0.0, p: float = 1.0):
        self.degrees = (-float(degrees), float(degrees)) if isinstance(degrees, (int, float)) else _pair(
            degrees, "degrees")
        self.translate = None if translate is None else _pair(translate, "translate")
        self.scale = None if scale is None else _pair(scale, "scale")
        self.shear = None if shear is None else (
            (-float(shear), float(shear)) if isinstance(shear, (int, float)) else _pair(shear, "shear"))
        self.padding_mode, self.fill, self.p = canonical_padding_mode(padding_mode), float(fill), float(p)

    def sample_params(self, n: int, height: int, width: int, rng: np.random.Generator):
        """Per-image ``(angles, translations (N, 2), scales, shears)``."""
        ang = rng.uniform(*self.degrees, size=n)
        if self.translate is not None:
            tx = rng.uniform(-1, 1, size=n) * self.translate[0] * width
            ty = rng.uniform(-1, 1, size=n) * self.translate[1] * height
            trans = np.stack([tx, ty], axis=1)
        else:
            trans = np.zeros((n, 2))
        sc = rng.uniform(*self.scale, size=n) if self.scale is not None else np.ones(n)
        sh = rng.uniform(*self.shear, size=n) if self.shear is not None else np.zeros(n)
        return ang, trans, sc, sh

    def __call__(self, x, rng=None):
        rng = resolve_rng(rng)
        a, single = _as_batch(x)
        n, _, h, w = a.shape
        ang, trans, sc, sh = self.sample_params(n, h, w, rng)
        if self.p < 1.0:
            skip = rng.random(n) >= self.p
            ang[skip], trans[skip], sc[skip], sh[skip] = 0.0, 0.0, 1.0, 0.0
        mats = affine_matrices(ang, trans, sc, sh, h, w)
        return _unbatch(affine_sample(a, mats, padding_mode=self.padding_mode, fill=self.fill), single)


class RandomRotation(RandomAffine):
    """``RandomRotation(degrees)``: rotation only, angle ~ U(-degrees, degrees)."""

    def __init__(self, degrees, padding_mode: str = "zeros", fill: float = 0.0):
        super().__init__(degrees, padding_mode=padding_mode, fill=fill)


# ------------------------------------------------------------------------------ crops and resize
def _pad(a: np.ndarray, padding, mode: str, fill: float) -> np.ndarray:
    if not padding:
        return a
    if isinstance(padding, int):
        pl = pr = pt = pb = padding
    elif len(padding) == 2:
        pl = pr = int(padding[0])
        pt = pb = int(padding[1])
    else:
        pl, pt, pr, pb = (int(p) for p in padding)
    widths = ((0, 0), (0, 0), (pt, pb), (pl, pr))
    if mode == "constant":
        return np.pad(a, widths, mode="constant", constant_values=fill)
    return np.pad(a, widths, mode=mode)


class RandomCrop(Transform):
    """Pad by ``padding`` (int, (lr, tb) or (l, t, r, b)) then crop ``size`` at a random place per image.

    ``padding_mode``: "constant" (with ``fill``), "edge", "reflect" or "symmetric" (NumPy's names).
    """

    def __init__(self, size, padding=None, fill: float = 0.0, padding_mode: str = "constant"):
        self.size, self.padding = _size2(size), padding
        self.fill, self.padding_mode = float(fill), padding_mode

    def __call__(self, x, rng=None):
        a, single = _as_batch(x)
        a = _pad(a, self.padding, self.padding_mode, self.fill)
        n, c, h, w = a.shape
        th, tw = self.size
        if th > h or tw > w:
            raise ValueError(f"RandomCrop size {self.size} is larger than the (padded) image {(h, w)}")
        rng = resolve_rng(rng)
        tops = rng.integers(0, h - th + 1, size=n)
        lefts = rng.integers(0, w - tw + 1, size=n)
        rows = tops[:, None] + np.arange(th)[None]  # (N, th)
        cols = lefts[:, None] + np.arange(tw)[None]  # (N, tw)
        idx_n = np.arange(n)[:, None, None, None]
        idx_c = np.arange(c)[None, :, None, None]
        out = a[idx_n, idx_c, rows[:, None, :, None], cols[:, None, None, :]]
        return _unbatch(np.ascontiguousarray(out, dtype=np.float32), single)


class CenterCrop(Transform):
    """Crop ``size`` at the centre (top = round((H - h) / 2), like torchvision)."""

    def __init__(self, size):
        self.size = _size2(size)

    def __call__(self, x, rng=None):
        a, single = _as_batch(x)
        h, w = a.shape[2:]
        th, tw = self.size
        if th > h or tw > w:
            raise ValueError(f"CenterCrop size {self.size} is larger than the image {(h, w)}")
        top, left = int(round((h - th) / 2.0)), int(round((w - tw) / 2.0))
        return _unbatch(np.ascontiguousarray(a[:, :, top : top + th, left : left + tw]), single)


def _linear_weights(n_in: int, n_out: int):
    """Source indices and weights of 1-D linear interpolation, align_corners=False (PyTorch's rule)."""
    scale = n_in / n_out
    src = (np.arange(n_out, dtype=np.float64) + 0.5) * scale - 0.5
    src = np.maximum(src, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    lam = (src - i0).astype(np.float32)
    return i0, i1, lam


def resize(x, size, mode: str = "bilinear") -> np.ndarray:
    """Resize ``(C, H, W)``/``(N, C, H, W)`` to ``size`` (bilinear, align_corners=False, or nearest),
    matching ``torch.nn.functional.interpolate`` without antialiasing."""
    a, single = _as_batch(x)
    a = a.astype(np.float32, copy=False)
    oh, ow = _size2(size)
    h, w = a.shape[2:]
    if mode == "nearest":
        rows = np.minimum(np.floor(np.arange(oh) * (h / oh)).astype(np.int64), h - 1)
        cols = np.minimum(np.floor(np.arange(ow) * (w / ow)).astype(np.int64), w - 1)
        return _unbatch(np.ascontiguousarray(a[:, :, rows][:, :, :, cols]), single)
    if mode != "bilinear":
        raise ValueError(f"mode must be 'bilinear' or 'nearest', got {mode!r}")
    r0, r1, ry = _linear_weights(h, oh)
    c0, c1, cx = _linear_weights(w, ow)
    top = a[:, :, r0] * (1 - ry)[:, None] + a[:, :, r1] * ry[:, None]
    out = top[..., c0] * (1 - cx) + top[..., c1] * cx
    return _unbatch(out.astype(np.float32, copy=False), single)


class Resize(Transform):
    """``Resize(size, mode="bilinear")``: to ``size`` (int or (h, w)); see :func:`resize`."""

    def __init__(self, size, mode: str = "bilinear"):
        self.size, self.mode = _size2(size), mode

    def __call__(self, x, rng=None):
        return resize(x, self.size, self.mode)


# ------------------------------------------------------------------------------ intensity
class RandomIntensity(Transform):
    """Brightness / contrast jitter per image: ``x' = (x - mean) * c + mean + b``.

    ``c ~ U(1 - contrast, 1 + contrast)``, ``b ~ U(-brightness, brightness)``, ``mean`` the image mean;
    ``clip=(0, 1)`` clamps the result (None: no clamp). Applied with probability ``p`` per image.
    """

    def __init__(self, brightness: float = 0.1, contrast: float = 0.1, clip=(0.0, 1.0), p: float = 1.0):
        self.brightness, self.contrast, self.clip, self.p = float(brightness), float(contrast), clip, float(p)

    def __call__(self, x, rng=None):
        rng = resolve_rng(rng)
        a, single = _as_batch(x)
        n = a.shape[0]
        c = rng.uniform(1 - self.contrast, 1 + self.contrast, size=n).astype(np.float32)
        b = rng.uniform(-self.brightness, self.brightness, size=n).astype(np.float32)
        if self.p < 1.0:
            skip = rng.random(n) >= self.p
            c[skip], b[skip] = 1.0, 0.0
        m = a.mean(axis=(1, 2, 3), keepdims=True)
        out = (a - m) * c[:, None, None, None] + m + b[:, None, None, None]
        if self.clip is not None:
            out = np.clip(out, self.clip[0], self.clip[1])
        return _unbatch(out.astype(np.float32, copy=False), single)


def ct_window(x, center: float | str, width: float | None = None) -> np.ndarray:
    """Map Hounsfield units to [0, 1]: ``clip((x - (center - width / 2)) / width, 0, 1)``.

    ``center`` may name a preset: "lung" (-600, 1500), "mediastinum" (50, 350), "bone" (400, 1800),
    "soft_tissue"/"abdomen" (40, 400), "brain" (40, 80).

        >>> ct_window(np.array([-1350.0, -600.0, 150.0]), "lung")
        array([0. , 0.5, 1. ], dtype=float32)
    """
    if isinstance(center, str):
        key = center.lower()
        if key not in CT_WINDOWS:
            raise ValueError(f"unknown CT window {center!r}; known: {', '.join(CT_WINDOWS)}")
        center, width = CT_WINDOWS[key]
    if width is None or float(width) <= 0:
        raise ValueError(f"CT window width must be > 0, got {width}")
    lo = float(center) - float(width) / 2.0
    return np.clip((np.asarray(x, dtype=np.float32) - np.float32(lo)) / np.float32(width), 0.0, 1.0)


class CTWindow(Transform):
    """``CTWindow(center, width)`` or ``CTWindow("lung")``: HU -> [0, 1] (see :func:`ct_window`)."""

    def __init__(self, center: float | str, width: float | None = None):
        if isinstance(center, str):
            ct_window(np.zeros(1), center)  # validates the name
            center, width = CT_WINDOWS[center.lower()]
        self.center, self.width = float(center), width
        ct_window(np.zeros(1), self.center, width)

    def __call__(self, x, rng=None):
        return ct_window(x, self.center, self.width)
