"""What protects a training run: an existing run is never silently replaced, a failed run leaves no
empty folder, a diverged loss stops training without a NaN best checkpoint, SIGINT / SIGTERM exit
130 / 143 with one line saying what was kept and how to resume (and keep mid-epoch work),
``--resume`` refuses flags it would ignore, and machine checks (GPU, cores) happen before any work."""
from __future__ import annotations

import csv
import hashlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import lightning.pytorch as pl
import pytest
import torch

from brainmri.checkpoint import load_checkpoint
from brainmri.errors import CheckpointError, ConfigError
from brainmri.training import run_training
from brainmri.training.callbacks import FiniteGuard, TrainingDiverged, TrainingInterrupted
from brainmri.training.module import ClassifierModule
from brainmri.training.rundir import ENV_RUN_DIR, check_run_dir_free, inherited_run_dir, run_key


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def epochs_in(run_dir: Path) -> list[int]:
    with open(run_dir / "metrics.csv", newline="") as f:
        return [int(r["epoch"]) for r in csv.DictReader(f)]


def with_callback(monkeypatch, callback: pl.Callback) -> None:
    """Every Trainer that run_training builds gets ``callback`` too."""
    real = pl.Trainer

    def trainer(*args, callbacks=(), **kwargs):
        return real(*args, callbacks=[*callbacks, callback], **kwargs)

    monkeypatch.setattr(pl, "Trainer", trainer)


# ------------------------------------------------------------------ A2: existing runs


def test_an_existing_run_is_refused_and_overwrite_replaces_it(small, phantom_split, capsys):
    from brainmri.cli.main import main

    first = run_training(small(epochs=2), progress=False)
    run = first.run_dir
    before = sha(first.checkpoint)
    assert ENV_RUN_DIR not in os.environ  # the DDP hand-over does not leak into later runs of this process

    with pytest.raises(ConfigError) as info:
        run_training(small(epochs=1), progress=False)
    text = str(info.value)
    assert text.startswith(f"{run} already holds a run") and f"--resume {run}" in text and "--run-name" in text and "--overwrite" in text
    assert sha(first.checkpoint) == before and epochs_in(run) == [0, 1]  # nothing touched

    cfg = small()
    argv = ["train", "--data", str(phantom_split), "--output-dir", cfg.train.output_dir, "--run-name", "run", "--dry-run"]
    assert main(argv) == 2
    assert f"{run} already holds a run" in capsys.readouterr().err
    assert main([*argv, "--overwrite"]) == 0

    (run / "notes.txt").write_text("mine")
    again = run_training(small(epochs=1, seed=3), progress=False, overwrite=True)
    assert again.run_dir == run and epochs_in(run) == [0]  # the old run's rows are gone, not kept beside the new
    assert sha(again.checkpoint) != before
    assert (run / "notes.txt").read_text() == "mine"  # only the run's own files are replaced


def test_a_folder_that_is_no_run_is_never_written_into(small, phantom_split):
    cfg = small()
    cfg.train.output_dir, cfg.train.run_name = str(phantom_split.parent), phantom_split.name  # the run folder = the dataset
    for overwrite in (False, True):
        with pytest.raises(ConfigError, match=rf"{phantom_split.name} is not a brainmri run directory \(it holds Testing, Training\)"):
            run_training(cfg, progress=False, overwrite=overwrite)
    assert sorted(p.name for p in phantom_split.iterdir()) == ["Testing", "Training"]  # nothing written there


def test_overwrite_never_drops_the_run_an_earlier_interrupted_overwrite_kept(small):
    from brainmri.training.rundir import STASH

    first = run_training(small(), progress=False)
    kept = first.run_dir / STASH
    kept.mkdir()
    (kept / "best.safetensors").write_bytes(b"the older run")
    with pytest.raises(ConfigError, match=rf"an earlier --overwrite that did not finish kept the run it was replacing in .*{STASH}"):
        run_training(small(), progress=False, overwrite=True)
    assert (kept / "best.safetensors").read_bytes() == b"the older run" and Path(first.checkpoint).is_file()


def test_a_failed_overwrite_puts_the_previous_run_back(small, monkeypatch):
    import brainmri.training.train as train_mod

    first = run_training(small(epochs=1), progress=False)
    before = sha(first.checkpoint)

    def fail(cfg, run_dir, *a, **k):
        (run_dir / "metrics.csv").write_text("half a new run")
        raise ConfigError("diverged")

    monkeypatch.setattr(train_mod, "_train", fail)
    with pytest.raises(ConfigError, match=r"^diverged; the previous run in .* is restored$"):
        run_training(small(epochs=1, seed=3), progress=False, overwrite=True)
    assert sha(first.checkpoint) == before and epochs_in(first.run_dir) == [0]  # the old run, whole
    assert not (first.run_dir / ".replaced-run").exists()


def test_an_interrupted_run_counts_as_a_run(tmp_path):
    (tmp_path / "r" / "lightning").mkdir(parents=True)
    check_run_dir_free(tmp_path / "r")  # config.yaml / logs only: a run that never saved anything
    (tmp_path / "r" / "lightning" / "last.ckpt").write_bytes(b"x")
    with pytest.raises(ConfigError, match="already holds a run"):
        check_run_dir_free(tmp_path / "r")
    check_run_dir_free(tmp_path / "r", overwrite=True)


def test_a_users_own_config_yaml_or_metrics_csv_is_not_a_run(small, tmp_path):
    cfg = small(epochs=1)
    run_dir = Path(cfg.train.output_dir) / cfg.train.run_name
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text("# my recipe, with my comments\ntrain: {epochs: 1}\n")
    (run_dir / "metrics.csv").write_text("my own measurements\n")
    with pytest.raises(ConfigError, match=r"is not a brainmri run directory \(it holds config.yaml, metrics.csv\)"):
        run_training(cfg, progress=False)
    assert (run_dir / "config.yaml").read_text().startswith("# my recipe")
    (run_dir / "config.yaml").unlink()
    (run_dir / "metrics.csv").unlink()
    first = run_training(cfg, progress=False)  # what a run writes is marked as the run's own
    assert (first.run_dir / "config.yaml").read_text().startswith("# brainmri run config")
    check_run_dir_free(first.run_dir, overwrite=True)


def test_a_failed_run_leaves_no_empty_run_directory(small, tmp_path):
    cfg = small(run_name=None)
    cfg.augment.skull_strip_skip = ["bogus"]  # refused after the run directory was made
    with pytest.raises(ConfigError, match="skull_strip_skip"):
        run_training(cfg, progress=False)
    out = Path(cfg.train.output_dir)
    assert out.is_dir() and list(out.iterdir()) == []
    mine = out / "mine"  # a folder the user made is left alone
    mine.mkdir()
    cfg.train.run_name = "mine"
    with pytest.raises(ConfigError):
        run_training(cfg, progress=False)
    assert mine.is_dir()


# ------------------------------------------------------------------ A3: divergence


def test_a_nan_loss_stops_training_and_keeps_only_a_finite_best(small, monkeypatch):
    real_loss = ClassifierModule.loss

    def nan_from_epoch_2(self, logits, y):
        loss = real_loss(self, logits, y)
        return loss * float("nan") if self.current_epoch >= 1 else loss

    monkeypatch.setattr(ClassifierModule, "loss", nan_from_epoch_2)
    cfg = small(epochs=3)
    run = Path(cfg.train.output_dir) / "run"
    with pytest.raises(TrainingDiverged) as info:
        run_training(cfg, progress=False)
    text = str(info.value)
    assert text.startswith("training diverged: the training loss is nan in epoch 2, batch 1 (train.lr=0.003); try a lower learning rate")
    assert f"kept {run / 'best.safetensors'}" in text
    model, meta = load_checkpoint(run / "best.safetensors")
    assert meta.metrics["epoch"] == 0
    assert all(bool(torch.isfinite(p).all()) for p in model.parameters())
    assert bool(torch.isfinite(model(torch.randn(2, 1, 32, 32))).all())
    assert not (run / "summary.json").exists()

    def always_nan(self, logits, y):
        return real_loss(self, logits, y) * float("nan")

    monkeypatch.setattr(ClassifierModule, "loss", always_nan)
    with pytest.raises(TrainingDiverged, match=r"in epoch 1, batch 1 .*; nothing was kept$"):
        run_training(small(epochs=1, run_name="nan"), progress=False)
    assert not (run.parent / "nan").exists()  # nothing to resume from: no folder left behind


def test_nan_weights_are_caught_before_validation_can_save_them():
    guard = FiniteGuard()
    net = torch.nn.Linear(2, 2)
    trainer = SimpleNamespace(sanity_checking=False, current_epoch=4)
    guard.on_validation_start(trainer, net)  # finite: fine
    with torch.no_grad():
        net.bias[0] = float("inf")
    with pytest.raises(TrainingDiverged, match="weight bias became NaN / infinite in epoch 5"):
        guard.on_validation_start(trainer, net)
    with pytest.raises(TrainingDiverged, match="training loss is inf in epoch 5, batch 1"):
        guard.on_before_backward(trainer, net, torch.tensor(float("inf")))


# ------------------------------------------------------------------ A4: interrupts


class _SignalAt(pl.Callback):
    def __init__(self, epoch: int, batch: int, action):
        self.epoch, self.batch, self.action = epoch, batch, action

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if (trainer.current_epoch, batch_idx) == (self.epoch, self.batch):
            self.action()


def test_sigterm_mid_epoch_saves_the_batches_and_resume_finishes_the_run(small, monkeypatch):
    with_callback(monkeypatch, _SignalAt(0, 2, lambda: os.kill(os.getpid(), signal.SIGTERM)))
    cfg = small(epochs=2)
    run = Path(cfg.train.output_dir) / "run"
    with pytest.raises(TrainingInterrupted) as info:
        run_training(cfg, progress=False)
    assert info.value.exit_code == 143 and info.value.signal_name == "SIGTERM"
    assert str(info.value) == (f"interrupted by SIGTERM after 0 of 2 epochs and 3 batches of the next; kept {run / 'lightning' / 'last.ckpt'}; "
                               f"resume with: brainmri train --resume {run}")
    state = torch.load(run / "lightning" / "last.ckpt", map_location="cpu", weights_only=False)
    assert state["global_step"] == 3  # the interrupted epoch's batches are kept
    assert not (run / "best.safetensors").exists()
    monkeypatch.undo()
    resumed = run_training(cfg, resume=run, progress=False)
    assert epochs_in(run) == [0, 1]
    _, meta = load_checkpoint(resumed.checkpoint)
    assert "interrupted" not in meta.extra and meta.temperature != 1.0  # finished and calibrated


def test_an_epoch_interrupted_mid_way_resumes_on_the_scans_it_had_not_reached(small, monkeypatch):
    from brainmri.data.torchdata import ImageDataset

    drawn: list[int] = []  # training-set indices in the order they were read (one process: num_workers 0)
    real = ImageDataset.__getitem__

    def record(self, i):
        if self.augment is not None:  # the training set, not validation
            drawn.append(int(i))
        return real(self, i)

    cfg = small(epochs=2, num_workers=0)
    run = Path(cfg.train.output_dir) / "run"
    with_callback(monkeypatch, _SignalAt(0, 2, lambda: os.kill(os.getpid(), signal.SIGTERM)))
    monkeypatch.setattr(ImageDataset, "__getitem__", record)
    with pytest.raises(TrainingInterrupted):
        run_training(cfg, progress=False)
    bs = cfg.train.batch_size
    trained = drawn[:3 * bs]  # the three batches trained on (Lightning had already fetched the next)
    monkeypatch.undo()
    monkeypatch.setattr(ImageDataset, "__getitem__", record)
    drawn.clear()
    run_training(cfg, resume=run, progress=False)
    epoch = len(drawn) + len(trained)  # two epochs of drawn: the rest of epoch 0, then epoch 1
    assert epoch % 2 == 0
    per_epoch = epoch // 2
    first = trained + drawn[:per_epoch - len(trained)]
    assert len(set(first)) == per_epoch  # every scan of epoch 0 once: none twice, none dropped
    assert len(set(drawn[per_epoch - len(trained):])) == per_epoch and drawn[per_epoch - len(trained):] != first  # epoch 1: a new order


def test_resume_from_a_damaged_last_checkpoint_is_one_clear_error(small, monkeypatch):
    cfg = small(epochs=2)
    run = Path(cfg.train.output_dir) / "run"
    with_callback(monkeypatch, _SignalAt(0, 1, lambda: os.kill(os.getpid(), signal.SIGTERM)))
    with pytest.raises(TrainingInterrupted):
        run_training(cfg, progress=False)
    monkeypatch.undo()
    last = run / "lightning" / "last.ckpt"
    last.write_bytes(last.read_bytes()[:200])  # a copy cut short
    with pytest.raises(CheckpointError, match=r"last.ckpt: not a readable training checkpoint \(\w+\); it cannot be resumed"):
        run_training(cfg, resume=run, progress=False)


def test_resume_refuses_a_dataset_that_changed_since_the_run_started(small, monkeypatch, tmp_path):
    import shutil

    cfg = small(epochs=2)
    data = tmp_path / "data"
    shutil.copytree(cfg.data.root, data)
    cfg.data.root = str(data)
    run = Path(cfg.train.output_dir) / "run"
    with_callback(monkeypatch, _SignalAt(0, 1, lambda: os.kill(os.getpid(), signal.SIGTERM)))
    with pytest.raises(TrainingInterrupted):
        run_training(cfg, progress=False)
    monkeypatch.undo()
    for p in sorted((data / "Training" / "glioma").iterdir())[:3]:
        p.unlink()
    with pytest.raises(ConfigError, match=r"data: the dataset changed since this run started \((\d+) images then, (\d+) now"):
        run_training(cfg, resume=run, progress=False)


def test_a_second_run_into_a_live_runs_directory_is_refused_and_a_stale_lock_is_taken_over(small):
    import socket

    from brainmri.training.rundir import LOCK

    cfg = small()
    run = Path(cfg.train.output_dir) / "run"
    run.mkdir(parents=True)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])  # the first run, still training
    try:
        (run / LOCK).write_text(f"{other.pid} {socket.gethostname()}\n")
        with pytest.raises(ConfigError, match=rf"run: another brainmri train \(pid {other.pid}\) is writing into this run directory"):
            run_training(cfg, progress=False)
        assert not (run / "best.safetensors").exists() and (run / LOCK).exists()  # its lock is left alone
    finally:
        other.kill()
        other.wait()
    result = run_training(cfg, progress=False)  # that pid is gone now: a stale lock, taken over
    assert Path(result.checkpoint).is_file() and not (run / LOCK).exists()  # and released at the end


def test_ctrl_c_after_an_epoch_exits_130_and_marks_the_uncalibrated_best(small, phantom_split, monkeypatch, capsys):
    from brainmri.cli.main import main

    def ctrl_c():
        raise KeyboardInterrupt

    with_callback(monkeypatch, _SignalAt(1, 0, ctrl_c))
    out = small().train.output_dir
    run = Path(out) / "r"
    handler = signal.getsignal(signal.SIGINT)
    try:
        code = main(["-q", "train", "--data", str(phantom_split), "--preset", "tumor4", "--model", "seed002_cnn", "--image-size", "32",
                     "--batch-size", "8", "--cache-dir", "none", "--precision", "32", "--epochs", "3", "--output-dir", out, "--run-name", "r"])
    finally:
        signal.signal(signal.SIGINT, handler)  # Lightning ignores further Ctrl-C once it saw one
    assert code == 130
    ours = [line for line in capsys.readouterr().err.splitlines() if line.startswith("brainmri train:")]
    assert ours == [f"brainmri train: interrupted by SIGINT after 1 of 3 epochs and 1 batches of the next; "
                    f"kept {run / 'best.safetensors'} (best epoch so far; uncalibrated: temperature 1, marked interrupted) "
                    f"and {run / 'lightning' / 'last.ckpt'}; resume with: brainmri train --resume {run}"]
    _, meta = load_checkpoint(run / "best.safetensors")
    assert meta.extra["interrupted"] is True and meta.extra["interrupted_by"] == "SIGINT" and meta.extra["completed_epochs"] == 1
    assert meta.temperature == 1.0
    assert main(["info", str(run / "best.safetensors")]) == 0
    assert "interrupted:  by SIGINT after 1 of 3 epochs (not calibrated" in capsys.readouterr().out


def test_ctrl_c_while_calibrating_marks_the_best_and_resume_finishes_it(small, monkeypatch):
    import brainmri.training.train as train_mod
    from brainmri.cli.main import main

    real = train_mod.finalize_checkpoint
    monkeypatch.setattr(train_mod, "finalize_checkpoint", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
    cfg = small(epochs=1)
    with pytest.raises(TrainingInterrupted) as info:
        run_training(cfg, progress=False)
    run = Path(cfg.train.output_dir) / cfg.train.run_name
    assert info.value.exit_code == 130
    assert str(info.value) == (f"interrupted by SIGINT after training, while fitting the calibration on validation; kept "
                               f"{run / 'best.safetensors'} (best epoch so far; uncalibrated: temperature 1, marked interrupted) and "
                               f"{run / 'lightning' / 'last.ckpt'}; finish the calibration with: brainmri train --resume {run}")
    _, meta = load_checkpoint(run / "best.safetensors")
    assert meta.extra["interrupted"] is True and meta.temperature == 1.0
    monkeypatch.setattr(train_mod, "finalize_checkpoint", real)
    assert main(["-q", "train", "--resume", str(run)]) == 0
    _, meta = load_checkpoint(run / "best.safetensors")
    assert "interrupted" not in meta.extra and meta.calibration


def test_sigterm_to_brainmri_train_exits_143_with_the_resume_command(tmp_path):
    from brainmri.data.synthetic import make_phantom_dataset

    data = make_phantom_dataset(tmp_path / "data", layout="split", n_per_class=60, test_per_class=2, size=32, seed=3)
    out, run = tmp_path / "runs", tmp_path / "runs" / "r"
    cmd = [sys.executable, "-m", "brainmri", "-q", "train", "--data", str(data), "--preset", "tumor4", "--model", "seed002_cnn",
           "--image-size", "32", "--batch-size", "4", "--cache-dir", "none", "--precision", "32", "--epochs", "50",
           "--output-dir", str(out), "--run-name", "r"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and not (run / "metrics.csv").exists() and proc.poll() is None:
        time.sleep(0.05)  # metrics.csv appears when the first epoch starts
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    err = proc.communicate(timeout=60)[1]
    assert proc.returncode == 143, err[-2000:]
    last = err.strip().splitlines()[-1]
    assert re.fullmatch(rf"brainmri train: interrupted by SIGTERM after \d+ of 50 epochs.*; resume with: brainmri train --resume {re.escape(str(run))}", last), last
    assert (run / "lightning" / "last.ckpt").is_file()


# ------------------------------------------------------------------ A14: --resume and other flags


def test_resume_refuses_the_flags_it_would_ignore(tmp_path, capsys):
    from brainmri.cli.main import build_parser, main

    assert main(["train", "--resume", str(tmp_path), "--epochs", "8", "--lr", "0.1", "--no-augment"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"brainmri train: error: --resume {tmp_path} continues with the run's own config ({tmp_path}/config.yaml), "
                   "so --epochs, --lr, --no-augment would be ignored; drop them, or start a new run (another --run-name) to change settings")
    assert main(["train", "--resume", str(tmp_path), "--overwrite"]) == 2
    assert "--overwrite would be ignored; drop it" in capsys.readouterr().err
    train_help = build_parser()._subparsers._group_actions[0].choices["train"].format_help()
    assert "other training flags are refused" in " ".join(train_help.split())


# ------------------------------------------------------------------ A9 / A10: one run directory, machine checks


def test_ddp_ranks_adopt_the_run_directory_of_their_own_run(monkeypatch, small):
    a, b = small(run_name=None), small(run_name=None)
    b.model.name = "resnet18"
    monkeypatch.setenv(ENV_RUN_DIR, f"{run_key(a)}:/somewhere/20260101-000000-tumor4-seed002_cnn")
    assert inherited_run_dir(run_key(a)) == Path("/somewhere/20260101-000000-tumor4-seed002_cnn")
    assert inherited_run_dir(run_key(b)) is None  # another run's hand-over is not ours


def test_machine_checks_name_the_field(small, monkeypatch, tmp_path):
    from brainmri.training import preflight

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(preflight, "cpu_cores", lambda: 2)
    check = preflight.check_environment
    for accelerator in ("gpu", "cuda"):
        with pytest.raises(ConfigError, match=rf"train\.accelerator='{accelerator}': no CUDA GPU is available here .*use --accelerator cpu or auto"):
            check(small(accelerator=accelerator))
    for accelerator in ("cpu", "auto"):
        with pytest.raises(ConfigError, match=r"train\.devices=3: .* on 2 CPU cores .*use --devices 2 or fewer"):
            check(small(accelerator=accelerator, devices="3"))
    check(small(accelerator="cpu", devices="2"))
    with pytest.raises(ConfigError, match=r"train\.num_nodes=2: a multi-node run needs --run-name"):
        check(small(num_nodes=2, run_name=None))
    cfg = small()
    cfg.model.name = "resnet18"
    cfg.model.pretrained_weights = str(tmp_path / "missing.safetensors")
    with pytest.raises(CheckpointError, match="missing.safetensors: pretrained weights file not found"):
        check(cfg)
    cfg.model.pretrained_weights, cfg.model.name = None, "bogusnet"
    with pytest.raises(ConfigError, match=r"model\.name='bogusnet' is not a brainmri or timm model"):
        check(cfg)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
@pytest.mark.parametrize("flags,match", [
    (["--accelerator", "gpu"], "train.accelerator='gpu': no CUDA GPU is available here"),
    (["--label-smoothing", "2"], "train.label_smoothing=2.0 must be in [0, 1)"),
    (["--pretrained-weights", "afile"], "model seed002_cnn is a from-scratch CNN"),
    (["--max-train-batches", "0"], "train.max_train_batches=0 must be >= 1"),
    (["--devices", "999"], "train.devices=999"),
])
def test_dry_run_catches_what_used_to_fail_in_training(phantom_split, tmp_path, capsys, flags, match):
    from brainmri.cli.main import main

    assert main(["train", "--data", str(phantom_split), "--model", "seed002_cnn", "--output-dir", str(tmp_path / "runs"), *flags, "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert match in err and len(err.strip().splitlines()) == 1


def test_an_interrupt_right_after_an_epoch_ended_counts_that_epoch():
    from types import SimpleNamespace

    from brainmri.training.callbacks import InterruptRecorder

    rec = InterruptRecorder()
    trainer = SimpleNamespace(current_epoch=5)  # resumed with 5 epochs done
    rec.on_train_start(trainer, None)
    rec.on_train_epoch_start(trainer, None)
    rec.on_train_batch_end(trainer, None, None, None, 3)
    rec.on_train_epoch_end(trainer, None)  # epoch index 5 complete; Lightning has not advanced current_epoch yet
    rec.on_exception(trainer, None, KeyboardInterrupt())
    assert (rec.completed_epochs, rec.batches_in_epoch) == (6, 0)


def test_sigterm_while_preparing_images_says_so_and_leaves_no_run_folder(small, monkeypatch):
    import brainmri.training.train as train_mod

    def terminated(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        raise AssertionError("SIGTERM should have stopped the preparation")

    monkeypatch.setattr(train_mod, "PreparedImages", terminated)
    cfg = small()
    run = Path(cfg.train.output_dir) / "run"
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(TrainingInterrupted) as info:
        run_training(cfg, progress=False)
    assert info.value.exit_code == 143
    assert str(info.value) == ("interrupted by SIGTERM while preparing images, before training began (prepared images stay in the cache); "
                               "nothing was kept")
    assert not run.exists()  # the folder it had just made is gone again
    assert signal.getsignal(signal.SIGTERM) is before  # the handler is put back


def test_an_ema_run_interrupted_mid_epoch_resumes_its_average_not_a_new_one(small, monkeypatch):
    with_callback(monkeypatch, _SignalAt(1, 2, lambda: os.kill(os.getpid(), signal.SIGTERM)))
    cfg = small(epochs=2, ema_decay=0.9)
    run = Path(cfg.train.output_dir) / "run"
    with pytest.raises(TrainingInterrupted):
        run_training(cfg, progress=False)
    kept = torch.load(run / "lightning" / "last.ckpt", map_location="cpu", weights_only=False)
    steps_before = kept["global_step"]
    assert "averaging_state" in kept and int(kept["averaging_state"]["n_averaged"]) == steps_before
    monkeypatch.undo()
    resumed = run_training(cfg, resume=run, progress=False)
    final = torch.load(run / "lightning" / "last.ckpt", map_location="cpu", weights_only=False)
    # the average counts every step of the run, before and after the interrupt (a fresh average would count only the later ones)
    assert int(final["averaging_state"]["n_averaged"]) == final["global_step"] > steps_before
    _, meta = load_checkpoint(resumed.checkpoint)
    assert "interrupted" not in meta.extra and meta.train["ema_decay"] == 0.9
