"""The deterministic preprocessing shared by training and prediction.

``prepare_image``: grayscale uint8 (H, W) -> brain crop -> square pad -> cubic resize ->
uint8 (S, S). Its output is what the cache stores.

``to_model_input``: uint8 (S, S) -> per-image percentile window -> [0, 1] -> (x - mean) / std ->
float tensor (C, S, S) with C = ``in_chans`` (1, or 3 replicated channels).

Both read every parameter from a :class:`~brainmri.config.PreprocessConfig`, which every
checkpoint carries, so prediction can never drift from training.
"""
from __future__ import annotations

import cv2
import numpy as np
import torch

from brainmri.config import PreprocessConfig
from brainmri.preprocess.crop import crop_brain


def pad_to_square(gray: np.ndarray) -> np.ndarray:
    """Zero-pad (H, W) symmetrically to a square so resizing keeps the aspect ratio."""
    h, w = gray.shape
    s = max(h, w)
    if h == w:
        return gray
    top = (s - h) // 2
    left = (s - w) // 2
    out = np.zeros((s, s), dtype=gray.dtype)
    out[top : top + h, left : left + w] = gray
    return out


def prepare_image(gray: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """Crop (if enabled), pad to square and resize (cubic) a grayscale uint8 image.

    Args:
        gray: (H, W) uint8.
        cfg: preprocessing config.

    Returns:
        (S, S) uint8 with S = ``cfg.image_size``.
    """
    if gray.ndim != 2:
        raise ValueError(f"expected (H, W) grayscale, got {gray.shape}")
    if cfg.crop:
        gray = crop_brain(
            gray,
            blur=cfg.crop_blur,
            threshold=cfg.crop_threshold,
            erode=cfg.crop_erode,
            dilate=cfg.crop_dilate,
            margin=cfg.crop_margin,
        )
    sq = pad_to_square(gray)
    s = int(cfg.image_size)
    if sq.shape[0] == s:
        return np.ascontiguousarray(sq)
    interp = cv2.INTER_AREA if sq.shape[0] > s else cv2.INTER_CUBIC
    return cv2.resize(sq, (s, s), interpolation=interp)


def normalize_intensity(arr: np.ndarray | torch.Tensor, percentile_clip: tuple[float, float] | None) -> torch.Tensor:
    """uint8 / float image -> float32 tensor in [0, 1], optionally windowed per image between two
    percentiles of its non-zero (foreground) pixels."""
    t = torch.as_tensor(np.asarray(arr) if not isinstance(arr, torch.Tensor) else arr).float()
    if t.dtype != torch.float32:
        t = t.float()
    if t.max() > 1.0:
        t = t / 255.0
    if percentile_clip is not None:
        fg = t[t > 0.02]
        if fg.numel() >= 16:
            q = torch.quantile(fg[:: max(1, fg.numel() // 65536)], torch.tensor(percentile_clip, dtype=torch.float32) / 100.0)
            lo, hi = float(q[0]), float(q[1])
            if hi - lo > 1e-3:
                t = ((t - lo) / (hi - lo)).clamp_(0.0, 1.0)
    return t


def to_model_input(prepared: np.ndarray | torch.Tensor, cfg: PreprocessConfig) -> torch.Tensor:
    """(S, S) uint8 (or (1, S, S) float in [0, 1]) -> normalised float tensor (C, S, S)."""
    t = normalize_intensity(prepared, cfg.percentile_clip)
    if t.ndim == 2:
        t = t.unsqueeze(0)
    t = (t - cfg.mean) / cfg.std
    if cfg.in_chans == 3 and t.shape[0] == 1:
        t = t.expand(3, -1, -1).contiguous()
    return t
