"""Synthetic lesions in healthy scans and the tumor-presence objective they train."""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from brainmri.config import PreprocessConfig, RunConfig, TrainConfig, validate
from brainmri.data.datasets import Sample
from brainmri.data.synthetic import make_phantom
from brainmri.data.torchdata import ImageDataset
from brainmri.errors import ConfigError
from brainmri.preprocess.lesion import PRESENCE, brain_mask, synthesize_lesion
from brainmri.training.module import ClassifierModule


def healthy(size: int = 96, seed: int = 0) -> np.ndarray:
    return make_phantom(2, size, np.random.default_rng(seed), class_name="notumor")


def test_lesion_changes_a_blob_inside_the_brain_only():
    img = healthy()
    mask = brain_mask(img)
    for seed in range(20):
        out = synthesize_lesion(img, random.Random(seed))
        assert out is not None and out.shape == img.shape and out.dtype == np.uint8
        changed = np.abs(out.astype(int) - img.astype(int)) > 20
        assert not changed[~mask].any(), "pixels outside the head must not change"
        frac = changed.sum() / mask.sum()
        assert 0.003 < frac < 0.6, f"seed {seed}: lesion covers {frac:.3f} of the brain"


def test_margin_keeps_lesions_away_from_the_head_outline():
    import cv2

    img = healthy()
    mask = brain_mask(img).astype(np.uint8)
    dist = cv2.distanceTransform(mask, cv2.DIST_L2, 5)  # pixels to the head outline
    size = float(np.sqrt(mask.sum()))

    def centre_depth(out: np.ndarray) -> float:
        changed = np.abs(out.astype(int) - img.astype(int)) > 20
        ys, xs = np.nonzero(changed)
        return float(dist[int(ys.mean()), int(xs.mean())])

    plain = [centre_depth(synthesize_lesion(img, random.Random(s))) for s in range(30)]
    deep = [centre_depth(synthesize_lesion(img, random.Random(s), margin=0.2)) for s in range(30)]
    assert min(deep) >= 0.12 * size  # (the changed area's centre sits near the drawn centre)
    assert min(plain) < min(deep)


def test_lesion_is_reproducible_and_varies():
    img = healthy()
    a = synthesize_lesion(img, random.Random(3))
    b = synthesize_lesion(img, random.Random(3))
    c = synthesize_lesion(img, random.Random(4))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_lesion_needs_a_brain():
    assert synthesize_lesion(np.zeros((64, 64), np.uint8), random.Random(0)) is None
    speck = np.zeros((64, 64), np.uint8)
    speck[30:33, 30:33] = 200
    assert synthesize_lesion(speck, random.Random(0)) is None


class _Prepared:
    def __init__(self, images, labels):
        self.images = images
        self.samples = [Sample(path=f"img{i}.png", label=lab) for i, lab in enumerate(labels)]


def test_dataset_relabels_healthy_scans_with_a_lesion_as_presence():
    labels = [2, 0, 2, 1]
    images = [healthy(64, i) for i in range(4)]
    ds = ImageDataset(_Prepared(images, labels), PreprocessConfig(image_size=64), lesion=1.0, healthy_label=2)
    got = [ds[i][1] for i in range(4)]
    assert got == [PRESENCE, 0, PRESENCE, 1]
    plain = ImageDataset(_Prepared(images, labels), PreprocessConfig(image_size=64))
    assert [plain[i][1] for i in range(4)] == labels
    assert not torch.equal(ds[0][0], plain[0][0])  # the image changed with the label
    assert torch.equal(ds[1][0], plain[1][0])  # tumor scans are untouched


def test_scans_listed_as_no_lesion_stay_healthy():
    # data.extra_lesions: false -> the extra healthy sources' scans are never given a lesion
    labels = [2, 2, 2]
    images = [healthy(64, i) for i in range(3)]
    ds = ImageDataset(_Prepared(images, labels), PreprocessConfig(image_size=64), lesion=1.0, healthy_label=2,
                      no_lesion=frozenset({"img1.png"}))
    plain = ImageDataset(_Prepared(images, labels), PreprocessConfig(image_size=64))
    assert [ds[i][1] for i in range(3)] == [PRESENCE, 2, PRESENCE]
    assert torch.equal(ds[1][0], plain[1][0])


def test_dataset_refuses_lesions_without_a_healthy_class():
    with pytest.raises(ConfigError, match="notumor"):
        ImageDataset(_Prepared([healthy(64)], [0]), PreprocessConfig(image_size=64), lesion=0.5, healthy_label=None)


def test_config_rejects_lesion_probability_out_of_range():
    cfg = RunConfig()
    cfg.augment.lesion = 1.5
    with pytest.raises(ConfigError, match="augment.lesion"):
        validate(cfg)


def _module(weights=None):
    return ClassifierModule(torch.nn.Identity(), 4, TrainConfig(label_smoothing=0.0), weights, healthy_class=2)


def test_presence_loss_is_minus_log_probability_of_not_healthy():
    logits = torch.tensor([[0.1, -0.3, 2.0, 0.5], [1.0, 0.2, -1.0, 0.0]])
    y = torch.tensor([PRESENCE, PRESENCE])
    p_healthy = torch.softmax(logits, 1)[:, 2]
    expected = -torch.log1p(-p_healthy).mean()
    assert torch.allclose(_module().loss(logits, y), expected, atol=1e-6)


def test_presence_loss_mixes_with_weighted_cross_entropy():
    logits = torch.randn(6, 4, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 2, PRESENCE, 3, PRESENCE, 1])
    w = torch.tensor([1.0, 2.0, 0.5, 1.5])
    known = y >= 0
    ce = F.cross_entropy(logits[known], y[known], weight=w, reduction="sum")
    p_healthy = torch.softmax(logits[~known], 1)[:, 2]
    w_t = w[[0, 1, 3]].mean()
    pres = -(w_t * torch.log1p(-p_healthy)).sum()
    expected = (ce + pres) / (w[y[known]].sum() + w_t * 2)
    assert torch.allclose(_module(w).loss(logits, y), expected, atol=1e-5)
    # without presence rows it is plain weighted cross-entropy
    assert torch.allclose(_module(w).loss(logits[known], y[known]), F.cross_entropy(logits[known], y[known], weight=w), atol=1e-6)


def test_presence_gradient_lowers_the_healthy_logit_only_relative_to_tumors():
    logits = torch.zeros(1, 4, requires_grad=True)
    _module().loss(logits, torch.tensor([PRESENCE])).backward()
    g = logits.grad[0]
    assert g[2] > 0  # descent lowers P(healthy)
    assert (g[[0, 1, 3]] < 0).all() and torch.allclose(g[0], g[1]) and torch.allclose(g[1], g[3])  # no type preferred
