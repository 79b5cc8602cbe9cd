"""Segmentation metrics on hand-made masks; the exact EDT against brute force (and scipy when present)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tinygrad_rad.metrics import segmentation as M


def _square(h, w, r0, r1, c0, c1):
    m = np.zeros((h, w), bool)
    m[r0:r1, c0:c1] = True
    return m


def _brute_edt(mask, spacing=(1.0, 1.0)):
    zeros = np.argwhere(~mask.astype(bool))
    out = np.empty(mask.shape)
    for i in range(mask.shape[0]):
        for j in range(mask.shape[1]):
            d = (zeros - (i, j)) * np.asarray(spacing)
            out[i, j] = np.sqrt((d**2).sum(1)).min()
    return out


@pytest.mark.parametrize("seed", range(6))
def test_edt_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    shape = tuple(rng.integers(1, 14, 2))
    m = rng.random(shape) > rng.uniform(0.2, 0.95)
    m.flat[0] = False  # at least one zero
    spacing = tuple(rng.uniform(0.4, 2.5, 2))
    np.testing.assert_allclose(
        M.distance_transform_edt(m, spacing), _brute_edt(m, spacing), rtol=1e-12, atol=1e-12
    )


def test_edt_matches_scipy_when_installed():
    ndi = pytest.importorskip("scipy.ndimage")
    rng = np.random.default_rng(1)
    m = rng.random((64, 48)) > 0.05
    np.testing.assert_allclose(
        M.distance_transform_edt(m, (0.7, 1.3)), ndi.distance_transform_edt(m, sampling=(0.7, 1.3))
    )
    assert np.isinf(M.distance_transform_edt(np.ones((3, 3)))).all()


def test_dice_iou_hand_computed():
    a = _square(8, 8, 0, 4, 0, 4)  # 16 px
    b = _square(8, 8, 0, 4, 2, 6)  # 16 px, overlap 8
    assert M.dice_score(a, b) == pytest.approx(2 * 8 / 32)
    assert M.iou_score(a, b) == pytest.approx(8 / 24)
    assert M.dice_score(a, a) == 1.0 and M.iou_score(a, a) == 1.0


def test_empty_masks_convention():
    z, a = np.zeros((6, 6), bool), _square(6, 6, 1, 3, 1, 3)
    assert M.dice_score(z, z) == 1.0 and M.iou_score(z, z) == 1.0
    assert M.hd95(z, z) == 0.0 and M.average_surface_distance(z, z) == 0.0
    for p, t in ((z, a), (a, z)):
        assert M.dice_score(p, t) == 0.0 and M.iou_score(p, t) == 0.0
        assert math.isinf(M.hd95(p, t)) and math.isinf(M.average_surface_distance(p, t))


def test_surface_distances_of_shifted_squares():
    a = _square(20, 20, 5, 10, 5, 10)
    b = _square(20, 20, 5, 10, 8, 13)  # shifted 3 columns right
    # every surface pixel of one square is within 3 px of the other's surface; the far edge is exactly 3
    assert M.hausdorff_distance(a, b) == pytest.approx(3.0)
    assert M.hd95(a, a) == 0.0
    # spacing scales distances: 3 columns of 0.5 mm
    assert M.hausdorff_distance(a, b, spacing=(1.0, 0.5)) == pytest.approx(1.5)
    asd = M.average_surface_distance(a, b)
    assert 0 < asd < 3.0


def test_hd95_matches_scipy_reference():
    ndi = pytest.importorskip("scipy.ndimage")
    rng = np.random.default_rng(3)
    p = ndi.gaussian_filter(rng.random((40, 40)), 3) > 0.5
    t = ndi.gaussian_filter(rng.random((40, 40)), 3) > 0.5
    assert p.any() and t.any()
    sp = p ^ ndi.binary_erosion(p)
    st = t ^ ndi.binary_erosion(t)
    d_pt = ndi.distance_transform_edt(~st)[sp]
    d_tp = ndi.distance_transform_edt(~sp)[st]
    assert M.hd95(p, t) == pytest.approx(max(np.percentile(d_pt, 95), np.percentile(d_tp, 95)))
    assert M.average_surface_distance(p, t) == pytest.approx(np.concatenate([d_pt, d_tp]).mean())


def test_report_and_aggregate():
    a = _square(8, 8, 2, 6, 2, 6)
    z = np.zeros((8, 8), bool)
    rows = M.segmentation_report(np.stack([a, z, a]), np.stack([a, a, z]))
    assert [r["dice"] for r in rows] == [1.0, 0.0, 0.0]
    agg = M.aggregate(rows)
    assert agg["n"] == 3 and agg["dice"] == pytest.approx(1 / 3)
    assert agg["hd95"] == 0.0 and agg["hd95_n_inf"] == 2  # infinite distances left out of the mean, counted
    with pytest.raises(ValueError, match="differ"):
        M.dice_score(a, a[:4])
