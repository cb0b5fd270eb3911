"""Deterministic brain-like phantoms for tests, demos and smoke runs.

A phantom is a 2-D grayscale ``uint8`` axial "slice": dark background, a bright skull ring
(ellipse outline), textured brain tissue with dark ventricles, and a class-dependent lesion:

* ``glioma``: a large irregular bright blob in one hemisphere;
* ``meningioma``: a bright round blob touching the inner skull edge;
* ``pituitary``: a small bright blob near the centre-bottom;
* ``notumor`` / ``no`` / ``Non_Demented``-like "normal" names: no lesion;
* ``yes`` / ``tumor``: a glioma- or meningioma-like lesion;
* any other class (or ``class_name=None``): a round blob whose size and position depend on the
  label index, so any number of classes stays learnable.

A small CNN separates the four tumor classes within a few epochs at 64 px. Nothing here is real
data: phantoms are safe to commit, ship and show.

Example:
    >>> rng = np.random.default_rng(0)
    >>> img, mask = make_phantom(0, 64, rng, class_name="glioma", return_mask=True)
    >>> img.shape, img.dtype, bool(mask.any())
    ((64, 64), dtype('uint8'), True)
"""
from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

TUMOR4 = ("glioma", "meningioma", "notumor", "pituitary")
NORMAL_NAMES = frozenset({"notumor", "no", "no_tumor", "normal", "healthy", "non_demented", "nondemented"})
LAYOUTS = ("split", "split3", "flat", "csv", "npz")
FORMATS = {"png": "PNG", "jpg": "JPEG", "jpeg": "JPEG", "bmp": "BMP", "tif": "TIFF", "tiff": "TIFF"}


def _smooth_noise(size: int, rng: np.random.Generator, scale: int, amplitude: float) -> np.ndarray:
    """Low-frequency texture: coarse Gaussian noise upsampled (cubic) to ``size``."""
    coarse = rng.normal(0.0, 1.0, (max(2, size // scale), max(2, size // scale))).astype(np.float32)
    return cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC) * amplitude


def _disc(shape: tuple[int, int], cy: float, cx: float, ry: float, rx: float | None = None) -> np.ndarray:
    """Boolean filled ellipse."""
    rx = ry if rx is None else rx
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return ((yy - cy) / max(ry, 0.5)) ** 2 + ((xx - cx) / max(rx, 0.5)) ** 2 <= 1.0


def _lesion(
    kind: str, label: int, size: int, head: tuple[float, float, float, float], rng: np.random.Generator
) -> np.ndarray:
    """Boolean lesion mask for ``kind`` inside the brain ellipse ``head`` = (cy, cx, ry, rx)."""
    cy, cx, ry, rx = head
    shape = (size, size)
    mask = np.zeros(shape, dtype=bool)
    if kind == "none":
        return mask
    if kind == "glioma":  # large, irregular, one hemisphere
        side = rng.choice([-1.0, 1.0])
        by = cy + rng.uniform(-0.3, 0.3) * ry
        bx = cx + side * rng.uniform(0.35, 0.5) * rx
        r = rng.uniform(0.30, 0.36) * rx
        for _ in range(4):  # overlapping lobes make it irregular
            mask |= _disc(shape, by + rng.uniform(-0.6, 0.6) * r, bx + rng.uniform(-0.6, 0.6) * r,
                          r * rng.uniform(0.6, 1.0), r * rng.uniform(0.6, 1.0))
        return mask
    if kind == "meningioma":  # round, against the inner skull edge, upper half
        angle = rng.uniform(-np.pi * 0.85, -np.pi * 0.15)  # image y grows downwards: top arc
        r = rng.uniform(0.18, 0.22) * rx
        by = cy + (ry - r * 0.9) * np.sin(angle)
        bx = cx + (rx - r * 0.9) * np.cos(angle)
        return _disc(shape, by, bx, r)
    if kind == "pituitary":  # small, centre-bottom (sella)
        r = rng.uniform(0.12, 0.15) * rx
        return _disc(shape, cy + rng.uniform(0.45, 0.55) * ry, cx + rng.uniform(-0.05, 0.05) * rx, r)
    # generic: size and angle follow the label index
    angle = 2.0 * np.pi * ((label * 0.381966) % 1.0)  # golden-ratio spacing of positions
    r = (0.08 + 0.05 * (label % 4)) * rx
    dist = 0.45 if label % 2 else 0.25
    return _disc(shape, cy + dist * ry * np.sin(angle), cx + dist * rx * np.cos(angle), r)


def lesion_kind(label: int, class_name: str | None) -> str:
    """Which lesion a class gets: glioma | meningioma | pituitary | none | generic."""
    name = (class_name or "").strip().lower()
    if name in ("glioma", "meningioma", "pituitary"):
        return name
    if name in NORMAL_NAMES:
        return "none"
    if name in ("yes", "tumor", "tumour"):
        return "tumor"
    return "generic"


def make_phantom(
    label: int,
    size: int,
    rng: np.random.Generator,
    class_name: str | None = None,
    return_mask: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Draw one brain-like phantom slice.

    Args:
        label: class index (decides the lesion when ``class_name`` is not a known name).
        size: side of the square image in pixels (>= 16).
        rng: random generator; the same generator state gives the same image.
        class_name: ``glioma``, ``meningioma``, ``pituitary``, ``notumor``/``no``, ``yes``/``tumor``,
            or anything else (generic label-dependent lesion).
        return_mask: also return the boolean lesion mask (all False without a lesion).

    Returns:
        ``uint8`` array (size, size), or ``(image, mask)`` with ``return_mask``.
    """
    if size < 16:
        raise ValueError(f"phantom size must be >= 16, got {size}")
    shape = (size, size)
    cy = size / 2 + rng.uniform(-0.03, 0.03) * size
    cx = size / 2 + rng.uniform(-0.03, 0.03) * size
    ry, rx = rng.uniform(0.40, 0.44) * size, rng.uniform(0.34, 0.38) * size
    skull = max(1.5, 0.045 * size)

    img = rng.normal(6.0, 3.0, shape).astype(np.float32)  # dark background with noise
    outer = _disc(shape, cy, cx, ry, rx)
    brain = _disc(shape, cy, cx, ry - skull, rx - skull)
    img[outer & ~brain] = 215.0 + rng.uniform(-10, 10)  # skull ring
    tissue = 105.0 + rng.uniform(-10, 10) + _smooth_noise(size, rng, 8, 12.0)
    img[brain] = tissue[brain]
    # dark ventricles: two small ellipses either side of the midline
    for side in (-1.0, 1.0):
        vent = _disc(shape, cy - 0.05 * ry, cx + side * 0.12 * rx, 0.18 * ry, 0.07 * rx)
        img[vent & brain] = 45.0 + rng.uniform(-5, 5)

    kind = lesion_kind(label, class_name)
    if kind == "tumor":
        kind = str(rng.choice(["glioma", "meningioma"]))
    mask = _lesion(kind, int(label), size, (cy, cx, ry - skull, rx - skull), rng) & brain
    if mask.any():
        lesion = 240.0 + rng.uniform(-8, 8) + _smooth_noise(size, rng, 4, 6.0)
        img[mask] = lesion[mask]
        if kind == "glioma":  # ring enhancement: a darker necrotic core inside a bright rim
            core = cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8), iterations=max(1, size // 32)).astype(bool)
            img[core] = 160.0 + rng.uniform(-10, 10)

    img += rng.normal(0.0, 4.0, shape).astype(np.float32)  # acquisition noise
    img = cv2.GaussianBlur(img, (3, 3), 0.6)
    out = np.clip(np.round(img), 0, 255).astype(np.uint8)
    return (out, mask) if return_mask else out


def _save(img: np.ndarray, path: Path) -> None:
    fmt = FORMATS[path.suffix.lstrip(".").lower()]
    kwargs = {"quality": 95} if fmt == "JPEG" else {}
    Image.fromarray(img).save(path, format=fmt, **kwargs)


def _draw(seed: int, split_idx: int, label: int, i: int, size: int, class_name: str) -> np.ndarray:
    rng = np.random.default_rng([seed, split_idx, label, i])  # independent of n_per_class
    return make_phantom(label, size, rng, class_name=class_name)


def make_phantom_dataset(
    root: str | Path,
    layout: str = "split",
    class_names: Sequence[str] = TUMOR4,
    n_per_class: int = 12,
    size: int = 64,
    seed: int = 0,
    test_per_class: int | None = None,
    val_per_class: int | None = None,
    formats: Sequence[str] = ("png",),
    csv_labels: str = "index",
    csv_paths: str = "stem",
) -> Path:
    """Write a phantom dataset in any layout that :func:`brainmri.data.datasets.load_dataset` reads.

    Args:
        root: output folder (created).
        layout: ``split`` (``Training/ Testing/<class>/``), ``split3`` (adds ``Validation/``),
            ``flat`` (``<class>/``, no split), ``csv`` (``images/`` + ``labels.csv`` with columns
            ``Image, Class``), ``npz`` (``data.npz`` with ``images, labels, class_names``).
        class_names: classes in label order.
        n_per_class: images per class (in ``Training/`` for split layouts; in total otherwise).
        size: image side in pixels.
        seed: everything is a function of the seed.
        test_per_class: images per class in ``Testing/`` (default ``max(2, n_per_class // 3)``).
        val_per_class: images per class in ``Validation/`` for ``split3`` (default as test).
        formats: file formats cycled over the images (png, jpg, bmp, tif).
        csv_labels: ``index`` (Class column holds 0, 1, ...) or ``name`` (class names).
        csv_paths: ``stem`` (``Image1``, no extension, as seed 003's CSV) or ``relative``
            (``images/Image1.png``).

    Returns:
        The path to give as ``DataConfig.root``: the folder, or the ``.npz`` file for ``npz``.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout={layout!r} is not valid; choose one of: {', '.join(LAYOUTS)}")
    bad = [f for f in formats if f.lower() not in FORMATS]
    if bad or not formats:
        raise ValueError(f"formats {bad or formats} not supported; choose from: {', '.join(FORMATS)}")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    n_test = max(2, n_per_class // 3) if test_per_class is None else test_per_class
    n_val = n_test if val_per_class is None else val_per_class
    names = list(class_names)

    if layout in ("split", "split3", "flat"):
        splits = {"split": [("Training", n_per_class), ("Testing", n_test)],
                  "split3": [("Training", n_per_class), ("Validation", n_val), ("Testing", n_test)],
                  "flat": [("", n_per_class)]}[layout]
        k = 0
        for split_idx, (folder, n) in enumerate(splits):
            for label, name in enumerate(names):
                out = root / folder / name if folder else root / name
                out.mkdir(parents=True, exist_ok=True)
                for i in range(n):
                    ext = formats[k % len(formats)].lower()
                    k += 1
                    _save(_draw(seed, split_idx, label, i, size, name), out / f"{name}_{i:04d}.{ext}")
        return root

    items = [(label, i) for i in range(n_per_class) for label in range(len(names))]  # interleaved
    if layout == "npz":
        images = np.stack([_draw(seed, 0, lab, i, size, names[lab]) for lab, i in items])
        labels = np.array([lab for lab, _ in items], dtype=np.int64)
        path = root / "data.npz"
        np.savez_compressed(path, images=images, labels=labels, class_names=np.array(names))
        return path

    (root / "images").mkdir(exist_ok=True)
    with open(root / "labels.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["Image", "Class"])
        for n, (lab, i) in enumerate(items, start=1):
            ext = formats[(n - 1) % len(formats)].lower()
            _save(_draw(seed, 0, lab, i, size, names[lab]), root / "images" / f"Image{n}.{ext}")
            ref = f"Image{n}" if csv_paths == "stem" else f"images/Image{n}.{ext}"
            writer.writerow([ref, lab if csv_labels == "index" else names[lab]])
    return root
