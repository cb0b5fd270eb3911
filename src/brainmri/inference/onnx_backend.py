"""ONNX export and an onnxruntime backend.

``export_onnx`` writes a model with a dynamic batch dimension (input ``input`` (N, C, S, S),
output ``logits`` (N, num_classes)) and embeds the checkpoint metadata JSON in the ONNX
``metadata_props`` under ``brainmri``, so an ``.onnx`` file alone knows its classes,
preprocessing, calibration and OOD thresholds. The TorchScript-based exporter is tried first
(fast, no extra dependency); the dynamo exporter (needs ``onnxscript``) is the fallback.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

import brainmri
from brainmri.checkpoint import META_KEY, CheckpointMeta, atomic_write_bytes
from brainmri.errors import CheckpointError

INPUT_NAME = "input"
OUTPUT_NAME = "logits"
DEFAULT_OPSET = 17
WEIGHTS_SHA_KEY = "brainmri_weights_sha256"  # checksum of the initializers: damaged weights are refused, as safetensors' are


def weights_sha256(proto) -> str:
    """SHA-256 over the graph's initializers (name, dtype, shape, values), in graph order."""
    import hashlib

    from onnx import numpy_helper

    h = hashlib.sha256()
    for t in proto.graph.initializer:
        arr = numpy_helper.to_array(t)
        h.update(f"{t.name}|{arr.dtype}|{arr.shape}\n".encode())
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


def _export_to_bytes(model: nn.Module, example: torch.Tensor, opset: int) -> bytes:
    errors = []
    for dynamo in (False, True):
        buf = io.BytesIO()
        kwargs = (
            {"dynamic_shapes": ({0: torch.export.Dim("batch", min=1, max=4096)},)}
            if dynamo
            else {"dynamic_axes": {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}}}
        )
        try:
            with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    model, (example,), buf, dynamo=dynamo, opset_version=opset,
                    input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], **kwargs,
                )
            return buf.getvalue()
        except Exception as exc:  # noqa: BLE001 - exporter failures come in many types
            errors.append(f"{'dynamo' if dynamo else 'torchscript'} exporter: {type(exc).__name__}: {str(exc)[:200]}")
    raise CheckpointError(f"ONNX export of {type(model).__name__} failed ({'; '.join(errors)})")


def onnx_model_bytes(model: nn.Module, meta: CheckpointMeta, opset: int = DEFAULT_OPSET) -> bytes:
    """Export ``model`` (fp32, eval) to ONNX bytes with ``meta`` embedded."""
    import onnx

    model = model.float().eval()
    s = int(meta.preprocess.image_size)
    example = torch.zeros(2, int(meta.preprocess.in_chans), s, s)
    proto = onnx.load_from_string(_export_to_bytes(model, example, opset))
    for key, value in ((META_KEY, json.dumps(meta.to_json())), ("disclaimer", brainmri.DISCLAIMER), ("producer", f"brainmri {brainmri.__version__}"),
                       (WEIGHTS_SHA_KEY, weights_sha256(proto))):
        prop = proto.metadata_props.add()
        prop.key, prop.value = key, value
    return proto.SerializeToString()


def export_onnx(model: nn.Module, meta: CheckpointMeta, out: str | Path, opset: int = DEFAULT_OPSET) -> Path:
    """Write ``model`` to ``out`` (atomically) as ONNX with the metadata embedded."""
    data = onnx_model_bytes(model, meta, opset)
    atomic_write_bytes(out, data)
    return Path(out)


def _dims(value_info) -> list:
    return [d.dim_value if d.HasField("dim_value") else None for d in value_info.type.tensor_type.shape.dim]


def _check_graph(proto, meta: CheckpointMeta, where: str) -> None:
    """The graph must be the model its metadata describes: the input brainmri feeds, (N, C, S, S)
    as preprocessed, and one logit per class; and its weights must be the ones exported."""
    inputs = {i.name: _dims(i) for i in proto.graph.input}
    outputs = {o.name: _dims(o) for o in proto.graph.output}
    if INPUT_NAME not in inputs or OUTPUT_NAME not in outputs:
        raise CheckpointError(f"{where}: the ONNX graph has inputs {sorted(inputs)} and outputs {sorted(outputs)}, not brainmri's "
                              f"'{INPUT_NAME}' -> '{OUTPUT_NAME}': its metadata belongs to another model")
    c, s = int(meta.preprocess.in_chans), int(meta.preprocess.image_size)
    dims = inputs[INPUT_NAME]
    if len(dims) != 4 or any(want is not None and got is not None and got != want for got, want in zip(dims[1:], (c, s, s))):
        raise CheckpointError(f"{where}: the ONNX graph takes input {dims} but its metadata says (N, {c}, {s}, {s}): metadata and graph disagree")
    k = outputs[OUTPUT_NAME][-1] if outputs[OUTPUT_NAME] else None
    if k is not None and k != len(meta.class_names):
        raise CheckpointError(f"{where}: the ONNX graph outputs {k} logits but its metadata names {len(meta.class_names)} classes "
                              f"({', '.join(meta.class_names)}): metadata and graph disagree")
    props = {p.key: p.value for p in proto.metadata_props}
    if WEIGHTS_SHA_KEY in props and weights_sha256(proto) != props[WEIGHTS_SHA_KEY]:
        raise CheckpointError(f"{where}: checksum mismatch: the ONNX weights are corrupt (export the checkpoint again)")


def read_onnx_meta(source: str | Path | bytes, check: bool = True) -> CheckpointMeta:
    """The brainmri metadata embedded in an ONNX file (or its bytes); with ``check``, refused
    (:class:`CheckpointError`) when the graph does not match it or its weights are damaged."""
    import onnx

    where = "<onnx bytes>" if isinstance(source, (bytes, bytearray)) else str(source)
    try:
        proto = onnx.load_from_string(bytes(source)) if isinstance(source, (bytes, bytearray)) else onnx.load(str(source), load_external_data=False)
    except Exception as exc:  # noqa: BLE001
        raise CheckpointError(f"{where}: not a readable ONNX model ({type(exc).__name__})") from None
    props = {p.key: p.value for p in proto.metadata_props}
    if META_KEY not in props:
        raise CheckpointError(f"{where}: ONNX model has no brainmri metadata (export it with `brainmri export`)")
    try:
        payload = json.loads(props[META_KEY])
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{where}: brainmri metadata in the ONNX model is not valid JSON ({exc})") from None
    meta = CheckpointMeta.from_json(payload, where=where)
    if check:
        _check_graph(proto, meta, where)
    return meta


def onnx_weight_count(path: str | Path) -> int:
    """Number of weight elements (initializers) of an ONNX file (call after ``read_onnx_meta``)."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    return sum(int(np.prod(t.dims)) for t in proto.graph.initializer)


class OnnxRunner:
    """Logits from an ONNX model through onnxruntime (CPU). Thread-safe like the session."""

    def __init__(self, model: str | Path | bytes, num_threads: int | None = None, name: str | None = None):
        import onnxruntime as ort

        where = name or ("<in-memory ONNX export>" if isinstance(model, (bytes, bytearray)) else str(model))
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        threads = num_threads or int(os.environ.get("BRAINMRI_NUM_THREADS", "0") or 0)
        if threads:
            opts.intra_op_num_threads = threads
        opts.log_severity_level = 3
        source = bytes(model) if isinstance(model, (bytes, bytearray)) else str(model)
        try:
            self.session = ort.InferenceSession(source, sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001
            raise CheckpointError(f"{where}: onnxruntime cannot load the model ({type(exc).__name__}: {str(exc)[:200]})") from None

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        x = np.ascontiguousarray(batch.detach().float().numpy())
        (logits,) = self.session.run([OUTPUT_NAME], {INPUT_NAME: x})
        return torch.from_numpy(np.asarray(logits, dtype=np.float32))


def max_logit_difference(model: nn.Module, runner: OnnxRunner, batch: torch.Tensor) -> float:
    """Max |logits_torch - logits_onnx| on ``batch`` (parity check)."""
    with torch.inference_mode():
        ref = model.float().eval()(batch)
    return float((ref - runner(batch)).abs().max())
