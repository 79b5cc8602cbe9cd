"""Containers that register their modules: ``Sequential``, ``ModuleList``, ``ModuleDict``.

    >>> net = Sequential(Linear(4, 8), ReLU(), Linear(8, 2))
    >>> len(net), net[0].out_features
    (3, 8)
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

from .activation import ReLU
from .module import Module

__all__ = ["Sequential", "ModuleList", "ModuleDict", "bn_relu"]


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
        mods = list(self._modules.values())
        i = 0
        while i < len(mods):
            m = mods[i]
            if i + 1 < len(mods) and _fuses_with_relu(m, mods[i + 1]):
                x = m.forward_relu(x)  # BatchNorm then ReLU as one op: the same values, one pass fewer
                i += 2
                continue
            x = m(x)
            i += 1
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


def _fuses_with_relu(m: Module, nxt: Module) -> bool:
    """A batch norm (it has ``forward_relu``) followed by a plain ReLU, neither forward wrapped on the
    instance (``explain.capture_outputs`` does that to record a layer's output: then both run apart)."""
    return (type(nxt) is ReLU and hasattr(m, "forward_relu") and "forward" not in m.__dict__
            and "forward" not in nxt.__dict__)


def bn_relu(bn: Module, relu: Module, x):
    """``relu(bn(x))``, as one fused op when Sequential would fuse the pair (not in PyTorch: a model's
    ``forward`` calls it where it would write ``self.relu(self.bn1(...))``).

    >>> out = nn.bn_relu(self.bn1, self.relu, self.conv1(x))
    """
    return bn.forward_relu(x) if _fuses_with_relu(bn, relu) else relu(bn(x))


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
