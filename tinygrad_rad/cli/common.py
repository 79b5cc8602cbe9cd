"""What every ``tinygrad-rad`` command shares: the common flags and their checks.

Every command takes the same names for the same things: ``--data-dir`` (the data folder), ``--data`` /
``--dataset`` (which data in it), ``--out`` (the output folder), ``--device``, ``--num-threads``,
``--seed`` and, for training, ``--epochs``. Older spellings stay as aliases.
"""

from __future__ import annotations

import argparse
import math
import sys

__all__ = ["CLIError", "ArgumentParser", "positive_int", "non_negative_int", "finite_float", "add_data_dir",
           "add_device", "add_seed", "add_epochs", "add_resume", "resume_keep"]

# what `--resume` may change: how the run goes on, and how long (the rest is the run's recipe)
RESUME_MAY_CHANGE = {"resume", "epochs", "device", "num_threads", "no_progress", "progress", "no_plots",
                     "plots", "data_dir", "detect_anomaly"}


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


def positive_float(s: str) -> float:
    v = finite_float(s)
    if v <= 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {s}")
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
