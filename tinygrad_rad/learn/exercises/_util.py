"""Helpers shared by the exercise tests."""

from __future__ import annotations

import numpy as np


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def close(a, b, what: str, rtol: float = 1e-6, atol: float = 1e-8) -> None:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise AssertionError(f"{what}: shape {a.shape}, expected {b.shape}")
    if not np.allclose(a, b, rtol=rtol, atol=atol, equal_nan=True):
        err = np.abs(a.astype(np.float64) - b.astype(np.float64)).max()
        raise AssertionError(f"{what}: max abs error {err:.3e}")


def gradcheck_fn(fn, *arrays) -> None:
    """tinygrad_rad.gradcheck of ``fn`` on float64 tensors made from ``arrays``."""
    import tinygrad_rad as tr

    ts = [tr.tensor(a, dtype=tr.float64, requires_grad=True) for a in arrays]
    tr.gradcheck(fn, ts)


def is_function_class(obj, name: str) -> None:
    from tinygrad_rad.autograd import Function

    if not (isinstance(obj, type) and issubclass(obj, Function)):
        raise AssertionError(f"{name} must be a subclass of tinygrad_rad.autograd.Function")
