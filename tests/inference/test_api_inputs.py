"""The Python API on in-memory inputs: every form of one image gets one verdict, a bad input is a
BrainMRIError naming it, predict_batch gives one result per input, and explanations stay right
when several threads ask at once."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from PIL import Image

from brainmri.errors import BrainMRIError, ConfigError, ImageReadError
from inference_helpers import phantom


def _colour(gray: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(cv2.applyColorMap(gray, cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)


def test_a_colour_image_is_out_of_distribution_whatever_its_dtype(tiny_clf):
    jet = _colour(phantom(1, 96))
    forms = {"uint8": jet, "float01": jet.astype(np.float32) / 255, "float255": jet.astype(np.float64),
             "uint16": jet.astype(np.uint16) * 257, "tensor": torch.from_numpy(jet).float() / 255}
    verdicts = {k: tiny_clf.predict(v) for k, v in forms.items()}
    for k, p in verdicts.items():
        assert p.out_of_distribution and "colour image" in p.ood_reason, (k, p.ood_reason)


def test_a_float_scan_in_arbitrary_units_is_scaled_not_quantised(tiny_clf):
    g = phantom(1, 96)
    reference = tiny_clf.predict(g)
    for scale in (1.5, 4.0, 10.0):  # were cut to a few gray levels and refused as "blank"
        p = tiny_clf.predict(g / 255.0 * scale)
        assert not (p.ood_reason or "").startswith("blank"), (scale, p.ood_reason)
        assert p.probabilities == pytest.approx(reference.probabilities, abs=0.02), scale
    assert tiny_clf.predict(g.astype(np.float32)).probabilities == reference.probabilities  # 8-bit levels held as floats


@pytest.mark.parametrize("item, message", [
    (Image.new("L", (0, 0)), "image is only 0x0 pixels"),
    (Image.new("LAB", (64, 64)), "unsupported colour mode"),
    (Image.fromarray(np.full((64, 64), np.nan, np.float32), "F"), "NaN"),
    (np.array([["a", "b"], ["c", "d"]]), "dtype <U1 is not an image"),
    (np.zeros((2, 20_000), np.uint8), "a side over the limit of 16,384"),
    (np.zeros((8000, 8000), np.uint8), "over the limit of 50,000,000"),
    ("/tmp/" + "a" * 300 + ".png", "cannot be read (File name too long)"),
    (5, "cannot predict on an int"),
])
def test_a_bad_in_memory_input_is_one_brainmri_error(tiny_clf, item, message):
    with pytest.raises(ImageReadError, match=None) as info:
        tiny_clf.predict(item)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_tensors_of_any_kind_are_read(tiny_clf):
    g = phantom(2, 96)
    reference = tiny_clf.predict(g).probabilities
    t = torch.from_numpy(g).float().div(255).requires_grad_(True)
    for form in (t, t.bfloat16(), t[None], torch.from_numpy(np.repeat(g[None], 3, 0))):  # grad, bf16, (1, H, W), (3, H, W)
        assert tiny_clf.predict(form).probabilities == pytest.approx(reference, abs=0.02)


def test_channels_first_numpy_arrays_are_read_as_tensors_are(tiny_clf):
    g = phantom(2, 96)
    reference = tiny_clf.predict(g).probabilities
    for form in (g[None], np.repeat(g[None], 3, 0), np.repeat(g[None], 3, 0).astype(np.float32) / 255):  # (1, H, W), (3, H, W)
        assert tiny_clf.predict(form).probabilities == pytest.approx(reference, abs=0.02)
    assert tiny_clf.predict(np.repeat(g[..., None], 3, 2)).probabilities == pytest.approx(reference, abs=0.02)  # (H, W, 3) still


def test_a_closed_pil_image_is_named(tiny_clf):
    img = Image.fromarray(phantom(0, 64))
    img.close()
    with pytest.raises(ImageReadError, match=r"^<PIL image>: .*closed image"):
        tiny_clf.predict(img)


def test_predict_batch_gives_one_result_per_input_or_refuses(tiny_clf):
    g = phantom(0, 64)
    with pytest.raises(ConfigError, match="names has 1 entries for 3 inputs"):
        tiny_clf.predict_batch([g, g, g], names=["first"])
    for bad in (0, -1, 1.5):
        with pytest.raises(ConfigError, match=rf"batch_size={bad} is not valid"):
            tiny_clf.predict_batch([g, g, g], batch_size=bad)
    for one in ("scan.png", g, Image.fromarray(g)):
        with pytest.raises(ConfigError, match="predict_batch takes a list of inputs"):
            tiny_clf.predict_batch(one)
    preds = tiny_clf.predict_batch([g, np.array([["x"]]), g], batch_size=2)
    assert len(preds) == 3 and preds[0].error is None and preds[2].error is None
    assert preds[1].path == "<ndarray #1>" and preds[1].error.startswith("<ndarray #1>: ")


def test_load_refuses_bad_arguments(tiny_ckpt):
    from brainmri import Classifier

    for kwargs, message in (({"num_threads": -1}, "num_threads=-1"), ({"num_threads": "x"}, "num_threads='x'"),
                            ({"bf16": "no"}, "bf16='no'"), ({"path": 123}, "path=123")):
        kwargs.setdefault("path", tiny_ckpt)
        with pytest.raises(ConfigError, match=message):
            Classifier.load(**kwargs)


def test_explanations_from_several_threads_equal_the_serial_ones(tiny_clf):
    images = [phantom(k % 4, 80, seed=k) for k in range(4)]
    serial = [tiny_clf.explain_image(x) for x in images]
    with ThreadPoolExecutor(4) as pool:  # with predictions running beside them, as in the server
        futures = [pool.submit(tiny_clf.explain_image, x) for x in images] + [pool.submit(tiny_clf.predict, x) for x in images]
        parallel = [f.result() for f in futures[:4]]
    for a, b in zip(serial, parallel):
        assert np.array_equal(a, b)


def test_explain_image_takes_what_predict_takes(tiny_clf, tmp_path):
    g = phantom(3, 80)
    path = tmp_path / "scan.png"
    Image.fromarray(g).save(path)
    expected = tiny_clf.explain_image(g)
    assert np.array_equal(tiny_clf.explain_image(str(path)), expected)
    assert np.array_equal(tiny_clf.explain_image(Image.fromarray(g)), expected)
    with pytest.raises(BrainMRIError, match="file not found"):
        tiny_clf.explain_image(tmp_path / "missing.png")


def test_a_name_given_for_a_file_labels_its_result(tiny_clf, tmp_path):
    path = tmp_path / "scan.png"
    Image.fromarray(phantom(0, 64)).save(path)
    assert tiny_clf.predict(path, name="patient-7").path == "patient-7"
    assert tiny_clf.predict(path).path == str(path)
    results = tiny_clf.predict_batch([path, str(path)], names=["a", "b"])
    assert [r.path for r in results] == ["a", "b"]
