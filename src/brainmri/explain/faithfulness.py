"""How faithful is a heat map? Deletion and insertion curves (Petsiuk et al., RISE, 2018).

*Deletion*: blank the most salient pixels first (in steps of 1/``n_steps`` of the image) and
track the explained class's probability; a faithful map makes it collapse fast, so a LOW area
under the curve is good. *Insertion*: start from a blank image and reveal the most salient
pixels first; a HIGH area is good. ``score = insertion - deletion`` ranks methods on one axis.
A random map is the chance level every method should beat.

"Blank" is black (intensity 0 before normalisation), the MRI background.
"""
from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from brainmri.errors import ConfigError
from brainmri.explain.cam import METHODS, cam_batch, normalize_method, prepare_input, resolve_class

RANDOM = "random"


def _curve_auc(values: np.ndarray) -> float:
    """Area under a curve sampled at equally spaced fractions of [0, 1] (trapezoid rule)."""
    v = np.asarray(values, dtype=np.float64)
    return float(((v[1:] + v[:-1]) / 2).mean()) if v.size > 1 else float(v.mean())


@torch.no_grad()
def perturbation_curves(
    model: nn.Module,
    x: torch.Tensor,
    heatmap: np.ndarray,
    target: int,
    baseline: float,
    n_steps: int = 16,
    temperature: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Deletion and insertion curves of one image.

    Args:
        x: (C, S, S) model input.
        heatmap: (S, S) saliency.
        target: explained class.
        baseline: the normalised value of a blank pixel.

    Returns:
        ``(deletion, insertion)``: target probabilities at ``n_steps + 1`` fractions 0..1.
    """
    s = x.shape[-1] * x.shape[-2]
    order = torch.from_numpy(np.argsort(-np.asarray(heatmap, dtype=np.float64).ravel(), kind="stable").copy())
    counts = np.round(np.linspace(0, s, n_steps + 1)).astype(int)
    masks = torch.zeros(n_steps + 1, s, dtype=torch.bool)
    for i, k in enumerate(counts):
        masks[i, order[:k]] = True
    masks = masks.view(n_steps + 1, 1, *x.shape[-2:])
    blank = torch.full_like(x, baseline)
    deleted = torch.where(masks, blank, x)
    inserted = torch.where(masks, x, blank)
    device = next(model.parameters()).device
    batch = torch.cat([deleted, inserted]).to(device)
    probs = torch.softmax(model(batch).float().cpu() / temperature, dim=1)[:, target].numpy()
    return probs[: n_steps + 1], probs[n_steps + 1 :]


def faithfulness_scores(
    model: nn.Module,
    meta,
    images: Sequence,
    methods: Sequence[str] = ("gradcam",),
    target_class: int | str | None = None,
    target_layer: str | None = None,
    n_steps: int = 16,
    include_random: bool = True,
    seed: int = 0,
) -> list[dict]:
    """Mean deletion / insertion AUC per CAM method over ``images`` (gray arrays or inputs).

    Returns:
        One row per method (plus ``random`` as chance level): ``method``, ``deletion_auc``
        (lower is better), ``insertion_auc`` (higher is better), ``score`` (= insertion -
        deletion), ``seconds_per_image`` (time to compute the map), ``n``.
    """
    if int(n_steps) < 1:
        raise ConfigError(f"--steps={n_steps} must be >= 1 (perturbation steps of the faithfulness curves)")
    was_training = model.training
    model.eval()
    cfg = meta.preprocess
    t = float(getattr(meta, "temperature", 1.0) or 1.0)
    baseline = (0.0 - cfg.mean) / cfg.std
    inputs = torch.stack([prepare_input(img, cfg, name=f"image {i}").tensor for i, img in enumerate(images)])
    wanted = resolve_class(target_class, list(meta.class_names))
    with torch.no_grad():
        preds = model(inputs.to(next(model.parameters()).device)).argmax(1).cpu().tolist()
    targets = [p if wanted is None else wanted for p in preds]
    names = [normalize_method(m) for m in methods] + ([RANDOM] if include_random else [])
    rng = np.random.default_rng(seed)
    rows = []
    for name in names:
        start = time.perf_counter()
        if name == RANDOM:
            maps = rng.random((len(inputs), *inputs.shape[-2:])).astype(np.float32)
        else:
            maps, _ = cam_batch(model, inputs, name, targets, target_layer)
        elapsed = time.perf_counter() - start
        dels, ins = [], []
        for x, hm, tgt in zip(inputs, maps, targets):
            d, i = perturbation_curves(model, x, hm, tgt, baseline, n_steps, t)
            dels.append(_curve_auc(d))
            ins.append(_curve_auc(i))
        rows.append({
            "method": name,
            "deletion_auc": float(np.mean(dels)),
            "insertion_auc": float(np.mean(ins)),
            "score": float(np.mean(ins) - np.mean(dels)),
            "seconds_per_image": elapsed / max(1, len(inputs)),
            "n": len(inputs),
        })
    model.train(was_training)
    return rows


def format_table(rows: list[dict]) -> str:
    """Markdown table of :func:`faithfulness_scores` rows, best score first."""
    lines = ["| method | deletion AUC (lower better) | insertion AUC (higher better) | score | s / image |", "|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: -r["score"]):
        lines.append(f"| {r['method']} | {r['deletion_auc']:.3f} | {r['insertion_auc']:.3f} | {r['score']:+.3f} | {r['seconds_per_image']:.3f} |")
    return "\n".join(lines)


ALL_METHODS = tuple(METHODS)
