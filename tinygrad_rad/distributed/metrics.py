"""Reducing losses and metrics across ranks (every rank gets the result; rank 0 prints/writes it).

    >>> loss_sum, n = reduce_sums([epoch_loss_sum, seen])       # sums over all ranks
    >>> mean_loss = reduce_scalar(batch_loss, "mean")
    >>> probs_all = gather_array(probs)                          # (N_all, C): every rank's rows, rank order
    >>> auc = roc_auc(gather_array(labels), probs_all)           # metrics on the whole validation set

Use sums and counts (``reduce_sums``) for epoch averages: a mean of per-rank means is only right
when every rank saw the same number of samples. ``gather_array`` concatenates rows in rank order;
with a :class:`~tinygrad_rad.distributed.DistributedSampler` rank ``r`` holds samples ``r, r+W, ...``
of the epoch order, and any padding it added appears twice (compute exact metrics on an unpadded
shard, or drop the duplicates with ``gather_array(..., total=len(dataset))``).
"""

from __future__ import annotations

import numpy as np

from .process_group import ProcessGroup, group

__all__ = ["reduce_scalar", "reduce_sums", "reduce_dict", "gather_array"]


def _pg(pg: ProcessGroup | None) -> ProcessGroup | None:
    return pg if pg is not None else group()


def _host(v):
    if hasattr(v, "numpy") and hasattr(v, "_wrap"):
        return v.numpy()
    if type(v).__module__.startswith("cupy"):
        return v.get()
    return np.asarray(v)


def reduce_scalar(value, op: str = "mean", group: ProcessGroup | None = None) -> float:
    """A float (or 1-element Tensor/array) reduced over ranks: ``"mean"``, ``"sum"``, ``"max"``, ``"min"``."""
    g = _pg(group)
    a = np.asarray(_host(value), dtype=np.float64).reshape(-1)
    if a.size != 1:
        raise ValueError(f"reduce_scalar needs one number, got {a.size} values")
    v = a.copy()
    if g is None or g.world_size == 1:
        return float(v[0])
    return float(g.all_reduce_array(v, "avg" if op == "mean" else op, f"reduce_scalar({op})")[0])


def reduce_sums(values, group: ProcessGroup | None = None) -> list[float]:
    """Element-wise sums over ranks of a list of numbers (one collective for all of them), in float64."""
    g = _pg(group)
    v = np.array([float(x) for x in values], dtype=np.float64)
    if g is None or g.world_size == 1 or v.size == 0:
        return v.tolist()
    return g.all_reduce_array(v, "sum", "reduce_sums").tolist()


def reduce_dict(metrics: dict, op: str = "mean", group: ProcessGroup | None = None) -> dict:
    """``{name: number}`` reduced over ranks key by key (the same keys on every rank, any order)."""
    keys = sorted(metrics)
    g = _pg(group)
    v = np.array([float(metrics[k]) for k in keys], dtype=np.float64)
    if g is not None and g.world_size > 1 and v.size:
        v = g.all_reduce_array(v, "avg" if op == "mean" else op, f"reduce_dict({op})")
    return {k: float(x) for k, x in zip(keys, v)}


def gather_array(arr, group: ProcessGroup | None = None, total: int | None = None,
                 interleave: bool = False) -> np.ndarray:
    """Every rank's rows of ``arr`` (NumPy / CuPy / Tensor, any number of rows per rank), concatenated.

    ``interleave=True`` restores the epoch order of a :class:`DistributedSampler` shard (row ``i`` of
    rank ``r`` is epoch position ``r + W*i``; needs equal row counts); ``total`` then keeps the first
    ``total`` rows (drops the sampler's padding).
    """
    a = np.ascontiguousarray(_host(arr))
    g = _pg(group)
    if g is None or g.world_size == 1:
        return a[:total] if total is not None else a
    W = g.world_size
    shape = np.array([a.shape[0]] + [0] * 7, dtype=np.int64)
    if a.ndim > 8:
        raise ValueError(f"gather_array: at most 8 dimensions, got shape {a.shape}")
    shape[1 : a.ndim] = a.shape[1:]
    shapes = np.zeros((W, 8), dtype=np.int64)
    g.start_all_gather(shape, shapes, "gather_array (shapes)").wait()
    if len({tuple(s[1 : a.ndim]) for s in shapes}) != 1:
        raise ValueError(f"gather_array: ranks hold rows of different shapes: {shapes[:, 1:a.ndim].tolist()}")
    rows = shapes[:, 0]
    width = int(rows.max())
    pad = np.zeros((width,) + a.shape[1:], dtype=a.dtype)
    pad[: a.shape[0]] = a
    out = np.empty((W,) + pad.shape, dtype=a.dtype)
    g.start_all_gather(pad, out, f"gather_array of {a.dtype} rows").wait()
    if interleave:
        if len(set(rows.tolist())) != 1:
            raise ValueError(f"gather_array(interleave=True) needs equal row counts, got {rows.tolist()}")
        res = np.swapaxes(out, 0, 1).reshape((W * width,) + a.shape[1:])
    else:
        res = np.concatenate([out[r, : int(rows[r])] for r in range(W)])
    return res[:total] if total is not None else res

