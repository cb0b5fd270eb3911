"""Brain crop (seed 004): grayscale -> Gaussian blur -> threshold -> erode/dilate -> largest
contour -> crop at its extreme points with a margin.

Cropping to the head removes borders, padding and canvas size, which otherwise tell a model which
*source* a scan came from rather than what is in it.
"""
from __future__ import annotations

import cv2
import numpy as np


def clear_frame(mask: np.ndarray, depth: float = 0.06, fill: float = 0.6) -> np.ndarray:
    """Zero the lines near the image edges that are mostly foreground: drawn frames and scanner
    borders, which would otherwise be the largest contour. A head touching an edge fills far less
    than ``fill`` of an edge line, so it is kept."""
    out = mask.copy()
    h, w = out.shape
    dh, dw = max(1, int(h * depth)), max(1, int(w * depth))
    fg = out > 0
    for i in list(range(dh)) + list(range(h - dh, h)):
        if fg[i].mean() > fill:
            out[i] = 0
    for j in list(range(dw)) + list(range(w - dw, w)):
        if fg[:, j].mean() > fill:
            out[:, j] = 0
    return out


def brain_bbox(
    gray: np.ndarray,
    blur: int = 5,
    threshold: int = 45,
    erode: int = 2,
    dilate: int = 2,
    margin: float = 0.02,
) -> tuple[int, int, int, int] | None:
    """Bounding box ``(top, bottom, left, right)`` (bottom/right exclusive) of the largest bright
    connected region, widened by ``margin`` (a fraction of the box size) and clipped to the image.

    Returns ``None`` when nothing is above the threshold (blank or very dark images).

    Example:
        >>> img = np.zeros((100, 100), np.uint8); img[20:60, 30:90] = 200
        >>> brain_bbox(img, margin=0.0)
        (20, 60, 30, 90)
    """
    if gray.ndim != 2:
        raise ValueError(f"expected a 2-D grayscale array, got shape {gray.shape}")
    g = gray if gray.dtype == np.uint8 else np.clip(gray, 0, 255).astype(np.uint8)
    if blur and blur > 1:
        k = int(blur) | 1  # odd kernel
        g = cv2.GaussianBlur(g, (k, k), 0)
    _, mask = cv2.threshold(g, int(threshold), 255, cv2.THRESH_BINARY)
    mask = clear_frame(mask)
    if erode:
        mask = cv2.erode(mask, None, iterations=int(erode))
    if dilate:
        mask = cv2.dilate(mask, None, iterations=int(dilate))
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return None
    c = max(contours, key=cv2.contourArea)
    # Extreme points of the contour (leftmost, rightmost, topmost, bottommost), as seed 004.
    left = int(c[:, :, 0].min())
    right = int(c[:, :, 0].max()) + 1
    top = int(c[:, :, 1].min())
    bottom = int(c[:, :, 1].max()) + 1
    h, w = gray.shape
    mh = int(round((bottom - top) * margin))
    mw = int(round((right - left) * margin))
    top, bottom = max(0, top - mh), min(h, bottom + mh)
    left, right = max(0, left - mw), min(w, right + mw)
    if bottom - top < 2 or right - left < 2:
        return None
    return top, bottom, left, right


def crop_brain(gray: np.ndarray, **kwargs) -> np.ndarray:
    """Crop ``gray`` (H, W) to the brain's bounding box (see :func:`brain_bbox` for arguments).

    An image with no foreground is returned unchanged, so the caller always gets an image.
    """
    box = brain_bbox(gray, **kwargs)
    if box is None:
        return gray
    top, bottom, left, right = box
    return gray[top:bottom, left:right]
