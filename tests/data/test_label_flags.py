"""The labels-file flags (``--csv-path-column``, ``--csv-label-column``, ``--label-names``,
``--npz-images-key``, ``--npz-labels-key``): a CSV named like seed 003's (``filename,target``,
labels 0 / 1) is read by ``data``, ``evaluate``, ``calibrate`` and ``train`` without a config,
and a bad value is refused in one line naming the flag; CSV rows naming files in symlinked
folders by bare name are found."""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from brainmri.checkpoint import CheckpointMeta, save_checkpoint
from brainmri.cli.main import main
from brainmri.config import DataConfig, ModelConfig, PreprocessConfig
from brainmri.data.datasets import load_dataset
from brainmri.data.synthetic import make_phantom_dataset
from brainmri.models import create_model

FLAGS = ["--csv-path-column", "filename", "--csv-label-column", "target", "--label-names", "0=notumor,1=tumor"]


def _rename_columns(root: Path) -> Path:
    """Seed 003's CSV: columns ``filename,target``, labels 0 (healthy) / 1 (tumor)."""
    src = root / "labels.csv"
    rows = list(csv.reader(open(src, newline="")))
    assert rows[0] == ["Image", "Class"]
    rows[0] = ["filename", "target"]
    src.unlink()
    with open(root / "meta.csv", "w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    return root


@pytest.fixture(scope="module")
def seed003(tmp_path_factory) -> Path:
    root = make_phantom_dataset(tmp_path_factory.mktemp("seed003") / "set", layout="csv", class_names=("notumor", "tumor"),
                                n_per_class=8, size=32, seed=2)
    return _rename_columns(root)


@pytest.fixture(scope="module")
def tumor2_ckpt(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    meta = CheckpointMeta(ModelConfig(name="seed003_cnn"), ["notumor", "tumor"], PreprocessConfig(image_size=32), task="tumor2",
                          calibration={"temperature": 1.0, "fitted_on": "val"})
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "m.safetensors", create_model("seed003_cnn", 2), meta)


def test_data_counts_reads_renamed_columns_and_codes_through_flags(seed003, capsys) -> None:
    assert main(["data", "counts", str(seed003), "--preset", "tumor2", *FLAGS, "--json"]) == 0
    counts = json.loads(capsys.readouterr().out)["counts"]
    totals = {c: sum(counts[s].get(c, 0) for s in counts) for c in ("notumor", "tumor")}
    expected = {"notumor": 0, "tumor": 0}
    for row in csv.DictReader(open(seed003 / "meta.csv", newline="")):
        expected[("notumor", "tumor")[int(row["target"])]] += 1
    assert totals == expected and sum(expected.values()) > 0


def test_without_the_flags_the_csv_is_not_read_and_the_warning_names_them(seed003, cli) -> None:
    code, text = cli("data", "counts", str(seed003), "--preset", "tumor2")
    assert code != 0
    assert "meta.csv: not read as the labels CSV" in text and "--csv-path-column / --csv-label-column" in text


def test_a_code_the_label_names_lack_is_named_with_its_row(seed003, cli) -> None:
    code, text = cli("data", "counts", str(seed003), "--preset", "tumor2", "--csv-path-column", "filename",
                          "--csv-label-column", "target", "--label-names", "0=notumor,2=tumor")
    assert code != 0 and "unknown label '1'" in text and "meta.csv, row" in text and "--label-names" in text


@pytest.mark.parametrize("value, why", [("0=notumor,1", "'1' is not CODE=CLASS"), ("0=a,0=b", "code '0' is given twice"),
                                         ("=tumor", "is not CODE=CLASS")])
def test_malformed_label_names_are_refused_by_argparse(value, why, seed003, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["data", "counts", str(seed003), "--label-names", value])
    assert exc.value.code == 2 and why in capsys.readouterr().err


def test_evaluate_scores_the_renamed_csv_with_its_labels(seed003, tumor2_ckpt, tmp_path) -> None:
    out = tmp_path / "r.json"
    assert main(["-q", "evaluate", str(tumor2_ckpt), "--data", str(seed003), *FLAGS, "--bootstrap", "10", "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    truth = {Path(row["filename"]).stem: ("notumor", "tumor")[int(row["target"])]
             for row in csv.DictReader(open(seed003 / "meta.csv", newline=""))}
    assert r["n"] == len(truth) and r["predictions"]
    assert all(p["true"] == truth[Path(p["path"]).stem] for p in r["predictions"])


def test_evaluate_tumor_presence_takes_the_flags_too(seed003, tumor2_ckpt, capsys) -> None:
    assert main(["-q", "evaluate", str(tumor2_ckpt), "--data", str(seed003), "--tumor-presence", *FLAGS]) == 0
    out = capsys.readouterr().out
    n_tumor = sum(row["target"] == "1" for row in csv.DictReader(open(seed003 / "meta.csv", newline="")))
    assert f"/{n_tumor}" in out  # the tumor rate is counted over the CSV's tumor rows


def test_calibrate_takes_the_flags(seed003, tumor2_ckpt, tmp_path, cli) -> None:
    code, text = cli("calibrate", str(tumor2_ckpt), "--data", str(seed003), *FLAGS, "-o", str(tmp_path / "c.safetensors"))
    # every row is read (then refused as too few to fit a temperature on): without the flags it fails on the columns
    assert code != 0 and "only 16 readable images" in text, text


def test_train_flags_set_the_data_config(tmp_path) -> None:
    from brainmri.cli.main import build_parser
    from brainmri.cli.train import build_config

    args = build_parser().parse_args(["train", "--data", str(tmp_path), *FLAGS, "--npz-images-key", "X_train"])
    cfg = build_config(args)
    assert (cfg.data.csv_path_column, cfg.data.csv_label_column) == ("filename", "target")
    assert cfg.data.csv_label_names == {"0": "notumor", "1": "tumor"} and cfg.data.npz_images_key == "X_train"


def test_npz_key_flags_pick_the_arrays(tmp_path, capsys) -> None:
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "set.npz", X_train=rng.integers(0, 255, (12, 32, 32), dtype=np.uint8),
             y_train=np.array([0, 1] * 6), other=rng.integers(0, 255, (12, 32, 32), dtype=np.uint8))
    assert main(["data", "counts", str(tmp_path / "set.npz"), "--npz-images-key", "X_train", "--npz-labels-key", "y_train",
                 "--label-names", "0=notumor,1=tumor", "--json"]) == 0
    counts = json.loads(capsys.readouterr().out)["counts"]
    assert sum(v.get("tumor", 0) for v in counts.values()) == 6
    code = main(["data", "counts", str(tmp_path / "set.npz"), "--npz-images-key", "nope"])
    assert code != 0 and "--npz-images-key / data.npz_images_key" in capsys.readouterr().err


def test_bare_names_in_symlinked_folders_are_found_and_a_link_loop_is_walked_once(tmp_path) -> None:
    real = make_phantom_dataset(tmp_path / "elsewhere", layout="flat", class_names=("a", "b"), n_per_class=3, size=32, seed=4)
    root = tmp_path / "set"
    root.mkdir()
    os.symlink(real, root / "images", target_is_directory=True)
    os.symlink(root, real / "loop", target_is_directory=True)  # a link back up the tree
    files = sorted(p for p in real.rglob("*.png"))
    with open(root / "labels.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["Image", "Class"])
        w.writerows((f.name, f.parent.name) for f in files)  # bare names only
    index = load_dataset(DataConfig(root=str(root)))
    assert len(index.samples) == len(files) == 6
    assert sorted(Path(s.path).name for s in index.samples) == sorted(f.name for f in files)


def test_rows_naming_images_outside_the_dataset_are_read_and_warned_about(tmp_path, caplog) -> None:
    other = make_phantom_dataset(tmp_path / "other", layout="flat", class_names=("a", "b"), n_per_class=2, size=32, seed=5)
    root = make_phantom_dataset(tmp_path / "set", layout="flat", class_names=("a", "b"), n_per_class=2, size=32, seed=6)
    inside = sorted(root.rglob("*.png"))
    far = sorted(other.rglob("*.png"))
    with open(root / "labels.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["Image", "Class"])
        w.writerows((str(f.relative_to(root)), f.parent.name) for f in inside)
        w.writerow([f"../other/{far[0].relative_to(other)}", far[0].parent.name])
        w.writerow([str(far[1]), far[1].parent.name])  # absolute
    index = load_dataset(DataConfig(root=str(root), csv="labels.csv"))
    assert len(index.samples) == len(inside) + 2
    assert "2 of 6 rows name images outside" in caplog.text and "row 5" in caplog.text
    caplog.clear()
    with open(root / "labels.csv", "w", newline="") as fh:  # only its own images: no warning
        w = csv.writer(fh)
        w.writerow(["Image", "Class"])
        w.writerows((str(f.relative_to(root)), f.parent.name) for f in inside)
    load_dataset(DataConfig(root=str(root), csv="labels.csv"))
    assert "outside" not in caplog.text
