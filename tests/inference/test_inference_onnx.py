"""ONNX export: parity with PyTorch, dynamic batch, embedded metadata, onnx backend."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from inference_helpers import make_checkpoint, phantom

from brainmri import Classifier
from brainmri.checkpoint import load_checkpoint
from brainmri.cli.main import main
from brainmri.errors import CheckpointError
from brainmri.inference.onnx_backend import OnnxRunner, read_onnx_meta


@pytest.mark.parametrize("arch", ["seed003_cnn", "resnet18"])
def test_export_parity_and_dynamic_batch(tmp_path, arch: str, capsys) -> None:
    ckpt = make_checkpoint(tmp_path / f"{arch}.safetensors", name=arch, size=64)
    out = tmp_path / f"{arch}.onnx"
    assert main(["export", str(ckpt), "--format", "onnx", "--out", str(out), "--opset", "17"]) == 0
    assert "max |logit difference|" in capsys.readouterr().out
    model, meta = load_checkpoint(ckpt)
    runner = OnnxRunner(out)
    for n in (1, 5):
        x = torch.randn(n, 1, 64, 64, generator=torch.Generator().manual_seed(n))
        with torch.inference_mode():
            ref = model(x)
        got = runner(x)
        assert got.shape == (n, 4)
        assert float((ref - got).abs().max()) < 1e-4
    embedded = read_onnx_meta(out)
    assert embedded.class_names == meta.class_names and embedded.preprocess == meta.preprocess


def test_onnx_backend_matches_torch(tiny_ckpt, tmp_path) -> None:
    img = phantom(2, seed=11)
    torch_probs = Classifier.load(tiny_ckpt).predict(img).probabilities
    in_memory = Classifier.load(tiny_ckpt, backend="onnx")
    assert in_memory.backend == "onnx"
    out = tmp_path / "m.onnx"
    assert main(["export", str(tiny_ckpt), "--out", str(out)]) == 0
    from_file = Classifier.load(out)
    assert from_file.backend == "onnx" and from_file.class_names == in_memory.class_names
    for clf in (in_memory, from_file):
        probs = clf.predict(img).probabilities
        np.testing.assert_allclose([probs[c] for c in torch_probs], list(torch_probs.values()), atol=1e-5)


def test_onnx_file_without_metadata_is_refused(tmp_path) -> None:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    onnx.save(helper.make_model(graph), tmp_path / "plain.onnx")
    with pytest.raises(CheckpointError, match="no brainmri metadata"):
        Classifier.load(tmp_path / "plain.onnx")


def test_explain_needs_torch_weights(tiny_ckpt, tmp_path) -> None:
    out = tmp_path / "m.onnx"
    main(["export", str(tiny_ckpt), "--out", str(out)])
    with pytest.raises(Exception, match="PyTorch checkpoint"):
        Classifier.load(out).explain_image(phantom(0))
