"""``brainmri info [CHECKPOINT]``: what a checkpoint is (the bundled model by default) and what
this installation can do."""
from __future__ import annotations

import json

import brainmri


def register(subparsers) -> None:
    p = subparsers.add_parser("info", help="show a checkpoint's metadata (default: the bundled model)", description=__doc__)
    p.add_argument("checkpoint", nargs="?", help="a .safetensors checkpoint or an exported .onnx model (default: the bundled model)")
    p.add_argument("--json", action="store_true", help="print the full metadata as JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    from brainmri.checkpoint import looks_like_onnx, read_checkpoint
    from brainmri.inference.classifier import bundled_checkpoint

    path = args.checkpoint or bundled_checkpoint()
    if looks_like_onnx(path):  # by content: an exported model shows the metadata embedded in it
        from brainmri.inference.onnx_backend import onnx_weight_count, read_onnx_meta

        meta, n_params, kind = read_onnx_meta(path), onnx_weight_count(path), "ONNX model"
    else:
        state, meta = read_checkpoint(path)
        n_params, kind = sum(t.numel() for t in state.values()), "checkpoint"
    if args.json:  # the checkpoint metadata, and which file it was read from (the same metadata travels into an ONNX export)
        file_info = {"file": str(path), "file_format": "onnx" if kind == "ONNX model" else "safetensors", "tensor_elements": int(n_params)}
        print(json.dumps({**file_info, **meta.to_json()}, indent=2))
        return 0
    print(f"{kind + ':':<14}{path}")
    print(f"model:        {meta.model.name} ({n_params / 1e6:.1f} M tensors' elements), head {meta.model.head}")
    print(f"task:         {meta.task}; classes: {', '.join(meta.class_names)}")
    p = meta.preprocess
    print(f"preprocess:   {p.image_size} px, crop={p.crop}, percentile_clip={p.percentile_clip}, in_chans={p.in_chans}")
    tl = (meta.calibration or {}).get("top_label")
    print(f"calibration:  temperature {meta.temperature:.3f}" + (f", then top-label scaling (a {tl['a']:.3f}, b {tl['b']:.3f})" if tl else ""))
    extra = meta.extra or {}
    recal = extra.get("recalibrated_from")
    if recal:
        old_t = (recal.get("calibration") or {}).get("temperature")
        print(f"              recalibrated on {recal.get('fitted_on') or (meta.calibration or {}).get('fitted_on', '?')} by brainmri calibrate, "
              f"from {recal.get('checkpoint', '?')}" + (f" (T {old_t:.3f})" if isinstance(old_t, (int, float)) else "")
              + "; the model card's calibration numbers are from before")
    print(f"ood guard:    {'fitted' if meta.ood else 'input statistics only'}")
    if extra.get("interrupted"):
        print(f"interrupted:  by {extra.get('interrupted_by', '?')} after {extra.get('completed_epochs', '?')} of {extra.get('epochs', '?')} epochs "
              f"(not calibrated; finish it with brainmri train --resume RUN_DIR)")
    if meta.metrics:
        shown = {k: v for k, v in meta.metrics.items() if isinstance(v, (int, float))}
        print("metrics:      " + ", ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(shown.items())))
    card = meta.extra.get("model_card") if meta.extra else None
    if card:
        print()
        print(card)
    print(brainmri.DISCLAIMER)
    return 0
