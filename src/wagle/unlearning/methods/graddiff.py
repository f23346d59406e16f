"""GradDiff: gradient ascent on forget, descent on retain. loss = −NLL_f + λ·retain."""

from __future__ import annotations

from typing import ClassVar

import torch

from wagle.registry import register
from wagle.unlearning.batch import ForgetRetainBatch
from wagle.unlearning.objective import METHODS, RetainObjective, Terms, mean_nll
from wagle.unlearning.options import RetainOptions


@register(METHODS, "graddiff")
class GradDiff(RetainObjective):
    Options = RetainOptions
    # −NLL_f a mean over forget answer tokens, λ·retain over retain answer tokens
    normalised_by: ClassVar[dict[str, str]] = {"forget": "forget_tokens", "retain": "retain_tokens"}

    def __call__(self, model: torch.nn.Module, batch: ForgetRetainBatch) -> Terms:
        forget_nll = mean_nll(model, batch.forget)
        return self.with_retain(model, batch, -forget_nll, forget_nll)
