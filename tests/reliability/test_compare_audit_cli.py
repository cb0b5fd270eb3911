"""``brainmri compare``: every model name checked before the first trains, duplicates refused,
the table kept for finished models when a later one fails, timings after a warm-up per model.
``brainmri data audit``: output paths checked first, ``--montage DIR`` writes inside DIR."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import lightning.pytorch  # noqa: F401  (imported at collection: its log handler must not bind a test's captured stderr)
import pytest

from brainmri.errors import BrainMRIError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "inference"))
from inference_helpers import make_checkpoint  # noqa: E402


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    from brainmri.data.synthetic import make_phantom_dataset

    return Path(make_phantom_dataset(tmp_path_factory.mktemp("cmp") / "ds", layout="split", n_per_class=3, test_per_class=2, size=32))


def _compare(cli, data, out, models, *extra):
    return cli("-q", "compare", "--data", data, "--models", models, "--epochs", "1", "--image-size", "32", "--bootstrap", "5",
               "--batch-size", "8", "--out", out, *extra)


@pytest.fixture()
def no_training(monkeypatch):
    import brainmri.training as training

    monkeypatch.setattr(training, "run_training", lambda *a, **k: pytest.fail("a model was trained"))


def test_a_bad_later_model_name_fails_before_any_training(tiny_data, tmp_path, cli, no_training):
    out = tmp_path / "cmp"
    code, text = _compare(cli, tiny_data, out, "seed002_cnn,bogusnet")
    assert code == 2
    assert "model.name='bogusnet' is not a brainmri or timm model" in text
    assert not out.exists()  # nothing trained, no empty run folders


def test_duplicate_model_names_are_refused(tiny_data, tmp_path, cli, no_training):
    code, text = _compare(cli, tiny_data, tmp_path / "cmp", "seed002_cnn, seed003_cnn,seed002_cnn")
    assert code == 2 and "--models names seed002_cnn more than once" in text


def test_a_bad_out_folder_is_refused_first(tiny_data, tmp_path, cli, no_training):
    afile = tmp_path / "afile"
    afile.write_text("x")
    code, text = _compare(cli, tiny_data, afile, "seed002_cnn")
    assert code == 2 and f"--out {afile}: is a file, not a folder" in text


def test_a_later_failure_keeps_the_table_of_finished_models(tiny_data, tmp_path, cli, monkeypatch):
    import brainmri.evaluation.compare as cmp

    real = cmp.compare_models

    def first_then_fail(data, models, **kw):
        if models == ["seed003_cnn"]:
            raise BrainMRIError("seed003_cnn: training failed (simulated)")
        return real(data, models, **kw)

    monkeypatch.setattr(cmp, "compare_models", first_then_fail)
    out = tmp_path / "cmp"
    code, text = _compare(cli, tiny_data, out, "seed002_cnn,seed003_cnn")
    assert code == 2 and "training failed (simulated)" in text
    assert "the table for the finished model(s) (seed002_cnn)" in text
    rows = json.loads((out / "compare.json").read_text())["rows"]
    assert [r["model"] for r in rows] == ["seed002_cnn"]
    assert "| seed002_cnn |" in (out / "compare.md").read_text()
    assert (out / "compare.png").stat().st_size > 0


def test_timings_do_not_charge_the_first_model_for_warm_up(tmp_path, cli, monkeypatch):
    """A process whose first forward passes are slow (100 ms, then 1 ms): every model must be
    reported at the warm speed, the first one too."""
    import brainmri.evaluation.compare as cmp

    calls = {"n": 0}

    def fake_inference_ms(model, image_size, in_chans, repeats=10):
        calls["n"] += 1
        return 100.0 if calls["n"] == 1 else 1.0

    def fake_compare(data, models, out, **kw):
        [name] = models
        ck = make_checkpoint(Path(out) / f"{name}.safetensors", name=name, size=32)
        import torch

        row = {"model": name, "image_size": 32, "epochs": 1, "n_test": 4, "accuracy": 0.5, "accuracy_ci": [0.4, 0.6],
               "macro_f1": 0.5, "macro_f1_ci": [0.4, 0.6], "ece": 0.1, "params": 1, "train_images_per_s": 1.0,
               "inference_ms": cmp.inference_ms(torch.nn.Identity(), 32, 1), "checkpoint": str(ck)}  # as the real one: timed right after training
        return [row]

    monkeypatch.setattr(cmp, "inference_ms", fake_inference_ms)
    monkeypatch.setattr(cmp, "compare_models", fake_compare)
    out = tmp_path / "cmp"
    (tmp_path / "data").mkdir()
    code, text = cli("-q", "compare", "--data", tmp_path / "data", "--models", "seed002_cnn,seed003_cnn", "--image-size", "32", "--out", out)
    assert code == 0, text
    rows = json.loads((out / "compare.json").read_text())["rows"]
    assert {r["model"]: r["inference_ms"] for r in rows} == {"seed002_cnn": 1.0, "seed003_cnn": 1.0}


# ------------------------------------------------------------------------------------ data audit


def test_audit_montage_into_an_existing_folder(tiny_data, tmp_path, cli):
    folder = tmp_path / "figs"
    folder.mkdir()
    code, text = cli("data", "audit", tiny_data, "--no-cache", "--montage", folder)
    assert code == 0
    assert f"montage: {folder / 'montage.png'}" in text
    assert (folder / "montage.png").stat().st_size > 0
    assert not Path(str(folder) + ".png").exists()


def test_audit_montage_without_a_suffix_prints_the_real_path(tiny_data, tmp_path, cli):
    code, text = cli("data", "audit", tiny_data, "--no-cache", "--montage", tmp_path / "pairs")
    assert code == 0
    assert f"montage: {tmp_path / 'pairs.png'}" in text and (tmp_path / "pairs.png").is_file()


def test_audit_bad_outputs_are_refused_before_hashing(tiny_data, tmp_path, cli):
    afile = tmp_path / "afile"
    afile.write_text("x")
    for flags, message in ((["--json", "/proc/nope/a.json"], "--json /proc/nope/a.json: cannot write in /proc"),
                           (["--montage", afile / "m.png"], "afile is a file, not a folder"),
                           (["--json", tmp_path], "is a folder; give a file name")):
        code, text = cli("data", "audit", tiny_data, "--no-cache", *flags)
        assert code == 2 and message in text, text
        assert "images (" not in text  # no summary: refused before the audit ran
