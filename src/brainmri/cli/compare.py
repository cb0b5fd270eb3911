"""``brainmri compare``: train several backbones on the same split and tabulate them (seed 004)."""
from __future__ import annotations

import sys
from pathlib import Path

from brainmri.cli.helpfmt import DefaultsHelp
from brainmri.errors import ConfigError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "compare",
        help="train and evaluate several backbones on the same split; one table",
        description=(
            "Train each model with the same data, split, seed and recipe, evaluate it on the test split, and write "
            "OUT/compare.md, OUT/compare.json and OUT/compare.png (accuracy and macro F1 with 95% bootstrap intervals, "
            "parameters, training images/s, inference ms per image). For research use only; not a medical device."
        ),
        formatter_class=DefaultsHelp,
    )
    p.add_argument("--data", required=True, help="dataset folder (split folders, class folders), CSV folder or NPZ")
    p.add_argument("--models", required=True, help="comma-separated model names, e.g. resnet18,efficientnet_b0,seed003_cnn")
    p.add_argument("--epochs", type=int, default=3, help="training epochs per model")
    p.add_argument("--image-size", type=int, default=None, help="input size for every model; none: each model's own")
    p.add_argument("--out", default="compare", help="output folder")
    p.add_argument("--config", default=None, help="YAML run config shared by all models (data split, augmentation, optimiser...)")
    p.add_argument("--preset", default=None, help="tumor4 | tumor2 | alzheimer4")
    p.add_argument("--batch-size", type=int, default=None, help="training batch size")
    p.add_argument("--max-train-batches", type=_batches, default=None, help="limit batches per epoch: a count >= 1 or a fraction in (0, 1] (smoke runs)")
    p.add_argument("--seed", type=int, default=None, help="training and split seed")
    p.add_argument("--force", action="store_true", help="replace the tables of an earlier comparison in OUT (its trained runs are kept)")
    p.add_argument("--bootstrap", type=int, default=1000, metavar="N", help="bootstrap resamples for the intervals")
    p.set_defaults(func=run)


def _batches(text: str) -> float | int:
    """``--max-train-batches``: a whole count or a fraction, as ``train.max_train_batches`` takes."""
    value = float(text)
    return int(value) if value.is_integer() and value >= 1 else value


def check_models(models: list[str], base, image_size: int | None, data: str | None = None) -> None:
    """Refuse an empty or repeated list and any model that cannot be built, before the first one
    trains (a typo in the last name must not cost the earlier models' training)."""
    import copy

    import torch

    from brainmri.config import validate
    from brainmri.models import create_model, default_image_size

    if not models:
        raise ConfigError("--models needs at least one model name")
    if image_size is not None and image_size < 1:
        raise ConfigError(f"--image-size={image_size} must be a positive number of pixels (leave it out for each model's own size)")
    repeated = sorted({m for m in models if models.count(m) > 1})
    if repeated:
        raise ConfigError(f"--models names {', '.join(repeated)} more than once; each model is trained and timed once")
    for name in models:
        cfg = copy.deepcopy(base)
        if data is not None:
            cfg.data.root = str(data)
        cfg.model.name = name
        cfg.preprocess.image_size = int(image_size or default_image_size(name))
        validate(cfg)
        with torch.device("meta"):  # builds the architecture without allocating weights
            create_model(name, num_classes=2, in_chans=cfg.preprocess.in_chans, pretrained=False,
                         head=cfg.model.head, head_hidden=cfg.model.head_hidden, image_size=cfg.preprocess.image_size)


def retime(rows: list[dict]) -> None:
    """Inference ms per image for every finished model, measured after training is over and
    after a warm-up pass of that model, so no model pays the process's first-call costs."""
    from brainmri.checkpoint import load_checkpoint
    from brainmri.evaluation.compare import inference_ms

    for row in rows:
        model, meta = load_checkpoint(row["checkpoint"])
        size, chans = meta.preprocess.image_size, meta.preprocess.in_chans
        inference_ms(model, size, chans, repeats=3)  # warm-up pass, not reported
        row["inference_ms"] = inference_ms(model, size, chans)


TABLES = ("compare.json", "compare.md", "compare.png")


def _check_earlier(out: Path, force: bool) -> None:
    """An OUT holding an earlier comparison's tables is replaced only with ``--force`` (those rows
    cost a training run each); a file of the same name that brainmri did not write never is."""
    from brainmri.cli.outputs import check_output_file

    for name in TABLES:
        check_output_file(out / name, "--out", force=force)  # a folder or device of that name; a file brainmri did not write
    earlier = [name for name in TABLES if (out / name).is_file()]
    if earlier and not force:
        import json

        try:
            models = ", ".join(r["model"] for r in json.loads((out / "compare.json").read_text())["rows"])
        except (OSError, ValueError, KeyError, TypeError):
            models = "unknown models"
        raise ConfigError(f"--out {out}: holds an earlier comparison ({models}: {', '.join(earlier)}); pass --force to replace "
                          "its tables (its trained runs stay in OUT/runs), or give another --out")


def run(args) -> int:
    import brainmri
    from brainmri.cli.outputs import check_output_dir
    from brainmri.config import RunConfig, apply_overrides, load_run_config
    from brainmri.evaluation import compare as cmp

    check_output_dir(args.out, "--out", not_inside=[args.data])
    _check_earlier(Path(args.out), args.force)
    base = load_run_config(args.config) if args.config else RunConfig()
    apply_overrides(base, {"data.preset": args.preset, "train.batch_size": args.batch_size,
                           "train.max_train_batches": args.max_train_batches, "train.seed": args.seed, "data.seed": args.seed})
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    check_models(models, base, args.image_size, args.data)
    out = Path(args.out)
    rows: list[dict] = []
    try:
        for name in models:  # one at a time: a later failure keeps the finished rows
            rows += cmp.compare_models(args.data, [name], out=out, epochs=args.epochs, image_size=args.image_size, base=base,
                                       n_boot=args.bootstrap, progress=not args.quiet)
    except BaseException:
        if rows:
            retime(rows)
            cmp.write_tables(rows, args.data, out)
            done = ", ".join(r["model"] for r in rows)
            print(f"compare: stopped at {models[len(rows)]}; the table for the finished model(s) ({done}) is in {out}/compare.md", file=sys.stderr)
        raise
    retime(rows)
    cmp.write_tables(rows, args.data, out)
    print(cmp.markdown_table(rows))
    print(f"written: {out}/compare.md, compare.json, compare.png")
    print(brainmri.DISCLAIMER)
    return 0
