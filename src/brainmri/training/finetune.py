"""Two-phase fine-tuning (seeds 000 / 001, fastai ``fine_tune``, Lightning ``BaseFinetuning``).

Phase 1 trains the classifier head on a frozen backbone; phase 2 unfreezes the last N backbone
blocks (or all) at a lower learning rate. The phase is a pure function of the epoch, so a resumed
run lands in the right phase with no extra state.

Blocks come from timm's ``group_matcher`` (stem, stages..., head); for models without one, the
top-level children are the blocks.
"""
from __future__ import annotations

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import BaseFinetuning
from torch import nn


def head_parameter_names(model: nn.Module) -> set[str]:
    head = model.get_classifier()
    return {n for n, p in model.named_parameters() if any(p is q for q in head.parameters())}


def backbone_blocks(model: nn.Module) -> list[list[str]]:
    """Parameter names of each backbone block, input side first, head excluded."""
    head = head_parameter_names(model)
    groups: list[list[str]] = []
    if hasattr(model, "group_matcher"):
        from timm.models import group_parameters

        try:
            for names in group_parameters(model, model.group_matcher(coarse=True)).values():
                names = [n for n in names if n not in head]
                if names:
                    groups.append(names)
        except Exception:  # noqa: BLE001 - fall back to top-level children
            groups = []
    if not groups:
        for child_name, child in model.named_children():
            names = [f"{child_name}.{n}" for n, _ in child.named_parameters()]
            names = [n for n in names if n not in head]
            if names:
                groups.append(names)
    return groups


def trainable_names(model: nn.Module, phase: int, unfreeze: str | int) -> set[str]:
    """Names of the parameters that train in ``phase`` (1: head only; 2: head + chosen blocks)."""
    head = head_parameter_names(model)
    if phase == 1:
        return head
    if unfreeze == "all":
        return {n for n, _ in model.named_parameters()}
    blocks = backbone_blocks(model)
    n = int(unfreeze)
    chosen = blocks[len(blocks) - n :] if n > 0 else []
    return head | {name for block in chosen for name in block}


def check_unfreeze(model: nn.Module, unfreeze: str | int, name: str = "") -> None:
    """Refuse an ``unfreeze`` block count the model does not have (it used to wrap around and
    unfreeze fewer blocks than asked, silently)."""
    from brainmri.errors import ConfigError

    if unfreeze == "all":
        return
    n, blocks = int(unfreeze), len(backbone_blocks(model))
    if n > blocks:
        raise ConfigError(f"train.unfreeze={n}: {name or type(model).__name__} has {blocks} backbone blocks; "
                          f"give 0..{blocks} or 'all'")


def set_phase(model: nn.Module, phase: int, unfreeze: str | int) -> None:
    """Set ``requires_grad`` for ``phase``; frozen BatchNorm layers run in eval mode."""
    keep = trainable_names(model, phase, unfreeze)
    for name, p in model.named_parameters():
        p.requires_grad_(name in keep)
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            params = list(module.parameters(recurse=False))
            frozen = params and not any(p.requires_grad for p in params)
            module.train(not frozen and model.training)


class TwoPhaseFinetuning(BaseFinetuning):
    """Freeze the backbone for ``head_epochs`` epochs, then unfreeze ``unfreeze`` blocks."""

    def __init__(self, head_epochs: int, unfreeze: str | int = "all"):
        super().__init__()
        self.head_epochs = head_epochs
        self.unfreeze = unfreeze

    def phase(self, epoch: int) -> int:
        return 1 if epoch < self.head_epochs else 2

    def freeze_before_training(self, pl_module: pl.LightningModule) -> None:
        set_phase(pl_module.model, 1 if self.head_epochs > 0 else 2, self.unfreeze)

    def finetune_function(self, pl_module: pl.LightningModule, epoch: int, optimizer: torch.optim.Optimizer) -> None:
        pl_module.phase = self.phase(epoch)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        pl_module.phase = self.phase(trainer.current_epoch)
        set_phase(pl_module.model, pl_module.phase, self.unfreeze)
