"""A montage of several scans (a figure, a screenshot of a viewer's grid) is not classified as one
scan: the brain crop would keep the largest tile and the answer would be about that slice alone."""
from __future__ import annotations

import numpy as np
import pytest
from inference_helpers import phantom
from PIL import Image

from brainmri.inference.ood import check_ood, head_boxes, montage_reason


def tiles(images: list[np.ndarray], cols: int, gap: int = 0) -> np.ndarray:
    s = images[0].shape[0]
    rows = -(-len(images) // cols)
    out = np.zeros((rows * s + (rows - 1) * gap, cols * s + (cols - 1) * gap), np.uint8)
    for k, im in enumerate(images):
        r, c = divmod(k, cols)
        out[r * (s + gap):r * (s + gap) + s, c * (s + gap):c * (s + gap) + s] = im
    return out


@pytest.mark.parametrize("n, cols, gap", [(2, 2, 0), (4, 2, 0), (4, 2, 6), (9, 3, 0), (2, 1, 4)])
def test_a_grid_of_scans_is_a_montage(n, cols, gap):
    grid = tiles([phantom(k % 4, size=128, seed=k) for k in range(n)], cols, gap)
    reason = montage_reason(grid)
    assert reason == f"looks like a montage of {n} scans (separate heads side by side); give one slice per image"
    ood, why = check_ood(grid, None, None)
    assert ood and why == reason


def test_one_scan_is_one_head_whatever_its_pieces():
    for label in range(4):
        assert montage_reason(phantom(label, size=160, seed=label)) is None
    scan = phantom(0, size=160, seed=3)
    scan[:, :4] = 255  # a bright frame line and a corner label do not count as heads
    scan[150:156, 140:158] = 255
    boxes = head_boxes(scan)
    assert boxes[0][2] - boxes[0][0] > 100 and montage_reason(scan) is None  # the head first; the label too small to be a second


def test_a_small_inset_beside_a_scan_is_no_montage():
    scan = phantom(1, size=160, seed=1)
    canvas = np.zeros((160, 220), np.uint8)
    canvas[:, :160] = scan
    canvas[120:150, 180:210] = np.asarray(Image.fromarray(phantom(2, size=160, seed=2)).resize((30, 30)))  # a thumbnail
    assert montage_reason(canvas) is None


def test_volume_slices_skip_the_montage_test():
    grid = tiles([phantom(k, size=96, seed=k) for k in range(2)], 2)
    assert check_ood(grid, None, None, montage=False) == (False, None)


def test_predict_names_a_montage_and_gives_no_label(tiny_clf, tmp_path):
    path = tmp_path / "figure.png"
    Image.fromarray(tiles([phantom(k % 4, size=128, seed=k) for k in range(4)], 2)).save(path)
    result = tiny_clf.predict(path)
    assert result.label is None and result.out_of_distribution and "montage of 4 scans" in result.ood_reason


@pytest.mark.realdata
def test_real_scans_are_no_montage_and_grids_of_them_are(real_datasets):
    from brainmri.data.io import image_files, read_image

    rng = np.random.default_rng(0)
    files = [p for p in image_files(real_datasets / "brain-tumor-mri" / "Testing")]
    picked = [files[i] for i in rng.choice(len(files), 120, replace=False)]
    scans = [read_image(p) for p in picked]
    assert [p.name for p, s in zip(picked, scans) if montage_reason(s)] == []
    small = [np.asarray(Image.fromarray(s).resize((160, 160))) for s in scans]
    grids = [tiles(small[k:k + 4], 2) for k in range(0, 80, 4)]
    assert sum(montage_reason(g) is not None for g in grids) >= 19
