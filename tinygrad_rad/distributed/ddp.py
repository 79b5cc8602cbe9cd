"""``DistributedDataParallel``: every rank trains a replica; gradients are averaged during backward.

    >>> dist.init_process_group()
    >>> model = DistributedDataParallel(SmallCNN())     # rank 0's weights and buffers are broadcast
    >>> loss = F.cross_entropy(model(x), y)              # x, y: this rank's share of the global batch
    >>> loss.backward()                                  # gradients averaged over ranks in buckets
    >>> model.finish_gradient_synchronization()          # no-op unless some parameter got no gradient
    >>> optimizer.step()

How it works (the same design as PyTorch's reducer):

* Parameters are grouped into buckets of about ``bucket_cap_mb`` MB, in reverse registration order
  (roughly the order backward produces their gradients), one flat array per bucket.
* A ``register_post_accumulate_grad_hook`` on each parameter copies its finished ``.grad`` into its
  bucket. When every gradient of a bucket is in, the bucket's all-reduce is *started* (``Iallreduce``
  on CPU, NCCL on GPUs) and backward goes on computing the next layers' gradients while it runs;
  each later hook also lets MPI progress the buckets in flight. Buckets start in a fixed order
  (bucket ``k`` only after bucket ``k-1``), so every rank issues the same sequence of collectives.
* When the last bucket has started (all parameters have their gradient, i.e. at the end of backward)
  the hook waits for all of them, divides by the world size and points each ``.grad`` at its slice
  of the bucket: ``loss.backward()`` returns with averaged gradients, as in PyTorch.
* Parameters that get no gradient in an iteration keep their bucket from completing. Either pass
  ``find_unused_parameters=True`` (forward walks the graph and marks them ready with a zero
  gradient, as PyTorch does), or call :meth:`finish_gradient_synchronization` before
  ``optimizer.step()`` (the shared training loop always calls it; it is a no-op when backward already
  finished the synchronisation). The next forward raises if neither happened.

``no_sync()`` skips the communication (gradient accumulation); the next synchronised backward
all-reduces the accumulated gradients. In a 1-process world DDP is a plain pass-through.
"""

from __future__ import annotations

import time
from contextlib import contextmanager

import numpy as np

from ..autograd import is_grad_enabled, toposort
from ..device import xp_for, xp_of
from ..nn import Module
from ..tensor import Tensor
from .process_group import DistributedError, ProcessGroup, group

__all__ = ["DistributedDataParallel"]


class _Bucket:
    """A flat array holding the gradients of a few parameters (same device and dtype)."""

    def __init__(self, index: int, params: list, xp, dtype):
        self.index, self.params = index, params
        self.sizes = [p.numel() for p in params]
        self.offsets = list(np.cumsum([0] + self.sizes[:-1]))
        self.numel = int(sum(self.sizes))
        self.buffer = xp.zeros(self.numel, dtype=dtype)
        self.nbytes = self.numel * np.dtype(dtype).itemsize
        self.reset()

    def reset(self) -> None:
        self.ready = [False] * len(self.params)
        self.n_ready = 0
        self.work = None

    @property
    def complete(self) -> bool:
        return self.n_ready == len(self.params)

    def put(self, j: int, grad) -> None:
        """Copy parameter j's gradient (or zeros when None) into the flat buffer."""
        o, n = self.offsets[j], self.sizes[j]
        if grad is None:
            self.buffer[o : o + n] = 0
        else:
            self.buffer[o : o + n] = grad.reshape(-1)
        if not self.ready[j]:
            self.ready[j] = True
            self.n_ready += 1

    def view(self, j: int):
        o, n = self.offsets[j], self.sizes[j]
        return self.buffer[o : o + n].reshape(self.params[j].shape)


class _Reducer:
    """Bucketed, overlapped gradient averaging (the engine behind DistributedDataParallel)."""

    def __init__(self, params: list, pg: ProcessGroup, bucket_cap_mb: float, first_bucket_mb: float):
        self.params, self.group = params, pg
        self.buckets = _make_buckets(params, bucket_cap_mb, first_bucket_mb)
        self.where = {}
        for b in self.buckets:
            for j, p in enumerate(b.params):
                self.where[id(p)] = (b, j)
        self.state = "idle"  # idle -> armed (forward ran) -> reducing (a hook fired) -> done
        self.sync = True  # False inside DistributedDataParallel.no_sync()
        self.next_launch = 0
        self.stats = {"steps": 0, "buckets": len(self.buckets),
                      "bytes_per_step": int(sum(b.nbytes for b in self.buckets)),
                      "wait_s": 0.0, "hook_s": 0.0, "last_wait_s": 0.0}

    # ---------------------------------------------------------------------------- iteration
    def prepare(self, unused: list | None = None) -> None:
        if self.state == "reducing":
            missing = [i for i, p in enumerate(self.params) if not self._is_ready(p)]
            raise DistributedError(
                "DistributedDataParallel: the previous iteration's gradient synchronisation did not finish: "
                f"{len(missing)} parameter(s) (indices {missing[:8]}{'...' if len(missing) > 8 else ''} of "
                "module.parameters()) got no gradient. Pass find_unused_parameters=True, or call "
                "model.finish_gradient_synchronization() after backward (before optimizer.step())."
            )
        for b in self.buckets:
            b.reset()
        self.next_launch = 0
        self.state = "armed"
        for p in unused or ():
            b, j = self.where[id(p)]
            b.put(j, None)
        if unused:
            self._launch_ready()

    def _is_ready(self, p) -> bool:
        b, j = self.where[id(p)]
        return b.ready[j]

    def on_grad(self, p) -> None:
        """Post-accumulate hook: parameter ``p``'s ``.grad`` is final for this backward."""
        if not self.sync:
            return
        t0 = time.perf_counter()
        if self.state in ("idle", "done"):  # backward without a forward through DDP: start afresh
            self.prepare()
        self.state = "reducing"
        b, j = self.where[id(p)]
        if b.ready[j]:
            raise DistributedError(
                "DistributedDataParallel: a parameter received its gradient twice in one iteration (a "
                "second backward through the same forward?); use no_sync() for all but the last backward"
            )
        b.put(j, p.grad.data if p.grad is not None else None)
        if b.complete:
            self._launch_ready()
        self.group.progress([x.work for x in self.buckets[: self.next_launch] if x.work is not None])
        self.stats["hook_s"] += time.perf_counter() - t0
        if self.next_launch == len(self.buckets):
            self._wait_and_store()

    def _launch_ready(self) -> None:
        # NOTE: buckets start strictly in order so that every rank issues the same collectives
        while self.next_launch < len(self.buckets) and self.buckets[self.next_launch].complete:
            b = self.buckets[self.next_launch]
            what = f"DDP gradient all-reduce (bucket {b.index}, {b.nbytes / 2**20:.2f} MB)"
            b.work = self.group.start_all_reduce(b.buffer, "sum", what)
            self.next_launch += 1

    def _wait_and_store(self) -> None:
        t0 = time.perf_counter()
        self.group._wait([b.work for b in self.buckets])
        dt = time.perf_counter() - t0
        self.stats["wait_s"] += dt
        self.stats["last_wait_s"] = dt
        self.stats["steps"] += 1
        inv = 1.0 / self.group.world_size
        for b in self.buckets:
            b.buffer *= b.buffer.dtype.type(inv)
            for j, p in enumerate(b.params):
                p.grad = Tensor._wrap(b.view(j), device=p.device)
        self.state = "done"

    def finish(self) -> None:
        """Complete the iteration: parameters without a gradient count as zeros; wait for all buckets."""
        if self.state != "reducing":
            return
        for b in self.buckets:
            for j, p in enumerate(b.params):
                if not b.ready[j]:
                    b.put(j, p.grad.data if p.grad is not None else None)
        self._launch_ready()
        self._wait_and_store()


def _make_buckets(params: list, cap_mb: float, first_mb: float) -> list:
    """Reverse registration order, split by (device, dtype) and by size (first bucket smaller)."""
    buckets, open_ = [], {}
    for p in reversed(params):
        key = (p.device, p.dtype.str)
        cur = open_.get(key)
        cap = (first_mb if buckets and cur is buckets[0] else cap_mb) * 2**20  # the first fills first
        size = p.numel() * p.dtype.itemsize
        if cur is None or (cur["bytes"] and cur["bytes"] + size > cap):
            cur = {"params": [], "bytes": 0, "device": p.device, "dtype": p.dtype}
            open_[key] = cur
            buckets.append(cur)
        cur["params"].append(p)
        cur["bytes"] += size
    return [_Bucket(i, b["params"], xp_for(b["device"]), b["dtype"]) for i, b in enumerate(buckets)]


class DistributedDataParallel(Module):
    """Data-parallel wrapper (PyTorch's name and main arguments).

    ``DistributedDataParallel(module, device_ids=None, output_device=None, broadcast_buffers=True,
    process_group=None, bucket_cap_mb=4.0, find_unused_parameters=False, init_sync=True)``.

    * construction broadcasts rank 0's parameters and buffers (``init_sync``), so every replica
      starts equal;
    * ``forward`` broadcasts rank 0's buffers (BN running statistics) when ``broadcast_buffers``
      and training, then calls ``module``;
    * backward averages the gradients over ranks (see the module docstring).

    ``bucket_cap_mb`` defaults to 4 MB (PyTorch: 25 MB): the models here are small, and more buckets
    means more overlap. ``device_ids`` / ``output_device`` are accepted for PyTorch compatibility
    (one device per process: the module's). The wrapped model is ``.module`` (save its
    ``state_dict()``: the wrapper's own keys carry the ``module.`` prefix, as in PyTorch).
    """

    def __init__(self, module: Module, device_ids=None, output_device=None, dim: int = 0,
                 broadcast_buffers: bool = True, process_group: ProcessGroup | None = None,
                 bucket_cap_mb: float = 4.0, find_unused_parameters: bool = False,
                 gradient_as_bucket_view: bool = True, static_graph: bool = False, init_sync: bool = True):
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"DistributedDataParallel wraps a Module, got {type(module).__name__}")
        if float(bucket_cap_mb) <= 0:
            raise ValueError(f"bucket_cap_mb must be > 0, got {bucket_cap_mb}")
        if dim != 0:
            raise ValueError("DistributedDataParallel splits no batch: each rank feeds its own (dim=0)")
        self.module = module
        pg = process_group if process_group is not None else group(required=True)
        self.process_group = pg
        self.broadcast_buffers = bool(broadcast_buffers)
        self.find_unused_parameters = bool(find_unused_parameters)
        self.bucket_cap_mb = float(bucket_cap_mb)
        self.require_backward_grad_sync = True
        self._params = [p for p in module.parameters() if p.requires_grad]
        self._hooks: list = []
        self._reducer = None
        if pg.world_size == 1:
            return
        # NOTE: gradients travel on a duplicate communicator so that they never interleave with
        # the user's collectives (SyncBatchNorm, metrics) in the message order
        self._comm = pg.dup()
        if init_sync:
            states = list(module.parameters()) + [b for _, b in module.named_buffers()]
            self._broadcast(states, "initial parameters and buffers")
        self._reducer = _Reducer(self._params, self._comm, self.bucket_cap_mb, min(1.0, self.bucket_cap_mb))
        register = getattr(Tensor, "register_post_accumulate_grad_hook", None)
        if register is None:  # pragma: no cover - an engine without the hook: all-reduce after backward
            return
        for p in self._params:
            self._hooks.append(p.register_post_accumulate_grad_hook(self._reducer.on_grad))

    # ------------------------------------------------------------------------------ forward
    def forward(self, *args, **kwargs):
        red = self._reducer
        # NOTE: the wrapped module's mode decides (a loop may call model.train() on the inner module)
        if red is not None and self.module.training:
            if self.broadcast_buffers:
                bufs = [b for _, b in self.module.named_buffers()]
                if bufs:
                    self._broadcast(bufs, "buffers (broadcast_buffers=True)")
            if is_grad_enabled() and self.require_backward_grad_sync:
                out = self.module(*args, **kwargs)
                red.prepare(self._unused(out) if self.find_unused_parameters else None)
                return out
        return self.module(*args, **kwargs)

    def _unused(self, out) -> list:
        roots = [o for o in (out if isinstance(out, (tuple, list)) else [out]) if isinstance(o, Tensor)]
        seen = set()
        for r in roots:
            if r.requires_grad:
                seen.update(id(t) for t in toposort(r))
        return [p for p in self._params if id(p) not in seen]

    def _broadcast(self, tensors: list, what: str) -> None:
        """Rank 0's values into every rank's tensors: one coalesced broadcast per (device, dtype)."""
        groups: dict = {}
        for t in tensors:
            groups.setdefault((t.device, t.dtype.str), []).append(t)
        works = []
        for ts in groups.values():
            xp = xp_of(ts[0].data)
            flat = xp.concatenate([xp.asarray(t.data).reshape(-1) for t in ts]) if ts else None
            works.append((ts, flat, self._comm.start_broadcast(flat, 0, f"DDP broadcast of {what}")))
        for ts, flat, w in works:
            w.wait()
            o = 0
            for t in ts:
                n = int(t.data.size)
                t.data = flat[o : o + n].reshape(t.data.shape).copy()
                o += n

    # ------------------------------------------------------------------------ synchronisation
    def finish_gradient_synchronization(self) -> None:
        """Make sure every gradient is averaged (call after backward, before ``optimizer.step()``).

        A no-op when backward already finished it (every parameter got a gradient) or in a 1-process
        world; otherwise parameters without a gradient count as zeros and the remaining buckets are
        reduced now.
        """
        red = self._reducer
        if red is None or not self.require_backward_grad_sync:
            return
        if not self._hooks:  # engine without post-accumulate hooks: everything happens here
            if red.state == "armed":
                red.state = "reducing"
        red.finish()

    @contextmanager
    def no_sync(self):
        """Accumulate gradients locally (no communication) inside the block, as PyTorch's ``no_sync``."""
        prev = self.require_backward_grad_sync
        self.require_backward_grad_sync = False
        red = self._reducer
        if red is not None:
            red.state, red.sync = "idle", False
        try:
            yield
        finally:
            self.require_backward_grad_sync = prev
            if red is not None:
                red.sync = prev

    def comm_stats(self) -> dict:
        """``steps``, ``buckets``, ``bytes_per_step``, ``wait_s`` (time blocked waiting for all-reduces
        at the end of backward, summed), ``hook_s`` (time in the hooks: copies + starting buckets)."""
        if self._reducer is None:
            return {"steps": 0, "buckets": 0, "bytes_per_step": 0, "wait_s": 0.0, "hook_s": 0.0,
                    "last_wait_s": 0.0}
        return dict(self._reducer.stats)

    def remove_hooks(self) -> None:
        """Unregister the gradient hooks (the wrapper then no longer synchronises)."""
        for h in self._hooks:
            h.remove()
        self._hooks = []

    def extra_repr(self) -> str:
        pg = self.process_group
        n = 0 if self._reducer is None else len(self._reducer.buckets)
        return f"world_size={pg.world_size}, buckets={n}, bucket_cap_mb={self.bucket_cap_mb:g}"
