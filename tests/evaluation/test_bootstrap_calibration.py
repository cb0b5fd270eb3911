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
