"""DICOM: windowing, rescale, MONOCHROME1, multi-frame, compression, errors, privacy."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from dicom_factory import PATIENT, make_dicom

from brainmri.cli.main import main
from brainmri.errors import ImageReadError
from brainmri.inference.dicom import read_dicom, window_to_uint8
from brainmri.inference.inputs import decode_path

from inference_helpers import phantom


def _ramp(h: int = 32, w: int = 32, hi: int = 1000) -> np.ndarray:
    return np.linspace(0, hi, h * w).reshape(h, w).astype(np.uint16)


def test_window_maps_edges_to_black_and_white() -> None:
    out = window_to_uint8(np.array([-10.0, 100.0, 150.0, 200.0, 500.0]), center=150, width=100)
    assert out.tolist() == [0, 0, 128, 255, 255]


def test_monochrome1_is_inverted(tmp_path) -> None:
    pixels = _ramp()
    m2 = read_dicom(make_dicom(tmp_path / "m2.dcm", pixels).read_bytes(), "m2").frames[0]
    m1 = read_dicom(make_dicom(tmp_path / "m1.dcm", pixels, photometric="MONOCHROME1").read_bytes(), "m1").frames[0]
    assert m2[0, 0] == 0 and m2[-1, -1] == 255
    np.testing.assert_array_equal(m1.astype(int), 255 - m2.astype(int))


def test_rescale_then_window(tmp_path) -> None:
    # stored 0..1000 -> modality values 2*v - 1000 in [-1000, 1000]; window [0, 1000]
    pixels = np.array([[0, 500, 750], [1000, 250, 600]], np.uint16).repeat(8, 0).repeat(8, 1)
    path = make_dicom(tmp_path / "ct.dcm", pixels, slope=2, intercept=-1000, window=(500, 1000))
    out = read_dicom(path.read_bytes(), "ct").frames[0]
    # value 500 -> 0 (window low edge), 750 -> 500 -> 128, 1000 -> 1000 -> 255, 250 -> -500 -> 0
    assert out[0, 0] == 0 and out[0, 8] == 0 and out[0, 16] == 128 and out[8, 0] == 255 and out[8, 8] == 0
    assert out[8, 16] == round(200 / 1000 * 255)


def test_no_window_uses_full_range(tmp_path) -> None:
    pixels = _ramp(hi=4000)
    out = read_dicom(make_dicom(tmp_path / "a.dcm", pixels).read_bytes(), "a").frames[0]
    assert out.min() == 0 and out.max() == 255 and out.dtype == np.uint8


@pytest.mark.parametrize("syntax", ["1.2.840.10008.1.2.5", "1.2.840.10008.1.2.4.90"])  # RLE, JPEG 2000 lossless
def test_compressed_transfer_syntaxes(tmp_path, syntax: str) -> None:
    pixels = (phantom(0, size=64).astype(np.uint16) * 16)
    try:
        path = make_dicom(tmp_path / "c.dcm", pixels, compress=syntax)
    except RuntimeError as exc:  # encoder plugin not installed
        pytest.skip(f"no encoder for {syntax}: {exc}")
    plain = read_dicom(make_dicom(tmp_path / "p.dcm", pixels).read_bytes(), "p").frames[0]
    got = read_dicom(path.read_bytes(), "c")
    assert got.info["transfer_syntax"] != "Explicit VR Little Endian"
    np.testing.assert_array_equal(got.frames[0], plain)


def test_multiframe_is_a_volume(tmp_path, tiny_clf) -> None:
    frames = np.stack([phantom(i, size=64, seed=i).astype(np.uint16) for i in range(3)])
    path = make_dicom(tmp_path / "mf.dcm", frames)
    decoded = decode_path(path)
    assert decoded.is_volume and decoded.indices == [0, 1, 2] and len(decoded.images) == 3
    pred = tiny_clf.predict(path).to_dict()
    assert [s["index"] for s in pred["slices"]] == [0, 1, 2]
    mean = np.mean([[s["probabilities"][c] for c in tiny_clf.class_names] for s in pred["slices"]], axis=0)
    np.testing.assert_allclose([pred["probabilities"][c] for c in tiny_clf.class_names], mean, atol=1e-5)
    assert sorted(pred["most_suspicious_slices"]) == [0, 1, 2]


def test_missing_pixel_data_names_the_file(tmp_path) -> None:
    path = make_dicom(tmp_path / "nopix.dcm", _ramp(), pixel_data=False)
    with pytest.raises(ImageReadError, match=r"nopix.dcm: DICOM file declares an image \(Rows, Columns\) but holds no pixel data: truncated"):
        decode_path(path)
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(b"\x00" * 128 + b"DICM")  # the preamble and nothing after it
    with pytest.raises(ImageReadError, match=r"cut.dcm: DICOM file holds no data elements: empty or truncated"):
        decode_path(cut)


def test_undecodable_transfer_syntax_is_a_clear_error(tmp_path) -> None:
    import pydicom
    from pydicom.encaps import encapsulate

    path = make_dicom(tmp_path / "mpeg.dcm", _ramp())
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.100"  # MPEG2: no decoder
    ds.PixelData = encapsulate([b"\x00" * 64])
    ds["PixelData"].VR = "OB"
    ds.save_as(path, enforce_file_format=True)
    with pytest.raises(ImageReadError, match=r"mpeg.dcm: .*transfer syntax MPEG2.*no installed decoder supports it; convert") as info:
        decode_path(path)
    assert "install pylibjpeg" not in str(info.value)  # no plugin decodes MPEG-2: do not send the user to install one


def test_a_missing_jpeg_plugin_is_named_for_a_jpeg_syntax(monkeypatch) -> None:
    import importlib.util

    from pydicom.uid import JPEG2000Lossless, MPEG2MPML

    from brainmri.inference.dicom import _no_decoder

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda mod, *a: None if mod == "openjpeg" else real(mod, *a))
    assert _no_decoder(JPEG2000Lossless, "JPEG 2000").endswith("no available decoder; install pylibjpeg-openjpeg")
    assert "install pylibjpeg" not in _no_decoder(MPEG2MPML, "MPEG2")


def test_patient_tags_never_in_output_or_logs(tmp_path, tiny_ckpt, caplog, capsys) -> None:
    path = make_dicom(tmp_path / "patient.dcm", phantom(2, size=64).astype(np.uint16))
    bad = make_dicom(tmp_path / "patient_nopix.dcm", _ramp(), pixel_data=False)
    out = tmp_path / "out.json"
    caplog.set_level(logging.DEBUG)
    code = main(["predict", str(path), str(bad), "--checkpoint", str(tiny_ckpt), "--json", str(out)])
    assert code == 1  # the file without pixels failed, the other was predicted
    text = out.read_text() + capsys.readouterr().out + caplog.text
    results = json.loads(out.read_text())["results"]
    assert results[0]["error"] is None and results[0]["info"]["modality"] == "MR"
    for value in PATIENT.values():
        assert value not in text
        assert value.split("^")[0] not in text


def test_colour_dicom_feeds_the_ood_guard(tmp_path, tiny_clf) -> None:
    from brainmri.inference.ood import make_non_mri_images

    photo = next(im for k, im in make_non_mri_images(5, 64, seed=3) if k == "photo")
    gray_rgb = np.stack([phantom(0, size=64)] * 3, axis=-1)
    colour = tiny_clf.predict(make_dicom(tmp_path / "photo.dcm", photo, photometric="RGB")).to_dict()
    assert colour["out_of_distribution"] and "colour" in colour["ood_reason"]
    gray = tiny_clf.predict(make_dicom(tmp_path / "gray.dcm", gray_rgb, photometric="RGB")).to_dict()
    assert not gray["out_of_distribution"] and gray["label"] is not None


def test_declared_pixel_count_over_the_limit_is_refused(tmp_path) -> None:
    from brainmri.inference.inputs import decode_bytes

    path = make_dicom(tmp_path / "big.dcm", _ramp(64, 64))
    with pytest.raises(ImageReadError, match="big.dcm: DICOM pixel data is 4,096 pixels a frame, over the limit"):
        decode_bytes(path.read_bytes(), str(path), max_pixels=1000)


def test_corrupt_compressed_pixel_data_is_one_clear_error_without_decoder_tracebacks(tmp_path, capfd) -> None:
    from brainmri.errors import ImageReadError

    pixels = (phantom(0, size=64).astype(np.uint16) * 16)
    try:
        path = make_dicom(tmp_path / "c.dcm", pixels, compress="1.2.840.10008.1.2.4.90")
    except RuntimeError as exc:  # encoder plugin not installed
        pytest.skip(f"no JPEG 2000 encoder: {exc}")
    data = bytearray(path.read_bytes())
    start = data.find(b"\xff\x4f\xff\x51")  # the JPEG 2000 codestream
    assert start > 0
    data[start + 2:start + 200] = b"\x00" * 198
    with pytest.raises(ImageReadError, match=r"^bad\.dcm: corrupt compressed DICOM pixel data \(transfer syntax JPEG 2000"):
        read_dicom(bytes(data), "bad.dcm")
    captured = capfd.readouterr()
    assert "Traceback" not in captured.err + captured.out


def test_a_codestream_claiming_a_bigger_image_than_the_header_is_refused_before_decoding(tmp_path) -> None:
    """One 4-byte field of a 35 KB JPEG 2000 file made the decoder take 12 GB and 24 s."""
    import resource
    import struct
    import time

    from brainmri.errors import ImageReadError
    from brainmri.inference.dicom import codestream_size

    pixels = phantom(0, size=64).astype(np.uint16) * 16
    try:
        path = make_dicom(tmp_path / "c.dcm", pixels, compress="1.2.840.10008.1.2.4.90")
    except RuntimeError as exc:  # encoder plugin not installed
        pytest.skip(f"no JPEG 2000 encoder: {exc}")
    data = bytearray(path.read_bytes())
    start = data.find(b"\xff\x4f\xff\x51")
    assert codestream_size(bytes(data[start:])) == (64, 64)  # an honest file reads as its header says
    assert len(read_dicom(bytes(data), "ok.dcm").frames) == 1
    data[start + 8:start + 12] = struct.pack(">I", 9_000_000)  # the codestream's width; the DICOM header still says 64
    before, t0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.perf_counter()
    with pytest.raises(ImageReadError, match=r"^wide\.dcm: corrupt DICOM pixel data: the compressed image declares 9000000x64 "
                                             r"pixels but the DICOM header says 64x64; refused before decoding$"):
        read_dicom(bytes(data), "wide.dcm")
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # KiB: nothing was decoded


def test_jpeg_frame_header_size_is_read():
    from brainmri.inference.dicom import codestream_size

    sof = b"\xff\xd8" + b"\xff\xe0\x00\x04ab" + b"\xff\xc0\x00\x0b\x08" + (300).to_bytes(2, "big") + (20000).to_bytes(2, "big") + b"\x01"
    assert codestream_size(sof) == (20000, 300)
    assert codestream_size(b"\xff\xd8\xff\xda\x00\x02") is None and codestream_size(b"RLE data") is None


def test_an_unknown_value_representation_is_a_corrupt_header_not_a_crash(tmp_path) -> None:
    from brainmri.errors import ImageReadError

    path = make_dicom(tmp_path / "s.dcm", phantom(0, size=32).astype(np.uint16))
    data = path.read_bytes()
    tag = b"\x28\x00\x11\x00US"  # Columns, explicit VR 'US'
    assert data.count(tag) == 1
    with pytest.raises(ImageReadError, match=r"^v\.dcm: corrupt DICOM header \(Unknown Value Representation 'XX' in tag \(0028,0011\)\)$"):
        read_dicom(data.replace(tag, b"\x28\x00\x11\x00XX"), "v.dcm")


def test_a_bomb_in_a_later_frame_is_refused_too(tmp_path) -> None:
    import struct

    from brainmri.errors import ImageReadError

    pixels = np.stack([phantom(k, size=64).astype(np.uint16) * 16 for k in range(3)])
    try:
        path = make_dicom(tmp_path / "m.dcm", pixels, compress="1.2.840.10008.1.2.4.90")
    except RuntimeError as exc:  # encoder plugin not installed
        pytest.skip(f"no JPEG 2000 encoder: {exc}")
    data = bytearray(path.read_bytes())
    starts = [i for i in range(len(data) - 4) if data[i:i + 4] == b"\xff\x4f\xff\x51"]
    assert len(starts) == 3
    data[starts[2] + 8:starts[2] + 12] = struct.pack(">I", 9_000_000)  # only the last frame lies
    with pytest.raises(ImageReadError, match=r"^multi\.dcm: corrupt DICOM pixel data: the compressed image \(frame 3\) declares 9000000x64"):
        read_dicom(bytes(data), "multi.dcm")


def test_one_hot_pixel_does_not_black_out_a_scan_without_a_window(tmp_path) -> None:
    """No WindowCenter / Width: the 0.1 / 99.9 percentile window 16-bit PNGs get, not min-max."""
    pixels = (phantom(0, size=64).astype(np.uint16) * 4)  # a 12-bit-like scan, values 0..1020
    clean = read_dicom(make_dicom(tmp_path / "c.dcm", pixels).read_bytes(), "c").frames[0]
    hot = pixels.copy()
    hot[0, 0] = 65535
    out = read_dicom(make_dicom(tmp_path / "h.dcm", hot).read_bytes(), "h").frames[0]
    assert out.std() > 0.8 * clean.std() > 10  # min-max scaling squeezed the scan into 0..4
    assert np.abs(out[1:].astype(int) - clean[1:].astype(int)).mean() < 8


def test_a_multiframe_volume_is_limited_per_frame_and_as_a_volume(tmp_path, monkeypatch) -> None:
    from brainmri.inference import dicom

    path = make_dicom(tmp_path / "mf.dcm", np.stack([_ramp(32, 32)] * 40))  # 40,960 pixels in all
    assert len(read_dicom(path.read_bytes(), "mf", max_pixels=2000).frames) == 40  # each frame is under the limit
    monkeypatch.setattr(dicom, "MAX_VOXELS", 10_000)
    with pytest.raises(ImageReadError, match="40 frames of 1,024 pixels, 40,960 in all, over the limit of 10,000 for a volume"):
        read_dicom(path.read_bytes(), "mf")


def test_a_data_set_written_without_preamble_is_read_as_dicom(tmp_path) -> None:
    from brainmri.inference.sniff import sniff_bytes

    pixels = (phantom(0, size=64).astype(np.uint16) * 4)
    full = make_dicom(tmp_path / "full.dcm", pixels).read_bytes()
    want = read_dicom(full, "full").frames[0]
    no_preamble = full[128:]  # "DICM" + file meta + data set
    import pydicom
    from pydicom.filebase import DicomBytesIO

    ds = pydicom.dcmread(tmp_path / "full.dcm")
    buf = DicomBytesIO()
    buf.is_little_endian, buf.is_implicit_VR = True, True
    pydicom.filewriter.write_dataset(buf, ds)  # a bare implicit-VR data set: no preamble, no DICM, no file meta
    for data in (no_preamble, buf.getvalue()):
        assert sniff_bytes(data[:64]) == "dicom"
        np.testing.assert_array_equal(read_dicom(data, "raw").frames[0], want)
    for junk in (b"\x08\x00" + bytes(62), b"hello world, not an image at all" * 2):
        assert sniff_bytes(junk) is None


def test_a_dicom_exports_dicomdir_is_skipped_in_a_folder_but_named_when_given(tmp_path) -> None:
    from brainmri.cli.predict import expand_inputs

    export = tmp_path / "export"
    (export / "IMAGES").mkdir(parents=True)
    make_dicom(export / "IMAGES" / "IM0001", _ramp(32, 32))
    make_dicom(export / "DICOMDIR", _ramp(32, 32), pixel_data=False)  # the index: a DICOM file with no pixels
    files, missing = expand_inputs([str(export)])
    assert files and not missing and not any(Path(f).name == "DICOMDIR" for f in files)
    files, _ = expand_inputs([str(export / "DICOMDIR")])  # named on purpose: read, and its error reported
    assert [Path(f).name for f in files] == ["DICOMDIR"]
