"""Datasets that cannot train a classifier are refused in one line (exit 2), before any work: a
single class (``--dry-run`` too), a class whose every training image is unreadable, the same image
with two labels; a class with no readable validation image is warned about; ``evaluate`` counts
the unreadable images it leaves out."""
from __future__ import annotations

import csv
import logging
from pathlib import Path

import pytest
import torch

from brainmri.checkpoint import CheckpointMeta, save_checkpoint
from brainmri.cli.main import main
from brainmri.config import ModelConfig, PreprocessConfig, RunConfig
from brainmri.data.datasets import load_dataset
from brainmri.data.synthetic import TUMOR4, make_phantom_dataset
from brainmri.data.torchdata import PreparedImages
from brainmri.errors import DatasetError
from brainmri.models import create_model
from brainmri.training import run_training
from brainmri.training.preflight import check_classes, check_readable_classes


@pytest.fixture
def cfg_at(tiny_run_config):
    """The shared tiny run (tests/training/conftest.py) on another dataset: the small CNN at 32 px."""

    def make(root: Path) -> RunConfig:
        cfg = tiny_run_config(batch_size=8)
        cfg.data.root, cfg.data.preset = str(root), None
        cfg.preprocess.image_size, cfg.model.name = 32, "seed002_cnn"
        return cfg

    return make


def _truncate(files) -> int:
    n = 0
    for f in files:
        f.write_bytes(f.read_bytes()[:100])
        n += 1
    return n


def _train_args(root: Path, tmp_path: Path, *more: str) -> list[str]:
    return ["train", "--data", str(root), "--model", "seed002_cnn", "--image-size", "32", "--epochs", "1",
            "--cache-dir", "none", "--output-dir", str(tmp_path / "runs"), *more]


# ---------------------------------------------------------------------------------------------- one class


@pytest.mark.parametrize("dry_run", [True, False])
def test_a_single_class_is_refused_up_front_naming_the_folder_and_the_class(tmp_path, capsys, dry_run):
    root = make_phantom_dataset(tmp_path / "single", layout="flat", class_names=("glioma",), n_per_class=6, size=32)
    rc = main(_train_args(root, tmp_path, *(["--dry-run"] if dry_run else [])))
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1, err
    assert f"{root}: found only 1 class (glioma); classification needs at least 2 classes" in err
    assert "internal error" not in err and not (tmp_path / "runs" / "run").exists()


def test_a_single_label_csv_is_refused_by_run_training(cfg_at, tmp_path):
    root = make_phantom_dataset(tmp_path / "one", layout="csv", class_names=("a",), n_per_class=6, size=32)
    with pytest.raises(DatasetError, match=r"found only 1 class \(0\); classification needs at least 2"):
        run_training(cfg_at(root))
    index = load_dataset(cfg_at(make_phantom_dataset(tmp_path / "two", layout="flat", class_names=("a", "b"), n_per_class=3, size=32)).data)
    check_classes(index)  # two classes pass


# ---------------------------------------------------------------------------------------------- unreadable classes


def test_a_class_whose_every_image_is_unreadable_stops_training(cfg_at, tmp_path, capsys):
    root = make_phantom_dataset(tmp_path / "allbad", layout="flat", class_names=("a", "b", "c"), n_per_class=10, size=32)
    _truncate(sorted((root / "a").iterdir()))
    with pytest.raises(DatasetError) as err:
        run_training(cfg_at(root))
    text = str(err.value)
    assert text.startswith(f"{root / 'a'}: class 'a' has no readable training images (all 8 of its training files are unreadable, e.g. ")
    assert "\n" not in text and not (tmp_path / "runs" / "run").exists()
    assert main(_train_args(root, tmp_path, "--run-name", "cli")) == 2
    err_text = capsys.readouterr().err.strip().splitlines()[-1]
    assert "class 'a' has no readable training images" in err_text and not (tmp_path / "runs" / "cli").exists()


def test_a_class_with_no_readable_validation_image_is_warned_about(cfg_at, tmp_path, caplog):
    root = make_phantom_dataset(tmp_path / "valbad", layout="split3", class_names=("a", "b"), n_per_class=4, val_per_class=2,
                                test_per_class=2, size=32)
    n = _truncate(sorted((root / "Validation" / "a").iterdir()))
    index = load_dataset(cfg_at(root).data)
    pre = PreprocessConfig(image_size=32)
    train_samples = index.split("train")
    train, val = PreparedImages(train_samples, pre), PreparedImages(index.split("val"), pre)
    with caplog.at_level(logging.WARNING):
        check_readable_classes(index, train_samples, train, val)  # warns, does not raise
    warned = [r.getMessage() for r in caplog.records if "no readable validation images" in r.getMessage()]
    assert len(warned) == 1 and f"{root / 'Validation' / 'a'}: class 'a'" in warned[0] and f"all {n} of its validation files" in warned[0]


def test_readable_classes_pass_quietly(cfg_at, tmp_path, caplog):
    root = make_phantom_dataset(tmp_path / "ok", layout="flat", class_names=("a", "b"), n_per_class=6, size=32)
    bad = sorted((root / "a").iterdir())[0]
    _truncate([bad])  # one unreadable file of several: skipped by PreparedImages, not an error
    index = load_dataset(cfg_at(root).data)
    pre = PreprocessConfig(image_size=32)
    train, val = PreparedImages(index.split("train"), pre), PreparedImages(index.split("val"), pre)
    with caplog.at_level(logging.WARNING, logger="brainmri.training"):
        check_readable_classes(index, index.split("train"), train, val)
    assert "no readable" not in caplog.text


# ---------------------------------------------------------------------------------------------- CSV duplicates


def test_train_dry_run_refuses_an_image_with_two_labels(tmp_path, capsys):
    root = make_phantom_dataset(tmp_path / "dup", layout="csv", class_names=("a", "b"), n_per_class=4, size=32)
    with open(root / "labels.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    rows.append({"Image": rows[0]["Image"], "Class": "1" if rows[0]["Class"] == "0" else "0"})
    with open(root / "labels.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["Image", "Class"])
        w.writeheader()
        w.writerows(rows)
    assert main(_train_args(root, tmp_path, "--dry-run")) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "labels.csv: image " in err and "listed twice with different labels" in err
    assert "row 1 (line 2)" in err and f"row {len(rows)} (line {len(rows) + 1})" in err


# ---------------------------------------------------------------------------------------------- evaluate's count


def test_evaluate_says_how_many_images_were_unreadable(tmp_path, capsys):
    torch.manual_seed(0)
    meta = CheckpointMeta(ModelConfig(name="seed003_cnn"), list(TUMOR4), PreprocessConfig(image_size=32), task="tumor4",
                          calibration={"temperature": 1.0, "fitted_on": "val"})
    ckpt = save_checkpoint(tmp_path / "m.safetensors", create_model("seed003_cnn", 4), meta)
    root = make_phantom_dataset(tmp_path / "ev", layout="flat", n_per_class=5, size=32, seed=1)
    _truncate(sorted((root / "glioma").iterdir()))
    _truncate([sorted((root / "notumor").iterdir())[0]])
    assert main(["evaluate", str(ckpt), "--data", str(root), "--bootstrap", "20"]) == 0
    out = capsys.readouterr().out
    assert "n=14)" in out and "scoring all 20 images" not in out
    assert "scoring the 14 readable of its 20 images (6 unreadable, left out, among them every image of class 'glioma')" in out


# ---------------------------------------------------------------------------------------------- dry run = real run


@pytest.mark.parametrize("case", ["one_per_class", "lesion_without_notumor", "weights_png", "output_is_a_file", "unfreeze"])
def test_the_dry_run_refuses_what_the_real_run_would_refuse_in_seconds(case, tmp_path, capsys):
    from brainmri.data.synthetic import make_phantom_dataset

    data = make_phantom_dataset(tmp_path / "d", layout="split", n_per_class=4, test_per_class=1, size=32)
    args, message = [], ""
    if case == "one_per_class":
        data = make_phantom_dataset(tmp_path / "d1", layout="split", n_per_class=1, test_per_class=1, size=32)
        message = "training needs non-empty train and val splits"
    elif case == "lesion_without_notumor":
        data = make_phantom_dataset(tmp_path / "cats", layout="split", class_names=("cat", "dog"), n_per_class=4, test_per_class=1, size=32)
        args, message = ["--lesion", "0.5"], "augment.lesion needs a healthy class"
    elif case == "weights_png":
        png = next((data / "Testing" / "glioma").iterdir())
        args, message = ["--model", "resnet18", "--pretrained-weights", str(png)], "is a PNG file, not a weights file"
    elif case == "output_is_a_file":
        (tmp_path / "afile").write_text("x")
        args, message = ["--output-dir", str(tmp_path / "afile")], str(tmp_path / "afile")  # named as the file in the way
    else:
        args, message = ["--unfreeze", "9"], "train.unfreeze=9: seed002_cnn has"
    for dry in (True, False):
        rc = main([*_train_args(data, tmp_path, *args), *(["--dry-run"] if dry else [])])
        err = capsys.readouterr().err
        assert rc == 2 and message in err, (dry, err)
