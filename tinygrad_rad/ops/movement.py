"""Movement ops: reshape, permute, expand, indexing (``getitem``), concatenation, padding.

They move values without computing new ones, so each backward moves the gradient back: reshape it,
permute it with the inverse order, sum broadcast copies, scatter it into zeros, cut it into pieces.
"""

from __future__ import annotations

import numpy as np

from ..autograd import Function
from ..device import to_device, xp_of
from .elementwise import unbroadcast


class Reshape(Function):
    view = True  # the output may share the input's memory (and so its version counter)

    def forward(self, a, shape):
        self.in_shape = a.shape
        return a.reshape(shape)

    def backward(self, g):
        # reshape moves no values: reshape the gradient back
        return (g.reshape(self.in_shape),)


class Permute(Function):
    view = True  # the output may share the input's memory (and so its version counter)

    def forward(self, a, order):
        self.order = order
        return a.transpose(order)

    def backward(self, g):
        # undo the permutation with its inverse
        return (g.transpose(np.argsort(self.order)),)


class Expand(Function):
    view = True  # the output may share the input's memory (and so its version counter)

    def forward(self, a, shape):
        self.in_shape = a.shape
        return xp_of(a).broadcast_to(a, shape)

    def backward(self, g):
        # each input element was copied: sum the copies' gradients
        return (unbroadcast(g, self.in_shape),)


def _is_basic_index(index: tuple) -> bool:
    return all(isinstance(i, (int, slice, type(None), type(Ellipsis))) for i in index)


class GetItem(Function):
    view = True  # the output may share the input's memory (and so its version counter)

    def forward(self, a, index):
        self.in_shape, self.index, self.dtype = a.shape, index, a.dtype
        try:
            return a[index]
        except IndexError as e:
            raise IndexError(
                f"index {index!r} is invalid for a tensor of shape {tuple(a.shape)}: {e}"
            ) from None

    def backward(self, g):
        xp = xp_of(g)
        out = xp.zeros(self.in_shape, dtype=g.dtype)
        if _is_basic_index(self.index):
            out[self.index] = g  # a view: each element selected once
        else:
            # integer arrays may select an element twice: scatter-add so both gradients count
            if xp is np:
                np.add.at(out, self.index, g)
            else:  # pragma: no cover - GPU only
                import cupyx

                cupyx.scatter_add(out, self.index, g)
        return (out,)


def getitem(t, index):
    """``t[index]`` with ints, slices (any step), None, Ellipsis, integer arrays and boolean masks."""
    index = normalize_index(t, index)
    if any(isinstance(i, int) for i in index) and any(hasattr(i, "shape") for i in index):
        # NOTE: PyTorch applies integers first (as select), NumPy treats them as advanced indices, which
        # moves the array dims elsewhere (x[0, :, [1, 2]] is (2, d1) in NumPy, (d1, 2) in PyTorch):
        # index with the ints (and slices) first, then with the arrays
        first, second = [], []
        for i in index:
            if isinstance(i, int):
                first.append(i)
            elif hasattr(i, "shape"):
                first.extend([slice(None)] * (i.ndim if i.dtype == bool else 1))
                second.append(i)
            elif i is None or i is Ellipsis:
                first.append(i)
                second.append(slice(None) if i is None else i)
            else:
                first.append(i)
                second.append(slice(None))
        return GetItem.apply(GetItem.apply(t, index=tuple(first)), index=tuple(second))
    return GetItem.apply(t, index=index)


def normalize_index(t, index) -> tuple:
    """``index`` as a tuple NumPy/CuPy understands: Tensors and lists become arrays on ``t``'s device."""
    if not isinstance(index, tuple):
        index = (index,)
    norm = []
    for i in index:
        if hasattr(type(i), "_wrap"):  # a Tensor (duck-typed: ops never import tensor.py)
            i = i.data
        elif isinstance(i, (list, tuple, np.ndarray)):  # NOTE: a tuple inside the index is an index array
            i = np.asarray(i)
        if hasattr(i, "dtype") and hasattr(i, "shape") and not isinstance(i, np.generic):
            if i.dtype.kind == "f":
                raise IndexError(f"tensors used as indices must be integer or boolean, got {i.dtype}")
            if t.device != "cpu" or xp_of(i) is not np:
                i = to_device(i, t.device)
        elif isinstance(i, np.integer):
            i = int(i)
        norm.append(i)
    return tuple(norm)


class Cat(Function):
    def forward(self, *arrays, dim):
        self.dim = dim
        self.sizes = [a.shape[dim] for a in arrays]
        return xp_of(arrays[0]).concatenate(arrays, axis=dim)

    def backward(self, g):
        # cat only places inputs side by side: cut the gradient into the same pieces
        out, start = [], 0
        for n in self.sizes:
            idx = (slice(None),) * self.dim + (slice(start, start + n),)
            out.append(g[idx])
            start += n
        return tuple(out)


class Pad(Function):
    def forward(self, a, widths, value=0.0):
        self.widths = widths
        return xp_of(a).pad(a, widths, mode="constant", constant_values=value)

    def backward(self, g):
        # padding adds constants: the gradient of the input is the un-padded middle
        idx = tuple(slice(lo, g.shape[i] - hi) for i, (lo, hi) in enumerate(self.widths))
        return (g[idx],)


def _pad_source(n: int, lo: int, hi: int, mode: str) -> np.ndarray:
    """For each output position of a padded axis, the input position it copies (non-constant modes)."""
    i = np.arange(-lo, n + hi)
    if mode == "reflect":  # mirror without repeating the edge: -1 -> 1, n -> n - 2
        period = 2 * (n - 1)
        i = np.abs(i) % period if period else np.zeros_like(i)
        return np.where(i >= n, period - i, i)
    if mode == "replicate":
        return np.clip(i, 0, n - 1)
    return i % n  # circular


def pad(t, pad, mode: str = "constant", value: float = 0.0):
    """``F.pad`` with PyTorch's ordering: ``pad=(left, right, top, bottom, ...)`` from the last dim back.

    ``mode``: 'constant' (fill with ``value``), 'reflect', 'replicate' or 'circular'. The last three
    gather input elements with an index array, so their backward is GetItem's scatter-add.
    """
    if mode not in ("constant", "reflect", "replicate", "circular"):
        raise NotImplementedError(
            f"pad: mode must be 'constant', 'reflect', 'replicate' or 'circular', got {mode!r}"
        )
    pad = tuple(int(p) for p in pad)
    if len(pad) % 2 or len(pad) // 2 > t.ndim:
        raise ValueError(f"pad: {pad} must hold (before, after) pairs for at most {t.ndim} dims")
    if any(p < 0 for p in pad):
        raise ValueError(f"pad: negative padding {pad} is not supported")
    widths = [(0, 0)] * t.ndim
    for i in range(len(pad) // 2):
        widths[t.ndim - 1 - i] = (pad[2 * i], pad[2 * i + 1])
    if mode == "constant":
        return Pad.apply(t, widths=tuple(widths), value=value)
    out = t
    for d, (lo, hi) in enumerate(widths):
        if lo == 0 and hi == 0:
            continue
        n = t.shape[d]
        limit = n - 1 if mode == "reflect" else n
        if mode != "replicate" and max(lo, hi) > limit:
            raise ValueError(
                f"pad: {mode} padding ({lo}, {hi}) of dim {d} must be at most {limit} for a size of {n} "
                f"(input shape {t.shape})"
            )
        if n == 0:
            raise ValueError(f"pad: cannot {mode}-pad the empty dim {d} of shape {t.shape}")
        idx = _pad_source(n, lo, hi, mode)
        out = out[(slice(None),) * d + (idx,)]
    return out
