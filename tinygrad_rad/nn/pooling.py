"""Pooling geometry shared by the 2-D and 3-D pooling functions of ``nn.functional``: PyTorch's output
sizes, the extra padding of ``ceil_mode``, average-pool divisors and adaptive-pool bins, one axis at a time.

    >>> pool_out(28, 2, 2, 0, 1, ceil_mode=False)
    14
"""

from __future__ import annotations

import numpy as np

__all__ = ["pool_out", "ceil_extra", "avg_divisor_axis", "adaptive_matrix"]


def pool_out(n: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> int:
    """PyTorch's pooling output size along one axis (ceil_mode: the last window must start inside
    the input or its left padding)."""
    eff = d * (k - 1) + 1
    span = n + 2 * p - eff
    out = (-(-span // s) if ceil_mode else span // s) + 1
    if ceil_mode and (out - 1) * s >= n + p:
        out -= 1
    return out


def ceil_extra(n: int, k: int, s: int, p: int, d: int = 1) -> int:
    """Extra bottom/right padding that ``ceil_mode=True`` needs, by PyTorch's rule: the output size is
    rounded up, but the last window must start inside the input or its left padding."""
    eff = d * (k - 1) + 1
    out = -(-(n + 2 * p - eff) // s) + 1
    if (out - 1) * s >= n + p:
        out -= 1
    return max((out - 1) * s + eff - (n + 2 * p), 0)


def avg_divisor_axis(n: int, k: int, s: int, p: int, n_out: int, count_include_pad: bool) -> np.ndarray:
    """PyTorch's per-window divisor along one axis: the window clipped to the padded input (or, without
    count_include_pad, to the input itself)."""
    start = np.arange(n_out) * s - p
    end = np.minimum(start + k, n + p)
    if count_include_pad:
        return (end - start).astype(np.float64)
    return (np.minimum(end, n) - np.maximum(start, 0)).astype(np.float64)


def adaptive_matrix(n_in: int, n_out: int, dtype) -> np.ndarray:
    """Averaging matrix (n_out, n_in) with PyTorch's bins [floor(i n/o), ceil((i+1) n/o))."""
    m = np.zeros((n_out, n_in), dtype=dtype)
    for i in range(n_out):
        a, b = (i * n_in) // n_out, -((-(i + 1) * n_in) // n_out)
        m[i, a:b] = 1.0 / (b - a)
    return m
