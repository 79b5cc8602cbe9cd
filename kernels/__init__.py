"""tinygrad_rad's kernels (installed as ``tinygrad_rad.kernels``), in tiers with one interface.

* ``reference``  - tier 0: plain NumPy, the ground truth every other tier is tested against.
* ``cpu_plain``  - tier 1: plain, readable Numba CPU loops.
* ``cpu``        - tier 2: the fast CPU kernels (the default for ``device="cpu"``).
* ``cuda_plain`` - tier 3: plain Numba CUDA kernels, one thread per output element.
* ``cuda``       - tier 4: the fast CUDA kernels (the default for ``device="cuda"``).

Each tier module exposes the same functions (``matmul``, ``conv2d_forward``, ...); ops pick one with
``tinygrad_rad.device.backend(device)``. See ``kernels/README.md`` for the table.

``configure_cpu(...)`` (in ``configure.py``) is the only code that changes the host process (Numba's
threading layer, malloc, thread counts); nothing here does on import. This file stays import-light: it
loads Numba only when ``configure_cpu`` is first used.
"""

from __future__ import annotations

__all__ = ["configure_cpu"]


def __getattr__(name: str):
    if name == "configure_cpu":
        from .configure import configure_cpu

        return configure_cpu
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
