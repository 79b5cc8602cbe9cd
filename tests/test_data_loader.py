"""DataLoader: batching, seeded order, resume from state_dict, prefetch thread errors and shutdown."""

from __future__ import annotations

import gc
import threading
import time

import numpy as np
import pytest

from tinygrad_rad import Tensor
from tinygrad_rad.data import DataLoader, Dataset, TensorDataset
from tinygrad_rad.data import transforms as T


def _ds(n=23):
    x = np.arange(n, dtype=np.float32)[:, None, None, None] * np.ones((1, 1, 4, 4), np.float32)
    return TensorDataset(x, np.arange(n))


class ItemDataset(Dataset):
    """Same content as _ds but only __getitem__ (the per-item path)."""

    def __init__(self, n=23, fail_at=None):
        self.n, self.fail_at = n, fail_at

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if i == self.fail_at:
            raise RuntimeError(f"cannot read item {i}")
        return np.full((1, 4, 4), i, np.float32), i


def _ids(loader, epochs=1):
    out = []
    for _ in range(epochs):
        out.append(np.concatenate([y.numpy() for _, y in loader]))
    return out


def test_batches_shapes_dtypes():
    loader = DataLoader(_ds(), batch_size=5)
    batches = list(loader)
    assert len(loader) == len(batches) == 5
    x, y = batches[0]
    assert isinstance(x, Tensor) and isinstance(y, Tensor)
    assert x.shape == (5, 1, 4, 4) and x.dtype == np.float32 and y.dtype == np.int64
    assert batches[-1][0].shape == (3, 1, 4, 4)
    np.testing.assert_array_equal(np.concatenate([b[1].numpy() for b in batches]), np.arange(23))
    loader = DataLoader(_ds(), batch_size=5, drop_last=True)
    assert len(loader) == len(list(loader)) == 4
    with pytest.raises(ValueError, match="batch_size"):
        DataLoader(_ds(), batch_size=0)


def test_seeded_shuffle_is_reproducible_and_epochs_differ():
    a = _ids(DataLoader(_ds(), batch_size=4, shuffle=True, seed=3), epochs=3)
    b = _ids(DataLoader(_ds(), batch_size=4, shuffle=True, seed=3), epochs=3)
    c = _ids(DataLoader(_ds(), batch_size=4, shuffle=True, seed=4), epochs=1)
    for ea, eb in zip(a, b):
        np.testing.assert_array_equal(ea, eb)
        assert sorted(ea.tolist()) == list(range(23))
    assert not np.array_equal(a[0], a[1]) and not np.array_equal(a[0], c[0])
    loader = DataLoader(_ds(), batch_size=4, shuffle=True, seed=3)
    loader.set_epoch(2)
    np.testing.assert_array_equal(_ids(loader)[0], a[2])


def test_resume_mid_epoch_continues_the_same_sequence():
    aug = T.RandomAffine(20, translate=(0.2, 0.2))
    ref = DataLoader(_ds(), batch_size=4, shuffle=True, seed=11, transform=aug)
    ref_batches = [list(ref) for _ in range(2)]
    run = DataLoader(_ds(), batch_size=4, shuffle=True, seed=11, transform=aug)
    list(run)  # epoch 0
    it = iter(run)
    for _ in range(2):
        next(it)
    state = run.state_dict()
    assert state == {"seed": 11, "epoch": 1, "batch": 2}
    it.close()
    resumed = DataLoader(_ds(), batch_size=4, shuffle=True, seed=999, transform=aug)
    resumed.load_state_dict(state)
    rest = list(resumed)
    assert len(rest) == len(ref_batches[1]) - 2
    for (x, y), (rx, ry) in zip(rest, ref_batches[1][2:]):
        np.testing.assert_array_equal(y.numpy(), ry.numpy())
        np.testing.assert_array_equal(x.numpy(), rx.numpy())  # same augmentation too
    assert resumed.state_dict() == {"seed": 11, "epoch": 2, "batch": 0}


def test_item_path_prefetch_and_transforms_agree():
    aug = T.Compose([T.RandomHorizontalFlip(), T.RandomIntensity(0.1, 0.1)])
    fast = list(DataLoader(_ds(), batch_size=6, shuffle=True, seed=0, transform=aug))
    slow = list(DataLoader(ItemDataset(), batch_size=6, shuffle=True, seed=0, transform=aug, prefetch=0))
    assert len(fast) == len(slow)
    for (x, y), (sx, sy) in zip(fast, slow):
        np.testing.assert_array_equal(y.numpy(), sy.numpy())
        np.testing.assert_allclose(x.numpy(), sx.numpy(), atol=1e-6)
    custom = DataLoader(ItemDataset(), batch_size=6, collate_fn=lambda items: (
        np.stack([i[0] for i in items]) * 0, np.array([i[1] for i in items])))
    assert float(next(iter(custom))[0].numpy().sum()) == 0.0


def test_item_transforms_are_seeded_per_batch_not_global():
    import tinygrad_rad

    class Augmented(ItemDataset):
        def __getitem__(self, i):
            x, y = super().__getitem__(i)
            return T.RandomIntensity(0.5, 0.5, clip=None)(x), y  # no rng: the loader's batch generator

    state = tinygrad_rad.get_rng_state()
    a = [x.numpy() for x, _ in DataLoader(Augmented(), batch_size=5, seed=1)]
    b = [x.numpy() for x, _ in DataLoader(Augmented(), batch_size=5, seed=1)]
    assert tinygrad_rad.get_rng_state() == state  # the global generator was not touched
    for xa, xb in zip(a, b):
        np.testing.assert_array_equal(xa, xb)
    c = [x.numpy() for x, _ in DataLoader(Augmented(), batch_size=5, seed=2)]
    assert not np.array_equal(a[0], c[0])


def test_worker_exception_propagates():
    loader = DataLoader(ItemDataset(fail_at=9), batch_size=4)
    with pytest.raises(RuntimeError, match="cannot read item 9"):
        list(loader)
    with pytest.raises(RuntimeError, match="cannot read item 9"):
        list(DataLoader(ItemDataset(fail_at=9), batch_size=4, prefetch=0))


def _loader_threads():
    return [t for t in threading.enumerate() if t.name == "tinygrad_rad-DataLoader"]


def test_abandoned_iteration_stops_the_thread():
    before = len(_loader_threads())
    loader = DataLoader(TensorDataset(np.zeros((400, 1, 2, 2), np.float32), np.zeros(400)), batch_size=2,
                        prefetch=2)
    for _ in loader:
        break  # the generator is closed when the loop is left
    it = iter(loader)
    next(it)
    del it
    gc.collect()
    deadline = time.time() + 5
    while len(_loader_threads()) > before and time.time() < deadline:
        time.sleep(0.02)
    assert len(_loader_threads()) == before


def test_mismatched_item_shapes_message():
    class Ragged(ItemDataset):
        def __getitem__(self, i):
            return np.zeros((1, 4 + i, 4), np.float32), i

    with pytest.raises(ValueError, match="different shapes"):
        next(iter(DataLoader(Ragged(), batch_size=3, prefetch=0)))


def test_medmnist_through_loader(tmp_path):
    from tinygrad_rad.data import load_medmnist

    rng = np.random.default_rng(0)
    arrs = {}
    for split, n in (("train", 50), ("val", 5), ("test", 5)):
        arrs[f"{split}_images"] = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        arrs[f"{split}_labels"] = rng.integers(0, 2, (n, 1)).astype(np.uint8)
    np.savez(tmp_path / "pneumoniamnist.npz", **arrs)
    ds = load_medmnist("pneumoniamnist", data_dir=tmp_path, download=False)
    loader = DataLoader(ds, batch_size=16, shuffle=True, seed=0, transform=T.Normalize(0.5, 0.5))
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in loader])
    assert xs[0].shape == (16, 1, 28, 28) and ys[0].shape == (16,)
    order = loader.order(0)
    np.testing.assert_array_equal(np.concatenate(ys), arrs["train_labels"][order, 0])
    np.testing.assert_allclose(xs[0][3, 0], arrs["train_images"][order[3]] / 127.5 - 1.0, atol=1e-6)


def test_batches_land_on_the_device(device):
    loader = DataLoader(_ds(), batch_size=8, device=device)
    x, y = next(iter(loader))
    assert x.device == device and y.device == device
    np.testing.assert_array_equal(y.numpy(), np.arange(8))
