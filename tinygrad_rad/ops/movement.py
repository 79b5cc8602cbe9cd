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


def legacy_empty(shape) -> bool:
    """A 1-D tensor of size 0, which ``cat`` skips whatever the other shapes (PyTorch's legacy rule)."""
    return tuple(shape) == (0,)


class Cat(Function):
    def forward(self, *arrays, dim):
        self.dim = dim
        self.skip = [legacy_empty(a.shape) for a in arrays]  # NOTE: (0,) tensors are left out
        if all(self.skip):
            self.skip = [False] * len(arrays)
        self.sizes = [a.shape[dim] if not sk else 0 for a, sk in zip(arrays, self.skip)]
        kept = [a for a, sk in zip(arrays, self.skip) if not sk]
        return xp_of(arrays[0]).concatenate(kept, axis=dim)

    def backward(self, g):
        # cat only places inputs side by side: cut the gradient into the same pieces
        out, start = [], 0
        for n, sk in zip(self.sizes, self.skip):
            if sk:
                out.append(xp_of(g).zeros((0,), dtype=g.dtype))
                continue
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


class Roll(Function):
    def forward(self, a, shifts: tuple, dims: tuple):
        self.shifts, self.dims = shifts, dims
        return xp_of(a).roll(a, shifts, axis=dims)

    def backward(self, g):
        # rolling moves values: roll the gradient back by -shifts
        return (xp_of(g).roll(g, tuple(-s for s in self.shifts), axis=self.dims),)


# ----------------------------------------------------------------- gather / scatter along a dim
def along(index, dim: int) -> tuple:
    """The full NumPy index of ``t[.., index[i, j, k], ..]`` (``index`` in dim ``dim``, the position in
    every other dim): ``out[i][j][k] = t[i][index[i][j][k]][k]`` for dim 1, as in ``torch.gather``."""
    xp = xp_of(index)
    nd = index.ndim
    return tuple(index if d == dim else xp.arange(index.shape[d]).reshape((-1,) + (1,) * (nd - d - 1))
                 for d in range(nd))


def scatter_add_into(out, idx: tuple, src) -> None:
    """``out[idx] += src`` where ``idx`` may name an element several times (each copy counts)."""
    if xp_of(out) is np:
        np.add.at(out, idx, src)
    else:  # pragma: no cover - GPU only
        import cupyx

        cupyx.scatter_add(out, idx, src)


def _ufunc_at(name: str, out, idx: tuple, src) -> None:
    if xp_of(out) is np:
        getattr(np, name).at(out, idx, src)
    else:  # pragma: no cover - GPU only
        import cupyx

        if name == "multiply":
            raise NotImplementedError("scatter_reduce(reduce='prod') is not implemented on a GPU")
        fn = {"add": cupyx.scatter_add, "maximum": cupyx.scatter_max, "minimum": cupyx.scatter_min}[name]
        fn(out, idx, src)


def _first(src, shape) -> tuple:
    """The leading ``shape`` block of ``src`` (scatter uses only src[:index.shape])."""
    return tuple(slice(0, s) for s in shape)


class Gather(Function):
    def forward(self, a, index, dim):
        self.shape, self.idx = a.shape, along(index, dim)
        return a[self.idx]

    def backward(self, g):
        # out[i] = a[idx(i)]  =>  da[idx(i)] += g[i] (an element gathered twice gets both gradients)
        out = xp_of(g).zeros(self.shape, dtype=g.dtype)
        scatter_add_into(out, self.idx, g)
        return (out,)


class Scatter(Function):
    """``out = a`` with ``out[idx(i)] = src[i]`` (one src value per position; PyTorch leaves the winner
    among duplicate indices unspecified)."""

    def forward(self, a, src, index, dim):
        self.idx, self.src_shape, self.block = along(index, dim), src.shape, _first(src, index.shape)
        out = a.copy()
        out[self.idx] = src[self.block]
        return out

    def backward(self, g):
        # the overwritten positions of a get no gradient; src[i] gets the gradient of where it landed
        ga = gs = None
        if self.needs_input_grad[0]:
            ga = g.copy()
            ga[self.idx] = 0
        if self.needs_input_grad[1]:
            gs = xp_of(g).zeros(self.src_shape, dtype=g.dtype)
            gs[self.block] = g[self.idx]
        return ga, gs


class ScatterReduce(Function):
    """``scatter_reduce(a, dim, index, src, reduce, include_self)``: reduce each position of ``a`` with
    the src values scattered to it ('sum', 'prod', 'mean', 'amax', 'amin'); ``scatter_add`` is 'sum'."""

    def forward(self, a, src, index, dim, reduce, include_self=True):
        xp = xp_of(a)
        idx, block = along(index, dim), _first(src, index.shape)
        s = src[block]
        count = xp.zeros(a.shape, dtype=np.int64)
        scatter_add_into(count, idx, xp.ones(s.shape, dtype=np.int64))
        hit = count > 0
        self.idx, self.block, self.src_shape, self.hit = idx, block, src.shape, hit
        self.reduce, self.include_self = reduce, include_self
        if reduce in ("sum", "mean"):
            out = a.copy() if include_self else xp.where(hit, xp.zeros((), a.dtype), a)
            scatter_add_into(out, idx, s)
            if reduce == "mean":
                self.denom = xp.maximum(count + int(include_self), 1)
                if a.dtype.kind == "f":
                    out = xp.where(hit, out / self.denom.astype(a.dtype), out)
                else:  # NOTE: integer means round down, as in PyTorch
                    out = xp.where(hit, xp.floor_divide(out, self.denom).astype(a.dtype), out)
            return out
        if reduce == "prod":
            out = a.copy() if include_self else xp.where(hit, xp.ones((), a.dtype), a)
            _ufunc_at("multiply", out, idx, s)
            self.a, self.s = a, s
            return out
        # amax / amin
        if a.dtype.kind == "f":
            init = -np.inf if reduce == "amax" else np.inf
        elif a.dtype.kind == "b":
            init = reduce != "amax"
        else:
            init = np.iinfo(a.dtype).min if reduce == "amax" else np.iinfo(a.dtype).max
        out = a.copy() if include_self else xp.where(hit, xp.asarray(init, dtype=a.dtype), a)
        _ufunc_at("maximum" if reduce == "amax" else "minimum", out, idx, s)
        self.a, self.s, self.out = a, s, out
        return out

    def backward(self, g):
        xp = xp_of(g)
        idx, hit, inc = self.idx, self.hit, self.include_self
        zero = xp.zeros((), dtype=g.dtype)
        if self.reduce == "sum":
            # out = a + sum of its src values  =>  da = g (0 where a is excluded), dsrc_i = g[idx(i)]
            ga, gsrc = (g if inc else xp.where(hit, zero, g)), g[idx]
        elif self.reduce == "mean":
            # out = (a + sum src) / count  =>  da = g / count, dsrc_i = (g / count)[idx(i)]
            gd = xp.where(hit, g / self.denom.astype(g.dtype), g)
            ga, gsrc = (gd if inc else xp.where(hit, zero, g)), gd[idx]
        elif self.reduce == "prod":
            # d out/dv = the product of the other values reduced into v's position (exact at zeros:
            # from the count of zeros and the product of the non-zero values of each position)
            a, s = self.a, self.s
            one = xp.ones((), dtype=a.dtype)
            nz = (a == 0).astype(np.int64) if inc else xp.zeros(a.shape, dtype=np.int64)
            scatter_add_into(nz, idx, (s == 0).astype(np.int64))
            pnz = xp.where(a == 0, one, a) if inc else xp.ones_like(a)
            _ufunc_at("multiply", pnz, idx, xp.where(s == 0, one, s))

            def others(v, nz_v, p_v):
                with np.errstate(divide="ignore", invalid="ignore"):
                    nonzero = xp.where(nz_v == 0, p_v / xp.where(v == 0, one, v), zero)
                return xp.where(v == 0, xp.where(nz_v == 1, p_v, zero), nonzero)

            ga = g * others(a, nz, pnz) if inc else xp.where(hit, zero, g)
            gsrc = g[idx] * others(s, nz[idx], pnz[idx])
        else:
            # amax / amin: the gradient goes to the values equal to the result, split evenly among ties
            a, s, out = self.a, self.s, self.out
            self_is = (a == out) if inc else ~hit  # excluded a: only where nothing was scattered
            src_is = s == out[idx]
            n = self_is.astype(g.dtype)
            scatter_add_into(n, idx, src_is.astype(g.dtype))
            gd = g / xp.maximum(n, 1)
            ga, gsrc = gd * self_is, gd[idx] * src_is
        gs = None
        if self.needs_input_grad[1]:
            gs = xp.zeros(self.src_shape, dtype=g.dtype)
            gs[self.block] = gsrc
        return (ga if self.needs_input_grad[0] else None), gs
