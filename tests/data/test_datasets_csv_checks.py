"""Labels CSVs that are easy to get wrong: the same image on two rows (refused when the labels
differ, kept once with one warning when they agree), and a folder whose labels CSV lacks a column
(named, instead of the folder being read as class folders)."""
from __future__ import annotations

import csv
import logging
from pathlib import Path

import pytest

from brainmri.config import DataConfig
from brainmri.data.datasets import load_dataset
from brainmri.errors import DatasetError


def _rows(root: Path) -> list[dict]:
    with open(root / "labels.csv", newline="") as f:
        return list(csv.DictReader(f))


def _write(root: Path, rows: list[dict], fields: list[str] | None = None) -> None:
    fields = fields or list(rows[0])
    with open(root / "labels.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)


def test_an_image_listed_twice_with_two_labels_is_refused(make_dataset):
    root = make_dataset("csv", n_per_class=3, class_names=("a", "b"))
    rows = _rows(root)
    first = rows[0]
    other = "1" if first["Class"] == "0" else "0"
    _write(root, rows + [{**first, "Class": other}])
    row = len(rows) + 1
    with pytest.raises(DatasetError) as err:
        load_dataset(DataConfig(root=str(root)))
    text = str(err.value)
    assert text.startswith(f"{root / 'labels.csv'}: image ") and first["Image"] in text and "listed twice with different labels" in text
    assert "row 1 (line 2)" in text and f"row {row} (line {row + 1})" in text
    assert f"labels: {first['Class']} on row 1 (line 2) and {other} on row {row}" in text and "\n" not in text
    with pytest.raises(DatasetError) as err:  # with class names, the names and the raw codes
        load_dataset(DataConfig(root=str(root), class_names=["a", "b"]))
    names = {"0": "a", "1": "b"}
    assert f"{names[first['Class']]} (label '{first['Class']}') on row 1" in str(err.value)
    assert f"{names[other]} (label '{other}') on row {row}" in str(err.value)


def test_an_image_listed_twice_by_two_spellings_is_the_same_image(make_dataset):
    root = make_dataset("csv", n_per_class=3, class_names=("a", "b"), csv_paths="stem")
    rows = _rows(root)
    stem = rows[0]["Image"]
    other = "1" if rows[0]["Class"] == "0" else "0"
    _write(root, rows + [{"Image": f"images/{stem}.png", "Class": other}])
    with pytest.raises(DatasetError, match="listed twice with different labels"):
        load_dataset(DataConfig(root=str(root)))


def test_an_image_listed_twice_with_one_label_is_kept_once_with_one_warning(make_dataset, caplog):
    root = make_dataset("csv", n_per_class=3, class_names=("a", "b"))
    rows = _rows(root)
    _write(root, rows + [rows[0], rows[1]])
    with caplog.at_level(logging.WARNING, logger="brainmri.data.datasets"):
        index = load_dataset(DataConfig(root=str(root), split="stratified", val_ratio=0.0, test_ratio=0.0))
    assert len(index.samples) == len(rows) and len({s.path for s in index.samples}) == len(rows)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "repeat an image" in r.getMessage()]
    assert len(warnings) == 1
    assert "2 row(s)" in warnings[0].getMessage() and "labels.csv" in warnings[0].getMessage()


def test_a_folder_whose_labels_csv_lacks_the_label_column_names_the_csv(make_dataset):
    root = make_dataset("csv", n_per_class=3, class_names=("a", "b"))
    rows = _rows(root)
    _write(root, [{"Image": r["Image"], "Label": r["Class"]} for r in rows], ["Image", "Label"])
    for unsplit in ("carve", "test"):
        with pytest.raises(DatasetError) as err:
            load_dataset(DataConfig(root=str(root)), unsplit=unsplit)
        text = str(err.value)
        assert text.startswith(f"{root / 'labels.csv'}: missing column(s) Class (columns: Image, Label)")
        assert "'Class'" in text and "images" not in text.split(":")[-1]
    with pytest.raises(DatasetError, match=r"labels\.csv: missing column\(s\) Class"):  # a model's classes given (evaluate)
        load_dataset(DataConfig(root=str(root), class_names=["a", "b"]), unsplit="test")


def test_a_folder_whose_labels_csv_is_not_text_names_the_csv(make_dataset):
    root = make_dataset("csv", n_per_class=2, class_names=("a", "b"))
    (root / "labels.csv").write_bytes(bytes([0x89, 0xC2, 0x00, 0xBB, 0xF9, 0xAE]) * 50)
    with pytest.raises(DatasetError, match=r"labels\.csv: not a text CSV file"):
        load_dataset(DataConfig(root=str(root)))


def test_class_folders_beside_a_metadata_csv_are_still_read_as_folders(make_dataset, caplog):
    root = make_dataset("flat", n_per_class=3, class_names=("a", "b"))
    (root / "meta.csv").write_text("Image,Age\na_0000,40\n")
    with caplog.at_level(logging.WARNING, logger="brainmri.data.datasets"):
        index = load_dataset(DataConfig(root=str(root)))
    assert index.layout == "flat" and index.class_names == ["a", "b"]
    assert "meta.csv: not read as the labels CSV" in caplog.text
