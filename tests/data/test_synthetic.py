"""Phantoms: deterministic, brain-like, class-dependent, learnable; every dataset layout."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from brainmri.data.io import read_image
from brainmri.data.synthetic import make_phantom, make_phantom_dataset
from brainmri.preprocess.crop import brain_bbox

TUMOR4 = ("glioma", "meningioma", "notumor", "pituitary")


def phantom(label: int, name: str | None, seed: int = 0, size: int = 64):
    return make_phantom(label, size, np.random.default_rng(seed), class_name=name, return_mask=True)


def test_same_seed_same_image_and_seeds_differ() -> None:
    a, b, c = (make_phantom(0, 64, np.random.default_rng(s), "glioma") for s in (3, 3, 4))
    assert a.dtype == np.uint8 and a.shape == (64, 64)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_looks_like_a_head_dark_background_bright_skull() -> None:
    img, _ = phantom(2, "notumor")
    assert img[:3, :3].mean() < 20  # background
    assert img[32, :].max() > 180  # skull ring crossed by the middle row
    assert 70 < img[28:36, 24:28].mean() < 150  # tissue
    top, bottom, left, right = brain_bbox(img)
    assert 40 < bottom - top <= 64 and 35 < right - left <= 64


@pytest.mark.parametrize("label,name", list(enumerate(TUMOR4)) + [(1, "yes"), (0, "no"), (3, "Very_Mild_Demented"), (1, None)])
def test_lesion_mask_matches_class(label: int, name: str | None) -> None:
    img, mask = phantom(label, name, seed=label)
    assert mask.dtype == bool and mask.shape == img.shape
    if name in ("notumor", "no"):
        assert not mask.any()
        return
    assert mask.any()
    assert img[mask].mean() > img[~mask & (img > 60)].mean() + 30  # lesion brighter than tissue


def test_lesion_sizes_and_places_follow_tumor_type() -> None:
    areas, rows = {}, {}
    for label, name in enumerate(TUMOR4):
        if name == "notumor":
            continue
        masks = [phantom(label, name, seed=s)[1] for s in range(8)]
        areas[name] = np.mean([m.sum() for m in masks])
        rows[name] = np.mean([np.argwhere(m)[:, 0].mean() for m in masks])
    assert areas["glioma"] > areas["meningioma"] > areas["pituitary"]
    assert rows["meningioma"] < 32 < rows["pituitary"]  # top arc vs centre-bottom


def test_generic_classes_differ_by_label() -> None:
    centres = [np.argwhere(phantom(k, f"class{k}", seed=1)[1]).mean(axis=0) for k in range(4)]
    assert min(np.linalg.norm(a - b) for i, a in enumerate(centres) for b in centres[i + 1 :]) > 3


@pytest.mark.parametrize("layout", ["split", "split3", "flat", "csv", "npz"])
def test_dataset_layouts_written(tmp_path: Path, layout: str) -> None:
    out = make_phantom_dataset(tmp_path, layout=layout, class_names=("a", "b"), n_per_class=3, size=32, test_per_class=2, formats=("png", "jpg"))
    if layout == "npz":
        with np.load(out) as z:
            assert z["images"].shape == (6, 32, 32) and z["labels"].tolist().count(1) == 3
        return
    files = sorted(p for p in out.rglob("*") if p.suffix in (".png", ".jpg"))
    expected = {"split": 10, "split3": 14, "flat": 6, "csv": 6}[layout]
    assert len(files) == expected and {p.suffix for p in files} == {".png", ".jpg"}
    assert read_image(files[0]).shape == (32, 32)
    if layout == "csv":
        rows = list(csv.DictReader(open(out / "labels.csv")))
        assert [r["Image"] for r in rows[:2]] == ["Image1", "Image2"] and {r["Class"] for r in rows} == {"0", "1"}
    if layout.startswith("split"):
        assert len(list((out / "Testing" / "b").iterdir())) == 2


def test_dataset_is_deterministic(tmp_path: Path) -> None:
    a = make_phantom_dataset(tmp_path / "a", layout="flat", n_per_class=2, size=32, seed=5)
    b = make_phantom_dataset(tmp_path / "b", layout="flat", n_per_class=2, size=32, seed=5)
    for p in sorted(a.rglob("*.png")):
        assert p.read_bytes() == (b / p.relative_to(a)).read_bytes()


def test_bad_arguments_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="layout"):
        make_phantom_dataset(tmp_path, layout="zip")
    with pytest.raises(ValueError, match="formats"):
        make_phantom_dataset(tmp_path, formats=("gif",))
    with pytest.raises(ValueError, match="size"):
        make_phantom(0, 8, np.random.default_rng(0))


def test_a_small_cnn_learns_the_four_classes() -> None:
    """The point of the phantoms: a few epochs of a tiny CNN separate the classes."""
    torch.manual_seed(0)

    def batch(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        xs, ys = [], []
        for label, name in enumerate(TUMOR4):
            for i in range(n):
                xs.append(make_phantom(label, 40, np.random.default_rng([seed, label, i]), class_name=name))
                ys.append(label)
        return torch.tensor(np.stack(xs)).float().div(255).unsqueeze(1), torch.tensor(ys)

    x, y = batch(24, 0)
    x_test, y_test = batch(12, 1)
    net = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(16, 4),
    )
    opt = torch.optim.Adam(net.parameters(), 3e-3)
    for _ in range(12):
        perm = torch.randperm(len(y))
        for b in range(0, len(y), 16):
            idx = perm[b : b + 16]
            loss = nn.functional.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        acc = (net(x_test).argmax(1) == y_test).float().mean().item()
    assert acc >= 0.7  # chance is 0.25; seeds 0-4 give 0.79-1.0


@pytest.mark.parametrize("name", ["../evil", "/tmp/abs", ".hidden", "a/b"])
def test_synth_refuses_class_names_that_are_paths(tmp_path, capsys, name):
    from brainmri.cli.main import main

    assert main(["data", "synth", str(tmp_path / "s"), "--classes", f"{name},b", "--n-per-class", "1", "--size", "32"]) == 2
    assert "is not a class name" in capsys.readouterr().err and not (tmp_path / "s").exists()
