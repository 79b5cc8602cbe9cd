"""Shared benchmark harness: interleaved A/B timing, machine info, JSON results, a table printer.

Typical use::

    from benchmarks.common import compare, machine_info, print_table, write_json

    res = compare({"ours": lambda: f(x), "torch": lambda: g(tx)}, repeats=7)
    print(res["ours"]["median_ms"], res["torch"]["median_ms"], res["ours"]["compile_s"])

Timing rules (the machine is usually shared, so timings are noisy):

* The first call of each candidate is timed on its own and reported as ``first_call_s`` (Numba's
  JIT compile or cache load happens there); then ``warmup`` untimed calls.
* The candidates are then run interleaved A, B, A, B, ... so that a burst of load from another
  process hits both alike; we report the median and the min-max of the repeats, and ratios of medians.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def time_once(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def compare(candidates: dict[str, Callable[[], object]], repeats: int = 7, warmup: int = 1,
            min_time_s: float = 0.0) -> dict[str, dict]:
    """Time each zero-argument callable, interleaved; returns {name: stats} (times in ms).

    ``min_time_s``: keep repeating rounds until the total timed time reaches it (at least ``repeats``).
    """
    stats: dict[str, dict] = {}
    for name, fn in candidates.items():
        stats[name] = {"first_call_s": time_once(fn), "times_ms": []}
        for _ in range(warmup):
            fn()
    total, rounds = 0.0, 0
    while rounds < repeats or total < min_time_s:
        for name, fn in candidates.items():
            t = time_once(fn)
            stats[name]["times_ms"].append(t * 1e3)
            total += t
        rounds += 1
        if rounds >= 10 * max(repeats, 1):
            break
    for s in stats.values():
        ts = s["times_ms"]
        s.update(median_ms=statistics.median(ts), min_ms=min(ts), max_ms=max(ts), repeats=len(ts))
    return stats


def ratio(stats: dict[str, dict], ours: str, base: str) -> float:
    """base_time / ours_time: > 1 means ours is faster."""
    return stats[base]["median_ms"] / stats[ours]["median_ms"]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


# the flags that decide which SIMD paths Numba (LLVM), OpenBLAS and oneDNN can take
CPU_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512dq", "avx512bw", "avx512vl", "avx512_vnni",
             "avx512_bf16", "avx512_fp16", "avx_vnni", "amx_tile", "amx_bf16", "amx_int8")


def cpu_flags() -> list[str]:
    """Which of ``CPU_FLAGS`` /proc/cpuinfo lists (empty where it cannot be read)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                have = set(line.split(":", 1)[1].split())
                return [f for f in CPU_FLAGS if f in have]
    except OSError:
        pass
    return []


def cpu_caches() -> list[dict]:
    """Per-level caches of CPU 0 from /sys: level, type, size, and which CPUs share it."""
    out = []
    for d in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        try:
            e = {k: (d / k).read_text().strip() for k in ("level", "type", "size", "shared_cpu_list")}
        except OSError:
            continue
        out.append(e)
    return out


def numba_info() -> dict:
    """Numba's thread count and threading layer without starting its pool.

    # NOTE: numba.get_num_threads() launches the pool and so fixes the threading layer; call it only
    # once a parallel kernel has run (numba.threading_layer() answers then) - otherwise report the config.
    """
    import numba

    try:
        used = numba.threading_layer()
    except ValueError:  # no parallel kernel has run in this process
        used = None
    return {"numba_threads": numba.get_num_threads() if used else numba.config.NUMBA_NUM_THREADS,
            "numba_threading_layer": numba.config.THREADING_LAYER, "numba_threading_layer_used": used}


def blas_info() -> list[dict] | str:
    """threadpoolctl's view of the loaded BLAS / OpenMP libraries: ``architecture`` is the core type
    OpenBLAS chose at load time (e.g. SkylakeX, Haswell, Zen; OPENBLAS_CORETYPE overrides it)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "threadpoolctl not installed"
    return [{k: p.get(k) for k in ("internal_api", "version", "num_threads", "architecture",
                                   "threading_layer", "prefix")} for p in threadpool_info()]


def torch_info() -> dict | None:
    """PyTorch's version, threads and CPU kernels: ATen's CPU capability (the ISA its vectorised
    kernels were dispatched to), oneDNN (mkldnn) availability and version; None without PyTorch."""
    try:
        import torch
    except ImportError:
        return None
    info = {"version": torch.__version__, "threads": torch.get_num_threads(),
            "mkldnn_available": torch.backends.mkldnn.is_available()}
    try:
        info["cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    except AttributeError:  # pragma: no cover - old PyTorch
        info["cpu_capability"] = None
    for line in torch.__config__.show().splitlines():
        line = line.strip(" -")
        if "MKL-DNN" in line or "oneDNN" in line:
            info["onednn"] = line
        elif line.startswith("Intel(R) oneAPI Math Kernel Library") or line.startswith("BLAS_INFO"):
            info.setdefault("blas", line.split(" for ")[0])
    info["onednn_max_cpu_isa_env"] = os.environ.get("ONEDNN_MAX_CPU_ISA", os.environ.get("DNNL_MAX_CPU_ISA"))
    return info


def machine_info(torch: bool = False) -> dict:
    """CPU model, flags, caches, core count, thread settings, BLAS libraries (threadpoolctl), library
    versions; with ``torch=True`` also PyTorch's CPU capability / oneDNN (imports torch)."""
    import numba
    import numpy as np

    info = {
        "cpu": _cpu_model(),
        "cpu_flags": cpu_flags(),
        "caches": cpu_caches(),
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        **numba_info(),
        "env": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS",
                                            "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "NUMBA_THREADING_LAYER",
                                            "TGR_BACKEND", "TGR_TUNE_MALLOC") if k in os.environ},
        "blas": blas_info(),
    }
    if torch:
        info["torch"] = torch_info()
    try:
        info["load_avg"] = os.getloadavg()
    except OSError:
        pass
    return info


def write_json(name: str, payload: dict, results_dir: Path | str = RESULTS_DIR) -> Path:
    """Write ``payload`` to ``results_dir/name.json`` atomically (temp file + os.replace)."""
    results_dir = Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"{name}.json"
    fd, tmp = tempfile.mkstemp(dir=results_dir, prefix=f".{name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(payload, f, indent=2, default=str)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def print_table(rows: list[dict], columns: list[str] | None = None, floatfmt: str = ".3g") -> str:
    """Print rows (dicts) as an aligned text table; returns the text."""
    if not rows:
        return ""
    columns = columns or list(rows[0])

    def fmt(v):
        if isinstance(v, float):
            return format(v, floatfmt)
        return str(v)

    cells = [[fmt(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(v.rjust(w) for v, w in zip(row, widths)) for row in cells]
    text = "\n".join(lines)
    print(text, flush=True)
    return text


def set_threads(n: int | None = None) -> int:
    """Use ``n`` threads (default: all cores) in Numba, our conv kernels, BLAS and PyTorch (if installed);
    returns n. Ours through ``kernels.configure_cpu`` (what the CLI calls): it also selects Numba's
    workqueue threading layer and tunes malloc, so call this before any kernel runs."""
    from tinygrad_rad.kernels import configure_cpu

    n = n or os.cpu_count() or 1
    configure_cpu(num_threads=n)
    try:
        import torch

        torch.set_num_threads(n)
    except ImportError:
        pass
    return n
