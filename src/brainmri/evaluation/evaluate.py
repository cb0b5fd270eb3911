"""Evaluate a checkpoint on a dataset split, honestly.

:func:`evaluate_checkpoint` loads a checkpoint (class names, preprocessing and temperature come
from it, never re-typed), prepares the split's images as in training, predicts in eval mode
under ``torch.inference_mode`` (fp32), and reports:

* accuracy, NLL loss, per-class / macro / weighted precision-recall-F1, MCC, Cohen's kappa,
  one-vs-rest ROC-AUC, and 95 % bootstrap intervals for accuracy and macro F1;
* calibration: ECE with T = 1 and with the checkpoint's temperature (flagged if missing);
* leakage: test images with a near-duplicate in training (pHash, ``brainmri.data.audit``) and
  every number again on the leak-free subset;
* optionally test-time augmentation (hflip + small shifts) and the train/val/test table;
* optionally a self-contained HTML report (``brainmri.evaluation.report``).

Imports nothing from training.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import brainmri
from brainmri.config import DataConfig, apply_data_options
from brainmri.errors import ConfigError, DatasetError
from brainmri.evaluation.bootstrap import bootstrap_ci
from brainmri.evaluation.calibration import calibrated_probs, expected_calibration_error, softmax_with_temperature
from brainmri.evaluation.metrics import accuracy_score, classification_metrics, classification_report_text, macro_f1_score
from brainmri.outputs import write_json

log = logging.getLogger(__name__)
SPLIT_NAMES = {"train": "train", "training": "train", "val": "val", "validation": "val", "test": "test", "testing": "test"}
PRESETS = ("tumor4", "tumor2", "alzheimer4")


@dataclass
class SplitPredictions:
    """What a model said about one split (prepared images kept for galleries)."""

    split: str
    samples: list  # brainmri.data.datasets.Sample, unreadable ones removed
    images: list[np.ndarray]  # prepared uint8 (S, S)
    labels: np.ndarray  # (N,)
    logits: np.ndarray  # (N, K)
    failures: list[tuple[str, str]] = field(default_factory=list)
    tta_logits: np.ndarray | None = None


# ----------------------------------------------------------------------------------------------
# data


def data_config_for(meta, data, checkpoint: str | Path | None = None, preset: str | None = None) -> DataConfig:
    """The DataConfig to evaluate on: ``data`` (a DataConfig or a root path) with the checkpoint's
    class names; split settings from the run's ``config.yaml`` when the checkpoint sits in its
    run directory (so a carved validation split is carved the same way)."""
    if isinstance(data, DataConfig):
        cfg = data
    else:
        cfg = DataConfig(root=str(data))
        run_cfg = Path(checkpoint).parent / "config.yaml" if checkpoint else None
        if run_cfg is not None and run_cfg.is_file():
            try:
                from brainmri.config import load_run_config

                trained = load_run_config(run_cfg).data
            except Exception as exc:  # noqa: BLE001 - an unreadable run config only loses defaults
                log.warning("%s: ignoring run config (%s)", run_cfg, exc)
                trained = None
            if trained is not None and _same_path(trained.root, data):
                cfg = DataConfig(**{**trained.__dict__, "root": str(data), "cache_dir": None})
            elif trained is not None:
                cfg.class_map = trained.class_map  # another dataset: keep only the task's label map
        if cfg.split == "auto" and not isinstance(data, DataConfig):
            cfg.split = (meta.data or {}).get("split", "auto") or "auto"
            cfg.seed = int((meta.data or {}).get("seed", cfg.seed))
    task = preset or (meta.task if meta.task in PRESETS else None)
    if preset is not None and preset not in PRESETS:
        raise ConfigError(f"--preset {preset!r} is not valid; choose one of: {', '.join(PRESETS)}")
    if preset is not None:
        from brainmri.data.presets import get_preset

        wanted = get_preset(preset).class_names
        if sorted(wanted) != sorted(meta.class_names):  # it would be silently ignored: the classes are the checkpoint's
            raise ConfigError(f"--preset {preset} is for the classes {', '.join(wanted)}; this checkpoint's are "
                              f"{', '.join(meta.class_names)} (task {meta.task or 'unnamed'}); drop --preset or use the matching one")
    cfg.preset = task or cfg.preset
    cfg.class_names = list(meta.class_names)
    return cfg


def _same_path(a: str | Path, b: str | Path) -> bool:
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return False


def _class_totals(counts: dict) -> dict[str, int]:
    """``{class: images}`` summed over the splits of ``DatasetIndex.counts()``-like data."""
    totals: dict[str, int] = {}
    for per_class in (counts or {}).values():
        for c, k in (per_class or {}).items():
            totals[c] = totals.get(c, 0) + int(k)
    return {c: k for c, k in totals.items() if k}


def trained_on_reason(meta, data, checkpoint, index) -> str | None:
    """Why ``data`` looks like the dataset ``checkpoint`` was trained on (its root, as recorded in
    the checkpoint or in the run's ``config.yaml``, or the same number of images per class as
    its training data), or ``None``."""
    roots = _recorded_roots(meta, checkpoint)
    if any(_same_path(r, data) for r in roots):
        return "the checkpoint's training data root"
    trained = _class_totals((meta.data or {}).get("counts"))
    if trained and trained == _class_totals(index.counts()):
        return "same images per class as the checkpoint's training data"
    return None


def _recorded_roots(meta, checkpoint) -> list[str]:
    roots = [(meta.data or {}).get("root")]
    run_cfg = Path(checkpoint).parent / "config.yaml"
    if run_cfg.is_file():
        try:
            from brainmri.config import load_run_config

            roots.append(load_run_config(run_cfg).data.root)
        except Exception:  # noqa: BLE001 - an unreadable run config only loses this hint
            pass
    return [r for r in roots if r]


def inside_training_root(meta, data, checkpoint) -> str | None:
    """The checkpoint's training data root when ``data`` lies inside it (``ROOT/Training``,
    ``ROOT/glioma``), not in its held-out test split folder (``ROOT/Testing``); else ``None``."""
    try:
        target = Path(data).expanduser().resolve()
    except OSError:
        return None
    for root in _recorded_roots(meta, checkpoint):
        try:
            rel = target.relative_to(Path(root).expanduser().resolve())
        except (OSError, ValueError):
            continue
        if rel.parts and rel.parts[0].lower() not in ("testing", "test"):
            return str(root)
    return None


def load_split(index, split: str, meta, cache_dir: str | None = None, max_pixels: int | None = None):
    """Prepare one split's images with the checkpoint's preprocessing (unreadable files skipped)."""
    from brainmri.data.torchdata import PreparedImages

    samples = index.split(split)
    if not samples and not index.split("train") and len(index.counts()) == 1 and not index.official_split:
        raise DatasetError(f"{index.root}: the data has no split of its own, so all its {len(index.samples)} images are the test set; "
                           f"drop --split {split}")
    if not samples:
        raise DatasetError(f"{index.root}: split '{split}' is empty or missing (splits here: {', '.join(sorted(index.counts()))})")
    kwargs = {"max_pixels": max_pixels} if max_pixels else {}
    return PreparedImages(samples, meta.preprocess, cache_dir, index.arrays, **kwargs)


# ----------------------------------------------------------------------------------------------
# prediction


def _shift(x: torch.Tensor, dy: int, dx: int, fill: float) -> torch.Tensor:
    """Translate a (B, C, H, W) batch by whole pixels, filling with ``fill`` (no wrap-around)."""
    h, w = x.shape[-2:]
    padded = F.pad(x, (abs(dx), abs(dx), abs(dy), abs(dy)), value=fill)
    top, left = abs(dy) - dy, abs(dx) - dx
    return padded[..., top : top + h, left : left + w]


def tta_views(x: torch.Tensor, fill: float, shift_fraction: float = 0.04) -> list[torch.Tensor]:
    """Identity, horizontal flip and two diagonal shifts of ``shift_fraction`` of the side."""
    d = max(1, int(round(x.shape[-1] * shift_fraction)))
    return [x, torch.flip(x, dims=[-1]), _shift(x, d, d, fill), _shift(x, -d, -d, fill)]


@torch.inference_mode()
def predict_logits(model: nn.Module, meta, images: list[np.ndarray], batch_size: int = 64, tta: bool = False) -> np.ndarray:
    """Logits (N, K) for prepared uint8 images; with ``tta`` the mean over :func:`tta_views`."""
    from brainmri.preprocess.pipeline import to_model_input

    model.eval()
    device = next(model.parameters()).device
    fill = (0.0 - meta.preprocess.mean) / meta.preprocess.std
    out = []
    for start in range(0, len(images), batch_size):
        x = torch.stack([to_model_input(a, meta.preprocess) for a in images[start : start + batch_size]]).to(device)
        views = tta_views(x, fill) if tta else [x]
        out.append(torch.stack([model(v).float() for v in views]).mean(0).cpu())
    k = meta.num_classes
    return torch.cat(out).numpy().astype(np.float64) if out else np.zeros((0, k))


def predict_split(model, meta, index, split: str, batch_size: int = 64, tta: bool = False, cache_dir: str | None = None) -> SplitPredictions:
    prepared = load_split(index, split, meta, cache_dir)
    logits = predict_logits(model, meta, prepared.images, batch_size)
    tta_logits = predict_logits(model, meta, prepared.images, batch_size, tta=True) if tta else None
    labels = np.array(prepared.labels, dtype=np.int64)
    return SplitPredictions(split, list(prepared.samples), list(prepared.images), labels, logits, list(prepared.failures), tta_logits)


# ----------------------------------------------------------------------------------------------
# metrics


def present_classes(labels: np.ndarray, k: int) -> list[int] | None:
    """The class indices present in ``labels`` when some of the ``k`` are absent, else ``None``
    (macro averages then run over all classes, as always)."""
    present = sorted({int(v) for v in np.asarray(labels).tolist()})
    return present if present and len(present) < k else None


def summarize(labels: np.ndarray, logits: np.ndarray, class_names: list[str], calibration: dict | float, n_boot: int = 1000, seed: int = 0,
              average_over: list[int] | None = None) -> dict:
    """Metrics (calibrated probabilities) + bootstrap CIs + ECE before/after calibration.
    ``calibration``: the checkpoint's calibration dict (or a bare temperature).
    ``average_over``: class indices of the macro averages (default all; see :func:`present_classes`)."""
    probs = calibrated_probs(logits, calibration)
    m = classification_metrics(labels, probs, class_names, average_over)
    pred = probs.argmax(1) if len(labels) else np.zeros(0, dtype=np.int64)
    k = len(class_names)
    if average_over is not None:
        m["absent_classes"] = [c for i, c in enumerate(class_names) if i not in set(average_over)]
    m["ci"] = {
        "level": 0.95,
        "n_boot": n_boot,
        "accuracy": list(bootstrap_ci(labels, pred, accuracy_score, n_boot=n_boot, seed=seed)),
        "macro_f1": list(bootstrap_ci(labels, pred, partial(macro_f1_score, num_classes=k, classes=average_over, present_only=True),
                                          n_boot=n_boot, seed=seed)),
    }
    m["ece"] = expected_calibration_error(probs, labels)
    m["ece_before"] = expected_calibration_error(softmax_with_temperature(logits, 1.0), labels)
    if isinstance(calibration, dict) and calibration.get("top_label"):  # the temperature's share of the mend
        m["ece_temperature"] = expected_calibration_error(softmax_with_temperature(logits, float(calibration.get("temperature", 1.0))), labels)
    m["loss_before"] = classification_metrics(labels, softmax_with_temperature(logits, 1.0), class_names, average_over)["loss"]
    return m


def _sample_key(s) -> str:
    return s.path if s.index is None else f"{s.path}#{s.index}"


def leak_mask(index, preds: SplitPredictions, threshold: int, cache_dir: str | None = None) -> tuple[np.ndarray, dict]:
    """Boolean mask over ``preds.samples``: True where the image has no near-duplicate in
    train/val. Returns ``(mask, summary)``."""
    from brainmri.data import audit

    test = index.split("test")
    flags = audit.leak_free_test_mask(index, threshold, cache_dir)
    free = {_sample_key(s): f for s, f in zip(test, flags)}
    mask = np.array([free.get(_sample_key(s), True) for s in preds.samples], dtype=bool)
    leaked = [_sample_key(s) for s, ok in zip(preds.samples, mask) if not ok]
    by_class = {c: 0 for c in index.class_names}
    for s, ok in zip(preds.samples, mask):
        if not ok:
            by_class[index.class_names[s.label]] += 1
    summary = {"threshold": int(threshold), "checked": True, "n_test": int(mask.size), "n_leaked": int((~mask).sum()),
               "n_leak_free": int(mask.sum()), "leaked_by_class": by_class, "examples": leaked[:20]}
    return mask, summary


def _short(m: dict) -> dict:
    keys = ("n", "accuracy", "loss", "precision", "recall", "macro_f1", "mcc", "kappa", "roc_auc", "ece", "ece_before", "ci", "per_class", "confusion_matrix", "weighted",
            "absent_classes")
    return {k: m[k] for k in keys if k in m}


# ----------------------------------------------------------------------------------------------
# entry point


def check_options(batch_size: int = 64, n_boot: int = 1000, leak_threshold: int | None = None, explain_method: str = "gradcam") -> None:
    """Refuse bad evaluation options before any work (one line naming the flag and the range)."""
    from brainmri.data.hashing import HASH_BITS
    from brainmri.explain.cam import normalize_method

    if not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"--batch-size {batch_size} is not valid; it must be at least 1")
    if not isinstance(n_boot, int) or n_boot < 1:
        raise ConfigError(f"--bootstrap {n_boot} is not valid; it must be at least 1 (bootstrap resamples for the 95% intervals)")
    if leak_threshold is not None and leak_threshold > HASH_BITS:
        raise ConfigError(f"--leak-threshold {leak_threshold} is not valid; a pHash distance is 0..{HASH_BITS} (negative disables the check)")
    normalize_method(explain_method)


def _load_index(meta, data, cfg, checkpoint) -> tuple:
    """The dataset to evaluate on and a note on how its test split was chosen (or ``None``).

    A full :class:`DataConfig` is split as training splits it. A path is an evaluation set:
    without a training split of its own (a folder of class folders, a CSV / NPZ without a split
    column, only ``Testing/``) every image is a test image, unless it looks like the
    checkpoint's own training data: then its held-out test split is carved as in training."""
    from brainmri.data.datasets import load_dataset

    if isinstance(data, DataConfig):
        return load_dataset(cfg), None
    index = load_dataset(cfg, unsplit="test")
    if index.split("train") or index.official_split:
        if not index.split("train"):
            return index, f"{cfg.root}: the data has only its own {' and '.join(sorted(index.counts()))} split, no training split"
        return index, None
    reason = trained_on_reason(meta, data, checkpoint, index)
    if reason is None:
        root = inside_training_root(meta, data, checkpoint)
        if root is not None:
            return index, (f"WARNING: {cfg.root} lies inside {root}, the model's training data: its images are (partly) "
                           f"training images, so these {len(index.samples)} are no test of the model")
        return index, f"{cfg.root}: no train/test split in the data: scoring all {len(index.samples)} images"
    from brainmri.data.datasets import data_fingerprint

    carved = load_dataset(cfg)
    n_test = len(carved.split("test"))
    recorded = (meta.data or {}).get("fingerprint")
    if recorded and data_fingerprint(carved) != recorded:  # files added, removed or changed: the carve moved
        return carved, (f"WARNING: {cfg.root} looks like the model's training data ({reason}), but it changed since training "
                        f"(its listing no longer matches the checkpoint's fingerprint {recorded}): the {n_test} images carved "
                        "as its test split may include images the model was trained on, so this is no clean held-out test")
    return carved, (f"{cfg.root} looks like the model's training data ({reason}): scoring its held-out test split, "
                    f"carved as in training ({n_test} of {len(carved.samples)} images)")


def relative_name(sample, root) -> str:
    """A sample's path relative to the data root (``Testing/glioma/x.jpg``), or as given."""
    try:
        return str(Path(sample.path).resolve().relative_to(Path(root).expanduser().resolve()))
    except (OSError, ValueError):
        return str(sample.path)


def ood_screen(preds: SplitPredictions, meta, arrays=None) -> list[tuple[int, str]]:
    """(position, reason) of each scored image that ``predict`` and the service would refuse as
    out of distribution: the same guard (:func:`brainmri.inference.ood.check_ood`) on the same
    original decode and logits. Evaluation still scores them; this says which they are."""
    from brainmri.data.io import as_gray_uint8, decode_image_bytes
    from brainmri.inference.ood import check_ood, colorfulness_of_source

    if (meta.ood or {}).get("enabled", True) is False:
        return []
    found = []
    for i, sample in enumerate(preds.samples):
        try:
            if sample.index is not None and arrays is not None:
                raw, colour = as_gray_uint8(arrays[sample.index], sample.path), None
            else:
                data = Path(sample.path).read_bytes()  # one read for the gray decode and the colour check
                raw, colour = decode_image_bytes(data, sample.path), colorfulness_of_source(data)
        except Exception:  # noqa: BLE001 - it was read once already; a second failure only skips the screen
            continue
        ood, reason = check_ood(raw, preds.logits[i], meta.ood, colour, image_size=meta.preprocess.image_size)
        if ood:
            found.append((i, reason))
    return found


def per_image_rows(preds: SplitPredictions, names: list[str], cal, root, ood: list[tuple[int, str]], leak_free=None) -> list[dict]:
    """One row per scored image: its path (relative to the data root), true and predicted class,
    calibrated confidence, the guard's verdict and, where checked, whether it has a near-duplicate
    in the training data."""
    probs = calibrated_probs(preds.logits, cal)
    reasons = dict(ood)
    rows = []
    for i, sample in enumerate(preds.samples):
        top = int(probs[i].argmax())
        row = {"path": relative_name(sample, root), "true": names[int(preds.labels[i])], "predicted": names[top],
               "confidence": round(float(probs[i, top]), 6), "correct": top == int(preds.labels[i]),
               "out_of_distribution": i in reasons, "ood_reason": reasons.get(i)}
        if leak_free is not None:
            row["near_duplicate_in_training"] = not bool(leak_free[i])
        rows.append(row)
    return rows


def _with_unreadable(note: str | None, preds: SplitPredictions, index, split: str) -> str | None:
    """``note`` (written when the images were listed, before any was read) made to agree with the
    ``n`` reported: how many were unreadable and left out, and which classes lost every image."""
    if not preds.failures:
        return note
    listed, n = len(index.split(split)), len(preds.samples)
    kept = {s.label for s in preds.samples}
    lost = [c for i, c in enumerate(index.class_names) if i not in kept and any(s.label == i for s in index.split(split))]
    among = f", among them every image of class {', '.join(repr(c) for c in lost)}" if lost else ""
    whole = f"scoring all {listed} images"
    if note and whole in note:
        return note.replace(whole, f"scoring the {n} readable of its {listed} images") + f" ({len(preds.failures)} unreadable, left out{among})"
    text = f"{len(preds.failures)} of the {listed} images are unreadable and left out, n={n}{among}"
    return f"{note}; {text}" if note else text


def evaluate_checkpoint(
    checkpoint: str | Path,
    data: DataConfig | str | Path,
    split: str = "test",
    *,
    preset: str | None = None,
    batch_size: int = 64,
    tta: bool = False,
    leak_threshold: int | None = None,
    all_splits: bool = False,
    n_boot: int = 1000,
    report: str | Path | None = None,
    json_out: str | Path | None = None,
    explain_method: str = "gradcam",
    cache_dir: str | None = None,
    seed: int = 0,
    data_options: dict | None = None,
) -> dict:
    """Evaluate ``checkpoint`` on ``split`` of ``data`` and return a JSON-ready dict.

    Args:
        checkpoint: a brainmri ``.safetensors`` checkpoint.
        data: dataset root (or a full :class:`DataConfig`).
        split: ``test`` | ``val`` | ``train`` (aliases ``testing``, ``validation``...).
        preset: task preset if the checkpoint has none (tumor4 | tumor2 | alzheimer4).
        tta: also predict with test-time augmentation and report the difference.
        leak_threshold: pHash distance for the near-duplicate check (default: the audit's;
            negative disables it). Only for the test split.
        all_splits: also compute the train / validation / test table (seed 000's).
        n_boot: bootstrap resamples for the 95 % intervals.
        report, json_out: write the HTML report / the JSON here.
        data_options: DataConfig fields for reading ``data`` (a labels CSV's column and label
            names: ``csv_path_column``, ``csv_label_column``, ``csv_label_names``...).

    Returns:
        ``n``, ``class_names``, ``accuracy``, ``macro_f1``, ``ece``, ``ece_before``,
        ``temperature``, ``confusion_matrix`` (rows = true), ``per_class``, ``ci``, ``leak_free``
        (same numbers on the leak-free subset, or ``None``), ``leak``, ``tta``, ``splits``,
        ``report_text``, ``out_of_distribution`` (images predict's guard would refuse, scored
        anyway), ``predictions`` (one row per image: path, true, predicted, confidence...),
        ``disclaimer`` and more.
    """
    from brainmri.checkpoint import load_checkpoint

    started = time.time()
    split_name = SPLIT_NAMES.get(str(split).lower())
    if split_name is None:
        raise ConfigError(f"--split {split!r} is not valid; choose one of: train, val, test")
    check_options(batch_size, n_boot, leak_threshold, explain_method)
    model, meta = load_checkpoint(checkpoint)
    cal = meta.calibration or {}
    temperature = meta.temperature
    t_missing = "temperature" not in cal or (temperature == 1.0 and not {"fitted_on", "ece_before", "ece_after"} & set(cal))
    if t_missing:
        log.warning("%s: no fitted temperature in the checkpoint (T = 1): probabilities are uncalibrated", checkpoint)
    cfg = apply_data_options(data_config_for(meta, data, checkpoint, preset), data_options)
    index, split_note = _load_index(meta, data, cfg, checkpoint)
    names = list(meta.class_names)
    if list(index.class_names) != names:
        raise DatasetError(f"{cfg.root}: dataset classes {index.class_names} do not match the checkpoint's {names}")

    preds = predict_split(model, meta, index, split_name, batch_size, tta, cache_dir)
    split_note = _with_unreadable(split_note, preds, index, split_name)
    over = present_classes(preds.labels, len(names))
    result: dict = {
        "checkpoint": str(checkpoint),
        "model": meta.model.name,
        "task": meta.task,
        "data": str(cfg.root),
        "split": split_name,
        "class_names": names,
        "temperature": temperature,
        "temperature_missing": bool(t_missing),
        "calibration_stored": meta.calibration,
        "preprocess": {"image_size": meta.preprocess.image_size, "crop": meta.preprocess.crop, "in_chans": meta.preprocess.in_chans},
        "unreadable": [f"{p}: {r}" for p, r in preds.failures],
        "split_note": split_note,
    }
    result["top_label"] = cal.get("top_label")
    result.update(summarize(preds.labels, preds.logits, names, cal, n_boot, seed, over))
    result["report_text"] = classification_report_text(result)

    result["leak"], result["leak_free"], mask = None, None, None
    result["leak_note"] = None
    leak_wanted = split_name == "test" and (leak_threshold is None or leak_threshold >= 0)
    if leak_wanted and not index.split("train"):
        inside = inside_training_root(meta, cfg.root, checkpoint)
        result["leak_note"] = (
            f"WARNING: {cfg.root} lies inside {inside}, the folder this model was trained from (data.root), and is not its test "
            "split: these are (mostly) its own training or validation images, so this is no test result" if inside else
            f"leakage: not checked: {cfg.root} has no training split, and the model's own training data is not known here")
    if leak_wanted and index.split("train"):
        from brainmri.data.audit import DEFAULT_THRESHOLD

        thr = DEFAULT_THRESHOLD if leak_threshold is None else int(leak_threshold)
        try:
            mask, result["leak"] = leak_mask(index, preds, thr)
        except Exception as exc:  # noqa: BLE001 - the leak check is a bonus; never lose the metrics
            log.warning("leak check failed: %s", exc)
            result["leak"] = {"checked": False, "error": f"{type(exc).__name__}: {exc}"}
        if mask is not None and (~mask).any() and mask.any():
            result["leak_free"] = _short(summarize(preds.labels[mask], preds.logits[mask], names, cal, n_boot, seed, over))

    result["tta"] = None
    if preds.tta_logits is not None:
        t_m = summarize(preds.labels, preds.tta_logits, names, cal, n_boot, seed, over)
        result["tta"] = {**_short(t_m), "delta_accuracy": t_m["accuracy"] - result["accuracy"], "delta_macro_f1": t_m["macro_f1"] - result["macro_f1"],
                         "views": ["identity", "hflip", "shift +4%", "shift -4%"]}

    ood = ood_screen(preds, meta, index.arrays)
    result["out_of_distribution"] = {
        "n": len(ood), "of": len(preds.samples),
        "examples": [f"{relative_name(preds.samples[i], cfg.root)}: {reason}" for i, reason in ood[:20]],
        "note": (f"{len(ood)} of the {len(preds.samples)} scored images are out of distribution by predict's guard (predict and the "
                 "service would not label them); they are scored anyway, as the dataset labels them") if ood else None,
    }
    result["predictions"] = per_image_rows(preds, names, cal, cfg.root, ood, mask)
    result["splits"] = {split_name: _row(result)}
    extra_preds = {}
    if all_splits:
        for other in ("train", "val", "test"):
            if other == split_name or not index.split(other):
                continue
            extra_preds[other] = predict_split(model, meta, index, other, batch_size, False, cache_dir)
            m = classification_metrics(extra_preds[other].labels, calibrated_probs(extra_preds[other].logits, cal), names)
            result["splits"][other] = _row(m)
    result["splits"] = {k: result["splits"][k] for k in ("train", "val", "test") if k in result["splits"]}
    result["seconds"] = round(time.time() - started, 2)
    result["disclaimer"] = brainmri.DISCLAIMER
    if report:
        from brainmri.evaluation.report import build_report

        build_report(result, preds, model, meta, Path(report), checkpoint=Path(checkpoint), leak_free_mask=mask, explain_method=explain_method, seed=seed,
                     files=[row["path"] for row in result["predictions"]])
        result["report"] = str(report)
    if json_out:
        write_json(result, json_out)
    return result


def _row(m: dict) -> dict:
    """Seed 000's table row: accuracy, loss, (macro) precision and recall."""
    return {"n": m["n"], "accuracy": m["accuracy"], "loss": m["loss"], "precision": m["precision"], "recall": m["recall"], "macro_f1": m["macro_f1"]}
