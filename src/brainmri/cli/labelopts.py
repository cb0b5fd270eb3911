"""Flags that say how a labels CSV or NPZ file names its columns, arrays and labels.

Shared by ``train``, ``evaluate``, ``calibrate`` and the ``data`` commands, so a dataset whose CSV
says ``filename,target`` with labels ``0`` / ``1`` (seed 003's) is read the same way everywhere,
without a YAML config. Each flag sets the ``data.`` config field of the same name.
"""
from __future__ import annotations

import argparse

# flag -> (DataConfig field, metavar, help)
LABEL_FLAGS = {
    "--csv-path-column": ("csv_path_column", "NAME", "the labels CSV's image-path column (default: Image)"),
    "--csv-label-column": ("csv_label_column", "NAME", "the labels CSV's label column (default: Class)"),
    "--label-names": ("csv_label_names", "CODE=CLASS,...",
                      "what the labels of a CSV or NPZ file mean, e.g. 0=notumor,1=tumor (default: the labels are class names, "
                      "or integer codes in the classes' order)"),
    "--npz-images-key": ("npz_images_key", "KEY", "the NPZ file's image array (default: first of images, x, X, data)"),
    "--npz-labels-key": ("npz_labels_key", "KEY", "the NPZ file's label array (default: first of labels, y, Y, target)"),
}


def parse_label_names(text: str) -> dict[str, str]:
    """``"0=notumor,1=tumor"`` -> ``{"0": "notumor", "1": "tumor"}``; refuses empty parts and repeated codes."""
    pairs: dict[str, str] = {}
    for part in text.split(","):
        code, sep, name = (s.strip() for s in part.partition("="))
        if not sep or not code or not name:
            raise argparse.ArgumentTypeError(f"{part.strip()!r} is not CODE=CLASS (e.g. 0=notumor,1=tumor)")
        if code in pairs:
            raise argparse.ArgumentTypeError(f"code {code!r} is given twice ({pairs[code]} and {name})")
        pairs[code] = name
    return pairs


def _name(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text.strip()


def label_type(flag: str):
    """The argparse ``type`` of one of :data:`LABEL_FLAGS`."""
    return parse_label_names if flag == "--label-names" else _name


def add_label_flags(p: argparse.ArgumentParser) -> None:
    """Add the flags of :data:`LABEL_FLAGS` (all default ``None``: not given)."""
    g = p.add_argument_group("labels files (CSV / NPZ)")
    for flag, (_, metavar, help_) in LABEL_FLAGS.items():
        g.add_argument(flag, metavar=metavar, default=None, help=help_, type=label_type(flag))


def label_options(args: argparse.Namespace) -> dict:
    """``{DataConfig field: value}`` for the label flags given."""
    out = {}
    for flag, (field, _, _) in LABEL_FLAGS.items():
        value = getattr(args, flag.lstrip("-").replace("-", "_"), None)
        if value is not None:
            out[field] = value
    return out
