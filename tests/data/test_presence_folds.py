"""scripts/presence_folds.py: cross-fitting folds never split a near-duplicate cluster and leave out
scans the main training set already holds."""
from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np

from brainmri.data.synthetic import make_phantom_dataset


def _rows(path: Path) -> list[str]:
    with open(path, newline="") as fh:
        return [Path(r["Image"]).name for r in csv.DictReader(fh)]


def test_assign_folds_keeps_groups_whole_and_balances_each_label(load_script):
    mod = load_script("presence_folds")
    groups = np.array([0, 0, 0, 1, 2, 3, 4, 5, 6, 6])
    labels = np.array(["yes"] * 8 + ["no"] * 2)
    fold = mod.assign_folds(groups, labels, k=2, seed=0)
    assert len(set(fold[:3])) == 1 and len(set(fold[8:])) == 1  # a cluster stays in one fold
    assert sorted(np.bincount(fold[:8], minlength=2)) == [4, 4]


def test_folds_leave_out_reference_copies_and_never_split_a_copy(tmp_path, load_script):
    yn = make_phantom_dataset(tmp_path / "yn", layout="flat", class_names=("no", "yes"), n_per_class=8, size=64, seed=3)
    yes = sorted((yn / "yes").iterdir())
    shutil.copy(yes[0], yn / "yes" / f"copy_of_{yes[0].name}")  # a within-set duplicate
    ref = make_phantom_dataset(tmp_path / "ref", layout="flat", class_names=("glioma", "notumor"), n_per_class=3, size=64, seed=9)
    shutil.copy(yes[1], ref / "glioma" / "seen.png")  # the main training set already holds yes[1]
    out = tmp_path / "folds"
    assert load_script("presence_folds").main([str(yn), "--reference", str(ref), "--out", str(out), "--k", "2"]) == 0
    f0, f1, every = _rows(out / "fold0.csv"), _rows(out / "fold1.csv"), _rows(out / "all.csv")
    assert yes[1].name not in every and len(every) == 8  # 8 tumors + 1 copy - 1 seen
    assert f0 and f1 and not set(f0) & set(f1) and sorted(f0 + f1) == sorted(every)
    pair = {yes[0].name, f"copy_of_{yes[0].name}"}
    assert pair <= set(f0) or pair <= set(f1)
    assert sorted(_rows(out / "train_except0.csv")) == sorted(f1)


def test_folds_report_a_missing_folder_without_a_traceback(tmp_path, capsys, load_script):
    assert load_script("presence_folds").main([str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    assert "missing" in capsys.readouterr().err
