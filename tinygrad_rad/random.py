"""One global random generator for everything tinygrad_rad draws (init, dropout, rand, shuffling).

    >>> tinygrad_rad.manual_seed(0)     # makes a run repeatable
"""

from __future__ import annotations

import numpy as np

_GEN = {"rng": np.random.default_rng(0)}


def manual_seed(seed: int) -> np.random.Generator:
    """Seed the global generator (like ``torch.manual_seed``)."""
    _GEN["rng"] = np.random.default_rng(int(seed))
    return _GEN["rng"]


def get_generator() -> np.random.Generator:
    return _GEN["rng"]


def get_rng_state() -> dict:
    """The generator's state as a JSON-able dict (saved in checkpoints)."""
    return _GEN["rng"].bit_generator.state


def set_rng_state(state: dict) -> None:
    rng = np.random.default_rng()
    rng.bit_generator.state = state
    _GEN["rng"] = rng
