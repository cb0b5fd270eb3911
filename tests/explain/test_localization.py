"""Where a heat map points (brainmri.explain.localization) and scripts/cam_check.py, which
measures it against pasted lesions and the border of the scan."""
from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest

from brainmri.explain.localization import area_fraction, border_band, grow, mass_fraction, pointing_hit
from brainmri.preprocess.lesion import brain_mask, synthesize_lesion


def disc(size: int, cy: float, cx: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def test_pointing_hit_counts_the_peak_inside_the_mask_or_within_the_tolerance():
    mask = disc(64, 20, 20, 5)
    hm = np.zeros((64, 64))
    hm[20, 20] = 1.0
    assert pointing_hit(hm, mask)
    hm = np.zeros((64, 64))
    hm[20, 30] = 1.0  # 10 px from the centre, 5 px outside the disc
    assert not pointing_hit(hm, mask)
    assert not pointing_hit(hm, mask, tolerance=4)
    assert pointing_hit(hm, mask, tolerance=6)
    assert not pointing_hit(np.full((64, 64), 0.5), mask), "a flat map points nowhere"
    assert not pointing_hit(hm, np.zeros((64, 64), bool))
    with pytest.raises(ValueError, match="same"):
        pointing_hit(hm, mask[:32])


def test_mass_fraction_is_the_area_share_for_a_uniform_map_and_one_for_a_map_inside():
    mask = disc(64, 32, 32, 10)
    assert mass_fraction(np.ones((64, 64)), mask) == pytest.approx(area_fraction(mask))
    inside = np.where(mask, 0.7, 0.0)
    assert mass_fraction(inside, mask) == pytest.approx(1.0)
    assert mass_fraction(np.where(mask, 0.0, 1.0), mask) == 0.0
    assert math.isnan(mass_fraction(np.zeros((64, 64)), mask))


def test_grow_widens_a_mask_by_the_radius():
    mask = disc(64, 32, 32, 5)
    assert np.array_equal(grow(mask, 0), mask)
    grown = grow(mask, 3)
    assert grown[mask].all() and grown.sum() > mask.sum()
    assert grown[32, 32 + 8] and not grown[32, 32 + 9]


def test_border_band_is_the_rim_of_the_head_and_everything_outside():
    head = disc(100, 50, 50, 40)  # size sqrt(area) ~ 70.9, so a 10% rim is ~7 px
    band = border_band(head, depth=0.1)
    assert band[~head].all(), "background is border"
    assert not band[50, 50], "the centre of the brain is not"
    assert band[50, 50 + 38] and not band[50, 50 + 30], "a rim about 7 px deep"
    assert border_band(np.zeros((10, 10), bool)).all()


def test_lesion_mask_marks_the_pasted_lesion_and_leaves_the_image_unchanged():
    from brainmri.data.synthetic import make_phantom

    img = make_phantom(2, 96, np.random.default_rng(0), class_name="notumor")
    for seed in range(10):
        plain = synthesize_lesion(img, random.Random(seed), margin=0.1)
        out, mask = synthesize_lesion(img, random.Random(seed), margin=0.1, return_mask=True)
        assert np.array_equal(out, plain), "asking for the mask must not change the image (or the random draws)"
        assert mask.dtype == bool and mask.any() and not (mask & ~brain_mask(img)).any()
        diff = np.abs(out.astype(int) - img.astype(int))
        assert diff[mask].mean() > 3 * max(diff[~mask].mean(), 0.5), f"seed {seed}: the change sits in the mask"


def test_cam_check_reports_every_set_it_finds(tmp_path, load_script, capsys):
    import torch

    from brainmri.checkpoint import CheckpointMeta, save_checkpoint
    from brainmri.config import ModelConfig, PreprocessConfig
    from brainmri.data.synthetic import TUMOR4, make_phantom_dataset
    from brainmri.models import create_model

    datasets = tmp_path / "datasets"
    make_phantom_dataset(datasets / "brain-tumor-mri", layout="split", n_per_class=1, test_per_class=3, size=64, seed=0)
    (datasets / "brain-mri-yes-no" / "yes").mkdir(parents=True)
    for f in sorted((datasets / "brain-tumor-mri" / "Testing" / "glioma").iterdir()):
        (datasets / "brain-mri-yes-no" / "yes" / f.name).write_bytes(f.read_bytes())
    torch.manual_seed(0)
    ck = tmp_path / "m.safetensors"
    save_checkpoint(ck, create_model("resnet18", 4), CheckpointMeta(ModelConfig(name="resnet18"), list(TUMOR4), PreprocessConfig(image_size=64)))
    cam_check = load_script("cam_check")
    out = tmp_path / "cam.json"
    assert cam_check.main([str(ck), "--datasets", str(datasets), "--json", str(out)]) == 0
    r = json.loads(out.read_text())[str(ck)]
    assert set(r) == {"Testing notumor + synthetic lesion", "Testing tumors", "yes/no tumors"}  # no T1 volume here
    assert r["Testing tumors"]["n"] == 9 and r["yes/no tumors"]["n"] == 3
    lesion = r["Testing notumor + synthetic lesion"]
    assert lesion["n"] == 3 and 0 < lesion["lesion_area"] < 0.5 and 0 <= lesion["lesion_peak"] <= 1
    assert 0 <= lesion["called_tumor_before"] <= 1 and 0 <= lesion["auc_lesion_vs_none"] <= 1
    assert "lesion_peak" not in r["Testing tumors"] and "called_tumor_before" not in r["Testing tumors"]
    assert all(0 <= s["border_peak"] <= 1 and 0 < s["border_area"] < 1 for s in r.values())
    table = capsys.readouterr().out
    assert table.count(f"| {ck} |") == 3
    assert cam_check.main([str(ck), "--datasets", str(tmp_path / "nowhere")]) == 2
    assert "no data sets found" in capsys.readouterr().err
