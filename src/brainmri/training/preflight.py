"""Checks of a run config against this machine, done before any image is prepared (and by
``brainmri train --dry-run``): the accelerator exists, CPU processes fit the cores, the model
name and the pretrained-weights file are usable. ``config.validate`` checks values only, so a GPU
run's config stays readable (evaluate, resume elsewhere) on a machine without a GPU."""
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

    t, m = cfg.train, cfg.model
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
    if m.pretrained_weights and not Path(m.pretrained_weights).is_file():
        raise CheckpointError(f"{m.pretrained_weights}: pretrained weights file not found")
    from brainmri.models.factory import CUSTOM_MODELS, MODEL_ZOO

    if m.name not in CUSTOM_MODELS:
        import timm

        if not timm.is_model(m.name):
            close = [z for z in MODEL_ZOO if m.name.split("_")[0] in z]
            raise ConfigError(f"model.name={m.name!r} is not a brainmri or timm model; zoo: {', '.join(MODEL_ZOO)}"
                              + (f" (did you mean {close[0]}?)" if close else ""))
