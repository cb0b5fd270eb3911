"""Bad input through the command line (issue #7): every bad file gets a clear message naming it and
the problem, the exit code says something failed, no traceback, and the rest of the batch is
still processed (valid files are predicted, training goes on with the readable images)."""
from __future__ import annotations

import contextlib
import csv
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from brainmri.data.synthetic import make_phantom_dataset
from reliability_corpus import CASE_NAMES, write_corpus

RASTER_BAD = ["zero_byte.jpg", "truncated.jpg", "text_named.png", "html_named.jpg", "one_pixel.png", "bomb.png"]
RASTER_OK = ["png_named.jpg", "gray16.png", "cmyk.jpg", "animated.gif", "exif_rotated.jpg"]
TRAIN_FLAGS = ["--model", "seed003_cnn", "--image-size", "32", "--epochs", "1", "--cache-dir", "none", "--precision", "32",
               "--batch-size", "8", "--run-name", "run"]


# ------------------------------------------------------------------ predict


@pytest.fixture(scope="module")
def predicted(corpus, ckpt32, tmp_path_factory) -> tuple[int, str, dict[str, dict]]:
    """One ``brainmri predict`` over the whole corpus folder (output captured by hand: module scope)."""
    from brainmri.cli.main import main

    folder, _ = corpus
    json_out = tmp_path_factory.mktemp("rel_predict") / "results.json"
    buf_out, buf_err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(buf_out), contextlib.redirect_stderr(buf_err):
        code = main(["-q", "predict", str(folder), "-c", str(ckpt32), "--json", str(json_out), "--slices", "middle:3"])
    rows = {Path(r["path"]).name: r for r in json.loads(json_out.read_text())["results"]}
    return code, buf_out.getvalue() + buf_err.getvalue(), rows


def test_predict_batch_exit_code_and_no_traceback(predicted) -> None:
    code, text, rows = predicted
    assert code == 1  # some files failed
    assert "Traceback" not in text and "internal error" not in text
    assert sorted(rows) == sorted(CASE_NAMES)
    n_bad = sum(1 for r in rows.values() if r["error"])
    n_ood = sum(1 for r in rows.values() if r["out_of_distribution"])
    assert f"{len(rows) - n_bad - n_ood} classified, {n_ood} not classified (out of distribution), {n_bad} failed" in text


@pytest.mark.parametrize("name", CASE_NAMES)
def test_predict_reports_each_file(predicted, corpus, name: str) -> None:
    _, text, rows = predicted
    case = corpus[1][name]
    row = rows[name]
    if case.ok:
        assert row["error"] is None, row["error"]
        assert set(row["probabilities"]) == {"glioma", "meningioma", "notumor", "pituitary"}
        assert abs(sum(row["probabilities"].values()) - 1) < 1e-4
    else:
        assert row["label"] is None and row["probabilities"] == {}
        assert re.search(re.escape(name) + r".*(" + case.reason + ")", row["error"]), row["error"]
        assert name in text  # the table names the file too


def test_predict_volume_and_rotation_details(predicted) -> None:
    rows = predicted[2]
    assert "4-D" in rows["vol4d.nii.gz"]["info"]["note"] and len(rows["vol4d.nii.gz"]["slices"]) == 3
    vol_line = next(line for line in predicted[1].splitlines() if "vol4d.nii.gz" in line)
    assert "the first one is used" in vol_line  # the table says which volume, not only the JSON
    assert rows["monochrome1.dcm"]["info"]["photometric_interpretation"] == "MONOCHROME1"
    # EXIF orientation 6 turns the 80 wide x 48 tall JPEG upright: 48 wide x 80 tall
    assert (rows["exif_rotated.jpg"]["info"]["width"], rows["exif_rotated.jpg"]["info"]["height"]) == (48, 80)


@pytest.mark.parametrize("name", ["text_named.png", "bomb.png"])
def test_predict_single_bad_file_in_a_subprocess(corpus, ckpt32, name: str) -> None:
    folder, cases = corpus
    proc = subprocess.run([sys.executable, "-m", "brainmri", "predict", str(folder / name), "-c", str(ckpt32)],
                          capture_output=True, text=True, timeout=120)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 1, text
    assert "Traceback" not in text
    assert re.search(re.escape(name) + r".*(" + cases[name].reason + ")", text), text


def test_predict_missing_path_is_reported_and_others_go_on(ckpt32, tmp_path, cli) -> None:
    from reliability_corpus import write_valid_pngs

    [good] = write_valid_pngs(tmp_path, n=1)
    code, text = cli("predict", good, tmp_path / "nope.png", "-c", ckpt32)
    assert code == 1
    assert "nope.png: file not found" in text and "1 classified" in text


# ------------------------------------------------------------------ datasets with bad files


@pytest.fixture(scope="module")
def dirty_dataset(tmp_path_factory) -> Path:
    """A 32 px phantom split dataset with the raster corpus inside Training/glioma and Testing/notumor."""
    root = make_phantom_dataset(tmp_path_factory.mktemp("rel_dirty"), layout="split", n_per_class=6, test_per_class=3, size=32, seed=3)
    write_corpus(root / "Training" / "glioma", raster_only=True)
    write_corpus(root / "Testing" / "notumor", raster_only=True)
    return root


def _bad_paths_named(text_or_items, where: str) -> None:
    for name in RASTER_BAD:
        assert f"{where}/{name}" in text_or_items, f"{where}/{name} not reported"


def test_audit_lists_every_unreadable_file_with_its_reason(dirty_dataset, tmp_path, cli) -> None:
    code, text = cli("data", "audit", dirty_dataset, "--no-cache", "--json", tmp_path / "audit.json")
    assert code == 0
    report = json.loads((tmp_path / "audit.json").read_text())
    unreadable = {Path(u["path"]).parent.name + "/" + Path(u["path"]).name: u["reason"] for u in report["unreadable"]}
    for where in ("glioma", "notumor"):
        _bad_paths_named(unreadable, where)
        for name in RASTER_OK:
            assert f"{where}/{name}" not in unreadable
    assert re.search("decompression bomb", unreadable["glioma/bomb.png"])
    assert re.search(r"empty \(0 bytes\)", unreadable["glioma/zero_byte.jpg"])
    assert len(report["unreadable"]) == 2 * len(RASTER_BAD)
    assert f"unreadable: {2 * len(RASTER_BAD)}" in text and "glioma/bomb.png" in text


def test_train_skips_unreadable_images_and_finishes(dirty_dataset, tmp_path, cli) -> None:
    code, text = cli("-q", "train", "--data", dirty_dataset, "--output-dir", tmp_path / "runs", *TRAIN_FLAGS)
    assert code == 0, text
    summary = json.loads((tmp_path / "runs" / "run" / "summary.json").read_text())
    unreadable = "\n".join(summary["unreadable"])
    _bad_paths_named(unreadable, "glioma")
    assert "decompression bomb" in unreadable and "only 1x1 pixels" in unreadable
    # 4 classes x 6 phantoms + the 5 awkward-but-valid files, shared between train and val
    assert summary["train_images"] + summary["val_images"] == 4 * 6 + len(RASTER_OK)
    assert "skipped" in text and "bomb.png" in text  # the log names the skipped files
    assert (tmp_path / "runs" / "run" / "best.safetensors").is_file()


def test_evaluate_skips_unreadable_test_images(dirty_dataset, ckpt32, tmp_path, cli) -> None:
    code, text = cli("evaluate", ckpt32, "--data", dirty_dataset, "--bootstrap", "20", "--json", tmp_path / "eval.json")
    assert code == 0, text
    result = json.loads((tmp_path / "eval.json").read_text())
    unreadable = "\n".join(result["unreadable"])
    _bad_paths_named(unreadable, "notumor")
    assert result["n"] == 4 * 3 + len(RASTER_OK)
    assert f"skipped {len(RASTER_BAD)} unreadable image(s)" in text


# ------------------------------------------------------------------ unusable datasets: exit 2


def _npz_nan(root: Path) -> tuple[Path, str]:
    path = make_phantom_dataset(root, layout="npz", n_per_class=3, size=32)
    with np.load(path) as z:
        arrays = dict(z)
    images = arrays["images"].astype(np.float32)
    images[2, 5, 5] = np.nan
    images[4, 0, 0] = np.inf
    np.savez(path, **{**arrays, "images": images})
    return path, r"data\.npz: array 'images' contains NaN or infinite values \(first at image 2\)"


def _npz_mismatch(root: Path) -> tuple[Path, str]:
    path = make_phantom_dataset(root, layout="npz", n_per_class=3, size=32)
    with np.load(path) as z:
        arrays = dict(z)
    np.savez(path, **{**arrays, "labels": arrays["labels"][:-2]})
    return path, r"data\.npz: 12 images .* but 10 labels .* lengths must match"


def _csv_missing_file(root: Path) -> tuple[Path, str]:
    path = make_phantom_dataset(root, layout="csv", n_per_class=3, size=32)
    (path / "images" / "Image5.png").unlink()
    return path, r"labels\.csv.*image 'Image5' not found"


def _csv_unknown_label(root: Path) -> tuple[Path, str]:
    path = make_phantom_dataset(root, layout="csv", n_per_class=3, size=32, csv_labels="name")
    rows = list(csv.reader(open(path / "labels.csv", newline="")))
    rows[4][1] = "banana"
    with open(path / "labels.csv", "w", newline="") as f:
        csv.writer(f).writerows(rows)
    return path, r"labels\.csv.*unknown label 'banana'|labels\.csv.*'banana'"


BAD_DATASETS = {"npz_nan": _npz_nan, "npz_mismatch": _npz_mismatch, "csv_missing_file": _csv_missing_file, "csv_unknown_label": _csv_unknown_label}


@pytest.mark.parametrize("command", ["audit", "train", "evaluate"])
@pytest.mark.parametrize("kind", list(BAD_DATASETS))
def test_unusable_dataset_exits_2_naming_the_file(kind: str, command: str, ckpt32, tmp_path, cli) -> None:
    data, pattern = BAD_DATASETS[kind](tmp_path / kind)
    argv = {
        "audit": ["data", "audit", data, "--no-cache", "--preset", "tumor4"],
        "train": ["-q", "train", "--data", data, "--preset", "tumor4", "--output-dir", tmp_path / "runs", *TRAIN_FLAGS],
        "evaluate": ["evaluate", ckpt32, "--data", data, "--bootstrap", "20"],
    }[command]
    code, text = cli(*argv)
    assert code == 2, text
    assert re.search(pattern, text), text
    assert not list((tmp_path / "runs").rglob("*.safetensors"))  # nothing trained
