"""The device layer on ``device="cuda"``: moving tensors, creation functions, mixing devices, the
"cuda unavailable" error, a representative op set and two training steps of a tiny CNN matching
the CPU. Without a GPU ``cuda`` is Numba's CUDA simulator (conftest.py), so every heavy op runs the
project's Numba CUDA kernels on NumPy arrays; with ``TGR_REAL_GPU=1`` it runs on the GPU.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tinygrad_rad as tr
import tinygrad_rad.nn.functional as F

pytestmark = pytest.mark.cudasim

if not tr.cuda.is_available():  # pragma: no cover - numba-cuda missing
    pytest.skip("no CUDA device and no CUDA simulator", allow_module_level=True)

ROOT = Path(__file__).resolve().parents[1]


def test_to_cuda_and_back_is_differentiable():
    x = tr.tensor([[1.0, -2.0], [3.0, 0.5]], requires_grad=True)
    y = x.to("cuda")
    assert y.device == "cuda" and "device='cuda'" in repr(y)
    z = (y * y).sum().to("cpu")
    assert z.device == "cpu"
    z.backward()
    assert x.grad.device == "cpu"
    np.testing.assert_allclose(x.grad.numpy(), 2 * x.numpy())
    assert tr.tensor([1.0], device="cuda:0").device == "cuda"


@pytest.mark.parametrize(
    "make",
    [lambda: tr.zeros(2, 3, device="cuda"), lambda: tr.ones((2, 3), device="cuda"),
     lambda: tr.full((2, 3), 7.0, device="cuda"), lambda: tr.arange(6, device="cuda"),
     lambda: tr.randn(2, 3, device="cuda"), lambda: tr.rand(2, 3, device="cuda"),
     lambda: tr.eye(3, device="cuda"), lambda: tr.tensor([1, 2], device="cuda"),
     lambda: tr.zeros_like(tr.ones(2, device="cuda"))],
)
def test_creation_functions_take_device(make):
    t = make()
    assert t.device == "cuda"
    assert isinstance(t.numpy(), np.ndarray)


def test_mixing_devices_raises_naming_both():
    a, b = tr.ones(2), tr.ones(2, device="cuda")
    with pytest.raises(RuntimeError, match=r"'cpu'.*'cuda'"):
        a + b
    with pytest.raises(RuntimeError, match=r"'cuda'.*'cpu'"):
        b @ tr.ones(2, 2)


def test_unknown_device_is_named():
    with pytest.raises(ValueError, match="'tpu'"):
        tr.zeros(2, device="tpu")


def test_cuda_unavailable_error_message():
    """Without the simulator and without CuPy, device='cuda' raises one clear RuntimeError."""
    code = (
        "import sys; sys.modules['cupy'] = None\n"  # hide CuPy even where it is installed
        "import tinygrad_rad as tr\n"
        "assert not tr.cuda.is_available()\n"
        "try:\n"
        "    tr.zeros(2, device='cuda')\n"
        "except RuntimeError as e:\n"
        "    print(e)\n"
    )
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="0")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "device 'cuda' is not available" in out.stdout
    assert "CuPy is not installed" in out.stdout and "NUMBA_ENABLE_CUDASIM=1" in out.stdout


def test_device_info_and_synchronize():
    info = tr.cuda.device_info()
    assert info["simulator"] == tr.cuda.is_simulator()
    assert isinstance(tr.cuda.device_name(), str) and tr.cuda.device_name()
    tr.cuda.synchronize()


# ------------------------------------------------------------------ representative op set
def _grads_match(fn, *shapes, tol=1e-4, seed=0):
    """fn on cpu and on cuda: same outputs and same input gradients of sum(out * r)."""
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    res = {}
    for dev in ("cpu", "cuda"):
        ts = [tr.tensor(a, device=dev, requires_grad=True) for a in arrays]
        out = fn(*ts)
        r = tr.tensor(np.random.default_rng(1).standard_normal(out.shape).astype(np.float32), device=dev)
        (out * r).sum().backward()
        assert out.device == dev and all(t.grad.device == dev for t in ts)
        res[dev] = [out.numpy()] + [t.grad.numpy() for t in ts]
    for c, g in zip(res["cpu"], res["cuda"]):
        np.testing.assert_allclose(g, c, rtol=tol, atol=tol)


OPS = {
    "matmul_batched": (lambda a, b: a @ b, (2, 3, 4), (4, 5)),
    "linear": (lambda x, w, b: F.linear(x, w, b), (3, 4), (5, 4), (5,)),
    "conv2d_stride_pad_groups": (lambda x, w: F.conv2d(x, w, stride=2, padding=1, groups=2), (2, 4, 6, 5),
                                 (4, 2, 3, 3)),
    "conv2d_dilation_bias": (lambda x, w, b: F.conv2d(x, w, b, dilation=2), (1, 2, 6, 6), (3, 2, 2, 2), (3,)),
    "conv_transpose2d": (lambda x, w: F.conv_transpose2d(x, w, stride=2, padding=1, output_padding=1),
                         (1, 3, 3, 4), (3, 2, 3, 3)),
    "max_pool2d": (lambda x: F.max_pool2d(x, 3, stride=2, padding=1), (2, 2, 5, 6)),
    "avg_pool2d": (lambda x: F.avg_pool2d(x, 2), (2, 2, 4, 6)),
    "adaptive_avg_pool2d": (lambda x: F.adaptive_avg_pool2d(x, 1), (2, 3, 3, 4)),
    "batch_norm_train": (lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True), (3, 2, 3, 3), (2,),
                         (2,)),
    "cross_entropy": (lambda x: F.cross_entropy(x, tr.tensor([0, 2, 1], device=x.device)), (3, 4)),
    "gelu_softmax": (lambda x: F.softmax(F.gelu(x), dim=1), (3, 5)),
    "interpolate_bilinear": (lambda x: F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False),
                             (1, 2, 3, 3)),
}


@pytest.mark.parametrize("name", list(OPS))
def test_op_matches_cpu(name):
    fn, *shapes = OPS[name]
    _grads_match(fn, *shapes)


# ------------------------------------------------------------------ tiny CNN, two SGD steps
def test_tiny_cnn_two_training_steps_match_cpu():
    from tinygrad_rad import nn
    from tinygrad_rad.optim import SGD

    def make():
        tr.manual_seed(0)
        return nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(4, 4, 3, stride=2, padding=1, bias=False), nn.ReLU(), nn.Flatten(), nn.Linear(16, 3),
        )

    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 1, 6, 6)).astype(np.float32)
    y = np.array([0, 2])
    results = {}
    for dev in ("cpu", "cuda"):
        model = make().to(dev)
        opt = SGD(model.parameters(), lr=0.1, momentum=0.9)
        losses = []
        for _ in range(2):
            opt.zero_grad()
            loss = F.cross_entropy(model(tr.tensor(x, device=dev)), tr.tensor(y, device=dev))
            loss.backward()
            opt.step()
            losses.append(float(loss.item()))
        assert all(p.device == dev for p in model.parameters())
        results[dev] = (losses, {k: v.numpy() for k, v in model.state_dict().items()})
    np.testing.assert_allclose(results["cuda"][0], results["cpu"][0], rtol=1e-4, atol=1e-4)
    for k, v in results["cpu"][1].items():
        np.testing.assert_allclose(results["cuda"][1][k], v, rtol=1e-4, atol=1e-4, err_msg=k)


@pytest.mark.parametrize("opt_name", ["Adam", "AdamW"])
def test_adam_on_cuda_runs_the_cuda_kernel_and_matches_cpu(opt_name, monkeypatch):
    """Adam goes through backend("cuda").adam_step (no private CPU kernel): same parameters as on the CPU."""
    from tinygrad_rad import nn, optim
    from tinygrad_rad.device import backend

    calls = []
    cuda_kernels = backend("cuda")
    real = cuda_kernels.adam_step
    monkeypatch.setattr(cuda_kernels, "adam_step", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    rng = np.random.default_rng(0)
    init = rng.standard_normal((3, 4)).astype(np.float32)
    grads = rng.standard_normal((3, 3, 4)).astype(np.float32)
    out = {}
    for dev in ("cpu", "cuda"):
        p = nn.Parameter(tr.tensor(init, device=dev))
        opt = getattr(optim, opt_name)([p], lr=0.01, weight_decay=0.1)
        for g in grads:
            p.grad = tr.tensor(g, device=dev)
            opt.step()
        out[dev] = p.numpy()
    assert len(calls) == 3
    np.testing.assert_allclose(out["cuda"], out["cpu"], rtol=1e-6, atol=1e-7)


def test_cuda_tier_selection_leaves_the_cpu_alone():
    from tinygrad_rad.device import backend

    prev = tr.get_backend("cuda")
    try:
        if importlib.util.find_spec("tinygrad_rad.kernels.cuda_plain") is None:
            pytest.skip("kernels/cuda_plain.py (tier 3) is not there yet")
        tr.set_backend("cuda_plain")
        assert tr.get_backend("cuda") == "cuda_plain" and tr.get_backend("cpu") == "cpu"
        assert backend("cuda").__name__ == "tinygrad_rad.kernels.cuda_plain"
        _grads_match(lambda x, w: F.relu(F.conv2d(x, w, padding=1)), (1, 2, 5, 5), (3, 2, 3, 3))
    finally:
        tr.set_backend(prev)


# ------------------------------------------------------------------ GPU benchmark scripts
def test_bench_gpu_tiny_writes_json_and_table(tmp_path, capsys):
    import json

    sys.path.insert(0, str(ROOT))
    from benchmarks import bench_gpu

    assert bench_gpu.main(["--tiny", "--out", str(tmp_path), "--sizes", "8"]) == 0
    payload = json.loads((tmp_path / "gpu_tiny.json").read_text())
    rows = {r["section"]: r for r in payload["rows"]}
    assert set(rows) == {"sgemm", "tc_gemm", "conv", "train"}
    for sec in ("sgemm", "conv"):
        assert "error" not in rows[sec] and rows[sec]["ours_ms"] > 0 and rows[sec]["base_ms"] > 0
    assert rows["sgemm"]["max_rel_err"] < 1e-5
    assert rows["train"]["ours_img_s"] > 0
    assert payload["device"]["simulator"] == tr.cuda.is_simulator()
    out = capsys.readouterr().out
    assert out.rstrip().splitlines()[-1].lstrip().startswith("train")  # the table comes last


def test_gpu_check_script_runs_from_the_repo_without_install(tmp_path):
    """gpu_check.sh's shim makes tinygrad_rad.kernels importable; GPU_CHECK_SIMULATE=1 needs no GPU."""
    env = dict(os.environ, GPU_CHECK_SIMULATE="1", PYTHON=sys.executable)
    cmd = ["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--no-tests", "--out", str(tmp_path), "--",
           "--sections", "sgemm", "--sizes", "8"]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "tinygrad_rad from" in res.stdout and str(ROOT / "tinygrad_rad") not in res.stdout
    assert (tmp_path / "gpu_tiny.json").is_file()
