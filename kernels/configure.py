"""``configure_cpu``: the ONE place that changes the host process for the CPU kernels.

Importing ``tinygrad_rad`` (or its kernels) or running an op leaves the process as its host program set
it up: Numba's threading layer, glibc's malloc and every thread count stay untouched. The settings the
CPU kernels run fastest with are applied only when someone asks for them - the command line, the
examples and the benchmarks call this first thing; a library user may too::

    >>> from tinygrad_rad.kernels import configure_cpu
    >>> configure_cpu(num_threads=2)
    {'threading_layer': 'workqueue', 'malloc_tuned': True, 'num_threads': 2, 'blas_threads': 2}

What it sets, and why (measurements: benchmarks/NOTES.md sections 1e, 5b, 5c):

* **Numba's threading layer -> ``workqueue``.** Numba's default picks ``omp`` (GNU OpenMP) where TBB is
  absent; its threads keep spinning after each parallel loop, and so do OpenBLAS's after each GEMM. On a
  2-core machine the spinners starved the threads doing work (convs ran 3-5x slower on 2 threads than on
  1). The ``workqueue`` layer's threads sleep between loops. The layer is process-wide and is fixed by the
  first parallel kernel that runs, so call this before any kernel runs (a later call cannot change it:
  it warns and keeps the layer in use). ``NUMBA_THREADING_LAYER`` set in the environment wins over the
  argument.
  # NOTE: ``numba.get_num_threads()`` and ``numba.set_num_threads()`` start Numba's thread pool too, which
  # fixes the layer just the same.
  # NOTE: workqueue aborts the process when two Python threads launch parallel kernels at once; the CPU
  # kernels then serialise their launches (``threads.serialized``), and only then.
* **glibc malloc** (``threads.tune_malloc``): freed big blocks stay in the heap instead of going back to
  the OS, so a training step stops paying the kernel to zero fresh pages (8-15 % per SmallCNN step).
  Linux/glibc only; ``TGR_TUNE_MALLOC=0`` refuses it. It cannot be undone, and it speeds up any other
  library in the process (PyTorch in the benchmarks) as well.
* **Thread counts** (``threads.set_num_threads``): Numba's parallel loops, the batch-split conv kernels
  and BLAS together. ``None`` leaves them as they are. Safe to call again at any time for this.
"""

from __future__ import annotations

import os
import warnings

import numba

from . import threads

__all__ = ["configure_cpu"]


def _active_layer() -> str | None:
    """The threading layer Numba's parallel kernels already run on, or None before the first one."""
    try:
        return numba.threading_layer()
    except ValueError:  # "Threading layer is not initialized."
        return None


def configure_cpu(num_threads: int | None = None, threading_layer: str | None = "workqueue",
                  tune_malloc: bool = True) -> dict:
    """Tune this process for tinygrad_rad's CPU kernels; returns what it set.

    Args:
        num_threads: threads for Numba, the batch-split convs and BLAS (capped at ``NUMBA_NUM_THREADS``);
            None leaves the thread counts alone.
        threading_layer: Numba threading layer to select (``"workqueue"``, ``"omp"``, ``"tbb"``, ...);
            None leaves it alone. Takes effect only before the first parallel kernel runs, and only
            where the user did not set ``NUMBA_THREADING_LAYER`` in the environment.
        tune_malloc: raise glibc's mmap / trim thresholds (``threads.tune_malloc``).

    Returns a dict: ``threading_layer`` (the layer selected, None if untouched), ``malloc_tuned``
    (whether glibc's thresholds are raised), ``num_threads`` and ``blas_threads`` (the counts now, None
    where untouched / unknown).

    Example: ``configure_cpu(num_threads=1)`` on a machine that other jobs keep busy.
    """
    result: dict = {"threading_layer": None, "malloc_tuned": threads.malloc_tuned(),
                    "num_threads": None, "blas_threads": None}
    if threading_layer is not None and "NUMBA_THREADING_LAYER" not in os.environ:
        active = _active_layer()
        if active is None:
            numba.config.THREADING_LAYER = threading_layer
            result["threading_layer"] = threading_layer
        elif active != threading_layer:
            warnings.warn(f"configure_cpu: Numba's threading layer is already {active!r} (a parallel kernel "
                          f"ran before this call); {threading_layer!r} is not applied. Call configure_cpu "
                          "before running any op.", RuntimeWarning, stacklevel=2)
        else:
            result["threading_layer"] = active
    if tune_malloc:
        result["malloc_tuned"] = threads.tune_malloc()
    if num_threads is not None:
        threads.set_num_threads(num_threads)
        result["num_threads"] = numba.get_num_threads()
        result["blas_threads"] = threads.get_blas_threads()
    return result
