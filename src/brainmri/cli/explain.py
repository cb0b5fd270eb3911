"""``brainmri explain``: class-activation maps (original, heat map, overlay) for images, and a
faithfulness table to compare CAM methods."""
from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np


def register(subparsers) -> None:
    from brainmri.explain.cam import METHODS

    p = subparsers.add_parser(
        "explain",
        help="heat maps showing where the model looked (Grad-CAM and friends)",
        description=(
            "For each image write <name>_original.png, <name>_heatmap.png, <name>_overlay.png and a combined "
            "<name>_explanation.png for the predicted class (or --class). --compare-methods scores every CAM method "
            "by deletion/insertion faithfulness. A heat map is not a segmentation and not a diagnosis. "
            "For research use only; not a medical device."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("checkpoint", help="brainmri .safetensors checkpoint")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files (PNG/JPEG/BMP/TIFF, DICOM, NIfTI)")
    p.add_argument("--method", default="gradcam", help=f"one of: {', '.join(METHODS)}")
    p.add_argument("--class", dest="target_class", default=None, metavar="NAME", help="class to explain (default: the predicted one)")
    p.add_argument("--target-layer", default=None, metavar="NAME", help="dotted module name of the layer to explain (default: automatic)")
    p.add_argument("--out", default="explanations", metavar="DIR", help="output folder")
    p.add_argument("--compare-methods", action="store_true", help="score every method's faithfulness (deletion/insertion AUC) on these images")
    p.add_argument("--methods", default=None, help="comma-separated methods for --compare-methods (default: all)")
    p.add_argument("--steps", type=int, default=16, help="perturbation steps for the faithfulness curves")
    p.set_defaults(func=run)


def _read(path: str) -> list[tuple[str, np.ndarray]]:
    """(name, gray uint8) per 2-D image or volume slice in ``path``."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(path).name.split(".")[0]) or "image"
    try:
        from brainmri.inference.inputs import decode_path
    except ImportError:  # reader for DICOM/NIfTI not available: plain images only
        from brainmri.data.io import read_image

        return [(stem, read_image(path))]
    decoded = decode_path(path)
    if decoded.indices is None:
        return [(stem, decoded.images[0])]
    return [(f"{stem}_slice{i:03d}", img) for i, img in zip(decoded.indices, decoded.images)]


def _save_png(path: Path, array: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(array).save(path)


def run(args) -> int:
    from brainmri.checkpoint import load_checkpoint
    from brainmri.evaluation.plots import explanation_png
    from brainmri.explain.cam import explain, heatmap_rgb, normalize_method

    method = normalize_method(args.method)
    model, meta = load_checkpoint(args.checkpoint)
    items = [item for path in args.images for item in _read(path)]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = explain(model, meta, [img for _, img in items], method=method, target_class=args.target_class, target_layer=args.target_layer)
    used: set[str] = set()
    for (stem, gray), res in zip(items, results):
        name = stem
        k = 1
        while name in used:  # two inputs with the same file name
            k += 1
            name = f"{stem}_{k}"
        used.add(name)
        _save_png(out / f"{name}_original.png", gray)
        _save_png(out / f"{name}_heatmap.png", heatmap_rgb(res.heatmap))
        _save_png(out / f"{name}_overlay.png", res.overlay)
        title = f"predicted {res.predicted_class} ({res.prob:.2f}) · {method} for {res.target_class} ({res.target_prob:.2f})"
        (out / f"{name}_explanation.png").write_bytes(explanation_png(gray, res.heatmap, res.overlay, title))
        print(f"{name}: predicted {res.predicted_class} (p={res.prob:.3f}); {method} map for {res.target_class} -> {out / name}_{{original,heatmap,overlay,explanation}}.png")
    if args.compare_methods:
        from brainmri.explain.faithfulness import ALL_METHODS, faithfulness_scores, format_table

        methods = [m.strip() for m in args.methods.split(",")] if args.methods else list(ALL_METHODS)
        rows = faithfulness_scores(model, meta, [img for _, img in items], methods, args.target_class, args.target_layer, n_steps=args.steps)
        print()
        print(format_table(rows))
        print("deletion AUC: target probability while the most salient pixels are blanked (lower = more faithful);")
        print("insertion AUC: while they are revealed on a blank image (higher = more faithful); 'random' is chance level.")
        (out / "faithfulness.json").write_text(json.dumps(rows, indent=2))
    import brainmri

    print(brainmri.DISCLAIMER)
    return 0
