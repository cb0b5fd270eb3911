"""Tumor-presence (cross-source) evaluation collapses a tumor-type model to tumor vs notumor."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from brainmri.checkpoint import CheckpointMeta, save_checkpoint
from brainmri.config import ModelConfig, PreprocessConfig
from brainmri.data.synthetic import make_phantom_dataset
from brainmri.evaluation.cross_source import wilson_interval, evaluate_tumor_presence
from brainmri.models import create_model

CLASSES = ["glioma", "meningioma", "notumor", "pituitary"]


class Constant(torch.nn.Module):
    """Always predicts one class, whatever the input."""

    def __init__(self, k: int):
        super().__init__()
        self.k = k

    def forward(self, x):
        out = torch.zeros(x.shape[0], len(CLASSES))
        out[:, self.k] = 5.0
        return out


@pytest.fixture
def checkpoint(tmp_path):
    model = create_model("seed003_cnn", 4)
    meta = CheckpointMeta(model=ModelConfig(name="seed003_cnn"), class_names=CLASSES, preprocess=PreprocessConfig(image_size=32), task="tumor4")
    return save_checkpoint(tmp_path / "m.safetensors", model, meta)


def test_wilson_interval_contains_rate_and_narrows():
    lo, hi = wilson_interval(45, 50)
    assert lo < 0.9 < hi
    lo2, hi2 = wilson_interval(450, 500)
    assert hi2 - lo2 < hi - lo
    assert wilson_interval(0, 10)[0] == 0.0


@pytest.mark.parametrize("k,expect_tumor_rate,expect_healthy_rate", [(0, 1.0, 0.0), (2, 0.0, 1.0)])
def test_rates_follow_the_collapsed_prediction(checkpoint, tmp_path, monkeypatch, k, expect_tumor_rate, expect_healthy_rate):
    data = make_phantom_dataset(tmp_path / "yn", layout="flat", class_names=("no", "yes"), n_per_class=5, size=32, seed=2)
    monkeypatch.setattr("brainmri.checkpoint.build_model_from_meta", lambda meta: _Wrapped(k))
    r = evaluate_tumor_presence(checkpoint, data, cache_dir=None)
    assert r["n"] == 10
    assert r["tumor_called_tumor"]["n"] == 5 and r["notumor_called_notumor"]["n"] == 5
    assert r["tumor_called_tumor"]["rate"] == expect_tumor_rate
    assert r["notumor_called_notumor"]["rate"] == expect_healthy_rate
    assert sum(r["predicted"]["tumor"].values()) == 5


class _Wrapped(Constant):
    """A constant model that still loads the seed003 state dict (strict load in load_checkpoint)."""

    def __init__(self, k):
        super().__init__(k)
        self.inner = create_model("seed003_cnn", 4)

    def state_dict(self, *a, **kw):
        return self.inner.state_dict(*a, **kw)

    def load_state_dict(self, state, strict=True):
        return self.inner.load_state_dict(state, strict)


def test_assume_label_treats_every_image_as_healthy(checkpoint, tmp_path):
    data = make_phantom_dataset(tmp_path / "ad", layout="flat", class_names=("Mild", "Non"), n_per_class=3, size=32, seed=3)
    r = evaluate_tumor_presence(checkpoint, data, assume_label="notumor", cache_dir=None)
    assert r["tumor_called_tumor"] is None
    assert r["notumor_called_notumor"]["n"] == 6
    assert 0 <= r["notumor_called_notumor"]["rate"] <= 1


def test_a_one_kind_set_without_assume_label_says_how_to_test_it(checkpoint, tmp_path):
    from brainmri.errors import DatasetError

    data = make_phantom_dataset(tmp_path / "yn", layout="flat", class_names=("yes",), n_per_class=2, size=32, seed=3)
    csv = tmp_path / "fold.csv"
    csv.write_text("Image,Class\n" + "".join(f"{p},yes\n" for p in sorted((data / "yes").iterdir())))
    with pytest.raises(DatasetError, match="class 'notumor' has no images.*pass --assume-label tumor"):
        evaluate_tumor_presence(checkpoint, csv, cache_dir=None)
    assert evaluate_tumor_presence(checkpoint, csv, assume_label="tumor", cache_dir=None)["tumor_called_tumor"]["n"] == 2


def test_model_without_notumor_is_refused(tmp_path):
    from brainmri.errors import ConfigError

    model = create_model("seed003_cnn", 2)
    meta = CheckpointMeta(model=ModelConfig(name="seed003_cnn"), class_names=["a", "b"], preprocess=PreprocessConfig(image_size=32))
    path = save_checkpoint(tmp_path / "ab.safetensors", model, meta)
    with pytest.raises(ConfigError, match="notumor"):
        evaluate_tumor_presence(path, tmp_path)


def test_images_seen_in_training_are_left_out_and_counted(checkpoint, tmp_path):
    import shutil

    data = make_phantom_dataset(tmp_path / "yn", layout="flat", class_names=("no", "yes"), n_per_class=5, size=32, seed=2)
    train = tmp_path / "train" / "notumor"
    train.mkdir(parents=True)
    no_files, yes_files = sorted((data / "no").iterdir()), sorted((data / "yes").iterdir())
    for f in no_files[:2] + yes_files[:1]:  # copies under other names, as the four-class set holds the yes/no scans
        shutil.copy(f, train / f"copy_{f.parent.name}_{f.name}")
    full = evaluate_tumor_presence(checkpoint, data, cache_dir=None)
    r = evaluate_tumor_presence(checkpoint, data, cache_dir=None, exclude_seen=tmp_path / "train", threshold=0)
    assert full["n"] == 10 and r["n"] == 7
    assert r["excluded_seen"]["n_excluded"] == 3
    assert r["excluded_seen"]["by_label"] == {"notumor": 2, "tumor": 1}
    assert r["tumor_called_tumor"]["n"] == 4 and r["notumor_called_notumor"]["n"] == 3
    assert len(r["p_tumor"]) == 7


def test_nifti_volume_is_judged_slice_by_slice(checkpoint, tmp_path):
    import nibabel as nib

    from brainmri.errors import ConfigError

    vol = np.zeros((24, 24, 6), np.float32)
    yy, xx = np.mgrid[:24, :24]
    vol[((yy - 12) ** 2 + (xx - 12) ** 2) < 80] = 100.0  # a disc ("head") in every axial slice
    path = tmp_path / "v.nii.gz"
    nib.save(nib.Nifti1Image(vol, np.eye(4)), str(path))
    r = evaluate_tumor_presence(checkpoint, path, assume_label="notumor", slices="all")
    assert r["n"] == 6 and r["notumor_called_notumor"]["n"] == 6
    assert evaluate_tumor_presence(checkpoint, path, assume_label="notumor", slices="1:3")["n"] == 2
    with pytest.raises(ConfigError, match="assume_label"):
        evaluate_tumor_presence(checkpoint, path)


def test_cli_excludes_training_copies_and_writes_json(checkpoint, tmp_path, capsys):
    import json
    import shutil

    from brainmri.cli.main import main

    data = make_phantom_dataset(tmp_path / "yn", layout="flat", class_names=("no", "yes"), n_per_class=4, size=32, seed=5)
    (tmp_path / "train" / "notumor").mkdir(parents=True)
    shutil.copy(sorted((data / "no").iterdir())[0], tmp_path / "train" / "notumor" / "x.png")
    out = tmp_path / "r.json"
    assert main(["evaluate", str(checkpoint), "--data", str(data), "--tumor-presence", "--exclude-near-duplicates-of", str(tmp_path / "train"),
                 "--leak-threshold", "0", "--json", str(out)]) == 0
    assert "left out 1 image(s)" in capsys.readouterr().out
    assert json.loads(out.read_text())["n"] == 7


def test_nifti_noise_slices_are_counted_out_of_distribution_and_4d_is_named(checkpoint, tmp_path):
    import nibabel as nib

    from brainmri.evaluation.cross_source import summary_lines

    rng = np.random.default_rng(0)
    noise = tmp_path / "noise4d.nii.gz"
    nib.save(nib.Nifti1Image(rng.uniform(0, 1000, (24, 24, 4, 3)).astype(np.float32), np.eye(4)), str(noise))
    r = evaluate_tumor_presence(checkpoint, noise, assume_label="notumor", slices="all")
    assert r["ood"]["n"] == r["ood"]["of"] == 4 and "noise" in r["ood"]["examples"][0]
    assert "3 volumes" in r["volume_note"] and "first" in r["volume_note"]
    text = "\n".join(summary_lines(r))
    assert "4 of 4 slices are out of distribution" in text and "3 volumes" in text
    vol = np.zeros((24, 24, 6), np.float32)
    yy, xx = np.mgrid[:24, :24]
    vol[((yy - 12) ** 2 + (xx - 12) ** 2) < 80] = 100.0
    disc = tmp_path / "disc.nii.gz"
    nib.save(nib.Nifti1Image(vol, np.eye(4)), str(disc))
    clean = evaluate_tumor_presence(checkpoint, disc, assume_label="notumor", slices="all")
    assert "volume_note" not in clean and clean["ood"]["of"] == 6


def test_the_models_own_training_data_is_flagged_as_no_cross_source_test(tmp_path):
    data = make_phantom_dataset(tmp_path / "ds", layout="split", n_per_class=3, test_per_class=2, size=32, seed=4)
    meta = CheckpointMeta(model=ModelConfig(name="seed003_cnn"), class_names=CLASSES, preprocess=PreprocessConfig(image_size=32),
                          task="tumor4", data={"root": str(data)})
    ckpt = save_checkpoint(tmp_path / "own.safetensors", create_model("seed003_cnn", 4), meta)
    whole = evaluate_tumor_presence(ckpt, data, cache_dir=None)
    assert whole["warning"].startswith(f"{data} is the dataset {ckpt} was trained on (data.root)")
    inside = evaluate_tumor_presence(ckpt, data / "Training", cache_dir=None)
    assert inside["warning"].startswith(f"{data / 'Training'} lies inside {data}, the dataset")
    assert "warning" not in evaluate_tumor_presence(ckpt, data / "Testing", cache_dir=None)  # its own test split: no source claim


def test_a_trained_source_under_another_folder_name_is_still_recognised(tmp_path):
    """The bundled model records its extra images as dataset/class/file and no hashes: the yes/no
    set as Kaggle ships it (another folder name) must still be told and left out."""
    from PIL import Image

    from brainmri.data.synthetic import make_phantom

    renamed = tmp_path / "brain_tumor_dataset"
    for label, cls in (("yes", 0), ("no", 2)):
        (renamed / label).mkdir(parents=True)
        for i in range(6):
            name = f"Y{i}.jpg" if label == "yes" else f"N{i}.jpg"
            Image.fromarray(make_phantom(cls, size=48, rng=np.random.default_rng(i + 10 * cls))).save(renamed / label / name)
    model = create_model("seed003_cnn", 4)
    meta = CheckpointMeta(model=ModelConfig(name="seed003_cnn"), class_names=CLASSES, preprocess=PreprocessConfig(image_size=32), task="tumor4",
                          data={"extra_train": [{"source": "/elsewhere/brain-mri-yes-no/yes", "label": "tumor",
                                                 "files": [f"brain-mri-yes-no/yes/Y{i}.jpg" for i in range(5)]}]})
    ck = save_checkpoint(tmp_path / "m.safetensors", model, meta)
    r = evaluate_tumor_presence(ck, renamed)
    assert "looks like its training source 'brain-mri-yes-no' under another folder name" in r["warning"]
    left = evaluate_tumor_presence(ck, renamed, exclude_trained=True)
    assert left["n"] == 7  # the 5 trained-on tumors left out: 1 tumor and 6 healthy remain
