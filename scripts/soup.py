"""Weight-space averaging of checkpoints of one architecture: a model soup (Wortsman et al. 2022,
"Model soups"; with two checkpoints and ``--alpha`` it is WiSE-FT, "Robust fine-tuning of zero-shot
models"): ``sum_i w_i * model_i``, then temperature and OOD thresholds refitted on the LAST
checkpoint's validation split.

    python scripts/soup.py runs/A/best.safetensors runs/B/best.safetensors --alpha 0.5 --out runs/soup/best.safetensors
    python scripts/soup.py runs/A/best.safetensors runs/B/best.safetensors runs/C/best.safetensors --out runs/soup3/best.safetensors

``--alpha`` (two checkpoints only) is B's weight; ``--weights`` gives one weight per checkpoint
(normalised to sum to 1); neither: the uniform soup. The last checkpoint must be a run
directory's ``best.safetensors`` (its ``config.yaml`` names the validation data). All must be
fine-tuned from a common ancestor: averaging unrelated networks gives noise.
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


def average(models: list[torch.nn.Module], weights: list[float]) -> dict[str, torch.Tensor]:
    """``sum_i weights[i] * models[i]`` over floating-point tensors; integer buffers (e.g.
    BatchNorm's step counter) are taken from the last model."""
    states = [m.state_dict() for m in models]
    last = states[-1]
    if any(s.keys() != last.keys() or any(s[k].shape != last[k].shape for k in last) for s in states):
        raise BrainMRIError("the checkpoints are not the same architecture")
    return {k: sum(w * s[k].float() for w, s in zip(weights, states)).to(v.dtype) if v.is_floating_point() else v
            for k, v in last.items()}


def val_metrics(model: torch.nn.Module, meta, val: PreparedImages) -> dict[str, float]:
    """Validation accuracy and macro F1 of ``model`` (torchmetrics)."""
    from torchmetrics.functional.classification import multiclass_accuracy, multiclass_f1_score

    with torch.inference_mode():
        pred = torch.from_numpy(predict_logits(model, meta, val.images)).argmax(1)
    labels, k = torch.tensor(val.labels), len(meta.class_names)
    return {"val_acc": float(multiclass_accuracy(pred, labels, k, average="micro")),
            "val_macro_f1": float(multiclass_f1_score(pred, labels, k, average="macro"))}


def soup_weights(n: int, alpha: float | None, weights: list[float] | None) -> list[float]:
    """One weight per checkpoint, summing to 1 (``ValueError`` with the reason otherwise)."""
    if alpha is not None and weights is not None:
        raise ValueError("give --alpha or --weights, not both")
    if alpha is not None:
        if n != 2:
            raise ValueError(f"--alpha is for two checkpoints (got {n}); use --weights")
        if not 0 <= alpha <= 1:
            raise ValueError("--alpha must be in [0, 1]")
        return [1 - alpha, alpha]
    if weights is None:
        return [1 / n] * n
    if len(weights) != n:
        raise ValueError(f"--weights needs one weight per checkpoint ({n}), got {len(weights)}")
    if any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ValueError("--weights must be non-negative and not all zero")
    return [w / sum(weights) for w in weights]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoints", nargs="+", help="two or more best.safetensors; the last one's run directory gives the validation data")
    ap.add_argument("--alpha", type=float, help="two checkpoints: the weight of the second (0 = the first, 1 = the second)")
    ap.add_argument("--weights", type=float, nargs="+", help="one weight per checkpoint (default: equal)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    if len(args.checkpoints) < 2:
        ap.error("give two or more checkpoints")
    try:
        weights = soup_weights(len(args.checkpoints), args.alpha, args.weights)
    except ValueError as exc:
        ap.error(str(exc))
    try:
        models = [load_checkpoint(p)[0] for p in args.checkpoints[:-1]]
        last, meta = load_checkpoint(args.checkpoints[-1])
        last.load_state_dict(average([*models, last], weights))
        if len(args.checkpoints) == 2:  # the two-model record older soups carry
            record = {"a": str(args.checkpoints[0]), "b": str(args.checkpoints[1]), "alpha": weights[1]}
        else:
            record = {"models": [str(p) for p in args.checkpoints], "weights": weights}
        meta.extra = {**(meta.extra or {}), "soup": record}
        cfg = load_config_for_resume(Path(args.checkpoints[-1]).parent)
        index = load_dataset(cfg.data)
        val = PreparedImages(index.split("val"), cfg.preprocess, "auto", index.arrays)
        meta.metrics = val_metrics(last, meta, val)  # the soup's own, not the last run's
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        save_checkpoint(out, last, meta)
        print(meta.metrics, finalize_checkpoint(out, val, cfg).get("calibration"))
    except BrainMRIError as exc:
        print(f"soup: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
