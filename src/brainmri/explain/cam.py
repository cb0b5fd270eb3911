"""Class-activation maps over pytorch-grad-cam, for any brainmri model.

:func:`explain` takes a model and its checkpoint metadata, prepares each image exactly as the
model was trained (crop, resize, normalise: from ``meta.preprocess``), computes the map for the
predicted class (or the class asked) and maps it back onto the *original* image: the heat map is
resized to the cropped square, un-padded and pasted at the brain crop's position, so the overlay
lines up with the scan the user gave. The map at the model's input size is kept too.

Methods: ``gradcam`` (default), ``gradcam++``, ``hirescam``, ``layercam``, ``eigencam``,
``scorecam``. Imports nothing from training; pytorch-grad-cam is imported on first use.

Example:
    >>> model, meta = load_checkpoint("best.safetensors")
    >>> [r] = explain(model, meta, [read_image("scan.png")])
    >>> r.predicted_class, r.heatmap.shape, r.overlay.dtype
"""
from __future__ import annotations

import contextlib
import io
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

import brainmri._compat  # noqa: F401  (before pytorch_grad_cam pulls in torchvision)
from brainmri.config import PreprocessConfig
from brainmri.data.io import as_gray_uint8
from brainmri.errors import ConfigError
from brainmri.evaluation.calibration import calibrated_probs
from brainmri.explain.methods import ALIASES, METHODS
from brainmri.explain.targets import check_layer_output, reshape_transform_for, resolve_target_layer
from brainmri.preprocess.crop import brain_bbox
from brainmri.preprocess.pipeline import pad_to_square, prepare_image, to_model_input


@dataclass
class CamResult:
    """One explained image.

    Attributes:
        heatmap: float32 (H, W) in [0, 1] at the ORIGINAL image size (zero outside the brain
            crop). For a tensor input (already a model input) H = W = the model's input size.
        overlay: uint8 (H, W, 3) RGB: the heat map (jet) blended on the original image.
        predicted_class / predicted_index / prob: the model's top class and its probability
            (temperature-scaled).
        target_class / target_index / target_prob: the class the map explains.
        probs: every class's probability.
        heatmap_prepared: float32 (S, S) map on the model's input.
        prepared: uint8 (S, S) the image the model saw.
        method: the CAM method.
    """

    heatmap: np.ndarray
    overlay: np.ndarray
    predicted_class: str
    predicted_index: int
    prob: float
    target_class: str
    target_index: int
    target_prob: float
    probs: dict[str, float] = field(default_factory=dict)
    heatmap_prepared: np.ndarray | None = None
    prepared: np.ndarray | None = None
    method: str = "gradcam"


@dataclass
class PreparedInput:
    """An image prepared for the model plus what is needed to map a map back onto it."""

    tensor: torch.Tensor  # (C, S, S) normalised model input
    prepared: np.ndarray  # (S, S) uint8 shown under the prepared-size map
    original: np.ndarray  # (H, W) uint8 shown under the original-size map
    box: tuple[int, int, int, int] | None  # brain crop (top, bottom, left, right) in the original


def normalize_method(method: str) -> str:
    """Canonical method name, or ConfigError listing the choices."""
    m = (method or "gradcam").strip().lower().replace("_", "")
    m = ALIASES.get(m, m)
    if m not in METHODS:
        raise ConfigError(f"CAM method {method!r} is not valid; choose one of: {', '.join(METHODS)}")
    return m


def resolve_class(target_class: int | str | None, class_names: Sequence[str]) -> int | None:
    """Class index from a name or index (``None`` = the predicted class)."""
    if target_class is None:
        return None
    if isinstance(target_class, str) and not target_class.lstrip("-").isdigit():
        lowered = [c.lower() for c in class_names]
        if target_class.lower() not in lowered:
            raise ConfigError(f"class {target_class!r} is not one of the model's classes: {', '.join(class_names)}")
        return lowered.index(target_class.lower())
    idx = int(target_class)
    if not 0 <= idx < len(class_names):
        raise ConfigError(f"class index {idx} is out of range for {len(class_names)} classes ({', '.join(class_names)})")
    return idx


def prepare_input(image, cfg: PreprocessConfig, name: str = "<image>") -> PreparedInput:
    """Prepare a gray image (array / PIL / 2-D tensor) or accept a ready (C, S, S) model input."""
    if isinstance(image, torch.Tensor) and image.ndim == 3:
        if image.shape[-1] != cfg.image_size or image.shape[-2] != cfg.image_size or image.shape[0] != cfg.in_chans:
            raise ConfigError(f"{name}: tensor input must be a prepared ({cfg.in_chans}, {cfg.image_size}, {cfg.image_size}) model input, got {tuple(image.shape)}")
        shown = (image[0].detach().float().cpu() * cfg.std + cfg.mean).clamp(0, 1)
        shown = (shown.numpy() * 255).round().astype(np.uint8)
        return PreparedInput(image.detach().float().cpu(), shown, shown, None)
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().numpy()
    gray = as_gray_uint8(image, name=name)
    box = None
    if cfg.crop:
        box = brain_bbox(gray, blur=cfg.crop_blur, threshold=cfg.crop_threshold, erode=cfg.crop_erode, dilate=cfg.crop_dilate, margin=cfg.crop_margin)
    prepared = prepare_image(gray, cfg)
    return PreparedInput(to_model_input(prepared, cfg), prepared, gray, box)


def map_to_original(heatmap: np.ndarray, inp: PreparedInput) -> np.ndarray:
    """Undo resize, square padding and brain crop: an (S, S) map -> (H, W) on the original."""
    import cv2

    if inp.original is inp.prepared:
        return heatmap.astype(np.float32)
    h, w = inp.original.shape
    top, bottom, left, right = inp.box if inp.box is not None else (0, h, 0, w)
    ch, cw = bottom - top, right - left
    side = pad_to_square(np.zeros((ch, cw), np.uint8)).shape[0]
    square = cv2.resize(heatmap.astype(np.float32), (side, side), interpolation=cv2.INTER_LINEAR)
    pt, pl = (side - ch) // 2, (side - cw) // 2
    out = np.zeros((h, w), dtype=np.float32)
    out[top:bottom, left:right] = square[pt : pt + ch, pl : pl + cw]
    return np.clip(out, 0.0, 1.0)


def overlay_heatmap(gray: np.ndarray, heatmap: np.ndarray, image_weight: float = 0.55) -> np.ndarray:
    """Blend a [0, 1] heat map (jet colour map) on a gray uint8 image -> RGB uint8."""
    from pytorch_grad_cam.utils.image import show_cam_on_image

    rgb = np.repeat((gray.astype(np.float32) / 255.0)[..., None], 3, axis=2)
    return show_cam_on_image(rgb, np.clip(heatmap, 0, 1).astype(np.float32), use_rgb=True, image_weight=image_weight)


def heatmap_rgb(heatmap: np.ndarray) -> np.ndarray:
    """A [0, 1] heat map as an RGB uint8 image (jet colour map, as the overlay uses)."""
    import cv2

    bgr = cv2.applyColorMap(np.uint8(np.round(255 * np.clip(heatmap, 0, 1))), cv2.COLORMAP_JET)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


_CAM_LOCK = threading.RLock()  # one class-activation map at a time per process (see cam_batch)


def _build_cam(method: str, model: nn.Module, layer: nn.Module):
    import pytorch_grad_cam

    cls = getattr(pytorch_grad_cam, METHODS[method])
    cam = cls(model=model, target_layers=[layer], reshape_transform=reshape_transform_for(model))
    if method == "scorecam":
        cam.batch_size = 32
    # gradients reach the target layer even when every parameter is frozen
    cam.compute_input_gradient = cam.uses_gradients
    return cam


def _layer_output_shape(model: nn.Module, layer: nn.Module, x: torch.Tensor) -> tuple[tuple[int, ...] | None, torch.Tensor]:
    """(shape of ``layer``'s output, logits) on one no-grad forward pass of ``x``."""
    seen: list[tuple[int, ...]] = []
    hook = layer.register_forward_hook(lambda _m, _i, o: seen.append(tuple(o.shape)) if isinstance(o, torch.Tensor) else None)
    try:
        with torch.no_grad():
            logits = model(x).float().cpu()
    finally:
        hook.remove()
    return (seen[-1] if seen else None), logits


def check_target_layer(model: nn.Module, meta, target_layer: str | None) -> nn.Module:
    """Resolve ``target_layer`` and check, on a blank input, that a CAM can be read from it.

    Raises:
        ConfigError: no such module, or its output is not a feature grid (``fc``, pooling...).
    """
    layer = resolve_target_layer(model, target_layer)
    s, c = int(meta.preprocess.image_size), int(meta.preprocess.in_chans)
    was_training = model.training
    model.eval()
    try:
        shape, _ = _layer_output_shape(model, layer, torch.zeros(1, c, s, s, device=next(model.parameters()).device))
    finally:
        model.train(was_training)
    check_layer_output(model, layer, shape)
    return layer


def cam_batch(
    model: nn.Module,
    inputs: torch.Tensor,
    method: str = "gradcam",
    target_indices: Sequence[int | None] | None = None,
    target_layer: str | nn.Module | None = None,
) -> tuple[np.ndarray, torch.Tensor]:
    """Maps for a batch of model inputs.

    Args:
        inputs: (B, C, S, S) normalised model inputs.
        target_indices: per-image class to explain (``None`` entries: the predicted class).

    Returns:
        ``(maps (B, S, S) float32 in [0, 1], logits (B, K))``.
    """
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    method = normalize_method(method)
    layer = target_layer if isinstance(target_layer, nn.Module) else resolve_target_layer(model, target_layer)
    was_training = model.training
    device = next(model.parameters()).device
    x = inputs.to(device)
    with _CAM_LOCK:  # the CAM's hooks sit on the model: two at once would read each other's activations
        cam = _build_cam(method, model, layer)
        try:
            with torch.inference_mode(False), torch.enable_grad():
                x = x.clone()
                shape, logits = _layer_output_shape(model, layer, x)
                check_layer_output(model, layer, shape)
                wanted = list(target_indices) if target_indices is not None else [None] * len(x)
                targets = [ClassifierOutputTarget(int(logits[i].argmax()) if t is None else int(t)) for i, t in enumerate(wanted)]
                quiet = contextlib.redirect_stderr(io.StringIO()) if method == "scorecam" else contextlib.nullcontext()
                with quiet:  # ScoreCAM draws a tqdm progress bar per image
                    maps = cam(input_tensor=x, targets=targets)
        finally:
            cam.activations_and_grads.release()
            model.train(was_training)
    maps = np.nan_to_num(np.asarray(maps, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    return np.clip(maps, 0.0, 1.0), logits


def explain(
    model: nn.Module,
    meta,
    images: Sequence,
    method: str = "gradcam",
    target_class: int | str | None = None,
    target_layer: str | None = None,
    batch_size: int = 8,
) -> list[CamResult]:
    """Explain each image's prediction with a class-activation map.

    Args:
        model: a brainmri model (from ``load_checkpoint``).
        meta: its ``CheckpointMeta`` (class names, preprocessing, temperature).
        images: gray images (numpy arrays of any dtype, PIL images, 2-D tensors) of any size, or
            prepared (C, S, S) model-input tensors.
        method: one of :data:`METHODS`.
        target_class: class name or index to explain; ``None`` explains the predicted class.
        target_layer: dotted module name overriding :func:`default_target_layer`.
        batch_size: images per forward/backward pass.

    Returns:
        One :class:`CamResult` per image, heat map at the original image size.
    """
    method = normalize_method(method)
    names = list(meta.class_names)
    wanted = resolve_class(target_class, names)
    layer = resolve_target_layer(model, target_layer)
    meta_calibration = getattr(meta, "calibration", None) or {"temperature": float(getattr(meta, "temperature", 1.0) or 1.0)}
    prepared = [prepare_input(img, meta.preprocess, name=f"image {i}") for i, img in enumerate(images)]
    results: list[CamResult] = []
    for start in range(0, len(prepared), max(1, batch_size)):
        chunk = prepared[start : start + batch_size]
        batch = torch.stack([p.tensor for p in chunk])
        maps, logits = cam_batch(model, batch, method, [wanted] * len(chunk), layer)
        probs = calibrated_probs(logits, meta_calibration)
        for inp, hm, pr in zip(chunk, maps, probs):
            pred = int(pr.argmax())
            tgt = pred if wanted is None else wanted
            full = map_to_original(hm, inp)
            results.append(
                CamResult(
                    heatmap=full,
                    overlay=overlay_heatmap(inp.original, full),
                    predicted_class=names[pred],
                    predicted_index=pred,
                    prob=float(pr[pred]),
                    target_class=names[tgt],
                    target_index=tgt,
                    target_prob=float(pr[tgt]),
                    probs={n: float(v) for n, v in zip(names, pr)},
                    heatmap_prepared=hm,
                    prepared=inp.prepared,
                    method=method,
                )
            )
    return results
