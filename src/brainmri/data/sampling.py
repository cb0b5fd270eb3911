"""Class imbalance levers: loss weights and a balanced sampler (the Alzheimer set has 64
Moderate_Demented images against 3,200 Non_Demented)."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import RandomSampler, WeightedRandomSampler


def class_counts(labels: Sequence[int], num_classes: int) -> np.ndarray:
    """Images per class, ``(num_classes,)``; labels outside ``0..num_classes-1`` raise ValueError."""
    arr = np.asarray(labels, dtype=np.int64).reshape(-1)
    if arr.size and (arr.min() < 0 or arr.max() >= num_classes):
        raise ValueError(f"labels must lie in 0..{num_classes - 1}, got {int(arr.min())}..{int(arr.max())}")
    return np.bincount(arr, minlength=num_classes)


def class_weights(labels: Sequence[int], num_classes: int, kept: Sequence[float] | None = None) -> torch.Tensor:
    """'balanced' loss weights, as scikit-learn's ``compute_class_weight``:
    ``n_samples / (n_classes * count[c])``. A class with no samples gets weight 0 (nothing to weigh).

    ``kept[c]`` is the expected fraction of class ``c``'s samples that reach the loss with their
    label (e.g. ``1 - augment.lesion`` for the healthy class, whose scans sometimes become
    synthetic-lesion scans): counts are scaled by it, so the classes stay balanced in the loss.

    Example:
        >>> class_weights([0, 0, 0, 1], 2).tolist()
        [0.6666666865348206, 2.0]
    """
    counts = class_counts(labels, num_classes).astype(np.float64)
    if kept is not None:
        counts = counts * np.asarray(kept, dtype=np.float64)
    n = counts.sum()
    if n == 0:
        raise ValueError("class_weights needs at least one label")
    weights = np.divide(n, num_classes * counts, out=np.zeros_like(counts), where=counts > 0)
    return torch.tensor(weights, dtype=torch.float32)


def balanced_sampler(labels: Sequence[int], num_samples: int | None = None, seed: int | None = None) -> ResumableWeightedSampler:
    """Sampler drawing every class equally often on average (with replacement).

    Args:
        labels: label of each dataset item, in dataset order.
        num_samples: draws per epoch (default: ``len(labels)``).
        seed: makes the draws reproducible.
    """
    arr = np.asarray(labels, dtype=np.int64).reshape(-1)
    if arr.size == 0:
        raise ValueError("balanced_sampler needs at least one label")
    _, groups = np.unique(arr, return_inverse=True)  # any label values, PRESENCE (-1) included
    counts = np.bincount(groups)
    weights = torch.as_tensor(1.0 / counts[groups], dtype=torch.double)
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    return ResumableWeightedSampler(weights, num_samples or len(arr), replacement=True, generator=generator)


class _ResumableOrder:
    """Mixin for a random sampler: remembers the random state each epoch's order was drawn from,
    so a run interrupted mid-epoch can draw the same order again and skip what it already trained
    on (:meth:`resume`), instead of a fresh order that repeats some scans and drops others.
    A fresh epoch draws exactly what the plain sampler would (same global RNG, same call)."""

    rng_state: dict | None = None  # the random state of the current epoch's draw
    _resume: tuple[dict, int] | None = None

    def _generator(self):
        return getattr(self, "generator", None)

    def state_dict(self) -> dict:
        return dict(self.rng_state) if self.rng_state else {}

    def resume(self, state: dict, skip: int) -> None:
        """Make the next epoch the interrupted one: ``state`` from :meth:`state_dict`, ``skip`` the
        number of samples already trained on (batches done x batch size)."""
        if "torch" not in (state or {}):
            raise ValueError("resume needs the sampler state saved with the interrupted epoch")
        if not 0 <= int(skip) <= len(self):
            raise ValueError(f"cannot skip {skip} of an epoch of {len(self)} samples")
        self._resume = (state, int(skip))

    def _snapshot(self) -> dict:
        g = self._generator()
        return {"torch": torch.get_rng_state(), "generator": None if g is None else g.get_state()}

    def __iter__(self):
        if self._resume is None:
            self.rng_state = self._snapshot()
            yield from super().__iter__()
            return
        state, skip = self._resume
        self._resume = None
        outer, g = torch.get_rng_state(), self._generator()
        torch.set_rng_state(state["torch"])
        if g is not None and state.get("generator") is not None:
            g.set_state(state["generator"])
        try:
            order = list(super().__iter__())
        finally:
            torch.set_rng_state(outer)
        self.rng_state = state
        yield from order[skip:]


class ResumableRandomSampler(_ResumableOrder, RandomSampler):
    """:class:`~torch.utils.data.RandomSampler` whose epoch can resume mid-way (a DDP run replaces
    it with a ``DistributedSampler``, as it would the plain one)."""


class ResumableWeightedSampler(_ResumableOrder, WeightedRandomSampler):
    """:class:`~torch.utils.data.WeightedRandomSampler` whose epoch can resume mid-way."""
