"""HTTP service (FastAPI) and its web page. Imports nothing from ``brainmri.training``.

For research use only; not a medical device.
"""
