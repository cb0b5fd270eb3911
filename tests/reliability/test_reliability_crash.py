"""Crashes lose nothing (issue #7): atomic checkpoint writes, corrupt checkpoints refused by
checksum, self-healing caches, an unwritable output folder reported before training, and a
resumed deterministic run that ends where an uninterrupted one does."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from brainmri.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from brainmri.errors import CheckpointError
from reliability_corpus import make_tiny_checkpoint, write_valid_pngs


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return read_checkpoint(path)[0]


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ------------------------------------------------------------------ atomic checkpoint writes


class _HalfWriter:
    """A file object that writes half of the data, then dies (a crash in the middle of a write)."""

    def __init__(self, f, exc: BaseException):
        self.f, self.exc = f, exc

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.f.close()

    def write(self, data: bytes) -> int:
        self.f.write(data[: len(data) // 2])
        self.f.flush()
        raise self.exc

    def __getattr__(self, name):
        return getattr(self.f, name)


@pytest.mark.parametrize("where", ["mid-write", "fsync", "rename"])
@pytest.mark.parametrize("exc", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_a_crash_while_saving_keeps_the_previous_checkpoint(tmp_path, monkeypatch, where: str, exc: BaseException) -> None:
    import brainmri.checkpoint as ckpt_module

    best = make_tiny_checkpoint(tmp_path / "best.safetensors", seed=0)
    before = _weights(best)
    model, meta = load_checkpoint(best)
    torch.nn.init.normal_(next(model.parameters()))  # a different "better" model

    def fail(*_a, **_k):
        raise exc

    real_fdopen = os.fdopen
    if where == "mid-write":
        monkeypatch.setattr(ckpt_module.os, "fdopen", lambda fd, mode="r", *a, **k: _HalfWriter(real_fdopen(fd, mode, *a, **k), exc))
    else:
        monkeypatch.setattr(ckpt_module.os, "fsync" if where == "fsync" else "replace", fail)
    with pytest.raises(type(exc)):
        save_checkpoint(best, model, meta)
    monkeypatch.undo()
    assert _same(_weights(best), before)  # intact, checksum verified, loadable
    load_checkpoint(best)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.safetensors"]  # no temp file left


def test_a_crash_during_training_keeps_the_best_checkpoint_loadable(tmp_path, monkeypatch) -> None:
    """BestCheckpoint writes through the same atomic path: a failing write leaves the old best."""
    from brainmri.training.callbacks import BestCheckpoint

    best = make_tiny_checkpoint(tmp_path / "best.safetensors", seed=0)
    before = _weights(best)
    model, meta = load_checkpoint(best)
    cb = BestCheckpoint(best, "val_acc", lambda metrics: meta)

    class Trainer:
        sanity_checking, current_epoch, is_global_zero, callbacks = False, 3, True, []
        callback_metrics = {"val_acc": torch.tensor(0.9)}

    class Module:
        pass

    Module.model = model
    def io_error(*_a):
        raise OSError(5, "I/O error")

    monkeypatch.setattr("brainmri.checkpoint.os.replace", io_error)
    with pytest.raises(OSError):
        cb.on_validation_end(Trainer(), Module())
    monkeypatch.undo()
    assert _same(_weights(best), before)
    assert [p.name for p in tmp_path.iterdir()] == ["best.safetensors"]


# ------------------------------------------------------------------ corrupt checkpoints


def _header_len(path: Path) -> int:
    return int.from_bytes(path.read_bytes()[:8], "little")


def _flip_tensor_bytes(path: Path) -> None:
    data = bytearray(path.read_bytes())
    start = 8 + _header_len(path)
    for k in range(start + 64, len(data), max(1, (len(data) - start) // 7)):
        data[k] ^= 0xFF
    path.write_bytes(bytes(data))


def _flip_header_bytes(path: Path) -> None:
    data = bytearray(path.read_bytes())
    for k in range(12, 8 + _header_len(path), 97):
        data[k] ^= 0x55
    path.write_bytes(bytes(data))


def _truncate(fraction: float):
    def cut(path: Path) -> None:
        data = path.read_bytes()
        path.write_bytes(data[: int(len(data) * fraction)])
    return cut


CORRUPTIONS = {
    "flipped tensor bytes": (_flip_tensor_bytes, r"checksum mismatch"),
    "flipped header bytes": (_flip_header_bytes, r"not a valid safetensors|metadata|not a brainmri"),
    "truncated to 90%": (_truncate(0.9), r"not a valid safetensors"),
    "truncated to a few bytes": (_truncate(0.0001), r"not a valid safetensors"),
    "empty": (lambda p: p.write_bytes(b""), r"not a valid safetensors"),
    "zeros": (lambda p: p.write_bytes(bytes(p.stat().st_size)), r"not a valid safetensors"),
}


@pytest.mark.parametrize("kind", list(CORRUPTIONS))
def test_corrupt_checkpoint_is_refused_naming_the_file(tmp_path, kind: str, cli) -> None:
    corrupt, pattern = CORRUPTIONS[kind]
    path = make_tiny_checkpoint(tmp_path / "model.safetensors")
    corrupt(path)
    with pytest.raises(CheckpointError, match=rf"model\.safetensors: .*({pattern})"):
        load_checkpoint(path)
    code, text = cli("info", path)
    assert code == 2 and "model.safetensors" in text, text
    [image] = write_valid_pngs(tmp_path / "imgs", n=1, size=32)
    code, text = cli("predict", image, "-c", path)
    assert code == 2 and "model.safetensors" in text, text


# ------------------------------------------------------------------ caches heal themselves


@pytest.fixture
def images(tmp_path) -> list[Path]:
    return write_valid_pngs(tmp_path / "imgs", n=4, size=64)


def _samples(paths: list[Path]):
    from brainmri.data.datasets import Sample

    return [Sample(str(p), i % 4, "train", None) for i, p in enumerate(paths)]


def test_prepared_image_cache_rebuilds_corrupt_entries(tmp_path, images) -> None:
    from brainmri.config import PreprocessConfig
    from brainmri.data.cache import ImageCache
    from brainmri.data.torchdata import PreparedImages

    cfg = PreprocessConfig(image_size=32)
    first = PreparedImages(_samples(images), cfg, cache_dir=tmp_path / "cache")
    cache = ImageCache(tmp_path / "cache", cfg)
    entries = [cache._entry(cache.key(p)) for p in images]
    assert all(e.is_file() for e in entries)
    entries[0].write_bytes(entries[0].read_bytes()[:40])  # truncated
    np.save(entries[1], np.zeros((7, 9), np.uint8))  # wrong shape
    entries[2].write_bytes(b"\x00garbage" * 50)  # not an .npy
    np.save(entries[3], np.zeros((32, 32), np.float64))  # wrong dtype

    again = PreparedImages(_samples(images), cfg, cache_dir=tmp_path / "cache")
    assert not again.failures
    assert all(np.array_equal(a, b) for a, b in zip(first.images, again.images))
    assert again.cache.misses == 4 and again.cache.hits == 0
    for e, expected in zip(entries, first.images):  # rewritten, valid
        assert np.array_equal(np.load(e, allow_pickle=False), expected)
    third = PreparedImages(_samples(images), cfg, cache_dir=tmp_path / "cache")
    assert third.cache.hits == 4


def _hashes(paths: list[Path], cache_dir: Path):
    from brainmri.data.datasets import DatasetIndex
    from brainmri.data.hashing import hash_samples

    index = DatasetIndex(str(paths[0].parent), ["a", "b", "c", "d"], _samples(paths), {}, None, False, "flat")
    return hash_samples(index, cache_dir=cache_dir)


HASH_CACHE_DAMAGE = {
    "truncated file": lambda blob, raw: raw[: len(raw) // 2],
    "not JSON": lambda blob, raw: "\x00\x01 not json",
    "a JSON list": lambda blob, raw: "[1, 2, 3]",
    "entry is a string": lambda blob, raw: json.dumps({**blob, "entries": {k: "oops" for k in blob["entries"]}}),
    "phash not hex": lambda blob, raw: json.dumps({**blob, "entries": {k: {**v, "phash": "zz" * 32} for k, v in blob["entries"].items()}}),
    "phash too short": lambda blob, raw: json.dumps({**blob, "entries": {k: {**v, "phash": "ab"} for k, v in blob["entries"].items()}}),
    "unknown field": lambda blob, raw: json.dumps({**blob, "entries": {k: {**v, "colour": 1} for k, v in blob["entries"].items()}}),
}


@pytest.mark.parametrize("damage", list(HASH_CACHE_DAMAGE))
def test_hash_cache_rebuilds_corrupt_entries(tmp_path, images, damage: str) -> None:
    from brainmri.data.hashing import CACHE_FILE, near_duplicate_pairs, phash_array

    cache_dir = tmp_path / "hashes"
    first = _hashes(images, cache_dir)
    cache_file = cache_dir / CACHE_FILE
    raw = cache_file.read_text()
    cache_file.write_text(HASH_CACHE_DAMAGE[damage](json.loads(raw), raw))

    again = _hashes(images, cache_dir)
    assert again == first
    near_duplicate_pairs(phash_array(again)[0], threshold=8)  # usable downstream
    healed = json.loads(cache_file.read_text())  # rewritten as valid JSON with every image
    assert len(healed["entries"]) == len(images)
    assert all(len(bytes.fromhex(e["phash"])) == 32 for e in healed["entries"].values())


# ------------------------------------------------------------------ unwritable output folder


@pytest.mark.parametrize("kind", ["under a regular file", "under /proc"])
def test_unwritable_output_dir_is_reported_before_training(tmp_path, kind: str, cli, phantom_flat) -> None:
    if kind == "under a regular file":
        (tmp_path / "afile").write_text("not a folder")
        out = tmp_path / "afile" / "runs"
    else:
        out = Path("/proc/brainmri-test-runs")
    code, text = cli("-q", "train", "--data", phantom_flat, "--model", "seed003_cnn", "--image-size", "32", "--epochs", "1",
                     "--cache-dir", "none", "--output-dir", out, "--run-name", "r")
    assert code == 2, text
    if kind == "under a regular file":  # the file in the way is named, and the flag that chose it
        assert f"{tmp_path / 'afile'}: a file, not a folder, so {out / 'r'} cannot be made; choose another --output-dir" in text
    else:
        assert str(out / "r") in text and "not writable" in text
    assert "Epoch" not in text and "preparing images" not in text  # refused before any work


# ------------------------------------------------------------------ deterministic resume


class _Crash(Exception):
    pass


def test_deterministic_resume_ends_with_the_same_metrics(tmp_path, monkeypatch, phantom_split) -> None:
    """An uninterrupted 3-epoch deterministic run vs one that dies after epoch 1 and is resumed:
    the final metrics agree within 1e-4 (~20 s on two cores). Guards three things resume needs:
    lightning/last.ckpt written every epoch, metrics.csv keeping the epochs before the crash,
    and the random states restored from the checkpoint."""
    import lightning.pytorch as pl

    from brainmri.config import RunConfig
    from brainmri.training import run_training

    def config(name: str) -> RunConfig:
        cfg = RunConfig()
        cfg.data.root, cfg.data.preset, cfg.data.cache_dir = str(phantom_split), "tumor4", None
        cfg.model.name, cfg.preprocess.image_size = "seed003_cnn", 32
        cfg.train.output_dir, cfg.train.run_name = str(tmp_path), name
        cfg.train.epochs, cfg.train.batch_size, cfg.train.precision, cfg.train.deterministic = 3, 16, "32", True
        return cfg

    straight = run_training(config("straight"), progress=False)

    class CrashAfterFirstEpoch(pl.Callback):
        def on_train_epoch_start(self, trainer, pl_module):
            if trainer.current_epoch == 1:
                raise _Crash("simulated kill after epoch 1")

    real_trainer = pl.Trainer

    def crashing_trainer(*args, callbacks=(), **kwargs):
        return real_trainer(*args, callbacks=[*callbacks, CrashAfterFirstEpoch()], **kwargs)

    monkeypatch.setattr(pl, "Trainer", crashing_trainer)
    with pytest.raises(_Crash):
        run_training(config("killed"), progress=False)
    monkeypatch.undo()
    resumed = run_training(config("killed"), resume=tmp_path / "killed", progress=False)

    def last_row(run_dir: Path) -> dict[str, float]:
        import csv

        rows = list(csv.DictReader(open(run_dir / "metrics.csv")))
        assert [int(r["epoch"]) for r in rows] == [0, 1, 2], rows
        return {k: float(rows[-1][k]) for k in ("train_loss", "val_loss", "val_acc", "val_macro_f1")}

    a, b = last_row(straight.run_dir), last_row(resumed.run_dir)
    for k in a:
        assert abs(a[k] - b[k]) <= 1e-4, (k, a[k], b[k])
