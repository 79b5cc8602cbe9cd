"""Chapter 2 exercises: unbroadcast, a broadcasting Mul, a batched MatMul."""

from __future__ import annotations

import numpy as np

from . import Exercise
from ._util import close, gradcheck_fn, is_function_class, rng


def test_unbroadcast(unbroadcast) -> None:
    r = rng(0)
    g = r.standard_normal((2, 3, 4))
    if unbroadcast(g, (2, 3, 4)) is not g and not np.array_equal(unbroadcast(g, (2, 3, 4)), g):
        raise AssertionError("same shape: grad must come back unchanged")
    cases = {(4,): g.sum((0, 1)), (3, 1): g.sum(0).sum(1, keepdims=True),
             (1, 3, 1): g.sum((0, 2), keepdims=True), (2, 1, 4): g.sum(1, keepdims=True), (): g.sum(),
             (1,): g.sum().reshape(1)}
    for shape, want in cases.items():
        close(unbroadcast(g, shape), want, f"unbroadcast to {shape}")


def test_mul(Mul) -> None:
    import tinygrad_rad as tr

    is_function_class(Mul, "Mul")
    r = rng(1)
    for sa, sb in [((3, 4), (3, 4)), ((3, 1), (4,)), ((2, 1, 4), (3, 1)), ((), (2, 2))]:
        a, b = r.standard_normal(sa), r.standard_normal(sb)
        y = Mul.apply(tr.tensor(a, dtype=tr.float64), tr.tensor(b, dtype=tr.float64))
        close(y.numpy(), a * b, f"Mul forward {sa} * {sb}")
        gradcheck_fn(lambda x, z: Mul.apply(x, z), a, b)


def test_matmul(MatMul) -> None:
    import tinygrad_rad as tr

    is_function_class(MatMul, "MatMul")
    r = rng(2)
    for sa, sb in [((2, 3), (3, 4)), ((5, 2, 3), (3, 2)), ((2, 1, 2, 3), (4, 3, 2))]:
        a, b = r.standard_normal(sa), r.standard_normal(sb)
        y = MatMul.apply(tr.tensor(a, dtype=tr.float64), tr.tensor(b, dtype=tr.float64))
        close(y.numpy(), a @ b, f"MatMul forward {sa} @ {sb}")
        gradcheck_fn(lambda x, z: MatMul.apply(x, z), a, b)


EXERCISES = [
    Exercise("unbroadcast", "sum a gradient down to an input's shape (the backward of broadcasting)",
             test_unbroadcast, "tinygrad_rad.ops:unbroadcast"),
    Exercise("Mul", "broadcasting multiply as a Function: mul swaps, then unbroadcast", test_mul,
             "tinygrad_rad.ops:Mul"),
    Exercise("MatMul", "batched matmul as a Function: dA = G B^T, dB = A^T G", test_matmul,
             "tinygrad_rad.ops:MatMul"),
]
