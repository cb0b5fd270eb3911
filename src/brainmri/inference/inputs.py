"""Turn anything a user may give (a path, uploaded bytes, a numpy array, a PIL image) into
grayscale ``uint8`` images ready for ``prepare_image``.

The format is sniffed from the content (``brainmri.inference.sniff``): raster images decode
through ``brainmri.data.io``; DICOM and NIfTI through their readers. A NIfTI volume or a
multi-frame DICOM gives several images (slices / frames) that are predicted one by one and
summarised as a volume.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from brainmri.data.io import (
    DEFAULT_MAX_PIXELS,
    as_gray_uint8,
    check_array_image,
    check_file,
    decode_image_bytes,
    to_uint8_levels_or_refuse,
)
from brainmri.errors import ImageReadError
from brainmri.inference.ood import colorfulness, colorfulness_of_source
from brainmri.inference.sniff import RASTER_FORMATS, sniff_bytes

MAX_FILE_BYTES = 2 * 1024**3
MAX_VOLUME_BYTES = 2 * 1024**3  # decompressed NIfTI


@dataclass
class DecodedInput:
    """One user input, decoded.

    Attributes:
        name: the path or label shown in results and errors.
        images: (H, W) ``uint8`` grayscale images (one, or one per slice / frame).
        indices: slice or frame numbers for a volume; ``None`` for a single 2-D image.
        colorfulness: colour statistic of the original (colour) input, for the OOD guard.
        info: technical, non-identifying facts (format, size, axis, notes).
    """

    name: str
    images: list[np.ndarray]
    indices: list[int] | None = None
    colorfulness: float | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def is_volume(self) -> bool:
        return self.indices is not None


def decode_bytes(
    data: bytes,
    name: str,
    axis: str | int = "axial",
    slices: str = "middle",
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_volume_bytes: int = MAX_VOLUME_BYTES,
    image_data: bytes | None = None,
) -> DecodedInput:
    """Decode a file's bytes, whatever its name says.

    ``max_pixels`` bounds 2-D images and DICOM (all frames); ``max_volume_bytes`` bounds a
    decompressed NIfTI volume. ``image_data``: the ``.img`` file's bytes when ``data`` is the
    ``.hdr`` of an Analyze / NIfTI pair (:func:`decode_path` finds it).

    Raises:
        ImageReadError: empty, unsupported content, or unreadable for its format.
    """
    if not data:
        raise ImageReadError(name, "file is empty (0 bytes)")
    fmt = sniff_bytes(data[:64 * 1024])
    if fmt is None:
        raise ImageReadError(name, "unsupported content: not a PNG/JPEG/BMP/TIFF/GIF/WebP image, DICOM or NIfTI file")
    if fmt == "dicom":
        from brainmri.inference.dicom import read_dicom

        dcm = read_dicom(data, name, max_pixels=max_pixels)
        indices = list(range(len(dcm.frames))) if len(dcm.frames) > 1 else None
        return DecodedInput(name, dcm.frames, indices, dcm.colorfulness, dcm.info)
    if fmt == "nifti":
        from brainmri.inference.nifti import read_nifti

        vol = read_nifti(data, name, axis=axis, slices=slices, max_bytes=max_volume_bytes, image_data=image_data)
        return DecodedInput(name, vol.images, vol.indices, None, vol.info)
    assert fmt in RASTER_FORMATS
    gray = decode_image_bytes(data, name=name, max_pixels=max_pixels)
    info = {"format": fmt, "height": int(gray.shape[0]), "width": int(gray.shape[1])}
    frames = _frame_count(data) if fmt in ("tiff", "gif", "webp", "png") else 1
    if frames > 1:  # as a 4-D NIfTI: say which one was read
        info["note"] = f"{frames} {'pages' if fmt == 'tiff' else 'frames'}: the first one is used"
    return DecodedInput(name, [gray], None, colorfulness_of_source(data), info)


def _frame_count(data: bytes) -> int:
    """Pages of a TIFF, frames of an animated GIF / WebP / PNG (1 when unknown)."""
    from io import BytesIO

    from PIL import Image

    try:
        with Image.open(BytesIO(data)) as img:
            return int(getattr(img, "n_frames", 1))
    except Exception:  # noqa: BLE001 - the first frame decoded; a count is only a note
        return 1


def _read_file(p: Path, name: str) -> bytes:
    try:
        size = p.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ImageReadError(name, f"file is {size / 1024**2:.0f} MiB, over the {MAX_FILE_BYTES // 1024**2} MiB limit")
        return p.read_bytes()
    except OSError as exc:
        raise ImageReadError(name, f"cannot be read ({exc.strerror})") from None


def decode_path(path: str | Path, **kwargs: Any) -> DecodedInput:
    """Read and decode a file (see :func:`decode_bytes`). An Analyze / NIfTI pair is read from
    either of its files (``x.hdr`` or ``x.img``) when the other lies beside it."""
    from brainmri.inference.nifti import PAIR_SUFFIXES, pair_partner

    p = Path(path)
    check_file(p, folder="is a folder, not a file")
    data = _read_file(p, str(p))
    partner = pair_partner(p)
    voxel_file = p.name.lower().endswith(tuple(img for _, img in PAIR_SUFFIXES))
    if voxel_file and sniff_bytes(data[:64 * 1024]) is None:  # raw voxels: the header beside it says what they are
        if partner is None:
            raise ImageReadError(str(p), "unsupported content; if it is the voxel file (.img) of an Analyze / NIfTI pair, its header "
                                         "(.hdr, same name) must lie beside it; or give a single-file .nii / .nii.gz")
        return decode_bytes(_read_file(partner, f"{p} (its header {partner.name})"), str(p), image_data=data, **kwargs)
    if partner is not None and not voxel_file and sniff_bytes(data[:64 * 1024]) == "nifti":
        return decode_bytes(data, str(p), image_data=_read_file(partner, f"{p} (its voxel file {partner.name})"), **kwargs)
    return decode_bytes(data, str(p), **kwargs)


def decode_item(item: Any, name: str | None = None, **kwargs: Any) -> DecodedInput:
    """Decode a path, bytes, numpy array ((H, W), (H, W, C) or channels-first (C, H, W)), torch
    tensor or PIL image."""
    if isinstance(item, (str, Path)):
        decoded = decode_path(item, **kwargs)  # errors name the file itself
        if name is not None and name != str(item):  # the caller's name for it (a record id...) labels the result
            decoded.name = name
        return decoded
    if isinstance(item, (bytes, bytearray, memoryview)):
        return decode_bytes(bytes(item), name or "<bytes>", **kwargs)
    if isinstance(item, Image.Image):
        label = name or "<PIL image>"
        gray = as_gray_uint8(item, name=label)  # first: a closed image, a bad mode or size is refused by name
        colour = colorfulness(np.asarray(item.convert("RGB"))) if item.mode not in ("L", "I", "F", "1") and not item.mode.startswith("I;") else None
        return DecodedInput(label, [gray], None, colour, {"format": "pil", "height": gray.shape[0], "width": gray.shape[1]})
    if is_tensor(item):
        item = _tensor_to_numpy(item, name or "<tensor>")
        name = name or "<tensor>"
    if isinstance(item, np.ndarray) or hasattr(item, "__array__"):
        label = name or "<array>"
        try:
            arr = np.asarray(item)
        except Exception as exc:  # noqa: BLE001 - an object whose __array__ fails
            raise ImageReadError(label, f"cannot be read as an array ({type(exc).__name__}: {exc})") from None
        arr = channels_last(arr)
        check_array_image(arr, label)
        colour = None
        if arr.ndim == 3 and arr.shape[2] in (3, 4):  # any dtype: levels once, for the colour check and the gray image alike
            arr = to_uint8_levels_or_refuse(arr[..., :3], label)
            colour = colorfulness(arr)
        gray = as_gray_uint8(arr, name=label)
        return DecodedInput(label, [gray], None, colour, {"format": "array", "height": gray.shape[0], "width": gray.shape[1]})
    kind = type(item).__name__
    raise ImageReadError(name or f"<{kind}>", f"cannot predict on {'an' if kind[:1].lower() in 'aeiou' else 'a'} {kind}; "
                                              "give a path, bytes, a numpy array, a torch tensor or a PIL image")


def channels_last(arr: Any) -> Any:
    """(1, H, W) / (C, H, W) with C in 1, 3, 4 (and a last side that is no channel count) as
    (H, W, C): channels-first arrays and tensors, as torchvision and MONAI give images."""
    if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[-1] not in (1, 3, 4):
        return arr.permute(1, 2, 0) if is_tensor(arr) else np.moveaxis(arr, 0, -1)
    return arr


def is_tensor(item: Any) -> bool:
    """A torch tensor, told without importing torch."""
    return type(item).__module__.startswith("torch") and hasattr(item, "detach")


def _tensor_to_numpy(t: Any, name: str) -> np.ndarray:
    """A torch tensor (any device, dtype, requires_grad) as a numpy array, channels last
    (:func:`channels_last`)."""
    import torch

    t = t.detach().cpu()
    if t.dtype in (torch.bfloat16, torch.float16):
        t = t.float()
    if t.is_complex():
        raise ImageReadError(name, f"tensor of dtype {t.dtype} is not an image")
    return channels_last(t).numpy()
