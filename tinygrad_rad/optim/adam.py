"""Adam and AdamW (decoupled weight decay), with optional AMSGrad.

    >>> opt = AdamW(model.parameters(), lr=1e-3, weight_decay=1e-2)
"""

from __future__ import annotations

import math

import numpy as np

from ..device import xp_of
from .optimizer import Optimizer

# the fused CPU kernel for NumPy parameters (kernels/cpu.adam_step); False: the NumPy ufunc code below
FUSED = True


def _cpu():
    from ..kernels import cpu  # Numba: compiled on first use

    return cpu


def _fused_ok(xp, p, g, st, amsgrad) -> bool:
    """The fused CPU kernel applies to NumPy float32/float64 parameters with state of the same layout."""
    arrays = [p, st["exp_avg"], st["exp_avg_sq"]] + ([st["max_exp_avg_sq"]] if amsgrad else [])
    return (FUSED and xp is np and p.dtype in (np.float32, np.float64)
            and g.dtype == p.dtype and g.shape == p.shape
            and all(a.dtype == p.dtype and a.shape == p.shape and a.flags.c_contiguous for a in arrays)
            and p.flags.writeable)


def _check(name: str, lr, betas, eps, weight_decay) -> None:
    if lr < 0.0:
        raise ValueError(f"{name}: invalid learning rate {lr}")
    if eps < 0.0:
        raise ValueError(f"{name}: invalid epsilon {eps}")
    if not (0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
        raise ValueError(f"{name}: invalid betas {betas} (each must be in [0, 1))")
    if weight_decay < 0.0:
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
                xp = xp_of(p.data)
                g = p.grad.data
                st = self.state.setdefault(p, {})
                if not st:
                    st["step"] = 0
                    st["exp_avg"] = xp.zeros_like(p.data)
                    st["exp_avg_sq"] = xp.zeros_like(p.data)
                    if amsgrad:
                        st["max_exp_avg_sq"] = xp.zeros_like(p.data)
                st["step"] += 1
                t = st["step"]
                if _fused_ok(xp, p.data, g, st, amsgrad):
                    # one parallel Numba pass instead of ~13 NumPy passes (same operations, same bits)
                    _cpu().adam_step(p.data, np.ascontiguousarray(g), st["exp_avg"], st["exp_avg_sq"],
                                     st.get("max_exp_avg_sq"), lr=lr, beta1=beta1, beta2=beta2, eps=eps,
                                     weight_decay=wd, step=t, maximize=maximize, decoupled=self._decoupled,
                                     amsgrad=amsgrad)
                    continue
                g = -g if maximize else g
                if wd != 0:
                    if self._decoupled:
                        p.data *= 1 - lr * wd  # AdamW: p -= lr wd p, separate from the gradient
                    else:
                        g = g + wd * p.data
                m, v = st["exp_avg"], st["exp_avg_sq"]
                # NOTE: one scratch array and in-place ufuncs (out=) instead of ~8 temporaries per
                # parameter; the float ops and their order are the same as the plain expressions
                # m += (1 - b1) (g - m); v = b2 v + ((1 - b2) g) g; p -= (lr / bc1) (m / denom)
                tmp = xp.subtract(g, m, out=self._scratch(xp, m))
                tmp *= 1 - beta1
                m += tmp  # = b1 m + (1 - b1) g  (PyTorch's lerp)
                v *= beta2
                xp.multiply(g, 1 - beta2, out=tmp)
                tmp *= g
                v += tmp
                bc1 = 1 - beta1**t
                bc2_sqrt = math.sqrt(1 - beta2**t)
                if amsgrad:
                    vmax = st["max_exp_avg_sq"]
                    xp.maximum(vmax, v, out=vmax)
                    xp.sqrt(vmax, out=tmp)
                else:
                    xp.sqrt(v, out=tmp)
                tmp /= bc2_sqrt
                tmp += eps  # denom
                xp.divide(m, tmp, out=tmp)
                tmp *= lr / bc1
                p.data -= tmp
        return loss

    def _scratch(self, xp, like):
        """A scratch array shaped like ``like``: one flat buffer, grown to the largest parameter and kept."""
        buf = getattr(self, "_scratch_buf", None)
        if buf is None or buf.size < like.size or buf.dtype != like.dtype or xp_of(buf) is not xp:
            buf = self._scratch_buf = xp.empty(like.size, dtype=like.dtype)
        return buf[: like.size].reshape(like.shape)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter, 2019): ``p -= lr wd p`` before the Adam
    step; the default ``weight_decay`` is 1e-2 as in PyTorch."""

    _decoupled = True

    def __init__(self, params, lr: float = 1e-3, betas: tuple = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False, *, maximize: bool = False) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize)
