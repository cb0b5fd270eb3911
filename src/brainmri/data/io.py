"""Decode image files into grayscale ``uint8`` arrays, refusing bad input by name.

Handles JPEG, PNG, BMP, TIFF (and anything else Pillow opens); grayscale, RGB, RGBA, palette,
16-bit; files whose extension lies about their format (content is sniffed, not the name); EXIF
orientation. Zero-byte, truncated, corrupt or over-large images raise :class:`ImageReadError`.
"""
from __future__ import annotations

import io
import os
import struct
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from brainmri.errors import ImageReadError

ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated file is an error, never silently padded

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".gif", ".webp"})
DEFAULT_MAX_PIXELS = 50_000_000


def is_hidden(path: str | Path) -> bool:
    """True for dot-files and OS litter (.DS_Store, Thumbs.db, __MACOSX)."""
    p = Path(path)
    return any(part.startswith(".") or part == "__MACOSX" for part in p.parts[-2:]) or p.name == "Thumbs.db"


def is_image_name(path: str | Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def image_files(root: str | Path) -> list[Path]:
    """Every image file below ``root`` (any depth), sorted, without hidden files and OS litter."""
    root = Path(root)
    return sorted(f for f in root.rglob("*") if f.is_file() and is_image_name(f) and not is_hidden(f.relative_to(root)))


HIGH_DEPTH_WINDOW = (0.1, 99.9)  # percentiles mapped to 0 / 255 for 16-bit and float rasters


def _to_gray_uint8(img: Image.Image) -> np.ndarray:
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I", "F") or mode.startswith("I;"):
        arr = np.asarray(img, dtype=np.float64)
        if arr.ndim == 3:
            arr = arr.mean(axis=2)
        if not np.all(np.isfinite(arr)):
            raise ValueError("image contains NaN or infinite values")
        # a robust window, as NIfTI volumes get: one hot (or cold) pixel must not black out the scan
        sample = arr.ravel()[:: max(1, arr.size // 1_000_000)]
        lo, hi = (float(v) for v in np.percentile(sample, HIGH_DEPTH_WINDOW))
        if hi <= lo:
            lo, hi = float(arr.min()), float(arr.max())
        if hi <= lo:
            return np.zeros(arr.shape, dtype=np.uint8)
        return np.round(np.clip((arr - lo) / (hi - lo), 0.0, 1.0) * 255.0).astype(np.uint8)
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))  # MRI background is black
        img = Image.alpha_composite(background, rgba)
    return np.asarray(img.convert("L"), dtype=np.uint8)


def _decode(fp, name: str, max_pixels: int) -> np.ndarray:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(fp) as img:
                w, h = img.size
                if w * h > max_pixels:
                    raise ImageReadError(name, f"image is {w}x{h} = {w * h:,} pixels, over the limit of {max_pixels:,} (possible decompression bomb)")
                if w < 2 or h < 2:
                    raise ImageReadError(name, f"image is only {w}x{h} pixels")
                if getattr(img, "n_frames", 1) > 1:
                    img.seek(0)  # animated GIF / multi-page TIFF: first frame
                img.load()
                img = ImageOps.exif_transpose(img) or img
                return _to_gray_uint8(img)
    except ImageReadError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageReadError(name, f"refused as a possible decompression bomb ({exc})") from None
    except UnidentifiedImageError:
        from brainmri.inference.sniff import HEADER_BYTES, RASTER_FORMATS, sniff_bytes

        found = sniff_bytes(fp.getvalue()[:HEADER_BYTES]) if isinstance(fp, io.BytesIO) else None
        kind = found.upper() if found in RASTER_FORMATS else None
        if kind:  # the signature is there, the header behind it is not (e.g. a bad PNG checksum)
            raise ImageReadError(name, f"corrupt {kind} header: the file starts as a {kind} but its header cannot be read") from None
        raise ImageReadError(name, "not a recognised image format (content is not JPEG/PNG/BMP/TIFF)") from None
    except (OSError, SyntaxError, ValueError, EOFError, TypeError, KeyError, IndexError, struct.error) as exc:
        # Pillow's plugins signal malformed headers with any of these (TIFF: TypeError "Missing dimensions")
        text = str(exc) or type(exc).__name__
        if "conversion from" in text and "not supported" in text:  # a valid file in a colour mode Pillow cannot map to gray
            raise ImageReadError(name, f"unsupported colour mode ({text})") from None
        if text.startswith("image contains NaN"):
            raise ImageReadError(name, text) from None
        raise ImageReadError(name, f"corrupt or truncated image ({text})") from None
    except MemoryError:
        raise ImageReadError(name, "image too large to decode") from None


def check_file(path: str | Path, folder: str = "is a folder, not an image file") -> None:
    """Raise :class:`ImageReadError` naming ``path`` unless it is a regular file: not found, a
    broken symbolic link (with its target), a symbolic link loop, a folder (``folder``), or a
    FIFO / device / socket (reading one would block forever or never end, e.g. ``/dev/zero``)."""
    p = Path(path)
    if p.is_symlink() and not p.exists():
        try:
            p.resolve(strict=True)
        except RuntimeError:  # Python < 3.13 reports a loop this way
            raise ImageReadError(str(p), "symbolic link loop") from None
        except OSError as exc:
            if getattr(exc, "errno", None) == 40:  # ELOOP
                raise ImageReadError(str(p), "symbolic link loop") from None
        raise ImageReadError(str(p), f"broken symbolic link (to {os.readlink(p)})")
    if not p.exists():
        raise ImageReadError(str(p), "file not found")
    if p.is_dir():
        raise ImageReadError(str(p), folder)
    if not p.is_file():
        raise ImageReadError(str(p), "is not a regular file (a FIFO, device or socket); give an image file")


def read_image(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read an image file as a 2-D grayscale ``uint8`` array.

    Args:
        path: image file; the format is sniffed from its content, not its extension.
        max_pixels: refuse images whose declared size exceeds this (decompression bombs).

    Returns:
        ``np.ndarray`` of shape ``(H, W)``, dtype ``uint8``. Alpha is composited on black;
        16-bit and float images are windowed at the 0.1 / 99.9 percentiles; EXIF orientation is applied.

    Raises:
        ImageReadError: missing, empty, corrupt, truncated, non-image or over-large file.
    """
    p = Path(path)
    check_file(p)
    try:
        size = p.stat().st_size
    except OSError as exc:
        raise ImageReadError(str(p), f"cannot be read ({exc.strerror})") from None
    if size == 0:
        raise ImageReadError(str(p), "file is empty (0 bytes)")
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise ImageReadError(str(p), f"cannot be read ({exc.strerror})") from None
    return _decode(io.BytesIO(data), str(p), max_pixels)


def decode_image_bytes(data: bytes, name: str = "<upload>", max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Like :func:`read_image` for bytes already in memory (uploads)."""
    if not data:
        raise ImageReadError(name, "file is empty (0 bytes)")
    return _decode(io.BytesIO(data), name, max_pixels)


def as_gray_uint8(image, name: str = "<array>") -> np.ndarray:
    """Accept a numpy array (H,W), (H,W,1), (H,W,3), (H,W,4) of any numeric dtype, or a PIL image,
    and return a grayscale ``uint8`` array. Float arrays in [0, 1] are scaled by 255; other ranges
    are min-max scaled. Non-finite values are refused."""
    if isinstance(image, Image.Image):
        return _to_gray_uint8(ImageOps.exif_transpose(image) or image)
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[2] in (1, 3, 4):
        arr = arr[..., :3].astype(np.float64).mean(axis=2) if arr.shape[2] >= 3 else arr[..., 0]
    if arr.ndim != 2 or min(arr.shape) < 2:
        raise ImageReadError(name, f"expected a 2-D image (H, W) or (H, W, C), got shape {tuple(np.asarray(image).shape)}")
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == bool:
        return arr.astype(np.uint8) * 255
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise ImageReadError(name, "array contains NaN or infinite values")
    lo, hi = float(arr.min()), float(arr.max())
    if lo >= 0 and hi <= 1.0 and np.asarray(image).dtype.kind == "f":
        return np.round(arr * 255).astype(np.uint8)
    if lo >= 0 and hi <= 255:
        return np.round(arr).astype(np.uint8)
    if hi <= lo:
        return np.zeros(arr.shape, dtype=np.uint8)
    return np.round((arr - lo) / (hi - lo) * 255).astype(np.uint8)
