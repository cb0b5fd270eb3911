"""``brainmri export CHECKPOINT --format onnx``: an ONNX model with a dynamic batch dimension and
the checkpoint metadata embedded, checked against PyTorch on a random batch."""
from __future__ import annotations

import sys
from pathlib import Path

import brainmri
from brainmri.errors import CheckpointError, ConfigError

PARITY_TOLERANCE = 1e-4


def run(args) -> int:
    import torch

    from brainmri.checkpoint import load_checkpoint, looks_like_onnx
    from brainmri.cli.outputs import OutputPathError, check_output_file
    from brainmri.checkpoint import atomic_write_bytes
    from brainmri.inference.onnx_backend import OnnxRunner, max_logit_difference, onnx_model_bytes, read_onnx_meta

    if args.format != "onnx":
        raise ConfigError(f"--format={args.format!r} is not valid; choose one of: onnx")
    if not 7 <= args.opset <= 23:
        raise ConfigError(f"--opset={args.opset} must be between 7 and 23")
    src = Path(args.checkpoint)
    if src.is_file() and looks_like_onnx(src):
        raise CheckpointError(f"{src}: is an ONNX model already; export needs the .safetensors checkpoint it was exported from")
    out = Path(args.out) if args.out else src.with_suffix(".onnx")
    check_output_file(out, "-o", not_same_as=[src])  # never over the checkpoint being exported (or a link to it), even with --force
    if out.is_file() and not args.force and not _brainmri_onnx(out, looks_like_onnx, read_onnx_meta):
        what = "an ONNX model brainmri did not export" if looks_like_onnx(out) else "not an ONNX model"
        raise OutputPathError(f"-o {out}: the file exists and is {what}; pass --force to replace it, or give another name")
    model, meta = load_checkpoint(src)
    if (note := uncalibrated_note(meta)):
        print(f"WARNING: {src}: {note}; the ONNX model carries the same (its probabilities are the raw softmax)", file=sys.stderr)
    data = onnx_model_bytes(model, meta, opset=args.opset)
    s = meta.preprocess.image_size
    batch = torch.randn(3, meta.preprocess.in_chans, s, s, generator=torch.Generator().manual_seed(0))
    diff = max_logit_difference(model, OnnxRunner(data, name=str(out)), batch)  # checked before anything is written
    if diff > PARITY_TOLERANCE * 10:
        raise CheckpointError(f"{out}: the ONNX export differs from PyTorch by {diff:.2e} (> {PARITY_TOLERANCE * 10:g}); "
                              "nothing was written" + (" (the earlier file there is kept)" if out.exists() else ""))
    atomic_write_bytes(out, data)
    print(f"wrote {out} ({out.stat().st_size / 1024**2:.1f} MiB, opset {args.opset}, dynamic batch); "
          f"max |logit difference| vs PyTorch on a random batch: {diff:.2e}")
    print(brainmri.DISCLAIMER)
    return 0


def uncalibrated_note(meta) -> str | None:
    """Why a checkpoint has no fitted calibration (an interrupted run, a mid-run save), or None."""
    if (meta.calibration or {}).get("fitted_on"):
        return None
    extra = meta.extra or {}
    if extra.get("interrupted"):
        return (f"its run was interrupted after {extra.get('completed_epochs', '?')} of {extra.get('epochs', '?')} epochs, so it is "
                "not calibrated (temperature 1, no OOD guard fitted); finish it with brainmri train --resume RUN_DIR")
    return "not calibrated (temperature 1); fit it with brainmri calibrate CKPT --data LABELLED_SCANS -o OUT"


def _brainmri_onnx(path: Path, looks_like_onnx, read_onnx_meta) -> bool:
    """An ONNX file brainmri exported (its metadata readable): a rerun may replace it."""
    if not looks_like_onnx(path):
        return False
    try:
        read_onnx_meta(path, check=False)
    except CheckpointError:
        return False
    return True


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "export",
        help="export a checkpoint to ONNX (for onnxruntime serving)",
        description="Export a checkpoint to ONNX with a dynamic batch dimension; the checkpoint's metadata "
        "(classes, preprocessing, calibration, OOD thresholds) is embedded so the .onnx file is self-describing.",
    )
    p.add_argument("checkpoint", help="a brainmri .safetensors checkpoint")
    p.add_argument("--format", default="onnx", help="export format (only: onnx)")
    p.add_argument("--out", "-o", default=None, help="output file (default: CHECKPOINT with .onnx suffix); an earlier brainmri export there is replaced")
    p.add_argument("--force", action="store_true", help="replace an existing -o file brainmri did not export (never the input checkpoint)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset version (default: 17)")
    p.set_defaults(func=run)
