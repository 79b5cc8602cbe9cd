"""Devices: ``"cpu"`` (NumPy arrays + Numba kernels) and ``"cuda"`` (CuPy arrays + Numba CUDA / CUDA C
kernels on an NVIDIA GPU, or NumPy arrays + the same Numba CUDA kernels under the CUDA simulator when
``NUMBA_ENABLE_CUDASIM=1``).

Op code is written once against an array module ``xp`` (``numpy`` or ``cupy``) where that suffices;
the ops that need hand-written kernels (matmul, erf, relu, convolution, pooling, batch norm,
softmax-cross-entropy, Adam) call the kernel module of the tensor's device (:func:`backend`), which
is loaded on first use. Which tier of kernels that is (``reference`` / ``cpu_plain`` / ``cpu``,
``cuda_plain`` / ``cuda``) is chosen by ``TGR_BACKEND`` or :func:`set_backend`.
"""

from __future__ import annotations

import importlib
import os
import sys
import types

import numpy as np

from . import cuda
from .cuda import is_simulator as simulator_enabled

DEVICES = ("cpu", "cuda")


class Device(str):
    """``tinygrad_rad.device("cuda:0")``, like ``torch.device``: ``.type`` ("cpu" / "cuda") and ``.index``
    (None or an int). It is a ``str`` ("cpu", "cuda" or "cuda:1"), so it compares equal to the
    device strings tensors report and every ``device=`` argument takes it.

        >>> d = tinygrad_rad.device("cpu")
        >>> d.type, d.index, d == "cpu", x.to(d).device == d
        ('cpu', None, True, True)
    """

    type: str
    index: int | None

    def __new__(cls, type, index: int | None = None):  # noqa: A002 (PyTorch's argument name)
        if isinstance(type, Device):
            if index is None:
                return type
            type = type.type  # noqa: A001
        if not isinstance(type, str):
            raise TypeError(f"device() expected a string like 'cpu' or 'cuda:0', got {type!r}")
        name, _, idx = type.strip().lower().partition(":")
        if name not in DEVICES:
            raise RuntimeError(
                f"Expected one of {', '.join(DEVICES)} device type at start of device string: {type}")
        if idx:
            if index is not None:
                raise RuntimeError(f"device(): type {type!r} already has an index; do not pass index={index}")
            if not idx.isdigit():
                raise RuntimeError(f"Invalid device string: '{type}'")
            index = int(idx)
        if index is not None:
            index = int(index)
            if index < 0:
                raise RuntimeError(f"Device index must not be negative, got {index}")
            if name == "cpu" and index != 0:
                raise RuntimeError(f"device(): the cpu has only index 0, got {index}")
        self = super().__new__(cls, name if index is None else f"{name}:{index}")
        self.type, self.index = name, index
        return self

    def __repr__(self) -> str:
        idx = "" if self.index is None else f", index={self.index}"
        return f"device(type='{self.type}'{idx})"

    def __eq__(self, other) -> bool:
        if isinstance(other, str):
            o = other if isinstance(other, Device) else _try_device(other)
            if o is None:
                return False
            # NOTE: "cuda" and "cuda:0" name the same device here (tensors report "cuda")
            return self.type == o.type and (self.index or 0) == (o.index or 0)
        return NotImplemented

    def __ne__(self, other) -> bool:
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    __hash__ = str.__hash__

    def __reduce__(self):
        return (Device, (self.type, self.index))


def _try_device(s: str):
    try:
        return Device(s)
    except (RuntimeError, TypeError):
        return None


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


# ------------------------------------------------------------------------------ backend selection
# the kernel tiers of each device, plainest first (kernels/README.md); the last one is the default
TIERS = {"cpu": ("reference", "cpu_plain", "cpu"), "cuda": ("cuda_plain", "cuda")}
_chosen: dict = {}  # device -> tier name; filled from TGR_BACKEND on first use, changed by set_backend
_BACKENDS: dict = {}  # device -> the imported kernel module (the hot path of every heavy op)


def _tier_device(name: str) -> str:
    for device, names in TIERS.items():
        if name in names:
            return device
    choices = ", ".join(n for names in TIERS.values() for n in names)
    raise ValueError(f"unknown backend {name!r}; choose one of: {choices} (or None for the defaults)")


def _read_env() -> None:
    if "_env" not in _chosen:
        _chosen["_env"] = True
        name = os.environ.get("TGR_BACKEND", "").strip()
        if name:
            try:
                _chosen[_tier_device(name)] = name
            except ValueError as e:
                raise ValueError(f"TGR_BACKEND: {e}") from None


def set_backend(name: str | None) -> None:
    """Choose the kernel tier of a device: ``"reference"`` (plain NumPy), ``"cpu_plain"`` or ``"cpu"``
    (the default) for ``device="cpu"``; ``"cuda_plain"`` or ``"cuda"`` (the default) for ``"cuda"``.

    ``None`` restores the defaults of both devices. The ``TGR_BACKEND`` environment variable does the same
    as a first call (read once, on the first op that needs a kernel).

        >>> tinygrad_rad.set_backend("reference")   # train on the NumPy ground truth (slowly)
        >>> tinygrad_rad.get_backend()
        'reference'
    """
    _read_env()
    if name is None:
        for device in TIERS:
            _chosen.pop(device, None)
    else:
        device = _tier_device(name)
        _load(name, device)  # fail here, not in the middle of a training step
        _chosen[device] = name
    _BACKENDS.clear()


def get_backend(device: str = "cpu") -> str:
    """The name of the kernel tier that ops on ``device`` use (see :func:`set_backend`)."""
    _read_env()
    device = getattr(device, "type", device).split(":")[0]
    if device not in TIERS:
        raise ValueError(f"unknown device {device!r}; expected one of {DEVICES}")
    return _chosen.get(device, TIERS[device][-1])


def backend(device: str):
    """Kernel module for ``device``: ``tinygrad_rad.kernels.<tier>`` (``cpu`` / ``cuda`` unless chosen).

    Every tier exposes the same functions (``matmul``, ``conv2d_forward``, ``adam_step``, ...; see
    ``kernels/reference.py``, the NumPy ground truth).
    """
    mod = _BACKENDS.get(device)
    if mod is None:
        mod = _BACKENDS[device] = _load(get_backend(device), device)
    return mod


def _load(name: str, device: str):
    module = f"tinygrad_rad.kernels.{name}"
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name != module:
            raise
        raise ModuleNotFoundError(f"backend {name!r} (device {device!r}): kernels/{name}.py is missing",
                                  name=module) from e


# NOTE: ``tinygrad_rad.device`` is this module *and* callable like ``torch.device``: ``tr.device("cpu")``
# gives a :class:`Device`, ``isinstance(d, tr.device)`` works, ``tr.device.backend(...)`` stays reachable.
class _CallableModule(types.ModuleType):
    def __call__(self, type, index: int | None = None) -> Device:  # noqa: A002
        return Device(type, index)

    def __instancecheck__(self, obj) -> bool:
        return isinstance(obj, Device)


sys.modules[__name__].__class__ = _CallableModule
