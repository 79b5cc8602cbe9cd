"""Functions (autodiff ops) that ``nn.functional`` needs and no other op covers. They live here until
they move into :mod:`tinygrad_rad.ops` (``pool.py``), next to the other pooling ops."""

from __future__ import annotations

from ..autograd import Function
from ..device import xp_of

__all__ = ["MaxUnpool2d"]


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
