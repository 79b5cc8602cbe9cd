"""CUDA backend: the kernel functions the ops call for ``device="cuda"``.

Same functions as :mod:`tinygrad_rad.kernels.reference` (and ``.cpu``), all run as the project's own
Numba CUDA kernels:

* ``matmul``: tiled, register-blocked GEMM (:mod:`.cuda_gemm`), batched with broadcasting; a
  transposed operand (the views ``MatMul.backward`` passes) is read in place, not copied. With
  ``TGR_TENSOR_CORES=1`` on a real GPU, float32/float16/bfloat16 products go to the CUDA C
  tensor-core GEMM instead (:mod:`.tensorcore`).
* convolution: im2col + GEMM + col2im (:mod:`.cuda_conv`); ConvTranspose2d reuses them.
* pooling (:mod:`.cuda_pool`), batch norm (:mod:`.cuda_bn`), softmax-cross-entropy and row
  reductions (:mod:`.cuda_softmax`), ``erf``, ``relu_forward`` / ``relu_backward``, the channel
  affine of eval-time batch norm, and Adam's fused update (``adam_step``).

Every launch goes on CuPy's current stream (:func:`.cuda_common.stream`).

Arrays are CuPy arrays on a GPU (kernels receive them through the CUDA array interface: no copies,
no host round-trips) and NumPy arrays under ``NUMBA_ENABLE_CUDASIM=1``, where the very same kernels
run in Numba's simulator.

    >>> from tinygrad_rad.kernels import cuda as K
    >>> K.matmul(a, b)          # a (..., n, k), b (..., k, m)
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda

from . import compose, tensorcore
from .cuda_bn import batch_norm_backward, batch_norm_forward_train  # noqa: F401  (backend interface)
from .cuda_common import contiguous, dev, launch_1d, simulator, stream, xp_of
from .cuda_conv import (  # noqa: F401
    conv2d_backward_input,
    conv2d_backward_weight,
    conv2d_forward,
)
from .cuda_gemm import gemm
from .cuda_pool import (  # noqa: F401
    avg_pool2d_backward,
    avg_pool2d_forward,
    max_pool2d_backward,
    max_pool2d_forward,
)
from .cuda_softmax import (  # noqa: F401
    log_softmax,
    softmax_cross_entropy_backward,
    softmax_cross_entropy_forward,
    sum_rows,
)
from .reference import bn_axes

# the backend interface (the same names as kernels/reference.py and kernels/cpu.py), plus helpers
__all__ = [
    "matmul", "erf", "relu_forward", "relu_backward",
    "conv2d_forward", "conv2d_backward_input", "conv2d_backward_weight",
    "max_pool2d_forward", "max_pool2d_backward", "avg_pool2d_forward", "avg_pool2d_backward",
    "batch_norm_forward_train", "batch_norm_backward", "batch_norm_relu_forward_train",
    "batch_norm_relu_backward", "channel_affine_forward", "channel_affine_backward",
    "conv2d_affine_forward",
    "softmax_cross_entropy_forward", "softmax_cross_entropy_backward", "adam_step",
    "conv3d_forward", "conv3d_backward_input", "conv3d_backward_weight",
    "max_pool3d_forward", "max_pool3d_backward", "avg_pool3d_forward", "avg_pool3d_backward",
    "log_softmax", "sum_rows", "synchronize",
]

_GEMM_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _is_transposed(a) -> bool:
    """True when ``a`` is the swapaxes(-1, -2) view of a C-contiguous array (read it with trans)."""
    if a.ndim < 2 or a.flags.c_contiguous:
        return False
    return a.swapaxes(-1, -2).flags.c_contiguous


def _as_batched(a, out_batch: tuple):
    """(array of shape (B, r, c), transposed?) such that batch z of the product uses a[z % B]."""
    trans = _is_transposed(a)
    base = a.swapaxes(-1, -2) if trans else contiguous(a)
    batch = tuple(a.shape[:-2])
    padded = (1,) * (len(out_batch) - len(batch)) + batch
    # a[z % B] is right when the operand's batch is all ones, then equal to the output's trailing dims
    k = 0
    while k < len(padded) and padded[k] == 1:
        k += 1
    if padded[k:] != tuple(out_batch[k:]):
        # a broadcast the modulo rule cannot express: materialise it (rare: (2, 1, ...) @ (1, 3, ...))
        xp = xp_of(a)
        base = contiguous(xp.broadcast_to(a, tuple(out_batch) + a.shape[-2:]))
        trans = False
    return base.reshape((-1,) + base.shape[-2:]), trans


def matmul(a, b):
    """(..., n, k) @ (..., k, m) with broadcast batch dims, on the GPU (NumPy's matmul rules: a 1-D ``a``
    is a row (k,) -> (1, k), a 1-D ``b`` a column, and that axis is dropped from the result).

    float32/float64 run the project's Numba CUDA GEMM (or, when enabled, the tensor-core GEMM);
    float16 / bfloat16 the tensor-core GEMM when selected; other dtypes (integers) fall back to the
    array module's matmul.
    """
    xp = xp_of(a)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: operands must be at least 1-D, got shapes {tuple(a.shape)} and "
                         f"{tuple(b.shape)}")
    if a.shape[-1] != b.shape[-2 if b.ndim >= 2 else -1]:
        raise ValueError(f"matmul: shapes {tuple(a.shape)} and {tuple(b.shape)} are not aligned")
    fast = a.dtype == b.dtype and (np.dtype(a.dtype) in _GEMM_DTYPES
                                   or (np.dtype(a.dtype).kind == "f" and tensorcore.wants(a.dtype)))
    if not fast:
        return xp.matmul(a, b)
    if a.ndim == 1 or b.ndim == 1:  # NOTE: promote, multiply, drop the added axis (NumPy's rule)
        out = matmul(a[None, :] if a.ndim == 1 else a, b[:, None] if b.ndim == 1 else b)
        if b.ndim == 1:
            out = out[..., 0]
        if a.ndim == 1:
            out = out[..., 0, :] if b.ndim > 1 else out[..., 0]
        return out
    out_batch = tuple(np.broadcast_shapes(tuple(a.shape[:-2]), tuple(b.shape[:-2])))
    a3, ta = _as_batched(a, out_batch)
    b3, tb = _as_batched(b, out_batch)
    if tensorcore.wants(a.dtype):
        c = tensorcore.gemm(a3, b3, trans_a=ta, trans_b=tb)
    else:
        c = gemm(a3, b3, trans_a=ta, trans_b=tb)
    return c.reshape(out_batch + (a.shape[-2], b.shape[-1]))


# ------------------------------------------------------------------------------------- erf
@cuda.jit
def _erf_kernel(x, y):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        y[i] = math.erf(x[i])


def _elementwise(kernel, shape, *arrays, scalars=()):
    """Run a grid-stride ``kernel(*inputs, *scalars, out)`` over the flattened ``arrays``; ``out`` is shaped
    like the first input, over whose elements the kernel's grid runs."""
    flats = [contiguous(a).reshape(-1) for a in arrays]
    out = xp_of(flats[0]).empty_like(flats[0])
    if out.size:
        blocks, threads = launch_1d(out.size)
        kernel[blocks, threads, stream()](*[dev(f) for f in flats], *scalars, dev(out))
    return out.reshape(shape)


def erf(x):
    """Elementwise error function (Numba CUDA kernel around ``math.erf``)."""
    if np.dtype(x.dtype).kind != "f":
        x = x.astype(np.float64)
    return _elementwise(_erf_kernel, x.shape, x)


# ------------------------------------------------------------------------------------ relu
@cuda.jit
def _relu_fwd_kernel(x, y):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        v = x[i]
        y[i] = v if v > 0 or v != v else 0  # NaN stays NaN


@cuda.jit
def _relu_bwd_kernel(g, out, gx):
    for i in range(cuda.grid(1), g.size, cuda.gridsize(1)):
        gx[i] = g[i] if out[i] > 0 else 0


def relu_forward(x):
    """max(x, 0) elementwise, one grid-stride kernel."""
    return _elementwise(_relu_fwd_kernel, x.shape, x)


def relu_backward(g, out):
    """g * [out > 0], one grid-stride kernel."""
    return _elementwise(_relu_bwd_kernel, g.shape, g, out)


# --------------------------------------------------------------------------- channel affine
@cuda.jit
def _affine_kernel(x, scale, shift, plane, y):
    c = scale.size
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        ch = (i // plane) % c
        y[i] = x[i] * scale[ch] + shift[ch]


def channel_affine_forward(x, scale, shift):
    """y = x * scale[c] + shift[c] per channel of (N, C, ...) input, one grid-stride kernel."""
    plane = int(np.prod(x.shape[2:], dtype=np.int64))  # values per (image, channel)
    return _elementwise(_affine_kernel, x.shape, x, scale.astype(x.dtype), shift.astype(x.dtype),
                        scalars=(plane,))


def conv2d_affine_forward(x, w, stride, padding, dilation, groups, scale, shift, residual, relu):
    """[relu](conv2d(x, w) * scale[o] + shift[o] [+ residual]), this tier's conv, affine and ReLU in a row."""
    return compose.conv2d_affine_forward(conv2d_forward, channel_affine_forward, relu_forward, x, w, stride,
                                         padding, dilation, groups, scale, shift, residual, relu)


def channel_affine_backward(g, x, scale):
    """-> (gx, gscale, gshift): gx by the forward kernel (scale, zero shift); the per-channel sums with the
    array module's reductions (CuPy on a GPU)."""
    gx = channel_affine_forward(g, scale, xp_of(g).zeros_like(scale))
    axes = bn_axes(x)
    return gx, (g * x).sum(axis=axes).astype(x.dtype), g.sum(axis=axes).astype(x.dtype)


# ------------------------------------------------------------------------------------ adam
@cuda.jit
def _adam_kernel(p, g, m, v, vmax, decay, wd, one_m_b1, b2, one_m_b2, bc2_sqrt, eps, step_size, maximize,
                 decay_mode, amsgrad):
    """One fused Adam pass; the constants are scalars of p's dtype (see adam_step); decay_mode 0: no weight
    decay, 1: g += wd p (Adam), 2: p *= 1 - lr wd (AdamW). The float operations of kernels/cpu._adam."""
    for i in range(cuda.grid(1), p.size, cuda.gridsize(1)):
        gi = -g[i] if maximize else g[i]
        if decay_mode == 2:
            p[i] *= decay
        elif decay_mode == 1:
            gi = gi + wd * p[i]
        mi = m[i] + (gi - m[i]) * one_m_b1  # = b1 m + (1 - b1) g
        m[i] = mi
        vi = v[i] * b2 + (gi * one_m_b2) * gi
        v[i] = vi
        if amsgrad:
            a = vmax[i]
            vi = a if (a > vi) or (a != a) else vi  # np.maximum: NaN wins
            vmax[i] = vi
        p[i] -= (mi / (math.sqrt(vi) / bc2_sqrt + eps)) * step_size


def adam_step(p, g, m, v, vmax, *, lr, beta1, beta2, eps, weight_decay, step, maximize=False,
              decoupled=False, amsgrad=False) -> None:
    """Adam / AdamW update of ``p``, ``m``, ``v`` (and ``vmax`` with amsgrad) in place: one kernel.

    The same float operations in the same order as ``kernels/cpu.adam_step`` and the NumPy code in
    ``optim/adam.py``, constants rounded to p's dtype first and passed as scalars of that dtype (no
    float64 arithmetic in a float32 kernel). All arrays are C-contiguous, of p's dtype and shape; ``vmax``
    may be None without amsgrad. NOTE: the GPU compiler may fuse a multiply and an add (FMA), so results
    can differ from the CPU in the last bit.
    Example: ``adam_step(p, g, m, v, None, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0,
    step=1)``
    """
    arrays = [p, g, m, v] + ([vmax] if amsgrad else [])
    for name, a in zip(("p", "g", "m", "v", "vmax"), arrays):
        if a.dtype != p.dtype or tuple(a.shape) != tuple(p.shape) or not a.flags.c_contiguous:
            raise ValueError(f"adam_step: {name} must be C-contiguous {p.dtype} of shape {tuple(p.shape)}, "
                             f"got {a.dtype} {tuple(a.shape)}")
    if np.dtype(p.dtype) not in _GEMM_DTYPES:
        raise TypeError(f"adam_step: parameters must be float32 or float64, got {p.dtype}")
    if not amsgrad:  # NOTE: not v itself: the simulator copies each argument back, the second copy would win
        vmax = xp_of(p).empty(1, dtype=p.dtype)
    T = np.dtype(p.dtype).type
    consts = [T(c) for c in (1 - lr * weight_decay, weight_decay, 1 - beta1, beta2, 1 - beta2,
                             math.sqrt(1 - beta2**step), eps, lr / (1 - beta1**step))]
    decay_mode = 0 if weight_decay == 0 else (2 if decoupled else 1)
    if p.size:
        blocks, threads = launch_1d(p.size)
        _adam_kernel[blocks, threads, stream()](*[dev(a.reshape(-1)) for a in (p, g, m, v, vmax)], *consts,
                                               bool(maximize), decay_mode, bool(amsgrad))


def synchronize() -> None:
    """Wait for every queued kernel (a no-op under the simulator)."""
    if not simulator():
        cuda.synchronize()


# -------------------------------------------------------------------------------- 3-D (volumes, NCDHW)
# conv3d_* / max_pool3d_* / avg_pool3d_*: the 2-D interface with one more axis (issue 13), in
# cuda_conv3d.py (convs; pools from cuda_plain3d.py).
# NOTE: imported last (that module does not import this one).
from .cuda_conv3d import (  # noqa: E402, F401
    conv3d_backward_input,
    conv3d_backward_weight,
    conv3d_forward,
)
from .cuda_plain3d import (  # noqa: E402, F401
    avg_pool3d_backward,
    avg_pool3d_forward,
    max_pool3d_backward,
    max_pool3d_forward,
)


# ------------------------------------------------------------------------- batch norm + ReLU
def batch_norm_relu_forward_train(x, weight, bias, eps):
    """relu(batch_norm(x)) -> (y, mean, invstd): this tier's batch norm, then its ReLU (compose.py)."""
    return compose.batch_norm_relu_forward(batch_norm_forward_train, relu_forward, x, weight, bias, eps)


def batch_norm_relu_backward(gy, x, weight, bias, mean, invstd):
    """-> (gx, gw, gb): gy masked where the ReLU was off (from x), then this tier's batch-norm backward."""
    return compose.batch_norm_relu_backward(batch_norm_backward, relu_backward, channel_affine_forward, gy, x,
                                            weight, bias, mean, invstd)
