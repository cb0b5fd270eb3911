"""Training on PyTorch Lightning: two-phase fine-tuning, checkpoints, resume, DDP."""
from brainmri.training.train import TrainResult, run_training

__all__ = ["TrainResult", "run_training"]
