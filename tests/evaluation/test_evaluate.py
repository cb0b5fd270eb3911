"""``brainmri evaluate`` on a tiny checkpoint made here, the report in headless Chromium, and
the train/val/test, leak and TTA options."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from brainmri.checkpoint import CheckpointMeta, save_checkpoint
from brainmri.cli.main import main
from brainmri.config import ModelConfig, PreprocessConfig
from brainmri.data.synthetic import TUMOR4, make_phantom_dataset
from brainmri.evaluation.evaluate import evaluate_checkpoint

KEYS = {"n", "class_names", "accuracy", "macro_f1", "ece", "confusion_matrix", "per_class", "leak_free", "ci", "ece_before",
        "temperature", "disclaimer", "loss", "precision", "recall", "mcc", "kappa", "roc_auc", "splits", "leak"}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A phantom dataset with two test images copied from training (planted leaks) and a
    checkpoint in a run directory with a metrics.csv."""
    base = tmp_path_factory.mktemp("eval")
    root = make_phantom_dataset(base / "ds", n_per_class=6, test_per_class=3, size=40, seed=0)
    for c in ("glioma", "pituitary"):
        shutil.copy(root / "Training" / c / f"{c}_0000.png", root / "Testing" / c / "leaked_copy.png")
    torch.manual_seed(0)
    model = create_model_small()
    meta = CheckpointMeta(ModelConfig(name="seed003_cnn"), list(TUMOR4), PreprocessConfig(image_size=40), task="tumor4",
                          calibration={"temperature": 1.7, "fitted_on": "val"})
    run = base / "run"
    ckpt = save_checkpoint(run / "best.safetensors", model, meta)
    (run / "metrics.csv").write_text("epoch,phase,train_loss,train_acc,val_loss,val_acc,val_precision,val_recall,val_macro_f1,lr,seconds\n"
                                     "0,2,1.30,0.30,1.25,0.35,0.3,0.35,0.30,0.001,1.0\n1,2,1.00,0.55,1.10,0.50,,0.50,0.45,0.001,1.0\n")
    return root, ckpt, base


def create_model_small():
    from brainmri.models import create_model

    return create_model("seed003_cnn", 4)


@pytest.fixture(scope="module")
def evaluated(setup, tmp_path_factory):
    """One ``brainmri evaluate --json --report`` run shared by the tests that read its output."""
    root, ckpt, _ = setup
    out = tmp_path_factory.mktemp("evaluated")
    out_json, out_html = out / "r.json", out / "r.html"
    rc = main(["evaluate", str(ckpt), "--data", str(root), "--json", str(out_json), "--report", str(out_html), "--bootstrap", "200"])
    return rc, out_json, out_html


def test_evaluate_cli_json_and_report(evaluated, capsys):
    rc, out_json, out_html = evaluated
    assert rc == 0
    r = json.loads(out_json.read_text())
    assert KEYS <= set(r)
    assert r["n"] == 14 and r["class_names"] == list(TUMOR4)
    cm = np.array(r["confusion_matrix"])
    assert cm.shape == (4, 4) and cm.sum() == 14 and cm.sum(1).tolist() == [4, 3, 3, 4]  # rows = true class
    assert set(r["per_class"]) == set(TUMOR4) and r["per_class"]["glioma"]["support"] == 4
    assert r["ci"]["accuracy"][0] <= r["accuracy"] <= r["ci"]["accuracy"][1]
    assert r["temperature"] == pytest.approx(1.7) and not r["temperature_missing"]
    assert r["disclaimer"] == "For research use only; not a medical device."
    # the two planted copies are found and excluded from the leak-free numbers
    assert r["leak"]["n_leaked"] >= 2 and r["leak_free"]["n"] == 14 - r["leak"]["n_leaked"]
    assert {"accuracy", "macro_f1", "ci", "per_class"} <= set(r["leak_free"])
    html = out_html.read_text()
    assert html.count("data:image/png;base64,") >= 8 and "http://" not in html and "https://" not in html
    for section in ("Training curves", "Confusion matrix", "ROC curves", "Calibration", "Leakage audit", "Explanations per class",
                    "Misclassified images", "Ten predictions", "not a medical device"):
        assert section in html
    assert "leak-free" in html


def test_evaluate_cli_prints_summary(setup, tmp_path, capsys):
    root, ckpt, _ = setup
    assert main(["evaluate", str(ckpt), "--data", str(root), "--bootstrap", "50"]) == 0
    printed = capsys.readouterr().out
    assert "leak-free subset" in printed and "95% bootstrap" in printed and "macro avg" in printed


def test_all_splits_tta_and_missing_temperature(setup, tmp_path):
    root, ckpt, base = setup
    from brainmri.checkpoint import load_checkpoint

    model, meta = load_checkpoint(ckpt)
    meta.calibration = {"temperature": 1.0}
    bare = save_checkpoint(tmp_path / "bare.safetensors", model, meta)
    r = evaluate_checkpoint(bare, root, all_splits=True, tta=True, leak_threshold=-1, n_boot=100)
    assert r["temperature_missing"] and r["temperature"] == 1.0 and r["ece"] == pytest.approx(r["ece_before"])
    assert list(r["splits"]) == ["train", "val", "test"]
    assert r["splits"]["test"]["n"] == 14 and all({"accuracy", "loss", "precision", "recall"} <= set(s) for s in r["splits"].values())
    assert r["leak"] is None and r["leak_free"] is None
    assert r["tta"]["delta_accuracy"] == pytest.approx(r["tta"]["accuracy"] - r["accuracy"])
    assert evaluate_checkpoint(bare, root, split="validation", n_boot=50)["split"] == "val"


def test_evaluate_errors_are_one_line(setup, tmp_path, capsys):
    root, ckpt, _ = setup
    assert main(["evaluate", str(tmp_path / "nope.safetensors"), "--data", str(root)]) == 2
    assert main(["evaluate", str(ckpt), "--data", str(tmp_path / "nodata")]) == 2
    assert main(["evaluate", str(ckpt), "--data", str(root), "--split", "holdout"]) == 2
    err = capsys.readouterr().err
    assert "nope.safetensors" in err and "nodata" in err and "holdout" in err and "Traceback" not in err


def _chrome():
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver") or "/usr/bin/chromedriver"
    if not chromium or not Path(driver).exists():
        pytest.skip("chromium / chromedriver not installed")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1200,900"):
        opts.add_argument(flag)
    opts.binary_location = chromium
    return webdriver.Chrome(service=Service(driver), options=opts)


def test_report_renders_in_headless_chromium(evaluated, tmp_path):
    _, _, html = evaluated
    driver = _chrome()
    try:
        driver.get(html.resolve().as_uri())
        images = driver.execute_script("return Array.from(document.images).map(i => [i.alt, i.naturalWidth, i.complete])")
        height = driver.execute_script("return document.body.scrollHeight")
        driver.set_window_size(1200, min(int(height), 8000))
        shot = tmp_path / "report.png"
        driver.save_screenshot(str(shot))
    finally:
        driver.quit()
    alts = [a for a, _, _ in images]
    for alt in ("training curves", "confusion matrix", "ROC curves", "reliability diagram", "ten predictions"):
        assert alt in alts
    assert sum(a.startswith("explanation ") for a in alts) >= 4  # at least one per class
    assert all(w > 0 and ok for _, w, ok in images), images
    from PIL import Image

    img = np.asarray(Image.open(shot).convert("L"))
    assert img.shape[0] > 2000 and img.std() > 20  # a long page with figures, not a blank screen


def test_evaluate_applies_and_reports_stored_top_label_scaling(setup, tmp_path, capsys):
    root, ckpt, _ = setup
    from brainmri.checkpoint import load_checkpoint

    model, meta = load_checkpoint(ckpt)
    meta.calibration = {"temperature": 1.7, "fitted_on": "val", "top_label": {"a": 0.5, "b": 1.0}}
    scaled = save_checkpoint(tmp_path / "top.safetensors", model, meta)
    plain = evaluate_checkpoint(ckpt, root, leak_threshold=-1, n_boot=50)
    r = evaluate_checkpoint(scaled, root, leak_threshold=-1, n_boot=50)
    assert r["accuracy"] == plain["accuracy"] and r["confusion_matrix"] == plain["confusion_matrix"]  # never moves a prediction
    assert r["ece_temperature"] == pytest.approx(plain["ece"]) and r["ece"] != pytest.approx(plain["ece"])
    assert r["top_label"] == {"a": 0.5, "b": 1.0}
    assert main(["evaluate", str(scaled), "--data", str(root), "--bootstrap", "50", "--leak-threshold", "-1"]) == 0
    assert "then top-label scaling" in capsys.readouterr().out
