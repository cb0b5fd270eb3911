"""Simulated skull stripping (augment.skull_strip)."""
from __future__ import annotations

import random

import cv2
import numpy as np
import pytest

from brainmri.config import PreprocessConfig
from brainmri.preprocess.skullstrip import strip_skull


def _head(size: int = 160) -> np.ndarray:
    """A head phantom: bright scalp ring, dark skull ring, mid-gray brain with a darker centre."""
    img = np.zeros((size, size), np.uint8)
    c = (size // 2, size // 2)
    cv2.circle(img, c, 70, 230, -1)  # scalp
    cv2.circle(img, c, 64, 25, -1)  # skull
    cv2.circle(img, c, 60, 120, -1)  # brain
    cv2.circle(img, c, 15, 60, -1)  # ventricles
    return img


@pytest.mark.parametrize("seed", range(5))
def test_strip_removes_the_scalp_ring_and_recrops_to_the_brain(seed):
    cfg = PreprocessConfig(image_size=160, crop=True)
    out = strip_skull(_head(), cfg, random.Random(seed))
    assert out is not None and out.shape == (160, 160) and out.dtype == np.uint8
    assert (_head() >= 200).mean() > 0.09
    assert (out >= 200).mean() < 0.01  # the bright scalp is gone (resampling may leave a few edge pixels)
    assert (out == 120).mean() > 0.3  # brain kept, and re-cropped to fill the frame
    assert (out == 60).any()


def test_strip_gives_none_for_a_blank_or_tiny_foreground():
    cfg = PreprocessConfig(image_size=64, crop=True)
    assert strip_skull(np.zeros((64, 64), np.uint8), cfg, random.Random(0)) is None
    tiny = np.zeros((64, 64), np.uint8)
    tiny[30:33, 30:33] = 200
    assert strip_skull(tiny, cfg, random.Random(0)) is None


def test_dataset_strips_every_class_when_asked(tmp_path):
    from brainmri.data.datasets import Sample
    from brainmri.data.torchdata import ImageDataset

    cfg = PreprocessConfig(image_size=160, crop=False, percentile_clip=None, in_chans=1)

    class Prepared:  # the two attributes ImageDataset reads
        images = [_head(), _head()]
        samples = [Sample(path="a.png", label=0, split="train", index=0), Sample(path="b.png", label=2, split="train", index=1)]

        def __len__(self):
            return 2

    ds = ImageDataset(Prepared(), cfg, skull_strip=1.0)
    for i in range(2):
        x, label = ds[i]
        assert label == Prepared.samples[i].label  # stripping never changes the label
        plain = ImageDataset(Prepared(), cfg)[i][0]
        assert plain[0, 80, 80 + 67] > plain[0, 80, 80]  # scalp brighter than brain before
        assert x[0, 80, 80 + 67] == x.min()  # no crop here, so same geometry: the scalp is background now


@pytest.mark.parametrize("strip_lesions", [True, False])
def test_stripped_healthy_scans_get_lesions_only_when_allowed(strip_lesions):
    from brainmri.data.datasets import Sample
    from brainmri.data.torchdata import ImageDataset
    from brainmri.preprocess.lesion import PRESENCE

    cfg = PreprocessConfig(image_size=160, crop=True, percentile_clip=None, in_chans=1)

    class Prepared:
        images = [_head()]
        samples = [Sample(path="h.png", label=2, split="train", index=0)]

        def __len__(self):
            return 1

    random.seed(0)
    ds = ImageDataset(Prepared(), cfg, lesion=1.0, healthy_label=2, skull_strip=1.0, strip_lesions=strip_lesions)
    labels = {ds[0][1] for _ in range(10)}
    assert labels == ({PRESENCE} if strip_lesions else {2})
    unstripped = ImageDataset(Prepared(), cfg, lesion=1.0, healthy_label=2, strip_lesions=False)
    assert {unstripped[0][1] for _ in range(10)} == {PRESENCE}  # the flag only bites on stripped scans


def test_classes_in_strip_skip_are_never_stripped():
    from brainmri.data.datasets import Sample
    from brainmri.data.torchdata import ImageDataset

    cfg = PreprocessConfig(image_size=160, crop=False, percentile_clip=None, in_chans=1)

    class Prepared:
        images = [_head(), _head()]
        samples = [Sample(path="a.png", label=0, split="train", index=0), Sample(path="p.png", label=3, split="train", index=1)]

        def __len__(self):
            return 2

    ds = ImageDataset(Prepared(), cfg, skull_strip=1.0, strip_skip=frozenset({3}))
    plain = ImageDataset(Prepared(), cfg)
    assert not ds[0][0].equal(plain[0][0])  # class 0 stripped
    assert ds[1][0].equal(plain[1][0])  # class 3 kept whole
