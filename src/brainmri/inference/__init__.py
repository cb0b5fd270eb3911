"""Inference: ``Classifier`` (files, arrays, DICOM, NIfTI), the out-of-distribution guard, ONNX
export and the onnxruntime backend. Imports nothing from ``brainmri.training``.

For research use only; not a medical device.
"""
from brainmri.inference.classifier import Classifier, Prediction, bundled_checkpoint
from brainmri.inference.ood import check_ood, fit_ood, make_non_mri_images

__all__ = ["Classifier", "Prediction", "bundled_checkpoint", "check_ood", "fit_ood", "make_non_mri_images"]
