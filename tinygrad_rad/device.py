"""Devices: ``"cpu"`` (NumPy arrays + Numba kernels) and ``"cuda"`` (CuPy arrays + Numba CUDA / CUDA C
kernels on an NVIDIA GPU, or NumPy arrays + the same Numba CUDA kernels under the CUDA simulator when
``NUMBA_ENABLE_CUDASIM=1``).

Op code is written once against an array module ``xp`` (``numpy`` or ``cupy``) where that suffices;
the ops that need hand-written kernels (matmul, convolution, pooling, batch norm) call the backend
module of the tensor's device (:func:`backend`), which is loaded on first use.
"""

from __future__ import annotations

import importlib

import numpy as np

from .cuda import is_simulator as simulator_enabled

DEVICES = ("cpu", "cuda")


def canonical_device(device) -> str:
    """Map ``"cpu"``, ``"cuda"``, ``"cuda:0"`` (or an object with ``.type``) to ``"cpu"`` / ``"cuda"``."""
    if device is None:
        return "cpu"
    name = getattr(device, "type", device)
    if not isinstance(name, str):
        raise TypeError(f"device must be a string like 'cpu' or 'cuda', got {device!r}")
    base = name.split(":")[0].lower()
    if base not in DEVICES:
        raise ValueError(f"unknown device {device!r}; expected one of {DEVICES}")
    if base == "cuda":
        from . import cuda

        cuda.require()
    return base


def xp_of(a):
    """The array module (numpy or cupy) that owns array ``a``."""
    mod = type(a).__module__
    if mod.startswith("cupy"):
        import cupy

        return cupy
    return np


def xp_for(device: str):
    """The array module that holds arrays of ``device``."""
    if device == "cuda" and not simulator_enabled():
        import cupy

        return cupy
    return np


def to_device(a, device: str):
    """Copy array ``a`` onto ``device`` (a no-op when it is already there)."""
    xp = xp_for(device)
    if xp is np:
        if type(a).__module__.startswith("cupy"):
            return a.get()
        return a
    return xp.asarray(a)


_BACKENDS: dict = {}


def backend(device: str):
    """Kernel module for ``device``: ``tinygrad_rad.kernels.cpu`` or ``tinygrad_rad.kernels.cuda``.

    Both expose the same functions (``matmul``, ``conv2d_forward``, ``max_pool2d_forward``, ...).
    """
    mod = _BACKENDS.get(device)
    if mod is None:
        mod = importlib.import_module(f"tinygrad_rad.kernels.{device}")
        _BACKENDS[device] = mod
    return mod
