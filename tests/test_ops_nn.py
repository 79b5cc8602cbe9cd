"""nn.functional: conv, pooling, interpolate, batch norm, dropout and the losses vs PyTorch + gradcheck."""

from __future__ import annotations

import numpy as np
import pytest
from oracle import HAS_TORCH, backend_ready, check_op

import tinygrad_rad as tr
import tinygrad_rad.nn.functional as F

if HAS_TORCH:
    import torch
    import torch.nn.functional as TF


def _rng(seed=0):
    return np.random.default_rng(seed)


def _ids(kw: dict) -> str:
    return "-".join(f"{k}={v}" for k, v in kw.items()) or "plain"


# ------------------------------------------------------------------------------------ conv2d
CONV_CASES = [
    # (x shape, w shape, kwargs)
    ((1, 2, 5, 5), (3, 2, 3, 3), dict()),
    ((2, 2, 6, 5), (3, 2, 3, 3), dict(stride=2)),
    ((1, 2, 7, 6), (2, 2, 3, 2), dict(stride=(2, 1), padding=(1, 2))),
    ((1, 1, 5, 5), (2, 1, 3, 3), dict(padding="same")),
    ((1, 2, 6, 7), (2, 2, 3, 3), dict(padding="same", dilation=2)),
    ((1, 2, 5, 6), (2, 2, 2, 4), dict(padding="same")),  # even kernels: asymmetric padding
    ((1, 1, 5, 5), (2, 1, 2, 3), dict(padding="same", dilation=(1, 2))),
    ((1, 2, 5, 6), (3, 2, 2, 3), dict(padding="valid")),
    ((1, 2, 7, 7), (2, 2, 3, 3), dict(dilation=2, padding=1)),
    ((1, 2, 9, 8), (2, 2, 2, 3), dict(dilation=(2, 1), stride=(1, 3))),
    ((1, 4, 5, 5), (6, 2, 3, 3), dict(groups=2, padding=1)),
    ((2, 3, 5, 4), (3, 1, 3, 3), dict(groups=3, padding=1)),  # depthwise
    ((1, 2, 4, 4), (4, 1, 3, 3), dict(groups=2, stride=2, padding=1)),
    ((1, 3, 5, 7), (2, 3, 1, 1), dict()),  # 1x1
]


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("xs,ws,kw", CONV_CASES)
def test_conv2d(xs, ws, kw, bias):
    shapes = [xs, ws] + ([(ws[0],)] if bias else [])

    def fn(x, w, b=None):
        return F.conv2d(x, w, b, **kw)

    def tfn(x, w, b=None):
        return TF.conv2d(x, w, b, **kw)

    check_op(fn, tfn, shapes)


def test_conv2d_float32():
    check_op(lambda x, w, b: F.conv2d(x, w, b, stride=2, padding=1),
             lambda x, w, b: TF.conv2d(x, w, b, stride=2, padding=1),
             [(2, 3, 9, 9), (4, 3, 3, 3), (4,)], dtype="float32", gradcheck=False)


def test_conv2d_on_device(device):
    if not backend_ready(device):
        pytest.skip(f"the {device} kernel backend is not importable yet")
    check_op(lambda x, w, b: F.conv2d(x, w, b, padding=1), lambda x, w, b: TF.conv2d(x, w, b, padding=1),
             [(1, 2, 4, 4), (2, 2, 3, 3), (2,)], dtype="float32", device=device, gradcheck=False)


DEVICE_NN = {
    "conv_transpose2d": (lambda x, w: F.conv_transpose2d(x, w, stride=2, padding=1),
                         lambda x, w: TF.conv_transpose2d(x, w, stride=2, padding=1),
                         [(1, 2, 3, 3), (2, 2, 3, 3)]),
    "max_pool2d": (lambda x: F.max_pool2d(x, 3, 2, 1), lambda x: TF.max_pool2d(x, 3, 2, 1), [(1, 2, 5, 5)]),
    "avg_pool2d": (lambda x: F.avg_pool2d(x, 3, 2, 1, count_include_pad=False),
                   lambda x: TF.avg_pool2d(x, 3, 2, 1, count_include_pad=False), [(1, 2, 5, 5)]),
    "batch_norm": (lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
                   lambda x, w, b: TF.batch_norm(x, None, None, w, b, training=True),
                   [(3, 2, 3, 3), (2,), (2,)]),
    "cross_entropy": (lambda x: F.cross_entropy(x, tr.tensor([0, 2, 1], device=x.device)),
                      lambda x: TF.cross_entropy(x, torch.tensor([0, 2, 1])), [(3, 4)]),
    "softmax": (lambda x: x.log_softmax(1), None, [(3, 4)]),
    "interpolate": (lambda x: F.interpolate(x, scale_factor=1.5, mode="bilinear"),
                    lambda x: TF.interpolate(x, scale_factor=1.5, mode="bilinear"), [(1, 2, 3, 4)]),
    "adaptive_avg": (lambda x: F.adaptive_avg_pool2d(x, (2, 3)), lambda x: TF.adaptive_avg_pool2d(x, (2, 3)),
                     [(1, 2, 5, 5)]),
    "adaptive_max": (lambda x: F.adaptive_max_pool2d(x, 2), lambda x: TF.adaptive_max_pool2d(x, 2),
                     [(1, 2, 5, 5)]),
    "max_pool_ceil": (lambda x: F.max_pool2d(x, 2, ceil_mode=True),
                      lambda x: TF.max_pool2d(x, 2, ceil_mode=True), [(1, 2, 5, 5)]),
    "avg_pool_ceil": (lambda x: F.avg_pool2d(x, 2, ceil_mode=True),
                      lambda x: TF.avg_pool2d(x, 2, ceil_mode=True), [(1, 2, 5, 5)]),
    "conv_same_even": (lambda x, w: F.conv2d(x, w, padding="same"),
                       lambda x, w: TF.conv2d(x, w, padding="same"),
                       [(1, 2, 4, 4), (2, 2, 2, 2)]),
}


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
@pytest.mark.parametrize("name", list(DEVICE_NN))
def test_nn_ops_on_device(device, name):
    if not backend_ready(device):
        pytest.skip(f"the {device} kernel backend is not importable yet")
    fn, tfn, shapes = DEVICE_NN[name]
    check_op(fn, tfn, shapes, dtype="float32", device=device, gradcheck=False)


CONVT_CASES = [
    ((1, 2, 3, 3), (2, 3, 3, 3), dict()),
    ((2, 2, 3, 4), (2, 2, 3, 3), dict(stride=2)),
    ((1, 2, 3, 3), (2, 2, 3, 3), dict(stride=2, padding=1, output_padding=1)),
    ((1, 2, 4, 3), (2, 1, 2, 3), dict(stride=(2, 1), padding=(0, 1))),
    ((1, 2, 3, 3), (2, 2, 3, 3), dict(dilation=2)),
    ((1, 2, 3, 3), (2, 2, 2, 2), dict(stride=2, dilation=2, output_padding=1)),
    ((1, 4, 3, 3), (4, 3, 3, 3), dict(groups=2)),
    ((1, 4, 3, 3), (4, 1, 3, 3), dict(groups=4, stride=2, padding=1, output_padding=1)),
    ((1, 2, 3, 4), (2, 2, 2, 2), dict(dilation=2, output_padding=1)),  # output_padding >= stride
    ((1, 2, 3, 3), (2, 1, 2, 3), dict(stride=(1, 2), dilation=(3, 1), padding=(1, 0), output_padding=(2, 1))),
]


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("xs,ws,kw", CONVT_CASES)
def test_conv_transpose2d(xs, ws, kw, bias):
    groups = kw.get("groups", 1)
    shapes = [xs, ws] + ([(ws[1] * groups,)] if bias else [])

    def fn(x, w, b=None):
        return F.conv_transpose2d(x, w, b, **kw)

    def tfn(x, w, b=None):
        return TF.conv_transpose2d(x, w, b, **kw)

    check_op(fn, tfn, shapes)


# ------------------------------------------------------------------------------------ pooling
POOL_CASES = [
    dict(kernel_size=2),
    dict(kernel_size=3, stride=1),
    dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=(2, 3), stride=(1, 2)),
    dict(kernel_size=(3, 2), stride=2, padding=(1, 0)),
]


@pytest.mark.parametrize("kw", POOL_CASES)
def test_max_pool2d(kw):
    check_op(lambda x: F.max_pool2d(x, **kw), lambda x: TF.max_pool2d(x, **kw), [(2, 2, 6, 7)])


def test_max_pool2d_dilation():
    check_op(lambda x: F.max_pool2d(x, 2, 1, 0, 2), lambda x: TF.max_pool2d(x, 2, 1, 0, 2), [(1, 2, 6, 6)])


def test_max_pool2d_ties_pick_one_element():
    x = tr.ones(1, 1, 2, 2, requires_grad=True)
    F.max_pool2d(x, 2).sum().backward()
    assert x.grad.numpy().sum() == 1.0  # the whole gradient goes to a single (the first) maximum
    assert x.grad.numpy()[0, 0, 0, 0] == 1.0


@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("kw", POOL_CASES)
def test_avg_pool2d(kw, count_include_pad):
    check_op(lambda x: F.avg_pool2d(x, count_include_pad=count_include_pad, **kw),
             lambda x: TF.avg_pool2d(x, count_include_pad=count_include_pad, **kw), [(2, 2, 6, 7)])


@pytest.mark.parametrize("out", [1, 2, 3, (2, 3), (5, 4), (None, 2), (3, None), (8, 9)])
def test_adaptive_avg_pool2d(out):
    check_op(lambda x: F.adaptive_avg_pool2d(x, out), lambda x: TF.adaptive_avg_pool2d(x, out),
             [(2, 2, 6, 7)])


@pytest.mark.parametrize("out", [1, 2, (2, 3), (4, 5), (3, None), 7])
def test_adaptive_max_pool2d(out):
    check_op(lambda x: F.adaptive_max_pool2d(x, out), lambda x: TF.adaptive_max_pool2d(x, out),
             [(1, 2, 6, 7)], gradcheck=out != 7)  # 7x7 bins: 49 small maxes per forward


# -------------------------------------------------------------------------------- interpolate
INTERP_CASES = [
    dict(size=(8, 5), mode="nearest"),
    dict(scale_factor=2, mode="nearest"),
    dict(scale_factor=1.7, mode="nearest"),
    dict(size=(3, 2), mode="nearest"),
    dict(size=(8, 5), mode="bilinear", align_corners=False),
    dict(size=(8, 5), mode="bilinear", align_corners=True),
    dict(scale_factor=2, mode="bilinear", align_corners=False),
    dict(scale_factor=(1.5, 0.5), mode="bilinear", align_corners=False),
    dict(scale_factor=2, mode="bilinear", align_corners=True),
    dict(size=(2, 3), mode="bilinear", align_corners=False),
    dict(scale_factor=1.3, mode="nearest"),  # H: 4 -> 5, W: 5 -> 6
    dict(scale_factor=1.2, mode="bilinear"),  # H: 4 -> 4 is copied as is, whatever the scale says
    dict(scale_factor=(1.1, 2.2), mode="nearest"),  # W: 5 -> 11, not the exact 2x shortcut
    dict(scale_factor=(2.2, 1.0), mode="nearest"),  # H: 4 -> 8 takes PyTorch's exact-2x shortcut
]


@pytest.mark.parametrize("kw", INTERP_CASES, ids=lambda kw: "-".join(f"{k}={v}" for k, v in kw.items()))
def test_interpolate(kw):
    check_op(lambda x: F.interpolate(x, **kw), lambda x: TF.interpolate(x, **kw), [(1, 2, 4, 5)])


# -------------------------------------------------------------------------------- batch norm
@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 3, 2)])
@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm_train_matches_torch(shape, affine):
    c = shape[1]
    rm0, rv0 = _rng(3).standard_normal(c), _rng(4).uniform(0.5, 2, c)
    rm, rv = tr.tensor(rm0, dtype=tr.float64), tr.tensor(rv0, dtype=tr.float64)
    shapes = [shape] + ([(c,), (c,)] if affine else [])

    def fn(x, w=None, b=None):
        return F.batch_norm(x, None, None, w, b, training=True)

    def tfn(x, w=None, b=None):
        return TF.batch_norm(x, None, None, w, b, training=True)

    check_op(fn, tfn, shapes)
    # running statistics: (1 - momentum) running + momentum batch (unbiased variance)
    x = _rng(5).standard_normal(shape)
    F.batch_norm(tr.tensor(x), rm, rv, training=True, momentum=0.3)
    axes = (0,) + tuple(range(2, len(shape)))
    np.testing.assert_allclose(rm.numpy(), 0.7 * rm0 + 0.3 * x.mean(axis=axes), rtol=1e-12)
    np.testing.assert_allclose(rv.numpy(), 0.7 * rv0 + 0.3 * x.var(axis=axes, ddof=1), rtol=1e-12)
    if HAS_TORCH:
        trm, trv = torch.tensor(rm0), torch.tensor(rv0)
        TF.batch_norm(torch.tensor(x), trm, trv, training=True, momentum=0.3)
        np.testing.assert_allclose(rm.numpy(), trm.numpy(), rtol=1e-12)
        np.testing.assert_allclose(rv.numpy(), trv.numpy(), rtol=1e-12)
    # and the same update when no graph is recorded
    rm2, rv2 = tr.tensor(rm0, dtype=tr.float64), tr.tensor(rv0, dtype=tr.float64)
    with tr.no_grad():
        F.batch_norm(tr.tensor(x, requires_grad=True), rm2, rv2, training=True, momentum=0.3)
    np.testing.assert_allclose(rm2.numpy(), rm.numpy(), rtol=1e-12)
    np.testing.assert_allclose(rv2.numpy(), rv.numpy(), rtol=1e-12)


@pytest.mark.parametrize("shape", [(5, 3), (2, 3, 4, 2)])
def test_batch_norm_eval(shape):
    c = shape[1]
    rm = _rng(3).standard_normal(c)
    rv = _rng(4).uniform(0.5, 2, c)
    check_op(lambda x, w, b: F.batch_norm(x, tr.tensor(rm), tr.tensor(rv), w, b, training=False),
             lambda x, w, b: TF.batch_norm(x, torch.tensor(rm), torch.tensor(rv), w, b, training=False),
             [shape, (c,), (c,)])
    check_op(lambda x: F.batch_norm(x, tr.tensor(rm, dtype=x.dtype), tr.tensor(rv, dtype=x.dtype), eps=1e-3),
             lambda x: TF.batch_norm(x, torch.tensor(rm, dtype=x.dtype), torch.tensor(rv, dtype=x.dtype),
                                     eps=1e-3),
             [shape], dtype="float32")


def test_batch_norm_float32_train():
    check_op(lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
             lambda x, w, b: TF.batch_norm(x, None, None, w, b, training=True),
             [(8, 4, 5, 5), (4,), (4,)], dtype="float32", gradcheck=False)


# ------------------------------------------------------------------------------------ dropout
def test_dropout_statistics_and_gradient():
    tr.manual_seed(1)
    x = tr.ones(200, 100, dtype=tr.float64, requires_grad=True)
    p = 0.3
    y = F.dropout(x, p=p, training=True)
    yn = y.numpy()
    kept = yn != 0
    assert abs(kept.mean() - (1 - p)) < 0.01  # 20,000 draws: std of the mean ~0.003
    np.testing.assert_allclose(yn[kept], 1 / (1 - p))  # inverted dropout scaling
    assert abs(yn.mean() - 1.0) < 0.02  # the expectation is preserved
    r = np.random.default_rng(0).standard_normal(y.shape)
    (y * tr.tensor(r)).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), r * yn)  # gradient = mask (x is ones, so y == mask)


def test_dropout_eval_identity_and_edge_p():
    x = tr.randn(4, 5, requires_grad=True)
    assert F.dropout(x, 0.5, training=False) is x
    np.testing.assert_array_equal(F.dropout(x, 0.0).numpy(), x.numpy())
    np.testing.assert_array_equal(F.dropout(x, 1.0).numpy(), 0.0)
    with pytest.raises(ValueError, match="p must be in"):
        F.dropout(x, 1.5)


def test_dropout_is_seeded():
    tr.manual_seed(7)
    a = F.dropout(tr.ones(50), 0.5).numpy()
    tr.manual_seed(7)
    b = F.dropout(tr.ones(50), 0.5).numpy()
    np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------------------------- losses
CE_CASES = [
    dict(),
    dict(reduction="sum"),
    dict(reduction="none"),
    dict(weight=True),
    dict(weight=True, reduction="sum"),
    dict(weight=True, reduction="none"),
    dict(ignore_index=1),
    dict(ignore_index=1, weight=True),
    dict(label_smoothing=0.2),
    dict(label_smoothing=0.1, weight=True),
    dict(label_smoothing=0.1, weight=True, reduction="none"),
    dict(label_smoothing=0.3, ignore_index=2, reduction="sum"),
]


@pytest.mark.parametrize("spatial", [False, True])
@pytest.mark.parametrize("kw", CE_CASES, ids=_ids)
def test_cross_entropy(kw, spatial):
    kw = dict(kw)
    c = 4
    shape = (3, c, 2, 3) if spatial else (6, c)
    tshape = (3, 2, 3) if spatial else (6,)
    target = _rng(1).integers(0, c, size=tshape)
    target.reshape(-1)[:3] = [0, 1, 2]  # make sure ignore_index hits
    w = _rng(2).uniform(0.5, 2.0, size=c) if kw.pop("weight", False) else None

    def fn(x, t):
        return F.cross_entropy(x, t, weight=None if w is None else tr.tensor(w, dtype=x.dtype), **kw)

    def tfn(x, t):
        return TF.cross_entropy(x, t, weight=None if w is None else torch.tensor(w, dtype=x.dtype), **kw)

    check_op(fn, tfn, [shape, target])
    check_op(fn, tfn, [shape, target], dtype="float32", gradcheck=False)


def test_cross_entropy_large_logits_are_stable():
    x = tr.tensor([[1000.0, -1000.0, 0.0], [-500.0, 500.0, 0.0]], requires_grad=True)
    loss = F.cross_entropy(x, tr.tensor([1, 1]))
    loss.backward()
    np.testing.assert_allclose(loss.item(), 1000.0, rtol=1e-6)  # (2000 + 0) / 2
    assert np.all(np.isfinite(x.grad.numpy()))


@pytest.mark.parametrize("kw", [dict(), dict(reduction="sum"), dict(reduction="none"), dict(weight=True),
                                dict(ignore_index=0), dict(weight=True, ignore_index=2)])
def test_nll_loss(kw):
    kw = dict(kw)
    w = _rng(2).uniform(0.5, 2.0, size=3) if kw.pop("weight", False) else None
    target = np.array([0, 2, 1, 2, 0])

    def fn(x, t):
        return F.nll_loss(x.log_softmax(1), t, weight=None if w is None else tr.tensor(w), **kw)

    def tfn(x, t):
        return TF.nll_loss(x.log_softmax(1), t, weight=None if w is None else torch.tensor(w), **kw)

    check_op(fn, tfn, [(5, 3), target])
    check_op(lambda x, t: F.nll_loss(x, t, **kw) if w is None else F.nll_loss(x, t, tr.tensor(w), **kw),
             lambda x, t: TF.nll_loss(x, t, **kw) if w is None else TF.nll_loss(x, t, torch.tensor(w), **kw),
             [(2, 3, 2, 2), _rng(3).integers(0, 3, size=(2, 2, 2))])


BCE_CASES = [dict(), dict(reduction="sum"), dict(reduction="none"), dict(weight=True), dict(pos_weight=True),
             dict(pos_weight=True, weight=True, reduction="sum")]


@pytest.mark.parametrize("kw", BCE_CASES, ids=_ids)
def test_binary_cross_entropy_with_logits(kw):
    kw = dict(kw)
    use_w, use_pw = kw.pop("weight", False), kw.pop("pos_weight", False)
    target = _rng(1).uniform(0, 1, size=(4, 3))
    target[0] = [0.0, 1.0, 1.0]
    w = _rng(2).uniform(0.5, 2, size=(4, 3))
    pw = _rng(3).uniform(0.5, 3, size=(3,))

    def fn(x, t):
        return F.binary_cross_entropy_with_logits(x, t, weight=tr.tensor(w) if use_w else None,
                                                  pos_weight=tr.tensor(pw) if use_pw else None, **kw)

    def tfn(x, t):
        return TF.binary_cross_entropy_with_logits(x, t, weight=torch.tensor(w) if use_w else None,
                                                   pos_weight=torch.tensor(pw) if use_pw else None, **kw)

    check_op(fn, tfn, [(4, 3), target], grad=True)
    # the target is a float input too: its gradient is checked by the oracle as well
    check_op(lambda x: fn(x, tr.tensor(target)), lambda x: tfn(x, torch.tensor(target)), [(4, 3)],
             dtype="float32", gradcheck=False)


def test_bce_with_logits_large_logits():
    x = tr.tensor([1000.0, -1000.0, 200.0, -200.0], requires_grad=True)
    t = tr.tensor([0.0, 1.0, 1.0, 0.0])
    pw = tr.tensor([2.0, 2.0, 2.0, 2.0])
    loss = F.binary_cross_entropy_with_logits(x, t, pos_weight=pw, reduction="none")
    loss.sum().backward()
    np.testing.assert_allclose(loss.numpy(), [1000.0, 2000.0, 0.0, 0.0], atol=1e-4)
    assert np.all(np.isfinite(x.grad.numpy()))
    np.testing.assert_allclose(x.grad.numpy(), [1.0, -2.0, 0.0, 0.0], atol=1e-6)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_regression_losses(reduction):
    check_op(lambda a, b: F.mse_loss(a, b, reduction=reduction),
             lambda a, b: TF.mse_loss(a, b, reduction=reduction), [(3, 4), (3, 4)])
    check_op(lambda a, b: F.l1_loss(a, b, reduction=reduction),
             lambda a, b: TF.l1_loss(a, b, reduction=reduction), [(3, 4), (3, 4)])


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("beta", [1.0, 0.5, 2.0])
def test_smooth_l1_loss(beta, reduction):
    check_op(lambda a, b: F.smooth_l1_loss(a, b, reduction=reduction, beta=beta),
             lambda a, b: TF.smooth_l1_loss(a, b, reduction=reduction, beta=beta), [(3, 4), (3, 4)],
             low=-3, high=3)


def test_smooth_l1_beta_zero_is_l1():
    check_op(lambda a, b: F.smooth_l1_loss(a, b, beta=0.0), lambda a, b: TF.smooth_l1_loss(a, b, beta=0.0),
             [(3, 4), (3, 4)])


PROB_CE_CASES = [dict(), dict(reduction="sum"), dict(reduction="none"), dict(label_smoothing=0.2),
                 dict(weight=True), dict(weight=True, label_smoothing=0.1, reduction="sum")]


@pytest.mark.parametrize("kw", PROB_CE_CASES, ids=_ids)
@pytest.mark.parametrize("spatial", [False, True])
def test_cross_entropy_probability_targets(kw, spatial):
    kw = dict(kw)
    shape = (2, 3, 2, 2) if spatial else (5, 3)
    probs = _rng(4).dirichlet(np.ones(3), size=int(np.prod(shape)) // 3).reshape(
        (shape[0],) + shape[2:] + (3,))
    probs = np.moveaxis(probs, -1, 1).copy()
    w = _rng(2).uniform(0.5, 2.0, size=3) if kw.pop("weight", False) else None

    def fn(x):
        return F.cross_entropy(x, tr.tensor(probs, dtype=x.dtype),
                               weight=None if w is None else tr.tensor(w, dtype=x.dtype), **kw)

    def tfn(x):
        return TF.cross_entropy(x, torch.tensor(probs, dtype=x.dtype),
                                weight=None if w is None else torch.tensor(w, dtype=x.dtype), **kw)

    check_op(fn, tfn, [shape])


CEIL_CASES = [
    dict(kernel_size=2),  # 5 -> 3 (a partial last window)
    dict(kernel_size=3, stride=2),
    dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=(2, 3), stride=(2, 2), padding=(1, 0)),
    dict(kernel_size=2, stride=3),
    dict(kernel_size=4, stride=2, padding=2),  # the last window would start in the right padding
    dict(kernel_size=(2, 6), stride=(2, 3)),  # dilated by 2 (11 wide) it hangs past a 9-wide input
]


@pytest.mark.parametrize("kw", CEIL_CASES, ids=_ids)
def test_max_pool2d_ceil_mode(kw):
    check_op(lambda x: F.max_pool2d(x, ceil_mode=True, **kw),
             lambda x: TF.max_pool2d(x, ceil_mode=True, **kw), [(1, 2, 5, 7)])
    check_op(lambda x: F.max_pool2d(x, ceil_mode=True, dilation=2, **kw),
             lambda x: TF.max_pool2d(x, ceil_mode=True, dilation=2, **kw), [(1, 1, 8, 9)], gradcheck=False)


@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("kw", CEIL_CASES, ids=_ids)
def test_avg_pool2d_ceil_mode(kw, count_include_pad):
    check_op(lambda x: F.avg_pool2d(x, ceil_mode=True, count_include_pad=count_include_pad, **kw),
             lambda x: TF.avg_pool2d(x, ceil_mode=True, count_include_pad=count_include_pad, **kw),
             [(1, 2, 5, 7)])


@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
def test_all_targets_ignored_gives_nan_loss_and_zero_gradient(label_smoothing):
    x = tr.randn(3, 4, dtype=tr.float64, requires_grad=True)
    loss = F.cross_entropy(x, tr.tensor([2, 2, 2]), ignore_index=2, label_smoothing=label_smoothing)
    loss.backward()
    assert np.isnan(loss.item())
    np.testing.assert_array_equal(x.grad.numpy(), 0.0)  # PyTorch: nan loss but zero gradient
    x.grad = None
    loss = F.nll_loss(x.log_softmax(1), tr.tensor([-100, -100, -100]))
    loss.backward()
    assert np.isnan(loss.item())
    np.testing.assert_array_equal(x.grad.numpy(), 0.0)
    if HAS_TORCH:
        tx = torch.tensor(x.numpy(), requires_grad=True)
        tl = TF.cross_entropy(tx, torch.tensor([2, 2, 2]), ignore_index=2, label_smoothing=label_smoothing)
        tl.backward()
        np.testing.assert_array_equal(tx.grad.numpy(), 0.0)


@pytest.mark.parametrize("kw", POOL_CASES + [dict(kernel_size=3, stride=2, padding=1, dilation=2),
                                             dict(kernel_size=2, ceil_mode=True)], ids=_ids)
def test_max_pool2d_return_indices(kw):
    x = np.random.default_rng(0).standard_normal((2, 2, 7, 6))
    out, idx = F.max_pool2d(tr.tensor(x, requires_grad=True), return_indices=True, **kw)
    assert idx.dtype == np.int64 and idx.shape == out.shape
    # each index points at the value the window returned
    flat = x.reshape(2, 2, -1)
    picked = np.take_along_axis(flat, idx.numpy().reshape(2, 2, -1), 2).reshape(out.shape)
    np.testing.assert_array_equal(picked, out.numpy())
    with tr.no_grad():  # same indices without a graph
        _, idx2 = F.max_pool2d(tr.tensor(x), return_indices=True, **kw)
    np.testing.assert_array_equal(idx.numpy(), idx2.numpy())
    if HAS_TORCH:
        _, tidx = TF.max_pool2d(torch.tensor(x), return_indices=True, **kw)
        np.testing.assert_array_equal(idx.numpy(), tidx.numpy())
