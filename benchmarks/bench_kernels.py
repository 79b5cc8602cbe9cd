"""CPU kernel benchmark: tinygrad_rad's CPU kernels against NumPy BLAS and PyTorch CPU, interleaved.

Run (unset the two OpenBLAS tuning variables only for benchmarks)::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python -m benchmarks.bench_kernels
    ... -m benchmarks.bench_kernels --tiny                  # toy sizes, a few seconds (smoke test)
    ... -m benchmarks.bench_kernels --only conv --repeats 9

Sections: matmul GFLOP/s vs NumPy; conv2d forward / backward-data / backward-weight on the SmallCNN
and ResNet-18 (28x28) layer shapes at batch 128 vs ``torch.nn.functional.conv2d`` and
``torch.nn.grad``; max-pool, batch-norm and softmax-cross-entropy (forward + backward) vs torch.
``ratio`` = torch time / our time (> 1: we are faster). PyTorch gets the same thread count as Numba
and BLAS. Results go to ``benchmarks/results/bench_kernels[_tiny].json``.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from tinygrad_rad.kernels import cpu

from benchmarks.common import RESULTS_DIR, compare, machine_info, print_table, set_threads, write_json

# (name, C_in, C_out, H=W, kernel, stride, padding): the distinct conv layers of the two models
SMALLCNN = [
    ("smallcnn.conv1", 1, 32, 28, 3, 1, 1),
    ("smallcnn.conv2", 32, 64, 28, 3, 1, 1),
    ("smallcnn.conv3", 64, 128, 14, 3, 1, 1),
]
RESNET18 = [
    ("resnet18.stem", 1, 64, 28, 3, 1, 1),
    ("resnet18.layer1", 64, 64, 28, 3, 1, 1),
    ("resnet18.layer2.down3x3", 64, 128, 28, 3, 2, 1),
    ("resnet18.layer2.down1x1", 64, 128, 28, 1, 2, 0),
    ("resnet18.layer2", 128, 128, 14, 3, 1, 1),
    ("resnet18.layer3.down3x3", 128, 256, 14, 3, 2, 1),
    ("resnet18.layer3", 256, 256, 7, 3, 1, 1),
    ("resnet18.layer4.down3x3", 256, 512, 7, 3, 2, 1),
    ("resnet18.layer4", 512, 512, 4, 3, 1, 1),
]
TINY_CONVS = [("tiny.conv", 4, 8, 8, 3, 1, 1), ("tiny.conv_s2", 8, 16, 8, 3, 2, 1),
              ("tiny.1x1", 8, 16, 8, 1, 1, 0)]


def _torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


def bench_matmul(sizes, repeats, rows):
    for n in sizes:
        _matmul_case(n, repeats, rows)


def _matmul_case(n, repeats, rows):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n), dtype=np.float32), rng.standard_normal((n, n), dtype=np.float32)
    res = compare({"ours": lambda: cpu.matmul(a, b), "numpy": lambda: a @ b}, repeats=repeats)
    gf = 2 * n**3 / 1e9
    rows.append(_row("matmul", f"{n}x{n}x{n} f32", res, "numpy",
                     ours_gflops=gf / res["ours"]["median_ms"] * 1e3,
                     base_gflops=gf / res["numpy"]["median_ms"] * 1e3))


def _row(section, case, res, base, **extra):
    o, b = res["ours"], res[base]
    row = {"section": section, "case": case, "baseline": base, "ours_ms": o["median_ms"],
           "ours_min_max": f"{o['min_ms']:.3g}-{o['max_ms']:.3g}", "base_ms": b["median_ms"],
           "base_min_max": f"{b['min_ms']:.3g}-{b['max_ms']:.3g}", "ratio": b["median_ms"] / o["median_ms"],
           "first_call_s": o["first_call_s"]}
    row.update(extra)
    return row


def bench_conv(layers, batch, repeats, rows, torch):
    for layer in layers:
        _conv_case(layer, batch, repeats, rows, torch)


def _conv_case(layer, batch, repeats, rows, torch):
    rng = np.random.default_rng(0)
    name, cin, cout, hw, k, s, p = layer
    x = rng.standard_normal((batch, cin, hw, hw), dtype=np.float32)
    w = (rng.standard_normal((cout, cin, k, k), dtype=np.float32) * 0.1).astype(np.float32)
    args = ((s, s), (p, p), (1, 1), 1)
    y = cpu.conv2d_forward(x, w, *args)
    gy = rng.standard_normal(y.shape, dtype=np.float32)
    gflop = 2 * y.size * cin * k * k / 1e9
    tx, tw, tgy = torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(gy)
    F, G = torch.nn.functional, torch.nn.grad
    cases = {
        "fwd": ({"ours": lambda: cpu.conv2d_forward(x, w, *args),
                 "torch": lambda: F.conv2d(tx, tw, None, s, p)}),
        "bwd_data": ({"ours": lambda: cpu.conv2d_backward_input(gy, w, x.shape, *args),
                      "torch": lambda: G.conv2d_input(x.shape, tw, tgy, s, p)}),
        "bwd_weight": ({"ours": lambda: cpu.conv2d_backward_weight(gy, x, w.shape, *args),
                        "torch": lambda: G.conv2d_weight(tx, w.shape, tgy, s, p)}),
    }
    if cin == 1:  # first layer: no input gradient is needed in training
        del cases["bwd_data"]
    for what, cands in cases.items():
        res = compare(cands, repeats=repeats)
        rows.append(_row(f"conv2d.{what}", f"{name} {cin}->{cout} k{k}s{s} @{hw}", res, "torch",
                         ours_gflops=gflop / res["ours"]["median_ms"] * 1e3))


def bench_pool_bn_ce(batch, hw, ch, repeats, rows, torch):
    import tinygrad_rad as tr
    import tinygrad_rad.nn.functional as TF

    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, ch, hw, hw), dtype=np.float32)
    tx = torch.from_numpy(x)
    # max-pool 2x2 forward and backward
    y, idx = cpu.max_pool2d_forward(x, (2, 2), (2, 2), (0, 0))
    gy = rng.standard_normal(y.shape, dtype=np.float32)
    txg = tx.clone().requires_grad_(True)
    ty = torch.nn.functional.max_pool2d(txg, 2, 2)
    tgy = torch.from_numpy(gy)
    res = compare({"ours": lambda: cpu.max_pool2d_forward(x, (2, 2), (2, 2), (0, 0)),
                   "torch": lambda: torch.nn.functional.max_pool2d(tx, 2, 2, return_indices=True)},
                  repeats=repeats)
    rows.append(_row("max_pool2d.fwd", f"2x2 ({batch},{ch},{hw},{hw})", res, "torch"))
    res = compare({"ours": lambda: cpu.max_pool2d_backward(gy, idx, x.shape, (2, 2), (2, 2), (0, 0)),
                   "torch": lambda: torch.autograd.grad(ty, txg, tgy, retain_graph=True)}, repeats=repeats)
    rows.append(_row("max_pool2d.bwd", f"2x2 ({batch},{ch},{hw},{hw})", res, "torch"))
    # batch norm (training mode) forward and backward
    wt, bs = np.ones(ch, np.float32), np.zeros(ch, np.float32)
    ybn, mean, invstd = cpu.batch_norm_forward_train(x, wt, bs, 1e-5)
    gbn = rng.standard_normal(x.shape, dtype=np.float32)
    twt, tbs = torch.ones(ch, requires_grad=True), torch.zeros(ch, requires_grad=True)
    tybn = torch.nn.functional.batch_norm(txg, None, None, twt, tbs, True)
    tgbn = torch.from_numpy(gbn)
    twt_d, tbs_d = twt.detach(), tbs.detach()
    res = compare({"ours": lambda: cpu.batch_norm_forward_train(x, wt, bs, 1e-5),
                   "torch": lambda: torch.nn.functional.batch_norm(tx, None, None, twt_d, tbs_d, True)},
                  repeats=repeats)
    rows.append(_row("batch_norm.fwd", f"({batch},{ch},{hw},{hw})", res, "torch"))
    res = compare({"ours": lambda: cpu.batch_norm_backward(gbn, x, wt, mean, invstd),
                   "torch": lambda: torch.autograd.grad(tybn, (txg, twt, tbs), tgbn, retain_graph=True)},
                  repeats=repeats)
    rows.append(_row("batch_norm.bwd", f"({batch},{ch},{hw},{hw})", res, "torch"))
    # softmax cross-entropy through the op path (forward + backward)
    ncls = 10
    logits = rng.standard_normal((batch, ncls), dtype=np.float32)
    target = rng.integers(0, ncls, batch)

    def ours_ce():
        lg = tr.tensor(logits, requires_grad=True)
        TF.cross_entropy(lg, tr.tensor(target)).backward()

    def torch_ce():
        lg = torch.tensor(logits, requires_grad=True)
        torch.nn.functional.cross_entropy(lg, torch.from_numpy(target)).backward()

    res = compare({"ours": ours_ce, "torch": torch_ce}, repeats=repeats)
    rows.append(_row("cross_entropy.fwd+bwd", f"({batch},{ncls}) op path", res, "torch"))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tiny", action="store_true", help="toy sizes: a smoke test that takes a few seconds")
    ap.add_argument("--threads", type=int, default=None, help="threads for Numba, BLAS, torch (default 2)")
    ap.add_argument("--repeats", type=int, default=None, help="timed repeats per candidate")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--only", choices=["matmul", "conv", "other"], default=None)
    ap.add_argument("--out", default=str(RESULTS_DIR), help="results directory")
    args = ap.parse_args(argv)
    threads = set_threads(args.threads or 2)  # issue 16's setting, as bench_train
    torch = _torch()
    repeats = args.repeats or (2 if args.tiny else 5)
    batch = 4 if args.tiny else args.batch
    rows: list[dict] = []
    t0 = time.perf_counter()
    if args.only in (None, "matmul"):
        bench_matmul([32, 64] if args.tiny else [256, 512, 1024, 2048], repeats, rows)
    if torch is None:
        print("torch is not installed: skipping the conv / pool / batch-norm / cross-entropy comparisons",
              file=sys.stderr)
    else:
        if args.only in (None, "conv"):
            bench_conv(TINY_CONVS if args.tiny else SMALLCNN + RESNET18, batch, repeats, rows, torch)
        if args.only in (None, "other"):
            bench_pool_bn_ce(batch, 8 if args.tiny else 28, 4 if args.tiny else 64, repeats, rows, torch)
    cols = ["section", "case", "ours_ms", "ours_min_max", "base_ms", "base_min_max", "baseline", "ratio",
            "ours_gflops", "first_call_s"]
    print_table(rows, cols)
    info = machine_info(torch=torch is not None)
    info["threads"] = threads
    if torch is not None:
        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
    name = "bench_kernels" + (f"_{args.only}" if args.only else "") + ("_tiny" if args.tiny else "")
    path = write_json(name,
                      {"machine": info, "batch": batch, "repeats": repeats, "rows": rows,
                       "wall_s": time.perf_counter() - t0,
                       "note": "ratio = baseline median / ours median (> 1: ours faster); interleaved"},
                      args.out)
    print(f"wrote {path} ({time.perf_counter() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
