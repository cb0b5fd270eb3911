"""CPU inference speed: PyTorch fp32, PyTorch bf16 + channels-last, onnxruntime.

Measures, for one checkpoint (default: a freshly built, untrained resnet18 at 224 px):
  * batch-1 latency (median ms of the model forward),
  * batch-N throughput (images/s, N = --batch, default 32),
  * the preprocessing cost per image (decode -> crop -> resize -> normalise), shared by all.
Prints a markdown table and names the fastest backend (the service default).

Usage:
    nice -n 10 python bench/inference_bench.py [--checkpoint C] [--arch resnet18] [--image-size 224]
        [--batch 32] [--repeats 15] [--threads N]
"""
from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import brainmri
from brainmri import Classifier
from brainmri.checkpoint import CheckpointMeta, save_checkpoint
from brainmri.config import ModelConfig, PreprocessConfig
from brainmri.data.synthetic import TUMOR4, make_phantom
from brainmri.inference.inputs import decode_bytes
from brainmri.models import create_model


def build_checkpoint(arch: str, size: int, folder: Path) -> Path:
    torch.manual_seed(0)
    meta = CheckpointMeta(model=ModelConfig(name=arch), class_names=list(TUMOR4), preprocess=PreprocessConfig(image_size=size), task="tumor4")
    return save_checkpoint(folder / f"{arch}_{size}.safetensors", create_model(arch, 4, in_chans=1, image_size=size), meta)


def timed(fn, repeats: int, warmup: int = 2) -> float:
    """Median seconds of ``fn()`` over ``repeats`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def preprocess_ms(clf: Classifier, repeats: int) -> float:
    buf = io.BytesIO()
    Image.fromarray(make_phantom(0, 512, np.random.default_rng(0), class_name="glioma")).save(buf, format="PNG")
    data = buf.getvalue()
    return 1000 * timed(lambda: clf.prepare(decode_bytes(data, "bench").images[0]), repeats)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--arch", default="resnet18")
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--threads", type=int, default=None, help="torch / onnxruntime intra-op threads")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    tmp = tempfile.TemporaryDirectory()
    ckpt = Path(args.checkpoint) if args.checkpoint else build_checkpoint(args.arch, args.image_size, Path(tmp.name))
    configs = {
        "pytorch fp32": dict(backend="torch", channels_last=False),
        "pytorch fp32 + channels_last": dict(backend="torch", channels_last=True),
        "pytorch bf16 + channels_last": dict(backend="torch", channels_last=True, bf16=True),
        "onnxruntime fp32": dict(backend="onnx", num_threads=args.threads),
    }
    rows = []
    ref = None
    for name, kwargs in configs.items():
        clf = Classifier.load(ckpt, **kwargs)
        s, c = clf.meta.preprocess.image_size, clf.meta.preprocess.in_chans
        x1 = torch.randn(1, c, s, s, generator=torch.Generator().manual_seed(0))
        xb = torch.randn(args.batch, c, s, s, generator=torch.Generator().manual_seed(1))
        lat = timed(lambda: clf.logits(x1), args.repeats)
        thr = args.batch / timed(lambda: clf.logits(xb), max(3, args.repeats // 3), warmup=1)
        out = clf.logits(xb)
        ref = out if ref is None else ref
        rows.append((name, lat * 1000, thr, float((out - ref).abs().max())))
        print(f"  measured {name}", file=sys.stderr)
    pre = preprocess_ms(clf, args.repeats)
    print(f"\nCheckpoint: {ckpt.name} ({clf.meta.model.name}, {clf.meta.preprocess.image_size} px); "
          f"torch threads: {torch.get_num_threads()}; torch {torch.__version__}\n")
    print(f"| backend | batch-1 latency (median ms) | batch-{args.batch} throughput (img/s) | max abs logit diff vs fp32 |")
    print("|---|---:|---:|---:|")
    for name, lat, thr, diff in rows:
        print(f"| {name} | {lat:.1f} | {thr:.1f} | {diff:.1e} |")
    print(f"\nPreprocessing (decode 512 px PNG, crop, resize, normalise): {pre:.1f} ms per image.")
    best = max(rows, key=lambda r: r[2])
    print(f"Fastest batch throughput: {best[0]}; lowest latency: {min(rows, key=lambda r: r[1])[0]}.")
    print(brainmri.DISCLAIMER)
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
