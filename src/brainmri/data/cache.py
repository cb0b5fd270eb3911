"""A disk cache of prepared images (decoded, cropped, resized uint8), so epochs and runs do not
re-decode JPEGs.

Keyed by the file's content (SHA-1 of its bytes) and the preprocessing config (hash of the
``PreprocessConfig``): editing a file or changing the crop/size invalidates its entry. Entries are
``.npy`` files written atomically (temp file + rename); a corrupt entry (truncated, wrong shape)
is detected on read, deleted and rebuilt.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np

from brainmri.config import PreprocessConfig, config_hash


def default_cache_dir() -> Path:
    return Path(os.environ.get("BRAINMRI_CACHE", Path.home() / ".cache" / "brainmri"))


def resolve_cache_dir(value: str | Path | None) -> Path | None:
    """``"auto"`` -> the default cache folder; ``None`` / ``"none"`` (any case) -> no cache; else the path."""
    if value is None or str(value).strip().lower() in ("", "none", "off"):
        return None
    return default_cache_dir() if str(value).strip().lower() == "auto" else Path(value).expanduser()


def check_cache_outside(cache_dir: Path | None, data_root: str | Path, flag: str = "--cache-dir") -> None:
    """Refuse a cache folder inside the dataset: its ``.npy`` entries and ``prepared/`` folders
    would be listed as images and classes of that dataset the next time it is read."""
    if cache_dir is None or not str(data_root):
        return
    root = Path(data_root).expanduser()
    root = root.parent if root.is_file() else root
    try:
        inside = cache_dir.resolve().is_relative_to(root.resolve())
    except (OSError, RuntimeError):
        return
    if inside:
        from brainmri.errors import ConfigError

        raise ConfigError(f"{flag} {cache_dir} lies inside the dataset {data_root}: the cache's files would become part of "
                          "the dataset the next time it is read; choose a folder outside it (or 'auto', or 'none')")


def file_digest(path: str | Path) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# Bump when the preprocessing *code* changes in a way the config does not capture (v2: frame
# removal in the brain crop; v3: 16-bit and float rasters windowed at the 0.1 / 99.9 percentiles,
# not min / max), so stale entries are never served.
PREPROCESS_VERSION = 3


class ImageCache:
    """Prepared-image cache for one preprocessing config.

    Example:
        >>> cache = ImageCache("/tmp/cache", PreprocessConfig(image_size=128))
        >>> arr = cache.get("scan.jpg")          # None on a miss
        >>> cache.put("scan.jpg", prepared)       # atomic write
    """

    def __init__(self, cache_dir: str | Path, cfg: PreprocessConfig):
        self.cfg = cfg
        self.dir = Path(cache_dir) / "prepared" / f"v{PREPROCESS_VERSION}-{config_hash(cfg)}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.hits = 0
        self.misses = 0

    def _entry(self, digest: str) -> Path:
        return self.dir / digest[:2] / f"{digest}.npy"

    def key(self, path: str | Path) -> str:
        return file_digest(path)

    def get(self, path: str | Path, digest: str | None = None) -> np.ndarray | None:
        entry = self._entry(digest or self.key(path))
        if not entry.exists():
            self.misses += 1
            return None
        s = int(self.cfg.image_size)
        try:
            arr = np.load(entry, allow_pickle=False)
            if arr.dtype != np.uint8 or arr.shape != (s, s):
                raise ValueError("unexpected shape or dtype")
        except (ValueError, OSError, EOFError):
            entry.unlink(missing_ok=True)  # corrupt: drop and rebuild
            self.misses += 1
            return None
        self.hits += 1
        return arr

    def put(self, path: str | Path, arr: np.ndarray, digest: str | None = None) -> None:
        entry = self._entry(digest or self.key(path))
        entry.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=entry.parent, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.save(f, np.ascontiguousarray(arr, dtype=np.uint8), allow_pickle=False)
            os.replace(tmp, entry)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
