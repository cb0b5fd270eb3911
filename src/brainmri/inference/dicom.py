"""Read DICOM files into grayscale ``uint8`` frames, privately.

Pixel pipeline (DICOM PS3.3 C.11): stored values -> Modality LUT (``RescaleSlope`` /
``RescaleIntercept``) -> VOI: the linear window ``WindowCenter`` / ``WindowWidth`` if present,
else a ``VOILUTSequence`` (pydicom's ``apply_voi_lut``), else the min-max range of all frames ->
``uint8`` -> ``MONOCHROME1`` inverted (so bright always means high signal). Compressed transfer
syntaxes decode through pydicom's handlers (RLE built in; JPEG, JPEG-LS, JPEG 2000 with
``pylibjpeg``). Multi-frame files give one image per frame. Colour (RGB / YBR, which pydicom
converts to RGB; ``PALETTE COLOR`` through its lookup tables) frames are averaged to gray and
their colourfulness is kept for the out-of-distribution guard.

Privacy: no tag value is ever logged, returned or put in an error message; only technical
fields (modality, size, frame count, photometric interpretation, transfer syntax) are reported.
"""
from __future__ import annotations

import io
import logging
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from brainmri.data.io import DEFAULT_MAX_PIXELS, percentile_to_uint8
from brainmri.errors import ImageReadError
from brainmri.inference.nifti import MAX_VOXELS

log = logging.getLogger(__name__)

# Tags that identify a person. They are never read into any output; listed for tests and audits.
PATIENT_TAGS = (
    "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "PatientAge", "PatientAddress",
    "OtherPatientIDs", "OtherPatientNames", "PatientTelephoneNumbers", "ReferringPhysicianName",
    "InstitutionName", "AccessionNumber", "StudyID",
)


class _DropPydicomRecords(logging.Filter):
    """pydicom may quote element values (names, ids) in its warnings: keep them out of logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR and not record.args


logging.getLogger("pydicom").addFilter(_DropPydicomRecords())


@dataclass
class DicomFrames:
    """Decoded DICOM pixels.

    Attributes:
        frames: one (H, W) ``uint8`` array per frame.
        colorfulness: fraction of strongly coloured pixels (colour files), else ``None``.
        info: technical, non-identifying fields only.
    """

    frames: list[np.ndarray]
    colorfulness: float | None = None
    info: dict[str, Any] = field(default_factory=dict)


def _first(value: Any) -> float:
    """First number of a possibly multi-valued element (WindowCenter can hold several)."""
    try:
        return float(value[0]) if hasattr(value, "__len__") and not isinstance(value, (str, bytes)) else float(value)
    except (TypeError, ValueError, IndexError):
        return float("nan")


def window_to_uint8(values: np.ndarray, center: float, width: float) -> np.ndarray:
    """Linear VOI window: ``center - width/2`` -> 0, ``center + width/2`` -> 255, clipped.

    Example:
        >>> window_to_uint8(np.array([0.0, 40.0, 80.0]), center=40, width=80).tolist()
        [0, 128, 255]
    """
    lo, hi = center - width / 2.0, center + width / 2.0
    scaled = (values.astype(np.float64) - lo) / max(hi - lo, 1e-6)
    return np.round(np.clip(scaled, 0.0, 1.0) * 255.0).astype(np.uint8)


def minmax_to_uint8(values: np.ndarray) -> np.ndarray:
    """Scale the full range of ``values`` to 0..255 (a constant image becomes all zeros)."""
    v = values.astype(np.float64)
    lo, hi = float(v.min()), float(v.max())
    if hi <= lo:
        return np.zeros(v.shape, dtype=np.uint8)
    return np.round((v - lo) / (hi - lo) * 255.0).astype(np.uint8)


def _decode_pixels(ds: Any, name: str, max_pixels: int) -> np.ndarray:
    if not any(tag in ds for tag in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        if "Rows" in ds and "Columns" in ds:  # it describes an image whose pixels never came
            raise ImageReadError(name, "DICOM file declares an image (Rows, Columns) but holds no pixel data: truncated or incomplete file?")
        if len(ds) == 0:
            raise ImageReadError(name, "DICOM file holds no data elements: empty or truncated")
        raise ImageReadError(name, "DICOM file has no pixel data (not an image, e.g. a report or DICOMDIR)")
    try:
        per_frame = int(ds.get("Rows", 0) or 0) * int(ds.get("Columns", 0) or 0)
        n_frames = int(ds.get("NumberOfFrames", 1) or 1)
    except (TypeError, ValueError):
        raise ImageReadError(name, "DICOM Rows / Columns / NumberOfFrames are not numbers") from None
    if per_frame > max_pixels:
        raise ImageReadError(name, f"DICOM pixel data is {per_frame:,} pixels a frame, over the limit of {max_pixels:,}")
    if per_frame * n_frames > MAX_VOXELS:  # a multi-frame volume: the limit a NIfTI volume has
        raise ImageReadError(name, f"DICOM pixel data is {n_frames:,} frames of {per_frame:,} pixels, {per_frame * n_frames:,} in all, "
                                   f"over the limit of {MAX_VOXELS:,} for a volume")
    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    ts_text = f"{ts.name} ({ts})" if ts is not None else "unknown"
    _check_codestream_size(ds, name, ts, max_pixels)
    quiet = logging.getLogger("pydicom")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)  # pydicom logs every failed decoder's traceback itself
    try:
        return ds.pixel_array
    except RuntimeError as exc:
        if "exceptions were raised by all available plugins" in str(exc):  # decoders there, data broken
            first = str(exc).splitlines()[1].strip() if len(str(exc).splitlines()) > 1 else ""
            raise ImageReadError(name, f"corrupt compressed DICOM pixel data (transfer syntax {ts_text}; {first[:160]})") from None
        raise ImageReadError(name, _no_decoder(ts, ts_text)) from None
    except (NotImplementedError, ImportError):
        raise ImageReadError(name, _no_decoder(ts, ts_text)) from None
    except Exception as exc:  # noqa: BLE001 - corrupt pixel data raises many types
        if ts is None:
            raise ImageReadError(name, "DICOM file meta names no transfer syntax (TransferSyntaxUID), so how its pixels are "
                                       "encoded is unknown; rewrite it with a DICOM tool (e.g. dcmconv)") from None
        raise ImageReadError(name, f"corrupt DICOM pixel data ({type(exc).__name__}, transfer syntax {ts_text})") from None
    finally:
        quiet.setLevel(level)


_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF, 0xF7}  # SOF0-15 but DHT/JPG/DAC; JPEG-LS


def codestream_size(fragment: bytes) -> tuple[int, int] | None:
    """(width, height) that a JPEG, JPEG-LS or JPEG 2000 codestream declares in its header
    (SOF / SIZ marker), or ``None`` when ``fragment`` does not start like one."""
    import struct

    if fragment[:4] == b"\xff\x4f\xff\x51" and len(fragment) >= 24:  # J2K: SOC, SIZ (Lsiz, Rsiz, Xsiz, Ysiz, XOsiz, YOsiz)
        xsiz, ysiz, xo, yo = struct.unpack(">IIII", fragment[8:24])
        return max(0, xsiz - xo), max(0, ysiz - yo)
    if fragment[:2] != b"\xff\xd8":
        return None
    pos = 2
    while pos + 4 <= len(fragment):  # walk the marker segments up to the first frame header
        if fragment[pos] != 0xFF:
            return None
        marker = fragment[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        (length,) = struct.unpack(">H", fragment[pos + 2 : pos + 4])
        if marker in _JPEG_SOF and pos + 9 <= len(fragment):
            height, width = struct.unpack(">HH", fragment[pos + 5 : pos + 9])
            return width, height
        if marker == 0xDA or length < 2:  # scan data before any frame header: nothing to read
            return None
        pos += 2 + length
    return None


def _check_codestream_size(ds: Any, name: str, ts: Any, max_pixels: int) -> None:
    """A compressed frame's own header must declare the image the DICOM header does: a 35 KB
    JPEG 2000 file whose codestream claims 9,000,000 columns would make the decoder allocate
    gigabytes before failing (the DICOM Rows / Columns check above never sees that number)."""
    if ts is None or not getattr(ts, "is_compressed", False) or "PixelData" not in ds:
        return
    from pydicom.encaps import generate_fragmented_frames

    rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    try:  # every frame: a multi-frame file could hide its bomb in the last one
        frames = generate_fragmented_frames(ds.PixelData, number_of_frames=int(ds.get("NumberOfFrames", 1) or 1))
        for k, fragments in enumerate(frames):
            size = codestream_size(bytes(fragments[0][:65536])) if fragments else None
            if size is None:
                continue
            width, height = size
            if width * height > max_pixels or (width, height) != (cols, rows) and width * height > rows * cols:
                frame = f" (frame {k + 1})" if k else ""
                raise ImageReadError(name, f"corrupt DICOM pixel data: the compressed image{frame} declares {width}x{height} pixels but "
                                           f"the DICOM header says {cols}x{rows}; refused before decoding")
    except ImageReadError:
        raise
    except Exception:  # noqa: BLE001 - unreadable encapsulation: the decoder says what is wrong
        return


def _no_decoder(ts: Any, ts_text: str) -> str:
    """Why compressed pixel data cannot be decoded, with advice that can help: the JPEG-family
    plugins when one is missing, otherwise that the syntax is not supported (e.g. MPEG-2 video)."""
    import importlib.util

    jpeg_family = ts is not None and any(k in str(getattr(ts, "name", "")) for k in ("JPEG", "RLE"))
    missing = [pkg for pkg, mod in (("pylibjpeg", "pylibjpeg"), ("pylibjpeg-libjpeg", "libjpeg"), ("pylibjpeg-openjpeg", "openjpeg"))
               if importlib.util.find_spec(mod) is None]
    if jpeg_family and missing:
        return f"cannot decode DICOM pixel data with transfer syntax {ts_text}: no available decoder; install {', '.join(missing)}"
    return (f"cannot decode DICOM pixel data with transfer syntax {ts_text}: no installed decoder supports it; "
            "convert the file to an uncompressed or JPEG transfer syntax (e.g. gdcmconv --raw)")


def _frames_array(ds: Any, arr: np.ndarray, name: str) -> tuple[np.ndarray, bool]:
    """-> (frames, H, W[, 3]) and whether the frames are colour."""
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    n_frames = int(ds.get("NumberOfFrames", 1) or 1)
    colour = samples == 3
    expected = 2 + colour + (n_frames > 1)
    if arr.ndim != expected:
        if arr.ndim == expected - 1 and n_frames > 1:
            n_frames = 1
        else:
            raise ImageReadError(name, f"unexpected DICOM pixel array shape {arr.shape} for {n_frames} frame(s) and {samples} sample(s) per pixel")
    if n_frames == 1:
        arr = arr[None]
    if min(arr.shape[1:3]) < 2:
        raise ImageReadError(name, f"DICOM image is only {arr.shape[2]}x{arr.shape[1]} pixels")
    return arr, colour


def _to_uint8_gray(ds: Any, frames: np.ndarray, name: str) -> list[np.ndarray]:
    """Modality LUT -> VOI -> uint8 -> MONOCHROME1 inversion, for (F, H, W) monochrome frames."""
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    try:
        values = np.asarray(apply_modality_lut(frames, ds), dtype=np.float64)
    except Exception:  # noqa: BLE001 - malformed LUT: fall back to stored values
        values = frames.astype(np.float64)
    if not np.all(np.isfinite(values)):
        raise ImageReadError(name, "DICOM pixel data contains NaN or infinite values")
    center, width = _first(ds.get("WindowCenter")), _first(ds.get("WindowWidth"))
    if np.isfinite(center) and np.isfinite(width) and width > 0:
        out = window_to_uint8(values, center, width)
    elif "VOILUTSequence" in ds:
        try:
            out = minmax_to_uint8(np.asarray(apply_voi_lut(frames, ds), dtype=np.float64))
        except Exception:  # noqa: BLE001
            out = percentile_to_uint8(values)
    elif values.max() - values.min() > 255:
        out = percentile_to_uint8(values)  # no window given: a robust one over all frames, as 16-bit PNGs get
    else:
        out = minmax_to_uint8(values)
    if str(ds.get("PhotometricInterpretation", "")).upper() == "MONOCHROME1":
        out = 255 - out
    return [np.ascontiguousarray(f) for f in out]


def _palette_to_rgb(ds: Any, frames: np.ndarray, name: str) -> np.ndarray:
    """(F, H, W) ``PALETTE COLOR`` indices -> (F, H, W, 3) RGB on a 0..255 scale, through the
    file's palette colour lookup tables (pydicom's ``apply_color_lut``)."""
    from pydicom.pixels import apply_color_lut

    try:
        rgb = np.asarray(apply_color_lut(frames, ds))[..., :3]  # RGBA palettes: alpha dropped
    except Exception:  # noqa: BLE001 - missing, malformed or unsupported lookup tables
        raise ImageReadError(name, "DICOM photometric interpretation PALETTE COLOR, but its palette colour lookup tables are "
                                   "missing or unreadable, so its stored values (palette indices) cannot be turned into an image") from None
    if rgb.max() > 255:  # 16-bit entries span 0..65535 (some writers put 8-bit values in them: left as they are)
        rgb = np.round(rgb.astype(np.float64) / 257.0)
    return rgb


def _reason(exc: BaseException) -> str:
    """pydicom's own words for what is broken (e.g. an unknown value representation), short."""
    text = " ".join(str(exc).split())
    return text[:160] if text and len(text) < 400 else type(exc).__name__


def read_dicom(data: bytes, name: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> DicomFrames:
    """Decode a DICOM file's bytes into gray ``uint8`` frames.

    Args:
        data: the whole file.
        name: shown in errors (a path or an upload's label); never a tag value.
        max_pixels: refuse files declaring more pixels a frame than this (all frames together:
            more voxels than a NIfTI volume may hold, ``nifti.MAX_VOXELS``).

    Raises:
        ImageReadError: not DICOM, no pixel data, undecodable transfer syntax, corrupt data.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom's validation warnings may quote tag values
        try:
            ds = pydicom.dcmread(io.BytesIO(data))
        except InvalidDicomError:
            ds = _read_raw(data, name)
        except Exception as exc:  # noqa: BLE001 - truncated / corrupt files raise many types
            raise ImageReadError(name, f"corrupt or truncated DICOM file ({_reason(exc)})") from None
        try:
            return _frames_of(ds, name, max_pixels)
        except ImageReadError:
            raise
        except Exception as exc:  # noqa: BLE001 - pydicom parses elements lazily: a damaged header surfaces here
            raise ImageReadError(name, f"corrupt DICOM header ({_reason(exc)})") from None


def _read_raw(data: bytes, name: str) -> Any:
    """A data set with no preamble or ``DICM`` (:func:`brainmri.inference.sniff.is_raw_dicom`),
    read as pydicom's ``force=True`` does; with no file meta, the transfer syntax is the
    encoding it was read in (implicit / explicit VR little endian)."""
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

    from brainmri.inference.sniff import is_raw_dicom

    if not is_raw_dicom(data[:64]):
        raise ImageReadError(name, "not a valid DICOM file")
    data = data[4:] if data[:4] == b"DICM" else data
    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=True)
    except Exception as exc:  # noqa: BLE001 - truncated / corrupt files raise many types
        raise ImageReadError(name, f"corrupt or truncated DICOM file, written without its preamble ({_reason(exc)})") from None
    meta = getattr(ds, "file_meta", None)
    if meta is None or "TransferSyntaxUID" not in meta:
        implicit, little = getattr(ds, "original_encoding", (True, True))
        if not little:
            raise ImageReadError(name, "DICOM data set without a preamble in big-endian encoding: rewrite it with a DICOM tool (e.g. dcmconv)")
        ds.file_meta = meta if meta is not None else FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
    return ds


def _frames_of(ds: Any, name: str, max_pixels: int) -> DicomFrames:
    arr = _decode_pixels(ds, name, max_pixels)
    frames, colour = _frames_array(ds, np.asarray(arr), name)
    colorfulness = None
    if not colour and str(ds.get("PhotometricInterpretation", "")).strip().upper() == "PALETTE COLOR":
        frames, colour = _palette_to_rgb(ds, frames, name), True  # stored values are indices, not intensities
    if colour:
        from brainmri.inference.ood import colorfulness as colour_fraction

        rgb = frames.astype(np.float64)
        levels = 255.0 if rgb.max() <= 255 else float(2 ** max(8, min(16, int(ds.get("BitsStored", 16) or 16))) - 1)
        rgb8 = rgb * (255.0 / levels)  # colourfulness counts spreads in 8-bit levels, also for 16-bit RGB
        colorfulness = float(np.mean([colour_fraction(f) for f in rgb8[:: max(1, len(rgb8) // 8)]]))
        gray_frames = [percentile_to_uint8(f.mean(axis=2)) if f.max() > 255 else np.round(f.mean(axis=2)).astype(np.uint8) for f in rgb]
    else:
        gray_frames = _to_uint8_gray(ds, frames, name)
    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    info = {
        "format": "dicom",
        "modality": str(ds.get("Modality", "")) or None,
        "rows": int(frames.shape[1]),
        "columns": int(frames.shape[2]),
        "frames": int(frames.shape[0]),
        "photometric_interpretation": str(ds.get("PhotometricInterpretation", "")) or None,
        "transfer_syntax": ts.name if ts is not None else None,
    }
    return DicomFrames(frames=gray_frames, colorfulness=colorfulness, info=info)
