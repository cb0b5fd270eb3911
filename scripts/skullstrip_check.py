"""Does a checkpoint read "no skull" as "no tumor"? Tumor calls on scans before and after
simulated skull stripping (brainmri.preprocess.skullstrip, seed 0), side by side.

    python scripts/skullstrip_check.py CKPT... [--datasets ../shared/datasets] [--folds runs/folds/yesno/all.csv]

Sets: the yes/no tumors listed in FOLDS (scripts/presence_folds.py), and every third Testing
tumor and Testing ``notumor`` scan of the four-class set.
"""
from __future__ import annotations

import argparse
import csv
import random
import sys
from pathlib import Path

import cv2
import torch

from brainmri.checkpoint import load_checkpoint
from brainmri.evaluation.evaluate import predict_logits
from brainmri.preprocess.pipeline import prepare_image
from brainmri.preprocess.skullstrip import strip_skull


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint", nargs="+")
    ap.add_argument("--datasets", default="../shared/datasets")
    ap.add_argument("--folds", default="runs/folds/yesno/all.csv")
    args = ap.parse_args(argv)
    test = Path(args.datasets) / "brain-tumor-mri" / "Testing"
    sets = {"Testing tumors (1 in 3)": sorted(p for c in ("glioma", "meningioma", "pituitary") for p in (test / c).iterdir())[::3],
            "Testing notumor (1 in 3)": sorted((test / "notumor").iterdir())[::3]}
    if Path(args.folds).is_file():
        with open(args.folds, newline="") as fh:
            sets = {"yes/no tumors": [r["Image"] for r in csv.DictReader(fh)], **sets}
    print("| checkpoint | set | n | called a tumor | after skull stripping |\n|---|---|---|---|---|")
    for ck in args.checkpoint:
        model, meta = load_checkpoint(ck)
        healthy = meta.class_names.index("notumor")
        for name, files in sets.items():
            rng, plain, stripped = random.Random(0), [], []
            for f in files:
                gray = cv2.imread(str(f), cv2.IMREAD_GRAYSCALE)
                if gray is None:
                    print(f"skipped unreadable {f}", file=sys.stderr)
                    continue
                p = prepare_image(gray, meta.preprocess)
                s = strip_skull(p, meta.preprocess, rng)
                if s is not None:
                    plain.append(p)
                    stripped.append(s)
            with torch.inference_mode():
                a = (predict_logits(model, meta, plain, 64).argmax(1) != healthy).mean()
                b = (predict_logits(model, meta, stripped, 64).argmax(1) != healthy).mean()
            print(f"| {ck} | {name} | {len(plain)} | {100 * a:.1f}% | {100 * b:.1f}% |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
