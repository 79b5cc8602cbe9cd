"""``BatchNorm3d``: batch norm over (N, C, D, H, W) volumes (running stats as buffers, as in PyTorch).

    >>> bn = BatchNorm3d(8).eval()
    >>> bn(tinygrad_rad.randn(2, 8, 4, 4, 4)).shape
    (2, 8, 4, 4, 4)
"""

from __future__ import annotations

from .norm import _BatchNorm

__all__ = ["BatchNorm3d"]


class BatchNorm3d(_BatchNorm):
    """Batch norm over (N, C, D, H, W): per-channel statistics over the batch and all voxels."""

    _expected_dims = (5,)
