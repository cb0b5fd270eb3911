"""``brainmri data synth | export-npz | counts``: make phantom datasets, pack any dataset into one
NPZ, and print the class counts per split."""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np

from brainmri.cli.labelopts import add_label_flags, label_options
from brainmri.config import DataConfig, PreprocessConfig, apply_data_options
from brainmri.data.presets import PRESETS
from brainmri.data.synthetic import FORMATS, LAYOUTS, TUMOR4
from brainmri.errors import ConfigError

log = logging.getLogger(__name__)


def _csv_list(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _data_config(args: argparse.Namespace) -> DataConfig:
    cfg = DataConfig(root=args.root, preset=args.preset, seed=args.seed)
    if args.preset is not None and args.preset not in PRESETS:
        raise ConfigError(f"--preset={args.preset!r} is not valid; choose one of: {', '.join(PRESETS)}")
    if getattr(args, "csv", None):
        cfg.csv = args.csv
    return apply_data_options(cfg, label_options(args))


def run_synth(args: argparse.Namespace) -> int:
    from brainmri.data.synthetic import make_phantom_dataset

    classes = _csv_list(args.classes)
    formats = _csv_list(args.formats)
    bad = [f for f in formats if f.lower() not in FORMATS]
    if len(classes) < 2:
        raise ConfigError(f"--classes needs at least two class names, got {args.classes!r}")
    if bad or not formats:
        raise ConfigError(f"--formats {args.formats!r} is not valid; choose from: {', '.join(FORMATS)}")
    if not (16 <= args.size <= 1024):
        raise ConfigError(f"--size={args.size} must be between 16 and 1024")
    if args.n_per_class < 1:
        raise ConfigError(f"--n-per-class={args.n_per_class} must be >= 1")
    if args.test_per_class is not None and args.test_per_class < 1:
        raise ConfigError(f"--test-per-class={args.test_per_class} must be >= 1")
    bad = [c for c in classes if "/" in c or "\\" in c or c.startswith(".") or c in ("..", "")]
    if bad:
        raise ConfigError(f"--classes: {bad[0]!r} is not a class name: class names become folder names, so no '/', '\\', "
                          "'..' or leading '.'")
    if len(set(classes)) != len(classes):
        raise ConfigError(f"--classes {args.classes!r} names a class twice")
    out = Path(args.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"{out}: {'is a file' if not out.is_dir() else 'is not empty'}; synth writes a new dataset into an empty "
                          "or new folder (it would replace files of the same names)")
    path = make_phantom_dataset(
        args.out, layout=args.layout, class_names=classes, n_per_class=args.n_per_class, size=args.size,
        seed=args.seed, test_per_class=args.test_per_class, formats=formats,
    )
    print(path)
    return 0


def run_export_npz(args: argparse.Namespace) -> int:
    from brainmri.data.datasets import load_dataset
    from brainmri.data.torchdata import PreparedImages

    import io

    from brainmri.checkpoint import atomic_write_bytes
    from brainmri.cli.outputs import OutputPathError, check_output_file

    if not (16 <= args.size <= 1024):
        raise ConfigError(f"--size={args.size} must be between 16 and 1024")
    out = Path(args.out)
    if out.suffix.lower() != ".npz":  # numpy would add it behind our back; say the real name
        out = out.with_name(out.name + ".npz")
    check_output_file(out, "--out", not_same_as=[args.root])  # never over the input NPZ, nor a scan inside the dataset
    if out.exists() and not args.force:
        raise OutputPathError(f"--out {out}: the file exists; pass --force to replace it")
    index = load_dataset(_data_config(args))
    pre = PreprocessConfig(image_size=args.size, crop=not args.no_crop)
    prepared = PreparedImages(index.samples, pre, arrays=index.arrays)
    buf = io.BytesIO()
    np.savez_compressed(
        buf,
        images=np.stack(prepared.images).astype(np.uint8),
        labels=np.array([s.label for s in prepared.samples], dtype=np.int64),
        class_names=np.array(index.class_names),
        split=np.array([s.split for s in prepared.samples]),
    )
    atomic_write_bytes(out, buf.getvalue())  # a full disk or a crash leaves the old file or none, never half of one
    print(f"{out}: {len(prepared.samples)} images at {args.size} px, classes {', '.join(index.class_names)}"
          + (f"; {len(prepared.failures)} unreadable skipped" if prepared.failures else ""))
    return 0


def run_counts(args: argparse.Namespace) -> int:
    from brainmri.data.datasets import load_dataset

    index = load_dataset(_data_config(args))
    counts = index.counts()
    if args.json:
        print(json.dumps({"layout": index.layout, "class_names": index.class_names, "counts": counts, "skipped": index.skipped}))
        return 0
    width = max(len(c) for c in index.class_names)
    splits = [s for s in ("train", "val", "test") if s in counts]
    print(f"{index.root} ({index.layout}{', official split' if index.official_split else ''})")
    print(" " * width + "".join(f"{s:>8}" for s in splits))
    for c in index.class_names:
        print(f"{c:<{width}}" + "".join(f"{counts[s][c]:>8}" for s in splits))
    return 0


def _add_source_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("root", help="dataset folder (split or class folders), a labels CSV, or an NPZ file")
    p.add_argument("--preset", default=None, help=f"class preset: {', '.join(PRESETS)}")
    p.add_argument("--csv", default=None, help="labels CSV (columns Image, Class) for a folder of images")
    p.add_argument("--seed", type=int, default=42, help="seed for carving missing splits (default 42)")
    add_label_flags(p)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "synth", help="generate a synthetic phantom dataset (no real data)",
        description="Write brain-like phantom images with class-dependent lesions, in any layout brainmri reads.",
    )
    p.add_argument("out", help="output folder")
    p.add_argument("--layout", choices=LAYOUTS, default="split", help="split (Training/Testing), split3, flat, csv, npz")
    p.add_argument("--classes", default=",".join(TUMOR4), help="comma-separated class names (default: the four tumor classes)")
    p.add_argument("--n-per-class", type=int, default=12, help="training images per class (default 12)")
    p.add_argument("--test-per-class", type=int, default=None, help="test images per class (default n/3, at least 2)")
    p.add_argument("--size", type=int, default=64, help="image side in pixels (default 64)")
    p.add_argument("--formats", default="png", help="comma-separated file formats cycled over images: png,jpg,bmp,tif")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run_synth)

    p = subparsers.add_parser(
        "export-npz", help="pack a dataset into one NPZ of prepared images",
        description="Crop and resize every image (as training does) and write images (N,S,S) uint8, labels, "
                    "class_names and split arrays to one NPZ. Unreadable images are skipped and reported.",
    )
    _add_source_args(p)
    p.add_argument("--out", required=True, help="output .npz file")
    p.add_argument("--size", type=int, default=128, help="image side in pixels (default 128)")
    p.add_argument("--no-crop", action="store_true", help="skip the brain crop")
    p.add_argument("--force", action="store_true", help="replace an existing --out file (never the input)")
    p.set_defaults(func=run_export_npz)

    p = subparsers.add_parser("counts", help="print images per class and split", description="Find a dataset and print its class counts per split.")
    _add_source_args(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run_counts)
