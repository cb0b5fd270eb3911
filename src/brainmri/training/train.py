"""``run_training(cfg)``: one run directory per training run, on Lightning.

The run directory holds ``config.yaml`` (resolved), ``best.safetensors`` (model + metadata:
preprocessing, classes, calibration, OOD thresholds), ``metrics.csv``, ``summary.json``,
TensorBoard ``logs/`` and ``lightning/last.ckpt`` (for ``--resume``).
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import shlex
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml

import brainmri._compat  # noqa: F401
import lightning.pytorch as pl
from lightning.pytorch.callbacks import EarlyStopping, TQDMProgressBar
from lightning.pytorch.loggers import TensorBoardLogger
from torch.utils.data import DataLoader

from brainmri.checkpoint import CheckpointMeta, atomic_write_bytes, library_versions, load_checkpoint, save_checkpoint
from brainmri.config import RunConfig, to_dict, validate
from brainmri.data.cache import resolve_cache_dir
from brainmri.data.datasets import data_fingerprint, load_dataset
from brainmri.data.sampling import ResumableRandomSampler, balanced_sampler
from brainmri.data.torchdata import ImageDataset, PreparedImages, ResumableLoader
from brainmri.errors import BrainMRIError, CheckpointError, ConfigError
from brainmri.models import create_model
from brainmri.preprocess.augment import build_augment
from brainmri.training.callbacks import (
    BestCheckpoint,
    FiniteGuard,
    InterruptRecorder,
    LastCheckpoint,
    MetricsCSV,
    ModelEMA,
    TrainingDiverged,
    TrainingInterrupted,
    interrupt_signal,
)
from brainmri.training.finetune import TwoPhaseFinetuning, check_unfreeze
from brainmri.training.module import ClassifierModule
from brainmri.training.preflight import check_environment, check_readable_classes, check_trainable
from brainmri.training.rundir import (
    CONFIG_MARK,
    ENV_RUN_DIR,
    STASH,
    RunDirLock,
    check_resumable,
    check_run_dir_free,
    default_run_name,
    holds_run,
    inherited_run_dir,
    load_config_for_resume,
    remove_if_empty_run,
    run_key,
    settle_stash,
    stash_previous_run,
)

log = logging.getLogger(__name__)


def _tidy_lightning_logging() -> None:
    """Lightning's messages once, at the level the CLI asked for: ``lightning`` adds a console
    handler of its own even when the root logger has one (``brainmri`` configures it), so every line
    printed twice and ``-q`` did not quiet them; its advertisement for a cloud logger is dropped."""
    root = logging.getLogger()
    lg = logging.getLogger("lightning")
    if root.handlers:  # a program configured logging: let it print Lightning's lines too
        for h in [h for h in lg.handlers if type(h) is logging.StreamHandler]:
            lg.removeHandler(h)
        for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
            logging.getLogger(name).setLevel(max(root.level, logging.INFO))
    if not any(isinstance(f, _NoTips) for f in logging.getLogger("lightning.pytorch.utilities.rank_zero").filters):
        for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
            logging.getLogger(name).addFilter(_NoTips())


class _NoTips(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "Tip:" not in str(record.msg)


_tidy_lightning_logging()


@dataclass
class TrainResult:
    run_dir: Path
    checkpoint: Path
    metrics: dict


def check_output_dir(path: Path) -> None:
    """Fail before training if the run directory cannot be written (permissions, full disk), naming
    the flag that chose the part of the path at fault."""
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{path}: a file, not a folder, has the run directory's name; pick another --run-name "
                          f"(or move the file away)")
    blocking = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise ConfigError(f"{blocking}: a file, not a folder, so {path} cannot be made; choose another --output-dir")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_bytes(b"x" * 65536)
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"{path}: output directory is not writable ({exc.strerror or exc}); choose another with --output-dir") from None


def _precision(cfg_precision: str, accelerator: str) -> str:
    if cfg_precision != "auto":
        return "32-true" if cfg_precision == "32" else cfg_precision
    if torch.cuda.is_available() and accelerator in ("auto", "gpu", "cuda"):
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return "bf16-mixed"  # CPU: bf16 autocast + channels_last ~3.6x fp32 on DenseNet121 (DEVELOPERS.md)


def _class_weights(labels: list[int], num_classes: int, kept: list[float] | None = None) -> torch.Tensor:
    from brainmri.data.sampling import class_weights

    return class_weights(labels, num_classes, kept)


def run_training(cfg: RunConfig, resume: str | Path | None = None, progress: bool = True, overwrite: bool = False) -> TrainResult:
    """Train a classifier as ``cfg`` says and return where its run directory and best checkpoint are.

    Args:
        cfg: the run configuration.
        resume: a run directory whose ``lightning/last.ckpt`` to continue from.
        progress: show a progress bar.
        overwrite: replace a run already in the run directory (otherwise that is refused).

    Raises:
        TrainingInterrupted: SIGINT / SIGTERM stopped training (what was kept is in the message).
        TrainingDiverged: the loss or the weights became NaN / infinite.
    """
    validate(cfg)
    check_environment(cfg)
    key = run_key(cfg)
    inherited = inherited_run_dir(key)  # a DDP rank started by this run's launching process
    if resume is not None:
        run_dir = check_resumable(resume)
        last = run_dir / "lightning" / "last.ckpt"
    else:
        run_dir = inherited or Path(cfg.train.output_dir) / (cfg.train.run_name or default_run_name(cfg))
        last = None
        if inherited is None:
            check_run_dir_free(run_dir, overwrite)
    created = not run_dir.exists()
    check_output_dir(run_dir)
    stashed = overwrite and resume is None and inherited is None and holds_run(run_dir)
    try:
        with RunDirLock(run_dir) if inherited is None else contextlib.nullcontext():  # DDP ranks share their launcher's
            if stashed:
                stash_previous_run(run_dir)
            result = _train(cfg, run_dir, last, progress, key)
    except BaseException as exc:
        if created and inherited is None:
            remove_if_empty_run(run_dir)
        if stashed and (note := settle_stash(run_dir, succeeded=False)):
            log.warning("%s", note)
            if isinstance(exc, BrainMRIError) and exc.args:
                exc.args = (f"{exc.args[0]}; {note}", *exc.args[1:])
        raise
    if stashed or (resume is not None and inherited is None and (run_dir / STASH).is_dir()):
        # a resumed --overwrite run that has now finished: the run it replaces is dropped, as it would have been
        settle_stash(run_dir, succeeded=True)
        if not stashed:
            log.info("%s: the run this --overwrite run replaced (kept in %s while it was unfinished) is dropped", run_dir, STASH)
    return result


class _SigtermSays:
    """Outside Lightning's fit (which handles SIGTERM itself), SIGTERM becomes an interruption
    that says what it stopped and what is kept, instead of a silent exit 143. ``stage`` is
    changed as the run moves on; ``restore()`` (idempotent) puts the previous handler back."""

    def __init__(self, stage: str, run_dir: Path):
        self.run_dir = run_dir
        self._previous = None
        self.install(stage)

    def install(self, stage: str) -> None:
        self.stage = stage
        if self._previous is None and threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._handler)

    def _handler(self, signum, frame) -> None:  # noqa: ARG002
        text = f"interrupted by SIGTERM {self.stage}; {_kept(self.run_dir, self.run_dir / 'best.safetensors', interrupted=False)}"
        if (self.run_dir / "lightning" / "last.ckpt").exists():
            text += f"; resume with: brainmri train --resume {shlex.quote(str(self.run_dir))}"
        raise TrainingInterrupted(text, "SIGTERM", 143)

    def restore(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
            self._previous = None


def _train(cfg: RunConfig, run_dir: Path, last: Path | None, progress: bool, key: str) -> TrainResult:
    sigterm = _SigtermSays("while preparing images, before training began (prepared images stay in the cache)", run_dir)
    try:
        return _train_steps(cfg, run_dir, last, progress, key, sigterm)
    finally:
        sigterm.restore()


def _train_steps(cfg: RunConfig, run_dir: Path, last: Path | None, progress: bool, key: str, sigterm: _SigtermSays) -> TrainResult:
    t, d = cfg.train, cfg.data
    pl.seed_everything(t.seed, workers=True, verbose=False)
    if t.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)

    index = load_dataset(d)
    check_trainable(index, cfg)
    num_classes = len(index.class_names)
    # the model (and its pretrained weights) before the images: a wrong weights file fails in seconds, not after preparing
    model = create_model(
        cfg.model.name, num_classes, in_chans=cfg.preprocess.in_chans, pretrained=cfg.model.pretrained,
        pretrained_weights=cfg.model.pretrained_weights, head=cfg.model.head, head_hidden=cfg.model.head_hidden,
        drop_rate=cfg.model.drop_rate, image_size=cfg.preprocess.image_size,
    )
    check_unfreeze(model, t.unfreeze, cfg.model.name)
    cache_dir = resolve_cache_dir(d.cache_dir)
    log.info("preparing images (crop %s, %d px, cache %s)", cfg.preprocess.crop, cfg.preprocess.image_size, cache_dir or "off")
    train_samples = index.split("train")
    extra: list[dict] = []
    if d.extra_train:
        from brainmri.data.presence import extra_sources_of

        extra_samples, extra = extra_sources_of(d, index.class_names)
        train_samples = train_samples + extra_samples
        log.info("extra tumor-presence sources: %s", "; ".join(f"{e['source']} ({e['n_tumor']} tumor, {e['n_notumor']} notumor)" for e in extra))
    train_images = PreparedImages(train_samples, cfg.preprocess, cache_dir, index.arrays, d.max_pixels)
    val_images = PreparedImages(index.split("val"), cfg.preprocess, cache_dir, index.arrays, d.max_pixels)
    check_readable_classes(index, train_samples, train_images, val_images)
    healthy = index.class_names.index("notumor") if "notumor" in index.class_names else None
    no_lesion = frozenset(s.path for s in extra_samples) if d.extra_train and not d.extra_lesions else frozenset()
    strip_skip = frozenset(index.class_names.index(c) for c in cfg.augment.skull_strip_skip or ())
    train_ds = ImageDataset(train_images, cfg.preprocess, build_augment(cfg.augment), cfg.augment.lesion, healthy, cfg.augment.lesion_margin,
                            cfg.augment.skull_strip, no_lesion=no_lesion,
                            strip_lesions=cfg.augment.skull_strip_lesions, strip_skip=strip_skip)
    val_ds = ImageDataset(val_images, cfg.preprocess)
    if d.balanced_sampler:
        sampler = balanced_sampler(train_images.labels)
    else:  # draws what DataLoader(shuffle=True) would, and can resume an interrupted epoch
        sampler = ResumableRandomSampler(train_ds)
    loader_kw = {"batch_size": t.batch_size, "num_workers": t.num_workers, "persistent_workers": t.num_workers > 0}
    train_dl = ResumableLoader(train_ds, sampler=sampler, drop_last=len(train_ds) > t.batch_size, **loader_kw)
    val_dl = DataLoader(val_ds, shuffle=False, **loader_kw)

    if t.channels_last:
        model = model.to(memory_format=torch.channels_last)
    typed = [label for label in train_images.labels if label >= 0]  # PRESENCE rows have no class
    kept = None
    if d.class_weights == "effective" and healthy is not None:  # lesion scans leave the healthy class
        kept = [1.0 - cfg.augment.lesion if k == healthy else 1.0 for k in range(num_classes)]
    weights = _class_weights(typed, num_classes, kept) if d.class_weights in ("balanced", "effective") else None
    steps = len(train_dl)
    if isinstance(t.max_train_batches, int):
        steps = min(steps, t.max_train_batches)
    elif isinstance(t.max_train_batches, float):  # a fraction, as Lightning's limit_train_batches
        steps = max(1, int(steps * t.max_train_batches))
    module = ClassifierModule(model, num_classes, t, weights, steps_per_epoch=steps, healthy_class=healthy)

    fingerprint = data_fingerprint(index)
    counts = index.counts()
    module.data_fingerprint, module.data_images = fingerprint, len(index.samples)
    module.run_sections = resume_sections(cfg)

    def make_meta(metrics: dict) -> CheckpointMeta:
        return CheckpointMeta(
            model=cfg.model, class_names=index.class_names, preprocess=cfg.preprocess, task=d.preset or "custom",
            train={**to_dict(t), "augment": to_dict(cfg.augment)},
            data={"root": str(d.root), "fingerprint": fingerprint, "counts": counts, "split": d.split, "seed": d.seed, "extra_train": extra,
                  "extra_lesions": d.extra_lesions, "unreadable": len(train_images.failures) + len(val_images.failures)},
            metrics=metrics, versions=library_versions(),
        )

    best_path = run_dir / "best.safetensors"
    recorder = InterruptRecorder()
    callbacks: list[pl.Callback] = [
        FiniteGuard(),
        recorder,
        TwoPhaseFinetuning(t.head_epochs, t.unfreeze),
        BestCheckpoint(best_path, t.monitor, make_meta),
        MetricsCSV(run_dir / "metrics.csv"),
        # lightning/last.ckpt after every epoch (and on SIGINT / SIGTERM), for --resume (Lightning >= 2.5
        # writes save_last only next to a top-k save, so save_top_k=0 + save_last=True wrote it only when training ended)
        LastCheckpoint(dirpath=run_dir / "lightning", filename="last", monitor=None, save_top_k=1, every_n_epochs=1,
                       enable_version_counter=False),
    ]
    if t.ema_decay:
        callbacks.append(ModelEMA(decay=t.ema_decay))
    if t.early_stopping_patience:
        callbacks.append(EarlyStopping(t.monitor, patience=t.early_stopping_patience, mode="min" if t.monitor.endswith("loss") else "max"))
    if progress:
        callbacks.append(TQDMProgressBar(refresh_rate=5))
    atomic_write_bytes(run_dir / "config.yaml", (f"{CONFIG_MARK}: the resolved config of this run (brainmri train --resume reads it)\n"
                                                 + yaml.safe_dump(saved_config(cfg), sort_keys=False)).encode())

    trainer = pl.Trainer(
        accelerator=t.accelerator, devices=t.devices if t.devices == "auto" else int(t.devices), num_nodes=t.num_nodes,
        strategy=t.strategy, precision=_precision(t.precision, t.accelerator), max_epochs=t.head_epochs + t.epochs,
        deterministic=True if t.deterministic else None, limit_train_batches=t.max_train_batches,
        callbacks=callbacks, logger=TensorBoardLogger(str(run_dir), name="logs", version=""),
        enable_progress_bar=progress, enable_model_summary=False, log_every_n_steps=max(1, min(50, steps)),
        num_sanity_val_steps=0, default_root_dir=str(run_dir),
    )
    started = time.time()
    sigterm.restore()  # Lightning's own handler takes over inside fit
    os.environ[ENV_RUN_DIR] = f"{key}:{run_dir}"  # DDP ranks started as subprocesses adopt this run directory
    try:
        if last:
            _prepare_resume(last, train_dl, steps, one_process=trainer.world_size == 1, data=(fingerprint, len(index.samples), d.root),
                            sections=module.run_sections, config_file=run_dir / "config.yaml")
        trainer.fit(module, train_dl, val_dl, ckpt_path=str(last) if last else None)
    except TrainingDiverged as exc:
        raise TrainingDiverged(f"{exc}; {_kept(run_dir, best_path, interrupted=False)}") from None
    except (KeyboardInterrupt, SystemExit) as exc:  # Lightning turns Ctrl-C into sys.exit(1), SIGTERM into SIGTERMException
        signal_name = interrupt_signal(recorder.exception)
        if signal_name is None:
            raise
        raise _interrupted(trainer, recorder, signal_name, run_dir, best_path, t) from exc
    finally:
        os.environ.pop(ENV_RUN_DIR, None)
    seconds = time.time() - started
    rank_info = {"global_rank": trainer.global_rank, "world_size": trainer.world_size, "global_step": trainer.global_step,
                 "epochs": trainer.current_epoch, "strategy": type(trainer.strategy).__name__}
    atomic_write_bytes(run_dir / f"rank-{trainer.global_rank}.json", json.dumps(rank_info).encode())

    if not trainer.is_global_zero:
        return TrainResult(run_dir, best_path, {})
    stage = "after training, while fitting the calibration on validation"
    sigterm.install(stage)
    try:
        if not best_path.exists():  # e.g. every val metric was NaN: keep the final weights
            save_checkpoint(best_path, module.model, make_meta({}))
        summary = finalize_checkpoint(best_path, val_images, cfg)
    except (KeyboardInterrupt, TrainingInterrupted) as exc:  # Ctrl-C, or SIGTERM through the handler above
        signal_name = getattr(exc, "signal_name", "SIGINT")
        total = t.head_epochs + t.epochs
        _mark_interrupted(best_path, signal_name, trainer.current_epoch, total)
        text = f"interrupted by {signal_name} {stage}; {_kept(run_dir, best_path, interrupted=True)}"
        if (run_dir / "lightning" / "last.ckpt").exists():
            text += f"; finish the calibration with: brainmri train --resume {shlex.quote(str(run_dir))}"
        raise TrainingInterrupted(text, signal_name, 130 if signal_name == "SIGINT" else 143) from None
    summary.update({"run_dir": str(run_dir), "seconds": round(seconds, 1), "epochs_run": trainer.current_epoch,
                    "train_images": len(train_images), "val_images": len(val_images),
                    "unreadable": [f"{p}: {r}" for p, r in train_images.failures + val_images.failures]})
    atomic_write_bytes(run_dir / "summary.json", json.dumps(summary, indent=2).encode())
    return TrainResult(run_dir, best_path, summary)


def _kept(run_dir: Path, best_path: Path, interrupted: bool) -> str:
    kept = []
    if best_path.exists():
        kept.append(f"{best_path} (best epoch so far; uncalibrated: temperature 1{', marked interrupted' if interrupted else ''})")
    if (run_dir / "lightning" / "last.ckpt").exists():
        kept.append(f"{run_dir / 'lightning' / 'last.ckpt'}")
    return "kept " + " and ".join(kept) if kept else "nothing was kept"


def _interrupted(trainer: pl.Trainer, recorder: InterruptRecorder, signal_name: str, run_dir: Path, best_path: Path, t) -> TrainingInterrupted:
    """Mark the kept best checkpoint as coming from an interrupted run; say what is left and how to go on."""
    code = 130 if signal_name == "SIGINT" else 143
    if not trainer.is_global_zero:
        return TrainingInterrupted("", signal_name, code)
    done, total = recorder.completed_epochs, t.head_epochs + t.epochs
    _mark_interrupted(best_path, signal_name, done, total)
    where = f"after {done} of {total} epochs" + (f" and {recorder.batches_in_epoch} batches of the next" if recorder.batches_in_epoch else "")
    text = f"interrupted by {signal_name} {where}; {_kept(run_dir, best_path, interrupted=True)}"
    if (run_dir / "lightning" / "last.ckpt").exists():
        text += f"; resume with: brainmri train --resume {shlex.quote(str(run_dir))}"
    return TrainingInterrupted(text, signal_name, code)


def _mark_interrupted(best_path: Path, signal_name: str, done: int, total: int) -> None:
    """Record in the kept best checkpoint that its run was interrupted (``brainmri info`` says so;
    a resumed run that finishes clears it)."""
    if not best_path.exists():
        return
    try:
        model, meta = load_checkpoint(best_path)
        meta.extra = {**meta.extra, "interrupted": True, "interrupted_by": signal_name, "completed_epochs": done, "epochs": total}
        save_checkpoint(best_path, model, meta)
    except Exception as exc:  # noqa: BLE001 - the message still says what is there
        log.warning("could not mark %s as interrupted: %s", best_path, exc)


def finalize_checkpoint(path: Path, val_images: PreparedImages, cfg: RunConfig) -> dict:
    """Fit temperature scaling and the OOD guard on the validation split; store both in the checkpoint."""
    from brainmri.evaluation.evaluate import predict_logits

    model, meta = load_checkpoint(path)
    with torch.inference_mode():
        raw = predict_logits(model, meta, val_images.images)
    logits = torch.from_numpy(raw).float()  # a normal tensor: temperature fitting needs autograd
    labels = torch.tensor(val_images.labels)
    out: dict = {"best_metrics": meta.metrics}
    try:
        from brainmri.evaluation.calibration import MIN_CALIBRATION_IMAGES, fit_calibration

        n, errors = len(labels), int((logits.argmax(1) != labels).sum())
        meta.calibration = fit_calibration(logits, labels, "val")  # top-label scaling only where a cross-validation says it pays
        if n < MIN_CALIBRATION_IMAGES or errors == 0:  # fitted all the same (the run must finish), but said
            why = (f"only {n} validation images (calibrate needs {MIN_CALIBRATION_IMAGES})" if n < MIN_CALIBRATION_IMAGES else
                   f"the model gets all {n} validation images right, so the fit could only sharpen")
            meta.calibration["warning"] = f"temperature {meta.calibration['temperature']:.3g} is a rough fit: {why}"
            log.warning("%s; refit it with brainmri calibrate on labelled scans", meta.calibration["warning"])
        out["calibration"] = meta.calibration
    except ImportError:
        log.warning("calibration module unavailable; temperature left at 1.0")
    try:
        from brainmri.inference.ood import fit_ood

        meta.ood = fit_ood(logits, val_images.images)
        out["ood"] = meta.ood
    except ImportError:
        log.warning("OOD module unavailable; no OOD thresholds stored")
    for k in ("interrupted", "interrupted_by", "completed_epochs", "epochs"):  # finished after a resume
        meta.extra.pop(k, None)
    save_checkpoint(path, model, meta)
    return out


def saved_config(cfg: RunConfig) -> dict:
    """The config as a run's ``config.yaml`` keeps it: relative paths made absolute, so that
    ``--resume`` from another working folder reads the same dataset, weights and sources."""
    from brainmri.data.presence import parse_spec

    out = to_dict(cfg)
    d, m, t = out["data"], out["model"], out["train"]

    def absolute(path):
        return os.path.abspath(path) if isinstance(path, str) and path.strip() else path

    d["root"] = absolute(d["root"])
    if d.get("csv") and not Path(d["csv"]).is_absolute():  # looked up in data.root first, then the working folder
        found = next((c for c in (Path(d["root"]) / d["csv"], Path(d["csv"])) if c.is_file()), None)
        d["csv"] = absolute(str(found)) if found else d["csv"]
    if d.get("cache_dir") not in (None, "auto"):
        d["cache_dir"] = absolute(d["cache_dir"])
    if d.get("extra_train"):
        d["extra_train"] = [absolute(path) + (f"={label}" if label else "") for path, label in map(parse_spec, d["extra_train"])]
    m["pretrained_weights"] = absolute(m.get("pretrained_weights"))
    t["output_dir"] = absolute(t["output_dir"])
    return out


def resume_sections(cfg: RunConfig) -> dict:
    """What a resumed run must share with the epochs before it: the network and its input."""
    return {"model": to_dict(cfg.model), "preprocess": to_dict(cfg.preprocess)}


def _config_changes(saved: dict, now: dict) -> list[str]:
    changes = []
    for section, fields_then in saved.items():
        for name, then in (fields_then or {}).items():
            here = (now.get(section) or {}).get(name)
            if section == "model" and name == "pretrained_weights":
                continue  # the starting weights matter only for a new run: the checkpoint holds what came of them
            if here != then and not (isinstance(then, (list, tuple)) and isinstance(here, (list, tuple)) and list(then) == list(here)):
                changes.append(f"{section}.{name} is {here!r}, the run was trained with {then!r}")
    return changes


def _prepare_resume(last: Path, loader, n_batches: int, one_process: bool = True, data: tuple | None = None,
                    sections: dict | None = None, config_file: Path | None = None) -> None:
    """Check that ``last`` can be read (a clear error, not an unpickling traceback) and, when it was
    saved mid-epoch, make ``loader`` draw that epoch's order again and skip the batches already
    trained on (``one_process`` only: a DDP run shards its own sampler). ``data``: the dataset's
    ``(fingerprint, images, root)`` now, refused when the checkpoint recorded another one;
    ``sections``: :func:`resume_sections` of the config now, refused when the checkpoint was
    trained with another model or preprocessing (``config_file`` edited since)."""
    try:
        state = torch.load(last, map_location="cpu", weights_only=False, mmap=True)  # metadata only: weights stay on disk
    except Exception as exc:  # noqa: BLE001 - truncated or overwritten files raise many types
        raise CheckpointError(f"{last}: not a readable training checkpoint ({type(exc).__name__}); it cannot be resumed — "
                              "restore it from a copy, or start the run again with --overwrite") from None
    if not isinstance(state, dict):
        return
    changes = _config_changes(state.get("brainmri_config") or {}, sections or {})
    if changes:
        raise ConfigError(f"{config_file or 'config.yaml'}: edited since the run started — {'; '.join(changes)}; the checkpoint "
                          f"{last} holds that network, so it cannot be resumed this way — put the value{'s' if len(changes) > 1 else ''} "
                          "back, or start a new run with the new settings (--run-name NAME)")
    saved_data = state.get("brainmri_data") or {}
    if data and saved_data.get("fingerprint") and saved_data["fingerprint"] != data[0]:
        raise ConfigError(f"{data[2]}: the dataset changed since this run started ({saved_data.get('n_images')} images then, {data[1]} now, "
                          "or other files / labels / splits); resuming would train and calibrate on a different set than the "
                          "epochs so far — restore the data, or start a new run (--run-name NAME, or --overwrite)")
    if not one_process:
        return
    fit = (state.get("loops") or {}).get("fit_loop") or {}
    done = int(((fit.get("epoch_loop.batch_progress") or {}).get("current") or {}).get("completed", 0))
    saved = [s for s in (fit.get("state_dict") or {}).get("combined_loader") or [] if s.get("sampler")]
    if 0 < done < n_batches and saved:
        loader.sampler.resume(saved[0]["sampler"], done * loader.batch_size)
        log.info("resuming epoch %d at batch %d of %d, in the order it was drawn", int(state.get("epoch", 0)), done, n_batches)


__all__ = ["TrainResult", "run_training", "finalize_checkpoint", "load_config_for_resume", "TrainingDiverged", "TrainingInterrupted"]
