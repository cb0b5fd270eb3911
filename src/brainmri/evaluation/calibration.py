"""Probability calibration: temperature scaling and expected calibration error (ECE).

A network trained with cross-entropy is usually over-confident. Temperature scaling (Guo et al.,
2017) divides the logits by one scalar ``T`` fitted on the validation split; it never changes the
argmax (so accuracy is untouched) but makes "90 % sure" mean right about 90 % of the time.
Training fits ``T`` at the end of a run and stores it in the checkpoint
(``CheckpointMeta.calibration["temperature"]``); prediction uses ``softmax(logits / T)``.

Imports only torch and numpy, so the inference path can use it.
"""
from __future__ import annotations

import math

import numpy as np
import torch

T_MIN, T_MAX = 0.05, 20.0


def _as_tensor(x, dtype: torch.dtype) -> torch.Tensor:
    t = x.detach().cpu() if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    return t.to(dtype)


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor, max_iter: int = 100) -> float:
    """Fit the temperature that minimises the negative log-likelihood of ``labels``.

    Optimises ``log T`` with L-BFGS (so ``T`` stays positive), clamps the result to
    [0.05, 20] and falls back to ``T = 1`` whenever scaling would not help: no samples,
    non-finite logits, a failed optimisation, or a fitted NLL no better than the unscaled one.

    Args:
        logits: (N, K) raw model outputs (tensor or array).
        labels: (N,) integer class indices.
        max_iter: L-BFGS iterations.

    Returns:
        The temperature ``T > 0`` (a Python float).
    """
    # clone: logits computed under torch.inference_mode() cannot take part in autograd
    z = _as_tensor(logits, torch.float64).detach().clone()
    y = _as_tensor(labels, torch.long).reshape(-1).clone()
    if z.ndim != 2 or z.shape[0] == 0 or z.shape[0] != y.shape[0] or not torch.isfinite(z).all():
        return 1.0
    if y.min() < 0 or y.max() >= z.shape[1]:
        raise ValueError(f"labels must be in [0, {z.shape[1] - 1}], got [{int(y.min())}, {int(y.max())}]")
    nll = torch.nn.CrossEntropyLoss()
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.5, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = nll(z / log_t.exp(), y)
        loss.backward()
        return loss

    with torch.enable_grad():
        try:
            opt.step(closure)
        except RuntimeError:
            return 1.0
    t = float(log_t.detach().exp().clamp(T_MIN, T_MAX))
    if not math.isfinite(t):
        return 1.0
    with torch.no_grad():
        if float(nll(z / t, y)) >= float(nll(z, y)):
            return 1.0
    return t


def softmax_with_temperature(logits, temperature: float = 1.0) -> np.ndarray:
    """``softmax(logits / T)`` as a float64 numpy array (N, K)."""
    z = _as_tensor(logits, torch.float64)
    return torch.softmax(z / float(temperature), dim=-1).numpy()


def reliability_bins(probs, labels, n_bins: int = 15) -> dict[str, np.ndarray]:
    """Per-bin statistics of top-1 confidence vs accuracy (equal-width bins on (0, 1]).

    Returns:
        ``{"edges": (n_bins+1,), "confidence": (n_bins,), "accuracy": (n_bins,),
        "count": (n_bins,)}``; empty bins have NaN confidence and accuracy.
    """
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels).reshape(-1)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    conf = p.max(axis=1) if p.size else np.zeros(0)
    correct = (p.argmax(axis=1) == y).astype(np.float64) if p.size else np.zeros(0)
    # bin i holds confidences in (edges[i], edges[i+1]]; a confidence of exactly 0 goes in bin 0
    idx = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, n_bins - 1)
    count = np.bincount(idx, minlength=n_bins).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(idx, weights=conf, minlength=n_bins) / count
        mean_acc = np.bincount(idx, weights=correct, minlength=n_bins) / count
    return {"edges": edges, "confidence": mean_conf, "accuracy": mean_acc, "count": count}


def expected_calibration_error(probs, labels, n_bins: int = 15) -> float:
    """ECE: the sample-weighted mean gap between top-1 confidence and accuracy over ``n_bins``
    equal-width confidence bins. 0 is perfectly calibrated; returns NaN for no samples."""
    b = reliability_bins(probs, labels, n_bins)
    n = b["count"].sum()
    if n == 0:
        return float("nan")
    used = b["count"] > 0
    gap = np.abs(b["accuracy"][used] - b["confidence"][used])
    return float((gap * b["count"][used]).sum() / n)
