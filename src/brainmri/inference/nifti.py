"""Read NIfTI volumes (``.nii`` / ``.nii.gz``, or a ``.hdr`` + ``.img`` NIfTI-1 / Analyze 7.5 pair)
into grayscale ``uint8`` slices.

The volume is reoriented to the closest canonical (RAS+) orientation, so ``axial`` /
``coronal`` / ``sagittal`` mean the same thing for every file; a slice is rotated so anterior /
superior is up, and resampled to square pixels when the voxels are anisotropic. Intensities are
windowed once per volume (0.5-99.5th percentile of non-zero voxels), so slices stay comparable.

Slice selection (``slices``): ``middle`` (one slice), ``middle:K`` (K slices centred on the
middle), ``all``, ``A:B`` or ``A:B:STEP`` (a range, end exclusive), or one index ``N``.
"""
from __future__ import annotations

import io
import logging
import threading
import warnings
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from brainmri.errors import ConfigError, ImageReadError

AXES = {"sagittal": 0, "coronal": 1, "axial": 2, "0": 0, "1": 1, "2": 2}
MAX_DECOMPRESSED_BYTES = 2 * 1024**3  # refuse gzip bombs
MAX_VOXELS = 160_000_000  # one 3-D volume, read as float32 (~640 MB): 512 x 512 x 600 fits, 800^3 does not
MAX_VOXEL_RATIO = 50.0  # in-plane voxel sizes further apart than this (e.g. 0.2 mm x 10 mm) are not a scan to resample
MAX_SLICE_SIDE = 2048  # a resampled slice is scaled down to this side at most (the model sees 160-224 px)
PAIR_SUFFIXES = ((".hdr", ".img"), (".hdr.gz", ".img.gz"))  # header, voxels of an Analyze / NIfTI pair

log = logging.getLogger(__name__)
_reading = threading.local()  # the messages nibabel logs while this thread reads a volume


class _CollectNibabelRecords(logging.Filter):
    """nibabel logs each header fix (``pixdim[1,2,3] should be positive; setting to abs...``) on
    its own handler and again on the root's, without the file's name: while a volume is read they
    are collected instead, for one line that names the file (:func:`_nibabel_messages`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        sink = getattr(_reading, "sink", None)
        if sink is None:
            return True
        sink.append((record.levelno, record.getMessage()))
        return False


logging.getLogger("nibabel.global").addFilter(_CollectNibabelRecords())


@dataclass
class NiftiSlices:
    """Selected slices of a volume.

    Attributes:
        images: (H, W) ``uint8`` slices.
        indices: slice index of each image along ``axis``.
        info: shape, axis, voxel sizes and notes (e.g. which 4-D volume was used).
    """

    images: list[np.ndarray]
    indices: list[int]
    info: dict[str, Any] = field(default_factory=dict)


def pair_partner(path: str | Path) -> Path | None:
    """The other file of an Analyze / NIfTI pair beside ``path`` (``x.hdr`` <-> ``x.img``, or
    ``x.hdr.gz`` <-> ``x.img.gz``, either case), or ``None`` when ``path`` is no such file or its
    partner is missing."""
    p = Path(path)
    lower = p.name.lower()
    for hdr, img in PAIR_SUFFIXES:
        for mine, other in ((hdr, img), (img, hdr)):
            if lower.endswith(mine):
                stem = p.name[: -len(mine)]
                for suffix in (other, other.upper()):
                    if (p.with_name(stem + suffix)).is_file():
                        return p.with_name(stem + suffix)
    return None


def volume_name(path: str | Path) -> str:
    """``M2307_T2.nii.gz`` -> ``M2307_T2`` (the file name without ``.nii`` / ``.nii.gz``)."""
    name = Path(path).name
    for suffix in (".nii.gz", ".nii"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


def parse_axis(axis: str | int) -> int:
    """``axial``/``coronal``/``sagittal`` or 0/1/2 -> array axis in RAS+ orientation."""
    key = str(axis).strip().lower()
    if key not in AXES:
        raise ConfigError(f"axis={axis!r} is not valid; choose one of: axial, coronal, sagittal, 0, 1, 2")
    return AXES[key]


def check_slices_spec(spec: str) -> str:
    """Validate a slice selection's syntax early (before any file is read)."""
    parse_slices(spec, 10_000, validate_only=True)
    return spec


class _EmptySelection(ConfigError):
    """A well-formed range that selects nothing (A:B with A >= B)."""


def parse_slices(spec: str, n: int, validate_only: bool = False) -> list[int]:
    """Slice indices selected by ``spec`` in a volume of ``n`` slices.

    Example:
        >>> parse_slices("middle", 9), parse_slices("middle:3", 9), parse_slices("2:8:2", 9)
        ([4], [3, 4, 5], [2, 4, 6])
    """
    s = str(spec).strip().lower()
    bad = ConfigError(f"slices={spec!r} is not valid; use middle, middle:K, all, A:B, A:B:STEP or an index N")
    try:
        if s == "middle":
            return [n // 2]
        if s == "all":
            return list(range(n))
        if s.startswith("middle:"):
            k = int(s.split(":", 1)[1])
            if k < 1:
                raise bad
            start = max(0, n // 2 - k // 2)
            return list(range(start, min(n, start + k)))
        parts = s.split(":")
        if len(parts) == 1:
            idx = [int(parts[0])]
            if idx[0] < 0:  # counted from 0; no negative (from the end) indices
                raise bad
        elif len(parts) in (2, 3):
            a = int(parts[0]) if parts[0] else 0
            b = int(parts[1]) if parts[1] else (n if not validate_only else a + 1)  # "A:" runs to the volume's end, whatever its size
            step = int(parts[2]) if len(parts) == 3 and parts[2] else 1
            if step < 1 or a < 0 or b < 0:
                raise bad
            if a >= b:
                raise _EmptySelection(f"slices={spec!r} selects no slice: start {a} is not below stop {b}")
            idx = list(range(a, min(b, n) if not validate_only else b, step))
        else:
            raise bad
    except _EmptySelection:
        raise
    except ValueError:
        raise bad from None
    if validate_only:
        return idx
    return [i for i in idx if 0 <= i < n]


def _clamp_note(spec: str, n: int, indices: list[int], axis: str) -> str | None:
    """A note when a selection asks for more than the volume holds (it is cut to the volume)."""
    s = str(spec).strip().lower()
    if s.startswith("middle:") and int(s.split(":", 1)[1]) > n:
        return f"slices {spec!r} asks for {int(s.split(':', 1)[1])} slices; the volume has {n} along {axis}: all {n} used"
    parts = s.split(":")
    if len(parts) in (2, 3) and parts[1] and int(parts[1]) > n:
        return f"slices {spec!r} ends past the volume's {n} slices along {axis}: {len(indices)} used ({indices[0]}..{indices[-1]})"
    return None


def _gunzip(data: bytes, name: str, max_bytes: int) -> bytes:
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = d.decompress(data, max_bytes)
    except zlib.error:
        raise ImageReadError(name, "corrupt gzip-compressed NIfTI file") from None
    if d.unconsumed_tail:
        raise ImageReadError(name, f"NIfTI volume decompresses to more than {max_bytes / 1024**2:.3g} MiB")
    return out


def _image_class(raw: bytes) -> Any:
    """nibabel's class for a header: NIfTI-1 / -2 single file (magic ``n+1`` / ``n+2``), NIfTI-1 /
    -2 pair (``ni1`` / ``ni2``) or, with no NIfTI magic, Analyze 7.5 (read as SPM2 Analyze, as
    ``nibabel.load`` does)."""
    import nibabel as nib

    n2 = len(raw) >= 4 and 540 in (int.from_bytes(raw[:4], "little"), int.from_bytes(raw[:4], "big"))
    magic = raw[4:7] if n2 else raw[344:347]
    if magic in (b"ni1", b"ni2"):
        return nib.Nifti2Pair if n2 else nib.Nifti1Pair
    if magic in (b"n+1", b"n+2") or n2:
        return nib.Nifti2Image if n2 else nib.Nifti1Image
    return nib.Spm2AnalyzeImage


def _load_volume(data: bytes, name: str, max_bytes: int, image_data: bytes | None = None) -> tuple[np.ndarray, tuple[float, ...], dict[str, Any]]:
    import nibabel as nib

    raw = _gunzip(data, name, max_bytes) if data[:2] == b"\x1f\x8b" else data
    cls = _image_class(raw)
    info: dict[str, Any] = {"format": "nifti"}
    try:
        if "header" in dict(cls.files_types):  # a pair: the header's voxels are in its .img file
            if image_data is None:
                raise ImageReadError(name, "is the header of an Analyze / NIfTI pair (.hdr + .img) and holds no voxels: give it with its "
                                           ".img file beside it (same name), or a single-file .nii / .nii.gz")
            voxels_raw = _gunzip(image_data, name, max_bytes) if image_data[:2] == b"\x1f\x8b" else image_data
            files = {"header": io.BytesIO(raw), "image": io.BytesIO(voxels_raw), "mat": io.BytesIO(b"")}  # no SPM .mat affine
            img = cls.from_file_map(cls.make_file_map({k: v for k, v in files.items() if k in dict(cls.files_types)}))
        else:
            img = cls.from_bytes(raw)
        if img.get_data_dtype().fields is not None:  # RGB24 / RGBA32 voxels: a rendered picture, not MR intensities
            kind = "".join(img.get_data_dtype().names)
            raise ImageReadError(name, f"NIfTI volume has colour ({kind}) voxels: a rendered picture, not gray MR intensities")
        shape = tuple(int(d) for d in img.shape)
        info["shape"] = list(shape)
        while len(shape) > 4 and shape[-1] == 1:  # (X, Y, Z, T, 1, ...): trailing singleton dimensions say nothing
            img, shape = img.slicer[..., 0], shape[:-1]
        if len(shape) == 4:  # only the first volume is read, not all of them
            if shape[3] > 1:
                info["note"] = f"4-D volume with {shape[3]} volumes: the first one is used"
            img = img.slicer[..., 0]
        voxels = int(np.prod(img.shape, dtype=np.int64))
        if voxels > MAX_VOXELS:
            raise ImageReadError(name, f"NIfTI volume of {' x '.join(map(str, img.shape))} = {voxels:,} voxels is too large to read "
                                       f"(at most {MAX_VOXELS:,}, about {MAX_VOXELS * 4 / 1024**2:,.0f} MiB as float32)")
        try:
            img = nib.as_closest_canonical(img)
        except Exception:  # noqa: BLE001 - degenerate affine: keep voxel order
            pass
        vol = np.asarray(img.get_fdata(dtype=np.float32))
        zooms = tuple(float(z) for z in img.header.get_zooms()[:3])
    except ImageReadError:
        raise
    except MemoryError:
        raise ImageReadError(name, "NIfTI volume is too large to read into memory") from None
    except Exception as exc:  # noqa: BLE001 - nibabel raises many types on bad files
        detail = " ".join(str(exc).split())  # one line: nibabel's messages can span several
        if isinstance(exc, OSError) and detail.startswith("Expected") and "bytes" in detail:  # "Expected 221184 bytes, got 110416 bytes ..."
            raise ImageReadError(name, f"truncated NIfTI file: {detail.split(' from ')[0]} of voxel data") from None
        raise ImageReadError(name, f"not a readable NIfTI file ({type(exc).__name__}: {detail})") from None
    if vol.ndim == 2:
        vol = vol[:, :, None]
    if vol.ndim != 3:
        raise ImageReadError(name, f"expected a 3-D (or 4-D) NIfTI volume, got {vol.ndim}-D shape {tuple(vol.shape)}")
    if not np.all(np.isfinite(vol)):
        raise ImageReadError(name, "NIfTI volume contains NaN or infinite values")
    if float(vol.max()) <= float(vol.min()):
        raise ImageReadError(name, f"NIfTI volume is empty: every voxel is {float(vol.min()):g}")
    zooms = (zooms + (1.0, 1.0, 1.0))[:3]
    return vol, zooms, info


def _check_voxel_sizes(zooms: tuple[float, ...], axis: int, name: str) -> None:
    """Refuse in-plane voxel sizes no scanner writes (a broken header): resampling them to square
    pixels would make a slice thousands of times longer than wide."""
    a, b = (z for i, z in enumerate(zooms) if i != axis)
    if not (np.isfinite(a) and np.isfinite(b)):
        raise ImageReadError(name, f"NIfTI header gives non-finite voxel sizes {tuple(round(z, 6) for z in zooms)} mm")
    if a > 0 and b > 0 and max(a, b) / min(a, b) > MAX_VOXEL_RATIO:
        raise ImageReadError(name, f"NIfTI voxel sizes {tuple(round(z, 6) for z in zooms)} mm are implausible for this slice plane: "
                                   f"one in-plane side is {max(a, b) / min(a, b):,.0f}x the other (at most {MAX_VOXEL_RATIO:g}x); "
                                   "check the header's pixdim")


def _window(vol: np.ndarray) -> tuple[float, float]:
    fg = vol[vol > vol.min()]
    sample = fg[:: max(1, fg.size // 2_000_000)]
    lo, hi = np.percentile(sample, (0.5, 99.5)) if sample.size else (vol.min(), vol.max())
    if hi <= lo:
        lo, hi = float(vol.min()), float(vol.max())
    return float(lo), float(hi)


def _slice_image(vol: np.ndarray, axis: int, index: int, zooms: tuple[float, ...], lo: float, hi: float) -> np.ndarray:
    plane = np.take(vol, index, axis=axis)
    in_plane = [z for i, z in enumerate(zooms) if i != axis]
    scaled = np.clip((plane - lo) / (hi - lo), 0.0, 1.0) * 255.0
    img = np.ascontiguousarray(np.rot90(np.round(scaled).astype(np.uint8)))  # anterior/superior up
    # after rot90: rows follow the second in-plane axis, columns the first
    zy, zx = in_plane[1], in_plane[0]
    if zy > 0 and zx > 0 and abs(zy / zx - 1.0) > 0.05:
        h, w = img.shape
        tw, th = w * zx / min(zx, zy), h * zy / min(zx, zy)
        shrink = min(1.0, MAX_SLICE_SIDE / max(tw, th))
        img = cv2.resize(img, (max(2, round(tw * shrink)), max(2, round(th * shrink))), interpolation=cv2.INTER_AREA if shrink < 1 else cv2.INTER_LINEAR)
    return img


@contextmanager
def _nibabel_messages(name: str) -> Iterator[list[tuple[int, str]]]:
    """The Python warnings and log records nibabel emits while reading ``name`` (header fixes,
    odd extensions, overflowing scale factors) become one log line naming the file, instead of
    ``/path/nifti1.py:769: UserWarning`` lines and nameless repeats on stderr. The line is written
    only when the block ends without an error (an error names the file and the problem itself)."""
    records: list[tuple[int, str]] = []
    previous = getattr(_reading, "sink", None)
    _reading.sink = records
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield records
    finally:
        _reading.sink = previous
    records += [(logging.WARNING, str(w.message)) for w in caught]
    if records:
        text = "; ".join(dict.fromkeys(" ".join(m.split()) for _, m in records))
        log.log(max(level for level, _ in records), "%s: NIfTI reader: %s", name, text[:400])


def read_nifti(
    data: bytes,
    name: str,
    axis: str | int = "axial",
    slices: str = "middle",
    max_bytes: int = MAX_DECOMPRESSED_BYTES,
    image_data: bytes | None = None,
) -> NiftiSlices:
    """Decode a NIfTI file's bytes and cut the selected slices.

    ``max_bytes`` caps the decompressed size of a ``.nii.gz`` (gzip bombs). ``image_data``: the
    ``.img`` file's bytes when ``data`` is the ``.hdr`` of an Analyze / NIfTI pair.

    Raises:
        ImageReadError: unreadable, not 3-/4-D (trailing dimensions of 1 aside), NaN/inf voxels,
            empty (constant) volume, a pair's header without its voxels, or a selection outside
            the volume.
    """
    ax = parse_axis(axis)
    with _nibabel_messages(name):
        vol, zooms, info = _load_volume(data, name, max_bytes, image_data)
    n = vol.shape[ax]
    indices = parse_slices(slices, n)
    if not indices:
        raise ImageReadError(name, f"slice selection {slices!r} is outside the volume's {n} slices along axis {axis}")
    clamp = _clamp_note(slices, n, indices, {0: "sagittal", 1: "coronal", 2: "axial"}[ax])
    if clamp:
        info["note"] = "; ".join(x for x in (info.get("note"), clamp) if x)
    _check_voxel_sizes(zooms, ax, name)
    lo, hi = _window(vol)
    images = [_slice_image(vol, ax, i, zooms, lo, hi) for i in indices]
    info.update({"axis": {0: "sagittal", 1: "coronal", 2: "axial"}[ax], "num_slices": int(n), "voxel_size_mm": [round(z, 4) for z in zooms]})
    return NiftiSlices(images=images, indices=indices, info=info)
