"""The model zoo's names and native input sizes: plain data, so the command line can list them
without importing timm."""
from __future__ import annotations

# name -> native input size. Any other timm name passes through (default 224).
MODEL_ZOO: dict[str, int] = {
    "densenet121": 224,
    "mobilenetv2_100": 224,
    "efficientnet_b0": 224,
    "resnet18": 224,
    "resnet50": 224,
    "inception_resnet_v2": 299,
    "vit_base_patch16_224": 224,
    "vit_small_patch16_224": 224,
    "seed003_cnn": 128,
    "seed002_cnn": 128,
}


def default_image_size(name: str) -> int:
    return MODEL_ZOO.get(name, 224)
