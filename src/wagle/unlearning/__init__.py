"""Unlearning: losses (one small class each), exact masked training, LoRA, whole runs."""

from wagle.unlearning import methods
from wagle.unlearning.batch import ForgetRetainBatch, PairCollator, PairedDataset
from wagle.unlearning.config import UnlearnConfig, method_options
from wagle.unlearning.masking import MaskEnforcer, full_mask
from wagle.unlearning.objective import METHODS, Objective
from wagle.unlearning.run import UnlearnResult, unlearn, unlearn_model
from wagle.unlearning.trainer import MaskedUnlearningTrainer

__all__ = [
    "METHODS",
    "ForgetRetainBatch",
    "MaskEnforcer",
    "MaskedUnlearningTrainer",
    "Objective",
    "PairCollator",
    "PairedDataset",
    "UnlearnConfig",
    "UnlearnResult",
    "full_mask",
    "method_options",
    "methods",
    "unlearn",
    "unlearn_model",
]
