"""Learning-rate schedule across the two phases, as a per-step function (resume-safe: it depends
only on the global step)."""
from __future__ import annotations

import math


def warmup_cosine(step: int, total: int, warmup: int) -> float:
    """Multiplier in [0, 1]: linear warmup over ``warmup`` steps, then cosine to 0 at ``total``."""
    if total <= 0:
        return 1.0
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def two_phase_lr(step: int, steps_per_epoch: int, head_epochs: int, epochs: int, head_lr: float, lr: float, warmup_epochs: float, cosine: bool) -> tuple[float, float]:
    """(head lr, backbone lr) at ``step``. Phase 1: head at ``head_lr``; phase 2: all at ``lr``."""
    p1 = head_epochs * steps_per_epoch
    warm = int(round(warmup_epochs * steps_per_epoch))
    if step < p1:
        f = warmup_cosine(step, p1, warm) if cosine else 1.0
        return head_lr * f, 0.0
    f = warmup_cosine(step - p1, epochs * steps_per_epoch, warm) if cosine else 1.0
    return lr * f, lr * f
