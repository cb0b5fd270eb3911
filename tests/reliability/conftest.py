"""Fixtures for the reliability and security tests: a tiny checkpoint at 32 px, the bad-input
corpus, and a helper that runs the CLI in-process and checks its output for tracebacks."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

import brainmri  # noqa: F401  (patches torchvision first)

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "inference"))  # dicom_factory
sys.path.insert(0, str(HERE))
from reliability_corpus import Case, make_tiny_checkpoint, write_corpus  # noqa: E402


@pytest.fixture(scope="session")
def ckpt32(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Read-only tiny checkpoint (seed003_cnn, 32 px, untrained)."""
    return make_tiny_checkpoint(tmp_path_factory.mktemp("rel_ckpt") / "tiny32.safetensors")



@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Case]]:
    """Folder holding every corpus file; read-only."""
    folder = tmp_path_factory.mktemp("rel_corpus")
    return folder, write_corpus(folder)
