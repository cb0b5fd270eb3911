"""Evaluation figures, each returned as PNG bytes (matplotlib, Agg backend, no display).

Confusion matrix (counts and row-normalised), one-vs-rest ROC curves, reliability diagram,
training curves from a run's ``metrics.csv``, image galleries (errors, ten predictions,
explanations) and the model-comparison bar chart.
"""
from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

DPI = 100


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    from brainmri.outputs import PNG_METADATA

    plt = _plt()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight", metadata=PNG_METADATA)
    plt.close(fig)
    return buf.getvalue()


def confusion_matrix_png(cm: Sequence[Sequence[int]], class_names: Sequence[str]) -> bytes:
    """Counts (left) and row-normalised recall per cell (right); rows = true class."""
    plt = _plt()
    cm = np.asarray(cm, dtype=np.float64)
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    k = len(class_names)
    side = max(3.5, 0.9 * k + 1.5)
    fig, axes = plt.subplots(1, 2, figsize=(2 * side + 1, side))
    for ax, data, title, fmt in ((axes[0], cm, "counts", "{:.0f}"), (axes[1], norm, "row-normalised (recall)", "{:.2f}")):
        ax.imshow(data, cmap="Blues", vmin=0, vmax=data.max() if data.max() > 0 else 1)
        ax.set_xticks(range(k), class_names, rotation=45, ha="right")
        ax.set_yticks(range(k), class_names)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(title)
        top = data.max() if data.max() > 0 else 1
        for i in range(k):
            for j in range(k):
                ax.text(j, i, fmt.format(data[i, j]), ha="center", va="center", color="white" if data[i, j] > 0.6 * top else "black", fontsize=9)
    fig.tight_layout()
    return _png(fig)


def roc_png(y_true, y_prob, class_names: Sequence[str]) -> bytes:
    """One-vs-rest ROC curve per class, with its AUC in the legend."""
    from brainmri.evaluation.metrics import roc_auc, roc_curve

    plt = _plt()
    y = np.asarray(y_true)
    p = np.asarray(y_prob)
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for c, name in enumerate(class_names):
        auc = roc_auc(y == c, p[:, c])
        if auc is None:
            continue
        fpr, tpr, _ = roc_curve(y == c, p[:, c])
        ax.plot(fpr, tpr, lw=1.8, label=f"{name} (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], "k--", lw=0.8, label="chance")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title("ROC, one class vs the rest")
    ax.legend(loc="lower right", fontsize=8)
    return _png(fig)


def reliability_png(probs_before, probs_after, labels, n_bins: int = 15, temperature: float = 1.0, top_label: bool = False) -> bytes:
    """Reliability diagram: accuracy vs confidence per bin, before and after calibration
    (temperature scaling, then top-label scaling when ``top_label``)."""
    from brainmri.evaluation.calibration import expected_calibration_error, reliability_bins

    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.plot([0, 1], [0, 1], "k--", lw=0.8, label="perfect calibration")
    for probs, name, style in ((probs_before, "T = 1", "o-"), (probs_after, f"T = {temperature:.2f}" + (" + top-label" if top_label else ""), "s-")):
        if probs is None:
            continue
        b = reliability_bins(probs, labels, n_bins)
        used = b["count"] > 0
        ece = expected_calibration_error(probs, labels, n_bins)
        ax.plot(b["confidence"][used], b["accuracy"][used], style, ms=4, label=f"{name}: ECE {ece:.3f}")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("confidence (top-1 probability)")
    ax.set_ylabel("accuracy")
    ax.set_title("reliability diagram")
    ax.legend(loc="upper left", fontsize=8)
    return _png(fig)


def read_metrics_csv(path: str | Path) -> list[dict[str, float]]:
    """Rows of a run's ``metrics.csv`` with numeric cells as floats (blank cells omitted)."""
    rows = []
    with open(path, newline="") as f:
        for raw in csv.DictReader(f):
            row = {}
            for k, v in raw.items():
                try:
                    row[k] = float(v)
                except (TypeError, ValueError):
                    continue
            rows.append(row)
    return rows


def training_curves_png(metrics_csv: str | Path) -> bytes | None:
    """Loss and accuracy per epoch (train vs validation), or ``None`` if the file has no epochs."""
    rows = read_metrics_csv(metrics_csv)
    if not rows:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, metric in zip(axes, ("loss", "acc")):
        for split, style in (("train", "o-"), ("val", "s-")):
            pts = [(r["epoch"], r[f"{split}_{metric}"]) for r in rows if "epoch" in r and f"{split}_{metric}" in r]
            if pts:
                ax.plot(*zip(*pts), style, ms=3, label=split)
        if metric == "acc":
            pts = [(r["epoch"], r["val_macro_f1"]) for r in rows if "val_macro_f1" in r]
            if pts:
                ax.plot(*zip(*pts), "^--", ms=3, label="val macro F1")
        ax.set_xlabel("epoch")
        ax.set_title("loss" if metric == "loss" else "accuracy")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return _png(fig)


def image_grid_png(images: Sequence[np.ndarray], titles: Sequence[str], colors: Sequence[str] | None = None, ncols: int = 5, cell: float = 2.2) -> bytes:
    """A grid of gray (H, W) or RGB (H, W, 3) images with a title under each."""
    plt = _plt()
    n = max(1, len(images))
    ncols = min(ncols, n)
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(cell * ncols, (cell + 0.45) * nrows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for i, (img, title) in enumerate(zip(images, titles)):
        ax = axes.ravel()[i]
        ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=255 if img.dtype == np.uint8 else 1)
        ax.set_title(title, fontsize=8, color=(colors[i] if colors else "black"))
    fig.tight_layout()
    return _png(fig)


def explanation_png(original: np.ndarray, heatmap: np.ndarray, overlay: np.ndarray, title: str = "") -> bytes:
    """One row: original, heat map, overlay (the layout of seed 000's Grad-CAM table)."""
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(9, 3.3))
    axes[0].imshow(original, cmap="gray", vmin=0, vmax=255)
    axes[0].set_title("original", fontsize=9)
    im = axes[1].imshow(heatmap, cmap="jet", vmin=0, vmax=1)
    axes[1].set_title("heat map", fontsize=9)
    fig.colorbar(im, ax=axes[1], fraction=0.046, pad=0.04)
    axes[2].imshow(overlay)
    axes[2].set_title("overlay", fontsize=9)
    for ax in axes:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _png(fig)


def comparison_png(rows: Sequence[dict]) -> bytes:
    """Bars of accuracy and macro F1 per model, with 95 % bootstrap intervals as error bars."""
    plt = _plt()
    names = [r["model"] for r in rows]
    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(max(5, 1.3 * len(rows) + 2), 4))
    for offset, key, label in ((-0.2, "accuracy", "accuracy"), (0.2, "macro_f1", "macro F1")):
        vals = np.array([r[key] for r in rows], dtype=float)
        ci = np.array([r.get(f"{key}_ci") or (v, v) for r, v in zip(rows, vals)], dtype=float)
        err = np.vstack([vals - ci[:, 0], ci[:, 1] - vals]).clip(min=0)
        ax.bar(x + offset, vals, 0.4, yerr=err, capsize=3, label=label)
    ax.set_xticks(x, names, rotation=20, ha="right")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("score (95 % CI)")
    ax.set_title("model comparison")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return _png(fig)
