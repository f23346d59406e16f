"""UNDIAL, unlearning by self-distillation with adjusted logits (Dong et al., 2024,
arXiv 2402.10052).

The student (the model) is trained towards the original model's next-token distribution with
the logit of each true answer token lowered by β:

    q_t = softmax(z_ref,t − β·onehot(y_t)),   loss = mean_t CE(q_t, softmax(z_θ,t)) + λ·retain

over the labelled (answer) tokens t. Defaults are open-unlearning's recipe: β = 10, λ = 0
(no retain term). open-unlearning averages over every position of the batch, prompt and
padding included; wagle over answer tokens only (docs/methods.md).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from wagle.registry import register
from wagle.sequence import labelled, mean_nll_of_logits
from wagle.unlearning.batch import ForgetRetainBatch, PairedDataset
from wagle.unlearning.objective import METHODS, RetainObjective, Terms, frozen_copy
from wagle.unlearning.options import UNDIALOptions


def undial_loss(
    logits: torch.Tensor, ref_logits: torch.Tensor, labels: torch.Tensor, strength: float
) -> torch.Tensor:
    """Mean over labelled positions of CE(softmax(ref − β·onehot(label)), softmax(logits));
    logits and ref_logits [B, T, V], labels [B, T] (next-token: position t predicts t+1)."""
    keep = labelled(labels)  # [B, T-1]
    student = logits[:, :-1].float()[keep]  # [N, V]
    teacher = ref_logits[:, :-1].float()[keep]
    target = labels[:, 1:][keep]  # [N]
    adjusted = teacher - strength * F.one_hot(target, teacher.shape[-1])
    soft = torch.softmax(adjusted, dim=-1)
    ce = -(soft * torch.log_softmax(student, dim=-1)).sum(dim=-1)  # [N]
    return ce.sum() / max(1, ce.numel())


@register(METHODS, "undial")
class UNDIAL(RetainObjective):
    Options = UNDIALOptions

    def __init__(self, options: UNDIALOptions | None = None) -> None:
        super().__init__(options)
        self.reference: torch.nn.Module | None = None

    def prepare(self, model: torch.nn.Module, data: PairedDataset, pad_token_id: int) -> None:
        super().prepare(model, data, pad_token_id)
        self.reference = frozen_copy(model)  # full distributions: cannot be precomputed cheaply

    def __call__(self, model: torch.nn.Module, batch: ForgetRetainBatch) -> Terms:
        forget = batch.forget
        inputs = {"input_ids": forget["input_ids"], "attention_mask": forget["attention_mask"]}
        logits = model(**inputs).logits
        with torch.no_grad():
            ref_logits = self.reference(**inputs).logits
        loss = undial_loss(logits, ref_logits, forget["labels"], self.options.undial_strength)
        nll = mean_nll_of_logits(logits.detach(), forget["labels"])
        return self.with_retain(model, batch, loss, nll)
