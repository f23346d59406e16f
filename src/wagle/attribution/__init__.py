"""Attribution: score every weight for its influence on forgetting, then select a mask.

The public steps: ``attribute`` (one pass over forget and retain data) → ``Attribution.scores``
(any registered score method, any γ) → ``select_mask`` (exact top-k) → ``save_mask``.

Names are imported on first use, so ``wagle.attribution.config`` (and ``wagle attribute
--help``) does not load torch. ``attribute`` is defined in ``wagle.attribution.pipeline``.
"""

from __future__ import annotations

from wagle.lazy import lazy_exports

_EXPORTS = {
    "AttributionConfig": "wagle.attribution.config",
    "Attribution": "wagle.attribution.pipeline",
    "attribute": "wagle.attribution.pipeline",
    "Statistics": "wagle.attribution.gradients",
    "collect_statistics": "wagle.attribution.gradients",
    "Mask": "wagle.attribution.masks",
    "MaskFile": "wagle.attribution.masks",
    "check_mask": "wagle.attribution.masks",
    "load_mask": "wagle.attribution.masks",
    "mask_metadata": "wagle.attribution.masks",
    "open_mask": "wagle.attribution.masks",
    "save_mask": "wagle.attribution.masks",
    "SCORES": "wagle.attribution.scores",
    "LazyScores": "wagle.attribution.scores",
    "Scores": "wagle.attribution.scores",
    "compute_scores": "wagle.attribution.scores",
    "GRANULARITIES": "wagle.attribution.select",
    "select_mask": "wagle.attribution.select",
}
__getattr__, __all__ = lazy_exports(__name__, _EXPORTS)
