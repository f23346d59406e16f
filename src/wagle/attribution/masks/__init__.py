"""Masks: which weights unlearning may change. A mask maps parameter name → bool tensor.

mask.py: the data contract and its checks; packing.py: one tensor as bits or indices;
files.py: safetensors mask files (packed, lazy); stats.py: density and overlap.
"""

from wagle.attribution.masks.files import MaskFile, load_mask, mask_metadata, open_mask, save_mask
from wagle.attribution.masks.mask import Mask, check_mask, check_shapes, complete_mask
from wagle.attribution.masks.stats import (
    GROUPINGS,
    compare_masks,
    density,
    layer_of,
    module_type,
)

__all__ = [
    "GROUPINGS",
    "Mask",
    "MaskFile",
    "check_mask",
    "check_shapes",
    "compare_masks",
    "complete_mask",
    "density",
    "layer_of",
    "load_mask",
    "mask_metadata",
    "module_type",
    "open_mask",
    "save_mask",
]
