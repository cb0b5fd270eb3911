"""Class-activation maps: every zoo model, sizes, target layers, classes, faithfulness, CLI."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from brainmri.checkpoint import CheckpointMeta, save_checkpoint
from brainmri.config import ModelConfig, PreprocessConfig
from brainmri.data.synthetic import TUMOR4, make_phantom
from brainmri.errors import ConfigError
from brainmri.explain import METHODS, default_target_layer, explain
from brainmri.explain.cam import cam_batch, prepare_input
from brainmri.explain.faithfulness import faithfulness_scores, format_table
from brainmri.explain.targets import layer_name, reshape_transform_for
from brainmri.models import MODEL_ZOO, create_model

HEAVY = {"vit_base_patch16_224", "vit_small_patch16_224", "inception_resnet_v2", "resnet50", "densenet121"}  # slow on 2 shared cores;
# the fast suite still covers every family: ResNet, EfficientNet/MobileNet, ViT (vit_tiny), seed CNNs
SIZES = {"inception_resnet_v2": 160}  # its last grid is 1x1 below ~130 px


def meta_for(name: str, size: int, classes=TUMOR4, **pre) -> CheckpointMeta:
    return CheckpointMeta(ModelConfig(name=name), list(classes), PreprocessConfig(image_size=size, **pre), calibration={"temperature": 1.0})


def scan(size: int = 80, pad: tuple = ((6, 14), (0, 30)), label: int = 0, seed: int = 0) -> np.ndarray:
    """A phantom on a non-square canvas, so the crop and the padding are exercised."""
    img = make_phantom(label, size, np.random.default_rng(seed), class_name=TUMOR4[label])
    return np.pad(img, pad)


def check_cam(name: str) -> None:
    size = SIZES.get(name, 64)
    torch.manual_seed(0)
    model = create_model(name, 4, image_size=size).eval()
    img = scan()
    meta = meta_for(name, size)
    [r] = explain(model, meta, [img])
    assert r.heatmap.shape == img.shape and r.heatmap.dtype == np.float32
    assert np.isfinite(r.heatmap).all() and 0 <= r.heatmap.min() and r.heatmap.max() <= 1
    assert r.heatmap_prepared.shape == (size, size)
    # an untrained net may have no positive evidence for one class (ReLU'd map = 0), not for all
    x = prepare_input(img, meta.preprocess).tensor
    maps, _ = cam_batch(model, x.expand(4, -1, -1, -1), "gradcam", [0, 1, 2, 3])  # one map per class
    assert any(m.max() > 0.5 and m.std() > 0.01 for m in maps)  # a map, not a constant
    assert r.overlay.shape == (*img.shape, 3) and r.overlay.dtype == np.uint8
    assert r.predicted_class in TUMOR4 and 0 < r.prob <= 1
    assert sum(r.probs.values()) == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize("name", [m for m in MODEL_ZOO if m not in HEAVY] + ["vit_tiny_patch16_224"])
def test_every_zoo_model_gets_a_cam(name):
    check_cam(name)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(HEAVY))
def test_heavy_zoo_models_get_a_cam(name):
    check_cam(name)


def test_default_target_layers_are_the_expected_ones():
    expected = {"resnet18": "layer4", "densenet121": "features.norm5", "efficientnet_b0": "bn2", "mobilenetv2_100": "bn2",
                "seed003_cnn": "features", "vit_tiny_patch16_224": "blocks.11.norm1"}
    for name, layer in expected.items():
        model = create_model(name, 2, image_size=64)
        assert layer_name(model, default_target_layer(model)) == layer
    vit = create_model("vit_tiny_patch16_224", 2, image_size=64)
    grid = reshape_transform_for(vit)(torch.zeros(2, vit.num_prefix_tokens + 16, 192))
    assert grid.shape == (2, 192, 4, 4)
    assert reshape_transform_for(create_model("resnet18", 2)) is None


def test_generic_fallback_uses_last_conv():
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Conv2d(4, 8, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 2))
    assert default_target_layer(model) is model[2]
    with pytest.raises(ConfigError, match="target-layer"):
        default_target_layer(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2)))


@pytest.fixture(scope="module")
def small():
    torch.manual_seed(0)
    return create_model("seed003_cnn", 4).eval(), meta_for("seed003_cnn", 48)


def test_methods_target_class_and_layer_override(small):
    model, meta = small
    img = scan()
    for method in METHODS:
        [r] = explain(model, meta, [img], method=method, target_class="pituitary")
        assert r.method == method and r.target_class == "pituitary" and r.heatmap.shape == img.shape
        assert np.isfinite(r.heatmap).all()
    [r] = explain(model, meta, [img], target_layer="features.3")
    assert r.heatmap.shape == img.shape
    with pytest.raises(ConfigError, match="not a module"):
        explain(model, meta, [img], target_layer="features.99")
    with pytest.raises(ConfigError, match="glioma, meningioma"):
        explain(model, meta, [img], target_class="astrocytoma")
    with pytest.raises(ConfigError, match="choose one of"):
        explain(model, meta, [img], method="magic")


def test_map_lands_inside_the_brain_crop(small):
    model, meta = small
    img = np.pad(make_phantom(2, 60, np.random.default_rng(1), class_name="notumor"), ((40, 0), (0, 50)))
    [r] = explain(model, meta, [img])
    assert r.heatmap[:30, :].max() == 0  # the black margin above the head is outside the crop
    assert r.heatmap[40:, :60].max() > 0.5


def test_tensor_inputs_and_frozen_models(small):
    model, meta = small
    from brainmri.preprocess.pipeline import prepare_image, to_model_input

    x = to_model_input(prepare_image(scan(), meta.preprocess), meta.preprocess)
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        with torch.inference_mode():  # a service may call it inside inference mode
            [r] = explain(model, meta, [x])
    finally:
        for p in model.parameters():
            p.requires_grad_(True)
    assert r.heatmap.shape == (48, 48) and r.heatmap.max() > 0.5
    with pytest.raises(ConfigError, match="prepared"):
        explain(model, meta, [torch.zeros(1, 32, 32)])


def test_faithfulness_table(small):
    model, meta = small
    rows = faithfulness_scores(model, meta, [scan(seed=s) for s in range(2)], methods=["gradcam", "eigencam"], n_steps=6)
    assert [r["method"] for r in rows] == ["gradcam", "eigencam", "random"]
    for r in rows:
        assert 0 <= r["deletion_auc"] <= 1 and 0 <= r["insertion_auc"] <= 1
        assert r["score"] == pytest.approx(r["insertion_auc"] - r["deletion_auc"])
    assert "| gradcam |" in format_table(rows)


def test_explain_cli_writes_pngs_and_compares(tmp_path, small, capsys):
    from PIL import Image

    from brainmri.cli.main import main

    model, meta = small
    ckpt = save_checkpoint(tmp_path / "m.safetensors", model, meta)
    paths = []
    for i in range(2):
        p = tmp_path / f"scan {i}.png"
        Image.fromarray(scan(seed=i)).save(p)
        paths.append(str(p))
    out = tmp_path / "out"
    rc = main(["explain", str(ckpt), *paths, "--out", str(out), "--class", "glioma", "--compare-methods", "--methods", "gradcam,layercam", "--steps", "4"])
    assert rc == 0
    for stem in ("scan_0", "scan_1"):
        for kind in ("original", "heatmap", "overlay", "explanation"):
            assert (out / f"{stem}_{kind}.png").stat().st_size > 100
    assert Image.open(out / "scan_0_overlay.png").size == Image.open(paths[0]).size
    printed = capsys.readouterr().out
    assert "gradcam map for glioma" in printed and "| layercam |" in printed and "| random |" in printed
    assert main(["explain", str(ckpt), str(tmp_path / "missing.png"), "--out", str(out)]) == 2
