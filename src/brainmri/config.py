"""Typed configuration: dataclasses with defaults are the source of truth.

YAML files fill them (``load_run_config``), CLI flags override (``apply_overrides``). Every value
is validated early (``validate``) with a message naming the field and the valid choices.
Configs are plain data: they serialise to JSON for checkpoints and never evaluate code.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import types
import typing
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

from brainmri.errors import ConfigError

SPLITS = ("train", "val", "test")


@dataclass
class PreprocessConfig:
    """How a decoded image becomes a model input. Saved in every checkpoint; applied identically
    at training and prediction time."""

    image_size: int = 224  # square side in pixels after crop + resize (cubic)
    crop: bool = True  # brain crop (seed 004): blur, threshold, morphology, largest contour
    crop_blur: int = 5  # Gaussian kernel size (odd) before thresholding
    crop_threshold: int = 45  # gray level (0-255) separating brain from background
    crop_erode: int = 2  # erosion iterations to drop specks
    crop_dilate: int = 2  # dilation iterations to restore the mask
    crop_margin: float = 0.02  # margin added around the contour, as a fraction of its size
    percentile_clip: tuple[float, float] | None = (0.5, 99.5)  # per-image intensity window, or None
    mean: float = 0.5  # normalisation after scaling to [0, 1]
    std: float = 0.25
    in_chans: int = 1  # 1: grayscale into a first conv adapted to one channel; 3: replicated


@dataclass
class AugmentConfig:
    """Training-only augmentation (seed 001: rotation, shift, zoom, flip, shear; seed 004:
    sharpness) plus source-robustness levers (intensity, blur, noise, resolution, JPEG)."""

    enabled: bool = True
    rotation: float = 15.0  # degrees, uniform in [-rotation, rotation]
    shift: float = 0.1  # fraction of width / height
    zoom: float = 0.1  # scale in [1 - zoom, 1 + zoom]
    shear: float = 8.0  # degrees
    hflip: float = 0.5  # probability
    vflip: float = 0.0  # probability of an up-down flip (with hflip: 180-degree turns; position carries less)
    sharpness: float = 0.0  # probability of a random sharpness change (seed 004)
    brightness: float = 0.1  # +- fraction
    contrast: float = 0.1  # +- fraction
    gamma: float = 0.0  # +- log-gamma range (0 disables)
    blur: float = 0.0  # probability of a Gaussian blur
    noise: float = 0.0  # std of additive Gaussian noise (in [0, 1] intensity units)
    downscale: float = 0.0  # probability of down- then up-sampling (resolution augmentation)
    jpeg: float = 0.0  # probability of JPEG re-compression at quality 30-95
    intensity_curve: float = 0.0  # probability of a random smooth intensity remapping (sequence contrast)
    invert: float = 0.0  # probability, within intensity_curve, of inverting tissue contrast (T1 <-> T2-like)
    random_conv: float = 0.0  # probability of a random shallow-network contrast (GIN, preprocess.augment.RandomConvolution)
    lesion_margin: float = 0.0  # lesion centres at least this fraction of the head's size inside its outline (0.1 ~ scalp + skull)
    skull_strip: float = 0.0  # probability of stripping scalp and skull off a training scan, any class (preprocess.skullstrip)
    skull_strip_lesions: bool = True  # may a stripped healthy scan also get a synthetic lesion (false: stripped scans keep their own label)
    skull_strip_skip: list[str] | None = None  # classes never stripped (e.g. [pituitary]: a stripped sella looks like healthy skull-base anatomy)
    lesion: float = 0.0  # probability that a healthy ('notumor') training scan gets a synthetic lesion and the target "some tumor" (preprocess.lesion)


@dataclass
class DataConfig:
    """Where the images are and how they are split and labelled."""

    root: str = ""  # dataset folder (split folders, class folders, a CSV or an NPZ file)
    preset: str | None = None  # tumor4 | tumor2 | alzheimer4 (fills class_names / class_map)
    class_names: list[str] | None = None  # explicit class order; default: sorted folder names
    class_map: dict[str, str] | None = None  # merge classes, e.g. {"glioma": "tumor", ...}
    csv: str | None = None  # CSV mapping image paths to labels
    csv_path_column: str = "Image"
    csv_label_column: str = "Class"
    csv_label_names: dict[str, str] | None = None  # e.g. {"0": "notumor", "1": "tumor"}
    npz_images_key: str | None = None  # default: first of images/x/X/data
    npz_labels_key: str | None = None  # default: first of labels/y/Y/target
    split: str = "auto"  # auto (use folders, else stratified) | stratified | leak-free
    val_ratio: float = 0.1
    test_ratio: float = 0.1
    seed: int = 42
    near_duplicate_threshold: int = 24  # Hamming distance on the 256-bit pHash (see brainmri.data.audit)
    max_pixels: int = 50_000_000  # refuse larger images (decompression bombs)
    cache_dir: str | None = "auto"  # prepared-image cache: "auto" (~/.cache/brainmri or $BRAINMRI_CACHE), a folder, or None
    balanced_sampler: bool = False
    class_weights: str | None = "balanced"  # balanced | effective (balanced over the labels the loss sees: healthy scans given synthetic lesions count as tumor) | None
    extra_train: list[str] | None = None  # training-only tumor-presence sources: "PATH" (yes/no folders) or "PATH=notumor|tumor" (brainmri.data.presence)
    extra_max_per_source: int | None = None  # at most this many images from each extra source (seeded pick)
    extra_repeat: int = 1  # each extra image this many times per epoch (a small tumor source among thousands of scans)
    extra_lesions: bool = True  # paste augment.lesion's synthetic lesions into extra healthy scans too (false: only into the main set's)


@dataclass
class ModelConfig:
    """Which network. Any timm name passes through; see brainmri.models for the named zoo."""

    name: str = "resnet18"
    pretrained: bool = False  # ImageNet weights through timm's hub (needs internet)
    pretrained_weights: str | None = None  # local safetensors / state-dict file instead of the hub
    head: str = "linear"  # linear | mlp (seed 001: global pool -> dense -> dropout -> output)
    head_hidden: int = 256
    drop_rate: float = 0.2


@dataclass
class TrainConfig:
    """Training recipe: two-phase fine-tuning (seeds 000/001), optimiser, schedule, stopping."""

    epochs: int = 10  # phase-2 (or single-phase) epochs
    head_epochs: int = 0  # phase 1: head only on a frozen backbone (0 skips the phase)
    unfreeze: str = "all"  # phase 2: "all" or the number of last backbone blocks to unfreeze
    lr: float = 1e-3
    head_lr: float = 1e-3
    optimizer: str = "adamw"  # adam | adamw
    weight_decay: float = 1e-4
    schedule: str = "cosine"  # cosine (with warmup) | plateau | none
    warmup_epochs: float = 0.5
    label_smoothing: float = 0.0
    ema_decay: float = 0.0  # > 0: validate and save an exponential moving average of the weights (0 disables)
    batch_size: int = 32
    num_workers: int = 0
    early_stopping_patience: int = 0  # 0 disables
    monitor: str = "val_macro_f1"  # val_loss | val_acc | val_macro_f1
    precision: str = "auto"  # auto | 32 | bf16-mixed | 16-mixed
    channels_last: bool = True
    devices: str = "auto"
    num_nodes: int = 1
    strategy: str = "auto"  # auto | ddp | ddp_spawn | ...
    accelerator: str = "auto"
    seed: int = 42
    deterministic: bool = False
    output_dir: str = "runs"
    run_name: str | None = None
    max_train_batches: float | int | None = None  # limit per epoch (debug / smoke runs)


@dataclass
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


# ----------------------------------------------------------------------------------------------
# (de)serialisation


def to_dict(cfg: Any) -> Any:
    """Dataclass (nested) -> plain JSON-able dict."""
    if is_dataclass(cfg):
        return {f.name: to_dict(getattr(cfg, f.name)) for f in fields(cfg)}
    if isinstance(cfg, (list, tuple)):
        return [to_dict(v) for v in cfg]
    if isinstance(cfg, dict):
        return {str(k): to_dict(v) for k, v in cfg.items()}
    return cfg


def from_dict(cls: type, data: dict[str, Any] | None, where: str = "") -> Any:
    """Build dataclass ``cls`` from a dict, refusing unknown keys with a clear message."""
    data = dict(data or {})
    known = {f.name: f for f in fields(cls)}
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(
            f"unknown config field(s) {', '.join(where + k for k in unknown)}; "
            f"valid fields{' of ' + where.rstrip('.') if where else ''}: {', '.join(known)}"
        )
    kwargs = {}
    for name, f in known.items():
        if name not in data:
            continue
        value = data[name]
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if is_dataclass(default):  # a section: a mapping of its fields (an empty `train:` is the defaults)
            if value is not None and not isinstance(value, dict):
                raise ConfigError(f"{where}{name}={value!r} must be a mapping of {where}{name}.* fields "
                                  f"({', '.join(g.name for g in fields(default))})")
            value = from_dict(type(default), value or {}, where=f"{where}{name}.")
        else:
            value = _coerce(value, hints[name], where + name)
        kwargs[name] = value
    return cls(**kwargs)


def _coerce(value: Any, hint: Any, name: str) -> Any:
    """``value`` as the field type ``hint`` wants it, or ConfigError naming the field: YAML gives
    ``epochs: many`` a string and ``extra_lesions: maybe`` a (truthy) string; neither may pass.
    Numbers written for text fields (``devices: 2``, ``precision: 32``) become text."""
    args = [a for a in typing.get_args(hint) if a is not type(None)] if isinstance(hint, types.UnionType) else [hint]
    if value is None:
        if len(args) < len(typing.get_args(hint)):
            return None
        raise ConfigError(f"{name} must not be empty (null)")
    for want in args:
        origin = typing.get_origin(want) or want
        if origin is bool:
            if isinstance(value, bool):
                return value
        elif origin is int:
            if isinstance(value, int) and not isinstance(value, bool):
                return value
            if isinstance(value, float) and value.is_integer() and float not in args:
                return int(value)  # epochs: 10.0
        elif origin is float:
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return value if int in args and isinstance(value, int) else float(value)
            if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
                return float(value)  # YAML 1.1 reads `lr: 1e-3` (no dot) as text; the user wrote a number
        elif origin is str:
            if isinstance(value, str):
                return value
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return str(value)
        elif origin is list:
            if isinstance(value, str):
                value = [value]
            if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
                return list(value)
        elif origin is dict:
            if isinstance(value, dict):
                return {str(k): str(v) for k, v in value.items()}
        elif origin is tuple:
            n = len(typing.get_args(want))
            if isinstance(value, (list, tuple)) and len(value) == n and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
                return tuple(float(v) for v in value)
    kinds = " or ".join(_type_name(a) for a in args) + (" or null" if len(args) < len(typing.get_args(hint)) else "")
    raise ConfigError(f"{name}={value!r} must be {kinds}")


_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def _type_name(hint: Any) -> str:
    origin = typing.get_origin(hint) or hint
    return {bool: "true/false", int: "a whole number", float: "a number", str: "text", list: "a list of text",
            dict: "a mapping", tuple: f"a list of {len(typing.get_args(hint))} numbers"}.get(origin, str(hint))


def load_run_config(path: str | Path | None = None, data: dict | None = None) -> RunConfig:
    """RunConfig from a YAML file (or a dict), defaults filling the rest."""
    if path is not None:
        import yaml

        p = Path(path).expanduser()
        if p.is_dir():
            raise ConfigError(f"{p}: a folder; --config takes a YAML file (e.g. configs/tumor4_resnet18.yaml)")
        if not p.is_file():
            raise ConfigError(f"{p}: config file not found")
        try:
            data = yaml.load(p.read_text(encoding="utf-8"), Loader=_unique_keys_loader()) or {}
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{p}: not a text file (byte {exc.start} is not UTF-8); a config is YAML text") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{p}: not valid YAML ({_yaml_problem(exc)})") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{p}: expected a mapping with sections data/preprocess/augment/model/train")
        _check_keys(data, p)
    try:
        cfg = from_dict(RunConfig, data or {})
        validate(cfg)
    except ConfigError as exc:  # a field's error names the field; say which file holds it
        if path is None or str(path) in str(exc):
            raise
        raise ConfigError(f"{path}: {exc}") from None
    return cfg


def _unique_keys_loader():
    """PyYAML's safe loader, refusing a key given twice in one mapping (the last one used to win
    silently: ``train: {epochs: 1}`` then ``train: {epochs: 3}``)."""
    import yaml

    class UniqueKeyLoader(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            seen = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                if key in seen:
                    raise yaml.constructor.ConstructorError(None, None, f"key {key!r} is given twice", key_node.start_mark)
                seen.add(key)
            return super().construct_mapping(node, deep=deep)

    return UniqueKeyLoader


def _yaml_problem(exc: Exception) -> str:
    """One line: where (line, column) and what, from PyYAML's multi-line message."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or getattr(exc, "context", None)
    if mark is not None and problem:
        return f"line {mark.line + 1}, column {mark.column + 1}: {problem}"
    return " ".join(str(exc).split())[:200]


def _check_keys(data: dict, path: Path, where: str = "") -> None:
    """Every key of the config and of its sections is text (``1: 2`` is a typo, not a field)."""
    for key, value in data.items():
        if not isinstance(key, str):
            raise ConfigError(f"{path}: {where}{key!r} is not a field name (keys are text, e.g. train:, epochs:)")
        if isinstance(value, dict) and not where:
            _check_keys(value, path, where=f"{key}.")


def apply_overrides(cfg: Any, overrides: dict[str, Any]) -> Any:
    """Set dotted fields (``{"train.lr": 1e-4}``); ``None`` values are ignored (flag not given)."""
    for key, value in overrides.items():
        if value is None:
            continue
        target = cfg
        parts = key.split(".")
        for part in parts[:-1]:
            target = getattr(target, part)
        if not hasattr(target, parts[-1]):
            raise ConfigError(f"unknown config field {key}")
        setattr(target, parts[-1], value)
    return cfg


def apply_data_options(cfg: "DataConfig", options: dict[str, Any] | None) -> "DataConfig":
    """Set ``{field: value}`` on a DataConfig (e.g. the labels-file flags: ``csv_path_column``...);
    returns it."""
    for field_name, value in (options or {}).items():
        if not hasattr(cfg, field_name):
            raise ConfigError(f"unknown config field data.{field_name}")
        setattr(cfg, field_name, value)
    return cfg


def _choice(value: Any, name: str, choices: tuple) -> None:
    if value not in choices:  # None is written null in YAML
        raise ConfigError(f"{name}={value!r} is not valid; choose one of: {', '.join('null' if c is None else str(c) for c in choices)}")


def _positive_finite(value: float, name: str) -> None:
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(f"{name}={value} must be a finite number > 0")


# Lightning accelerators brainmri can train on; availability is checked at run time
# (brainmri.training.preflight), not here: a GPU run's config stays readable on a CPU machine.
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")
# brainmri.models' own CNNs (CUSTOM_MODELS there), which have no ImageNet weights
FROM_SCRATCH_MODELS = ("seed002_cnn", "seed003_cnn")


def expand_user_paths(cfg: RunConfig) -> RunConfig:
    """``~`` at the start of a path field (a YAML config, ``--flag=~/x``) means the home folder, as
    in a shell, not a folder named ``~`` in the working folder. Changes ``cfg`` in place."""
    d = cfg.data
    for obj, name in ((d, "root"), (d, "csv"), (d, "cache_dir"), (cfg.model, "pretrained_weights"), (cfg.train, "output_dir")):
        v = getattr(obj, name)
        if isinstance(v, str) and v.startswith("~"):
            setattr(obj, name, os.path.expanduser(v))
    if d.extra_train:
        d.extra_train = [os.path.expanduser(s) if isinstance(s, str) and s.startswith("~") else s for s in d.extra_train]
    return cfg


def validate(cfg: RunConfig) -> RunConfig:
    """Check values early; raise ConfigError naming the field and the valid choices. Expands a
    leading ``~`` in path fields (:func:`expand_user_paths`)."""
    expand_user_paths(cfg)
    p, d, t, m = cfg.preprocess, cfg.data, cfg.train, cfg.model
    if not (16 <= int(p.image_size) <= 1024):
        raise ConfigError(f"preprocess.image_size={p.image_size} must be between 16 and 1024")
    _choice(p.in_chans, "preprocess.in_chans", (1, 3))
    if p.percentile_clip is not None:
        lo, hi = p.percentile_clip
        if not (0 <= lo < hi <= 100):
            raise ConfigError(f"preprocess.percentile_clip={p.percentile_clip} must satisfy 0 <= low < high <= 100")
    if not (math.isfinite(p.std) and p.std > 0):
        raise ConfigError(f"preprocess.std={p.std} must be a finite number > 0")
    if not math.isfinite(p.mean):
        raise ConfigError(f"preprocess.mean={p.mean} must be a finite number")
    for name in ("crop_margin", "crop_blur"):
        v = getattr(p, name)
        if not (math.isfinite(v) and v >= 0):
            raise ConfigError(f"preprocess.{name}={v} must be a finite number >= 0")
    for name in ("crop_erode", "crop_dilate"):
        v = getattr(p, name)
        if not (isinstance(v, int) and 0 <= v <= 100):
            raise ConfigError(f"preprocess.{name}={v} must be a whole number of iterations in [0, 100]")
    if not (0 <= p.crop_threshold <= 255):
        raise ConfigError(f"preprocess.crop_threshold={p.crop_threshold} must be a gray level in [0, 255]")
    _choice(d.split, "data.split", ("auto", "stratified", "leak-free"))
    if d.preset is not None:
        _choice(d.preset, "data.preset", ("tumor4", "tumor2", "alzheimer4"))
    for name in ("val_ratio", "test_ratio"):
        v = getattr(d, name)
        if not (0 <= v < 1):
            raise ConfigError(f"data.{name}={v} must be in [0, 1)")
    if d.val_ratio == 0:  # it used to become 0.1 without a word
        raise ConfigError("data.val_ratio=0: training needs a validation split (to choose the best epoch and fit the calibration); "
                          "give a fraction in (0, 1), e.g. 0.1")
    if d.val_ratio + d.test_ratio >= 1:
        raise ConfigError("data.val_ratio + data.test_ratio must be < 1")
    _choice(d.class_weights, "data.class_weights", ("balanced", "effective", None))
    a = cfg.augment
    for name in ("hflip", "vflip", "sharpness", "blur", "downscale", "jpeg", "intensity_curve", "invert", "random_conv", "lesion", "lesion_margin", "skull_strip"):
        v = getattr(a, name)
        if not (0 <= v <= 1):
            raise ConfigError(f"augment.{name}={v} is a probability and must be in [0, 1]")
    for name, low, high in (("rotation", 0, 180), ("shear", 0, 45), ("shift", 0, 1), ("zoom", 0, 0.99), ("brightness", 0, 1),
                            ("contrast", 0, 1), ("gamma", 0, 3), ("noise", 0, 1)):
        v = getattr(a, name)
        if not (math.isfinite(v) and low <= v <= high):
            raise ConfigError(f"augment.{name}={v} must be in [{low}, {high}]")
    _choice(m.head, "model.head", ("linear", "mlp"))
    if m.head_hidden < 1:
        raise ConfigError(f"model.head_hidden={m.head_hidden} must be >= 1 (units of the mlp head's hidden layer)")
    for name, v in (("train.seed", t.seed), ("data.seed", d.seed)):
        if not (0 <= v < 2**32):
            raise ConfigError(f"{name}={v} must be in [0, 2**32 - 1]")
    if d.max_pixels < 1:
        raise ConfigError(f"data.max_pixels={d.max_pixels} must be >= 1 (the largest image, in pixels, read before it is refused)")
    if not (0 <= d.near_duplicate_threshold <= 256):
        raise ConfigError(f"data.near_duplicate_threshold={d.near_duplicate_threshold} must be a Hamming distance in [0, 256] "
                          "(bits of the 256-bit pHash; 24 is the audit's default)")
    if d.extra_max_per_source is not None and d.extra_max_per_source < 1:
        raise ConfigError(f"data.extra_max_per_source={d.extra_max_per_source} must be >= 1 (or unset for every image)")
    _choice(t.optimizer, "train.optimizer", ("adam", "adamw"))
    _choice(t.schedule, "train.schedule", ("cosine", "plateau", "none"))
    if t.run_name is not None and (not str(t.run_name).strip() or Path(str(t.run_name)).name != str(t.run_name) or str(t.run_name) in (".", "..")):
        raise ConfigError(f"train.run_name={t.run_name!r} must be a plain folder name (no '/' or '..'); the run goes into train.output_dir")
    _choice(t.monitor, "train.monitor", ("val_loss", "val_acc", "val_macro_f1"))
    _choice(t.precision, "train.precision", ("auto", "32", "32-true", "bf16-mixed", "16-mixed"))
    for name in ("epochs", "head_epochs"):
        if getattr(t, name) < 0:
            raise ConfigError(f"train.{name}={getattr(t, name)} must be >= 0 epochs")
    if (t.epochs + t.head_epochs) == 0:
        raise ConfigError("train.epochs + train.head_epochs must be > 0")
    if t.batch_size < 1:
        raise ConfigError("train.batch_size must be >= 1")
    _positive_finite(t.lr, "train.lr")
    _positive_finite(t.head_lr, "train.head_lr")
    for name, v in (("weight_decay", t.weight_decay), ("warmup_epochs", t.warmup_epochs)):
        if not (math.isfinite(v) and v >= 0):
            raise ConfigError(f"train.{name}={v} must be a finite number >= 0")
    if not (0 <= t.label_smoothing < 1):
        raise ConfigError(f"train.label_smoothing={t.label_smoothing} must be in [0, 1)")
    if not (0 <= t.ema_decay < 1):
        raise ConfigError(f"train.ema_decay={t.ema_decay} must be in [0, 1) (0 disables the weight average; 0.998 averages over ~500 steps)")
    if t.num_workers < 0:
        raise ConfigError(f"train.num_workers={t.num_workers} must be >= 0 (0 loads data in the training process)")
    if t.early_stopping_patience < 0:
        raise ConfigError(f"train.early_stopping_patience={t.early_stopping_patience} must be >= 0 epochs (0 disables early stopping)")
    mtb = t.max_train_batches
    if isinstance(mtb, int) and mtb < 1:
        raise ConfigError(f"train.max_train_batches={mtb} must be >= 1 batches (or a fraction in (0, 1], or unset for all)")
    if isinstance(mtb, float) and not (0 < mtb <= 1):
        raise ConfigError(f"train.max_train_batches={mtb} must be a whole number of batches >= 1 or a fraction in (0, 1]")
    if t.num_nodes < 1:
        raise ConfigError(f"train.num_nodes={t.num_nodes} must be >= 1")
    if t.devices != "auto" and not (t.devices.isdigit() and int(t.devices) >= 1):
        raise ConfigError(f"train.devices={t.devices!r} must be 'auto' or a whole number >= 1")
    _choice(t.accelerator, "train.accelerator", ACCELERATORS)
    if not (0 <= m.drop_rate < 1):
        raise ConfigError(f"model.drop_rate={m.drop_rate} must be in [0, 1)")
    if m.pretrained and m.pretrained_weights:  # the file would be used while the checkpoint said "ImageNet weights"
        raise ConfigError(f"model.pretrained=true and model.pretrained_weights={m.pretrained_weights!r}: give one; the file is "
                          "local weights, --pretrained downloads ImageNet weights from the hub")
    if m.name in FROM_SCRATCH_MODELS and (m.pretrained or m.pretrained_weights):
        given = f"model.pretrained_weights={m.pretrained_weights!r}" if m.pretrained_weights else "model.pretrained=true"
        raise ConfigError(f"{given}: model {m.name} is a from-scratch CNN and takes no pretrained weights; "
                          f"drop the weights or pick a timm backbone (e.g. resnet18, densenet121)")
    if t.unfreeze != "all":
        try:
            if int(t.unfreeze) < 0:
                raise ValueError
        except ValueError:
            raise ConfigError(f"train.unfreeze={t.unfreeze!r} must be 'all' or a block count >= 0") from None
    return cfg


def config_hash(cfg: Any) -> str:
    """Stable short hash of a config (for cache keys and run fingerprints)."""
    import hashlib

    blob = json.dumps(to_dict(cfg), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
