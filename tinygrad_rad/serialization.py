"""``tinygrad_rad.save`` / ``tinygrad_rad.load``: ``torch.save`` / ``torch.load`` for tensors, state dicts and
nested containers, stored as ONE safetensors file (never pickle, so loading a file cannot run code).

    >>> tr.save(model.state_dict(), "model.safetensors")
    >>> model.load_state_dict(tr.load("model.safetensors"))
    >>> tr.save({"epoch": 3, "weights": [w1, w2], "note": "best"}, "run.safetensors")
    >>> tr.load("run.safetensors", map_location="cpu")["epoch"]
    3

The layout: every tensor (and NumPy array) is one safetensors entry; the structure around them
(dicts, lists, tuples, plain values: int, float, str, bool, None) is JSON in the file's metadata
under ``"tinygrad_rad"``. A dict of tensors with string keys (a state dict) is stored with its keys
as the entry names, so the file is an ordinary safetensors state dict that other tools read too, and
``load`` reads any safetensors file (a plain one gives a dict of tensors).

Writes are atomic (:func:`tinygrad_rad.utils.atomic_output`): a killed save leaves the old file.
"""

from __future__ import annotations

import json
import math
import os
import struct
from collections.abc import Mapping

import numpy as np

from .device import canonical_device
from .tensor import Tensor

_KEY = "tinygrad_rad"
_FORMAT = "tinygrad_rad.save/1"


def _safetensors():
    try:
        import safetensors.numpy as st_numpy
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "tinygrad_rad.save/load need the safetensors package: pip install 'tinygrad_rad[train]' "
            "(or pip install safetensors)"
        ) from e
    return st_numpy


# ------------------------------------------------------------------------------------------ save
def _encode(obj, path: str, arrays: dict, flat_names: bool):
    """The JSON node of ``obj``; tensors go into ``arrays`` under a unique name."""
    if isinstance(obj, (Tensor, np.ndarray)):
        name = path if flat_names else f"{len(arrays)}:{path}"
        if name in arrays:
            raise ValueError(f"save: two tensors would be stored under the name {name!r}")
        if isinstance(obj, Tensor):
            arr, node = obj.numpy(), {"tensor": name}
            if obj.device != "cpu":
                node["device"] = str(obj.device)
            if obj.requires_grad:
                node["requires_grad"] = True
        else:
            arr, node = obj, {"ndarray": name}
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"save: the array at {path or 'the top level'!r} has dtype {arr.dtype}, which "
                            "safetensors cannot store (bool, integers and floats only)")
        # NOTE: not np.ascontiguousarray, which turns a 0-d array into shape (1,)
        arrays[name] = arr if arr.flags.c_contiguous else arr.copy(order="C")
        return node
    if isinstance(obj, Mapping):
        items = []
        for k, v in obj.items():
            if isinstance(k, bool) or not isinstance(k, (str, int)):
                raise TypeError(f"save: dict keys must be str or int, got {type(k).__name__} {k!r} at "
                                f"{path or 'the top level'!r}")
            items.append([k, _encode(v, f"{path}.{k}" if path else str(k), arrays, flat_names)])
        return {"dict": items}
    if isinstance(obj, (list, tuple)):
        kind = "list" if isinstance(obj, list) else "tuple"
        return {kind: [_encode(v, f"{path}.{i}" if path else str(i), arrays, flat_names)
                       for i, v in enumerate(obj)]}
    if obj is None or isinstance(obj, (bool, str)):
        return {"value": obj}
    if isinstance(obj, (int, np.integer)) and not isinstance(obj, np.bool_):
        return {"value": int(obj)}
    if isinstance(obj, np.bool_):
        return {"value": bool(obj)}
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return {"value": f} if math.isfinite(f) else {"float": repr(f)}  # JSON has no inf / nan
    hint = " (for a model or optimizer, save its state_dict())" if hasattr(obj, "state_dict") else ""
    raise TypeError(
        f"save: cannot store an object of type {type(obj).__name__} at {path or 'the top level'!r}{hint}; "
        "tinygrad_rad.save stores Tensors, NumPy arrays, dicts, lists and tuples of them, and plain values "
        "(int, float, str, bool, None) - never pickles"
    )


def save(obj, f) -> None:
    """Write ``obj`` (a Tensor, a state dict, or nested dicts/lists/tuples of tensors and plain values) to
    ``f`` (a path, or a binary file object) as safetensors; atomic when ``f`` is a path.

    Raises TypeError naming the place of an object it cannot store (a Module, a function, a set...).
    """
    flat = isinstance(obj, Mapping) and all(isinstance(k, str) for k in obj) and \
        all(isinstance(v, Tensor) for v in obj.values())
    arrays: dict = {}
    tree = _encode(obj, "" if not isinstance(obj, (Tensor, np.ndarray)) else "tensor", arrays, flat)
    meta = {_KEY: json.dumps({"format": _FORMAT, "tree": tree})}
    data = _safetensors().save(arrays, metadata=meta)
    if hasattr(f, "write"):
        f.write(data)
        return
    from .utils import atomic_output

    path = os.fspath(f)
    if os.path.isdir(path):
        raise IsADirectoryError(f"save: {path!r} is a folder; give a file name such as model.safetensors")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise FileNotFoundError(f"save: the folder of {path!r} does not exist")
    with atomic_output(path) as tmp, open(tmp, "wb") as out:
        out.write(data)


# ------------------------------------------------------------------------------------------ load
def _map(device, map_location):
    if map_location is None:
        return device
    if isinstance(map_location, Mapping):
        return map_location.get(device, device)
    if callable(map_location) and not isinstance(map_location, str):
        raise TypeError("load: map_location must be a device (str / tinygrad_rad.device) or a dict "
                        "{saved: new}; a function is not supported")
    return map_location


def _decode(node, arrays: dict, map_location, where: str):
    if not isinstance(node, dict) or len(node) < 1:
        raise ValueError(f"load: {where}: malformed structure entry {node!r}")
    if "tensor" in node:
        dev = canonical_device(_map(node.get("device", "cpu"), map_location))
        t = Tensor(arrays[node["tensor"]], device=dev)
        if node.get("requires_grad"):
            t.requires_grad_(True)
        return t
    if "ndarray" in node:
        return arrays[node["ndarray"]]
    if "dict" in node:
        return {k: _decode(v, arrays, map_location, where) for k, v in node["dict"]}
    if "list" in node:
        return [_decode(v, arrays, map_location, where) for v in node["list"]]
    if "tuple" in node:
        return tuple(_decode(v, arrays, map_location, where) for v in node["tuple"])
    if "value" in node:
        return node["value"]
    if "float" in node:
        return float(node["float"])
    raise ValueError(f"load: {where}: unknown structure entry {node!r}")


def _header(data: bytes, where: str) -> dict:
    if len(data) < 8:
        raise ValueError(f"load: {where} is not a safetensors file ({len(data)} bytes)")
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        raise ValueError(_not_safetensors(data, where))
    try:
        return json.loads(data[8:8 + n])
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ValueError(_not_safetensors(data, where)) from None


def _not_safetensors(data: bytes, where: str) -> str:
    msg = f"load: {where} is not a safetensors file"
    if data[:2] == b"PK" or data[:1] == b"\x80":
        msg += (" (it looks like a torch.save / pickle file, which tinygrad_rad never unpickles; convert it "
                "once with PyTorch: safetensors.torch.save_file(torch.load(path), 'model.safetensors'))")
    return msg


def load(f, map_location=None, weights_only: bool = True, **kwargs):
    """Read what :func:`save` wrote (or any safetensors file: a plain one gives a dict of tensors).

    ``map_location``: None (the devices the tensors were saved from), a device ("cpu",
    ``tinygrad_rad.device("cuda")``) or a dict ``{"cuda": "cpu"}``. ``weights_only`` is accepted for
    PyTorch compatibility: nothing is ever unpickled, so every load is weights-only.
    """
    if kwargs:
        raise TypeError(f"load() got unexpected keyword arguments {sorted(kwargs)}")
    if hasattr(f, "read"):
        data, where = f.read(), "the file object"
    else:
        path = os.fspath(f)
        where = repr(path)
        if os.path.isdir(path):
            raise IsADirectoryError(f"load: {path!r} is a folder, not a file")
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except FileNotFoundError:
            raise FileNotFoundError(f"load: no such file {path!r}") from None
        except PermissionError:
            raise PermissionError(f"load: permission denied reading {path!r}") from None
    header = _header(bytes(data), where)
    try:
        arrays = _safetensors().load(bytes(data))
    except Exception as e:
        raise ValueError(f"load: {where} is a damaged safetensors file: {e}") from None
    meta = (header.get("__metadata__") or {}).get(_KEY)
    if meta is None:  # an ordinary safetensors file: its tensors by name
        dev = canonical_device(_map("cpu", map_location))
        return {k: Tensor(v, device=dev) for k, v in arrays.items()}
    try:
        info = json.loads(meta)
        tree = info["tree"]
    except (json.JSONDecodeError, KeyError, TypeError):
        raise ValueError(f"load: {where}: the tinygrad_rad metadata is damaged") from None
    try:
        return _decode(tree, arrays, map_location, where)
    except KeyError as e:
        raise ValueError(f"load: {where}: the structure names a missing tensor {e}") from None


__all__ = ["save", "load"]

