"""PO, preference for refusals: learn to answer forget questions with "I don't know".

    loss = NLL(refusal | forget question) (token mean) + λ·retain

The refusal targets come from ``wagle.data.refusals`` (a varied list, drawn with a seed).
The logged ``forget_nll`` is the NLL of the refusals, not of the original answers.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from wagle.data.load import Record
from wagle.data.refusals import refusal_records
from wagle.errors import WagleError
from wagle.registry import register
from wagle.unlearning.batch import ForgetRetainBatch
from wagle.unlearning.objective import METHODS, RetainObjective, Terms, mean_nll
from wagle.unlearning.options import POOptions


@register(METHODS, "po")
class RefusalPreference(RetainObjective):
    Options = POOptions
    # the refusals' NLL a mean over their tokens, λ·retain over retain answer tokens
    normalised_by: ClassVar[dict[str, str]] = {"forget": "forget_tokens", "retain": "retain_tokens"}

    def forget_records(self, records: list[Record]) -> list[Record]:
        if records and "question" not in records[0]:
            raise WagleError("the po method needs QA forget data (question/answer records)")
        return refusal_records(records, seed=self.options.refusal_seed)

    def __call__(self, model: torch.nn.Module, batch: ForgetRetainBatch) -> Terms:
        refusal_nll = mean_nll(model, batch.forget)
        return self.with_retain(model, batch, refusal_nll, refusal_nll)
