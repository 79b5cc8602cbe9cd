"""``python -m tinygrad_rad.learn check N [--file my_solution.py]``: run chapter N's exercise tests.

Without ``--file`` the tests run on the shipped solutions, which are the framework's own code.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import traceback
from pathlib import Path

from .run import CHAPTERS


def has_gpu() -> bool:
    """A CUDA GPU is probably present (checked without importing numba.cuda)."""
    return shutil.which("nvidia-smi") is not None and Path("/dev/nvidia0").exists()


def _chapter_env(n: int) -> None:
    # NOTE: must happen before the first `import numba.cuda`, i.e. before the exercises are imported
    if n == 6 and not has_gpu() and "numba.cuda" not in sys.modules:
        os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")


def load_file(path: str | os.PathLike):
    """Import a learner's solution file as a module (its own folder goes on sys.path)."""
    path = Path(path).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"no solution file {path}")
    spec = importlib.util.spec_from_file_location(f"learner_{path.stem}", path)
    mod = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent))
    try:
        spec.loader.exec_module(mod)
    finally:
        sys.path.remove(str(path.parent))
    return mod


def check(n: int, file: str | os.PathLike | None = None, out=None, verbose: bool = False) -> dict[str, bool]:
    """Run chapter ``n``'s exercises on ``file`` (or on the shipped solutions); ``{name: passed}``."""
    if n not in CHAPTERS:
        raise ValueError(f"no chapter {n}; the chapters are {sorted(CHAPTERS)}")
    out = out or sys.stdout
    _chapter_env(n)
    from .exercises import chapter_module, resolve

    exercises = chapter_module(n).EXERCISES
    learner = None
    if file is not None:
        try:
            learner = load_file(file)
        except FileNotFoundError:
            raise
        except Exception as e:  # noqa: BLE001  (a learner's syntax error or failing import: say which)
            raise ValueError(f"cannot import {file}: {type(e).__name__}: {e}") from e
    where = str(file) if file is not None else "the shipped solutions (the framework's own code)"
    print(f"chapter {n}: {len(exercises)} exercises on {where}", file=out)
    results = {}
    for ex in exercises:
        if learner is None:
            try:
                obj = resolve(ex.solution)
            except (ImportError, AttributeError) as e:
                print(f"  FAIL  {ex.name:<28s} solution {ex.solution} does not import: {e}", file=out)
                results[ex.name] = False
                continue
        else:
            obj = getattr(learner, ex.name, None)
            if obj is None:
                print(f"  SKIP  {ex.name:<28s} not defined in {file}  ({ex.task})", file=out)
                results[ex.name] = False
                continue
        try:
            ex.test(obj)
        except Exception as e:  # noqa: BLE001  (report any failure of the learner's code, keep going)
            msg = f"{type(e).__name__}: {e}".strip().splitlines()[0][:200]
            print(f"  FAIL  {ex.name:<28s} {msg}", file=out)
            if verbose:
                traceback.print_exc(file=out)
            results[ex.name] = False
        else:
            print(f"  PASS  {ex.name:<28s} {ex.task}", file=out)
            results[ex.name] = True
    passed = sum(results.values())
    print(f"{passed}/{len(results)} passed", file=out)
    return results


def list_chapters(out=None) -> None:
    out = out or sys.stdout
    from .exercises import chapter_module
    from .run import LEARN_DIR

    for n in sorted(CHAPTERS):
        path = LEARN_DIR / CHAPTERS[n]
        title = path.read_text(encoding="utf-8").splitlines()[0].lstrip("# ") if path.is_file() else path.stem
        title = title.split(". ", 1)[1] if title.split(". ", 1)[0].isdigit() else title
        print(f"{n}. {title}  (docs/learn/{CHAPTERS[n]})", file=out)
        if n == 6:  # listing must not import numba.cuda: it only reads the names
            _chapter_env(n)
        for ex in chapter_module(n).EXERCISES:
            print(f"     - {ex.name}: {ex.task}", file=out)
