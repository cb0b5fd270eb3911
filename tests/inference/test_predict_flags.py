"""``brainmri predict`` flag checks: --bf16 is refused for an ONNX model however the onnx
backend is chosen (``--backend onnx``, or implicitly by a ``.onnx`` checkpoint)."""
from __future__ import annotations

import pytest

from brainmri.cli.main import main


@pytest.fixture(scope="module")
def onnx_model(tiny_ckpt, tmp_path_factory):
    pytest.importorskip("onnxruntime")
    out = tmp_path_factory.mktemp("onnx") / "m.onnx"
    assert main(["export", str(tiny_ckpt), "--format", "onnx", "--out", str(out), "--opset", "17"]) == 0
    return out


def test_bf16_with_an_onnx_checkpoint_is_refused(onnx_model, phantom_files, capsys) -> None:
    capsys.readouterr()
    assert main(["predict", str(phantom_files["png"]), "-c", str(onnx_model), "--bf16"]) == 2
    cap = capsys.readouterr()
    assert cap.err.startswith("brainmri predict: error: --bf16 is a torch-backend option;")
    assert str(onnx_model) in cap.err and "ONNX model" in cap.err and cap.err.count("\n") == 1
    assert "glioma" not in cap.out  # refused before anything was predicted


def test_bf16_with_an_onnx_checkpoint_under_another_name_is_refused(onnx_model, phantom_files, tmp_path, capsys) -> None:
    renamed = tmp_path / "model.bin"  # detected by content, as Classifier.load does
    renamed.write_bytes(onnx_model.read_bytes())
    assert main(["predict", str(phantom_files["png"]), "-c", str(renamed), "--bf16"]) == 2
    assert "--bf16 is a torch-backend option" in capsys.readouterr().err


def test_explicit_onnx_backend_with_bf16_is_still_refused(tiny_ckpt, phantom_files, capsys) -> None:
    assert main(["predict", str(phantom_files["png"]), "-c", str(tiny_ckpt), "--backend", "onnx", "--bf16"]) == 2
    assert "--bf16 is a torch-backend option" in capsys.readouterr().err


def test_onnx_checkpoint_without_bf16_and_safetensors_with_bf16_still_run(onnx_model, tiny_ckpt, phantom_files) -> None:
    assert main(["predict", str(phantom_files["png"]), "-c", str(onnx_model)]) == 0
    assert main(["predict", str(phantom_files["png"]), "-c", str(tiny_ckpt), "--bf16"]) == 0
