"""NCCL for CuPy arrays (``init_process_group(backend="nccl")``): GPU-to-GPU all-reduce.

One GPU per process, chosen by the local rank (``local_rank % device_count``). Rank 0 makes the
NCCL unique id and MPI broadcasts it (as JSON); every rank then joins ``NcclCommunicator(world, id,
rank)``. Collectives run on a dedicated non-blocking stream that first waits for the work queued
on the current stream (so a gradient is complete before it is sent); each returns a CUDA event that
:class:`~tinygrad_rad.distributed.process_group.ProcessGroup` polls with its deadline (on a timeout
the communicator is aborted, so no kernel waits forever for a dead peer).

Not testable without GPUs: ``benchmarks/gpu_distributed.py`` runs it on a GPU machine.
"""

from __future__ import annotations

import json

__all__ = ["NcclComm", "nccl_dtype", "nccl_op"]


def _modules():
    try:
        import cupy
        from cupy.cuda import nccl
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "backend='nccl' needs CuPy with NCCL (pip install 'tinygrad_rad[cuda]'); use backend='mpi' "
            "to all-reduce through host memory instead"
        ) from e
    if not getattr(nccl, "available", True):  # pragma: no cover
        raise ImportError("this CuPy build has no NCCL; use backend='mpi'")
    return cupy, nccl


_DTYPES = {"float32": "NCCL_FLOAT32", "float64": "NCCL_FLOAT64", "float16": "NCCL_FLOAT16",
           "int32": "NCCL_INT32", "int64": "NCCL_INT64", "uint8": "NCCL_UINT8", "int8": "NCCL_INT8"}
_OPS = {"sum": "NCCL_SUM", "avg": "NCCL_SUM", "product": "NCCL_PROD", "min": "NCCL_MIN", "max": "NCCL_MAX"}


def nccl_dtype(nccl, dtype) -> int:
    """The NCCL datatype constant of a NumPy/CuPy dtype (a clear TypeError for others)."""
    name = str(getattr(dtype, "name", dtype))
    if name not in _DTYPES:
        raise TypeError(f"NCCL cannot reduce arrays of dtype {name}; supported: {', '.join(_DTYPES)}")
    return getattr(nccl, _DTYPES[name])


def nccl_op(nccl, op: str) -> int:
    return getattr(nccl, _OPS[op])


def _encode_uid(uid) -> dict:
    if isinstance(uid, (bytes, bytearray)):
        return {"bytes": bytes(uid).hex()}
    return {"tuple": [int(v) for v in uid]}  # CuPy < 13 returns a tuple of ints


def _decode_uid(d: dict):
    return bytes.fromhex(d["bytes"]) if "bytes" in d else tuple(d["tuple"])


class NcclComm:
    """An NCCL communicator over the ranks of a process group, on its own CUDA stream."""

    def __init__(self, cupy, nccl, comm, device_id: int):
        self.cupy, self.nccl, self.comm, self.device_id = cupy, nccl, comm, device_id
        self.stream = cupy.cuda.Stream(non_blocking=True)
        self._inflight: list = []  # (done event, arrays): keeps buffers alive until NCCL is done

    @classmethod
    def create(cls, group) -> NcclComm:
        cupy, nccl = _modules()
        n = cupy.cuda.runtime.getDeviceCount()
        if n < 1:
            raise RuntimeError("backend='nccl' but no CUDA device is visible")
        device_id = group.local_rank % n
        cupy.cuda.Device(device_id).use()
        uid = _encode_uid(nccl.get_unique_id()) if group.rank == 0 else None
        data = json.dumps(uid).encode() if group.rank == 0 else None
        uid = _decode_uid(json.loads(group.broadcast_bytes(data, 0, "NCCL unique id").decode()))
        comm = nccl.NcclCommunicator(group.world_size, uid, group.rank)
        return cls(cupy, nccl, comm, device_id)

    def _enqueue(self, launch, *arrays):
        """Order after the current stream's work, launch on our stream, return the 'done' event."""
        cuda = self.cupy.cuda
        ready = cuda.Event(disable_timing=True)
        ready.record(cuda.get_current_stream())
        self.stream.wait_event(ready)
        launch(self.stream.ptr)
        done = cuda.Event(disable_timing=True)
        done.record(self.stream)
        # NOTE: later work on the current stream (the optimizer step) must see the result
        cuda.get_current_stream().wait_event(done)
        self._inflight = [(e, a) for e, a in self._inflight if not e.done] + [(done, arrays)]
        return done

    def all_reduce(self, buf, op: str):
        dt, o = nccl_dtype(self.nccl, buf.dtype), nccl_op(self.nccl, op)
        ptr = buf.data.ptr
        return self._enqueue(lambda s: self.comm.allReduce(ptr, ptr, buf.size, dt, o, s), buf)

    def broadcast(self, buf, root: int):
        dt = nccl_dtype(self.nccl, buf.dtype)
        return self._enqueue(lambda s: self.comm.bcast(buf.data.ptr, buf.size, dt, root, s), buf)

    def all_gather(self, buf, out):
        dt = nccl_dtype(self.nccl, buf.dtype)
        src = self.cupy.ascontiguousarray(buf)
        sp, op = src.data.ptr, out.data.ptr
        return self._enqueue(lambda s: self.comm.allGather(sp, op, src.size, dt, s), src, out)

    def abort(self) -> None:
        try:
            self.comm.abort()
        except Exception:  # noqa: BLE001 - best effort while failing anyway
            pass

    def destroy(self) -> None:
        try:
            self.comm.destroy()
        except Exception:  # noqa: BLE001
            pass
