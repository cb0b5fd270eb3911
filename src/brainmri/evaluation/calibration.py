"""Probability calibration: temperature scaling and expected calibration error (ECE).

A network trained with cross-entropy is usually over-confident. Temperature scaling (Guo et al.,
2017) divides the logits by one scalar ``T`` fitted on the validation split; it never changes the
argmax (so accuracy is untouched) but makes "90 % sure" mean right about 90 % of the time.
Training fits ``T`` at the end of a run and stores it in the checkpoint
(``CheckpointMeta.calibration["temperature"]``); prediction uses ``softmax(logits / T)``.

One temperature cannot mend every shape of miscalibration: a model whose correct majority
wants sharper probabilities while a few confident errors hold the fit back stays under-confident
in the middle. *Top-label scaling* (Platt scaling of the top-label confidence, as in Gupta &
Ramdas, "Top-label calibration", ICLR 2022) follows the temperature: ``c' = sigmoid(a * logit(c) + b)``
for the top probability ``c``, the other classes rescaled to share ``1 - c'`` in their old
ratios. It never changes the predicted class. It is fitted on validation too, and kept
(``calibration["top_label"]``) only when a 5-fold cross-validation on that split says it lowers
the top-label log-loss by more than one standard error; otherwise the temperature stands alone.

Imports only torch and numpy, so the inference path can use it.
"""
from __future__ import annotations

import math

import numpy as np
import torch

T_MIN, T_MAX = 0.05, 20.0
MIN_CALIBRATION_IMAGES = 20  # below this a fitted temperature says more about the sample than the model


def _as_tensor(x, dtype: torch.dtype) -> torch.Tensor:
    t = x.detach().cpu() if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    return t.to(dtype)


def _minimise(param: torch.Tensor, loss_of, max_iter: int) -> bool:
    """Minimise ``loss_of()`` over ``param`` in place with L-BFGS (strong Wolfe line search);
    ``False`` when the optimiser failed."""
    opt = torch.optim.LBFGS([param], lr=0.5, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = loss_of()
        loss.backward()
        return loss

    with torch.enable_grad():
        try:
            opt.step(closure)
        except RuntimeError:
            return False
    return True


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
    if not _minimise(log_t, lambda: nll(z / log_t.exp(), y), max_iter):
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


_EPS = 1e-7


def _top_logit(probs: np.ndarray) -> np.ndarray:
    c = np.clip(probs.max(axis=1), _EPS, 1 - _EPS)
    return np.log(c / (1 - c))


def apply_top_label(probs, params: dict | None) -> np.ndarray:
    """Rescale each row's top probability with ``params`` (``{"a", "b"}``) and the other classes
    in proportion; the predicted class never changes. ``params`` None returns ``probs`` as is."""
    p = np.array(probs, dtype=np.float64, copy=True)
    if not params or p.size == 0:
        return p
    rows = np.arange(p.shape[0])
    top = p.argmax(axis=1)
    c = p[rows, top]
    c_new = 1.0 / (1.0 + np.exp(-(float(params["a"]) * _top_logit(p) + float(params["b"]))))
    rest = 1.0 - c
    # the top class must stay on top: c' >= p2 * (1 - c') / (1 - c)  <=>  c' >= p2 / (1 - c + p2);
    # a hair above that floor, so that a near-tie stays a near-tie and never becomes an exact one
    second = np.sort(p, axis=1)[:, -2] if p.shape[1] > 1 else np.zeros(len(p))
    with np.errstate(invalid="ignore", divide="ignore"):
        floor = np.where(rest > 0, second / (rest + second), 0.0)
    c_new = np.minimum(np.maximum(c_new, np.nan_to_num(floor) + 1e-6), np.maximum(c, 1 - _EPS))
    scale = np.where(rest > 0, (1.0 - c_new) / np.where(rest > 0, rest, 1.0), 0.0)
    p *= scale[:, None]
    p[rows, top] = np.where(rest > 0, c_new, c)
    return p


def _fit_platt(x: np.ndarray, correct: np.ndarray, max_iter: int = 100) -> tuple[float, float] | None:
    xt = torch.as_tensor(x, dtype=torch.float64)
    yt = torch.as_tensor(correct, dtype=torch.float64)
    ab = torch.tensor([1.0, 0.0], dtype=torch.float64, requires_grad=True)
    loss_fn = torch.nn.functional.binary_cross_entropy_with_logits
    if not _minimise(ab, lambda: loss_fn(ab[0] * xt + ab[1], yt), max_iter):
        return None
    a, b = (float(v) for v in ab.detach())
    return (a, b) if math.isfinite(a) and math.isfinite(b) and a > 0 else None


def _top_label_nll(x: np.ndarray, correct: np.ndarray, a: float, b: float) -> np.ndarray:
    """Per-sample binary log-loss of the top label being right."""
    z = a * x + b
    return np.logaddexp(0.0, z) - correct * z


def check_top_label(logits, labels, temperature: float, folds: int = 5, seed: int = 0, min_samples: int = 50) -> dict:
    """Decide whether top-label scaling after ``temperature`` pays, and fit it if so.

    Returns ``{"kept": bool, "reason": str, ...}``; when kept also ``a`` and ``b``, and whenever
    the cross-validation ran its numbers (``cv_nll_temperature``, ``cv_nll_top_label``,
    ``cv_gain``, ``cv_gain_se``). Left out: fewer than ``min_samples`` samples, no errors (or no
    correct answers) to learn from, a failed fit, or a cross-validated top-label log-loss that
    does not beat the temperature's by more than one standard error of the paired per-image
    difference (the one-standard-error rule: two more numbers must earn their place against noise).

    The cross-validation refits the temperature inside each fold too, so the comparison is the
    one a new image meets: both calibrators fitted without it.
    """
    z = _as_tensor(logits, torch.float64)
    y = _as_tensor(labels, torch.long).reshape(-1)
    n = int(y.shape[0])
    if z.ndim != 2 or z.shape[0] != n or not torch.isfinite(z).all():
        return {"kept": False, "reason": "no usable logits"}
    if n < min_samples:
        return {"kept": False, "reason": f"only {n} validation images (needs {min_samples})"}
    probs = torch.softmax(z / float(temperature), dim=-1).numpy()
    correct = (probs.argmax(1) == y.numpy()).astype(np.float64)
    if correct.min() == correct.max():
        return {"kept": False, "reason": "no errors on validation to learn from" if correct.min() == 1 else "no correct answers on validation"}
    order = np.random.default_rng(seed).permutation(n)
    diffs = np.zeros(n)
    identity = fitted = 0.0
    for part in np.array_split(order, folds):
        train = np.setdiff1d(order, part)
        t = fit_temperature(z[train], y[train])
        p_tr = torch.softmax(z[train] / t, -1).numpy()
        p_te = torch.softmax(z[part] / t, -1).numpy()
        c_tr = (p_tr.argmax(1) == y[train].numpy()).astype(np.float64)
        c_te = (p_te.argmax(1) == y[part].numpy()).astype(np.float64)
        ab = _fit_platt(_top_logit(p_tr), c_tr) if c_tr.min() != c_tr.max() else None
        x_te = _top_logit(p_te)
        base, new = _top_label_nll(x_te, c_te, 1.0, 0.0), _top_label_nll(x_te, c_te, *(ab or (1.0, 0.0)))
        identity, fitted = identity + base.sum(), fitted + new.sum()
        diffs[part] = base - new
    gain, se = float(diffs.mean()), float(diffs.std(ddof=1) / math.sqrt(n))
    out = {"cv_nll_temperature": float(identity / n), "cv_nll_top_label": float(fitted / n), "cv_gain": gain, "cv_gain_se": se, "folds": folds}
    if not gain > se:
        return {"kept": False, "reason": f"{folds}-fold cross-validated gain {gain:.4f} is not above one standard error ({se:.4f})", **out}
    ab = _fit_platt(_top_logit(probs), correct)
    if ab is None:
        return {"kept": False, "reason": "the fit failed", **out}
    return {"kept": True, "reason": f"{folds}-fold cross-validated gain {gain:.4f} > one standard error ({se:.4f})", "a": ab[0], "b": ab[1], **out}


def fit_top_label(logits, labels, temperature: float, **kwargs) -> dict | None:
    """The top-label parameters :func:`check_top_label` keeps (``{"a", "b", ...}``), or ``None``."""
    check = check_top_label(logits, labels, temperature, **kwargs)
    return {k: v for k, v in check.items() if k not in ("kept", "reason")} if check["kept"] else None


def fit_calibration(logits, labels, fitted_on: str) -> dict:
    """A checkpoint's ``calibration`` entry from one labelled set: the temperature, the top-label
    decision (:func:`check_top_label`, recorded either way) and the ECE before and after."""
    z = _as_tensor(logits, torch.float64)
    y = _as_tensor(labels, torch.long).reshape(-1)
    temp = float(fit_temperature(z, y))
    before = expected_calibration_error(softmax_with_temperature(z, 1.0), y.numpy())
    after = expected_calibration_error(softmax_with_temperature(z, temp), y.numpy())
    cal: dict = {"temperature": temp, "fitted_on": fitted_on, "n": int(y.shape[0]), "ece_before": before, "ece_after": after}
    check = check_top_label(z, y, temp)
    cal["top_label_check"] = {k: v for k, v in check.items() if k not in ("a", "b")}
    if check["kept"]:
        cal["ece_after_temperature"] = after
        cal["top_label"] = {"a": check["a"], "b": check["b"]}
        cal["ece_after"] = expected_calibration_error(calibrated_probs(z, cal), y.numpy())
    return cal


def calibrated_probs(logits, calibration: dict | float | None) -> np.ndarray:
    """Probabilities (N, K, float64) under a checkpoint's ``calibration``: ``softmax(logits / T)``,
    then top-label scaling when the checkpoint carries it. A bare number is a temperature."""
    if isinstance(calibration, (int, float)):
        calibration = {"temperature": float(calibration)}
    cal = calibration or {}
    probs = softmax_with_temperature(logits, float(cal.get("temperature", 1.0)))
    return apply_top_label(probs, cal.get("top_label"))


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
