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


# ------------------------------------------------------------------ 0-d tensors, axis= (issue 12)
@pytest.mark.parametrize("dim", [0, -1])
@pytest.mark.parametrize("op", ["sum", "mean", "logsumexp", "amax", "amin", "softmax", "log_softmax",
                                "cumsum"])
def test_reductions_over_dim_0_of_a_0d_tensor(op, dim):
    out = check_op(lambda x: getattr(x, op)(dim), None, [()])
    assert out.shape == ()


@pytest.mark.parametrize("dim", [0, -1])
def test_max_argmax_and_keepdim_of_a_0d_tensor(dim):
    x = tr.tensor(2.5, requires_grad=True)
    values, indices = x.max(dim)
    assert values.shape == () and indices.shape == () and indices.item() == 0
    assert x.argmax(dim).shape == () and x.sum(dim, keepdim=True).shape == ()
    assert x.all(dim).item() and x.var(dim, correction=0).item() == 0.0
    values.backward()
    assert x.grad.item() == 1.0
    with pytest.raises(IndexError, match="dim 1 is out of range for a tensor with 0 dimensions"):
        x.sum(1)
    if HAS_TORCH:
        t = torch.tensor(2.5)
        assert tuple(t.max(dim).values.shape) == values.shape and t.argmax(dim).item() == 0


@pytest.mark.parametrize("op", ["sum", "mean", "std", "var", "amax", "amin", "logsumexp", "argmax", "argmin"])
def test_axis_is_an_alias_of_dim(op):
    x = tr.randn(3, 4, 5)
    got = getattr(x, op)(axis=1)
    want = getattr(x, op)(dim=1)
    np.testing.assert_array_equal(got.numpy(), want.numpy())
    if HAS_TORCH:
        t = torch.tensor(x.numpy())
        np.testing.assert_allclose(got.numpy(), getattr(t, op)(axis=1).numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(TypeError, match="dim or its alias axis, not both"):
        getattr(x, op)(dim=1, axis=1)


@pytest.mark.parametrize("op", ["max", "min", "all", "any"])
def test_axis_alias_on_max_min_all_any(op):
    x = tr.randn(3, 4) > 0 if op in ("all", "any") else tr.randn(3, 4)
    got = getattr(x, op)(axis=0)
    want = getattr(x, op)(dim=0)
    got, want = (got.values, want.values) if op in ("max", "min") else (got, want)
    np.testing.assert_array_equal(got.numpy(), want.numpy())
    if HAS_TORCH:
        t = torch.tensor(x.numpy())
        tw = getattr(t, op)(axis=0)
        tw = tw.values if op in ("max", "min") else tw
        np.testing.assert_array_equal(got.numpy(), tw.numpy())


def test_all_any_with_dim_and_keepdim_like_pytorch():
    a = np.array([[True, False, True], [True, True, True]])
    x = tr.tensor(a)
    for op in ("all", "any"):
        for dim in (0, 1, -1):
            for keepdim in (False, True):
                got = getattr(x, op)(dim, keepdim=keepdim).numpy()
                np.testing.assert_array_equal(got, getattr(a, op)(axis=dim, keepdims=keepdim))
                if HAS_TORCH:
                    want = getattr(torch.tensor(a), op)(dim, keepdim=keepdim).numpy()
                    np.testing.assert_array_equal(got, want)


def test_mean_of_no_elements_is_nan_like_pytorch():
    assert np.isnan(tr.zeros(0).mean().item())
    assert np.isnan(tr.zeros(0, 3).mean(0).numpy()).all() and tr.zeros(0, 3).mean(0).shape == (3,)
    assert tr.zeros(0, 3).mean(1).shape == (0,)
    x = tr.zeros(0, 3, requires_grad=True)
    x.mean().backward()
    assert x.grad.shape == (0, 3)
