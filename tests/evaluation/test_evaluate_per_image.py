"""``brainmri evaluate`` names its images: one JSON row per scored image, the report's error
table and tiles, the images predict's guard would refuse (counted, named, scored anyway), and the
data and leakage notes in the report as on the terminal."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from brainmri.checkpoint import CheckpointMeta, save_checkpoint
from brainmri.cli.main import main
from brainmri.config import ModelConfig, PreprocessConfig
from brainmri.data.synthetic import TUMOR4, make_phantom_dataset
from brainmri.models import create_model


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    base = tmp_path_factory.mktemp("per_image")
    torch.manual_seed(0)
    meta = CheckpointMeta(ModelConfig(name="seed003_cnn"), list(TUMOR4), PreprocessConfig(image_size=32), task="tumor4",
                          calibration={"temperature": 1.5, "fitted_on": "val"})
    ckpt = save_checkpoint(base / "m.safetensors", create_model("seed003_cnn", 4), meta)
    data = make_phantom_dataset(base / "flat", layout="flat", n_per_class=5, size=32, seed=1)
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(Path(data) / "pituitary" / "black.png")
    return ckpt, Path(data), base


def test_every_scored_image_has_a_row_and_the_blank_one_is_named(setup, capsys):
    ckpt, data, base = setup
    out = base / "r.json"
    assert main(["evaluate", str(ckpt), "--data", str(data), "--bootstrap", "20", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    r = json.loads(out.read_text())
    rows = r["predictions"]
    assert len(rows) == r["n"] == 21
    assert {row["path"] for row in rows} == {str(p.relative_to(data)) for p in data.rglob("*.png")}
    assert all(row["predicted"] in TUMOR4 and 0 < row["confidence"] <= 1 for row in rows)
    assert sum(not row["correct"] for row in rows) == 21 - int(np.trace(np.array(r["confusion_matrix"])))
    black = next(row for row in rows if row["path"].endswith("black.png"))
    assert black["out_of_distribution"] and "blank" in black["ood_reason"]
    assert r["out_of_distribution"]["n"] >= 1 and any("black.png" in e for e in r["out_of_distribution"]["examples"])
    assert "out of distribution by predict's guard" in text and "black.png" in text


def test_the_report_names_files_and_carries_the_notes(setup, capsys):
    ckpt, data, base = setup
    report, out = base / "r2.html", base / "r2.json"
    assert main(["evaluate", str(ckpt), "--data", str(data), "--bootstrap", "20", "--report", str(report), "--json", str(out)]) == 0
    html = report.read_text()
    assert 'id="split-note"' in html and "scoring all 21 images" in html
    assert 'id="leak-note"' in html and "training data is not known here" in html
    assert 'id="ood-note"' in html and "pituitary/black.png: blank" in html
    wrong = [row for row in json.loads(out.read_text())["predictions"] if not row["correct"]]
    assert wrong  # an untrained model: some errors to list
    assert 'id="error-table"' in html and all(f"<code>{row['path']}</code>" in html for row in wrong)
