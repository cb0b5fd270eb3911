"""Temperature alone, or temperature then top-label scaling? Each checkpoint's calibrators
refitted on its validation split (as training fits them), scored on the official Testing split.

    python scripts/calibration_check.py CKPT... [--data ../shared/datasets/brain-tumor-mri]

Columns: the validation-only decision of :func:`brainmri.evaluation.calibration.check_top_label`
(5-fold cross-validated top-label log-loss gain against one standard error), then Testing's ECE
with the temperature alone, with what that decision keeps, and with top-label scaling always
applied (for comparison only: a rule that always keeps it is the one the decision guards against).
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
    args = ap.parse_args(argv)
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


if __name__ == "__main__":
    sys.exit(main())
