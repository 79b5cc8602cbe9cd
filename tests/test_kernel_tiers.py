"""Every backend function of every kernel tier against the NumPy reference (issue 11 item 2).

One test id per (tier, function): ``test_tier[cuda_plain-conv2d_backward_weight]``. Tiers
(kernels/README.md): reference, cpu_plain, cpu always; cuda_plain and cuda on a GPU or under Numba's CUDA
simulator (tests/conftest.py switches it on), on tiny shapes. Each case runs float32 and float64, checks
forward outputs and backward results, and compares max-pool argmax arrays by the values they select
(ties may pick different positions). ``test_interface`` checks that each tier exports exactly the
interface (2-D and 3-D) with the reference's signatures; ``test_cuda_plain_kernels_compile_for_the_gpu``
compiles the plain CUDA kernels to PTX (what the simulator cannot check).
"""

from __future__ import annotations

import importlib
import inspect
import os
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from tinygrad_rad.kernels import reference as R
from tinygrad_rad.kernels import reference3d as R3

TIERS = ["reference", "cpu_plain", "cpu", "cuda_plain", "cuda"]
INTERFACE = [
    "matmul", "erf", "relu_forward", "relu_backward",
    "conv2d_forward", "conv2d_backward_input", "conv2d_backward_weight",
    "max_pool2d_forward", "max_pool2d_backward", "avg_pool2d_forward", "avg_pool2d_backward",
    "batch_norm_forward_train", "batch_norm_backward", "batch_norm_relu_forward_train",
    "batch_norm_relu_backward", "channel_affine_forward", "channel_affine_backward", "conv2d_affine_forward",
    "softmax_cross_entropy_forward", "softmax_cross_entropy_backward", "adam_step",
]
# the 3-D functions (reference in kernels/reference3d.py); their cases are tests/test_ops_3d.py's test_tier_3d
INTERFACE_3D = [
    "conv3d_forward", "conv3d_backward_input", "conv3d_backward_weight",
    "max_pool3d_forward", "max_pool3d_backward", "avg_pool3d_forward", "avg_pool3d_backward",
]
DTYPES = [np.float32, np.float64]
TOL = {np.float32: dict(rtol=3e-4, atol=3e-4), np.float64: dict(rtol=1e-9, atol=1e-9)}


def _simulator() -> bool:
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "0") == "1"


def _tier(name):
    if name.startswith("cuda"):
        try:
            import tinygrad_rad

            ok = tinygrad_rad.cuda.is_available()
        except Exception:
            ok = False
        if not ok:
            pytest.skip("no CUDA device and no CUDA simulator (numba-cuda missing)")
    return importlib.import_module(f"tinygrad_rad.kernels.{name}")


class Dev:
    """Moves test arrays to the tier's arrays (CuPy for CUDA tiers on a real GPU) and back."""

    def __init__(self, tier: str):
        self.cupy = None
        if tier.startswith("cuda") and not _simulator():
            import cupy

            self.cupy = cupy

    def __call__(self, a):
        return a if self.cupy is None or a is None else self.cupy.asarray(a)

    def host(self, a):
        return a if self.cupy is None else self.cupy.asnumpy(a)


def _close(got, want, dtype, what):
    got = np.asarray(got)
    assert got.shape == np.shape(want), f"{what}: shape {got.shape} != {np.shape(want)}"
    assert got.dtype == np.asarray(want).dtype, f"{what}: dtype {got.dtype} != {np.asarray(want).dtype}"
    np.testing.assert_allclose(got, want, err_msg=what, **TOL[dtype])


def _rand(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


# --------------------------------------------------------------------------------------- cases
# Each case(mod, d, dtype, rng) calls one function of tier ``mod`` (arrays through ``d``) and compares.
def case_matmul(mod, d, dtype, rng):
    for sa, sb in [((3, 4), (4, 5)), ((2, 3, 4), (4, 2)), ((2, 1, 3, 4), (3, 4, 2)), ((4,), (4, 3))]:
        a, b = _rand(rng, sa, dtype), _rand(rng, sb, dtype)
        _close(d.host(mod.matmul(d(a), d(b))), R.matmul(a, b), dtype, f"matmul {sa} @ {sb}")


def case_erf(mod, d, dtype, rng):
    x = _rand(rng, (3, 7), dtype) * 2
    _close(d.host(mod.erf(d(x))), R.erf(x), dtype, "erf")


def _relu_input(rng, dtype):
    x = _rand(rng, (2, 3, 4, 5), dtype)
    x[0, 0, 0, :4] = [0.0, -0.0, np.inf, -np.inf]
    x[0, 0, 1, 0] = np.nan
    return x


def case_relu_forward(mod, d, dtype, rng):
    x = _relu_input(rng, dtype)
    np.testing.assert_array_equal(d.host(mod.relu_forward(d(x))), R.relu_forward(x))


def case_relu_backward(mod, d, dtype, rng):
    x = _relu_input(rng, dtype)
    out, g = R.relu_forward(x), _rand(rng, x.shape, dtype)
    np.testing.assert_array_equal(d.host(mod.relu_backward(d(g), d(out))), R.relu_backward(g, out))


# (N, C, H, W, O, k, stride, padding, dilation, groups): plain, strided + grouped, dilated, depthwise with
# multiplier 2, rectangular everything, 1x1 stride 2
CONV_CASES = [
    (2, 4, 6, 7, 6, 3, 1, 1, 1, 1),
    (2, 6, 7, 6, 6, 3, 2, 1, 1, 2),
    (1, 4, 8, 8, 4, 3, 1, 2, 2, 1),
    (2, 4, 6, 5, 8, 3, 1, 1, 1, 4),
    (1, 3, 7, 5, 4, (2, 3), (1, 2), (0, 1), (2, 1), 1),
    (2, 4, 5, 6, 3, 1, 2, 0, 1, 1),
]


def _pair(v):
    return tuple(v) if isinstance(v, tuple) else (v, v)


def _conv_inputs(rng, dtype):
    for n, c, h, w_, o, k, s, p, dl, g in CONV_CASES:
        k, s, p, dl = _pair(k), _pair(s), _pair(p), _pair(dl)
        x, w = _rand(rng, (n, c, h, w_), dtype), _rand(rng, (o, c // g) + k, dtype)
        yield x, w, (s, p, dl, g), f"conv {x.shape} {w.shape} s{s} p{p} d{dl} g{g}"


def case_conv2d_forward(mod, d, dtype, rng):
    for x, w, args, what in _conv_inputs(rng, dtype):
        _close(d.host(mod.conv2d_forward(d(x), d(w), *args)), R.conv2d_forward(x, w, *args), dtype, what)


def case_conv2d_affine_forward(mod, d, dtype, rng):
    for i, (x, w, args, what) in enumerate(_conv_inputs(rng, dtype)):
        shape = R.conv2d_forward(x, w, *args).shape
        scale, shift = _rand(rng, shape[1:2], dtype), _rand(rng, shape[1:2], dtype)
        res = _rand(rng, shape, dtype) if i % 2 else None
        dres = None if res is None else d(res)
        got = mod.conv2d_affine_forward(d(x), d(w), *args, d(scale), d(shift), dres, i % 3 != 1)
        _close(d.host(got), R.conv2d_affine_forward(x, w, *args, scale, shift, res, i % 3 != 1), dtype,
               f"{what} residual={res is not None} relu={i % 3 != 1}")


def case_conv2d_backward_input(mod, d, dtype, rng):
    for x, w, args, what in _conv_inputs(rng, dtype):
        gy = _rand(rng, R.conv2d_forward(x, w, *args).shape, dtype)
        _close(d.host(mod.conv2d_backward_input(d(gy), d(w), x.shape, *args)),
               R.conv2d_backward_input(gy, w, x.shape, *args), dtype, what)


def case_conv2d_backward_weight(mod, d, dtype, rng):
    for x, w, args, what in _conv_inputs(rng, dtype):
        gy = _rand(rng, R.conv2d_forward(x, w, *args).shape, dtype)
        _close(d.host(mod.conv2d_backward_weight(d(gy), d(x), w.shape, *args)),
               R.conv2d_backward_weight(gy, x, w.shape, *args), dtype, what)


# (kernel, stride, padding, dilation)
MAX_CASES = [((2, 2), (2, 2), (0, 0), (1, 1)), ((3, 3), (2, 2), (1, 1), (1, 1)),
             ((3, 2), (1, 2), (1, 0), (2, 1)), ((2, 2), (1, 1), (0, 0), (1, 1))]


def _pool_input(rng, dtype):
    x = _rand(rng, (2, 3, 7, 8), dtype)
    x[0, 0, 0, :2] = 2.0  # a tie: the first maximum wins
    x[1, 2, 2:4, 2:4] = 3.0  # a four-way tie
    x[0, 1, 3, 3] = np.nan  # NaN wins its windows
    return x


def _selected(x, idx, kernel, stride, padding, dilation):
    """The input values that the argmax ``idx`` points at (-inf for the padding)."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    ho, wo = idx.shape[2:]
    xpad = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=-np.inf)
    win = R._windows(xpad, kh, kw, sh, sw, dh, dw, ho, wo).reshape(x.shape[0], x.shape[1], kh * kw, ho, wo)
    return np.take_along_axis(win, idx[:, :, None].astype(np.int64), axis=2)[:, :, 0]


def case_max_pool2d_forward(mod, d, dtype, rng):
    x = _pool_input(rng, dtype)
    for args in MAX_CASES:
        y, idx = mod.max_pool2d_forward(d(x), *args)
        y, idx = d.host(y), d.host(idx)
        ry, ridx = R.max_pool2d_forward(x, *args)
        np.testing.assert_array_equal(y, ry, err_msg=f"max_pool {args}")
        assert idx.shape == ridx.shape and idx.dtype.kind == "i", f"max_pool idx {args}"
        np.testing.assert_array_equal(_selected(x, idx, *args), _selected(x, ridx, *args),
                                      err_msg=f"max_pool idx {args}")


def case_max_pool2d_backward(mod, d, dtype, rng):
    x = _pool_input(rng, dtype)
    for args in MAX_CASES:
        ry, ridx = R.max_pool2d_forward(x, *args)
        gy = _rand(rng, ry.shape, dtype)
        _close(d.host(mod.max_pool2d_backward(d(gy), d(ridx), x.shape, *args)),
               R.max_pool2d_backward(gy, ridx, x.shape, *args), dtype, f"max_pool backward {args}")


AVG_CASES = [((2, 2), (2, 2), (0, 0), True), ((3, 3), (2, 2), (1, 1), True), ((3, 3), (2, 2), (1, 1), False),
             ((3, 2), (1, 2), (1, 1), False)]


def case_avg_pool2d_forward(mod, d, dtype, rng):
    x = _rand(rng, (2, 3, 7, 8), dtype)
    for args in AVG_CASES:
        _close(d.host(mod.avg_pool2d_forward(d(x), *args)), R.avg_pool2d_forward(x, *args), dtype,
               f"avg_pool {args}")


def case_avg_pool2d_backward(mod, d, dtype, rng):
    x = _rand(rng, (2, 3, 7, 8), dtype)
    for args in AVG_CASES:
        gy = _rand(rng, R.avg_pool2d_forward(x, *args).shape, dtype)
        _close(d.host(mod.avg_pool2d_backward(d(gy), x.shape, *args)),
               R.avg_pool2d_backward(gy, x.shape, *args), dtype, f"avg_pool backward {args}")


BN_SHAPES = [(4, 3, 5), (3, 2, 3, 4), (6, 4)]


def _bn_inputs(rng, dtype):
    for shape in BN_SHAPES:
        c = shape[1]
        x = _rand(rng, shape, dtype) * 2 + 5  # a mean far from 0
        for affine in (True, False):
            w = _rand(rng, (c,), dtype) if affine else None
            b = _rand(rng, (c,), dtype) if affine else None
            yield x, w, b, f"batch_norm {shape} affine={affine}"


def case_batch_norm_forward_train(mod, d, dtype, rng):
    for x, w, b, what in _bn_inputs(rng, dtype):
        got = [d.host(a) for a in mod.batch_norm_forward_train(d(x), d(w), d(b), 1e-5)]
        for g, r, name in zip(got, R.batch_norm_forward_train(x, w, b, 1e-5), ("y", "mean", "invstd")):
            _close(g, r, dtype, f"{what} {name}")


def case_batch_norm_backward(mod, d, dtype, rng):
    for x, w, b, what in _bn_inputs(rng, dtype):
        _, mean, invstd = R.batch_norm_forward_train(x, w, b, 1e-5)
        gy = _rand(rng, x.shape, dtype)
        got = [d.host(a) for a in mod.batch_norm_backward(d(gy), d(x), d(w), d(mean), d(invstd))]
        for g, r, name in zip(got, R.batch_norm_backward(gy, x, w, mean, invstd), ("gx", "gw", "gb")):
            _close(g, r, dtype, f"{what} {name}")


def _bn_relu_inputs(mod, rng, dtype):
    """The batch-norm inputs; on the CUDA tiers (whose batch_norm_relu is their own batch norm, ReLU and
    channel-affine kernels in a row, each tested above) the first shape only: the simulator is slow."""
    inputs = list(_bn_inputs(rng, dtype))
    return inputs[:2] if mod.__name__.rsplit(".", 1)[-1].startswith("cuda") else inputs


def case_batch_norm_relu_forward_train(mod, d, dtype, rng):
    for x, w, b, what in _bn_relu_inputs(mod, rng, dtype):
        got = [d.host(a) for a in mod.batch_norm_relu_forward_train(d(x), d(w), d(b), 1e-5)]
        ref = R.batch_norm_relu_forward_train(x, w, b, 1e-5)
        assert (ref[0] == 0).any() and (ref[0] > 0).any(), what  # the ReLU cuts somewhere
        for g, r, name in zip(got, ref, ("y", "mean", "invstd")):
            _close(g, r, dtype, f"{what} {name}")


def case_batch_norm_relu_backward(mod, d, dtype, rng):
    for x, w, b, what in _bn_relu_inputs(mod, rng, dtype):
        _, mean, invstd = R.batch_norm_forward_train(x, w, b, 1e-5)
        gy = _rand(rng, x.shape, dtype)
        got = [d.host(a) for a in mod.batch_norm_relu_backward(d(gy), d(x), d(w), d(b), d(mean), d(invstd))]
        for g, r, name in zip(got, R.batch_norm_relu_backward(gy, x, w, b, mean, invstd), ("gx", "gw", "gb")):
            _close(g, r, dtype, f"{what} {name}")


def case_channel_affine_forward(mod, d, dtype, rng):
    for shape in BN_SHAPES:
        x, s, t = _rand(rng, shape, dtype), _rand(rng, shape[1:2], dtype), _rand(rng, shape[1:2], dtype)
        _close(d.host(mod.channel_affine_forward(d(x), d(s), d(t))), R.channel_affine_forward(x, s, t), dtype,
               f"channel_affine {shape}")


def case_channel_affine_backward(mod, d, dtype, rng):
    for shape in BN_SHAPES:
        x, g, s = _rand(rng, shape, dtype), _rand(rng, shape, dtype), _rand(rng, shape[1:2], dtype)
        got = [d.host(a) for a in mod.channel_affine_backward(d(g), d(x), d(s))]
        for a, r, name in zip(got, R.channel_affine_backward(g, x, s), ("gx", "gscale", "gshift")):
            _close(a, r, dtype, f"channel_affine backward {shape} {name}")


def _ce_inputs(rng, dtype):
    for m, c in [(5, 7), (1, 3), (8, 2)]:
        x = _rand(rng, (m, c), dtype) * 3
        t = rng.random((m, c)).astype(dtype)  # dense targets with weights folded in: rows need not sum to 1
        yield x, t, 1.0 / m, f"softmax_ce ({m}, {c})"


def case_softmax_cross_entropy_forward(mod, d, dtype, rng):
    for x, t, scale, what in _ce_inputs(rng, dtype):
        loss, logp = mod.softmax_cross_entropy_forward(d(x), d(t), scale)
        rloss, rlogp = R.softmax_cross_entropy_forward(x, t, scale)
        _close(d.host(loss), rloss, dtype, f"{what} loss")
        _close(d.host(logp), rlogp, dtype, f"{what} logp")


def case_softmax_cross_entropy_backward(mod, d, dtype, rng):
    for x, t, scale, what in _ce_inputs(rng, dtype):
        _, logp = R.softmax_cross_entropy_forward(x, t, scale)
        g = np.asarray(1.7, dtype=dtype)
        _close(d.host(mod.softmax_cross_entropy_backward(d(g), d(logp), d(t), scale)),
               R.softmax_cross_entropy_backward(g, logp, t, scale), dtype, what)


ADAM_CASES = [dict(), dict(weight_decay=0.1), dict(weight_decay=0.1, decoupled=True),
              dict(amsgrad=True, maximize=True), dict(weight_decay=0.05, amsgrad=True, decoupled=True)]


def case_adam_step(mod, d, dtype, rng):
    for kw in ADAM_CASES:
        p, g = _rand(rng, (3, 5), dtype), _rand(rng, (3, 5), dtype)
        m, v = _rand(rng, (3, 5), dtype) * 0.1, rng.random((3, 5)).astype(dtype) * 0.1
        vmax = v * rng.random((3, 5)).astype(dtype) * 2 if kw.get("amsgrad") else None
        args = dict(lr=1e-2, beta1=0.9, beta2=0.99, eps=1e-8, step=3, **{"weight_decay": 0.0, **kw})
        want = [a.copy() if a is not None else None for a in (p, g, m, v, vmax)]
        R.adam_step(*want, **args)
        got = [d(a.copy()) if a is not None else None for a in (p, g, m, v, vmax)]
        assert mod.adam_step(*got, **args) is None
        for name, a, r in zip(("p", "g", "m", "v", "vmax"), got, want):
            if r is not None:
                if mod.__name__.endswith(".cpu"):  # the fast CPU kernel: the reference's bits exactly
                    np.testing.assert_array_equal(d.host(a), r, err_msg=f"adam {kw} {name}")
                _close(d.host(a), r, dtype, f"adam {kw} {name}")


CASES = {name[len("case_"):]: fn for name, fn in list(globals().items()) if name.startswith("case_")}


def test_every_interface_function_has_a_case():
    assert sorted(CASES) == sorted(INTERFACE)


@pytest.mark.parametrize("tier", TIERS)
def test_interface(tier):
    mod = _tier(tier)
    interface = INTERFACE + INTERFACE_3D
    assert sorted(getattr(mod, "__all__", interface)) == sorted(interface) or tier == "cuda"
    for names, ref_mod in ((INTERFACE, R), (INTERFACE_3D, R3)):
        for name in names:
            ours, ref = inspect.signature(getattr(mod, name)), inspect.signature(getattr(ref_mod, name))
            assert list(ours.parameters) == list(ref.parameters), f"{tier}.{name}"


@pytest.mark.parametrize("fn", INTERFACE)
@pytest.mark.parametrize("tier", TIERS)
def test_tier(tier, fn):
    mod = _tier(tier)
    d = Dev(tier)
    for dtype in DTYPES:
        # the same inputs for every tier
        CASES[fn](mod, d, dtype, np.random.default_rng(zlib.crc32(f"{fn}-{np.dtype(dtype).name}".encode())))


# The simulator runs kernels as Python and never checks that Numba can type them for a GPU; compiling
# every cuda_plain kernel to PTX (NVVM only: no driver, no GPU) does, in a process without the simulator.
PTX_CHECK = r"""
import sys, types
import numba
from numba import boolean, cuda, float64, int32, int64
from numba.cuda.cudadrv import nvvm
if not nvvm.is_available():
    print("SKIP: no libNVVM"); sys.exit(0)
from numba.cuda import dispatcher
from tinygrad_rad.kernels import cuda_plain as P, cuda_ptx
cuda_ptx._patch_numba_without_nvrtc()
dispatcher.get_current_device = lambda: types.SimpleNamespace(compute_capability=(8, 0))
for dtype in ("float32", "float64"):
    T = getattr(numba, dtype)
    a1, a2, a3, a4 = T[::1], T[:, ::1], T[:, :, ::1], T[:, :, :, ::1]
    f1, i4 = float64[::1], int32[:, :, :, ::1]
    n = lambda k: (int64,) * k
    sigs = {  # argument types as the functions of cuda_plain launch them
        "_matmul_kernel": (a3, a3, a3), "_erf_kernel": (a1, a1), "_relu_fwd_kernel": (a1, a1),
        "_relu_bwd_kernel": (a1, a1, a1), "_conv_fwd_kernel": (a4, a4, *n(7), a4),
        "_conv_bwd_input_kernel": (a4, a4, *n(7), a4), "_conv_bwd_weight_kernel": (a4, a4, *n(7), a4),
        "_max_pool_fwd_kernel": (a4, *n(8), a4, i4), "_max_pool_bwd_kernel": (a4, i4, *n(8), a4),
        "_avg_pool_fwd_kernel": (a4, *n(6), boolean, a4), "_avg_pool_bwd_kernel": (a4, *n(6), boolean, a4),
        "_bn_stats_kernel": (a3, float64, a1, a1), "_bn_apply_kernel": (a3, a1, a1, a1, a1, a3),
        "_channel_sums_kernel": (a3, a3, a1, a1, a1, a1), "_bn_grad_kernel": (a3, a3, a1, a1, a1, a1, a1, a3),
        "_affine_kernel": (a3, a1, a1, a3), "_ce_rows_kernel": (a2, a2, a2, f1),
        "_ce_total_kernel": (f1, float64, a1), "_row_sums_kernel": (a2, f1),
        "_ce_grad_kernel": (a2, a2, f1, a1, float64, a2),
        "_adam_kernel": (a1, a1, a1, a1, a1, *(T,) * 8, boolean, int64, boolean),
    }
    kernels = {k for k, v in vars(P).items() if k.endswith("_kernel") and hasattr(v, "py_func")}
    assert kernels == set(sigs), kernels ^ set(sigs)
    for name, sig in sigs.items():
        cuda.compile_ptx(getattr(P, name).py_func, sig, cc=(8, 0))
print("OK")
"""


def test_cuda_plain_kernels_compile_for_the_gpu():
    pytest.importorskip("numba.cuda")
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "0"}
    p = subprocess.run([sys.executable, "-c", PTX_CHECK], cwd=Path(__file__).resolve().parents[1], env=env,
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    if p.stdout.startswith("SKIP"):
        pytest.skip(p.stdout.strip())
    assert p.stdout.strip().endswith("OK")
