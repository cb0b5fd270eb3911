"""Checks of a run config against this machine, done before any image is prepared (and by
``brainmri train --dry-run``): the accelerator exists, CPU processes fit the cores, the model
name and the pretrained-weights file are usable. ``config.validate`` checks values only, so a GPU
run's config stays readable (evaluate, resume elsewhere) on a machine without a GPU. The dataset
checks a run needs beyond ``load_dataset``'s: at least two classes (before any image is prepared),
and a readable training image in every class (once they are prepared)."""
from __future__ import annotations

import os
from pathlib import Path

from brainmri.config import RunConfig
from brainmri.errors import CheckpointError, ConfigError


def cpu_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def check_environment(cfg: RunConfig) -> None:
    import torch

    from brainmri.data.cache import check_cache_outside, resolve_cache_dir
    from brainmri.data.presence import parse_spec

    t, m = cfg.train, cfg.model
    check_cache_outside(resolve_cache_dir(cfg.data.cache_dir), cfg.data.root, "data.cache_dir (--cache-dir)")
    for extra in cfg.data.extra_train or ():
        check_cache_outside(resolve_cache_dir(cfg.data.cache_dir), parse_spec(extra)[0], "data.cache_dir (--cache-dir)")
    cuda = torch.cuda.is_available()
    if t.accelerator in ("gpu", "cuda") and not cuda:
        build = "a CPU-only build" if torch.version.cuda is None else f"CUDA {torch.version.cuda}, but no GPU is visible"
        raise ConfigError(f"train.accelerator={t.accelerator!r}: no CUDA GPU is available here (torch {torch.__version__}: {build}); "
                          "use --accelerator cpu or auto")
    if t.accelerator == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError("train.accelerator='mps': Apple MPS is not available here; use --accelerator cpu or auto")
    on_cpu = t.accelerator == "cpu" or (t.accelerator == "auto" and not cuda)
    if on_cpu and t.devices != "auto" and int(t.devices) > cpu_cores():
        raise ConfigError(f"train.devices={t.devices}: that many CPU training processes on {cpu_cores()} CPU cores only slows training "
                          f"down; use --devices {cpu_cores()} or fewer")
    if t.num_nodes > 1 and not t.run_name:
        raise ConfigError(f"train.num_nodes={t.num_nodes}: a multi-node run needs --run-name, so that every node writes into the same run directory")
    if t.strategy != "auto":
        from lightning.pytorch.strategies import StrategyRegistry

        known = sorted(StrategyRegistry.available_strategies())
        if t.strategy not in known:
            raise ConfigError(f"train.strategy={t.strategy!r} is not a Lightning strategy; choose auto or one of: {', '.join(known)}")
    if m.pretrained_weights and not Path(m.pretrained_weights).is_file():
        raise CheckpointError(f"{m.pretrained_weights}: pretrained weights file not found")
    from brainmri.models.factory import CUSTOM_MODELS, MODEL_ZOO

    if m.name not in CUSTOM_MODELS:
        import timm

        if not timm.is_model(m.name):
            close = [z for z in MODEL_ZOO if m.name.split("_")[0] in z]
            raise ConfigError(f"model.name={m.name!r} is not a brainmri or timm model; zoo: {', '.join(MODEL_ZOO)}"
                              + (f" (did you mean {close[0]}?)" if close else ""))


# ----------------------------------------------------------------------------------------------
# the dataset: what a run needs of it beyond what ``load_dataset`` checks


def check_classes(index) -> None:
    """A classifier needs at least two classes: refuse a dataset with one, naming it and its class
    (before any image is prepared; ``brainmri train --dry-run`` too). ``load_dataset`` accepts one
    class, since evaluation sets and tumor-presence sources may hold a single class."""
    from brainmri.errors import DatasetError

    names = list(index.class_names)
    if len(names) < 2:
        found = f"only 1 class ({names[0]})" if names else "no class"
        raise DatasetError(f"{index.root}: found {found}; classification needs at least 2 classes "
                           "(one class folder or label value per class)")


def _folder_of(samples) -> str:
    """The folder holding ``samples`` (their common parent; an NPZ for array members)."""
    parents = {s.path.rsplit("#", 1)[0] if s.index is not None else os.path.dirname(s.path) for s in samples}
    if len(parents) == 1:
        return parents.pop()
    try:
        return os.path.commonpath(sorted(parents))
    except ValueError:  # different drives
        return sorted(parents)[0]


def check_readable_classes(index, train_samples, train_images, val_images) -> None:
    """After the images are prepared (unreadable files dropped): every class must keep at least
    one readable training image, or the model gets an output that never saw one. A class left
    without readable validation images is warned about (its validation metrics are missing).

    Args:
        index: the :class:`~brainmri.data.datasets.DatasetIndex` of the run.
        train_samples: the samples given to ``train_images`` (extra sources included).
        train_images, val_images: :class:`~brainmri.data.torchdata.PreparedImages`.

    Raises:
        DatasetError: naming the class, its folder and how many of its files were unreadable.
    """
    import logging

    from brainmri.errors import DatasetError

    log = logging.getLogger("brainmri.training")
    checks = (("training", train_samples, train_images, True), ("validation", index.split("val"), val_images, False))
    for split, samples, prepared, required in checks:
        kept = set(prepared.labels)
        reasons = dict(prepared.failures)
        for i, name in enumerate(index.class_names):
            if i in kept:
                continue
            given = [s for s in samples if s.label == i]
            if not given:
                if not required:
                    log.warning("%s: class '%s' has no %s images: its validation metrics are missing", index.root, name, split)
                continue
            folder = _folder_of(given)
            first = given[0].path
            text = (f"{folder}: class '{name}' has no readable {split} images (all {len(given)} of its {split} files are unreadable, "
                    f"e.g. {first}: {reasons.get(first, 'unreadable')})")
            if required:
                raise DatasetError(text + "; replace or remove them, or drop the class")
            log.warning("%s; its validation metrics are missing", text)


def check_trainable(index, cfg: RunConfig) -> None:
    """What a dataset must offer this run before any image is prepared (the real run and
    ``--dry-run`` both ask): its classes, non-empty train and validation splits, the classes
    ``augment.skull_strip_skip`` names, and a healthy class when synthetic lesions are asked for."""
    check_classes(index)
    if not index.split("train") or not index.split("val"):
        raise ConfigError(f"{cfg.data.root}: training needs non-empty train and val splits (got {index.counts()})")
    unknown = sorted(set(cfg.augment.skull_strip_skip or ()) - set(index.class_names))
    if unknown:
        raise ConfigError(f"augment.skull_strip_skip names {unknown}, not classes of this dataset ({index.class_names})")
    if cfg.augment.lesion and "notumor" not in index.class_names:
        raise ConfigError("augment.lesion needs a healthy class to paste lesions into (a 'notumor' class); this class set has none")
