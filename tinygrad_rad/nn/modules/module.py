"""``Parameter`` and ``Module``: a container of parameters, buffers and sub-modules, with
``state_dict`` / ``load_state_dict``, ``train`` / ``eval``, ``to(device, dtype)`` and ``apply``.

    >>> class Net(Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.w = Parameter(tinygrad_rad.zeros(3, 4))
    ...     def forward(self, x):
    ...         return x @ self.w
    >>> list(Net().state_dict())
    ['w']
"""

from __future__ import annotations

from collections import OrderedDict, namedtuple
from collections.abc import Iterator

import numpy as np

from ...device import canonical_device, to_device, xp_of
from ...dtypes import is_floating, to_dtype
from ...tensor import Tensor

__all__ = ["Parameter", "Module", "IncompatibleKeys", "new_parameter"]


class Parameter(Tensor):
    """A Tensor that a ``Module`` registers as a learnable parameter (``requires_grad=True``).

    >>> w = Parameter(tinygrad_rad.zeros(3, 4))
    >>> isinstance(w, Tensor), w.requires_grad
    (True, True)
    """

    __slots__ = ()

    def __init__(self, data=None, requires_grad: bool = True):
        if data is None:
            data = np.zeros((0,), dtype=np.float32)
        if isinstance(data, Tensor):
            super().__init__(data.data, device=data.device)
        else:
            super().__init__(data)
        if requires_grad:
            self.requires_grad_(True)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


def _to_host_array(value, key: str) -> np.ndarray:
    if isinstance(value, Tensor):
        return value.numpy()
    if type(value).__module__.startswith("cupy"):
        return to_device(value, "cpu")
    try:
        return np.asarray(value)  # NumPy arrays, and CPU torch tensors via __array__
    except Exception as e:  # pragma: no cover - defensive
        raise TypeError(f"load_state_dict: value for {key!r} is not an array ({type(value).__name__})") from e


# --------------------------------------------------------------------------------------- Module
class Module:
    """Base class of all layers and models: subclass it, set layers as attributes, write ``forward``.

    >>> class Net(Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.fc = Linear(4, 2)
    ...     def forward(self, x):
    ...         return self.fc(x).relu()
    """

    training: bool

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent", set())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    # ------------------------------------------------------------------ attribute registration
    def __setattr__(self, name: str, value) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError(
                f"cannot assign {name!r} before Module.__init__() is called; call super().__init__() first"
            )
        params, bufs, mods = self._parameters, self._buffers, self._modules
        if isinstance(value, Parameter):
            self._drop(name)
            params[name] = value
        elif isinstance(value, Module):
            self._drop(name)
            mods[name] = value
        elif name in params:
            if value is not None and not isinstance(value, Parameter):
                raise TypeError(
                    f"cannot assign {type(value).__name__} to parameter {name!r} (use nn.Parameter or None)"
                )
            params[name] = value
        elif name in mods:
            if value is not None:
                raise TypeError(
                    f"cannot assign {type(value).__name__} to sub-module {name!r} (use a Module or None)"
                )
            mods[name] = value
        elif name in bufs:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(
                    f"cannot assign {type(value).__name__} to buffer {name!r} (use a Tensor or None)"
                )
            bufs[name] = value
        else:
            object.__setattr__(self, name, value)

    def _drop(self, name: str) -> None:
        for d in (self._parameters, self._buffers, self._modules):
            d.pop(name, None)
        self.__dict__.pop(name, None)

    def __getattr__(self, name: str):
        d = self.__dict__
        for store in ("_parameters", "_buffers", "_modules"):
            if store in d and name in d[store]:
                return d[store][name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __delattr__(self, name: str) -> None:
        for store in (self._parameters, self._buffers, self._modules):
            if name in store:
                del store[name]
                return
        object.__delattr__(self, name)

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(
                f"register_parameter: {name!r} must be a Parameter or None, got {type(param).__name__}"
            )
        self._drop(name)
        self._parameters[name] = param

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        """A tensor that is state but not a parameter (e.g. BN running stats); saved in ``state_dict``."""
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(
                f"register_buffer: {name!r} must be a Tensor or None, got {type(tensor).__name__}"
            )
        if "." in name or not name:
            raise KeyError(f"register_buffer: invalid buffer name {name!r}")
        self._drop(name)
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent.discard(name)
        else:
            self._non_persistent.add(name)

    def register_module(self, name: str, module: Module | None) -> None:
        self._drop(name)
        self._modules[name] = module

    add_module = register_module

    def get_submodule(self, target: str) -> Module:
        mod = self
        for part in target.split(".") if target else []:
            if part not in mod._modules:
                raise AttributeError(
                    f"{type(mod).__name__} has no sub-module {part!r} (looking up {target!r})"
                )
            mod = mod._modules[part]
        return mod

    # -------------------------------------------------------------------------------- calling
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must implement forward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # ------------------------------------------------------------------------------ iteration
    def named_modules(self, memo: set | None = None, prefix: str = "", remove_duplicate: bool = True):
        if memo is None:
            memo = set()
        if remove_duplicate:
            if id(self) in memo:
                return
            memo.add(id(self))
        yield prefix, self
        for name, m in self._modules.items():
            if m is None:
                continue
            yield from m.named_modules(memo, prefix + ("." if prefix else "") + name, remove_duplicate)

    def modules(self) -> Iterator[Module]:
        for _, m in self.named_modules():
            yield m

    def named_children(self) -> Iterator[tuple[str, Module]]:
        seen = set()
        for name, m in self._modules.items():
            if m is not None and id(m) not in seen:
                seen.add(id(m))
                yield name, m

    def children(self) -> Iterator[Module]:
        for _, m in self.named_children():
            yield m

    def _named_members(self, store: str, prefix: str, recurse: bool, remove_duplicate: bool = True):
        seen = set()
        mods = self.named_modules(prefix=prefix) if recurse else [(prefix, self)]
        for mprefix, m in mods:
            for name, v in getattr(m, store).items():
                if v is None or (remove_duplicate and id(v) in seen):
                    continue
                seen.add(id(v))
                yield mprefix + ("." if mprefix else "") + name, v

    def named_parameters(self, prefix: str = "", recurse: bool = True,
                         remove_duplicate: bool = True) -> Iterator[tuple[str, Parameter]]:
        yield from self._named_members("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        """All parameters (each once, even if shared), in registration order."""
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True,
                      remove_duplicate: bool = True) -> Iterator[tuple[str, Tensor]]:
        yield from self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    # ------------------------------------------------------------------------------- training
    def train(self, mode: bool = True) -> Module:
        if not isinstance(mode, bool):
            raise ValueError(f"train(mode): mode must be a bool, got {mode!r}")
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self) -> Module:
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.parameters():
            if p.grad is None:
                continue
            if set_to_none:
                p.grad = None
            else:
                p.grad = Tensor._wrap(xp_of(p.grad.data).zeros_like(p.grad.data), device=p.device)

    def apply(self, fn) -> Module:
        """Call ``fn(m)`` on every sub-module (children first) and on self, e.g. a custom init."""
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    # ------------------------------------------------------------------------- device / dtype
    def _move(self, device: str | None, dtype) -> None:
        for m in self.modules():
            for store in (m._parameters, m._buffers):
                for t in store.values():
                    if t is None:
                        continue
                    _move_tensor(t, device, dtype)
                    if t.grad is not None:
                        _move_tensor(t.grad, device, dtype)

    def to(self, device=None, dtype=None) -> Module:
        """Move parameters and buffers in place: ``model.to("cuda")``, ``model.to(float64)``.

        The Parameter objects stay the same (an optimizer made before ``to`` keeps working); only
        floating-point tensors change dtype (``num_batches_tracked`` stays int64).
        """
        # NOTE: a NumPy dtype (tr.float64) has a ``.type`` attribute too: it is a dtype, not a device
        is_dev = isinstance(device, str) or (hasattr(device, "type") and not isinstance(device, np.dtype))
        if dtype is None and device is not None and not is_dev:
            device, dtype = None, device  # model.to(float64)
        dev = canonical_device(device) if device is not None else None
        dt = to_dtype(dtype) if dtype is not None else None
        if dt is not None and not is_floating(dt):
            raise TypeError(f"Module.to: dtype must be floating point, got {dt}")
        self._move(dev, dt)
        return self

    def cpu(self) -> Module:
        return self.to("cpu")

    def cuda(self) -> Module:
        return self.to("cuda")

    def double(self) -> Module:
        return self.to(dtype=np.float64)

    def float(self) -> Module:
        return self.to(dtype=np.float32)

    # ------------------------------------------------------------------------------ state dict
    def state_dict(self, destination=None, prefix: str = "", keep_vars: bool = False) -> OrderedDict:
        """Parameters and persistent buffers by dotted name (``"layer1.0.conv1.weight"``).

        Values are Tensors detached from the graph that share the module's arrays.
        """
        out = OrderedDict() if destination is None else destination
        for mprefix, m in self.named_modules(prefix=prefix.rstrip(".")):
            dot = mprefix + ("." if mprefix else "")
            for name, p in m._parameters.items():
                if p is not None:
                    out[dot + name] = p if keep_vars else p.detach()
            for name, b in m._buffers.items():
                if b is not None and name not in m._non_persistent:
                    out[dot + name] = b if keep_vars else b.detach()
        return out

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """Copy values (Tensors or arrays) into this module's parameters and buffers.

        ``strict=True`` raises on missing or unexpected keys; a shape mismatch always raises, naming
        the key and both shapes. Values are copied (cast to each tensor's dtype, onto its device); the
        Parameter objects stay the same. Returns ``(missing_keys, unexpected_keys)``. ``assign`` is
        accepted for PyTorch compatibility and ignored.
        """
        own = self.state_dict(keep_vars=True)
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        errors = []
        if strict and (missing or unexpected):
            if missing:
                errors.append("missing keys: " + ", ".join(repr(k) for k in missing))
            if unexpected:
                errors.append("unexpected keys: " + ", ".join(repr(k) for k in unexpected))
        for k, t in own.items():
            if k not in state_dict:
                continue
            arr = _to_host_array(state_dict[k], k)
            if tuple(arr.shape) != t.shape:
                errors.append(
                    f"size mismatch for {k!r}: copying a param with shape {tuple(arr.shape)} from the "
                    f"checkpoint, the shape in the current model is {t.shape}"
                )
        if errors:
            head = f"Error(s) in loading state_dict for {type(self).__name__}:\n  "
            raise RuntimeError(head + "\n  ".join(errors))
        for k, t in own.items():
            if k in state_dict:
                arr = _to_host_array(state_dict[k], k)
                t.data = to_device(np.array(arr, dtype=t.dtype, copy=True), t.device)
        return IncompatibleKeys(missing, unexpected)

    # ------------------------------------------------------------------------------------ repr
    def extra_repr(self) -> str:
        return ""

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def _tree_repr(self) -> str:
        lines = []
        for name, m in self._modules.items():
            body = "None" if m is None else m._tree_repr().replace("\n", "\n  ")
            lines.append(f"({name}): {body}")
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not lines:
            return head + ")"
        return head + "\n  " + "\n  ".join(lines) + "\n)"

    def __repr__(self) -> str:
        n = self.num_parameters()
        return self._tree_repr() + (f"  # {n:,} parameters" if n else "")

    def __dir__(self):
        return list(super().__dir__()) + list(self._parameters) + list(self._modules) + list(self._buffers)


def _move_tensor(t: Tensor, device: str | None, dtype) -> None:
    arr = t.data
    if dtype is not None and is_floating(arr.dtype) and arr.dtype != dtype:
        arr = arr.astype(dtype)
    if device is not None and device != t.device:
        arr = to_device(to_device(arr, "cpu"), device)
        t._device = device
    t.data = arr


def new_parameter(shape, dtype=None, device=None) -> Parameter:
    """A zero-filled Parameter (float32 unless ``dtype``) for a layer's ``reset_parameters`` to fill."""
    dt = to_dtype(dtype) if dtype is not None else np.float32
    return Parameter(Tensor(np.zeros(shape, dtype=dt), device=device))
