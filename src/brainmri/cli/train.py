"""``brainmri train``: train a classifier (YAML config and/or flags; flags override YAML)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from brainmri.cli.helpfmt import DefaultsHelp
from brainmri.cli.labelopts import LABEL_FLAGS, label_type
from brainmri.config import RunConfig, apply_overrides, load_run_config, validate
from brainmri.models import MODEL_ZOO, default_image_size

# flag -> (config field, type, help)
FLAGS = {
    "--data": ("data.root", str, "dataset folder (split folders, class folders), CSV folder or NPZ"),
    "--preset": ("data.preset", str, "tumor4 | tumor2 | alzheimer4"),
    "--csv": ("data.csv", str, "CSV mapping image paths to labels"),
    "--split": ("data.split", str, "auto | stratified | leak-free"),
    "--val-ratio": ("data.val_ratio", float, "validation fraction when the data has no val split"),
    "--test-ratio": ("data.test_ratio", float, "test fraction when the data has no split"),
    "--cache-dir": ("data.cache_dir", str, "prepared-image cache folder ('auto' default, 'none' disables)"),
    "--model": ("model.name", str, f"backbone: {', '.join(MODEL_ZOO)} or any timm name"),
    "--pretrained-weights": ("model.pretrained_weights", str, "local ImageNet weights file (safetensors or state dict)"),
    "--head": ("model.head", str, "linear | mlp (seed 001: pool -> dense -> dropout -> out)"),
    "--image-size": ("preprocess.image_size", int, "input size in pixels (default: the model's)"),
    "--in-chans": ("preprocess.in_chans", int, "1 (gray into an adapted first conv) or 3 (gray replicated)"),
    "--epochs": ("train.epochs", int, "phase-2 (or only) epochs"),
    "--head-epochs": ("train.head_epochs", int, "phase-1 epochs training the head on a frozen backbone"),
    "--unfreeze": ("train.unfreeze", str, "phase 2: 'all' or the number of last blocks to unfreeze"),
    "--lr": ("train.lr", float, "learning rate (phase 2)"),
    "--head-lr": ("train.head_lr", float, "learning rate (phase 1)"),
    "--optimizer": ("train.optimizer", str, "adam | adamw"),
    "--weight-decay": ("train.weight_decay", float, "weight decay (L2)"),
    "--schedule": ("train.schedule", str, "cosine | plateau | none"),
    "--label-smoothing": ("train.label_smoothing", float, "label smoothing, in [0, 1)"),
    "--ema-decay": ("train.ema_decay", float, "validate and save an exponential moving average of the weights with this decay, in [0, 1) (0: off)"),
    "--batch-size": ("train.batch_size", int, "batch size"),
    "--num-workers": ("train.num_workers", int, "data loader workers (0: load in the training process)"),
    "--early-stopping": ("train.early_stopping_patience", int, "patience in epochs (0 disables)"),
    "--monitor": ("train.monitor", str, "val_loss | val_acc | val_macro_f1 (best checkpoint / early stopping)"),
    "--precision": ("train.precision", str, "auto | 32 | bf16-mixed | 16-mixed"),
    "--accelerator": ("train.accelerator", str, "auto | cpu | gpu"),
    "--devices": ("train.devices", str, "number of devices or 'auto' (on CPU at most the number of cores)"),
    "--num-nodes": ("train.num_nodes", int, "nodes for distributed training"),
    "--strategy": ("train.strategy", str, "auto | ddp | ddp_spawn | ..."),
    "--seed": ("train.seed", int, "random seed of training (weights, augmentation, order); the split keeps data.seed"),
    "--output-dir": ("train.output_dir", str, "where run directories go"),
    "--run-name": ("train.run_name", str, "run directory name (default: a timestamped one); an existing run there is refused without --overwrite"),
    "--max-train-batches": ("train.max_train_batches", int, "limit batches per epoch, >= 1 (smoke tests)"),
}
# a labels CSV's / NPZ's column, array and label names, as evaluate, calibrate and data take them
FLAGS.update({flag: (f"data.{field}", label_type(flag), help_) for flag, (field, _, help_) in LABEL_FLAGS.items()})


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a classifier",
        description="Train a classifier on Lightning. Settings come from dataclass defaults, then --config YAML, then flags.",
        formatter_class=DefaultsHelp,
    )
    p.add_argument("--config", help="YAML run config (sections data/preprocess/augment/model/train)")
    for flag, (_, typ, help_) in FLAGS.items():
        p.add_argument(flag, type=typ, default=None, help=help_)
    p.add_argument("--pretrained", action="store_true", default=None, help="ImageNet weights from timm's hub (needs internet)")
    p.add_argument("--no-crop", dest="crop", action="store_false", default=None, help="disable the brain crop")
    p.add_argument("--no-augment", dest="augment", action="store_false", default=None, help="disable training augmentation")
    p.add_argument("--balanced-sampler", action="store_true", default=None, help="class-balanced sampling")
    p.add_argument("--extra-train", action="append", default=None, metavar="PATH[=LABEL]",
                   help="extra training-only tumor-presence source (repeatable): yes/no folders, or every image LABEL=tumor|notumor")
    p.add_argument("--lesion", type=float, default=None, help="probability of a synthetic lesion in a healthy training scan (augment.lesion)")
    p.add_argument("--deterministic", action="store_true", default=None, help="deterministic algorithms (slower)")
    p.add_argument("--resume", metavar="RUN_DIR",
                   help="continue a run from its last checkpoint (lightning/last.ckpt: the last completed epoch, or where an interrupt "
                        "stopped it) with the run's own config.yaml; other training flags are refused, not silently ignored")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the run already in the run directory (--output-dir/--run-name); without it such a run is refused")
    p.add_argument("--dry-run", action="store_true", help="print the resolved config, check that the dataset and extra sources can be listed (decodes no image), and exit")
    p.set_defaults(func=run)


def _yaml_sets(path: str | None, section: str, key: str) -> bool:
    if not path:
        return False
    import yaml

    with open(path) as f:
        data = yaml.safe_load(f) or {}
    return isinstance(data.get(section), dict) and key in data[section]


# flags other than FLAGS that change the run (dest -> flag)
OTHER_FLAGS = {"config": "--config", "pretrained": "--pretrained", "crop": "--no-crop", "augment": "--no-augment",
               "balanced_sampler": "--balanced-sampler", "extra_train": "--extra-train", "lesion": "--lesion",
               "deterministic": "--deterministic"}


def _dest(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


def given_flags(args) -> list[str]:
    """The training flags given on the command line (``--dry-run`` and ``--resume`` aside)."""
    given = [flag for flag in FLAGS if getattr(args, _dest(flag), None) is not None]
    given += [flag for dest, flag in OTHER_FLAGS.items() if getattr(args, dest, None) is not None]  # their default is None
    return given + (["--overwrite"] if args.overwrite else [])


def build_config(args) -> RunConfig:
    if args.resume:
        from brainmri.errors import ConfigError
        from brainmri.training.rundir import check_resumable, load_config_for_resume

        ignored = given_flags(args)
        if ignored:
            raise ConfigError(f"--resume {args.resume} continues with the run's own config ({Path(args.resume) / 'config.yaml'}), "
                              f"so {', '.join(ignored)} would be ignored; drop {'it' if len(ignored) == 1 else 'them'}, "
                              "or start a new run (another --run-name) to change settings")
        cfg = load_config_for_resume(args.resume)
        check_resumable(args.resume)
        return cfg
    cfg = load_run_config(args.config) if args.config else RunConfig()
    overrides = {field: getattr(args, _dest(flag)) for flag, (field, _, _) in FLAGS.items()}
    overrides.update({"model.pretrained": args.pretrained, "preprocess.crop": args.crop, "augment.enabled": args.augment,
                      "data.balanced_sampler": args.balanced_sampler, "train.deterministic": args.deterministic,
                      "data.extra_train": args.extra_train, "augment.lesion": args.lesion})
    apply_overrides(cfg, overrides)
    if args.cache_dir is not None and args.cache_dir.strip().lower() in ("none", "off"):
        cfg.data.cache_dir = None
    if args.image_size is None and not _yaml_sets(args.config, "preprocess", "image_size"):
        cfg.preprocess.image_size = default_image_size(cfg.model.name)  # the model's native size
    if not cfg.data.root:
        from brainmri.errors import ConfigError

        raise ConfigError("no dataset given: pass --data DIR (or data.root in --config)")
    return validate(cfg)


def _data_check(cfg) -> list[str]:
    """What ``--dry-run`` checks beyond the config: the output folder can be made, the dataset
    and every extra source can be listed and offer what the run needs (no image is decoded), and
    the model builds with its pretrained weights. Raises the same clear errors a real run would."""
    from brainmri.cli.outputs import check_output_dir
    from brainmri.data.datasets import load_dataset
    from brainmri.data.presence import extra_sources_of
    from brainmri.models import create_model
    from brainmri.training.finetune import check_unfreeze
    from brainmri.training.preflight import check_trainable

    check_output_dir(cfg.train.output_dir, "--output-dir")
    index = load_dataset(cfg.data)
    check_trainable(index, cfg)
    m = cfg.model  # built as the run builds it: a wrong weights file or block count fails here too
    model = create_model(m.name, len(index.class_names), in_chans=cfg.preprocess.in_chans, pretrained=m.pretrained,
                         pretrained_weights=m.pretrained_weights, head=m.head, head_hidden=m.head_hidden, drop_rate=m.drop_rate,
                         image_size=cfg.preprocess.image_size)
    check_unfreeze(model, cfg.train.unfreeze, m.name)
    lines = [f"data: {cfg.data.root}: " + "; ".join(f"{split} {sum(c.values())}" for split, c in index.counts().items())]
    _, extra = extra_sources_of(cfg.data, index.class_names)
    lines += [f"extra source: {e['source']} ({e['n_tumor']} tumor, {e['n_notumor']} notumor, {e['repeat']}x per epoch)" for e in extra]
    return lines


def run(args) -> int:
    cfg = build_config(args)
    from brainmri.training.preflight import check_environment

    check_environment(cfg)
    from brainmri.cli.outputs import check_not_inside

    check_not_inside(Path(cfg.train.output_dir), "--output-dir", [cfg.data.root])  # run folders never inside the dataset
    if args.dry_run:
        from brainmri.config import to_dict
        from brainmri.training.rundir import check_run_dir_free, planned_run_dir

        planned = None if args.resume else planned_run_dir(cfg)
        if planned is not None:
            check_run_dir_free(planned, args.overwrite)
        print(json.dumps(to_dict(cfg), indent=2))
        for line in _data_check(cfg):
            print(line)
        return 0
    from brainmri.training import run_training
    from brainmri.training.callbacks import TrainingInterrupted

    try:
        result = run_training(cfg, resume=args.resume, progress=not args.quiet, overwrite=args.overwrite)
    except TrainingInterrupted as exc:  # 130 (SIGINT) / 143 (SIGTERM), like a shell reports a killed job
        if str(exc):
            print(f"brainmri train: {exc}", file=sys.stderr)
        return exc.exit_code
    print(f"run directory: {result.run_dir}")
    print(f"best checkpoint: {result.checkpoint}")
    best = result.metrics.get("best_metrics", {})
    if best:
        print("best: " + ", ".join(f"{k}={v:.4f}" for k, v in sorted(best.items()) if k.startswith("val_")))
    return 0
