"""SatImp, saturation × importance token weighting (Yang et al., 2025, "Exploring criteria
of loss reweighting to enhance LLM unlearning", arXiv 2505.11953).

Gradient ascent whose every forget token is weighted by p^β₁ (saturation: likely tokens
first) times (1 − p)^β₂ (importance), both detached:

    loss = −γ · mean_t (p_t^β₁ · (1 − p_t)^β₂ · NLL_t) + λ·retain,   p_t = exp(−NLL_t)

over the labelled (answer) tokens t. Defaults: open-unlearning's SatImp recipe, β₁ = 5,
β₂ = 1, γ = 0.1, λ = 1.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from wagle.registry import register
from wagle.sequence import labelled, mean_nll_of_logits, token_nll
from wagle.unlearning.batch import ForgetRetainBatch
from wagle.unlearning.objective import METHODS, RetainObjective, Terms
from wagle.unlearning.options import SatImpOptions


def satimp_loss(nll: torch.Tensor, keep: torch.Tensor, sat: float, imp: float) -> torch.Tensor:
    """−mean over kept tokens of p^β₁·(1 − p)^β₂·NLL; nll and keep [B, T-1] (masked, not
    indexed: boolean indexing waits for the device to count the tokens)."""
    p = torch.exp(-nll.detach())
    return -torch.where(keep, (p**sat) * (1 - p) ** imp * nll, 0.0).sum() / keep.sum().clamp(min=1)


@register(METHODS, "satimp")
class SatImp(RetainObjective):
    Options = SatImpOptions
    normalised_by: ClassVar[dict[str, str]] = {"forget": "forget_tokens", "retain": "retain_tokens"}

    def __call__(self, model: torch.nn.Module, batch: ForgetRetainBatch) -> Terms:
        forget, o = batch.forget, self.options
        logits = model(
            input_ids=forget["input_ids"], attention_mask=forget["attention_mask"]
        ).logits
        nll = token_nll(logits, forget["labels"])
        loss = o.forget_weight * satimp_loss(
            nll, labelled(forget["labels"]), o.sat_power, o.imp_power
        )
        return self.with_retain(
            model, batch, loss, mean_nll_of_logits(logits.detach(), forget["labels"])
        )
