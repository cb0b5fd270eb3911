"""Load test of ``brainmri serve`` on loopback: throughput, latency, errors, server memory.

Starts the service in a subprocess (``python -m brainmri serve``), waits for ``/healthz``, then
runs N concurrent clients each sending M ``POST /v1/predict`` requests (httpx, asyncio). A
fraction of the uploads can be bad files (``--bad-fraction``: text named .png -> 415, truncated
PNG -> 422); those count as *expected* errors. Reports throughput, p50/p99 latency, status
counts, unexpected errors, and the server's resident memory before and after.

Usage:
    nice -n 10 python bench/load_bench.py [--clients 32] [--requests 1000] [--bad-fraction 0.1]
        [--checkpoint C] [--backend onnx] [--concurrency 2] [--queue 64]
Default checkpoint: a tiny untrained seed003_cnn at 64 px.
"""
from __future__ import annotations

import argparse
import asyncio
import io
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np
import torch
from PIL import Image

import brainmri
from brainmri.checkpoint import CheckpointMeta, save_checkpoint
from brainmri.config import ModelConfig, PreprocessConfig
from brainmri.data.synthetic import TUMOR4, make_phantom
from brainmri.models import create_model


def rss_mb(pid: int) -> float | None:
    try:
        import psutil

        return psutil.Process(pid).memory_info().rss / 1024**2
    except ImportError:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            return None
    except Exception:  # noqa: BLE001 - process gone
        return None
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tiny_checkpoint(folder: Path) -> Path:
    torch.manual_seed(0)
    meta = CheckpointMeta(model=ModelConfig(name="seed003_cnn"), class_names=list(TUMOR4), preprocess=PreprocessConfig(image_size=64), task="tumor4")
    return save_checkpoint(folder / "tiny.safetensors", create_model("seed003_cnn", 4, in_chans=1, image_size=64), meta)


def payloads(n_valid: int = 8, size: int = 256) -> tuple[list[bytes], list[bytes]]:
    rng = np.random.default_rng(0)
    valid = []
    for i in range(n_valid):
        buf = io.BytesIO()
        Image.fromarray(make_phantom(i % 4, size, rng, class_name=TUMOR4[i % 4])).save(buf, format="PNG")
        valid.append(buf.getvalue())
    bad = [b"this is a text file named scan.png" * 10, valid[0][: len(valid[0]) // 3]]
    return valid, bad


async def client(http: httpx.AsyncClient, url: str, m: int, valid: list[bytes], bad: list[bytes], bad_fraction: float, seed: int, out: list) -> None:
    rnd = random.Random(seed)
    for _ in range(m):
        is_bad = rnd.random() < bad_fraction
        data = rnd.choice(bad if is_bad else valid)
        t = time.perf_counter()
        try:
            r = await http.post(url, files={"file": ("scan.png", data, "image/png")})
            status = r.status_code
        except httpx.HTTPError as exc:
            status = type(exc).__name__
        out.append((time.perf_counter() - t, status, is_bad))


async def run_load(base: str, clients: int, m: int, bad_fraction: float) -> tuple[list, float]:
    valid, bad = payloads()
    out: list = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=120, limits=limits) as http:
        t = time.perf_counter()
        await asyncio.gather(*(client(http, base + "/v1/predict", m, valid, bad, bad_fraction, i, out) for i in range(clients)))
        wall = time.perf_counter() - t
    return out, wall


def wait_healthy(base: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited early with code {proc.returncode}")
        try:
            if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise SystemExit("server did not become healthy in time")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--requests", type=int, default=1000, help="requests per client")
    ap.add_argument("--bad-fraction", type=float, default=0.0)
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--backend", default="onnx", choices=("torch", "onnx"))
    ap.add_argument("--concurrency", type=int, default=2, help="server --workers-concurrency")
    ap.add_argument("--queue", type=int, default=64, help="server --queue")
    args = ap.parse_args(argv)
    tmp = tempfile.TemporaryDirectory()
    ckpt = args.checkpoint or str(tiny_checkpoint(Path(tmp.name)))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "brainmri", "-q", "serve", "--checkpoint", ckpt, "--port", str(port), "--backend", args.backend,
           "--workers-concurrency", str(args.concurrency), "--queue", str(args.queue)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        wait_healthy(base, proc)
        warm = httpx.post(base + "/v1/predict", files={"file": ("a.png", payloads(1)[0][0])}, timeout=60)
        assert warm.status_code == 200, warm.text
        rss_before = rss_mb(proc.pid)
        results, wall = asyncio.run(run_load(base, args.clients, args.requests, args.bad_fraction))
        rss_after = rss_mb(proc.pid)
        alive = httpx.get(base + "/healthz", timeout=5).status_code == 200
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        tmp.cleanup()
    lat = sorted(r[0] * 1000 for r in results)
    statuses = Counter(r[1] for r in results)
    unexpected = sum(1 for _, s, is_bad in results if (s != 200 and not is_bad) or (is_bad and s not in (415, 422)))
    n = len(results)
    print(f"\nbrainmri serve ({args.backend}, concurrency {args.concurrency}, queue {args.queue}) on loopback; "
          f"{args.clients} clients x {args.requests} requests, bad fraction {args.bad_fraction}\n")
    print("| metric | value |\n|---|---:|")
    print(f"| requests | {n} |")
    print(f"| wall time (s) | {wall:.1f} |")
    print(f"| throughput (req/s) | {n / wall:.1f} |")
    print(f"| latency p50 (ms) | {statistics.median(lat):.1f} |")
    print(f"| latency p99 (ms) | {lat[min(n - 1, int(0.99 * n))]:.1f} |")
    print(f"| status counts | {', '.join(f'{k}: {v}' for k, v in sorted(statuses.items(), key=str))} |")
    print(f"| unexpected errors | {unexpected} |")
    print(f"| server RSS before / after (MiB) | {rss_before:.0f} / {rss_after:.0f} |" if rss_before and rss_after else "| server RSS | n/a |")
    print(f"| server healthy after | {alive} |")
    print(brainmri.DISCLAIMER)
    return 0 if unexpected == 0 and alive else 1


if __name__ == "__main__":
    sys.exit(main())
