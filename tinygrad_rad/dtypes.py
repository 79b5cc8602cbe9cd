"""The dtypes tinygrad_rad supports (NumPy dtypes), and the checks that refuse the others by name."""

from __future__ import annotations

import numpy as np

float32 = np.dtype(np.float32)
float64 = np.dtype(np.float64)
float16 = np.dtype(np.float16)
int64 = np.dtype(np.int64)
int32 = np.dtype(np.int32)
int16 = np.dtype(np.int16)
int8 = np.dtype(np.int8)
uint8 = np.dtype(np.uint8)
bool_ = np.dtype(np.bool_)

# PyTorch's other spellings (tinygrad_rad.int, .long, .float, ... are these; see __init__.py)
half, double, short, long = float16, float64, int16, int64
dtype = np.dtype  # isinstance(x.dtype, tinygrad_rad.dtype) is True, as with torch.dtype

DEFAULT_FLOAT = float32
SUPPORTED = (float32, float64, float16, int64, int32, int16, int8, uint8, bool_)
FLOATING = (float32, float64, float16)

_ALIASES = {
    "float": float32, "float32": float32, "float64": float64, "double": float64,
    "half": float16, "float16": float16, "long": int64, "int64": int64, "int": int32, "int32": int32,
    "short": int16, "int16": int16, "int8": int8, "uint8": uint8, "bool": bool_,
}


def to_dtype(dtype) -> np.dtype:
    """Resolve ``tinygrad_rad.float32``, ``np.float64``, ``"float64"``, ``float`` ... to a NumPy dtype."""
    if isinstance(dtype, str) and dtype in _ALIASES:
        return _ALIASES[dtype]
    if dtype is float:
        return float32
    if dtype is int:
        return int64
    if dtype is bool:
        return bool_
    try:
        dt = np.dtype(dtype)
    except TypeError as e:
        raise TypeError(f"unknown dtype {dtype!r}") from e
    check_dtype(dt)
    return dt


def check_dtype(dt) -> None:
    dt = np.dtype(dt)
    if dt not in SUPPORTED:
        names = ", ".join(str(d) for d in SUPPORTED)
        what = {"U": " (strings)", "S": " (byte strings)", "O": " (Python objects)",
                "c": " (complex numbers)", "M": " (datetimes)", "m": " (timedeltas)",
                "V": " (structured/void)"}.get(dt.kind, "")
        raise TypeError(f"unsupported dtype {dt}{what}; tinygrad_rad supports {names}")


def is_floating(dt) -> bool:
    return np.dtype(dt) in FLOATING
