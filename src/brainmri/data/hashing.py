"""Content hashes of dataset images, near-duplicate search and grouping.

Each image gets three fingerprints (:class:`ImageHash`):

* ``file_sha``: SHA-256 of the file's bytes (byte-identical copies);
* ``pixel_sha``: SHA-256 of the decoded grayscale pixels and their shape (the same picture saved
  twice, e.g. re-encoded losslessly or RGB vs gray);
* ``phash``: a 256-bit DCT perceptual hash (64x64 grayscale -> 2-D DCT -> 16x16 lowest
  frequencies > their median; ``imagehash.phash(hash_size=16)`` computed with OpenCV), as 64 hex
  digits. Re-encoded, resized, brightened or gamma-changed copies land within ~16 bits.

Why 256 and not 64 bits: on brain MRI a 64-bit pHash (8x8 frequencies) mostly encodes the head's
outline on black, so unrelated slices of different patients and classes collide at 2-4 bits; the
256-bit hash keeps enough anatomy to separate them (see ``brainmri.data.audit.DEFAULT_THRESHOLD``).

Hashes are cached per file in ``<cache_dir>/hashes-v2.json`` keyed by absolute path, size and
mtime, so training, evaluation and the audit compute them once. Near-duplicate search is a
chunked, vectorised popcount over XORed ``uint64`` words; groups are connected components
(union-find) of the "within threshold" graph.

Example:
    >>> hashes = hash_samples(index, cache_dir="~/.cache/brainmri/hashes")
    >>> i, j, d = near_duplicate_pairs(phash_array(hashes), threshold=6)
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from io import BytesIO
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from brainmri.data.datasets import DatasetIndex, Sample
from brainmri.data.io import DEFAULT_MAX_PIXELS, as_gray_uint8, check_file, decode_image_bytes
from brainmri.errors import ImageReadError

log = logging.getLogger(__name__)

CACHE_FILE = "hashes-v2.json"
CACHE_VERSION = 3  # v3: 16-bit / float rasters decoded with a percentile window (brainmri.data.io)
HASH_SIZE = 16  # DCT block side: the hash has HASH_SIZE**2 = 256 bits
HASH_BITS = HASH_SIZE * HASH_SIZE
_WORDS = HASH_BITS // 64


@dataclass(frozen=True)
class ImageHash:
    """Fingerprints and header facts of one image; ``error`` is set (and hashes empty) when the
    image could not be read."""

    file_sha: str | None = None  # None for in-memory array members (NPZ)
    pixel_sha: str | None = None
    phash: str | None = None  # 256-bit perceptual hash, 64 hex digits
    width: int = 0
    height: int = 0
    mode: str = ""  # Pillow mode (L, RGB, RGBA, P, I;16...) or "array"
    format: str = ""  # Pillow format (JPEG, PNG...) or "array"
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def default_hash_cache_dir() -> Path:
    """``$BRAINMRI_CACHE/hashes`` or ``~/.cache/brainmri/hashes``."""
    return Path(os.environ.get("BRAINMRI_CACHE", Path.home() / ".cache" / "brainmri")) / "hashes"


def sample_key(sample: Sample) -> str:
    """A name unique per image: the path, or ``path#index`` for an array member."""
    return sample.path if sample.index is None else f"{sample.path}#{sample.index}"


# ----------------------------------------------------------------------------------------------
# fingerprints


def phash(gray: np.ndarray) -> str:
    """256-bit DCT perceptual hash of a 2-D grayscale image, as 64 hex digits (first digit =
    lowest frequencies)."""
    side = 4 * HASH_SIZE
    small = cv2.resize(gray, (side, side), interpolation=cv2.INTER_AREA).astype(np.float32)
    low = cv2.dct(small)[:HASH_SIZE, :HASH_SIZE]
    return np.packbits((low > np.median(low)).ravel()).tobytes().hex()


def _pixel_sha(gray: np.ndarray) -> str:
    h = hashlib.sha256(f"{gray.shape[0]}x{gray.shape[1]}:".encode())
    h.update(np.ascontiguousarray(gray).tobytes())
    return h.hexdigest()


def hash_image_bytes(data: bytes, name: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageHash:
    """Fingerprint an encoded image. Raises :class:`ImageReadError` naming ``name`` when unreadable."""
    try:
        with Image.open(BytesIO(data)) as img:
            width, height, mode, fmt = img.width, img.height, img.mode, img.format or ""
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        width = height = 0
        mode = fmt = ""
    gray = decode_image_bytes(data, name, max_pixels)  # raises ImageReadError with the reason
    return ImageHash(hashlib.sha256(data).hexdigest(), _pixel_sha(gray), phash(gray), width, height, mode, fmt)


def hash_array(image: np.ndarray, name: str) -> ImageHash:
    """Fingerprint an in-memory image (an NPZ member)."""
    gray = as_gray_uint8(image, name)
    return ImageHash(None, _pixel_sha(gray), phash(gray), gray.shape[1], gray.shape[0], "array", "array")


def hash_file(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageHash:
    """Fingerprint an image file; unreadable files give an ``ImageHash`` with ``error`` set."""
    p = Path(path)
    try:
        check_file(p)
        data = p.read_bytes()
        if not data:
            raise ImageReadError(str(p), "file is empty (0 bytes)")
        return hash_image_bytes(data, str(p), max_pixels)
    except FileNotFoundError:
        return ImageHash(error="file not found")
    except OSError as exc:
        return ImageHash(error=f"cannot be read ({exc.strerror})")
    except ImageReadError as exc:
        return ImageHash(error=exc.reason)


# ----------------------------------------------------------------------------------------------
# per-file cache


def _is_hex(value: object, digits: int) -> bool:
    if not isinstance(value, str) or len(value) != digits:
        return False
    try:
        bytes.fromhex(value)
    except ValueError:
        return False
    return True


def _well_formed(h: ImageHash) -> bool:
    """A cached hash is usable: hex digests of the right length, or an error and no digests."""
    if h.error is not None:
        return isinstance(h.error, str) and h.pixel_sha is None and h.phash is None
    return _is_hex(h.pixel_sha, 64) and _is_hex(h.phash, HASH_BITS // 4) and (h.file_sha is None or _is_hex(h.file_sha, 64))


class HashCache:
    """JSON cache of :class:`ImageHash` keyed by absolute path, valid while size and mtime match.

    ``save()`` merges with what another process may have written meanwhile and replaces the file
    atomically (temp file + ``os.replace``), so a crash never leaves a half-written cache.
    """

    def __init__(self, cache_dir: str | Path):
        self.path = Path(cache_dir).expanduser() / CACHE_FILE
        self.entries: dict[str, dict] = self._read()
        self.dirty: dict[str, dict] = {}

    def _read(self) -> dict[str, dict]:
        try:
            blob = json.loads(self.path.read_text())
            entries = blob.get("entries", {}) if blob.get("version") == CACHE_VERSION else {}
            return entries if isinstance(entries, dict) else {}
        except (OSError, ValueError, AttributeError):
            return {}  # missing or corrupt cache: start again

    @staticmethod
    def _stamp(path: Path) -> tuple[int, int] | None:
        try:
            st = path.stat()
        except OSError:
            return None
        return st.st_size, st.st_mtime_ns

    @staticmethod
    def _key(path: str | Path) -> Path | None:
        """The cache key of a file (its resolved path), or ``None`` for a symlink loop or a path the
        system cannot resolve (the reader then reports the file; the cache just skips it)."""
        try:
            return Path(path).resolve()
        except (OSError, RuntimeError):
            return None

    def get(self, path: str | Path) -> ImageHash | None:
        p = self._key(path)
        if p is None:
            return None
        entry = self.entries.get(str(p))
        stamp = self._stamp(p)
        if not isinstance(entry, dict) or stamp is None or [entry.get("size"), entry.get("mtime_ns")] != list(stamp):
            return None
        try:
            value = ImageHash(**{k: v for k, v in entry.items() if k not in ("size", "mtime_ns")})
        except (TypeError, ValueError):
            return None
        return value if _well_formed(value) else None  # a corrupt entry is recomputed

    def put(self, path: str | Path, value: ImageHash) -> None:
        p = self._key(path)
        stamp = self._stamp(p) if p is not None else None
        if stamp is None:
            return
        entry = asdict(value)
        entry["size"], entry["mtime_ns"] = stamp
        self.entries[str(p)] = self.dirty[str(p)] = entry

    def save(self) -> None:
        if not self.dirty:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            merged = self._read()
            merged.update(self.dirty)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".hashes-", suffix=".tmp")
            try:
                with os.fdopen(fd, "w") as f:
                    json.dump({"version": CACHE_VERSION, "entries": merged}, f)
                os.replace(tmp, self.path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:  # a read-only cache folder must not stop the audit
            log.warning("could not write the hash cache %s (%s)", self.path, exc.strerror)
            return
        self.entries = merged
        self.dirty = {}


def hash_samples(
    index: DatasetIndex,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> list[ImageHash]:
    """Fingerprint every sample of ``index`` (files and NPZ members), in order.

    Args:
        index: the dataset; NPZ members are read from ``index.arrays``.
        cache_dir: folder of the hash cache (default :func:`default_hash_cache_dir`).
        use_cache: False computes everything and writes no cache.
        progress: optional ``callback(done, total)``.

    Returns:
        One :class:`ImageHash` per sample; unreadable images have ``error`` set.
    """
    cache = HashCache(cache_dir or default_hash_cache_dir()) if use_cache else None
    out: list[ImageHash] = []
    total = len(index.samples)
    for n, s in enumerate(index.samples):
        if s.index is not None:
            try:
                if index.arrays is None:
                    raise ImageReadError(sample_key(s), "the dataset holds no image array")
                out.append(hash_array(np.asarray(index.arrays[s.index]), sample_key(s)))
            except ImageReadError as exc:
                out.append(ImageHash(error=exc.reason))
            except (IndexError, TypeError, ValueError) as exc:
                out.append(ImageHash(error=f"array member unreadable ({exc})"))
        else:
            value = cache.get(s.path) if cache else None
            if value is None:
                value = hash_file(s.path)
                if cache:
                    cache.put(s.path, value)
            out.append(value)
        if progress and (n + 1) % 500 == 0:
            progress(n + 1, total)
    if cache:
        cache.save()
    return out


# ----------------------------------------------------------------------------------------------
# near-duplicate search


def phash_array(hashes: Sequence[ImageHash]) -> tuple[np.ndarray, np.ndarray]:
    """``(phashes uint64 (M, 4), positions int (M,))`` of the readable images among ``hashes``."""
    pos = np.array([i for i, h in enumerate(hashes) if h.ok and h.phash], dtype=np.int64)
    blob = b"".join(bytes.fromhex(hashes[i].phash) for i in pos)
    values = np.frombuffer(blob, dtype=">u8").astype(np.uint64).reshape(len(pos), _WORDS)
    return values, pos


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamming distances between hash rows, broadcasting: ``a`` (..., W) and ``b`` (..., W)
    uint64 -> (...) uint16."""
    out = np.zeros(np.broadcast_shapes(a.shape, b.shape)[:-1], dtype=np.uint16)
    for w in range(a.shape[-1]):
        out += np.bitwise_count(a[..., w] ^ b[..., w])
    return out


def _as_rows(h: np.ndarray) -> np.ndarray:
    h = np.asarray(h, dtype=np.uint64)
    return h[:, None] if h.ndim == 1 else h


def near_duplicate_pairs(phashes: np.ndarray, threshold: int, chunk: int = 256) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All pairs ``i < j`` with Hamming distance ``<= threshold``.

    Args:
        phashes: (N, W) uint64 hash words (or (N,) for 64-bit hashes).
        threshold: largest distance that counts.
        chunk: rows compared at once (memory ~ chunk * N * 2 bytes).

    Returns:
        ``(i, j, distance)`` int arrays (positions into ``phashes``).
    """
    h = _as_rows(phashes)
    ii, jj, dd = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    for a in range(0, len(h), chunk):
        d = hamming(h[a : a + chunk, None, :], h[None, a:, :])  # upper block only: j >= a
        r, c = np.nonzero(d <= threshold)
        keep = c > r  # row r is i = a + r, column c is j = a + c
        ii.append(a + r[keep])
        jj.append(a + c[keep])
        dd.append(d[r[keep], c[keep]])
    return np.concatenate(ii).astype(np.int64), np.concatenate(jj).astype(np.int64), np.concatenate(dd).astype(np.int64)


def nearest_neighbours(query: np.ndarray, reference: np.ndarray, chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """For each query hash, the closest reference hash.

    Returns:
        ``(distance, reference_position)`` int arrays of len(query); distance ``HASH_BITS + 1``
        and position -1 when ``reference`` is empty.
    """
    q, ref = _as_rows(query), _as_rows(reference)
    if len(ref) == 0:
        return np.full(len(q), HASH_BITS + 1, np.int64), np.full(len(q), -1, np.int64)
    dist, pos = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    for a in range(0, len(q), chunk):
        d = hamming(q[a : a + chunk, None, :], ref[None, :, :])
        k = d.argmin(axis=1)
        pos.append(k)
        dist.append(d[np.arange(len(k)), k])
    return np.concatenate(dist).astype(np.int64), np.concatenate(pos).astype(np.int64)


def connected_groups(n: int, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Union-find over ``n`` nodes and edges ``(i[k], j[k])``; returns a group id per node
    (the smallest member's index, so ids are deterministic)."""
    parent = list(range(n))

    def find(x: int) -> int:
        root = x
        while parent[root] != root:
            root = parent[root]
        while parent[x] != root:  # path compression
            parent[x], x = root, parent[x]
        return root

    for a, b in zip(np.asarray(i).tolist(), np.asarray(j).tolist()):
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return np.array([find(x) for x in range(n)], dtype=np.int64)
