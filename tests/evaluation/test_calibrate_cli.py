"""``brainmri calibrate``: refit the calibration on one's own labelled scans, never the weights,
never over the input, and refuse what cannot give an honest fit."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

from brainmri.checkpoint import CheckpointMeta, load_checkpoint, save_checkpoint
from brainmri.cli.main import main
from brainmri.config import ModelConfig, PreprocessConfig
from brainmri.data.synthetic import TUMOR4, make_phantom_dataset
from brainmri.models import create_model


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    base = tmp_path_factory.mktemp("calibrate")
    torch.manual_seed(0)
    model = create_model("seed003_cnn", 4)
    meta = CheckpointMeta(ModelConfig(name="seed003_cnn"), list(TUMOR4), PreprocessConfig(image_size=32), task="tumor4",
                          calibration={"temperature": 1.0, "fitted_on": "val"})
    ckpt = save_checkpoint(base / "m.safetensors", model, meta)
    flat = make_phantom_dataset(base / "flat", layout="flat", n_per_class=15, size=32, seed=1)
    return base, ckpt, flat


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_calibrate_refits_the_temperature_and_changes_no_prediction(setup, capsys):
    base, ckpt, flat = setup
    before = _digest(ckpt)
    out = base / "recal.safetensors"
    assert main(["calibrate", str(ckpt), "--data", str(flat), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"fitted on 60 images of {flat} (test, n=60) — few images: a rough fit" in printed and "top-label scaling: not kept" in printed
    assert _digest(ckpt) == before  # the input is untouched
    m0, meta0 = load_checkpoint(ckpt)
    m1, meta1 = load_checkpoint(out)
    assert meta1.calibration["temperature"] != pytest.approx(1.0) and meta1.calibration["n"] == 60
    assert meta1.extra["recalibrated_from"]["calibration"]["temperature"] == 1.0
    x = torch.randn(6, 1, 32, 32)
    with torch.inference_mode():
        assert torch.equal(m0(x), m1(x))  # same weights: the same predictions
    assert meta1.ood == meta0.ood and meta1.preprocess == meta0.preprocess


def test_calibrate_refuses_the_input_as_output_an_existing_file_and_too_few_images(setup, tmp_path, capsys):
    base, ckpt, flat = setup
    assert main(["calibrate", str(ckpt), "--data", str(flat), "-o", str(ckpt)]) == 2
    assert "brainmri calibrate: error: -o" in capsys.readouterr().err
    taken = tmp_path / "taken.safetensors"
    taken.write_bytes(b"keep me")
    assert main(["calibrate", str(ckpt), "--data", str(flat), "-o", str(taken)]) == 2
    assert "the file exists; pass --force" in capsys.readouterr().err and taken.read_bytes() == b"keep me"
    tiny = make_phantom_dataset(tmp_path / "tiny", layout="flat", n_per_class=3, size=32, seed=2)
    assert main(["calibrate", str(ckpt), "--data", str(tiny), "-o", str(tmp_path / "t.safetensors")]) == 2
    err = capsys.readouterr().err
    assert "only 12 readable images" in err and "needs at least 20" in err and not (tmp_path / "t.safetensors").exists()
    assert main(["calibrate", str(ckpt), "--data", str(flat), "-o", str(tmp_path / "b.safetensors"), "--batch-size", "0"]) == 2
    assert "--batch-size=0 must be >= 1" in capsys.readouterr().err
    assert main(["calibrate", str(ckpt), "--data", str(flat), "-o", str(tmp_path / "s.safetensors"), "--split", "bogus"]) == 2
    assert "--split 'bogus' is not valid" in capsys.readouterr().err


def test_calibrate_refuses_the_models_own_train_or_test_split_and_a_preset_for_other_classes(setup, tmp_path, capsys):
    base, _, flat = setup
    data = make_phantom_dataset(tmp_path / "own", layout="split", n_per_class=6, test_per_class=5, size=32, seed=3)
    meta = CheckpointMeta(ModelConfig(name="seed003_cnn"), list(TUMOR4), PreprocessConfig(image_size=32), task="tumor4",
                          data={"root": str(data)})
    ckpt = save_checkpoint(tmp_path / "own.safetensors", create_model("seed003_cnn", 4), meta)
    for split, why in (("train", "what the model learned"), ("test", "what the model is judged on")):
        assert main(["calibrate", str(ckpt), "--data", str(data), "--split", split, "-o", str(tmp_path / f"{split}.safetensors")]) == 2
        err = capsys.readouterr().err
        assert f"--split {split}: {data} is the dataset this checkpoint was trained on" in err and why in err
        assert not (tmp_path / f"{split}.safetensors").exists()
    assert main(["calibrate", str(ckpt), "--data", str(flat), "--preset", "tumor2", "-o", str(tmp_path / "p.safetensors")]) == 2
    assert "--preset tumor2 is for the classes notumor, tumor; this checkpoint's are glioma" in capsys.readouterr().err


def test_a_sample_the_model_gets_all_right_is_refused_not_fitted_to_certainty(setup, tmp_path, capsys, monkeypatch):
    """Perfectly separated scans drive the log-loss fit to the lower clamp: every prediction,
    wrong ones included, would then claim certainty. Refused, nothing written."""
    import numpy as np

    from brainmri.evaluation import evaluate as ev

    base, ckpt, flat = setup
    real = ev.predict_split

    def perfect(model, meta, index, split, *a, **k):
        preds = real(model, meta, index, split, *a, **k)
        preds.logits = np.eye(4)[preds.labels] * 8.0
        return preds

    monkeypatch.setattr(ev, "predict_split", perfect)
    out = tmp_path / "sharp.safetensors"
    assert main(["calibrate", str(ckpt), "--data", str(flat), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "all of these 60 images right" in err and "can only sharpen" in err and "Nothing was written" in err
    assert not out.exists()


def test_the_output_never_lands_in_the_dataset_read(setup, tmp_path, capsys):
    base, ckpt, flat = setup
    inside = Path(flat) / "glioma" / "recal.png"
    assert main(["calibrate", str(ckpt), "--data", str(flat), "-o", str(inside)]) == 2
    assert "inside the dataset" in capsys.readouterr().err and not inside.exists()
    scan = next((Path(flat) / "glioma").iterdir())
    assert main(["calibrate", str(ckpt), "--data", str(flat), "-o", str(scan), "--force"]) == 2
    assert "inside the dataset" in capsys.readouterr().err


def test_the_checkpoints_own_test_split_is_refused_by_fingerprint_or_counts(setup, tmp_path, capsys):
    """No recorded root (the bundled model records none) or a relative one: the fingerprint of the
    listing, or a split whose class counts equal the recorded test split's, still tell."""
    from brainmri.data.datasets import data_fingerprint, load_dataset
    from brainmri.evaluation.evaluate import data_config_for

    base, ckpt, flat = setup
    model, meta = load_checkpoint(ckpt)
    index = load_dataset(data_config_for(meta, flat, ckpt))  # carved as training carves it
    meta.data = {"fingerprint": data_fingerprint(index), "counts": index.counts()}  # as training records them, without the root
    fp = save_checkpoint(tmp_path / "fp.safetensors", model, meta)
    assert main(["calibrate", str(fp), "--data", str(flat), "--split", "test", "-o", str(tmp_path / "a.safetensors")]) == 2
    assert "is the dataset this checkpoint was trained on" in capsys.readouterr().err
    meta.data = {"counts": {"train": {c: 50 for c in TUMOR4}, "test": {c: 15 for c in TUMOR4}}}  # flat: a copy of its Testing
    counted = save_checkpoint(tmp_path / "counted.safetensors", model, meta)
    assert main(["calibrate", str(counted), "--data", str(flat), "-o", str(tmp_path / "b.safetensors")]) == 2
    assert "exactly the class counts of this checkpoint's own test split" in capsys.readouterr().err


def test_the_ece_line_compares_with_the_checkpoints_own_calibration(setup, tmp_path, capsys):
    base, ckpt, flat = setup
    assert main(["calibrate", str(ckpt), "--data", str(flat), "-o", str(tmp_path / "r.safetensors")]) == 0
    assert "with the checkpoint's calibration ->" in capsys.readouterr().out


def test_info_says_a_checkpoint_was_recalibrated(setup, tmp_path, capsys):
    base, ckpt, flat = setup
    out = tmp_path / "r.safetensors"
    assert main(["calibrate", str(ckpt), "--data", str(flat), "-o", str(out)]) == 0
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"recalibrated on {flat} (test, n=60) by brainmri calibrate, from {ckpt} (T 1.000)" in text
