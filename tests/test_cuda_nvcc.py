"""Compile the GPU code without a GPU: every CUDA C ``.cu`` file with ``nvcc`` for sm_80 and sm_90,
and every Numba CUDA kernel to PTX (libNVVM) then to sm_80 machine code with ``ptxas``. Each must
build and report no register spills (``-Xptxas -v``: "0 bytes spill stores, 0 bytes spill loads").

The Numba half matters because the simulator only *runs* kernels as Python: it never checks that
Numba can type them for a GPU; the float32 PTX must hold no float64 instruction. ``tc_gemm.cu`` is also
compiled with NVRTC (as CuPy's ``RawModule`` does on the GPU) with the include folder that
``tensorcore.nvrtc_options`` finds. Skips where the CUDA toolkit / NVRTC is absent.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CU_FILES = sorted((ROOT / "kernels").glob("*.cu"))
NVCC = shutil.which("nvcc")


def _ptxas():
    found = shutil.which("ptxas")
    if found:
        return found
    bases = [os.environ.get("CUDA_HOME", ""), os.environ.get("CUDA_PATH", "")] + glob.glob("/usr/local/cuda*")
    for base in bases:
        cand = Path(base) / "bin" / "ptxas"
        if base and cand.is_file():
            return str(cand)
    return None


def _spills(ptxas_log: str) -> list:
    """[(function, arch, spill stores, spill loads)] from ``ptxas -v`` output."""
    out, fn, arch = [], None, None
    for line in ptxas_log.splitlines():
        m = re.search(r"Compiling entry function '([^']+)' for '(sm_\d+a?)'", line)
        if m:
            fn, arch = m.groups()
        m = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", line)
        if m and fn:
            out.append((fn, arch, int(m.group(1)), int(m.group(2))))
    return out


def test_there_are_cu_files():
    assert CU_FILES, "kernels/ should hold the CUDA C tensor-core GEMM (.cu)"


@pytest.mark.slow
@pytest.mark.skipif(NVCC is None, reason="nvcc (CUDA toolkit) is not installed")
@pytest.mark.parametrize("cu", CU_FILES, ids=lambda p: p.name)
def test_cu_compiles_for_sm80_and_sm90_without_spills(cu, tmp_path):
    cmd = [NVCC, "-std=c++17", "-Xptxas", "-v", "-c", str(cu), "-o", str(tmp_path / "k.o"),
           "-gencode", "arch=compute_80,code=sm_80", "-gencode", "arch=compute_90,code=sm_90"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    log = res.stdout + res.stderr
    assert res.returncode == 0, f"nvcc failed on {cu.name}:\n{log}"
    spills = _spills(log)
    decl = r'extern "C" __global__ void(?: __launch_bounds__\(\w+\))?\s+(\w+)'
    kernels = set(re.findall(decl, cu.read_text()))
    assert kernels, f"{cu.name}: no extern \"C\" __global__ kernels found"
    for arch in ("sm_80", "sm_90"):
        built = {f for f, a, *_ in spills if a == arch}
        assert built >= kernels, f"{cu.name}: kernels {kernels - built} not built for {arch}\n{log}"
    bad = [s for s in spills if s[2] or s[3]]
    assert not bad, f"{cu.name}: register spills {bad}"


@pytest.mark.slow
def test_numba_kernels_compile_for_sm80_without_spills(tmp_path):
    ptxas = _ptxas()
    if ptxas is None:
        pytest.skip("ptxas (CUDA toolkit) is not installed")
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="0")
    res = subprocess.run([sys.executable, "-m", "tinygrad_rad.kernels.cuda_ptx", "80", str(tmp_path)],
                         capture_output=True, text=True, env=env, timeout=600, cwd=ROOT)
    no_nvvm = re.search(r"libnvvm|NVVM|Failure finding", res.stderr) and "Typing" not in res.stderr
    if res.returncode != 0 and no_nvvm:
        pytest.skip(f"libNVVM is not available: {res.stderr.strip().splitlines()[-1]}")
    assert res.returncode == 0, f"a Numba CUDA kernel does not compile for sm_80:\n{res.stderr[-4000:]}"
    files = sorted(tmp_path.glob("*.ptx"))
    assert len(files) >= 15 and any(f.name.startswith("gemm") for f in files), files
    for f in files:
        out = subprocess.run([ptxas, "-arch=sm_80", "-v", str(f), "-o", os.devnull], capture_output=True,
                             text=True, timeout=120)
        log = out.stdout + out.stderr
        assert out.returncode == 0, f"ptxas failed on {f.name}:\n{log}"
        spills = _spills(log)
        assert spills and all(s == 0 and l == 0 for *_, s, l in spills), f"{f.name} spills registers:\n{log}"


def _numba_ptx(tmp_path, cc: str, dtype: str):
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="0")
    code = (f"import sys; from tinygrad_rad.kernels import cuda_ptx as P; "
            f"[open(sys.argv[1] + '/' + ''.join(c if c.isalnum() else '_' for c in n) + '.ptx', 'w')"
            f".write(t) for n, t in P.compile_all(({cc[0]}, {cc[1]}), dtype='{dtype}').items()]")
    res = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, env=env,
                         timeout=600, cwd=ROOT)
    no_nvvm = re.search(r"libnvvm|NVVM|Failure finding", res.stderr) and "Typing" not in res.stderr
    if res.returncode != 0 and no_nvvm:
        pytest.skip(f"libNVVM is not available: {res.stderr.strip().splitlines()[-1]}")
    assert res.returncode == 0, f"a Numba CUDA kernel does not compile:\n{res.stderr[-4000:]}"
    return sorted(tmp_path.glob("*.ptx"))


@pytest.mark.slow
def test_float32_kernels_do_no_float64_arithmetic(tmp_path):
    """A float32 kernel must not widen to float64 (a Python float constant, 1/m with an int m, an
    int-valued divisor): on a GPU float64 runs at a fraction of the float32 rate."""
    files = _numba_ptx(tmp_path, "90", "float32")
    assert len(files) >= 20
    wide = {f.name: len(re.findall(r"\.f64\b", f.read_text())) for f in files}
    assert not {k: v for k, v in wide.items() if v}, wide


@pytest.mark.slow
def test_numba_kernels_compile_for_sm90_float64_without_spills(tmp_path):
    ptxas = _ptxas()
    if ptxas is None:
        pytest.skip("ptxas (CUDA toolkit) is not installed")
    for f in _numba_ptx(tmp_path, "90", "float64"):
        out = subprocess.run([ptxas, "-arch=sm_90", "-v", str(f), "-o", os.devnull], capture_output=True,
                             text=True, timeout=120)
        log = out.stdout + out.stderr
        assert out.returncode == 0, f"ptxas failed on {f.name}:\n{log}"
        spills = _spills(log)
        assert spills and all(s == 0 and l == 0 for *_, s, l in spills), f"{f.name} spills registers:\n{log}"


def _libnvrtc():
    """A loadable libnvrtc (the nvidia-cuda-nvrtc wheel's, the toolkit's, or the system's), or None."""
    cands = []
    for base in sys.path:
        cands += sorted(glob.glob(os.path.join(base, "nvidia", "cu1[3-9]", "lib", "libnvrtc.so*")),
                        reverse=True)
        cands += glob.glob(os.path.join(base, "nvidia", "cuda_nvrtc", "lib", "libnvrtc.so*"))
    for var in ("CUDA_HOME", "CUDA_PATH"):
        if os.environ.get(var):
            cands += glob.glob(os.path.join(os.environ[var], "lib64", "libnvrtc.so*"))
    cands += glob.glob("/usr/local/cuda*/lib64/libnvrtc.so*")
    found = ctypes.util.find_library("nvrtc")
    cands += [found] if found else []
    for c in cands:
        if "builtins" in os.path.basename(c):
            continue
        try:
            return ctypes.CDLL(c)
        except OSError:
            continue
    return None


@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_tc_gemm_compiles_with_nvrtc(arch):
    """What CuPy's RawModule does on the GPU: NVRTC with tensorcore.nvrtc_options() (the folder holding
    crt/mma.h: the nvidia-cuda-crt wheel's or the toolkit's)."""
    from tinygrad_rad.kernels import tensorcore

    lib = _libnvrtc()
    if lib is None:
        pytest.skip("NVRTC is not installed (nvidia-cuda-nvrtc wheel or CUDA toolkit)")
    opts = list(tensorcore.nvrtc_options())
    if len(opts) < 2:
        pytest.skip("no folder with crt/mma.h (nvidia-cuda-crt wheel or CUDA toolkit)")
    prog = ctypes.c_void_p()
    src = tensorcore.CU_FILE.read_bytes()
    assert lib.nvrtcCreateProgram(ctypes.byref(prog), src, b"tc_gemm.cu", 0, None, None) == 0
    args = [o.encode() for o in opts + [f"-arch={arch}"]]
    rc = lib.nvrtcCompileProgram(prog, len(args), (ctypes.c_char_p * len(args))(*args))
    size = ctypes.c_size_t()
    lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
    log = ctypes.create_string_buffer(size.value)
    lib.nvrtcGetProgramLog(prog, log)
    assert rc == 0, f"NVRTC failed on tc_gemm.cu with {opts}:\n{log.value.decode(errors='replace')}"
    lib.nvrtcDestroyProgram(ctypes.byref(prog))


def test_gpu_check_script_parses_and_passes_shellcheck():
    script = ROOT / "benchmarks" / "gpu_check.sh"
    res = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    sc = shutil.which("shellcheck")
    if sc:
        res = subprocess.run([sc, str(script)], capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stdout + res.stderr
    text = script.read_text()
    for step in ("CUDA_HOME", "cuda.jit", "tensorcore", "TGR_REAL_GPU=1", "bench_gpu"):
        assert step in text, step
