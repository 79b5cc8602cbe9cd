"""Convolution as im2col + GEMM on the GPU (Numba CUDA), for stride, padding, dilation and groups.

The column matrix of a whole batch is laid out (C * kH * kW, N * H_out * W_out): row
``r = (c * kH + u) * kW + v`` holds input channel c shifted by kernel tap (u, v), column
``q = n * P + i * W_out + j`` is output pixel (i, j) of image n (P = H_out * W_out). Group g owns
rows ``g * Cg*kH*kW ...``, so with it viewed as (G, Cg*kH*kW, N*P) the three convolution products
are single batched GEMMs over the groups (``cuda_gemm.gemm``):

    forward          Y'[g]   = W[g] @ cols[g]                       (Og, N*P)
    backward input   dcols[g] = W[g]^T @ dY'[g]  then col2im        (Cg*kH*kW, N*P)
    backward weight  dW[g]   = dY'[g] @ cols[g]^T                   (Og, Cg*kH*kW)

where Y' / dY' are the output (gradient) in (C_out, N*P) order. col2im *gathers* (one thread per
input element sums the column entries that read it), so it needs no atomics and is deterministic.

    >>> y = conv2d_forward(x, w, (1, 1), (1, 1), (1, 1), 1)
"""

from __future__ import annotations

import numpy as np
from numba import cuda

from . import cuda_gemm, tensorcore
from .cuda_common import contiguous, dev, launch_1d, simulator, stream, xp_of
from .reference import out_size


def gemm(a, b, trans_a=False, trans_b=False, splits=1):
    """The conv products: tensor cores when selected (``TGR_TENSOR_CORES``), else the Numba GEMM."""
    if tensorcore.wants(a.dtype):
        return tensorcore.gemm(a, b, trans_a=trans_a, trans_b=trans_b, splits=splits)
    return cuda_gemm.gemm(a, b, trans_a=trans_a, trans_b=trans_b, splits=splits)


@cuda.jit
def im2col_kernel(x, cols, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo, zero):
    """cols[(c*kh+u)*kw+v, n*P + i*wo + j] = x[n, c, i*sh - ph + u*dh, j*sw - pw + v*dw] (0 outside)."""
    n_img, _, h, w = x.shape
    p = ho * wo
    ncol = n_img * p
    total = cols.shape[0] * ncol
    start = cuda.grid(1)
    step = cuda.gridsize(1)
    for idx in range(start, total, step):
        r = idx // ncol
        q = idx - r * ncol
        n = q // p
        pix = q - n * p
        i = pix // wo
        j = pix - i * wo
        c = r // (kh * kw)
        uv = r - c * (kh * kw)
        u = uv // kw
        v = uv - u * kw
        hh = i * sh - ph + u * dh
        ww = j * sw - pw + v * dw
        val = zero
        if hh >= 0 and hh < h and ww >= 0 and ww < w:
            val = x[n, c, hh, ww]
        cols[r, q] = val


@cuda.jit
def col2im_kernel(cols, x, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo, zero):
    """x[n, c, h, w] = sum over taps (u, v) whose output pixel (i, j) read (h, w) of cols[...]."""
    n_img, ch, h, w = x.shape
    p = ho * wo
    total = n_img * ch * h * w
    start = cuda.grid(1)
    step = cuda.gridsize(1)
    for idx in range(start, total, step):
        ww = idx % w
        t = idx // w
        hh = t % h
        t = t // h
        c = t % ch
        n = t // ch
        acc = zero
        for u in range(kh):
            hi = hh + ph - u * dh  # = i * sh when tap u of output row i reads row hh
            if hi >= 0 and hi % sh == 0:
                i = hi // sh
                if i < ho:
                    for v in range(kw):
                        wj = ww + pw - v * dw
                        if wj >= 0 and wj % sw == 0:
                            j = wj // sw
                            if j < wo:
                                acc += cols[(c * kh + u) * kw + v, n * p + i * wo + j]
        x[n, c, hh, ww] = acc


def im2col(x, kernel, stride, padding, dilation):
    """(N, C, H, W) -> cols (C*kH*kW, N*H_out*W_out) (see the module docstring)."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    n, c, h, w = x.shape
    ho, wo = out_size(h, kh, sh, ph, dh), out_size(w, kw, sw, pw, dw)
    x = contiguous(x)
    cols = xp_of(x).empty((c * kh * kw, n * ho * wo), dtype=x.dtype)
    if cols.size:
        blocks, threads = launch_1d(cols.size)
        zero = x.dtype.type(0)
        im2col_kernel[blocks, threads, stream()](dev(x), dev(cols), kh, kw, sh, sw, ph, pw, dh, dw, ho, wo,
                                                 zero)
    return cols


def col2im(cols, x_shape, kernel, stride, padding, dilation, out_hw=None):
    """Adjoint of :func:`im2col`: sums column entries back into an (N, C, H, W) array.

    ``out_hw`` is the (H_out, W_out) the columns were made for (computed from ``x_shape`` if None).
    """
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    n, c, h, w = x_shape
    ho, wo = out_hw or (out_size(h, kh, sh, ph, dh), out_size(w, kw, sw, pw, dw))
    cols = contiguous(cols)
    x = xp_of(cols).empty(tuple(x_shape), dtype=cols.dtype)
    if x.size:
        if cols.size == 0:
            x[...] = 0
            return x
        blocks, threads = launch_1d(x.size)
        zero = cols.dtype.type(0)
        col2im_kernel[blocks, threads, stream()](dev(cols), dev(x), kh, kw, sh, sw, ph, pw, dh, dw, ho, wo,
                                                 zero)
    return x


def _check(x_shape, w_shape, groups):
    if len(x_shape) != 4 or len(w_shape) != 4:
        raise ValueError(f"conv2d: input {tuple(x_shape)} and weight {tuple(w_shape)} must both be 4-D")
    if x_shape[1] != w_shape[1] * groups or w_shape[0] % groups:
        raise ValueError(
            f"conv2d: input {tuple(x_shape)} / weight {tuple(w_shape)} do not match groups={groups}"
        )


def split_k(m: int, n: int, k: int, batch: int, dtype) -> int:
    """Split-K factor of the weight-gradient product (batch x (m, k) @ (k, n), k = N * H_out * W_out)."""
    if simulator():
        return 1 if k < 64 else 2  # exercise the split path on tiny shapes
    if tensorcore.wants(dtype):
        return cuda_gemm.auto_splits(m, n, k, batch, tensorcore.BLOCK_M, tensorcore.BLOCK_N)
    bm, bn = cuda_gemm.pick_tiles(m, n, dtype)[:2]
    return cuda_gemm.auto_splits(m, n, k, batch, bm, bn)


# NOTE: the column matrix of a whole batch can be large (ResNet-18 at 224 px, batch 256: ~1.8 GB);
# above this size the batch is processed in chunks of images (same result, bounded memory).
MAX_COLS_BYTES = 1 << 30


def _image_chunks(n: int, cols_bytes_per_image: int):
    """(start, stop) ranges of images whose column matrix fits in MAX_COLS_BYTES (at least 1 image)."""
    step = max(1, MAX_COLS_BYTES // max(1, cols_bytes_per_image))
    return [(i, min(n, i + step)) for i in range(0, n, step)]


def _fwd(x, w, stride, padding, dilation, groups, ho, wo):
    n = x.shape[0]
    o, cg, kh, kw = w.shape
    ck = cg * kh * kw
    cols = im2col(x, (kh, kw), stride, padding, dilation)
    y = gemm(contiguous(w).reshape(groups, o // groups, ck), cols.reshape(groups, ck, n * ho * wo))
    # (G, Og, N, P) -> (N, G*Og, Ho, Wo)
    return contiguous(y.reshape(o, n, ho * wo).transpose(1, 0, 2)).reshape(n, o, ho, wo)


def _bwd_input(gy, w, x_shape, stride, padding, dilation, groups):
    n, o, ho, wo = gy.shape
    _, cg, kh, kw = w.shape
    ck = cg * kh * kw
    gyt = contiguous(gy.reshape(n, o, ho * wo).transpose(1, 0, 2)).reshape(groups, o // groups, n * ho * wo)
    gcols = gemm(contiguous(w).reshape(groups, o // groups, ck), gyt, trans_a=True)
    gcols = gcols.reshape(groups * ck, n * ho * wo)
    return col2im(gcols, x_shape, (kh, kw), stride, padding, dilation, out_hw=(ho, wo))


def _bwd_weight(gy, x, w_shape, stride, padding, dilation, groups):
    n, o, ho, wo = gy.shape
    _, cg, kh, kw = w_shape
    ck = cg * kh * kw
    cols = im2col(x, (kh, kw), stride, padding, dilation).reshape(groups, ck, n * ho * wo)
    gyt = contiguous(gy.reshape(n, o, ho * wo).transpose(1, 0, 2)).reshape(groups, o // groups, n * ho * wo)
    splits = split_k(o // groups, ck, n * ho * wo, groups, gy.dtype)
    return gemm(gyt, cols, trans_b=True, splits=splits)


def _cols_bytes(c, kh, kw, ho, wo, dtype) -> int:
    return c * kh * kw * ho * wo * np.dtype(dtype).itemsize


def conv2d_forward(x, w, stride, padding, dilation, groups):
    """y = conv2d(x, w) as one batched GEMM over the groups: (G, Og, Cg*k*k) @ (G, Cg*k*k, N*P)."""
    _check(x.shape, w.shape, groups)
    n, c = x.shape[:2]
    o, _, kh, kw = w.shape
    ho = out_size(x.shape[2], kh, stride[0], padding[0], dilation[0])
    wo = out_size(x.shape[3], kw, stride[1], padding[1], dilation[1])
    chunks = _image_chunks(n, _cols_bytes(c, kh, kw, ho, wo, x.dtype))
    if len(chunks) == 1:
        return _fwd(x, w, stride, padding, dilation, groups, ho, wo)
    y = xp_of(x).empty((n, o, ho, wo), dtype=x.dtype)
    for i, j in chunks:
        y[i:j] = _fwd(x[i:j], w, stride, padding, dilation, groups, ho, wo)
    return y


def conv2d_backward_input(gy, w, x_shape, stride, padding, dilation, groups):
    """dx = col2im(W^T @ dY'): the GEMM reads W transposed in place (``trans_a``)."""
    _check(x_shape, w.shape, groups)
    n, c = x_shape[:2]
    _, _, kh, kw = w.shape
    chunks = _image_chunks(n, _cols_bytes(c, kh, kw, gy.shape[2], gy.shape[3], gy.dtype))
    if len(chunks) == 1:
        return _bwd_input(gy, w, x_shape, stride, padding, dilation, groups)
    gx = xp_of(gy).empty(tuple(x_shape), dtype=gy.dtype)
    for i, j in chunks:
        gx[i:j] = _bwd_input(gy[i:j], w, (j - i,) + tuple(x_shape[1:]), stride, padding, dilation, groups)
    return gx


def conv2d_backward_weight(gy, x, w_shape, stride, padding, dilation, groups):
    """dW = dY' @ cols^T: the GEMM reads cols transposed in place (``trans_b``), split along K."""
    _check(x.shape, w_shape, groups)
    n, c = x.shape[:2]
    _, _, kh, kw = w_shape
    chunks = _image_chunks(n, _cols_bytes(c, kh, kw, gy.shape[2], gy.shape[3], gy.dtype))
    gw = None
    for i, j in chunks:  # dW sums over images: add the chunks' products
        part = _bwd_weight(gy[i:j], x[i:j], w_shape, stride, padding, dilation, groups)
        gw = part if gw is None else gw + part
    return gw.reshape(w_shape).astype(gy.dtype, copy=False)
