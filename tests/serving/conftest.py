"""Fixtures for serving tests (helpers shared with tests/inference)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

import brainmri  # noqa: F401

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "inference"))
from inference_helpers import phantom, tiny_ckpt, tiny_clf  # noqa: E402, F401  (fixtures)


@pytest.fixture()
def phantom_png(tmp_path: Path) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(phantom(0, size=80, seed=5)).save(buf, format="PNG")
    return buf.getvalue()
