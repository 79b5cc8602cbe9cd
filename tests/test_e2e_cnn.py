"""End to end: a 2-conv-layer CNN written with nn.functional only learns a toy localisation task.

Task: a 16x16 noisy image holds one bright 4x4 square in one of the four quadrants; the class is the
quadrant. Parameters are plain Tensors, updated by SGD on ``.data`` - no Module, no optimizer - so
the test exercises only the engine: conv, relu, pooling, linear, cross-entropy and backward.
"""

from __future__ import annotations

import time

import numpy as np
from oracle import serial_kernels

import tinygrad_rad as tr
import tinygrad_rad.nn.functional as F


def make_batch(rng, n):
    x = rng.normal(0.0, 0.3, size=(n, 1, 16, 16)).astype(np.float32)
    y = rng.integers(0, 4, size=n)
    for i, c in enumerate(y):
        r0 = (c // 2) * 8 + rng.integers(0, 5)
        c0 = (c % 2) * 8 + rng.integers(0, 5)
        x[i, 0, r0 : r0 + 4, c0 : c0 + 4] += 1.5
    return tr.tensor(x), tr.tensor(y)


def init(rng, *shape):
    fan_in = int(np.prod(shape[1:]))
    w = rng.normal(0.0, np.sqrt(2.0 / fan_in), size=shape).astype(np.float32)
    return tr.tensor(w, requires_grad=True)


def test_two_layer_cnn_learns_quadrants():
    rng = np.random.default_rng(0)
    params = {
        "w1": init(rng, 4, 1, 3, 3), "b1": tr.zeros(4, requires_grad=True),
        "w2": init(rng, 8, 4, 3, 3), "b2": tr.zeros(8, requires_grad=True),
        "w3": init(rng, 4, 8 * 4 * 4), "b3": tr.zeros(4, requires_grad=True),
    }

    def model(x):
        h = F.max_pool2d(F.relu(F.conv2d(x, params["w1"], params["b1"], padding=1)), 2)  # (N, 4, 8, 8)
        h = F.max_pool2d(F.relu(F.conv2d(h, params["w2"], params["b2"], padding=1)), 2)  # (N, 8, 4, 4)
        return F.linear(h.flatten(1), params["w3"], params["b3"])

    x_val, y_val = make_batch(np.random.default_rng(123), 64)
    with tr.no_grad():
        initial = F.cross_entropy(model(x_val), y_val).item()

    t0 = time.perf_counter()
    lr = 0.05
    # NOTE: one Numba thread: on a loaded CI box waking threads for 16x16 images costs more than the work
    with serial_kernels():
        for _step in range(60):
            x, y = make_batch(rng, 16)
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            for p in params.values():
                p.data -= lr * p.grad.data  # plain SGD on the raw arrays
                p.grad = None
    elapsed = time.perf_counter() - t0

    with tr.no_grad():
        logits = model(x_val)
        final = F.cross_entropy(logits, y_val).item()
        acc = (logits.argmax(1).numpy() == y_val.numpy()).mean()
    assert np.isfinite(final)
    assert final < 0.3 * initial, (initial, final)
    assert acc > 0.9, acc
    assert all(p.dtype == np.float32 for p in params.values())
    print(f"loss {initial:.3f} -> {final:.3f}, accuracy {acc:.2f}, {elapsed:.1f} s")
