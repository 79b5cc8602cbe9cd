"""Run a chapter of ``docs/learn/``: extract its ```python blocks and execute them in order.

All blocks share one namespace (like the cells of a notebook). Each block is compiled with the
Markdown file as its file name and its real line numbers, so a traceback points into the chapter.
The output of every block is echoed and also collected into ``<out>/NN-name.out.md`` (the chapter
with each block's output below it), so every number a chapter quotes comes from running it.

    >>> from tinygrad_rad.learn import run_chapter
    >>> run_chapter(2, short=True)          # what tests/test_learn.py does for every chapter
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
import time
from pathlib import Path

LEARN_DIR = Path(__file__).resolve().parents[2] / "docs" / "learn"
CHAPTERS = {
    1: "01-chain-rule.md",
    2: "02-tensors-broadcasting.md",
    3: "03-layers-losses.md",
    4: "04-convolution.md",
    5: "05-cpu-kernels.md",
    6: "06-gpu-kernels.md",
    7: "07-radiology-cnn.md",
}
_FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)


def settings() -> tuple[bool, Path]:
    """``(SHORT, OUT)`` for a chapter: short mode from ``TGR_LEARN_SHORT=1``, figures folder from
    ``TGR_LEARN_OUT`` (default ``docs/learn/_out``, created; git-ignored)."""
    short = os.environ.get("TGR_LEARN_SHORT", "0") not in ("", "0")
    out = Path(os.environ.get("TGR_LEARN_OUT") or LEARN_DIR / "_out")
    out.mkdir(parents=True, exist_ok=True)
    return short, out


def data_dir() -> Path | None:
    """The real-data folder: ``$TINYGRAD_RAD_DATA``, else ``../shared/data`` beside the repository;
    None when neither exists (chapters that need data then skip their training cleanly)."""
    env = os.environ.get("TINYGRAD_RAD_DATA")
    for d in ([Path(env)] if env else []) + [LEARN_DIR.parents[2] / "shared" / "data"]:
        if d.is_dir():
            return d
    return None


def chapter_path(n: int) -> Path:
    if n not in CHAPTERS:
        raise ValueError(f"no chapter {n}; the chapters are {sorted(CHAPTERS)}")
    path = LEARN_DIR / CHAPTERS[n]
    if not path.is_file():
        raise FileNotFoundError(f"chapter file {path} not found: the chapters live in the repository's "
                                "docs/learn/ (use a checkout with an editable install: pip install -e .)")
    return path


def code_blocks(path: str | os.PathLike) -> list[tuple[int, str]]:
    """``(first line number, code)`` of every ```python block of a Markdown file, in order."""
    text = Path(path).read_text(encoding="utf-8")
    return [(text.count("\n", 0, m.start(1)) + 1, m.group(1)) for m in _FENCE.finditer(text)]


class _Tee(io.TextIOBase):
    def __init__(self, *streams):
        self.streams = streams

    def write(self, s: str) -> int:
        for st in self.streams:
            st.write(s)
        return len(s)

    def flush(self) -> None:
        for st in self.streams:
            st.flush()


def run_chapter(n: int, short: bool = False, out: str | os.PathLike | None = None, echo: bool = True) -> dict:
    """Execute chapter ``n``'s code blocks in one namespace; returns that namespace.

    Writes the chapter with every block's output to ``<out>/NN-name.out.md``.
    """
    path = chapter_path(n)
    os.environ["TGR_LEARN_SHORT"] = "1" if short else "0"
    if out is not None:
        os.environ["TGR_LEARN_OUT"] = str(out)
    _, out_dir = settings()
    ns: dict = {"__name__": "__main__", "__file__": str(path)}
    text = path.read_text(encoding="utf-8")
    cmd = f"python -m tinygrad_rad.learn run {n}{' --short' if short else ''}"
    pieces, pos = [f"<!-- produced by `{cmd}` -->\n\n"], 0
    t0 = time.perf_counter()
    for m in _FENCE.finditer(text):
        line, code = text.count("\n", 0, m.start(1)) + 1, m.group(1)
        buf = io.StringIO()
        stream = _Tee(sys.stdout, buf) if echo else buf
        compiled = compile("\n" * (line - 1) + code, str(path), "exec")
        with contextlib.redirect_stdout(stream):
            exec(compiled, ns)  # noqa: S102  (the chapter's own code, as a notebook would run it)
        pieces.append(text[pos : m.end()])
        pos = m.end()
        if buf.getvalue():
            pieces.append(f"\n\n```text\n{buf.getvalue().rstrip()}\n```")
    pieces.append(text[pos:])
    figures = sorted(out_dir.glob(f"ch{n}_*.png")) + sorted(out_dir.glob(f"ch{n}_*.svg"))
    if figures:
        pieces.append("\n## Figures from this run\n\n" + "".join(f"![{f.name}]({f.name})\n" for f in figures))
    pieces.append(f"\n(ran in {time.perf_counter() - t0:.1f} s)\n")
    # links are relative to docs/learn/: make them relative to the output folder
    root = os.path.relpath(LEARN_DIR.parents[1], out_dir).replace(os.sep, "/")
    report = "".join(pieces).replace("](../../", f"]({root}/")
    (out_dir / path.name.replace(".md", ".out.md")).write_text(report, encoding="utf-8")
    return ns
