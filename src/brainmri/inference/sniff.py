"""Decide a file's format from its first bytes, never from its name.

A file called ``scan.png`` that holds text is refused as unsupported; a DICOM file with no
extension is read as DICOM. Recognised: DICOM (``DICM`` at offset 128), NIfTI-1/-2 (raw or
gzip-compressed: the header's ``sizeof_hdr`` and magic; also the ``.hdr`` of a pair, and an
Analyze 7.5 ``.hdr``: a 348-byte file with that ``sizeof_hdr`` and 1-7 dimensions), PNG, JPEG,
BMP, TIFF, GIF, WebP.

Example:
    >>> sniff_bytes(b"\\x89PNG\\r\\n\\x1a\\n" + bytes(20))
    'png'
    >>> sniff_bytes(b"hello") is None
    True
"""
from __future__ import annotations

import zlib
from pathlib import Path

RASTER_FORMATS = frozenset({"png", "jpeg", "bmp", "tiff", "gif", "webp"})
MEDICAL_FORMATS = frozenset({"dicom", "nifti"})
SUPPORTED_FORMATS = RASTER_FORMATS | MEDICAL_FORMATS
HEADER_BYTES = 1024  # enough for every signature below (NIfTI-2's header is 540 bytes)

_RASTER_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
    (b"II+\x00", "tiff"),  # BigTIFF
    (b"MM\x00+", "tiff"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
)


def _is_nifti_header(head: bytes) -> bool:
    """NIfTI-1 (``sizeof_hdr`` 348, magic ``n+1``/``ni1`` at 344) or NIfTI-2 (540, ``n+2`` at 4),
    in either byte order."""
    if len(head) >= 348:
        for order in ("little", "big"):
            if int.from_bytes(head[:4], order) == 348 and head[344:347] in (b"n+1", b"ni1"):
                return True
    if len(head) >= 12:
        for order in ("little", "big"):
            if int.from_bytes(head[:4], order) == 540 and head[4:7] in (b"n+2", b"ni2"):
                return True
    if len(head) == 348:  # an Analyze 7.5 header (no magic) is a file of exactly its 348 bytes
        for order in ("little", "big"):
            if int.from_bytes(head[:4], order) == 348 and 1 <= int.from_bytes(head[40:42], order) <= 7:
                return True
    return False


def _gunzip_head(data: bytes, n: int = HEADER_BYTES) -> bytes:
    """First ``n`` decompressed bytes of a gzip stream (never decompresses more)."""
    try:
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        return d.decompress(data, n)
    except zlib.error:
        return b""


_DICOM_VRS = frozenset(b"AE AS AT CS DA DS DT FL FD IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UI UL UN UR US UT UV".split())


def is_raw_dicom(head: bytes) -> bool:
    """A DICOM data set written without the 128-byte preamble and ``DICM`` (old ACR-NEMA-style
    exports): it starts with a little-endian element of group 0x0002 or 0x0008 (file meta or
    identifying tags), explicit (a known VR) or implicit (a length that fits the file); the
    ``DICM`` mark may lead it without the preamble."""
    if head[:4] == b"DICM":
        head = head[4:]
    if len(head) < 12 or head[0:2] not in (b"\x02\x00", b"\x08\x00") or head[3] != 0:
        return False
    if head[4:6] in _DICOM_VRS:
        return True
    length = int.from_bytes(head[4:8], "little")
    return 0 < length <= 1024 and head[8:8 + min(length, 8)].isascii()


def sniff_bytes(head: bytes) -> str | None:
    """Format of a file from its first bytes (``HEADER_BYTES`` suffice, more is fine).

    Returns:
        ``dicom``, ``nifti``, ``png``, ``jpeg``, ``bmp``, ``tiff``, ``gif``, ``webp``, or ``None``
        when the content is none of these.
    """
    if len(head) >= 132 and head[128:132] == b"DICM":
        return "dicom"
    if is_raw_dicom(head):
        return "dicom"
    for sig, fmt in _RASTER_SIGNATURES:
        if head.startswith(sig):
            return fmt
    if head[:2] == b"BM" and len(head) >= 26 and int.from_bytes(head[14:18], "little") in (12, 16, 40, 52, 56, 64, 108, 124):
        return "bmp"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:2] == b"\x1f\x8b":
        return "nifti" if _is_nifti_header(_gunzip_head(head)) else None
    if _is_nifti_header(head):
        return "nifti"
    return None


def sniff_file(path: str | Path) -> str | None:
    """Format of the file at ``path`` from its content (see :func:`sniff_bytes`); ``None`` when
    unsupported or unreadable."""
    try:
        with open(path, "rb") as f:
            head = f.read(HEADER_BYTES)
    except OSError:
        return None
    if head[:2] == b"\x1f\x8b":  # gzip: the NIfTI header may need more compressed bytes
        try:
            with open(path, "rb") as f:
                head = f.read(64 * 1024)
        except OSError:
            return None
    return sniff_bytes(head)
