"""Evaluate a trained tumor4 checkpoint everywhere it must hold up, write the model card, and
bundle fp16 weights (with metadata, temperature and card) into the package.

    python scripts/bundle_model.py RUN_DIR/best.safetensors --datasets ../shared/datasets --out results/

Runs, and records with their commands:
  * the official Testing split (1,311 images) with the leak-free subset;
  * cross-source tumor presence on the yes/no set, leaving out its images that have a
    near-duplicate in the four-class set (96 of its 98 healthy scans and 19 of its 155 tumors
    are copies of four-class images, so only its tumors are a real cross-source test);
  * cross-source healthy scans: the Alzheimer slices (all assumed notumor; those the model was
    trained on left out, the rest flagged) and the central 80 axial slices of the healthy NIfTI T1 volume;
  * the ROC-AUC of P(tumor) pooling those unseen tumors against those healthy scans.

    python scripts/bundle_model.py --compare A.safetensors B.safetensors   # one row each, no bundling

A model trained on the yes/no tumors (``data.extra_train``) has no unseen tumor source left;
``--cross-fit FOLD_CKPT=FOLD_CSV`` (repeatable; scripts/presence_folds.py) scores each fold model
of the same recipe on the fold it did not see and reports the pooled out-of-fold rate instead.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

import brainmri
from brainmri.checkpoint import load_checkpoint, save_checkpoint
from brainmri.evaluation.cross_source import wilson_interval, evaluate_tumor_presence
from brainmri.evaluation.evaluate import evaluate_checkpoint
from brainmri.evaluation.metrics import roc_auc

PACKAGE_WEIGHTS = Path(__file__).resolve().parents[1] / "src" / "brainmri" / "weights" / "tumor4.safetensors"


def pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.2f}%"


def ci(c) -> str:
    return f"[{100 * c[0]:.1f}, {100 * c[1]:.1f}]"


def _strip(r: dict) -> dict:
    """A presence result without its per-image arrays (kept in the JSON files, not the package)."""
    return {k: v for k, v in r.items() if k not in ("paths", "p_tumor", "truth_tumor")}


def _source_name(e: dict) -> str:
    """The datasets an extra source's images come from (their recorded dataset/class/file names)."""
    files = e.get("files") or []
    vols = {f.split("/")[-2] for f in files if len(f.split("/")) >= 2}
    if len(vols) == 1 and all(f.rsplit("/", 1)[-1].startswith(next(iter(vols)) + "_") for f in files):
        return f"slices of the NIfTI volume {next(iter(vols))} (scripts/volume_slices.py)"
    sets = sorted({f.split("/")[0] for f in files})
    return f"{', '.join(sets)} (listed in {e['source']})" if sets and not Path(e["source"]).is_dir() else str(e["source"])


def _top_label_note(cal) -> str:
    """The checkpoint's top-label scaling decision, in words (nothing for one made before it existed)."""
    cal = cal if isinstance(cal, dict) else {}
    check = cal.get("top_label_check") or {}
    if cal.get("top_label"):
        return f", then top-label scaling (kept: {check.get('reason', 'fitted on validation')})"
    return f"; top-label scaling not kept ({check['reason']})" if check.get("reason") else ""


def model_card(meta, r: dict, recipe: str | None = None) -> str:
    test, yn, ad, t1 = r["test"], r["yes_no"], r["alzheimer"], r["nifti_t1"]
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
        f"validation carved from it (stratified, seed {meta.data.get('seed')}); counts {json.dumps(meta.data.get('counts'))}."
        + "".join(f" Extra training-only presence source: {_source_name(e)} ({e['n_tumor']} tumor, {e['n_notumor']} notumor images"
                  f"{', each %dx per epoch' % e['repeat'] if e.get('repeat', 1) > 1 else ''})." for e in meta.data.get("extra_train") or []),
        "No model hub is reachable where it was trained: the network starts from random weights (no ImageNet pre-training).",
        recipe or f"Recipe: {meta.model.name}, {t.get('epochs')} epochs, AdamW lr {t.get('lr')}, weight decay {t.get('weight_decay')}, cosine schedule, "
        f"label smoothing {t.get('label_smoothing')}, class-weighted loss, brain crop, augmentation {json.dumps(t.get('augment'))}.",
        "",
        "## Results (95% intervals: bootstrap for accuracy / macro F1, Wilson for rates)",
        f"- Official Testing split (n={test['n']}): accuracy {pct(test['accuracy'])} {ci(test['ci']['accuracy'])}, macro F1 {test['macro_f1']:.4f} [{test['ci']['macro_f1'][0]:.4f}, {test['ci']['macro_f1'][1]:.4f}].",
        f"- Leakage: {leak.get('n_leaked')} of {leak.get('n_test')} Testing images have a near-duplicate in Training (256-bit pHash <= {leak.get('threshold')}).",
        f"- Leak-free subset (n={lf.get('n')}): accuracy {pct(lf.get('accuracy'))} {ci(lf['ci']['accuracy']) if lf else ''}, macro F1 {lf.get('macro_f1', float('nan')):.4f}.",
        f"- Calibration: temperature {test['temperature']:.3f} fitted on validation{_top_label_note(meta.calibration)}; "
        f"ECE on Testing {test['ece_before']:.4f} -> {test['ece']:.4f}.",
    ]
    a, ex = yn["tumor_called_tumor"], yn.get("excluded_seen") or {}
    cf = r.get("cross_fit")
    if yn.get("warning"):
        lines.append(f"- Tumors of the yes/no set (N. Chakrabarty, Kaggle), leaving out its {ex.get('n_excluded')} images with a near-duplicate in the four-class set: "
                     f"**trained on** (data.extra_train), so {a['count']}/{a['n']} = {pct(a['rate'])} called a tumor class is not a cross-source number.")
        if cf:
            lines.append(f"  Cross-fitted instead: {len(cf['folds'])} fold models of the same recipe, each trained on the other folds (near-duplicate clusters never straddle folds), "
                         f"called {cf['count']}/{cf['n']} = {pct(cf['rate'])} {ci(cf['ci95'])} of the scans they never saw a tumor class "
                         "(other scans of a source seen in training: weaker evidence than an unseen source).")
    else:
        lines.append(f"- Cross-source tumors, yes/no set (N. Chakrabarty, Kaggle; never trained on), leaving out its {ex.get('n_excluded')} images with a near-duplicate "
                     f"in the four-class set ({json.dumps(ex.get('by_label'))}): called a tumor class {a['count']}/{a['n']} = {pct(a['rate'])} {ci(a['ci95'])}. "
                     "Its healthy scans are not a cross-source test: almost all of them are copies of four-class `notumor` images.")
    c = ad["notumor_called_notumor"]
    k = (ad.get("excluded_seen") or {}).get("n_excluded_trained")
    seen = ("; never trained on" if not ad.get("warning") else
            f"; the {k} slices the model was trained on (data.extra_train) left out, but slices of one subject may sit on both sides, so this is not a cross-source number"
            if k else " — the model was trained on part of this set (data.extra_train), so this is not a cross-source number")
    lines.append(f"- Healthy scans from another source, Alzheimer MRI slices (128 px, skull-stripped{seen}): called notumor {c['count']}/{c['n']} = {pct(c['rate'])} {ci(c['ci95'])}.")
    c = t1["notumor_called_notumor"]
    lines.append(f"- Healthy scans from another source, central 80 axial slices of a healthy 0.8 mm T1 NIfTI volume (one subject; never trained on): called notumor "
                 f"{c['count']}/{c['n']} = {pct(c['rate'])} {ci(c['ci95'])}.")
    seen = " (its tumors were seen in training: optimistic)" if yn.get("warning") else ""
    lines.append(f"- ROC-AUC of P(tumor), the yes/no tumors above against the unseen healthy scans above{seen}: {r['pooled_auc']:.4f}.")
    lines += [
        "",
        "## Limits",
        "- The four-class set's split is image-level with many near-duplicates across Training and Testing; the leak-free numbers are the honest ones,",
        "  and its `notumor` class comes almost entirely from one source, so a model can learn the source instead of the tumor: check the cross-source rows.",
        "- Tumor recall and healthy-scan specificity on scans from other sources are well below the in-distribution numbers (the cross-source rows):",
        "  never use it to rule a tumor out.",
        "- 2-D slices only; volumes are judged slice by slice. No patient-level validation was possible (no patient ids).",
        "- Inputs that are not brain MRI are flagged out-of-distribution by input statistics and an energy threshold; the guard is a heuristic.",
    ]
    return "\n".join(lines)


def evaluate_everywhere(checkpoint: str, d: Path, out: Path | None = None) -> dict:
    """Every number the model card and README report, for one checkpoint."""
    four = d / "brain-tumor-mri"
    test = evaluate_checkpoint(checkpoint, four, split="test", json_out=out and out / "tumor4_test.json",
                               report=out and out / "tumor4_report.html", cache_dir="auto")
    yn = evaluate_tumor_presence(checkpoint, d / "brain-mri-yes-no", exclude_seen=four)
    ad = evaluate_tumor_presence(checkpoint, d / "alzheimer-mri", assume_label="notumor", exclude_trained=True)
    t1 = evaluate_tumor_presence(checkpoint, d / "nifti" / "T1.nii.gz", assume_label="notumor", slices="middle:80")
    healthy = [p for r in ([] if ad.get("warning") else [ad]) + [t1] for p in r["p_tumor"]]
    tumors = [p for p, t in zip(yn["p_tumor"], yn["truth_tumor"]) if t]
    pooled = roc_auc(np.array([True] * len(tumors) + [False] * len(healthy)), np.array(tumors + healthy))
    r = {"test": test, "yes_no": yn, "alzheimer": ad, "nifti_t1": t1, "pooled_auc": pooled}
    if out:
        for name, v in (("yesno_presence.json", yn), ("alzheimer_presence.json", ad), ("nifti_t1_presence.json", t1)):
            (out / name).write_text(json.dumps(v, indent=2))
    return r


def cross_fit(specs: list[str]) -> dict | None:
    """Pooled out-of-fold tumor rate: each ``CKPT=CSV`` fold model scored on its held-out fold."""
    if not specs:
        return None
    folds = []
    for spec in specs:
        ckpt, sep, csv = spec.rpartition("=")
        if not sep or not Path(ckpt).is_file() or not Path(csv).is_file():
            raise SystemExit(f"error: --cross-fit {spec!r}: expected FOLD_CHECKPOINT=FOLD_CSV, both existing files")
        r = evaluate_tumor_presence(ckpt, csv, assume_label="tumor")
        if r.get("warning") and "other images" not in r["warning"]:
            raise SystemExit(f"error: --cross-fit {spec!r}: {r['warning']}")
        folds.append({"checkpoint": ckpt, "fold": csv, **r["tumor_called_tumor"]})
    k, n = sum(f["count"] for f in folds), sum(f["n"] for f in folds)
    return {"folds": folds, "n": n, "count": k, "rate": k / n, "ci95": wilson_interval(k, n)}


def _rate(v: dict | None) -> str:
    return "n/a" if not v else f"{100 * v['rate']:.1f}% ({v['count']}/{v['n']})"


def compare_row(name: str, r: dict) -> str:
    t, lf = r["test"], r["test"].get("leak_free") or {}
    k = (r["alzheimer"].get("excluded_seen") or {}).get("n_excluded_trained")
    alz = _rate(r["alzheimer"]["notumor_called_notumor"]) + (f" (held out; {k} others trained on)" if k else " (trained on)" if r["alzheimer"].get("warning") else "")
    yn = _rate(r["yes_no"]["tumor_called_tumor"]) + (" (trained on)" if r["yes_no"].get("warning") else "")
    return (f"| {name} | {100 * t['accuracy']:.2f}% | {t['macro_f1']:.3f} | {100 * lf.get('accuracy', float('nan')):.2f}% | "
            f"{yn} | {alz} | {_rate(r['nifti_t1']['notumor_called_notumor'])} | {r['pooled_auc']:.3f} | {t['ece']:.4f} |")


COMPARE_HEADER = ("| checkpoint | official Testing acc | macro F1 | leak-free acc | unseen tumors called tumor (yes/no, deduplicated) | "
                  "Alzheimer healthy -> notumor | NIfTI T1 healthy slices -> notumor | pooled AUC P(tumor) | ECE |\n|---|---|---|---|---|---|---|---|---|")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", nargs="+")
    ap.add_argument("--compare", action="store_true", help="print one table row per checkpoint; write and bundle nothing")
    ap.add_argument("--datasets", default=str(Path(__file__).resolve().parents[2] / "shared" / "datasets"))
    ap.add_argument("--out", default="results")
    ap.add_argument("--recipe", default=None, help="recipe sentence for the card (default: from the checkpoint's training config)")
    ap.add_argument("--cross-fit", action="append", default=[], metavar="FOLD_CKPT=FOLD_CSV",
                    help="fold model and the fold it did not see (repeatable): pooled out-of-fold tumor rate")
    ap.add_argument("--no-bundle", action="store_true", help="evaluate and write the card, but do not copy weights into the package")
    args = ap.parse_args(argv)
    d = Path(args.datasets)
    if args.compare:
        rows = [compare_row(c, evaluate_everywhere(c, d)) for c in args.checkpoint]
        print(COMPARE_HEADER + "\n" + "\n".join(rows))
        cf = cross_fit(args.cross_fit)
        if cf:
            print(f"cross-fitted out-of-fold tumors called tumor: {_rate(cf)} (" + "; ".join(f"{f['checkpoint']} on {f['fold']}: {_rate(f)}" for f in cf["folds"]) + ")")
        return 0
    if len(args.checkpoint) != 1:
        ap.error("bundling takes one checkpoint (use --compare for several)")
    checkpoint = args.checkpoint[0]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    r = evaluate_everywhere(checkpoint, d, out)
    r["cross_fit"] = cross_fit(args.cross_fit)
    test = r["test"]
    model, meta = load_checkpoint(checkpoint)
    card = model_card(meta, r, args.recipe)
    print(compare_row(checkpoint, r))
    (out / "MODEL_CARD.md").write_text(card + "\n")
    print(card)
    if not args.no_bundle:
        meta.extra = {**(meta.extra or {}), "model_card": card, "results": {
            "test": {k: test[k] for k in ("n", "accuracy", "macro_f1", "ece", "ece_before", "ci")},
            "leak_free": test.get("leak_free"), "pooled_auc": r["pooled_auc"],
            **{k: _strip(r[k]) for k in ("yes_no", "alzheimer", "nifti_t1")}, "cross_fit": r["cross_fit"]}}
        meta.data = {k: v for k, v in meta.data.items() if k != "root"}  # no local paths in the package
        save_checkpoint(PACKAGE_WEIGHTS, model, meta, dtype=torch.float16)
        print(f"bundled: {PACKAGE_WEIGHTS} ({PACKAGE_WEIGHTS.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
