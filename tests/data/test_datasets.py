"""Dataset discovery: every layout, presets and class maps, splits, and every bad input."""
from __future__ import annotations

import csv
import logging
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from brainmri.config import DataConfig
from brainmri.data.datasets import DatasetIndex, Sample, load_dataset, stratified_split
from brainmri.errors import ConfigError, DatasetError

TUMOR4 = ["glioma", "meningioma", "notumor", "pituitary"]


def load(root, **kw) -> DatasetIndex:
    return load_dataset(DataConfig(root=str(root), **kw))


def per_split_class(index: DatasetIndex) -> dict[str, Counter]:
    return {s: Counter(index.class_names[x.label] for x in index.split(s)) for s in ("train", "val", "test")}


# ---------------------------------------------------------------------------------------------- layouts


def test_split_layout_carves_val_from_training(phantom_split: Path) -> None:
    index = load(phantom_split, val_ratio=0.25)
    assert index.layout == "split" and index.official_split
    assert index.class_names == TUMOR4
    counts = index.counts()
    for c in TUMOR4:
        assert counts["test"][c] == 6  # Testing/ untouched
        assert counts["train"][c] + counts["val"][c] == 16
        assert counts["val"][c] == 4  # 25% of 16, per class
    assert all("Testing" in s.path for s in index.split("test"))
    assert not any("Testing" in s.path for s in index.split("val"))


def test_split3_layout_keeps_validation_folder(make_dataset) -> None:
    root = make_dataset("split3", n_per_class=4, test_per_class=2, val_per_class=3)
    index = load(root)
    assert {c: index.counts()["val"][c] for c in TUMOR4} == dict.fromkeys(TUMOR4, 3)
    assert all("Validation" in s.path for s in index.split("val"))


@pytest.mark.parametrize("names", [("train", "test"), ("TRAIN", "Test"), ("training", "testing")])
def test_split_folder_aliases_any_case(make_dataset, names) -> None:
    root = make_dataset("split", n_per_class=5, test_per_class=2, class_names=("a", "b"))
    (root / "Training").rename(root / names[0])
    (root / "Testing").rename(root / names[1])
    index = load(root)
    assert index.counts()["test"] == {"a": 2, "b": 2}
    assert sum(index.counts()["train"].values()) + sum(index.counts()["val"].values()) == 10


def test_flat_layout_stratified_80_10_10(make_dataset) -> None:
    root = make_dataset("flat", n_per_class=20, class_names=("a", "b", "c"))
    index = load(root)
    assert index.layout == "flat" and not index.official_split
    for split, n in (("train", 16), ("val", 2), ("test", 2)):
        assert index.counts()[split] == {"a": n, "b": n, "c": n}
    assert len({s.path for s in index.samples}) == 60  # each image once


def test_flat_split_is_deterministic_per_seed(phantom_flat: Path) -> None:
    a, b, c = load(phantom_flat, seed=1), load(phantom_flat, seed=1), load(phantom_flat, seed=2)
    assert [(s.path, s.split) for s in a.samples] == [(s.path, s.split) for s in b.samples]
    assert {s.path for s in a.split("test")} != {s.path for s in c.split("test")}


def test_forced_stratified_pools_official_split(phantom_split: Path) -> None:
    index = load(phantom_split, split="stratified", val_ratio=0.1, test_ratio=0.2)
    assert not index.official_split
    assert index.counts()["test"] == dict.fromkeys(TUMOR4, 4)  # 20% of 22 per class
    assert any("Training" in s.path for s in index.split("test"))


@pytest.mark.parametrize("csv_labels,csv_paths", [("index", "stem"), ("name", "relative")])
def test_csv_layout(make_dataset, csv_labels, csv_paths) -> None:
    root = make_dataset("csv", n_per_class=5, class_names=("notumor", "tumor"), csv_labels=csv_labels, csv_paths=csv_paths)
    index = load(root, preset="tumor2")
    assert index.layout == "csv" and index.class_names == ["notumor", "tumor"]
    assert sum(index.counts()[s]["tumor"] for s in index.counts()) == 5
    rows = list(csv.DictReader(open(root / "labels.csv")))
    by_stem = {Path(s.path).stem: index.class_names[s.label] for s in index.samples}
    for row in rows:  # the CSV's own labels, image by image
        expected = ("notumor", "tumor")[int(row["Class"])] if csv_labels == "index" else row["Class"]
        assert by_stem[Path(row["Image"]).stem] == expected


def test_csv_integer_labels_without_names_and_custom_columns(tmp_path: Path, make_dataset) -> None:
    root = make_dataset("csv", n_per_class=3, class_names=("x", "y"))
    text = (root / "labels.csv").read_text().replace("Image,Class", "file,target")
    (root / "labels.csv").unlink()
    (root / "meta").mkdir()
    (root / "meta" / "table.csv").write_text(text)
    cfg = dict(csv="meta/table.csv", csv_path_column="file", csv_label_column="target")
    assert load(root, **cfg).class_names == ["0", "1"]
    named = load(root, **cfg, csv_label_names={"0": "healthy", "1": "lesion"})
    assert named.class_names == ["healthy", "lesion"]


def test_integer_codes_fewer_than_the_fixed_classes_are_refused_not_guessed(make_dataset) -> None:
    """Seed 003's 0 / 1 against a four-class model's classes: 0 would be read as glioma."""
    root = make_dataset("csv", n_per_class=3, class_names=("x", "y"))
    with pytest.raises(DatasetError, match=r"labels are the integer codes 0, 1, but the classes are glioma, meningioma, notumor, pituitary"):
        load(root, preset="tumor4")
    named = load(root, preset="tumor2", csv_label_names={"0": "notumor", "1": "tumor"})
    assert named.class_names == ["notumor", "tumor"]


def test_csv_split_column_is_official(tmp_path: Path, make_dataset) -> None:
    root = make_dataset("csv", n_per_class=4, class_names=("a", "b"), csv_labels="name")
    rows = list(csv.reader(open(root / "labels.csv")))
    rows[0].append("split")
    for i, row in enumerate(rows[1:]):
        row.append("test" if i < 2 else "train")
    with open(root / "labels.csv", "w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    index = load(root)
    assert index.official_split and index.counts()["test"] == {"a": 1, "b": 1}


def test_csv_split_missing_a_class_is_named(make_dataset) -> None:
    root = make_dataset("csv", n_per_class=4, class_names=("a", "b"), csv_labels="name")
    rows = list(csv.reader(open(root / "labels.csv")))
    rows[0].append("split")
    for row in rows[1:]:
        row.append("test" if row[1] == "a" else "train")  # every test row is class a
    with open(root / "labels.csv", "w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    with pytest.raises(DatasetError, match="class 'b' is missing from split 'test'"):
        load(root)


def test_training_folder_only_carves_val_and_test(make_dataset) -> None:
    root = make_dataset("split", n_per_class=20, class_names=("a", "b"))
    shutil.rmtree(root / "Testing")
    counts = load(root, val_ratio=0.1, test_ratio=0.2).counts()
    assert counts["val"] == {"a": 2, "b": 2} and counts["test"] == {"a": 4, "b": 4} and counts["train"] == {"a": 14, "b": 14}


def test_npz_layout_and_round_trip_names(make_dataset) -> None:
    path = make_dataset("npz", n_per_class=10, class_names=("a", "b"))
    index = load(path)
    assert index.layout == "npz" and index.class_names == ["a", "b"]
    assert isinstance(index.arrays, np.ndarray) and index.arrays.shape == (20, 32, 32)
    s = index.samples[0]
    assert s.index is not None and s.path == f"{path}#{s.index}"
    assert load(path.parent).layout == "npz"  # a folder holding one NPZ


def test_npz_keys_found_by_shape_and_one_hot_labels(tmp_path: Path) -> None:
    path = tmp_path / "image_data.npz"
    one_hot = np.eye(2, dtype=np.float32)[[0, 1, 1, 0, 1, 0]]
    np.savez(path, scans=np.zeros((6, 8, 8), np.uint8), target_onehot=one_hot)
    with pytest.raises(DatasetError, match="cannot find the labels array"):
        load(path)  # 2-D labels are not guessed by shape
    index = load(path, npz_labels_key="target_onehot", class_names=["no", "yes"])
    assert Counter(index.class_names[s.label] for s in index.samples) == {"no": 3, "yes": 3}
    assert [s.label for s in sorted(index.samples, key=lambda s: s.index)] == [0, 1, 1, 0, 1, 0]


def test_npz_custom_keys_and_channels(tmp_path: Path) -> None:
    path = tmp_path / "x.npz"
    np.savez(path, scans=np.zeros((6, 8, 8, 3), np.float32), dx=np.array([0, 1] * 3))
    index = load(path, npz_images_key="scans", npz_labels_key="dx", preset="tumor2")
    assert Counter(index.class_names[s.label] for s in index.samples) == {"notumor": 3, "tumor": 3}
    assert index.arrays.shape == (6, 8, 8, 3)


# ---------------------------------------------------------------------------------------------- presets


def test_tumor2_preset_merges_tumor_types(phantom_split: Path) -> None:
    index = load(phantom_split, preset="tumor2")
    assert index.class_names == ["notumor", "tumor"]
    counts = index.counts()
    assert counts["test"] == {"notumor": 6, "tumor": 18}
    for s in index.samples:
        assert (Path(s.path).parent.name == "notumor") == (index.class_names[s.label] == "notumor")


def test_tumor2_preset_maps_yes_no_folders(make_dataset) -> None:
    root = make_dataset("flat", n_per_class=10, class_names=("no", "yes"))
    index = load(root, preset="tumor2")
    assert index.class_names == ["notumor", "tumor"]
    for s in index.samples:
        assert index.class_names[s.label] == {"no": "notumor", "yes": "tumor"}[Path(s.path).parent.name]


def test_alzheimer_preset_and_explicit_map(make_dataset) -> None:
    names = ("MildDemented", "ModerateDemented", "NonDemented", "VeryMildDemented")
    root = make_dataset("flat", n_per_class=4, class_names=names)
    index = load(root, preset="alzheimer4")
    assert index.class_names == ["Mild_Demented", "Moderate_Demented", "Non_Demented", "Very_Mild_Demented"]
    merged = load(root, class_map={"MildDemented": "demented", "ModerateDemented": "demented", "VeryMildDemented": "demented", "NonDemented": "normal"})
    assert merged.class_names == ["demented", "normal"]
    assert sum(merged.counts()[s]["demented"] for s in merged.counts()) == 12


def test_explicit_class_order_wins(phantom_split: Path) -> None:
    order = ["pituitary", "notumor", "meningioma", "glioma"]
    index = load(phantom_split, class_names=order)
    assert index.class_names == order
    s = next(s for s in index.samples if "/pituitary/" in s.path)
    assert s.label == 0


def test_folder_class_outside_preset_is_named(make_dataset) -> None:
    root = make_dataset("flat", n_per_class=3, class_names=("glioma", "cyst"))
    with pytest.raises(DatasetError, match="'cyst'"):
        load(root, preset="tumor4")


def test_leak_free_split_is_wired(phantom_split: Path) -> None:
    pytest.importorskip("brainmri.data.audit")
    index = load(phantom_split, split="leak-free")
    assert len(index.samples) == 4 * 22 and {s.split for s in index.samples} == {"train", "val", "test"}


def test_leak_free_without_audit_is_a_config_error(phantom_split: Path, monkeypatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "brainmri.data.audit", None)  # import fails
    with pytest.raises(ConfigError, match="leak-free"):
        load(phantom_split, split="leak-free")


# ---------------------------------------------------------------------------------------------- bad input


def test_hidden_and_non_image_files_skipped_in_one_warning(make_dataset, caplog) -> None:
    root = make_dataset("flat", n_per_class=4, class_names=("a", "b"))
    for name in (".DS_Store", "._a_0000.png", ".hidden.jpg"):
        (root / "a" / name).write_bytes(b"junk")
    (root / "b" / "notes.txt").write_text("x")
    (root / "b" / "scan.dcm.json").write_text("{}")
    with caplog.at_level(logging.WARNING, logger="brainmri.data.datasets"):
        index = load(root)
    assert index.skipped == {"hidden": 3, "not_image": 2}
    assert len(index.samples) == 8
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "skipped 5 files: 3 hidden, 2 not images" in warnings[0]


def test_empty_class_folder_is_named(make_dataset) -> None:
    root = make_dataset("flat", n_per_class=3, class_names=("a", "b"))
    (root / "empty").mkdir()
    with pytest.raises(DatasetError, match="'empty' has no images"):
        load(root)


def test_class_missing_from_split_is_named(make_dataset) -> None:
    root = make_dataset("split", n_per_class=3, class_names=("a", "b"))
    shutil.rmtree(root / "Testing" / "b")
    with pytest.raises(DatasetError, match=r"class 'b' is missing from split 'test'"):
        load(root)


def test_missing_root_and_empty_root(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="not found"):
        load(tmp_path / "nope")
    with pytest.raises(DatasetError, match="no split folders, class subfolders"):
        load(tmp_path)


def _rewrite_csv_row(root: Path, row: int, column: str, value: str) -> None:
    rows = list(csv.DictReader(open(root / "labels.csv")))
    rows[row - 1][column] = value
    with open(root / "labels.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["Image", "Class"])
        w.writeheader()
        w.writerows(rows)


def test_csv_row_naming_missing_file(make_dataset) -> None:
    root = make_dataset("csv", n_per_class=3, class_names=("a", "b"))
    _rewrite_csv_row(root, 3, "Image", "Image999")
    with pytest.raises(DatasetError, match=r"row 3 .*'Image999' not found"):
        load(root)


def test_csv_unknown_label(make_dataset) -> None:
    root = make_dataset("csv", n_per_class=3, class_names=("a", "b"))
    _rewrite_csv_row(root, 2, "Class", "7")
    with pytest.raises(DatasetError, match=r"row 2 .*unknown label '7'"):
        load(root, class_names=["a", "b"])
    with pytest.raises(DatasetError, match=r"row 2 .*unknown label '7'"):
        load(root, csv_label_names={"0": "a", "1": "b"})


def test_csv_missing_column_is_named(make_dataset) -> None:
    root = make_dataset("csv", n_per_class=2, class_names=("a", "b"))
    with pytest.raises(DatasetError, match="missing column.*Label"):
        load(root, csv="labels.csv", csv_label_column="Label")


def test_npz_nan_is_refused_by_name(tmp_path: Path) -> None:
    images = np.zeros((4, 8, 8), np.float32)
    images[2, 3, 3] = np.nan
    path = tmp_path / "bad.npz"
    np.savez(path, images=images, labels=np.array([0, 1, 0, 1]))
    with pytest.raises(DatasetError, match=r"bad\.npz.*NaN or infinite.*image 2"):
        load(path)


def test_npz_mismatched_lengths_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "short.npz"
    np.savez(path, images=np.zeros((5, 8, 8), np.uint8), labels=np.array([0, 1, 0]))
    with pytest.raises(DatasetError, match=r"short\.npz: 5 images .* 3 labels"):
        load(path)


@pytest.mark.parametrize(
    "arrays,match",
    [
        ({"images": np.zeros((4, 8), np.uint8), "labels": np.zeros(4)}, "shape"),
        ({"images": np.array([["a"] * 4] * 4), "labels": np.zeros(4)}, "dtype"),
        ({"a": np.zeros((4, 8, 8)), "b": np.zeros((4, 8, 8)), "labels": np.zeros(4)}, "cannot find the images.*arrays: a, b"),
        ({"images": np.zeros((4, 8, 8)), "labels": np.array([0.5, 1, 0, 1])}, "non-integer"),
    ],
)
def test_npz_bad_arrays(tmp_path: Path, arrays, match) -> None:
    path = tmp_path / "d.npz"
    np.savez(path, **arrays)
    with pytest.raises(DatasetError, match=match):
        load(path)


def test_npz_not_a_zip_and_pickles_refused(tmp_path: Path) -> None:
    (tmp_path / "junk.npz").write_text("not a zip")
    with pytest.raises(DatasetError, match="junk.npz: not a readable NPZ"):
        load(tmp_path / "junk.npz")
    obj = np.empty(4, dtype=object)
    np.savez(tmp_path / "p.npz", images=np.zeros((4, 8, 8)), labels=obj)
    with pytest.raises(DatasetError, match="pickled"):
        load(tmp_path / "p.npz")


# ---------------------------------------------------------------------------------------------- splitting


def test_stratified_split_ratios_per_class_and_determinism() -> None:
    items = list(range(300))
    labels = [0] * 100 + [1] * 150 + [2] * 50
    parts = stratified_split(items, labels, {"val": 0.1, "test": 0.2}, seed=7)
    assert parts == stratified_split(items, labels, {"val": 0.1, "test": 0.2}, seed=7)
    assert sorted(sum(parts.values(), [])) == items
    for split, ratio in (("val", 0.1), ("test", 0.2), ("train", 0.7)):
        got = Counter(labels[i] for i in parts[split])
        assert got == {0: round(100 * ratio), 1: round(150 * ratio), 2: round(50 * ratio)}
    other = stratified_split(items, labels, {"val": 0.1, "test": 0.2}, seed=8)
    assert set(other["test"]) != set(parts["test"])


def test_stratified_split_gives_small_classes_one_each() -> None:
    parts = stratified_split(list("abcd"), [0, 0, 0, 0], {"val": 0.1, "test": 0.1}, seed=0)
    assert len(parts["val"]) == 1 and len(parts["test"]) == 1 and len(parts["train"]) == 2


def test_sample_and_index_public_api() -> None:
    index = DatasetIndex("r", ["a", "b"], [Sample("x", 0, "train"), Sample("y", 1, "test"), Sample("z", 1, "train")])
    assert index.labels("train") == [0, 1]
    assert [s.path for s in index.split("test")] == ["y"]
    assert index.counts() == {"train": {"a": 1, "b": 1}, "test": {"a": 0, "b": 1}}


# ---------------------------------------------------------------------------------------------- CLI


def test_cli_synth_and_export_npz_round_trip(tmp_path: Path) -> None:
    from brainmri.cli.main import main

    assert main(["data", "synth", str(tmp_path / "s"), "--n-per-class", "3", "--size", "32", "--formats", "png,jpg"]) == 0
    out = tmp_path / "o.npz"
    assert main(["data", "export-npz", str(tmp_path / "s"), "--out", str(out), "--size", "24", "--preset", "tumor2"]) == 0
    with np.load(out) as z:
        assert z["images"].shape == (20, 24, 24) and z["images"].dtype == np.uint8
        assert list(z["class_names"]) == ["notumor", "tumor"]
        assert Counter(z["split"].tolist())["test"] == 8
    again = load(out)
    assert again.official_split and again.class_names == ["notumor", "tumor"]
    assert again.counts()["test"] == {"notumor": 2, "tumor": 6}


def test_export_npz_never_replaces_its_input_or_an_existing_file_and_names_what_it_writes(tmp_path: Path, capsys) -> None:
    from brainmri.cli.main import main

    assert main(["data", "synth", str(tmp_path / "s"), "--n-per-class", "3", "--size", "32"]) == 0
    npz = tmp_path / "set.npz"
    assert main(["data", "export-npz", str(tmp_path / "s"), "--out", str(tmp_path / "set"), "--size", "24"]) == 0
    assert f"{npz}: " in capsys.readouterr().out and npz.is_file()  # the name numpy writes, said as such
    before = npz.read_bytes()
    assert main(["data", "export-npz", str(npz), "--out", str(npz), "--size", "24", "--force"]) == 2
    assert "is the input file" in capsys.readouterr().err and npz.read_bytes() == before
    assert main(["data", "export-npz", str(tmp_path / "s"), "--out", str(npz), "--size", "24"]) == 2
    assert "the file exists; pass --force" in capsys.readouterr().err and npz.read_bytes() == before
    assert main(["data", "export-npz", str(tmp_path / "s"), "--out", str(npz), "--size", "32", "--force"]) == 0
    with np.load(npz) as z:
        assert z["images"].shape[1:] == (32, 32)


def test_cli_bad_input_exits_2(tmp_path: Path, capsys) -> None:
    from brainmri.cli.main import main

    assert main(["data", "counts", str(tmp_path / "missing")]) == 2
    assert "missing: dataset folder not found" in capsys.readouterr().err
    assert main(["data", "synth", str(tmp_path / "s"), "--formats", "gif"]) == 2
    mine = tmp_path / "mine" / "glioma"
    mine.mkdir(parents=True)
    (mine / "glioma_0000.png").write_bytes(b"a real scan")
    assert main(["data", "synth", str(tmp_path / "mine"), "--layout", "flat"]) == 2
    assert "mine: is not empty; synth writes a new dataset" in capsys.readouterr().err
    assert (mine / "glioma_0000.png").read_bytes() == b"a real scan"  # never replaced
    for bad, says in ((["--test-per-class", "-1"], "--test-per-class=-1 must be >= 1"), (["--classes", "a,b,a"], "names a class twice")):
        assert main(["data", "synth", str(tmp_path / "new"), *bad]) == 2
        assert says in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- real data


def _real(real_datasets: Path, name: str) -> Path:
    path = real_datasets / name
    if not path.is_dir():
        pytest.skip(f"{path} absent")
    return path


@pytest.mark.realdata
def test_real_tumor4_counts(real_datasets: Path) -> None:
    index = load(_real(real_datasets, "brain-tumor-mri"), preset="tumor4")
    counts = index.counts()
    train = {c: counts["train"][c] + counts["val"][c] for c in TUMOR4}
    assert train == {"glioma": 1321, "meningioma": 1339, "notumor": 1595, "pituitary": 1457}
    assert counts["test"] == {"glioma": 300, "meningioma": 306, "notumor": 405, "pituitary": 300}


@pytest.mark.realdata
def test_real_alzheimer_and_yes_no_counts(real_datasets: Path) -> None:
    alz = load(_real(real_datasets, "alzheimer-mri"), preset="alzheimer4")
    totals = Counter(alz.class_names[s.label] for s in alz.samples)
    assert totals == {"Mild_Demented": 896, "Moderate_Demented": 64, "Non_Demented": 3200, "Very_Mild_Demented": 2240}
    yn = load(_real(real_datasets, "brain-mri-yes-no"), preset="tumor2")
    assert Counter(yn.class_names[s.label] for s in yn.samples) == {"tumor": 155, "notumor": 98}


# --- evaluation sets: load_dataset(cfg, unsplit="test") ------------------------------------------


def test_unsplit_test_scores_every_image_of_a_flat_folder_while_training_still_carves(make_dataset):
    from brainmri.config import DataConfig
    from brainmri.data.datasets import load_dataset

    root = make_dataset("flat", n_per_class=10)
    carved = load_dataset(DataConfig(root=str(root)))
    assert set(carved.counts()) == {"train", "val", "test"} and len(carved.split("test")) < 40
    whole = load_dataset(DataConfig(root=str(root)), unsplit="test")
    assert len(whole.split("test")) == 40 and set(whole.counts()) == {"test"}
    forced = load_dataset(DataConfig(root=str(root), split="stratified"), unsplit="test")
    assert len(forced.split("test")) == 40  # an evaluation set is never re-split


def test_unsplit_test_keeps_real_splits_and_accepts_test_only_sets(make_dataset, tmp_path):
    import shutil

    from brainmri.config import DataConfig
    from brainmri.data.datasets import load_dataset
    from brainmri.errors import DatasetError

    root = make_dataset("split", n_per_class=6, test_per_class=3)
    a, b = load_dataset(DataConfig(root=str(root))), load_dataset(DataConfig(root=str(root)), unsplit="test")
    assert a.samples == b.samples and a.official_split == b.official_split
    tonly = tmp_path / "tonly"
    shutil.copytree(root / "Testing", tonly / "Testing")
    with pytest.raises(DatasetError, match="no training split"):
        load_dataset(DataConfig(root=str(tonly)))
    idx = load_dataset(DataConfig(root=str(tonly)), unsplit="test")
    assert set(idx.counts()) == {"test"} and len(idx.samples) == 12 and idx.official_split


def test_unsplit_test_accepts_classes_missing_from_the_data(make_dataset):
    from brainmri.config import DataConfig
    from brainmri.data.datasets import load_dataset
    from brainmri.errors import DatasetError

    root = make_dataset("flat", class_names=("glioma", "notumor"), n_per_class=3)
    cfg = DataConfig(root=str(root), class_names=["glioma", "meningioma", "notumor", "pituitary"])
    with pytest.raises(DatasetError, match="meningioma' has no images"):
        load_dataset(cfg)
    idx = load_dataset(cfg, unsplit="test")
    assert idx.class_names == cfg.class_names and sorted({s.label for s in idx.samples}) == [0, 2]
    with pytest.raises(Exception, match="unsplit"):
        load_dataset(cfg, unsplit="bogus")


def test_npz_arrays_chosen_by_shape_are_named(tmp_path, caplog):
    from brainmri.config import DataConfig
    from brainmri.data.datasets import load_dataset

    np.savez(tmp_path / "wrongkeys.npz", a=np.zeros((4, 32, 32)), b=np.arange(4))
    with caplog.at_level("WARNING"):
        load_dataset(DataConfig(root=str(tmp_path / "wrongkeys.npz")), unsplit="test")
    text = caplog.text
    assert "using 'a' (shape (4, 32, 32)) as the images" in text and "using 'b' (shape (4,)) as the labels" in text
    assert "every image in 'a' is blank" in text


def test_folder_with_one_csv_of_wrong_columns_reports_the_columns(tmp_path):
    from brainmri.config import DataConfig
    from brainmri.data.datasets import load_dataset
    from brainmri.errors import DatasetError

    (tmp_path / "labels.csv").write_text("file,lbl\na.png,0\n")
    with pytest.raises(DatasetError, match=r"missing column\(s\) Image, Class \(columns: file, lbl\)"):
        load_dataset(DataConfig(root=str(tmp_path)))


def test_litter_deep_inside_a_class_folder_is_not_a_scan(make_dataset) -> None:
    root = make_dataset("split", n_per_class=3)
    first = next((root / "Training" / "glioma").iterdir())
    for litter in ("__MACOSX/sub", ".ipynb_checkpoints/x", "@eaDir/thumb"):
        (root / "Training" / "glioma" / litter).mkdir(parents=True)
        shutil.copy(first, root / "Training" / "glioma" / litter / "y.png")
    index = load(root)
    assert not any(part in s.path for s in index.samples for part in ("__MACOSX", ".ipynb_checkpoints", "@eaDir"))


def test_class_folders_spelled_apart_across_splits_join_under_the_preset(make_dataset) -> None:
    root = make_dataset("split", n_per_class=3)
    for c in ("glioma", "meningioma", "pituitary"):
        (root / "Training" / c).rename(root / "Training" / f"{c}_tumor")
    (root / "Training" / "notumor").rename(root / "Training" / "no_tumor")
    index = load(root, preset="tumor4")
    assert index.class_names == ["glioma", "meningioma", "notumor", "pituitary"]
    assert {index.class_names[s.label] for s in index.samples if s.split == "train"} == set(index.class_names)


def test_a_class_folder_of_dicom_files_says_what_it_holds(tmp_path: Path) -> None:
    for c in ("glioma", "notumor"):
        (tmp_path / c).mkdir()
        (tmp_path / c / "IM0001.dcm").write_bytes(b"\0" * 132 + b"DICM")
    with pytest.raises(DatasetError, match=r"class 'glioma' has no images \(1 other files: 1 \.dcm; .*DICOM and NIfTI files are read by predict"):
        load(tmp_path)


def test_a_csv_beside_class_folders_that_is_not_read_says_why(tmp_path: Path, make_dataset, caplog) -> None:
    root = make_dataset("flat", n_per_class=3)
    (root / "labels.csv").write_text("Image;Class\na.png;glioma\n")
    with caplog.at_level(logging.WARNING):
        load(root)
    assert "labels.csv: not read as the labels CSV (its fields are separated by ';', not ',')" in caplog.text


def test_a_folder_of_datasets_read_as_classes_is_warned_about(tmp_path: Path, make_dataset, caplog) -> None:
    parent = tmp_path / "downloads"
    parent.mkdir()
    shutil.copytree(make_dataset("flat", n_per_class=3), parent / "first")
    shutil.copytree(make_dataset("flat", n_per_class=3, class_names=("a", "b")), parent / "second")
    with caplog.at_level(logging.WARNING):
        load(parent)
    assert "class 'first' gathers its" in caplog.text and "point --data at" in caplog.text


def test_a_relative_root_through_dot_dot_reads(tmp_path: Path, make_dataset, monkeypatch) -> None:
    """``../shared/datasets/...`` as the README writes it: '..' is no hidden folder."""
    import os

    root = make_dataset("split", n_per_class=3)
    here = tmp_path / "elsewhere" / "deeper"
    here.mkdir(parents=True)
    monkeypatch.chdir(here)
    index = load(Path(os.path.relpath(root, here)))
    assert len(index.samples) > 0 and index.class_names == ["glioma", "meningioma", "notumor", "pituitary"]


def test_csv_paths_written_on_windows_or_a_mac_are_found(tmp_path: Path) -> None:
    """Backslash separators (a CSV exported on Windows) and decomposed (NFD) names as macOS
    stores them: the files exist, so they are found."""
    import unicodedata

    from PIL import Image

    from brainmri.data.synthetic import make_phantom

    folder = tmp_path / "Brain Tumor"
    folder.mkdir()
    rows = ["Image,Class"]
    for i in range(8):
        name = unicodedata.normalize("NFD", f"Schädel_{i}.png") if i % 2 else f"scan_{i}.png"
        Image.fromarray(make_phantom(i % 2, 32, np.random.default_rng(i))).save(folder / name)
        listed = unicodedata.normalize("NFC", name)
        rows.append(f"Brain Tumor\\{listed},{i % 2}")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    index = load(tmp_path)
    assert len(index.samples) == 8


def test_a_stray_csv_label_is_warned_about(make_dataset, caplog) -> None:
    root = make_dataset("csv", n_per_class=30, class_names=("x", "y"))
    lines = (root / "labels.csv").read_text().splitlines()
    lines[3] = lines[3].rsplit(",", 1)[0] + ",7"
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    with caplog.at_level(logging.WARNING):
        load(root)
    assert "class '7' has only 1 image(s)" in caplog.text and "a typo in the labels?" in caplog.text
