"""Files brainmri writes for its users (JSON results, HTML reports, figures, tables): written
atomically, and marked as brainmri's, so that running a command again may replace its own earlier
output while any other file in the way needs ``--force`` (never lost work).

The marks are ordinary parts of each format: a leading ``"generator"`` key in JSON, a
``<meta name="generator">`` tag in HTML, a ``Software`` text chunk in PNG, an HTML comment in
Markdown, and the prediction CSV's own header row.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

GENERATOR = "brainmri"
PNG_METADATA = {"Software": GENERATOR}  # matplotlib ``savefig(metadata=...)``
MARKDOWN_MARK = f"<!-- written by {GENERATOR} -->"
PREDICTION_CSV_HEADER = ("path", "label", "confidence", "out_of_distribution", "ood_reason", "error")
_MARKS = (
    f'"generator": "{GENERATOR}'.encode(),
    f'<meta name="generator" content="{GENERATOR}'.encode(),
    f"Software\x00{GENERATOR}".encode(),
    MARKDOWN_MARK.encode(),
    (",".join(PREDICTION_CSV_HEADER) + ",").encode(),
)


def png_bytes(array: np.ndarray) -> bytes:
    """A PNG of ``array`` (gray or RGB uint8) carrying brainmri's ``Software`` mark (so a rerun may
    replace it)."""
    import io

    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    for key, value in PNG_METADATA.items():
        info.add_text(key, value)
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def written_by_brainmri(path: str | Path) -> bool:
    """True for an empty file or one that carries brainmri's mark in its first 4 KiB."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return False
    return not head or any(mark in head for mark in _MARKS)


def to_jsonable(obj):
    """Replace NaN/inf with None and numpy scalars with Python numbers, recursively."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        return v if np.isfinite(v) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def write_output(path: str | Path, data: bytes) -> Path:
    """Write a user-facing file atomically (the old file or the new one, never half of one)."""
    from brainmri.checkpoint import atomic_write_bytes

    atomic_write_bytes(path, data)
    return Path(path)


def write_json(result: dict, path: str | Path) -> Path:
    """``result`` as strict JSON (NaN -> null), with brainmri's ``generator`` key first."""
    from brainmri import __version__

    payload = {"generator": f"{GENERATOR} {__version__}", **{k: v for k, v in result.items() if k != "generator"}}
    return write_output(path, json.dumps(to_jsonable(payload), indent=2, allow_nan=False).encode())
