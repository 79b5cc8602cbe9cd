"""Check analytic gradients against float64 central finite differences.

    >>> x = tr.randn(3, 4, dtype=tr.float64, requires_grad=True)
    >>> report = tr.gradcheck(lambda x: (x.tanh() * x).sum(), [x])
    >>> report[0]["max_abs_err"] < 1e-7
    True
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .autograd import no_grad
from .tensor import Tensor


class GradcheckError(AssertionError):
    """Raised when an analytic gradient disagrees with finite differences; carries the report."""

    def __init__(self, message: str, report: list):
        super().__init__(message)
        self.report = report


def _scalar(out) -> float:
    return float(np.asarray(out.numpy(), dtype=np.float64).sum())


def gradcheck(fn: Callable, inputs: Sequence, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3,
              raise_exception: bool = True, projection_seed: int | None = 0) -> list[dict]:
    """Compare d(fn)/d(input) from backward with central differences (f(x+e) - f(x-e)) / 2e.

    ``fn(*inputs)`` may return any shape: a fixed random projection ``sum(out * r)`` turns it into a
    scalar so every output element's gradient is exercised. Inputs that require grad must be float64.
    Returns one dict per input (``name``, ``max_abs_err``, ``max_rel_err``, ``ok``; ``None`` entries
    for inputs that need no grad); raises :class:`GradcheckError` with the report when a check fails.
    """
    inputs = list(inputs)
    for i, t in enumerate(inputs):
        if isinstance(t, Tensor) and t.requires_grad and t.dtype != np.float64:
            raise TypeError(f"gradcheck: input {i} is {t.dtype}; finite differences need float64 inputs")
    out = fn(*inputs)
    rng = np.random.default_rng(projection_seed)
    proj = None
    if out.numel() != 1:
        proj = Tensor(rng.standard_normal(out.shape), dtype=out.dtype, device=out.device)

    def f(*args):
        o = fn(*args)
        return (o * proj).sum() if proj is not None else o.sum()

    for t in inputs:
        if isinstance(t, Tensor):
            t.grad = None
    f(*inputs).backward()
    report: list = []
    failed = False
    for i, t in enumerate(inputs):
        if not (isinstance(t, Tensor) and t.requires_grad):
            report.append(None)
            continue
        analytic = t.grad.numpy() if t.grad is not None else np.zeros(t.shape)
        numeric = np.zeros(t.shape, dtype=np.float64)
        data = t.data  # perturbed in place, restored after each element
        flat = data.reshape(-1)
        nflat = numeric.reshape(-1)
        with no_grad():
            for k in range(flat.size):
                orig = flat[k].item()
                flat[k] = orig + eps
                fp = _scalar(f(*inputs))
                flat[k] = orig - eps
                fm = _scalar(f(*inputs))
                flat[k] = orig
                nflat[k] = (fp - fm) / (2 * eps)
        err = np.abs(analytic - numeric)
        rel = err / np.maximum(np.abs(numeric), 1e-12)
        ok = bool(np.all(err <= atol + rtol * np.abs(numeric)))
        failed |= not ok
        report.append({
            "input": i, "shape": t.shape, "max_abs_err": float(err.max(initial=0.0)),
            "max_rel_err": float(rel.max(initial=0.0)), "ok": ok,
        })
    if failed and raise_exception:
        lines = [
            f"  input {r['input']} {r['shape']}: max abs err {r['max_abs_err']:.3e}, max rel err "
            f"{r['max_rel_err']:.3e} {'ok' if r['ok'] else 'FAIL'}" for r in report if r is not None
        ]
        raise GradcheckError(f"gradcheck failed (atol={atol:g}, rtol={rtol:g}):\n" + "\n".join(lines), report)
    return report
