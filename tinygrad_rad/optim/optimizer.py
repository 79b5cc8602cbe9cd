"""``Optimizer``: the base class that holds ``param_groups`` and per-parameter ``state``.

    >>> opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    >>> opt.zero_grad(); loss.backward(); opt.step()

Updates run on the raw arrays (``p.data``) with the array module that owns them (NumPy or CuPy), so
they record no graph and work on both devices.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

import numpy as np

from ..autograd import enable_grad
from ..device import to_device, xp_of
from ..dtypes import is_floating
from ..tensor import Tensor

__all__ = ["Optimizer", "required"]


def _host_copy(v):
    """Arrays -> NumPy copies; anything else deep-copied."""
    if hasattr(v, "shape") and hasattr(v, "dtype") and not isinstance(v, (int, float)):
        return np.array(to_device(v, "cpu"), copy=True)
    return copy.deepcopy(v)


class _Required:
    def __repr__(self) -> str:
        return "<required parameter>"


required = _Required()


class Optimizer:
    """Base class. Subclasses set ``defaults`` and implement ``step()``.

    ``params`` is an iterable of Tensors or of dicts (parameter groups) such as
    ``[{"params": model.backbone.parameters()}, {"params": model.head.parameters(), "lr": 1e-2}]``;
    keys missing from a group take the optimizer's defaults.
    """

    def __init__(self, params: Iterable, defaults: dict[str, Any]) -> None:
        self.defaults = dict(defaults)
        self.state: dict = {}  # param (Tensor, hashed by identity) -> dict of arrays and counters
        self.param_groups: list[dict] = []
        if isinstance(params, Tensor):
            raise TypeError(
                f"{type(self).__name__}: params must be an iterable of Tensors or dicts, got a single "
                "Tensor; pass [tensor] or model.parameters()"
            )
        groups = list(params)
        if not groups:
            raise ValueError(f"{type(self).__name__} got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for g in groups:
            self.add_param_group(g)

    def add_param_group(self, param_group: dict) -> None:
        if not isinstance(param_group, dict):
            raise TypeError(f"add_param_group: expected a dict, got {type(param_group).__name__}")
        group = dict(param_group)
        ps = group["params"]
        ps = [ps] if isinstance(ps, Tensor) else list(ps)
        for i, p in enumerate(ps):
            if not isinstance(p, Tensor):
                raise TypeError(f"{type(self).__name__}: parameter {i} is a {type(p).__name__}, not a Tensor")
            if not p.is_leaf:
                raise ValueError(f"{type(self).__name__}: can't optimize a non-leaf Tensor (parameter {i})")
            if not is_floating(p.dtype):
                raise TypeError(f"{type(self).__name__}: parameter {i} has non-float dtype {p.dtype}")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if len({id(p) for p in ps}) != len(ps) or any(id(p) in seen for p in ps):
            raise ValueError(
                f"{type(self).__name__}: a parameter appears more than once in the parameter groups"
            )
        group["params"] = ps
        for k, v in self.defaults.items():
            if v is required and k not in group:
                raise ValueError(
                    f"{type(self).__name__}: parameter group didn't specify a value of required {k!r}"
                )
            group.setdefault(k, v)
        self.param_groups.append(group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset every parameter's ``.grad`` (to None, or to zeros with ``set_to_none=False``)."""
        for g in self.param_groups:
            for p in g["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    p.grad = Tensor._wrap(xp_of(p.grad.data).zeros_like(p.grad.data), device=p.device)

    def step(self, closure=None):  # pragma: no cover - abstract
        raise NotImplementedError

    def _closure(self, closure):
        if closure is None:
            return None
        with enable_grad():
            return closure()

    # --------------------------------------------------------------------------------- state
    def state_dict(self) -> dict:
        """``{"state": {index: {name: array | number}}, "param_groups": [{..., "params": [index]}]}``.

        Parameters are named by their position across all groups, as in PyTorch; arrays are host
        (NumPy) copies.
        """
        index: dict = {}
        groups = []
        for g in self.param_groups:
            packed = {k: copy.deepcopy(v) for k, v in g.items() if k != "params"}
            packed["params"] = []
            for p in g["params"]:
                index.setdefault(id(p), len(index))
                packed["params"].append(index[id(p)])
            groups.append(packed)
        state = {}
        for g in self.param_groups:
            for p in g["params"]:
                if p in self.state:
                    state[index[id(p)]] = {k: _host_copy(v) for k, v in self.state[p].items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore hyper-parameters and state saved by :meth:`state_dict` (arrays are copied onto
        each parameter's device; floating state takes the parameter's dtype)."""
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"{type(self).__name__}.load_state_dict: the state has {len(saved_groups)} parameter groups, "
                f"this optimizer has {len(self.param_groups)}"
            )
        for i, (g, sg) in enumerate(zip(self.param_groups, saved_groups)):
            if len(g["params"]) != len(sg["params"]):
                raise ValueError(
                    f"{type(self).__name__}.load_state_dict: parameter group {i} has {len(g['params'])} "
                    f"parameters but the saved group has {len(sg['params'])}"
                )
        id_map = {}
        for g, sg in zip(self.param_groups, saved_groups):
            for p, idx in zip(g["params"], sg["params"]):
                id_map[int(idx)] = p
        new_state: dict = {}
        for idx, st in state_dict["state"].items():
            p = id_map.get(int(idx))
            if p is None:
                raise KeyError(
                    f"{type(self).__name__}.load_state_dict: state for unknown parameter index {idx}"
                )
            entry = {}
            for k, v in st.items():
                if hasattr(v, "shape") and hasattr(v, "dtype") and np.ndim(v) > 0:
                    arr = np.asarray(to_device(v, "cpu") if not isinstance(v, np.ndarray) else v)
                    if arr.shape != p.shape:
                        raise ValueError(
                            f"{type(self).__name__}.load_state_dict: state {k!r} of parameter {idx} has "
                            f"shape {arr.shape}, but the parameter has shape {p.shape}"
                        )
                    dt = p.dtype if is_floating(arr.dtype) else arr.dtype
                    entry[k] = to_device(np.array(arr, dtype=dt, copy=True), p.device)
                elif hasattr(v, "shape") and np.ndim(v) == 0:
                    entry[k] = np.asarray(to_device(v, "cpu")).item()
                else:
                    entry[k] = copy.deepcopy(v)
            new_state[p] = entry
        self.state = new_state
        for g, sg in zip(self.param_groups, saved_groups):
            for k, v in sg.items():
                if k != "params":
                    g[k] = copy.deepcopy(v)

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for k in sorted(g):
                if k != "params":
                    lines.append(f"    {k}: {g[k]}")
        return "\n".join(lines) + "\n)"
