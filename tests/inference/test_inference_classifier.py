"""Classifier: inputs of every kind, calibrated probabilities, batches with bad files."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from inference_helpers import make_checkpoint, phantom
from PIL import Image

from brainmri import Classifier
from brainmri.errors import CheckpointError, ConfigError, ImageReadError
from brainmri.inference import classifier as classifier_module

FIELDS = {"path", "label", "probabilities", "confidence", "out_of_distribution", "ood_reason", "error"}


def test_numpy_pil_and_path_agree(tiny_clf, tmp_path) -> None:
    img = phantom(0, seed=1)
    Image.fromarray(img).save(tmp_path / "a.png")
    results = [tiny_clf.predict(img), tiny_clf.predict(Image.fromarray(img)), tiny_clf.predict(tmp_path / "a.png")]
    for r in results:
        d = r.to_dict()
        assert FIELDS <= set(d)
        assert d["error"] is None and d["out_of_distribution"] is False
        assert set(d["probabilities"]) == set(tiny_clf.class_names)
        assert sum(d["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
        assert d["confidence"] == max(d["probabilities"].values())
        assert d["label"] == max(d["probabilities"], key=d["probabilities"].get)
    assert results[0].probabilities == results[1].probabilities == results[2].probabilities
    assert results[2].path == str(tmp_path / "a.png")


def test_rgb_array_of_gray_content_is_accepted(tiny_clf) -> None:
    img = phantom(1, seed=2)
    gray = tiny_clf.predict(img)
    rgb = tiny_clf.predict(np.stack([img] * 3, axis=-1))
    assert rgb.out_of_distribution is False
    assert rgb.probabilities == gray.probabilities


def test_confidence_uses_the_checkpoint_temperature(tmp_path) -> None:
    img = phantom(2, seed=3)
    cold = Classifier.load(make_checkpoint(tmp_path / "t1.safetensors", temperature=1.0, seed=7))
    warm = Classifier.load(make_checkpoint(tmp_path / "t3.safetensors", temperature=3.0, seed=7))
    logits = cold.logits(cold.prepare(img)[None])[0]
    expected = torch.softmax(logits / 3.0, dim=0).numpy()
    got = warm.predict(img)
    np.testing.assert_allclose([got.probabilities[c] for c in warm.class_names], expected, atol=1e-5)
    assert got.confidence < cold.predict(img).confidence


def test_batch_keeps_going_after_a_bad_file(tiny_clf, tmp_path) -> None:
    good = tmp_path / "good.png"
    Image.fromarray(phantom(3, seed=4)).save(good)
    broken = tmp_path / "broken.png"
    broken.write_bytes(good.read_bytes()[:60])
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    preds = tiny_clf.predict_batch([good, broken, text, tmp_path / "missing.png", phantom(0)], batch_size=2)
    assert [p.error is None for p in preds] == [True, False, False, False, True]
    assert "broken.png" in preds[1].error and "corrupt" in preds[1].error
    assert "notes.png" in preds[2].error and "unsupported content" in preds[2].error
    assert "not found" in preds[3].error
    assert preds[0].label is not None and preds[4].label is not None


def test_batch_keeps_going_when_preparing_one_input_fails(tiny_clf, tmp_path, monkeypatch) -> None:
    paths = []
    for k in range(3):
        paths.append(tmp_path / f"scan{k}.png")
        Image.fromarray(phantom(k, seed=k)).save(paths[-1])
    real = tiny_clf.prepare
    bad_shape = np.asarray(Image.open(paths[1])).shape

    def prepare(gray):
        if gray.shape == bad_shape and np.array_equal(gray, np.asarray(Image.open(paths[1]))):
            raise MemoryError("Unable to allocate 320. GiB")
        return real(gray)

    monkeypatch.setattr(tiny_clf, "prepare", prepare)
    preds = tiny_clf.predict_batch(paths, batch_size=8)
    assert [p.error is None for p in preds] == [True, False, True]  # the others still get their answer
    assert preds[1].error == f"{paths[1]}: could not be processed (MemoryError: Unable to allocate 320. GiB)"


def test_single_predict_raises_naming_the_file(tiny_clf, tmp_path) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff" + b"\x00" * 10)
    with pytest.raises(ImageReadError, match="bad.jpg"):
        tiny_clf.predict(bad)


def test_missing_bundled_model_says_how_to_pass_one(monkeypatch) -> None:
    monkeypatch.setattr(classifier_module, "BUNDLED_MODEL", "absent-model.safetensors")
    with pytest.raises(CheckpointError, match="--checkpoint"):
        Classifier.load()


def test_unknown_backend_and_missing_file(tiny_ckpt, tmp_path) -> None:
    with pytest.raises(ConfigError, match="torch, onnx"):
        Classifier.load(tiny_ckpt, backend="tensorrt")
    with pytest.raises(CheckpointError, match="not found"):
        Classifier.load(tmp_path / "nope.safetensors")


def test_channels_last_and_bf16_match_fp32(tiny_ckpt) -> None:
    img = phantom(1, seed=9)
    ref = Classifier.load(tiny_ckpt, channels_last=False).predict(img).probabilities
    cl = Classifier.load(tiny_ckpt, channels_last=True).predict(img).probabilities
    bf = Classifier.load(tiny_ckpt, bf16=True).predict(img).probabilities
    for c in ref:
        assert cl[c] == pytest.approx(ref[c], abs=1e-5)
        assert bf[c] == pytest.approx(ref[c], abs=0.02)


def test_describe_carries_the_disclaimer(tiny_clf) -> None:
    info = tiny_clf.describe()
    assert info["disclaimer"] == "For research use only; not a medical device."
    assert info["classes"] == tiny_clf.class_names and info["image_size"] == 64


def test_a_multi_page_tiff_or_animated_gif_says_the_first_page_is_used(tiny_clf, tmp_path) -> None:
    pages = [Image.fromarray(phantom(k, seed=k)) for k in range(3)]
    pages[0].save(tmp_path / "stack.tif", save_all=True, append_images=pages[1:])
    pages[0].save(tmp_path / "cine.gif", save_all=True, append_images=pages[1:])
    pages[0].save(tmp_path / "one.tif")
    tif, gif, one = tiny_clf.predict_batch([tmp_path / "stack.tif", tmp_path / "cine.gif", tmp_path / "one.tif"])
    assert tif.info["note"] == "3 pages: the first one is used"
    assert gif.info["note"] == "3 frames: the first one is used"
    assert "note" not in one.info


def test_what_is_not_classified_carries_no_confidence(tiny_clf, tmp_path) -> None:
    import nibabel as nib

    blank = tiny_clf.predict(np.full((80, 80), 128, np.uint8))
    assert blank.out_of_distribution and blank.label is None and blank.confidence is None
    assert set(blank.probabilities) == set(tiny_clf.class_names)  # the raw evidence stays
    noise = np.random.default_rng(0).uniform(0, 1000, (64, 64, 9)).astype(np.float32)
    nib.save(nib.Nifti1Image(noise, np.eye(4)), str(tmp_path / "noise.nii.gz"))
    vol = tiny_clf.predict(tmp_path / "noise.nii.gz", slices="all")
    assert vol.label is None and vol.confidence is None
    assert all(s["confidence"] is None for s in vol.slices)
    assert vol.info["slice_indices"] == list(range(9)) and vol.info["num_slices"] == 9
    assert vol.most_suspicious_slices == [] and vol.info["slices_not_normal"] == 0  # nothing classified: nothing suspicious


def test_a_volume_counts_the_slices_called_a_finding(tiny_clf, tmp_path) -> None:
    import nibabel as nib

    stack = np.stack([np.rot90(phantom(k % 4, size=64, seed=k), -1) for k in range(8)], axis=2).astype(np.float32)
    nib.save(nib.Nifti1Image(stack, np.eye(4)), str(tmp_path / "v.nii.gz"))
    vol = tiny_clf.predict(tmp_path / "v.nii.gz", slices="all")
    kept = [s for s in vol.slices if s["label"] is not None]
    assert vol.info["slices_not_normal"] == sum(s["label"] != "notumor" for s in kept)
    assert vol.info["slices_used"] == len(kept)
