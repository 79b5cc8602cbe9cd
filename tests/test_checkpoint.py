"""Checkpoints: round-trip of model/optimizer/scheduler/RNG, atomic writes, and clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

import tinygrad_rad as tr
import tinygrad_rad.nn.functional as F
from tinygrad_rad import checkpoint, nn, optim
from tinygrad_rad.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from tinygrad_rad.models import SmallCNN

pytest.importorskip("safetensors")


def _batch(seed=0):
    rng = np.random.default_rng(seed)
    x = tr.tensor(rng.standard_normal((4, 1, 8, 8)).astype(np.float32))
    y = tr.tensor(rng.integers(0, 3, size=4))
    return x, y


def _step(model, opt, sched, x, y):
    opt.zero_grad()
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    sched.step()
    return loss.item()


def _setup():
    model = SmallCNN(in_channels=1, num_classes=3, dropout=0.3)
    opt = optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.05)
    sched = optim.lr_scheduler.CosineAnnealingLR(opt, T_max=10)
    return model, opt, sched


def test_resume_gives_identical_next_step(tmp_path):
    tr.manual_seed(0)
    model, opt, sched = _setup()
    x, y = _batch()
    for _ in range(2):
        _step(model, opt, sched, x, y)
    ck = tmp_path / "ck.safetensors"
    cfg = {"lr": 1e-2, "model": "smallcnn"}
    save_checkpoint(ck, model, opt, sched, epoch=1, config=cfg, extra={"best": 0.5})
    loss_a = _step(model, opt, sched, x, y)  # continues with the RNG state at save time (dropout mask)
    after_a = {k: v.numpy().copy() for k, v in model.state_dict().items()}

    tr.manual_seed(123)  # fresh objects with different weights and RNG
    model2, opt2, sched2 = _setup()
    info = load_checkpoint(ck, model2, opt2, sched2, restore_rng=True)
    assert info["epoch"] == 1 and info["config"] == cfg
    assert info["extra"] == {"best": 0.5} and info["version"] == tr.__version__
    assert sched2.last_epoch == 2 and opt2.param_groups[0]["lr"] == sched2.get_last_lr()[0]
    loss_b = _step(model2, opt2, sched2, x, y)
    assert loss_b == loss_a
    for k, v in model2.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), after_a[k], err_msg=k)
    assert sched2.get_last_lr() == sched.get_last_lr()


def test_file_layout_is_plain_safetensors(tmp_path):
    from safetensors import safe_open

    model, opt, sched = _setup()
    x, y = _batch()
    _step(model, opt, sched, x, y)
    ck = save_checkpoint(tmp_path / "c.safetensors", model, opt, sched, epoch=0)
    with safe_open(str(ck), framework="np") as f:
        keys, meta = set(f.keys()), f.metadata()
    assert {f"model.{k}" for k in model.state_dict()} <= keys
    assert "model.features.1.num_batches_tracked" in keys
    assert "optim.0.exp_avg" in keys and "optim.0.exp_avg_sq" in keys
    assert json.loads(meta["optimizer"])["state"]["0"]["step"] == 1
    assert json.loads(meta["scheduler"])["type"] == "CosineAnnealingLR"
    assert set(json.loads(meta["rng"])) == {"tinygrad_rad", "numpy"}


def test_crash_mid_write_keeps_previous_checkpoint(tmp_path, monkeypatch):
    model = SmallCNN(1, 2)
    ck = tmp_path / "last.safetensors"
    save_checkpoint(ck, model, epoch=1)
    good = ck.read_bytes()
    real_save = checkpoint._safetensors()[1].save_file

    def dying_save(tensors, filename, metadata=None):
        real_save(tensors, filename, metadata=metadata)
        data = open(filename, "rb").read()
        with open(filename, "wb") as f:  # the process "dies" after writing half of the temp file
            f.write(data[: len(data) // 2])
        raise KeyboardInterrupt

    import safetensors.numpy

    monkeypatch.setattr(safetensors.numpy, "save_file", dying_save)
    model.fc.weight.data[...] = 7.0
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(ck, model, epoch=2)
    monkeypatch.undo()
    assert ck.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir()] == ["last.safetensors"]  # no temp file left behind
    fresh = SmallCNN(1, 2)
    assert load_checkpoint(ck, fresh)["epoch"] == 1
    assert not np.any(fresh.fc.weight.numpy() == 7.0)


def test_clear_errors(tmp_path):
    model = SmallCNN(1, 2)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.safetensors", model)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00not a safetensors file at all")
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        load_checkpoint(bad, model)
    ck = save_checkpoint(tmp_path / "c.safetensors", model)
    with pytest.raises(CheckpointError, match=r"fc.weight.*\(2, 128\).*\(5, 128\)"):
        load_checkpoint(ck, SmallCNN(1, 5))
    other = nn.Sequential(nn.Linear(2, 2))
    with pytest.raises(CheckpointError, match="(?s)missing keys.*unexpected keys"):
        load_checkpoint(ck, other)
    with pytest.raises(CheckpointError, match="no optimizer state"):
        load_checkpoint(ck, model, optimizer=optim.SGD(model.parameters(), lr=0.1))
    with pytest.raises(TypeError, match="JSON"):
        save_checkpoint(tmp_path / "d.safetensors", model, config={"f": object()})


def test_read_checkpoint_info_reads_the_header_only(tmp_path, monkeypatch):
    model = SmallCNN(1, 2)
    ck = save_checkpoint(tmp_path / "c.safetensors", model, epoch=3, config={"model": "smallcnn"},
                         extra={"kind": "classification"})
    full = load_checkpoint(ck)
    import safetensors.numpy as st_numpy

    def no_weights(*a, **k):
        raise AssertionError("read_checkpoint_info loaded the weights")

    monkeypatch.setattr(st_numpy, "load_file", no_weights)
    info = checkpoint.read_checkpoint_info(ck)
    assert {k: info[k] for k in ("epoch", "config", "extra", "version")} == \
        {k: full[k] for k in ("epoch", "config", "extra", "version")}
    assert info["epoch"] == 3 and info["extra"] == {"kind": "classification"}
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00not a safetensors file at all")
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        checkpoint.read_checkpoint_info(bad)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        checkpoint.read_checkpoint_info(tmp_path / "nope.safetensors")


def test_non_strict_and_plain_weights_file(tmp_path):
    from safetensors.numpy import save_file

    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    sd = {k: v.numpy() for k, v in model.state_dict().items()}
    plain = tmp_path / "w.safetensors"
    save_file({k: np.asarray(v, order="C") for k, v in sd.items() if k != "1.running_var"}, str(plain))
    fresh = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    with pytest.raises(CheckpointError, match="missing keys: '1.running_var'"):
        load_checkpoint(plain, fresh)
    load_checkpoint(plain, fresh, strict=False)
    np.testing.assert_array_equal(fresh[0].weight.numpy(), sd["0.weight"])


def test_sgd_momentum_and_sequential_scheduler_roundtrip(tmp_path):
    model = nn.Linear(4, 3)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    S = optim.lr_scheduler
    sched = S.SequentialLR(opt, [S.LinearLR(opt, 0.1, total_iters=3), S.StepLR(opt, 2)], milestones=[3])
    x = tr.randn(5, 4)
    for _ in range(4):
        opt.zero_grad()
        model(x).square().mean().backward()
        opt.step()
        sched.step()
    ck = save_checkpoint(tmp_path / "s.safetensors", model, opt, sched)
    m2 = nn.Linear(4, 3)
    o2 = optim.SGD(m2.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    s2 = S.SequentialLR(o2, [S.LinearLR(o2, 0.1, total_iters=3), S.StepLR(o2, 2)], milestones=[3])
    load_checkpoint(ck, m2, o2, s2)
    for m, o, s in ((model, opt, sched), (m2, o2, s2)):
        for _ in range(3):
            o.zero_grad()
            m(x).square().mean().backward()
            o.step()
            s.step()
    np.testing.assert_array_equal(m2.weight.numpy(), model.weight.numpy())
    assert s2.get_last_lr() == sched.get_last_lr()


def test_map_location_moves_model_and_optimizer_state(tmp_path, device):
    model = nn.Linear(3, 2)
    opt = optim.Adam(model.parameters(), lr=0.1)
    model(tr.randn(4, 3)).sum().backward()
    opt.step()
    ck = save_checkpoint(tmp_path / "m.safetensors", model, opt)
    m2 = nn.Linear(3, 2)
    o2 = optim.Adam(m2.parameters(), lr=0.1)
    load_checkpoint(ck, m2, o2, map_location=device)
    assert m2.weight.device == device
    st = o2.state[m2.weight]
    assert st["step"] == 1 and tr.device.xp_of(st["exp_avg"]) is tr.device.xp_for(device)
    np.testing.assert_array_equal(m2.weight.numpy(), model.weight.numpy())
