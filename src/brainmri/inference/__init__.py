"""Inference: ``Classifier`` (files, arrays, DICOM, NIfTI), the out-of-distribution guard, ONNX
export and the onnxruntime backend. Imports nothing from ``brainmri.training``; loads torch on
first use of a name below, so format sniffing (``brainmri.inference.sniff``) stays light.

For research use only; not a medical device.
"""
__all__ = ["Classifier", "Prediction", "bundled_checkpoint", "check_ood", "fit_ood", "make_non_mri_images"]
_LAZY = {"Classifier": "classifier", "Prediction": "classifier", "bundled_checkpoint": "classifier", "check_ood": "ood", "fit_ood": "ood", "make_non_mri_images": "ood"}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"brainmri.inference.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'brainmri.inference' has no attribute {name!r}")
