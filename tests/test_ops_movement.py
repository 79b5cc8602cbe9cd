"""Movement ops: reshape/permute/expand/squeeze, indexing, cat/stack/split/chunk, pad (vs PyTorch)."""

from __future__ import annotations

import numpy as np
import pytest
from oracle import HAS_TORCH, check_op

import tinygrad_rad as tr
import tinygrad_rad.nn.functional as F

if HAS_TORCH:
    import torch
    import torch.nn.functional as TF


@pytest.mark.parametrize(
    "fn",
    [
        lambda x: x.reshape(4, 6),
        lambda x: x.reshape((-1, 3)),
        lambda x: x.reshape(2, -1, 2),
        lambda x: x.view(24),
        lambda x: x.permute(2, 0, 1),
        lambda x: x.permute(-1, 1, 0),
        lambda x: x.transpose(0, 2),
        lambda x: x.transpose(-1, -2),
        lambda x: x.flatten(),
        lambda x: x.flatten(1),
        lambda x: x.flatten(0, 1),
        lambda x: x.unsqueeze(0),
        lambda x: x.unsqueeze(-1),
        lambda x: x.unsqueeze(2),
        lambda x: x.reshape(6, 4).T,
    ],
)
def test_shape_ops(fn):
    check_op(fn, None, [(2, 3, 4)])


def test_expand_and_squeeze():
    check_op(lambda x: x.expand(2, 3, 4), None, [(3, 1)])
    check_op(lambda x: x.expand(-1, 5), None, [(3, 1)])
    check_op(lambda x: x.expand(2, 2, 3), None, [(3,)])
    check_op(lambda x: x.squeeze(), None, [(1, 3, 1, 2)])
    check_op(lambda x: x.squeeze(2), None, [(1, 3, 1, 2)])
    check_op(lambda x: x.squeeze(1), None, [(1, 3, 1, 2)])  # size 3: a no-op, as in PyTorch
    check_op(lambda x: x.squeeze(-2), None, [(1, 3, 1, 2)])


INDICES = [
    (1,),
    (-1,),
    (slice(1, 3),),
    (slice(None, None, 2),),
    (slice(None, None, -1),),
    (slice(3, 0, -2),),
    (slice(None), 1),
    (Ellipsis, 0),
    (None, slice(1, 3), None),
    (1, Ellipsis, slice(None, None, -1)),
    (slice(None), None, slice(0, 2), 2),
    (np.array([0, 2, 2, 1]),),  # repeated index: gradients must add up
    (slice(None), np.array([1, 1, 0])),
    (np.array([0, 3, 0]), np.array([1, 2, 1])),
    (2, slice(1, None, 2), np.array([[0, 0], [0, 2]])),  # int + array: PyTorch selects the int first
    (slice(None), 1, np.array([3, 0])),
    (np.array([1, 0]), 2, slice(None)),
    (Ellipsis, np.array([True, False, True]), 0),
]


def _torch_index(index):
    out = []
    for i in index:
        if isinstance(i, slice) and i.step is not None and i.step < 0:
            return None  # PyTorch refuses negative steps: compare with flip instead
        out.append(torch.from_numpy(i) if isinstance(i, np.ndarray) else i)
    return tuple(out)


@pytest.mark.parametrize("index", INDICES, ids=[repr(i) for i in range(len(INDICES))])
def test_getitem(index):
    x = np.random.default_rng(0).standard_normal((4, 3, 5))
    if HAS_TORCH and _torch_index(index) is not None:
        check_op(lambda t: t[index], lambda t: t[_torch_index(index)], [x])
    else:
        # no PyTorch, or negative steps (not in PyTorch): forward vs NumPy (with PyTorch's rule that
        # integers select first), gradient by gradcheck and, for basic indices, a hand scatter
        t = tr.tensor(x, dtype=tr.float64, requires_grad=True)
        out = t[index]
        np.testing.assert_array_equal(out.numpy(), _np_index(x, index))
        if not any(isinstance(i, np.ndarray) for i in index):
            r = np.random.default_rng(1).standard_normal(out.shape)
            (out * tr.tensor(r)).sum().backward()
            want = np.zeros_like(x)
            want[index] = r  # basic indices select each element at most once
            np.testing.assert_array_equal(t.grad.numpy(), want)
        tr.gradcheck(lambda t: t[index], [tr.tensor(x, dtype=tr.float64, requires_grad=True)])


def _np_index(x, index):
    """NumPy indexing, but integers select first (PyTorch's rule when they are mixed with arrays)."""
    if not (any(isinstance(i, int) for i in index) and any(isinstance(i, np.ndarray) for i in index)):
        return x[index]
    first = []
    for i in index:
        if isinstance(i, np.ndarray):
            first.extend([slice(None)] * (i.ndim if i.dtype == bool else 1))
        else:
            first.append(i)
    second = [i if isinstance(i, np.ndarray) or i is Ellipsis else slice(None)
              for i in index if not isinstance(i, int)]
    return x[tuple(first)][tuple(second)]


def test_getitem_repeated_index_accumulates():
    x = tr.tensor([1.0, 2.0, 3.0], requires_grad=True)
    x[np.array([0, 0, 2, 0])].sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 0.0, 1.0])
    x.grad = None
    x[tr.tensor([1, 1])].sum().backward()  # a Tensor of indices works too
    np.testing.assert_allclose(x.grad.numpy(), [0.0, 2.0, 0.0])


def test_getitem_boolean_mask():
    x = np.random.default_rng(2).standard_normal((3, 4))
    mask = x > 0.1
    check_op(lambda t: t[tr.tensor(mask)], lambda t: t[torch.from_numpy(mask)], [x])
    row_mask = np.array([True, False, True])
    check_op(lambda t: t[row_mask], lambda t: t[torch.from_numpy(row_mask)], [x])


def test_getitem_errors():
    x = tr.zeros(2, 3)
    with pytest.raises(IndexError, match=r"\(2, 3\)"):
        x[5]
    with pytest.raises(IndexError, match="integer or boolean"):
        x[tr.tensor([0.0, 1.0])]


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_cat_stack(dim):
    check_op(lambda a, b, c: tr.cat([a, b, c], dim), lambda a, b, c: torch.cat([a, b, c], dim),
             [(2, 3), (2, 3), (2, 3)])
    check_op(lambda a, b: tr.stack([a, b], dim), lambda a, b: torch.stack([a, b], dim), [(2, 3), (2, 3)])


def test_cat_uneven_sizes():
    check_op(lambda a, b: tr.cat([a, b], 1), lambda a, b: torch.cat([a, b], 1), [(2, 1, 3), (2, 4, 3)])


@pytest.mark.parametrize("arg", [2, 3, [1, 4], [2, 2, 1]])
@pytest.mark.parametrize("dim", [0, -1])
def test_split(arg, dim):
    check_op(lambda x: x.split(arg, dim), lambda x: x.split(arg, dim), [(5, 5)])
    check_op(lambda x: tr.split(x, arg, dim), lambda x: torch.split(x, arg, dim), [(5, 5)], gradcheck=False)


@pytest.mark.parametrize("chunks", [1, 2, 3, 5])
def test_chunk(chunks):
    check_op(lambda x: x.chunk(chunks, 1), lambda x: x.chunk(chunks, 1), [(2, 5)])
    check_op(lambda x: tr.chunk(x, chunks, 0), lambda x: torch.chunk(x, chunks, 0), [(6, 2)], gradcheck=False)


@pytest.mark.parametrize("pad", [(1, 1), (0, 2), (1, 0, 2, 1), (1, 2, 0, 1, 1, 0)])
def test_pad(pad):
    check_op(lambda x: F.pad(x, pad), lambda x: TF.pad(x, pad), [(2, 3, 4)])
    check_op(lambda x: F.pad(x, pad, value=1.5), lambda x: TF.pad(x, pad, value=1.5), [(2, 3, 4)],
             dtype="float32", gradcheck=False)


def test_reshape_errors_name_shapes():
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(4, 2\)"):
        tr.zeros(2, 3).reshape(4, 2)
    with pytest.raises(ValueError, match=r"cannot expand shape \(2, 3\)"):
        tr.zeros(2, 3).expand(4, 3)


def test_setitem_matches_pytorch():
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    ops = [
        (1, 5.0),
        ((slice(None), 0), np.array([1.0, 2.0, 3.0], dtype=np.float32)),
        ((slice(None, None, 2), slice(1, 3)), 0.5),
        (np.array([0, 2]), -2.0),
        ("mask", -1.0),
    ]
    t = tr.tensor(x)
    for idx, v in ops:
        idx = t > 0.8 if isinstance(idx, str) else idx
        t[idx] = tr.tensor(v) if isinstance(v, np.ndarray) else v
    want = x.copy()
    for idx, v in ops:
        idx = want > 0.8 if isinstance(idx, str) else idx
        want[idx] = v
    np.testing.assert_array_equal(t.numpy(), want)
    if HAS_TORCH:
        tt = torch.tensor(x)
        for idx, v in ops:
            if isinstance(idx, str):
                idx = tt > 0.8
            elif isinstance(idx, np.ndarray):
                idx = torch.from_numpy(idx)
            tt[idx] = torch.from_numpy(v) if isinstance(v, np.ndarray) else v
        np.testing.assert_array_equal(t.numpy(), tt.numpy())


def test_setitem_on_leaf_under_no_grad_and_on_expanded():
    w = tr.ones(3, requires_grad=True)
    with tr.no_grad():
        w[0] = 2.0
    np.testing.assert_array_equal(w.numpy(), [2.0, 1.0, 1.0])
    assert w.requires_grad
    e = tr.ones(3).expand(2, 3)  # a read-only broadcast view: setitem copies it first
    e[0, 0] = 7.0
    np.testing.assert_array_equal(e.numpy(), [[7, 1, 1], [1, 1, 1]])


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
@pytest.mark.parametrize("pad", [(1, 2), (2, 0, 1, 1), (0, 3, 2, 2)])
def test_pad_modes(mode, pad):
    shape = (1, 2, 4, 5) if len(pad) == 4 else (2, 3, 5)
    check_op(lambda x: F.pad(x, pad, mode=mode), lambda x: TF.pad(x, pad, mode=mode), [shape])


def test_pad_mode_errors():
    with pytest.raises(ValueError, match=r"reflect padding \(4, 0\) of dim 2 must be at most 3"):
        F.pad(tr.zeros(1, 1, 4), (4, 0), mode="reflect")
    with pytest.raises(NotImplementedError, match="'symmetric'"):
        F.pad(tr.zeros(1, 1, 4), (1, 1), mode="symmetric")


@pytest.mark.parametrize("dims", [(0,), (1, 2), (-1,), (0, 1, 2)])
def test_flip(dims):
    check_op(lambda x: x.flip(dims), None, [(2, 3, 4)])
    check_op(lambda x: x.flip(*dims), lambda x: x.flip(dims), [(2, 3, 4)], gradcheck=False)


DEVICE_MOVEMENT = {
    "getitem_basic": (lambda x: x[1:, None, ::2], [(3, 4, 5)]),
    "getitem_array": (lambda x: x[np.array([0, 0, 2]), 1], [(3, 4, 5)]),
    "getitem_mask": (lambda x: x[np.array([True, False, True])], [(3, 4)]),
    "permute_reshape": (lambda x: x.permute(2, 0, 1).reshape(5, -1), [(3, 4, 5)]),
    "expand": (lambda x: x.expand(2, 3, 4), [(3, 1)]),
    "cat_split": (lambda a, b: tr.cat([a, b], 1).split(2, 1) if isinstance(a, tr.Tensor)
                  else torch.cat([a, b], 1).split(2, 1), [(2, 3), (2, 2)]),
    "pad_reflect": (lambda x: F.pad(x, (1, 2), mode="reflect") if isinstance(x, tr.Tensor)
                    else TF.pad(x, (1, 2), mode="reflect"), [(1, 2, 5)]),
    "flip": (lambda x: x.flip(0, 2), [(2, 3, 4)]),
}


@pytest.mark.parametrize("name", list(DEVICE_MOVEMENT))
def test_movement_on_device(device, name):
    fn, shapes = DEVICE_MOVEMENT[name]
    check_op(fn, None, shapes, device=device, gradcheck=False)


# ------------------------------------------------------------------------- edge cases (issue 12)
@pytest.mark.parametrize("index", [(0, None, (2, 1, 0)), (0, None, [2, 1, 0]), (slice(None), (1, 0)),
                                   (1, (0, 2), None), ((1, 0),)])
def test_tuple_inside_an_index_is_an_index_array(index):
    out = check_op(lambda x: x[index], None, [(2, 5, 6)])
    if HAS_TORCH:
        assert out.shape == tuple(torch.zeros(2, 5, 6)[index].shape)
    assert tr.zeros(2, 5, 6)[0, None, (2, 1, 0)].shape == (1, 3, 6)


@pytest.mark.parametrize("dtype", ["int32", "int64"])
@pytest.mark.parametrize("start,end,steps", [(-2.5, 2.5, 5), (0, 10, 4), (-7, 7, 6), (3.9, -3.9, 7)])
def test_linspace_with_an_int_dtype_truncates_toward_zero(start, end, steps, dtype):
    got = tr.linspace(start, end, steps, dtype=getattr(tr, dtype))
    assert got.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(got.numpy(), np.trunc(np.linspace(start, end, steps)).astype(dtype))
    if HAS_TORCH:
        want = torch.linspace(start, end, steps, dtype=getattr(torch, dtype)).numpy()
        np.testing.assert_array_equal(got.numpy(), want)


def test_empty_is_uninitialised_memory_of_the_right_shape_and_dtype():
    t = tr.empty(3, 4, dtype=tr.float64, requires_grad=True)
    assert t.shape == (3, 4) and t.dtype == np.float64 and t.requires_grad
    assert tr.empty_like(t).shape == (3, 4)
