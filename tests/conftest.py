"""Shared pytest fixtures: small synthetic phantom datasets (never real data) and the real-data
location for tests marked ``realdata``."""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

import brainmri  # noqa: F401  (patches torchvision before anything imports it)
from brainmri.data.synthetic import make_phantom_dataset

REPO_ROOT = Path(__file__).resolve().parents[1]


def real_datasets_dir() -> Path:
    """``$BRAINMRI_DATASETS`` or ``../shared/datasets`` next to the repository."""
    env = os.environ.get("BRAINMRI_DATASETS")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "datasets"


@pytest.fixture(scope="session")
def load_script() -> Callable:
    """``load_script("soup")`` imports ``scripts/soup.py`` as a module (scripts are not a package)."""
    import importlib.util

    def load(name: str):
        spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "scripts" / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod

    return load


@pytest.fixture(scope="session")
def real_datasets() -> Path:
    """Folder with the real datasets; skips the test when it is absent."""
    path = real_datasets_dir()
    if not path.is_dir():
        pytest.skip(f"real datasets not found at {path} (set BRAINMRI_DATASETS)")
    return path


@pytest.fixture(scope="session")
def phantom_split(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``Training/ Testing/`` x glioma/meningioma/notumor/pituitary, 64 px, 16 train + 6 test per
    class. Session-scoped: treat as read-only."""
    root = tmp_path_factory.mktemp("phantom_split")
    return make_phantom_dataset(root, layout="split", n_per_class=16, test_per_class=6, size=64, seed=0)


@pytest.fixture(scope="session")
def phantom_flat(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four class folders, no split, 64 px, 12 images per class. Read-only."""
    root = tmp_path_factory.mktemp("phantom_flat")
    return make_phantom_dataset(root, layout="flat", n_per_class=12, size=64, seed=1)


@pytest.fixture
def make_dataset(tmp_path: Path) -> Callable[..., Path]:
    """Factory for a fresh phantom dataset under ``tmp_path`` (safe to modify):
    ``make_dataset(layout="csv", n_per_class=4, ...)`` takes make_phantom_dataset's arguments."""
    counter = iter(range(1_000_000))

    def _make(layout: str = "split", **kwargs) -> Path:
        kwargs.setdefault("n_per_class", 4)
        kwargs.setdefault("size", 32)
        return make_phantom_dataset(tmp_path / f"ds{next(counter)}_{layout}", layout=layout, **kwargs)

    return _make

@pytest.fixture
def cli(capsys: pytest.CaptureFixture, caplog: pytest.LogCaptureFixture) -> Callable[..., tuple[int, str]]:
    """``cli("predict", ...) -> (exit code, stdout + stderr + log text)``; fails on a traceback."""
    from brainmri.cli.main import main

    def run(*argv: str) -> tuple[int, str]:
        caplog.clear()
        code = main([str(a) for a in argv])
        out = capsys.readouterr()
        text = out.out + out.err + caplog.text
        assert "Traceback" not in text, text
        assert "internal error" not in text, text
        return code, text

    return run
