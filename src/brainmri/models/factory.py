"""``create_model``: every architecture the seeds used, behind timm's model interface.

Grayscale MRI meets 3-channel backbones in one of two ways, chosen by ``in_chans``
(``PreprocessConfig.in_chans``):

* ``in_chans=1`` (default): timm adapts the first convolution to one channel; with pretrained
  weights it sums the RGB filters (``timm.models.adapt_input_conv``), which is exactly equivalent
  to feeding the gray image replicated three times, at a third of the first layer's cost.
* ``in_chans=3``: the preprocessing replicates the gray channel three times.
"""
from __future__ import annotations

import contextlib
import json
import logging
from pathlib import Path

import brainmri._compat  # noqa: F401
import timm
import torch
from torch import nn

from brainmri.errors import CheckpointError, ConfigError
from brainmri.models.cnn import seed002_cnn, seed003_cnn
from brainmri.models.zoo import MODEL_ZOO, default_image_size  # noqa: F401  (re-exported)

log = logging.getLogger(__name__)

CUSTOM_MODELS = {"seed003_cnn": seed003_cnn, "seed002_cnn": seed002_cnn}


class MLPHead(nn.Module):
    """Seed 001's head: global average pooling -> dense -> dropout -> output (the pooling is the
    backbone's own ``forward_head(pre_logits=True)``)."""

    def __init__(self, in_features: int, hidden: int, num_classes: int, drop_rate: float):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden)
        self.act = nn.ReLU(inplace=True)
        self.drop = nn.Dropout(drop_rate)
        self.fc = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.drop(self.act(self.fc1(x))))


def load_pretrained_weights(model: nn.Module, path: str | Path) -> nn.Module:
    """Load ImageNet-style backbone weights from a local safetensors or state-dict file.

    The classifier is skipped (it never matches the class count) and a 3-channel first conv is
    adapted to the model's input channels. State-dict files are loaded with
    ``torch.load(weights_only=True)``: never an arbitrary pickle.
    """
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"{p}: pretrained weights file not found")
    try:
        if p.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(p))
        else:
            state = torch.load(str(p), map_location="cpu", weights_only=True)
            if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
                state = state["state_dict"]
    except Exception as exc:  # noqa: BLE001 - any parse failure is the file's fault
        from brainmri.inference.sniff import sniff_file

        kind = sniff_file(p)
        if kind is not None:  # an image or volume given as weights
            raise CheckpointError(f"{p}: is a {kind.upper()} file, not a weights file (safetensors or a torch state dict)") from None
        first = (str(exc).strip().splitlines() or [""])[0][:200]  # torch's unpickling errors run to many lines of advice
        if "Weights only load failed" in first:
            first = "it holds Python objects besides tensors; brainmri loads tensors only (never an arbitrary pickle)"
        raise CheckpointError(f"{p}: not a readable safetensors / state-dict file ({type(exc).__name__}: {first})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{p}: expected a mapping of parameter names to tensors")
    bad = next((k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()), None)
    if bad is not None:  # it would train as a "diverged" run blamed on the learning rate
        raise CheckpointError(f"{p}: tensor {bad} holds NaN or infinite values; these weights are broken")
    own = model.state_dict()
    first_conv = getattr(model, "pretrained_cfg", {}).get("first_conv")
    adapted = {}
    for k, v in state.items():
        k = k.removeprefix("module.").removeprefix("model.")
        if k not in own:
            continue
        if own[k].shape != v.shape and v.ndim == 4 and own[k].shape[1] != v.shape[1] and own[k].shape[0] == v.shape[0]:
            v = timm.models.adapt_input_conv(own[k].shape[1], v)
        if own[k].shape == v.shape:
            adapted[k] = v
    classifier_keys = {k for k in own if k.startswith(_classifier_prefix(model))}
    backbone = [k for k in own if k not in classifier_keys and not k.endswith("num_batches_tracked")]
    missing = [k for k in backbone if k not in adapted]
    matched = len(backbone) - len(missing)
    trained_as = _brainmri_model_name(p)
    arch = getattr(model, "default_cfg", {}).get("architecture") or type(model).__name__
    if trained_as is not None and model_name_of(model) not in (None, trained_as):
        raise CheckpointError(f"{p}: is a brainmri checkpoint of {trained_as}, not of {model_name_of(model)}; give weights of the same "
                              "architecture (or train that model)")
    if backbone and matched < len(backbone) / 2:  # the classifier alone (it never fits anyway) must not pass for pretraining
        raise CheckpointError(f"{p}: only {matched} of this model's {len(backbone)} backbone tensors are in the weights file "
                              f"(e.g. {missing[0]} is not); wrong file for {arch}?")
    if missing:
        log.warning("%s: %d backbone tensors not found in the weights file (e.g. %s)", p, len(missing), missing[0])
    unused = [k for k in state if k.removeprefix("module.").removeprefix("model.") not in own]
    if len(unused) > max(2, len(state) // 20):
        log.warning("%s: %d of its %d tensors are not part of %s (e.g. %s): weights of another architecture? only the matching "
                    "ones are used", p, len(unused), len(state), arch, unused[0])
    model.load_state_dict(adapted, strict=False)
    log.info("loaded %d pretrained tensors from %s (first conv: %s)", len(adapted), p, first_conv)
    return model


HUB_HOST = ("huggingface.co", 443)


@contextlib.contextmanager
def _offline_unless_hub_reachable(timeout: float = 3.0):
    """Without a route to the hub (and no proxy to reach it through), look only in the local
    weights cache: a download would retry for about a minute before failing. Weights already
    cached still load; the caller's error message says what to do otherwise."""
    import os
    import socket

    proxied = any(os.environ.get(k) for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"))
    try:
        import huggingface_hub.constants as hub
    except ImportError:
        yield
        return
    reachable = True
    if not proxied and not hub.HF_HUB_OFFLINE:
        try:
            socket.create_connection(HUB_HOST, timeout=timeout).close()
        except OSError:
            reachable = False
    before = hub.HF_HUB_OFFLINE
    hub.HF_HUB_OFFLINE = before or not reachable
    try:
        yield
    finally:
        hub.HF_HUB_OFFLINE = before


def _brainmri_model_name(path: Path) -> str | None:
    """The model name a brainmri checkpoint records in its metadata (``None`` for other files)."""
    if path.suffix != ".safetensors":
        return None
    try:
        from safetensors import safe_open

        from brainmri.checkpoint import META_KEY

        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {}).get(META_KEY) or "{}")
        return (meta.get("model") or {}).get("name")
    except Exception:  # noqa: BLE001 - no readable brainmri metadata: a plain weights file
        return None


def model_name_of(model: nn.Module) -> str | None:
    """The brainmri / timm name ``model`` was built under (``create_model`` records it)."""
    return getattr(model, "brainmri_name", None)


def _classifier_prefix(model: nn.Module) -> str:
    for name, module in model.named_modules():
        if module is model.get_classifier():
            return name
    return "fc"


def create_model(
    name: str,
    num_classes: int,
    in_chans: int = 1,
    pretrained: bool = False,
    pretrained_weights: str | None = None,
    head: str = "linear",
    head_hidden: int = 256,
    drop_rate: float = 0.2,
    image_size: int | None = None,
) -> nn.Module:
    """Build a classifier.

    Args:
        name: a zoo name (see ``MODEL_ZOO``) or any timm model name.
        num_classes: outputs.
        in_chans: 1 (gray, first conv adapted) or 3 (gray replicated by preprocessing).
        pretrained: ImageNet weights through timm's hub; needs internet.
        pretrained_weights: local weights file (safetensors or state dict), works offline.
        head: ``linear`` or ``mlp`` (seed 001: pool -> dense -> dropout -> out).
        image_size: input size, for models that need it (ViT position embeddings).

    Returns:
        A module with timm's interface (``forward_features``, ``forward_head``,
        ``get_classifier``, ``reset_classifier``).
    """
    if name in CUSTOM_MODELS:
        if pretrained or pretrained_weights:
            raise ConfigError(f"model {name} is a from-scratch CNN; it has no pretrained weights")
        model = CUSTOM_MODELS[name](num_classes=num_classes, in_chans=in_chans, drop_rate=drop_rate)
    else:
        if not timm.is_model(name):
            close = [m for m in MODEL_ZOO if name.split("_")[0] in m]
            raise ConfigError(f"model.name={name!r} is not a brainmri or timm model; zoo: {', '.join(MODEL_ZOO)}" + (f" (did you mean {close[0]}?)" if close else ""))
        kwargs = {"num_classes": num_classes, "in_chans": in_chans, "drop_rate": drop_rate}
        if image_size and ("vit" in name or "deit" in name or "swin" in name):
            kwargs["img_size"] = image_size
        if pretrained and not pretrained_weights:
            try:
                with _offline_unless_hub_reachable():
                    model = timm.create_model(name, pretrained=True, **kwargs)
            except Exception as exc:  # noqa: BLE001 - hub/network failures come in many types
                raise CheckpointError(
                    f"could not download ImageNet weights for {name} (no internet or hub unreachable: "
                    f"{type(exc).__name__}). Pass a local file with --pretrained-weights FILE, or train from scratch without --pretrained."
                ) from None
        else:
            model = timm.create_model(name, pretrained=False, **kwargs)
            model.brainmri_name = name
            if pretrained_weights:
                load_pretrained_weights(model, pretrained_weights)
    if head == "mlp":
        model = _with_mlp_head(model, num_classes, head_hidden, drop_rate)
    return model


def _with_mlp_head(model: nn.Module, num_classes: int, hidden: int, drop_rate: float) -> nn.Module:
    in_features = model.num_features if hasattr(model, "num_features") else model.get_classifier().in_features
    mlp = MLPHead(in_features, hidden, num_classes, drop_rate)
    # Replace the linear classifier with the MLP in place, keeping timm's interface intact.
    for name, module in model.named_modules():
        if module is model.get_classifier() and name:
            parent = model.get_submodule(name.rsplit(".", 1)[0]) if "." in name else model
            setattr(parent, name.rsplit(".", 1)[-1], mlp)
            return model
    raise ConfigError(f"cannot attach an mlp head to {type(model).__name__}")
