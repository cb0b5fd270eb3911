"""Training throughput of brainmri's DenseNet121 step against the seeds' Keras stack (issue #3).

What is measured, side by side, in one run:

* **brainmri**: ``create_model("densenet121", 4, in_chans=1)`` in channels-last, wrapped in
  ``brainmri.training.module.ClassifierModule`` (AdamW, class-weighted cross-entropy, the
  per-step LR schedule) and trained by a Lightning ``Trainer`` with ``precision="bf16-mixed"``
  (bf16 autocast on CPU) on an in-memory synthetic dataset; ``limit_train_batches`` bounds the
  run. A callback times each optimiser step (forward + backward + update).
  Repeated under three allocators: glibc malloc (default), tcmalloc (``LD_PRELOAD``), and glibc
  with ``GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=4294967296``.
* **Keras peer**: ``keras.applications.DenseNet121(weights=None, input_shape=(S, S, 3),
  classes=4)``, Adam, categorical cross-entropy, ``train_on_batch`` on random data, float32 (the
  seeds' stack). It runs in its own virtualenv ``.venv-keras`` (tensorflow-cpu never enters the
  project's ``.venv``); the script creates it on first use.

Reported per row: images/s (median over the timed steps, after warm-up), seconds per step, peak
RSS of the worker process, throughput relative to Keras, and the fraction of this machine's
bf16 matmul peak (a 4096x4096 bf16 matmul, measured here) that the step reaches, counting a
training step as 3x the forward FLOPs (counted with ``torch.utils.flop_counter.FlopCounterMode``
for ``in_chans=1``).

Usage:
    nice -n 10 .venv/bin/python bench/train_bench.py [--steps 5] [--warmup 2] [--batch-size 32]
        [--image-size 224] [--no-keras] [--no-allocators] [--json OUT]

Every part runs in a subprocess that prints one JSON line, so allocator variables apply from the
start and one stack's memory does not count against the other.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KERAS_VENV = ROOT / ".venv-keras"
TCMALLOC = Path("/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4")
GLIBC_TUNED = "glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=4294967296"
NUM_CLASSES = 4
GOAL = 2.5  # issue #3: at least 2.5x the Keras peer's throughput


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def summarise(times: list[float], batch_size: int, warmup: int) -> dict:
    timed = times[warmup:]
    med = statistics.median(timed)
    return {"step_s": med, "images_per_s": batch_size / med, "step_times": [round(t, 4) for t in times], "peak_rss_mb": peak_rss_mb()}


# ------------------------------------------------------------------ workers (run in subprocesses)


def worker_peak(args: argparse.Namespace) -> dict:
    """bf16 / fp32 matmul peak of this machine, and DenseNet121's forward FLOPs per image."""
    import brainmri  # noqa: F401
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from brainmri.models import create_model

    def matmul_gflops(dtype: torch.dtype, n: int = 4096, reps: int = 10) -> float:
        a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
        for _ in range(2):
            a @ b
        best = float("inf")
        for _ in range(reps):
            t = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - t)
        return 2 * n**3 / best / 1e9

    model = create_model("densenet121", NUM_CLASSES, in_chans=1, image_size=args.image_size).eval()
    x = torch.randn(1, 1, args.image_size, args.image_size)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    model3 = create_model("densenet121", NUM_CLASSES, in_chans=3, image_size=args.image_size).eval()
    with FlopCounterMode(display=False) as counter3, torch.no_grad():
        model3(torch.randn(1, 3, args.image_size, args.image_size))
    return {
        "bf16_gflops": matmul_gflops(torch.bfloat16),
        "fp32_gflops": matmul_gflops(torch.float32),
        "forward_flops_in1": counter.get_total_flops(),
        "forward_flops_in3": counter3.get_total_flops(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }


def worker_brainmri(args: argparse.Namespace) -> dict:
    """Time brainmri's training step (ClassifierModule under a Lightning Trainer, bf16-mixed)."""
    import brainmri  # noqa: F401
    import lightning.pytorch as pl
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from brainmri.config import TrainConfig
    from brainmri.data.sampling import class_weights
    from brainmri.models import create_model
    from brainmri.training.module import ClassifierModule

    torch.manual_seed(0)
    n_batches = args.warmup + args.steps
    s, bs = args.image_size, args.batch_size
    x = torch.randn(n_batches * bs, 1, s, s)
    y = torch.randint(0, NUM_CLASSES, (n_batches * bs,))
    model = create_model("densenet121", NUM_CLASSES, in_chans=1, image_size=s).to(memory_format=torch.channels_last)
    cfg = TrainConfig(epochs=1, head_epochs=0, batch_size=bs, optimizer="adamw", channels_last=True)
    module = ClassifierModule(model, NUM_CLASSES, cfg, class_weights(y.tolist(), NUM_CLASSES), steps_per_epoch=n_batches)

    class StepTimer(pl.Callback):
        def __init__(self) -> None:
            self.times: list[float] = []
            self._t = 0.0

        def on_train_batch_start(self, *_a) -> None:
            self._t = time.perf_counter()

        def on_train_batch_end(self, *_a) -> None:
            self.times.append(time.perf_counter() - self._t)

    timer = StepTimer()
    trainer = pl.Trainer(
        accelerator="cpu", devices=1, precision="bf16-mixed", max_epochs=1, limit_train_batches=n_batches,
        limit_val_batches=0, num_sanity_val_steps=0, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, callbacks=[timer],
    )
    loader = DataLoader(TensorDataset(x, y), batch_size=bs, shuffle=True, drop_last=True)
    trainer.fit(module, loader)
    return {**summarise(timer.times, bs, args.warmup), "threads": torch.get_num_threads()}


def worker_keras(args: argparse.Namespace) -> dict:
    """Time Keras DenseNet121 ``train_on_batch`` (float32, Adam), the seeds' stack."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import numpy as np
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    s, bs = args.image_size, args.batch_size
    model = keras.applications.DenseNet121(weights=None, input_shape=(s, s, 3), classes=NUM_CLASSES)
    model.compile(optimizer=keras.optimizers.Adam(1e-4), loss="categorical_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(0)
    x = rng.random((bs, s, s, 3), dtype=np.float32)
    y = keras.utils.to_categorical(rng.integers(0, NUM_CLASSES, bs), NUM_CLASSES)
    times = []
    for _ in range(args.warmup + args.steps):
        t = time.perf_counter()
        model.train_on_batch(x, y)
        times.append(time.perf_counter() - t)
    return {**summarise(times, bs, args.warmup), "tensorflow": tf.__version__, "keras": keras.__version__}


WORKERS = {"peak": worker_peak, "brainmri": worker_brainmri, "keras": worker_keras}


# ------------------------------------------------------------------ orchestration


def ensure_keras_venv() -> Path:
    """``.venv-keras/bin/python`` with tensorflow-cpu, created on first use (a big download)."""
    python = KERAS_VENV / "bin" / "python"
    if not python.exists():
        print(f"creating {KERAS_VENV} (tensorflow-cpu; not the project's .venv)", file=sys.stderr)
        subprocess.run(["python3", "-m", "venv", str(KERAS_VENV)], check=True)
    probe = subprocess.run([str(python), "-c", "import tensorflow"], capture_output=True)
    if probe.returncode != 0:
        subprocess.run([str(KERAS_VENV / "bin" / "pip"), "install", "-q", "tensorflow-cpu"], check=True)
    return python


def run_worker(kind: str, args: argparse.Namespace, python: str = sys.executable, env: dict[str, str] | None = None) -> dict:
    cmd = [python, str(Path(__file__).resolve()), "--worker", kind, "--steps", str(args.steps), "--warmup", str(args.warmup),
           "--batch-size", str(args.batch_size), "--image-size", str(args.image_size)]
    full_env = {**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})}
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=full_env, cwd=ROOT)
    if proc.returncode != 0:
        raise SystemExit(f"{kind} worker failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["wall_s"] = round(time.perf_counter() - t, 1)
    return result


def table(rows: list[dict], keras: dict | None, peak: dict) -> str:
    train_flops = 3 * peak["forward_flops_in1"]
    lines = [
        "| stack | allocator | images/s | s/step | peak RSS (MB) | vs Keras | % of bf16 matmul peak |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        ratio = f"{r['images_per_s'] / keras['images_per_s']:.2f}x" if keras else "-"
        frac = 100 * r["images_per_s"] * train_flops / (peak["bf16_gflops"] * 1e9)
        lines.append(f"| brainmri DenseNet121 (in_chans=1, bf16-mixed, channels-last) | {r['allocator']} | {r['images_per_s']:.2f} | "
                     f"{r['step_s']:.2f} | {r['peak_rss_mb']:.0f} | {ratio} | {frac:.1f}% |")
    if keras:
        kflops = 3 * peak["forward_flops_in3"]
        frac = 100 * keras["images_per_s"] * kflops / (peak["fp32_gflops"] * 1e9)
        lines.append(f"| Keras DenseNet121 (3 channels, float32; TF {keras['tensorflow']}) | glibc malloc | {keras['images_per_s']:.2f} | "
                     f"{keras['step_s']:.2f} | {keras['peak_rss_mb']:.0f} | 1.00x | ({frac:.1f}% of fp32 peak) |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=5, help="timed steps (after warm-up)")
    p.add_argument("--warmup", type=int, default=2, help="untimed warm-up steps")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--no-keras", action="store_true", help="skip the Keras peer")
    p.add_argument("--no-allocators", action="store_true", help="only the default allocator")
    p.add_argument("--json", metavar="OUT", help="also write all numbers as JSON")
    p.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(WORKERS[args.worker](args)))
        return 0

    peak = run_worker("peak", args)
    print(f"bf16 matmul peak {peak['bf16_gflops']:.0f} GFLOP/s, fp32 {peak['fp32_gflops']:.0f} GFLOP/s "
          f"({peak['threads']} threads); DenseNet121 forward {peak['forward_flops_in1'] / 1e9:.2f} GFLOP/image "
          f"(in_chans=1; {peak['forward_flops_in3'] / 1e9:.2f} with 3 channels)", flush=True)
    variants = [("glibc malloc", {})]
    if not args.no_allocators:
        if TCMALLOC.exists():
            variants.append(("tcmalloc (LD_PRELOAD)", {"LD_PRELOAD": str(TCMALLOC)}))
        else:
            print(f"{TCMALLOC} not found (apt-get install -y libtcmalloc-minimal4): tcmalloc row skipped", flush=True)
        variants.append(("glibc, GLIBC_TUNABLES mmap_max=0, trim 4 GiB", {"GLIBC_TUNABLES": GLIBC_TUNED}))
    rows = []
    for name, env in variants:
        r = run_worker("brainmri", args, env=env)
        r["allocator"] = name
        rows.append(r)
        print(f"brainmri, {name}: {r['images_per_s']:.2f} images/s, peak RSS {r['peak_rss_mb']:.0f} MB", flush=True)
    # the peak again at the end, keeping the best: a busy moment must not make the fraction look high
    again = run_worker("peak", args)
    for key in ("bf16_gflops", "fp32_gflops"):
        peak[key] = max(peak[key], again[key])
    keras = None
    if not args.no_keras:
        keras = run_worker("keras", args, python=str(ensure_keras_venv()))
        print(f"keras: {keras['images_per_s']:.2f} images/s, peak RSS {keras['peak_rss_mb']:.0f} MB", flush=True)
    print(f"\nDenseNet121 training, {args.image_size} px, batch {args.batch_size}, median of {args.steps} steps after "
          f"{args.warmup} warm-up, {peak['threads']} CPU threads; bf16 matmul peak {peak['bf16_gflops']:.0f} GFLOP/s, "
          f"fp32 {peak['fp32_gflops']:.0f} GFLOP/s (best of two measurements); a training step counted as "
          f"3 x {peak['forward_flops_in1'] / 1e9:.2f} GFLOP per image (FlopCounterMode: 1 multiply-add = 2 FLOPs)\n")
    print(table(rows, keras, peak))
    if keras:
        best = max(rows, key=lambda r: r["images_per_s"])
        ratio = best["images_per_s"] / keras["images_per_s"]
        default_ratio = rows[0]["images_per_s"] / keras["images_per_s"]
        print(f"\ngoal (>= {GOAL}x Keras): {'met' if default_ratio >= GOAL else 'NOT met'} with the default allocator "
              f"({default_ratio:.2f}x); best allocator {best['allocator']}: {ratio:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps({"peak": peak, "brainmri": rows, "keras": keras, "args": vars(args)}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
