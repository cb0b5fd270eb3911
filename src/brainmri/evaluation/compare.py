"""Train and evaluate several backbones on the same split (seed 004's comparison), one table.

For each model: :func:`brainmri.training.run_training` with the same data, split, seed and
recipe; then :func:`~brainmri.evaluation.evaluate.evaluate_checkpoint` on the test split. The
table has accuracy and macro F1 with 95 % bootstrap intervals, parameter count, training
throughput (images/s) and inference latency (ms per image, batch of one), written as
Markdown + JSON, with a bar chart PNG.
"""
from __future__ import annotations

import copy
import logging
import time
from pathlib import Path

import numpy as np
import torch

from brainmri.config import RunConfig, validate
from brainmri.errors import ConfigError

log = logging.getLogger(__name__)


@torch.inference_mode()
def inference_ms(model: torch.nn.Module, image_size: int, in_chans: int, repeats: int = 10) -> float:
    """Median forward time of one image (batch of one) in milliseconds, after two warm-up runs."""
    model.eval()
    x = torch.zeros(1, in_chans, image_size, image_size, device=next(model.parameters()).device)
    for _ in range(2):
        model(x)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        model(x)
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1000)


def _unique_dir(parent: Path, name: str) -> str:
    candidate, k = name, 1
    while (parent / candidate).exists():
        k += 1
        candidate = f"{name}-{k}"
    return candidate


def compare_models(
    data: str | Path,
    models: list[str],
    out: str | Path = "compare",
    epochs: int = 3,
    image_size: int | None = None,
    base: RunConfig | None = None,
    n_boot: int = 1000,
    progress: bool = False,
) -> list[dict]:
    """Train every model of ``models`` on ``data`` and evaluate each on the test split.

    Args:
        data: dataset root.
        models: model names (zoo or timm).
        out: output folder (runs/, compare.md, compare.json, compare.png).
        epochs: training epochs per model.
        image_size: input size for every model (default: each model's own).
        base: recipe shared by all models (data split, augmentation, optimiser...); default
            :class:`RunConfig`.

    Returns:
        One row per model (also written to ``out``).
    """
    from brainmri.checkpoint import load_checkpoint
    from brainmri.evaluation.evaluate import evaluate_checkpoint
    from brainmri.models import default_image_size
    from brainmri.training import run_training

    if not models:
        raise ConfigError("--models needs at least one model name")
    if not isinstance(n_boot, int) or n_boot < 1:  # before any training, not after it
        raise ConfigError(f"--bootstrap {n_boot} is not valid; it must be at least 1 (bootstrap resamples for the 95% intervals)")
    out = Path(out)
    runs = out / "runs"
    created = [d for d in (out, runs) if not d.exists()]
    rows = []
    try:
        for name in models:
            cfg = copy.deepcopy(base) if base is not None else RunConfig()
            cfg.data.root = str(data)
            cfg.model.name = name
            cfg.preprocess.image_size = int(image_size or default_image_size(name))
            cfg.train.epochs = int(epochs)
            cfg.train.output_dir = str(runs)
            cfg.train.run_name = _unique_dir(runs, name)
            validate(cfg)
            log.info("compare: training %s (%d px, %d epochs)", name, cfg.preprocess.image_size, epochs)
            trained = run_training(cfg, progress=progress)
            summary = trained.metrics or {}
            ev = evaluate_checkpoint(trained.checkpoint, copy.deepcopy(cfg.data), split="test", leak_threshold=-1, n_boot=n_boot)
            model, meta = load_checkpoint(trained.checkpoint)
            seconds = float(summary.get("seconds") or 0.0)
            seen = float(summary.get("train_images") or 0) * float(summary.get("epochs_run") or epochs)
            rows.append({
                "model": name,
                "image_size": cfg.preprocess.image_size,
                "epochs": epochs,
                "n_test": ev["n"],
                "accuracy": ev["accuracy"],
                "accuracy_ci": ev["ci"]["accuracy"],
                "macro_f1": ev["macro_f1"],
                "macro_f1_ci": ev["ci"]["macro_f1"],
                "ece": ev["ece"],
                "params": int(sum(p.numel() for p in model.parameters())),
                "train_images_per_s": seen / seconds if seconds > 0 else None,
                "inference_ms": inference_ms(model, meta.preprocess.image_size, meta.preprocess.in_chans),
                "checkpoint": str(trained.checkpoint),
            })
    except BaseException:
        for d in reversed(created):  # a comparison that failed before any run leaves no empty folders behind
            try:
                d.rmdir()
            except OSError:
                pass
        raise
    write_tables(rows, data, out)
    return rows


def write_tables(rows: list[dict], data: str | Path, out: str | Path) -> None:
    """``out/compare.json``, ``compare.md`` and ``compare.png`` for the finished ``rows``."""
    from brainmri.evaluation.plots import comparison_png
    from brainmri.outputs import MARKDOWN_MARK, write_json, write_output

    out = Path(out)
    write_json({"rows": rows, "data": str(data)}, out / "compare.json")
    write_output(out / "compare.md", f"{MARKDOWN_MARK}\n{markdown_table(rows)}\n".encode())
    write_output(out / "compare.png", comparison_png(rows))


def markdown_table(rows: list[dict]) -> str:
    """The comparison as a Markdown table, best macro F1 first."""

    def ci(v: float, c: list) -> str:
        return f"{100 * v:.1f}% [{100 * c[0]:.1f}, {100 * c[1]:.1f}]"

    lines = [
        "| model | size | test n | accuracy (95% CI) | macro F1 (95% CI) | parameters | train img/s | inference ms/img |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: -r["macro_f1"]):
        ips = f"{r['train_images_per_s']:.1f}" if r.get("train_images_per_s") else "n/a"
        lines.append(f"| {r['model']} | {r['image_size']} | {r.get('n_test', 'n/a')} | {ci(r['accuracy'], r['accuracy_ci'])} | {ci(r['macro_f1'], r['macro_f1_ci'])} | "
                     f"{r['params'] / 1e6:.2f} M | {ips} | {r['inference_ms']:.1f} |")
    small = min((r.get("n_test") or 0 for r in rows), default=0)
    if rows and small < 100:
        lines.append(f"\nOnly {small} test images: the intervals are wide, and a difference between models inside them is noise.")
    return "\n".join(lines)
