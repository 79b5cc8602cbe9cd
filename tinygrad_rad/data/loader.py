"""``DataLoader``: seeded shuffling, batch-level augmentation, background prefetch.

    >>> from tinygrad_rad.data import DataLoader, TensorDataset
    >>> ds = TensorDataset(np.random.rand(100, 1, 28, 28).astype("float32"), np.arange(100) % 2)
    >>> loader = DataLoader(ds, batch_size=32, shuffle=True, seed=0)
    >>> for x, y in loader:          # x: Tensor (32, 1, 28, 28) float32, y: Tensor (32,) int64
    ...     pass

Reproducibility: the order of epoch ``e`` is ``default_rng([seed, e]).permutation(n)`` and batch ``b``
of epoch ``e`` is augmented with ``default_rng([seed, e, b, 1])``, so the same seed gives the same
sequence of batches, each epoch differs, and a run resumed from ``state_dict()`` (even mid-epoch)
continues with exactly the batches it would have seen.

Datasets with a ``get_batch(indices, rng=None)`` method (``MedMNIST``, ``TensorDataset``) are read by
indexing their arrays once per batch; others go through ``__getitem__`` and ``collate_fn``.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from ..random import get_generator
from ..tensor import Tensor
from .transforms import default_rng


class EmptySplitError(ValueError):
    """A dataset split holds no samples (raised when it is loaded, before any training)."""


def check_not_empty(dataset, name: str):
    """Return ``dataset``; raise :class:`EmptySplitError` naming ``name`` (e.g. "pneumoniamnist test")
    when it holds no samples. The training loop calls it on every split before the first epoch.

        >>> check_not_empty(load_medmnist("pneumoniamnist", "test", allow_empty=True), "pneumoniamnist test")
    """
    n = len(dataset)
    if n == 0:
        where = getattr(dataset, "path", None)
        raise EmptySplitError(
            f"{name} is empty (0 samples){f' in {where}' if where is not None else ''}; "
            "every split needs at least one sample to train and evaluate"
        )
    return dataset


class Dataset:
    """Base class: implement ``__len__`` and ``__getitem__`` (like ``torch.utils.data.Dataset``)."""

    def __len__(self) -> int:
        raise NotImplementedError

    def __getitem__(self, i):
        raise NotImplementedError


class TensorDataset(Dataset):
    """In-memory arrays, indexed together: ``TensorDataset(images, labels, transform=None)``.

    ``images`` is float32 ``(N, C, H, W)`` (other dtypes are converted); ``labels`` is any array with
    ``N`` rows. ``transform(x, rng=...)`` is applied to each batch (or item).

        >>> ds = TensorDataset(np.zeros((4, 1, 8, 8), "float32"), np.array([0, 1, 0, 1]))
        >>> x, y = ds[1]
    """

    def __init__(self, *arrays, transform: Callable | None = None):
        if not arrays:
            raise ValueError("TensorDataset needs at least one array")
        arrs = [a.numpy() if isinstance(a, Tensor) else np.asarray(a) for a in arrays]
        n = arrs[0].shape[0]
        for i, a in enumerate(arrs):
            if a.ndim == 0 or a.shape[0] != n:
                raise ValueError(
                    f"TensorDataset: array {i} has shape {a.shape}, expected {n} rows like array 0"
                )
        if np.issubdtype(arrs[0].dtype, np.floating) and arrs[0].dtype != np.float32:
            arrs[0] = arrs[0].astype(np.float32)
        for i in range(1, len(arrs)):
            if np.issubdtype(arrs[i].dtype, np.integer) or arrs[i].dtype == np.bool_:
                arrs[i] = arrs[i].astype(np.int64)
        self.arrays = arrs
        self.transform = transform

    def __len__(self) -> int:
        return int(self.arrays[0].shape[0])

    def get_batch(self, indices, rng: np.random.Generator | None = None):
        idx = np.asarray(indices, dtype=np.int64)
        out = [a[idx] for a in self.arrays]
        if self.transform is not None:
            out[0] = self.transform(out[0], rng=rng)
        return tuple(out)

    def __getitem__(self, i):
        out = [a[i] for a in self.arrays]
        if self.transform is not None:
            out[0] = self.transform(out[0])
        return tuple(out)


def default_collate(items: Sequence) -> tuple:
    """Stack a list of ``(image, label, ...)`` tuples into arrays (float32 images, int64 int labels)."""
    if not items:
        raise ValueError("cannot collate an empty batch")
    first = items[0]
    if not isinstance(first, (tuple, list)):
        return (_stack([it for it in items]),)
    return tuple(_stack([it[k] for it in items]) for k in range(len(first)))


def _stack(vals: list) -> np.ndarray:
    vals = [v.numpy() if isinstance(v, Tensor) else v for v in vals]
    arrs = [np.asarray(v) for v in vals]
    shapes = {a.shape for a in arrs}
    if len(shapes) > 1:
        raise ValueError(
            f"cannot batch items of different shapes {sorted(shapes)}; give the dataset a transform "
            "that resizes or crops them to one size (e.g. transforms.Resize)"
        )
    arr = np.stack(arrs)
    if np.issubdtype(arr.dtype, np.floating):
        return arr.astype(np.float32, copy=False)
    if np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_:
        return arr.astype(np.int64, copy=False)
    return arr


class _Failure:
    def __init__(self, exc: BaseException):
        self.exc = exc


_END = object()


class DataLoader:
    """Batches of ``(images Tensor (N, C, H, W) float32, labels Tensor int64)`` from a dataset.

    ``DataLoader(dataset, batch_size=1, shuffle=False, drop_last=False, seed=None, transform=None,
    prefetch=2, collate_fn=None, device="cpu")``. ``transform(images, rng=...)`` runs on the whole
    NumPy batch (e.g. :class:`~tinygrad_rad.data.transforms.RandomAffine`); ``prefetch`` batches are
    prepared in a background thread (0 = no thread). ``seed=None`` draws a seed from the global
    generator (so ``tinygrad_rad.manual_seed`` fixes it).

        >>> loader = DataLoader(ds, batch_size=128, shuffle=True, seed=0)
        >>> state = loader.state_dict()        # save with the checkpoint; load_state_dict(state) to resume
    """

    def __init__(self, dataset, batch_size: int = 1, shuffle: bool = False, drop_last: bool = False,
                 seed: int | None = None, transform: Callable | None = None, prefetch: int = 2,
                 collate_fn: Callable | None = None, device: str = "cpu"):
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if int(prefetch) < 0:
            raise ValueError(f"prefetch must be >= 0, got {prefetch}")
        self.dataset = dataset
        self.batch_size, self.shuffle, self.drop_last = int(batch_size), bool(shuffle), bool(drop_last)
        self.seed = int(get_generator().integers(0, 2**63 - 1)) if seed is None else int(seed)
        self.transform, self.prefetch = transform, int(prefetch)
        self.collate_fn, self.device = collate_fn, device
        self._next_epoch = 0
        self._resume_batch = 0
        self._live: list | None = None  # [epoch, batches yielded] of the iteration in progress

    # --- sizes and order --------------------------------------------------------------------------
    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    @property
    def epoch(self) -> int:
        """The epoch the next ``iter()`` will produce."""
        return self._next_epoch

    def set_epoch(self, epoch: int) -> None:
        """Make the next ``iter()`` produce epoch ``epoch`` from its first batch."""
        self._next_epoch, self._resume_batch = int(epoch), 0

    def order(self, epoch: int) -> np.ndarray:
        """The sample order of one epoch (a permutation when shuffling, else ``arange``)."""
        n = len(self.dataset)
        if not self.shuffle:
            return np.arange(n, dtype=np.int64)
        return np.random.default_rng([self.seed, int(epoch)]).permutation(n).astype(np.int64)

    def batch_rng(self, epoch: int, batch: int) -> np.random.Generator:
        """The generator that augments batch ``batch`` of epoch ``epoch``."""
        return np.random.default_rng([self.seed, int(epoch), int(batch), 1])

    # --- checkpointing ----------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """``{"seed", "epoch", "batch"}``: where the sequence stands (mid-epoch while iterating)."""
        if self._live is not None:
            return {"seed": self.seed, "epoch": self._live[0], "batch": self._live[1]}
        return {"seed": self.seed, "epoch": self._next_epoch, "batch": self._resume_batch}

    def load_state_dict(self, state: dict) -> None:
        self.seed = int(state["seed"])
        self._next_epoch, self._resume_batch = int(state["epoch"]), int(state.get("batch", 0))

    # --- producing batches ------------------------------------------------------------------------
    def _make_batch(self, idx: np.ndarray, rng: np.random.Generator):
        ds = self.dataset
        if self.collate_fn is None and hasattr(ds, "get_batch"):
            out = ds.get_batch(idx, rng=rng)
        else:
            with default_rng(rng):  # per-item transforms draw from this batch's generator
                items = [ds[int(i)] for i in idx]
            out = (self.collate_fn or default_collate)(items)
        out = list(out)
        if self.transform is not None:
            x = out[0].numpy() if isinstance(out[0], Tensor) else out[0]
            out[0] = self.transform(x, rng=rng)
        return tuple(self._to_tensor(o) for o in out)

    def _to_tensor(self, o) -> Tensor:
        if isinstance(o, Tensor):
            return o.to(self.device) if o.device != self.device else o
        arr = np.asarray(o)
        if np.issubdtype(arr.dtype, np.floating):  # images and float targets (soft / multi-label)
            arr = arr.astype(np.float32, copy=False)
        elif np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_:
            arr = arr.astype(np.int64, copy=False)
        return Tensor(np.ascontiguousarray(arr), device=self.device)

    def _plan(self, epoch: int, start: int) -> list:
        order = self.order(epoch)
        bs, n = self.batch_size, len(order)
        stop = n - n % bs if self.drop_last else n
        return [(b, order[s : s + bs]) for b, s in enumerate(range(0, stop, bs)) if b >= start]

    def __iter__(self) -> Iterator:
        epoch, start = self._next_epoch, self._resume_batch
        self._next_epoch, self._resume_batch = epoch + 1, 0
        plan = self._plan(epoch, start)
        live = [epoch, start]
        self._live = live
        src = self._serial(plan, epoch) if self.prefetch == 0 else self._threaded(plan, epoch)
        try:
            for batch in src:
                live[1] += 1
                yield batch
        finally:
            if self._live is live:
                self._live = None
            close = getattr(src, "close", None)
            if close is not None:
                close()

    def _serial(self, plan, epoch):
        for b, idx in plan:
            yield self._make_batch(idx, self.batch_rng(epoch, b))

    def _threaded(self, plan, epoch):
        q: queue.Queue = queue.Queue(maxsize=self.prefetch)
        stop = threading.Event()

        def put(item) -> bool:
            while not stop.is_set():
                try:
                    q.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def work():
            try:
                for b, idx in plan:
                    if stop.is_set():
                        return
                    if not put(self._make_batch(idx, self.batch_rng(epoch, b))):
                        return
                put(_END)
            except BaseException as e:  # noqa: BLE001  (re-raised in the consumer)
                put(_Failure(e))

        t = threading.Thread(target=work, name="tinygrad_rad-DataLoader", daemon=True)
        t.start()
        try:
            while True:
                item = q.get()
                if item is _END:
                    return
                if isinstance(item, _Failure):
                    raise item.exc
                yield item
        finally:
            # NOTE: runs when the loop finishes, raises, or is abandoned (generator closed / collected).
            stop.set()
            while True:
                try:
                    q.get_nowait()
                except queue.Empty:
                    break
            t.join(timeout=5.0)
