"""``brainmri evaluate`` on external sets: data without a training split is scored whole (not a
carved 10%), test-only sets and subsets of the model's classes are evaluated, the checkpoint's
own training data is still carved as in training, and bad flags fail in a second, in one line."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from brainmri.checkpoint import CheckpointMeta, save_checkpoint
from brainmri.cli.main import main
from brainmri.config import ModelConfig, PreprocessConfig
from brainmri.data.synthetic import TUMOR4, make_phantom_dataset
from brainmri.evaluation.evaluate import evaluate_checkpoint
from brainmri.models import create_model


def _checkpoint(path: Path, data: dict | None = None) -> Path:
    torch.manual_seed(0)
    meta = CheckpointMeta(ModelConfig(name="seed003_cnn"), list(TUMOR4), PreprocessConfig(image_size=32), task="tumor4",
                          calibration={"temperature": 1.5, "fitted_on": "val"}, data=data or {})
    return save_checkpoint(path, create_model("seed003_cnn", 4), meta)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return tmp_path_factory.mktemp("external")


@pytest.fixture(scope="module")
def ckpt(base):
    return _checkpoint(base / "m.safetensors")


@pytest.fixture(scope="module")
def flat(base):
    return make_phantom_dataset(base / "flat", layout="flat", n_per_class=10, size=32, seed=1)


def test_flat_folder_is_scored_whole_with_a_leak_note(ckpt, flat, capsys):
    r = evaluate_checkpoint(ckpt, flat, n_boot=20)
    assert r["n"] == 40 and np.array(r["confusion_matrix"]).sum() == 40
    assert r["leak"] is None and "not checked" in r["leak_note"] and "training data is not known" in r["leak_note"]
    assert main(["evaluate", str(ckpt), "--data", str(flat), "--bootstrap", "20"]) == 0
    out = capsys.readouterr().out
    assert "n=40" in out and "scoring all 40 images" in out and "leakage: not checked" in out


def test_the_models_own_training_folder_is_not_passed_off_as_a_test(base, capsys):
    split = make_phantom_dataset(base / "trained_from", layout="split", n_per_class=4, test_per_class=3, size=32, seed=3)
    model = _checkpoint(base / "own.safetensors", data={"root": str(split), "split": "auto"})
    r = evaluate_checkpoint(model, split / "Training", n_boot=20)
    assert r["leak_note"].startswith(f"WARNING: {split / 'Training'} lies inside {split}, the folder this model was trained from")
    assert "no test result" in r["leak_note"]
    r = evaluate_checkpoint(model, split / "Testing", n_boot=20)  # its test split: the plain note
    assert "not checked" in r["leak_note"] and "WARNING" not in r["leak_note"]


def test_test_only_split_folder_is_evaluated(ckpt, base):
    split = make_phantom_dataset(base / "split_for_tonly", layout="split", n_per_class=4, test_per_class=3, size=32, seed=2)
    tonly = base / "tonly"
    shutil.copytree(split / "Testing", tonly / "Testing")
    r = evaluate_checkpoint(ckpt, tonly, n_boot=20)
    assert r["n"] == 12 and r["split"] == "test" and r["leak"] is None and r["leak_note"]
    assert "only its own test split" in r["split_note"]


def test_npz_all_test_and_csv_without_split_are_evaluated(ckpt, base):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (8, 32, 32), dtype=np.uint8)
    np.savez(base / "t.npz", images=images, labels=np.arange(8) % 4, split=np.array(["test"] * 8))
    assert evaluate_checkpoint(ckpt, base / "t.npz", n_boot=20)["n"] == 8
    np.savez(base / "nosplit.npz", images=images, labels=np.arange(8) % 4)
    assert evaluate_checkpoint(ckpt, base / "nosplit.npz", n_boot=20)["n"] == 8
    csvd = make_phantom_dataset(base / "csvd", layout="csv", n_per_class=3, size=32, seed=4)
    r = evaluate_checkpoint(ckpt, csvd, n_boot=20)
    assert r["n"] == 12 and "scoring all 12" in r["split_note"]


def test_real_train_and_test_splits_are_kept(ckpt, base):
    split = make_phantom_dataset(base / "split", layout="split", n_per_class=6, test_per_class=3, size=32, seed=2)
    shutil.copy(split / "Training" / "glioma" / "glioma_0000.png", split / "Testing" / "glioma" / "copy.png")
    r = evaluate_checkpoint(ckpt, split, n_boot=20)
    assert r["n"] == 13 and r["split_note"] is None and r["leak_note"] is None
    assert r["leak"]["checked"] and r["leak"]["n_leaked"] >= 1


def test_a_subset_of_the_classes_is_evaluated_over_the_classes_present(ckpt, base, capsys):
    part = make_phantom_dataset(base / "part", layout="flat", class_names=("glioma", "notumor"), n_per_class=6, size=32, seed=3)
    r = evaluate_checkpoint(ckpt, part, n_boot=50)
    assert r["n"] == 12 and r["absent_classes"] == ["meningioma", "pituitary"]
    pc = r["per_class"]
    assert r["macro_f1"] == pytest.approx((pc["glioma"]["f1"] + pc["notumor"]["f1"]) / 2)
    assert r["recall"] == pytest.approx((pc["glioma"]["recall"] + pc["notumor"]["recall"]) / 2)
    assert "not in the data: meningioma, pituitary" in r["report_text"]
    assert "meningioma" not in r["report_text"].split("not in the data")[0]
    assert main(["evaluate", str(ckpt), "--data", str(part), "--bootstrap", "20"]) == 0
    assert "not in the data: meningioma, pituitary" in capsys.readouterr().out


def test_the_models_own_flat_training_folder_is_still_carved(base, flat):
    from brainmri.config import DataConfig
    from brainmri.data.datasets import load_dataset

    carved = load_dataset(DataConfig(root=str(flat)))
    by_root = _checkpoint(base / "own_root.safetensors", {"root": str(flat), "split": "auto", "seed": 42})
    r = evaluate_checkpoint(by_root, flat, n_boot=20)
    assert r["n"] == len(carved.split("test")) < 40 and "training data root" in r["split_note"]
    assert r["leak"]["checked"]  # against the carved training part, which the model did see
    moved = base / "moved_flat"
    shutil.copytree(flat, moved)
    by_counts = _checkpoint(base / "own_counts.safetensors", {"counts": carved.counts(), "split": "auto", "seed": 42})
    r = evaluate_checkpoint(by_counts, moved, n_boot=20)
    assert r["n"] == len(carved.split("test")) and "same images per class" in r["split_note"]


def test_split_other_than_test_on_unsplit_data_is_refused(ckpt, flat, capsys):
    assert main(["evaluate", str(ckpt), "--data", str(flat), "--split", "train"]) == 2
    err = capsys.readouterr().err
    assert "all its 40 images are the test set" in err and "Traceback" not in err


@pytest.mark.parametrize("flags, message", [
    (["--batch-size", "0"], "--batch-size 0"),
    (["--bootstrap", "0"], "--bootstrap 0"),
    (["--bootstrap", "-5"], "--bootstrap -5"),
    (["--leak-threshold", "9999"], "--leak-threshold 9999"),
    (["--explain-method", "bogus"], "'bogus' is not valid"),
    (["--exclude-trained"], "--exclude-trained works only with --tumor-presence"),
    (["--exclude-near-duplicates-of", "."], "--exclude-near-duplicates-of works only with --tumor-presence"),
    (["--slices", "all"], "--slices works only for a NIfTI volume"),
    (["--tumor-presence", "--report", "r.html"], "--report works only for the class metrics"),
    (["--tumor-presence", "--tta"], "--tta works only for the class metrics"),
    (["--preset", "alzheimer4"], "--preset alzheimer4 is for the classes Mild_Demented, Moderate_Demented, Non_Demented, "
                                 "Very_Mild_Demented; this checkpoint's are glioma, meningioma, notumor, pituitary (task tumor4)"),
])
def test_bad_or_ignored_flags_are_refused_before_any_work(ckpt, flat, flags, message, capsys, monkeypatch):
    import brainmri.evaluation.evaluate as ev

    monkeypatch.setattr(ev, "predict_split", lambda *a, **k: pytest.fail("work started despite a bad flag"))
    assert main(["evaluate", str(ckpt), "--data", str(flat), *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_bad_output_paths_fail_before_the_work(ckpt, flat, tmp_path, capsys, monkeypatch):
    import brainmri.evaluation.evaluate as ev

    monkeypatch.setattr(ev, "predict_split", lambda *a, **k: pytest.fail("work started despite a bad output path"))
    afile = tmp_path / "afile"
    afile.write_text("keep me")
    ok = tmp_path / "ok.html"
    for flags, message in ((["--json", str(tmp_path), "--report", str(ok)], "is a folder"),
                           (["--json", str(afile / "x.json")], "is a file, not a folder"),
                           (["--report", str(afile / "r.html")], "is a file, not a folder"),
                           (["--cache-dir", str(afile)], "--cache-dir")):
        assert main(["evaluate", str(ckpt), "--data", str(flat), *flags]) == 2
        assert message in capsys.readouterr().err
    assert not ok.exists() and afile.read_text() == "keep me"


def test_bootstrap_and_batch_size_checked_in_the_api_too(ckpt, flat):
    from brainmri.errors import ConfigError

    with pytest.raises(ConfigError, match="bootstrap"):
        evaluate_checkpoint(ckpt, flat, n_boot=0)
    with pytest.raises(ConfigError, match="batch-size"):
        evaluate_checkpoint(ckpt, flat, batch_size=0)


def test_nifti_without_a_label_names_assume_label(ckpt, tmp_path, capsys):
    nib = pytest.importorskip("nibabel")
    vol = np.zeros((16, 16, 4), np.float32)
    vol[4:12, 4:12] = 100.0
    path = tmp_path / "T1.nii.gz"
    nib.save(nib.Nifti1Image(vol, np.eye(4)), str(path))
    assert main(["evaluate", str(ckpt), "--data", str(path)]) == 2
    err = capsys.readouterr().err
    assert "T1.nii.gz" in err and "--assume-label tumor|notumor" in err


def test_folder_with_a_labels_csv_of_wrong_columns_names_them(ckpt, tmp_path, capsys):
    d = make_phantom_dataset(tmp_path / "csv4", layout="csv", n_per_class=2, size=32, seed=4)
    (d / "labels.csv").write_text("file,lbl\nImage1,0\n")
    for sub in [p for p in d.iterdir() if p.is_dir()]:  # images next to the CSV, no subfolder
        for f in sub.iterdir():
            f.rename(d / f.name)
        sub.rmdir()
    assert main(["evaluate", str(ckpt), "--data", str(d)]) == 2
    err = capsys.readouterr().err
    assert "labels.csv: missing column(s) Image, Class (columns: file, lbl)" in err


def test_presence_json_is_announced(ckpt, base, tmp_path, capsys):
    yn = make_phantom_dataset(base / "yn", layout="flat", class_names=("no", "yes"), n_per_class=3, size=32, seed=5)
    out = tmp_path / "p.json"
    assert main(["evaluate", str(ckpt), "--data", str(yn), "--tumor-presence", "--json", str(out)]) == 0
    assert f"JSON: {out}" in capsys.readouterr().out and json.loads(out.read_text())["n"] == 6


def test_a_folder_inside_the_training_root_is_flagged_but_its_test_split_is_not(base, capsys):
    root = make_phantom_dataset(base / "trained_root", layout="split", n_per_class=4, test_per_class=3, size=32, seed=5)
    ck = _checkpoint(base / "trained_root.safetensors", {"root": str(root), "split": "auto", "seed": 42})
    r = evaluate_checkpoint(ck, root / "Training", n_boot=20)
    assert r["split_note"].startswith(f"WARNING: {root / 'Training'} lies inside {root}, the model's training data")
    assert main(["evaluate", str(ck), "--data", str(root / "Training"), "--bootstrap", "20"]) == 0
    assert "\nWARNING: " in capsys.readouterr().out
    held_out = evaluate_checkpoint(ck, root / "Testing", n_boot=20)
    assert "WARNING" not in (held_out["split_note"] or "")


def test_yes_no_folders_point_to_tumor_presence_and_healthy_folders_are_read_there(ckpt, base, capsys):
    yn = make_phantom_dataset(base / "yn_names", layout="flat", class_names=("No", "Yes"), n_per_class=3, size=32, seed=6)
    assert main(["evaluate", str(ckpt), "--data", str(yn), "--bootstrap", "20"]) == 2
    err = capsys.readouterr().err
    assert "is not one of the configured classes" in err and "--tumor-presence" in err and "data.class_map" not in err
    th = make_phantom_dataset(base / "th_names", layout="flat", class_names=("healthy", "tumor"), n_per_class=3, size=32, seed=7)
    assert main(["evaluate", str(ckpt), "--data", str(th), "--tumor-presence"]) == 0
    assert "n=6" in capsys.readouterr().out


def test_a_small_bootstrap_says_its_interval_is_rough(ckpt, flat, capsys):
    assert main(["evaluate", str(ckpt), "--data", str(flat), "--bootstrap", "20"]) == 0
    assert "(95% bootstrap, only 20 resamples: a rough interval)" in capsys.readouterr().out
    assert main(["evaluate", str(ckpt), "--data", str(flat), "--bootstrap", "300"]) == 0
    assert "(95% bootstrap)" in capsys.readouterr().out


def test_a_training_folder_changed_since_training_is_no_clean_held_out_test(base, flat):
    """Scans added after training move the carve: its 'held-out' test split may hold trained-on
    images. The recorded fingerprint tells."""
    from brainmri.config import DataConfig
    from brainmri.data.datasets import data_fingerprint, load_dataset

    grown = base / "grown_flat"
    shutil.copytree(flat, grown)
    carved = load_dataset(DataConfig(root=str(grown)))
    ck = _checkpoint(base / "own_fp.safetensors", {"root": str(grown), "split": "auto", "seed": 42, "fingerprint": data_fingerprint(carved)})
    r = evaluate_checkpoint(ck, grown, n_boot=20)
    assert "WARNING" not in r["split_note"] and "held-out test split" in r["split_note"]
    first = next((grown / "glioma").iterdir())
    shutil.copy(first, grown / "glioma" / "added_later.png")
    r = evaluate_checkpoint(ck, grown, n_boot=20)
    assert r["split_note"].startswith("WARNING") and "changed since training" in r["split_note"] and "no clean held-out test" in r["split_note"]
