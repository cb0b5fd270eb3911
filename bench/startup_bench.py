"""Start-up time of the command line: how long a user waits before anything happens.

Runs each command ``--repeats`` times in a fresh interpreter and prints the median wall time,
side by side with what importing the heavy libraries costs (torch, the model factory with timm)
— the start-up ``brainmri --help`` used to pay before its imports became lazy.

Usage:
    python bench/startup_bench.py [--repeats 5]
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "brainmri --version": [sys.executable, "-m", "brainmri", "--version"],
    "brainmri predict --help": [sys.executable, "-m", "brainmri", "predict", "--help"],
    "import brainmri": [sys.executable, "-c", "import brainmri"],
    "import torch (reference)": [sys.executable, "-c", "import torch"],
    "import brainmri.models.factory (timm; the old --help)": [sys.executable, "-c", "import brainmri.models.factory"],
}


def median_seconds(cmd: list[str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rows = [(name, median_seconds(cmd, args.repeats)) for name, cmd in COMMANDS.items()]
    base = rows[0][1]
    print(f"| command | median s ({args.repeats} runs) | x brainmri --version |")
    print("|---|---|---|")
    for name, sec in rows:
        print(f"| {name} | {sec:.2f} | {sec / base:.1f}x |")


if __name__ == "__main__":
    main()
