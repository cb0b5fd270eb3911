"""Percentile bootstrap confidence intervals, vectorised over resamples.

A test set of a few hundred scans gives an accuracy that can move by several points from one
sample of patients to the next; the interval says how far. Resampling indices are drawn as one
``(n_boot, N)`` matrix and the metric is evaluated on all rows at once when it supports batches
(as :func:`~brainmri.evaluation.metrics.accuracy_score` and
:func:`~brainmri.evaluation.metrics.macro_f1_score` do); other metrics fall back to a loop.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

MAX_CHUNK_ELEMENTS = 4_000_000  # resampled labels held in memory at once


def _batched(metric_fn: Callable, t: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Evaluate ``metric_fn`` on rows of (B, N, ...) arrays, vectorised when it allows."""
    try:
        out = np.asarray(metric_fn(t, p), dtype=np.float64)
        if out.shape == (t.shape[0],):
            return out
    except (ValueError, TypeError, IndexError):
        pass
    return np.array([float(metric_fn(t[i], p[i])) for i in range(t.shape[0])], dtype=np.float64)


def bootstrap_ci(
    y_true,
    y_pred,
    metric_fn: Callable,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap ``(1 - alpha)`` interval of ``metric_fn(y_true, y_pred)``.

    Args:
        y_true: (N,) true labels.
        y_pred: (N,) predicted labels (or (N, K) probabilities, if ``metric_fn`` takes them).
        metric_fn: ``f(y_true, y_pred) -> float``; if it also accepts batches (B, N) and returns
            (B,), all resamples are evaluated in one call.
        n_boot: number of resamples.
        alpha: 0.05 for a 95 % interval.
        seed: resampling seed (the interval is deterministic for a seed).

    Returns:
        ``(low, high)``; ``(nan, nan)`` for an empty input.
    """
    t = np.asarray(y_true)
    p = np.asarray(y_pred)
    n = t.shape[0]
    if p.shape[0] != n:
        raise ValueError(f"y_true has {n} samples but y_pred has {p.shape[0]}")
    if n == 0 or n_boot < 1:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    per_row = max(1, n * (p.size // max(n, 1)))
    chunk = max(1, min(n_boot, MAX_CHUNK_ELEMENTS // per_row))
    stats = []
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        idx = rng.integers(0, n, size=(b, n))
        stats.append(_batched(metric_fn, t[idx], p[idx]))
    values = np.concatenate(stats)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return float("nan"), float("nan")
    lo, hi = np.quantile(values, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)
