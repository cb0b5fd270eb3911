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


LITTER_FOLDERS = ("__MACOSX", "@eaDir")  # macOS archive forks, Synology thumbnails


def _litter(part: str) -> bool:
    return (part.startswith(".") and part not in (".", "..")) or part in LITTER_FOLDERS


def is_hidden(path: str | Path) -> bool:
    """True for dot-files and OS litter (.DS_Store, Thumbs.db, __MACOSX, @eaDir): the file or
    the folder holding it (its last two parts; :func:`is_hidden_below` tests every folder)."""
    p = Path(path)
    return any(_litter(part) for part in p.parts[-2:]) or p.name == "Thumbs.db"


def is_hidden_below(path: str | Path, root: str | Path) -> bool:
    """:func:`is_hidden` for every folder between ``root`` and ``path`` (``__MACOSX/sub/x.jpg``
    inside a class folder too); ``root``'s own place does not count (a dataset under ``~/.data``)."""
    rel = Path(path).relative_to(root)
    return any(_litter(part) for part in rel.parts) or rel.name == "Thumbs.db"


def is_image_name(path: str | Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def image_files(root: str | Path) -> list[Path]:
    """Every image file below ``root`` (any depth), sorted, without hidden files and OS litter."""
    root = Path(root)
    return sorted(f for f in root.rglob("*") if f.is_file() and is_image_name(f) and not is_hidden_below(f, root))


HIGH_DEPTH_WINDOW = (0.1, 99.9)  # percentiles mapped to 0 / 255 for 16-bit and float rasters


def percentile_to_uint8(arr: np.ndarray) -> np.ndarray:
    """Map the 0.1 / 99.9 percentiles of a high-depth raster (16-bit, float; any shape, e.g. all
    frames of a DICOM) to 0 / 255, clipped: a robust window, as NIfTI volumes get, so one hot (or
    cold) pixel does not black out the scan. A float32 array is scaled in place; a constant one
    becomes all zeros."""
    arr = arr if arr.dtype == np.float32 and arr.flags.writeable else arr.astype(np.float32)
    sample = arr.ravel()[:: max(1, arr.size // 1_000_000)]
    lo, hi = (float(v) for v in np.percentile(sample, HIGH_DEPTH_WINDOW))
    if hi <= lo:
        lo, hi = float(arr.min()), float(arr.max())
    if hi <= lo:
        return np.zeros(arr.shape, dtype=np.uint8)
    arr -= lo
    arr *= 255.0 / (hi - lo)  # in place: no second full-size copy
    np.clip(arr, 0.0, 255.0, out=arr)
    return np.round(arr).astype(np.uint8)


def _to_gray_uint8(img: Image.Image) -> np.ndarray:
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I", "F") or mode.startswith("I;"):
        arr = np.array(img, dtype=np.float32)  # a writable float32 copy: a 7000 x 7000 16-bit PNG of 107 KB costs 200 MB, not 400
        if arr.ndim == 3:
            arr = arr.mean(axis=2)
        if not np.all(np.isfinite(arr)):
            raise ValueError("image contains NaN or infinite values")
        return percentile_to_uint8(arr)
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
                check_image_size(name, h, w, max_pixels)
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
    try:
        _check_file(p, folder)
    except OSError as exc:  # e.g. a name too long for the file system: the path cannot even be looked at
        shown = str(p) if len(str(p)) <= 120 else str(p)[:60] + "..." + str(p)[-40:]
        raise ImageReadError(shown, f"cannot be read ({exc.strerror or exc})") from None


def _check_file(p: Path, folder: str) -> None:
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


MAX_SIDE = 16_384  # pixels; preparing pads to a square of the longest side (a 2 x 5,000,000 strip: a 25 TB square)


def check_image_size(name: str, height: int, width: int, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
    """Refuse an image too small, too large (``max_pixels``) or too long on one side to be a scan, by name."""
    if height < 2 or width < 2:
        raise ImageReadError(name, f"image is only {width}x{height} pixels")
    if height * width > max_pixels:
        raise ImageReadError(name, f"image is {width}x{height} = {width * height:,} pixels, over the limit of {max_pixels:,} "
                                   "(possible decompression bomb)")
    if max(height, width) > MAX_SIDE:
        raise ImageReadError(name, f"image is {width}x{height} pixels: a side over the limit of {MAX_SIDE:,} (no scan is that long)")


def to_uint8_levels(arr: np.ndarray, is_float: bool) -> np.ndarray:
    """The intensity rule for in-memory arrays (any shape): floats in [0, 1] are scaled by 255;
    whole numbers in 0..255 (integer arrays, or floats holding 8-bit levels) are kept as 8-bit gray
    levels; anything else (a float scan in arbitrary units, 12-bit integers, negative values) is
    min-max scaled to 0..255."""
    arr = np.asarray(arr, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError("array contains NaN or infinite values")
    if arr.size == 0:
        return arr.astype(np.uint8)
    lo, hi = float(arr.min()), float(arr.max())
    if is_float and lo >= 0 and hi <= 1.0:
        return np.round(arr * 255).astype(np.uint8)
    if lo >= 0 and hi <= 255 and (not is_float or np.array_equal(arr, np.round(arr))):
        return np.round(arr).astype(np.uint8)
    if hi <= lo:
        return np.zeros(arr.shape, dtype=np.uint8)
    return np.round((arr - lo) / (hi - lo) * 255).astype(np.uint8)


def as_gray_uint8(image, name: str = "<array>", max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Accept a numpy array (H,W), (H,W,1), (H,W,3), (H,W,4) of a numeric dtype, or a PIL image,
    and return a grayscale ``uint8`` array (colour: the mean of the channels; the levels by
    :func:`to_uint8_levels`). Non-finite values, non-numeric dtypes and sizes no scan has
    (:func:`check_image_size`) are refused with :class:`ImageReadError` naming ``name``."""
    if isinstance(image, Image.Image):
        try:
            check_image_size(name, image.height, image.width, max_pixels)
            return _to_gray_uint8(ImageOps.exif_transpose(image) or image)
        except ImageReadError:
            raise
        except (ValueError, OSError) as exc:  # a closed image, a colour mode Pillow cannot map to gray, NaN pixels
            text = str(exc) or type(exc).__name__
            raise ImageReadError(name, f"unsupported colour mode ({text})" if "conversion from" in text else text) from None
    arr = np.asarray(image)
    check_array_image(arr, name, max_pixels)
    if arr.ndim == 3:
        arr = arr[..., :3] if arr.shape[2] >= 3 else arr[..., 0]  # alpha ignored
    levels = to_uint8_levels_or_refuse(arr, name)  # on the channels, before they are averaged: one rule for gray and colour
    return levels if levels.ndim == 2 else np.round(levels.astype(np.float64).mean(axis=2)).astype(np.uint8)


def check_array_image(arr: np.ndarray, name: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
    """Refuse an array that is no image: a non-numeric dtype, a shape other than (H, W) or
    (H, W, 1|3|4), or a size no scan has (:func:`check_image_size`)."""
    if arr.dtype.kind not in "buif":
        raise ImageReadError(name, f"array of dtype {arr.dtype} is not an image; give numbers (uint8, uint16, float...)")
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (1, 3, 4))) or min(arr.shape[:2]) < 2:
        raise ImageReadError(name, f"expected a 2-D image (H, W) or (H, W, C), got shape {tuple(arr.shape)}")
    check_image_size(name, arr.shape[0], arr.shape[1], max_pixels=max_pixels)


def to_uint8_levels_or_refuse(arr: np.ndarray, name: str) -> np.ndarray:
    """:func:`to_uint8_levels` for any numeric array (bool: 0 / 255), refusing NaN by ``name``."""
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == bool:
        return arr.astype(np.uint8) * 255
    try:
        return to_uint8_levels(arr, is_float=arr.dtype.kind == "f")
    except ValueError as exc:
        raise ImageReadError(name, str(exc)) from None
