"""Every core op as one small ``Function`` class: forward on arrays, backward with its math beside it.

Elementwise, reduction, movement and matmul ops live here; convolution, pooling, batch norm and the
losses live in :mod:`tinygrad_rad.nn.ops`. Op code is written against ``xp`` (numpy or cupy) so it
runs on both devices; only matmul dispatches to the device's kernel module.
"""

from __future__ import annotations

import math

import numpy as np

from .autograd import Function
from .device import backend, xp_of

# ------------------------------------------------------------------------------------ helpers


def unbroadcast(grad, shape: tuple):
    """Sum ``grad`` down to ``shape``: the backward of NumPy broadcasting.

    Broadcasting copies an input along new leading dims and along dims of size 1, so the gradient
    of each copy must be added back: sum over the leading dims, then over the size-1 dims (keepdims).
    """
    if tuple(grad.shape) == tuple(shape):
        return grad
    lead = grad.ndim - len(shape)
    if lead > 0:
        grad = grad.sum(axis=tuple(range(lead)))
    axes = tuple(i for i, s in enumerate(shape) if s == 1 and grad.shape[i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad.reshape(shape)


class _Binary(Function):
    """Base for broadcasting binary ops: checks shapes and remembers the input shapes."""

    symbol = "?"

    def _check(self, a, b):
        self.a_shape, self.b_shape = a.shape, b.shape
        if a.shape != b.shape:
            try:
                np.broadcast_shapes(a.shape, b.shape)
            except ValueError:
                raise ValueError(
                    f"{type(self).__name__.lower()}: shapes {tuple(a.shape)} and {tuple(b.shape)} cannot be "
                    "broadcast together"
                ) from None


# --------------------------------------------------------------------------- elementwise binary
class Add(_Binary):
    def forward(self, a, b):
        self._check(a, b)
        return a + b

    def backward(self, g):
        # d(a+b)/da = 1, d(a+b)/db = 1
        return unbroadcast(g, self.a_shape), unbroadcast(g, self.b_shape)


class Sub(_Binary):
    def forward(self, a, b):
        self._check(a, b)
        return a - b

    def backward(self, g):
        # d(a-b)/da = 1, d(a-b)/db = -1
        return unbroadcast(g, self.a_shape), unbroadcast(-g, self.b_shape)


class Mul(_Binary):
    def forward(self, a, b):
        self._check(a, b)
        self.a = a if self.needs_input_grad[1] else None
        self.b = b if self.needs_input_grad[0] else None
        return a * b

    def backward(self, g):
        # d(ab)/da = b, d(ab)/db = a
        ga = unbroadcast(g * self.b, self.a_shape) if self.needs_input_grad[0] else None
        gb = unbroadcast(g * self.a, self.b_shape) if self.needs_input_grad[1] else None
        return ga, gb


class Div(_Binary):
    def forward(self, a, b):
        self._check(a, b)
        self.a, self.b = a, b
        return a / b

    def backward(self, g):
        # d(a/b)/da = 1/b, d(a/b)/db = -a/b^2
        ga = unbroadcast(g / self.b, self.a_shape) if self.needs_input_grad[0] else None
        gb = unbroadcast(-g * self.a / (self.b * self.b), self.b_shape) if self.needs_input_grad[1] else None
        return ga, gb


class Pow(_Binary):
    def forward(self, a, b):
        self._check(a, b)
        self.a, self.b = a, b
        self.out = a**b
        return self.out

    def backward(self, g):
        xp = xp_of(g)
        # d(a^b)/da = b a^(b-1), d(a^b)/db = a^b ln a  (taken as 0 where a <= 0)
        ga = gb = None
        if self.needs_input_grad[0]:
            ga = unbroadcast(g * self.b * self.a ** (self.b - 1), self.a_shape)
        if self.needs_input_grad[1]:
            safe = xp.where(self.a > 0, self.a, 1)
            gb = unbroadcast(g * self.out * xp.log(safe), self.b_shape)
        return ga, gb


class PowScalar(Function):
    def forward(self, a, exponent: float):
        self.a, self.p = a, exponent
        if exponent == 2.0:
            return a * a
        return a ** a.dtype.type(exponent)

    def backward(self, g):
        # d(a^p)/da = p a^(p-1)
        p = self.p
        if p == 0.0:
            return (xp_of(g).zeros_like(g),)  # NOTE: not 0 * a^-1, which is nan at a = 0
        if p == 2.0:
            return (g * 2 * self.a,)
        return (g * (p * self.a ** self.a.dtype.type(p - 1)),)


class Maximum(_Binary):
    def forward(self, a, b):
        self._check(a, b)
        xp = xp_of(a)
        self.a, self.b = a, b
        return xp.maximum(a, b)

    def backward(self, g):
        # the gradient goes to the larger input; on ties it is split half/half (as in PyTorch)
        wa = ((self.a > self.b) + 0.5 * (self.a == self.b)).astype(g.dtype)
        return unbroadcast(g * wa, self.a_shape), unbroadcast(g * (1 - wa), self.b_shape)


class Minimum(_Binary):
    def forward(self, a, b):
        self._check(a, b)
        xp = xp_of(a)
        self.a, self.b = a, b
        return xp.minimum(a, b)

    def backward(self, g):
        # the gradient goes to the smaller input; on ties it is split half/half
        wa = ((self.a < self.b) + 0.5 * (self.a == self.b)).astype(g.dtype)
        return unbroadcast(g * wa, self.a_shape), unbroadcast(g * (1 - wa), self.b_shape)


class Where(Function):
    def forward(self, a, b, cond):
        try:
            shape = np.broadcast_shapes(cond.shape, a.shape, b.shape)
        except ValueError:
            raise ValueError(
                f"where: condition {tuple(cond.shape)}, input {tuple(a.shape)} and other {tuple(b.shape)} "
                "cannot be broadcast together"
            ) from None
        self.cond, self.a_shape, self.b_shape, self.shape = cond, a.shape, b.shape, shape
        return xp_of(a).where(cond, a, b)

    def backward(self, g):
        # d/da = [cond], d/db = [not cond]
        xp = xp_of(g)
        zero = xp.zeros((), dtype=g.dtype)
        return (
            unbroadcast(xp.where(self.cond, g, zero), self.a_shape),
            unbroadcast(xp.where(self.cond, zero, g), self.b_shape),
        )


# ---------------------------------------------------------------------------- elementwise unary
class Copy(Function):
    def forward(self, a):
        return a.copy()

    def backward(self, g):
        return (g,)


class Cast(Function):
    def forward(self, a, dtype):
        self.in_dtype = a.dtype
        return a.astype(dtype)

    def backward(self, g):
        # identity, cast back to the input's dtype
        return (g.astype(self.in_dtype),)


class ToDevice(Function):
    def forward(self, a, device):
        from .device import to_device

        self.src = self.device
        self.device = device
        return to_device(a, device)

    def backward(self, g):
        from .device import to_device

        return (to_device(g, self.src),)

    @classmethod
    def apply(cls, t, device):  # the output lives on `device`, not on the input's
        from .autograd import is_grad_enabled
        from .tensor import Tensor

        ctx = cls()
        ctx.device = t.device
        ctx.needs_input_grad = (t.requires_grad,)
        out = ctx.forward(t.data, device=device)
        res = Tensor._wrap(out, device=device, requires_grad=t.requires_grad and is_grad_enabled())
        if res.requires_grad:
            ctx.parents = (t,)
            res._ctx = ctx
        return res


class Neg(Function):
    def forward(self, a):
        return -a

    def backward(self, g):
        # d(-a)/da = -1
        return (-g,)


class Exp(Function):
    def forward(self, a):
        self.out = xp_of(a).exp(a)
        return self.out

    def backward(self, g):
        # d(e^a)/da = e^a
        return (g * self.out,)


class Log(Function):
    def forward(self, a):
        self.a = a
        return xp_of(a).log(a)

    def backward(self, g):
        # d(ln a)/da = 1/a
        return (g / self.a,)


class Sqrt(Function):
    def forward(self, a):
        self.out = xp_of(a).sqrt(a)
        return self.out

    def backward(self, g):
        # d(sqrt a)/da = 1 / (2 sqrt a)
        return (g / (2 * self.out),)


class Abs(Function):
    def forward(self, a):
        self.a = a
        return xp_of(a).abs(a)

    def backward(self, g):
        # d|a|/da = sign(a)  (0 at a = 0)
        return (g * xp_of(g).sign(self.a),)


class Sin(Function):
    def forward(self, a):
        self.a = a
        return xp_of(a).sin(a)

    def backward(self, g):
        # d(sin a)/da = cos a
        return (g * xp_of(g).cos(self.a),)


class Cos(Function):
    def forward(self, a):
        self.a = a
        return xp_of(a).cos(a)

    def backward(self, g):
        # d(cos a)/da = -sin a
        return (-g * xp_of(g).sin(self.a),)


class Log1p(Function):
    def forward(self, a):
        self.a = a
        return xp_of(a).log1p(a)

    def backward(self, g):
        # d ln(1 + a)/da = 1 / (1 + a)
        return (g / (1 + self.a),)


class Expm1(Function):
    def forward(self, a):
        self.out = xp_of(a).expm1(a)
        return self.out

    def backward(self, g):
        # d(e^a - 1)/da = e^a = out + 1
        return (g * (self.out + 1),)


class CumSum(Function):
    def forward(self, a, dim):
        self.dim = dim
        return xp_of(a).cumsum(a, axis=dim)

    def backward(self, g):
        # out_i = sum_{j<=i} a_j  =>  da_j = sum_{i>=j} g_i: a reversed cumulative sum
        xp = xp_of(g)
        return (xp.flip(xp.cumsum(xp.flip(g, axis=self.dim), axis=self.dim), axis=self.dim),)


class Clamp(Function):
    def forward(self, a, min=None, max=None):
        self.a, self.lo, self.hi = a, min, max
        return xp_of(a).clip(a, min, max).astype(a.dtype, copy=False)

    def backward(self, g):
        # d clamp(a)/da = 1 inside [min, max], 0 outside
        mask = xp_of(g).ones(self.a.shape, dtype=bool)
        if self.lo is not None:
            mask &= self.a >= self.lo
        if self.hi is not None:
            mask &= self.a <= self.hi
        return (g * mask,)


class Relu(Function):
    def forward(self, a):
        if a.dtype.kind != "f":  # integer tensors: NumPy/CuPy's maximum (no kernel needed)
            self.out = xp_of(a).maximum(a, 0)
        else:
            self.out = backend(self.device).relu_forward(a)
        return self.out

    def backward(self, g):
        # d relu(a)/da = [a > 0] (equivalently [out > 0]): one fused kernel pass
        if g.dtype.kind != "f":
            return (g * (self.out > 0),)
        return (backend(self.device).relu_backward(g, self.out),)


class LeakyRelu(Function):
    def forward(self, a, negative_slope: float):
        self.a, self.s = a, negative_slope
        return xp_of(a).where(a > 0, a, a * a.dtype.type(negative_slope))

    def backward(self, g):
        # d/da = 1 if a > 0 else slope
        return (xp_of(g).where(self.a > 0, g, g * g.dtype.type(self.s)),)


class Elu(Function):
    def forward(self, a, alpha: float):
        xp = xp_of(a)
        self.a, self.alpha = a, alpha
        self.neg = alpha * xp.expm1(xp.minimum(a, 0))
        return xp.where(a > 0, a, self.neg).astype(a.dtype, copy=False)

    def backward(self, g):
        # d/da = 1 if a > 0 else alpha e^a  (= elu(a) + alpha)
        return (xp_of(g).where(self.a > 0, g, g * (self.neg + self.alpha)).astype(g.dtype, copy=False),)


def _stable_sigmoid(xp, a):
    # sigma(a) = 1 / (1 + e^-a), computed as e^a / (1 + e^a) for a < 0 so e^(-a) never overflows
    e = xp.exp(-xp.abs(a))
    return xp.where(a >= 0, 1 / (1 + e), e / (1 + e)).astype(a.dtype, copy=False)


class Sigmoid(Function):
    def forward(self, a):
        self.out = _stable_sigmoid(xp_of(a), a)
        return self.out

    def backward(self, g):
        # d sigma/da = sigma (1 - sigma)
        return (g * self.out * (1 - self.out),)


class Tanh(Function):
    def forward(self, a):
        self.out = xp_of(a).tanh(a)
        return self.out

    def backward(self, g):
        # d tanh/da = 1 - tanh^2
        return (g * (1 - self.out * self.out),)


def _erf(xp, a):
    if xp is np:
        from .kernels.cpu import erf

        return erf(a)
    import cupyx.scipy.special  # pragma: no cover - GPU only

    return cupyx.scipy.special.erf(a)  # pragma: no cover


class Gelu(Function):
    def forward(self, a, approximate: str = "none"):
        xp = xp_of(a)
        self.a, self.approx = a, approximate
        if approximate == "tanh":
            k = math.sqrt(2 / math.pi)
            self.t = xp.tanh(k * (a + 0.044715 * a**3))
            return (0.5 * a * (1 + self.t)).astype(a.dtype, copy=False)
        if approximate != "none":
            raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.cdf = 0.5 * (1 + _erf(xp, a / math.sqrt(2)))
        return (a * self.cdf).astype(a.dtype, copy=False)

    def backward(self, g):
        xp = xp_of(g)
        a = self.a
        if self.approx == "tanh":
            # d/da [a/2 (1 + tanh u)] = (1 + tanh u)/2 + a/2 (1 - tanh^2 u) du/da, u = k(a + 0.044715 a^3)
            k = math.sqrt(2 / math.pi)
            du = k * (1 + 3 * 0.044715 * a * a)
            d = 0.5 * (1 + self.t) + 0.5 * a * (1 - self.t * self.t) * du
        else:
            # d/da [a Phi(a)] = Phi(a) + a phi(a)
            d = self.cdf + a * xp.exp(-0.5 * a * a) / math.sqrt(2 * math.pi)
        return ((g * d).astype(g.dtype, copy=False),)


class Softplus(Function):
    def forward(self, a, beta: float = 1.0, threshold: float = 20.0):
        xp = xp_of(a)
        self.a, self.beta, self.thr = a, beta, threshold
        z = beta * a
        # log(1 + e^z) = max(z, 0) + log1p(e^-|z|): never overflows; linear above threshold
        sp = (xp.maximum(z, 0) + xp.log1p(xp.exp(-xp.abs(z)))) / beta
        return xp.where(z > threshold, a, sp).astype(a.dtype, copy=False)

    def backward(self, g):
        # d softplus/da = sigma(beta a)  (1 above threshold)
        xp = xp_of(g)
        z = self.beta * self.a
        return (xp.where(z > self.thr, g, g * _stable_sigmoid(xp, z)).astype(g.dtype, copy=False),)


# ------------------------------------------------------------------------------------ reductions
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


# -------------------------------------------------------------------------------------- movement
class Reshape(Function):
    def forward(self, a, shape):
        self.in_shape = a.shape
        return a.reshape(shape)

    def backward(self, g):
        # reshape moves no values: reshape the gradient back
        return (g.reshape(self.in_shape),)


class Permute(Function):
    def forward(self, a, order):
        self.order = order
        return a.transpose(order)

    def backward(self, g):
        # undo the permutation with its inverse
        return (g.transpose(np.argsort(self.order)),)


class Expand(Function):
    def forward(self, a, shape):
        self.in_shape = a.shape
        return xp_of(a).broadcast_to(a, shape)

    def backward(self, g):
        # each input element was copied: sum the copies' gradients
        return (unbroadcast(g, self.in_shape),)


def _is_basic_index(index: tuple) -> bool:
    return all(isinstance(i, (int, slice, type(None), type(Ellipsis))) for i in index)


class GetItem(Function):
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
    from .tensor import Tensor

    if not isinstance(index, tuple):
        index = (index,)
    norm = []
    for i in index:
        if isinstance(i, Tensor):
            i = i.data
        elif isinstance(i, (list, np.ndarray)):
            i = np.asarray(i)
        if hasattr(i, "dtype") and hasattr(i, "shape") and not isinstance(i, np.generic):
            if i.dtype.kind == "f":
                raise IndexError(f"tensors used as indices must be integer or boolean, got {i.dtype}")
            if t.device != "cpu" or xp_of(i) is not np:
                from .device import to_device

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


# ---------------------------------------------------------------------------------------- matmul
class MatMul(Function):
    """``a @ b`` for a of shape (..., n, k) and b of shape (..., k, m) with broadcast batch dims."""

    def forward(self, a, b):
        self.a, self.b = a, b
        return backend(self.device).matmul(a, b)

    def backward(self, g):
        # C = A B  =>  dA = G B^T, dB = A^T G  (summed over broadcast batch dims)
        bk = backend(self.device)
        ga = gb = None
        if self.needs_input_grad[0]:
            ga = unbroadcast(bk.matmul(g, self.b.swapaxes(-1, -2)), self.a.shape)
        if self.needs_input_grad[1]:
            gb = unbroadcast(bk.matmul(self.a.swapaxes(-1, -2), g), self.b.shape)
        return ga, gb


def matmul(a, b):
    """``a @ b`` with NumPy/PyTorch rules for 1-D operands (a vector is promoted, then squeezed)."""
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: both operands need at least 1 dim, got shapes {a.shape} and {b.shape}")
    if a.dtype != b.dtype:
        raise TypeError(f"matmul: dtypes differ ({a.dtype} and {b.dtype}); cast one with .to(dtype)")
    a2 = a.unsqueeze(0) if a.ndim == 1 else a
    b2 = b.unsqueeze(-1) if b.ndim == 1 else b
    if a2.shape[-1] != b2.shape[-2]:
        raise ValueError(
            f"matmul: shapes {a.shape} and {b.shape} are not aligned ({a2.shape[-1]} != {b2.shape[-2]})"
        )
    try:
        np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2])
    except ValueError:
        raise ValueError(
            f"matmul: batch dims of shapes {a.shape} and {b.shape} cannot be broadcast"
        ) from None
    out = MatMul.apply(a2, b2)
    if a.ndim == 1:
        out = out.squeeze(-2)
    if b.ndim == 1:
        out = out.squeeze(-1)
    return out
