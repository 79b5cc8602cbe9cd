"""``Module`` (a container of parameters, buffers and sub-modules) and the standard layers.

    >>> import tinygrad_rad as tr
    >>> from tinygrad_rad import nn
    >>> net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
    ...                     nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2))
    >>> net(tr.randn(4, 1, 28, 28)).shape
    (4, 2)

Every layer calls :mod:`tinygrad_rad.nn.functional`; no layer implements an op itself. Parameter
names, argument names and default initialisations follow PyTorch, so ``state_dict`` keys match.
"""

from __future__ import annotations

import math
from collections import OrderedDict, namedtuple
from collections.abc import Iterable, Iterator

import numpy as np

from ..device import canonical_device, to_device, xp_for, xp_of
from ..dtypes import is_floating, to_dtype
from ..random import get_generator
from ..tensor import Tensor
from . import functional as F
from . import init

__all__ = [
    "Parameter", "Module", "Sequential", "ModuleList", "ModuleDict", "Identity", "Linear", "Conv2d",
    "ConvTranspose2d", "BatchNorm1d", "BatchNorm2d", "Dropout", "Dropout2d", "MaxPool2d", "AvgPool2d",
    "AdaptiveAvgPool2d", "Upsample", "Flatten", "ReLU", "LeakyReLU", "ELU", "GELU", "Sigmoid", "Tanh",
    "Softplus", "Softmax", "LogSoftmax", "CrossEntropyLoss", "BCEWithLogitsLoss", "NLLLoss", "MSELoss",
    "L1Loss", "SmoothL1Loss", "DiceLoss", "TverskyLoss", "FocalLoss", "DiceBCELoss", "DiceCELoss",
]


# ------------------------------------------------------------------------------------ Parameter
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


def _pair(v) -> tuple:
    return (int(v[0]), int(v[1])) if isinstance(v, (tuple, list)) else (int(v), int(v))


_IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


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
        is_dev = isinstance(device, str) or hasattr(device, "type")
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
        return _IncompatibleKeys(missing, unexpected)

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


# ------------------------------------------------------------------------------------ containers
class Sequential(Module):
    """Chain modules: ``Sequential(Conv2d(1, 8, 3), ReLU())`` or ``Sequential(OrderedDict(...))``."""

    def __init__(self, *args) -> None:
        super().__init__()
        if len(args) == 1 and isinstance(args[0], (OrderedDict, dict)):
            for name, m in args[0].items():
                self.register_module(name, m)
        else:
            for i, m in enumerate(args):
                if not isinstance(m, Module):
                    raise TypeError(f"Sequential: argument {i} is a {type(m).__name__}, not a Module")
                self.register_module(str(i), m)

    def forward(self, x):
        for m in self._modules.values():
            x = m(x)
        return x

    def __getitem__(self, idx):
        mods = list(self._modules.items())
        if isinstance(idx, slice):
            return Sequential(OrderedDict(mods[idx]))
        return mods[idx][1]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def append(self, module: Module) -> Sequential:
        self.register_module(str(len(self._modules)), module)
        return self


class ModuleList(Module):
    """A list of modules whose parameters are registered: ``ModuleList([Linear(2, 2) for _ in range(3)])``."""

    def __init__(self, modules: Iterable[Module] | None = None) -> None:
        super().__init__()
        for m in modules or []:
            self.append(m)

    def append(self, module: Module) -> ModuleList:
        if not isinstance(module, Module):
            raise TypeError(f"ModuleList.append: expected a Module, got {type(module).__name__}")
        self.register_module(str(len(self._modules)), module)
        return self

    def extend(self, modules: Iterable[Module]) -> ModuleList:
        for m in modules:
            self.append(m)
        return self

    def __getitem__(self, idx):
        mods = list(self._modules.values())
        if isinstance(idx, slice):
            return ModuleList(mods[idx])
        return mods[idx]

    def __setitem__(self, idx: int, module: Module) -> None:
        key = list(self._modules)[idx]
        self.register_module(key, module)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def forward(self, *args, **kwargs):
        raise NotImplementedError("ModuleList has no forward(); iterate over it")


class ModuleDict(Module):
    """A dict of modules whose parameters are registered: ``ModuleDict({"enc": Linear(2, 2)})``."""

    def __init__(self, modules: dict | None = None) -> None:
        super().__init__()
        for k, m in (modules or {}).items():
            self[k] = m

    def __getitem__(self, key: str) -> Module:
        return self._modules[key]

    def __setitem__(self, key: str, module: Module) -> None:
        if not isinstance(module, Module):
            raise TypeError(f"ModuleDict[{key!r}]: expected a Module, got {type(module).__name__}")
        self.register_module(key, module)

    def __delitem__(self, key: str) -> None:
        del self._modules[key]

    def __contains__(self, key: str) -> bool:
        return key in self._modules

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules)

    def keys(self):
        return self._modules.keys()

    def values(self):
        return self._modules.values()

    def items(self):
        return self._modules.items()

    def forward(self, *args, **kwargs):
        raise NotImplementedError("ModuleDict has no forward(); index it")


# ---------------------------------------------------------------------------------------- layers
class Identity(Module):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__()

    def forward(self, x):
        return x


def _param(shape, dtype, device) -> Parameter:
    dt = to_dtype(dtype) if dtype is not None else np.float32
    return Parameter(Tensor(np.zeros(shape, dtype=dt), device=device))


class Linear(Module):
    """y = x W^T + b; ``weight`` (out_features, in_features), initialised as in PyTorch.

    >>> Linear(4, 2)(tinygrad_rad.randn(3, 4)).shape
    (3, 2)
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, device=None,
                 dtype=None) -> None:
        super().__init__()
        self.in_features, self.out_features = int(in_features), int(out_features)
        self.weight = _param((self.out_features, self.in_features), dtype, device)
        if bias:
            self.bias = _param((self.out_features,), dtype, device)
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in = self.in_features
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input: Tensor) -> Tensor:
        return F.linear(input, self.weight, self.bias)

    def extra_repr(self) -> str:
        has_bias = self.bias is not None
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={has_bias}"


class _ConvNd(Module):
    def reset_parameters(self) -> None:
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = init._calculate_fan_in_and_fan_out(self.weight)
            if fan_in != 0:
                bound = 1 / math.sqrt(fan_in)
                init.uniform_(self.bias, -bound, bound)

    def extra_repr(self) -> str:
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if getattr(self, "output_padding", (0, 0)) != (0, 0):
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        return s


class Conv2d(_ConvNd):
    """2-D convolution over (N, C_in, H, W); ``padding`` may be an int, a pair, ``'same'`` or ``'valid'``.

    >>> Conv2d(1, 8, 3, padding="same")(tinygrad_rad.randn(2, 1, 28, 28)).shape
    (2, 8, 28, 28)
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, padding_mode: str = "zeros", device=None,
                 dtype=None) -> None:
        super().__init__()
        if padding_mode != "zeros":
            raise NotImplementedError(f"Conv2d: padding_mode {padding_mode!r} is not supported")
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f"Conv2d: groups={groups} must divide in_channels={in_channels} and "
                f"out_channels={out_channels}"
            )
        self.in_channels, self.out_channels, self.groups = int(in_channels), int(out_channels), int(groups)
        self.kernel_size, self.stride, self.dilation = _pair(kernel_size), _pair(stride), _pair(dilation)
        self.padding = padding if isinstance(padding, str) else _pair(padding)
        self.padding_mode = padding_mode
        wshape = (self.out_channels, self.in_channels // self.groups) + self.kernel_size
        self.weight = _param(wshape, dtype, device)
        if bias:
            self.bias = _param((self.out_channels,), dtype, device)
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def forward(self, input: Tensor) -> Tensor:
        return F.conv2d(input, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class ConvTranspose2d(_ConvNd):
    """Transposed 2-D convolution; ``weight`` is (C_in, C_out/groups, kH, kW) as in PyTorch.

    >>> ConvTranspose2d(8, 4, 2, stride=2)(tinygrad_rad.randn(1, 8, 7, 7)).shape
    (1, 4, 14, 14)
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 output_padding=0, groups: int = 1, bias: bool = True, dilation=1,
                 padding_mode: str = "zeros", device=None, dtype=None) -> None:
        super().__init__()
        if padding_mode != "zeros":
            raise NotImplementedError(f"ConvTranspose2d: padding_mode {padding_mode!r} is not supported")
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f"ConvTranspose2d: groups={groups} must divide in_channels={in_channels} and "
                f"out_channels={out_channels}"
            )
        self.in_channels, self.out_channels, self.groups = int(in_channels), int(out_channels), int(groups)
        self.kernel_size, self.stride, self.dilation = _pair(kernel_size), _pair(stride), _pair(dilation)
        self.padding, self.output_padding = _pair(padding), _pair(output_padding)
        self.padding_mode = padding_mode
        wshape = (self.in_channels, self.out_channels // self.groups) + self.kernel_size
        self.weight = _param(wshape, dtype, device)
        if bias:
            self.bias = _param((self.out_channels,), dtype, device)
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def forward(self, input: Tensor, output_size=None) -> Tensor:
        output_padding = self.output_padding
        if output_size is not None:
            output_padding = self._output_padding(input, output_size)
        return F.conv_transpose2d(input, self.weight, self.bias, self.stride, self.padding, output_padding,
                                  self.groups, self.dilation)

    def _output_padding(self, input: Tensor, output_size) -> tuple:
        size = tuple(output_size)[-2:]
        pads = []
        for i in (0, 1):
            base = ((input.shape[2 + i] - 1) * self.stride[i] - 2 * self.padding[i]
                    + self.dilation[i] * (self.kernel_size[i] - 1) + 1)
            extra = int(size[i]) - base
            if not 0 <= extra < max(self.stride[i], self.dilation[i]):
                raise ValueError(
                    f"ConvTranspose2d: output_size {size} is not reachable from input {input.shape} "
                    f"(valid sizes start at {base})"
                )
            pads.append(extra)
        return tuple(pads)


class _BatchNorm(Module):
    _expected_dims: tuple = ()

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True, device=None, dtype=None) -> None:
        super().__init__()
        self.num_features, self.eps, self.momentum = int(num_features), float(eps), momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        if affine:
            self.weight = _param((self.num_features,), dtype, device)
            self.bias = _param((self.num_features,), dtype, device)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            dt = to_dtype(dtype) if dtype is not None else np.float32
            self.register_buffer("running_mean", Tensor(np.zeros(self.num_features, dtype=dt), device=device))
            self.register_buffer("running_var", Tensor(np.ones(self.num_features, dtype=dt), device=device))
            self.register_buffer("num_batches_tracked", Tensor(np.array(0, dtype=np.int64), device=device))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
        self.reset_parameters()

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            init.zeros_(self.running_mean)
            init.ones_(self.running_var)
            self.num_batches_tracked.data = xp_of(self.num_batches_tracked.data).zeros((), dtype=np.int64)

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        if self.affine:
            init.ones_(self.weight)
            init.zeros_(self.bias)

    def forward(self, input: Tensor) -> Tensor:
        if input.ndim not in self._expected_dims:
            dims = " or ".join(f"{d}-D" for d in self._expected_dims)
            raise ValueError(f"{type(self).__name__}: expected a {dims} input, got shape {input.shape}")
        if input.shape[1] != self.num_features:
            raise ValueError(
                f"{type(self).__name__}: expected {self.num_features} channels, "
                f"got input of shape {input.shape}"
            )
        momentum = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            nbt = self.num_batches_tracked.data
            self.num_batches_tracked.data = xp_of(nbt).asarray(nbt + 1, dtype=nbt.dtype)  # stays 0-d
            if self.momentum is None:  # cumulative moving average
                momentum = 1.0 / float(self.num_batches_tracked.item())
        use_batch = self.training or not self.track_running_stats
        tracking = self.training and self.track_running_stats
        return F.batch_norm(
            input,
            self.running_mean if tracking or not use_batch else None,
            self.running_var if tracking or not use_batch else None,
            self.weight, self.bias, use_batch, momentum, self.eps,
        )

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch norm over (N, C) or (N, C, L)."""

    _expected_dims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch norm over (N, C, H, W): per-channel batch statistics when training, running ones in eval.

    >>> bn = BatchNorm2d(8); bn.eval()
    """

    _expected_dims = (4,)


class Dropout(Module):
    """Zero elements with probability ``p`` while training (scaling the rest by 1/(1-p))."""

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1], got {p}")
        self.p, self.inplace = float(p), inplace

    def forward(self, input: Tensor) -> Tensor:
        return F.dropout(input, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Dropout2d(Dropout):
    """Zero whole channels of (N, C, H, W) with probability ``p`` while training."""

    def forward(self, input: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return input
        if input.ndim != 4:
            raise ValueError(f"Dropout2d: expected a 4-D input (N, C, H, W), got shape {input.shape}")
        keep = get_generator().random(input.shape[:2] + (1, 1)) >= self.p
        scale = 0.0 if self.p == 1.0 else 1.0 / (1.0 - self.p)
        mask = xp_for(input.device).asarray((keep * scale).astype(input.dtype))
        # d(x m)/dx = m (m broadcast over H, W)
        return input * Tensor._wrap(mask, device=input.device)


class MaxPool2d(Module):
    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices: bool = False,
                 ceil_mode: bool = False) -> None:
        super().__init__()
        self.kernel_size, self.stride = kernel_size, stride or kernel_size
        self.padding, self.dilation = padding, dilation
        self.return_indices, self.ceil_mode = return_indices, ceil_mode

    def forward(self, input: Tensor) -> Tensor:
        return F.max_pool2d(input, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode,
                            self.return_indices)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPool2d(Module):
    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
                 count_include_pad: bool = True) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride or kernel_size, padding
        self.ceil_mode, self.count_include_pad = ceil_mode, count_include_pad

    def forward(self, input: Tensor) -> Tensor:
        return F.avg_pool2d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                            self.count_include_pad)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AdaptiveAvgPool2d(Module):
    def __init__(self, output_size) -> None:
        super().__init__()
        self.output_size = output_size

    def forward(self, input: Tensor) -> Tensor:
        return F.adaptive_avg_pool2d(input, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class Upsample(Module):
    """``Upsample(scale_factor=2, mode="bilinear", align_corners=False)``."""

    def __init__(self, size=None, scale_factor=None, mode: str = "nearest",
                 align_corners: bool | None = None) -> None:
        super().__init__()
        self.size, self.scale_factor, self.mode, self.align_corners = size, scale_factor, mode, align_corners

    def forward(self, input: Tensor) -> Tensor:
        return F.interpolate(input, self.size, self.scale_factor, self.mode, self.align_corners)

    def extra_repr(self) -> str:
        what = f"size={self.size}" if self.size is not None else f"scale_factor={self.scale_factor}"
        return f"{what}, mode={self.mode!r}"


class Flatten(Module):
    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, input: Tensor) -> Tensor:
        return input.flatten(self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


# ------------------------------------------------------------------------------------ activations
class ReLU(Module):
    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace

    def forward(self, input: Tensor) -> Tensor:
        return F.relu(input)


class LeakyReLU(Module):
    def __init__(self, negative_slope: float = 0.01, inplace: bool = False) -> None:
        super().__init__()
        self.negative_slope, self.inplace = negative_slope, inplace

    def forward(self, input: Tensor) -> Tensor:
        return F.leaky_relu(input, self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class ELU(Module):
    def __init__(self, alpha: float = 1.0, inplace: bool = False) -> None:
        super().__init__()
        self.alpha, self.inplace = alpha, inplace

    def forward(self, input: Tensor) -> Tensor:
        return F.elu(input, self.alpha)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"


class GELU(Module):
    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        self.approximate = approximate

    def forward(self, input: Tensor) -> Tensor:
        return F.gelu(input, self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class Sigmoid(Module):
    def forward(self, input: Tensor) -> Tensor:
        return F.sigmoid(input)


class Tanh(Module):
    def forward(self, input: Tensor) -> Tensor:
        return F.tanh(input)


class Softplus(Module):
    def __init__(self, beta: float = 1.0, threshold: float = 20.0) -> None:
        super().__init__()
        self.beta, self.threshold = beta, threshold

    def forward(self, input: Tensor) -> Tensor:
        return F.softplus(input, self.beta, self.threshold)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, threshold={self.threshold}"


class Softmax(Module):
    def __init__(self, dim: int | None = None) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, input: Tensor) -> Tensor:
        # NOTE: PyTorch's implicit dim (None) is deprecated; like it, use 0 for 0-, 1-, 3-D input, else 1
        dim = self.dim if self.dim is not None else (0 if input.ndim in (0, 1, 3) else 1)
        return F.softmax(input, dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class LogSoftmax(Softmax):
    def forward(self, input: Tensor) -> Tensor:
        dim = self.dim if self.dim is not None else (0 if input.ndim in (0, 1, 3) else 1)
        return F.log_softmax(input, dim)


# ----------------------------------------------------------------------------------------- losses
class _Loss(Module):
    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(
                f"{type(self).__name__}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}"
            )
        self.reduction = reduction

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"


class CrossEntropyLoss(_Loss):
    """Softmax cross-entropy on logits with class-index targets: ``CrossEntropyLoss()(logits, y)``."""

    def __init__(self, weight: Tensor | None = None, ignore_index: int = -100, reduction: str = "mean",
                 label_smoothing: float = 0.0) -> None:
        super().__init__(reduction)
        self.ignore_index, self.label_smoothing = ignore_index, label_smoothing
        self.register_buffer("weight", weight)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.cross_entropy(input, target, self.weight, self.ignore_index, self.reduction,
                               self.label_smoothing)


class NLLLoss(_Loss):
    def __init__(self, weight: Tensor | None = None, ignore_index: int = -100,
                 reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.ignore_index = ignore_index
        self.register_buffer("weight", weight)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.nll_loss(input, target, self.weight, self.ignore_index, self.reduction)


class BCEWithLogitsLoss(_Loss):
    def __init__(self, weight: Tensor | None = None, reduction: str = "mean",
                 pos_weight: Tensor | None = None) -> None:
        super().__init__(reduction)
        self.register_buffer("weight", weight)
        self.register_buffer("pos_weight", pos_weight)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.binary_cross_entropy_with_logits(input, target, self.weight, self.reduction, self.pos_weight)


class MSELoss(_Loss):
    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.mse_loss(input, target, self.reduction)


class L1Loss(_Loss):
    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.l1_loss(input, target, self.reduction)


class SmoothL1Loss(_Loss):
    def __init__(self, reduction: str = "mean", beta: float = 1.0) -> None:
        super().__init__(reduction)
        self.beta = beta

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.smooth_l1_loss(input, target, self.reduction, self.beta)


# ------------------------------------------------------------------ segmentation / detection losses
class DiceLoss(_Loss):
    """Soft Dice loss (MONAI's ``DiceLoss``); see :func:`tinygrad_rad.nn.functional.dice_loss`.

    >>> DiceLoss(sigmoid=True)(logits, mask)            # binary, (N, 1, H, W)
    >>> DiceLoss(softmax=True, include_background=False)(logits, labels)   # labels (N, H, W)
    """

    def __init__(self, include_background: bool = True, sigmoid: bool = False, softmax: bool = False,
                 smooth_nr: float = 1e-5, smooth_dr: float = 1e-5, batch: bool = False,
                 reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.include_background, self.sigmoid, self.softmax = include_background, sigmoid, softmax
        self.smooth_nr, self.smooth_dr, self.batch = smooth_nr, smooth_dr, batch

    def forward(self, input: Tensor, target) -> Tensor:
        return F.dice_loss(input, target, sigmoid=self.sigmoid, softmax=self.softmax,
                           include_background=self.include_background, smooth_nr=self.smooth_nr,
                           smooth_dr=self.smooth_dr, batch=self.batch, reduction=self.reduction)

    def extra_repr(self) -> str:
        return (f"include_background={self.include_background}, sigmoid={self.sigmoid}, "
                f"softmax={self.softmax}, batch={self.batch}, reduction={self.reduction!r}")


class TverskyLoss(_Loss):
    """Tversky loss (MONAI's ``TverskyLoss``): ``alpha`` weighs false positives, ``beta`` false negatives."""

    def __init__(self, include_background: bool = True, sigmoid: bool = False, softmax: bool = False,
                 alpha: float = 0.5, beta: float = 0.5, smooth_nr: float = 1e-5, smooth_dr: float = 1e-5,
                 batch: bool = False, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.include_background, self.sigmoid, self.softmax = include_background, sigmoid, softmax
        self.alpha, self.beta = alpha, beta
        self.smooth_nr, self.smooth_dr, self.batch = smooth_nr, smooth_dr, batch

    def forward(self, input: Tensor, target) -> Tensor:
        return F.tversky_loss(input, target, alpha=self.alpha, beta=self.beta, sigmoid=self.sigmoid,
                              softmax=self.softmax, include_background=self.include_background,
                              smooth_nr=self.smooth_nr, smooth_dr=self.smooth_dr, batch=self.batch,
                              reduction=self.reduction)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, beta={self.beta}, sigmoid={self.sigmoid}, softmax={self.softmax}"


class FocalLoss(_Loss):
    """Binary focal loss on logits; see :func:`tinygrad_rad.nn.functional.sigmoid_focal_loss` (default
    reduction 'mean'). A target (N, *spatial) is accepted for a one-channel input (N, 1, *spatial)."""

    def __init__(self, alpha: float | None = 0.25, gamma: float = 2.0, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.alpha, self.gamma = alpha, gamma

    def forward(self, input: Tensor, target) -> Tensor:
        t = target.numpy() if isinstance(target, Tensor) else np.asarray(target)
        if t.shape != input.shape and t.shape == (input.shape[0],) + input.shape[2:] and input.shape[1] == 1:
            t = t[:, None]
        return F.sigmoid_focal_loss(input, t, self.alpha, self.gamma, self.reduction)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, gamma={self.gamma}, reduction={self.reduction!r}"


class DiceBCELoss(Module):
    """``lambda_dice * Dice(sigmoid) + lambda_bce * BCE-with-logits`` for binary masks (N, 1, H, W)."""

    def __init__(self, lambda_dice: float = 1.0, lambda_bce: float = 1.0, smooth_nr: float = 1e-5,
                 smooth_dr: float = 1e-5, batch: bool = False) -> None:
        super().__init__()
        self.lambda_dice, self.lambda_bce = lambda_dice, lambda_bce
        self.smooth_nr, self.smooth_dr, self.batch = smooth_nr, smooth_dr, batch

    def forward(self, input: Tensor, target) -> Tensor:
        return F.dice_bce_loss(input, target, self.lambda_dice, self.lambda_bce, self.smooth_nr,
                               self.smooth_dr, self.batch)

    def extra_repr(self) -> str:
        return f"lambda_dice={self.lambda_dice}, lambda_bce={self.lambda_bce}"


class DiceCELoss(Module):
    """``lambda_dice * Dice(softmax) + lambda_ce * cross_entropy`` for C-class labels (N, H, W)."""

    def __init__(self, include_background: bool = True, lambda_dice: float = 1.0, lambda_ce: float = 1.0,
                 smooth_nr: float = 1e-5, smooth_dr: float = 1e-5, batch: bool = False) -> None:
        super().__init__()
        self.include_background = include_background
        self.lambda_dice, self.lambda_ce = lambda_dice, lambda_ce
        self.smooth_nr, self.smooth_dr, self.batch = smooth_nr, smooth_dr, batch

    def forward(self, input: Tensor, target) -> Tensor:
        return F.dice_ce_loss(input, target, self.include_background, self.lambda_dice, self.lambda_ce,
                              self.smooth_nr, self.smooth_dr, self.batch)

    def extra_repr(self) -> str:
        return (f"include_background={self.include_background}, lambda_dice={self.lambda_dice}, "
                f"lambda_ce={self.lambda_ce}")
