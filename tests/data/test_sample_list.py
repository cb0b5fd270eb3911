"""scripts/sample_list.py: a seeded, class-stratified file list of an image-folder dataset."""
from __future__ import annotations

import csv

import numpy as np
from PIL import Image


def _folder(root, counts):
    for c, n in counts.items():
        (root / c).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(np.full((8, 8), i, np.uint8)).save(root / c / f"{c}_{i}.png")
    (root / "a" / "notes.txt").write_text("not an image")
    return root


def _rows(path):
    with open(path, newline="") as fh:
        return [(r["Image"], r["Class"]) for r in csv.DictReader(fh)]


def test_sample_is_stratified_seeded_and_disjoint_from_the_rest(tmp_path, load_script):
    sl = load_script("sample_list")
    root = _folder(tmp_path / "set", {"a": 30, "b": 10})
    out, rest = tmp_path / "pick.csv", tmp_path / "rest.csv"
    assert sl.main([str(root), "--n", "8", "--seed", "3", "--out", str(out), "--rest", str(rest)]) == 0
    picked, others = _rows(out), _rows(rest)
    assert [c for _, c in picked].count("a") == 6 and [c for _, c in picked].count("b") == 2
    assert len(others) == 32 and not {p for p, _ in picked} & {p for p, _ in others}
    assert all(p.endswith(".png") and p.startswith(str(root.resolve())) for p, _ in picked + others)
    assert sl.main([str(root), "--n", "8", "--seed", "3", "--out", str(tmp_path / "again.csv")]) == 0
    assert _rows(tmp_path / "again.csv") == picked
    assert sl.main([str(root), "--n", "8", "--seed", "4", "--out", str(tmp_path / "other.csv")]) == 0
    assert _rows(tmp_path / "other.csv") != picked


def test_bad_input_names_the_problem(tmp_path, capsys, load_script):
    sl = load_script("sample_list")
    root = _folder(tmp_path / "set", {"a": 3})
    assert sl.main([str(tmp_path / "missing"), "--n", "2", "--out", str(tmp_path / "x.csv")]) == 2
    assert "missing: not a folder" in capsys.readouterr().err
    assert sl.main([str(root), "--n", "9", "--out", str(tmp_path / "x.csv")]) == 2
    assert "between 1 and the 3 images" in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()
