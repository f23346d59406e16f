"""GA, gradient ascent: maximise the forget NLL. loss = −NLL_f (token mean)."""

from __future__ import annotations

import torch

from wagle.registry import register
from wagle.unlearning.batch import ForgetRetainBatch
from wagle.unlearning.objective import METHODS, Objective, Terms, mean_nll


@register(METHODS, "ga")
class GradientAscent(Objective):
    def __call__(self, model: torch.nn.Module, batch: ForgetRetainBatch) -> Terms:
        forget_nll = mean_nll(model, batch.forget)
        with torch.no_grad():  # logged only: GA has no retain term
            retain_nll = mean_nll(model, batch.retain)
        return {
            "loss": -forget_nll,
            "forget": -forget_nll.detach(),
            "forget_nll": forget_nll.detach(),
            "retain_nll": retain_nll,
        }
