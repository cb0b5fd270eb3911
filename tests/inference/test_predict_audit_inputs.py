"""Leftovers of the ``brainmri predict`` input audit: colour DICOM (palette, RGB / YBR), DICOM
Modality, Analyze / NIfTI pairs and 5-D volumes, nibabel's warnings, slice specs checked first."""
from __future__ import annotations

import csv
import json
import logging
import struct
import subprocess
import sys
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from dicom_factory import make_dicom
from inference_helpers import phantom
from PIL import Image
from pydicom.pixels import convert_color_space

from brainmri.cli.main import main
from brainmri.errors import ConfigError, ImageReadError
from brainmri.inference.dicom import read_dicom
from brainmri.inference.nifti import check_slices_spec, parse_slices
from brainmri.inference.ood import check_ood, modality_reason


def _retag(path: Path, **tags) -> Path:
    ds = pydicom.dcmread(path)
    for key, value in tags.items():
        if value is None:
            delattr(ds, key)
        else:
            setattr(ds, key, value)
    ds.save_as(path)
    return path


def _palette_dicom(path: Path, gray: np.ndarray, bits: int = 16, lut: bool = True) -> Path:
    """Stored values are indices ``255 - gray``; the palette maps index i to gray ``255 - i``, so
    indices read as intensities give the negative of the image."""
    make_dicom(path, (255 - gray).astype(np.uint8), photometric="PALETTE COLOR")
    ds = pydicom.dcmread(path)
    if lut:
        entries = np.arange(256)[::-1]
        data = (entries.astype(np.uint16) * 257).tobytes() if bits == 16 else entries.astype(np.uint8).tobytes()
        for c in ("Red", "Green", "Blue"):
            ds.add_new(f"{c}PaletteColorLookupTableDescriptor", "US", [256, 0, bits])
            ds.add_new(f"{c}PaletteColorLookupTableData", "OW", data)
    ds.save_as(path)
    return path


# ---------------------------------------------------------------------------------------------- 1. colour DICOM


@pytest.mark.parametrize("bits", [16, 8])
def test_palette_color_dicom_is_read_through_its_lookup_table(tmp_path, tiny_clf, bits) -> None:
    gray = phantom(1, size=80, seed=4)
    path = _palette_dicom(tmp_path / "pal.dcm", gray, bits=bits)
    dcm = read_dicom(path.read_bytes(), "pal.dcm")
    assert np.array_equal(dcm.frames[0], gray)  # not the negative (palette indices read as intensities)
    assert dcm.colorfulness == pytest.approx(0.0) and dcm.info["photometric_interpretation"] == "PALETTE COLOR"
    Image.fromarray(gray).save(tmp_path / "same.png")
    assert tiny_clf.predict(str(path)).probabilities == tiny_clf.predict(str(tmp_path / "same.png")).probabilities


def test_palette_color_without_lookup_tables_names_file_and_interpretation(tmp_path) -> None:
    path = _palette_dicom(tmp_path / "nolut.dcm", phantom(0, size=80), lut=False)
    with pytest.raises(ImageReadError, match=r"nolut\.dcm: DICOM photometric interpretation PALETTE COLOR.*lookup tables"):
        read_dicom(path.read_bytes(), "nolut.dcm")


def test_16_bit_rgb_gray_dicom_is_not_taken_for_a_colour_image(tmp_path) -> None:
    gray = phantom(2, size=80, seed=1)
    rng = np.random.default_rng(0)  # gray stored as 16-bit RGB, channels a few 16-bit levels apart
    rgb16 = (np.stack([gray] * 3, -1).astype(np.int32) * 256 + rng.integers(0, 200, (80, 80, 3))).astype(np.uint16)
    dcm = read_dicom(make_dicom(tmp_path / "rgb16.dcm", rgb16, photometric="RGB").read_bytes(), "rgb16.dcm")
    assert dcm.colorfulness < 0.01  # was ~0.9: 16-bit spreads counted as 8-bit levels, "colour image (brain MRI is grayscale)"
    assert np.corrcoef(dcm.frames[0].ravel(), gray.ravel())[0, 1] > 0.99


def test_ybr_full_and_ybr_full_422_dicom_become_the_same_gray_image(tmp_path) -> None:
    """Already handled (pydicom converts YBR to RGB): a guard."""
    gray = phantom(3, size=80, seed=2)
    ybr = convert_color_space(np.stack([gray] * 3, -1), "RGB", "YBR_FULL")
    full = _retag(make_dicom(tmp_path / "ybr.dcm", np.stack([gray] * 3, -1), photometric="RGB"), PhotometricInterpretation="YBR_FULL")
    ds = pydicom.dcmread(full)
    ds.PixelData = ybr.tobytes()
    ds.save_as(full)
    y = ybr[..., 0].reshape(80, 40, 2)  # 4:2:2: Y1 Y2 Cb Cr for each pair of pixels
    cb, cr = ybr[..., 1].reshape(80, 40, 2)[..., :1], ybr[..., 2].reshape(80, 40, 2)[..., :1]
    sub = _retag(make_dicom(tmp_path / "ybr422.dcm", np.stack([gray] * 3, -1), photometric="RGB"), PhotometricInterpretation="YBR_FULL_422")
    ds = pydicom.dcmread(sub)
    ds.PixelData = np.concatenate([y, cb, cr], -1).astype(np.uint8).tobytes()
    ds.save_as(sub)
    for path in (full, sub):
        dcm = read_dicom(path.read_bytes(), path.name)
        assert np.array_equal(dcm.frames[0], gray) and dcm.colorfulness == 0.0


# ---------------------------------------------------------------------------------------------- 2. DICOM Modality


@pytest.mark.parametrize("code", ["CT", "CR", "DX", "US", "MG", "PT", "NM", "XA", "RF", " ct "])
def test_non_mr_modalities_are_a_reason(code) -> None:
    assert modality_reason(code) == f"DICOM Modality {code.strip().upper()}, not MR (the model reads brain MRI)"
    ood, reason = check_ood(phantom(0, size=80), None, None, modality=code)
    assert ood and reason.startswith(f"DICOM Modality {code.strip().upper()}, not MR")


@pytest.mark.parametrize("code", ["MR", "OT", "", None, "XYZ"])
def test_mr_other_missing_or_unknown_modality_is_no_reason(code) -> None:
    assert modality_reason(code) is None


def test_predict_names_a_ct_dicom_out_of_distribution_in_table_csv_and_json(tmp_path, tiny_ckpt, capsys) -> None:
    gray = phantom(1, size=80, seed=3).astype(np.uint16) * 16
    ct = _retag(make_dicom(tmp_path / "ct.dcm", gray), Modality="CT")
    mr = make_dicom(tmp_path / "mr.dcm", gray)
    bare = _retag(make_dicom(tmp_path / "bare.dcm", gray), Modality=None)
    frames = _retag(make_dicom(tmp_path / "us.dcm", np.stack([gray, gray])), Modality="US")
    out_json, out_csv = tmp_path / "r.json", tmp_path / "r.csv"
    code = main(["predict", str(ct), str(mr), str(bare), str(frames), "-c", str(tiny_ckpt), "--json", str(out_json), "--csv", str(out_csv)])
    assert code == 0
    table = capsys.readouterr().out
    assert "DICOM Modality CT, not MR" in table
    rows = {Path(r["path"]).name: r for r in json.loads(out_json.read_text())["results"]}
    assert rows["ct.dcm"]["out_of_distribution"] and rows["ct.dcm"]["label"] is None
    assert rows["ct.dcm"]["ood_reason"].startswith("DICOM Modality CT, not MR")
    assert "DICOM Modality US, not MR" in rows["us.dcm"]["ood_reason"] and rows["us.dcm"]["label"] is None  # every frame
    for name in ("mr.dcm", "bare.dcm"):  # MR and a missing tag: classified as before
        assert "Modality" not in (rows[name]["ood_reason"] or "")
        assert rows[name]["probabilities"] == rows["ct.dcm"]["probabilities"]
    by_csv = {Path(r["path"]).name: r for r in csv.DictReader(out_csv.open())}
    assert by_csv["ct.dcm"]["ood_reason"].startswith("DICOM Modality CT, not MR") and by_csv["ct.dcm"]["label"] == ""


def test_serving_names_a_ct_dicom_out_of_distribution(tmp_path, tiny_clf) -> None:
    from fastapi.testclient import TestClient

    from brainmri.serving.app import ServeSettings, create_app

    ct = _retag(make_dicom(tmp_path / "ct.dcm", phantom(1, size=80).astype(np.uint16)), Modality="CT")
    client = TestClient(create_app(ServeSettings(), classifier=tiny_clf), raise_server_exceptions=False)
    body = client.post("/v1/predict", files={"file": ("scan", ct.read_bytes(), "application/octet-stream")}).json()
    assert body["out_of_distribution"] and body["label"] is None
    assert body["ood_reason"].startswith("DICOM Modality CT, not MR")


# ---------------------------------------------------------------------------------------------- 3. pairs and 5-D volumes


def _volume(n: int = 5, size: int = 64) -> np.ndarray:
    return np.stack([np.rot90(phantom(k % 4, size=size, seed=k), -1) for k in range(n)], axis=2).astype(np.float32)


def test_nifti_pair_and_analyze_pair_are_read_from_either_file(tmp_path, tiny_clf) -> None:
    vol = _volume()
    nib.save(nib.Nifti1Image(vol, np.eye(4)), str(tmp_path / "single.nii"))
    nib.save(nib.Nifti1Pair(vol, np.eye(4)), str(tmp_path / "pair.hdr"))
    nib.save(nib.Nifti1Image(vol, np.diag([-1.0, 1, 1, 1])), str(tmp_path / "flipped.nii"))
    nib.save(nib.AnalyzeImage(vol, np.eye(4)), str(tmp_path / "old.hdr"))  # Analyze has no affine: x runs right to left
    for name, like in (("pair.hdr", "single.nii"), ("pair.img", "single.nii"), ("old.hdr", "flipped.nii"), ("old.img", "flipped.nii")):
        got = tiny_clf.predict(str(tmp_path / name), slices="all").to_dict()
        assert got["error"] is None and got["path"] == str(tmp_path / name)
        assert got["probabilities"] == tiny_clf.predict(str(tmp_path / like), slices="all").probabilities, name


def test_a_folder_with_a_pair_gives_one_result(tmp_path, tiny_ckpt) -> None:
    nib.save(nib.Nifti1Pair(_volume(), np.eye(4)), str(tmp_path / "pair.hdr"))
    out = tmp_path / "out" / "r.json"
    assert main(["predict", str(tmp_path), "-c", str(tiny_ckpt), "--json", str(out)]) == 0
    [row] = json.loads(out.read_text())["results"]
    assert row["path"].endswith("pair.hdr") and row["error"] is None


def test_half_a_pair_names_the_missing_file(tmp_path, tiny_clf) -> None:
    nib.save(nib.Nifti1Pair(_volume(), np.eye(4)), str(tmp_path / "pair.hdr"))
    hdr, img = tmp_path / "pair.hdr", tmp_path / "pair.img"
    (tmp_path / "header_only.hdr").write_bytes(hdr.read_bytes())
    (tmp_path / "voxels_only.img").write_bytes(img.read_bytes())
    with pytest.raises(ImageReadError, match=r"header_only\.hdr: is the header of an Analyze / NIfTI pair.*\.img file beside it.*\.nii\.gz"):
        tiny_clf.predict(str(tmp_path / "header_only.hdr"))
    with pytest.raises(ImageReadError, match=r"voxels_only\.img: unsupported content; if it is the voxel file \(\.img\).*\(\.hdr"):
        tiny_clf.predict(str(tmp_path / "voxels_only.img"))
    with pytest.raises(ImageReadError, match=r"upload: is the header of an Analyze / NIfTI pair"):  # bytes alone: no partner to find
        tiny_clf.predict(hdr.read_bytes(), name="upload")


def test_trailing_singleton_dimensions_are_squeezed(tmp_path, tiny_clf) -> None:
    vol = _volume()
    nib.save(nib.Nifti1Image(vol, np.eye(4)), str(tmp_path / "v3.nii.gz"))
    nib.save(nib.Nifti1Image(vol[..., None, None], np.eye(4)), str(tmp_path / "v5.nii.gz"))
    nib.save(nib.Nifti1Image(np.stack([vol, vol[::-1]], 3)[..., None], np.eye(4)), str(tmp_path / "v4x1.nii.gz"))
    three = tiny_clf.predict(str(tmp_path / "v3.nii.gz"), slices="all")
    five = tiny_clf.predict(str(tmp_path / "v5.nii.gz"), slices="all")
    assert five.error is None and five.probabilities == three.probabilities and five.info["shape"] == [64, 64, 5, 1, 1]
    four = tiny_clf.predict(str(tmp_path / "v4x1.nii.gz"), slices="all")  # (X, Y, Z, 2, 1): a 4-D volume
    assert four.probabilities == three.probabilities and four.info["note"] == "4-D volume with 2 volumes: the first one is used"


def test_five_d_with_a_real_fifth_dimension_keeps_its_message(tmp_path, tiny_clf) -> None:
    nib.save(nib.Nifti1Image(np.stack([_volume()] * 2, 3)[:, :, :, None, :], np.eye(4)), str(tmp_path / "v.nii.gz"))
    with pytest.raises(ImageReadError, match=r"v\.nii\.gz: expected a 3-D \(or 4-D\) NIfTI volume, got 5-D shape \(64, 64, 5, 1, 2\)"):
        tiny_clf.predict(str(tmp_path / "v.nii.gz"))


# ---------------------------------------------------------------------------------------------- 4. nibabel's warnings


def _noisy_nifti(path: Path) -> Path:
    """A NIfTI-1 file with a negative pixdim (nibabel logs a fix) and an extension whose size is
    not a multiple of 16 (nibabel warns, UserWarning)."""
    raw = bytearray(nib.Nifti1Image(_volume(), np.eye(4)).to_bytes())
    header, voxels = raw[:348], raw[352:]
    struct.pack_into("<f", header, 80, -1.0)  # pixdim[1]
    extension = struct.pack("<ii", 20, 0) + b"x" * 12
    pad = b"\0" * (-(352 + len(extension)) % 16)
    struct.pack_into("<f", header, 108, float(352 + len(extension) + len(pad)))  # vox_offset
    path.write_bytes(bytes(header) + b"\x01\0\0\0" + extension + pad + bytes(voxels))
    return path


def test_nibabel_messages_are_one_log_line_naming_the_file(tmp_path, tiny_clf, caplog) -> None:
    path = _noisy_nifti(tmp_path / "noisy.nii")
    seen: list[logging.LogRecord] = []
    nameless = logging.Handler()
    nameless.emit = seen.append  # what nibabel's own stderr handler would print
    logging.getLogger("nibabel.global").addHandler(nameless)
    try:
        with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.INFO):
            warnings.simplefilter("always")
            pred = tiny_clf.predict(str(path))
    finally:
        logging.getLogger("nibabel.global").removeHandler(nameless)
    assert pred.error is None and pred.label is not None
    assert not seen and not [w for w in caught if "nibabel" in w.filename]
    [line] = [r.getMessage() for r in caplog.records if "NIfTI reader" in r.getMessage()]
    assert line.startswith(f"{path}: NIfTI reader: ") and "pixdim" in line and "Extension size" in line


def test_predict_stderr_holds_one_clean_line_for_a_noisy_header(tmp_path, tiny_ckpt) -> None:
    path = _noisy_nifti(tmp_path / "noisy.nii")
    run = subprocess.run([sys.executable, "-m", "brainmri.cli.main", "--debug", "predict", str(path), "-c", str(tiny_ckpt)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    [line] = run.stderr.strip().splitlines()  # was: nibabel.py:769: UserWarning ..., its source line, the pixdim fix twice
    assert f"{path}: NIfTI reader: " in line and "pixdim" in line and "Extension size" in line
    assert "UserWarning" not in line and ".py:" not in line


# ---------------------------------------------------------------------------------------------- 5. slice specs first


@pytest.mark.parametrize("spec", ["-1", "-7"])
def test_a_negative_index_is_a_bad_spec(spec) -> None:
    with pytest.raises(ConfigError, match="slices="):
        check_slices_spec(spec)
    with pytest.raises(ConfigError, match="slices="):
        parse_slices(spec, 10)


def test_an_open_range_past_the_validation_size_is_well_formed() -> None:
    assert check_slices_spec("10001:") == "10001:" and parse_slices("3:", 6) == [3, 4, 5]


def test_predict_refuses_a_bad_spec_before_any_file(tmp_path, tiny_ckpt, capsys) -> None:
    nib.save(nib.Nifti1Image(_volume(), np.eye(4)), str(tmp_path / "v.nii.gz"))
    Image.fromarray(phantom(0, size=80)).save(tmp_path / "a.png")
    assert main(["predict", str(tmp_path / "v.nii.gz"), str(tmp_path / "a.png"), "-c", str(tiny_ckpt), "--slices=-1"]) == 2
    captured = capsys.readouterr()
    assert "brainmri predict: error: slices='-1' is not valid" in captured.err and "a.png" not in captured.out


@pytest.mark.parametrize(("kwargs", "message"), [({"slices": "-1"}, "slices='-1'"), ({"slices": "half"}, "slices='half'"),
                                                 ({"axis": "diagonal"}, "axis='diagonal'")])
def test_predict_batch_and_predict_check_axis_and_slices_first(tmp_path, tiny_clf, kwargs, message) -> None:
    Image.fromarray(phantom(0, size=80)).save(tmp_path / "a.png")
    with pytest.raises(ConfigError, match=message):  # one error, not one per input (nor ignored for 2-D images)
        tiny_clf.predict_batch([str(tmp_path / "a.png"), str(tmp_path / "missing.nii.gz")], **kwargs)
    with pytest.raises(ConfigError, match=message):
        tiny_clf.predict(str(tmp_path / "a.png"), **kwargs)


def test_a_pair_named_twice_by_a_glob_gives_one_result_under_its_header(tmp_path, tiny_ckpt) -> None:
    nib.save(nib.Nifti1Pair(_volume(), np.eye(4)), str(tmp_path / "pair.hdr"))
    out = tmp_path / "out" / "r.json"
    assert main(["predict", str(tmp_path / "pair.*"), str(tmp_path / "pair.img"), "-c", str(tiny_ckpt), "--json", str(out)]) == 0
    [row] = json.loads(out.read_text())["results"]
    assert row["path"] == str(tmp_path / "pair.hdr") and row["error"] is None
