"""Weight-space interpolation of two checkpoints of one architecture (WiSE-FT, Wortsman et al.
2022, "Robust fine-tuning of zero-shot models"): ``(1 - alpha) * A + alpha * B``, then temperature
and OOD thresholds refitted on B's validation split.

    python scripts/soup.py runs/A/best.safetensors runs/B/best.safetensors --alpha 0.5 --out runs/soup/best.safetensors

B must be a run directory's ``best.safetensors`` (its ``config.yaml`` names the validation data),
fine-tuned from A or from a common ancestor: interpolating unrelated networks gives noise.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from brainmri.checkpoint import load_checkpoint, save_checkpoint
from brainmri.data.datasets import load_dataset
from brainmri.data.torchdata import PreparedImages
from brainmri.errors import BrainMRIError
from brainmri.evaluation.evaluate import predict_logits
from brainmri.training.train import finalize_checkpoint, load_config_for_resume


def interpolate(a: torch.nn.Module, b: torch.nn.Module, alpha: float) -> dict[str, torch.Tensor]:
    sa, sb = a.state_dict(), b.state_dict()
    if sa.keys() != sb.keys() or any(sa[k].shape != sb[k].shape for k in sa):
        raise BrainMRIError("the two checkpoints are not the same architecture")
    return {k: ((1 - alpha) * sa[k].float() + alpha * sb[k].float()).to(sb[k].dtype) if sb[k].is_floating_point() else sb[k] for k in sb}


def val_metrics(model: torch.nn.Module, meta, val: PreparedImages) -> dict[str, float]:
    """Validation accuracy and macro F1 of ``model`` (torchmetrics)."""
    from torchmetrics.functional.classification import multiclass_accuracy, multiclass_f1_score

    with torch.inference_mode():
        pred = torch.from_numpy(predict_logits(model, meta, val.images)).argmax(1)
    labels, k = torch.tensor(val.labels), len(meta.class_names)
    return {"val_acc": float(multiclass_accuracy(pred, labels, k, average="micro")),
            "val_macro_f1": float(multiclass_f1_score(pred, labels, k, average="macro"))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--alpha", type=float, default=0.5, help="weight of B (0 = A, 1 = B)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    if not 0 <= args.alpha <= 1:
        ap.error("--alpha must be in [0, 1]")
    try:
        ma, _ = load_checkpoint(args.a)
        mb, meta = load_checkpoint(args.b)
        mb.load_state_dict(interpolate(ma, mb, args.alpha))
        meta.extra = {**(meta.extra or {}), "soup": {"a": str(args.a), "b": str(args.b), "alpha": args.alpha}}
        cfg = load_config_for_resume(Path(args.b).parent)
        index = load_dataset(cfg.data)
        val = PreparedImages(index.split("val"), cfg.preprocess, "auto", index.arrays)
        meta.metrics = val_metrics(mb, meta, val)  # the soup's own, not B's
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        save_checkpoint(out, mb, meta)
        print(meta.metrics, finalize_checkpoint(out, val, cfg).get("calibration"))
    except BrainMRIError as exc:
        print(f"soup: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
