"""Extra training sources with tumor-presence labels only (``data.extra_train``).

A four-class tumor model learns from every labelled scan it can get, not only the four-class set:
binary sets (``yes``/``no``) and healthy-only sets (e.g. Alzheimer slices, all without a tumor).
Each extra image joins the *training* split only (validation and test stay on the main source):

* a healthy image gets the main task's healthy class (``notumor``);
* a tumor image of unknown type gets :data:`~brainmri.preprocess.lesion.PRESENCE`, trained with
  ``-log P(not notumor)`` (``brainmri.training.module``).

A spec is ``PATH`` (folders read with the ``tumor2`` preset: ``yes``/``no``, tumor-type folders,
``notumor``) or ``PATH=LABEL`` with LABEL ``tumor`` or ``notumor`` (every image that label).
An extra source is no longer a cross-source test of the model: the checkpoint records them, and
``brainmri evaluate --tumor-presence`` says so when asked to test on one.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from brainmri.config import DataConfig
from brainmri.data.datasets import Sample, load_dataset
from brainmri.data.io import image_files
from brainmri.errors import ConfigError
from brainmri.preprocess.lesion import PRESENCE

LABELS = ("tumor", "notumor")


def file_key(path: str | Path) -> str:
    """A machine-independent name for an image file: its last three path parts
    (``brain-mri-yes-no/yes/Y1.jpg``: dataset folder, class folder, file name).
    The checkpoint records the keys of its extra training images, so an evaluation can tell
    which of its images the model was trained on (``brainmri.evaluation.cross_source``)."""
    p = Path(path)
    return "/".join(p.parts[-3:])


def parse_spec(spec: str) -> tuple[str, str | None]:
    """``"PATH"`` -> ``(PATH, None)``; ``"PATH=notumor"`` -> ``(PATH, "notumor")``."""
    path, sep, label = str(spec).rpartition("=")
    if not sep or label.strip() not in LABELS:
        if sep and label.strip() and "/" not in label:
            raise ConfigError(f"data.extra_train {spec!r}: label {label!r} must be one of {', '.join(LABELS)}")
        return str(spec), None
    return path, label.strip()


def load_extra_sources(specs: list[str], class_names: list[str], seed: int = 42, max_per_source: int | None = None,
                       repeat: int = 1, hash_cache: bool = True, main_root: str | None = None) -> tuple[list[Sample], list[dict]]:
    """Training samples from every spec, labelled for ``class_names`` (which must hold ``notumor``);
    at most ``max_per_source`` images from each (a seeded random pick), so a large healthy-only set
    does not drown the main task; each picked image ``repeat`` times (so a small source is not
    drowned by the main task either; augmentation makes the copies differ). ``hash_cache``: keep
    the images' perceptual hashes in the hash cache (:func:`brainmri.data.hashing.hash_samples`).

    Returns:
        samples (split ``train``) and one summary per source, ``{"source", "label", "n_tumor",
        "n_notumor", "repeat", "files", "phashes"}`` (``files``: :func:`file_key` of every picked
        image; ``phashes``: their perceptual hashes, so an evaluation also knows a trained image
        renamed or re-encoded), for the checkpoint metadata.

    Raises:
        ConfigError: an empty or missing path, a source given twice, or one that is, holds or lies
            inside ``main_root`` (the main dataset: its validation and test images would be trained on).
    """
    if int(repeat) < 1:
        raise ConfigError(f"data.extra_repeat={repeat!r} must be a whole number >= 1")
    if "notumor" not in class_names:
        raise ConfigError(f"data.extra_train needs a task with a 'notumor' class (classes: {class_names})")
    healthy = class_names.index("notumor")
    samples: list[Sample] = []
    summary: list[dict] = []
    seen: dict[Path, str] = {}
    main = _resolved(main_root) if main_root else None
    for spec in specs:
        root, label = parse_spec(spec)
        if not root.strip():
            raise ConfigError(f"data.extra_train {spec!r}: the path is empty (it would read the current folder)")
        root = str(Path(root).expanduser())
        if not Path(root).exists():
            raise ConfigError(f"data.extra_train {spec!r}: {root} does not exist")
        here = _resolved(root)
        if here in seen:
            raise ConfigError(f"data.extra_train {spec!r}: the same source as {seen[here]!r}; give each source once (data.extra_repeat repeats them)")
        seen[here] = spec
        if main is not None and (here == main or here.is_relative_to(main) or main.is_relative_to(here)):
            raise ConfigError(f"data.extra_train {spec!r}: {root} {'is' if here == main else 'overlaps'} the training dataset {main_root}; "
                              "its validation and test images would be trained on; an extra source must be another set")
        picked = _read_source(spec, root, label, seed)
        inside = next((s.path for s, _ in picked if main is not None and _resolved(s.path).is_relative_to(main)), None)
        if inside is not None:
            raise ConfigError(f"data.extra_train {spec!r}: lists {inside}, an image of the training dataset {main_root}; "
                              "an extra source must not hold the main dataset's images (its validation and test images would be trained on)")
        if max_per_source is not None and len(picked) > max_per_source:
            order = np.random.default_rng(seed).permutation(len(picked))[:max_per_source]
            picked = [picked[i] for i in sorted(order)]
        n = {"tumor": 0, "notumor": 0}
        for s, kind in picked:
            n[kind] += 1
            samples.extend([Sample(path=s.path, label=PRESENCE if kind == "tumor" else healthy, split="train", index=s.index)] * int(repeat))
        summary.append({"source": str(root), "label": label or "folders", "n_tumor": n["tumor"], "n_notumor": n["notumor"], "repeat": int(repeat),
                        "files": sorted({file_key(s.path) for s, _ in picked}), "phashes": _phashes([s for s, _ in picked], hash_cache)})
    return samples, summary


def _resolved(path: str | Path) -> Path:
    try:
        return Path(path).expanduser().resolve()
    except (OSError, RuntimeError):
        return Path(path).expanduser().absolute()


def _phashes(samples: list[Sample], use_cache: bool = True) -> list[str]:
    """Sorted distinct perceptual hashes (:func:`brainmri.data.hashing.phash`) of the readable images
    among ``samples`` (the hash cache makes a rerun cheap)."""
    from brainmri.data.datasets import DatasetIndex
    from brainmri.data.hashing import hash_samples

    index = DatasetIndex(root="", class_names=["x"], samples=[Sample(path=s.path, label=0) for s in samples], layout="flat")
    return sorted({h.phash for h in hash_samples(index, use_cache=use_cache) if h.ok and h.phash})


def extra_sources_of(d: DataConfig, class_names: list[str]) -> tuple[list[Sample], list[dict]]:
    """:func:`load_extra_sources` with the settings of ``d`` (``extra_train``, ``seed``,
    ``extra_max_per_source``, ``extra_repeat``; hashes cached unless ``cache_dir`` is off); no
    sources gives ``([], [])``."""
    from brainmri.data.cache import resolve_cache_dir

    if not d.extra_train:
        return [], []
    return load_extra_sources(d.extra_train, class_names, d.seed, d.extra_max_per_source, d.extra_repeat,
                              hash_cache=resolve_cache_dir(d.cache_dir) is not None, main_root=d.root or None)


def _read_source(spec: str, root: str, label: str | None, seed: int) -> list[tuple[Sample, str]]:
    """``(sample, "tumor" | "notumor")`` for every image of one source. With a LABEL, a folder is
    every image file below it, whatever its layout (e.g. the slices ``scripts/volume_slices.py``
    writes); without one, folders and CSVs are read with the ``tumor2`` preset."""
    if label and Path(root).is_dir():
        files = image_files(root)
        if not files:
            raise ConfigError(f"data.extra_train {spec!r}: no image files under {root}")
        return [(Sample(path=str(f), label=-1), label) for f in files]
    cfg = DataConfig(root=root, split="stratified", val_ratio=0.0, test_ratio=0.0, seed=seed, preset=None if label else "tumor2")
    index = load_dataset(cfg)
    if index.arrays is not None:
        raise ConfigError(f"data.extra_train {spec!r}: extra sources are image folders or CSV files, not NPZ arrays")
    return [(s, label or index.class_names[s.label]) for s in index.samples]
