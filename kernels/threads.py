"""Threads on the CPU: OpenBLAS's thread count, a small pool that splits a batch across cores, and malloc.

Why this module exists (measured on the project's 2-core CPU, benchmarks/NOTES.md section 5):

* A convolution is copies (im2col, col2im, layout changes) around BLAS GEMMs. With the GEMM threaded
  inside OpenBLAS and the copies threaded in Numba, the two thread pools took turns dozens of times per
  conv, and OpenBLAS's workers kept spinning after each GEMM while Numba's needed the same cores. The
  conv kernels therefore split the *batch* instead: each of ``numba.get_num_threads()`` Python threads
  takes a contiguous slice of the images and runs its copies (serial Numba code that releases the GIL)
  and its GEMMs (OpenBLAS on one thread) with no barrier until the end. ``run_parts`` does that split.
* Numba's ``workqueue`` threading layer (``configure.configure_cpu`` selects it) aborts the process when two
  Python threads launch parallel kernels at once: ``serialized`` makes the public kernels take turns, but
  only where that layer is (or may become) the one in use.
* OpenBLAS's thread count is process-wide. ``blas_threads(1)`` sets it for the duration of a conv and
  restores it afterwards (``openblas_set_num_threads`` is cheap: it never starts or stops threads).
  Where NumPy does not use OpenBLAS (MKL, Accelerate), ``BLAS_CONTROL`` is False and ``run_parts`` runs
  one part on the calling thread, with the BLAS library threading each GEMM itself.

Example::

    >>> from tinygrad_rad.kernels import threads
    >>> threads.run_parts(10, lambda lo, hi: hi - lo)     # on 2 threads: [5, 5]
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import ctypes
import functools
import os
import sys
import threading

import numba
import numpy as np  # noqa: F401  (NumPy must be loaded for its OpenBLAS to be found)

__all__ = ["BLAS_CONTROL", "blas_threads", "get_blas_threads", "set_blas_threads", "set_num_threads",
           "run_parts", "serialized", "PARALLEL_LOCK", "tune_malloc", "malloc_tuned"]

# the symbol names of openblas_{get,set}_num_threads: NumPy's wheels (scipy-openblas, 64-bit ints) first
_SYMBOLS = [("scipy_openblas_get_num_threads64_", "scipy_openblas_set_num_threads64_"),
            ("scipy_openblas_get_num_threads", "scipy_openblas_set_num_threads"),
            ("openblas_get_num_threads64_", "openblas_set_num_threads64_"),
            ("openblas_get_num_threads", "openblas_set_num_threads")]


def _find_openblas():
    """(get, set) ctypes functions of the OpenBLAS that NumPy loaded, or None (not Linux, not OpenBLAS)."""
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "openblas" in line.lower() and ".so" in line}
    except OSError:
        return None
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for get_name, set_name in _SYMBOLS:
            if hasattr(lib, get_name) and hasattr(lib, set_name):
                get, set_ = getattr(lib, get_name), getattr(lib, set_name)
                get.restype, get.argtypes = ctypes.c_int, []
                set_.restype, set_.argtypes = None, [ctypes.c_int]
                return get, set_
    return None


_OPENBLAS = _find_openblas()
BLAS_CONTROL: bool = _OPENBLAS is not None  # can we read and set OpenBLAS's thread count?


def get_blas_threads() -> int | None:
    """OpenBLAS's current thread count (None where it cannot be read)."""
    return _OPENBLAS[0]() if _OPENBLAS else None


def set_blas_threads(n: int) -> None:
    """Set OpenBLAS's thread count for the whole process (no-op where it cannot be controlled)."""
    if _OPENBLAS:
        _OPENBLAS[1](max(1, int(n)))


@contextlib.contextmanager
def blas_threads(n: int):
    """``with blas_threads(1): ...`` runs the block with OpenBLAS on ``n`` threads, then restores it."""
    before = get_blas_threads()
    if before is None or before == n:
        yield
        return
    set_blas_threads(n)
    try:
        yield
    finally:
        set_blas_threads(before)


def set_num_threads(n: int | None) -> None:
    """Use ``n`` threads for Numba's parallel loops, the batch-split conv kernels and BLAS (None: all cores).

    Example: ``set_num_threads(1)`` on a machine that other jobs keep busy.
    """
    n = numba.config.NUMBA_NUM_THREADS if not n else min(int(n), numba.config.NUMBA_NUM_THREADS)
    numba.set_num_threads(n)
    if BLAS_CONTROL:
        set_blas_threads(n)
        return
    try:  # another BLAS (MKL, Accelerate): threadpoolctl knows how, where it is installed
        from threadpoolctl import threadpool_limits

        threadpool_limits(n, user_api="blas")
    except ImportError:
        pass


_pool: cf.ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _get_pool(workers: int) -> cf.ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None or _pool._max_workers < workers:  # noqa: SLF001
            old, _pool = _pool, cf.ThreadPoolExecutor(workers, thread_name_prefix="tgr-conv")
            if old is not None:
                old.shutdown(wait=False)
        return _pool


def run_parts(n: int, fn, parts: int | None = None) -> list:
    """Split ``range(n)`` into contiguous slices, call ``fn(lo, hi)`` for each on its own thread (the
    calling thread takes the first), with OpenBLAS on one thread meanwhile; return the results in order.

    ``parts`` defaults to ``numba.get_num_threads()``; it is 1 where OpenBLAS cannot be controlled.
    # NOTE: ``fn`` must release the GIL for the parts to overlap: NumPy's matmul and copies do, and so do
    # Numba functions compiled with ``nogil=True``. It must not launch Numba *parallel* loops (the
    # workqueue threading layer aborts when two threads launch them at once).
    """
    parts = numba.get_num_threads() if parts is None else parts
    parts = max(1, min(parts, n)) if BLAS_CONTROL else 1
    if parts == 1:
        return [fn(0, n)]
    bounds = [(n * i // parts, n * (i + 1) // parts) for i in range(parts)]
    with blas_threads(1):
        futures = [_get_pool(parts - 1).submit(fn, lo, hi) for lo, hi in bounds[1:]]
        try:
            first = fn(*bounds[0])
        finally:
            cf.wait(futures)  # never leave a worker running past the BLAS-threads restore
        return [first] + [f.result() for f in futures]


# ------------------------------------------------------------------ one parallel launch at a time
# NOTE: Numba's "workqueue" threading layer is not thread-safe: when two Python threads launch parallel
# kernels at the same time it aborts the whole process ("Terminating: Nested parallel kernel launch
# detected"). The "omp" and "tbb" layers are thread-safe. So the public CPU kernels run under this lock
# when the layer in use is workqueue - or, before the first parallel kernel has run, when it may become
# workqueue (configured so, or left to Numba's "default"/"forksafe" choice, which falls back to it).
# Re-entrant: conv2d_backward_input calls conv2d_forward. Once Numba has fixed its layer (it never changes
# afterwards) the answer is cached, so with omp or tbb the kernels never touch the lock.
PARALLEL_LOCK = threading.RLock()
_NEVER_WORKQUEUE = ("tbb", "omp", "safe", "threadsafe")
_lock_needed: bool | None = None  # None: Numba has not fixed its threading layer yet


def _needs_lock() -> bool:
    global _lock_needed
    if _lock_needed is not None:
        return _lock_needed
    try:
        layer = numba.threading_layer()  # raises ValueError before the first parallel launch
    except ValueError:
        return str(numba.config.THREADING_LAYER).lower() not in _NEVER_WORKQUEUE
    _lock_needed = layer == "workqueue"
    return _lock_needed


def serialized(fn):
    """Decorator for a public kernel that launches Numba parallel loops: with the workqueue threading
    layer it runs under PARALLEL_LOCK (one parallel kernel at a time in the process), otherwise as is."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if not _needs_lock():
            return fn(*args, **kwargs)
        with PARALLEL_LOCK:
            return fn(*args, **kwargs)

    return wrapper


# ------------------------------------------------------------------------------------------ malloc
_malloc_tuned = False


def malloc_tuned() -> bool:
    """True once ``tune_malloc`` has raised glibc's thresholds in this process."""
    return _malloc_tuned


def tune_malloc() -> bool:
    """Keep freed large blocks in glibc's heap instead of returning them to the OS (Linux/glibc only).

    Called only by ``configure.configure_cpu`` (never on import: it changes the whole process).

    # NOTE: glibc serves blocks over its mmap threshold (at most 32 MB) with fresh mmaps and unmaps them on
    # free, so every training step paid the kernel for zeroing pages again (`clear_page_erms` was 10 % of a
    # SmallCNN step's CPU samples in `perf`). Raising the mmap and trim thresholds makes the step reuse its
    # memory: 8-15 % faster (benchmarks/NOTES.md section 5). Peak memory is unchanged; memory freed after the
    # peak stays with the process. Set ``TGR_TUNE_MALLOC=0`` to leave malloc alone. Returns True if applied.
    """
    global _malloc_tuned
    if _malloc_tuned or os.environ.get("TGR_TUNE_MALLOC", "1") == "0" or not sys.platform.startswith("linux"):
        return _malloc_tuned
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        # glibc before 2.35 refuses thresholds over 32 MB (64-bit): fall back to that
        mmap_ok = libc.mallopt(m_mmap_threshold, 1 << 30) or libc.mallopt(m_mmap_threshold, 32 << 20)
        _malloc_tuned = bool(mmap_ok) and bool(libc.mallopt(m_trim_threshold, (1 << 31) - 1))
    except (OSError, AttributeError):
        _malloc_tuned = False
    return _malloc_tuned
