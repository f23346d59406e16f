"""Attribution: score every weight for its influence on forgetting, then select a mask.

The public steps: ``attribute`` (one pass over forget and retain data) → ``Attribution.scores``
(any registered score method, any γ) → ``select_mask`` (exact top-k) → ``save_mask``.
"""

from wagle.attribution.attribute import Attribution, AttributionConfig, attribute
from wagle.attribution.gradients import Statistics, collect_statistics
from wagle.attribution.masks import (
    Mask,
    MaskFile,
    check_mask,
    load_mask,
    mask_metadata,
    open_mask,
    save_mask,
)
from wagle.attribution.scores import SCORES, LazyScores, Scores, compute_scores
from wagle.attribution.select import GRANULARITIES, select_mask

__all__ = [
    "GRANULARITIES",
    "SCORES",
    "Attribution",
    "AttributionConfig",
    "LazyScores",
    "Mask",
    "MaskFile",
    "Scores",
    "Statistics",
    "attribute",
    "check_mask",
    "collect_statistics",
    "compute_scores",
    "load_mask",
    "mask_metadata",
    "open_mask",
    "save_mask",
    "select_mask",
]
