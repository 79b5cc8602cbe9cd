#!/usr/bin/env bash
# GPU check, for a machine with an NVIDIA GPU (python3 with cupy, numba-cuda and, for the baselines,
# torch). Needs no network and no install: a throw-away shim makes `tinygrad_rad.kernels` resolve to
# the repo's kernels/ folder. One prepared run, < 5 minutes on an H200 (each step has its own timeout):
#   1. machine: nvidia-smi, CUDA_HOME (from nvcc's location when unset: numba-cuda finds libNVVM under
#      it), a one-line Numba CUDA kernel compiled and run, CuPy, the tensor-core module built (NVRTC);
#   2. the CUDA tests on the real GPU (TGR_REAL_GPU=1: CuPy arrays, full-size tiles, tensor cores,
#      every kernel at realistic sizes vs a float64 reference, a tiny CNN cuda == cpu);
#   3. benchmarks/bench_gpu.py: Numba SGEMM vs cuBLAS FP32, tensor-core GEMM vs cuBLAS TF32/FP16/BF16,
#      conv2d fwd/bwd vs cuDNN, SmallCNN and ResNet-18 training images/s vs PyTorch + cuDNN; table
#      last, JSON (card, driver, CUDA versions, date, every number) in benchmarks/results/gpu_*.json.
# Logs of each step go to OUT_DIR (gpu_machine.log, gpu_tests.log + gpu_tests.xml, gpu_bench.log).
#
#   bash benchmarks/gpu_check.sh [--out DIR] [--no-tests] [--no-bench] [-- BENCH_GPU_ARGS...]
#
# GPU_CHECK_SIMULATE=1 runs the same steps without a GPU (CUDA simulator, bench --tiny): how the
# tests check this script.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=${PYTHON:-python3}
OUT_DIR="$ROOT/benchmarks/results"
RUN_TESTS=1
RUN_BENCH=1
TESTS_TIMEOUT=${GPU_CHECK_TESTS_TIMEOUT:-140}
BENCH_TIMEOUT=${GPU_CHECK_BENCH_TIMEOUT:-130}
while [ $# -gt 0 ]; do
    case "$1" in
        --out) OUT_DIR="$2"; shift 2 ;;
        --no-tests) RUN_TESTS=0; shift ;;
        --no-bench) RUN_BENCH=0; shift ;;
        --) shift; break ;;
        *) echo "gpu_check.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
mkdir -p "$OUT_DIR"
OUT_DIR=$(cd "$OUT_DIR" && pwd)
T0=$SECONDS

# NOTE: kernels/ is installed as tinygrad_rad.kernels (pyproject package-dir). Without installing,
# mirror the package in a temp folder with kernels/ linked in, and put that folder first on the path.
SHIM=$(mktemp -d)
trap 'rm -rf "$SHIM"' EXIT
mkdir -p "$SHIM/tinygrad_rad"
for f in "$ROOT"/tinygrad_rad/*; do ln -s "$f" "$SHIM/tinygrad_rad/$(basename "$f")"; done
ln -s "$ROOT/kernels" "$SHIM/tinygrad_rad/kernels"
export PYTHONPATH="$SHIM:$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONSAFEPATH=1  # keep the current folder (the repo's own tinygrad_rad/) off sys.path
export PYTHONUNBUFFERED=1
BENCH_ARGS=("$@")
if [ "${GPU_CHECK_SIMULATE:-0}" = 1 ]; then
    export NUMBA_ENABLE_CUDASIM=1 TGR_REAL_GPU=0
    BENCH_ARGS=(--tiny "${BENCH_ARGS[@]}")
else
    export NUMBA_ENABLE_CUDASIM=0 TGR_REAL_GPU=1
fi
unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE
cd "$ROOT" || exit 1

# CUDA_HOME from nvcc's own idea of its toolkit (nvcc may be a wrapper script), else the usual folders
if [ -z "${CUDA_HOME:-}" ]; then
    cands=()
    if command -v nvcc >/dev/null 2>&1; then
        top=$(nvcc -dryrun -x cu -c /dev/null -o /dev/null 2>&1 | sed -n 's/^#\$ TOP=//p' | head -n 1)
        [ -n "$top" ] && cands+=("$top")
        cands+=("$(dirname "$(dirname "$(readlink -f "$(command -v nvcc)")")")")
    fi
    cands+=(/usr/local/cuda /usr/local/cuda-*)
    for c in "${cands[@]}"; do
        if [ -d "$c/nvvm" ]; then
            CUDA_HOME=$(cd "$c" && pwd)
            export CUDA_HOME
            break
        fi
    done
fi

echo "== machine"
{
    nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader 2>/dev/null \
        || echo "(no nvidia-smi)"
    echo "CUDA_HOME=${CUDA_HOME:-<unset: numba-cuda may not find libNVVM>}"
    command -v nvcc >/dev/null 2>&1 && nvcc --version | tail -n 1
} 2>&1 | tee "$OUT_DIR/gpu_machine.log"
timeout 120 "$PY" - <<'EOF' 2>&1 | tee -a "$OUT_DIR/gpu_machine.log"
import os
import numpy as np
import tinygrad_rad as tr
from numba import cuda

print("tinygrad_rad from", tr.__file__)
print("device:", tr.cuda.device_info())


@cuda.jit
def _one(a):  # the one-line kernel: libNVVM found, PTX built, loaded and run
    a[cuda.grid(1)] += 1


if os.environ.get("NUMBA_ENABLE_CUDASIM", "0") in ("", "0"):
    import cupy

    a = cupy.zeros(32, dtype=cupy.float32)
    _one[1, 32](cuda.as_cuda_array(a))
    cupy.cuda.Device().synchronize()
    assert float(a.sum()) == 32.0, a
    print("numba kernel: OK; cupy", cupy.__version__, "runtime", cupy.cuda.runtime.runtimeGetVersion(),
          "driver", cupy.cuda.runtime.driverGetVersion())
    from tinygrad_rad.kernels import tensorcore

    print("tensor-core NVRTC options:", tensorcore.nvrtc_options())
    mod = tensorcore._module()
    print("tensor-core module:", "built" if mod is not None else f"NOT built: {tensorcore._BUILD_ERROR}")
    for name in ("float32", "float16", "bfloat16"):
        print(f"tensor-core self-test {name}:", tensorcore.self_test(name))
else:
    a = np.zeros(32, dtype=np.float32)
    _one[1, 32](a)
    assert float(a.sum()) == 32.0
    print("numba kernel (simulator): OK")
EOF
MACHINE_RC=${PIPESTATUS[0]}
if [ "$MACHINE_RC" != 0 ]; then
    echo "gpu_check: the machine step failed (rc=$MACHINE_RC): device 'cuda' is not usable here" >&2
    exit 1
fi

TEST_RC=0
if [ "$RUN_TESTS" = 1 ]; then
    echo "== CUDA tests on the real GPU ($((SECONDS - T0)) s so far)"
    # (tests/test_cuda_nvcc.py only compiles, it needs no GPU: CI runs it.) No -x: one run shows every failure.
    timeout "$TESTS_TIMEOUT" "$PY" -m pytest -q -rfEs --maxfail=30 -p no:cacheprovider \
        --junitxml="$OUT_DIR/gpu_tests.xml" tests/test_cuda_kernels.py tests/test_cuda_device.py 2>&1 \
        | tee "$OUT_DIR/gpu_tests.log" | tail -n 60
    TEST_RC=${PIPESTATUS[0]}
fi

BENCH_RC=0
if [ "$RUN_BENCH" = 1 ]; then
    echo "== GPU benchmarks ($((SECONDS - T0)) s so far)"
    timeout "$BENCH_TIMEOUT" "$PY" -m benchmarks.bench_gpu --out "$OUT_DIR" "${BENCH_ARGS[@]}" 2>&1 \
        | tee "$OUT_DIR/gpu_bench.log"
    BENCH_RC=${PIPESTATUS[0]}
fi

echo "== gpu_check: machine ok, tests rc=$TEST_RC, bench rc=$BENCH_RC, $((SECONDS - T0)) s"
[ "$TEST_RC" = 0 ] && [ "$BENCH_RC" = 0 ]
