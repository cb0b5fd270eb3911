"""Fixtures for inference tests: a tiny untrained checkpoint and phantom image files."""
from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

import brainmri  # noqa: F401
from inference_helpers import phantom, tiny_ckpt, tiny_clf  # noqa: F401  (fixtures)


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
