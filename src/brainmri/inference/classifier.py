"""``Classifier``: a trained model with its preprocessing, calibration and OOD guard.

Example:
    >>> from brainmri import Classifier
    >>> clf = Classifier.load("best.safetensors")          # or Classifier.load() for the bundled model
    >>> clf.predict("scan.png").to_dict()["label"]
    >>> [p.to_dict() for p in clf.predict_batch(["a.dcm", "b.nii.gz", array])]

Every prediction carries ``label`` (``None`` when out of distribution), ``probabilities``
(class -> softmax(logits / T), T from the checkpoint), ``confidence`` (the top calibrated
probability; ``None`` too when out of distribution), ``out_of_distribution`` / ``ood_reason`` and ``error``. Volumes (NIfTI,
multi-frame DICOM) also carry per-slice results, the most suspicious slices and, in ``info``,
which slices were read (``slice_indices``, counted from 0) out of ``num_slices``. A volume's
label is the argmax of its slices' *mean* probabilities (out-of-distribution slices left out);
``info["slices_not_normal"]`` counts the slices called something else than the normal class, so a
focal finding on a few slices is not averaged away unseen.

Preprocessing comes from the checkpoint (``meta.preprocess``), never re-typed here. Imports
nothing from ``brainmri.training``. For research use only; not a medical device.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

import brainmri
from brainmri.checkpoint import CheckpointMeta, load_checkpoint, looks_like_onnx, looks_like_safetensors, not_a_checkpoint_file
from brainmri.errors import BrainMRIError, CheckpointError, ConfigError
from brainmri.evaluation.calibration import calibrated_probs
from brainmri.inference.inputs import DecodedInput, decode_item, is_tensor
from brainmri.inference.ood import check_ood
from brainmri.preprocess.pipeline import prepare_image, to_model_input

log = logging.getLogger(__name__)

BUNDLED_MODEL = "tumor4.safetensors"
BACKENDS = ("torch", "onnx")
NORMAL_CLASSES = frozenset({"notumor", "no", "no_tumor", "normal", "healthy", "non_demented", "nondemented"})
TOP_SLICES = 3


@dataclass
class Prediction:
    """One input's result. ``to_dict()`` gives the JSON form used by the CLI and the service."""

    path: str | None
    label: str | None
    probabilities: dict[str, float] = field(default_factory=dict)
    confidence: float | None = None
    out_of_distribution: bool = False
    ood_reason: str | None = None
    error: str | None = None
    slices: list[dict[str, Any]] | None = None  # volumes: per-slice results
    most_suspicious_slices: list[int] | None = None  # volumes: highest non-normal probability first
    info: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if self.slices is None:
            d.pop("slices")
            d.pop("most_suspicious_slices")
        return d

    @classmethod
    def failed(cls, path: str | None, message: str) -> "Prediction":
        return cls(path=path, label=None, error=message)


def _is_one_image(items: Any) -> bool:
    """A PIL image or a tensor passed where a list of inputs belongs."""
    from PIL import Image

    return isinstance(items, Image.Image) or is_tensor(items)


def _check_volume_options(axis: str | int, slices: str) -> None:
    """A bad ``axis`` / ``slices`` is a ConfigError before any input is read (not one error per
    volume, and not ignored when the inputs are 2-D images)."""
    from brainmri.inference.nifti import check_slices_spec, parse_axis

    parse_axis(axis)
    check_slices_spec(slices)


def short_reason(exc: BaseException) -> str:
    """``Type: message`` of an unexpected error, on one line and short."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


def bundled_checkpoint() -> Path:
    """Path of the bundled tumor4 model, or CheckpointError explaining how to pass one."""
    ref = resources.files("brainmri") / "weights" / BUNDLED_MODEL
    if not ref.is_file():
        raise CheckpointError(
            f"the bundled model brainmri/weights/{BUNDLED_MODEL} is missing from this installation; "
            "pass a checkpoint with --checkpoint FILE.safetensors (Python: Classifier.load('FILE.safetensors'))"
        )
    return Path(str(ref))


class TorchRunner:
    """Logits from a PyTorch model: ``inference_mode``, optional channels-last and bf16 autocast."""

    def __init__(self, model: torch.nn.Module, channels_last: bool = True, bf16: bool = False):
        self.model = model.eval()
        self.channels_last = channels_last
        self.bf16 = bf16
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        x = batch.contiguous(memory_format=torch.channels_last) if self.channels_last else batch
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            return self.model(x).float()


class Classifier:
    """A model ready to predict on files, arrays and volumes.

    Build it with :meth:`load`. Thread-safe for concurrent ``predict`` calls.
    """

    def __init__(self, runner: Callable[[torch.Tensor], torch.Tensor], meta: CheckpointMeta, source: str, backend: str, model: torch.nn.Module | None = None):
        self.runner = runner
        self.meta = meta
        self.source = source
        self.backend = backend
        self._model = model
        self._explain_model: torch.nn.Module | None = None  # a copy for CAMs, made on first use
        self._explain_lock = threading.Lock()

    # ------------------------------------------------------------------ construction
    @classmethod
    def load(
        cls,
        path: str | Path | None = None,
        backend: str = "torch",
        bf16: bool = False,
        channels_last: bool = True,
        num_threads: int | None = None,
    ) -> "Classifier":
        """Load a checkpoint (``.safetensors``) or an exported ``.onnx`` model.

        Args:
            path: checkpoint file; ``None`` loads the bundled tumor4 model.
            backend: ``torch`` or ``onnx`` (onnxruntime; a safetensors checkpoint is exported
                in memory, an ``.onnx`` file is used as is).
            bf16: PyTorch backend: bfloat16 autocast (faster on CPUs with AMX/AVX512-BF16).
            channels_last: PyTorch backend: channels-last memory format.
            num_threads: intra-op threads (default: the library's choice).

        Raises:
            CheckpointError: missing, corrupt or mismatching file.
            ConfigError: unknown backend.
        """
        if backend not in BACKENDS:
            raise ConfigError(f"backend={backend!r} is not valid; choose one of: {', '.join(BACKENDS)}")
        if num_threads is not None and (isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 1):
            raise ConfigError(f"num_threads={num_threads!r} is not valid; give a positive integer (or None for the library's choice)")
        if not isinstance(bf16, bool):
            raise ConfigError(f"bf16={bf16!r} is not valid; give True or False")
        if path is not None and not isinstance(path, (str, Path)):
            raise ConfigError(f"path={path!r} is not valid; give the checkpoint's path (str or Path), or None for the bundled model")
        p = Path(path) if path is not None else bundled_checkpoint()
        if not p.is_file():
            raise CheckpointError(not_a_checkpoint_file(p))
        if looks_like_onnx(p) or (p.suffix.lower() == ".onnx" and not looks_like_safetensors(p)):
            from brainmri.inference.onnx_backend import OnnxRunner, read_onnx_meta

            if backend != "onnx":
                log.info("%s is an ONNX model: using the onnx backend", p)
            meta = read_onnx_meta(p)  # first: its errors name the file and say what is wrong
            return cls(OnnxRunner(p, num_threads), meta, str(p), "onnx")
        if num_threads:
            torch.set_num_threads(int(num_threads))
        model, meta = load_checkpoint(p)
        if backend == "onnx":
            from brainmri.inference.onnx_backend import OnnxRunner, onnx_model_bytes

            return cls(OnnxRunner(onnx_model_bytes(model, meta), num_threads), meta, str(p), "onnx", model=model)
        return cls(TorchRunner(model, channels_last=channels_last, bf16=bf16), meta, str(p), "torch", model=model)

    @property
    def class_names(self) -> list[str]:
        return list(self.meta.class_names)

    @property
    def temperature(self) -> float:
        return self.meta.temperature

    @property
    def torch_model(self) -> torch.nn.Module:
        """The PyTorch model (for explanations); not available for a bare ``.onnx`` file."""
        if self._model is None:
            raise BrainMRIError(f"{self.source}: explanations need the PyTorch checkpoint (.safetensors), not an ONNX file")
        return self._model

    # ------------------------------------------------------------------ prediction
    def logits(self, batch: torch.Tensor) -> torch.Tensor:
        """(N, C, S, S) model inputs -> (N, num_classes) float32 logits."""
        return self.runner(batch)

    def prepare(self, gray: np.ndarray) -> torch.Tensor:
        """Gray uint8 (H, W) -> model input (C, S, S), exactly as in training."""
        return to_model_input(prepare_image(gray, self.meta.preprocess), self.meta.preprocess)

    def predict(self, item: Any, name: str | None = None, axis: str | int = "axial", slices: str = "middle") -> Prediction:
        """Predict one input (path, bytes, numpy array, PIL image; DICOM / NIfTI by content).

        Raises:
            BrainMRIError: the input cannot be read (the message names it and the problem).
        """
        _check_volume_options(axis, slices)
        decoded = decode_item(item, name=name, axis=axis, slices=slices)
        return self.predict_decoded([decoded])[0]

    def predict_batch(
        self,
        items: Iterable[Any],
        names: Sequence[str] | None = None,
        batch_size: int = 32,
        axis: str | int = "axial",
        slices: str = "middle",
    ) -> list[Prediction]:
        """Predict many inputs, one result per input in order; a bad one gets its ``error`` and
        the others go on. An input without a path or ``names`` entry is named by its kind and place
        (``<array #2>``).

        Raises:
            ConfigError: ``items`` is one input rather than a collection, ``names`` does not have
                one name per input, ``batch_size`` is not a positive integer, or ``axis`` /
                ``slices`` is not valid (checked before any input is read).
        """
        if isinstance(items, (str, Path, bytes, bytearray, memoryview, np.ndarray)) or _is_one_image(items):
            raise ConfigError(f"predict_batch takes a list of inputs, not one {type(items).__name__}; use predict() for a single input")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size={batch_size!r} is not valid; give a positive integer")
        _check_volume_options(axis, slices)
        try:
            items = list(items)
        except TypeError:
            raise ConfigError(f"predict_batch takes a list of inputs, not {type(items).__name__}") from None
        names = list(names) if names is not None else [None] * len(items)
        if len(names) != len(items):
            raise ConfigError(f"names has {len(names)} entries for {len(items)} inputs; give one name per input (or none)")
        out: list[Prediction] = []
        for start in range(0, len(items), batch_size):
            decoded: list[DecodedInput | Prediction] = []
            for k, (item, name) in enumerate(zip(items[start : start + batch_size], names[start : start + batch_size]), start):
                label = name or (str(item) if isinstance(item, (str, Path)) else f"<{type(item).__name__} #{k}>")
                try:
                    decoded.append(decode_item(item, name=label, axis=axis, slices=slices))
                except BrainMRIError as exc:
                    decoded.append(Prediction.failed(label, str(exc)))
                except Exception as exc:  # noqa: BLE001 - one bad input never stops the batch
                    log.warning("unexpected %s while reading %s", type(exc).__name__, label)
                    decoded.append(Prediction.failed(label, f"{label}: could not be processed ({short_reason(exc)})"))
            prepared: list[list[torch.Tensor]] = []
            for k, d in enumerate(decoded):  # preparing one input (crop, resize) can fail too; the others go on
                if isinstance(d, DecodedInput):
                    try:
                        prepared.append([self.prepare(img) for img in d.images])
                    except BrainMRIError as exc:
                        decoded[k] = Prediction.failed(d.name, str(exc))
                    except Exception as exc:  # noqa: BLE001 - e.g. MemoryError on an absurd image
                        log.warning("unexpected %s while preparing %s", type(exc).__name__, d.name)
                        decoded[k] = Prediction.failed(d.name, f"{d.name}: could not be processed ({short_reason(exc)})")
            good = [d for d in decoded if isinstance(d, DecodedInput)]
            results = iter(self._run(good, prepared, batch_size))
            out.extend(next(results) if isinstance(d, DecodedInput) else d for d in decoded)
        return out

    def predict_decoded(self, decoded: Sequence[DecodedInput], batch_size: int = 32) -> list[Prediction]:
        """Run the model over already-decoded inputs (all their slices, batched)."""
        return self._run(decoded, [[self.prepare(img) for img in d.images] for d in decoded], batch_size)

    def _run(self, decoded: Sequence[DecodedInput], prepared: Sequence[list[torch.Tensor]], batch_size: int) -> list[Prediction]:
        tensors = [t for ts in prepared for t in ts]
        if not tensors:
            return []
        logits = torch.cat([self.logits(torch.stack(tensors[i : i + batch_size])) for i in range(0, len(tensors), max(1, batch_size))])
        probs = calibrated_probs(logits, self.meta.calibration)
        results, k = [], 0
        for d in decoded:
            n = len(d.images)
            modality = d.info.get("modality") if d.info.get("format") == "dicom" else None
            rows = [self._image_result(img, logits[k + j], probs[k + j], d.colorfulness, modality, montage=not d.is_volume)
                    for j, img in enumerate(d.images)]
            k += n
            results.append(self._volume_prediction(d, rows) if d.is_volume else self._image_prediction(d, rows[0]))
        return results

    def _image_result(self, gray: np.ndarray, logits: torch.Tensor, probs: np.ndarray, colour: float | None,
                      modality: str | None = None, montage: bool = True) -> dict[str, Any]:
        ood, reason = check_ood(gray, logits, self.meta.ood, colorfulness_value=colour, image_size=self.meta.preprocess.image_size,
                                modality=modality, montage=montage)
        top = int(probs.argmax())
        return {
            "label": None if ood else self.class_names[top],
            "top_class": self.class_names[top],
            "probabilities": {c: round(float(p), 6) for c, p in zip(self.class_names, probs)},
            "confidence": None if ood else round(float(probs[top]), 6),  # no confidence for what is not classified
            "out_of_distribution": ood,
            "ood_reason": reason,
        }

    def _image_prediction(self, d: DecodedInput, r: dict[str, Any]) -> Prediction:
        return Prediction(
            path=d.name, label=r["label"], probabilities=r["probabilities"], confidence=r["confidence"],
            out_of_distribution=r["out_of_distribution"], ood_reason=r["ood_reason"], info=d.info,
        )

    def _suspicion(self, probs: dict[str, float]) -> float:
        abnormal = [p for c, p in probs.items() if c.lower() not in NORMAL_CLASSES]
        return max(abnormal) if abnormal else max(probs.values())

    def _volume_prediction(self, d: DecodedInput, rows: list[dict[str, Any]]) -> Prediction:
        per_slice = [{"index": int(i), **{k: v for k, v in r.items() if k != "top_class"}} for i, r in zip(d.indices, rows)]
        kept = [s for s in per_slice if not s["out_of_distribution"]]
        pool = kept or per_slice
        mean = {c: round(float(np.mean([s["probabilities"][c] for s in pool])), 6) for c in self.class_names}
        top = max(mean, key=mean.get)
        ranked = sorted(pool, key=lambda s: self._suspicion(s["probabilities"]), reverse=True)
        abnormal = [s for s in kept if s["label"] is not None and s["label"].lower() not in NORMAL_CLASSES]
        info = {**d.info, "slice_indices": [int(i) for i in d.indices], "slices_used": len(kept),
                "slices_out_of_distribution": len(per_slice) - len(kept),
                "slices_not_normal": len(abnormal)}  # the verdict is the mean over slices: these say where it may hide a focal finding
        reason = None
        if not kept:
            reason = f"all {len(per_slice)} selected slices are out of distribution (first: {per_slice[0]['ood_reason']})"
        return Prediction(
            path=d.name, label=top if kept else None, probabilities=mean, confidence=mean[top] if kept else None,
            out_of_distribution=not kept, ood_reason=reason, slices=per_slice,
            most_suspicious_slices=[s["index"] for s in ranked[:TOP_SLICES]] if kept else [], info=info,
        )

    # ------------------------------------------------------------------ explanation
    def explain_image(self, image: Any, method: str = "gradcam", name: str | None = None) -> np.ndarray:
        """Grad-CAM overlay (H, W, 3) uint8 RGB of the predicted class on ``image``: anything
        :meth:`predict` takes (a volume or multi-frame DICOM: its first selected slice, the middle
        one by default). Safe to call from several threads (one CAM runs at a time per process)."""
        from brainmri.explain.cam import explain

        model = self._model_for_explanations()  # an ONNX file cannot explain: said before any decoding
        gray = image if isinstance(image, np.ndarray) and image.ndim == 2 and image.dtype == np.uint8 else decode_item(image, name=name).images[0]
        [result] = explain(model, self.meta, [gray], method=method)
        return result.overlay

    def _model_for_explanations(self) -> torch.nn.Module:
        """A copy of the model for CAMs: their hooks must never see the forward passes of
        :meth:`predict` calls running at the same time in other threads (a server)."""
        import copy

        model = self.torch_model
        with self._explain_lock:
            if self._explain_model is None:
                self._explain_model = copy.deepcopy(model).eval()
        return self._explain_model

    def describe(self) -> dict[str, Any]:
        """Model card facts for ``/v1/model`` and ``brainmri predict --json``."""
        m = self.meta
        return {
            "classes": self.class_names,
            "task": m.task,
            "architecture": m.model.name,
            "image_size": m.preprocess.image_size,
            "backend": self.backend,
            "calibration": m.calibration,
            "ood_guard": {"input_statistics": True, "energy_threshold": (m.ood or {}).get("energy_threshold")},
            "metrics": m.metrics,
            "created": m.created,
            "version": brainmri.__version__,
            "intended_use": "Research and education on brain MRI classification. Not for diagnosis or treatment decisions.",
            "disclaimer": brainmri.DISCLAIMER,
        }
