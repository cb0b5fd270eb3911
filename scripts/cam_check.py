"""Does a checkpoint look at the lesion, not at the border? Grad-CAM maps measured against known
lesion masks and against the border of the scan, side by side for each checkpoint.

    python scripts/cam_check.py CKPT... [--datasets ../shared/datasets] [--method gradcam] [--target-layer layer3] [--json OUT]

Sets (real data has no tumor masks, so the lesions are synthetic, with known outlines):
  * Testing ``notumor`` scans of the four-class set and the central 80 axial slices of the
    healthy T1 NIfTI volume, each with one synthetic lesion pasted inside the brain
    (brainmri.preprocess.lesion, seed 0, lesion centres 10% of the head size inside its outline,
    as in training): is it called a tumor (and the same slice without it; the ROC-AUC of P(tumor)
    between the two), does the map's peak fall in the lesion (the pointing
    game, within 15 px at 224 px input; a random point hits with the share of the area that
    lesion and tolerance cover), and how much of the map's mass lies in the lesion against its area;
  * real tumors, the Testing tumors and the yes/no set's ``yes`` scans: how often the peak and
    how much of the mass fall in the border band (outside the head outline eroded by 10% of the
    head size: scalp, skull, background, frame) against the band's area.

Every map explains the most probable tumor class (the question is "where is the tumor"), with
Grad-CAM at the model's default layer unless ``--method`` / ``--target-layer`` name others.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

import numpy as np
import torch

from brainmri.checkpoint import load_checkpoint
from brainmri.data.io import image_files, read_image
from brainmri.errors import BrainMRIError
from brainmri.evaluation.evaluate import predict_logits
from brainmri.evaluation.metrics import roc_auc
from brainmri.explain.cam import cam_batch
from brainmri.explain.localization import area_fraction, border_band, grow, mass_fraction, pointing_hit
from brainmri.inference.nifti import read_nifti
from brainmri.preprocess.lesion import brain_mask, synthesize_lesion
from brainmri.preprocess.pipeline import prepare_image, to_model_input

HEADER = ("| checkpoint | set | n | called a tumor (before pasting; AUC) | peak in lesion (random point) | lesion mass ÷ area | "
          "peak in border band (its area) | border mass ÷ area |\n|---|---|---|---|---|---|---|---|")


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def pointing_tolerance(image_size: int) -> int:
    """The pointing game's 15 pixels at 224 px input (Zhang et al. 2016), scaled to ``image_size``."""
    return round(15 * image_size / 224)


def measure(model: torch.nn.Module, meta, images: list[np.ndarray], lesions: list[np.ndarray] | None,
            target_layer: str | None = None, batch_size: int = 32, method: str = "gradcam") -> tuple[dict, np.ndarray]:
    """Grad-CAM of the top tumor class for prepared uint8 ``images``; with ``lesions`` (one bool
    mask each) also the pointing game (within :func:`pointing_tolerance`) and the map's mass
    inside them. Returns the set's summary and the images' logits (N, K)."""
    tol = pointing_tolerance(meta.preprocess.image_size)
    tumor = [i for i, c in enumerate(meta.class_names) if c != "notumor"]
    all_logits, called, hits, lesion_ratio, lesion_area, band_hit, band_mass, band_area = [], [], [], [], [], [], [], []
    for start in range(0, len(images), batch_size):
        chunk = images[start:start + batch_size]
        x = torch.stack([to_model_input(p, meta.preprocess) for p in chunk])
        with torch.inference_mode():
            logits = model(x).float()
        all_logits.append(logits.numpy())
        top = [tumor[int(i)] for i in logits[:, tumor].argmax(1)]
        maps, _ = cam_batch(model, x, method, top, target_layer)
        for k, (img, hm) in enumerate(zip(chunk, maps)):
            called.append(int(logits[k].argmax()) in tumor)
            band = border_band(brain_mask(img))
            band_hit.append(pointing_hit(hm, band))
            band_mass.append(mass_fraction(hm, band) / max(area_fraction(band), 1e-9))
            band_area.append(area_fraction(band))
            if lesions is not None:
                m = lesions[start + k]
                hits.append(pointing_hit(hm, m, tol))
                lesion_area.append(area_fraction(grow(m, tol)))
                lesion_ratio.append(mass_fraction(hm, m) / max(area_fraction(m), 1e-9))
    out = {"n": len(images), "called_tumor": float(np.mean(called)), "border_peak": float(np.mean(band_hit)),
           "border_area": float(np.mean(band_area)), "border_mass_ratio": float(np.nanmedian(band_mass))}
    if lesions is not None:
        out.update({"lesion_peak": float(np.mean(hits)), "lesion_area": float(np.mean(lesion_area)),
                    "lesion_mass_ratio": float(np.nanmedian(lesion_ratio))})
    return out, np.concatenate(all_logits)


def presence(model: torch.nn.Module, meta, plain: list[np.ndarray], pasted_logits: np.ndarray) -> dict:
    """The same slices without and with their pasted lesion (given as ``measure``'s logits): how
    often the unpasted ones are called a tumor, and the ROC-AUC of P(tumor) telling the two apart
    (a lesion detector's quality on that source, free of the operating point)."""
    healthy = meta.class_names.index("notumor")
    t = float(getattr(meta, "temperature", 1.0) or 1.0)
    with torch.inference_mode():
        plain_logits = predict_logits(model, meta, plain)
    a, b = (torch.softmax(torch.from_numpy(z).float() / t, 1).numpy() for z in (plain_logits, pasted_logits))
    p = np.r_[1 - a[:, healthy], 1 - b[:, healthy]]
    return {"called_tumor_before": float((a.argmax(1) != healthy).mean()),
            "auc_lesion_vs_none": roc_auc(np.r_[np.zeros(len(a), bool), np.ones(len(b), bool)], p)}


def row(ck: str, name: str, r: dict) -> str:
    called = _pct(r["called_tumor"])
    if "called_tumor_before" in r:
        called += f" ({_pct(r['called_tumor_before'])}; {r['auc_lesion_vs_none']:.3f})"
    lesion = (f"{_pct(r['lesion_peak'])} ({_pct(r['lesion_area'])}) | {r['lesion_mass_ratio']:.1f}x"
              if "lesion_peak" in r else "– | –")
    return (f"| {ck} | {name} | {r['n']} | {called} | {lesion} | "
            f"{_pct(r['border_peak'])} ({_pct(r['border_area'])}) | {r['border_mass_ratio']:.2f}x |")


def _gray_files(files: list[Path]) -> list[np.ndarray]:
    out = []
    for f in files:
        try:
            out.append(read_image(f))
        except BrainMRIError as exc:
            print(f"skipped {exc}", file=sys.stderr)
    return out


def load_sets(datasets: Path) -> dict[str, tuple[list[np.ndarray], bool]]:
    """``{name: (gray images, paste a lesion?)}`` for the sets present under ``datasets``."""
    sets: dict[str, tuple[list[np.ndarray], bool]] = {}
    test = datasets / "brain-tumor-mri" / "Testing"
    if (test / "notumor").is_dir():
        sets["Testing notumor + synthetic lesion"] = (_gray_files(image_files(test / "notumor")), True)
    t1 = datasets / "nifti" / "T1.nii.gz"
    if t1.is_file():
        sets["T1 volume, middle 80 axial + synthetic lesion"] = (read_nifti(t1.read_bytes(), t1.name, "axial", "middle:80").images, True)
    if test.is_dir():
        sets["Testing tumors"] = (_gray_files([f for c in ("glioma", "meningioma", "pituitary") for f in image_files(test / c)]), False)
    yes = datasets / "brain-mri-yes-no" / "yes"
    if yes.is_dir():
        sets["yes/no tumors"] = (_gray_files(image_files(yes)), False)
    return sets


def run(checkpoints: list[str], sets: dict[str, tuple[list[np.ndarray], bool]], target_layer: str | None = None,
        method: str = "gradcam") -> dict:
    """``{checkpoint: {set: summary}}``, printing a table row per pair as it goes."""
    results: dict = {}
    print(HEADER)
    for ck in checkpoints:
        model, meta = load_checkpoint(ck)
        results[ck] = {}
        for name, (grays, paste) in sets.items():
            prepared = [prepare_image(g, meta.preprocess) for g in grays]
            lesions, plain = None, None
            if paste:
                rng, plain, pasted, lesions = random.Random(0), [], [], []
                for p in prepared:
                    made = synthesize_lesion(p, rng, margin=0.1, return_mask=True)
                    if made is not None:
                        plain.append(p)
                        pasted.append(made[0])
                        lesions.append(made[1])
                prepared = pasted
            r, logits = measure(model, meta, prepared, lesions, target_layer, method=method)
            if plain is not None:
                r.update(presence(model, meta, plain, logits))
            results[ck][name] = r
            print(row(ck, name, r), flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", nargs="+")
    ap.add_argument("--datasets", default="../shared/datasets")
    ap.add_argument("--target-layer", default=None, help="dotted module name (default: the model's Grad-CAM layer)")
    ap.add_argument("--method", default="gradcam", help="CAM method (brainmri explain --method; default gradcam)")
    ap.add_argument("--json", default=None, help="write the numbers here")
    args = ap.parse_args(argv)
    sets = load_sets(Path(args.datasets))
    if not sets:
        print(f"cam_check: error: no data sets found under {args.datasets}", file=sys.stderr)
        return 2
    try:
        results = run(args.checkpoint, sets, args.target_layer, args.method)
    except BrainMRIError as exc:
        print(f"cam_check: error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
