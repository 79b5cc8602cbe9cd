"""Tier 4, 3-D: the fast CUDA convolution of volumes (NCDHW): vol2col + the tiled Numba GEMM.

The 2-D scheme of ``cuda_conv.py`` with one more axis (read it first). vol2col lays the input voxels that
each kernel tap reads into a column matrix, one thread per element,

    cols[((c*kd + a)*kh + u)*kw + v, n*P + (z*Ho + i)*Wo + j] = xpad[n, c, z*s + a*d, i*s + u*d, j*s + v*d]

(P = Do*Ho*Wo), and then each pass is one batched GEMM over the groups through ``cuda_conv.gemm`` (the
register-blocked shared-memory Numba GEMM of ``cuda_gemm.py``, or the tensor cores when selected):

    forward          y  (G, Og, N*P) = w (G, Og, Cg*k^3) @ cols (G, Cg*k^3, N*P)
    backward-input   gcols = w^T @ gy'   (w read transposed in place), then col2vol (one thread per
                     input voxel *gathering* its taps: no atomics)
    backward-weight  gw = gy' @ cols^T   (cols read transposed in place, split along K = N*P)

The batch is processed in chunks of images whose columns fit in ``cuda_conv.MAX_COLS_BYTES``. Pooling
on the GPU is the plain tier's one-thread-per-output kernels (``cuda_plain3d.py``).
"""

from __future__ import annotations

import numpy as np
from numba import cuda

from .cuda_common import contiguous, dev, launch_1d, stream, xp_of
from .cuda_conv import MAX_COLS_BYTES, gemm, split_k
from .cuda_plain3d import geometry3

__all__ = ["conv3d_forward", "conv3d_backward_input", "conv3d_backward_weight", "vol2col", "col2vol"]


@cuda.jit
def vol2col_kernel(x, cols, kd, kh, kw, sd, sh, sw, pd, ph, pw, dd, dh, dw, do, ho, wo, zero):
    """One thread per cols element (see the module docstring); 0 in the padding."""
    n_img, _, dep, h, w = x.shape
    p = do * ho * wo
    ncol = n_img * p
    total = cols.shape[0] * ncol
    taps = kd * kh * kw
    for idx in range(cuda.grid(1), total, cuda.gridsize(1)):
        r = idx // ncol
        q = idx - r * ncol
        n = q // p
        pix = q - n * p
        z = pix // (ho * wo)
        i = (pix // wo) % ho
        j = pix % wo
        c = r // taps
        t = r - c * taps
        a = t // (kh * kw)
        u = (t // kw) % kh
        v = t % kw
        zz = z * sd - pd + a * dd
        hh = i * sh - ph + u * dh
        ww = j * sw - pw + v * dw
        val = zero
        if 0 <= zz < dep and 0 <= hh < h and 0 <= ww < w:
            val = x[n, c, zz, hh, ww]
        cols[r, q] = val


@cuda.jit
def col2vol_kernel(cols, x, kd, kh, kw, sd, sh, sw, pd, ph, pw, dd, dh, dw, do, ho, wo, zero):
    """x[n, c, zz, hh, ww] = the sum over taps (a, u, v) whose output voxel read it of cols[...]."""
    n_img, ch, dep, h, w = x.shape
    p = do * ho * wo
    for idx in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        ww = idx % w
        hh = (idx // w) % h
        zz = (idx // (w * h)) % dep
        c = (idx // (w * h * dep)) % ch
        n = idx // (w * h * dep * ch)
        acc = zero
        for a in range(kd):
            tz = zz + pd - a * dd  # = z * sd when tap a of output depth z reads depth zz
            if tz >= 0 and tz % sd == 0 and tz // sd < do:
                z = tz // sd
                for u in range(kh):
                    ti = hh + ph - u * dh
                    if ti >= 0 and ti % sh == 0 and ti // sh < ho:
                        i = ti // sh
                        for v in range(kw):
                            tj = ww + pw - v * dw
                            if tj >= 0 and tj % sw == 0 and tj // sw < wo:
                                j = tj // sw
                                acc += cols[((c * kd + a) * kh + u) * kw + v, n * p + (z * ho + i) * wo + j]
        x[n, c, zz, hh, ww] = acc


def _launch_args(kernel, stride, padding, dilation, out):
    return (*map(int, kernel), *map(int, stride), *map(int, padding), *map(int, dilation), *map(int, out))


def vol2col(x, kernel, stride, padding, dilation, out):
    """(N, C, D, H, W) -> cols (C*kd*kh*kw, N*Do*Ho*Wo)."""
    x = contiguous(x)
    cols = xp_of(x).empty((x.shape[1] * int(np.prod(kernel)), x.shape[0] * int(np.prod(out))), dtype=x.dtype)
    if cols.size:
        blocks, threads = launch_1d(cols.size)
        vol2col_kernel[blocks, threads, stream()](dev(x), dev(cols), *_launch_args(kernel, stride, padding,
                                                                                  dilation, out),
                                                  x.dtype.type(0))
    return cols


def col2vol(cols, x_shape, kernel, stride, padding, dilation, out):
    """The adjoint of :func:`vol2col`: sums column entries back into an (N, C, D, H, W) array."""
    cols = contiguous(cols)
    x = xp_of(cols).empty(tuple(x_shape), dtype=cols.dtype)
    if x.size:
        blocks, threads = launch_1d(x.size)
        col2vol_kernel[blocks, threads, stream()](dev(cols), dev(x), *_launch_args(kernel, stride, padding,
                                                                                  dilation, out),
                                                  cols.dtype.type(0))
    return x


def _chunks(n: int, cols_bytes_per_image: int):
    step = max(1, MAX_COLS_BYTES // max(1, cols_bytes_per_image))
    return [(i, min(n, i + step)) for i in range(0, n, step)]


def _cols_bytes(c, kernel, out, dtype) -> int:
    return c * int(np.prod(kernel)) * int(np.prod(out)) * np.dtype(dtype).itemsize


def _as_groups(gy, groups):
    """gy (N, O, Do, Ho, Wo) -> (G, Og, N*P): the GEMM's layout, channel-major."""
    n, o = gy.shape[:2]
    p = int(np.prod(gy.shape[2:]))
    return contiguous(gy.reshape(n, o, p).transpose(1, 0, 2)).reshape(groups, o // groups, n * p)


def _fwd(x, w, stride, padding, dilation, groups, out):
    n = x.shape[0]
    o, cg = w.shape[:2]
    ck = cg * int(np.prod(w.shape[2:]))
    p = int(np.prod(out))
    cols = vol2col(x, w.shape[2:], stride, padding, dilation, out)
    y = gemm(contiguous(w).reshape(groups, o // groups, ck), cols.reshape(groups, ck, n * p))
    # (G, Og, N, P) -> (N, G*Og, Do, Ho, Wo)
    return contiguous(y.reshape(o, n, p).transpose(1, 0, 2)).reshape(n, o, *out)


def conv3d_forward(x, w, stride, padding, dilation, groups):
    """y = conv3d(x, w) as one batched GEMM over the groups per chunk of images."""
    n, o, out = geometry3(x.shape, w.shape, stride, padding, dilation, groups)
    chunks = _chunks(n, _cols_bytes(x.shape[1], w.shape[2:], out, x.dtype))
    if len(chunks) == 1:
        return _fwd(x, w, stride, padding, dilation, groups, out)
    y = xp_of(x).empty((n, o, *out), dtype=x.dtype)
    for i, j in chunks:
        y[i:j] = _fwd(x[i:j], w, stride, padding, dilation, groups, out)
    return y


def _bwd_input(gy, w, x_shape, stride, padding, dilation, groups, out):
    o, cg = w.shape[:2]
    ck = cg * int(np.prod(w.shape[2:]))
    gcols = gemm(contiguous(w).reshape(groups, o // groups, ck), _as_groups(gy, groups), trans_a=True)
    gcols = gcols.reshape(groups * ck, gy.shape[0] * int(np.prod(out)))
    return col2vol(gcols, x_shape, w.shape[2:], stride, padding, dilation, out)


def conv3d_backward_input(gy, w, x_shape, stride, padding, dilation, groups):
    """dx = col2vol(W^T @ dY'): the GEMM reads W transposed in place (``trans_a``)."""
    n, o, out = geometry3(tuple(x_shape), w.shape, stride, padding, dilation, groups)
    if tuple(gy.shape) != (n, o, *out):
        raise ValueError(f"conv3d_backward_input: gy has shape {tuple(gy.shape)}, expected {(n, o, *out)}")
    chunks = _chunks(n, _cols_bytes(x_shape[1], w.shape[2:], out, gy.dtype))
    if len(chunks) == 1:
        return _bwd_input(gy, w, tuple(x_shape), stride, padding, dilation, groups, out)
    gx = xp_of(gy).empty(tuple(x_shape), dtype=gy.dtype)
    for i, j in chunks:
        gx[i:j] = _bwd_input(gy[i:j], w, (j - i,) + tuple(x_shape[1:]), stride, padding, dilation, groups,
                             out)
    return gx


def conv3d_backward_weight(gy, x, w_shape, stride, padding, dilation, groups):
    """dW = dY' @ cols^T: the GEMM reads cols transposed in place (``trans_b``), split along K."""
    n, o, out = geometry3(x.shape, tuple(w_shape), stride, padding, dilation, groups)
    if tuple(gy.shape) != (n, o, *out):
        raise ValueError(f"conv3d_backward_weight: gy has shape {tuple(gy.shape)}, expected {(n, o, *out)}")
    cg = w_shape[1]
    ck = cg * int(np.prod(w_shape[2:]))
    gw = None
    for i, j in _chunks(n, _cols_bytes(x.shape[1], w_shape[2:], out, gy.dtype)):  # dW sums over images
        k = (j - i) * int(np.prod(out))
        cols = vol2col(x[i:j], w_shape[2:], stride, padding, dilation, out).reshape(groups, ck, k)
        splits = split_k(o // groups, ck, k, groups, gy.dtype)
        part = gemm(_as_groups(gy[i:j], groups), cols, trans_b=True, splits=splits)
        gw = part if gw is None else gw + part
    return gw.reshape(tuple(w_shape)).astype(gy.dtype, copy=False)
