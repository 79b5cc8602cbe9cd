"""Classification metrics vs scikit-learn (random data with ties) and hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tinygrad_rad import metrics as M


def _tied_binary(rng, n=300):
    y = rng.integers(0, 2, n)
    s = rng.integers(0, 8, n) / 8.0  # few distinct scores -> many ties
    return y, s


# ----------------------------------------------------------------------------- hand-computed
def test_auc_hand_cases():
    assert M.roc_auc_score([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    # a tie between one positive and one negative counts 1/2: pairs (p, n): 4 pairs, 3 won + 0.5
    assert M.roc_auc_score([0, 1, 0, 1], [0.2, 0.5, 0.5, 0.9]) == pytest.approx(3.5 / 4)
    assert M.roc_auc_score([1, 0], [0.9, 0.1]) == 1.0
    assert M.roc_auc_score([1, 0], [0.1, 0.9]) == 0.0
    assert M.roc_auc_score([1, 0, 1, 0], [0.5, 0.5, 0.5, 0.5]) == 0.5


def test_counting_metrics_hand():
    yt = np.array([1, 1, 1, 0, 0, 0, 0, 1])
    yp = np.array([1, 0, 1, 0, 1, 0, 0, 1])  # tp=3 fn=1 tn=3 fp=1
    assert M.sensitivity(yt, yp) == pytest.approx(3 / 4)
    assert M.specificity(yt, yp) == pytest.approx(3 / 4)
    assert M.ppv(yt, yp) == pytest.approx(3 / 4)
    assert M.npv(yt, yp) == pytest.approx(3 / 4)
    assert M.f1_score(yt, yp) == pytest.approx(0.75)
    assert M.accuracy(yt, yp) == pytest.approx(0.75)
    np.testing.assert_array_equal(M.confusion_matrix(yt, yp), [[3, 1], [1, 3]])
    assert M.balanced_accuracy([0, 0, 0, 1], [0, 0, 0, 0]) == pytest.approx(0.5)


def test_binary_report_hand():
    r = M.binary_report([0, 1, 1, 0], [0.2, 0.9, 0.4, 0.6])
    assert (r["tp"], r["tn"], r["fp"], r["fn"]) == (1, 1, 1, 1)
    assert r["accuracy"] == 0.5 and r["sensitivity"] == 0.5 and r["specificity"] == 0.5
    assert r["auc"] == pytest.approx(0.75)
    r = M.binary_report([0, 1, 1, 0], [0.2, 0.9, 0.4, 0.6], threshold=0.3)
    assert r["sensitivity"] == 1.0 and r["specificity"] == 0.5 and r["npv"] == 1.0
    r = M.binary_report([1, 1], [0.7, 0.2])  # one class only: AUC undefined -> nan, others fine
    assert math.isnan(r["auc"]) and math.isnan(r["specificity"]) and r["sensitivity"] == 0.5


def test_degenerate_raise_clear_errors():
    with pytest.raises(ValueError, match="only one class"):
        M.roc_auc_score([1, 1, 1], [0.2, 0.3, 0.9])
    with pytest.raises(ValueError, match="both classes"):
        M.roc_curve([0, 0], [0.1, 0.2])
    with pytest.raises(ValueError, match="absent"):
        M.roc_auc_score([0, 1, 1], np.full((3, 3), 1 / 3))
    with pytest.raises(ValueError, match="samples"):
        M.roc_auc_score([0, 1, 1], [0.1, 0.2])
    with pytest.raises(ValueError, match="only 0 and 1"):
        M.sensitivity([0, 2], [0, 1])
    with pytest.raises(ValueError, match="unknown task"):
        M.evaluate_predictions("regression", [0, 1], [0.1, 0.9])


# ----------------------------------------------------------------------------- vs scikit-learn
def test_binary_vs_sklearn():
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(1)
    for _ in range(5):
        y, s = _tied_binary(rng)
        assert M.roc_auc_score(y, s) == pytest.approx(sk.roc_auc_score(y, s), abs=1e-12)
        fpr, tpr, thr = M.roc_curve(y, s)
        efpr, etpr, ethr = sk.roc_curve(y, s, drop_intermediate=False)
        np.testing.assert_allclose(fpr, efpr)
        np.testing.assert_allclose(tpr, etpr)
        np.testing.assert_array_equal(thr[1:], ethr[1:])
        assert np.isinf(thr[0])
        fpr, tpr, _ = M.roc_curve(y, s, drop_intermediate=True)
        efpr, etpr, _ = sk.roc_curve(y, s, drop_intermediate=True)
        np.testing.assert_allclose(fpr, efpr)
        np.testing.assert_allclose(tpr, etpr)
        yp = (s >= 0.5).astype(int)
        assert M.accuracy(y, yp) == pytest.approx(sk.accuracy_score(y, yp))
        assert M.sensitivity(y, yp) == pytest.approx(sk.recall_score(y, yp))
        assert M.specificity(y, yp) == pytest.approx(sk.recall_score(1 - y, 1 - yp))
        assert M.ppv(y, yp) == pytest.approx(sk.precision_score(y, yp))
        assert M.npv(y, yp) == pytest.approx(sk.precision_score(1 - y, 1 - yp))
        assert M.f1_score(y, yp) == pytest.approx(sk.f1_score(y, yp))
        assert M.balanced_accuracy(y, yp) == pytest.approx(sk.balanced_accuracy_score(y, yp))
        np.testing.assert_array_equal(M.confusion_matrix(y, yp), sk.confusion_matrix(y, yp))


def test_multiclass_and_multilabel_vs_sklearn():
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(2)
    k, n = 5, 400
    y = rng.integers(0, k, n)
    logits = np.round(rng.normal(size=(n, k)) + np.eye(k)[y], 1)  # rounded -> ties
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    for avg in ("macro", "weighted"):
        assert M.roc_auc_score(y, p, average=avg) == pytest.approx(
            sk.roc_auc_score(y, p, multi_class="ovr", average=avg), abs=1e-12)
    pred = p.argmax(1)
    np.testing.assert_array_equal(M.confusion_matrix(y, pred), sk.confusion_matrix(y, pred))
    assert M.balanced_accuracy(y, pred) == pytest.approx(sk.balanced_accuracy_score(y, pred))
    assert M.f1_score(y, pred, average="macro") == pytest.approx(sk.f1_score(y, pred, average="macro"))

    yl = rng.integers(0, 2, (n, 4))
    sl = np.round(rng.random((n, 4)), 1)
    for avg in ("macro", "micro", "weighted"):
        assert M.roc_auc_score(yl, sl, average=avg) == pytest.approx(
            sk.roc_auc_score(yl, sl, average=avg), abs=1e-12)
    np.testing.assert_allclose(M.roc_auc_score(yl, sl, average=None), sk.roc_auc_score(yl, sl, average=None))


def test_evaluate_predictions_medmnist_convention():
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, (200, 1))
    pos = np.round(rng.random(200), 2)
    r = M.evaluate_predictions("binary-class", y, np.stack([1 - pos, pos], 1))
    assert r["auc"] == pytest.approx(sk.roc_auc_score(y[:, 0], pos))
    assert r["acc"] == pytest.approx(np.mean((pos >= 0.5) == y[:, 0]))
    assert M.evaluate_predictions("binary-class", y, pos) == r

    yc = rng.integers(0, 3, 150)
    pc = rng.dirichlet(np.ones(3), 150)
    r = M.evaluate_predictions("multi-class", yc[:, None], pc)
    assert r["auc"] == pytest.approx(sk.roc_auc_score(yc, pc, multi_class="ovr"))
    assert r["acc"] == pytest.approx(sk.accuracy_score(yc, pc.argmax(1)))

    yl = rng.integers(0, 2, (150, 3))
    pl = rng.random((150, 3))
    r = M.evaluate_predictions("multi-label, binary-class", yl, pl)
    aucs = [sk.roc_auc_score(yl[:, j], pl[:, j]) for j in range(3)]
    assert r["auc"] == pytest.approx(np.mean(aucs))
    assert r["acc"] == pytest.approx(np.mean((pl >= 0.5) == yl))


def test_undefined_auc_policy_and_youden():
    yl = np.array([[0, 1], [1, 1], [0, 1], [1, 1]])  # label 1 is always positive: AUC undefined
    pl = np.array([[0.1, 0.3], [0.8, 0.6], [0.3, 0.2], [0.6, 0.9]])
    with pytest.raises(ValueError, match="label 1"):
        M.evaluate_predictions("multi-label", yl, pl)
    r = M.evaluate_predictions("multi-label", yl, pl, undefined="nan")
    assert r["auc"] == 1.0 and r["acc"] == pytest.approx((1.0 + 0.5) / 2)
    r = M.evaluate_predictions("binary-class", [1, 1], [0.2, 0.7], undefined="nan")
    assert math.isnan(r["auc"]) and r["acc"] == 0.5
    r = M.evaluate_predictions("multi-class", [0, 0, 1], np.eye(3)[[0, 1, 1]], undefined="nan")
    # class 0: pos scores {1, 0} vs neg {0} -> (1 + 0.5) / 2; class 1: pos {1} vs neg {0, 1} -> same;
    # class 2 never occurs: left out
    assert r["auc"] == pytest.approx(0.75)
    assert M.youden_threshold([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == 0.8
    assert M.youden_threshold([0, 0, 1, 1, 1], [0.1, 0.2, 0.3, 0.9, 0.95]) == 0.3


def test_bootstrap_ci_brackets_the_value():
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 300)
    s = y * 0.5 + rng.random(300)
    r = M.bootstrap_ci(M.roc_auc_score, y, s, n_boot=200, seed=1)
    assert r["lower"] < r["value"] < r["upper"] and r["n_boot"] == 200
    assert r == M.bootstrap_ci(M.roc_auc_score, y, s, n_boot=200, seed=1)
    # the spread of the interval is about 4 standard errors of AUC (Hanley-McNeil), not 0 and not huge
    assert 0.02 < r["upper"] - r["lower"] < 0.2


def test_classification_report_leaves_undefined_values_out_as_nan():
    # binary with no positives: AUC and sensitivity undefined, specificity defined
    r = M.classification_report("binary-class", [[0], [0], [0]], [[0.9, 0.1], [0.4, 0.6], [0.8, 0.2]])
    assert math.isnan(r["auc"]) and math.isnan(r["sensitivity"]) and r["specificity"] == pytest.approx(2 / 3)
    assert r["confusion_matrix"] == [[2, 1], [0, 0]] and r["acc"] == pytest.approx(2 / 3)
    # multi-class with class 2 absent: its AUC is nan and left out of the macro mean
    p = np.array([[0.7, 0.2, 0.1], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1], [0.1, 0.8, 0.1]])
    r = M.classification_report("multi-class", [0, 1, 0, 1], p)
    assert math.isnan(r["per_class_auc"][2]) and r["auc"] == pytest.approx(1.0)
    # multi-label: ACC over every (image, label) decision at the threshold
    r = M.classification_report("multi-label", [[1, 0], [0, 1]], [[0.9, 0.6], [0.2, 0.7]])
    assert r["acc"] == pytest.approx(3 / 4) and r["per_label_auc"] == [1.0, 1.0]
