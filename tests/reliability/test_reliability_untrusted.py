"""Nothing gets in (issue #7): a checkpoint holding a malicious pickle is refused without running
it, wherever a checkpoint or weights file is accepted."""
from __future__ import annotations

import builtins
from pathlib import Path

import pytest
import torch

from brainmri import Classifier
from brainmri.errors import CheckpointError
from reliability_corpus import write_valid_pngs


class Payload:
    """Unpickling this object calls ``open(marker, "w")``: the marker file appears if a loader
    ever runs the pickle."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (builtins.open, (self.marker, "w"))


@pytest.fixture(params=["evil.pt", "evil.ckpt", "evil.safetensors", "evil.pth"])
def evil(request, tmp_path) -> tuple[Path, Path]:
    """(a pickle checkpoint that creates ``marker`` when unpickled, marker path)."""
    marker = tmp_path / "PWNED"
    path = tmp_path / request.param
    torch.save({"state_dict": {"fc.weight": torch.zeros(2, 2)}, "payload": Payload(marker)}, path)
    assert not marker.exists()
    return path, marker


def test_the_payload_really_runs_when_unpickled(tmp_path) -> None:
    """Guard against a test that passes by construction: a plain torch.load executes it."""
    marker = tmp_path / "PWNED"
    path = tmp_path / "evil.pt"
    torch.save({"payload": Payload(marker)}, path)
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_classifier_load_refuses(evil) -> None:
    path, marker = evil
    with pytest.raises(CheckpointError, match=rf"{path.name}.*(pickle|not a valid safetensors)"):
        Classifier.load(path)
    assert not marker.exists()


@pytest.mark.parametrize("command", ["predict", "evaluate", "info", "explain", "export", "serve"])
def test_cli_refuses(command: str, evil, tmp_path, cli, monkeypatch, phantom_flat) -> None:
    path, marker = evil
    [image] = write_valid_pngs(tmp_path / "imgs", n=1, size=48)
    import uvicorn

    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: pytest.fail("serve started with a malicious checkpoint"))
    monkeypatch.setattr(uvicorn.Server, "run", lambda *a, **k: pytest.fail("serve started with a malicious checkpoint"))
    argv = {
        "predict": ["predict", image, "--checkpoint", path],
        "evaluate": ["evaluate", path, "--data", phantom_flat],
        "info": ["info", path],
        "explain": ["explain", path, image, "--out", tmp_path / "cams"],
        "export": ["export", path, "--out", tmp_path / "m.onnx"],
        "serve": ["serve", "--checkpoint", path, "--backend", "torch"],
    }[command]
    code, text = cli(*argv)
    assert code == 2, text
    assert path.name in text and ("pickle" in text or "not a valid safetensors" in text), text
    assert not marker.exists()


def test_pretrained_weights_refuse_a_malicious_pickle(evil, tmp_path, cli) -> None:
    from brainmri.data.synthetic import make_phantom_dataset

    path, marker = evil
    data = make_phantom_dataset(tmp_path / "ds", layout="split", n_per_class=3, test_per_class=2, size=32)
    code, text = cli("-q", "train", "--data", data, "--model", "resnet18", "--pretrained-weights", path, "--image-size", "32",
                     "--epochs", "1", "--cache-dir", "none", "--output-dir", tmp_path / "runs", "--run-name", "r")
    assert code == 2, text
    assert path.name in text
    assert not marker.exists()
    assert not (tmp_path / "runs" / "r" / "best.safetensors").exists()


def test_npz_with_pickled_objects_is_refused(tmp_path, cli) -> None:
    import numpy as np

    marker = tmp_path / "PWNED"
    arr = np.empty(4, dtype=object)
    arr[:] = [Payload(marker)] * 4
    np.savez(tmp_path / "data.npz", images=arr, labels=np.arange(4))
    code, text = cli("data", "audit", tmp_path / "data.npz", "--no-cache")
    assert code == 2 and "pickled" in text, text
    assert not marker.exists()


def test_prepared_image_cache_never_unpickles(tmp_path) -> None:
    import numpy as np

    from brainmri.config import PreprocessConfig
    from brainmri.data.cache import ImageCache

    marker = tmp_path / "PWNED"
    [image] = write_valid_pngs(tmp_path / "imgs", n=1, size=32)
    cache = ImageCache(tmp_path / "cache", PreprocessConfig(image_size=32))
    entry = cache._entry(cache.key(image))
    entry.parent.mkdir(parents=True, exist_ok=True)
    arr = np.empty(1, dtype=object)
    arr[0] = Payload(marker)
    np.save(entry, arr, allow_pickle=True)
    assert cache.get(image) is None  # refused as corrupt, not loaded
    assert not marker.exists() and not entry.exists()
