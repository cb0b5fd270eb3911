"""End-to-end training on synthetic phantoms: it learns, writes a run directory, resumes after a
kill, and runs DDP on two CPU processes."""
from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from brainmri.checkpoint import load_checkpoint
from brainmri.data.datasets import load_dataset
from brainmri.data.torchdata import PreparedImages
from brainmri.training import run_training
from brainmri.evaluation.evaluate import predict_logits


def read_metrics(run_dir: Path) -> list[dict]:
    with open(run_dir / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_short_run_learns_phantoms_and_writes_run_dir(tiny_run_config, tmp_path):
    from brainmri.data.synthetic import make_phantom_dataset

    cfg = tiny_run_config(epochs=6, head_epochs=0)
    cfg.data.root = str(make_phantom_dataset(tmp_path / "data", layout="split", n_per_class=40, test_per_class=10, size=48, seed=5))
    cfg.model.name = "seed002_cnn"
    cfg.augment.rotation = 5.0
    result = run_training(cfg, progress=False)
    run = result.run_dir
    for name in ("best.safetensors", "config.yaml", "metrics.csv", "summary.json", "lightning/last.ckpt"):
        assert (run / name).exists(), name
    rows = read_metrics(run)
    assert [int(r["epoch"]) for r in rows] == list(range(6))
    # learned on held-out phantoms (official Testing split), well above 25% chance
    model, meta = load_checkpoint(result.checkpoint)
    index = load_dataset(cfg.data)
    test = PreparedImages(index.split("test"), meta.preprocess)
    logits = predict_logits(model, meta, test.images)
    acc = float((logits.argmax(1) == test.labels).mean())
    assert acc >= 0.6, acc
    assert meta.class_names == ["glioma", "meningioma", "notumor", "pituitary"]
    assert meta.preprocess.image_size == 48
    assert meta.temperature > 0
    check = meta.calibration["top_label_check"]  # the decision on top-label scaling is recorded either way
    assert check["kept"] is False and "validation images" in check["reason"] and "top_label" not in meta.calibration
    summary = json.loads((run / "summary.json").read_text())
    assert summary["train_images"] > 0 and "calibration" in summary


def test_checkpoint_roundtrip_gives_identical_outputs(tiny_run_config):
    result = run_training(tiny_run_config(epochs=1), progress=False)
    m1, _ = load_checkpoint(result.checkpoint)
    m2, _ = load_checkpoint(result.checkpoint)
    x = torch.randn(3, 1, 48, 48)
    assert torch.equal(m1(x), m2(x))


def _train_cmd(data: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "brainmri", "-q", "train", "--data", str(data), "--preset", "tumor4", "--model", "seed003_cnn",
            "--image-size", "32", "--batch-size", "8", "--cache-dir", "none", "--output-dir", str(out), "--run-name", "r",
            "--precision", "32", *extra]


def test_resume_after_sigkill_continues_from_saved_epoch(tmp_path):
    from brainmri.data.synthetic import make_phantom_dataset

    data = make_phantom_dataset(tmp_path / "data", layout="split", n_per_class=100, test_per_class=2, size=32, seed=3)
    out = tmp_path / "runs"
    cmd = _train_cmd(data, out, "--epochs", "5")
    cmd[cmd.index("seed003_cnn")] = "seed002_cnn"
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    run = out / "r"
    deadline = time.time() + 120
    while time.time() < deadline and not (run / "lightning" / "last.ckpt").exists() and proc.poll() is None:
        time.sleep(0.02)
    assert (run / "lightning" / "last.ckpt").exists(), proc.stderr.read().decode()[-2000:] if proc.poll() is not None else "no checkpoint"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len(read_metrics(run))
    assert 1 <= done_before < 5
    res = subprocess.run([sys.executable, "-m", "brainmri", "-q", "train", "--resume", str(run)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    rows = read_metrics(run)
    assert [int(r["epoch"]) for r in rows] == list(range(5))
    assert (run / "best.safetensors").exists()


def test_resume_without_checkpoint_is_a_clear_error(tmp_path):
    from brainmri.cli.main import main

    (tmp_path / "config.yaml").write_text("train: {epochs: 1}\n")
    assert main(["train", "--resume", str(tmp_path)]) == 2


def test_dry_run_lists_the_data_and_extra_sources_and_names_a_bad_one(phantom_split, tmp_path, capsys):
    from brainmri.cli.main import main

    healthy = tmp_path / "healthy"
    healthy.mkdir()
    for p in sorted((phantom_split / "Training" / "notumor").iterdir())[:3]:
        (healthy / p.name).write_bytes(p.read_bytes())
    assert main(["train", "--data", str(phantom_split), "--extra-train", f"{healthy}=notumor", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "test 24" in out and f"extra source: {healthy} (0 tumor, 3 notumor, 1x per epoch)" in out
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["train", "--data", str(phantom_split), "--extra-train", f"{empty}=notumor", "--dry-run"]) == 2
    assert f"no image files under {empty}" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_ddp_on_two_cpu_processes(phantom_split, tmp_path):
    out = tmp_path / "runs"
    cmd = _train_cmd(phantom_split, out, "--epochs", "1", "--accelerator", "cpu", "--devices", "2", "--strategy", "ddp")
    i = cmd.index("--run-name")
    del cmd[i:i + 2]  # the timestamped default name: rank 1 starts seconds later and must still use rank 0's directory
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    runs = list(out.iterdir())
    assert len(runs) == 1, runs
    ranks = sorted(runs[0].glob("rank-*.json"))
    assert [p.name for p in ranks] == ["rank-0.json", "rank-1.json"]
    for p in ranks:
        info = json.loads(p.read_text())
        assert info["world_size"] == 2 and info["global_step"] > 0
    assert len(list(runs[0].glob("*.safetensors"))) == 1


def test_ema_run_validates_and_saves_the_weight_average(tiny_run_config):
    from safetensors.torch import load_file

    result = run_training(tiny_run_config(epochs=1, ema_decay=0.5), progress=False)
    last = torch.load(result.run_dir / "lightning" / "last.ckpt", map_location="cpu", weights_only=False)
    assert "current_model_state" in last and "averaging_state" in last  # both travel for --resume
    averaged = {k[len("model."):]: v for k, v in last["state_dict"].items() if k.startswith("model.")}
    live = {k[len("model."):]: v for k, v in last["current_model_state"].items() if k.startswith("model.")}
    saved = load_file(str(result.checkpoint))
    name = "fc.weight"
    assert not torch.allclose(averaged[name], live[name])  # one epoch of steps: the average lags the live weights
    assert torch.allclose(saved[name].float(), averaged[name].float(), atol=1e-3)  # best.safetensors holds the average
    _, meta = load_checkpoint(result.checkpoint)
    assert meta.train["ema_decay"] == 0.5


def test_ema_decay_out_of_range_is_refused_before_any_work(tiny_run_config):
    from brainmri.config import validate
    from brainmri.errors import ConfigError

    with pytest.raises(ConfigError, match=r"train.ema_decay=1.0 must be in \[0, 1\)"):
        validate(tiny_run_config(ema_decay=1.0))


def test_metrics_csv_shows_the_learning_rate_the_epoch_used(tiny_run_config):
    """A one-epoch cosine run ends at rate 0; the row must show the rate it trained with."""
    import csv

    from brainmri.training import run_training

    cfg = tiny_run_config(lr=0.05, warmup_epochs=0.0)
    cfg.model.name = "seed002_cnn"
    result = run_training(cfg, progress=False)
    with open(result.run_dir / "metrics.csv", newline="") as f:
        [row] = list(csv.DictReader(f))
    assert float(row["lr"]) == pytest.approx(0.05)
