"""Importing tinygrad_rad and running ops changes nothing in the host process (issue 11 item 4);
``tinygrad_rad.kernels.configure_cpu`` is the one explicit call that does.

Each check runs in a fresh Python process (Numba's threading layer is fixed by the first parallel kernel
of a process, and malloc settings cannot be undone). ``mallopt`` is intercepted at the ctypes level, so
"no mallopt ran" is observed, not just inferred from a flag.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# runs first in every child: record every ctypes lookup of `mallopt` (tune_malloc is the only caller)
SPY = """
import ctypes, json
MALLOPT = []
_getattr = ctypes.CDLL.__getattr__
def _spy(self, name):
    if name == "mallopt":
        MALLOPT.append(name)
    return _getattr(self, name)
ctypes.CDLL.__getattr__ = _spy
import numba
LAYER_BEFORE = numba.config.THREADING_LAYER
THREADS_BEFORE = numba.config.NUMBA_NUM_THREADS  # (numba.get_num_threads() would start the thread pool)
"""

# the command, plus ops that do launch parallel kernels (ReLU, pooling, batch norm)
OPS = """
import tinygrad_rad as tr, tinygrad_rad.nn.functional as F
y = F.conv2d(tr.randn(2, 3, 8, 8), tr.randn(4, 3, 3, 3))
y = F.max_pool2d(F.relu(y), 2)
F.batch_norm(tr.randn(4, 3, 5, 5), None, None, training=True)
"""

REPORT = """
from tinygrad_rad.kernels import threads
try:
    active = numba.threading_layer()
except ValueError:
    active = None
print(json.dumps({"layer_before": LAYER_BEFORE, "layer": numba.config.THREADING_LAYER, "active": active,
                  "threads_before": THREADS_BEFORE, "threads": numba.get_num_threads(),
                  "mallopt_calls": len(MALLOPT), "malloc_tuned": threads.malloc_tuned(),
                  "lock_needed": threads._needs_lock()}))
"""


def _run(*parts: str) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("NUMBA_THREADING_LAYER", "TGR_TUNE_MALLOC", "NUMBA_NUM_THREADS")}
    code = SPY + "".join(textwrap.dedent(part) for part in parts) + REPORT
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


def test_import_and_ops_leave_the_process_alone():
    r = _run(OPS)
    assert r["layer"] == r["layer_before"] == "default"  # Numba's own default, untouched
    assert r["mallopt_calls"] == 0 and r["malloc_tuned"] is False
    assert r["threads"] == r["threads_before"]
    assert r["active"] is not None  # the ops did launch parallel kernels, on the layer Numba chose
    # the launch lock is taken only on the workqueue layer
    assert r["lock_needed"] is (r["active"] == "workqueue")


def test_configure_cpu_sets_layer_malloc_and_threads():
    r = _run("""
        from tinygrad_rad.kernels import configure_cpu
        CONF = configure_cpu(num_threads=1)
        assert CONF["threading_layer"] == "workqueue", CONF
        assert CONF["num_threads"] == 1, CONF
        import sys
        assert CONF["malloc_tuned"] is sys.platform.startswith("linux"), CONF
    """, OPS)
    assert r["layer"] == "workqueue" and r["active"] == "workqueue"
    assert r["threads"] == 1
    if sys.platform.startswith("linux"):
        assert r["mallopt_calls"] >= 1 and r["malloc_tuned"] is True
    assert r["lock_needed"] is True


def test_workqueue_kernels_from_two_threads_and_late_configure_warns():
    """Under workqueue, two Python threads running kernels at once take turns instead of aborting the
    process; a configure_cpu call after the first kernel cannot change the layer and says so."""
    r = _run("""
        import threading, warnings
        import numpy as np
        from tinygrad_rad.kernels import configure_cpu, cpu
        configure_cpu(tune_malloc=False)
        x = np.random.default_rng(0).standard_normal((4, 8, 16, 16))
        errors = []
        def work():
            try:
                for _ in range(30):
                    cpu.relu_forward(x)
                    cpu.max_pool2d_forward(x, (2, 2), (2, 2), (0, 0))
            except Exception as e:
                errors.append(e)
        ts = [threading.Thread(target=work) for _ in range(2)]
        [t.start() for t in ts]
        [t.join() for t in ts]
        assert not errors, errors
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            again = configure_cpu(threading_layer="omp", tune_malloc=False, num_threads=1)
        assert again["threading_layer"] is None and any("already" in str(m.message) for m in w), again
    """)
    assert r["active"] == "workqueue" and r["mallopt_calls"] == 0 and r["threads"] == 1
