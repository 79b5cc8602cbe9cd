"""``python -m tinygrad_rad ...`` runs the ``tinygrad-rad`` command line."""

import sys

from .cli import main

sys.exit(main())
