"""The optional CUDA backend's availability checks (loaded on first use, chainer-style).

``is_available()`` never raises. ``device="cuda"`` works when either

* a real NVIDIA GPU is present and CuPy + numba-cuda are installed (``pip install tinygrad_rad[cuda]``), or
* ``NUMBA_ENABLE_CUDASIM=1`` is set and numba-cuda is installed: arrays stay NumPy arrays and the
  project's Numba CUDA kernels run in Numba's CUDA simulator (slow; for tests and learning).
"""

from __future__ import annotations

import functools
import os


def is_simulator() -> bool:
    """True when ``NUMBA_ENABLE_CUDASIM=1`` (the Numba CUDA simulator stands in for a GPU)."""
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")


@functools.cache
def _gpu_status() -> tuple[bool, str]:
    try:
        import cupy
    except Exception as e:  # ImportError, or a broken CUDA install
        return False, f"CuPy is not installed ({type(e).__name__}: {e})"
    try:
        if not cupy.cuda.is_available():
            return False, "CuPy is installed but finds no CUDA GPU"
    except Exception as e:
        return False, f"CuPy cannot reach a CUDA driver ({e})"
    try:
        from numba import cuda as _  # noqa: F401
    except Exception as e:
        return False, f"numba-cuda is not installed ({e})"
    return True, "ok"


def _simulator_status() -> tuple[bool, str]:
    try:
        from numba import cuda as _  # noqa: F401
    except Exception as e:
        return False, f"NUMBA_ENABLE_CUDASIM=1 is set but numba's CUDA target cannot be imported ({e})"
    return True, "ok"


def is_available() -> bool:
    """True when ``device="cuda"`` can be used (a real GPU, or the CUDA simulator). Never raises."""
    if is_simulator():
        return _simulator_status()[0]
    return _gpu_status()[0]


def require() -> None:
    """Raise one clear error when ``device="cuda"`` cannot be used."""
    ok, why = _simulator_status() if is_simulator() else _gpu_status()
    if not ok:
        raise RuntimeError(
            f"device 'cuda' is not available: {why}. On a machine with an NVIDIA GPU run "
            "`pip install tinygrad_rad[cuda]`; without a GPU you can run the CUDA kernels in Numba's "
            "simulator with `NUMBA_ENABLE_CUDASIM=1` (slow, for tests and learning)."
        )


def device_info() -> dict:
    """What ``device="cuda"`` runs on: name, compute capability, memory, simulator flag.

    >>> tinygrad_rad.cuda.device_info()["name"]
    'NVIDIA H100 80GB HBM3'
    """
    require()
    if is_simulator():
        return {"name": "Numba CUDA simulator", "simulator": True, "compute_capability": None,
                "total_memory_bytes": None, "multiprocessors": None}
    import cupy

    dev = cupy.cuda.Device()
    props = cupy.cuda.runtime.getDeviceProperties(dev.id)
    name = props["name"]
    return {
        "name": name.decode() if isinstance(name, bytes) else str(name),
        "simulator": False,
        "compute_capability": (int(props["major"]), int(props["minor"])),
        "total_memory_bytes": int(props["totalGlobalMem"]),
        "multiprocessors": int(props["multiProcessorCount"]),
    }


def device_name() -> str:
    """The GPU's name (``"Numba CUDA simulator"`` under the simulator)."""
    return device_info()["name"]


def synchronize() -> None:
    """Block until every kernel queued on the GPU has finished (use before reading a timer)."""
    require()
    if is_simulator():
        return  # the simulator runs kernels synchronously
    import cupy

    cupy.cuda.Device().synchronize()
