"""Out-of-distribution guard: catch rate on generated non-MRI images, false rejects on real MRI.

* Catch rate: ``make_non_mri_images`` (colour photos, chest-X-ray-like, blank, noise, documents)
  at several sizes, input statistics only (no model needed).
* False-reject rate: the real four-class ``Testing`` split (../shared/datasets/brain-tumor-mri),
  input statistics only, and, with ``--checkpoint`` (whose metadata holds a fitted ``ood``
  config), the full guard including the energy score, plus the energy guard's catch rate.

Usage:
    nice -n 10 python bench/ood_bench.py [--checkpoint C] [--limit N] [--datasets DIR]
"""
from __future__ import annotations

import argparse
import os
import re
import sys
from collections import Counter
from pathlib import Path

import brainmri
from brainmri.data.io import read_image
from brainmri.inference.ood import NON_MRI_KINDS, check_ood, colorfulness_of_source, make_non_mri_images


def default_datasets() -> Path:
    env = os.environ.get("BRAINMRI_DATASETS")
    return Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared" / "datasets"


def catch_rates(clf=None) -> dict[str, tuple[int, int]]:
    images = [im for size, seed in ((64, 0), (128, 1), (256, 2), (512, 3)) for im in make_non_mri_images(50, size, seed)]
    caught, total = Counter(), Counter()
    for kind, img in images:
        total[kind] += 1
        flagged = clf.predict(img).out_of_distribution if clf is not None else check_ood(img, None, None)[0]
        caught[kind] += bool(flagged)
    return {k: (caught[k], total[k]) for k in NON_MRI_KINDS}


def false_rejects(files: list[Path], clf=None) -> tuple[int, int, Counter]:
    reasons: Counter = Counter()
    flagged = 0
    for f in files:
        if clf is not None:
            p = clf.predict(f)
            is_ood, reason = p.out_of_distribution, p.ood_reason
        else:
            is_ood, reason = check_ood(read_image(f), None, None, colorfulness_value=colorfulness_of_source(f))
        if is_ood:
            flagged += 1
            reasons[re.sub(r"-?\d[\d.e+-]*", "#", reason.split(" (")[0])] += 1
    return flagged, len(files), reasons


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default=None, help="checkpoint with a fitted ood config (enables the energy test)")
    ap.add_argument("--datasets", default=None, help="folder holding brain-tumor-mri/ (default: ../shared/datasets)")
    ap.add_argument("--limit", type=int, default=0, help="use only the first N Testing images (0: all)")
    args = ap.parse_args(argv)
    clf = None
    if args.checkpoint:
        from brainmri import Classifier

        clf = Classifier.load(args.checkpoint)
        print(f"checkpoint {args.checkpoint}: energy threshold {(clf.meta.ood or {}).get('energy_threshold')}")
    print("| non-MRI kind | caught (input statistics) |" + (" caught (full guard) |" if clf else ""))
    print("|---|---:|" + ("---:|" if clf else ""))
    stats_only = catch_rates()
    full = catch_rates(clf) if clf else None
    for kind in NON_MRI_KINDS:
        c, n = stats_only[kind]
        extra = f" {full[kind][0]}/{full[kind][1]} |" if full else ""
        print(f"| {kind} | {c}/{n} ({100 * c / n:.0f}%) |{extra}")
    testing = Path(args.datasets or default_datasets()) / "brain-tumor-mri" / "Testing"
    if not testing.is_dir():
        print(f"\n{testing} not found: false-reject rate skipped")
        return 0
    files = sorted(p for p in testing.rglob("*") if p.is_file() and not p.name.startswith("."))
    if args.limit:
        files = files[:: max(1, len(files) // args.limit)][: args.limit]
    for name, model in (("input statistics", None), ("full guard", clf)):
        if name == "full guard" and clf is None:
            continue
        bad, n, reasons = false_rejects(files, model)
        print(f"\nFalse rejects on real Testing images ({name}): {bad}/{n} ({100 * bad / max(1, n):.2f}%)")
        for reason, count in reasons.most_common():
            print(f"  {count:4d}  {reason}")
    print(brainmri.DISCLAIMER)
    return 0


if __name__ == "__main__":
    sys.exit(main())
