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
from .tensor import Tensor, array_from
from .tensor_methods import shape_arg


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
    arr = np.array(array_from(data, dtype), copy=True)
    return Tensor(arr, requires_grad=requires_grad, dtype=dtype, device=device)


def from_numpy(arr: np.ndarray) -> Tensor:
    """Wrap a NumPy array (no copy), keeping its dtype."""
    check_dtype(arr.dtype)
    return Tensor._wrap(arr, device="cpu")


def zeros(*shape, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return _new(np.zeros(shape_arg(shape), dtype=_creation_dtype(dtype)), device, requires_grad)


def ones(*shape, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return _new(np.ones(shape_arg(shape), dtype=_creation_dtype(dtype)), device, requires_grad)


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
    t = Tensor._wrap(xp_for(dev).empty(shape_arg(shape), dtype=_creation_dtype(dtype)), device=dev)
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
    arr = get_generator().random(shape_arg(shape)).astype(_creation_dtype(dtype))
    return _new(arr, device, requires_grad)


def randn(*shape, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Standard normal from the global generator (``manual_seed``)."""
    arr = get_generator().standard_normal(shape_arg(shape)).astype(_creation_dtype(dtype))
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


def logspace(start: float, end: float, steps: int, base: float = 10.0, dtype=None, device=None,
             requires_grad: bool = False) -> Tensor:
    """``base ** linspace(start, end, steps)``."""
    dt = _creation_dtype(dtype)
    arr = np.logspace(start, end, steps, base=base)
    return _new(arr.astype(dt) if dt.kind == "f" else np.trunc(arr).astype(dt), device, requires_grad)


def randint_like(t: Tensor, low: int = 0, high: int | None = None, dtype=None, device=None) -> Tensor:
    """``randint_like(x, 10)`` or ``randint_like(x, low, high)``: integers of x's shape (and dtype)."""
    if high is None:
        low, high = 0, low
    arr = get_generator().integers(low, high, size=t.shape).astype(to_dtype(dtype or t.dtype))
    return _new(arr, device or t.device, False)


def normal(mean, std=1.0, size=None, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Normal samples: ``normal(0.0, 1.0, size=(2, 3))``, or elementwise with tensor ``mean`` / ``std``."""
    m = mean.numpy() if isinstance(mean, Tensor) else np.asarray(mean, dtype=np.float64)
    s = std.numpy() if isinstance(std, Tensor) else np.asarray(std, dtype=np.float64)
    shape = tuple(size) if size is not None else np.broadcast_shapes(m.shape, s.shape)
    if builtins.bool((s < 0).any()):
        raise ValueError(f"normal expects std >= 0.0, but found std {s.min()}")
    like = mean if isinstance(mean, Tensor) else std if isinstance(std, Tensor) else None
    dt = to_dtype(dtype) if dtype is not None else like.dtype if like is not None else DEFAULT_FLOAT
    arr = (m + s * get_generator().standard_normal(shape)).astype(dt)
    return _new(arr, device or (like.device if like is not None else None), requires_grad)


def bernoulli(input: Tensor, p: float | None = None) -> Tensor:  # noqa: A002
    """1 with probability ``input`` (or ``p``) elementwise, else 0; input's shape and dtype."""
    probs = input.numpy() if p is None else np.full(input.shape, p)
    if probs.size and (probs.min() < 0 or probs.max() > 1):
        raise ValueError("bernoulli: all elements of input must be between 0 and 1")
    arr = (get_generator().random(input.shape) < probs).astype(input.dtype)
    return _new(arr, input.device, False)


def multinomial(input: Tensor, num_samples: int, replacement: bool = False) -> Tensor:  # noqa: A002
    """``num_samples`` category indices per row drawn with probabilities proportional to ``input``."""
    w = np.asarray(input.numpy(), dtype=np.float64)
    rows = w.reshape(-1, w.shape[-1]) if w.ndim else None
    if rows is None or w.ndim > 2:
        raise ValueError(f"multinomial: prob_dist must be 1 or 2 dim, got shape {input.shape}")
    if (rows < 0).any() or not np.isfinite(rows).all():
        raise ValueError("multinomial: probability tensor contains either inf, nan or element < 0")
    rng, out = get_generator(), []
    for r in rows:
        if r.sum() <= 0:
            raise ValueError("multinomial: invalid multinomial distribution (sum of probabilities <= 0)")
        if not replacement and num_samples > np.count_nonzero(r):
            raise ValueError(
                "multinomial: cannot sample n_sample > prob_dist.size(-1) samples without replacement")
        out.append(rng.choice(len(r), size=num_samples, replace=replacement, p=r / r.sum()))
    res = np.stack(out).astype(np.int64)
    return _new(res.reshape(w.shape[:-1] + (num_samples,)), input.device, False)
