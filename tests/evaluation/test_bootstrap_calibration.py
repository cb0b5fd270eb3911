"""Bootstrap intervals and temperature scaling."""
from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import torch

from brainmri.evaluation.bootstrap import bootstrap_ci
from brainmri.evaluation.calibration import expected_calibration_error, fit_temperature, reliability_bins, softmax_with_temperature
from brainmri.evaluation.metrics import accuracy_score, macro_f1_score


def noisy_predictions(n: int, acc: float = 0.8, k: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    wrong = rng.random(n) > acc
    pred = np.where(wrong, (y + rng.integers(1, k, n)) % k, y)
    return y, pred


@pytest.mark.parametrize("metric", [accuracy_score, partial(macro_f1_score, num_classes=4)])
def test_ci_contains_point_estimate_and_narrows_with_n(metric):
    widths = []
    for n in (100, 1600):
        y, p = noisy_predictions(n)
        lo, hi = bootstrap_ci(y, p, metric, n_boot=500, seed=1)
        point = float(metric(y, p))
        assert lo <= point <= hi
        assert 0 <= lo < hi <= 1
        widths.append(hi - lo)
    assert widths[1] < widths[0] / 2  # width ~ 1/sqrt(n): 4x narrower for 16x the data


def test_ci_is_deterministic_and_works_with_plain_metrics():
    y, p = noisy_predictions(200)
    a = bootstrap_ci(y, p, accuracy_score, n_boot=300, seed=3)
    assert a == bootstrap_ci(y, p, accuracy_score, n_boot=300, seed=3)
    looped = bootstrap_ci(y, p, lambda t, q: float(np.mean(t == q)) if t.ndim == 1 else None, n_boot=300, seed=3)
    assert looped == pytest.approx(a)  # the per-resample fallback draws the same indices


def test_ci_empty_input_is_nan():
    lo, hi = bootstrap_ci(np.array([]), np.array([]), accuracy_score)
    assert np.isnan(lo) and np.isnan(hi)


def overconfident_logits(n: int = 3000, k: int = 4, scale: float = 4.0, seed: int = 0):
    """Labels drawn from softmax(z): z is calibrated by construction, ``scale * z`` is not."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, k, generator=g) * 1.5
    y = torch.multinomial(torch.softmax(z, 1), 1, generator=g).squeeze(1)
    return z * scale, y


def test_temperature_scaling_lowers_ece_on_overconfident_model():
    logits, y = overconfident_logits()
    t = fit_temperature(logits, y)
    assert 2.5 < t < 6.0  # recovers the over-confidence factor (4)
    before = expected_calibration_error(softmax_with_temperature(logits, 1.0), y.numpy())
    after = expected_calibration_error(softmax_with_temperature(logits, t), y.numpy())
    assert before > 0.1
    assert after < before / 3
    # accuracy unchanged: scaling never moves the argmax
    assert (softmax_with_temperature(logits, t).argmax(1) == logits.argmax(1).numpy()).all()


def test_fit_temperature_is_robust():
    assert fit_temperature(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long)) == 1.0
    assert fit_temperature(torch.tensor([[float("nan"), 0.0]]), torch.tensor([0])) == 1.0
    t = fit_temperature(np.array([[5.0, 0.0], [0.0, 5.0]]), np.array([0, 1]))  # perfect: sharpen, stay finite
    assert 0.05 <= t <= 20.0
    with pytest.raises(ValueError, match="labels"):
        fit_temperature(torch.zeros(2, 2), torch.tensor([0, 3]))


def test_ece_by_hand():
    # two samples at confidence .9 (one right, one wrong): |0.5 - 0.9| = 0.4
    probs = np.array([[0.9, 0.1], [0.9, 0.1]])
    assert expected_calibration_error(probs, np.array([0, 1])) == pytest.approx(0.4)
    assert expected_calibration_error(np.array([[1.0, 0.0]]), np.array([0])) == pytest.approx(0.0)
    b = reliability_bins(probs, np.array([0, 1]), n_bins=10)
    assert b["count"].sum() == 2 and b["count"][8] == 2  # 0.9 lies in (0.8, 0.9]


def test_fit_temperature_accepts_logits_made_under_inference_mode():
    """Logits computed for evaluation are inference tensors; fitting must still work (not fall back to T=1)."""
    import torch

    from brainmri.evaluation.calibration import fit_temperature

    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 4, (400,), generator=g)
    with torch.inference_mode():
        logits = torch.randn(400, 4, generator=g) + 6.0 * torch.nn.functional.one_hot(labels, 4)
        logits[:60] = torch.roll(logits[:60], 1, dims=1)  # 15% confidently wrong: over-confident
    assert fit_temperature(logits, labels) > 1.5


def _top_label_case(n: int, seed: int, a_true: float, b_true: float, k: int = 4):
    """Logits whose top-label correctness follows sigmoid(a_true * logit(c) + b_true), c the top
    softmax probability: a model under-confident in its middle range (a shape a temperature cannot mend)."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 1.0, (n, k)) * rng.uniform(0.5, 4.0, (n, 1))
    p = softmax_with_temperature(logits, 1.0)
    c = np.clip(p.max(1), 1e-6, 1 - 1e-6)
    p_right = 1.0 / (1.0 + np.exp(-(a_true * np.log(c / (1 - c)) + b_true)))
    top = p.argmax(1)
    wrong = (top + rng.integers(1, k, n)) % k
    y = np.where(rng.random(n) < p_right, top, wrong)
    return logits, y


def test_top_label_scaling_mends_what_one_temperature_cannot():
    from brainmri.evaluation.calibration import calibrated_probs, fit_top_label

    logits, y = _top_label_case(4000, 0, a_true=0.6, b_true=1.5)
    fit_l, fit_y, test_l, test_y = logits[:2000], y[:2000], logits[2000:], y[2000:]
    t = fit_temperature(fit_l, fit_y)
    top = fit_top_label(fit_l, fit_y, t)
    assert top is not None and top["cv_nll_top_label"] < top["cv_nll_temperature"]
    only_t = expected_calibration_error(softmax_with_temperature(test_l, t), test_y)
    both = expected_calibration_error(calibrated_probs(test_l, {"temperature": t, "top_label": top}), test_y)
    assert both < only_t * 0.6
    assert (calibrated_probs(test_l, {"temperature": t, "top_label": top}).argmax(1) == test_l.argmax(1)).all()


def test_top_label_scaling_is_left_out_when_the_temperature_already_suffices():
    from brainmri.evaluation.calibration import fit_top_label

    rng = np.random.default_rng(1)
    logits = rng.normal(0.0, 1.0, (2000, 4)) * rng.uniform(0.5, 4.0, (2000, 1))
    p = softmax_with_temperature(logits, 1.0)
    y = (rng.random((2000, 1)) > p.cumsum(1)).sum(1)  # labels drawn from the model itself: calibrated at T = 1
    assert fit_top_label(logits, y, fit_temperature(logits, y)) is None
    assert fit_top_label(logits[:30], y[:30], 1.0) is None  # too few to fit two numbers honestly
    perfect = np.eye(4)[np.arange(200) % 4] * 8.0
    assert fit_top_label(perfect, np.arange(200) % 4, 1.0) is None  # no errors to learn from


def test_top_label_scaling_never_changes_the_class_and_keeps_a_distribution():
    from brainmri.evaluation.calibration import apply_top_label, calibrated_probs

    p = np.array([[0.34, 0.24, 0.02, 0.40], [0.43, 0.54, 0.01, 0.02], [0.97, 0.01, 0.01, 0.01], [0.25, 0.25, 0.25, 0.25]])
    for params in ({"a": 1.6, "b": -1.5}, {"a": 0.5, "b": 2.0}):
        q = apply_top_label(p, params)
        assert np.allclose(q.sum(1), 1.0) and (q >= 0).all()
        assert (q.argmax(1) == p.argmax(1)).all()
        top = p.argmax(1)[:3]
        assert (q[np.arange(3), top] > np.sort(q[:3], 1)[:, -2]).all()  # a near tie stays a (strict) near tie
        # the other classes keep their ratios
        assert q[2, 1] / q[2, 2] == pytest.approx(1.0) and q[0, 0] / q[0, 1] == pytest.approx(0.34 / 0.24)
    sharpened = apply_top_label(p, {"a": 0.5, "b": 2.0})
    assert sharpened[1, 1] > p[1, 1]  # under-confident middle: raised
    assert np.array_equal(apply_top_label(p, None), p)
    z = np.log(p)
    assert np.allclose(calibrated_probs(z, 1.0), p) and np.allclose(calibrated_probs(z, {"temperature": 1.0}), p)


def test_macro_f1_interval_scores_a_resample_missing_a_rare_class_like_the_full_set():
    """30 gliomas and 1 notumor, all right: macro F1 is 1 and so is every resample's, the ones
    that miss the single notumor too (they used to score it F1 = 0, giving an interval down to 0.5)."""
    y = np.array([0] * 30 + [2])
    metric = partial(macro_f1_score, num_classes=4, classes=[0, 2], present_only=True)
    assert metric(y, y) == 1.0
    assert bootstrap_ci(y, y, metric, n_boot=200) == (1.0, 1.0)
    old = partial(macro_f1_score, num_classes=4, classes=[0, 2])
    assert bootstrap_ci(y, y, old, n_boot=200)[0] == 0.5  # the old rule, for contrast
    wrong = y.copy()
    wrong[-1] = 0  # the notumor called glioma: present, and scored
    assert metric(y, wrong) == pytest.approx((2 * 30 / 61 + 0) / 2)
