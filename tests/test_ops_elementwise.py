"""Elementwise ops, activations and matmul: forward + gradient vs PyTorch, and float64 gradcheck."""

from __future__ import annotations

import numpy as np
import pytest
from oracle import HAS_TORCH, backend_ready, check_op

import tinygrad_rad as tr
import tinygrad_rad.nn.functional as F

if HAS_TORCH:
    import torch
    import torch.nn.functional as TF

BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "maximum": lambda a, b: a.maximum(b),
    "minimum": lambda a, b: a.minimum(b),
}


@pytest.mark.parametrize("name", list(BINARY))
@pytest.mark.parametrize("shapes", [((2, 3), (2, 3)), ((2, 3), (3,)), ((4, 1, 3), (2, 1)), ((), (2, 2))])
def test_binary_broadcasting(name, shapes):
    fn = BINARY[name]
    if name == "div":  # keep the divisor away from 0
        check_op(lambda a, b: a / (b * b + 0.5), None, shapes)
    else:
        check_op(fn, None, shapes)


@pytest.mark.parametrize("name", list(BINARY))
def test_binary_float32(name):
    check_op(BINARY[name], None, [(3, 4), (4,)], dtype="float32", positive=name == "div")


def test_pow_tensor_and_scalar():
    check_op(lambda a, b: a**b, None, [(2, 3), (2, 3)], positive=True)
    check_op(lambda a: a**3, None, [(2, 3)])
    check_op(lambda a: a**0.5, None, [(2, 3)], positive=True)
    check_op(lambda a: a**-1.5, None, [(2, 3)], positive=True)
    check_op(lambda a: 2.0**a, None, [(2, 3)])
    check_op(lambda a: a**2, None, [(5,)], dtype="float32")


def test_scalar_operands_and_reflected_ops():
    check_op(lambda a: 3.0 - a * 2 + 1 / (a * a + 1) - a / 4, None, [(3, 2)])
    check_op(lambda a: (2 + a) * (1 - a), None, [(4,)], dtype="float32")


UNARY = {
    "neg": (lambda x: -x, False),
    "exp": (lambda x: x.exp(), False),
    "log": (lambda x: x.log(), True),
    "sqrt": (lambda x: x.sqrt(), True),
    "abs": (lambda x: x.abs(), False),
    "relu": (lambda x: x.relu(), False),
    "sigmoid": (lambda x: x.sigmoid(), False),
    "tanh": (lambda x: x.tanh(), False),
    "sin": (lambda x: x.sin(), False),
    "cos": (lambda x: x.cos(), False),
    "log1p": (lambda x: x.log1p(), True),
    "expm1": (lambda x: x.expm1(), False),
}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", list(UNARY))
def test_unary(name, dtype):
    fn, positive = UNARY[name]
    check_op(fn, None, [(3, 4)], dtype=dtype, positive=positive)


def test_clamp():
    check_op(lambda x: x.clamp(-0.5, 0.7), None, [(4, 5)])
    check_op(lambda x: x.clamp(min=0.1), None, [(4, 5)])
    check_op(lambda x: x.clamp(max=0.1), None, [(4, 5)], dtype="float32")
    check_op(lambda x: tr.clamp(x, -1, 1), lambda x: torch.clamp(x, -1, 1), [(6,)])


def test_where():
    cond = np.array([[True, False, True], [False, False, True]])
    check_op(lambda c, a, b: tr.where(c, a, b), lambda c, a, b: torch.where(c, a, b), [cond, (2, 3), (3,)])
    check_op(lambda c, a: tr.where(c, a, 0.0), lambda c, a: torch.where(c, a, 0.0), [cond, (2, 3)])


def test_comparisons_have_no_grad():
    a = tr.tensor([1.0, 2.0, 3.0], requires_grad=True)
    b = tr.tensor([3.0, 2.0, 1.0])
    for got, want in [(a < b, [1, 0, 0]), (a <= b, [1, 1, 0]), (a > b, [0, 0, 1]), (a >= b, [0, 1, 1]),
                      (a == b, [0, 1, 0]), (a != b, [1, 0, 1]), (a > 1.5, [0, 1, 1])]:
        assert got.dtype == np.bool_
        assert not got.requires_grad
        np.testing.assert_array_equal(got.numpy(), np.array(want, dtype=bool))


ACTS = {
    "relu": (lambda x: F.relu(x), lambda x: TF.relu(x)),
    "leaky_relu": (lambda x: F.leaky_relu(x, 0.2), lambda x: TF.leaky_relu(x, 0.2)),
    "elu": (lambda x: F.elu(x, 0.7), lambda x: TF.elu(x, 0.7)),
    "sigmoid": (lambda x: F.sigmoid(x), lambda x: torch.sigmoid(x)),
    "tanh": (lambda x: F.tanh(x), lambda x: torch.tanh(x)),
    "gelu": (lambda x: F.gelu(x), lambda x: TF.gelu(x)),
    "gelu_tanh": (lambda x: F.gelu(x, approximate="tanh"), lambda x: TF.gelu(x, approximate="tanh")),
    "softplus": (lambda x: F.softplus(x), lambda x: TF.softplus(x)),
    "softplus_beta": (lambda x: F.softplus(x, beta=2.0, threshold=3.0),
                      lambda x: TF.softplus(x, beta=2.0, threshold=3.0)),
}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", list(ACTS))
def test_activation(name, dtype):
    fn, tfn = ACTS[name]
    # spread the inputs over [-4, 4] so every branch (and softplus' threshold) is hit
    check_op(fn, tfn, [(4, 6)], dtype=dtype, low=-4, high=4)


@pytest.mark.parametrize("name", list(ACTS))
def test_activation_large_inputs_are_stable(name):
    fn, tfn = ACTS[name]
    x = tr.tensor([-1000.0, -100.0, -30.0, 0.0, 30.0, 100.0, 1000.0], requires_grad=True)
    y = fn(x)
    y.sum().backward()
    assert np.all(np.isfinite(y.numpy())), y
    assert np.all(np.isfinite(x.grad.numpy())), x.grad
    if HAS_TORCH:
        tx = torch.tensor(x.numpy(), requires_grad=True)
        ty = tfn(tx)
        ty.sum().backward()
        np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_sigmoid_saturates_exactly():
    y = tr.tensor([-1000.0, 1000.0]).sigmoid().numpy()
    assert y[0] == 0.0 and y[1] == 1.0


MATMUL_SHAPES = [
    ((3,), (3,)),  # dot -> scalar
    ((3,), (3, 4)),  # vector @ matrix
    ((2, 3), (3,)),  # matrix @ vector
    ((2, 3), (3, 4)),
    ((5, 2, 3), (3, 4)),  # batched @ matrix
    ((2, 3), (5, 3, 4)),
    ((2, 1, 2, 3), (3, 3, 2)),  # broadcast batch dims
    ((3,), (2, 3, 4)),
]


@pytest.mark.parametrize("shapes", MATMUL_SHAPES)
def test_matmul(shapes):
    check_op(lambda a, b: a @ b, None, shapes)


def test_matmul_float32_and_functions():
    check_op(lambda a, b: tr.matmul(a, b), lambda a, b: torch.matmul(a, b), [(4, 8), (8, 5)], dtype="float32")
    check_op(lambda a, b: a.matmul(b), None, [(2, 4, 8), (2, 8, 5)], dtype="float32")


def test_linear():
    check_op(lambda x, w, b: F.linear(x, w, b), lambda x, w, b: TF.linear(x, w, b),
             [(4, 3), (5, 3), (5,)])
    check_op(lambda x, w: F.linear(x, w), lambda x, w: TF.linear(x, w),
             [(2, 4, 3), (5, 3)], dtype="float32")


@pytest.mark.parametrize("name", ["add", "mul", "maximum"])
def test_binary_on_device(device, name):
    if not backend_ready(device):
        pytest.skip(f"the {device} kernel backend is not importable yet")
    check_op(BINARY[name], None, [(2, 3), (3,)], device=device)


def test_matmul_on_device(device):
    if not backend_ready(device):
        pytest.skip(f"the {device} kernel backend is not importable yet")
    check_op(lambda a, b: a @ b, None, [(2, 3, 4), (4, 5)], dtype="float32", device=device)


def test_maximum_ties_split_gradient():
    a = tr.tensor([1.0, 2.0, 3.0], requires_grad=True)
    b = tr.tensor([1.0, 1.0, 4.0], requires_grad=True)
    a.maximum(b).sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), [0.5, 1.0, 0.0])
    np.testing.assert_allclose(b.grad.numpy(), [0.5, 0.0, 1.0])
    if HAS_TORCH:
        ta = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
        tb = torch.tensor([1.0, 1.0, 4.0], requires_grad=True)
        torch.maximum(ta, tb).sum().backward()
        np.testing.assert_allclose(a.grad.numpy(), ta.grad.numpy())
        np.testing.assert_allclose(b.grad.numpy(), tb.grad.numpy())


PROMOTION = [
    # (name, fn taking the module (tinygrad_rad or torch), expected dtype) - PyTorch's promotion rules
    ("int * float scalar", lambda m: m.tensor([1, 2]) * 0.5, "float32"),
    ("float scalar * int", lambda m: 0.5 * m.tensor([1, 2]), "float32"),
    ("int + float32", lambda m: m.tensor([1, 2]) + m.tensor([0.5, 1.0]), "float32"),
    ("int / int", lambda m: m.tensor([1, 2]) / m.tensor([2, 2]), "float32"),
    ("int / 2", lambda m: m.tensor([1, 2]) / 2, "float32"),
    ("2 / int", lambda m: 2 / m.tensor([1, 2]), "float32"),
    ("int ** 0.5", lambda m: m.tensor([1, 4]) ** 0.5, "float32"),
    ("int ** 2", lambda m: m.tensor([1, 4]) ** 2, "int64"),
    ("int - 1", lambda m: m.tensor([1, 4]) - 1, "int64"),
    ("int32 + int64", lambda m: m.tensor([1, 4], dtype=m.int32) + m.tensor([1, 4]), "int64"),
    ("float16 + float32", lambda m: m.ones(2, dtype=m.float16) + m.ones(2), "float32"),
    ("float16 + int", lambda m: m.ones(2, dtype=m.float16) + m.tensor([1, 2]), "float16"),
    ("float32 + float64", lambda m: m.ones(2) + m.ones(2, dtype=m.float64), "float64"),
    ("bool * 1.5", lambda m: (m.tensor([1, 2]) > 1) * 1.5, "float32"),
    ("maximum(int, float)", lambda m: m.maximum(m.tensor([1, 2]), m.tensor([1.5, 0.5])), "float32"),
    ("where(int, float)", lambda m: m.where(m.tensor([True, False]), m.tensor([1, 2]), m.tensor([1.5, 0.5])),
     "float32"),
    ("float32 * np.float64", lambda m: m.ones(2) * np.float64(2.0), "float32"),
]


@pytest.mark.parametrize("name,fn,want", PROMOTION, ids=[p[0] for p in PROMOTION])
def test_type_promotion_follows_pytorch(name, fn, want):
    out = fn(tr)
    assert str(out.dtype) == want
    if HAS_TORCH:
        t = fn(torch)
        assert str(t.dtype) == f"torch.{want}"
        np.testing.assert_allclose(out.numpy(), t.numpy())


def test_mixed_dtype_gradient_is_cast_back():
    a = tr.tensor([1.0, 2.0], requires_grad=True)  # float32
    b = tr.tensor(np.array([3.0, 4.0]), requires_grad=True)  # float64
    (a * b).sum().backward()
    assert a.grad.dtype == np.float32 and b.grad.dtype == np.float64
    np.testing.assert_allclose(a.grad.numpy(), [3.0, 4.0])


def test_pow_zero_has_zero_gradient_at_zero():
    x = tr.tensor([0.0, 2.0], requires_grad=True)
    (x**0).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 0.0])  # PyTorch gives 0, not nan


@pytest.mark.parametrize("op", ["floor", "ceil", "round"])
def test_rounding_has_no_grad(op):
    x = tr.tensor([-1.5, -0.4, 0.5, 1.2, 2.5], requires_grad=True)
    out = getattr(x, op)()
    assert not out.requires_grad
    np.testing.assert_array_equal(out.numpy(), getattr(np, op)(x.numpy()))
    if HAS_TORCH:
        np.testing.assert_array_equal(out.numpy(), getattr(torch.tensor(x.numpy()), op)().numpy())


# ------------------------------------------------------------------------- edge cases (issue 12)
@pytest.mark.parametrize("name", ["relu", "sigmoid", "tanh", "gelu", "leaky_relu", "exp", "abs"])
def test_unary_ops_keep_a_0d_shape(name):
    tfn = (lambda x: getattr(TF, name)(x)) if name in ("gelu", "leaky_relu") else None
    out = check_op(lambda x: getattr(x, name)(), tfn, [()])
    assert out.shape == ()


def test_relu_of_a_0d_reduction_chain():
    x = tr.tensor([1.0, -2.0, 3.0], requires_grad=True)
    y = x.relu().sum().relu()
    assert y.shape == ()
    y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [1.0, 0.0, 1.0])


POW_SPECIAL = [(0.0, -1.5), (0.0, -2.0), (0.0, 0.0), (0.0, 2.0), (-2.0, 0.5), (-2.0, 3.0), (-np.inf, 0.0),
               (2.0, 3.0), (np.inf, -1.0)]


def _pow_grads(a, b, kind):
    """Gradients of a ** b (both tensors / scalar exponent / scalar base) in tinygrad_rad."""
    x = tr.tensor(a, dtype=tr.float64, requires_grad=True)
    y = tr.tensor(b, dtype=tr.float64, requires_grad=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = {"tt": lambda: x**y, "ts": lambda: x**b, "st": lambda: a**y}[kind]()
        out.backward()
    return (None if x.grad is None else x.grad.item()), (None if y.grad is None else y.grad.item())


@pytest.mark.parametrize("kind", ["tt", "ts", "st"])
@pytest.mark.parametrize("a,b", POW_SPECIAL)
def test_pow_gradients_at_special_values_match_pytorch(a, b, kind):
    got = _pow_grads(a, b, kind)
    # PyTorch's rules written out: d/da = 0 where b == 0 else b a^(b-1); d/db = 0 where a == 0 and b >= 0
    # else a^b ln a
    with np.errstate(divide="ignore", invalid="ignore"):
        da = 0.0 if b == 0 else b * np.float64(a) ** (b - 1)
        db = 0.0 if (a == 0 and b >= 0) else np.float64(a) ** b * np.log(np.float64(a))
    want = {"tt": (da, db), "ts": (da, None), "st": (None, db)}[kind]
    np.testing.assert_equal(got, want)
    if HAS_TORCH:
        ta = torch.tensor(a, dtype=torch.float64, requires_grad=True)
        tb = torch.tensor(b, dtype=torch.float64, requires_grad=True)
        {"tt": lambda: ta**tb, "ts": lambda: ta**b, "st": lambda: a**tb}[kind]().backward()
        tw = tuple(None if t.grad is None else t.grad.item() for t in (ta, tb))
        np.testing.assert_equal(got, tw)
