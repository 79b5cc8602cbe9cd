"""Stochastic gradient descent with momentum, dampening, weight decay and Nesterov momentum.

    >>> opt = SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4, nesterov=True)
"""

from __future__ import annotations

from ..device import xp_of
from .optimizer import Optimizer, required


class SGD(Optimizer):
    """PyTorch's SGD update, per parameter:

    ``g = grad + wd p``; ``buf = g`` (first step) else ``buf = momentum buf + (1 - dampening) g``;
    ``g = g + momentum buf`` (nesterov) or ``g = buf``; ``p -= lr g``.
    """

    def __init__(self, params, lr: float = required, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False, *, maximize: bool = False) -> None:
        if lr is not required and not 0.0 <= lr:  # `not 0 <= x` refuses nan too
            raise ValueError(f"SGD: invalid learning rate {lr}")
        if not 0.0 <= momentum:
            raise ValueError(f"SGD: invalid momentum {momentum}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"SGD: invalid weight_decay {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: Nesterov momentum requires a momentum > 0 and zero dampening")
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                        nesterov=nesterov, maximize=maximize)
        super().__init__(params, defaults)

    def step(self, closure=None):
        loss = self._closure(closure)
        for group in self.param_groups:
            lr, momentum, dampening = group["lr"], group["momentum"], group["dampening"]
            wd, nesterov, maximize = group["weight_decay"], group["nesterov"], group["maximize"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                xp = xp_of(p.data)
                g = p.grad.data
                g = -g if maximize else g
                if wd != 0:
                    g = g + wd * p.data
                if momentum != 0:
                    st = self.state.setdefault(p, {})
                    buf = st.get("momentum_buffer")
                    if buf is None:
                        buf = xp.array(g, dtype=p.dtype, copy=True)
                    else:
                        buf *= momentum
                        buf += (1 - dampening) * g
                    st["momentum_buffer"] = buf
                    g = g + momentum * buf if nesterov else buf
                p.data -= (lr * g).astype(p.dtype, copy=False)
                p._bump_version()
        return loss
