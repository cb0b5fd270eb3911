"""Fixtures for inference tests: a tiny untrained checkpoint and phantom image files."""
from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

import brainmri  # noqa: F401
from inference_helpers import make_checkpoint, phantom


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.safetensors")


@pytest.fixture(scope="session")
def tiny_clf(tiny_ckpt: Path):
    from brainmri import Classifier

    return Classifier.load(tiny_ckpt)


@pytest.fixture()
def phantom_files(tmp_path: Path) -> dict[str, Path]:
    """A PNG, a JPEG and a nested PNG of phantoms."""
    (tmp_path / "scans" / "nested").mkdir(parents=True)
    files = {
        "png": tmp_path / "scans" / "a.png",
        "jpeg": tmp_path / "scans" / "b.jpg",
        "nested": tmp_path / "scans" / "nested" / "c.png",
    }
    Image.fromarray(phantom(0, seed=1)).save(files["png"])
    Image.fromarray(phantom(1, seed=2)).save(files["jpeg"], quality=92)
    Image.fromarray(phantom(3, seed=3)).save(files["nested"])
    return files
