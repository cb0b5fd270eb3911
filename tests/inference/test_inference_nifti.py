"""NIfTI volumes: slice selection, per-slice results, volume summary, bad volumes."""
from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from inference_helpers import phantom

from brainmri.errors import ConfigError, ImageReadError
from brainmri.inference.nifti import parse_slices


def _volume(n: int = 7, size: int = 64) -> np.ndarray:
    """Axial phantom slices stacked along the third (superior) axis, slice k -> class k % 4."""
    # a slice image (rows = anterior->posterior after the reader's rot90) is stored as [x, y]
    return np.stack([np.rot90(phantom(k % 4, size=size, seed=k), -1) for k in range(n)], axis=2).astype(np.float32)


def _save(path, data, zooms=(1.0, 1.0, 1.0)) -> str:
    img = nib.Nifti1Image(data, np.diag([*zooms, 1.0]))
    nib.save(img, str(path))
    return str(path)


@pytest.mark.parametrize(
    ("spec", "n", "expected"),
    [("middle", 9, [4]), ("middle:3", 9, [3, 4, 5]), ("all", 3, [0, 1, 2]), ("2:5", 9, [2, 3, 4]), ("0:9:4", 9, [0, 4, 8]), ("7", 9, [7]), ("5:40", 9, [5, 6, 7, 8])],
)
def test_parse_slices(spec: str, n: int, expected: list[int]) -> None:
    assert parse_slices(spec, n) == expected


@pytest.mark.parametrize("spec", ["half", "1:2:0", "-3:4", "a:b", "middle:0", "10:5", "4:4"])
def test_bad_slice_spec(spec: str) -> None:
    with pytest.raises(ConfigError, match="slices="):
        parse_slices(spec, 10)


def test_slices_summary_and_orientation(tiny_clf, tmp_path) -> None:
    vol = _volume()
    path = _save(tmp_path / "v.nii.gz", vol)
    pred = tiny_clf.predict(path, slices="1:6").to_dict()
    assert [s["index"] for s in pred["slices"]] == [1, 2, 3, 4, 5]
    mean = {c: np.mean([s["probabilities"][c] for s in pred["slices"]]) for c in tiny_clf.class_names}
    for c in mean:
        assert pred["probabilities"][c] == pytest.approx(mean[c], abs=1e-5)
    suspicion = {s["index"]: max(v for k, v in s["probabilities"].items() if k != "notumor") for s in pred["slices"]}
    assert pred["most_suspicious_slices"] == sorted(suspicion, key=suspicion.get, reverse=True)[:3]
    assert pred["info"]["axis"] == "axial" and pred["info"]["num_slices"] == 7


def test_middle_default_and_other_axes(tiny_clf, tmp_path) -> None:
    path = _save(tmp_path / "v.nii", _volume(n=9))
    assert [s["index"] for s in tiny_clf.predict(path).slices] == [4]
    coronal = tiny_clf.predict(path, axis="coronal", slices="middle").to_dict()
    assert coronal["info"]["axis"] == "coronal" and coronal["slices"][0]["index"] == 32


def test_four_d_takes_the_first_volume(tiny_clf, tmp_path) -> None:
    vol = _volume(n=5)
    four = np.stack([vol, np.zeros_like(vol)], axis=3)
    pred = tiny_clf.predict(_save(tmp_path / "4d.nii.gz", four), slices="all").to_dict()
    assert "first" in pred["info"]["note"] and len(pred["slices"]) == 5
    ref = tiny_clf.predict(_save(tmp_path / "3d.nii.gz", vol), slices="all").to_dict()
    assert pred["probabilities"] == ref["probabilities"]


@pytest.mark.parametrize(
    ("fill", "message"), [(0.0, "empty"), (np.nan, "NaN")]
)
def test_empty_and_nan_volumes_are_refused(tiny_clf, tmp_path, fill: float, message: str) -> None:
    vol = _volume(n=3)
    if np.isnan(fill):
        vol[5, 5, 1] = np.nan
    else:
        vol[:] = fill
    path = _save(tmp_path / "bad.nii.gz", vol)
    with pytest.raises(ImageReadError, match=f"bad.nii.gz: .*{message}"):
        tiny_clf.predict(path)


def test_selection_outside_the_volume(tiny_clf, tmp_path) -> None:
    path = _save(tmp_path / "v.nii.gz", _volume(n=3))
    with pytest.raises(ImageReadError, match="outside the volume's 3 slices"):
        tiny_clf.predict(path, slices="10:20")


@pytest.mark.parametrize(("spec", "said"), [("middle:1000", "asks for 1000 slices; the volume has 5 along axial: all 5 used"),
                                           ("2:40", "ends past the volume's 5 slices along axial: 3 used (2..4)")])
def test_a_selection_past_the_volume_is_cut_and_says_so(tiny_clf, tmp_path, spec: str, said: str) -> None:
    pred = tiny_clf.predict(_save(tmp_path / "v.nii.gz", _volume(n=5)), slices=spec).to_dict()
    assert said in pred["info"]["note"]
    assert "note" not in tiny_clf.predict(_save(tmp_path / "w.nii.gz", _volume(n=5)), slices="middle:3").to_dict()["info"]


def test_explain_says_which_volume_of_a_4d_nifti_it_explains(tiny_ckpt, tmp_path, capsys) -> None:
    from brainmri.cli.main import main

    vol = _volume(n=5)
    path = _save(tmp_path / "4d.nii.gz", np.stack([vol, vol], axis=3))
    main(["explain", str(tiny_ckpt), path, "--out", str(tmp_path / "cams")])
    assert f"{path}: note: 4-D volume with 2 volumes: the first one is used" in capsys.readouterr().out


def test_slices_come_back_upright(tmp_path) -> None:
    from brainmri.inference.nifti import read_nifti

    path = _save(tmp_path / "v.nii.gz", _volume(n=5))
    got = read_nifti(open(path, "rb").read(), "v", slices="all")
    for k, img in zip(got.indices, got.images):
        original = phantom(k % 4, size=64, seed=k).astype(float)
        assert np.corrcoef(img.ravel(), original.ravel())[0, 1] > 0.98
        assert np.corrcoef(img.ravel(), original.T.ravel())[0, 1] < np.corrcoef(img.ravel(), original.ravel())[0, 1] - 0.05


def test_anisotropic_voxels_give_square_pixels(tmp_path) -> None:
    from brainmri.inference.nifti import read_nifti

    path = _save(tmp_path / "aniso.nii.gz", _volume(n=3, size=32), zooms=(1.0, 2.0, 1.0))
    img = read_nifti(open(path, "rb").read(), "aniso").images[0]
    assert img.shape == (64, 32)  # rows follow y (2 mm) -> doubled


@pytest.mark.realdata
@pytest.mark.parametrize("name", ["T1.nii.gz", "M2307_T2.nii.gz"])
def test_real_volumes_middle_slices(real_datasets, tiny_clf, name: str) -> None:
    path = real_datasets / "nifti" / name
    if not path.is_file():
        pytest.skip(f"{path} not found")
    pred = tiny_clf.predict(path, slices="middle:5").to_dict()
    assert pred["error"] is None and len(pred["slices"]) == 5
    assert pred["info"]["slices_used"] + pred["info"]["slices_out_of_distribution"] == 5
    assert pred["info"]["slices_used"] >= 4  # real brain slices pass the input-statistics guard
    assert sum(pred["probabilities"].values()) == pytest.approx(1.0, abs=1e-3)


def test_gzip_bomb_is_refused(tmp_path) -> None:
    from brainmri.inference.inputs import decode_bytes

    path = _save(tmp_path / "v.nii.gz", _volume(n=5))
    with pytest.raises(ImageReadError, match="decompresses to more than"):
        decode_bytes(open(path, "rb").read(), "v.nii.gz", max_volume_bytes=10_000)


def test_an_empty_range_says_so() -> None:
    with pytest.raises(ConfigError, match="selects no slice: start 10 is not below stop 5"):
        parse_slices("10:5", 187)


def test_implausible_voxel_sizes_are_refused_not_resampled_into_gigabytes(tmp_path) -> None:
    from brainmri.inference.nifti import read_nifti

    path = _save(tmp_path / "aniso.nii.gz", _volume(n=5), zooms=(1.0, 0.0001, 1.0))  # a broken pixdim
    data = open(path, "rb").read()
    with pytest.raises(ImageReadError, match=r"aniso.nii.gz: NIfTI voxel sizes \(1.0, 0.0001, 1.0\) mm are implausible.*10,000x the other"):
        read_nifti(data, path, slices="middle")
    assert read_nifti(data, path, axis="coronal", slices="middle").images[0].shape == (5, 64)  # a plane without the odd axis reads


def test_thick_slices_are_resampled_but_a_slice_never_exceeds_the_side_limit(tmp_path) -> None:
    from brainmri.inference import nifti

    path = _save(tmp_path / "thick.nii.gz", _volume(n=5), zooms=(0.5, 0.5, 6.0))  # 0.5 mm in-plane, 6 mm slices
    coronal = nifti.read_nifti(open(path, "rb").read(), path, axis="coronal", slices="middle")
    assert coronal.images[0].shape == (60, 64)  # 5 slices x 12 stretched to square pixels: rows = superior axis
    path = _save(tmp_path / "long.nii.gz", _volume(n=60), zooms=(0.1, 1.0, 4.0))  # 60 slices x 40 = 2,400 px tall at 0.1 mm
    img = nifti.read_nifti(open(path, "rb").read(), path, axis="coronal", slices="middle").images[0]
    assert img.shape == (nifti.MAX_SLICE_SIDE, round(64 * nifti.MAX_SLICE_SIDE / 2400))  # scaled down, aspect kept


def test_a_volume_too_large_to_read_is_refused_before_reading_it(tmp_path, monkeypatch) -> None:
    from brainmri.inference import nifti

    path = _save(tmp_path / "v.nii.gz", _volume(n=7))
    monkeypatch.setattr(nifti, "MAX_VOXELS", 64 * 64 * 6)
    with pytest.raises(ImageReadError, match=r"v.nii.gz: NIfTI volume of 64 x 64 x 7 = 28,672 voxels is too large to read \(at most 24,576"):
        nifti.read_nifti(open(path, "rb").read(), path)


def test_colour_and_truncated_nifti_say_what_is_wrong(tmp_path):
    from brainmri.inference.nifti import read_nifti

    rgb = np.zeros((8, 8, 4), dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])
    nib.save(nib.Nifti1Image(rgb, np.eye(4)), str(tmp_path / "rgb.nii"))
    with pytest.raises(ImageReadError, match=r"^rgb\.nii: NIfTI volume has colour \(RGB\) voxels"):
        read_nifti((tmp_path / "rgb.nii").read_bytes(), "rgb.nii")
    nib.save(nib.Nifti1Image(np.ones((16, 16, 8), np.float32), np.eye(4)), str(tmp_path / "v.nii"))
    data = (tmp_path / "v.nii").read_bytes()
    with pytest.raises(ImageReadError, match=r"^t\.nii: truncated NIfTI file: Expected 8192 bytes, got \d+ bytes of voxel data$"):
        read_nifti(data[: len(data) // 2], "t.nii")
