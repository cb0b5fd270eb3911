"""Class weights (as scikit-learn's 'balanced') and the balanced sampler."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from brainmri.data.sampling import balanced_sampler, class_counts, class_weights


def test_class_weights_hand_computed() -> None:
    labels = [0] * 6 + [1] * 3 + [2] * 1  # n = 10, k = 3
    w = class_weights(labels, 3)
    assert w.dtype == torch.float32
    assert w.tolist() == pytest.approx([10 / 18, 10 / 9, 10 / 3])


def test_class_weights_match_sklearn() -> None:
    sklearn = pytest.importorskip("sklearn.utils.class_weight")
    labels = np.random.default_rng(0).choice(4, size=200, p=[0.5, 0.3, 0.15, 0.05])
    expected = sklearn.compute_class_weight("balanced", classes=np.arange(4), y=labels)
    assert class_weights(labels.tolist(), 4).numpy() == pytest.approx(expected, rel=1e-6)


def test_balanced_labels_give_unit_weights_and_absent_class_zero() -> None:
    assert class_weights([0, 1, 2, 0, 1, 2], 3).tolist() == [1.0, 1.0, 1.0]
    w = class_weights([0, 0, 1, 1], 3)
    assert w[2] == 0 and w[0] == pytest.approx(4 / 6)


def test_bad_labels_rejected() -> None:
    with pytest.raises(ValueError, match="0..1"):
        class_counts([0, 2], 2)
    with pytest.raises(ValueError, match="at least one"):
        class_weights([], 2)
    with pytest.raises(ValueError, match="at least one"):
        balanced_sampler([])


def test_balanced_sampler_draws_classes_evenly_and_reproducibly() -> None:
    labels = [0] * 90 + [1] * 10
    draws = list(balanced_sampler(labels, num_samples=4000, seed=3))
    assert draws == list(balanced_sampler(labels, num_samples=4000, seed=3))
    share = Counter(labels[i] for i in draws)[1] / len(draws)
    assert 0.45 < share < 0.55  # 10% of the data, half the draws
    assert len(balanced_sampler(labels)) == 100


def test_kept_fraction_rebalances_a_class_that_loses_samples() -> None:
    # class 0 keeps half its samples (the other half become synthetic-lesion scans): weights
    # are balanced over what the loss sees, so each class carries the same expected weight
    w = class_weights([0, 0, 1, 1], 2, kept=[0.5, 1.0])
    assert w.tolist() == pytest.approx([1.5, 0.75])
    assert float(w[0]) * 2 * 0.5 == pytest.approx(float(w[1]) * 2 * 1.0)
    assert class_weights([0, 0, 1, 1], 2, kept=[1.0, 1.0]).tolist() == class_weights([0, 0, 1, 1], 2).tolist()


@pytest.mark.parametrize("seeded", [False, True])
def test_resumable_samplers_draw_what_the_plain_ones_do_and_resume_an_epoch_mid_way(seeded):
    from torch.utils.data import RandomSampler, WeightedRandomSampler

    from brainmri.data.sampling import ResumableRandomSampler, ResumableWeightedSampler

    torch.manual_seed(3)
    expected = list(RandomSampler(range(20)))
    torch.manual_seed(3)
    assert list(ResumableRandomSampler(range(20))) == expected
    weights = torch.linspace(0.1, 1.0, 20, dtype=torch.double)
    plain = WeightedRandomSampler(weights, 20, generator=torch.Generator().manual_seed(5) if seeded else None)
    balanced = ResumableWeightedSampler(weights, 20, generator=torch.Generator().manual_seed(5) if seeded else None)
    torch.manual_seed(4)
    expected = list(plain)
    torch.manual_seed(4)
    assert list(balanced) == expected  # a fresh epoch: the same draws
    for sampler in (ResumableRandomSampler(range(20)), balanced):
        first = list(sampler)
        state = sampler.state_dict()
        list(sampler)  # a later epoch moved every random state on
        sampler.resume(state, 7)
        assert list(sampler) == first[7:]  # the interrupted epoch, from where it stopped
        assert list(sampler) != first  # and the next epoch is a new draw
    with pytest.raises(ValueError, match="cannot skip 21"):
        balanced.resume(state, 21)
    with pytest.raises(ValueError, match="saved with the interrupted epoch"):
        balanced.resume({}, 3)
