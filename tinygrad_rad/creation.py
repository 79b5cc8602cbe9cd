"""Creation functions with PyTorch's names: ``tensor``, ``zeros``, ``ones``, ``full``, ``empty``,
``arange``, ``linspace``, ``eye``, ``rand``, ``randn``, ``randint``, ``randperm`` and the ``*_like`` forms.

    >>> w = tr.randn(16, 3, 3, 3, requires_grad=True)   # from the global generator (manual_seed)
    >>> b = tr.zeros(16)
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any

import numpy as np

from .device import canonical_device, to_device, xp_for
from .dtypes import DEFAULT_FLOAT, check_dtype, to_dtype
from .random import get_generator
from .tensor import Tensor, _as_array
from .tensor_methods import _shape_arg


def _creation_dtype(dtype) -> np.dtype:
    return DEFAULT_FLOAT if dtype is None else to_dtype(dtype)


def _new(arr, device, requires_grad) -> Tensor:
    dev = canonical_device(device)
    t = Tensor._wrap(to_device(arr, dev), device=dev)
    if requires_grad:
        t.requires_grad_(True)
    return t


def tensor(data: Any, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """``tensor([[1., 2.], [3., 4.]], requires_grad=True)``; always copies ``data``."""
    if isinstance(data, Tensor):
        data = data.numpy()
    arr = np.array(_as_array(data, dtype), copy=True)
    return Tensor(arr, requires_grad=requires_grad, dtype=dtype, device=device)


def from_numpy(arr: np.ndarray) -> Tensor:
    """Wrap a NumPy array (no copy), keeping its dtype."""
    check_dtype(arr.dtype)
    return Tensor._wrap(arr, device="cpu")


def zeros(*shape, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return _new(np.zeros(_shape_arg(shape), dtype=_creation_dtype(dtype)), device, requires_grad)


def ones(*shape, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return _new(np.ones(_shape_arg(shape), dtype=_creation_dtype(dtype)), device, requires_grad)


def full(size: Sequence[int], fill_value: float, dtype=None, device=None,
         requires_grad: bool = False) -> Tensor:
    if dtype is None and isinstance(fill_value, builtins.bool):
        dtype = np.bool_
    elif dtype is None and isinstance(fill_value, builtins.int):
        dtype = np.int64
    return _new(np.full(tuple(size), fill_value, dtype=_creation_dtype(dtype)), device, requires_grad)


def empty(*shape, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Uninitialised memory, as in PyTorch (``xp.empty``): write every element before reading it."""
    dev = canonical_device(device)
    t = Tensor._wrap(xp_for(dev).empty(_shape_arg(shape), dtype=_creation_dtype(dtype)), device=dev)
    if requires_grad:
        t.requires_grad_(True)
    return t


def arange(start, end=None, step=1, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """``arange(5)`` -> int64 0..4; float arguments give float32."""
    if end is None:
        start, end = 0, start
    if dtype is None:
        ints = builtins.all(isinstance(v, (builtins.int, np.integer)) for v in (start, end, step))
        dtype = np.int64 if ints else DEFAULT_FLOAT
    return _new(np.arange(start, end, step, dtype=to_dtype(dtype)), device, requires_grad)


def linspace(start: float, end: float, steps: int, dtype=None, device=None,
             requires_grad: bool = False) -> Tensor:
    dt = _creation_dtype(dtype)
    if dt.kind in "iub":  # NOTE: PyTorch truncates toward zero (NumPy's linspace(dtype=int) floors)
        return _new(np.linspace(start, end, steps).astype(dt), device, requires_grad)
    return _new(np.linspace(start, end, steps, dtype=dt), device, requires_grad)


def eye(n: int, m: int | None = None, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return _new(np.eye(n, m, dtype=_creation_dtype(dtype)), device, requires_grad)


def rand(*shape, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Uniform [0, 1) from the global generator (``manual_seed``)."""
    arr = get_generator().random(_shape_arg(shape)).astype(_creation_dtype(dtype))
    return _new(arr, device, requires_grad)


def randn(*shape, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Standard normal from the global generator (``manual_seed``)."""
    arr = get_generator().standard_normal(_shape_arg(shape)).astype(_creation_dtype(dtype))
    return _new(arr, device, requires_grad)


def randint(low: int, high: int | None = None, size=(), dtype=None, device=None) -> Tensor:
    if high is None:
        low, high = 0, low
    arr = get_generator().integers(low, high, size=tuple(size)).astype(to_dtype(dtype or np.int64))
    return _new(arr, device, False)


def randperm(n: int, dtype=None, device=None) -> Tensor:
    return _new(get_generator().permutation(n).astype(to_dtype(dtype or np.int64)), device, False)


def _like(fn, t: Tensor, dtype, device, requires_grad, *args):
    return fn(*args, t.shape, dtype=dtype or t.dtype, device=device or t.device, requires_grad=requires_grad)


def zeros_like(t: Tensor, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return _like(zeros, t, dtype, device, requires_grad)


def ones_like(t: Tensor, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return _like(ones, t, dtype, device, requires_grad)


def full_like(t: Tensor, fill_value: float, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return full(t.shape, fill_value, dtype=dtype or t.dtype, device=device or t.device,
                requires_grad=requires_grad)


def empty_like(t: Tensor, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return _like(empty, t, dtype, device, requires_grad)


def rand_like(t: Tensor, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return _like(rand, t, dtype, device, requires_grad)


def randn_like(t: Tensor, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return _like(randn, t, dtype, device, requires_grad)
