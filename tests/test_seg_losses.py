"""Segmentation / detection losses: values vs PyTorch re-implementations of the MONAI / torchvision
formulas (skipped without torch), hand-computed cases, and float64 gradchecks."""

from __future__ import annotations

import numpy as np
import pytest

import tinygrad_rad as tr
from tinygrad_rad import nn
from tinygrad_rad.gradcheck import gradcheck
from tinygrad_rad.nn import functional as F

RNG = np.random.default_rng(0)


def _logits(*shape):
    return RNG.standard_normal(shape) * 2.0


def _binary(*shape):
    return (RNG.random(shape) > 0.6).astype(np.float64)


# --------------------------------------------------------------------------- torch references (MONAI)
def _torch_dice(x, y, sigmoid, softmax, include_background, smooth_nr, smooth_dr, batch):
    torch = pytest.importorskip("torch")
    x = torch.tensor(x)
    p = torch.sigmoid(x) if sigmoid else (torch.softmax(x, 1) if softmax else x)
    y = torch.tensor(y)
    if softmax:
        y = torch.nn.functional.one_hot(y.long(), x.shape[1]).movedim(-1, 1).double()
    if not include_background:
        p, y = p[:, 1:], y[:, 1:]
    axes = list(range(2, p.ndim))
    if batch:
        axes = [0] + axes
    inter = (p * y).sum(axes)
    den = p.sum(axes) + y.sum(axes)
    return (1 - (2 * inter + smooth_nr) / (den + smooth_dr)).mean().item()


def _torch_tversky(x, y, alpha, beta, smooth_nr=1e-5, smooth_dr=1e-5):
    torch = pytest.importorskip("torch")
    p, g = torch.sigmoid(torch.tensor(x)), torch.tensor(y)
    tp = (p * g).sum((2, 3))
    fp = (p * (1 - g)).sum((2, 3))
    fn = ((1 - p) * g).sum((2, 3))
    return (1 - (tp + smooth_nr) / (tp + alpha * fp + beta * fn + smooth_dr)).mean().item()


def _torch_focal(x, y, alpha, gamma):
    """torchvision.ops.sigmoid_focal_loss, written out."""
    torch = pytest.importorskip("torch")
    x, y = torch.tensor(x), torch.tensor(y)
    p = torch.sigmoid(x)
    ce = torch.nn.functional.binary_cross_entropy_with_logits(x, y, reduction="none")
    pt = p * y + (1 - p) * (1 - y)
    loss = ce * (1 - pt) ** gamma
    if alpha is not None:
        loss = (alpha * y + (1 - alpha) * (1 - y)) * loss
    return loss.mean().item()


@pytest.mark.parametrize("batch", [False, True])
@pytest.mark.parametrize("smooth", [(1e-5, 1e-5), (1.0, 1.0), (0.0, 1e-6)])
def test_binary_dice_matches_monai_formula(batch, smooth):
    x, y = _logits(2, 1, 6, 5), _binary(2, 1, 6, 5)
    got = nn.DiceLoss(sigmoid=True, smooth_nr=smooth[0], smooth_dr=smooth[1], batch=batch)(
        tr.tensor(x), y
    ).item()
    assert got == pytest.approx(_torch_dice(x, y, True, False, True, *smooth, batch), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("include_background", [True, False])
def test_multiclass_dice_matches_monai_formula(include_background):
    x = _logits(2, 3, 5, 4)
    labels = RNG.integers(0, 3, (2, 5, 4))
    got = nn.DiceLoss(softmax=True, include_background=include_background)(tr.tensor(x), labels).item()
    ref = _torch_dice(x, labels, False, True, include_background, 1e-5, 1e-5, False)
    assert got == pytest.approx(ref, rel=1e-9)


def test_dice_hand_computed_and_perfect():
    # probabilities given directly (no activation): p = [1, 1, 0, 0], g = [1, 0, 0, 0] -> 1 - 2/3
    p = tr.tensor(np.array([1.0, 1.0, 0.0, 0.0]).reshape(1, 1, 2, 2))
    g = np.array([1.0, 0.0, 0.0, 0.0]).reshape(1, 1, 2, 2)
    assert F.dice_loss(p, g, smooth_nr=0, smooth_dr=0).item() == pytest.approx(1 / 3)
    # a perfect prediction scores 0; empty target + empty prediction scores 0 thanks to smoothing
    assert F.dice_loss(tr.tensor(g), g).item() == pytest.approx(0.0, abs=1e-12)
    z = np.zeros((1, 1, 2, 2))
    assert F.dice_loss(tr.tensor(z), z).item() == pytest.approx(0.0, abs=1e-12)
    # (N, H, W) target is accepted for a 1-channel input
    assert F.dice_loss(tr.tensor(g), g[:, 0]).item() == pytest.approx(0.0, abs=1e-12)


def test_tversky_matches_formula_and_reduces_to_dice():
    x, y = _logits(2, 1, 5, 5), _binary(2, 1, 5, 5)
    got = nn.TverskyLoss(sigmoid=True, alpha=0.3, beta=0.7)(tr.tensor(x), y).item()
    assert got == pytest.approx(_torch_tversky(x, y, 0.3, 0.7), rel=1e-9)
    # alpha = beta = 0.5 is the Dice loss (smoothing 0 on both)
    t = F.tversky_loss(tr.tensor(x), y, 0.5, 0.5, sigmoid=True, smooth_nr=0, smooth_dr=0).item()
    d = F.dice_loss(tr.tensor(x), y, sigmoid=True, smooth_nr=0, smooth_dr=0).item()
    assert t == pytest.approx(d, rel=1e-12)


@pytest.mark.parametrize("alpha,gamma", [(0.25, 2.0), (None, 2.0), (0.5, 0.0), (0.75, 1.5)])
def test_focal_matches_torchvision_formula(alpha, gamma):
    x, y = _logits(2, 1, 4, 4), _binary(2, 1, 4, 4)
    got = nn.FocalLoss(alpha=alpha, gamma=gamma)(tr.tensor(x), y).item()
    assert got == pytest.approx(_torch_focal(x, y, alpha, gamma), rel=1e-9)


def test_focal_hand_computed():
    # x = 0: p = 0.5, BCE = log 2, (1 - p_t)^2 = 0.25, alpha_t = 0.25 for y = 1, 0.75 for y = 0
    x = tr.zeros(1, 1, 1, 2, dtype=tr.float64)
    y = np.array([[[[1.0, 0.0]]]])
    got = F.sigmoid_focal_loss(x, y, alpha=0.25, gamma=2.0, reduction="none").numpy().ravel()
    np.testing.assert_allclose(got, [0.25 * 0.25 * np.log(2), 0.75 * 0.25 * np.log(2)], rtol=1e-12)


def test_focal_stable_for_large_logits():
    x = tr.tensor(np.array([[[[80.0, -80.0]]]]))
    y = np.array([[[[0.0, 1.0]]]])
    v = nn.FocalLoss(alpha=None, gamma=2.0)(x, y).item()
    assert np.isfinite(v) and v == pytest.approx(80.0, rel=1e-6)


def test_dice_bce_and_dice_ce_are_sums_of_parts():
    x, y = _logits(2, 1, 4, 4), _binary(2, 1, 4, 4)
    t = tr.tensor(x)
    want = F.dice_loss(t, y, sigmoid=True).item() + F.binary_cross_entropy_with_logits(t, tr.tensor(y)).item()
    assert nn.DiceBCELoss()(t, y).item() == pytest.approx(want, rel=1e-12)
    xm, lab = _logits(2, 3, 4, 4), RNG.integers(0, 3, (2, 4, 4))
    tm = tr.tensor(xm)
    want = (
        0.5 * F.dice_loss(tm, lab, softmax=True, include_background=False).item()
        + 2.0 * F.cross_entropy(tm, tr.tensor(lab)).item()
    )
    got = nn.DiceCELoss(include_background=False, lambda_dice=0.5, lambda_ce=2.0)(tm, lab).item()
    assert got == pytest.approx(want, rel=1e-12)


def test_centernet_focal_hand_computed():
    # one centre (y = 1, logit 0 -> p = 0.5): (1 - p)^2 log p = 0.25 log 0.5
    # one negative (y = 0.5, logit 0): (1 - y)^4 p^2 log(1 - p) = 0.0625 * 0.25 * log 0.5; N = 1
    x = tr.zeros(1, 1, 1, 2, dtype=tr.float64)
    y = np.array([[[[1.0, 0.5]]]])
    want = -(0.25 * np.log(0.5) + 0.0625 * 0.25 * np.log(0.5))
    assert F.centernet_focal_loss(x, y).item() == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize(
    "name", ["dice", "dice_softmax", "tversky", "focal", "dice_bce", "dice_ce", "centernet"]
)
def test_losses_gradcheck(name):
    x = tr.tensor(_logits(2, 3 if name in ("dice_softmax", "dice_ce") else 1, 3, 3), requires_grad=True)
    y = _binary(2, 1, 3, 3)
    lab = RNG.integers(0, 3, (2, 3, 3))
    heat = np.clip(RNG.random((2, 1, 3, 3)), 0, 0.9)
    heat[0, 0, 1, 1] = 1.0
    fns = {
        "dice": lambda t: F.dice_loss(t, y, sigmoid=True),
        "dice_softmax": lambda t: F.dice_loss(t, lab, softmax=True),
        "tversky": lambda t: F.tversky_loss(t, y, 0.3, 0.7, sigmoid=True),
        "focal": lambda t: nn.FocalLoss()(t, y),
        "dice_bce": lambda t: nn.DiceBCELoss()(t, y),
        "dice_ce": lambda t: nn.DiceCELoss()(t, lab),
        "centernet": lambda t: F.centernet_focal_loss(t, heat),
    }
    gradcheck(fns[name], [x])


def test_loss_errors_name_the_problem():
    x = tr.randn(2, 1, 4, 4)
    with pytest.raises(ValueError, match="target shape"):
        nn.DiceLoss(sigmoid=True)(x, np.zeros((2, 1, 4, 5)))
    with pytest.raises(ValueError, match="sigmoid or softmax"):
        F.dice_loss(x, np.zeros((2, 1, 4, 4)), sigmoid=True, softmax=True)
    with pytest.raises(ValueError, match="labels must be in"):
        nn.DiceLoss(softmax=True)(tr.randn(1, 3, 2, 2), np.full((1, 2, 2), 3))
    with pytest.raises(ValueError, match="reduction"):
        nn.DiceLoss(reduction="avg")(x.sigmoid(), np.zeros((2, 1, 4, 4)))
