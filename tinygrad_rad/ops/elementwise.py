"""Elementwise ops: broadcasting binary arithmetic, ``where``, casts and device moves, unary math,
dropout's mask.

Each op is one small ``Function``: ``forward`` on raw arrays (written against ``xp``, NumPy or CuPy),
``backward`` beside it with the math of its rule in a comment. ``unbroadcast`` is the backward of
NumPy broadcasting, shared by every op that broadcasts.
"""

from __future__ import annotations

import numpy as np

from ..autograd import Function, is_grad_enabled
from ..device import to_device, xp_of

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
        zero = xp.zeros((), dtype=g.dtype)
        ga = gb = None
        # NOTE: special values as in PyTorch (0^b with b < 0, (-2)^b, a^0 at a = 0 or -inf: nan / +-inf / 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            if self.needs_input_grad[0]:
                # d(a^b)/da = b a^(b-1), taken as 0 where b = 0 (even where a^(b-1) is inf)
                da = g * self.b * self.a ** (self.b - 1)
                ga = unbroadcast(xp.where(self.b == 0, zero, da), self.a_shape)
            if self.needs_input_grad[1]:
                # d(a^b)/db = a^b ln a, taken as 0 where a = 0 and b >= 0 (nan where a < 0)
                cond = (self.a == 0) & (self.b >= 0)
                gb = unbroadcast(xp.where(cond, zero, g * self.out * xp.log(self.a)), self.b_shape)
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
        # d(copy a)/da = 1
        return (g,)


class Cast(Function):
    def forward(self, a, dtype):
        self.in_dtype = a.dtype
        return a.astype(dtype)

    def backward(self, g):
        # identity, cast back to the input's dtype
        return (g.astype(self.in_dtype),)


class ToDevice(Function):
    """Copy to another device. Its output lives on ``device``, not on the input's, hence its own ``apply``."""

    def forward(self, a, device):
        self.src = self.device
        self.device = device
        return to_device(a, device)

    def backward(self, g):
        # identity, copied back to the input's device
        return (to_device(g, self.src),)

    @classmethod
    def apply(cls, t, device):
        ctx = cls()
        ctx.device = t.device
        ctx.needs_input_grad = (t.requires_grad,)
        out = ctx.forward(t.data, device=device)
        res = type(t)._wrap(out, device=device, requires_grad=t.requires_grad and is_grad_enabled())
        if res.requires_grad:
            ctx.link((t,), res)
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


# ------------------------------------------------------------------------------------- dropout
class Dropout(Function):
    def forward(self, x, p, mask):
        # mask already holds 0 or 1/(1-p) (inverted dropout: no rescaling needed at eval)
        self.mask = mask
        return x * mask

    def backward(self, g):
        # d(x m)/dx = m
        return (g * self.mask,)


# -------------------------------------------------------------------- trigonometric / hyperbolic
class Tan(Function):
    def forward(self, a):
        self.out = xp_of(a).tan(a)
        return self.out

    def backward(self, g):
        # d(tan a)/da = 1 + tan^2 a
        return (g * (1 + self.out * self.out),)


class Asin(Function):
    def forward(self, a):
        self.a = a
        with np.errstate(divide="ignore", invalid="ignore"):  # nan / inf outside the domain, silently
            return xp_of(a).arcsin(a)

    def backward(self, g):
        # d(asin a)/da = 1 / sqrt(1 - a^2)
        with np.errstate(divide="ignore", invalid="ignore"):
            return (g / xp_of(g).sqrt(1 - self.a * self.a),)


class Acos(Function):
    def forward(self, a):
        self.a = a
        with np.errstate(divide="ignore", invalid="ignore"):  # nan / inf outside the domain, silently
            return xp_of(a).arccos(a)

    def backward(self, g):
        # d(acos a)/da = -1 / sqrt(1 - a^2)
        with np.errstate(divide="ignore", invalid="ignore"):
            return (-g / xp_of(g).sqrt(1 - self.a * self.a),)


class Atan(Function):
    def forward(self, a):
        self.a = a
        return xp_of(a).arctan(a)

    def backward(self, g):
        # d(atan a)/da = 1 / (1 + a^2)
        return (g / (1 + self.a * self.a),)


class Sinh(Function):
    def forward(self, a):
        self.a = a
        return xp_of(a).sinh(a)

    def backward(self, g):
        # d(sinh a)/da = cosh a
        return (g * xp_of(g).cosh(self.a),)


class Cosh(Function):
    def forward(self, a):
        self.a = a
        return xp_of(a).cosh(a)

    def backward(self, g):
        # d(cosh a)/da = sinh a
        return (g * xp_of(g).sinh(self.a),)


class Asinh(Function):
    def forward(self, a):
        self.a = a
        return xp_of(a).arcsinh(a)

    def backward(self, g):
        # d(asinh a)/da = 1 / sqrt(a^2 + 1)
        return (g / xp_of(g).sqrt(self.a * self.a + 1),)


class Acosh(Function):
    def forward(self, a):
        self.a = a
        with np.errstate(divide="ignore", invalid="ignore"):  # nan / inf outside the domain, silently
            return xp_of(a).arccosh(a)

    def backward(self, g):
        # d(acosh a)/da = 1 / sqrt(a^2 - 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            return (g / xp_of(g).sqrt(self.a * self.a - 1),)


class Atanh(Function):
    def forward(self, a):
        self.a = a
        with np.errstate(divide="ignore", invalid="ignore"):  # nan / inf outside the domain, silently
            return xp_of(a).arctanh(a)

    def backward(self, g):
        # d(atanh a)/da = 1 / (1 - a^2)
        with np.errstate(divide="ignore"):
            return (g / (1 - self.a * self.a),)


# ------------------------------------------------------------------- division with rounding, modulo
class IntegerDivisionByZero(RuntimeError, ZeroDivisionError):
    """Integer ``//``, ``%``, ``fmod`` or rounded ``div`` by zero (PyTorch: RuntimeError)."""


def _check_int_divisor(b) -> None:
    if b.dtype.kind in "iub" and bool((b == 0).any()):
        raise IntegerDivisionByZero("ZeroDivisionError: integer division (or modulo) by zero")


def _trunc_div(a, b):
    """a / b rounded toward zero; exact for integers (no float round trip)."""
    xp = xp_of(a)
    if a.dtype.kind in "iu":
        q = xp.floor_divide(a, b)
        fix = (xp.remainder(a, b) != 0) & ((a < 0) != (b < 0))
        return q + fix.astype(q.dtype)
    with np.errstate(divide="ignore", invalid="ignore"):
        return xp.trunc(a / b)


class RoundedDiv(_Binary):
    """``div(a, b, rounding_mode='trunc' | 'floor')``: piecewise constant, so both gradients are zero
    (as in PyTorch, whose result still has a grad_fn)."""

    def forward(self, a, b, rounding_mode):
        self._check(a, b)
        _check_int_divisor(b)
        if rounding_mode == "trunc":
            return _trunc_div(a, b)
        with np.errstate(divide="ignore", invalid="ignore"):
            return xp_of(a).floor_divide(a, b)

    def backward(self, g):
        # d round(a/b) = 0 almost everywhere
        xp = xp_of(g)
        return xp.zeros(self.a_shape, dtype=g.dtype), xp.zeros(self.b_shape, dtype=g.dtype)


class Fmod(_Binary):
    """C's fmod: the result has the sign of the dividend ``a`` (a - trunc(a/b) b)."""

    def forward(self, a, b):
        self._check(a, b)
        _check_int_divisor(b)
        self.a, self.b = a, b
        with np.errstate(divide="ignore", invalid="ignore"):
            return xp_of(a).fmod(a, b)

    def backward(self, g):
        # fmod(a, b) = a - trunc(a/b) b  =>  d/da = 1, d/db = -trunc(a/b)
        gb = None
        if self.needs_input_grad[1]:
            gb = unbroadcast(-g * _trunc_div(self.a, self.b), self.b_shape)
        return unbroadcast(g, self.a_shape), gb


class Remainder(_Binary):
    """Python's ``%`` (PyTorch's remainder): the result has the sign of the divisor (a - floor(a/b) b)."""

    def forward(self, a, b):
        self._check(a, b)
        _check_int_divisor(b)
        self.a, self.b = a, b
        with np.errstate(divide="ignore", invalid="ignore"):
            return xp_of(a).remainder(a, b)

    def backward(self, g):
        # remainder(a, b) = a - floor(a/b) b  =>  d/da = 1, d/db = -floor(a/b)
        gb = None
        if self.needs_input_grad[1]:
            with np.errstate(divide="ignore", invalid="ignore"):
                gb = unbroadcast(-g * xp_of(g).floor_divide(self.a, self.b), self.b_shape)
        return unbroadcast(g, self.a_shape), gb


# --------------------------------------------------------------------------------- triangular
class Tri(Function):
    """``tril`` / ``triu`` of the last two dims: keep the entries on one side of ``diagonal``."""

    def forward(self, a, upper: bool, diagonal: int = 0):
        xp = xp_of(a)
        n, m = a.shape[-2:]
        if upper:
            self.mask = xp.triu(xp.ones((n, m), dtype=bool), k=diagonal)
        else:
            self.mask = xp.tril(xp.ones((n, m), dtype=bool), k=diagonal)
        return xp.where(self.mask, a, xp.zeros((), dtype=a.dtype))

    def backward(self, g):
        # the kept entries pass their gradient, the zeroed ones get none
        return (g * self.mask,)


class Atan2(_Binary):
    def forward(self, a, b):
        self._check(a, b)
        self.a, self.b = a, b
        return xp_of(a).arctan2(a, b)

    def backward(self, g):
        # d atan2(a, b)/da = b / (a^2 + b^2), d/db = -a / (a^2 + b^2)
        with np.errstate(divide="ignore", invalid="ignore"):
            r = g / (self.a * self.a + self.b * self.b)
        return unbroadcast(r * self.b, self.a_shape), unbroadcast(-r * self.a, self.b_shape)


class Erf(Function):
    def forward(self, a):
        from ..device import backend

        self.a = a
        return backend(self.device).erf(a).reshape(a.shape).astype(a.dtype, copy=False)

    def backward(self, g):
        # d erf(a)/da = 2 / sqrt(pi) e^(-a^2)
        return (g * (2.0 / np.sqrt(np.pi)) * xp_of(g).exp(-self.a * self.a),)
