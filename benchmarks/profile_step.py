"""Where a training step's time goes, tinygrad_rad beside PyTorch, per op kind and layer shape.

One training step (forward + cross-entropy + backward + optimizer step, the ``bench_train`` step) of
SmallCNN and ResNet-18 (28) in each framework, each in its own worker process (same threads, same
batch), broken down into:

* conv forward / backward-data / backward-weight per layer shape (``conv Cin->Cout HxW kK sS``);
* batch norm, ReLU, max pool, global average pool, residual add, linear, loss, dropout, views
  (forward and backward apart);
* the optimizer (step + zero_grad);
* framework overhead: the unprofiled step's median wall time minus every op above (Python glue, graph
  bookkeeping, the backward walk, gradient accumulation, allocations between ops).

tinygrad_rad: ``tr.trace`` timings per op and direction (``autograd._trace_line``), plus the CPU
backend's ``conv2d_forward`` / ``conv2d_backward_input`` / ``conv2d_backward_weight`` timed per call (the
kernels alone; the rest of the Conv2d op - bias, bookkeeping - is its own row). PyTorch:
``torch.profiler`` (record_shapes) top-level events: the ``aten::`` ops called from Python in forward,
``autograd::engine::evaluate_function: XBackward0`` in backward, ``Optimizer.step#...``. PyTorch's
``convolution_backward`` computes both gradients in one call: its profiled time is split between
backward-data and backward-weight in the proportion of the two computed alone (``output_mask``) at the
same shape, so those two PyTorch columns are estimates (their sum is measured).

    .venv/bin/python -m benchmarks.profile_step               # batch 128, 2 threads, a few minutes
    .venv/bin/python -m benchmarks.profile_step --tiny        # SmallCNN at batch 2, seconds

Writes ``benchmarks/results/profile_step.json`` (every row, both workers' raw records).
"""

from __future__ import annotations

import argparse
import io
import json
import re
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

from benchmarks.common import RESULTS_DIR, machine_info, print_table, write_json

ROOT = Path(__file__).resolve().parent.parent
MODEL_NAMES = ("smallcnn", "resnet18")
FRAMEWORKS = ("ours", "torch")
CONV = "conv"
# the compact per-kind table (report.py / README): conv rows summed over shapes
KIND_ORDER = ("conv fwd", "conv bwd-data", "conv bwd-weight", "conv (rest of op)", "batch norm fwd",
              "batch norm bwd", "relu fwd", "relu bwd", "max pool fwd", "max pool bwd", "global avg pool fwd",
              "global avg pool bwd", "add (residual) fwd", "add (residual) bwd", "linear fwd", "linear bwd",
              "loss fwd", "loss bwd", "dropout fwd", "dropout bwd", "views fwd", "views bwd",
              "grad accumulation", "optimizer", "other ops", "framework overhead")


def conv_key(x_shape, w_shape, stride) -> str:
    s = stride[0] if isinstance(stride, (tuple, list)) else stride
    return f"conv {w_shape[1]}->{w_shape[0]} {x_shape[2]}x{x_shape[3]} k{w_shape[2]} s{s}"


def _shapes(text: str) -> list[tuple]:
    return [tuple(int(v) for v in m.split(",") if v.strip()) for m in re.findall(r"\(([\d, ]*)\)", text)]


def _median_rows(per_step: list[dict]) -> list[dict]:
    """Rows of per-(kind, shape) medians over the profiled steps (a burst of load from another process
    during one step then does not land in one op's figure)."""
    keys = []
    for acc in per_step:
        keys += [k for k in acc if k not in keys]
    rows = []
    for k in keys:
        vals = [acc[k][0] if k in acc else 0.0 for acc in per_step]
        calls = [acc[k][1] if k in acc else 0 for acc in per_step]
        rows.append({"kind": k[0], "shape": k[1], "ms": statistics.median(vals),
                     "calls": statistics.median(calls), "ms_all": vals})
    return rows


# ------------------------------------------------------------------------------- ours: classify
def _ours_kind(op: str, direction: str, ins: list[tuple]) -> str | None:
    """Kind of a traced tinygrad_rad op (None: Conv2d, accounted through its kernels)."""
    nd = len(ins[0]) if ins else 0
    if op in ("Conv2d", "ConvTranspose2d"):
        return None
    # NOTE: BatchNormReLUTrain (a BatchNorm followed by a ReLU, fused by nn.Sequential / nn.bn_relu) counts
    # as batch norm: its ReLU costs no pass of its own; PyTorch's ReLUs after batch norms are "relu" rows
    table = {"BatchNormTrain": "batch norm", "BatchNormReLUTrain": "batch norm",
             "ChannelAffine": "batch norm", "Relu": "relu",
             "MaxPool2d": "max pool", "AvgPool2d": "global avg pool", "SoftmaxCrossEntropy": "loss",
             "Dropout": "dropout", "MatMul": "linear", "Permute": "linear", "Reshape": "views"}
    kind = table.get(op)
    if kind is None and op == "Add":
        kind = "add (residual)" if nd == 4 else "linear"
    if kind is None and op in ("Sum", "Mul"):
        kind = "global avg pool"  # the models' only Sum / Mul: mean over H, W (sum, then * 1/HW)
    return f"{kind} {direction}" if kind else "other ops"


def ours_worker(model: str, batch: int, steps: int, threads: int, optimizer: str) -> dict:
    from benchmarks import bench_train as bt

    bt.setup_framework("ours", threads)
    import tinygrad_rad as tr
    from tinygrad_rad.device import backend

    x, y = bt.make_data(batch, model=model)
    train_step, _ = bt.ours_steps(model, x, y, optimizer)
    t0 = time.perf_counter()
    train_step()
    first = time.perf_counter() - t0
    train_step()  # warm-up
    plain = []
    for _ in range(steps):
        t0 = time.perf_counter()
        train_step()
        plain.append((time.perf_counter() - t0) * 1e3)

    # ---- profiled steps: trace every op; time the conv kernels and the optimizer apart
    bk = backend("cpu")
    kernel_recs: list = []
    depth = [0]
    keys = {"conv2d_forward": lambda a: conv_key(a[0].shape, a[1].shape, a[2]),
            "conv2d_backward_input": lambda a: conv_key(a[2], a[1].shape, a[3]),
            "conv2d_backward_weight": lambda a: conv_key(a[1].shape, a[2], a[3])}
    kind_of = {"conv2d_forward": "conv fwd", "conv2d_backward_input": "conv bwd-data",
               "conv2d_backward_weight": "conv bwd-weight"}
    originals = {}

    def wrap(name):
        fn = originals[name] = getattr(bk, name)

        def timed(*a, **k):
            if depth[0]:  # a kernel calling another through the module: count the outer call only
                return fn(*a, **k)
            depth[0] += 1
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                depth[0] -= 1
                kernel_recs.append((kind_of[name], keys[name](a), (time.perf_counter() - t) * 1e3))

        setattr(bk, name, timed)

    opt = train_step.optimizer
    opt_ms = [0.0]
    opt_step, opt_zero = opt.step, opt.zero_grad

    def timed_opt(fn):
        def call(*a, **k):
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                opt_ms[0] += (time.perf_counter() - t) * 1e3
        return call

    for name in keys:
        wrap(name)
    opt.step, opt.zero_grad = timed_opt(opt_step), timed_opt(opt_zero)
    bufs, kernel_steps, opt_steps = [], [], []
    t0 = time.perf_counter()
    try:
        for _ in range(steps):
            bufs.append(io.StringIO())
            kernel_recs.clear()
            opt_ms[0] = 0.0
            with tr.trace(file=bufs[-1]):
                train_step()
            kernel_steps.append(list(kernel_recs))
            opt_steps.append(opt_ms[0])
    finally:
        for name, fn in originals.items():
            setattr(bk, name, fn)
        opt.step, opt.zero_grad = opt_step, opt_zero
    profiled = (time.perf_counter() - t0) * 1e3 / steps

    per_step = []
    for buf, recs, o_ms in zip(bufs, kernel_steps, opt_steps):
        acc: dict = defaultdict(lambda: [0.0, 0])
        conv_op_ms = 0.0
        for line in buf.getvalue().splitlines():
            m = re.match(r"(fwd|bwd) (\S+)\s+in (.*?) -> (.*?)  ([\d.]+) ms", line)
            if not m:
                continue
            direction, op, ins, ms = m.group(1), m.group(2), _shapes(m.group(3)), float(m.group(5))
            kind = _ours_kind(op, direction, ins)
            if kind is None:
                conv_op_ms += ms
                continue
            acc[(kind, "")][0] += ms
            acc[(kind, "")][1] += 1
        kern_ms = 0.0
        for kind, key, ms in recs:
            acc[(kind, key)][0] += ms
            acc[(kind, key)][1] += 1
            kern_ms += ms
        acc[("conv (rest of op)", "")] = [max(conv_op_ms - kern_ms, 0.0), 0]
        acc[("optimizer", "")] = [o_ms, 2]
        per_step.append(acc)
    rows = _median_rows(per_step)
    step_ms = statistics.median(plain)
    in_ops = sum(r["ms"] for r in rows)
    rows.append({"kind": "framework overhead", "shape": "", "ms": step_ms - in_ops, "calls": 0})
    return {"framework": "tinygrad_rad", "model": model, "batch": batch, "threads": threads,
            "first_step_s": first, "step_ms": step_ms, "step_ms_all": plain, "profiled_step_ms": profiled,
            "rows": rows, "other_framework_imported": sorted({"torch"} & set(sys.modules))}


# ------------------------------------------------------------------------------ torch: classify
_TORCH_FWD = {"aten::batch_norm": "batch norm", "aten::relu": "relu", "aten::relu_": "relu",
              "aten::max_pool2d": "max pool", "aten::adaptive_avg_pool2d": "global avg pool",
              "aten::mean": "global avg pool", "aten::linear": "linear", "aten::cross_entropy_loss": "loss",
              "aten::dropout": "dropout", "aten::flatten": "views", "aten::view": "views",
              "aten::reshape": "views"}
_TORCH_BWD = {"NativeBatchNormBackward0": "batch norm", "ReluBackward0": "relu",
              "MaxPool2DWithIndicesBackward0": "max pool", "MeanBackward1": "global avg pool",
              "AdaptiveAvgPool2DBackward0": "global avg pool", "AddBackward0": "add (residual)",
              "AddmmBackward0": "linear", "TBackward0": "linear", "NllLossBackward0": "loss",
              "LogSoftmaxBackward0": "loss", "NativeDropoutBackward0": "dropout", "MulBackward0": "dropout",
              "ViewBackward0": "views", "ReshapeAliasBackward0": "views"}


def _find(ev, name: str):
    if ev.name == name:
        return ev
    for c in ev.cpu_children:
        f = _find(c, name)
        if f is not None:
            return f
    return None


def _torch_conv_split(gy_shape, x_shape, w_shape, stride, padding, mask, reps: int = 3) -> float:
    """Share of backward-data in PyTorch's convolution_backward at this shape (each gradient alone)."""
    import torch

    if not mask[0]:
        return 0.0
    if not mask[1]:
        return 1.0
    gy, x, w = torch.randn(gy_shape), torch.randn(x_shape), torch.randn(w_shape)

    def t(m):
        ts = []
        for _ in range(reps + 1):
            t0 = time.perf_counter()
            torch.ops.aten.convolution_backward(gy, x, w, None, stride, padding, [1, 1], False, [0, 0], 1, m)
            ts.append(time.perf_counter() - t0)
        return statistics.median(ts[1:])

    d, wt = t([True, False, False]), t([False, True, False])
    return d / (d + wt)


def torch_worker(model: str, batch: int, steps: int, threads: int, optimizer: str) -> dict:
    from benchmarks import bench_train as bt

    bt.setup_framework("torch", threads)
    from torch.profiler import ProfilerActivity, profile

    x, y = bt.make_data(batch, model=model)
    train_step, _ = bt.torch_steps(model, x, y, optimizer)
    t0 = time.perf_counter()
    train_step()
    first = time.perf_counter() - t0
    train_step()
    plain = []
    for _ in range(steps):
        t0 = time.perf_counter()
        train_step()
        plain.append((time.perf_counter() - t0) * 1e3)
    t0 = time.perf_counter()
    profs = []
    for _ in range(steps):
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            train_step()
        profs.append(prof)
    profiled = (time.perf_counter() - t0) * 1e3 / steps
    splits: dict = {}
    per_step = [_torch_rows(prof, splits) for prof in profs]
    rows = _median_rows(per_step)
    step_ms = statistics.median(plain)
    rows.append({"kind": "framework overhead", "shape": "", "ms": step_ms - sum(r["ms"] for r in rows),
                 "calls": 0})
    import torch

    return {"framework": "torch", "model": model, "batch": batch, "threads": threads, "first_step_s": first,
            "step_ms": step_ms, "step_ms_all": plain, "profiled_step_ms": profiled, "rows": rows,
            "conv_bwd_data_share": splits, "torch_version": torch.__version__,
            "other_framework_imported": sorted({"tinygrad_rad"} & set(sys.modules))}


def _torch_rows(prof, splits: dict) -> dict:
    """{(kind, shape): [ms, calls]} of one profiled PyTorch step (top-level events)."""
    acc: dict = defaultdict(lambda: [0.0, 0])
    for ev in prof.events():
        if ev.cpu_parent is not None:
            continue
        ms = ev.cpu_time_total / 1e3
        name = ev.name
        key = ""
        if name == "aten::conv2d":
            ci = ev.concrete_inputs or []
            stride = ci[3] if len(ci) > 3 and ci[3] else [1, 1]
            kind, key = "conv fwd", conv_key(ev.input_shapes[0], ev.input_shapes[1], stride)
        elif name.startswith("autograd::engine::evaluate_function: "):
            node = name.split(": ", 1)[1]
            if node == "ConvolutionBackward0":
                cb = _find(ev, "aten::convolution_backward")
                gy_s, x_s, w_s = cb.input_shapes[:3]
                ci = cb.concrete_inputs or []
                stride = ci[4] if len(ci) > 4 and ci[4] else [1, 1]
                padding = ci[5] if len(ci) > 5 and ci[5] else [0, 0]
                mask = ci[10] if len(ci) > 10 and ci[10] else [True, True, False]
                key = conv_key(x_s, w_s, stride)
                if key not in splits:
                    splits[key] = _torch_conv_split(gy_s, x_s, w_s, stride, padding, mask)
                frac = splits[key]
                for kind, share in (("conv bwd-data", frac), ("conv bwd-weight", 1.0 - frac)):
                    if share:
                        acc[(kind, key)][0] += ms * share
                        acc[(kind, key)][1] += 1
                continue
            if node == "torch::autograd::AccumulateGrad":
                kind = "grad accumulation"
            else:
                kind = f"{_TORCH_BWD[node]} bwd" if node in _TORCH_BWD else "other ops"
        elif name.startswith("Optimizer."):
            kind = "optimizer"
        elif name == "aten::add" and ev.input_shapes and len(ev.input_shapes[0]) == 4:
            kind = "add (residual) fwd"
        elif name in _TORCH_FWD:
            kind = f"{_TORCH_FWD[name]} fwd"
        else:
            kind = "other ops"
        acc[(kind, key)][0] += ms
        acc[(kind, key)][1] += 1
    return acc


# --------------------------------------------------------------------------------------- parent
def measure(fw: str, model: str, batch: int, steps: int, threads: int, optimizer: str,
            timeout: float = 900) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.profile_step", "--worker", fw, "--model", model, "--batch",
           str(batch), "--steps", str(steps), "--threads", str(threads), "--optimizer", optimizer]
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError(f"profile worker {fw}/{model} failed (exit {p.returncode}):\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def _kind_rank(kind: str) -> int:
    return KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER)


def merge(ours: dict, torch: dict | None) -> dict:
    """Side-by-side rows (per kind and shape) and the compact per-kind table."""
    table: dict = {}
    order: list = []  # conv shapes in the order ours ran them (forward first)
    for fw, res in (("ours", ours), ("torch", torch)):
        if res is None:
            continue
        for r in res["rows"]:
            k = (r["kind"], r["shape"])
            if k not in table:
                table[k] = {"kind": r["kind"], "shape": r["shape"]}
                if r["shape"] and r["shape"] not in order:
                    order.append(r["shape"])
            table[k][f"{fw}_ms"] = table[k].get(f"{fw}_ms", 0.0) + r["ms"]
            table[k][f"{fw}_calls"] = table[k].get(f"{fw}_calls", 0.0) + r["calls"]
    rows = sorted(table.values(), key=lambda r: (order.index(r["shape"]) if r["shape"] else len(order),
                                                 _kind_rank(r["kind"])))
    kinds: dict = {}
    for r in rows:
        e = kinds.setdefault(r["kind"], {"kind": r["kind"]})
        for fw in ("ours", "torch"):
            if f"{fw}_ms" in r:
                e[f"{fw}_ms"] = e.get(f"{fw}_ms", 0.0) + r[f"{fw}_ms"]
    kind_rows = sorted(kinds.values(), key=lambda r: _kind_rank(r["kind"]))
    for r in rows + kind_rows:
        o, t = r.get("ours_ms"), r.get("torch_ms")
        r["ratio"] = t / o if o and t and o > 0 and t > 0 else None  # > 1: ours faster
    out = {"model": ours["model"], "batch": ours["batch"], "ours_step_ms": ours["step_ms"], "rows": rows,
           "kinds": kind_rows, "workers": {"tinygrad_rad": ours}}
    if torch is not None:
        out.update(torch_step_ms=torch["step_ms"], step_ratio=torch["step_ms"] / ours["step_ms"])
        out["workers"]["torch"] = torch
    return out


def _fmt_rows(rows: list[dict], step_ours: float, step_torch: float | None) -> list[dict]:
    out = []
    for r in rows:
        shape = r.get("shape")
        name = f"{r['kind']} [{shape.removeprefix('conv ')}]" if shape else r["kind"]
        o, t = r.get("ours_ms"), r.get("torch_ms")
        out.append({"op": name, "ours ms": o if o is not None else "n/a",
                    "ours %": 100 * o / step_ours if o is not None else "",
                    "torch ms": t if t is not None else "n/a",
                    "torch %": 100 * t / step_torch if t is not None and step_torch else "",
                    "ratio": r["ratio"] if r["ratio"] is not None else ""})
    return out


def run(tiny: bool = False, models=MODEL_NAMES, batch: int | None = None, steps: int | None = None,
        threads: int | None = None, optimizer: str = "adam", out_dir: Path | str = RESULTS_DIR) -> dict:
    from benchmarks.bench_train import torch_available

    with_torch = torch_available()
    threads = threads or (1 if tiny else 2)
    batch = batch or (2 if tiny else 128)
    steps = steps or (2 if tiny else 5)
    models = ("smallcnn",) if tiny and tuple(models) == MODEL_NAMES else tuple(models)
    t0 = time.perf_counter()
    results = []
    for model in models:
        ours = measure("ours", model, batch, steps, threads, optimizer)
        torch = measure("torch", model, batch, steps, threads, optimizer) if with_torch else None
        res = merge(ours, torch)
        results.append(res)
        ts = res.get("torch_step_ms")
        print(f"\n# {model} (batch {batch}, {threads} thread(s)): step tinygrad_rad "
              f"{res['ours_step_ms']:.1f} ms"
              + (f", PyTorch {ts:.1f} ms (ratio {res['step_ratio']:.2f}x)" if ts else ""))
        print_table(_fmt_rows(res["rows"], res["ours_step_ms"], ts), floatfmt=".2f")
        print(f"\n# {model}: per kind")
        print_table(_fmt_rows(res["kinds"], res["ours_step_ms"], ts), floatfmt=".2f")
    print("# ratio = PyTorch ms / tinygrad_rad ms (> 1: tinygrad_rad faster); PyTorch's conv bwd-data / "
          "bwd-weight are its profiled convolution_backward split by the time of each gradient alone; "
          "framework overhead = unprofiled step median minus every profiled op")
    payload = {"benchmark": "profile_step", "tiny": tiny, "threads": threads, "batch": batch, "steps": steps,
               "optimizer": optimizer, "torch_available": with_torch,
               "machine": machine_info(torch=with_torch),
               "models": results, "wall_s": time.perf_counter() - t0}
    path = write_json("profile_step", payload, out_dir)
    print(f"# wrote {path}", flush=True)
    return payload


def main(argv=None) -> dict | None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tiny", action="store_true", help="SmallCNN, batch 2, 1 thread, 1 step: a smoke test")
    ap.add_argument("--models", default=",".join(MODEL_NAMES), help="comma-separated: smallcnn,resnet18")
    ap.add_argument("--batch", type=int, default=None, help="default 128 (2 with --tiny)")
    ap.add_argument("--steps", type=int, default=None, help="timed and profiled steps per worker (default 5)")
    ap.add_argument("--threads", type=int, default=None, help="threads for both frameworks (default 2)")
    ap.add_argument("--optimizer", choices=["adam", "sgd"], default="adam")
    ap.add_argument("--out", default=str(RESULTS_DIR), help="results directory (profile_step.json)")
    ap.add_argument("--worker", choices=FRAMEWORKS, help=argparse.SUPPRESS)
    ap.add_argument("--model", default="smallcnn", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.worker:
        fn = ours_worker if a.worker == "ours" else torch_worker
        res = fn(a.model, a.batch or 128, a.steps or 3, a.threads or 2, a.optimizer)
        print(json.dumps(res, default=str), flush=True)
        return None
    models = [m.strip() for m in a.models.split(",") if m.strip()]
    for m in models:
        if m not in MODEL_NAMES:
            ap.error(f"unknown model {m!r}; expected some of {MODEL_NAMES}")
    return run(a.tiny, models, a.batch, a.steps, a.threads, a.optimizer, a.out)


if __name__ == "__main__":
    main()
