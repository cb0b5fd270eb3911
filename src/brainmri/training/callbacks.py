"""Small callbacks with a testable decision and a ``state_dict`` so a resumed run continues
exactly: the best safetensors checkpoint and the per-epoch metrics CSV."""
from __future__ import annotations

import csv
import math
import time
from pathlib import Path
from typing import Callable

import lightning.pytorch as pl

from brainmri.checkpoint import CheckpointMeta, save_checkpoint

CSV_COLUMNS = ["epoch", "phase", "train_loss", "train_acc", "val_loss", "val_acc", "val_precision", "val_recall", "val_macro_f1", "lr", "seconds"]


def _metric(trainer: pl.Trainer, name: str) -> float:
    v = trainer.callback_metrics.get(name)
    return float(v) if v is not None else float("nan")


def is_improvement(value: float, best: float | None, mode: str) -> bool:
    if math.isnan(value):
        return False
    if best is None:
        return True
    return value < best if mode == "min" else value > best


class BestCheckpoint(pl.Callback):
    """Write ``path`` (safetensors + metadata, atomically) whenever ``monitor`` improves."""

    def __init__(self, path: Path, monitor: str, make_meta: Callable[[dict], CheckpointMeta]):
        self.path = Path(path)
        self.monitor = monitor
        self.mode = "min" if monitor.endswith("loss") else "max"
        self.make_meta = make_meta
        self.best: float | None = None
        self.best_epoch: int | None = None

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        value = _metric(trainer, self.monitor)
        if not is_improvement(value, self.best, self.mode):
            return
        self.best, self.best_epoch = value, trainer.current_epoch
        if trainer.is_global_zero:
            metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith(("val_", "train_"))}
            metrics["epoch"] = trainer.current_epoch
            save_checkpoint(self.path, pl_module.model, self.make_meta(metrics))

    def state_dict(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch}

    def load_state_dict(self, state: dict) -> None:
        self.best = state.get("best")
        self.best_epoch = state.get("best_epoch")


class MetricsCSV(pl.Callback):
    """One row per epoch in ``metrics.csv`` (seeds 001 / 003 plot these curves)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._t0 = time.time()

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # on_train_start, not on_fit_start: only here has a resumed run's current_epoch been restored
        if not trainer.is_global_zero:
            return
        rows = []
        if self.path.exists():  # resumed: keep the epochs that completed before the crash
            with open(self.path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["epoch"]) < trainer.current_epoch]
        with open(self.path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
            w.writeheader()
            w.writerows(rows)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._t0 = time.time()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        opt = trainer.optimizers[0] if trainer.optimizers else None
        row = {
            "epoch": trainer.current_epoch,
            "phase": getattr(pl_module, "phase", 2),
            "lr": f"{opt.param_groups[-1]['lr'] if pl_module.phase == 2 else opt.param_groups[0]['lr']:.3g}" if opt else "",
            "seconds": f"{time.time() - self._t0:.1f}",
        }
        for k in CSV_COLUMNS[2:9]:
            v = _metric(trainer, k)
            row[k] = "" if math.isnan(v) else f"{v:.5f}"
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, fieldnames=CSV_COLUMNS).writerow(row)
