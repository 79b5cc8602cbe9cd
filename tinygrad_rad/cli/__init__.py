"""The ``tinygrad-rad`` command line: a thin layer that parses arguments and calls :mod:`tinygrad_rad.tasks`.

    $ tinygrad-rad train --out runs/demo                 # classification (cli/classify.py)
    $ tinygrad-rad evaluate | predict | explain ...
    $ tinygrad-rad train --dataset vesselmnist3d         # a 3D flag: the 3D recipe (cli/classify3d.py)
    $ tinygrad-rad predict --checkpoint runs/train3d scan.nii.gz dicom_dir/   # 3D runs: volumes, 3D Grad-CAM
    $ tinygrad-rad segment train|evaluate|predict ...    # U-Net segmentation (cli/segment.py)
    $ tinygrad-rad detect train|evaluate|predict ...     # CenterNet detection (cli/detect.py)

``main(argv)`` returns the exit code: 0, 2 for an expected error (bad input, missing file, full disk,
a loss that became nan, ...: one line on stderr, no traceback), 130 after Ctrl-C. It calls
:func:`tinygrad_rad.kernels.configure_cpu` once (threads from ``--num-threads``, the threading layer,
malloc): importing tinygrad_rad changes nothing in the process, the command line tunes it.
"""

from __future__ import annotations

import argparse
import sys

from .. import __version__
from ..device import canonical_device
from ..kernels import configure_cpu
from ..tasks import NonFiniteLoss, TrainingInterrupted
from . import classify, detect, segment
from .common import ArgumentParser, CLIError, start_distributed

__all__ = ["main", "build_parser", "EXIT_ERROR", "EXIT_INTERRUPTED"]

EXIT_ERROR = 2
EXIT_INTERRUPTED = 130
# what a command may fail with for a reason the user can fix (anything else is a bug: full traceback)
EXPECTED_ERRORS = (CLIError, FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError,
                   ValueError, KeyError, ImportError, OSError, FloatingPointError, MemoryError)


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="tinygrad-rad",
                            description="Train and inspect radiology CNNs with tinygrad_rad.")
    parser.add_argument("--version", action="version", version=f"tinygrad_rad {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    classify.register(sub)
    segment.register(sub)
    detect.register(sub)
    return parser


def _message(e: BaseException) -> str:
    if isinstance(e, KeyError) and e.args:
        return str(e.args[0])
    text = str(e) or type(e).__name__
    if "No space left on device" in text or getattr(e, "errno", None) == 28:
        return f"no space left on device ({text}); free some space and resume the run"
    return text


def _is_expected(e: BaseException) -> bool:
    # NOTE: safetensors' SafetensorError (e.g. a full disk while saving) is matched by name: safetensors is
    # an optional dependency, not imported here
    return isinstance(e, EXPECTED_ERRORS) or type(e).__name__ == "SafetensorError"


def main(argv: list | None = None) -> int:
    """Run the command line; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = argv
    name = " ".join(x for x in (args.command, getattr(args, f"{args.command}_command", None)) if x)
    try:
        if getattr(args, "device", None) is not None:
            try:
                canonical_device(args.device)
            except (RuntimeError, ValueError, TypeError) as e:
                raise CLIError(f"--device {args.device}: {e}") from None
        launched = start_distributed(args)  # --nproc N: this command under mpirun; under MPI: join the job
        if launched is not None:
            return launched
        configure_cpu(num_threads=getattr(args, "num_threads", None))
        return int(args.func(args) or 0)
    except TrainingInterrupted as e:
        print(f"\ninterrupted: saved {e.checkpoint} (epoch {e.epoch + 1}, step {e.step}).\n"
              f"resume with: tinygrad-rad {name} --resume {e.out}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except NonFiniteLoss as e:  # distributed: every rank sees the same (global) loss and stops alike
        print(f"tinygrad-rad {name}: error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as e:
        if not _is_expected(e):
            raise  # distributed: the uncaught exception makes this rank abort the whole job
        print(f"tinygrad-rad {name}: error: {_message(e)}", file=sys.stderr)
        _abort_other_ranks(EXIT_ERROR)
        return EXIT_ERROR


def _abort_other_ranks(code: int) -> None:
    """An error on one rank of a distributed run: end every rank now (they would wait for this one)."""
    from .. import distributed as dist

    if dist.get_world_size() > 1:
        sys.stderr.flush()
        dist.group().abort(code)


if __name__ == "__main__":
    sys.exit(main())
