"""Images/s of decode + brain crop + resize (``read_image`` + ``prepare_image``) on real scans,
without and with the prepared-image cache (:class:`brainmri.data.cache.ImageCache`).

Takes a fixed random sample of the four-class tumor set (default 800 images; ``--all`` for all
7,023), fills a temporary cache once (not timed as a "with cache" pass), then times several passes
of each path and prints the medians as a markdown table. Skips with a message when the dataset is
absent.

Usage:
    nice -n 10 python bench/pipeline_bench.py [--n 800 | --all] [--passes 3] [--size 224]
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from brainmri.config import DataConfig, PreprocessConfig
from brainmri.data.cache import ImageCache
from brainmri.data.datasets import load_dataset
from brainmri.data.io import read_image
from brainmri.preprocess.pipeline import prepare_image

REPO = Path(__file__).resolve().parents[1]


def default_root() -> Path:
    base = Path(os.environ.get("BRAINMRI_DATASETS", REPO.parent / "shared" / "datasets"))
    return base / "brain-tumor-mri"


def pass_uncached(paths: list[str], cfg: PreprocessConfig) -> float:
    start = time.perf_counter()
    for p in paths:
        prepare_image(read_image(p), cfg)
    return time.perf_counter() - start


def pass_cached(paths: list[str], cache: ImageCache) -> float:
    start = time.perf_counter()
    for p in paths:
        if cache.get(p) is None:
            raise RuntimeError(f"{p}: cache miss in a warm pass")
    return time.perf_counter() - start


def fill(paths: list[str], cfg: PreprocessConfig, cache: ImageCache) -> float:
    start = time.perf_counter()
    for p in paths:
        if cache.get(p) is None:
            cache.put(p, prepare_image(read_image(p), cfg))
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=default_root())
    parser.add_argument("--n", type=int, default=800, help="random sample size")
    parser.add_argument("--all", action="store_true", help="every image instead of a sample")
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--size", type=int, default=224, help="prepared image side")
    args = parser.parse_args(argv)
    if not args.root.is_dir():
        print(f"skipped: dataset not found at {args.root} (set BRAINMRI_DATASETS or --root)")
        return 0
    paths = sorted(s.path for s in load_dataset(DataConfig(root=str(args.root))).samples)
    if not args.all:
        paths = random.Random(0).sample(paths, min(args.n, len(paths)))
    cfg = PreprocessConfig(image_size=args.size)
    with tempfile.TemporaryDirectory() as tmp:
        cache = ImageCache(tmp, cfg)
        fill_s = fill(paths, cfg, cache)
        uncached = [pass_uncached(paths, cfg) for _ in range(args.passes)]
        cached = [pass_cached(paths, cache) for _ in range(args.passes)]
    n = len(paths)
    u, c = statistics.median(uncached), statistics.median(cached)
    print(f"{n} images from {args.root}, prepared at {args.size} px (crop on), "
          f"median of {args.passes} passes, {os.cpu_count()} CPUs\n")
    print("| path | seconds / pass | images/s | ms / image |")
    print("|---|---:|---:|---:|")
    print(f"| decode + crop + resize, no cache | {u:.2f} | {n / u:,.0f} | {1000 * u / n:.2f} |")
    print(f"| cache fill (first pass: decode + prepare + write) | {fill_s:.2f} | {n / fill_s:,.0f} | {1000 * fill_s / n:.2f} |")
    print(f"| prepared-image cache, warm | {c:.2f} | {n / c:,.0f} | {1000 * c / n:.2f} |")
    print(f"\nspeed-up of the warm cache: {u / c:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
