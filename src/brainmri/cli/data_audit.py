"""``brainmri data audit DIR``: duplicates, train/test leakage and label conflicts of a dataset.

Prints a summary; ``--json`` writes the full report (see :func:`brainmri.data.audit.audit_index`),
``--montage`` a PNG of the closest (or the borderline) cross-split pairs to check by eye.
"""
from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from brainmri.cli.helpfmt import DefaultsHelp
from brainmri.cli.outputs import check_distinct_outputs, check_output_file
from brainmri.cli.labelopts import add_label_flags, label_options
from brainmri.config import DataConfig, apply_data_options
from brainmri.errors import ConfigError

log = logging.getLogger(__name__)
FIGURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".pdf", ".svg", ".tif", ".tiff", ".webp")


def _data_config(args: argparse.Namespace) -> DataConfig:
    from brainmri.data.presets import PRESETS

    if args.preset is not None and args.preset not in PRESETS:
        raise ConfigError(f"--preset={args.preset!r} is not valid; choose one of: {', '.join(PRESETS)}")
    cfg = DataConfig(root=args.root, preset=args.preset)
    if args.csv:
        cfg.csv = args.csv
    return apply_data_options(cfg, label_options(args))


def _top(counts: dict, n: int = 5) -> str:
    items = list(counts.items())
    text = ", ".join(f"{k} ({v:,})" for k, v in items[:n])
    return text + (f", +{len(items) - n} more" if len(items) > n else "")


def summary_lines(report: dict) -> list[str]:
    """Human-readable summary of an audit report."""
    splits = ", ".join(f"{k} {v:,}" for k, v in report["splits"].items())
    exact, near, cross = report["exact_duplicates"], report["near_duplicates"], report["cross_split"]
    pct = 100.0 * cross["test_images_with_train_near_duplicate"] / max(cross["test_images"], 1)
    lines = [
        f"{report['root']}: {report['images']:,} images ({splits}), classes {', '.join(report['classes'])}",
        f"unreadable: {len(report['unreadable'])}" + "".join(f"\n  {u['path']}: {u['reason']}" for u in report["unreadable"][:20]),
        f"sizes: {_top(report['sizes'])}",
        f"modes: {_top(report['modes'])}; formats: {_top(report['formats'])}"
        + (f"; {len(report['extension_mismatch'])} with a misleading extension" if report["extension_mismatch"] else ""),
        f"exact duplicates (same decoded pixels): {exact['pixels']['groups']:,} groups, {exact['pixels']['images']:,} images, "
        f"{exact['pixels']['cross_split_groups']:,} across splits; byte-identical files: {exact['file_bytes']['groups']:,} groups",
        f"near-duplicates (pHash distance <= {report['threshold']} of 256 bits): {near['groups']:,} groups, "
        f"{near['images_in_groups']:,} images, largest {near['largest_group']}, {near['cross_split_groups']:,} across splits",
        f"test images with a near-duplicate in train/val: {cross['test_images_with_train_near_duplicate']:,} of "
        f"{cross['test_images']:,} ({pct:.1f}%): " + ", ".join(f"{c} {n}" for c, n in cross["by_class"].items()),
        f"label conflicts (near-duplicate pairs with different labels): {report['label_conflicts']:,}"
        + (f" in {near['label_conflict_groups']} groups" if report["label_conflicts"] else ""),
    ]
    return lines


def _montage_path(spec: str | None) -> Path | None:
    """Where ``--montage`` writes: an existing folder gets ``montage.png`` inside it; a name
    without an image suffix gets ``.png`` (the figure writer would add it silently, or fail)."""
    if spec is None:
        return None
    p = Path(spec).expanduser()
    if p.is_dir():
        return p / "montage.png"
    return p if p.suffix.lower() in FIGURE_SUFFIXES else p.with_name(p.name + ".png")


def run_audit(args: argparse.Namespace) -> int:
    from brainmri.data.audit import audit_index, write_montage
    from brainmri.data.datasets import load_dataset
    from brainmri.data.hashing import HASH_BITS, hash_samples

    if not (0 <= args.threshold <= HASH_BITS):
        raise ConfigError(f"--threshold={args.threshold} must be between 0 and {HASH_BITS} (bits of the perceptual hash)")
    if args.montage_pairs < 1:
        raise ConfigError(f"--montage-pairs={args.montage_pairs} must be >= 1")
    inputs = [args.root, *([Path(args.root) / args.csv] if getattr(args, "csv", None) else [])]  # the labels CSV is an input too
    check_output_file(args.json, "--json", not_same_as=inputs, force=args.force)
    montage = _montage_path(args.montage)
    check_output_file(montage, "--montage", not_same_as=inputs, force=args.force)
    check_distinct_outputs(("--json", args.json), ("--montage", montage))
    start = time.perf_counter()
    index = load_dataset(_data_config(args))
    hashes = hash_samples(
        index, cache_dir=args.cache_dir, use_cache=not args.no_cache,
        progress=lambda done, total: log.info("hashed %d / %d images", done, total),
    )
    report = audit_index(index, threshold=args.threshold, hashes=hashes)
    report["seconds"] = round(time.perf_counter() - start, 2)
    for line in summary_lines(report):
        print(line)
    if args.json:
        from brainmri.outputs import write_json

        print(f"report: {write_json(report, args.json)}")
    if montage is not None:
        key = "closest_pairs" if args.montage_select == "closest" else "borderline_pairs"
        title = ("Closest" if args.montage_select == "closest" else f"Borderline (largest distance <= {args.threshold})")
        path = write_montage(index, report["cross_split"][key], montage, args.montage_pairs,
                             title=f"{title} test-train pairs (pHash Hamming distance d of 256 bits; near-duplicate: d <= {args.threshold})",
                             threshold=args.threshold)
        print(f"montage: {path}")
    print(f"done in {time.perf_counter() - start:.1f} s")
    return 0


def register(subparsers) -> None:
    from brainmri.data.audit import DEFAULT_THRESHOLD

    p = subparsers.add_parser(
        "audit",
        help="find exact/near duplicates, train-test leakage and label conflicts",
        description="Audit a dataset: counts per split and class, image sizes and modes, unreadable files, "
        "exact duplicates (file bytes and decoded pixels), near-duplicates by 256-bit perceptual hash within "
        "and across splits, test images with a near-duplicate in train/val, and near-duplicates with "
        "different labels. Hashes are cached per file.",
        formatter_class=DefaultsHelp,
    )
    p.add_argument("root", metavar="DIR", help="dataset folder (split or class folders), CSV or NPZ file")
    p.add_argument("--json", metavar="OUT", help="write the full report as JSON")
    p.add_argument("--montage", metavar="OUT.png", help="write a PNG of cross-split pairs side by side (an existing folder: OUT/montage.png)")
    p.add_argument("--force", action="store_true", help="replace existing --json / --montage files that brainmri did not write")
    p.add_argument("--montage-pairs", type=int, default=12, help="pairs in the montage")
    p.add_argument("--montage-select", choices=("closest", "borderline"), default="closest",
                   help="closest pairs, or leaked pairs nearest the threshold (to judge the threshold)")
    p.add_argument("--threshold", type=int, default=DEFAULT_THRESHOLD,
                   help="pHash Hamming distance (of 256 bits) at or below which images are near-duplicates")
    p.add_argument("--preset", help="tumor4 | tumor2 | alzheimer4 (class order and label merging)")
    p.add_argument("--csv", help="CSV mapping image paths to labels (relative to DIR)")
    p.add_argument("--cache-dir", help="hash cache folder (default: $BRAINMRI_CACHE/hashes or ~/.cache/brainmri/hashes)")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the hash cache")
    add_label_flags(p)
    p.set_defaults(func=run_audit)
