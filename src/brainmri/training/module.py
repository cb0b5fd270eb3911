"""The LightningModule: a classifier, a class-weighted loss and per-epoch metrics."""
from __future__ import annotations

import random

import lightning.pytorch as pl
import numpy as np
import torch
import torch.nn.functional as F
import torchmetrics
from torch import nn

from brainmri.config import TrainConfig
from brainmri.training.finetune import head_parameter_names
from brainmri.training.schedule import two_phase_lr


class ClassifierModule(pl.LightningModule):
    """Wraps ``model`` (timm interface) for training.

    Args:
        model: the network.
        num_classes: outputs.
        train_cfg: optimiser / schedule / loss settings.
        class_weights: per-class loss weights (``None`` for unweighted).
        steps_per_epoch: optimiser steps per epoch (for the per-step schedule).
        healthy_class: index of the healthy class (``notumor``). Training targets equal to
            :data:`~brainmri.preprocess.lesion.PRESENCE` ("some tumor, type unknown": synthetic
            lesions, binary labels) then cost ``-log P(not healthy)``, the tumor-presence objective.
    """

    def __init__(
        self, model: nn.Module, num_classes: int, train_cfg: TrainConfig, class_weights: torch.Tensor | None = None,
        steps_per_epoch: int = 1, healthy_class: int | None = None,
    ):
        super().__init__()
        self.model = model
        self.cfg = train_cfg
        self.num_classes = num_classes
        self.steps_per_epoch = max(1, steps_per_epoch)
        self.phase = 1 if train_cfg.head_epochs > 0 else 2
        self.healthy_class = healthy_class
        self.register_buffer("class_weights", class_weights if class_weights is not None else torch.ones(num_classes), persistent=False)
        kw = {"task": "multiclass", "num_classes": num_classes}
        self.train_acc = torchmetrics.Accuracy(**kw)
        self.val_metrics = torchmetrics.MetricCollection(
            {
                "acc": torchmetrics.Accuracy(**kw),
                "precision": torchmetrics.Precision(average="macro", **kw),
                "recall": torchmetrics.Recall(average="macro", **kw),
                "macro_f1": torchmetrics.F1Score(average="macro", **kw),
            },
            prefix="val_",
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def _to_input(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.cfg.channels_last else x

    def loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Class-weighted cross-entropy over labelled rows; rows labelled ``PRESENCE`` add
        ``-log P(not healthy)`` with the mean weight of the non-healthy classes. The sum is
        divided by the total weight, as ``F.cross_entropy(weight=...)`` does."""
        logits = logits.float()
        known = y >= 0
        w = self.class_weights
        loss = F.cross_entropy(logits[known], y[known], weight=w, label_smoothing=self.cfg.label_smoothing, reduction="sum")
        total = w[y[known]].sum()
        if self.healthy_class is not None and not bool(known.all()):
            logp = torch.log_softmax(logits[~known], 1)
            tumor = [k for k in range(self.num_classes) if k != self.healthy_class]
            w_tumor = w[tumor].mean()
            loss = loss - w_tumor * torch.logsumexp(logp[:, tumor], 1).sum()
            total = total + w_tumor * (~known).sum()
        return loss / total.clamp_min(1e-8)

    def training_step(self, batch, batch_idx):
        x, y = batch
        logits = self(self._to_input(x))
        loss = self.loss(logits, y)
        known = y >= 0
        if bool(known.any()):
            self.train_acc(logits.detach()[known], y[known])
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(y))
        self.log("train_acc", self.train_acc, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(y))
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(self._to_input(x)).float()
        loss = F.cross_entropy(logits, y)
        self.val_metrics.update(logits, y)
        self.log("val_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(y), sync_dist=True)

    def on_validation_epoch_end(self):
        self.log_dict(self.val_metrics.compute(), prog_bar=True, sync_dist=True)
        self.val_metrics.reset()

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # Random states travel with lightning/last.ckpt, so a resumed run draws the same shuffles,
        # augmentations and dropout masks as an uninterrupted one. Plain lists: the checkpoint
        # stays loadable with torch.load(weights_only=True).
        name, keys, pos, has_gauss, gauss = np.random.get_state()
        version, internal, gauss_next = random.getstate()
        checkpoint["rng_states"] = {
            "torch": torch.get_rng_state(),
            "numpy": [name, keys.tolist(), int(pos), int(has_gauss), float(gauss)],
            "python": [version, list(internal), gauss_next],
        }
        if getattr(self, "data_fingerprint", None):  # so --resume can tell the dataset changed since
            checkpoint["brainmri_data"] = {"fingerprint": self.data_fingerprint, "n_images": int(getattr(self, "data_images", 0))}
        if getattr(self, "run_sections", None):  # the model / preprocess config, so --resume can tell config.yaml was edited
            checkpoint["brainmri_config"] = self.run_sections

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        states = checkpoint.get("rng_states")
        if not states:
            return
        torch.set_rng_state(states["torch"])
        name, keys, pos, has_gauss, gauss = states["numpy"]
        np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
        version, internal, gauss_next = states["python"]
        random.setstate((version, tuple(internal), gauss_next))

    def configure_optimizers(self):
        head = head_parameter_names(self.model)
        named = list(self.model.named_parameters())
        groups = [
            {"params": [p for n, p in named if n in head], "name": "head"},
            {"params": [p for n, p in named if n not in head], "name": "backbone"},
        ]
        opt_cls = torch.optim.AdamW if self.cfg.optimizer == "adamw" else torch.optim.Adam
        # L2 (seed 003) is weight decay; base lr 1.0 so the scheduler's lambdas are absolute rates.
        optimizer = opt_cls(groups, lr=1.0, weight_decay=self.cfg.weight_decay)
        if self.cfg.schedule == "plateau":
            for g, lr in zip(optimizer.param_groups, (self.cfg.head_lr if self.cfg.head_epochs else self.cfg.lr, self.cfg.lr)):
                g["lr"] = lr
            sched = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=0.3, patience=2)
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": sched, "monitor": "val_loss", "interval": "epoch"}}
        c = self.cfg
        cosine = c.schedule == "cosine"

        def lam(i):
            return lambda step: two_phase_lr(step, self.steps_per_epoch, c.head_epochs, c.epochs, c.head_lr, c.lr, c.warmup_epochs, cosine)[i]

        sched = torch.optim.lr_scheduler.LambdaLR(optimizer, [lam(0), lam(1)])
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
