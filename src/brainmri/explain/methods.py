"""The CAM methods brainmri offers (name -> pytorch-grad-cam class): plain data, so the command
line can list them without importing torch."""
from __future__ import annotations

METHODS: dict[str, str] = {
    "gradcam": "GradCAM",
    "gradcam++": "GradCAMPlusPlus",
    "hirescam": "HiResCAM",
    "layercam": "LayerCAM",
    "eigencam": "EigenCAM",
    "scorecam": "ScoreCAM",
}
ALIASES = {"gradcamplusplus": "gradcam++", "gradcampp": "gradcam++", "grad-cam": "gradcam", "score-cam": "scorecam"}
# Methods whose map does not depend on the class asked for (EigenCAM: the first principal
# component of the layer's activations), so ``--class`` cannot change them.
CLASS_AGNOSTIC = frozenset({"eigencam"})
