"""Weight averaging with PyTorch's ``torch.optim.swa_utils`` API: ``AveragedModel`` (an exponential or
plain running average of a model's weights), ``get_ema_multi_avg_fn`` / ``get_ema_avg_fn`` /
``get_swa_avg_fn`` and ``update_bn`` (recompute batch-norm running statistics with one pass over data).

    >>> from tinygrad_rad.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn, update_bn
    >>> ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.99))
    >>> for x, y in loader:
    ...     loss = F.cross_entropy(model(x), y); opt.zero_grad(); loss.backward(); opt.step()
    ...     ema.update_parameters(model)
    >>> update_bn(loader, ema)            # batch-norm statistics of the averaged weights
    >>> ema.eval(); logits = ema(x)

Why average: the last weights of a noisy optimizer sit somewhere on a wobble around a good point; their
running average sits nearer the middle, so validation metrics move less from epoch to epoch.
Why ``update_bn``: a batch-norm layer's running mean / variance were collected under *earlier* weights
(the exponential average of its ``momentum`` lags), and an averaged model never saw any batch at all;
one pass over training data in train mode, with a cumulative average (``momentum=None``), gives the
statistics the weights actually produce.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable

import numpy as np

from ..autograd import no_grad
from ..nn.modules.module import Module
from ..tensor import Tensor

__all__ = ["AveragedModel", "get_ema_multi_avg_fn", "get_ema_avg_fn", "get_swa_multi_avg_fn",
           "get_swa_avg_fn", "update_bn"]


def get_ema_avg_fn(decay: float = 0.999) -> Callable:
    """``avg_fn(averaged, current, num_averaged) = decay * averaged + (1 - decay) * current``."""
    _check_decay(decay)

    def ema_update(averaged, current, num_averaged):
        return decay * averaged + (1.0 - decay) * current

    return ema_update


def get_swa_avg_fn() -> Callable:
    """``avg_fn(averaged, current, n) = averaged + (current - averaged) / (n + 1)`` (the plain mean)."""

    def swa_update(averaged, current, num_averaged):
        return averaged + (current - averaged) / (float(num_averaged) + 1.0)

    return swa_update


def get_ema_multi_avg_fn(decay: float = 0.999) -> Callable:
    """The EMA applied to lists of arrays in place: ``a <- decay a + (1 - decay) c`` for every pair."""
    _check_decay(decay)

    def ema_update(averaged: list, current: list, num_averaged) -> None:
        for a, c in zip(averaged, current):
            if np.issubdtype(a.dtype, np.floating):
                a *= decay
                a += (1.0 - decay) * c
            else:  # integer buffers: the same formula, truncated (PyTorch's copy_ into an int tensor)
                a[...] = a * decay + c * (1.0 - decay)

    return ema_update


def get_swa_multi_avg_fn() -> Callable:
    """The plain running mean applied to lists of arrays in place."""

    def swa_update(averaged: list, current: list, num_averaged) -> None:
        w = 1.0 / (float(num_averaged) + 1.0)
        for a, c in zip(averaged, current):
            a[...] = a + w * (c - a)

    return swa_update


def _check_decay(decay: float) -> None:
    if not 0.0 <= float(decay) <= 1.0:
        raise ValueError(f"EMA decay must be in [0, 1], got {decay}")


class AveragedModel(Module):
    """A copy of ``model`` whose weights are a running average of ``model``'s weights.

    ``update_parameters(model)`` folds the current weights in: the first call copies them, later calls
    apply ``multi_avg_fn`` (lists of arrays, in place) or ``avg_fn`` (one array at a time); without
    either, the plain mean (SWA). ``use_buffers=True`` averages the buffers (batch-norm running
    statistics) too; otherwise the buffers are those of the copy until :func:`update_bn` sets them.
    ``n_averaged`` counts the updates (a buffer, so it is saved in ``state_dict``).

        >>> ema = AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(0.9))
        >>> ema.update_parameters(net); ema.n_averaged.item()
        1
    """

    def __init__(self, model: Module, device=None, avg_fn: Callable | None = None,
                 multi_avg_fn: Callable | None = None, use_buffers: bool = False) -> None:
        super().__init__()
        if avg_fn is not None and multi_avg_fn is not None:
            raise ValueError("AveragedModel: give avg_fn or multi_avg_fn, not both")
        self.module = copy.deepcopy(model)
        if device is not None:
            self.module = self.module.to(device)
        for p in self.module.parameters():
            p.requires_grad = False  # NOTE: the average is never trained itself
        self.register_buffer("n_averaged", Tensor(np.array(0, dtype=np.int64)))
        self.avg_fn, self.multi_avg_fn, self.use_buffers = avg_fn, multi_avg_fn, bool(use_buffers)

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)

    def _pairs(self, model: Module) -> tuple[list, list]:
        mine = list(self.module.parameters())
        theirs = list(model.parameters())
        if self.use_buffers:
            mine += list(self.module.buffers())
            theirs += list(model.buffers())
        if len(mine) != len(theirs):
            raise ValueError(f"AveragedModel.update_parameters: the model has {len(theirs)} parameters / "
                             f"buffers, the average {len(mine)}; pass the model this average was made from")
        return mine, theirs

    def update_parameters(self, model: Module) -> None:
        """Fold ``model``'s current weights into the average (the first call copies them). As in
        PyTorch, integer buffers (``num_batches_tracked``) go through the same formula, truncated, and
        without ``use_buffers`` the copy's buffers are kept equal to the model's."""
        mine, theirs = self._pairs(model)
        for a, c in zip(mine, theirs):
            if a.shape != c.shape:
                raise ValueError(f"AveragedModel.update_parameters: shape {c.shape} does not match {a.shape}")
        n = int(self.n_averaged.item())
        if n == 0:
            for a, c in zip(mine, theirs):
                a.data[...] = c.data
        elif self.avg_fn is not None:
            for a, c in zip(mine, theirs):
                a.data[...] = self.avg_fn(a.data, c.data, n)
        else:
            fn = self.multi_avg_fn or get_swa_multi_avg_fn()
            for group in _by_dtype(mine, theirs):  # NOTE: PyTorch groups by dtype too (foreach kernels)
                fn([a.data for a, _ in group], [c.data for _, c in group], n)
        if not self.use_buffers:
            for a, c in zip(self.module.buffers(), model.buffers()):
                a.data[...] = c.data
        for a in mine:
            a._bump_version()
        self.n_averaged.data[...] = n + 1


def _by_dtype(mine: list, theirs: list) -> list:
    groups: dict = {}
    for a, c in zip(mine, theirs):
        groups.setdefault(np.dtype(a.dtype), []).append((a, c))
    return list(groups.values())


def _batch_norms(model: Module) -> list:
    return [m for m in model.modules() if hasattr(m, "running_mean") and hasattr(m, "momentum")
            and getattr(m, "running_mean", None) is not None]


def update_bn(loader: Iterable, model: Module, device=None) -> None:
    """Recompute every batch-norm layer's running statistics with one pass over ``loader`` (train
    mode, no graph, cumulative average); the model's mode and momenta are restored afterwards.

    ``loader`` yields input tensors or arrays, or ``(input, ...)`` tuples / lists (the first item is fed).

        >>> update_bn([tr.randn(16, 1, 28, 28) for _ in range(4)], net)
    """
    norms = _batch_norms(model)
    if not norms:
        return
    momenta = {}
    for m in norms:
        m.running_mean.data[...] = 0.0
        m.running_var.data[...] = 1.0
        if getattr(m, "num_batches_tracked", None) is not None:
            m.num_batches_tracked.data[...] = 0
        momenta[m] = m.momentum
        m.momentum = None  # cumulative moving average over the pass
    was_training = model.training
    model.train()
    try:
        with no_grad():
            for batch in loader:
                x = batch[0] if isinstance(batch, (tuple, list)) else batch
                if not isinstance(x, Tensor):
                    x = Tensor(np.asarray(x))
                if device is not None:
                    x = x.to(device)
                model(x)
    finally:
        for m, mom in momenta.items():
            m.momentum = mom
            m.running_mean._bump_version()
            m.running_var._bump_version()
        model.train(was_training)
