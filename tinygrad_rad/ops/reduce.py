"""Reductions: sum, max/min, logsumexp, softmax, log-softmax, cumulative sum.

A reduction's backward copies the gradient back over the reduced dims (``_expand_back``), weighted
by how much each input element contributed.
"""

from __future__ import annotations

import numpy as np

from ..autograd import Function
from ..device import xp_of


def _expand_back(g, shape, dim, keepdim):
    """Reshape a reduced gradient so it broadcasts against the input of shape ``shape``."""
    if dim is None:
        return g.reshape((1,) * len(shape))
    if not keepdim:
        g = g.reshape(tuple(1 if i in dim else s for i, s in enumerate(shape)))
    return g


class Sum(Function):
    def forward(self, a, dim=None, keepdim=False):
        self.shape, self.dim, self.keepdim = a.shape, dim, keepdim
        out = a.sum(axis=dim, keepdims=keepdim)
        return xp_of(a).asarray(out, dtype=a.dtype if a.dtype.kind == "f" else out.dtype)

    def backward(self, g):
        # d(sum a)/da_i = 1: copy g back over the reduced dims
        xp = xp_of(g)
        return (xp.broadcast_to(_expand_back(g, self.shape, self.dim, self.keepdim), self.shape),)


class _MaxMin(Function):
    reduce = "max"

    def forward(self, a, dim=None, keepdim=False, first=False):
        xp = xp_of(a)
        if a.size == 0:
            raise ValueError(f"{self.reduce}() of an empty tensor")
        self.a, self.dim, self.keepdim, self.first = a, dim, keepdim, first
        fn = xp.max if self.reduce == "max" else xp.min
        self.out = xp.asarray(fn(a, axis=dim, keepdims=True))
        if keepdim:
            return self.out
        return self.out.reshape(()) if dim is None else self.out.squeeze(axis=dim)

    def backward(self, g):
        xp = xp_of(g)
        if self.first:
            # max(dim) / min(dim): the whole gradient goes to the returned index (the first extreme)
            (d,) = self.dim
            arg = xp.argmax if self.reduce == "max" else xp.argmin
            idx = xp.expand_dims(arg(self.a, axis=d), d)
            mask = (xp.arange(self.a.shape[d]).reshape((-1,) + (1,) * (self.a.ndim - d - 1)) == idx)
            return (mask.astype(g.dtype) * _expand_back(g, self.a.shape, self.dim, self.keepdim),)
        # amax / full max: the gradient flows to the extreme element(s); ties share it equally
        mask = (self.a == self.out).astype(g.dtype)
        count = mask.sum(axis=self.dim, keepdims=True)
        return (mask / count * _expand_back(g, self.a.shape, self.dim, self.keepdim),)


class Max(_MaxMin):
    reduce = "max"


class Min(_MaxMin):
    reduce = "min"


class LogSumExp(Function):
    def forward(self, a, dim, keepdim=False):
        xp = xp_of(a)
        self.a, self.dim, self.keepdim = a, dim, keepdim
        m = xp.max(a, axis=dim, keepdims=True)
        m = xp.where(xp.isfinite(m), m, 0)
        self.lse = m + xp.log(xp.exp(a - m).sum(axis=dim, keepdims=True))  # stable: shift by the max
        return self.lse if keepdim else self.lse.squeeze(axis=dim)

    def backward(self, g):
        # d lse/da_i = softmax(a)_i
        xp = xp_of(g)
        return (xp.exp(self.a - self.lse) * _expand_back(g, self.a.shape, self.dim, self.keepdim),)


class Softmax(Function):
    def forward(self, a, dim):
        xp = xp_of(a)
        e = xp.exp(a - xp.max(a, axis=dim, keepdims=True))
        self.out = e / e.sum(axis=dim, keepdims=True)
        self.dim = dim
        return self.out

    def backward(self, g):
        # d s_i/da_j = s_i (delta_ij - s_j)  =>  grad_a = s * (g - sum(g * s))
        s = self.out
        return (s * (g - (g * s).sum(axis=self.dim, keepdims=True)),)


class LogSoftmax(Function):
    def forward(self, a, dim):
        xp = xp_of(a)
        shifted = a - xp.max(a, axis=dim, keepdims=True)
        self.out = shifted - xp.log(xp.exp(shifted).sum(axis=dim, keepdims=True))
        self.dim = dim
        return self.out

    def backward(self, g):
        # d logsoftmax_i/da_j = delta_ij - softmax_j  =>  grad_a = g - softmax * sum(g)
        xp = xp_of(g)
        return (g - xp.exp(self.out) * g.sum(axis=self.dim, keepdims=True),)


class CumSum(Function):
    def forward(self, a, dim):
        self.dim = dim
        return xp_of(a).cumsum(a, axis=dim)

    def backward(self, g):
        # out_i = sum_{j<=i} a_j  =>  da_j = sum_{i>=j} g_i: a reversed cumulative sum
        xp = xp_of(g)
        return (xp.flip(xp.cumsum(xp.flip(g, axis=self.dim), axis=self.dim), axis=self.dim),)


def _exclusive_cumprod(a, axis: int, reverse: bool = False):
    """prod_{k<i} a_k along ``axis`` (prod_{k>i} a_k when ``reverse``), computed without division."""
    xp = xp_of(a)
    if reverse:
        return xp.flip(_exclusive_cumprod(xp.flip(a, axis=axis), axis), axis=axis)
    ones = xp.ones_like(xp.take(a, xp.arange(min(1, a.shape[axis])), axis=axis))
    head = xp.cumprod(xp.take(a, xp.arange(max(a.shape[axis] - 1, 0)), axis=axis), axis=axis)
    return xp.concatenate([ones, head], axis=axis)[(slice(None),) * axis + (slice(0, a.shape[axis]),)]


class Prod(Function):
    def forward(self, a, dim=None, keepdim=False):
        xp = xp_of(a)
        self.shape, self.keepdim = a.shape, keepdim
        if dim is None:
            self.flat, dim = True, 0
            a = a.reshape(-1)
        else:
            self.flat = False
        self.a, self.dim = a, dim
        out = a.prod(axis=dim, keepdims=keepdim)
        return xp.asarray(out, dtype=a.dtype if a.dtype.kind == "f" else out.dtype)

    def backward(self, g):
        # d(prod a)/da_i = prod_{k != i} a_k = (prod_{k<i} a_k) (prod_{k>i} a_k): exact at zeros too
        others = _exclusive_cumprod(self.a, self.dim) * _exclusive_cumprod(self.a, self.dim, reverse=True)
        if self.flat:
            return ((g.reshape(1) * others).reshape(self.shape),)
        if not self.keepdim:
            g = xp_of(g).expand_dims(g, self.dim)
        return (g * others,)


class CumProd(Function):
    def forward(self, a, dim):
        self.a, self.dim = a, dim
        return xp_of(a).cumprod(a, axis=dim)

    def backward(self, g):
        # out_i = prod_{k<=i} a_k  =>  da_j = sum_{i>=j} g_i prod_{k<=i, k!=j} a_k = P_j S_j with
        # P_j = prod_{k<j} a_k and S_j = g_j + a_{j+1} S_{j+1} (a backward recurrence: exact at zeros)
        xp = xp_of(g)
        d, n = self.dim, self.a.shape[self.dim]
        a = xp.moveaxis(self.a, d, 0)
        gm = xp.moveaxis(g, d, 0)
        s = xp.empty_like(gm)
        if n:
            s[n - 1] = gm[n - 1]
        for j in range(n - 2, -1, -1):
            s[j] = gm[j] + a[j + 1] * s[j + 1]
        return (xp.moveaxis(_exclusive_cumprod(a, 0) * s, 0, d),)


def _logcumsumexp(a, axis: int, reverse: bool = False):
    """log(cumsum(exp(a))) along ``axis`` without overflow (``np.logaddexp.accumulate``)."""
    xp = xp_of(a)
    if reverse:
        return xp.flip(_logcumsumexp(xp.flip(a, axis=axis), axis), axis=axis)
    if xp is np:
        return np.logaddexp.accumulate(a, axis=axis)
    from ..device import to_device  # pragma: no cover - GPU only: the array library may lack accumulate

    return xp.asarray(np.logaddexp.accumulate(to_device(a, "cpu"), axis=axis))


class LogCumSumExp(Function):
    def forward(self, a, dim):
        self.a, self.dim = a, dim
        with np.errstate(invalid="ignore"):
            self.out = _logcumsumexp(a, dim) if a.size else a.copy()
        return self.out

    def backward(self, g):
        # out_i = log sum_{j<=i} e^{a_j}  =>  da_j = sum_{i>=j} g_i e^{a_j - out_i}; computed in log space for
        # the positive and the negative parts of g (a reversed logcumsumexp each), so nothing overflows
        xp = xp_of(g)
        if not g.size:
            return (g,)
        grad = xp.zeros_like(g)
        with np.errstate(divide="ignore", invalid="ignore"):
            for sign in (1, -1):
                part = sign * g
                w = xp.where(part > 0, xp.log(xp.where(part > 0, part, 1)), -np.inf) - self.out
                grad = grad + sign * xp.exp(_logcumsumexp(w, self.dim, reverse=True) + self.a)
        return (grad,)
