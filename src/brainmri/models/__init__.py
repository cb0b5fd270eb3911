"""Models: a factory over timm plus the seeds' from-scratch CNNs, with one interface.

The zoo's names load without timm; the factory (and timm) on first use."""
from brainmri.models.zoo import MODEL_ZOO, default_image_size

__all__ = ["MODEL_ZOO", "create_model", "default_image_size", "load_pretrained_weights"]


def __getattr__(name):
    if name in ("create_model", "load_pretrained_weights"):
        from brainmri.models import factory

        return getattr(factory, name)
    raise AttributeError(f"module 'brainmri.models' has no attribute {name!r}")
