"""``Tensor``: an array plus what autodiff needs (``requires_grad``, ``grad``, the op that made it).

    >>> import tinygrad_rad as tr
    >>> x = tr.tensor([1.0, 2.0, 3.0], requires_grad=True)
    >>> y = (x * x).sum()
    >>> y.backward()
    >>> x.grad
    tensor([2., 4., 6.])

This is the core: the data, the autodiff fields, ``backward``, properties and conversion. The
PyTorch-style methods that build ops (``+``, ``relu``, ``sum``, ``reshape``, ...) are mixed in from
:mod:`tinygrad_rad.tensor_methods`; the creation functions (``zeros``, ``randn``, ...) live in
:mod:`tinygrad_rad.creation`; the ops themselves in :mod:`tinygrad_rad.ops`.
"""

from __future__ import annotations

import builtins
from typing import Any

import numpy as np

from .autograd import run_backward
from .device import canonical_device, to_device, xp_for
from .dtypes import DEFAULT_FLOAT, check_dtype, is_floating, to_dtype
from .tensor_methods import MaxMin, TensorMethods, cat, chunk, concatenate, split, stack, where

__all__ = ["Tensor", "MaxMin", "cat", "chunk", "concatenate", "split", "stack", "where"]


class Tensor(TensorMethods):
    """An n-dimensional array that can record the ops applied to it and run backward through them.

    ``Tensor(data, requires_grad=False, dtype=None, device="cpu")``. ``data`` may be a nested list,
    a scalar, a NumPy (or CuPy) array, or another Tensor. Python floats become float32 (the default
    dtype), Python ints int64; NumPy arrays keep their dtype (as ``torch.from_numpy`` does).
    """

    __slots__ = ("data", "grad", "requires_grad", "_ctx", "_device", "_retains_grad", "_hooks", "_post_hooks",
                 "_vc", "__weakref__")
    __array_priority__ = 1000  # so that ndarray + Tensor calls Tensor.__radd__

    def __init__(self, data: Any, requires_grad: bool = False, dtype=None, device=None):
        if isinstance(data, Tensor):
            arr = data.data
            device = data.device if device is None else device
        elif hasattr(data, "__cuda_array_interface__") and type(data).__module__.startswith("cupy"):
            arr = data
            device = "cuda" if device is None else device
        else:
            arr = array_from(data, dtype)
        dev = canonical_device(device)
        if dtype is not None:
            dt = to_dtype(dtype)
            if arr.dtype != dt:
                arr = arr.astype(dt)
        else:
            check_dtype(arr.dtype)
        arr = to_device(arr, dev)
        self.data = arr
        self._device = dev
        self.grad: Tensor | None = None
        self._ctx = None  # the Function that produced this tensor (None for a leaf)
        self._retains_grad = False
        self._hooks = None
        self._post_hooks = None
        self._vc = [0]  # version counter: bumped by in-place changes, shared with views (see _version)
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    @staticmethod
    def _wrap(arr, device: str = "cpu", requires_grad: bool = False) -> Tensor:
        """Wrap an array produced by an op (no copy, no checks). Always a plain Tensor (never a Parameter)."""
        t = Tensor.__new__(Tensor)
        t.data = arr
        t._device = device
        t.grad = None
        t._ctx = None
        t._retains_grad = False
        t._hooks = None
        t._post_hooks = None
        t._vc = [0]
        t.requires_grad = requires_grad
        return t

    # --------------------------------------------------------------------------- properties
    @property
    def shape(self) -> tuple:
        return tuple(self.data.shape)

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def device(self) -> str:
        return self._device

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def is_leaf(self) -> bool:
        return self._ctx is None

    @property
    def grad_fn(self):
        return self._ctx

    @property
    def _version(self) -> int:
        """How often the data was changed in place (``t[...] = v``, optimizer steps); PyTorch's name.

        Views (reshape, permute, expand, basic indexing, detach) share their base's counter, and
        backward refuses arrays whose version moved since the forward pass."""
        return self._vc[0]

    def _bump_version(self) -> None:
        """Call after changing ``data`` in place (optimizers do)."""
        self._vc[0] += 1

    def dim(self) -> int:
        return self.data.ndim

    def size(self, dim: int | None = None):
        if dim is None:
            return self.shape
        return self.shape[dim]

    def numel(self) -> int:
        return int(self.data.size)

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    # ----------------------------------------------------------------------------- autodiff
    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        if requires_grad and not is_floating(self.dtype):
            raise TypeError(
                f"only floating-point tensors can require gradients, got dtype {self.dtype}"
            )
        self.requires_grad = bool(requires_grad)
        return self

    def backward(self, gradient: Tensor | None = None, retain_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into every leaf's ``.grad`` (``+=``; reset with ``zero_grad``).

        The graph's saved arrays are freed on the way unless ``retain_graph=True``."""
        if not self.requires_grad:
            raise RuntimeError(
                "backward() on a tensor that does not require grad and has no grad_fn: no input of "
                "the computation had requires_grad=True (or it ran under no_grad())"
            )
        if gradient is None:
            if self.data.size != 1:
                raise RuntimeError(
                    f"grad can be implicitly created only for scalar outputs; this tensor has shape "
                    f"{self.shape}. Pass gradient= with that shape, or reduce it first (e.g. .sum())"
                )
            g = xp_for(self.device).ones(self.data.shape, dtype=self.dtype)
        else:
            gt = gradient if isinstance(gradient, Tensor) else Tensor(gradient, dtype=self.dtype)
            if gt.shape != self.shape:
                raise ValueError(f"backward: gradient has shape {gt.shape}, expected {self.shape}")
            g = to_device(gt.data.astype(self.dtype, copy=False), self.device)
        run_backward(self, g, retain_graph=retain_graph)

    def zero_grad(self) -> None:
        self.grad = None

    def register_hook(self, hook):
        """Call ``hook(grad)`` when this tensor's gradient is computed; a returned Tensor replaces it.

            >>> h = x.register_hook(lambda g: g * 0.5)   # halve the gradient flowing through x
            >>> h.remove()
        """
        if not self.requires_grad:
            raise RuntimeError("register_hook() on a tensor that does not require grad")
        if self._hooks is None:
            self._hooks = []
        self._hooks.append(hook)
        return _HookHandle(self._hooks, hook)

    def register_post_accumulate_grad_hook(self, hook):
        """Call ``hook(tensor)`` on this leaf right after backward has accumulated its ``.grad``.

        As in PyTorch: only for leaves, the hook's return value must be None (it may read or change
        ``tensor.grad`` in place, e.g. start an all-reduce of it).

            >>> h = w.register_post_accumulate_grad_hook(lambda p: print(p.grad.shape))
        """
        if not self.requires_grad:
            raise RuntimeError("register_post_accumulate_grad_hook() on a tensor that does not require grad")
        if self._ctx is not None:
            raise RuntimeError("post accumulate grad hooks cannot be registered on non-leaf tensors")
        if self._post_hooks is None:
            self._post_hooks = []
        self._post_hooks.append(hook)
        return _HookHandle(self._post_hooks, hook)

    def retain_grad(self) -> None:
        """Keep ``.grad`` on this non-leaf tensor after backward (used by Grad-CAM)."""
        if not self.requires_grad:
            raise RuntimeError("retain_grad() on a tensor that does not require grad")
        self._retains_grad = True

    # ---------------------------------------------------------------------------- conversion
    def numpy(self) -> np.ndarray:
        """The data as a NumPy array (copied to the host for ``cuda`` tensors)."""
        return to_device(self.data, "cpu")

    def tolist(self):
        return self.numpy().tolist()

    def item(self):
        if self.data.size != 1:
            raise ValueError(f"item() needs a tensor with one element, got shape {self.shape}")
        return self.numpy().reshape(()).item()

    def detach(self) -> Tensor:
        """Same data, cut from the graph (and sharing the version counter: it is the same memory)."""
        t = Tensor._wrap(self.data, device=self.device)
        t._vc = self._vc
        return t

    def __repr__(self) -> str:
        body = np.array2string(self.numpy(), separator=", ", precision=4, prefix="tensor(")
        extra = []
        if self.dtype != DEFAULT_FLOAT and not (self.dtype == np.int64 and "." not in body):
            extra.append(f"dtype={self.dtype}")
        if self.device != "cpu":
            extra.append(f"device='{self.device}'")
        if self._ctx is not None:
            extra.append(f"grad_fn=<{self._ctx.name}>")
        elif self.requires_grad:
            extra.append("requires_grad=True")
        return "tensor(" + body + "".join(", " + e for e in extra) + ")"

    def __bool__(self) -> bool:
        if self.data.size != 1:
            raise RuntimeError(f"the truth value of a tensor with shape {self.shape} is ambiguous")
        return builtins.bool(self.item())

    def __float__(self) -> float:
        return builtins.float(self.item())

    def __int__(self) -> int:
        return builtins.int(self.item())

    def __index__(self) -> int:
        if is_floating(self.dtype):
            raise TypeError("only integer tensors can be used as an index")
        return builtins.int(self.item())

    def __array__(self, dtype=None, copy=None):
        a = self.numpy()
        return a.astype(dtype) if dtype is not None else a

    def __hash__(self) -> int:
        return id(self)


class _HookHandle:
    """Returned by ``register_hook``; ``remove()`` unregisters the hook."""

    def __init__(self, hooks: list, hook) -> None:
        self.hooks, self.hook = hooks, hook

    def remove(self) -> None:
        if self.hook in self.hooks:
            self.hooks.remove(self.hook)


def array_from(data, dtype) -> np.ndarray:
    """Nested lists / scalars / arrays as a NumPy array; Python floats become float32 (as in PyTorch)."""
    if isinstance(data, np.ndarray):
        return data
    if isinstance(data, (list, tuple)) and any(isinstance(x, Tensor) for x in data):
        data = [x.numpy() if isinstance(x, Tensor) else x for x in data]
    try:
        arr = np.asarray(data)
    except (ValueError, TypeError) as e:
        raise TypeError(f"cannot make a tensor from {type(data).__name__}: {e}") from e
    if dtype is None and arr.dtype == np.float64 and not isinstance(data, np.generic):
        arr = arr.astype(DEFAULT_FLOAT)  # Python floats -> float32, as in PyTorch
    return arr
