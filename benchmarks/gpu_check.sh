#!/usr/bin/env bash
# GPU check, for a machine with an NVIDIA GPU (python3 with cupy, numba-cuda and, for the baselines,
# torch). Needs no network and no install: a throw-away shim makes `tinygrad_rad.kernels` resolve to
# the repo's kernels/ folder. Runs in < 5 minutes:
#   1. the CUDA tests on the real GPU (TGR_REAL_GPU=1: CuPy arrays, full-size tiles, tensor cores);
#   2. benchmarks/bench_gpu.py: SGEMM vs cuBLAS, tensor-core GEMM vs cuBLAS, conv fwd+bwd vs cuDNN,
#      ResNet-18 training images/s vs PyTorch; table last, JSON in benchmarks/results/ (or --out DIR).
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

# NOTE: kernels/ is installed as tinygrad_rad.kernels (pyproject package-dir). Without installing,
# mirror the package in a temp folder with kernels/ linked in, and put that folder first on the path.
SHIM=$(mktemp -d)
trap 'rm -rf "$SHIM"' EXIT
mkdir -p "$SHIM/tinygrad_rad"
for f in "$ROOT"/tinygrad_rad/*; do ln -s "$f" "$SHIM/tinygrad_rad/$(basename "$f")"; done
ln -s "$ROOT/kernels" "$SHIM/tinygrad_rad/kernels"
export PYTHONPATH="$SHIM:$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONSAFEPATH=1  # keep the current folder (the repo's own tinygrad_rad/) off sys.path
BENCH_ARGS=("$@")
if [ "${GPU_CHECK_SIMULATE:-0}" = 1 ]; then
    export NUMBA_ENABLE_CUDASIM=1 TGR_REAL_GPU=0
    BENCH_ARGS=(--tiny "${BENCH_ARGS[@]}")
else
    export NUMBA_ENABLE_CUDASIM=0 TGR_REAL_GPU=1
fi
unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE
cd "$ROOT"

echo "== machine"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo "(no nvidia-smi)"
"$PY" -c "import tinygrad_rad as tr; print('tinygrad_rad from', tr.__file__); print(tr.cuda.device_info())" \
    || { echo "gpu_check: device 'cuda' is not usable here" >&2; exit 1; }

TEST_RC=0
if [ "$RUN_TESTS" = 1 ]; then
    echo "== CUDA tests on the real GPU"
    # (tests/test_cuda_nvcc.py only compiles, it needs no GPU: CI runs it)
    timeout 150 "$PY" -m pytest -q -x -p no:cacheprovider --junitxml="$OUT_DIR/gpu_tests.xml" \
        tests/test_cuda_kernels.py tests/test_cuda_device.py
    TEST_RC=$?
fi

BENCH_RC=0
if [ "$RUN_BENCH" = 1 ]; then
    echo "== GPU benchmarks"
    timeout 200 "$PY" -m benchmarks.bench_gpu --out "$OUT_DIR" "${BENCH_ARGS[@]}"
    BENCH_RC=$?
fi

echo "== gpu_check: tests rc=$TEST_RC, bench rc=$BENCH_RC"
[ "$TEST_RC" = 0 ] && [ "$BENCH_RC" = 0 ]
