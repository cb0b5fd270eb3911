"""``brainmri explain``: class-activation maps (original, heat map, overlay) for images, and a
faithfulness table to compare CAM methods."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np

from brainmri.cli.helpfmt import DefaultsHelp
from brainmri.errors import BrainMRIError, ConfigError


def register(subparsers) -> None:
    from brainmri.explain.methods import METHODS

    p = subparsers.add_parser(
        "explain",
        help="heat maps showing where the model looked (Grad-CAM and friends)",
        description=(
            "For each image (files, folders, globs; for a NIfTI volume each slice of --axis / --slices) write "
            "<name>_original.png, <name>_heatmap.png, <name>_overlay.png and a combined <name>_explanation.png for the "
            "predicted class (or --class; eigencam is class-agnostic and takes no --class), <name> being the file name "
            "without its extension. --compare-methods scores every CAM method by deletion/insertion faithfulness. An "
            "input the out-of-distribution guard refuses (as predict does) gets no heat map. A file that cannot be read "
            "is reported and the others go on; the exit code is then non-zero. A rerun replaces its own maps; a file "
            "brainmri did not write, or an --out folder that holds other images (a dataset's class folder), needs --force. "
            "A heat map is not a segmentation and not a diagnosis. "
            "For research use only; not a medical device."
        ),
        formatter_class=DefaultsHelp,
    )
    p.add_argument("checkpoint", help="brainmri .safetensors checkpoint")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files (PNG/JPEG/BMP/TIFF, DICOM, NIfTI), folders or glob patterns")
    p.add_argument("--method", default="gradcam", help=f"one of: {', '.join(METHODS)}")
    p.add_argument("--class", dest="target_class", default=None, metavar="NAME", help="class to explain; none: the predicted one")
    p.add_argument("--target-layer", default=None, metavar="NAME", help="dotted module name of the layer to explain; none: automatic")
    p.add_argument("--out", default="explanations", metavar="DIR", help="output folder")
    p.add_argument("--axis", default="axial", help="NIfTI slicing axis: axial, coronal, sagittal or 0/1/2")
    p.add_argument("--slices", default="middle", help="NIfTI slices: middle, middle:K, all, A:B, A:B:STEP or N")
    p.add_argument("--force", action="store_true", help="replace files brainmri did not write, and write into a folder of other images")
    p.add_argument("--compare-methods", action="store_true", help="score every method's faithfulness (deletion/insertion AUC) on these images")
    p.add_argument("--methods", default=None, help="comma-separated methods for --compare-methods (default: all)")
    p.add_argument("--steps", type=int, default=16, help="perturbation steps for the faithfulness curves (>= 1)")
    p.set_defaults(func=run)


def _stem(path: str) -> str:
    """The file name without a known image extension (``1.5T_a.jpg`` -> ``1.5T_a``,
    ``vol.nii.gz`` -> ``vol``), other characters than letters (of any script), digits, ``._-`` replaced."""
    from brainmri.cli.predict import KNOWN_SUFFIXES

    name = Path(path).name
    for suffix in sorted(KNOWN_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            name = name[: -len(suffix)]
            break
    return re.sub(r"[^\w.-]+", "_", name).strip(".") or "image"  # letters of any script kept: 患者甲 and 患者乙 stay apart


def _where(path: str, name: str) -> str:
    """An output name traced to its input: ``scan.png``, or ``vol.nii.gz (slice074)``."""
    stem = _stem(path)
    return str(path) if name == stem else f"{path} ({name[len(stem) + 1:]})"


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


OUTPUT_KINDS = ("original", "heatmap", "overlay", "explanation")


def _unique_names(stems: list[str]) -> list[str]:
    used: set[str] = set()
    names = []
    for stem in stems:
        name, k = stem, 1
        while name in used:  # two inputs with the same file name
            k += 1
            name = f"{stem}_{k}"
        used.add(name)
        names.append(name)
    return names


def _check_outputs(out: Path, names: list[str], inputs: list[str], extra: list[str], force: bool) -> None:
    """Before any map is computed: refuse (unless ``force``) an existing file brainmri did not
    write, and an --out folder that holds images brainmri did not write (a dataset's class
    folder: the maps would join it as scans); never write over an input."""
    from brainmri.cli.outputs import check_no_foreign_images, check_output_file

    for name in [f"{n}_{kind}.png" for n in names for kind in OUTPUT_KINDS] + extra:
        check_output_file(out / name, "--out", not_same_as=inputs, force=force)
    check_no_foreign_images(out, "--out", force)


def _check_args(args) -> tuple[str, list[str]]:
    """Every flag checked before any work: (method, methods to compare)."""
    from brainmri.cli.outputs import check_output_dir, input_folders
    from brainmri.explain.cam import normalize_method
    from brainmri.explain.faithfulness import ALL_METHODS

    from brainmri.explain.methods import CLASS_AGNOSTIC
    from brainmri.inference.nifti import check_slices_spec, parse_axis

    method = normalize_method(args.method)
    if method in CLASS_AGNOSTIC and args.target_class is not None:
        raise ConfigError(f"--method {method} is class-agnostic (its map is the same for every class), so --class "
                          f"{args.target_class} would change nothing; use gradcam, gradcam++, hirescam, layercam or scorecam")
    parse_axis(args.axis)
    check_slices_spec(args.slices)
    methods = [normalize_method(m.strip()) for m in args.methods.split(",") if m.strip()] if args.methods else list(ALL_METHODS)
    if args.methods and not args.compare_methods:
        raise ConfigError("--methods chooses the methods of --compare-methods; add --compare-methods, or use --method for the maps")
    if args.compare_methods and not methods:
        raise ConfigError("--methods names no method; give e.g. gradcam,layercam")
    if args.steps < 1:
        raise ConfigError(f"--steps={args.steps} must be >= 1 (perturbation steps of the faithfulness curves)")
    check_output_dir(args.out, "--out", not_inside=input_folders(args.images, subfolders=True))
    return method, methods


def run(args) -> int:
    import brainmri
    from brainmri.checkpoint import load_checkpoint
    from brainmri.evaluation.plots import explanation_png
    from brainmri.explain.cam import check_target_layer, explain, heatmap_rgb, resolve_class
    from brainmri.cli.predict import expand_inputs
    from brainmri.explain.methods import CLASS_AGNOSTIC
    from brainmri.inference.classifier import Classifier, TorchRunner
    from brainmri.inference.inputs import decode_path
    from brainmri.outputs import png_bytes, write_json, write_output

    method, methods = _check_args(args)
    files, missing = expand_inputs(args.images)
    model, meta = load_checkpoint(args.checkpoint)
    resolve_class(args.target_class, meta.class_names)
    check_target_layer(model, meta, args.target_layer)
    clf = Classifier(TorchRunner(model, channels_last=False), meta, str(args.checkpoint), "torch", model=model)
    failed = read = 0
    for spec, reason in missing:
        print(f"brainmri explain: error: {spec}: {reason}", file=sys.stderr)
        failed += 1
    items: list[tuple[str, str, np.ndarray]] = []  # (input path, name, gray image)
    for path in files:  # a file that cannot be read is reported; the others go on
        try:
            decoded = decode_path(path, axis=args.axis, slices=args.slices)
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
                print(f"{_where(path, name)}: out of distribution: {reason}; no heat map written")
            else:
                items.append((path, name, gray))
    out = Path(args.out)
    names = _unique_names([name for _, name, _ in items])
    if items:
        _check_outputs(out, names, files, ["faithfulness.json"] if args.compare_methods else [], args.force)
    results = explain(model, meta, [img for _, _, img in items], method=method, target_class=args.target_class, target_layer=args.target_layer) if items else []
    if items:
        out.mkdir(parents=True, exist_ok=True)
    agnostic = " (class-agnostic)" if method in CLASS_AGNOSTIC else ""
    for (path, stem, gray), name, res in zip(items, names, results):
        write_output(out / f"{name}_original.png", png_bytes(gray))
        write_output(out / f"{name}_heatmap.png", png_bytes(heatmap_rgb(res.heatmap)))
        write_output(out / f"{name}_overlay.png", png_bytes(res.overlay))
        target = f"{method}{agnostic}" if agnostic else f"{method} for {res.target_class} ({res.target_prob:.2f})"
        title = f"{_where(Path(path).name, stem)} · predicted {res.predicted_class} ({res.prob:.2f}) · {target}"
        write_output(out / f"{name}_explanation.png", explanation_png(gray, res.heatmap, res.overlay, title))
        map_for = f"{method} map{agnostic}" if agnostic else f"{method} map for {res.target_class}"
        print(f"{_where(path, stem)}: predicted {res.predicted_class} (p={res.prob:.3f}); {map_for} -> {out / name}_{{original,heatmap,overlay,explanation}}.png")
    if args.compare_methods and items:
        from brainmri.explain.faithfulness import faithfulness_scores, format_table

        rows = faithfulness_scores(model, meta, [img for _, _, img in items], methods, args.target_class, args.target_layer, n_steps=args.steps)
        print()
        print(format_table(rows))
        print("deletion AUC: target probability while the most salient pixels are blanked (lower = more faithful);")
        print("insertion AUC: while they are revealed on a blank image (higher = more faithful); 'random' is chance level.")
        if any(r["method"] in CLASS_AGNOSTIC for r in rows):
            print(f"{', '.join(sorted(CLASS_AGNOSTIC))}: class-agnostic, the same map whatever class is explained; "
                  "a high score there says the map finds what drives the prediction, not why one class over another.")
        write_json({"faithfulness": rows}, out / "faithfulness.json")
    elif args.compare_methods:
        print("--compare-methods: no in-distribution image to score")
    if failed:
        print(f"{failed} of {len(files) + len(missing)} input(s) could not be read; see the errors above", file=sys.stderr)
    print(brainmri.DISCLAIMER)
    if failed:
        return 1 if read else 2  # 2: nothing could be read at all
    return 0
