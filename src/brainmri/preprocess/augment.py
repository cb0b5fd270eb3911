"""Training-only augmentation, built from :class:`~brainmri.config.AugmentConfig` with
torchvision transforms v2.

Seed 001's geometric set (rotation, shift, zoom, shear, horizontal flip) and seed 004's sharpness,
plus levers for robustness to *other scanners and sources*: brightness/contrast/gamma, blur,
noise, resolution (down- then up-sampling) and JPEG re-compression. Input and output: a uint8 or
float tensor (1, S, S); output is float in [0, 1].
"""
from __future__ import annotations

import io
import math
import random

import brainmri._compat  # noqa: F401
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.transforms import v2

from brainmri.config import AugmentConfig


class RandomGamma(torch.nn.Module):
    """x ** exp(u), u ~ U(-log_range, log_range), on a [0, 1] float image."""

    def __init__(self, log_range: float):
        super().__init__()
        self.log_range = log_range

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = math.exp(random.uniform(-self.log_range, self.log_range))
        return x.clamp(0, 1) ** g


class _Sometimes(torch.nn.Module):
    """Applies ``transform`` with probability ``p``."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.transform(x) if random.random() < self.p else x

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class RandomDownscale(_Sometimes):
    """With probability p, resize to a random fraction (0.35-0.9) of the size and back: mimics
    low-resolution sources."""

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        s = x.shape[-1]
        f = random.uniform(0.35, 0.9)
        small = F.interpolate(x.unsqueeze(0), size=max(8, int(s * f)), mode="area")
        mode = random.choice(["bilinear", "bicubic", "nearest"])
        kwargs = {} if mode == "nearest" else {"align_corners": False}
        return F.interpolate(small, size=(x.shape[-2], s), mode=mode, **kwargs).squeeze(0).clamp(0, 1)


class RandomJPEG(_Sometimes):
    """With probability p, re-encode as JPEG at quality 30-95 (Pillow; torchvision.io is not used)."""

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        arr = (x[0].clamp(0, 1) * 255).round().to(torch.uint8).numpy()
        buf = io.BytesIO()
        Image.fromarray(arr, mode="L").save(buf, format="JPEG", quality=random.randint(30, 95))
        out = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("L"))
        return torch.from_numpy(out.copy()).float().unsqueeze(0) / 255.0


class RandomNoise(torch.nn.Module):
    """Additive Gaussian noise with a random std in [0, std]."""

    def __init__(self, std: float):
        super().__init__()
        self.std = std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x + torch.randn_like(x) * random.uniform(0, self.std)).clamp(0, 1)


class RandomIntensityCurve(_Sometimes):
    """With probability p, remap foreground intensities through a random smooth curve (a cubic
    Bezier from (0, 0) to (1, 1) with random inner control points), inverted with probability
    ``invert``; the black background stays black.

    Scanners and sequences (T1, T1 with contrast, T2, FLAIR) give the same anatomy different
    grey-level curves. A source whose tumors are mostly one sequence teaches a model that *this
    contrast* means tumor; random curves (as in Models Genesis' non-linear transform) take that
    shortcut away while keeping edges and shapes — where a lesion is.
    """

    def __init__(self, p: float, invert: float = 0.0, background: float = 0.02):
        super().__init__(p)
        self.invert = invert
        self.background = background

    @staticmethod
    def random_lut(rng: random.Random, invert: bool, n: int = 256) -> torch.Tensor:
        t = torch.linspace(0, 1, n)
        (x1, y1), (x2, y2) = sorted(tuple(0.15 + 0.7 * rng.random() for _ in range(2)) for _ in range(2))
        bx = 3 * (1 - t) ** 2 * t * x1 + 3 * (1 - t) * t**2 * x2 + t**3
        by = 3 * (1 - t) ** 2 * t * y1 + 3 * (1 - t) * t**2 * y2 + t**3
        lut = torch.from_numpy(np.interp(t.numpy(), bx.numpy(), by.numpy())).float()
        return 1.0 - lut if invert else lut

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        lut = self.random_lut(random, random.random() < self.invert)
        idx = (x.clamp(0, 1) * (len(lut) - 1)).round().long()
        return torch.where(x > self.background, lut[idx].clamp(min=self.background * 2), torch.zeros_like(x))


class RandomConvolution(_Sometimes):
    """With probability p, pass the image through a shallow network with random weights and mix
    the result with the input (GIN, Ouyang et al. 2022, "Causality-inspired single-source domain
    generalization for medical image segmentation"): 1-3 random convolutions (kernel 1 or 3,
    8 channels, leaky ReLU) give a new, spatially varying, possibly non-monotone tissue contrast
    while edges and shapes — where a lesion is — stay. The black background stays black.
    """

    def __init__(self, p: float, width: int = 8, background: float = 0.02):
        super().__init__(p)
        self.width = width
        self.background = background

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        g = torch.Generator().manual_seed(random.getrandbits(63))
        h = x.float().unsqueeze(0)  # (1, 1, S, S)
        c_in = 1
        layers = random.randint(1, 3)
        for i in range(layers):
            c_out = 1 if i == layers - 1 else self.width
            k = random.choice((1, 3))
            w = torch.randn(c_out, c_in, k, k, generator=g) / math.sqrt(c_in * k * k)
            h = F.conv2d(h, w, torch.randn(c_out, generator=g) * 0.1, padding=k // 2)
            if i < layers - 1:
                h = F.leaky_relu(h, 0.2)
            c_in = c_out
        h = h[0]
        fg = x > self.background
        if not bool(fg.any()):
            return x
        vals = h[fg]
        lo, hi = torch.quantile(vals, torch.tensor([0.01, 0.99]))  # robust to the few edge outliers
        h = (h - lo) / (hi - lo).clamp_min(1e-6)
        alpha = random.uniform(0.3, 1.0)
        mixed = alpha * h + (1 - alpha) * x.float()
        return torch.where(fg, mixed.clamp(self.background * 2, 1), torch.zeros_like(mixed))


def build_augment(cfg: AugmentConfig) -> v2.Compose | None:
    """The training transform for ``cfg``, or ``None`` when augmentation is disabled."""
    if not cfg.enabled:
        return None
    ops: list[torch.nn.Module] = []
    if cfg.rotation or cfg.shift or cfg.zoom or cfg.shear:
        ops.append(
            v2.RandomAffine(
                degrees=cfg.rotation,
                translate=(cfg.shift, cfg.shift) if cfg.shift else None,
                scale=(1 - cfg.zoom, 1 + cfg.zoom) if cfg.zoom else None,
                shear=cfg.shear or None,
                interpolation=v2.InterpolationMode.BILINEAR,
            )
        )
    if cfg.hflip:
        ops.append(v2.RandomHorizontalFlip(cfg.hflip))
    if cfg.vflip:
        ops.append(v2.RandomVerticalFlip(cfg.vflip))
    if cfg.sharpness:
        ops.append(v2.RandomAdjustSharpness(sharpness_factor=2.0, p=cfg.sharpness))
    ops.append(v2.ToDtype(torch.float32, scale=True))
    if cfg.brightness or cfg.contrast:
        ops.append(v2.ColorJitter(brightness=cfg.brightness or None, contrast=cfg.contrast or None))
    if cfg.gamma:
        ops.append(RandomGamma(cfg.gamma))
    if cfg.intensity_curve:
        ops.append(RandomIntensityCurve(cfg.intensity_curve, cfg.invert))
    if cfg.random_conv:
        ops.append(RandomConvolution(cfg.random_conv))
    if cfg.blur:
        ops.append(v2.RandomApply([v2.GaussianBlur(kernel_size=5, sigma=(0.1, 1.5))], p=cfg.blur))
    if cfg.downscale:
        ops.append(RandomDownscale(cfg.downscale))
    if cfg.jpeg:
        ops.append(RandomJPEG(cfg.jpeg))
    if cfg.noise:
        ops.append(RandomNoise(cfg.noise))
    return v2.Compose(ops)
