"""Exercise tests, one module per chapter (``ch1`` ... ``ch7``).

Each module lists ``EXERCISES``: the name a learner's file must define, what to write, the test
(called with the learner's object; raises ``AssertionError`` when wrong) and the solution, a
``"module:attr"`` name of the framework's own code. ``ENV`` (optional) is set before anything is
imported (chapter 6 runs under Numba's CUDA simulator when there is no GPU).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Exercise:
    name: str  # what the learner's file defines (a function or a Function subclass)
    task: str  # one line: what to write
    test: Callable  # test(obj) -> None, raises AssertionError
    solution: str  # "package.module:attr", the framework's own code


def resolve(spec: str):
    """Import ``"module:attr"`` (attr may be dotted) and return the object."""
    mod, _, attr = spec.partition(":")
    obj = importlib.import_module(mod)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def chapter_module(n: int):
    return importlib.import_module(f"{__name__}.ch{n}")
