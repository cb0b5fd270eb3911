"""A corpus of bad (and awkward but valid) input files, generated on the fly for the reliability
tests. Nothing here is real data: images are synthetic phantoms.

Each :class:`Case` says what the file is, whether brainmri must accept it, and, for a bad file,
the words its error must contain and the HTTP status the service must answer.
"""
from __future__ import annotations

import gzip
import io
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from brainmri.data.synthetic import TUMOR4, make_phantom
from dicom_factory import make_dicom


@dataclass(frozen=True)
class Case:
    """One corpus file.

    Attributes:
        name: file name (its extension may lie about the content on purpose).
        ok: True when brainmri must read it (an awkward but valid file).
        reason: regex the error message must match after the file name (bad files only).
        status: HTTP status the service must answer for it.
        raster: True when it can sit in an image-folder dataset (audit / train / evaluate).
    """

    name: str
    ok: bool
    reason: str = ""
    status: int = 200
    raster: bool = True


def phantom(label: int = 0, size: int = 64, seed: int = 0) -> np.ndarray:
    return make_phantom(label, size, np.random.default_rng(seed), class_name=TUMOR4[label])


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bomb(width: int = 100_000, height: int = 100_000) -> bytes:
    """A tiny PNG whose header declares ``width x height`` 8-bit gray pixels."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def exif_rotated_jpeg(h: int = 48, w: int = 80) -> bytes:
    """A ``w`` wide, ``h`` tall JPEG with EXIF orientation 6 (display rotated 90 degrees)."""
    img = Image.fromarray(np.ascontiguousarray(phantom(1, size=max(h, w))[:h, :w]))
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(img, "JPEG", exif=exif.tobytes(), quality=90)


def _gif_animation() -> bytes:
    frames = [Image.fromarray(phantom(k % 4, seed=k)).convert("P") for k in range(3)]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buf.getvalue()


def _nifti(vol: np.ndarray) -> bytes:
    import nibabel as nib

    img = nib.Nifti1Image(vol.astype(np.float32), np.eye(4))
    return gzip.compress(img.to_bytes(), compresslevel=1)


def _volume(depth: int = 6, size: int = 48) -> np.ndarray:
    return np.stack([phantom(k % 4, size=size, seed=k).astype(np.float32) for k in range(depth)], axis=2)


def _dicom_bytes(folder: Path, name: str, **kw) -> bytes:
    pixels = (phantom(2, size=48).astype(np.uint16) * 16)
    path = make_dicom(folder / f".build-{name}", pixels, **kw)
    data = path.read_bytes()
    path.unlink()
    return data


def _dicom_unsupported_syntax(folder: Path) -> bytes:
    import pydicom
    from pydicom.encaps import encapsulate

    path = make_dicom(folder / ".build-mpeg", phantom(0, size=32).astype(np.uint16))
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.100"  # MPEG2: no decoder exists
    ds.PixelData = encapsulate([b"\x00" * 64])
    ds["PixelData"].VR = "OB"
    ds.save_as(path, enforce_file_format=True)
    data = path.read_bytes()
    path.unlink()
    return data


def _builders(folder: Path) -> dict[str, tuple[Case, Callable[[], bytes]]]:
    valid_png = lambda: encode(Image.fromarray(phantom(0)), "PNG")  # noqa: E731
    jpeg = encode(Image.fromarray(phantom(3)), "JPEG", quality=90)
    rgb = np.stack([phantom(1)] * 3, axis=2)
    vol = _volume()
    cases = [
        (Case("zero_byte.jpg", False, r"empty \(0 bytes\)", 400), lambda: b""),
        (Case("truncated.jpg", False, r"corrupt or truncated", 422), lambda: jpeg[: len(jpeg) // 2]),
        (Case("png_named.jpg", True), valid_png),
        (Case("text_named.png", False, r"not a recognised image format|unsupported content", 415), lambda: b"patient list, do not share\n" * 20),
        (Case("html_named.jpg", False, r"not a recognised image format|unsupported content", 415),
         lambda: b"<!DOCTYPE html><html><body><h1>404 Not Found</h1></body></html>\n" * 5),
        (Case("one_pixel.png", False, r"only 1x1 pixels", 422), lambda: encode(Image.new("L", (1, 1), 128), "PNG")),
        (Case("bomb.png", False, r"decompression bomb", 422), png_bomb),
        (Case("gray16.png", True), lambda: encode(Image.fromarray(phantom(2).astype(np.uint16) * 257), "PNG")),
        (Case("cmyk.jpg", True), lambda: encode(Image.fromarray(rgb).convert("CMYK"), "JPEG", quality=90)),
        (Case("animated.gif", True), _gif_animation),
        (Case("exif_rotated.jpg", True), exif_rotated_jpeg),
        (Case("no_pixels.dcm", False, r"no pixel data", 422, raster=False), lambda: _dicom_bytes(folder, "nopix", pixel_data=False)),
        (Case("mpeg2.dcm", False, r"transfer syntax", 422, raster=False), lambda: _dicom_unsupported_syntax(folder)),
        (Case("monochrome1.dcm", True, raster=False), lambda: _dicom_bytes(folder, "mono1", photometric="MONOCHROME1")),
        (Case("vol4d.nii.gz", True, raster=False), lambda: _nifti(np.stack([vol, vol * 0.5], axis=3))),
        (Case("zeros.nii.gz", False, r"empty", 422, raster=False), lambda: _nifti(np.zeros_like(vol))),
        (Case("nan.nii.gz", False, r"NaN", 422, raster=False), lambda: _nifti(np.full_like(vol, np.nan))),
    ]
    return {case.name: (case, build) for case, build in cases}


CASE_NAMES = [
    "zero_byte.jpg", "truncated.jpg", "png_named.jpg", "text_named.png", "html_named.jpg", "one_pixel.png", "bomb.png",
    "gray16.png", "cmyk.jpg", "animated.gif", "exif_rotated.jpg", "no_pixels.dcm", "mpeg2.dcm", "monochrome1.dcm",
    "vol4d.nii.gz", "zeros.nii.gz", "nan.nii.gz",
]


def write_corpus(folder: Path, raster_only: bool = False) -> dict[str, Case]:
    """Write every corpus file into ``folder`` and return the cases by file name."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, (case, build) in _builders(folder).items():
        if raster_only and not case.raster:
            continue
        (folder / name).write_bytes(build())
        out[name] = case
    assert sorted(out) == sorted(n for n in CASE_NAMES if n in out)
    return out


def write_valid_pngs(folder: Path, n: int = 3, size: int = 64) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        p = folder / f"valid_{i}.png"
        Image.fromarray(phantom(i % 4, size=size, seed=100 + i)).save(p)
        paths.append(p)
    return paths


def make_tiny_checkpoint(path: Path, seed: int = 0, size: int = 32) -> Path:
    """An untrained seed003_cnn tumor4 checkpoint at ``size`` px."""
    import torch

    from brainmri.checkpoint import CheckpointMeta, save_checkpoint
    from brainmri.config import ModelConfig, PreprocessConfig
    from brainmri.data.synthetic import TUMOR4
    from brainmri.models import create_model

    torch.manual_seed(seed)
    meta = CheckpointMeta(model=ModelConfig(name="seed003_cnn"), class_names=list(TUMOR4),
                          preprocess=PreprocessConfig(image_size=size), task="tumor4")
    return save_checkpoint(path, create_model("seed003_cnn", num_classes=4, in_chans=1, image_size=size), meta)
