"""The model zoo: every named model builds and runs at its input size; grayscale meets
3-channel backbones; local pretrained weights load offline; the hub path fails clearly."""
from __future__ import annotations

import pytest
import torch

from brainmri.errors import CheckpointError, ConfigError
from brainmri.models import MODEL_ZOO, create_model, load_pretrained_weights


@pytest.mark.parametrize("name", sorted(MODEL_ZOO))
def test_every_zoo_model_runs_a_forward_pass_at_its_input_size(name):
    size = MODEL_ZOO[name]
    model = create_model(name, num_classes=4, in_chans=1, image_size=size).eval()
    with torch.inference_mode():
        out = model(torch.randn(1, 1, size, size))
    assert out.shape == (1, 4) and torch.isfinite(out).all()
    assert model.get_classifier().out_features == 4 if hasattr(model.get_classifier(), "out_features") else True


def test_unknown_model_name_is_a_clear_config_error():
    with pytest.raises(ConfigError, match="not a brainmri or timm model"):
        create_model("resnet_999", 4)


def test_seed_cnns_have_no_pretrained_weights():
    with pytest.raises(ConfigError, match="from-scratch"):
        create_model("seed003_cnn", 2, pretrained=True)


def test_three_channel_input_replicates_gray():
    model = create_model("resnet18", 4, in_chans=3).eval()
    gray = torch.rand(1, 1, 64, 64)
    with torch.inference_mode():
        assert model(gray.expand(1, 3, 64, 64)).shape == (1, 4)


def test_local_pretrained_weights_load_offline_and_adapt_the_first_conv(tmp_path):
    """An ImageNet-style 3-channel state dict (written here) loads into a 1-channel model:
    the first conv is the channel sum, the backbone matches, the classifier is new."""
    from safetensors.torch import save_file

    source = create_model("resnet18", 1000, in_chans=3)
    state = {k: v.contiguous() for k, v in source.state_dict().items()}
    save_file(state, str(tmp_path / "imagenet.safetensors"))
    torch.save(state, tmp_path / "imagenet.pth")
    for path in (tmp_path / "imagenet.safetensors", tmp_path / "imagenet.pth"):
        model = create_model("resnet18", 4, in_chans=1, pretrained_weights=str(path))
        assert torch.allclose(model.conv1.weight, state["conv1.weight"].sum(1, keepdim=True))
        assert torch.equal(model.layer4[1].conv2.weight, state["layer4.1.conv2.weight"])
        assert model.fc.weight.shape == (4, 512)


def test_weights_for_another_architecture_are_refused(tmp_path):
    from safetensors.torch import save_file

    save_file({"foo.weight": torch.zeros(3, 3)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(CheckpointError, match=r"only 0 of this model's \d+ backbone tensors are in the weights file"):
        load_pretrained_weights(create_model("resnet18", 4), tmp_path / "other.safetensors")


def test_a_classifier_alone_or_another_brainmri_model_is_no_pretraining(tmp_path, caplog):
    from safetensors.torch import save_file

    from brainmri.checkpoint import CheckpointMeta, save_checkpoint
    from brainmri.config import ModelConfig, PreprocessConfig

    own = create_model("resnet18", 4).state_dict()
    save_file({"fc.bias": own["fc.bias"].clone()}, str(tmp_path / "head.safetensors"))  # matched only the classifier before
    with pytest.raises(CheckpointError, match="only 0 of this model's"):
        load_pretrained_weights(create_model("resnet18", 4), tmp_path / "head.safetensors")
    cnn = save_checkpoint(tmp_path / "cnn.safetensors", create_model("seed002_cnn", 4),
                          CheckpointMeta(ModelConfig(name="seed002_cnn"), ["a", "b", "c", "d"], PreprocessConfig(image_size=32)))
    with pytest.raises(CheckpointError, match="is a brainmri checkpoint of seed002_cnn, not of resnet18"):
        create_model("resnet18", 4, pretrained_weights=str(cnn))
    bigger = {f"{k}": v for k, v in create_model("resnet34", 4).state_dict().items()}
    save_file(bigger, str(tmp_path / "r34.safetensors"))
    with caplog.at_level("WARNING"):
        load_pretrained_weights(create_model("resnet18", 4), tmp_path / "r34.safetensors")
    assert "tensors are not part of resnet18" in caplog.text and "another architecture" in caplog.text


def test_missing_weights_file_names_the_path(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        create_model("resnet18", 4, pretrained_weights=str(tmp_path / "nope.safetensors"))


def test_hub_download_offline_gives_a_clear_message(monkeypatch):
    import timm

    def offline(*args, **kwargs):
        if kwargs.get("pretrained"):
            raise OSError("We couldn't connect to 'https://huggingface.co'")
        return real(*args, **kwargs)

    real = timm.create_model
    monkeypatch.setattr(timm, "create_model", offline)
    with pytest.raises(CheckpointError, match="--pretrained-weights"):
        create_model("resnet18", 4, pretrained=True)


class _NotATensor:  # a module-level class: picklable, and not allowed by weights_only loading
    pass


def test_unreadable_pretrained_weights_are_one_short_line(tmp_path):
    import torch

    from brainmri.errors import CheckpointError
    from brainmri.models import create_model
    from brainmri.models.factory import load_pretrained_weights

    pickled = tmp_path / "objects.pt"
    torch.save({"a": _NotATensor()}, pickled)
    junk = tmp_path / "junk.pt"
    junk.write_text("junk junk")
    model = create_model("resnet18", 4)
    with pytest.raises(CheckpointError) as info:
        load_pretrained_weights(model, pickled)
    msg = str(info.value)
    assert msg.startswith(f"{pickled}: not a readable") and "holds Python objects besides tensors" in msg and "\n" not in msg
    with pytest.raises(CheckpointError, match=r"junk.pt: not a readable safetensors / state-dict file"):
        load_pretrained_weights(model, junk)


def test_an_image_or_broken_weights_file_is_named_for_what_it_is(tmp_path):
    import numpy as np
    from PIL import Image
    from safetensors.torch import save_file

    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "scan.png")
    with pytest.raises(CheckpointError, match=r"scan\.png: is a PNG file, not a weights file"):
        load_pretrained_weights(create_model("resnet18", 4), tmp_path / "scan.png")
    state = create_model("resnet18", 4).state_dict()
    state["conv1.weight"] = torch.full_like(state["conv1.weight"], float("nan"))
    save_file(state, str(tmp_path / "nan.safetensors"))
    with pytest.raises(CheckpointError, match=r"nan\.safetensors: tensor conv1\.weight holds NaN or infinite values"):
        load_pretrained_weights(create_model("resnet18", 4), tmp_path / "nan.safetensors")


def test_without_a_route_to_the_hub_only_the_local_cache_is_asked(monkeypatch):
    """A download with no network retried for about a minute; now it looks in the cache and fails at once."""
    import socket

    import huggingface_hub.constants as hub
    import timm

    monkeypatch.delenv("HTTPS_PROXY", raising=False)
    monkeypatch.delenv("https_proxy", raising=False)
    monkeypatch.delenv("ALL_PROXY", raising=False)
    monkeypatch.delenv("all_proxy", raising=False)
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", False)

    def no_route(*a, **k):
        raise OSError(101, "Network is unreachable")

    seen = {}

    def fake_create(name, pretrained=False, **kwargs):
        seen["offline"] = hub.HF_HUB_OFFLINE
        raise RuntimeError("not in the cache")

    monkeypatch.setattr(socket, "create_connection", no_route)
    monkeypatch.setattr(timm, "create_model", fake_create)
    with pytest.raises(CheckpointError, match="could not download ImageNet weights for resnet18"):
        create_model("resnet18", 4, pretrained=True)
    assert seen["offline"] is True and hub.HF_HUB_OFFLINE is False  # set for the call only
