"""Simulated skull stripping: a training augmentation against the "skull-stripped means healthy"
shortcut.

Many research sets are skull-stripped (BraTS, most Alzheimer and atlas data); the four-class
Kaggle set is not. A model that only ever sees skull-stripped scans among *healthy* sources (the
Alzheimer slices, the NIfTI T1 volume) can learn that a missing skull means no tumor. Stripping the
scalp and skull off training scans of every class — then cropping and resizing the result the
way a real skull-stripped scan is prepared — shows the network tumors and healthy brains both
ways, so the skull carries no label.

The stripped brain is the head outline (:func:`brainmri.preprocess.lesion.brain_mask`) eroded by
a random depth (4-10% of the head's size, about scalp plus skull) along an irregular boundary.
"""
from __future__ import annotations

import random

import cv2
import numpy as np

from brainmri.config import PreprocessConfig
from brainmri.preprocess.lesion import smooth_noise, brain_mask
from brainmri.preprocess.pipeline import prepare_image


def strip_skull(img: np.ndarray, cfg: PreprocessConfig, rng: random.Random | None = None) -> np.ndarray | None:
    """Return the prepared uint8 slice ``img`` (S, S) with scalp and skull removed, re-cropped
    and resized by ``cfg`` like any scan; ``None`` when no head large enough is found."""
    rng = rng or random.Random()
    h, w = img.shape
    mask = brain_mask(img)
    if mask.sum() < 0.08 * h * w:
        return None
    size = float(np.sqrt(mask.sum()))
    dist = cv2.distanceTransform(np.pad(mask.astype(np.uint8), 1), cv2.DIST_L2, 5)[1:-1, 1:-1]
    depth = rng.uniform(0.04, 0.10) * size * (1.0 + 0.25 * smooth_noise(rng, (h, w), max(4, h // 6)))
    inner = (dist > depth).astype(np.uint8)
    n, lab, stats, _ = cv2.connectedComponentsWithStats(inner, connectivity=8)
    if n <= 1:
        return None
    keep = lab == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    if keep.sum() < 0.05 * h * w:
        return None
    out = np.where(keep, img, 0).astype(np.uint8)
    return prepare_image(out, cfg)
