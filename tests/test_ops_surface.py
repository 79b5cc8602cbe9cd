"""Issue 12, "the op surface PyTorch users reach for": every op forward + gradient against PyTorch (when
installed) and float64 central differences (``check_op``), integer dtypes for the integer ops, hypothesis
for shapes / dims / broadcasting (0-d and empty tensors included), and save/load/device/dtype names."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from oracle import HAS_TORCH, check_op

import tinygrad_rad as tr

torch = None
if HAS_TORCH:
    import torch

needs_torch = pytest.mark.skipif(not HAS_TORCH, reason="PyTorch (the oracle) is not installed")
FAST = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
rng = np.random.default_rng(12)


def same(got, want):
    """A tinygrad_rad result equals a PyTorch one (shape, dtype kind, values; nan == nan)."""
    g = got.numpy() if hasattr(got, "numpy") else np.asarray(got)
    w = want.detach().numpy() if hasattr(want, "detach") else np.asarray(want)
    assert g.shape == w.shape, f"shape {g.shape}, torch gives {w.shape}"
    assert g.dtype.kind == w.dtype.kind, f"dtype {g.dtype}, torch gives {w.dtype}"
    np.testing.assert_allclose(
        g.astype(np.float64), w.astype(np.float64), rtol=1e-6, atol=1e-7, equal_nan=True
    )


def both(fn):
    """check_op's (tinygrad_rad, torch) pair for a lambda written against a module: fn(tr), fn(torch)."""
    return fn(tr), (fn(torch) if HAS_TORCH else None)


# ---------------------------------------------------------------------------------- cumulative ops
@pytest.mark.parametrize("dim", [0, 1, -1])
@pytest.mark.parametrize("op", ["cumsum", "cumprod", "cummax", "cummin"])
def test_cumulative_method_and_module(op, dim):
    check_op(lambda x: getattr(x, op)(dim), None, [(3, 4)])
    check_op(*both(lambda m: lambda x: getattr(m, op)(x, dim)), [(2, 3)])


def test_cumprod_gradient_is_exact_at_zeros():
    for x in (
        np.array([2.0, 0.0, 3.0, 4.0]),
        np.array([0.0, 2.0, 0.0, 5.0]),
        np.array([[1.5, 0.0], [0.0, 0.0]]),
    ):
        check_op(lambda t: t.cumprod(-1), None, [x])


def test_cummax_cummin_ties_and_nan_follow_pytorch():
    x = np.array([1.0, 3.0, 3.0, 2.0, 5.0, 5.0, np.nan, 1.0, np.nan])
    res = tr.tensor(x).cummax(0)
    assert type(res).__name__ == "cummax" and res.indices.tolist() == [0, 1, 2, 2, 4, 5, 6, 6, 8]
    assert tr.tensor([3, 1, 1, 2, 0, 0]).cummin(0).indices.tolist() == [0, 1, 2, 2, 4, 5]
    if HAS_TORCH:
        for op in ("cummax", "cummin"):
            for a in (x, rng.integers(-2, 3, size=(4, 6)).astype(np.int32)):
                got, want = getattr(tr.tensor(a), op)(-1), getattr(torch.tensor(a), op)(-1)
                same(got.values, want.values)
                same(got.indices, want.indices)


def test_cumulative_0d_empty_and_int():
    assert tr.tensor(2.0).cumprod(0).shape == () and tr.tensor(2.0).cummax(-1).indices.item() == 0
    assert tr.zeros(0, 3).cummax(0).values.shape == (0, 3)
    assert tr.tensor([1, 2, 3], dtype=tr.int32).cumsum(0).tolist() == [1, 3, 6]
    assert tr.tensor([1, 2, 3]).cumprod(0, dtype=tr.float64).dtype == tr.float64


@FAST
@given(shape=st.lists(st.integers(0, 3), min_size=0, max_size=3), data=st.data())
def test_cumulative_hypothesis_shapes(shape, data):
    shape = tuple(shape)
    dim = data.draw(st.integers(-max(len(shape), 1), max(len(shape), 1) - 1))
    op = data.draw(st.sampled_from(["cumsum", "cumprod", "cummax", "cummin"]))
    if 0 in shape or not shape:
        a = rng.standard_normal(shape)
        got = getattr(tr.tensor(a), op)(dim)
        got = got.values if isinstance(got, tuple) else got
        assert got.shape == shape
        if HAS_TORCH:
            want = getattr(torch.tensor(a), op)(dim)
            same(got, want.values if isinstance(want, tuple) else want)
        return
    check_op(lambda x: getattr(x, op)(dim), None, [shape], gradcheck=False)


# -------------------------------------------------------------------------------------------- prod
@pytest.mark.parametrize("dim,keepdim", [(None, False), (0, False), (1, True), (-1, False)])
def test_prod(dim, keepdim):
    f = (lambda x: x.prod()) if dim is None else (lambda x: x.prod(dim, keepdim))
    check_op(f, None, [(3, 4)])
    for x in (np.array([[1.5, 0.0, 2.0], [0.0, 0.0, 3.0]]), np.array([[0.5, 2.0, 0.0], [1.0, 2.0, 3.0]])):
        check_op(f, None, [x])


def test_prod_module_level_int_and_0d():
    check_op(*both(lambda m: lambda x: m.prod(x, 1)), [(2, 3)])
    assert tr.prod(tr.tensor([[1, 2], [3, 4]], dtype=tr.int32), 1).tolist() == [2, 12]
    assert tr.tensor(3.0).prod(0).shape == ()
    assert tr.zeros(0).prod().item() == 1.0


# -------------------------------------------------------------------------------- isclose / allclose
@needs_torch
def test_isclose_allclose_like_pytorch():
    a = np.array([1.0, 1.0 + 1e-6, 1.1, np.nan, np.inf, -np.inf, 0.0])
    b = np.array([1.0, 1.0, 1.0, np.nan, np.inf, np.inf, 1e-9])
    for kw in ({}, {"equal_nan": True}, {"rtol": 0.2}, {"atol": 1e-3, "rtol": 0.0}):
        same(tr.tensor(a).isclose(tr.tensor(b), **kw), torch.tensor(a).isclose(torch.tensor(b), **kw))
        same(
            tr.isclose(tr.tensor(a), tr.tensor(b), **kw),
            torch.isclose(torch.tensor(a), torch.tensor(b), **kw),
        )
        assert tr.allclose(tr.tensor(a[:3]), tr.tensor(b[:3]), **kw) == torch.allclose(
            torch.tensor(a[:3]), torch.tensor(b[:3]), **kw
        )
    assert tr.tensor([1.0, 2.0]).allclose(tr.tensor([1.0, 2.0])) is True
    assert tr.tensor([1.0, 2.0]).isclose(2.0).tolist() == [False, True]


# ------------------------------------------------------------------------------------------ einsum
EINSUM = [
    ("ij,jk->ik", [(2, 3), (3, 4)]),
    ("bij,bjk->bik", [(2, 2, 3), (2, 3, 2)]),
    ("i,j->ij", [(3,), (4,)]),
    ("ij,ij->ij", [(2, 3), (2, 3)]),
    ("ii->i", [(3, 3)]),
    ("ii", [(3, 3)]),
    ("bii->bi", [(2, 3, 3)]),
    ("ij->", [(2, 3)]),
    ("ij", [(2, 3)]),
    ("ji", [(2, 3)]),
    ("ijk->kji", [(2, 3, 2)]),
    ("i,i", [(4,), (4,)]),
    ("ij,k->ik", [(2, 3), (2,)]),
    ("...ij,...jk->...ik", [(2, 1, 2, 3), (4, 3, 2)]),
    ("...i,i->...", [(2, 3, 4), (4,)]),
    ("b...,b...->b", [(2, 3, 1), (2, 1, 4)]),
    ("i...->...", [(2, 3)]),
    ("...", [(2, 3)]),
    ("a b, b c -> a c", [(2, 3), (3, 2)]),
]


@pytest.mark.parametrize("eq,shapes", EINSUM, ids=[e for e, _ in EINSUM])
def test_einsum(eq, shapes):
    check_op(*both(lambda m: lambda *xs: m.einsum(eq, *xs)), shapes)


def test_einsum_operand_list_and_errors():
    a, b = tr.randn(2, 3), tr.randn(3, 4)
    np.testing.assert_allclose(tr.einsum("ij,jk", [a, b]).numpy(), (a @ b).numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="'i' has size 2 in one operand and 3"):
        tr.einsum("ij,ij->i", a, b)
    with pytest.raises(ValueError, match="2 operand subscripts"):
        tr.einsum("ij,jk->ik", a)
    with pytest.raises(ValueError, match="does not appear"):
        tr.einsum("ij->iz", a)


# ---------------------------------------------------------------------------------- gather / scatter
def _index(shape, n, unique_dim=None):
    """Random int64 indices in [0, n); with ``unique_dim`` a permutation prefix along it (no duplicates)."""
    if unique_dim is None:
        return rng.integers(0, n, size=shape).astype(np.int64)
    idx = np.stack(
        [rng.permutation(n)[: shape[unique_dim]] for _ in range(int(np.prod(shape)) // shape[unique_dim])]
    )
    return np.moveaxis(
        idx.reshape(tuple(s for i, s in enumerate(shape) if i != unique_dim) + (shape[unique_dim],)),
        -1,
        unique_dim,
    ).astype(np.int64)


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_gather(dim):
    idx = _index((2, 3), 3 if dim == 0 else 4)
    check_op(lambda x, i: x.gather(dim, i), None, [(3, 4), idx])
    check_op(*both(lambda m: lambda x, i: m.gather(x, dim, i)), [(3, 4), idx])
    full = _index((3, 4) if dim == 0 else (3, 2), 3 if dim == 0 else 4)
    check_op(*both(lambda m: lambda x, i: m.take_along_dim(x, i, dim)), [(3, 4), full])
    check_op(
        *both(lambda m: lambda x, i: m.take_along_dim(x, i, dim)), [(3, 1), full[:, :1] % 1]
    )  # broadcast
    check_op(*both(lambda m: lambda x, i: m.take_along_dim(x, i)), [(3, 4), full.reshape(-1)[:5]])


@pytest.mark.parametrize("dim", [0, 1])
def test_scatter_and_scatter_add(dim):
    idx = _index((2, 3), 3 if dim == 0 else 4, unique_dim=dim)
    check_op(lambda x, s, i: x.scatter(dim, i, s), None, [(3, 4), (2, 3), idx])
    check_op(*both(lambda m: lambda x, s, i: m.scatter(x, dim, i, s)), [(3, 4), (2, 3), idx])
    dup = _index((3, 3), 3 if dim == 0 else 4)  # duplicates add up
    check_op(lambda x, s, i: x.scatter_add(dim, i, s), None, [(3, 4), (3, 3), dup])
    check_op(*both(lambda m: lambda x, s, i: m.scatter_add(x, dim, i, s)), [(3, 4), (3, 3), dup])
    # src larger than index: only its leading block is used (PyTorch's forward agrees; its backward
    # refuses these shapes, so the gradient is checked by finite differences alone)
    check_op(lambda x, s, i: x.scatter_add(dim, i, s), None, [(3, 4), (3, 4), dup], grad=False)
    x, s = (
        tr.randn(3, 4, dtype=tr.float64, requires_grad=True),
        tr.randn(3, 4, dtype=tr.float64, requires_grad=True),
    )
    tr.gradcheck(
        lambda a, b: a.scatter(dim, tr.tensor(idx), b) + a.scatter_add(dim, tr.tensor(dup), b), [x, s]
    )
    check_op(lambda x, i: x.scatter(dim, i, 2.5), None, [(3, 4), idx])
    check_op(lambda x, i: x.scatter(dim, i, value=-1.0), None, [(3, 4), idx])


@pytest.mark.parametrize("include_self", [True, False])
@pytest.mark.parametrize("reduce", ["sum", "prod", "mean", "amax", "amin"])
def test_scatter_reduce(reduce, include_self):
    idx = np.array([[0, 1, 0, 1], [2, 2, 0, 0]], dtype=np.int64)  # duplicates and an untouched row
    check_op(
        lambda x, s, i: x.scatter_reduce(0, i, s, reduce, include_self=include_self),
        None,
        [(4, 4), (2, 4), idx],
    )
    check_op(
        *both(lambda m: lambda x, s, i: m.scatter_reduce(x, 1, i, s, reduce, include_self=include_self)),
        [(2, 4), (2, 3), idx[:, :3]],
    )
    x, s = (
        tr.randn(3, 4, dtype=tr.float64, requires_grad=True),
        tr.randn(2, 5, dtype=tr.float64, requires_grad=True),
    )
    tr.gradcheck(
        lambda a, b: a.scatter_reduce(0, tr.tensor(idx), b, reduce, include_self=include_self), [x, s]
    )


@pytest.mark.parametrize("include_self", [True, False])
def test_scatter_reduce_prod_gradient_exact_at_zeros(include_self):
    x = np.array([[1.5, 0.0, 2.0], [3.0, 0.5, -1.0]])
    s = np.array([[0.0, 2.0, 0.0], [4.0, 0.0, 0.0], [0.5, 3.0, 1.5]])
    idx = np.array([[0, 0, 1], [0, 1, 1], [1, 1, 0]], dtype=np.int64)
    check_op(lambda a, b, i: a.scatter_reduce(0, i, b, "prod", include_self=include_self), None, [x, s, idx])


@needs_torch
@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint8])
def test_gather_scatter_integer_dtypes(dtype):
    x = rng.integers(0, 9, size=(3, 4)).astype(dtype)
    s = rng.integers(0, 9, size=(3, 4)).astype(dtype)
    i = _index((3, 4), 3)
    X, S, Idx = tr.tensor(x), tr.tensor(s), tr.tensor(i)
    T, TS, TI = torch.tensor(x), torch.tensor(s), torch.tensor(i)
    same(X.gather(0, Idx), T.gather(0, TI))
    same(X.scatter_add(0, Idx, S), T.scatter_add(0, TI, TS))
    for reduce in ("sum", "prod", "mean", "amax", "amin"):
        for inc in (True, False):
            same(
                X.scatter_reduce(0, Idx, S, reduce, include_self=inc),
                T.scatter_reduce(0, TI, TS, reduce, include_self=inc),
            )


def test_gather_scatter_errors_and_inplace():
    x = tr.zeros(3, 4)
    with pytest.raises(IndexError, match="index 5 is out of bounds for dimension 1 with size 4"):
        x.gather(1, tr.tensor([[5]]))
    with pytest.raises(TypeError, match="int64"):
        x.gather(1, tr.tensor([[0.0]]))
    with pytest.raises(ValueError, match="reduce argument must be either sum, prod, mean, amax or amin"):
        x.scatter_reduce(0, tr.tensor([[0]]), tr.ones(1, 1), "max")
    with pytest.raises(ValueError, match="same number of dimensions"):
        x.gather(0, tr.tensor([0, 1]))
    y = tr.zeros(2, 3)
    v = y._version
    assert y.scatter_(1, tr.tensor([[2], [0]]), 1.0) is y and y._version > v
    assert y.tolist() == [[0, 0, 1], [1, 0, 0]]
    y.scatter_add_(0, tr.tensor([[0, 0, 0]]), tr.ones(1, 3))
    assert y.tolist() == [[1, 1, 2], [1, 0, 0]]
    w = tr.zeros(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="in-place"):
        w.scatter_(0, tr.tensor([0]), 1.0)


@FAST
@given(shape=st.lists(st.integers(1, 3), min_size=1, max_size=3), data=st.data())
def test_gather_scatter_add_hypothesis(shape, data):
    shape = tuple(shape)
    dim = data.draw(st.integers(0, len(shape) - 1))
    ishape = tuple(
        data.draw(st.integers(0 if i == dim else 1, s + (1 if i == dim else 0)))
        if i == dim
        else data.draw(st.integers(1, s))
        for i, s in enumerate(shape)
    )
    idx = _index(ishape, shape[dim])
    check_op(lambda x, i: x.gather(dim, i), None, [shape, idx], gradcheck=False)
    check_op(lambda x, s, i: x.scatter_add(dim, i, s), None, [shape, ishape, idx], gradcheck=False)


# ----------------------------------------------------------------------- module-level arithmetic
def test_module_level_add_sub_mul_div_pow():
    check_op(
        *both(lambda m: lambda a, b: m.add(a, b) + m.sub(a, b, alpha=2) + m.mul(a, b) + m.div(a, b)),
        [(2, 3), (3,)],
    )
    check_op(
        *both(lambda m: lambda a, b: m.add(a, b, alpha=0.5) - m.pow(a, 2) + m.pow(b, a.detach() * 0 + 2)),
        [(2, 3), (2, 3)],
    )
    check_op(
        *both(lambda m: lambda a: m.pow(2.0, a) + m.sub(1.0, a) + m.div(1.0, a + 5) + m.mul(3, a)), [(4,)]
    )
    check_op(lambda a, b: a.pow(b), None, [(3,), (3,)], positive=True)


@pytest.mark.parametrize("mode", ["trunc", "floor", None])
def test_div_rounding_mode(mode):
    a = np.array([-7.5, -7.0, -0.5, 0.5, 7.0, 7.5, 3.0])
    b = np.array([2.0, -2.0, 2.0, -2.0, 2.0, 2.0, -4.0])
    check_op(*both(lambda m: lambda x, y: m.div(x, y, rounding_mode=mode)), [a, b], gradcheck=mode is None)
    if HAS_TORCH:
        ai, bi = np.array([-7, 7, -7, 7, 0, 5]), np.array([2, -2, -2, 2, 3, 5])
        same(
            tr.div(tr.tensor(ai), tr.tensor(bi), rounding_mode=mode),
            torch.div(torch.tensor(ai), torch.tensor(bi), rounding_mode=mode),
        )
        same(tr.tensor(ai).div(3, rounding_mode=mode), torch.tensor(ai).div(3, rounding_mode=mode))
    with pytest.raises(ValueError, match="rounding_mode"):
        tr.ones(2).div(2, rounding_mode="round")


def test_rounded_division_gradient_is_zero():
    x = tr.tensor([1.5, -2.5], requires_grad=True)
    (x // 2).sum().backward()
    assert x.grad.tolist() == [0.0, 0.0]


@pytest.mark.parametrize("op", ["fmod", "remainder"])
def test_fmod_remainder_gradients(op):
    a = np.array([-7.3, 7.3, -2.2, 2.2, 5.1, -5.1])
    b = np.array([2.0, -2.0, -0.7, 0.7, 1.3, 1.3])
    check_op(lambda x, y: getattr(x, op)(y), None, [a, b])
    check_op(*both(lambda m: lambda x, y: getattr(m, op)(x, y)), [a, b[:1]])
    check_op(*both(lambda m: lambda x: getattr(m, op)(x, 1.5)), [a])


@needs_torch
def test_mod_floordiv_sign_rules_int_and_float():
    ai, bi = np.array([-7, 7, -7, 7, 0, -1]), np.array([2, -2, -2, 2, 3, 5])
    for a, b in (
        (ai, bi),
        (ai.astype(np.float32), bi.astype(np.float32)),
        (ai.astype(np.int32), bi.astype(np.int32)),
    ):
        A, B, TA, TB = tr.tensor(a), tr.tensor(b), torch.tensor(a), torch.tensor(b)
        same(A % B, TA % TB)  # the sign of the divisor
        same(A // B, TA // TB)
        same(tr.fmod(A, B), torch.fmod(TA, TB))  # the sign of the dividend
        same(tr.remainder(A, B), torch.remainder(TA, TB))
        same(A % 3, TA % 3)
        same(7 % B, 7 % TB)
        same(7 // B, 7 // TB)
        same(A.fmod(-3), TA.fmod(-3))
    assert (tr.tensor([-7]) % 2).item() == -7 % 2 and tr.fmod(tr.tensor([-7]), 2).item() == -1
    for fn in (
        lambda a, b: a % b,
        lambda a, b: a // b,
        tr.fmod,
        lambda a, b: a.div(b, rounding_mode="trunc"),
    ):
        with pytest.raises(ZeroDivisionError):
            fn(tr.tensor([1, 2]), tr.tensor([1, 0]))
    same(
        tr.tensor([1.0, -1.0]) // tr.tensor([0.0, 0.0]), torch.tensor([1.0, -1.0]) // torch.tensor([0.0, 0.0])
    )


@FAST
@given(
    sa=st.sampled_from([(), (3,), (2, 3), (2, 1), (0, 3)]),
    sb=st.sampled_from([(), (3,), (1, 3), (1, 1)]),
    op=st.sampled_from(["fmod", "remainder", "floor_divide"]),
)
def test_fmod_remainder_broadcasting_hypothesis(sa, sb, op):
    a = rng.uniform(-9, 9, size=sa)
    b = rng.choice([-3.0, -1.5, 2.0, 2.5], size=sb)
    got = getattr(tr, op)(tr.tensor(a), tr.tensor(b))
    assert got.shape == np.broadcast_shapes(sa, sb)
    if HAS_TORCH:
        same(got, getattr(torch, op)(torch.tensor(a), torch.tensor(b)))


# ----------------------------------------------------------------------------- movement ops
@pytest.mark.parametrize(
    "fn",
    [
        lambda x: x.repeat(2, 1),
        lambda x: x.repeat(2, 1, 3),
        lambda x: x.repeat(1, 0),
        lambda x: x.tile((2,)),
        lambda x: x.tile((2, 1, 2)),
        lambda x: x.roll(1, 0),
        lambda x: x.roll(-2, 1),
        lambda x: x.roll((1, 2), (0, 1)),
        lambda x: x.roll(5),
        lambda x: x.flip(0),
        lambda x: x.flip((0, 1)),
        lambda x: x.flip([-1]),
    ],
    ids=[
        "repeat2",
        "repeat3",
        "repeat0",
        "tile1",
        "tile3",
        "roll0",
        "roll1",
        "roll01",
        "rollflat",
        "flip0",
        "flip01",
        "flip-1",
    ],
)
def test_repeat_tile_roll_flip(fn):
    check_op(fn, None, [(2, 3)])


def test_module_level_tile_roll_flip():
    check_op(
        *both(
            lambda m: (
                lambda x: m.tile(x, (2, 2)) + m.roll(x, 1, 1).repeat(2, 2) + m.flip(x, [0, 1]).tile(2, 2)
            )
        ),
        [(2, 3)],
    )
    assert tr.tensor(3.0).roll(1).shape == () and tr.tensor(3.0).repeat(2).tolist() == [3.0, 3.0]
    with pytest.raises(IndexError, match="no dimensions"):
        tr.tensor(3.0).roll(1, 0)


# ---------------------------------------------------------------------------- sort / topk
@pytest.mark.parametrize("dim", [0, -1])
@pytest.mark.parametrize("descending", [False, True])
def test_sort_argsort(dim, descending):
    check_op(lambda x: x.sort(dim, descending), None, [(3, 4)])
    check_op(*both(lambda m: lambda x: m.sort(x, dim=dim, descending=descending)), [(2, 5)])
    check_op(*both(lambda m: lambda x: m.argsort(x, dim=dim, descending=descending)), [(4, 3)], grad=False)


@needs_torch
def test_sort_is_stable_with_ties_and_nan_like_pytorch():
    a = np.array([[2.0, 1.0, 2.0, np.nan, 1.0, 3.0, 2.0, np.nan], [0.0, 0.0, -1.0, 0.0, 5.0, 5.0, -1.0, 0.0]])
    for desc in (False, True):
        got, want = (
            tr.tensor(a).sort(-1, descending=desc),
            torch.tensor(a).sort(dim=-1, descending=desc, stable=True),
        )
        assert type(got).__name__ == "sort"
        same(got.values, want.values)
        same(got.indices, want.indices)
    ai = rng.integers(0, 3, size=(3, 7)).astype(np.int32)
    for desc in (False, True):
        same(
            tr.tensor(ai).argsort(1, descending=desc),
            torch.tensor(ai).argsort(dim=1, descending=desc, stable=True),
        )
        same(tr.tensor(ai).sort(0, descending=desc).values, torch.tensor(ai).sort(0, descending=desc).values)


@pytest.mark.parametrize("k,dim,largest", [(2, -1, True), (1, 0, False), (3, 1, False), (0, -1, True)])
def test_topk(k, dim, largest):
    check_op(lambda x: x.topk(k, dim, largest), None, [(3, 4)])
    check_op(*both(lambda m: lambda x: m.topk(x, k, dim=dim, largest=largest)), [(2, 4)])
    assert type(tr.randn(3, 4).topk(1)).__name__ == "topk"
    with pytest.raises(IndexError, match="out of range"):
        tr.randn(3, 4).topk(5)


def test_sort_topk_0d_and_empty():
    v, i = tr.tensor(2.0).sort()
    assert v.shape == () and i.item() == 0
    assert tr.zeros(0).sort().values.shape == (0,) and tr.zeros(2, 0).topk(0).indices.shape == (2, 0)


# ---------------------------------------------------------------------------- tril / triu
@pytest.mark.parametrize("diagonal", [-1, 0, 1, 5])
@pytest.mark.parametrize("op", ["tril", "triu"])
def test_tril_triu(op, diagonal):
    check_op(lambda x: getattr(x, op)(diagonal), None, [(3, 4)])
    check_op(*both(lambda m: lambda x: getattr(m, op)(x, diagonal)), [(2, 4, 3)])
    if HAS_TORCH:
        a = rng.integers(0, 9, size=(4, 4))
        same(getattr(tr.tensor(a), op)(diagonal), getattr(torch.tensor(a), op)(diagonal))
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        getattr(tr.ones(3), op)()


# --------------------------------------------------------------------------------- nonzero
@needs_torch
@pytest.mark.parametrize(
    "a",
    [
        np.array([[0, 1, 0], [2, 0, 3]]),
        np.array([0.0, 1.5, 0.0]),
        np.array(3.0),
        np.array(0),
        np.zeros((2, 0)),
        np.array([[True, False], [True, True]]),
    ],
    ids=["int2d", "float1d", "0d", "0d-zero", "empty", "bool"],
)
def test_nonzero(a):
    same(tr.tensor(a).nonzero(), torch.tensor(a).nonzero())
    same(tr.nonzero(tr.tensor(a)), torch.nonzero(torch.tensor(a)))
    got, want = tr.tensor(a).nonzero(as_tuple=True), torch.tensor(a).nonzero(as_tuple=True)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        same(g, w)
    if a.ndim:
        same(tr.tensor(a)[tr.where(tr.tensor(a))], torch.tensor(a)[torch.where(torch.tensor(a))])


# ------------------------------------------------------------------------- trig / hyperbolic
TRIG = {
    "tan": (-1.2, 1.2),
    "asin": (-0.9, 0.9),
    "acos": (-0.9, 0.9),
    "atan": (-3, 3),
    "sinh": (-2, 2),
    "cosh": (-2, 2),
    "asinh": (-3, 3),
    "acosh": (1.2, 4),
    "atanh": (-0.9, 0.9),
}


@pytest.mark.parametrize("op", sorted(TRIG))
def test_trig_hyperbolic(op):
    lo, hi = TRIG[op]
    check_op(lambda x: getattr(x, op)(), None, [(2, 3)], low=lo, high=hi)
    check_op(*both(lambda m: lambda x: getattr(m, op)(x)), [(4,)], low=lo, high=hi)
    check_op(lambda x: getattr(x, op)(), None, [np.array(0.5 * (lo + hi))])  # 0-d
    assert getattr(tr.tensor([1, 2]), op)().dtype == tr.float32  # integers promote, as in PyTorch
    if HAS_TORCH:
        edge = np.array([-1.0, 1.0, 0.0, 2.0, np.inf])
        with np.errstate(all="ignore"):
            same(getattr(tr.tensor(edge), op)(), getattr(torch.tensor(edge), op)())


# --------------------------------------------------------------------------- std_mean / var_mean
@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"dim": 1},
        {"dim": (0, 1), "keepdim": True},
        {"dim": 0, "correction": 0},
        {"dim": 1, "unbiased": False},
        {"correction": 2},
    ],
)
@pytest.mark.parametrize("name", ["std_mean", "var_mean"])
def test_std_mean_var_mean(name, kw):
    check_op(*both(lambda m: lambda x: getattr(m, name)(x, **kw)), [(3, 4)])
    check_op(*both(lambda m: lambda x: getattr(m, name[:3])(x, **kw)), [(3, 4)])


def test_var_mean_positional_correction():
    v, m = tr.var_mean(tr.tensor([1.0, 2.0, 3.0, 4.0]), 0, 0)
    assert v.item() == pytest.approx(1.25) and m.item() == pytest.approx(2.5)


# ---------------------------------------------------------------------------------- where
def test_where_with_numbers():
    check_op(*both(lambda m: lambda x: m.where(x > 0, x, 0.0)), [(3, 4)])
    check_op(*both(lambda m: lambda x: m.where(x > 0, -1.0, x)), [(3, 4)])
    check_op(*both(lambda m: lambda x: x.where(x > 0, 2.0)), [(3, 4)])
    c = tr.tensor([True, False])
    assert tr.where(c, 1.0, 0.0).dtype == tr.float32 and tr.where(c, 1.0, 0.0).tolist() == [1.0, 0.0]
    assert tr.where(c, 1, 0).dtype == tr.int64 and tr.where(c, tr.tensor([1, 2]), 0.5).dtype == tr.float32
    if HAS_TORCH:
        tc = torch.tensor([True, False])
        for args in ((1.0, 0.0), (1, 0), (tr.tensor([1, 2]), 0.5)):
            targs = tuple(torch.tensor(a.numpy()) if isinstance(a, tr.Tensor) else a for a in args)
            same(tr.where(c, *args), torch.where(tc, *targs))


# ------------------------------------------------------------------------------- dtype names
def test_dtype_names_follow_pytorch():
    names = [
        "int",
        "long",
        "float",
        "double",
        "half",
        "bool",
        "short",
        "int8",
        "int16",
        "int32",
        "int64",
        "uint8",
        "float16",
        "float32",
        "float64",
    ]
    for n in names:
        d = getattr(tr, n)
        assert isinstance(d, tr.dtype)
        if HAS_TORCH:
            assert (
                tr.zeros(1, dtype=d).numpy().dtype == torch.zeros(1, dtype=getattr(torch, n)).numpy().dtype
            ), n
    assert tr.ones(2, dtype=tr.long).dtype == np.int64 and tr.ones(2).to(tr.half).dtype == np.float16
    assert tr.tensor([1.5]).type(tr.int).dtype == np.int32 and tr.zeros(1, dtype="short").dtype == np.int16


# ---------------------------------------------------------------------------------- resize_
@needs_torch
@pytest.mark.parametrize("sizes", [(2, 2), (6,), (1, 3, 2), (0,)])
def test_resize_(sizes):
    x, t = tr.arange(6).reshape(2, 3), torch.arange(6).reshape(2, 3)
    assert x.resize_(*sizes) is x
    same(x, t.resize_(*sizes))


def test_resize_grows_with_zeros_and_refuses_grad():
    x = tr.tensor([1.0, 2.0, 3.0])
    x.resize_((2, 3))
    assert x.shape == (2, 3) and x.tolist() == [[1, 2, 3], [0, 0, 0]]
    assert tr.tensor([1.0]).resize_as_(tr.zeros(2, 2)).shape == (2, 2)
    with pytest.raises(RuntimeError, match="cannot resize variables that require grad"):
        tr.ones(2, requires_grad=True).resize_(4)


# ------------------------------------------------------------------------------- cat legacy
def test_cat_skips_empty_1d_tensors():
    check_op(*both(lambda m: lambda e, x, y: m.cat([e, x, e, y], 0)), [(0,), (2, 3), (1, 3)])
    check_op(*both(lambda m: lambda e, x: m.cat([x, e], 1)), [(0,), (2, 3)])
    assert tr.cat([tr.zeros(0), tr.zeros(0)]).shape == (0,)
    assert tr.cat([tr.zeros(0, dtype=tr.int64), tr.ones(2, 2)]).dtype == tr.float32
    e = tr.zeros(0, requires_grad=True)
    tr.cat([e, tr.ones(2, 2)]).sum().backward()
    assert e.grad.shape == (0,)
    with pytest.raises(ValueError, match="must match"):
        tr.cat([tr.zeros(0), tr.zeros(2, 3), tr.zeros(2, 4)])


# ----------------------------------------------------------------------------------- device
def test_device_is_callable_like_torch_device():
    d = tr.device("cpu")
    assert (
        d.type == "cpu" and d.index is None and d == "cpu" and "cpu" == d and repr(d) == "device(type='cpu')"
    )
    assert isinstance(d, tr.device) and not isinstance("cpu", tr.device)
    x = tr.zeros(2, device=d)
    assert x.device == d and x.to(d).device == "cpu" and tr.tensor([1.0], device=tr.device("cpu")).device == d
    assert (
        tr.device("cuda:1").index == 1
        and tr.device("cuda", 0) == "cuda"
        and str(tr.device("cuda", 1)) == "cuda:1"
    )
    assert {d: 1}["cpu"] == 1 and tr.device(d) is d
    assert tr.device.backend("cpu") is not None  # still the module
    with pytest.raises(RuntimeError, match="Expected one of cpu, cuda device type"):
        tr.device("tpu")
    if HAS_TORCH:
        assert repr(tr.device("cuda", 1)) == repr(torch.device("cuda", 1))


# ------------------------------------------------------------------------------- save / load
def test_save_load_state_dict_roundtrip(tmp_path):
    from tinygrad_rad import nn

    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    sd = model.state_dict()
    p = tmp_path / "model.safetensors"
    tr.save(sd, p)
    loaded = tr.load(p)
    assert list(loaded) == list(sd)
    for k in sd:
        np.testing.assert_array_equal(loaded[k].numpy(), sd[k].numpy())
    model2 = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    model2.load_state_dict(tr.load(str(p), map_location="cpu", weights_only=True))
    x = tr.randn(5, 3)
    np.testing.assert_array_equal(model(x).numpy(), model2(x).numpy())
    # an ordinary safetensors state dict: other tools read it
    import safetensors.numpy

    assert sorted(safetensors.numpy.load_file(str(p))) == sorted(sd)
    assert [f for f in os.listdir(tmp_path) if f != "model.safetensors"] == []  # no temp file left


def test_save_load_nested_structures_and_values(tmp_path):
    obj = {
        "epoch": 3,
        "lr": 1e-3,
        "best": float("inf"),
        "name": "run",
        "ok": True,
        "none": None,
        "weights": [tr.randn(2, 3), tr.arange(4), tr.tensor(True), tr.zeros(0, 2, dtype=tr.float64)],
        "pair": (tr.tensor(1.5, dtype=tr.float16), {"inner": tr.ones(2, dtype=tr.uint8)}),
        7: np.arange(3, dtype=np.int16),
        "grad": tr.randn(2, requires_grad=True),
    }
    buf = io.BytesIO()
    tr.save(obj, buf)
    buf.seek(0)
    for back in (tr.load(buf), _roundtrip_path(obj, tmp_path)):
        assert (
            back["epoch"] == 3
            and back["lr"] == 1e-3
            and back["best"] == float("inf")
            and back["name"] == "run"
        )
        assert back["ok"] is True and back["none"] is None and isinstance(back["pair"], tuple)
        for a, b in zip(back["weights"], obj["weights"]):
            assert a.dtype == b.dtype and a.shape == b.shape
            np.testing.assert_array_equal(a.numpy(), b.numpy())
        assert back["pair"][0].dtype == np.float16 and back["pair"][1]["inner"].tolist() == [1, 1]
        assert isinstance(back[7], np.ndarray) and back[7].dtype == np.int16
        assert back["grad"].requires_grad
    t = tr.randn(3)
    tr.save(t, tmp_path / "t.safetensors")
    np.testing.assert_array_equal(tr.load(tmp_path / "t.safetensors").numpy(), t.numpy())


def _roundtrip_path(obj, tmp_path):
    p = tmp_path / "nested.safetensors"
    tr.save(obj, p)
    return tr.load(p, map_location={"cuda": "cpu"})


def test_save_refuses_unsupported_objects_and_load_names_the_file(tmp_path):
    from tinygrad_rad import nn

    with pytest.raises(TypeError, match="cannot store an object of type Linear at 'top level'|state_dict"):
        tr.save(nn.Linear(2, 2), tmp_path / "m.safetensors")
    with pytest.raises(TypeError, match=r"type set at 'a\.b'"):
        tr.save({"a": {"b": {1, 2}}}, tmp_path / "s.safetensors")
    with pytest.raises(TypeError, match="dict keys"):
        tr.save({(1, 2): tr.ones(1)}, tmp_path / "k.safetensors")
    assert not list(tmp_path.iterdir())  # nothing written
    missing = tmp_path / "nope.safetensors"
    with pytest.raises(FileNotFoundError, match="nope.safetensors"):
        tr.load(missing)
    bad = tmp_path / "model.pt"
    bad.write_bytes(b"\x80\x04\x95pickle-bytes" + b"\0" * 20)
    with pytest.raises(ValueError, match="model.pt.*never unpickles"):
        tr.load(bad)
    with pytest.raises(IsADirectoryError):
        tr.load(tmp_path)


@needs_torch
def test_load_reads_a_state_dict_written_by_safetensors_torch(tmp_path):
    st_torch = pytest.importorskip("safetensors.torch")
    sd = {"w": torch.randn(2, 3), "b": torch.arange(3)}
    st_torch.save_file(sd, str(tmp_path / "torch.safetensors"))
    back = tr.load(tmp_path / "torch.safetensors")
    for k in sd:
        same(back[k], sd[k])


# ------------------------------------------------------------------ more hypothesis: shapes and dtypes
SHAPES = st.lists(st.integers(0, 3), min_size=0, max_size=3).map(tuple)


def _data(shape, dtype):
    if dtype == "float64":
        return rng.standard_normal(shape)
    return rng.integers(-3, 4, size=shape).astype(dtype)  # small integers: many ties


@FAST
@given(
    shape=SHAPES,
    dtype=st.sampled_from(["float64", "int64", "int32"]),
    descending=st.booleans(),
    data=st.data(),
)
def test_sort_topk_hypothesis(shape, dtype, descending, data):
    nd = max(len(shape), 1)
    dim = data.draw(st.integers(-nd, nd - 1))
    n = shape[dim] if shape else 1
    k = data.draw(st.integers(0, n))
    a = _data(shape, dtype)
    s, t = tr.tensor(a).sort(dim, descending), tr.tensor(a).topk(k, dim, largest=descending)
    assert s.values.shape == shape and t.values.shape == (
        shape[: dim % nd] + (k,) + shape[dim % nd + 1 :] if shape else ()
    )
    if HAS_TORCH:
        ws = torch.tensor(a).sort(dim=dim, descending=descending, stable=True)
        same(s.values, ws.values)
        same(s.indices, ws.indices)
        wt = torch.tensor(a).topk(k, dim, largest=descending)
        same(t.values, wt.values)  # (the order of tied indices is unspecified in PyTorch's topk)
    if dtype == "float64" and a.size and len(set(a.reshape(-1).tolist())) == a.size:
        check_op(lambda x: x.topk(k, dim, descending), None, [a], gradcheck=False)


@FAST
@given(shape=SHAPES, dtype=st.sampled_from(["float64", "int64", "uint8"]), data=st.data())
def test_repeat_roll_flip_tril_hypothesis(shape, dtype, data):
    reps = tuple(data.draw(st.lists(st.integers(0, 2), min_size=len(shape), max_size=len(shape) + 1)))
    a = _data(shape, dtype) if dtype != "uint8" else rng.integers(0, 9, size=shape).astype(np.uint8)
    x = tr.tensor(a)
    nd = max(len(shape), 1)
    shift, dim = data.draw(st.integers(-4, 4)), data.draw(st.integers(-nd, nd - 1))
    outs = [x.repeat(*reps) if reps else x, x.roll(shift, dim) if shape else x, x.roll(shift), x.flip(dim)]
    if len(shape) >= 2:
        outs += [x.tril(shift), x.triu(shift)]
    if HAS_TORCH:
        t = torch.tensor(a)
        want = [
            t.repeat(*reps) if reps else t,
            t.roll(shift, dim) if shape else t,
            t.roll(shift),
            t.flip(dim),
        ]
        if len(shape) >= 2:
            want += [t.tril(shift), t.triu(shift)]
        for g, w in zip(outs, want):
            same(g, w)
    if dtype == "float64" and 0 < a.size <= 12 and reps:
        check_op(lambda v: v.repeat(*reps).roll(shift) * 1.5, None, [a])


@FAST
@given(
    batch_a=st.sampled_from([(), (2,), (1,), (2, 1), (0,)]),
    batch_b=st.sampled_from([(), (2,), (1,), (3, 2)]),
    n=st.integers(1, 3),
    k=st.integers(0, 2),
)
def test_einsum_batched_matmul_broadcasting_hypothesis(batch_a, batch_b, n, k):
    try:
        np.broadcast_shapes(batch_a, batch_b)
    except ValueError:
        return
    a, b = rng.standard_normal(batch_a + (n, k)), rng.standard_normal(batch_b + (k, 2))
    got = tr.einsum("...ij,...jk->...ik", tr.tensor(a), tr.tensor(b))
    np.testing.assert_allclose(got.numpy(), np.matmul(a, b), rtol=1e-12, atol=1e-12)
    if a.size and b.size:
        check_op(lambda x, y: tr.einsum("...ij,...jk->...ik", x, y), lambda x, y: x @ y, [a, b])


@needs_torch
@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint8, np.bool_])
def test_integer_ops_keep_dtype_like_pytorch(dtype):
    a = rng.integers(0, 2 if dtype is np.bool_ else 9, size=(3, 4)).astype(dtype)
    x, t = tr.tensor(a), torch.tensor(a)
    same(x.cumsum(1), t.cumsum(1))
    same(x.prod(1), t.prod(1))
    same(x.cummax(0).values, t.cummax(0).values)
    same(x.repeat(2, 1), t.repeat(2, 1))
    same(x.roll(1, 1), t.roll(1, 1))
    same(x.tril(), t.tril())
    same(x.nonzero(), t.nonzero())
    same(x.sort(1).values, t.sort(1).values)
    same(x.isclose(x), t.isclose(t))


def test_save_load_model_and_optimizer_checkpoint_resumes_exactly(tmp_path):
    from tinygrad_rad import nn, optim

    def step(model, opt, x):
        opt.zero_grad()
        model(x).pow(2).mean().backward()
        opt.step()

    tr.manual_seed(0)
    x = tr.randn(4, 3)
    m1 = nn.Linear(3, 2)
    o1 = optim.Adam(m1.parameters(), lr=1e-2)
    step(m1, o1, x)
    tr.save({"model": m1.state_dict(), "optimizer": o1.state_dict(), "epoch": 1}, tmp_path / "ck.safetensors")
    ck = tr.load(tmp_path / "ck.safetensors")
    m2 = nn.Linear(3, 2)
    m2.load_state_dict(ck["model"])
    o2 = optim.Adam(m2.parameters(), lr=1e-2)
    o2.load_state_dict(ck["optimizer"])
    assert ck["epoch"] == 1
    step(m1, o1, x)
    step(m2, o2, x)
    for p, q in zip(m1.parameters(), m2.parameters()):
        np.testing.assert_array_equal(p.numpy(), q.numpy())


# ------------------------------------------------- the second tier: composed ops (forward + gradient)
SECOND = {
    "log2": (lambda m: lambda x: m.log2(x), [(2, 3)], {"positive": True}),
    "log10": (lambda m: lambda x: x.log10(), [(2, 3)], {"positive": True}),
    "exp2": (lambda m: lambda x: m.exp2(x), [(2, 3)], {}),
    "erf": (lambda m: lambda x: m.erf(x), [(2, 3)], {}),
    "logit": (lambda m: lambda x: m.logit(x), [(2, 3)], {"low": 0.1, "high": 0.9}),
    "logit_eps": (lambda m: lambda x: x.logit(eps=0.2), [(2, 3)], {"low": 0.25, "high": 0.75}),
    "xlogy": (lambda m: lambda x, y: m.xlogy(x, y), [(2, 3), (3,)], {"positive": True}),
    "atan2": (lambda m: lambda x, y: m.atan2(x, y), [(2, 3), (2, 3)], {}),
    "hypot": (lambda m: lambda x, y: m.hypot(x, y), [(2, 3), (1, 3)], {}),
    "logaddexp": (lambda m: lambda x, y: m.logaddexp(x, y), [(2, 3), (2, 3)], {}),
    "lerp": (lambda m: lambda x, y: m.lerp(x, y, 0.3), [(2, 3), (2, 3)], {}),
    "frac": (lambda m: lambda x: m.frac(x * 3), [(2, 3)], {}),
    "clamp_min_max": (lambda m: lambda x: x.clamp_min(-0.5).clamp_max(0.5), [(2, 5)], {}),
    "nan_to_num": (lambda m: lambda x: m.nan_to_num(x / (x > 0)), [(2, 3)], {"gradcheck": False}),
    "movedim": (lambda m: lambda x: m.movedim(x, (0, 1), (2, 0)), [(2, 3, 4)], {}),
    "mT_swapaxes": (lambda m: lambda x: x.mT + x.swapaxes(1, 2), [(2, 3, 3)], {}),
    "unbind": (lambda m: lambda x: m.unbind(x, 1), [(2, 3)], {}),
    "narrow": (lambda m: lambda x: m.narrow(x, 1, 1, 2), [(2, 4)], {}),
    "unfold": (lambda m: lambda x: x.unfold(1, 2, 1), [(2, 5)], {}),
    "unfold_step": (lambda m: lambda x: x.unfold(0, 3, 2), [(7, 2)], {}),
    "rot90": (lambda m: lambda x: m.rot90(x, 1, (0, 1)) + m.rot90(x, 3, (0, 1)), [(3, 3)], {}),
    "rot90_2": (lambda m: lambda x: m.rot90(x, 2, (1, 2)), [(2, 3, 4)], {}),
    "diff": (lambda m: lambda x: m.diff(x, dim=1) * 1.0, [(2, 5)], {}),
    "diff_n2": (lambda m: lambda x, p: m.diff(x, n=2, dim=0, prepend=p), [(4, 3), (1, 3)], {}),
    "repeat_interleave": (lambda m: lambda x: m.repeat_interleave(x, 2, dim=1), [(2, 3)], {}),
    "repeat_interleave_flat": (lambda m: lambda x: x.repeat_interleave(3), [(2, 2)], {}),
    "masked_select": (lambda m: lambda x: m.masked_select(x, x > 0), [(3, 4)], {}),
    "index_add": (
        lambda m: lambda x, s: x.index_add(1, (m.tensor([0, 2, 0])), s, alpha=2),
        [(2, 3), (2, 3)],
        {},
    ),
    "index_copy": (lambda m: lambda x, s: x.index_copy(0, m.tensor([2, 0]), s), [(3, 2), (2, 2)], {}),
    "index_fill": (lambda m: lambda x: x.index_fill(1, m.tensor([0, 2]), -1.0), [(2, 3)], {}),
    "dot_outer": (lambda m: lambda x, y: m.outer(x, y) * m.dot(x, y[:3]), [(3,), (4,)], {}),
    "mm_bmm_mv": (
        lambda m: lambda a, b, v: m.mm(a, b).sum() + m.bmm(a[None], b[None]).sum() + m.mv(a, v).sum(),
        [(2, 3), (3, 4), (3,)],
        {},
    ),
    "addmm": (lambda m: lambda c, a, b: m.addmm(c, a, b, beta=0.5, alpha=2), [(2, 4), (2, 3), (3, 4)], {}),
    "diagonal": (lambda m: lambda x: m.diagonal(x, 1)[:2] + m.diagonal(x, -1), [(3, 4)], {}),
    "diagonal_dims": (lambda m: lambda x: m.diagonal(x, 0, 2, 0), [(3, 2, 3)], {}),
    "diag": (lambda m: lambda x: m.diag(x) + m.diag(x, 0), [(3,)], {}),
    "diag_offset": (lambda m: lambda x: m.diag(x, 1).sum(0) + m.diag(x, -2).sum(1)[:4], [(3,)], {}),
    "diag_2d": (lambda m: lambda x: m.diag(x, -1), [(3, 4)], {}),
    "trace": (lambda m: lambda x: x.trace(), [(3, 4)], {}),
    "cross": (lambda m: lambda x, y: m.cross(x, y, dim=1), [(2, 3), (2, 3)], {}),
    "dist": (lambda m: lambda x, y: m.dist(x, y) + m.dist(x, y, 1), [(2, 3), (2, 3)], {}),
    "cdist": (lambda m: lambda x, y: m.cdist(x, y), [(3, 2), (4, 2)], {}),
    "kthvalue": (lambda m: lambda x: m.kthvalue(x, 2, 1), [(3, 4)], {}),
    "kthvalue_keepdim": (lambda m: lambda x: x.kthvalue(3, 0, True), [(3, 4)], {}),
    "median": (lambda m: lambda x: m.median(x), [(3, 4)], {}),
    "median_dim": (lambda m: lambda x: m.median(x, 1), [(3, 4)], {}),
    "broadcast": (
        lambda m: lambda x, y: sum(t.sum() for t in m.broadcast_tensors(x, y)) + m.broadcast_to(x, (2, 3)),
        [(1, 3), (2, 1)],
        {},
    ),
    "sum_to_size": (lambda m: lambda x: x.sum_to_size(1, 3) + x.sum_to_size(3), [(2, 3)], {}),
    "stacks": (
        lambda m: lambda x, y: m.hstack([x, y]).sum() + m.vstack([x, y]).sum(1) + m.dstack([x, y]).sum(),
        [(2, 3), (2, 3)],
        {},
    ),
    "column_stack": (lambda m: lambda x, y: m.column_stack([x, y]), [(3,), (3, 2)], {}),
    "meshgrid": (lambda m: lambda x, y: [g * 1.0 for g in m.meshgrid(x, y, indexing="ij")], [(2,), (3,)], {}),
    "meshgrid_xy": (
        lambda m: lambda x, y: [g * 1.0 for g in m.meshgrid(x, y, indexing="xy")],
        [(2,), (3,)],
        {},
    ),
    "flipud_fliplr": (lambda m: lambda x: m.flipud(x) + m.fliplr(x), [(2, 2)], {}),
    "float_power": (lambda m: lambda x: m.float_power(x, 2), [(2, 3)], {}),
    "deg_rad": (lambda m: lambda x: m.deg2rad(x) + m.rad2deg(x), [(2, 3)], {}),
}


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # nan_to_num's test input divides by zero on purpose
@pytest.mark.parametrize("name", sorted(SECOND))
def test_second_tier_ops(name):
    fn, shapes, kw = SECOND[name]
    check_op(*both(fn), shapes, **kw)


@needs_torch
def test_second_tier_no_grad_ops_like_pytorch():
    a = np.array([[2, 0, 2, 5], [1, 1, 3, 0]])
    x, t = tr.tensor(a), torch.tensor(a)
    for got, want in [
        (x.unique(), t.unique()),
        (
            x.bincount() if False else tr.tensor(a[0]).bincount(minlength=7),
            torch.tensor(a[0]).bincount(minlength=7),
        ),
        (
            tr.tensor(a[0]).bincount(tr.tensor([0.5, 1.0, 2.0, 1.0])),
            torch.tensor(a[0]).bincount(torch.tensor([0.5, 1, 2, 1.0])),
        ),
        (x.logical_and(x > 1), t.logical_and(t > 1)),
        (x.logical_or(0), t.logical_or(torch.tensor(0))),
        (x.logical_xor(x), t.logical_xor(t)),
        (x.bitwise_and(3), t.bitwise_and(3)),
        (x ^ 1, t ^ 1),
        (x.bitwise_not(), t.bitwise_not()),
        (tr.isnan(tr.tensor([np.nan, 1.0])), torch.isnan(torch.tensor([np.nan, 1.0]))),
        (tr.isinf(tr.tensor([np.inf, 1.0])), torch.isinf(torch.tensor([np.inf, 1.0]))),
        (tr.isfinite(tr.tensor([np.inf, 1.0])), torch.isfinite(torch.tensor([np.inf, 1.0]))),
        (
            tr.tensor([np.nan, np.inf, -np.inf, 1.0]).nan_to_num(),
            torch.tensor([np.nan, np.inf, -np.inf, 1.0]).nan_to_num(),
        ),
        (x.trunc() if False else tr.tensor([-1.5, 2.7]).trunc(), torch.tensor([-1.5, 2.7]).trunc()),
        (x.new_zeros(2, 3), t.new_zeros(2, 3)),
        (x.new_full((2,), 7), t.new_full((2,), 7)),
        (x.new_ones((1, 2)), t.new_ones((1, 2))),
        (x.new_tensor([1, 2]), t.new_tensor([1, 2])),
        (x.type_as(tr.zeros(1)), t.type_as(torch.zeros(1))),
        (tr.median(tr.tensor([1.0, np.nan, 3.0])), torch.median(torch.tensor([1.0, np.nan, 3.0]))),
        (
            tr.tensor([[1.0, np.nan], [3.0, 1.0]]).median(1).values,
            torch.tensor([[1.0, np.nan], [3.0, 1.0]]).median(1).values,
        ),
        (
            tr.tensor([[1.0, np.nan], [3.0, 1.0]]).median(1).indices,
            torch.tensor([[1.0, np.nan], [3.0, 1.0]]).median(1).indices,
        ),
    ]:
        same(got, want)
    u, inv, cnt = x.unique(return_inverse=True, return_counts=True)
    tu, tinv, tcnt = t.unique(return_inverse=True, return_counts=True)
    same(u, tu), same(inv, tinv), same(cnt, tcnt)
    assert x.stride() == t.stride() and x.element_size() == t.element_size() and x.nelement() == t.nelement()
    assert x.is_contiguous() and not x.is_floating_point() and tr.zeros(1).is_floating_point()
    assert (
        tr.finfo(tr.float32).eps == torch.finfo(torch.float32).eps
        and tr.iinfo(tr.int32).max == torch.iinfo(torch.int32).max
    )
    assert tr.get_default_dtype() == tr.float32 and tr.promote_types(tr.int32, tr.float16) == tr.float16
    assert tr.broadcast_shapes((2, 1), (3,)) == tuple(torch.broadcast_shapes((2, 1), (3,)))


def test_in_place_methods_outside_the_graph():
    x = tr.tensor([1.0, -2.0, 3.0])
    v = x._version
    assert x.add_(1).tolist() == [2.0, -1.0, 4.0] and x._version == v + 1
    x.mul_(2).sub_(1, alpha=2).div_(2)
    assert x.tolist() == [1.0, -2.0, 3.0]
    assert x.clamp_(-1, 2).tolist() == [1.0, -1.0, 2.0]
    assert x.abs_().neg_().tolist() == [-1.0, -1.0, -2.0]
    assert x.zero_().tolist() == [0, 0, 0] and x.fill_(2.5).tolist() == [2.5] * 3
    assert x.copy_(tr.tensor([1, 2, 3])).tolist() == [1.0, 2.0, 3.0] and x.dtype == tr.float32
    assert x.pow_(2).sqrt_().tolist() == [1.0, 2.0, 3.0]
    assert tr.tensor([-1.0, 1.0]).relu_().tolist() == [0.0, 1.0]
    w = tr.zeros(3, requires_grad=True)
    with tr.no_grad():
        w.add_(1.0)  # an update of a leaf under no_grad, as optimizers and init code do
    assert w.tolist() == [1.0, 1.0, 1.0] and w.requires_grad
    with pytest.raises(RuntimeError, match="in-place"):
        w.add_(1.0)
    y = w * 2
    with pytest.raises(RuntimeError, match="in-place"):
        y.relu_()


def test_grad_mode_helpers():
    x = tr.ones(2, requires_grad=True)
    with tr.set_grad_enabled(False):
        assert not (x * 2).requires_grad
    assert (x * 2).requires_grad
    with tr.inference_mode():
        assert not (x * 2).requires_grad

    @tr.inference_mode()
    def f(a):
        return a * 2

    assert not f(x).requires_grad
    assert tr.as_tensor(x) is x and tr.as_tensor([1, 2]).dtype == tr.int64


THIRD = {
    "clamp_tensor_bounds": (lambda m: lambda x, lo, hi: m.clamp(x, lo, hi), [(2, 3), (3,), (2, 1)], {}),
    "clamp_tensor_min": (lambda m: lambda x, lo: x.clamp(min=lo), [(2, 3), (2, 3)], {}),
    "nansum_nanmean": (lambda m: lambda x: m.nansum(x, 1) + m.nanmean(x, 1), [(2, 3)], {}),
    "aminmax": (lambda m: lambda x: tuple(m.aminmax(x, dim=1)), [(2, 3)], {}),
    "addcmul_addcdiv": (
        lambda m: lambda a, b, c: m.addcmul(a, b, c, value=0.5) + m.addcdiv(a, b, c + 3, value=2),
        [(2, 3), (2, 3), (3,)],
        {"positive": True},
    ),
    "baddbmm_addmv": (
        lambda m: (
            lambda c, a, b, v: m.baddbmm(c, a, b, beta=0.5, alpha=2).sum() + m.addmv(v, a[0], b[0, :, 0])
        ),
        [(2, 2, 4), (2, 2, 3), (2, 3, 4), (2,)],
        {},
    ),
    "kron": (lambda m: lambda a, b: m.kron(a, b), [(2, 3), (2, 2)], {}),
    "kron_1d_2d": (lambda m: lambda a, b: m.kron(a, b), [(3,), (2, 2)], {}),
    "tensordot": (
        lambda m: (
            lambda a, b: m.tensordot(a, b, 1).sum(1) + m.tensordot(a, b.transpose(0, 1), ([1], [1])).sum(1)
        ),
        [(2, 3), (3, 4)],
        {},
    ),
    "tensordot2": (lambda m: lambda a, b: m.tensordot(a, b, dims=2), [(2, 3, 4), (3, 4, 2)], {}),
    "take": (lambda m: lambda x: m.take(x, m.tensor([[0, 5], [2, 2]])), [(2, 3)], {}),
    "tensor_split": (
        lambda m: lambda x: m.tensor_split(x, 3, dim=1) + m.tensor_split(x, [1, 4], dim=1),
        [(2, 5)],
        {},
    ),
}


@pytest.mark.parametrize("name", sorted(THIRD))
def test_third_tier_ops(name):
    fn, shapes, kw = THIRD[name]
    check_op(*both(fn), shapes, **kw)


@needs_torch
def test_third_tier_no_grad_ops():
    x = np.array([[-1.5, 0.0, 2.0], [np.nan, np.inf, -np.inf]])
    b = np.array([1.0, 2.0, 4.0, 8.0])
    v = np.array([[0.5, 2.0, 9.0], [4.0, 1.0, 8.0]])
    for got, want in [
        (
            tr.tensor(x).heaviside(tr.tensor(0.5, dtype=tr.float64)),
            torch.tensor(x).heaviside(torch.tensor(0.5, dtype=torch.float64)),
        ),
        (
            tr.isin(tr.tensor([1, 2, 3]), tr.tensor([2, 5])),
            torch.isin(torch.tensor([1, 2, 3]), torch.tensor([2, 5])),
        ),
        (tr.isposinf(tr.tensor(x)), torch.isposinf(torch.tensor(x))),
        (tr.isneginf(tr.tensor(x)), torch.isneginf(torch.tensor(x))),
        (tr.searchsorted(tr.tensor(b), tr.tensor(v)), torch.searchsorted(torch.tensor(b), torch.tensor(v))),
        (
            tr.searchsorted(tr.tensor(b), tr.tensor(v), right=True),
            torch.searchsorted(torch.tensor(b), torch.tensor(v), right=True),
        ),
        (
            tr.searchsorted(tr.tensor(np.stack([b, b * 2])), tr.tensor(v)),
            torch.searchsorted(torch.tensor(np.stack([b, b * 2])), torch.tensor(v)),
        ),
        (tr.bucketize(tr.tensor(v), tr.tensor(b)), torch.bucketize(torch.tensor(v), torch.tensor(b))),
        (
            tr.bucketize(tr.tensor(v), tr.tensor(b), right=True),
            torch.bucketize(torch.tensor(v), torch.tensor(b), right=True),
        ),
        (tr.tensor([0.5, 1.5, 2.5, -0.5]).round(), torch.tensor([0.5, 1.5, 2.5, -0.5]).round()),
        (tr.tensor([1.2345, -2.5551]).round(decimals=2), torch.tensor([1.2345, -2.5551]).round(decimals=2)),
        (tr.nansum(tr.tensor(x[:1])), torch.nansum(torch.tensor(x[:1]))),
    ]:
        same(got, want)


def test_random_creation_and_fills():
    tr.manual_seed(0)
    a = tr.normal(0.0, 2.0, size=(2000,))
    assert a.dtype == tr.float32 and abs(a.mean().item()) < 0.2 and abs(a.std().item() - 2.0) < 0.2
    m = tr.normal(tr.tensor([0.0, 100.0]), 1e-6)
    assert m.shape == (2,) and abs(m[1].item() - 100.0) < 1e-3
    b = tr.bernoulli(tr.full((2000,), 0.25))
    assert set(b.unique().tolist()) <= {0.0, 1.0} and abs(b.mean().item() - 0.25) < 0.05
    s = tr.multinomial(tr.tensor([[0.0, 1.0, 3.0], [1.0, 0.0, 0.0]]), 2, replacement=True)
    assert s.shape == (2, 2) and s.dtype == tr.int64 and (s[1] == 0).all() and (s[0] > 0).all()
    assert sorted(tr.multinomial(tr.tensor([1.0, 1.0, 1.0]), 3).tolist()) == [0, 1, 2]
    with pytest.raises(ValueError, match="without replacement"):
        tr.multinomial(tr.tensor([1.0, 0.0]), 2)
    r = tr.randint_like(tr.zeros(3, 4, dtype=tr.int32), 5)
    assert r.shape == (3, 4) and r.dtype == tr.int32 and 0 <= r.min().item() and r.max().item() < 5
    x = tr.empty(1000)
    assert x.uniform_(-1, 1) is x and -1 <= x.min().item() and x.max().item() < 1
    assert abs(x.normal_(5.0, 0.1).mean().item() - 5.0) < 0.05
    assert set(x.bernoulli_(0.5).unique().tolist()) == {0.0, 1.0}
    assert x.random_(3).max().item() == 2
    w = tr.zeros(4, requires_grad=True)
    with tr.no_grad():
        w.normal_()
    assert w.requires_grad and w.abs().sum().item() > 0
    tr.manual_seed(1)
    u1 = tr.empty(3).uniform_().tolist()
    tr.manual_seed(1)
    assert tr.empty(3).uniform_().tolist() == u1  # seeded


@needs_torch
def test_logspace_like_pytorch():
    same(tr.logspace(0, 2, 5), torch.logspace(0, 2, 5))
    same(
        tr.logspace(-1, 1, 3, base=2.0, dtype=tr.float64),
        torch.logspace(-1, 1, 3, base=2.0, dtype=torch.float64),
    )
    same(tr.logspace(0, 2, 3, dtype=tr.int64), torch.logspace(0, 2, 3, dtype=torch.int64))


FOURTH = {
    "logcumsumexp": (lambda m: lambda x: m.logcumsumexp(x, 1), [(2, 4)], {}),
    "logcumsumexp_large": (lambda m: lambda x: (x * 300).logcumsumexp(0), [(5,)], {"gc_rtol": 1e-2}),
    "quantile_scalar": (lambda m: lambda x: m.quantile(x, 0.3), [(3, 4)], {}),
    "quantile_dim": (lambda m: lambda x: m.quantile(x, 0.75, dim=1, keepdim=True), [(3, 4)], {}),
    "quantile_vector": (
        lambda m: lambda x: m.quantile(x, m.tensor([0.1, 0.5, 1.0], dtype=x.dtype), dim=0),
        [(4, 3)],
        {},
    ),
    "quantile_vector_all": (
        lambda m: lambda x: m.quantile(x, m.tensor([0.2, 0.9], dtype=x.dtype), keepdim=True),
        [(2, 3)],
        {},
    ),
    "block_diag": (lambda m: lambda a, b, c: m.block_diag(a, b, c), [(2, 3), (1, 1), (3,)], {}),
    "cartesian_prod": (lambda m: lambda a, b: m.cartesian_prod(a, b), [(2,), (3,)], {}),
}


@pytest.mark.parametrize("name", sorted(FOURTH))
def test_fourth_tier_ops(name):
    fn, shapes, kw = FOURTH[name]
    check_op(*both(fn), shapes, **kw)


@needs_torch
@pytest.mark.parametrize("interpolation", ["linear", "lower", "higher", "nearest", "midpoint"])
def test_quantile_interpolations_and_nan(interpolation):
    a = rng.standard_normal((3, 6))
    for q in (0.0, 0.25, 0.5, 0.9, 1.0):
        same(
            tr.tensor(a).quantile(q, dim=1, interpolation=interpolation),
            torch.tensor(a).quantile(q, dim=1, interpolation=interpolation),
        )
    a[1, 2] = np.nan
    same(tr.tensor(a).quantile(0.5, dim=1), torch.tensor(a).quantile(0.5, dim=1))


@needs_torch
def test_histc_shifts_logcumsumexp_edges():
    a = rng.standard_normal(50).astype(np.float32)
    same(tr.tensor(a).histc(bins=7), torch.tensor(a).histc(bins=7))
    same(tr.histc(tr.tensor(a), bins=4, min=-1, max=1), torch.histc(torch.tensor(a), bins=4, min=-1, max=1))
    i = np.array([1, 2, 8])
    same(tr.tensor(i) << 2, torch.tensor(i) << 2)
    same(tr.tensor(i) >> 1, torch.tensor(i) >> 1)
    e = np.array([-np.inf, 0.0, 1000.0, -np.inf])
    same(tr.tensor(e).logcumsumexp(0), torch.tensor(e).logcumsumexp(0))
    same(tr.tensor(3.0).logcumsumexp(0), torch.tensor(3.0).logcumsumexp(0))


def test_more_in_place_methods():
    x = tr.zeros(2, 3)
    x.masked_fill_(tr.tensor([[True, False, True], [False, False, False]]), 2.0).index_fill_(
        0, tr.tensor([1]), -1.0
    )
    assert x.tolist() == [[2, 0, 2], [-1, -1, -1]]
    x.index_add_(1, tr.tensor([0, 0]), tr.ones(2, 2)).index_copy_(0, tr.tensor([0]), tr.full((1, 3), 5.0))
    assert x.tolist() == [[5, 5, 5], [1, -1, -1]]
    assert x.clip_(0, 1).tolist() == [[1, 1, 1], [1, 0, 0]]
