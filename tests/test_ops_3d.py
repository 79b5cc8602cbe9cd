"""3-D ops (issue 13): conv3d, conv_transpose3d, max/avg/adaptive pooling, batch norm, pad and
interpolate on NCDHW volumes, and their kernels in every tier.

* ``test_f_*``: each ``F`` function against PyTorch (forward + gradient of a random projection, when
  torch is installed) and float64 central differences (``tinygrad_rad.gradcheck``) via ``oracle.check_op``.
* ``test_hypothesis_*``: random shapes / stride / padding / dilation / groups on tiny volumes; the op's
  forward and gradients against the NumPy reference kernels (and PyTorch when installed).
* ``test_tier_*``: every 3-D kernel function of every tier (reference, cpu_plain, cpu, cuda_plain, cuda:
  the CUDA ones under Numba's CUDA simulator) against ``kernels/reference3d.py``, float32 and float64,
  including the fast CPU conv's slab chunks, multi-image chunks, thread split and direct (depthwise) path.
* ``test_modules_*`` and ``test_errors_*``: the layers, and PyTorch-worded argument errors.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from oracle import HAS_TORCH, check_op, serial_kernels
from test_kernel_tiers import INTERFACE_3D, TIERS, Dev, _close, _tier  # the tiers, as for the 2-D kernels
from tinygrad_rad.kernels import reference3d as R3

import tinygrad_rad as tr
from tinygrad_rad import nn
from tinygrad_rad.nn import functional as F

if HAS_TORCH:
    import torch
    import torch.nn.functional as TF


def _torch(fn):
    """The torch function to compare with (None: the same lambda, which calls ``F``/``TF`` by name)."""
    return fn if HAS_TORCH else None


def _w(rng, shape):
    return rng.standard_normal(shape)


# ------------------------------------------------------------------------------------ F vs torch
CONV_CASES = [
    # x shape, w shape, kwargs
    ((2, 2, 4, 5, 4), (3, 2, 3, 3, 3), dict(padding=1)),
    ((1, 4, 5, 6, 6), (4, 2, 2, 3, 2),
     dict(stride=(2, 1, 2), padding=(1, 0, 1), dilation=(1, 2, 1), groups=2)),
    ((1, 3, 5, 5, 5), (3, 1, 3, 3, 3), dict(padding="same", groups=3)),  # depthwise: the direct loops
    ((1, 2, 4, 4, 4), (2, 2, 2, 2, 2), dict(padding="same", dilation=(1, 1, 2))),  # asymmetric 'same'
]


@pytest.mark.parametrize("xs, ws, kw", CONV_CASES)
def test_f_conv3d(xs, ws, kw):
    rng = np.random.default_rng(1)
    x, w, b = rng.standard_normal(xs), _w(rng, ws), rng.standard_normal(ws[0])
    check_op(lambda x, w, b: F.conv3d(x, w, b, **kw),
             (lambda x, w, b: TF.conv3d(x, w, b, **kw)) if HAS_TORCH else None, [x, w, b])


def test_f_conv3d_cuda(device):
    """The op on the device (CUDA simulator on a machine without a GPU), float32 vs PyTorch."""
    rng = np.random.default_rng(2)
    x, w = rng.standard_normal((1, 2, 3, 4, 3)), _w(rng, (2, 2, 2, 2, 2))
    check_op(lambda x, w: F.conv3d(x, w, stride=(1, 2, 1), padding=1),
             (lambda x, w: TF.conv3d(x, w, stride=(1, 2, 1), padding=1)) if HAS_TORCH else None,
             [x, w], dtype="float32", device=device, gradcheck=False)


@pytest.mark.parametrize("xs, ws, kw", [
    ((1, 4, 3, 2, 3), (4, 2, 2, 2, 2), dict(stride=2)),
    ((2, 2, 3, 3, 2), (2, 3, 3, 2, 3), dict(stride=(2, 1, 2), padding=(1, 0, 1), output_padding=(1, 0, 0))),
    ((1, 4, 2, 3, 2), (4, 1, 3, 3, 3), dict(stride=2, padding=1, groups=2, dilation=(1, 2, 1))),
    ((1, 2, 2, 2, 2), (2, 2, 2, 2, 2), dict(stride=2, dilation=3, output_padding=2)),  # pads x in forward
])
def test_f_conv_transpose3d(xs, ws, kw):
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal(xs), _w(rng, ws)
    b = rng.standard_normal(ws[1] * kw.get("groups", 1))
    check_op(lambda x, w, b: F.conv_transpose3d(x, w, b, **kw),
             (lambda x, w, b: TF.conv_transpose3d(x, w, b, **kw)) if HAS_TORCH else None, [x, w, b])


@pytest.mark.parametrize("kw", [
    dict(kernel_size=2),
    dict(kernel_size=(3, 2, 3), stride=(2, 1, 2), padding=1),
    dict(kernel_size=2, stride=2, dilation=(1, 2, 1)),
    dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
])
def test_f_max_pool3d(kw):
    # distinct values: a finite-difference step never changes which element is a window's max
    x = np.random.default_rng(4).permutation(2 * 2 * 5 * 6 * 7).reshape(2, 2, 5, 6, 7) / 10.0
    check_op(lambda x: F.max_pool3d(x, **kw), _torch(lambda x: TF.max_pool3d(x, **kw)), [x])


def test_f_max_pool3d_return_indices():
    x = np.random.default_rng(5).permutation(2 * 3 * 5 * 6 * 5).reshape(2, 3, 5, 6, 5).astype(np.float64)
    kw = dict(kernel_size=(2, 3, 2), stride=(2, 2, 1), padding=(1, 1, 0), dilation=(1, 1, 2))
    out, idx = F.max_pool3d(tr.tensor(x), return_indices=True, **kw)
    assert idx.dtype == np.int64
    # every index points at the value it returned
    flat = x.reshape(2, 3, -1)
    picked = np.take_along_axis(flat, idx.numpy().reshape(2, 3, -1), 2).reshape(out.shape)
    np.testing.assert_array_equal(picked, out.numpy())
    if HAS_TORCH:
        tout, tidx = TF.max_pool3d(torch.tensor(x), return_indices=True, **kw)
        np.testing.assert_array_equal(idx.numpy(), tidx.numpy())
        np.testing.assert_array_equal(out.numpy(), tout.numpy())


def test_f_max_pool3d_device(device):
    x = np.random.default_rng(6).permutation(1 * 2 * 4 * 4 * 5).reshape(1, 2, 4, 4, 5) / 10.0
    check_op(lambda x: F.max_pool3d(x, 2, stride=(2, 1, 2), padding=1),
             _torch(lambda x: TF.max_pool3d(x, 2, stride=(2, 1, 2), padding=1)), [x], dtype="float32",
             device=device, gradcheck=False)


@pytest.mark.parametrize("kw", [
    dict(kernel_size=2),
    dict(kernel_size=(3, 2, 3), stride=(2, 1, 2), padding=1),
    dict(kernel_size=3, stride=2, padding=1, count_include_pad=False),
    dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
    dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
    dict(kernel_size=2, divisor_override=3),
])
def test_f_avg_pool3d(kw):
    check_op(lambda x: F.avg_pool3d(x, **kw), _torch(lambda x: TF.avg_pool3d(x, **kw)), [(2, 2, 5, 6, 7)])


def test_f_avg_pool3d_device(device):
    check_op(lambda x: F.avg_pool3d(x, 3, stride=2, padding=1, count_include_pad=False),
             _torch(lambda x: TF.avg_pool3d(x, 3, stride=2, padding=1, count_include_pad=False)),
             [(1, 2, 4, 5, 4)], dtype="float32", device=device, gradcheck=False)


@pytest.mark.parametrize("size", [1, 2, (3, 2, 5), (None, 4, 2), (2, 3, 3)])
def test_f_adaptive_avg_pool3d(size):
    check_op(lambda x: F.adaptive_avg_pool3d(x, size), _torch(lambda x: TF.adaptive_avg_pool3d(x, size)),
             [(2, 2, 4, 6, 5)])


@pytest.mark.parametrize("size", [1, (2, 3, 5), (3, 2, 4)])
def test_f_adaptive_max_pool3d(size):
    x = np.random.default_rng(7).permutation(2 * 2 * 4 * 6 * 5).reshape(2, 2, 4, 6, 5) / 10.0
    check_op(lambda x: F.adaptive_max_pool3d(x, size), _torch(lambda x: TF.adaptive_max_pool3d(x, size)), [x])


def test_f_unbatched_input():
    """(C, D, H, W) input is a batch of one, as in PyTorch."""
    rng = np.random.default_rng(8)
    x, w = rng.standard_normal((2, 4, 4, 4)), _w(rng, (3, 2, 3, 3, 3))
    check_op(lambda x, w: F.conv3d(x, w, padding=1), _torch(lambda x, w: TF.conv3d(x, w, padding=1)), [x, w])
    check_op(lambda x: F.avg_pool3d(x, 2), _torch(lambda x: TF.avg_pool3d(x, 2)), [x])
    assert F.max_pool3d(tr.tensor(x), 2).shape == (2, 2, 2, 2)


@pytest.mark.parametrize("training", [True, False])
def test_f_batch_norm_5d(training):
    rng = np.random.default_rng(9)
    x, w, b = rng.standard_normal((3, 2, 3, 2, 4)), rng.standard_normal(2), rng.standard_normal(2)
    rm, rv = rng.standard_normal(2), rng.random(2) + 0.5

    def ours(x, w, b):
        return F.batch_norm(x, tr.tensor(rm.copy()), tr.tensor(rv.copy()), w, b, training, 0.1, 1e-5)

    def theirs(x, w, b):
        return TF.batch_norm(x, torch.tensor(rm.copy()), torch.tensor(rv.copy()), w, b, training, 0.1, 1e-5)

    check_op(ours, theirs if HAS_TORCH else None, [x, w, b])


@pytest.mark.parametrize("mode", ["constant", "reflect", "replicate", "circular"])
def test_f_pad_5d(mode):
    pads = (1, 2, 0, 1, 2, 1)
    check_op(lambda x: F.pad(x, pads, mode=mode), _torch(lambda x: TF.pad(x, pads, mode=mode)),
             [(1, 2, 3, 3, 4)])


@pytest.mark.parametrize("kw", [dict(scale_factor=2, mode="nearest"), dict(size=(3, 5, 4), mode="trilinear"),
                                dict(scale_factor=2, mode="trilinear", align_corners=True)])
def test_f_interpolate_5d(kw):
    """F.interpolate on volumes (the NN helper's function: checked here as part of the 3-D surface)."""
    check_op(lambda x: F.interpolate(x, **kw), _torch(lambda x: TF.interpolate(x, **kw)), [(1, 2, 2, 3, 2)])


# ------------------------------------------------------------------------------------ hypothesis
@st.composite
def conv_configs(draw):
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    cin, cout = groups * draw(st.integers(1, 3)), groups * draw(st.integers(1, 2))
    n = draw(st.integers(1, 2))
    k = tuple(draw(st.integers(1, 3)) for _ in range(3))
    s = tuple(draw(st.integers(1, 2)) for _ in range(3))
    p = tuple(draw(st.integers(0, 2)) for _ in range(3))
    d = tuple(draw(st.integers(1, 2)) for _ in range(3))
    size = tuple(max(1, d[i] * (k[i] - 1) + 1 - 2 * p[i]) + draw(st.integers(0, 3)) for i in range(3))
    return (n, cin) + size, (cout, cin // groups) + k, s, p, d, groups


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conv_configs(), st.booleans())
def test_hypothesis_conv3d(cfg, transposed):
    """conv3d against the reference kernels; conv_transpose3d (the same w as its (C_in, C_out/g, k)
    weight, applied to a y-shaped input) against PyTorch."""
    xs, ws, s, p, d, g = cfg
    rng = np.random.default_rng(abs(hash(cfg)) % 2**32)
    x, w = rng.standard_normal(xs), rng.standard_normal(ws)
    if transposed:
        if not HAS_TORCH:
            return
        x = rng.standard_normal(R3.conv3d_forward(x, w, s, p, d, g).shape)
        assume(all((x.shape[2 + i] - 1) * s[i] - 2 * p[i] + d[i] * (ws[2 + i] - 1) >= 0 for i in range(3)))
    with serial_kernels():
        tx, tw = tr.tensor(x, requires_grad=True), tr.tensor(w, requires_grad=True)
        if transposed:
            out = F.conv_transpose3d(tx, tw, stride=s, padding=p, groups=g, dilation=d)
        else:
            out = F.conv3d(tx, tw, stride=s, padding=p, dilation=d, groups=g)
        r = rng.standard_normal(out.shape)
        (out * tr.tensor(r)).sum().backward()
    if not transposed:
        np.testing.assert_allclose(out.numpy(), R3.conv3d_forward(x, w, s, p, d, g), rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(tx.grad.numpy(), R3.conv3d_backward_input(r, w, xs, s, p, d, g),
                                   rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(tw.grad.numpy(), R3.conv3d_backward_weight(r, x, ws, s, p, d, g),
                                   rtol=1e-9, atol=1e-9)
        return
    qx, qw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    tout = TF.conv_transpose3d(qx, qw, stride=s, padding=p, groups=g, dilation=d)
    (tout * torch.tensor(r)).sum().backward()
    np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(tx.grad.numpy(), qx.grad.numpy(), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(tw.grad.numpy(), qw.grad.numpy(), rtol=1e-9, atol=1e-9)


@st.composite
def pool_configs(draw):
    k = tuple(draw(st.integers(1, 3)) for _ in range(3))
    s = tuple(draw(st.integers(1, 3)) for _ in range(3))
    p = tuple(draw(st.integers(0, k[i] // 2)) for i in range(3))
    d = tuple(draw(st.integers(1, 2)) for _ in range(3))
    size = tuple(d[i] * (k[i] - 1) + 1 + draw(st.integers(0, 3)) for i in range(3))
    return (draw(st.integers(1, 2)), 2) + size, k, s, p, d, draw(st.booleans()), draw(st.booleans())


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pool_configs())
def test_hypothesis_pool3d(cfg):
    xs, k, s, p, d, ceil_mode, cip = cfg
    x = np.random.default_rng(abs(hash(cfg)) % 2**32).permutation(int(np.prod(xs))).reshape(xs) / 7.0
    with serial_kernels():
        for name in ("max", "avg"):
            tx = tr.tensor(x, requires_grad=True)
            if name == "max":
                out = F.max_pool3d(tx, k, s, p, d, ceil_mode=ceil_mode)
            else:
                out = F.avg_pool3d(tx, k, s, p, ceil_mode=ceil_mode, count_include_pad=cip)
            r = np.random.default_rng(0).standard_normal(out.shape)
            (out * tr.tensor(r)).sum().backward()
            if not ceil_mode:
                if name == "max":
                    want, idx = R3.max_pool3d_forward(x, k, s, p, d)
                    gwant = R3.max_pool3d_backward(r, idx, xs, k, s, p, d)
                else:
                    want = R3.avg_pool3d_forward(x, k, s, p, cip)
                    gwant = R3.avg_pool3d_backward(r, xs, k, s, p, cip)
                np.testing.assert_allclose(out.numpy(), want, rtol=1e-12, atol=1e-12)
                np.testing.assert_allclose(tx.grad.numpy(), gwant, rtol=1e-12, atol=1e-12)
            if HAS_TORCH:
                qx = torch.tensor(x, requires_grad=True)
                if name == "max":
                    tout = TF.max_pool3d(qx, k, s, p, d, ceil_mode=ceil_mode)
                else:
                    tout = TF.avg_pool3d(qx, k, s, p, ceil_mode=ceil_mode, count_include_pad=cip)
                (tout * torch.tensor(r)).sum().backward()
                np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), rtol=1e-12, atol=1e-12)
                np.testing.assert_allclose(tx.grad.numpy(), qx.grad.numpy(), rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------------------- kernel tiers
# (x shape, w shape, stride, padding, dilation, groups): GEMM path, stride-2 col2vol path, grouped GEMMs,
# depthwise (direct loops on the fast CPU tier), a kernel larger than some axes with padding
TIER_CONVS = [
    ((2, 3, 4, 3, 5), (4, 3, 3, 3, 3), (1, 1, 1), (1, 1, 1), (1, 1, 1), 1),
    ((2, 4, 5, 4, 4), (4, 2, 2, 3, 2), (2, 1, 2), (1, 1, 0), (1, 1, 2), 2),
    ((1, 2, 3, 4, 3), (2, 1, 3, 1, 3), (1, 2, 1), (2, 0, 1), (1, 1, 1), 2),
    ((1, 4, 4, 3, 3), (6, 4, 1, 2, 2), (1, 1, 1), (0, 1, 2), (1, 2, 1), 1),
    # stride 1 with little padding next to H x W: the fast CPU tier's "wide rows" grid
    ((1, 2, 3, 14, 16), (3, 2, 3, 3, 3), (1, 1, 1), (1, 1, 1), (1, 1, 1), 1),
    ((1, 8, 5, 4, 12), (4, 4, 2, 1, 2), (1, 1, 1), (1, 0, 1), (2, 1, 2), 2),
]
TIER_POOLS = [
    ((2, 2, 4, 5, 4), (2, 2, 2), (2, 2, 2), (0, 0, 0), (1, 1, 1)),
    ((1, 3, 5, 4, 5), (3, 2, 3), (1, 2, 2), (1, 1, 1), (1, 2, 1)),
]


def _conv_case(mod, d, dtype, rng, fn, cases=TIER_CONVS):
    for xs, ws, s, p, dl, g in cases:
        x, w = rng.standard_normal(xs).astype(dtype), rng.standard_normal(ws).astype(dtype)
        y = R3.conv3d_forward(x, w, s, p, dl, g)
        gy = rng.standard_normal(y.shape).astype(dtype)
        what = f"{fn} {xs} {ws} s={s} p={p} d={dl} g={g}"
        if fn == "conv3d_forward":
            _close(d.host(mod.conv3d_forward(d(x), d(w), s, p, dl, g)), y, dtype, what)
        elif fn == "conv3d_backward_input":
            _close(d.host(mod.conv3d_backward_input(d(gy), d(w), xs, s, p, dl, g)),
                   R3.conv3d_backward_input(gy, w, xs, s, p, dl, g), dtype, what)
        else:
            _close(d.host(mod.conv3d_backward_weight(d(gy), d(x), ws, s, p, dl, g)),
                   R3.conv3d_backward_weight(gy, x, ws, s, p, dl, g), dtype, what)


def _pool_case(mod, d, dtype, rng, fn):
    for xs, k, s, p, dl in TIER_POOLS:
        x = (rng.permutation(int(np.prod(xs))).reshape(xs) / 3.0).astype(dtype)
        what = f"{fn} {xs} k={k} s={s} p={p} d={dl}"
        if fn.startswith("max"):
            y, idx = R3.max_pool3d_forward(x, k, s, p, dl)
            if fn == "max_pool3d_forward":
                gy_, gi = mod.max_pool3d_forward(d(x), k, s, p, dl)
                _close(d.host(gy_), y, dtype, what)
                np.testing.assert_array_equal(d.host(gi), idx, err_msg=what)  # distinct values: no ties
            else:
                g = rng.standard_normal(y.shape).astype(dtype)
                _close(d.host(mod.max_pool3d_backward(d(g), d(idx), xs, k, s, p, dl)),
                       R3.max_pool3d_backward(g, idx, xs, k, s, p, dl), dtype, what)
        else:
            for cip in (True, False):
                y = R3.avg_pool3d_forward(x, k, s, p, cip)
                if fn == "avg_pool3d_forward":
                    _close(d.host(mod.avg_pool3d_forward(d(x), k, s, p, cip)), y, dtype, f"{what} cip={cip}")
                else:
                    g = rng.standard_normal(y.shape).astype(dtype)
                    _close(d.host(mod.avg_pool3d_backward(d(g), xs, k, s, p, cip)),
                           R3.avg_pool3d_backward(g, xs, k, s, p, cip), dtype, f"{what} cip={cip}")


@pytest.mark.parametrize("fn", INTERFACE_3D)
@pytest.mark.parametrize("tier", TIERS)
def test_tier_3d(tier, fn):
    mod, d = _tier(tier), Dev(tier)
    for dtype in (np.float32, np.float64):
        rng = np.random.default_rng(len(fn))
        if fn.startswith("conv"):  # (the wide-rows cases are for the CPU tiers: slow under the simulator)
            _conv_case(mod, d, dtype, rng, fn, TIER_CONVS[:4] if tier.startswith("cuda") else TIER_CONVS)
        else:
            _pool_case(mod, d, dtype, rng, fn)


@pytest.mark.parametrize("fn", ["conv3d_forward", "conv3d_backward_input", "conv3d_backward_weight"])
def test_fast_cpu_conv3d_chunks_and_threads(fn, monkeypatch):
    """The fast CPU conv's slab chunks (one image's depths split), multi-image chunks and the thread split,
    forced on small shapes by shrinking its chunk size and split threshold."""
    from tinygrad_rad.kernels import cpu_conv3d

    cases = [((3, 3, 6, 4, 5), (4, 3, 3, 3, 3), (1, 1, 1), (1, 1, 1), (1, 1, 1), 1),
             ((3, 4, 7, 5, 4), (6, 2, 3, 2, 3), (2, 1, 2), (1, 0, 1), (1, 2, 1), 2),
             ((2, 2, 5, 6, 12), (4, 2, 3, 3, 3), (1, 1, 1), (1, 1, 1), (1, 1, 1), 1)]  # wide rows
    monkeypatch.setattr(cpu_conv3d, "ROWS", False)  # the vol2col path, not the row kernels
    for chunk in (1, 41000, 1 << 22):  # one depth per chunk, a few depths, whole volumes of several images
        monkeypatch.setattr(cpu_conv3d, "CHUNK_BYTES", chunk)
        monkeypatch.setattr(cpu_conv3d, "SPLIT_MIN_MACS", 0)
        q = cpu_conv3d._plan3(cases[0][0], cases[0][1], *cases[0][2:], 8)
        # (image, depth) slabs, or whole images side by side: as many equal chunks as threads (3 images)
        import numba

        n_items = {1: 3 * 6, 41000: 3 * 2, 1 << 22: min(3, numba.get_num_threads())}[chunk]
        assert len(q.items) == n_items, q.items
        _conv_case(cpu_conv3d, Dev("cpu"), np.float64, np.random.default_rng(0), fn, cases)


ROWS3_CONVS = [  # 3x3x3 stride 1, few channels: the fast CPU tier's row kernels (cpu_conv_rows.py)
    ((2, 2, 4, 5, 6), (3, 2, 3, 3, 3), (1, 1, 1), (1, 1, 1), (1, 1, 1), 1),
    ((1, 1, 3, 3, 3), (2, 1, 3, 3, 3), (1, 1, 1), (0, 1, 2), (1, 1, 1), 1),
    ((1, 3, 5, 11, 28), (2, 3, 3, 3, 3), (1, 1, 1), (1, 1, 1), (1, 1, 1), 1),  # several rows per block
]


@pytest.mark.parametrize("fn", ["conv3d_forward", "conv3d_backward_input", "conv3d_backward_weight"])
@pytest.mark.parametrize("rows", [True, False])
def test_fast_cpu_conv3d_rows_and_vol2col(fn, rows, monkeypatch):
    """Every TIER_CONVS / ROWS3_CONVS case with the row kernels on (where they apply) and off (vol2col)."""
    from tinygrad_rad.kernels import cpu_conv3d
    from tinygrad_rad.kernels.cpu_conv_rows import use_rows3

    assert all(use_rows3(ws[2:], s, dl, g, ws[1], ws[0]) for _, ws, s, _, dl, g in ROWS3_CONVS)
    monkeypatch.setattr(cpu_conv3d, "ROWS", rows)
    for dtype in (np.float32, np.float64):
        _conv_case(cpu_conv3d, Dev("cpu"), dtype, np.random.default_rng(3), fn, TIER_CONVS + ROWS3_CONVS)


CL_CONVS = [  # C >= CL_MIN_C, one group: the fast CPU tier's channels-last columns (cpu_conv3d._use_cl)
    ((2, 16, 4, 5, 3), (5, 16, 3, 3, 3), (1, 1, 1), (1, 1, 1), (1, 1, 1), 1),
    ((1, 17, 5, 6, 6), (3, 17, 2, 3, 1), (2, 1, 2), (1, 0, 1), (1, 2, 1), 1),  # strides, dilation, kd != kh
    ((2, 16, 3, 5, 7), (4, 16, 3, 2, 3), (1, 1, 1), (0, 1, 2), (1, 1, 2), 1),  # dilated columns: runs of C
    ((1, 20, 3, 3, 3), (18, 20, 3, 3, 3), (1, 1, 1), (1, 1, 1), (1, 1, 1), 1),  # the flipped fwd
    ((1, 16, 4, 4, 4), (4, 8, 3, 3, 3), (1, 1, 1), (1, 1, 1), (1, 1, 1), 2),  # groups: not channels-last
]


@pytest.mark.parametrize("fn", ["conv3d_forward", "conv3d_backward_input", "conv3d_backward_weight"])
def test_fast_cpu_conv3d_channels_last_columns(fn, monkeypatch):
    """The channels-last columns (one row per output voxel, K ordered (tap, channel)) against the reference,
    in both dtypes, on its own shapes and, with CL_MIN_C lowered, on the slab / multi-image chunks and the
    thread split of the chunk test; TGR_CONV3D_CL's switch gives the same numbers through vol2col."""
    from tinygrad_rad.kernels import cpu_conv3d

    assert cpu_conv3d.CL and all(cpu_conv3d.CL_MIN_C <= xs[1] for xs, *_ in CL_CONVS)
    monkeypatch.setattr(cpu_conv3d, "ROWS", False)  # these channel counts would take the row kernels
    calls = []
    for name in ("_forward_part_cl", "_backward_weight_part_cl"):
        real = getattr(cpu_conv3d, name)
        monkeypatch.setattr(cpu_conv3d, name, lambda *a, _f=real, _n=name: calls.append(_n) or _f(*a))
    for dtype in (np.float32, np.float64):
        _conv_case(cpu_conv3d, Dev("cpu"), dtype, np.random.default_rng(5), fn, CL_CONVS)
    assert calls, "the channels-last path was not taken"
    chunked = [((3, 3, 6, 4, 5), (4, 3, 3, 3, 3), (1, 1, 1), (1, 1, 1), (1, 1, 1), 1),
               ((2, 2, 5, 6, 12), (4, 2, 3, 3, 3), (1, 1, 1), (1, 1, 1), (1, 1, 1), 1)]
    monkeypatch.setattr(cpu_conv3d, "CL_MIN_C", 1)
    monkeypatch.setattr(cpu_conv3d, "SPLIT_MIN_MACS", 0)
    for chunk in (1, 41000, 1 << 22):
        monkeypatch.setattr(cpu_conv3d, "CHUNK_BYTES", chunk)
        _conv_case(cpu_conv3d, Dev("cpu"), np.float64, np.random.default_rng(0), fn, chunked)
    monkeypatch.setattr(cpu_conv3d, "CL", False)
    _conv_case(cpu_conv3d, Dev("cpu"), np.float64, np.random.default_rng(0), fn, CL_CONVS)


STACK_CONVS = [  # (kd, 3, 3), stride 1, kd*C and O >= 32: depth taps stacked as channels, 2-D Winograd
    ((2, 11, 3, 4, 5), (32, 11, 3, 3, 3), (1, 1, 1), (1, 1, 1), (1, 1, 1), 1),
    ((1, 16, 5, 6, 4), (33, 16, 2, 3, 3), (1, 1, 1), (0, 1, 1), (1, 1, 1), 1),  # kd = 2, no depth padding
    ((1, 12, 2, 6, 6), (32, 12, 3, 3, 3), (1, 1, 1), (2, 0, 1), (1, 1, 1), 1),  # depth padding > kd - 1 - pd
    ((1, 64, 3, 4, 4), (64, 32, 3, 3, 3), (1, 1, 1), (1, 1, 1), (1, 1, 1), 2),  # groups: the 3-D paths
]


@pytest.mark.parametrize("fn", ["conv3d_forward", "conv3d_backward_input", "conv3d_backward_weight"])
def test_fast_cpu_conv3d_stacked_depths(fn, monkeypatch):
    """kd x 3 x 3 stride-1 convs as 2-D Winograd convs of the depth-stacked slices
    (cpu_conv3d_stack.use_stack), all three passes against the reference in both dtypes; TGR_CONV3D_STACK's
    switch gives the same numbers through the 3-D paths."""
    from tinygrad_rad.kernels import cpu_conv3d, cpu_conv3d_stack

    calls = []
    for name in ("stacked_forward", "stacked_backward_input", "stacked_backward_weight"):
        real = getattr(cpu_conv3d_stack, name)
        monkeypatch.setattr(cpu_conv3d_stack, name, lambda *a, _f=real, _n=name: calls.append(_n) or _f(*a))
    for dtype in (np.float32, np.float64):
        _conv_case(cpu_conv3d, Dev("cpu"), dtype, np.random.default_rng(8), fn, STACK_CONVS)
    assert len(calls) == 2 * (len(STACK_CONVS) - 1), calls
    monkeypatch.setattr(cpu_conv3d_stack, "STACK_BYTES", 1)  # one image per chunk of stacked slices
    _conv_case(cpu_conv3d, Dev("cpu"), np.float64, np.random.default_rng(8), fn, STACK_CONVS)
    monkeypatch.setattr(cpu_conv3d_stack, "STACK", False)
    _conv_case(cpu_conv3d, Dev("cpu"), np.float64, np.random.default_rng(8), fn, STACK_CONVS)
    assert len(calls) == 3 * (len(STACK_CONVS) - 1)


def test_fast_cpu_conv3d_plan():
    """Big volumes are split into slabs of depths of one image; small ones batch whole images."""
    from tinygrad_rad.kernels import cpu_conv3d

    big = cpu_conv3d._plan3((2, 16, 28, 28, 28), (32, 16, 3, 3, 3), (1,) * 3, (1,) * 3, (1,) * 3, 1, 4)
    assert all(nb == 1 for _, nb, _, _ in big.items) and len(big.items) > 2
    assert sum(nz for b, _, _, nz in big.items if b == 0) == 28
    small = cpu_conv3d._plan3((8, 64, 4, 4, 4), (64, 64, 3, 3, 3), (1,) * 3, (1,) * 3, (1,) * 3, 1, 4)
    assert small.items[0][1] > 1 and small.items[0][3] == 4
    # the wide-rows grid for stride 1 when the padded rows add little (28^3: 15 %), not at 4^3 (56 %)
    assert big.wide and big.gplane == 30 * 30 and not small.wide
    for xs, ws, *args in [((1, 2, 3, 14, 16), (3, 2, 3, 3, 3), (1,) * 3, (1,) * 3, (1,) * 3, 1),
                          ((1, 8, 5, 4, 12), (4, 4, 2, 1, 2), (1, 1, 1), (1, 0, 1), (2, 1, 2), 2)]:
        assert cpu_conv3d._plan3(xs, ws, *args, 8).wide  # TIER_CONVS cover the wide path


@pytest.mark.parametrize("tier", ["reference", "cpu_plain", "cpu"])
def test_ops_3d_on_every_cpu_tier(tier):
    """set_backend(tier): the 3-D ops run that tier's kernels, with the same results and gradients."""
    rng = np.random.default_rng(11)
    x, w = rng.standard_normal((2, 4, 5, 4, 6)), rng.standard_normal((4, 2, 3, 2, 3))

    def run():
        tx, tw = tr.tensor(x, requires_grad=True), tr.tensor(w, requires_grad=True)
        y = F.conv3d(tx, tw, stride=(1, 2, 1), padding=1, groups=2)
        y = F.max_pool3d(y, 2, stride=1) + F.avg_pool3d(y, 3, stride=1, padding=1)[:, :, :4, :2, :5]
        z = F.conv_transpose3d(y, tr.tensor(w[:, :2].copy()), stride=2)
        z.sum().backward()
        return z.numpy(), tx.grad.numpy(), tw.grad.numpy()

    try:
        tr.set_backend("reference")
        want = run()
        tr.set_backend(tier)
        assert tr.get_backend() == tier
        got = run()
    finally:
        tr.set_backend(None)
    for g, e in zip(got, want):
        np.testing.assert_allclose(g, e, rtol=1e-9, atol=1e-9)


# ------------------------------------------------------------------------------------ modules
def test_modules_3d_against_torch():
    """nn layers: parameter shapes and names, and a small 3D CNN's output and gradients vs PyTorch."""
    tr.manual_seed(0)
    net = nn.Sequential(nn.Conv3d(2, 4, 3, padding=1), nn.BatchNorm3d(4), nn.ReLU(), nn.MaxPool3d(2),
                        nn.Conv3d(4, 4, (1, 3, 3), stride=(1, 2, 1), padding="valid", bias=False),
                        nn.AvgPool3d(2, ceil_mode=True), nn.ConvTranspose3d(4, 2, 2, stride=2),
                        nn.AdaptiveAvgPool3d((1, 2, 1)), nn.AdaptiveMaxPool3d(1))
    net = net.double() if hasattr(net, "double") else net
    x = np.random.default_rng(0).standard_normal((2, 2, 8, 12, 8))
    assert net[0].weight.shape == (4, 2, 3, 3, 3) and net[6].weight.shape == (4, 2, 2, 2, 2)
    keys = set(net.state_dict())
    assert {"1.running_mean", "1.running_var", "1.num_batches_tracked", "4.weight"} <= keys
    if not HAS_TORCH:
        return
    tnet = torch.nn.Sequential(torch.nn.Conv3d(2, 4, 3, padding=1), torch.nn.BatchNorm3d(4), torch.nn.ReLU(),
                               torch.nn.MaxPool3d(2), torch.nn.Conv3d(4, 4, (1, 3, 3), (1, 2, 1), bias=False),
                               torch.nn.AvgPool3d(2, ceil_mode=True), torch.nn.ConvTranspose3d(4, 2, 2, 2),
                               torch.nn.AdaptiveAvgPool3d((1, 2, 1)), torch.nn.AdaptiveMaxPool3d(1)).double()
    assert keys == set(tnet.state_dict())
    with torch.no_grad():
        for k, v in tnet.state_dict().items():
            v.copy_(torch.tensor(net.state_dict()[k].numpy()))
    with serial_kernels():
        tx = tr.tensor(x, requires_grad=True)
        out = net(tx)
        out.sum().backward()
    qx = torch.tensor(x, requires_grad=True)
    tout = tnet(qx)
    tout.sum().backward()
    np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(tx.grad.numpy(), qx.grad.numpy(), rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(net[0].weight.grad.numpy(), tnet[0].weight.grad.numpy(), rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(net[1].running_var.numpy(), tnet[1].running_var.numpy(), rtol=1e-7)


def test_modules_3d_init_and_output_size():
    conv = nn.Conv3d(4, 8, 3, groups=2)
    bound = 1 / np.sqrt(2 * 27)  # kaiming_uniform(a=sqrt(5)) gives U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    assert np.abs(conv.weight.numpy()).max() <= bound + 1e-7 and conv.weight.shape == (8, 2, 3, 3, 3)
    up = nn.ConvTranspose3d(3, 2, 3, stride=2, padding=1)
    y = up(tr.randn(1, 3, 4, 4, 4), output_size=(8, 7, 8))
    assert y.shape == (1, 2, 8, 7, 8)
    with pytest.raises(ValueError, match="requested an output size"):
        up(tr.randn(1, 3, 4, 4, 4), output_size=(10, 7, 7))
    bn = nn.BatchNorm3d(3)
    with pytest.raises(ValueError, match="expected a 5-D input"):
        bn(tr.randn(2, 3, 4, 4))
    assert "kernel_size=(3, 3, 3)" in repr(conv)
    assert nn.Upsample(scale_factor=2, mode="trilinear")(tr.randn(1, 1, 2, 2, 2)).shape == (1, 1, 4, 4, 4)


# ------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize("call, match", [
    (lambda: F.conv3d(tr.randn(2, 3, 4, 4), tr.randn(2, 3, 3, 3)), "expected a 5-D weight"),
    (lambda: F.conv3d(tr.randn(3, 4, 4), tr.randn(2, 3, 3, 3, 3)), r"Expected 4D \(unbatched\) or 5D"),
    (lambda: F.conv3d(tr.randn(1, 2, 4, 4, 4), tr.randn(2, 3, 3, 3, 3)),
     r"weight of size \[2, 3, 3, 3, 3\], expected input\[1, 2, 4, 4, 4\] to have 3 channels"),
    (lambda: F.conv3d(tr.randn(1, 3, 2, 4, 4), tr.randn(2, 3, 3, 3, 3)), "Kernel size can't be greater"),
    (lambda: F.conv3d(tr.randn(1, 3, 4, 4, 4), tr.randn(2, 3, 3, 3, 3), stride=0), "non-positive stride"),
    (lambda: F.conv3d(tr.randn(1, 3, 4, 4, 4), tr.randn(2, 3, 3, 3, 3), padding=(1, 1)),
     "a tuple of three ints"),
    (lambda: F.conv3d(tr.randn(1, 3, 4, 4, 4), tr.randn(2, 3, 3, 3, 3), stride=2, padding="same"),
     "not supported for strided"),
    (lambda: F.conv3d(tr.randn(1, 3, 4, 4, 4), tr.randn(2, 3, 3, 3, 3), dilation=0), "dilation should be"),
    (lambda: F.conv_transpose3d(tr.randn(1, 3, 2, 2, 2), tr.randn(3, 2, 2, 2, 2), stride=2, output_padding=2),
     "output padding must be smaller"),
    (lambda: F.max_pool3d(tr.randn(1, 1, 4, 4, 4), 3, padding=2), "pad should be at most half"),
    (lambda: F.max_pool3d(tr.randn(1, 1, 4, 4, 4), 2, stride=0), "stride should be greater than zero"),
    (lambda: F.avg_pool3d(tr.randn(1, 1, 2, 4, 4), 3), "Output size is too small"),
    (lambda: F.avg_pool3d(tr.randn(1, 1, 4, 4, 4), 2, divisor_override=0), "divisor must be not zero"),
    (lambda: F.avg_pool3d(tr.randn(1, 1, 3, 1, 1), 2, ceil_mode=True), "smaller than kernel size"),
    (lambda: F.adaptive_avg_pool3d(tr.randn(1, 1, 4, 4, 4), (2, 2)), "output_size must be 3"),
    (lambda: F.max_pool3d(tr.randn(1, 4, 4), 2), r"Expected 4D \(unbatched\) or 5D"),
    (lambda: nn.Conv3d(3, 4, 3, groups=2), "in_channels must be divisible by groups"),
])
def test_errors_3d(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_errors_3d_dtype():
    with pytest.raises(TypeError, match="floating-point"):
        F.conv3d(tr.tensor(np.ones((1, 1, 3, 3, 3), np.int64)), tr.randn(1, 1, 1, 1, 1))


# The simulator runs kernels as Python and never checks that Numba can type them for a GPU; compiling the
# 3-D kernels to PTX (NVVM only: no driver, no GPU) does, in a process without the simulator.
PTX_CHECK_3D = r"""
import sys, types
import numba
from numba import boolean, cuda, int32, int64
from numba.cuda.cudadrv import nvvm
if not nvvm.is_available():
    print("SKIP: no libNVVM"); sys.exit(0)
from numba.cuda import dispatcher
from tinygrad_rad.kernels import cuda_conv3d as C, cuda_plain3d as P, cuda_ptx
cuda_ptx._patch_numba_without_nvrtc()
dispatcher.get_current_device = lambda: types.SimpleNamespace(compute_capability=(8, 0))
for dtype in ("float32", "float64"):
    T = getattr(numba, dtype)
    a2, a5, i5 = T[:, ::1], T[:, :, :, :, ::1], int32[:, :, :, :, ::1]
    n = lambda k: (int64,) * k
    sigs = {  # argument types as cuda_plain3d / cuda_conv3d launch them
        (P, "_conv_fwd_kernel"): (a5, a5, *n(10), a5), (P, "_conv_bwd_input_kernel"): (a5, a5, *n(10), a5),
        (P, "_conv_bwd_weight_kernel"): (a5, a5, *n(10), a5),
        (P, "_max_pool_fwd_kernel"): (a5, *n(12), a5, i5), (P, "_max_pool_bwd_kernel"): (a5, i5, *n(12), a5),
        (P, "_avg_pool_fwd_kernel"): (a5, *n(9), boolean, a5),
        (P, "_avg_pool_bwd_kernel"): (a5, *n(9), boolean, a5),
        (C, "vol2col_kernel"): (a5, a2, *n(15), T), (C, "col2vol_kernel"): (a2, a5, *n(15), T),
    }
    for mod in (P, C):
        kernels = {k for k, v in vars(mod).items() if k.endswith("_kernel") and hasattr(v, "py_func")}
        assert kernels == {k for m, k in sigs if m is mod}, kernels
    for (mod, name), sig in sigs.items():
        cuda.compile_ptx(getattr(mod, name).py_func, sig, cc=(8, 0))
print("OK")
"""


def test_cuda_3d_kernels_compile_for_the_gpu():
    pytest.importorskip("numba.cuda")
    import subprocess
    import sys
    from pathlib import Path

    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "0"}
    p = subprocess.run([sys.executable, "-c", PTX_CHECK_3D], cwd=Path(__file__).resolve().parents[1], env=env,
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    if p.stdout.startswith("SKIP"):
        pytest.skip(p.stdout.strip())
    assert p.stdout.strip().endswith("OK")


@pytest.mark.parametrize("cin,stride", [(1, 1), (2, 2), (16, 1)])  # row kernels, vol2col, vol2col wide
def test_conv3d_on_an_empty_batch(cin, stride):
    """As in PyTorch: an empty output of the right shape, zero weight gradient, empty input gradient (the
    fast CPU tier's chunk plan used to divide by zero)."""
    w = tr.ones(4, cin, 3, 3, 3, requires_grad=True)
    x = tr.zeros(0, cin, 5, 5, 5, requires_grad=True)
    y = F.conv3d(x, w, padding=1, stride=stride)
    y.sum().backward()
    out = 5 if stride == 1 else 3
    assert y.shape == (0, 4, out, out, out) and x.grad.shape == x.shape
    assert w.grad.shape == w.shape and not w.grad.numpy().any()
