"""Evaluate a trained tumor4 checkpoint everywhere it must hold up, write the model card, and
bundle fp16 weights (with metadata, temperature and card) into the package.

    python scripts/bundle_model.py RUN_DIR/best.safetensors --datasets ../shared/datasets --out results/

Runs, and records with their commands:
  * the official Testing split (1,311 images) with the leak-free subset;
  * cross-source tumor presence on the yes/no set (never used in training);
  * cross-source healthy scans: the Alzheimer slices (never used in training), all assumed notumor.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

import brainmri
from brainmri.checkpoint import load_checkpoint, save_checkpoint
from brainmri.evaluation.cross_source import evaluate_tumor_presence
from brainmri.evaluation.evaluate import evaluate_checkpoint

PACKAGE_WEIGHTS = Path(__file__).resolve().parents[1] / "src" / "brainmri" / "weights" / "tumor4.safetensors"


def pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.2f}%"


def ci(c) -> str:
    return f"[{100 * c[0]:.1f}, {100 * c[1]:.1f}]"


def model_card(meta, test: dict, yn: dict, ad: dict, recipe: str | None = None) -> str:
    lf = test.get("leak_free") or {}
    leak = test.get("leak") or {}
    t = meta.train
    lines = [
        f"# Model card: brainmri tumor4 ({meta.model.name}, {meta.preprocess.image_size} px, trained from scratch)",
        "",
        brainmri.DISCLAIMER,
        "",
        "## Intended use",
        "Research and teaching: classifying axial/coronal/sagittal 2-D brain MRI slices into glioma, meningioma, pituitary tumor or no tumor,",
        "with heat-map explanations. Not for diagnosis, triage or any clinical decision.",
        "",
        "## Data",
        f"Trained on the official `Training/` folder of \"Brain Tumor MRI Dataset\" (M. Nickparvar, Kaggle; figshare + SARTAJ + Br35H), "
        f"validation carved from it (stratified, seed {meta.data.get('seed')}); counts {json.dumps(meta.data.get('counts'))}.",
        "No model hub is reachable where it was trained: the network starts from random weights (no ImageNet pre-training).",
        recipe or f"Recipe: {meta.model.name}, {t.get('epochs')} epochs, AdamW lr {t.get('lr')}, weight decay {t.get('weight_decay')}, cosine schedule, "
        f"label smoothing {t.get('label_smoothing')}, class-weighted loss, brain crop, augmentation {json.dumps(t.get('augment'))}.",
        "",
        "## Results (95% intervals: bootstrap for accuracy / macro F1, Wilson for rates)",
        f"- Official Testing split (n={test['n']}): accuracy {pct(test['accuracy'])} {ci(test['ci']['accuracy'])}, macro F1 {test['macro_f1']:.4f} {ci(test['ci']['macro_f1'])}.",
        f"- Leakage: {leak.get('n_leaked')} of {leak.get('n_test')} Testing images have a near-duplicate in Training (256-bit pHash <= {leak.get('threshold')}).",
        f"- Leak-free subset (n={lf.get('n')}): accuracy {pct(lf.get('accuracy'))} {ci(lf['ci']['accuracy']) if lf else ''}, macro F1 {lf.get('macro_f1', float('nan')):.4f}.",
        f"- Calibration: temperature {test['temperature']:.3f} fitted on validation; ECE on Testing {test['ece_before']:.4f} -> {test['ece']:.4f}.",
    ]
    if yn.get("tumor_called_tumor"):
        a, b = yn["tumor_called_tumor"], yn["notumor_called_notumor"]
        lines.append(f"- Cross-source, yes/no set (N. Chakrabarty, Kaggle; never trained on): tumor scans called a tumor class {a['count']}/{a['n']} = {pct(a['rate'])} {ci(a['ci95'])}; "
                     f"healthy scans called notumor {b['count']}/{b['n']} = {pct(b['rate'])} {ci(b['ci95'])}.")
    if ad.get("notumor_called_notumor"):
        c = ad["notumor_called_notumor"]
        lines.append(f"- Cross-source healthy, Alzheimer MRI slices (128 px, skull-stripped; never trained on): called notumor {c['count']}/{c['n']} = {pct(c['rate'])} {ci(c['ci95'])}.")
    lines += [
        "",
        "## Limits",
        "- The four-class set's split is image-level with many near-duplicates across Training and Testing; the leak-free numbers are the honest ones,",
        "  and its `notumor` class comes almost entirely from one source, so a model can learn the source instead of the tumor: check the cross-source rows.",
        "- 2-D slices only; volumes are judged slice by slice. No patient-level validation was possible (no patient ids).",
        "- Inputs that are not brain MRI are flagged out-of-distribution by input statistics and an energy threshold; the guard is a heuristic.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint")
    ap.add_argument("--datasets", default=str(Path(__file__).resolve().parents[2] / "shared" / "datasets"))
    ap.add_argument("--out", default="results")
    ap.add_argument("--recipe", default=None, help="recipe sentence for the card (default: from the checkpoint's training config)")
    ap.add_argument("--no-bundle", action="store_true", help="evaluate and write the card, but do not copy weights into the package")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    d = Path(args.datasets)
    test = evaluate_checkpoint(args.checkpoint, d / "brain-tumor-mri", split="test", json_out=out / "tumor4_test.json", report=out / "tumor4_report.html", cache_dir="auto")
    yn = evaluate_tumor_presence(args.checkpoint, d / "brain-mri-yes-no")
    ad = evaluate_tumor_presence(args.checkpoint, d / "alzheimer-mri", assume_label="notumor")
    for name, r in (("yesno_presence.json", yn), ("alzheimer_presence.json", ad)):
        (out / name).write_text(json.dumps(r, indent=2))
    model, meta = load_checkpoint(args.checkpoint)
    card = model_card(meta, test, yn, ad, args.recipe)
    (out / "MODEL_CARD.md").write_text(card + "\n")
    print(card)
    if not args.no_bundle:
        meta.extra = {**(meta.extra or {}), "model_card": card, "results": {
            "test": {k: test[k] for k in ("n", "accuracy", "macro_f1", "ece", "ece_before", "ci")},
            "leak_free": test.get("leak_free"), "yes_no": yn, "alzheimer_healthy": ad}}
        meta.data = {k: v for k, v in meta.data.items() if k != "root"}  # no local paths in the package
        save_checkpoint(PACKAGE_WEIGHTS, model, meta, dtype=torch.float16)
        print(f"bundled: {PACKAGE_WEIGHTS} ({PACKAGE_WEIGHTS.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
