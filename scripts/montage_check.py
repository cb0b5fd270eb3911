"""How often the out-of-distribution guard's montage test (``brainmri.inference.ood.montage_reason``)
fires on real single scans (false alarms) and on grids made of them (misses).

    python scripts/montage_check.py [--data ../shared/datasets] [--grids 10]

Reads the four-class, yes/no and Alzheimer sets under ``--data``; grids (1x2, 2x1, 2x2, 2x3, 3x3,
4x4 tiles of 160 or 256 px, gaps of 0 or 8 px) are drawn from the four-class Testing and yes/no
scans with a fixed seed. Nothing is written.
"""
from __future__ import annotations

import argparse
import random
from pathlib import Path

import cv2
import numpy as np

from brainmri.data.io import image_files, read_image
from brainmri.errors import BrainMRIError
from brainmri.inference.ood import montage_reason

SETS = ("brain-tumor-mri", "brain-mri-yes-no", "alzheimer-mri")
GRIDS = ((1, 2), (2, 1), (2, 2), (2, 3), (3, 3), (4, 4))


def grid(images: list[np.ndarray], rows: int, cols: int, tile: int, gap: int) -> np.ndarray:
    out = np.zeros((rows * tile + (rows - 1) * gap, cols * tile + (cols - 1) * gap), np.uint8)
    for k, im in enumerate(images):
        r, c = divmod(k, cols)
        out[r * (tile + gap):r * (tile + gap) + tile, c * (tile + gap):c * (tile + gap) + tile] = cv2.resize(im, (tile, tile))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "datasets"))
    ap.add_argument("--grids", type=int, default=10, help="grids per layout, tile size and gap")
    args = ap.parse_args()
    print("| set | images | called a montage |\n|---|---|---|")
    pool = []
    for name in SETS:
        images, flagged = 0, []
        for path in image_files(Path(args.data) / name):
            try:
                im = read_image(path)
            except BrainMRIError:
                continue
            images += 1
            if montage_reason(im):
                flagged.append(path.name)
            if name != "alzheimer-mri" and "Training" not in path.parts:
                pool.append(im)
        print(f"| {name} | {images} | {len(flagged)}{' (' + ', '.join(flagged[:5]) + ')' if flagged else ''} |")
    rng = random.Random(1)
    print("\n| grid | tiles | called a montage |\n|---|---|---|")
    for rows, cols in GRIDS:
        hit = total = 0
        for tile in (160, 256):
            for gap in (0, 8):
                for _ in range(args.grids):
                    hit += montage_reason(grid(rng.sample(pool, rows * cols), rows, cols, tile, gap)) is not None
                    total += 1
        print(f"| {rows}x{cols} | {rows * cols} | {hit} of {total} |")


if __name__ == "__main__":
    main()
