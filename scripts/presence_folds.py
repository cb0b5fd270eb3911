"""Split a binary (yes/no) tumor set into K folds for cross-fitted tumor-presence training.

Training on another source's tumor scans teaches a four-class model what tumors look like in
sequences the four-class set rarely shows (T2, FLAIR), but then that source is no longer a
cross-source test. Cross-fitting keeps a test: fold k's model trains on the other folds and is
scored on fold k, so every scan is scored by a model that never saw it (nor a near-duplicate
of it: near-duplicate clusters never straddle folds, and scans with a near-duplicate in
REFERENCE, the four-class training set, are left out altogether). The pooled out-of-fold recall
measures "other scans of a source seen in training", which is weaker than an unseen source;
report it as such.

Writes, under OUT: ``fold{k}.csv`` (the scans of fold k) and ``train_except{k}.csv`` (all other
folds), columns ``Image,Class`` (absolute paths; ``Class`` is ``yes``/``no``), plus ``all.csv``.
Only file names are written; no image or derived data leaves the dataset folder.

    python scripts/presence_folds.py ../shared/datasets/brain-mri-yes-no \\
        --reference ../shared/datasets/brain-tumor-mri --out runs/folds/yesno --k 2
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

from brainmri.config import DataConfig
from brainmri.data.audit import DEFAULT_THRESHOLD, near_duplicate_groups
from brainmri.data.datasets import load_dataset
from brainmri.errors import BrainMRIError
from brainmri.evaluation.cross_source import near_duplicate_mask


def assign_folds(groups: np.ndarray, labels: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Fold per sample: whole near-duplicate groups go to one fold, each label spread evenly
    (groups dealt largest first to the fold with the fewest of that label)."""
    rng = np.random.default_rng(seed)
    fold = np.full(len(groups), -1)
    for lab in np.unique(labels):
        ids = np.unique(groups[labels == lab])
        ids = ids[rng.permutation(len(ids))]
        sizes = np.array([(groups == g).sum() for g in ids])
        counts = np.zeros(k, dtype=int)
        for g, size in sorted(zip(ids, sizes), key=lambda t: -t[1]):
            f = int(np.argmin(counts))
            fold[(groups == g) & (labels == lab)] = f
            counts[f] += size
    return fold


def _write(path: Path, rows: list[tuple[str, str]]) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["Image", "Class"])
        w.writerows(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data", help="yes/no (or tumor2-readable) image folder")
    ap.add_argument("--reference", help="leave out scans with a near-duplicate here (the main training set)")
    ap.add_argument("--out", required=True, help="folder for the fold CSVs")
    ap.add_argument("--k", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--labels", default="yes", help="comma-separated classes to keep (default: yes, the tumors)")
    ap.add_argument("--threshold", type=int, default=DEFAULT_THRESHOLD, help="pHash distance counting as a near-duplicate")
    args = ap.parse_args(argv)
    try:
        index = load_dataset(DataConfig(root=args.data, split="stratified", val_ratio=0.0, test_ratio=0.0, preset="tumor2"))
        names = ["yes" if index.class_names[s.label] == "tumor" else "no" for s in index.samples]
        keep = np.array([n in args.labels.split(",") for n in names])
        if args.reference:
            seen, summary = near_duplicate_mask(index, args.reference, args.threshold)
            print(f"left out {int((seen & keep).sum())} scans with a near-duplicate in {args.reference}")
            keep &= ~seen
        groups = near_duplicate_groups(index, args.threshold)
    except BrainMRIError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    idx = np.nonzero(keep)[0]
    labels = np.array([names[i] for i in idx])
    fold = assign_folds(groups[idx], labels, args.k, args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = [(str(Path(index.samples[i].path).resolve()), names[i]) for i in idx]
    _write(out / "all.csv", rows)
    for f in range(args.k):
        _write(out / f"fold{f}.csv", [r for r, g in zip(rows, fold) if g == f])
        _write(out / f"train_except{f}.csv", [r for r, g in zip(rows, fold) if g != f])
        print(f"fold {f}: {int((fold == f).sum())} scans ({len(np.unique(groups[idx][fold == f]))} near-duplicate groups)")
    print(f"wrote {out}/fold*.csv, train_except*.csv, all.csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
