"""Small shared I/O helpers: atomic writes, JSON-safe conversion, the default data folder.

    >>> from tinygrad_rad.utils import write_json
    >>> write_json("runs/x/metrics.json", {"auc": np.float32(0.91), "n": np.int64(3)})

Every writer goes through :func:`atomic_output`: the data lands in a temporary file beside the target,
is fsynced, then ``os.replace``d over it, so a crash (or Ctrl-C) mid-write leaves the previous file intact
and no temporary file behind.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

__all__ = [
    "atomic_output",
    "atomic_write_bytes",
    "atomic_write_text",
    "json_safe",
    "write_json",
    "default_data_dir",
    "ConfigDictMixin",
    "ProgressBar",
    "load_run_checkpoint",
    "run_subcommand",
]


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[str]:
    """Yield a temporary file name beside ``path``; on success fsync it and ``os.replace`` it over ``path``.

        >>> with atomic_output("model.safetensors") as tmp:
        ...     save_file(tensors, tmp)

    # NOTE: on any exception (KeyboardInterrupt included) the temporary file is deleted and ``path`` is
    # left untouched. The parent folder must exist.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temporary file, fsync, ``os.replace``)."""
    with atomic_output(path) as tmp, open(tmp, "wb") as f:
        f.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def json_safe(v):
    """``v`` with numpy scalars/arrays, tuples and Paths turned into plain JSON values.

        >>> json_safe({"auc": np.float32(0.5), "hd95": float("inf"), 1: np.arange(2)})
        {'auc': 0.5, 'hd95': None, '1': [0, 1]}

    # NOTE: JSON has no inf/nan; they are written as null. Dict keys become strings.
    """
    if isinstance(v, dict):
        return {str(k): json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [json_safe(x) for x in v]
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, (np.floating, float)):
        f = float(v)
        return f if math.isfinite(f) else None
    if isinstance(v, np.ndarray):
        return json_safe(v.tolist())
    if isinstance(v, os.PathLike):
        return os.fspath(v)
    return v


def write_json(path: str | os.PathLike, obj) -> None:
    """Write ``json_safe(obj)`` to ``path`` as indented JSON (with a final newline), atomically."""
    atomic_write_text(path, json.dumps(json_safe(obj), indent=2) + "\n")


def default_data_dir() -> str | None:
    """``$TINYGRAD_RAD_DATA``, else ``../shared/data`` beside the cwd or the project when it exists, else None
    (the download cache)."""
    env = os.environ.get("TINYGRAD_RAD_DATA")
    if env:
        return env
    for base in (Path.cwd(), Path(__file__).resolve().parents[1]):
        cand = base.parent / "shared" / "data"
        if cand.is_dir():
            return str(cand)
    return None


class ConfigDictMixin:
    """``to_dict``/``from_dict`` for a run-config dataclass (checkpoints and ``metrics.json`` store it).

    ``from_dict`` ignores unknown keys (a config from a newer/older version still loads).

        >>> SegmentConfig.from_dict(SegmentConfig(epochs=3).to_dict()).epochs
        3
    """

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict):
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


class ProgressBar:
    """Per-step progress: tqdm when installed (and ``enabled``), else a stderr line every ~10% of ``total``.

        >>> bar = ProgressBar(100, "epoch 1/5", enabled=True)
        >>> bar.update(loss="0.693"); bar.close()
    """

    def __init__(self, total: int, desc: str, enabled: bool, initial: int = 0):
        self.total, self.desc, self.enabled, self.n = total, desc, enabled, initial
        self.bar = None
        if enabled:
            try:
                from tqdm.auto import tqdm

                self.bar = tqdm(total=total, initial=initial, desc=desc, unit="step", leave=True,
                                dynamic_ncols=True, file=sys.stderr)
            except ImportError:
                pass

    def update(self, **postfix) -> None:
        self.n += 1
        if self.bar is not None:
            self.bar.set_postfix(postfix, refresh=False)
            self.bar.update(1)
        elif self.enabled and (self.n == self.total or self.n % max(1, self.total // 10) == 0):
            items = " ".join(f"{k}={v}" for k, v in postfix.items())
            print(f"{self.desc} {self.n}/{self.total} {items}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def load_run_checkpoint(checkpoint: str | os.PathLike, command: str, kind: str, config_cls, build_model,
                        device: str = "cpu"):
    """(model in eval mode, config) from a checkpoint whose ``extra["kind"]`` is ``kind``.

        >>> model, cfg = load_run_checkpoint("runs/lung/best.safetensors", "segment", "segmentation",
        ...                                  SegmentConfig, build_model)

    ``command`` starts the error messages (a missing file, a checkpoint of another kind).
    """
    from .checkpoint import load_checkpoint

    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise FileNotFoundError(f"{command}: no checkpoint at {checkpoint}")
    stored = load_checkpoint(str(checkpoint))
    found = (stored.get("extra") or {}).get("kind")
    if found != kind:
        raise ValueError(f"{command}: {checkpoint} is not a {kind} checkpoint (kind {found!r})")
    cfg = config_cls.from_dict({**stored["config"], "device": device})
    model = build_model(cfg)
    load_checkpoint(str(checkpoint), model=model)
    model.eval()
    return model, cfg


def run_subcommand(register, command: str, argv=None) -> int:
    """Stand-alone entry of a ``tinygrad-rad <command>`` group: ``register(subparsers)`` adds it, and its
    parsers set ``<command>_func``. ``argv`` defaults to ``sys.argv[1:]``."""
    parser = argparse.ArgumentParser(prog="tinygrad-rad")
    sub = parser.add_subparsers(dest="command")
    register(sub)
    a = parser.parse_args([command, *(sys.argv[1:] if argv is None else argv)])
    return getattr(a, f"{command}_func")(a)
