"""Where a heat map points: measures for checking that a model looks at the lesion, not at the
border of the scan (where scanner, framing, skull and burnt-in text carry the source).

* :func:`pointing_hit` — the pointing game (Zhang et al. 2016, "Top-down neural attention by
  excitation backprop"): a hit when the map's maximum lies inside the target mask, or within
  ``tolerance`` pixels of it;
* :func:`mass_fraction` — the share of the map's total that lies inside a mask; divided by the
  mask's share of the image (:func:`area_fraction`) it is 1 for a map no better than uniform;
* :func:`border_band` — the outer rim of the head outline plus everything outside it.

All take one (H, W) map and same-sized bool masks; maps are non-negative (Grad-CAM's are in [0, 1]).
"""
from __future__ import annotations

import math

import cv2
import numpy as np


def _check(heatmap: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    h, m = np.asarray(heatmap, dtype=np.float64), np.asarray(mask, dtype=bool)
    if h.ndim != 2 or h.shape != m.shape:
        raise ValueError(f"heat map {h.shape} and mask {m.shape} must be the same (H, W)")
    return h, m


def grow(mask: np.ndarray, pixels: int) -> np.ndarray:
    """``mask`` dilated by a disc of radius ``pixels`` (the region a tolerant pointing hit counts)."""
    mask = np.asarray(mask, dtype=bool)
    if pixels <= 0:
        return mask
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * pixels + 1, 2 * pixels + 1))
    return cv2.dilate(mask.astype(np.uint8), k).astype(bool)


def pointing_hit(heatmap: np.ndarray, mask: np.ndarray, tolerance: int = 0) -> bool:
    """True when the map's maximum (any of them, if tied) lies in ``mask`` grown by ``tolerance``
    pixels. A flat map (max == min) points nowhere: False."""
    h, m = _check(heatmap, mask)
    if not m.any() or h.max() <= h.min():
        return False
    return bool(grow(m, tolerance)[h >= h.max()].any())


def mass_fraction(heatmap: np.ndarray, mask: np.ndarray) -> float:
    """Share of the map's total inside ``mask`` (NaN for an all-zero map)."""
    h, m = _check(heatmap, mask)
    total = h.clip(min=0).sum()
    return float(h.clip(min=0)[m].sum() / total) if total > 0 else math.nan


def area_fraction(mask: np.ndarray) -> float:
    """Share of the image that ``mask`` covers: the mass fraction of a uniform map, and the
    chance that a random point hits it."""
    return float(np.asarray(mask, dtype=bool).mean())


def border_band(head: np.ndarray, depth: float = 0.1) -> np.ndarray:
    """Everything outside the head outline ``head`` eroded by ``depth`` of the head's size (the
    square root of its area): scalp, skull, background and the image frame. An empty ``head``
    gives the whole image."""
    m = np.asarray(head, dtype=bool)
    return grow(~m, int(round(depth * math.sqrt(m.sum()))))  # = outside the head eroded by that disc
