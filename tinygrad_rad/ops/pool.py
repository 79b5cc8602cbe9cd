"""Max and average pooling, on the device's kernel module."""

from __future__ import annotations

from ..autograd import Function
from ..device import backend


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


# ------------------------------------------------------------------------------- 3-D (volumes, NCDHW)
class MaxPool3d(Function):
    def forward(self, x, kernel, stride, padding, dilation):
        self.x_shape, self.args = x.shape, (kernel, stride, padding, dilation)
        y, self.idx = backend(self.device).max_pool3d_forward(x, kernel, stride, padding, dilation)
        return y

    def backward(self, g):
        # each window's gradient goes to the element that was its max (index saved in forward)
        return (backend(self.device).max_pool3d_backward(g, self.idx, self.x_shape, *self.args),)


class AvgPool3d(Function):
    def forward(self, x, kernel, stride, padding, count_include_pad=True):
        self.x_shape, self.args = x.shape, (kernel, stride, padding, count_include_pad)
        return backend(self.device).avg_pool3d_forward(x, kernel, stride, padding, count_include_pad)

    def backward(self, g):
        # every element of a window receives g / window_size
        return (backend(self.device).avg_pool3d_backward(g, self.x_shape, *self.args),)
