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
from .device import xp_of as xp_of_array
from .dtypes import DEFAULT_FLOAT, check_dtype, is_floating, to_dtype

if TYPE_CHECKING:  # pragma: no cover
    from .tensor import Tensor

MaxMin = namedtuple("MaxMin", ["values", "indices"])
# the (values, indices) results of cummax / cummin / sort / topk (torch.return_types.* in PyTorch)
CumMax = namedtuple("cummax", ["values", "indices"])
CumMin = namedtuple("cummin", ["values", "indices"])
Sort = namedtuple("sort", ["values", "indices"])
TopK = namedtuple("topk", ["values", "indices"])
KthValue = namedtuple("kthvalue", ["values", "indices"])
Median = namedtuple("median", ["values", "indices"])
MinMax = namedtuple("aminmax", ["min", "max"])


def shape_arg(shape) -> tuple:
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

    def add(self, other, *, alpha=1) -> Tensor:
        """``self + alpha * other`` (PyTorch's ``alpha=``)."""
        return self._binary(ops.Add, other if alpha == 1 else self._other(other) * alpha)

    def sub(self, other, *, alpha=1) -> Tensor:
        """``self - alpha * other``."""
        return self._binary(ops.Sub, other if alpha == 1 else self._other(other) * alpha)

    subtract = sub

    def mul(self, other) -> Tensor:
        return self._binary(ops.Mul, other)

    multiply = mul

    def div(self, other, *, rounding_mode: str | None = None) -> Tensor:
        """True division; ``rounding_mode='trunc'`` rounds toward zero, ``'floor'`` down (as ``//``).

        Rounded division keeps integer dtypes (integer division by zero raises, as in PyTorch) and has
        a zero gradient."""
        if rounding_mode is None:
            return self._binary(ops.Div, other, true_div=True)
        if rounding_mode not in ("trunc", "floor"):
            raise ValueError(
                "div expected rounding_mode to be one of None, 'trunc', or 'floor' but found "
                f"'{rounding_mode}'")
        o = self._other(other)
        a, b = _promote(self, o)
        return ops.RoundedDiv.apply(a, b, rounding_mode=rounding_mode)

    divide = true_divide = div

    def floor_divide(self, other) -> Tensor:
        return self.div(other, rounding_mode="floor")

    def __floordiv__(self, other) -> Tensor:
        return self.div(other, rounding_mode="floor")

    def __rfloordiv__(self, other) -> Tensor:
        return self._other(other).div(self, rounding_mode="floor")

    def fmod(self, other) -> Tensor:
        """C's fmod: ``a - trunc(a / b) * b``, with the sign of the dividend (``fmod(-7, 2) == -1``)."""
        return self._binary(ops.Fmod, other)

    def remainder(self, other) -> Tensor:
        """Python's ``%``: ``a - floor(a / b) * b``, with the sign of the divisor (``-7 % 2 == 1``)."""
        return self._binary(ops.Remainder, other)

    __mod__ = remainder

    def __rmod__(self, other) -> Tensor:
        return self._binary(ops.Remainder, other, reverse=True)

    def pow(self, exponent) -> Tensor:
        if isinstance(exponent, TensorMethods):
            return self._binary(ops.Pow, exponent)
        base = self
        if not is_floating(self.dtype) and (float(exponent) != int(exponent) or exponent < 0):
            base = self.to(dtype=DEFAULT_FLOAT)  # NOTE: int ** 0.5 / int ** -1 give floats, as in PyTorch
        return ops.PowScalar.apply(base, exponent=float(exponent))

    def __add__(self, other) -> Tensor:
        return self._binary(ops.Add, other)

    def __sub__(self, other) -> Tensor:
        return self._binary(ops.Sub, other)

    __mul__ = mul
    def __truediv__(self, other) -> Tensor:
        return self._binary(ops.Div, other, true_div=True)

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

    def round(self, *, decimals: int = 0) -> Tensor:
        """Round half to even (as PyTorch); no gradient."""
        return self._wrap(_xp(self).round(self.data, decimals), device=self.device)

    def square(self) -> Tensor:
        return ops.PowScalar.apply(self, exponent=2.0)

    def reciprocal(self) -> Tensor:
        return ops.PowScalar.apply(self, exponent=-1.0)

    def sign(self) -> Tensor:
        return self._wrap(_xp(self).sign(self.data), device=self.device)

    def clamp(self, min=None, max=None) -> Tensor:
        """Limit to [min, max]; the bounds may be numbers or tensors (which get the gradient where they
        bind, as in PyTorch)."""
        if min is None and max is None:
            raise ValueError("clamp: at least one of min and max must be given")
        if isinstance(min, TensorMethods) or isinstance(max, TensorMethods):
            out = self
            if min is not None:
                lo = self._other(min)
                out = where(out < lo, lo, out)
            if max is not None:
                hi = self._other(max)
                out = where(out > hi, hi, out)
            return out
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

    # trigonometric and hyperbolic functions (integer tensors give float32, as in PyTorch)
    def _unary_float(self, fn) -> Tensor:
        x = self if is_floating(self.dtype) else self.to(dtype=DEFAULT_FLOAT)
        return fn.apply(x)

    def tan(self) -> Tensor:
        return self._unary_float(ops.Tan)

    def asin(self) -> Tensor:
        return self._unary_float(ops.Asin)

    def acos(self) -> Tensor:
        return self._unary_float(ops.Acos)

    def atan(self) -> Tensor:
        return self._unary_float(ops.Atan)

    def sinh(self) -> Tensor:
        return self._unary_float(ops.Sinh)

    def cosh(self) -> Tensor:
        return self._unary_float(ops.Cosh)

    def asinh(self) -> Tensor:
        return self._unary_float(ops.Asinh)

    def acosh(self) -> Tensor:
        return self._unary_float(ops.Acosh)

    def atanh(self) -> Tensor:
        return self._unary_float(ops.Atanh)

    arcsin, arccos, arctan, arcsinh, arccosh, arctanh = asin, acos, atan, asinh, acosh, atanh

    # ------------------------------------------------------------------------- closeness
    def isclose(self, other, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False) -> Tensor:
        """Elementwise ``|self - other| <= atol + rtol * |other|`` (boolean; PyTorch's defaults)."""
        o = other.data if isinstance(other, TensorMethods) else other
        try:
            res = _xp(self).isclose(self.data, o, rtol=rtol, atol=atol, equal_nan=equal_nan)
        except ValueError as e:
            oshape = other.shape if isinstance(other, TensorMethods) else np.shape(other)
            raise ValueError(f"isclose: shapes {self.shape} and {tuple(oshape)} do not broadcast") from e
        return self._wrap(_xp(self).asarray(res), device=self.device)

    def allclose(self, other, rtol: float = 1e-05, atol: float = 1e-08,
                 equal_nan: bool = False) -> builtins.bool:
        """True when every element ``isclose`` (a Python bool, as in PyTorch)."""
        return builtins.bool(self.isclose(other, rtol=rtol, atol=atol, equal_nan=equal_nan).data.all())

    # ----------------------------------------------------------------------------- reductions
    # NOTE: ``axis=`` is accepted as an alias of ``dim=`` (as in PyTorch and NumPy). A 0-d tensor may be
    # reduced over dim 0 or -1 (PyTorch allows it): it is reduced as the 1-element tensor it is, and the
    # result is 0-d again.
    def sum(self, dim=None, keepdim: bool = False, dtype=None, *, axis=None) -> Tensor:
        dim = _alias("sum", dim, axis)
        if self.ndim == 0 and dim is not None:
            return self._as_1d(dim).sum(0, dtype=dtype)
        x = self if dtype is not None else self._accumulator()
        out = ops.Sum.apply(x, dim=_dims(dim, self.ndim), keepdim=keepdim)
        return out.to(dtype=dtype) if dtype is not None else out

    def mean(self, dim=None, keepdim: bool = False, *, axis=None) -> Tensor:
        dim = _alias("mean", dim, axis)
        if not is_floating(self.dtype):
            raise TypeError(f"mean() needs a floating-point tensor, got dtype {self.dtype}")
        if self.ndim == 0 and dim is not None:
            return self._as_1d(dim).mean(0)
        dims = _dims(dim, self.ndim)
        n = self.data.size if dims is None else int(np.prod([self.shape[d] for d in dims]))
        # NOTE: the mean of no elements is nan (0 / 0), as in PyTorch and NumPy
        return ops.Sum.apply(self, dim=dims, keepdim=keepdim) * (1.0 / n if n else float("nan"))

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

    def cumsum(self, dim: int, *, dtype=None) -> Tensor:
        """Running sum along ``dim``: ``out[i] = x[0] + ... + x[i]`` (integers and bools add up as int64)."""
        x = self.to(dtype=dtype) if dtype is not None else self._accumulator()
        if x.ndim == 0:
            return x._as_1d(dim).cumsum(0).reshape(())
        return ops.CumSum.apply(x, dim=_dims(dim, x.ndim)[0])

    def cumprod(self, dim: int, *, dtype=None) -> Tensor:
        """Running product along ``dim``: ``out[i] = x[0] * ... * x[i]`` (gradient exact at zeros)."""
        x = self.to(dtype=dtype) if dtype is not None else self._accumulator()
        if x.ndim == 0:
            return x._as_1d(dim).cumprod(0).reshape(())
        return ops.CumProd.apply(x, dim=_dims(dim, x.ndim)[0])

    def cummax(self, dim: int):
        """``(values, indices)``: the running maximum along ``dim`` and where it was last reached
        (PyTorch's ties rule: the latest index; a nan stays the maximum from where it appears)."""
        return self._cumext(dim, "max")

    def cummin(self, dim: int):
        """``(values, indices)``: the running minimum along ``dim`` (ties: the latest index)."""
        return self._cumext(dim, "min")

    def _cumext(self, dim, how):
        cls = CumMax if how == "max" else CumMin
        if self.ndim == 0:
            _dims(dim, 0)
            return cls(self.clone(), self._wrap(_xp(self).zeros((), dtype=np.int64), device=self.device))
        xp, d, a = _xp(self), _dims(dim, self.ndim)[0], self.data
        acc = xp.maximum if how == "max" else xp.minimum  # NOTE: both propagate nan, as PyTorch does
        run = _accumulate(acc, a, d) if a.size else a
        record = (a == run) | (xp.isnan(a) if a.dtype.kind == "f" else False)
        pos = xp.arange(a.shape[d]).reshape((-1,) + (1,) * (a.ndim - d - 1))
        # the last index where a running record (or a nan) was set
        idx = _accumulate(xp.maximum, xp.where(record, pos, 0), d) if a.size else a.astype(np.int64)
        idx = self._wrap(idx.astype(np.int64), device=self.device)
        return cls(self.gather(d, idx), idx)

    def prod(self, dim=None, keepdim: bool = False, *, dtype=None, axis=None) -> Tensor:
        """Product of all elements, or over one ``dim`` (gradient exact where elements are 0)."""
        dim = _alias("prod", dim, axis)
        x = self.to(dtype=dtype) if dtype is not None else self._accumulator()
        if isinstance(dim, (tuple, list)):
            raise TypeError(f"prod() takes one int dim, got {dim!r}")
        if x.ndim == 0 and dim is not None:
            return x._as_1d(dim).prod(0)
        return ops.Prod.apply(x, dim=None if dim is None else _dims(dim, x.ndim)[0], keepdim=keepdim)

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
        shape = shape_arg(shape)
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
        dims = shape_arg(dims)
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
        shape = shape_arg(shape)
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
        d = _dims(shape_arg(dims) if dims else (), self.ndim) or ()
        return self[tuple(slice(None, None, -1) if i in d else slice(None) for i in range(self.ndim))]

    def contiguous(self) -> Tensor:
        return self

    def masked_fill(self, mask, value: float) -> Tensor:
        m = mask if isinstance(mask, TensorMethods) else self._constant(mask)
        return where(m, self._wrap(_xp(self).asarray(value, dtype=self.dtype), device=self.device), self)

    def where(self, condition, other) -> Tensor:
        """``x.where(cond, y)`` is ``where(cond, x, y)``."""
        return where(condition, self, other)

    def tril(self, diagonal: int = 0) -> Tensor:
        """The lower triangle of the last two dims (entries above ``diagonal`` set to 0)."""
        self._need_2d("tril")
        return ops.Tri.apply(self, upper=False, diagonal=int(diagonal))

    def triu(self, diagonal: int = 0) -> Tensor:
        """The upper triangle of the last two dims (entries below ``diagonal`` set to 0)."""
        self._need_2d("triu")
        return ops.Tri.apply(self, upper=True, diagonal=int(diagonal))

    def _need_2d(self, name):
        if self.ndim < 2:
            raise ValueError(f"{name}: input tensor must have at least 2 dimensions, got shape {self.shape}")

    def repeat(self, *sizes) -> Tensor:
        """Tile the tensor ``sizes[i]`` times along dim i (``len(sizes) >= ndim``; extra sizes add
        leading dims), e.g. ``x.repeat(2, 1)``. Built from reshape + expand + reshape (exact backward)."""
        sizes = shape_arg(sizes)
        if len(sizes) < self.ndim:
            raise ValueError(
                f"repeat: number of repeat dims ({len(sizes)}) can not be smaller than the number of "
                f"dims of the tensor ({self.ndim})")
        if any(r < 0 for r in sizes):
            raise ValueError(f"repeat: repeats {sizes} must be non-negative")
        shape = (1,) * (len(sizes) - self.ndim) + self.shape
        x = self.reshape(tuple(v for s in shape for v in (1, s)))
        x = x.expand(tuple(v for r, s in zip(sizes, shape) for v in (r, s)))
        return x.reshape(tuple(r * s for r, s in zip(sizes, shape)))

    def tile(self, *dims) -> Tensor:
        """``repeat`` where fewer ``dims`` than the tensor has dims are padded with 1s in front."""
        dims = shape_arg(dims)
        return self.repeat((1,) * (self.ndim - len(dims)) + dims)

    def roll(self, shifts, dims=None) -> Tensor:
        """Shift elements cyclically by ``shifts`` along ``dims`` (the flattened tensor when None)."""
        if dims is None:
            if isinstance(shifts, (tuple, list)):
                if len(shifts) != 1:
                    raise ValueError(f"roll: shifts {shifts} needs dims of the same length")
                shifts = shifts[0]
            return self.flatten().roll(shifts, 0).reshape(self.shape)
        sh = tuple(shifts) if isinstance(shifts, (tuple, list)) else (shifts,)
        ds = tuple(dims) if isinstance(dims, (tuple, list)) else (dims,)
        if len(sh) != len(ds):
            raise ValueError(f"roll: shifts and dimensions must align. shifts: {len(sh)}, dims: {len(ds)}")
        if self.ndim == 0:
            raise IndexError(f"roll: Dimension specified as {ds[0]} but tensor has no dimensions")
        ds = tuple(_dims(d, self.ndim)[0] for d in ds)
        return ops.Roll.apply(self, shifts=tuple(builtins.int(v) for v in sh), dims=ds)

    # --------------------------------------------------------------------- gather / scatter
    def _index_arg(self, name, dim, index, src_shape=None) -> tuple:
        """Check gather/scatter arguments like PyTorch; return (dim, index array)."""
        idx = index.data if isinstance(index, TensorMethods) else np.asarray(index)
        if idx.dtype.kind not in "iu":
            raise TypeError(f"{name}(): Expected dtype int64 for index, got {idx.dtype}")
        nd = builtins.max(self.ndim, 1)
        d = _dims(dim, self.ndim)[0]
        if idx.ndim != nd and not (idx.ndim == 0 and self.ndim == 0) and idx.size:
            raise ValueError(f"{name}(): Index tensor must have the same number of dimensions as input "
                             "tensor "
                             f"(index shape {tuple(idx.shape)}, input shape {self.shape})")
        shape = self.shape if self.ndim else (1,)
        idx = idx.reshape(idx.shape if idx.ndim else (1,)) if self.ndim == 0 else idx
        for i in range(idx.ndim):
            if i != d and idx.shape[i] > shape[i]:
                raise ValueError(f"{name}(): Size does not match at dimension {i} expected index "
                                 f"{tuple(idx.shape)} to be smaller than self {self.shape} apart from "
                                 f"dimension {d}")
            if src_shape is not None and idx.shape[i] > (src_shape[i] if len(src_shape) else 1):
                raise ValueError(f"{name}(): Expected index {tuple(idx.shape)} to be smaller than src "
                                 f"{tuple(src_shape)} in every dimension")
        if idx.size:
            lo, hi = builtins.int(idx.min()), builtins.int(idx.max())
            bad = lo if lo < 0 else hi if hi >= shape[d] else None
            if bad is not None:
                raise IndexError(
                    f"{name}(): index {bad} is out of bounds for dimension {d} with size {shape[d]}")
        return d, to_device(idx.astype(np.int64, copy=False), self.device)

    def gather(self, dim: int, index) -> Tensor:
        """``out[i][j][k] = self[i][index[i][j][k]][k]`` for dim=1 (``torch.gather``); index's shape."""
        d, idx = self._index_arg("gather", dim, index)
        if self.ndim == 0:
            out = ops.Gather.apply(self.reshape(1), index=idx, dim=0)
            return out.reshape(tuple(getattr(index, "shape", ())))
        return ops.Gather.apply(self, index=idx, dim=d)

    def take_along_dim(self, indices, dim: int | None = None) -> Tensor:
        """NumPy's take_along_axis: like ``gather`` but self and indices broadcast in the other dims
        (``dim=None``: indices into the flattened tensor)."""
        idx = indices if isinstance(indices, TensorMethods) else self._constant(np.asarray(indices))
        if dim is None:
            return self.reshape(-1).gather(0, idx.reshape(-1))
        if self.ndim != idx.ndim:
            raise ValueError("take_along_dim(): input and indices should have the same number of dimensions, "
                             f"but got {self.ndim} dimensions for input, and {idx.ndim} for indices")
        d = _dims(dim, self.ndim)[0]

        def outside(s):
            return s[:d] + (1,) + s[d + 1:]

        try:
            shape = np.broadcast_shapes(outside(self.shape), outside(idx.shape))
        except ValueError:
            raise ValueError(f"take_along_dim(): shapes {self.shape} and {idx.shape} do not broadcast "
                             f"outside dim {d}") from None
        x = self.expand(shape[:d] + (self.shape[d],) + shape[d + 1:])
        i = _xp(self).broadcast_to(idx.data, shape[:d] + (idx.shape[d],) + shape[d + 1:])
        return x.gather(d, idx._wrap(i, device=idx.device))

    def index_select(self, dim: int, index) -> Tensor:
        """The slices ``index`` (1-D integers) of dim ``dim``."""
        d = _dims(dim, self.ndim)[0] if self.ndim else 0
        idx = index if isinstance(index, TensorMethods) else self._constant(np.asarray(index))
        return self[(slice(None),) * d + (idx.reshape(-1),)]

    def _src(self, src, value, index) -> Tensor:
        if src is None and value is None:
            raise TypeError("scatter(): give src (a tensor) or value (a number)")
        if src is not None and not isinstance(src, TensorMethods):
            src, value = None, src  # x.scatter(dim, index, 1.0): a number as src
        if src is None:
            shape = tuple(getattr(index, "shape", np.shape(index)))
            return self._wrap(_xp(self).full(shape, value, dtype=self.dtype), device=self.device)
        if src.dtype != self.dtype:
            raise TypeError(
                f"scatter(): Expected self.dtype to be equal to src.dtype ({self.dtype} and {src.dtype})")
        return src

    def scatter(self, dim: int, index, src=None, *, value=None, reduce: str | None = None) -> Tensor:
        """A copy of self with ``out[i][index[i][j][k]][k] = src[i][j][k]`` (dim=1); ``src`` may be a number
        (or ``value=``). ``reduce='add' | 'multiply'`` combines instead of overwriting."""
        s = self._src(src, value, index)
        if reduce is not None:
            red = {"add": "sum", "multiply": "prod"}.get(reduce)
            if red is None:
                raise ValueError(f"scatter(): reduce argument must be either add or multiply, got {reduce!r}")
            return self.scatter_reduce(dim, index, s, red)
        d, idx = self._index_arg("scatter", dim, index, s.shape)
        if self.ndim == 0:
            return self.reshape(1).scatter(0, idx.reshape(-1), s.reshape(-1)).reshape(())
        return ops.Scatter.apply(self, s, index=idx, dim=d)

    def scatter_add(self, dim: int, index, src) -> Tensor:
        """A copy of self with ``out[i][index[i][j][k]][k] += src[i][j][k]`` (dim=1; duplicates add up)."""
        return self.scatter_reduce(dim, index, src, "sum")

    def scatter_reduce(self, dim: int, index, src, reduce: str, *,
                       include_self: builtins.bool = True) -> Tensor:
        """Reduce the src values scattered to each position with ``reduce`` ('sum', 'prod', 'mean',
        'amax', 'amin'); ``include_self=False`` leaves self's value out where something is scattered."""
        if reduce not in ("sum", "prod", "mean", "amax", "amin"):
            raise ValueError(f"reduce argument must be either sum, prod, mean, amax or amin, got {reduce}")
        s = self._src(src, None, index)
        d, idx = self._index_arg("scatter_reduce", dim, index, s.shape)
        if self.ndim == 0:
            return self.reshape(1).scatter_reduce(0, idx.reshape(-1), s.reshape(-1), reduce,
                                                  include_self=include_self).reshape(())
        return ops.ScatterReduce.apply(self, s, index=idx, dim=d, reduce=reduce,
                                       include_self=builtins.bool(include_self))

    def _inplace(self, result) -> Tensor:
        self[...] = result.detach()  # the same rules (and version bump) as t[...] = value
        return self

    def scatter_(self, dim: int, index, src=None, *, value=None, reduce: str | None = None) -> Tensor:
        return self._inplace(self.scatter(dim, index, src, value=value, reduce=reduce))

    def scatter_add_(self, dim: int, index, src) -> Tensor:
        return self._inplace(self.scatter_add(dim, index, src))

    def scatter_reduce_(self, dim: int, index, src, reduce: str, *,
                        include_self: builtins.bool = True) -> Tensor:
        return self._inplace(self.scatter_reduce(dim, index, src, reduce, include_self=include_self))

    # --------------------------------------------------------------------------- sorting
    def sort(self, dim: int = -1, descending: builtins.bool = False, stable: builtins.bool = False):
        """``(values, indices)`` sorted along ``dim``. Always stable (equal elements keep their order,
        also when ``descending``); nan sorts as the largest value, as in PyTorch."""
        if self.ndim == 0:
            _dims(dim, 0)
            return Sort(self.clone(), self._wrap(_xp(self).zeros((), dtype=np.int64), device=self.device))
        d = _dims(dim, self.ndim)[0]
        idx = self._wrap(_argsort(self.data, d, descending), device=self.device)
        return Sort(ops.Gather.apply(self, index=idx.data, dim=d), idx)

    def argsort(self, dim: int = -1, descending: builtins.bool = False,
                stable: builtins.bool = False) -> Tensor:
        return self.sort(dim, descending, stable).indices

    def msort(self) -> Tensor:
        return self.sort(0).values

    def topk(self, k: int, dim: int = -1, largest: builtins.bool = True, sorted: builtins.bool = True):
        """``(values, indices)`` of the ``k`` largest (``largest=False``: smallest) elements along ``dim``,
        in sorted order (ties: the lower index first)."""
        n = self.shape[_dims(dim, self.ndim)[0]] if self.ndim else 1
        if not 0 <= k <= n:
            raise IndexError(f"topk(): selected index k={k} out of range for dimension of size {n}")
        if self.ndim == 0:
            return TopK(*self.sort(dim))
        d = _dims(dim, self.ndim)[0]
        idx = _argsort(self.data, d, largest)[(slice(None),) * d + (slice(0, k),)]
        idx = self._wrap(idx, device=self.device)
        return TopK(ops.Gather.apply(self, index=idx.data, dim=d), idx)

    # ------------------------------------------------------------------------------ misc
    def nonzero(self, *, as_tuple: builtins.bool = False):
        """Indices of the non-zero elements: an (n, ndim) int64 tensor, or (``as_tuple``) one 1-D index
        tensor per dim, usable as ``x[x.nonzero(as_tuple=True)]``."""
        xp = _xp(self)
        if as_tuple:
            a = self.data.reshape(1) if self.ndim == 0 else self.data
            return tuple(self._wrap(i.astype(np.int64), device=self.device) for i in xp.nonzero(a))
        return self._wrap(xp.argwhere(self.data).astype(np.int64), device=self.device)

    def argwhere(self) -> Tensor:
        return self.nonzero()

    def count_nonzero(self, dim=None) -> Tensor:
        return (self != 0).sum(dim)

    def resize_(self, *sizes) -> Tensor:
        """Change the shape in place, keeping the elements in order (flattened); new elements are 0.

        NOTE: PyTorch leaves new elements uninitialised; this fills them with zeros. Like PyTorch it
        refuses tensors that require grad."""
        sizes = shape_arg(sizes)
        if self.requires_grad:
            raise RuntimeError("cannot resize variables that require grad")
        if any(s < 0 for s in sizes):
            raise ValueError(f"resize_: sizes {sizes} must be non-negative")
        n = builtins.int(np.prod(sizes))
        flat = self.data.reshape(-1)
        new = _xp(self).zeros(n, dtype=self.dtype)
        m = builtins.min(n, flat.size)
        new[:m] = flat[:m]
        self.data = new.reshape(sizes)
        self._vc = [self._vc[0] + 1]  # NOTE: fresh memory: no longer shared with former views
        return self

    def resize_as_(self, other) -> Tensor:
        return self.resize_(other.shape)

    # ------------------------------------------------- more of PyTorch's surface, composed from the ops above
    # (each is exact: its gradient is the chain rule through differentiable ops, no new backward to trust)
    def log2(self) -> Tensor:
        return self._unary_float(ops.Log) * (1.0 / np.log(2.0))

    def log10(self) -> Tensor:
        return self._unary_float(ops.Log) * (1.0 / np.log(10.0))

    def exp2(self) -> Tensor:
        return (self._floated() * np.log(2.0)).exp()

    def erf(self) -> Tensor:
        return self._unary_float(ops.Erf)

    def logit(self, eps: float | None = None) -> Tensor:
        x = self._floated() if eps is None else self._floated().clamp(eps, 1 - eps)
        return (x / (1 - x)).log()

    def xlogy(self, other) -> Tensor:
        """``self * log(other)``, 0 where self is 0 (also where other is 0), as PyTorch."""
        o = self._other(other)
        return where(self == 0, 0.0, self._floated() * o._floated().log())

    def atan2(self, other) -> Tensor:
        return self._binary(ops.Atan2, other)

    arctan2 = atan2

    def hypot(self, other) -> Tensor:
        o = self._other(other)
        return (self * self + o * o).sqrt()

    def logaddexp(self, other) -> Tensor:
        """``log(e^self + e^other)`` without overflow: max + log1p(e^-|self - other|)."""
        o = self._other(other)
        return self.maximum(o) + (-(self - o).abs()).exp().log1p()

    def lerp(self, end, weight) -> Tensor:
        """``self + weight * (end - self)``."""
        return self + (self._other(end) - self) * weight

    def float_power(self, exponent) -> Tensor:
        e = exponent.double() if isinstance(exponent, TensorMethods) else exponent
        return self.double().pow(e)

    def deg2rad(self) -> Tensor:
        return self._floated() * (np.pi / 180.0)

    def rad2deg(self) -> Tensor:
        return self._floated() * (180.0 / np.pi)

    def trunc(self) -> Tensor:
        """No gradient (zero almost everywhere), like floor."""
        return self._wrap(_xp(self).trunc(self.data), device=self.device)

    fix = trunc

    def frac(self) -> Tensor:
        return self - self.trunc()

    def sgn(self) -> Tensor:
        return self.sign()

    def clamp_min(self, min) -> Tensor:  # noqa: A002
        return self.clamp(min=min)

    def clamp_max(self, max) -> Tensor:  # noqa: A002
        return self.clamp(max=max)

    def _accumulator(self) -> Tensor:
        """Self for floats; integers and bools as int64 (what PyTorch's sum / prod / cumsum return)."""
        return self if self.dtype.kind == "f" or self.dtype == np.int64 else self.long()

    def _floated(self) -> Tensor:
        return self if is_floating(self.dtype) else self.to(dtype=DEFAULT_FLOAT)

    # boolean tests and logic (no gradient)
    def isnan(self) -> Tensor:
        return self._wrap(_xp(self).isnan(self.data), device=self.device)

    def isinf(self) -> Tensor:
        return self._wrap(_xp(self).isinf(self.data), device=self.device)

    def isfinite(self) -> Tensor:
        return self._wrap(_xp(self).isfinite(self.data), device=self.device)

    def nan_to_num(self, nan: float = 0.0, posinf: float | None = None,
                   neginf: float | None = None) -> Tensor:
        """nan -> ``nan``, +inf -> ``posinf`` (the dtype's largest value), -inf -> ``neginf``; the gradient
        flows through the finite elements only."""
        if not is_floating(self.dtype):
            return self
        fi = np.finfo(self.dtype)
        out = where(self.isnan(), nan, self)
        out = where(self == np.inf, fi.max if posinf is None else posinf, out)
        return where(self == -np.inf, fi.min if neginf is None else neginf, out)

    def _logic(self, other, fn) -> Tensor:
        o = other.data if isinstance(other, TensorMethods) else other
        res = fn(self.data.astype(np.bool_), _xp(self).asarray(o).astype(np.bool_))
        return self._wrap(res, device=self.device)

    def logical_and(self, other) -> Tensor:
        return self._logic(other, lambda a, b: a & b)

    def logical_or(self, other) -> Tensor:
        return self._logic(other, lambda a, b: a | b)

    def logical_xor(self, other) -> Tensor:
        return self._logic(other, lambda a, b: a ^ b)

    def bitwise_and(self, other) -> Tensor:
        return self._cmp(other, lambda a, b: a & b)

    def bitwise_or(self, other) -> Tensor:
        return self._cmp(other, lambda a, b: a | b)

    def bitwise_xor(self, other) -> Tensor:
        return self._cmp(other, lambda a, b: a ^ b)

    __xor__ = bitwise_xor

    def bitwise_not(self) -> Tensor:
        return ~self

    # metadata and new_* constructors
    def type_as(self, other) -> Tensor:
        return self.type(other.dtype)

    def is_contiguous(self, memory_format=None) -> builtins.bool:
        return builtins.bool(self.data.flags.c_contiguous) if hasattr(self.data, "flags") else True

    def is_floating_point(self) -> builtins.bool:
        return is_floating(self.dtype)

    def element_size(self) -> builtins.int:
        return self.dtype.itemsize

    def nelement(self) -> builtins.int:
        return builtins.int(self.data.size)

    def stride(self, dim: int | None = None):
        st = tuple(s // self.dtype.itemsize for s in self.data.strides)
        return st if dim is None else st[dim]

    def _new(self, arr, dtype, requires_grad) -> Tensor:
        t = self._wrap(to_device(arr, self.device), device=self.device)
        return t.requires_grad_(True) if requires_grad else t

    def new_zeros(self, *size, dtype=None, device=None, requires_grad: builtins.bool = False) -> Tensor:
        return self._new(np.zeros(shape_arg(size), to_dtype(dtype or self.dtype)), dtype, requires_grad)

    def new_ones(self, *size, dtype=None, device=None, requires_grad: builtins.bool = False) -> Tensor:
        return self._new(np.ones(shape_arg(size), to_dtype(dtype or self.dtype)), dtype, requires_grad)

    def new_empty(self, *size, dtype=None, device=None, requires_grad: builtins.bool = False) -> Tensor:
        return self.new_zeros(*size, dtype=dtype, requires_grad=requires_grad)

    def new_full(self, size, fill_value, *, dtype=None, device=None,
                 requires_grad: builtins.bool = False) -> Tensor:
        arr = np.full(tuple(size), fill_value, to_dtype(dtype or self.dtype))
        return self._new(arr, dtype, requires_grad)

    def new_tensor(self, data, *, dtype=None, device=None, requires_grad: builtins.bool = False) -> Tensor:
        data = data.numpy() if isinstance(data, TensorMethods) else data
        arr = np.array(data, dtype=to_dtype(dtype or self.dtype))
        return self._new(arr, dtype, requires_grad)

    # movement
    @property
    def mT(self) -> Tensor:  # noqa: N802 (PyTorch's name)
        return self.transpose(-2, -1)

    def movedim(self, source, destination) -> Tensor:
        src = [source] if isinstance(source, builtins.int) else list(source)
        dst = [destination] if isinstance(destination, builtins.int) else list(destination)
        if len(src) != len(dst):
            raise ValueError(f"movedim: Invalid source or destination dims: source ({src}) and destination "
                             f"({dst}) must have the same number of elements")
        src = [_dims(d, self.ndim)[0] for d in src]
        dst = [_dims(d, self.ndim)[0] for d in dst]
        order = [d for d in range(self.ndim) if d not in src]
        for d, s in sorted(zip(dst, src)):
            order.insert(d, s)
        return self.permute(*order)

    moveaxis = movedim

    def swapaxes(self, axis0: int, axis1: int) -> Tensor:
        return self.transpose(axis0, axis1)

    swapdims = swapaxes

    def broadcast_to(self, *shape) -> Tensor:
        return self.expand(*shape)

    def sum_to_size(self, *size) -> Tensor:
        """Sum the broadcast dims away so the result has ``size`` (the backward of broadcasting)."""
        size = shape_arg(size)
        if np.broadcast_shapes(size, self.shape) != self.shape:
            raise ValueError(f"sum_to_size: size {size} is not expandable to the tensor's size {self.shape}")
        lead = self.ndim - len(size)
        dims = tuple(range(lead)) + tuple(lead + i for i, s in enumerate(size)
                                          if s == 1 and self.shape[lead + i] != 1)
        return (self.sum(dims, keepdim=True) if dims else self).reshape(size)

    def unbind(self, dim: int = 0) -> tuple:
        d = _dims(dim, self.ndim)[0]
        return tuple(self[(slice(None),) * d + (i,)] for i in range(self.shape[d]))

    def narrow(self, dim: int, start: int, length: int) -> Tensor:
        d = _dims(dim, self.ndim)[0]
        start = builtins.int(start) % builtins.max(self.shape[d], 1) if start < 0 else builtins.int(start)
        if start + length > self.shape[d] or length < 0:
            raise IndexError(
                f"narrow: start ({start}) + length ({length}) exceeds dimension size ({self.shape[d]}).")
        return self[(slice(None),) * d + (slice(start, start + length),)]

    def unfold(self, dimension: int, size: int, step: int) -> Tensor:
        """Windows of ``size`` elements every ``step`` along ``dimension``, as a new last dim."""
        d = _dims(dimension, self.ndim)[0] if self.ndim else 0
        n = self.shape[d] if self.ndim else 1
        if size > n or step <= 0:
            raise ValueError(
                f"unfold: size {size} must be <= {n} (dimension {dimension}) and step {step} > 0")
        idx = np.arange(0, n - size + 1, step)[:, None] + np.arange(size)
        x = self.reshape(1) if self.ndim == 0 else self
        out = x.movedim(d, -1)[..., idx]
        return out.movedim(-2, d) if self.ndim else out.reshape(idx.shape[0], size)[0]

    def rot90(self, k: int = 1, dims=(0, 1)) -> Tensor:
        a, b = dims
        k %= 4
        if k == 1:
            return self.flip(b).transpose(a, b)
        if k == 2:
            return self.flip(a, b)
        if k == 3:
            return self.transpose(a, b).flip(b)
        return self

    def diff(self, n: int = 1, dim: int = -1, prepend=None, append=None) -> Tensor:
        d = _dims(dim, self.ndim)[0]
        x = self
        if prepend is not None or append is not None:
            x = cat([t for t in (prepend, x, append) if t is not None], dim=d)
        for _ in range(n):
            m = x.shape[d]
            hi = x[(slice(None),) * d + (slice(1, m),)]
            lo = x[(slice(None),) * d + (slice(0, builtins.max(m - 1, 0)),)]
            x = hi != lo if x.dtype == np.bool_ else hi - lo
        return x

    def repeat_interleave(self, repeats, dim: int | None = None, *, output_size=None) -> Tensor:
        """Repeat each element ``repeats`` times (an int or one count per element) along ``dim``
        (the flattened tensor when None)."""
        x = self.reshape(-1) if dim is None else self
        d = 0 if dim is None else _dims(dim, x.ndim)[0]
        r = repeats.numpy() if isinstance(repeats, TensorMethods) else np.asarray(repeats)
        idx = np.repeat(np.arange(x.shape[d]), r)
        return x.index_select(d, idx)

    def masked_select(self, mask) -> Tensor:
        m = mask if isinstance(mask, TensorMethods) else self._constant(np.asarray(mask))
        shape = np.broadcast_shapes(self.shape, m.shape)
        return self.expand(shape)[m.expand(shape)]

    def _index_along(self, dim, index, shape) -> tuple:
        d = _dims(dim, self.ndim)[0]
        idx = index.data if isinstance(index, TensorMethods) else np.asarray(index)
        full = _xp(self).broadcast_to(idx.reshape((-1,) + (1,) * (len(shape) - d - 1)), shape)
        return d, self._wrap(full.astype(np.int64), device=self.device)

    def index_add(self, dim: int, index, source, *, alpha=1) -> Tensor:
        """``out[..., index[i], ...] += alpha * source[..., i, ...]`` along ``dim``."""
        d, idx = self._index_along(dim, index, source.shape)
        return self.scatter_add(d, idx, source * alpha if alpha != 1 else source)

    def index_copy(self, dim: int, index, source) -> Tensor:
        d, idx = self._index_along(dim, index, source.shape)
        return self.scatter(d, idx, source)

    def index_fill(self, dim: int, index, value) -> Tensor:
        d = _dims(dim, self.ndim)[0]
        idx = index.numpy() if isinstance(index, TensorMethods) else np.asarray(index)
        mask = np.zeros(self.shape[d], dtype=bool)
        mask[idx] = True
        return self.masked_fill(self._constant(mask.reshape((-1,) + (1,) * (self.ndim - d - 1))), value)

    # linear algebra shortcuts
    def dot(self, other) -> Tensor:
        if self.ndim != 1 or other.ndim != 1:
            raise ValueError(f"1D tensors expected, but got {self.ndim}D and {other.ndim}D tensors")
        return (self * other).sum()

    inner = dot

    def outer(self, vec2) -> Tensor:
        return self.reshape(-1, 1) * vec2.reshape(1, -1)

    ger = outer

    def mm(self, mat2) -> Tensor:
        if self.ndim != 2 or mat2.ndim != 2:
            raise ValueError(f"mm: expected 2-D tensors, got shapes {self.shape} and {mat2.shape}")
        return self @ mat2

    def bmm(self, mat2) -> Tensor:
        if self.ndim != 3 or mat2.ndim != 3:
            raise ValueError(f"bmm: expected 3-D tensors, got shapes {self.shape} and {mat2.shape}")
        return self @ mat2

    def mv(self, vec) -> Tensor:
        return self @ vec

    def addmm(self, mat1, mat2, *, beta=1, alpha=1) -> Tensor:
        """``beta * self + alpha * (mat1 @ mat2)``."""
        prod = mat1.mm(mat2)
        return (self if beta == 1 else self * beta) + (prod if alpha == 1 else prod * alpha)

    def diagonal(self, offset: int = 0, dim1: int = 0, dim2: int = 1) -> Tensor:
        """The diagonal of dims (dim1, dim2) as the last dim (``offset`` > 0: above the main one)."""
        x = self.movedim((dim1, dim2), (-2, -1))
        n, m = x.shape[-2:]
        i = np.arange(builtins.max(0, -offset), builtins.max(builtins.min(n, m - offset), 0))
        return x[..., i, i + offset]

    def diag(self, diagonal: int = 0) -> Tensor:
        """1-D: the square matrix with this on its ``diagonal``; 2-D: that diagonal as a 1-D tensor."""
        if self.ndim == 2:
            return self.diagonal(diagonal)
        if self.ndim != 1:
            raise ValueError(f"diag(): Supports 1D or 2D tensors. Got {self.ndim}D")
        n, k = self.shape[0], builtins.abs(diagonal)
        m = self._constant(np.eye(n, dtype=self.dtype)) * self.reshape(1, n)  # m[i, j] = [i == j] v_j
        return m.pad((k, 0, 0, k) if diagonal >= 0 else (0, k, k, 0))

    def trace(self) -> Tensor:
        if self.ndim != 2:
            raise ValueError(f"trace: expected a matrix, got shape {self.shape}")
        return self.diagonal().sum()

    def cross(self, other, dim: int | None = None) -> Tensor:
        """The 3-vector cross product along ``dim`` (the first dim of size 3 when None)."""
        if dim is None:
            dim = next((i for i, s in enumerate(self.shape) if s == 3), None)
            if dim is None:
                raise ValueError(f"cross: no dimension of size 3 in input of shape {self.shape}")
        d = _dims(dim, self.ndim)[0]
        if self.shape[d] != 3:
            raise ValueError(f"linalg.cross: inputs dimension {d} must have length 3. Got {self.shape[d]}")

        def at(t, order):
            return t[(slice(None),) * d + (np.array(order),)]

        return at(self, [1, 2, 0]) * at(other, [2, 0, 1]) - at(self, [2, 0, 1]) * at(other, [1, 2, 0])

    def dist(self, other, p=2) -> Tensor:
        return (self - other).norm(p)

    # order statistics
    def kthvalue(self, k: int, dim: int = -1, keepdim: builtins.bool = False):
        """``(values, indices)`` of the k-th smallest element along ``dim`` (k from 1)."""
        s = self.sort(dim)
        d = _dims(dim, self.ndim)[0] if self.ndim else 0
        n = self.shape[d] if self.ndim else 1
        if not 1 <= k <= n:
            raise IndexError(f"kthvalue(): selected number k={k} out of range for dimension {d} of size {n}")
        if self.ndim == 0:
            return KthValue(*s)
        sel = (slice(None),) * d + (slice(k - 1, k) if keepdim else k - 1,)
        return KthValue(s.values[sel], s.indices[sel])

    def median(self, dim: int | None = None, keepdim: builtins.bool = False):
        """The lower median (no averaging of the two middle values, as PyTorch); ``median(dim)`` gives
        ``(values, indices)``. A nan in the reduced elements makes the median nan."""
        if dim is None:
            flat = self.reshape(-1)
            if flat.shape[0] == 0:
                return self._wrap(_xp(self).asarray(np.nan, dtype=self.dtype), device=self.device)
            m = flat.kthvalue((flat.shape[0] + 1) // 2, 0).values
            return where(flat.isnan().any(), np.nan, m) if is_floating(self.dtype) else m
        d = _dims(dim, self.ndim)[0] if self.ndim else 0
        n = self.shape[d] if self.ndim else 1
        v, i = self.kthvalue((n + 1) // 2, dim, keepdim)
        if is_floating(self.dtype) and builtins.bool(self.isnan().any()):
            nan = self.isnan().any(dim, keepdim=keepdim)
            first = self.isnan().long().argmax(dim, keepdim=keepdim)
            v = where(nan, np.nan, v)
            i = self._wrap(_xp(self).where(nan.data, first.data, i.data), device=self.device)
        return Median(v, i)

    def unique(self, sorted: builtins.bool = True, return_inverse: builtins.bool = False,
               return_counts: builtins.bool = False, dim: int | None = None):
        """The distinct values (sorted), optionally with the inverse indices and the counts (no gradient)."""
        a = self.numpy()
        res = np.unique(a, return_inverse=return_inverse, return_counts=return_counts, axis=dim)
        res = res if isinstance(res, tuple) else (res,)
        out = [self._constant(res[0])]
        if return_inverse:
            out.append(self._constant(res[1].reshape(a.shape if dim is None else -1).astype(np.int64)))
        if return_counts:
            out.append(self._constant(res[-1].astype(np.int64)))
        return out[0] if len(out) == 1 else tuple(out)

    def bincount(self, weights=None, minlength: int = 0) -> Tensor:
        w = None if weights is None else weights.numpy()
        res = np.bincount(self.numpy(), weights=w, minlength=minlength)
        return self._constant(res if w is not None else res.astype(np.int64))

    def logcumsumexp(self, dim: int) -> Tensor:
        """``log(cumsum(exp(x)))`` along ``dim``, computed without overflow."""
        x = self._floated()
        if x.ndim == 0:
            return x._as_1d(dim).logcumsumexp(0).reshape(())
        return ops.LogCumSumExp.apply(x, dim=_dims(dim, x.ndim)[0])

    def quantile(self, q, dim: int | None = None, keepdim: builtins.bool = False, *,
                 interpolation: str = "linear") -> Tensor:
        """The ``q``-quantiles (a number or a 1-D tensor in [0, 1]) over ``dim`` (all elements when None),
        interpolated between the sorted neighbours as PyTorch (``'linear' 'lower' 'higher' 'nearest'
        'midpoint'``); a nan in the reduced elements gives nan. Differentiable (through sort)."""
        if interpolation not in ("linear", "lower", "higher", "nearest", "midpoint"):
            raise ValueError("quantile() interpolation must be one of linear, lower, higher, midpoint or "
                             f"nearest. Got {interpolation}")
        if not is_floating(self.dtype):
            raise TypeError(f"quantile() input tensor must be either float or double dtype, got {self.dtype}")
        qs = q.numpy() if isinstance(q, TensorMethods) else np.asarray(q, dtype=np.float64)
        if qs.ndim > 1 or (qs.size and (qs.min() < 0 or qs.max() > 1)):
            raise ValueError("quantile() q must be a scalar or 1D tensor with values in [0, 1]")
        x = self.reshape(-1) if dim is None else self
        d = 0 if dim is None else _dims(dim, x.ndim)[0] if x.ndim else 0
        x = x.reshape(1) if x.ndim == 0 else x
        n = x.shape[d]
        v = x.sort(d).values
        nan = x.isnan().any(d, keepdim=True)
        outs = []
        for qq in qs.reshape(-1).tolist():
            pos = qq * (n - 1)
            lo, hi = builtins.int(np.floor(pos)), builtins.int(np.ceil(pos))
            if interpolation == "lower":
                hi = lo
            elif interpolation == "higher":
                lo = hi
            elif interpolation == "nearest":
                lo = hi = builtins.int(np.round(pos))  # half to even, as PyTorch
            t = 0.5 if interpolation == "midpoint" else pos - lo
            a = v[(slice(None),) * d + (slice(lo, lo + 1),)]
            b = v[(slice(None),) * d + (slice(hi, hi + 1),)]
            r = a if lo == hi else a + (b - a) * t
            outs.append(where(nan, np.nan, r))
        out = cat(outs, d) if outs else v[(slice(None),) * d + (slice(0, 0),)]
        if qs.ndim == 0:
            if dim is None:
                return out.reshape((1,) * self.ndim if keepdim else ())
            return out if keepdim else out.squeeze(d)
        out = out.movedim(d, 0)  # the q dim first, as PyTorch
        if dim is None:
            return out.reshape((len(qs),) + ((1,) * self.ndim if keepdim else ()))
        return out.unsqueeze(d + 1) if keepdim else out

    def histc(self, bins: int = 100, min: float = 0, max: float = 0) -> Tensor:  # noqa: A002
        """A histogram of ``bins`` equal bins over [min, max] (the data's range when min == max); no grad."""
        a = self.numpy()
        lo, hi = (builtins.float(min), builtins.float(max))
        if lo == hi and a.size:
            lo, hi = builtins.float(a.min()), builtins.float(a.max())
        if lo == hi:
            lo, hi = lo - 1, hi + 1
        counts, _ = np.histogram(a, bins=bins, range=(lo, hi))
        return self._constant(counts.astype(self.dtype if is_floating(self.dtype) else DEFAULT_FLOAT))

    def __lshift__(self, other) -> Tensor:
        return self._cmp(other, lambda a, b: a << b)

    def __rshift__(self, other) -> Tensor:
        return self._cmp(other, lambda a, b: a >> b)

    bitwise_left_shift, bitwise_right_shift = __lshift__, __rshift__

    def nansum(self, dim=None, keepdim: builtins.bool = False, *, dtype=None) -> Tensor:
        """``sum`` with nan counted as 0."""
        x = where(self.isnan(), 0.0, self) if is_floating(self.dtype) else self
        return x.sum(dim, keepdim, dtype=dtype)

    def nanmean(self, dim=None, keepdim: builtins.bool = False) -> Tensor:
        """``mean`` of the non-nan elements."""
        n = (~self.isnan()).sum(dim, keepdim).to(dtype=self.dtype)
        return self.nansum(dim, keepdim) / n

    def aminmax(self, *, dim=None, keepdim: builtins.bool = False):
        return MinMax(self.amin(dim, keepdim), self.amax(dim, keepdim))

    def addcmul(self, tensor1, tensor2, *, value=1) -> Tensor:
        """``self + value * tensor1 * tensor2``."""
        return self + tensor1 * tensor2 * value

    def addcdiv(self, tensor1, tensor2, *, value=1) -> Tensor:
        """``self + value * tensor1 / tensor2``."""
        return self + tensor1 / tensor2 * value

    def baddbmm(self, batch1, batch2, *, beta=1, alpha=1) -> Tensor:
        """``beta * self + alpha * (batch1 @ batch2)``."""
        prod = batch1.bmm(batch2)
        return (self if beta == 1 else self * beta) + (prod if alpha == 1 else prod * alpha)

    def addmv(self, mat, vec, *, beta=1, alpha=1) -> Tensor:
        prod = mat.mv(vec)
        return (self if beta == 1 else self * beta) + (prod if alpha == 1 else prod * alpha)

    def kron(self, other) -> Tensor:
        """The Kronecker product: blocks ``self[i, j] * other`` (any matching number of dims)."""
        nd = builtins.max(self.ndim, other.ndim)
        a = self.reshape((1,) * (nd - self.ndim) + self.shape)
        b = other.reshape((1,) * (nd - other.ndim) + other.shape)
        ea = a.reshape(tuple(v for s in a.shape for v in (s, 1)))
        eb = b.reshape(tuple(v for s in b.shape for v in (1, s)))
        return (ea * eb).reshape(tuple(x * y for x, y in zip(a.shape, b.shape)))

    def heaviside(self, values) -> Tensor:
        """0 where self < 0, 1 where self > 0, ``values`` where self == 0 (no gradient)."""
        v = values.data if isinstance(values, TensorMethods) else values
        xp = _xp(self)
        res = xp.where(self.data == 0, v, (self.data > 0).astype(self.dtype)).astype(self.dtype)
        return self._wrap(res, device=self.device)

    def isin(self, test_elements, *, invert: builtins.bool = False) -> Tensor:
        t = test_elements.data if isinstance(test_elements, TensorMethods) else np.asarray(test_elements)
        return self._wrap(_xp(self).isin(self.data, t, invert=invert), device=self.device)

    def isposinf(self) -> Tensor:
        return self == np.inf

    def isneginf(self) -> Tensor:
        return self == -np.inf

    def take(self, index) -> Tensor:
        """Elements of the flattened tensor at ``index`` (any shape; the result has index's shape)."""
        idx = index if isinstance(index, TensorMethods) else self._constant(np.asarray(index))
        return self.reshape(-1)[idx]

    def tensor_split(self, indices_or_sections, dim: int = 0) -> tuple:
        """NumPy's array_split: ``n`` nearly equal parts, or cuts at the given indices."""
        d = _dims(dim, self.ndim)[0]
        n = self.shape[d]
        if isinstance(indices_or_sections, builtins.int):
            k = indices_or_sections
            if k <= 0:
                raise ValueError(f"tensor_split: number of sections must be larger than 0, got {k}")
            q, r = divmod(n, k)
            cuts = np.cumsum([q + 1] * r + [q] * (k - r))[:-1].tolist()
        else:
            cuts = [builtins.int(c) for c in indices_or_sections]
        bounds = [0] + cuts + [n]
        return tuple(self[(slice(None),) * d + (slice(lo, builtins.max(lo, hi)),)]
                     for lo, hi in zip(bounds[:-1], bounds[1:]))

    def searchsorted(self, values, *, right: builtins.bool = False, side: str | None = None) -> Tensor:
        """Insertion indices of ``values`` into this sorted tensor (its last dim; no gradient)."""
        side = side or ("right" if right else "left")
        v = values.data if isinstance(values, TensorMethods) else np.asarray(values)
        a = self.numpy()
        vv = to_device(v, "cpu")
        if a.ndim <= 1:
            res = np.searchsorted(a, vv, side=side)
        else:
            flat_a, flat_v = a.reshape(-1, a.shape[-1]), vv.reshape(-1, vv.shape[-1])
            rows = [np.searchsorted(r, q, side=side) for r, q in zip(flat_a, flat_v)]
            res = np.stack(rows).reshape(vv.shape)
        return self._constant(np.asarray(res, dtype=np.int64))

    # in place (tensors outside the graph: data preparation, initialisation, updates under no_grad)
    def add_(self, other, *, alpha=1) -> Tensor:
        return self._inplace(self.add(other, alpha=alpha))

    def sub_(self, other, *, alpha=1) -> Tensor:
        return self._inplace(self.sub(other, alpha=alpha))

    def mul_(self, other) -> Tensor:
        return self._inplace(self.mul(other))

    def div_(self, other, *, rounding_mode=None) -> Tensor:
        return self._inplace(self.div(other, rounding_mode=rounding_mode))

    def pow_(self, exponent) -> Tensor:
        return self._inplace(self.pow(exponent))

    def clamp_(self, min=None, max=None) -> Tensor:  # noqa: A002
        return self._inplace(self.clamp(min, max))

    clip_ = clamp_

    def masked_fill_(self, mask, value) -> Tensor:
        return self._inplace(self.masked_fill(mask, value))

    def index_fill_(self, dim: int, index, value) -> Tensor:
        return self._inplace(self.index_fill(dim, index, value))

    def index_add_(self, dim: int, index, source, *, alpha=1) -> Tensor:
        return self._inplace(self.index_add(dim, index, source, alpha=alpha))

    def index_copy_(self, dim: int, index, source) -> Tensor:
        return self._inplace(self.index_copy(dim, index, source))

    def zero_(self) -> Tensor:
        return self.fill_(0)

    def fill_(self, value) -> Tensor:
        v = value.item() if isinstance(value, TensorMethods) else value
        return self._inplace(self._wrap(_xp(self).full(self.shape, v, dtype=self.dtype), device=self.device))

    def copy_(self, src) -> Tensor:
        s = src if isinstance(src, TensorMethods) else self._constant(np.asarray(src))
        s = s.to(self.device)
        return self._inplace(self._wrap(_xp(self).broadcast_to(s.data.astype(self.dtype), self.shape),
                                        device=self.device))

    def uniform_(self, a: float = 0.0, b: float = 1.0) -> Tensor:
        """Fill with uniform samples from [a, b) (the global generator, ``manual_seed``)."""
        from .random import get_generator

        return self._fill_from(get_generator().uniform(a, b, size=self.shape))

    def normal_(self, mean: float = 0.0, std: float = 1.0) -> Tensor:
        from .random import get_generator

        return self._fill_from(mean + std * get_generator().standard_normal(self.shape))

    def bernoulli_(self, p: float = 0.5) -> Tensor:
        from .random import get_generator

        return self._fill_from(get_generator().random(self.shape) < p)

    def random_(self, low: int = 0, high: int | None = None) -> Tensor:
        """Fill with integers from [low, high) (``random_(high)`` is [0, high))."""
        from .random import get_generator

        if high is None:
            low, high = 0, low
        return self._fill_from(get_generator().integers(low, high, size=self.shape))

    def _fill_from(self, arr) -> Tensor:
        arr = to_device(np.asarray(arr).astype(self.dtype), self.device)
        return self._inplace(self._wrap(arr, device=self.device))

    def abs_(self) -> Tensor:
        return self._inplace(self.abs())

    def neg_(self) -> Tensor:
        return self._inplace(-self)

    def exp_(self) -> Tensor:
        return self._inplace(self.exp())

    def sqrt_(self) -> Tensor:
        return self._inplace(self.sqrt())

    def sigmoid_(self) -> Tensor:
        return self._inplace(self.sigmoid())

    def tanh_(self) -> Tensor:
        return self._inplace(self.tanh())

    def relu_(self) -> Tensor:
        return self._inplace(self.relu())

    def detach_(self) -> Tensor:
        if self._ctx is not None:
            raise RuntimeError("detach_() on a tensor made by an op is not supported; use detach()")
        self.requires_grad = False
        return self

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


def _accumulate(ufunc, a, axis: int):
    """``ufunc.accumulate(a, axis)`` (a running max / min); on the host where the GPU library lacks it."""
    try:
        return ufunc.accumulate(a, axis=axis)
    except (AttributeError, NotImplementedError, TypeError):  # pragma: no cover - older CuPy
        host = getattr(np, ufunc.__name__).accumulate(to_device(a, "cpu"), axis=axis)
        return xp_of_array(a).asarray(host)


def _argsort(a, dim: int, descending: bool):
    """Stable argsort along ``dim`` (int64); descending keeps equal elements in order, nan first."""
    xp = xp_of_array(a)
    if not descending:
        return xp.argsort(a, axis=dim, kind="stable").astype(np.int64)
    n = a.shape[dim]
    rev = xp.flip(a, axis=dim)  # ascending order of the reversed array, reversed, is descending and stable
    return (n - 1 - xp.flip(xp.argsort(rev, axis=dim, kind="stable"), axis=dim)).astype(np.int64)


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
    # NOTE: PyTorch's legacy rule: a 1-D tensor of size 0 is skipped whatever the others' shapes
    shaped = [t for t in tensors if not ops.legacy_empty(t.shape)] or tensors
    ref = shaped[0]
    if ref.ndim == 0:
        raise ValueError("cat: zero-dimensional tensor cannot be concatenated")
    nd = ref.ndim
    d = _dims(dim, nd)[0]
    for t in shaped[1:]:
        if t.ndim != nd or t.shape[:d] + t.shape[d + 1 :] != ref.shape[:d] + ref.shape[d + 1 :]:
            raise ValueError(
                f"cat: shapes {[tt.shape for tt in tensors]} must match except in dim {dim}"
            )
    dt = shaped[0].dtype
    for t in tensors[1:]:
        dt = result_dtype(dt, t.dtype)
    tensors = [_cast(t, dt) for t in tensors]  # PyTorch promotes (int + float -> float)
    return ops.Cat.apply(*tensors, dim=d)


def result_dtype(da, db):
    if da == db:
        return da
    fa, fb = is_floating(da), is_floating(db)
    if fa and fb or not (fa or fb):
        return np.promote_types(da, db)
    return da if fa else db


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


def where(condition, input=None, other=None):
    """Elementwise ``input if condition else other`` (broadcasting); differentiable in input and other.

    ``input`` / ``other`` may be numbers (``where(mask, x, 0.0)``, ``where(mask, 1.0, 0.0)`` gives
    float32); ``where(condition)`` alone is ``condition.nonzero(as_tuple=True)``.
    """
    if input is None and other is None:
        return condition.nonzero(as_tuple=True)
    if input is None or other is None:
        raise TypeError("where(): give both input and other (or only the condition)")
    ref = input if isinstance(input, TensorMethods) else other
    if not isinstance(ref, TensorMethods):
        if not isinstance(condition, TensorMethods):
            raise TypeError("where: condition, input or other must be a Tensor")
        ints = all(isinstance(v, (builtins.int, np.integer)) and not isinstance(v, builtins.bool)
                   for v in (input, other))
        bools = all(isinstance(v, (builtins.bool, np.bool_)) for v in (input, other))
        dt = np.bool_ if bools else np.int64 if ints else DEFAULT_FLOAT
        ref = condition._constant(np.asarray(input, dtype=dt))
        input = ref
    cond = condition if isinstance(condition, TensorMethods) else ref._constant(np.asarray(condition))
    a = ref._other(input) if not isinstance(input, TensorMethods) else input
    b = ref._other(other) if not isinstance(other, TensorMethods) else other
    a, b = _promote(a, b)
    return ops.Where.apply(a, b, cond=cond.data.astype(np.bool_))
