"""The module-level functions of PyTorch's ``torch.*`` namespace: ``tr.add(x, y)``, ``tr.cumsum(x, 1)``,
``tr.einsum("ij,jk->ik", a, b)``, ``tr.std_mean(x, dim=0)`` ... Each calls the Tensor method of the same
name (see :mod:`tinygrad_rad.tensor_methods`), so the two spellings always agree.

    >>> import tinygrad_rad as tr
    >>> tr.remainder(tr.tensor([-7, 7]), 2)      # the sign of the divisor, as Python's %
    tensor([1, 1])
"""

from __future__ import annotations

import builtins

import numpy as np

from . import ops
from .autograd import enable_grad, no_grad, set_grad_enabled  # noqa: F401  (set_grad_enabled: re-exported)
from .dtypes import DEFAULT_FLOAT, is_floating, to_dtype
from .tensor import Tensor, cat, stack
from .tensor_methods import result_dtype
from .tensor_methods import where as _where


def _t(x, like=None) -> Tensor:
    """A number or array as a tensor (on ``like``'s device and of a matching dtype when given)."""
    if isinstance(x, Tensor):
        return x
    if like is not None:
        return like._other(x)
    return Tensor(x)


# ------------------------------------------------------------------------------------- arithmetic
def add(input, other, *, alpha=1) -> Tensor:  # noqa: A002
    """``input + alpha * other``."""
    if not isinstance(input, Tensor):
        input = _t(input, other)  # noqa: A001
    return input.add(other, alpha=alpha)


def sub(input, other, *, alpha=1) -> Tensor:  # noqa: A002
    """``input - alpha * other``."""
    if not isinstance(input, Tensor):
        input = _t(input, other)  # noqa: A001
    return input.sub(other, alpha=alpha)


subtract = sub


def mul(input, other) -> Tensor:  # noqa: A002
    if not isinstance(input, Tensor):
        return other.__rmul__(input)
    return input.mul(other)


multiply = mul


def div(input, other, *, rounding_mode: str | None = None) -> Tensor:  # noqa: A002
    """True division, or rounded with ``rounding_mode='trunc'`` (toward zero) / ``'floor'`` (down)."""
    if not isinstance(input, Tensor):
        input = _t(input, other)  # noqa: A001
    return input.div(other, rounding_mode=rounding_mode)


divide = true_divide = div


def floor_divide(input, other) -> Tensor:  # noqa: A002
    return div(input, other, rounding_mode="floor")


def fmod(input, other) -> Tensor:  # noqa: A002
    """``input - trunc(input / other) * other``: the sign of the dividend."""
    return _t(input, other if isinstance(other, Tensor) else None).fmod(other)


def remainder(input, other) -> Tensor:  # noqa: A002
    """``input - floor(input / other) * other``: the sign of the divisor (Python's ``%``)."""
    if not isinstance(input, Tensor):
        return other.__rmod__(input)
    return input.remainder(other)


def pow(input, exponent) -> Tensor:  # noqa: A001, A002
    """``input ** exponent``; ``input`` may be a number (``tr.pow(2, x)``)."""
    if not isinstance(input, Tensor):
        return exponent.__rpow__(input)
    return input.pow(exponent)


def neg(input) -> Tensor:  # noqa: A002
    return -input


negative = neg


def matmul(input, other) -> Tensor:  # noqa: A002
    return input @ other


mm = bmm = matmul


def einsum(equation: str, *operands) -> Tensor:
    """``einsum("bij,bjk->bik", a, b)``: ellipsis broadcasting, implicit outputs, repeated letters
    (diagonals); the backward of each operand is an einsum of the gradient with the other operands."""
    return ops.einsum(equation, *operands)


def maximum(input, other) -> Tensor:  # noqa: A002
    return input.maximum(other)


def minimum(input, other) -> Tensor:  # noqa: A002
    return input.minimum(other)


def clamp(input, min=None, max=None) -> Tensor:  # noqa: A002
    return input.clamp(min, max)


clip = clamp


def where(condition, input=None, other=None):  # noqa: A002
    """``input`` where ``condition`` else ``other`` (numbers allowed); ``where(cond)`` is
    ``nonzero(cond, as_tuple=True)``."""
    return _where(condition, input, other)


def isclose(input, other, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False) -> Tensor:  # noqa: A002
    return input.isclose(other, rtol=rtol, atol=atol, equal_nan=equal_nan)


def allclose(input, other, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False) -> bool:  # noqa: A002
    return input.allclose(other, rtol=rtol, atol=atol, equal_nan=equal_nan)


def equal(input, other) -> bool:  # noqa: A002
    """True when both have the same shape and the same elements."""
    return input.shape == other.shape and builtins.bool((input.data == other.data).all())


# ----------------------------------------------------------------------------- unary functions
def _unary(name):
    def fn(input) -> Tensor:  # noqa: A002
        return getattr(input, name)()

    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = f"``input.{name}()`` elementwise."
    return fn


exp = _unary("exp")
log = _unary("log")
sqrt = _unary("sqrt")
rsqrt = _unary("rsqrt")
abs = _unary("abs")  # noqa: A001
sin = _unary("sin")
cos = _unary("cos")
tan = _unary("tan")
asin = arcsin = _unary("asin")
acos = arccos = _unary("acos")
atan = arctan = _unary("atan")
sinh = _unary("sinh")
cosh = _unary("cosh")
asinh = arcsinh = _unary("asinh")
acosh = arccosh = _unary("acosh")
atanh = arctanh = _unary("atanh")
log1p = _unary("log1p")
expm1 = _unary("expm1")
square = _unary("square")
reciprocal = _unary("reciprocal")
sign = _unary("sign")
floor = _unary("floor")
ceil = _unary("ceil")
round = _unary("round")  # noqa: A001
sigmoid = _unary("sigmoid")
tanh = _unary("tanh")
relu = _unary("relu")


def softmax(input, dim: int) -> Tensor:  # noqa: A002
    return input.softmax(dim)


def log_softmax(input, dim: int) -> Tensor:  # noqa: A002
    return input.log_softmax(dim)


# ------------------------------------------------------------------------------------ reductions
def sum(input, dim=None, keepdim: bool = False, *, dtype=None) -> Tensor:  # noqa: A001, A002
    return input.sum(dim, keepdim, dtype=dtype)


def mean(input, dim=None, keepdim: bool = False) -> Tensor:  # noqa: A002
    return input.mean(dim, keepdim)


def prod(input, dim=None, keepdim: bool = False, *, dtype=None) -> Tensor:  # noqa: A002
    return input.prod(dim, keepdim, dtype=dtype)


def std(input, dim=None, unbiased=None, keepdim: bool = False, *, correction=None) -> Tensor:  # noqa: A002
    return input.std(dim, unbiased, keepdim, correction=correction)


def var(input, dim=None, unbiased=None, keepdim: bool = False, *, correction=None) -> Tensor:  # noqa: A002
    return input.var(dim, unbiased, keepdim, correction=correction)


def var_mean(input, dim=None, unbiased=None, keepdim: bool = False, *, correction=None) -> tuple:  # noqa: A002
    """``(var, mean)`` in one call, as ``torch.var_mean`` (``correction=1``, i.e. unbiased, by default)."""
    number = isinstance(unbiased, (int, builtins.float)) and not isinstance(unbiased, builtins.bool)
    if number and correction is None:
        correction, unbiased = unbiased, None  # NOTE: PyTorch also takes var_mean(x, dim, correction)
    return (input.var(dim, unbiased, keepdim, correction=correction), input.mean(dim, keepdim))


def std_mean(input, dim=None, unbiased=None, keepdim: bool = False, *, correction=None) -> tuple:  # noqa: A002
    """``(std, mean)`` in one call, as ``torch.std_mean``."""
    v, m = var_mean(input, dim, unbiased, keepdim, correction=correction)
    return v.sqrt(), m


def max(input, dim=None, keepdim: bool = False):  # noqa: A001, A002
    """``max(x)`` (a 0-d tensor), ``max(x, dim)`` (values, indices) or ``max(x, y)`` (elementwise)."""
    return input.max(dim, keepdim)


def min(input, dim=None, keepdim: bool = False):  # noqa: A001, A002
    return input.min(dim, keepdim)


def amax(input, dim=None, keepdim: bool = False) -> Tensor:  # noqa: A002
    return input.amax(dim, keepdim)


def amin(input, dim=None, keepdim: bool = False) -> Tensor:  # noqa: A002
    return input.amin(dim, keepdim)


def argmax(input, dim=None, keepdim: bool = False) -> Tensor:  # noqa: A002
    return input.argmax(dim, keepdim)


def argmin(input, dim=None, keepdim: bool = False) -> Tensor:  # noqa: A002
    return input.argmin(dim, keepdim)


def logsumexp(input, dim, keepdim: bool = False) -> Tensor:  # noqa: A002
    return input.logsumexp(dim, keepdim)


def all(input, dim=None, keepdim: bool = False) -> Tensor:  # noqa: A001, A002
    return input.all(dim, keepdim)


def any(input, dim=None, keepdim: bool = False) -> Tensor:  # noqa: A001, A002
    return input.any(dim, keepdim)


def norm(input, p=2, dim=None, keepdim: bool = False) -> Tensor:  # noqa: A002
    return input.norm(p, dim, keepdim)


def cumsum(input, dim: int, *, dtype=None) -> Tensor:  # noqa: A002
    return input.cumsum(dim, dtype=dtype)


def cumprod(input, dim: int, *, dtype=None) -> Tensor:  # noqa: A002
    return input.cumprod(dim, dtype=dtype)


def cummax(input, dim: int):  # noqa: A002
    return input.cummax(dim)


def cummin(input, dim: int):  # noqa: A002
    return input.cummin(dim)


def count_nonzero(input, dim=None) -> Tensor:  # noqa: A002
    return input.count_nonzero(dim)


# -------------------------------------------------------------------------- movement / indexing
def flatten(input, start_dim: int = 0, end_dim: int = -1) -> Tensor:  # noqa: A002
    return input.flatten(start_dim, end_dim)


def reshape(input, shape) -> Tensor:  # noqa: A002
    return input.reshape(shape)


def permute(input, dims) -> Tensor:  # noqa: A002
    return input.permute(*dims)


def transpose(input, dim0: int, dim1: int) -> Tensor:  # noqa: A002
    return input.transpose(dim0, dim1)


swapaxes = swapdims = transpose


def squeeze(input, dim=None) -> Tensor:  # noqa: A002
    return input.squeeze(dim)


def unsqueeze(input, dim: int) -> Tensor:  # noqa: A002
    return input.unsqueeze(dim)


def flip(input, dims) -> Tensor:  # noqa: A002
    return input.flip(dims)


def roll(input, shifts, dims=None) -> Tensor:  # noqa: A002
    return input.roll(shifts, dims)


def tile(input, dims) -> Tensor:  # noqa: A002
    return input.tile(dims)


def tril(input, diagonal: int = 0) -> Tensor:  # noqa: A002
    return input.tril(diagonal)


def triu(input, diagonal: int = 0) -> Tensor:  # noqa: A002
    return input.triu(diagonal)


def gather(input, dim: int, index) -> Tensor:  # noqa: A002
    return input.gather(dim, index)


def take_along_dim(input, indices, dim: int | None = None) -> Tensor:  # noqa: A002
    return input.take_along_dim(indices, dim)


def index_select(input, dim: int, index) -> Tensor:  # noqa: A002
    return input.index_select(dim, index)


def scatter(input, dim: int, index, src=None, *, value=None, reduce=None) -> Tensor:  # noqa: A002
    return input.scatter(dim, index, src, value=value, reduce=reduce)


def scatter_add(input, dim: int, index, src) -> Tensor:  # noqa: A002
    return input.scatter_add(dim, index, src)


def scatter_reduce(input, dim: int, index, src, reduce: str, *, include_self: bool = True) -> Tensor:  # noqa: A002
    return input.scatter_reduce(dim, index, src, reduce, include_self=include_self)


def sort(input, dim: int = -1, descending: bool = False, stable: bool = False):  # noqa: A002
    return input.sort(dim, descending, stable)


def argsort(input, dim: int = -1, descending: bool = False, stable: bool = False) -> Tensor:  # noqa: A002
    return input.argsort(dim, descending, stable)


def msort(input) -> Tensor:  # noqa: A002
    return input.msort()


def topk(input, k: int, dim: int = -1, largest: bool = True, sorted: bool = True):  # noqa: A002
    return input.topk(k, dim, largest, sorted)


def nonzero(input, *, as_tuple: bool = False):  # noqa: A002
    return input.nonzero(as_tuple=as_tuple)


def argwhere(input) -> Tensor:  # noqa: A002
    return input.nonzero()


def clone(input) -> Tensor:  # noqa: A002
    return input.clone()


def numel(input) -> int:  # noqa: A002
    return input.numel()


def is_tensor(x) -> bool:
    return isinstance(x, Tensor)


def is_floating_point(input) -> bool:  # noqa: A002
    return is_floating(input.dtype)


# ------------------------------------------------------------- more torch.* functions, each a Tensor method
def _method(name: str, doc: str | None = None):
    def fn(input, *args, **kwargs):  # noqa: A002
        return getattr(input, name)(*args, **kwargs)

    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = doc or f"``input.{name}(*args, **kwargs)``."
    return fn


log2 = _method("log2")
log10 = _method("log10")
exp2 = _method("exp2")
erf = _method("erf")
logit = _method("logit")
xlogy = _method("xlogy")
atan2 = arctan2 = _method("atan2")
hypot = _method("hypot")
logaddexp = _method("logaddexp")
lerp = _method("lerp")
float_power = _method("float_power")
deg2rad = _method("deg2rad")
rad2deg = _method("rad2deg")
trunc = fix = _method("trunc")
frac = _method("frac")
isnan = _method("isnan")
isinf = _method("isinf")
isfinite = _method("isfinite")
nan_to_num = _method("nan_to_num")
logical_and = _method("logical_and")
logical_or = _method("logical_or")
logical_xor = _method("logical_xor")
logical_not = _method("logical_not")
bitwise_and = _method("bitwise_and")
bitwise_or = _method("bitwise_or")
bitwise_xor = _method("bitwise_xor")
bitwise_not = _method("bitwise_not")
movedim = moveaxis = _method("movedim")
unbind = _method("unbind")
narrow = _method("narrow")
rot90 = _method("rot90")
diff = _method("diff")
repeat_interleave = _method("repeat_interleave")
masked_select = _method("masked_select")
index_add = _method("index_add")
index_copy = _method("index_copy")
index_fill = _method("index_fill")
dot = inner = _method("dot")
outer = ger = _method("outer")
mv = _method("mv")
addmm = _method("addmm")
diagonal = _method("diagonal")
diag = _method("diag")
trace = _method("trace")
cross = _method("cross")
dist = _method("dist")
kthvalue = _method("kthvalue")
median = _method("median")
unique = _method("unique")
bincount = _method("bincount")
broadcast_to = _method("broadcast_to")
t = _method("t")


def flipud(input) -> Tensor:  # noqa: A002
    return input.flip(0)


def fliplr(input) -> Tensor:  # noqa: A002
    return input.flip(1)


def broadcast_shapes(*shapes) -> tuple:
    return tuple(np.broadcast_shapes(*[tuple(s) if not isinstance(s, int) else (s,) for s in shapes]))


def broadcast_tensors(*tensors) -> tuple:
    shape = broadcast_shapes(*[x.shape for x in tensors])
    return tuple(x.expand(shape) for x in tensors)


def cdist(x1, x2, p: float = 2.0) -> Tensor:
    """Pairwise p-norm distances between the rows of ``x1`` (..., P, M) and ``x2`` (..., R, M)."""
    d = x1.unsqueeze(-2) - x2.unsqueeze(-3)
    if p == 2.0:
        return (d * d).sum(-1).sqrt()
    return d.norm(p, dim=-1)


def meshgrid(*tensors, indexing: str = "ij") -> tuple:
    """Coordinate grids (``indexing='ij'`` as PyTorch's default, or ``'xy'``)."""
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        tensors = tuple(tensors[0])
    if indexing not in ("ij", "xy"):
        raise ValueError(f"meshgrid: indexing must be 'ij' or 'xy', got {indexing!r}")
    ts = list(tensors)
    if indexing == "xy" and len(ts) >= 2:
        ts[0], ts[1] = ts[1], ts[0]
    n = len(ts)
    shape = tuple(x.numel() for x in ts)
    grids = [x.reshape((1,) * i + (-1,) + (1,) * (n - i - 1)).expand(shape) for i, x in enumerate(ts)]
    if indexing == "xy" and n >= 2:  # 'xy' is 'ij' of (y, x, ...) with the first two grids swapped back
        grids[0], grids[1] = grids[1], grids[0]
    return tuple(grids)


def hstack(tensors) -> Tensor:
    tensors = list(tensors)
    return cat(tensors, 0 if tensors[0].ndim == 1 else 1)


def vstack(tensors) -> Tensor:
    return cat([x.reshape(1, -1) if x.ndim < 2 else x for x in tensors], 0)


row_stack = vstack


def dstack(tensors) -> Tensor:
    out = []
    for x in tensors:
        x = x.reshape(1, -1, 1) if x.ndim < 2 else x
        out.append(x.unsqueeze(-1) if x.ndim == 2 else x)
    return cat(out, 2)


def column_stack(tensors) -> Tensor:
    return cat([x.reshape(-1, 1) if x.ndim < 2 else x for x in tensors], 1)


def as_tensor(data, dtype=None, device=None) -> Tensor:
    """``data`` as a tensor without a copy where it already is one (of that dtype and device)."""
    if isinstance(data, Tensor):
        return data.to(device=device, dtype=dtype)
    return Tensor(data, dtype=dtype, device=device)


asarray = as_tensor


def get_default_dtype():
    return DEFAULT_FLOAT


def finfo(dtype=None):
    """NumPy's finfo of the dtype (``.eps``, ``.max``, ``.min``, ``.tiny``), as torch.finfo."""
    return np.finfo(DEFAULT_FLOAT if dtype is None else to_dtype(dtype))


def iinfo(dtype):
    return np.iinfo(to_dtype(dtype))


def promote_types(type1, type2):
    return result_dtype(to_dtype(type1), to_dtype(type2))


def inference_mode(mode: bool = True):
    """PyTorch's ``inference_mode`` (here the same as ``no_grad``); usable as a decorator too."""
    if callable(mode):  # @inference_mode without parentheses
        return no_grad()(mode)
    return no_grad() if mode else enable_grad()

nansum = _method("nansum")
nanmean = _method("nanmean")
aminmax = _method("aminmax")
addcmul = _method("addcmul")
addcdiv = _method("addcdiv")
baddbmm = _method("baddbmm")
addmv = _method("addmv")
kron = _method("kron")
heaviside = _method("heaviside")
isin = _method("isin")
isposinf = _method("isposinf")
isneginf = _method("isneginf")
take = _method("take")
tensor_split = _method("tensor_split")


def searchsorted(sorted_sequence, input, *, right: bool = False, side: str | None = None) -> Tensor:  # noqa: A002
    if not isinstance(input, Tensor):
        input = Tensor(input)  # noqa: A001
    return sorted_sequence.searchsorted(input, right=right, side=side)


def bucketize(input, boundaries, *, right: bool = False) -> Tensor:  # noqa: A002
    """The bucket of each element: ``boundaries[i-1] < x <= boundaries[i]`` (``right``: ``<=``, ``<``)."""
    return boundaries.searchsorted(input, right=right)


def tensordot(a, b, dims=2) -> Tensor:
    """Contract the last ``dims`` dims of ``a`` with the first of ``b`` (or given dim lists), via einsum."""
    if isinstance(dims, int):
        da, db = list(range(a.ndim - dims, a.ndim)), list(range(dims))
    else:
        da, db = [list(d) if isinstance(d, (list, tuple)) else [d] for d in dims]
    letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    sa = list(letters[: a.ndim])
    sb = list(letters[a.ndim : a.ndim + b.ndim])
    for i, j in zip(da, db):
        sb[j % b.ndim] = sa[i % a.ndim]
    out = [c for i, c in enumerate(sa) if i not in [d % a.ndim for d in da]]
    out += [c for j, c in enumerate(sb) if j not in [d % b.ndim for d in db]]
    return ops.einsum("".join(sa) + "," + "".join(sb) + "->" + "".join(out), a, b)
logcumsumexp = _method("logcumsumexp")
quantile = _method("quantile")
histc = _method("histc")
bitwise_left_shift = _method("bitwise_left_shift")
bitwise_right_shift = _method("bitwise_right_shift")


def block_diag(*tensors) -> Tensor:
    """The block-diagonal matrix of the given matrices (0-d and 1-D inputs count as one row)."""
    mats = [x.reshape(1, -1) if x.ndim < 2 else x for x in tensors]
    if builtins.any(m.ndim != 2 for m in mats):
        raise ValueError("block_diag: Input tensors must have 2 or fewer dimensions")
    width, left, rows = builtins.sum(m.shape[1] for m in mats), 0, []
    for m in mats:
        rows.append(m.pad((left, width - left - m.shape[1])))
        left += m.shape[1]
    return cat(rows, 0)


def cartesian_prod(*tensors) -> Tensor:
    """All combinations of the elements of the 1-D inputs, one per row (a single input comes back as is)."""
    if len(tensors) == 1:
        return tensors[0]
    return stack([g.reshape(-1) for g in meshgrid(*tensors, indexing="ij")], 1)
