"""Brain crop and prepare_image on hand-made arrays."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from brainmri.config import PreprocessConfig
from brainmri.preprocess.crop import brain_bbox, crop_brain
from brainmri.preprocess.pipeline import pad_to_square, prepare_image, to_model_input


def ellipse(h: int = 120, w: int = 160, centre=(80, 60), axes=(40, 30), value: int = 180) -> np.ndarray:
    img = np.zeros((h, w), np.uint8)
    cv2.ellipse(img, centre, axes, 0, 0, 360, value, thickness=-1)  # centre/axes are (x, y)
    return img


def test_bbox_of_drawn_ellipse() -> None:
    top, bottom, left, right = brain_bbox(ellipse(), margin=0.0)
    assert abs(top - 30) <= 2 and abs(bottom - 91) <= 2  # y: 60 +- 30
    assert abs(left - 40) <= 2 and abs(right - 121) <= 2  # x: 80 +- 40


def test_margin_widens_box_and_is_clipped() -> None:
    t0, b0, l0, r0 = brain_bbox(ellipse(), margin=0.0)
    t1, b1, l1, r1 = brain_bbox(ellipse(), margin=0.1)
    assert t1 == t0 - round((b0 - t0) * 0.1) and r1 == r0 + round((r0 - l0) * 0.1)
    edge = ellipse(centre=(20, 60), axes=(40, 30))  # runs off the left border
    top, bottom, left, right = brain_bbox(edge, margin=0.5)
    assert left == 0 and top >= 0 and bottom <= 120


def test_largest_region_wins_over_specks_and_labels() -> None:
    img = ellipse()
    img[2:6, 2:30] = 255  # burnt-in text / ruler in a corner
    img[110:112, 150:152] = 255  # speck
    top, bottom, left, right = brain_bbox(img, margin=0.0)
    assert top > 20 and left > 30


def test_blank_and_dark_images_are_left_alone() -> None:
    blank = np.zeros((50, 70), np.uint8)
    assert brain_bbox(blank) is None
    assert crop_brain(blank) is blank
    dark = np.full((50, 70), 30, np.uint8)  # under the threshold
    assert brain_bbox(dark) is None


def test_crop_returns_the_brain() -> None:
    out = crop_brain(ellipse(), margin=0.0)
    assert abs(out.shape[0] - 61) <= 3 and abs(out.shape[1] - 81) <= 3
    assert out.mean() > ellipse().mean()  # less background


def test_bbox_rejects_non_2d() -> None:
    with pytest.raises(ValueError, match="2-D"):
        brain_bbox(np.zeros((4, 4, 3), np.uint8))


def test_pad_to_square_keeps_content_centred() -> None:
    img = np.full((10, 30), 7, np.uint8)
    sq = pad_to_square(img)
    assert sq.shape == (30, 30) and sq[10:20].min() == 7 and sq[:10].max() == 0 and sq[20:].max() == 0


@pytest.mark.parametrize("crop", [True, False])
@pytest.mark.parametrize("size", [32, 64, 96])
def test_prepare_image_shape_and_dtype(crop: bool, size: int) -> None:
    out = prepare_image(ellipse(), PreprocessConfig(image_size=size, crop=crop))
    assert out.shape == (size, size) and out.dtype == np.uint8


def test_prepare_image_crop_fills_the_frame() -> None:
    cropped = prepare_image(ellipse(), PreprocessConfig(image_size=64))
    uncropped = prepare_image(ellipse(), PreprocessConfig(image_size=64, crop=False))
    assert (cropped > 90).mean() > (uncropped > 90).mean() + 0.2
    blank = prepare_image(np.zeros((40, 60), np.uint8), PreprocessConfig(image_size=32))
    assert blank.shape == (32, 32) and blank.max() == 0


def test_prepare_image_rejects_color() -> None:
    with pytest.raises(ValueError, match="grayscale"):
        prepare_image(np.zeros((8, 8, 3), np.uint8), PreprocessConfig(image_size=16))


@pytest.mark.parametrize("in_chans", [1, 3])
def test_to_model_input_shape_and_normalisation(in_chans: int) -> None:
    cfg = PreprocessConfig(image_size=32, in_chans=in_chans, percentile_clip=None, mean=0.5, std=0.25)
    arr = np.zeros((32, 32), np.uint8)
    arr[:, 16:] = 255
    t = to_model_input(arr, cfg)
    assert tuple(t.shape) == (in_chans, 32, 32)
    assert float(t[0, 0, 0]) == pytest.approx(-2.0) and float(t[0, 0, 31]) == pytest.approx(2.0)


def test_a_drawn_frame_does_not_become_the_crop():
    """Some public scans carry a white frame; the crop must find the head inside it."""
    import cv2
    import numpy as np

    from brainmri.preprocess.crop import brain_bbox

    img = np.zeros((200, 200), np.uint8)
    cv2.ellipse(img, (100, 110), (50, 60), 0, 0, 360, 180, -1)
    framed = img.copy()
    framed[:3, :] = framed[-3:, :] = 255
    framed[:, :3] = framed[:, -3:] = 255
    assert brain_bbox(framed, margin=0.0) == brain_bbox(img, margin=0.0)
    top, bottom, left, right = brain_bbox(framed, margin=0.0)
    assert 45 <= top <= 55 and 165 <= bottom <= 175 and 45 <= left <= 55 and 145 <= right <= 155


def test_a_head_touching_the_edge_is_not_cleared():
    import cv2
    import numpy as np

    from brainmri.preprocess.crop import brain_bbox

    img = np.zeros((200, 200), np.uint8)
    cv2.ellipse(img, (100, 100), (60, 110), 0, 0, 360, 180, -1)  # runs off the top and bottom
    top, bottom, _, _ = brain_bbox(img, margin=0.0)
    assert top == 0 and bottom == 200
