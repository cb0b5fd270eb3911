"""Checkpoint metadata that is not a JSON object, ONNX files chosen by content (info, predict,
explain, export), the onnx error naming the file, ``export -o`` never destroying a file, and
``predict`` output paths checked before the work."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from brainmri.checkpoint import read_checkpoint
from brainmri.cli.main import main
from brainmri.errors import CheckpointError


def _odd_meta_file(path: Path, metadata: str) -> Path:
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(path), metadata={"brainmri": metadata})
    return path


@pytest.fixture(scope="module")
def onnx_no_suffix(tiny_ckpt, tmp_path_factory) -> Path:
    """The tiny checkpoint exported to ONNX, in a file whose name says nothing."""
    out = tmp_path_factory.mktemp("onnx") / "exported_model"
    assert main(["export", str(tiny_ckpt), "-o", str(out)]) == 0
    return out


@pytest.mark.parametrize("metadata, kind", [("[1, 2]", "list"), ('"text"', "string"), ("3", "number"), ("null", "null")])
def test_metadata_that_is_not_an_object_is_a_checkpoint_error(tmp_path, metadata, kind):
    path = _odd_meta_file(tmp_path / "meta.safetensors", metadata)
    with pytest.raises(CheckpointError, match=rf"^{path}: checkpoint metadata must be a JSON object, not a {kind}"):
        read_checkpoint(path)


def test_metadata_with_a_list_where_a_section_belongs_is_a_checkpoint_error(tmp_path):
    bad = {"format": "brainmri-checkpoint", "format_version": 1, "model": ["resnet18"], "class_names": ["a"], "preprocess": {}}
    path = _odd_meta_file(tmp_path / "meta.safetensors", json.dumps(bad))
    with pytest.raises(CheckpointError, match="incomplete or invalid"):
        read_checkpoint(path)


@pytest.mark.parametrize("command", ["info", "predict", "explain", "export"])
def test_every_command_reports_list_metadata_in_one_line(command, tmp_path, phantom_files, capsys):
    path = _odd_meta_file(tmp_path / "meta_list.safetensors", "[]")
    argv = {
        "info": ["info", path],
        "predict": ["predict", phantom_files["png"], "-c", path],
        "explain": ["explain", path, phantom_files["png"], "--out", tmp_path / "cams"],
        "export": ["export", path, "-o", tmp_path / "m.onnx"],
    }[command]
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err == f"brainmri {command}: error: {path}: checkpoint metadata must be a JSON object, not a list (not a brainmri checkpoint)\n"


def test_info_shows_an_onnx_files_embedded_metadata(onnx_no_suffix, capsys):
    assert main(["info", str(onnx_no_suffix)]) == 0
    out = capsys.readouterr().out
    assert f"ONNX model:   {onnx_no_suffix}" in out
    assert "classes: glioma, meningioma, notumor, pituitary" in out and "seed003_cnn" in out
    assert main(["info", str(onnx_no_suffix), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["class_names"] == ["glioma", "meningioma", "notumor", "pituitary"]
    assert shown["file_format"] == "onnx" and shown["file"] == str(onnx_no_suffix)  # not passed off as the checkpoint


def test_predict_picks_the_onnx_backend_by_content(tiny_ckpt, onnx_no_suffix, phantom_files, tmp_path):
    from brainmri import Classifier

    clf = Classifier.load(onnx_no_suffix, backend="onnx")
    assert clf.backend == "onnx" and clf._model is None
    out = tmp_path / "r.json"
    assert main(["predict", str(phantom_files["png"]), "--backend", "onnx", "-c", str(onnx_no_suffix), "--json", str(out)]) == 0
    got = json.loads(out.read_text())["results"][0]["probabilities"]
    want = Classifier.load(tiny_ckpt).predict(phantom_files["png"]).probabilities
    assert got == pytest.approx(want, abs=1e-4)


def test_a_safetensors_checkpoint_named_onnx_is_still_read_as_a_checkpoint(tiny_ckpt, tmp_path):
    from brainmri import Classifier

    renamed = tmp_path / "really_a_checkpoint.onnx"
    renamed.write_bytes(tiny_ckpt.read_bytes())
    assert Classifier.load(renamed).backend == "torch"


def test_onnx_load_errors_start_with_the_file_name(tmp_path, capsys):
    from brainmri.inference.onnx_backend import OnnxRunner

    fake = tmp_path / "fake.onnx"
    fake.write_bytes(b"\x08\x07\x12garbage that is not a protobuf graph")
    with pytest.raises(CheckpointError, match=rf"^{fake}: "):
        OnnxRunner(fake)
    with pytest.raises(CheckpointError, match=r"^<in-memory ONNX export>: onnxruntime cannot load"):
        OnnxRunner(b"not onnx at all")
    assert main(["predict", str(fake), "--backend", "onnx", "-c", str(fake)]) == 2
    assert capsys.readouterr().err.startswith(f"brainmri predict: error: {fake}: ")


def test_export_never_writes_over_its_input(tiny_ckpt, tmp_path, capsys):
    ck = tmp_path / "ck.safetensors"
    ck.write_bytes(tiny_ckpt.read_bytes())
    before = ck.read_bytes()
    link = tmp_path / "hard_link.safetensors"
    os.link(ck, link)
    for argv in (["-o", str(ck)], ["-o", str(ck), "--force"], ["-o", str(link), "--force"], ["-o", str(tmp_path / "." / "ck.safetensors")]):
        assert main(["export", str(ck), *argv]) == 2, argv
        assert "is the input file" in capsys.readouterr().err
    assert ck.read_bytes() == before
    read_checkpoint(ck)  # still a valid checkpoint


def test_export_replaces_its_own_onnx_file_but_no_other_file_without_force(tiny_ckpt, tmp_path, capsys):
    other = tmp_path / "notes.txt"
    other.write_text("keep me")
    assert main(["export", str(tiny_ckpt), "-o", str(other)]) == 2
    assert capsys.readouterr().err == f"brainmri export: error: -o {other}: the file exists and is not an ONNX model; pass --force to replace it, or give another name\n"
    assert other.read_text() == "keep me"
    onnx_out = tmp_path / "m.onnx"
    assert main(["export", str(tiny_ckpt), "-o", str(onnx_out)]) == 0
    first = onnx_out.stat().st_mtime_ns
    assert main(["export", str(tiny_ckpt), "-o", str(onnx_out)]) == 0  # re-export: fine without --force
    assert onnx_out.stat().st_mtime_ns >= first
    assert main(["export", str(tiny_ckpt), "-o", str(other), "--force"]) == 0
    from brainmri.inference.onnx_backend import read_onnx_meta

    assert read_onnx_meta(other).class_names == ["glioma", "meningioma", "notumor", "pituitary"]


def test_export_bad_output_paths_are_one_line_before_the_export(tiny_ckpt, tmp_path, capsys):
    for out, problem in ((tmp_path, "is a folder; give a file name"), ("/proc/nope/x.onnx", "cannot write in /proc")):
        assert main(["export", str(tiny_ckpt), "-o", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"brainmri export: error: -o {out}: ") and problem in err and err.count("\n") == 1


def test_predict_checks_outputs_before_predicting(tiny_ckpt, phantom_files, tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x")
    img = str(phantom_files["png"])
    cases = [
        (["--json", "/proc/nope/x.json"], "--json /proc/nope/x.json: cannot write in /proc"),
        (["--csv", str(tmp_path)], f"--csv {tmp_path}: is a folder"),
        (["--explain", str(afile)], f"--explain {afile}: is a file, not a folder"),
        (["--json", img], "is the input file"),
        (["--csv", str(tiny_ckpt)], "is the input file"),
    ]
    for flags, message in cases:
        assert main(["predict", img, "-c", str(tiny_ckpt), *flags]) == 2, flags
        cap = capsys.readouterr()
        assert message in cap.err and cap.err.count("\n") == 1, cap.err
        assert "confidence" not in cap.out  # refused before the table: no work done
    assert afile.read_text() == "x"


def test_predict_explain_with_an_onnx_model_is_refused_before_predicting(onnx_no_suffix, phantom_files, tmp_path, capsys):
    out = tmp_path / "cams"
    assert main(["predict", str(phantom_files["png"]), "-c", str(onnx_no_suffix), "--explain", str(out)]) == 2
    cap = capsys.readouterr()
    assert "explanations need the PyTorch checkpoint" in cap.err and "confidence" not in cap.out
    assert not out.exists()


def test_export_of_an_onnx_file_says_it_is_one_already(tiny_ckpt, tmp_path, capsys):
    onnx_out = tmp_path / "m.onnx"
    assert main(["export", str(tiny_ckpt), "-o", str(onnx_out)]) == 0
    capsys.readouterr()
    assert main(["export", str(onnx_out)]) == 2
    assert capsys.readouterr().err == f"brainmri export: error: {onnx_out}: is an ONNX model already; export needs the .safetensors checkpoint it was exported from\n"
