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


def test_mask_counts_and_skips_the_slices_holding_a_lesion(tmp_path, capsys, load_script):
    mod = load_script("volume_slices")
    vol = _volume(tmp_path / "v.nii.gz")
    mask = np.zeros((32, 32, 10), np.uint8)
    mask[14:18, 14:18, 4:6] = 1  # axial slices 4 and 5; sagittal / coronal 14..17
    nib.save(nib.Nifti1Image(mask, np.eye(4)), str(tmp_path / "m.nii.gz"))
    out = tmp_path / "out"
    assert mod.main([str(vol), "--slices", "all", "--out", str(out), "--mask", str(tmp_path / "m.nii.gz"), "--skip-masked"]) == 0
    assert "2 of the 6 slices hold voxels" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == [f"v_axial_{z:03d}.png" for z in (2, 3, 6, 7)]
    written = mod.write_slices(vol, tmp_path / "sag", axis="sagittal", slices="all")
    hits = mod.masked_slices(tmp_path / "m.nii.gz", written, "sagittal", (32, 32, 10))
    assert sorted(int(p.stem[-3:]) for p in hits) == [14, 15, 16, 17]
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 8), np.uint8), np.eye(4)), str(tmp_path / "small.nii.gz"))
    assert mod.main([str(vol), "--slices", "all", "--out", str(tmp_path / "o2"), "--mask", str(tmp_path / "small.nii.gz")]) == 2
    assert "is not the volume's (32, 32, 10)" in capsys.readouterr().err and not (tmp_path / "o2").exists()
    assert mod.main([str(vol), "--out", str(tmp_path / "o3"), "--skip-masked"]) == 2
    assert "--skip-masked needs --mask" in capsys.readouterr().err
