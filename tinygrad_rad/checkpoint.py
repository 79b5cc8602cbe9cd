"""Training checkpoints in ONE safetensors file (no pickle): weights, optimizer state, and the rest.

    >>> save_checkpoint("runs/last.safetensors", model, optimizer, scheduler, epoch=3, config=cfg)
    >>> info = load_checkpoint("runs/last.safetensors", model, optimizer, scheduler)
    >>> start_epoch = info["epoch"] + 1

Layout of the file:

* tensors ``model.<state_dict key>`` (parameters and buffers) and ``optim.<param index>.<name>``
  (optimizer state arrays such as ``exp_avg``);
* metadata (safetensors allows string -> string) holding JSON: ``epoch``, ``config``, ``extra``,
  ``optimizer`` (type, ``param_groups`` with their hyper-parameters, per-parameter scalars such as
  the step count), ``scheduler`` (its ``state_dict``), ``rng`` (tinygrad_rad's and NumPy's global
  generator states) and the package ``version``.

The file is written to a temporary file in the same folder and moved into place with
``os.replace``, so a run killed mid-write keeps the previous checkpoint intact.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from .random import get_rng_state, set_rng_state
from .utils import atomic_output

__all__ = ["save_checkpoint", "load_checkpoint", "restore_rng_state", "CheckpointError"]

FORMAT = "tinygrad_rad.checkpoint/1"


class CheckpointError(ValueError):
    """The file is not a readable checkpoint, or does not fit the model/optimizer given."""


def _safetensors():
    try:
        import safetensors
        import safetensors.numpy as st_numpy
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "checkpoints need the safetensors package: pip install 'tinygrad_rad[train]'"
        ) from e
    return safetensors, st_numpy


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (Path, os.PathLike)):
        return os.fspath(o)
    if isinstance(o, (set, frozenset)):
        return sorted(o)
    raise TypeError(f"{type(o).__name__} is not JSON-serialisable")


def _dumps(what: str, value) -> str:
    try:
        return json.dumps(value, default=_json_default)
    except (TypeError, ValueError) as e:
        raise TypeError(f"save_checkpoint: {what} must be JSON-serialisable ({e})") from e


def _numpy_rng_state() -> dict:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {"name": name, "keys": keys.tolist(), "pos": int(pos), "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached)}


def restore_rng_state(rng: dict) -> None:
    """Restore the generator states a checkpoint saved (``load_checkpoint(...)["rng"]``)."""
    if rng.get("tinygrad_rad") is not None:
        set_rng_state(rng["tinygrad_rad"])
    npst = rng.get("numpy")
    if npst is not None:
        np.random.set_state((npst["name"], np.asarray(npst["keys"], dtype=np.uint32), npst["pos"],
                             npst["has_gauss"], npst["cached_gaussian"]))


def _split_optimizer(optimizer) -> tuple[dict, dict]:
    """Optimizer state_dict -> (arrays for the tensor section, JSON-able rest)."""
    sd = optimizer.state_dict()
    arrays, scalars = {}, {}
    for idx, st in sd["state"].items():
        for k, v in st.items():
            if isinstance(v, np.ndarray):
                arrays[f"optim.{idx}.{k}"] = np.asarray(v, order="C")
            else:
                scalars.setdefault(str(idx), {})[k] = v
    meta = {"type": type(optimizer).__name__, "param_groups": sd["param_groups"], "state": scalars}
    return arrays, meta


def save_checkpoint(path, model, optimizer=None, scheduler=None, epoch: int | None = None, config=None,
                    extra=None) -> Path:
    """Write model weights (+ optimizer, scheduler, epoch, config, extra, RNG states) to ``path`` atomically.

    ``config`` and ``extra`` must be JSON-serialisable (dicts of numbers/strings/lists; Paths and
    NumPy scalars are converted). Returns the path written.
    """
    from . import __version__

    _, st_numpy = _safetensors()
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"save_checkpoint: {path} is a directory; give a file path")
    path.parent.mkdir(parents=True, exist_ok=True)

    tensors: dict[str, np.ndarray] = {}
    for k, t in model.state_dict().items():
        tensors[f"model.{k}"] = np.asarray(t.numpy(), order="C")
    meta: dict[str, str] = {
        "format": FORMAT,
        "version": __version__,
        "model_type": type(model).__name__,
        "epoch": _dumps("epoch", epoch),
        "config": _dumps("config", config),
        "extra": _dumps("extra", extra),
        "rng": _dumps("rng", {"tinygrad_rad": get_rng_state(), "numpy": _numpy_rng_state()}),
    }
    if optimizer is not None:
        arrays, ometa = _split_optimizer(optimizer)
        tensors.update(arrays)
        meta["optimizer"] = _dumps("the optimizer state", ometa)
    if scheduler is not None:
        meta["scheduler"] = _dumps(
            "the scheduler state", {"type": type(scheduler).__name__, "state": scheduler.state_dict()}
        )

    # NOTE: any failure (or Ctrl-C) mid-write leaves the previous checkpoint at `path` untouched
    with atomic_output(path) as tmp:
        st_numpy.save_file(tensors, tmp, metadata=meta)
    return path


def _read(path: Path) -> tuple[dict, dict]:
    safetensors, st_numpy = _safetensors()
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    if path.is_dir():
        raise IsADirectoryError(f"checkpoint {path} is a directory, not a file")
    try:
        tensors = st_numpy.load_file(str(path))
        with safetensors.safe_open(str(path), framework="np") as f:
            meta = f.metadata() or {}
    except Exception as e:
        raise CheckpointError(f"{path} is not a readable safetensors checkpoint: {e}") from e
    return tensors, meta


def _loads(meta: dict, key: str, path: Path):
    if key not in meta:
        return None
    try:
        return json.loads(meta[key])
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: metadata entry {key!r} is not valid JSON: {e}") from e


def _check_stored(path: Path, meta: dict | None, obj, a_what: str) -> None:
    """Raise unless ``meta`` (the stored state of ``a_what``, e.g. "an optimizer") exists and is of
    ``obj``'s type."""
    what = a_what.split()[-1]
    if meta is None:
        raise CheckpointError(f"{path} holds no {what} state, but {a_what} was given")
    if meta["type"] != type(obj).__name__:
        raise CheckpointError(
            f"{path} holds the state of a {meta['type']} {what}, but a {type(obj).__name__} was given"
        )


def _restore_optimizer(optimizer, tensors: dict, ometa: dict, path: Path) -> None:
    _check_stored(path, ometa, optimizer, "an optimizer")
    state: dict = {}
    for name, arr in tensors.items():
        if name.startswith("optim."):
            _, idx, key = name.split(".", 2)
            state.setdefault(int(idx), {})[key] = arr
    for idx, scalars in ometa.get("state", {}).items():
        state.setdefault(int(idx), {}).update(scalars)
    groups = []
    for g in ometa["param_groups"]:
        g = dict(g)
        if isinstance(g.get("betas"), list):
            g["betas"] = tuple(g["betas"])
        groups.append(g)
    try:
        optimizer.load_state_dict({"state": state, "param_groups": groups})
    except (ValueError, KeyError) as e:
        raise CheckpointError(f"{path}: the optimizer state does not fit the optimizer given: {e}") from e


def load_checkpoint(path, model=None, optimizer=None, scheduler=None, strict: bool = True, map_location=None,
                    restore_rng: bool = False) -> dict[str, Any]:
    """Restore whatever is given (model, optimizer, scheduler) from ``path``; return the rest.

    Returns ``{"epoch", "config", "extra", "rng", "version", "model_state", "metadata"}`` (``model_state``:
    the weights as NumPy arrays by state_dict key). ``map_location`` moves ``model`` to that device first
    (the optimizer state follows each parameter's device). ``restore_rng=True`` also restores the
    random generators (for bit-exact resumption; else call :func:`restore_rng_state` yourself).
    A plain safetensors file of weights (no ``model.`` prefix) loads into ``model`` as a state_dict.
    """
    path = Path(path)
    tensors, meta = _read(path)
    ours = meta.get("format") == FORMAT
    if ours:
        weights = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    else:
        weights = dict(tensors)
    if model is not None:
        if map_location is not None:
            model.to(map_location)
        try:
            model.load_state_dict(weights, strict=strict)
        except RuntimeError as e:
            raise CheckpointError(f"{path}: the weights do not fit {type(model).__name__}: {e}") from e
    if optimizer is not None:
        _restore_optimizer(optimizer, tensors, _loads(meta, "optimizer", path) if ours else None, path)
    if scheduler is not None:
        smeta = _loads(meta, "scheduler", path) if ours else None
        _check_stored(path, smeta, scheduler, "a scheduler")
        scheduler.load_state_dict(smeta["state"])
    rng = _loads(meta, "rng", path) if ours else None
    if restore_rng and rng is not None:
        restore_rng_state(rng)
    return {
        "epoch": _loads(meta, "epoch", path) if ours else None,
        "config": _loads(meta, "config", path) if ours else None,
        "extra": _loads(meta, "extra", path) if ours else None,
        "rng": rng,
        "version": meta.get("version"),
        "model_state": weights,
        "metadata": meta,
    }
