"""Write the slices of a NIfTI volume as PNG files, to train on them as an extra source.

``data.extra_train`` reads image folders; this turns a volume into one, with the same slice
selection and intensity window as ``brainmri predict`` / ``evaluate`` use for volumes
(``brainmri.inference.nifti.read_nifti``), so a model trains on exactly what it will be shown.
Slices whose head covers less than ``--min-foreground`` of the frame (the first and last
slices, nearly empty) are skipped. Train on them with ``--extra-train OUT=notumor`` (a healthy
volume) and the volume is no longer a cross-source test of that model.

The PNGs are data derived from the volume: write them outside the repository (the default is
``~/.cache/brainmri/slices/<volume name>``); the script refuses a folder inside a git checkout.

    python scripts/volume_slices.py ../shared/datasets/nifti/M2307_T2.nii.gz --slices middle:100

``--mask LESION.nii.gz`` (a lesion mask of the same volume) counts the written slices that hold
mask voxels, so what a "healthy" volume's slices carry is known before training on them
(``M2307_T2``: 135 of its 399 axial, coronal and sagittal slices hold white-matter lesions);
``--skip-masked`` leaves those slices out.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from brainmri.errors import BrainMRIError
from brainmri.inference.nifti import check_slices_spec, read_nifti, volume_name

DEFAULT_ROOT = Path.home() / ".cache" / "brainmri" / "slices"


def inside_git_checkout(path: Path) -> Path | None:
    """The checkout ``path`` lies in (a parent holding ``.git``), or None."""
    for parent in [path.resolve(), *path.resolve().parents]:
        if (parent / ".git").exists():
            return parent
    return None


def foreground_fraction(img: np.ndarray) -> float:
    """Share of the frame brighter than a tenth of the slice's maximum."""
    top = float(img.max())
    return float((img > 0.1 * top).mean()) if top > 0 else 0.0


def write_slices(volume: Path, out: Path, axis: str = "axial", slices: str = "middle:80", min_foreground: float = 0.05) -> list[Path]:
    """Write the selected slices of ``volume`` under ``out`` as ``<name>_<axis>_<index>.png``."""
    sel = read_nifti(volume.read_bytes(), str(volume), axis=axis, slices=slices)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for idx, img in zip(sel.indices, sel.images):
        if foreground_fraction(img) < min_foreground:
            continue
        p = out / f"{volume_name(volume)}_{axis}_{idx:03d}.png"
        if not cv2.imwrite(str(p), img):
            raise BrainMRIError(f"{p}: could not write the slice image")
        written.append(p)
    return written


def masked_slices(mask: Path, files: list[Path], axis: str, shape: tuple[int, ...] | None = None) -> list[Path]:
    """The written slice files (named ``..._<axis>_<index>.png``) whose slice of ``mask``, reoriented
    to RAS+ as the volume is, holds a non-zero voxel."""
    import re

    import nibabel as nib

    from brainmri.inference.nifti import parse_axis

    try:
        m = np.asarray(nib.as_closest_canonical(nib.load(str(mask))).dataobj)
    except Exception as exc:  # noqa: BLE001 - nibabel raises many kinds for a bad file
        raise BrainMRIError(f"{mask}: cannot read the mask ({exc})") from None
    m = m.reshape(m.shape[:3]) if m.ndim > 3 and all(d == 1 for d in m.shape[3:]) else m
    if m.ndim != 3 or (shape is not None and tuple(m.shape) != tuple(shape)):
        raise BrainMRIError(f"{mask}: mask shape {m.shape} is not the volume's {shape}")
    ax = parse_axis(axis)
    hits = []
    for f in files:
        idx = int(re.search(r"_(\d+)\.png$", f.name).group(1))
        if np.take(m, idx, axis=ax).any():
            hits.append(f)
    return hits


def _volume_shape(volume: Path) -> tuple[int, ...]:
    import nibabel as nib

    return tuple(nib.as_closest_canonical(nib.load(str(volume))).shape[:3])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("volume", type=Path, help=".nii or .nii.gz volume")
    ap.add_argument("--out", type=Path, default=None, help=f"folder for the PNGs (default: {DEFAULT_ROOT}/<volume name>)")
    ap.add_argument("--axis", default="axial", help="axial | coronal | sagittal")
    ap.add_argument("--slices", default="middle:80", help="middle, middle:K, all, A:B, A:B:STEP or N (as in brainmri predict)")
    ap.add_argument("--min-foreground", type=float, default=0.05, help="skip slices whose head covers less of the frame")
    ap.add_argument("--mask", type=Path, default=None, help="lesion mask of the volume: count the written slices holding any of it")
    ap.add_argument("--skip-masked", action="store_true", help="with --mask: do not keep the slices that hold mask voxels")
    args = ap.parse_args(argv)
    out = args.out or DEFAULT_ROOT / volume_name(args.volume)
    try:
        check_slices_spec(args.slices)
        repo = inside_git_checkout(out)
        if repo is not None:
            raise BrainMRIError(f"{out} is inside the git checkout {repo}: write data derived from a dataset outside the repository")
        if not args.volume.is_file():
            raise BrainMRIError(f"{args.volume}: no such file")
        if args.skip_masked and args.mask is None:
            raise BrainMRIError("--skip-masked needs --mask")
        if args.mask is not None and not args.mask.is_file():
            raise BrainMRIError(f"{args.mask}: no such file")
        if args.mask is not None:
            masked_slices(args.mask, [], args.axis, _volume_shape(args.volume))  # a bad mask is refused before anything is written
        written = write_slices(args.volume, out, axis=args.axis, slices=args.slices, min_foreground=args.min_foreground)
        masked = masked_slices(args.mask, written, args.axis, _volume_shape(args.volume)) if args.mask is not None else []
    except BrainMRIError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not written:
        print(f"error: {args.volume}: no slice of the selection has a head in it (--slices {args.slices})", file=sys.stderr)
        return 2
    if args.mask is not None:
        print(f"{len(masked)} of the {len(written)} slices hold voxels of {args.mask}")
        if args.skip_masked:
            for f in masked:
                f.unlink()
            written = [f for f in written if f not in set(masked)]
            if not written:
                print(f"error: every selected slice holds voxels of {args.mask}", file=sys.stderr)
                return 2
    print(f"wrote {len(written)} slices of {args.volume} to {out} (train on them: --extra-train {out}=notumor)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
