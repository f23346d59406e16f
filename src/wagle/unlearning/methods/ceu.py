"""CE-U, cross-entropy unlearning (Yang et al., 2025, arXiv 2503.01224).

At each answer token the target is the model's own (detached) next-token distribution with
the true token removed, and the loss is the cross-entropy to it:

    q_t = softmax(z_t with z_t[y_t] = −∞),   loss = mean_t CE(q_t, softmax(z_t))

over the labelled (answer) tokens t except the first ``ignore_first_answer_tokens`` of each
answer (the paper's footnote; default 1, as open-unlearning). No retain term, as in
open-unlearning; the retain NLL is logged only.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from wagle.data.prompt import IGNORE_INDEX
from wagle.registry import register
from wagle.sequence import labelled, mean_nll_of_logits
from wagle.unlearning.batch import ForgetRetainBatch
from wagle.unlearning.objective import METHODS, Objective, Terms, mean_nll
from wagle.unlearning.options import CEUOptions


def without_first_answer_tokens(labels: torch.Tensor, n: int) -> torch.Tensor:
    """``labels`` [B, T] with the first ``n`` labelled tokens of each row set to -100."""
    counted = labels != IGNORE_INDEX
    first = counted & (counted.cumsum(dim=-1) <= n)
    return labels.masked_fill(first, IGNORE_INDEX)


def ceu_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean over labelled positions of CE(softmax(z with the label's logit at −∞), softmax(z));
    logits [B, T, V], labels [B, T] (position t predicts t+1). Every position is computed and
    the unlabelled ones masked out (boolean indexing would wait for the device to count them)."""
    keep = labelled(labels)  # [B, T-1]
    z = logits[:, :-1].float()  # [B, T-1, V]
    target = labels[:, 1:].clamp(min=0)  # [B, T-1]; -100 → 0 where nothing counts
    suppressed = z.detach().scatter(-1, target.unsqueeze(-1), float("-inf"))
    soft = torch.softmax(suppressed, dim=-1)
    ce = -(soft * torch.log_softmax(z, dim=-1)).sum(dim=-1)  # [B, T-1]
    return torch.where(keep, ce, 0.0).sum() / keep.sum().clamp(min=1)


@register(METHODS, "ceu")
class CEU(Objective):
    Options = CEUOptions
    # a mean over the answer tokens after each answer's first ones, which CE-U counts itself
    normalised_by: ClassVar[dict[str, str]] = {"forget": "ceu_tokens"}
    own_units: ClassVar[tuple[str, ...]] = ("ceu_tokens",)

    def count_units(self, forget, retain) -> list[torch.Tensor]:
        labels = without_first_answer_tokens(
            forget["labels"], self.options.ignore_first_answer_tokens
        )
        return [labelled(labels).sum()]

    def __call__(self, model: torch.nn.Module, batch: ForgetRetainBatch) -> Terms:
        forget = batch.forget
        logits = model(
            input_ids=forget["input_ids"], attention_mask=forget["attention_mask"]
        ).logits
        labels = without_first_answer_tokens(
            forget["labels"], self.options.ignore_first_answer_tokens
        )
        loss = ceu_loss(logits, labels)
        with torch.no_grad():  # logged only: CE-U has no retain term
            retain_nll = mean_nll(model, batch.retain)
        return {
            "loss": loss,
            "forget": loss,  # the loss's one part (normalised_by)
            "forget_nll": mean_nll_of_logits(logits.detach(), forget["labels"]),
            "retain_nll": retain_nll,
        }
