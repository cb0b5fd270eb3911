"""``brainmri explain``: class-activation maps (original, heat map, overlay) for images, and a
faithfulness table to compare CAM methods."""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np

from brainmri.errors import BrainMRIError, ConfigError


def register(subparsers) -> None:
    from brainmri.explain.methods import METHODS

    p = subparsers.add_parser(
        "explain",
        help="heat maps showing where the model looked (Grad-CAM and friends)",
        description=(
            "For each image write <name>_original.png, <name>_heatmap.png, <name>_overlay.png and a combined "
            "<name>_explanation.png for the predicted class (or --class). --compare-methods scores every CAM method "
            "by deletion/insertion faithfulness. An input the out-of-distribution guard refuses (as predict does) gets "
            "no heat map. A file that cannot be read is reported and the others go on; the exit code is then non-zero. "
            "A heat map is not a segmentation and not a diagnosis. "
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
    p.add_argument("--steps", type=int, default=16, help="perturbation steps for the faithfulness curves (>= 1)")
    p.set_defaults(func=run)


def _stem(path: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", Path(path).name.split(".")[0]) or "image"


def _items(path: str, decoded) -> list[tuple[str, np.ndarray]]:
    """(name, gray uint8) per 2-D image or volume slice of a decoded input."""
    stem = _stem(path)
    if decoded.indices is None:
        return [(stem, decoded.images[0])]
    return [(f"{stem}_slice{i:03d}", img) for i, img in zip(decoded.indices, decoded.images)]


def _ood_per_image(pred) -> list[tuple[bool, str | None]]:
    """(out of distribution, reason) per image of a prediction (per slice for a volume): the
    guard ``predict`` and the service apply."""
    if pred.slices is None:
        return [(pred.out_of_distribution, pred.ood_reason)]
    return [(s["out_of_distribution"], s["ood_reason"]) for s in pred.slices]


def _save_png(path: Path, array: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(array).save(path)


def _check_args(args) -> tuple[str, list[str]]:
    """Every flag checked before any work: (method, methods to compare)."""
    from brainmri.cli.outputs import check_output_dir
    from brainmri.explain.cam import normalize_method
    from brainmri.explain.faithfulness import ALL_METHODS

    method = normalize_method(args.method)
    methods = [normalize_method(m.strip()) for m in args.methods.split(",") if m.strip()] if args.methods else list(ALL_METHODS)
    if args.methods and not args.compare_methods:
        raise ConfigError("--methods chooses the methods of --compare-methods; add --compare-methods, or use --method for the maps")
    if args.compare_methods and not methods:
        raise ConfigError("--methods names no method; give e.g. gradcam,layercam")
    if args.steps < 1:
        raise ConfigError(f"--steps={args.steps} must be >= 1 (perturbation steps of the faithfulness curves)")
    check_output_dir(args.out, "--out")
    return method, methods


def run(args) -> int:
    import brainmri
    from brainmri.checkpoint import load_checkpoint
    from brainmri.evaluation.plots import explanation_png
    from brainmri.explain.cam import check_target_layer, explain, heatmap_rgb, resolve_class
    from brainmri.inference.classifier import Classifier, TorchRunner
    from brainmri.inference.inputs import decode_path

    method, methods = _check_args(args)
    model, meta = load_checkpoint(args.checkpoint)
    resolve_class(args.target_class, meta.class_names)
    check_target_layer(model, meta, args.target_layer)
    clf = Classifier(TorchRunner(model, channels_last=False), meta, str(args.checkpoint), "torch", model=model)
    failed = read = 0
    items: list[tuple[str, np.ndarray]] = []
    for path in args.images:  # a file that cannot be read is reported; the others go on
        try:
            decoded = decode_path(path)
        except BrainMRIError as exc:
            print(f"brainmri explain: error: {exc}", file=sys.stderr)
            failed += 1
            continue
        read += 1
        if (decoded.info or {}).get("note"):  # e.g. which volume of a 4-D NIfTI is explained
            print(f"{path}: note: {decoded.info['note']}")
        try:
            [pred] = clf.predict_decoded([decoded])
        except BrainMRIError as exc:
            print(f"brainmri explain: error: {exc}", file=sys.stderr)
            failed += 1
            continue
        except Exception as exc:  # noqa: BLE001 - one bad input never stops the others
            from brainmri.inference.classifier import short_reason

            print(f"brainmri explain: error: {path}: could not be processed ({short_reason(exc)})", file=sys.stderr)
            failed += 1
            continue
        for (name, gray), (ood, reason) in zip(_items(path, decoded), _ood_per_image(pred)):
            if ood:  # no heat map for what predict refuses to label (as the service: no overlay)
                print(f"{name}: out of distribution: {reason}; no heat map written")
            else:
                items.append((name, gray))
    out = Path(args.out)
    results = explain(model, meta, [img for _, img in items], method=method, target_class=args.target_class, target_layer=args.target_layer) if items else []
    if items:
        out.mkdir(parents=True, exist_ok=True)
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
    if args.compare_methods and items:
        from brainmri.explain.faithfulness import faithfulness_scores, format_table

        rows = faithfulness_scores(model, meta, [img for _, img in items], methods, args.target_class, args.target_layer, n_steps=args.steps)
        print()
        print(format_table(rows))
        print("deletion AUC: target probability while the most salient pixels are blanked (lower = more faithful);")
        print("insertion AUC: while they are revealed on a blank image (higher = more faithful); 'random' is chance level.")
        (out / "faithfulness.json").write_text(json.dumps(rows, indent=2))
    elif args.compare_methods:
        print("--compare-methods: no in-distribution image to score")
    if failed:
        print(f"{failed} of {len(args.images)} input(s) could not be read; see the errors above", file=sys.stderr)
    print(brainmri.DISCLAIMER)
    if failed:
        return 1 if read else 2  # 2: nothing could be read at all
    return 0
