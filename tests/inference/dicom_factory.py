"""Write small DICOM files from scratch (pydicom Dataset + file meta) for tests."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import MRImageStorage, ExplicitVRLittleEndian, generate_uid

PATIENT = {"PatientName": "Doe^Jane", "PatientID": "PID-778899", "PatientBirthDate": "19700412"}


def make_dicom(
    path: Path,
    pixels: np.ndarray,
    photometric: str = "MONOCHROME2",
    slope: float | None = None,
    intercept: float | None = None,
    window: tuple[float, float] | None = None,
    pixel_data: bool = True,
    compress: str | None = None,
) -> Path:
    """``pixels``: (H, W) or (F, H, W) uint16 (or uint8 / RGB (H, W, 3) uint8)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = MRImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    for k, v in PATIENT.items():
        setattr(ds, k, v)
    ds.Modality = "MR"
    colour = pixels.ndim == 3 and pixels.shape[-1] == 3 and photometric == "RGB"
    frames = pixels.shape[0] if (pixels.ndim == 3 and not colour) else 1
    h, w = (pixels.shape[1:3] if frames > 1 else pixels.shape[:2])
    ds.Rows, ds.Columns = int(h), int(w)
    ds.SamplesPerPixel = 3 if colour else 1
    ds.PhotometricInterpretation = photometric
    if colour:
        ds.PlanarConfiguration = 0
    bits = 8 if pixels.dtype == np.uint8 else 16
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, bits, bits - 1, 0
    if frames > 1:
        ds.NumberOfFrames = frames
    if slope is not None:
        ds.RescaleSlope, ds.RescaleIntercept = slope, intercept or 0
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    if pixel_data:
        ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    if compress:
        ds.compress(compress, np.ascontiguousarray(pixels))
    ds.save_as(path, enforce_file_format=True)
    return path
