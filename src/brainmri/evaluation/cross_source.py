"""Cross-source evaluation of tumor presence: does a tumor-type model still say *tumor* on scans
from a source it never saw, and *notumor* on healthy scans from elsewhere?

A multi-class tumor model (any class set containing ``notumor``) is collapsed to tumor vs
notumor: a scan is "called a tumor" when its arg-max class is not ``notumor``. The dataset is
read with the ``tumor2`` preset (``yes``/``no``, tumor types, ``notumor``), or with every image
assumed to carry one label (``assume_label``: e.g. a healthy-only set such as the Alzheimer
slices). A NIfTI volume (``.nii``/``.nii.gz``) is read slice by slice, every slice taking
``assume_label``.

The four-class Kaggle set was built partly from other public sets, so a "cross-source" set can
hold copies of its training images (96 of the yes/no set's 98 healthy scans are near-duplicates
of four-class ``notumor`` images). ``exclude_seen`` drops every image with a pHash near-duplicate
in a given dataset (the model's training set) and reports how many went.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

import brainmri
from brainmri.config import DataConfig, apply_data_options
from brainmri.errors import ConfigError, DatasetError
from brainmri.evaluation.calibration import calibrated_probs


def wilson_interval(k: int, n: int, z: float = 1.96) -> list[float]:
    """95% Wilson score interval for a proportion k/n."""
    if n == 0:
        return [float("nan"), float("nan")]
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return [float(max(0.0, centre - half)), float(min(1.0, centre + half))]


def _rate(hits: np.ndarray) -> dict:
    k, n = int(hits.sum()), int(hits.size)
    return {"n": n, "count": k, "rate": (k / n) if n else None, "ci95": wilson_interval(k, n)}


def is_nifti(path: str | Path) -> bool:
    name = str(path).lower()
    return name.endswith(".nii") or name.endswith(".nii.gz")


def _nifti_images(path: str | Path, meta, axis: str, slices: str):
    """Prepared images of the selected slices of one volume, a name per slice, the raw slices
    (for the out-of-distribution check) and the volume's notes (e.g. which 4-D volume is used)."""
    from brainmri.inference.nifti import read_nifti
    from brainmri.preprocess.pipeline import prepare_image

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: NIfTI file not found")
    vol = read_nifti(p.read_bytes(), str(p), axis=axis, slices=slices)
    names = [f"{p}#slice{i}" for i in vol.indices]
    return [prepare_image(img, meta.preprocess) for img in vol.images], names, list(vol.images), vol.info


def near_duplicate_mask(index, reference: str | Path, threshold: int) -> tuple[np.ndarray, dict]:
    """True for every sample of ``index`` with a pHash near-duplicate (distance <= ``threshold``)
    in the dataset at ``reference``; and a summary of the check."""
    from brainmri.data.datasets import load_dataset
    from brainmri.data.hashing import hash_samples, nearest_neighbours, phash_array

    ref = load_dataset(DataConfig(root=str(reference), split="stratified", val_ratio=0.0, test_ratio=0.0))
    ref_hashes, _ = phash_array(hash_samples(ref))
    values, pos = phash_array(hash_samples(index))
    seen = np.zeros(len(index.samples), dtype=bool)
    if len(pos):
        dist, _ = nearest_neighbours(values, ref_hashes)
        seen[pos[dist <= threshold]] = True
    summary = {"reference": str(reference), "threshold": int(threshold), "n_reference": int(len(ref_hashes)), "n_excluded": int(seen.sum())}
    return seen, summary


SAME_IMAGE_THRESHOLD = 8
"""pHash distance (of 256 bits) up to which an image counts as a copy of a trained one: a training
image re-saved as JPEG quality 50 moved at most 6 bits, halved in size at most 8 (20 four-class
scans); of the 6,000 Alzheimer slices left out of a 400-slice training pick, 3 lie that close to
one of the 400 (46 within 12, 584 within the audit's near-duplicate limit of 24)."""


RENAMED_MIN_SHARE = 0.2  # this share of a set matching a source's class/file names: a copy of it under another folder name


def _class_file(key: str) -> str:
    """``dataset/class/file`` -> ``class/file``: what survives a renamed dataset folder."""
    return "/".join(key.split("/")[-2:])


def _same_file_in_source(source: str, class_file: str, path: str) -> bool | None:
    """Whether ``path`` has the size of the recorded ``class/file`` in ``source`` where that
    source is on this machine (``None``: it is not, so only the names can tell)."""
    import os

    root = Path(source)
    if not root.is_dir():
        return None
    cls, name = class_file.split("/")[-2:] if "/" in class_file else ("", class_file)
    for candidate in (root / cls / name, root / name):
        if candidate.is_file():
            try:
                return os.path.getsize(candidate) == os.path.getsize(path)
            except OSError:
                return False
    return False


def renamed_matches(meta, paths: list[str]) -> tuple[np.ndarray, str | None]:
    """Which ``paths`` are a trained-on image by their class folder and file name alone (the
    dataset folder renamed, e.g. the yes/no set as Kaggle ships it, ``brain_tumor_dataset/``),
    counted only when they make up a real share of the set, and confirmed by file size where the
    recorded source is on this machine (generic names such as ``glioma_0000.png`` recur across
    sets); and the recorded dataset folder they match, or ``None``."""
    from brainmri.data.presence import file_key

    extra = (meta.data or {}).get("extra_train") or []
    keys = [_class_file(file_key(p)) if p else "" for p in paths]
    best, best_source = np.zeros(len(keys), dtype=bool), None
    for e in extra:
        short = {_class_file(f) for f in e.get("files") or []}
        hits = np.array([bool(k) and k in short for k in keys], dtype=bool)
        for i in np.flatnonzero(hits):
            if _same_file_in_source(e.get("source", ""), keys[i], paths[i]) is False:
                hits[i] = False
        if hits.sum() > best.sum():
            best, best_source = hits, (e.get("files") or ["?"])[0].split("/")[0]
    if not keys or best.sum() < max(2, RENAMED_MIN_SHARE * len(keys)):
        return np.zeros(len(keys), dtype=bool), None
    return best, best_source


def _records_hashes(meta) -> bool:
    return any("phashes" in e for e in (meta.data or {}).get("extra_train") or [])


def trained_on_mask(meta, index, hash_cache: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Which samples of ``index`` the checkpoint was trained on (``data.extra_train``): by name
    (:func:`brainmri.data.presence.file_key`), and by content (a perceptual hash within
    :data:`SAME_IMAGE_THRESHOLD` of a recorded one: the same scan renamed, re-encoded or resized).
    A checkpoint that records no hashes (trained before they were recorded) matches by name only;
    a set whose class/file names match a source's in number (:func:`renamed_matches`) matches
    whatever its dataset folder is called."""
    from brainmri.data.presence import file_key

    extra = (meta.data or {}).get("extra_train") or []
    names = {f for e in extra for f in e.get("files") or []}
    keys = [file_key(s.path) if s.index is None else "" for s in index.samples]
    named = np.array([k in names for k in keys], dtype=bool) | renamed_matches(meta, [s.path if s.index is None else "" for s in index.samples])[0]
    copies = np.zeros(len(index.samples), dtype=bool)
    recorded = sorted({h for e in extra for h in e.get("phashes") or []})
    if recorded and index.samples:
        from brainmri.data.hashing import ImageHash, hash_samples, nearest_neighbours, phash_array

        ref, _ = phash_array([ImageHash(phash=h) for h in recorded])
        values, pos = phash_array(hash_samples(index, use_cache=hash_cache))
        if len(pos):
            dist, _ = nearest_neighbours(values, ref)
            copies[pos[dist <= SAME_IMAGE_THRESHOLD]] = True
    return named, copies


def _folder_images(root, meta, assume_label, cache_dir, exclude_seen, threshold, exclude_trained=False, data_options=None):
    """Prepared images of a dataset folder with their truth (tumor or not), paths, unreadable
    files, and the exclusion summary (``None`` without ``exclude_seen`` or ``exclude_trained``)."""
    from brainmri.data.cache import resolve_cache_dir
    from brainmri.data.datasets import DatasetIndex, Sample, load_dataset
    from brainmri.data.io import image_files
    from brainmri.data.torchdata import PreparedImages

    try:
        cfg = DataConfig(root=str(root), split="stratified", val_ratio=0.0, test_ratio=0.0, preset=None if assume_label else "tumor2")
        index = load_dataset(apply_data_options(cfg, data_options))
    except DatasetError as exc:
        flat = image_files(root) if assume_label and Path(root).is_dir() else []
        if not flat:
            if assume_label is None and "has no images" in str(exc):
                raise DatasetError(f"{exc}; a set of one kind only (all tumors or all healthy): pass --assume-label tumor|notumor") from None
            raise
        # every image has the assumed label: a plain folder of images needs no class folders
        index = DatasetIndex(root=str(root), class_names=[assume_label], samples=[Sample(path=str(f), label=0) for f in flat], layout="flat")
    excluded = None
    if exclude_seen:
        from brainmri.data.audit import DEFAULT_THRESHOLD

        seen, excluded = near_duplicate_mask(index, exclude_seen, DEFAULT_THRESHOLD if threshold is None else threshold)
        if assume_label is None:
            excluded["by_label"] = {c: int(sum(1 for s, x in zip(index.samples, seen) if x and index.class_names[s.label] == c)) for c in index.class_names}
        index = replace(index, samples=[s for s, x in zip(index.samples, seen) if not x])
        if not index.samples:
            raise ConfigError(f"{root}: every image has a near-duplicate in {exclude_seen}; nothing is left to test on")
    named, copies = trained_on_mask(meta, index, hash_cache=resolve_cache_dir(cache_dir) is not None)
    if exclude_trained:
        drop = named | copies
        kept = [s for s, x in zip(index.samples, drop) if not x]
        excluded = {**(excluded or {}), "n_excluded_trained": int(drop.sum()), "n_excluded_trained_copies": int((copies & ~named).sum()),
                    "trained_hashes": _records_hashes(meta)}
        index = replace(index, samples=kept)
        if not index.samples:
            raise ConfigError(f"{root}: the model was trained on every image here (data.extra_train); nothing is left to test on")
        copies = np.zeros(len(kept), dtype=bool)
    else:
        copies = copies & ~named
    prepared = PreparedImages(index.samples, meta.preprocess, resolve_cache_dir(cache_dir), index.arrays)
    if assume_label:
        truth = np.full(len(prepared.samples), assume_label == "tumor")
    else:
        truth = np.array([index.class_names[s.label] == "tumor" for s in prepared.samples], dtype=bool)
    return prepared.images, truth, [s.path for s in prepared.samples], prepared.failures, excluded, int(copies.sum())


def evaluate_tumor_presence(
    checkpoint: str | Path,
    root: str | Path,
    assume_label: str | None = None,
    cache_dir: str | None = "auto",
    batch_size: int = 64,
    exclude_seen: str | Path | None = None,
    threshold: int | None = None,
    axis: str = "axial",
    slices: str = "middle:80",
    exclude_trained: bool = False,
    data_options: dict | None = None,
) -> dict:
    """Tumor-vs-notumor rates of ``checkpoint`` on every image under ``root``.

    Args:
        checkpoint: a brainmri checkpoint whose classes include ``notumor``.
        root: dataset folder (class folders such as ``yes/ no/``, or tumor-type folders), or a
            NIfTI volume (needs ``assume_label``; ``axis`` and ``slices`` select its slices as
            ``brainmri predict`` does).
        assume_label: ``tumor`` or ``notumor`` to treat every image as that label (folders ignored).
        exclude_seen: a dataset folder (the model's training data): images with a near-duplicate
            there (256-bit pHash distance <= ``threshold``, default the audit's) are left out.
        exclude_trained: leave out the images the checkpoint was trained on (its recorded
            ``data.extra_train`` files), e.g. the 400 Alzheimer slices of a model trained on them.
        data_options: DataConfig fields for reading ``root`` (a labels CSV's column and label
            names: ``csv_path_column``, ``csv_label_column``, ``csv_label_names``...).

    Returns:
        ``tumor_called_tumor`` (sensitivity) and ``notumor_called_notumor`` (specificity), each
        with ``n``, ``count``, ``rate`` and a Wilson 95% interval; ``predicted`` (counts per
        predicted class, per true label); ``auc`` of P(tumor) when both labels are present;
        ``paths``, ``p_tumor`` and ``truth_tumor`` per image; ``excluded_seen`` when ``exclude_seen`` was given.
    """
    from brainmri.checkpoint import load_checkpoint
    from brainmri.evaluation.evaluate import predict_logits
    from brainmri.evaluation.metrics import roc_auc

    if assume_label not in (None, "tumor", "notumor"):
        raise ConfigError(f"assume_label={assume_label!r} is not valid; choose tumor or notumor")
    model, meta = load_checkpoint(checkpoint)
    names = list(meta.class_names)
    if "notumor" not in names:
        raise ConfigError(f"{checkpoint}: tumor-presence evaluation needs a model with a 'notumor' class (has {names})")
    excluded, failures, copies = None, [], 0
    if is_nifti(root):
        if not assume_label:
            raise ConfigError(f"{root}: a NIfTI volume has no labels; give assume_label (tumor or notumor)")
        if exclude_seen or exclude_trained:
            raise ConfigError(f"{root}: excluding seen or trained-on images compares image files; it does not apply to a NIfTI volume")
        images, paths, raw_slices, volume_info = _nifti_images(root, meta, axis, slices)
        truth = np.full(len(images), assume_label == "tumor")
    else:
        raw_slices, volume_info = None, None
        images, truth, paths, failures, excluded, copies = _folder_images(root, meta, assume_label, cache_dir, exclude_seen, threshold, exclude_trained, data_options)
    with torch.inference_mode():
        logits = predict_logits(model, meta, images, batch_size)
    probs = calibrated_probs(logits, meta.calibration)
    pred = probs.argmax(1)
    called_tumor = pred != names.index("notumor")
    p_tumor = 1.0 - probs[:, names.index("notumor")]
    result = {
        "checkpoint": str(checkpoint), "data": str(root), "assume_label": assume_label, "n": int(len(truth)),
        "tumor_called_tumor": _rate(called_tumor[truth]) if truth.any() else None,
        "notumor_called_notumor": _rate(~called_tumor[~truth]) if (~truth).any() else None,
        "predicted": {
            label: {names[k]: int(((pred == k) & mask).sum()) for k in range(len(names))}
            for label, mask in (("tumor", truth), ("notumor", ~truth)) if mask.any()
        },
        "unreadable": [f"{p}: {r}" for p, r in failures],
        "paths": paths,
        "p_tumor": [round(float(v), 5) for v in p_tumor],
        "truth_tumor": [bool(v) for v in truth],
        "disclaimer": brainmri.DISCLAIMER,
    }
    if excluded is not None:
        result["excluded_seen"] = excluded
    if raw_slices is not None:
        result["ood"] = ood = _slice_ood(raw_slices, logits, meta, paths)
        keep = ~np.array(ood.pop("mask"), dtype=bool)
        if ood["n"] and keep.any():  # the same rate on the slices predict would label
            hits = called_tumor[keep] if assume_label == "tumor" else ~called_tumor[keep]
            ood["rate_in_distribution"] = _rate(hits)
        if volume_info.get("note"):
            result["volume_note"] = volume_info["note"]
    warning = _trained_on_warning(checkpoint, meta, root, paths, copies)
    if warning:
        result["warning"] = warning
    if truth.any() and (~truth).any():
        result["auc"] = roc_auc(truth, p_tumor)
        result["accuracy"] = float((called_tumor == truth).mean())
    return result


def _slice_ood(raw_slices: list[np.ndarray], logits: np.ndarray, meta, paths: list[str]) -> dict:
    """How many slices ``brainmri predict`` would call out of distribution (blank, noise, unlike
    the training images), with the first reasons: their rates are not a judgement of the model."""
    from brainmri.inference.ood import check_ood

    flags = [check_ood(img, torch.from_numpy(row).float(), meta.ood, image_size=meta.preprocess.image_size, montage=False) for img, row in zip(raw_slices, logits)]
    bad = [(p, reason) for p, (ood, reason) in zip(paths, flags) if ood]
    return {"n": len(bad), "of": len(paths), "mask": [bool(ood) for ood, _ in flags], "examples": [f"{p}: {r}" for p, r in bad[:5]]}


def _trained_on_warning(checkpoint, meta, root, paths: list[str], copies: int = 0) -> str | None:
    """Why this is not a cross-source test of ``checkpoint``, or ``None``: the data is one of its
    extra training sources, holds some of their images (matched by dataset/class/file name,
    :func:`brainmri.data.presence.file_key`, or ``copies`` of them under other names, counted by
    :func:`trained_on_mask`), or lies wholly in their class folders (other scans of a source it
    was trained on)."""
    from brainmri.data.presence import file_key
    from brainmri.evaluation.evaluate import _recorded_roots, inside_training_root
    from brainmri.inference.nifti import volume_name

    if any(_same_path(r, root) for r in _recorded_roots(meta, checkpoint)):
        return (f"{root} is the dataset {checkpoint} was trained on (data.root): its training and validation images are scored "
                "here, so this is not a cross-source test (its Testing split alone is the model's own test, not another source)")
    if (own := inside_training_root(meta, root, checkpoint)) is not None:
        return (f"{root} lies inside {own}, the dataset {checkpoint} was trained on (data.root): these are its training or "
                "validation images, so this is not a cross-source test")
    extra = (meta.data or {}).get("extra_train") or []
    for e in extra:
        if _same_path(e["source"], root):
            return f"{checkpoint} was trained on {e['source']} (data.extra_train): this is not a cross-source test"
    keys = [file_key(p) for p in paths]
    for e in extra:
        files = set(e.get("files") or [])
        k = sum(key in files for key in keys)
        if k:
            return (f"{checkpoint} was trained on {k} of these {len(keys)} images (data.extra_train {e['source']}): this is not a cross-source test"
                    " (--exclude-trained leaves them out)")
    hits, folder = renamed_matches(meta, paths)
    if folder is not None:
        return (f"{checkpoint} was trained on {int(hits.sum())} of these {len(keys)} images, matched by class folder and file name: this "
                f"looks like its training source '{folder}' under another folder name, so this is not a cross-source test "
                "(--exclude-trained leaves them out)")
    if copies:
        return (f"{checkpoint} was trained on {copies} of these {len(keys)} images under other names (the same pixels, pHash within "
                f"{SAME_IMAGE_THRESHOLD} bits): this is not a cross-source test (--exclude-trained leaves them out)")
    if str(root).lower().endswith((".nii", ".nii.gz")):
        vol = volume_name(root)
        for e in extra:  # slices written by scripts/volume_slices.py: <...>/<volume>/<volume>_<axis>_<index>.png
            n = sum(f.split("/")[-2:-1] == [vol] and f.rsplit("/", 1)[-1].startswith(vol + "_") for f in e.get("files") or [])
            if n:
                return (f"{checkpoint} was trained on {n} slices of this volume (data.extra_train {e['source']}): "
                        "this is not a cross-source test")
    for e in extra:
        folders = {f.rsplit("/", 1)[0] for f in e.get("files") or []}  # dataset/class
        if keys and all(k.rsplit("/", 1)[0] in folders for k in keys):
            return (f"{checkpoint} was trained on other images of this source (data.extra_train {e['source']}): "
                    "none of these images, but not a cross-source test either")
    return None


def _same_path(a: str | Path, b: str | Path) -> bool:
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return str(a) == str(b)


def summary_lines(r: dict) -> list[str]:
    lines = [f"WARNING: {r['warning']}"] if r.get("warning") else []
    lines += [f"tumor presence on {r['data']} (n={r['n']}{', all assumed ' + r['assume_label'] if r['assume_label'] else ''})"]
    ex = r.get("excluded_seen")
    if ex and "n_excluded_trained" in ex:
        how = (f", {ex['n_excluded_trained_copies']} of them copies under other names" if ex.get("n_excluded_trained_copies")
               else "" if ex.get("trained_hashes", True) else "; matched by file name only: this checkpoint records no image hashes")
        lines.append(f"  left out {ex['n_excluded_trained']} image(s) the model was trained on (data.extra_train{how})")
    if ex and "reference" in ex:
        by = ", ".join(f"{k} {v}" for k, v in (ex.get("by_label") or {}).items())
        lines.append(f"  left out {ex['n_excluded']} image(s) with a near-duplicate in {ex['reference']} (pHash <= {ex['threshold']}){': ' + by if by else ''}")
    for key, text in (("tumor_called_tumor", "tumor scans called a tumor class"), ("notumor_called_notumor", "healthy scans called notumor")):
        v = r.get(key)
        if v:
            lines.append(f"  {text}: {v['count']}/{v['n']} = {100 * v['rate']:.1f}% (95% CI {100 * v['ci95'][0]:.1f}-{100 * v['ci95'][1]:.1f})")
    if r.get("auc") is not None:
        lines.append(f"  ROC-AUC of P(tumor): {r['auc']:.4f}; accuracy {100 * r['accuracy']:.1f}%")
    for label, counts in r["predicted"].items():
        lines.append(f"  true {label}: predicted " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    if r.get("volume_note"):
        lines.append(f"  note: {r['volume_note']}")
    ood = r.get("ood")
    if ood and ood["n"]:
        lines.append(f"  WARNING: {ood['n']} of {ood['of']} slices are out of distribution (brainmri predict would give them no label), "
                     f"e.g. {ood['examples'][0]}; the rates above include them")
        v = ood.get("rate_in_distribution")
        if v:
            lines.append(f"  on the {v['n']} in-distribution slices: {v['count']}/{v['n']} = {100 * v['rate']:.1f}% "
                         f"(95% CI {100 * v['ci95'][0]:.1f}-{100 * v['ci95'][1]:.1f})")
    return lines
