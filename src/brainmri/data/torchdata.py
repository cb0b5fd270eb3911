"""Torch datasets over prepared images.

:class:`PreparedImages` decodes and prepares every sample once (crop + resize, through the cache
when one is given) and keeps the uint8 (S, S) arrays in memory — 5,712 images at 224 px are
~290 MB — so epochs cost only augmentation and the model. Unreadable files are reported by path
and skipped; the run goes on with the rest.
"""
from __future__ import annotations

import logging
import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from brainmri.config import PreprocessConfig
from brainmri.data.cache import ImageCache, resolve_cache_dir
from brainmri.data.datasets import Sample
from brainmri.data.io import DEFAULT_MAX_PIXELS, as_gray_uint8, read_image
from brainmri.errors import BrainMRIError, ConfigError, DatasetError
from brainmri.preprocess.lesion import PRESENCE, synthesize_lesion
from brainmri.preprocess.skullstrip import strip_skull
from brainmri.preprocess.pipeline import prepare_image, to_model_input

log = logging.getLogger(__name__)


class PreparedImages:
    """Every sample decoded and prepared once.

    Attributes:
        samples: the samples that were read successfully (same order as given, failures removed).
        images: uint8 arrays (S, S), aligned with ``samples``.
        failures: ``(path, reason)`` for every sample that could not be read.
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        cfg: PreprocessConfig,
        cache_dir: str | Path | None = None,
        arrays: np.ndarray | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        num_threads: int = 2,
        progress: bool = False,
    ):
        self.cfg = cfg
        cache_dir = resolve_cache_dir(cache_dir)  # "auto" -> ~/.cache/brainmri, never a folder named auto
        self.cache = ImageCache(cache_dir, cfg) if cache_dir else None
        self.failures: list[tuple[str, str]] = []
        self._arrays = arrays
        self._max_pixels = max_pixels
        results: list[np.ndarray | None] = [None] * len(samples)

        def work(i: int) -> None:
            try:
                results[i] = self._prepare_one(samples[i])
            except BrainMRIError as exc:
                reason = getattr(exc, "reason", str(exc))
                self.failures.append((samples[i].path, reason))

        if num_threads > 1 and len(samples) > 8:
            with ThreadPoolExecutor(num_threads) as pool:
                list(pool.map(work, range(len(samples))))
        else:
            for i in range(len(samples)):
                work(i)
        self.samples = [s for s, r in zip(samples, results) if r is not None]
        self.images = [r for r in results if r is not None]
        if self.failures:
            shown = "\n".join(f"  {p}: {r}" for p, r in sorted(self.failures)[:20])
            more = f"\n  ... and {len(self.failures) - 20} more" if len(self.failures) > 20 else ""
            log.warning("skipped %d unreadable image(s):\n%s%s", len(self.failures), shown, more)
        if samples and not self.samples:
            raise DatasetError(f"none of the {len(samples)} images could be read (first: {self.failures[0][0]}: {self.failures[0][1]})")

    def _prepare_one(self, s: Sample) -> np.ndarray:
        if s.index is not None:
            if self._arrays is None:
                raise DatasetError(f"{s.path}: sample refers to an array member but no arrays were given")
            return prepare_image(as_gray_uint8(self._arrays[s.index], name=s.path), self.cfg)
        if self.cache is None:
            return prepare_image(read_image(s.path, self._max_pixels), self.cfg)
        digest = self.cache.key(s.path) if Path(s.path).is_file() else None
        if digest is not None:
            hit = self.cache.get(s.path, digest)
            if hit is not None:
                return hit
        arr = prepare_image(read_image(s.path, self._max_pixels), self.cfg)
        if digest is not None:
            self.cache.put(s.path, arr, digest)
        return arr

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def labels(self) -> list[int]:
        return [s.label for s in self.samples]


class ImageDataset(Dataset):
    """``(tensor (C, S, S), label)`` pairs from :class:`PreparedImages`, with optional
    training augmentation applied to the [0, 1] image before normalisation.

    With ``lesion > 0``, a scan labelled ``healthy_label`` gets, with that probability, a
    synthetic lesion (:func:`brainmri.preprocess.lesion.synthesize_lesion`, before the other
    augmentations) and the label :data:`~brainmri.preprocess.lesion.PRESENCE` ("some tumor");
    ``lesion_margin`` keeps lesion centres that fraction of the head's size inside its outline;
    scans whose path is in ``no_lesion`` (e.g. extra healthy sources, ``data.extra_lesions: false``) never get one.
    With ``skull_strip > 0``, any scan loses scalp and skull with that probability (first, so a
    lesion goes inside the stripped brain; :func:`brainmri.preprocess.skullstrip.strip_skull`);
    with ``strip_lesions=False`` a stripped scan never gets a lesion, so stripping and pasting never
    meet (a pasted blob in a stripped brain teaches "stripped brain with a blob is a tumor");
    scans labelled one of ``strip_skip`` are never stripped.
    """

    def __init__(
        self, prepared: PreparedImages, cfg: PreprocessConfig, augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
        lesion: float = 0.0, healthy_label: int | None = None, lesion_margin: float = 0.0, skull_strip: float = 0.0,
        no_lesion: frozenset[str] = frozenset(), strip_lesions: bool = True, strip_skip: frozenset[int] = frozenset(),
    ):
        if lesion and healthy_label is None:
            raise ConfigError("augment.lesion needs a healthy class to paste lesions into (a 'notumor' class); this class set has none")
        self.prepared = prepared
        self.cfg = cfg
        self.augment = augment
        self.lesion = lesion
        self.healthy_label = healthy_label
        self.lesion_margin = lesion_margin
        self.skull_strip = skull_strip
        self.no_lesion = no_lesion
        self.strip_lesions = strip_lesions
        self.strip_skip = strip_skip

    def __len__(self) -> int:
        return len(self.prepared)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        arr = self.prepared.images[i]
        label = self.prepared.samples[i].label
        was_stripped = False
        if self.skull_strip and label not in self.strip_skip and random.random() < self.skull_strip:
            stripped = strip_skull(arr, self.cfg, random)
            if stripped is not None:
                arr, was_stripped = stripped, True
        if (self.lesion and label == self.healthy_label and (self.strip_lesions or not was_stripped) and random.random() < self.lesion
                and self.prepared.samples[i].path not in self.no_lesion):
            pasted = synthesize_lesion(arr, random, margin=self.lesion_margin)
            if pasted is not None:
                arr, label = pasted, PRESENCE
        if self.augment is not None:
            x = torch.from_numpy(arr).unsqueeze(0)  # uint8 (1, S, S)
            x = self.augment(x)  # uint8 or float in [0, 1]
            if x.dtype == torch.uint8:
                x = x.float() / 255.0
            t = to_model_input(x.clamp(0, 1), self.cfg)
        else:
            t = to_model_input(arr, self.cfg)
        return t, label


class ResumableLoader(DataLoader):
    """A :class:`~torch.utils.data.DataLoader` Lightning checkpoints with the random state of its
    sampler's current epoch (``loops.fit_loop.state_dict.combined_loader`` in ``last.ckpt``), so a run
    interrupted mid-epoch can finish that epoch on the scans it had not reached
    (``brainmri.training.train``). Loading is armed by the training code, which knows how many
    batches were done; Lightning's own call is a no-op."""

    def state_dict(self) -> dict:
        from brainmri.data.sampling import _ResumableOrder

        return {"sampler": self.sampler.state_dict()} if isinstance(self.sampler, _ResumableOrder) else {}

    def load_state_dict(self, state: dict) -> None:
        return None
