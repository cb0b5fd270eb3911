"""Lightning's console lines under the CLI's logging: once each, quiet under -q, no advertisement."""
from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import logging, sys
logging.basicConfig(level=logging.{level}, format="%(message)s", stream=sys.stdout)
import brainmri.training.train
from lightning.pytorch.utilities.rank_zero import rank_zero_info, rank_zero_warn
rank_zero_info("GPU available: False, used: False")
rank_zero_info("\\U0001f4a1 Tip: For seamless cloud logging, try installing litlogger")
"""


def run(level: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", SCRIPT.format(level=level)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return (out.stdout + out.stderr).splitlines()


def test_lightning_lines_print_once_and_quiet_means_quiet():
    assert run("INFO") == ["GPU available: False, used: False"]  # once, and no cloud-logger tip
    assert run("WARNING") == []  # brainmri -q
