"""GA, gradient ascent: maximise the forget NLL. loss = −NLL_f (token mean)."""

from __future__ import annotations

from typing import ClassVar

import torch

from wagle.registry import register
from wagle.unlearning.batch import ForgetRetainBatch
from wagle.unlearning.objective import METHODS, Objective, Terms, mean_nll


@register(METHODS, "ga")
class GradientAscent(Objective):
    # −NLL, a mean over forget answer tokens
    normalised_by: ClassVar[dict[str, str]] = {"forget": "forget_tokens"}

    def __call__(self, model: torch.nn.Module, batch: ForgetRetainBatch) -> Terms:
        forget_nll = mean_nll(model, batch.forget)
        with torch.no_grad():  # logged only: GA has no retain term
            retain_nll = mean_nll(model, batch.retain)
        return {
            "loss": -forget_nll,
            "forget": -forget_nll,
            "forget_nll": forget_nll.detach(),
            "retain_nll": retain_nll,
        }
