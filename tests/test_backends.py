"""Backend selection (TGR_BACKEND / set_backend) and training on every CPU kernel tier.

The reference tier (plain NumPy) trains SmallCNN with the same losses as the fast CPU tier to float
tolerance, chosen either way: with ``set_backend`` in this process, with ``TGR_BACKEND`` in a fresh one.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tinygrad_rad as tr
import tinygrad_rad.nn.functional as F
from tinygrad_rad import optim
from tinygrad_rad.device import backend
from tinygrad_rad.models import SmallCNN

TESTS = Path(__file__).resolve().parent
HAS_CPU_PLAIN = importlib.util.find_spec("tinygrad_rad.kernels.cpu_plain") is not None


@pytest.fixture
def restore_backend():
    prev = tr.get_backend()
    yield
    tr.set_backend(prev)


def _train_losses(steps: int = 3) -> dict:
    """Three Adam steps of SmallCNN on 8 random 28x28 images (fixed seed), with the current backend."""
    tr.manual_seed(0)
    model = SmallCNN(in_channels=1, num_classes=2)
    opt = optim.Adam(model.parameters(), lr=1e-3)
    x = tr.randn(8, 1, 28, 28)
    y = tr.randint(0, 2, (8,))
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(float(loss.item()))
    weight = model.fc.weight.numpy().astype(np.float64)
    return {"backend": tr.get_backend(), "module": backend("cpu").__name__, "losses": losses,
            "fc_weight": weight.ravel().tolist()}


def _check_same_training(got: dict, want: dict) -> None:
    np.testing.assert_allclose(got["losses"], want["losses"], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(got["fc_weight"], want["fc_weight"], rtol=1e-3, atol=1e-5)


@pytest.fixture(scope="module")
def cpu_run():
    prev = tr.get_backend()
    tr.set_backend("cpu")
    try:
        return _train_losses()
    finally:
        tr.set_backend(prev)


# ------------------------------------------------------------------------------------------ selection
def test_default_tiers_and_set_backend(restore_backend):
    tr.set_backend(None)
    assert tr.get_backend() == "cpu" and tr.get_backend("cpu") == "cpu" and tr.get_backend("cuda") == "cuda"
    tr.set_backend("reference")
    assert tr.get_backend() == "reference" and backend("cpu").__name__ == "tinygrad_rad.kernels.reference"
    assert tr.get_backend("cuda") == "cuda"  # a CPU tier leaves the GPU's alone
    tr.set_backend("cpu")
    assert backend("cpu").__name__ == "tinygrad_rad.kernels.cpu"
    tr.set_backend(None)
    assert tr.get_backend() == "cpu"


def test_unknown_backend_names_the_choices(restore_backend):
    choices = "reference, cpu_plain, cpu, cuda_plain, cuda"
    with pytest.raises(ValueError, match=rf"unknown backend 'numpy'; choose one of: {choices}"):
        tr.set_backend("numpy")
    assert tr.get_backend() == "cpu"  # unchanged
    with pytest.raises(ValueError, match=r"unknown device 'tpu'"):
        tr.get_backend("tpu")


def test_tgr_backend_environment_variable():
    code = "import tinygrad_rad as tr; print(tr.get_backend(), tr.device.backend('cpu').__name__)"
    env = dict(os.environ, TGR_BACKEND="reference")
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["reference", "tinygrad_rad.kernels.reference"]
    env["TGR_BACKEND"] = "fast"
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode != 0 and "TGR_BACKEND: unknown backend 'fast'" in res.stderr


def test_every_heavy_op_goes_through_the_backend(monkeypatch, restore_backend):
    """One training step on the reference tier calls its kernels, incl. GELU's erf, the fused
    softmax-cross-entropy and Adam (none of them may bypass backend())."""
    from tinygrad_rad.kernels import reference

    tr.set_backend("reference")
    names = ["matmul", "erf", "relu_forward", "relu_backward", "conv2d_forward", "conv2d_backward_input",
             "conv2d_backward_weight", "max_pool2d_forward", "max_pool2d_backward",
             "batch_norm_forward_train", "batch_norm_backward", "softmax_cross_entropy_forward",
             "softmax_cross_entropy_backward", "adam_step"]
    calls = dict.fromkeys(names, 0)
    for name in names:
        fn = getattr(reference, name)

        def counted(*a, _fn=fn, _name=name, **kw):
            calls[_name] += 1
            return _fn(*a, **kw)

        monkeypatch.setattr(reference, name, counted)
    tr.manual_seed(0)
    conv = tr.nn.Conv2d(1, 4, 3, padding=1)
    bn = tr.nn.BatchNorm2d(4)
    fc = tr.nn.Linear(4 * 4 * 4, 3)
    params = list(conv.parameters()) + list(bn.parameters()) + list(fc.parameters())
    opt = optim.Adam(params, lr=1e-3)
    x = tr.randn(2, 1, 8, 8, requires_grad=True)  # so that conv2d_backward_input runs too
    h = F.max_pool2d(bn(conv(x)).relu(), 2).gelu().flatten(1)
    F.cross_entropy(fc(h), tr.tensor([0, 2])).backward()
    opt.step()
    assert all(calls.values()), {k: v for k, v in calls.items() if not v}


# ------------------------------------------------------------------------------------- training tiers
def test_reference_tier_trains_like_cpu_via_set_backend(cpu_run, restore_backend):
    tr.set_backend("reference")
    got = _train_losses()
    assert got["module"] == "tinygrad_rad.kernels.reference"
    assert cpu_run["module"] == "tinygrad_rad.kernels.cpu"
    _check_same_training(got, cpu_run)
    assert cpu_run["losses"][-1] < cpu_run["losses"][0]  # it trains


def test_reference_tier_trains_like_cpu_via_environment(cpu_run):
    code = f"import json, sys; sys.path.insert(0, {str(TESTS)!r}); import test_backends as t; " \
           "print(json.dumps(t._train_losses()))"
    env = dict(os.environ, TGR_BACKEND="reference")
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout.strip().splitlines()[-1])
    assert got["backend"] == "reference" and got["module"] == "tinygrad_rad.kernels.reference"
    _check_same_training(got, cpu_run)


@pytest.mark.skipif(not HAS_CPU_PLAIN, reason="kernels/cpu_plain.py (tier 1) is not there yet")
def test_cpu_plain_tier_trains_like_cpu(cpu_run, restore_backend):
    tr.set_backend("cpu_plain")
    got = _train_losses()
    assert got["module"] == "tinygrad_rad.kernels.cpu_plain"
    _check_same_training(got, cpu_run)
