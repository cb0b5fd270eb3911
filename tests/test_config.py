"""Config: YAML loading, unknown fields, validation messages that name the field, overrides."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from brainmri.config import (
    DataConfig,
    RunConfig,
    apply_overrides,
    config_hash,
    from_dict,
    load_run_config,
    to_dict,
    validate,
)
from brainmri.data.presets import PRESETS, get_preset, resolve_classes
from brainmri.errors import ConfigError


def test_defaults_validate_and_round_trip_through_json() -> None:
    cfg = validate(RunConfig())
    data = json.loads(json.dumps(to_dict(cfg)))
    again = from_dict(RunConfig, data)
    assert to_dict(again) == to_dict(cfg)
    assert again.preprocess.percentile_clip == cfg.preprocess.percentile_clip  # tuple restored
    assert config_hash(again) == config_hash(cfg)


def test_yaml_fills_sections_and_defaults_fill_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("data:\n  root: /data\n  preset: tumor2\ntrain:\n  lr: 0.0003\n  epochs: 3\n")
    cfg = load_run_config(path)
    assert cfg.data.root == "/data" and cfg.data.preset == "tumor2"
    assert cfg.train.lr == pytest.approx(3e-4) and cfg.train.epochs == 3
    assert cfg.model.name == RunConfig().model.name


def test_hash_changes_with_content() -> None:
    a, b = RunConfig(), RunConfig()
    b.preprocess.image_size = 128
    assert config_hash(a) != config_hash(b) and len(config_hash(a)) == 16


@pytest.mark.parametrize(
    "text,match",
    [
        ("data:\n  roots: x\n", "data.roots"),
        ("bogus: 1\n", "bogus"),
        ("data: [1, 2\n", "not valid YAML"),
        ("- a\n- b\n", "expected a mapping"),
        ("train: [epochs: 1\n", r"^[^\n]*bad\.yaml: not valid YAML \(line 2, column 1: expected ',' or '\]', but got '<stream end>'\)$"),
        ("1: 2\n", r"bad\.yaml: 1 is not a field name"),
        ("train:\n  epochs: 1\ntrain:\n  epochs: 3\n", r"bad\.yaml: not valid YAML \(line 3, column 1: key 'train' is given twice\)"),
        ("train:\n  1: 2\n", r"bad\.yaml: train\.1 is not a field name"),
    ],
)
def test_bad_yaml_is_named(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_run_config(path)


def test_pretrained_and_a_weights_file_together_are_refused() -> None:
    cfg = RunConfig()
    cfg.model.pretrained, cfg.model.pretrained_weights = True, "w.safetensors"
    with pytest.raises(ConfigError, match=r"model\.pretrained=true and model\.pretrained_weights='w\.safetensors': give one"):
        validate(cfg)


def test_a_config_that_is_not_text_is_named(tmp_path: Path) -> None:
    path = tmp_path / "bin.yaml"
    path.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(ConfigError, match=r"bin\.yaml: not a text file \(byte 0 is not UTF-8\)"):
        load_run_config(path)


def test_a_number_yaml_reads_as_text_is_taken_as_the_number(tmp_path: Path) -> None:
    path = tmp_path / "lr.yaml"
    path.write_text("train:\n  lr: 1e-3\n  warmup_epochs: 1e0\n")  # YAML 1.1: no dot, so text
    cfg = load_run_config(path)
    assert cfg.train.lr == 0.001 and cfg.train.warmup_epochs == 1.0
    with pytest.raises(ConfigError, match=r"train\.lr='1e-3x' must be a number"):
        load_run_config(data={"train": {"lr": "1e-3x"}})


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_run_config(tmp_path / "none.yaml")


def test_unknown_field_lists_valid_fields() -> None:
    with pytest.raises(ConfigError, match=r"model\.nmae.*valid fields of model: name"):
        from_dict(RunConfig, {"model": {"nmae": "x"}})


@pytest.mark.parametrize(
    "section,field,value,match",
    [
        ("preprocess", "image_size", 8, "preprocess.image_size=8"),
        ("preprocess", "in_chans", 2, r"preprocess\.in_chans=2 .*choose one of: 1, 3"),
        ("preprocess", "percentile_clip", (90.0, 10.0), "preprocess.percentile_clip"),
        ("preprocess", "std", 0.0, "preprocess.std"),
        ("data", "split", "random", r"data\.split='random' .*auto, stratified, leak-free"),
        ("data", "preset", "tumor3", r"data\.preset='tumor3' .*tumor4, tumor2, alzheimer4"),
        ("data", "val_ratio", 1.5, "data.val_ratio=1.5"),
        ("data", "class_weights", "inverse", "data.class_weights"),
        ("model", "head", "deep", r"model\.head='deep'.*linear, mlp"),
        ("train", "optimizer", "sgd", r"train\.optimizer='sgd'.*adam, adamw"),
        ("train", "schedule", "step", "train.schedule"),
        ("train", "monitor", "loss", "train.monitor"),
        ("train", "precision", "8", "train.precision"),
        ("train", "batch_size", 0, "train.batch_size"),
        ("train", "unfreeze", "some", "train.unfreeze"),
        ("train", "lr", -0.1, r"train\.lr=-0\.1 must be a finite number > 0"),
        ("train", "lr", 0.0, r"train\.lr=0\.0 must be a finite number > 0"),
        ("train", "lr", float("nan"), r"train\.lr=nan must be a finite number > 0"),
        ("train", "lr", float("inf"), r"train\.lr=inf must be a finite number > 0"),
        ("train", "head_lr", -1.0, r"train\.head_lr=-1\.0 must be a finite number > 0"),
        ("train", "weight_decay", -1.0, r"train\.weight_decay=-1\.0 must be a finite number >= 0"),
        ("train", "weight_decay", float("nan"), r"train\.weight_decay=nan must be a finite number >= 0"),
        ("train", "warmup_epochs", -0.5, r"train\.warmup_epochs=-0\.5"),
        ("train", "label_smoothing", 2.0, r"train\.label_smoothing=2\.0 must be in \[0, 1\)"),
        ("train", "label_smoothing", 1.0, r"train\.label_smoothing=1\.0 must be in \[0, 1\)"),
        ("train", "label_smoothing", -0.1, r"train\.label_smoothing=-0\.1"),
        ("train", "num_workers", -1, r"train\.num_workers=-1 must be >= 0"),
        ("train", "early_stopping_patience", -3, r"train\.early_stopping_patience=-3 must be >= 0 epochs \(0 disables"),
        ("train", "max_train_batches", 0, r"train\.max_train_batches=0 must be >= 1"),
        ("train", "max_train_batches", -2, r"train\.max_train_batches=-2 must be >= 1"),
        ("train", "max_train_batches", 1.5, r"train\.max_train_batches=1\.5 .*fraction in \(0, 1\]"),
        ("train", "max_train_batches", 0.0, r"train\.max_train_batches=0\.0"),
        ("train", "devices", "0,1", r"train\.devices='0,1' must be 'auto' or a whole number >= 1"),
        ("train", "devices", "0", r"train\.devices='0'"),
        ("train", "num_nodes", 0, r"train\.num_nodes=0 must be >= 1"),
        ("train", "accelerator", "tpu2", r"train\.accelerator='tpu2' .*choose one of: auto, cpu, gpu"),
        ("model", "drop_rate", 1.0, r"model\.drop_rate=1\.0 must be in \[0, 1\)"),
        ("train", "run_name", "../escape", r"train\.run_name='\.\./escape' must be a plain folder name"),
        ("train", "run_name", "a/b", r"train\.run_name='a/b' must be a plain folder name"),
        ("train", "run_name", "..", r"train\.run_name='\.\.' must be a plain folder name"),
        ("preprocess", "std", float("inf"), r"preprocess\.std=inf must be a finite number > 0"),  # made every input 0: a constant model
        ("preprocess", "mean", float("nan"), r"preprocess\.mean=nan must be a finite number"),
        ("preprocess", "crop_threshold", 999, r"preprocess\.crop_threshold=999 must be a gray level"),
        ("model", "head_hidden", 0, r"model\.head_hidden=0 must be >= 1"),
        ("train", "seed", -1, r"train\.seed=-1 must be in \[0, 2\*\*32 - 1\]"),
        ("data", "seed", 2**32, r"data\.seed=4294967296"),
        ("augment", "brightness", -3.0, r"augment\.brightness=-3\.0 must be in \[0, 1\]"),
        ("augment", "shift", 3.0, r"augment\.shift=3\.0 must be in \[0, 1\]"),
        ("augment", "zoom", 5.0, r"augment\.zoom=5\.0"),
        ("augment", "rotation", float("nan"), r"augment\.rotation=nan"),
        ("augment", "gamma", float("inf"), r"augment\.gamma=inf"),
        ("data", "val_ratio", 0.0, r"data\.val_ratio=0: training needs a validation split"),
        ("data", "extra_max_per_source", 0, r"data\.extra_max_per_source=0 must be >= 1"),
    ],
)
def test_validation_names_the_field(section: str, field: str, value, match: str) -> None:
    cfg = RunConfig()
    setattr(getattr(cfg, section), field, value)
    with pytest.raises(ConfigError, match=match):
        validate(cfg)


@pytest.mark.parametrize(
    "data,match",
    [
        ({"train": {"epochs": "many"}}, r"train\.epochs='many' must be a whole number"),
        ({"train": {"epochs": 2.5}}, r"train\.epochs=2\.5 must be a whole number"),
        ({"data": {"extra_lesions": "maybe"}}, r"data\.extra_lesions='maybe' must be true/false"),
        ({"augment": {"lesion": True}}, r"augment\.lesion=True must be a number"),
        ({"train": {"lr": "fast"}}, r"train\.lr='fast' must be a number"),
        ({"data": {"extra_train": {"a": 1}}}, r"data\.extra_train=.* must be a list of text or null"),
        ({"preprocess": {"percentile_clip": [1, 2, 3]}}, r"preprocess\.percentile_clip=.* must be a list of 2 numbers or null"),
        ({"model": {"name": None}}, r"model\.name must not be empty"),
        ({"data": {"seed": [1]}}, r"data\.seed=\[1\] must be a whole number"),
    ],
)
def test_yaml_values_of_the_wrong_type_are_named(data: dict, match: str) -> None:
    # YAML parses anything; a string where a number or true/false belongs must not pass silently
    with pytest.raises(ConfigError, match=match):
        load_run_config(data=data)


def test_yaml_values_are_coerced_where_unambiguous() -> None:
    cfg = load_run_config(data={"train": {"epochs": 10.0, "lr": 1, "precision": 32, "devices": 2, "unfreeze": 3},
                                "preprocess": {"percentile_clip": [1, 99]}, "data": {"extra_train": "x=tumor", "extra_lesions": False}})
    assert cfg.train.epochs == 10 and isinstance(cfg.train.epochs, int)
    assert cfg.train.lr == 1.0 and isinstance(cfg.train.lr, float)
    assert (cfg.train.precision, cfg.train.devices, cfg.train.unfreeze) == ("32", "2", "3")
    assert cfg.preprocess.percentile_clip == (1.0, 99.0)
    assert cfg.data.extra_train == ["x=tumor"] and cfg.data.extra_lesions is False


def test_ratios_and_epochs_combined() -> None:
    cfg = RunConfig(data=DataConfig(val_ratio=0.5, test_ratio=0.5))
    with pytest.raises(ConfigError, match=r"val_ratio \+ data\.test_ratio"):
        validate(cfg)
    cfg = RunConfig()
    cfg.train.epochs, cfg.train.head_epochs = 0, 0
    with pytest.raises(ConfigError, match="train.epochs"):
        validate(cfg)


def test_overrides_set_dotted_fields_and_skip_none() -> None:
    cfg = apply_overrides(RunConfig(), {"train.lr": 0.01, "data.root": "x", "model.name": None})
    assert cfg.train.lr == 0.01 and cfg.data.root == "x" and cfg.model.name == RunConfig().model.name
    with pytest.raises(ConfigError, match="unknown config field train.lrr"):
        apply_overrides(cfg, {"train.lrr": 1})


# ---------------------------------------------------------------------------------------------- presets


def test_config_preset_choices_match_presets_module() -> None:
    for name in PRESETS:
        cfg = RunConfig(data=DataConfig(preset=name))
        validate(cfg)  # every preset the data layer knows is accepted by the config


def test_presets_class_names() -> None:
    assert list(get_preset("tumor4").class_names) == ["glioma", "meningioma", "notumor", "pituitary"]
    assert list(get_preset("tumor2").class_names) == ["notumor", "tumor"]
    assert list(get_preset("alzheimer4").class_names) == ["Mild_Demented", "Moderate_Demented", "Non_Demented", "Very_Mild_Demented"]
    with pytest.raises(ConfigError, match="tumor4"):
        get_preset("nope")


def test_tumor2_map_covers_every_tumor4_and_yes_no_name() -> None:
    mapping = get_preset("tumor2").class_map
    for name in ("glioma", "meningioma", "pituitary", "yes"):
        assert mapping[name] == "tumor"
    for name in ("notumor", "no"):
        assert mapping[name] == "notumor"


def test_explicit_fields_override_preset() -> None:
    names, mapping = resolve_classes(DataConfig(preset="tumor2", class_names=["tumor", "notumor"], class_map={"yes": "notumor"}))
    assert names == ["tumor", "notumor"]
    assert mapping["yes"] == "notumor" and mapping["glioma"] == "tumor"
    assert resolve_classes(DataConfig()) == (None, {})


# ---------------------------------------------------------------------------------------------- train ranges


@pytest.mark.parametrize(
    "field,value",
    [("label_smoothing", 0.0), ("label_smoothing", 0.99), ("early_stopping_patience", 0), ("max_train_batches", 1),
     ("max_train_batches", 0.5), ("max_train_batches", 1.0), ("max_train_batches", None), ("weight_decay", 0.0), ("num_workers", 0),
     ("devices", "auto"), ("devices", "2"), ("accelerator", "cuda")],
)
def test_boundary_values_are_accepted(field: str, value) -> None:
    cfg = RunConfig()
    setattr(cfg.train, field, value)
    validate(cfg)


def test_yaml_nan_learning_rate_is_refused_at_load_time() -> None:
    with pytest.raises(ConfigError, match=r"train\.lr=nan must be a finite number > 0"):
        load_run_config(data={"train": {"lr": float("nan")}})


@pytest.mark.parametrize("field,value", [("pretrained_weights", "weights.safetensors"), ("pretrained", True)])
def test_pretrained_weights_for_a_from_scratch_cnn_are_refused(field: str, value) -> None:
    cfg = RunConfig()
    cfg.model.name = "seed002_cnn"
    setattr(cfg.model, field, value)
    with pytest.raises(ConfigError, match=r"model\.pretrained.*model seed002_cnn is a from-scratch CNN and takes no pretrained weights"):
        validate(cfg)
    cfg.model.name = "resnet18"
    validate(cfg)  # a timm backbone takes them


def test_from_scratch_list_matches_the_model_factory() -> None:
    from brainmri.config import FROM_SCRATCH_MODELS
    from brainmri.models.factory import CUSTOM_MODELS

    assert set(FROM_SCRATCH_MODELS) == set(CUSTOM_MODELS)


@pytest.mark.parametrize("value", [[1, 2], "fast", 3])
def test_a_section_that_is_not_a_mapping_is_named_without_python_reprs(value) -> None:
    with pytest.raises(ConfigError) as info:
        load_run_config(data={"train": value})
    text = str(info.value)
    assert text.startswith(f"train={value!r} must be a mapping of train.* fields (epochs, ")
    assert "<class" not in text and "TrainConfig" not in text


def test_an_empty_section_means_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("train:\nmodel:\n  name: seed002_cnn\n")
    cfg = load_run_config(path)
    assert cfg.train == RunConfig().train and cfg.model.name == "seed002_cnn"
