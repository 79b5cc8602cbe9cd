"""Argument checks shared by ``nn.functional``, ``nn.losses`` and the layers: one wording everywhere.

    >>> pair(3, "kernel_size")
    (3, 3)
"""

from __future__ import annotations

from ..dtypes import is_floating
from ..tensor import Tensor

__all__ = ["pair", "check_float"]


def pair(v, name: str) -> tuple:
    """An int or a 2-sequence as a pair of ints (``kernel_size=3`` -> ``(3, 3)``)."""
    if isinstance(v, (tuple, list)):
        if len(v) != 2:
            raise ValueError(f"{name} must be an int or a pair, got {v!r}")
        return int(v[0]), int(v[1])
    return int(v), int(v)


def check_float(fn: str, **tensors) -> None:
    """Each given tensor (``None`` allowed) must be a floating-point Tensor."""
    for name, t in tensors.items():
        if t is not None and not isinstance(t, Tensor):
            raise TypeError(f"{fn}: {name} must be a Tensor, got {type(t).__name__}")
        if t is not None and not is_floating(t.dtype):
            raise TypeError(f"{fn}: {name} must be a floating-point tensor, got dtype {t.dtype}")
