"""Adam and AdamW (decoupled weight decay), with optional AMSGrad.

    >>> opt = AdamW(model.parameters(), lr=1e-3, weight_decay=1e-2)
"""

from __future__ import annotations

import numpy as np

from ..device import backend, xp_of
from ..kernels import reference
from .optimizer import Optimizer


def _contiguous(p) -> None:
    """The kernels update C-contiguous, writeable arrays in place: give p such data (a copy) if it has not."""
    flags = getattr(p.data, "flags", None)
    if flags is not None and not (flags.c_contiguous and flags.writeable):
        p.data = xp_of(p.data).array(p.data, order="C", copy=True)


def _check(name: str, lr, betas, eps, weight_decay) -> None:
    # NOTE: written `not 0.0 <= x` (PyTorch's form) so that nan is refused too: `nan < 0` is False
    if not 0.0 <= lr:
        raise ValueError(f"{name}: invalid learning rate {lr}")
    if not 0.0 <= eps:
        raise ValueError(f"{name}: invalid epsilon {eps}")
    if not (0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
        raise ValueError(f"{name}: invalid betas {betas} (each must be in [0, 1))")
    if not 0.0 <= weight_decay:
        raise ValueError(f"{name}: invalid weight_decay {weight_decay}")


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015) exactly as PyTorch computes it, per parameter at step t:

    ``g = grad + wd p``; ``m = b1 m + (1 - b1) g``; ``v = b2 v + (1 - b2) g^2``;
    ``p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)`` (``v`` -> running max with amsgrad).
    """

    _decoupled = False

    def __init__(self, params, lr: float = 1e-3, betas: tuple = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, amsgrad: bool = False, *, maximize: bool = False) -> None:
        _check(type(self).__name__, lr, betas, eps, weight_decay)
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                        maximize=maximize)
        super().__init__(params, defaults)

    def step(self, closure=None):
        loss = self._closure(closure)
        for group in self.param_groups:
            lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
            wd, amsgrad, maximize = group["weight_decay"], group["amsgrad"], group["maximize"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                _contiguous(p)
                xp = xp_of(p.data)
                g = xp.ascontiguousarray(p.grad.data, dtype=p.dtype)  # the kernels take one layout and dtype
                st = self.state.setdefault(p, {})
                if not st:
                    st["step"] = 0
                    st["exp_avg"] = xp.zeros(p.shape, dtype=p.dtype)
                    st["exp_avg_sq"] = xp.zeros(p.shape, dtype=p.dtype)
                    if amsgrad:
                        st["max_exp_avg_sq"] = xp.zeros(p.shape, dtype=p.dtype)
                st["step"] += 1
                t = st["step"]
                # one fused pass of the device's kernel tier (kernels/reference.py: the NumPy ground truth);
                # NOTE: the compiled tiers are float32/float64 only, half precision takes the NumPy code
                kernels = backend(p.device) if p.dtype in (np.float32, np.float64) else reference
                kernels.adam_step(p.data, g, st["exp_avg"], st["exp_avg_sq"], st.get("max_exp_avg_sq"),
                                  lr=lr, beta1=beta1, beta2=beta2, eps=eps, weight_decay=wd, step=t,
                                  maximize=maximize, decoupled=self._decoupled, amsgrad=amsgrad)
                p._bump_version()  # a graph that saved p's old values must not backward through it
        return loss


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter, 2019): ``p -= lr wd p`` before the Adam
    step; the default ``weight_decay`` is 1e-2 as in PyTorch."""

    _decoupled = True

    def __init__(self, params, lr: float = 1e-3, betas: tuple = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False, *, maximize: bool = False) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize)
