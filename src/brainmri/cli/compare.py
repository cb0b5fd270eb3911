"""``brainmri compare``: train several backbones on the same split and tabulate them (seed 004)."""
from __future__ import annotations

import argparse


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "compare",
        help="train and evaluate several backbones on the same split; one table",
        description=(
            "Train each model with the same data, split, seed and recipe, evaluate it on the test split, and write "
            "OUT/compare.md, OUT/compare.json and OUT/compare.png (accuracy and macro F1 with 95%% bootstrap intervals, "
            "parameters, training images/s, inference ms per image). For research use only; not a medical device."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--data", required=True, help="dataset folder (split folders, class folders), CSV folder or NPZ")
    p.add_argument("--models", required=True, help="comma-separated model names, e.g. resnet18,efficientnet_b0,seed003_cnn")
    p.add_argument("--epochs", type=int, default=3, help="training epochs per model")
    p.add_argument("--image-size", type=int, default=None, help="input size for every model (default: each model's own)")
    p.add_argument("--out", default="compare", help="output folder")
    p.add_argument("--config", default=None, help="YAML run config shared by all models (data split, augmentation, optimiser...)")
    p.add_argument("--preset", default=None, help="tumor4 | tumor2 | alzheimer4")
    p.add_argument("--batch-size", type=int, default=None, help="training batch size")
    p.add_argument("--max-train-batches", type=int, default=None, help="limit batches per epoch (smoke runs)")
    p.add_argument("--seed", type=int, default=None, help="training and split seed")
    p.add_argument("--bootstrap", type=int, default=1000, metavar="N", help="bootstrap resamples for the intervals")
    p.set_defaults(func=run)


def run(args) -> int:
    import brainmri
    from brainmri.config import RunConfig, apply_overrides, load_run_config
    from brainmri.evaluation.compare import compare_models, markdown_table

    base = load_run_config(args.config) if args.config else RunConfig()
    apply_overrides(base, {"data.preset": args.preset, "train.batch_size": args.batch_size,
                           "train.max_train_batches": args.max_train_batches, "train.seed": args.seed, "data.seed": args.seed})
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    rows = compare_models(args.data, models, out=args.out, epochs=args.epochs, image_size=args.image_size, base=base,
                          n_boot=args.bootstrap, progress=not args.quiet)
    print(markdown_table(rows))
    print(f"written: {args.out}/compare.md, compare.json, compare.png")
    print(brainmri.DISCLAIMER)
    return 0
