"""Time ``brainmri data audit`` on the real four-class tumor set (7,023 images).

Runs the audit twice: with an empty hash cache (decode + hash every file) and with the cache
filled by the first run (what training and evaluation pay afterwards). Prints a markdown table.
Skips with a message when the dataset is absent.

Usage:
    nice -n 10 python bench/audit_bench.py [--root PATH] [--threshold N]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from brainmri.config import DataConfig
from brainmri.data.audit import DEFAULT_THRESHOLD, audit_index
from brainmri.data.datasets import load_dataset
from brainmri.data.hashing import hash_samples

REPO = Path(__file__).resolve().parents[1]


def default_root() -> Path:
    base = Path(os.environ.get("BRAINMRI_DATASETS", REPO.parent / "shared" / "datasets"))
    return base / "brain-tumor-mri"


def timed_audit(root: Path, cache_dir: Path, threshold: int) -> tuple[dict, float, float]:
    """Load, hash and audit; returns (report, total seconds, hashing seconds)."""
    start = time.perf_counter()
    index = load_dataset(DataConfig(root=str(root)))
    t_hash = time.perf_counter()
    hashes = hash_samples(index, cache_dir=cache_dir)
    t_hash = time.perf_counter() - t_hash
    report = audit_index(index, threshold, hashes=hashes)
    return report, time.perf_counter() - start, t_hash


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=default_root())
    parser.add_argument("--threshold", type=int, default=DEFAULT_THRESHOLD)
    args = parser.parse_args(argv)
    if not args.root.is_dir():
        print(f"skipped: dataset not found at {args.root} (set BRAINMRI_DATASETS or --root)")
        return 0
    print(f"audit of {args.root} (threshold {args.threshold} of 256 bits, {os.cpu_count()} CPUs)\n")
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        for label in ("cold hash cache", "warm hash cache"):
            report, seconds, hash_s = timed_audit(args.root, Path(cache), args.threshold)
            rows.append((label, report, seconds, hash_s))
    print("| run | images | seconds | hashing s | images/s | exact dup groups | near-dup groups | test leaked | label conflicts |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for label, r, seconds, hash_s in rows:
        cross = r["cross_split"]
        print(f"| {label} | {r['images']:,} | {seconds:.1f} | {hash_s:.1f} | {r['images'] / seconds:,.0f} | "
              f"{r['exact_duplicate_groups']} | {r['near_duplicates']['groups']} | "
              f"{cross['test_images_with_train_near_duplicate']} / {cross['test_images']} | {r['label_conflicts']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
