"""Checkpoints: round trip, metadata, refusal of files that do not fit."""
from __future__ import annotations

import pytest
import torch

from brainmri.checkpoint import CheckpointMeta, load_checkpoint, read_checkpoint, save_checkpoint
from brainmri.config import ModelConfig, PreprocessConfig
from brainmri.errors import CheckpointError
from brainmri.models import create_model

CLASSES = ["glioma", "meningioma", "notumor", "pituitary"]


def _save(tmp_path, name="resnet18", classes=CLASSES, **kw):
    model = create_model(name, len(classes)).eval()
    meta = CheckpointMeta(model=ModelConfig(name=name), class_names=list(classes), preprocess=PreprocessConfig(image_size=64), task="tumor4")
    return model, save_checkpoint(tmp_path / f"{name}-{len(classes)}.safetensors", model, meta, **kw)


def test_roundtrip_gives_identical_outputs_and_metadata(tmp_path):
    model, path = _save(tmp_path)
    loaded, meta = load_checkpoint(path)
    x = torch.randn(2, 1, 64, 64)
    with torch.inference_mode():
        assert torch.equal(model(x), loaded(x))
    assert meta.class_names == CLASSES and meta.preprocess.image_size == 64 and meta.versions["torch"]


def test_fp16_storage_halves_the_file_and_stays_close(tmp_path):
    model, full = _save(tmp_path)
    half = save_checkpoint(tmp_path / "half.safetensors", model, read_checkpoint(full)[1], dtype=torch.float16)
    assert half.stat().st_size < 0.6 * full.stat().st_size
    loaded, _ = load_checkpoint(half)
    x = torch.randn(2, 1, 64, 64)
    with torch.inference_mode():
        assert torch.allclose(model(x), loaded(x), atol=0.05)


def test_checkpoint_for_other_classes_is_refused(tmp_path):
    _, path = _save(tmp_path)
    with pytest.raises(CheckpointError, match="do not match the expected"):
        load_checkpoint(path, expect_classes=["notumor", "tumor"])


def test_checkpoint_for_other_architecture_is_refused(tmp_path):
    _, path = _save(tmp_path)
    with pytest.raises(CheckpointError, match="does not match the requested"):
        load_checkpoint(path, expect_model="densenet121")


def test_weights_that_do_not_fit_the_declared_architecture_are_refused(tmp_path):
    """Metadata says 4 classes but the tensors are a 2-class head: a clear error, not a crash."""
    from safetensors.torch import load_file, save_file

    _, path4 = _save(tmp_path)
    _, path2 = _save(tmp_path, classes=["notumor", "tumor"])
    from safetensors import safe_open

    with safe_open(str(path4), framework="pt") as f:
        metadata = f.metadata()
    state2 = load_file(str(path2))
    forged = tmp_path / "forged.safetensors"
    meta_json = metadata["brainmri"]
    import json

    payload = json.loads(meta_json)
    payload.pop("sha256")
    save_file(state2, str(forged), metadata={"brainmri": json.dumps(payload)})
    with pytest.raises(CheckpointError, match="shape mismatch"):
        load_checkpoint(forged)


def test_non_brainmri_safetensors_is_refused(tmp_path):
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(CheckpointError, match="no brainmri metadata"):
        read_checkpoint(tmp_path / "plain.safetensors")


def test_a_checkpoint_with_nan_weights_is_refused(tmp_path):
    model = create_model("resnet18", 4).eval()
    with torch.no_grad():
        model.fc.weight[0, 0] = float("nan")
    meta = CheckpointMeta(model=ModelConfig(name="resnet18"), class_names=CLASSES, preprocess=PreprocessConfig(image_size=64), task="tumor4")
    path = save_checkpoint(tmp_path / "nan.safetensors", model, meta)
    with pytest.raises(CheckpointError, match=r"nan.safetensors: weights contain NaN or infinite values \(e.g. fc.weight\)"):
        load_checkpoint(path)


def test_written_files_get_the_umask_mode_not_0600(tmp_path):
    import os

    old = os.umask(0o022)
    try:
        _, path = _save(tmp_path)
    finally:
        os.umask(old)
    assert os.stat(path).st_mode & 0o777 == 0o644


@pytest.mark.parametrize("calibration, problem", [
    ({"temperature": -1.0}, "temperature must be a positive number"),
    ({"temperature": "hot"}, "temperature must be a positive number"),
    ({"temperature": 0.7, "top_label": {"a": "x", "b": 0.0}}, "top_label must be"),
    ({"temperature": 0.7, "top_label": {"a": -1.0, "b": 0.0}}, "top_label must be"),
    ([0.7], "calibration must be a JSON object"),
])
def test_calibration_metadata_prediction_could_not_use_is_refused(tmp_path, calibration, problem):
    model = create_model("resnet18", 4).eval()
    meta = CheckpointMeta(model=ModelConfig(name="resnet18"), class_names=CLASSES, preprocess=PreprocessConfig(image_size=64), task="tumor4",
                          calibration=calibration)
    path = save_checkpoint(tmp_path / "cal.safetensors", model, meta)
    with pytest.raises(CheckpointError, match=f"cal.safetensors: checkpoint calibration {problem}" if "JSON" not in problem else f"cal.safetensors: checkpoint {problem}"):
        load_checkpoint(path)


def test_top_label_calibration_travels_with_the_checkpoint(tmp_path):
    from brainmri.inference import Classifier
    from brainmri.evaluation.calibration import softmax_with_temperature

    model = create_model("resnet18", 4).eval()
    cal = {"temperature": 0.5, "top_label": {"a": 0.5, "b": 1.0}}
    meta = CheckpointMeta(model=ModelConfig(name="resnet18"), class_names=CLASSES, preprocess=PreprocessConfig(image_size=64), task="tumor4", calibration=cal)
    path = save_checkpoint(tmp_path / "tl.safetensors", model, meta)
    clf = Classifier.load(path)
    img = (torch.rand(64, 64) * 255).to(torch.uint8).numpy()
    out = clf.predict(img)
    with torch.inference_mode():
        z = clf.logits(clf.prepare(img)[None])
    p_t = softmax_with_temperature(z, 0.5)[0]
    assert max(out.probabilities, key=out.probabilities.get) == CLASSES[int(p_t.argmax())]
    assert out.confidence != pytest.approx(float(p_t.max()), abs=1e-4)  # the top-label step was applied
    assert sum(out.probabilities.values()) == pytest.approx(1.0, abs=1e-4)


def test_a_device_is_named_as_no_checkpoint_not_as_missing(capsys):
    from brainmri.cli.main import main

    for command in (["info", "/dev/null"], ["predict", "x.png", "-c", "/dev/null"]):
        assert main(command) == 2
        assert "/dev/null: is not a regular file (a device or FIFO), not a checkpoint" in capsys.readouterr().err
