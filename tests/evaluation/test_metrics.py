"""Metrics against values computed by hand on small known inputs."""
from __future__ import annotations

import math

import numpy as np
import pytest

from brainmri.evaluation.metrics import (
    accuracy_score,
    classification_metrics,
    classification_report_text,
    confusion_matrix,
    macro_f1_score,
    roc_auc,
    roc_curve,
)

NAMES = ["a", "b", "c"]
# true:  a a b b c c ; predicted: a b b b c a
Y_TRUE = np.array([0, 0, 1, 1, 2, 2])
Y_PRED = np.array([0, 1, 1, 1, 2, 0])


def one_hot_probs(pred: np.ndarray, k: int = 3, p: float = 0.8) -> np.ndarray:
    out = np.full((pred.size, k), (1 - p) / (k - 1))
    out[np.arange(pred.size), pred] = p
    return out


def test_confusion_matrix_rows_are_true_class():
    cm = confusion_matrix(Y_TRUE, Y_PRED, 3)
    assert cm.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]


def test_confusion_matrix_batched_equals_loop():
    rng = np.random.default_rng(0)
    t = rng.integers(0, 4, (5, 30))
    p = rng.integers(0, 4, (5, 30))
    batched = confusion_matrix(t, p, 4)
    for i in range(5):
        assert (batched[i] == confusion_matrix(t[i], p[i], 4)).all()


def test_classification_metrics_by_hand():
    m = classification_metrics(Y_TRUE, one_hot_probs(Y_PRED), NAMES)
    assert m["n"] == 6
    assert m["accuracy"] == pytest.approx(4 / 6)
    # a: tp1 fp1 fn1 -> P .5 R .5 F .5 ; b: tp2 fp1 fn0 -> P 2/3 R 1 F .8 ; c: tp1 fp0 fn1 -> P 1 R .5 F 2/3
    pc = m["per_class"]
    assert (pc["a"]["precision"], pc["a"]["recall"], pc["a"]["f1"]) == pytest.approx((0.5, 0.5, 0.5))
    assert (pc["b"]["precision"], pc["b"]["recall"], pc["b"]["f1"]) == pytest.approx((2 / 3, 1.0, 0.8))
    assert (pc["c"]["precision"], pc["c"]["recall"], pc["c"]["f1"]) == pytest.approx((1.0, 0.5, 2 / 3))
    assert [pc[c]["support"] for c in NAMES] == [2, 2, 2]
    assert m["macro_f1"] == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    assert m["macro"]["precision"] == pytest.approx((0.5 + 2 / 3 + 1) / 3)
    assert m["weighted"]["f1"] == pytest.approx(m["macro_f1"])  # equal supports
    # kappa: po = 4/6, pe = sum(true_i * pred_i)/36 = (2*2 + 2*3 + 2*1)/36 = 1/3 -> (2/3-1/3)/(2/3) = 0.5
    assert m["kappa"] == pytest.approx(0.5)
    # MCC: c=4 s=6 t=(2,2,2) p=(2,3,1): (24-12)/sqrt((36-14)(36-12)) = 12/sqrt(528)
    assert m["mcc"] == pytest.approx(12 / math.sqrt(528))
    # NLL: correct rows -log(.8), wrong rows -log(.1)
    assert m["loss"] == pytest.approx((4 * -math.log(0.8) + 2 * -math.log(0.1)) / 6)
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]


def test_weighted_average_uses_support():
    t = np.array([0, 0, 0, 1])
    p = np.array([0, 0, 0, 0])
    m = classification_metrics(t, one_hot_probs(p, k=2), ["x", "y"])
    # x: P 3/4 R 1 F 6/7 ; y: P 0 (zero division) R 0 F 0
    assert m["per_class"]["y"]["precision"] == 0.0
    assert m["weighted"]["f1"] == pytest.approx(0.75 * 6 / 7)
    assert m["macro_f1"] == pytest.approx(0.5 * 6 / 7)


def test_roc_auc_by_hand_and_ties():
    # positives scored .9 .4, negatives .5 .1: pairs (.9>.5, .9>.1, .4<.5, .4>.1) -> 3/4
    assert roc_auc([1, 1, 0, 0], [0.9, 0.4, 0.5, 0.1]) == pytest.approx(0.75)
    assert roc_auc([1, 0], [0.5, 0.5]) == pytest.approx(0.5)  # a tie counts one half
    assert roc_auc([1, 1], [0.2, 0.3]) is None  # undefined with one class
    fpr, tpr, _ = roc_curve([1, 1, 0, 0], [0.9, 0.4, 0.5, 0.1])
    assert fpr.tolist() == [0.0, 0.0, 0.5, 0.5, 1.0]
    assert tpr.tolist() == [0.0, 0.5, 0.5, 1.0, 1.0]
    assert np.trapezoid(tpr, fpr) == pytest.approx(0.75)


def test_ovr_auc_macro_skips_undefined_classes():
    t = np.array([0, 0, 1, 1])
    probs = np.array([[0.9, 0.1, 0.0], [0.6, 0.4, 0.0], [0.3, 0.7, 0.0], [0.2, 0.8, 0.0]])
    m = classification_metrics(t, probs, NAMES)
    assert m["per_class"]["c"]["roc_auc"] is None
    assert m["roc_auc"] == pytest.approx(1.0)


def test_batched_scores():
    t = np.array([[0, 1, 2, 2], [0, 0, 0, 0]])
    p = np.array([[0, 1, 2, 1], [0, 0, 0, 0]])
    assert accuracy_score(t, p).tolist() == [0.75, 1.0]
    f1 = macro_f1_score(t, p, num_classes=3)
    assert f1[0] == pytest.approx((1 + 2 / 3 + 2 / 3) / 3)
    assert f1[1] == pytest.approx(1 / 3)  # classes 1 and 2 absent: F1 0 each


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="shape"):
        classification_metrics([0, 1], np.ones((3, 2)) / 2, ["x", "y"])
    with pytest.raises(ValueError, match="labels"):
        classification_metrics([0, 5], np.ones((2, 2)) / 2, ["x", "y"])
    with pytest.raises(ValueError, match="NaN"):
        classification_metrics([0, 1], np.array([[np.nan, 1], [0.5, 0.5]]), ["x", "y"])


def test_report_text_lists_every_class_and_average():
    text = classification_report_text(classification_metrics(Y_TRUE, one_hot_probs(Y_PRED), NAMES))
    for word in ("a", "b", "c", "accuracy", "macro avg", "weighted avg", "MCC", "kappa"):
        assert word in text
    assert "0.667" in text
