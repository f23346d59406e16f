"""IdkDPO: DPO with a refusal ("I don't know") as the preferred answer to each forget question
and the true answer as the rejected one (Rafailov et al., 2023; TOFU's and open-unlearning's
IdkDPO baseline).

    loss = −(2/β)·mean_i log σ(β·((NLL_ref(w_i) − NLL_θ(w_i)) − (NLL_ref(l_i) − NLL_θ(l_i))))
           + λ·retain

with w_i the refusal and l_i the true answer of forget sample i, NLLs summed over answer tokens
and NLL_ref those of the original model. The 2/β scale is open-unlearning's (plain DPO has 1).
Defaults: β = 0.1, λ = 1. The refusals come from ``wagle.data.refusals`` (seeded), as PO's,
and reach each micro-batch through the collator (``companions``). The reference NLLs of fixed
samples never change: they are computed once before training and kept on the training device.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from wagle.data.batching import encode_records
from wagle.data.load import Record
from wagle.data.refusals import refusal_records
from wagle.errors import WagleError
from wagle.registry import register
from wagle.sequence import sequence_nll, token_mean
from wagle.unlearning.batch import ForgetRetainBatch, PairedDataset
from wagle.unlearning.methods.npo import reference_nll
from wagle.unlearning.objective import METHODS, RetainObjective, Terms
from wagle.unlearning.options import IdkDPOOptions


def dpo_loss(
    win: torch.Tensor,
    win_ref: torch.Tensor,
    lose: torch.Tensor,
    lose_ref: torch.Tensor,
    beta: float,
) -> torch.Tensor:
    """−(2/β)·mean log σ(β·((win_ref − win) − (lose_ref − lose))) over summed NLLs [B]."""
    margin = (win_ref - win) - (lose_ref - lose)
    return -(2.0 / beta) * F.logsigmoid(beta * margin).mean()


@register(METHODS, "idkdpo")
class IdkDPO(RetainObjective):
    Options = IdkDPOOptions
    normalised_by: ClassVar[dict[str, str]] = {"forget": "sequences", "retain": "retain_tokens"}

    def __init__(self, options: IdkDPOOptions | None = None) -> None:
        super().__init__(options)
        self.refusals: list[dict[str, list[int]]] | None = None  # encoded, per forget sample
        self.ref_lose: torch.Tensor | None = None  # [N_forget]
        self.ref_win: torch.Tensor | None = None  # [N_forget]

    def encode(self, tokenizer: Any, forget: list[Record], max_length: int) -> None:
        if forget and "question" not in forget[0]:
            raise WagleError("the idkdpo method needs QA forget data (question/answer records)")
        refusals = refusal_records(forget, seed=self.options.refusal_seed)
        self.refusals = encode_records(tokenizer, refusals, max_length=max_length)

    def companions(self) -> dict[str, list[dict[str, list[int]]]]:
        return {"refusals": self.refusals} if self.refusals is not None else {}

    def prepare(self, model: torch.nn.Module, data: PairedDataset, pad_token_id: int) -> None:
        super().prepare(model, data, pad_token_id)
        if self.refusals is None or len(self.refusals) != len(data.forget):
            raise WagleError("idkdpo: encode(tokenizer, forget records) must precede prepare")
        # on the training device: indexed per micro-batch without a copy from the host
        self.ref_lose = reference_nll(model, data.forget, pad_token_id).to(model.device)
        self.ref_win = reference_nll(model, self.refusals, pad_token_id).to(model.device)

    def __call__(self, model: torch.nn.Module, batch: ForgetRetainBatch) -> Terms:
        if "refusals" not in batch.companions:
            raise WagleError("idkdpo: collate with PairCollator(pad, objective.companions())")
        win, _ = sequence_nll(model, batch.companions["refusals"])
        lose, n_tokens = sequence_nll(model, batch.forget)
        index = batch.forget_index
        forget = dpo_loss(win, self.ref_win[index], lose, self.ref_lose[index], self.options.beta)
        return self.with_retain(model, batch, forget, token_mean(lose, n_tokens))
