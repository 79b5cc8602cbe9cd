"""Reductions, arg-reductions, logsumexp and softmax: forward + gradient vs PyTorch, and gradcheck."""

from __future__ import annotations

import numpy as np
import pytest
from oracle import HAS_TORCH, check_op

import tinygrad_rad as tr

if HAS_TORCH:
    import torch

DIMS = [None, 0, -1, 1, (0, 2), (-1, 0), (0, 1, 2)]


@pytest.mark.parametrize("keepdim", [False, True])
@pytest.mark.parametrize("dim", DIMS)
@pytest.mark.parametrize("op", ["sum", "mean"])
def test_sum_mean(op, dim, keepdim):
    if dim is None:
        check_op(lambda x: getattr(x, op)(), None, [(2, 3, 4)])
    else:
        check_op(lambda x: getattr(x, op)(dim, keepdim=keepdim), None, [(2, 3, 4)])


@pytest.mark.parametrize("keepdim", [False, True])
@pytest.mark.parametrize("dim", [None, 0, -1, (0, 2)])
@pytest.mark.parametrize("op", ["var", "std"])
def test_var_std(op, dim, keepdim):
    if dim is None:
        check_op(lambda x: getattr(x, op)(), None, [(2, 3, 4)])
        check_op(lambda x: getattr(x, op)(unbiased=False), None, [(2, 3, 4)])
    else:
        check_op(lambda x: getattr(x, op)(dim, keepdim=keepdim), None, [(2, 3, 4)])
        check_op(lambda x: getattr(x, op)(dim, keepdim=keepdim, correction=0), None, [(2, 3, 4)])


def test_var_hand_computed():
    x = tr.tensor([1.0, 2.0, 3.0, 4.0], dtype=tr.float64)
    assert x.var().item() == pytest.approx(5 / 3)
    assert x.var(unbiased=False).item() == pytest.approx(1.25)
    assert x.std().item() == pytest.approx(np.sqrt(5 / 3))


@pytest.mark.parametrize("keepdim", [False, True])
@pytest.mark.parametrize("dim", [0, -1, 1])
@pytest.mark.parametrize("op", ["max", "min"])
def test_max_min_dim(op, dim, keepdim):
    # (values, indices) like PyTorch; the values' gradient goes to the selected index
    check_op(lambda x: tuple(getattr(x, op)(dim, keepdim=keepdim)), None, [(2, 3, 4)])


@pytest.mark.parametrize("op", ["max", "min", "amax", "amin"])
def test_max_min_full_and_amax(op):
    check_op(lambda x: getattr(x, op)(), None, [(3, 4)])
    if op.startswith("a"):
        check_op(lambda x: getattr(x, op)((0, 2), keepdim=True), None, [(2, 3, 4)])
        check_op(lambda x: getattr(x, op)(-1), None, [(2, 3, 4)], dtype="float32")


def test_max_ties_follow_pytorch():
    data = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]])
    # amax / full max: ties share the gradient equally
    x = tr.tensor(data, requires_grad=True)
    x.amax(1).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [[0, 0.5, 0.5], [0.5, 0.5, 0]])
    x.grad = None
    x.max().backward()
    np.testing.assert_allclose(x.grad.numpy(), [[0, 0.5, 0.5], [0, 0, 0]])
    # max(dim): indices are the first maximum and the whole gradient goes there
    x.grad = None
    values, idx = x.max(1)
    np.testing.assert_array_equal(idx.numpy(), [1, 0])
    values.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [[0, 1, 0], [1, 0, 0]])
    if HAS_TORCH:
        tx = torch.tensor(data, requires_grad=True)
        tv, ti = tx.max(1)
        tv.sum().backward()
        np.testing.assert_array_equal(idx.numpy(), ti.numpy())
        np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy())
        tx.grad = None
        tx.amax(1).sum().backward()
        x.grad = None
        x.amax(1).sum().backward()
        np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy())


@pytest.mark.parametrize("keepdim", [False, True])
@pytest.mark.parametrize("dim", [None, 0, -1])
@pytest.mark.parametrize("op", ["argmax", "argmin"])
def test_argmax_argmin(op, dim, keepdim):
    x = np.random.default_rng(1).integers(0, 3, size=(3, 4, 5)).astype(np.float32)  # many ties
    got = getattr(tr.tensor(x), op)(dim, keepdim=keepdim)
    assert got.dtype == np.int64
    fn = np.argmax if op == "argmax" else np.argmin
    want = fn(x, axis=dim, keepdims=keepdim) if dim is not None else fn(x.reshape(-1))
    if dim is None and keepdim:
        want = want.reshape(1, 1, 1)
    np.testing.assert_array_equal(got.numpy(), want)
    if HAS_TORCH:
        t = torch.tensor(x)
        tw = getattr(t, op)() if dim is None and not keepdim else getattr(t, op)(dim, keepdim=keepdim)
        np.testing.assert_array_equal(got.numpy(), tw.numpy())


@pytest.mark.parametrize("keepdim", [False, True])
@pytest.mark.parametrize("dim", [0, -1, (0, 2)])
def test_logsumexp(dim, keepdim):
    check_op(lambda x: x.logsumexp(dim, keepdim=keepdim), None, [(2, 3, 4)])
    check_op(lambda x: tr.logsumexp(x, dim, keepdim), lambda x: torch.logsumexp(x, dim, keepdim), [(2, 3, 4)],
             dtype="float32")


def test_logsumexp_large_values():
    x = tr.tensor([[1000.0, 1000.0], [-1000.0, -1000.0]], requires_grad=True)
    y = x.logsumexp(1)
    np.testing.assert_allclose(y.numpy(), [1000 + np.log(2), -1000 + np.log(2)], rtol=1e-6)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 0.5, rtol=1e-4)  # float32 rounding of x - lse


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("dim", [0, 1, -1])
@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
def test_softmax(op, dim, dtype):
    check_op(lambda x: getattr(x, op)(dim), None, [(3, 4, 2)], dtype=dtype)


def test_softmax_large_values_are_stable():
    x = tr.tensor([[1000.0, 0.0, -1000.0]], requires_grad=True)
    s = x.softmax(1)
    ls = x.log_softmax(1)
    np.testing.assert_allclose(s.numpy(), [[1, 0, 0]], atol=1e-7)
    assert np.all(np.isfinite(ls.numpy()))
    (s.sum() + ls[0, 0]).backward()
    assert np.all(np.isfinite(x.grad.numpy()))


def test_module_level_reductions():
    check_op(lambda x: tr.sum(x, 1) + tr.mean(x, 1), lambda x: torch.sum(x, 1) + torch.mean(x, 1), [(3, 4)])
    check_op(lambda x: tr.softmax(x, 0) + tr.log_softmax(x, 0),
             lambda x: torch.softmax(x, 0) + torch.log_softmax(x, 0), [(3, 4)])


@pytest.mark.parametrize("p", [2, 1, 3, float("inf")])
@pytest.mark.parametrize("dim", [None, 1, (0, 2)])
def test_norm(p, dim):
    if dim is None:
        check_op(lambda x: x.norm(p), None, [(2, 3, 4)])
    else:
        check_op(lambda x: x.norm(p, dim, keepdim=True), None, [(2, 3, 4)])


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_cumsum(dim):
    check_op(lambda x: x.cumsum(dim), None, [(3, 4, 2)])


DEVICE_REDUCE = {
    "sum": lambda x: x.sum((0, 2), keepdim=True),
    "mean_var": lambda x: x.mean(1) + x.var(1),
    "max_dim": lambda x: x.max(1).values,
    "amax": lambda x: x.amax(-1),
    "logsumexp": lambda x: x.logsumexp(1),
    "softmax": lambda x: x.softmax(-1),
    "cumsum": lambda x: x.cumsum(1),
    "norm": lambda x: x.norm(dim=0),
}


@pytest.mark.parametrize("name", list(DEVICE_REDUCE))
def test_reductions_on_device(device, name):
    check_op(DEVICE_REDUCE[name], None, [(2, 3, 4)], device=device, gradcheck=False)
    out = tr.randn(2, 3, device=device).argmax(1)
    assert out.device == device and out.dtype == np.int64
