"""Property-based tests of the decode and preprocessing path (issue #7): arbitrary or mutated bytes
never crash it (only BrainMRIError), and every decodable image becomes a finite model input of
the expected shape and range."""
from __future__ import annotations

import gzip
import io

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from brainmri.config import PreprocessConfig
from brainmri.data.io import decode_image_bytes, read_image
from brainmri.errors import BrainMRIError
from brainmri.inference.inputs import decode_bytes
from brainmri.inference.sniff import SUPPORTED_FORMATS, sniff_bytes
from brainmri.preprocess.pipeline import prepare_image, to_model_input
from reliability_corpus import png_bomb

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
SMALL_LIMIT = 4_000_000  # pixels; keeps fuzzed headers from allocating much


def _seed_files() -> dict[str, bytes]:
    """Valid files of every supported format, the raw material for mutation."""
    import nibabel as nib
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

    rng = np.random.default_rng(0)
    gray = (rng.random((24, 20)) * 255).astype(np.uint8)
    out = {}
    for fmt in ("PNG", "JPEG", "BMP", "TIFF", "GIF", "WEBP"):
        buf = io.BytesIO()
        Image.fromarray(gray).save(buf, format=fmt)
        out[fmt.lower()] = buf.getvalue()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID, meta.TransferSyntaxUID = MRImageStorage, generate_uid(), ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = MRImageStorage, meta.MediaStorageSOPInstanceUID, "MR"
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = 24, 20, 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelData = gray.astype(np.uint16).tobytes()
    buf = io.BytesIO()
    pydicom.dcmwrite(buf, ds, enforce_file_format=True)
    out["dicom"] = buf.getvalue()
    nii = nib.Nifti1Image(rng.random((12, 10, 6)).astype(np.float32), np.eye(4)).to_bytes()
    out["nifti"] = nii
    out["nifti_gz"] = gzip.compress(nii)
    out["bomb"] = png_bomb()
    return out


SEEDS = _seed_files()


def _check_decoded(gray: np.ndarray) -> None:
    assert gray.dtype == np.uint8 and gray.ndim == 2 and min(gray.shape) >= 2


@st.composite
def mutated(draw) -> bytes:
    """A valid file with some bytes overwritten, a slice cut out, or the end cut off."""
    data = bytearray(SEEDS[draw(st.sampled_from(sorted(SEEDS)))])
    for _ in range(draw(st.integers(0, 8))):
        pos = draw(st.integers(0, len(data) - 1))
        data[pos] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        a = draw(st.integers(0, len(data)))
        b = draw(st.integers(a, min(len(data), a + 64)))
        del data[a:b]
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data)


PREFIXES = [b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"II*\x00", b"MM\x00*", b"GIF89a", b"BM", b"RIFF\x00\x00\x00\x00WEBP",
            bytes(128) + b"DICM", b"\x1f\x8b", SEEDS["nifti"][:348]]
any_bytes = st.one_of(
    st.binary(max_size=2048),
    st.builds(lambda p, tail: p + tail, st.sampled_from(PREFIXES), st.binary(max_size=1024)),
    mutated(),
)


# a TIFF whose header lacks dimensions: Pillow raises TypeError("Missing dimensions") (found by this test)
TIFF_NO_DIMENSIONS = (b'II\x00*\x08\x00\x00\x00\x07\x00\x00\x01\x03\x00\x01\x00\x00\x00\x00\x01\x00\x00\x01\x01\x03\x00\x01\x00\x00\x00\x00\x01\x00\x00' + b'\x00' * 36 + b'\x11\x01\x01\x00\x01' + b'\x00' * 22 + b'\x01')


@FAST
@given(any_bytes)
@example(TIFF_NO_DIMENSIONS)
def test_image_decoder_raises_only_brainmri_errors(data: bytes) -> None:
    try:
        gray = decode_image_bytes(data, name="fuzz.png", max_pixels=SMALL_LIMIT)
    except BrainMRIError as exc:
        assert "fuzz.png" in str(exc)
    else:
        _check_decoded(gray)


@FAST
@given(any_bytes)
def test_upload_decoder_raises_only_brainmri_errors(data: bytes) -> None:
    """The inference path sniffs, then decodes images, DICOM and NIfTI (the service's path)."""
    try:
        decoded = decode_bytes(data, "upload", slices="all", max_pixels=SMALL_LIMIT, max_volume_bytes=16 * 1024**2)
    except BrainMRIError as exc:
        assert str(exc).startswith("upload")
    else:
        assert decoded.images
        for gray in decoded.images:
            _check_decoded(gray)


@FAST
@given(any_bytes)
def test_sniffing_never_raises(data: bytes) -> None:
    fmt = sniff_bytes(data)
    assert fmt is None or fmt in SUPPORTED_FORMATS


@pytest.mark.parametrize("name", sorted(SEEDS))
def test_unmutated_seed_files_decode(name: str) -> None:
    if name == "bomb":
        with pytest.raises(BrainMRIError, match="decompression bomb"):
            decode_bytes(SEEDS[name], "upload")
        return
    decoded = decode_bytes(SEEDS[name], "upload")
    for gray in decoded.images:
        _check_decoded(gray)


# ------------------------------------------------------------------ decodable images -> model input

MODES = {
    # mode: (dtype, channels, formats that can store it)
    "L": (np.uint8, 1, ("PNG", "JPEG", "BMP", "TIFF", "GIF")),
    "RGB": (np.uint8, 3, ("PNG", "JPEG", "BMP", "TIFF")),
    "RGBA": (np.uint8, 4, ("PNG", "TIFF")),
    "LA": (np.uint8, 2, ("PNG",)),
    "P": (np.uint8, 1, ("PNG", "BMP", "GIF", "TIFF")),
    "1": (bool, 1, ("PNG", "BMP", "TIFF")),
    "I;16": (np.uint16, 1, ("PNG", "TIFF")),
    "I": (np.int32, 1, ("PNG", "TIFF")),
    "F": (np.float32, 1, ("TIFF",)),
    "CMYK": (np.uint8, 4, ("JPEG", "TIFF")),
}


@st.composite
def encoded_images(draw) -> tuple[bytes, str]:
    mode = draw(st.sampled_from(sorted(MODES)))
    dtype, channels, formats = MODES[mode]
    fmt = draw(st.sampled_from(formats))
    h, w = draw(st.integers(2, 96)), draw(st.integers(2, 96))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    pattern = draw(st.sampled_from(["noise", "constant", "blob"]))
    if pattern == "noise":
        arr = rng.random((h, w, channels))
    elif pattern == "constant":
        arr = np.full((h, w, channels), rng.random())
    else:
        yy, xx = np.mgrid[:h, :w]
        arr = np.repeat((((yy - h / 2) ** 2 + (xx - w / 2) ** 2) < (min(h, w) / 3) ** 2)[..., None], channels, axis=2) * 0.8
    if dtype is bool:
        img = Image.fromarray(arr[..., 0] > 0.5)
    elif dtype is np.float32:
        img = Image.fromarray((arr[..., 0] * draw(st.sampled_from([1.0, 1000.0, -5.0]))).astype(np.float32), mode="F")
    else:
        top = {np.uint8: 255, np.uint16: 65535, np.int32: 100_000}[dtype]
        values = (arr * top).astype(dtype)
        if mode == "P":
            img = Image.fromarray(values[..., 0]).convert("P")
        elif mode == "CMYK":
            img = Image.frombytes("CMYK", (w, h), values.tobytes())
        elif mode == "I;16":
            img = Image.fromarray(values[..., 0]).convert("I;16") if values.dtype != np.uint16 else Image.fromarray(values[..., 0])
        elif channels == 1:
            img = Image.fromarray(values[..., 0])
        else:
            img = Image.fromarray(values)  # (H, W, 2|3|4) uint8 -> LA | RGB | RGBA
    buf = io.BytesIO()
    try:
        img.save(buf, format=fmt)
    except (OSError, ValueError, KeyError):
        assume(False)  # Pillow cannot write this mode in this format
    return buf.getvalue(), f"{mode}/{fmt}/{h}x{w}/{pattern}"


@FAST
@given(encoded_images(), st.sampled_from([16, 32, 57]), st.booleans(), st.sampled_from([1, 3]),
       st.sampled_from([None, (0.5, 99.5), (2.0, 98.0)]))
def test_any_decodable_image_gives_a_finite_tensor_of_the_right_shape(encoded, size, crop, in_chans, clip) -> None:
    data, label = encoded
    cfg = PreprocessConfig(image_size=size, crop=crop, in_chans=in_chans, percentile_clip=clip)
    gray = decode_image_bytes(data, name=label)  # a decodable image must decode
    _check_decoded(gray)
    prepared = prepare_image(gray, cfg)
    assert prepared.dtype == np.uint8 and prepared.shape == (size, size), label
    x = to_model_input(prepared, cfg)
    assert x.dtype == torch.float32 and tuple(x.shape) == (in_chans, size, size), label
    assert torch.isfinite(x).all(), label
    mean, std = np.asarray(cfg.mean, dtype=np.float64), np.asarray(cfg.std, dtype=np.float64)
    lo, hi = float(np.min((0 - mean) / std)), float(np.max((1 - mean) / std))
    assert lo - 1e-5 <= float(x.min()) and float(x.max()) <= hi + 1e-5, label


@FAST
@given(st.integers(2, 300), st.integers(2, 300), st.sampled_from(["noise", "zeros", "full", "stripe"]), st.booleans(),
       st.integers(0, 2**32 - 1))
def test_prepare_image_handles_any_gray_array(h: int, w: int, kind: str, crop: bool, seed: int) -> None:
    rng = np.random.default_rng(seed)
    gray = {"noise": lambda: rng.integers(0, 256, (h, w)), "zeros": lambda: np.zeros((h, w)), "full": lambda: np.full((h, w), 255),
            "stripe": lambda: np.pad(np.full((h, 1), 200), ((0, 0), (w // 2, w - w // 2 - 1)))}[kind]().astype(np.uint8)
    cfg = PreprocessConfig(image_size=32, crop=crop)
    prepared = prepare_image(gray, cfg)
    assert prepared.shape == (32, 32) and prepared.dtype == np.uint8
    assert torch.isfinite(to_model_input(prepared, cfg)).all()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(encoded_images())
def test_read_image_agrees_with_decode_bytes(tmp_path_factory, encoded) -> None:
    data, _ = encoded
    path = tmp_path_factory.mktemp("prop") / "x.bin"  # the name says nothing about the content
    path.write_bytes(data)
    assert np.array_equal(read_image(path), decode_image_bytes(data))
