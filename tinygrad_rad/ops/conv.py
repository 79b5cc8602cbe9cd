"""Convolution and its adjoint (transposed convolution), on the device's kernel module.

One kernel family serves both: ConvTranspose2d's forward is Conv2d's backward-input and its
backward-input is Conv2d's forward.
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


class Conv2dAffineEval(Function):
    """[relu](conv2d(x, w) * scale[o] + shift[o] [+ residual]): a conv, an eval-time batch norm, a ResNet
    block's residual add and its ReLU as one kernel call (``nn.conv_bn`` at inference). Inference only:
    ``nn.conv_bn`` applies it when no gradient is needed, and runs the ops apart otherwise."""

    def forward(self, x, w, scale, shift, residual=None, stride=(1, 1), padding=(0, 0), dilation=(1, 1),
                groups=1, relu=False):
        return backend(self.device).conv2d_affine_forward(x, w, stride, padding, dilation, groups, scale,
                                                          shift, residual, relu)

    def backward(self, g):
        raise RuntimeError("Conv2dAffineEval is inference-only: nn.conv_bn uses it only when no gradient "
                           "is needed (model.eval() under no_grad)")


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


# ------------------------------------------------------------------------------- 3-D (volumes, NCDHW)
class Conv3d(Function):
    """Conv2d with one more axis: x (N, C, D, H, W), w (C_out, C_in / groups, kD, kH, kW)."""

    def forward(self, x, w, b=None, stride=(1, 1, 1), padding=(0, 0, 0), dilation=(1, 1, 1), groups=1):
        self.args = (stride, padding, dilation, groups)
        self.x, self.w, self.has_bias = x, w, b is not None
        y = backend(self.device).conv3d_forward(x, w, stride, padding, dilation, groups)
        if b is not None:
            y += b.reshape(1, -1, 1, 1, 1)
        return y

    def backward(self, g):
        # y = x (*) w + b  =>  dx = g (*)^T w (transposed conv3d), dw = x (*) g (correlate), db = sum g
        bk = backend(self.device)
        need = self.needs_input_grad
        gx = bk.conv3d_backward_input(g, self.w, self.x.shape, *self.args) if need[0] else None
        gw = bk.conv3d_backward_weight(g, self.x, self.w.shape, *self.args) if need[1] else None
        if self.has_bias:
            return gx, gw, (g.sum(axis=(0, 2, 3, 4)) if need[2] else None)
        return gx, gw


class ConvTranspose3d(Function):
    """The adjoint of Conv3d: forward is conv3d's backward-input, so the same kernels serve both."""

    def forward(self, x, w, b=None, stride=(1, 1, 1), padding=(0, 0, 0), output_padding=(0, 0, 0),
                dilation=(1, 1, 1), groups=1):
        # w has shape (C_in, C_out / groups, kD, kH, kW) as in PyTorch
        n, spatial = x.shape[0], tuple(x.shape[2:])
        cog, kernel = w.shape[1], tuple(w.shape[2:])
        out = tuple((spatial[i] - 1) * stride[i] - 2 * padding[i] + dilation[i] * (kernel[i] - 1)
                    + output_padding[i] + 1 for i in range(3))
        self.out_shape = (n, cog * groups) + out
        self.args = (stride, padding, dilation, groups)
        # NOTE: as in 2-D, output_padding >= stride (allowed when dilation > stride) gives conv3d of the
        # output more positions than x has: the missing ones are zeros, so pad x (cropped in backward)
        conv = tuple((out[i] + 2 * padding[i] - dilation[i] * (kernel[i] - 1) - 1) // stride[i] + 1
                     for i in range(3))
        self.in_size = spatial
        if conv != spatial:
            x = xp_of(x).pad(x, ((0, 0), (0, 0)) + tuple((0, c - s) for c, s in zip(conv, spatial)))
        self.x, self.w, self.has_bias = x, w, b is not None
        y = backend(self.device).conv3d_backward_input(x, w, self.out_shape, *self.args)
        if b is not None:
            y = y + b.reshape(1, -1, 1, 1, 1)
        return y

    def backward(self, g):
        # y = conv3d^T(x, w)  =>  dx = conv3d(g, w), dw = conv3d_weight_grad with x as "output grad"
        bk = backend(self.device)
        need = self.needs_input_grad
        gx = bk.conv3d_forward(g, self.w, *self.args) if need[0] else None
        if gx is not None and tuple(gx.shape[2:]) != self.in_size:
            d, h, w = self.in_size
            gx = gx[:, :, :d, :h, :w]
        gw = bk.conv3d_backward_weight(self.x, g, self.w.shape, *self.args) if need[1] else None
        if self.has_bias:
            return gx, gw, (g.sum(axis=(0, 2, 3, 4)) if need[2] else None)
        return gx, gw
