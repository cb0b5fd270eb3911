from __future__ import annotations

import pytest

from brainmri.config import RunConfig


@pytest.fixture
def tiny_run_config(phantom_split, tmp_path):
    """A fast run on the shared phantom set: resnet18 at 48 px, no cache, no progress bar."""

    def make(**train) -> RunConfig:
        cfg = RunConfig()
        cfg.data.root = str(phantom_split)
        cfg.data.preset = "tumor4"
        cfg.data.cache_dir = None
        cfg.preprocess.image_size = 48
        cfg.model.name = "resnet18"
        cfg.train.output_dir = str(tmp_path / "runs")
        cfg.train.run_name = "run"
        cfg.train.batch_size = 16
        cfg.train.lr = 3e-3
        cfg.train.epochs = 1
        cfg.train.precision = "32"
        for k, v in train.items():
            setattr(cfg.train, k, v)
        return cfg

    return make


@pytest.fixture
def small(tiny_run_config):
    """The shared phantoms through the small CNN at 32 px: a 1-epoch run takes a few seconds."""

    def make(**train):
        cfg = tiny_run_config(**{"batch_size": 8, **train})
        cfg.model.name = "seed002_cnn"
        cfg.preprocess.image_size = 32
        return cfg

    return make
