"""Readers for labelled tables: a CSV mapping image files to labels, and an NPZ of arrays.

Both return :class:`RawSample` records (path, raw label text, optional split, optional array
index, and ``where`` — how to name the record in an error). Turning raw labels into class
indices (presets, class maps, integer codes) is :mod:`brainmri.data.datasets`' job.
"""
from __future__ import annotations

import csv
import logging
import os
import zipfile
from collections import defaultdict
from pathlib import Path
from typing import NamedTuple

import numpy as np

from brainmri.config import DataConfig
from brainmri.data.io import LITTER_FOLDERS, is_hidden, is_image_name
from brainmri.errors import DatasetError

SPLIT_ALIASES = {
    "train": "train", "training": "train",
    "val": "val", "valid": "val", "validation": "val",
    "test": "test", "testing": "test",
}
logger = logging.getLogger(__name__)
NPZ_IMAGE_KEYS = ("images", "image", "x", "X", "data", "imgs", "image_data", "arr_0")
NPZ_LABEL_KEYS = ("labels", "label", "y", "Y", "target", "targets", "classes", "arr_1")


class RawSample(NamedTuple):
    path: str
    label: str  # raw label text (a name or an integer code)
    split: str | None  # train / val / test when the source says so
    index: int | None  # member index for array sources
    where: str  # how to name this record in an error message


# ----------------------------------------------------------------------------------------------
# CSV


def _column(fieldnames: list[str], wanted: str) -> str | None:
    if wanted in fieldnames:
        return wanted
    lowered = {f.strip().lower(): f for f in fieldnames}
    return lowered.get(wanted.strip().lower())


def sniff_csv(path: Path, cfg: DataConfig) -> bool:
    """True when ``path`` is a CSV whose header has the configured path and label columns."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            header = next(csv.reader(fh), [])
    except (OSError, UnicodeDecodeError, csv.Error):
        return False
    return _column(header, cfg.csv_path_column) is not None and _column(header, cfg.csv_label_column) is not None


def _walk_files(base: Path):
    """Files below ``base``, through symlinked folders too (``Path.rglob`` does not follow them),
    each real folder once: a link back up the tree is not walked again."""
    seen_dirs: set[str] = set()
    for folder, dirs, files in os.walk(base, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen_dirs:
            dirs[:] = []
            continue
        seen_dirs.add(real)
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in LITTER_FOLDERS]  # OS litter, VCS folders
        for name in files:
            f = Path(folder, name)
            if f.is_file():
                yield f


class _FileFinder:
    """Resolves a CSV's image reference: a path relative to the CSV's folder or the root, or a
    bare file name / name without extension found anywhere below them."""

    def __init__(self, bases: list[Path]):
        self.bases = list(dict.fromkeys(b.resolve() for b in bases))
        self._by_name: dict[str, list[Path]] | None = None
        self._by_stem: dict[str, list[Path]] = defaultdict(list)

    def _build(self) -> None:
        self._by_name = defaultdict(list)
        seen = set()
        for base in self.bases:
            for f in _walk_files(base):
                if f in seen or is_hidden(f) or not is_image_name(f):
                    continue
                seen.add(f)
                self._by_name[f.name].append(f)
                self._by_stem[f.stem].append(f)

    def find(self, ref: str) -> list[Path]:
        """The file a CSV row names; also when it was written on Windows (``Brain Tumor\\Image1.jpg``)
        or names a file macOS stores decomposed (NFD) in its composed form, or the reverse."""
        import unicodedata

        forms = dict.fromkeys(unicodedata.normalize(form, r) for r in dict.fromkeys((ref, ref.replace("\\", "/")))
                              for form in ("NFC", "NFD"))
        for variant in (ref, *forms):
            found = self._find(variant)
            if found:
                return found
        return []

    def _find(self, ref: str) -> list[Path]:
        rel = Path(ref)
        if rel.is_absolute():
            return [rel] if rel.is_file() else []
        for base in self.bases:
            if (base / rel).is_file():
                return [base / rel]
        if self._by_name is None:
            self._build()
        return self._by_name.get(rel.name) or self._by_stem.get(rel.name, [])


def read_csv_labels(csv_path: Path, root: Path, cfg: DataConfig) -> tuple[list[RawSample], bool]:
    """Records from a labels CSV (columns ``cfg.csv_path_column``, ``cfg.csv_label_column`` and an
    optional ``split``). Returns ``(records, has_split_column)``.

    Raises:
        DatasetError: missing columns, an empty table, or a row naming a missing / ambiguous file
            (the message names the row, its line and the value).
    """
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            fields = list(reader.fieldnames or [])
            path_col, label_col = _column(fields, cfg.csv_path_column), _column(fields, cfg.csv_label_column)
            missing = [c for c, got in ((cfg.csv_path_column, path_col), (cfg.csv_label_column, label_col)) if got is None]
            if missing:
                raise DatasetError(f"{csv_path}: missing column(s) {', '.join(missing)} (columns: {', '.join(fields) or 'none'}); "
                                   f"name the image-path column {cfg.csv_path_column!r} and the label column {cfg.csv_label_column!r}, "
                                   "or name yours with --csv-path-column / --csv-label-column (data.csv_path_column / "
                                   "data.csv_label_column in a config)")
            split_col = _column(fields, "split")
            rows = [(i, reader.line_num, row) for i, row in enumerate(reader, start=1)]
    except UnicodeDecodeError:
        raise DatasetError(f"{csv_path}: not a text CSV file (cannot decode as UTF-8)") from None
    except csv.Error as exc:
        raise DatasetError(f"{csv_path}: malformed CSV ({exc})") from None
    if not rows:
        raise DatasetError(f"{csv_path}: no rows below the header")
    finder = _FileFinder([csv_path.parent, root])
    records = []
    for i, line, row in rows:
        where = f"{csv_path}, row {i} (line {line})"
        ref = (row.get(path_col) or "").strip()
        if not ref:
            raise DatasetError(f"{where}: empty {path_col!r} value")
        found = finder.find(ref)
        if not found:
            raise DatasetError(f"{where}: image {ref!r} not found (looked under {' and '.join(map(str, finder.bases))})")
        if len(found) > 1:
            raise DatasetError(f"{where}: image {ref!r} is ambiguous ({', '.join(map(str, found[:3]))}); give a relative path")
        split = None
        if split_col:
            value = (row.get(split_col) or "").strip().lower()
            if value not in SPLIT_ALIASES:
                raise DatasetError(f"{where}: unknown split {value!r} (use train / val / test)")
            split = SPLIT_ALIASES[value]
        records.append(RawSample(str(found[0]), (row.get(label_col) or "").strip(), split, None, where + f" ({ref!r})"))
    _warn_outside(records, finder.bases, csv_path)
    return records, split_col is not None


def _warn_outside(records: list[RawSample], bases: list[Path], csv_path: Path) -> None:
    """One warning when rows name images outside the CSV's folder and the dataset root: they are
    read, but a copy of the dataset folder will lack them, and brainmri's never-write-into-the-
    dataset checks guard only those folders."""
    def inside(path: str) -> bool:  # as written (a linked folder inside stays inside) or resolved (a root reached by a link)
        return any(Path(p).is_relative_to(b) for p in (os.path.abspath(path), os.path.realpath(path)) for b in bases)

    outside = [r for r in records if not inside(r.path)]
    if outside:
        logger.warning("%s: %d of %d rows name images outside %s (first: %s -> %s); they are read, but live elsewhere",
                       csv_path, len(outside), len(records), " and ".join(map(str, bases)), outside[0].where, outside[0].path)


# ----------------------------------------------------------------------------------------------
# NPZ


def _pick_key(arrays: dict[str, np.ndarray], wanted: str | None, defaults: tuple[str, ...], what: str, path: Path, field: str) -> str:
    keys = list(arrays)
    if wanted:
        if wanted not in keys:
            raise DatasetError(f"{path}: no array {wanted!r} (--{field.replace('_', '-')} / data.{field}); arrays: {', '.join(keys)}")
        return wanted
    for k in defaults:
        if k in keys:
            return k
    # fall back on shape: the only image stack (ndim >= 3) / the only 1-D array
    shaped = [k for k, a in arrays.items() if (a.ndim >= 3 if what == "images" else a.ndim == 1 and a.dtype.kind in "uifb")]
    if len(shaped) == 1:
        logger.warning("%s: no array named %s; using %r (shape %s) as the %s (choose with --%s / data.%s)",
                       path, "/".join(defaults), shaped[0], tuple(arrays[shaped[0]].shape), what, field.replace("_", "-"), field)
        return shaped[0]
    raise DatasetError(f"{path}: cannot find the {what} array (tried {', '.join(defaults)}; arrays: {', '.join(keys)}); choose with --{field.replace('_', '-')} / data.{field}")


def _one_hot_to_index(labels: np.ndarray) -> np.ndarray:
    """(N, K) one-hot labels -> (N,) indices; other arrays unchanged."""
    if labels.ndim == 2 and labels.shape[1] == 1:
        return labels[:, 0]
    if labels.ndim == 2 and labels.shape[1] > 1 and labels.dtype.kind in "uifb":
        if np.isin(labels, (0, 1)).all() and (labels.sum(axis=1) == 1).all():
            return labels.argmax(axis=1)
    return labels


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    if not zipfile.is_zipfile(path):
        raise DatasetError(f"{path}: not a readable NPZ file (not a zip archive of .npy arrays)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise DatasetError(f"{path}: holds pickled Python objects; refused for safety (store plain arrays)") from None
        raise DatasetError(f"{path}: not a readable NPZ file ({exc})") from None
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise DatasetError(f"{path}: not a readable NPZ file ({exc})") from None


def _check_images(images: np.ndarray, path: Path, key: str) -> None:
    if images.dtype.kind not in "uifb":
        raise DatasetError(f"{path}: array {key!r} has dtype {images.dtype}; expected numeric pixel values")
    ok_shape = images.ndim == 3 or (images.ndim == 4 and images.shape[3] in (1, 3, 4))
    if not ok_shape or images.shape[0] == 0 or min(images.shape[1:3]) < 2:
        raise DatasetError(f"{path}: array {key!r} has shape {images.shape}; expected (N, H, W) or (N, H, W, C) with C in 1, 3, 4")
    if images.dtype.kind == "f" and not np.isfinite(images).all():
        bad = int(np.flatnonzero(~np.isfinite(images.reshape(len(images), -1)).all(axis=1))[0])
        raise DatasetError(f"{path}: array {key!r} contains NaN or infinite values (first at image {bad})")


def _label_texts(labels: np.ndarray, path: Path, key: str) -> list[str]:
    if labels.dtype.kind in "US":
        return [str(v.decode() if isinstance(v, bytes) else v) for v in labels.tolist()]
    if labels.dtype.kind == "f":
        if not np.isfinite(labels).all():
            raise DatasetError(f"{path}: array {key!r} contains NaN or infinite labels")
        if not np.all(labels == np.round(labels)):
            raise DatasetError(f"{path}: array {key!r} holds non-integer labels; expected class indices or names")
        return [str(int(v)) for v in labels.tolist()]
    if labels.dtype.kind in "uib":
        return [str(int(v)) for v in labels.tolist()]
    raise DatasetError(f"{path}: array {key!r} has dtype {labels.dtype}; expected integer labels or class names")


def read_npz(path: Path, cfg: DataConfig) -> tuple[np.ndarray, list[RawSample], list[str] | None, bool]:
    """Images, records (``path#i``), stored class names (or None), and whether a ``split`` array
    gave the splits.

    Raises:
        DatasetError: unreadable file, missing arrays, bad shape or dtype, NaN/inf, or images and
            labels of different lengths; the message names the file.
    """
    arrays = _load_npz(path)
    ikey = _pick_key(arrays, cfg.npz_images_key, NPZ_IMAGE_KEYS, "images", path, "npz_images_key")
    lkey = _pick_key(arrays, cfg.npz_labels_key, NPZ_LABEL_KEYS, "labels", path, "npz_labels_key")
    images, labels = arrays[ikey], _one_hot_to_index(arrays[lkey])
    _check_images(images, path, ikey)
    if labels.ndim != 1:
        raise DatasetError(f"{path}: labels {lkey!r} have shape {labels.shape}; expected one label per image (N,)")
    if len(labels) != len(images):
        raise DatasetError(f"{path}: {len(images)} images ({ikey!r}) but {len(labels)} labels ({lkey!r}); lengths must match")
    if images.size and images.min() == images.max():
        logger.warning("%s: every image in %r is blank (all pixels %g); metrics on them mean nothing", path, ikey, float(images.flat[0]))
    texts = _label_texts(labels, path, lkey)
    names = [str(n) for n in arrays["class_names"].tolist()] if "class_names" in arrays else None
    splits: list[str | None] = [None] * len(texts)
    if "split" in arrays:
        raw = [str(v.decode() if isinstance(v, bytes) else v).lower() for v in arrays["split"].tolist()]
        if len(raw) != len(texts) or any(v not in SPLIT_ALIASES for v in raw):
            raise DatasetError(f"{path}: array 'split' must hold train / val / test for each of the {len(texts)} images")
        splits = [SPLIT_ALIASES[v] for v in raw]
    records = [RawSample(f"{path}#{i}", t, splits[i], i, f"{path}#{i}") for i, t in enumerate(texts)]
    return images, records, names, "split" in arrays
