"""Out-of-distribution guard: refuse to put a tumor label on something that is not a brain MRI.

Two tests, either one flags an input:

1. **Input statistics** of the decoded image, before any crop (``image_stats``): a colour photo
   (colourful pixels; MRI is gray), a blank image (near-constant), noise (high-frequency energy
   close to that of white noise), a smooth picture with no fine structure (a gradient or a blurred
   blob: an MRI slice has edges and texture at any resolution), a document (mostly near-white),
   and a foreground that is not head-shaped (too small, too elongated, e.g. a chest radiograph's body).
2. **Energy score** of the model's logits, ``E = -T * logsumexp(logits / T)`` (Liu et al. 2020):
   inputs unlike the training data get a higher energy. The threshold is the 99th percentile of
   validation energies (``fit_ood``), stored in ``CheckpointMeta.ood``.

``fit_ood`` returns plain JSON; ``check_ood`` applies it. ``make_non_mri_images`` draws a test set
of non-MRI inputs (photos, chest-X-ray-like, blank, noise, documents).
"""
from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

STATS_SIDE = 256  # statistics are computed on the image shrunk to at most this side
DETAIL_SIDE = 256  # ``detail`` is computed on the image resized (down or up) to this side

# Limits (inclusive pass range) of each statistic for an input to count as a brain MRI slice.
# Chosen on the real four-class Testing split (0 of 1,311 rejected, see bench/ood_bench.py)
# and widened per checkpoint by ``fit_ood`` from its validation images.
DEFAULT_INPUT_LIMITS: dict[str, float] = {
    "max_colorfulness": 0.08,  # fraction of pixels whose RGB channels differ by > 40 levels
    "min_std": 5.0,  # gray-level standard deviation (blank images)
    "max_white_fraction": 0.30,  # fraction of pixels >= 225 (documents, pages)
    "max_hf_ratio": 0.55,  # mean |neighbour difference| / std (white noise ~1.1)
    # the same ratio with the image resized to DETAIL_SIDE (so the same at any resolution): gradients
    # and blobs 0.007-0.018; real scans >= 0.038 (all 7,023 four-class, 253 yes/no, 1,500 Alzheimer
    # images), >= 0.029 shrunk to 64 px, synthetic phantoms >= 0.028 (measured by hand, 2026-12-01)
    "min_detail": 0.022,
    "min_foreground": 0.02,  # largest bright region's area / image area
    "max_aspect": 2.2,  # long / short side of that region's bounding box
    "max_body_run": 0.15,  # bright fraction of BOTH top and bottom rows, when elongated (below)
}
BODY_MIN_ASPECT = 1.5  # max_body_run applies only to regions at least this elongated
# Limits ``fit_ood`` may widen from validation images: (default, widest allowed). The geometric
# ones (foreground, aspect, body run) are left alone: callers may pass brain-cropped images,
# whose geometry says nothing about uncropped inputs. The bounds keep the guard meaningful.
WIDENABLE_LIMITS: dict[str, tuple[float, float]] = {
    "max_colorfulness": (DEFAULT_INPUT_LIMITS["max_colorfulness"], 0.25),
    "min_std": (DEFAULT_INPUT_LIMITS["min_std"], 2.0),
    "max_white_fraction": (DEFAULT_INPUT_LIMITS["max_white_fraction"], 0.6),
    "max_hf_ratio": (DEFAULT_INPUT_LIMITS["max_hf_ratio"], 0.8),
    "min_detail": (DEFAULT_INPUT_LIMITS["min_detail"], 0.012),
}
REASONS = {
    "max_colorfulness": "colour image (brain MRI is grayscale)",
    "min_std": "blank or near-constant image",
    "max_white_fraction": "mostly white image (document or page, not an MRI with a dark background)",
    "max_hf_ratio": "image looks like noise (high-frequency energy)",
    "min_detail": "image has no fine structure (a smooth gradient or blur, not an MRI slice)",
    "min_foreground": "no head-sized bright region (too dark or empty)",
    "max_aspect": "bright region is not head-shaped (elongated object)",
    "max_body_run": "elongated bright region runs off the top and bottom of the frame (a body, not a head)",
}
STAT_OF_LIMIT = {k: k.split("_", 1)[1] for k in DEFAULT_INPUT_LIMITS}


# ----------------------------------------------------------------------------------------------
# statistics


def colorfulness(rgb: np.ndarray, min_spread: int = 40) -> float:
    """Fraction of pixels whose channels differ by more than ``min_spread`` gray levels.

    Gray images (also gray stored as RGB, with JPEG chroma noise) score ~0.
    """
    a = np.asarray(rgb)
    if a.ndim != 3 or a.shape[2] < 3:
        return 0.0
    a = _shrink(a[..., :3])
    spread = a.max(axis=2).astype(np.int16) - a.min(axis=2).astype(np.int16)
    return float(np.mean(spread > min_spread))


def colorfulness_of_source(source: str | Path | bytes) -> float | None:
    """Colourfulness of a raster image file or its bytes, read through Pillow at reduced size;
    ``None`` when the file is gray, palette-free single channel, or unreadable (the decode path
    reports errors)."""
    from PIL import Image

    try:
        fp = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else open(source, "rb")
        with fp, Image.open(fp) as img:
            if img.mode in ("L", "LA", "I", "F", "1") or img.mode.startswith("I;"):
                return None
            img.draft("RGB", (STATS_SIDE, STATS_SIDE))
            img.thumbnail((STATS_SIDE, STATS_SIDE))
            rgb = img.convert("RGBA")
            background = Image.new("RGBA", rgb.size, (0, 0, 0, 255))
            return colorfulness(np.asarray(Image.alpha_composite(background, rgb).convert("RGB")))
    except Exception:  # noqa: BLE001 - unreadable: the gray decode raises the real error
        return None


def _shrink(a: np.ndarray) -> np.ndarray:
    h, w = a.shape[:2]
    scale = STATS_SIDE / max(h, w)
    if scale >= 1.0:
        return a
    return cv2.resize(a, (max(2, round(w * scale)), max(2, round(h * scale))), interpolation=cv2.INTER_AREA)


def _to_gray(image: np.ndarray) -> np.ndarray:
    a = np.asarray(image)
    if a.ndim == 3:
        a = a[..., :3].mean(axis=2)
    if a.dtype != np.uint8:
        a = np.clip(a, 0, 255).astype(np.uint8)
    return a


def _foreground(gray: np.ndarray) -> tuple[float, float, float]:
    """(area fraction, bounding-box aspect, top/bottom edge run) of the bright foreground: the
    brain-crop mask of ``brainmri.preprocess.crop`` (default parameters) on the image scaled so
    that its 99th percentile is white."""
    p99 = float(np.percentile(gray, 99))
    if 0 < p99 < 255:  # contrast-normalise so dark scans (e.g. T1 post-contrast) keep their head
        gray = np.clip(gray.astype(np.float32) * (255.0 / p99), 0, 255).astype(np.uint8)
    g = cv2.GaussianBlur(gray, (5, 5), 0)
    _, mask = cv2.threshold(g, 45, 255, cv2.THRESH_BINARY)
    mask = cv2.dilate(cv2.erode(mask, None, iterations=2), None, iterations=2)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return 0.0, 1.0, 0.0
    c = max(contours, key=cv2.contourArea)
    _, _, w, h = cv2.boundingRect(c)
    area = float(cv2.contourArea(c)) / float(gray.size)
    run = min(float(np.mean(mask[0] > 0)), float(np.mean(mask[-1] > 0)))
    return area, max(w, h) / max(1, min(w, h)), run


def _neighbour_ratio(gray: np.ndarray) -> float:
    """Mean absolute neighbour difference over the standard deviation (0 for a constant image)."""
    std = float(gray.std())
    if std <= 1e-6:
        return 0.0
    dx = np.abs(np.diff(gray, axis=1)).mean() if gray.shape[1] > 1 else 0.0
    dy = np.abs(np.diff(gray, axis=0)).mean() if gray.shape[0] > 1 else 0.0
    return float((dx + dy) / 2.0 / std)


def detail(gray: np.ndarray) -> float:
    """:func:`_neighbour_ratio` of ``gray`` resized so that its long side is ``DETAIL_SIDE``
    (area-averaged down, cubic up): how much fine structure it has, whatever its resolution."""
    h, w = gray.shape[:2]
    scale = DETAIL_SIDE / max(h, w)
    size = (max(2, round(w * scale)), max(2, round(h * scale)))
    resized = cv2.resize(gray, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    return _neighbour_ratio(resized.astype(np.float32))


def image_stats(image: np.ndarray, colorfulness_value: float | None = None) -> dict[str, float]:
    """Statistics of an original decoded image (gray (H, W) or RGB (H, W, 3)), before cropping.

    Returns:
        ``colorfulness``, ``std``, ``white_fraction``, ``hf_ratio``, ``detail``, ``foreground``,
        ``aspect``, ``body_run``.
    """
    a = np.asarray(image)
    colour = colorfulness(a) if a.ndim == 3 else 0.0
    if colorfulness_value is not None:
        colour = max(colour, float(colorfulness_value))
    gray8 = _to_gray(a)
    gray = _shrink(gray8).astype(np.float32)
    std = float(gray.std())
    hf = _neighbour_ratio(gray)
    fg, aspect, run = _foreground(gray.astype(np.uint8))
    return {
        "colorfulness": round(colour, 5),
        "std": round(std, 4),
        "white_fraction": round(float(np.mean(gray >= 225)), 5),
        "hf_ratio": round(hf, 5),
        "detail": round(detail(gray8), 5),
        "foreground": round(fg, 5),
        "aspect": round(float(aspect), 4),
        "body_run": round(run, 4),
    }


def input_reason(stats: dict[str, float], limits: dict[str, float] | None = None) -> str | None:
    """The first violated limit's reason, or ``None`` when the statistics look like an MRI."""
    limits = {**DEFAULT_INPUT_LIMITS, **(limits or {})}
    for key, limit in limits.items():
        stat = STAT_OF_LIMIT.get(key)
        if stat is None or stat not in stats:
            continue
        value = stats[stat]
        if key == "max_body_run" and stats.get("aspect", 0.0) < BODY_MIN_ASPECT:
            continue
        if (key.startswith("max_") and value > limit) or (key.startswith("min_") and value < limit):
            return f"{REASONS[key]} ({stat}={value:.3g}, limit {limit:.3g})"
    return None


# ----------------------------------------------------------------------------------------------
# energy score, fitting and checking


def energy_score(logits: torch.Tensor | np.ndarray, temperature: float = 1.0) -> torch.Tensor:
    """``-T * logsumexp(logits / T)`` per row; higher means less like the training data."""
    t = torch.as_tensor(np.asarray(logits) if not isinstance(logits, torch.Tensor) else logits).float()
    if t.ndim == 1:
        t = t[None]
    return -temperature * torch.logsumexp(t / temperature, dim=1)


def fit_ood(
    val_logits: torch.Tensor,
    val_images: list[np.ndarray] | None = None,
    temperature: float = 1.0,
    percentile: float = 99.0,
    image_quantile: float = 0.995,
) -> dict[str, Any]:
    """Fit the guard on in-distribution validation data.

    Args:
        val_logits: (N, C) logits of the validation images.
        val_images: their decoded images (gray or RGB; original or brain-cropped), optional; when
            given, the intensity limits (``WIDENABLE_LIMITS``) are widened, within bounds, so that
            at most ``1 - image_quantile`` of them break each.
        temperature: calibration temperature used for the energy score.
        percentile: energy threshold = this percentile of validation energies.

    Returns:
        JSON-able dict for ``CheckpointMeta.ood``.
    """
    logits = torch.as_tensor(val_logits).detach().float()
    if logits.ndim != 2 or logits.shape[0] == 0:
        raise ValueError(f"val_logits must be a non-empty (N, C) tensor, got shape {tuple(logits.shape)}")
    energies = energy_score(logits, temperature).numpy()
    limits = dict(DEFAULT_INPUT_LIMITS)
    if val_images:
        stats = [image_stats(img) for img in val_images]
        for key, (default, bound) in WIDENABLE_LIMITS.items():
            values = np.array([s[STAT_OF_LIMIT[key]] for s in stats], dtype=np.float64)
            if key.startswith("max_"):
                limits[key] = float(min(bound, max(default, np.quantile(values, image_quantile) * 1.05)))
            else:
                limits[key] = float(max(bound, min(default, np.quantile(values, 1.0 - image_quantile) * 0.95)))
    return {
        "method": "input-stats+energy",
        "version": 1,
        "temperature": float(temperature),
        "energy_percentile": float(percentile),
        "energy_threshold": float(np.percentile(energies, percentile)),
        "input_limits": limits,
        "n_val": int(logits.shape[0]),
        "n_val_images": len(val_images or []),
    }


MIN_SIDE_FRACTION = 0.4  # an image's short side under this share of the model's input size is too small to read


def resolution_reason(raw_image: np.ndarray, image_size: int | None) -> str | None:
    """Why an image is too small for a model that reads ``image_size`` px (its short side under
    :data:`MIN_SIDE_FRACTION` of it: 64 px for 160), or ``None``. Upscaled that far, a lesion is a
    few blurred pixels, and the model still answers confidently (a 16 px glioma slice: meningioma 0.83)."""
    if not image_size:
        return None
    h, w = np.asarray(raw_image).shape[:2]
    if min(h, w) < MIN_SIDE_FRACTION * image_size:
        return (f"image is only {w}x{h} px, too small for a model that reads {image_size} px "
                f"(short side under {MIN_SIDE_FRACTION * image_size:.0f} px)")
    return None


MONTAGE_SIDE = 512  # the montage test runs on the image shrunk to at most this side
MONTAGE_THRESHOLD = 30  # gray level separating a head from the background (under the crop's 45: dark T1 tissue stays one piece)
MONTAGE_SECOND = 0.3  # a second head at least this fraction of the largest one's box makes a montage
MONTAGE_ASPECT = (0.4, 2.5)  # width / height of a box that can be a head (not a bar, a ruler, a strip of text)


def head_boxes(gray: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Boxes ``(x0, y0, x1, y1)`` of the separate heads in an image, largest first: bright regions
    (blur, threshold, frame lines cleared, erode / dilate as the brain crop does), with the boxes of
    a head's pieces (scalp, brain, fragments of dark tissue) merged wherever they overlap, and only
    head-shaped boxes kept. One scan has one; a montage of slices, one per tile."""
    from brainmri.preprocess.crop import clear_frame

    g = _to_gray(np.asarray(gray))
    h, w = g.shape
    if max(h, w) > MONTAGE_SIDE:
        f = MONTAGE_SIDE / max(h, w)
        g = cv2.resize(g, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)
        h, w = g.shape
    g = cv2.GaussianBlur(g, (5, 5), 0)
    _, mask = cv2.threshold(g, MONTAGE_THRESHOLD, 255, cv2.THRESH_BINARY)
    mask = cv2.dilate(cv2.erode(clear_frame(mask), None, iterations=2), None, iterations=2)
    n, _, st, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    boxes = [[int(st[i, 0]), int(st[i, 1]), int(st[i, 0] + st[i, 2]), int(st[i, 1] + st[i, 3])]
             for i in range(1, n) if st[i, cv2.CC_STAT_AREA] >= 0.001 * h * w]
    merged = True
    while merged:  # union of overlapping boxes until none overlap
        merged, out = False, []
        for b in boxes:
            for o in out:
                if b[0] < o[2] and o[0] < b[2] and b[1] < o[3] and o[1] < b[3]:
                    o[:] = [min(o[0], b[0]), min(o[1], b[1]), max(o[2], b[2]), max(o[3], b[3])]
                    merged = True
                    break
            else:
                out.append(b)
        boxes = out
    lo, hi = MONTAGE_ASPECT
    heads = [tuple(b) for b in boxes if lo <= (b[2] - b[0]) / max(1, b[3] - b[1]) <= hi]
    return sorted(heads, key=lambda b: -(b[2] - b[0]) * (b[3] - b[1]))


def montage_reason(raw_image: np.ndarray) -> str | None:
    """Why a 2-D image looks like a montage of several scans (a figure, a screenshot of a viewer's
    grid), or ``None``. The brain crop would keep the largest tile only and the answer would be about
    that one slice. Measured (``python scripts/montage_check.py``): none of the 13,676 images of the
    four-class, yes/no and Alzheimer sets is flagged; 238 of 240 grids of 2 to 16 of their scans are. Not for a volume's slices (the
    outermost slices of a volume hold separate pieces of anatomy)."""
    heads = head_boxes(raw_image)
    if len(heads) < 2:
        return None
    area = [(b[2] - b[0]) * (b[3] - b[1]) for b in heads]
    count = sum(a >= MONTAGE_SECOND * area[0] for a in area)
    if count < 2:
        return None
    return f"looks like a montage of {count} scans (separate heads side by side); give one slice per image"


# DICOM Modality codes (PS3.3 C.7.3.1.1.1) of images that are not MR. OT (other), a missing or an
# unknown code say nothing and are left to the image tests.
NON_MR_MODALITIES = frozenset({
    "CT", "CR", "DX", "US", "MG", "PT", "NM", "XA", "RF", "IO", "PX", "RG", "BMD", "ES", "XC", "GM", "SM",
    "OP", "OPT", "OCT", "IVUS", "IVOCT", "ECG", "EPS", "HD", "DG", "TG", "LS", "BI", "SR", "SEG", "RTIMAGE",
    "RTDOSE", "RTSTRUCT", "RTPLAN", "KO", "PR", "DOC",
})


def modality_reason(modality: str | None) -> str | None:
    """Why an image whose DICOM Modality tag names another kind of scan (CT, a radiograph,
    ultrasound, PET...) is not classified as a brain MRI, or ``None`` (MR, OT, missing, unknown)."""
    code = str(modality or "").strip().upper()
    if code in NON_MR_MODALITIES:
        return f"DICOM Modality {code}, not MR (the model reads brain MRI)"
    return None


def check_ood(
    raw_image: np.ndarray,
    logits: torch.Tensor | np.ndarray | None,
    ood_cfg: dict[str, Any] | None,
    colorfulness_value: float | None = None,
    image_size: int | None = None,
    modality: str | None = None,
    montage: bool = True,
) -> tuple[bool, str | None]:
    """Decide whether one input is out of distribution.

    Args:
        raw_image: the original decoded image (gray or RGB), before crop/resize.
        logits: the model's logits for it (1-D or (1, C)); ``None`` skips the energy test.
        ood_cfg: ``fit_ood`` output (``CheckpointMeta.ood``); ``None`` uses default input limits
            and no energy test.
        colorfulness_value: colourfulness measured on the colour file when ``raw_image`` is the
            gray decode.
        image_size: the model's input size: an image far smaller is refused
            (:func:`resolution_reason`).
        modality: a DICOM file's Modality tag: one that names another kind of scan is refused
            (:func:`modality_reason`).
        montage: test for a montage of several scans (:func:`montage_reason`); false for the
            slices of a volume.

    Returns:
        ``(is_ood, reason)``; the reason names the failing statistic and its limit.
    """
    cfg = ood_cfg or {}
    if cfg.get("enabled", True) is False:
        return False, None
    reason = (modality_reason(modality) or resolution_reason(raw_image, image_size)
              or input_reason(image_stats(raw_image, colorfulness_value), cfg.get("input_limits"))
              or (montage_reason(raw_image) if montage else None))
    if reason:
        return True, reason
    threshold = cfg.get("energy_threshold")
    if logits is not None and threshold is not None and math.isfinite(float(threshold)):
        e = float(energy_score(logits, float(cfg.get("temperature", 1.0)))[0])
        if e > float(threshold):
            return True, f"model energy score {e:.3g} above the in-distribution threshold {float(threshold):.3g} (unlike the training images)"
    return False, None


# ----------------------------------------------------------------------------------------------
# a test set of things that are not brain MRI

NON_MRI_KINDS = ("photo", "chest_xray", "blank", "noise", "document", "gradient")


def _photo(size: int, rng: np.random.Generator) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size] / max(1, size - 1)
    c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    img = (c0 * (1 - yy[..., None]) + c1 * xx[..., None] * 0.8).clip(0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(3, 8))):
        colour = tuple(int(v) for v in rng.permutation([rng.integers(180, 256), rng.integers(0, 80), rng.integers(0, 256)]))
        p = rng.integers(0, size, 2)
        if rng.random() < 0.5:
            cv2.circle(img, (int(p[0]), int(p[1])), int(rng.integers(size // 12, size // 4)), colour, -1)
        else:
            q = p + rng.integers(size // 8, size // 2, 2)
            cv2.rectangle(img, (int(p[0]), int(p[1])), (int(q[0]), int(q[1])), colour, -1)
    return img


def _chest_xray(size: int, rng: np.random.Generator) -> np.ndarray:
    img = np.full((size, size), rng.uniform(5, 20), np.float32)
    cx, w = size / 2 + rng.uniform(-0.03, 0.03) * size, rng.uniform(0.24, 0.3) * size
    body = np.zeros((size, size), np.uint8)
    cv2.ellipse(body, (int(cx), int(size * 0.55)), (int(w), int(size * 0.62)), 0, 0, 360, 1, -1)
    img[body > 0] = rng.uniform(150, 190)
    for side in (-1, 1):  # dark lung fields
        lung = np.zeros_like(body)
        cv2.ellipse(lung, (int(cx + side * w * 0.48), int(size * 0.45)), (int(w * 0.36), int(size * 0.28)), 0, 0, 360, 1, -1)
        img[(lung > 0) & (body > 0)] = rng.uniform(70, 95)
    for k in range(9):  # rib-like curved bright stripes
        y = int(size * (0.2 + 0.07 * k))
        for side in (-1, 1):
            cv2.ellipse(img, (int(cx), y), (int(w * 0.85), int(size * 0.05)), 0, 0 if side > 0 else 180, 180 if side > 0 else 360, float(rng.uniform(190, 220)), max(1, size // 80))
    img[:, int(cx - size * 0.03) : int(cx + size * 0.03)][body[:, int(cx - size * 0.03) : int(cx + size * 0.03)] > 0] = 215  # spine
    img = cv2.GaussianBlur(img, (0, 0), max(0.6, size / 200)) + rng.normal(0, 3, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _gradient(size: int, rng: np.random.Generator) -> np.ndarray:
    """A smooth picture: a linear ramp at a random angle, a radial fall-off or a soft blob."""
    yy, xx = np.mgrid[:size, :size] / max(1, size - 1)
    kind = rng.integers(0, 3)
    if kind == 0:
        angle = rng.uniform(0, 2 * np.pi)
        img = xx * np.cos(angle) + yy * np.sin(angle)
    else:
        cx, cy = rng.uniform(0.3, 0.7, 2)
        r2 = (xx - cx) ** 2 + (yy - cy) ** 2
        img = -np.sqrt(r2) if kind == 1 else np.exp(-r2 / rng.uniform(0.02, 0.1))
    img = (img - img.min()) / max(1e-9, float(img.max() - img.min()))
    lo = rng.uniform(0, 100)  # dark to mid-gray (a bright one is caught as a page already)
    return (lo + img * rng.uniform(60, 150)).clip(0, 255).astype(np.uint8)


def _document(size: int, rng: np.random.Generator) -> np.ndarray:
    img = np.full((size, size), rng.uniform(225, 250), np.float32)
    line_h = max(2, size // 40)
    y = int(size * 0.08)
    while y < size * 0.92:
        x = int(size * 0.08)
        end = int(size * rng.uniform(0.6, 0.92))
        while x < end:
            wlen = int(rng.integers(max(2, size // 40), max(3, size // 10)))
            img[y : y + line_h, x : min(x + wlen, end)] = rng.uniform(10, 60)
            x += wlen + max(1, size // 60)
        y += line_h * 2 + int(rng.integers(0, max(1, line_h)))
    return np.clip(img + rng.normal(0, 2, img.shape), 0, 255).astype(np.uint8)


def make_non_mri_images(n: int, size: int = 128, seed: int = 0) -> list[tuple[str, np.ndarray]]:
    """Draw ``n`` images that are not brain MRI, cycling over ``NON_MRI_KINDS``.

    Returns:
        ``(kind, image)`` pairs; photos are RGB ``(size, size, 3)``, the others gray ``(size, size)``,
        all ``uint8``.
    """
    rng = np.random.default_rng(seed)
    out: list[tuple[str, np.ndarray]] = []
    for i in range(n):
        kind = NON_MRI_KINDS[i % len(NON_MRI_KINDS)]
        if kind == "photo":
            img = _photo(size, rng)
        elif kind == "chest_xray":
            img = _chest_xray(size, rng)
        elif kind == "blank":
            img = np.clip(rng.uniform(0, 255) + rng.normal(0, 1.0, (size, size)), 0, 255).astype(np.uint8)
        elif kind == "noise":
            img = rng.integers(0, 256, (size, size), dtype=np.uint8)
        elif kind == "gradient":
            img = _gradient(size, rng)
        else:
            img = _document(size, rng)
        out.append((kind, img))
    return out
