"""scripts/volume_slices.py: a NIfTI volume becomes a folder of slice images for data.extra_train."""
from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from brainmri.data.io import read_image
from brainmri.inference.nifti import volume_name


def _volume(path: Path) -> Path:
    vol = np.zeros((32, 32, 10), np.float32)
    yy, xx = np.mgrid[:32, :32]
    head = (yy - 16) ** 2 + (xx - 16) ** 2 < 12**2
    rng = np.random.default_rng(0)
    for z in range(2, 8):  # slices 0, 1, 8, 9 are empty
        vol[..., z][head] = rng.uniform(50, 150, int(head.sum()))
    nib.save(nib.Nifti1Image(vol, np.eye(4)), str(path))
    return path


def test_writes_the_slices_that_hold_a_head_and_skips_empty_ones(tmp_path, load_script):
    mod = load_script("volume_slices")
    vol = _volume(tmp_path / "sub1_T2.nii.gz")
    written = mod.write_slices(vol, tmp_path / "out", slices="all")
    assert [p.name for p in written] == [f"sub1_T2_axial_{z:03d}.png" for z in range(2, 8)]
    img = read_image(written[0])
    assert img.shape == (32, 32) and img.max() > 0 and img[0, 0] == 0


def test_refuses_a_folder_inside_a_git_checkout_and_names_a_missing_volume(tmp_path, capsys, load_script):
    mod = load_script("volume_slices")
    vol = _volume(tmp_path / "v.nii")
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    assert mod.main([str(vol), "--out", str(repo / "runs" / "slices")]) == 2
    assert "inside the git checkout" in capsys.readouterr().err
    assert not (repo / "runs").exists()
    assert mod.main([str(tmp_path / "nope.nii.gz"), "--out", str(tmp_path / "o")]) == 2
    assert "nope.nii.gz: no such file" in capsys.readouterr().err
    assert mod.main([str(vol), "--out", str(tmp_path / "o"), "--slices", "bogus"]) == 2
    assert "slices='bogus'" in capsys.readouterr().err


def test_volume_name_drops_the_nifti_suffix():
    assert volume_name(Path("a/M2307_T2.nii.gz")) == "M2307_T2"
    assert volume_name("b.NII") == "b"
