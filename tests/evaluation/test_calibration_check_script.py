"""``scripts/calibration_check.py --class-bias``: the temperature-plus-bias fit recovers a known
temperature and class bias, and its cross-validated log-loss prefers it only when the data have one."""
from __future__ import annotations

import numpy as np
import torch


def _sample(t: float, b: np.ndarray, n: int = 4000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 3, (n, len(b)))
    p = torch.softmax(torch.as_tensor(z / t + b), 1).numpy()
    y = np.array([rng.choice(len(b), p=row) for row in p])
    return z, y


def test_fit_recovers_temperature_and_bias(load_script) -> None:
    check = load_script("calibration_check")
    bias = np.array([0.0, 1.0, -1.0, 0.5])
    z, y = _sample(2.0, bias)
    t, b = check._fit_scaling(z, y, bias=True)
    assert abs(t - 2.0) < 0.2
    assert np.allclose(b - b.mean(), bias - bias.mean(), atol=0.2)  # softmax fixes b up to a constant
    t_only, b0 = check._fit_scaling(z, y, bias=False)
    assert not b0.any() and t_only > 0


def test_cross_validation_prefers_bias_only_when_there_is_one(load_script) -> None:
    check = load_script("calibration_check")
    z, y = _sample(1.5, np.array([0.0, 1.5, -1.5, 0.0]), n=2000)
    (t_nll, _), (b_nll, se) = check._cv_nll(z, y, bias=False), check._cv_nll(z, y, bias=True)
    assert t_nll - b_nll > se  # a real class bias: clearly better held out
    z, y = _sample(1.5, np.zeros(4), n=2000, seed=1)
    (t_nll, _), (b_nll, se) = check._cv_nll(z, y, bias=False), check._cv_nll(z, y, bias=True)
    assert abs(t_nll - b_nll) < se  # none: no held-out gain beyond noise
