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
