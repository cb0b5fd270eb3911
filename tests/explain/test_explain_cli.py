"""``brainmri explain``: the OOD guard, bad files in a batch, flags checked before any work,
head layers refused as CAM targets, ONNX files refused with a clear message."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from brainmri.cli.main import main
from brainmri.errors import ConfigError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "inference"))
from inference_helpers import make_checkpoint, phantom  # noqa: E402


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("explain_ckpt") / "m.safetensors", size=64)


@pytest.fixture()
def images(tmp_path) -> dict[str, Path]:
    files = {"good": tmp_path / "good.png", "good2": tmp_path / "good2.png", "blank": tmp_path / "blank.png",
             "noise": tmp_path / "noise.png", "fake": tmp_path / "fake.png"}
    Image.fromarray(phantom(0, seed=1)).save(files["good"])
    Image.fromarray(phantom(1, seed=2)).save(files["good2"])
    Image.fromarray(np.full((64, 64), 128, np.uint8)).save(files["blank"])
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)).save(files["noise"])
    files["fake"].write_text("hello, not an image")
    return files


def _outputs(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()} if folder.exists() else set()


def test_out_of_distribution_inputs_get_no_heat_map(ckpt, images, tmp_path, capsys):
    out = tmp_path / "cams"
    rc = main(["explain", str(ckpt), str(images["blank"]), str(images["good"]), str(images["noise"]), "--out", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "blank.png: out of distribution: blank or near-constant image" in text
    assert "noise.png: out of distribution: image looks like noise" in text
    assert "blank.png: predicted" not in text and "noise.png: predicted" not in text  # no diagnosis for them
    assert "good.png: predicted" in text
    written = _outputs(out)
    assert {f"good_{k}.png" for k in ("original", "heatmap", "overlay", "explanation")} <= written
    assert not any(n.startswith(("blank", "noise")) for n in written)


def test_explain_uses_the_same_guard_as_predict(ckpt, images, tmp_path, capsys):
    """What predict calls out of distribution, explain refuses to map (and the reverse)."""
    from brainmri import Classifier

    clf = Classifier.load(ckpt)
    paths = [images[k] for k in ("blank", "good", "noise", "good2")]
    ood = {p.stem: clf.predict(p).out_of_distribution for p in paths}
    assert ood == {"blank": True, "good": False, "noise": True, "good2": False}
    out = tmp_path / "cams"
    assert main(["explain", str(ckpt), *map(str, paths), "--out", str(out)]) == 0
    mapped = {n.split("_")[0] for n in _outputs(out)}
    assert mapped == {stem for stem, is_ood in ood.items() if not is_ood}


def test_an_energy_guard_refusal_also_gives_no_map(tmp_path, images, capsys):
    """A checkpoint whose fitted energy threshold rejects everything: the map is withheld."""
    ck = make_checkpoint(tmp_path / "strict.safetensors", size=64, ood={"energy_threshold": -1e9, "temperature": 1.0})
    out = tmp_path / "cams"
    assert main(["explain", str(ck), str(images["good"]), "--out", str(out)]) == 0
    assert "good.png: out of distribution: model energy score" in capsys.readouterr().out
    assert not out.exists()  # nothing written: no empty folder either


def test_one_bad_file_does_not_abort_the_batch(ckpt, images, tmp_path, capsys):
    out = tmp_path / "cams"
    missing = tmp_path / "nonexist.png"
    rc = main(["explain", str(ckpt), str(images["good"]), str(images["fake"]), str(images["good2"]), str(missing), "--out", str(out)])
    assert rc == 1  # non-zero: some inputs failed
    cap = capsys.readouterr()
    assert f"{images['fake']}: unsupported content" in cap.err
    assert f"{missing}: file not found" in cap.err  # reported too, not skipped after the first error
    assert "2 of 4 input(s) could not be read" in cap.err
    written = _outputs(out)
    assert "good_overlay.png" in written and "good2_overlay.png" in written


def test_nothing_readable_is_exit_2_and_creates_no_folder(ckpt, images, tmp_path, capsys):
    out = tmp_path / "cams"
    assert main(["explain", str(ckpt), str(images["fake"]), str(tmp_path / "missing.png"), "--out", str(out)]) == 2
    assert not out.exists()


@pytest.mark.parametrize("layer", ["fc", "head_drop", "pre_logits"])
def test_head_layers_are_refused_before_any_work(ckpt, images, tmp_path, capsys, layer):
    out = tmp_path / "cams"
    assert main(["explain", str(ckpt), str(images["good"]), "--target-layer", layer, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"--target-layer {layer!r}" in err and "not a spatial feature map" in err
    hints = err.rsplit("e.g. ", 1)[1]
    assert "features" in hints and not any(bad in hints for bad in ("fc", "head_drop", "pre_logits"))
    assert not out.exists()


def test_a_spatial_target_layer_still_works(ckpt, images, tmp_path):
    out = tmp_path / "cams"
    assert main(["explain", str(ckpt), str(images["good"]), "--target-layer", "features.3", "--out", str(out)]) == 0
    assert (out / "good_heatmap.png").is_file()


def test_unknown_layer_hints_only_usable_layers():
    from brainmri.explain.targets import resolve_target_layer
    from brainmri.models import create_model

    model = create_model("seed003_cnn", 4)
    with pytest.raises(ConfigError, match="is not a module") as info:
        resolve_target_layer(model, "nope")
    hints = str(info.value).rsplit("e.g. ", 1)[1]
    assert "fc" not in hints and "head_drop" not in hints and "features" in hints


def test_cam_batch_refuses_a_flat_layer():
    from brainmri.explain.cam import cam_batch
    from brainmri.models import create_model

    model = create_model("seed003_cnn", 4).eval()
    with pytest.raises(ConfigError, match=r"'fc' outputs shape \(2, 4\)"):
        cam_batch(model, torch.zeros(2, 1, 48, 48), target_layer="fc")


@pytest.mark.parametrize("steps", ["0", "-3"])
def test_steps_must_be_positive_and_are_checked_first(ckpt, images, tmp_path, capsys, steps):
    out = tmp_path / "cams"
    rc = main(["explain", str(ckpt), str(images["good"]), "--compare-methods", "--steps", steps, "--out", str(out)])
    assert rc == 2
    assert f"--steps={steps} must be >= 1" in capsys.readouterr().err
    assert not out.exists()  # refused before any map was written


def test_faithfulness_refuses_zero_steps():
    from brainmri.explain.faithfulness import faithfulness_scores
    from brainmri.checkpoint import CheckpointMeta
    from brainmri.config import ModelConfig, PreprocessConfig
    from brainmri.models import create_model

    meta = CheckpointMeta(ModelConfig(name="seed003_cnn"), ["a", "b"], PreprocessConfig(image_size=32))
    with pytest.raises(ConfigError, match="must be >= 1"):
        faithfulness_scores(create_model("seed003_cnn", 2).eval(), meta, [phantom(0)], n_steps=0)


def test_bad_out_paths_are_refused_before_the_work(ckpt, images, tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x")
    for out, problem in ((afile, "is a file, not a folder"), (afile / "sub", "afile is a file, not a folder"), ("/proc/nope", "cannot write in /proc")):
        assert main(["explain", str(ckpt), str(images["good"]), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"brainmri explain: error: --out {out}") and problem in err, err
        assert err.count("\n") == 1
    assert afile.read_text() == "x"


def test_an_onnx_model_is_refused_with_a_clear_message(ckpt, images, tmp_path, capsys):
    from brainmri.checkpoint import load_checkpoint
    from brainmri.inference.onnx_backend import export_onnx

    model, meta = load_checkpoint(ckpt)
    onnx_file = export_onnx(model, meta, tmp_path / "model_no_suffix")
    assert main(["explain", str(onnx_file), str(images["good"]), "--out", str(tmp_path / "cams")]) == 2
    err = capsys.readouterr().err
    assert f"{onnx_file}: is an ONNX model, not a brainmri .safetensors checkpoint" in err
    assert "bad header length" not in err


def test_noise_volume_slices_get_no_heat_map(ckpt, tmp_path, capsys):
    import nibabel as nib

    rng = np.random.default_rng(0)
    noise = tmp_path / "vol.nii.gz"
    nib.save(nib.Nifti1Image(rng.uniform(0, 1000, (64, 64, 9)).astype(np.float32), np.eye(4)), str(noise))
    brain = tmp_path / "brain.nii.gz"
    stack = np.stack([np.rot90(phantom(k % 4, size=64, seed=k), -1) for k in range(9)], axis=2).astype(np.float32)
    nib.save(nib.Nifti1Image(stack, np.eye(4)), str(brain))
    out = tmp_path / "cams"
    assert main(["explain", str(ckpt), str(noise), str(brain), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "vol.nii.gz (slice004): out of distribution" in text and "vol.nii.gz (slice004): predicted" not in text
    assert "brain.nii.gz (slice004): predicted" in text
    assert not any(n.startswith("vol") for n in _outputs(out)) and (out / "brain_slice004_overlay.png").is_file()


def test_methods_without_compare_methods_is_refused(ckpt, images, tmp_path, capsys):
    out = tmp_path / "maps"
    assert main(["explain", str(ckpt), str(images["good"]), "--out", str(out), "--methods", "gradcam,layercam"]) == 2
    assert "--methods chooses the methods of --compare-methods" in capsys.readouterr().err
    assert not out.exists()


def test_bf16_with_the_onnx_backend_is_refused(ckpt, images, capsys):
    assert main(["predict", str(images["good"]), "-c", str(ckpt), "--backend", "onnx", "--bf16"]) == 2
    assert "--bf16 is a torch-backend option" in capsys.readouterr().err
