"""Training augmentation: shapes, ranges, and what each robustness lever does."""
from __future__ import annotations

import random

import pytest
import torch

from brainmri.config import AugmentConfig
from brainmri.preprocess.augment import RandomConvolution, RandomDownscale, RandomIntensityCurve, RandomJPEG, build_augment


def ramp() -> torch.Tensor:
    """(1, 32, 32) float: black border, a left-to-right intensity ramp inside."""
    x = torch.zeros(1, 32, 32)
    x[:, 4:28, 4:28] = torch.linspace(0.1, 1.0, 24).expand(24, 24)
    return x


def test_disabled_augmentation_is_none():
    assert build_augment(AugmentConfig(enabled=False)) is None


def test_full_pipeline_gives_float_image_in_unit_range():
    aug = build_augment(AugmentConfig(sharpness=0.5, gamma=0.3, blur=0.5, noise=0.05, downscale=0.5, jpeg=0.5, intensity_curve=0.5, invert=0.5, random_conv=0.5))
    x = (ramp() * 255).to(torch.uint8)
    for seed in range(10):
        random.seed(seed)
        torch.manual_seed(seed)
        y = aug(x)
        assert y.dtype == torch.float32 and y.shape == (1, 32, 32)
        assert 0.0 <= float(y.min()) and float(y.max()) <= 1.0


def test_intensity_curve_keeps_background_black_and_invert_reverses_tissue_order():
    x = ramp()
    random.seed(0)
    inverted = RandomIntensityCurve(p=1.0, invert=1.0).transform(x)
    kept = RandomIntensityCurve(p=1.0, invert=0.0).transform(x)
    assert float(inverted[:, :4].abs().max()) == 0.0 and float(kept[:, :4].abs().max()) == 0.0
    row_inv, row_kept = inverted[0, 16, 4:28], kept[0, 16, 4:28]
    assert float(row_inv[0]) > float(row_inv[-1])  # dark tissue became bright
    assert float(row_kept[0]) < float(row_kept[-1])  # monotone curve keeps the order


def test_intensity_curve_probability_zero_is_identity():
    x = ramp()
    assert torch.equal(RandomIntensityCurve(p=0.0)(x), x)


@pytest.mark.parametrize("op", [RandomDownscale(1.0), RandomJPEG(1.0)])
def test_resolution_and_jpeg_levers_keep_shape_and_change_pixels(op):
    random.seed(1)
    x = ramp()
    y = op(x)
    assert y.shape == x.shape
    assert not torch.equal(y, x)
    assert float((y - x).abs().mean()) < 0.1  # degraded, not destroyed


def disc_on_ramp() -> torch.Tensor:
    """The ramp with a bright disc (a "lesion") in it."""
    x = ramp()
    yy, xx = torch.meshgrid(torch.arange(32), torch.arange(32), indexing="ij")
    x[0][((yy - 16) ** 2 + (xx - 12) ** 2) <= 16] = 0.9
    return x


def test_random_convolution_changes_contrast_but_keeps_background_and_the_lesion_edge():
    x = disc_on_ramp()
    outs = []
    for seed in range(12):
        random.seed(seed)
        y = RandomConvolution(1.0).transform(x)
        assert y.shape == x.shape and 0 <= float(y.min()) and float(y.max()) <= 1
        assert float(y[:, :3].abs().max()) == 0.0 and float(y[:, :, 29:].abs().max()) == 0.0  # background
        inside = y[0, 16, 12]
        ring = torch.stack([y[0, 16, 7], y[0, 16, 17], y[0, 11, 12], y[0, 21, 12]])  # just outside the disc
        outs.append(float((inside - ring.mean()).abs()))
        assert not torch.allclose(y, x, atol=0.02)  # a new contrast
    assert sum(o > 0.02 for o in outs) >= 9, outs  # the disc still stands out from its surroundings in most draws


def test_vflip_turns_the_scan_upside_down_and_is_off_by_default():
    x = torch.zeros(1, 32, 32, dtype=torch.uint8)
    x[:, 2:6, 10:20] = 200  # a bar near the top
    only = dict(rotation=0, shift=0, zoom=0, shear=0, hflip=0, brightness=0, contrast=0)
    y = build_augment(AugmentConfig(vflip=1.0, **only))(x)
    assert torch.allclose(y, torch.flip(x, dims=[-2]).float() / 255)
    assert AugmentConfig().vflip == 0.0
    from brainmri.config import RunConfig, validate
    from brainmri.errors import ConfigError

    cfg = RunConfig()
    cfg.augment.vflip = 1.5
    with pytest.raises(ConfigError, match="augment.vflip"):
        validate(cfg)
