"""Explanations: class-activation maps (pytorch-grad-cam), target layers, faithfulness scores.

Import-light: the method names load without torch, the rest on first use, and pytorch-grad-cam
only when a map is computed. Nothing here imports training code, so the inference service can
call :func:`explain`.
"""
from brainmri.explain.methods import METHODS

__all__ = ["METHODS", "CamResult", "default_target_layer", "explain", "reshape_transform_for", "resolve_target_layer"]
_LAZY = {"CamResult": "cam", "explain": "cam", "default_target_layer": "targets", "reshape_transform_for": "targets", "resolve_target_layer": "targets"}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"brainmri.explain.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'brainmri.explain' has no attribute {name!r}")
