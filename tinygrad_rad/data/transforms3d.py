"""3-D transforms on float32 NumPy volumes: one volume ``(C, D, H, W)`` or a batch ``(N, C, D, H, W)``.

The same protocol as the 2-D :mod:`~tinygrad_rad.data.transforms`: every transform is called as
``t(x, rng=None)``; random ones draw *per-volume* parameters from ``rng`` (a ``numpy.random.Generator``;
default: the loader's per-batch generator, else the global ``tinygrad_rad`` one) in a fixed order, so
they mix with the 2-D ``Compose`` and the :class:`~tinygrad_rad.data.DataLoader` gives every batch its
own generator ``default_rng([seed, epoch, batch, 1])`` -- the same seed repeats a run exactly and a
resumed run (even mid-epoch) continues with the very same augmented batches.

    >>> import numpy as np
    >>> from tinygrad_rad.data import transforms as T, transforms3d as T3
    >>> aug = T.Compose([T3.RandomFlip3d(), T3.RandomRotation3d(10), T3.RandomShift3d(2),
    ...                  T3.RandomIntensity3d(scale=0.1, shift=0.1)])
    >>> xb = aug(np.random.rand(32, 1, 28, 28, 28).astype("float32"), rng=np.random.default_rng(0))

# NOTE: a 4-D array is ONE volume here (a 2-D batch in the 2-D transforms); 5-D is a batch.

Geometry is in voxel index space ``(d, h, w)`` (rotations assume roughly isotropic voxels, as in
MedMNIST 3D; resample first otherwise: :func:`~tinygrad_rad.data.volumes.resample_volume`), about the
volume centre, trilinear, with ``padding_mode="zeros"`` (reads ``fill``) or ``"border"`` like
``torch.nn.functional.grid_sample`` on 5-D input. A rotation about the D axis turns every axial slice
exactly like the 2-D :class:`~tinygrad_rad.data.transforms.RandomRotation` (counter-clockwise as shown).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from .transforms import Transform, canonical_padding_mode, resolve_rng

AXES = (-3, -2, -1)  # D, H, W of (..., D, H, W)


def _as_batch3d(x) -> tuple[np.ndarray, bool]:
    """``(C, D, H, W)`` -> ``(1, C, D, H, W)`` (flag True); ``(N, C, D, H, W)`` unchanged."""
    x = np.asarray(x)
    if x.ndim == 4:
        return x[None], True
    if x.ndim == 5:
        return x, False
    raise ValueError(f"expected a volume (C, D, H, W) or a batch (N, C, D, H, W), got shape {x.shape}")


def _unbatch(x: np.ndarray, single: bool) -> np.ndarray:
    return x[0] if single else x


def _triple(v, name: str, symmetric: bool = True) -> np.ndarray:
    """A number or three numbers -> (3, 2) ranges; ``symmetric``: ``a`` means ``(-a, a)``."""
    a = np.asarray(v, dtype=np.float64)
    if a.ndim == 0:
        a = np.repeat(a, 3)
    if a.shape == (3,):
        if np.any(a < 0):
            raise ValueError(f"{name} must be >= 0, got {v!r}")
        return np.stack([-a, a], axis=1) if symmetric else np.stack([a, a], axis=1)
    if a.shape == (3, 2):
        return a
    raise ValueError(f"{name} must be a number, three numbers or three (low, high) pairs, got {v!r}")


# ------------------------------------------------------------------------------ flips and shifts
class RandomFlip3d(Transform):
    """Flip each volume along each of ``axes`` independently with probability ``p``.

    ``axes`` are of ``(D, H, W)``: ``(0, 1, 2)`` (default: all three), or e.g. ``(2,)`` for left-right
    only. Draws ``rng.random((N, 3))`` once per call (whatever ``axes``), so the random stream does not
    depend on which axes flip.

    # NOTE: left-right flips swap the patient's sides; fine for vessels / nodules, not for organ labels
    # that name a side (organmnist3d's "kidney-left").
    """

    def __init__(self, p: float = 0.5, axes=(0, 1, 2)):
        self.p = float(p)
        self.axes = tuple(int(a) for a in axes)
        if any(a not in (0, 1, 2) for a in self.axes):
            raise ValueError(f"axes must be among 0 (D), 1 (H), 2 (W), got {axes!r}")

    def __call__(self, x, rng=None):
        a, single = _as_batch3d(x)
        draw = resolve_rng(rng).random((a.shape[0], 3)) < self.p
        out = a.copy()
        for i in range(a.shape[0]):
            ax = tuple(1 + k for k in self.axes if draw[i, k])  # axes of one (C, D, H, W) volume
            if ax:
                out[i] = np.flip(a[i], ax)
        return _unbatch(out, single)


def flip3d(x, axes) -> np.ndarray:
    """Flip a volume / batch along ``axes`` of ``(D, H, W)`` (0, 1, 2): an exact involution."""
    a = np.asarray(x)
    return np.ascontiguousarray(np.flip(a, tuple(a.ndim - 3 + int(k) for k in axes)))


def shift3d(x, shift, fill: float = 0.0) -> np.ndarray:
    """Shift one volume ``(C, D, H, W)`` by whole voxels ``shift = (sd, sh, sw)`` (``out[d] = x[d - sd]``),
    filling uncovered voxels with ``fill``."""
    a = np.asarray(x)
    out = np.full_like(a, fill)
    src, dst = [slice(None)], [slice(None)]
    for n, s in zip(a.shape[-3:], (int(v) for v in shift)):
        if abs(s) >= n:
            return out
        src.append(slice(max(0, -s), n - max(0, s)))
        dst.append(slice(max(0, s), n - max(0, -s)))
    out[tuple(dst)] = a[tuple(src)]
    return out


class RandomShift3d(Transform):
    """Shift each volume by whole voxels, ``(sd, sh, sw)`` each uniform in ``[-max_shift, max_shift]``
    (a number or one per axis), filling with ``fill``. Exact (no interpolation) and cheap."""

    def __init__(self, max_shift=2, fill: float = 0.0):
        ms = np.broadcast_to(np.asarray(max_shift, dtype=np.int64), (3,))
        if np.any(ms < 0):
            raise ValueError(f"max_shift must be >= 0, got {max_shift!r}")
        self.max_shift, self.fill = tuple(int(v) for v in ms), float(fill)

    def __call__(self, x, rng=None):
        a, single = _as_batch3d(x)
        hi = np.asarray(self.max_shift)
        shifts = resolve_rng(rng).integers(-hi, hi + 1, size=(a.shape[0], 3))
        out = np.stack([shift3d(a[i], shifts[i], self.fill) for i in range(a.shape[0])]) if len(a) else a
        return _unbatch(out, single)


# ------------------------------------------------------------------------------ affine resampling
@numba.njit(cache=True, nogil=True)  # nogil: the loader's thread augments while the model computes
def _affine3d_kernel(x, mats, border, fill, out):  # pragma: no cover - compiled
    n_img, n_ch, dd, hh, ww = x.shape
    do, ho, wo = out.shape[2], out.shape[3], out.shape[4]
    for n in range(n_img):
        m = mats[n]
        for i in range(do):
            for j in range(ho):
                for k in range(wo):
                    sd = m[0, 0] * i + m[0, 1] * j + m[0, 2] * k + m[0, 3]
                    sh = m[1, 0] * i + m[1, 1] * j + m[1, 2] * k + m[1, 3]
                    sw = m[2, 0] * i + m[2, 1] * j + m[2, 2] * k + m[2, 3]
                    if border:
                        sd = min(max(sd, 0.0), dd - 1.0)
                        sh = min(max(sh, 0.0), hh - 1.0)
                        sw = min(max(sw, 0.0), ww - 1.0)
                    d0f = math.floor(sd)
                    h0f = math.floor(sh)
                    w0f = math.floor(sw)
                    fd, fh, fw = sd - d0f, sh - h0f, sw - w0f
                    d0, h0, w0 = int(d0f), int(h0f), int(w0f)
                    for c in range(n_ch):
                        acc = 0.0
                        for a in range(2):
                            di = d0 + a
                            wd = fd if a == 1 else 1.0 - fd
                            for b in range(2):
                                hi = h0 + b
                                wh = fh if b == 1 else 1.0 - fh
                                for e in range(2):
                                    wi = w0 + e
                                    wgt = wd * wh * (fw if e == 1 else 1.0 - fw)
                                    if 0 <= di < dd and 0 <= hi < hh and 0 <= wi < ww:
                                        acc += wgt * x[n, c, di, hi, wi]
                                    else:
                                        acc += wgt * fill
                        out[n, c, i, j, k] = acc


def affine_sample3d(x, mats, out_size=None, padding_mode: str = "zeros", fill: float = 0.0) -> np.ndarray:
    """Trilinear resampling: ``out[n, :, i, j, k] = x[n, :, A_n @ (i, j, k, 1)]`` in voxel indices.

    ``mats`` is ``(3, 4)`` or ``(N, 3, 4)``, mapping an output voxel ``(d, h, w)`` to the input position
    it samples. ``padding_mode`` "zeros" (outside reads ``fill``) or "border" (repeat the edge).

        >>> down_one = np.array([[1, 0, 0, -1], [0, 1, 0, 0], [0, 0, 1, 0]], "float32")  # out(d) = in(d - 1)
        >>> y = affine_sample3d(np.random.rand(1, 1, 8, 8, 8).astype("float32"), down_one)
    """
    a, single = _as_batch3d(x)
    a = np.ascontiguousarray(a, dtype=np.float32)
    m = np.asarray(mats, dtype=np.float64)
    if m.shape == (3, 4):
        m = np.broadcast_to(m, (a.shape[0], 3, 4))
    if m.shape != (a.shape[0], 3, 4):
        raise ValueError(f"mats must be (3, 4) or ({a.shape[0]}, 3, 4), got {np.shape(mats)}")
    padding_mode = canonical_padding_mode(padding_mode)
    if out_size is None:
        do, ho, wo = a.shape[2:]
    else:
        do, ho, wo = (int(out_size),) * 3 if np.ndim(out_size) == 0 else (int(s) for s in out_size)
    out = np.empty((a.shape[0], a.shape[1], do, ho, wo), dtype=np.float32)
    _affine3d_kernel(a, np.ascontiguousarray(m), padding_mode == "border", np.float32(fill), out)
    return _unbatch(out, single)


def rotation_matrix3d(angles) -> np.ndarray:
    """``(N, 3, 3)`` forward rotations in ``(d, h, w)`` index space for per-volume angles ``(N, 3)``
    in degrees about the D, H and W axes (applied in that order: ``R = R_w @ R_h @ R_d``).

    About D (the H-W plane) it is the 2-D rotation of each axial slice, counter-clockwise as shown (h
    pointing down); about H and W the same rule in the D-W and D-H planes.
    """
    ang = np.deg2rad(np.asarray(angles, dtype=np.float64).reshape(-1, 3))
    n = ang.shape[0]

    def plane(theta, p, q):  # rotate in the (p, q) index plane like 2-D (x = q, y = p)
        r = np.tile(np.eye(3), (n, 1, 1))
        c, s = np.cos(theta), np.sin(theta)
        # 2-D forward [x', y'] = [[c, s], [-s, c]] [x, y] with x = q, y = p
        r[:, q, q], r[:, q, p] = c, s
        r[:, p, q], r[:, p, p] = -s, c
        return r

    return plane(ang[:, 2], 0, 1) @ plane(ang[:, 1], 0, 2) @ plane(ang[:, 0], 1, 2)


def affine_matrices3d(angles, translations, scales, shape) -> np.ndarray:
    """Inverse (output -> input) voxel matrices ``(N, 3, 4)`` for per-volume rotations (degrees about
    D, H, W; ``(N, 3)``), translations (voxels ``(td, th, tw)``; ``(N, 3)``) and scales (``(N,)``) about
    the volume centre ``((D - 1) / 2, (H - 1) / 2, (W - 1) / 2)`` of ``shape = (D, H, W)``."""
    rot = rotation_matrix3d(angles)
    n = rot.shape[0]
    t = np.asarray(translations, dtype=np.float64).reshape(n, 3)
    s = np.broadcast_to(np.asarray(scales, dtype=np.float64), (n,))
    fwd = rot * s[:, None, None]
    inv = np.linalg.inv(fwd)
    c = (np.asarray(shape, dtype=np.float64) - 1.0) / 2.0
    # out = c + t + F (in - c)  =>  in = c + F^-1 (out - c - t)
    off = c - np.einsum("nij,nj->ni", inv, c + t)
    return np.concatenate([inv, off[:, :, None]], axis=2)


class RandomAffine3d(Transform):
    """Random rotation about each axis / translation / scale per volume, trilinear.

    ``RandomAffine3d(degrees, translate=None, scale=None, padding_mode="zeros", fill=0.0, p=1.0)``:
    angles ~ U(-degrees, degrees) about D, H and W (a number, three numbers, or three (low, high)
    pairs), shift ~ U(-t n, t n) voxels per axis for ``translate`` fractions ``t`` (a number or three;
    torchvision's rule), scale ~ U(lo, hi). Each volume is transformed with probability ``p``.

        >>> aug = RandomAffine3d(10, translate=2 / 28, scale=(0.9, 1.1))
        >>> xb = aug(xb, rng=np.random.default_rng(0))       # (N, C, D, H, W) -> same shape
    """

    def __init__(self, degrees=0.0, translate=None, scale=None, padding_mode: str = "zeros",
                 fill: float = 0.0, p: float = 1.0):
        self.degrees = _triple(degrees, "degrees")
        self.translate = None if translate is None else _triple(translate, "translate")[:, 1]
        self.scale = None if scale is None else tuple(float(v) for v in scale)
        if self.scale is not None and (len(self.scale) != 2 or min(self.scale) <= 0):
            raise ValueError(f"scale must be a (low, high) pair of positive numbers, got {scale!r}")
        self.padding_mode, self.fill, self.p = canonical_padding_mode(padding_mode), float(fill), float(p)

    def sample_params(self, n: int, shape, rng: np.random.Generator):
        """Per-volume ``(angles (N, 3), translations (N, 3) voxels, scales (N,))``."""
        ang = rng.uniform(self.degrees[:, 0], self.degrees[:, 1], size=(n, 3))
        if self.translate is not None:
            trans = rng.uniform(-1, 1, size=(n, 3)) * self.translate * np.asarray(shape, dtype=np.float64)
        else:
            trans = np.zeros((n, 3))
        sc = rng.uniform(*self.scale, size=n) if self.scale is not None else np.ones(n)
        return ang, trans, sc

    def __call__(self, x, rng=None):
        rng = resolve_rng(rng)
        a, single = _as_batch3d(x)
        n, shape = a.shape[0], a.shape[2:]
        ang, trans, sc = self.sample_params(n, shape, rng)
        if self.p < 1.0:
            skip = rng.random(n) >= self.p
            ang[skip], trans[skip], sc[skip] = 0.0, 0.0, 1.0
        mats = affine_matrices3d(ang, trans, sc, shape)
        return _unbatch(affine_sample3d(a, mats, padding_mode=self.padding_mode, fill=self.fill), single)


class RandomRotation3d(RandomAffine3d):
    """``RandomRotation3d(degrees)``: small rotations only, about each axis ~ U(-degrees, degrees)."""

    def __init__(self, degrees, padding_mode: str = "zeros", fill: float = 0.0, p: float = 1.0):
        super().__init__(degrees, padding_mode=padding_mode, fill=fill, p=p)


# ------------------------------------------------------------------------------ intensity
class RandomIntensity3d(Transform):
    """Intensity jitter per volume: ``x' = x * s + b``, ``s ~ U(1 - scale, 1 + scale)``,
    ``b ~ U(-shift, shift)``; ``clip=(lo, hi)`` clamps (None: no clamp). Probability ``p`` per volume."""

    def __init__(self, scale: float = 0.1, shift: float = 0.1, clip=None, p: float = 1.0):
        if scale < 0 or shift < 0:
            raise ValueError(f"scale and shift must be >= 0, got {scale}, {shift}")
        self.scale, self.shift, self.clip, self.p = float(scale), float(shift), clip, float(p)

    def __call__(self, x, rng=None):
        rng = resolve_rng(rng)
        a, single = _as_batch3d(x)
        n = a.shape[0]
        s = rng.uniform(1 - self.scale, 1 + self.scale, size=n).astype(np.float32)
        b = rng.uniform(-self.shift, self.shift, size=n).astype(np.float32)
        if self.p < 1.0:
            skip = rng.random(n) >= self.p
            s[skip], b[skip] = 1.0, 0.0
        out = a * s[:, None, None, None, None] + b[:, None, None, None, None]
        if self.clip is not None:
            out = np.clip(out, self.clip[0], self.clip[1])
        return _unbatch(out.astype(np.float32, copy=False), single)


class Normalize3d(Transform):
    """``(x - mean) / std`` per channel of ``(C, D, H, W)`` / ``(N, C, D, H, W)`` volumes."""

    def __init__(self, mean, std):
        self.mean = np.atleast_1d(np.asarray(mean, dtype=np.float32))
        self.std = np.atleast_1d(np.asarray(std, dtype=np.float32))
        if np.any(self.std == 0):
            raise ValueError(f"Normalize3d: std must be non-zero, got {std}")

    def __call__(self, x, rng=None):
        a, single = _as_batch3d(x)
        c = a.shape[1]
        if self.mean.size not in (1, c) or self.std.size not in (1, c):
            raise ValueError(
                f"Normalize3d has {self.mean.size} means / {self.std.size} stds for {c} channels"
            )
        m, s = self.mean.reshape(1, -1, 1, 1, 1), self.std.reshape(1, -1, 1, 1, 1)
        return _unbatch(((a - m) / s).astype(np.float32, copy=False), single)
