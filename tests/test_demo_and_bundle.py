"""The main job (``brainmri demo``) and the bundled model work out of the box."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import brainmri
from brainmri.cli.main import main
from brainmri.data.synthetic import make_phantom
from brainmri.inference.classifier import bundled_checkpoint


def test_demo_writes_report_checkpoint_and_overlays(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["-q", "demo", "--out", str(out), "--epochs", "2", "--n-per-class", "10"]) == 0
    printed = capsys.readouterr().out
    assert "report:" in printed and brainmri.DISCLAIMER in printed
    summary = json.loads((out / "demo.json").read_text())
    report = Path(summary["report"])
    assert report.is_file() and report.stat().st_size > 10_000
    assert "<img" in report.read_text()
    assert Path(summary["checkpoint"]).is_file()
    assert len(list((out / "explain").glob("*_overlay.png"))) == 4


needs_bundle = pytest.mark.skipif(not bundled_checkpoint().is_file(), reason="bundled model not built")


@needs_bundle
def test_bundled_model_loads_with_no_arguments_and_predicts():
    clf = brainmri.Classifier.load()
    assert clf.class_names == ["glioma", "meningioma", "notumor", "pituitary"]
    assert clf.meta.extra.get("model_card")
    assert 0.05 < clf.temperature < 20
    rng = np.random.default_rng(0)
    result = clf.predict(make_phantom(2, 160, rng)).to_dict()
    assert set(result) >= {"label", "probabilities", "confidence", "out_of_distribution", "error"}
    assert abs(sum(result["probabilities"].values()) - 1) < 1e-4


@needs_bundle
def test_bundled_weights_are_small_enough_to_ship():
    assert bundled_checkpoint().stat().st_size < 30 * 1024 * 1024


@needs_bundle
@pytest.mark.realdata
def test_bundled_model_on_real_testing_scans(real_datasets):
    clf = brainmri.Classifier.load()
    correct = total = 0
    for class_name in clf.class_names:
        files = sorted((real_datasets / "brain-tumor-mri" / "Testing" / class_name).iterdir())[:10]
        for r in clf.predict_batch([str(f) for f in files]):
            total += 1
            correct += r.label == class_name
    assert total == 40
    assert correct / total >= 0.85
