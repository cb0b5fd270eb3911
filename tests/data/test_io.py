"""Image decoding on generated files: formats, modes, lying extensions, EXIF, and bad files."""
from __future__ import annotations

import io
import re
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from brainmri.data.io import as_gray_uint8, decode_image_bytes, is_hidden, is_image_name, read_image
from brainmri.errors import ImageReadError


def gradient(h: int = 20, w: int = 30) -> np.ndarray:
    return (np.arange(h * w).reshape(h, w) * 255 // (h * w - 1)).astype(np.uint8)


def save(img: Image.Image, path: Path, fmt: str | None = None, **kw) -> Path:
    img.save(path, format=fmt, **kw)
    return path


@pytest.mark.parametrize("ext,fmt", [("jpg", "JPEG"), ("png", "PNG"), ("bmp", "BMP"), ("tif", "TIFF")])
def test_formats_gray(tmp_path: Path, ext: str, fmt: str) -> None:
    src = gradient()
    out = read_image(save(Image.fromarray(src), tmp_path / f"g.{ext}", fmt))
    assert out.dtype == np.uint8 and out.shape == (20, 30)
    tol = 6 if fmt == "JPEG" else 0
    assert np.abs(out.astype(int) - src).max() <= tol


def test_rgb_becomes_luminance(tmp_path: Path) -> None:
    rgb = np.zeros((10, 12, 3), np.uint8)
    rgb[..., 0] = 255  # pure red -> L = 76
    out = read_image(save(Image.fromarray(rgb), tmp_path / "r.png"))
    assert out.shape == (10, 12) and int(out[0, 0]) == 76


def test_rgba_composited_on_black(tmp_path: Path) -> None:
    rgba = np.full((10, 10, 4), 200, np.uint8)
    rgba[:5, :, 3] = 0  # top half transparent
    rgba[5:8, :, 3] = 255  # opaque
    rgba[8:, :, 3] = 128  # half transparent
    out = read_image(save(Image.fromarray(rgba, "RGBA"), tmp_path / "a.png"))
    assert out[:5].max() == 0 and out[5:8].min() == 200
    assert abs(int(out[9, 0]) - 100) <= 1


def test_palette_image(tmp_path: Path) -> None:
    p = Image.fromarray(gradient()).convert("P")
    out = read_image(save(p, tmp_path / "p.png"))
    assert out.shape == (20, 30)
    assert np.abs(out.astype(int) - gradient()).max() <= 2


def test_palette_with_transparency(tmp_path: Path) -> None:
    p = Image.new("P", (8, 8), 1)
    p.putpalette([0, 0, 0, 255, 255, 255] + [0] * 762)
    p.info["transparency"] = 1
    out = read_image(save(p, tmp_path / "t.png", transparency=1))
    assert out.max() == 0  # the white index is transparent -> black


def test_16_bit_png_scaled_to_8_bits(tmp_path: Path) -> None:
    arr = np.linspace(1000, 3000, 20 * 30).reshape(20, 30).astype(np.uint16)
    img = Image.fromarray(arr)
    path = save(img, tmp_path / "d.png")
    assert Image.open(path).mode.startswith("I")
    out = read_image(path)
    assert out.dtype == np.uint8 and out.min() == 0 and out.max() == 255
    assert np.all(np.diff(out.astype(int).ravel()) >= 0)  # monotone, as the source


def test_one_hot_pixel_does_not_black_out_a_16_bit_scan(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    arr = (rng.random((64, 64)) * 2000 + 500).astype(np.uint16)  # a scan stored as 500..2500
    clean = read_image(save(Image.fromarray(arr), tmp_path / "clean.png"))
    arr[0, 0] = 65535  # one saturated pixel (a detector spike, a burned-in marker)
    hot = read_image(save(Image.fromarray(arr), tmp_path / "hot.png"))
    assert hot[0, 0] == 255 and hot.std() > 50  # min / max scaling squeezed the scan into 0..8
    assert np.abs(hot.astype(int) - clean.astype(int))[1:, 1:].mean() < 2  # the same picture as without the spike


def test_png_named_jpg_is_sniffed(tmp_path: Path) -> None:
    path = save(Image.fromarray(gradient()), tmp_path / "lies.jpg", "PNG")
    assert np.array_equal(read_image(path), gradient())


def test_exif_orientation_applied(tmp_path: Path) -> None:
    img = Image.fromarray(gradient(20, 40))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    path = save(img, tmp_path / "rot.jpg", "JPEG", exif=exif.tobytes())
    assert Image.open(path).size == (40, 20)
    assert read_image(path).shape == (40, 20)  # transposed


def test_zero_byte_file(tmp_path: Path) -> None:
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(ImageReadError, match=r"empty\.jpg: file is empty"):
        read_image(tmp_path / "empty.jpg")


def test_truncated_jpeg(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (64, 64), dtype=np.uint8)).save(buf, "JPEG")
    (tmp_path / "cut.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(ImageReadError, match=r"cut\.jpg: corrupt or truncated"):
        read_image(tmp_path / "cut.jpg")


def test_text_file_named_png(tmp_path: Path) -> None:
    (tmp_path / "notes.png").write_text("this is not an image\n")
    with pytest.raises(ImageReadError, match=r"notes\.png: not a recognised image format"):
        read_image(tmp_path / "notes.png")


def _png_with_declared_size(width: int, height: int) -> bytes:
    """A tiny PNG whose IHDR claims ``width x height`` (a decompression bomb's header)."""
    buf = io.BytesIO()
    Image.new("L", (1, 1)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    ihdr = bytearray(data[12:29])  # b"IHDR" + 13 bytes
    ihdr[4:12] = struct.pack(">II", width, height)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)) & 0xFFFFFFFF)
    return bytes(data)


def test_decompression_bomb_refused_fast(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_with_declared_size(60_000, 60_000))
    start = time.perf_counter()
    with pytest.raises(ImageReadError, match=r"bomb\.png: .*decompression bomb"):
        read_image(path)
    assert time.perf_counter() - start < 1.0
    with pytest.raises(ImageReadError, match="decompression bomb"):
        decode_image_bytes(path.read_bytes(), name="upload.png", max_pixels=1000)


def test_custom_pixel_limit(tmp_path: Path) -> None:
    path = save(Image.fromarray(gradient(50, 50)), tmp_path / "big.png")
    with pytest.raises(ImageReadError, match="over the limit of 1,000"):
        read_image(path, max_pixels=1000)


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(ImageReadError, match="file not found"):
        read_image(tmp_path / "nope.png")
    with pytest.raises(ImageReadError, match="is a folder"):
        read_image(tmp_path)


def test_decode_bytes_matches_file(tmp_path: Path) -> None:
    path = save(Image.fromarray(gradient()), tmp_path / "x.png")
    assert np.array_equal(decode_image_bytes(path.read_bytes()), read_image(path))
    with pytest.raises(ImageReadError, match="<upload>: file is empty"):
        decode_image_bytes(b"")


def test_as_gray_uint8_arrays() -> None:
    assert as_gray_uint8(np.full((4, 4), 0.5, np.float32))[0, 0] == 128  # [0, 1] floats scaled
    assert as_gray_uint8(np.full((4, 4, 3), 90, np.uint8))[0, 0] == 90
    assert as_gray_uint8(np.array([[0, 1000], [2000, 4000]], np.uint16)).max() == 255
    with pytest.raises(ImageReadError, match="NaN"):
        as_gray_uint8(np.array([[np.nan, 1], [1, 1]]))
    with pytest.raises(ImageReadError, match="shape"):
        as_gray_uint8(np.zeros((2, 2, 2, 2)))


def test_name_helpers() -> None:
    assert is_hidden("a/.DS_Store") and is_hidden("x/__MACOSX/f.jpg") and is_hidden("Thumbs.db")
    assert not is_hidden("data/glioma/a.jpg")
    assert is_image_name("A.JPG") and is_image_name("b.tiff") and not is_image_name("c.txt")


def test_paths_that_are_not_regular_files_get_their_own_reason(tmp_path: Path) -> None:
    import os

    from brainmri.data.hashing import hash_file
    from brainmri.inference.inputs import decode_path

    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)  # reading it would block forever
    (tmp_path / "loop_a").symlink_to(tmp_path / "loop_b")
    (tmp_path / "loop_b").symlink_to(tmp_path / "loop_a")
    (tmp_path / "dangling.png").symlink_to("/nonexistent/x.png")
    cases = {fifo: "is not a regular file (a FIFO, device or socket)", tmp_path / "loop_a": "symbolic link loop",
             tmp_path / "dangling.png": "broken symbolic link (to /nonexistent/x.png)", Path("/dev/zero"): "is not a regular file"}
    for path, reason in cases.items():
        for read in (read_image, decode_path):
            with pytest.raises(ImageReadError, match=re.escape(f"{path}: {reason}")):
                read(path)
        assert hash_file(path).error.startswith(reason)


def test_a_readable_signature_with_a_broken_header_or_an_odd_colour_mode_is_named_as_such(tmp_path: Path) -> None:
    good = io.BytesIO()
    Image.fromarray(gradient()).save(good, format="PNG")
    data = bytearray(good.getvalue())
    data[29] ^= 0xFF  # the IHDR checksum
    with pytest.raises(ImageReadError, match=r"crc\.png: corrupt PNG header: the file starts as a PNG"):
        decode_image_bytes(bytes(data), "crc.png")
    lab = tmp_path / "lab.tif"
    Image.merge("LAB", [Image.fromarray(gradient())] * 3).save(lab)
    with pytest.raises(ImageReadError, match=r"lab\.tif: unsupported colour mode \(conversion from LAB"):
        read_image(lab)
    nan = tmp_path / "nan.tif"
    Image.fromarray(np.full((20, 30), np.nan, dtype=np.float32)).save(nan)
    with pytest.raises(ImageReadError, match=r"nan\.tif: image contains NaN or infinite values$"):
        read_image(nan)
