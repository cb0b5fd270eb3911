"""Which layer a class-activation map is read from, for every architecture brainmri builds.

CAM methods weigh the feature maps of one layer: the last spatial one before global pooling
(deep enough to be class-specific, still a grid). :func:`default_target_layer` knows the right
layer for each model family of the zoo and falls back to timm's ``feature_info`` or the last
``Conv2d``; ``--target-layer NAME`` (a dotted module name) overrides it.

Vision transformers output tokens, not grids: :func:`reshape_transform_for` drops the prefix
(class / register) tokens and folds the patch tokens back into a (B, C, H, W) grid.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from brainmri.errors import ConfigError


def is_vit(model: nn.Module) -> bool:
    """True for token-based transformers with a patch embedding (timm ViT / DeiT / EVA ...)."""
    return hasattr(model, "patch_embed") and hasattr(model, "blocks")


def _last_of(model: nn.Module, kinds: tuple[type, ...]) -> nn.Module | None:
    found = None
    for module in model.modules():
        if isinstance(module, kinds):
            found = module
    return found


def default_target_layer(model: nn.Module) -> nn.Module:
    """The layer whose activations a CAM explains by default.

    * ResNet: ``layer4``; DenseNet: ``features.norm5``; EfficientNet / MobileNetV2: ``bn2``
      (after ``conv_head``); Inception-ResNet-v2: ``conv2d_7b``; seed CNNs: ``features``;
    * ViT: ``blocks[-1].norm1`` (the last block's input: the final block's output reaches the
      classifier only through the class token, so its patch tokens carry no gradient);
    * anything else: timm's last ``feature_info`` module, else the last ``Conv2d``.

    Raises:
        ConfigError: the model has no convolution and no known layout.
    """
    name = type(model).__name__
    if is_vit(model):
        return model.blocks[-1].norm1
    if name == "ResNet" and hasattr(model, "layer4"):
        return model.layer4
    if name == "DenseNet" and hasattr(model, "features"):
        return getattr(model.features, "norm5", model.features)
    if name in ("EfficientNet", "MobileNetV3") and hasattr(model, "bn2"):
        return model.bn2
    if name == "InceptionResnetV2" and hasattr(model, "conv2d_7b"):
        return model.conv2d_7b
    if name == "_SeedCNN":
        return model.features
    info = getattr(model, "feature_info", None)
    if info:
        try:
            return model.get_submodule(info[-1]["module"])
        except (AttributeError, KeyError, TypeError, IndexError):
            pass
    conv = _last_of(model, (nn.Conv2d,))
    if conv is None:
        raise ConfigError(f"cannot find a convolutional layer to explain in {name}; pass --target-layer NAME")
    return conv


def resolve_target_layer(model: nn.Module, name: str | None) -> nn.Module:
    """``name`` (dotted, e.g. ``layer4.1.conv2`` or ``blocks.11.norm1``) or the default layer.

    Raises:
        ConfigError: no such module; the message lists a few valid names.
    """
    if not name:
        return default_target_layer(model)
    try:
        return model.get_submodule(name)
    except AttributeError:
        names = [n for n, _ in model.named_modules() if n]
        hint = [n for n in names if name.split(".")[0] in n][:8] or names[-8:]
        raise ConfigError(f"--target-layer {name!r} is not a module of {type(model).__name__}; e.g. {', '.join(hint)}") from None


def layer_name(model: nn.Module, layer: nn.Module) -> str:
    """Dotted name of ``layer`` inside ``model`` ("" for the model itself)."""
    for n, m in model.named_modules():
        if m is layer:
            return n
    return "?"


def reshape_transform_for(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """A token -> grid transform for ViT-like models, else ``None``.

    The returned function maps (B, prefix + H*W, C) tokens to (B, C, H, W), dropping the
    ``model.num_prefix_tokens`` class/register tokens; 4-D inputs pass through unchanged.
    """
    if not is_vit(model):
        return None
    prefix = int(getattr(model, "num_prefix_tokens", 1))

    def tokens_to_grid(x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 3:
            return x
        grid = getattr(model.patch_embed, "grid_size", None)
        tokens = x[:, prefix:, :]
        if grid is None or grid[0] * grid[1] != tokens.shape[1]:
            side = int(round(tokens.shape[1] ** 0.5))
            grid = (side, tokens.shape[1] // max(side, 1))
        return tokens.reshape(x.shape[0], grid[0], grid[1], x.shape[2]).permute(0, 3, 1, 2)

    return tokens_to_grid
