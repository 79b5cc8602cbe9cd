"""Max and average pooling, on the device's kernel module."""

from __future__ import annotations

from ..autograd import Function
from ..device import backend, xp_of


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


class MaxUnpool2d(Function):
    """Scatter each value of x (N, C, h, w) to its flat index ``h * W + w`` of a zero (N, C, H, W) plane."""

    def forward(self, x, indices, out_hw):
        xp = xp_of(x)
        n, c = x.shape[:2]
        self.x_shape = x.shape
        self.rows = xp.arange(n * c).reshape(-1, 1)
        self.flat = indices.reshape(n * c, -1)
        out = xp.zeros((n * c, out_hw[0] * out_hw[1]), dtype=x.dtype)
        out[self.rows, self.flat] = x.reshape(n * c, -1)
        return out.reshape(n, c, *out_hw)

    def backward(self, g):
        # y[idx[i]] = x[i]  =>  dL/dx[i] = g[idx[i]] (a gather at the same indices)
        n, c = self.x_shape[:2]
        return (g.reshape(n * c, -1)[self.rows, self.flat].reshape(self.x_shape),)


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
