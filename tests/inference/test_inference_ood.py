"""Out-of-distribution guard: non-MRI inputs are flagged, phantoms pass, energy thresholds."""
from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
import torch
from inference_helpers import make_checkpoint, phantom
from PIL import Image

from brainmri import Classifier
from brainmri.inference.ood import DEFAULT_INPUT_LIMITS, NON_MRI_KINDS, check_ood, energy_score, fit_ood, image_stats, make_non_mri_images


@pytest.mark.parametrize("size", [64, 160])
def test_non_mri_images_are_caught(size: int) -> None:
    images = make_non_mri_images(8 * len(NON_MRI_KINDS), size=size, seed=size)
    assert Counter(k for k, _ in images) == {k: 8 for k in NON_MRI_KINDS}
    caught = Counter(k for k, img in images if check_ood(img, None, None)[0])
    for kind in NON_MRI_KINDS:
        assert caught[kind] >= 7, f"{kind}: caught {caught[kind]}/8"


def test_phantoms_pass() -> None:
    flagged = [check_ood(phantom(i % 4, size=s, seed=i), None, None) for i in range(24) for s in (64, 128)]
    assert not any(f for f, _ in flagged), [r for f, r in flagged if f][:3]


@pytest.mark.parametrize(
    ("kind", "word"), [("photo", "colour"), ("blank", "blank"), ("noise", "noise"), ("document", "white"), ("chest_xray", "body"), ("gradient", "fine structure")]
)
def test_reason_names_the_problem(kind: str, word: str) -> None:
    img = next(im for k, im in make_non_mri_images(len(NON_MRI_KINDS), 96, seed=1) if k == kind)
    flagged, reason = check_ood(img, None, None)
    assert flagged and word in reason


def test_fit_ood_is_json_and_thresholds_energy() -> None:
    gen = torch.Generator().manual_seed(0)
    val = torch.randn(200, 4, generator=gen) * 0.5
    val[torch.arange(200), torch.randint(0, 4, (200,), generator=gen)] += 6.0  # confident
    cfg = fit_ood(val, [phantom(i % 4, seed=i) for i in range(8)])
    assert json.loads(json.dumps(cfg)) == cfg
    energies = energy_score(val).numpy()
    assert cfg["energy_threshold"] == pytest.approx(np.percentile(energies, 99))
    assert np.mean(energies > cfg["energy_threshold"]) <= 0.011
    img = phantom(0, seed=0)
    assert check_ood(img, val[0], cfg) == (False, None)
    flagged, reason = check_ood(img, torch.zeros(4), cfg)  # flat logits: high energy
    assert flagged and "energy" in reason
    assert cfg["input_limits"]["max_hf_ratio"] >= 0.55  # never tighter than the defaults


def test_fit_ood_widens_limits_for_unusual_validation_images() -> None:
    wide = [np.tile(np.linspace(0, 255, 96, dtype=np.uint8), (96, 1))] * 4  # white-ish right half
    cfg = fit_ood(torch.randn(10, 4), wide)
    assert cfg["input_limits"]["max_white_fraction"] >= image_stats(wide[0])["white_fraction"]
    pages = [img for k, img in make_non_mri_images(20, 64) if k == "document"]
    capped = fit_ood(torch.randn(10, 4), pages)  # a bad validation set cannot switch the guard off
    assert capped["input_limits"]["max_white_fraction"] <= 0.6
    assert check_ood(pages[0], None, capped)[0]


def test_cropped_validation_images_keep_the_geometry_limits() -> None:
    from brainmri.config import PreprocessConfig
    from brainmri.preprocess.pipeline import prepare_image

    cropped = [prepare_image(phantom(i % 4, size=128, seed=i), PreprocessConfig(image_size=64)) for i in range(8)]
    cfg = fit_ood(torch.randn(8, 4), cropped)
    for key in ("min_foreground", "max_aspect", "max_body_run"):
        assert cfg["input_limits"][key] == DEFAULT_INPUT_LIMITS[key]
    chest = next(img for k, img in make_non_mri_images(5, 128) if k == "chest_xray")
    assert check_ood(chest, None, cfg)[0]


def test_classifier_reports_ood_with_null_label(tmp_path) -> None:
    clf = Classifier.load(make_checkpoint(tmp_path / "m.safetensors"))
    photo = next(im for k, im in make_non_mri_images(5, 96, seed=2) if k == "photo")
    Image.fromarray(photo).save(tmp_path / "photo.jpg", quality=90)
    for item in (photo, tmp_path / "photo.jpg", Image.open(tmp_path / "photo.jpg")):
        d = clf.predict(item).to_dict()
        assert d["out_of_distribution"] is True and d["label"] is None
        assert "colour" in d["ood_reason"]
        assert sum(d["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)  # kept for transparency


def test_checkpoint_ood_config_is_applied(tmp_path) -> None:
    strict = {"energy_threshold": -1e9, "temperature": 1.0}  # everything is above it
    clf = Classifier.load(make_checkpoint(tmp_path / "m.safetensors", ood=strict))
    d = clf.predict(phantom(1)).to_dict()
    assert d["out_of_distribution"] and "energy" in d["ood_reason"]
    off = Classifier.load(make_checkpoint(tmp_path / "off.safetensors", ood={"enabled": False}))
    assert off.predict(make_non_mri_images(1, 64)[0][1]).out_of_distribution is False


def test_an_image_far_smaller_than_the_models_input_is_refused_by_size() -> None:
    from brainmri.inference.ood import check_ood, resolution_reason

    scan = np.zeros((48, 60), np.uint8)
    assert resolution_reason(scan, 160) == "image is only 60x48 px, too small for a model that reads 160 px (short side under 64 px)"
    assert resolution_reason(np.zeros((64, 64), np.uint8), 160) is None and resolution_reason(scan, None) is None
    ood, reason = check_ood(scan, None, None, image_size=160)
    assert ood and reason.startswith("image is only 60x48 px")
    assert resolution_reason(scan, 32) is None  # a 32 px model reads 48 px scans
