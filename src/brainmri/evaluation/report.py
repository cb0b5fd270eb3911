"""One self-contained HTML report per evaluation: every figure is an embedded base64 PNG, no
external asset, so the file can be mailed or archived as is.

:func:`build_report` draws the figures from an evaluation result and its predictions
(confusion matrix, ROC, reliability, training curves, explanation gallery per class,
misclassified images, ten predictions) and :func:`render_html` fills
``templates/report.html.j2``.
"""
from __future__ import annotations

import base64
import logging
import time
from pathlib import Path

import numpy as np

import brainmri
from brainmri.evaluation import plots
from brainmri.evaluation.calibration import calibrated_probs, softmax_with_temperature

log = logging.getLogger(__name__)
TEMPLATE = Path(__file__).parent / "templates" / "report.html.j2"
METRIC_ROWS = [
    ("accuracy", "accuracy", True),
    ("macro F1", "macro_f1", True),
    ("macro precision", "precision", False),
    ("macro recall", "recall", False),
    ("Matthews correlation", "mcc", False),
    ("Cohen's kappa", "kappa", False),
    ("ROC-AUC (one-vs-rest, macro)", "roc_auc", False),
    ("loss (NLL, with T)", "loss", False),
    ("ECE with T = 1", "ece_before", False),
    ("ECE with T", "ece", False),
]
MAX_ERRORS = 20


def data_uri(png: bytes | None) -> str | None:
    """``data:image/png;base64,...`` for embedding, or None."""
    return None if png is None else "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _fmt(v, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "n/a"
    return f"{v:.{digits}f}" if isinstance(v, (float, np.floating)) else str(v)


def _pct(v) -> str:
    return "n/a" if v is None or not np.isfinite(v) else f"{100 * v:.2f}%"


def render_html(result: dict, figures: dict) -> str:
    """Fill the report template.

    Args:
        result: :func:`~brainmri.evaluation.evaluate.evaluate_checkpoint` output.
        figures: ``confusion``, ``roc``, ``reliability``, ``predictions``, ``errors``,
            ``curves`` (data URIs or None) and ``explanations`` ({class: [data URI, ...]}).
    """
    import jinja2

    env = jinja2.Environment(autoescape=True, undefined=jinja2.ChainableUndefined)
    template = env.from_string(TEMPLATE.read_text(encoding="utf-8"))
    figs = {"explanations": {}, **figures}
    return template.render(
        r=result, lf=result.get("leak_free"), figs=figs, rows=METRIC_ROWS, fmt=_fmt, pct=_pct,
        generated=time.strftime("%Y-%m-%d %H:%M"), version=brainmri.__version__,
        explain_method=figures.get("explain_method", "gradcam"),
    )


def _title(true: str, pred: str, conf: float, name: str | None = None) -> str:
    return f"true: {true}\npred: {pred} ({conf:.2f})" + (f"\n{_short_name(name)}" if name else "")


def _short_name(name: str, width: int = 26) -> str:
    """The end of a path (the file name matters most), to fit under a tile."""
    return name if len(name) <= width else "…" + name[-(width - 1):]


def explanation_gallery(model, meta, images: list[np.ndarray], labels: np.ndarray, probs: np.ndarray, method: str, per_class: int = 2,
                        files: list[str] | None = None) -> dict[str, list[str]]:
    """Per class, the ``per_class`` most confident correct predictions (else any of the class),
    each as original | heat map | overlay, titled with its file name when ``files`` are given."""
    from brainmri.explain.cam import explain
    from brainmri.preprocess.pipeline import to_model_input

    names = list(meta.class_names)
    pred = probs.argmax(1)
    out: dict[str, list[str]] = {}
    for c, name in enumerate(names):
        idx = np.flatnonzero(labels == c)
        correct = idx[pred[idx] == c]
        pool = correct if correct.size else idx
        chosen = pool[np.argsort(-probs[pool, c], kind="stable")][:per_class]
        out[name] = []
        if chosen.size == 0:
            continue
        tensors = [to_model_input(images[i], meta.preprocess) for i in chosen]
        results = explain(model, meta, tensors, method=method)
        for i, res in zip(chosen, results):
            title = f"true {name} · predicted {res.predicted_class} ({res.prob:.2f}) · {method} for {res.target_class}"
            if files:
                title = f"{_short_name(files[i], 60)}\n{title}"
            out[name].append(data_uri(plots.explanation_png(images[i], res.heatmap, res.overlay, title)))
    return out


def build_report(result: dict, preds, model, meta, out: Path, checkpoint: Path | None = None, leak_free_mask=None,
                 explain_method: str = "gradcam", seed: int = 0, files: list[str] | None = None) -> Path:
    """Draw every figure and write the HTML report to ``out`` (atomically). Returns ``out``.
    ``files`` (one name per scored image, e.g. paths relative to the data root) title the tiles and
    fill the table of misclassified files."""
    from brainmri.outputs import write_output

    names = list(meta.class_names)
    labels = preds.labels
    probs_t = calibrated_probs(preds.logits, meta.calibration)
    probs_1 = softmax_with_temperature(preds.logits, 1.0)
    pred = probs_t.argmax(1)
    conf = probs_t.max(1)
    figs: dict = {"explain_method": explain_method}
    figs["confusion"] = data_uri(plots.confusion_matrix_png(result["confusion_matrix"], names))
    figs["roc"] = data_uri(plots.roc_png(labels, probs_t, names))
    figs["reliability"] = data_uri(plots.reliability_png(probs_1, probs_t, labels, temperature=meta.temperature, top_label=bool((meta.calibration or {}).get("top_label"))))
    csv_path = checkpoint.parent / "metrics.csv" if checkpoint is not None else None
    if csv_path is not None and csv_path.is_file():
        try:
            figs["curves"] = data_uri(plots.training_curves_png(csv_path))
        except (OSError, ValueError, KeyError) as exc:
            log.warning("%s: cannot plot training curves (%s)", csv_path, exc)

    def name_of(i):
        return files[i] if files else None

    wrong = np.flatnonzero(pred != labels)
    figs["error_rows"] = [{"path": name_of(i) or f"#{i}", "true": names[labels[i]], "predicted": names[pred[i]], "confidence": float(conf[i])}
                          for i in wrong[np.argsort(-conf[wrong], kind="stable")]]
    wrong = wrong[np.argsort(-conf[wrong], kind="stable")][:MAX_ERRORS]
    if wrong.size:
        figs["errors"] = data_uri(plots.image_grid_png(
            [preds.images[i] for i in wrong], [_title(names[labels[i]], names[pred[i]], conf[i], name_of(i)) for i in wrong], ncols=5))
    rng = np.random.default_rng(seed)
    ten = np.sort(rng.choice(len(labels), size=min(10, len(labels)), replace=False)) if len(labels) else np.array([], int)
    figs["predictions"] = data_uri(plots.image_grid_png(
        [preds.images[i] for i in ten], [_title(names[labels[i]], names[pred[i]], conf[i], name_of(i)) for i in ten],
        colors=["green" if pred[i] == labels[i] else "red" for i in ten], ncols=5))
    try:
        figs["explanations"] = explanation_gallery(model, meta, preds.images, labels, probs_t, explain_method, files=files)
    except Exception as exc:  # noqa: BLE001 - a failed explanation must not lose the report
        log.warning("explanation gallery failed: %s: %s", type(exc).__name__, exc)
        figs["explanations"] = {}
    html = render_html(result, figs)
    write_output(out, html.encode("utf-8"))
    return out
