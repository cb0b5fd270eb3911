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
        raise ConfigError(f"--target-layer {name!r} is not a module of {type(model).__name__}; e.g. {', '.join(layer_hints(model, name))}") from None


def spatial_layer_names(model: nn.Module) -> list[str]:
    """Dotted names of the modules a CAM can read: those holding a ``Conv2d`` (their output is
    a feature grid), and for ViT-like models the transformer blocks and their parts. Heads
    (``fc``, ``head_drop``, ``pre_logits``, pooling) hold no convolution and are left out."""
    vit = is_vit(model)
    out = []
    for n, m in model.named_modules():
        if not n:
            continue
        if any(isinstance(c, nn.Conv2d) for c in m.modules()) or (vit and n.startswith("blocks")):
            out.append(n)
    return out


def layer_hints(model: nn.Module, name: str | None = None, n: int = 8) -> list[str]:
    """A few valid ``--target-layer`` names, those resembling ``name`` first."""
    names = spatial_layer_names(model)
    near = [x for x in names if name and name.split(".")[0] in x][:n]
    return near or names[-n:]


def check_layer_output(model: nn.Module, layer: nn.Module, shape: tuple[int, ...] | None) -> None:
    """Refuse a target layer whose output (``shape``, seen on a forward pass) is not a feature
    grid: a CAM weighs (B, C, H, W) activations (ViT: (B, tokens, C), folded into a grid).

    Raises:
        ConfigError: naming the layer, its output shape and layers that work.
    """
    if shape is not None and (len(shape) == 4 or (len(shape) == 3 and reshape_transform_for(model) is not None)):
        return
    name = layer_name(model, layer) or type(layer).__name__
    what = "is not used by the model's forward pass" if shape is None else f"outputs shape {tuple(shape)}, not a spatial feature map (batch, channels, height, width)"
    raise ConfigError(f"--target-layer {name!r} {what}; a CAM needs a convolutional layer, e.g. {', '.join(layer_hints(model, name))}")


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
