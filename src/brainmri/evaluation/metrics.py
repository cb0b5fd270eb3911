"""Classification metrics in plain numpy (no scikit-learn).

Everything is computed from a confusion matrix (rows = true class, columns = prediction), so
the formulas are the textbook ones and can be checked by hand. Conventions follow
scikit-learn's: a ratio with a zero denominator is 0 (``zero_division=0``); macro averages
weigh every class equally, weighted averages by support; ROC-AUC is one-vs-rest and undefined
(``None``) for a class with no positive or no negative sample.

The ``*_score`` functions accept batches of label vectors (``(..., N)``) so that
:func:`brainmri.evaluation.bootstrap.bootstrap_ci` can evaluate a thousand resamples at once.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

EPS = 1e-12


def confusion_matrix(y_true, y_pred, num_classes: int) -> np.ndarray:
    """Counts ``C[..., i, j]`` of samples with true class ``i`` predicted as ``j``.

    Args:
        y_true, y_pred: integer arrays of shape (..., N) (leading axes are batches).
        num_classes: K.

    Returns:
        int64 array (..., K, K).
    """
    t = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(y_pred, dtype=np.int64)
    if t.shape != p.shape:
        raise ValueError(f"y_true {t.shape} and y_pred {p.shape} differ in shape")
    k = int(num_classes)
    batch = t.shape[:-1]
    nb = int(np.prod(batch)) if batch else 1
    flat = (t * k + p).reshape(nb, -1) + (np.arange(nb, dtype=np.int64) * k * k)[:, None]
    counts = np.bincount(flat.ravel(), minlength=nb * k * k)
    return counts.reshape(*batch, k, k)


def _div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return np.divide(a, b, out=np.zeros(np.broadcast(a, b).shape), where=b != 0)


def per_class_prf(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall, F1 and support per class from confusion matrices (..., K, K)."""
    tp = np.diagonal(cm, axis1=-2, axis2=-1).astype(np.float64)
    support = cm.sum(axis=-1).astype(np.float64)  # true counts (row sums)
    predicted = cm.sum(axis=-2).astype(np.float64)  # predicted counts (column sums)
    precision = _div(tp, predicted)
    recall = _div(tp, support)
    f1 = _div(2 * precision * recall, precision + recall)
    return precision, recall, f1, support


def mcc_from_cm(cm: np.ndarray) -> np.ndarray:
    """Multiclass Matthews correlation coefficient (Gorodkin's R_K); 0 when undefined."""
    cm = cm.astype(np.float64)
    s = cm.sum(axis=(-2, -1))
    c = np.trace(cm, axis1=-2, axis2=-1)
    t = cm.sum(axis=-1)
    p = cm.sum(axis=-2)
    cov_tp = c * s - (t * p).sum(-1)
    cov_pp = s**2 - (p * p).sum(-1)
    cov_tt = s**2 - (t * t).sum(-1)
    return _div(cov_tp, np.sqrt(cov_pp * cov_tt))


def kappa_from_cm(cm: np.ndarray) -> np.ndarray:
    """Cohen's kappa (unweighted); 0 when chance agreement is 1 and agreement is not perfect,
    1 when both are 1."""
    cm = cm.astype(np.float64)
    s = cm.sum(axis=(-2, -1))
    po = _div(np.trace(cm, axis1=-2, axis2=-1), s)
    pe = _div((cm.sum(-1) * cm.sum(-2)).sum(-1), s**2)
    k = _div(po - pe, 1.0 - pe)
    return np.where(np.isclose(pe, 1.0), np.where(np.isclose(po, 1.0), 1.0, 0.0), k)


def _num_classes(*arrays) -> int:
    return int(max(int(np.max(a)) for a in arrays if np.size(a)) + 1) if any(np.size(a) for a in arrays) else 1


def accuracy_score(y_true, y_pred) -> np.ndarray | float:
    """Fraction of exact matches; works on batches (..., N)."""
    t, p = np.asarray(y_true), np.asarray(y_pred)
    return (t == p).mean(axis=-1)


def macro_f1_score(y_true, y_pred, num_classes: int | None = None, classes: Sequence[int] | None = None,
                   present_only: bool = False) -> np.ndarray | float:
    """Unweighted mean of per-class F1 over all classes (or over the indices ``classes``, e.g.
    those present in an evaluation set); works on batches (..., N). ``present_only`` leaves out,
    row by row, the classes with no true sample in that row: a bootstrap resample that happens to
    miss a rare class is then scored as the full set is, not with an F1 of 0 for that class."""
    k = num_classes or _num_classes(y_true, y_pred)
    _, _, f1, support = per_class_prf(confusion_matrix(y_true, y_pred, k))
    if classes is not None:
        f1, support = f1[..., list(classes)], support[..., list(classes)]
    if not present_only:
        return f1.mean(axis=-1)
    present = support > 0
    return (f1 * present).sum(axis=-1) / np.maximum(present.sum(axis=-1), 1)


def roc_curve(y_binary, scores) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Binary ROC curve: ``(fpr, tpr, thresholds)``, one point per distinct score, starting at (0, 0)."""
    y = np.asarray(y_binary, dtype=bool)
    s = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last_of_run = np.r_[np.flatnonzero(np.diff(s)), y.size - 1] if y.size else np.array([], dtype=int)
    tps = np.cumsum(y)[last_of_run]
    fps = (last_of_run + 1) - tps
    pos, neg = max(int(y.sum()), 1), max(int((~y).sum()), 1)
    fpr = np.r_[0.0, fps / neg]
    tpr = np.r_[0.0, tps / pos]
    thresholds = np.r_[np.inf, s[last_of_run]]
    return fpr, tpr, thresholds


def roc_auc(y_binary, scores) -> float | None:
    """Area under the ROC curve (Mann-Whitney U with tied scores counting one half).
    ``None`` when only one class is present."""
    y = np.asarray(y_binary, dtype=bool)
    s = np.asarray(scores, dtype=np.float64)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(s.size, dtype=np.float64)
    sorted_s = s[order]
    # average ranks over ties
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_s)) + 1]
    ends = np.r_[starts[1:], s.size]
    avg = (starts + ends + 1) / 2.0  # 1-based average rank of each tie group
    ranks[order] = np.repeat(avg, ends - starts)
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def log_loss(y_true, y_prob) -> float:
    """Mean negative log-likelihood of the true class (probabilities clipped at 1e-12)."""
    t = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(y_prob, dtype=np.float64)
    if t.size == 0:
        return float("nan")
    return float(-np.log(np.clip(p[np.arange(t.size), t], EPS, 1.0)).mean())


def _check_inputs(y_true, y_prob, class_names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(y_true, dtype=np.int64).reshape(-1)
    p = np.asarray(y_prob, dtype=np.float64)
    k = len(class_names)
    if p.ndim != 2 or p.shape != (t.size, k):
        raise ValueError(f"y_prob must have shape (N={t.size}, K={k}), got {p.shape}")
    if t.size and (t.min() < 0 or t.max() >= k):
        raise ValueError(f"labels must be in [0, {k - 1}]")
    if not np.all(np.isfinite(p)):
        raise ValueError("y_prob contains NaN or infinite values")
    return t, p


def classification_metrics(y_true, y_prob, class_names: Sequence[str], average_over: Sequence[int] | None = None) -> dict:
    """All the numbers of a classification report.

    Args:
        y_true: (N,) true class indices.
        y_prob: (N, K) class probabilities (rows sum to 1); the prediction is the argmax.
        class_names: K names, in label order.
        average_over: class indices the macro averages run over (default all K; an evaluation
            set holding only some classes passes those present). Predictions of the others
            still count as errors.

    Returns:
        A JSON-ready dict: ``n``, ``accuracy``, ``loss`` (NLL), ``precision``/``recall``/``f1``
        (macro), ``macro`` and ``weighted`` P/R/F1, ``mcc``, ``kappa``, ``roc_auc`` (macro over
        defined classes, or ``None``), ``per_class`` {name: precision, recall, f1, support,
        roc_auc}, ``confusion_matrix`` (list of lists, rows = true class).
    """
    t, p = _check_inputs(y_true, y_prob, class_names)
    k = len(class_names)
    pred = p.argmax(axis=1) if t.size else np.zeros(0, dtype=np.int64)
    cm = confusion_matrix(t, pred, k)
    precision, recall, f1, support = per_class_prf(cm)
    total = support.sum()
    aucs = [roc_auc(t == c, p[:, c]) for c in range(k)]
    over = list(range(k)) if average_over is None else sorted({int(c) for c in average_over})
    defined = [aucs[c] for c in over if aucs[c] is not None]

    def avg(v: np.ndarray, weighted: bool) -> float:
        if weighted:
            return float((v * support).sum() / total) if total else 0.0
        return float(v[over].mean()) if over else 0.0

    macro = {"precision": avg(precision, False), "recall": avg(recall, False), "f1": avg(f1, False)}
    weighted = {"precision": avg(precision, True), "recall": avg(recall, True), "f1": avg(f1, True)}
    return {
        "n": int(t.size),
        "accuracy": float((pred == t).mean()) if t.size else float("nan"),
        "loss": log_loss(t, p),
        "precision": macro["precision"],
        "recall": macro["recall"],
        "macro_f1": macro["f1"],
        "macro": macro,
        "weighted": weighted,
        "mcc": float(mcc_from_cm(cm)),
        "kappa": float(kappa_from_cm(cm)),
        "roc_auc": float(np.mean(defined)) if defined else None,
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
                "roc_auc": aucs[i],
            }
            for i, name in enumerate(class_names)
        },
        "confusion_matrix": cm.tolist(),
    }


def classification_report_text(metrics: dict, digits: int = 3) -> str:
    """A fixed-width text table like scikit-learn's ``classification_report``."""
    absent = list(metrics.get("absent_classes") or [])
    names = [n for n in metrics["per_class"] if n not in absent]
    width = max([len(n) for n in names] + [len("weighted avg")])
    head = f"{'':>{width}}  {'precision':>9}  {'recall':>9}  {'f1-score':>9}  {'support':>9}"
    lines = [head, ""]
    for name in names:
        r = metrics["per_class"][name]
        lines.append(f"{name:>{width}}  {r['precision']:>9.{digits}f}  {r['recall']:>9.{digits}f}  {r['f1']:>9.{digits}f}  {r['support']:>9d}")
    n = metrics["n"]
    lines += ["", f"{'accuracy':>{width}}  {'':>9}  {'':>9}  {metrics['accuracy']:>9.{digits}f}  {n:>9d}"]
    for label, key in (("macro avg", "macro"), ("weighted avg", "weighted")):
        r = metrics[key]
        lines.append(f"{label:>{width}}  {r['precision']:>9.{digits}f}  {r['recall']:>9.{digits}f}  {r['f1']:>9.{digits}f}  {n:>9d}")
    extra = [f"loss (NLL) {metrics['loss']:.4f}", f"MCC {metrics['mcc']:.{digits}f}", f"Cohen's kappa {metrics['kappa']:.{digits}f}"]
    if metrics.get("roc_auc") is not None:
        extra.append(f"ROC-AUC (OvR, macro) {metrics['roc_auc']:.{digits}f}")
    tail = [f"not in the data: {', '.join(absent)} (macro averages over the {len(names)} classes present)"] if absent else []
    return "\n".join(lines + ["", "   ".join(extra)] + tail)
