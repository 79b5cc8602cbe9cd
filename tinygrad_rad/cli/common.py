"""What every ``tinygrad-rad`` command shares: the common flags and their checks.

Every command takes the same names for the same things: ``--data-dir`` (the data folder), ``--data`` /
``--dataset`` (which data in it), ``--out`` (the output folder), ``--device``, ``--num-threads``,
``--seed`` and, for training, ``--epochs``. Older spellings stay as aliases.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys

from ..autograd import detect_anomaly

__all__ = ["CLIError", "ArgumentParser", "positive_int", "non_negative_int", "finite_float", "add_data_dir",
           "add_device", "add_seed", "add_epochs", "add_resume", "resume_keep", "add_distributed",
           "start_distributed", "fit_and_report"]

# what `--resume` may change: how the run goes on, and how long (the rest is the run's recipe)
RESUME_MAY_CHANGE = {"resume", "epochs", "device", "num_threads", "no_progress", "progress", "no_plots",
                     "plots", "data_dir", "detect_anomaly", "nproc", "hostfile", "sync_bn"}


class CLIError(Exception):
    """A usage problem found before any work starts (printed as one line, exit status 2)."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line on stderr (what and where, then a pointer to --help)."""

    def error(self, message: str):
        print(f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def positive_int(s: str) -> int:
    v = int(s)
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {s}")
    return v


def non_negative_int(s: str) -> int:
    v = int(s)
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {s}")
    return v


def finite_float(s: str) -> float:
    """A float that is not nan or +-inf (``--lr nan`` is refused up front)."""
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {s!r}") from None
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {s}")
    return v


def add_data_dir(p: argparse.ArgumentParser, help: str | None = None) -> None:
    p.add_argument("--data-dir", default=None,
                   help=help or "data folder (default: $TINYGRAD_RAD_DATA, else ../shared/data when present, "
                                "else ~/.cache/tinygrad_rad)")


def add_device(p: argparse.ArgumentParser, threads: bool = True) -> None:
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    if threads:
        p.add_argument("--num-threads", type=positive_int, default=None,
                       help="Numba and BLAS threads (default: all cores; use 1 on a busy machine)")


def add_seed(p: argparse.ArgumentParser, default: int = 0, help: str = "random seed") -> None:
    p.add_argument("--seed", type=int, default=default, help=help)


def add_epochs(p: argparse.ArgumentParser, default: int) -> None:
    p.add_argument("--epochs", type=positive_int, default=default)


def add_resume(p: argparse.ArgumentParser) -> None:
    p.add_argument("--resume", metavar="OUT", default=None,
                   help="continue the run in OUT (its last checkpoint, with its stored settings; --epochs "
                        "may raise the number of epochs)")
    p.set_defaults(parser=p)


def given(parser: argparse.ArgumentParser, argv: list) -> set:
    """The dests of the options that appear on the command line (``--lr 0.5`` or ``--lr=0.5``)."""
    words = {a.split("=", 1)[0] for a in argv if a.startswith("-")}
    return {a.dest for a in parser._actions if any(o in words for o in a.option_strings)}


def fit_and_report(args, fit, cfg, resume: bool, keep) -> int:
    """``fit(cfg, resume=, keep=)`` of a classification task (under ``autograd.detect_anomaly`` with
    ``--detect-anomaly``, whose finding becomes one CLIError line), then its test metrics as JSON."""
    with detect_anomaly() if args.detect_anomaly else contextlib.nullcontext():
        try:
            res = fit(cfg, resume=resume, keep=keep)
        except RuntimeError as e:
            if not args.detect_anomaly or not str(e).startswith("Function '"):
                raise
            raise CLIError(f"--detect-anomaly: {e}") from None
    print(json.dumps({k: res[k] for k in ("test_auc", "test_acc", "test_sensitivity", "test_specificity",
                                          "best_epoch", "train_seconds", "images_per_second")}, indent=2))
    return 0


def resume_keep(args, out) -> tuple:
    """For ``--resume``: refuse the options that cannot change a stored run (one clear message), and
    return the config fields the resumed run takes from the command line (``("epochs",)`` when given)."""
    seen = given(args.parser, args.argv)
    refused = sorted(seen - RESUME_MAY_CHANGE)
    if refused:
        names = ", ".join("--" + k.replace("_", "-") for k in refused)
        raise CLIError(f"--resume continues {out} with the settings stored in its checkpoint; {names} cannot "
                       f"change (start a new run with another --out instead)")
    return ("epochs",) if "epochs" in seen else ()


def add_distributed(p: argparse.ArgumentParser) -> None:
    """``--nproc N`` / ``--hostfile H``: data-parallel training on N processes (tinygrad_rad.distributed)."""
    p.add_argument("--nproc", type=positive_int, default=1,
                   help="train on N processes (MPI; the same model as 1 process with the same global "
                        "--batch-size, split over them); also works as `mpirun -n N tinygrad-rad ...`")
    p.add_argument("--hostfile", default=None,
                   help="with --nproc: an mpirun hostfile ('node1 slots=4' per line) to use several machines")
    p.add_argument("--sync-bn", action="store_true",
                   help="distributed: batch-norm statistics over the global batch (SyncBatchNorm) instead of "
                        "each process's share")


def start_distributed(args) -> int | None:
    """Before a command runs: under an MPI launcher join the job (only rank 0 prints to stdout);
    with ``--nproc N > 1`` run this same command under mpirun and return its exit code; else None."""
    from .. import distributed as dist

    nproc, hostfile = getattr(args, "nproc", 1) or 1, getattr(args, "hostfile", None)
    if dist.launched_by_mpi():
        if getattr(args, "num_threads", None) is None and hasattr(args, "num_threads"):
            args.num_threads = dist.default_threads()  # cpu_count // ranks on this machine
        if not dist.is_initialized():
            dist.init_process_group()
        dist.group().sync_batchnorm = bool(getattr(args, "sync_bn", False))  # read by tasks.loop.train
        if not dist.is_main_process():
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - for the life of the process
        return None
    if hostfile is not None and nproc < 2:
        raise CLIError("--hostfile needs --nproc N (the number of processes over its machines)")
    if nproc < 2:
        return None
    try:
        dist.require_mpi()
    except dist.DistributedError as e:
        raise CLIError(f"--nproc {nproc}: {e}") from None
    argv = _without(args.argv, ("--nproc", "--hostfile"))
    return dist.relaunch(nproc, argv, hostfile, threads_per_rank=getattr(args, "num_threads", None))


def _without(argv: list, options: tuple) -> list:
    """argv minus the given options and their values (``--nproc 2`` and ``--nproc=2``)."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        name = a.split("=", 1)[0]
        if name in options:
            skip = "=" not in a
            continue
        out.append(a)
    return out
