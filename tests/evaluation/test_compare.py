"""Model comparison: table and chart from rows; a slow end-to-end run through training."""
from __future__ import annotations

import json

import pytest

from brainmri.evaluation.compare import markdown_table
from brainmri.evaluation.plots import comparison_png

ROWS = [
    {"model": "seed003_cnn", "image_size": 64, "accuracy": 0.7, "accuracy_ci": [0.6, 0.8], "macro_f1": 0.65, "macro_f1_ci": [0.55, 0.75],
     "params": 550_000, "train_images_per_s": 120.0, "inference_ms": 1.5},
    {"model": "resnet18", "image_size": 64, "accuracy": 0.9, "accuracy_ci": [0.85, 0.95], "macro_f1": 0.88, "macro_f1_ci": [0.8, 0.93],
     "params": 11_200_000, "train_images_per_s": None, "inference_ms": 6.0},
]


def test_markdown_table_best_first_with_cis():
    table = markdown_table(ROWS).splitlines()
    assert table[0].startswith("| model |") and "macro F1 (95% CI)" in table[0]
    assert table[2].startswith("| resnet18 | 64 | n/a | 90.0% [85.0, 95.0] | 88.0% [80.0, 93.0] | 11.20 M | n/a | 6.0 |")
    assert table[3].startswith("| seed003_cnn")
    rows = [{**r, "n_test": 40} for r in ROWS]
    text = markdown_table(rows)
    assert "| resnet18 | 64 | 40 |" in text and "Only 40 test images: the intervals are wide" in text
    assert "Only" not in markdown_table([{**r, "n_test": 1311} for r in ROWS])


def test_comparison_chart_is_a_png():
    png = comparison_png(ROWS)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


@pytest.mark.slow
def test_compare_cli_end_to_end(make_dataset, tmp_path, capsys):
    from brainmri.cli.main import main

    root = make_dataset("split", n_per_class=6, size=32)
    out = tmp_path / "cmp"
    rc = main(["-q", "compare", "--data", str(root), "--models", "seed003_cnn,seed002_cnn", "--epochs", "1", "--image-size", "32",
               "--out", str(out), "--bootstrap", "100", "--batch-size", "8"])
    assert rc == 0
    rows = json.loads((out / "compare.json").read_text())["rows"]
    assert [r["model"] for r in rows] == ["seed003_cnn", "seed002_cnn"]
    for r in rows:
        assert 0 <= r["accuracy"] <= 1 and r["params"] > 0 and r["inference_ms"] > 0
        assert r["accuracy_ci"][0] <= r["accuracy"] <= r["accuracy_ci"][1]
    assert (out / "compare.png").stat().st_size > 1000 and "| seed002_cnn |" in (out / "compare.md").read_text()
    assert "| seed003_cnn |" in capsys.readouterr().out


def test_compare_refuses_a_bad_bootstrap_before_training(tmp_path, monkeypatch):
    import brainmri.training as training
    from brainmri.errors import ConfigError
    from brainmri.evaluation.compare import compare_models

    monkeypatch.setattr(training, "run_training", lambda *a, **k: pytest.fail("trained despite --bootstrap -5"))
    with pytest.raises(ConfigError, match="--bootstrap -5"):
        compare_models(tmp_path / "nodata", ["seed002_cnn"], out=tmp_path / "cmp", n_boot=-5)
    assert not (tmp_path / "cmp").exists()
