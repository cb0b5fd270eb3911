"""``brainmri predict``: files, folders, globs, bad files, JSON/CSV, disclaimer, explain."""
from __future__ import annotations

import csv
import json

import pytest

from brainmri.cli.main import main

DISCLAIMER = "For research use only; not a medical device."


def test_folder_with_a_bad_file_exits_1_and_processes_the_rest(tiny_ckpt, phantom_files, tmp_path, capsys) -> None:
    folder = phantom_files["png"].parent
    (folder / "broken.png").write_bytes(phantom_files["png"].read_bytes()[:50])
    (folder / ".hidden.png").write_bytes(b"ignored")
    (folder / "README.txt").write_text("not a scan, not taken from a folder")
    out = tmp_path / "r.json"
    code = main(["predict", str(folder), "--checkpoint", str(tiny_ckpt), "--json", str(out), "--batch-size", "2"])
    assert code == 1
    stdout = capsys.readouterr().out
    assert DISCLAIMER in stdout and "broken.png" in stdout
    payload = json.loads(out.read_text())
    assert payload["disclaimer"] == DISCLAIMER
    by_name = {r["path"].rsplit("/", 1)[-1]: r for r in payload["results"]}
    assert set(by_name) == {"a.png", "b.jpg", "c.png", "broken.png"}
    assert "corrupt" in by_name["broken.png"]["error"]
    for name in ("a.png", "b.jpg", "c.png"):
        r = by_name[name]
        assert r["error"] is None and r["label"] in payload["model"]["classes"]
        assert set(r) >= {"probabilities", "confidence", "out_of_distribution", "ood_reason"}


def test_files_and_glob_all_good_exit_0_with_csv(tiny_ckpt, phantom_files, tmp_path, capsys) -> None:
    out = tmp_path / "r.csv"
    pattern = str(phantom_files["png"].parent / "**" / "*.png")
    code = main(["predict", str(phantom_files["jpeg"]), pattern, "--checkpoint", str(tiny_ckpt), "--csv", str(out)])
    assert code == 0
    rows = list(csv.DictReader(out.open()))
    assert [r["path"].rsplit("/", 1)[-1] for r in rows] == ["b.jpg", "a.png", "c.png"]
    assert all(r["error"] == "" and r["label"] for r in rows)
    assert {"p_glioma", "p_meningioma", "p_notumor", "p_pituitary"} <= set(rows[0])
    assert DISCLAIMER in capsys.readouterr().out


def test_missing_path_and_empty_glob_are_errors(tiny_ckpt, phantom_files, tmp_path) -> None:
    out = tmp_path / "r.json"
    code = main(["predict", str(phantom_files["png"]), str(tmp_path / "nope.png"), str(tmp_path / "*.dcm"), "-c", str(tiny_ckpt), "--json", str(out)])
    assert code == 1
    errors = [r["error"] for r in json.loads(out.read_text())["results"]]
    assert errors[0] is None and "file not found" in errors[1] and "no files match" in errors[2]


def test_user_errors_exit_2(tiny_ckpt, phantom_files, tmp_path, capsys) -> None:
    assert main(["predict", str(phantom_files["png"]), "-c", str(tmp_path / "none.safetensors")]) == 2
    assert "checkpoint file not found" in capsys.readouterr().err
    assert main(["predict", str(phantom_files["png"]), "-c", str(tmp_path)]) == 2
    assert "is a folder, not a checkpoint file (a run folder holds best.safetensors)" in capsys.readouterr().err
    assert main(["info", str(tmp_path)]) == 2
    assert "is a folder, not a checkpoint file" in capsys.readouterr().err
    assert main(["predict", str(phantom_files["png"]), "-c", str(tiny_ckpt), "--slices", "half"]) == 2
    assert main(["predict", str(phantom_files["png"]), "-c", str(tiny_ckpt), "--axis", "diagonal"]) == 2


def test_onnx_backend_from_the_cli(tiny_ckpt, phantom_files, tmp_path) -> None:
    outs = {}
    for backend in ("torch", "onnx"):
        out = tmp_path / f"{backend}.json"
        assert main(["predict", str(phantom_files["png"]), "-c", str(tiny_ckpt), "--backend", backend, "--json", str(out)]) == 0
        outs[backend] = json.loads(out.read_text())["results"][0]["probabilities"]
    for c, p in outs["torch"].items():
        assert outs["onnx"][c] == pytest.approx(p, abs=1e-5)


def test_explain_writes_overlays(tiny_ckpt, phantom_files, tmp_path) -> None:
    pytest.importorskip("pytorch_grad_cam")
    from PIL import Image

    out_dir = tmp_path / "cams"
    assert main(["predict", str(phantom_files["png"]), str(phantom_files["jpeg"]), "-c", str(tiny_ckpt), "--explain", str(out_dir)]) == 0
    files = sorted(out_dir.glob("*.cam.png"))
    assert len(files) == 2
    with Image.open(files[0]) as im:
        assert im.mode == "RGB" and im.size == (80, 80)
