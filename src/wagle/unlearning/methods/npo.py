"""NPO, negative preference optimisation (Zhang et al., 2024, arXiv 2404.05868).

    loss = −(2/β)·mean_i log σ(β·(NLL_θ(i) − NLL_ref(i))) + λ·retain

with NLL summed over the answer tokens of forget sample i and NLL_ref that of the original
model. Published defaults: β = 0.1, λ = 1. A fixed forget sample's reference NLL never
changes, so by default it is computed once before training (one pass over the forget set)
and no second model sits in memory; ``reference: live`` keeps a frozen copy instead.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F

from wagle.data.batching import iter_batches
from wagle.registry import register
from wagle.sequence import sequence_nll, token_mean
from wagle.unlearning.batch import ForgetRetainBatch, PairedDataset
from wagle.unlearning.objective import METHODS, RetainObjective, Terms, frozen_copy
from wagle.unlearning.options import NPOOptions


def npo_loss(nll: torch.Tensor, ref_nll: torch.Tensor, beta: float) -> torch.Tensor:
    """−(2/β)·mean log σ(β·(nll − ref_nll)) over a batch of summed sequence NLLs [B]."""
    return -(2.0 / beta) * F.logsigmoid(beta * (nll - ref_nll)).mean()


@register(METHODS, "npo")
class NPO(RetainObjective):
    Options = NPOOptions
    # the preference term a mean over forget samples, λ·retain over retain answer tokens
    normalised_by: ClassVar[dict[str, str]] = {"forget": "sequences", "retain": "retain_tokens"}

    def __init__(self, options: NPOOptions | None = None) -> None:
        super().__init__(options)
        self.ref_nll: torch.Tensor | None = None  # [N_forget], precomputed
        self.reference: torch.nn.Module | None = None  # live

    def prepare(self, model: torch.nn.Module, data: PairedDataset, pad_token_id: int) -> None:
        super().prepare(model, data, pad_token_id)
        if self.options.reference == "live":
            self.reference = frozen_copy(model)
        else:
            # on the training device: indexed per micro-batch without a copy from the host
            self.ref_nll = reference_nll(model, data.forget, pad_token_id).to(model.device)

    def __call__(self, model: torch.nn.Module, batch: ForgetRetainBatch) -> Terms:
        nll, n_tokens = sequence_nll(model, batch.forget)
        if self.reference is not None:
            with torch.no_grad():
                ref_nll = sequence_nll(self.reference, batch.forget)[0]
        else:
            ref_nll = self.ref_nll.to(nll.device)[batch.forget_index]
        forget = npo_loss(nll, ref_nll, self.options.beta)
        return self.with_retain(model, batch, forget, token_mean(nll, n_tokens))


@torch.no_grad()
def reference_nll(
    model: torch.nn.Module, examples: list[dict], pad_token_id: int, batch_size: int = 16
) -> torch.Tensor:
    """Summed answer NLL [N] of each example under ``model`` in eval mode (fp32, on CPU)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    parts = [
        sequence_nll(model, batch)[0].float().cpu()
        for batch in iter_batches(examples, batch_size, pad_token_id, device)
    ]
    model.train(was_training)
    return torch.cat(parts)
