"""CPU backend: the kernel functions the ops call for ``device="cpu"``.

Matmul goes through NumPy's BLAS; the rest are Numba kernels where they beat NumPy, otherwise the
reference versions.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from .reference import (  # noqa: F401  (re-exported: part of the backend interface)
    avg_pool2d_backward,
    avg_pool2d_forward,
    batch_norm_backward,
    batch_norm_forward_train,
    conv2d_backward_input,
    conv2d_backward_weight,
    conv2d_forward,
    max_pool2d_backward,
    max_pool2d_forward,
)


def matmul(a, b):
    """(..., n, k) @ (..., k, m) through NumPy's BLAS (sgemm/dgemm)."""
    return np.matmul(a, b)


@numba.vectorize(["float32(float32)", "float64(float64)"], cache=True)
def _erf(x):
    return math.erf(x)


def erf(x):
    """Elementwise error function (Numba ufunc around ``math.erf``)."""
    return _erf(x)
