"""Unlearning: losses (one small class each), exact masked training, LoRA, whole runs.

Names are imported on first use, so ``wagle.unlearning.config`` and
``wagle.unlearning.options`` (and ``wagle unlearn --help``) do not load torch. The methods
package is the submodule ``wagle.unlearning.methods``.
"""

from __future__ import annotations

from wagle.lazy import lazy_exports

_EXPORTS = {
    "METHODS": "wagle.unlearning.objective",
    "Objective": "wagle.unlearning.objective",
    "ForgetRetainBatch": "wagle.unlearning.batch",
    "PairCollator": "wagle.unlearning.batch",
    "PairedDataset": "wagle.unlearning.batch",
    "UnlearnConfig": "wagle.unlearning.config",
    "method_options": "wagle.unlearning.config",
    "MaskEnforcer": "wagle.unlearning.masking",
    "full_mask": "wagle.unlearning.masking",
    "UnlearnResult": "wagle.unlearning.run",
    "unlearn": "wagle.unlearning.run",
    "unlearn_model": "wagle.unlearning.run",
    "MaskedUnlearningTrainer": "wagle.unlearning.trainer",
}
__getattr__, __all__ = lazy_exports(__name__, _EXPORTS)
