"""``brainmri demo``: the main job on a fresh machine, with no dataset and no internet.

Generates synthetic brain phantoms, trains a small CNN for about a minute on the CPU, evaluates
it (metrics with confidence intervals, calibration, confusion matrix), explains a few scans with
Grad-CAM, and writes the self-contained HTML report.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import brainmri
from brainmri.cli.helpfmt import DefaultsHelp


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "demo",
        help="end-to-end demo on synthetic phantoms (about a minute on CPU)",
        description=__doc__,
        formatter_class=DefaultsHelp,
    )
    p.add_argument("--out", default="demo_out", help="output folder")
    p.add_argument("--epochs", type=int, default=14, help="training epochs")
    p.add_argument("--n-per-class", type=int, default=48, help="training phantoms per class")
    p.add_argument("--model", default="seed002_cnn", help="model name")
    p.add_argument("--image-size", type=int, default=64, help="model input size")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def run(args) -> int:
    from brainmri.config import RunConfig
    from brainmri.data.io import read_image
    from brainmri.data.synthetic import make_phantom_dataset
    from brainmri.evaluation.evaluate import evaluate_checkpoint
    from brainmri.explain.cam import explain
    from brainmri.inference.classifier import Classifier
    from brainmri.training import run_training

    out = Path(args.out)
    started = time.time()
    data = out / "data"
    if not (data / "Training").is_dir():
        print(f"[1/4] generating synthetic phantoms in {data}")
        make_phantom_dataset(data, layout="split", n_per_class=args.n_per_class, test_per_class=12, size=96, seed=args.seed)
    cfg = RunConfig()
    cfg.data.root = str(data)
    cfg.data.preset = "tumor4"
    cfg.data.cache_dir = None
    cfg.preprocess.image_size = args.image_size
    cfg.model.name = args.model
    cfg.train.epochs = args.epochs
    cfg.train.lr = 3e-3
    cfg.train.batch_size = 16
    cfg.train.seed = args.seed
    cfg.train.output_dir = str(out / "runs")
    cfg.train.run_name = f"demo-{time.strftime('%Y%m%d-%H%M%S')}"
    print(f"[2/4] training {args.model} for {args.epochs} epochs on the CPU")
    result = run_training(cfg, progress=not args.quiet)
    report = result.run_dir / "report.html"
    print("[3/4] evaluating on the held-out Testing phantoms and writing the report")
    metrics = evaluate_checkpoint(result.checkpoint, data, split="test", report=report, json_out=result.run_dir / "eval.json", n_boot=500)
    print("[4/4] explaining one scan per class with Grad-CAM")
    clf = Classifier.load(result.checkpoint)
    from PIL import Image

    explained = []
    for class_dir in sorted((data / "Testing").iterdir()):
        scan = sorted(class_dir.glob("*.png"))[0]
        pred = clf.predict(scan)
        cam = explain(clf.torch_model, clf.meta, [read_image(scan)])[0]
        if cam is not None:
            path = out / "explain" / f"{class_dir.name}_overlay.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(cam.overlay).save(path)
            explained.append(str(path))
        said = (f"predicted={pred.label} confidence={pred.confidence:.2f}" if pred.label is not None
                else f"not classified (out of distribution: {pred.ood_reason})")
        print(f"    {scan.relative_to(out)}: true={class_dir.name} {said}")
    ci = metrics.get("ci", {}).get("accuracy")
    ci_text = f" (95% CI {ci[0]:.3f}-{ci[1]:.3f})" if ci else ""
    print()
    print(f"test accuracy {metrics['accuracy']:.3f}{ci_text}, macro F1 {metrics['macro_f1']:.3f}, ECE {metrics['ece']:.3f} on {metrics['n']} phantoms")
    print(f"report:      {report}")
    print(f"checkpoint:  {result.checkpoint}")
    print(f"overlays:    {out / 'explain'}")
    print(f"done in {time.time() - started:.0f} s. {brainmri.DISCLAIMER}")
    print("Next: train on real data with `brainmri train --data PATH/TO/brain-tumor-mri --preset tumor4`,")
    print("      then `brainmri predict your_scan.dcm` (uses the bundled model when no --checkpoint is given).")
    (out / "demo.json").write_text(json.dumps({"report": str(report), "checkpoint": str(result.checkpoint), "accuracy": metrics["accuracy"]}, indent=2))
    return 0
