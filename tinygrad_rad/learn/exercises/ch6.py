"""Chapter 6 exercises: Numba CUDA kernels, run under the CUDA simulator when there is no GPU.

The checker sets ``NUMBA_ENABLE_CUDASIM=1`` before this module (or the learner's file) imports
``numba.cuda``. Inputs are NumPy arrays under the simulator and CuPy arrays on a GPU.
"""

from __future__ import annotations

import os

import numpy as np

from . import Exercise
from ._util import close, rng


def _xp():
    if os.environ.get("NUMBA_ENABLE_CUDASIM", "0") == "1":
        return np
    import cupy

    return cupy


def _host(a):
    return np.asarray(a.get() if hasattr(a, "get") else a)


def test_matmul(matmul) -> None:
    xp, r = _xp(), rng(0)
    for n, k, m in [(5, 7, 3), (17, 9, 20), (1, 1, 1)]:
        a = r.standard_normal((n, k)).astype(np.float32)
        b = r.standard_normal((k, m)).astype(np.float32)
        got = _host(matmul(xp.asarray(a), xp.asarray(b)))
        close(got, a @ b, f"({n}, {k}) @ ({k}, {m})", rtol=1e-4, atol=1e-4)


def test_relu_backward(relu_backward) -> None:
    from tinygrad_rad.kernels import reference as ref

    xp, r = _xp(), rng(1)
    for shape in [(7,), (3, 50), (2, 3, 4, 5)]:
        g = r.standard_normal(shape).astype(np.float32)
        out = ref.relu_forward(r.standard_normal(shape).astype(np.float32))
        got = _host(relu_backward(xp.asarray(g), xp.asarray(out)))
        close(got, ref.relu_backward(g, out), f"shape {shape}")


def test_conv2d_forward(conv2d_forward) -> None:
    from tinygrad_rad.kernels import reference as ref

    xp, r = _xp(), rng(2)
    for xs, ws, s, p, d, g in [((1, 2, 5, 5), (3, 2, 3, 3), (1, 1), (1, 1), (1, 1), 1),
                               ((2, 2, 6, 5), (2, 2, 3, 2), (2, 1), (0, 1), (1, 1), 1),
                               ((1, 4, 5, 5), (2, 2, 3, 3), (1, 1), (2, 2), (2, 2), 2)]:
        x, w = r.standard_normal(xs).astype(np.float32), r.standard_normal(ws).astype(np.float32)
        got = _host(conv2d_forward(xp.asarray(x), xp.asarray(w), s, p, d, g))
        close(got, ref.conv2d_forward(x, w, s, p, d, g), f"x {xs} w {ws} s {s} p {p} d {d} groups {g}",
              rtol=1e-4, atol=1e-4)


EXERCISES = [
    Exercise("matmul", "a CUDA GEMM kernel (one thread per output, or tiled)", test_matmul,
             "tinygrad_rad.kernels.cuda_plain:matmul"),
    Exercise("relu_backward", "an elementwise CUDA kernel with a grid-stride loop", test_relu_backward,
             "tinygrad_rad.kernels.cuda_plain:relu_backward"),
    Exercise("conv2d_forward", "a CUDA conv kernel, one thread per output element", test_conv2d_forward,
             "tinygrad_rad.kernels.cuda_plain:conv2d_forward"),
]
