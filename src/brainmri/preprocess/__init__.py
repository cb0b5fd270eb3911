"""Preprocessing: the deterministic path from a decoded image to a model input.

``crop`` (brain crop), ``pipeline`` (crop + resize + intensity normalisation, shared by training
and prediction) and ``augment`` (training-only random transforms).
"""
from brainmri.preprocess.crop import crop_brain, brain_bbox
from brainmri.preprocess.pipeline import prepare_image, to_model_input, normalize_intensity

__all__ = ["crop_brain", "brain_bbox", "prepare_image", "to_model_input", "normalize_intensity"]
