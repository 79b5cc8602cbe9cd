"""Containers that register their modules: ``Sequential``, ``ModuleList``, ``ModuleDict``.

    >>> net = Sequential(Linear(4, 8), ReLU(), Linear(8, 2))
    >>> len(net), net[0].out_features
    (3, 8)
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

from ... import ops
from ...autograd import is_grad_enabled
from ...device import xp_of
from ...tensor import Tensor
from .activation import ReLU
from .conv import Conv2d
from .module import Module
from .norm import BatchNorm2d

__all__ = ["Sequential", "ModuleList", "ModuleDict", "bn_relu", "conv_bn"]


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
            if i + 1 < len(mods) and type(m) is Conv2d and type(mods[i + 1]) is BatchNorm2d:
                relu = mods[i + 2] if i + 2 < len(mods) and type(mods[i + 2]) is ReLU else None
                if _fuses_conv_bn(m, mods[i + 1], relu, x, None):  # inference: Conv -> BN (-> ReLU) fused
                    x = _conv_bn_eval(m, mods[i + 1], x, relu is not None, None)
                    i += 3 if relu is not None else 2
                    continue
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


def conv_bn(conv: Module, bn: Module, x, relu: Module | None = None, residual=None):
    """``relu(bn(conv(x)) + residual)``, the ReLU and the residual optional (not in PyTorch: a model's
    ``forward`` calls it where it would write ``self.relu(self.bn2(self.conv2(out)) + identity)``).

    At inference (the batch norm in eval mode, no gradient needed: ``model.eval()`` under ``no_grad``) a
    Conv2d followed by a BatchNorm2d is one kernel call, ``ops.Conv2dAffineEval``: batch norm with running
    statistics is a per-channel affine map, applied with the residual add and the ReLU as the conv stores
    its output. Otherwise the modules run one after the other (a BatchNorm -> ReLU pair as ``bn_relu``).

    >>> out = nn.conv_bn(self.conv2, self.bn2, out, self.relu, residual=identity)
    """
    if _fuses_conv_bn(conv, bn, relu, x, residual):
        return _conv_bn_eval(conv, bn, x, relu is not None, residual)
    out = conv(x)
    if residual is None:
        return bn(out) if relu is None else bn_relu(bn, relu, out)
    out = bn(out) + residual
    return out if relu is None else relu(out)


def _fuses_conv_bn(conv, bn, relu, x, residual) -> bool:
    plain = all(m is None or "forward" not in m.__dict__ for m in (conv, bn, relu))  # not wrapped
    no_grad = not is_grad_enabled() or not any(
        t is not None and t.requires_grad for t in (x, conv.weight, conv.bias, bn.weight, bn.bias, residual))
    return (plain and no_grad and type(conv) is Conv2d and type(bn) is BatchNorm2d and not bn.training
            and bn.running_mean is not None and (relu is None or type(relu) is ReLU)
            and not isinstance(conv.padding, str) and isinstance(x, Tensor) and x.ndim == 4
            and x.shape[1] == conv.in_channels and conv.out_channels == bn.num_features
            and x.dtype == conv.weight.dtype and (residual is None or isinstance(residual, Tensor)))


def _conv_bn_eval(conv, bn, x, relu: bool, residual):
    # eval batch norm: y = (z - mean) / sqrt(var + eps) * w + b = z * scale + shift, the arithmetic of
    # F.batch_norm's eval branch; a conv bias b0 folds into the shift: (z + b0) * scale + shift
    xp = xp_of(x.data)
    dt = x.data.dtype
    scale = (1.0 / xp.sqrt(bn.running_var.data + bn.eps)).astype(dt)
    mean = bn.running_mean.data.astype(dt)
    if bn.weight is None:
        shift = -mean * scale
    else:
        w = bn.weight.data.astype(dt)
        shift = bn.bias.data.astype(dt) - mean * w * scale
        scale = w * scale
    if conv.bias is not None:
        shift = shift + conv.bias.data.astype(dt) * scale
    args = [x, conv.weight, Tensor._wrap(scale, x.device), Tensor._wrap(shift, x.device)]
    if residual is not None:
        args.append(residual)
    return ops.Conv2dAffineEval.apply(*args, stride=conv.stride, padding=conv.padding, dilation=conv.dilation,
                                      groups=conv.groups, relu=relu)


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
