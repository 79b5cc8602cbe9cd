"""Draw the graph that produced a tensor, as Graphviz DOT text (for learners).

    >>> x = tr.randn(2, 3, requires_grad=True)
    >>> y = (x * 2).relu().sum()
    >>> print(to_dot(y))            # paste into any Graphviz viewer
    >>> save_graph(y, "graph.svg")  # needs the `dot` program; writes graph.dot otherwise

Boxes are tensors (shape, dtype; leaves that require grad are filled), ellipses are ops.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from .tensor import Tensor
from .utils import atomic_write_bytes


def _tensor_label(t: Tensor, name: str | None) -> str:
    lines = [name] if name else []
    lines.append(f"{tuple(t.shape)} {t.dtype}")
    if t.requires_grad and t.is_leaf:
        lines.append("requires_grad")
    return "\\n".join(lines)


def to_dot(tensor: Tensor, names: dict | None = None) -> str:
    """DOT text for the graph behind ``tensor``; ``names`` maps Tensor -> label (e.g. parameter names)."""
    names = {id(k): v for k, v in (names or {}).items()}
    lines = ["digraph tinygrad_rad {", "  rankdir=BT;", '  node [fontname="Helvetica", fontsize=10];']
    seen: set = set()
    stack = [tensor]
    while stack:  # iterative walk: deep graphs are fine
        t = stack.pop()
        if id(t) in seen:
            continue
        seen.add(id(t))
        tid = f"t{id(t)}"
        style = ', style=filled, fillcolor="#cde4ff"' if (t.requires_grad and t.is_leaf) else ""
        lines.append(f'  {tid} [shape=box, label="{_tensor_label(t, names.get(id(t)))}"{style}];')
        ctx = t._ctx
        if ctx is None:
            continue
        oid = f"op{id(ctx)}"
        freed = " (freed)" if ctx.freed else ""
        lines.append(f'  {oid} [shape=ellipse, label="{ctx.name}{freed}"];')
        lines.append(f"  {oid} -> {tid};")
        if not ctx.freed:
            for p in ctx.parents:
                lines.append(f"  t{id(p)} -> {oid};")
                stack.append(p)
    lines.append("}")
    return "\n".join(lines) + "\n"


def save_graph(tensor: Tensor, path: str | os.PathLike, names: dict | None = None) -> Path:
    """Write the graph to ``path`` (.svg/.png via the ``dot`` program, or .dot). Returns the written path.

    When ``dot`` is not installed, the DOT text is written next to ``path`` with a ``.dot`` suffix.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    dot_text = to_dot(tensor, names)
    fmt = path.suffix.lstrip(".").lower()
    exe = shutil.which("dot")
    if fmt == "dot" or exe is None or fmt not in ("svg", "png", "pdf"):
        out = path if fmt == "dot" else path.with_suffix(".dot")
        atomic_write_bytes(out, dot_text.encode())
        return out
    res = subprocess.run([exe, f"-T{fmt}"], input=dot_text.encode(), capture_output=True, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"dot failed on {path}: {res.stderr.decode(errors='replace')}")
    atomic_write_bytes(path, res.stdout)
    return path
