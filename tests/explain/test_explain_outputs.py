"""``brainmri explain`` outputs: never lost work (a file brainmri did not write, or a folder of
scans, needs --force; a rerun replaces its own maps), names traceable to their inputs, folders,
globs and NIfTI slices as predict takes them, and no class asked of a class-agnostic method."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from brainmri.cli.main import main

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "inference"))
from inference_helpers import make_checkpoint, phantom  # noqa: E402


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("explain_out_ckpt") / "m.safetensors", size=64)


def _scan(path: Path, cls: int = 0, seed: int = 1) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(phantom(cls, seed=seed)).save(path)
    return path


def test_a_file_brainmri_did_not_write_is_kept_unless_force(ckpt, tmp_path, capsys):
    scan = _scan(tmp_path / "in" / "scan.png")
    out = tmp_path / "maps"
    out.mkdir()
    mine = out / "scan_overlay.png"
    mine.write_bytes(b"my own notes, not brainmri's")
    assert main(["explain", str(ckpt), str(scan), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "scan_overlay.png" in err and "brainmri did not write it" in err and "--force" in err
    assert mine.read_bytes() == b"my own notes, not brainmri's"
    assert not (out / "scan_heatmap.png").exists()  # refused before anything was written
    assert main(["explain", str(ckpt), str(scan), "--out", str(out), "--force"]) == 0
    assert Image.open(mine).info.get("Software") == "brainmri"


def test_a_rerun_replaces_its_own_maps(ckpt, tmp_path, capsys):
    scan = _scan(tmp_path / "scan.png")
    out = tmp_path / "maps"
    assert main(["explain", str(ckpt), str(scan), "--out", str(out)]) == 0
    first = {p.name for p in out.iterdir()}
    assert first == {f"scan_{k}.png" for k in ("original", "heatmap", "overlay", "explanation")}
    for p in out.iterdir():
        assert Image.open(p).info.get("Software") == "brainmri", p.name
    assert main(["explain", str(ckpt), str(scan), "--out", str(out)]) == 0
    assert {p.name for p in out.iterdir()} == first


def test_an_out_folder_of_scans_is_refused(ckpt, tmp_path, capsys):
    """--out set to a dataset's class folder would add the maps to it as scans."""
    folder = tmp_path / "Testing" / "glioma"
    scans = [_scan(folder / f"g{k}.png", seed=k) for k in range(2)]
    assert main(["explain", str(ckpt), *map(str, scans), "--out", str(folder)]) == 2
    err = capsys.readouterr().err
    assert f"--out {folder}" in err and "holds 2 image(s) brainmri did not write" in err
    assert sorted(p.name for p in folder.iterdir()) == ["g0.png", "g1.png"]


def test_names_keep_dots_and_lines_name_the_input(ckpt, tmp_path, capsys):
    a = _scan(tmp_path / "1.5T_patientA.jpg".replace(".jpg", ".png"), seed=3)
    b = _scan(tmp_path / "1.5T_patientB.png", seed=4)
    out = tmp_path / "maps"
    assert main(["explain", str(ckpt), str(a), str(b), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert (out / "1.5T_patientA_overlay.png").is_file() and (out / "1.5T_patientB_overlay.png").is_file()
    assert f"{a}: predicted" in text and f"{b}: predicted" in text


def test_folders_globs_and_nifti_slices(ckpt, tmp_path, capsys):
    import nibabel as nib

    folder = tmp_path / "scans"
    _scan(folder / "a.png", seed=1)
    _scan(folder / "sub" / "b.png", seed=2)
    _scan(tmp_path / "c.png", seed=3)
    stack = np.stack([np.rot90(phantom(k % 4, size=64, seed=k), -1) for k in range(9)], axis=2).astype(np.float32)
    vol = tmp_path / "brain.nii.gz"
    nib.save(nib.Nifti1Image(stack, np.eye(4)), str(vol))
    out = tmp_path / "maps"
    rc = main(["explain", str(ckpt), str(folder), str(tmp_path / "c*.png"), str(vol), str(tmp_path / "none*.png"),
               "--slices", "2:5", "--out", str(out)])
    captured = capsys.readouterr()
    assert rc == 1  # the pattern that matches nothing is reported; the others are explained
    assert "none*.png: no files match this pattern" in captured.err
    names = {p.name for p in out.iterdir() if p.name.endswith("_overlay.png")}
    assert names == {"a_overlay.png", "b_overlay.png", "c_overlay.png", "brain_slice002_overlay.png",
                     "brain_slice003_overlay.png", "brain_slice004_overlay.png"}


def test_a_class_for_a_class_agnostic_method_is_refused(ckpt, tmp_path, capsys):
    scan = _scan(tmp_path / "scan.png")
    assert main(["explain", str(ckpt), str(scan), "--method", "eigencam", "--class", "glioma", "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert "eigencam is class-agnostic" in err and err.count("\n") == 1
    assert main(["explain", str(ckpt), str(scan), "--method", "eigencam", "--out", str(tmp_path / "m")]) == 0
    assert "eigencam map (class-agnostic)" in capsys.readouterr().out
