"""A rerun replaces brainmri's own earlier outputs; any other file in the way needs ``--force``
(evaluate, predict, data audit, compare), two flags never name one file, and a full disk names
the file it could not write."""
from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest

from brainmri.outputs import written_by_brainmri

USER_TEXT = "my own notes, not brainmri's\n"


def _foreign(path: Path) -> Path:
    path.write_text(USER_TEXT)
    return path


def test_every_writer_marks_its_file_and_a_user_file_is_not_marked(tmp_path):
    from brainmri.evaluation.compare import write_tables
    from brainmri.outputs import write_json

    write_json({"accuracy": float("nan")}, tmp_path / "r.json")
    data = json.loads((tmp_path / "r.json").read_text())
    assert list(data) == ["generator", "accuracy"] and data["generator"].startswith("brainmri ") and data["accuracy"] is None
    row = {"model": "m", "image_size": 32, "epochs": 1, "n_test": 4, "accuracy": 0.5, "accuracy_ci": [0.4, 0.6], "macro_f1": 0.5,
           "macro_f1_ci": [0.4, 0.6], "ece": 0.1, "params": 10, "train_images_per_s": 1.0, "inference_ms": 1.0, "checkpoint": "x"}
    write_tables([row], "data", tmp_path)
    for name in ("r.json", "compare.json", "compare.md", "compare.png"):
        assert written_by_brainmri(tmp_path / name), name
    assert (tmp_path / "compare.md").read_text().splitlines()[1].startswith("| model |")  # the mark is an invisible comment line
    assert not written_by_brainmri(_foreign(tmp_path / "notes.json"))
    (tmp_path / "plain.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    assert not written_by_brainmri(tmp_path / "plain.png")
    (tmp_path / "empty").write_bytes(b"")
    assert written_by_brainmri(tmp_path / "empty")  # nothing in it to lose


def test_evaluate_replaces_its_own_outputs_and_refuses_a_user_file_without_force(ckpt32, phantom_split, tmp_path, cli):
    js, html = tmp_path / "eval.json", tmp_path / "eval.html"
    args = ("-q", "evaluate", ckpt32, "--data", phantom_split, "--bootstrap", "5", "--leak-threshold", "-1")
    code, text = cli(*args, "--json", js, "--report", html)
    assert code == 0, text
    assert written_by_brainmri(js) and written_by_brainmri(html)
    code, text = cli(*args, "--json", js, "--report", html)  # the same command again
    assert code == 0, text
    mine = _foreign(tmp_path / "mine.json")
    code, text = cli(*args, "--json", mine)
    assert code == 2 and f"--json {mine}: the file exists and brainmri did not write it; pass --force" in text
    assert mine.read_text() == USER_TEXT
    code, text = cli(*args, "--json", mine, "--force")
    assert code == 0 and json.loads(mine.read_text())["n"] > 0


def test_predict_csv_never_replaces_a_labels_csv_without_force(ckpt32, phantom_split, tmp_path, cli):
    scans = phantom_split / "Testing" / "glioma"
    labels = tmp_path / "labels.csv"
    labels.write_text("path,label\na.png,glioma\n")  # a dataset's label file: the classic victim
    code, text = cli("-q", "predict", scans, "-c", ckpt32, "--csv", labels)
    assert code == 2 and "did not write it" in text and labels.read_text() == "path,label\na.png,glioma\n"
    out = tmp_path / "pred.csv"
    for _ in range(2):  # the second run replaces the first one's CSV
        code, text = cli("-q", "predict", scans, "-c", ckpt32, "--csv", out, "--json", tmp_path / "pred.json")
        assert code == 0, text
    assert out.read_text().startswith("path,label,confidence,out_of_distribution,")
    assert json.loads((tmp_path / "pred.json").read_text())["results"]
    code, text = cli("-q", "predict", scans, "-c", ckpt32, "--csv", out, "--json", out)
    assert code == 2 and "--json and --csv name the same file" in text


def test_audit_refuses_a_user_file_and_one_file_for_two_outputs(phantom_split, tmp_path, cli):
    mine = _foreign(tmp_path / "mine.json")
    code, text = cli("data", "audit", phantom_split, "--no-cache", "--json", mine)
    assert code == 2 and "did not write it" in text and mine.read_text() == USER_TEXT
    same = tmp_path / "same.png"
    code, text = cli("data", "audit", phantom_split, "--no-cache", "--json", same, "--montage", same)
    assert code == 2 and "--json and --montage name the same file" in text and not same.exists()
    js, png = tmp_path / "a.json", tmp_path / "a.png"
    for _ in range(2):
        code, text = cli("data", "audit", phantom_split, "--no-cache", "--json", js, "--montage", png)
        assert code == 0, text
    assert json.loads(js.read_text())["images"] > 0 and written_by_brainmri(png)


def test_compare_keeps_an_earlier_comparison_unless_forced(tmp_path, cli, monkeypatch):
    import brainmri.evaluation.compare as cmp

    monkeypatch.setattr(cmp, "compare_models", lambda *a, **k: pytest.fail("a model was trained"))
    row = {"model": "seed002_cnn", "image_size": 32, "epochs": 1, "n_test": 4, "accuracy": 0.5, "accuracy_ci": [0.4, 0.6],
           "macro_f1": 0.5, "macro_f1_ci": [0.4, 0.6], "ece": 0.1, "params": 10, "train_images_per_s": 1.0, "inference_ms": 1.0,
           "checkpoint": "x"}
    out = tmp_path / "cmp"
    cmp.write_tables([row], "data", out)
    before = (out / "compare.md").read_text()
    (tmp_path / "data").mkdir()
    code, text = cli("-q", "compare", "--data", tmp_path / "data", "--models", "seed003_cnn", "--out", out)
    assert code == 2 and "holds an earlier comparison (seed002_cnn:" in text and "pass --force" in text
    assert (out / "compare.md").read_text() == before


def test_a_failed_compare_leaves_no_empty_folders(tmp_path, cli):
    out = tmp_path / "cmp"
    code, text = cli("-q", "compare", "--data", tmp_path / "nope", "--models", "seed002_cnn", "--image-size", "32", "--out", out)
    assert code == 2, text
    assert not out.exists()


def test_a_full_disk_names_the_file(tmp_path, monkeypatch, cli, ckpt32, phantom_split):
    import os

    import brainmri.checkpoint as ck

    monkeypatch.setattr(ck.os, "fdopen", lambda fd, mode: _Full(fd))
    out = tmp_path / "r.json"
    code, text = cli("-q", "evaluate", ckpt32, "--data", phantom_split, "--bootstrap", "5", "--leak-threshold", "-1", "--json", out)
    assert code == 2
    assert f"error: {out}: No space left on device" in text and "(unknown path)" not in text
    assert not out.exists() and not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


class _Full:
    """A file object whose writes fail as on a full disk."""

    def __init__(self, fd):
        import os

        os.close(fd)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def write(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")
