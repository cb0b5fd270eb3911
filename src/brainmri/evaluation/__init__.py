"""Evaluation: metrics, bootstrap CIs, calibration, plots, the HTML report and model comparison.

``metrics``, ``bootstrap`` and ``calibration`` import only numpy and torch (the inference path
may use them); ``evaluate``, ``plots``, ``report`` and ``compare`` are heavier and imported on
demand.
"""
from brainmri.evaluation.bootstrap import bootstrap_ci
from brainmri.evaluation.calibration import expected_calibration_error, fit_temperature
from brainmri.evaluation.metrics import classification_metrics, classification_report_text

__all__ = [
    "bootstrap_ci",
    "classification_metrics",
    "classification_report_text",
    "evaluate_checkpoint",
    "expected_calibration_error",
    "fit_temperature",
]


def __getattr__(name):  # lazy: keeps `import brainmri.evaluation` light
    if name == "evaluate_checkpoint":
        from brainmri.evaluation.evaluate import evaluate_checkpoint

        return evaluate_checkpoint
    raise AttributeError(f"module 'brainmri.evaluation' has no attribute {name!r}")
