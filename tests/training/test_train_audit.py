"""What an audit of ``brainmri train`` found and what now happens instead: a cache folder inside the
dataset, ``~`` in config paths, labels-file flags a dataset does not read, unchecked crop / pixel /
duplicate settings, a resumed ``--overwrite`` run that never dropped the run it replaced, a run
config edited or emptied before ``--resume``, relative paths in a run's config, a lock left by a
process whose pid was reused, and messages that blamed the wrong flag."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import lightning.pytorch as pl
import pytest
import yaml

from brainmri.config import RunConfig, load_run_config, validate
from brainmri.errors import ConfigError
from brainmri.training import run_training
from brainmri.training.callbacks import TrainingInterrupted
from brainmri.training.rundir import LOCK, STASH, RunDirLock, load_config_for_resume


class _SigtermAt(pl.Callback):
    def __init__(self, epoch: int, batch: int):
        self.at = (epoch, batch)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if (trainer.current_epoch, batch_idx) == self.at:
            os.kill(os.getpid(), signal.SIGTERM)


def _interrupt(monkeypatch, cfg, **kwargs) -> Path:
    """Run ``cfg`` until SIGTERM in epoch 0, batch 1; return the run directory (it holds last.ckpt)."""
    real = pl.Trainer
    monkeypatch.setattr(pl, "Trainer", lambda *a, callbacks=(), **k: real(*a, callbacks=[*callbacks, _SigtermAt(0, 1)], **k))
    with pytest.raises(TrainingInterrupted):
        run_training(cfg, progress=False, **kwargs)
    monkeypatch.setattr(pl, "Trainer", real)
    run = Path(cfg.train.output_dir) / cfg.train.run_name
    assert (run / "lightning" / "last.ckpt").is_file()
    return run


# ------------------------------------------------------------------ config values and paths


@pytest.mark.parametrize("section, field, value, message", [
    ("preprocess", "crop_erode", -1, r"preprocess.crop_erode=-1 must be a whole number of iterations in \[0, 100\]"),
    ("preprocess", "crop_dilate", 500, r"preprocess.crop_dilate=500 must be"),
    ("data", "max_pixels", 0, r"data.max_pixels=0 must be >= 1"),
    ("data", "near_duplicate_threshold", -1, r"data.near_duplicate_threshold=-1 must be a Hamming distance in \[0, 256\]"),
    ("data", "near_duplicate_threshold", 300, r"data.near_duplicate_threshold=300"),
    ("train", "head_epochs", -1, r"^train.head_epochs=-1 must be >= 0 epochs$"),
])
def test_out_of_range_settings_are_refused_by_name(section, field, value, message):
    cfg = RunConfig()
    cfg.data.root = "x"
    setattr(getattr(cfg, section), field, value)
    with pytest.raises(ConfigError, match=message):
        validate(cfg)


def test_a_leading_tilde_in_config_paths_is_the_home_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    cfg = RunConfig()
    cfg.data.root, cfg.train.output_dir, cfg.data.cache_dir = "~/data", "~/runs", "~/cache"
    cfg.data.extra_train = ["~/yesno=tumor", "/abs/other"]
    validate(cfg)
    assert cfg.data.root == str(tmp_path / "data") and cfg.train.output_dir == str(tmp_path / "runs")
    assert cfg.data.cache_dir == str(tmp_path / "cache")
    assert cfg.data.extra_train == [f"{tmp_path}/yesno=tumor", "/abs/other"]


def test_config_errors_name_the_file_and_a_folder_is_not_a_config(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  epochs: -3\n")
    with pytest.raises(ConfigError, match=rf"^{bad}: train.epochs=-3 must be >= 0 epochs$"):
        load_run_config(bad)
    with pytest.raises(ConfigError, match=rf"^{tmp_path}: a folder; --config takes a YAML file"):
        load_run_config(tmp_path)


def test_a_cache_folder_inside_the_dataset_is_refused_before_any_work(make_dataset, cli):
    data = make_dataset("split")
    code, out = cli("train", "--data", str(data), "--cache-dir", str(data / "cache"), "--dry-run")
    assert code == 2 and f"data.cache_dir (--cache-dir) {data / 'cache'} lies inside the dataset {data}" in out
    assert not (data / "cache").exists()
    code, out = cli("evaluate", "missing.safetensors", "--data", str(data), "--cache-dir", str(data / "Testing" / "c"))
    assert code == 2 and "lies inside the dataset" in out


@pytest.mark.parametrize("word", ["NONE", "none", "Off"])
def test_cache_dir_none_in_any_case_turns_the_cache_off(make_dataset, cli, word):
    data = make_dataset("split")
    code, out = cli("train", "--data", str(data), "--cache-dir", word, "--dry-run", "--output-dir", str(data.parent / "runs"))
    assert code == 0, out
    assert '"cache_dir": null' in out and not (Path.cwd() / word).exists()


def test_labels_file_flags_on_class_folders_are_an_error_not_ignored(make_dataset, cli):
    data = make_dataset("split")
    code, out = cli("data", "counts", str(data), "--label-names", "0=notumor,1=glioma")
    assert code == 2 and f"{data}: read as class folders" in out and "--label-names (data.csv_label_names) does not apply" in out
    code, out = cli("data", "counts", str(data), "--csv-label-column", "target")
    assert code == 2 and "--csv-label-column" in out
    code, out = cli("data", "counts", str(data))
    assert code == 0, out


def test_npz_keys_on_a_csv_dataset_are_an_error(make_dataset, cli):
    data = make_dataset("csv")
    code, out = cli("data", "counts", str(data), "--npz-images-key", "imgs")
    assert code == 2 and "read as a labels CSV" in out and "--npz-images-key" in out


# ------------------------------------------------------------------ run directories


def test_a_run_name_taken_by_a_file_blames_the_run_name_and_a_file_output_dir_the_output_dir(small, tmp_path):
    cfg = small()
    out = Path(cfg.train.output_dir)
    out.mkdir(parents=True)
    (out / "run").write_text("notes")
    with pytest.raises(ConfigError, match=r"a file, not a folder, has the run directory's name; pick another --run-name"):
        run_training(cfg, progress=False)
    assert (out / "run").read_text() == "notes"
    cfg = small()
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    cfg.train.output_dir = str(blocker / "runs")
    with pytest.raises(ConfigError, match=rf"^{blocker}: a file, not a folder, so .* cannot be made; choose another --output-dir$"):
        run_training(cfg, progress=False)


def test_a_lock_naming_a_reused_pid_is_taken_over_but_a_live_holder_is_not(tmp_path):
    from brainmri.training.rundir import _started

    run = tmp_path / "run"
    run.mkdir()
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        me = socket.gethostname()
        (run / LOCK).write_text(f"{other.pid} {me} {_started(other.pid)}\n")  # the real holder, still alive
        with pytest.raises(ConfigError, match=rf"another brainmri train \(pid {other.pid}\)"):
            RunDirLock(run).__enter__()
        (run / LOCK).write_text(f"{other.pid} {me} {_started(other.pid)}0\n")  # that pid, but a process started at another time
        with RunDirLock(run) as lock:
            assert lock.held and (run / LOCK).read_text().split()[0] == str(os.getpid())
        (run / LOCK).write_text(f"{os.getpid()} {me}\n")  # this very process (a restarted container's pid 1, say)
        with RunDirLock(run) as lock:
            assert lock.held
    finally:
        other.kill()
        other.wait()
    assert not (run / LOCK).exists()


# ------------------------------------------------------------------ --resume


def test_a_resumed_overwrite_run_drops_the_run_it_replaced_once_it_finishes(small, monkeypatch):
    first = run_training(small(), progress=False)
    run = _interrupt(monkeypatch, small(epochs=2, seed=5), overwrite=True)
    assert (run / STASH / "best.safetensors").is_file()  # the replaced run is kept while the new one is unfinished
    result = run_training(small(epochs=2, seed=5), resume=run, progress=False)
    assert Path(result.checkpoint).is_file() and result.run_dir == first.run_dir
    assert not (run / STASH).exists()


def test_the_run_config_keeps_absolute_paths_so_resume_works_from_another_folder(small, monkeypatch, tmp_path):
    cfg = small(epochs=2)
    monkeypatch.chdir(Path(cfg.data.root).parent)
    cfg.data.root = Path(cfg.data.root).name
    cfg.train.output_dir = os.path.relpath(cfg.train.output_dir)
    run = _interrupt(monkeypatch, cfg)
    saved = yaml.safe_load((Path(cfg.train.output_dir) / "run" / "config.yaml").read_text())
    assert Path(saved["data"]["root"]).is_absolute() and Path(saved["train"]["output_dir"]).is_absolute()
    run = run.resolve()
    monkeypatch.chdir(tmp_path)
    resumed = run_training(load_config_for_resume(run), resume=run, progress=False)
    assert Path(resumed.checkpoint).is_file()


def test_resume_refuses_a_config_edited_to_another_network_or_image_size(small, monkeypatch):
    run = _interrupt(monkeypatch, small(epochs=2))
    path = run / "config.yaml"
    original = path.read_text()
    for old, new, field in (("name: seed002_cnn", "name: seed003_cnn", "model.name"), ("image_size: 32", "image_size: 40", "preprocess.image_size")):
        assert old in original
        path.write_text(original.replace(old, new))
        with pytest.raises(ConfigError, match=rf"^{path}: edited since the run started — {field} is .*, the run was trained with .*; "
                                              r"the checkpoint .* cannot be resumed this way"):
            run_training(load_config_for_resume(run), resume=run, progress=False)
    path.write_text(original.replace("epochs: 2", "epochs: 3"))  # more epochs: allowed
    resumed = run_training(load_config_for_resume(run), resume=run, progress=False)
    assert Path(resumed.checkpoint).is_file()


def test_resume_with_an_empty_or_old_relative_config_is_one_clear_error(small, tmp_path):
    run = tmp_path / "run"
    (run / "lightning").mkdir(parents=True)
    (run / "config.yaml").write_text("# brainmri run config: the resolved config\n")
    with pytest.raises(ConfigError, match=rf"^{run / 'config.yaml'}: empty, so the run's settings are lost"):
        load_config_for_resume(run)
    (run / "config.yaml").write_text("# brainmri run config\ndata:\n  root: not/here\n")
    with pytest.raises(ConfigError, match=r"data.root 'not/here' is relative and not found from"):
        load_config_for_resume(run)
    (run / "config.yaml").write_text("# brainmri run config\ndata:\n  root: /x\ntrain:\n  batch_size: 0\n")
    with pytest.raises(ConfigError, match=rf"^{run / 'config.yaml'}: train.batch_size must be >= 1$"):
        load_config_for_resume(run)

