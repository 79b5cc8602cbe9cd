"""``DistributedSampler``: each rank its own seeded shard of every epoch (PyTorch's name and arguments),
and ``DistributedDataLoader``: a :class:`~tinygrad_rad.data.DataLoader` that reads only its shard.

    >>> sampler = DistributedSampler(train_set, shuffle=True, seed=0)       # ranks from the process group
    >>> loader = DistributedDataLoader(train_set, batch_size=64, sampler=sampler)
    >>> for epoch in range(epochs):
    ...     for x, y in loader:     # 64 samples on each rank; the epoch order is set by the loader
    ...         ...

The order. Epoch ``e`` is the permutation ``p = default_rng([seed, e]).permutation(n)`` -- exactly
what a 1-process ``DataLoader(shuffle=True, seed=seed)`` uses (``arange(n)`` without shuffling).
When ``n`` is not a multiple of the world size ``W``, ``p`` is padded with its own first entries
(``drop_last=False``, every rank gets ``ceil(n / W)`` samples) or its tail is dropped
(``drop_last=True``, ``floor(n / W)``). Rank ``r`` takes positions ``r, r + W, r + 2W, ...``.

The equality that holds. With per-rank batch size ``B`` and ``n`` a multiple of ``W``, batch ``b``
of rank ``r`` is positions ``b*B*W + r + W*j`` (``j < B``) of ``p``, so the union over the ranks of
their batch ``b`` is *the same set of samples* as batch ``b`` of the 1-process loader with batch
size ``B*W`` and the same seed -- for every batch of every epoch, the last partial one included
(with ``drop_last`` on both, both drop the same tail). Only the order of the samples inside a
global batch differs, which a mean loss does not see. Random augmentation is drawn per rank
(``default_rng([seed, e, b, 1, r])``), so augmented pixels are not those of the 1-process run.

Resuming: the loader's ``state_dict()`` (seed, epoch, batch, world size, global batch) restarts
mid-epoch at the same global position; a run may resume on a different number of ranks if the
global batch ``B*W`` stays the same (else only from an epoch boundary).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ..data import DataLoader
from ..random import get_generator
from .process_group import (
    DistributedError,
    ProcessGroup,
    broadcast_object_list,
    get_rank,
    get_world_size,
    group,
)

__all__ = ["DistributedSampler", "DistributedDataLoader", "shard_loader"]


class DistributedSampler:
    """The indices of one rank's shard of each epoch.

    ``DistributedSampler(dataset, num_replicas=None, rank=None, shuffle=True, seed=0,
    drop_last=False)``: ``num_replicas`` / ``rank`` default to the process group's. Iterating yields
    this rank's indices of epoch :attr:`epoch` (``set_epoch(e)`` before each epoch, as in PyTorch);
    :meth:`indices` gives any epoch's directly.

        >>> s = DistributedSampler(range(10), num_replicas=2, rank=1, shuffle=False)
        >>> list(s)
        [1, 3, 5, 7, 9]
    """

    def __init__(self, dataset, num_replicas: int | None = None, rank: int | None = None,
                 shuffle: bool = True, seed: int = 0, drop_last: bool = False):
        W = get_world_size() if num_replicas is None else int(num_replicas)
        r = get_rank() if rank is None else int(rank)
        if W < 1:
            raise ValueError(f"num_replicas must be >= 1, got {num_replicas}")
        if not 0 <= r < W:
            raise ValueError(f"rank {r} is out of range for num_replicas={W} (ranks 0..{W - 1})")
        self.dataset = dataset
        self.num_replicas, self.rank = W, r
        self.shuffle, self.seed, self.drop_last = bool(shuffle), int(seed), bool(drop_last)
        self.epoch = 0
        n = len(dataset)
        if n == 0:
            raise ValueError("DistributedSampler: the dataset is empty")
        if self.drop_last and n < W:
            raise ValueError(f"DistributedSampler: {n} samples cannot give each of {W} ranks one (drop_last)")
        self.num_samples = n // W if self.drop_last else -(-n // W)
        self.total_size = self.num_samples * W

    def __len__(self) -> int:
        return self.num_samples

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def epoch_order(self, epoch: int) -> np.ndarray:
        """The global (all ranks) order of epoch ``epoch``, padded or cut to ``total_size``."""
        n = len(self.dataset)
        if self.shuffle:
            order = np.random.default_rng([self.seed, int(epoch)]).permutation(n).astype(np.int64)
        else:
            order = np.arange(n, dtype=np.int64)
        if self.total_size > n:  # pad with the epoch's first samples (repeated if n < W)
            order = np.concatenate([order, np.resize(order, self.total_size - n)])
        return order[: self.total_size]

    def indices(self, epoch: int | None = None) -> np.ndarray:
        """This rank's indices of ``epoch`` (default: :attr:`epoch`)."""
        e = self.epoch if epoch is None else epoch
        return self.epoch_order(e)[self.rank :: self.num_replicas]

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices().tolist())

    def state_dict(self) -> dict:
        return {"seed": self.seed, "epoch": self.epoch, "num_replicas": self.num_replicas}

    def load_state_dict(self, state: dict) -> None:
        self.seed, self.epoch = int(state["seed"]), int(state["epoch"])


def _shared_seed(seed: int | None, pg: ProcessGroup | None) -> int:
    """``seed``, or one drawn on rank 0 and broadcast (every rank must shuffle alike)."""
    if seed is not None:
        return int(seed)
    drawn = int(get_generator().integers(0, 2**62))
    if pg is None or pg.world_size == 1:
        return drawn
    box = [drawn]
    broadcast_object_list(box, 0, pg)
    return int(box[0])


class DistributedDataLoader(DataLoader):
    """A DataLoader over this rank's shard (the DataLoader's arguments, plus ``sampler``).

    ``DistributedDataLoader(dataset, batch_size=1, shuffle=True, drop_last=False, seed=None,
    sampler=None, num_replicas=None, rank=None, **loader_args)``. ``batch_size`` is per rank (the
    global batch is ``batch_size * world size``). Without a ``sampler`` one is made with the same
    shuffle/seed (``seed=None``: rank 0 draws one and broadcasts it). The epoch comes from the loader
    (``set_epoch`` / ``state_dict`` / ``load_state_dict`` as on a DataLoader); ``len()`` is this
    rank's number of batches, the same on every rank.
    """

    def __init__(self, dataset, batch_size: int = 1, shuffle: bool = True, drop_last: bool = False,
                 seed: int | None = None, sampler: DistributedSampler | None = None,
                 num_replicas: int | None = None, rank: int | None = None, **loader_args):
        if sampler is not None:
            if seed is not None and int(seed) != sampler.seed:
                raise ValueError(f"seed={seed} differs from the sampler's seed {sampler.seed}")
            seed, shuffle = sampler.seed, sampler.shuffle
        else:
            seed = _shared_seed(seed, group())
            sampler = DistributedSampler(dataset, num_replicas, rank, shuffle=shuffle, seed=seed)
        super().__init__(dataset, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last, seed=seed,
                         **loader_args)
        self.sampler = sampler

    def __len__(self) -> int:
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def order(self, epoch: int) -> np.ndarray:
        self.sampler.set_epoch(epoch)
        return self.sampler.indices(epoch)

    def batch_rng(self, epoch: int, batch: int) -> np.random.Generator:
        if self.sampler.num_replicas == 1:
            return super().batch_rng(epoch, batch)
        return np.random.default_rng([self.seed, int(epoch), int(batch), 1, self.sampler.rank])

    def state_dict(self) -> dict:
        state = super().state_dict()
        state.update(num_replicas=self.sampler.num_replicas,
                     global_batch=self.batch_size * self.sampler.num_replicas)
        return state

    def load_state_dict(self, state: dict) -> None:
        W = self.sampler.num_replicas
        old_w = int(state.get("num_replicas", W))
        old_global = int(state.get("global_batch", self.batch_size * old_w))
        if int(state.get("batch", 0)) and old_global != self.batch_size * W:
            raise DistributedError(
                f"cannot resume mid-epoch (batch {state['batch']}): the run had {old_w} ranks x "
                f"{old_global // old_w} samples per batch, this one {W} x {self.batch_size}; keep the "
                "global batch (ranks x batch size) the same, or resume from an epoch boundary"
            )
        super().load_state_dict(state)
        self.sampler.seed = self.seed
        self.sampler.set_epoch(self.epoch)


def shard_loader(loader: DataLoader, group_: ProcessGroup | None = None) -> DataLoader:
    """This rank's share of ``loader`` with the same global batch: a DistributedDataLoader with
    ``batch_size // world_size`` per rank and the loader's seed, shuffle, drop_last, transform,
    prefetch, collate_fn, device and position (``state_dict``). The loader itself in a 1-process world.

        >>> loader = shard_loader(DataLoader(train_set, batch_size=128, shuffle=True, seed=0))  # 64 x 2
    """
    pg = group_ if group_ is not None else group()
    W = 1 if pg is None else pg.world_size
    if W == 1:
        return loader
    if loader.batch_size % W:
        raise DistributedError(
            f"the batch size {loader.batch_size} is not divisible by the {W} processes; choose a batch size "
            f"that is a multiple of {W} (each process takes batch_size / {W} of every batch)")
    out = DistributedDataLoader(
        loader.dataset, batch_size=loader.batch_size // W, shuffle=loader.shuffle, drop_last=loader.drop_last,
        seed=loader.seed, num_replicas=W, rank=pg.rank, transform=loader.transform, prefetch=loader.prefetch,
        collate_fn=loader.collate_fn, device=loader.device)
    out.load_state_dict(loader.state_dict())
    return out
