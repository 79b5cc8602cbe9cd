"""Shared I/O helpers: atomic writes (crash keeps the old file), json_safe, default_data_dir, configs."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from tinygrad_rad.utils import (
    ConfigDictMixin,
    atomic_output,
    atomic_write_text,
    default_data_dir,
    json_safe,
    write_json,
)


def test_atomic_write_replaces_and_crash_keeps_previous(tmp_path):
    p = tmp_path / "a.txt"
    atomic_write_text(p, "one\n")
    atomic_write_text(p, "two\n")
    assert p.read_text() == "two\n"
    with pytest.raises(KeyboardInterrupt):
        with atomic_output(p) as tmp:
            Path(tmp).write_text("half")
            raise KeyboardInterrupt
    assert p.read_text() == "two\n"
    assert [q.name for q in tmp_path.iterdir()] == ["a.txt"]


def test_json_safe_and_write_json(tmp_path):
    obj = {1: np.int64(3), "f": np.float32(0.5), "inf": float("inf"), "a": np.arange(3), "t": (1, 2),
           "p": Path("x/y")}
    assert json_safe(obj) == {"1": 3, "f": 0.5, "inf": None, "a": [0, 1, 2], "t": [1, 2], "p": "x/y"}
    write_json(tmp_path / "m.json", obj)
    text = (tmp_path / "m.json").read_text()
    assert text.endswith("\n") and json.loads(text)["inf"] is None


def test_default_data_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv("TINYGRAD_RAD_DATA", str(tmp_path))
    assert default_data_dir() == str(tmp_path)


def test_config_dict_roundtrip_ignores_unknown_keys():
    @dataclasses.dataclass
    class Cfg(ConfigDictMixin):
        epochs: int = 3
        out: str = "runs/x"

    d = Cfg(epochs=5).to_dict()
    assert d == {"epochs": 5, "out": "runs/x"}
    assert Cfg.from_dict({**d, "removed_option": 1}) == Cfg(epochs=5)


def test_load_run_checkpoint_checks_file_and_kind(tmp_path):
    from tinygrad_rad.checkpoint import save_checkpoint
    from tinygrad_rad.models import SmallCNN
    from tinygrad_rad.utils import load_run_checkpoint

    @dataclasses.dataclass
    class Cfg(ConfigDictMixin):
        device: str = "cpu"

    with pytest.raises(FileNotFoundError, match="segment: no checkpoint at"):
        load_run_checkpoint(tmp_path / "nope.safetensors", "segment", "segmentation", Cfg, None)
    ck = tmp_path / "m.safetensors"
    model = SmallCNN(1, 2)
    save_checkpoint(ck, model, config=Cfg().to_dict(), extra={"kind": "detection"})
    with pytest.raises(ValueError, match="is not a segmentation checkpoint \\(kind 'detection'\\)"):
        load_run_checkpoint(ck, "segment", "segmentation", Cfg, None)
    loaded, cfg = load_run_checkpoint(ck, "detect", "detection", Cfg, lambda c: SmallCNN(1, 2))
    assert cfg == Cfg() and not loaded.training
    np.testing.assert_array_equal(loaded.fc.weight.numpy(), model.fc.weight.numpy())
