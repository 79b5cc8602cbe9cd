"""Shared helpers of the Numba CUDA kernels: array hand-over, launch sizes, kernel caches.

Arrays reach the kernels as CuPy arrays on a real GPU (handed over through the CUDA array interface,
no copy, no host round-trip) and as NumPy arrays under Numba's CUDA simulator
(``NUMBA_ENABLE_CUDASIM=1``), which runs each CUDA thread as a Python thread.

The tile/block sizes of every kernel are compile-time constants of a kernel *factory*; the
simulator uses small ones (few threads = fast tests) and a real GPU the fast ones. Both run the
same kernel code.
"""

from __future__ import annotations

import functools

import numpy as np

# one definition each, shared with the device layer (re-exported for the kernel modules)
from ..cuda import is_simulator as simulator  # noqa: F401
from ..device import xp_of  # noqa: F401


@functools.cache
def nb_type(dtype):
    """The Numba scalar type of a NumPy dtype (for ``cuda.shared.array`` / ``cuda.local.array``)."""
    import numba

    return numba.from_dtype(np.dtype(dtype))


def contiguous(a):
    """``a`` as a C-contiguous array of its own module (a copy only when needed)."""
    return xp_of(a).ascontiguousarray(a)


@functools.cache
def _quiet_numba() -> None:
    """Small grids are intentional here (one block per channel, tiny test shapes): silence Numba's
    low-occupancy performance warning."""
    try:
        from numba.cuda.core import config

        config.CUDA_LOW_OCCUPANCY_WARNINGS = 0
    except Exception:  # an older numba-cuda keeps the warning
        pass


def dev(a):
    """The argument a kernel launch receives for array ``a``.

    NumPy arrays pass as they are (simulator); CuPy arrays are wrapped without a copy.
    NOTE: ``sync=False`` - every launch goes on CuPy's current stream (:func:`stream`), the stream
    CuPy's own work on these arrays is queued on, so they are already ordered, and the default
    (``sync=True``) would block the host at every launch.
    """
    if xp_of(a) is np:
        return a
    from numba import cuda

    _quiet_numba()

    return cuda.as_cuda_array(a, sync=False)


_STREAMS: dict = {}


def stream():
    """The stream every Numba launch goes on: CuPy's *current* stream, so kernels stay ordered with the
    CuPy work around them even inside a user's ``with cupy.cuda.Stream(non_blocking=True):``.

    0 (Numba's default stream) under the simulator and for CuPy's legacy null stream.
    NOTE: Numba would otherwise launch on the legacy default stream, which does not wait for (and is
    not waited for by) a non-blocking stream: a race.

        >>> kernel[blocks, threads, stream()](...)
    """
    if simulator():
        return 0
    import cupy
    from numba import cuda

    ptr = int(cupy.cuda.get_current_stream().ptr)
    if ptr == 0:
        return 0
    s = _STREAMS.get(ptr)
    if s is None:  # a wrapper of the handle only: Numba never destroys an external stream
        s = _STREAMS[ptr] = cuda.external_stream(ptr)
    return s


def launch_1d(n: int) -> tuple[int, int]:
    """(blocks, threads) for a grid-stride loop over ``n`` items."""
    if simulator():
        threads = 16
        return max(1, min((n + threads - 1) // threads, 4)), threads
    threads = 256
    return max(1, min((n + threads - 1) // threads, 65535)), threads


def launch(kernel, n: int, *args) -> None:
    """``kernel(*args)`` on CuPy's current stream with enough threads for a grid-stride loop over ``n``
    items; array arguments are handed over with :func:`dev` (0-d arrays and scalars pass as they are)."""
    if n:
        blocks, threads = launch_1d(n)
        kernel[blocks, threads, stream()](*[dev(a) if hasattr(a, "shape") and a.shape != () else a
                                             for a in args])


def reduce_threads() -> int:
    """Threads per block of the per-channel reduction kernels (a power of two)."""
    return 8 if simulator() else 256
