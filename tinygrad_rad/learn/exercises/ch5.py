"""Chapter 5 exercises: CPU kernels (write them with Numba), checked against kernels/reference.py."""

from __future__ import annotations

import numpy as np

from . import Exercise
from ._util import close, rng


def test_matmul(matmul) -> None:
    r = rng(0)
    for sa, sb in [((7, 5), (5, 9)), ((1, 1), (1, 1)), ((3, 4, 6), (6, 2)), ((2, 1, 3, 4), (5, 4, 3))]:
        for dt in (np.float32, np.float64):
            a, b = r.standard_normal(sa).astype(dt), r.standard_normal(sb).astype(dt)
            got = np.asarray(matmul(a, b))
            tol = 1e-4 if dt == np.float32 else 1e-10
            close(got, a @ b, f"{sa} @ {sb} {dt.__name__}", rtol=tol, atol=tol)
            if got.dtype != dt:
                raise AssertionError(f"{sa} @ {sb}: dtype {got.dtype}, expected {np.dtype(dt)}")


def test_relu_backward(relu_backward) -> None:
    from tinygrad_rad.kernels import reference as ref

    r = rng(1)
    for shape in [(10,), (3, 4), (2, 3, 4, 5)]:
        for dt in (np.float32, np.float64):
            g = r.standard_normal(shape).astype(dt)
            out = ref.relu_forward(r.standard_normal(shape).astype(dt))
            close(relu_backward(g, out), ref.relu_backward(g, out), f"relu_backward {shape} {dt.__name__}")


def test_avg_pool(avg_pool2d_forward) -> None:
    from tinygrad_rad.kernels import reference as ref

    r = rng(2)
    for xs, k, s, p in [((2, 3, 6, 6), (2, 2), (2, 2), (0, 0)), ((1, 2, 7, 5), (3, 3), (2, 1), (1, 1)),
                        ((1, 1, 5, 8), (3, 2), (1, 2), (1, 1))]:
        x = r.standard_normal(xs).astype(np.float32)
        for cip in (True, False):
            close(avg_pool2d_forward(x, k, s, p, cip), ref.avg_pool2d_forward(x, k, s, p, cip),
                  f"kernel {k} stride {s} pad {p} count_include_pad={cip}", rtol=1e-5, atol=1e-6)


EXERCISES = [
    Exercise("matmul", "batched matmul with Numba (i, k, j loop order, prange over rows)", test_matmul,
             "tinygrad_rad.kernels.cpu_plain:matmul"),
    Exercise("relu_backward", "elementwise ReLU backward with Numba", test_relu_backward,
             "tinygrad_rad.kernels.cpu_plain:relu_backward"),
    Exercise("avg_pool2d_forward", "NCHW average pooling with Numba (count_include_pad both ways)",
             test_avg_pool, "tinygrad_rad.kernels.cpu_plain:avg_pool2d_forward"),
]
