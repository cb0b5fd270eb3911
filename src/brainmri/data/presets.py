"""Named dataset presets: the class order a task uses and how folder/CSV labels map onto it.

* ``tumor4``: glioma, meningioma, notumor, pituitary (the four-class tumor-type set).
* ``tumor2``: notumor, tumor; every tumor type and the yes/no set's ``yes`` map to ``tumor``,
  ``notumor``, ``no``, ``healthy`` and ``normal`` map to ``notumor``.
* ``alzheimer4``: Mild_Demented, Moderate_Demented, Non_Demented, Very_Mild_Demented (the
  spelling without underscores, as in the original 6,400-image set, maps onto it).

``DataConfig.class_names`` / ``class_map`` given explicitly win over the preset's.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from brainmri.config import DataConfig
from brainmri.errors import ConfigError


@dataclass(frozen=True)
class Preset:
    """Class order and label map for one task."""

    class_names: tuple[str, ...]
    class_map: dict[str, str] = field(default_factory=dict)
    description: str = ""


_TUMOR4_ALIASES = {  # SARTAJ-style folder names
    "glioma_tumor": "glioma",
    "meningioma_tumor": "meningioma",
    "pituitary_tumor": "pituitary",
    "no_tumor": "notumor",
}

PRESETS: dict[str, Preset] = {
    "tumor4": Preset(
        ("glioma", "meningioma", "notumor", "pituitary"),
        dict(_TUMOR4_ALIASES),
        "tumor type: glioma / meningioma / no tumor / pituitary",
    ),
    "tumor2": Preset(
        ("notumor", "tumor"),
        {
            "glioma": "tumor", "meningioma": "tumor", "pituitary": "tumor", "yes": "tumor",
            "tumor": "tumor", "glioma_tumor": "tumor", "meningioma_tumor": "tumor",
            "pituitary_tumor": "tumor", "notumor": "notumor", "no": "notumor", "no_tumor": "notumor",
            "tumour": "tumor", "healthy": "notumor", "normal": "notumor",
        },
        "tumor vs no tumor (merges the tumor types; reads the yes/no set)",
    ),
    "alzheimer4": Preset(
        ("Mild_Demented", "Moderate_Demented", "Non_Demented", "Very_Mild_Demented"),
        {
            "MildDemented": "Mild_Demented", "ModerateDemented": "Moderate_Demented",
            "NonDemented": "Non_Demented", "VeryMildDemented": "Very_Mild_Demented",
        },
        "Alzheimer stage: mild / moderate / non / very mild demented",
    ),
}


def get_preset(name: str) -> Preset:
    """The preset called ``name``; ConfigError naming the valid choices otherwise."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"data.preset={name!r} is not valid; choose one of: {', '.join(PRESETS)}") from None


def resolve_classes(cfg: DataConfig) -> tuple[list[str] | None, dict[str, str]]:
    """``(class_names, class_map)`` for a data config: explicit fields over the preset's.

    ``class_names`` is ``None`` when neither the config nor a preset fixes the order (then the
    sorted label names found in the data are used).
    """
    preset = get_preset(cfg.preset) if cfg.preset else None
    names = list(cfg.class_names) if cfg.class_names else (list(preset.class_names) if preset else None)
    mapping = dict(preset.class_map) if preset else {}
    if cfg.class_map:
        mapping.update({str(k): str(v) for k, v in cfg.class_map.items()})
    return names, mapping


def map_class(name: str, class_map: dict[str, str]) -> str:
    """Apply ``class_map`` to a label name: exact key first, then case-insensitively; names not in
    the map are kept."""
    if name in class_map:
        return class_map[name]
    lowered = {k.lower(): v for k, v in class_map.items()}
    return lowered.get(name.lower(), name)
