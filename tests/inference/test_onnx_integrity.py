"""ONNX files are checked like checkpoints: damaged weights and metadata that does not fit the
graph are refused by name; export never replaces a file brainmri did not export and writes
nothing when its parity check fails."""
from __future__ import annotations

import json

import pytest
from inference_helpers import phantom

from brainmri import Classifier
from brainmri.checkpoint import META_KEY
from brainmri.cli.main import main
from brainmri.errors import CheckpointError
from brainmri.inference import onnx_backend


@pytest.fixture(scope="module")
def exported(tiny_ckpt, tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx_integrity") / "m.onnx"
    assert main(["export", str(tiny_ckpt), "-o", str(out)]) == 0
    return out


def _edited(src, dst, edit):
    import onnx

    proto = onnx.load(str(src))
    edit(proto)
    onnx.save(proto, str(dst))
    return dst


def test_damaged_weights_are_refused(exported, tmp_path):
    from onnx import numpy_helper

    def damage(proto):
        t = max(proto.graph.initializer, key=lambda t: len(t.raw_data) or len(t.float_data))
        arr = numpy_helper.to_array(t).copy()
        arr.flat[::7] = 3.0
        t.CopyFrom(numpy_helper.from_array(arr, t.name))

    bad = _edited(exported, tmp_path / "damaged.onnx", damage)
    with pytest.raises(CheckpointError, match="checksum mismatch: the ONNX weights are corrupt"):
        Classifier.load(bad, backend="onnx")
    assert Classifier.load(exported, backend="onnx").predict(phantom(0, 64)).label is not None


def test_metadata_that_does_not_fit_the_graph_is_refused(exported, tmp_path, capsys):
    def two_classes(proto):
        for p in proto.metadata_props:
            if p.key == META_KEY:
                meta = json.loads(p.value)
                meta["class_names"] = ["a", "b"]
                p.value = json.dumps(meta)

    bad = _edited(exported, tmp_path / "two.onnx", two_classes)
    assert main(["predict", str(tmp_path / "x.png"), "-c", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "outputs 4 logits but its metadata names 2 classes" in err and err.count("\n") == 1

    def bigger(proto):
        for p in proto.metadata_props:
            if p.key == META_KEY:
                meta = json.loads(p.value)
                meta["preprocess"]["image_size"] = 224
                p.value = json.dumps(meta)

    with pytest.raises(CheckpointError, match="metadata and graph disagree"):
        Classifier.load(_edited(exported, tmp_path / "224.onnx", bigger), backend="onnx")


def test_export_keeps_a_foreign_onnx_file_unless_force(tiny_ckpt, tmp_path, capsys):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    foreign = tmp_path / "theirs.onnx"
    onnx.save(helper.make_model(graph, producer_name="someone-else"), str(foreign))
    before = foreign.read_bytes()
    assert main(["export", str(tiny_ckpt), "-o", str(foreign)]) == 2
    assert "an ONNX model brainmri did not export" in capsys.readouterr().err and foreign.read_bytes() == before
    assert main(["export", str(tiny_ckpt), "-o", str(foreign), "--force"]) == 0
    capsys.readouterr()
    assert main(["export", str(tiny_ckpt), "-o", str(foreign)]) == 0  # now its own earlier export: replaced


def test_a_failed_parity_check_writes_nothing(tiny_ckpt, exported, tmp_path, capsys, monkeypatch):
    target = tmp_path / "good.onnx"
    target.write_bytes(exported.read_bytes())
    before = target.read_bytes()
    monkeypatch.setattr(onnx_backend, "max_logit_difference", lambda model, runner, batch: 0.5)
    assert main(["export", str(tiny_ckpt), "-o", str(target)]) == 2
    err = capsys.readouterr().err
    assert "differs from PyTorch by 5.00e-01" in err and "nothing was written (the earlier file there is kept)" in err
    assert target.read_bytes() == before


def test_an_explicit_torch_backend_for_an_onnx_file_is_refused(exported, tmp_path, capsys):
    from PIL import Image

    scan = tmp_path / "s.png"
    Image.fromarray(phantom(0, 64)).save(scan)
    assert main(["predict", str(scan), "-c", str(exported), "--backend", "torch"]) == 2
    assert "--backend torch:" in capsys.readouterr().err
    assert main(["predict", str(scan), "-c", str(exported)]) == 0  # no flag: the file decides
