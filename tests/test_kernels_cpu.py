"""The CPU kernels (tinygrad_rad.kernels.cpu) against the plain NumPy reference kernels.

Small shapes over strides, paddings, dilations, groups (incl. depthwise), odd sizes, both dtypes;
plus the chunking (several chunks with a remainder), non-contiguous inputs and fresh outputs.
"""

from __future__ import annotations

import inspect
import threading

import numpy as np
import pytest
from tinygrad_rad.kernels import cpu, cpu_conv, reference

TOL = {np.float32: dict(rtol=2e-4, atol=2e-4), np.float64: dict(rtol=1e-10, atol=1e-10)}
DTYPES = [np.float32, np.float64]


def _rand(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


def test_same_interface_as_reference():
    # the backend interface (reference's public helpers such as out_size / avg_divisor are not part of it)
    from test_kernel_tiers import INTERFACE, INTERFACE_3D

    names = INTERFACE + INTERFACE_3D
    for name in names:
        ours, ref = inspect.signature(getattr(cpu, name)), inspect.signature(getattr(reference, name))
        assert list(ours.parameters) == list(ref.parameters), name


# (N, C, H, W, O, k, stride, padding, dilation, groups)
CONV_CASES = [
    (2, 4, 7, 9, 6, 3, 1, 1, 1, 1),
    (3, 6, 9, 8, 6, 3, 2, 1, 1, 2),
    (2, 4, 10, 10, 8, 3, 1, 2, 2, 1),
    (2, 6, 11, 7, 6, 3, 3, 1, 2, 6),   # depthwise, direct loops
    (2, 6, 8, 8, 12, 3, 1, 1, 1, 6),   # depthwise with channel multiplier 2
    (2, 8, 5, 5, 8, 1, 1, 0, 1, 1),    # 1x1
    (2, 8, 5, 6, 4, 1, 2, 0, 1, 1),    # 1x1 stride 2 (ResNet downsample)
    (1, 3, 6, 6, 9, 2, 2, 3, 1, 3),    # padding larger than the kernel
    (2, 16, 4, 4, 8, 5, 1, 2, 1, 2),   # grouped, GEMM path
    (2, 3, 9, 5, 4, (2, 3), (1, 2), (0, 1), (2, 1), 1),  # rectangular everything
    (1, 3, 6, 6, 9, 2, 1, 3, 1, 3),    # stride 1, padding > d (k - 1): backward input via col2im
    # stride 1 with wide rows (junk columns <= 15%): padded-plane im2col, backward input as a forward conv
    (2, 3, 16, 15, 4, 3, 1, 1, 1, 1),
    (2, 8, 16, 16, 8, 3, 1, 1, 1, 2),
    (1, 2, 30, 28, 3, 3, 1, 2, 2, 1),
    (2, 3, 9, 20, 5, (3, 1), 1, (1, 0), 1, 1),
    (2, 4, 12, 21, 6, (2, 3), 1, (0, 1), (1, 1), 1),
    (2, 2, 14, 16, 6, 3, 1, 1, 1, 1),  # og >= 2 cg: backward input as GEMM + wide col2im
    (2, 4, 9, 30, 8, 3, 1, (1, 2), (1, 2), 2),
    # C_out >= chunk columns: the forward GEMM is not computed transposed (generic and wide grids)
    (2, 4, 3, 3, 40, 3, 1, 1, 1, 1),
    (1, 1, 14, 14, 240, 3, 1, 1, 1, 1),
]


def _pair(v):
    return v if isinstance(v, tuple) else (v, v)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV_CASES)
def test_conv2d_matches_reference(case, dtype):
    n, c, h, w_, o, k, s, p, d, g = case
    k, s, p, d = _pair(k), _pair(s), _pair(p), _pair(d)
    rng = np.random.default_rng(0)
    x, w = _rand(rng, (n, c, h, w_), dtype), _rand(rng, (o, c // g, *k), dtype)
    y = cpu.conv2d_forward(x, w, s, p, d, g)
    np.testing.assert_allclose(y, reference.conv2d_forward(x, w, s, p, d, g), **TOL[dtype])
    assert y.dtype == dtype
    gy = _rand(rng, y.shape, dtype)
    gx = cpu.conv2d_backward_input(gy, w, x.shape, s, p, d, g)
    np.testing.assert_allclose(gx, reference.conv2d_backward_input(gy, w, x.shape, s, p, d, g), **TOL[dtype])
    gw = cpu.conv2d_backward_weight(gy, x, w.shape, s, p, d, g)
    np.testing.assert_allclose(gw, reference.conv2d_backward_weight(gy, x, w.shape, s, p, d, g), **TOL[dtype])
    assert gx.shape == x.shape and gw.shape == w.shape and gx.dtype == gw.dtype == dtype


@pytest.mark.parametrize("width,cout", [(5, 4), (16, 4), (16, 8)])  # 16: the stride-1 "wide rows" path
def test_conv2d_chunks_and_fresh_outputs(monkeypatch, width, cout):
    """Force several chunks of images with a remainder; outputs must not alias the scratch buffers."""
    monkeypatch.setattr(cpu_conv, "CHUNK_BYTES", 3000 * width // 5)
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((7, 3, 6, width)), rng.standard_normal((cout, 3, 3, 3))
    args = ((1, 1), (1, 1), (1, 1), 1)
    T64 = dict(rtol=1e-12, atol=1e-12)  # noqa: N806
    y1 = cpu.conv2d_forward(x, w, *args)
    np.testing.assert_allclose(y1, reference.conv2d_forward(x, w, *args), **T64)
    gy = rng.standard_normal(y1.shape)
    gx = cpu.conv2d_backward_input(gy, w, x.shape, *args)
    np.testing.assert_allclose(gx, reference.conv2d_backward_input(gy, w, x.shape, *args), **T64)
    gw = cpu.conv2d_backward_weight(gy, x, w.shape, *args)
    np.testing.assert_allclose(gw, reference.conv2d_backward_weight(gy, x, w.shape, *args), **T64)
    y_copy = y1.copy()
    cpu.conv2d_forward(x * 2, w, *args)  # reuses the scratch buffers
    np.testing.assert_array_equal(y1, y_copy)


def test_conv2d_noncontiguous_and_transposed_use():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((5, 3, 8, 2)).transpose(3, 1, 2, 0)  # (2, 3, 8, 5), not contiguous
    w = rng.standard_normal((3, 4, 3, 3)).transpose(1, 0, 2, 3)  # (4, 3, 3, 3)
    args = ((2, 1), (1, 0), (1, 1), 1)
    y = cpu.conv2d_forward(x, w, *args)
    np.testing.assert_allclose(y, reference.conv2d_forward(x, w, *args), atol=1e-12)
    # ConvTranspose2d calls backward_weight with gy and x swapped: the roles must stay general
    gy = rng.standard_normal(y.shape)[:, :, ::-1]
    np.testing.assert_allclose(cpu.conv2d_backward_weight(gy, x, w.shape, *args),
                               reference.conv2d_backward_weight(gy, x, w.shape, *args), atol=1e-12)


def test_conv2d_errors_name_the_shapes():
    x, w = np.zeros((1, 4, 5, 5)), np.zeros((2, 3, 3, 3))
    with pytest.raises(ValueError, match="input channels 4"):
        cpu.conv2d_forward(x, w, (1, 1), (0, 0), (1, 1), 1)
    with pytest.raises(ValueError, match="empty"):
        cpu.conv2d_forward(np.zeros((1, 3, 2, 2)), w, (1, 1), (0, 0), (1, 1), 1)


# (N, C, H, W, k, stride, padding, dilation)
POOL_CASES = [
    (2, 3, 8, 8, 2, 2, 0, 1),
    (2, 3, 9, 8, 3, 2, 1, 1),
    (1, 2, 7, 7, 3, 1, 1, 1),
    (2, 2, 10, 9, 3, 2, 1, 2),
    (1, 2, 6, 9, (2, 3), (1, 2), (1, 1), 1),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", POOL_CASES)
def test_max_pool_matches_reference(case, dtype):
    n, c, h, w_, k, s, p, d = case
    k, s, p, d = _pair(k), _pair(s), _pair(p), _pair(d)
    rng = np.random.default_rng(3)
    x = _rand(rng, (n, c, h, w_), dtype)
    x[0, 0, :2, :2] = 1.5  # ties: the first maximum must win, as in the reference
    y, idx = cpu.max_pool2d_forward(x, k, s, p, d)
    yr, idxr = reference.max_pool2d_forward(x, k, s, p, d)
    np.testing.assert_array_equal(y, yr)
    np.testing.assert_array_equal(idx, idxr)
    assert idx.dtype == np.int32 and y.dtype == dtype
    gy = _rand(rng, y.shape, dtype)
    np.testing.assert_allclose(cpu.max_pool2d_backward(gy, idx, x.shape, k, s, p, d),
                               reference.max_pool2d_backward(gy, idxr, x.shape, k, s, p, d), **TOL[dtype])


def test_max_pool_nan_propagates():
    x = np.arange(16, dtype=np.float64).reshape(1, 1, 4, 4)
    x[0, 0, 1, 0] = np.nan
    y, idx = cpu.max_pool2d_forward(x, (2, 2), (2, 2), (0, 0))
    yr, idxr = reference.max_pool2d_forward(x, (2, 2), (2, 2), (0, 0))
    assert np.isnan(y[0, 0, 0, 0]) and idx[0, 0, 0, 0] == idxr[0, 0, 0, 0] == 2


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cip", [True, False])
@pytest.mark.parametrize("case", [(2, 3, 8, 8, 2, 2, 0), (2, 2, 9, 7, 3, 2, 1),
                                  (1, 2, 7, 6, (3, 2), (1, 2), (1, 1))])
def test_avg_pool_matches_reference(case, cip, dtype):
    n, c, h, w_, k, s, p = case
    k, s, p = _pair(k), _pair(s), _pair(p)
    rng = np.random.default_rng(4)
    x = _rand(rng, (n, c, h, w_), dtype)
    y = cpu.avg_pool2d_forward(x, k, s, p, cip)
    np.testing.assert_allclose(y, reference.avg_pool2d_forward(x, k, s, p, cip), **TOL[dtype])
    gy = _rand(rng, y.shape, dtype)
    np.testing.assert_allclose(cpu.avg_pool2d_backward(gy, x.shape, k, s, p, cip),
                               reference.avg_pool2d_backward(gy, x.shape, k, s, p, cip), **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(4, 3), (3, 5, 4, 6), (2, 2, 1, 7)])
@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm_matches_reference(shape, affine, dtype):
    rng = np.random.default_rng(5)
    x = (_rand(rng, shape, dtype) * 3 + 1).astype(dtype)
    c = shape[1]
    w = _rand(rng, (c,), dtype) if affine else None
    b = _rand(rng, (c,), dtype) if affine else None
    out, ref = cpu.batch_norm_forward_train(x, w, b, 1e-5), reference.batch_norm_forward_train(x, w, b, 1e-5)
    for a, r in zip(out, ref):
        np.testing.assert_allclose(a, r, **TOL[dtype])
        assert a.dtype == dtype and a.shape == r.shape
    gy = _rand(rng, shape, dtype)
    mean, invstd = ref[1], ref[2]
    for a, r in zip(cpu.batch_norm_backward(gy, x, w, mean, invstd),
                    reference.batch_norm_backward(gy, x, w, mean, invstd)):
        np.testing.assert_allclose(a, r, **TOL[dtype])
        assert a.dtype == dtype and a.shape == r.shape


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(4, 3), (3, 5, 4, 6), (2, 2, 1, 7), (2, 3, 40, 40)])
def test_channel_affine_matches_reference(shape, dtype):
    """Eval-time batch norm's one-pass kernel y = x * s[c] + b[c] and its backward."""
    rng = np.random.default_rng(8)
    x, g = _rand(rng, shape, dtype), _rand(rng, shape, dtype)
    s, b = _rand(rng, (shape[1],), dtype), _rand(rng, (shape[1],), dtype)
    y = cpu.channel_affine_forward(x, s, b)
    np.testing.assert_array_equal(y, reference.channel_affine_forward(x, s, b))  # same two roundings
    assert y.dtype == dtype and y.shape == x.shape
    for a, r in zip(cpu.channel_affine_backward(g, x, s), reference.channel_affine_backward(g, x, s)):
        np.testing.assert_allclose(a, r, **TOL[dtype])
        assert a.dtype == dtype and a.shape == r.shape


def test_batch_norm_statistics_survive_a_large_mean():
    """float32 activations around 1000 with std 0.01: the one-pass (shifted, vectorised) sums must still
    give the variance that float64 two-pass statistics give, on planes long enough to run vector code."""
    rng = np.random.default_rng(11)
    x = (1000 + 0.01 * rng.standard_normal((16, 4, 32, 32))).astype(np.float32)
    _, mean, invstd = cpu.batch_norm_forward_train(x, None, None, 1e-12)
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(mean, x64.mean(axis=(0, 2, 3)), rtol=1e-6)
    np.testing.assert_allclose(invstd, 1 / x64.std(axis=(0, 2, 3)), rtol=1e-3)


@pytest.mark.parametrize("dtype", DTYPES)
def test_matmul_and_erf(dtype):
    rng = np.random.default_rng(6)
    a, b = _rand(rng, (2, 3, 4), dtype), _rand(rng, (4, 5), dtype)
    np.testing.assert_allclose(cpu.matmul(a, b), a @ b, **TOL[dtype])
    x = _rand(rng, (3, 7), dtype)
    e = cpu.erf(x)
    assert e.dtype == dtype
    np.testing.assert_allclose(e, reference.erf(x), **TOL[dtype])


def test_kernels_from_two_threads():
    """Two Python threads running kernels at once (serialised under workqueue: threads.serialized)."""
    rng = np.random.default_rng(7)
    x, w = rng.standard_normal((4, 3, 16, 16)), rng.standard_normal((5, 3, 3, 3))
    args = ((1, 1), (1, 1), (1, 1), 1)
    expect = reference.conv2d_forward(x, w, *args)
    results, errors = [], []

    def work():
        try:
            for _ in range(20):
                results.append(cpu.conv2d_forward(x, w, *args))
                cpu.max_pool2d_forward(x, (2, 2), (2, 2), (0, 0))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 40
    for y in results:
        np.testing.assert_allclose(y, expect, atol=1e-12)


# ------------------------------------------------------------------ batch split across threads, Winograd
@pytest.fixture
def split_always(monkeypatch):
    """Every conv splits its batch across threads, even tiny ones (SPLIT_MIN_MACS = 0)."""
    monkeypatch.setattr(cpu_conv, "SPLIT_MIN_MACS", 0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV_CASES)
def test_conv2d_batch_split_matches_reference(split_always, case, dtype):
    test_conv2d_matches_reference(case, dtype)


WINO_CASES = [  # (N, C, H, W, O, padding, groups): 3x3 stride 1, odd and even sizes, padding 0-2, groups
    (3, 4, 7, 9, 5, 1, 1),
    (2, 3, 8, 8, 6, 0, 1),
    (2, 5, 6, 11, 4, 2, 1),
    (3, 8, 9, 6, 8, 1, 2),
    (1, 2, 3, 3, 3, 1, 1),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("case", WINO_CASES + [(2, 3, 10, 7, 4, 1, 1), (2, 2, 6, 6, 2, 0, 1)])
def test_winograd_conv_matches_reference(monkeypatch, split_always, case, stride, dtype):
    """Forward, backward-input and backward-weight by Winograd F(2x2, 3x3) and its stride-2 twin (odd and
    even sizes: patches that hang over the edge, input rows no patch reaches)."""
    monkeypatch.setattr(cpu_conv, "WINOGRAD", True)
    monkeypatch.setattr(cpu_conv, "WINOGRAD_S2", True)
    monkeypatch.setattr(cpu_conv, "WINOGRAD_MIN_CHANNELS", 1)
    monkeypatch.setattr(cpu_conv, "WINOGRAD_MIN_SIZE", 1)
    n, c, h, w_, o, p, g = case
    s = (stride, stride)
    assert cpu_conv._plan((n, c, h, w_), (o, c // g, 3, 3), s, (p, p), (1, 1), g, 8).winograd
    test_conv2d_matches_reference((n, c, h, w_, o, 3, stride, p, 1, g), dtype)


@pytest.mark.parametrize("winograd", [True, False])
@pytest.mark.parametrize("stride", [1, 2])
def test_conv2d_affine_forward_fused_in_the_winograd_store(monkeypatch, split_always, winograd, stride):
    """conv -> eval batch norm (-> + residual) (-> relu) in one call: in Winograd's output transform, or as a
    pass after the other conv paths; the same values as the reference's ops one after the other."""
    from tinygrad_rad.kernels import reference

    monkeypatch.setattr(cpu_conv, "WINOGRAD", winograd)
    monkeypatch.setattr(cpu_conv, "WINOGRAD_MIN_CHANNELS", 1)
    monkeypatch.setattr(cpu_conv, "WINOGRAD_MIN_SIZE", 1)
    rng = np.random.default_rng(7)
    x, w = rng.standard_normal((3, 5, 9, 8)), rng.standard_normal((6, 5, 3, 3))
    args = ((stride, stride), (1, 1), (1, 1), 1)
    assert cpu_conv._plan(x.shape, w.shape, *args, 8).winograd == winograd
    y = reference.conv2d_forward(x, w, *args)
    scale, shift, res = rng.standard_normal(6), rng.standard_normal(6), rng.standard_normal(y.shape)
    for residual in (None, res):
        for relu in (False, True):
            got = cpu_conv.conv2d_affine_forward(x, w, *args, scale, shift, residual, relu)
            want = reference.conv2d_affine_forward(x, w, *args, scale, shift, residual, relu)
            np.testing.assert_allclose(got, want, atol=1e-12)
    with pytest.raises(ValueError, match="residual has shape"):
        cpu_conv.conv2d_affine_forward(x, w, *args, scale, shift, res[:, :3], True)


def test_winograd_transforms_are_the_textbook_matrices():
    """The hand-written transforms equal B^T d B, A^T M A and A dY A^T with the module's matrices."""
    from tinygrad_rad.kernels import cpu_winograd as wino

    rng = np.random.default_rng(5)
    d = rng.standard_normal((1, 1, 4, 4))
    v = np.empty((16, 1))  # one tile, one channel: v[xi, t*C + c]
    wino.input_transform(d, 0, 1, 0, 0, 1, 1, v)
    np.testing.assert_allclose(v.reshape(4, 4), wino.BT @ d[0, 0] @ wino.BT.T, atol=1e-12)
    m = rng.standard_normal((16, 1))
    y = np.empty((1, 1, 2, 2))
    wino.output_transform(m, 0, 1, 1, 1, y)
    np.testing.assert_allclose(y[0, 0], wino.AT @ m.reshape(4, 4) @ wino.AT.T, atol=1e-12)
    dm = np.empty((16, 1))
    wino.output_transform_adjoint(y, 0, 1, 1, 1, dm)
    np.testing.assert_allclose(dm.reshape(4, 4), wino.AT.T @ y[0, 0] @ wino.AT, atol=1e-12)
    g = rng.standard_normal((1, 1, 3, 3))
    np.testing.assert_allclose(wino.weight_transform(g)[:, 0, 0].reshape(4, 4), wino.G @ g[0, 0] @ wino.G.T)
    du = rng.standard_normal((16, 1, 1))
    np.testing.assert_allclose(wino.weight_transform_adjoint(du, np.float64)[0, 0],
                               wino.G.T @ du.reshape(4, 4) @ wino.G, atol=1e-12)


def test_winograd_stride2_scheme_is_the_polyphase_algorithm():
    """The stride-2 scheme: A^T [(G g G^T) * (B^T d B)] A is the 2x2 output of a stride-2 3x3 correlation of
    a 5x5 patch d, and its transforms (and the input transform's adjoint) match the matrices."""
    from tinygrad_rad.kernels import cpu_winograd as wino

    sc, rng = wino.F2X2_3X3_S2, np.random.default_rng(6)
    d, g = rng.standard_normal((1, 1, 5, 5)), rng.standard_normal((1, 1, 3, 3))
    direct = [[(g[0, 0] * d[0, 0, 2 * i : 2 * i + 3, 2 * j : 2 * j + 3]).sum() for j in range(2)]
              for i in range(2)]
    tile = sc.at @ ((sc.g @ g[0, 0] @ sc.g.T) * (sc.bt @ d[0, 0] @ sc.bt.T)) @ sc.at.T
    np.testing.assert_allclose(tile, direct, atol=1e-12)
    v = np.empty((25, 1))
    wino.input_transform(d, 0, 1, 0, 0, 1, 1, v, sc)
    np.testing.assert_allclose(v.reshape(5, 5), sc.bt @ d[0, 0] @ sc.bt.T, atol=1e-12)
    np.testing.assert_allclose(wino.weight_transform(g, sc)[:, 0, 0].reshape(5, 5), sc.g @ g[0, 0] @ sc.g.T)
    dv, gx = rng.standard_normal((25, 1)), np.empty((1, 1, 5, 5))
    wino.input_transform_adjoint(dv, 0, 1, 0, 0, 1, 1, gx, sc)
    np.testing.assert_allclose(gx[0, 0], sc.bt.T @ dv.reshape(5, 5) @ sc.bt, atol=1e-12)
    m, y = rng.standard_normal((25, 1)), np.empty((1, 1, 2, 2))
    wino.output_transform(m, 0, 1, 1, 1, y, sc)
    np.testing.assert_allclose(y[0, 0], sc.at @ m.reshape(5, 5) @ sc.at.T, atol=1e-12)


def test_winograd_is_used_where_it_pays():
    plan = cpu_conv._plan
    args = ((1, 1), (1, 1), (1, 1), 1, 4)
    assert plan((128, 64, 14, 14), (128, 64, 3, 3), *args).winograd == cpu_conv.WINOGRAD
    assert not plan((128, 1, 28, 28), (32, 1, 3, 3), *args).winograd      # one input channel
    assert plan((128, 512, 4, 4), (512, 512, 3, 3), *args).winograd == cpu_conv.WINOGRAD  # 4x4 output
    assert not plan((128, 512, 2, 2), (512, 512, 3, 3), *args).winograd   # 2x2 output
    s2 = plan((128, 64, 14, 14), (128, 64, 3, 3), (2, 2), (1, 1), (1, 1), 1, 4)  # stride 2: its own scheme
    assert s2.winograd == (cpu_conv.WINOGRAD and cpu_conv.WINOGRAD_S2) and s2.scheme.planes == 25
    assert not plan((128, 64, 14, 14), (128, 64, 3, 3), (3, 3), (1, 1), (1, 1), 1, 4).winograd  # stride 3


ROWS_CASES = [  # (n, c, h, w, o, padding): 3x3 stride 1 with few channels -> cpu_conv_rows
    (2, 3, 7, 9, 5, 1),
    (1, 1, 5, 6, 4, 0),
    (3, 2, 4, 4, 3, 2),
    (1, 2, 1, 1, 2, 1),     # 1x1 image: every tap but the centre reads padding
    (2, 4, 31, 28, 6, 1),   # several rows per block (Wo = 28), a short last block
    (1, 2, 3, 70, 3, (0, 1)),  # wide rows, one row per block; rectangular padding
    (2, 16, 6, 50, 24, 1),  # 384 channel pairs: the rows path only because the rows are >= 48 wide
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", ROWS_CASES)
def test_conv_rows_matches_reference(case, dtype):
    """Forward, backward-input (a rows conv of gy with the flipped weights) and backward-weight."""
    from tinygrad_rad.kernels import cpu_conv_rows

    n, c, h, w_, o, p = case
    ho, wo = h + 2 * _pair(p)[0] - 2, w_ + 2 * _pair(p)[1] - 2
    assert cpu_conv_rows.use_rows((3, 3), (1, 1), (1, 1), 1, c, o, wo)
    test_conv2d_matches_reference((n, c, h, w_, o, 3, 1, p, 1, 1), dtype)
    assert ho * wo > 0


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV_CASES + [(2, 3, 7, 9, 5, 3, 1, 1, 1, 1)])
def test_conv2d_matches_reference_without_rows(monkeypatch, case, dtype):
    """The im2col + GEMM paths the row kernels now take over for small 3x3 convs stay correct."""
    monkeypatch.setattr(cpu_conv, "ROWS", False)
    test_conv2d_matches_reference(case, dtype)


def test_conv_rows_is_used_where_it_pays():
    from tinygrad_rad.kernels.cpu_conv_rows import use_rows

    s1 = ((3, 3), (1, 1), (1, 1), 1)
    assert use_rows(*s1, 1, 32, 28) and use_rows(*s1, 1, 64, 28)           # SmallCNN / ResNet-18 stems
    assert use_rows(*s1, 8, 8, 128) and use_rows(*s1, 16, 8, 128)          # U-Net's outer levels
    assert use_rows(*s1, 64, 16, 64) and use_rows(*s1, 16, 64, 64)         # many pairs, wide rows
    assert not use_rows(*s1, 16, 64, 64, weight_grad=True)                 # ... but not its weight gradient
    assert not use_rows(*s1, 16, 32, 28)                                   # GEMM wins at 28 wide
    assert not use_rows((3, 3), (2, 2), (1, 1), 1, 1, 32, 14)               # stride 2
    assert not use_rows((3, 3), (1, 1), (2, 2), 1, 1, 32, 28)               # dilated
    assert not use_rows((3, 3), (1, 1), (1, 1), 2, 4, 4, 28)                # grouped
    assert not use_rows((5, 5), (1, 1), (1, 1), 1, 1, 32, 28)               # 5x5


def test_blas_thread_control_and_run_parts():
    from tinygrad_rad.kernels import threads

    before = threads.get_blas_threads()
    seen = []

    def part(lo, hi):
        seen.append(threads.get_blas_threads())
        return (lo, hi)

    parts = threads.run_parts(10, part, parts=2)
    if threads.BLAS_CONTROL:
        assert parts == [(0, 5), (5, 10)] and seen == [1, 1]
        assert threads.get_blas_threads() == before  # restored
    else:
        assert parts == [(0, 10)]
    assert threads.run_parts(1, part, parts=4) == [(0, 1)]


def test_run_parts_reraises_and_restores():
    from tinygrad_rad.kernels import threads

    before = threads.get_blas_threads()

    def part(lo, hi):
        if lo > 0:
            raise ValueError("part failed")
        return lo

    with pytest.raises(ValueError, match="part failed"):
        threads.run_parts(4, part, parts=2) if threads.BLAS_CONTROL else part(1, 2)
    assert threads.get_blas_threads() == before


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(2, 3, 8, 6), (2, 3, 9, 7), (1, 2, 6, 9), (3, 1, 2, 2)])
def test_max_pool_2x2_fast_path(dtype, shape):
    """The 2x2 / stride 2 forward (two pairwise passes) and backward (one write per cell), for even and odd
    sizes (the last odd row / column is dropped forward and gets 0 backward)."""
    rng = np.random.default_rng(6)
    x = _rand(rng, shape, dtype)
    x[0, 0, 0, :2] = 2.0          # tie: the first maximum wins
    x[-1, -1, 0:2, 0:2] = 3.0     # a four-way tie
    x[0, -1, 1, 1] = np.nan        # NaN wins its window
    x[-1, 0, 0, 1] = x[-1, 0, 1, 0] = np.nan  # the first of two NaNs wins
    x[0, 0, -2:, 0:2] = -np.inf
    assert cpu._is_2x2((2, 2), (2, 2), (0, 0), (1, 1))
    y, idx = cpu.max_pool2d_forward(x, (2, 2), (2, 2), (0, 0), (1, 1))
    ry, ridx = reference.max_pool2d_forward(x, (2, 2), (2, 2), (0, 0), (1, 1))
    np.testing.assert_array_equal(y, ry)
    np.testing.assert_array_equal(idx, ridx)
    gy = _rand(rng, y.shape, dtype)
    np.testing.assert_array_equal(cpu.max_pool2d_backward(gy, idx, x.shape, (2, 2), (2, 2), (0, 0)),
                                  reference.max_pool2d_backward(gy, ridx, x.shape, (2, 2), (2, 2), (0, 0)))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(2, 3, 4, 6, 8), (2, 2, 5, 7, 3), (1, 2, 2, 3, 2), (3, 1, 2, 2, 2)])
def test_max_pool3d_2x2x2_fast_path(dtype, shape):
    """The 2x2x2 / stride 2 forward (pairwise passes) and backward (one write per voxel) against the
    reference, for even and odd sizes (a trailing odd depth / row / column is dropped forward, 0 backward),
    with ties, NaNs and -inf."""
    from tinygrad_rad.kernels import reference3d

    rng = np.random.default_rng(7)
    x = _rand(rng, shape, dtype)
    x[0, 0, 0, 0, :2] = 2.0                 # tie along a row: the first maximum wins
    x[-1, -1, 0:2, 0:2, 0:2] = 3.0          # an eight-way tie
    x[0, -1, 1, 1, 1] = np.nan              # NaN wins its window
    x[-1, 0, 1, 0, 0] = x[-1, 0, 0, 1, 1] = np.nan  # the first of two NaNs (in window order) wins
    x[0, 0, -2:, -2:, 0:2] = -np.inf
    args = ((2, 2, 2), (2, 2, 2), (0, 0, 0), (1, 1, 1))
    assert cpu._is_2x2x2(*args)
    y, idx = cpu.max_pool3d_forward(x, *args)
    ry, ridx = reference3d.max_pool3d_forward(x, *args)
    np.testing.assert_array_equal(y, ry)
    np.testing.assert_array_equal(idx, ridx)
    gy = _rand(rng, y.shape, dtype)
    np.testing.assert_array_equal(cpu.max_pool3d_backward(gy, idx, x.shape, *args),
                                  reference3d.max_pool3d_backward(gy, ridx, x.shape, *args))
    # any other window keeps the plain loops (and a 1-voxel axis falls back rather than pooling nothing)
    assert not cpu._is_2x2x2((2, 2, 2), (1, 2, 2), (0, 0, 0), (1, 1, 1))



@pytest.mark.parametrize("dtype", DTYPES)
def test_conv_patch_matches_reference(dtype, monkeypatch):
    """kernel == stride convs (space to depth + batched GEMMs, cpu_conv_patch.py): all three passes against
    the reference, for sizes the windows tile and sizes with trailing rows / columns no window covers (0 in
    dL/dx), and the same numbers with TGR_CONV_PATCH's switch off."""
    from tinygrad_rad.kernels import cpu_conv_patch

    cases = [((2, 3, 8, 8), (4, 3, 2, 2)), ((1, 2, 9, 7), (3, 2, 2, 2)), ((2, 4, 9, 10), (5, 4, 3, 3)),
             ((1, 1, 6, 9), (2, 1, 2, 4))]
    used = []
    real = cpu_conv_patch.conv2d_forward_patch
    monkeypatch.setattr(cpu_conv, "conv2d_forward_patch", lambda *a: used.append(1) or real(*a))
    rng = np.random.default_rng(9)
    for patch in (True, False):
        monkeypatch.setattr(cpu_conv, "PATCH", patch)
        for xs, ws in cases:
            k, args = ws[2:], ((0, 0), (1, 1), 1)
            assert cpu_conv_patch.use_patch(k, k, *args)
            x, w = _rand(rng, xs, dtype), _rand(rng, ws, dtype)
            y = cpu.conv2d_forward(x, w, k, *args)
            tol = {"rtol": 1e-4, "atol": 1e-4} if dtype == np.float32 else {"rtol": 1e-12, "atol": 1e-12}
            np.testing.assert_allclose(y, reference.conv2d_forward(x, w, k, *args), **tol)
            gy = _rand(rng, y.shape, dtype)
            gx = cpu.conv2d_backward_input(gy, w, xs, k, *args)
            np.testing.assert_allclose(gx, reference.conv2d_backward_input(gy, w, xs, k, *args), **tol)
            np.testing.assert_allclose(cpu.conv2d_backward_weight(gy, x, ws, k, *args),
                                       reference.conv2d_backward_weight(gy, x, ws, k, *args), **tol)
            assert gx.dtype == dtype and gx.flags.c_contiguous
    assert len(used) == len(cases)  # only while the switch was on
    assert not cpu_conv_patch.use_patch((2, 2), (2, 2), (1, 1), (1, 1), 1)  # padding: the general path
    assert not cpu_conv_patch.use_patch((2, 2), (2, 2), (0, 0), (1, 1), 2)  # groups
    assert not cpu_conv_patch.use_patch((1, 1), (1, 1), (0, 0), (1, 1), 1)  # a 1x1 conv: im2col is a copy



def test_tune_malloc_is_idempotent_and_can_be_disabled(monkeypatch):
    import sys

    from tinygrad_rad.kernels import threads

    first = threads.tune_malloc()
    assert threads.tune_malloc() is first
    if sys.platform.startswith("linux"):
        assert first is True  # glibc accepted both thresholds (configure_cpu calls this)
    monkeypatch.setattr(threads, "_malloc_tuned", False)
    monkeypatch.setenv("TGR_TUNE_MALLOC", "0")
    assert threads.tune_malloc() is False


@pytest.mark.parametrize("dtype", DTYPES)
def test_relu_kernels_match_reference(dtype):
    rng = np.random.default_rng(7)
    x, g = _rand(rng, (4, 3, 5, 5), dtype), _rand(rng, (4, 3, 5, 5), dtype)
    x[0, 0, 0, :4] = [0.0, -0.0, np.nan, np.inf]
    y = cpu.relu_forward(x)
    np.testing.assert_array_equal(y, reference.relu_forward(x))
    assert y.dtype == dtype and np.isnan(y[0, 0, 0, 2])
    np.testing.assert_array_equal(cpu.relu_backward(g, y), reference.relu_backward(g, y))
    np.testing.assert_array_equal(cpu.relu_backward(g[:, :, ::2], y[:, :, ::2]),
                                  reference.relu_backward(g[:, :, ::2], y[:, :, ::2]))


def test_set_num_threads_sets_numba_and_blas():
    """threads.set_num_threads (what configure_cpu(num_threads=...) calls) sets Numba's and BLAS's counts."""
    import numba
    from tinygrad_rad.kernels import configure_cpu, threads

    try:
        threads.set_num_threads(1)
        assert numba.get_num_threads() == 1
        if threads.BLAS_CONTROL:
            assert threads.get_blas_threads() == 1
        got = configure_cpu(num_threads=2, threading_layer=None, tune_malloc=False)
        assert got["num_threads"] == numba.get_num_threads() == min(2, numba.config.NUMBA_NUM_THREADS)
        assert got["threading_layer"] is None  # left alone when asked to
    finally:
        threads.set_num_threads(None)  # back to all cores
    assert numba.get_num_threads() == numba.config.NUMBA_NUM_THREADS


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_serial_and_parallel_paths_give_the_same_bits(dtype):
    from tinygrad_rad.kernels import cpu, reference

    rng = np.random.default_rng(0)
    for n in (7, cpu.SERIAL_MAX - 1, cpu.SERIAL_MAX, 3 * cpu.SERIAL_MAX + 5):  # both sides of the switch
        x = rng.standard_normal(n).astype(dtype)
        x[::97] = np.nan
        x[1::89] = 0.0
        g = rng.standard_normal(n).astype(dtype)
        y = cpu.relu_forward(x)
        np.testing.assert_array_equal(y, reference.relu_forward(x))
        np.testing.assert_array_equal(cpu.relu_backward(g, y), reference.relu_backward(g, y))
