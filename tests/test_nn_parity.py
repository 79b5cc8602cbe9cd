"""PyTorch parity at the edges of nn.functional and the layers (issue 12): each case compares forward and
gradient with PyTorch when it is installed (skipped cleanly otherwise) and with float64 central
differences (``tinygrad_rad.gradcheck``, no torch needed); errors are checked up front, in PyTorch's
wording where PyTorch raises."""

from __future__ import annotations

import os
import re
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from oracle import HAS_TORCH, check_op

import tinygrad_rad as tr
import tinygrad_rad.nn.functional as F
from tinygrad_rad import models, nn

if HAS_TORCH:
    import torch
    import torch.nn.functional as TF

needs_torch = pytest.mark.skipif(not HAS_TORCH, reason="PyTorch (the test oracle) is not installed")
FAST = settings(max_examples=20, deadline=None,
                derandomize=os.environ.get("TGR_HYPOTHESIS_RANDOM", "0") in ("", "0"))
RNG = np.random.default_rng(0)


def _torch_message(fn) -> str | None:
    """The message PyTorch raises for the same call (None without torch)."""
    if not HAS_TORCH:
        return None
    with pytest.raises(Exception) as info:
        fn()
    return str(info.value).split("\n")[0]


def _raises_like_torch(ours, theirs, exc=ValueError, match: str | None = None) -> None:
    """``ours()`` raises ``exc``; its message holds PyTorch's message for ``theirs()`` (or ``match``)."""
    with pytest.raises(exc) as info:
        ours()
    if match is not None:
        assert re.search(match, str(info.value)), str(info.value)
    want = _torch_message(theirs) if theirs is not None else None
    if want is not None:
        assert want in str(info.value), f"PyTorch says {want!r}, we say {str(info.value)!r}"


# ------------------------------------------------------------------------------------ class weights
WEIGHTED = [  # (weights, targets): sums 1, -1, -2 ... (PyTorch divides by the sum as it is)
    ([1.0, -1.0, 0.5], [0, 1, 0, 2]),
    ([1.0, -1.0, 0.5], [0, 1, 1, 1]),
    ([1.0, -2.0, 0.0], [0, 1, 1, 2]),
    ([-1.0, -0.5, -2.0], [0, 1, 2, 2]),
    ([1.0, -1.0, 3.0], [0, 1, -100, 2]),
]


@pytest.mark.parametrize("fn", ["cross_entropy", "nll_loss"])
@pytest.mark.parametrize("weights,targets", WEIGHTED)
def test_class_weights_with_sum_not_positive(fn, weights, targets):
    t = np.array(targets)
    w = np.array(weights)
    ours = getattr(F, fn)
    theirs = getattr(TF, fn) if HAS_TORCH else None
    out = check_op(lambda x, tt: ours(x, tt, weight=tr.Tensor(w)),
                   lambda x, tt: theirs(x, tt, weight=torch.tensor(w)), [(4, 3), t])
    assert np.isfinite(out.item())  # a value, not the nan of a refused "sum <= 0"


@pytest.mark.parametrize("fn", ["cross_entropy", "nll_loss"])
def test_class_weights_summing_to_zero_divide_by_zero(fn):
    # w[t] sums to 0 with targets present: 0-division as in PyTorch (inf or nan, never a silent 0)
    x = RNG.standard_normal((3, 2))
    w, t = np.array([1.0, -1.0]), np.array([0, 1, -100])
    a = tr.Tensor(x, requires_grad=True)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        loss = getattr(F, fn)(a, tr.Tensor(t), weight=tr.Tensor(w))
        loss.backward()
    assert not np.isfinite(loss.item())
    assert not np.isfinite(a.grad.numpy()).all()
    if HAS_TORCH:
        want = getattr(TF, fn)(torch.tensor(x), torch.tensor(t), weight=torch.tensor(w)).item()
        np.testing.assert_equal(loss.item(), want)


@pytest.mark.parametrize("fn", ["cross_entropy", "nll_loss"])
def test_every_target_ignored_is_nan_with_zero_gradient(fn):
    a = tr.Tensor(RNG.standard_normal((3, 2)), requires_grad=True)
    loss = getattr(F, fn)(a, tr.Tensor(np.array([-100, -100, -100])), weight=tr.Tensor(np.array([1.0, -1.0])))
    loss.backward()
    assert np.isnan(loss.item())
    np.testing.assert_array_equal(a.grad.numpy(), 0.0)


@pytest.mark.parametrize("fn", ["cross_entropy", "nll_loss"])
def test_class_weight_checks(fn):
    x, t = tr.randn(2, 3), tr.tensor([0, 1])
    with pytest.raises(ValueError, match="non-finite"):
        getattr(F, fn)(x, t, weight=tr.tensor([1.0, float("nan"), 1.0]))
    _raises_like_torch(lambda: getattr(F, fn)(x, t, weight=tr.tensor([1.0, 2.0])),
                       lambda: getattr(TF, fn)(torch.randn(2, 3), torch.tensor([0, 1]),
                                               weight=torch.tensor([1.0, 2.0])),
                       match="weight tensor should be defined either for all 3 classes")


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("shape", [(4, 3), (2, 3, 2, 2)])
@pytest.mark.parametrize("smoothing,weighted", [(0.0, False), (0.2, True)])
def test_cross_entropy_probability_target_gets_a_gradient(reduction, shape, smoothing, weighted):
    w = np.array([1.0, 2.0, 0.5]) if weighted else None

    def ours(x, p):
        return F.cross_entropy(x, p, weight=None if w is None else tr.Tensor(w), reduction=reduction,
                               label_smoothing=smoothing)

    def theirs(x, p):
        return TF.cross_entropy(x, p, weight=None if w is None else torch.tensor(w), reduction=reduction,
                                label_smoothing=smoothing)

    probs = RNG.random(shape)
    probs /= probs.sum(axis=1, keepdims=True)
    check_op(ours, theirs, [shape, probs])
    # the fused path (target without grad) gives the same value
    x = tr.Tensor(RNG.standard_normal(shape))
    np.testing.assert_allclose(ours(x, tr.Tensor(probs)).numpy(),
                               ours(x, tr.Tensor(probs, requires_grad=True)).detach().numpy(), rtol=1e-12)


def test_cross_entropy_probability_target_grad_flag():
    p = tr.Tensor(np.full((2, 3), 1 / 3), requires_grad=True)
    F.cross_entropy(tr.randn(2, 3, dtype="float64"), p).backward()
    assert p.grad is not None and p.grad.shape == (2, 3)


@pytest.mark.parametrize("fn", ["cross_entropy", "nll_loss"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_unbatched_class_index_losses(fn, reduction):
    ours, theirs = getattr(F, fn), getattr(TF, fn) if HAS_TORCH else None
    out = check_op(lambda x, t: ours(x, t, reduction=reduction),
                   lambda x, t: theirs(x, t, reduction=reduction), [(4,), np.array(2)])
    assert out.shape == ()


def test_unbatched_probability_target():
    probs = np.array([0.1, 0.2, 0.3, 0.4])
    check_op(lambda x, p: F.cross_entropy(x, p, label_smoothing=0.1),
             lambda x, p: TF.cross_entropy(x, p, label_smoothing=0.1), [(4,), probs])


REGRESSION = ["mse_loss", "l1_loss", "smooth_l1_loss", "binary_cross_entropy_with_logits"]


@pytest.mark.parametrize("fn", REGRESSION)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_losses_on_0d_tensors(fn, reduction):
    theirs = getattr(TF, fn) if HAS_TORCH else None
    target = np.array(0.7)
    check_op(lambda x: getattr(F, fn)(x, tr.Tensor(target), reduction=reduction),
             lambda x: theirs(x, torch.tensor(target), reduction=reduction), [()])


@pytest.mark.parametrize("fn", REGRESSION + ["binary_cross_entropy", "cross_entropy", "nll_loss"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_losses_on_empty_batches(fn, reduction):
    x = tr.Tensor(np.zeros((0, 3)), requires_grad=True)
    if fn in ("cross_entropy", "nll_loss"):
        target = tr.Tensor(np.zeros(0, np.int64))
    else:
        target = tr.Tensor(np.zeros((0, 3)))
    out = getattr(F, fn)(x, target, reduction=reduction)
    if reduction == "none":
        assert out.shape == ((0,) if fn in ("cross_entropy", "nll_loss") else (0, 3))
    else:
        assert out.shape == () and (np.isnan(out.item()) if reduction == "mean" else out.item() == 0)
        out.backward()
        assert x.grad.shape == (0, 3)
    if HAS_TORCH:
        tt = torch.zeros(0, dtype=torch.long) if fn in ("cross_entropy", "nll_loss") else torch.zeros(0, 3)
        want = getattr(TF, fn)(torch.zeros(0, 3), tt, reduction=reduction)
        np.testing.assert_array_equal(out.numpy(), want.numpy())


@needs_torch
@FAST
@given(n=st.integers(1, 3), c=st.integers(2, 4), spatial=st.lists(st.integers(1, 3), max_size=2),
       smoothing=st.sampled_from([0.0, 0.1]), weighted=st.booleans(), ignore=st.booleans(),
       reduction=st.sampled_from(["mean", "sum", "none"]))
def test_cross_entropy_hypothesis_shapes(n, c, spatial, smoothing, weighted, ignore, reduction):
    rng = np.random.default_rng(n * 100 + c * 10 + len(spatial))
    t = rng.integers(0, c, (n,) + tuple(spatial))
    if ignore:
        t.flat[0] = -100
    w = rng.uniform(-1, 2, c) if weighted else None
    kw = dict(reduction=reduction, label_smoothing=smoothing)
    check_op(lambda x, tt: F.cross_entropy(x, tt, weight=None if w is None else tr.Tensor(w), **kw),
             lambda x, tt: TF.cross_entropy(x, tt, weight=None if w is None else torch.tensor(w), **kw),
             [(n, c) + tuple(spatial), t], gradcheck=False)


def test_binary_cross_entropy_input_out_of_range():
    _raises_like_torch(lambda: F.binary_cross_entropy(tr.tensor([1.5]), tr.tensor([1.0])),
                       lambda: TF.binary_cross_entropy(torch.tensor([1.5]), torch.tensor([1.0])))


# -------------------------------------------------------------------------------------- interpolate
INTERP = [
    ((1, 2, 5), "nearest", dict(scale_factor=2)),
    ((1, 2, 5), "nearest", dict(size=3)),
    ((1, 2, 5), "linear", dict(scale_factor=1.7)),
    ((1, 2, 5), "linear", dict(size=8, align_corners=True)),
    ((1, 2, 4, 5), "nearest", dict(size=(7, 3))),
    ((1, 2, 4, 5), "nearest-exact", dict(scale_factor=1.5)),
    ((1, 2, 4, 5), "bilinear", dict(scale_factor=2)),
    ((1, 2, 4, 5), "bilinear", dict(size=(3, 7), align_corners=True)),
    ((1, 1, 3, 4, 2), "nearest", dict(scale_factor=2)),
    ((1, 1, 3, 4, 2), "nearest", dict(size=(2, 5, 3))),
    ((1, 1, 3, 4, 2), "trilinear", dict(scale_factor=(1.5, 0.5, 2))),
    ((1, 1, 3, 3, 2), "trilinear", dict(size=(4, 2, 3), align_corners=True)),
    ((1, 1, 3, 3, 2), "trilinear", dict(scale_factor=1.5, recompute_scale_factor=True)),
]


@pytest.mark.parametrize("shape,mode,kw", INTERP)
def test_interpolate_3d_4d_5d(shape, mode, kw):
    check_op(lambda x: F.interpolate(x, mode=mode, **kw),
             lambda x: TF.interpolate(x, mode=mode, **kw), [shape])


@needs_torch
@FAST
@given(dims=st.integers(1, 3), data=st.data())
def test_interpolate_hypothesis_sizes(dims, data):
    mode = data.draw(st.sampled_from(["nearest", {1: "linear", 2: "bilinear", 3: "trilinear"}[dims]]))
    spatial = tuple(data.draw(st.integers(1, 5)) for _ in range(dims))
    if data.draw(st.booleans()):
        kw = dict(size=tuple(data.draw(st.integers(1, 7)) for _ in range(dims)))
    else:
        factors = st.sampled_from([0.5, 1.0, 1.5, 2.0, 3.0])
        kw = dict(scale_factor=tuple(data.draw(factors) for _ in range(dims)))
        if min(int(n * f) for n, f in zip(spatial, kw["scale_factor"])) < 1:
            return
    if mode != "nearest":
        kw["align_corners"] = data.draw(st.booleans())
    check_op(lambda x: F.interpolate(x, mode=mode, **kw), lambda x: TF.interpolate(x, mode=mode, **kw),
             [(2, 1) + spatial], gradcheck=False)


def test_interpolate_bilinear_uint8_is_resized_not_zeroed():
    const = np.full((1, 1, 4, 4), 200, dtype=np.uint8)
    y = F.interpolate(tr.Tensor(const), scale_factor=2, mode="bilinear")
    assert y.dtype == np.uint8 and y.shape == (1, 1, 8, 8)
    np.testing.assert_array_equal(y.numpy(), 200)
    img = RNG.integers(0, 256, (2, 3, 7, 9)).astype(np.uint8)
    for kw in [dict(size=(13, 5)), dict(size=(13, 5), align_corners=True), dict(scale_factor=2),
               dict(size=(3, 4))]:
        y = F.interpolate(tr.Tensor(img), mode="bilinear", **kw).numpy()
        exact = F.interpolate(tr.Tensor(img.astype(np.float64)), mode="bilinear", **kw).numpy()
        assert y.dtype == np.uint8
        assert np.abs(y - exact).max() <= 0.5 + 1e-9  # rounded to nearest
        if HAS_TORCH:  # PyTorch's uint8 path uses fixed-point weights: equal to within 1
            want = TF.interpolate(torch.tensor(img), mode="bilinear", **kw).numpy()
            assert np.abs(y.astype(int) - want.astype(int)).max() <= 1


def test_interpolate_nearest_integer_labels_are_exact():
    labels = RNG.integers(0, 5, (1, 1, 4, 6))
    y = F.interpolate(tr.Tensor(labels), size=(8, 3), mode="nearest")
    assert y.dtype == labels.dtype
    ref = F.interpolate(tr.Tensor(labels.astype(np.float64)), size=(8, 3), mode="nearest").numpy()
    np.testing.assert_array_equal(y.numpy(), ref)


def test_interpolate_linear_on_other_integers_raises():
    with pytest.raises(NotImplementedError, match="int32"):
        F.interpolate(tr.Tensor(np.ones((1, 1, 4, 4), np.int32)), scale_factor=2, mode="bilinear")


def test_interpolate_nearest_keeps_nan_in_place():
    x = np.zeros((1, 1, 2, 2))
    x[0, 0, 0, 0] = np.nan
    y = F.interpolate(tr.Tensor(x), scale_factor=2).numpy()
    assert np.isnan(y).sum() == 4  # a matrix product would have spread the nan over the row


BAD_INTERP = [  # (arguments, PyTorch's exact message expected); bicubic is not supported here
    (dict(size=0), True),
    (dict(size=(0, 3), mode="bilinear"), True),
    (dict(size=-1), True),
    (dict(scale_factor=-1.0), True),
    (dict(scale_factor=0.0), True),
    (dict(scale_factor=0.1), True),
    (dict(size=(2, 3, 4)), True),
    (dict(scale_factor=(2, 3, 4)), True),
    (dict(size=3, scale_factor=2), True),
    (dict(scale_factor=2, mode="nearest", align_corners=True), False),
]


@pytest.mark.parametrize("kw,same_text", BAD_INTERP)
def test_interpolate_bad_sizes_checked_up_front(kw, same_text):
    _raises_like_torch(lambda: F.interpolate(tr.randn(1, 2, 4, 4), **kw),
                       (lambda: TF.interpolate(torch.randn(1, 2, 4, 4), **kw)) if same_text else None,
                       match=None if same_text else "align_corners option can only be set")


@pytest.mark.parametrize("shape,mode", [((1, 2, 5), "bilinear"), ((1, 2, 4, 4), "linear"),
                                        ((1, 2, 3, 3, 3), "bilinear"), ((1, 2, 4, 4), "trilinear"),
                                        ((2, 5), "nearest"), ((1, 2, 4, 4), "foo")])
def test_interpolate_mode_and_dims_must_match(shape, mode):
    # PyTorch's wording; the list of modes names only those supported here
    same_text = len(shape) >= 3 and mode != "foo"
    theirs = (lambda: TF.interpolate(torch.randn(*shape), scale_factor=2, mode=mode)) if same_text else None
    listed = (rf"Only 3D, 4D and 5D input Tensors supported \(got {len(shape)}D\) for the modes: nearest "
              rf".*\(got {mode}\)")
    _raises_like_torch(lambda: F.interpolate(tr.randn(*shape), scale_factor=2, mode=mode), theirs,
                       exc=NotImplementedError, match=None if same_text else listed)


def test_interpolate_empty_batch_and_empty_spatial():
    assert F.interpolate(tr.randn(0, 2, 4, 4), scale_factor=2).shape == (0, 2, 8, 8)
    _raises_like_torch(lambda: F.interpolate(tr.randn(1, 2, 0, 4), scale_factor=2),
                       lambda: TF.interpolate(torch.randn(1, 2, 0, 4), scale_factor=2))


# ----------------------------------------------------------------------------- pool / conv arguments
X4 = (1, 2, 4, 4)
BAD_POOL = [
    ("max_pool2d", dict(kernel_size=2, stride=0)),
    ("avg_pool2d", dict(kernel_size=2, stride=0)),
    ("max_pool2d", dict(kernel_size=2, stride=-1)),
    ("avg_pool2d", dict(kernel_size=2, stride=(1, -2))),
    ("max_pool2d", dict(kernel_size=5)),
    ("avg_pool2d", dict(kernel_size=5)),
    ("max_pool2d", dict(kernel_size=3, stride=1, dilation=2)),
    ("max_pool2d", dict(kernel_size=2, padding=2)),
    ("avg_pool2d", dict(kernel_size=2, padding=2)),
    ("max_pool2d", dict(kernel_size=2, padding=-1)),
    ("max_pool2d", dict(kernel_size=2, dilation=0)),
    ("max_pool2d", dict(kernel_size=0, stride=1)),
]


@pytest.mark.parametrize("fn,kw", BAD_POOL)
def test_pool_arguments_checked_up_front(fn, kw):
    _raises_like_torch(lambda: getattr(F, fn)(tr.randn(*X4), **kw),
                       lambda: getattr(TF, fn)(torch.randn(*X4), **kw))


@pytest.mark.parametrize("layer", ["MaxPool2d", "AvgPool2d"])
def test_pool_module_stride_zero_raises(layer):
    assert getattr(nn, layer)(2).stride == 2 and getattr(nn, layer)(2, stride=None).stride == 2
    _raises_like_torch(lambda: getattr(nn, layer)(2, stride=0)(tr.randn(*X4)),
                       lambda: getattr(torch.nn, layer)(2, stride=0)(torch.randn(*X4)),
                       match="stride should not be zero")


BAD_CONV_T = [
    dict(stride=0), dict(stride=(1, -1)), dict(padding=-1), dict(dilation=0), dict(padding=5),
]


@pytest.mark.parametrize("kw", BAD_CONV_T)
def test_conv_transpose2d_arguments_checked_up_front(kw):
    _raises_like_torch(lambda: F.conv_transpose2d(tr.randn(*X4), tr.randn(2, 3, 3, 3), **kw),
                       lambda: TF.conv_transpose2d(torch.randn(*X4), torch.randn(2, 3, 3, 3), **kw))


@pytest.mark.parametrize("kw,w", [(dict(stride=0), (3, 2, 3, 3)), (dict(), (3, 2, 5, 5)),
                                  (dict(padding=-1), (3, 2, 3, 3)), (dict(dilation=0), (3, 2, 3, 3))])
def test_conv2d_arguments_checked_up_front(kw, w):
    _raises_like_torch(lambda: F.conv2d(tr.randn(*X4), tr.randn(*w), **kw),
                       lambda: TF.conv2d(torch.randn(*X4), torch.randn(*w), **kw))


@pytest.mark.parametrize("fn", ["adaptive_avg_pool2d", "adaptive_max_pool2d"])
@pytest.mark.parametrize("size", [0, (0, 2), (3, 0)])
def test_adaptive_pool_to_zero_is_empty(fn, size):
    x = tr.Tensor(RNG.standard_normal((2, 3, 4, 5)), requires_grad=True)
    y = getattr(F, fn)(x, size)
    want = (2, 3) + ((size, size) if isinstance(size, int) else size)
    assert y.shape == want
    if HAS_TORCH:
        assert tuple(getattr(TF, fn)(torch.randn(2, 3, 4, 5), size).shape) == want
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), 0.0)


@pytest.mark.parametrize("fn", ["adaptive_avg_pool2d", "adaptive_max_pool2d"])
def test_adaptive_pool_bad_sizes(fn):
    _raises_like_torch(lambda: getattr(F, fn)(tr.randn(1, 2, 4, 4), -1),
                       (lambda: TF.adaptive_avg_pool2d(torch.randn(1, 2, 4, 4), -1)) if "avg" in fn else None,
                       match="elements of output_size must be greater than or equal to 0")
    with pytest.raises(ValueError, match="non-zero size for non-batch dimensions"):
        getattr(F, fn)(tr.randn(1, 2, 0, 4), 2)


POOL_ARGS = [
    dict(kernel_size=2),
    dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=3, stride=2, ceil_mode=True),
    dict(kernel_size=2, dilation=2, padding=1),
    dict(kernel_size=(2, 3), stride=(1, 2)),
    dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
]


@pytest.mark.parametrize("dtype", ["int64", "int32", "int16", "int8", "uint8"])
@pytest.mark.parametrize("kw", POOL_ARGS)
def test_max_pool2d_on_integer_tensors(dtype, kw):
    low = 0 if dtype == "uint8" else -50
    for x in (RNG.integers(low, 50, (2, 3, 7, 8)).astype(dtype), np.zeros((1, 2, 5, 5), dtype)):
        y, idx = F.max_pool2d(tr.Tensor(x), return_indices=True, **kw)
        assert y.dtype == np.dtype(dtype)
        # the same as pooling the values as floats (exact for these small integers)
        yf, idf = F.max_pool2d(tr.Tensor(x.astype(np.float64)), return_indices=True, **kw)
        np.testing.assert_array_equal(y.numpy(), yf.numpy())
        if HAS_TORCH:
            yt, it = TF.max_pool2d(torch.tensor(x), return_indices=True, **kw)
            np.testing.assert_array_equal(y.numpy(), yt.numpy())
            np.testing.assert_array_equal(idx.numpy(), it.numpy())


def test_max_pool2d_int_extremes_and_bool():
    x = np.array([[[[np.iinfo(np.int64).max, np.iinfo(np.int64).min], [np.iinfo(np.int64).max - 1, 0]]]])
    assert F.max_pool2d(tr.Tensor(x), 2).item() == np.iinfo(np.int64).max  # no float64 rounding
    _raises_like_torch(lambda: F.max_pool2d(tr.Tensor(np.ones((1, 1, 4, 4), bool)), 2),
                       lambda: TF.max_pool2d(torch.ones(1, 1, 4, 4, dtype=torch.bool), 2),
                       exc=NotImplementedError)


# ------------------------------------------------------------------------------------ empty batches
@pytest.mark.parametrize("name", ["SmallCNN", "resnet18"])
def test_eval_model_on_empty_batch(name):
    model = models.SmallCNN(num_classes=3) if name == "SmallCNN" else models.resnet18(num_classes=3,
                                                                                       in_channels=1)
    model.eval()
    y = model(tr.randn(0, 1, 28, 28))
    assert y.shape == (0, 3)
    y.sum().backward()
    assert all(p.grad is not None and not p.grad.numpy().any() for p in model.parameters())


@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm_eval_on_empty_batch(affine):
    bn = nn.BatchNorm2d(3, affine=affine).eval()
    assert bn(tr.randn(0, 3, 4, 4)).shape == (0, 3, 4, 4)
    assert nn.BatchNorm1d(3).eval()(tr.randn(0, 3)).shape == (0, 3)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        nn.BatchNorm2d(3).train()(tr.randn(0, 3, 4, 4))


# -------------------------------------------------------------------------------------------- conv1d
CONV1D = [dict(), dict(stride=2, padding=1), dict(padding="same", dilation=2), dict(padding="valid"),
          dict(groups=2, padding=1)]


@pytest.mark.parametrize("kw", CONV1D)
@pytest.mark.parametrize("bias", [True, False])
def test_conv1d(kw, bias):
    cin_g = 2 // kw.get("groups", 1)
    shapes = [(2, 2, 7), (4, cin_g, 3)] + ([(4,)] if bias else [])
    check_op(lambda *a: F.conv1d(*a, **kw), lambda *a: TF.conv1d(*a, **kw), shapes)


def test_conv1d_module_matches_torch_layout():
    layer = nn.Conv1d(3, 8, 5, padding=2, bias=True)
    assert layer.weight.shape == (8, 3, 5) and layer.bias.shape == (8,)
    assert layer(tr.randn(2, 3, 40)).shape == (2, 8, 40)
    assert "Conv1d(3, 8, kernel_size=(5,), stride=(1,), padding=(2,))" in repr(layer)
    if HAS_TORCH:
        t = torch.nn.Conv1d(3, 8, 5, padding=2).double()
        layer = nn.Conv1d(3, 8, 5, padding=2).double()
        layer.load_state_dict({k: v.detach().numpy() for k, v in t.state_dict().items()})
        x = RNG.standard_normal((2, 3, 11))
        want = t(torch.tensor(x)).detach().numpy()
        np.testing.assert_allclose(layer(tr.Tensor(x)).numpy(), want, rtol=1e-12)
    with pytest.raises(ValueError, match="3-D input"):
        F.conv1d(tr.randn(2, 3, 4, 4), tr.randn(4, 3, 3))


# ----------------------------------------------------------------------------------------- pad < 0
@pytest.mark.parametrize("amounts", [(-1, 2), (-1, -1, 1, -2), (0, -3), (2, 1, -1, 0, -1, 1), (-2, -2)])
def test_pad_negative_crops(amounts):
    check_op(lambda x: F.pad(x, amounts), lambda x: TF.pad(x, amounts), [(2, 3, 4, 4)])


def test_pad_negative_too_much_raises():
    _raises_like_torch(lambda: F.pad(tr.randn(1, 2, 4, 4), (-3, -2)),
                       lambda: TF.pad(torch.randn(1, 2, 4, 4), (-3, -2)),
                       match="crops more than its size 4")


# -------------------------------------------------------------------------------------- activations
ACTS = ["silu", "mish", "hardsigmoid", "hardswish"]


@pytest.mark.parametrize("name", ACTS)
@pytest.mark.parametrize("shape", [(3, 4), (), (0, 3)])
def test_activations(name, shape):
    # hardsigmoid: PyTorch's float64 gradient is 1/6 rounded to float32 -> compare at 1e-7
    tol = dict(rtol=1e-7, atol=1e-8) if name == "hardsigmoid" else {}
    check_op(getattr(F, name), getattr(TF, name) if HAS_TORCH else None, [shape], low=-5, high=5, **tol)


@pytest.mark.parametrize("name", ACTS)
def test_activations_at_the_kinks(name):
    x = np.array([-3.0, 3.0, 0.0, -4.0, 4.0, 1.0, -30.0, 30.0])
    tol = dict(rtol=1e-7, atol=1e-8) if name == "hardsigmoid" else {}
    check_op(getattr(F, name), getattr(TF, name) if HAS_TORCH else None, [x], gradcheck=False, **tol)


@pytest.mark.parametrize("name,layer", [("silu", "SiLU"), ("mish", "Mish"), ("hardsigmoid", "Hardsigmoid"),
                                        ("hardswish", "Hardswish")])
def test_activation_modules(name, layer):
    x = tr.randn(4, 5)
    np.testing.assert_array_equal(getattr(nn, layer)()(x).numpy(), getattr(F, name)(x).numpy())
    assert repr(getattr(nn, layer)()) == f"{layer}()"


# ------------------------------------------------------------------------------------- max_unpool2d
UNPOOL = [  # non-overlapping windows (overlapping ones can repeat an index: then only one write counts)
    ((2, 3, 6, 6), dict(kernel_size=2), None),
    ((2, 3, 7, 7), dict(kernel_size=3, stride=3, padding=1), None),
    ((1, 2, 6, 7), dict(kernel_size=2), (6, 7)),
]


@pytest.mark.parametrize("shape,kw,size", UNPOOL)
def test_max_unpool2d(shape, kw, size):
    x = RNG.standard_normal(shape)
    pooled, idx = F.max_pool2d(tr.Tensor(x), return_indices=True, **kw)
    tidx = torch.tensor(idx.numpy()) if HAS_TORCH else None
    out = check_op(lambda y: F.max_unpool2d(y, idx, output_size=size, **kw),
                   lambda y: TF.max_unpool2d(y, tidx, output_size=size, **kw), [pooled.numpy()])
    assert out.shape == shape[:2] + (size or tuple((n - 1) * kw.get("stride", kw["kernel_size"])
                                                  - 2 * kw.get("padding", 0) + kw["kernel_size"]
                                                  for n in pooled.shape[2:]))
    unpool = nn.MaxUnpool2d(**kw)
    np.testing.assert_array_equal(unpool(pooled, idx, size).numpy(), out.numpy())


def test_max_unpool2d_errors():
    y, idx = F.max_pool2d(tr.randn(1, 1, 6, 7), 2, return_indices=True)
    tidx = torch.tensor(idx.numpy()) if HAS_TORCH else None
    _raises_like_torch(lambda: F.max_unpool2d(y, idx, 2),
                       lambda: TF.max_unpool2d(torch.tensor(y.numpy()), tidx, 2),
                       match="Found an invalid max index")
    with pytest.raises(ValueError, match="indices tensor with shape"):
        F.max_unpool2d(y, idx[:, :, :1], 2)
    with pytest.raises(ValueError, match="invalid output_size"):
        F.max_unpool2d(y, idx, 2, output_size=(9, 9))
