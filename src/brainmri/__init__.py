"""brainmri: brain MRI classification with honest evaluation, explanations and a service.

For research use only; not a medical device.
"""
import brainmri._compat  # noqa: F401  (must run before anything imports torchvision)

__version__ = "0.1.0"
DISCLAIMER = "For research use only; not a medical device."

__all__ = ["Classifier", "__version__", "DISCLAIMER"]


def __getattr__(name):  # lazy: `import brainmri` stays cheap
    if name == "Classifier":
        from brainmri.inference.classifier import Classifier

        return Classifier
    raise AttributeError(f"module 'brainmri' has no attribute {name!r}")
