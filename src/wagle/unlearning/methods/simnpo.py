"""SimNPO, reference-free NPO (Fan et al., 2024, arXiv 2410.07163).

    loss = −(2/β)·mean_i log σ(β·(NLL_θ(i)/|y_i| − δ)) + λ·retain

with NLL_θ(i)/|y_i| the length-normalised answer NLL. Defaults: β = 2.5, δ = 0 (the
paper's TOFU setting for β and its reward margin), λ = 1.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F

from wagle.registry import register
from wagle.sequence import per_sequence_mean, sequence_nll, token_mean
from wagle.unlearning.batch import ForgetRetainBatch
from wagle.unlearning.objective import METHODS, RetainObjective, Terms
from wagle.unlearning.options import SimNPOOptions


def simnpo_loss(mean_nll: torch.Tensor, beta: float, delta: float) -> torch.Tensor:
    """−(2/β)·mean log σ(β·(mean_nll − δ)) over per-sequence mean NLLs [B]."""
    return -(2.0 / beta) * F.logsigmoid(beta * (mean_nll - delta)).mean()


@register(METHODS, "simnpo")
class SimNPO(RetainObjective):
    Options = SimNPOOptions
    # the preference term a mean over forget samples, λ·retain over retain answer tokens
    normalised_by: ClassVar[dict[str, str]] = {"forget": "sequences", "retain": "retain_tokens"}

    def __call__(self, model: torch.nn.Module, batch: ForgetRetainBatch) -> Terms:
        nll, n_tokens = sequence_nll(model, batch.forget)
        forget = simnpo_loss(
            per_sequence_mean(nll, n_tokens), self.options.beta, self.options.delta
        )
        return self.with_retain(model, batch, forget, token_mean(nll, n_tokens))
