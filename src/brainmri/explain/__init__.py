"""Explanations: class-activation maps (pytorch-grad-cam), target layers, faithfulness scores.

Import-light: pytorch-grad-cam is loaded only when a map is computed. Nothing here imports
training code, so the inference service can call :func:`explain`.
"""
from brainmri.explain.cam import METHODS, CamResult, explain
from brainmri.explain.targets import default_target_layer, reshape_transform_for, resolve_target_layer

__all__ = ["METHODS", "CamResult", "default_target_layer", "explain", "reshape_transform_for", "resolve_target_layer"]
