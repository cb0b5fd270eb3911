"""Dataset audit (duplicates, train/test leakage, label conflicts) and a leak-free split.

Public datasets of brain MRI are assembled from several sources and often hold the same slice
twice: byte-identical copies, re-encoded copies, resized or brightened copies - sometimes in both
Training and Testing (test scores then measure memory, not skill) or under two labels.

* :func:`audit_index` -> a JSON-able report: counts per split and class, size/mode/format
  histograms, unreadable files (by path, with the reason), exact duplicates (file bytes and decoded
  pixels), near-duplicates by 256-bit pHash within a Hamming ``threshold`` (groups within and across
  splits), test images with a near-duplicate in training, label conflicts.
* :func:`write_montage` -> a PNG of the closest cross-split pairs, for checking by eye.
* :func:`leak_free_split` -> a train/val/test split of all samples in which no near-duplicate
  group straddles two splits (whole groups assigned, stratified by the group's majority label).
* :func:`nearest_train_distances`, :func:`find_test_leaks`, :func:`leak_free_test_mask` -> which
  official test images have no near-duplicate in train/val, to report leak-free metrics.

"Train side" below means every split that is not ``test`` (train and val: a validation split
carved from the official Training folder is still training data as far as leakage goes).

Example:
    >>> index = load_dataset(DataConfig(root="brain-tumor-mri"))
    >>> report = audit_index(index, threshold=DEFAULT_THRESHOLD)
    >>> report["cross_split"]["test_images_with_train_near_duplicate"]
"""
from __future__ import annotations

import dataclasses
import random
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from brainmri.data.datasets import DatasetIndex, Sample
from brainmri.data.hashing import (
    ImageHash,
    connected_groups,
    hash_samples,
    near_duplicate_pairs,
    nearest_neighbours,
    phash_array,
    sample_key,
)

# Hamming distance (out of 256 pHash bits) at or below which two images count as near-duplicates.
# Chosen by looking at real pairs of brain-tumor-mri (7,023 images) at each distance:
#   0-8    the same image (byte/pixel copies, re-encoded, resized);
#   10-18  the same image with brightness/contrast/gamma changes (synthetic checks: +10%
#          brightness <= 16, gamma 0.8 <= 14, half size <= 8, JPEG q60 <= 6 bits);
#   20-30  the same image heavily re-windowed, or the next slice of the same series: still leakage;
#   32+    the first pairs with different labels (different patients) appear.
# 24 catches the copies and most same-series neighbours with a margin of 8 bits below the first
# cross-label pair; it matches "6 of 64 bits" in relative terms. (Distances are always even:
# every hash has exactly 128 one-bits.)
DEFAULT_THRESHOLD = 24
_EXAMPLES = 50  # how many example pairs / groups the report lists


def _is_test(sample: Sample) -> bool:
    return sample.split == "test"


def _short(path: str, parts: int = 3) -> str:
    return "/".join(Path(path).parts[-parts:])


# ----------------------------------------------------------------------------------------------
# report sections


def _counts(index: DatasetIndex) -> dict:
    counts = index.counts()
    return {
        "images": len(index.samples),
        "classes": list(index.class_names),
        "splits": {split: sum(c.values()) for split, c in counts.items()},
        "counts": counts,
    }


def _histograms(index: DatasetIndex, hashes: Sequence[ImageHash]) -> dict:
    ok = [(s, h) for s, h in zip(index.samples, hashes) if h.ok]
    sizes = Counter(f"{h.width}x{h.height}" for _, h in ok)
    ext_format = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF"}
    mismatched = [
        s.path for s, h in ok if s.index is None and ext_format.get(Path(s.path).suffix.lower(), h.format) != h.format
    ]
    return {
        "readable": len(ok),
        "unreadable": [{"path": sample_key(s), "reason": h.error} for s, h in zip(index.samples, hashes) if not h.ok],
        "sizes": dict(sizes.most_common()),
        "modes": dict(Counter(h.mode for _, h in ok).most_common()),
        "formats": dict(Counter(h.format for _, h in ok).most_common()),
        "extension_mismatch": mismatched,
    }


def _exact_groups(index: DatasetIndex, hashes: Sequence[ImageHash], attr: str) -> dict:
    by_hash: dict[str, list[int]] = defaultdict(list)
    for k, h in enumerate(hashes):
        value = getattr(h, attr)
        if h.ok and value is not None:
            by_hash[value].append(k)
    groups = sorted((g for g in by_hash.values() if len(g) > 1), key=lambda g: (-len(g), g[0]))
    cross = [g for g in groups if len({index.samples[k].split for k in g}) > 1]
    conflicting = [g for g in groups if len({index.samples[k].label for k in g}) > 1]
    return {
        "groups": len(groups),
        "images": sum(len(g) for g in groups),
        "redundant_copies": sum(len(g) - 1 for g in groups),
        "cross_split_groups": len(cross),
        "label_conflict_groups": len(conflicting),
        "examples": [[_describe(index, k) for k in g] for g in groups[:_EXAMPLES]],
    }


def _describe(index: DatasetIndex, k: int) -> str:
    s = index.samples[k]
    return f"{s.split}:{index.class_names[s.label]}:{sample_key(s)}"


def _pair(index: DatasetIndex, a: int, b: int, distance: int) -> dict:
    sa, sb = index.samples[a], index.samples[b]
    return {
        "a": sample_key(sa), "a_split": sa.split, "a_label": index.class_names[sa.label],
        "b": sample_key(sb), "b_split": sb.split, "b_label": index.class_names[sb.label],
        "distance": int(distance),
    }


def _near_duplicates(index: DatasetIndex, hashes: Sequence[ImageHash], threshold: int) -> dict:
    values, pos = phash_array(hashes)
    i, j, d = near_duplicate_pairs(values, threshold)
    a, b = pos[i], pos[j]
    group = connected_groups(len(values), i, j)
    members: dict[int, list[int]] = defaultdict(list)
    for node, g in enumerate(group.tolist()):
        members[g].append(int(pos[node]))
    groups = [m for m in members.values() if len(m) > 1]
    within: Counter = Counter()
    cross = 0
    for m in groups:
        splits = {index.samples[k].split for k in m}
        if len(splits) == 1:
            within[splits.pop()] += 1
        else:
            cross += 1
    labels = np.array([s.label for s in index.samples])
    conflict = labels[a] != labels[b]
    order = np.lexsort((b[conflict], a[conflict], d[conflict]))
    ca, cb, cd = a[conflict][order], b[conflict][order], d[conflict][order]
    return {
        "pairs": int(len(d)),
        "pair_distance_histogram": {int(k): int(v) for k, v in sorted(Counter(d.tolist()).items())},
        "groups": len(groups),
        "images_in_groups": sum(len(m) for m in groups),
        "largest_group": max((len(m) for m in groups), default=0),
        "within_split_groups": dict(sorted(within.items())),
        "cross_split_groups": cross,
        "label_conflicts": int(conflict.sum()),
        "label_conflict_images": int(len(set(ca.tolist()) | set(cb.tolist()))),
        "label_conflict_groups": sum(1 for m in groups if len({int(labels[k]) for k in m}) > 1),
        "label_conflict_examples": [_pair(index, x, y, z) for x, y, z in zip(ca[:_EXAMPLES], cb[:_EXAMPLES], cd[:_EXAMPLES])],
    }


def _nearest_train(index: DatasetIndex, hashes: Sequence[ImageHash]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(test_positions, distance, nearest_train_position)`` for readable test samples."""
    values, pos = phash_array(hashes)
    is_test = np.array([_is_test(index.samples[k]) for k in pos], dtype=bool)
    dist, near = nearest_neighbours(values[is_test], values[~is_test])
    train_pos = pos[~is_test]
    nearest = train_pos[near] if len(train_pos) else np.full(len(near), -1, np.int64)
    return pos[is_test], dist, nearest


def _cross_split(index: DatasetIndex, hashes: Sequence[ImageHash], threshold: int) -> dict:
    test_pos, dist, near = _nearest_train(index, hashes)
    leaked = dist <= threshold
    by_class = {c: 0 for c in index.class_names}
    for k in test_pos[leaked]:
        by_class[index.class_names[index.samples[k].label]] += 1
    pixel_train = {h.pixel_sha for s, h in zip(index.samples, hashes) if h.ok and not _is_test(s)}
    exact = sum(1 for s, h in zip(index.samples, hashes) if h.ok and _is_test(s) and h.pixel_sha in pixel_train)
    label_differs = sum(
        1 for t, n in zip(test_pos[leaked], near[leaked]) if index.samples[t].label != index.samples[n].label
    )
    order = np.lexsort((test_pos, dist))
    border = np.lexsort((test_pos, -dist))
    border = border[leaked[border]]
    return {
        "test_images": sum(1 for s in index.samples if _is_test(s)),
        "test_images_with_train_near_duplicate": int(leaked.sum()),
        "test_images_with_train_exact_duplicate": exact,
        "test_images_whose_nearest_train_label_differs": label_differs,
        "by_class": by_class,
        "nearest_train_distance_histogram": {int(k): int(v) for k, v in sorted(Counter(dist.tolist()).items())},
        "closest_pairs": [_pair(index, int(test_pos[o]), int(near[o]), int(dist[o])) for o in order[:_EXAMPLES]],
        "borderline_pairs": [_pair(index, int(test_pos[o]), int(near[o]), int(dist[o])) for o in border[:_EXAMPLES]],
    }


def audit_index(
    index: DatasetIndex,
    threshold: int = DEFAULT_THRESHOLD,
    hashes: Sequence[ImageHash] | None = None,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
) -> dict:
    """Audit a dataset for duplicates, leakage and label conflicts.

    Args:
        index: the dataset (files or NPZ members).
        threshold: pHash Hamming distance (0-256) at or below which two images are near-duplicates.
        hashes: precomputed :func:`~brainmri.data.hashing.hash_samples` output, else computed.
        cache_dir, use_cache: hash cache (see :func:`~brainmri.data.hashing.hash_samples`).

    Returns:
        A JSON-able dict with at least ``images``, ``exact_duplicate_groups`` (groups of images
        with identical decoded pixels, which includes byte-identical files), ``threshold``,
        ``cross_split`` (``test_images``, ``test_images_with_train_near_duplicate``, ``by_class``,
        ``closest_pairs``...), ``label_conflicts`` (near-duplicate pairs whose labels differ),
        plus histograms, unreadable files and example groups.
    """
    if hashes is None:
        hashes = hash_samples(index, cache_dir=cache_dir, use_cache=use_cache)
    near = _near_duplicates(index, hashes, threshold)
    report = {"root": index.root, **_counts(index), **_histograms(index, hashes)}
    exact_pixels = _exact_groups(index, hashes, "pixel_sha")
    report.update(
        exact_duplicate_groups=exact_pixels["groups"],
        exact_duplicates={"pixels": exact_pixels, "file_bytes": _exact_groups(index, hashes, "file_sha")},
        threshold=int(threshold),
        near_duplicates=near,
        label_conflicts=near["label_conflicts"],
        cross_split=_cross_split(index, hashes, threshold),
    )
    return report


# ----------------------------------------------------------------------------------------------
# montage


def _load_gray(index: DatasetIndex, key: str) -> np.ndarray:
    from brainmri.data.io import as_gray_uint8, read_image

    lookup = {sample_key(s): s for s in index.samples}
    s = lookup.get(key)
    if s is not None and s.index is not None and index.arrays is not None:
        return as_gray_uint8(np.asarray(index.arrays[s.index]), key)
    return read_image(key)


def write_montage(
    index: DatasetIndex, pairs: Sequence[dict], out: str | Path, max_pairs: int = 12,
    title: str = "Closest cross-split pairs (pHash Hamming distance d of 256 bits)",
    threshold: int | None = None,
) -> Path:
    """Draw pairs (``a``/``b`` keys as in ``report["cross_split"]["closest_pairs"]``) side by side,
    two pairs per row, each image titled with split, label, short path, and the pair's distance;
    with ``threshold``, a pair farther apart is marked "not a near-duplicate" (the closest pairs
    of a clean set are different scans).

    Returns:
        The PNG path written.
    """
    from matplotlib.figure import Figure

    pairs = list(pairs)[:max_pairs]
    out = Path(out)
    rows = max(1, (len(pairs) + 1) // 2)
    fig = Figure(figsize=(13, 3.5 * rows), dpi=80)
    axes = fig.subplots(rows, 4, squeeze=False)
    for ax in axes.ravel():
        ax.set_axis_off()
    for n, p in enumerate(pairs):
        for side, ax in zip(("a", "b"), axes[n // 2, (n % 2) * 2 : (n % 2) * 2 + 2]):
            try:
                ax.imshow(_load_gray(index, p[side]), cmap="gray", vmin=0, vmax=255)
            except Exception as exc:  # noqa: BLE001 - the montage shows what it cannot read
                ax.text(0.5, 0.5, f"unreadable:\n{exc}", ha="center", va="center", fontsize=7, wrap=True)
            far = threshold is not None and p["distance"] > threshold
            head = (f"d={p['distance']}" + (f" > {threshold}: not a near-duplicate  " if far else "  ")) if side == "a" else ""
            ax.set_title(f"{head}{p[side + '_split']}/{p[side + '_label']}\n{_short(p[side], 2)}", fontsize=8, color="gray" if far else "black")
    if not pairs:
        axes[0, 0].text(0, 0.5, "no cross-split pairs", fontsize=12)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / (3.5 * rows)))
    import io

    from brainmri.outputs import PNG_METADATA, write_output

    buf = io.BytesIO()
    fmt = out.suffix.lower().lstrip(".") or "png"
    fig.savefig(buf, format=fmt, **({"metadata": PNG_METADATA} if fmt == "png" else {}))  # the mark lets a rerun replace it
    write_output(out, buf.getvalue())  # atomically: a full disk leaves no half montage
    return out


# ----------------------------------------------------------------------------------------------
# leak-free split and test masks


def near_duplicate_groups(index: DatasetIndex, threshold: int, hashes: Sequence[ImageHash] | None = None, **cache) -> np.ndarray:
    """Group id per sample: connected components of "pHash distance <= threshold" (exact copies
    included); unreadable samples are singletons."""
    if hashes is None:
        hashes = hash_samples(index, **cache)
    values, pos = phash_array(hashes)
    i, j, _ = near_duplicate_pairs(values, threshold)
    comp = connected_groups(len(values), i, j)
    group = np.arange(len(index.samples)) + len(index.samples)  # unreadable: own group
    group[pos] = pos[comp]
    return group


def leak_free_split(
    index: DatasetIndex,
    threshold: int = DEFAULT_THRESHOLD,
    val_ratio: float = 0.1,
    test_ratio: float = 0.1,
    seed: int = 42,
    cache_dir: str | Path | None = None,
    hashes: Sequence[ImageHash] | None = None,
) -> DatasetIndex:
    """Re-split ALL samples (official splits pooled) so that no near-duplicate group straddles
    two splits.

    Whole groups are assigned, stratified by each group's majority label (ties: lowest label):
    per class, groups are shuffled by ``seed``, taken largest first, and each goes to the split
    furthest below its target count. Deterministic for a seed; every sample kept exactly once.

    Returns:
        A new :class:`DatasetIndex` (same order and classes, ``official_split=False``).
    """
    group = near_duplicate_groups(index, threshold, hashes, cache_dir=cache_dir)
    members: dict[int, list[int]] = defaultdict(list)
    for k, g in enumerate(group.tolist()):
        members[g].append(k)
    by_label: dict[int, list[list[int]]] = defaultdict(list)
    for g in sorted(members):
        labels = Counter(index.samples[k].label for k in members[g])
        top = max(labels.values())
        by_label[min(lab for lab, n in labels.items() if n == top)].append(members[g])
    rng = random.Random(seed)
    ratios = {"test": test_ratio, "val": val_ratio, "train": 1.0 - val_ratio - test_ratio}
    split_of: dict[int, str] = {}
    for label in sorted(by_label):
        groups = by_label[label]
        rng.shuffle(groups)
        groups.sort(key=len, reverse=True)  # stable: random order within a size
        total = sum(len(g) for g in groups)
        filled = dict.fromkeys(ratios, 0)
        for g in groups:
            name = max(ratios, key=lambda s: ratios[s] * total - filled[s] if ratios[s] > 0 else -np.inf)
            filled[name] += len(g)
            split_of.update(dict.fromkeys(g, name))
    samples = [dataclasses.replace(s, split=split_of[k]) for k, s in enumerate(index.samples)]
    return dataclasses.replace(index, samples=samples, official_split=False)


def nearest_train_distances(
    index: DatasetIndex, cache_dir: str | Path | None = None, hashes: Sequence[ImageHash] | None = None
) -> dict[str, int | None]:
    """For every test sample (key: path, or ``path#index`` for an NPZ member), the pHash distance
    to its nearest train/val sample; ``None`` when the test image is unreadable."""
    if hashes is None:
        hashes = hash_samples(index, cache_dir=cache_dir)
    test_pos, dist, _ = _nearest_train(index, hashes)
    out: dict[str, int | None] = {sample_key(s): None for s in index.samples if _is_test(s)}
    out.update({sample_key(index.samples[k]): int(d) for k, d in zip(test_pos, dist)})
    return out


def find_test_leaks(
    index: DatasetIndex, threshold: int = DEFAULT_THRESHOLD, cache_dir: str | Path | None = None,
    hashes: Sequence[ImageHash] | None = None,
) -> dict[str, int]:
    """Test samples that have a near-duplicate (distance <= ``threshold``) in train/val:
    ``{key: nearest_train_distance}``."""
    dists = nearest_train_distances(index, cache_dir, hashes)
    return {k: d for k, d in dists.items() if d is not None and d <= threshold}


def leak_free_test_mask(
    index: DatasetIndex, threshold: int = DEFAULT_THRESHOLD, cache_dir: str | Path | None = None,
    hashes: Sequence[ImageHash] | None = None,
) -> list[bool]:
    """One bool per ``index.split("test")`` sample, in that order: True when the image has NO
    near-duplicate in train/val (evaluate on these for leak-free metrics). Unreadable test images
    get True (they are dropped by the loader anyway, and cannot be shown to leak)."""
    leaks = find_test_leaks(index, threshold, cache_dir, hashes)
    return [sample_key(s) not in leaks for s in index.split("test")]
