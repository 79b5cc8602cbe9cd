"""The project's Numba CUDA kernels against the NumPy reference kernels, on tiny shapes.

Without a GPU they run in Numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``, set by conftest.py),
which runs every CUDA thread as a Python thread: shapes stay tiny but cover several blocks and
sizes that are not multiples of the tiles. With ``TGR_REAL_GPU=1`` the same tests run on the GPU
with CuPy arrays and the full-size tiles.
"""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

import tinygrad_rad

pytestmark = pytest.mark.cudasim

if not tinygrad_rad.cuda.is_available():  # pragma: no cover - numba-cuda missing
    pytest.skip("no CUDA device and no CUDA simulator", allow_module_level=True)

from tinygrad_rad.kernels import cuda as K  # noqa: E402
from tinygrad_rad.kernels import cuda_conv, cuda_gemm  # noqa: E402
from tinygrad_rad.kernels import reference as R  # noqa: E402

REAL_GPU = os.environ.get("NUMBA_ENABLE_CUDASIM", "0") in ("", "0")


def D(a):
    """Host array -> the array type the backend works on (CuPy on a GPU, NumPy in the simulator)."""
    if REAL_GPU:  # pragma: no cover - GPU only
        import cupy

        return cupy.asarray(a)
    return a


def H(a):
    return a.get() if hasattr(a, "get") else np.asarray(a)


def rnd(*shape, dtype=np.float32, seed=0):
    return np.random.default_rng(seed + len(shape)).standard_normal(shape).astype(dtype)


def close(got, want, tol=1e-5):
    got = H(got)
    assert got.shape == want.shape, (got.shape, want.shape)
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


# ------------------------------------------------------------------------------------------ GEMM
@pytest.mark.parametrize(
    "m,n,k,ta,tb",
    [(1, 1, 1, False, False), (17, 5, 23, False, False), (9, 18, 7, True, False), (20, 3, 9, False, True),
     (5, 17, 10, True, True), (40, 35, 9, False, False)],  # the last: 2 x 2 blocks in the simulator
)
def test_gemm_any_size_and_transposes(m, n, k, ta, tb):
    a, b = rnd(m, k), rnd(k, n, seed=1)
    a_in = np.ascontiguousarray(a.T) if ta else a
    b_in = np.ascontiguousarray(b.T) if tb else b
    close(cuda_gemm.gemm(D(a_in), D(b_in), trans_a=ta, trans_b=tb), a @ b)


def test_gemm_batched_broadcast_split_k_float64():
    a, b = rnd(3, 6, 21, dtype=np.float64), rnd(1, 21, 4, dtype=np.float64, seed=2)
    close(cuda_gemm.gemm(D(a), D(b), splits=3), a @ b, 1e-12)


def test_gemm_full_size_gpu_tiles():
    """The tile configuration used on a real GPU (128x128x8, 8x8 per thread, 256 threads)."""
    a, b = rnd(130, 9), rnd(9, 7, seed=3)
    close(cuda_gemm.gemm(D(a), D(b), tiles=cuda_gemm.GPU_TILES), a @ b)


def test_gemm_errors_name_shapes():
    with pytest.raises(ValueError, match=r"inner dims differ.*\(3, 4\)"):
        cuda_gemm.gemm(D(rnd(3, 4)), D(rnd(5, 2)))
    with pytest.raises(ValueError, match="do not broadcast"):
        cuda_gemm.gemm(D(rnd(2, 3, 4)), D(rnd(3, 4, 2)))


@pytest.mark.parametrize("sa,sb", [((2, 3, 5, 4), (4, 6)), ((2, 1, 3, 4), (1, 2, 4, 5)), ((3, 4), (2, 4, 5))])
def test_matmul_broadcast_batch(sa, sb):
    a, b = rnd(*sa), rnd(*sb, seed=4)
    close(K.matmul(D(a), D(b)), a @ b)


def test_matmul_reads_transposed_views_and_falls_back_for_ints():
    a, g = rnd(3, 6, 5), rnd(3, 6, 4, seed=5)
    close(K.matmul(D(a).swapaxes(-1, -2), D(g)), a.swapaxes(-1, -2) @ g)
    assert cuda_gemm.gemm is not None and K._is_transposed(D(a).swapaxes(-1, -2))
    ia = np.arange(6).reshape(2, 3)
    np.testing.assert_array_equal(H(K.matmul(D(ia), D(ia.T.copy()))), ia @ ia.T)


# ----------------------------------------------------------------------------------- convolution
CONV_CASES = [
    # n, c, h, w, o, k, stride, pad, dilation, groups
    (2, 3, 6, 5, 4, 3, 1, 1, 1, 1),
    (1, 4, 7, 6, 6, 3, 2, 1, 1, 2),
    (2, 2, 6, 6, 3, 2, 1, 0, 2, 1),
    (1, 3, 5, 5, 3, 3, 2, 2, 1, 3),  # depthwise, padding > k // 2
]


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv2d_forward_and_backward(case):
    n, c, h, w, o, k, s, p, d, g = case
    x, wt = rnd(n, c, h, w), rnd(o, c // g, k, k, seed=6)
    args = ((s, s), (p, p), (d, d), g)
    y = R.conv2d_forward(x, wt, *args)
    close(K.conv2d_forward(D(x), D(wt), *args), y)
    gy = rnd(*y.shape, seed=7)
    gx = R.conv2d_backward_input(gy, wt, x.shape, *args)
    close(K.conv2d_backward_input(D(gy), D(wt), x.shape, *args), gx)
    gw = R.conv2d_backward_weight(gy, x, wt.shape, *args)
    close(K.conv2d_backward_weight(D(gy), D(x), wt.shape, *args), gw)


def test_conv2d_float64_rectangular_kernel():
    x, wt = rnd(1, 2, 5, 6, dtype=np.float64), rnd(3, 2, 2, 3, dtype=np.float64, seed=8)
    args = ((2, 1), (1, 0), (1, 2), 1)
    close(K.conv2d_forward(D(x), D(wt), *args), R.conv2d_forward(x, wt, *args), 1e-12)


def test_col2im_is_the_adjoint_of_im2col():
    # <im2col(x), c> == <x, col2im(c)> for any x, c: what makes conv's backward-input exact
    x = rnd(2, 2, 5, 4, dtype=np.float64)
    geo = ((3, 2), (2, 1), (1, 1), (1, 2))
    cols = H(cuda_conv.im2col(D(x), *geo))
    c = rnd(*cols.shape, dtype=np.float64, seed=9)
    back = H(cuda_conv.col2im(D(c), x.shape, *geo))
    assert math.isclose(float((cols * c).sum()), float((x * back).sum()), rel_tol=1e-12)


# --------------------------------------------------------------------------------------- pooling
@pytest.mark.parametrize("geo", [((3, 3), (2, 2), (1, 1), (1, 1)), ((2, 2), (2, 2), (0, 0), (2, 1)),
                                 ((2, 3), (1, 2), (1, 1), (1, 1))])
def test_max_pool(geo):
    x = rnd(2, 3, 7, 6)
    y, idx = R.max_pool2d_forward(x, *geo)
    gy_, gidx = K.max_pool2d_forward(D(x), *geo)
    close(gy_, y)
    np.testing.assert_array_equal(H(gidx), idx)
    gy = rnd(*y.shape, seed=10)
    close(K.max_pool2d_backward(D(gy), gidx, x.shape, *geo), R.max_pool2d_backward(gy, idx, x.shape, *geo))


@pytest.mark.parametrize("geo", [((3, 3), (2, 2), (1, 1), True), ((3, 2), (2, 1), (1, 1), False),
                                 ((2, 2), (2, 2), (0, 0), True)])
def test_avg_pool(geo):
    x = rnd(2, 2, 7, 6)
    y = R.avg_pool2d_forward(x, *geo)
    close(K.avg_pool2d_forward(D(x), *geo), y)
    gy = rnd(*y.shape, seed=11)
    close(K.avg_pool2d_backward(D(gy), x.shape, *geo), R.avg_pool2d_backward(gy, x.shape, *geo))


# ------------------------------------------------------------------------------------ batch norm
@pytest.mark.parametrize("shape,affine", [((3, 4, 3, 5), True), ((5, 3), True), ((2, 3, 7), False)])
def test_batch_norm(shape, affine):
    x = rnd(*shape) * 2 + 1
    w, b = (rnd(shape[1], seed=12), rnd(shape[1], seed=13)) if affine else (None, None)
    ref = R.batch_norm_forward_train(x, w, b, 1e-5)
    got = K.batch_norm_forward_train(D(x), None if w is None else D(w), None if b is None else D(b), 1e-5)
    for g_, r_ in zip(got, ref):
        close(g_, r_, 1e-5)
    gy = rnd(*shape, seed=14)
    ref_b = R.batch_norm_backward(gy, x, w, ref[1], ref[2])
    got_b = K.batch_norm_backward(D(gy), D(x), None if w is None else D(w), D(ref[1]), D(ref[2]))
    for g_, r_ in zip(got_b, ref_b):
        close(g_, r_, 1e-5)


# ---------------------------------------------------------------------- softmax-CE, rows, erf
def _log_softmax(x):
    s = x - x.max(axis=1, keepdims=True)
    return s - np.log(np.exp(s).sum(axis=1, keepdims=True))


def test_softmax_cross_entropy_and_row_kernels():
    x, t = rnd(4, 11) * 3, np.abs(rnd(4, 11, seed=15))
    lp = _log_softmax(x)
    close(K.log_softmax(D(x)), lp)
    close(K.sum_rows(D(t)), t.sum(axis=1))
    loss, logp = K.softmax_cross_entropy_forward(D(x), D(t), 0.25)
    assert math.isclose(float(H(loss)), float(-(t * lp).sum() * 0.25), rel_tol=1e-5)
    g = K.softmax_cross_entropy_backward(D(np.float32(2.0)), logp, D(t), 0.25)
    close(g, ((np.exp(lp) * t.sum(axis=1, keepdims=True) - t) * 0.5).astype(np.float32))


def test_erf():
    x = rnd(3, 7) * 2
    close(K.erf(D(x)), R.erf(x), 1e-6)


def test_channel_affine_kernels():
    x, g = rnd(2, 3, 5, 4), rnd(2, 3, 5, 4, seed=1)
    s, b = rnd(3, seed=2), rnd(3, seed=3)
    close(K.channel_affine_forward(D(x), D(s), D(b)), R.channel_affine_forward(x, s, b))
    for got, want in zip(K.channel_affine_backward(D(g), D(x), D(s)), R.channel_affine_backward(g, x, s)):
        close(got, want)


def test_relu_kernels():
    x, g = rnd(3, 7), rnd(3, 7, seed=16)
    x[0, :3] = [0.0, np.nan, -0.0]
    y = R.relu_forward(x)
    np.testing.assert_array_equal(H(K.relu_forward(D(x))), y)
    np.testing.assert_array_equal(H(K.relu_backward(D(g), D(y))), R.relu_backward(g, y))


# --------------------------------------------------------------------------- tensor-core GEMM
def test_tensor_core_selection(monkeypatch):
    from tinygrad_rad.kernels import tensorcore

    for env, want in [("0", "0"), ("off", "0"), ("1", "1"), ("on", "1"), ("auto", "auto"), ("", "auto")]:
        monkeypatch.setenv("TGR_TENSOR_CORES", env)
        assert tensorcore.mode() == want
    if not REAL_GPU:  # CUDA C cannot run in the simulator: never selected there
        monkeypatch.setenv("TGR_TENSOR_CORES", "1")
        assert not tensorcore.available() and not tensorcore.wants(np.float32)
    assert tensorcore.CU_FILE.is_file()


@pytest.mark.skipif(not REAL_GPU, reason="the CUDA C tensor-core GEMM needs a real GPU")
@pytest.mark.parametrize("dtype,tol", [(np.float32, 5e-3), (np.float16, 2e-2)])
def test_tensor_core_gemm_on_gpu(dtype, tol):  # pragma: no cover - GPU only
    from tinygrad_rad.kernels import tensorcore

    a = rnd(3, 45, 67).astype(dtype)  # stored (K, M): read transposed
    b = rnd(1, 130, 45, seed=16).astype(dtype)  # stored (N, K), broadcast over the batch
    got = H(tensorcore.gemm(D(a), D(b), trans_a=True, trans_b=True)).astype(np.float32)
    want = a.astype(np.float32).swapaxes(1, 2) @ b.astype(np.float32).swapaxes(1, 2)
    assert np.abs(got - want).max() <= tol * np.abs(want).max()
    assert tensorcore.self_test(np.dtype(dtype).name)


@pytest.mark.parametrize("sa,sb,splits", [((12, 3, 2), (3, 2, 3), 1), ((4, 3, 9), (12, 9, 2), 2)])
def test_gemm_big_batches_launch_in_chunks(monkeypatch, sa, sb, splits):
    """gridDim.z is limited (65535): pretend it is 5 and check the chunked launches."""
    monkeypatch.setattr(cuda_gemm, "MAX_GRID_Z", 5)
    a, b = rnd(*sa, dtype=np.float64), rnd(*sb, dtype=np.float64, seed=17)
    want = np.stack([a[z % sa[0]] @ b[z % sb[0]] for z in range(max(sa[0], sb[0]))])
    close(cuda_gemm.gemm(D(a), D(b), splits=splits), want, 1e-12)


def test_conv2d_large_batches_run_in_image_chunks(monkeypatch):
    """Above MAX_COLS_BYTES the column matrix is built for a few images at a time: same results."""
    monkeypatch.setattr(cuda_conv, "MAX_COLS_BYTES", 2 * 4 * 9 * 9 * 4)  # 2 images per chunk
    x, wt = rnd(5, 4, 3, 3), rnd(6, 2, 3, 3, seed=18)
    args = ((1, 1), (1, 1), (1, 1), 2)
    assert len(cuda_conv._image_chunks(5, cuda_conv._cols_bytes(4, 3, 3, 3, 3, np.float32))) == 3
    y = R.conv2d_forward(x, wt, *args)
    close(K.conv2d_forward(D(x), D(wt), *args), y)
    gy = rnd(*y.shape, seed=19)
    gx, gw = R.conv2d_backward_input(gy, wt, x.shape, *args), R.conv2d_backward_weight(gy, x, wt.shape, *args)
    close(K.conv2d_backward_input(D(gy), D(wt), x.shape, *args), gx)
    close(K.conv2d_backward_weight(D(gy), D(x), wt.shape, *args), gw, 1e-4)


# ------------------------------------------------------------------------------------ interface
def test_cuda_backend_exports_the_backend_interface():
    names = ["matmul", "erf", "relu_forward", "relu_backward", "conv2d_forward", "conv2d_backward_input",
             "conv2d_backward_weight", "max_pool2d_forward", "max_pool2d_backward", "avg_pool2d_forward",
             "avg_pool2d_backward", "batch_norm_forward_train", "batch_norm_backward",
             "channel_affine_forward", "channel_affine_backward", "softmax_cross_entropy_forward",
             "softmax_cross_entropy_backward", "adam_step"]
    missing = [n for n in names if not callable(getattr(K, n, None))]
    assert not missing, missing
    assert set(names) <= set(K.__all__)


def _adam_numpy(p, g, m, v, vmax, *, lr, beta1, beta2, eps, weight_decay, step, maximize, decoupled, amsgrad):
    """The NumPy code of optim/adam.py, written out (the reference of both fused kernels)."""
    g = -g if maximize else g
    if weight_decay != 0:
        if decoupled:
            p *= 1 - lr * weight_decay
        else:
            g = g + weight_decay * p
    m += (g - m) * (1 - beta1)
    v *= beta2
    v += (g * (1 - beta2)) * g
    if amsgrad:
        np.maximum(vmax, v, out=vmax)
    denom = np.sqrt(vmax if amsgrad else v) / math.sqrt(1 - beta2**step) + eps
    p -= (m / denom) * (lr / (1 - beta1**step))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("wd,decoupled,amsgrad,maximize",
                         [(0.0, False, False, False), (0.1, False, True, False), (0.1, True, False, True)])
def test_adam_step_matches_the_numpy_update(dtype, wd, decoupled, amsgrad, maximize):
    p, g = rnd(5, 7, dtype=dtype), rnd(5, 7, dtype=dtype, seed=30)
    m, v = rnd(5, 7, dtype=dtype, seed=31) * 0.1, np.abs(rnd(5, 7, dtype=dtype, seed=32)) * 0.01
    vmax = v * 1.5
    kw = dict(lr=1e-2, beta1=0.9, beta2=0.99, eps=1e-8, weight_decay=wd, step=3, maximize=maximize,
              decoupled=decoupled, amsgrad=amsgrad)
    want = [a.copy() for a in (p, m, v, vmax)]
    _adam_numpy(*want[:1], g, *want[1:], **kw)
    got = [D(a.copy()) for a in (p, m, v, vmax)]
    K.adam_step(got[0], D(g), got[1], got[2], got[3] if amsgrad else None, **kw)
    tol = 1e-6 if dtype == np.float32 else 1e-14  # FMA contraction on a GPU: last-bit differences
    for a, b in zip(got[:3] + got[3:] * amsgrad, want[:3] + want[3:] * amsgrad):
        close(a, b, tol)
    if not REAL_GPU:  # the simulator runs the same operations as NumPy: identical bits
        np.testing.assert_array_equal(H(got[0]), want[0])


def test_adam_step_rejects_mismatched_state():
    p = D(rnd(4))
    with pytest.raises(ValueError, match=r"adam_step: m must be .*\(4,\)"):
        K.adam_step(p, D(rnd(4)), D(rnd(3)), D(rnd(4)), None, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8,
                    weight_decay=0, step=1)


# --------------------------------------------------------------- GEMM guards, tiles, fallbacks
@pytest.mark.parametrize("sa,sb", [((0, 4), (4, 3)), ((3, 4), (4, 0)), ((3, 0), (0, 2)),
                                   ((0, 3, 4), (1, 4, 2))])
@pytest.mark.parametrize("which", ["numba", "tensorcore"])
def test_gemm_zero_sizes_return_zeros(sa, sb, which):
    from tinygrad_rad.kernels import tensorcore

    fn = cuda_gemm.gemm if which == "numba" else tensorcore.gemm
    a, b = rnd(*sa), rnd(*sb, seed=1)
    close(fn(D(a), D(b)), np.matmul(a, b))


@pytest.mark.parametrize("tiles", [cuda_gemm.GPU_TILES_WIDE, cuda_gemm.GPU_TILES_TALL])
@pytest.mark.parametrize("ta,tb", [(False, False), (True, False), (False, True), (True, True)])
def test_gemm_gpu_tile_shapes_and_layouts(tiles, ta, tb):
    """The 64-row / 64-column tiles of a real GPU, every operand layout (one compiled kernel each)."""
    a, b = rnd(70, 11), rnd(11, 9, seed=2)
    a_in = np.ascontiguousarray(a.T) if ta else a
    b_in = np.ascontiguousarray(b.T) if tb else b
    close(cuda_gemm.gemm(D(a_in), D(b_in), trans_a=ta, trans_b=tb, tiles=tiles), a @ b)


def test_pick_tiles_on_a_gpu(monkeypatch):
    monkeypatch.setattr(cuda_gemm, "simulator", lambda: False)
    assert cuda_gemm.pick_tiles(4096, 4096) == cuda_gemm.GPU_TILES
    # M = 64 (a conv forward, 64 filters, N*P columns): no half-empty 128-row tiles
    assert cuda_gemm.pick_tiles(64, 128 * 28 * 28) == cuda_gemm.GPU_TILES_WIDE
    assert cuda_gemm.pick_tiles(128 * 28 * 28, 10) == cuda_gemm.GPU_TILES_TALL
    assert cuda_gemm.pick_tiles(256, 256) == cuda_gemm.GPU_TILES_SMALL
    assert cuda_gemm.pick_tiles(4096, 4096, np.float64) == cuda_gemm.GPU_TILES_SMALL  # 8x8 doubles spill


def test_split_k_choice_and_grid_chunks():
    # the first ResNet-18 weight gradient: (64 x 9) output, K = 128 * 28 * 28: one tile -> split K
    assert cuda_gemm.auto_splits(64, 9, 128 * 28 * 28, 1) > 32
    assert cuda_gemm.auto_splits(4096, 4096, 4096, 1) == 1  # 1024 tiles already fill the GPU
    assert cuda_gemm.auto_splits(64, 64, 512, 1) == 1  # shallow K: nothing to split
    assert cuda_gemm.batch_chunks(10, 10, 1, 1, max_z=4) == [(0, 4), (4, 8), (8, 10)]
    assert cuda_gemm.batch_chunks(12, 3, 12, 2, max_z=7) == [(0, 3), (3, 6), (6, 9), (9, 12)]
    assert cuda_gemm.fit_splits(12, 3, 12, 4, max_z=7) == 2  # a chunk (3 entries) x splits must fit in 7
    assert cuda_gemm.batch_chunks(0, 0, 1) == []


def test_tensor_core_gemm_batches_and_splits_without_the_module():
    """Without the CUDA C module (here: the simulator) tensorcore.gemm still computes the product."""
    from tinygrad_rad.kernels import tensorcore

    tol = 3e-2 if REAL_GPU else 1e-5  # on a GPU the module is there: TF32 products
    a, b = rnd(3, 5, 40), rnd(1, 40, 6, seed=3)
    close(tensorcore.gemm(D(a), D(b), splits=3), a @ b, tol)
    a2, b2 = a[0], b[0]
    close(tensorcore.gemm(D(a2), D(b2)), a2 @ b2, tol)  # 2-D operands -> 2-D result
    h = rnd(2, 4, 8).astype(np.float16)
    got = tensorcore.gemm(D(h), D(h.swapaxes(1, 2).copy()))
    assert H(got).dtype == np.float16
    close(H(got).astype(np.float32), (h.astype(np.float32) @ h.astype(np.float32).swapaxes(1, 2)), 1e-2)


def test_tensor_core_gemm_falls_back_when_the_module_cannot_be_built(monkeypatch):
    from tinygrad_rad.kernels import tensorcore

    def broken():
        raise RuntimeError("tc_gemm.cu could not be built: nvrtc: cannot open source file crt/mma.h")

    monkeypatch.setattr(tensorcore, "available", lambda: True)
    monkeypatch.setattr(tensorcore, "_build", broken)
    tensorcore._module.cache_clear()
    tensorcore.self_test.cache_clear()
    try:
        a, b = rnd(6, 7), rnd(7, 5, seed=4)
        with pytest.warns(UserWarning, match="tensor-core GEMM unavailable.*crt/mma.h"):
            got = tensorcore.gemm(D(a), D(b))
        close(got, a @ b)
        assert tensorcore._module() is None and not tensorcore.self_test("float32")
        monkeypatch.setenv("TGR_TENSOR_CORES", "1")
        assert not tensorcore.wants(np.float32)  # so matmul keeps the Numba GEMM
    finally:
        tensorcore._module.cache_clear()
        tensorcore.self_test.cache_clear()


def test_tensor_core_include_dirs_hold_crt_mma_h():
    from tinygrad_rad.kernels import tensorcore

    for d in tensorcore.include_dirs():
        assert os.path.isfile(os.path.join(d, "crt", "mma.h"))
    opts = tensorcore.nvrtc_options()
    assert opts[0] == "-std=c++17" and all(o.startswith("-I") for o in opts[1:])


def test_tensor_core_block_sizes_match_the_cu_file():
    import re

    from tinygrad_rad.kernels import tensorcore

    defs = dict(re.findall(r"#define (BLOCK_[MNK]) (\d+)", tensorcore.CU_FILE.read_text()))
    assert (int(defs["BLOCK_M"]), int(defs["BLOCK_N"]), int(defs["BLOCK_K"])) == (
        tensorcore.BLOCK_M, tensorcore.BLOCK_N, tensorcore.BLOCK_K)


# ------------------------------------------------------------------------------ 1-D matmul
@pytest.mark.parametrize("sa,sb", [((5,), (5,)), ((5,), (5, 3)), ((2, 4, 5), (5,)), ((5,), (2, 5, 3)),
                                   ((3, 5), (5,))])
def test_matmul_one_d_operands_follow_numpy(sa, sb):
    a, b = rnd(*sa), rnd(*sb, seed=5)
    close(K.matmul(D(a), D(b)), np.asarray(np.matmul(a, b)))


@pytest.mark.parametrize("sa,sb", [((5,), (4,)), ((5,), (4, 3)), ((3, 5), (4,)), ((), (3,))])
def test_matmul_one_d_and_zero_d_errors_name_shapes(sa, sb):
    with pytest.raises(ValueError, match=r"matmul: .*\(.*\)"):
        K.matmul(D(np.ones(sa, np.float32)), D(np.ones(sb, np.float32)))


# ------------------------------------------------------------------------------------ streams
def test_launches_use_the_current_stream():
    """Every Numba launch names a stream (CuPy's current one, cuda_common.stream) instead of the legacy
    default stream, which a user's non-blocking CuPy stream does not wait for."""
    import re
    from pathlib import Path

    from tinygrad_rad.kernels import cuda_common

    if not REAL_GPU:
        assert cuda_common.stream() == 0
    kdir = Path(K.__file__).parent
    launches = []
    for f in sorted(kdir.glob("cuda*.py")):
        for line in f.read_text().splitlines():
            code = line.split("#")[0]
            for m in re.finditer(r"\w\[([^\[\]]+)\]\(", code):
                parts = [p.strip() for p in m.group(1).split(",")]
                if len(parts) >= 2 and not code.lstrip().startswith(("for ", "return ")):
                    launches.append((f.name, parts, line.strip()))
    assert len(launches) >= 10, launches
    bad = [ln for name, parts, ln in launches if parts[-1] != "stream()"]
    assert not bad, bad


@pytest.mark.skipif(not REAL_GPU, reason="needs CuPy streams on a real GPU")
def test_kernels_follow_a_non_blocking_stream():  # pragma: no cover - GPU only
    import cupy

    a, b = rnd(300, 200), rnd(200, 100, seed=6)
    s = cupy.cuda.Stream(non_blocking=True)
    with s:
        da, db = cupy.asarray(a), cupy.asarray(b)
        c = K.matmul(da, db) * 2
        y = K.relu_forward(c)
    s.synchronize()
    close(y, np.maximum(a @ b * 2, 0), 1e-4)


# ----------------------------------------------------------------------- two-stage reductions
@pytest.mark.parametrize("shape", [(4, 1, 6, 6), (7, 2, 5), (40, 3)])
def test_batch_norm_two_stage_sums_over_many_slices(monkeypatch, shape):
    """Few channels with many values: each channel is split over several blocks, then combined."""
    from tinygrad_rad.kernels import cuda_bn

    monkeypatch.setattr(cuda_bn, "SIM_TARGET_BLOCKS", 16)
    m = shape[0] * int(np.prod(shape[2:], dtype=np.int64))
    assert cuda_bn.n_slices(shape[1], m, 8) > 1 or m < 64
    x = rnd(*shape) * 3 + 2
    w, b = rnd(shape[1], seed=40), rnd(shape[1], seed=41)
    ref = R.batch_norm_forward_train(x, w, b, 1e-5)
    got = K.batch_norm_forward_train(D(x), D(w), D(b), 1e-5)
    for g_, r_ in zip(got, ref):
        close(g_, r_, 1e-5)
    gy = rnd(*shape, seed=42)
    for g_, r_ in zip(K.batch_norm_backward(D(gy), D(x), D(w), D(ref[1]), D(ref[2])),
                      R.batch_norm_backward(gy, x, w, ref[1], ref[2])):
        close(g_, r_, 1e-4)


def test_n_slices_fills_the_gpu_for_few_channels(monkeypatch):
    from tinygrad_rad.kernels import cuda_bn

    monkeypatch.setattr(cuda_bn, "simulator", lambda: False)
    assert cuda_bn.n_slices(64, 128 * 56 * 56, 256) == -(-cuda_bn.TARGET_BLOCKS // 64)
    assert cuda_bn.n_slices(4096, 128, 256) == 1  # many channels: one block each
    assert cuda_bn.n_slices(1, 10**8, 256) == cuda_bn.MAX_SLICES


@pytest.mark.parametrize("m,c", [(9, 2), (5, 3), (3, 13)])
def test_few_class_rows_one_warp_per_row(m, c):
    """Row kernels with 2-3 classes and a row count that is not a multiple of the rows per block."""
    x, t = rnd(m, c) * 4, np.abs(rnd(m, c, seed=43))
    lp = _log_softmax(x)
    close(K.log_softmax(D(x)), lp)
    close(K.sum_rows(D(t)), t.sum(axis=1))
    loss, logp = K.softmax_cross_entropy_forward(D(x), D(t), 1 / m)
    assert math.isclose(float(H(loss)), float(-(t * lp).sum() / m), rel_tol=1e-5)
    close(logp, lp)


def test_total_is_two_stage(monkeypatch):
    from tinygrad_rad.kernels import cuda_softmax

    monkeypatch.setattr(cuda_softmax, "MAX_PARTS", 3)  # 101 values -> 3 partials -> 1
    v = rnd(101, dtype=np.float64)
    got = H(cuda_softmax.total(D(v)))
    assert got.shape == (1,) and math.isclose(float(got[0]), float(v.sum()), rel_tol=1e-12)
    assert float(H(cuda_softmax.total(D(np.zeros(0, np.float32))))[0]) == 0.0


def test_softmax_cross_entropy_float64_and_empty():
    x, t = rnd(6, 4, dtype=np.float64), np.abs(rnd(6, 4, dtype=np.float64, seed=44))
    loss, logp = K.softmax_cross_entropy_forward(D(x), D(t), 0.5)
    assert H(loss).dtype == np.float64
    assert math.isclose(float(H(loss)), float(-(t * _log_softmax(x)).sum() * 0.5), rel_tol=1e-12)
    loss0, logp0 = K.softmax_cross_entropy_forward(D(np.zeros((0, 3), np.float32)),
                                                   D(np.zeros((0, 3), np.float32)), 1.0)
    assert float(H(loss0)) == 0.0 and H(logp0).shape == (0, 3)


def test_avg_pool_float32_stays_float32():
    x = rnd(1, 2, 5, 5)
    y = K.avg_pool2d_forward(D(x), (3, 3), (2, 2), (1, 1), False)
    assert H(y).dtype == np.float32
    close(y, R.avg_pool2d_forward(x, (3, 3), (2, 2), (1, 1), False))


def test_tensor_core_bfloat16_bit_patterns():
    """CuPy has no bfloat16 dtype: bf16 operands travel as uint16 bit patterns (precision="bfloat16")."""
    from tinygrad_rad.kernels import tensorcore

    a, b = rnd(2, 6, 9), rnd(2, 9, 5, seed=45)
    ab, bb = tensorcore.bf16_bits(a), tensorcore.bf16_bits(b)
    assert ab.dtype == np.uint16
    back = tensorcore._as_f32(ab, True)
    assert np.abs(back - a).max() <= 2**-8 * np.abs(a).max()  # 8 significant bits
    got = tensorcore.gemm(D(ab), D(bb), precision="bfloat16")
    assert H(got).dtype == np.float32
    close(got, back @ tensorcore._as_f32(bb, True), 1e-5)
    with pytest.raises(TypeError, match="precision"):
        tensorcore.gemm(D(a), D(b), precision="bfloat16")


# ------------------------------------------------------------------- realistic sizes (GPU only)
def _rel(got, want) -> float:
    got, want = H(got).astype(np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, (got.shape, want.shape)
    assert np.isfinite(got).all()
    return float(np.linalg.norm(got - want) / (np.linalg.norm(want) + 1e-300))


def _gpu_case(name):  # pragma: no cover - GPU only
    from tinygrad_rad.kernels import tensorcore

    rng = np.random.default_rng(abs(hash(name)) % 2**32)

    def r(*s, dtype=np.float32):
        return rng.standard_normal(s).astype(dtype)

    if name.startswith("sgemm"):
        ta, tb = name.endswith(("tn", "tt")), name.endswith(("nt", "tt"))
        a, b = r(1000, 777), r(777, 1100)
        got = cuda_gemm.gemm(D(a.T.copy() if ta else a), D(b.T.copy() if tb else b), trans_a=ta, trans_b=tb)
        return [(_rel(got, a.astype(np.float64) @ b), 1e-5)]
    if name == "dgemm_batched_split":
        a, b = r(3, 130, 2000, dtype=np.float64), r(1, 2000, 70, dtype=np.float64)
        return [(_rel(cuda_gemm.gemm(D(a), D(b), splits=4), a @ b), 1e-12)]
    if name == "gemm_batch_over_grid_limit":
        a, b = r(70000, 8, 5), r(1, 5, 6)
        outs = [(_rel(cuda_gemm.gemm(D(a), D(b)), a.astype(np.float64) @ b), 1e-5)]
        outs.append((_rel(tensorcore.gemm(D(a), D(b), splits=2), a.astype(np.float64) @ b), 5e-3))
        return outs
    if name.startswith("tc_"):  # (the CUDA C module must build: no silent fallback here)
        assert tensorcore._module() is not None, tensorcore._BUILD_ERROR
    if name in ("tc_tf32", "tc_f16", "tc_bf16"):
        prec = name[3:]
        a, b = r(2, 1000, 600), r(1, 600, 900)
        if prec == "bf16":
            ab, bb = tensorcore.bf16_bits(a), tensorcore.bf16_bits(b)
            got = tensorcore.gemm(D(ab), D(bb), precision="bfloat16")
            want = tensorcore._as_f32(ab, True).astype(np.float64) @ tensorcore._as_f32(bb, True)
            return [(_rel(got, want), 1e-5)]
        dt = np.float32 if prec == "tf32" else np.float16
        a, b = a.astype(dt), b.astype(dt)
        got = tensorcore.gemm(D(a), D(b))
        return [(_rel(got, a.astype(np.float64) @ b.astype(np.float64)), 5e-3 if prec == "tf32" else 2e-3)]
    if name == "tc_split_k_weight_grad":  # 64 x 9 output, K = 20000: split over many blocks
        a, b = r(64, 20000), r(9, 20000)
        got = tensorcore.gemm(D(a), D(b), trans_b=True)
        return [(_rel(got, a.astype(np.float64) @ b.T), 5e-3)]
    if name == "conv":
        x, w = r(16, 64, 28, 28), r(128, 64, 3, 3) * 0.05
        args = ((2, 2), (1, 1), (1, 1), 1)
        y = R.conv2d_forward(x.astype(np.float64), w.astype(np.float64), *args)
        gy = r(*y.shape)
        gx = R.conv2d_backward_input(gy.astype(np.float64), w.astype(np.float64), x.shape, *args)
        gw = R.conv2d_backward_weight(gy.astype(np.float64), x.astype(np.float64), w.shape, *args)
        return [(_rel(K.conv2d_forward(D(x), D(w), *args), y), 1e-5),
                (_rel(K.conv2d_backward_input(D(gy), D(w), x.shape, *args), gx), 1e-5),
                (_rel(K.conv2d_backward_weight(D(gy), D(x), w.shape, *args), gw), 1e-5)]
    if name == "batch_norm":
        out = []
        for shape in [(64, 32, 28, 28), (256, 512)]:
            x, gy = r(*shape) * 2 + 1, r(*shape)
            w, b = r(shape[1]), r(shape[1])
            x64, w64, b64 = (a.astype(np.float64) for a in (x, w, b))
            ref = R.batch_norm_forward_train(x64, w64, b64, 1e-5)
            got = K.batch_norm_forward_train(D(x), D(w), D(b), 1e-5)
            out += [(_rel(g_, r_), 1e-5) for g_, r_ in zip(got, ref)]
            refb = R.batch_norm_backward(gy.astype(np.float64), x.astype(np.float64), w.astype(np.float64),
                                         ref[1], ref[2])
            gotb = K.batch_norm_backward(D(gy), D(x), D(w), D(ref[1].astype(np.float32)),
                                         D(ref[2].astype(np.float32)))
            out += [(_rel(g_, r_), 1e-4) for g_, r_ in zip(gotb, refb)]
        return out
    if name == "softmax_ce":
        out = []
        for m, c in [(4096, 10), (1000, 2), (64, 1000)]:
            x, t = r(m, c) * 3, np.abs(r(m, c))
            lp = _log_softmax(x.astype(np.float64))
            loss, logp = K.softmax_cross_entropy_forward(D(x), D(t), 1 / m)
            out += [(_rel(logp, lp), 1e-6), (_rel(H(loss).reshape(1), [-(t * lp).sum() / m]), 1e-5)]
            g = K.softmax_cross_entropy_backward(D(np.float32(1.0)), logp, D(t), 1 / m)
            out.append((_rel(g, (np.exp(lp) * t.sum(axis=1, keepdims=True) - t) / m), 1e-5))
        return out
    if name == "pooling":
        x = r(32, 64, 28, 28)
        geo = ((3, 3), (2, 2), (1, 1), (1, 1))
        y, idx = R.max_pool2d_forward(x, *geo)
        got_y, got_idx = K.max_pool2d_forward(D(x), *geo)
        gy = r(*y.shape)
        gx = R.max_pool2d_backward(gy, idx, x.shape, *geo)
        out = [(_rel(got_y, y), 0.0), (float((H(got_idx) != idx).mean()), 0.0),
               (_rel(K.max_pool2d_backward(D(gy), got_idx, x.shape, *geo), gx), 1e-6)]
        ageo = ((3, 3), (2, 2), (1, 1), False)
        ya = R.avg_pool2d_forward(x.astype(np.float64), *ageo)
        gya = r(*ya.shape)
        gxa = R.avg_pool2d_backward(gya.astype(np.float64), x.shape, *ageo)
        out += [(_rel(K.avg_pool2d_forward(D(x), *ageo), ya), 1e-6),
                (_rel(K.avg_pool2d_backward(D(gya), x.shape, *ageo), gxa), 1e-6)]
        return out
    if name == "adam":
        p, g = r(1_000_003), r(1_000_003)
        m, v = r(1_000_003) * 0.1, np.abs(r(1_000_003)) * 0.01
        kw = dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01, step=5, maximize=False,
                  decoupled=True, amsgrad=False)
        want = [a.astype(np.float64) for a in (p, m, v)]
        _adam_numpy(want[0], g.astype(np.float64), want[1], want[2], None, **kw)
        got = [D(a.copy()) for a in (p, m, v)]
        K.adam_step(got[0], D(g), got[1], got[2], None, **kw)
        return [(_rel(a, b), 1e-6) for a, b in zip(got, want)]
    raise KeyError(name)


GPU_CASES = ["sgemm_nn", "sgemm_tn", "sgemm_nt", "sgemm_tt", "dgemm_batched_split",
             "gemm_batch_over_grid_limit", "tc_tf32", "tc_f16", "tc_bf16", "tc_split_k_weight_grad", "conv",
             "batch_norm", "softmax_ce", "pooling", "adam"]


@pytest.mark.skipif(not REAL_GPU, reason="realistic sizes run on a real GPU only (TGR_REAL_GPU=1)")
@pytest.mark.parametrize("case", GPU_CASES)
def test_realistic_sizes_on_gpu(case):  # pragma: no cover - GPU only
    """Every kernel at the sizes training uses, against a float64 CPU reference (relative L2 error)."""
    for i, (err, tol) in enumerate(_gpu_case(case)):
        assert err <= tol, f"{case} output {i}: relative error {err:.3e} > {tol:.0e}"
