"""scripts/soup.py (WiSE-FT weight averaging) and the model card's naming of extra sources."""
from __future__ import annotations


import torch

from brainmri.checkpoint import load_checkpoint
from brainmri.training import run_training


def test_soup_averages_weights_and_records_its_own_validation_metrics(tiny_run_config, tmp_path, load_script):
    soup = load_script("soup")
    a = run_training(tiny_run_config(epochs=1, run_name="a"), progress=False).checkpoint
    b = run_training(tiny_run_config(epochs=1, run_name="b", seed=7), progress=False).checkpoint
    out = tmp_path / "soup" / "best.safetensors"
    assert soup.main([str(a), str(b), "--alpha", "0.25", "--out", str(out)]) == 0
    ma, _ = load_checkpoint(a)
    mb, meta_b = load_checkpoint(b)
    ms, meta = load_checkpoint(out)
    k = "fc.weight"
    want = 0.75 * ma.state_dict()[k] + 0.25 * mb.state_dict()[k]
    assert torch.allclose(ms.state_dict()[k], want, atol=1e-6)
    assert meta.extra["soup"] == {"a": str(a), "b": str(b), "alpha": 0.25}
    assert set(meta.metrics) == {"val_acc", "val_macro_f1"} and 0 <= meta.metrics["val_acc"] <= 1
    assert meta.metrics != meta_b.metrics  # not B's training metrics carried over
    assert meta.calibration.get("fitted_on") == "val"

    out3 = tmp_path / "soup3" / "best.safetensors"  # uniform three-way soup, the last run's validation data
    assert soup.main([str(b), str(a), str(b), "--out", str(out3)]) == 0
    m3, meta3 = load_checkpoint(out3)
    want3 = (2 * mb.state_dict()[k] + ma.state_dict()[k]) / 3
    assert torch.allclose(m3.state_dict()[k], want3, atol=1e-6)
    assert meta3.extra["soup"] == {"models": [str(b), str(a), str(b)], "weights": [1 / 3] * 3}


def test_soup_weights_are_normalised_and_checked(load_script):
    import re

    import pytest

    w = load_script("soup").soup_weights
    assert w(2, None, None) == [0.5, 0.5]
    assert w(2, 0.25, None) == [0.75, 0.25]
    assert w(3, None, [1, 1, 2]) == [0.25, 0.25, 0.5]
    for args, why in [((3, 0.5, None), "two checkpoints"), ((2, 0.5, [1, 1]), "not both"),
                      ((3, None, [1, 1]), "one weight per checkpoint"), ((2, None, [0, 0]), "not all zero"),
                      ((2, -0.1, None), "in [0, 1]")]:
        with pytest.raises(ValueError, match=re.escape(why)):
            w(*args)


def test_soup_refuses_alpha_out_of_range_and_unrelated_architectures(tiny_run_config, tmp_path, capsys, load_script):
    import pytest

    soup = load_script("soup")
    a = run_training(tiny_run_config(epochs=1, run_name="a"), progress=False).checkpoint
    with pytest.raises(SystemExit):
        soup.main([str(a), str(a), "--alpha", "1.5", "--out", str(tmp_path / "x.safetensors")])
    cfg = tiny_run_config(epochs=1, run_name="other")
    cfg.model.name = "seed003_cnn"
    other = run_training(cfg, progress=False).checkpoint
    assert soup.main([str(a), str(other), "--out", str(tmp_path / "y.safetensors")]) == 2
    assert "not the same architecture" in capsys.readouterr().err


def test_model_card_names_volume_slices_and_listed_datasets(load_script):
    bundle = load_script("bundle_model")
    vol = {"source": "/home/u/.cache/brainmri/slices/M2307_T2", "files": [f"slices/M2307_T2/M2307_T2_axial_{i:03d}.png" for i in (16, 17)]}
    assert bundle._source_name(vol) == "slices of the NIfTI volume M2307_T2 (scripts/volume_slices.py)"
    listed = {"source": "runs/folds/yesno/all.csv", "files": ["brain-mri-yes-no/yes/Y1.jpg", "brain-mri-yes-no/yes/Y2.jpg"]}
    assert bundle._source_name(listed) == "brain-mri-yes-no (listed in runs/folds/yesno/all.csv)"


def test_model_card_says_what_became_of_top_label_scaling(load_script):
    note = load_script("bundle_model")._top_label_note
    kept = {"temperature": 0.7, "top_label": {"a": 1.2, "b": -0.1}, "top_label_check": {"kept": True, "reason": "5-fold cross-validated gain 0.0100 > one standard error (0.0030)"}}
    assert note(kept) == ", then top-label scaling (kept: 5-fold cross-validated gain 0.0100 > one standard error (0.0030))"
    dropped = {"temperature": 0.7, "top_label_check": {"kept": False, "reason": "5-fold cross-validated gain 0.0024 is not above one standard error (0.0033)"}}
    assert note(dropped) == "; top-label scaling not kept (5-fold cross-validated gain 0.0024 is not above one standard error (0.0033))"
    assert note({"temperature": 0.648}) == note(0.648) == ""  # made before the check existed: nothing claimed
