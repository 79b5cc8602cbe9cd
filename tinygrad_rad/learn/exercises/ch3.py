"""Chapter 3 exercises: fused softmax cross-entropy, batch-norm backward, log-softmax."""

from __future__ import annotations

import numpy as np

from . import Exercise
from ._util import close, gradcheck_fn, is_function_class, rng


def _log_softmax(z, axis=1):
    s = z - z.max(axis=axis, keepdims=True)
    return s - np.log(np.exp(s).sum(axis=axis, keepdims=True))


def test_softmax_ce(SoftmaxCrossEntropy) -> None:
    import tinygrad_rad as tr

    is_function_class(SoftmaxCrossEntropy, "SoftmaxCrossEntropy")
    r = rng(0)
    x = r.standard_normal((5, 4)) * 2
    x[0] = [1000.0, -1000.0, 0.0, 3.0]
    target = np.eye(4)[r.integers(0, 4, 5)] * r.uniform(0.5, 2.0, (5, 1))  # weighted one-hot rows
    target[1] = [0.1, 0.2, 0.3, 0.4]  # a soft target (label smoothing)
    scale = 1 / 5
    loss = SoftmaxCrossEntropy.apply(tr.tensor(x, dtype=tr.float64), target=target, scale=scale)
    close(loss.numpy(), -(target * _log_softmax(x)).sum() * scale, "loss")
    xs = x.copy()
    xs[0] = [1.0, -1.0, 0.0, 3.0]
    gradcheck_fn(lambda v: SoftmaxCrossEntropy.apply(v, target=target, scale=scale), xs)


def _bn_via_autograd(x, w):
    """BatchNorm written with basic Tensor ops: the framework's graph gives the oracle gradients."""
    import tinygrad_rad as tr

    axes = (0,) + tuple(range(2, x.ndim))
    shp = (1, -1) + (1,) * (x.ndim - 2)
    xt = tr.tensor(x, dtype=tr.float64, requires_grad=True)
    wt = tr.tensor(w, dtype=tr.float64, requires_grad=True) if w is not None else None
    mu = xt.mean(dim=axes, keepdim=True)
    var = ((xt - mu) ** 2).mean(dim=axes, keepdim=True)
    invstd = (var + 1e-5) ** -0.5
    y = (xt - mu) * invstd
    if wt is not None:
        y = y * wt.reshape(*shp)
    return xt, wt, y, mu.numpy().reshape(-1), invstd.numpy().reshape(-1)


def test_bn_backward(batch_norm_backward) -> None:
    import tinygrad_rad as tr

    r = rng(1)
    for shape, affine in [((6, 3), True), ((2, 3, 4, 5), True), ((3, 2, 3, 3), False)]:
        x = r.standard_normal(shape) * 3 + 1
        w = r.standard_normal(shape[1]) if affine else None
        g = r.standard_normal(shape)
        xt, wt, y, mean, invstd = _bn_via_autograd(x, w)
        y.backward(tr.tensor(g))
        gx, gw, gb = batch_norm_backward(g, x, w, mean, invstd)
        close(gx, xt.grad.numpy(), f"gx for {shape}")
        if affine:
            close(gw, wt.grad.numpy(), f"gw for {shape}")
            close(gb, g.sum(axis=(0,) + tuple(range(2, x.ndim))), f"gb for {shape}")


def test_log_softmax(LogSoftmax) -> None:
    import tinygrad_rad as tr

    is_function_class(LogSoftmax, "LogSoftmax")
    r = rng(2)
    big = np.array([[1000.0, 0.0, -1000.0]])
    close(LogSoftmax.apply(tr.tensor(big), dim=1).numpy(), _log_softmax(big), "forward at +-1000")
    for dim in (0, 1, -1):
        a = r.standard_normal((3, 4))
        close(LogSoftmax.apply(tr.tensor(a), dim=dim).numpy(), _log_softmax(a, dim), f"forward dim={dim}")
        gradcheck_fn(lambda v, d=dim: LogSoftmax.apply(v, dim=d), a)


EXERCISES = [
    Exercise("SoftmaxCrossEntropy", "fused log-softmax + NLL as a Function: backward p - y", test_softmax_ce,
             "tinygrad_rad.ops:SoftmaxCrossEntropy"),
    Exercise("batch_norm_backward", "batch-norm backward (gx, gw, gb) from the batch statistics",
             test_bn_backward, "tinygrad_rad.kernels.reference:batch_norm_backward"),
    Exercise("LogSoftmax", "stable log-softmax as a Function: backward g - softmax * sum(g)",
             test_log_softmax,
             "tinygrad_rad.ops:LogSoftmax"),
]
