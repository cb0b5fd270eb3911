"""On a model trained on phantoms, the map's peak falls on the planted lesion far more often
than chance (the lesion's share of the image)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from brainmri.checkpoint import CheckpointMeta
from brainmri.config import ModelConfig, PreprocessConfig
from brainmri.data.synthetic import TUMOR4, make_phantom
from brainmri.explain import explain
from brainmri.explain.localization import area_fraction, grow, pointing_hit
from brainmri.models import create_model
from brainmri.preprocess.pipeline import prepare_image, to_model_input

SIZE = 48


def phantoms(n: int, seed: int):
    rng = np.random.default_rng(seed)
    cfg = PreprocessConfig(image_size=SIZE)
    images, masks, labels = [], [], []
    for i in range(n):
        img, mask = make_phantom(i % 4, SIZE, rng, class_name=TUMOR4[i % 4], return_mask=True)
        images.append(img)
        masks.append(mask)
        labels.append(i % 4)
    x = torch.stack([to_model_input(prepare_image(im, cfg), cfg) for im in images])
    return x, torch.tensor(labels), images, masks, cfg


def train(epochs: int, target_acc: float):
    torch.manual_seed(0)
    x, y, _, _, cfg = phantoms(160, seed=0)
    model = create_model("seed003_cnn", 4, drop_rate=0.0)
    opt = torch.optim.Adam(model.parameters(), 2e-3)
    for _ in range(epochs):
        model.train()
        for idx in torch.randperm(len(x)).split(32):
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            if (model(x).argmax(1) == y).float().mean() >= target_acc:
                break
    return model.eval(), CheckpointMeta(ModelConfig(name="seed003_cnn"), list(TUMOR4), cfg)


def hit_rate(model, meta, method: str, n: int = 24) -> tuple[float, float]:
    """(share of maps peaking inside the slightly dilated lesion, that region's mean area share)."""
    _, _, images, masks, _ = phantoms(n, seed=123)
    results = explain(model, meta, images, method=method)
    hits, chance = [], []
    for r, mask in zip(results, masks):
        if not mask.any():
            continue
        hits.append(pointing_hit(r.heatmap, mask, tolerance=2))  # heat map at the original size
        chance.append(area_fraction(grow(mask, 2)))
    return float(np.mean(hits)), float(np.mean(chance))


def test_gradcam_peaks_on_lesion_fast():
    model, meta = train(epochs=6, target_acc=0.85)
    hits, chance = hit_rate(model, meta, "gradcam", n=16)
    assert hits > max(3 * chance, 0.3), (hits, chance)


@pytest.fixture(scope="module")
def well_trained():
    return train(epochs=14, target_acc=0.99)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "layercam", "hirescam"])
def test_cams_peak_on_lesion_trained(method, well_trained):
    model, meta = well_trained
    hits, chance = hit_rate(model, meta, method, n=40)
    assert hits > max(5 * chance, 0.5), (hits, chance)
