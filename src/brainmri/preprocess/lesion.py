"""Synthetic lesions pasted into healthy training scans: a tumor-presence lever against
source shortcuts.

In the four-class Kaggle set every ``notumor`` image comes from one source and most tumors from
another, so a network can learn *which source* instead of *is there a mass*. Pasting a synthetic
mass into a healthy scan — and training it as "some tumor, type unknown" — shows the network
tumors in the healthy source's own look (sequence, scanner, JPEG, framing), so the source no
longer predicts the label; only the lesion does.

A lesion is an irregular blob inside the brain: a solid mass brighter or darker than the tissue
around it, or a ring (enhancing rim, necrotic core), optionally with a surrounding edema halo and
mass effect (tissue pushed outward). All sizes are fractions of the image, all intensities
relative to the local brain intensity, so the same code serves T1-, T2- and FLAIR-like images.
Operates on prepared (cropped, resized) uint8 images before the other augmentations, which then
change its contrast together with the rest of the scan.
"""
from __future__ import annotations

import math
import random

import cv2
import numpy as np

#: training target for a scan known to hold *some* tumor whose type is unknown (synthetic lesions,
#: binary yes/no labels): its loss is -log P(not notumor), see ``brainmri.training.module``.
PRESENCE = -1


def brain_mask(img: np.ndarray, level: float = 0.08) -> np.ndarray:
    """Boolean mask of the largest bright component with holes filled (the head in a prepared
    slice)."""
    fg = (img.astype(np.float32) > level * max(1.0, float(img.max()))).astype(np.uint8)
    n, lab, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
    if n <= 1:
        return np.zeros(img.shape, dtype=bool)
    k = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    comp = (lab == k).astype(np.uint8)
    contours, _ = cv2.findContours(comp, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    filled = np.zeros_like(comp)
    cv2.drawContours(filled, contours, -1, 1, thickness=cv2.FILLED)
    return filled.astype(bool)


def smooth_noise(rng: random.Random, shape: tuple[int, int], scale: int) -> np.ndarray:
    """Smooth random field in [-1, 1]: coarse Gaussian noise upsampled bicubically."""
    h, w = shape
    coarse = np.random.default_rng(rng.getrandbits(32)).standard_normal((max(2, h // scale), max(2, w // scale))).astype(np.float32)
    field = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    return np.clip(field / 2.0, -1.0, 1.0)


def synthesize_lesion(
    img: np.ndarray, rng: random.Random | None = None, margin: float = 0.0, return_mask: bool = False
) -> np.ndarray | tuple[np.ndarray, np.ndarray] | None:
    """Return a copy of the uint8 slice ``img`` (H, W) with one synthetic lesion inside the brain,
    or ``None`` when no brain large enough for one is found (blank or tiny foreground).

    ``margin`` keeps the lesion centre at least that fraction of the head's size (square root of
    its area) inside the head outline, away from scalp and skull (0.1 is about their thickness).
    ``return_mask`` also returns the lesion body (bool (H, W): inside its outline, edema halo and
    mass effect excluded), e.g. to check where a heat map points; the image is the same."""
    rng = rng or random.Random()
    h, w = img.shape
    mask = brain_mask(img)
    if mask.sum() < 0.08 * h * w:
        return None
    size = math.sqrt(mask.sum())  # brain "diameter" scale
    r = rng.uniform(0.07, 0.22) * size
    inner = cv2.erode(mask.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3)), iterations=max(1, int(r * 0.6), int(margin * size)))
    ys, xs = np.nonzero(inner)
    if len(ys) == 0:
        return None
    k = rng.randrange(len(ys))
    cy, cx = float(ys[k]), float(xs[k])

    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    dy, dx = yy - cy, xx - cx
    theta = np.arctan2(dy, dx)
    wobble = np.ones_like(theta)
    for harmonic in range(2, 6):  # irregular, lobulated outline
        wobble += rng.uniform(0, 0.25 / harmonic * 2) * np.cos(harmonic * theta + rng.uniform(0, 2 * math.pi))
    aspect = rng.uniform(0.7, 1.3)
    rot = rng.uniform(0, math.pi)
    u = (dx * math.cos(rot) + dy * math.sin(rot)) * aspect
    v = (-dx * math.sin(rot) + dy * math.cos(rot)) / aspect
    d = np.sqrt(u * u + v * v) / (r * np.clip(wobble, 0.5, None))  # 1 on the outline

    original = img.astype(np.float32) / 255.0
    src = original
    if rng.random() < 0.5:  # mass effect: tissue pushed outward from the centre
        push = rng.uniform(0.2, 0.6) * r
        dist = np.sqrt(dx * dx + dy * dy) + 1e-3
        shift = push * np.exp(-((dist / (2.5 * r)) ** 2))
        map_x = (xx - dx / dist * shift).astype(np.float32)
        map_y = (yy - dy / dist * shift).astype(np.float32)
        src = cv2.remap(src, map_x, map_y, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)

    brain_vals = src[mask]
    tissue = float(np.median(brain_vals))
    lo, hi = float(np.percentile(brain_vals, 5)), float(np.percentile(brain_vals, 99))
    bright = rng.random() < 0.6
    target = rng.uniform(max(tissue + 0.2, hi - 0.1), 1.0) if bright else rng.uniform(0.02, max(0.03, min(lo + 0.1, tissue - 0.2)))
    texture = smooth_noise(rng, (h, w), max(2, int(r / 3))) * rng.uniform(0.03, 0.15)
    lesion = np.clip(target + texture, 0, 1)

    edge = rng.uniform(0.08, 0.3)  # soft (infiltrative) or sharp (well-circumscribed) margin
    core = np.clip((1.0 - d) / edge + 0.5, 0, 1)
    out = src * (1 - core) + lesion * core
    if rng.random() < 0.35:  # ring: enhancing rim with a necrotic / cystic centre
        rim_w = rng.uniform(0.15, 0.35)
        centre = np.clip((1.0 - rim_w - d) / 0.08 + 0.5, 0, 1)
        inner_val = rng.uniform(0.02, 0.35) if bright else rng.uniform(0.6, 1.0)
        out = out * (1 - centre) + (inner_val + texture) * centre
    if rng.random() < 0.5:  # peritumoral edema: a fainter halo beyond the outline
        reach = rng.uniform(1.4, 2.2)
        halo = np.clip((reach - d) / (reach - 1.0), 0, 1) * (1 - core)
        halo *= (0.6 + 0.4 * smooth_noise(rng, (h, w), max(2, int(r / 2))))
        sign = 1.0 if rng.random() < 0.7 else -1.0
        out = out + sign * rng.uniform(0.1, 0.3) * np.clip(halo, 0, 1)
    out = np.where(mask, np.clip(out, 0, 1), original)  # the head outline and background never move
    out = (out * 255.0).round().astype(np.uint8)
    return (out, (core >= 0.5) & mask) if return_mask else out
