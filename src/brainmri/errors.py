"""The project's own error types.

Every failure a user can cause (a bad file, a bad flag, a checkpoint that does not fit) raises a
:class:`BrainMRIError` whose message names the thing and the problem. The CLI prints that message
and exits non-zero; the HTTP service turns it into a 4xx JSON error. A traceback means a bug.
"""
from __future__ import annotations


class BrainMRIError(Exception):
    """Base class for errors caused by input, configuration or environment (not bugs)."""


class ConfigError(BrainMRIError, ValueError):
    """A configuration field has a bad value. The message names the field and the valid choices."""


class ImageReadError(BrainMRIError):
    """An image (or DICOM / NIfTI / NPZ member) could not be read.

    Attributes:
        path: the file that failed (or a ``file#index`` name for an array member).
        reason: a short human sentence, without the path.
    """

    def __init__(self, path: str, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class DatasetError(BrainMRIError):
    """A dataset layout is unusable: empty class, missing split, CSV row naming a missing file..."""


class CheckpointError(BrainMRIError):
    """A checkpoint is missing, corrupt, unsafe, or does not match the requested model."""
