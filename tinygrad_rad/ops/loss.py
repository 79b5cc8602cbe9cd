"""The fused softmax-cross-entropy loss (log-softmax + weighted NLL in one op)."""

from __future__ import annotations

from ..autograd import Function
from ..device import xp_of


class SoftmaxCrossEntropy(Function):
    """Fused log_softmax + weighted NLL for logits (M, C) and a dense per-row target distribution.

    ``target`` is (M, C) with the weight of each class folded in; the loss is
    ``-sum(target * log_softmax(x)) * scale``.
    """

    def forward(self, x, target, scale):
        xp = xp_of(x)
        shifted = x - x.max(axis=1, keepdims=True)
        lse = xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))
        logp = shifted - lse
        self.logp, self.target, self.scale = logp, target, scale
        return xp.asarray(-(target * logp).sum() * scale, dtype=x.dtype)

    def backward(self, g):
        # d/dx_i [-sum_c t_c log softmax_c] = softmax_i * sum_c t_c - t_i
        xp = xp_of(g)
        p = xp.exp(self.logp)
        grad = (p * self.target.sum(axis=1, keepdims=True) - self.target) * (self.scale * g)
        return (grad.astype(self.logp.dtype, copy=False),)
