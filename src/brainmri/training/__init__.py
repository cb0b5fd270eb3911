"""Training on PyTorch Lightning: two-phase fine-tuning, checkpoints, resume, DDP.

``run_training`` is imported on first use, so the light helpers (``brainmri.training.rundir``,
``brainmri.training.preflight``) that ``brainmri train --dry-run`` needs do not import Lightning.
"""
from __future__ import annotations

__all__ = ["TrainResult", "run_training"]


def __getattr__(name: str):
    if name in __all__:
        from brainmri.training import train

        return getattr(train, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
