"""Temperature alone, or temperature then top-label scaling? Each checkpoint's calibrators
refitted on its validation split (as training fits them), scored on the official Testing split.

    python scripts/calibration_check.py CKPT... [--data ../shared/datasets/brain-tumor-mri]

Columns: the validation-only decision of :func:`brainmri.evaluation.calibration.check_top_label`
(5-fold cross-validated top-label log-loss gain against one standard error), then Testing's ECE
with the temperature alone, with what that decision keeps, and with top-label scaling always
applied (for comparison only: a rule that always keeps it is the one the decision guards against).

``--class-bias`` prints a second table instead: the temperature against *class-bias scaling*
(one temperature plus one bias per class, ``softmax(z / T + b)``, fitted on validation; Guo et
al.'s vector scaling without per-class scales). Unlike the two above it can change the predicted
class, so beside the 5-fold cross-validated log-loss on validation and Testing's ECE it counts
what moved on Testing: tumors now called ``notumor`` and healthy scans now called a tumor.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np
import torch

from brainmri.checkpoint import load_checkpoint
from brainmri.data.datasets import load_dataset
from brainmri.evaluation.calibration import (calibrated_probs, check_top_label, expected_calibration_error, fit_temperature,
                                             softmax_with_temperature)
from brainmri.evaluation.evaluate import data_config_for, predict_split


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint", nargs="+")
    ap.add_argument("--data", default="../shared/datasets/brain-tumor-mri")
    ap.add_argument("--class-bias", action="store_true", help="compare class-bias scaling (temperature + a bias per class) instead")
    args = ap.parse_args(argv)
    if args.class_bias:
        return _class_bias_table(args.checkpoint, args.data)
    print("| checkpoint | T (val) | top-label kept? (val CV gain / SE) | Testing ECE, T | ECE, as kept | ECE, top-label always |")
    print("|---|---|---|---|---|---|")
    ece_t, ece_kept, ece_always = [], [], []
    for ck in args.checkpoint:
        model, meta = load_checkpoint(ck)
        index = load_dataset(data_config_for(meta, args.data, ck))
        val, test = (predict_split(model, meta, index, s) for s in ("val", "test"))
        t = fit_temperature(torch.from_numpy(val.logits), torch.from_numpy(val.labels))
        check = check_top_label(val.logits, val.labels, t)
        forced = {"a": check["a"], "b": check["b"]} if check["kept"] else _forced(val.logits, val.labels, t)
        e_t = expected_calibration_error(softmax_with_temperature(test.logits, t), test.labels)
        e_a = expected_calibration_error(calibrated_probs(test.logits, {"temperature": t, "top_label": forced}), test.labels)
        e_k = e_a if check["kept"] else e_t
        ece_t.append(e_t), ece_kept.append(e_k), ece_always.append(e_a)
        gain = f"{check['cv_gain']:.4f} / {check['cv_gain_se']:.4f}" if "cv_gain" in check else check["reason"]
        print(f"| {ck} | {t:.3f} | {'yes' if check['kept'] else 'no'} ({gain}) | {e_t:.4f} | {e_k:.4f} | {e_a:.4f} |", flush=True)
    if len(ece_t) > 1:
        print(f"| median of {len(ece_t)} | | | {np.median(ece_t):.4f} | {np.median(ece_kept):.4f} | {np.median(ece_always):.4f} |")
    return 0


def _forced(logits, labels, t: float) -> dict:
    """The top-label fit with the decision's margin switched off (``min_samples`` still applies)."""
    from brainmri.evaluation.calibration import _fit_platt, _top_logit

    p = softmax_with_temperature(logits, t)
    a, b = _fit_platt(_top_logit(p), (p.argmax(1) == labels).astype(np.float64)) or (1.0, 0.0)
    return {"a": a, "b": b}


def _fit_scaling(logits: np.ndarray, labels: np.ndarray, bias: bool):
    """``(T, b)`` minimising the log-loss of ``softmax(z / T + b)`` (``b`` zero unless ``bias``)."""
    z, y = torch.as_tensor(logits, dtype=torch.float64), torch.as_tensor(labels)
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(z.shape[1], dtype=torch.float64, requires_grad=bias)
    opt = torch.optim.LBFGS([log_t, b] if bias else [log_t], max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(z / log_t.exp() + b, y)
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return float(log_t.detach().exp()), b.detach().numpy()


def _scaled(logits: np.ndarray, t: float, b: np.ndarray) -> np.ndarray:
    return torch.softmax(torch.as_tensor(logits, dtype=torch.float64) / t + torch.as_tensor(b), 1).numpy()


def _cv_nll(logits: np.ndarray, labels: np.ndarray, bias: bool, folds: int = 5, seed: int = 0) -> tuple[float, float]:
    """Mean held-out log-loss over ``folds`` folds of validation, and its standard error."""
    parts = np.array_split(np.random.default_rng(seed).permutation(len(labels)), folds)
    losses = []
    for k, held in enumerate(parts):
        fit = np.concatenate([p for j, p in enumerate(parts) if j != k])
        t, b = _fit_scaling(logits[fit], labels[fit], bias)
        p = _scaled(logits[held], t, b)
        losses.append(-np.log(np.clip(p[np.arange(len(held)), labels[held]], 1e-12, 1.0)))
    losses = np.concatenate(losses)
    return float(losses.mean()), float(losses.std() / np.sqrt(len(losses)))


def _class_bias_table(checkpoints: list[str], data: str) -> int:
    print("| checkpoint | val CV log-loss: T / T + bias (SE) | Testing ECE: T / T + bias | Testing accuracy: T / T + bias "
          "| tumors called notumor: T / T + bias | healthy called a tumor: T / T + bias |")
    print("|---|---|---|---|---|---|")
    for ck in checkpoints:
        model, meta = load_checkpoint(ck)
        index = load_dataset(data_config_for(meta, data, ck))
        val, test = (predict_split(model, meta, index, s) for s in ("val", "test"))
        healthy = meta.class_names.index("notumor") if "notumor" in meta.class_names else None
        cells = {"cv": [], "ece": [], "acc": [], "missed": [], "false": []}
        for bias in (False, True):
            nll, se = _cv_nll(val.logits, val.labels, bias)
            p = _scaled(test.logits, *_fit_scaling(val.logits, val.labels, bias))
            pred = p.argmax(1)
            cells["cv"].append(f"{nll:.4f} ({se:.4f})")
            cells["ece"].append(f"{expected_calibration_error(p, test.labels):.4f}")
            cells["acc"].append(f"{(pred == test.labels).mean():.2%}")
            if healthy is not None:
                cells["missed"].append(str(int(((test.labels != healthy) & (pred == healthy)).sum())))
                cells["false"].append(str(int(((test.labels == healthy) & (pred != healthy)).sum())))
        print(f"| {ck} | " + " | ".join(" / ".join(v) or "–" for v in cells.values()) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
