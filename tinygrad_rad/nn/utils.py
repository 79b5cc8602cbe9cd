"""Gradient utilities: ``clip_grad_norm_`` and ``clip_grad_value_``.

    >>> loss.backward()
    >>> total = nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from ..device import xp_of
from ..tensor import Tensor

__all__ = ["clip_grad_norm_", "clip_grad_value_", "parameters_to_vector"]


def _params(parameters) -> list:
    if isinstance(parameters, Tensor):
        return [parameters]
    return list(parameters)


def clip_grad_norm_(parameters: Iterable[Tensor] | Tensor, max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False) -> Tensor:
    """Scale all gradients together so that their joint ``norm_type``-norm is at most ``max_norm``.

    Returns the total norm before clipping (a 0-d float tensor), as PyTorch does. Gradients are
    scaled by ``max_norm / (total + 1e-6)`` only when that factor is below 1.
    """
    grads = [p.grad for p in _params(parameters) if p.grad is not None]
    if not grads:
        return Tensor(0.0)
    norm_type = float(norm_type)
    dev = grads[0].device
    if math.isinf(norm_type):
        per = [float(xp_of(g.data).abs(g.data).max()) if g.data.size else 0.0 for g in grads]
        total = max(per)
    else:
        per = [float((xp_of(g.data).abs(g.data.astype("float64")) ** norm_type).sum()) for g in grads]
        total = sum(per) ** (1.0 / norm_type)
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(
            f"clip_grad_norm_: the total norm of order {norm_type} of the gradients is non-finite ({total}); "
            "pass error_if_nonfinite=False to clip anyway"
        )
    coef = float(max_norm) / (total + 1e-6)
    if coef < 1.0:
        for g in grads:
            g.data = (g.data * coef).astype(g.data.dtype)
    return Tensor(total, dtype=grads[0].dtype, device=dev)


def clip_grad_value_(parameters: Iterable[Tensor] | Tensor, clip_value: float) -> None:
    """Clamp every gradient element into [-clip_value, clip_value]."""
    c = float(clip_value)
    for p in _params(parameters):
        if p.grad is not None:
            p.grad.data = xp_of(p.grad.data).clip(p.grad.data, -c, c)


def parameters_to_vector(parameters: Iterable[Tensor]) -> Tensor:
    """All parameters flattened into one 1-D tensor (a copy, no graph)."""
    ps = _params(parameters)
    xp = xp_of(ps[0].data)
    return Tensor._wrap(xp.concatenate([p.data.reshape(-1) for p in ps]), device=ps[0].device)
