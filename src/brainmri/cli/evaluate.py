"""``brainmri evaluate``: metrics with confidence intervals, calibration, leak-aware numbers and
an HTML report for one checkpoint on one dataset split."""
from __future__ import annotations

import logging

from brainmri.cli.helpfmt import DefaultsHelp
from brainmri.cli.labelopts import add_label_flags, label_options
from brainmri.errors import DatasetError

log = logging.getLogger(__name__)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "evaluate",
        help="evaluate a checkpoint on a dataset split (metrics, CIs, calibration, leak-free numbers, HTML report)",
        description=(
            "Evaluate a checkpoint. Class names, preprocessing and temperature come from the checkpoint. "
            "Reports accuracy, loss, precision/recall/F1 (per class, macro, weighted), MCC, Cohen's kappa, "
            "one-vs-rest ROC-AUC, 95% bootstrap intervals, ECE before/after temperature scaling, and the same "
            "numbers on the test images that have no near-duplicate in training. Data without a training split of its own (a folder "
            "of class folders, a CSV / NPZ without a split column, only Testing/) is an external test set: every image is scored, "
            "classes it lacks are named and left out of the macro averages; the checkpoint's own training folder is carved as in "
            "training. For research use only; not a medical device."
        ),
        formatter_class=DefaultsHelp,
    )
    p.add_argument("checkpoint", help="brainmri .safetensors checkpoint")
    p.add_argument("--data", required=True, help="dataset folder (split folders, class folders), CSV folder or NPZ file")
    p.add_argument("--split", default="test", help="train | val | test (data with no split of its own, e.g. a folder of class folders, "
                                                 "is wholly the test set unless it is the checkpoint's own training data)")
    p.add_argument("--preset", default=None, help="tumor4 | tumor2 | alzheimer4, if the checkpoint names no task")
    p.add_argument("--json", dest="json_out", metavar="OUT", help="write all results as JSON here")
    p.add_argument("--report", metavar="OUT.html", help="write a self-contained HTML report here")
    p.add_argument("--force", action="store_true", help="replace existing --json / --report files that brainmri did not write")
    p.add_argument("--tta", action="store_true", help="also predict with test-time augmentation (hflip + small shifts) and report its effect")
    p.add_argument("--all-splits", action="store_true", help="also evaluate train and validation (seed 000's table; costs time)")
    p.add_argument("--batch-size", type=int, default=64, help="images per forward pass")
    p.add_argument("--leak-threshold", type=int, default=None, metavar="N",
                   help="pHash Hamming distance counting as a near-duplicate of a training image (default: the audit's; negative disables the check)")
    p.add_argument("--bootstrap", type=int, default=1000, metavar="N", help="bootstrap resamples for the 95%% intervals")
    p.add_argument("--explain-method", default="gradcam", help="CAM method for the report's explanation gallery")
    p.add_argument("--cache-dir", default=None, help="prepared-image cache folder ('auto' for the default; off when omitted)")
    p.add_argument("--tumor-presence", action="store_true",
                   help="cross-source check: collapse the model's classes to tumor vs notumor and report the rate of tumor scans "
                        "called a tumor class and of healthy scans called notumor (DATA: yes/no or tumor-type folders)")
    p.add_argument("--assume-label", choices=("tumor", "notumor"), default=None,
                   help="implies --tumor-presence: every image under DATA (or every slice of a NIfTI volume) has this label (e.g. a healthy-only set)")
    p.add_argument("--exclude-near-duplicates-of", dest="exclude_seen", metavar="DIR", default=None,
                   help="with --tumor-presence: leave out images with a near-duplicate (pHash) in DIR, e.g. the model's training set")
    p.add_argument("--exclude-trained", action="store_true",
                   help="with --tumor-presence: leave out the images the checkpoint was trained on (its data.extra_train files, matched by name and, for checkpoints that record them, by perceptual hash: renamed or re-encoded copies too)")
    p.add_argument("--axis", default=None, help="with --tumor-presence on a NIfTI volume: slicing axis (default axial)")
    p.add_argument("--slices", default=None, help="with --tumor-presence on a NIfTI volume: slices (middle, middle:K, all, A:B[:STEP], N; default middle:80)")
    add_label_flags(p)
    p.set_defaults(func=run)


def _fmt_ci(value: float, ci: list) -> str:
    lo, hi = ci
    return f"{100 * value:.2f}% [{100 * lo:.2f}, {100 * hi:.2f}]"


def summary_lines(r: dict) -> list[str]:
    """Human summary of an evaluation result (what the CLI prints)."""
    lines = [f"{r['model']} on {r['data']} ({r['split']}, n={r['n']})"]
    lines += [r['split_note'] if r['split_note'].startswith('WARNING') else f"note: {r['split_note']}"] if r.get('split_note') else []
    ood = r.get("out_of_distribution") or {}
    if ood.get("n"):
        lines.append(f"note: {ood['note']}: " + "; ".join(ood["examples"][:3]) + (" ..." if ood["n"] > 3 else ""))
    lines += ["", r["report_text"], ""]
    lines.append(f"accuracy {_fmt_ci(r['accuracy'], r['ci']['accuracy'])}   macro F1 {_fmt_ci(r['macro_f1'], r['ci']['macro_f1'])}  (95% bootstrap"
                 + (f", only {r['ci']['n_boot']} resamples: a rough interval" if r["ci"].get("n_boot", 1000) < 200 else "") + ")")
    t_note = " (no fitted temperature in the checkpoint)" if r["temperature_missing"] else ""
    if r.get("top_label") and r.get("ece_temperature") is not None:
        lines.append(f"calibration: T = {r['temperature']:.3f}, then top-label scaling; ECE {r['ece_before']:.4f} with T=1 -> "
                     f"{r['ece_temperature']:.4f} with T -> {r['ece']:.4f} with both")
    else:
        lines.append(f"calibration: T = {r['temperature']:.3f}{t_note}; ECE {r['ece_before']:.4f} with T=1 -> {r['ece']:.4f} with T")
    leak, lf = r.get("leak"), r.get("leak_free")
    if r.get("leak_note"):
        lines.append(r["leak_note"])
    if leak and leak.get("checked"):
        lines.append(f"leakage: {leak['n_leaked']} of {leak['n_test']} test images have a near-duplicate in training (pHash <= {leak['threshold']})")
        if lf:
            lines.append(f"  leak-free subset (n={lf['n']}): accuracy {_fmt_ci(lf['accuracy'], lf['ci']['accuracy'])}   macro F1 {_fmt_ci(lf['macro_f1'], lf['ci']['macro_f1'])}")
    if r.get("tta"):
        t = r["tta"]
        lines.append(f"TTA: accuracy {100 * t['accuracy']:.2f}% ({100 * t['delta_accuracy']:+.2f} points), macro F1 {100 * t['macro_f1']:.2f}% ({100 * t['delta_macro_f1']:+.2f} points)")
    if len(r.get("splits", {})) > 1:
        lines += ["", f"{'split':<12}{'accuracy':>10}{'loss':>9}{'precision':>11}{'recall':>9}"]
        for name in ("train", "val", "test"):
            s = r["splits"].get(name)
            if s:
                lines.append(f"{name:<12}{100 * s['accuracy']:>9.2f}%{s['loss']:>9.4f}{100 * s['precision']:>10.2f}%{100 * s['recall']:>8.2f}%")
    if r.get("unreadable"):
        lines.append(f"skipped {len(r['unreadable'])} unreadable image(s), e.g. {r['unreadable'][0]}")
    lines.append(r["disclaimer"])
    return lines


def _check_flags(args) -> None:
    """Refuse a flag that the chosen mode would silently ignore, and a NIfTI volume without a label."""
    from brainmri.errors import ConfigError
    from brainmri.evaluation.cross_source import is_nifti

    presence = bool(args.tumor_presence or args.assume_label)
    nifti = is_nifti(args.data)
    if nifti and not args.assume_label:
        raise ConfigError(f"{args.data}: a NIfTI volume has no labels; evaluate it with --assume-label tumor|notumor "
                          "(tumor-presence rates over its slices)")
    only_presence = "works only with --tumor-presence (or --assume-label)"
    only_classes = "works only for the class metrics (without --tumor-presence / --assume-label)"
    checks = [
        ("--exclude-near-duplicates-of", args.exclude_seen, only_presence, not presence),
        ("--exclude-trained", args.exclude_trained, only_presence, not presence),
        ("--axis", args.axis is not None, "works only for a NIfTI volume (with --assume-label)", not nifti),
        ("--slices", args.slices is not None, "works only for a NIfTI volume (with --assume-label)", not nifti),
        ("--report", args.report, only_classes, presence),
        ("--tta", args.tta, only_classes, presence),
        ("--all-splits", args.all_splits, only_classes, presence),
        ("--preset", args.preset, only_classes, presence),
        ("--split", args.split != "test", only_classes + "; tumor presence uses every image", presence),
    ]
    for flag, given, why, ignored in checks:
        if given and ignored:
            raise ConfigError(f"{flag} {why}; it would be ignored here")


def run(args) -> int:
    from brainmri.cli.outputs import check_distinct_outputs, check_output_dir, check_output_file
    from brainmri.data.cache import check_cache_outside, resolve_cache_dir
    from brainmri.evaluation.evaluate import check_options, evaluate_checkpoint

    inputs = [args.checkpoint, args.data]
    check_output_file(args.json_out, "--json", not_same_as=inputs, force=args.force)
    check_output_file(args.report, "--report", not_same_as=inputs, force=args.force)
    check_distinct_outputs(("--json", args.json_out), ("--report", args.report))
    if args.cache_dir not in (None, "auto"):
        check_output_dir(resolve_cache_dir(args.cache_dir), "--cache-dir")
    check_options(args.batch_size, args.bootstrap, args.leak_threshold, args.explain_method)
    _check_flags(args)
    cache_dir = resolve_cache_dir(args.cache_dir)
    check_cache_outside(cache_dir, args.data)
    cache_dir = str(cache_dir) if cache_dir else None
    if args.tumor_presence or args.assume_label:
        from brainmri.evaluation.cross_source import evaluate_tumor_presence, summary_lines as presence_lines
        from brainmri.outputs import write_json

        presence = evaluate_tumor_presence(args.checkpoint, args.data, args.assume_label, cache_dir, args.batch_size,
                                           exclude_seen=args.exclude_seen, threshold=args.leak_threshold, axis=args.axis or "axial",
                                           slices=args.slices or "middle:80", exclude_trained=args.exclude_trained,
                                           data_options=label_options(args))
        print("\n".join(presence_lines(presence)))
        if args.json_out:
            write_json(presence, args.json_out)
            print(f"JSON: {args.json_out}")
        return 0
    try:
        result = evaluate_checkpoint(
            args.checkpoint, args.data, split=args.split, preset=args.preset, batch_size=args.batch_size, tta=args.tta,
            leak_threshold=args.leak_threshold, all_splits=args.all_splits, n_boot=args.bootstrap, report=args.report,
            json_out=args.json_out, explain_method=args.explain_method, cache_dir=cache_dir, data_options=label_options(args),
        )
    except DatasetError as exc:
        text = str(exc)
        if "is not one of the configured classes" not in text:
            raise
        # evaluate takes no class map: say what it can do instead of naming a config field it cannot set
        raise DatasetError(text.replace(" (set data.class_map or data.preset)", "") + "; name the class folders after the model's "
                           "classes, or for yes/no, tumor/healthy folders check tumor presence with --tumor-presence") from None
    print("\n".join(summary_lines(result)))
    for label, path in (("JSON", args.json_out), ("report", args.report)):
        if path:
            print(f"{label}: {path}")
    return 0
