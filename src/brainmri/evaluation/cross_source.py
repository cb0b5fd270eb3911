"""Cross-source evaluation of tumor presence: does a tumor-type model still say *tumor* on scans
from a source it never saw, and *notumor* on healthy scans from elsewhere?

A multi-class tumor model (any class set containing ``notumor``) is collapsed to tumor vs
notumor: a scan is "called a tumor" when its arg-max class is not ``notumor``. The dataset is
read with the ``tumor2`` preset (``yes``/``no``, tumor types, ``notumor``), or with every image
assumed to carry one label (``assume_label``: e.g. a healthy-only set such as the Alzheimer
slices).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

import brainmri
from brainmri.config import DataConfig
from brainmri.errors import ConfigError


def _wilson(k: int, n: int, z: float = 1.96) -> list[float]:
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
    return {"n": n, "count": k, "rate": (k / n) if n else None, "ci95": _wilson(k, n)}


def evaluate_tumor_presence(checkpoint: str | Path, root: str | Path, assume_label: str | None = None, cache_dir: str | None = "auto", batch_size: int = 64) -> dict:
    """Tumor-vs-notumor rates of ``checkpoint`` on every image under ``root``.

    Args:
        checkpoint: a brainmri checkpoint whose classes include ``notumor``.
        root: dataset folder (class folders such as ``yes/ no/``, or tumor-type folders).
        assume_label: ``tumor`` or ``notumor`` to treat every image as that label (folders ignored).

    Returns:
        ``tumor_called_tumor`` (sensitivity) and ``notumor_called_notumor`` (specificity), each
        with ``n``, ``count``, ``rate`` and a Wilson 95% interval; ``predicted`` (counts per
        predicted class, per true label); ``auc`` of P(tumor) when both labels are present.
    """
    from brainmri.checkpoint import load_checkpoint
    from brainmri.data.datasets import load_dataset
    from brainmri.data.torchdata import PreparedImages
    from brainmri.evaluation.evaluate import predict_logits
    from brainmri.evaluation.metrics import roc_auc
    from brainmri.data.cache import resolve_cache_dir

    if assume_label not in (None, "tumor", "notumor"):
        raise ConfigError(f"assume_label={assume_label!r} is not valid; choose tumor or notumor")
    model, meta = load_checkpoint(checkpoint)
    names = list(meta.class_names)
    if "notumor" not in names:
        raise ConfigError(f"{checkpoint}: tumor-presence evaluation needs a model with a 'notumor' class (has {names})")
    cfg = DataConfig(root=str(root), split="stratified", val_ratio=0.0, test_ratio=0.0, preset=None if assume_label else "tumor2")
    index = load_dataset(cfg)
    samples = index.samples
    if assume_label:
        truth = np.full(len(samples), assume_label == "tumor")
    else:
        truth = np.array([index.class_names[s.label] == "tumor" for s in samples])
    prepared = PreparedImages(samples, meta.preprocess, resolve_cache_dir(cache_dir), index.arrays)
    keep = {s.path + f"#{s.index}" for s in prepared.samples}
    truth = np.array([t for s, t in zip(samples, truth) if s.path + f"#{s.index}" in keep], dtype=bool)
    with torch.inference_mode():
        logits = predict_logits(model, meta, prepared.images, batch_size)
    probs = torch.softmax(torch.from_numpy(logits) / meta.temperature, 1).numpy()
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
        "unreadable": [f"{p}: {r}" for p, r in prepared.failures],
        "disclaimer": brainmri.DISCLAIMER,
    }
    trained = [e["source"] for e in (meta.data or {}).get("extra_train") or [] if _same_path(e["source"], root)]
    if trained:
        result["warning"] = f"{checkpoint} was trained on {trained[0]} (data.extra_train): this is not a cross-source test"
    if truth.any() and (~truth).any():
        result["auc"] = roc_auc(truth, p_tumor)
        result["accuracy"] = float((called_tumor == truth).mean())
    return result


def _same_path(a: str | Path, b: str | Path) -> bool:
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return str(a) == str(b)


def summary_lines(r: dict) -> list[str]:
    lines = [f"WARNING: {r['warning']}"] if r.get("warning") else []
    lines += [f"tumor presence on {r['data']} (n={r['n']}{', all assumed ' + r['assume_label'] if r['assume_label'] else ''})"]
    for key, text in (("tumor_called_tumor", "tumor scans called a tumor class"), ("notumor_called_notumor", "healthy scans called notumor")):
        v = r.get(key)
        if v:
            lines.append(f"  {text}: {v['count']}/{v['n']} = {100 * v['rate']:.1f}% (95% CI {100 * v['ci95'][0]:.1f}-{100 * v['ci95'][1]:.1f})")
    if r.get("auc") is not None:
        lines.append(f"  ROC-AUC of P(tumor): {r['auc']:.4f}; accuracy {100 * r['accuracy']:.1f}%")
    for label, counts in r["predicted"].items():
        lines.append(f"  true {label}: predicted " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return lines
