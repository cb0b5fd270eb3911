"""Where a training run writes: its run directory, decided once and never silently replaced.

- A run directory that already holds a run (``best.safetensors`` or ``lightning/last.ckpt``) is
  refused unless ``overwrite`` is asked for; then the previous run's files are moved aside first, so
  nothing of the old run (a better old best checkpoint, old metrics rows) mixes with the new, and put
  back if the new run fails before writing a checkpoint (dropped once it finishes).
- The timestamped default name is chosen once by the launching process and handed to the DDP
  ranks Lightning starts as subprocesses (they re-run the command line) through
  ``BRAINMRI_RUN_DIR``, so every rank writes into the same directory.
"""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from brainmri.config import RunConfig, config_hash
from brainmri.errors import ConfigError

# what a run writes into its directory (rank-*.json too); only these are removed by overwrite
RUN_FILES = ("best.safetensors", "config.yaml", "metrics.csv", "summary.json")
RUN_FOLDERS = ("lightning", "logs")
CONFIG_MARK = "# brainmri run config"  # first line of the config.yaml a run writes (a user's own config.yaml lacks it)
ENV_RUN_DIR = "BRAINMRI_RUN_DIR"


def default_run_name(cfg: RunConfig) -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{cfg.data.preset or 'custom'}-{cfg.model.name}"


def run_key(cfg: RunConfig) -> str:
    """Identifies one run's config, so a rank only adopts the directory chosen for its own run."""
    return config_hash(cfg)


def inherited_run_dir(key: str) -> Path | None:
    """The run directory the launching process chose, when this process is one of its DDP ranks."""
    got, _, path = os.environ.get(ENV_RUN_DIR, "").partition(":")
    return Path(path) if path and got == key else None


def planned_run_dir(cfg: RunConfig) -> Path | None:
    """The run directory a new run of ``cfg`` writes to; ``None`` when it gets a timestamped name."""
    return Path(cfg.train.output_dir) / cfg.train.run_name if cfg.train.run_name else None


def holds_run(run_dir: Path) -> bool:
    return (run_dir / "best.safetensors").exists() or (run_dir / "lightning" / "last.ckpt").exists()


def check_run_dir_free(run_dir: Path, overwrite: bool = False) -> None:
    """Refuse to start a new run in a directory that already holds one (unless ``overwrite``), or
    in one that no run ever wrote to yet holds other things (a dataset, someone's own folder: even
    with ``overwrite``, since a run would write its config.yaml, metrics.csv and folders among
    them). Notes kept beside a run's own files are fine."""
    has_run_files = any((run_dir / n).exists() and _written_by_a_run(run_dir / n) for n in RUN_FILES + RUN_FOLDERS)
    foreign = [] if has_run_files else _foreign_entries(run_dir, also_own=(STASH, LOCK), own_only_if_written_by_a_run=True)
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise ConfigError(f"{run_dir} is not a brainmri run directory (it holds {shown}); a run would write among those files — "
                          "pick another --run-name or --output-dir")
    if overwrite or not holds_run(run_dir):
        return
    raise ConfigError(
        f"{run_dir} already holds a run (best.safetensors / lightning/last.ckpt); continue it with "
        f"--resume {run_dir}, pick another --run-name, or pass --overwrite to replace it"
    )


STASH = ".replaced-run"  # where --overwrite parks the previous run until the new one has finished


def stash_previous_run(run_dir: Path) -> Path:
    """Move the files a previous run wrote into ``run_dir`` aside (anything else stays), so that
    nothing of the old run survives next to the new one, yet nothing is lost if the new one fails."""
    stash = run_dir / STASH
    if stash.exists():  # the run an earlier, interrupted --overwrite said it kept: never dropped unasked
        raise ConfigError(f"{run_dir}: an earlier --overwrite that did not finish kept the run it was replacing in {stash}; "
                          f"move or delete {stash} first (or --resume {run_dir} to finish that newer run)")
    stash.mkdir()
    for p in [*(run_dir / n for n in RUN_FILES + RUN_FOLDERS), *run_dir.glob("rank-*.json")]:
        if p.exists():
            p.rename(stash / p.name)
    return stash


def settle_stash(run_dir: Path, succeeded: bool) -> str | None:
    """After an ``--overwrite`` run: drop the parked previous run when the new one finished; put it
    back when the new one left nothing; keep it parked (and say where) when the new one left a
    checkpoint to resume."""
    stash = run_dir / STASH
    if not stash.is_dir():
        return None
    if succeeded:
        shutil.rmtree(stash, ignore_errors=True)
        return None
    if holds_run(run_dir):
        return f"the run it was to replace is kept in {stash}"
    for p in [*(run_dir / n for n in RUN_FILES + RUN_FOLDERS), *run_dir.glob("rank-*.json")]:
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()
    for p in stash.iterdir():
        p.rename(run_dir / p.name)
    stash.rmdir()
    return f"the previous run in {run_dir} is restored"


def _written_by_a_run(path: Path) -> bool:
    """``config.yaml`` and ``metrics.csv`` are a run's only when they read as a run writes them (a
    user's own ``config.yaml`` or notes of that name are not); other run names count by name."""
    if path.name not in ("config.yaml", "metrics.csv") or not path.is_file():
        return True
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            first = f.readline()
    except OSError:
        return False
    if path.name == "metrics.csv":
        return first.startswith("epoch,")
    return first.startswith(CONFIG_MARK)  # older runs' unmarked config.yaml sits beside their logs/, which counts


def _foreign_entries(run_dir: Path, also_own: tuple[str, ...] = (), own_only_if_written_by_a_run: bool = False) -> list[str]:
    """Names in ``run_dir`` that no run writes, ``also_own`` aside (sorted); none when the folder
    does not exist. With ``own_only_if_written_by_a_run``, a ``config.yaml`` / ``metrics.csv``
    that a run did not write counts as foreign too."""
    if not run_dir.is_dir():
        return []
    own = RUN_FILES + RUN_FOLDERS + also_own
    return sorted(p.name for p in run_dir.iterdir()
                  if (p.name not in own or (own_only_if_written_by_a_run and not _written_by_a_run(p)))
                  and not p.name.startswith(("rank-", ".write-test")))


def remove_if_empty_run(run_dir: Path) -> None:
    """After a failed run: drop a directory this run created when it holds nothing to keep
    (no checkpoint), so failures do not leave empty timestamped folders behind."""
    if holds_run(run_dir):
        return
    if run_dir.is_dir() and not _foreign_entries(run_dir):
        shutil.rmtree(run_dir, ignore_errors=True)


def check_resumable(run_dir: str | Path) -> Path:
    run_dir = Path(run_dir)
    if not (run_dir / "lightning" / "last.ckpt").is_file():
        raise ConfigError(f"{run_dir}: nothing to resume (no lightning/last.ckpt); start a new run instead")
    return run_dir


def load_config_for_resume(run_dir: str | Path) -> RunConfig:
    from brainmri.config import load_run_config

    p = Path(run_dir) / "config.yaml"
    if not p.is_file():
        raise ConfigError(f"{run_dir}: not a brainmri run directory (no config.yaml)")
    try:
        text = p.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise ConfigError(f"{p}: cannot be read ({exc.strerror or exc})") from None
    if not text.strip() or not any(line.strip() and not line.lstrip().startswith("#") for line in text.splitlines()):
        raise ConfigError(f"{p}: empty, so the run's settings are lost; --resume needs the config.yaml the run wrote — "
                          "restore it from a copy, or start a new run with the same flags")
    try:
        cfg = load_run_config(p)
    except ConfigError as exc:  # validation errors name a field, not the file: say which file to fix
        msg = str(exc)
        raise ConfigError(msg if str(p) in msg else f"{p}: {msg}") from None
    if not cfg.data.root:
        raise ConfigError(f"{p}: data.root is empty, so the run's dataset is not known; put the dataset folder back in data.root")
    root = Path(cfg.data.root).expanduser()
    if not root.is_absolute() and not root.exists():  # older runs kept data.root as given, relative to where they started
        raise ConfigError(f"{p}: data.root {cfg.data.root!r} is relative and not found from {Path.cwd()}; resume from the folder "
                          "the run was started in, or write the dataset's absolute path into data.root")
    return cfg


LOCK = ".brainmri-train.lock"  # held while a run writes into its directory


class RunDirLock:
    """One training process per run directory: a lock file made with ``O_EXCL`` naming the pid
    and host that holds it (and the process's start time). A second ``brainmri train`` (or
    ``--resume``) into the same directory is refused while the first lives; a lock left by a killed
    run (its pid gone, or reused by a process that started later, or this very process) is taken over. Released on exit, whatever happened."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK
        self.held = False

    def __enter__(self) -> "RunDirLock":
        import socket

        self.path.parent.mkdir(parents=True, exist_ok=True)
        me = socket.gethostname()
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                pid, host, started = _lock_holder(self.path)
                if pid and host != me:
                    raise ConfigError(f"{self.path.parent}: a brainmri train on {host} (pid {pid}) holds this run directory; "
                                      f"if that run is gone, delete {self.path}") from None
                if pid and _alive(pid) and pid != os.getpid() and (started is None or _started(pid) in (None, started)):
                    raise ConfigError(f"{self.path.parent}: another brainmri train (pid {pid}) is writing into this run directory; "
                                      "wait for it to finish, or pick another --run-name") from None
                self.path.unlink(missing_ok=True)  # left by a run that was killed
                continue
            with os.fdopen(fd, "w") as f:
                f.write(f"{os.getpid()} {me} {_started(os.getpid()) or '-'}\n")
            self.held = True
            return self
        raise ConfigError(f"{self.path.parent}: cannot take the run directory's lock {self.path}")

    def __exit__(self, *exc) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False


def _lock_holder(path: Path) -> tuple[int | None, str | None, str | None]:
    """(pid, host, process start time) the lock names; the start time tells a pid reused by another
    process (a container restarted, say) from the run that took the lock."""
    try:
        parts = path.read_text().split()
        pid, host = parts[:2]
        started = parts[2] if len(parts) > 2 and parts[2] != "-" else None
        return int(pid), host, started
    except (OSError, ValueError):
        return None, None, None


def _started(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux ``/proc``), with the boot id so a
    reboot counts as another start; ``None`` where that cannot be read."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        ticks = stat.rsplit(")", 1)[1].split()[19]  # field 22, counted after the command name
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        return f"{boot}:{ticks}"
    except (OSError, IndexError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True
