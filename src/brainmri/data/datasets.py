"""Discover a labelled dataset on disk and split it.

Layouts (see :func:`load_dataset`):
  * split folders ``Training/ [Validation/] Testing/`` (or ``train/ val/ test/``, any case),
    one subfolder per class;
  * a flat folder of class subfolders (no split): stratified split by seed;
  * a CSV mapping image paths to labels; an NPZ of images + labels.

The result is a :class:`DatasetIndex`: class names (sorted, stored) and a list of
:class:`Sample` records, each with its split. Nothing is decoded here.
"""
from __future__ import annotations

import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from brainmri.config import SPLITS, DataConfig
from brainmri.data.io import is_hidden, is_image_name
from brainmri.errors import DatasetError

SPLIT_ALIASES = {
    "train": "train", "training": "train",
    "val": "val", "valid": "val", "validation": "val",
    "test": "test", "testing": "test",
}


@dataclass(frozen=True)
class Sample:
    """One labelled image. ``index`` is set for members of an in-memory array (NPZ)."""

    path: str
    label: int
    split: str = "train"
    index: int | None = None


@dataclass
class DatasetIndex:
    root: str
    class_names: list[str]
    samples: list[Sample]
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> count (hidden, non-image...)
    arrays: object | None = None  # NPZ image array when samples refer to it by ``index``
    official_split: bool = False  # True when splits came from the dataset's own folders/files

    def split(self, name: str) -> list[Sample]:
        return [s for s in self.samples if s.split == name]

    def counts(self) -> dict[str, dict[str, int]]:
        """``{split: {class_name: count}}`` for the splits present."""
        out: dict[str, dict[str, int]] = {}
        for s in self.samples:
            out.setdefault(s.split, {c: 0 for c in self.class_names})
            out[s.split][self.class_names[s.label]] += 1
        return out

    def labels(self, split: str) -> list[int]:
        return [s.label for s in self.samples if s.split == split]


def stratified_split(items: list, labels: list[int], ratios: dict[str, float], seed: int) -> dict[str, list]:
    """Split ``items`` per class by ``ratios`` (e.g. ``{"val": .1, "test": .1}``; the rest is train),
    deterministically for a seed. Every split with a non-zero ratio gets at least one item of each
    class that has enough items."""
    rng = random.Random(seed)
    by_class: dict[int, list] = defaultdict(list)
    for item, lab in zip(items, labels):
        by_class[lab].append(item)
    out: dict[str, list] = {"train": []}
    for k in ratios:
        out.setdefault(k, [])
    for lab in sorted(by_class):
        group = sorted(by_class[lab], key=str)
        rng.shuffle(group)
        start = 0
        for name, ratio in ratios.items():
            n = int(round(len(group) * ratio))
            if ratio > 0 and n == 0 and len(group) > len(ratios):
                n = 1
            out[name].extend(group[start : start + n])
            start += n
        out["train"].extend(group[start:])
    return out


def _list_class_folders(folder: Path, skipped: Counter) -> dict[str, list[Path]]:
    classes: dict[str, list[Path]] = {}
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        if is_hidden(sub):
            continue
        files = []
        for f in sorted(sub.rglob("*")):
            if f.is_dir():
                continue
            if is_hidden(f):
                skipped["hidden file"] += 1
            elif not is_image_name(f):
                skipped["not an image file"] += 1
            else:
                files.append(f)
        classes[sub.name] = files
    return classes


def load_dataset(cfg: DataConfig) -> DatasetIndex:
    """Find the images under ``cfg.root`` and assign each a class and a split.

    Raises:
        DatasetError: missing folder, empty class, class missing from a split, and so on;
            the message names the folder or class.
    """
    root = Path(cfg.root)
    if not root.exists():
        raise DatasetError(f"{root}: dataset folder not found")
    if not root.is_dir():
        raise DatasetError(f"{root}: expected a dataset folder")
    skipped: Counter = Counter()
    split_dirs = {SPLIT_ALIASES[p.name.lower()]: p for p in root.iterdir() if p.is_dir() and p.name.lower() in SPLIT_ALIASES}
    per_split: dict[str, dict[str, list[Path]]] = {}
    if split_dirs:
        for split, folder in split_dirs.items():
            per_split[split] = _list_class_folders(folder, skipped)
    else:
        per_split["all"] = _list_class_folders(root, skipped)
    names = sorted({c for classes in per_split.values() for c in classes})
    if not names:
        raise DatasetError(f"{root}: no class subfolders found (expected e.g. {root}/<class>/*.jpg or {root}/Training/<class>/...)")
    for split, classes in per_split.items():
        for c in names:
            if c not in classes:
                raise DatasetError(f"{root}: class '{c}' is missing from split '{split}' ({split_dirs.get(split, root)})")
            if not classes[c]:
                raise DatasetError(f"{root}: class '{c}' has no images in split '{split}' ({split_dirs.get(split, root) / c})")
    class_names = list(cfg.class_names) if cfg.class_names else names
    label_of = {c: i for i, c in enumerate(class_names)}
    for c in names:
        if c not in label_of:
            raise DatasetError(f"{root}: folder class '{c}' is not one of the configured classes {class_names}")

    samples: list[Sample] = []
    if "all" in per_split:
        items = [(str(f), label_of[c]) for c in names for f in per_split["all"][c]]
        parts = stratified_split(items, [lab for _, lab in items], {"val": cfg.val_ratio, "test": cfg.test_ratio}, cfg.seed)
        for split in SPLITS:
            samples += [Sample(p, lab, split) for p, lab in parts.get(split, [])]
        official = False
    else:
        for split, classes in per_split.items():
            samples += [Sample(str(f), label_of[c], split) for c in names for f in classes[c]]
        if "val" not in per_split:
            train = [s for s in samples if s.split == "train"]
            parts = stratified_split(train, [s.label for s in train], {"val": cfg.val_ratio or 0.1}, cfg.seed)
            moved = {id(s) for s in parts["val"]}
            samples = [Sample(s.path, s.label, "val") if id(s) in moved else s for s in samples]
        official = True
    return DatasetIndex(str(root), class_names, samples, dict(skipped), official_split=official)
