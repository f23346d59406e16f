"""WGA, weighted gradient ascent (Wang et al., 2025, "Rethinking LLM unlearning objectives: a
gradient perspective and go beyond", arXiv 2502.19301).

Gradient ascent whose every forget token is weighted by the model's own (detached)
probability of it, so tokens already forgotten stop pulling:

    loss = −mean_t (p_t^β · NLL_t) + λ·retain,   p_t = exp(−NLL_t), no gradient through p_t^β

over the labelled (answer) tokens t. Defaults (open-unlearning): β = 1, λ = 1.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from wagle.registry import register
from wagle.sequence import labelled, mean_nll_of_logits, token_nll
from wagle.unlearning.batch import ForgetRetainBatch
from wagle.unlearning.objective import METHODS, RetainObjective, Terms
from wagle.unlearning.options import WGAOptions


def wga_loss(nll: torch.Tensor, keep: torch.Tensor, power: float) -> torch.Tensor:
    """−mean over kept tokens of p^β·NLL; nll and keep [B, T-1] (``token_nll``, ``labelled``).
    Masked, not indexed: boolean indexing waits for the device to count the tokens."""
    weight = torch.exp(-nll.detach()) ** power
    return -torch.where(keep, weight * nll, 0.0).sum() / keep.sum().clamp(min=1)


@register(METHODS, "wga")
class WGA(RetainObjective):
    Options = WGAOptions
    normalised_by: ClassVar[dict[str, str]] = {"forget": "forget_tokens", "retain": "retain_tokens"}

    def __call__(self, model: torch.nn.Module, batch: ForgetRetainBatch) -> Terms:
        forget = batch.forget
        logits = model(
            input_ids=forget["input_ids"], attention_mask=forget["attention_mask"]
        ).logits
        nll = token_nll(logits, forget["labels"])
        loss = wga_loss(nll, labelled(forget["labels"]), self.options.wga_power)
        return self.with_retain(
            model, batch, loss, mean_nll_of_logits(logits.detach(), forget["labels"])
        )
