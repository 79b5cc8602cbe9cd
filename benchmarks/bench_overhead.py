"""Per-op overhead: microseconds per tiny op (add/mul of (4,), relu, sum, matmul 4x4), tinygrad_rad vs
PyTorch vs raw NumPy, without grad (forward only) and with grad (forward + backward).

On tensors this small the arithmetic is free: what is measured is the Python (or C++) dispatch
around it — ``Function.apply``, the graph links, the backward walk. Each timed call runs the op
``--loops`` times; candidates are interleaved (benchmarks.common.compare) and we report the median
microseconds per op.

    .venv/bin/python -m benchmarks.bench_overhead          # ~20 s
    .venv/bin/python -m benchmarks.bench_overhead --tiny   # < 1 s of timing (smoke test)
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from benchmarks.common import RESULTS_DIR, compare, machine_info, print_table, set_threads, write_json

OPS = ("add", "mul", "relu", "sum", "matmul")


def _inputs(op: str):
    rng = np.random.default_rng(0)
    shape = (4, 4) if op == "matmul" else (4,)
    return rng.standard_normal(shape).astype(np.float32), rng.standard_normal(shape).astype(np.float32)


def numpy_fn(op: str, a, b):
    return {
        "add": lambda: a + b,
        "mul": lambda: a * b,
        "relu": lambda: np.maximum(a, 0),
        "sum": lambda: a.sum(),
        "matmul": lambda: a @ b,
    }[op]


def tensor_fn(op: str, a, b):
    """The op on framework tensors ``a``, ``b`` (tinygrad_rad and PyTorch spell these alike)."""
    return {
        "add": lambda: a + b,
        "mul": lambda: a * b,
        "relu": lambda: a.relu(),
        "sum": lambda: a.sum(),
        "matmul": lambda: a @ b,
    }[op]


def with_backward(fwd, ones):
    """forward + backward of one op: ``fwd().backward(ones)`` (ones matches the output's shape)."""

    def step():
        fwd().backward(ones)

    return step


def _looped(fn, loops: int):
    def run():
        for _ in range(loops):
            fn()

    return run


def candidates(op: str, grad: bool, loops: int, with_torch: bool) -> dict:
    import tinygrad_rad as tr

    a, b = _inputs(op)
    out_shape = np.asarray(numpy_fn(op, a, b)()).shape
    ta, tb = tr.Tensor(a, requires_grad=grad), tr.Tensor(b, requires_grad=grad)
    ours = tensor_fn(op, ta, tb)
    if grad:
        ours = with_backward(ours, tr.ones(out_shape))
    cands = {"tinygrad_rad": _looped(ours, loops)}
    if with_torch:
        import torch

        pa = torch.from_numpy(a.copy()).requires_grad_(grad)
        pb = torch.from_numpy(b.copy()).requires_grad_(grad)
        theirs = tensor_fn(op, pa, pb)
        if grad:
            theirs = with_backward(theirs, torch.ones(out_shape))
        cands["torch"] = _looped(theirs, loops)
    if not grad:
        cands["numpy"] = _looped(numpy_fn(op, a, b), loops)
    return cands


def run(tiny: bool = False, loops: int | None = None, repeats: int | None = None,
        out_dir: Path | str = RESULTS_DIR) -> dict:
    n = set_threads(1)  # overhead is single-threaded dispatch; one thread avoids pool wake-ups
    try:
        import torch  # noqa: F401

        with_torch = True
    except ImportError:
        with_torch = False
    loops = loops or (20 if tiny else 1000)
    repeats = repeats or (3 if tiny else 9)
    t0 = time.perf_counter()
    results, rows = [], []
    for grad in (False, True):
        for op in OPS:
            stats = compare(candidates(op, grad, loops, with_torch), repeats=repeats, warmup=1)
            us = {fw: {"median": s["median_ms"] * 1e3 / loops, "min": s["min_ms"] * 1e3 / loops,
                       "max": s["max_ms"] * 1e3 / loops, "first_call_us": s["first_call_s"] * 1e6 / loops}
                  for fw, s in stats.items()}
            res = {"op": op, "grad": grad, "loops": loops, "repeats": repeats, "us_per_op": us}
            row = {"op": op, "grad": "fwd+bwd" if grad else "fwd",
                   "ours us": us["tinygrad_rad"]["median"],
                   "ours range": f"{us['tinygrad_rad']['min']:.3g}-{us['tinygrad_rad']['max']:.3g}"}
            for base in ("torch", "numpy"):
                if base in us:
                    # ours / base: how many times the baseline's time one op takes in tinygrad_rad
                    res[f"slowdown_vs_{base}"] = us["tinygrad_rad"]["median"] / us[base]["median"]
                    row[f"{base} us"] = us[base]["median"]
                    row[f"x {base}"] = res[f"slowdown_vs_{base}"]
                else:
                    row[f"{base} us"], row[f"x {base}"] = "n/a", "n/a"
            results.append(res)
            rows.append(row)
    print_table(rows)
    print("# x torch / x numpy: tinygrad_rad time per op divided by the baseline's (lower is better)")
    if not with_torch:
        print("# PyTorch is not installed: no torch baseline")
    payload = {"benchmark": "overhead", "tiny": tiny, "threads": n, "torch_available": with_torch,
               "machine": machine_info(), "results": results, "table": rows,
               "wall_s": time.perf_counter() - t0}
    path = write_json("overhead", payload, out_dir)
    print(f"# wrote {path}", flush=True)
    return payload


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tiny", action="store_true", help="20 loops x 3 repeats: a smoke test")
    ap.add_argument("--loops", type=int, default=None, help="ops per timed call (default 1000)")
    ap.add_argument("--repeats", type=int, default=None, help="timed calls per candidate (default 9)")
    ap.add_argument("--out", default=str(RESULTS_DIR), help="results directory (overhead.json)")
    a = ap.parse_args(argv)
    return run(a.tiny, a.loops, a.repeats, a.out)


if __name__ == "__main__":
    main()
