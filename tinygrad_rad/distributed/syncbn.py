"""``SyncBatchNorm``: batch norm whose statistics are those of the global batch (all ranks together).

Per-process batch norm (the default, as in PyTorch) normalises each rank's batch with its own mean
and variance, so a 2-process run is not the 1-process run with the doubled batch. SyncBatchNorm
all-reduces the statistics instead:

    >>> model = SyncBatchNorm.convert_sync_batchnorm(model)   # every BatchNorm1d/2d (/3d) replaced
    >>> model = DistributedDataParallel(model)

Forward (per channel, M = elements over all ranks): ``mean = allreduce(sum x) / M``, then
``var = allreduce(sum (x - mean)^2) / M`` (two passes, in float64), ``y = (x - mean) invstd w + b``.
Backward: ``dx = w invstd / M (M dy - allreduce(sum dy) - xhat allreduce(sum dy xhat))``, the
1-process formula on the concatenated batch; ``dw = sum dy xhat`` and ``db = sum dy`` stay local
(DDP averages them), which makes the averaged gradients those of the global-batch mean loss.
Running statistics are updated from the global mean and unbiased global variance, so they are the
same on every rank. In eval mode (or a 1-process world) it is plain batch norm.
"""

from __future__ import annotations

import numpy as np

from .. import nn
from ..autograd import Function
from ..device import xp_of
from .process_group import ProcessGroup, group

__all__ = ["SyncBatchNorm"]


def _axes_shape(x):
    return (0,) + tuple(range(2, x.ndim)), (1, x.shape[1]) + (1,) * (x.ndim - 2)


def _global_stats(x, pg: ProcessGroup):
    """Per-channel mean and biased variance over every rank's x (float64), the count M, and x - mean."""
    xp = xp_of(x)
    axes, shp = _axes_shape(x)
    c = x.shape[1]
    stats = xp.zeros(c + 1, dtype=np.float64)
    stats[:c] = x.sum(axis=axes, dtype=np.float64)
    stats[c] = x.size // c
    stats = pg.all_reduce_array(stats, "sum", "SyncBatchNorm forward (sums)")
    m = float(stats[c])
    mean = stats[:c] / m
    d = x - mean.astype(x.dtype).reshape(shp)
    # NOTE: a second pass over x - mean (not E[x^2] - mean^2, which cancels badly when |mean| >> std)
    sq = pg.all_reduce_array((d * d).sum(axis=axes, dtype=np.float64), "sum", "SyncBatchNorm forward (var)")
    return mean, sq / m, m, d


class SyncBatchNormFunction(Function):
    """Batch norm over the union of every rank's batch (see the module docstring for the math)."""

    def forward(self, x, weight=None, bias=None, *, eps: float, pg: ProcessGroup):
        xp = xp_of(x)
        _, shp = _axes_shape(x)
        mean, var, m, d = _global_stats(x, pg)
        invstd = (1.0 / xp.sqrt(var + eps)).astype(x.dtype)
        xhat = d * invstd.reshape(shp)
        self.xhat, self.invstd, self.weight, self.m, self.pg = xhat, invstd, weight, m, pg
        self.mean, self.var = mean, var  # float64, for the running statistics
        if weight is None:
            return xhat
        return xhat * weight.reshape(shp) + bias.reshape(shp)

    def backward(self, gy):
        xp = xp_of(gy)
        xhat, invstd, w, m = self.xhat, self.invstd, self.weight, self.m
        axes, shp = _axes_shape(gy)
        c = gy.shape[1]
        gb = gy.sum(axis=axes)
        gw = (gy * xhat).sum(axis=axes)
        both = xp.concatenate([gb.astype(np.float64), gw.astype(np.float64)])
        both = self.pg.all_reduce_array(both, "sum", "SyncBatchNorm backward")
        sum_dy, sum_dy_xhat = both[:c].astype(gy.dtype), both[c:].astype(gy.dtype)
        scale = invstd if w is None else invstd * w
        gx = (scale / gy.dtype.type(m)).reshape(shp) * (
            gy.dtype.type(m) * gy - sum_dy.reshape(shp) - xhat * sum_dy_xhat.reshape(shp))
        gx = gx.astype(gy.dtype, copy=False)
        if w is None:
            return (gx,)
        return gx, gw.astype(w.dtype, copy=False), gb.astype(w.dtype, copy=False)


class SyncBatchNorm(nn.BatchNorm2d):
    """Batch norm with statistics over all ranks (PyTorch's name). Inputs (N, C), (N, C, L),
    (N, C, H, W) or (N, C, D, H, W).

    ``SyncBatchNorm(num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True,
    process_group=None)``; usually made by :meth:`convert_sync_batchnorm`.
    """

    _expected_dims = (2, 3, 4, 5)

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True,
                 process_group: ProcessGroup | None = None, device=None, dtype=None) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device=device, dtype=dtype)
        self.process_group = process_group

    def _group(self) -> ProcessGroup | None:
        return self.process_group if self.process_group is not None else group()

    def forward(self, input):
        pg = self._group()
        if not self.training or pg is None or pg.world_size == 1:
            return super().forward(input)
        if input.ndim not in self._expected_dims:
            raise ValueError(f"SyncBatchNorm: expected a 2-D to 5-D input (N, C, ...), got {input.shape}")
        if input.shape[1] != self.num_features:
            raise ValueError(f"SyncBatchNorm: expected {self.num_features} channels, got input of shape "
                             f"{input.shape}")
        args = (input,) if self.weight is None else (input, self.weight, self.bias)
        out = SyncBatchNormFunction.apply(*args, eps=self.eps, pg=pg)
        if self.track_running_stats:
            ctx = out._ctx
            if ctx is not None:
                mean, var, m = ctx.mean, ctx.var, ctx.m
            else:  # under no_grad the graph (and the op's statistics) is not kept: recompute them
                mean, var, m, _ = _global_stats(input.data, pg)
            nbt = self.num_batches_tracked.data
            self.num_batches_tracked.data = xp_of(nbt).asarray(nbt + 1, dtype=nbt.dtype)
            mom = (1.0 / float(self.num_batches_tracked.item()) if self.momentum is None
                   else float(self.momentum))
            rm, rv = self.running_mean, self.running_var
            rm.data = ((1 - mom) * rm.data + mom * mean).astype(rm.dtype)
            rv.data = ((1 - mom) * rv.data + mom * var * (m / max(m - 1, 1))).astype(rv.dtype)
        return out


    @classmethod
    def convert_sync_batchnorm(cls, module, process_group: ProcessGroup | None = None):
        """Replace every BatchNorm1d/2d/3d in ``module`` by a SyncBatchNorm sharing its parameters and
        buffers (the same Parameter objects: an optimizer made before still works). Returns the
        module (a new SyncBatchNorm when ``module`` itself is a batch norm)."""
        bn_types = tuple(t for t in (nn.BatchNorm1d, nn.BatchNorm2d, getattr(nn, "BatchNorm3d", None)) if t)
        if isinstance(module, bn_types) and not isinstance(module, cls):
            new = cls(module.num_features, module.eps, module.momentum, module.affine,
                      module.track_running_stats, process_group)
            for name in ("weight", "bias"):
                new._parameters[name] = module._parameters.get(name)
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                new._buffers[name] = module._buffers.get(name)
            object.__setattr__(new, "training", module.training)
            return new
        # NOTE: children are replaced in place in _modules so their order (and the order of
        # parameters(), which optimizers and checkpoints rely on) does not change
        for name, child in list(module._modules.items()):
            if child is not None:
                module._modules[name] = cls.convert_sync_batchnorm(child, process_group)
        return module
