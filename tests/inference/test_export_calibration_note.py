"""``brainmri export`` of a checkpoint with no fitted calibration says so (the ONNX model would
carry raw softmax probabilities), and says nothing of the kind for a calibrated one."""
from __future__ import annotations

from brainmri.cli.main import main
from inference_helpers import make_checkpoint


def test_export_of_an_uncalibrated_checkpoint_says_so(tmp_path, capsys):
    raw = make_checkpoint(tmp_path / "raw.safetensors")
    assert main(["export", str(raw), "-o", str(tmp_path / "raw.onnx")]) == 0
    err = capsys.readouterr().err
    assert f"WARNING: {raw}: not calibrated (temperature 1)" in err and "brainmri calibrate" in err


def test_export_of_an_interrupted_run_names_the_epochs_and_resume(tmp_path, capsys):
    from brainmri.checkpoint import load_checkpoint, save_checkpoint

    ck = make_checkpoint(tmp_path / "best.safetensors")
    model, meta = load_checkpoint(ck)
    meta.extra = {"interrupted": True, "completed_epochs": 2, "epochs": 6}
    save_checkpoint(ck, model, meta)
    assert main(["export", str(ck), "-o", str(tmp_path / "b.onnx")]) == 0
    assert "interrupted after 2 of 6 epochs" in capsys.readouterr().err


def test_export_of_a_calibrated_checkpoint_warns_of_nothing(tmp_path, capsys):
    from brainmri.checkpoint import load_checkpoint, save_checkpoint

    ck = make_checkpoint(tmp_path / "cal.safetensors", temperature=0.8)
    model, meta = load_checkpoint(ck)
    meta.calibration = {"temperature": 0.8, "fitted_on": "val", "n": 40}
    save_checkpoint(ck, model, meta)
    assert main(["export", str(ck), "-o", str(tmp_path / "c.onnx")]) == 0
    assert "WARNING" not in capsys.readouterr().err
