"""Chapter 4 exercises: the col2im adjoint (conv input gradient), the weight gradient, max-pool backward.

Both convolution tests use the adjoint identity: conv2d_forward is linear in x (and in w), so its
gradient map must satisfy <conv2d(x, w), gy> = <x, dx(gy)> = <w, dw(gy)> for all x, w, gy.
"""

from __future__ import annotations

import numpy as np

from . import Exercise
from ._util import close, rng

# (N, C, H, W), (O, C/groups, kh, kw), stride, padding, dilation, groups
CONV_CASES = [
    ((2, 3, 7, 6), (4, 3, 3, 3), (1, 1), (0, 0), (1, 1), 1),
    ((2, 3, 7, 6), (4, 3, 3, 3), (1, 1), (1, 1), (1, 1), 1),
    ((1, 2, 9, 8), (3, 2, 3, 2), (2, 3), (1, 0), (1, 1), 1),
    ((1, 2, 9, 9), (2, 2, 3, 3), (1, 2), (2, 2), (2, 2), 1),
    ((2, 4, 6, 6), (6, 2, 3, 3), (2, 2), (1, 1), (1, 1), 2),
    ((1, 3, 5, 5), (3, 1, 1, 1), (1, 1), (0, 0), (1, 1), 3),
]


def _cases():
    from tinygrad_rad.kernels import reference as ref

    r = rng(0)
    for xs, ws, s, p, d, g in CONV_CASES:
        x, w = r.standard_normal(xs), r.standard_normal(ws)
        y = ref.conv2d_forward(x, w, s, p, d, g)
        gy = r.standard_normal(y.shape)
        yield x, w, y, gy, (s, p, d, g)


def test_backward_input(conv2d_backward_input) -> None:
    for x, w, y, gy, args in _cases():
        gx = conv2d_backward_input(gy, w, x.shape, *args)
        if np.shape(gx) != x.shape:
            raise AssertionError(f"gx has shape {np.shape(gx)}, expected {x.shape} (args {args})")
        close((x * gx).sum(), (y * gy).sum(), f"<x, dx(gy)> vs <conv(x, w), gy>, args {args}")


def test_backward_weight(conv2d_backward_weight) -> None:
    for x, w, y, gy, args in _cases():
        gw = conv2d_backward_weight(gy, x, w.shape, *args)
        if np.shape(gw) != w.shape:
            raise AssertionError(f"gw has shape {np.shape(gw)}, expected {w.shape} (args {args})")
        close((w * gw).sum(), (y * gy).sum(), f"<w, dw(gy)> vs <conv(x, w), gy>, args {args}")


def _maxpool_oracle(gy, idx, x_shape, kernel, stride, padding, dilation):
    (_, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    gx = np.zeros((x_shape[0], x_shape[1], x_shape[2] + 2 * ph, x_shape[3] + 2 * pw))
    n_, c_, ho, wo = gy.shape
    for n in range(n_):
        for c in range(c_):
            for i in range(ho):
                for j in range(wo):
                    u, v = divmod(int(idx[n, c, i, j]), kw)
                    gx[n, c, i * sh + u * dh, j * sw + v * dw] += gy[n, c, i, j]
    return gx[:, :, ph : ph + x_shape[2], pw : pw + x_shape[3]]


def test_maxpool_backward(max_pool2d_backward) -> None:
    from tinygrad_rad.kernels import reference as ref

    r = rng(1)
    for xs, k, s, p, d in [((2, 2, 6, 6), (2, 2), (2, 2), (0, 0), (1, 1)),
                           ((1, 3, 7, 8), (3, 3), (2, 2), (1, 1), (1, 1)),  # overlapping windows
                           ((1, 1, 9, 9), (3, 2), (1, 2), (1, 0), (2, 1))]:
        x = r.permutation(np.prod(xs)).reshape(xs).astype(np.float64)  # distinct values: no ties
        y, idx = ref.max_pool2d_forward(x, k, s, p, d)
        gy = r.standard_normal(y.shape)
        got = max_pool2d_backward(gy, idx, x.shape, k, s, p, d)
        close(got, _maxpool_oracle(gy, idx, x.shape, k, s, p, d), f"kernel {k} stride {s} pad {p} dil {d}")


EXERCISES = [
    Exercise("conv2d_backward_input", "the col2im adjoint: conv2d's input gradient", test_backward_input,
             "tinygrad_rad.kernels.reference:conv2d_backward_input"),
    Exercise("conv2d_backward_weight", "conv2d's weight gradient (a correlation of x with gy)",
             test_backward_weight, "tinygrad_rad.kernels.reference:conv2d_backward_weight"),
    Exercise("max_pool2d_backward", "route each window's gradient to its argmax", test_maxpool_backward,
             "tinygrad_rad.kernels.reference:max_pool2d_backward"),
]
