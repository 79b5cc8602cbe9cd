"""Kernels written as two (or more) of a tier's own kernels in a row, for tiers that have no fused version.

``batch_norm_relu_*`` is relu(batch_norm(x)): the fast CPU tier fuses it into its batch-norm passes
(``cpu.py``); ``cpu_plain``, ``cuda_plain`` and ``cuda`` call these with their own kernels, so each tier
still runs only its own code.

    >>> y, mean, invstd = batch_norm_relu_forward(cpu_plain.batch_norm_forward_train,
    ...                                           cpu_plain.relu_forward, x, w, b, 1e-5)
"""

from __future__ import annotations


def batch_norm_relu_forward(bn_forward, relu_forward, x, weight, bias, eps):
    """relu(batch_norm(x)) -> (y, mean, invstd), as the two kernels one after the other."""
    y, mean, invstd = bn_forward(x, weight, bias, eps)
    return relu_forward(y), mean, invstd


def batch_norm_relu_backward(bn_backward, relu_backward, affine_forward, gy, x, weight, bias, mean, invstd):
    """gy masked by [y > 0], y recomputed from x by the channel affine y = x s + t (s = w invstd,
    t = b - mean s), then the batch-norm backward -> (gx, gw, gb)."""
    scale = invstd if weight is None else weight * invstd
    shift = -mean * scale if bias is None else bias - mean * scale
    y = affine_forward(x, scale, shift)
    return bn_backward(relu_backward(gy, y), x, weight, mean, invstd)


def conv2d_affine_forward(conv_forward, affine_forward, relu_forward, x, w, stride, padding, dilation, groups,
                          scale, shift, residual, relu):
    """[relu](conv2d(x, w) * scale[o] + shift[o] [+ residual]) as the tier's kernels one after the other."""
    y = affine_forward(conv_forward(x, w, stride, padding, dilation, groups), scale, shift)
    if residual is not None:
        y = y + residual
    return relu_forward(y) if relu else y
