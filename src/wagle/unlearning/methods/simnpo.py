"""SimNPO, reference-free NPO (Fan et al., 2024, arXiv 2410.07163).

    loss = −(2/β)·mean_i log σ(β·(NLL_θ(i)/|y_i| − δ)) + λ·retain

with NLL_θ(i)/|y_i| the length-normalised answer NLL. Defaults: β = 2.5, δ = 0 (the
paper's TOFU setting for β and its reward margin), λ = 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from wagle import config as cfg
from wagle.errors import WagleError
from wagle.registry import register
from wagle.sequence import per_sequence_mean, sequence_nll, token_mean
from wagle.unlearning.batch import ForgetRetainBatch
from wagle.unlearning.objective import METHODS, RetainObjective, RetainOptions, Terms


@dataclass
class SimNPOOptions(RetainOptions):
    beta: float = cfg.field(2.5, "β, the inverse temperature of the preference loss")
    delta: float = cfg.field(0.0, "δ, the reward margin subtracted from the mean NLL")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.beta <= 0:
            raise WagleError(f"beta must be > 0, got {self.beta}")


def simnpo_loss(mean_nll: torch.Tensor, beta: float, delta: float) -> torch.Tensor:
    """−(2/β)·mean log σ(β·(mean_nll − δ)) over per-sequence mean NLLs [B]."""
    return -(2.0 / beta) * F.logsigmoid(beta * (mean_nll - delta)).mean()


@register(METHODS, "simnpo")
class SimNPO(RetainObjective):
    Options = SimNPOOptions

    def __call__(self, model: torch.nn.Module, batch: ForgetRetainBatch) -> Terms:
        nll, n_tokens = sequence_nll(model, batch.forget)
        forget = simnpo_loss(
            per_sequence_mean(nll, n_tokens), self.options.beta, self.options.delta
        )
        return self.with_retain(model, batch, forget, token_mean(nll, n_tokens))
