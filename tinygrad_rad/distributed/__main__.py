"""``python -m tinygrad_rad.distributed -n N [--hostfile H] -- command ...``: run a command on N ranks."""

import sys

from .launcher import main

if __name__ == "__main__":
    sys.exit(main())
