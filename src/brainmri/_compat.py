"""Make ``import torchvision`` work beside a CPU-only torch build.

The only torchvision release matching torch 2.13.0 (0.28.0) ships compiled ops built for CUDA.
With the CPU torch build those ops fail to load, and torchvision's import then dies while
registering fake kernels for ``torchvision::nms`` and friends, which takes timm and
pytorch-grad-cam down with it. If (and only if) the compiled ops are missing, this module
defines their schemas in a ``torch.library`` fragment so the import succeeds. The ops themselves
(``torchvision.ops``) and ``torchvision.io`` decoding stay unavailable; brainmri decodes with
Pillow / OpenCV and never calls them. On a machine whose torchvision ops load (any CUDA
machine), this module does nothing.

Importing ``brainmri`` installs a one-shot import hook, so the fix runs just before the first
``import torchvision`` (by timm, pytorch-grad-cam or anyone) and ``import brainmri`` itself stays
cheap: torch is loaded only when something needs it (``brainmri --help`` in a fraction of a
second, and a Ctrl-C during start-up is one line, not a traceback from inside ``import torch``).
Calling :func:`ensure_torchvision_importable` does the same at once.
"""
from __future__ import annotations

import importlib.abc
import importlib.util
import os
import sys

_SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "roi_align(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height, SymInt pooled_width, int sampling_ratio, bool aligned) -> Tensor",
    "_roi_align_backward(Tensor grad, Tensor rois, float spatial_scale, SymInt pooled_height, SymInt pooled_width, SymInt batch_size, SymInt channels, SymInt height, SymInt width, int sampling_ratio, bool aligned) -> Tensor",
    "qroi_align(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height, SymInt pooled_width, int sampling_ratio, bool aligned) -> Tensor",
    "ps_roi_align(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height, SymInt pooled_width, int sampling_ratio) -> (Tensor, Tensor)",
    "_ps_roi_align_backward(Tensor grad, Tensor rois, Tensor channel_mapping, float spatial_scale, SymInt pooled_height, SymInt pooled_width, int sampling_ratio, SymInt batch_size, SymInt channels, SymInt height, SymInt width) -> Tensor",
    "roi_pool(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height, SymInt pooled_width) -> (Tensor, Tensor)",
    "_roi_pool_backward(Tensor grad, Tensor rois, Tensor argmax, float spatial_scale, SymInt pooled_height, SymInt pooled_width, SymInt batch_size, SymInt channels, SymInt height, SymInt width) -> Tensor",
    "ps_roi_pool(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height, SymInt pooled_width) -> (Tensor, Tensor)",
    "_ps_roi_pool_backward(Tensor grad, Tensor rois, Tensor channel_mapping, float spatial_scale, SymInt pooled_height, SymInt pooled_width, SymInt batch_size, SymInt channels, SymInt height, SymInt width) -> Tensor",
    "deform_conv2d(Tensor input, Tensor weight, Tensor offset, Tensor mask, Tensor bias, SymInt stride_h, SymInt stride_w, SymInt pad_h, SymInt pad_w, SymInt dilation_h, SymInt dilation_w, SymInt groups, SymInt offset_groups, bool use_mask) -> Tensor",
    "_deform_conv2d_backward(Tensor grad, Tensor input, Tensor weight, Tensor offset, Tensor mask, Tensor bias, SymInt stride_h, SymInt stride_w, SymInt pad_h, SymInt pad_w, SymInt dilation_h, SymInt dilation_w, SymInt groups, SymInt offset_groups, bool use_mask) -> (Tensor, Tensor, Tensor, Tensor, Tensor)",
)

_fragment = None  # keeps the library fragment alive for the life of the process
PATCHED = False  # True when the schemas were defined here (ops unavailable)


def _torchvision_ops_load() -> bool:
    """Try to load torchvision's compiled ops the way torchvision does; True if nms exists."""
    import torch

    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return True  # no torchvision: nothing to fix
    folder = list(spec.submodule_search_locations)[0]
    for name in os.listdir(folder):
        if name.startswith("_C") and name.endswith((".so", ".pyd")):
            try:
                torch.ops.load_library(os.path.join(folder, name))
            except (OSError, RuntimeError):
                return False
            break
    try:
        return torch._C._dispatch_has_kernel_for_dispatch_key("torchvision::nms", "CPU") or hasattr(torch.ops.torchvision, "nms")
    except RuntimeError:
        return False


def ensure_torchvision_importable() -> bool:
    """Define missing torchvision op schemas if needed. Returns True if it patched anything."""
    global _fragment, PATCHED
    uninstall_hook()  # once is enough, and find_spec below must not re-enter it
    if PATCHED or "torchvision" in sys.modules:
        return PATCHED
    import torch

    if torch.cuda.is_available() or _torchvision_ops_load():
        return False
    _fragment = torch.library.Library("torchvision", "FRAGMENT")
    for schema in _SCHEMAS:
        try:
            _fragment.define(schema)
        except RuntimeError:
            pass  # already defined
    PATCHED = True
    return True


class _BeforeTorchvision(importlib.abc.MetaPathFinder):
    """Runs :func:`ensure_torchvision_importable` once, when ``torchvision`` is first imported,
    then steps aside (it finds nothing itself: the normal finders import torchvision)."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname == "torchvision":
            ensure_torchvision_importable()
        return None


_HOOK = _BeforeTorchvision()


def uninstall_hook() -> None:
    if _HOOK in sys.meta_path:
        sys.meta_path.remove(_HOOK)


if "torchvision" not in sys.modules and not PATCHED:
    sys.meta_path.insert(0, _HOOK)
