"""``brainmri predict PATH...``: classify files, folders (recursive) and globs.

Formats are sniffed from content: PNG/JPEG/BMP/TIFF/GIF/WebP, DICOM (also without extension),
NIfTI (``--axis`` / ``--slices`` choose the slices of a volume). A table goes to the terminal;
``--json`` / ``--csv`` write every field. A file that cannot be read gets its error and the rest
go on; the exit code is 1 if any file failed, else 0.
"""
from __future__ import annotations

import csv
import glob
import io
import sys
from pathlib import Path
from typing import Any

import brainmri
from brainmri.cli.outputs import check_distinct_outputs, check_no_foreign_images, check_output_dir, check_output_file, input_folders
from brainmri.errors import ConfigError
from brainmri.inference.sniff import sniff_file
from brainmri.outputs import PREDICTION_CSV_HEADER, write_json, write_output

KNOWN_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".gif", ".webp", ".dcm", ".dicom", ".ima", ".nii", ".nii.gz")


def _wanted_in_folder(p: Path) -> bool:
    """Folder members: hidden files and a DICOM export's index (``DICOMDIR``: no pixels) are
    skipped; known extensions are taken (a bad one then reports its error); other files are taken
    when their content is a supported format."""
    if any(part.startswith(".") for part in p.parts[-1:]) or p.name == "Thumbs.db" or p.name.upper() == "DICOMDIR":
        return False
    name = p.name.lower()
    return name.endswith(KNOWN_SUFFIXES) or sniff_file(p) is not None


def expand_inputs(specs: list[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """Paths, folders and glob patterns -> (files in order, unmatched specs with a reason)."""
    from brainmri.inference.nifti import pair_partner

    files: list[str] = []
    missing: list[tuple[str, str]] = []
    seen: set[str] = set()

    def add(path: Path) -> None:
        if path.name.lower().endswith((".img", ".img.gz")) and (header := pair_partner(path)) is not None:
            path = header  # one result per Analyze / NIfTI pair, under its header's name, however it was named
        key = str(path)
        if key not in seen:
            seen.add(key)
            files.append(key)

    for spec in specs:
        p = Path(spec)
        if p.is_dir():
            found = sorted(q for q in p.rglob("*") if q.is_file() and _wanted_in_folder(q))
            if not found:
                missing.append((spec, "folder contains no image, DICOM or NIfTI files"))
            for q in found:
                add(q)
        elif p.exists():
            add(p)
        elif glob.has_magic(spec):
            matches = sorted(Path(m) for m in glob.glob(spec, recursive=True))
            matches = [m for m in matches if m.is_file()]
            if not matches:
                missing.append((spec, "no files match this pattern"))
            for m in matches:
                add(m)
        else:
            missing.append((spec, "file not found"))
    return files, missing


def _clip(text: str, width: int) -> str:
    """Keep the end of a long path (the file name matters most)."""
    return text if len(text) <= width else "..." + text[-(width - 3):]


def _table(rows: list[dict[str, Any]]) -> str:
    headers = ("file", "label", "confidence", "ood", "note")
    body = []
    for r in rows:
        info = r.get("info") or {}
        top = r.get("most_suspicious_slices") or []
        parts = [r["error"] or r["ood_reason"],
                 f"{info['slices_not_normal']} of {info['slices_used']} slices called {'a finding' if 'notumor' not in r['probabilities'] else 'a tumor class'}"
                 " (label: mean over slices)" if info.get("slices_not_normal") and info.get("slices_used", 0) > 1 else None,
                 ("most suspicious slice " if len(top) == 1 else "most suspicious slices ") + ", ".join(map(str, top)) if top else None,
                 (r.get("info") or {}).get("note")]  # e.g. which volume of a 4-D NIfTI was used
        note = "; ".join(x for x in parts if x)
        conf = "" if r["confidence"] is None else f"{r['confidence']:.3f}"
        body.append((str(r["path"]), r["label"] or ("ERROR" if r["error"] else "-"), conf, "yes" if r["out_of_distribution"] else "", note))
    widths = [min(60, max(len(h), *(len(b[i]) for b in body))) for i, h in enumerate(headers[:-1])] if body else [len(h) for h in headers[:-1]]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths) + "  {}"
    lines = [fmt.format(*headers), fmt.format(*("-" * w for w in widths), "----")]
    lines += [fmt.format(*(_clip(b[i], widths[i]) if i == 0 else b[i] for i in range(4)), b[4]) for b in body]
    return "\n".join(lines)


def _write_csv(path: Path, rows: list[dict[str, Any]], class_names: list[str]) -> None:
    buf = io.StringIO(newline="")
    w = csv.writer(buf)
    w.writerow([*PREDICTION_CSV_HEADER, *[f"p_{c}" for c in class_names]])
    for r in rows:
        w.writerow([r["path"], r["label"] or "", r["confidence"] if r["confidence"] is not None else "", r["out_of_distribution"], r["ood_reason"] or "", r["error"] or "", *[r["probabilities"].get(c, "") for c in class_names]])
    write_output(path, buf.getvalue().encode())


def _write_overlays(clf, files: list[str], rows: list[dict[str, Any]], out_dir: Path, axis: str, slices: str) -> None:
    from brainmri.inference.inputs import decode_path
    from brainmri.outputs import png_bytes, write_output

    out_dir.mkdir(parents=True, exist_ok=True)
    for i, (f, r) in enumerate(zip(files, rows)):
        if r["error"] or r["out_of_distribution"]:
            continue
        d = decode_path(f, axis=axis, slices=slices)
        k = d.indices.index(r["most_suspicious_slices"][0]) if d.is_volume else 0
        overlay = clf.explain_image(d.images[k])
        stem = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in Path(f).name)
        write_output(out_dir / f"{i:04d}_{stem}.cam.png", png_bytes(overlay))  # marked: a rerun may replace it
        r["overlay"] = str(out_dir / f"{i:04d}_{stem}.cam.png")


def _is_onnx_file(path: str) -> bool:
    """True when ``Classifier.load`` would pick the onnx backend for this file by itself (the
    same test: ONNX content, or an ``.onnx`` name on a file that is not safetensors)."""
    from brainmri.checkpoint import looks_like_onnx, looks_like_safetensors

    p = Path(path)
    return p.is_file() and (looks_like_onnx(p) or (p.suffix.lower() == ".onnx" and not looks_like_safetensors(p)))


def run(args) -> int:
    from brainmri.inference.classifier import Classifier, Prediction
    from brainmri.inference.nifti import check_slices_spec, parse_axis

    parse_axis(args.axis)
    check_slices_spec(args.slices)
    if args.batch_size < 1:
        raise ConfigError("--batch-size must be >= 1")
    if args.bf16 and args.backend == "onnx":
        raise ConfigError("--bf16 is a torch-backend option; the onnx backend runs the exported float32 graph")
    if args.bf16 and args.checkpoint and _is_onnx_file(args.checkpoint):
        raise ConfigError(f"--bf16 is a torch-backend option; {args.checkpoint} is an ONNX model, which runs on the onnx backend as an exported float32 graph")
    if args.backend == "torch" and args.checkpoint and _is_onnx_file(args.checkpoint):
        raise ConfigError(f"--backend torch: {args.checkpoint} is an ONNX model, which runs on the onnx backend only; "
                          "drop --backend, or give the .safetensors checkpoint it was exported from")
    files, missing = expand_inputs(args.paths)
    folders = input_folders(args.paths)
    inputs = [*folders, *files, *([args.checkpoint] if args.checkpoint else [])]  # folders: no image name written into one
    check_output_file(args.json, "--json", not_same_as=inputs, force=args.force)
    check_output_file(args.csv, "--csv", not_same_as=inputs, force=args.force)
    check_distinct_outputs(("--json", args.json), ("--csv", args.csv))
    check_output_dir(args.explain, "--explain", not_inside=input_folders(args.paths, subfolders=True))  # read as scans next time
    check_no_foreign_images(args.explain, "--explain", args.force)
    clf = Classifier.load(args.checkpoint, backend=args.backend or "torch", bf16=args.bf16)
    if args.explain:
        clf.torch_model  # noqa: B018 - an ONNX file cannot explain: say so before predicting
    preds = clf.predict_batch(files, batch_size=args.batch_size, axis=args.axis, slices=args.slices)
    preds += [Prediction.failed(spec, f"{spec}: {reason}") for spec, reason in missing]
    rows = [p.to_dict() for p in preds]
    if args.explain:
        _write_overlays(clf, files, rows, Path(args.explain), args.axis, args.slices)
    print(_table(rows))
    n_bad = sum(1 for r in rows if r["error"])
    n_ood = sum(1 for r in rows if r["out_of_distribution"])
    print(f"\n{len(rows)} input(s): {len(rows) - n_bad - n_ood} classified, {n_ood} not classified (out of distribution), {n_bad} failed.")
    print(brainmri.DISCLAIMER)
    if args.json:
        write_json({"disclaimer": brainmri.DISCLAIMER, "model": clf.describe(), "results": rows}, args.json)
    if args.csv:
        _write_csv(Path(args.csv), rows, clf.class_names)
    sys.stdout.flush()
    return 1 if n_bad else 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "predict",
        help="classify images, DICOM and NIfTI files, folders or globs",
        description=f"Classify brain MRI files. Formats are detected from content. {brainmri.DISCLAIMER}",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="files, folders (searched recursively) or glob patterns (quote them)")
    p.add_argument("--checkpoint", "-c", default=None, help="model (.safetensors or exported .onnx); default: the bundled tumor4 model")
    p.add_argument("--backend", choices=("torch", "onnx"), default=None, help="inference engine (default: torch; an .onnx model: onnx)")
    p.add_argument("--bf16", action="store_true", help="torch backend: bfloat16 autocast")
    p.add_argument("--batch-size", type=int, default=32, help="images per forward pass (default: 32)")
    p.add_argument("--json", metavar="OUT", help="write all results (and the disclaimer) as JSON")
    p.add_argument("--csv", metavar="OUT", help="write results as CSV (one probability column per class)")
    p.add_argument("--force", action="store_true", help="replace existing --json / --csv files that brainmri did not write; let --explain write into a folder holding other images")
    p.add_argument("--explain", metavar="DIR", help="write a Grad-CAM overlay PNG per predicted file into DIR")
    p.add_argument("--axis", default="axial", help="NIfTI slicing axis: axial, coronal, sagittal or 0/1/2 (default: axial)")
    p.add_argument("--slices", default="middle", help="NIfTI slices: middle, middle:K, all, A:B, A:B:STEP or N (default: middle)")
    p.set_defaults(func=run)
