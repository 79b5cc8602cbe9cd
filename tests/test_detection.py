"""Detection: boxes, NMS, connected components, CenterNet targets/decoding/model, box augmentation, the
blob baseline, FROC / AP on hand-made cases (no predictions, no ground truth, all false positives)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import tinygrad_rad as tr
from tinygrad_rad import boxes as B
from tinygrad_rad.data.detection import (
    RandomBoxAffine,
    boxes_from_masks,
    patient_folds,
    read_boxes_csv,
    resize_images,
)
from tinygrad_rad.metrics.detection import average_precision, froc, match_hits
from tinygrad_rad.models.detection import CenterNet, centernet_loss, centernet_targets, decode_centernet
from tinygrad_rad.tasks.detect import blob_detect


# ------------------------------------------------------------------------------------------ boxes
def test_box_iou_and_nms_hand_computed():
    a = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]], float)
    iou = B.box_iou(a, a)
    assert iou[0, 1] == pytest.approx(50 / 150) and iou[0, 2] == 0 and iou[1, 1] == 1
    # 0 and 1 overlap with IoU 1/3: kept at threshold 0.5, suppressed at 0.3
    assert B.nms(a, [0.9, 0.8, 0.7], 0.5).tolist() == [0, 1, 2]
    assert B.nms(a, [0.9, 0.8, 0.7], 0.3).tolist() == [0, 2]
    assert B.nms(a, [0.1, 0.8, 0.7], 0.3).tolist() == [1, 2]
    assert B.nms(np.zeros((0, 4)), [], 0.5).tolist() == []


def _naive_nms(boxes, scores, thr):
    def iou(a, b):
        iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        inter = iw * ih
        return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)

    alive = sorted(range(len(scores)), key=lambda i: -scores[i])
    keep = []
    while alive:
        i = alive.pop(0)
        keep.append(i)
        alive = [j for j in alive if iou(boxes[i], boxes[j]) <= thr]
    return keep


def test_nms_matches_naive_loop_and_torchvision():
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 50, (60, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(2, 20, (60, 2))], 1)
    scores = rng.random(60)
    got = B.nms(boxes, scores, 0.4)
    assert got.tolist() == _naive_nms(boxes, scores, 0.4)
    try:
        import torch
        import torchvision
    except ImportError:
        return
    np.testing.assert_array_equal(
        got, torchvision.ops.nms(torch.tensor(boxes), torch.tensor(scores), 0.4).numpy()
    )


def test_label_components_and_boxes():
    m = np.zeros((6, 8), bool)
    m[0:2, 0:2] = True
    m[2, 2] = True  # touches the first blob diagonally only
    m[4:6, 5:8] = True
    lab, n = B.label_components(m, 4)
    assert n == 3
    lab8, n8 = B.label_components(m, 8)
    assert n8 == 2
    np.testing.assert_array_equal(B.boxes_from_mask(m, 4), [[0, 0, 2, 2], [2, 2, 3, 3], [5, 4, 8, 6]])
    assert B.boxes_from_mask(np.zeros((3, 3))).shape == (0, 4)
    ndi = pytest.importorskip("scipy.ndimage")
    rng = np.random.default_rng(1)
    r = rng.random((40, 40)) > 0.6
    assert B.label_components(r, 4)[1] == ndi.label(r)[1]
    assert B.label_components(r, 8)[1] == ndi.label(r, structure=np.ones((3, 3)))[1]


# ------------------------------------------------------------------------------------- CenterNet
def test_centernet_targets_decode_roundtrip():
    boxes = np.array([[10, 12, 20, 30], [40, 40, 45, 44]], float)
    t = centernet_targets(boxes, 32, 32, stride=2)
    assert t["heat"].shape == (1, 32, 32) and t["mask"].sum() == 2
    assert t["heat"].max() == 1.0 and (t["heat"] == 1.0).sum() == 2
    # perfect head outputs (heat as logits with peaks) decode back to the boxes
    logits = np.where(t["heat"] >= 1.0, 10.0, -10.0)
    got, scores = decode_centernet(logits, t["size"], t["offset"], stride=2, nms_iou=None)
    order = np.argsort(got[:, 0])
    np.testing.assert_allclose(got[order], boxes, atol=1e-5)
    assert (scores > 0.99).all()


def test_centernet_model_shapes_loss_and_gradients():
    net = CenterNet(base_channels=4, depth=2, stride=2)
    x = tr.randn(2, 1, 16, 16)
    out = net(x)
    assert out["heat"].shape == (2, 1, 8, 8) and out["size"].shape == (2, 2, 8, 8)
    # the heat-map starts at the prior probability 0.01 on average
    assert 0.001 < float(out["heat"].sigmoid().numpy().mean()) < 0.1
    ts = [centernet_targets(np.array([[2, 2, 8, 8]], float), 8, 8, 2) for _ in range(2)]
    st = {k: np.stack([t[k] for t in ts]) for k in ts[0]}
    loss, parts = centernet_loss(out, st["heat"], st["size"], st["offset"], st["mask"])
    loss.backward()
    assert set(parts) == {"heat", "size", "offset"} and np.isfinite(loss.item())
    assert all(p.grad is not None for p in net.parameters())
    with pytest.raises(ValueError, match="divisible"):
        net(tr.randn(1, 1, 10, 16))
    with pytest.raises(ValueError, match="stride"):
        CenterNet(depth=2, stride=8)


# ---------------------------------------------------------------------------------- data helpers
def test_random_box_affine_keeps_boxes_on_the_object():
    img = np.zeros((1, 64, 64), np.float32)
    img[0, 20:30, 10:18] = 1.0
    box = np.array([[10, 20, 18, 30]], float)
    aug = RandomBoxAffine(hflip=0.5, vflip=0.5, translate=0.1, scale=(0.8, 1.2))
    rng = np.random.default_rng(0)
    for _ in range(8):
        out, b = aug(img, box, rng)
        assert b.shape == (1, 4)
        x0, y0, x1, y1 = np.round(b[0]).astype(int)
        inside = out[0, y0:y1, x0:x1].sum()
        assert inside > 0.85 * out[0].sum()  # the bright object stays inside the moved box


def test_read_boxes_csv_and_folds(tmp_path):
    p = tmp_path / "b.csv"
    p.write_text("slice_id,x_min,y_min,x_max,y_max,malignancy\na,1,2,5,6,3\na,7,7,9,9,1\nb,0,0,4,4,2\n")
    t = read_boxes_csv(p)
    np.testing.assert_array_equal(t["a"], [[1, 2, 5, 6], [7, 7, 9, 9]])
    p.write_text("slice_id,x_min,y_min,x_max,y_max\na,5,2,1,6\n")
    with pytest.raises(ValueError, match="line 2"):
        read_boxes_csv(p)
    patient = np.array([1, 1, 2, 3, 3, 3, 4, 5, 6, 7, 8, 8])
    folds = patient_folds(patient, 4)
    assert len(folds) == 4
    seen = np.concatenate([te for _, te in folds])
    assert sorted(seen.tolist()) == list(range(len(patient)))
    for tr_idx, te_idx in folds:
        assert not set(patient[tr_idx]) & set(patient[te_idx])
    assert resize_images(np.ones((2, 8, 8)), 4).shape == (2, 4, 4)


def test_blob_baseline_prefers_blobs_over_vessels():
    img = np.zeros((64, 64))
    yy, xx = np.mgrid[:64, :64]
    img += np.exp(-((yy - 20) ** 2 + (xx - 40) ** 2) / (2 * 3.0**2))  # a round nodule
    img[:, 10:12] += 1.0  # a straight vessel
    boxes, scores = blob_detect(img, top_k=5)
    cx, cy = (boxes[0, 0] + boxes[0, 2]) / 2, (boxes[0, 1] + boxes[0, 3]) / 2
    assert abs(cx - 40.5) <= 1.5 and abs(cy - 20.5) <= 1.5
    assert (scores[:-1] >= scores[1:]).all()


# --------------------------------------------------------------------------------------- metrics
GT = [np.array([[10, 10, 20, 20]], float), np.array([[30, 30, 40, 40], [50, 50, 54, 54]], float)]


def test_hit_criterion_centre_or_iou():
    pred = np.array([[14, 14, 30, 30], [0, 0, 11, 11], [11, 11, 19, 19]], float)
    hit, iou = match_hits(pred, GT[0], 0.5)
    # centre (22, 22) outside, IoU small -> miss; centre (5.5, 5.5) outside -> miss; inside -> hit
    assert hit[:, 0].tolist() == [False, False, True]
    assert match_hits(pred, GT[0], 0.5, criterion="iou")[0][:, 0].tolist() == [False, False, True]
    # IoUs: 36/320 = 0.11, 1/220 = 0.005, 64/100 = 0.64
    assert match_hits(pred, GT[0], 0.1, criterion="iou")[0][:, 0].tolist() == [True, False, True]
    assert match_hits(pred, GT[0], 0.5, criterion="center")[0][:, 0].tolist() == [False, False, True]


def test_froc_hand_computed():
    pb = [
        np.array([[11, 11, 19, 19], [60, 60, 70, 70]], float),
        np.array([[31, 31, 39, 39], [32, 32, 38, 38], [0, 0, 5, 5]], float),
    ]
    ps = [np.array([0.9, 0.8]), np.array([0.7, 0.6, 0.5])]
    r = froc(pb, ps, GT)
    # order: TP(0.9) FP(0.8) TP(0.7) duplicate(0.6, ignored) FP(0.5); 2 images
    np.testing.assert_allclose(r["fps"], [0, 0.5, 0.5, 0.5, 1.0])
    np.testing.assert_allclose(r["sensitivity"], [1 / 3, 1 / 3, 2 / 3, 2 / 3, 2 / 3])
    assert r["sensitivity_at"]["1/8"] == pytest.approx(1 / 3)
    assert r["sensitivity_at"]["1/2"] == pytest.approx(2 / 3)
    assert r["sensitivity_at"]["8"] == pytest.approx(2 / 3)
    assert r["mean_sensitivity"] == pytest.approx((2 * (1 / 3) + 5 * (2 / 3)) / 7)


def test_froc_and_ap_edge_cases():
    empty = [np.zeros((0, 4)), np.zeros((0, 4))]
    none = [np.zeros(0), np.zeros(0)]
    r = froc(empty, none, GT)  # no predictions
    assert r["mean_sensitivity"] == 0.0 and r["n_pred"] == 0
    assert average_precision(empty, none, GT) == 0.0
    far = [np.array([[80, 80, 90, 90]], float), np.array([[70, 0, 75, 5]], float)]
    sc = [np.array([0.9]), np.array([0.8])]
    r = froc(far, sc, GT)  # all false positives
    assert r["mean_sensitivity"] == 0.0 and r["fps"][-1] == 1.0
    assert average_precision(far, sc, GT) == 0.0
    r = froc(far, sc, [np.zeros((0, 4)), np.zeros((0, 4))])  # no ground truth: undefined
    assert math.isnan(r["mean_sensitivity"])
    assert math.isnan(average_precision(far, sc, [np.zeros((0, 4)), np.zeros((0, 4))]))
    with pytest.raises(ValueError, match="one entry per image"):
        froc(far, sc, GT[:1])


def test_average_precision_hand_computed():
    # scores: TP 0.9, FP 0.8, TP 0.7 over 3 true boxes -> recall .33,.33,.67; precision 1, .5, .67
    pb = [np.array([[11, 11, 19, 19], [60, 60, 70, 70]], float), np.array([[30, 30, 40, 40]], float)]
    ps = [np.array([0.9, 0.8]), np.array([0.7])]
    ap = average_precision(pb, ps, GT, 0.5)
    assert ap == pytest.approx(1 / 3 * 1.0 + 1 / 3 * 2 / 3)
    # a perfect detector has AP 1
    assert average_precision(GT, [np.array([1.0]), np.array([0.9, 0.8])], GT, 0.5) == pytest.approx(1.0)


# -------------------------------------------------------------------------------------- real data
def test_lidc_boxes_from_masks_match_csv(data_dir):
    d = data_dir / "lidc_nodules"
    if not (d / "boxes_512.csv").is_file():
        pytest.skip("lidc_nodules absent")
    with np.load(d / "lidc_nodule_slices_512.npz", allow_pickle=False) as z:
        masks, ids = z["masks"][:20], z["ids"][:20]
    table = read_boxes_csv(d / "boxes_512.csv")
    for b, i in zip(boxes_from_masks(masks), ids):
        np.testing.assert_array_equal(np.sort(b, 0), np.sort(table[str(i)], 0))
