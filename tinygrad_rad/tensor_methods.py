"""The PyTorch-style method surface of ``Tensor``: arithmetic, comparisons, unary functions,
reductions, movement and indexing, plus the multi-tensor functions (``cat``, ``stack``, ``split``,
``where``). Each method checks its arguments and calls one op of :mod:`tinygrad_rad.ops`.

:class:`TensorMethods` is mixed into :class:`tinygrad_rad.tensor.Tensor`; it holds no state of its
own and never imports tensor.py (results come from ``self._wrap``, so there is no import cycle).

    >>> y = (x @ w).relu().sum(dim=1)   # MatMul, Relu, Sum: three ops, three graph nodes
"""

from __future__ import annotations

import builtins
from collections import namedtuple
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from . import ops
from .autograd import is_grad_enabled
from .device import canonical_device, to_device, xp_for
from .dtypes import DEFAULT_FLOAT, check_dtype, is_floating, to_dtype

if TYPE_CHECKING:  # pragma: no cover
    from .tensor import Tensor

MaxMin = namedtuple("MaxMin", ["values", "indices"])


def _shape_arg(shape) -> tuple:
    """Accept ``f(2, 3)``, ``f((2, 3))`` and ``f([2, 3])``."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return tuple(int(s) for s in shape)


def _dims(dim, ndim: int) -> tuple | None:
    """Normalise ``dim`` (None, int or tuple of ints, negatives allowed) to a sorted tuple."""
    if dim is None:
        return None
    if isinstance(dim, (list, tuple)):
        dims = dim
    else:
        dims = (dim,)
    out = []
    for d in dims:
        d = int(d)
        if not -max(ndim, 1) <= d < max(ndim, 1):
            raise IndexError(f"dim {d} is out of range for a tensor with {ndim} dimensions")
        out.append(d % max(ndim, 1))
    if len(set(out)) != len(out):
        raise ValueError(f"dim {dim} repeats a dimension")
    return tuple(sorted(out))


class TensorMethods:
    """The methods of ``Tensor`` that build ops (see the module docstring)."""

    __slots__ = ()

    # ---------------------------------------------------------------------------- conversion
    def clone(self) -> Tensor:
        return ops.Copy.apply(self)

    def to(self, device=None, dtype=None) -> Tensor:
        """``t.to("cuda")``, ``t.to(float64)`` or both. Differentiable across devices and dtypes."""
        if dtype is None and device is not None and _is_dtype_like(device):
            device, dtype = None, device  # t.to(tinygrad_rad.float64), t.to("float64"), t.to(np.float32)
        out = self
        if device is not None:
            dev = canonical_device(device)
            if dev != out.device:
                out = ops.ToDevice.apply(out, device=dev)
        if dtype is not None:
            dt = to_dtype(dtype)
            if dt != out.dtype:
                out = ops.Cast.apply(out, dtype=dt)
        return out

    def cpu(self) -> Tensor:
        return self.to("cpu")

    def cuda(self) -> Tensor:
        return self.to("cuda")

    def float(self) -> Tensor:
        return self.to(dtype=np.float32)

    def double(self) -> Tensor:
        return self.to(dtype=np.float64)

    def long(self) -> Tensor:
        return self._wrap(self.data.astype(np.int64), device=self.device)

    def int(self) -> Tensor:
        return self._wrap(self.data.astype(np.int32), device=self.device)

    def bool(self) -> Tensor:
        return self._wrap(self.data.astype(np.bool_), device=self.device)

    def type(self, dtype) -> Tensor:
        dt = to_dtype(dtype)
        if is_floating(dt):
            return self.to(dtype=dt)
        return self._wrap(self.data.astype(dt), device=self.device)

    # --------------------------------------------------------------------- binary arithmetic
    def _other(self, x) -> Tensor:
        if isinstance(x, TensorMethods):
            return x
        arr = np.asarray(x)
        if arr.dtype.kind in "fc" or (arr.dtype.kind in "iub" and is_floating(self.dtype)):
            dt = self.dtype if is_floating(self.dtype) else DEFAULT_FLOAT
            if arr.ndim == 0:
                return self._wrap(xp_for(self.device).asarray(arr, dtype=dt), device=self.device)
            return self._constant(arr.astype(dt))
        return self._constant(arr)

    def _constant(self, arr) -> Tensor:
        """An array (NumPy or CuPy) as a constant tensor on self's device (what ``Tensor(arr, device=...)``
        gives for an array)."""
        if not type(arr).__module__.startswith("cupy"):
            arr = np.asarray(arr)
        check_dtype(arr.dtype)
        return self._wrap(to_device(arr, self.device), device=self.device)

    def _binary(self, fn, other, reverse: bool = False, true_div: bool = False) -> Tensor:
        o = self._other(other)
        a, b = (o, self) if reverse else (self, o)
        a, b = _promote(a, b, true_div)
        return fn.apply(a, b)

    def add(self, other) -> Tensor:
        return self._binary(ops.Add, other)

    def sub(self, other) -> Tensor:
        return self._binary(ops.Sub, other)

    def mul(self, other) -> Tensor:
        return self._binary(ops.Mul, other)

    def div(self, other) -> Tensor:
        return self._binary(ops.Div, other, true_div=True)

    def pow(self, exponent) -> Tensor:
        if isinstance(exponent, TensorMethods):
            return self._binary(ops.Pow, exponent)
        base = self
        if not is_floating(self.dtype) and (float(exponent) != int(exponent) or exponent < 0):
            base = self.to(dtype=DEFAULT_FLOAT)  # NOTE: int ** 0.5 / int ** -1 give floats, as in PyTorch
        return ops.PowScalar.apply(base, exponent=float(exponent))

    __add__ = add
    __sub__ = sub
    __mul__ = mul
    __truediv__ = div
    __pow__ = pow

    def __radd__(self, other) -> Tensor:
        return self._binary(ops.Add, other, reverse=True)

    def __rsub__(self, other) -> Tensor:
        return self._binary(ops.Sub, other, reverse=True)

    def __rmul__(self, other) -> Tensor:
        return self._binary(ops.Mul, other, reverse=True)

    def __rtruediv__(self, other) -> Tensor:
        return self._binary(ops.Div, other, reverse=True, true_div=True)

    def __rpow__(self, other) -> Tensor:
        return self._binary(ops.Pow, other, reverse=True)

    def __neg__(self) -> Tensor:
        return ops.Neg.apply(self)

    def neg(self) -> Tensor:
        return ops.Neg.apply(self)

    def matmul(self, other) -> Tensor:
        return ops.matmul(self, self._other(other))

    __matmul__ = matmul

    def __rmatmul__(self, other) -> Tensor:
        return ops.matmul(self._other(other), self)

    def maximum(self, other) -> Tensor:
        return self._binary(ops.Maximum, other)

    def minimum(self, other) -> Tensor:
        return self._binary(ops.Minimum, other)

    # comparisons: no gradient, boolean result
    def _cmp(self, other, fn) -> Tensor:
        o = other.data if isinstance(other, TensorMethods) else other
        try:
            res = fn(self.data, o)
        except ValueError as e:
            oshape = other.shape if isinstance(other, TensorMethods) else np.shape(other)
            raise ValueError(f"comparison: shapes {self.shape} and {tuple(oshape)} do not broadcast") from e
        return self._wrap(res, device=self.device)

    def __eq__(self, other) -> Tensor:  # type: ignore[override]
        return self._cmp(other, lambda a, b: a == b)

    def __ne__(self, other) -> Tensor:  # type: ignore[override]
        return self._cmp(other, lambda a, b: a != b)

    def __lt__(self, other) -> Tensor:
        return self._cmp(other, lambda a, b: a < b)

    def __le__(self, other) -> Tensor:
        return self._cmp(other, lambda a, b: a <= b)

    def __gt__(self, other) -> Tensor:
        return self._cmp(other, lambda a, b: a > b)

    def __ge__(self, other) -> Tensor:
        return self._cmp(other, lambda a, b: a >= b)

    eq, ne, lt, le, gt, ge = __eq__, __ne__, __lt__, __le__, __gt__, __ge__

    def __invert__(self) -> Tensor:
        return self._wrap(~self.data, device=self.device)

    def __and__(self, other) -> Tensor:
        return self._cmp(other, lambda a, b: a & b)

    def __or__(self, other) -> Tensor:
        return self._cmp(other, lambda a, b: a | b)

    def logical_not(self) -> Tensor:
        return self._wrap(~self.data.astype(np.bool_), device=self.device)

    # ----------------------------------------------------------------------- unary functions
    def exp(self) -> Tensor:
        return ops.Exp.apply(self)

    def log(self) -> Tensor:
        return ops.Log.apply(self)

    def sqrt(self) -> Tensor:
        return ops.Sqrt.apply(self)

    def rsqrt(self) -> Tensor:
        return ops.PowScalar.apply(self, exponent=-0.5)

    def abs(self) -> Tensor:
        return ops.Abs.apply(self)

    def sin(self) -> Tensor:
        return ops.Sin.apply(self)

    def cos(self) -> Tensor:
        return ops.Cos.apply(self)

    def log1p(self) -> Tensor:
        return ops.Log1p.apply(self)

    def expm1(self) -> Tensor:
        return ops.Expm1.apply(self)

    def floor(self) -> Tensor:
        """No gradient (zero almost everywhere), like PyTorch's."""
        return self._wrap(_xp(self).floor(self.data), device=self.device)

    def ceil(self) -> Tensor:
        return self._wrap(_xp(self).ceil(self.data), device=self.device)

    def round(self) -> Tensor:
        return self._wrap(_xp(self).round(self.data), device=self.device)

    def square(self) -> Tensor:
        return ops.PowScalar.apply(self, exponent=2.0)

    def reciprocal(self) -> Tensor:
        return ops.PowScalar.apply(self, exponent=-1.0)

    def sign(self) -> Tensor:
        return self._wrap(_xp(self).sign(self.data), device=self.device)

    def clamp(self, min=None, max=None) -> Tensor:
        if min is None and max is None:
            raise ValueError("clamp: at least one of min and max must be given")
        return ops.Clamp.apply(self, min=min, max=max)

    clip = clamp

    def relu(self) -> Tensor:
        return ops.Relu.apply(self)

    def leaky_relu(self, negative_slope: float = 0.01) -> Tensor:
        return ops.LeakyRelu.apply(self, negative_slope=float(negative_slope))

    def elu(self, alpha: float = 1.0) -> Tensor:
        return ops.Elu.apply(self, alpha=float(alpha))

    def sigmoid(self) -> Tensor:
        return ops.Sigmoid.apply(self)

    def tanh(self) -> Tensor:
        return ops.Tanh.apply(self)

    def gelu(self, approximate: str = "none") -> Tensor:
        return ops.Gelu.apply(self, approximate=approximate)

    def softplus(self, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
        return ops.Softplus.apply(self, beta=float(beta), threshold=float(threshold))

    # ----------------------------------------------------------------------------- reductions
    # NOTE: ``axis=`` is accepted as an alias of ``dim=`` (as in PyTorch and NumPy). A 0-d tensor may be
    # reduced over dim 0 or -1 (PyTorch allows it): it is reduced as the 1-element tensor it is, and the
    # result is 0-d again.
    def sum(self, dim=None, keepdim: bool = False, dtype=None, *, axis=None) -> Tensor:
        dim = _alias("sum", dim, axis)
        if self.ndim == 0 and dim is not None:
            return self._as_1d(dim).sum(0, dtype=dtype)
        out = ops.Sum.apply(self, dim=_dims(dim, self.ndim), keepdim=keepdim)
        return out.to(dtype=dtype) if dtype is not None else out

    def mean(self, dim=None, keepdim: bool = False, *, axis=None) -> Tensor:
        dim = _alias("mean", dim, axis)
        if not is_floating(self.dtype):
            raise TypeError(f"mean() needs a floating-point tensor, got dtype {self.dtype}")
        if self.ndim == 0 and dim is not None:
            return self._as_1d(dim).mean(0)
        dims = _dims(dim, self.ndim)
        n = self.data.size if dims is None else int(np.prod([self.shape[d] for d in dims]))
        return ops.Sum.apply(self, dim=dims, keepdim=keepdim) * (1.0 / builtins.max(n, 1))

    def var(self, dim=None, unbiased: bool | None = None, keepdim: bool = False, *,
            correction=None, axis=None) -> Tensor:
        """Variance; ``correction=1`` (or ``unbiased=True``, the default) divides by N-1."""
        dim = _alias("var", dim, axis)
        if correction is None:
            correction = 1 if unbiased is None or unbiased else 0
        if self.ndim == 0 and dim is not None:
            return self._as_1d(dim).var(0, correction=correction)
        dims = _dims(dim, self.ndim)
        n = self.data.size if dims is None else int(np.prod([self.shape[d] for d in dims]))
        mu = self.mean(dim=dims, keepdim=True)
        d = self - mu
        return (d * d).sum(dim=dims, keepdim=keepdim) * (1.0 / builtins.max(n - correction, 1e-300))

    def std(self, dim=None, unbiased: bool | None = None, keepdim: bool = False, *,
            correction=None, axis=None) -> Tensor:
        dim = _alias("std", dim, axis)
        return self.var(dim=dim, unbiased=unbiased, keepdim=keepdim, correction=correction).sqrt()

    def norm(self, p=2, dim=None, keepdim: bool = False) -> Tensor:
        """Vector p-norm over ``dim`` (all elements by default): ``(sum |x|^p)^(1/p)``; p=2 is sqrt(sum x^2).

        NOTE: like PyTorch's, the 2-norm's gradient x / ||x|| is nan at x = 0."""
        if p in (2, "fro"):
            return (self * self).sum(dim, keepdim=keepdim).sqrt()
        if p == 1:
            return self.abs().sum(dim, keepdim=keepdim)
        if p == float("inf"):
            return self.abs().amax(dim, keepdim=keepdim)
        return (self.abs() ** p).sum(dim, keepdim=keepdim) ** (1.0 / p)

    def cumsum(self, dim: int) -> Tensor:
        if self.ndim == 0:
            return self._as_1d(dim).cumsum(0).reshape(())
        return ops.CumSum.apply(self, dim=_dims(dim, self.ndim)[0])

    def _maxmin(self, fn, dim, keepdim):
        if dim is None:
            return fn.apply(self, dim=None, keepdim=False)
        if isinstance(dim, (tuple, list)):
            raise TypeError(f"max/min(dim) takes one int dim, got {dim!r}; use amax/amin for several dims")
        if self.ndim == 0:
            return MaxMin(*self._as_1d(dim)._maxmin(fn, 0, False))
        dims = _dims(dim, self.ndim)
        values = fn.apply(self, dim=dims, keepdim=keepdim, first=True)
        arg = self.argmax if fn is ops.Max else self.argmin
        return MaxMin(values, arg(dim=dims[0], keepdim=keepdim))

    def max(self, dim: int | None = None, keepdim: bool = False, *, axis=None):
        """``t.max()`` -> a scalar tensor; ``t.max(dim)`` -> ``(values, indices)`` like PyTorch.

        (To take the elementwise maximum of two tensors use ``maximum``.)"""
        dim = _alias("max", dim, axis)
        if isinstance(dim, TensorMethods):
            return self.maximum(dim)
        return self._maxmin(ops.Max, dim, keepdim)

    def min(self, dim: int | None = None, keepdim: bool = False, *, axis=None):
        dim = _alias("min", dim, axis)
        if isinstance(dim, TensorMethods):
            return self.minimum(dim)
        return self._maxmin(ops.Min, dim, keepdim)

    def amax(self, dim=None, keepdim: bool = False, *, axis=None) -> Tensor:
        dim = _alias("amax", dim, axis)
        if self.ndim == 0 and dim is not None:
            return self._as_1d(dim).amax(0)
        return ops.Max.apply(self, dim=_dims(dim, self.ndim), keepdim=keepdim)

    def amin(self, dim=None, keepdim: bool = False, *, axis=None) -> Tensor:
        dim = _alias("amin", dim, axis)
        if self.ndim == 0 and dim is not None:
            return self._as_1d(dim).amin(0)
        return ops.Min.apply(self, dim=_dims(dim, self.ndim), keepdim=keepdim)

    def argmax(self, dim: int | None = None, keepdim: bool = False, *, axis=None) -> Tensor:
        return self._arg(_xp(self).argmax, _alias("argmax", dim, axis), keepdim)

    def argmin(self, dim: int | None = None, keepdim: bool = False, *, axis=None) -> Tensor:
        return self._arg(_xp(self).argmin, _alias("argmin", dim, axis), keepdim)

    def _arg(self, fn, dim, keepdim) -> Tensor:
        if dim is None or self.ndim == 0:
            if self.ndim == 0 and dim is not None:
                _dims(dim, 0)  # 0 or -1
            res = fn(self.data.reshape(-1))
            if keepdim:
                res = res.reshape((1,) * self.ndim)
        else:
            d = _dims(dim, self.ndim)[0]
            res = fn(self.data, axis=d)
            if keepdim:
                res = _xp(self).expand_dims(res, d)
        return self._wrap(_xp(self).asarray(res, dtype=np.int64), device=self.device)

    def logsumexp(self, dim=None, keepdim: bool = False, *, axis=None) -> Tensor:
        dim = _alias("logsumexp", dim, axis)
        if dim is None:
            raise TypeError("logsumexp() missing the dim argument (an int or a tuple of ints)")
        if self.ndim == 0:
            return self._as_1d(dim).logsumexp(0)
        return ops.LogSumExp.apply(self, dim=_dims(dim, self.ndim), keepdim=keepdim)

    def softmax(self, dim: int) -> Tensor:
        if self.ndim == 0:
            return self._as_1d(dim).softmax(0).reshape(())
        return ops.Softmax.apply(self, dim=_dims(dim, self.ndim)[0])

    def log_softmax(self, dim: int) -> Tensor:
        if self.ndim == 0:
            return self._as_1d(dim).log_softmax(0).reshape(())
        return ops.LogSoftmax.apply(self, dim=_dims(dim, self.ndim)[0])

    def all(self, dim=None, keepdim: bool = False, *, axis=None) -> Tensor:
        return self._logical(_alias("all", dim, axis), keepdim, "all")

    def any(self, dim=None, keepdim: bool = False, *, axis=None) -> Tensor:
        return self._logical(_alias("any", dim, axis), keepdim, "any")

    def _logical(self, dim, keepdim, how) -> Tensor:
        dims = () if self.ndim == 0 and dim is not None and _dims(dim, 0) else _dims(dim, self.ndim)
        res = getattr(self.data.astype(np.bool_, copy=False), how)(axis=dims, keepdims=keepdim)
        return self._wrap(_xp(self).asarray(res), device=self.device)

    def _as_1d(self, dim) -> Tensor:
        """This 0-d tensor as shape (1,), for a reduction over its dim 0 / -1 (checked here)."""
        _dims(dim, 0)
        return self.reshape(1)

    # ------------------------------------------------------------------------------- movement
    @property
    def T(self) -> Tensor:
        return self.permute(*reversed(range(self.ndim)))

    def reshape(self, *shape) -> Tensor:
        shape = _shape_arg(shape)
        try:
            new = _infer_shape(self.shape, shape)
        except ValueError as e:
            raise ValueError(f"reshape: cannot reshape a tensor of shape {self.shape} into {shape}") from e
        if new == self.shape:
            return self
        return ops.Reshape.apply(self, shape=new)

    view = reshape

    def view_as(self, other: Tensor) -> Tensor:
        return self.reshape(other.shape)

    def reshape_as(self, other: Tensor) -> Tensor:
        return self.reshape(other.shape)

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> Tensor:
        if self.ndim == 0:
            return self.reshape(1)
        s, e = start_dim % self.ndim, end_dim % self.ndim
        if s > e:
            raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim}")
        shape = self.shape[:s] + (int(np.prod(self.shape[s : e + 1])),) + self.shape[e + 1 :]
        return self.reshape(shape)

    def unflatten(self, dim: int, sizes) -> Tensor:
        d = dim % self.ndim
        return self.reshape(self.shape[:d] + tuple(sizes) + self.shape[d + 1 :])

    def permute(self, *dims) -> Tensor:
        dims = _shape_arg(dims)
        if sorted(d % builtins.max(self.ndim, 1) for d in dims) != list(range(self.ndim)):
            raise ValueError(
                f"permute: {dims} is not a permutation of the {self.ndim} dims of shape {self.shape}"
            )
        dims = tuple(d % self.ndim for d in dims)
        if dims == tuple(range(self.ndim)):
            return self
        return ops.Permute.apply(self, order=dims)

    def transpose(self, dim0: int, dim1: int) -> Tensor:
        order = list(range(self.ndim))
        a, b = _dims(dim0, self.ndim)[0], _dims(dim1, self.ndim)[0]
        order[a], order[b] = order[b], order[a]
        return self.permute(*order)

    def t(self) -> Tensor:
        if self.ndim > 2:
            raise ValueError(f"t() expects a tensor with <= 2 dims, got shape {self.shape}")
        return self.T

    def expand(self, *shape) -> Tensor:
        shape = _shape_arg(shape)
        if len(shape) < self.ndim:
            raise ValueError(f"expand: target {shape} has fewer dims than shape {self.shape}")
        lead = len(shape) - self.ndim
        full = tuple(
            (self.shape[i - lead] if (s == -1 and i >= lead) else s) for i, s in enumerate(shape)
        )
        try:
            np.broadcast_shapes(self.shape, full)
            if np.broadcast_shapes(self.shape, full) != full:
                raise ValueError
        except ValueError as e:
            raise ValueError(f"expand: cannot expand shape {self.shape} to {shape}") from e
        if full == self.shape:
            return self
        return ops.Expand.apply(self, shape=full)

    def expand_as(self, other: Tensor) -> Tensor:
        return self.expand(other.shape)

    def squeeze(self, dim=None) -> Tensor:
        if dim is None:
            return self.reshape(tuple(s for s in self.shape if s != 1))
        dims = _dims(dim, self.ndim)
        return self.reshape(tuple(s for i, s in enumerate(self.shape) if not (i in dims and s == 1)))

    def unsqueeze(self, dim: int) -> Tensor:
        d = dim if dim >= 0 else dim + self.ndim + 1
        if not 0 <= d <= self.ndim:
            raise IndexError(f"unsqueeze: dim {dim} out of range for a tensor with {self.ndim} dims")
        return self.reshape(self.shape[:d] + (1,) + self.shape[d:])

    def __getitem__(self, index) -> Tensor:
        return ops.getitem(self, index)

    def __setitem__(self, index, value) -> None:
        """``t[index] = value`` in place, for tensors outside the graph (data prep, masks, metrics).

        NOTE: in-place writes to a tensor that requires grad (with grad enabled) or that an op produced
        are refused (use ``where``/``cat``); other writes bump the version counter, so a backward that
        needs the old values raises instead of computing wrong gradients.
        """
        if self._ctx is not None or (self.requires_grad and is_grad_enabled()):
            raise RuntimeError(
                f"in-place assignment t[...] = ... on a tensor of shape {self.shape} that is part of the "
                "autograd graph is not supported; build a new tensor with where()/cat(), or assign to "
                "a leaf under no_grad()"
            )
        v = value.data if isinstance(value, TensorMethods) else value
        if isinstance(value, TensorMethods) and value.device != self.device:
            raise RuntimeError(f"setitem: value is on {value.device!r} but the tensor is on {self.device!r}")
        if not getattr(self.data, "flags", None) or not self.data.flags.writeable:
            self.data = self.data.copy()  # e.g. the read-only result of expand()
            self._vc = [self._vc[0]]  # no longer a view: its own version counter from now on
        try:
            self.data[ops.normalize_index(self, index)] = v
            self._bump_version()
        except (ValueError, IndexError) as e:
            vshape = tuple(getattr(value, "shape", ()))
            raise type(e)(f"setitem: cannot assign a value of shape {vshape} to index {index!r} of a tensor "
                          f"of shape {self.shape}: {e}") from None

    def split(self, split_size_or_sections, dim: int = 0) -> tuple:
        return split(self, split_size_or_sections, dim)

    def chunk(self, chunks: int, dim: int = 0) -> tuple:
        return chunk(self, chunks, dim)

    def pad(self, pad, mode: str = "constant", value: float = 0.0) -> Tensor:
        return ops.pad(self, pad, mode=mode, value=value)

    def flip(self, *dims) -> Tensor:
        """Reverse the order along ``dims`` (a view with negative steps; backward flips back)."""
        d = _dims(_shape_arg(dims) if dims else (), self.ndim) or ()
        return self[tuple(slice(None, None, -1) if i in d else slice(None) for i in range(self.ndim))]

    def contiguous(self) -> Tensor:
        return self

    def masked_fill(self, mask, value: float) -> Tensor:
        m = mask if isinstance(mask, TensorMethods) else self._constant(mask)
        return where(m, self._wrap(_xp(self).asarray(value, dtype=self.dtype), device=self.device), self)

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        for i in range(self.shape[0]):
            yield self[i]


# ------------------------------------------------------------------------------------ helpers
def _alias(name: str, dim, axis):
    """``axis=`` is an alias of ``dim=`` (PyTorch accepts both spellings; giving both is an error)."""
    if axis is None:
        return dim
    if dim is not None:
        raise TypeError(f"{name}(): give dim or its alias axis, not both")
    return axis


def _xp(t: Tensor):
    return xp_for(t.device)


def _is_dtype_like(x) -> bool:
    """True for dtypes (``np.dtype``, ``np.float32``, ``float``, "float64"); False for devices."""
    # NOTE: np.dtype has a ``.type`` attribute too, so "has .type" cannot tell a device from a dtype
    if isinstance(x, np.dtype):
        return True
    if isinstance(x, type):
        return issubclass(x, (np.generic, builtins.float, builtins.int, builtins.bool))
    if isinstance(x, str):
        try:
            np.dtype(x)
        except TypeError:
            return False  # "cuda:0", or a typo that the device check will name
        return True
    return False


def _promote(a: Tensor, b: Tensor, true_div: bool = False) -> tuple:
    """PyTorch's type promotion for a binary op: float beats int (int + float32 -> float32, not
    NumPy's float64), the wider float wins, and true division of ints gives the default float."""
    da, db = a.dtype, b.dtype
    fa, fb = is_floating(da), is_floating(db)
    if da == db and (fa or not true_div):
        return a, b
    if fa and fb:
        dt = np.promote_types(da, db)
    elif fa or fb:
        dt = da if fa else db
    else:
        dt = DEFAULT_FLOAT if true_div else np.promote_types(da, db)
    return _cast(a, dt), _cast(b, dt)


def _cast(t: Tensor, dt) -> Tensor:
    if t.dtype == dt:
        return t
    if is_floating(t.dtype):
        return ops.Cast.apply(t, dtype=dt)  # differentiable
    return t._wrap(t.data.astype(dt), device=t.device)


def _infer_shape(old: tuple, new: tuple) -> tuple:
    size = int(np.prod(old)) if old else 1
    if new.count(-1) > 1:
        raise ValueError("only one dimension can be -1")
    if -1 in new:
        known = int(np.prod([s for s in new if s != -1])) if len(new) > 1 else 1
        if known == 0 or size % known != 0:
            raise ValueError("size mismatch")
        new = tuple(size // known if s == -1 else s for s in new)
    if int(np.prod(new)) != size or any(s < 0 for s in new):
        raise ValueError("size mismatch")
    return tuple(new)


# ----------------------------------------------------------------------- multi-tensor functions
def cat(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    """Concatenate along an existing dim (shapes must match elsewhere)."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("cat: expected a non-empty sequence of tensors")
    nd = tensors[0].ndim
    d = _dims(dim, nd)[0]
    for t in tensors[1:]:
        if t.ndim != nd or t.shape[:d] + t.shape[d + 1 :] != tensors[0].shape[:d] + tensors[0].shape[d + 1 :]:
            raise ValueError(
                f"cat: shapes {[tt.shape for tt in tensors]} must match except in dim {dim}"
            )
    return ops.Cat.apply(*tensors, dim=d)


concatenate = cat


def stack(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    """Stack same-shape tensors along a new dim."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("stack: expected a non-empty sequence of tensors")
    shapes = {t.shape for t in tensors}
    if len(shapes) != 1:
        raise ValueError(f"stack: all tensors must have the same shape, got {[t.shape for t in tensors]}")
    d = dim if dim >= 0 else dim + tensors[0].ndim + 1
    return cat([t.unsqueeze(d) for t in tensors], dim=d)


def split(t: Tensor, split_size_or_sections, dim: int = 0) -> tuple:
    """``split(t, 2)`` -> pieces of size 2 (last may be smaller); ``split(t, [1, 3])`` -> given sizes."""
    d = _dims(dim, t.ndim)[0]
    n = t.shape[d]
    if isinstance(split_size_or_sections, builtins.int):
        step = split_size_or_sections
        if step <= 0:
            raise ValueError("split: split_size must be positive")
        sizes = [builtins.min(step, n - i) for i in range(0, n, step)]
    else:
        sizes = list(split_size_or_sections)
        if builtins.sum(sizes) != n:
            raise ValueError(f"split: sections {sizes} do not add up to dim {dim} of size {n}")
    out, start = [], 0
    for s in sizes:
        idx = (slice(None),) * d + (slice(start, start + s),)
        out.append(t[idx])
        start += s
    return tuple(out)


def chunk(t: Tensor, chunks: int, dim: int = 0) -> tuple:
    n = t.shape[_dims(dim, t.ndim)[0]]
    size = -(-n // chunks)
    return split(t, size, dim)


def where(condition, input, other) -> Tensor:
    """Elementwise ``input if condition else other`` (broadcasting); differentiable in input and other."""
    ref = input if isinstance(input, TensorMethods) else other
    if not isinstance(ref, TensorMethods):
        raise TypeError("where: input or other must be a Tensor")
    cond = condition if isinstance(condition, TensorMethods) else ref._constant(np.asarray(condition))
    a = ref._other(input) if not isinstance(input, TensorMethods) else input
    b = ref._other(other) if not isinstance(other, TensorMethods) else other
    a, b = _promote(a, b)
    return ops.Where.apply(a, b, cond=cond.data.astype(np.bool_))
