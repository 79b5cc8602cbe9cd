"""The autodiff engine: ``Function`` (one op = forward + backward), grad mode, and the backward walk.

Every op in tinygrad_rad is a small subclass of :class:`Function` (see :mod:`tinygrad_rad.ops`).
``forward`` receives raw arrays (NumPy on the CPU, CuPy on a GPU) and keeps on ``self`` only what
``backward`` needs; ``backward`` receives the gradient of the loss with respect to the op's output
and returns one gradient per input (``None`` where an input needs none).

    >>> class Square(Function):
    ...     def forward(self, x):
    ...         self.x = x
    ...         return x * x
    ...     def backward(self, g):
    ...         return (2 * self.x * g,)        # d(x^2)/dx = 2x

Read it top to bottom: grad mode, ``Function``, the topological sort, then :func:`run_backward`,
the loop that *is* backpropagation. The small helpers below it (hooks, ``retain_grad``, checks,
tracing) are called from that loop and can be skipped on a first read.

This module imports nothing from the rest of tinygrad_rad (only NumPy, for ``detect_anomaly``):
``Function.apply`` builds its result with ``type(inputs[0])._wrap``, so any Tensor class that
provides ``_wrap`` (and the fields ``data``, ``requires_grad``, ``_ctx``, ``_vc``) works.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import weakref
from contextlib import contextmanager
from typing import Any, NamedTuple

import numpy as np

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
            with type(self)():
                return fn(*args, **kwargs)

        wrapper.__name__ = getattr(fn, "__name__", "wrapper")
        wrapper.__doc__ = getattr(fn, "__doc__", None)
        return wrapper


class enable_grad(no_grad):
    """Re-enables graph recording inside a ``no_grad`` block."""

    def __enter__(self) -> None:
        self.prev = is_grad_enabled()
        _state.grad_enabled = True


class set_grad_enabled:
    """``with set_grad_enabled(False): ...`` (or call it as a function to switch grad mode)."""

    def __init__(self, mode: bool) -> None:
        self.prev = is_grad_enabled()
        _state.grad_enabled = bool(mode)

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc) -> None:
        _state.grad_enabled = self.prev


# ------------------------------------------------------------------------------------ Function
class Edge(NamedTuple):
    """What a freed op still knows about one of its inputs (PyTorch's ``grad_fn.next_functions``)."""

    fn: Any  # the Function that produced the input, or None for a leaf
    shape: tuple
    dtype: Any
    requires_grad: bool
    leaf: Any  # a weak reference to a leaf tensor (None for an op's output)


class Function:
    """One differentiable op. Subclasses implement ``forward(*arrays, **kw)`` and ``backward(grad)``.

    Attributes set by :meth:`apply`: ``parents`` (input Tensors), ``needs_input_grad`` (one bool per
    input) and ``device``. After backward, :meth:`free` drops the saved arrays but keeps the graph's
    structure (:meth:`edges`), so the graph can still be drawn.
    """

    parents: tuple
    needs_input_grad: tuple
    freed: bool = False
    view: bool = False  # True for ops whose output may be a view of their first input (reshape, ...)

    def forward(self, *args: Any, **kwargs: Any):  # pragma: no cover - abstract
        raise NotImplementedError

    def backward(self, grad_output):  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} has no backward")

    @property
    def name(self) -> str:
        return type(self).__name__

    @classmethod
    def apply(cls, *tensors, **kwargs: Any):
        """Run ``forward`` on the inputs' arrays and, when grad is on, link the result into the graph."""
        ctx = cls()
        ctx.device = device = _same_device(cls, tensors)
        ctx.needs_input_grad = needs = tuple([t.requires_grad for t in tensors])
        requires_grad = True in needs and is_grad_enabled()
        arrays = [t.data for t in tensors]
        if _TRACE["on"]:
            out = _traced_forward(ctx, arrays, kwargs)
        else:
            out = ctx.forward(*arrays, **kwargs)
        _CALLED.add(cls)
        result = type(tensors[0])._wrap(out, device=device, requires_grad=requires_grad)
        if cls.view and getattr(out, "base", None) is not None:
            result._vc = tensors[0]._vc  # a view shares its base's version counter (as in PyTorch)
        if requires_grad:
            ctx.link(tensors, result)
        return result

    def link(self, parents: tuple, result) -> None:
        """Record the graph edge parents -> result (and the versions backward will check)."""
        self.parents = parents  # the graph: result._ctx.parents are the inputs
        self.versions = [t._vc[0] for t in parents]
        self.out_version = result._vc[0]
        if _ANOMALY["on"]:
            self.forward_site = _user_frame()
        result._ctx = self

    def free(self) -> None:
        """Drop everything saved for backward (called once backward has used it), keep the structure.

        The parents are replaced by plain records (op, shape, dtype) so that no array stays alive
        through them, while ``edges()`` / ``viz.to_dot`` can still walk the graph.
        """
        d = self.__dict__
        kept = (d.get("device"), d.get("needs_input_grad"), _records(d.get("parents", ())))
        d.clear()
        self.device, self.needs_input_grad, self._records = kept
        self.freed = True

    def edges(self) -> tuple:
        """One :class:`Edge` per input: the op that made it (None for a leaf), its shape and dtype."""
        d = self.__dict__
        records = d.get("_records", ()) if self.freed else _records(d.get("parents", ()))
        return tuple(Edge(*r) for r in records)

    @property
    def next_functions(self) -> tuple:
        """``((fn, 0), ...)`` per input, as in PyTorch (``fn`` is None for leaves)."""
        return tuple((e.fn, 0) for e in self.edges())


def _records(parents) -> list:
    # (fn, shape, dtype, requires_grad, weak ref to a leaf): what Edge holds, as cheap tuples
    return [(p._ctx, p.data.shape, p.data.dtype, p.requires_grad, None if p._ctx else weakref.ref(p))
            for p in parents]


def _same_device(cls, tensors) -> str:
    device = tensors[0]._device
    for t in tensors[1:]:
        if t._device != device:
            raise RuntimeError(
                f"{cls.__name__}: expected all tensors on one device, got {device!r} and {t.device!r}; "
                "move them with .to(device)"
            )
    return device


# ------------------------------------------------------------------------------- backward walk
def toposort(root) -> list:
    """Tensors of root's graph, each after all its inputs (iterative DFS: a 10,000-op chain is fine)."""
    order, visited = [], set()
    stack = [(root, False)]
    while stack:
        node, done = stack.pop()
        if done:
            order.append(node)  # post-order: all of node's inputs are already in `order`
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        ctx = node._ctx
        if ctx is not None and not ctx.freed:
            # NOTE: reversed, so the first input (the activation path) is explored first and a layer's
            # weights land right after its op in the backward walk: their .grad (and post-accumulate
            # hooks, which DDP uses to start all-reduces early) is final as soon as the op has run
            for p in reversed(ctx.parents):
                if p.requires_grad and id(p) not in visited:
                    stack.append((p, False))
    return order


def run_backward(root, grad, retain_graph: bool = False) -> None:
    """Reverse-mode sweep from ``root`` seeded with ``grad`` (an array of root's shape).

    Gradients flow from outputs to inputs in reverse topological order and are *added* (``+=``)
    where a tensor feeds several ops and into each leaf's ``.grad``; each op's saved arrays are freed
    as soon as its backward has run (kept when ``retain_graph=True``, for a second backward).
    """
    _check_not_freed(root._ctx, first=True)
    grads = {id(root): grad}  # id(tensor) -> d(root)/d(tensor), filled in as the walk goes
    for node in reversed(toposort(root)):
        g = grads.pop(id(node), None)
        if g is None:
            continue  # no path from this tensor to root carried a gradient
        if node._hooks:
            g = _run_hooks(node, g)
        ctx = node._ctx
        if ctx is None or node._retains_grad:
            _accumulate_grad(node, g)  # leaf (or retain_grad): node.grad += g
        if ctx is None:
            continue
        _check_not_freed(ctx)
        _check_versions(ctx, node)
        in_grads = _call_backward(ctx, g)  # the chain rule, one op at a time
        for p, pg in zip(ctx.parents, in_grads):
            if pg is None or not p.requires_grad:
                continue
            pg = _checked(ctx, p, pg)
            if id(p) in grads:
                # NOTE: grads[id(p)] += pg, written out of place: pg may alias another gradient array
                grads[id(p)] = grads[id(p)] + pg
            else:
                grads[id(p)] = pg
        if not retain_graph:
            ctx.free()


# ------------------------------------------------------------ helpers called from the loop above
def _accumulate_grad(node, g) -> None:
    """``node.grad += g`` (a fresh array: the seed and hook results must not be written to later)."""
    if node.grad is None:
        node.grad = node._wrap(g.copy() if node._ctx is None else g, device=node.device)
    else:
        node.grad = node._wrap(node.grad.data + g, device=node.device)
    if node._ctx is None and node._post_hooks:
        for hook in list(node._post_hooks):  # register_post_accumulate_grad_hook: sees the tensor
            hook(node)


def _run_hooks(node, g):
    """register_hook: each hook sees the full gradient (as a Tensor) and may return a replacement."""
    for hook in list(node._hooks):
        res = hook(node._wrap(g, device=node.device))
        if res is not None:
            arr = res.data if hasattr(res, "_wrap") else res
            if tuple(arr.shape) != tuple(node.shape):
                raise RuntimeError(
                    f"hook returned a gradient of shape {tuple(arr.shape)} for a tensor of shape {node.shape}"
                )
            g = arr
    return g


def _check_not_freed(ctx, first: bool = False) -> None:
    if ctx is None or not ctx.freed:
        return
    if first:
        raise RuntimeError(
            "Trying to backward through the graph a second time: its saved arrays were freed by the "
            "first backward. Recompute the forward pass (or call backward once on the sum of the losses)."
        )
    raise RuntimeError(
        "Trying to backward through the graph a second time (an intermediate result's graph "
        "was already freed by an earlier backward)."
    )


def _call_backward(ctx, g) -> tuple:
    """``ctx.backward(g)`` as a tuple with one entry per input (traced when tracing is on)."""
    if _TRACE["on"]:
        t0 = time.perf_counter()
        in_grads = ctx.backward(g)
        in_grads = in_grads if isinstance(in_grads, tuple) else (in_grads,)
        _trace_line("bwd", ctx, [g], in_grads, time.perf_counter() - t0)
    else:
        in_grads = ctx.backward(g)
        in_grads = in_grads if isinstance(in_grads, tuple) else (in_grads,)
    _CALLED_BACKWARD.add(type(ctx))
    if _ANOMALY["on"]:
        _check_finite(ctx, in_grads)
    if len(in_grads) != len(ctx.parents):
        raise RuntimeError(
            f"{ctx.name}.backward returned {len(in_grads)} gradients for {len(ctx.parents)} inputs"
        )
    return in_grads


def _check_versions(ctx, node) -> None:
    """Refuse to run backward on arrays that were modified in place after the forward pass."""
    if ctx.versions == [p._vc[0] for p in ctx.parents] and node._vc[0] == ctx.out_version:
        return
    for i, (p, v) in enumerate(zip(ctx.parents, ctx.versions)):
        if p._vc[0] != v and _saved(ctx, p.data):
            raise _modified_error(ctx, p, f"input {i}", v)
    if node._vc[0] != ctx.out_version and _saved(ctx, node.data):
        raise _modified_error(ctx, node, "the output", ctx.out_version)


def _saved(ctx, arr) -> bool:
    """Does ctx keep ``arr`` (or an array sharing its memory) for backward?"""
    root = _base(arr)
    return any(_base(v) is root for v in ctx.__dict__.values() if hasattr(v, "shape") and hasattr(v, "dtype"))


def _base(a):
    while getattr(a, "base", None) is not None:
        a = a.base
    return a


def _modified_error(ctx, t, which: str, expected: int) -> RuntimeError:
    return RuntimeError(
        "one of the variables needed for gradient computation has been modified by an inplace operation: "
        f"the {t.dtype} tensor of shape {tuple(t.shape)} that is {which} of {ctx.name} is at version "
        f"{t._vc[0]}; expected version {expected} instead. Hint: an optimizer step or an in-place "
        "assignment (t[...] = ...) changed it after the forward pass; recompute the forward pass, or "
        "clone() the tensor before changing it."
    )


def _checked(ctx, p, pg):
    """An input's gradient must have the input's shape; it is cast to the input's dtype."""
    if tuple(pg.shape) != tuple(p.shape):
        raise RuntimeError(
            f"{ctx.name}.backward produced a gradient of shape {tuple(pg.shape)} for an input of "
            f"shape {tuple(p.shape)}"
        )
    return pg if pg.dtype == p.dtype else pg.astype(p.dtype)


# ----------------------------------------------------------------------------- detect_anomaly
_ANOMALY = {"on": False}


@contextmanager
def detect_anomaly(check_nan: bool = True):
    """Stop the backward pass at the first op whose backward produces a nan or inf gradient.

    The error names that op, its forward-time input shapes and where its forward was called (PyTorch's
    ``torch.autograd.detect_anomaly``). It costs one ``isfinite`` pass per gradient: debugging only.

        >>> with detect_anomaly():
        ...     x.sqrt().sum().backward()        # x has a 0: "Function 'Sqrt' returned inf values ..."
    """
    prev = _ANOMALY["on"]
    _ANOMALY["on"] = bool(check_nan)
    try:
        yield
    finally:
        _ANOMALY["on"] = prev


def _check_finite(ctx, in_grads) -> None:
    for i, pg in enumerate(in_grads):
        if pg is None or pg.dtype.kind not in "fc" or bool(np.isfinite(pg).all()):
            continue
        what = "nan" if bool(np.isnan(pg).any()) else "inf"
        ins = ", ".join(f"{tuple(p.shape)} {p.dtype}" for p in ctx.parents)
        site = ctx.__dict__.get("forward_site", "an unknown place (outside detect_anomaly)")
        raise RuntimeError(
            f"Function '{ctx.name}' returned {what} values in its {i}th output (the gradient of its input "
            f"{i}, shape {tuple(pg.shape)}). Its forward took inputs {ins} and was called at {site}."
        )


def _user_frame() -> str:
    """``file:line`` of the innermost caller outside tinygrad_rad (where an op's forward was called)."""
    pkg = os.path.dirname(os.path.abspath(__file__))
    f = sys._getframe(1)
    while f is not None and os.path.abspath(f.f_code.co_filename).startswith(pkg):
        f = f.f_back
    return f"{f.f_code.co_filename}:{f.f_lineno}" if f is not None else "?"


# --------------------------------------------------------------------------------------- trace
_TRACE = {"on": os.environ.get("TGR_DEBUG", "0") not in ("", "0")}
_CALLED: set = set()  # op classes whose forward has run in this process (for the trace's first-call note)
_CALLED_BACKWARD: set = set()


def is_tracing() -> bool:
    return _TRACE["on"]


@contextmanager
def trace(enabled: bool = True, file=None):
    """Print every op's forward and backward as it runs (same as ``TGR_DEBUG=1``).

    >>> with trace():
    ...     loss = model(x).sum(); loss.backward()
    fwd Conv2d   in (8, 1, 28, 28) float32, (16, 1, 3, 3) float32 -> (8, 16, 28, 28) float32  0.41 ms

    The first call of an op class in the process is marked ``(first call: may include one-time
    kernel load/compile)``: Numba kernels compile or load from cache then (about a second for the
    first convolution), so that time is not the op's steady-state cost.
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


def _traced_forward(ctx, arrays, kwargs):
    t0 = time.perf_counter()
    out = ctx.forward(*arrays, **kwargs)
    _trace_line("fwd", ctx, arrays, [out], time.perf_counter() - t0)
    return out


def _fmt(a) -> str:
    return "None" if a is None else f"{tuple(a.shape)} {a.dtype}"


def _trace_line(kind: str, ctx, ins, outs, seconds: float) -> None:
    f = _TRACE.get("file") or sys.stderr
    ins_s = ", ".join(_fmt(a) for a in ins)
    outs_s = ", ".join(_fmt(a) for a in outs)
    first = type(ctx) not in (_CALLED if kind == "fwd" else _CALLED_BACKWARD)
    note = "  (first call: may include one-time kernel load/compile)" if first else ""
    print(f"{kind} {ctx.name:<22s} in {ins_s} -> {outs_s}  {seconds * 1e3:.3f} ms{note}", file=f)
