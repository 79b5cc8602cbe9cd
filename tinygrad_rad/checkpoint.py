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

Reading checks the file before trusting it: an empty, truncated or garbage file, or a metadata field of
the wrong shape (``epoch`` not an integer, ``config`` not an object, ...), raises ONE
:class:`CheckpointError` naming the file and the field. :func:`config_from_checkpoint` also checks each
stored config value against the type of the config dataclass field.
"""

from __future__ import annotations

import dataclasses
import json
import os
import struct
import types
import typing
from pathlib import Path
from typing import Any

import numpy as np

from .random import get_rng_state, set_rng_state
from .utils import atomic_output

__all__ = ["save_checkpoint", "load_checkpoint", "read_checkpoint_info", "restore_rng_state",
           "config_from_checkpoint", "CheckpointError"]

FORMAT = "tinygrad_rad.checkpoint/1"


class CheckpointError(ValueError):
    """The file is not a readable checkpoint, or does not fit the model/optimizer given."""


class CheckpointPermissionError(CheckpointError, PermissionError):
    """The checkpoint exists but may not be read (also a ``PermissionError``)."""


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
                    extra=None, ema=None) -> Path:
    """Write model weights (+ optimizer, scheduler, epoch, config, extra, RNG states and the ``state_dict``
    of an ``ema`` module such as an :class:`~tinygrad_rad.optim.swa_utils.AveragedModel`) to ``path``
    atomically.

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
    if ema is not None:
        for k, t in ema.state_dict().items():
            tensors[f"ema.{k}"] = np.asarray(t.numpy(), order="C")
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


_MAX_HEADER = 100 << 20  # safetensors' own limit on the JSON header (100 MB)


def _check_file(path: Path) -> None:
    """Raise one clear error unless ``path`` is a complete safetensors file (header and data sizes)."""
    bad = f"{path} is not a readable safetensors checkpoint"
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            head = f.read(8)
            if size == 0:
                raise CheckpointError(f"{bad}: the file is empty (0 bytes)")
            if len(head) < 8:
                raise CheckpointError(f"{bad}: truncated to {size} bytes (no 8-byte header length)")
            (n,) = struct.unpack("<Q", head)
            if n > _MAX_HEADER or 8 + n > size:
                raise CheckpointError(
                    f"{bad}: its header length field says {n} bytes but the file holds {size} bytes "
                    "(truncated, or not a safetensors file)"
                )
            raw = f.read(n)
    except IsADirectoryError:
        raise IsADirectoryError(f"checkpoint {path} is a directory, not a file") from None
    except PermissionError:
        raise CheckpointPermissionError(
            f"checkpoint {path}: permission denied (it exists but cannot be read)"
        ) from None
    try:
        header = json.loads(raw.decode("utf-8"))
        if not isinstance(header, dict):
            raise ValueError("the header is not a JSON object")
        ends = [int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"]
    except (UnicodeDecodeError, ValueError, TypeError, KeyError, IndexError) as e:
        raise CheckpointError(f"{bad}: its header is not valid safetensors JSON ({e})") from None
    have = size - 8 - n
    if ends and max(ends) > have:
        raise CheckpointError(
            f"{bad}: truncated: the tensor data should be {max(ends)} bytes but the file holds {have} "
            "(an interrupted copy?)"
        )


def _read(path: Path, weights: bool = True) -> tuple[dict, dict]:
    """(tensors by name, metadata) of a checked safetensors file; ``weights=False``: the header only."""
    safetensors, st_numpy = _safetensors()
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    if path.is_dir():
        raise IsADirectoryError(f"checkpoint {path} is a directory, not a file")
    _check_file(path)
    try:
        tensors = st_numpy.load_file(str(path)) if weights else {}
        with safetensors.safe_open(str(path), framework="np") as f:
            meta = f.metadata() or {}
    except Exception as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CheckpointError(f"{path} is not a readable safetensors checkpoint: {msg}") from e
    return tensors, meta


# metadata field -> (check, what it must be); None is always allowed (a field not given at save time)
_FIELDS = {
    "epoch": (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"),
    "config": (lambda v: isinstance(v, dict), "a JSON object"),
    "extra": (lambda v: isinstance(v, dict), "a JSON object"),
    "rng": (lambda v: isinstance(v, dict), "a JSON object"),
    "optimizer": (lambda v: isinstance(v, dict) and isinstance(v.get("type"), str)
                  and isinstance(v.get("param_groups"), list)
                  and all(isinstance(g, dict) for g in v["param_groups"])
                  and isinstance(v.get("state", {}), dict),
                  'an object {"type": str, "param_groups": [objects], "state": object}'),
    "scheduler": (lambda v: isinstance(v, dict) and isinstance(v.get("type"), str)
                  and isinstance(v.get("state"), dict), 'an object {"type": str, "state": object}'),
}


def _show(v) -> str:
    r = json.dumps(v) if not isinstance(v, str) else repr(v)
    return (r if len(r) <= 60 else r[:57] + "...") + f" ({type(v).__name__})"


def _loads(meta: dict, key: str, path: Path):
    if key not in meta:
        return None
    try:
        value = json.loads(meta[key])
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: metadata field {key!r} is not valid JSON: {e}") from None
    check = _FIELDS.get(key)
    if value is not None and check is not None and not check[0](value):
        raise CheckpointError(
            f"{path}: metadata field {key!r} is malformed: expected {check[1]}, got {_show(value)}"
        )
    return value


def _fits(v, t) -> bool:
    """Whether the JSON value ``v`` can stand for a dataclass field annotated ``t`` (shallow check)."""
    if t is None or t is Any:
        return True
    origin, args = typing.get_origin(t), typing.get_args(t)
    if origin is typing.Union or isinstance(t, types.UnionType):
        return any(_fits(v, a) for a in args)
    if t is type(None):
        return v is None
    if origin is typing.Literal:
        return v in args
    base = origin or t
    if base is bool:
        return isinstance(v, bool)
    if base is int:
        return isinstance(v, int) and not isinstance(v, bool)
    if base is float:
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    if base is str:
        return isinstance(v, str)
    if base in (list, tuple):
        if not isinstance(v, (list, tuple)):
            return False
        if base is tuple and args and args[-1] is not Ellipsis:
            return len(v) == len(args) and all(_fits(x, a) for x, a in zip(v, args))
        return not args or all(_fits(x, args[0]) for x in v)
    if base is dict:
        return isinstance(v, dict)
    return True


def _type_name(t) -> str:
    if t is type(None):
        return "null"
    if isinstance(t, type) and not typing.get_args(t):
        return t.__name__
    return str(t).replace("typing.", "")


def config_from_checkpoint(config_cls, config, path, **overrides):
    """The run config stored in a checkpoint as a ``config_cls`` dataclass, each field checked first.

        >>> stored = load_checkpoint("runs/x/last.safetensors")
        >>> cfg = config_from_checkpoint(TrainConfig, stored["config"], "runs/x/last.safetensors")

    A stored value of the wrong type (``"lr": "fast"``, ``"epochs": 2.5``) raises :class:`CheckpointError`
    naming the file and the field. Unknown keys are ignored (a config from another version still loads);
    ``overrides`` replace stored values. Uses ``config_cls.from_dict`` when it has one.
    """
    path = Path(path)
    if config is None:
        raise CheckpointError(f"{path}: metadata field 'config' is missing (not a run checkpoint?)")
    if not isinstance(config, dict):
        raise CheckpointError(f"{path}: metadata field 'config' is malformed: expected a JSON object, "
                              f"got {_show(config)}")
    try:
        hints = typing.get_type_hints(config_cls)
    except Exception:  # NOTE: an annotation that cannot be resolved is simply not checked
        hints = {}
    fields = {f.name for f in dataclasses.fields(config_cls)}
    for name in fields:
        if name in config and not _fits(config[name], hints.get(name)):
            raise CheckpointError(
                f"{path}: config field {name!r} is malformed: expected {_type_name(hints.get(name))}, "
                f"got {_show(config[name])}"
            )
    d = {**config, **overrides}
    try:
        if hasattr(config_cls, "from_dict"):
            return config_cls.from_dict(d)
        return config_cls(**{k: v for k, v in d.items() if k in fields})
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: the stored config does not fit {config_cls.__name__}: {e}") from None


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
    try:
        for name, arr in tensors.items():
            if name.startswith("optim."):
                field = f"tensor {name!r}"
                _, idx, key = name.split(".", 2)
                state.setdefault(int(idx), {})[key] = arr
        field = "metadata field 'optimizer'"
        for idx, scalars in ometa.get("state", {}).items():
            state.setdefault(int(idx), {}).update(scalars)
    except (ValueError, TypeError, AttributeError) as e:
        raise CheckpointError(f"{path}: {field} is malformed ({e})") from None
    groups = []
    for g in ometa["param_groups"]:
        g = dict(g)
        if isinstance(g.get("betas"), list):
            g["betas"] = tuple(g["betas"])
        groups.append(g)
    try:
        optimizer.load_state_dict({"state": state, "param_groups": groups})
    except (ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"{path}: the optimizer state does not fit the optimizer given: {e}") from e


def read_checkpoint_info(path) -> dict[str, Any]:
    """``{"epoch", "config", "extra", "version", "metadata"}`` of a checkpoint from its header alone (the
    weights are not read): what to know before building the model that :func:`load_checkpoint` fills.
    The same checks and errors as :func:`load_checkpoint` for the file and these fields.

        >>> read_checkpoint_info("runs/x/best.safetensors")["extra"]["kind"]
        'classification3d'
    """
    path = Path(path)
    _, meta = _read(path, weights=False)
    ours = meta.get("format") == FORMAT
    info = {k: _loads(meta, k, path) if ours else None for k in ("epoch", "config", "extra")}
    return {**info, "version": meta.get("version"), "metadata": meta}


def load_checkpoint(path, model=None, optimizer=None, scheduler=None, strict: bool = True, map_location=None,
                    restore_rng: bool = False, ema=None) -> dict[str, Any]:
    """Restore whatever is given (model, optimizer, scheduler, ema) from ``path``; return the rest.

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
    if ema is not None:
        averaged = {k[len("ema."):]: v for k, v in tensors.items() if k.startswith("ema.")}
        if not averaged:
            raise CheckpointError(f"{path}: holds no averaged (EMA) weights to restore")
        try:
            ema.load_state_dict(averaged, strict=strict)
        except RuntimeError as e:
            raise CheckpointError(f"{path}: the averaged weights do not fit {type(ema).__name__}: {e}") from e
    if optimizer is not None:
        _restore_optimizer(optimizer, tensors, _loads(meta, "optimizer", path) if ours else None, path)
    if scheduler is not None:
        smeta = _loads(meta, "scheduler", path) if ours else None
        _check_stored(path, smeta, scheduler, "a scheduler")
        try:
            scheduler.load_state_dict(smeta["state"])
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise CheckpointError(f"{path}: metadata field 'scheduler' is malformed ({e})") from None
    rng = _loads(meta, "rng", path) if ours else None
    if restore_rng and rng is not None:
        try:
            restore_rng_state(rng)
        except (ValueError, KeyError, TypeError, AttributeError, IndexError) as e:
            raise CheckpointError(f"{path}: metadata field 'rng' is malformed ({type(e).__name__}: {e})")\
                from None
    return {
        "epoch": _loads(meta, "epoch", path) if ours else None,
        "config": _loads(meta, "config", path) if ours else None,
        "extra": _loads(meta, "extra", path) if ours else None,
        "rng": rng,
        "version": meta.get("version"),
        "model_state": weights,
        "metadata": meta,
    }
