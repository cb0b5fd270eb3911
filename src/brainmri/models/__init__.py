"""Models: a factory over timm plus the seeds' from-scratch CNNs, with one interface."""
from brainmri.models.factory import MODEL_ZOO, create_model, default_image_size, load_pretrained_weights

__all__ = ["MODEL_ZOO", "create_model", "default_image_size", "load_pretrained_weights"]
