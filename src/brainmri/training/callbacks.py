"""Small callbacks with a testable decision and a ``state_dict`` so a resumed run continues
exactly: the best safetensors checkpoint and the per-epoch metrics CSV; plus the guards that stop
a diverged run and record (and checkpoint) an interrupted one."""
from __future__ import annotations

import csv
import math
import time
from pathlib import Path
from typing import Callable

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import EMAWeightAveraging, ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException

from brainmri.checkpoint import CheckpointMeta, save_checkpoint
from brainmri.errors import BrainMRIError

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


class ModelEMA(EMAWeightAveraging):
    """Lightning's exponential moving average of the weights (``train.ema_decay``): validation
    runs on the average, so the best checkpoint is chosen by it and :class:`BestCheckpoint` saves
    it; ``lightning/last.ckpt`` carries both the average and the live weights for ``--resume``."""

    def averaged(self, pl_module: pl.LightningModule) -> torch.nn.Module | None:
        """The averaged copy of ``pl_module.model`` (``None`` before training set it up)."""
        avg = getattr(self, "_average_model", None)
        return avg.module.model if avg is not None else None


def weights_to_save(trainer: pl.Trainer, pl_module: pl.LightningModule) -> torch.nn.Module:
    """The model a checkpoint should hold: the weight average when a :class:`ModelEMA` runs."""
    for cb in trainer.callbacks:
        if isinstance(cb, ModelEMA) and cb.averaged(pl_module) is not None:
            return cb.averaged(pl_module)
    return pl_module.model


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
            save_checkpoint(self.path, weights_to_save(trainer, pl_module), self.make_meta(metrics))

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
        self._peak_lr: float | None = None

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
        self._peak_lr = None

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch, batch_idx: int) -> None:
        lr = self._lr(trainer, pl_module)
        if lr is not None:
            self._peak_lr = lr if self._peak_lr is None else max(self._peak_lr, lr)

    @staticmethod
    def _lr(trainer: pl.Trainer, pl_module: pl.LightningModule) -> float | None:
        opt = trainer.optimizers[0] if trainer.optimizers else None
        if opt is None:
            return None
        return opt.param_groups[-1]["lr"] if getattr(pl_module, "phase", 2) == 2 else opt.param_groups[0]["lr"]

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        lr = self._peak_lr  # the largest rate the epoch's steps used (after the last step a cosine run is at 0)
        lr = self._lr(trainer, pl_module) if lr is None else lr
        row = {
            "epoch": trainer.current_epoch,
            "phase": getattr(pl_module, "phase", 2),
            "lr": f"{lr:.3g}" if lr is not None else "",
            "seconds": f"{time.time() - self._t0:.1f}",
        }
        for k in CSV_COLUMNS[2:9]:
            v = _metric(trainer, k)
            row[k] = "" if math.isnan(v) else f"{v:.5f}"
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, fieldnames=CSV_COLUMNS).writerow(row)


class TrainingDiverged(BrainMRIError):
    """The training loss or the weights became NaN / infinite: training stops."""


class TrainingInterrupted(BrainMRIError):
    """SIGINT (Ctrl-C) or SIGTERM stopped training. ``exit_code`` is 130 or 143 (128 + signal);
    the message says what was kept and how to resume (empty on DDP ranks other than 0)."""

    def __init__(self, message: str, signal_name: str, exit_code: int):
        super().__init__(message)
        self.signal_name = signal_name
        self.exit_code = exit_code


def interrupt_signal(exc: BaseException | None) -> str | None:
    """``"SIGINT"`` / ``"SIGTERM"`` when ``exc`` is how Lightning reports that signal, else ``None``."""
    if isinstance(exc, KeyboardInterrupt):
        return "SIGINT"
    if isinstance(exc, SIGTERMException):
        return "SIGTERM"
    return None


class FiniteGuard(pl.Callback):
    """Stop with :class:`TrainingDiverged` as soon as a training loss is NaN / infinite (before its
    backward pass, so the weights stay finite) or the weights are (checked before validation, so a
    NaN model never becomes ``best.safetensors``)."""

    def __init__(self) -> None:
        self._batch = 0

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._batch = 0

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch, batch_idx: int) -> None:
        self._batch = batch_idx + 1

    def on_before_backward(self, trainer: pl.Trainer, pl_module: pl.LightningModule, loss: torch.Tensor) -> None:
        if not bool(torch.isfinite(loss.detach()).all()):
            raise TrainingDiverged(
                f"training diverged: the training loss is {float(loss.detach().float().mean())} in epoch {trainer.current_epoch + 1}, "
                f"batch {self._batch + 1}{_lr_hint(pl_module)}"
            )

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        bad = next((n for n, p in pl_module.named_parameters() if not bool(torch.isfinite(p.detach()).all())), None)
        if bad is not None:
            raise TrainingDiverged(f"training diverged: weight {bad} became NaN / infinite in epoch {trainer.current_epoch + 1}{_lr_hint(pl_module)}")


def _lr_hint(pl_module: pl.LightningModule) -> str:
    cfg = getattr(pl_module, "cfg", None)
    return f" (train.lr={cfg.lr:g}); try a lower learning rate" if cfg is not None else ""


class InterruptRecorder(pl.Callback):
    """Remembers how training stopped early (the exception Lightning saw) and how far it got."""

    def __init__(self) -> None:
        self.exception: BaseException | None = None
        self.completed_epochs = 0
        self.batches_in_epoch = 0

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.completed_epochs = trainer.current_epoch  # a resumed run starts with these done

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.batches_in_epoch = 0

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch, batch_idx: int) -> None:
        self.batches_in_epoch = batch_idx + 1

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.batches_in_epoch = 0  # the epoch is complete (validation included)
        self.completed_epochs = trainer.current_epoch + 1  # Lightning counts it done only after this hook

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self.exception = exception
        self.completed_epochs = max(self.completed_epochs, trainer.current_epoch)  # epochs whose end was reached


class LastCheckpoint(ModelCheckpoint):
    """``lightning/last.ckpt`` after every epoch and, on SIGINT / SIGTERM, also mid-epoch: an
    interrupt in a long first epoch keeps its batches for ``--resume``. Other exceptions (a crash,
    a diverged loss) save nothing: resuming those would repeat them. Multi-process runs save on
    SIGTERM only (Lightning stops every rank at the same step for it; Ctrl-C reaches the ranks at
    different points, and a checkpoint needs all of them)."""

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        kind = interrupt_signal(exception)
        if kind is None or (kind == "SIGINT" and trainer.world_size > 1):
            return
        if trainer.sanity_checking or trainer.global_step == 0 or self._last_global_step_saved == trainer.global_step:
            return  # nothing trained yet, or already saved at this step
        self._save_checkpoint(trainer, self.format_checkpoint_name(self._monitor_candidates(trainer)))
