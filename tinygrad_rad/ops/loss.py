"""The fused softmax-cross-entropy loss (log-softmax + weighted NLL in one op), on the kernel module."""

from __future__ import annotations

from ..autograd import Function
from ..device import backend


class SoftmaxCrossEntropy(Function):
    """Fused log_softmax + weighted NLL for logits (M, C) and a dense per-row target distribution.

    ``target`` is an (M, C) array with the weight of each class (and any label smoothing) folded in;
    the loss is ``-sum(target * log_softmax(x)) * scale``, a 0-d array.
    """

    def forward(self, x, target, scale):
        # log_softmax(x) = x - max - log(sum(exp(x - max))), kept for backward
        loss, self.logp = backend(self.device).softmax_cross_entropy_forward(x, target, scale)
        self.target, self.scale = target, scale
        return loss

    def backward(self, g):
        # d/dx_i [-sum_c t_c log softmax_c] = softmax_i * sum_c t_c - t_i   (times scale * g)
        return (backend(self.device).softmax_cross_entropy_backward(g, self.logp, self.target, self.scale),)
