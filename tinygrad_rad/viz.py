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


def _label(shape, dtype, leaf_grad: bool, name: str | None) -> str:
    lines = [name] if name else []
    lines.append(f"{tuple(shape)} {dtype}")
    if leaf_grad:
        lines.append("requires_grad")
    return "\\n".join(lines)


def to_dot(tensor: Tensor, names: dict | None = None) -> str:
    """DOT text for the graph behind ``tensor``; ``names`` maps Tensor -> label (e.g. parameter names).

    Works after ``backward()`` too: a freed op keeps its structure (inputs, shapes, dtypes; see
    ``Function.edges``) and is drawn dashed with "(freed)" after its name.
    """
    names = {id(k): v for k, v in (names or {}).items()}
    lines = ["digraph tinygrad_rad {", "  rankdir=BT;", '  node [fontname="Helvetica", fontsize=10];']
    seen: set = set()

    def box(bid: str, shape, dtype, leaf_grad: bool, name) -> None:
        if bid not in seen:
            seen.add(bid)
            style = ', style=filled, fillcolor="#cde4ff"' if leaf_grad else ""
            lines.append(f'  {bid} [shape=box, label="{_label(shape, dtype, leaf_grad, name)}"{style}];')

    # a leaf box is named after the tensor, an op's output box after the op (no tensor is needed)
    root_id = f"t{id(tensor)}" if tensor._ctx is None else f"t{id(tensor._ctx)}"
    box(root_id, tensor.shape, tensor.dtype, tensor.requires_grad and tensor.is_leaf, names.get(id(tensor)))
    stack = [tensor._ctx] if tensor._ctx is not None else []
    done: set = set()
    while stack:  # iterative walk over the ops: deep graphs are fine
        ctx = stack.pop()
        if id(ctx) in done:
            continue
        done.add(id(ctx))
        oid = f"op{id(ctx)}"
        freed = ' (freed)", style=dashed' if ctx.freed else '"'
        lines.append(f'  {oid} [shape=ellipse, label="{ctx.name}{freed}];')
        lines.append(f"  {oid} -> t{id(ctx)};")
        for e in ctx.edges():
            if e.fn is not None:
                bid, leaf, name = f"t{id(e.fn)}", False, None
                stack.append(e.fn)
            else:
                t = e.leaf() if e.leaf is not None else None
                bid = f"t{id(t)}" if t is not None else f"c{id(ctx)}_{len(lines)}"
                leaf, name = e.requires_grad, names.get(id(t)) if t is not None else None
            box(bid, e.shape, e.dtype, leaf, name)
            lines.append(f"  {bid} -> {oid};")
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
