"""``brainmri calibrate CHECKPOINT --data DIR -o OUT``: refit a model's calibration on your own
labelled scans (another scanner, another hospital), without retraining.

The temperature (and top-label scaling, when a cross-validation on those scans says it pays) is
fitted on DIR's validation split, or on all of DIR when it has no split of its own, and written
with the rest of the checkpoint unchanged to OUT. Predictions never change, only how sure the
model says it is. The images used should not be the ones you will report results on.
"""
from __future__ import annotations

from pathlib import Path

import brainmri
from brainmri.cli.labelopts import add_label_flags, label_options
from brainmri.config import apply_data_options
from brainmri.errors import ConfigError, DatasetError

FEW_IMAGES = 200  # below this the fit is rough (said in the output)


def _judged_or_learned(meta, index, split: str, data, same_data: bool) -> tuple[str, str] | None:
    """``(which, why)`` when the images to fit on are the checkpoint's own training or test images
    (``which``: train | test), else None. Told by ``same_data`` (the recorded dataset fingerprint
    matches: any path, the bundled model too), the recorded root, or the split's class counts
    equal to the recorded ones (a copy of its Testing folder alone)."""
    from brainmri.evaluation.evaluate import _same_path

    recorded = meta.data or {}
    if split in ("train", "test") and (same_data or (recorded.get("root") and _same_path(recorded["root"], data))):
        return split, f"{data} is the dataset this checkpoint was trained on"
    counts = {}
    for sample in index.split(split):
        name = index.class_names[sample.label]
        counts[name] = counts.get(name, 0) + 1
    for which in ("train", "test"):
        mine = (recorded.get("counts") or {}).get(which)
        if mine and counts == {k: v for k, v in mine.items() if v}:
            return which, (f"split '{split}' of {data} has exactly the class counts of this checkpoint's own {which} split "
                           f"({', '.join(f'{k} {v}' for k, v in counts.items())}): it looks like a copy of it")
    return None


def run(args) -> int:
    import torch

    from brainmri.checkpoint import load_checkpoint, looks_like_onnx, save_checkpoint
    from brainmri.cli.outputs import OutputPathError, check_output_file
    from brainmri.data.datasets import data_fingerprint
    from brainmri.errors import CheckpointError
    from brainmri.evaluation.calibration import MIN_CALIBRATION_IMAGES, T_MAX, T_MIN, calibrated_probs, expected_calibration_error, fit_calibration
    from brainmri.evaluation.evaluate import SPLIT_NAMES, _load_index, data_config_for, predict_split

    src = Path(args.checkpoint)
    if src.is_file() and looks_like_onnx(src):
        raise CheckpointError(f"{src}: is an ONNX model; calibrate the .safetensors checkpoint, then export it again")
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size={args.batch_size} must be >= 1")
    split = SPLIT_NAMES.get(str(args.split).lower()) if args.split else None
    if args.split and split is None:
        raise ConfigError(f"--split {args.split!r} is not valid; choose one of: train, val, test")
    out = Path(args.out)
    check_output_file(out, "-o", not_same_as=[src, args.data])  # never the input checkpoint, never into the dataset read
    if out.exists() and not args.force:
        raise OutputPathError(f"-o {out}: the file exists; pass --force to replace it")
    model, meta = load_checkpoint(src)
    cfg = apply_data_options(data_config_for(meta, args.data, src, args.preset), label_options(args))
    try:
        index, note = _load_index(meta, args.data, cfg, src)
    except DatasetError as exc:  # calibrate takes no class map: say what to do instead of naming a config field
        raise DatasetError(str(exc).replace(" (set data.class_map or data.preset)", "; name the class folders after the model's classes "
                                            f"({', '.join(meta.class_names)})")) from None
    if list(index.class_names) != list(meta.class_names):
        raise DatasetError(f"{cfg.root}: dataset classes {index.class_names} do not match the checkpoint's {meta.class_names}")
    carved = False
    if split is None:
        split = "val" if index.split("val") else "test"
        if split == "test" and index.split("train"):
            raise ConfigError(f"{cfg.root}: has a training split but no validation split; choose the images to fit on with --split")
        carved = split == "val" and not index.official_split
    same_data = (meta.data or {}).get("fingerprint") == data_fingerprint(index)  # the listing it was trained on, wherever it lies
    own = _judged_or_learned(meta, index, split, args.data, same_data)
    if own:
        which, why = own
        raise ConfigError((f"--split {split}: " if args.split else f"{cfg.root}: ") + f"{why}; " + (
            "its training images are what the model learned (over-confident there), so a temperature fitted on them would be too sharp"
            if which == "train" else "its test split is what the model is judged on; fitting there would make the "
            "judged calibration look better than it is") + "; fit on --split val (the default), or on a site's own scans")
    own_val = split == "val" and same_data
    if note and note.startswith("WARNING"):
        print(note)
    preds = predict_split(model, meta, index, split, args.batch_size)
    n = len(preds.labels)
    if n < MIN_CALIBRATION_IMAGES:
        how = (f" (carved from its training images by the checkpoint's split rule: {cfg.root} has no Validation folder; "
               "choose other images with --split)") if carved else ""
        raise DatasetError(f"{cfg.root}: only {n} readable images in split '{split}'{how}; calibration needs at least {MIN_CALIBRATION_IMAGES}")
    where = f"{cfg.root} ({split}, n={n})"
    old = dict(meta.calibration or {})
    new_cal = fit_calibration(torch.from_numpy(preds.logits), torch.from_numpy(preds.labels), where)
    errors = int((preds.logits.argmax(1) != preds.labels).sum())
    t = new_cal["temperature"]
    if errors == 0 or t <= T_MIN * 1.001:  # the dangerous direction: certainty everywhere
        limit = f"the temperature ran to its lower limit ({t:g})" if t <= T_MIN * 1.001 else f"the fit sharpened to T = {t:.3g}"
        raise ConfigError(f"{cfg.root}: {limit}: the model gets {'all' if errors == 0 else f'all but {errors}'} of these {n} images right, "
                          "so a fit on them can only sharpen, and would make every prediction look certain, wrong ones included. "
                          "Nothing was written; fit on scans that include the cases the model finds hard, or keep the checkpoint's calibration")
    absent = [c for i, c in enumerate(meta.class_names) if not (preds.labels == i).any()]
    meta.calibration = new_cal
    meta.extra = {**meta.extra, "recalibrated_from": {"checkpoint": str(src), "calibration": old, "fitted_on": where}}
    dtype = torch.float16 if _stored_half(src) else None  # a bundled fp16 model stays fp16
    save_checkpoint(out, model, meta, dtype=dtype)
    cal = meta.calibration
    check = cal["top_label_check"]
    print(f"fitted on {n} images of {where}" + (" — few images: a rough fit" if n < FEW_IMAGES else ""))
    if t >= T_MAX * 0.999:
        print(f"warning: the temperature ran to its upper limit ({t:g}): the model gets {errors} of these {n} images wrong, so its "
              "probabilities are flattened towards equal (an untrained model, or scans unlike its training data)")
    if absent:
        print(f"warning: no image of {', '.join(absent)} among them: the temperature is fitted on the other classes only")
    for p, reason in preds.failures:
        print(f"  skipped {p}: {reason}")
    before = expected_calibration_error(calibrated_probs(preds.logits, old), preds.labels)
    print(f"temperature {old.get('temperature', 1.0):.3f} -> {cal['temperature']:.3f}; ECE on these images {before:.4f} with the checkpoint's "
          f"calibration -> {cal.get('ece_after_temperature', cal['ece_after']):.4f} with the new temperature (T=1: {cal['ece_before']:.4f})")
    if own_val:
        print("note: these are the checkpoint's own validation images, where its temperature was fitted: the fit reproduces it")
    elif cal.get("ece_after_temperature", cal["ece_after"]) > before + 0.001:
        print("note: the new temperature is the best fit of the log-loss on these images, yet its ECE here is higher than the "
              "checkpoint's" + (": with few images ECE is noisy" if n < FEW_IMAGES else " (log-loss and ECE weigh errors differently)")
              + "; the checkpoint's calibration may serve these scans as well")
    print(f"top-label scaling: {'kept' if check['kept'] else 'not kept'} ({check['reason'].replace('validation images', 'images')})"
          + (f"; ECE -> {cal['ece_after']:.4f}" if check["kept"] else ""))
    print(f"wrote {out} (weights, classes, preprocessing and OOD guard unchanged; predictions unchanged)")
    print(brainmri.DISCLAIMER)
    return 0


def _stored_half(path: Path) -> bool:
    """Whether a safetensors file stores its weights in fp16 (read from its header only)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return any(f.get_slice(k).get_dtype() == "F16" for k in f.keys())


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "calibrate",
        help="refit a checkpoint's calibration (temperature) on your own labelled scans",
        description=__doc__.split("\n\n")[1].replace("\n", " "),
    )
    p.add_argument("checkpoint", help="a brainmri .safetensors checkpoint")
    p.add_argument("--data", required=True, help="labelled scans: class folders, split folders, a CSV or NPZ")
    p.add_argument("--preset", default=None, help="class preset for DIR (default: the checkpoint's task)")
    p.add_argument("--split", default=None, help="split of DIR to fit on (default: val, or all of DIR when it has no split)")
    p.add_argument("--out", "-o", required=True, help="the recalibrated checkpoint to write (never the input)")
    p.add_argument("--force", action="store_true", help="replace an existing -o file")
    p.add_argument("--batch-size", type=int, default=64)
    add_label_flags(p)
    p.set_defaults(func=run)
