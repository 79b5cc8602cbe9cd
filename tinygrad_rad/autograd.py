"""The autodiff core: ``Function`` (one op = forward + backward), grad mode, and the backward walk.

Every op in tinygrad_rad is a small subclass of :class:`Function`. ``forward`` receives raw arrays
(NumPy on the CPU, CuPy on a GPU) and keeps on ``self`` only what ``backward`` needs; ``backward``
receives the gradient of the loss with respect to the op's output and returns one gradient per
input (``None`` where an input needs none).

    >>> class Square(Function):
    ...     def forward(self, x):
    ...         self.x = x
    ...         return x * x
    ...     def backward(self, g):
    ...         return (2 * self.x * g,)        # d(x^2)/dx = 2x
"""

from __future__ import annotations

import os
import sys
import threading
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from .tensor import Tensor

# ----------------------------------------------------------------------------------- grad mode
_state = threading.local()


def is_grad_enabled() -> bool:
    """True unless inside ``no_grad()``."""
    return getattr(_state, "grad_enabled", True)


class no_grad:
    """Context manager / decorator: ops run inside record no graph.

    >>> with no_grad():
    ...     y = x * 2          # y.requires_grad is False
    """

    def __enter__(self) -> None:
        self.prev = is_grad_enabled()
        _state.grad_enabled = False

    def __exit__(self, *exc: Any) -> None:
        _state.grad_enabled = self.prev

    def __call__(self, fn):
        def wrapper(*args, **kwargs):
            with no_grad():
                return fn(*args, **kwargs)

        wrapper.__name__ = getattr(fn, "__name__", "wrapper")
        wrapper.__doc__ = getattr(fn, "__doc__", None)
        return wrapper


class enable_grad(no_grad):
    """Re-enables graph recording inside a ``no_grad`` block."""

    def __enter__(self) -> None:
        self.prev = is_grad_enabled()
        _state.grad_enabled = True


# --------------------------------------------------------------------------------------- trace
_TRACE = {"on": os.environ.get("TGR_DEBUG", "0") not in ("", "0")}


def is_tracing() -> bool:
    return _TRACE["on"]


@contextmanager
def trace(enabled: bool = True, file=None):
    """Print every op's forward and backward as it runs (same as ``TGR_DEBUG=1``).

    >>> with trace():
    ...     loss = model(x).sum(); loss.backward()
    fwd Conv2d   in (8, 1, 28, 28) float32, (16, 1, 3, 3) float32 -> (8, 16, 28, 28)  0.41 ms
    ...
    """
    prev = dict(_TRACE)
    _TRACE["on"] = enabled
    if file is not None:
        _TRACE["file"] = file
    try:
        yield
    finally:
        _TRACE.clear()
        _TRACE.update(prev)


def _fmt(a) -> str:
    if a is None:
        return "None"
    return f"{tuple(a.shape)} {a.dtype}"


def _trace_line(kind: str, name: str, ins, outs, seconds: float) -> None:
    f = _TRACE.get("file") or sys.stderr
    ins_s = ", ".join(_fmt(a) for a in ins)
    outs_s = ", ".join(_fmt(a) for a in outs)
    print(f"{kind} {name:<22s} in {ins_s} -> {outs_s}  {seconds * 1e3:.3f} ms", file=f)


# ------------------------------------------------------------------------------------ Function
_Tensor = None  # tinygrad_rad.tensor.Tensor, bound on first use (tensor.py imports this module)


def _bind_tensor():
    global _Tensor
    from .tensor import Tensor

    _Tensor = Tensor
    return Tensor


class Function:
    """One differentiable op. Subclasses implement ``forward(*arrays, **kw)`` and ``backward(grad)``.

    Attributes set by :meth:`apply`: ``parents`` (input Tensors), ``needs_input_grad`` (one bool per
    input) and ``device``.
    """

    parents: tuple
    needs_input_grad: tuple
    freed: bool = False

    def forward(self, *args: Any, **kwargs: Any):  # pragma: no cover - abstract
        raise NotImplementedError

    def backward(self, grad_output):  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} has no backward")

    @property
    def name(self) -> str:
        return type(self).__name__

    @classmethod
    def apply(cls, *tensors: Tensor, **kwargs: Any) -> Tensor:
        """Run ``forward`` on the inputs' arrays and, when grad is on, link the result into the graph."""
        # NOTE: this runs once per op, so it avoids a function-level import (~5 us) and generators
        Tensor = _Tensor or _bind_tensor()
        ctx = cls()
        device = tensors[0]._device
        for t in tensors[1:]:
            if t._device != device:
                raise RuntimeError(
                    f"{cls.__name__}: expected all tensors on one device, got {device!r} and {t.device!r}; "
                    "move them with .to(device)"
                )
        ctx.device = device
        needs = tuple([t.requires_grad for t in tensors])
        requires_grad = True in needs and is_grad_enabled()
        ctx.needs_input_grad = needs
        arrays = [t.data for t in tensors]
        if _TRACE["on"]:
            t0 = time.perf_counter()
            out = ctx.forward(*arrays, **kwargs)
            _trace_line("fwd", cls.__name__, arrays, [out], time.perf_counter() - t0)
        else:
            out = ctx.forward(*arrays, **kwargs)
        result = Tensor._wrap(out, device=device, requires_grad=requires_grad)
        if requires_grad:
            ctx.parents = tensors
            result._ctx = ctx
        return result

    def free(self) -> None:
        """Drop everything saved for backward (called once backward has used it)."""
        self.__dict__.clear()
        self.freed = True


# ------------------------------------------------------------------------------- backward walk
def _toposort(root: Tensor) -> list:
    """Iterative post-order DFS over the graph (no recursion: a 10,000-op chain is fine)."""
    order, visited = [], set()
    stack = [(root, False)]
    while stack:
        node, done = stack.pop()
        if done:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        ctx = node._ctx
        if ctx is not None and not ctx.freed:
            for p in ctx.parents:
                if p.requires_grad and id(p) not in visited:
                    stack.append((p, False))
    return order


def _accumulate(store: dict, t: Tensor, g) -> None:
    key = id(t)
    if key in store:
        store[key] = store[key] + g
    else:
        store[key] = g


def run_backward(root: Tensor, grad, retain_graph: bool = False) -> None:
    """Reverse-mode sweep from ``root`` seeded with ``grad`` (an array of root's shape).

    Gradients flow from outputs to inputs in reverse topological order and are *added* into each
    leaf's ``.grad``; each op's saved arrays are freed as soon as its backward has run (kept when
    ``retain_graph=True``, so that a second backward through the same graph works).
    """
    from .tensor import Tensor

    if root._ctx is not None and root._ctx.freed:
        raise RuntimeError(
            "Trying to backward through the graph a second time: its saved arrays were freed by the "
            "first backward. Recompute the forward pass (or call backward once on the sum of the losses)."
        )
    order = _toposort(root)
    grads: dict = {id(root): grad}
    tracing = _TRACE["on"]
    for node in reversed(order):
        g = grads.pop(id(node), None)
        if g is None:
            continue
        hooks = getattr(node, "_hooks", None)
        if hooks:  # register_hook: each hook sees the full gradient and may replace it
            for hook in list(hooks):
                res = hook(Tensor._wrap(g, device=node.device))
                if res is not None:
                    res_arr = res.data if isinstance(res, Tensor) else res
                    if tuple(res_arr.shape) != tuple(node.shape):
                        raise RuntimeError(
                            f"hook returned a gradient of shape {tuple(res_arr.shape)} for a tensor of "
                            f"shape {node.shape}"
                        )
                    g = res_arr
        ctx = node._ctx
        if ctx is None or node._retains_grad:
            # leaf (or a tensor that asked for retain_grad): accumulate into .grad with +=
            if node.grad is None:
                node.grad = Tensor._wrap(g.copy() if ctx is None else g, device=node.device)
            else:
                node.grad = Tensor._wrap(node.grad.data + g, device=node.device)
        if ctx is None:
            continue
        if ctx.freed:
            raise RuntimeError(
                "Trying to backward through the graph a second time (an intermediate result's graph "
                "was already freed by an earlier backward)."
            )
        if tracing:
            t0 = time.perf_counter()
        in_grads = ctx.backward(g)
        if not isinstance(in_grads, tuple):
            in_grads = (in_grads,)
        if tracing:
            _trace_line("bwd", ctx.name, [g], in_grads, time.perf_counter() - t0)
        parents = ctx.parents
        if len(in_grads) != len(parents):
            raise RuntimeError(
                f"{ctx.name}.backward returned {len(in_grads)} gradients for {len(parents)} inputs"
            )
        for p, pg in zip(parents, in_grads):
            if pg is None or not p.requires_grad:
                continue
            if tuple(pg.shape) != tuple(p.shape):
                raise RuntimeError(
                    f"{ctx.name}.backward produced a gradient of shape {tuple(pg.shape)} for an input of "
                    f"shape {tuple(p.shape)}"
                )
            if pg.dtype != p.dtype:
                pg = pg.astype(p.dtype)
            _accumulate(grads, p, pg)
        if not retain_graph:
            ctx.free()
