"""The neural-network ops as ``Function`` classes: convolution, pooling, batch norm, dropout.

Their heavy lifting is done by the device's kernel module (``tinygrad_rad.kernels.cpu`` or
``.cuda``), so the same class serves both devices. The user-facing wrappers with PyTorch's argument
names are in :mod:`tinygrad_rad.nn.functional`.
"""

from __future__ import annotations

from ..autograd import Function
from ..device import backend, xp_of


class Conv2d(Function):
    def forward(self, x, w, b=None, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1):
        self.args = (stride, padding, dilation, groups)
        self.x, self.w, self.has_bias = x, w, b is not None
        y = backend(self.device).conv2d_forward(x, w, stride, padding, dilation, groups)
        if b is not None:
            y += b.reshape(1, -1, 1, 1)
        return y

    def backward(self, g):
        # y = x (*) w + b  =>  dx = g (*)^T w (transposed conv), dw = x (*) g (correlate), db = sum g
        bk = backend(self.device)
        need = self.needs_input_grad
        gx = bk.conv2d_backward_input(g, self.w, self.x.shape, *self.args) if need[0] else None
        gw = bk.conv2d_backward_weight(g, self.x, self.w.shape, *self.args) if need[1] else None
        if self.has_bias:
            gb = g.sum(axis=(0, 2, 3)) if need[2] else None
            return gx, gw, gb
        return gx, gw


class ConvTranspose2d(Function):
    """The adjoint of Conv2d: forward is conv2d's backward-input, so the same kernels serve both."""

    def forward(self, x, w, b=None, stride=(1, 1), padding=(0, 0), output_padding=(0, 0), dilation=(1, 1),
                groups=1):
        # w has shape (C_in, C_out / groups, kH, kW) as in PyTorch
        n, cin, h, wd = x.shape
        _, cog, kh, kw = w.shape
        oh = (h - 1) * stride[0] - 2 * padding[0] + dilation[0] * (kh - 1) + output_padding[0] + 1
        ow = (wd - 1) * stride[1] - 2 * padding[1] + dilation[1] * (kw - 1) + output_padding[1] + 1
        self.out_shape = (n, cog * groups, oh, ow)
        self.args = (stride, padding, dilation, groups)
        # NOTE: with output_padding >= stride (allowed when dilation > stride) conv2d of the output has
        # more rows than x: the missing rows of x are zeros, so pad x to that size (cropped in backward)
        ch = (oh + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
        cw = (ow + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
        self.in_hw = (h, wd)
        if (ch, cw) != (h, wd):
            x = xp_of(x).pad(x, ((0, 0), (0, 0), (0, ch - h), (0, cw - wd)))
        self.x, self.w, self.has_bias = x, w, b is not None
        y = backend(self.device).conv2d_backward_input(x, w, self.out_shape, *self.args)
        if b is not None:
            y = y + b.reshape(1, -1, 1, 1)
        return y

    def backward(self, g):
        # y = conv2d^T(x, w)  =>  dx = conv2d(g, w), dw = conv2d_weight_grad with x as "output grad"
        bk = backend(self.device)
        need = self.needs_input_grad
        gx = bk.conv2d_forward(g, self.w, *self.args) if need[0] else None
        if gx is not None and tuple(gx.shape[2:]) != self.in_hw:
            gx = gx[:, :, : self.in_hw[0], : self.in_hw[1]]
        gw = bk.conv2d_backward_weight(self.x, g, self.w.shape, *self.args) if need[1] else None
        if self.has_bias:
            return gx, gw, (g.sum(axis=(0, 2, 3)) if need[2] else None)
        return gx, gw


class MaxPool2d(Function):
    def forward(self, x, kernel, stride, padding, dilation):
        self.x_shape, self.args = x.shape, (kernel, stride, padding, dilation)
        y, self.idx = backend(self.device).max_pool2d_forward(x, kernel, stride, padding, dilation)
        return y

    def backward(self, g):
        # each window's gradient goes to the element that was its max (index saved in forward)
        return (backend(self.device).max_pool2d_backward(g, self.idx, self.x_shape, *self.args),)


class AvgPool2d(Function):
    def forward(self, x, kernel, stride, padding, count_include_pad=True):
        self.x_shape, self.args = x.shape, (kernel, stride, padding, count_include_pad)
        return backend(self.device).avg_pool2d_forward(x, kernel, stride, padding, count_include_pad)

    def backward(self, g):
        # every element of a window receives g / window_size
        return (backend(self.device).avg_pool2d_backward(g, self.x_shape, *self.args),)


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


class ChannelAffine(Function):
    """y = x * scale[c] + shift[c] for each channel c: batch norm at eval time in one pass."""

    def forward(self, x, scale, shift):
        self.x, self.scale = x, scale
        return backend(self.device).channel_affine_forward(x, scale, shift)

    def backward(self, g):
        # y = x s + b  =>  dx = g s, ds = sum g x, db = sum g (sums over all axes but the channel)
        gx, gs, gb = backend(self.device).channel_affine_backward(g, self.x, self.scale)
        return gx, gs, gb


class Dropout(Function):
    def forward(self, x, p, mask):
        # mask already holds 0 or 1/(1-p) (inverted dropout: no rescaling needed at eval)
        self.mask = mask
        return x * mask

    def backward(self, g):
        # d(x m)/dx = m
        return (g * self.mask,)


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
