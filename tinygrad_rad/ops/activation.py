"""Activation functions: clamp, ReLU and its relatives, sigmoid, tanh, GELU, softplus.

ReLU and GELU's ``erf`` run on the device's kernel module (``backend(device)``); the rest are
written against ``xp`` (NumPy or CuPy).
"""

from __future__ import annotations

import math

from ..autograd import Function
from ..device import backend, xp_of


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
        else:  # NOTE: reshape: a kernel may hand a 0-d input back as shape (1,)
            self.out = backend(self.device).relu_forward(a).reshape(a.shape)
        return self.out

    def backward(self, g):
        # d relu(a)/da = [a > 0] (equivalently [out > 0]): one fused kernel pass
        if g.dtype.kind != "f":
            return (g * (self.out > 0),)
        return (backend(self.device).relu_backward(g, self.out).reshape(g.shape),)


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
        self.cdf = 0.5 * (1 + backend(self.device).erf(a / math.sqrt(2)))
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
