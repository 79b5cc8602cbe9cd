"""Matrix multiplication (batched, broadcasting): the device's GEMM kernel forward and backward."""

from __future__ import annotations

import numpy as np

from ..autograd import Function
from ..device import backend
from .elementwise import unbroadcast


class MatMul(Function):
    """``a @ b`` for a of shape (..., n, k) and b of shape (..., k, m) with broadcast batch dims."""

    def forward(self, a, b):
        self.a, self.b = a, b
        return backend(self.device).matmul(a, b)

    def backward(self, g):
        # C = A B  =>  dA = G B^T, dB = A^T G  (summed over broadcast batch dims)
        bk = backend(self.device)
        ga = gb = None
        if self.needs_input_grad[0]:
            ga = unbroadcast(bk.matmul(g, self.b.swapaxes(-1, -2)), self.a.shape)
        if self.needs_input_grad[1]:
            gb = unbroadcast(bk.matmul(self.a.swapaxes(-1, -2), g), self.b.shape)
        return ga, gb


def matmul(a, b):
    """``a @ b`` with NumPy/PyTorch rules for 1-D operands (a vector is promoted, then squeezed)."""
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: both operands need at least 1 dim, got shapes {a.shape} and {b.shape}")
    if a.dtype != b.dtype:
        raise TypeError(f"matmul: dtypes differ ({a.dtype} and {b.dtype}); cast one with .to(dtype)")
    a2 = a.unsqueeze(0) if a.ndim == 1 else a
    b2 = b.unsqueeze(-1) if b.ndim == 1 else b
    if a2.shape[-1] != b2.shape[-2]:
        raise ValueError(
            f"matmul: shapes {a.shape} and {b.shape} are not aligned ({a2.shape[-1]} != {b2.shape[-2]})"
        )
    try:
        np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2])
    except ValueError:
        raise ValueError(
            f"matmul: batch dims of shapes {a.shape} and {b.shape} cannot be broadcast"
        ) from None
    out = MatMul.apply(a2, b2)
    if a.ndim == 1:
        out = out.squeeze(-2)
    if b.ndim == 1:
        out = out.squeeze(-1)
    return out
