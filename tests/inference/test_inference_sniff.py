"""Format sniffing decides by content, never by file name."""
from __future__ import annotations

import gzip
import io

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from brainmri.inference.sniff import sniff_bytes, sniff_file


def _raster(fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(buf, format=fmt)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [("PNG", "png"), ("JPEG", "jpeg"), ("BMP", "bmp"), ("TIFF", "tiff"), ("GIF", "gif"), ("WEBP", "webp")],
)
def test_raster_signatures(fmt: str, expected: str) -> None:
    assert sniff_bytes(_raster(fmt)) == expected


def test_nifti_raw_and_gzip() -> None:
    img = nib.Nifti1Image(np.ones((4, 4, 4), np.float32), np.eye(4))
    raw = img.to_bytes()
    assert sniff_bytes(raw) == "nifti"
    assert sniff_bytes(gzip.compress(raw)) == "nifti"
    assert sniff_bytes(gzip.compress(b"just some text, gzipped" * 40)) is None


def test_dicom_preamble() -> None:
    assert sniff_bytes(bytes(128) + b"DICM" + bytes(100)) == "dicom"


@pytest.mark.parametrize("content", [b"", b"hello world", b"%PDF-1.7\n" + bytes(200), b"PK\x03\x04" + bytes(200)])
def test_unsupported_content(content: bytes) -> None:
    assert sniff_bytes(content) is None


def test_file_name_is_ignored(tmp_path) -> None:
    text_named_png = tmp_path / "scan.png"
    text_named_png.write_text("not an image")
    png_named_txt = tmp_path / "notes.txt"
    png_named_txt.write_bytes(_raster("PNG"))
    assert sniff_file(text_named_png) is None
    assert sniff_file(png_named_txt) == "png"
