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

from typing import ClassVar

import torch

from wagle.registry import register
from wagle.sequence import labelled, mean_nll_of_logits
from wagle.unlearning.batch import ForgetRetainBatch, PairedDataset
from wagle.unlearning.objective import METHODS, RetainObjective, Terms, frozen_copy
from wagle.unlearning.options import UNDIALOptions


def undial_loss(
    logits: torch.Tensor, ref_logits: torch.Tensor, labels: torch.Tensor, strength: float
) -> torch.Tensor:
    """Mean over labelled positions of CE(softmax(ref − β·onehot(label)), softmax(logits));
    logits and ref_logits [B, T, V], labels [B, T] (next-token: position t predicts t+1).
    Every position is computed and the unlabelled ones masked out (boolean indexing, and
    ``one_hot``'s range check, would wait for the device)."""
    keep = labelled(labels)  # [B, T-1]
    student = logits[:, :-1].float()  # [B, T-1, V]
    teacher = ref_logits[:, :-1].float()
    target = labels[:, 1:].clamp(min=0).unsqueeze(-1)  # [B, T-1, 1]; -100 → 0, masked below
    adjusted = teacher.scatter(-1, target, teacher.gather(-1, target) - strength)
    soft = torch.softmax(adjusted, dim=-1)
    ce = -(soft * torch.log_softmax(student, dim=-1)).sum(dim=-1)  # [B, T-1]
    return torch.where(keep, ce, 0.0).sum() / keep.sum().clamp(min=1)


@register(METHODS, "undial")
class UNDIAL(RetainObjective):
    Options = UNDIALOptions
    normalised_by: ClassVar[dict[str, str]] = {"forget": "forget_tokens", "retain": "retain_tokens"}

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
