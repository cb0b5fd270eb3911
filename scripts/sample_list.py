"""Pick a seeded, class-stratified sample of an image-folder dataset and write it as a file list.

A large healthy-only set (the 6,400 Alzheimer slices) joins tumor4 training as an extra healthy
source (``data.extra_train LIST.csv=notumor``) through a few hundred of its images, each class
folder in proportion; the rest stay out of training and can still be scored
(``brainmri evaluate CKPT --data REST.csv --tumor-presence --assume-label notumor``).

    python scripts/sample_list.py ../shared/datasets/alzheimer-mri --n 400 --seed 0 \\
        --out runs/folds/alz400.csv --rest runs/folds/alz_rest.csv

Columns ``Image,Class`` (absolute paths, class folder names). Only file names are written; no
image or derived data leaves the dataset folder.
"""
from __future__ import annotations

import argparse
import csv
import random
import sys
from collections import Counter
from pathlib import Path

from brainmri.data.io import image_files


def stratified_sample(root: Path, n: int, seed: int) -> tuple[list[tuple[Path, str]], list[tuple[Path, str]]]:
    """``(picked, rest)``: from each class folder of ``root`` (sorted), ``round(n * share)`` of the
    images (sorted, then shuffled by one ``random.Random(seed)`` shared across folders)."""
    classes = {d.name: image_files(d) for d in sorted(root.iterdir()) if d.is_dir() and not d.name.startswith(".")}
    classes = {c: fs for c, fs in classes.items() if fs}
    total = sum(len(fs) for fs in classes.values())
    if not classes:
        raise ValueError(f"{root}: no class folders with images in them")
    if not 0 < n <= total:
        raise ValueError(f"--n {n}: must be between 1 and the {total} images under {root}")
    rng = random.Random(seed)
    picked, rest = [], []
    for c, fs in classes.items():
        fs = list(fs)
        rng.shuffle(fs)
        k = round(n * len(fs) / total)
        picked += [(f, c) for f in fs[:k]]
        rest += [(f, c) for f in fs[k:]]
    return picked, rest


def _write(path: Path, rows: list[tuple[Path, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["Image", "Class"])
        w.writerows((str(f), c) for f, c in rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", help="dataset folder with one sub-folder of images per class")
    ap.add_argument("--n", type=int, required=True, help="images to pick in all (each class in proportion)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True, help="CSV of the picked images")
    ap.add_argument("--rest", help="CSV of every other image (optional)")
    args = ap.parse_args(argv)
    root = Path(args.data).expanduser().resolve()
    if not root.is_dir():
        print(f"error: {args.data}: not a folder", file=sys.stderr)
        return 2
    try:
        picked, rest = stratified_sample(root, args.n, args.seed)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    _write(Path(args.out), picked)
    if args.rest:
        _write(Path(args.rest), rest)
    counts = Counter(c for _, c in picked)
    print(f"wrote {len(picked)} images to {args.out} ({', '.join(f'{c} {k}' for c, k in counts.items())})"
          + (f" and {len(rest)} to {args.rest}" if args.rest else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
