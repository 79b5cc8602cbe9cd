"""Shared test setup.

* The CUDA device is tested everywhere: without a real GPU we switch on Numba's CUDA simulator
  (``NUMBA_ENABLE_CUDASIM=1``) before anything imports ``numba.cuda``, so the project's Numba CUDA
  kernels run on NumPy arrays. On a GPU machine set ``TGR_REAL_GPU=1`` to test the real device.
* ``device`` fixture: every test that takes it runs on "cpu" and on "cuda" (skipped where unavailable).
"""

from __future__ import annotations

import os
from pathlib import Path

if os.environ.get("TGR_REAL_GPU", "0") in ("", "0"):
    os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import tinygrad_rad  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("TINYGRAD_RAD_DATA", ROOT.parent / "shared" / "data"))


def cuda_available() -> bool:
    try:
        return tinygrad_rad.cuda.is_available()
    except Exception:
        return False


@pytest.fixture(params=["cpu", "cuda"])
def device(request):
    if request.param == "cuda" and not cuda_available():
        pytest.skip("no CUDA device and no CUDA simulator (numba-cuda missing)")
    return request.param


@pytest.fixture
def data_dir() -> Path:
    """The real radiology data folder (``../shared/data`` or ``TINYGRAD_RAD_DATA``); skips when absent."""
    if not DATA_DIR.is_dir():
        pytest.skip(f"real data folder {DATA_DIR} is absent")
    return DATA_DIR


@pytest.fixture(autouse=True)
def _seed():
    tinygrad_rad.manual_seed(0)
    np.random.seed(0)
    yield
