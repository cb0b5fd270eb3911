"""Discover a labelled dataset on disk and split it.

Layouts (see :func:`load_dataset`):
  * split folders ``Training/ [Validation/] Testing/`` (or ``train/ val/ test/``, any case),
    one subfolder per class;
  * a flat folder of class subfolders (no split): stratified split by seed;
  * a CSV mapping image paths to labels (``DataConfig.csv``, or a single CSV in the root);
  * an NPZ of images + labels (the root is the ``.npz`` file, or a folder holding one).

Presets and class maps (:mod:`brainmri.data.presets`) rename and merge labels. The result is a
:class:`DatasetIndex`: class names (sorted, stored) and a list of :class:`Sample` records, each
with its split. Nothing is decoded here (NPZ arrays are loaded, not prepared).
"""
from __future__ import annotations

import csv
import hashlib
import logging
import os
import random
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path

from brainmri.config import SPLITS, DataConfig
from brainmri.data.io import is_hidden, is_hidden_below, is_image_name
from brainmri.data.presets import map_class, resolve_classes
from brainmri.data.sources import SPLIT_ALIASES, RawSample, read_csv_labels, read_npz, sniff_csv
from brainmri.errors import ConfigError, DatasetError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sample:
    """One labelled image. ``index`` is set for members of an in-memory array (NPZ); then
    ``path`` reads ``file.npz#index``."""

    path: str
    label: int
    split: str = "train"
    index: int | None = None


@dataclass
class DatasetIndex:
    """Class names (in label order) and every sample with its split."""

    root: str
    class_names: list[str]
    samples: list[Sample]
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> count: hidden, not_image
    arrays: object | None = None  # NPZ image array when samples refer to it by ``index``
    official_split: bool = False  # True when splits came from the dataset's own folders/files
    layout: str = ""  # split | flat | csv | npz

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


# ----------------------------------------------------------------------------------------------
# folder layouts


def _list_class_folders(folder: Path, skipped: Counter) -> dict[str, list[Path]]:
    classes: dict[str, list[Path]] = {}
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        if is_hidden(sub):
            continue
        files = []
        for f in sorted(sub.rglob("*")):
            if f.is_dir():
                continue
            if is_hidden_below(f, sub):  # every folder below the class folder (__MACOSX/sub/x.jpg too)
                skipped["hidden"] += 1
            elif not is_image_name(f):
                skipped["not_image"] += 1
            else:
                files.append(f)
        classes[sub.name] = files
        inner = sorted({f.relative_to(sub).parts[0] for f in files if len(f.relative_to(sub).parts) > 1})
        if len(inner) >= 2:  # e.g. --data one level too high: whole datasets (or their classes) read as one class each
            logger.warning("%s: class '%s' gathers its %d images from %d subfolders (%s%s): if those are classes or splits, "
                           "point --data at %s instead", sub, sub.name, len(files), len(inner), ", ".join(inner[:4]),
                           ", ..." if len(inner) > 4 else "", sub)
    return classes


def _split_dirs(root: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for p in sorted(root.iterdir()):
        if p.is_dir() and p.name.lower() in SPLIT_ALIASES:
            split = SPLIT_ALIASES[p.name.lower()]
            if split in found:
                raise DatasetError(f"{root}: two folders for split '{split}': {found[split].name} and {p.name}")
            found[split] = p
    return found


def _what_is_there(folder: Path) -> str:
    """For a class folder without images: what it holds instead (e.g. DICOM files, which the
    dataset reader does not take)."""
    kinds = Counter(f.suffix.lower() or "(no extension)" for f in folder.rglob("*") if f.is_file() and not is_hidden_below(f, folder))
    if not kinds:
        return ""
    listed = ", ".join(f"{n} {k}" for k, n in kinds.most_common(3))
    return (f" ({sum(kinds.values())} other files: {listed}; training and evaluation sets are PNG / JPEG / BMP / TIFF images — "
            "DICOM and NIfTI files are read by predict, and a NIfTI volume by evaluate --data VOL.nii.gz)")


def _read_folders(root: Path, skipped: Counter) -> tuple[list[RawSample], bool]:
    """Records from split folders (official split) or class folders (no split)."""
    split_dirs = _split_dirs(root)
    per_split = {s: _list_class_folders(d, skipped) for s, d in split_dirs.items()} or {"": _list_class_folders(root, skipped)}
    names = sorted({c for classes in per_split.values() for c in classes})
    if not names:
        raise DatasetError(f"{root}: no class subfolders found (expected e.g. {root}/<class>/*.jpg or {root}/Training/<class>/...)")
    records = []
    for split, classes in per_split.items():
        where = split_dirs.get(split, root)
        for c in names:
            if c not in classes:  # told after the preset / class map, which may join spellings (glioma_tumor, glioma)
                continue
            if not classes[c]:
                raise DatasetError(f"{where / c}: class '{c}' has no images" + (f" in split '{split}'" if split else "") + _what_is_there(where / c))
            records += [RawSample(str(f), c, split or None, None, str(f)) for f in classes[c]]
    return records, bool(split_dirs)


# ----------------------------------------------------------------------------------------------
# labels


def _is_int(text: str) -> bool:
    try:
        return float(text) == int(float(text))
    except (ValueError, OverflowError):
        return False


def _decode_label(r: RawSample, label_names: dict[str, str], codes: list[str] | None) -> str:
    """A record's label name: through ``data.csv_label_names``, or an integer code into ``codes``."""
    raw = r.label.strip()
    if label_names:
        key = raw if raw in label_names or not _is_int(raw) else str(int(float(raw)))
        if key not in label_names:
            raise DatasetError(f"{r.where}: unknown label {raw!r} (--label-names / data.csv_label_names name only: {', '.join(label_names)})")
        raw = label_names[key]
    elif codes and _is_int(raw):
        i = int(float(raw))
        if not 0 <= i < len(codes):
            raise DatasetError(f"{r.where}: unknown label {raw!r} (label codes must be 0..{len(codes) - 1} for classes {codes})")
        raw = codes[i]
    if not raw:
        raise DatasetError(f"{r.where}: empty label")
    return raw


def _resolve_labels(
    records: list[RawSample], cfg: DataConfig, coded: bool, code_names: list[str] | None, allow_absent: bool = False
) -> tuple[list[str], list[int]]:
    """Turn raw label strings into class names and label indices (presets, class maps, codes).
    ``allow_absent``: configured classes with no image are kept (an evaluation set with only some
    of a model's classes) instead of refused."""
    fixed, class_map = resolve_classes(cfg)
    label_names = {str(k): str(v) for k, v in (cfg.csv_label_names or {}).items()} if coded else {}
    codes = (code_names or fixed) if coded else None
    if coded and not label_names and not code_names and fixed:
        ints = {int(float(r.label)) for r in records if _is_int(r.label.strip())}
        if ints and len(ints) < len(fixed):  # e.g. seed 003's 0 / 1 read against four tumor classes
            raise DatasetError(f"{cfg.root}: labels are the integer codes {', '.join(map(str, sorted(ints)))}, but the classes are "
                               f"{', '.join(fixed)}: which code means which class cannot be told. Name them (e.g. --label-names 0=notumor,1=tumor "
                               "--preset tumor2; data.csv_label_names in a config), or score a tumor / no-tumor set with --tumor-presence")
    names = [map_class(_decode_label(r, label_names, codes), class_map) for r in records]
    if fixed is None:
        found = set(names)
        if coded and all(_is_int(n) for n in found):
            class_names = [str(v) for v in sorted({int(float(n)) for n in found})]
            names = [str(int(float(n))) for n in names]
        else:
            class_names = sorted(found)
    else:
        class_names = list(fixed)
    lower = {c.lower(): c for c in class_names}
    index = {c: i for i, c in enumerate(class_names)}
    labels = []
    for r, n in zip(records, names):
        n = n if n in index else lower.get(n.lower(), n)
        if n not in index:
            kind = "folder class" if not coded else "label"
            raise DatasetError(f"{r.where}: {kind} {n!r} is not one of the configured classes {class_names} (set data.class_map or data.preset)")
        labels.append(index[n])
    if fixed is None and coded and labels:  # labels read from a table: a stray value makes a class of its own
        sizes = Counter(labels)
        largest = max(sizes.values())
        for i, n in sorted(sizes.items()):
            if n <= 2 and n < 0.1 * largest:
                first = next(r.where for r, lab in zip(records, labels) if lab == i)
                logger.warning("class '%s' has only %d image(s) (%s) against %d for the largest: a typo in the labels? "
                               "(data.class_names fixes the classes)", class_names[i], n, first, largest)
    present = set(labels)
    for i, c in enumerate(class_names):
        if i not in present and not allow_absent:
            raise DatasetError(f"{cfg.root}: class '{c}' has no images (classes: {class_names})")
    return class_names, labels


def _csv_row(r: RawSample, csv_path: Path) -> str:
    """``row N (line L)`` of a CSV record's ``where``."""
    rest = r.where[len(f"{csv_path}, "):] if r.where.startswith(f"{csv_path}, ") else r.where
    m = re.match(r"row \d+ \(line \d+\)", rest)
    return m.group(0) if m else rest


def _dedupe_csv(records: list[RawSample], labels: list[int], class_names: list[str], csv_path: Path) -> tuple[list[RawSample], list[int]]:
    """One record per image file. The same file on two rows with different labels is refused; with
    the same label the first row is kept and one warning names the repeats."""
    first: dict[str, int] = {}
    keep: list[int] = []
    repeats: list[tuple[int, int]] = []
    for i, r in enumerate(records):
        key = os.path.normcase(os.path.realpath(r.path))
        j = first.setdefault(key, i)
        if j == i:
            keep.append(i)
            continue
        if labels[j] != labels[i]:
            a, b = records[j], records[i]
            shown = [class_names[labels[k]] + (f" (label {rec.label!r})" if rec.label != class_names[labels[k]] else "")
                     for k, rec in ((j, a), (i, b))]
            raise DatasetError(f"{csv_path}: image {r.path} is listed twice with different labels: {shown[0]} on {_csv_row(a, csv_path)} "
                               f"and {shown[1]} on {_csv_row(b, csv_path)}; keep one row per image")
        repeats.append((j, i))
    if repeats:
        j, i = repeats[0]
        logger.warning("%s: %d row(s) repeat an image already listed with the same label; kept the first of each (e.g. %s on %s and %s)",
                       csv_path, len(repeats), records[i].path, _csv_row(records[j], csv_path), _csv_row(records[i], csv_path))
    return [records[i] for i in keep], [labels[i] for i in keep]


# ----------------------------------------------------------------------------------------------
# splits


def _check_splits(samples: list[Sample], class_names: list[str], root: str) -> None:
    anywhere = {s.label for s in samples}  # a class absent from the whole set was allowed by _resolve_labels
    for split in sorted({s.split for s in samples}):
        present = {s.label for s in samples if s.split == split}
        for i, c in enumerate(class_names):
            if i in anywhere and i not in present:
                raise DatasetError(f"{root}: class '{c}' is missing from split '{split}'")


def _carve(samples: list[Sample], split: str, ratio: float, seed: int) -> list[Sample]:
    """Move a stratified ``ratio`` of the training samples to ``split``."""
    train = [s for s in samples if s.split == "train"]
    moved = {id(s) for s in stratified_split(train, [s.label for s in train], {split: ratio}, seed)[split]}
    return [replace(s, split=split) if id(s) in moved else s for s in samples]


def _is_test_set(samples: list[Sample], official: bool, unsplit: str) -> bool:
    """True when ``unsplit='test'`` and the data has no training split of its own: it is wholly
    an evaluation set (not carved, not re-split)."""
    return unsplit == "test" and not (official and any(s.split == "train" for s in samples))


def _assign_splits(samples: list[Sample], official: bool, cfg: DataConfig, class_names: list[str], unsplit: str = "carve") -> list[Sample]:
    if _is_test_set(samples, official, unsplit):
        return samples if official else [replace(s, split="test") for s in samples]
    if cfg.split == "stratified" or not official:
        parts = stratified_split(samples, [s.label for s in samples], {"val": cfg.val_ratio, "test": cfg.test_ratio}, cfg.seed)
        return [replace(s, split=split) for split in SPLITS for s in parts.get(split, [])]
    present = {s.split for s in samples}
    if "train" not in present:
        raise DatasetError(f"{cfg.root}: no training split found (splits present: {', '.join(sorted(present))})")
    _check_splits(samples, class_names, cfg.root)
    if "val" not in present:  # carve validation from training, stratified, by seed
        samples = _carve(samples, "val", cfg.val_ratio or 0.1, cfg.seed)
    if "test" not in present and cfg.test_ratio > 0:
        samples = _carve(samples, "test", cfg.test_ratio, cfg.seed + 1)
    return samples


def _leak_free(index: DatasetIndex, cfg: DataConfig) -> DatasetIndex:
    try:
        from brainmri.data.audit import leak_free_split
    except ModuleNotFoundError as exc:
        if exc.name != "brainmri.data.audit":
            raise
        raise ConfigError("data.split='leak-free' is unavailable: brainmri.data.audit is not installed") from None
    except ImportError:
        raise ConfigError("data.split='leak-free' is unavailable: brainmri.data.audit has no leak_free_split") from None
    return leak_free_split(index, threshold=cfg.near_duplicate_threshold, val_ratio=cfg.val_ratio, test_ratio=cfg.test_ratio, seed=cfg.seed)


# ----------------------------------------------------------------------------------------------
# entry point


# labels-file fields (DataConfig default) -> the flag that sets them; each applies only to some layouts
_LABEL_OPTIONS = {
    "csv_path_column": ("Image", "--csv-path-column", ("csv",)),
    "csv_label_column": ("Class", "--csv-label-column", ("csv",)),
    "csv_label_names": (None, "--label-names", ("csv", "npz")),
    "npz_images_key": (None, "--npz-images-key", ("npz",)),
    "npz_labels_key": (None, "--npz-labels-key", ("npz",)),
}


def _check_label_options(cfg: DataConfig, layout: str, path: Path) -> None:
    """A labels-file option that the data's layout does not read is an error, not a silent no-op
    (e.g. ``--label-names 0=notumor`` on class folders: the folder names are the labels)."""
    unused = [f"{flag} (data.{name})" for name, (default, flag, layouts) in _LABEL_OPTIONS.items()
              if getattr(cfg, name) not in (default, {}) and layout not in layouts]
    if unused:
        what = {"folders": "class folders (their folder names are the labels)", "csv": "a labels CSV",
                "npz": "an NPZ file"}[layout]
        raise ConfigError(f"{path}: read as {what}, which {', '.join(unused)} does not apply to; "
                          "drop it, or point --data at the CSV / NPZ file it is meant for")


def _find_source(root: Path, cfg: DataConfig) -> tuple[str, Path]:
    """Which layout ``root`` holds: (layout, path of the folder / CSV / NPZ)."""
    if cfg.csv:
        csv = Path(cfg.csv)
        for cand in ([csv] if csv.is_absolute() else [root / csv, csv]):
            if cand.is_file():
                return "csv", cand
        raise DatasetError(f"{cfg.csv}: CSV file not found (data.csv; looked in {root} and the working folder)")
    if not root.exists():
        raise DatasetError(f"{root}: dataset folder not found")
    if root.is_file():
        suffix = root.suffix.lower()
        if suffix in (".npz", ".csv"):
            return suffix[1:], root
        raise DatasetError(f"{root}: expected a dataset folder, a .csv or a .npz file")
    if _split_dirs(root):
        return "folders", root
    csvs = [p for p in sorted(root.glob("*.csv")) if not is_hidden(p) and sniff_csv(p, cfg)]
    if len(csvs) == 1:
        return "csv", csvs[0]
    subdirs = [p for p in root.iterdir() if p.is_dir() and not is_hidden(p)]
    meant = [(p, why) for p in sorted(root.glob("*.csv")) if not is_hidden(p) and (why := _meant_as_labels(p, cfg))]
    if len(meant) == 1 and len(subdirs) <= 1:  # e.g. labels.csv + images/ without a label column: reading it names the columns
        return "csv", meant[0][0]
    if len(meant) == 1:
        logger.warning("%s: not read as the labels CSV (%s); reading %s as class folders", meant[0][0], meant[0][1], root)
    if subdirs:
        unused = [p for p in sorted(root.glob("*.csv")) if not is_hidden(p)]
        if len(csvs) > 1:
            logger.warning("%s: %d CSV files look like labels (%s), so none was read; reading %s as class folders (choose one with --csv)",
                           root, len(csvs), ", ".join(p.name for p in csvs), root)
        elif unused and not meant:
            for p in unused:
                logger.warning("%s: not read as the labels CSV (%s); reading %s as class folders", p, _why_not_labels(p, cfg), root)
        return "folders", root
    npzs = [p for p in sorted(root.glob("*.npz")) if not is_hidden(p)]
    if len(npzs) == 1:
        return "npz", npzs[0]
    others = [p for p in sorted(root.glob("*.csv")) if not is_hidden(p)]
    if len(others) == 1:  # its header lacks the label columns: reading it names them
        return "csv", others[0]
    raise DatasetError(f"{root}: no split folders, class subfolders, labels CSV or NPZ file found")


def _why_not_labels(path: Path, cfg: DataConfig) -> str:
    """Why a CSV beside class folders was not taken as the labels file (one phrase)."""
    try:
        with open(path, encoding="utf-8-sig", errors="replace") as fh:
            line = fh.readline().strip()
    except OSError as exc:
        return f"cannot be read: {exc.strerror or exc}"
    if ";" in line and "," not in line:
        return "its fields are separated by ';', not ','"
    return (f"its columns are {line[:120]!r}; a labels CSV needs {cfg.csv_path_column!r} and {cfg.csv_label_column!r} "
            "(name yours with --csv-path-column / --csv-label-column, or data.csv_path_column / data.csv_label_column in a config)")


def _meant_as_labels(path: Path, cfg: DataConfig) -> str | None:
    """Why a CSV that :func:`sniff_csv` refused still looks meant as the labels file (its header
    has the image-path or the label column but not both, or it is not text), else ``None``."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            header = next(csv.reader(fh), [])
    except UnicodeDecodeError:
        return "it is not a text CSV file"
    except (OSError, csv.Error):
        return None
    names = {h.strip().lower() for h in header}
    has = [c for c in (cfg.csv_path_column, cfg.csv_label_column) if c.strip().lower() in names]
    if len(has) != 1:
        return None
    lacks = cfg.csv_label_column if has[0] == cfg.csv_path_column else cfg.csv_path_column
    return f"it has a column {has[0]!r} but none named {lacks!r} (columns: {', '.join(header)})"


UNSPLIT_MODES = ("carve", "test")


def load_dataset(cfg: DataConfig, *, unsplit: str = "carve") -> DatasetIndex:
    """Find the images under ``cfg.root`` and assign each a class and a split.

    Class names come from ``cfg.class_names``, else the preset, else the sorted label names
    found; ``cfg.class_map`` (or the preset's) merges labels. With split folders, missing
    validation (and test) splits are carved from training, stratified by ``cfg.seed``; without,
    everything is split ``1 - val - test / val / test`` stratified. ``cfg.split`` can force
    ``stratified`` or ``leak-free`` (near-duplicates kept within one split).

    ``unsplit`` says what to do with data that has no training split of its own (a folder of
    class folders, a CSV / NPZ without a split column, or only a ``Testing/`` split):
    ``carve`` (training's default) carves train / val / test from it as above; ``test`` (an
    external evaluation set) makes every image a test image (own test / val splits kept as they
    are) and accepts configured classes that have no image there. Data with its own training
    split is treated the same in both modes.

    Raises:
        DatasetError: missing folder, empty class, class missing from a split, CSV row naming a
            missing file or an unknown label, unreadable NPZ, and so on; the message names it.
    """
    if unsplit not in UNSPLIT_MODES:
        raise ConfigError(f"unsplit={unsplit!r} is not valid; choose one of: {', '.join(UNSPLIT_MODES)}")
    root = Path(cfg.root)
    skipped: Counter = Counter()
    layout, path = _find_source(root, cfg)
    _check_label_options(cfg, layout, path)
    arrays, code_names = None, None
    if layout == "folders":
        records, official = _read_folders(path, skipped)
        layout = "split" if official else "flat"
    elif layout == "csv":
        records, official = read_csv_labels(path, root if root.is_dir() else path.parent, cfg)
    else:
        arrays, records, code_names, official = read_npz(path, cfg)
    class_names, labels = _resolve_labels(records, cfg, coded=layout in ("csv", "npz"), code_names=code_names, allow_absent=unsplit == "test")
    if layout == "csv":
        records, labels = _dedupe_csv(records, labels, class_names, path)
    samples = [Sample(r.path, lab, r.split or "train", r.index) for r, lab in zip(records, labels)]
    test_set = _is_test_set(samples, official, unsplit)
    samples = _assign_splits(samples, official, cfg, class_names, unsplit)
    if skipped:
        total = sum(skipped.values())
        parts = [f"{skipped['hidden']} hidden"] * bool(skipped["hidden"]) + [f"{skipped['not_image']} not images"] * bool(skipped["not_image"])
        logger.warning("%s: skipped %d files: %s", root, total, ", ".join(parts))
    index = DatasetIndex(str(root), class_names, samples, {k: v for k, v in skipped.items() if v}, arrays,
                         official and (cfg.split == "auto" or test_set), layout)
    return _leak_free(index, cfg) if cfg.split == "leak-free" and not test_set else index


def data_fingerprint(index: "DatasetIndex") -> str:
    """A short hash of a dataset's listing (split, file name, label, size of every sample): recorded
    in each checkpoint, so a resumed run, or ``calibrate``, can tell it is the same data."""
    h = hashlib.sha256()
    for s in sorted(index.samples, key=lambda s: (s.split, s.path, s.index or 0)):
        try:
            size = os.path.getsize(s.path) if s.index is None else 0
        except OSError:
            size = -1
        h.update(f"{s.split}|{Path(s.path).name}|{s.index}|{s.label}|{size}\n".encode())
    return h.hexdigest()[:16]
