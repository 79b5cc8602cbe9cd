"""Batch norm (training mode, batch statistics) and the per-channel affine map of eval-mode batch norm."""

from __future__ import annotations

from ..autograd import Function
from ..device import backend


class BatchNormTrain(Function):
    """Batch norm with the batch's statistics (training mode); weight and bias are optional inputs."""

    def forward(self, x, weight=None, bias=None, eps=1e-5):
        self.x, self.weight = x, weight
        self.has_affine = weight is not None
        y, self.mean, self.invstd = backend(self.device).batch_norm_forward_train(x, weight, bias, eps)
        return y

    def backward(self, g):
        # xhat = (x - mu) / sigma, y = w xhat + b:
        # dx = (w / sigma) (g - mean(g) - xhat mean(g xhat)), dw = sum(g xhat), db = sum(g)
        gx, gw, gb = backend(self.device).batch_norm_backward(g, self.x, self.weight, self.mean, self.invstd)
        if self.has_affine:
            return gx, gw, gb
        return (gx,)


class BatchNormReLUTrain(Function):
    """relu(batch norm with the batch's statistics) as one op: what ``nn.Sequential`` runs for a BatchNorm
    followed by a ReLU (the CPU kernels apply the ReLU inside the batch norm's passes)."""

    def forward(self, x, weight=None, bias=None, eps=1e-5):
        self.x, self.weight, self.bias = x, weight, bias
        self.has_affine = weight is not None
        y, self.mean, self.invstd = backend(self.device).batch_norm_relu_forward_train(x, weight, bias, eps)
        return y

    def backward(self, g):
        # y = relu(z), z = w xhat + b:  dz = g [z > 0] (z recomputed from x by the kernel), then the
        # BatchNormTrain rule for dz
        bk = backend(self.device)
        gx, gw, gb = bk.batch_norm_relu_backward(g, self.x, self.weight, self.bias, self.mean, self.invstd)
        if self.has_affine:
            return gx, gw, gb
        return (gx,)


class ChannelAffine(Function):
    """y = x * scale[c] + shift[c] for each channel c: batch norm at eval time in one pass."""

    def forward(self, x, scale, shift):
        self.x, self.scale = x, scale
        return backend(self.device).channel_affine_forward(x, scale, shift)

    def backward(self, g):
        # y = x s + b  =>  dx = g s, ds = sum g x, db = sum g (sums over all axes but the channel)
        gx, gs, gb = backend(self.device).channel_affine_backward(g, self.x, self.scale)
        return gx, gs, gb
