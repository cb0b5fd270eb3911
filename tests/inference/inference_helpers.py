"""Test helpers shared by tests/inference and tests/serving: a tiny untrained checkpoint and
phantom images (synthetic, never real data). Both conftests import the fixtures below."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import brainmri  # noqa: F401
from brainmri.checkpoint import CheckpointMeta, save_checkpoint
from brainmri.config import ModelConfig, PreprocessConfig
from brainmri.data.synthetic import TUMOR4, make_phantom
from brainmri.models import create_model


def make_checkpoint(path: Path, name: str = "seed003_cnn", size: int = 64, temperature: float = 1.0, ood: dict | None = None, seed: int = 0) -> Path:
    """Save a randomly initialised (untrained) tumor4 model as a brainmri checkpoint."""
    torch.manual_seed(seed)
    meta = CheckpointMeta(
        model=ModelConfig(name=name), class_names=list(TUMOR4), preprocess=PreprocessConfig(image_size=size),
        task="tumor4", calibration={"temperature": temperature}, ood=ood, metrics={"test_macro_f1": 0.5},
    )
    return save_checkpoint(path, create_model(name, num_classes=4, in_chans=1, image_size=size), meta)


def phantom(label: int = 0, size: int = 80, seed: int = 0) -> np.ndarray:
    return make_phantom(label, size, np.random.default_rng(seed), class_name=TUMOR4[label])


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.safetensors")


@pytest.fixture(scope="session")
def tiny_clf(tiny_ckpt: Path):
    from brainmri import Classifier

    return Classifier.load(tiny_ckpt)
