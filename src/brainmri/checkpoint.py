"""Checkpoints: safetensors weights with the JSON metadata inside the same file.

The metadata carries everything prediction needs, so nothing is re-typed at serving time:
architecture (``model``), ``class_names``, ``task``, ``preprocess`` (image size, crop,
normalisation), ``calibration`` (temperature, optional top-label scaling), ``ood`` (guard thresholds), plus the training
config, metrics, data fingerprint and library versions.

Loading never unpickles anything: safetensors holds raw tensors and the metadata is JSON. A
SHA-256 over the tensors detects corruption. Writes are atomic (temp file, fsync, rename).
Used by both training and inference; imports nothing from training.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from brainmri.config import ModelConfig, PreprocessConfig, from_dict, to_dict
from brainmri.errors import CheckpointError

FORMAT = "brainmri-checkpoint"
FORMAT_VERSION = 1
META_KEY = "brainmri"


#: model-config fields older checkpoints carry that no longer mean anything (ignored on load)
RETIRED_MODEL_FIELDS = frozenset({"aux_tumor_head"})


@dataclass
class CheckpointMeta:
    """Everything about a trained model except its weights."""

    model: ModelConfig
    class_names: list[str]
    preprocess: PreprocessConfig
    task: str | None = None  # tumor4 | tumor2 | alzheimer4 | custom
    calibration: dict[str, Any] = field(default_factory=lambda: {"temperature": 1.0})
    ood: dict[str, Any] | None = None
    train: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)  # dataset root, fingerprint, split counts
    metrics: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    created: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def temperature(self) -> float:
        return float((self.calibration or {}).get("temperature", 1.0))

    def to_json(self) -> dict[str, Any]:
        d = to_dict(self)
        d["format"] = FORMAT
        d["format_version"] = FORMAT_VERSION
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any], where: str = "") -> "CheckpointMeta":
        if not isinstance(d, dict):
            raise CheckpointError(f"{where}: checkpoint metadata must be a JSON object, not a {_json_kind(d)} (not a brainmri checkpoint)")
        if d.get("format") != FORMAT:
            raise CheckpointError(f"{where}: not a brainmri checkpoint (format={d.get('format')!r})")
        if int(d.get("format_version", 0)) > FORMAT_VERSION:
            raise CheckpointError(f"{where}: checkpoint format {d.get('format_version')} is newer than this brainmri supports ({FORMAT_VERSION}); upgrade brainmri")
        _check_calibration(d.get("calibration"), where)
        try:
            return cls(
                model=from_dict(ModelConfig, {k: v for k, v in d["model"].items() if k not in RETIRED_MODEL_FIELDS}),
                class_names=list(d["class_names"]),
                preprocess=from_dict(PreprocessConfig, d["preprocess"]),
                task=d.get("task"),
                calibration=d.get("calibration") or {"temperature": 1.0},
                ood=d.get("ood"),
                train=d.get("train") or {},
                data=d.get("data") or {},
                metrics=d.get("metrics") or {},
                versions=d.get("versions") or {},
                created=d.get("created", ""),
                extra=d.get("extra") or {},
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise CheckpointError(f"{where}: checkpoint metadata is incomplete or invalid ({type(exc).__name__}: {exc})") from None


def _finite_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _check_calibration(cal: Any, where: str) -> None:
    """Refuse calibration metadata prediction could not use (it would fail, or mislead, on every image)."""
    if cal is None:
        return
    if not isinstance(cal, dict):
        raise CheckpointError(f"{where}: checkpoint calibration must be a JSON object, not a {_json_kind(cal)}")
    t = cal.get("temperature", 1.0)
    if not _finite_number(t) or t <= 0:
        raise CheckpointError(f"{where}: checkpoint calibration temperature must be a positive number, got {t!r}")
    top = cal.get("top_label")
    if top is None:
        return
    if not isinstance(top, dict) or not _finite_number(top.get("a")) or not _finite_number(top.get("b")) or top["a"] <= 0:
        raise CheckpointError(f"{where}: checkpoint calibration top_label must be {{\"a\": positive number, \"b\": number}}, got {top!r}")


def _json_kind(value: Any) -> str:
    """The JSON name of a decoded value's type, for messages."""
    if isinstance(value, list):
        return "list"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return "null" if value is None else type(value).__name__


def library_versions() -> dict[str, str]:
    import brainmri

    out = {"brainmri": brainmri.__version__, "torch": torch.__version__, "python": platform.python_version()}
    for mod in ("timm", "lightning", "numpy"):
        try:
            out[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001
            pass
    return out


def tensors_sha256(state: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for k in sorted(state):
        t = state[k].detach().contiguous().cpu()
        h.update(k.encode())
        h.update(str(t.dtype).encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a crash leaves either the old file or the new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent))
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; the file gets the mode a plain open() would give
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError) and exc.errno is not None and not exc.filename:  # a full disk names the file, not "(unknown path)"
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise


def save_checkpoint(path: str | Path, model: nn.Module, meta: CheckpointMeta, dtype: torch.dtype | None = None) -> Path:
    """Save ``model``'s weights and ``meta`` to one ``.safetensors`` file, atomically.

    Args:
        dtype: store floating tensors in this dtype (e.g. ``torch.float16`` for a bundled model).
    """
    from safetensors.torch import save

    state = {}
    for k, v in model.state_dict().items():
        v = v.detach().cpu()
        if dtype is not None and v.is_floating_point():
            v = v.to(dtype)
        state[k] = v.contiguous()
    if not meta.created:
        meta.created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    if not meta.versions:
        meta.versions = library_versions()
    payload = meta.to_json()
    payload["sha256"] = tensors_sha256(state)
    atomic_write_bytes(path, save(state, metadata={META_KEY: json.dumps(payload)}))
    return Path(path)


def not_a_checkpoint_file(p: Path) -> str:
    """Why ``p``, which is not a regular file, cannot be a checkpoint (one line naming it)."""
    if p.is_dir():
        return f"{p}: is a folder, not a checkpoint file (a run folder holds best.safetensors)"
    return f"{p}: is not a regular file (a device or FIFO), not a checkpoint" if p.exists() else f"{p}: checkpoint file not found"


def read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], CheckpointMeta]:
    """Read weights and metadata, verifying format and checksum. No model is built."""
    from safetensors import safe_open

    p = Path(path)
    if not p.is_file():
        raise CheckpointError(not_a_checkpoint_file(p))
    try:
        with open(p, "rb") as f:
            head = f.read(8)
        if len(head) < 8:
            raise ValueError("file too short")
        header_len = int.from_bytes(head, "little")
        if header_len <= 0 or header_len > min(100_000_000, p.stat().st_size):
            raise ValueError("bad header length")
        state = {}
        with safe_open(str(p), framework="pt") as f:
            raw = (f.metadata() or {}).get(META_KEY)
            for k in f.keys():
                state[k] = f.get_tensor(k)
    except CheckpointError:
        raise
    except Exception as exc:  # noqa: BLE001 - safetensors raises several types on garbage
        if looks_like_onnx(p):
            raise CheckpointError(
                f"{p}: is an ONNX model, not a brainmri .safetensors checkpoint; this command needs the checkpoint it was exported from"
            ) from None
        hint = " (it looks like a pickle-based .pt/.ckpt file, which brainmri refuses to load)" if _looks_like_pickle(p) else ""
        raise CheckpointError(f"{p}: not a valid safetensors checkpoint{hint}: {exc}") from None
    if raw is None:
        raise CheckpointError(f"{p}: safetensors file has no brainmri metadata (not a brainmri checkpoint)")
    try:
        payload = json.loads(raw)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise CheckpointError(f"{p}: checkpoint metadata is not valid JSON ({exc})") from None
    meta = CheckpointMeta.from_json(payload, where=str(p))
    expected = payload.get("sha256")
    if expected and tensors_sha256(state) != expected:
        raise CheckpointError(f"{p}: checksum mismatch: the weights are corrupt")
    return state, meta


def looks_like_onnx(path: str | Path) -> bool:
    """True when the file's first bytes are those of a serialized ONNX ``ModelProto`` (field 1,
    ``ir_version``, as a small varint, then another known top-level field), whatever its name.
    A safetensors file starts with an 8-byte header length followed by ``{``: never this."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError:
        return False
    # 0x08: field 1 varint; ir_version 1..127; then producer_name (0x12), producer_version (0x1a),
    # domain (0x22), model_version (0x28), doc_string (0x32), graph (0x3a) or opset_import (0x42)
    return len(head) >= 3 and head[0] == 0x08 and 0 < head[1] < 0x80 and head[2] in (0x12, 0x1A, 0x22, 0x28, 0x32, 0x3A, 0x42)


def looks_like_safetensors(path: str | Path) -> bool:
    """True when the file starts like a safetensors file: an 8-byte header length, then ``{``."""
    try:
        with open(path, "rb") as f:
            head = f.read(9)
    except OSError:
        return False
    return len(head) == 9 and head[8:9] == b"{" and 0 < int.from_bytes(head[:8], "little") <= 100_000_000


def _looks_like_pickle(p: Path) -> bool:
    try:
        with open(p, "rb") as f:
            start = f.read(4)
    except OSError:
        return False
    return start[:2] in (b"\x80\x02", b"\x80\x04", b"\x80\x05") or start[:2] == b"PK"


def build_model_from_meta(meta: CheckpointMeta) -> nn.Module:
    from brainmri.models import create_model

    m = meta.model
    return create_model(
        m.name,
        num_classes=meta.num_classes,
        in_chans=meta.preprocess.in_chans,
        pretrained=False,
        pretrained_weights=None,
        head=m.head,
        head_hidden=m.head_hidden,
        drop_rate=m.drop_rate,
        image_size=meta.preprocess.image_size,
    )


def load_checkpoint(path: str | Path, expect_classes: list[str] | None = None, expect_model: str | None = None) -> tuple[nn.Module, CheckpointMeta]:
    """Build the model described by a checkpoint and load its weights (fp32, eval mode).

    Raises:
        CheckpointError: missing/corrupt/unsafe file, or weights that do not fit the architecture
            or the expected classes.
    """
    state, meta = read_checkpoint(path)
    if expect_classes is not None and list(expect_classes) != meta.class_names:
        raise CheckpointError(f"{path}: checkpoint classes {meta.class_names} do not match the expected {list(expect_classes)}")
    if expect_model is not None and expect_model != meta.model.name:
        raise CheckpointError(f"{path}: checkpoint architecture {meta.model.name} does not match the requested {expect_model}")
    model = build_model_from_meta(meta)
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    bad_shape = [k for k in own if k in state and own[k].shape != state[k].shape]
    if missing or unexpected or bad_shape:
        detail = "; ".join(
            s
            for s in (
                f"missing {len(missing)} tensors (e.g. {missing[0]})" if missing else "",
                f"{len(unexpected)} unexpected tensors (e.g. {unexpected[0]})" if unexpected else "",
                f"shape mismatch for {bad_shape[0]}: {tuple(state[bad_shape[0]].shape)} vs {tuple(own[bad_shape[0]].shape)}" if bad_shape else "",
            )
            if s
        )
        raise CheckpointError(f"{path}: weights do not match architecture {meta.model.name} with {meta.num_classes} classes: {detail}")
    broken = next((k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()), None)
    if broken is not None:
        raise CheckpointError(f"{path}: weights contain NaN or infinite values (e.g. {broken}): the training run that wrote it diverged; retrain with a lower --lr")
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()})
    model.eval()
    return model, meta
